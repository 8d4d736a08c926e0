//! The DNSSEC clock: seconds since the epoch, read without a syscall, with a test seam.
//!
//! [`now`] is a coarse clock that the background task advances about twice a
//! second ([`tick`]); signature inception and expiry, signature freshness on
//! the query path and every key timing (RFC 7583) read it. It must not be used
//! for timeouts (those use `Instant`).
//!
//! **Test seam**: when `BELFRY_TEST_CLOCK` is set (read once, at the first
//! use), the clock is simulated: `start=<unix seconds>,speed=<n>,offset=<seconds>`
//! (each part optional) gives `start + offset + (real − start) × speed`, so a
//! key's whole lifetime runs in seconds and several processes that share
//! `start` agree on the time across restarts. `belfry serve` logs a warning
//! when it is set ([`announce`]); it has no place in production.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The environment variable of the simulated-clock test seam.
pub const TEST_CLOCK_ENV: &str = "BELFRY_TEST_CLOCK";

/// A simulated clock: `start + offset + (real − start) × speed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Simulated {
    /// Real time (seconds since the epoch) at which simulated time equals real time plus `offset`.
    pub start: u64,
    /// How many simulated seconds pass per real second.
    pub speed: u64,
    /// Seconds added to the simulated time.
    pub offset: i64,
}

impl Simulated {
    /// Parse `start=<secs>,speed=<n>,offset=<secs>` (every part optional; `start`
    /// defaults to `real_now`, `speed` to 1, `offset` to 0).
    pub fn parse(text: &str, real_now: u64) -> Result<Simulated, String> {
        let mut s = Simulated {
            start: real_now,
            speed: 1,
            offset: 0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{TEST_CLOCK_ENV}: '{part}' is not key=value"))?;
            let bad = || format!("{TEST_CLOCK_ENV}: {k}: '{v}' is not a number");
            match k.trim() {
                "start" => s.start = v.trim().parse().map_err(|_| bad())?,
                "speed" => s.speed = v.trim().parse().map_err(|_| bad())?,
                "offset" => s.offset = v.trim().parse().map_err(|_| bad())?,
                _ => {
                    return Err(format!(
                        "{TEST_CLOCK_ENV}: unknown part '{k}' (start, speed, offset)"
                    ))
                }
            }
        }
        if s.speed == 0 || s.speed > 1_000_000 {
            return Err(format!("{TEST_CLOCK_ENV}: speed must be 1..=1000000"));
        }
        Ok(s)
    }

    /// The simulated time at a real time.
    pub fn at(&self, real: u64) -> u64 {
        let elapsed = real.saturating_sub(self.start);
        let t = self.start as i64 + self.offset + (elapsed.saturating_mul(self.speed)) as i64;
        t.max(0) as u64
    }
}

static NOW: AtomicU32 = AtomicU32::new(0);
static SIMULATED: OnceLock<Option<Simulated>> = OnceLock::new();

fn real_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The simulated clock in force, if the test seam is set (read once).
pub fn simulated() -> Option<Simulated> {
    *SIMULATED.get_or_init(|| {
        let v = std::env::var(TEST_CLOCK_ENV).ok()?;
        match Simulated::parse(&v, real_secs()) {
            Ok(s) => Some(s),
            Err(e) => {
                // A test asked for it: failing loudly beats running on the wrong clock.
                eprintln!("belfry: {e}");
                std::process::exit(2);
            }
        }
    })
}

/// Log loudly when the simulated clock is in force (called once at start).
pub fn announce() {
    if let Some(s) = simulated() {
        tracing::warn!(
            "TEST SEAM ({TEST_CLOCK_ENV}): the DNSSEC clock is simulated ({} s per second, \
             offset {} s, from {}); signatures and key timings follow it, not the real time",
            s.speed,
            s.offset,
            crate::suppress::list::format_time(s.start)
        );
    }
}

/// Seconds since the epoch (simulated under the test seam), from the coarse clock.
pub fn now() -> u32 {
    let n = NOW.load(Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    tick()
}

/// Advance the coarse clock (called about twice a second by the background task,
/// and by whatever needs a fresh reading); returns the new time.
pub fn tick() -> u32 {
    let real = real_secs();
    let t = match simulated() {
        Some(s) => s.at(real),
        None => real,
    };
    let n = t.min(u32::MAX as u64) as u32;
    NOW.store(n, Ordering::Relaxed);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_time_runs_at_its_speed_from_its_start() {
        let s = Simulated::parse("start=1000,speed=600", 5).unwrap();
        assert_eq!(s.at(1000), 1000);
        assert_eq!(s.at(1001), 1600);
        assert_eq!(s.at(900), 1000, "before the start it stands still");
        let s = Simulated::parse("speed=2,offset=-10", 100).unwrap();
        assert_eq!((s.start, s.at(110)), (100, 110));
        assert!(Simulated::parse("speed=0", 0).is_err());
        assert!(Simulated::parse("pace=3", 0).is_err());
        assert!(Simulated::parse("speed=x", 0).is_err());
        assert_eq!(Simulated::parse("", 7).unwrap().at(9), 9);
    }
}
