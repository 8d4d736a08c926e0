//! The zone: loaded records turned into a query-ready index.
//!
//! Owns the in-memory form of one zone (RFC 1034 §4.2–4.3): every name as a
//! canonical key (see [`crate::name`]) in a hash table, RRsets as wire RDATA
//! in one arena, and, for each delegation, the glue to add to a referral,
//! resolved at load time. A query only follows indices and copies bytes.
//!
//! It must not know about packets or transports; the handler asks it
//! questions ([`Zone::lookup`]) and writes the answer itself.

pub mod build;
pub mod generate;
pub mod master;

use crate::name::{self, Key};
use crate::wire::Rtype;
use hashbrown::HashTable;
use std::hash::BuildHasher;

pub use build::{load_file, LoadError, ZoneBuilder};

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

/// One name in the zone.
#[derive(Clone, Copy, Debug)]
pub struct Node {
    key_off: u32,
    key_len: u16,
    /// Bit set of [`APEX`], [`DELEGATION`], ...
    pub flags: u16,
    rrset_start: u32,
    rrset_count: u16,
    glue_count: u16,
    glue_start: u32,
}

/// One RRset: type, TTL and its records' RDATA in the arena.
#[derive(Clone, Copy, Debug)]
pub struct RRset {
    /// Record type.
    pub rtype: Rtype,
    /// Number of records.
    pub count: u16,
    /// TTL shared by the records.
    pub ttl: u32,
    /// Offset in the RDATA arena of the first record (`[len][rdata]` records follow each other).
    first_rr: u32,
}

/// An address RRset to add as glue to a referral (or to an apex NS answer).
#[derive(Clone, Copy, Debug)]
pub struct Glue {
    /// Index of the NS record (in its RRset) whose target this address belongs to.
    pub ns_index: u16,
    /// Whether it is in-domain glue that must be sent or the answer truncated (RFC 9471).
    pub required: bool,
    /// The A or AAAA RRset.
    pub rrset: u32,
}

/// Where a query name falls in the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists (it may be an empty non-terminal) and is not below a delegation.
    Exact(u32),
    /// The name is at or below a delegation point: `node` is the delegation,
    /// `exact` says whether the query name is the delegation itself.
    Delegation {
        /// The delegation node.
        node: u32,
        /// Whether the query name is the delegation point itself.
        exact: bool,
    },
    /// The name does not exist; `encloser` is its closest existing ancestor and
    /// `encloser_labels` that ancestor's label count.
    NxDomain {
        /// Closest encloser node.
        encloser: u32,
        /// Labels of the closest encloser (root excluded).
        encloser_labels: usize,
    },
}

/// Counters describing a loaded zone.
#[derive(Clone, Debug, Default)]
pub struct ZoneStats {
    /// Names in the index (with empty non-terminals).
    pub names: usize,
    /// Delegation points.
    pub delegations: usize,
    /// Delegations with a DS RRset.
    pub secure_delegations: usize,
    /// Address RRsets below delegation points.
    pub glue_rrsets: usize,
    /// Resource records loaded.
    pub records: usize,
    /// Empty non-terminals.
    pub empty_non_terminals: usize,
}

/// A loaded, checked, query-ready zone. Immutable once built.
pub struct Zone {
    origin: Vec<u8>,
    origin_labels: usize,
    nodes: Vec<Node>,
    keys: Vec<u8>,
    table: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    rrsets: Vec<RRset>,
    rdata: Vec<u8>,
    glue: Vec<Glue>,
    apex: u32,
    soa: u32,
    /// Load counters.
    pub stats: ZoneStats,
    /// Non-fatal findings of the load-time checks.
    pub warnings: Vec<String>,
}

impl Zone {
    /// The zone origin, lowercase wire form.
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }

    /// Labels of the origin (root excluded).
    pub fn origin_labels(&self) -> usize {
        self.origin_labels
    }

    /// The apex node.
    pub fn apex(&self) -> u32 {
        self.apex
    }

    /// The SOA RRset.
    pub fn soa(&self) -> &RRset {
        &self.rrsets[self.soa as usize]
    }

    /// Index of the SOA RRset.
    pub fn soa_index(&self) -> u32 {
        self.soa
    }

    /// The SOA record's RDATA.
    pub fn soa_rdata(&self) -> &[u8] {
        self.rr(self.soa(), 0)
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        let r = self.soa_rdata();
        let n = r.len();
        u32::from_be_bytes([r[n - 20], r[n - 19], r[n - 18], r[n - 17]])
    }

    /// TTL for negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
    pub fn negative_ttl(&self) -> u32 {
        let r = self.soa_rdata();
        let n = r.len();
        let minimum = u32::from_be_bytes([r[n - 4], r[n - 3], r[n - 2], r[n - 1]]);
        minimum.min(self.soa().ttl)
    }

    /// A node by index.
    pub fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The canonical key of a node.
    pub fn node_key(&self, i: u32) -> &[u8] {
        let n = &self.nodes[i as usize];
        &self.keys[n.key_off as usize..n.key_off as usize + n.key_len as usize]
    }

    /// The lowercase wire name of a node (built from its key; not for the query path).
    pub fn node_name(&self, i: u32) -> Vec<u8> {
        key_to_wire(self.node_key(i))
    }

    /// The RRsets of a node.
    pub fn rrsets(&self, node: u32) -> &[RRset] {
        let n = &self.nodes[node as usize];
        &self.rrsets[n.rrset_start as usize..n.rrset_start as usize + n.rrset_count as usize]
    }

    /// Index (in the zone-wide RRset table) of a node's RRset of a type.
    pub fn rrset_index(&self, node: u32, rtype: Rtype) -> Option<u32> {
        let n = &self.nodes[node as usize];
        (n.rrset_start..n.rrset_start + n.rrset_count as u32)
            .find(|&i| self.rrsets[i as usize].rtype == rtype)
    }

    /// An RRset by zone-wide index.
    pub fn rrset(&self, i: u32) -> &RRset {
        &self.rrsets[i as usize]
    }

    /// Number of RRsets in the zone.
    pub fn rrset_count(&self) -> usize {
        self.rrsets.len()
    }

    /// The RDATA of record `i` of an RRset.
    pub fn rr(&self, set: &RRset, i: usize) -> &[u8] {
        self.rdatas(set).nth(i).unwrap_or(&[])
    }

    /// Iterate over the RDATA of an RRset (adjacent `[len][rdata]` records in the arena).
    pub fn rdatas(&self, set: &RRset) -> impl Iterator<Item = &[u8]> + '_ {
        let mut off = set.first_rr as usize;
        let count = set.count as usize;
        (0..count).map(move |_| {
            let len = u16::from_be_bytes([self.rdata[off], self.rdata[off + 1]]) as usize;
            let r = &self.rdata[off + 2..off + 2 + len];
            off += 2 + len;
            r
        })
    }

    /// Glue to add to a referral to (or apex NS answer at) `node`.
    pub fn glue(&self, node: u32) -> &[Glue] {
        let n = &self.nodes[node as usize];
        &self.glue[n.glue_start as usize..n.glue_start as usize + n.glue_count as usize]
    }

    /// Find a node by its key.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        find_in(&self.table, &self.hasher, &self.nodes, &self.keys, key)
    }

    /// Locate a query name, given its key. The name must be at or below the origin.
    ///
    /// One walk from the apex down: every ancestor's key is a prefix of the name's key.
    pub fn lookup(&self, key: &Key) -> Lookup {
        let total = key.labels();
        let mut encloser = self.apex;
        for labels in self.origin_labels + 1..=total {
            match self.find(key.prefix(labels)) {
                None => {
                    return Lookup::NxDomain {
                        encloser,
                        encloser_labels: labels - 1,
                    }
                }
                Some(i) => {
                    let flags = self.nodes[i as usize].flags;
                    if flags & DELEGATION != 0 {
                        return Lookup::Delegation {
                            node: i,
                            exact: labels == total,
                        };
                    }
                    encloser = i;
                }
            }
        }
        Lookup::Exact(encloser)
    }

    /// Find the wildcard child `*.<node>`, if the node has one.
    pub fn wildcard_child(&self, node: u32) -> Option<u32> {
        if self.nodes[node as usize].flags & HAS_WILDCARD == 0 {
            return None;
        }
        let key = self.node_key(node);
        let mut k = [0u8; name::MAX_KEY_LEN + 2];
        let n = key.len().min(name::MAX_KEY_LEN);
        k[..n].copy_from_slice(&key[..n]);
        k[n..n + 2].copy_from_slice(b"*\0");
        self.find(&k[..n + 2])
    }

    /// Approximate heap bytes held by the index (for `belfry check`).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.keys.capacity()
            + self.table.capacity() * 5
            + self.rrsets.capacity() * std::mem::size_of::<RRset>()
            + self.rdata.capacity()
            + self.glue.capacity() * std::mem::size_of::<Glue>()
    }
}

/// Look a key up in a node table (shared by the zone and its builder).
fn find_in(
    table: &HashTable<u32>,
    hasher: &hashbrown::DefaultHashBuilder,
    nodes: &[Node],
    keys: &[u8],
    key: &[u8],
) -> Option<u32> {
    let h = hasher.hash_one(key);
    table
        .find(h, |&i| {
            let n = &nodes[i as usize];
            &keys[n.key_off as usize..n.key_off as usize + n.key_len as usize] == key
        })
        .copied()
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
