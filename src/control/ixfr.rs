//! IXFR out (RFC 1995): the journal's differences from the client's serial, condensed.
//!
//! The publisher journals every change as one difference of the signed zone
//! (records removed, records added, old and new SOA). An IXFR from serial `c`
//! takes the journal's records from `c` to the newest and [`condense`]s them
//! into one difference sequence (RFC 1995 §6 allows it): a record removed and
//! added back, or added and removed again, on the way cancels out. The answer
//! is then `new SOA, old SOA, removed…, new SOA, added…, new SOA`
//! ([`Condensed::each_record`]).
//!
//! When not to use the journal (decided by the caller, [`super::Control`]): the
//! client is current or ahead (one SOA), its serial is older than the journal,
//! before the first fully signed version, or unknown (the whole zone,
//! AXFR-style). A one-name change is always a one-record-set difference: it
//! never falls back to the whole zone.

use crate::publish::diff::{Diff, Rr};
use crate::publish::journal::Entry;
use crate::wire::Rtype;
use std::collections::BTreeSet;

/// One difference sequence from the client's version to the newest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condensed {
    /// The SOA of the client's version.
    pub old_soa: Rr,
    /// Records to delete.
    pub removed: Vec<Rr>,
    /// The SOA of the newest version.
    pub new_soa: Rr,
    /// Records to add.
    pub added: Vec<Rr>,
}

/// Condense the journal records of consecutive changes into one difference
/// (`None` when there are none or a record lacks its SOAs).
pub fn condense(entries: &[Entry]) -> Option<Condensed> {
    let first = entries.first()?;
    let last = entries.last()?;
    let old_soa = first.diff.old_soa.clone()?;
    let new_soa = last.diff.new_soa.clone()?;
    let mut removed: BTreeSet<Rr> = BTreeSet::new();
    let mut added: BTreeSet<Rr> = BTreeSet::new();
    for e in entries {
        fold(&mut removed, &mut added, &e.diff);
    }
    Some(Condensed {
        old_soa,
        removed: removed.into_iter().collect(),
        new_soa,
        added: added.into_iter().collect(),
    })
}

/// Add one difference (deletions first, then additions) to the running sets.
fn fold(removed: &mut BTreeSet<Rr>, added: &mut BTreeSet<Rr>, d: &Diff) {
    for r in &d.removed {
        // Added earlier on the way: the client never had it.
        if !added.remove(r) {
            removed.insert(r.clone());
        }
    }
    for r in &d.added {
        // Removed earlier on the way: the client has it already.
        if !removed.remove(r) {
            added.insert(r.clone());
        }
    }
}

impl Condensed {
    /// The serial the client had.
    pub fn from_serial(&self) -> u32 {
        crate::zone::soa_serial(&self.old_soa.rdata)
    }

    /// The serial the client gets.
    pub fn to_serial(&self) -> u32 {
        crate::zone::soa_serial(&self.new_soa.rdata)
    }

    /// Records in the answer (the four SOAs counted).
    pub fn len(&self) -> usize {
        self.removed.len() + self.added.len() + 4
    }

    /// Whether nothing but the SOA changes.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    /// Hand every record of the answer to `f` in order; false from `f` stops (returns false).
    pub fn each_record(&self, f: &mut dyn FnMut(&Rr) -> bool) -> bool {
        f(&self.new_soa)
            && f(&self.old_soa)
            && self.removed.iter().all(&mut *f)
            && f(&self.new_soa)
            && self.added.iter().all(&mut *f)
            && f(&self.new_soa)
    }
}

/// The serial an IXFR request says the client has: the SOA in its authority section.
pub fn client_serial(m: &crate::wire::message::Message, zone: &[u8]) -> Option<u32> {
    m.authority
        .iter()
        .find(|r| r.rtype == Rtype::SOA && crate::name::eq_ignore_case(&r.owner, zone))
        .and_then(|r| crate::serial::soa_serial(&r.rdata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::change::Change;
    use crate::publish::diff::apply_to;

    fn rr(owner: &str, t: Rtype, rd: &[u8]) -> Rr {
        Rr {
            owner: crate::name::from_text(owner, &[0]).unwrap(),
            rtype: t.0,
            ttl: 60,
            rdata: rd.to_vec(),
        }
    }

    fn soa(serial: u32) -> Rr {
        let mut rd = b"\x01a\x00\x01b\x00".to_vec();
        for v in [serial, 1, 2, 3, 4] {
            rd.extend_from_slice(&v.to_be_bytes());
        }
        rr("be.", Rtype::SOA, &rd)
    }

    fn entry(from: u32, to: u32, removed: Vec<Rr>, added: Vec<Rr>) -> Entry {
        Entry {
            id: 1,
            time: 0,
            actor: "t".into(),
            from,
            to,
            change: Change::Resign,
            diff: Diff {
                old_soa: Some(soa(from)),
                removed,
                new_soa: Some(soa(to)),
                added,
            },
        }
    }

    #[test]
    fn changes_undone_on_the_way_cancel_out() {
        let x = rr("x.be.", Rtype::NS, b"\x02ns\x00");
        let y = rr("y.be.", Rtype::NS, b"\x02ns\x00");
        let z = rr("z.be.", Rtype::NS, b"\x02ns\x00");
        let entries = vec![
            // x suppressed (removed), y added.
            entry(1, 2, vec![x.clone()], vec![y.clone()]),
            // x lifted (back), z added, y removed again.
            entry(2, 3, vec![y.clone()], vec![x.clone(), z.clone()]),
        ];
        let c = condense(&entries).unwrap();
        assert_eq!(c.removed, vec![]);
        assert_eq!(c.added, vec![z.clone()]);
        assert_eq!((c.from_serial(), c.to_serial()), (1, 3));
        // Applying it to the old zone gives the new one, like the two steps do.
        let old: BTreeSet<Rr> = [soa(1), x.clone()].into_iter().collect();
        let mut stepwise = old.clone();
        for e in &entries {
            apply_to(&mut stepwise, &e.diff);
        }
        let mut condensed = old;
        apply_to(
            &mut condensed,
            &Diff {
                old_soa: Some(c.old_soa.clone()),
                removed: c.removed.clone(),
                new_soa: Some(c.new_soa.clone()),
                added: c.added.clone(),
            },
        );
        assert_eq!(stepwise, condensed);
        let mut order = Vec::new();
        c.each_record(&mut |r| {
            order.push(r.rtype);
            true
        });
        assert_eq!(order.len(), 5);
        assert!(order[..2].iter().all(|&t| t == Rtype::SOA.0));
        assert_eq!(order[4], Rtype::SOA.0);
    }
}
