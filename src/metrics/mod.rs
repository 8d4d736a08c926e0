//! Query counters kept per worker thread, summed when scraped.
//!
//! Owns the counters of the query path: every thread that answers queries (a
//! UDP worker, a TCP runtime thread) gets its own [`Block`] of atomic counters,
//! aligned to 64 bytes so no two threads write into one cache line, and the only
//! thread that writes a block updates it with a plain load and store (no locked
//! instruction, no lock, no allocation once the thread has its block). A scrape
//! ([`Metrics::totals`]) reads and sums every block; blocks of threads that have
//! ended are kept, so counters never go back. [`expose`] turns the totals and the
//! publisher's and signer's figures into the Prometheus text format.
//!
//! It must not be consulted by the handler: the service records what
//! [`crate::handler::respond`] returns.

pub mod expose;

use crate::handler::{CookieSeen, Kind, Limited, Outcome};
use crate::server::Transport;
use crate::wire::{Rcode, Rtype};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Query types counted on their own; the rest are `other`.
pub const QTYPES: [(&str, Option<Rtype>); 9] = [
    ("A", Some(Rtype::A)),
    ("AAAA", Some(Rtype::AAAA)),
    ("NS", Some(Rtype::NS)),
    ("DS", Some(Rtype::DS)),
    ("DNSKEY", Some(Rtype::DNSKEY)),
    ("SOA", Some(Rtype::SOA)),
    ("ANY", Some(Rtype::ANY)),
    ("other", None),
    ("malformed", None),
];
const QTYPE_OTHER: usize = 7;
const QTYPE_MALFORMED: usize = 8;

/// Rcodes counted on their own; `none` is a query that got no answer.
pub const RCODES: [(&str, Option<Rcode>); 10] = [
    ("NOERROR", Some(Rcode::NOERROR)),
    ("FORMERR", Some(Rcode::FORMERR)),
    ("SERVFAIL", Some(Rcode::SERVFAIL)),
    ("NXDOMAIN", Some(Rcode::NXDOMAIN)),
    ("NOTIMP", Some(Rcode::NOTIMP)),
    ("REFUSED", Some(Rcode::REFUSED)),
    ("BADVERS", Some(Rcode::BADVERS)),
    ("BADCOOKIE", Some(Rcode::BADCOOKIE)),
    ("other", None),
    ("none", None),
];
const RCODE_OTHER: usize = 8;
const RCODE_NONE: usize = 9;

/// Transports, in counter order.
pub const TRANSPORTS: [&str; 2] = ["udp", "tcp"];
/// Answer kinds, in counter order.
pub const KINDS: [&str; 4] = ["answer", "referral", "nodata", "nxdomain"];
/// Rate-limiting actions counted, in counter order.
pub const RRL_ACTIONS: [&str; 3] = ["dropped", "slipped", "would_limit"];
/// Cookie outcomes counted, in counter order.
pub const COOKIES: [&str; 4] = ["client_only", "valid", "renewed", "invalid"];

/// Where each counter family starts in a block.
mod at {
    use super::{COOKIES, KINDS, QTYPES, RCODES, RRL_ACTIONS, TRANSPORTS};
    pub const QUERIES: usize = 0;
    pub const KINDS_AT: usize = QUERIES + TRANSPORTS.len() * QTYPES.len() * RCODES.len();
    pub const TRUNCATED: usize = KINDS_AT + KINDS.len();
    pub const RRL: usize = TRUNCATED + TRANSPORTS.len();
    pub const COOKIE: usize = RRL + RRL_ACTIONS.len();
    pub const BYTES_IN: usize = COOKIE + COOKIES.len();
    pub const BYTES_OUT: usize = BYTES_IN + TRANSPORTS.len();
    pub const NSID: usize = BYTES_OUT + TRANSPORTS.len();
    pub const END: usize = NSID + 1;
}

/// Number of counters in a block.
pub const COUNTERS: usize = at::END;

/// One thread's counters, on cache lines of their own.
#[repr(align(64))]
pub struct Block {
    c: [AtomicU64; COUNTERS],
}

impl Default for Block {
    fn default() -> Self {
        Block {
            c: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Block {
    /// Add to a counter; only the block's own thread calls this, so a load and a
    /// store suffice (no read-modify-write instruction).
    #[inline]
    fn add(&self, i: usize, v: u64) {
        let c = &self.c[i];
        c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
    }
}

/// Summed counters of every thread, indexable by the family helpers.
#[derive(Clone, Debug)]
pub struct Totals {
    c: Vec<u64>,
}

impl Totals {
    /// Queries over a transport, of a query type, answered with an rcode (indexes into
    /// [`TRANSPORTS`], [`QTYPES`], [`RCODES`]).
    pub fn queries(&self, transport: usize, qtype: usize, rcode: usize) -> u64 {
        self.c[at::QUERIES + (transport * QTYPES.len() + qtype) * RCODES.len() + rcode]
    }

    /// Answers of a kind (index into [`KINDS`]).
    pub fn kind(&self, k: usize) -> u64 {
        self.c[at::KINDS_AT + k]
    }

    /// Answers truncated for their size over a transport.
    pub fn truncated(&self, transport: usize) -> u64 {
        self.c[at::TRUNCATED + transport]
    }

    /// Rate-limiting actions (index into [`RRL_ACTIONS`]).
    pub fn rrl(&self, a: usize) -> u64 {
        self.c[at::RRL + a]
    }

    /// Cookie outcomes (index into [`COOKIES`]).
    pub fn cookie(&self, c: usize) -> u64 {
        self.c[at::COOKIE + c]
    }

    /// Bytes of queries received over a transport.
    pub fn bytes_in(&self, transport: usize) -> u64 {
        self.c[at::BYTES_IN + transport]
    }

    /// Bytes of answers sent over a transport.
    pub fn bytes_out(&self, transport: usize) -> u64 {
        self.c[at::BYTES_OUT + transport]
    }

    /// Answers that carried our NSID.
    pub fn nsid(&self) -> u64 {
        self.c[at::NSID]
    }

    /// All queries over every transport.
    pub fn all_queries(&self) -> u64 {
        self.c[at::QUERIES..at::KINDS_AT].iter().sum()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's blocks, one per [`Metrics`] it has recorded into.
    static LOCAL: RefCell<Vec<(u64, Arc<Block>)>> = const { RefCell::new(Vec::new()) };
}

/// The counters of one server: a block per thread, summed at scrape time.
pub struct Metrics {
    id: u64,
    blocks: Mutex<Vec<Arc<Block>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("id", &self.id).finish()
    }
}

impl Metrics {
    /// Counters at zero.
    pub fn new() -> Metrics {
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            blocks: Mutex::new(Vec::new()),
        }
    }

    /// Run `f` on this thread's block (made and registered on the thread's first use).
    #[inline]
    fn with_block(&self, f: impl FnOnce(&Block)) {
        LOCAL.with(|l| {
            if let Some((_, b)) = l.borrow().iter().find(|(id, _)| *id == self.id) {
                f(b);
                return;
            }
            let b = Arc::new(Block::default());
            self.blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(b.clone());
            l.borrow_mut().push((self.id, b.clone()));
            f(&b);
        })
    }

    /// Count one message: what the handler did, its size and the answer's.
    pub fn record(&self, o: &Outcome, transport: Transport, query_len: usize, answer_len: usize) {
        let t = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        };
        let qt = match o.qtype {
            None => QTYPE_MALFORMED,
            Some(q) => QTYPES[..QTYPE_OTHER]
                .iter()
                .position(|(_, x)| *x == Some(q))
                .unwrap_or(QTYPE_OTHER),
        };
        let rc = if !o.sent {
            RCODE_NONE
        } else {
            RCODES[..RCODE_OTHER]
                .iter()
                .position(|(_, x)| *x == Some(o.rcode))
                .unwrap_or(RCODE_OTHER)
        };
        self.with_block(|b| {
            b.add(at::QUERIES + (t * QTYPES.len() + qt) * RCODES.len() + rc, 1);
            b.add(at::BYTES_IN + t, query_len as u64);
            if o.sent {
                b.add(at::BYTES_OUT + t, answer_len as u64);
            }
            if let Some(k) = o.kind {
                let i = match k {
                    Kind::Answer => 0,
                    Kind::Referral => 1,
                    Kind::NoData => 2,
                    Kind::NxDomain => 3,
                };
                b.add(at::KINDS_AT + i, 1);
            }
            if o.truncated && o.sent && o.rrl != Limited::Slipped {
                b.add(at::TRUNCATED + t, 1);
            }
            match o.rrl {
                Limited::Dropped => b.add(at::RRL, 1),
                Limited::Slipped => b.add(at::RRL + 1, 1),
                Limited::WouldLimit => b.add(at::RRL + 2, 1),
                Limited::NotCharged | Limited::Passed => {}
            }
            let c = match o.cookie {
                CookieSeen::None => None,
                CookieSeen::ClientOnly => Some(0),
                CookieSeen::Valid => Some(1),
                CookieSeen::Renewed => Some(2),
                CookieSeen::Invalid => Some(3),
            };
            if let Some(c) = c {
                b.add(at::COOKIE + c, 1);
            }
            if o.nsid && o.sent {
                b.add(at::NSID, 1);
            }
        });
    }

    /// The sum of every thread's counters.
    pub fn totals(&self) -> Totals {
        let mut c = vec![0u64; COUNTERS];
        for b in self.blocks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for (sum, v) in c.iter_mut().zip(b.c.iter()) {
                *sum = sum.wrapping_add(v.load(Ordering::Relaxed));
            }
        }
        Totals { c }
    }

    /// Threads that have recorded so far.
    pub fn threads(&self) -> usize {
        self.blocks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(rcode: Rcode, kind: Option<Kind>) -> Outcome {
        let mut o = crate::handler::Outcome::dropped();
        o.sent = true;
        o.rcode = rcode;
        o.qtype = Some(Rtype::A);
        o.kind = kind;
        o
    }

    #[test]
    fn blocks_are_per_thread_and_summed() {
        assert_eq!(std::mem::align_of::<Block>(), 64);
        assert_eq!(std::mem::size_of::<Block>() % 64, 0);
        let m = Arc::new(Metrics::new());
        let o = outcome(Rcode::NXDOMAIN, Some(Kind::NxDomain));
        std::thread::scope(|s| {
            for _ in 0..3 {
                let m = m.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        m.record(&o, Transport::Udp, 40, 100);
                    }
                });
            }
        });
        m.record(&o, Transport::Tcp, 40, 100);
        assert_eq!(m.threads(), 4);
        let t = m.totals();
        assert_eq!(t.queries(0, 0, 3), 3000);
        assert_eq!(t.queries(1, 0, 3), 1);
        assert_eq!(t.kind(3), 3001);
        assert_eq!(t.bytes_in(0), 120_000);
        assert_eq!(t.bytes_out(1), 100);
        assert_eq!(t.all_queries(), 3001);
        // A second server in the same process has counters of its own.
        let other = Metrics::new();
        other.record(&o, Transport::Udp, 1, 1);
        assert_eq!(other.totals().all_queries(), 1);
        assert_eq!(m.totals().all_queries(), 3001);
    }

    #[test]
    fn drops_and_slips_and_cookies() {
        let m = Metrics::new();
        let mut o = outcome(Rcode::NOERROR, Some(Kind::Referral));
        o.sent = false;
        o.rrl = Limited::Dropped;
        m.record(&o, Transport::Udp, 30, 0);
        o.sent = true;
        o.rrl = Limited::Slipped;
        o.truncated = true;
        o.cookie = CookieSeen::Invalid;
        m.record(&o, Transport::Udp, 30, 30);
        let t = m.totals();
        assert_eq!(t.queries(0, 0, RCODE_NONE), 1);
        assert_eq!(t.rrl(0), 1);
        assert_eq!(t.rrl(1), 1);
        assert_eq!(t.truncated(0), 0, "a slip is not counted as truncation");
        assert_eq!(t.cookie(3), 1);
        assert_eq!(t.bytes_out(0), 30);
    }
}
