//! What the secondaries have: the transfer and NOTIFY progress shown by `GET /v1/status`.
//!
//! A [`Board`] holds one entry per configured NOTIFY target (secondaries and
//! also-notify addresses) and the counters of the control path. The transfer
//! side records what each secondary asked for (the serial in its IXFR request)
//! and what it was sent; the NOTIFY side records what it announced and which
//! announcement was answered. A transfer request is matched to a target by its
//! source address and, when the target has one, its TSIG key.
//!
//! Nothing here is on the query path: every method takes a short lock.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One transfer sent to a secondary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TransferReport {
    /// `AXFR`, `IXFR`, `IXFR-as-AXFR` (whole zone for an IXFR) or `up-to-date` (SOA only).
    pub kind: String,
    /// The serial the client had (IXFR), if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// The serial it was sent.
    pub to: u32,
    /// Records sent.
    pub records: u64,
    /// Bytes sent (messages, TCP length prefixes not counted).
    pub bytes: u64,
    /// Messages sent.
    pub messages: u64,
    /// Seconds the transfer took.
    pub seconds: f64,
    /// When it ended (RFC 3339, UTC).
    pub at: String,
}

/// What one NOTIFY target (a secondary or an also-notify address) has.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecondaryReport {
    /// Its name (`also-notify` for those addresses).
    pub name: String,
    /// Where its NOTIFY goes.
    pub address: String,
    /// The serial it has as far as we know: the last one it transferred, or the
    /// one its last IXFR request started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    /// Whether that is the serial served.
    pub current: bool,
    /// Seconds it has been behind the served serial (0 when current, absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// The last transfer it received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transfer: Option<TransferReport>,
    /// The serial of the last NOTIFY it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_answered: Option<u32>,
    /// When it answered it (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_answered_at: Option<String>,
    /// A NOTIFY not answered yet: its serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_pending: Option<u32>,
    /// NOTIFY attempts that got no (good) answer, since start.
    pub notify_failures: u64,
    /// Why the last one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_error: Option<String>,
}

/// The transfer side of `GET /v1/status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TransferStatus {
    /// Transfers (AXFR, IXFR) answered in full since start.
    pub transfers: u64,
    /// Transfers running now.
    pub active: u64,
    /// Requests refused (ACL, TSIG, limits) since start.
    pub refused: u64,
    /// Control messages from UDP answered "busy" because the control queue was full.
    pub busy: u64,
    /// Dynamic updates applied since start.
    pub updates: u64,
    /// Every NOTIFY target.
    pub secondaries: Vec<SecondaryReport>,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    address: SocketAddr,
    source: IpAddr,
    key: Option<Vec<u8>>,
    serial: Option<u32>,
    behind_since: Option<Instant>,
    last_transfer: Option<TransferReport>,
    notify_answered: Option<(u32, String)>,
    notify_pending: Option<u32>,
    notify_failures: u64,
    notify_error: Option<String>,
}

/// The progress of every NOTIFY target, and the control path's counters.
#[derive(Default)]
pub struct Board {
    entries: Mutex<Vec<Entry>>,
    served: Mutex<Option<(u32, Instant)>>,
    /// Transfers answered in full.
    pub transfers: AtomicU64,
    /// Transfers running.
    pub active: AtomicU64,
    /// Requests refused.
    pub refused: AtomicU64,
    /// Control messages answered "busy".
    pub busy: AtomicU64,
    /// Updates applied.
    pub updates: AtomicU64,
}

/// Now as RFC 3339 UTC text.
pub fn now_text() -> String {
    crate::suppress::list::format_time(crate::suppress::list::now_secs())
}

impl Board {
    /// An empty board.
    pub fn new() -> Board {
        Board::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a target; returns its index.
    pub fn add(
        &self,
        name: &str,
        address: SocketAddr,
        source: IpAddr,
        key: Option<&[u8]>,
    ) -> usize {
        let mut e = self.lock();
        e.push(Entry {
            name: name.to_string(),
            address,
            source: source.to_canonical(),
            key: key.map(crate::name::to_lowercase),
            serial: None,
            behind_since: None,
            last_transfer: None,
            notify_answered: None,
            notify_pending: None,
            notify_failures: 0,
            notify_error: None,
        });
        e.len() - 1
    }

    /// The target a transfer request from `ip` (signed with `key`) comes from.
    pub fn find(&self, ip: IpAddr, key: Option<&[u8]>) -> Option<usize> {
        let ip = ip.to_canonical();
        self.lock().iter().position(|e| {
            e.source == ip
                && match (&e.key, key) {
                    (Some(want), Some(got)) => crate::name::eq_ignore_case(want, got),
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        })
    }

    /// The served serial moved on: targets not there are behind from now.
    pub fn served(&self, serial: u32) {
        let now = Instant::now();
        *self.served.lock().unwrap_or_else(|p| p.into_inner()) = Some((serial, now));
        for e in self.lock().iter_mut() {
            if e.serial != Some(serial) && e.behind_since.is_none() {
                e.behind_since = Some(now);
            }
        }
    }

    fn served_serial(&self) -> Option<u32> {
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(s, _)| s)
    }

    fn set_serial(e: &mut Entry, serial: u32, served: Option<u32>) {
        e.serial = Some(serial);
        if Some(serial) == served {
            e.behind_since = None;
        } else if e.behind_since.is_none() {
            e.behind_since = Some(Instant::now());
        }
    }

    /// A target asked for an IXFR from `serial` (so it has that one).
    pub fn asked(&self, i: usize, serial: u32) {
        let served = self.served_serial();
        if let Some(e) = self.lock().get_mut(i) {
            Self::set_serial(e, serial, served);
        }
    }

    /// A target received a transfer in full.
    pub fn transferred(&self, i: usize, report: TransferReport) {
        let served = self.served_serial();
        if let Some(e) = self.lock().get_mut(i) {
            Self::set_serial(e, report.to, served);
            e.last_transfer = Some(report);
        }
    }

    /// A NOTIFY for `serial` is on its way to target `i`.
    pub fn notify_sent(&self, i: usize, serial: u32) {
        if let Some(e) = self.lock().get_mut(i) {
            e.notify_pending = Some(serial);
        }
    }

    /// Target `i` answered the NOTIFY for `serial`.
    pub fn notify_answered(&self, i: usize, serial: u32) {
        if let Some(e) = self.lock().get_mut(i) {
            e.notify_answered = Some((serial, now_text()));
            if e.notify_pending == Some(serial) {
                e.notify_pending = None;
            }
            e.notify_error = None;
        }
    }

    /// A NOTIFY to target `i` got no good answer.
    pub fn notify_failed(&self, i: usize, why: String) {
        if let Some(e) = self.lock().get_mut(i) {
            e.notify_failures += 1;
            e.notify_error = Some(why);
        }
    }

    /// The report for the status API.
    pub fn report(&self) -> TransferStatus {
        let served = self.served_serial();
        let secondaries = self
            .lock()
            .iter()
            .map(|e| {
                let current = served.is_some() && e.serial == served;
                SecondaryReport {
                    name: e.name.clone(),
                    address: e.address.to_string(),
                    serial: e.serial,
                    current,
                    lag_seconds: if current {
                        Some(0.0)
                    } else {
                        e.behind_since.map(|t| t.elapsed().as_secs_f64())
                    },
                    last_transfer: e.last_transfer.clone(),
                    notify_answered: e.notify_answered.as_ref().map(|x| x.0),
                    notify_answered_at: e.notify_answered.as_ref().map(|x| x.1.clone()),
                    notify_pending: e.notify_pending,
                    notify_failures: e.notify_failures,
                    notify_error: e.notify_error.clone(),
                }
            })
            .collect();
        TransferStatus {
            transfers: self.transfers.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            updates: self.updates.load(Ordering::Relaxed),
            secondaries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secondary_is_behind_until_it_transfers_the_served_serial() {
        let b = Board::new();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let i = b.add("knot", "127.0.0.2:53".parse().unwrap(), ip, None);
        let k = b.add(
            "keyed",
            "127.0.0.3:53".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
            Some(b"\x01k\x00"),
        );
        assert_eq!(b.find("::ffff:127.0.0.2".parse().unwrap(), None), Some(i));
        assert_eq!(b.find("127.0.0.3".parse().unwrap(), None), None);
        assert_eq!(
            b.find("127.0.0.3".parse().unwrap(), Some(b"\x01K\x00")),
            Some(k)
        );
        b.served(10);
        b.asked(i, 9);
        let r = b.report();
        assert!(!r.secondaries[0].current);
        assert!(r.secondaries[0].lag_seconds.is_some());
        b.transferred(
            i,
            TransferReport {
                kind: "IXFR".into(),
                from: Some(9),
                to: 10,
                records: 5,
                bytes: 300,
                messages: 1,
                seconds: 0.01,
                at: now_text(),
            },
        );
        b.notify_sent(i, 10);
        b.notify_answered(i, 10);
        let r = b.report();
        let s = &r.secondaries[0];
        assert!(s.current);
        assert_eq!(s.lag_seconds, Some(0.0));
        assert_eq!(s.notify_answered, Some(10));
        assert_eq!(s.notify_pending, None);
        b.served(11);
        assert!(!b.report().secondaries[0].current);
    }
}
