//! The difference between two versions of the signed zone, as resource records.
//!
//! What a secondary must delete and add to go from one version to the next
//! (RFC 1995 §4): every RRset whose records changed, every RRSIG that was
//! re-made, every NSEC3 record that appeared, went or changed, DNSKEY and
//! NSEC3PARAM. Shards and chain shards shared by both versions are skipped
//! without a look (one pointer comparison each), so a one-name change costs a
//! walk of one or two shards. The SOA is kept apart: an IXFR brackets each
//! difference with the old and the new SOA.

use crate::dnssec::{Dnssec, SigSet, Slot};
use crate::handler::Snapshot;
use crate::wire::Rtype;
use crate::zone::{self, Shard, ZShard};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One resource record of the signed zone (class IN), owner in lowercase wire form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rr {
    /// Owner name (lowercase, uncompressed wire form).
    pub owner: Vec<u8>,
    /// Type.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// RDATA (uncompressed).
    pub rdata: Vec<u8>,
}

/// What changed from one version to the next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The SOA of the old version.
    pub old_soa: Option<Rr>,
    /// Records to delete (SOA excluded).
    pub removed: Vec<Rr>,
    /// The SOA of the new version.
    pub new_soa: Option<Rr>,
    /// Records to add (SOA excluded).
    pub added: Vec<Rr>,
}

impl Diff {
    /// Number of records (both SOAs counted).
    pub fn len(&self) -> usize {
        self.removed.len() + self.added.len() + 2
    }

    /// Whether nothing but the SOA changed.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

fn sigs_of(slot: Option<&Slot>) -> Option<Arc<SigSet>> {
    slot.and_then(|s| s.load_full())
}

fn push_sigs(out: &mut Vec<Rr>, owner: &[u8], ttl: u32, sigs: &Option<Arc<SigSet>>) {
    if let Some(s) = sigs {
        for rd in s.rdatas() {
            out.push(Rr {
                owner: owner.to_vec(),
                rtype: Rtype::RRSIG.0,
                ttl,
                rdata: rd.to_vec(),
            });
        }
    }
}

fn same_sigs(a: &Option<Arc<SigSet>>, b: &Option<Arc<SigSet>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y) || x.bytes() == y.bytes(),
        _ => false,
    }
}

/// One RRset of a shard version with its signatures.
struct SetView<'a> {
    ttl: u32,
    rdatas: Vec<&'a [u8]>,
    sigs: Option<Arc<SigSet>>,
}

fn sets_of<'a>(zs: &'a ZShard, node: u32) -> BTreeMap<u16, SetView<'a>> {
    let sh: &Shard = &zs.data;
    let mut m = BTreeMap::new();
    let start = sh.rrset_start(node);
    for (k, s) in sh.rrsets(node).iter().enumerate() {
        let idx = start + k as u32;
        let signable = crate::dnssec::sigs::signable(sh.node(node).flags, s.rtype);
        m.insert(
            s.rtype.0,
            SetView {
                ttl: s.ttl,
                rdatas: sh.rdatas(s).collect(),
                sigs: if signable {
                    sigs_of(zs.sigs.as_ref().map(|g| g.slot(idx)))
                } else {
                    None
                },
            },
        );
    }
    m
}

/// Whether a name is alike in two versions of its shard: the same RRsets and the
/// same signatures (a carried-over signature is the same allocation). Most names
/// of a rebuilt shard are, and are passed over without building their views.
fn same_node(old: &ZShard, i: u32, new: &ZShard, j: u32) -> bool {
    let (o, n) = (&*old.data, &*new.data);
    if o.node(i).flags != n.node(j).flags || !o.same_rrsets(i, n, j) {
        return false;
    }
    let sig = |zs: &ZShard, idx: u32| {
        zs.sigs
            .as_ref()
            .and_then(|g| g.slot(idx).load_full())
            .map(|s| Arc::as_ptr(&s))
    };
    let (sa, sb) = (o.rrset_start(i), n.rrset_start(j));
    (0..o.rrsets(i).len() as u32).all(|k| sig(old, sa + k) == sig(new, sb + k))
}

fn diff_shard(old: &ZShard, new: &ZShard, d: &mut Diff) {
    let (o, n) = (&*old.data, &*new.data);
    let (mut i, mut j) = (0u32, 0u32);
    let (on, nn) = (o.node_count() as u32, n.node_count() as u32);
    while i < on || j < nn {
        let ok = (i < on).then(|| o.node_key(i));
        let nk = (j < nn).then(|| n.node_key(j));
        let (key, a, b) = match (ok, nk) {
            (Some(x), Some(y)) if x == y && same_node(old, i, new, j) => {
                i += 1;
                j += 1;
                continue;
            }
            (Some(x), Some(y)) if x == y => {
                let r = (x, sets_of(old, i), sets_of(new, j));
                i += 1;
                j += 1;
                r
            }
            (Some(x), Some(y)) if x < y => {
                let r = (x, sets_of(old, i), BTreeMap::new());
                i += 1;
                r
            }
            (Some(x), None) => {
                let r = (x, sets_of(old, i), BTreeMap::new());
                i += 1;
                r
            }
            (_, Some(y)) => {
                let r = (y, BTreeMap::new(), sets_of(new, j));
                j += 1;
                r
            }
            (None, None) => break,
        };
        let owner = zone::key_to_wire(key);
        let types: std::collections::BTreeSet<u16> = a.keys().chain(b.keys()).copied().collect();
        for t in types {
            let (x, y) = (a.get(&t), b.get(&t));
            if t == Rtype::SOA.0 {
                if let Some(x) = x {
                    d.old_soa = Some(Rr {
                        owner: owner.clone(),
                        rtype: t,
                        ttl: x.ttl,
                        rdata: x.rdatas[0].to_vec(),
                    });
                }
                if let Some(y) = y {
                    d.new_soa = Some(Rr {
                        owner: owner.clone(),
                        rtype: t,
                        ttl: y.ttl,
                        rdata: y.rdatas[0].to_vec(),
                    });
                }
            }
            let data_same = match (x, y) {
                (Some(x), Some(y)) => x.ttl == y.ttl && x.rdatas == y.rdatas,
                (None, None) => true,
                _ => false,
            };
            if !data_same && t != Rtype::SOA.0 {
                if let Some(x) = x {
                    for r in &x.rdatas {
                        d.removed.push(Rr {
                            owner: owner.clone(),
                            rtype: t,
                            ttl: x.ttl,
                            rdata: r.to_vec(),
                        });
                    }
                }
                if let Some(y) = y {
                    for r in &y.rdatas {
                        d.added.push(Rr {
                            owner: owner.clone(),
                            rtype: t,
                            ttl: y.ttl,
                            rdata: r.to_vec(),
                        });
                    }
                }
            }
            let none = None;
            let xs = x.map(|v| &v.sigs).unwrap_or(&none);
            let ys = y.map(|v| &v.sigs).unwrap_or(&none);
            if !data_same || !same_sigs(xs, ys) {
                if let Some(x) = x {
                    push_sigs(&mut d.removed, &owner, x.ttl, xs);
                }
                if let Some(y) = y {
                    push_sigs(&mut d.added, &owner, y.ttl, ys);
                }
            }
        }
    }
}

fn nsec3_rrs(
    d: &Dnssec,
    origin: &[u8],
    shard: usize,
) -> BTreeMap<[u8; 20], (Rr, Option<Arc<SigSet>>)> {
    let mut m = BTreeMap::new();
    let mut owner = [0u8; 300];
    for pos in d.chain.positions_in(shard) {
        let n = crate::dnssec::Signer::nsec3_owner(origin, d.chain.hash(pos), &mut owner);
        let mut rdata = Vec::with_capacity(64);
        d.chain.rdata(pos, &mut rdata);
        m.insert(
            *d.chain.hash(pos),
            (
                Rr {
                    owner: owner[..n].to_vec(),
                    rtype: Rtype::NSEC3.0,
                    ttl: d.nsec3_ttl,
                    rdata,
                },
                d.chain.slot(pos).load_full(),
            ),
        );
    }
    m
}

fn diff_apex_extras(o: &Dnssec, n: &Dnssec, origin: &[u8], d: &mut Diff) {
    let (ok, nk) = (o.signer.dnskeys(), n.signer.dnskeys());
    let (ot, nt) = (o.signer.policy().dnskey_ttl, n.signer.policy().dnskey_ttl);
    let os = o.apex.dnskey.load_full();
    let ns = n.apex.dnskey.load_full();
    let rr = |ttl: u32, t: Rtype, rd: &[u8]| Rr {
        owner: origin.to_vec(),
        rtype: t.0,
        ttl,
        rdata: rd.to_vec(),
    };
    let keys_same = ok == nk && ot == nt;
    if !keys_same {
        d.removed
            .extend(ok.iter().map(|k| rr(ot, Rtype::DNSKEY, k)));
        d.added.extend(nk.iter().map(|k| rr(nt, Rtype::DNSKEY, k)));
    }
    if !keys_same || !same_sigs(&os, &ns) {
        push_sigs(&mut d.removed, origin, ot, &os);
        push_sigs(&mut d.added, origin, nt, &ns);
    }
    let (op, np) = (o.nsec3param(), n.nsec3param());
    let ops = o.apex.nsec3param.load_full();
    let nps = n.apex.nsec3param.load_full();
    if op != np {
        d.removed.push(rr(0, Rtype::NSEC3PARAM, &op));
        d.added.push(rr(0, Rtype::NSEC3PARAM, &np));
    }
    if op != np || !same_sigs(&ops, &nps) {
        push_sigs(&mut d.removed, origin, 0, &ops);
        push_sigs(&mut d.added, origin, 0, &nps);
    }
}

/// Only the signatures of a shard changed (same data): compare slot by slot.
fn diff_sigs(old: &ZShard, new: &ZShard, d: &mut Diff) {
    let (Some(os), Some(ns)) = (old.sigs.as_ref(), new.sigs.as_ref()) else {
        return;
    };
    let sh = &*new.data;
    for (node, set) in sh.node_rrsets() {
        let (a, b) = (os.slot(set).load_full(), ns.slot(set).load_full());
        if same_sigs(&a, &b) {
            continue;
        }
        let owner = zone::key_to_wire(sh.node_key(node));
        let ttl = sh.rrset(set).ttl;
        push_sigs(&mut d.removed, &owner, ttl, &a);
        push_sigs(&mut d.added, &owner, ttl, &b);
    }
}

fn diff_zshard(old: &Arc<ZShard>, new: &Arc<ZShard>, d: &mut Diff) {
    if Arc::ptr_eq(old, new) {
        return;
    }
    if Arc::ptr_eq(&old.data, &new.data) {
        diff_sigs(old, new, d);
    } else {
        diff_shard(old, new, d);
    }
}

/// The difference from `old` to `new` (two versions of the same zone).
pub fn diff(old: &Snapshot, new: &Snapshot) -> Diff {
    let mut d = Diff::default();
    let (oz, nz) = (&*old.zone, &*new.zone);
    diff_zshard(oz.apex_shard(), nz.apex_shard(), &mut d);
    for i in 0..zone::SHARDS {
        diff_zshard(oz.shard(i), nz.shard(i), &mut d);
    }
    if d.old_soa.is_none() {
        let soa = oz.soa();
        d.old_soa = Some(Rr {
            owner: oz.origin().to_vec(),
            rtype: Rtype::SOA.0,
            ttl: soa.ttl(),
            rdata: soa.rr(0).to_vec(),
        });
    }
    if d.new_soa.is_none() {
        let soa = nz.soa();
        d.new_soa = Some(Rr {
            owner: nz.origin().to_vec(),
            rtype: Rtype::SOA.0,
            ttl: soa.ttl(),
            rdata: soa.rr(0).to_vec(),
        });
    }
    if let (Some(o), Some(n)) = (old.dnssec.as_deref(), new.dnssec.as_deref()) {
        let origin = nz.origin();
        if !Arc::ptr_eq(&o.chain, &n.chain) || o.nsec3_ttl != n.nsec3_ttl {
            for s in 0..crate::dnssec::chain::CHAIN_SHARDS {
                if o.chain.same_shard(&n.chain, s) && o.nsec3_ttl == n.nsec3_ttl {
                    continue;
                }
                let a = nsec3_rrs(o, origin, s);
                let b = nsec3_rrs(n, origin, s);
                for (h, (rr, sig)) in &a {
                    match b.get(h) {
                        Some((rr2, sig2)) if rr2 == rr => {
                            if !same_sigs(sig, sig2) {
                                push_sigs(&mut d.removed, &rr.owner, rr.ttl, sig);
                                push_sigs(&mut d.added, &rr2.owner, rr2.ttl, sig2);
                            }
                        }
                        _ => {
                            d.removed.push(rr.clone());
                            push_sigs(&mut d.removed, &rr.owner, rr.ttl, sig);
                        }
                    }
                }
                for (h, (rr, sig)) in &b {
                    match a.get(h) {
                        Some((rr1, _)) if rr1 == rr => {}
                        _ => {
                            d.added.push(rr.clone());
                            push_sigs(&mut d.added, &rr.owner, rr.ttl, sig);
                        }
                    }
                }
            }
        }
        if !Arc::ptr_eq(&o.apex, &n.apex) || !Arc::ptr_eq(&o.signer, &n.signer) {
            diff_apex_extras(o, n, origin, &mut d);
        }
    }
    d
}

/// Every record of a version (SOA first), for AXFR and for tests.
pub fn all_records(snap: &Snapshot) -> Vec<Rr> {
    let mut out = Vec::new();
    let zone = &*snap.zone;
    let mut push_shard = |zs: &ZShard| {
        let sh = &*zs.data;
        for node in 0..sh.node_count() as u32 {
            let owner = zone::key_to_wire(sh.node_key(node));
            for (t, v) in sets_of(zs, node) {
                for r in &v.rdatas {
                    out.push(Rr {
                        owner: owner.clone(),
                        rtype: t,
                        ttl: v.ttl,
                        rdata: r.to_vec(),
                    });
                }
                push_sigs(&mut out, &owner, v.ttl, &v.sigs);
            }
        }
    };
    push_shard(zone.apex_shard());
    for i in 0..zone::SHARDS {
        push_shard(zone.shard(i));
    }
    if let Some(d) = snap.dnssec.as_deref() {
        let origin = zone.origin();
        for k in d.signer.dnskeys() {
            out.push(Rr {
                owner: origin.to_vec(),
                rtype: Rtype::DNSKEY.0,
                ttl: d.signer.policy().dnskey_ttl,
                rdata: k.clone(),
            });
        }
        push_sigs(
            &mut out,
            origin,
            d.signer.policy().dnskey_ttl,
            &d.apex.dnskey.load_full(),
        );
        out.push(Rr {
            owner: origin.to_vec(),
            rtype: Rtype::NSEC3PARAM.0,
            ttl: 0,
            rdata: d.nsec3param(),
        });
        push_sigs(&mut out, origin, 0, &d.apex.nsec3param.load_full());
        for s in 0..crate::dnssec::chain::CHAIN_SHARDS {
            for (_, (rr, sig)) in nsec3_rrs(d, origin, s) {
                let (owner, ttl) = (rr.owner.clone(), rr.ttl);
                out.push(rr);
                push_sigs(&mut out, &owner, ttl, &sig);
            }
        }
    }
    // SOA first.
    if let Some(p) = out.iter().position(|r| r.rtype == Rtype::SOA.0) {
        let soa = out.remove(p);
        out.insert(0, soa);
    }
    out
}

/// Apply a diff to a set of records (for tests: IXFR applied to the old zone equals the new).
pub fn apply_to(records: &mut std::collections::BTreeSet<Rr>, d: &Diff) {
    if let Some(s) = &d.old_soa {
        records.remove(s);
    }
    for r in &d.removed {
        records.remove(r);
    }
    if let Some(s) = &d.new_soa {
        records.insert(s.clone());
    }
    for r in &d.added {
        records.insert(r.clone());
    }
}
