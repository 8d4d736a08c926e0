//! Signatures as the query path reads them: one slot per RRset, filled once.
//!
//! A [`SigSet`] holds the RRSIG RDATAs over one RRset (one per signing key),
//! small ones inline so a cached answer reads one run of memory. A [`Slot`] is
//! an atomically swappable `Option<Arc<SigSet>>`. Every zone shard carries one
//! slot per RRset ([`ShardSigs`]), every NSEC3 chain shard one per record.
//!
//! A slot of a published version is only written by the publisher (a re-sign
//! is a zone change), except that an empty slot may be filled by the first
//! query that needs it while the start-up signing pass has not reached it.

use crate::wire::Rtype;
use crate::zone::{NodeRef, Shard, BELOW_CUT, DELEGATION};
use arc_swap::ArcSwapOption;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Room for the RRSIGs of one RRset kept inside the entry itself: one ECDSA
/// P-256 or Ed25519 signature by a single key fits.
const INLINE_SIGS: usize = 118;

enum SigData {
    Inline { len: u8, buf: [u8; INLINE_SIGS] },
    Heap(Box<[u8]>),
}

/// The RRSIG RDATAs over one RRset, with the earliest expiry among them.
pub struct SigSet {
    /// Earliest signature expiration (seconds since the epoch, RFC 4034 §3.1.5).
    pub expiration: u32,
    data: SigData,
}

impl SigSet {
    /// From `[len u16][rrsig rdata]...` bytes.
    pub fn new(expiration: u32, bytes: &[u8]) -> SigSet {
        let data = if bytes.len() <= INLINE_SIGS {
            let mut buf = [0u8; INLINE_SIGS];
            buf[..bytes.len()].copy_from_slice(bytes);
            SigData::Inline {
                len: bytes.len() as u8,
                buf,
            }
        } else {
            SigData::Heap(bytes.into())
        };
        SigSet { expiration, data }
    }

    /// From whole RRSIG RDATAs (the expiration is read from them).
    pub fn from_rdatas<'a>(rdatas: impl IntoIterator<Item = &'a [u8]>) -> SigSet {
        let mut bytes = Vec::new();
        let mut exp = u32::MAX;
        for r in rdatas {
            if r.len() >= 12 {
                exp = exp.min(u32::from_be_bytes([r[8], r[9], r[10], r[11]]));
            }
            bytes.extend_from_slice(&(r.len() as u16).to_be_bytes());
            bytes.extend_from_slice(r);
        }
        SigSet::new(exp, &bytes)
    }

    /// The `[len][rdata]...` bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            SigData::Inline { len, buf } => &buf[..*len as usize],
            SigData::Heap(b) => b,
        }
    }

    /// Each RRSIG RDATA.
    pub fn rdatas(&self) -> impl Iterator<Item = &[u8]> {
        let d = self.bytes();
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            if pos + 2 > d.len() {
                return None;
            }
            let l = u16::from_be_bytes([d[pos], d[pos + 1]]) as usize;
            let r = d.get(pos + 2..pos + 2 + l)?;
            pos += 2 + l;
            Some(r)
        })
    }
}

impl std::fmt::Debug for SigSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigSet(exp {}, {} bytes)",
            self.expiration,
            self.bytes().len()
        )
    }
}

/// One signature slot.
pub type Slot = ArcSwapOption<SigSet>;

/// Whether an RRset of a node is signed: authoritative data only (RFC 4035 §2.2):
/// never glue, and at a delegation point only the DS.
pub fn signable(flags: u16, rtype: Rtype) -> bool {
    if flags & BELOW_CUT != 0 {
        return false;
    }
    if flags & DELEGATION != 0 {
        return rtype == Rtype::DS;
    }
    true
}

/// The signatures of one zone shard's RRsets, and a per-name cache for proofs.
pub struct ShardSigs {
    rrsets: Box<[Slot]>,
    /// Per node: `chain version << 32 | (chain position + 1)` of the NSEC3 record
    /// covering the node's hash (insecure referrals), 0 when not known yet.
    covers: Box<[AtomicU64]>,
}

impl ShardSigs {
    /// Empty slots for a shard.
    pub fn empty(shard: &Shard) -> ShardSigs {
        Self::filled(shard, (0..shard.rrset_count()).map(|_| None))
    }

    /// Slots for a shard holding the given signatures (one per RRset), made with
    /// them: a store into a slot pays the debts of every reader thread (a walk of
    /// arc-swap's global list), and a reload carries over hundreds of thousands.
    fn filled(shard: &Shard, sigs: impl Iterator<Item = Option<Arc<SigSet>>>) -> ShardSigs {
        ShardSigs {
            rrsets: sigs.map(Slot::from).collect(),
            covers: (0..shard.node_count()).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The slot of an RRset (by index in its shard).
    pub fn slot(&self, rrset: u32) -> &Slot {
        &self.rrsets[rrset as usize]
    }

    /// The proof cache of a node.
    pub fn cover(&self, node: u32) -> &AtomicU64 {
        &self.covers[node as usize]
    }

    /// Slots for `new`, taking each signature from `old` when the same owner has
    /// the same RRset (type, TTL and records) there. Returns the slots and the
    /// signable RRsets left without a signature.
    pub fn carried(new: &Shard, old: Option<(&Shard, &ShardSigs)>) -> (ShardSigs, Vec<u32>) {
        let mut slots: Vec<Option<Arc<SigSet>>> = vec![None; new.rrset_count()];
        let mut missing = Vec::new();
        for (node, set) in new.node_rrsets() {
            let flags = new.node(node).flags;
            let s = new.rrset(set);
            if !signable(flags, s.rtype) {
                continue;
            }
            let kept = old.and_then(|(os, osigs)| {
                let on = os.find(new.node_key(node))?;
                if !signable(os.node(on).flags, s.rtype) {
                    return None;
                }
                let oi = os.rrset_index(on, s.rtype)?;
                let o = os.rrset(oi);
                (o.ttl == s.ttl && o.count == s.count && os.rdatas(o).eq(new.rdatas(s)))
                    .then(|| osigs.slot(oi).load_full())
                    .flatten()
            });
            match kept {
                Some(k) => slots[set as usize] = Some(k),
                None => missing.push(set),
            }
        }
        (ShardSigs::filled(new, slots.into_iter()), missing)
    }

    /// A copy sharing every signature (for a new version of the same shard).
    pub fn copy(&self) -> ShardSigs {
        ShardSigs {
            rrsets: self
                .rrsets
                .iter()
                .map(|s| Slot::from(s.load_full()))
                .collect(),
            covers: self.covers.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Signable RRsets of the shard whose slot is empty or whose signatures
    /// expire at or before `due`.
    pub fn due(&self, shard: &Shard, due: u32) -> Vec<u32> {
        shard
            .node_rrsets()
            .filter(|&(node, set)| signable(shard.node(node).flags, shard.rrset(set).rtype))
            .filter(|&(_, set)| match &*self.rrsets[set as usize].load() {
                Some(s) => s.expiration <= due,
                None => true,
            })
            .map(|(_, set)| set)
            .collect()
    }
}

/// Whether a node's RRset of `rtype` is signed in this zone view.
pub fn node_signable(node: NodeRef<'_>, rtype: Rtype) -> bool {
    signable(node.flags(), rtype)
}

/// A slot holding a given signature set.
pub fn slot_with(s: Arc<SigSet>) -> Slot {
    Slot::from(Some(s))
}
