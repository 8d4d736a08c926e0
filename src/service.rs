//! The running zone service: loading, the transport's view of the publisher, background work.
//!
//! [`load`] reads and checks the zone and keys; [`Service`] is what the
//! transport calls (it answers from the publisher's current snapshot without
//! locking, with the server's rate-limiting table and cookie secrets, and
//! counts what the handler did in per-thread [`Metrics`]); [`spawn_maintenance`]
//! runs the background work: the coarse clock, the start-up signing pass,
//! submitting expiries to the publisher, and the rate limiter's log sweep.

use crate::config::Config;
use crate::cookie::Secrets;
use crate::dnssec::{self, Dnssec, Signer};
use crate::handler::{self, HandlerConfig};
use crate::metrics::Metrics;
use crate::ops::progress::{Board, Progress};
use crate::publish::change::Change;
use crate::publish::{self, Publisher};
use crate::rrl::Rrl;
use crate::zone::{self, NodeRef, SetRef, Zone, APEX_SHARD};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A loaded zone with its DNSSEC part, ready for a publisher.
pub struct Loaded {
    /// The zone.
    pub zone: Zone,
    /// The DNSSEC part (chain built, signatures empty), when signing.
    pub dnssec: Option<Dnssec>,
    /// Seconds spent loading the zone file.
    pub load_secs: f64,
    /// Seconds spent preparing DNSSEC (keys, NSEC3 chain).
    pub sign_prep_secs: f64,
}

/// A stage of [`load_with`], announced as it begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadStage {
    /// Reading and indexing the master file.
    ZoneFile,
    /// Reading keys and building the NSEC3 chain.
    Dnssec,
}

/// Load the zone and keys named by a configuration, checking everything.
pub fn load(cfg: &Config, keys: Option<Vec<dnssec::key::SigningKey>>) -> Result<Loaded, String> {
    load_with(cfg, keys, &mut |_| {})
}

/// [`load`], calling `stage` as each stage begins (for progress displays).
pub fn load_with(
    cfg: &Config,
    keys: Option<Vec<dnssec::key::SigningKey>>,
    stage: &mut dyn FnMut(LoadStage),
) -> Result<Loaded, String> {
    let t0 = Instant::now();
    stage(LoadStage::ZoneFile);
    let zone = zone::load_file(&cfg.zone.file, &cfg.origin_wire()).map_err(|e| e.to_string())?;
    let load_secs = t0.elapsed().as_secs_f64();
    if cfg.dnssec.enabled {
        stage(LoadStage::Dnssec);
    }
    let mut l = loaded_from(cfg, zone, keys)?;
    l.load_secs = load_secs;
    Ok(l)
}

/// A zone (from a file or a transfer) with the DNSSEC part the configuration asks for.
pub fn loaded_from(
    cfg: &Config,
    mut zone: Zone,
    keys: Option<Vec<dnssec::key::SigningKey>>,
) -> Result<Loaded, String> {
    let t1 = Instant::now();
    let dnssec = if cfg.dnssec.enabled {
        // Keys from `--key` flags are static; otherwise the key directory and its states.
        let mut signer = match keys {
            Some(k) => Signer::new(zone.origin(), k, cfg.policy())
                .map_err(|e| format!("{}: {e}", cfg.dnssec.key_dir.display()))?,
            None => crate::keys::load_signer(cfg)?,
        };
        if let Some(f) = dnssec::signer::fault_from_env() {
            tracing::warn!(
                "FAULT INJECTION (BELFRY_FAULT_SIGN): signing RRsets at {} fails on purpose",
                crate::name::to_text(&f)
            );
            signer.inject_sign_fault(Some(&f));
        }
        Some(publish::initial_dnssec(&mut zone, Arc::new(signer))?)
    } else {
        None
    };
    Ok(Loaded {
        zone,
        dnssec,
        load_secs: 0.0,
        sign_prep_secs: t1.elapsed().as_secs_f64(),
    })
}

/// Where and how often checkpoints are written.
#[derive(Clone, Debug)]
pub struct StateCfg {
    /// The checkpoint file.
    pub checkpoint: std::path::PathBuf,
    /// Time between checkpoints.
    pub interval: Duration,
    /// Journal records older than this (seconds) may go once a checkpoint covers them.
    pub journal_max_age: u64,
}

/// What a zone reload needs to know.
#[derive(Clone, Debug)]
pub struct ReloadCfg {
    /// The zone file.
    pub file: std::path::PathBuf,
    /// The zone origin (wire form).
    pub origin: Vec<u8>,
    /// Largest share of delegations a reload may remove without force.
    pub max_removed_share: f64,
}

/// The service the transport calls.
pub struct Service {
    /// The publisher (owner of the served version).
    pub publisher: Arc<Publisher>,
    handler_cfg: HandlerConfig,
    /// Whether every RRset of the served version is signed (set by the start-up pass).
    pub fully_signed: AtomicBool,
    /// Signatures made by the start-up pass.
    pub presigned: AtomicUsize,
    state: Option<StateCfg>,
    log_queries: bool,
    /// Long work in progress (signing pass, ...), for `GET /v1/status`.
    pub progress: Arc<Board>,
    reload: Option<ReloadCfg>,
    reloading: std::sync::Mutex<()>,
    /// Query counters, per thread.
    pub metrics: Metrics,
    /// Response rate limiting (`None`: off).
    rrl: Option<Rrl>,
    /// Cookie secrets (`None`: cookies off), swapped when the secret file is re-read.
    cookies: Option<ArcSwap<Secrets>>,
    /// Where the cookie secrets come from (re-read on SIGHUP).
    cookie_file: Option<std::path::PathBuf>,
    /// Seconds the zone file took to load (for metrics).
    load_seconds: std::sync::Mutex<f64>,
    /// What the secondaries have and the control path's counters, for `GET /v1/status`.
    pub transfers: Arc<crate::control::progress::Board>,
    /// The key manager (rollovers), when keys are managed.
    pub keys: Option<Arc<std::sync::Mutex<crate::keys::manager::KeyManager>>>,
    /// dnstap output (`None`: off, one branch per query).
    dnstap: Option<crate::dnstap::Tap>,
}

impl Service {
    /// A service answering from a publisher.
    pub fn new(
        publisher: Arc<Publisher>,
        handler_cfg: HandlerConfig,
        state: Option<StateCfg>,
    ) -> Service {
        Service {
            publisher,
            handler_cfg,
            fully_signed: AtomicBool::new(false),
            presigned: AtomicUsize::new(0),
            state,
            log_queries: false,
            progress: Board::new(),
            reload: None,
            reloading: std::sync::Mutex::new(()),
            metrics: Metrics::new(),
            rrl: None,
            cookies: None,
            cookie_file: None,
            load_seconds: std::sync::Mutex::new(0.0),
            transfers: Arc::new(crate::control::progress::Board::new()),
            keys: None,
            dnstap: None,
        }
    }

    /// Copy queries and answers to a dnstap collector through this tap.
    pub fn with_dnstap(mut self, tap: Option<crate::dnstap::Tap>) -> Service {
        self.dnstap = tap;
        self
    }

    /// The dnstap output, when on.
    pub fn dnstap(&self) -> Option<&crate::dnstap::Tap> {
        self.dnstap.as_ref()
    }

    /// Set where zone reloads read from.
    pub fn with_reload(mut self, r: ReloadCfg) -> Service {
        self.reload = Some(r);
        self
    }

    /// Take the zone file again: loaded and checked off the query path while the
    /// served version keeps answering, then published as one change (see
    /// [`crate::publish::reload`]). One reload at a time.
    pub fn reload_zone(
        &self,
        force: bool,
        actor: &str,
    ) -> Result<crate::publish::change::Outcome, crate::publish::change::ChangeError> {
        use crate::publish::change::ChangeError;
        let Some(r) = self.reload.as_ref() else {
            return Err(ChangeError::BadInput(
                "this server has no zone file to reload".into(),
            ));
        };
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let t = Instant::now();
        let mut progress = Progress::start("reload", 0, Some(&self.progress));
        // Reading, hashing and indexing the file is most of a reload's CPU and needs no
        // lock: it runs on threads of their own, kept off one core (so a query worker
        // that wakes finds a core free) and in the idle scheduling class (or, where that
        // is refused, at a lower priority). The file's hash comes first: an unchanged
        // file is not loaded at all.
        let loaded = crate::ops::limits::in_background("reload: the loader", true, || {
            let fingerprint = crate::publish::checkpoint::Fingerprint::of(&r.file).ok();
            if fingerprint.is_some() && fingerprint == self.publisher.fingerprint() && !force {
                return Err(ChangeError::Unchanged);
            }
            zone::load_file(&r.file, &r.origin)
                .map(|z| (z, fingerprint))
                .map_err(|e| ChangeError::Check(e.to_string()))
        })
        .unwrap_or_else(|| {
            Err(ChangeError::Check(format!(
                "{}: the zone loader stopped unexpectedly",
                r.file.display()
            )))
        });
        progress.set(1, 2);
        let (zone, fingerprint) = match loaded {
            Ok(z) => z,
            Err(ChangeError::Unchanged) => {
                progress.finish();
                return Err(ChangeError::Unchanged);
            }
            Err(e) => {
                progress.finish();
                tracing::error!("reload refused, the served zone stays: {e}");
                return Err(e);
            }
        };
        let load_secs = t.elapsed().as_secs_f64();
        let opts = crate::publish::reload::ReloadOptions {
            source: crate::publish::change::EditSource::Reload,
            force,
            max_removed_share: r.max_removed_share,
            fingerprint,
        };
        // Comparing, building and signing the changed shards is the rest of it: on a
        // thread of its own too, kept off one core at a lower priority (not the idle
        // class: the change must go through on a busy server), so that the query
        // workers are not queued behind it.
        let out = crate::ops::limits::in_background("reload: publishing", false, || {
            self.publisher.reload(zone, opts, actor)
        })
        .unwrap_or_else(|| {
            Err(ChangeError::Check(
                "publishing the reload stopped unexpectedly (a bug; the log says where)".into(),
            ))
        });
        progress.finish();
        match &out {
            Ok(o) => tracing::info!(
                "reload of {}: {} names changed, serial {}, {} signatures made, in {:.2} s ({:.2} s loading)",
                r.file.display(),
                o.names_changed,
                o.serial,
                o.signatures,
                t.elapsed().as_secs_f64(),
                load_secs
            ),
            Err(ChangeError::Unchanged) => {
                tracing::info!("reload of {}: nothing changed", r.file.display())
            }
            Err(e) => tracing::error!("reload refused, the served zone stays: {e}"),
        }
        for n in out.iter().flat_map(|o| o.notes.iter()) {
            tracing::warn!("reload: {n}");
        }
        out
    }

    /// Rate-limit UDP answers with this table.
    pub fn with_rrl(mut self, rrl: Option<Rrl>) -> Service {
        self.rrl = rrl;
        self
    }

    /// Answer DNS cookies with these secrets (read again from `file` by [`Service::reload_cookies`]).
    pub fn with_cookies(
        mut self,
        secrets: Option<Secrets>,
        file: Option<std::path::PathBuf>,
    ) -> Service {
        self.cookies = secrets.map(ArcSwap::from_pointee);
        self.cookie_file = file;
        self
    }

    /// Note how long the zone file took to load (for metrics).
    pub fn set_load_seconds(&self, secs: f64) {
        *self.load_seconds.lock().unwrap_or_else(|p| p.into_inner()) = secs;
    }

    /// The rate-limiting table, when RRL is on.
    pub fn rrl(&self) -> Option<&Rrl> {
        self.rrl.as_ref()
    }

    /// Read the cookie secret file again (SIGHUP); on an error the secrets in force stay.
    pub fn reload_cookies(&self) -> Result<Option<usize>, String> {
        let (Some(c), Some(f)) = (&self.cookies, &self.cookie_file) else {
            return Ok(None);
        };
        let s = Secrets::from_file(f)?;
        let n = s.len();
        c.store(Arc::new(s));
        Ok(Some(n))
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics_text(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let snap = self.publisher.snapshot();
        let signer = snap.dnssec.as_ref().map(|d| d.signer.clone());
        let (changes, last_change_at, loaded_at) = self.publisher.publications();
        let state = crate::metrics::expose::State {
            serial: snap.serial,
            suppressions: snap.suppressions.len(),
            changes,
            loaded_at,
            load_seconds: *self.load_seconds.lock().unwrap_or_else(|p| p.into_inner()),
            last_change_at,
            signed: snap.dnssec.is_some(),
            fully_signed: self.fully_signed.load(Relaxed),
            signatures_made: signer.as_ref().map(|s| s.made.load(Relaxed)).unwrap_or(0),
            signing_failures: signer
                .as_ref()
                .map(|s| s.failures.load(Relaxed))
                .unwrap_or(0),
            rrl_limiting: self.rrl.as_ref().map(|r| r.limited_now()),
            cookie_secrets: self.cookies.as_ref().map(|c| c.load().len()),
            threads: self.metrics.threads(),
            dnstap_sent: self.dnstap.as_ref().map_or(0, |t| t.sent()),
            dnstap_dropped: self.dnstap.as_ref().map_or(0, |t| t.dropped()),
            dnstap_connected: self.dnstap.as_ref().map(|t| t.connected()),
            heap: crate::ops::heap::read(),
        };
        let mut text = crate::metrics::expose::render(self.metrics.totals(), state);
        text.push_str(&crate::watchlist::metrics_text());
        text
    }

    /// Run key rollovers with this manager.
    pub fn with_keys(mut self, km: Option<crate::keys::manager::KeyManager>) -> Service {
        self.keys = km.map(|k| Arc::new(std::sync::Mutex::new(k)));
        self
    }

    /// Log every query (target [`crate::ops::log::QUERY_TARGET`]); off unless asked for.
    pub fn with_query_log(mut self, on: bool) -> Service {
        self.log_queries = on;
        self
    }

    /// One line for the systemd status: what is served.
    pub fn status_line(&self) -> String {
        let snap = self.publisher.snapshot();
        format!(
            "serving {} serial {}",
            crate::name::to_text(snap.zone.origin()),
            snap.serial
        )
    }

    /// Answer one message (sans-IO) without rate limiting, cookies or counting.
    pub fn answer_bytes(&self, query: &[u8], tcp: bool, out: &mut Vec<u8>) -> bool {
        let snap = self.publisher.snapshot();
        handler::handle(&snap, &self.handler_cfg, query, tcp, out)
    }

    /// Answer one message (sans-IO), with rate limiting and cookies, and count it.
    pub fn respond(
        &self,
        query: &[u8],
        peer: std::net::IpAddr,
        transport: crate::server::Transport,
        out: &mut Vec<u8>,
    ) -> handler::Outcome {
        let snap = self.publisher.snapshot();
        let cookies = self.cookies.as_ref().map(|c| c.load());
        let guards = handler::Guards {
            rrl: self.rrl.as_ref(),
            cookies: cookies.as_deref().map(|s| &**s),
        };
        let client = handler::Client {
            ip: peer,
            tcp: transport == crate::server::Transport::Tcp,
            now: dnssec::signer::now(),
        };
        let o = handler::respond(&snap, &self.handler_cfg, &guards, query, &client, out);
        self.metrics.record(&o, transport, query.len(), out.len());
        o
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.publisher.stopping()
    }

    /// Ask background work to stop.
    pub fn stop(&self) {
        self.publisher.stop();
    }
}

impl crate::server::Answerer for Service {
    fn answer(
        &self,
        query: &[u8],
        peer: std::net::SocketAddr,
        transport: crate::server::Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let qtime = self.dnstap.as_ref().map(|_| crate::dnstap::now());
        let o = self.respond(query, peer.ip(), transport, out);
        if let (Some(tap), Some(t)) = (&self.dnstap, qtime) {
            tap.capture(
                query,
                o.sent.then_some(out.as_slice()),
                &o,
                peer,
                transport,
                t,
            );
        }
        if self.log_queries {
            log_query(query, peer, transport, o.sent.then_some(out.as_slice()), &o);
        }
        o.sent
    }
}

/// One query log line: client, transport, name, type, rcode and size of the answer,
/// and what rate limiting and cookies did.
fn log_query(
    query: &[u8],
    peer: std::net::SocketAddr,
    transport: crate::server::Transport,
    answer: Option<&[u8]>,
    outcome: &handler::Outcome,
) {
    let (qname, qtype) = match crate::wire::query::parse_query(query) {
        Ok(q) => (crate::name::to_text(q.qname), q.qtype.0),
        Err(_) => ("-".to_string(), 0),
    };
    let rcode = answer.and_then(|a| a.get(3)).map(|b| b & 0x0F);
    tracing::info!(
        target: crate::ops::log::QUERY_TARGET,
        client = %peer,
        transport = ?transport,
        qname = %qname,
        qtype,
        rcode = ?rcode,
        size = answer.map(|a| a.len()).unwrap_or(0),
        rrl = ?outcome.rrl,
        cookie = ?outcome.cookie,
        "query"
    );
}

/// Sign every RRset and NSEC3 record of a version that has no signature yet,
/// on `threads` threads; returns the signatures made (stops early on `stop`).
pub fn sign_missing(
    snap: &handler::Snapshot,
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<usize, dnssec::SignError> {
    sign_missing_with(snap, threads, stop, &|_, _| {})
}

/// [`sign_missing`], calling `progress(done, total)` (in shards of the zone and
/// of the chain) as the work goes on.
pub fn sign_missing_with(
    snap: &handler::Snapshot,
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<usize, dnssec::SignError> {
    sign_missing_since(snap, None, threads, stop, progress)
}

/// [`sign_missing_with`], skipping the zone and chain shards `snap` shares with
/// `signed`, a version every slot of which was filled (slots are only ever filled,
/// so a shared shard has nothing to sign): after a change, only what it rebuilt
/// is looked at, not the 1.26 M slots of a 1.8 M-delegation zone.
pub fn sign_missing_since(
    snap: &handler::Snapshot,
    signed: Option<&handler::Snapshot>,
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<usize, dnssec::SignError> {
    let prev_zone = signed.map(|p| &*p.zone);
    let prev_chain = signed.and_then(|p| p.dnssec.as_deref()).map(|p| &*p.chain);
    let total = (zone::SHARDS + dnssec::chain::CHAIN_SHARDS) as u64;
    let finished = std::sync::atomic::AtomicU64::new(0);
    let tick = || {
        let d = finished.fetch_add(1, Ordering::Relaxed) + 1;
        if d % 64 == 0 || d == total {
            progress(d, total);
        }
    };
    let Some(d) = snap.dnssec.as_deref() else {
        return Ok(0);
    };
    let zone = &*snap.zone;
    let mut made = 0;
    // The apex first: SOA, DNSKEY, NSEC3PARAM are what a resolver asks first.
    for kind in [dnssec::ApexExtra::Dnskey, dnssec::ApexExtra::Nsec3Param] {
        let slot = match kind {
            dnssec::ApexExtra::Dnskey => &d.apex.dnskey,
            dnssec::ApexExtra::Nsec3Param => &d.apex.nsec3param,
        };
        if slot.load().is_none() {
            let s = match kind {
                dnssec::ApexExtra::Dnskey => d.signer.sign_dnskey()?,
                dnssec::ApexExtra::Nsec3Param => d.signer.sign_nsec3param()?,
            };
            slot.store(Some(Arc::new(s)));
            made += 1;
        }
    }
    made += sign_shard(d, zone.apex_shard(), APEX_SHARD)?;
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let failed: std::sync::Mutex<Option<dnssec::SignError>> = std::sync::Mutex::new(None);
    let work = || loop {
        if stop() {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= zone::SHARDS {
            return;
        }
        if prev_zone.is_some_and(|p| Arc::ptr_eq(p.shard(i), zone.shard(i))) {
            tick();
            continue;
        }
        match sign_shard(d, zone.shard(i), i as u32) {
            Ok(n) => {
                total.fetch_add(n, Ordering::Relaxed);
                tick();
            }
            Err(e) => {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.max(1) {
            s.spawn(work);
        }
        work();
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    made += total.load(Ordering::Relaxed);
    // NSEC3 records, chain shard by chain shard.
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let failed: std::sync::Mutex<Option<dnssec::SignError>> = std::sync::Mutex::new(None);
    let work = || loop {
        if stop() {
            return;
        }
        let s = next.fetch_add(1, Ordering::Relaxed);
        if s >= dnssec::chain::CHAIN_SHARDS {
            return;
        }
        tick();
        if prev_chain.is_some_and(|p| d.chain.same_shard(p, s)) {
            continue;
        }
        for pos in d.chain.positions_in(s) {
            if d.chain.slot(pos).load().is_some() {
                continue;
            }
            match d.signer.sign_nsec3(&d.chain, pos, d.nsec3_ttl) {
                Ok(sig) => {
                    d.chain.slot(pos).store(Some(Arc::new(sig)));
                    total.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => dnssec::report_failure(&e),
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.max(1) {
            s.spawn(work);
        }
        work();
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(made + total.load(Ordering::Relaxed))
}

fn sign_shard(d: &Dnssec, sh: &zone::ZShard, no: u32) -> Result<usize, dnssec::SignError> {
    let Some(sigs) = sh.sigs.as_ref() else {
        return Ok(0);
    };
    let mut made = 0;
    for (node, set) in sh.data.node_rrsets() {
        let flags = sh.data.node(node).flags;
        if !dnssec::sigs::signable(flags, sh.data.rrset(set).rtype) {
            continue;
        }
        if sigs.slot(set).load().is_some() {
            continue;
        }
        let n = NodeRef {
            sh,
            shard_no: no,
            idx: node,
        };
        match d.signer.sign_set(n, SetRef { sh, idx: set }) {
            Ok(s) => {
                sigs.slot(set).store(Some(Arc::new(s)));
                made += 1;
            }
            // Counted by the signer; the pass goes on with the rest.
            Err(e) => dnssec::report_failure(&e),
        }
    }
    Ok(made)
}

/// Start the background thread: coarse clock, start-up signing pass, expiries.
pub fn spawn_maintenance(svc: Arc<Service>, presign: bool) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("belfry-maint".into())
        .spawn(move || maintenance(&svc, presign))
        .expect("spawning the maintenance thread at start-up")
}

fn maintenance(svc: &Service, presign: bool) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut signed_serial: Option<u32> = None;
    // The last version found with every slot filled: later passes skip what it shares.
    let mut last_signed: Option<Arc<handler::Snapshot>> = None;
    let mut retry_presign = Instant::now();
    let mut next_resign = Instant::now();
    let mut checkpointed_signed = false;
    let mut next_checkpoint = Instant::now()
        + svc
            .state
            .as_ref()
            .map(|s| s.interval)
            .unwrap_or(Duration::MAX / 4);
    let mut checkpoint_serial = svc.publisher.snapshot().serial;
    while !svc.stopping() {
        let now = dnssec::tick();
        if let Some(r) = svc.rrl() {
            r.sweep(now);
        }
        let snap = svc.publisher.snapshot_full();
        if let Some(d) = snap.dnssec.as_deref() {
            if Instant::now() >= next_resign && svc.fully_signed.load(Ordering::Relaxed) {
                match svc.publisher.apply(Change::Resign, "belfry", None) {
                    Ok(o) => tracing::info!(
                        "re-signed {} signatures due for refresh (serial {})",
                        o.signatures,
                        o.serial
                    ),
                    Err(crate::publish::change::ChangeError::Unchanged) => {}
                    Err(e) => tracing::error!("re-signing failed: {e}"),
                }
                let period = (d.signer.policy().refresh / 4).clamp(1, 60);
                next_resign = Instant::now() + Duration::from_secs(period as u64);
            }
        }
        // Key rollovers, once every RRset has its signature (so no start-up signature
        // by an older key set can land after a step that no longer serves that key).
        if let Some(km) = &svc.keys {
            if svc.fully_signed.load(Ordering::Relaxed) {
                km.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .tick(&svc.publisher);
            }
        }
        if presign
            && snap.dnssec.is_some()
            && signed_serial != Some(snap.serial)
            && Instant::now() >= retry_presign
        {
            let t = Instant::now();
            let failures_before = snap
                .dnssec
                .as_ref()
                .map(|d| d.signer.signing_failures())
                .unwrap_or(0);
            let progress =
                std::sync::Mutex::new(Progress::start("signing", 0, Some(&svc.progress)));
            // Once the zone has been signed whole, a pass follows a change whose
            // signatures the publisher made already: it mostly reads slots, over every
            // shard the change rebuilt, and runs as background work (off one core, at a
            // lower priority) so that it does not take both cores from the query workers
            // right after each change. The start-up pass runs on every core.
            let background = svc.fully_signed.load(Ordering::Relaxed);
            let pass = |threads: usize| {
                sign_missing_since(
                    &snap,
                    last_signed.as_deref(),
                    threads,
                    &|| svc.stopping(),
                    &|done, total| {
                        progress
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .set(done, total)
                    },
                )
            };
            let r = if background {
                crate::ops::limits::in_background("signing pass", false, || {
                    pass(threads.saturating_sub(1).max(1))
                })
                .unwrap_or_else(|| Err(dnssec::SignError("the signing pass panicked".into())))
            } else {
                pass(threads)
            };
            let took = progress
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .finish();
            if took >= crate::ops::progress::LOG_EVERY {
                // Progress lines replaced the systemd status: put it back.
                crate::ops::notify::status(&svc.status_line());
            }
            match r {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(
                            "signed {n} RRsets and NSEC3 records in {:.1} s",
                            t.elapsed().as_secs_f64()
                        );
                    }
                    svc.presigned.fetch_add(n, Ordering::Relaxed);
                    let failed = snap
                        .dnssec
                        .as_ref()
                        .map(|d| d.signer.signing_failures())
                        .unwrap_or(0)
                        > failures_before;
                    if failed {
                        // Logged (rate-limited) by the signer; try again in a minute.
                        retry_presign = Instant::now() + Duration::from_secs(60);
                    } else if !svc.stopping() && svc.publisher.snapshot().serial == snap.serial {
                        // Complete only if no change was published meanwhile. A version
                        // restored whole from the checkpoint needs no new checkpoint.
                        if n == 0 && snap.serial == checkpoint_serial {
                            checkpointed_signed = true;
                        }
                        signed_serial = Some(snap.serial);
                        last_signed = Some(snap.clone());
                        svc.fully_signed.store(true, Ordering::Relaxed);
                        svc.publisher.mark_fully_signed();
                    }
                }
                Err(e) => {
                    // A failure (or a pass that panicked) is tried again in a minute, not
                    // on every turn of this loop.
                    tracing::error!("signing failed: {e}");
                    retry_presign = Instant::now() + Duration::from_secs(60);
                }
            }
        }
        drop(snap);
        // Checkpoints: once the zone is fully signed (so no signature is made twice
        // across a restart), then at the configured interval when something changed.
        if let Some(st) = svc.state.as_ref() {
            let signed_now = svc.fully_signed.load(Ordering::Relaxed) && !checkpointed_signed;
            let serial = svc.publisher.snapshot().serial;
            if signed_now || (Instant::now() >= next_checkpoint && serial != checkpoint_serial) {
                let t = Instant::now();
                match svc.publisher.checkpoint(&st.checkpoint, st.journal_max_age) {
                    Ok(s) => {
                        tracing::info!(
                            "checkpoint of serial {s} written in {:.2} s",
                            t.elapsed().as_secs_f64()
                        );
                        checkpoint_serial = s;
                        checkpointed_signed |= signed_now;
                    }
                    Err(e) => tracing::error!("checkpoint failed: {e}"),
                }
                next_checkpoint = Instant::now() + st.interval;
            }
        }
        // Lift suppressions whose time has come.
        let now = publish::now_secs();
        // Found in the expiry index (no pass over the list).
        let due = svc.publisher.due_to_expire(now);
        if !due.is_empty() {
            match svc
                .publisher
                .apply(Change::Expire { names: due }, "belfry", None)
            {
                Ok(o) => tracing::info!(
                    "suppressions expired: {:?} (serial {})",
                    o.removed,
                    o.serial
                ),
                Err(e) => tracing::error!("expiring suppressions failed: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A served version of a zone with no suppressions (for tests, benches and tools).
pub fn snapshot_of(
    mut zone: Zone,
    signer: Option<Signer>,
) -> Result<Arc<handler::Snapshot>, String> {
    let dnssec = match signer {
        Some(s) => Some(publish::initial_dnssec(&mut zone, Arc::new(s))?),
        None => None,
    };
    let serial = zone.serial();
    let p = Publisher::new(
        zone,
        dnssec,
        Vec::new(),
        serial,
        publish::Settings::default(),
        publish::Sinks::default(),
    )?;
    Ok(p.snapshot_full())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::tests::{counting, test_zone};
    use crate::server::Transport;
    use crate::wire::decode::{build_query, build_query_with};
    use crate::wire::types::option;
    use crate::wire::Rtype;

    fn service() -> Service {
        let zone = test_zone();
        let serial = zone.serial();
        let p = Publisher::new(
            zone,
            None,
            Vec::new(),
            serial,
            publish::Settings::default(),
            publish::Sinks::default(),
        )
        .unwrap();
        let secrets = crate::cookie::Secrets::new(vec![crate::cookie::Secret::from_hex(
            "0f0e0d0c0b0a09080706050403020100",
        )
        .unwrap()])
        .unwrap();
        Service::new(Arc::new(p), HandlerConfig::default(), None)
            .with_rrl(Some(Rrl::new(crate::rrl::Settings {
                rates: [2; 4],
                table_size: 1024,
                ..Default::default()
            })))
            .with_cookies(Some(secrets), None)
    }

    #[test]
    fn a_reload_works_off_the_calling_thread_and_leaves_it_as_it_was() {
        // The API answers a reload on a pooled thread: the loader (idle class) and the
        // publishing (lower priority) must run on threads of their own, or the pool's
        // thread would keep their scheduling for good (an unprivileged thread cannot
        // raise it again).
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("be.zone");
        std::fs::write(
            &file,
            "$ORIGIN be.\n@ 3600 SOA a.nsset.be. tech.dns.be. 2024061102 3600 1800 3600000 600\n\
             @ 86400 NS a.nsset.be.\na.nsset 86400 A 192.0.2.1\n\
             example 86400 NS ns.example.net.\n",
        )
        .unwrap();
        let svc = service().with_reload(ReloadCfg {
            file,
            origin: crate::name::from_text("be.", &[0]).unwrap(),
            max_removed_share: 1.0,
        });
        let state = || {
            // SAFETY: gettid, getpriority and sched_getscheduler read their integer
            // arguments only.
            let tid = unsafe { libc::gettid() };
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
            let policy = unsafe { libc::sched_getscheduler(0) };
            (
                nice,
                policy,
                std::thread::available_parallelism().unwrap().get(),
            )
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                let before = state();
                let first = svc.reload_zone(true, "test").unwrap();
                assert!(first.names_changed > 0, "{first:?}");
                assert_eq!(state(), before, "after a reload that changed the zone");
                assert_eq!(
                    svc.reload_zone(false, "test").unwrap_err(),
                    crate::publish::change::ChangeError::Unchanged
                );
                assert_eq!(state(), before, "after a reload of an unchanged file");
            });
        });
    }

    #[test]
    fn with_dnstap_off_the_transport_path_does_not_allocate() {
        use crate::server::Answerer;
        let svc = service();
        assert!(svc.dnstap().is_none());
        let q = build_query(
            1,
            &crate::name::from_text("nothere.be.", &[0]).unwrap(),
            Rtype::A,
            Some((1232, false)),
        );
        let peer: std::net::SocketAddr = "192.0.2.34:5353".parse().unwrap();
        let mut out = Vec::with_capacity(4096);
        assert!(svc.answer(&q, peer, Transport::Tcp, &mut out));
        let before = counting::count();
        for _ in 0..10 {
            assert!(svc.answer(&q, peer, Transport::Tcp, &mut out));
        }
        assert_eq!(counting::count() - before, 0, "allocated");
        let text = svc.metrics_text();
        assert!(text.contains("belfry_dnstap_sent_total 0\n"), "{text}");
        assert!(text.contains("belfry_dnstap_dropped_total 0\n"), "{text}");
        assert!(!text.contains("belfry_dnstap_connected"), "{text}");
    }

    #[test]
    fn answering_through_the_service_counts_without_allocating() {
        let svc = service();
        let wire = |s: &str| crate::name::from_text(s, &[0]).unwrap();
        let queries = [
            build_query(1, &wire("www.glued.be."), Rtype::A, Some((1232, false))),
            build_query(2, &wire("nothere.be."), Rtype::A, Some((1232, false))),
            build_query_with(
                3,
                &wire("be."),
                Rtype::SOA,
                (1232, false),
                &[(option::COOKIE, &[5; 8])],
            ),
        ];
        let ip: std::net::IpAddr = "192.0.2.33".parse().unwrap();
        let mut out = Vec::with_capacity(4096);
        // The thread's counter block is made on its first answer.
        for q in &queries {
            svc.respond(q, ip, Transport::Udp, &mut out);
        }
        for _ in 0..5 {
            for q in &queries {
                let before = counting::count();
                svc.respond(q, ip, Transport::Udp, &mut out);
                svc.respond(q, ip, Transport::Tcp, &mut out);
                assert_eq!(counting::count() - before, 0, "allocated");
            }
        }
        let t = svc.metrics.totals();
        assert_eq!(t.all_queries(), 33);
        assert!(t.rrl(0) + t.rrl(1) > 0, "rate 2/s: limited");
        assert_eq!(t.cookie(0), 11);
        let text = svc.metrics_text();
        assert!(text.contains("belfry_cookie_secrets 1\n"), "{text}");
        assert!(text.contains("belfry_zone_serial "), "{text}");
    }
}
