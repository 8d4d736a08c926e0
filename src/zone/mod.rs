//! The zone: loaded records turned into a query-ready, sharded index.
//!
//! Owns the in-memory form of one zone (RFC 1034 §4.2–4.3). The names are cut
//! into [`SHARDS`] immutable shards (see [`shard`]) by the label below the
//! origin, plus a shard holding the apex; a [`Zone`] is the vector of shards
//! of one version. A change builds the few shards it touches and a new vector
//! that shares every other shard with the previous version, so a one-name
//! change costs one small rebuild, and readers of the old version are not
//! disturbed.
//!
//! A query walks the name's ancestors in one shard ([`Zone::lookup`]) and the
//! handler writes the answer from the RRsets it finds; every shard also carries
//! the DNSSEC signatures of its RRsets ([`crate::dnssec::ShardSigs`]).
//!
//! It must not know about packets or transports.

pub mod build;
pub mod generate;
pub mod master;
pub mod shard;

use crate::dnssec::ShardSigs;
use crate::name::{self, Key};
use crate::wire::Rtype;
use std::sync::Arc;

pub use build::{load_file, LoadError, ZoneBuilder};
pub use shard::{shard_of, Glue, GlueAt, Node, RRset, Shard, ZoneStats, SHARDS};

/// A node is the zone apex.
pub const APEX: u16 = 1;
/// A node is a delegation point (NS below the apex).
pub const DELEGATION: u16 = 2;
/// A node is below a delegation point: glue only, never answered from.
pub const BELOW_CUT: u16 = 4;
/// A node has a `*` child (a wildcard).
pub const HAS_WILDCARD: u16 = 8;
/// A delegation has a DS RRset (a secure delegation).
pub const SECURE: u16 = 16;

/// Shard number used for the apex shard in [`NodeRef::shard_no`].
pub const APEX_SHARD: u32 = u32::MAX;

/// One shard as a version of the zone serves it: its names and their signatures.
pub struct ZShard {
    /// The names and RRsets.
    pub data: Arc<Shard>,
    /// Signatures of the shard's RRsets, when the zone is signed.
    pub sigs: Option<ShardSigs>,
}

impl ZShard {
    /// A shard version without signatures.
    pub fn unsigned(data: Arc<Shard>) -> ZShard {
        ZShard { data, sigs: None }
    }
}

/// A name of the zone: its shard and its index there.
#[derive(Clone, Copy)]
pub struct NodeRef<'z> {
    /// The shard version holding the name.
    pub sh: &'z ZShard,
    /// Shard number ([`APEX_SHARD`] for the apex shard).
    pub shard_no: u32,
    /// Index of the node in the shard.
    pub idx: u32,
}

impl std::fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NodeRef({}, shard {}, #{})",
            name::to_text(&self.name()),
            self.shard_no,
            self.idx
        )
    }
}

impl PartialEq for NodeRef<'_> {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self.sh, o.sh) && self.idx == o.idx
    }
}

impl<'z> NodeRef<'z> {
    /// The shard's data.
    pub fn shard(&self) -> &'z Shard {
        &self.sh.data
    }

    /// The node's flags ([`APEX`], [`DELEGATION`], ...).
    pub fn flags(&self) -> u16 {
        self.sh.data.node(self.idx).flags
    }

    /// The canonical key of the name.
    pub fn key(&self) -> &'z [u8] {
        self.sh.data.node_key(self.idx)
    }

    /// Number of labels of the name (root excluded).
    pub fn labels(&self) -> usize {
        self.key().iter().filter(|&&b| b == 0).count()
    }

    /// The lowercase wire name (allocates: not for the query path).
    pub fn name(&self) -> Vec<u8> {
        key_to_wire(self.key())
    }

    /// The node's RRsets.
    pub fn rrsets(&self) -> impl Iterator<Item = SetRef<'z>> + 'z {
        let sh = self.sh;
        let start = sh.data.rrset_start(self.idx);
        let n = sh.data.rrsets(self.idx).len() as u32;
        (start..start + n).map(move |idx| SetRef { sh, idx })
    }

    /// Whether the node holds no RRset (an empty non-terminal).
    pub fn is_empty(&self) -> bool {
        self.sh.data.rrsets(self.idx).is_empty()
    }

    /// The node's RRset of a type.
    pub fn rrset(&self, rtype: Rtype) -> Option<SetRef<'z>> {
        self.sh
            .data
            .rrset_index(self.idx, rtype)
            .map(|idx| SetRef { sh: self.sh, idx })
    }

    /// Whether the node has an RRset of a type.
    pub fn has(&self, rtype: Rtype) -> bool {
        self.sh
            .data
            .rrsets(self.idx)
            .iter()
            .any(|s| s.rtype == rtype)
    }

    /// Glue to add to a referral to (or an apex NS answer at) this node.
    pub fn glue(&self) -> &'z [Glue] {
        self.sh.data.glue(self.idx)
    }
}

/// An RRset of the zone: its shard and its index there.
#[derive(Clone, Copy)]
pub struct SetRef<'z> {
    /// The shard version holding the RRset.
    pub sh: &'z ZShard,
    /// Index of the RRset in the shard.
    pub idx: u32,
}

impl<'z> SetRef<'z> {
    /// The RRset (type, TTL, count).
    pub fn set(&self) -> &'z RRset {
        self.sh.data.rrset(self.idx)
    }

    /// Its type.
    pub fn rtype(&self) -> Rtype {
        self.set().rtype
    }

    /// Its TTL.
    pub fn ttl(&self) -> u32 {
        self.set().ttl
    }

    /// The RDATA of each record.
    pub fn rdatas(&self) -> impl Iterator<Item = &'z [u8]> + 'z {
        let data: &'z Shard = &self.sh.data;
        data.rdatas(data.rrset(self.idx))
    }

    /// The RDATA of record `i`.
    pub fn rr(&self, i: usize) -> &'z [u8] {
        let data: &'z Shard = &self.sh.data;
        data.rr(data.rrset(self.idx), i)
    }
}

/// Where a query name falls in the zone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lookup<'z> {
    /// The name exists (it may be an empty non-terminal) and is not below a delegation.
    Exact(NodeRef<'z>),
    /// The name is at or below a delegation point.
    Delegation {
        /// The delegation node.
        node: NodeRef<'z>,
        /// Whether the query name is the delegation point itself.
        exact: bool,
        /// Labels of the delegation point.
        labels: usize,
    },
    /// The name does not exist.
    NxDomain {
        /// Closest existing ancestor.
        encloser: NodeRef<'z>,
        /// Labels of the closest encloser (root excluded).
        encloser_labels: usize,
    },
}

/// One version of a loaded, checked, query-ready zone. Immutable once built.
pub struct Zone {
    origin: Vec<u8>,
    origin_labels: usize,
    apex: Arc<ZShard>,
    shards: Vec<Arc<ZShard>>,
    stats: ZoneStats,
    /// Non-fatal findings of the load-time checks.
    pub warnings: Vec<String>,
}

impl Zone {
    /// Assemble a zone from its apex shard and [`SHARDS`] shards.
    pub fn from_shards(origin: &[u8], apex: Arc<ZShard>, shards: Vec<Arc<ZShard>>) -> Zone {
        debug_assert_eq!(shards.len(), SHARDS);
        let mut stats = apex.data.stats.clone();
        for s in &shards {
            stats.add(&s.data.stats);
        }
        let origin = name::to_lowercase(origin);
        Zone {
            origin_labels: name::label_count(&origin),
            origin,
            apex,
            shards,
            stats,
            warnings: Vec::new(),
        }
    }

    /// A new version with some shards replaced (`None` = the apex shard).
    pub fn with_shards(&self, changed: Vec<(Option<usize>, Arc<ZShard>)>) -> Zone {
        let mut apex = self.apex.clone();
        let mut shards = self.shards.clone();
        let mut stats = self.stats.clone();
        let sub = |stats: &mut ZoneStats, s: &ZoneStats| {
            stats.names -= s.names;
            stats.delegations -= s.delegations;
            stats.secure_delegations -= s.secure_delegations;
            stats.glue_rrsets -= s.glue_rrsets;
            stats.records -= s.records;
            stats.empty_non_terminals -= s.empty_non_terminals;
        };
        for (no, sh) in changed {
            let slot = match no {
                None => &mut apex,
                Some(i) => &mut shards[i],
            };
            sub(&mut stats, &slot.data.stats);
            stats.add(&sh.data.stats);
            *slot = sh;
        }
        Zone {
            origin: self.origin.clone(),
            origin_labels: self.origin_labels,
            apex,
            shards,
            stats,
            warnings: Vec::new(),
        }
    }

    /// The zone origin, lowercase wire form.
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }

    /// Labels of the origin (root excluded).
    pub fn origin_labels(&self) -> usize {
        self.origin_labels
    }

    /// Counters of this version.
    pub fn stats(&self) -> &ZoneStats {
        &self.stats
    }

    /// The apex node.
    pub fn apex(&self) -> NodeRef<'_> {
        NodeRef {
            sh: &self.apex,
            shard_no: APEX_SHARD,
            idx: 0,
        }
    }

    /// The apex shard.
    pub fn apex_shard(&self) -> &Arc<ZShard> {
        &self.apex
    }

    /// Shard `i` (below the apex).
    pub fn shard(&self, i: usize) -> &Arc<ZShard> {
        &self.shards[i]
    }

    /// Every shard below the apex, by number.
    pub fn shards(&self) -> &[Arc<ZShard>] {
        &self.shards
    }

    /// The SOA RRset.
    pub fn soa(&self) -> SetRef<'_> {
        // The build refuses a zone without an SOA at the apex.
        self.apex().rrset(Rtype::SOA).unwrap_or(SetRef {
            sh: &self.apex,
            idx: 0,
        })
    }

    /// The SOA record's RDATA.
    pub fn soa_rdata(&self) -> &[u8] {
        self.soa().rr(0)
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        soa_serial(self.soa_rdata())
    }

    /// TTL for negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
    pub fn negative_ttl(&self) -> u32 {
        let r = self.soa_rdata();
        let n = r.len();
        if n < 20 {
            return 0;
        }
        let minimum = u32::from_be_bytes([r[n - 4], r[n - 3], r[n - 2], r[n - 1]]);
        minimum.min(self.soa().ttl())
    }

    fn shard_for(&self, key: &Key) -> (&ZShard, u32) {
        let no = shard_of(key.prefix(self.origin_labels + 1));
        (&self.shards[no], no as u32)
    }

    /// Locate a query name, given its key. The name must be at or below the origin.
    ///
    /// One walk from the apex down: every ancestor's key is a prefix of the name's key,
    /// and every name below the apex is in the shard of its level-one ancestor.
    pub fn lookup(&self, key: &Key) -> Lookup<'_> {
        let total = key.labels();
        let mut encloser = self.apex();
        if total <= self.origin_labels {
            return Lookup::Exact(encloser);
        }
        let (sh, no) = self.shard_for(key);
        for labels in self.origin_labels + 1..=total {
            match sh.data.find(key.prefix(labels)) {
                None => {
                    return Lookup::NxDomain {
                        encloser,
                        encloser_labels: labels - 1,
                    }
                }
                Some(i) => {
                    let node = NodeRef {
                        sh,
                        shard_no: no,
                        idx: i,
                    };
                    if node.flags() & DELEGATION != 0 {
                        return Lookup::Delegation {
                            node,
                            exact: labels == total,
                            labels,
                        };
                    }
                    encloser = node;
                }
            }
        }
        Lookup::Exact(encloser)
    }

    /// The node of a name by its key, wherever it is (below a cut too).
    pub fn find(&self, key: &Key) -> Option<NodeRef<'_>> {
        let total = key.labels();
        if total < self.origin_labels {
            return None;
        }
        if total == self.origin_labels {
            return (key.as_bytes() == self.apex.data.node_key(0)).then(|| self.apex());
        }
        let (sh, no) = self.shard_for(key);
        sh.data.find(key.as_bytes()).map(|idx| NodeRef {
            sh,
            shard_no: no,
            idx,
        })
    }

    /// The node of a name given as (any-case) wire bytes; for tools and the control plane.
    pub fn find_name(&self, wire: &[u8]) -> Option<NodeRef<'_>> {
        if name::wire_len(wire).is_err() || !name::is_at_or_below(wire, &self.origin) {
            return None;
        }
        let mut k = Key::new();
        k.set(wire);
        self.find(&k)
    }

    /// Find the wildcard child `*.<node>`, if the node has one.
    pub fn wildcard_child(&self, node: NodeRef<'_>) -> Option<NodeRef<'_>> {
        if node.flags() & HAS_WILDCARD == 0 {
            return None;
        }
        let key = node.key();
        let mut k = [0u8; name::MAX_KEY_LEN + 2];
        let n = key.len().min(name::MAX_KEY_LEN);
        k[..n].copy_from_slice(&key[..n]);
        k[n..n + 2].copy_from_slice(b"*\0");
        let labels = node.labels() + 1;
        // The wildcard lives in the shard of its own level-one ancestor.
        let level1 = if labels == self.origin_labels + 1 {
            &k[..n + 2]
        } else {
            let mut seen = 0;
            let mut end = 0;
            for (i, &b) in k[..n + 2].iter().enumerate() {
                if b == 0 {
                    seen += 1;
                    if seen == self.origin_labels + 1 {
                        end = i + 1;
                        break;
                    }
                }
            }
            &k[..end]
        };
        let no = shard_of(level1);
        let sh = &self.shards[no];
        sh.data.find(&k[..n + 2]).map(|idx| NodeRef {
            sh,
            shard_no: no as u32,
            idx,
        })
    }

    /// Every node of the zone, apex first, then shard by shard (canonical order inside a shard).
    pub fn nodes(&self) -> impl Iterator<Item = NodeRef<'_>> + '_ {
        std::iter::once(self.apex()).chain(self.shards.iter().enumerate().flat_map(|(no, sh)| {
            (0..sh.data.node_count() as u32).map(move |idx| NodeRef {
                sh,
                shard_no: no as u32,
                idx,
            })
        }))
    }

    /// Approximate heap bytes held by the index (for `belfry check`).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.data.heap_bytes())
            .sum::<usize>()
            + self.apex.data.heap_bytes()
    }
}

/// The serial field of SOA RDATA (the 20 bytes at the end hold serial, refresh,
/// retry, expire and minimum, RFC 1035 §3.3.13).
pub fn soa_serial(rdata: &[u8]) -> u32 {
    let n = rdata.len();
    if n < 20 {
        return 0;
    }
    u32::from_be_bytes([rdata[n - 20], rdata[n - 19], rdata[n - 18], rdata[n - 17]])
}

/// SOA RDATA with another serial.
pub fn soa_with_serial(rdata: &[u8], serial: u32) -> Vec<u8> {
    let mut v = rdata.to_vec();
    let n = v.len();
    if n >= 20 {
        v[n - 20..n - 16].copy_from_slice(&serial.to_be_bytes());
    }
    v
}

/// Write the lowercase wire name of a canonical key into `out`; returns its length.
pub fn key_to_wire_buf(key: &[u8], out: &mut [u8; 256]) -> usize {
    // Label boundaries, root side first.
    let mut ends = [0u16; 128];
    let mut n = 0usize;
    let mut i = 0usize;
    while i < key.len() {
        match key[i] {
            0 if n < 128 => {
                ends[n] = i as u16;
                n += 1;
            }
            0 => {}
            1 => i += 1,
            _ => {}
        }
        i += 1;
    }
    let mut pos = 0usize;
    for l in (0..n).rev() {
        let start = if l == 0 { 0 } else { ends[l - 1] as usize + 1 };
        let end = ends[l] as usize;
        let len_at = pos;
        pos += 1;
        let mut j = start;
        while j < end && pos < 255 {
            if key[j] == 1 && j + 1 < end {
                out[pos] = key[j + 1] - 1;
                j += 2;
            } else {
                out[pos] = key[j];
                j += 1;
            }
            pos += 1;
        }
        out[len_at] = (pos - len_at - 1) as u8;
    }
    out[pos] = 0;
    pos + 1
}

/// Turn a canonical key back into a lowercase wire name.
pub fn key_to_wire(key: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = key_to_wire_buf(key, &mut buf);
    buf[..n].to_vec()
}

/// Whether a name is at or below the origin; a convenience for callers holding text names.
pub fn in_zone(zone: &Zone, wire: &[u8]) -> bool {
    name::is_at_or_below(wire, &zone.origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip() {
        for t in ["a\\000b.Example.be.", "be.", ".", "x\\001\\002.y.z."] {
            let w = name::from_text(t, &[0]).unwrap();
            let k = name::key_of(&w);
            assert_eq!(key_to_wire(&k), name::to_lowercase(&w));
            let mut buf = [0u8; 256];
            let n = key_to_wire_buf(&k, &mut buf);
            assert_eq!(&buf[..n], &name::to_lowercase(&w)[..], "{t}");
        }
    }
}
