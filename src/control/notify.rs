//! NOTIFY out (RFC 1996): every new serial is announced to every target until answered.
//!
//! One thread with a current-thread tokio runtime. It looks at the served serial
//! every [`POLL`] (a pointer load) and, once the zone is fully signed, hands each
//! new serial to one task per target. A task sends a NOTIFY over UDP
//! ([`crate::xfr::notify::send`], TSIG-signed when the target has a key) with the
//! current SOA, and retries with a doubling delay (1 s, 2 s, 4 s, … up to the
//! configured maximum) until the target answers; a newer serial replaces the one
//! being retried at once (RFC 1996 §3.6, §4.4: only the newest version matters).
//! What was sent and answered goes to the [`Board`].
//!
//! Before the start-up signing pass has finished nothing is announced (a
//! transfer would be refused then); the first serial announced is the one
//! served when it finishes, so secondaries that missed changes while belfry
//! was down catch up at once.

use super::progress::Board;
use super::Target;
use crate::publish::Publisher;
use crate::service::Service;
use crate::wire::decode::Record;
use crate::wire::Rtype;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the served serial is looked at.
pub const POLL: Duration = Duration::from_millis(10);
/// The first retry delay.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Settings of the sender.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How long one NOTIFY waits for its answer.
    pub timeout: Duration,
    /// Longest delay between retries.
    pub max_interval: Duration,
}

/// Start the NOTIFY sender (returns at once when there is no target).
pub fn spawn(
    publisher: Arc<Publisher>,
    service: Arc<Service>,
    board: Arc<Board>,
    targets: Vec<Target>,
    timing: Timing,
) -> Option<std::thread::JoinHandle<()>> {
    if targets.is_empty() {
        return None;
    }
    let t = std::thread::Builder::new()
        .name("belfry-notify".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("NOTIFY sender cannot start its runtime: {e}");
                    return;
                }
            };
            rt.block_on(run(publisher, service, board, targets, timing));
        });
    match t {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!("cannot start the NOTIFY sender: {e}");
            None
        }
    }
}

/// The served SOA as a record, for the NOTIFY's answer section.
fn soa_of(publisher: &Publisher) -> (u32, Record) {
    let snap = publisher.snapshot();
    let soa = snap.zone.soa();
    (
        snap.serial,
        Record {
            owner: snap.zone.origin().to_vec(),
            rtype: Rtype::SOA,
            class: 1,
            ttl: soa.ttl(),
            rdata: soa.rr(0).to_vec(),
        },
    )
}

async fn run(
    publisher: Arc<Publisher>,
    service: Arc<Service>,
    board: Arc<Board>,
    targets: Vec<Target>,
    timing: Timing,
) {
    let (tx, rx) = watch::channel::<Option<u32>>(None);
    let zone = publisher.snapshot().zone.origin().to_vec();
    let mut tasks = Vec::new();
    for (i, t) in targets.into_iter().enumerate() {
        let (rx, p, b, z, tm) = (
            rx.clone(),
            publisher.clone(),
            board.clone(),
            zone.clone(),
            timing.clone(),
        );
        tasks.push(tokio::spawn(target_task(i, t, rx, p, b, z, tm)));
    }
    let mut last = None;
    while !publisher.stopping() {
        let ready =
            service.fully_signed.load(Ordering::Relaxed) || publisher.snapshot().dnssec.is_none();
        if ready {
            let s = publisher.snapshot().serial;
            if last != Some(s) {
                last = Some(s);
                tracing::debug!("serial {s} is served: NOTIFY goes out");
                board.served(s);
                let _ = tx.send(Some(s));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    drop(tx);
    for t in tasks {
        t.abort();
    }
}

async fn target_task(
    i: usize,
    t: Target,
    mut rx: watch::Receiver<Option<u32>>,
    publisher: Arc<Publisher>,
    board: Arc<Board>,
    zone: Vec<u8>,
    timing: Timing,
) {
    let mut answered: Option<u32> = None;
    loop {
        // Wait for a serial this target has not acknowledged.
        loop {
            let want = *rx.borrow_and_update();
            let newer = match (want, answered) {
                (Some(w), Some(a)) => crate::serial::serial_gt(w, a),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if newer {
                break;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
        let mut delay = FIRST_RETRY;
        let mut failures = 0u32;
        loop {
            let (serial, soa) = soa_of(&publisher);
            board.notify_sent(i, serial);
            let sent = std::time::Instant::now();
            match crate::xfr::notify::send(
                t.address,
                &zone,
                Some(&soa),
                t.key.as_ref(),
                timing.timeout,
            )
            .await
            {
                Ok(()) => {
                    tracing::debug!(
                        "NOTIFY to {} for serial {serial} answered in {:.1} ms",
                        t.name,
                        sent.elapsed().as_secs_f64() * 1000.0
                    );
                    board.notify_answered(i, serial);
                    if failures > 0 {
                        tracing::info!(
                            "NOTIFY to {} ({}) answered for serial {serial} after {failures} failed attempts",
                            t.name,
                            t.address
                        );
                    }
                    answered = Some(serial);
                    break;
                }
                Err(e) => {
                    tracing::debug!(
                        "NOTIFY to {} for serial {serial} failed after {:.1} ms: {e}",
                        t.name,
                        sent.elapsed().as_secs_f64() * 1000.0
                    );
                    failures += 1;
                    board.notify_failed(i, e.to_string());
                    // The first failure and then every tenth, not every retry.
                    if failures == 1 || failures % 10 == 0 {
                        tracing::warn!(
                            "NOTIFY to {} ({}) for serial {serial}: {e} (attempt {failures}, retrying)",
                            t.name,
                            t.address
                        );
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        r = rx.changed() => {
                            if r.is_err() {
                                return;
                            }
                            // A newer serial: announce it at once.
                            delay = FIRST_RETRY;
                            continue;
                        }
                    }
                    delay = (delay * 2).min(timing.max_interval);
                }
            }
        }
    }
}
