//! The query handler: one DNS message in, one answer out, no I/O.
//!
//! [`handle`] is the whole query path of an authoritative server (RFC 1034
//! §4.3.2, RFC 1035 §4): parse, classify, look the name up once in the zone
//! index, and write the answer into a reused buffer in fixed stages: answer,
//! authority, additional, then OPT. DNSSEC records are added at each stage
//! when the query set DO and the zone is signed ([`crate::dnssec`]); the
//! suppression list is consulted before the zone ([`crate::suppress`]).
//!
//! [`respond`] also takes the client's address and the server's [`Guards`]: DNS
//! cookies are judged and answered (RFC 7873 §5.2, server cookies of RFC 9018;
//! BADCOOKIE only to a server cookie that is not ours, and only over UDP), NSID
//! is added when asked for and configured (RFC 5001), and a UDP answer to a
//! client without a valid cookie is charged to its rate-limiting bucket
//! ([`crate::rrl`]): sent, dropped, or slipped (TC=1 with only the question,
//! never larger than the query). It returns an [`Outcome`] (sent or not, rcode,
//! kind, truncation, what RRL and cookies did) for counters and logs.
//! [`handle`] is the same without guards.
//!
//! It must not block, lock, allocate or sign in steady state; everything it
//! writes was prepared at load or change time. Malformed input becomes
//! FORMERR/NOTIMP/BADVERS or is dropped (RFC 8906), never a panic.

mod answer;

use crate::cookie::{self, Secrets, Verdict};
use crate::dnssec::Dnssec;
use crate::dnssec::NoSignature;
use crate::name::Key;
use crate::rrl::{self, Rrl};
use crate::suppress::Suppressions;
use crate::wire::writer::OptOptions;
use crate::wire::{parse_query, query::ParseError, Class, Opcode, Rcode, Rtype, Writer};
use crate::zone::Zone;
use std::net::IpAddr;
use std::sync::Arc;

pub use answer::{answer_in_zone, Kind, Target};

/// Everything a query is answered from; immutable, swapped as a whole.
pub struct Snapshot {
    /// The zone index (suppressed delegations already withdrawn from it).
    pub zone: Arc<Zone>,
    /// DNSSEC material (chain, signatures), when the zone is signed.
    pub dnssec: Option<Arc<Dnssec>>,
    /// The suppression list in force: which names get an Extended DNS Error.
    pub suppressions: Arc<Suppressions>,
    /// The SOA serial served.
    pub serial: u32,
}

/// Handler settings from the configuration.
#[derive(Clone, Debug)]
pub struct HandlerConfig {
    /// Largest UDP answer we send with EDNS (RFC 6891 §6.2.5; default 1232).
    pub max_udp_payload: u16,
    /// Text for CHAOS `id.server`/`hostname.bind`; refused when `None`.
    pub identity: Option<String>,
    /// Text for CHAOS `version.bind`/`version.server`; refused when `None`.
    pub version: Option<String>,
    /// Our name server identifier (RFC 5001), sent to queries that ask; off when `None`.
    pub nsid: Option<Vec<u8>>,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            max_udp_payload: 1232,
            identity: None,
            version: None,
            nsid: None,
        }
    }
}

/// Header flag bits.
pub mod flags {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired (copied).
    pub const RD: u16 = 0x0100;
    /// Checking disabled (copied).
    pub const CD: u16 = 0x0010;
}

/// Per-answer context shared by the answer stages.
pub struct Ctx<'q> {
    /// The query name as sent.
    pub qname: &'q [u8],
    /// Query type.
    pub qtype: Rtype,
    /// Whether DNSSEC records are wanted (DO=1 and the zone is signed).
    pub dnssec: bool,
    /// Size limit of the answer.
    pub limit: usize,
    /// Room kept at the end for OPT.
    pub opt_reserve: usize,
    /// End of the question section.
    pub question_end: usize,
}

/// Who sent a message, over what, and when: what rate limiting and cookies need.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    /// The sender's address.
    pub ip: IpAddr,
    /// Whether the message came over TCP (never rate-limited, never BADCOOKIE).
    pub tcp: bool,
    /// Seconds since the epoch (the coarse clock; cookie timestamps, RRL seconds).
    pub now: u32,
}

impl Client {
    /// A client with no address that matters (tests, benches, fuzzing).
    pub fn local(tcp: bool) -> Client {
        Client {
            ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            tcp,
            now: 0,
        }
    }
}

/// Server state an answer depends on besides the zone: the RRL table and the cookie secrets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Guards<'a> {
    /// Response rate limiting (UDP answers to clients without a valid cookie).
    pub rrl: Option<&'a Rrl>,
    /// Server cookie secrets; `None` ignores COOKIE options (RFC 7873 §5.2.1).
    pub cookies: Option<&'a Secrets>,
}

/// What rate limiting did to an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limited {
    /// Not charged: TCP, RRL off, an exempt network, a valid cookie, nothing to send.
    #[default]
    NotCharged,
    /// Charged and within the rate.
    Passed,
    /// Over the rate: nothing sent.
    Dropped,
    /// Over the rate: sent truncated (TC=1, no records).
    Slipped,
    /// Over the rate, sent anyway (`log_only`).
    WouldLimit,
}

/// What the query's COOKIE option was judged to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CookieSeen {
    /// No COOKIE option, or cookies are off.
    #[default]
    None,
    /// A client cookie alone: the answer carries a new server cookie.
    ClientOnly,
    /// A valid server cookie, echoed.
    Valid,
    /// A valid server cookie, replaced by a new one (old, or from an older secret).
    Renewed,
    /// A server cookie that is not valid: BADCOOKIE over UDP, a new cookie over TCP.
    Invalid,
}

/// What [`respond`] did with one message (for counters and the query log).
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Whether an answer is in the output buffer, to be sent.
    pub sent: bool,
    /// The rcode of the answer (also when rate limiting dropped it).
    pub rcode: Rcode,
    /// The query type, when the question could be read.
    pub qtype: Option<Rtype>,
    /// What kind of answer the zone gave, when it was consulted.
    pub kind: Option<Kind>,
    /// Whether the answer was truncated for its size (TC=1; not a slip).
    pub truncated: bool,
    /// What rate limiting did.
    pub rrl: Limited,
    /// What the COOKIE option was.
    pub cookie: CookieSeen,
    /// Whether the answer carries our NSID.
    pub nsid: bool,
    /// Whether a suppression denied the name (NXDOMAIN or NODATA because of the
    /// list; the EDE goes with it when the query had EDNS).
    pub suppressed: bool,
}

impl Outcome {
    /// Nothing sent and nothing known yet (where [`respond`] starts).
    pub fn dropped() -> Outcome {
        Outcome {
            sent: false,
            rcode: Rcode::NOERROR,
            qtype: None,
            kind: None,
            truncated: false,
            rrl: Limited::NotCharged,
            cookie: CookieSeen::None,
            nsid: false,
            suppressed: false,
        }
    }
}

/// Answer one query. Returns false when nothing must be sent.
///
/// No rate limiting and no cookies: [`respond`] with [`Guards::default`].
pub fn handle(
    snap: &Snapshot,
    cfg: &HandlerConfig,
    query: &[u8],
    tcp: bool,
    out: &mut Vec<u8>,
) -> bool {
    respond(
        snap,
        cfg,
        &Guards::default(),
        query,
        &Client::local(tcp),
        out,
    )
    .sent
}

/// Answer one message from `client` into `out`, with rate limiting and cookies, and
/// say what was done. Nothing is to be sent unless [`Outcome::sent`].
pub fn respond(
    snap: &Snapshot,
    cfg: &HandlerConfig,
    guards: &Guards<'_>,
    query: &[u8],
    client: &Client,
    out: &mut Vec<u8>,
) -> Outcome {
    let mut o = Outcome::dropped();
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(ParseError::Drop) => return o,
        Err(ParseError::FormErr) => {
            // Echo only the header: id, opcode and RD (RFC 8906 §3.1.4).
            let id = u16::from_be_bytes([query[0], query[1]]);
            let f = u16::from_be_bytes([query[2], query[3]]);
            let mut w = Writer::new(out, id, flags::QR | (f & 0x7800) | (f & flags::RD) | 1);
            o.rcode = Rcode::FORMERR;
            o.rrl = rate_limit(guards, client, rrl::Class::Error, &[], 0);
            match o.rrl {
                Limited::Dropped => return o,
                Limited::Slipped => w.set_flags(w.flags() | flags::TC),
                _ => {}
            }
            w.finish();
            o.sent = true;
            return o;
        }
    };
    o.qtype = Some(q.qtype);
    // DNS cookies (RFC 7873 §5.2): judge the option, then echo or make a server cookie.
    let secrets = guards.cookies;
    let verdict = match (secrets, q.cookie) {
        (Some(s), Some(c)) => Some(s.check(c, client.ip, client.now)),
        _ => None,
    };
    o.cookie = match verdict {
        None => CookieSeen::None,
        Some(Verdict::ClientOnly) => CookieSeen::ClientOnly,
        Some(Verdict::Valid) => CookieSeen::Valid,
        Some(Verdict::ValidRenew) => CookieSeen::Renewed,
        Some(Verdict::Invalid) => CookieSeen::Invalid,
    };
    let mut cookie_out = [0u8; 24];
    let cookie = match (secrets, q.cookie, verdict) {
        (_, Some(c), Some(Verdict::Valid)) if c.len() == 24 => {
            cookie_out.copy_from_slice(c);
            Some(&cookie_out[..])
        }
        (Some(s), Some(c), Some(_)) => {
            cookie_out = s.make(&c[..cookie::CLIENT_LEN], client.ip, client.now);
            Some(&cookie_out[..])
        }
        _ => None,
    };
    let verified = verdict.is_some_and(Verdict::verified);
    let nsid = cfg
        .nsid
        .as_deref()
        .filter(|_| q.edns.is_some_and(|e| e.nsid));
    o.nsid = nsid.is_some();
    let mut options = OptOptions {
        nsid,
        cookie,
        ede: None,
    };
    let base_flags = flags::QR | (q.flags & 0x7800) | (q.flags & (flags::RD | flags::CD));
    let mut w = Writer::new(out, q.id, base_flags);
    w.question(q.question, q.qname.len());
    let question_end = w.len();
    let mut key = Key::new();
    // The rate limiter that will charge this answer, to warm its bucket while the
    // answer is written.
    let charged = guards
        .rrl
        .filter(|r| !verified && !client.tcp && !r.exempt(client.ip))
        .map(|r| (r, client.ip));
    let d = decide(
        &mut w,
        snap,
        cfg,
        &q,
        client.tcp,
        verdict == Some(Verdict::Invalid),
        &options,
        &mut key,
        charged,
    );
    o.rcode = d.rcode;
    o.kind = d.kind;
    o.truncated = w.flags() & flags::TC != 0;
    o.suppressed = d.suppressed;
    options.ede = d.ede;
    // Rate limiting (UDP, no valid cookie): charge the answer to its bucket.
    if !verified {
        let (class, name, qtype) = match (d.kind, d.rcode) {
            (Some(Kind::Answer), _) => (rrl::Class::Answer, key.as_bytes(), q.qtype.0),
            (Some(Kind::Referral), _) => (
                rrl::Class::Referral,
                key.prefix((snap.zone.origin_labels() + 1).min(key.labels())),
                0,
            ),
            (Some(Kind::NoData | Kind::NxDomain), _) => (rrl::Class::Negative, &[][..], 0),
            (None, Rcode::NOERROR) => (rrl::Class::Answer, q.qname, q.qtype.0),
            (None, _) => (rrl::Class::Error, &[][..], 0),
        };
        // `charged` is `rate_limit`'s test, made once before the answer for the prefetch.
        o.rrl = charged.map_or(Limited::NotCharged, |(r, _)| {
            charge(r, client, class, name, qtype)
        });
        match o.rrl {
            Limited::Dropped => return o,
            Limited::Slipped => {
                // Nothing but the question, TC=1, so a real client retries over TCP; the
                // cookie stays, so it can also come back over UDP with it.
                w.clear_records(question_end);
                w.set_flags((w.flags() & !flags::AA) | flags::TC);
                o.rcode = Rcode::NOERROR;
                options.ede = None;
                options.nsid = None;
                o.nsid = false;
            }
            _ => {}
        }
    }
    finish(w, cfg, q.edns, o.rcode, &options);
    o.sent = true;
    o
}

/// Charge an answer to the client's bucket when it is one RRL applies to.
fn rate_limit(
    guards: &Guards<'_>,
    client: &Client,
    class: rrl::Class,
    name: &[u8],
    qtype: u16,
) -> Limited {
    let Some(r) = guards.rrl else {
        return Limited::NotCharged;
    };
    if client.tcp || r.exempt(client.ip) {
        return Limited::NotCharged;
    }
    charge(r, client, class, name, qtype)
}

/// Charge an answer to the client's bucket.
fn charge(r: &rrl::Rrl, client: &Client, class: rrl::Class, name: &[u8], qtype: u16) -> Limited {
    match r.account(client.ip, class, name, qtype, client.now) {
        rrl::Verdict::Pass => Limited::Passed,
        rrl::Verdict::Drop => Limited::Dropped,
        rrl::Verdict::Slip => Limited::Slipped,
        rrl::Verdict::WouldLimit => Limited::WouldLimit,
    }
}

/// What the answer stages decided, before rate limiting and OPT.
struct Decided<'s> {
    rcode: Rcode,
    kind: Option<Kind>,
    ede: Option<(u16, &'s [u8])>,
    suppressed: bool,
}

impl Decided<'_> {
    fn rcode(rcode: Rcode) -> Self {
        Decided {
            rcode,
            kind: None,
            ede: None,
            suppressed: false,
        }
    }
}

/// Classify the query and write the answer's sections (not the OPT record).
#[allow(clippy::too_many_arguments)]
fn decide<'s>(
    w: &mut Writer<'_>,
    snap: &'s Snapshot,
    cfg: &HandlerConfig,
    q: &crate::wire::Query<'_>,
    tcp: bool,
    bad_cookie: bool,
    options: &OptOptions<'_>,
    key: &mut Key,
    charged: Option<(&rrl::Rrl, std::net::IpAddr)>,
) -> Decided<'s> {
    let edns = q.edns;
    if let Some(e) = edns {
        if e.version > 0 {
            return Decided::rcode(Rcode::BADVERS);
        }
    }
    if bad_cookie && !tcp {
        // RFC 7873 §5.2.3/§5.2.4: a server cookie that is not ours gets BADCOOKIE and a
        // new cookie over UDP (over TCP the connection proves the address: answered).
        return Decided::rcode(Rcode::BADCOOKIE);
    }
    if q.opcode != Opcode::QUERY {
        return Decided::rcode(Rcode::NOTIMP);
    }
    if q.qtype == Rtype::OPT {
        return Decided::rcode(Rcode::FORMERR);
    }
    if q.qclass == Class::CH {
        return Decided::rcode(chaos(w, cfg, q.qname, q.qtype));
    }
    if q.qclass != Class::IN {
        return Decided::rcode(Rcode::REFUSED);
    }
    let zone = &*snap.zone;
    if !crate::name::is_at_or_below(q.qname, zone.origin()) {
        return Decided::rcode(Rcode::REFUSED);
    }
    if q.qtype == Rtype::AXFR || q.qtype == Rtype::IXFR {
        // Zone transfers are not offered yet.
        return Decided::rcode(Rcode::REFUSED);
    }
    if q.qtype.is_meta() && q.qtype != Rtype::ANY {
        return Decided::rcode(Rcode::NOTIMP);
    }
    let limit = if tcp {
        65535
    } else {
        match edns {
            Some(e) => e.udp_size.clamp(512, cfg.max_udp_payload.max(512)) as usize,
            None => 512,
        }
    };
    let dnssec = edns.is_some_and(|e| e.dnssec_ok) && snap.dnssec.is_some();
    // The OPT record without an EDE; an EDE adds 6 bytes and its text.
    let opt_base = if edns.is_some() {
        options.wire_len()
    } else {
        0
    };
    key.set(q.qname);
    if let Some((r, ip)) = charged {
        // Most answers of a TLD are referrals, charged to the name below the apex (as
        // below, after the answer); a guess only: another class costs a wasted hint.
        if key.labels() > zone.origin_labels() {
            r.prefetch(
                ip,
                rrl::Class::Referral,
                key.prefix(zone.origin_labels() + 1),
                0,
            );
        }
    }
    let hit = snap.suppressions.find(key, zone.origin_labels());
    let ede_len = hit.map(|s| s.text.len());
    let question_end = HEADER_LEN + q.question.len();
    let ctx = Ctx {
        qname: q.qname,
        qtype: q.qtype,
        dnssec,
        limit,
        opt_reserve: if edns.is_some() {
            opt_base + ede_len.map_or(0, |t| 6 + t)
        } else {
            0
        },
        question_end,
    };
    match answer_in_zone(w, snap, &ctx, key) {
        Ok((kind, last)) => {
            // A suppressed name (or a name below one) is denied with the Extended DNS
            // Error; addresses of hosts below it that other domains use are not. When a
            // CNAME led to the denied name, it is the target's suppression that counts.
            let hit = match last {
                Target::Query => hit,
                Target::Chased(h) => h,
            };
            let denied = hit.filter(|_| matches!(kind, Kind::NxDomain | Kind::NoData));
            let ede = denied
                .filter(|_| edns.is_some())
                .filter(|h| w.len() + opt_base + 6 + h.text.len() <= limit)
                .map(|s| (s.code, s.text.as_bytes()));
            Decided {
                rcode: kind.rcode(),
                kind: Some(kind),
                ede,
                suppressed: denied.is_some(),
            }
        }
        Err(NoSignature) => {
            // Never an unsigned answer to a DO=1 query: a validator would call it bogus.
            w.clear_records(question_end);
            w.set_flags(w.flags() & !(flags::AA | flags::TC));
            let ede = edns.map(|_| (crate::wire::types::ede::OTHER, SERVFAIL_TEXT.as_bytes()));
            Decided {
                rcode: Rcode::SERVFAIL,
                kind: None,
                ede,
                suppressed: false,
            }
        }
    }
}

/// Length of the message header.
const HEADER_LEN: usize = 12;

/// Extended DNS Error text of a SERVFAIL for a signature that could not be made.
///
/// EDE 0 (Other) with a text: codes 6, 7 and 10 of RFC 8914 describe what a
/// validator found, not a server that could not sign.
const SERVFAIL_TEXT: &str = "DNSSEC signature could not be made";

/// Set the rcode, add OPT when the query had EDNS, and complete the message.
fn finish(
    mut w: Writer<'_>,
    cfg: &HandlerConfig,
    edns: Option<crate::wire::Edns>,
    rcode: Rcode,
    options: &OptOptions<'_>,
) {
    w.set_flags((w.flags() & !0x000F) | (rcode.0 & 0x0F));
    if let Some(e) = edns {
        w.section(crate::wire::writer::Section::Additional);
        w.opt_with(
            cfg.max_udp_payload,
            (rcode.0 >> 4) as u8,
            e.dnssec_ok,
            options,
        );
    }
    w.finish();
}

/// CHAOS `version.bind`/`id.server` (and aliases): the configured text, or REFUSED.
fn chaos(w: &mut Writer<'_>, cfg: &HandlerConfig, qname: &[u8], qtype: Rtype) -> Rcode {
    let lower = |s: &[u8]| crate::name::eq_ignore_case(qname, s);
    let text = if lower(b"\x07version\x04bind\x00") || lower(b"\x07version\x06server\x00") {
        cfg.version.as_deref()
    } else if lower(b"\x02id\x06server\x00") || lower(b"\x08hostname\x04bind\x00") {
        cfg.identity.as_deref()
    } else {
        None
    };
    match text {
        Some(t) if qtype == Rtype::TXT || qtype == Rtype::ANY => {
            let t = &t.as_bytes()[..t.len().min(255)];
            let mut rdata = [0u8; 256];
            rdata[0] = t.len() as u8;
            rdata[1..1 + t.len()].copy_from_slice(t);
            w.set_flags(w.flags() | flags::AA);
            w.section(crate::wire::writer::Section::Answer);
            w.record_at(12, Rtype::TXT, Class::CH.0, 0, &rdata[..1 + t.len()]);
            Rcode::NOERROR
        }
        _ => Rcode::REFUSED,
    }
}

#[cfg(test)]
pub(crate) mod tests;
