//! The query handler: one DNS message in, one answer out, no I/O.
//!
//! [`handle`] is the whole query path of an authoritative server (RFC 1034
//! §4.3.2, RFC 1035 §4): parse, classify, look the name up once in the zone
//! index, and write the answer into a reused buffer in fixed stages: answer,
//! authority, additional, then OPT. DNSSEC records are added at each stage
//! when the query set DO and the zone is signed ([`crate::dnssec`]), never
//! otherwise unless the query type asks for them (RFC 3225 §3); the
//! suppression list is consulted before the zone ([`crate::suppress`]).
//! When a signature a DO=1 answer needs cannot be made, the answer is SERVFAIL
//! with an Extended DNS Error instead of an unsigned answer (RFC 8914).
//!
//! It must not block, lock, allocate or sign in steady state; everything it
//! writes was prepared at load or change time. Malformed input becomes
//! FORMERR/NOTIMP/BADVERS or is dropped (RFC 8906), never a panic.

mod answer;

use crate::dnssec::Signed;
use crate::name::Key;
use crate::suppress::Suppressions;
use crate::wire::{parse_query, query::ParseError, Class, Opcode, Rcode, Rtype, Writer};
use crate::zone::Zone;
use std::cell::Cell;
use std::sync::Arc;

pub use answer::answer_in_zone;

/// Everything a query is answered from; immutable, swapped as a whole.
pub struct Snapshot {
    /// The zone index.
    pub zone: Arc<Zone>,
    /// DNSSEC material (chain, signatures), when the zone is signed.
    pub dnssec: Option<Arc<Signed>>,
    /// The suppression list in force.
    pub suppressions: Arc<Suppressions>,
    /// The SOA serial served (the zone's, raised by every change).
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
    /// Set by the stages when a signature the answer needs could not be made.
    pub sign_failed: Cell<bool>,
    /// The suppression (EDE code and text) met by following a CNAME, if any.
    pub blocked: Cell<Option<(u16, &'q str)>>,
}

/// Extended DNS Error text of an answer whose signatures could not be made.
const SIGN_FAILED_TEXT: &[u8] = b"DNSSEC signature could not be made";

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
        sign_failed: Cell::new(false),
        blocked: Cell::new(None),
    };
    let rcode = answer_in_zone(&mut w, snap, &ctx, &key, hit.map(|h| h.labels));
    if ctx.sign_failed.get() {
        // Never an answer without the signatures a validator expects: it would be
        // bogus for every user behind that validator. RFC 8914 has no code for "the
        // authoritative signer failed": 6 (DNSSEC Bogus), 7 and 10 describe what a
        // validator found in data it received, so this is 0 (Other) with a text.
        w.clear_records(question_end);
        w.set_flags(w.flags() & !(flags::AA | flags::TC));
        return done(
            w,
            Rcode::SERVFAIL,
            Some((crate::wire::types::ede::OTHER, SIGN_FAILED_TEXT)),
        );
    }
    let ede = match hit {
        Some(s) => Some((s.code, s.text.as_bytes())),
        // A suppressed CNAME target: its EDE is added when it fits (it is optional).
        None => ctx
            .blocked
            .get()
            .map(|(code, text)| (code, text.as_bytes()))
            .filter(|(_, t)| w.len() + Writer::opt_len(Some(t.len())) <= limit),
    }
    .filter(|_| edns.is_some());
    done(w, rcode, ede)
}

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
