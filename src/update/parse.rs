//! Parsing an UPDATE message with the format and zone checks of RFC 2136 §3.1, §3.2, §3.4.1.

use super::{Operation, Prerequisite, UpdateError, UpdateRequest};
use crate::name::is_at_or_below;
use crate::wire::decode::Record;
use crate::wire::message::{self, rdata_is_valid};
use crate::wire::{Class, Opcode, Rcode, Rtype};

fn formerr(reason: impl Into<String>) -> UpdateError {
    UpdateError::new(Rcode::FORMERR, reason)
}

/// Whether an update may name this type as data: not a meta type (RFC 2136 §3.4.1.3
/// names ANY, AXFR, MAILA, MAILB; OPT, TSIG, IXFR and the rest of 128–255 are no data either).
fn is_data_type(t: Rtype) -> bool {
    !t.is_meta() && t.0 != 0
}

/// Parse an UPDATE request for the zone this server serves (`served_zone`, class IN).
///
/// Errors carry the RCODE RFC 2136 asks for: FORMERR for malformed messages and
/// sections, NOTAUTH when the zone is not ours (§3.1.1), NOTZONE for a name
/// outside the zone (§3.2.1, §3.4.1.1).
pub fn parse(msg: &[u8], served_zone: &[u8]) -> Result<UpdateRequest, UpdateError> {
    let m = message::parse(msg).map_err(|e| formerr(e.to_string()))?;
    if m.header.is_response() {
        return Err(formerr("message is a response"));
    }
    if m.header.opcode() != Opcode::UPDATE {
        return Err(formerr("opcode is not UPDATE"));
    }
    // §3.1.1: exactly one zone, of type SOA.
    let [zone] = m.questions.as_slice() else {
        return Err(formerr(format!(
            "zone section holds {} entries, not 1",
            m.questions.len()
        )));
    };
    if zone.qtype != Rtype::SOA {
        return Err(formerr("zone section type is not SOA"));
    }
    if zone.qclass != Class::IN.0 || !crate::name::eq_ignore_case(&zone.name, served_zone) {
        return Err(UpdateError::new(
            Rcode::NOTAUTH,
            format!("not authoritative for {}", crate::name::to_text(&zone.name)),
        ));
    }
    let zclass = zone.qclass;
    let in_zone = |r: &Record| -> Result<(), UpdateError> {
        if is_at_or_below(&r.owner, &zone.name) {
            Ok(())
        } else {
            Err(UpdateError::new(
                Rcode::NOTZONE,
                format!("{} is outside the zone", crate::name::to_text(&r.owner)),
            ))
        }
    };

    // §3.2: prerequisites.
    let mut prerequisites: Vec<Prerequisite> = Vec::new();
    for r in &m.answer {
        if r.ttl != 0 {
            return Err(formerr("prerequisite TTL is not 0"));
        }
        in_zone(r)?;
        let rdempty = r.rdata.is_empty();
        let name = r.owner.clone();
        match Class(r.class) {
            Class::ANY | Class::NONE if !rdempty => {
                return Err(formerr("class ANY/NONE prerequisite with RDATA"))
            }
            Class::ANY if r.rtype == Rtype::ANY => {
                prerequisites.push(Prerequisite::NameInUse(name))
            }
            Class::NONE if r.rtype == Rtype::ANY => {
                prerequisites.push(Prerequisite::NameNotInUse(name))
            }
            _ if !is_data_type(r.rtype) => return Err(formerr("prerequisite on a meta type")),
            Class::ANY => prerequisites.push(Prerequisite::RRsetExists(name, r.rtype)),
            Class::NONE => prerequisites.push(Prerequisite::RRsetDoesNotExist(name, r.rtype)),
            c if c.0 == zclass => {
                if !rdata_is_valid(r.rtype, &r.rdata) {
                    return Err(formerr("malformed RDATA in a prerequisite"));
                }
                // Group into RRsets (§3.2.3: "temp<rr.name, rr.type> += rr").
                let found = prerequisites.iter_mut().find_map(|p| match p {
                    Prerequisite::RRsetEquals(n, t, rd)
                        if *t == r.rtype && crate::name::eq_ignore_case(n, &r.owner) =>
                    {
                        Some(rd)
                    }
                    _ => None,
                });
                match found {
                    Some(rd) => rd.push(r.rdata.clone()),
                    None => prerequisites.push(Prerequisite::RRsetEquals(
                        name,
                        r.rtype,
                        vec![r.rdata.clone()],
                    )),
                }
            }
            _ => return Err(formerr("prerequisite of another class")),
        }
    }

    // §3.4.1: prescan of the update section.
    let mut operations = Vec::with_capacity(m.authority.len());
    for r in &m.authority {
        in_zone(r)?;
        match Class(r.class) {
            c if c.0 == zclass => {
                if !is_data_type(r.rtype) {
                    return Err(formerr("add of a meta type"));
                }
                if !rdata_is_valid(r.rtype, &r.rdata) {
                    return Err(formerr(format!(
                        "malformed RDATA for type {} at {}",
                        r.rtype.0,
                        crate::name::to_text(&r.owner)
                    )));
                }
                operations.push(Operation::Add(r.clone()));
            }
            Class::ANY => {
                if r.ttl != 0 || !r.rdata.is_empty() {
                    return Err(formerr("class ANY update with TTL or RDATA"));
                }
                if r.rtype == Rtype::ANY {
                    operations.push(Operation::DeleteName(r.owner.clone()));
                } else if is_data_type(r.rtype) {
                    operations.push(Operation::DeleteRRset(r.owner.clone(), r.rtype));
                } else {
                    return Err(formerr("delete of a meta type"));
                }
            }
            Class::NONE => {
                if r.ttl != 0 {
                    return Err(formerr("class NONE update with TTL"));
                }
                if !is_data_type(r.rtype) {
                    return Err(formerr("delete of a meta type"));
                }
                if !rdata_is_valid(r.rtype, &r.rdata) {
                    return Err(formerr("malformed RDATA in a delete"));
                }
                operations.push(Operation::DeleteRecord(
                    r.owner.clone(),
                    r.rtype,
                    r.rdata.clone(),
                ));
            }
            _ => return Err(formerr("update of another class")),
        }
    }

    Ok(UpdateRequest {
        id: m.header.id,
        zone: zone.name.clone(),
        class: zclass,
        prerequisites,
        operations,
        additional: m.additional,
        signed: m.tsig.is_some(),
    })
}
