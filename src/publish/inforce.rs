//! The publisher's own indexes of the suppressions, cut by shard like the zone:
//! which names are in force ([`InForce`]) and what each withholds from the zone
//! ([`Withheld`]). A change that touches one shard reads and copies that shard's
//! part only, so a single takedown costs the same with 100,000 names listed as
//! with none.

use super::edit::{shard_id, shard_slot as slot, Content, PerShard, ShardId};
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
#[derive(Clone, Debug, Default)]
pub struct Withheld {
    ol: usize,
    shards: HashMap<usize, HashMap<Vec<u8>, Content>>,
}

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

    /// What a suppressed domain withholds.
    pub fn get(&self, key: &[u8]) -> Option<&Content> {
        self.shards.get(&slot(shard_id(key, self.ol)))?.get(key)
    }

    /// Whether a suppressed domain withholds something.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Every suppressed domain and what it withholds.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Content)> {
        self.shards.values().flat_map(|m| m.iter())
    }

    /// What the suppressed domains of one shard withhold.
    pub fn shard(&self, id: ShardId) -> impl Iterator<Item = (&Vec<u8>, &Content)> {
        self.shards
            .get(&slot(id))
            .into_iter()
            .flat_map(|m| m.iter())
    }

    /// Add (or replace) what domains withhold.
    pub fn extend(&mut self, all: impl IntoIterator<Item = (Vec<u8>, Content)>) {
        for (k, c) in all {
            self.shards
                .entry(slot(shard_id(&k, self.ol)))
                .or_default()
                .insert(k, c);
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
    }
}
