//! The NSEC3 chain (RFC 5155): hashed owner names in hash order, built once at load.
//!
//! With opt-out (RFC 5155 §6) the chain holds the apex, every other
//! authoritative name (empty non-terminals included) and every *secure*
//! delegation; insecure delegations and glue are left out. "Which NSEC3
//! matches or covers this hash" is a binary search over a flat array of
//! 20-byte hashes.
//!
//! A chain never changes after it is built; removing a hash (a suppressed
//! secure delegation) is done by [`Splice`], a small overlay that a snapshot
//! carries next to the shared chain.

use super::nsec3hash::nsec3_hash;
use crate::wire::Rtype;
use crate::zone::{Zone, APEX, BELOW_CUT, DELEGATION, SECURE};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

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

/// The NSEC3 chain of a zone.
pub struct Chain {
    /// Parameters used to hash.
    pub params: Nsec3Params,
    hashes: Vec<[u8; 20]>,
    /// `index[p]` = first entry whose hash starts with a 16-bit prefix >= p (65,537 entries):
    /// a search touches one small slice of `hashes` instead of the whole array.
    index: Vec<u32>,
    /// Zone node of each entry.
    nodes: Vec<u32>,
    bitmap_off: Vec<u32>,
    bitmaps: Vec<u8>,
    /// Chain index of the apex.
    pub apex: u32,
    /// Hash of `*.<origin>`.
    pub apex_wildcard_hash: [u8; 20],
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

/// Types present at a node as its NSEC3 record lists them (signed zone view).
pub fn node_types(zone: &Zone, node: u32) -> Vec<u16> {
    let mut types = Vec::new();
    node_types_into(zone, node, &mut types);
    types
}

/// [`node_types`] into a reused buffer.
pub fn node_types_into(zone: &Zone, node: u32, types: &mut Vec<u16>) {
    let n = zone.node(node);
    types.clear();
    types.extend(zone.rrsets(node).iter().map(|s| s.rtype.0));
    if n.flags & APEX != 0 {
        types.push(Rtype::DNSKEY.0);
        types.push(Rtype::NSEC3PARAM.0);
    }
    let signed = n.flags & APEX != 0
        || n.flags & SECURE != 0
        || (n.flags & DELEGATION == 0 && !types.is_empty());
    if signed {
        types.push(Rtype::RRSIG.0);
    }
    if n.flags & DELEGATION != 0 {
        // Glue at a delegation point is not authoritative data.
        types.retain(|&t| t == Rtype::NS.0 || t == Rtype::DS.0 || t == Rtype::RRSIG.0);
    }
    types.sort_unstable();
    types.dedup();
}

impl Chain {
    /// Build the chain for a zone.
    pub fn build(zone: &Zone, params: Nsec3Params) -> Result<Chain, ChainError> {
        // Hash on two threads: this is most of the chain's build time.
        let n = zone.node_count() as u32;
        let wanted = |node: u32| {
            let f = zone.node(node).flags;
            f & BELOW_CUT == 0 && !(f & DELEGATION != 0 && f & SECURE == 0 && params.opt_out)
        };
        let hash_range = |lo: u32, hi: u32| -> Vec<([u8; 20], u32)> {
            let mut v = Vec::with_capacity(((hi - lo) / 2) as usize);
            let mut buf = [0u8; 256];
            for node in lo..hi {
                if wanted(node) {
                    let len = crate::zone::key_to_wire_buf(zone.node_key(node), &mut buf);
                    v.push((
                        nsec3_hash(&buf[..len], &params.salt, params.iterations),
                        node,
                    ));
                }
            }
            v
        };
        let mid = n / 2;
        let mut entries = std::thread::scope(|s| {
            let upper = s.spawn(|| hash_range(mid, n));
            let mut lower = hash_range(0, mid);
            let mut u = upper.join().ok()?;
            lower.append(&mut u);
            Some(lower)
        })
        .ok_or_else(|| ChainError("the NSEC3 hashing thread failed".into()))?;
        entries.sort_unstable_by_key(|e| e.0);
        for pair in entries.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(ChainError(format!(
                    "NSEC3 hash collision between {} and {}: choose another salt",
                    crate::name::to_text(&zone.node_name(pair[0].1)),
                    crate::name::to_text(&zone.node_name(pair[1].1))
                )));
            }
        }
        let mut hashes = Vec::with_capacity(entries.len());
        let mut nodes = Vec::with_capacity(entries.len());
        let mut bitmap_off = Vec::with_capacity(entries.len() + 1);
        let mut bitmaps = Vec::new();
        let mut apex = 0u32;
        let mut types = Vec::with_capacity(16);
        for (i, (h, node)) in entries.iter().enumerate() {
            if *node == zone.apex() {
                apex = i as u32;
            }
            hashes.push(*h);
            nodes.push(*node);
            bitmap_off.push(bitmaps.len() as u32);
            node_types_into(zone, *node, &mut types);
            type_bitmap(&types, &mut bitmaps);
        }
        bitmap_off.push(bitmaps.len() as u32);
        let mut index = Vec::with_capacity(65537);
        let mut j = 0usize;
        for p in 0..=65536usize {
            while j < hashes.len() && ((hashes[j][0] as usize) << 8 | hashes[j][1] as usize) < p {
                j += 1;
            }
            index.push(j as u32);
        }
        let mut wc = vec![1u8, b'*'];
        wc.extend_from_slice(zone.origin());
        let apex_wildcard_hash = nsec3_hash(&wc, &params.salt, params.iterations);
        Ok(Chain {
            params,
            hashes,
            index,
            nodes,
            bitmap_off,
            bitmaps,
            apex,
            apex_wildcard_hash,
        })
    }

    /// Number of NSEC3 records.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hash of entry `i`.
    pub fn hash(&self, i: u32) -> &[u8; 20] {
        &self.hashes[i as usize]
    }

    /// The zone node of entry `i`.
    pub fn node(&self, i: u32) -> u32 {
        self.nodes[i as usize]
    }

    /// The type bitmap of entry `i`.
    pub fn bitmap(&self, i: u32) -> &[u8] {
        &self.bitmaps
            [self.bitmap_off[i as usize] as usize..self.bitmap_off[i as usize + 1] as usize]
    }

    /// The slice of entries sharing the first 16 bits of `h`, and where it starts.
    fn bucket(&self, h: &[u8; 20]) -> (usize, &[[u8; 20]]) {
        let p = (h[0] as usize) << 8 | h[1] as usize;
        let (lo, hi) = (self.index[p] as usize, self.index[p + 1] as usize);
        (lo, &self.hashes[lo..hi])
    }

    /// Index of the entry with exactly this hash.
    pub fn find(&self, h: &[u8; 20]) -> Option<u32> {
        let (lo, b) = self.bucket(h);
        b.binary_search(h).ok().map(|i| (lo + i) as u32)
    }

    /// Index of the entry whose interval (own hash, next hash) holds `h`, or that equals it.
    pub fn cover(&self, h: &[u8; 20]) -> u32 {
        let (lo, b) = self.bucket(h);
        let p = lo + b.partition_point(|x| x <= h);
        if p == 0 {
            // Below the first hash: the last entry wraps around.
            (self.hashes.len() - 1) as u32
        } else {
            (p - 1) as u32
        }
    }

    /// Hand the NSEC3 RDATA of entry `i` whose successor is `next` to `put`, piece by piece.
    pub fn write_rdata(&self, i: u32, next: u32, mut put: impl FnMut(&[u8])) {
        let p = &self.params;
        put(&[1, u8::from(p.opt_out)]); // SHA-1, flags
        put(&p.iterations.to_be_bytes());
        put(&[p.salt.len() as u8]);
        put(&p.salt);
        put(&[20]);
        put(&self.hashes[next as usize]);
        put(self.bitmap(i));
    }

    /// The NSEC3 RDATA of entry `i` whose successor is `next`, appended to `out`.
    pub fn rdata(&self, i: u32, next: u32, out: &mut Vec<u8>) {
        self.write_rdata(i, next, |b| out.extend_from_slice(b));
    }

    /// The NSEC3PARAM RDATA for the apex (flags 0, RFC 5155 §4.1.2).
    pub fn param_rdata(&self) -> Vec<u8> {
        let mut v = vec![1, 0];
        v.extend_from_slice(&self.params.iterations.to_be_bytes());
        v.push(self.params.salt.len() as u8);
        v.extend_from_slice(&self.params.salt);
        v
    }
}

/// Entries removed from a shared chain, and the predecessors re-signed because of it.
#[derive(Clone, Default)]
pub struct Splice {
    /// Chain indices left out.
    pub removed: BTreeSet<u32>,
    /// Re-made records: chain index → (RDATA, signatures).
    pub patched: HashMap<u32, Arc<super::Patched>>,
}

impl Splice {
    /// Whether nothing is spliced out.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
    }

    /// The nearest entry at or before `i` that is still in the chain.
    pub fn live_at_or_before(&self, chain: &Chain, mut i: u32) -> u32 {
        let n = chain.len() as u32;
        for _ in 0..n {
            if !self.removed.contains(&i) {
                return i;
            }
            i = if i == 0 { n - 1 } else { i - 1 };
        }
        i
    }

    /// The next entry after `i` that is still in the chain.
    pub fn live_after(&self, chain: &Chain, i: u32) -> u32 {
        let n = chain.len() as u32;
        let mut j = (i + 1) % n;
        for _ in 0..n {
            if !self.removed.contains(&j) {
                return j;
            }
            j = (j + 1) % n;
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_cover_agree_with_a_plain_scan() {
        let zone = crate::handler::tests::test_zone();
        let chain = Chain::build(&zone, Nsec3Params::default()).unwrap();
        assert!(chain.len() >= 4);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000 {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if i % 10 == 0 {
                h = *chain.hash((i / 10) as u32 % chain.len() as u32);
            }
            let naive = (0..chain.len() as u32)
                .rev()
                .find(|&k| chain.hash(k) <= &h)
                .unwrap_or(chain.len() as u32 - 1);
            assert_eq!(chain.cover(&h), naive);
            assert_eq!(
                chain.find(&h),
                (0..chain.len() as u32).find(|&k| chain.hash(k) == &h)
            );
        }
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
