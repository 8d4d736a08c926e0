//! The running zone service: loading, the transport's view of the publisher, background work.
//!
//! [`load`] reads and checks the zone and keys; [`Service`] is what the
//! transport calls (it answers from the publisher's current snapshot without
//! locking); [`spawn_maintenance`] runs the background work: the coarse clock,
//! the start-up signing pass, and submitting expiries to the publisher.

use crate::config::Config;
use crate::dnssec::{self, Dnssec, Signer};
use crate::handler::{self, HandlerConfig};
use crate::ops::progress::{Board, Progress};
use crate::publish::change::Change;
use crate::publish::{self, Publisher};
use crate::zone::{self, NodeRef, SetRef, Zone, APEX_SHARD};
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
    let mut zone =
        zone::load_file(&cfg.zone.file, &cfg.origin_wire()).map_err(|e| e.to_string())?;
    let load_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    if cfg.dnssec.enabled {
        stage(LoadStage::Dnssec);
    }
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
        load_secs,
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
    /// The key manager (rollovers), when keys are managed.
    pub keys: Option<Arc<std::sync::Mutex<crate::keys::manager::KeyManager>>>,
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
            keys: None,
        }
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

    /// Answer one message (sans-IO).
    pub fn answer_bytes(&self, query: &[u8], tcp: bool, out: &mut Vec<u8>) -> bool {
        let snap = self.publisher.snapshot();
        handler::handle(&snap, &self.handler_cfg, query, tcp, out)
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
        let sent = self.answer_bytes(query, transport == crate::server::Transport::Tcp, out);
        if self.log_queries {
            log_query(query, peer, transport, sent.then_some(out.as_slice()));
        }
        sent
    }
}

/// One query log line: client, transport, name, type, rcode and size of the answer.
fn log_query(
    query: &[u8],
    peer: std::net::SocketAddr,
    transport: crate::server::Transport,
    answer: Option<&[u8]>,
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
        dnssec::tick();
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
            let r = sign_missing_with(&snap, threads, &|| svc.stopping(), &|done, total| {
                progress
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set(done, total)
            });
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
                        // Complete only if no change was published meanwhile.
                        signed_serial = Some(snap.serial);
                        svc.fully_signed.store(true, Ordering::Relaxed);
                        svc.publisher.mark_fully_signed();
                    }
                }
                Err(e) => tracing::error!("signing failed: {e}"),
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
        let (_, list) = svc.publisher.list();
        let due: Vec<Vec<u8>> = list
            .iter()
            .filter(|s| s.expires.is_some_and(|t| t <= now))
            .map(|s| s.name.clone())
            .collect();
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
