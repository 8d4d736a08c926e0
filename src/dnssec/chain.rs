//! The NSEC3 chain (RFC 5155): hashed owner names in hash order, with their signatures.
//!
//! With opt-out (RFC 5155 §6) the chain holds the apex, every other
//! authoritative name (empty non-terminals included) and every *secure*
//! delegation; insecure delegations and glue are left out.
//!
//! The chain is cut into [`CHAIN_SHARDS`] shards by the first 12 bits of the
//! hash, each an immutable sorted array with one signature slot per record.
//! "Which NSEC3 matches or covers this hash" is a binary search in one small
//! shard. A change ([`Chain::apply`]) rebuilds the shards it touches (and the
//! one before, whose last record's "next hashed owner" may change), keeps every
//! signature whose record did not change, and says which records need one.

use super::nsec3hash::nsec3_hash;
use super::{SigSet, Slot};
use crate::wire::Rtype;
use crate::zone::{NodeRef, Zone, APEX, BELOW_CUT, DELEGATION, SECURE};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Bits of the chain shard number (the first bits of the hash).
pub const CHAIN_SHARD_BITS: u32 = 12;
/// Number of chain shards.
pub const CHAIN_SHARDS: usize = 1 << CHAIN_SHARD_BITS;

/// NSEC3 parameters (RFC 5155 §3.1, §4.1; RFC 9276 defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nsec3Params {
    /// Extra hash iterations (RFC 9276: 0).
    pub iterations: u16,
    /// Salt (RFC 9276: empty).
    pub salt: Vec<u8>,
    /// Opt-out flag: insecure delegations stay out of the chain.
    pub opt_out: bool,
}

impl Default for Nsec3Params {
    fn default() -> Self {
        Nsec3Params {
            iterations: 0,
            salt: Vec::new(),
            opt_out: true,
        }
    }
}

impl Nsec3Params {
    /// The NSEC3PARAM RDATA for the apex (flags 0, RFC 5155 §4.1.2).
    pub fn param_rdata(&self) -> Vec<u8> {
        let mut v = vec![1, 0];
        v.extend_from_slice(&self.iterations.to_be_bytes());
        v.push(self.salt.len() as u8);
        v.extend_from_slice(&self.salt);
        v
    }

    /// Hash of a lowercase wire name.
    pub fn hash(&self, lower_wire: &[u8]) -> [u8; 20] {
        nsec3_hash(lower_wire, &self.salt, self.iterations)
    }
}

/// Hash collision or other reason the chain cannot be built.
#[derive(Debug)]
pub struct ChainError(pub String);

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChainError {}

/// Build the RFC 4034 §4.1.2 type bitmap for a set of types (sorted, unique).
pub fn type_bitmap(types: &[u16], out: &mut Vec<u8>) {
    let mut window: i32 = -1;
    let mut bits = [0u8; 32];
    let mut used = 0usize;
    let flush = |window: i32, bits: &[u8; 32], used: usize, out: &mut Vec<u8>| {
        if window >= 0 && used > 0 {
            out.push(window as u8);
            out.push(used as u8);
            out.extend_from_slice(&bits[..used]);
        }
    };
    for &t in types {
        let w = (t >> 8) as i32;
        if w != window {
            flush(window, &bits, used, out);
            window = w;
            bits = [0; 32];
            used = 0;
        }
        let lo = (t & 0xFF) as usize;
        bits[lo / 8] |= 0x80 >> (lo % 8);
        used = used.max(lo / 8 + 1);
    }
    flush(window, &bits, used, out);
}

/// Types present at a node as its NSEC3 record lists them (signed zone view);
/// `extra_apex` are the types the signer adds at the apex (DNSKEY, NSEC3PARAM, CDS...).
pub fn node_types_into(node: NodeRef<'_>, extra_apex: &[Rtype], types: &mut Vec<u16>) {
    let f = node.flags();
    types.clear();
    types.extend(node.rrsets().map(|s| s.rtype().0));
    if f & APEX != 0 {
        types.extend(extra_apex.iter().map(|t| t.0));
    }
    let signed = f & APEX != 0 || f & SECURE != 0 || (f & DELEGATION == 0 && !types.is_empty());
    if signed {
        types.push(Rtype::RRSIG.0);
    }
    if f & DELEGATION != 0 {
        // Glue at a delegation point is not authoritative data.
        types.retain(|&t| t == Rtype::NS.0 || t == Rtype::DS.0 || t == Rtype::RRSIG.0);
    }
    types.sort_unstable();
    types.dedup();
}

/// Whether a node has an NSEC3 record of its own.
pub fn in_chain(node: NodeRef<'_>, params: &Nsec3Params) -> bool {
    let f = node.flags();
    f & BELOW_CUT == 0 && !(f & DELEGATION != 0 && f & SECURE == 0 && params.opt_out)
}

/// What the chain holds for one name: its hash, type bitmap and canonical key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// NSEC3 hash of the owner.
    pub hash: [u8; 20],
    /// Type bitmap (RFC 4034 §4.1.2 form).
    pub bitmap: Vec<u8>,
    /// Canonical key of the original owner name.
    pub key: Vec<u8>,
}

/// The chain member for a zone node, or `None` when the node has no NSEC3 record.
pub fn member_of(node: NodeRef<'_>, params: &Nsec3Params, extra_apex: &[Rtype]) -> Option<Member> {
    if !in_chain(node, params) {
        return None;
    }
    let mut types = Vec::with_capacity(8);
    node_types_into(node, extra_apex, &mut types);
    let mut bitmap = Vec::with_capacity(12);
    type_bitmap(&types, &mut bitmap);
    Some(Member {
        hash: params.hash(&node.name()),
        bitmap,
        key: node.key().to_vec(),
    })
}

/// A record's place in the chain: shard and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainPos {
    /// Chain shard.
    pub shard: u16,
    /// Index in the shard.
    pub idx: u32,
}

impl ChainPos {
    /// Packed into 32 bits (for caches): shard in the top 12 bits.
    pub fn pack(self) -> u32 {
        ((self.shard as u32) << 20) | (self.idx & 0xF_FFFF)
    }

    /// From [`ChainPos::pack`].
    pub fn unpack(v: u32) -> ChainPos {
        ChainPos {
            shard: (v >> 20) as u16,
            idx: v & 0xF_FFFF,
        }
    }
}

/// One record of a chain shard: its hash, and where its type bitmap and owner key are.
///
/// 32 bytes, aligned, two to a cache line: the record found by a search, the next
/// record's hash (its NSEC3 "next hashed owner") and the bitmap's place are usually
/// one cache line, where separate arrays of hashes and spans cost two or three.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Rec {
    hash: [u8; 20],
    /// Offset in the arena of the bitmap; the owner key follows it.
    at: u32,
    bitmap_len: u16,
    key_len: u16,
}

impl Rec {
    fn bitmap<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.at as usize..self.at as usize + self.bitmap_len as usize]
    }

    fn key<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        let k = self.at as usize + self.bitmap_len as usize;
        &arena[k..k + self.key_len as usize]
    }
}

/// One shard of the chain: records whose hash starts with one 12-bit prefix.
pub struct ChainShard {
    recs: Vec<Rec>,
    /// The first eight bytes of each hash as a big-endian number: what a search compares
    /// (eight to a cache line, and without a call to memcmp).
    prefixes: Vec<u64>,
    /// Each record's bitmap followed by its owner key.
    arena: Vec<u8>,
    /// The next hashed owner of the last record: the first hash of the next non-empty shard.
    next_of_last: [u8; 20],
    sigs: Box<[Slot]>,
}

impl ChainShard {
    fn empty() -> ChainShard {
        ChainShard {
            recs: Vec::new(),
            prefixes: Vec::new(),
            arena: Vec::new(),
            next_of_last: [0; 20],
            sigs: Box::new([]),
        }
    }

    /// A shard to fill with [`ChainShard::push`], in hash order.
    fn with_capacity(n: usize, next_of_last: [u8; 20]) -> ChainShard {
        ChainShard {
            recs: Vec::with_capacity(n),
            prefixes: Vec::with_capacity(n),
            arena: Vec::with_capacity(n * 24),
            next_of_last,
            sigs: (0..n).map(|_| Slot::empty()).collect(),
        }
    }

    /// Append a record; `bitmap` writes its type bitmap to the end of the given arena.
    fn push(&mut self, hash: [u8; 20], bitmap: impl FnOnce(&mut Vec<u8>), key: &[u8]) {
        let at = self.arena.len();
        bitmap(&mut self.arena);
        let bitmap_len = self.arena.len() - at;
        self.arena.extend_from_slice(key);
        self.recs.push(Rec {
            hash,
            at: at as u32,
            bitmap_len: bitmap_len as u16,
            key_len: key.len() as u16,
        });
        self.prefixes.push(prefix(&hash));
    }

    fn from_members(members: &[&Member], next_of_last: [u8; 20]) -> ChainShard {
        let mut s = ChainShard::with_capacity(members.len(), next_of_last);
        for m in members {
            s.push(m.hash, |a| a.extend_from_slice(&m.bitmap), &m.key);
        }
        s.arena.shrink_to_fit();
        s
    }

    fn member(&self, i: usize) -> Member {
        let r = &self.recs[i];
        Member {
            hash: r.hash,
            bitmap: r.bitmap(&self.arena).to_vec(),
            key: r.key(&self.arena).to_vec(),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.recs.len()
    }

    /// Whether the shard has no record.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// How many records have a hash at or below `h` (the partition point).
    ///
    /// SHA-1 hashes are uniform, so the position is first guessed from where `h`
    /// falls in the range of hashes of its shard (the hashes that share its first
    /// [`CHAIN_SHARD_BITS`] bits); a search outwards from the guess, with doubling
    /// steps, then brackets the answer within a few entries of it: one or two cache
    /// lines instead of a binary search's eight or so.
    fn rank(&self, h: &[u8; 20]) -> usize {
        let ps = &self.prefixes;
        let n = ps.len();
        if n == 0 {
            return 0;
        }
        let p = prefix(h);
        let within = p & (u64::MAX >> CHAIN_SHARD_BITS);
        let guess = (u128::from(within) * n as u128) >> (64 - CHAIN_SHARD_BITS);
        let mut at = (guess as usize).min(n - 1);
        // Invariant sought: ps[lo] <= p and (hi == n or ps[hi] > p).
        let (lo, hi) = if ps[at] <= p {
            let mut step = 1;
            let mut hi = at + 1;
            while hi < n && ps[hi] <= p {
                at = hi;
                hi = (hi + step).min(n);
                step *= 2;
            }
            (at, hi)
        } else {
            // p < ps[at]: step back to an entry at or below p, if there is one.
            let mut step = 1;
            let mut hi = at;
            loop {
                if hi == 0 {
                    return 0;
                }
                let lo = hi.saturating_sub(step);
                if ps[lo] <= p {
                    break (lo, hi);
                }
                hi = lo;
                step *= 2;
            }
        };
        let mut r = lo + 1 + ps[lo + 1..hi].partition_point(|&x| x <= p);
        // Records whose first eight bytes equal `h`'s sit together, in order of the
        // whole hash: step back over those above `h`.
        while r > 0 && ps[r - 1] == p && self.recs[r - 1].hash > *h {
            r -= 1;
        }
        r
    }
}

/// The first eight bytes of a hash as a big-endian number (orders like the bytes).
fn prefix(h: &[u8; 20]) -> u64 {
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

static CHAIN_VERSION: AtomicU32 = AtomicU32::new(1);

/// The NSEC3 chain of one zone version.
pub struct Chain {
    /// Parameters used to hash.
    pub params: Nsec3Params,
    shards: Vec<Arc<ChainShard>>,
    /// For each shard, the nearest non-empty shard at or before it (wrapping).
    prev: Box<[u16]>,
    len: usize,
    /// A number that differs between any two chains a process builds (for caches).
    pub version: u32,
    /// The apex's own record, when the apex is in the chain (looked up once per
    /// chain: every insecure referral's proof names it as closest encloser).
    pub apex_pos: Option<ChainPos>,
    /// The record covering `*.<origin>` (when the chain is not empty).
    pub apex_wildcard_cover: Option<ChainPos>,
}

fn shard_of_hash(h: &[u8; 20]) -> usize {
    ((h[0] as usize) << 4) | (h[1] as usize >> 4)
}

/// Records added or replaced, and hashes removed, in one change of the chain.
#[derive(Clone, Debug, Default)]
pub struct ChainDelta {
    /// Records to add, or to replace (same hash, new bitmap).
    pub upsert: Vec<Member>,
    /// Hashes to remove.
    pub remove: Vec<[u8; 20]>,
}

impl ChainDelta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }
}

impl Chain {
    /// Build the chain of a zone (hashing on all cores). Entries are written
    /// straight into the chain shards' arenas: no allocation per name.
    pub fn build(
        zone: &Zone,
        params: Nsec3Params,
        extra_apex: &[Rtype],
    ) -> Result<Chain, ChainError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let node_at = |shard: u32, idx: u32| -> NodeRef<'_> {
            if shard == crate::zone::APEX_SHARD {
                zone.apex()
            } else {
                NodeRef {
                    sh: zone.shard(shard as usize),
                    shard_no: shard,
                    idx,
                }
            }
        };
        let shards: Vec<usize> = (0..crate::zone::SHARDS).collect();
        let per: Vec<Vec<([u8; 20], u32, u32)>> =
            crate::zone::build::par_map(shards, threads, |i| {
                let sh = zone.shard(i);
                let mut buf = [0u8; 256];
                (0..sh.data.node_count() as u32)
                    .filter_map(|idx| {
                        let n = NodeRef {
                            sh,
                            shard_no: i as u32,
                            idx,
                        };
                        if !in_chain(n, &params) {
                            return None;
                        }
                        let len = crate::zone::key_to_wire_buf(n.key(), &mut buf);
                        Some((params.hash(&buf[..len]), i as u32, idx))
                    })
                    .collect()
            });
        let mut entries: Vec<([u8; 20], u32, u32)> = per.into_iter().flatten().collect();
        if in_chain(zone.apex(), &params) {
            entries.push((params.hash(zone.origin()), crate::zone::APEX_SHARD, 0));
        }
        entries.sort_unstable_by_key(|e| e.0);
        for pair in entries.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(ChainError(format!(
                    "NSEC3 hash collision between {} and {}: choose another salt",
                    crate::name::to_text(&node_at(pair[0].1, pair[0].2).name()),
                    crate::name::to_text(&node_at(pair[1].1, pair[1].2).name())
                )));
            }
        }
        // Group by chain shard, then fill each shard's arrays.
        let mut bounds = vec![0usize; CHAIN_SHARDS + 1];
        for e in &entries {
            bounds[shard_of_hash(&e.0) + 1] += 1;
        }
        for i in 0..CHAIN_SHARDS {
            bounds[i + 1] += bounds[i];
        }
        let firsts: Vec<Option<[u8; 20]>> = (0..CHAIN_SHARDS)
            .map(|i| (bounds[i] < bounds[i + 1]).then(|| entries[bounds[i]].0))
            .collect();
        let nexts = next_of_lasts(&firsts);
        let mut types = Vec::with_capacity(16);
        let mut shards = Vec::with_capacity(CHAIN_SHARDS);
        for i in 0..CHAIN_SHARDS {
            let part = &entries[bounds[i]..bounds[i + 1]];
            if part.is_empty() {
                shards.push(Arc::new(ChainShard::empty()));
                continue;
            }
            let mut s = ChainShard::with_capacity(part.len(), nexts[i]);
            for &(h, sh, idx) in part {
                let n = node_at(sh, idx);
                node_types_into(n, extra_apex, &mut types);
                s.push(h, |a| type_bitmap(&types, a), n.key());
            }
            s.arena.shrink_to_fit();
            shards.push(Arc::new(s));
        }
        Ok(Chain::assemble(params, zone.origin(), shards))
    }

    /// A chain from members sorted by hash (no duplicates).
    pub fn from_sorted(params: Nsec3Params, origin: &[u8], members: &[Member]) -> Chain {
        let mut groups: Vec<Vec<&Member>> = (0..CHAIN_SHARDS).map(|_| Vec::new()).collect();
        for m in members {
            groups[shard_of_hash(&m.hash)].push(m);
        }
        let firsts: Vec<Option<[u8; 20]>> =
            groups.iter().map(|g| g.first().map(|m| m.hash)).collect();
        let nexts = next_of_lasts(&firsts);
        let shards: Vec<Arc<ChainShard>> = groups
            .iter()
            .zip(nexts)
            .map(|(g, n)| {
                if g.is_empty() {
                    Arc::new(ChainShard::empty())
                } else {
                    Arc::new(ChainShard::from_members(g, n))
                }
            })
            .collect();
        Chain::assemble(params, origin, shards)
    }

    fn assemble(params: Nsec3Params, origin: &[u8], shards: Vec<Arc<ChainShard>>) -> Chain {
        let mut prev = vec![u16::MAX; CHAIN_SHARDS].into_boxed_slice();
        let last_nonempty = (0..CHAIN_SHARDS).rev().find(|&i| !shards[i].is_empty());
        let mut cur = last_nonempty.map(|i| i as u16).unwrap_or(u16::MAX);
        for (i, p) in prev.iter_mut().enumerate() {
            if !shards[i].is_empty() {
                cur = i as u16;
            }
            *p = cur;
        }
        let len = shards.iter().map(|s| s.len()).sum();
        let mut wc = vec![1u8, b'*'];
        wc.extend_from_slice(origin);
        let (apex, wildcard) = (params.hash(origin), params.hash(&wc));
        let mut c = Chain {
            apex_pos: None,
            apex_wildcard_cover: None,
            params,
            shards,
            prev,
            len,
            version: CHAIN_VERSION.fetch_add(1, Ordering::Relaxed),
        };
        c.apex_pos = c.find(&apex);
        c.apex_wildcard_cover = (!c.is_empty()).then(|| c.cover(&wildcard));
        c
    }

    /// Number of NSEC3 records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn shard(&self, pos: ChainPos) -> &ChainShard {
        &self.shards[pos.shard as usize]
    }

    /// The hash of a record.
    pub fn hash(&self, pos: ChainPos) -> &[u8; 20] {
        &self.shard(pos).recs[pos.idx as usize].hash
    }

    /// The type bitmap of a record.
    pub fn bitmap(&self, pos: ChainPos) -> &[u8] {
        let s = self.shard(pos);
        s.recs[pos.idx as usize].bitmap(&s.arena)
    }

    /// The canonical key of the name a record is for.
    pub fn owner_key(&self, pos: ChainPos) -> &[u8] {
        let s = self.shard(pos);
        s.recs[pos.idx as usize].key(&s.arena)
    }

    /// The next hashed owner of a record.
    pub fn next_hash(&self, pos: ChainPos) -> &[u8; 20] {
        let s = self.shard(pos);
        let i = pos.idx as usize;
        if i + 1 < s.recs.len() {
            &s.recs[i + 1].hash
        } else {
            &s.next_of_last
        }
    }

    /// The signature slot of a record.
    pub fn slot(&self, pos: ChainPos) -> &Slot {
        &self.shard(pos).sigs[pos.idx as usize]
    }

    /// Start loading a record and its signature slot into the cache (a hint only).
    #[inline]
    pub fn prefetch(&self, pos: ChainPos) {
        let s = self.shard(pos);
        if let (Some(r), Some(slot)) = (s.recs.get(pos.idx as usize), s.sigs.get(pos.idx as usize))
        {
            crate::hint::prefetch(r);
            crate::hint::prefetch(slot);
        }
    }

    /// The record with exactly this hash.
    pub fn find(&self, h: &[u8; 20]) -> Option<ChainPos> {
        let s = shard_of_hash(h);
        let sh = &self.shards[s];
        let r = sh.rank(h);
        (r > 0 && sh.recs[r - 1].hash == *h).then(|| ChainPos {
            shard: s as u16,
            idx: (r - 1) as u32,
        })
    }

    /// The record whose interval (own hash, next hash) holds `h`, or that equals it.
    pub fn cover(&self, h: &[u8; 20]) -> ChainPos {
        let s = shard_of_hash(h);
        let p = self.shards[s].rank(h);
        if p > 0 {
            return ChainPos {
                shard: s as u16,
                idx: (p - 1) as u32,
            };
        }
        // Below this shard's first hash: the last record of the nearest earlier
        // non-empty shard (wrapping around to the last shard of the chain).
        let before = if s == 0 { CHAIN_SHARDS - 1 } else { s - 1 };
        let q = self.prev[before];
        let q = if q == u16::MAX { s as u16 } else { q };
        ChainPos {
            shard: q,
            idx: self.shards[q as usize].len().saturating_sub(1) as u32,
        }
    }

    /// Hand the NSEC3 RDATA of a record to `put`, piece by piece.
    pub fn write_rdata(&self, pos: ChainPos, mut put: impl FnMut(&[u8])) {
        let p = &self.params;
        put(&[1, u8::from(p.opt_out)]); // SHA-1, flags
        put(&p.iterations.to_be_bytes());
        put(&[p.salt.len() as u8]);
        put(&p.salt);
        put(&[20]);
        put(self.next_hash(pos));
        put(self.bitmap(pos));
    }

    /// The NSEC3 RDATA of a record, appended to `out`.
    pub fn rdata(&self, pos: ChainPos, out: &mut Vec<u8>) {
        self.write_rdata(pos, |b| out.extend_from_slice(b));
    }

    /// Every record, in hash order.
    pub fn positions(&self) -> impl Iterator<Item = ChainPos> + '_ {
        self.shards.iter().enumerate().flat_map(|(s, sh)| {
            (0..sh.len() as u32).map(move |idx| ChainPos {
                shard: s as u16,
                idx,
            })
        })
    }

    /// Every record of the given chain shards.
    pub fn positions_in(&self, shard: usize) -> impl Iterator<Item = ChainPos> + '_ {
        (0..self.shards[shard].len() as u32).map(move |idx| ChainPos {
            shard: shard as u16,
            idx,
        })
    }

    /// Whether two chains share a shard object (it did not change).
    pub fn same_shard(&self, other: &Chain, shard: usize) -> bool {
        Arc::ptr_eq(&self.shards[shard], &other.shards[shard])
    }

    /// The next chain after a change; signatures of records whose RDATA did not
    /// change are kept. Returns the new chain and the records that need a
    /// signature, or an error on a hash collision.
    pub fn apply(
        &self,
        origin: &[u8],
        delta: &ChainDelta,
    ) -> Result<(Chain, Vec<ChainPos>), ChainError> {
        let mut touched: BTreeMap<usize, Vec<Member>> = BTreeMap::new();
        let mut removes: BTreeMap<usize, Vec<[u8; 20]>> = BTreeMap::new();
        for h in &delta.remove {
            removes.entry(shard_of_hash(h)).or_default().push(*h);
        }
        let mut ups: BTreeMap<usize, Vec<&Member>> = BTreeMap::new();
        for m in &delta.upsert {
            ups.entry(shard_of_hash(&m.hash)).or_default().push(m);
        }
        let keys: Vec<usize> = removes.keys().chain(ups.keys()).copied().collect();
        for s in keys {
            if touched.contains_key(&s) {
                continue;
            }
            let old = &self.shards[s];
            let mut map: BTreeMap<[u8; 20], Member> = (0..old.len())
                .map(|i| (old.recs[i].hash, old.member(i)))
                .collect();
            for h in removes.get(&s).into_iter().flatten() {
                map.remove(h);
            }
            for m in ups.get(&s).into_iter().flatten() {
                if let Some(e) = map.get(&m.hash) {
                    if e.key != m.key {
                        return Err(ChainError(format!(
                            "NSEC3 hash collision between {} and {}: choose another salt",
                            crate::name::to_text(&crate::zone::key_to_wire(&e.key)),
                            crate::name::to_text(&crate::zone::key_to_wire(&m.key))
                        )));
                    }
                }
                map.insert(m.hash, (*m).clone());
            }
            touched.insert(s, map.into_values().collect());
        }
        let mut shards = self.shards.clone();
        // Firsts of the new chain, to work out every shard's next_of_last.
        let firsts: Vec<Option<[u8; 20]>> = (0..CHAIN_SHARDS)
            .map(|i| match touched.get(&i) {
                Some(v) => v.first().map(|m| m.hash),
                None => self.shards[i].recs.first().map(|r| r.hash),
            })
            .collect();
        let nexts = next_of_lasts(&firsts);
        let mut need = Vec::new();
        for (&s, members) in &touched {
            let refs: Vec<&Member> = members.iter().collect();
            shards[s] = Arc::new(if refs.is_empty() {
                ChainShard::empty()
            } else {
                ChainShard::from_members(&refs, nexts[s])
            });
        }
        // Shards not touched whose last record now has another successor.
        let mut relinked = Vec::new();
        for s in 0..CHAIN_SHARDS {
            if touched.contains_key(&s) || shards[s].is_empty() {
                continue;
            }
            if shards[s].next_of_last != nexts[s] {
                let old = &shards[s];
                let members: Vec<Member> = (0..old.len()).map(|i| old.member(i)).collect();
                let refs: Vec<&Member> = members.iter().collect();
                let n = ChainShard::from_members(&refs, nexts[s]);
                relinked.push(s);
                shards[s] = Arc::new(n);
            }
        }
        let next = Chain::assemble(self.params.clone(), origin, shards);
        // Carry signatures over where hash, next hash and bitmap are unchanged.
        for s in touched.keys().copied().chain(relinked) {
            for pos in next.positions_in(s) {
                let h = next.hash(pos);
                let kept = self.find(h).and_then(|old| {
                    (self.next_hash(old) == next.next_hash(pos)
                        && self.bitmap(old) == next.bitmap(pos))
                    .then(|| self.slot(old).load_full())
                    .flatten()
                });
                match kept {
                    Some(sig) => next.slot(pos).store(Some(sig)),
                    None => need.push(pos),
                }
            }
        }
        Ok((next, need))
    }

    /// A copy sharing every record, with the given records' signatures replaced.
    pub fn with_signatures(&self, origin: &[u8], sigs: &[(ChainPos, Arc<SigSet>)]) -> Chain {
        let mut shards = self.shards.clone();
        let mut by_shard: BTreeMap<usize, Vec<(u32, Arc<SigSet>)>> = BTreeMap::new();
        for (p, s) in sigs {
            by_shard
                .entry(p.shard as usize)
                .or_default()
                .push((p.idx, s.clone()));
        }
        for (s, list) in by_shard {
            let old = &self.shards[s];
            let n = ChainShard {
                recs: old.recs.clone(),
                prefixes: old.prefixes.clone(),
                arena: old.arena.clone(),
                next_of_last: old.next_of_last,
                sigs: old.sigs.iter().map(|x| Slot::from(x.load_full())).collect(),
            };
            for (i, sig) in list {
                n.sigs[i as usize].store(Some(sig));
            }
            shards[s] = Arc::new(n);
        }
        let mut c = Chain::assemble(self.params.clone(), origin, shards);
        c.version = self.version;
        c
    }
}

/// For each shard, the first hash of the next non-empty shard after it (wrapping).
fn next_of_lasts(firsts: &[Option<[u8; 20]>]) -> Vec<[u8; 20]> {
    let n = firsts.len();
    let mut out = vec![[0u8; 20]; n];
    // The first hash of the whole chain, for the wrap-around.
    let Some(mut next) = firsts.iter().flatten().next().copied() else {
        return out;
    };
    for i in (0..n).rev() {
        out[i] = next;
        if let Some(f) = firsts[i] {
            next = f;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u64) -> Member {
        let mut h = [0u8; 20];
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678;
        for b in h.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        Member {
            hash: h,
            bitmap: vec![0, 1, 0x40],
            key: format!("be\0n{i}\0").into_bytes(),
        }
    }

    fn sorted(n: u64) -> Vec<Member> {
        let mut v: Vec<Member> = (0..n).map(member).collect();
        v.sort_by_key(|a| a.hash);
        v
    }

    fn check_against_scan(chain: &Chain, all: &[Member]) {
        assert_eq!(chain.len(), all.len());
        let order: Vec<[u8; 20]> = chain.positions().map(|p| *chain.hash(p)).collect();
        let want: Vec<[u8; 20]> = all.iter().map(|m| m.hash).collect();
        assert_eq!(order, want);
        for (i, p) in chain.positions().enumerate() {
            assert_eq!(chain.next_hash(p), &all[(i + 1) % all.len()].hash);
        }
        let mut probe = 7u64;
        for i in 0..3000 {
            let mut h = member(1_000_000 + i).hash;
            if i % 10 == 0 {
                h = all[(i as usize / 10) % all.len()].hash;
            }
            probe = probe.wrapping_add(1);
            let naive = all
                .iter()
                .rposition(|m| m.hash <= h)
                .unwrap_or(all.len() - 1);
            assert_eq!(chain.hash(chain.cover(&h)), &all[naive].hash);
            assert_eq!(
                chain.find(&h).map(|p| *chain.hash(p)),
                all.iter().find(|m| m.hash == h).map(|m| m.hash)
            );
        }
    }

    #[test]
    fn find_cover_and_next_agree_with_a_plain_scan() {
        for n in [1u64, 2, 5, 300, 20_000] {
            let all = sorted(n);
            let chain = Chain::from_sorted(Nsec3Params::default(), b"\x02be\x00", &all);
            check_against_scan(&chain, &all);
        }
    }

    #[test]
    fn rank_agrees_with_a_plain_partition_point_on_skewed_and_tied_hashes() {
        // Hashes of one shard, far from uniform: clusters, runs sharing their first
        // eight bytes, and the extremes of the shard's range.
        let mut hashes: Vec<[u8; 20]> = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..400u64 {
            let mut h = [0u8; 20];
            let r = next();
            // A 12-bit shard prefix of 0xabc, then either a dense cluster or spread values.
            let body = if i % 3 == 0 { r & 0xffff } else { r >> 12 };
            let v = (0xabcu64 << 52) | (body & ((1 << 52) - 1));
            h[..8].copy_from_slice(&v.to_be_bytes());
            h[8..16].copy_from_slice(&next().to_be_bytes());
            hashes.push(h);
            if i % 17 == 0 {
                // Same first eight bytes, another tail.
                let mut t = h;
                t[19] ^= 0x5a;
                t[12] = t[12].wrapping_add(1);
                hashes.push(t);
            }
        }
        let mut lowest = [0u8; 20];
        lowest[..2].copy_from_slice(&[0xab, 0xc0]);
        let mut highest = [0xffu8; 20];
        highest[..2].copy_from_slice(&[0xab, 0xcf]);
        hashes.push(lowest);
        hashes.push(highest);
        hashes.sort();
        hashes.dedup();
        for len in [1, 2, 3, 10, hashes.len()] {
            let part = &hashes[..len];
            let members: Vec<Member> = part
                .iter()
                .map(|h| Member {
                    hash: *h,
                    bitmap: vec![0, 1, 0x40],
                    key: b"be\0x\0".to_vec(),
                })
                .collect();
            let refs: Vec<&Member> = members.iter().collect();
            let shard = ChainShard::from_members(&refs, [0; 20]);
            let mut probes: Vec<[u8; 20]> = vec![[0; 20], [0xff; 20]];
            for h in part {
                probes.push(*h);
                let mut below = *h;
                let mut above = *h;
                for b in below.iter_mut().rev() {
                    let (v, borrow) = b.overflowing_sub(1);
                    *b = v;
                    if !borrow {
                        break;
                    }
                }
                for b in above.iter_mut().rev() {
                    let (v, carry) = b.overflowing_add(1);
                    *b = v;
                    if !carry {
                        break;
                    }
                }
                probes.push(below);
                probes.push(above);
            }
            for _ in 0..2000 {
                let mut h = [0u8; 20];
                h[..8].copy_from_slice(&((0xabcu64 << 52) | (next() >> 12)).to_be_bytes());
                probes.push(h);
            }
            for h in &probes {
                assert_eq!(shard.rank(h), part.partition_point(|x| x <= h), "{h:02x?}");
            }
        }
    }

    #[test]
    fn the_apex_positions_are_those_of_each_new_chain() {
        let origin = b"\x02be\x00";
        let params = Nsec3Params::default();
        let apex = Member {
            hash: params.hash(origin),
            bitmap: vec![0, 1, 0x62],
            key: b"be\0".to_vec(),
        };
        let mut all = sorted(300);
        all.push(apex.clone());
        all.sort_by_key(|a| a.hash);
        let wildcard = params.hash(b"\x01*\x02be\x00");
        let check = |c: &Chain| {
            assert_eq!(c.apex_pos, c.find(&apex.hash));
            assert_eq!(c.apex_wildcard_cover, Some(c.cover(&wildcard)));
        };
        let chain = Chain::from_sorted(params.clone(), origin, &all);
        check(&chain);
        let at = chain.apex_pos.expect("the apex is in the chain");
        // Records just below the apex's hash, in its chain shard, move it along.
        let mut delta = ChainDelta::default();
        for k in 1..=3u8 {
            let mut m = member(900 + u64::from(k));
            m.hash = apex.hash;
            m.hash[19] = m.hash[19].wrapping_sub(k);
            m.hash[18] = m.hash[18].wrapping_sub(1);
            delta.upsert.push(m);
        }
        let (moved, _) = chain.apply(origin, &delta).unwrap();
        check(&moved);
        assert_eq!(moved.apex_pos.unwrap().idx, at.idx + 3);
        check(&moved.with_signatures(origin, &[]));
        let gone = ChainDelta {
            upsert: Vec::new(),
            remove: vec![apex.hash],
        };
        let (without, _) = moved.apply(origin, &gone).unwrap();
        check(&without);
        assert_eq!(without.apex_pos, None);
    }

    #[test]
    fn apply_matches_a_fresh_build_and_keeps_signatures() {
        let all = sorted(500);
        let chain = Chain::from_sorted(Nsec3Params::default(), b"\x02be\x00", &all);
        let sig = Arc::new(SigSet::new(1, &[0, 1, 7]));
        for p in chain.positions() {
            chain.slot(p).store(Some(sig.clone()));
        }
        let mut delta = ChainDelta::default();
        for i in 0..40 {
            delta.remove.push(all[i * 7].hash);
        }
        for i in 500..530 {
            delta.upsert.push(member(i));
        }
        let mut changed = all[3].clone();
        changed.bitmap = vec![0, 1, 0x60];
        delta.upsert.push(changed.clone());
        let (next, need) = chain.apply(b"\x02be\x00", &delta).unwrap();
        let mut want: Vec<Member> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !(i % 7 == 0 && i / 7 < 40))
            .map(|(_, m)| m.clone())
            .filter(|m| m.hash != changed.hash)
            .collect();
        want.extend((500..530).map(member));
        want.push(changed);
        want.sort_by_key(|a| a.hash);
        check_against_scan(&next, &want);
        // Exactly the records whose RDATA changed need a signature; the rest kept theirs.
        for p in next.positions() {
            let h = next.hash(p);
            let fresh = match chain.find(h) {
                None => true,
                Some(o) => {
                    chain.next_hash(o) != next.next_hash(p) || chain.bitmap(o) != next.bitmap(p)
                }
            };
            assert_eq!(need.contains(&p), fresh, "{p:?}");
            assert_eq!(next.slot(p).load().is_some(), !fresh, "{p:?}");
        }
        assert!(need.len() < 150, "{}", need.len());
    }

    #[test]
    fn bitmap_matches_rfc4034_example() {
        // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
        let mut out = Vec::new();
        type_bitmap(&[1, 15, 46, 47, 1234], &mut out);
        assert_eq!(
            out,
            vec![
                0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20
            ]
        );
    }
}
