//! Dynamic update (RFC 2136): parse a request, check its prerequisites, work out its changes.
//!
//! Owns the UPDATE message format (RFC 2136 §2), the checks of §3.1 (zone
//! section → FORMERR, NOTAUTH), §3.2 (prerequisites → FORMERR, NOTZONE, and
//! against the zone NXDOMAIN, YXDOMAIN, NXRRSET, YXRRSET) and §3.4.1 (update
//! prescan → FORMERR, NOTZONE), and the update semantics of §3.4.2, including
//! its special cases: SOA only at the apex and only forward (RFC 1982), the
//! apex SOA and NS never deleted, the last apex NS kept, CNAME never beside
//! other data (RRSIG and NSEC excepted, RFC 4035 §2.5), duplicates merged.
//!
//! It does not touch the zone: [`process`] reads the names it needs through
//! [`ZoneView`] and returns the [`Changes`] (records removed and added) for the
//! publisher to check, sign and publish; the request either applies whole or
//! not at all. It does not verify TSIG or apply ACLs (see [`crate::tsig`],
//! [`crate::acl`]); it records whether the request was signed. It does not
//! change the SOA serial itself: when an update does not set the SOA, the
//! publisher picks the next serial (§3.6).
//!
//! Order of work for a server:
//! 1. [`crate::tsig::verify_request`] (TSIG errors answered before anything else);
//! 2. [`parse`] → an [`UpdateError`] carries the RCODE to answer;
//! 3. the ACL (REFUSED), any local policy such as [`refuse_types`] (REFUSED);
//! 4. [`process`] against the current zone → rcode or [`Changes`];
//! 5. publish the changes, then answer with [`response`] (signed when the request was).
//!
//! Format and zone-membership checks of all three sections come before any
//! prerequisite is evaluated, so a malformed request is FORMERR even when an
//! earlier prerequisite would fail; either way nothing changes.

mod apply;
mod parse;

pub use apply::{check_prerequisites, process, Changes, MemoryZone, ZoneView};
pub use parse::parse;

use crate::wire::decode::Record;
use crate::wire::message;
use crate::wire::{Rcode, Rtype};

/// A prerequisite (RFC 2136 §2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prerequisite {
    /// §2.4.4: at least one record owned by the name (class ANY, type ANY).
    NameInUse(Vec<u8>),
    /// §2.4.5: no record owned by the name (class NONE, type ANY).
    NameNotInUse(Vec<u8>),
    /// §2.4.1: an RRset of this type exists (class ANY).
    RRsetExists(Vec<u8>, Rtype),
    /// §2.4.3: no RRset of this type exists (class NONE).
    RRsetDoesNotExist(Vec<u8>, Rtype),
    /// §2.4.2: the RRset exists and equals exactly these RDATA (zone class).
    RRsetEquals(Vec<u8>, Rtype, Vec<Vec<u8>>),
}

/// An update operation (RFC 2136 §2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// §2.5.1: add this record to its RRset (zone class).
    Add(Record),
    /// §2.5.2: delete the RRset of this type (class ANY).
    DeleteRRset(Vec<u8>, Rtype),
    /// §2.5.3: delete every RRset owned by the name (class ANY, type ANY).
    DeleteName(Vec<u8>),
    /// §2.5.4: delete one record, matched by RDATA (class NONE).
    DeleteRecord(Vec<u8>, Rtype, Vec<u8>),
}

impl Operation {
    /// The owner name the operation works on.
    pub fn name(&self) -> &[u8] {
        match self {
            Operation::Add(r) => &r.owner,
            Operation::DeleteRRset(n, _) | Operation::DeleteName(n) => n,
            Operation::DeleteRecord(n, _, _) => n,
        }
    }

    /// The type it works on, `None` for [`Operation::DeleteName`].
    pub fn rtype(&self) -> Option<Rtype> {
        match self {
            Operation::Add(r) => Some(r.rtype),
            Operation::DeleteRRset(_, t) | Operation::DeleteRecord(_, t, _) => Some(*t),
            Operation::DeleteName(_) => None,
        }
    }
}

/// A parsed UPDATE request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRequest {
    /// Message id.
    pub id: u16,
    /// Zone name, wire form as sent.
    pub zone: Vec<u8>,
    /// Zone class (always the served class once parsed).
    pub class: u16,
    /// Prerequisites, in order.
    pub prerequisites: Vec<Prerequisite>,
    /// Operations, in order.
    pub operations: Vec<Operation>,
    /// Additional-section records (OPT and TSIG excluded); RFC 2136 gives them no meaning.
    pub additional: Vec<Record>,
    /// Whether the request carried a TSIG record.
    pub signed: bool,
}

/// A refusal: the RCODE to answer and why, for the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({reason})", rcode_name(*rcode))]
pub struct UpdateError {
    /// RCODE to answer.
    pub rcode: Rcode,
    /// What was wrong.
    pub reason: String,
}

impl UpdateError {
    pub(crate) fn new(rcode: Rcode, reason: impl Into<String>) -> UpdateError {
        UpdateError {
            rcode,
            reason: reason.into(),
        }
    }
}

/// The mnemonic of an RCODE, for logs.
pub fn rcode_name(r: Rcode) -> &'static str {
    match r.0 {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "RCODE",
    }
}

/// Refuse (REFUSED) a request that adds or deletes records of any of `types` by type.
///
/// For local policy: an online-signing server refuses RRSIG, NSEC, NSEC3,
/// NSEC3PARAM and DNSKEY changes; a registry may refuse all but NS, DS and glue.
/// Deleting a whole name is not refused here.
pub fn refuse_types(req: &UpdateRequest, types: &[Rtype]) -> Result<(), UpdateError> {
    for op in &req.operations {
        if let Some(t) = op.rtype() {
            if types.contains(&t) {
                return Err(UpdateError::new(
                    Rcode::REFUSED,
                    format!("updates of type {} are not allowed", t.0),
                ));
            }
        }
    }
    Ok(())
}

/// The answer to an UPDATE `request`: id and opcode echoed, QR set, `rcode`, the
/// zone section echoed (RFC 2136 §3.8), an OPT record when the request had one.
///
/// Sign it afterwards when the request was signed ([`crate::tsig::Signer::sign`]).
pub fn response(request: &[u8], rcode: Rcode) -> Vec<u8> {
    let mut out = message::reply_header(request, Rcode(rcode.0 & 0x0F));
    let opt = message::parse(request).ok().and_then(|m| m.opt);
    if opt.is_some() || rcode.0 > 0x0F {
        message::append_opt(&mut out, 1232, (rcode.0 >> 4) as u8, 0);
    }
    out
}

#[cfg(test)]
mod tests;
