//! The live suppression list (Revoke+ / EPP serverHold): names that must not resolve.
//!
//! Owns the list as operators keep it ([`list`]: entries with reason, case id,
//! author, times; the TOML file and its watcher [`watch`]; the audit log), the
//! edge where operator input becomes typed values ([`domain`], [`time`]), the
//! admin API and its client ([`api`], [`cli`], sharing [`proto`]), and the form
//! the query path reads ([`Suppressions`]: per-shard hash tables of canonical
//! keys behind a Bloom filter). A suppressed domain and every name below it
//! answer NXDOMAIN with an Extended DNS Error (RFC 8914: 15 Blocked, or 16
//! Censored).
//!
//! The query path reads one filter word per ancestor of the query name below
//! the origin, and looks in a table only when the filter says the name may be
//! listed. A change replaces the tables of the shards it touches, off the hot
//! path, and the set is swapped in with the snapshot.

pub mod api;
pub mod audit;
pub mod cli;
pub mod domain;
pub mod ede;
pub mod list;
pub mod proto;
pub mod time;
pub mod watch;

use crate::name::Key;
use std::collections::HashMap;
use std::sync::Arc;

/// How a suppression is reported in the Extended DNS Error (RFC 8914 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdeKind {
    /// Registry policy: info code 15 (Blocked).
    Blocked,
    /// External order: info code 16 (Censored).
    Censored,
}

impl EdeKind {
    /// The RFC 8914 info code.
    pub fn code(self) -> u16 {
        match self {
            EdeKind::Blocked => crate::wire::types::ede::BLOCKED,
            EdeKind::Censored => crate::wire::types::ede::CENSORED,
        }
    }
}

/// What the query path needs to know of one suppressed name.
#[derive(Clone, Debug)]
pub struct Effect {
    /// EDE info code.
    pub code: u16,
    /// EDE extra text.
    pub text: std::sync::Arc<str>,
}

/// A suppression that applies to a query name.
#[derive(Clone, Copy, Debug)]
pub struct Hit<'a> {
    /// EDE info code.
    pub code: u16,
    /// EDE extra text.
    pub text: &'a str,
    /// Labels of the suppressed name (its parent is the closest encloser).
    pub labels: usize,
}

/// One shard's suppressed names (by canonical key).
type Table = hashbrown::HashMap<Box<[u8]>, Effect, foldhash::fast::FixedState>;

/// The set of suppressed names the query path consults.
///
/// Cut like the zone, by the shard of the label below the origin, so that a
/// change replaces only the tables of the shards it touches (the others are
/// shared with the previous version); in front of the tables a Bloom filter
/// answers "not listed" for almost every query name without touching them.
#[derive(Clone, Debug, Default)]
pub struct Suppressions {
    /// Labels of the zone's origin.
    ol: usize,
    /// Index 0: names at or above the origin (never listed); `i + 1`: shard `i`.
    shards: crate::publish::edit::PerShard<Option<Arc<Table>>>,
    len: usize,
    filter: Arc<Filter>,
}

/// Seed of the filter's hash (any fixed value: the filter is rebuilt, never stored).
const FILTER_SEED: u64 = 0x6265_6c66_7279_0001;

/// A blocked Bloom filter of suppressed keys: two bits of one 64-bit word per
/// key, so a look-up reads one word. Lifted names leave their bits set (they are
/// counted as stale) until the filter is rebuilt.
///
/// The words are kept in blocks of at most [`FILTER_BLOCK`] (32 KiB), each shared
/// between versions until one of its words changes: a single takedown copies one
/// block rather than the whole filter (1 MiB at 100,000 names).
#[derive(Clone, Debug, Default)]
struct Filter {
    blocks: Vec<Arc<[u64]>>,
    /// log2 of the words per block; `mask` = words per block - 1.
    shift: u32,
    mask: usize,
    /// Words in all (a power of two).
    words: usize,
    /// Bit `n` set: some name added has `n` labels. A query name's ancestors
    /// at other depths need no probe (in a TLD every entry is one label below
    /// the origin, so a query costs one probe however deep its name).
    depths: u128,
    /// Names the filter was sized for (at least 32 bits each).
    capacity: usize,
    /// Names lifted since the last rebuild (their bits may still be set).
    stale: usize,
}

/// Words per filter block.
const FILTER_BLOCK: usize = 4096;

impl Filter {
    /// An empty filter for up to `names` names.
    fn with_capacity(names: usize) -> Filter {
        let names = names.max(1024);
        let words = (names * 32 / 64).next_power_of_two();
        let per = words.min(FILTER_BLOCK);
        Filter {
            blocks: (0..words / per)
                .map(|_| Arc::from(vec![0u64; per]))
                .collect(),
            shift: per.trailing_zeros(),
            mask: per - 1,
            words,
            depths: 0,
            capacity: words * 2,
            stale: 0,
        }
    }

    #[inline]
    fn slot(&self, key: &[u8]) -> (usize, u64) {
        use std::hash::BuildHasher;
        let h = foldhash::fast::FixedState::with_seed(FILTER_SEED).hash_one(key);
        let w = (h >> 32) as usize & (self.words - 1);
        let bits = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63));
        (w, bits)
    }

    fn add(&mut self, key: &[u8]) {
        let (w, b) = self.slot(key);
        let (i, j) = (w >> self.shift, w & self.mask);
        if self.blocks[i][j] & b != b {
            Arc::make_mut(&mut self.blocks[i])[j] |= b;
        }
        // A key ends every label with 0x00 and never holds it otherwise.
        let labels = key.iter().filter(|&&b| b == 0).count();
        self.depths |= 1u128.checked_shl(labels as u32).unwrap_or(0);
    }

    #[inline]
    fn has_depth(&self, labels: usize) -> bool {
        labels >= 128 || self.depths & (1u128 << labels) != 0
    }

    /// Whether `key` may be listed (false: certainly not).
    #[inline]
    fn may_hold(&self, key: &[u8]) -> bool {
        if self.words == 0 {
            return false;
        }
        let (w, b) = self.slot(key);
        self.blocks[w >> self.shift][w & self.mask] & b == b
    }
}

impl Suppressions {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set of the given names (canonical keys) in a zone whose origin has `ol` labels.
    pub fn from_entries<'a>(
        ol: usize,
        names: impl IntoIterator<Item = (&'a [u8], Effect)>,
    ) -> Self {
        let mut by: HashMap<usize, Table> = HashMap::new();
        for (k, e) in names {
            by.entry(crate::publish::edit::shard_slot(
                crate::publish::edit::shard_id(k, ol),
            ))
            .or_default()
            .insert(k.into(), e);
        }
        let mut s = Suppressions {
            ol,
            ..Default::default()
        };
        s.set_shards(by);
        s
    }

    /// This set with the names of some shards replaced: `changed` gives, for each
    /// shard it names, every listed name of that shard (none: the shard has none).
    /// Tables of the other shards are shared with `self`.
    pub fn with_shards<'a>(
        &self,
        ol: usize,
        changed: impl IntoIterator<Item = (Option<usize>, Vec<(&'a [u8], Effect)>)>,
    ) -> Self {
        let mut next = self.clone();
        if next.ol != ol {
            next = Suppressions {
                ol,
                ..Default::default()
            };
        }
        let mut by: HashMap<usize, Table> = HashMap::new();
        for (id, names) in changed {
            let t = by.entry(crate::publish::edit::shard_slot(id)).or_default();
            for (k, e) in names {
                t.insert(k.into(), e);
            }
        }
        next.set_shards(by);
        next
    }

    /// Replace the tables of the given shards (empty: none left), keeping the
    /// length and the filter right.
    fn set_shards(&mut self, by: HashMap<usize, Table>) {
        if by.is_empty() {
            return;
        }
        let mut added: Vec<&[u8]> = Vec::new();
        let mut lifted = 0;
        for (slot, t) in &by {
            let old = self.shards.get(*slot).as_deref();
            if let Some(old) = old {
                lifted += old.keys().filter(|k| !t.contains_key(*k)).count();
                self.len -= old.len();
            }
            added.extend(
                t.keys()
                    .filter(|k| !old.is_some_and(|o| o.contains_key(*k)))
                    .map(|k| &**k),
            );
            self.len += t.len();
        }
        let stale = self.filter.stale + lifted;
        if self.len > self.filter.capacity || stale * 3 >= self.len.max(1024) {
            // Rebuilt from every table, old ones and new ones.
            let mut f = Filter::with_capacity(self.len * 2);
            for (i, t) in self.shards.iter().enumerate() {
                if by.contains_key(&i) {
                    continue;
                }
                for k in t.iter().flat_map(|t| t.keys()) {
                    f.add(k);
                }
            }
            for k in by.values().flat_map(|t| t.keys()) {
                f.add(k);
            }
            self.filter = Arc::new(f);
        } else if !added.is_empty() || lifted > 0 {
            // The served version still reads the old filter: this copies the
            // blocks the added names fall in (one 32 KiB block per name at most).
            let f = Arc::make_mut(&mut self.filter);
            for k in added {
                f.add(k);
            }
            f.stale = stale;
        }
        for (slot, t) in by {
            *self.shards.get_mut(slot) = (!t.is_empty()).then(|| Arc::new(t));
        }
    }

    /// Number of suppressed names.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is suppressed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry of a listed name (by key).
    fn get(&self, key: &[u8]) -> Option<&Effect> {
        let id = crate::publish::edit::shard_id(key, self.ol);
        self.shards
            .get(crate::publish::edit::shard_slot(id))
            .as_ref()?
            .get(key)
    }

    /// Whether a name (by key) is itself on the list.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.len > 0 && self.filter.may_hold(key) && self.get(key).is_some()
    }

    /// The suppression covering a query name, if the name or an ancestor below the origin is listed.
    #[inline]
    pub fn find(&self, key: &Key, origin_labels: usize) -> Option<Hit<'_>> {
        if self.len == 0 {
            return None;
        }
        for labels in origin_labels + 1..=key.labels() {
            if !self.filter.has_depth(labels) {
                continue;
            }
            let p = key.prefix(labels);
            if self.filter.may_hold(p) {
                if let Some(e) = self.find_in_tables(p) {
                    return Some(Hit {
                        code: e.code,
                        text: &e.text,
                        labels,
                    });
                }
            }
        }
        None
    }

    /// The exact look-up behind the filter (rarely reached: listed names and
    /// the filter's few false positives).
    #[cold]
    fn find_in_tables(&self, key: &[u8]) -> Option<&Effect> {
        self.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect() -> Effect {
        Effect {
            code: 15,
            text: Arc::from("x"),
        }
    }

    fn key(text: &str) -> Vec<u8> {
        crate::name::key_of(&crate::name::from_text(text, &[0]).unwrap())
    }

    #[test]
    fn names_are_found_through_the_filter_and_lifted_ones_are_not() {
        let names: Vec<Vec<u8>> = (0..5000).map(|i| key(&format!("d{i}.be."))).collect();
        let s = Suppressions::from_entries(1, names.iter().map(|k| (k.as_slice(), effect())));
        assert_eq!(s.len(), 5000);
        for k in &names {
            assert!(s.contains(k));
        }
        let mut q = Key::new();
        q.set(&crate::name::from_text("www.d17.be.", &[0]).unwrap());
        assert_eq!(s.find(&q, 1).map(|h| h.labels), Some(2));
        q.set(&crate::name::from_text("www.other.be.", &[0]).unwrap());
        assert!(s.find(&q, 1).is_none());
        // Lift every name of d17's shard, one at a time as single changes would.
        let gone = crate::publish::edit::shard_id(&names[17], 1);
        let mut t = s.clone();
        let mut left: Vec<&Vec<u8>> = names
            .iter()
            .filter(|k| crate::publish::edit::shard_id(k, 1) == gone)
            .collect();
        while left.pop().is_some() {
            t = t.with_shards(
                1,
                [(
                    gone,
                    left.iter().map(|k| (k.as_slice(), effect())).collect(),
                )],
            );
        }
        q.set(&crate::name::from_text("www.d17.be.", &[0]).unwrap());
        assert!(t.find(&q, 1).is_none());
        assert!(!t.contains(&names[17]));
        assert!(s.contains(&names[17]), "the old version is untouched");
        let kept = names.iter().filter(|k| t.contains(k)).count();
        assert_eq!(kept, t.len());
        assert!(t.len() < 5000);
        // Many lifts rebuild the filter; every remaining name is still found.
        let mut u = t.clone();
        for id in (0..crate::zone::SHARDS).map(Some) {
            u = u.with_shards(1, [(id, Vec::new())]);
        }
        assert!(u.is_empty());
        assert!(names.iter().all(|k| !u.contains(k)));
        assert!(u.filter.stale < 1024, "the filter was rebuilt");
    }

    /// A single added name copies the one filter block it falls in; the
    /// others stay shared with the version being served.
    #[test]
    fn a_single_add_copies_one_filter_block() {
        let names: Vec<Vec<u8>> = (0..10_000).map(|i| key(&format!("d{i}.be."))).collect();
        let s = Suppressions::from_entries(1, names.iter().map(|k| (k.as_slice(), effect())));
        let blocks = s.filter.blocks.len();
        assert!(blocks >= 4, "{blocks} blocks");
        let new = key("brand-new.be.");
        let id = crate::publish::edit::shard_id(&new, 1);
        let mut same_shard: Vec<(&[u8], Effect)> = names
            .iter()
            .filter(|k| crate::publish::edit::shard_id(k, 1) == id)
            .map(|k| (k.as_slice(), effect()))
            .collect();
        same_shard.push((&new, effect()));
        let t = s.with_shards(1, [(id, same_shard)]);
        assert!(t.contains(&new) && !s.contains(&new));
        assert!(names.iter().all(|k| t.contains(k)));
        let shared = (0..blocks)
            .filter(|&i| Arc::ptr_eq(&s.filter.blocks[i], &t.filter.blocks[i]))
            .count();
        assert_eq!(shared, blocks - 1, "exactly one block copied");
    }

    #[test]
    fn only_depths_that_hold_names_are_probed_and_every_depth_is_found() {
        let names = [key("phish.be."), key("a.b.c.be.")];
        let s = Suppressions::from_entries(1, names.iter().map(|k| (k.as_slice(), effect())));
        assert_eq!(s.filter.depths, (1 << 2) | (1 << 4));
        let find = |text: &str| {
            let mut q = Key::new();
            q.set(&crate::name::from_text(text, &[0]).unwrap());
            s.find(&q, 1).map(|h| h.labels)
        };
        assert_eq!(find("x.y.phish.be."), Some(2));
        assert_eq!(find("phish.be."), Some(2));
        assert_eq!(find("www.a.b.c.be."), Some(4));
        assert_eq!(find("a.b.c.be."), Some(4));
        assert_eq!(find("b.c.be."), None);
        assert_eq!(find("other.be."), None);
        // A name added by a single change brings its depth along.
        let t = s.with_shards(
            1,
            [(
                crate::publish::edit::shard_id(&key("deep.x.y.be."), 1),
                vec![(key("deep.x.y.be.").as_slice(), effect())],
            )],
        );
        let mut q = Key::new();
        q.set(&crate::name::from_text("www.deep.x.y.be.", &[0]).unwrap());
        assert_eq!(t.find(&q, 1).map(|h| h.labels), Some(4));
    }
}
