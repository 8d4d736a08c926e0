//! The signer: a key set and a signing policy, and the making of RRSIGs.
//!
//! DNSKEY is signed by the KSKs (or CSKs), everything else by the ZSKs
//! (RFC 4035 §2.2, RFC 6781 §3.1). Every new signature is verified against the
//! key's public half before it is handed out ([`super::rrsig::sign_rrset`]).
//! Inception is back-dated and expiry spread per owner so that refreshes do
//! not bunch up. A signer never changes: another key set is another signer.

use super::chain::{Chain, ChainPos};
use super::key::SigningKey;
use super::rrsig;
use super::sigs::SigSet;
use crate::name;
use crate::wire::Rtype;
use crate::zone::{NodeRef, SetRef};
use std::sync::atomic::{AtomicU64, Ordering};

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
    pub nsec3: super::chain::Nsec3Params,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            validity: 14 * 86400,
            inception_offset: 3600,
            refresh: 4 * 86400,
            jitter: 86400,
            dnskey_ttl: 3600,
            nsec3: super::chain::Nsec3Params::default(),
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

pub use super::clock::{now, tick};

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

/// Which keys sign an RRset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signers {
    /// The KSKs: the DNSKEY RRset.
    Ksk,
    /// The ZSKs: every other RRset (NSEC3 and NSEC3PARAM included).
    Zsk,
    /// The KSKs and the ZSKs: CDS and CDNSKEY. The KSK signature is the one
    /// RFC 7344 §4.1 asks for (a key the parent's DS set names); the ZSK's keeps
    /// them valid for a resolver holding the DNSKEY RRset from before a
    /// double-DS swap of the KSKs (RFC 7583 §3.3.1), since the ZSK is in both
    /// sets while no KSK is.
    Both,
}

impl Signers {
    /// The keys that sign an RRset of this type.
    pub fn of(rtype: Rtype) -> Signers {
        match rtype {
            Rtype::DNSKEY => Signers::Ksk,
            Rtype::CDS | Rtype::CDNSKEY => Signers::Both,
            _ => Signers::Zsk,
        }
    }
}

/// A key set and policy, able to sign.
///
/// The DNSKEY RRset it serves and the keys it signs with are apart: during a
/// rollover a key may be published without signing (a pre-published ZSK, a
/// retired one) or sign without being published (an algorithm rollover's
/// pre- and post-active keys, RFC 6781 §4.1.4). Every signing key that is
/// published has its exact DNSKEY in the served set and no other served key
/// shares its tag and algorithm; its new signatures are verified against that
/// served DNSKEY before they are used.
pub struct Signer {
    policy: Policy,
    ksks: Vec<SigningKey>,
    zsks: Vec<SigningKey>,
    /// The keys of `ksks`, then those of `zsks` that are not KSKs too: they sign
    /// CDS and CDNSKEY (see [`Signers::Both`]).
    cds_keys: Vec<SigningKey>,
    /// Per key of `ksks`, `zsks` and `cds_keys`: the served DNSKEY it verifies
    /// against (index), if published.
    served_ksk: Vec<Option<usize>>,
    served_zsk: Vec<Option<usize>>,
    served_cds: Vec<Option<usize>>,
    origin: Vec<u8>,
    dnskey_rdatas: Vec<Vec<u8>>,
    /// Signatures made (all paths).
    pub made: AtomicU64,
    /// Signatures that could not be made.
    pub failures: AtomicU64,
    /// Fault injection for tests: RRsets at this owner (lowercase wire) cannot be signed.
    fault: Option<Vec<u8>>,
    /// Where the keys' files are (directory, zone name as text), for the next key set.
    key_dir: Option<(std::path::PathBuf, String)>,
    /// The key states this signer was made from, when the key manager made it.
    keyset: Option<super::lifecycle::KeySet>,
}

impl Signer {
    /// A signer for a zone origin from its active keys: every key is published,
    /// keys with DNSKEY flags 257 sign the DNSKEY RRset, the others the rest
    /// (a lone KSK signs everything).
    pub fn new(origin: &[u8], keys: Vec<SigningKey>, policy: Policy) -> Result<Signer, SignError> {
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
        let published: Vec<Vec<u8>> = ksks
            .iter()
            .chain(zsks.iter())
            .map(|k| k.dnskey_rdata().to_vec())
            .collect();
        Signer::with_roles(origin, published, ksks, zsks, policy)
    }

    /// A signer serving the DNSKEY RRset `published`, signing DNSKEY (and CDS,
    /// CDNSKEY) with `ksks` and every other RRset with `zsks`. Refused when
    /// validators could not tell two keys apart, when a signing key's tag
    /// collides with another served key, or when the served set could leave an
    /// RRset without a valid chain (RFC 4035 §2.2: for every algorithm of the
    /// DNSKEY RRset, a published key of that algorithm signs DNSKEY and one signs
    /// the rest).
    pub fn with_roles(
        origin: &[u8],
        mut published: Vec<Vec<u8>>,
        ksks: Vec<SigningKey>,
        zsks: Vec<SigningKey>,
        policy: Policy,
    ) -> Result<Signer, SignError> {
        published.sort();
        published.dedup();
        let tag_alg = |d: &[u8]| (super::key::key_tag(d), d.get(3).copied().unwrap_or(0));
        let mut tags: Vec<(u16, u8)> = published.iter().map(|d| tag_alg(d)).collect();
        tags.sort_unstable();
        if let Some(w) = tags.windows(2).find(|w| w[0] == w[1]) {
            return Err(SignError(format!(
                "two published keys share key tag {} and algorithm {}: validators could not tell them apart",
                w[0].0, w[0].1
            )));
        }
        let served = |k: &SigningKey| -> Result<Option<usize>, SignError> {
            let mine = k.dnskey_rdata();
            match published.iter().position(|d| d.as_slice() == mine) {
                Some(i) => Ok(Some(i)),
                None if published.iter().any(|d| tag_alg(d) == tag_alg(mine)) => {
                    Err(SignError(format!(
                        "signing key {} (algorithm {}) has the key tag of another published key",
                        k.key_tag(),
                        k.algorithm().number()
                    )))
                }
                None => Ok(None),
            }
        };
        let served_ksk = ksks.iter().map(served).collect::<Result<Vec<_>, _>>()?;
        let served_zsk = zsks.iter().map(served).collect::<Result<Vec<_>, _>>()?;
        let mut signing: Vec<(u16, u8, &[u8])> = ksks
            .iter()
            .chain(zsks.iter())
            .map(|k| (k.key_tag(), k.algorithm().number(), k.dnskey_rdata()))
            .collect();
        signing.sort_unstable();
        signing.dedup();
        if let Some(w) = signing
            .windows(2)
            .find(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
        {
            return Err(SignError(format!(
                "two signing keys share key tag {} and algorithm {}",
                w[0].0, w[0].1
            )));
        }
        let algs: std::collections::BTreeSet<u8> =
            published.iter().filter_map(|d| d.get(3).copied()).collect();
        for alg in algs {
            let by = |keys: &[SigningKey], served: &[Option<usize>]| {
                keys.iter()
                    .zip(served)
                    .any(|(k, s)| s.is_some() && k.algorithm().number() == alg)
            };
            if !by(&ksks, &served_ksk) {
                return Err(SignError(format!(
                    "no published key of algorithm {alg} signs the DNSKEY RRset:                      validators would find no valid chain for it"
                )));
            }
            if !by(&zsks, &served_zsk) {
                return Err(SignError(format!(
                    "no published key of algorithm {alg} signs the zone's RRsets:                      validators would find no valid chain for them (RFC 4035 §2.2)"
                )));
            }
        }
        if published.is_empty() {
            return Err(SignError("no DNSKEY would be published".into()));
        }
        let mut cds: Vec<(SigningKey, Option<usize>)> = ksks
            .iter()
            .cloned()
            .zip(served_ksk.iter().copied())
            .collect();
        for (k, at) in zsks.iter().zip(&served_zsk) {
            if !cds
                .iter()
                .any(|(c, _)| c.dnskey_rdata() == k.dnskey_rdata())
            {
                cds.push((k.clone(), *at));
            }
        }
        let (cds_keys, served_cds) = cds.into_iter().unzip();
        Ok(Signer {
            policy,
            ksks,
            zsks,
            cds_keys,
            served_ksk,
            served_zsk,
            served_cds,
            origin: name::to_lowercase(origin),
            dnskey_rdatas: published,
            made: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fault: None,
            key_dir: None,
            keyset: None,
        })
    }

    /// Remember where the keys' files are (for the next key set of a rollover).
    pub fn with_key_dir(mut self, dir: &std::path::Path, zone_text: &str) -> Signer {
        self.key_dir = Some((dir.to_path_buf(), zone_text.to_string()));
        self
    }

    /// Remember the key states this signer was made from.
    pub fn with_keyset(mut self, set: super::lifecycle::KeySet) -> Signer {
        self.keyset = Some(set);
        self
    }

    /// The key directory and zone name the keys came from, if known.
    pub fn key_dir(&self) -> Option<(&std::path::Path, &str)> {
        self.key_dir
            .as_ref()
            .map(|(d, z)| (d.as_path(), z.as_str()))
    }

    /// The key states this signer was made from, if the key manager made it.
    pub fn keyset(&self) -> Option<&super::lifecycle::KeySet> {
        self.keyset.as_ref()
    }

    /// The fault-injection owner, if any (carried over to the next key set).
    pub fn fault(&self) -> Option<&[u8]> {
        self.fault.as_deref()
    }

    /// Whether an RRset of this type is signed by the KSKs (DNSKEY, CDS, CDNSKEY).
    pub fn signed_by_ksk(rtype: Rtype) -> bool {
        Signers::of(rtype) != Signers::Zsk
    }

    /// The keys that sign an RRset of this type.
    pub fn keys_for(&self, rtype: Rtype) -> &[SigningKey] {
        self.keys_of(Signers::of(rtype)).0
    }

    fn keys_of(&self, which: Signers) -> (&[SigningKey], &[Option<usize>]) {
        match which {
            Signers::Ksk => (&self.ksks, &self.served_ksk),
            Signers::Zsk => (&self.zsks, &self.served_zsk),
            Signers::Both => (&self.cds_keys, &self.served_cds),
        }
    }

    /// Make signing fail for every RRset at `owner` (wire form): a fault-injection
    /// seam for tests, fed from `BELFRY_FAULT_SIGN` (see [`fault_from_env`]).
    pub fn inject_sign_fault(&mut self, owner: Option<&[u8]>) {
        self.fault = owner.map(name::to_lowercase);
    }

    /// Signatures that could not be made so far.
    pub fn signing_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
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

    /// The ZSKs (the KSKs when there is no separate ZSK).
    pub fn zsks(&self) -> &[SigningKey] {
        &self.zsks
    }

    /// The zone origin (lowercase wire form).
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }

    /// Sign an RRset given as canonical RDATAs; every signature is verified first.
    pub fn sign(
        &self,
        owner_lower: &[u8],
        rtype: Rtype,
        ttl: u32,
        mut rdatas: Vec<Vec<u8>>,
        which: Signers,
    ) -> Result<SigSet, SignError> {
        if self.fault.as_deref() == Some(owner_lower) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(SignError(format!(
                "cannot sign {} {}: fault injected (BELFRY_FAULT_SIGN)",
                name::to_text(owner_lower),
                crate::zone::master::rtype_to_string(rtype.0)
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
        let (keys, served) = self.keys_of(which);
        let labels = rrsig::labels_count(owner_lower);
        let mut data = Vec::with_capacity(keys.len() * 120);
        let mut scratch = Vec::with_capacity(512);
        for (k, at) in keys.iter().zip(served) {
            // Verified against the DNSKEY as served; a key that signs unpublished
            // (an algorithm rollover) against its own public key.
            let verify_with = match at {
                Some(i) => self.dnskey_rdatas[*i].as_slice(),
                None => k.dnskey_rdata(),
            };
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
            let rd = rrsig::sign_rrset_against(
                k,
                verify_with,
                &fields,
                owner_lower,
                1,
                &refs,
                &mut scratch,
            )
            .map_err(|e| {
                self.failures.fetch_add(1, Ordering::Relaxed);
                SignError(format!(
                    "cannot sign {} {}: {e}",
                    name::to_text(owner_lower),
                    crate::zone::master::rtype_to_string(rtype.0)
                ))
            })?;
            data.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            data.extend_from_slice(&rd);
        }
        self.made.fetch_add(1, Ordering::Relaxed);
        Ok(SigSet::new(expiration, &data))
    }

    /// Sign a zone RRset.
    pub fn sign_set(&self, node: NodeRef<'_>, set: SetRef<'_>) -> Result<SigSet, SignError> {
        let rtype = set.rtype();
        let rdatas = set.rdatas().map(|r| canonical_rdata(rtype, r)).collect();
        self.sign(&node.name(), rtype, set.ttl(), rdatas, Signers::of(rtype))
    }

    /// The owner name of an NSEC3 record: `<base32hex(hash)>.<origin>`, into `out`.
    pub fn nsec3_owner(origin: &[u8], hash: &[u8; 20], out: &mut [u8; 300]) -> usize {
        let b32 = super::nsec3hash::base32hex_encode(hash);
        out[0] = 32;
        out[1..33].copy_from_slice(&b32);
        let n = 33 + origin.len().min(255);
        out[33..n].copy_from_slice(&origin[..n - 33]);
        n
    }

    /// Sign an NSEC3 record of a chain.
    pub fn sign_nsec3(&self, chain: &Chain, pos: ChainPos, ttl: u32) -> Result<SigSet, SignError> {
        let mut owner = [0u8; 300];
        let n = Self::nsec3_owner(&self.origin, chain.hash(pos), &mut owner);
        let mut rdata = Vec::with_capacity(64);
        chain.rdata(pos, &mut rdata);
        self.sign(&owner[..n], Rtype::NSEC3, ttl, vec![rdata], Signers::Zsk)
    }

    /// Sign the DNSKEY RRset (with the KSKs).
    pub fn sign_dnskey(&self) -> Result<SigSet, SignError> {
        self.sign(
            &self.origin,
            Rtype::DNSKEY,
            self.policy.dnskey_ttl,
            self.dnskey_rdatas.clone(),
            Signers::Ksk,
        )
    }

    /// Sign the NSEC3PARAM RRset.
    pub fn sign_nsec3param(&self) -> Result<SigSet, SignError> {
        self.sign(
            &self.origin,
            Rtype::NSEC3PARAM,
            0,
            vec![self.policy.nsec3.param_rdata()],
            Signers::Zsk,
        )
    }
}

/// The environment variable of the signing fault seam.
pub const FAULT_SIGN_ENV: &str = "BELFRY_FAULT_SIGN";

/// The owner named by `BELFRY_FAULT_SIGN` (fault injection for tests), if set.
///
/// Read once at start; belfry logs a warning when it is set, because every
/// DO=1 answer that needs a signature at that owner is then SERVFAIL.
pub fn fault_from_env() -> Option<Vec<u8>> {
    let v = std::env::var(FAULT_SIGN_ENV).ok()?;
    let w = name::from_text(v.trim(), &[0]).ok()?;
    Some(name::to_lowercase(&w))
}
