//! Making the next zone version from new contents of a few shards.
//!
//! The publisher decides what each touched shard must hold (source data, its
//! edits, minus what suppressions withdraw); this module turns that into the
//! next version: the shards are built and checked like at load, signatures of
//! unchanged RRsets are carried over, changed ones are signed (and verified),
//! the NSEC3 chain is updated for names that appeared, disappeared or changed
//! their types, and the records whose NSEC3 RDATA changed are re-signed.
//! Nothing of the serving version is touched: the result is swapped in whole.

use crate::dnssec::chain::{member_of, ChainDelta, ChainPos};
use crate::dnssec::{ApexSigs, Dnssec, ShardSigs, SigSet, Slot};
use crate::name::Key;
use crate::wire::Rtype;
use crate::zone::shard::{ShardBuilder, ShardError, Src, ZoneContext};
use crate::zone::{NodeRef, Shard, ZShard, Zone, APEX_SHARD};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A shard: the apex shard (`None`) or one of [`crate::zone::SHARDS`].
pub type ShardId = Option<usize>;

/// One RRset as the control plane handles it: type, TTL, uncompressed RDATAs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecSet {
    /// Record type.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// The records' RDATA.
    pub rdatas: Vec<Vec<u8>>,
}

impl RecSet {
    /// Add a record to the RRset of its type in `sets` (made when missing): the
    /// record's TTL becomes the RRset's (RFC 2181 §5.2), an RDATA already there
    /// is not added twice.
    pub fn add_to(
        sets: &mut BTreeMap<u16, RecSet>,
        rtype: crate::wire::Rtype,
        ttl: u32,
        rdata: &[u8],
    ) {
        let s = sets.entry(rtype.0).or_insert_with(|| RecSet {
            rtype: rtype.0,
            ttl,
            rdatas: Vec::new(),
        });
        s.ttl = ttl;
        if !s
            .rdatas
            .iter()
            .any(|x| crate::wire::message::rdata_eq(rtype, x, rdata))
        {
            s.rdatas.push(rdata.to_vec());
        }
    }
}

/// What a shard holds: canonical key of each name → its RRsets, sorted by type.
pub type Content = BTreeMap<Vec<u8>, Vec<RecSet>>;

/// The contents of a shard (every name with RRsets; empty non-terminals are implied).
pub fn decode(sh: &Shard) -> Content {
    let mut out = Content::new();
    for node in 0..sh.node_count() as u32 {
        if !sh.rrsets(node).is_empty() {
            out.insert(sh.node_key(node).to_vec(), node_sets(sh, node));
        }
    }
    out
}

/// The RRsets of one name of a shard, decoded.
pub fn node_sets(sh: &Shard, node: u32) -> Vec<RecSet> {
    sh.rrsets(node)
        .iter()
        .map(|s| RecSet {
            rtype: s.rtype.0,
            ttl: s.ttl,
            rdatas: sh.rdatas(s).map(|r| r.to_vec()).collect(),
        })
        .collect()
}

/// Index of a shard in a vector of every shard: 0 for the apex shard, `i + 1`
/// for shard `i`.
pub fn shard_slot(id: ShardId) -> usize {
    id.map_or(0, |i| i + 1)
}

/// One value per shard slot (see [`shard_slot`]), kept in chunks of 64 slots
/// shared between versions: a copy takes one reference per chunk (65) rather
/// than one per slot (4,097), and changing a slot copies its chunk only. The
/// publisher copies its per-shard indexes for every change, even one that
/// touches a single shard.
#[derive(Clone, Debug)]
pub struct PerShard<T> {
    chunks: Vec<Arc<Vec<T>>>,
}

const PER_SHARD_CHUNK: usize = 64;

impl<T: Clone + Default> Default for PerShard<T> {
    fn default() -> Self {
        let empty = Arc::new(vec![T::default(); PER_SHARD_CHUNK]);
        PerShard {
            chunks: vec![empty; (crate::zone::SHARDS + 1).div_ceil(PER_SHARD_CHUNK)],
        }
    }
}

impl<T: Clone + Default> PerShard<T> {
    /// The value of a slot.
    #[inline]
    pub fn get(&self, slot: usize) -> &T {
        &self.chunks[slot / PER_SHARD_CHUNK][slot % PER_SHARD_CHUNK]
    }

    /// The value of a slot, to change (its chunk is copied if shared).
    pub fn get_mut(&mut self, slot: usize) -> &mut T {
        &mut Arc::make_mut(&mut self.chunks[slot / PER_SHARD_CHUNK])[slot % PER_SHARD_CHUNK]
    }

    /// Every slot's value, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .take(crate::zone::SHARDS + 1)
    }
}

/// The shard a name (by key) belongs to.
///
/// Reads the key only up to the label below the origin (no copy): changes of
/// 100,000 names call this for every name.
pub fn shard_id(key: &[u8], origin_labels: usize) -> ShardId {
    let n = key.len().min(crate::name::MAX_KEY_LEN);
    let mut labels = 0;
    let mut i = 0;
    while i < n {
        match key[i] {
            0 if labels < crate::name::MAX_LABELS => {
                labels += 1;
                if labels == origin_labels + 1 {
                    return Some(crate::zone::shard_of(&key[..=i]));
                }
            }
            1 => i += 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// A change that cannot be made, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditError {
    /// The new contents break a rule of the zone (what and where).
    Check(String),
    /// A signature could not be made.
    Sign(String),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Check(m) => write!(f, "{m}"),
            EditError::Sign(m) => write!(f, "signing failed: {m}"),
        }
    }
}

/// Signatures to use instead of making new ones (from the journal, on replay).
#[derive(Default)]
pub struct Hints {
    /// Zone RRsets: (owner key, type) → signatures.
    pub rrsets: HashMap<(Vec<u8>, u16), Arc<SigSet>>,
    /// NSEC3 records: hash → signatures.
    pub nsec3: HashMap<[u8; 20], Arc<SigSet>>,
}

/// The next version, before it is published.
pub struct Next {
    /// The zone.
    pub zone: Zone,
    /// Its DNSSEC part, when signed.
    pub dnssec: Option<Dnssec>,
    /// The shards that changed.
    pub shards: Vec<ShardId>,
    /// NSEC3 records added or re-signed.
    pub chain_changed: Vec<ChainPos>,
    /// Signatures made for this version.
    pub signed: usize,
}

fn node_ref(sh: &ZShard, id: ShardId, idx: u32) -> NodeRef<'_> {
    NodeRef {
        sh,
        shard_no: id.map(|i| i as u32).unwrap_or(APEX_SHARD),
        idx,
    }
}

/// Build one shard from its contents.
pub fn build_shard(
    content: &Content,
    id: ShardId,
    origin: &[u8],
    origin_labels: usize,
    ctx: &dyn ZoneContext,
) -> Result<Shard, ShardError> {
    let mut b = ShardBuilder::new(origin_labels, id);
    let mut key = Key::new();
    if id.is_none() {
        // The apex exists even when it holds nothing yet (the check says what is missing).
        key.set(origin);
        b.name(&key);
    }
    let mut line = 0u32;
    for (k, sets) in content {
        key.set_key(k);
        for s in sets {
            for r in &s.rdatas {
                line += 1;
                b.add(&key, s.rtype, s.ttl, r, Src { file: 0, line });
            }
        }
    }
    let ix = b.index()?;
    let mut warnings = Vec::new();
    ix.finish(origin, ctx, &mut warnings)
}

fn err_text(e: ShardError) -> EditError {
    EditError::Check(e.message)
}

/// Whether two nodes give the same NSEC3 record (same flags and types).
fn same_member(o: NodeRef<'_>, n: NodeRef<'_>) -> bool {
    o.flags() == n.flags()
        && o.shard().rrsets(o.idx).len() == n.shard().rrsets(n.idx).len()
        && o.shard()
            .rrsets(o.idx)
            .iter()
            .zip(n.shard().rrsets(n.idx))
            .all(|(a, b)| a.rtype == b.rtype)
}

/// What the NSEC3 chain must change between two versions of a shard: walk both
/// (names are in canonical order) and hash only the names that appeared, went, or
/// changed their flags or types.
fn chain_delta(old: &ZShard, new: &ZShard, id: ShardId, d: &Dnssec) -> ChainDelta {
    let mut delta = ChainDelta::default();
    let params = &d.chain.params;
    let (on, nn) = (old.data.node_count() as u32, new.data.node_count() as u32);
    let (mut i, mut j) = (0u32, 0u32);
    while i < on || j < nn {
        let ok = (i < on).then(|| old.data.node_key(i));
        let nk = (j < nn).then(|| new.data.node_key(j));
        match (ok, nk) {
            (Some(a), Some(b)) if a == b => {
                let (o, n) = (node_ref(old, id, i), node_ref(new, id, j));
                if !same_member(o, n) {
                    let (x, y) = (
                        member_of(o, params, &APEX_EXTRA),
                        member_of(n, params, &APEX_EXTRA),
                    );
                    match (x, y) {
                        (Some(x), None) => delta.remove.push(x.hash),
                        (_, Some(y)) => delta.upsert.push(y),
                        (None, None) => {}
                    }
                }
                i += 1;
                j += 1;
            }
            (Some(a), b) if b.is_none() || a < b.unwrap_or_default() => {
                if let Some(x) = member_of(node_ref(old, id, i), params, &APEX_EXTRA) {
                    delta.remove.push(x.hash);
                }
                i += 1;
            }
            _ => {
                if let Some(y) = member_of(node_ref(new, id, j), params, &APEX_EXTRA) {
                    delta.upsert.push(y);
                }
                j += 1;
            }
        }
    }
    delta
}

/// The types the signer adds at the apex (they appear in the apex NSEC3 bitmap).
pub const APEX_EXTRA: [Rtype; 2] = [Rtype::DNSKEY, Rtype::NSEC3PARAM];

/// Build (and check) one touched shard of the next version from its content,
/// with the signatures of its unchanged RRsets carried over from the served shard.
pub fn build_one(
    zone: &Zone,
    dnssec: Option<&Dnssec>,
    id: ShardId,
    content: &Content,
    ctx: &dyn ZoneContext,
) -> Result<(ShardId, Arc<ZShard>), EditError> {
    let data =
        build_shard(content, id, zone.origin(), zone.origin_labels(), ctx).map_err(err_text)?;
    let old = match id {
        None => zone.apex_shard(),
        Some(i) => zone.shard(i),
    };
    let zs = match dnssec {
        None => ZShard::unsigned(Arc::new(data)),
        Some(_) => {
            let old_pair = old.sigs.as_ref().map(|s| (&*old.data, s));
            let (sigs, _missing) = ShardSigs::carried(&data, old_pair);
            ZShard {
                data: Arc::new(data),
                sigs: Some(sigs),
            }
        }
    };
    Ok((id, Arc::new(zs)))
}

/// Threads for a change's work over `n` shards: when there are more than 8, every
/// core but one (at most 8), so the query workers always find a core free. On
/// this kernel a waking worker does not take a core from a running thread at once,
/// whatever its priority, but at the next tick (4 ms at 250 Hz): with every core
/// busy, dnsperf's p99 went from 0.13 ms to 1.7–3.2 ms, with one core left free it
/// stayed at 0.09–0.25 ms (README, Performance).
pub fn shard_threads(n: usize) -> usize {
    if n > 8 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .saturating_sub(1)
            .clamp(1, 8)
    } else {
        1
    }
}

/// Make the next version from the current one and some shards already built
/// with [`build_one`]: the apex's wildcard flag, the signatures the new RRsets
/// need, and the NSEC3 chain.
pub fn next_version(
    zone: &Zone,
    dnssec: Option<&Dnssec>,
    mut built: Vec<(ShardId, Arc<ZShard>)>,
    ctx: &(dyn ZoneContext + Sync),
    hints: Option<&Hints>,
) -> Result<Next, EditError> {
    let origin = zone.origin().to_vec();
    let ol = zone.origin_labels();
    let mut signed = 0usize;
    let threads = shard_threads(built.len());
    // The apex's wildcard flag depends on the shard of `*.<origin>`.
    let mut next_zone = zone.with_shards(built.clone());
    let star_present = {
        let mut wc = vec![1u8, b'*'];
        wc.extend_from_slice(&origin);
        next_zone.find_name(&wc).is_some()
    };
    let apex_flagged = next_zone.apex().flags() & crate::zone::HAS_WILDCARD != 0;
    if star_present != apex_flagged {
        // Rebuild the apex shard with the right flag.
        let content = decode(&next_zone.apex_shard().data);
        let mut b = ShardBuilder::new(ol, None);
        let mut key = Key::new();
        key.set(&origin);
        b.name(&key);
        let mut line = 0;
        for (k, sets) in &content {
            key.set_key(k);
            for s in sets {
                for r in &s.rdatas {
                    line += 1;
                    b.add(&key, s.rtype, s.ttl, r, Src { file: 0, line });
                }
            }
        }
        let mut ix = b.index().map_err(err_text)?;
        if star_present {
            ix.flag_apex(crate::zone::HAS_WILDCARD);
        }
        let mut w = Vec::new();
        let data = ix.finish(&origin, ctx, &mut w).map_err(err_text)?;
        let old = zone.apex_shard();
        let zs = match dnssec {
            None => ZShard::unsigned(Arc::new(data)),
            Some(_) => {
                let (sigs, _) =
                    ShardSigs::carried(&data, old.sigs.as_ref().map(|s| (&*old.data, s)));
                ZShard {
                    data: Arc::new(data),
                    sigs: Some(sigs),
                }
            }
        };
        built.retain(|(id, _)| id.is_some());
        built.push((None, Arc::new(zs)));
        next_zone = zone.with_shards(built.clone());
    }
    let Some(d) = dnssec else {
        return Ok(Next {
            zone: next_zone,
            dnssec: None,
            shards: built.iter().map(|(id, _)| *id).collect(),
            chain_changed: Vec::new(),
            signed: 0,
        });
    };
    // Sign what has no signature yet in the rebuilt shards (on all cores for a big change).
    let made: Vec<Result<usize, EditError>> =
        crate::zone::build::par_map(built.clone(), threads, |(id, zs)| {
            let Some(sigs) = zs.sigs.as_ref() else {
                return Ok(0);
            };
            let mut n = 0;
            for (node, set) in zs.data.node_rrsets() {
                let flags = zs.data.node(node).flags;
                let rtype = zs.data.rrset(set).rtype;
                if !crate::dnssec::sigs::signable(flags, rtype) || sigs.slot(set).load().is_some() {
                    continue;
                }
                let hinted = hints.and_then(|h| {
                    h.rrsets
                        .get(&(zs.data.node_key(node).to_vec(), rtype.0))
                        .cloned()
                });
                let s = match hinted {
                    Some(s) => s,
                    None => {
                        n += 1;
                        let nr = node_ref(&zs, id, node);
                        let sr = crate::zone::SetRef { sh: &zs, idx: set };
                        Arc::new(
                            d.signer
                                .sign_set(nr, sr)
                                .map_err(|e| EditError::Sign(e.to_string()))?,
                        )
                    }
                };
                sigs.slot(set).store(Some(s));
            }
            Ok(n)
        });
    for m in made {
        signed += m?;
    }
    // The NSEC3 chain: names whose record appeared, went, or changed its bitmap.
    let deltas: Vec<ChainDelta> =
        crate::zone::build::par_map(built.clone(), threads, |(id, new)| {
            let old = match id {
                None => zone.apex_shard().clone(),
                Some(i) => zone.shard(i).clone(),
            };
            chain_delta(&old, &new, id, d)
        });
    let mut delta = ChainDelta::default();
    for x in deltas {
        delta.upsert.extend(x.upsert);
        delta.remove.extend(x.remove);
    }
    let (chain, need) = if delta.is_empty() {
        (None, Vec::new())
    } else {
        let (c, need) = d
            .chain
            .apply(&origin, &delta)
            .map_err(|e| EditError::Check(e.0))?;
        (Some(c), need)
    };
    let nsec3_ttl = next_zone.negative_ttl();
    let chain = match chain {
        Some(c) => Arc::new(c),
        None => d.chain.clone(),
    };
    let mut chain_changed = Vec::new();
    for pos in need {
        let hinted = hints.and_then(|h| h.nsec3.get(chain.hash(pos)).cloned());
        let s = match hinted {
            Some(s) => s,
            None => {
                signed += 1;
                Arc::new(
                    d.signer
                        .sign_nsec3(&chain, pos, nsec3_ttl)
                        .map_err(|e| EditError::Sign(e.to_string()))?,
                )
            }
        };
        chain.slot(pos).store(Some(s));
        chain_changed.push(pos);
    }
    let next_d = Dnssec {
        signer: d.signer.clone(),
        chain,
        apex: d.apex.clone(),
        nsec3_ttl,
    };
    Ok(Next {
        zone: next_zone,
        dnssec: Some(next_d),
        shards: built.iter().map(|(id, _)| *id).collect(),
        chain_changed,
        signed,
    })
}

/// Fresh (empty) signature slots for the signer-made apex RRsets.
pub fn empty_apex_sigs() -> Arc<ApexSigs> {
    Arc::new(ApexSigs {
        dnskey: Slot::empty(),
        nsec3param: Slot::empty(),
    })
}

#[cfg(test)]
mod shard_id_tests {
    use super::*;

    /// The shard a key belongs to, the long way: through a [`Key`].
    fn by_key(key: &[u8], origin_labels: usize) -> ShardId {
        let mut k = Key::new();
        k.set_key(key);
        if k.labels() <= origin_labels {
            None
        } else {
            Some(crate::zone::shard_of(k.prefix(origin_labels + 1)))
        }
    }

    #[test]
    fn shard_id_reads_only_what_it_needs_and_agrees_with_the_key() {
        let names = [
            "be.",
            "example.be.",
            "www.example.be.",
            "a.b.c.d.example.be.",
            "xn--caf-dma.be.",
            "\\000weird\\001.be.",
            "a\\.b.be.",
            "ns1.\\001\\000.be.",
            "example.com.",
            ".",
        ];
        for ol in 0..3 {
            for n in names {
                let Ok(wire) = crate::name::from_text(n, &[0]) else {
                    continue;
                };
                let key = crate::name::key_of(&wire);
                assert_eq!(
                    shard_id(&key, ol),
                    by_key(&key, ol),
                    "{n} with {ol} origin labels"
                );
            }
        }
    }
}

#[cfg(test)]
mod per_shard_tests {
    use super::*;

    /// A copy shares every chunk; a change copies the changed slot's chunk only.
    #[test]
    fn a_copy_shares_chunks_and_a_change_copies_one() {
        let mut a: PerShard<u32> = PerShard::default();
        for slot in 0..=crate::zone::SHARDS {
            *a.get_mut(slot) = slot as u32;
        }
        let mut b = a.clone();
        *b.get_mut(4000) = 7;
        assert_eq!((*a.get(4000), *b.get(4000)), (4000, 7));
        let shared = a
            .chunks
            .iter()
            .zip(&b.chunks)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(shared, a.chunks.len() - 1);
        let all: Vec<u32> = b.iter().copied().collect();
        assert_eq!(all.len(), crate::zone::SHARDS + 1);
        assert_eq!((all[0], all[4000], all[crate::zone::SHARDS]), (0, 7, 4096));
    }
}
