//! The Prometheus text format (version 0.0.4) of the server's figures, for `GET /metrics`.
//!
//! Encoded with `prometheus-client`: at each scrape the per-thread counters are
//! summed ([`super::Metrics::totals`]) and the publisher's and signer's figures
//! read ([`State`]); a collector hands both to the crate's encoder, which
//! writes names, help, types and escaped labels. Nothing here runs on the query
//! path. Every name starts with `belfry_`; counters end in `_total`.

use super::{Totals, COOKIES, KINDS, QTYPES, RCODES, RRL_ACTIONS, TRANSPORTS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Figures read from the rest of the server at scrape time.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The SOA serial served.
    pub serial: u32,
    /// Suppressions in force.
    pub suppressions: usize,
    /// Zone versions published since start (suppression changes, updates, re-signing).
    pub changes: u64,
    /// When the served zone was loaded (seconds since the epoch).
    pub loaded_at: u64,
    /// Seconds the zone file took to load and index (0 when restored from a checkpoint).
    pub load_seconds: f64,
    /// When the last change was published (0: none since start).
    pub last_change_at: u64,
    /// Whether the zone is signed.
    pub signed: bool,
    /// Whether every RRset of the served version has a signature.
    pub fully_signed: bool,
    /// Signatures made (query path and background).
    pub signatures_made: u64,
    /// Signatures that could not be made.
    pub signing_failures: u64,
    /// Networks being rate-limited now (as followed for the log); `None`: RRL off.
    pub rrl_limiting: Option<usize>,
    /// Cookie secrets accepted; `None`: cookies off.
    pub cookie_secrets: Option<usize>,
    /// Threads that have answered queries.
    pub threads: usize,
    /// dnstap messages written to the collector.
    pub dnstap_sent: u64,
    /// dnstap messages dropped (queue full, or lost with a broken connection).
    pub dnstap_dropped: u64,
    /// Whether the dnstap writer has a collector; `None`: dnstap off.
    pub dnstap_connected: Option<bool>,
    /// The allocator's figures; `None`: it cannot tell.
    pub heap: Option<crate::ops::heap::Heap>,
}

/// One scrape: the summed counters and the state, for the encoder.
#[derive(Debug)]
struct Scrape {
    totals: Totals,
    state: State,
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<N>(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: N) -> std::fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.totals;
        let s = &self.state;
        {
            let mut m = e.encode_descriptor(
                "belfry_queries",
                "Messages received, by transport, query type and the rcode answered (none: not answered)",
                None,
                MetricType::Counter,
            )?;
            for (ti, tn) in TRANSPORTS.iter().enumerate() {
                for (qi, (qn, _)) in QTYPES.iter().enumerate() {
                    for (ri, (rn, _)) in RCODES.iter().enumerate() {
                        let v = t.queries(ti, qi, ri);
                        if v == 0 {
                            continue;
                        }
                        let labels = [("transport", *tn), ("qtype", *qn), ("rcode", *rn)];
                        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut m = e.encode_descriptor(
                "belfry_answers",
                "Answers from the zone, by kind",
                None,
                MetricType::Counter,
            )?;
            for (i, k) in KINDS.iter().enumerate() {
                ConstCounter::new(t.kind(i)).encode(m.encode_family(&[("kind", *k)])?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "belfry_truncated",
                "Answers truncated (TC=1) because they did not fit, by transport",
                None,
                MetricType::Counter,
            )?;
            for (i, tn) in TRANSPORTS.iter().enumerate() {
                ConstCounter::new(t.truncated(i))
                    .encode(m.encode_family(&[("transport", *tn)])?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "belfry_rrl",
                "Answers over the rate limit: dropped, slipped (sent with TC=1), would_limit (log_only)",
                None,
                MetricType::Counter,
            )?;
            for (i, a) in RRL_ACTIONS.iter().enumerate() {
                ConstCounter::new(t.rrl(i)).encode(m.encode_family(&[("action", *a)])?)?;
            }
        }
        if let Some(n) = s.rrl_limiting {
            gauge(
                &mut e,
                "belfry_rrl_limited_networks",
                "Client networks being rate-limited now",
                n as i64,
            )?;
        }
        {
            let mut m = e.encode_descriptor(
                "belfry_cookies",
                "Queries with a DNS cookie, by what it was",
                None,
                MetricType::Counter,
            )?;
            for (i, c) in COOKIES.iter().enumerate() {
                ConstCounter::new(t.cookie(i)).encode(m.encode_family(&[("cookie", *c)])?)?;
            }
        }
        if let Some(n) = s.cookie_secrets {
            gauge(
                &mut e,
                "belfry_cookie_secrets",
                "Cookie secrets accepted (the first makes cookies)",
                n as i64,
            )?;
        }
        counter(
            &mut e,
            "belfry_nsid_answers",
            "Answers that carried the NSID",
            t.nsid(),
        )?;
        for (name, help, f) in [
            (
                "belfry_query_bytes",
                "Bytes of messages received, by transport",
                Totals::bytes_in as fn(&Totals, usize) -> u64,
            ),
            (
                "belfry_answer_bytes",
                "Bytes of answers sent, by transport",
                Totals::bytes_out,
            ),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (i, tn) in TRANSPORTS.iter().enumerate() {
                ConstCounter::new(f(t, i)).encode(m.encode_family(&[("transport", *tn)])?)?;
            }
        }
        gauge(
            &mut e,
            "belfry_zone_serial",
            "SOA serial served",
            s.serial as i64,
        )?;
        gauge(
            &mut e,
            "belfry_suppressions",
            "Suppressions in force",
            s.suppressions as i64,
        )?;
        counter(
            &mut e,
            "belfry_changes",
            "Zone versions published since start (suppressions, updates, re-signing)",
            s.changes,
        )?;
        gauge(
            &mut e,
            "belfry_zone_loaded_timestamp_seconds",
            "When the served zone was loaded (Unix time)",
            s.loaded_at as i64,
        )?;
        gauge(
            &mut e,
            "belfry_zone_load_seconds",
            "Time the zone file took to load and index",
            s.load_seconds,
        )?;
        gauge(
            &mut e,
            "belfry_zone_last_change_timestamp_seconds",
            "When the last change was published (Unix time; 0: none since start)",
            s.last_change_at as i64,
        )?;
        gauge(
            &mut e,
            "belfry_zone_signed",
            "Whether the zone is signed",
            s.signed as i64,
        )?;
        gauge(
            &mut e,
            "belfry_zone_fully_signed",
            "Whether every RRset served has a signature",
            s.fully_signed as i64,
        )?;
        counter(
            &mut e,
            "belfry_signatures_made",
            "Signatures made (on first use and in the background)",
            s.signatures_made,
        )?;
        counter(
            &mut e,
            "belfry_signing_failures",
            "Signatures that could not be made",
            s.signing_failures,
        )?;
        gauge(
            &mut e,
            "belfry_query_threads",
            "Threads that have answered queries",
            s.threads as i64,
        )?;
        counter(
            &mut e,
            "belfry_dnstap_sent",
            "dnstap messages (AUTH_QUERY, AUTH_RESPONSE) written to the collector",
            s.dnstap_sent,
        )?;
        counter(
            &mut e,
            "belfry_dnstap_dropped",
            "dnstap messages dropped: a worker's queue was full or the connection broke",
            s.dnstap_dropped,
        )?;
        if let Some(c) = s.dnstap_connected {
            gauge(
                &mut e,
                "belfry_dnstap_connected",
                "Whether the dnstap writer is connected to its collector",
                c as i64,
            )?;
        }
        if let Some(h) = s.heap {
            gauge(
                &mut e,
                "belfry_heap_allocated_bytes",
                "Heap bytes the server holds",
                h.allocated as i64,
            )?;
            gauge(
                &mut e,
                "belfry_heap_resident_bytes",
                "Resident bytes of the heap allocator (held, free but not given back, metadata)",
                h.resident as i64,
            )?;
        }
        Ok(())
    }
}

/// The Prometheus text of the summed counters and the state.
pub fn render(totals: Totals, state: State) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { totals, state }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn text_format_names_types_and_labels() {
        let m = Metrics::new();
        let mut o = crate::handler::Outcome::dropped();
        o.sent = true;
        o.qtype = Some(crate::wire::Rtype::DS);
        o.kind = Some(crate::handler::Kind::Referral);
        m.record(&o, crate::server::Transport::Tcp, 33, 99);
        let text = render(
            m.totals(),
            State {
                serial: 2026112401,
                suppressions: 3,
                rrl_limiting: Some(0),
                ..State::default()
            },
        );
        assert!(
            text.contains("# TYPE belfry_queries_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "belfry_queries_total{transport=\"tcp\",qtype=\"DS\",rcode=\"NOERROR\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("belfry_answers_total{kind=\"referral\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("belfry_answer_bytes_total{transport=\"tcp\"} 99\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE belfry_zone_serial gauge\nbelfry_zone_serial 2026112401\n"),
            "{text}"
        );
        assert!(text.contains("belfry_rrl_limited_networks 0\n"), "{text}");
        assert!(
            !text.contains("belfry_cookie_secrets"),
            "cookies off: {text}"
        );
        // Every sample line is a name, optional labels and a number.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = l.rsplit_once(' ').unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
