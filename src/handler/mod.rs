//! The query handler: one DNS message in, one answer out, no I/O.
//!
//! [`handle`] is the whole query path of an authoritative server (RFC 1034
//! §4.3.2, RFC 1035 §4): parse, classify, look the name up once in the zone
//! index, and write the answer into a reused buffer in fixed stages: answer,
//! authority, additional, then OPT. DNSSEC records are added at each stage
//! when the query set DO and the zone is signed ([`crate::dnssec`]); the
//! suppression list is consulted before the zone ([`crate::suppress`]).
//!
//! It must not block, lock, allocate or sign in steady state; everything it
//! writes was prepared at load or change time. Malformed input becomes
//! FORMERR/NOTIMP/BADVERS or is dropped (RFC 8906), never a panic.

mod answer;

use crate::dnssec::Dnssec;
use crate::dnssec::NoSignature;
use crate::name::Key;
use crate::suppress::Suppressions;
use crate::wire::{parse_query, query::ParseError, Class, Opcode, Rcode, Rtype, Writer};
use crate::zone::Zone;
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
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            max_udp_payload: 1232,
            identity: None,
            version: None,
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

/// Answer one query. Returns false when nothing must be sent.
pub fn handle(
    snap: &Snapshot,
    cfg: &HandlerConfig,
    query: &[u8],
    tcp: bool,
    out: &mut Vec<u8>,
) -> bool {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(ParseError::Drop) => return false,
        Err(ParseError::FormErr) => {
            // Echo only the header: id, opcode and RD (RFC 8906 §3.1.4).
            let id = u16::from_be_bytes([query[0], query[1]]);
            let f = u16::from_be_bytes([query[2], query[3]]);
            let w = Writer::new(out, id, flags::QR | (f & 0x7800) | (f & flags::RD) | 1);
            w.finish();
            return true;
        }
    };
    let base_flags = flags::QR | (q.flags & 0x7800) | (q.flags & (flags::RD | flags::CD));
    let mut w = Writer::new(out, q.id, base_flags);
    w.question(q.question, q.qname.len());
    let question_end = w.len();
    let edns = q.edns;
    let done =
        |w: Writer<'_>, rcode: Rcode, ede: Option<(u16, &[u8])>| finish(w, cfg, edns, rcode, ede);
    if let Some(e) = edns {
        if e.version > 0 {
            return done(w, Rcode::BADVERS, None);
        }
    }
    if q.opcode != Opcode::QUERY {
        return done(w, Rcode::NOTIMP, None);
    }
    if q.qtype == Rtype::OPT {
        return done(w, Rcode::FORMERR, None);
    }
    if q.qclass == Class::CH {
        return chaos(w, cfg, edns, q.qname, q.qtype);
    }
    if q.qclass != Class::IN {
        return done(w, Rcode::REFUSED, None);
    }
    let zone = &*snap.zone;
    if !crate::name::is_at_or_below(q.qname, zone.origin()) {
        return done(w, Rcode::REFUSED, None);
    }
    if q.qtype == Rtype::AXFR || q.qtype == Rtype::IXFR {
        // Zone transfers are not offered yet.
        return done(w, Rcode::REFUSED, None);
    }
    if q.qtype.is_meta() && q.qtype != Rtype::ANY {
        return done(w, Rcode::NOTIMP, None);
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
    let mut key = Key::new();
    key.set(q.qname);
    let hit = snap.suppressions.find(&key, zone.origin_labels());
    let ede_len = hit.map(|s| s.text.len());
    let ctx = Ctx {
        qname: q.qname,
        qtype: q.qtype,
        dnssec,
        limit,
        opt_reserve: if edns.is_some() {
            Writer::opt_len(ede_len)
        } else {
            0
        },
        question_end,
    };
    match answer_in_zone(&mut w, snap, &ctx, &key) {
        Ok((kind, last)) => {
            // A suppressed name (or a name below one) is denied with the Extended DNS
            // Error; addresses of hosts below it that other domains use are not. When a
            // CNAME led to the denied name, it is the target's suppression that counts.
            let hit = match last {
                Target::Query => hit,
                Target::Chased(h) => h,
            };
            let ede = hit
                .filter(|_| edns.is_some() && matches!(kind, Kind::NxDomain | Kind::NoData))
                .filter(|h| w.len() + Writer::opt_len(Some(h.text.len())) <= limit)
                .map(|s| (s.code, s.text.as_bytes()));
            done(w, kind.rcode(), ede)
        }
        Err(NoSignature) => {
            // Never an unsigned answer to a DO=1 query: a validator would call it bogus.
            w.clear_records(question_end);
            w.set_flags(w.flags() & !(flags::AA | flags::TC));
            let ede = edns.map(|_| (crate::wire::types::ede::OTHER, SERVFAIL_TEXT.as_bytes()));
            done(w, Rcode::SERVFAIL, ede)
        }
    }
}

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
    ede: Option<(u16, &[u8])>,
) -> bool {
    w.set_flags((w.flags() & !0x000F) | (rcode.0 & 0x0F));
    if let Some(e) = edns {
        w.section(crate::wire::writer::Section::Additional);
        w.opt(cfg.max_udp_payload, (rcode.0 >> 4) as u8, e.dnssec_ok, ede);
    }
    w.finish();
    true
}

fn chaos(
    mut w: Writer<'_>,
    cfg: &HandlerConfig,
    edns: Option<crate::wire::Edns>,
    qname: &[u8],
    qtype: Rtype,
) -> bool {
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
            finish(w, cfg, edns, Rcode::NOERROR, None)
        }
        _ => finish(w, cfg, edns, Rcode::REFUSED, None),
    }
}

#[cfg(test)]
pub(crate) mod tests;
