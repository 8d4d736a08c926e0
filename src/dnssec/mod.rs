//! Online DNSSEC: keys, the NSEC3 chain, signatures made once and cached, denial proofs.
//!
//! Owns everything a signed answer needs beyond the zone itself (RFC 4033–4035,
//! RFC 5155 NSEC3 with opt-out, RFC 6840 clarifications, RFC 9276 parameters):
//!
//! - [`key`]: key pairs held in `ring`, PKCS#8 files, BIND key import, DS;
//! - [`rrsig`]: the data to be signed and RRSIG RDATA;
//! - [`nsec3hash`]: NSEC3 owner hashing;
//! - [`chain`]: the sharded NSEC3 chain with one signature slot per record;
//! - [`sigs`]: signature sets and the slots every zone shard carries;
//! - [`signer`]: a key set and policy that makes (and verifies) signatures;
//! - this module: [`Dnssec`], the DNSSEC part of one zone version, with what
//!   the handler asks of it: the signatures of an RRset and the NSEC3 records
//!   of a denial proof (RFC 5155 §7.2), as positions in the chain.
//!
//! Signatures are made when data changes (by the publisher) or, right after
//! start, ahead of time by a background pass; a query that needs one the pass
//! has not reached yet makes it (and stores it). Delegation NS RRsets and glue
//! are never signed (RFC 4035 §2.2).

pub mod chain;
pub mod clock;
pub mod key;
pub mod lifecycle;
pub mod nsec3hash;
pub mod rrsig;
pub mod signer;
pub mod sigs;

use crate::name;
use crate::zone::{NodeRef, SetRef, Zone, DELEGATION, SECURE};
use chain::{Chain, ChainPos};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use signer::{canonical_rdata, now, tick, Policy, SignError, Signer, Signers, FAULT_SIGN_ENV};
pub use sigs::{ShardSigs, SigSet, Slot};

/// Apex RRsets that come from the signer rather than the zone file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApexExtra {
    /// The DNSKEY RRset.
    Dnskey,
    /// The NSEC3PARAM RRset.
    Nsec3Param,
}

/// Signatures over the signer-made apex RRsets of one version.
pub struct ApexSigs {
    /// Over the DNSKEY RRset.
    pub dnskey: Slot,
    /// Over the NSEC3PARAM RRset.
    pub nsec3param: Slot,
}

/// A signature the answer needs could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSignature;

/// A loaded signature set (no allocation, no lock).
pub type SigGuard = arc_swap::Guard<Option<Arc<SigSet>>>;

/// Up to four NSEC3 records of a denial proof, in the order they are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proof {
    list: [Option<ChainPos>; 4],
}

impl Proof {
    fn push(&mut self, p: ChainPos) {
        if self.list.contains(&Some(p)) {
            return;
        }
        if let Some(slot) = self.list.iter_mut().find(|s| s.is_none()) {
            *slot = Some(p);
        }
    }

    /// The records, in order.
    pub fn iter(&self) -> impl Iterator<Item = ChainPos> + '_ {
        self.list.iter().flatten().copied()
    }
}

/// The DNSSEC part of one zone version.
pub struct Dnssec {
    /// The key set and policy.
    pub signer: Arc<Signer>,
    /// The NSEC3 chain.
    pub chain: Arc<Chain>,
    /// Signatures over DNSKEY and NSEC3PARAM.
    pub apex: Arc<ApexSigs>,
    /// TTL of NSEC3 records: the zone's negative TTL (RFC 9077).
    pub nsec3_ttl: u32,
}

/// Whether a signature set is still usable at `now` (not expired).
fn usable(s: &SigSet, now: u32) -> bool {
    s.expiration > now
}

impl Dnssec {
    /// Which signer-made apex RRset a query for `qtype` at `node` asks for.
    pub fn apex_extra(&self, node: NodeRef<'_>, qtype: crate::wire::Rtype) -> Option<ApexExtra> {
        if node.flags() & crate::zone::APEX == 0 {
            return None;
        }
        match qtype {
            crate::wire::Rtype::DNSKEY => Some(ApexExtra::Dnskey),
            crate::wire::Rtype::NSEC3PARAM => Some(ApexExtra::Nsec3Param),
            _ => None,
        }
    }

    /// The NSEC3PARAM RDATA.
    pub fn nsec3param(&self) -> Vec<u8> {
        self.chain.params.param_rdata()
    }

    fn load_or_sign(
        &self,
        slot: &Slot,
        sign: impl FnOnce() -> Result<SigSet, SignError>,
    ) -> Result<SigGuard, NoSignature> {
        let g = slot.load();
        if let Some(s) = &*g {
            if usable(s, now()) {
                return Ok(g);
            }
        }
        drop(g);
        match sign() {
            Ok(s) => {
                slot.store(Some(Arc::new(s)));
                Ok(slot.load())
            }
            Err(e) => {
                report_failure(&e);
                Err(NoSignature)
            }
        }
    }

    /// The signatures over a zone RRset (made now if the start-up pass has not made them yet).
    pub fn set_sigs(&self, node: NodeRef<'_>, set: SetRef<'_>) -> Result<SigGuard, NoSignature> {
        let Some(sigs) = set.sh.sigs.as_ref() else {
            return Err(NoSignature);
        };
        self.load_or_sign(sigs.slot(set.idx), || self.signer.sign_set(node, set))
    }

    /// Start loading what writing a proof reads first: its records and their signature
    /// slots (a hint only; it lets the misses overlap the writing of what comes before).
    pub fn prefetch_proof(&self, p: &Proof) {
        for pos in p.iter() {
            self.chain.prefetch(pos);
        }
    }

    /// Start loading the signature slot of a zone RRset (a hint only).
    pub fn prefetch_set(&self, set: SetRef<'_>) {
        if let Some(sigs) = set.sh.sigs.as_ref() {
            crate::hint::prefetch(sigs.slot(set.idx));
        }
    }

    /// The signatures over an NSEC3 record.
    pub fn nsec3_sigs(&self, pos: ChainPos) -> Result<SigGuard, NoSignature> {
        self.load_or_sign(self.chain.slot(pos), || {
            self.signer.sign_nsec3(&self.chain, pos, self.nsec3_ttl)
        })
    }

    /// The signatures over DNSKEY or NSEC3PARAM.
    pub fn apex_sigs(&self, kind: ApexExtra) -> Result<SigGuard, NoSignature> {
        match kind {
            ApexExtra::Dnskey => self.load_or_sign(&self.apex.dnskey, || self.signer.sign_dnskey()),
            ApexExtra::Nsec3Param => {
                self.load_or_sign(&self.apex.nsec3param, || self.signer.sign_nsec3param())
            }
        }
    }

    /// Lowercase NSEC3 hash of a wire name (any case), without allocation.
    pub fn hash_name(&self, wire: &[u8]) -> [u8; 20] {
        let mut buf = [0u8; 256];
        let n = wire.len().min(255);
        buf[..n].copy_from_slice(&wire[..n]);
        name::lowercase_in_place(&mut buf[..n]);
        self.chain.params.hash(&buf[..n])
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

    /// The record covering a delegation's hash, through the node's cache.
    fn node_cover(&self, node: NodeRef<'_>, name: &[u8]) -> ChainPos {
        let Some(sigs) = node.sh.sigs.as_ref() else {
            return self.chain.cover(&self.hash_name(name));
        };
        let cache = sigs.cover(node.idx);
        let v = cache.load(Ordering::Relaxed);
        let version = self.chain.version as u64;
        if v >> 32 == version && v & 0xFFFF_FFFF != 0 {
            return ChainPos::unpack(((v & 0xFFFF_FFFF) - 1) as u32);
        }
        let c = self.chain.cover(&self.hash_name(name));
        cache.store((version << 32) | (c.pack() as u64 + 1), Ordering::Relaxed);
        c
    }

    /// Closest encloser proof (RFC 5155 §7.2.1): the encloser's NSEC3, the cover of
    /// the next closer name, and (for NXDOMAIN) the cover of the wildcard at the
    /// encloser. `delegation`: the next closer name is this insecure delegation
    /// (its cover is cached per node).
    pub fn closest_encloser_proof(
        &self,
        zone: &Zone,
        qname: &[u8],
        encloser_labels: usize,
        wildcard: bool,
        delegation: Option<NodeRef<'_>>,
    ) -> Proof {
        let c = &self.chain;
        let mut p = Proof::default();
        let qlabels = name::label_count(qname);
        let at_apex = encloser_labels == zone.origin_labels();
        let ce = if at_apex {
            c.apex_pos
        } else {
            c.find(&self.hash_name(name::ancestor(qname, encloser_labels)))
        };
        if let Some(m) = ce {
            p.push(m);
        }
        if qlabels > encloser_labels {
            let nc = name::ancestor(qname, encloser_labels + 1);
            let cover = match delegation {
                Some(node) => self.node_cover(node, nc),
                None => c.cover(&self.hash_name(nc)),
            };
            p.push(cover);
        }
        if wildcard {
            let cover = match c.apex_wildcard_cover {
                Some(pos) if at_apex => pos,
                _ => c.cover(&self.wildcard_hash(name::ancestor(qname, encloser_labels))),
            };
            p.push(cover);
        }
        p
    }

    /// NODATA proof (RFC 5155 §7.2.3, §7.2.4): the NSEC3 matching the name, or for a DS
    /// query at an insecure delegation, the opt-out closest provable encloser proof.
    pub fn nodata_proof(
        &self,
        zone: &Zone,
        qname: &[u8],
        qlabels: usize,
        node: NodeRef<'_>,
    ) -> Proof {
        let f = node.flags();
        let opted_out = f & DELEGATION != 0 && f & SECURE == 0 && self.chain.params.opt_out;
        if !opted_out {
            if let Some(m) = self.chain.find(&self.hash_name(qname)) {
                let mut p = Proof::default();
                p.push(m);
                return p;
            }
        }
        // Not in the chain: an opt-out delegation (DS query), or a wildcard NODATA.
        let labels = name::label_count(qname).min(qlabels);
        if labels > zone.origin_labels() {
            let cached = opted_out.then_some(node);
            return self.closest_encloser_proof(zone, qname, labels - 1, false, cached);
        }
        Proof::default()
    }

    /// Wildcard NODATA proof (RFC 5155 §7.2.5): closest encloser, next closer cover, wildcard match.
    pub fn wildcard_nodata_proof(
        &self,
        zone: &Zone,
        qname: &[u8],
        encloser_labels: usize,
    ) -> Proof {
        let mut p = self.closest_encloser_proof(zone, qname, encloser_labels, false, None);
        let wh = self.wildcard_hash(name::ancestor(qname, encloser_labels));
        if let Some(m) = self.chain.find(&wh) {
            p.push(m);
        }
        p
    }

    /// Wildcard answer proof (RFC 5155 §7.2.6): the cover of the next closer name.
    pub fn wildcard_proof(&self, qname: &[u8], encloser_labels: usize) -> Proof {
        let nc = name::ancestor(qname, encloser_labels + 1);
        let mut p = Proof::default();
        p.push(self.chain.cover(&self.hash_name(nc)));
        p
    }

    /// Referral to an insecure delegation (RFC 5155 §7.2.7): the closest provable
    /// encloser (the delegation's parent, always in the chain) and the opt-out
    /// cover of the delegation's name.
    pub fn insecure_referral_proof(
        &self,
        zone: &Zone,
        delegation_name: &[u8],
        labels: usize,
        node: NodeRef<'_>,
    ) -> Proof {
        self.closest_encloser_proof(zone, delegation_name, labels - 1, false, Some(node))
    }
}

static LAST_FAILURE_LOG: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Log a signing failure, at most once every ten seconds (shared by the query path
/// and the background passes, so a broken key cannot flood the log).
pub fn report_failure(e: &SignError) {
    let now = now();
    let last = LAST_FAILURE_LOG.load(Ordering::Relaxed);
    if now >= last.saturating_add(10)
        && LAST_FAILURE_LOG
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!("DNSSEC: {e}; answering SERVFAIL to DO=1 queries that need it");
    }
}
