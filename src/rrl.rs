//! Response rate limiting (RRL), after the model of BIND, Knot and NSD.
//!
//! Each UDP answer is charged to a token bucket named by the client's network
//! (a /24 for IPv4, a /56 for IPv6 by default), the answer's class and, for
//! positive answers and referrals, the name it is about:
//!
//! | class | identity | rate |
//! |---|---|---|
//! | [`Class::Answer`] | query name and type | `answer_rate` |
//! | [`Class::Referral`] | the delegation (first label below the zone) | `referral_rate` |
//! | [`Class::Negative`] (NXDOMAIN, NODATA) | the zone | `negative_rate` |
//! | [`Class::Error`] (REFUSED, FORMERR, SERVFAIL, BADCOOKIE, ...) | the zone | `error_rate` |
//!
//! A bucket gains its rate in tokens each second, up to the rate; each answer
//! takes one. A bucket in debt limits: its answers are dropped, except every
//! `slip`-th, which goes out truncated (TC=1, nothing but the question) so a real
//! client behind a spoofed address retries over TCP. The debt is floored at
//! `window` seconds' worth of the rate, so a network stays limited until its
//! flood has been over for up to `window` seconds. TCP answers and answers to
//! clients with a valid server cookie (RFC 7873) are never charged; neither are
//! the `exempt` networks. With `log_only` the limits are computed and logged but
//! every answer goes out.
//!
//! It must not allocate, block or grow on the query path. The table is a fixed
//! array of 64-byte sets of eight 8-byte buckets, sized at start and never grown: a spoofed flood from many networks evicts buckets that
//! are not limiting before those that are. Each bucket is one atomic word (tag,
//! limiting flag, second, balance) updated by compare-and-swap, so every worker
//! shares the one table without a lock. The query path never allocates:
//! a network that starts to be limited is noted in a bounded list (with
//! `try_lock`, never waiting), and [`Rrl::sweep`], called by the background task
//! about twice a second, logs when a network starts and stops being limited
//! (a few lines per sweep at most, the rest summed up).

use ipnet::IpNet;
use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The answer classes that have buckets (and rates) of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Data for the name (authoritative answers, CHAOS identity).
    Answer = 0,
    /// A referral to a delegation.
    Referral = 1,
    /// NXDOMAIN or NODATA.
    Negative = 2,
    /// Any error rcode.
    Error = 3,
}

impl Class {
    /// The class's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Class::Answer => "answer",
            Class::Referral => "referral",
            Class::Negative => "nxdomain/nodata",
            Class::Error => "error",
        }
    }
}

/// What to do with one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Pass,
    /// Send nothing.
    Drop,
    /// Send it truncated (TC=1, no records).
    Slip,
    /// Over the limit, but `log_only` is set: send it.
    WouldLimit,
}

/// RRL settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Answers per second per bucket, by [`Class`].
    pub rates: [u32; 4],
    /// Every `slip`-th limited answer is sent truncated (0: none, 1: all).
    pub slip: u32,
    /// Seconds of debt a bucket can run up (how long a flood is remembered).
    pub window: u32,
    /// Prefix length of an IPv4 client network.
    pub ipv4_prefix: u8,
    /// Prefix length of an IPv6 client network.
    pub ipv6_prefix: u8,
    /// Buckets in the table (rounded up to a power of two).
    pub table_size: usize,
    /// Networks never limited.
    pub exempt: Vec<IpNet>,
    /// Compute and log, but send every answer.
    pub log_only: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rates: [DEFAULT_RATE; 4],
            slip: 2,
            window: 15,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            table_size: 1 << 18,
            exempt: Vec::new(),
            log_only: false,
        }
    }
}

/// Default answers per second per bucket (NSD's default; see the README).
pub const DEFAULT_RATE: u32 = 200;
/// Largest debt a bucket can hold (rate × window), from the 24-bit balance.
pub const MAX_DEBT: u64 = (1 << 23) - 1;
/// Buckets per set: one cache line.
const WAYS: usize = 8;
/// Networks whose limiting is followed for the log at once.
const FOLLOWED: usize = 64;
/// Log lines about networks per sweep; the rest are summed up in one line.
const LINES_PER_SWEEP: usize = 8;
/// Sets looked at per sweep to clear buckets unused for a long time.
const CLEAR_PER_SWEEP: usize = 4096;
/// A bucket unused this long (seconds) is cleared by the sweep (before its 16-bit second wraps).
const IDLE_CLEAR: u16 = 3600;

// One bucket in one u64: tag (23 bits) | limiting (1) | second (16) | balance + 2^23 (24).
const TAG_SHIFT: u32 = 41;
const LIMITING: u64 = 1 << 40;
const STAMP_SHIFT: u32 = 24;
const BAL_MASK: u64 = (1 << 24) - 1;
const BAL_BIAS: i64 = 1 << 23;

fn pack(tag: u64, limiting: bool, stamp: u16, balance: i64) -> u64 {
    (tag << TAG_SHIFT)
        | if limiting { LIMITING } else { 0 }
        | ((stamp as u64) << STAMP_SHIFT)
        | ((balance + BAL_BIAS) as u64 & BAL_MASK)
}

fn tag_of(e: u64) -> u64 {
    e >> TAG_SHIFT
}

fn stamp_of(e: u64) -> u16 {
    (e >> STAMP_SHIFT) as u16
}

fn balance_of(e: u64) -> i64 {
    (e & BAL_MASK) as i64 - BAL_BIAS
}

/// One cache line of buckets.
#[repr(align(64))]
struct Set([AtomicU64; WAYS]);

/// A network that started to be limited, followed until it stops.
#[derive(Clone, Copy, Debug)]
struct Followed {
    net: IpAddr,
    bits: u8,
    class: Class,
    set: usize,
    tag: u64,
    since: u32,
    logged: bool,
}

thread_local! {
    /// Limited answers seen by this thread, for the slip count.
    static LIMITED: Cell<u32> = const { Cell::new(0) };
}

/// The rate-limiting table, shared by every worker.
pub struct Rrl {
    settings: Settings,
    sets: Box<[Set]>,
    mask: usize,
    hasher: foldhash::fast::FixedState,
    followed: Mutex<Vec<Followed>>,
    /// Networks that began to be limited while the followed list was full or busy.
    unfollowed: AtomicU64,
    clear_at: AtomicUsize,
}

impl std::fmt::Debug for Rrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rrl")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Keep the first `bits` bits of an address.
pub fn network(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - bits.min(32) as u32).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - bits.min(128) as u32)
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl Rrl {
    /// A table with these settings (its memory is taken here, once).
    pub fn new(settings: Settings) -> Rrl {
        let sets = (settings.table_size.max(WAYS) / WAYS).next_power_of_two();
        let table: Vec<Set> = (0..sets)
            .map(|_| Set(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        let mut seed = [0u8; 8];
        {
            use ring::rand::SecureRandom;
            // A seed the sender cannot guess, so it cannot aim at one set; a fixed one if
            // the generator fails (still correct, only easier to aim at).
            let _ = ring::rand::SystemRandom::new().fill(&mut seed);
        }
        Rrl {
            settings,
            mask: sets - 1,
            sets: table.into_boxed_slice(),
            hasher: foldhash::fast::FixedState::with_seed(u64::from_le_bytes(seed)),
            followed: Mutex::new(Vec::with_capacity(FOLLOWED)),
            unfollowed: AtomicU64::new(0),
            clear_at: AtomicUsize::new(0),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Number of buckets in the table.
    pub fn buckets(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// Whether answers to this client are never limited.
    pub fn exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.settings.exempt.iter().any(|n| n.contains(&ip))
    }

    /// The client's network, as limited.
    pub fn network_of(&self, ip: IpAddr) -> (IpAddr, u8) {
        let ip = ip.to_canonical();
        let bits = match ip {
            IpAddr::V4(_) => self.settings.ipv4_prefix,
            IpAddr::V6(_) => self.settings.ipv6_prefix,
        };
        (network(ip, bits), bits)
    }

    fn hash(&self, net: IpAddr, class: Class, name: &[u8], qtype: u16) -> u64 {
        let mut h = self.hasher.build_hasher();
        match net {
            IpAddr::V4(a) => h.write_u32(u32::from(a)),
            IpAddr::V6(a) => h.write_u128(u128::from(a)),
        }
        h.write_u8(class as u8);
        h.write_u16(qtype);
        h.write(name);
        h.finish()
    }

    /// Start loading the set [`Rrl::account`] will use for these arguments into the
    /// cache, so that the miss overlaps the writing of the answer instead of following
    /// it (the table is larger than the caches; the miss was three quarters of the
    /// accounting's time). A hint only: it changes nothing.
    #[inline]
    pub fn prefetch(&self, ip: IpAddr, class: Class, name: &[u8], qtype: u16) {
        let hash = self.hash(self.network_of(ip).0, class, name, qtype);
        let set = &self.sets[hash as usize & self.mask];
        crate::hint::prefetch(set);
    }

    /// Charge one UDP answer of `class` about `name` and `qtype` (a lookup key and
    /// type; empty and 0 for the zone-wide classes) to the client's bucket at second
    /// `now`; says what to send.
    pub fn account(&self, ip: IpAddr, class: Class, name: &[u8], qtype: u16, now: u32) -> Verdict {
        let (net, bits) = self.network_of(ip);
        let hash = self.hash(net, class, name, qtype);
        let set_no = hash as usize & self.mask;
        // 23 bits of tag, never 0 (0 is an empty bucket).
        let tag = (hash >> TAG_SHIFT) | 1;
        let rate = self.settings.rates[class as usize].max(1) as i64;
        let floor = -((rate * self.settings.window.max(1) as i64).min(MAX_DEBT as i64));
        let stamp = now as u16;
        let set = &self.sets[set_no];
        for _ in 0..4 {
            let (slot, old) = self.find(set, tag, stamp);
            let (was_limiting, balance) = if old != 0 && tag_of(old) == tag {
                let elapsed = stamp.wrapping_sub(stamp_of(old)) as i64;
                let b = balance_of(old);
                let b = if elapsed > 0 {
                    (b + elapsed * rate).min(rate)
                } else {
                    b
                };
                (old & LIMITING != 0, b)
            } else {
                (false, rate)
            };
            let b = (balance - 1).max(floor);
            let limiting = b < 0;
            let new = pack(tag, limiting, stamp, b);
            if set.0[slot]
                .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if !limiting {
                return Verdict::Pass;
            }
            if !was_limiting {
                self.follow(net, bits, class, set_no, tag, now);
            }
            if self.settings.log_only {
                return Verdict::WouldLimit;
            }
            let n = LIMITED.with(|c| {
                let n = c.get().wrapping_add(1);
                c.set(n);
                n
            });
            let slip = self.settings.slip;
            return if slip > 0 && n % slip == 0 {
                Verdict::Slip
            } else {
                Verdict::Drop
            };
        }
        // Lost the race four times: let this one through.
        Verdict::Pass
    }

    /// The bucket with this tag in a set, or the one to replace: an empty one, else the
    /// longest unused that is not limiting, else the longest unused.
    fn find(&self, set: &Set, tag: u64, now: u16) -> (usize, u64) {
        let mut empty = None;
        // Lower is a better victim: not limiting first, then the oldest.
        let mut victim = (0usize, 0u64, (true, u16::MAX));
        for (i, b) in set.0.iter().enumerate() {
            let e = b.load(Ordering::Relaxed);
            if e == 0 {
                empty = empty.or(Some(i));
                continue;
            }
            if tag_of(e) == tag {
                return (i, e);
            }
            let rank = (e & LIMITING != 0, u16::MAX - now.wrapping_sub(stamp_of(e)));
            if rank <= victim.2 {
                victim = (i, e, rank);
            }
        }
        match empty {
            Some(i) => (i, 0),
            None => (victim.0, victim.1),
        }
    }

    /// Note a network that began to be limited (never waits; counted when it cannot).
    fn follow(&self, net: IpAddr, bits: u8, class: Class, set: usize, tag: u64, now: u32) {
        match self.followed.try_lock() {
            Ok(mut l) if l.len() < FOLLOWED => l.push(Followed {
                net,
                bits,
                class,
                set,
                tag,
                since: now,
                logged: false,
            }),
            _ => {
                self.unfollowed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Networks being limited, as followed for the log (at the last sweep).
    pub fn limited_now(&self) -> usize {
        self.followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether the bucket of a followed network is still limiting at `now`.
    fn still_limiting(&self, f: &Followed, now: u32) -> bool {
        let set = &self.sets[f.set];
        let rate = self.settings.rates[f.class as usize].max(1) as i64;
        set.0.iter().any(|b| {
            let e = b.load(Ordering::Relaxed);
            if e == 0 || tag_of(e) != f.tag || e & LIMITING == 0 {
                return false;
            }
            let elapsed = (now as u16).wrapping_sub(stamp_of(e)) as i64;
            balance_of(e) + elapsed * rate < 0
        })
    }

    /// Background work, about twice a second: log networks that started or stopped
    /// being limited, and clear buckets unused for an hour. Returns the networks
    /// being limited (as followed).
    pub fn sweep(&self, now: u32) -> usize {
        let mut lines = 0usize;
        let mut more = 0usize;
        let limited = {
            let mut l = self.followed.lock().unwrap_or_else(|p| p.into_inner());
            for f in l.iter_mut().filter(|f| !f.logged) {
                f.logged = true;
                if lines < LINES_PER_SWEEP {
                    lines += 1;
                    tracing::warn!(
                        "RRL: limiting {}/{} ({} answers over {}/s){}",
                        f.net,
                        f.bits,
                        f.class.name(),
                        self.settings.rates[f.class as usize],
                        if self.settings.log_only {
                            " [log only]"
                        } else {
                            ""
                        }
                    );
                } else {
                    more += 1;
                }
            }
            let mut stopped = Vec::new();
            l.retain(|f| {
                let on = self.still_limiting(f, now);
                if !on {
                    stopped.push(*f);
                }
                on
            });
            for f in stopped {
                if lines < LINES_PER_SWEEP {
                    lines += 1;
                    tracing::info!(
                        "RRL: stopped limiting {}/{} ({} answers) after {} s",
                        f.net,
                        f.bits,
                        f.class.name(),
                        now.saturating_sub(f.since)
                    );
                } else {
                    more += 1;
                }
            }
            l.len()
        };
        let unfollowed = self.unfollowed.swap(0, Ordering::Relaxed);
        if more > 0 || unfollowed > 0 {
            tracing::warn!(
                "RRL: {} more networks started or stopped being limited (not logged one by one)",
                more as u64 + unfollowed
            );
        }
        // Clear long-unused buckets, a slice of the table at a time.
        let start = self.clear_at.fetch_add(CLEAR_PER_SWEEP, Ordering::Relaxed);
        let stamp = now as u16;
        for i in 0..CLEAR_PER_SWEEP.min(self.sets.len()) {
            let set = &self.sets[(start + i) & self.mask];
            for b in &set.0 {
                let e = b.load(Ordering::Relaxed);
                if e != 0 && stamp.wrapping_sub(stamp_of(e)) >= IDLE_CLEAR {
                    let _ = b.compare_exchange(e, 0, Ordering::Relaxed, Ordering::Relaxed);
                }
            }
        }
        limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rate: u32, slip: u32, window: u32) -> Rrl {
        Rrl::new(Settings {
            rates: [rate; 4],
            slip,
            window,
            table_size: 1024,
            ..Settings::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn packing_round_trips() {
        for (tag, lim, stamp, bal) in [
            (1u64, false, 0u16, 0i64),
            ((1 << 23) - 1, true, u16::MAX, -(MAX_DEBT as i64)),
            (12345, true, 77, 200),
            (3, false, 1, -1),
        ] {
            let e = pack(tag, lim, stamp, bal);
            assert_eq!(tag_of(e), tag);
            assert_eq!(e & LIMITING != 0, lim);
            assert_eq!(stamp_of(e), stamp);
            assert_eq!(balance_of(e), bal);
        }
    }

    #[test]
    fn a_network_gets_its_rate_then_slips_and_drops() {
        let r = rrl(10, 2, 2);
        let now = 1000;
        let mut v = Vec::new();
        for i in 0..30 {
            let src = ip(&format!("192.0.2.{i}"));
            v.push(r.account(src, Class::Negative, b"", 0, now));
        }
        assert!(v[..10].iter().all(|&x| x == Verdict::Pass), "{v:?}");
        let slips = v[10..].iter().filter(|&&x| x == Verdict::Slip).count();
        let drops = v[10..].iter().filter(|&&x| x == Verdict::Drop).count();
        assert_eq!(slips + drops, 20);
        assert_eq!(slips, 10, "every second limited answer slips");
        // Another /24 and another class have their own buckets.
        assert_eq!(
            r.account(ip("192.0.3.1"), Class::Negative, b"", 0, now),
            Verdict::Pass
        );
        assert_eq!(
            r.account(ip("192.0.2.1"), Class::Referral, b"x", 0, now),
            Verdict::Pass
        );
        // Positive answers about other names are other buckets.
        for i in 0..20 {
            let name = format!("name{i}");
            assert_eq!(
                r.account(ip("192.0.2.1"), Class::Answer, name.as_bytes(), 0, now),
                Verdict::Pass
            );
        }
    }

    #[test]
    fn debt_is_remembered_for_the_window_then_forgiven() {
        let r = rrl(10, 0, 2);
        let src = ip("198.51.100.9");
        // A flood of 100 in one second: 10 pass, the debt reaches the floor (-20).
        let passed = (0..100)
            .filter(|_| r.account(src, Class::Error, b"", 0, 500) == Verdict::Pass)
            .count();
        assert_eq!(passed, 10);
        // One second later: +10 tokens, still in debt.
        assert_eq!(r.account(src, Class::Error, b"", 0, 501), Verdict::Drop);
        // Two more seconds: back above zero.
        assert_eq!(r.account(src, Class::Error, b"", 0, 503), Verdict::Pass);
    }

    #[test]
    fn ipv6_networks_and_configured_prefixes() {
        let r = rrl(5, 1, 1);
        for i in 0..5 {
            let a = ip(&format!("2001:db8:1:20{i}::1"));
            assert_eq!(r.account(a, Class::Negative, b"", 0, 7), Verdict::Pass);
        }
        // Same /56: limited, slip 1 = every limited answer slips.
        assert_eq!(
            r.account(ip("2001:db8:1:2ff::9"), Class::Negative, b"", 0, 7),
            Verdict::Slip
        );
        assert_eq!(
            r.account(ip("2001:db8:1:300::9"), Class::Negative, b"", 0, 7),
            Verdict::Pass
        );
        assert_eq!(r.network_of(ip("::ffff:192.0.2.77")).0, ip("192.0.2.0"));
    }

    #[test]
    fn exempt_networks_and_log_only() {
        let r = Rrl::new(Settings {
            exempt: vec!["192.0.2.0/28".parse().unwrap()],
            log_only: true,
            rates: [1; 4],
            table_size: 1024,
            ..Settings::default()
        });
        assert!(r.exempt(ip("192.0.2.5")));
        assert!(!r.exempt(ip("192.0.2.16")));
        assert_eq!(
            r.account(ip("192.0.2.1"), Class::Error, b"", 0, 9),
            Verdict::Pass
        );
        assert_eq!(
            r.account(ip("192.0.2.1"), Class::Error, b"", 0, 9),
            Verdict::WouldLimit
        );
    }

    #[test]
    fn table_stays_fixed_and_limited_buckets_survive_a_spoofed_spray() {
        let r = rrl(3, 0, 5);
        let victim = ip("203.0.113.1");
        for _ in 0..10 {
            r.account(victim, Class::Negative, b"", 0, 100);
        }
        assert_eq!(
            r.account(victim, Class::Negative, b"", 0, 100),
            Verdict::Drop
        );
        // 100,000 other networks, one answer each: the table does not grow and
        // the limited network's bucket, preferred to keep, is still limiting.
        for i in 0..100_000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8)));
            r.account(a, Class::Negative, b"", 0, 100);
        }
        assert_eq!(r.buckets(), 1024);
        assert_eq!(
            r.account(victim, Class::Negative, b"", 0, 100),
            Verdict::Drop
        );
    }

    #[test]
    fn a_bucket_behind_an_emptied_one_is_still_found() {
        let r = rrl(2, 0, 5);
        let src = ip("192.0.2.1");
        // Fill the victim's set with others first, so its bucket is not the first.
        let set_of = |a: IpAddr| {
            let mut h = r.hasher.build_hasher();
            h.write_u32(match r.network_of(a).0 {
                IpAddr::V4(x) => u32::from(x),
                _ => 0,
            });
            h.write_u8(Class::Error as u8);
            h.write_u16(0);
            h.write(b"");
            h.finish() as usize & r.mask
        };
        let mine = set_of(src);
        let mut others = 0;
        for i in 0..100_000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + (i << 8)));
            if set_of(a) == mine {
                r.account(a, Class::Error, b"", 0, 10);
                others += 1;
                if others == 3 {
                    break;
                }
            }
        }
        for _ in 0..5 {
            r.account(src, Class::Error, b"", 0, 10);
        }
        assert_eq!(r.account(src, Class::Error, b"", 0, 10), Verdict::Drop);
        // The sweep empties the first bucket of the set (idle for an hour).
        r.sets[mine].0[0].store(0, Ordering::Relaxed);
        assert_eq!(
            r.account(src, Class::Error, b"", 0, 10),
            Verdict::Drop,
            "still owing"
        );
    }

    #[test]
    fn sweep_follows_networks_that_start_and_stop() {
        let r = rrl(2, 0, 1);
        let src = ip("192.0.2.200");
        for _ in 0..5 {
            r.account(src, Class::Error, b"", 0, 50);
        }
        assert_eq!(r.sweep(50), 1, "limited now");
        assert_eq!(r.sweep(52), 0, "forgiven after the window");
    }
}
