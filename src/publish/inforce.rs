//! The publisher's own indexes of the suppressions, cut by shard like the zone:
//! which names are in force ([`InForce`]) and what each withholds from the zone
//! ([`Withheld`]). A change that touches one shard reads and copies that shard's
//! part only, so a single takedown costs the same with 100,000 names listed as
//! with none.

use super::edit::{shard_id, shard_slot as slot, Content, PerShard, RecSet, ShardId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The shard id of a slot.
fn id_of(slot: usize) -> ShardId {
    slot.checked_sub(1)
}

/// The suppressed names in force (by key), per shard. Cloning copies one
/// pointer per shard; changing a shard copies that shard's names only.
#[derive(Clone, Debug)]
pub struct InForce {
    ol: usize,
    shards: PerShard<Arc<BTreeSet<Vec<u8>>>>,
    len: usize,
}

impl InForce {
    /// Nothing in force, in a zone whose origin has `ol` labels.
    pub fn new(ol: usize) -> InForce {
        InForce {
            ol,
            shards: PerShard::default(),
            len: 0,
        }
    }

    /// The given names in force.
    pub fn from_keys(ol: usize, keys: impl IntoIterator<Item = Vec<u8>>) -> InForce {
        let mut s = InForce::new(ol);
        for k in keys {
            s.insert(k);
        }
        s
    }

    /// Put a name in force; false if it already was.
    pub fn insert(&mut self, key: Vec<u8>) -> bool {
        let i = slot(shard_id(&key, self.ol));
        let added = Arc::make_mut(self.shards.get_mut(i)).insert(key);
        self.len += usize::from(added);
        added
    }

    /// Take a name out of force; false if it was not in force.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let i = slot(shard_id(key, self.ol));
        if !self.shards.get(i).contains(key) {
            return false;
        }
        Arc::make_mut(self.shards.get_mut(i)).remove(key);
        self.len -= 1;
        true
    }

    /// Whether this very name is in force.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.shards.get(slot(shard_id(key, self.ol))).contains(key)
    }

    /// Whether a name (key) is suppressed: it or an ancestor below the origin is
    /// in force (all of them are in the name's own shard).
    pub fn covers(&self, key: &[u8]) -> bool {
        if self.len == 0 {
            return false;
        }
        let set = self.shards.get(slot(shard_id(key, self.ol)));
        !set.is_empty()
            && key
                .iter()
                .enumerate()
                .any(|(i, &b)| b == 0 && set.contains(&key[..=i]))
    }

    /// The names in force in one shard.
    pub fn shard(&self, id: ShardId) -> impl Iterator<Item = &Vec<u8>> {
        self.shards.get(slot(id)).iter()
    }

    /// Every name in force (by shard, then key).
    pub fn iter(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// The shards with a name in force.
    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, _)| id_of(i))
    }
}

/// What suppressions withdraw from the zone, by the key of the suppressed
/// domain, per shard (a domain's withheld names are all in its shard).
///
/// Each domain's withheld records are kept packed in one allocation (see
/// [`pack`]) and decoded when a change needs them: a decoded [`Content`] of one
/// delegation costs about 1 KB (a B-tree node and a vector per name, RRset and
/// record), the packed form a tenth of that, and 100,000 takedowns hold 100,000
/// of them for as long as they are in force.
#[derive(Clone, Debug, Default)]
pub struct Withheld {
    ol: usize,
    shards: HashMap<usize, PackedShard>,
}

/// A shard's suppressed domains (keys) and what each withholds, packed.
type PackedShard = HashMap<Box<[u8]>, Box<[u8]>>;

impl Withheld {
    /// Nothing withheld, in a zone whose origin has `ol` labels.
    pub fn new(ol: usize) -> Withheld {
        Withheld {
            ol,
            ..Default::default()
        }
    }

    /// From what each suppressed domain withholds.
    pub fn from_map(ol: usize, all: impl IntoIterator<Item = (Vec<u8>, Content)>) -> Withheld {
        let mut w = Withheld::new(ol);
        w.extend(all);
        w
    }

    fn packed(&self, key: &[u8]) -> Option<&[u8]> {
        self.shards
            .get(&slot(shard_id(key, self.ol)))?
            .get(key)
            .map(|p| &p[..])
    }

    /// Whether a suppressed domain withholds something.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.packed(key).is_some()
    }

    /// Whether what a suppressed domain withholds includes its own NS RRset
    /// (it was delegated when it was suppressed).
    pub fn delegates(&self, key: &[u8]) -> bool {
        self.packed(key)
            .is_some_and(|p| Packed(p).any(|(k, sets)| k == key && sets.rtypes().any(is_ns)))
    }

    /// How many suppressed domains withhold an NS RRset.
    pub fn delegations(&self) -> usize {
        self.shards
            .values()
            .flat_map(|m| m.values())
            .filter(|p| Packed(p).any(|(_, sets)| sets.rtypes().any(is_ns)))
            .count()
    }

    /// Every suppressed domain and what it withholds (decoded).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Content)> {
        self.shards
            .values()
            .flat_map(|m| m.iter())
            .map(|(k, p)| (&k[..], unpack(p)))
    }

    /// What the suppressed domains of one shard withhold (decoded).
    pub fn shard(&self, id: ShardId) -> impl Iterator<Item = (&[u8], Content)> {
        self.shards
            .get(&slot(id))
            .into_iter()
            .flat_map(|m| m.iter())
            .map(|(k, p)| (&k[..], unpack(p)))
    }

    /// Whether no suppressed domain of a shard withholds anything.
    pub fn shard_is_empty(&self, id: ShardId) -> bool {
        self.shards.get(&slot(id)).is_none_or(|m| m.is_empty())
    }

    /// Add (or replace) what domains withhold.
    pub fn extend(&mut self, all: impl IntoIterator<Item = (Vec<u8>, Content)>) {
        for (k, c) in all {
            self.shards
                .entry(slot(shard_id(&k, self.ol)))
                .or_default()
                .insert(k.into_boxed_slice(), pack(&c));
        }
    }

    /// Forget what the domains of the given shards withhold, then add `new`
    /// (what a rebuild of those shards found).
    pub fn replace<'a>(
        &mut self,
        shards: impl IntoIterator<Item = &'a ShardId>,
        new: impl IntoIterator<Item = (Vec<u8>, Content)>,
    ) {
        for id in shards {
            self.shards.remove(&slot(*id));
        }
        self.extend(new);
    }
}

fn is_ns(t: u16) -> bool {
    t == crate::wire::Rtype::NS.0
}

/// The packed form of withheld content: for each name in key order, its key
/// (one length byte, then the key), its RRset count (u16), then per RRset the
/// type (u16), the TTL (u32), the record count (u32) and each RDATA (u16 length,
/// then the bytes). Integers are big-endian. RDATA is at most 65,535 bytes and a
/// key at most 255, so every length fits.
fn pack(c: &Content) -> Box<[u8]> {
    let mut out = Vec::new();
    for (k, sets) in c {
        out.push(k.len() as u8);
        out.extend_from_slice(k);
        out.extend_from_slice(&(sets.len() as u16).to_be_bytes());
        for s in sets {
            out.extend_from_slice(&s.rtype.to_be_bytes());
            out.extend_from_slice(&s.ttl.to_be_bytes());
            out.extend_from_slice(&(s.rdatas.len() as u32).to_be_bytes());
            for r in &s.rdatas {
                out.extend_from_slice(&(r.len() as u16).to_be_bytes());
                out.extend_from_slice(r);
            }
        }
    }
    out.into_boxed_slice()
}

fn unpack(p: &[u8]) -> Content {
    Packed(p)
        .map(|(k, sets)| (k.to_vec(), sets.collect()))
        .collect()
}

/// Reads packed content name by name.
struct Packed<'a>(&'a [u8]);

/// Takes `n` bytes off the front of `p`.
fn take<'a>(p: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (h, t) = p.split_at(n);
    *p = t;
    h
}

fn be16(p: &mut &[u8]) -> u16 {
    u16::from_be_bytes(take(p, 2).try_into().unwrap())
}

fn be32(p: &mut &[u8]) -> u32 {
    u32::from_be_bytes(take(p, 4).try_into().unwrap())
}

impl<'a> Iterator for Packed<'a> {
    type Item = (&'a [u8], PackedSets<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let p = &mut self.0;
        let n = take(p, 1)[0] as usize;
        let key = take(p, n);
        let count = be16(p);
        // Skip over the RRsets to the next name.
        let sets = *p;
        for _ in 0..count {
            take(p, 6);
            let records = be32(p);
            for _ in 0..records {
                let len = be16(p) as usize;
                take(p, len);
            }
        }
        Some((key, PackedSets { p: sets, count }))
    }
}

/// The packed RRsets of one name.
struct PackedSets<'a> {
    p: &'a [u8],
    count: u16,
}

impl<'a> PackedSets<'a> {
    /// The record types, without decoding the records.
    fn rtypes(mut self) -> impl Iterator<Item = u16> + 'a {
        std::iter::from_fn(move || {
            if self.count == 0 {
                return None;
            }
            self.count -= 1;
            let p = &mut self.p;
            let rtype = be16(p);
            take(p, 4);
            for _ in 0..be32(p) {
                let len = be16(p) as usize;
                take(p, len);
            }
            Some(rtype)
        })
    }
}

impl Iterator for PackedSets<'_> {
    type Item = RecSet;

    fn next(&mut self) -> Option<RecSet> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        let p = &mut self.p;
        let rtype = be16(p);
        let ttl = be32(p);
        let records = be32(p);
        let rdatas = (0..records)
            .map(|_| {
                let len = be16(p) as usize;
                take(p, len).to_vec()
            })
            .collect();
        Some(RecSet { rtype, ttl, rdatas })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Vec<u8> {
        crate::name::key_of(&crate::name::from_text(text, &[0]).unwrap())
    }

    #[test]
    fn in_force_is_found_per_shard_and_covers_descendants() {
        let mut f = InForce::new(1);
        assert!(f.insert(key("phish.be.")));
        assert!(!f.insert(key("phish.be.")));
        assert!(f.insert(key("other.be.")));
        assert_eq!(f.iter().count(), 2);
        assert!(f.covers(&key("www.phish.be.")));
        assert!(f.covers(&key("phish.be.")));
        assert!(!f.covers(&key("phish2.be.")));
        assert!(!f.covers(&key("be.")));
        let before = f.clone();
        assert!(f.remove(&key("phish.be.")));
        assert!(!f.remove(&key("phish.be.")));
        assert!(!f.covers(&key("www.phish.be.")));
        assert!(
            before.covers(&key("www.phish.be.")),
            "a clone is its own version"
        );
        let id = shard_id(&key("other.be."), 1);
        assert_eq!(f.shard(id).collect::<Vec<_>>(), vec![&key("other.be.")]);
        assert_eq!(f.shards().collect::<Vec<_>>(), vec![id]);
        assert_eq!(f.iter().count(), 1);
    }

    #[test]
    fn withheld_is_replaced_shard_by_shard() {
        let mut w = Withheld::new(1);
        let a = key("a.be.");
        let b = key("b.be.");
        w.extend([(a.clone(), Content::new()), (b.clone(), Content::new())]);
        assert_eq!(w.iter().count(), 2);
        let ia = shard_id(&a, 1);
        w.replace([ia].iter(), []);
        assert!(!w.contains_key(&a));
        assert_eq!(w.contains_key(&b), shard_id(&b, 1) != ia);
        assert_eq!(w.shard(ia).count(), 0);
        assert!(w.shard_is_empty(ia));
    }

    fn set(rtype: crate::wire::Rtype, ttl: u32, rdatas: &[&[u8]]) -> RecSet {
        RecSet {
            rtype: rtype.0,
            ttl,
            rdatas: rdatas.iter().map(|r| r.to_vec()).collect(),
        }
    }

    #[test]
    fn withheld_content_comes_back_as_it_went_in() {
        use crate::wire::Rtype;
        let d = key("phish.be.");
        let ns1 = crate::name::from_text("ns1.phish.be.", &[0]).unwrap();
        let ns2 = crate::name::from_text("ns.elsewhere.net.", &[0]).unwrap();
        let big = vec![7u8; 65_535];
        let mut c = Content::new();
        c.insert(
            d.clone(),
            vec![
                set(Rtype::NS, 3600, &[&ns1, &ns2]),
                set(Rtype::DS, 86_400, &[&[1, 2, 3, 4], &[]]),
            ],
        );
        c.insert(
            key("ns1.phish.be."),
            vec![set(Rtype::A, 60, &[&[192, 0, 2, 1]])],
        );
        c.insert(key("x.phish.be."), vec![set(Rtype::TXT, u32::MAX, &[&big])]);
        let glue_only = key("glue.be.");
        let mut g = Content::new();
        g.insert(glue_only.clone(), vec![set(Rtype::AAAA, 1, &[&[0; 16]])]);
        let mut w = Withheld::new(1);
        w.extend([(d.clone(), c.clone()), (glue_only.clone(), g.clone())]);
        let mut back: Vec<(Vec<u8>, Content)> = w.iter().map(|(k, c)| (k.to_vec(), c)).collect();
        back.sort_by(|x, y| x.0.cmp(&y.0));
        let mut want = vec![(d.clone(), c), (glue_only.clone(), g)];
        want.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(back, want);
        assert!(w.delegates(&d));
        assert!(!w.delegates(&glue_only), "no NS RRset");
        assert!(
            !w.delegates(&key("ns1.phish.be.")),
            "not a suppressed domain"
        );
        assert_eq!(w.delegations(), 1);
        let id = shard_id(&d, 1);
        assert!(!w.shard_is_empty(id));
        assert_eq!(w.shard(id).filter(|(k, _)| *k == &d[..]).count(), 1);
    }
}
