//! Checkpoints: the whole published state at one serial, written atomically.
//!
//! A checkpoint holds every RRset of the served zone with its signatures, the
//! NSEC3 records' and the apex's signatures, the suppression list, what the
//! suppressions withhold, and which zone file (by length, time and SHA-256) the
//! source data came from. A restart loads the newest checkpoint and applies the
//! journal's records after it: the same serial, the same records, the same
//! signatures as before the stop — so secondaries can go on with IXFR, and no
//! signature is made again.
//!
//! On disk: `BCP1`, then frames of `length | CRC-32 | postcard payload`: the
//! header, one frame per zone shard (apex first), then the chain's signatures.
//! Written to a temporary file, fsynced, renamed over the old one.

use super::change::Suppression;
use super::edit::{RecSet, ShardId};
use crate::dnssec::{ApexSigs, Dnssec, ShardSigs, SigSet, Signer, Slot};
use crate::handler::Snapshot;
use crate::zone::{self, ZShard, Zone};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: [u8; 4] = *b"BCP1";

/// Which zone file the source data came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Length in bytes.
    pub len: u64,
    /// SHA-256 of the content.
    pub sha256: Vec<u8>,
}

impl Fingerprint {
    /// The fingerprint of a file.
    pub fn of(path: &Path) -> Result<Fingerprint, String> {
        let mut f = std::fs::File::open(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            len += n as u64;
            ctx.update(&buf[..n]);
        }
        Ok(Fingerprint {
            len,
            sha256: ctx.finish().as_ref().to_vec(),
        })
    }
}

/// Names (keys) with their RRsets.
pub type NameSets = Vec<(Vec<u8>, Vec<RecSet>)>;

/// Everything of the publisher's state a checkpoint keeps besides the zone.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Header {
    /// Zone origin (lowercase wire).
    pub origin: Vec<u8>,
    /// Serial of the version.
    pub serial: u32,
    /// When it was written (seconds since the epoch).
    pub time: u64,
    /// The DNSKEY RDATAs the signatures are by (empty when unsigned).
    pub dnskeys: Vec<Vec<u8>>,
    /// NSEC3 iterations, salt and opt-out of the chain the signatures are for.
    pub nsec3: Option<(u16, Vec<u8>, bool)>,
    /// The zone file the source data came from.
    pub fingerprint: Option<Fingerprint>,
    /// The suppression list.
    pub list: Vec<Suppression>,
    /// What the suppressions withhold, by suppressed domain key.
    pub withheld: Vec<(Vec<u8>, NameSets)>,
    /// The first serial that was fully signed (IXFR is served from there on).
    pub ixfr_floor: Option<u32>,
    /// The next change id.
    pub next_id: u64,
    /// The primary's serial of the source data (when following a primary).
    pub source_serial: Option<u32>,
}

/// A shard as stored: for each name with RRsets, `key_len u16, key, sets u16`, then
/// per RRset `type u16, ttl u32, count u16, (len u16, rdata)*, sig_len u32` and, when
/// `sig_len > 0`, `expiration u32` and the signature bytes. Flat, so that writing and
/// reading a 1.8 M-delegation zone makes no allocation per record.
#[derive(Serialize, Deserialize)]
struct ShardBlob {
    bytes: Vec<u8>,
}

/// The signatures of the NSEC3 records and of DNSKEY/NSEC3PARAM, flat: per record
/// `hash [20], expiration u32, len u32, bytes`; then the two apex sets the same way
/// (hash all zero; len 0 when there is none).
#[derive(Serialize, Deserialize, Default)]
struct Tail {
    chain: Vec<u8>,
    apex: Vec<u8>,
}

fn put_sig(out: &mut Vec<u8>, s: Option<&SigSet>) {
    match s {
        None => out.extend_from_slice(&0u32.to_le_bytes()),
        Some(s) => {
            out.extend_from_slice(&(s.bytes().len() as u32 + 4).to_le_bytes());
            out.extend_from_slice(&s.expiration.to_le_bytes());
            out.extend_from_slice(s.bytes());
        }
    }
}

/// A cursor over stored bytes; every read is bounds-checked (a corrupt file is an error).
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let r = self
            .b
            .get(self.at..self.at + n)
            .ok_or_else(|| "corrupt checkpoint (short record)".to_string())?;
        self.at += n;
        Ok(r)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let t = self.take(2)?;
        Ok(u16::from_le_bytes([t[0], t[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let t = self.take(4)?;
        Ok(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
    }
    fn done(&self) -> bool {
        self.at >= self.b.len()
    }
    /// A stored signature set (`None` when absent).
    fn sig(&mut self) -> Result<Option<SigSet>, String> {
        let n = self.u32()? as usize;
        if n == 0 {
            return Ok(None);
        }
        if n < 4 {
            return Err("corrupt checkpoint (signature length)".into());
        }
        let exp = self.u32()?;
        Ok(Some(SigSet::new(exp, self.take(n - 4)?)))
    }
}

fn frame<T: Serialize>(w: &mut impl Write, v: &T) -> std::io::Result<()> {
    let b = postcard::to_stdvec(v).map_err(|e| std::io::Error::other(e.to_string()))?;
    w.write_all(&(b.len() as u32).to_le_bytes())?;
    w.write_all(&crc32fast::hash(&b).to_le_bytes())?;
    w.write_all(&b)
}

fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, String> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h)
        .map_err(|e| format!("short checkpoint: {e}"))?;
    let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if n > 1 << 30 {
        return Err("corrupt checkpoint (frame too large)".into());
    }
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)
        .map_err(|e| format!("short checkpoint: {e}"))?;
    if crc32fast::hash(&b) != crc {
        return Err("corrupt checkpoint (CRC mismatch)".into());
    }
    postcard::from_bytes(&b).map_err(|e| format!("corrupt checkpoint: {e}"))
}

fn blob_of(zs: &ZShard) -> ShardBlob {
    let sh = &*zs.data;
    let mut b = Vec::with_capacity(sh.heap_bytes() / 2);
    for node in 0..sh.node_count() as u32 {
        let sets = sh.rrsets(node);
        if sets.is_empty() {
            continue;
        }
        let key = sh.node_key(node);
        b.extend_from_slice(&(key.len() as u16).to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&(sets.len() as u16).to_le_bytes());
        let start = sh.rrset_start(node);
        for (k, s) in sets.iter().enumerate() {
            b.extend_from_slice(&s.rtype.0.to_le_bytes());
            b.extend_from_slice(&s.ttl.to_le_bytes());
            b.extend_from_slice(&s.count.to_le_bytes());
            for r in sh.rdatas(s) {
                b.extend_from_slice(&(r.len() as u16).to_le_bytes());
                b.extend_from_slice(r);
            }
            let sig = zs
                .sigs
                .as_ref()
                .and_then(|g| g.slot(start + k as u32).load_full());
            put_sig(&mut b, sig.as_deref());
        }
    }
    ShardBlob { bytes: b }
}

/// Write a checkpoint of a version (with `header` describing the rest of the state).
pub fn write(path: &Path, snap: &Snapshot, mut header: Header) -> Result<(), String> {
    let zone = &*snap.zone;
    header.origin = zone.origin().to_vec();
    header.serial = snap.serial;
    if let Some(d) = snap.dnssec.as_deref() {
        header.dnskeys = d.signer.dnskeys().to_vec();
        let p = &d.chain.params;
        header.nsec3 = Some((p.iterations, p.salt.clone(), p.opt_out));
    }
    let tmp: PathBuf = path.with_extension("tmp");
    let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", tmp.display());
    let result = (|| -> Result<(), String> {
        let f = std::fs::File::create(&tmp).map_err(|e| fail("cannot create", e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&MAGIC).map_err(|e| fail("cannot write", e))?;
        frame(&mut w, &header).map_err(|e| fail("cannot write", e))?;
        frame(&mut w, &blob_of(zone.apex_shard())).map_err(|e| fail("cannot write", e))?;
        for i in 0..zone::SHARDS {
            frame(&mut w, &blob_of(zone.shard(i))).map_err(|e| fail("cannot write", e))?;
        }
        let mut tail = Tail::default();
        if let Some(d) = snap.dnssec.as_deref() {
            for pos in d.chain.positions() {
                if let Some(s) = d.chain.slot(pos).load_full() {
                    tail.chain.extend_from_slice(d.chain.hash(pos));
                    put_sig(&mut tail.chain, Some(&s));
                }
            }
            put_sig(&mut tail.apex, d.apex.dnskey.load_full().as_deref());
            put_sig(&mut tail.apex, d.apex.nsec3param.load_full().as_deref());
        }
        frame(&mut w, &tail).map_err(|e| fail("cannot write", e))?;
        let f = w
            .into_inner()
            .map_err(|e| fail("cannot write", e.into_error()))?;
        f.sync_all().map_err(|e| fail("cannot fsync", e))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: cannot rename into place: {e}", path.display())
    })?;
    if let Some(d) = path.parent() {
        if let Ok(d) = std::fs::File::open(d) {
            let _ = d.sync_all();
        }
    }
    write_keyset(path, snap)
}

/// The key set of a checkpoint's version, beside it (`<checkpoint>.keys`).
#[derive(Serialize, Deserialize)]
struct KeysetFile {
    serial: u32,
    keyset: crate::dnssec::lifecycle::KeySet,
}

fn keyset_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".keys");
    PathBuf::from(p)
}

/// Write the key set the checkpoint's signatures are by (so a restart can read
/// them with that key set, then replay the key changes after it).
fn write_keyset(path: &Path, snap: &Snapshot) -> Result<(), String> {
    let kp = keyset_path(path);
    let Some(ks) = snap.dnssec.as_deref().and_then(|d| d.signer.keyset()) else {
        let _ = std::fs::remove_file(&kp);
        return Ok(());
    };
    let text = serde_json::to_vec(&KeysetFile {
        serial: snap.serial,
        keyset: ks.clone(),
    })
    .map_err(|e| format!("{}: {e}", kp.display()))?;
    crate::keys::state::write_atomic(&kp, &text)
}

/// The key set a checkpoint's version was signed with, when it was written beside
/// it for the same serial.
pub fn read_keyset(path: &Path) -> Option<crate::dnssec::lifecycle::KeySet> {
    let text = std::fs::read(keyset_path(path)).ok()?;
    let f: KeysetFile = serde_json::from_slice(&text).ok()?;
    (peek(path).ok()?.serial == f.serial).then_some(f.keyset)
}

/// Read only the header of a checkpoint.
pub fn peek(path: &Path) -> Result<Header, String> {
    let at = |m: String| format!("{}: {m}", path.display());
    let f = std::fs::File::open(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let mut r = BufReader::new(f);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|e| at(format!("cannot read: {e}")))?;
    if magic != MAGIC {
        return Err(at("not a belfry checkpoint".into()));
    }
    read_frame(&mut r).map_err(at)
}

/// What a checkpoint restores.
pub struct Restored {
    /// The zone, with its signatures in place.
    pub zone: Zone,
    /// The DNSSEC part (when the zone is signed).
    pub dnssec: Option<Dnssec>,
    /// The rest of the state.
    pub header: Header,
    /// Whether the stored signatures were usable with the configured keys.
    pub signatures_kept: bool,
}

/// A context for rebuilding shards that passed every check when they were published.
struct Checked;

impl zone::shard::ZoneContext for Checked {
    fn referenced_elsewhere(&self, _host_key: &[u8]) -> bool {
        true
    }
}

/// Read a checkpoint for a zone origin; with a signer, the stored signatures are put
/// back when they are by the same keys with the same NSEC3 parameters.
pub fn read(path: &Path, origin: &[u8], signer: Option<Arc<Signer>>) -> Result<Restored, String> {
    let at = |m: String| format!("{}: {m}", path.display());
    let f = std::fs::File::open(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|e| at(format!("cannot read: {e}")))?;
    if magic != MAGIC {
        return Err(at("not a belfry checkpoint".into()));
    }
    let header: Header = read_frame(&mut r).map_err(at)?;
    let origin = crate::name::to_lowercase(origin);
    if header.origin != origin {
        return Err(at(format!(
            "checkpoint of zone {}, not {}",
            crate::name::to_text(&header.origin),
            crate::name::to_text(&origin)
        )));
    }
    let keep_sigs = signer.as_ref().is_some_and(|s| {
        let p = &s.policy().nsec3;
        s.dnskeys() == header.dnskeys.as_slice()
            && header.nsec3 == Some((p.iterations, p.salt.clone(), p.opt_out))
    });
    let ol = crate::name::label_count(&origin);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let signed = signer.is_some();
    // Read and build in batches, so the stored bytes of the whole zone are never
    // held at once next to the zone being built.
    let mut built: Vec<Result<(ShardId, Arc<ZShard>), String>> =
        Vec::with_capacity(zone::SHARDS + 1);
    let mut next = 0usize;
    while next <= zone::SHARDS {
        let n = (zone::SHARDS + 1 - next).min(256);
        let mut jobs = Vec::with_capacity(n);
        for i in next..next + n {
            let blob = read_frame::<ShardBlob>(&mut r).map_err(at)?;
            jobs.push((if i == 0 { None } else { Some(i - 1) }, blob));
        }
        next += n;
        built.extend(zone::build::par_map(jobs, threads, |(id, blob)| {
            build_stored(&blob.bytes, id, &origin, ol, signed, keep_sigs)
        }));
    }
    let tail: Tail = read_frame(&mut r).map_err(at)?;
    let mut apex = None;
    let mut shards = Vec::with_capacity(zone::SHARDS);
    for b in built {
        let (id, zs) = b.map_err(|m| at(format!("a stored shard fails its checks: {m}")))?;
        match id {
            None => apex = Some(zs),
            Some(_) => shards.push(zs),
        }
    }
    let apex = apex.ok_or_else(|| at("no apex shard".into()))?;
    let mut zone = Zone::from_shards(&origin, apex, shards);
    // The apex's wildcard flag is set by the zone build; a stored apex shard lacks it.
    let mut wc = vec![1u8, b'*'];
    wc.extend_from_slice(&origin);
    if zone.find_name(&wc).is_some() && zone.apex().flags() & zone::HAS_WILDCARD == 0 {
        let content = super::edit::decode(&zone.apex_shard().data);
        let mut b = zone::shard::ShardBuilder::new(ol, None);
        let mut key = crate::name::Key::new();
        key.set(&origin);
        b.name(&key);
        let mut line = 0;
        for (k, sets) in &content {
            key.set_key(k);
            for s in sets {
                for rd in &s.rdatas {
                    line += 1;
                    b.add(&key, s.rtype, s.ttl, rd, zone::shard::Src { file: 0, line });
                }
            }
        }
        let mut ix = b.index().map_err(|e| at(e.message))?;
        ix.flag_apex(zone::HAS_WILDCARD);
        let mut w = Vec::new();
        let data = ix
            .finish(&origin, &Checked, &mut w)
            .map_err(|e| at(e.message))?;
        let old = zone.apex_shard().clone();
        let sigs = old.sigs.as_ref().map(|_| {
            let (s, _) = ShardSigs::carried(&data, old.sigs.as_ref().map(|g| (&*old.data, g)));
            s
        });
        zone = zone.with_shards(vec![(
            None,
            Arc::new(ZShard {
                data: Arc::new(data),
                sigs,
            }),
        )]);
    }
    let dnssec = match signer {
        None => None,
        Some(s) => {
            let chain = crate::dnssec::chain::Chain::build(
                &zone,
                s.policy().nsec3.clone(),
                &super::edit::APEX_EXTRA,
            )
            .map_err(|e| at(e.0))?;
            let apex = Arc::new(ApexSigs {
                dnskey: Slot::empty(),
                nsec3param: Slot::empty(),
            });
            if keep_sigs {
                let mut c = Cursor {
                    b: &tail.chain,
                    at: 0,
                };
                while !c.done() {
                    let h: [u8; 20] = c.take(20).map_err(&at)?.try_into().unwrap_or([0; 20]);
                    if let Some(sig) = c.sig().map_err(&at)? {
                        if let Some(pos) = chain.find(&h) {
                            chain.slot(pos).store(Some(Arc::new(sig)));
                        }
                    }
                }
                let mut c = Cursor {
                    b: &tail.apex,
                    at: 0,
                };
                if let Some(x) = c.sig().map_err(&at)? {
                    apex.dnskey.store(Some(Arc::new(x)));
                }
                if let Some(x) = c.sig().map_err(&at)? {
                    apex.nsec3param.store(Some(Arc::new(x)));
                }
            }
            Some(Dnssec {
                signer: s,
                chain: Arc::new(chain),
                apex,
                nsec3_ttl: zone.negative_ttl(),
            })
        }
    };
    Ok(Restored {
        zone,
        dnssec,
        header,
        signatures_kept: keep_sigs,
    })
}

/// Build one stored shard (and put its signatures back when `keep_sigs`).
fn build_stored(
    bytes: &[u8],
    id: ShardId,
    origin: &[u8],
    ol: usize,
    signed: bool,
    keep_sigs: bool,
) -> Result<(ShardId, Arc<ZShard>), String> {
    let mut b = zone::shard::ShardBuilder::new(ol, id);
    let mut key = crate::name::Key::new();
    if id.is_none() {
        key.set(origin);
        b.name(&key);
    }
    // Signatures to put back once built: (key range in `bytes`, type, signatures).
    let mut sigs: Vec<(usize, usize, u16, SigSet)> = Vec::new();
    let mut c = Cursor { b: bytes, at: 0 };
    let mut line = 0u32;
    while !c.done() {
        let kl = c.u16()? as usize;
        let k0 = c.at;
        key.set_key(c.take(kl)?);
        let n = c.u16()?;
        for _ in 0..n {
            let rtype = c.u16()?;
            let ttl = c.u32()?;
            let count = c.u16()?;
            for _ in 0..count {
                let l = c.u16()? as usize;
                line += 1;
                b.add(
                    &key,
                    rtype,
                    ttl,
                    c.take(l)?,
                    zone::shard::Src { file: 0, line },
                );
            }
            if let Some(s) = c.sig()? {
                sigs.push((k0, kl, rtype, s));
            }
        }
    }
    let ix = b
        .index()
        .map_err(|e| format!("a stored shard fails its checks: {}", e.message))?;
    let mut w = Vec::new();
    let data = ix
        .finish(origin, &Checked, &mut w)
        .map_err(|e| format!("a stored shard fails its checks: {}", e.message))?;
    let slots = signed.then(|| ShardSigs::empty(&data));
    if let (Some(slots), true) = (&slots, keep_sigs) {
        for (k0, kl, rtype, s) in sigs {
            let Some(node) = data.find(&bytes[k0..k0 + kl]) else {
                continue;
            };
            if let Some(i) = data.rrset_index(node, crate::wire::Rtype(rtype)) {
                slots.slot(i).store(Some(Arc::new(s)));
            }
        }
    }
    Ok((
        id,
        Arc::new(ZShard {
            data: Arc::new(data),
            sigs: slots,
        }),
    ))
}
