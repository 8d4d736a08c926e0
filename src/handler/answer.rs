//! Answering a query for a name at or below the zone origin, in stages.
//!
//! RFC 1034 §4.3.2 steps 3a–3c (with in-zone CNAME chains followed), the
//! DNSSEC additions of RFC 4035 §3.1 and the NSEC3 proofs of RFC 5155 §7.2.
//! Each stage writes one section; DNSSEC records are added in each stage when
//! the query set DO, taken from [`crate::dnssec::Dnssec`] as signatures and
//! chain positions. A section that does not fit the size limit truncates the
//! answer (TC=1); an optional additional record that does not fit is left out
//! (RFC 9471). A signature that cannot be made ends the answer with
//! [`NoSignature`]: the caller turns it into SERVFAIL.

use super::{flags, Ctx, Snapshot};
use crate::dnssec::chain::ChainPos;
use crate::dnssec::{Dnssec, NoSignature, Proof, SigSet};
use crate::name::{self, Key};
use crate::wire::writer::Section;
use crate::wire::{Rcode, Rtype, Writer};
use crate::zone::{GlueAt, Lookup, NodeRef, SetRef, Zone, BELOW_CUT, DELEGATION, SECURE};

/// Largest NS RRset whose target offsets are remembered for glue owners.
const MAX_NS: usize = 32;
/// Most CNAME records followed in one answer (RFC 1034 §4.3.2 step 3a asks to restart;
/// a fixed bound keeps loops and long chains cheap).
pub const MAX_CHAIN: usize = 8;

/// What kind of answer was written (for the rcode, the EDE and counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Data for the name (possibly through CNAMEs or a wildcard).
    Answer,
    /// A referral to a delegation.
    Referral,
    /// The name exists but not with that type.
    NoData,
    /// The name does not exist.
    NxDomain,
}

impl Kind {
    /// The rcode of this kind of answer.
    pub fn rcode(self) -> Rcode {
        match self {
            Kind::NxDomain => Rcode::NXDOMAIN,
            _ => Rcode::NOERROR,
        }
    }
}

type Stage = Result<(), NoSignature>;

/// Where an owner name comes from: a pointer into the message, or a name to write.
#[derive(Clone, Copy)]
enum Owner<'a> {
    At(u16),
    Name(&'a [u8]),
}

/// Offset of the ancestor of `qname` (written at offset `at`) that has `labels` labels.
fn name_offset(qname: &[u8], at: u16, labels: usize) -> u16 {
    let anc = name::ancestor(qname, labels);
    at + (qname.len() - anc.len()) as u16
}

fn over(w: &Writer<'_>, ctx: &Ctx<'_>) -> bool {
    w.len() + ctx.opt_reserve > ctx.limit
}

fn truncate(w: &mut Writer<'_>, ctx: &Ctx<'_>) {
    w.clear_records(ctx.question_end);
    w.set_flags(w.flags() | flags::TC);
}

fn write_owner(w: &mut Writer<'_>, owner: Owner<'_>) -> usize {
    match owner {
        Owner::At(o) => {
            w.pointer(o);
        }
        Owner::Name(n) => w.name(n),
    }
    w.len()
}

fn write_sigs(w: &mut Writer<'_>, sigs: &SigSet, ttl: u32, owner: Owner<'_>) {
    for rd in sigs.rdatas() {
        write_owner(w, owner);
        w.record_tail(Rtype::RRSIG, 1, ttl, rd);
    }
}

/// Point at a name just written at `at` when a pointer can reach it.
fn owner_at(at: usize, name: &[u8]) -> Owner<'_> {
    if at < 0x3FFF {
        Owner::At(at as u16)
    } else {
        Owner::Name(name)
    }
}

/// Write an RRset (and its signatures when DNSSEC is wanted); remember where the
/// RDATA of its first records is (for glue owners).
fn put_rrset(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    node: NodeRef<'_>,
    set: SetRef<'_>,
    owner: Owner<'_>,
    rdata_offsets: Option<&mut [u16; MAX_NS]>,
) -> Stage {
    let ttl = set.ttl();
    let rtype = set.rtype();
    let mut offs = rdata_offsets;
    let mut first_owner = owner;
    for (i, rdata) in set.rdatas().enumerate() {
        let start = w.len();
        write_owner(w, owner);
        if i == 0 {
            if let Owner::Name(n) = owner {
                first_owner = owner_at(start, n);
            }
        }
        let at = w.len() + 10;
        w.record_tail(rtype, 1, ttl, rdata);
        if let Some(o) = offs.as_deref_mut() {
            if i < MAX_NS && at < 0x3FFF {
                o[i] = at as u16;
            }
        }
    }
    if ctx.dnssec && crate::dnssec::sigs::node_signable(node, rtype) {
        if let Some(d) = snap.dnssec.as_deref() {
            let sigs = d.set_sigs(node, set)?;
            if let Some(s) = &*sigs {
                write_sigs(w, s, ttl, first_owner);
            }
        }
    }
    Ok(())
}

/// One name being answered: its wire form and where it sits in the message.
#[derive(Clone, Copy)]
struct Name<'q> {
    /// The name (as sent for the query name, as in the CNAME RDATA for a target).
    name: &'q [u8],
    /// Whether it is the query name (at offset 12) rather than a CNAME target.
    chased: bool,
}

impl<'q> Name<'q> {
    fn owner(&self) -> Owner<'q> {
        if self.chased {
            Owner::Name(self.name)
        } else {
            Owner::At(12)
        }
    }

    /// Where the ancestor with `labels` labels is: a pointer into the question, or a name.
    fn ancestor(&self, labels: usize) -> Owner<'q> {
        if self.chased {
            Owner::Name(name::ancestor(self.name, labels))
        } else {
            Owner::At(name_offset(self.name, 12, labels))
        }
    }
}

/// Wildcard proofs of CNAME links still to be written in the authority section.
#[derive(Default)]
struct Pending {
    proofs: [Option<Proof>; MAX_CHAIN + 1],
}

impl Pending {
    fn push(&mut self, p: Proof) {
        if let Some(slot) = self.proofs.iter_mut().find(|s| s.is_none()) {
            *slot = Some(p);
        }
    }

    /// Write what is pending (the authority section must not be over yet).
    fn flush(&mut self, w: &mut Writer<'_>, snap: &Snapshot, ctx: &Ctx<'_>) -> Stage {
        if self.proofs[0].is_none() {
            return Ok(());
        }
        if let Some(d) = snap.dnssec.as_deref() {
            for p in self.proofs.iter_mut() {
                if let Some(p) = p.take() {
                    write_proof(w, &snap.zone, d, &p)?;
                }
            }
        }
        if over(w, ctx) {
            truncate(w, ctx);
        }
        Ok(())
    }
}

/// Which name the answer ended at, for its Extended DNS Error.
pub enum Target<'s> {
    /// The query name.
    Query,
    /// A CNAME target, with the suppression that covers it (if any).
    Chased(Option<crate::suppress::Hit<'s>>),
}

/// Answer a query whose name is inside the zone; also says which name the answer ended at.
pub fn answer_in_zone<'s>(
    w: &mut Writer<'_>,
    snap: &'s Snapshot,
    ctx: &Ctx<'_>,
    key: &Key,
) -> Result<(Kind, Target<'s>), NoSignature> {
    let mut key_buf = Key::new();
    let (kind, chased) = answer_chain(w, snap, ctx, key, &mut key_buf)?;
    let target = if chased {
        Target::Chased(snap.suppressions.find(&key_buf, snap.zone.origin_labels()))
    } else {
        Target::Query
    };
    Ok((kind, target))
}

fn answer_chain(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    key: &Key,
    key_buf: &mut Key,
) -> Result<(Kind, bool), NoSignature> {
    let zone = &*snap.zone;
    let mut target = Name {
        name: ctx.qname,
        chased: false,
    };
    let mut use_buf = false;
    let mut pending = Pending::default();
    // CNAME nodes already followed (loop detection, RFC 1034 §3.6.2).
    let mut seen: [Option<(usize, u32)>; MAX_CHAIN] = [None; MAX_CHAIN];
    let mut hops = 0usize;
    loop {
        let k: &Key = if use_buf { key_buf } else { key };
        if hops > 0 {
            // A CNAME already followed would start the loop again: stop before it.
            if let Lookup::Exact(node) = zone.lookup(k) {
                let id = (node.sh as *const _ as usize, node.idx);
                if seen.contains(&Some(id)) {
                    if w.flags() & flags::TC == 0 {
                        pending.flush(w, snap, ctx)?;
                    }
                    return Ok((Kind::Answer, use_buf));
                }
            }
        }
        let step = answer_name(w, snap, ctx, k, target, &mut pending)?;
        let (node, set) = match step {
            Step::Done(kind) => {
                if w.flags() & flags::TC == 0 {
                    pending.flush(w, snap, ctx)?;
                }
                return Ok((kind, use_buf));
            }
            Step::Cname(node, set) => (node, set),
        };
        // Follow the CNAME when its target is in the zone and the chain is short and loop-free.
        let id = (node.sh as *const _ as usize, node.idx);
        let rdata = set.rr(0);
        let follow = hops < MAX_CHAIN
            && !seen.contains(&Some(id))
            && w.flags() & flags::TC == 0
            && name::wire_len(rdata)
                .is_ok_and(|l| l == rdata.len() && name::is_at_or_below(rdata, zone.origin()));
        if !follow {
            if w.flags() & flags::TC == 0 {
                pending.flush(w, snap, ctx)?;
            }
            return Ok((Kind::Answer, use_buf));
        }
        seen[hops] = Some(id);
        hops += 1;
        key_buf.set(rdata);
        use_buf = true;
        target = Name {
            name: rdata,
            chased: true,
        };
    }
}

/// What one stage of the answer did.
enum Step<'z> {
    /// The answer is complete.
    Done(Kind),
    /// A CNAME was written for this name (and the query was not for CNAME).
    Cname(NodeRef<'z>, SetRef<'z>),
}

fn answer_name<'z>(
    w: &mut Writer<'_>,
    snap: &'z Snapshot,
    ctx: &Ctx<'_>,
    key: &Key,
    t: Name<'_>,
    pending: &mut Pending,
) -> Result<Step<'z>, NoSignature> {
    let zone = &*snap.zone;
    match zone.lookup(key) {
        Lookup::Exact(node) => answer_node(w, snap, ctx, node, t.owner(), t, key.labels(), pending),
        Lookup::Delegation {
            node,
            exact,
            labels,
        } => {
            if exact && ctx.qtype == Rtype::DS {
                // RFC 4035 §3.1.4.1: DS is answered from the parent side.
                w.set_flags(w.flags() | flags::AA);
                match node.rrset(Rtype::DS) {
                    Some(ds) => {
                        w.section(Section::Answer);
                        put_rrset(w, snap, ctx, node, ds, t.owner(), None)?;
                        if over(w, ctx) {
                            truncate(w, ctx);
                        }
                        Ok(Step::Done(Kind::Answer))
                    }
                    None => {
                        nodata(w, snap, ctx, t.name, node, key.labels())?;
                        Ok(Step::Done(Kind::NoData))
                    }
                }
            } else {
                referral(w, snap, ctx, node, labels, t, pending)?;
                Ok(Step::Done(Kind::Referral))
            }
        }
        Lookup::NxDomain {
            encloser,
            encloser_labels,
        } => {
            if let Some(wc) = zone.wildcard_child(encloser) {
                return wildcard(w, snap, ctx, wc, t, encloser_labels, pending);
            }
            nxdomain(w, snap, ctx, t.name, encloser_labels)?;
            Ok(Step::Done(Kind::NxDomain))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn answer_node<'z>(
    w: &mut Writer<'_>,
    snap: &'z Snapshot,
    ctx: &Ctx<'_>,
    node: NodeRef<'z>,
    owner: Owner<'_>,
    t: Name<'_>,
    qlabels: usize,
    pending: &mut Pending,
) -> Result<Step<'z>, NoSignature> {
    w.set_flags(w.flags() | flags::AA);
    if let Some(d) = snap.dnssec.as_deref() {
        if let Some(kind) = d.apex_extra(node, ctx.qtype) {
            // DNSKEY / NSEC3PARAM at the apex come from the signer, not the zone file.
            w.section(Section::Answer);
            apex_extra(w, d, ctx, kind, owner)?;
            if over(w, ctx) {
                truncate(w, ctx);
            }
            return Ok(Step::Done(Kind::Answer));
        }
    }
    let wanted = if ctx.qtype == Rtype::ANY {
        // RFC 8482 §4.2: one RRset is enough.
        node.rrsets().next()
    } else if let Some(s) = node.rrset(ctx.qtype) {
        Some(s)
    } else {
        node.rrset(Rtype::CNAME)
    };
    let Some(set) = wanted else {
        nodata(w, snap, ctx, t.name, node, qlabels)?;
        return Ok(Step::Done(Kind::NoData));
    };
    w.section(Section::Answer);
    let mut offs = [0u16; MAX_NS];
    put_rrset(w, snap, ctx, node, set, owner, Some(&mut offs))?;
    if over(w, ctx) {
        truncate(w, ctx);
        return Ok(Step::Done(Kind::Answer));
    }
    if set.rtype() == Rtype::NS {
        pending.flush(w, snap, ctx)?;
        if w.flags() & flags::TC != 0 {
            return Ok(Step::Done(Kind::Answer));
        }
        w.section(Section::Additional);
        add_glue(w, snap, ctx, node, &offs)?;
    }
    if set.rtype() == Rtype::CNAME && ctx.qtype != Rtype::CNAME && ctx.qtype != Rtype::ANY {
        return Ok(Step::Cname(node, set));
    }
    Ok(Step::Done(Kind::Answer))
}

fn apex_extra(
    w: &mut Writer<'_>,
    d: &Dnssec,
    ctx: &Ctx<'_>,
    kind: crate::dnssec::ApexExtra,
    owner: Owner<'_>,
) -> Stage {
    let ttl = match kind {
        crate::dnssec::ApexExtra::Dnskey => {
            for k in d.signer.dnskeys() {
                write_owner(w, owner);
                w.record_tail(Rtype::DNSKEY, 1, d.signer.policy().dnskey_ttl, k);
            }
            d.signer.policy().dnskey_ttl
        }
        crate::dnssec::ApexExtra::Nsec3Param => {
            let mut buf = [0u8; 300];
            let p = &d.chain.params;
            buf[0] = 1;
            buf[1] = 0;
            buf[2..4].copy_from_slice(&p.iterations.to_be_bytes());
            let sl = p.salt.len().min(255);
            buf[4] = sl as u8;
            buf[5..5 + sl].copy_from_slice(&p.salt[..sl]);
            write_owner(w, owner);
            w.record_tail(Rtype::NSEC3PARAM, 1, 0, &buf[..5 + sl]);
            0
        }
    };
    if ctx.dnssec {
        let sigs = d.apex_sigs(kind)?;
        if let Some(s) = &*sigs {
            write_sigs(w, s, ttl, owner);
        }
    }
    Ok(())
}

/// Write the SOA and, with DNSSEC, its signatures.
fn write_soa(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    owner: Owner<'_>,
    ttl: Option<u32>,
) -> Stage {
    let zone = &*snap.zone;
    let apex = zone.apex();
    let soa = zone.soa();
    let ttl = ttl.unwrap_or(soa.ttl());
    let start = w.len();
    write_owner(w, owner);
    w.record_tail(Rtype::SOA, 1, ttl, soa.rr(0));
    if ctx.dnssec {
        if let Some(d) = snap.dnssec.as_deref() {
            let sigs = d.set_sigs(apex, soa)?;
            if let Some(s) = &*sigs {
                let o = match owner {
                    Owner::Name(n) => owner_at(start, n),
                    o => o,
                };
                write_sigs(w, s, ttl, o);
            }
        }
    }
    Ok(())
}

fn referral(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    node: NodeRef<'_>,
    labels: usize,
    t: Name<'_>,
    pending: &mut Pending,
) -> Stage {
    let zone = &*snap.zone;
    let Some(ns) = node.rrset(Rtype::NS) else {
        return Ok(());
    };
    w.section(Section::Authority);
    // RFC 3225 §3, RFC 4035 §3.1.4: DS or the proof of its absence only with DO. The
    // proof's records are looked up (and start loading) before the NS RRset is written.
    let signed = ctx.dnssec.then_some(snap.dnssec.as_deref()).flatten();
    let proof = match signed {
        Some(d) if node.flags() & SECURE == 0 => {
            // RFC 5155 §7.2.7: closest provable encloser + opt-out cover of the next closer.
            let dname = name::ancestor(t.name, labels);
            let p = d.insecure_referral_proof(zone, dname, labels, node);
            d.prefetch_proof(&p);
            Some(p)
        }
        Some(d) => {
            if let Some(ds) = node.rrset(Rtype::DS) {
                d.prefetch_set(ds);
            }
            None
        }
        None => None,
    };
    let mut offs = [0u16; MAX_NS];
    // The delegation NS RRset: never signed (RFC 4035 §2.2).
    let owner = t.ancestor(labels);
    let mut first = owner;
    for (i, rdata) in ns.rdatas().enumerate() {
        let start = w.len();
        write_owner(w, first);
        if i == 0 {
            if let Owner::Name(n) = owner {
                first = owner_at(start, n);
            }
        }
        let at = w.len() + 10;
        w.record_tail(Rtype::NS, 1, ns.ttl(), rdata);
        if i < MAX_NS && at < 0x3FFF {
            offs[i] = at as u16;
        }
    }
    if let Some(d) = signed {
        match &proof {
            Some(p) => write_proof(w, zone, d, p)?,
            None => {
                if let Some(ds) = node.rrset(Rtype::DS) {
                    put_rrset(w, snap, ctx, node, ds, first, None)?;
                }
            }
        }
    }
    pending.flush(w, snap, ctx)?;
    if over(w, ctx) {
        truncate(w, ctx);
    }
    if w.flags() & flags::TC != 0 {
        return Ok(());
    }
    w.section(Section::Additional);
    add_glue(w, snap, ctx, node, &offs)
}

fn add_glue(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    node: NodeRef<'_>,
    offs: &[u16; MAX_NS],
) -> Stage {
    let zone = &*snap.zone;
    let glue = node.glue();
    let ns = node.rrset(Rtype::NS);
    let authoritative = node.flags() & DELEGATION == 0;
    let mut key = Key::new();
    for (k, g) in glue.iter().enumerate() {
        let mark = w.mark();
        let idx = g.ns_index as usize;
        let owner = if idx < MAX_NS && offs[idx] != 0 {
            Owner::At(offs[idx])
        } else {
            match ns {
                Some(ns) => Owner::Name(ns.rr(idx)),
                None => continue,
            }
        };
        match g.at {
            GlueAt::Local(set) => {
                // Local glue is below the delegation's own cut: never signed.
                let set = SetRef {
                    sh: node.sh,
                    idx: set,
                };
                write_addresses(w, snap, ctx, None, set, owner)?;
            }
            GlueAt::Remote => {
                let Some(ns) = ns else { continue };
                let target = ns.rr(idx);
                if name::wire_len(target).is_err() {
                    continue;
                }
                key.set(target);
                if let Some(host) = zone.find(&key) {
                    // At the apex, in-zone name-server addresses are authoritative data.
                    let sign = (authoritative && host.flags() & BELOW_CUT == 0).then_some(host);
                    for t in [Rtype::A, Rtype::AAAA] {
                        if let Some(set) = host.rrset(t) {
                            write_addresses(w, snap, ctx, sign, set, owner)?;
                        }
                    }
                }
            }
        }
        if over(w, ctx) {
            w.rollback(mark);
            if glue[k..].iter().any(|g| g.required) {
                w.set_flags(w.flags() | flags::TC);
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Write an address RRset as additional data; `signed_as`: the authoritative node it is at.
fn write_addresses(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    signed_as: Option<NodeRef<'_>>,
    set: SetRef<'_>,
    owner: Owner<'_>,
) -> Stage {
    for rdata in set.rdatas() {
        write_owner(w, owner);
        w.record_tail(set.rtype(), 1, set.ttl(), rdata);
    }
    if let (Some(host), true) = (signed_as, ctx.dnssec) {
        if let Some(d) = snap.dnssec.as_deref() {
            let sigs = d.set_sigs(host, set)?;
            if let Some(s) = &*sigs {
                write_sigs(w, s, set.ttl(), owner);
            }
        }
    }
    Ok(())
}

/// Write the NSEC3 records of a proof with their signatures.
fn write_proof(w: &mut Writer<'_>, zone: &Zone, d: &Dnssec, p: &Proof) -> Stage {
    w.section(Section::Authority);
    for pos in p.iter() {
        write_nsec3(w, zone, d, pos)?;
    }
    Ok(())
}

fn write_nsec3(w: &mut Writer<'_>, zone: &Zone, d: &Dnssec, pos: ChainPos) -> Stage {
    let mut owner = [0u8; 300];
    let n = crate::dnssec::Signer::nsec3_owner(zone.origin(), d.chain.hash(pos), &mut owner);
    let mut rdata = [0u8; 600];
    let mut rl = 0usize;
    d.chain.write_rdata(pos, |b| {
        let end = (rl + b.len()).min(rdata.len());
        rdata[rl..end].copy_from_slice(&b[..end - rl]);
        rl = end;
    });
    let sigs = d.nsec3_sigs(pos)?;
    let at = w.len();
    w.record(&owner[..n], Rtype::NSEC3, 1, d.nsec3_ttl, &rdata[..rl]);
    if let Some(s) = &*sigs {
        write_sigs(w, s, d.nsec3_ttl, owner_at(at, &owner[..n]));
    }
    Ok(())
}

fn nodata(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    qname: &[u8],
    node: NodeRef<'_>,
    qlabels: usize,
) -> Stage {
    let zone = &*snap.zone;
    negative(w, snap, ctx, |d| d.nodata_proof(zone, qname, qlabels, node))
}

/// A negative answer: AA, the SOA with the negative TTL, then the denial proof when DNSSEC is wanted.
fn negative(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    proof: impl FnOnce(&Dnssec) -> Proof,
) -> Stage {
    let zone = &*snap.zone;
    w.set_flags(w.flags() | flags::AA);
    w.section(Section::Authority);
    write_soa(
        w,
        snap,
        ctx,
        Owner::Name(zone.origin()),
        Some(zone.negative_ttl()),
    )?;
    if ctx.dnssec {
        if let Some(d) = snap.dnssec.as_deref() {
            let p = proof(d);
            write_proof(w, zone, d, &p)?;
        }
    }
    if over(w, ctx) {
        truncate(w, ctx);
    }
    Ok(())
}

fn nxdomain(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    qname: &[u8],
    encloser_labels: usize,
) -> Stage {
    let zone = &*snap.zone;
    negative(w, snap, ctx, |d| {
        d.closest_encloser_proof(zone, qname, encloser_labels, true, None)
    })
}

fn wildcard<'z>(
    w: &mut Writer<'_>,
    snap: &'z Snapshot,
    ctx: &Ctx<'_>,
    wc: NodeRef<'z>,
    t: Name<'_>,
    encloser_labels: usize,
    pending: &mut Pending,
) -> Result<Step<'z>, NoSignature> {
    let zone = &*snap.zone;
    if wc.flags() & DELEGATION != 0 {
        // A wildcard delegation is not synthesised; treat the name as absent.
        nxdomain(w, snap, ctx, t.name, encloser_labels)?;
        return Ok(Step::Done(Kind::NxDomain));
    }
    let has_data = ctx.qtype == Rtype::ANY || wc.has(ctx.qtype) || wc.has(Rtype::CNAME);
    if !has_data {
        // RFC 5155 §7.2.5: NODATA through a wildcard proves the closest encloser,
        // covers the next closer name and matches the wildcard.
        negative(w, snap, ctx, |d| {
            d.wildcard_nodata_proof(zone, t.name, encloser_labels)
        })?;
        return Ok(Step::Done(Kind::NoData));
    }
    // RFC 5155 §7.2.6: the answer comes with the proof that the next closer name
    // does not exist; it is written in the authority section, after every
    // answer record (a synthesised CNAME may be followed first).
    if ctx.dnssec {
        if let Some(d) = snap.dnssec.as_deref() {
            pending.push(d.wildcard_proof(t.name, encloser_labels));
        }
    }
    answer_node(w, snap, ctx, wc, t.owner(), t, encloser_labels + 1, pending)
}
