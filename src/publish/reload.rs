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
use super::edit::{decode, Content};
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

/// Whether two shards hold the same names with the same RRsets (byte for byte).
fn same_shard(a: &Shard, b: &Shard) -> bool {
    if a.node_count() != b.node_count() || a.rrset_count() != b.rrset_count() {
        return false;
    }
    for n in 0..a.node_count() as u32 {
        if a.node_key(n) != b.node_key(n) {
            return false;
        }
        let (x, y) = (a.rrsets(n), b.rrsets(n));
        if x.len() != y.len() {
            return false;
        }
        for (s, t) in x.iter().zip(y) {
            if s.rtype != t.rtype
                || s.ttl != t.ttl
                || s.count != t.count
                || !a.rdatas(s).eq(b.rdatas(t))
            {
                return false;
            }
        }
    }
    true
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
            if id.is_some() && st.withheld.shard_is_empty(id) && same_shard(&old.data, &fresh.data)
            {
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
