//! Building a [`Zone`] from parsed records, with the semantic checks of a zone checker.
//!
//! Records arrive one at a time (from [`super::master`] or from tests); names
//! become nodes keyed by their canonical key, RDATA goes into one arena.
//! [`ZoneBuilder::finish`] groups records into RRsets (one counting sort, O(n)),
//! checks the zone as a whole (RFC 1034 §4.2.1 cuts and glue, RFC 2181 §10.1
//! CNAME exclusivity, one SOA at the apex, apex NS, DS only at delegations) and
//! resolves each delegation's glue, so nothing is computed per query.
//!
//! Every error names the file and line of the record at fault.

use super::{
    Glue, Node, RRset, Zone, ZoneStats, APEX, BELOW_CUT, DELEGATION, HAS_WILDCARD, SECURE,
};
use crate::name::{self, Key};
use crate::wire::Rtype;
use hashbrown::HashTable;
use std::fmt;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A zone that could not be loaded, with the place of the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// File in which the problem is.
    pub file: PathBuf,
    /// 1-based line (0 when the problem is with the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

impl std::error::Error for LoadError {}

#[derive(Clone, Copy)]
struct TmpRec {
    node: u32,
    rtype: u16,
    file: u16,
    ttl: u32,
    rdata_off: u32,
    line: u32,
}

/// Collects records and turns them into a [`Zone`].
pub struct ZoneBuilder {
    origin: Vec<u8>,
    origin_labels: usize,
    files: Vec<Arc<Path>>,
    nodes: Vec<Node>,
    keys: Vec<u8>,
    table: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    recs: Vec<TmpRec>,
    rdata: Vec<u8>,
    last_owner: Vec<u8>,
    last_node: u32,
    key: Box<Key>,
    ttl_mismatches: usize,
}

fn rtype_name(t: u16) -> String {
    super::master::rtype_to_string(t)
}

impl ZoneBuilder {
    /// Start a zone with the given origin (absolute wire name, any case).
    pub fn new(origin: &[u8]) -> Self {
        let origin = name::to_lowercase(origin);
        let mut b = ZoneBuilder {
            origin_labels: name::label_count(&origin),
            origin,
            files: Vec::new(),
            nodes: Vec::new(),
            keys: Vec::new(),
            table: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            recs: Vec::new(),
            rdata: Vec::new(),
            last_owner: Vec::new(),
            last_node: u32::MAX,
            key: Box::new(Key::new()),
            ttl_mismatches: 0,
        };
        let origin = b.origin.clone();
        b.key.set(&origin);
        let k = b.key.as_bytes().to_vec();
        b.insert_node(&k, APEX);
        b
    }

    /// Reserve room for about `records` records (from the file size, say).
    pub fn reserve(&mut self, records: usize) {
        self.recs.reserve(records);
        self.rdata.reserve(records * 24);
        self.nodes.reserve(records / 2);
        let (nodes, keys, hasher) = (&self.nodes, &self.keys, &self.hasher);
        self.table.reserve(records / 2, |&i| {
            let n = &nodes[i as usize];
            hasher.hash_one(&keys[n.key_off as usize..n.key_off as usize + n.key_len as usize])
        });
    }

    fn insert_node(&mut self, key: &[u8], flags: u16) -> u32 {
        let idx = self.nodes.len() as u32;
        self.nodes.push(Node {
            key_off: self.keys.len() as u32,
            key_len: key.len() as u16,
            flags,
            rrset_start: 0,
            rrset_count: 0,
            glue_count: 0,
            glue_start: 0,
        });
        self.keys.extend_from_slice(key);
        let h = self.hasher.hash_one(key);
        let (nodes, keys, hasher) = (&self.nodes, &self.keys, &self.hasher);
        self.table.insert_unique(h, idx, |&i| {
            let n = &nodes[i as usize];
            hasher.hash_one(&keys[n.key_off as usize..n.key_off as usize + n.key_len as usize])
        });
        idx
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        super::find_in(&self.table, &self.hasher, &self.nodes, &self.keys, key)
    }

    fn node_for(&mut self, owner: &[u8]) -> Result<u32, String> {
        if self.last_node != u32::MAX && owner == self.last_owner.as_slice() {
            return Ok(self.last_node);
        }
        if !name::is_at_or_below(owner, &self.origin) {
            return Err(format!(
                "{} is outside the zone {}",
                name::to_text(owner),
                name::to_text(&self.origin)
            ));
        }
        let mut key = std::mem::take(&mut self.key);
        key.set(owner);
        let found = self.find(key.as_bytes());
        let idx = match found {
            Some(i) => i,
            None => {
                let total = key.labels();
                // Make sure every ancestor exists (empty non-terminals), top down.
                for labels in self.origin_labels + 1..total {
                    let p = key.prefix(labels);
                    if self.find(p).is_none() {
                        let p = p.to_vec();
                        self.insert_node(&p, 0);
                    }
                }
                let full = key.as_bytes().to_vec();
                let idx = self.insert_node(&full, 0);
                if owner.len() > 2 && owner[0] == 1 && owner[1] == b'*' {
                    if let Some(parent) = self.find(key.prefix(total - 1)) {
                        self.nodes[parent as usize].flags |= HAS_WILDCARD;
                    }
                }
                idx
            }
        };
        self.key = key;
        self.last_owner.clear();
        self.last_owner.extend_from_slice(owner);
        self.last_node = idx;
        Ok(idx)
    }

    /// Add one record. An error is about this record; the caller adds the place.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        owner: &[u8],
        class: u16,
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
        file: &Path,
        line: usize,
    ) -> Result<(), String> {
        if class != 1 {
            return Err(format!("class {class} is not served: only IN"));
        }
        match Rtype(rtype) {
            Rtype::RRSIG | Rtype::NSEC | Rtype::NSEC3 => {
                return Err(format!(
                    "{} records are not accepted in the input zone: belfry signs the zone itself",
                    rtype_name(rtype)
                ))
            }
            t if t.is_meta() => {
                return Err(format!(
                    "{} is not a record type for zone data",
                    rtype_name(rtype)
                ))
            }
            _ => {}
        }
        if rdata.len() > 65535 {
            return Err("RDATA longer than 65535 bytes".into());
        }
        let node = self.node_for(owner)?;
        let file_idx = match self.files.last() {
            Some(f) if &**f == file => self.files.len() - 1,
            _ => match self.files.iter().position(|f| &**f == file) {
                Some(i) => i,
                None => {
                    self.files.push(Arc::from(file));
                    self.files.len() - 1
                }
            },
        };
        let off = self.rdata.len();
        if off + rdata.len() + 2 > u32::MAX as usize {
            return Err("zone too large (RDATA arena over 4 GiB)".into());
        }
        self.rdata
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.rdata.extend_from_slice(rdata);
        self.recs.push(TmpRec {
            node,
            rtype,
            file: file_idx as u16,
            ttl,
            rdata_off: off as u32,
            line: line as u32,
        });
        Ok(())
    }

    fn err(&self, r: &TmpRec, message: String) -> LoadError {
        LoadError {
            file: self.files[r.file as usize].to_path_buf(),
            line: r.line as usize,
            message,
        }
    }

    fn rdata_of(&self, off: u32) -> &[u8] {
        let off = off as usize;
        let len = u16::from_be_bytes([self.rdata[off], self.rdata[off + 1]]) as usize;
        &self.rdata[off + 2..off + 2 + len]
    }

    fn node_text(&self, i: u32) -> String {
        let n = &self.nodes[i as usize];
        name::to_text(&super::key_to_wire(
            &self.keys[n.key_off as usize..n.key_off as usize + n.key_len as usize],
        ))
    }

    /// Group, check and index everything added so far.
    pub fn finish(mut self) -> Result<Zone, LoadError> {
        let zone_file = self
            .files
            .first()
            .map(|f| f.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("<zone>"));
        if self.recs.is_empty() {
            return Err(LoadError {
                file: zone_file,
                line: 0,
                message: "the zone holds no records".into(),
            });
        }
        // Counting sort of records by node, keeping file order within a node.
        let n_nodes = self.nodes.len();
        let mut start = vec![0u32; n_nodes + 1];
        for r in &self.recs {
            start[r.node as usize + 1] += 1;
        }
        for i in 0..n_nodes {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut order = vec![0u32; self.recs.len()];
        for (i, r) in self.recs.iter().enumerate() {
            let slot = &mut fill[r.node as usize];
            order[*slot as usize] = i as u32;
            *slot += 1;
        }
        drop(fill);

        let mut rrsets: Vec<RRset> = Vec::with_capacity(n_nodes + n_nodes / 2);
        let mut rrs: Vec<u32> = Vec::with_capacity(self.recs.len());
        // First record of each RRset (for error lines), parallel to `rrsets`.
        let mut first_rec: Vec<u32> = Vec::with_capacity(n_nodes + n_nodes / 2);
        let mut stats = ZoneStats::default();
        let mut group: Vec<u32> = Vec::new();
        for node in 0..n_nodes {
            let (s, e) = (start[node] as usize, start[node + 1] as usize);
            group.clear();
            group.extend_from_slice(&order[s..e]);
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
                    let dup = rrs[set_first_rr..]
                        .iter()
                        .any(|&o| self.rdata_of(o) == data);
                    if !dup {
                        rrs.push(r.rdata_off);
                    }
                    j += 1;
                }
                let count = rrs.len() - set_first_rr;
                if count > u16::MAX as usize {
                    return Err(self.err(&first, "RRset with more than 65535 records".into()));
                }
                rrsets.push(RRset {
                    rtype: Rtype(first.rtype),
                    count: count as u16,
                    ttl: first.ttl,
                    first_rr: set_first_rr as u32,
                });
                first_rec.push(group[i]);
                i = j;
            }
            let n = &mut self.nodes[node];
            n.rrset_start = rr_start as u32;
            n.rrset_count = (rrsets.len() - rr_start) as u16;
            stats.records += e - s;
        }
        drop(order);
        drop(start);

        // Node-level checks and flags.
        let apex = 0u32;
        let mut soa = None;
        for node in 0..n_nodes as u32 {
            let nd = self.nodes[node as usize];
            let sets =
                &rrsets[nd.rrset_start as usize..nd.rrset_start as usize + nd.rrset_count as usize];
            let rec_of = |k: usize| self.recs[first_rec[nd.rrset_start as usize + k] as usize];
            let has = |t: Rtype| sets.iter().position(|s| s.rtype == t);
            if sets.is_empty() {
                stats.empty_non_terminals += 1;
            }
            if let Some(k) = has(Rtype::SOA) {
                if node != apex {
                    return Err(self.err(
                        &rec_of(k),
                        format!(
                            "SOA record at {}: only the zone apex may hold one",
                            self.node_text(node)
                        ),
                    ));
                }
                if sets[k].count != 1 {
                    return Err(self.err(
                        &rec_of(k),
                        "the zone apex holds more than one SOA record".into(),
                    ));
                }
                soa = Some((nd.rrset_start as usize + k) as u32);
            }
            if let Some(k) = has(Rtype::CNAME) {
                if sets.len() > 1 {
                    return Err(self.err(
                        &rec_of(k),
                        format!(
                            "{} has a CNAME and other data (RFC 2181 §10.1)",
                            self.node_text(node)
                        ),
                    ));
                }
                if node == apex {
                    return Err(self.err(&rec_of(k), "CNAME at the zone apex".into()));
                }
            }
            if node == apex {
                if let Some(k) = has(Rtype::DS) {
                    return Err(self.err(
                        &rec_of(k),
                        "DS at the zone apex: it belongs in the parent zone".into(),
                    ));
                }
                continue;
            }
            if has(Rtype::NS).is_some() {
                self.nodes[node as usize].flags |= DELEGATION;
                stats.delegations += 1;
                if has(Rtype::DS).is_some() {
                    self.nodes[node as usize].flags |= SECURE;
                    stats.secure_delegations += 1;
                }
            } else if let Some(k) = has(Rtype::DS) {
                return Err(self.err(
                    &rec_of(k),
                    format!(
                        "DS record at {}, which is not a delegation point (no NS)",
                        self.node_text(node)
                    ),
                ));
            }
        }
        let Some(soa) = soa else {
            return Err(LoadError {
                file: zone_file,
                line: 0,
                message: format!(
                    "no SOA record at the zone apex {}",
                    name::to_text(&self.origin)
                ),
            });
        };
        let apex_node = self.nodes[apex as usize];
        if !rrsets[apex_node.rrset_start as usize..][..apex_node.rrset_count as usize]
            .iter()
            .any(|s| s.rtype == Rtype::NS)
        {
            return Err(self.err(
                &self.recs[first_rec[soa as usize] as usize],
                "the zone apex has no NS records".into(),
            ));
        }

        // Names below a delegation point hold glue only.
        let mut referenced = vec![false; 0];
        for node in 0..n_nodes as u32 {
            let nd = self.nodes[node as usize];
            let key = &self.keys[nd.key_off as usize..][..nd.key_len as usize];
            let labels = key.iter().filter(|&&b| b == 0).count();
            if labels <= self.origin_labels + 1 {
                continue;
            }
            let mut cut = None;
            let mut ends = key
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == 0)
                .map(|(i, _)| i + 1);
            for l in 1..labels {
                let Some(end) = ends.next() else { break };
                if l <= self.origin_labels {
                    continue;
                }
                if let Some(a) = self.find(&key[..end]) {
                    if self.nodes[a as usize].flags & DELEGATION != 0 {
                        cut = Some(a);
                        break;
                    }
                }
            }
            if let Some(cut) = cut {
                self.nodes[node as usize].flags |= BELOW_CUT;
                let sets = &rrsets[nd.rrset_start as usize..][..nd.rrset_count as usize];
                if let Some(k) = sets
                    .iter()
                    .position(|s| s.rtype != Rtype::A && s.rtype != Rtype::AAAA)
                {
                    let r = self.recs[first_rec[nd.rrset_start as usize + k] as usize];
                    return Err(self.err(
                        &r,
                        format!(
                            "{} {} is below the delegation point {}: only glue (A/AAAA) may be there",
                            self.node_text(node),
                            rtype_name(sets[k].rtype.0),
                            self.node_text(cut)
                        ),
                    ));
                }
                if !sets.is_empty() {
                    stats.glue_rrsets += sets.len();
                }
            }
        }

        // Resolve glue for every delegation and the apex.
        if referenced.is_empty() {
            referenced = vec![false; n_nodes];
        }
        let mut glue: Vec<Glue> = Vec::new();
        let mut key = Key::new();
        for node in 0..n_nodes as u32 {
            let nd = self.nodes[node as usize];
            if nd.flags & (DELEGATION | APEX) == 0 {
                continue;
            }
            let sets = &rrsets[nd.rrset_start as usize..][..nd.rrset_count as usize];
            let Some(ns_k) = sets.iter().position(|s| s.rtype == Rtype::NS) else {
                continue;
            };
            let ns = sets[ns_k];
            let mut wire_buf = [0u8; 256];
            let wire_len = super::key_to_wire_buf(
                &self.keys[nd.key_off as usize..][..nd.key_len as usize],
                &mut wire_buf,
            );
            let node_wire = &wire_buf[..wire_len];
            let glue_start = glue.len();
            for j in 0..ns.count as usize {
                let target = self.rdata_of(rrs[ns.first_rr as usize + j]);
                if !name::is_at_or_below(target, &self.origin) {
                    continue;
                }
                let in_domain =
                    nd.flags & DELEGATION != 0 && name::is_at_or_below(target, node_wire);
                key.set(target);
                let found = self.find(key.as_bytes());
                let addr_sets: Vec<(usize, RRset)> = match found {
                    Some(t) => {
                        let tn = self.nodes[t as usize];
                        rrsets[tn.rrset_start as usize..][..tn.rrset_count as usize]
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.rtype == Rtype::A || s.rtype == Rtype::AAAA)
                            .map(|(k, s)| (tn.rrset_start as usize + k, *s))
                            .collect()
                    }
                    None => Vec::new(),
                };
                if addr_sets.is_empty() {
                    if in_domain {
                        let r = self.recs[first_rec[nd.rrset_start as usize + ns_k] as usize];
                        return Err(self.err(
                            &r,
                            format!(
                                "NS target {} of {} is below the delegation but has no address records (glue)",
                                name::to_text(target),
                                self.node_text(node)
                            ),
                        ));
                    }
                    continue;
                }
                if let Some(t) = found {
                    referenced[t as usize] = true;
                }
                for (idx, _) in addr_sets {
                    glue.push(Glue {
                        ns_index: j as u16,
                        required: in_domain,
                        rrset: idx as u32,
                    });
                }
            }
            let n = &mut self.nodes[node as usize];
            n.glue_start = glue_start as u32;
            n.glue_count = (glue.len() - glue_start) as u16;
        }

        // Address records at a delegation point are only allowed as its own glue.
        let mut warnings = Vec::new();
        for node in 0..n_nodes as u32 {
            let nd = self.nodes[node as usize];
            let sets = &rrsets[nd.rrset_start as usize..][..nd.rrset_count as usize];
            if nd.flags & DELEGATION != 0 {
                if let Some(k) = sets.iter().position(|s| {
                    s.rtype != Rtype::NS
                        && s.rtype != Rtype::DS
                        && !((s.rtype == Rtype::A || s.rtype == Rtype::AAAA)
                            && referenced[node as usize])
                }) {
                    let r = self.recs[first_rec[nd.rrset_start as usize + k] as usize];
                    return Err(self.err(
                        &r,
                        format!(
                            "{} is a delegation point: only NS and DS records may be there, found {}",
                            self.node_text(node),
                            rtype_name(sets[k].rtype.0)
                        ),
                    ));
                }
            }
            if nd.flags & BELOW_CUT != 0
                && !sets.is_empty()
                && !referenced[node as usize]
                && warnings.len() < 100
            {
                {
                    let r = self.recs[first_rec[nd.rrset_start as usize] as usize];
                    warnings.push(format!(
                        "{}:{}: glue {} is not used by any NS record; it is never served",
                        self.files[r.file as usize].display(),
                        r.line,
                        self.node_text(node)
                    ));
                }
            }
        }
        if self.ttl_mismatches > 0 {
            warnings.push(format!(
                "{} records had a TTL different from the rest of their RRset; the first TTL is used (RFC 2181 §5.2)",
                self.ttl_mismatches
            ));
        }
        stats.names = n_nodes;
        drop(first_rec);
        let mut recs = std::mem::take(&mut self.recs);
        recs.clear();
        recs.shrink_to_fit();
        let rdata = compact(&self.rdata, &rrs, &mut rrsets);
        drop(rrs);
        self.rdata = Vec::new();
        rrsets.shrink_to_fit();
        glue.shrink_to_fit();
        self.keys.shrink_to_fit();
        self.nodes.shrink_to_fit();
        Ok(Zone {
            origin_labels: self.origin_labels,
            origin: self.origin,
            nodes: self.nodes,
            keys: self.keys,
            table: self.table,
            hasher: self.hasher,
            rrsets,
            rdata,
            glue,
            apex,
            soa,
            stats,
            warnings,
        })
    }
}

/// Lay the RDATA out RRset by RRset (each RRset's records adjacent, so an answer
/// reads one run of memory) and store identical NS/A/AAAA RRsets once: in a TLD
/// many delegations share their hosting provider's name-server set.
fn compact(old: &[u8], rrs: &[u32], rrsets: &mut [RRset]) -> Vec<u8> {
    let mut arena: Vec<u8> = Vec::with_capacity(old.len() / 2);
    let hasher = hashbrown::DefaultHashBuilder::default();
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

/// Records parsed but not yet indexed, packed in one buffer, all from one file.
struct Batch {
    file: Arc<Path>,
    data: Vec<u8>,
}

const BATCH_BYTES: usize = 1 << 20;

fn push_record(batch: &mut Vec<u8>, r: &super::master::RawRecord<'_>) {
    batch.push(r.owner.len() as u8);
    batch.extend_from_slice(r.owner);
    batch.extend_from_slice(&r.rtype.to_be_bytes());
    batch.extend_from_slice(&r.class.to_be_bytes());
    batch.extend_from_slice(&r.ttl.to_be_bytes());
    batch.extend_from_slice(&(r.line as u32).to_be_bytes());
    batch.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
    batch.extend_from_slice(r.rdata);
}

/// Load and check a zone from a master file.
///
/// Parsing and indexing run on two threads connected by a bounded channel of
/// record batches, so loading takes about as long as the slower of the two.
pub fn load_file(path: &Path, origin: &[u8]) -> Result<Zone, LoadError> {
    let mut b = ZoneBuilder::new(origin);
    if let Ok(meta) = std::fs::metadata(path) {
        // About 55 bytes of text per record in a TLD zone.
        b.reserve((meta.len() / 55) as usize);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let parse_result = std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            let mut cur: Option<Batch> = None;
            let res = super::master::parse_file(path, origin, |r| {
                let same_file = cur.as_ref().is_some_and(|c| &*c.file == r.file);
                if !same_file || cur.as_ref().is_some_and(|c| c.data.len() > BATCH_BYTES) {
                    if let Some(full) = cur.take() {
                        tx.send(full).map_err(|_| "indexing stopped".to_string())?;
                    }
                    let mut data = recycle_rx.try_recv().unwrap_or_default();
                    data.clear();
                    data.reserve(BATCH_BYTES + 1024);
                    cur = Some(Batch {
                        file: Arc::from(r.file),
                        data,
                    });
                }
                if let Some(c) = cur.as_mut() {
                    push_record(&mut c.data, r);
                }
                Ok(())
            });
            if let Some(last) = cur.take() {
                let _ = tx.send(last);
            }
            res
        });
        let mut add_err: Option<LoadError> = None;
        for batch in rx.iter() {
            if add_err.is_some() {
                continue;
            }
            let d = &batch.data;
            let mut p = 0usize;
            while p < d.len() {
                let ol = d[p] as usize;
                let owner = &d[p + 1..p + 1 + ol];
                p += 1 + ol;
                let rtype = u16::from_be_bytes([d[p], d[p + 1]]);
                let class = u16::from_be_bytes([d[p + 2], d[p + 3]]);
                let ttl = u32::from_be_bytes([d[p + 4], d[p + 5], d[p + 6], d[p + 7]]);
                let line = u32::from_be_bytes([d[p + 8], d[p + 9], d[p + 10], d[p + 11]]) as usize;
                let rl = u16::from_be_bytes([d[p + 12], d[p + 13]]) as usize;
                let rdata = &d[p + 14..p + 14 + rl];
                p += 14 + rl;
                if let Err(message) = b.add(owner, class, rtype, ttl, rdata, &batch.file, line) {
                    add_err = Some(LoadError {
                        file: batch.file.to_path_buf(),
                        line,
                        message,
                    });
                    break;
                }
            }
            let _ = recycle_tx.send(batch.data);
        }
        let parsed = parser.join();
        (parsed, add_err)
    });
    match parse_result {
        (_, Some(e)) => return Err(e),
        (Ok(Err(e)), None) => {
            return Err(LoadError {
                file: e.file,
                line: e.line,
                message: e.message,
            })
        }
        (Err(_), None) => {
            return Err(LoadError {
                file: path.to_path_buf(),
                line: 0,
                message: "the parser thread failed".into(),
            })
        }
        (Ok(Ok(_)), None) => {}
    }
    b.finish()
}
