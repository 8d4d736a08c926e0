//! RFC 2136 dynamic updates, applied against the source data.

use super::*;

impl Publisher {
    /// Apply an RFC 2136 dynamic update: prerequisites are checked and the
    /// operations applied against the source data (what suppressions withhold
    /// included), then the result goes through the same path as every change.
    /// NOERROR only once the change is served; any refusal changes nothing.
    pub fn update(
        &self,
        req: &crate::update::UpdateRequest,
        actor: &str,
        deadline: Option<Instant>,
    ) -> Result<Outcome, crate::update::UpdateError> {
        use crate::update::UpdateError;
        use crate::wire::decode::Record;
        use crate::wire::Rcode;
        let refused = |rcode: Rcode, reason: String| UpdateError { rcode, reason };
        let mut st = self.lock();
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(refused(Rcode::SERVFAIL, "the deadline passed first".into()));
        }
        let cur = self.current.load_full();
        // Source content of the shards the update touches, read once.
        let cache: std::cell::RefCell<HashMap<ShardId, Content>> = Default::default();
        let view = |name: &[u8]| -> Vec<Record> {
            let lower = name::to_lowercase(name);
            if !name::is_at_or_below(&lower, &st.origin) {
                return Vec::new();
            }
            let key = name::key_of(&lower);
            let id = st.shard_of_key(&key);
            let mut c = cache.borrow_mut();
            let content = c.entry(id).or_insert_with(|| st.source(&cur.zone, id));
            content
                .get(&key)
                .map(|sets| {
                    sets.iter()
                        .flat_map(|s| {
                            s.rdatas.iter().map(|r| Record {
                                owner: lower.clone(),
                                rtype: Rtype(s.rtype),
                                class: 1,
                                ttl: s.ttl,
                                rdata: r.clone(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let changes = crate::update::process(req, &view)?;
        if changes.is_empty() {
            // RFC 2136 §3.4.2.7: nothing to do is still NOERROR.
            return Ok(Outcome {
                serial: cur.serial,
                ..Default::default()
            });
        }
        // The new RRsets of every name touched.
        let mut touched: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for r in changes.removed.iter().chain(changes.added.iter()) {
            let lower = name::to_lowercase(&r.owner);
            touched.insert(name::key_of(&lower), lower);
        }
        let mut edits = Vec::new();
        for (_, owner) in touched {
            let mut sets: BTreeMap<u16, RecSet> =
                view(&owner).into_iter().fold(BTreeMap::new(), |mut m, r| {
                    let e = m.entry(r.rtype.0).or_insert_with(|| RecSet {
                        rtype: r.rtype.0,
                        ttl: r.ttl,
                        rdatas: Vec::new(),
                    });
                    e.rdatas.push(r.rdata);
                    m
                });
            for r in changes
                .removed
                .iter()
                .filter(|r| name::eq_ignore_case(&r.owner, &owner))
            {
                if let Some(s) = sets.get_mut(&r.rtype.0) {
                    s.rdatas
                        .retain(|x| !crate::wire::message::rdata_eq(r.rtype, x, &r.rdata));
                }
            }
            for r in changes
                .added
                .iter()
                .filter(|r| name::eq_ignore_case(&r.owner, &owner))
            {
                // RFC 2181 §5.2: one TTL per RRset; the update's TTL wins.
                RecSet::add_to(&mut sets, r.rtype, r.ttl, &r.rdata);
            }
            edits.push(NameEdit {
                name: owner,
                sets: sets
                    .into_values()
                    .filter(|s| !s.rdatas.is_empty())
                    .collect(),
                replace_all: true,
            });
        }
        drop(cache);
        let source_serial = changes
            .new_soa()
            .map(|r| zone::soa_serial(&r.rdata))
            .filter(|s| serial_after(*s, cur.serial));
        let change = Change::Edit {
            edits,
            source: EditSource::Update,
            source_serial,
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
        match r {
            Ok(o) => Ok(o),
            Err(ChangeError::Unchanged) => Ok(Outcome {
                serial: cur.serial,
                ..Default::default()
            }),
            Err(ChangeError::Check(m))
            | Err(ChangeError::BadInput(m))
            | Err(ChangeError::Unsafe(m)) => Err(refused(Rcode::REFUSED, m)),
            Err(e) => Err(refused(Rcode::SERVFAIL, e.to_string())),
        }
    }
}
