//! Taking incremental transfers from a primary (the signer in front of it).

use super::*;

/// Names being changed: key → (owner wire name, RRsets by type).
type Work = BTreeMap<Vec<u8>, (Vec<u8>, BTreeMap<u16, RecSet>)>;

impl Publisher {
    /// The source data's SOA as the primary gave it (its serial), for IXFR requests;
    /// `None` before anything was taken from a primary.
    pub fn source_soa(&self) -> Option<crate::wire::decode::Record> {
        let st = self.lock();
        let serial = st.source_serial?;
        let snap = self.current.load();
        let soa = snap.zone.soa();
        Some(crate::wire::decode::Record {
            owner: st.origin.clone(),
            rtype: Rtype::SOA,
            class: 1,
            ttl: soa.ttl(),
            rdata: zone::soa_with_serial(soa.rr(0), serial),
        })
    }

    /// Record the primary's serial when its data needed no change.
    pub fn set_source_serial(&self, serial: u32) {
        self.lock().source_serial = Some(serial);
    }

    /// The SOA refresh and retry intervals of the served zone (seconds).
    pub fn source_timers(&self) -> (u64, u64) {
        let snap = self.current.load();
        let r = snap.zone.soa_rdata();
        let n = r.len();
        if n < 20 {
            return (3600, 600);
        }
        let f = |at: usize| u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]) as u64;
        (f(n - 16), f(n - 12))
    }

    /// Apply the difference sequences of an incremental transfer (RFC 1995) as one
    /// change: removed and added records applied in order to the source data.
    pub fn apply_transfer(
        &self,
        new_soa: &crate::wire::decode::Record,
        diffs: &[crate::xfr::client::Diff],
        actor: &str,
    ) -> Result<Outcome, ChangeError> {
        let mut st = self.lock();
        let cur = self.current.load_full();
        let new_serial = zone::soa_serial(&new_soa.rdata);
        // Working copies of the names touched, from the source data.
        let mut work: Work = BTreeMap::new();
        let mut shards: HashMap<ShardId, Content> = HashMap::new();
        let origin = st.origin.clone();
        let mut touch = |owner: &[u8], work: &mut Work| -> Result<Vec<u8>, ChangeError> {
            let lower = name::to_lowercase(owner);
            if !name::is_at_or_below(&lower, &origin) {
                return Err(ChangeError::BadInput(format!(
                    "{} is outside the zone",
                    name::to_text(&lower)
                )));
            }
            let key = name::key_of(&lower);
            if !work.contains_key(&key) {
                let id = st.shard_of_key(&key);
                let c = shards.entry(id).or_insert_with(|| st.source(&cur.zone, id));
                let sets = c
                    .get(&key)
                    .map(|v| v.iter().map(|s| (s.rtype, s.clone())).collect())
                    .unwrap_or_default();
                work.insert(key.clone(), (lower, sets));
            }
            Ok(key)
        };
        for d in diffs {
            for r in &d.removed {
                let k = touch(&r.owner, &mut work)?;
                if let Some((_, sets)) = work.get_mut(&k) {
                    if let Some(s) = sets.get_mut(&r.rtype.0) {
                        s.rdatas
                            .retain(|x| !crate::wire::message::rdata_eq(r.rtype, x, &r.rdata));
                        if s.rdatas.is_empty() {
                            sets.remove(&r.rtype.0);
                        }
                    }
                }
            }
            for r in &d.added {
                let k = touch(&r.owner, &mut work)?;
                if let Some((_, sets)) = work.get_mut(&k) {
                    RecSet::add_to(sets, r.rtype, r.ttl, &r.rdata);
                }
            }
        }
        // The primary's SOA (its timers and names) becomes the source SOA; the
        // served serial stays the publisher's.
        let apex = name::key_of(&origin);
        let k = touch(&origin, &mut work)?;
        debug_assert_eq!(k, apex);
        if let Some((_, sets)) = work.get_mut(&apex) {
            sets.insert(
                Rtype::SOA.0,
                RecSet {
                    rtype: Rtype::SOA.0,
                    ttl: new_soa.ttl,
                    rdatas: vec![new_soa.rdata.clone()],
                },
            );
        }
        let edits: Vec<NameEdit> = work
            .into_values()
            .map(|(owner, sets)| NameEdit {
                name: owner,
                sets: sets.into_values().collect(),
                replace_all: true,
            })
            .collect();
        let names = edits.len();
        let change = Change::Edit {
            edits,
            source: EditSource::Transfer,
            source_serial: Some(new_serial),
            force: false,
            fingerprint: None,
        };
        let id = st.next_id;
        let r = self.apply_locked(&mut st, change, actor, None, Mode::Live);
        if !matches!(r, Err(ChangeError::Unchanged)) {
            st.recent
                .push_back((id, r.clone().map_err(|e| e.to_string())));
            if st.recent.len() > RECENT {
                st.recent.pop_front();
            }
        }
        if matches!(r, Err(ChangeError::Unchanged)) {
            st.source_serial = Some(new_serial);
        }
        r.map(|mut o| {
            o.names_changed = names;
            o
        })
    }
}
