//! Online DNSSEC: keys, the NSEC3 chain, and signatures made once and cached.
//!
//! Owns everything a signed answer needs beyond the zone itself (RFC 4033–4035,
//! RFC 5155 NSEC3 with opt-out, RFC 6840 clarifications, RFC 9276 parameters):
//!
//! - [`key`]: key pairs held in `ring`, PKCS#8 files, BIND key import, DS;
//! - [`rrsig`]: the data to be signed and RRSIG RDATA;
//! - [`nsec3hash`]: NSEC3 owner hashing;
//! - [`chain`]: the NSEC3 chain built at load;
//! - this module: [`Signer`] (keys + one signature slot per RRset and per NSEC3
//!   record, shared by all workers) and [`Signed`] (what a snapshot carries).
//!
//! A signature is made the first time an RRset is needed, or ahead of time by
//! a background pass; it is verified against the public key before it is stored
//! and re-made before it expires. The query path reads a slot (an atomic
//! pointer load) and copies bytes; it signs only when a slot is empty or stale.
//! Delegation NS RRsets and glue are never signed (RFC 4035 §2.2).
//!
//! A signature that cannot be made (a key error, a signature that does not
//! verify, or the fault injected by [`FAULT_SIGN_ENV`]) is never hidden: the
//! writers return [`SigningFailed`] so the handler answers SERVFAIL instead of
//! an unsigned answer a validator would call bogus, and the signer counts it
//! ([`Signer::signing_failures`]) and logs it, at most one line per
//! [`FAILURE_LOG_INTERVAL`] seconds.

pub mod chain;
pub mod key;
pub mod nsec3hash;
pub mod rrsig;

use crate::name;
use crate::wire::writer::Section;
use crate::wire::{Rtype, Writer};
use crate::zone::{Zone, APEX, BELOW_CUT, DELEGATION};
use arc_swap::{ArcSwap, ArcSwapOption};
use chain::{Chain, Nsec3Params, Splice};
use key::SigningKey;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Signing policy from the configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Signature validity in seconds (default 14 days).
    pub validity: u32,
    /// Inception is back-dated by this many seconds (default 1 hour).
    pub inception_offset: u32,
    /// Signatures are re-made when they have less than this left (default 4 days).
    pub refresh: u32,
    /// Expiry is spread over up to this many extra seconds (default 1 day).
    pub jitter: u32,
    /// TTL of the DNSKEY RRset.
    pub dnskey_ttl: u32,
    /// NSEC3 parameters.
    pub nsec3: Nsec3Params,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            validity: 14 * 86400,
            inception_offset: 3600,
            refresh: 4 * 86400,
            jitter: 86400,
            dnskey_ttl: 3600,
            nsec3: Nsec3Params::default(),
        }
    }
}

/// A signing failure (a key error, or a signature that did not verify).
#[derive(Debug, Clone)]
pub struct SignError(pub String);

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SignError {}

/// A signature an answer needs could not be made and no valid one is cached; the
/// signer has counted and logged it. The answer must not go out unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningFailed;

/// Environment variable naming an owner whose RRsets cannot be signed: a fault
/// injected for tests of the failure path, read once at start and logged loudly.
pub const FAULT_SIGN_ENV: &str = "BELFRY_FAULT_SIGN";

/// Seconds between two log lines about signing failures (the rest are only counted).
pub const FAILURE_LOG_INTERVAL: u32 = 10;

/// The owner named by [`FAULT_SIGN_ENV`], lowercase wire form, when the variable is set.
pub fn fault_from_env() -> Result<Option<Vec<u8>>, String> {
    match std::env::var(FAULT_SIGN_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            let text = v.trim();
            let text = if text.ends_with('.') {
                text.to_string()
            } else {
                format!("{text}.")
            };
            let wire = name::from_text(&text, &[0])
                .map_err(|e| format!("{FAULT_SIGN_ENV}={v}: not a domain name: {e}"))?;
            Ok(Some(name::to_lowercase(&wire)))
        }
        _ => Ok(None),
    }
}

/// Room for the RRSIGs of one RRset kept inside the cache entry itself: one
/// ECDSA P-256 or Ed25519 signature by a single key fits, so the query path
/// reads one cache line run instead of following a second pointer.
const INLINE_SIGS: usize = 118;

enum SigData {
    Inline { len: u8, buf: [u8; INLINE_SIGS] },
    Heap(Box<[u8]>),
}

/// The RRSIG RDATAs over one RRset, with the earliest expiry among them.
pub struct SigSet {
    /// Earliest signature expiration (seconds since the epoch, RFC 4034 §3.1.5).
    pub expiration: u32,
    data: SigData,
}

impl SigSet {
    fn new(expiration: u32, bytes: &[u8]) -> SigSet {
        let data = if bytes.len() <= INLINE_SIGS {
            let mut buf = [0u8; INLINE_SIGS];
            buf[..bytes.len()].copy_from_slice(bytes);
            SigData::Inline {
                len: bytes.len() as u8,
                buf,
            }
        } else {
            SigData::Heap(bytes.into())
        };
        SigSet { expiration, data }
    }

    fn bytes(&self) -> &[u8] {
        match &self.data {
            SigData::Inline { len, buf } => &buf[..*len as usize],
            SigData::Heap(b) => b,
        }
    }

    /// Each RRSIG RDATA.
    pub fn rdatas(&self) -> impl Iterator<Item = &[u8]> {
        let d = self.bytes();
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            if pos + 2 > d.len() {
                return None;
            }
            let l = u16::from_be_bytes([d[pos], d[pos + 1]]) as usize;
            let r = &d[pos + 2..pos + 2 + l];
            pos += 2 + l;
            Some(r)
        })
    }
}

/// An NSEC3 record re-made for a spliced chain: RDATA and its signatures.
pub struct Patched {
    /// The NSEC3 RDATA.
    pub rdata: Box<[u8]>,
    /// Its signatures.
    pub sigs: SigSet,
}

/// Where to write an owner name: a pointer into the message or a name.
#[derive(Clone, Copy, Debug)]
pub enum OwnerRef<'a> {
    /// Compression pointer target.
    At(u16),
    /// Name to write (compressed).
    Name(&'a [u8]),
}

/// Apex RRsets that come from the signer rather than the zone file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApexExtra {
    /// The DNSKEY RRset.
    Dnskey,
    /// The NSEC3PARAM RRset.
    Nsec3Param,
}

static NOW: AtomicU32 = AtomicU32::new(0);

/// Seconds since the epoch, from a clock the background task advances; read without a syscall.
pub fn now() -> u32 {
    let n = NOW.load(Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    tick()
}

/// Advance the coarse clock (called about once a second by the background task).
pub fn tick() -> u32 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    NOW.store(n, Ordering::Relaxed);
    n
}

/// Lowercase canonical RDATA for signing (RFC 4034 §6.2, as amended by RFC 6840 §5.1).
pub fn canonical_rdata(rtype: Rtype, rdata: &[u8]) -> Vec<u8> {
    let mut v = rdata.to_vec();
    let lower_at = |v: &mut Vec<u8>, at: usize| -> Option<usize> {
        let l = name::wire_len(v.get(at..)?).ok()?;
        name::lowercase_in_place(&mut v[at..at + l]);
        Some(at + l)
    };
    match rtype {
        Rtype::NS | Rtype::CNAME | Rtype::PTR | Rtype::DNAME => {
            lower_at(&mut v, 0);
        }
        Rtype::MX => {
            lower_at(&mut v, 2);
        }
        Rtype::SRV => {
            lower_at(&mut v, 6);
        }
        Rtype::SOA => {
            if let Some(e) = lower_at(&mut v, 0) {
                lower_at(&mut v, e);
            }
        }
        _ => {}
    }
    v
}

/// Keys and signature slots for one loaded zone, shared by all snapshots made from it.
pub struct Signer {
    policy: Policy,
    ksks: Vec<SigningKey>,
    zsks: Vec<SigningKey>,
    origin: Vec<u8>,
    dnskey_rdatas: Vec<Vec<u8>>,
    nsec3param: Vec<u8>,
    neg_ttl: u32,
    /// The NSEC3 chain.
    pub chain: Chain,
    set_owner: Vec<u32>,
    /// Per zone node: 1 + the chain entry covering its hash (0 = not looked up yet).
    /// Filled on first use, so a referral to an insecure delegation hashes its name once.
    covers: Box<[std::sync::atomic::AtomicU32]>,
    rrset_sigs: Box<[ArcSwapOption<SigSet>]>,
    chain_sigs: Box<[ArcSwapOption<SigSet>]>,
    dnskey_sigs: ArcSwapOption<SigSet>,
    nsec3param_sigs: ArcSwapOption<SigSet>,
    /// Owner whose RRsets fail to sign (fault injection, see [`FAULT_SIGN_ENV`]).
    fault_owner: Option<Box<[u8]>>,
    /// Signatures that could not be made, since start.
    failures: AtomicU64,
    /// When (seconds since the epoch) a signing failure was last logged.
    failure_logged: AtomicU32,
}

/// Whether an RRset of a node is signed (authoritative data only).
fn signable(zone: &Zone, node: u32, rtype: Rtype) -> bool {
    let f = zone.node(node).flags;
    if f & BELOW_CUT != 0 {
        return false;
    }
    if f & DELEGATION != 0 {
        return rtype == Rtype::DS;
    }
    true
}

impl Signer {
    /// Prepare signing for a zone: check keys, build the NSEC3 chain.
    pub fn new(zone: &Zone, keys: Vec<SigningKey>, policy: Policy) -> Result<Signer, SignError> {
        let mut ksks = Vec::new();
        let mut zsks = Vec::new();
        for k in keys {
            if k.flags() == 257 {
                ksks.push(k);
            } else {
                zsks.push(k);
            }
        }
        if ksks.is_empty() {
            return Err(SignError(
                "no KSK or CSK among the active keys (a key with DNSKEY flags 257 is needed)"
                    .into(),
            ));
        }
        if zsks.is_empty() {
            // A lone KSK acts as a combined signing key.
            zsks = ksks.clone();
        }
        let mut dnskey_rdatas: Vec<Vec<u8>> = ksks
            .iter()
            .chain(zsks.iter())
            .map(|k| k.dnskey_rdata().to_vec())
            .collect();
        dnskey_rdatas.sort();
        dnskey_rdatas.dedup();
        let chain = Chain::build(zone, policy.nsec3.clone()).map_err(|e| SignError(e.0))?;
        let nsec3param = chain.param_rdata();
        let mut set_owner = vec![0u32; zone.rrset_count()];
        for node in 0..zone.node_count() as u32 {
            for s in zone.rrsets(node) {
                if let Some(i) = zone.rrset_index(node, s.rtype) {
                    set_owner[i as usize] = node;
                }
            }
        }
        let slots = |n: usize| -> Box<[ArcSwapOption<SigSet>]> {
            (0..n).map(|_| ArcSwapOption::empty()).collect()
        };
        Ok(Signer {
            covers: (0..zone.node_count())
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
            rrset_sigs: slots(zone.rrset_count()),
            chain_sigs: slots(chain.len()),
            policy,
            ksks,
            zsks,
            origin: zone.origin().to_vec(),
            dnskey_rdatas,
            nsec3param,
            neg_ttl: zone.negative_ttl(),
            chain,
            set_owner,
            dnskey_sigs: ArcSwapOption::empty(),
            nsec3param_sigs: ArcSwapOption::empty(),
            fault_owner: None,
            failures: AtomicU64::new(0),
            failure_logged: AtomicU32::new(0),
        })
    }

    /// Make every signature over an RRset owned by `owner` (any case) fail: a fault
    /// injected to test the failure path ([`FAULT_SIGN_ENV`]); `None` clears it.
    pub fn inject_sign_fault(&mut self, owner: Option<&[u8]>) {
        self.fault_owner = owner.map(|o| name::to_lowercase(o).into_boxed_slice());
    }

    /// Signatures that could not be made since start (answers that needed them got SERVFAIL).
    pub fn signing_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Count a signing failure and log it, at most once per [`FAILURE_LOG_INTERVAL`] seconds.
    fn note_failure(&self, owner: &[u8], rtype: Rtype, err: &SignError) {
        let total = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now();
        let last = self.failure_logged.load(Ordering::Relaxed);
        if (last != 0 && now.wrapping_sub(last) < FAILURE_LOG_INTERVAL)
            || self
                .failure_logged
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        crate::log(&format!(
            "DNSSEC: cannot sign {} {}: {err}; DO=1 answers that need it get SERVFAIL \
             (signing failures so far: {total}; more within {FAILURE_LOG_INTERVAL} s are counted, not logged)",
            name::to_text(owner),
            crate::zone::master::rtype_to_string(rtype.0),
        ));
    }

    /// The signing policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// DNSKEY RDATAs published at the apex.
    pub fn dnskeys(&self) -> &[Vec<u8>] {
        &self.dnskey_rdatas
    }

    /// The KSKs (and CSKs).
    pub fn ksks(&self) -> &[SigningKey] {
        &self.ksks
    }

    /// Sign an RRset given as canonical RDATAs; every signature is verified first.
    /// A failure is counted and logged (rate-limited) before it is returned.
    pub fn sign(
        &self,
        owner_lower: &[u8],
        rtype: Rtype,
        ttl: u32,
        rdatas: Vec<Vec<u8>>,
        with_ksk: bool,
    ) -> Result<SigSet, SignError> {
        let made = self.sign_inner(owner_lower, rtype, ttl, rdatas, with_ksk);
        if let Err(e) = &made {
            self.note_failure(owner_lower, rtype, e);
        }
        made
    }

    fn sign_inner(
        &self,
        owner_lower: &[u8],
        rtype: Rtype,
        ttl: u32,
        mut rdatas: Vec<Vec<u8>>,
        with_ksk: bool,
    ) -> Result<SigSet, SignError> {
        if self.fault_owner.as_deref() == Some(owner_lower) {
            return Err(SignError(format!(
                "fault injected by {FAULT_SIGN_ENV} for {}",
                name::to_text(owner_lower)
            )));
        }
        rdatas.sort();
        rdatas.dedup();
        let refs: Vec<&[u8]> = rdatas.iter().map(|r| r.as_slice()).collect();
        let now = now();
        let inception = now.wrapping_sub(self.policy.inception_offset);
        // Spread expiry deterministically per owner and type so refreshes do not bunch up.
        let mut h: u32 = 0x811C_9DC5;
        for &b in owner_lower.iter().chain(rtype.0.to_be_bytes().iter()) {
            h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        }
        let jitter = if self.policy.jitter > 0 {
            h % self.policy.jitter
        } else {
            0
        };
        let expiration = now.wrapping_add(self.policy.validity).wrapping_add(jitter);
        let keys = if with_ksk { &self.ksks } else { &self.zsks };
        let labels = rrsig::labels_count(owner_lower);
        let mut data = Vec::with_capacity(keys.len() * 120);
        let mut scratch = Vec::with_capacity(512);
        for k in keys {
            let fields = rrsig::RrsigFields {
                type_covered: rtype.0,
                algorithm: k.algorithm().number(),
                labels,
                original_ttl: ttl,
                expiration,
                inception,
                key_tag: k.key_tag(),
                signer: &self.origin,
            };
            let rd = rrsig::sign_rrset(k, &fields, owner_lower, 1, &refs, &mut scratch).map_err(
                |e| {
                    SignError(format!(
                        "signing {} failed: {e}",
                        name::to_text(owner_lower)
                    ))
                },
            )?;
            data.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            data.extend_from_slice(&rd);
        }
        Ok(SigSet::new(expiration, &data))
    }

    fn fresh(&self, slot: &ArcSwapOption<SigSet>) -> Option<arc_swap::Guard<Option<Arc<SigSet>>>> {
        let g = slot.load();
        match &*g {
            Some(s) if s.expiration > now().saturating_add(self.policy.refresh / 4) => Some(g),
            _ => None,
        }
    }

    /// The cached signatures of a slot when they have not expired (after a failed re-sign,
    /// what is still valid is served).
    fn valid(&self, slot: &ArcSwapOption<SigSet>) -> Option<arc_swap::Guard<Option<Arc<SigSet>>>> {
        let g = slot.load();
        match &*g {
            Some(s) if s.expiration > now() => Some(g),
            _ => None,
        }
    }

    /// Sign a zone RRset into its slot.
    fn sign_rrset_slot(&self, zone: &Zone, set_idx: u32) -> Result<(), SignError> {
        let set = zone.rrset(set_idx);
        let owner = zone.node_name(self.set_owner[set_idx as usize]);
        let rdatas = zone
            .rdatas(set)
            .map(|r| canonical_rdata(set.rtype, r))
            .collect();
        let s = self.sign(&owner, set.rtype, set.ttl, rdatas, false)?;
        self.rrset_sigs[set_idx as usize].store(Some(Arc::new(s)));
        Ok(())
    }

    fn nsec3_owner(&self, i: u32, out: &mut [u8; 300]) -> usize {
        let b32 = nsec3hash::base32hex_encode(self.chain.hash(i));
        out[0] = 32;
        out[1..33].copy_from_slice(&b32);
        let n = 33 + self.origin.len();
        out[33..n].copy_from_slice(&self.origin);
        n
    }

    fn sign_chain_slot(&self, i: u32, next: u32) -> Result<Arc<SigSet>, SignError> {
        let mut owner = [0u8; 300];
        let n = self.nsec3_owner(i, &mut owner);
        let mut rdata = Vec::with_capacity(64);
        self.chain.rdata(i, next, &mut rdata);
        let s = Arc::new(self.sign(&owner[..n], Rtype::NSEC3, self.neg_ttl, vec![rdata], false)?);
        Ok(s)
    }

    /// Re-make an NSEC3 record of a spliced chain (new successor), signed.
    pub fn patch(&self, i: u32, next: u32) -> Result<Patched, SignError> {
        let mut owner = [0u8; 300];
        let n = self.nsec3_owner(i, &mut owner);
        let mut rdata = Vec::with_capacity(64);
        self.chain.rdata(i, next, &mut rdata);
        let sigs = self.sign(
            &owner[..n],
            Rtype::NSEC3,
            self.neg_ttl,
            vec![rdata.clone()],
            false,
        )?;
        Ok(Patched {
            rdata: rdata.into_boxed_slice(),
            sigs,
        })
    }

    /// Sign the SOA with a given serial.
    pub fn sign_soa(&self, zone: &Zone, serial: u32) -> Result<SigSet, SignError> {
        let mut rdata = canonical_rdata(Rtype::SOA, zone.soa_rdata());
        let n = rdata.len();
        rdata[n - 20..n - 16].copy_from_slice(&serial.to_be_bytes());
        self.sign(&self.origin, Rtype::SOA, zone.soa().ttl, vec![rdata], false)
    }

    fn apex_sigs(&self, kind: ApexExtra) -> Result<(), SignError> {
        match kind {
            ApexExtra::Dnskey => {
                let s = self.sign(
                    &self.origin,
                    Rtype::DNSKEY,
                    self.policy.dnskey_ttl,
                    self.dnskey_rdatas.clone(),
                    true,
                )?;
                self.dnskey_sigs.store(Some(Arc::new(s)));
            }
            ApexExtra::Nsec3Param => {
                let s = self.sign(
                    &self.origin,
                    Rtype::NSEC3PARAM,
                    0,
                    vec![self.nsec3param.clone()],
                    false,
                )?;
                self.nsec3param_sigs.store(Some(Arc::new(s)));
            }
        }
        Ok(())
    }

    /// Re-sign what is due for refresh and, with `fill_empty`, sign what is not signed yet;
    /// returns signatures made.
    ///
    /// An RRset that cannot be signed is skipped (counted and logged by [`Signer::sign`]) so
    /// one bad RRset does not hold up the rest; the next pass tries it again.
    /// Run in the background after load and periodically; `stop` ends it early.
    pub fn refresh_all(
        &self,
        zone: &Zone,
        stop: &std::sync::atomic::AtomicBool,
        fill_empty: bool,
    ) -> usize {
        let mut made = 0;
        for kind in [ApexExtra::Dnskey, ApexExtra::Nsec3Param] {
            let slot = match kind {
                ApexExtra::Dnskey => &self.dnskey_sigs,
                ApexExtra::Nsec3Param => &self.nsec3param_sigs,
            };
            if self.needs_signing(slot, fill_empty) && self.apex_sigs(kind).is_ok() {
                made += 1;
            }
        }
        for node in 0..zone.node_count() as u32 {
            if stop.load(Ordering::Relaxed) {
                return made;
            }
            for s in zone.rrsets(node) {
                if s.rtype == Rtype::SOA || !signable(zone, node, s.rtype) {
                    continue;
                }
                let Some(idx) = zone.rrset_index(node, s.rtype) else {
                    continue;
                };
                if self.needs_signing(&self.rrset_sigs[idx as usize], fill_empty)
                    && self.sign_rrset_slot(zone, idx).is_ok()
                {
                    made += 1;
                }
            }
        }
        let n = self.chain.len() as u32;
        for i in 0..n {
            if stop.load(Ordering::Relaxed) {
                return made;
            }
            if !self.needs_signing(&self.chain_sigs[i as usize], fill_empty) {
                continue;
            }
            if let Ok(s) = self.sign_chain_slot(i, (i + 1) % n) {
                self.chain_sigs[i as usize].store(Some(s));
                made += 1;
            }
        }
        made
    }

    /// Whether a slot is empty (and empty slots are to be filled) or due for refresh.
    fn needs_signing(&self, slot: &ArcSwapOption<SigSet>, fill_empty: bool) -> bool {
        match &*slot.load() {
            Some(s) => s.expiration <= now().saturating_add(self.policy.refresh),
            None => fill_empty,
        }
    }

    /// The (unspliced) chain entry covering a zone node's name, cached per node.
    pub fn base_cover_of_node(&self, node: u32, name: &[u8]) -> u32 {
        let Some(slot) = self.covers.get(node as usize) else {
            return self.chain.cover(&self.hash_name(name));
        };
        match slot.load(Ordering::Relaxed) {
            0 => {
                let c = self.chain.cover(&self.hash_name(name));
                slot.store(c + 1, Ordering::Relaxed);
                c
            }
            v => v - 1,
        }
    }

    /// NSEC3 hash of the wildcard `*.<encloser>`.
    pub fn wildcard_hash(&self, encloser: &[u8]) -> [u8; 20] {
        let mut buf = [0u8; 258];
        buf[0] = 1;
        buf[1] = b'*';
        let n = encloser.len().min(255);
        buf[2..2 + n].copy_from_slice(&encloser[..n]);
        self.hash_name(&buf[..2 + n])
    }

    /// Lowercase NSEC3 hash of a wire name (any case), without allocation.
    pub fn hash_name(&self, wire: &[u8]) -> [u8; 20] {
        let mut buf = [0u8; 256];
        let n = wire.len().min(255);
        buf[..n].copy_from_slice(&wire[..n]);
        name::lowercase_in_place(&mut buf[..n]);
        nsec3hash::nsec3_hash(
            &buf[..n],
            &self.chain.params.salt,
            self.chain.params.iterations,
        )
    }
}

/// The DNSSEC part of a snapshot: the shared signer, the chain splice, the SOA signature.
pub struct Signed {
    /// Keys, chain and signature slots.
    pub signer: Arc<Signer>,
    /// Hashes spliced out of the chain (suppressed secure delegations).
    pub splice: Arc<Splice>,
    /// Signatures over the SOA with this snapshot's serial.
    pub soa: ArcSwap<SigSet>,
    /// The serial the SOA signatures are for.
    pub serial: u32,
}

/// Point at a name just written at `at` when a pointer can reach it.
fn owner_at(at: usize, name: &[u8]) -> OwnerRef<'_> {
    if at < 0x3FFF {
        OwnerRef::At(at as u16)
    } else {
        OwnerRef::Name(name)
    }
}

fn write_sigs(w: &mut Writer<'_>, sigs: &SigSet, ttl: u32, owner: OwnerRef<'_>) {
    for rd in sigs.rdatas() {
        match owner {
            OwnerRef::At(o) => w.record_at(o, Rtype::RRSIG, 1, ttl, rd),
            OwnerRef::Name(n) => w.record(n, Rtype::RRSIG, 1, ttl, rd),
        }
    }
}

impl Signed {
    /// A snapshot's DNSSEC state for a serial, signing the SOA.
    pub fn new(
        signer: Arc<Signer>,
        zone: &Zone,
        serial: u32,
        splice: Arc<Splice>,
    ) -> Result<Signed, SignError> {
        let soa = signer.sign_soa(zone, serial)?;
        Ok(Signed {
            signer,
            splice,
            soa: ArcSwap::from_pointee(soa),
            serial,
        })
    }

    /// Re-sign the SOA if its signatures are due for refresh.
    pub fn refresh_soa(&self, zone: &Zone) -> Result<(), SignError> {
        let s = self.soa.load();
        if s.expiration <= now().saturating_add(self.signer.policy.refresh) {
            self.soa
                .store(Arc::new(self.signer.sign_soa(zone, self.serial)?));
        }
        Ok(())
    }

    /// Write the RRSIGs over a zone RRset, signing it first if needed.
    ///
    /// When no valid signature can be had, nothing is written and the caller must not
    /// send the answer (the failure is already counted and logged).
    pub fn write_rrsigs(
        &self,
        w: &mut Writer<'_>,
        zone: &Zone,
        set_idx: u32,
        ttl: u32,
        owner: OwnerRef<'_>,
    ) -> Result<(), SigningFailed> {
        let s = &*self.signer;
        let slot = &s.rrset_sigs[set_idx as usize];
        if let Some(g) = s.fresh(slot) {
            if let Some(sigs) = &*g {
                write_sigs(w, sigs, ttl, owner);
            }
            return Ok(());
        }
        // Missing or due for refresh: sign now; if that fails, a cached signature that
        // has not expired is still good to serve.
        let _ = s.sign_rrset_slot(zone, set_idx);
        let g = s.valid(slot).ok_or(SigningFailed)?;
        if let Some(sigs) = &*g {
            write_sigs(w, sigs, ttl, owner);
        }
        Ok(())
    }

    /// Write the RRSIGs over the SOA (made with the snapshot, refreshed in the background);
    /// fails once they have expired.
    pub fn write_soa_rrsigs(
        &self,
        w: &mut Writer<'_>,
        ttl: u32,
        owner: OwnerRef<'_>,
    ) -> Result<(), SigningFailed> {
        let g = self.soa.load();
        if g.expiration <= now() {
            let s = &*self.signer;
            s.note_failure(
                &s.origin,
                Rtype::SOA,
                &SignError("the SOA signatures expired and were not re-made".into()),
            );
            return Err(SigningFailed);
        }
        write_sigs(w, &g, ttl, owner);
        Ok(())
    }

    /// Whether a query at `node` for `qtype` is for a signer-made apex RRset.
    pub fn apex_extra(&self, zone: &Zone, node: u32, qtype: Rtype) -> Option<ApexExtra> {
        if zone.node(node).flags & APEX == 0 {
            return None;
        }
        match qtype {
            Rtype::DNSKEY => Some(ApexExtra::Dnskey),
            Rtype::NSEC3PARAM => Some(ApexExtra::Nsec3Param),
            _ => None,
        }
    }

    /// Write the DNSKEY or NSEC3PARAM RRset at the apex, with its RRSIGs when `dnssec`.
    pub fn write_apex_extra(
        &self,
        w: &mut Writer<'_>,
        _zone: &Zone,
        kind: ApexExtra,
        dnssec: bool,
        owner: OwnerRef<'_>,
    ) -> Result<(), SigningFailed> {
        let s = &*self.signer;
        let (slot, ttl, rtype) = match kind {
            ApexExtra::Dnskey => (&s.dnskey_sigs, s.policy.dnskey_ttl, Rtype::DNSKEY),
            ApexExtra::Nsec3Param => (&s.nsec3param_sigs, 0, Rtype::NSEC3PARAM),
        };
        let put = |w: &mut Writer<'_>, rdata: &[u8]| match owner {
            OwnerRef::At(o) => w.record_at(o, rtype, 1, ttl, rdata),
            OwnerRef::Name(n) => w.record(n, rtype, 1, ttl, rdata),
        };
        match kind {
            ApexExtra::Dnskey => {
                for k in &s.dnskey_rdatas {
                    put(w, k);
                }
            }
            ApexExtra::Nsec3Param => put(w, &s.nsec3param),
        }
        if !dnssec {
            return Ok(());
        }
        if s.fresh(slot).is_none() {
            let _ = s.apex_sigs(kind);
        }
        let g = s.valid(slot).ok_or(SigningFailed)?;
        if let Some(sigs) = &*g {
            write_sigs(w, sigs, ttl, owner);
        }
        Ok(())
    }

    fn chain_match(&self, h: &[u8; 20]) -> Option<u32> {
        let i = self.signer.chain.find(h)?;
        if !self.splice.is_empty() && self.splice.removed.contains(&i) {
            return None;
        }
        Some(i)
    }

    fn chain_cover(&self, h: &[u8; 20]) -> u32 {
        self.live(self.signer.chain.cover(h))
    }

    /// The entry that covers in the spliced chain, given the cover in the whole chain.
    fn live(&self, i: u32) -> u32 {
        if self.splice.is_empty() {
            i
        } else {
            self.splice.live_at_or_before(&self.signer.chain, i)
        }
    }

    /// Write NSEC3 record `i` of the chain (as spliced) with its RRSIGs.
    fn write_nsec3(&self, w: &mut Writer<'_>, i: u32) -> Result<(), SigningFailed> {
        let s = &*self.signer;
        let mut owner = [0u8; 300];
        let n = s.nsec3_owner(i, &mut owner);
        let ttl = s.neg_ttl;
        if !self.splice.is_empty() {
            if let Some(p) = self.splice.patched.get(&i) {
                let at = w.len();
                w.record(&owner[..n], Rtype::NSEC3, 1, ttl, &p.rdata);
                write_sigs(w, &p.sigs, ttl, owner_at(at, &owner[..n]));
                return Ok(());
            }
        }
        let len = s.chain.len() as u32;
        let next = (i + 1) % len;
        let mut rdata = [0u8; 600];
        let rl = {
            let mut v = RdataBuf {
                buf: &mut rdata,
                len: 0,
            };
            v.chain_rdata(&s.chain, i, next);
            v.len
        };
        let at = w.len();
        w.record(&owner[..n], Rtype::NSEC3, 1, ttl, &rdata[..rl]);
        let slot = &s.chain_sigs[i as usize];
        if s.fresh(slot).is_none() {
            if let Ok(sig) = s.sign_chain_slot(i, next) {
                slot.store(Some(sig));
            }
        }
        let g = s.valid(slot).ok_or(SigningFailed)?;
        if let Some(sigs) = &*g {
            write_sigs(w, sigs, ttl, owner_at(at, &owner[..n]));
        }
        Ok(())
    }

    /// Closest encloser proof (RFC 5155 §7.2.1): the encloser's NSEC3, the cover of the
    /// next closer name, and (for NXDOMAIN) the cover of the wildcard at the encloser.
    pub fn write_closest_encloser_proof(
        &self,
        w: &mut Writer<'_>,
        zone: &Zone,
        qname: &[u8],
        encloser_labels: usize,
        wildcard: bool,
        next_closer_node: Option<u32>,
    ) -> Result<(), SigningFailed> {
        let s = &*self.signer;
        w.section(Section::Authority);
        let qlabels = name::label_count(qname);
        let ce_match = if encloser_labels == zone.origin_labels() {
            Some(s.chain.apex)
        } else {
            self.chain_match(&s.hash_name(name::ancestor(qname, encloser_labels)))
        };
        let mut written = [u32::MAX; 3];
        if let Some(m) = ce_match {
            self.write_nsec3(w, m)?;
            written[0] = m;
        }
        if qlabels > encloser_labels {
            let nc = name::ancestor(qname, encloser_labels + 1);
            let c = match next_closer_node {
                Some(node) => self.live(s.base_cover_of_node(node, nc)),
                None => self.chain_cover(&s.hash_name(nc)),
            };
            if !written.contains(&c) {
                self.write_nsec3(w, c)?;
                written[1] = c;
            }
        }
        if wildcard {
            let wh = if encloser_labels == zone.origin_labels() {
                s.chain.apex_wildcard_hash
            } else {
                s.wildcard_hash(name::ancestor(qname, encloser_labels))
            };
            let c = self.chain_cover(&wh);
            if !written.contains(&c) {
                self.write_nsec3(w, c)?;
            }
        }
        Ok(())
    }

    /// NODATA proof (RFC 5155 §7.2.3, §7.2.4): the NSEC3 matching the name, or for a DS
    /// query at an insecure delegation, the opt-out closest provable encloser proof.
    pub fn write_nodata_proof(
        &self,
        w: &mut Writer<'_>,
        zone: &Zone,
        qname: &[u8],
        qlabels: usize,
        node: u32,
        _qtype: Rtype,
    ) -> Result<(), SigningFailed> {
        let s = &*self.signer;
        let f = zone.node(node).flags;
        let opted_out =
            f & DELEGATION != 0 && f & crate::zone::SECURE == 0 && s.chain.params.opt_out;
        if !opted_out {
            if let Some(m) = self.chain_match(&s.hash_name(qname)) {
                w.section(Section::Authority);
                return self.write_nsec3(w, m);
            }
        }
        // Not in the chain: an opt-out delegation (DS query), or a wildcard NODATA.
        let labels = name::label_count(qname).min(qlabels);
        if labels > zone.origin_labels() {
            let cached = opted_out.then_some(node);
            self.write_closest_encloser_proof(w, zone, qname, labels - 1, false, cached)?;
        }
        Ok(())
    }

    /// Wildcard NODATA proof (RFC 5155 §7.2.5): closest encloser, next closer cover, wildcard match.
    pub fn write_wildcard_nodata_proof(
        &self,
        w: &mut Writer<'_>,
        zone: &Zone,
        qname: &[u8],
        encloser_labels: usize,
    ) -> Result<(), SigningFailed> {
        self.write_closest_encloser_proof(w, zone, qname, encloser_labels, false, None)?;
        let s = &*self.signer;
        let wh = s.wildcard_hash(name::ancestor(qname, encloser_labels));
        if let Some(m) = self.chain_match(&wh) {
            self.write_nsec3(w, m)?;
        }
        Ok(())
    }

    /// Wildcard answer proof (RFC 5155 §7.2.6): the cover of the next closer name.
    pub fn write_wildcard_proof(
        &self,
        w: &mut Writer<'_>,
        _zone: &Zone,
        qname: &[u8],
        encloser_labels: usize,
    ) -> Result<(), SigningFailed> {
        let s = &*self.signer;
        let nc = name::ancestor(qname, encloser_labels + 1);
        let c = self.chain_cover(&s.hash_name(nc));
        w.section(Section::Authority);
        self.write_nsec3(w, c)
    }
}

/// A fixed buffer for building NSEC3 RDATA without allocation.
struct RdataBuf<'a> {
    buf: &'a mut [u8; 600],
    len: usize,
}

impl RdataBuf<'_> {
    fn put(&mut self, b: &[u8]) {
        let end = (self.len + b.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&b[..end - self.len]);
        self.len = end;
    }

    fn chain_rdata(&mut self, chain: &Chain, i: u32, next: u32) {
        chain.write_rdata(i, next, |b| self.put(b));
    }
}
