//! Answering a query for a name at or below the zone origin, in stages.
//!
//! RFC 1034 §4.3.2 steps 3a–3c, with the DNSSEC additions of RFC 4035 §3.1
//! and the NSEC3 proofs of RFC 5155 §7.2. Each stage writes one section; a
//! section that does not fit the size limit truncates the answer (TC=1), an
//! optional additional record that does not fit is left out (RFC 9471).

use super::{flags, Ctx, Snapshot};
use crate::name::{self, Key};
use crate::wire::writer::Section;
use crate::wire::{Rcode, Rtype, Writer};
use crate::zone::{Lookup, Zone, DELEGATION, SECURE};

/// Largest NS RRset whose target offsets are remembered for glue owners.
const MAX_NS: usize = 32;

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
        if let Some(signed) = snap.dnssec.as_deref() {
            signed.write_rrsigs(w, zone, set_idx, ttl, owner_ref(owner));
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
pub fn answer_in_zone(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    key: &Key,
    suppressed: Option<usize>,
) -> Rcode {
    let zone = &*snap.zone;
    if let Some(labels) = suppressed {
        // A suppressed domain does not exist: the closest encloser is its nearest
        // existing ancestor (its parent, unless that does not exist either).
        let mut ce = labels - 1;
        while ce > zone.origin_labels() && zone.find(key.prefix(ce)).is_none() {
            ce -= 1;
        }
        return nxdomain(w, snap, ctx, ce);
    }
    match zone.lookup(key) {
        Lookup::Exact(node) => answer_node(w, snap, ctx, node, Owner::At(12), key.labels()),
        Lookup::Delegation { node, exact } => {
            if exact && ctx.qtype == Rtype::DS {
                // RFC 4035 §3.1.4.1: DS is answered from the parent side.
                w.set_flags(w.flags() | flags::AA);
                match zone.rrset_index(node, Rtype::DS) {
                    Some(ds) => {
                        w.section(Section::Answer);
                        put_rrset(w, snap, ctx, ds, Owner::At(12), None, None);
                        if over(w, ctx) {
                            truncate(w, ctx);
                        }
                        Rcode::NOERROR
                    }
                    None => {
                        nodata(w, snap, ctx, node, key.labels());
                        Rcode::NOERROR
                    }
                }
            } else {
                let labels = zone_labels_of(zone, node);
                referral(w, snap, ctx, node, qname_offset(ctx.qname, labels));
                Rcode::NOERROR
            }
        }
        Lookup::NxDomain {
            encloser,
            encloser_labels,
        } => {
            if let Some(wc) = zone.wildcard_child(encloser) {
                return wildcard(w, snap, ctx, wc, encloser_labels);
            }
            nxdomain(w, snap, ctx, encloser_labels)
        }
    }
}

/// Label count of a node's name.
fn zone_labels_of(zone: &Zone, node: u32) -> usize {
    zone.node_key(node).iter().filter(|&&b| b == 0).count()
}

fn answer_node(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    node: u32,
    owner: Owner<'_>,
    qlabels: usize,
) -> Rcode {
    let zone = &*snap.zone;
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
        if let Some(signed) = snap.dnssec.as_deref() {
            signed.write_apex_extra(w, zone, kind, ctx.dnssec);
        }
        if over(w, ctx) {
            truncate(w, ctx);
        }
        return Rcode::NOERROR;
    }
    let Some(rtype) = wanted else {
        nodata(w, snap, ctx, node, qlabels);
        return Rcode::NOERROR;
    };
    let Some(set_idx) = zone.rrset_index(node, rtype) else {
        nodata(w, snap, ctx, node, qlabels);
        return Rcode::NOERROR;
    };
    w.section(Section::Answer);
    let mut offs = [0u16; MAX_NS];
    let is_soa = set_idx == zone.soa_index();
    if is_soa {
        write_soa(w, snap, ctx, owner, None);
    } else {
        put_rrset(w, snap, ctx, set_idx, owner, None, Some(&mut offs));
    }
    if over(w, ctx) {
        truncate(w, ctx);
        return Rcode::NOERROR;
    }
    if rtype == Rtype::NS {
        w.section(Section::Additional);
        add_glue(w, snap, ctx, node, &offs);
    }
    Rcode::NOERROR
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
        if let Some(signed) = snap.dnssec.as_deref() {
            signed.write_soa_rrsigs(w, ttl, owner_ref(owner));
        }
    }
}

fn referral(w: &mut Writer<'_>, snap: &Snapshot, ctx: &Ctx<'_>, node: u32, owner_off: u16) {
    let zone = &*snap.zone;
    let Some(ns) = zone.rrset_index(node, Rtype::NS) else {
        return;
    };
    w.section(Section::Authority);
    let mut offs = [0u16; MAX_NS];
    put_rrset_unsigned(w, zone, ns, owner_off, &mut offs);
    if zone.node(node).flags & SECURE != 0 {
        if let Some(ds) = zone.rrset_index(node, Rtype::DS) {
            put_rrset(w, snap, ctx, ds, Owner::At(owner_off), None, None);
        }
    } else if ctx.dnssec {
        if let Some(signed) = snap.dnssec.as_deref() {
            // RFC 5155 §7.2.7: closest provable encloser + opt-out cover of the next closer.
            // The closest provable encloser is the delegation's parent (always in the chain).
            let labels = zone_labels_of(zone, node);
            let dname = name::ancestor(ctx.qname, labels);
            signed.write_closest_encloser_proof(w, zone, dname, labels - 1, false, Some(node));
        }
    }
    if over(w, ctx) {
        truncate(w, ctx);
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
    owner_off: u16,
    offs: &mut [u16; MAX_NS],
) {
    let set = zone.rrset(set_idx);
    for (i, rdata) in zone.rdatas(set).enumerate() {
        let at = w.len() + 12;
        w.record_at(owner_off, set.rtype, 1, set.ttl, rdata);
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
            if let Some(signed) = snap.dnssec.as_deref() {
                let owner = if idx < MAX_NS && offs[idx] != 0 {
                    crate::dnssec::OwnerRef::At(offs[idx])
                } else {
                    crate::dnssec::OwnerRef::At(12)
                };
                signed.write_rrsigs(w, zone, g.rrset, set.ttl, owner);
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

fn nodata(w: &mut Writer<'_>, snap: &Snapshot, ctx: &Ctx<'_>, node: u32, qlabels: usize) {
    let zone = &*snap.zone;
    negative(w, snap, ctx, |signed, w| {
        signed.write_nodata_proof(w, zone, ctx.qname, qlabels, node, ctx.qtype)
    });
}

/// A negative answer: AA, the SOA with the negative TTL, then the denial `proof` when DNSSEC is wanted.
fn negative(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    proof: impl FnOnce(&crate::dnssec::Signed, &mut Writer<'_>),
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
        if let Some(signed) = snap.dnssec.as_deref() {
            proof(signed, w);
        }
    }
    if over(w, ctx) {
        truncate(w, ctx);
    }
}

fn nxdomain(w: &mut Writer<'_>, snap: &Snapshot, ctx: &Ctx<'_>, encloser_labels: usize) -> Rcode {
    let zone = &*snap.zone;
    negative(w, snap, ctx, |signed, w| {
        signed.write_closest_encloser_proof(w, zone, ctx.qname, encloser_labels, true, None)
    });
    Rcode::NXDOMAIN
}

fn wildcard(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    ctx: &Ctx<'_>,
    wc: u32,
    encloser_labels: usize,
) -> Rcode {
    let zone = &*snap.zone;
    if zone.node(wc).flags & DELEGATION != 0 {
        // A wildcard delegation is not synthesised; treat the name as absent.
        return nxdomain(w, snap, ctx, encloser_labels);
    }
    let has_data = zone
        .rrsets(wc)
        .iter()
        .any(|s| s.rtype == ctx.qtype || s.rtype == Rtype::CNAME || ctx.qtype == Rtype::ANY);
    if !has_data {
        // RFC 5155 §7.2.5: NODATA through a wildcard proves the closest encloser,
        // covers the next closer name and matches the wildcard.
        negative(w, snap, ctx, |signed, w| {
            signed.write_wildcard_nodata_proof(w, zone, ctx.qname, encloser_labels)
        });
        return Rcode::NOERROR;
    }
    let rc = answer_node(w, snap, ctx, wc, Owner::At(12), encloser_labels + 1);
    if ctx.dnssec && w.flags() & flags::TC == 0 {
        if let Some(signed) = snap.dnssec.as_deref() {
            // RFC 5155 §7.2.6: prove that the next closer name does not exist.
            w.section(Section::Authority);
            signed.write_wildcard_proof(w, zone, ctx.qname, encloser_labels);
            if over(w, ctx) {
                truncate(w, ctx);
            }
        }
    }
    rc
}
