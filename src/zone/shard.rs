//! One shard of the zone index: every name below a group of second-level labels.
//!
//! A zone is cut into [`SHARDS`] shards by a fixed hash of the label just below
//! the origin (`example` in `www.example.be.`), plus one shard holding the apex
//! alone. A delegation, everything below it and its in-bailiwick glue therefore
//! always share a shard, so every check of RFC 1034 §4.2.1 (what may sit at and
//! below a cut) is local to one shard, and a change to one delegation rebuilds
//! one shard of a few hundred names instead of the whole index.
//!
//! Inside a shard, names are kept as canonical keys (see [`crate::name`]) in
//! canonical order, with a hash table from key to node; RRsets are wire RDATA in
//! one arena. A shard is immutable once built: a change builds a new one.
//!
//! This module must not know about packets or signatures.

use super::{APEX, BELOW_CUT, DELEGATION, HAS_WILDCARD, SECURE};
use crate::name::{self, Key};
use crate::wire::Rtype;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Bits of the shard number.
pub const SHARD_BITS: u32 = 12;
/// Number of shards below the apex.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// Seeds of the fixed hashers: shard choice must be the same in every process
/// (the checkpoint and the tests rely on it); the in-shard tables use another seed.
const SHARD_SEED: u64 = 0x6265_6c66_7279_0001;
const TABLE_SEED: u64 = 0x6265_6c66_7279_0002;

fn table_hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(TABLE_SEED)
}

/// Key to node index within one shard: open addressing with linear probing, never
/// more than 70 % full.
///
/// Each slot is one `u64`: the high half of the key's hash as a tag, and the node
/// index plus one (0 marks an empty slot). A probe reads one slot, usually in the
/// same cache line as the next few, and touches the node only when the tag agrees;
/// hashbrown's control bytes and buckets are two places in memory, so its probe costs
/// one cache miss more on a zone that does not fit in the cache (the query path's
/// first lookup of every query; see the README, Design).
struct NameTable {
    slots: Box<[u64]>,
}

impl NameTable {
    fn empty() -> NameTable {
        NameTable {
            slots: Box::new([]),
        }
    }

    /// A table of nodes `0..n`, given each node's key.
    fn build<'k>(n: usize, key: impl Fn(u32) -> &'k [u8]) -> NameTable {
        if n == 0 {
            return NameTable::empty();
        }
        let cap = (n * 10 / 7 + 1).next_power_of_two();
        let mut slots = vec![0u64; cap].into_boxed_slice();
        let mask = cap - 1;
        for i in 0..n as u32 {
            let h = table_hasher().hash_one(key(i));
            let mut at = h as usize & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = (h & 0xffff_ffff_0000_0000) | (u64::from(i) + 1);
        }
        NameTable { slots }
    }

    /// The node whose key is `key`, given a test of a node's key.
    #[inline]
    fn find(&self, key: &[u8], is: impl Fn(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let h = table_hasher().hash_one(key);
        let tag = h & 0xffff_ffff_0000_0000;
        let mask = self.slots.len() - 1;
        let mut at = h as usize & mask;
        loop {
            let s = self.slots[at];
            if s == 0 {
                return None;
            }
            if s & 0xffff_ffff_0000_0000 == tag {
                let i = (s as u32).wrapping_sub(1);
                if is(i) {
                    return Some(i);
                }
            }
            at = (at + 1) & mask;
        }
    }

    fn heap_bytes(&self) -> usize {
        self.slots.len() * 8
    }
}

/// The shard of a name, given the key of its ancestor one label below the origin.
pub fn shard_of(level1_key: &[u8]) -> usize {
    let h = foldhash::fast::FixedState::with_seed(SHARD_SEED).hash_one(level1_key);
    (h >> (64 - SHARD_BITS)) as usize
}

/// One name in a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One RRset: type, TTL and its records' RDATA in the shard's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// Where the addresses of a glue name are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlueAt {
    /// An A or AAAA RRset of this shard (index).
    Local(u32),
    /// In another shard: looked up by the NS target name when a referral is written.
    Remote,
}

/// An address RRset to add as glue to a referral (or to an apex NS answer).
#[derive(Clone, Copy, Debug)]
pub struct Glue {
    /// Index of the NS record (in its RRset) whose target this address belongs to.
    pub ns_index: u16,
    /// Whether it is in-domain glue that must be sent or the answer truncated (RFC 9471).
    pub required: bool,
    /// Where the addresses are.
    pub at: GlueAt,
}

/// Counters describing (part of) a zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneStats {
    /// Names in the index (with empty non-terminals).
    pub names: usize,
    /// Delegation points.
    pub delegations: usize,
    /// Delegations with a DS RRset.
    pub secure_delegations: usize,
    /// Address RRsets below delegation points.
    pub glue_rrsets: usize,
    /// Resource records (after removing duplicates).
    pub records: usize,
    /// Empty non-terminals.
    pub empty_non_terminals: usize,
}

impl ZoneStats {
    /// Add another part's counters.
    pub fn add(&mut self, o: &ZoneStats) {
        self.names += o.names;
        self.delegations += o.delegations;
        self.secure_delegations += o.secure_delegations;
        self.glue_rrsets += o.glue_rrsets;
        self.records += o.records;
        self.empty_non_terminals += o.empty_non_terminals;
    }
}

/// The names of one shard, query-ready. Immutable once built.
pub struct Shard {
    nodes: Vec<Node>,
    keys: Vec<u8>,
    table: NameTable,
    rrsets: Vec<RRset>,
    rdata: Vec<u8>,
    glue: Vec<Glue>,
    /// Counters of this shard.
    pub stats: ZoneStats,
    /// The largest TTL of an RRset the zone's signer signs here (every RRset but
    /// the NS of a delegation and what is below a cut): the key manager's
    /// timing needs the zone's largest, and reads it from each shard.
    max_signed_ttl: u32,
}

impl Shard {
    /// Whether two shards are laid out byte for byte alike: then they hold the
    /// same names and RRsets. Shards built from the same records in the same
    /// order are (an unchanged part of a reloaded file); false says nothing.
    pub fn identical(&self, other: &Shard) -> bool {
        self.keys == other.keys
            && self.nodes == other.nodes
            && self.rrsets == other.rrsets
            && self.rdata == other.rdata
    }

    /// Whether node `i` here and node `j` of `other` have the same RRsets: types,
    /// TTLs and records, byte for byte and in order.
    pub fn same_rrsets(&self, i: u32, other: &Shard, j: u32) -> bool {
        let (x, y) = (self.rrsets(i), other.rrsets(j));
        x.len() == y.len()
            && x.iter().zip(y).all(|(s, t)| {
                s.rtype == t.rtype
                    && s.ttl == t.ttl
                    && s.count == t.count
                    && self.rdatas(s).eq(other.rdatas(t))
            })
    }

    /// A shard with no names.
    pub fn empty() -> Shard {
        Shard {
            nodes: Vec::new(),
            keys: Vec::new(),
            table: NameTable::empty(),
            rrsets: Vec::new(),
            rdata: Vec::new(),
            glue: Vec::new(),
            stats: ZoneStats::default(),
            max_signed_ttl: 0,
        }
    }

    /// The largest TTL of an RRset that is signed in this shard (0 when none is).
    pub fn max_signed_ttl(&self) -> u32 {
        self.max_signed_ttl
    }

    /// Number of names.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the shard holds no name.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node by index (nodes are in canonical order).
    pub fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    /// The canonical key of a node.
    pub fn node_key(&self, i: u32) -> &[u8] {
        let n = &self.nodes[i as usize];
        &self.keys[n.key_off as usize..n.key_off as usize + n.key_len as usize]
    }

    /// Find a node by its full key.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        self.table.find(key, |i| self.node_key(i) == key)
    }

    /// The RRsets of a node.
    pub fn rrsets(&self, node: u32) -> &[RRset] {
        let n = &self.nodes[node as usize];
        &self.rrsets[n.rrset_start as usize..n.rrset_start as usize + n.rrset_count as usize]
    }

    /// Index (in this shard's RRset table) of a node's RRset of a type.
    pub fn rrset_index(&self, node: u32, rtype: Rtype) -> Option<u32> {
        let n = &self.nodes[node as usize];
        (n.rrset_start..n.rrset_start + n.rrset_count as u32)
            .find(|&i| self.rrsets[i as usize].rtype == rtype)
    }

    /// Index of a node's first RRset (RRsets of a node are adjacent, sorted by type).
    pub fn rrset_start(&self, node: u32) -> u32 {
        self.nodes[node as usize].rrset_start
    }

    /// An RRset by index.
    pub fn rrset(&self, i: u32) -> &RRset {
        &self.rrsets[i as usize]
    }

    /// Number of RRsets (node RRsets only).
    pub fn rrset_count(&self) -> usize {
        self.rrsets.len()
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

    /// The RDATA of record `i` of an RRset.
    pub fn rr(&self, set: &RRset, i: usize) -> &[u8] {
        self.rdatas(set).nth(i).unwrap_or(&[])
    }

    /// Glue to add to a referral to (or apex NS answer at) `node`.
    pub fn glue(&self, node: u32) -> &[Glue] {
        let n = &self.nodes[node as usize];
        &self.glue[n.glue_start as usize..n.glue_start as usize + n.glue_count as usize]
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.keys.capacity()
            + self.table.heap_bytes()
            + self.rrsets.capacity() * std::mem::size_of::<RRset>()
            + self.rdata.capacity()
            + self.glue.capacity() * std::mem::size_of::<Glue>()
    }

    /// Every record of the shard as (node, RRset index), in canonical order of names and types.
    pub fn node_rrsets(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.nodes.len() as u32).flat_map(move |n| {
            let nd = &self.nodes[n as usize];
            (nd.rrset_start..nd.rrset_start + nd.rrset_count as u32).map(move |s| (n, s))
        })
    }
}

/// Where a record came from, for error messages: a file index and a line (or a change's item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Src {
    /// Index into the caller's table of sources (files).
    pub file: u16,
    /// 1-based line (or item number).
    pub line: u32,
}

/// A shard that failed its checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardError {
    /// Where the record at fault came from (none: the zone as a whole).
    pub src: Option<Src>,
    /// What is wrong.
    pub message: String,
}

#[derive(Clone, Copy)]
struct Rec {
    node: u32,
    rtype: u16,
    src: Src,
    ttl: u32,
    rdata_off: u32,
}

/// Collects the records of one shard and turns them into a [`Shard`].
pub struct ShardBuilder {
    origin_labels: usize,
    apex: bool,
    shard_no: Option<usize>,
    nodes: Vec<(u32, u16)>,
    keys: Vec<u8>,
    recs: Vec<Rec>,
    rdata: Vec<u8>,
    last: u32,
    ttl_mismatches: usize,
}

/// Checks a shard needs from the rest of the zone.
pub trait ZoneContext {
    /// Whether some NS record in another shard names this host (key) as its target.
    fn referenced_elsewhere(&self, host_key: &[u8]) -> bool;
}

/// A context for a zone with no other shards (tests, or a single-shard check).
pub struct NoContext;

impl ZoneContext for NoContext {
    fn referenced_elsewhere(&self, _host_key: &[u8]) -> bool {
        false
    }
}

/// A shard between its two build phases: indexed and checked node by node, glue not yet resolved.
pub struct Indexed {
    shard: Shard,
    /// Source of the first record of each RRset (for error lines).
    first_src: Vec<Src>,
    apex: bool,
    shard_no: Option<usize>,
    origin_labels: usize,
    /// TTL mismatches seen (RFC 2181 §5.2).
    pub ttl_mismatches: usize,
}

impl ShardBuilder {
    /// A builder for shard `shard_no` of a zone whose origin has `origin_labels`
    /// labels; `None` for the shard that holds the apex alone.
    pub fn new(origin_labels: usize, shard_no: Option<usize>) -> Self {
        ShardBuilder {
            origin_labels,
            apex: shard_no.is_none(),
            shard_no,
            nodes: Vec::new(),
            keys: Vec::new(),
            recs: Vec::new(),
            rdata: Vec::new(),
            last: u32::MAX,
            ttl_mismatches: 0,
        }
    }

    /// Reserve room for about `records` records.
    pub fn reserve(&mut self, records: usize) {
        self.recs.reserve(records);
        self.rdata.reserve(records * 24);
    }

    fn key_of(&self, i: u32) -> &[u8] {
        let (o, l) = self.nodes[i as usize];
        &self.keys[o as usize..o as usize + l as usize]
    }

    /// Note a name; returns its node among the names noted so far. A name noted
    /// again right after itself (the next record of the same owner) is the same
    /// node; one noted again later is merged with it, and every ancestor down to
    /// the shard's top label is made, when the shard is indexed. Nothing is hashed
    /// here: records arrive in file order, scattered over thousands of shards, and a
    /// table probe per name cost a cache miss or two each.
    pub fn name(&mut self, key: &Key) -> u32 {
        if self.last != u32::MAX && self.key_of(self.last) == key.as_bytes() {
            return self.last;
        }
        let idx = self.nodes.len() as u32;
        self.nodes
            .push((self.keys.len() as u32, key.as_bytes().len() as u16));
        self.keys.extend_from_slice(key.as_bytes());
        self.last = idx;
        idx
    }

    /// Add one record whose owner key is `key` (at or below this shard's top label).
    pub fn add(&mut self, key: &Key, rtype: u16, ttl: u32, rdata: &[u8], src: Src) {
        let node = self.name(key);
        let off = self.rdata.len();
        self.rdata
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.rdata.extend_from_slice(rdata);
        self.recs.push(Rec {
            node,
            rtype,
            src,
            ttl,
            rdata_off: off as u32,
        });
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty() && self.nodes.is_empty()
    }

    fn rdata_of(&self, off: u32) -> &[u8] {
        let off = off as usize;
        let len = u16::from_be_bytes([self.rdata[off], self.rdata[off + 1]]) as usize;
        &self.rdata[off + 2..off + 2 + len]
    }

    /// The nodes in the order of their keys (equal keys in the order noted). Sorted
    /// first by eight bytes of the key after the part every key here shares, then
    /// within equal runs by whole keys: a TLD shard's keys differ early, and
    /// comparing integers spares a call to compare bytes per step.
    fn sorted_nodes(&self) -> Vec<u32> {
        let skip = if self.apex || self.nodes.is_empty() {
            0
        } else {
            let mut k = Key::new();
            k.set_key(self.key_of(0));
            k.prefix(self.origin_labels.min(k.labels())).len()
        };
        let head = |k: &[u8]| {
            let mut b = [0u8; 8];
            let rest = k.get(skip..).unwrap_or(&[]);
            let n = rest.len().min(8);
            b[..n].copy_from_slice(&rest[..n]);
            u64::from_be_bytes(b)
        };
        let mut pairs: Vec<(u64, u32)> = (0..self.nodes.len() as u32)
            .map(|i| (head(self.key_of(i)), i))
            .collect();
        pairs.sort_unstable();
        let mut order: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let mut i = 0;
        while i < pairs.len() {
            let mut j = i + 1;
            while j < pairs.len() && pairs[j].0 == pairs[i].0 {
                j += 1;
            }
            if j - i > 1 {
                order[i..j]
                    .sort_unstable_by(|&a, &b| self.key_of(a).cmp(self.key_of(b)).then(a.cmp(&b)));
            }
            i = j;
        }
        order
    }

    /// Phase one: group records into RRsets, order names canonically, check each
    /// name (SOA, CNAME, DS, cuts) and flag delegations and what is below them.
    pub fn index(mut self) -> Result<Indexed, ShardError> {
        // Canonical order of the names noted: sort, then merge repeats and make the
        // missing ancestors (empty non-terminals) while renumbering.
        let order = self.sorted_nodes();
        let mut renum = vec![0u32; self.nodes.len()];
        let mut keys: Vec<u8> = Vec::with_capacity(self.keys.len() + self.keys.len() / 8);
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len() + self.nodes.len() / 8);
        // The names made so far that are ancestors of (or equal to) the name at hand,
        // shortest first: in canonical order a name's descendants follow it at once.
        let mut line: Vec<u32> = Vec::new();
        let mut full = Key::new();
        let top = self.origin_labels + 1;
        for &old in &order {
            let k = self.key_of(old);
            if let Some(last) = nodes.len().checked_sub(1) {
                if key_in(&nodes, &keys, last) == k {
                    renum[old as usize] = last as u32;
                    continue;
                }
            }
            while let Some(&t) = line.last() {
                if k.starts_with(key_in(&nodes, &keys, t as usize)) {
                    break;
                }
                line.pop();
            }
            if !self.apex {
                full.set_key(k);
                for labels in top..full.labels() {
                    let p = full.prefix(labels);
                    let have = line
                        .iter()
                        .any(|&t| nodes[t as usize].key_len as usize == p.len());
                    if !have {
                        line.push(nodes.len() as u32);
                        push_node(&mut nodes, &mut keys, p);
                    }
                }
            }
            renum[old as usize] = nodes.len() as u32;
            line.push(nodes.len() as u32);
            push_node(&mut nodes, &mut keys, k);
        }
        drop(order);
        for r in self.recs.iter_mut() {
            r.node = renum[r.node as usize];
        }
        drop(renum);
        self.nodes = Vec::new();
        self.keys = Vec::new();
        let n_nodes = nodes.len();
        let table = NameTable::build(n_nodes, |i| {
            let n = &nodes[i as usize];
            &keys[n.key_off as usize..n.key_off as usize + n.key_len as usize]
        });

        // Counting sort of records by node, keeping input order within a node.
        let mut start = vec![0u32; n_nodes + 1];
        for r in &self.recs {
            start[r.node as usize + 1] += 1;
        }
        for i in 0..n_nodes {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut by_node = vec![0u32; self.recs.len()];
        for (i, r) in self.recs.iter().enumerate() {
            let slot = &mut fill[r.node as usize];
            by_node[*slot as usize] = i as u32;
            *slot += 1;
        }
        drop(fill);

        let mut rrsets: Vec<RRset> = Vec::with_capacity(n_nodes + n_nodes / 2);
        let mut first_src: Vec<Src> = Vec::with_capacity(n_nodes + n_nodes / 2);
        let mut rrs: Vec<u32> = Vec::with_capacity(self.recs.len());
        let mut stats = ZoneStats::default();
        let mut group: Vec<u32> = Vec::new();
        for (node, nd) in nodes.iter_mut().enumerate() {
            let (s, e) = (start[node] as usize, start[node + 1] as usize);
            group.clear();
            group.extend_from_slice(&by_node[s..e]);
            let recs = &self.recs;
            group.sort_by_key(|&i| recs[i as usize].rtype);
            let rr_start = rrsets.len();
            let mut i = 0;
            while i < group.len() {
                let first = self.recs[group[i] as usize];
                let set_first_rr = rrs.len();
                let mut j = i;
                while j < group.len() && self.recs[group[j] as usize].rtype == first.rtype {
                    let r = self.recs[group[j] as usize];
                    if r.ttl != first.ttl {
                        self.ttl_mismatches += 1;
                    }
                    let data = self.rdata_of(r.rdata_off);
                    // RFC 2181 §5: an RRset holds no duplicates.
                    if !rrs[set_first_rr..]
                        .iter()
                        .any(|&o| self.rdata_of(o) == data)
                    {
                        rrs.push(r.rdata_off);
                    }
                    j += 1;
                }
                let count = rrs.len() - set_first_rr;
                if count > u16::MAX as usize {
                    return Err(ShardError {
                        src: Some(first.src),
                        message: "RRset with more than 65535 records".into(),
                    });
                }
                rrsets.push(RRset {
                    rtype: Rtype(first.rtype),
                    count: count as u16,
                    ttl: first.ttl,
                    first_rr: set_first_rr as u32,
                });
                stats.records += count;
                first_src.push(first.src);
                i = j;
            }
            nd.rrset_start = rr_start as u32;
            nd.rrset_count = (rrsets.len() - rr_start) as u16;
        }
        drop(by_node);
        drop(start);
        let recs = std::mem::take(&mut self.recs);
        drop(recs);
        let rdata = compact(&self.rdata, &rrs, &mut rrsets);
        drop(rrs);
        self.rdata = Vec::new();
        rrsets.shrink_to_fit();
        first_src.shrink_to_fit();
        let mut ix = Indexed {
            shard: Shard {
                nodes,
                keys,
                table,
                rrsets,
                rdata,
                glue: Vec::new(),
                stats,
                max_signed_ttl: 0,
            },
            first_src,
            apex: self.apex,
            shard_no: self.shard_no,
            origin_labels: self.origin_labels,
            ttl_mismatches: self.ttl_mismatches,
        };
        ix.check_nodes()?;
        Ok(ix)
    }
}

fn key_in<'a>(nodes: &[Node], keys: &'a [u8], i: usize) -> &'a [u8] {
    let n = &nodes[i];
    &keys[n.key_off as usize..n.key_off as usize + n.key_len as usize]
}

fn push_node(nodes: &mut Vec<Node>, keys: &mut Vec<u8>, k: &[u8]) {
    nodes.push(Node {
        key_off: keys.len() as u32,
        key_len: k.len() as u16,
        flags: 0,
        rrset_start: 0,
        rrset_count: 0,
        glue_count: 0,
        glue_start: 0,
    });
    keys.extend_from_slice(k);
}

/// Lay the RDATA out RRset by RRset (each RRset's records adjacent, so an answer
/// reads one run of memory) and store identical NS/A/AAAA RRsets once: in a TLD
/// many delegations share their hosting provider's name-server set.
fn compact(old: &[u8], rrs: &[u32], rrsets: &mut [RRset]) -> Vec<u8> {
    let mut arena: Vec<u8> = Vec::with_capacity(old.len() / 2);
    let hasher = table_hasher();
    let mut seen: HashTable<(u32, u32)> = HashTable::new();
    for set in rrsets.iter_mut() {
        let start = arena.len();
        for k in 0..set.count as usize {
            let off = rrs[set.first_rr as usize + k] as usize;
            let len = u16::from_be_bytes([old[off], old[off + 1]]) as usize;
            arena.extend_from_slice(&old[off..off + 2 + len]);
        }
        let end = arena.len();
        set.first_rr = start as u32;
        if !matches!(set.rtype, Rtype::NS | Rtype::A | Rtype::AAAA) {
            continue;
        }
        let h = hasher.hash_one((set.rtype.0, &arena[start..end]));
        let found = seen
            .find(h, |&(o, l)| {
                arena[o as usize..(o + l) as usize] == arena[start..end]
            })
            .copied();
        match found {
            Some((o, _)) => {
                arena.truncate(start);
                set.first_rr = o;
            }
            None => {
                let a = &arena;
                seen.insert_unique(h, (start as u32, (end - start) as u32), |&(o, l)| {
                    hasher.hash_one((set.rtype.0, &a[o as usize..(o + l) as usize]))
                });
            }
        }
    }
    arena.shrink_to_fit();
    arena
}

fn rtype_name(t: Rtype) -> String {
    super::master::rtype_to_string(t.0)
}

fn node_text(key: &[u8]) -> String {
    name::to_text(&super::key_to_wire(key))
}

fn label_count_of_key(key: &[u8]) -> usize {
    key.iter().filter(|&&b| b == 0).count()
}

impl Indexed {
    /// The shard as indexed so far.
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// Set a flag on the apex (only in the apex shard: the wildcard flag depends on another shard).
    pub fn flag_apex(&mut self, flag: u16) {
        if self.apex {
            if let Some(n) = self.shard.nodes.first_mut() {
                n.flags |= flag;
            }
        }
    }

    fn err(&self, set: usize, message: String) -> ShardError {
        ShardError {
            src: self.first_src.get(set).copied(),
            message,
        }
    }

    #[allow(clippy::needless_range_loop)]
    fn check_nodes(&mut self) -> Result<(), ShardError> {
        let sh = &self.shard;
        let n_nodes = sh.nodes.len();
        let mut flags = vec![0u16; n_nodes];
        let mut stats = sh.stats.clone();
        for node in 0..n_nodes {
            let nd = sh.nodes[node];
            let base = nd.rrset_start as usize;
            let sets = &sh.rrsets[base..base + nd.rrset_count as usize];
            let has = |t: Rtype| sets.iter().position(|s| s.rtype == t);
            let key = sh.node_key(node as u32);
            let is_apex = self.apex && label_count_of_key(key) == self.origin_labels;
            if sets.is_empty() {
                stats.empty_non_terminals += 1;
            }
            if let Some(k) = has(Rtype::SOA) {
                if !is_apex {
                    return Err(self.err(
                        base + k,
                        format!(
                            "SOA record at {}: only the zone apex may hold one",
                            node_text(key)
                        ),
                    ));
                }
                if sets[k].count != 1 {
                    return Err(self.err(
                        base + k,
                        "the zone apex holds more than one SOA record".into(),
                    ));
                }
            }
            if let Some(k) = has(Rtype::CNAME) {
                if sets.len() > 1 {
                    return Err(self.err(
                        base + k,
                        format!(
                            "{} has a CNAME and other data (RFC 2181 §10.1)",
                            node_text(key)
                        ),
                    ));
                }
                if is_apex {
                    return Err(self.err(base + k, "CNAME at the zone apex".into()));
                }
            }
            if is_apex {
                flags[node] |= APEX;
                if let Some(k) = has(Rtype::DS) {
                    return Err(self.err(
                        base + k,
                        "DS at the zone apex: it belongs in the parent zone".into(),
                    ));
                }
                continue;
            }
            if has(Rtype::NS).is_some() {
                flags[node] |= DELEGATION;
                stats.delegations += 1;
                if has(Rtype::DS).is_some() {
                    flags[node] |= SECURE;
                    stats.secure_delegations += 1;
                }
            } else if let Some(k) = has(Rtype::DS) {
                return Err(self.err(
                    base + k,
                    format!(
                        "DS record at {}, which is not a delegation point (no NS)",
                        node_text(key)
                    ),
                ));
            }
        }
        // Wildcards: the parent of `*.X` is flagged (the apex's flag is set by the zone).
        for node in 0..n_nodes {
            let key = sh.node_key(node as u32);
            if key.len() >= 2
                && key.ends_with(b"*\0")
                && (key.len() == 2 || key[key.len() - 3] == 0)
            {
                let parent = &key[..key.len() - 2];
                if let Some(p) = sh.find(parent) {
                    flags[p as usize] |= HAS_WILDCARD;
                }
            }
        }
        // Names below a delegation point hold glue only. Nodes are in canonical
        // order, so every ancestor in this shard comes before its descendants.
        let mut cut_of: Vec<u32> = vec![u32::MAX; n_nodes];
        for node in 0..n_nodes {
            let key = sh.node_key(node as u32);
            let labels = label_count_of_key(key);
            if labels <= self.origin_labels + 1 {
                continue;
            }
            // Nearest ancestor in the shard: strip the last label.
            let parent_len = key[..key.len() - 1]
                .iter()
                .rposition(|&b| b == 0)
                .map(|p| p + 1)
                .unwrap_or(0);
            let Some(parent) = sh.find(&key[..parent_len]) else {
                continue;
            };
            let p = parent as usize;
            let cut = if flags[p] & DELEGATION != 0 {
                parent
            } else {
                cut_of[p]
            };
            if cut == u32::MAX {
                continue;
            }
            cut_of[node] = cut;
            flags[node] |= BELOW_CUT;
            let nd = sh.nodes[node];
            let base = nd.rrset_start as usize;
            let sets = &sh.rrsets[base..base + nd.rrset_count as usize];
            if let Some(k) = sets
                .iter()
                .position(|s| s.rtype != Rtype::A && s.rtype != Rtype::AAAA)
            {
                return Err(self.err(
                    base + k,
                    format!(
                        "{} {} is below the delegation point {}: only glue (A/AAAA) may be there",
                        node_text(key),
                        rtype_name(sets[k].rtype),
                        node_text(sh.node_key(cut))
                    ),
                ));
            }
            if !sets.is_empty() {
                stats.glue_rrsets += sets.len();
            }
        }
        // Below-cut nodes are found from their parents; a delegation below another
        // one is below that cut too (its NS are then glue-area data: an error above).
        let mut max_ttl = 0;
        for (node, f) in flags.into_iter().enumerate() {
            let sh = &mut self.shard;
            sh.nodes[node].flags = f;
            let nd = sh.nodes[node];
            let base = nd.rrset_start as usize;
            for s in &sh.rrsets[base..base + nd.rrset_count as usize] {
                if crate::dnssec::sigs::signable(f, s.rtype) {
                    max_ttl = max_ttl.max(s.ttl);
                }
            }
        }
        self.shard.max_signed_ttl = max_ttl;
        stats.names = n_nodes;
        self.shard.stats = stats;
        Ok(())
    }

    /// NS target names (wire) of every delegation (and the apex) in this shard that
    /// lie in the zone but in another shard: `(host key)`.
    pub fn remote_targets(&self, origin: &[u8], mut f: impl FnMut(&[u8])) {
        let sh = &self.shard;
        let mut key = Key::new();
        for node in 0..sh.nodes.len() as u32 {
            if sh.nodes[node as usize].flags & (DELEGATION | APEX) == 0 {
                continue;
            }
            let Some(ns) = sh.rrset_index(node, Rtype::NS) else {
                continue;
            };
            let ns = sh.rrsets[ns as usize];
            for target in sh.rdatas(&ns) {
                if !name::is_at_or_below(target, origin) {
                    continue;
                }
                key.set(target);
                if !self.is_local(&key) {
                    f(key.as_bytes());
                }
            }
        }
    }

    /// Whether a name (key) belongs to this shard.
    fn is_local(&self, key: &Key) -> bool {
        match self.shard_no {
            None => key.labels() == self.origin_labels,
            Some(s) => {
                key.labels() > self.origin_labels
                    && shard_of(key.prefix(self.origin_labels + 1)) == s
            }
        }
    }

    /// Phase two: resolve the glue of every delegation (and the apex), check what
    /// delegation points and cuts hold, and return the finished shard with warnings.
    ///
    /// `ctx` answers what only the rest of the zone knows.
    pub fn finish(
        mut self,
        origin: &[u8],
        ctx: &dyn ZoneContext,
        warnings: &mut Vec<(Option<Src>, String)>,
    ) -> Result<Shard, ShardError> {
        let n_nodes = self.shard.nodes.len();
        let mut referenced = vec![false; n_nodes];
        let mut glue: Vec<Glue> = Vec::new();
        let mut key = Key::new();
        let mut spans = vec![(0u32, 0u16); n_nodes];
        for node in 0..n_nodes as u32 {
            let sh = &self.shard;
            let nd = sh.nodes[node as usize];
            if nd.flags & (DELEGATION | APEX) == 0 {
                continue;
            }
            let Some(ns_k) = sh.rrset_index(node, Rtype::NS) else {
                continue;
            };
            let ns = sh.rrsets[ns_k as usize];
            let node_wire = super::key_to_wire(sh.node_key(node));
            let glue_start = glue.len();
            for (j, target) in sh.rdatas(&ns).enumerate() {
                if !name::is_at_or_below(target, origin) {
                    continue;
                }
                let in_domain =
                    nd.flags & DELEGATION != 0 && name::is_at_or_below(target, &node_wire);
                key.set(target);
                if !self.is_local(&key) {
                    glue.push(Glue {
                        ns_index: j as u16,
                        required: false,
                        at: GlueAt::Remote,
                    });
                    continue;
                }
                let found = sh.find(key.as_bytes());
                let mut any = false;
                if let Some(t) = found {
                    let tn = sh.nodes[t as usize];
                    for k in tn.rrset_start..tn.rrset_start + tn.rrset_count as u32 {
                        let s = sh.rrsets[k as usize];
                        if s.rtype == Rtype::A || s.rtype == Rtype::AAAA {
                            any = true;
                            glue.push(
                                LocalGlue {
                                    ns_index: j as u16,
                                    required: in_domain,
                                    rrset: k,
                                }
                                .into(),
                            );
                        }
                    }
                    if any {
                        referenced[t as usize] = true;
                    }
                }
                if !any && in_domain {
                    return Err(self.err(
                        ns_k as usize,
                        format!(
                            "NS target {} of {} is below the delegation but has no address records (glue)",
                            name::to_text(target),
                            name::to_text(&node_wire)
                        ),
                    ));
                }
            }
            spans[node as usize] = (glue_start as u32, (glue.len() - glue_start) as u16);
        }
        for (node, (s, c)) in spans.into_iter().enumerate() {
            self.shard.nodes[node].glue_start = s;
            self.shard.nodes[node].glue_count = c;
        }
        // Address records at a delegation point are only allowed as glue.
        let sh = &self.shard;
        for node in 0..n_nodes as u32 {
            let nd = sh.nodes[node as usize];
            let base = nd.rrset_start as usize;
            let sets = &sh.rrsets[base..base + nd.rrset_count as usize];
            let is_referenced =
                || referenced[node as usize] || ctx.referenced_elsewhere(sh.node_key(node));
            if nd.flags & DELEGATION != 0 {
                if let Some(k) = sets.iter().position(|s| {
                    s.rtype != Rtype::NS
                        && s.rtype != Rtype::DS
                        && !((s.rtype == Rtype::A || s.rtype == Rtype::AAAA) && is_referenced())
                }) {
                    return Err(self.err(
                        base + k,
                        format!(
                            "{} is a delegation point: only NS and DS records may be there, found {}",
                            node_text(sh.node_key(node)),
                            rtype_name(sets[k].rtype)
                        ),
                    ));
                }
            }
            if nd.flags & BELOW_CUT != 0 && !sets.is_empty() && !is_referenced() {
                warnings.push((
                    self.first_src.get(base).copied(),
                    format!(
                        "glue {} is not used by any NS record; it is never served",
                        node_text(sh.node_key(node))
                    ),
                ));
            }
        }
        glue.shrink_to_fit();
        self.shard.glue = glue;
        self.shard.keys.shrink_to_fit();
        self.shard.nodes.shrink_to_fit();
        Ok(self.shard)
    }
}

/// A local glue entry built from an RRset index.
struct LocalGlue {
    ns_index: u16,
    required: bool,
    rrset: u32,
}

impl From<LocalGlue> for Glue {
    fn from(g: LocalGlue) -> Glue {
        Glue {
            ns_index: g.ns_index,
            required: g.required,
            at: GlueAt::Local(g.rrset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_table_finds_every_key_and_nothing_else() {
        for n in [0usize, 1, 2, 7, 8, 100, 5000] {
            let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("be\0d{i}\0").into_bytes()).collect();
            let t = NameTable::build(n, |i| &keys[i as usize]);
            // Never fuller than 70 %, so every miss ends at an empty slot.
            assert!(
                n == 0 || t.slots.len() * 7 >= n * 10,
                "{n}: {}",
                t.slots.len()
            );
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(t.find(k, |j| keys[j as usize] == *k), Some(i as u32));
            }
            for i in n..n + 2000 {
                let k = format!("be\0d{i}\0").into_bytes();
                assert_eq!(t.find(&k, |j| keys[j as usize] == k), None);
            }
            // A test that refuses every node finds nothing, even where the tags agree.
            if let Some(k) = keys.first() {
                assert_eq!(t.find(k, |_| false), None);
            }
        }
    }

    /// A builder for `be.`, a file name for its records, and an SOA RDATA.
    fn be_builder() -> (crate::zone::ZoneBuilder, &'static std::path::Path, Vec<u8>) {
        let n = |t: &str| name::from_text(t, &[0]).unwrap();
        let mut soa = n("a.nsset.be.");
        soa.extend_from_slice(&n("tech.dns.be."));
        soa.extend_from_slice(&[0; 20]);
        let b = crate::zone::ZoneBuilder::new(&n("be."));
        (b, std::path::Path::new("t.zone"), soa)
    }

    #[test]
    fn names_in_any_order_become_one_node_each_with_their_ancestors() {
        let n = |t: &str| name::from_text(t, &[0]).unwrap();
        let (mut b, f, soa) = be_builder();
        for (owner, t, rdata) in [
            ("be.", Rtype::SOA, soa),
            ("be.", Rtype::NS, n("a.nsset.be.")),
            ("a.b.c.deep.be.", Rtype::TXT, b"\x01a".to_vec()),
            ("dup.be.", Rtype::NS, n("ns1.example.")),
            ("zz.be.", Rtype::TXT, b"\x01z".to_vec()),
            ("DUP.be.", Rtype::NS, n("ns2.example.")),
            ("c.deep.be.", Rtype::TXT, b"\x01c".to_vec()),
            ("dup.be.", Rtype::NS, n("ns1.example.")),
            ("x.b.c.deep.be.", Rtype::TXT, b"\x01x".to_vec()),
        ] {
            b.add(&n(owner), 1, t.0, 60, &rdata, f, 1).unwrap();
        }
        let zone = b.finish().unwrap();
        let ns = zone.find_name(&n("dup.be.")).unwrap();
        let got: Vec<&[u8]> = ns.rrset(Rtype::NS).unwrap().rdatas().collect();
        assert_eq!(got, vec![&n("ns1.example.")[..], &n("ns2.example.")[..]]);
        assert_eq!(ns.rrsets().count(), 1);
        for (name, txt) in [
            ("deep.be.", None),
            ("c.deep.be.", Some(&b"\x01c"[..])),
            ("b.c.deep.be.", None),
            ("a.b.c.deep.be.", Some(b"\x01a")),
            ("x.b.c.deep.be.", Some(b"\x01x")),
        ] {
            let node = zone.find_name(&n(name)).unwrap_or_else(|| panic!("{name}"));
            let t = node.rrset(Rtype::TXT).map(|s| s.rr(0));
            assert_eq!(t, txt, "{name}");
            assert_eq!(node.is_empty(), txt.is_none(), "{name}");
        }
        // Every name once, in canonical order within its shard.
        let mut names = 0;
        for sh in zone.shards() {
            let keys: Vec<&[u8]> = (0..sh.data.node_count() as u32)
                .map(|i| sh.data.node_key(i))
                .collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
            names += keys.len();
        }
        assert_eq!(names, 7);
    }

    #[test]
    fn a_shard_knows_the_largest_ttl_its_signer_signs() {
        let n = |t: &str| name::from_text(t, &[0]).unwrap();
        let (mut b, f, soa) = be_builder();
        let mut ds = vec![0x30, 0x39, 13, 2];
        ds.extend_from_slice(&[0xAB; 32]);
        for (owner, t, ttl, rdata) in [
            ("be.", Rtype::SOA, 3600, soa),
            ("be.", Rtype::NS, 3600, n("a.nsset.be.")),
            ("a.nsset.be.", Rtype::A, 3600, vec![192, 0, 2, 1]),
            // Not signed: the NS of a delegation and its glue.
            ("glued.be.", Rtype::NS, 172_800, n("ns1.glued.be.")),
            ("ns1.glued.be.", Rtype::A, 200_000, vec![198, 51, 100, 1]),
            // Signed: the DS of a delegation, other data.
            ("glued.be.", Rtype::DS, 7200, ds),
            ("txt.be.", Rtype::TXT, 5000, b"\x02hi".to_vec()),
        ] {
            b.add(&n(owner), 1, t.0, ttl, &rdata, f, 1).unwrap();
        }
        let zone = b.finish().unwrap();
        let shards = || std::iter::once(zone.apex_shard()).chain(zone.shards().iter());
        let max = shards().map(|s| s.data.max_signed_ttl()).max();
        assert_eq!(max, Some(7200));
        // The same as a walk over every RRset finds.
        let mut walked = 0;
        for zs in shards() {
            let sh = &*zs.data;
            for (node, set) in sh.node_rrsets() {
                let s = sh.rrset(set);
                if crate::dnssec::sigs::signable(sh.node(node).flags, s.rtype) {
                    walked = walked.max(s.ttl);
                }
            }
        }
        assert_eq!(walked, 7200);
        assert_eq!(Shard::empty().max_signed_ttl(), 0);
    }
}
