//! The running zone service: the current snapshot, how it is built and swapped.
//!
//! Owns the one mutable thing in the server: an `ArcSwap` holding the current
//! [`Snapshot`]. Readers (the transport workers) load it without locking;
//! writers (start-up, suppression changes, signature refresh) build the next
//! snapshot off the query path and store it in one step, under a mutex that
//! orders writers only.

use crate::config::Config;
use crate::dnssec::{self, chain::Splice, Signed, Signer};
use crate::handler::{self, HandlerConfig, Snapshot};
use crate::suppress::Suppressions;
use crate::zone::{self, Zone};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loaded zone with its signer, ready to make snapshots from.
pub struct Loaded {
    /// The zone index.
    pub zone: Arc<Zone>,
    /// The signer, when DNSSEC is enabled.
    pub signer: Option<Arc<Signer>>,
    /// Seconds spent loading the zone file.
    pub load_secs: f64,
    /// Seconds spent preparing DNSSEC (keys, NSEC3 chain).
    pub sign_prep_secs: f64,
}

/// Load the zone and keys named by a configuration, checking everything.
pub fn load(cfg: &Config, keys: Option<Vec<dnssec::key::SigningKey>>) -> Result<Loaded, String> {
    let t0 = Instant::now();
    let zone = zone::load_file(&cfg.zone.file, &cfg.origin_wire()).map_err(|e| e.to_string())?;
    let load_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let signer = if cfg.dnssec.enabled {
        let keys = match keys {
            Some(k) => k,
            None => crate::keys::load_active(cfg).map_err(|e| e.to_string())?,
        };
        let mut signer = Signer::new(&zone, keys, cfg.policy())
            .map_err(|e| format!("{}: {e}", cfg.dnssec.key_dir.display()))?;
        if let Some(owner) = dnssec::fault_from_env()? {
            crate::log(&format!(
                "FAULT INJECTION ({}): every signature over RRsets owned by {} will fail; \
                 for testing only, never set it on a production server",
                dnssec::FAULT_SIGN_ENV,
                crate::name::to_text(&owner)
            ));
            signer.inject_sign_fault(Some(&owner));
        }
        Some(Arc::new(signer))
    } else {
        None
    };
    Ok(Loaded {
        zone: Arc::new(zone),
        signer,
        load_secs,
        sign_prep_secs: t1.elapsed().as_secs_f64(),
    })
}

/// The service the transport calls: the current snapshot plus handler settings.
pub struct Service {
    current: ArcSwap<Snapshot>,
    handler_cfg: HandlerConfig,
    write_lock: Mutex<()>,
    stop: AtomicBool,
}

impl Service {
    /// A service answering from a loaded zone with a suppression set.
    pub fn new(
        loaded: &Loaded,
        handler_cfg: HandlerConfig,
        suppressions: Suppressions,
        splice: Splice,
        serial: u32,
    ) -> Result<Service, String> {
        let snap = make_snapshot(
            loaded.zone.clone(),
            loaded.signer.clone(),
            suppressions,
            splice,
            serial,
        )?;
        Ok(Service {
            current: ArcSwap::from_pointee(snap),
            handler_cfg,
            write_lock: Mutex::new(()),
            stop: AtomicBool::new(false),
        })
    }

    /// The snapshot in force.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Replace the snapshot (callers build it with [`make_snapshot`]); returns the old one.
    pub fn swap(&self, next: Snapshot) -> Arc<Snapshot> {
        self.current.swap(Arc::new(next))
    }

    /// Lock that orders writers (suppression changes, reloads).
    pub fn writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer one message (sans-IO).
    pub fn answer_bytes(&self, query: &[u8], tcp: bool, out: &mut Vec<u8>) -> bool {
        let snap = self.current.load();
        handler::handle(&snap, &self.handler_cfg, query, tcp, out)
    }

    /// Ask background tasks to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Start the background maintenance thread: coarse clock, signing ahead, refresh.
    pub fn spawn_maintenance(self: &Arc<Self>, presign: bool) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("belfry-maint".into())
            .spawn(move || me.maintenance(presign))
            .expect("spawning the maintenance thread at start-up")
    }

    fn maintenance(&self, presign: bool) {
        let mut next_sweep = Instant::now();
        while !self.stopping() {
            dnssec::tick();
            let snap = self.current.load_full();
            if let Some(signed) = snap.dnssec.as_ref() {
                if Instant::now() >= next_sweep {
                    let t = Instant::now();
                    // RRsets that cannot be signed are counted and logged by the signer.
                    let n = signed.signer.refresh_all(&snap.zone, &self.stop, presign);
                    if n > 0 {
                        crate::log(&format!(
                            "signed {n} RRsets in {:.1} s",
                            t.elapsed().as_secs_f64()
                        ));
                    }
                    if let Err(e) = signed.refresh_soa(&snap.zone) {
                        crate::log(&format!("signing the SOA failed: {e}"));
                    }
                    let period = (signed.signer.policy().refresh / 4).clamp(1, 60);
                    next_sweep = Instant::now() + Duration::from_secs(period as u64);
                }
            }
            drop(snap);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Build a snapshot (signing the SOA for `serial` when the zone is signed).
pub fn make_snapshot(
    zone: Arc<Zone>,
    signer: Option<Arc<Signer>>,
    suppressions: Suppressions,
    splice: Splice,
    serial: u32,
) -> Result<Snapshot, String> {
    let dnssec = match signer {
        Some(s) => Some(Arc::new(
            Signed::new(s, &zone, serial, Arc::new(splice)).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    Ok(Snapshot {
        zone,
        dnssec,
        suppressions: Arc::new(suppressions),
        serial,
    })
}

impl crate::server::Answerer for Service {
    fn answer(
        &self,
        query: &[u8],
        _peer: std::net::SocketAddr,
        transport: crate::server::Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        self.answer_bytes(query, transport == crate::server::Transport::Tcp, out)
    }
}
