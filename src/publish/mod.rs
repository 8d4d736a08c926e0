//! The publisher: the one writer of zone versions.
//!
//! Every change to what belfry serves — a suppression added, lifted or expired,
//! a hand edit of the list, a zone reload, a dynamic update, an inbound
//! transfer, a re-sign — is a typed [`Change`] submitted to
//! [`Publisher::apply`]. Changes are applied one at a time: the whole change is
//! checked, the shards it touches are rebuilt from their source data (the zone
//! as loaded and edited) minus what suppressions withdraw, changed RRsets and
//! NSEC3 records are signed and verified, the change is audited and journaled,
//! the list file is rewritten, and only then is the next [`Snapshot`] swapped
//! in (one atomic store) and the outcome returned. A failure at any step leaves
//! the served version, the list and the files as they were.
//!
//! A suppressed delegation is served as if it had been withdrawn (RFC 1034
//! §4.2.1): its NS and DS go, and so do the addresses of hosts below it that no
//! other delegation uses; hosts other domains rely on stay, as authoritative
//! data. What is withdrawn is kept aside and put back on lift.
//!
//! Nothing here is on the query path; readers never wait for the publisher.

pub mod change;
pub mod checkpoint;
pub mod diff;
pub mod edit;
mod inforce;
pub mod journal;
pub mod keys;
pub mod lab;
pub mod reload;
mod resign;
mod restore;
#[cfg(test)]
mod tests;
mod transfer;
mod update;

use crate::dnssec::{Dnssec, Signer};
use crate::handler::Snapshot;
use crate::name::{self, Key};
use crate::suppress::{Effect, Suppressions};
use crate::wire::Rtype;
use crate::zone::{self, Zone};
use arc_swap::ArcSwap;
use change::{Change, ChangeError, EditSource, List, NameEdit, Outcome, Suppression};
use edit::{decode, shard_id, Content, RecSet, ShardId};
use inforce::{InForce, Withheld};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Most signatures one re-sign change makes (the scheduler asks again for the rest).
const MAX_RESIGN: usize = 20_000;

/// Serial arithmetic (RFC 1982): whether `a` is after `b`.
pub fn serial_after(a: u32, b: u32) -> bool {
    crate::serial::serial_gt(a, b)
}

/// How the next serial is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SerialPolicy {
    /// The serial goes up by one per change.
    Increment,
    /// Seconds since the epoch (or one more than the last, if that is ahead).
    Unixtime,
    /// YYYYMMDDnn (or one more than the last, if that is ahead).
    Dateserial,
}

impl SerialPolicy {
    /// The serial after `cur`, at `now` (seconds since the epoch).
    pub fn next(self, cur: u32, now: u64) -> u32 {
        let bumped = match cur.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        let candidate = match self {
            SerialPolicy::Increment => return bumped,
            SerialPolicy::Unixtime => now as u32,
            SerialPolicy::Dateserial => {
                let ts = jiff_free_date(now);
                ts.wrapping_mul(100)
            }
        };
        if serial_after(candidate, cur) {
            candidate
        } else {
            bumped
        }
    }
}

/// YYYYMMDD of a time (UTC).
fn jiff_free_date(t: u64) -> u32 {
    let text = crate::suppress::list::format_time(t);
    text[..10].replace('-', "").parse().unwrap_or(0)
}

/// Settings of the publisher from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// EDE text on suppressed answers.
    pub ede_text: Arc<str>,
    /// How serials move on.
    pub serial_policy: SerialPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ede_text: Arc::from("suspended by the registry"),
            serial_policy: SerialPolicy::Increment,
        }
    }
}

/// Where the publisher writes what it did (each before the change is served).
#[derive(Default)]
pub struct Sinks {
    /// The audit log.
    pub audit: Option<crate::suppress::audit::Audit>,
    /// The suppression list file (rewritten after every list change).
    pub list_file: Option<std::path::PathBuf>,
    /// The journal (every change, before it is served).
    pub journal: Option<journal::Journal>,
}

/// (host key, key of the delegation naming it as NS target).
type HostUse = (Vec<u8>, Vec<u8>);

/// Cross-shard NS targets: host key → keys of the delegations naming it.
#[derive(Default)]
struct RemoteUsers {
    users: HashMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    by_shard: HashMap<ShardId, Vec<HostUse>>,
}

impl RemoteUsers {
    /// Replace what one shard contributes, given each delegation's key and NS targets;
    /// only targets in the zone but in another shard are kept.
    fn set_shard_ns<'a, T: Iterator<Item = &'a [u8]>>(
        &mut self,
        id: ShardId,
        delegations: impl Iterator<Item = (&'a [u8], T)>,
        origin: &[u8],
        ol: usize,
    ) {
        if let Some(old) = self.by_shard.remove(&id) {
            for (h, u) in old {
                if let Some(s) = self.users.get_mut(&h) {
                    s.remove(&u);
                    if s.is_empty() {
                        self.users.remove(&h);
                    }
                }
            }
        }
        let mut mine = Vec::new();
        let mut key = Key::new();
        for (k, targets) in delegations {
            if k.iter().filter(|&&b| b == 0).count() <= ol {
                continue;
            }
            for t in targets {
                if name::wire_len(t).is_err() || !name::is_at_or_below(t, origin) {
                    continue;
                }
                key.set(t);
                let hid = if key.labels() <= ol {
                    None
                } else {
                    Some(zone::shard_of(key.prefix(ol + 1)))
                };
                if hid != id {
                    mine.push((key.as_bytes().to_vec(), k.to_vec()));
                }
            }
        }
        for (h, u) in &mine {
            self.users.entry(h.clone()).or_default().insert(u.clone());
        }
        if !mine.is_empty() {
            self.by_shard.insert(id, mine);
        }
    }
}

/// The publisher's state: everything a change is applied to.
struct State {
    origin: Vec<u8>,
    ol: usize,
    settings: Settings,
    /// Every suppression entry, by the key of its domain (a persistent map: a
    /// change works on an O(1) copy and finds what it changed by a diff that
    /// skips what the two versions share).
    list: List,
    /// The entries with an expiry time, by that time.
    expiring: BTreeSet<(u64, Vec<u8>)>,
    /// The suppressions the served version withdraws (by key).
    in_force: InForce,
    /// What suppressions withdraw from the zone, by the key of the suppressed domain.
    withheld: Withheld,
    remote: RemoteUsers,
    next_id: u64,
    sinks: Sinks,
    /// Writes the list file in the background (made when a journal holds the list).
    list_writer: Option<Arc<crate::suppress::list::FileWriter>>,
    /// Outcomes of the last changes, by id (a client that gave up can ask).
    recent: Recent,
    /// The zone file the source data comes from.
    fingerprint: Option<checkpoint::Fingerprint>,
    /// The first fully signed serial (IXFR is served from there on).
    ixfr_floor: Option<u32>,
    /// The primary's serial of the source data last taken from it (when following one).
    source_serial: Option<u32>,
}

/// How many change outcomes are kept for [`Publisher::outcome`].
const RECENT: usize = 1000;

/// How many domain names those outcomes may hold in all: a bulk change's
/// outcome names every domain it added or lifted (about 40 bytes each), so
/// older outcomes are dropped beyond this (the newest is always kept).
const RECENT_NAMES: usize = 250_000;

type Recent = std::collections::VecDeque<(u64, Result<Outcome, String>)>;

/// Drop the oldest outcomes beyond `max` of them or `max_names` names in all.
fn trim_recent(recent: &mut Recent, max: usize, max_names: usize) {
    let names_in =
        |r: &Result<Outcome, String>| r.as_ref().map_or(0, |o| o.added.len() + o.removed.len());
    let mut names: usize = recent.iter().map(|(_, r)| names_in(r)).sum();
    while recent.len() > max || (names > max_names && recent.len() > 1) {
        if let Some((_, old)) = recent.pop_front() {
            names -= names_in(&old);
        }
    }
}

/// How a change is applied.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Submitted now: checked against the clock, audited, journaled.
    Live,
    /// Applied again from the journal at start: same time, same serial, same signatures.
    Replay {
        time: u64,
        serial: u32,
        hints: &'a edit::Hints,
    },
}

/// The publisher of one zone.
pub struct Publisher {
    current: ArcSwap<Snapshot>,
    state: Mutex<State>,
    stop: AtomicBool,
    /// Versions published since this publisher was made (replayed ones included).
    published: std::sync::atomic::AtomicU64,
    /// When the last version was published (seconds since the epoch; 0: none yet).
    last_published: std::sync::atomic::AtomicU64,
    /// When this publisher was made, with the zone it serves.
    created: u64,
    /// The watch lists every zone edit is checked against.
    watch: ArcSwap<crate::watchlist::Lists>,
}

/// Free a replaced version off the query path. A query that held the version
/// when it was replaced would otherwise free it when done: the shards a change
/// rebuilt, with a signature slot per RRset whose drop walks arc-swap's list of
/// readers (some 900 shards after a reload of a thousand delegations, on a UDP
/// worker between two answers). One thread for the process waits until the
/// version is no longer read (up to two seconds; then a long reader, a zone
/// transfer say, frees it) and frees it.
fn retire(old: Arc<Snapshot>) {
    use std::sync::mpsc::{channel, Sender};
    static REAPER: std::sync::OnceLock<Option<Sender<Arc<Snapshot>>>> = std::sync::OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = channel::<Arc<Snapshot>>();
        std::thread::Builder::new()
            .name("retire".into())
            .spawn(move || {
                // Not in the idle class, which a busy server would starve,
                // leaving replaced versions to pile up.
                crate::ops::limits::background_thread("retiring versions", false);
                for old in rx {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                    while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    drop(old);
                }
            })
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = reaper {
        // Should the thread be gone, the version comes back in the error and is freed here.
        let _ = tx.send(old);
    }
}

/// Whether `key` is `anc` or below it (keys: a descendant's key extends its ancestor's).
fn key_at_or_below(key: &[u8], anc: &[u8]) -> bool {
    key.starts_with(anc)
}

/// Wall-clock seconds since the epoch.
pub fn now_secs() -> u64 {
    crate::suppress::list::now_secs()
}

impl State {
    /// The entries of the list in force at `now`.
    fn active_keys(&self, now: u64) -> InForce {
        InForce::from_keys(
            self.ol,
            self.list
                .iter()
                .filter(|(_, s)| s.active(now))
                .map(|(k, _)| k.clone()),
        )
    }

    /// Take `list` as the list, keeping the expiry index right (by a diff: only
    /// the entries that changed are looked at).
    fn set_list(&mut self, list: List) {
        use imbl::ordmap::DiffItem;
        for d in self.list.diff(&list) {
            let (old, new) = match d {
                DiffItem::Add(k, v) => (None, Some((k, v))),
                DiffItem::Remove(k, v) => (Some((k, v)), None),
                DiffItem::Update { old, new } => (Some(old), Some(new)),
            };
            if let Some((k, Some(t))) = old.map(|(k, s)| (k, s.expires)) {
                self.expiring.remove(&(t, k.clone()));
            }
            if let Some((k, Some(t))) = new.map(|(k, s)| (k, s.expires)) {
                self.expiring.insert((t, k.clone()));
            }
        }
        self.list = list;
    }

    /// Entries in force whose expiry time has come by `now`.
    fn due(&self, now: u64) -> Vec<Vec<u8>> {
        self.expiring
            .range(..(now.saturating_add(1), Vec::new()))
            .filter(|(_, k)| self.in_force.contains(k))
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// What the query path needs of an entry.
    fn effect(&self, e: &Suppression) -> Effect {
        Effect {
            code: e.ede.code(),
            text: self.settings.ede_text.clone(),
        }
    }

    /// Bring the cross-shard NS targets up to date for changed shards of `zone`
    /// (read from the shards and what they withhold: no decode).
    fn refresh_remote<'a>(&mut self, zone: &Zone, ids: impl IntoIterator<Item = &'a ShardId>) {
        for id in ids {
            let sh = match id {
                None => zone.apex_shard(),
                Some(i) => zone.shard(*i),
            };
            let extra: Vec<Content> = self.withheld.shard(*id).map(|(_, c)| c).collect();
            self.remote
                .set_shard_from(*id, &sh.data, &extra, &self.origin, self.ol);
        }
    }

    fn shard_of_key(&self, key: &[u8]) -> ShardId {
        shard_id(key, self.ol)
    }

    /// The source content of a shard: what is served plus what suppressions withdrew.
    fn source(&self, zone: &Zone, id: ShardId) -> Content {
        #[cfg(test)]
        tests::SOURCE_DECODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sh = match id {
            None => zone.apex_shard(),
            Some(i) => zone.shard(i),
        };
        let mut c = decode(&sh.data);
        for (_, w) in self.withheld.shard(id) {
            for (k, sets) in w {
                let e = c.entry(k).or_default();
                for s in sets {
                    e.retain(|x| x.rtype != s.rtype);
                    e.push(s);
                }
                e.sort_by_key(|s| s.rtype);
            }
        }
        c
    }

    /// Withdraw suppressed delegations from a shard's source content.
    /// Returns the content to serve and what was withheld per suppressed domain.
    /// `mine`: the suppressed domains whose shard this is.
    fn filter(
        &self,
        source: Content,
        mine: &[&Vec<u8>],
        active: &InForce,
    ) -> (Content, HashMap<Vec<u8>, Content>) {
        let mut out = source;
        let mut withheld: HashMap<Vec<u8>, Content> = HashMap::new();
        if mine.is_empty() {
            return (out, withheld);
        }
        // Each suppressed delegation's subtree (its name, its glue). An NS set
        // below another suppressed delegation is occluded data: its records go
        // with the outer one, found first (keys sort a name before its
        // descendants), and the inner one's pass finds them gone.
        let mut subtrees: Vec<(&Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
        for d in mine {
            let Some(at) = out.get(d.as_slice()) else {
                continue;
            };
            if !at.iter().any(|s| s.rtype == Rtype::NS.0) {
                continue;
            }
            let below: Vec<Vec<u8>> = out
                .range((*d).clone()..)
                .map(|(k, _)| k)
                .take_while(|k| key_at_or_below(k, d))
                .cloned()
                .collect();
            subtrees.push((d, below));
        }
        // Of the addresses in those subtrees, the ones that delegations staying in
        // this shard name as NS targets (most takedowns have none, and then no
        // delegation of the shard needs a look).
        let glue: BTreeSet<&[u8]> = subtrees
            .iter()
            .flat_map(|(_, below)| below.iter())
            .filter(|k| {
                out.get(*k).is_some_and(|sets| {
                    sets.iter()
                        .any(|s| s.rtype == Rtype::A.0 || s.rtype == Rtype::AAAA.0)
                })
            })
            .map(|k| k.as_slice())
            .collect();
        let mut used_here: BTreeSet<Vec<u8>> = BTreeSet::new();
        if !glue.is_empty() {
            let mut key = Key::new();
            for (k, sets) in &out {
                let Some(ns) = sets.iter().find(|s| s.rtype == Rtype::NS.0) else {
                    continue;
                };
                if k.iter().filter(|&&b| b == 0).count() <= self.ol {
                    continue;
                }
                for t in &ns.rdatas {
                    if name::wire_len(t).is_err() {
                        continue;
                    }
                    key.set(t);
                    if glue.contains(key.as_bytes()) && !active.covers(k) {
                        used_here.insert(key.as_bytes().to_vec());
                    }
                }
            }
        }
        drop(glue);
        for (d, below) in subtrees {
            let mut w = Content::new();
            for k in below {
                let Some(sets) = out.remove(&k) else {
                    continue;
                };
                let mut keep = Vec::new();
                let mut gone = Vec::new();
                for s in sets {
                    let is_addr = s.rtype == Rtype::A.0 || s.rtype == Rtype::AAAA.0;
                    let used = is_addr
                        && (used_here.contains(&k)
                            || self
                                .remote
                                .users
                                .get(&k)
                                .is_some_and(|us| us.iter().any(|u| !active.covers(u))));
                    if used {
                        keep.push(s);
                    } else {
                        gone.push(s);
                    }
                }
                if !keep.is_empty() {
                    out.insert(k.clone(), keep);
                }
                if !gone.is_empty() {
                    w.insert(k, gone);
                }
            }
            withheld.insert(d.clone(), w);
        }
        (out, withheld)
    }
}

/// A domain an operator may suppress in this zone, checked against the source data.
fn check_suppressible(zone: &Zone, st: &State, wire: &[u8]) -> Result<Vec<u8>, ChangeError> {
    check_suppressible_with(zone, st, wire, &mut None)
}

/// [`check_suppressible`] for many domains: the results in their order, each
/// shard's source data read once (a bulk add of 100,000 names would otherwise
/// decode a shard per name).
fn check_all_suppressible(
    zone: &Zone,
    st: &State,
    names: &[&[u8]],
) -> Vec<Result<Vec<u8>, ChangeError>> {
    let mut order: Vec<(ShardId, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (st.shard_of_key(&name::key_of(&name::to_lowercase(n))), i))
        .collect();
    order.sort_unstable();
    let mut out: Vec<Option<Result<Vec<u8>, ChangeError>>> = vec![None; names.len()];
    let mut cache = None;
    for (_, i) in order {
        out[i] = Some(check_suppressible_with(zone, st, names[i], &mut cache));
    }
    out.into_iter()
        .map(|r| r.expect("every name was checked"))
        .collect()
}

/// [`check_suppressible`], keeping the last shard's source data in `cache`.
fn check_suppressible_with(
    zone: &Zone,
    st: &State,
    wire: &[u8],
    cache: &mut Option<(ShardId, Content)>,
) -> Result<Vec<u8>, ChangeError> {
    let bad = |m: String| Err(ChangeError::BadInput(m));
    let wire = name::to_lowercase(wire);
    if !name::is_at_or_below(&wire, zone.origin()) {
        return bad(format!(
            "{} is outside the zone {}",
            name::to_text(&wire),
            name::to_text(zone.origin())
        ));
    }
    if wire.len() == zone.origin().len() {
        return bad("the zone apex cannot be suppressed".into());
    }
    let key = name::key_of(&wire);
    let id = st.shard_of_key(&key);
    if cache.as_ref().is_none_or(|(c, _)| *c != id) {
        *cache = Some((id, st.source(zone, id)));
    }
    let src = &cache.as_ref().expect("just filled").1;
    let mut k = Key::new();
    k.set(&wire);
    for labels in st.ol + 1..k.labels() {
        if let Some(sets) = src.get(k.prefix(labels)) {
            if sets.iter().any(|s| s.rtype == Rtype::NS.0) {
                return bad(format!(
                    "{} is below the delegation {}; suppress that domain instead",
                    name::to_text(&wire),
                    name::to_text(&zone::key_to_wire(k.prefix(labels)))
                ));
            }
        }
    }
    let holds_data = match src.get(&key) {
        Some(sets) => !sets.iter().any(|s| s.rtype == Rtype::NS.0),
        // An empty non-terminal: some name below it exists.
        None => src
            .range(key.clone()..)
            .next()
            .is_some_and(|(n, _)| key_at_or_below(n, &key)),
    };
    if holds_data {
        return bad(format!(
            "{} is not a delegation but holds zone data of the registry; it cannot be suppressed",
            name::to_text(&wire)
        ));
    }
    Ok(wire)
}

impl Publisher {
    /// A publisher serving `zone` (with its DNSSEC part), with a suppression list
    /// already checked, at `serial` (the zone's, or the last one published if ahead).
    pub fn new(
        zone: Zone,
        dnssec: Option<Dnssec>,
        list: Vec<Suppression>,
        serial: u32,
        settings: Settings,
        sinks: Sinks,
    ) -> Result<Publisher, String> {
        let origin = zone.origin().to_vec();
        let ol = zone.origin_labels();
        let mut st = State {
            origin,
            ol,
            settings,
            list: List::new(),
            expiring: BTreeSet::new(),
            in_force: InForce::new(ol),
            withheld: Withheld::new(ol),
            remote: RemoteUsers::default(),
            list_writer: None,
            next_id: 1,
            sinks,
            recent: std::collections::VecDeque::new(),
            fingerprint: None,
            ixfr_floor: None,
            source_serial: None,
        };
        st.set_list(
            list.into_iter()
                .map(|s| (name::key_of(&s.name), s))
                .collect(),
        );
        st.build_remote(&zone);
        let zone = Arc::new(zone);
        let dnssec = dnssec.map(Arc::new);
        let serial = if serial_after(serial, zone.serial()) {
            serial
        } else {
            zone.serial()
        };
        let now = now_secs();
        let active = st.active_keys(now);
        let mut affected: BTreeSet<ShardId> = active.shards().collect();
        affected.insert(None);
        let (snap, withheld, _) = build_next(
            &st,
            &zone,
            dnssec.as_deref(),
            &Suppressions::new(),
            &affected,
            &[],
            &active,
            serial,
            None,
        )
        .map_err(|e| e.to_string())?;
        st.withheld = Withheld::from_map(ol, withheld);
        st.in_force = active;
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

    /// Serve a new version (the one place a version is swapped in).
    fn publish(&self, next: Snapshot) {
        retire(self.current.swap(Arc::new(next)));
        self.published.fetch_add(1, Ordering::Relaxed);
        self.last_published.store(now_secs(), Ordering::Relaxed);
    }

    /// Versions published since start, when the last one was, and when the zone was
    /// loaded (seconds since the epoch; 0 for none), for metrics.
    pub fn publications(&self) -> (u64, u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.last_published.load(Ordering::Relaxed),
            self.created,
        )
    }

    /// The version being served.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The version being served, as an owned pointer.
    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask background work to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The watch lists in force.
    pub fn watch_lists(&self) -> Arc<crate::watchlist::Lists> {
        self.watch.load_full()
    }

    /// Put watch lists in force (for the changes that come next).
    pub fn set_watch_lists(&self, lists: crate::watchlist::Lists) {
        crate::watchlist::register(&lists);
        self.watch.store(Arc::new(lists));
    }

    /// Read the watch list files again. On any error (named `file:line`) the
    /// lists in force stay, all of them; either way the attempt is audited.
    pub fn reload_watch_lists(
        &self,
        actor: &str,
    ) -> Result<Vec<crate::watchlist::ListSummary>, String> {
        let cfgs = self.watch_lists().configs();
        let r = crate::watchlist::Lists::load(&cfgs);
        let st = self.lock();
        let serial = self.snapshot().serial;
        match r {
            Ok(lists) => {
                let summary = lists.summary();
                let text = summary
                    .iter()
                    .map(|l| format!("{}: {} names", l.name, l.names))
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Some(a) = &st.sinks.audit {
                    a.record(actor, "watch-reload", "", &text, "", serial);
                }
                self.set_watch_lists(lists);
                tracing::info!("watch lists read again ({text})");
                Ok(summary)
            }
            Err(e) => {
                if let Some(a) = &st.sinks.audit {
                    let first = e.lines().next().unwrap_or("");
                    a.record(actor, "watch-reload-failed", "", first, "", serial);
                }
                tracing::error!("watch lists not read again, the lists in force stay: {e}");
                Err(e)
            }
        }
    }

    /// Which names of the watch lists (all, or the one named) are delegations
    /// in the zone served now, suppressed ones included.
    pub fn watch_check(&self, only: Option<&str>) -> Result<crate::watchlist::CheckReport, String> {
        let lists = self.watch_lists();
        if let Some(n) = only {
            if lists.get(n).is_none() {
                return Err(format!("no watch list named '{n}'"));
            }
        }
        // The lock keeps the served version and what it withholds together.
        let st = self.lock();
        let snap = self.snapshot_full();
        let mut report = crate::watchlist::CheckReport {
            serial: snap.serial,
            ..Default::default()
        };
        for l in lists
            .lists
            .iter()
            .filter(|l| only.is_none_or(|n| l.cfg.name == n))
        {
            for (key, e) in &l.names {
                report.checked += 1;
                if !name::is_at_or_below(&e.wire, snap.zone.origin())
                    || e.wire.len() == snap.zone.origin().len()
                {
                    continue;
                }
                let served = snap
                    .zone
                    .find_name(&e.wire)
                    .is_some_and(|n| n.has(Rtype::NS));
                let suppressed = snap.suppressions.contains(key);
                let withheld = suppressed && st.withheld.delegates(key);
                if served || withheld {
                    report.present.push(crate::watchlist::Present {
                        list: l.cfg.name.clone(),
                        name: name::to_text(&e.wire),
                        source: e.source.clone(),
                        reference: e.reference.clone(),
                        suppressed: withheld,
                    });
                }
            }
        }
        report
            .present
            .sort_by(|a, b| (&a.list, &a.name).cmp(&(&b.list, &b.name)));
        Ok(report)
    }

    /// The suppression list (every entry, in force or expired) and the served
    /// serial. The list is a persistent map: this copy costs O(1).
    pub fn list(&self) -> (u32, List) {
        let st = self.lock();
        (self.snapshot().serial, st.list.clone())
    }

    /// How many entries the list has.
    pub fn list_len(&self) -> usize {
        self.lock().list.len()
    }

    /// One entry of the list, by its domain (wire form, any case).
    pub fn entry(&self, wire: &[u8]) -> Option<Suppression> {
        let key = name::key_of(&name::to_lowercase(wire));
        self.lock().list.get(&key).cloned()
    }

    /// Entries in force whose expiry time has come by `now` (their domains).
    pub fn due_to_expire(&self, now: u64) -> Vec<Vec<u8>> {
        let st = self.lock();
        st.due(now)
            .iter()
            .filter_map(|k| st.list.get(k).map(|s| s.name.clone()))
            .collect()
    }

    /// Check a domain for suppression (as `add` would), returning its lowercase wire form.
    pub fn check_suppressible(&self, wire: &[u8]) -> Result<Vec<u8>, ChangeError> {
        let st = self.lock();
        let snap = self.snapshot_full();
        check_suppressible(&snap.zone, &st, wire)
    }

    /// The outcome of a recent change (by the id in its audit lines and outcome).
    pub fn outcome(&self, id: u64) -> Option<Result<Outcome, String>> {
        self.lock()
            .recent
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| r.clone())
    }

    /// The id the next change will get.
    pub fn next_change_id(&self) -> u64 {
        self.lock().next_id
    }

    /// Apply one change; returns once it is served (or refused, with nothing changed).
    ///
    /// A change whose `deadline` has passed when its turn comes is refused
    /// ([`ChangeError::TimedOut`]) and never applied later.
    pub fn apply(
        &self,
        change: Change,
        actor: &str,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ChangeError> {
        let mut st = self.lock();
        let id = st.next_id;
        let r = self.apply_locked(&mut st, change, actor, deadline, Mode::Live);
        if !matches!(r, Err(ChangeError::Unchanged)) {
            st.recent
                .push_back((id, r.clone().map_err(|e| e.to_string())));
            trim_recent(&mut st.recent, RECENT, RECENT_NAMES);
            if r.is_err() {
                // A refused change uses up its id too, so ids in logs stay unique.
                st.next_id = st.next_id.max(id + 1);
            }
        }
        r
    }

    fn apply_locked(
        &self,
        st: &mut State,
        change: Change,
        actor: &str,
        deadline: Option<Instant>,
        mode: Mode<'_>,
    ) -> Result<Outcome, ChangeError> {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(ChangeError::TimedOut);
        }
        let cur = self.current.load_full();
        let (now, live) = match mode {
            Mode::Live => (now_secs(), true),
            Mode::Replay { time, .. } => (time, false),
        };
        if let Change::Resign = change {
            return match mode {
                Mode::Live => self.resign(st, &cur, actor),
                Mode::Replay { serial, hints, .. } => self.resign_replay(st, &cur, serial, hints),
            };
        }
        if let Change::Keys(k) = &change {
            return keys::apply(self, st, &cur, k, actor, mode);
        }
        // A journaled edit with the suppressions watch lists added to it.
        let (change, watched) = match change {
            Change::Watched { edit, suppress } => match *edit {
                e @ Change::Edit { .. } => (e, suppress),
                _ => {
                    return Err(ChangeError::BadInput(
                        "a watched change holds a zone edit".into(),
                    ))
                }
            },
            c => (c, Vec::new()),
        };
        let mut found = WatchFound::default();
        let mut list = st.list.clone();
        let mut edits: Vec<NameEdit> = Vec::new();
        let mut removal_reason = String::new();
        match &change {
            Change::Suppress { entries } => {
                let mut seen = BTreeSet::new();
                let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
                let checked = check_all_suppressible(&cur.zone, st, &names);
                for (e, wire) in entries.iter().zip(checked) {
                    let wire = wire?;
                    if e.reason.trim().is_empty() || e.case.trim().is_empty() {
                        return Err(ChangeError::BadInput(format!(
                            "{}: a reason and a case id are required",
                            name::to_text(&wire)
                        )));
                    }
                    if live && e.expires.is_some_and(|t| t <= now) {
                        return Err(ChangeError::BadInput(format!(
                            "{}: the expiry time is in the past",
                            name::to_text(&wire)
                        )));
                    }
                    let key = name::key_of(&wire);
                    if list.contains_key(&key) || !seen.insert(key.clone()) {
                        return Err(ChangeError::AlreadyListed(format!(
                            "{} is already suppressed",
                            name::to_text(&wire)
                        )));
                    }
                    let mut e = e.clone();
                    e.name = wire;
                    list.insert(key, e);
                }
            }
            Change::Lift { names, reason } => {
                if reason.trim().is_empty() {
                    return Err(ChangeError::BadInput(
                        "a reason is required to lift a suppression".into(),
                    ));
                }
                removal_reason = reason.clone();
                for n in names {
                    let key = name::key_of(&name::to_lowercase(n));
                    if list.remove(&key).is_none() {
                        return Err(ChangeError::NotListed(format!(
                            "{} is not on the suppression list",
                            name::to_text(n)
                        )));
                    }
                }
            }
            Change::Expire { names } => {
                removal_reason = "expired".into();
                for n in names {
                    list.remove(&name::key_of(&name::to_lowercase(n)));
                }
            }
            Change::ReplaceList { entries } => {
                let mut new = List::new();
                let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
                let checked = check_all_suppressible(&cur.zone, st, &names);
                for (e, wire) in entries.iter().zip(checked) {
                    let wire = wire?;
                    let key = name::key_of(&wire);
                    let mut e = e.clone();
                    e.name = wire;
                    if new.insert(key, e).is_some() {
                        return Err(ChangeError::AlreadyListed(format!(
                            "{} is listed twice",
                            name::to_text(&entries[0].name)
                        )));
                    }
                }
                list = new;
            }
            Change::EditList { steps, reason, .. } => {
                removal_reason = reason.clone();
                edit_list(&cur.zone, st, &mut list, steps, now)?;
            }
            Change::Edit {
                edits: e, source, ..
            } => {
                edits = e.clone();
                for w in &watched {
                    list.entry(name::key_of(&w.name))
                        .or_insert_with(|| w.clone());
                }
                if live {
                    let lists = self.watch.load();
                    found = watch_edit(&lists, &cur.zone, st, &edits, &mut list, now, *source);
                }
            }
            Change::Resign | Change::Keys(_) | Change::Watched { .. } => {
                return Err(ChangeError::Unchanged)
            }
        }
        // What the change did to the list (a diff of the two versions that skips
        // what they share), and the entries whose expiry time has come.
        let touched: Vec<Vec<u8>> = st
            .list
            .diff(&list)
            .map(|d| match d {
                imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => {
                    k.clone()
                }
                imbl::ordmap::DiffItem::Update { new: (k, _), .. } => k.clone(),
            })
            .collect();
        let mut after = st.in_force.clone();
        let mut added: Vec<Vec<u8>> = Vec::new();
        let mut removed: Vec<Vec<u8>> = Vec::new();
        for k in touched.iter().chain(st.due(now).iter()) {
            if list.get(k).is_some_and(|s| s.active(now)) {
                if after.insert(k.clone()) {
                    added.push(k.clone());
                }
            } else if after.remove(k) {
                removed.push(k.clone());
            }
        }
        added.sort_unstable();
        removed.sort_unstable();
        if edits.is_empty() && added.is_empty() && removed.is_empty() && touched.is_empty() {
            return Err(ChangeError::Unchanged);
        }
        let mut affected: BTreeSet<ShardId> = BTreeSet::new();
        affected.insert(None);
        for k in added.iter().chain(removed.iter()) {
            affected.insert(st.shard_of_key(k));
        }
        for e in &edits {
            affected.insert(st.shard_of_key(&name::key_of(&e.name)));
        }
        let serial = match (mode, &change) {
            (Mode::Replay { serial, .. }, _) => serial,
            // A reloaded file's or a primary's serial is kept when it is ahead.
            (
                Mode::Live,
                Change::Edit {
                    source_serial: Some(s),
                    ..
                },
            ) if serial_after(*s, cur.serial) => *s,
            (Mode::Live, _) => st.settings.serial_policy.next(cur.serial, now),
        };
        let hints = match mode {
            Mode::Live => None,
            Mode::Replay { hints, .. } => Some(hints),
        };
        let new_list = list;
        let phase = std::time::Instant::now();
        let (snap, withheld, signed) = {
            let prev_list = std::mem::replace(&mut st.list, new_list.clone());
            let r = build_next(
                st,
                &cur.zone,
                cur.dnssec.as_deref(),
                &cur.suppressions,
                &affected,
                &edits,
                &after,
                serial,
                hints,
            );
            st.list = prev_list;
            r?
        };
        let built_in = phase.elapsed();
        let id = st.next_id;
        let text = |k: &Vec<u8>| name::to_text(&zone::key_to_wire(k));
        let outcome = Outcome {
            id,
            serial,
            added: added.iter().map(text).collect(),
            removed: removed.iter().map(text).collect(),
            names_changed: edits.len(),
            signatures: signed,
            notes: found
                .hits
                .iter()
                .map(|h| match h.policy {
                    "suppress" => format!(
                        "watch list '{}': {} is delegated and suppressed pre-emptively",
                        h.list, h.name
                    ),
                    _ => format!("watch list '{}': {} is delegated (alert)", h.list, h.name),
                })
                .collect(),
        };
        // Audit first: no change is served without its record.
        if let (Some(a), true) = (&st.sinks.audit, live) {
            let mut lines = Vec::new();
            for k in &added {
                let (reason, case) = new_list
                    .get(k)
                    .map(|e| (e.reason.clone(), e.case.clone()))
                    .unwrap_or_default();
                lines.push(crate::suppress::audit::Line {
                    actor: found
                        .actors
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| actor.to_string()),
                    action: action_name(&change, true).to_string(),
                    domain: text(k),
                    reason,
                    case,
                });
            }
            for h in found.hits.iter().filter(|h| h.policy == "alert") {
                lines.push(crate::suppress::audit::Line {
                    actor: format!("watch:{}", h.list),
                    action: "watch-alert".into(),
                    domain: h.name.clone(),
                    reason: format!(
                        "listed on '{}' and delegated by a {}{}{}",
                        h.list,
                        h.via,
                        if h.source.is_empty() { "" } else { ": " },
                        [h.source.as_str(), h.reference.as_str()].join(" ").trim()
                    ),
                    case: h.reference.clone(),
                });
            }
            for k in &removed {
                lines.push(crate::suppress::audit::Line {
                    actor: actor.to_string(),
                    action: action_name(&change, false).to_string(),
                    domain: text(k),
                    reason: removal_reason.clone(),
                    case: st.list.get(k).map(|e| e.case.clone()).unwrap_or_default(),
                });
            }
            if lines.is_empty() {
                lines.push(crate::suppress::audit::Line {
                    actor: actor.to_string(),
                    action: change.action().to_string(),
                    domain: String::new(),
                    reason: String::new(),
                    case: String::new(),
                });
            }
            a.record_batch(id, &lines, serial)
                .map_err(ChangeError::Storage)?;
        }
        // The journal: the change and what it did to the signed zone.
        let phase = std::time::Instant::now();
        if live {
            let entry = journal::Entry {
                id,
                time: now,
                actor: actor.to_string(),
                from: cur.serial,
                to: snap.serial,
                change: if found.suppress.is_empty() && watched.is_empty() {
                    change.clone()
                } else {
                    let mut suppress = watched.clone();
                    suppress.extend(found.suppress.iter().cloned());
                    Change::Watched {
                        edit: Box::new(change.clone()),
                        suppress,
                    }
                },
                diff: diff::diff(&cur, &snap),
            };
            record_journal(st, &entry)?;
        }
        let journaled_in = phase.elapsed();
        // The list file follows the list. With a journal (the record of the list),
        // it is written in the background; without one (or without a thread
        // to write it), here, and if it cannot be written the change is refused.
        if !touched.is_empty() && live {
            if let Some(p) = st.sinks.list_file.clone() {
                if st.list_writer.is_none() && st.sinks.journal.is_some() {
                    match crate::suppress::list::FileWriter::new(p.clone()) {
                        Ok(w) => st.list_writer = Some(Arc::new(w)),
                        Err(e) => tracing::error!("cannot start the list file writer: {e}"),
                    }
                }
                if let Some(w) = &st.list_writer {
                    w.submit(serial, new_list.clone());
                } else if let Err(e) = crate::suppress::list::persist_list(&p, serial, &new_list) {
                    if let Some(j) = st.sinks.journal.as_mut() {
                        if let Err(x) = j.undo_last() {
                            tracing::error!("journal: {x}");
                        }
                    }
                    if let Some(a) = &st.sinks.audit {
                        let line = crate::suppress::audit::Line {
                            actor: actor.to_string(),
                            action: "aborted".into(),
                            reason: format!("change {id} not applied: {e}"),
                            ..Default::default()
                        };
                        let _ = a.record_batch(id, &[line], cur.serial);
                    }
                    return Err(ChangeError::Storage(e));
                }
            }
        }
        // Commit.
        st.next_id += 1;
        st.set_list(new_list);
        st.in_force = after;
        if let Change::Edit {
            fingerprint,
            source,
            source_serial,
            ..
        } = &change
        {
            if let Some(f) = fingerprint {
                st.fingerprint = Some(f.clone());
            }
            if *source == EditSource::Transfer {
                if let Some(s) = source_serial {
                    st.source_serial = Some(*s);
                }
            }
        }
        st.withheld.replace(affected.iter(), withheld);
        st.refresh_remote(&snap.zone, &affected);
        self.publish(snap);
        tracing::debug!(
            "change {id}: {} shards built and signed in {:.0} ms, journaled in {:.0} ms",
            affected.len(),
            built_in.as_secs_f64() * 1e3,
            journaled_in.as_secs_f64() * 1e3
        );
        if !found.hits.is_empty() {
            for h in found.hits.iter_mut() {
                h.serial = serial;
                h.change = id;
            }
            crate::watchlist::report(found.hits);
        }
        Ok(outcome)
    }
}

/// What the watch lists found in a zone edit.
#[derive(Default)]
struct WatchFound {
    /// Entries added to the suppression list.
    suppress: Vec<Suppression>,
    /// The audit actor of each such entry (`watch:<list>`).
    actors: HashMap<Vec<u8>, String>,
    /// Every hit, to report once the change is served.
    hits: Vec<crate::watchlist::Alert>,
}

/// Check the names a zone edit delegates (NS where there was none) against the
/// watch lists: one hash lookup per edited name. Hits of `suppress` lists are
/// added to `list`, so the same change withholds them.
fn watch_edit(
    lists: &crate::watchlist::Lists,
    zone: &Zone,
    st: &State,
    edits: &[NameEdit],
    list: &mut List,
    now: u64,
    via: EditSource,
) -> WatchFound {
    use crate::watchlist::Policy;
    let mut f = WatchFound::default();
    if lists.is_empty() {
        return f;
    }
    for (i, key) in lists.candidates(edits) {
        let e = &edits[i];
        let hits = lists.hits(&key);
        if key.iter().filter(|&&b| b == 0).count() <= st.ol {
            continue;
        }
        let delegated_before = zone.find_name(&e.name).is_some_and(|n| n.has(Rtype::NS))
            || st.withheld.delegates(&key);
        if delegated_before {
            continue;
        }
        for (l, item) in hits {
            let policy = l.cfg.policy;
            if policy == Policy::Suppress && !list.contains_key(&key) {
                let mut reason = format!("watch list {}", l.cfg.name);
                let detail = [item.source.as_str(), item.reference.as_str()]
                    .join(" ")
                    .trim()
                    .to_string();
                if !detail.is_empty() {
                    reason.push_str(&format!(" ({detail})"));
                }
                let s = Suppression {
                    name: item.wire.clone(),
                    reason,
                    case: if item.reference.is_empty() {
                        l.cfg.name.clone()
                    } else {
                        format!("{}:{}", l.cfg.name, item.reference)
                    },
                    added_by: format!("watch:{}", l.cfg.name),
                    added_at: now,
                    expires: None,
                    ede: l.ede(),
                };
                list.insert(key.clone(), s.clone());
                f.actors
                    .insert(key.clone(), format!("watch:{}", l.cfg.name));
                f.suppress.push(s);
            }
            f.hits.push(crate::watchlist::Alert {
                name: name::to_text(&item.wire),
                list: l.cfg.name.clone(),
                source: item.source.clone(),
                reference: item.reference.clone(),
                serial: 0,
                change: 0,
                via: source_name(via).to_string(),
                policy: policy.as_str(),
                webhook: l.cfg.webhook.clone(),
            });
        }
    }
    f
}

fn action_name(change: &Change, added: bool) -> &'static str {
    match (change, added) {
        (Change::Expire { .. }, _) => "expire",
        (Change::ReplaceList { .. } | Change::EditList { .. }, true) => "edit-add",
        (Change::ReplaceList { .. } | Change::EditList { .. }, false) => "edit-remove",
        (_, true) => "add",
        (_, false) => "remove",
    }
}

/// Apply the steps of a list edit to `list`: each must find the entry it started
/// from (or the one it wants); conflicts are collected and refuse the whole edit.
fn edit_list(
    zone: &Zone,
    st: &State,
    list: &mut List,
    steps: &[change::ListStep],
    _now: u64,
) -> Result<(), ChangeError> {
    let mut conflicts = Vec::new();
    let mut seen = BTreeSet::new();
    // Every entry an edit puts in force is checked; all at once, shard by shard.
    let afters: Vec<&[u8]> = steps
        .iter()
        .map(|s| s.after.as_ref().map_or(&s.name[..], |a| &a.name[..]))
        .collect();
    let mut checked = check_all_suppressible(zone, st, &afters).into_iter();
    for step in steps {
        let pre = checked.next().expect("one result per step");
        let wire = name::to_lowercase(&step.name);
        let key = name::key_of(&wire);
        if !seen.insert(key.clone()) {
            return Err(ChangeError::BadInput(format!(
                "{} is in the edit twice",
                name::to_text(&wire)
            )));
        }
        let cur = list.get(&key);
        if cur == step.after.as_ref() {
            continue;
        }
        if cur.map(|c| c.fingerprint()) != step.before {
            conflicts.push(name::to_text(&wire));
            continue;
        }
        match &step.after {
            Some(a) => {
                let w = pre?;
                if w != wire {
                    return Err(ChangeError::BadInput(format!(
                        "{}: the entry names another domain",
                        name::to_text(&wire)
                    )));
                }
                if a.reason.trim().is_empty() || a.case.trim().is_empty() {
                    return Err(ChangeError::BadInput(format!(
                        "{}: a reason and a case id are required",
                        name::to_text(&wire)
                    )));
                }
                let mut a = a.clone();
                a.name = w;
                list.insert(key, a);
            }
            None => {
                list.remove(&key);
            }
        }
    }
    if !conflicts.is_empty() {
        let n = conflicts.len();
        conflicts.truncate(10);
        return Err(ChangeError::Conflict(format!(
            "{n} entr{} changed since the edit started ({}{}); nothing applied",
            if n == 1 { "y" } else { "ies" },
            conflicts.join(", "),
            if n > 10 { ", ..." } else { "" }
        )));
    }
    Ok(())
}

/// What [`build_next`] made: the snapshot, what suppressions withhold in the
/// rebuilt shards, and how many signatures were made.
type Built = (Snapshot, HashMap<Vec<u8>, Content>, usize);

/// The next version with only the apex shard rebuilt (the new SOA serial, the
/// suppressions in force as they are), for changes that then replace signatures.
fn build_apex(
    st: &State,
    zone: &Zone,
    dnssec: Option<&Dnssec>,
    prev: &Suppressions,
    edits: &[NameEdit],
    serial: u32,
    hints: Option<&edit::Hints>,
) -> Result<Built, ChangeError> {
    let apex_only: BTreeSet<ShardId> = std::iter::once(None).collect();
    build_next(
        st,
        zone,
        dnssec,
        prev,
        &apex_only,
        edits,
        &st.in_force,
        serial,
        hints,
    )
}

/// One shard of the next version, built, and what suppressions withhold from it.
type Prepared = (ShardId, Arc<zone::ZShard>, HashMap<Vec<u8>, Content>);

/// Build the next snapshot: rebuild `affected` shards from source data with
/// `edits` applied, withdraw the `active` suppressions, set the serial. The
/// query-side set of suppressions is `prev` with the affected shards' names
/// replaced.
///
/// Each shard is decoded, edited, filtered and built in one step, and its
/// decoded form dropped before the next: a change of every shard (a bulk
/// suppression, a large reload) holds two shards' decoded form at a time, not
/// the whole zone's. The whole zone decoded at once made the process 1.7 GB
/// and left most of that resident in pages the few long-lived allocations made
/// meanwhile (what each suppression withholds) kept partly used.
#[allow(clippy::too_many_arguments)]
fn build_next(
    st: &State,
    zone: &Zone,
    dnssec: Option<&Dnssec>,
    prev: &Suppressions,
    affected: &BTreeSet<ShardId>,
    edits: &[NameEdit],
    active: &InForce,
    serial: u32,
    hints: Option<&edit::Hints>,
) -> Result<Built, ChangeError> {
    let mut withheld_all = HashMap::new();
    // Edits and suppressions by shard, found once: a change of 100,000 names
    // touches every shard, and looking through all of them per shard is quadratic.
    let mut edits_by: HashMap<ShardId, Vec<(Vec<u8>, &NameEdit)>> = HashMap::new();
    for e in edits {
        let k = name::key_of(&e.name);
        edits_by
            .entry(st.shard_of_key(&k))
            .or_default()
            .push((k, e));
    }
    let remote = RemoteCtx { st };
    let edit_err = |e| match e {
        edit::EditError::Check(m) => ChangeError::Check(m),
        edit::EditError::Sign(m) => ChangeError::Sign(m),
    };
    // One shard's source data with the edits applied and the suppressions
    // withdrawn, built.
    let one = |id: ShardId| -> Result<Prepared, ChangeError> {
        let mut src = st.source(zone, id);
        for (k, e) in edits_by.get(&id).map_or(&[][..], |v| v.as_slice()) {
            let entry = src.entry(k.clone()).or_default();
            if e.replace_all {
                entry.clear();
            }
            for s in &e.sets {
                entry.retain(|x| x.rtype != s.rtype);
                if !s.rdatas.is_empty() {
                    entry.push(s.clone());
                }
            }
            entry.sort_by_key(|s| s.rtype);
            if entry.is_empty() {
                src.remove(k);
            }
        }
        let mine: Vec<&Vec<u8>> = active.shard(id).collect();
        let (mut published, withheld) = st.filter(src, &mine, active);
        if id.is_none() {
            let apex_key = name::key_of(&st.origin);
            if let Some(sets) = published.get_mut(&apex_key) {
                for s in sets.iter_mut().filter(|s| s.rtype == Rtype::SOA.0) {
                    for r in s.rdatas.iter_mut() {
                        *r = zone::soa_with_serial(r, serial);
                    }
                }
            }
        }
        let (id, built) =
            edit::build_one(zone, dnssec, id, &published, &remote).map_err(edit_err)?;
        Ok((id, built, withheld))
    };
    let ids: Vec<ShardId> = affected.iter().copied().collect();
    let threads = edit::shard_threads(ids.len());
    // A change of many names (a bulk suppression, a large reload) prepares its
    // shards on every core; a small one on this thread.
    let mut done: Vec<(usize, Result<Prepared, ChangeError>)> = if threads <= 1 {
        ids.iter().map(|&id| one(id)).enumerate().collect()
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&id) = ids.get(i) else {
                    return out;
                };
                out.push((i, one(id)));
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
            let mut all = work();
            for h in handles {
                all.extend(h.join().expect("a shard preparation thread panicked"));
            }
            all
        })
    };
    done.sort_unstable_by_key(|(i, _)| *i);
    let mut built = Vec::with_capacity(done.len());
    for (_, r) in done {
        let (id, shard, withheld) = r?;
        withheld_all.extend(withheld);
        built.push((id, shard));
    }
    let next = edit::next_version(zone, dnssec, built, &remote, hints).map_err(edit_err)?;
    let set = prev.with_shards(
        st.ol,
        affected.iter().map(|id| {
            let names = active
                .shard(*id)
                .filter_map(|k| Some((k.as_slice(), st.effect(st.list.get(k)?))))
                .collect();
            (*id, names)
        }),
    );
    let signed = next.signed;
    let snap = Snapshot {
        serial: next.zone.serial(),
        zone: Arc::new(next.zone),
        dnssec: next.dnssec.map(Arc::new),
        suppressions: Arc::new(set),
    };
    Ok((snap, withheld_all, signed))
}

/// What the shard checks need from the rest of the zone.
struct RemoteCtx<'a> {
    st: &'a State,
}

impl zone::shard::ZoneContext for RemoteCtx<'_> {
    fn referenced_elsewhere(&self, host_key: &[u8]) -> bool {
        self.st.remote.users.contains_key(host_key)
    }
}

/// The DNSSEC part of a freshly loaded zone: chain built, nothing signed yet.
pub fn initial_dnssec(zone: &mut Zone, signer: Arc<Signer>) -> Result<Dnssec, String> {
    let chain =
        crate::dnssec::chain::Chain::build(zone, signer.policy().nsec3.clone(), &edit::APEX_EXTRA)
            .map_err(|e| e.to_string())?;
    let shards: Vec<(ShardId, Arc<zone::ZShard>)> = std::iter::once(None)
        .chain((0..zone::SHARDS).map(Some))
        .map(|id| {
            let sh = match id {
                None => zone.apex_shard(),
                Some(i) => zone.shard(i),
            };
            let sigs = crate::dnssec::ShardSigs::empty(&sh.data);
            (
                id,
                Arc::new(zone::ZShard {
                    data: sh.data.clone(),
                    sigs: Some(sigs),
                }),
            )
        })
        .collect();
    let warnings = std::mem::take(&mut zone.warnings);
    *zone = zone.with_shards(shards);
    zone.warnings = warnings;
    Ok(Dnssec {
        signer,
        chain: Arc::new(chain),
        apex: edit::empty_apex_sigs(),
        nsec3_ttl: zone.negative_ttl(),
    })
}

/// Which source a zone edit came from, as text.
pub fn source_name(s: EditSource) -> &'static str {
    match s {
        EditSource::Reload => "reload",
        EditSource::Update => "update",
        EditSource::Transfer => "transfer",
    }
}

/// The RRsets of a name in a content map (for tests and tools).
pub fn rrsets_of<'a>(c: &'a Content, key: &[u8]) -> Option<&'a Vec<RecSet>> {
    c.get(key)
}

/// Append a journal record (when there is a journal); a failure refuses the change.
fn record_journal(st: &mut State, entry: &journal::Entry) -> Result<(), ChangeError> {
    let Some(j) = st.sinks.journal.as_mut() else {
        return Ok(());
    };
    if let Err(e) = j.append(entry) {
        if let Some(a) = &st.sinks.audit {
            let line = crate::suppress::audit::Line {
                actor: entry.actor.clone(),
                action: "aborted".into(),
                reason: format!("change {} not applied: {e}", entry.id),
                ..Default::default()
            };
            let _ = a.record_batch(entry.id, &[line], entry.from);
        }
        return Err(ChangeError::Storage(e));
    }
    Ok(())
}

/// The difference a re-sign made (only signatures and the SOA changed).
fn resign_diff(cur: &Snapshot, next: &Snapshot) -> diff::Diff {
    diff::diff(cur, next)
}

/// Signatures to reuse when a journal record is applied again: its added RRSIGs.
pub fn hints_from(d: &diff::Diff, origin: &[u8]) -> edit::Hints {
    let mut groups: BTreeMap<(Vec<u8>, u16), Vec<Vec<u8>>> = BTreeMap::new();
    for r in &d.added {
        if r.rtype != Rtype::RRSIG.0 || r.rdata.len() < 2 {
            continue;
        }
        let covered = u16::from_be_bytes([r.rdata[0], r.rdata[1]]);
        groups
            .entry((r.owner.clone(), covered))
            .or_default()
            .push(r.rdata.clone());
    }
    let mut h = edit::Hints::default();
    for ((owner, covered), rds) in groups {
        let sig = Arc::new(crate::dnssec::SigSet::from_rdatas(
            rds.iter().map(|r| r.as_slice()),
        ));
        if covered == Rtype::NSEC3.0
            && owner.first() == Some(&32)
            && owner.len() > 33
            && owner[33..] == *origin
        {
            if let Some(hash) = crate::dnssec::nsec3hash::base32hex_decode(&owner[1..33]) {
                h.nsec3.insert(hash, sig);
                continue;
            }
        }
        h.rrsets.insert((name::key_of(&owner), covered), sig);
    }
    h
}
