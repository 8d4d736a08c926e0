//! Taking a whole new version of the zone: a reloaded zone file or a full transfer.
//!
//! The new zone has been loaded and checked like at start-up (off the query
//! path). Here it is compared with the source data shard by shard — a shard
//! equal in both is skipped after one comparison of its arrays, so a change of
//! a thousand delegations touches about a thousand shards of the 4,096 — and
//! the differing names become one [`Change::Edit`] for the publisher: the same
//! path as every change (checked, signed, journaled, served in one swap), with
//! the signatures of everything that did not change carried over.
//!
//! A registry halts publication on an abnormal change: a new zone that removes
//! more than a configured share of the delegations is refused unless forced.

use super::change::{Change, ChangeError, EditSource, NameEdit, Outcome};
use super::edit::{decode, node_sets, Content};
use super::{Mode, Publisher, State};
use crate::name;
use crate::wire::Rtype;
use crate::zone::{self, Shard, Zone};

/// How a new zone is taken.
#[derive(Clone, Debug)]
pub struct ReloadOptions {
    /// Where it comes from (a reload or a transfer).
    pub source: EditSource,
    /// Apply even when more than `max_removed_share` of the delegations go.
    pub force: bool,
    /// Largest share of delegations a new zone may remove without `force` (0.0–1.0).
    pub max_removed_share: f64,
    /// The zone file's fingerprint (recorded as the source of the data).
    pub fingerprint: Option<super::checkpoint::Fingerprint>,
}

/// The differences of two versions of a shard with nothing withheld, as name
/// edits (the same as [`diff_content`] of their decoded contents, without
/// decoding the names that did not change); counts delegations removed.
fn diff_shards(
    old: &Shard,
    new: &Shard,
    ol: usize,
    edits: &mut Vec<NameEdit>,
    removed: &mut usize,
) {
    let is_deleg = |sh: &Shard, n: u32| {
        sh.node_key(n).iter().filter(|&&b| b == 0).count() > ol
            && sh.rrsets(n).iter().any(|s| s.rtype == Rtype::NS)
    };
    let (on, nn) = (old.node_count() as u32, new.node_count() as u32);
    let (mut i, mut j) = (0u32, 0u32);
    while i < on || j < nn {
        let ok = (i < on).then(|| old.node_key(i));
        let nk = (j < nn).then(|| new.node_key(j));
        let (key, in_old, in_new) = match (ok, nk) {
            (Some(x), Some(y)) if x == y => (x, Some(i), Some(j)),
            (Some(x), Some(y)) if x < y => (x, Some(i), None),
            (Some(x), None) => (x, Some(i), None),
            (_, y) => (y.unwrap_or_default(), None, Some(j)),
        };
        i += u32::from(in_old.is_some());
        j += u32::from(in_new.is_some());
        let changed = match (in_old, in_new) {
            (Some(o), Some(n)) => !old.same_rrsets(o, new, n),
            (Some(o), None) => !old.rrsets(o).is_empty(),
            (None, Some(n)) => !new.rrsets(n).is_empty(),
            (None, None) => false,
        };
        if !changed {
            continue;
        }
        let was = in_old.is_some_and(|o| is_deleg(old, o));
        if was && !in_new.is_some_and(|n| is_deleg(new, n)) {
            *removed += 1;
        }
        edits.push(NameEdit {
            name: zone::key_to_wire(key),
            sets: in_new.map(|n| node_sets(new, n)).unwrap_or_default(),
            replace_all: true,
        });
    }
}

/// The differences of one shard as name edits; counts delegations removed.
fn diff_content(
    old: &Content,
    new: &Content,
    ol: usize,
    edits: &mut Vec<NameEdit>,
    removed: &mut usize,
) {
    let is_deleg = |k: &[u8], sets: &[super::edit::RecSet]| {
        k.iter().filter(|&&b| b == 0).count() > ol && sets.iter().any(|s| s.rtype == Rtype::NS.0)
    };
    for (k, sets) in old {
        match new.get(k) {
            None => {
                if is_deleg(k, sets) {
                    *removed += 1;
                }
                edits.push(NameEdit {
                    name: zone::key_to_wire(k),
                    sets: Vec::new(),
                    replace_all: true,
                });
            }
            Some(n) if n != sets => {
                if is_deleg(k, sets) && !is_deleg(k, n) {
                    *removed += 1;
                }
                edits.push(NameEdit {
                    name: zone::key_to_wire(k),
                    sets: n.clone(),
                    replace_all: true,
                });
            }
            Some(_) => {}
        }
    }
    for (k, sets) in new {
        if !old.contains_key(k) {
            edits.push(NameEdit {
                name: zone::key_to_wire(k),
                sets: sets.clone(),
                replace_all: true,
            });
        }
    }
}

impl Publisher {
    /// Take a whole new zone (loaded and checked); returns what was published, or
    /// why nothing was (a check, the safety threshold, or no difference at all).
    pub fn reload(
        &self,
        new: Zone,
        opts: ReloadOptions,
        actor: &str,
    ) -> Result<Outcome, ChangeError> {
        let mut st = self.lock();
        let cur = self.current.load_full();
        if new.origin() != cur.zone.origin() {
            return Err(ChangeError::BadInput(format!(
                "the new zone is {}, not {}",
                name::to_text(new.origin()),
                name::to_text(cur.zone.origin())
            )));
        }
        let started = std::time::Instant::now();
        let ol = st.ol;
        let mut edits = Vec::new();
        let mut removed = 0usize;
        let total = cur.zone.stats().delegations + st.withheld.delegations();
        for id in std::iter::once(None).chain((0..zone::SHARDS).map(Some)) {
            let (old, fresh) = match id {
                None => (cur.zone.apex_shard(), new.apex_shard()),
                Some(i) => (cur.zone.shard(i), new.shard(i)),
            };
            // Without suppressed domains, the served shard is the source data.
            if id.is_some() && st.withheld.shard_is_empty(id) {
                if !old.data.identical(&fresh.data) {
                    diff_shards(&old.data, &fresh.data, ol, &mut edits, &mut removed);
                }
                continue;
            }
            let src = st.source(&cur.zone, id);
            let mut next = decode(&fresh.data);
            if id.is_none() {
                // The SOA serial is the publisher's to set; compare the rest.
                let apex = name::key_of(new.origin());
                if let (Some(a), Some(b)) = (src.get(&apex), next.get_mut(&apex)) {
                    if let (Some(x), Some(y)) = (
                        a.iter().find(|s| s.rtype == Rtype::SOA.0),
                        b.iter_mut().find(|s| s.rtype == Rtype::SOA.0),
                    ) {
                        if x.ttl == y.ttl && !x.rdatas.is_empty() && !y.rdatas.is_empty() {
                            let served = zone::soa_serial(&x.rdatas[0]);
                            let same_but_serial =
                                zone::soa_with_serial(&y.rdatas[0], served) == x.rdatas[0];
                            if same_but_serial {
                                y.rdatas[0] = x.rdatas[0].clone();
                            }
                        }
                    }
                }
            }
            diff_content(&src, &next, ol, &mut edits, &mut removed);
        }
        if edits.is_empty() {
            return Err(ChangeError::Unchanged);
        }
        if !opts.force && total > 0 && removed as f64 > opts.max_removed_share * total as f64 {
            return Err(ChangeError::Unsafe(format!(
                "the new zone removes {removed} of {total} delegations ({:.1} %), more than the {:.1} % allowed; \
                 check it, then reload with force",
                100.0 * removed as f64 / total as f64,
                100.0 * opts.max_removed_share
            )));
        }
        let new_serial = new.serial();
        let mut notes = Vec::new();
        if !super::serial_after(new_serial, cur.serial) {
            notes.push(format!(
                "the new zone's serial {new_serial} is not ahead of the served {}; the next serial is used",
                cur.serial
            ));
        }
        // Suppressed domains the new zone no longer delegates: reported, still listed.
        for (k, s) in &st.list {
            if st.in_force.contains(k) {
                let still = new
                    .find_name(&s.name)
                    .is_some_and(|n| n.flags() & zone::DELEGATION != 0);
                let was = st.withheld.contains_key(k);
                if was && !still {
                    notes.push(format!(
                        "{} is suppressed but the new zone no longer delegates it",
                        name::to_text(&s.name)
                    ));
                }
            }
        }
        // The new zone has said all it had to: its memory goes back before the
        // next version is built (a reload's peak is both zones at once).
        drop(new);
        let names = edits.len();
        tracing::debug!(
            "reload: {names} names differ, found in {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        let change = Change::Edit {
            edits,
            source: opts.source,
            source_serial: Some(new_serial),
            force: opts.force,
            fingerprint: opts.fingerprint.clone(),
        };
        let id = st.next_id;
        let r = self.apply_locked(&mut st, change, actor, None, Mode::Live);
        record_outcome(&mut st, id, &r);
        r.map(|mut o| {
            o.names_changed = names;
            o.notes.extend(notes);
            o
        })
    }
}

fn record_outcome(st: &mut State, id: u64, r: &Result<Outcome, ChangeError>) {
    if !matches!(r, Err(ChangeError::Unchanged)) {
        st.recent
            .push_back((id, r.clone().map_err(|e| e.to_string())));
        if st.recent.len() > super::RECENT {
            st.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::edit::{build_shard, Content, RecSet};
    use crate::zone::shard::NoContext;

    fn content(names: &[(&str, u16, &[&[u8]])]) -> Content {
        let mut c = Content::new();
        for &(n, t, rdatas) in names {
            let key = name::key_of(&name::from_text(n, &[0]).unwrap());
            let sets: &mut Vec<RecSet> = c.entry(key).or_default();
            sets.push(RecSet {
                rtype: t,
                ttl: 3600,
                rdatas: rdatas.iter().map(|r| r.to_vec()).collect(),
            });
            sets.sort_by_key(|s| s.rtype);
        }
        c
    }

    #[test]
    fn a_walk_of_two_shards_finds_what_decoding_them_finds() {
        let ns = |t: &str| name::from_text(t, &[0]).unwrap();
        let (ns1, ns2) = (ns("ns1.example."), ns("ns2.example."));
        let (a, b) = (&[192u8, 0, 2, 1][..], &[192u8, 0, 2, 2][..]);
        let old = content(&[
            ("same.be.", 2, &[&ns1, &ns2]),
            ("gone.be.", 2, &[&ns1]),
            ("gone.be.", 43, &[b"\x00\x01\x0d\x02\xaa"]),
            ("renamed-ns.be.", 2, &[&ns1]),
            ("now-txt.be.", 2, &[&ns1]),
            ("ttl.be.", 16, &[b"\x01x"]),
            ("host.deep.be.", 1, &[a]),
            ("glue.be.", 2, &[&ns("ns.glue.be.")]),
            ("ns.glue.be.", 1, &[a]),
        ]);
        let mut new = content(&[
            ("same.be.", 2, &[&ns1, &ns2]),
            ("renamed-ns.be.", 2, &[&ns2]),
            ("now-txt.be.", 16, &[b"\x01t"]),
            ("ttl.be.", 16, &[b"\x01x"]),
            ("deeper.host.deep.be.", 1, &[a]),
            ("added.be.", 2, &[&ns1]),
            ("added.be.", 43, &[b"\x00\x02\x0d\x02\xbb"]),
            ("glue.be.", 2, &[&ns("ns.glue.be.")]),
            ("ns.glue.be.", 1, &[b]),
        ]);
        new.get_mut(&name::key_of(&ns("ttl.be."))).unwrap()[0].ttl = 60;
        let o = build_shard(&old, Some(0), b"\x02be\x00", 1, &NoContext).unwrap();
        let n = build_shard(&new, Some(0), b"\x02be\x00", 1, &NoContext).unwrap();
        let (mut by_walk, mut by_decode) = (Vec::new(), Vec::new());
        let (mut removed_walk, mut removed_decode) = (0, 0);
        diff_shards(&o, &n, 1, &mut by_walk, &mut removed_walk);
        diff_content(
            &decode(&o),
            &decode(&n),
            1,
            &mut by_decode,
            &mut removed_decode,
        );
        let key = |e: &NameEdit| (e.name.clone(), e.sets.clone(), e.replace_all);
        let mut w: Vec<_> = by_walk.iter().map(key).collect();
        let mut d: Vec<_> = by_decode.iter().map(key).collect();
        w.sort_by(|x, y| x.0.cmp(&y.0));
        d.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(w, d);
        let mut names: Vec<String> = w.iter().map(|e| name::to_text(&e.0)).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "added.be.",
                "deeper.host.deep.be.",
                "gone.be.",
                "host.deep.be.",
                "now-txt.be.",
                "ns.glue.be.",
                "renamed-ns.be.",
                "ttl.be."
            ]
        );
        // gone.be. and now-txt.be. stop being delegations.
        assert_eq!((removed_walk, removed_decode), (2, 2));
        // Nothing differs between a shard and itself, whichever its layout.
        let (mut none, mut r) = (Vec::new(), 0);
        diff_shards(&o, &o, 1, &mut none, &mut r);
        assert!(none.is_empty() && r == 0);
    }
}
