//! Building a [`Zone`] from parsed records, with the semantic checks of a zone checker.
//!
//! Records arrive one at a time (from [`super::master`], from tests, or from a
//! change); each goes to the builder of its shard ([`super::shard`]). Finishing
//! runs in three steps: every shard is indexed and checked name by name (SOA,
//! CNAME exclusivity per RFC 2181 §10.1, DS only at delegations, only glue
//! below a cut), the NS targets that cross shards are collected, then every
//! shard resolves its glue (RFC 1034 §4.2.1, in-domain NS need glue) and checks
//! what its delegation points hold. Shards are finished on all cores.
//!
//! Every error names the file and line of the record at fault.

use super::shard::{Indexed, ShardBuilder, ShardError, Src, ZoneContext};
use super::{Shard, ZShard, Zone, SHARDS};
use crate::name::{self, Key};
use crate::wire::Rtype;
use std::collections::HashSet;
use std::fmt;
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

/// Check one record on its own: class, type and size (the loader and every change use it).
pub fn check_record(class: u16, rtype: u16, rdata_len: usize) -> Result<(), String> {
    if class != 1 {
        return Err(format!("class {class} is not served: only IN"));
    }
    match Rtype(rtype) {
        Rtype::RRSIG | Rtype::NSEC | Rtype::NSEC3 | Rtype::NSEC3PARAM => {
            return Err(format!(
                "{} records are not accepted in the input zone: belfry signs the zone itself",
                super::master::rtype_to_string(rtype)
            ))
        }
        t if t.is_meta() => {
            return Err(format!(
                "{} is not a record type for zone data",
                super::master::rtype_to_string(rtype)
            ))
        }
        _ => {}
    }
    if rdata_len > 65535 {
        return Err("RDATA longer than 65535 bytes".into());
    }
    Ok(())
}

/// Collects records and turns them into a [`Zone`].
pub struct ZoneBuilder {
    origin: Vec<u8>,
    origin_labels: usize,
    files: Vec<Arc<Path>>,
    apex: ShardBuilder,
    shards: Vec<ShardBuilder>,
    key: Box<Key>,
    /// The owner (as given) whose key is in `key`, and its shard (`None`: the apex's).
    last_owner: Vec<u8>,
    last_shard: Option<usize>,
    records: usize,
}

impl ZoneBuilder {
    /// Start a zone with the given origin (absolute wire name, any case).
    pub fn new(origin: &[u8]) -> Self {
        let origin = name::to_lowercase(origin);
        let origin_labels = name::label_count(&origin);
        let mut apex = ShardBuilder::new(origin_labels, None);
        let mut key = Box::new(Key::new());
        key.set(&origin);
        apex.name(&key);
        ZoneBuilder {
            origin,
            origin_labels,
            files: Vec::new(),
            apex,
            shards: (0..SHARDS)
                .map(|i| ShardBuilder::new(origin_labels, Some(i)))
                .collect(),
            key,
            last_owner: Vec::new(),
            last_shard: None,
            records: 0,
        }
    }

    /// Reserve room for about `records` records (from the file size, say).
    pub fn reserve(&mut self, records: usize) {
        let per = records / SHARDS + 1;
        for s in &mut self.shards {
            s.reserve(per);
        }
    }

    fn file_index(&mut self, file: &Path) -> u16 {
        match self.files.last() {
            Some(f) if &**f == file => (self.files.len() - 1) as u16,
            _ => match self.files.iter().position(|f| &**f == file) {
                Some(i) => i as u16,
                None => {
                    self.files.push(Arc::from(file));
                    (self.files.len() - 1) as u16
                }
            },
        }
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
        check_record(class, rtype, rdata.len())?;
        let src = Src {
            file: self.file_index(file),
            line: line.min(u32::MAX as usize) as u32,
        };
        // A TLD's records come a few to an owner: its key and shard are made once.
        if self.last_owner != owner {
            if !name::is_at_or_below(owner, &self.origin) {
                return Err(format!(
                    "{} is outside the zone {}",
                    name::to_text(owner),
                    name::to_text(&self.origin)
                ));
            }
            self.key.set(owner);
            self.last_shard = (self.key.labels() != self.origin_labels)
                .then(|| super::shard_of(self.key.prefix(self.origin_labels + 1)));
            self.last_owner.clear();
            self.last_owner.extend_from_slice(owner);
        }
        let key = &*self.key;
        let b = match self.last_shard {
            None => &mut self.apex,
            Some(i) => &mut self.shards[i],
        };
        b.add(key, rtype, ttl, rdata, src);
        self.records += 1;
        Ok(())
    }

    fn place(&self, src: Option<Src>) -> (PathBuf, usize) {
        match src {
            Some(s) => (
                self.files
                    .get(s.file as usize)
                    .map(|f| f.to_path_buf())
                    .unwrap_or_else(|| PathBuf::from("<zone>")),
                s.line as usize,
            ),
            None => (self.zone_file(), 0),
        }
    }

    fn zone_file(&self) -> PathBuf {
        self.files
            .first()
            .map(|f| f.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("<zone>"))
    }

    fn error(&self, e: ShardError) -> LoadError {
        let (file, line) = self.place(e.src);
        LoadError {
            file,
            line,
            message: e.message,
        }
    }

    /// Group, check and index everything added so far.
    pub fn finish(self) -> Result<Zone, LoadError> {
        if self.records == 0 {
            return Err(LoadError {
                file: self.zone_file(),
                line: 0,
                message: "the zone holds no records".into(),
            });
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let mut me = self;
        let builders = std::mem::take(&mut me.shards);
        let apex_builder =
            std::mem::replace(&mut me.apex, ShardBuilder::new(me.origin_labels, None));
        // Step 1: index every shard (in parallel).
        let indexed: Vec<Result<Indexed, ShardError>> = par_map(builders, threads, |b| b.index());
        let mut shards = Vec::with_capacity(SHARDS);
        for r in indexed {
            shards.push(r.map_err(|e| me.error(e))?);
        }
        let apex = apex_builder.index().map_err(|e| me.error(e))?;
        let ttl_mismatches: usize =
            apex.ttl_mismatches + shards.iter().map(|s| s.ttl_mismatches).sum::<usize>();
        // The SOA and apex NS are checked on the apex shard.
        let apex_shard = apex.shard();
        if apex_shard.rrset_index(0, Rtype::SOA).is_none() {
            return Err(LoadError {
                file: me.zone_file(),
                line: 0,
                message: format!(
                    "no SOA record at the zone apex {}",
                    name::to_text(&me.origin)
                ),
            });
        }
        if apex_shard.rrset_index(0, Rtype::NS).is_none() {
            return Err(LoadError {
                file: me.zone_file(),
                line: 0,
                message: "the zone apex has no NS records".into(),
            });
        }
        // Step 2: NS targets that cross shards.
        let mut remote = RemoteTargets::default();
        apex.remote_targets(&me.origin, |k| {
            remote.0.insert(k.to_vec());
        });
        for s in &shards {
            s.remote_targets(&me.origin, |k| {
                remote.0.insert(k.to_vec());
            });
        }
        // A wildcard directly below the apex is flagged on the apex.
        let mut star = Key::new();
        let mut wc = vec![1u8, b'*'];
        wc.extend_from_slice(&me.origin);
        star.set(&wc);
        let apex_wildcard = shards[super::shard_of(star.prefix(me.origin_labels + 1))]
            .shard()
            .find(star.as_bytes())
            .is_some();
        // Step 3: glue and delegation checks (in parallel).
        let origin = me.origin.clone();
        type Finished = (Result<Shard, ShardError>, Vec<(Option<Src>, String)>);
        let finished: Vec<Finished> = par_map(shards, threads, |ix| {
            let mut w = Vec::new();
            let r = ix.finish(&origin, &remote, &mut w);
            (r, w)
        });
        let mut warnings = Vec::new();
        let mut out = Vec::with_capacity(SHARDS);
        let mut apex = apex;
        if apex_wildcard {
            apex.flag_apex(super::HAS_WILDCARD);
        }
        let mut apex_w = Vec::new();
        let apex = apex
            .finish(&origin, &remote, &mut apex_w)
            .map_err(|e| me.error(e))?;
        for (r, w) in finished {
            let s = r.map_err(|e| me.error(e))?;
            out.push(Arc::new(ZShard::unsigned(Arc::new(s))));
            for (src, m) in w {
                if warnings.len() < 100 {
                    let (file, line) = me.place(src);
                    warnings.push(format!("{}:{line}: {m}", file.display()));
                }
            }
        }
        let mut zone =
            Zone::from_shards(&me.origin, Arc::new(ZShard::unsigned(Arc::new(apex))), out);
        if ttl_mismatches > 0 {
            warnings.push(format!(
                "{ttl_mismatches} records had a TTL different from the rest of their RRset; the first TTL is used (RFC 2181 §5.2)"
            ));
        }
        zone.warnings = warnings;
        Ok(zone)
    }
}

/// Host keys named by an NS record in another shard.
#[derive(Default)]
pub struct RemoteTargets(pub HashSet<Vec<u8>>);

impl ZoneContext for RemoteTargets {
    fn referenced_elsewhere(&self, host_key: &[u8]) -> bool {
        self.0.contains(host_key)
    }
}

/// Map `f` over `items` on `threads` threads, keeping the order.
pub fn par_map<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let chunk = n.div_ceil(threads);
    let mut parts: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter();
    loop {
        let p: Vec<T> = it.by_ref().take(chunk).collect();
        if p.is_empty() {
            break;
        }
        parts.push(p);
    }
    let f = &f;
    // The helpers allocate where the caller does, so what they free of the items
    // (made by the caller) is reused for what they make (`ops::heap::current_arena`).
    let arena = crate::ops::heap::current_arena();
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|p| {
                s.spawn(move || {
                    if let Some(a) = arena {
                        crate::ops::heap::join_arena(a);
                    }
                    p.into_iter().map(f).collect::<Vec<R>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
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
/// record batches, so loading takes about as long as the slower of the two;
/// the shards are then finished on all cores.
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
    let zone = b.finish();
    // What the build freed (as much again as the zone holds) goes back to the kernel
    // now: on a reload the publisher's work comes next, beside the served zone.
    crate::ops::heap::purge();
    zone
}
