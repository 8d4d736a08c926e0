//! Prerequisite evaluation (RFC 2136 §3.2) and update semantics (§3.4.2) over an abstract zone.

use super::{Operation, Prerequisite, UpdateError, UpdateRequest};
use crate::name::{eq_ignore_case, to_lowercase};
use crate::serial::{serial_gt, soa_serial};
use crate::wire::decode::Record;
use crate::wire::message::rdata_eq;
use crate::wire::{Rcode, Rtype};
use std::collections::BTreeMap;

/// Read access to the zone an update is checked and applied against.
///
/// Give it the zone's own data, without the records a signer makes (RRSIG,
/// NSEC, NSEC3): the publisher signs the result.
pub trait ZoneView {
    /// Every record owned by `name` (compared ignoring case), of any type; empty if none.
    fn records_at(&self, name: &[u8]) -> Vec<Record>;
}

impl<F: Fn(&[u8]) -> Vec<Record>> ZoneView for F {
    fn records_at(&self, name: &[u8]) -> Vec<Record> {
        self(name)
    }
}

/// What an update changes: records removed and records added (the SOA included
/// when the update set it), like one IXFR difference sequence without the serials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Records to remove.
    pub removed: Vec<Record>,
    /// Records to add.
    pub added: Vec<Record>,
}

impl Changes {
    /// Whether the update changes nothing (RFC 2136 §3.4.2.7: still NOERROR).
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    /// The new apex SOA, when the update set one.
    pub fn new_soa(&self) -> Option<&Record> {
        self.added.iter().find(|r| r.rtype == Rtype::SOA)
    }
}

/// Whether an RRset of a type may sit beside a CNAME (RFC 4035 §2.5, RFC 2136 §3.4.2.2).
fn may_sit_beside_cname(t: Rtype) -> bool {
    matches!(t, Rtype::CNAME | Rtype::RRSIG | Rtype::NSEC)
}

/// Evaluate the prerequisites in order (RFC 2136 §3.2.5); the first failing one gives the RCODE.
pub fn check_prerequisites(req: &UpdateRequest, zone: &impl ZoneView) -> Result<(), UpdateError> {
    let fail = |rcode: Rcode, what: &str, name: &[u8]| {
        Err(UpdateError::new(
            rcode,
            format!("prerequisite failed: {what} {}", crate::name::to_text(name)),
        ))
    };
    for p in &req.prerequisites {
        match p {
            Prerequisite::NameInUse(n) => {
                if zone.records_at(n).is_empty() {
                    return fail(Rcode::NXDOMAIN, "no records at", n);
                }
            }
            Prerequisite::NameNotInUse(n) => {
                if !zone.records_at(n).is_empty() {
                    return fail(Rcode::YXDOMAIN, "records exist at", n);
                }
            }
            Prerequisite::RRsetExists(n, t) => {
                if !zone.records_at(n).iter().any(|r| r.rtype == *t) {
                    return fail(Rcode::NXRRSET, &format!("no type {} RRset at", t.0), n);
                }
            }
            Prerequisite::RRsetDoesNotExist(n, t) => {
                if zone.records_at(n).iter().any(|r| r.rtype == *t) {
                    return fail(Rcode::YXRRSET, &format!("type {} RRset exists at", t.0), n);
                }
            }
            Prerequisite::RRsetEquals(n, t, want) => {
                let have: Vec<Vec<u8>> = zone
                    .records_at(n)
                    .into_iter()
                    .filter(|r| r.rtype == *t)
                    .map(|r| r.rdata)
                    .collect();
                if !same_set(*t, &have, want) {
                    return fail(Rcode::NXRRSET, &format!("type {} RRset differs at", t.0), n);
                }
            }
        }
    }
    Ok(())
}

/// Whether two RDATA lists hold the same set (duplicates ignored, names compared canonically).
fn same_set(t: Rtype, a: &[Vec<u8>], b: &[Vec<u8>]) -> bool {
    let covers =
        |x: &[Vec<u8>], y: &[Vec<u8>]| x.iter().all(|r| y.iter().any(|s| rdata_eq(t, r, s)));
    !a.is_empty() && covers(a, b) && covers(b, a)
}

/// One name's data while an update is worked out.
#[derive(Clone)]
struct NameData {
    before: Vec<Record>,
    after: Vec<Record>,
}

/// Check the prerequisites, then work out the update's changes (RFC 2136 §3.2, §3.4.2).
///
/// Returns the RCODE of the first failing prerequisite, or the changes (possibly none).
pub fn process(req: &UpdateRequest, zone: &impl ZoneView) -> Result<Changes, UpdateError> {
    check_prerequisites(req, zone)?;
    let mut names: BTreeMap<Vec<u8>, NameData> = BTreeMap::new();
    let apex = to_lowercase(&req.zone);
    for op in &req.operations {
        let key = to_lowercase(op.name());
        let data = names.entry(key.clone()).or_insert_with(|| {
            let before = zone.records_at(op.name());
            NameData {
                after: before.clone(),
                before,
            }
        });
        let at_apex = key == apex;
        let set = &mut data.after;
        match op {
            Operation::Add(rr) => add(set, rr, at_apex),
            Operation::DeleteRRset(_, t) => {
                if !(at_apex && (*t == Rtype::SOA || *t == Rtype::NS)) {
                    set.retain(|r| r.rtype != *t);
                }
            }
            Operation::DeleteName(_) => {
                if at_apex {
                    set.retain(|r| r.rtype == Rtype::SOA || r.rtype == Rtype::NS);
                } else {
                    set.clear();
                }
            }
            Operation::DeleteRecord(_, t, rdata) => {
                if *t == Rtype::SOA {
                    continue;
                }
                let matching = |r: &Record| r.rtype == *t && rdata_eq(*t, &r.rdata, rdata);
                if *t == Rtype::NS && at_apex {
                    let ns: Vec<&Record> = set.iter().filter(|r| r.rtype == Rtype::NS).collect();
                    if ns.iter().all(|r| matching(r)) {
                        continue; // the last apex NS stays (§3.4.2.4)
                    }
                }
                set.retain(|r| !matching(r));
            }
        }
    }
    let mut changes = Changes::default();
    for data in names.into_values() {
        for r in &data.before {
            if !data.after.iter().any(|a| same_record(a, r)) {
                changes.removed.push(r.clone());
            }
        }
        for a in &data.after {
            if !data.before.iter().any(|r| same_record(a, r)) {
                changes.added.push(a.clone());
            }
        }
    }
    Ok(changes)
}

fn same_record(a: &Record, b: &Record) -> bool {
    a.rtype == b.rtype
        && a.class == b.class
        && a.ttl == b.ttl
        && eq_ignore_case(&a.owner, &b.owner)
        && rdata_eq(a.rtype, &a.rdata, &b.rdata)
}

/// §3.4.2.2 and §3.4.2.3: add one record to a name's records.
fn add(set: &mut Vec<Record>, rr: &Record, at_apex: bool) {
    let t = rr.rtype;
    if t == Rtype::CNAME {
        if set.iter().any(|r| !may_sit_beside_cname(r.rtype)) {
            return;
        }
    } else if !may_sit_beside_cname(t) && set.iter().any(|r| r.rtype == Rtype::CNAME) {
        return;
    }
    if t == Rtype::SOA {
        let Some(old) = set.iter().find(|r| r.rtype == Rtype::SOA) else {
            return; // no SOA here: not the apex
        };
        if !at_apex {
            return;
        }
        match (soa_serial(&old.rdata), soa_serial(&rr.rdata)) {
            (Some(o), Some(n)) if !serial_gt(o, n) => {}
            _ => return, // serial would go backwards
        }
    }
    // CNAME and SOA RRsets hold one record: the new one replaces it.
    if t == Rtype::CNAME || t == Rtype::SOA {
        set.retain(|r| r.rtype != t);
    } else {
        set.retain(|r| !(r.rtype == t && rdata_eq(t, &r.rdata, &rr.rdata)));
    }
    // One TTL per RRset (RFC 2181 §5.2): the added record's TTL applies to the RRset.
    for r in set.iter_mut().filter(|r| r.rtype == t) {
        r.ttl = rr.ttl;
    }
    set.push(rr.clone());
}

/// A small in-memory zone: a [`ZoneView`] that can apply [`Changes`] (tests, tools).
#[derive(Clone, Debug, Default)]
pub struct MemoryZone {
    names: BTreeMap<Vec<u8>, Vec<Record>>,
}

impl MemoryZone {
    /// A zone holding these records.
    pub fn new(records: impl IntoIterator<Item = Record>) -> MemoryZone {
        let mut z = MemoryZone::default();
        for r in records {
            z.names.entry(to_lowercase(&r.owner)).or_default().push(r);
        }
        z
    }

    /// Apply changes: remove, then add.
    pub fn apply(&mut self, c: &Changes) {
        for r in &c.removed {
            if let Some(v) = self.names.get_mut(&to_lowercase(&r.owner)) {
                v.retain(|x| !same_record(x, r));
            }
        }
        for r in &c.added {
            self.names
                .entry(to_lowercase(&r.owner))
                .or_default()
                .push(r.clone());
        }
        self.names.retain(|_, v| !v.is_empty());
    }

    /// Every record, by name.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.names.values().flatten()
    }
}

impl ZoneView for MemoryZone {
    fn records_at(&self, name: &[u8]) -> Vec<Record> {
        self.names
            .get(&to_lowercase(name))
            .cloned()
            .unwrap_or_default()
    }
}
