//! Answering a query for a name at or below the zone origin, in stages.
//!
//! RFC 1034 §4.3.2 steps 3a–3c, with the DNSSEC additions of RFC 4035 §3.1
//! and the NSEC3 proofs of RFC 5155 §7.2. Each stage writes one section; a
//! section that does not fit the size limit truncates the answer (TC=1), an
//! optional additional record that does not fit is left out (RFC 9471).
//!
//! DNSSEC records (RRSIG, NSEC3, and DS in referrals) are written only when the
//! query set DO and the zone is signed (RFC 3225 §3, RFC 4035 §3.1.4); DS and
//! DNSKEY asked for by the query type are answered either way.
//!
//! A CNAME whose target is in the zone is followed (step 3a): the lookup starts
//! again at the target, up to [`MAX_CHAIN`] links and never through the same
//! node twice; the rcode and the authority section are those of the last name
//! (RFC 6604), the AA bit that of the first.

use super::{flags, Ctx, Snapshot};
use crate::name::{self, Key};
use crate::wire::writer::Section;
use crate::wire::{Rcode, Rtype, Writer};
use crate::zone::{Lookup, Zone, DELEGATION, SECURE};

/// Largest NS RRset whose target offsets are remembered for glue owners.
const MAX_NS: usize = 32;

/// In-zone CNAME links followed for one query; a longer chain is left for the
/// resolver to follow from the last target written.
pub const MAX_CHAIN: usize = 8;

/// Where an owner name comes from: a pointer into the message, or a name to write.
#[derive(Clone, Copy)]
enum Owner<'a> {
    At(u16),
    Name(&'a [u8]),
}

/// Offset of the ancestor of the query name that has `labels` labels.
fn qname_offset(qname: &[u8], labels: usize) -> u16 {
    let anc = name::ancestor(qname, labels);
    (12 + qname.len() - anc.len()) as u16
}

/// The name being answered: the query name (in the question, at offset 12), or
/// the target of a CNAME followed inside the zone (lowercase, from the zone).
#[derive(Clone, Copy)]
struct Current<'a> {
    name: &'a [u8],
    in_question: bool,
}

impl<'a> Current<'a> {
    /// The owner for records at this name.
    fn here(self) -> Owner<'a> {
        if self.in_question {
            Owner::At(12)
        } else {
            Owner::Name(self.name)
        }
    }

    /// The owner for records at the ancestor with `labels` labels.
    fn ancestor(self, labels: usize) -> Owner<'a> {
        if self.in_question {
            Owner::At(qname_offset(self.name, labels))
        } else {
            Owner::Name(name::ancestor(self.name, labels))
        }
    }
}

/// One node answered so far in this query, newest first: a CNAME chain is a list of
/// these on the stack. `wildcard` holds, for an answer synthesised from a wildcard,
/// the name and closest encloser labels whose next closer name must be proven not to
/// exist (RFC 5155 §7.2.6) once the answer section is complete.
struct Link<'a, 'p> {
    node: u32,
    wildcard: Option<(&'a [u8], usize)>,
    prev: Option<&'p Link<'a, 'p>>,
}

impl Link<'_, '_> {
    fn contains(&self, node: u32) -> bool {
        let mut l = Some(self);
        while let Some(x) = l {
            if x.node == node {
                return true;
            }
            l = x.prev;
        }
        false
    }

    fn len(&self) -> usize {
        let mut n = 0;
        let mut l = Some(self);
        while let Some(x) = l {
            n += 1;
            l = x.prev;
        }
        n
    }
}

/// Note a signature that could not be made: the handler then answers SERVFAIL.
fn signed(ctx: &Ctx<'_>, r: Result<(), crate::dnssec::SigningFailed>) {
    if r.is_err() {
        ctx.sign_failed.set(true);
    }
}

/// Authority-section proofs still owed by the wildcard answers of the chain.
fn wildcard_proofs(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    chain: Option<&Link<'_, '_>>,
) {
    if !ctx.dnssec || w.flags() & flags::TC != 0 {
        return;
    }
    let Some(sig) = snap.dnssec.as_deref() else {
        return;
    };
    let mut l = chain;
    while let Some(link) = l {
        if let Some((n, encloser_labels)) = link.wildcard {
            w.section(Section::Authority);
            signed(
                ctx,
                sig.write_wildcard_proof(w, &snap.zone, n, encloser_labels),
            );
        }
        l = link.prev;
    }
    if over(w, ctx) {
        truncate(w, ctx);
    }
}

fn over(w: &Writer<'_>, ctx: &Ctx<'_>) -> bool {
    w.len() + ctx.opt_reserve > ctx.limit
}

fn truncate(w: &mut Writer<'_>, ctx: &Ctx<'_>) {
    w.clear_records(ctx.question_end);
    w.set_flags(w.flags() | flags::TC);
}

/// Write an RRset (and its signatures when DNSSEC is wanted); returns the offsets of the
/// RDATA of its first records (for glue owners).
fn put_rrset(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    set_idx: u32,
    owner: Owner<'_>,
    ttl_override: Option<u32>,
    rdata_offsets: Option<&mut [u16; MAX_NS]>,
) {
    let zone = &*snap.zone;
    let set = zone.rrset(set_idx);
    let ttl = ttl_override.unwrap_or(set.ttl);
    let mut offs = rdata_offsets;
    for (i, rdata) in zone.rdatas(set).enumerate() {
        let at = match owner {
            Owner::At(o) => {
                let at = w.len() + 12;
                w.record_at(o, set.rtype, 1, ttl, rdata);
                at
            }
            Owner::Name(n) => {
                w.name(n);
                let at = w.len() + 10;
                w.record_tail(set.rtype, 1, ttl, rdata);
                at
            }
        };
        if let Some(o) = offs.as_deref_mut() {
            if i < MAX_NS && at < 0x3FFF {
                o[i] = at as u16;
            }
        }
    }
    if ctx.dnssec {
        if let Some(sig) = snap.dnssec.as_deref() {
            signed(
                ctx,
                sig.write_rrsigs(w, zone, set_idx, ttl, owner_ref(owner)),
            );
        }
    }
}

fn owner_ref<'a>(o: Owner<'a>) -> crate::dnssec::OwnerRef<'a> {
    match o {
        Owner::At(x) => crate::dnssec::OwnerRef::At(x),
        Owner::Name(n) => crate::dnssec::OwnerRef::Name(n),
    }
}

/// Answer a query whose name is inside the zone; returns the rcode.
///
/// `suppressed` is the label count of the suppressed ancestor of the query name, if any.
pub fn answer_in_zone<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    key: &Key,
    suppressed: Option<usize>,
) -> Rcode {
    let cur = Current {
        name: ctx.qname,
        in_question: true,
    };
    answer_name(w, snap, ctx, cur, key, suppressed, None)
}

/// Answer for one name (the query name, or a CNAME target after `chain`).
fn answer_name<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    cur: Current<'a>,
    key: &Key,
    suppressed: Option<usize>,
    chain: Option<&Link<'a, '_>>,
) -> Rcode {
    let zone = &*snap.zone;
    if let Some(labels) = suppressed {
        // A suppressed domain does not exist: the closest encloser is its nearest
        // existing ancestor (its parent, unless that does not exist either).
        let mut ce = labels - 1;
        while ce > zone.origin_labels() && zone.find(key.prefix(ce)).is_none() {
            ce -= 1;
        }
        return nxdomain(w, snap, ctx, cur, ce, chain);
    }
    match zone.lookup(key) {
        Lookup::Exact(node) => answer_node(w, snap, ctx, cur, node, key.labels(), None, chain),
        Lookup::Delegation { node, exact } => {
            if exact && ctx.qtype == Rtype::DS {
                // RFC 4035 §3.1.4.1: DS is answered from the parent side.
                w.set_flags(w.flags() | flags::AA);
                match zone.rrset_index(node, Rtype::DS) {
                    Some(ds) => {
                        w.section(Section::Answer);
                        put_rrset(w, snap, ctx, ds, cur.here(), None, None);
                        if over(w, ctx) {
                            truncate(w, ctx);
                        } else {
                            wildcard_proofs(w, snap, ctx, chain);
                        }
                        Rcode::NOERROR
                    }
                    None => {
                        nodata(w, snap, ctx, cur, node, key.labels(), chain);
                        Rcode::NOERROR
                    }
                }
            } else {
                referral(w, snap, ctx, cur, node, chain);
                Rcode::NOERROR
            }
        }
        Lookup::NxDomain {
            encloser,
            encloser_labels,
        } => {
            if let Some(wc) = zone.wildcard_child(encloser) {
                return wildcard(w, snap, ctx, cur, wc, encloser_labels, chain);
            }
            nxdomain(w, snap, ctx, cur, encloser_labels, chain)
        }
    }
}

/// Label count of a node's name.
fn zone_labels_of(zone: &Zone, node: u32) -> usize {
    zone.node_key(node).iter().filter(|&&b| b == 0).count()
}

/// Answer at an existing node: its RRset of the query type, or its CNAME (followed
/// when the target is in the zone), or NODATA. `wildcard` is set when the node is a
/// wildcard answering for `cur` (its proof is owed); `chain` the nodes answered before.
#[allow(clippy::too_many_arguments)]
fn answer_node<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    cur: Current<'a>,
    node: u32,
    qlabels: usize,
    wildcard: Option<(&'a [u8], usize)>,
    chain: Option<&Link<'a, '_>>,
) -> Rcode {
    let zone = &*snap.zone;
    if chain.is_some_and(|c| c.contains(node)) {
        // A CNAME loop: each record of the loop is in the answer once; stop here.
        wildcard_proofs(w, snap, ctx, chain);
        return Rcode::NOERROR;
    }
    let here = Link {
        node,
        wildcard,
        prev: chain,
    };
    w.set_flags(w.flags() | flags::AA);
    let sets = zone.rrsets(node);
    let wanted = if ctx.qtype == Rtype::ANY {
        // RFC 8482 §4.2: one RRset is enough.
        sets.first().map(|s| s.rtype)
    } else if sets.iter().any(|s| s.rtype == ctx.qtype) {
        Some(ctx.qtype)
    } else if sets.iter().any(|s| s.rtype == Rtype::CNAME) {
        Some(Rtype::CNAME)
    } else {
        None
    };
    let extra = snap
        .dnssec
        .as_deref()
        .and_then(|s| s.apex_extra(zone, node, ctx.qtype));
    if let Some(kind) = extra {
        // DNSKEY / NSEC3PARAM at the apex come from the signer, not the zone file.
        w.section(Section::Answer);
        if let Some(sig) = snap.dnssec.as_deref() {
            signed(
                ctx,
                sig.write_apex_extra(w, zone, kind, ctx.dnssec, owner_ref(cur.here())),
            );
        }
        if over(w, ctx) {
            truncate(w, ctx);
        } else {
            wildcard_proofs(w, snap, ctx, Some(&here));
        }
        return Rcode::NOERROR;
    }
    let Some(rtype) = wanted else {
        nodata(w, snap, ctx, cur, node, qlabels, Some(&here));
        return Rcode::NOERROR;
    };
    let Some(set_idx) = zone.rrset_index(node, rtype) else {
        nodata(w, snap, ctx, cur, node, qlabels, Some(&here));
        return Rcode::NOERROR;
    };
    w.section(Section::Answer);
    let mut offs = [0u16; MAX_NS];
    let is_soa = set_idx == zone.soa_index();
    if is_soa {
        write_soa(w, snap, ctx, cur.here(), None);
    } else {
        put_rrset(w, snap, ctx, set_idx, cur.here(), None, Some(&mut offs));
    }
    if over(w, ctx) {
        truncate(w, ctx);
        return Rcode::NOERROR;
    }
    if rtype == Rtype::CNAME && ctx.qtype != Rtype::CNAME && ctx.qtype != Rtype::ANY {
        return chase(w, snap, ctx, set_idx, &here);
    }
    wildcard_proofs(w, snap, ctx, Some(&here));
    if rtype == Rtype::NS && w.flags() & flags::TC == 0 {
        w.section(Section::Additional);
        add_glue(w, snap, ctx, node, &offs);
    }
    Rcode::NOERROR
}

/// Follow a CNAME (RFC 1034 §4.3.2 step 3a) whose RRset `set_idx` was just written:
/// answer for its target when that is in the zone, the chain is short enough and the
/// target is not suppressed (a suppressed target answers NXDOMAIN like the name itself).
///
/// In-zone CNAMEs are rare in a TLD zone: this is kept out of line (and is where the
/// recursion of the stages closes), so the referral and negative paths inline as before.
#[cold]
#[inline(never)]
fn chase<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    set_idx: u32,
    here: &Link<'a, '_>,
) -> Rcode {
    let zone = &*snap.zone;
    let target = zone.rr(zone.rrset(set_idx), 0);
    let follow = here.len() <= MAX_CHAIN
        && name::wire_len(target).is_ok_and(|l| l == target.len())
        && name::is_at_or_below(target, zone.origin());
    if !follow {
        wildcard_proofs(w, snap, ctx, Some(here));
        return Rcode::NOERROR;
    }
    let mut key = Key::new();
    key.set(target);
    let hit = snap.suppressions.find(&key, zone.origin_labels());
    if let Some(h) = hit {
        ctx.blocked.set(Some((h.code, h.text)));
    }
    let cur = Current {
        name: target,
        in_question: false,
    };
    answer_name(w, snap, ctx, cur, &key, hit.map(|h| h.labels), Some(here))
}

/// Write the SOA (with the snapshot's serial) and its signatures.
fn write_soa(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    owner: Owner<'_>,
    ttl: Option<u32>,
) {
    let zone = &*snap.zone;
    let set = zone.soa();
    let ttl = ttl.unwrap_or(set.ttl);
    let rdata = zone.soa_rdata();
    let mut buf = [0u8; 512];
    let n = rdata.len().min(512);
    buf[..n].copy_from_slice(&rdata[..n]);
    if n >= 20 {
        buf[n - 20..n - 16].copy_from_slice(&snap.serial.to_be_bytes());
    }
    match owner {
        Owner::At(o) => w.record_at(o, Rtype::SOA, 1, ttl, &buf[..n]),
        Owner::Name(nm) => w.record(nm, Rtype::SOA, 1, ttl, &buf[..n]),
    }
    if ctx.dnssec {
        if let Some(sig) = snap.dnssec.as_deref() {
            signed(ctx, sig.write_soa_rrsigs(w, ttl, owner_ref(owner)));
        }
    }
}

/// A referral to the delegation `node` (RFC 1034 §4.3.2 step 3b): NS in authority,
/// then with DNSSEC wanted the DS RRset or the opt-out proof that there is none
/// (RFC 4035 §3.1.4), then glue. Without DO no DS is added (RFC 3225 §3).
fn referral<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    cur: Current<'a>,
    node: u32,
    chain: Option<&Link<'a, '_>>,
) {
    let zone = &*snap.zone;
    let Some(ns) = zone.rrset_index(node, Rtype::NS) else {
        return;
    };
    let labels = zone_labels_of(zone, node);
    let owner = cur.ancestor(labels);
    w.section(Section::Authority);
    let mut offs = [0u16; MAX_NS];
    put_rrset_unsigned(w, zone, ns, owner, &mut offs);
    if ctx.dnssec {
        if zone.node(node).flags & SECURE != 0 {
            if let Some(ds) = zone.rrset_index(node, Rtype::DS) {
                put_rrset(w, snap, ctx, ds, owner, None, None);
            }
        } else if let Some(sig) = snap.dnssec.as_deref() {
            // RFC 5155 §7.2.7: closest provable encloser + opt-out cover of the next closer.
            // The closest provable encloser is the delegation's parent (always in the chain).
            let dname = name::ancestor(cur.name, labels);
            signed(
                ctx,
                sig.write_closest_encloser_proof(w, zone, dname, labels - 1, false, Some(node)),
            );
        }
    }
    if over(w, ctx) {
        truncate(w, ctx);
        return;
    }
    wildcard_proofs(w, snap, ctx, chain);
    if w.flags() & flags::TC != 0 {
        return;
    }
    w.section(Section::Additional);
    add_glue(w, snap, ctx, node, &offs);
}

/// The delegation NS RRset: never signed (RFC 4035 §2.2).
fn put_rrset_unsigned(
    w: &mut Writer<'_>,
    zone: &Zone,
    set_idx: u32,
    owner: Owner<'_>,
    offs: &mut [u16; MAX_NS],
) {
    let set = zone.rrset(set_idx);
    for (i, rdata) in zone.rdatas(set).enumerate() {
        let at = match owner {
            Owner::At(o) => {
                let at = w.len() + 12;
                w.record_at(o, set.rtype, 1, set.ttl, rdata);
                at
            }
            Owner::Name(n) => {
                w.name(n);
                let at = w.len() + 10;
                w.record_tail(set.rtype, 1, set.ttl, rdata);
                at
            }
        };
        if i < MAX_NS && at < 0x3FFF {
            offs[i] = at as u16;
        }
    }
}

fn add_glue(w: &mut Writer<'_>, snap: &Snapshot, ctx: &Ctx<'_>, node: u32, offs: &[u16; MAX_NS]) {
    let zone = &*snap.zone;
    let glue = zone.glue(node);
    let ns_set = zone.rrset_index(node, Rtype::NS).map(|i| *zone.rrset(i));
    let authoritative = zone.node(node).flags & DELEGATION == 0;
    for (k, g) in glue.iter().enumerate() {
        let mark = w.mark();
        let set = zone.rrset(g.rrset);
        let idx = g.ns_index as usize;
        for rdata in zone.rdatas(set) {
            if idx < MAX_NS && offs[idx] != 0 {
                w.record_at(offs[idx], set.rtype, 1, set.ttl, rdata);
            } else if let Some(ns) = ns_set.as_ref() {
                w.record(zone.rr(ns, idx), set.rtype, 1, set.ttl, rdata);
            }
        }
        if authoritative && ctx.dnssec {
            // Address records at the apex side are authoritative data: signed.
            if let Some(sig) = snap.dnssec.as_deref() {
                let owner = if idx < MAX_NS && offs[idx] != 0 {
                    crate::dnssec::OwnerRef::At(offs[idx])
                } else {
                    crate::dnssec::OwnerRef::At(12)
                };
                signed(ctx, sig.write_rrsigs(w, zone, g.rrset, set.ttl, owner));
            }
        }
        if over(w, ctx) {
            w.rollback(mark);
            if glue[k..].iter().any(|g| g.required) {
                w.set_flags(w.flags() | flags::TC);
            }
            return;
        }
    }
}

fn nodata<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    cur: Current<'a>,
    node: u32,
    qlabels: usize,
    chain: Option<&Link<'a, '_>>,
) {
    let zone = &*snap.zone;
    negative(w, snap, ctx, chain, |sig, w| {
        sig.write_nodata_proof(w, zone, cur.name, qlabels, node, ctx.qtype)
    });
}

/// A negative answer: AA, the SOA with the negative TTL, then the denial `proof` when
/// DNSSEC is wanted, then the proofs the wildcard answers of the chain still owe.
fn negative<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    chain: Option<&Link<'a, '_>>,
    proof: impl FnOnce(
        &crate::dnssec::Signed,
        &mut Writer<'_>,
    ) -> Result<(), crate::dnssec::SigningFailed>,
) {
    let zone = &*snap.zone;
    w.set_flags(w.flags() | flags::AA);
    w.section(Section::Authority);
    write_soa(
        w,
        snap,
        ctx,
        Owner::Name(zone.origin()),
        Some(zone.negative_ttl()),
    );
    if ctx.dnssec {
        if let Some(sig) = snap.dnssec.as_deref() {
            signed(ctx, proof(sig, w));
        }
    }
    if over(w, ctx) {
        truncate(w, ctx);
        return;
    }
    wildcard_proofs(w, snap, ctx, chain);
}

fn nxdomain<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    cur: Current<'a>,
    encloser_labels: usize,
    chain: Option<&Link<'a, '_>>,
) -> Rcode {
    let zone = &*snap.zone;
    negative(w, snap, ctx, chain, |sig, w| {
        sig.write_closest_encloser_proof(w, zone, cur.name, encloser_labels, true, None)
    });
    Rcode::NXDOMAIN
}

fn wildcard<'a>(
    w: &mut Writer<'_>,
    snap: &'a Snapshot,
    ctx: &Ctx<'a>,
    cur: Current<'a>,
    wc: u32,
    encloser_labels: usize,
    chain: Option<&Link<'a, '_>>,
) -> Rcode {
    let zone = &*snap.zone;
    if zone.node(wc).flags & DELEGATION != 0 {
        // A wildcard delegation is not synthesised; treat the name as absent.
        return nxdomain(w, snap, ctx, cur, encloser_labels, chain);
    }
    let has_data = zone
        .rrsets(wc)
        .iter()
        .any(|s| s.rtype == ctx.qtype || s.rtype == Rtype::CNAME || ctx.qtype == Rtype::ANY);
    if !has_data {
        // RFC 5155 §7.2.5: NODATA through a wildcard proves the closest encloser,
        // covers the next closer name and matches the wildcard.
        negative(w, snap, ctx, chain, |sig, w| {
            sig.write_wildcard_nodata_proof(w, zone, cur.name, encloser_labels)
        });
        return Rcode::NOERROR;
    }
    // RFC 5155 §7.2.6: a synthesised answer owes the proof that the next closer name
    // does not exist; it is written once the answer section is complete.
    let owed = Some((cur.name, encloser_labels));
    answer_node(w, snap, ctx, cur, wc, encloser_labels + 1, owed, chain)
}
