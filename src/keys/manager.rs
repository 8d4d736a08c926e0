//! The key manager: rollovers carried out in the running server.
//!
//! Owns the zone's key states while belfry runs ([`super::state`] on disk),
//! asks [`crate::dnssec::lifecycle::plan`] what is due, makes the keys a step
//! needs ([`super::generate_unique`]), and carries the step out: a step that
//! changes what is served goes to the publisher as a
//! [`KeyChange::SetKeys`] (journaled, then served), and only then are the new
//! states written to disk; a step that changes nothing served (a key became
//! ready, a DS was confirmed) is written to disk alone. After a new key set,
//! the RRsets whose signatures no longer match are re-signed by
//! [`KeyChange::Resign`] changes of `resign_batch` RRsets, `resign_pause_ms`
//! apart, and the times at which a key came to cover every RRset (or to cover
//! none) are recorded — the rollovers wait for them.
//!
//! A crash between the publisher's change and the write of the states is
//! repaired at the next start ([`KeyManager::start`]): the journal's key set
//! is what is served, and the states on disk are brought forward to it.
//!
//! It never touches the query path; it runs on the maintenance thread, and on
//! the admin API's blocking threads for the operator's requests.

use super::state;
use crate::config::Config;
use crate::dnssec::key::{Algorithm, KeyRole};
use crate::dnssec::lifecycle::{
    self, Action, Facts, KeyRecord, KeySet, KeyState, RollRequest, Start, Step, Timing,
};
use crate::publish::change::{Change, ChangeError};
use crate::publish::keys::{coverage, KeyChange};
use crate::publish::Publisher;
use crate::suppress::proto::{KeyStatus, KeyView, NextStep};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable of the crash test seam: `after-change` makes the
/// server abort right after a key step is journaled and served, before the key
/// states are written (what a kill -9 at that moment leaves).
pub const CRASH_ENV: &str = "BELFRY_TEST_KEY_CRASH";

/// The key manager of one zone.
pub struct KeyManager {
    dir: PathBuf,
    zone: String,
    origin: Vec<u8>,
    timing: Timing,
    cds_ttl: Option<u32>,
    batch: u32,
    pause: Duration,
    crash_after_change: bool,
    records: Vec<KeyRecord>,
    /// The signer (by address) and serial the last scan looked at.
    scanned: Option<(usize, u32)>,
    resign_left: u64,
    next_resign: Instant,
    /// The serial whose largest TTL `timing` holds.
    max_ttl_of: Option<u32>,
    last_error: Option<String>,
}

fn now() -> u64 {
    crate::dnssec::tick() as u64
}

/// The largest TTL of any signed RRset of a version (NSEC3 records included).
/// Each shard knows its own largest, so this reads one number per shard.
pub fn zone_max_ttl(snap: &crate::handler::Snapshot) -> u64 {
    let zone = &*snap.zone;
    let mut max = 0u32;
    for zs in std::iter::once(zone.apex_shard()).chain(zone.shards().iter()) {
        max = max.max(zs.data.max_signed_ttl());
    }
    if let Some(d) = snap.dnssec.as_deref() {
        max = max.max(d.nsec3_ttl).max(d.signer.policy().dnskey_ttl);
    }
    max as u64
}

impl KeyManager {
    /// The manager for a configuration, once the publisher serves the version the
    /// journal left (`None` when keys are static or the zone unsigned). Brings the
    /// key states on disk forward to what is served, and writes them when the key
    /// directory had none yet.
    pub fn start(cfg: &Config, p: &Publisher) -> Result<Option<KeyManager>, String> {
        if !cfg.dnssec.enabled || !cfg.dnssec.keys.is_empty() {
            return Ok(None);
        }
        let snap = p.snapshot_full();
        let Some(d) = snap.dnssec.as_deref() else {
            return Ok(None);
        };
        let Some(served) = d.signer.keyset().cloned() else {
            return Ok(None);
        };
        let dir = cfg.dnssec.key_dir.clone();
        let zone = cfg.zone.origin.clone();
        let keys = state::load(&dir, &zone)?;
        let mut records = keys.records;
        let disk = KeySet {
            records: records.clone(),
            cds_ttl: served.cds_ttl,
        };
        let mut write = !keys.from_file;
        if !disk.same_zone(&served) {
            tracing::warn!(
                "key states in {} were behind what is served (a stop during a key step): \
                 brought forward to the journal's key set",
                state::path(&dir, &zone).display()
            );
            for r in &served.records {
                match records
                    .iter_mut()
                    .find(|x| x.tag == r.tag && x.algorithm == r.algorithm)
                {
                    Some(x) => *x = r.clone(),
                    None => records.push(r.clone()),
                }
            }
            write = true;
        }
        let t = now();
        if !keys.from_file {
            for r in records.iter_mut().filter(|r| r.state == KeyState::Active) {
                // Managed from now on: a lifetime counts from the first start.
                r.times.published.get_or_insert(t);
                r.times.ready.get_or_insert(t);
                r.times.active.get_or_insert(t);
                if r.is_ksk() {
                    r.times.ds_seen.get_or_insert(t);
                }
            }
        }
        if write {
            state::save(&dir, &zone, &records)?;
            tracing::info!(
                "key states written to {}",
                state::path(&dir, &zone).display()
            );
        }
        let crash_after_change = std::env::var(CRASH_ENV).ok().as_deref() == Some("after-change");
        if crash_after_change {
            tracing::warn!(
                "TEST SEAM ({CRASH_ENV}=after-change): belfry aborts after every key step it \
                 publishes, before writing the key states"
            );
        }
        let dn = &cfg.dnssec;
        Ok(Some(KeyManager {
            dir,
            zone,
            origin: cfg.origin_wire(),
            timing: Timing {
                propagation: dn.propagation_delay as u64,
                dnskey_ttl: dn.dnskey_ttl as u64,
                zone_max_ttl: zone_max_ttl(&snap),
                validity: dn.validity as u64 + dn.jitter as u64,
                parent_ds_ttl: dn.parent_ds_ttl as u64,
                parent_propagation: dn.parent_propagation_delay as u64,
                zsk_lifetime: dn.zsk_lifetime,
                ksk_method: dn.ksk_rollover,
            },
            cds_ttl: served.cds_ttl,
            batch: dn.resign_batch,
            pause: Duration::from_millis(dn.resign_pause_ms),
            crash_after_change,
            records,
            scanned: None,
            resign_left: 0,
            next_resign: Instant::now(),
            max_ttl_of: None,
            last_error: None,
        }))
    }

    fn set(&self, records: Vec<KeyRecord>) -> KeySet {
        KeySet {
            records,
            cds_ttl: self.cds_ttl,
        }
    }

    /// The key states as the manager holds them (what is on disk).
    pub fn records(&self) -> &[KeyRecord] {
        &self.records
    }

    fn save(&mut self, records: Vec<KeyRecord>) -> Result<(), String> {
        if records != self.records {
            state::save(&self.dir, &self.zone, &records)?;
            self.records = records;
        }
        Ok(())
    }

    /// Carry a step out: through the publisher when the served zone changes, then on disk.
    fn execute(&mut self, p: &Publisher, step: Step, actor: &str) -> Result<String, String> {
        self.execute_inner(p, step, actor, false)
    }

    /// [`Self::execute`], through the publisher even when the key set serves the same DNSKEYs.
    fn execute_forced(&mut self, p: &Publisher, step: Step, actor: &str) -> Result<String, String> {
        self.execute_inner(p, step, actor, true)
    }

    fn execute_inner(
        &mut self,
        p: &Publisher,
        step: Step,
        actor: &str,
        force: bool,
    ) -> Result<String, String> {
        let next = self.set(step.records.clone());
        let snap = p.snapshot_full();
        let served_same = snap
            .dnssec
            .as_ref()
            .and_then(|d| d.signer.keyset().map(|s| s.same_zone(&next)))
            .unwrap_or(false)
            && !crate::publish::keys::cds_differs(&snap, &next);
        if force || !served_same {
            let change = Change::Keys(KeyChange::SetKeys {
                set: next,
                what: step.what.clone(),
            });
            match p.apply(change, actor, None) {
                Ok(o) => tracing::info!("keys: {} (serial {})", step.what, o.serial),
                Err(ChangeError::Unchanged) => {}
                Err(e) => return Err(e.to_string()),
            }
            if self.crash_after_change {
                tracing::error!("{CRASH_ENV}: aborting before the key states are written");
                std::process::abort();
            }
            // The keys changed: look at the signatures again.
            self.scanned = None;
        } else {
            tracing::info!("keys: {}", step.what);
        }
        self.save(step.records)?;
        if self.scanned.is_none() {
            // Now, not at the next tick: until then the status would still show the count of
            // signatures to redo from before the step (often none), and a rollover would look
            // finished while the old algorithm's signatures are still served.
            self.scan(p)?;
        }
        self.last_error = None;
        Ok(step.what)
    }

    /// Make a key for a step (never with a tag already in the directory).
    fn generate(&mut self, role: KeyRole, alg: u8) -> Result<(), String> {
        let a = Algorithm::from_number(alg)
            .ok_or_else(|| format!("algorithm {alg} is not supported"))?;
        let t = now();
        let (k, files, _) = super::generate_unique(&self.dir, &self.zone, a, role, t)?;
        tracing::info!(
            "keys: made {} {} key {} for the next rollover step",
            role.name(),
            a.name(),
            files.base
        );
        let mut records = self.records.clone();
        records.push(KeyRecord {
            base: files.base,
            tag: k.key_tag(),
            algorithm: alg,
            role,
            dnskey: k.dnskey_rdata().to_vec(),
            state: KeyState::Generated,
            ds: lifecycle::DsState::None,
            times: lifecycle::KeyTimes {
                created: Some(t),
                ..Default::default()
            },
        });
        self.save(records)
    }

    /// Look at the served signatures when something changed: what is left to re-sign,
    /// and since when each key covers every RRset (or none).
    fn scan(&mut self, p: &Publisher) -> Result<(), String> {
        let snap = p.snapshot_full();
        let Some(d) = snap.dnssec.as_deref() else {
            return Ok(());
        };
        let key = (Arc::as_ptr(&d.signer) as usize, snap.serial);
        if self.scanned == Some(key) {
            return Ok(());
        }
        let stale = match self.scanned {
            None => true,
            Some((ptr, _)) => ptr != key.0 || self.resign_left > 0 || self.awaiting_facts(),
        };
        if !stale {
            self.scanned = Some(key);
            return Ok(());
        }
        let c = coverage(&snap);
        self.scanned = Some(key);
        self.resign_left = c.mismatched;
        let t = now();
        let mut records = self.records.clone();
        for r in records.iter_mut() {
            let signs_k = r.signs_dnskey();
            let signs_z = r.signs_zone();
            if signs_k || signs_z {
                let all = (!signs_k || c.covers(r.tag, r.algorithm, true))
                    && (!signs_z || c.covers(r.tag, r.algorithm, false));
                if all && c.mismatched == 0 && r.times.covered.is_none() {
                    r.times.covered = Some(t);
                }
            } else if Self::stopped(r) && r.times.unused.is_none() && !c.uses(r.tag, r.algorithm) {
                r.times.unused = Some(t);
            }
        }
        self.save(records)
    }

    /// A key that signed and no longer does.
    fn stopped(r: &KeyRecord) -> bool {
        !r.signs()
            && matches!(
                r.state,
                KeyState::Retired | KeyState::PostActive | KeyState::Removed
            )
    }

    /// Whether a key waits for a fact only a scan gives.
    fn awaiting_facts(&self) -> bool {
        self.records.iter().any(|r| {
            (r.signs() && r.times.covered.is_none())
                || (Self::stopped(r) && r.times.unused.is_none())
        })
    }

    fn refresh_timing(&mut self, p: &Publisher) {
        let snap = p.snapshot();
        if self.max_ttl_of != Some(snap.serial) {
            self.timing.zone_max_ttl = zone_max_ttl(&snap);
            self.max_ttl_of = Some(snap.serial);
        }
    }

    /// One round of background work: re-sign a batch, or carry out what is due.
    pub fn tick(&mut self, p: &Publisher) {
        if let Err(e) = self.tick_inner(p) {
            if self.last_error.as_deref() != Some(e.as_str()) {
                tracing::error!("keys: {e}");
            }
            self.last_error = Some(e);
        }
    }

    fn tick_inner(&mut self, p: &Publisher) -> Result<(), String> {
        self.refresh_timing(p);
        self.scan(p)?;
        if self.resign_left > 0 {
            if Instant::now() < self.next_resign {
                return Ok(());
            }
            let change = Change::Keys(KeyChange::Resign { limit: self.batch });
            match p.apply(change, "belfry-keys", None) {
                Ok(o) => tracing::info!(
                    "keys: re-signed {} RRsets for the key set ({} made, serial {}; about {} left)",
                    self.resign_left.min(self.batch as u64),
                    o.signatures,
                    o.serial,
                    self.resign_left.saturating_sub(self.batch as u64)
                ),
                Err(ChangeError::Unchanged) => self.resign_left = 0,
                Err(e) => return Err(format!("re-signing for the key set failed: {e}")),
            }
            self.next_resign = Instant::now() + self.pause;
            return Ok(());
        }
        if self.cds_ttl.is_some() {
            let set = self.set(self.records.clone());
            if crate::publish::keys::cds_differs(&p.snapshot(), &set) {
                let step = Step {
                    records: self.records.clone(),
                    what: "publish CDS and CDNSKEY for the DS the parent should hold".into(),
                };
                self.execute_forced(p, step, "belfry-keys")?;
                return Ok(());
            }
        }
        for _ in 0..4 {
            let facts = Facts {
                now: now(),
                resign_left: self.resign_left,
            };
            match lifecycle::plan(&self.records, &self.timing, &facts).action {
                Action::Wait => return Ok(()),
                Action::Generate { role, algorithm } => self.generate(role, algorithm)?,
                Action::Step(step) => {
                    self.execute(p, step, "belfry-keys")?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Start a rollover the operator asked for.
    pub fn roll(&mut self, p: &Publisher, req: RollRequest, actor: &str) -> Result<String, String> {
        self.refresh_timing(p);
        for _ in 0..4 {
            match lifecycle::start(&self.records, req, &self.timing, now())? {
                Start::Need(role, alg) => self.generate(role, alg)?,
                Start::Step(step) => return self.execute(p, step, actor),
            }
        }
        Err("could not make the keys the rollover needs".into())
    }

    /// The operator confirms the parent's DS RRset is what `status` asked for.
    pub fn ds_seen(&mut self, p: &Publisher, actor: &str) -> Result<String, String> {
        let step = lifecycle::ds_seen(&self.records, now())?;
        self.execute(p, step, actor)
    }

    /// What `belfry key status` shows.
    pub fn status(&self, p: &Publisher) -> KeyStatus {
        let t = now();
        let fmt = crate::suppress::list::format_time;
        let snap = p.snapshot();
        let served: Vec<Vec<u8>> = snap
            .dnssec
            .as_ref()
            .map(|d| d.signer.dnskeys().to_vec())
            .unwrap_or_default();
        let keys = self
            .records
            .iter()
            .map(|r| {
                let mut times = std::collections::BTreeMap::new();
                let tt = &r.times;
                for (n, v) in [
                    ("created", tt.created),
                    ("published", tt.published),
                    ("ready", tt.ready),
                    ("active", tt.active),
                    ("retired", tt.retired),
                    ("removed", tt.removed),
                    ("covered", tt.covered),
                    ("unused", tt.unused),
                    ("ds_submit", tt.ds_submit),
                    ("ds_seen", tt.ds_seen),
                    ("ds_withdraw", tt.ds_withdraw),
                    ("ds_withdrawn", tt.ds_withdrawn),
                ] {
                    if let Some(v) = v {
                        times.insert(n.to_string(), fmt(v));
                    }
                }
                KeyView {
                    base: r.base.clone(),
                    tag: r.tag,
                    role: r.role.name().into(),
                    algorithm: state::algorithm_name(r.algorithm),
                    state: r.state.name().into(),
                    ds: r.ds.name().into(),
                    served: !r.dnskey.is_empty() && served.contains(&r.dnskey),
                    signs: match (r.signs_dnskey(), r.signs_zone()) {
                        (true, true) => "both",
                        (true, false) => "dnskey",
                        (false, true) => "zone",
                        (false, false) => "-",
                    }
                    .into(),
                    times,
                }
            })
            .collect();
        let plan = lifecycle::plan(
            &self.records,
            &self.timing,
            &Facts {
                now: t,
                resign_left: self.resign_left,
            },
        );
        let roll_name = |r: lifecycle::Roll| match r {
            lifecycle::Roll::Zsk => "zsk",
            lifecycle::Roll::Ksk => "ksk",
            lifecycle::Roll::Algorithm => "algorithm",
        };
        let ds = |k: &KeyRecord| {
            super::ds_lines(&crate::name::to_lowercase(&self.origin), &k.dnskey, &[2])
                .unwrap_or_default()
        };
        let (add, del) = lifecycle::parent_actions(&self.records);
        let set = self.set(self.records.clone());
        KeyStatus {
            zone: self.zone.clone(),
            now: fmt(t),
            keys,
            rolls: plan
                .rolls
                .iter()
                .map(|r| roll_name(*r).to_string())
                .collect(),
            next: plan
                .upcoming
                .iter()
                .map(|u| NextStep {
                    roll: roll_name(u.roll).into(),
                    what: u.what.clone(),
                    earliest: u.earliest.map(fmt),
                    waits_for: u.waits_for.clone(),
                })
                .collect(),
            parent_publish: add.into_iter().flat_map(ds).collect(),
            parent_remove: del.into_iter().flat_map(ds).collect(),
            parent_ds: set.cds_keys().flat_map(ds).collect(),
            resign_left: self.resign_left,
            last_error: self.last_error.clone(),
        }
    }
}

/// The request of `belfry key roll KIND [--to ALG]`.
pub fn roll_request(kind: &str, algorithm: Option<&str>) -> Result<RollRequest, String> {
    match (kind, algorithm) {
        ("zsk", None) => Ok(RollRequest::Zsk),
        ("ksk", None) => Ok(RollRequest::Ksk),
        ("algorithm", Some(a)) => Algorithm::from_name(a)
            .map(|a| RollRequest::Algorithm(a.number()))
            .ok_or_else(|| format!("algorithm '{a}': use ecdsap256sha256, ed25519 or rsasha256")),
        ("algorithm", None) => Err("an algorithm rollover needs the new algorithm (--to)".into()),
        (k, Some(_)) if k != "algorithm" => Err("--to is for `roll algorithm` only".into()),
        (k, _) => Err(format!("roll '{k}': use zsk, ksk or algorithm")),
    }
}
