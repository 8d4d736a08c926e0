//! Following a primary: belfry as the signer in front of an unsigned primary.
//!
//! When `[zone] primary` is set, a thread checks the primary's SOA serial (at the
//! SOA's refresh interval, sooner after a NOTIFY, at the retry interval after a
//! failure) and transfers what is new: IXFR from the serial last taken (RFC 1995),
//! AXFR when IXFR cannot serve it (RFC 5936). An incremental transfer becomes one
//! change of the publisher ([`Publisher::apply_transfer`]); a full one is taken like
//! a reloaded zone file ([`Publisher::reload`]): the same checks, the same safety
//! threshold, signatures of what did not change carried over. TSIG protects every
//! request and answer when a key is configured.

use super::client::{self, Primary, Refresh, Transfer};
use super::Limits;
use crate::publish::change::{ChangeError, EditSource, Outcome};
use crate::publish::reload::ReloadOptions;
use crate::publish::Publisher;
use crate::wire::decode::Record;
use crate::zone::{Zone, ZoneBuilder};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// What the follower needs to know.
#[derive(Clone, Debug)]
pub struct FollowCfg {
    /// The primary (address and TSIG key).
    pub primary: Primary,
    /// The zone (wire form).
    pub origin: Vec<u8>,
    /// Seconds between SOA checks; 0 = the SOA's refresh field.
    pub refresh: u64,
    /// Largest share of delegations a full transfer may remove without force.
    pub max_removed_share: f64,
}

/// The primary described by a configuration, with its TSIG key loaded.
pub fn primary_of(cfg: &crate::config::Config) -> Result<Option<Primary>, String> {
    let Some(addr) = cfg.zone.primary else {
        return Ok(None);
    };
    let key = match &cfg.zone.primary_key_file {
        None => None,
        Some(f) => {
            let keys = crate::tsig::keyfile::load(f).map_err(|e| e.to_string())?;
            let k = match &cfg.zone.primary_key {
                Some(name) => keys.into_iter().find(|k| {
                    crate::name::to_text(k.name()).trim_end_matches('.')
                        == name.trim_end_matches('.')
                }),
                None if keys.len() == 1 => keys.into_iter().next(),
                None => {
                    return Err(format!(
                        "{}: several keys; name one with [zone] primary_key",
                        f.display()
                    ))
                }
            };
            Some(k.ok_or_else(|| format!("{}: no such key for [zone] primary_key", f.display()))?)
        }
    };
    Ok(Some(Primary { addr, key }))
}

/// A zone from a full transfer's records, checked like a zone file.
pub fn zone_of(origin: &[u8], records: &[Record]) -> Result<Zone, String> {
    let mut b = ZoneBuilder::new(origin);
    let src = Path::new("<transfer>");
    for (i, r) in records.iter().enumerate() {
        b.add(&r.owner, r.class, r.rtype.0, r.ttl, &r.rdata, src, i + 1)
            .map_err(|e| format!("record {} of the transfer: {e}", i + 1))?;
    }
    b.finish().map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("transfer runtime: {e}"))
}

/// Transfer the whole zone from the primary (at start, when there is nothing yet).
pub fn initial_zone(p: &Primary, origin: &[u8]) -> Result<(Zone, u32), String> {
    let rt = runtime()?;
    let t = rt
        .block_on(client::transfer(
            p,
            origin,
            client::Kind::Axfr,
            &Limits::default(),
        ))
        .map_err(|e| format!("AXFR from the primary {}: {e}", p.addr))?;
    let serial = t.serial();
    match t {
        Transfer::Full { records } => Ok((zone_of(origin, &records)?, serial)),
        _ => Err(format!("the primary {} answered AXFR with no zone", p.addr)),
    }
}

/// Check the primary once and take what is new; `Ok(None)` when up to date.
pub fn refresh_once(
    publisher: &Publisher,
    cfg: &FollowCfg,
    rt: &tokio::runtime::Runtime,
) -> Result<Option<Outcome>, String> {
    let current = publisher.source_soa();
    let r = rt
        .block_on(client::refresh(
            &cfg.primary,
            &cfg.origin,
            current.as_ref(),
            &Limits::default(),
        ))
        .map_err(|e| format!("refresh from {}: {e}", cfg.primary.addr))?;
    let (transfer, fell_back) = match r {
        Refresh::UpToDate { .. } => return Ok(None),
        Refresh::Transferred {
            transfer,
            fell_back,
        } => (transfer, fell_back),
    };
    let serial = transfer.serial();
    let how = match (&transfer, fell_back) {
        (Transfer::Incremental { .. }, _) => "IXFR",
        (_, true) => "AXFR after a failed IXFR",
        _ => "AXFR",
    };
    let out = match transfer {
        Transfer::UpToDate { .. } => return Ok(None),
        Transfer::Full { records } => {
            let zone = zone_of(&cfg.origin, &records)?;
            let opts = ReloadOptions {
                source: EditSource::Transfer,
                force: false,
                max_removed_share: cfg.max_removed_share,
                fingerprint: None,
            };
            publisher.reload(zone, opts, "transfer")
        }
        Transfer::Incremental { soa, diffs } => publisher.apply_transfer(&soa, &diffs, "transfer"),
    };
    match out {
        Ok(o) => {
            tracing::info!(
                "took serial {serial} of the primary {} by {how}: {} names changed, serial {} served",
                cfg.primary.addr,
                o.names_changed,
                o.serial
            );
            Ok(Some(o))
        }
        Err(ChangeError::Unchanged) => {
            publisher.set_source_serial(serial);
            Ok(None)
        }
        Err(e) => Err(format!("serial {serial} of the primary refused: {e}")),
    }
}

/// The follower thread's handle: a NOTIFY from the primary makes it look at once.
#[derive(Clone)]
pub struct Follower {
    tx: mpsc::SyncSender<()>,
}

impl Follower {
    /// The primary said the zone changed (RFC 1996): check now.
    pub fn notify(&self) {
        let _ = self.tx.try_send(());
    }
}

/// Start following the primary in a thread.
pub fn spawn(publisher: Arc<Publisher>, cfg: FollowCfg) -> Result<Follower, String> {
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("belfry-follow".into())
        .spawn(move || {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("{e}");
                    return;
                }
            };
            // Check at once, then at the refresh interval, sooner after a NOTIFY.
            let mut next = std::time::Instant::now();
            while !publisher.stopping() {
                let left = next.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left.min(Duration::from_secs(1))) {
                    Ok(()) => next = std::time::Instant::now(),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                if std::time::Instant::now() < next {
                    continue;
                }
                let (refresh, retry) = publisher.source_timers();
                let every = if cfg.refresh > 0 {
                    cfg.refresh
                } else {
                    refresh
                }
                .max(1);
                let wait = match refresh_once(&publisher, &cfg, &rt) {
                    Ok(_) => every,
                    Err(e) => {
                        tracing::error!("{e}; the served zone stays, retry in {retry} s");
                        retry.clamp(1, every)
                    }
                };
                next = std::time::Instant::now() + Duration::from_secs(wait);
            }
        })
        .map_err(|e| format!("follower thread: {e}"))?;
    Ok(Follower { tx })
}
