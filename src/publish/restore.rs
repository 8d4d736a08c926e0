//! Coming back after a restart: a checkpoint, then the journal's records after it.

use super::*;

impl RemoteUsers {
    /// What one shard contributes, read straight from its NS RRsets (no decode).
    pub(super) fn set_shard_from(
        &mut self,
        id: ShardId,
        sh: &zone::Shard,
        extra: &[Content],
        origin: &[u8],
        ol: usize,
    ) {
        // Straight from the shard's NS RRsets: no copy of the zone is made.
        let served = (0..sh.node_count() as u32)
            .filter(|&n| sh.node(n).flags & zone::DELEGATION != 0)
            .filter_map(|n| {
                let i = sh.rrset_index(n, Rtype::NS)?;
                Some((sh.node_key(n), sh.rdatas(sh.rrset(i))))
            })
            .map(|(k, it)| (k, Box::new(it) as Box<dyn Iterator<Item = &[u8]>>));
        let withheld = extra
            .iter()
            .flat_map(|w| w.iter())
            .filter_map(|(k, sets)| {
                let ns = sets.iter().find(|s| s.rtype == Rtype::NS.0)?;
                Some((k.as_slice(), ns))
            })
            .map(|(k, ns)| {
                (
                    k,
                    Box::new(ns.rdatas.iter().map(|r| r.as_slice()))
                        as Box<dyn Iterator<Item = &[u8]>>,
                )
            });
        self.set_shard_ns(id, served.chain(withheld), origin, ol);
    }
}

impl Publisher {
    /// A publisher for the state a checkpoint restored.
    pub fn from_checkpoint(
        r: checkpoint::Restored,
        settings: Settings,
        sinks: Sinks,
    ) -> Result<Publisher, String> {
        let zone = r.zone;
        let origin = zone.origin().to_vec();
        let ol = zone.origin_labels();
        let h = r.header;
        let withheld = Withheld::from_map(
            ol,
            h.withheld
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect())),
        );
        let mut st = State {
            origin: origin.clone(),
            ol,
            settings,
            list: List::new(),
            expiring: BTreeSet::new(),
            in_force: InForce::new(ol),
            withheld,
            remote: RemoteUsers::default(),
            list_writer: None,
            next_id: h.next_id.max(1),
            sinks,
            recent: std::collections::VecDeque::new(),
            fingerprint: h.fingerprint,
            ixfr_floor: h.ixfr_floor,
            source_serial: h.source_serial,
        };
        st.set_list(
            h.list
                .into_iter()
                .map(|s| (name::key_of(&s.name), s))
                .collect(),
        );
        st.in_force = st.active_keys(h.time);
        st.build_remote(&zone);
        let set = Suppressions::from_entries(
            ol,
            st.in_force
                .iter()
                .filter_map(|k| Some((k.as_slice(), st.effect(st.list.get(k)?)))),
        );
        let snap = Snapshot {
            serial: zone.serial(),
            zone: Arc::new(zone),
            dnssec: r.dnssec.map(Arc::new),
            suppressions: Arc::new(set),
        };
        Ok(Publisher {
            current: ArcSwap::from_pointee(snap),
            state: Mutex::new(st),
            stop: AtomicBool::new(false),
            published: std::sync::atomic::AtomicU64::new(0),
            last_published: std::sync::atomic::AtomicU64::new(0),
            created: now_secs(),
            watch: ArcSwap::from_pointee(crate::watchlist::Lists::default()),
        })
    }

    /// Apply journal records again (at start, after a checkpoint); returns how many.
    pub fn replay(&self, entries: Vec<journal::Entry>) -> Result<usize, String> {
        let mut st = self.lock();
        let mut n = 0;
        for e in entries {
            let cur = self.current.load_full();
            if e.from != cur.serial {
                return Err(format!(
                    "journal record {} goes from serial {}, but serial {} is served",
                    e.id, e.from, cur.serial
                ));
            }
            let hints = hints_from(&e.diff, &st.origin);
            let mode = Mode::Replay {
                time: e.time,
                serial: e.to,
                hints: &hints,
            };
            self.apply_locked(&mut st, e.change.clone(), &e.actor, None, mode)
                .map_err(|x| format!("journal record {} could not be applied again: {x}", e.id))?;
            let now = self.current.load_full();
            if now.serial != e.to {
                return Err(format!(
                    "journal record {} gave serial {} instead of {}",
                    e.id, now.serial, e.to
                ));
            }
            st.next_id = st.next_id.max(e.id + 1);
            n += 1;
        }
        Ok(n)
    }

    /// Write the list file when it does not exist (a first start, or a file deleted
    /// while belfry was stopped): the list in force, under the served serial.
    pub fn write_list_file_if_missing(&self) -> Result<bool, String> {
        let st = self.lock();
        let Some(p) = &st.sinks.list_file else {
            return Ok(false);
        };
        if p.exists() {
            return Ok(false);
        }
        let serial = self.current.load().serial;
        crate::suppress::list::persist_list(p, serial, &st.list)?;
        Ok(true)
    }

    /// Rewrite the list file when its serial is behind the served one (the
    /// journal holds changes the background writer had not written out when the
    /// server stopped). The file replaced is kept as `.prev`. A file at the served
    /// serial (or ahead) is left alone.
    pub fn write_list_file_if_behind(&self) -> Result<Option<u32>, String> {
        let st = self.lock();
        let Some(p) = &st.sinks.list_file else {
            return Ok(None);
        };
        let Ok(text) = std::fs::read_to_string(p) else {
            return Ok(None);
        };
        let Ok(file) = crate::suppress::list::parse(p, &text) else {
            return Ok(None);
        };
        let serial = self.current.load().serial;
        if !serial_after(serial, file.serial) {
            return Ok(None);
        }
        crate::suppress::list::persist_list(p, serial, &st.list)?;
        Ok(Some(file.serial))
    }

    /// Wait until the list file holds the last version handed to its writer.
    pub fn flush_list_file(&self, timeout: std::time::Duration) -> Result<(), String> {
        // Not under the publisher's lock: the writer may take a while.
        let w = self.lock().list_writer.clone();
        w.map_or(Ok(()), |w| w.flush(timeout))
    }

    /// The serial the list file writer last wrote, and its error if the last write failed.
    pub fn list_file_status(&self) -> (Option<u32>, Option<String>) {
        self.lock()
            .list_writer
            .as_ref()
            .map_or((None, None), |w| w.status())
    }

    /// Attach a journal (after a replay from it).
    pub fn set_journal(&self, j: journal::Journal) {
        self.lock().sinks.journal = Some(j);
    }

    /// Record which zone file the source data comes from.
    pub fn set_fingerprint(&self, f: Option<checkpoint::Fingerprint>) {
        self.lock().fingerprint = f;
    }

    /// The zone file the source data comes from.
    pub fn fingerprint(&self) -> Option<checkpoint::Fingerprint> {
        self.lock().fingerprint.clone()
    }

    /// Note that the served version is fully signed (IXFR is served from its serial on).
    pub fn mark_fully_signed(&self) {
        let serial = self.current.load().serial;
        let mut st = self.lock();
        if st.ixfr_floor.is_none() {
            st.ixfr_floor = Some(serial);
        }
    }

    /// The first fully signed serial.
    pub fn ixfr_floor(&self) -> Option<u32> {
        self.lock().ixfr_floor
    }

    /// Write a checkpoint of the served version, then trim the journal to its budget
    /// (keeping what a restart from this checkpoint needs). Returns the serial.
    pub fn checkpoint(&self, path: &std::path::Path, journal_max_age: u64) -> Result<u32, String> {
        let (snap, header) = {
            let st = self.lock();
            let snap = self.current.load_full();
            let header = checkpoint::Header {
                time: now_secs(),
                fingerprint: st.fingerprint.clone(),
                list: st.list.values().cloned().collect(),
                withheld: st
                    .withheld
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.into_iter().collect()))
                    .collect(),
                ixfr_floor: st.ixfr_floor,
                next_id: st.next_id,
                source_serial: st.source_serial,
                ..Default::default()
            };
            (snap, header)
        };
        checkpoint::write(path, &snap, header)?;
        let mut st = self.lock();
        if let Some(j) = st.sinks.journal.as_mut() {
            j.trim(snap.serial, journal_max_age, now_secs())?;
        }
        Ok(snap.serial)
    }

    /// The journal's records from `serial` to the served version (for IXFR).
    pub fn journal_from(&self, serial: u32) -> Result<Option<Vec<journal::Entry>>, String> {
        let st = self.lock();
        match st.sinks.journal.as_ref() {
            Some(j) => j.entries_from(serial),
            None => Ok(None),
        }
    }

    /// Apply a re-sign record again: the SOA moves on, the stored signatures go in.
    pub(super) fn resign_replay(
        &self,
        st: &mut State,
        cur: &Snapshot,
        serial: u32,
        hints: &edit::Hints,
    ) -> Result<Outcome, ChangeError> {
        let d = cur.dnssec.as_deref().ok_or(ChangeError::Unchanged)?;
        let (snap0, _, _) = build_apex(
            st,
            &cur.zone,
            Some(d),
            &cur.suppressions,
            &[],
            serial,
            Some(hints),
        )?;
        let d0 = snap0.dnssec.as_deref().ok_or(ChangeError::Unchanged)?;
        // Zone RRsets: group the hints by shard.
        type Hint = (Vec<u8>, u16, Arc<crate::dnssec::SigSet>);
        let mut by_shard: BTreeMap<ShardId, Vec<Hint>> = BTreeMap::new();
        let apex_key = name::key_of(&st.origin);
        let mut dnskey = None;
        let mut param = None;
        for ((k, t), sig) in &hints.rrsets {
            if *k == apex_key && *t == Rtype::DNSKEY.0 {
                dnskey = Some(sig.clone());
                continue;
            }
            if *k == apex_key && *t == Rtype::NSEC3PARAM.0 {
                param = Some(sig.clone());
                continue;
            }
            by_shard
                .entry(st.shard_of_key(k))
                .or_default()
                .push((k.clone(), *t, sig.clone()));
        }
        let mut shards = Vec::new();
        for (id, list) in by_shard {
            let sh = match id {
                None => snap0.zone.apex_shard(),
                Some(i) => snap0.zone.shard(i),
            };
            let Some(old) = sh.sigs.as_ref() else {
                continue;
            };
            let new = Arc::new(zone::ZShard {
                data: sh.data.clone(),
                sigs: Some(old.copy()),
            });
            for (k, t, sig) in list {
                if let Some(node) = new.data.find(&k) {
                    if let (Some(i), Some(s)) =
                        (new.data.rrset_index(node, Rtype(t)), new.sigs.as_ref())
                    {
                        s.slot(i).store(Some(sig));
                    }
                }
            }
            shards.push((id, new));
        }
        let chain_sigs: Vec<(crate::dnssec::chain::ChainPos, Arc<crate::dnssec::SigSet>)> = hints
            .nsec3
            .iter()
            .filter_map(|(h, s)| d0.chain.find(h).map(|p| (p, s.clone())))
            .collect();
        let chain = if chain_sigs.is_empty() {
            d0.chain.clone()
        } else {
            Arc::new(d0.chain.with_signatures(&st.origin, &chain_sigs))
        };
        let apex = Arc::new(crate::dnssec::ApexSigs {
            dnskey: crate::dnssec::Slot::from(dnskey.or_else(|| d0.apex.dnskey.load_full())),
            nsec3param: crate::dnssec::Slot::from(param.or_else(|| d0.apex.nsec3param.load_full())),
        });
        let zone2 = snap0.zone.with_shards(shards);
        let next = Snapshot {
            serial: zone2.serial(),
            zone: Arc::new(zone2),
            dnssec: Some(Arc::new(Dnssec {
                signer: d0.signer.clone(),
                chain,
                apex,
                nsec3_ttl: d0.nsec3_ttl,
            })),
            suppressions: snap0.suppressions.clone(),
        };
        self.publish(next);
        Ok(Outcome {
            serial,
            ..Default::default()
        })
    }
}

impl State {
    /// Build the cross-shard NS target index of a zone (with what suppressions withhold).
    pub(super) fn build_remote(&mut self, zone: &Zone) {
        self.remote = RemoteUsers::default();
        let all: Vec<ShardId> = std::iter::once(None)
            .chain((0..zone::SHARDS).map(Some))
            .collect();
        self.refresh_remote(zone, &all);
    }
}
