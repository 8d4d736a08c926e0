//! Answer-kind tests of the sans-IO handler against a small hand-built zone.

use super::*;
use crate::name::from_text;
use crate::wire::decode::{build_query, decode, Message};
use crate::zone::ZoneBuilder;
use std::path::Path;

fn n(s: &str) -> Vec<u8> {
    from_text(s, &[0]).unwrap()
}

fn ds_rdata() -> Vec<u8> {
    let mut v = vec![0x30, 0x39, 13, 2];
    v.extend_from_slice(&[0xAB; 32]);
    v
}

/// The test zone, in the order a zone file would give it.
pub(crate) fn test_zone() -> Zone {
    let mut b = ZoneBuilder::new(&n("be."));
    let f = Path::new("test.zone");
    let mut line = 0;
    let mut add = |owner: &str, t: Rtype, ttl: u32, rdata: &[u8]| {
        line += 1;
        b.add(&n(owner), 1, t.0, ttl, rdata, f, line).unwrap();
    };
    let mut soa = n("a.nsset.be.");
    soa.extend_from_slice(&n("tech.dns.be."));
    for v in [2024061101u32, 3600, 1800, 3_600_000, 600] {
        soa.extend_from_slice(&v.to_be_bytes());
    }
    add("be.", Rtype::SOA, 3600, &soa);
    add("be.", Rtype::NS, 86400, &n("a.nsset.be."));
    add("be.", Rtype::NS, 86400, &n("b.nsset.be."));
    add("be.", Rtype::TXT, 3600, b"\x05hello");
    add("a.nsset.be.", Rtype::A, 86400, &[192, 0, 2, 1]);
    add(
        "a.nsset.be.",
        Rtype::AAAA,
        86400,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    add("b.nsset.be.", Rtype::A, 86400, &[192, 0, 2, 2]);
    add("secure.be.", Rtype::NS, 3600, &n("ns1.example.net."));
    add("secure.be.", Rtype::NS, 3600, &n("ns2.example.net."));
    add("secure.be.", Rtype::DS, 3600, &ds_rdata());
    add("insecure.be.", Rtype::NS, 3600, &n("ns1.example.net."));
    add("glued.be.", Rtype::NS, 3600, &n("ns1.glued.be."));
    add("glued.be.", Rtype::NS, 3600, &n("ns2.glued.be."));
    add("ns1.glued.be.", Rtype::A, 3600, &[198, 51, 100, 1]);
    add(
        "ns1.glued.be.",
        Rtype::AAAA,
        3600,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    );
    add("ns2.glued.be.", Rtype::A, 3600, &[198, 51, 100, 2]);
    add("shared.be.", Rtype::NS, 3600, &n("ns1.glued.be."));
    add("fed.gov.be.", Rtype::NS, 3600, &n("ns.example.org."));
    // The registry's own data and in-zone CNAMEs (followed by the handler).
    add("nic.be.", Rtype::A, 3600, &[192, 0, 2, 53]);
    add("www.nic.be.", Rtype::CNAME, 3600, &n("nic.be."));
    add("web.nic.be.", Rtype::CNAME, 3600, &n("www.nic.be."));
    add("loop-a.nic.be.", Rtype::CNAME, 3600, &n("loop-b.nic.be."));
    add("loop-b.nic.be.", Rtype::CNAME, 3600, &n("loop-a.nic.be."));
    add(
        "delegated.nic.be.",
        Rtype::CNAME,
        3600,
        &n("www.secure.be."),
    );
    add(
        "insecure.nic.be.",
        Rtype::CNAME,
        3600,
        &n("www.insecure.be."),
    );
    add("old.nic.be.", Rtype::CNAME, 3600, &n("retired.nic.be."));
    add("mail.nic.be.", Rtype::CNAME, 3600, &n("mail.example.net."));
    add("apex.nic.be.", Rtype::CNAME, 3600, &n("be."));
    add("*.pages.nic.be.", Rtype::CNAME, 3600, &n("www.nic.be."));
    add("blocked.nic.be.", Rtype::CNAME, 3600, &n("www.glued.be."));
    // A chain longer than the handler follows: c0 -> c1 -> ... -> c11 -> nic.be.
    for i in 0..12 {
        let next = if i == 11 {
            "nic.be.".to_string()
        } else {
            format!("c{}.nic.be.", i + 1)
        };
        add(&format!("c{i}.nic.be."), Rtype::CNAME, 3600, &n(&next));
    }
    for i in 0..13 {
        let t = format!("ns{i}.big.be.");
        add("big.be.", Rtype::NS, 3600, &n(&t));
        add(&t, Rtype::A, 3600, &[203, 0, 113, i as u8]);
        add(
            &t,
            Rtype::AAAA,
            3600,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, i as u8],
        );
    }
    b.finish().unwrap()
}

/// A version of a zone through the publisher: signed (one fresh ECDSA CSK; `fault`
/// names an owner whose RRsets cannot be signed) or not, with `suppressed` domains.
pub(crate) fn version(
    mut zone: Zone,
    signed: bool,
    fault: Option<&str>,
    suppressed: &[&str],
) -> Snapshot {
    use crate::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
    let dnssec = signed.then(|| {
        let der = key::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Csk, &der).unwrap();
        let mut signer =
            crate::dnssec::Signer::new(zone.origin(), vec![k], Default::default()).unwrap();
        signer.inject_sign_fault(fault.map(n).as_deref());
        crate::publish::initial_dnssec(&mut zone, Arc::new(signer)).unwrap()
    });
    let serial = zone.serial();
    let list = suppressed
        .iter()
        .map(|d| crate::publish::change::Suppression {
            name: n(d),
            reason: "test".into(),
            case: "T-1".into(),
            added_by: "test".into(),
            added_at: 0,
            expires: None,
            ede: crate::suppress::EdeKind::Blocked,
        })
        .collect();
    let p = crate::publish::Publisher::new(
        zone,
        dnssec,
        list,
        serial,
        crate::publish::Settings::default(),
        crate::publish::Sinks::default(),
    )
    .unwrap();
    let a = p.snapshot_full();
    Snapshot {
        zone: a.zone.clone(),
        dnssec: a.dnssec.clone(),
        suppressions: a.suppressions.clone(),
        serial: a.serial,
    }
}

/// A signed version of a zone; `fault` names an owner whose RRsets cannot be signed.
pub(crate) fn signed_snapshot(zone: Zone, fault: Option<&str>) -> Snapshot {
    version(zone, true, fault, &[])
}

/// An unsigned version of a zone.
pub(crate) fn snapshot(zone: Zone) -> Snapshot {
    version(zone, false, None, &[])
}

/// An unsigned version of the test zone with some domains suppressed.
pub(crate) fn suppressed(domains: &[&str]) -> Snapshot {
    version(test_zone(), false, None, domains)
}

fn ask(snap: &Snapshot, q: &[u8], tcp: bool) -> Option<Message> {
    let mut out = Vec::new();
    if !handle(snap, &HandlerConfig::default(), q, tcp, &mut out) {
        return None;
    }
    Some(decode(&out).expect("handler output decodes"))
}

fn query(snap: &Snapshot, name: &str, t: Rtype) -> Message {
    ask(
        snap,
        &build_query(7, &n(name), t, Some((1232, false))),
        false,
    )
    .unwrap()
}

fn query_do(snap: &Snapshot, name: &str, t: Rtype) -> Message {
    ask(
        snap,
        &build_query(7, &n(name), t, Some((1232, true))),
        false,
    )
    .unwrap()
}

fn query_plain(snap: &Snapshot, name: &str, t: Rtype) -> Message {
    ask(snap, &build_query(7, &n(name), t, None), false).unwrap()
}

/// Record types of a section, in order.
fn types(section: &[crate::wire::decode::Record]) -> Vec<Rtype> {
    section.iter().map(|r| r.rtype).collect()
}

#[test]
fn referral_to_secure_delegation_has_ns_no_aa_and_ds_only_with_do() {
    let s = signed_snapshot(test_zone(), None);
    for m in [
        query(&s, "www.secure.be.", Rtype::A),
        query_plain(&s, "www.secure.be.", Rtype::A),
    ] {
        assert_eq!(m.rcode, 0);
        assert!(!m.flag(flags::AA));
        assert!(m.answer.is_empty());
        assert_eq!(
            types(&m.authority),
            [Rtype::NS, Rtype::NS],
            "no DS without DO"
        );
        assert_eq!(m.authority[0].owner, n("secure.be."));
        assert!(m.additional.is_empty());
    }
    let m = query_do(&s, "www.secure.be.", Rtype::A);
    assert_eq!(
        types(&m.authority),
        [Rtype::NS, Rtype::NS, Rtype::DS, Rtype::RRSIG],
        "RFC 4035 3.1.4: DS and its RRSIG with DO"
    );
    // An unsigned zone has no DNSSEC to give, even with DO.
    let u = snapshot(test_zone());
    let m = query_do(&u, "www.secure.be.", Rtype::A);
    assert_eq!(types(&m.authority), [Rtype::NS, Rtype::NS]);
}

/// RFC 3225 §3: without DO no DNSSEC record is returned, unless the query type asks for it.
#[test]
fn dnssec_records_only_with_do_or_when_asked_for() {
    let s = version(test_zone(), true, None, &["glued.be."]);
    let dnssec_types = [
        Rtype::RRSIG,
        Rtype::NSEC3,
        Rtype::DS,
        Rtype::DNSKEY,
        Rtype::NSEC3PARAM,
    ];
    let cases = [
        ("www.secure.be.", Rtype::A),
        ("www.insecure.be.", Rtype::A),
        ("secure.be.", Rtype::DS),
        ("insecure.be.", Rtype::DS),
        ("nothere.be.", Rtype::A),
        ("be.", Rtype::MX),
        ("be.", Rtype::SOA),
        ("be.", Rtype::NS),
        ("be.", Rtype::DNSKEY),
        ("be.", Rtype::NSEC3PARAM),
        ("www.glued.be.", Rtype::A),
        ("www.nic.be.", Rtype::A),
        ("x.pages.nic.be.", Rtype::A),
        ("old.nic.be.", Rtype::A),
    ];
    for (name, t) in cases {
        for (label, m) in [
            ("DO=0", query(&s, name, t)),
            ("no EDNS", query_plain(&s, name, t)),
        ] {
            for r in m.answer.iter().chain(&m.authority).chain(&m.additional) {
                assert!(
                    !dnssec_types.contains(&r.rtype) || r.rtype == t,
                    "{name} {t:?} {label}: {:?} without DO",
                    r.rtype
                );
            }
        }
        let m = query_do(&s, name, t);
        let all: Vec<Rtype> = m
            .answer
            .iter()
            .chain(&m.authority)
            .map(|r| r.rtype)
            .collect();
        assert!(
            all.contains(&Rtype::RRSIG),
            "{name} {t:?} DO=1 is signed: {all:?}"
        );
    }
    // Asked for by type: answered whatever DO says.
    assert_eq!(
        types(&query_plain(&s, "be.", Rtype::DNSKEY).answer),
        [Rtype::DNSKEY]
    );
    assert_eq!(
        types(&query(&s, "secure.be.", Rtype::DS).answer),
        [Rtype::DS]
    );
}

#[test]
fn referral_carries_in_domain_and_sibling_glue() {
    let s = snapshot(test_zone());
    let m = query(&s, "glued.be.", Rtype::A);
    assert!(!m.flag(flags::AA));
    assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 2);
    assert_eq!(Message::of(&m.additional, Rtype::A).len(), 2);
    assert_eq!(Message::of(&m.additional, Rtype::AAAA).len(), 1);
    assert_eq!(m.additional[0].owner, n("ns1.glued.be."));
    let m = query(&s, "shared.be.", Rtype::NS);
    assert_eq!(
        Message::of(&m.additional, Rtype::A).len(),
        1,
        "sibling glue"
    );
}

#[test]
fn cname_to_in_zone_data_is_followed() {
    let s = snapshot(test_zone());
    let m = query(&s, "www.nic.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert!(m.flag(flags::AA));
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::A]);
    assert_eq!(m.answer[0].owner, n("www.nic.be."));
    assert_eq!(m.answer[0].rdata, n("nic.be."));
    assert_eq!(m.answer[1].owner, n("nic.be."));
    assert_eq!(m.answer[1].rdata, [192, 0, 2, 53]);
    assert!(m.authority.is_empty());
    // Two links.
    let m = query(&s, "web.nic.be.", Rtype::A);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::CNAME, Rtype::A]);
    assert_eq!(m.answer[1].owner, n("www.nic.be."));
    // The CNAME itself, and ANY, are not followed.
    let m = query(&s, "www.nic.be.", Rtype::CNAME);
    assert_eq!(types(&m.answer), [Rtype::CNAME]);
    let m = query(&s, "www.nic.be.", Rtype::ANY);
    assert_eq!(types(&m.answer), [Rtype::CNAME]);
    // Out of the zone: only the CNAME.
    let m = query(&s, "mail.nic.be.", Rtype::A);
    assert_eq!((m.rcode, types(&m.answer)), (0, vec![Rtype::CNAME]));
    assert!(m.authority.is_empty());
    // To the apex: its SOA, its NS with glue.
    let m = query(&s, "apex.nic.be.", Rtype::SOA);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::SOA]);
    let m = query(&s, "apex.nic.be.", Rtype::NS);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::NS, Rtype::NS]);
    assert_eq!(Message::of(&m.additional, Rtype::A).len(), 2);
}

#[test]
fn cname_target_without_the_type_is_nodata_and_missing_target_is_nxdomain() {
    let s = signed_snapshot(test_zone(), None);
    // NODATA at the target: NOERROR, the CNAME, the SOA; the NSEC3 of the target under DO.
    let m = query(&s, "www.nic.be.", Rtype::MX);
    assert_eq!(m.rcode, 0);
    assert_eq!(types(&m.answer), [Rtype::CNAME]);
    assert_eq!(types(&m.authority), [Rtype::SOA]);
    let m = query_do(&s, "www.nic.be.", Rtype::MX);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::RRSIG]);
    let nsec3 = Message::of(&m.authority, Rtype::NSEC3);
    assert_eq!(nsec3.len(), 1, "NSEC3 matching nic.be");
    let s3 = s.dnssec.as_ref().unwrap();
    let h = s3.hash_name(&n("nic.be."));
    assert_eq!(
        crate::dnssec::nsec3hash::base32hex_decode(&nsec3[0].owner[1..33]).unwrap(),
        h
    );
    // Missing target: NXDOMAIN (RFC 6604), the CNAME in the answer, the denial of the target.
    let m = query(&s, "old.nic.be.", Rtype::A);
    assert_eq!(m.rcode, 3);
    assert!(m.flag(flags::AA));
    assert_eq!(types(&m.answer), [Rtype::CNAME]);
    assert_eq!(types(&m.authority), [Rtype::SOA]);
    let m = query_do(&s, "old.nic.be.", Rtype::A);
    assert_eq!(m.rcode, 3);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::RRSIG]);
    let nsec3 = Message::of(&m.authority, Rtype::NSEC3);
    assert!((2..=3).contains(&nsec3.len()), "{:?}", types(&m.authority));
    let owners: Vec<[u8; 20]> = nsec3
        .iter()
        .map(|r| crate::dnssec::nsec3hash::base32hex_decode(&r.owner[1..33]).unwrap())
        .collect();
    assert!(
        owners.contains(&s3.hash_name(&n("nic.be."))),
        "closest encloser of retired.nic.be is nic.be"
    );
}

#[test]
fn cname_below_a_delegation_gives_cname_and_referral() {
    let s = signed_snapshot(test_zone(), None);
    let m = query(&s, "delegated.nic.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert!(m.flag(flags::AA), "AA for the authoritative CNAME");
    assert_eq!(types(&m.answer), [Rtype::CNAME]);
    assert_eq!(types(&m.authority), [Rtype::NS, Rtype::NS]);
    assert_eq!(m.authority[0].owner, n("secure.be."));
    let m = query_do(&s, "delegated.nic.be.", Rtype::A);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::RRSIG]);
    assert_eq!(
        types(&m.authority),
        [Rtype::NS, Rtype::NS, Rtype::DS, Rtype::RRSIG]
    );
    // An insecure delegation: the opt-out proof for it, under DO.
    let m = query_do(&s, "insecure.nic.be.", Rtype::A);
    assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 1);
    assert!(!Message::of(&m.authority, Rtype::NSEC3).is_empty());
    assert!(Message::of(&m.authority, Rtype::DS).is_empty());
    // Glue comes with the referral.
    let m = query(&s, "blocked.nic.be.", Rtype::A);
    assert_eq!(types(&m.answer), [Rtype::CNAME]);
    assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 2);
    assert_eq!(m.additional.len(), 3);
}

#[test]
fn cname_loops_and_long_chains_stop() {
    let s = snapshot(test_zone());
    let m = query(&s, "loop-a.nic.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::CNAME]);
    assert_eq!(m.answer[0].owner, n("loop-a.nic.be."));
    assert_eq!(m.answer[1].owner, n("loop-b.nic.be."));
    let m = query(&s, "c0.nic.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert_eq!(m.answer.len(), answer::MAX_CHAIN + 1);
    assert!(m.answer.iter().all(|r| r.rtype == Rtype::CNAME));
    let m = query(&s, "c4.nic.be.", Rtype::A);
    assert_eq!(
        types(&m.answer).last(),
        Some(&Rtype::A),
        "8 links are followed"
    );
    assert_eq!(m.answer.len(), 9);
}

#[test]
fn wildcard_cname_keeps_its_proof_and_is_followed() {
    let s = signed_snapshot(test_zone(), None);
    let m = query(&s, "x.pages.nic.be.", Rtype::A);
    assert_eq!(types(&m.answer), [Rtype::CNAME, Rtype::CNAME, Rtype::A]);
    assert_eq!(m.answer[0].owner, n("x.pages.nic.be."));
    assert!(m.authority.is_empty());
    let m = query_do(&s, "x.pages.nic.be.", Rtype::A);
    assert_eq!(
        types(&m.answer),
        [
            Rtype::CNAME,
            Rtype::RRSIG,
            Rtype::CNAME,
            Rtype::RRSIG,
            Rtype::A,
            Rtype::RRSIG
        ]
    );
    // RRSIG labels 3 (*.pages.nic.be without the `*`) on a 4-label owner: synthesised.
    assert_eq!(m.answer[1].rdata[3], 3);
    assert_eq!(types(&m.authority), [Rtype::NSEC3, Rtype::RRSIG]);
    // The wildcard proof also comes with a negative end of the chain.
    let m = query_do(&s, "x.pages.nic.be.", Rtype::MX);
    assert_eq!(
        types(&m.answer),
        [Rtype::CNAME, Rtype::RRSIG, Rtype::CNAME, Rtype::RRSIG]
    );
    assert_eq!(Message::of(&m.authority, Rtype::SOA).len(), 1);
    assert_eq!(Message::of(&m.authority, Rtype::NSEC3).len(), 2);
}

#[test]
fn cname_to_a_suppressed_domain_is_nxdomain_with_ede() {
    let s = suppressed(&["glued.be."]);
    let m = query(&s, "blocked.nic.be.", Rtype::A);
    assert_eq!(m.rcode, 3);
    assert_eq!(types(&m.answer), [Rtype::CNAME]);
    assert_eq!(
        types(&m.authority),
        [Rtype::SOA],
        "no NS of the suppressed domain"
    );
    assert!(m.additional.is_empty());
    assert_eq!(m.ede, Some((15, "suspended by the registry".into())));
}

/// A signature that cannot be made: SERVFAIL with an EDE for DO=1, counted; DO=0 unchanged.
#[test]
fn signing_failure_is_servfail_with_ede_for_do_only() {
    let s = signed_snapshot(test_zone(), Some("nic.be."));
    let signer = &s.dnssec.as_ref().unwrap().signer;
    let before = signer.signing_failures();
    for name in ["nic.be.", "www.nic.be."] {
        let m = query_do(&s, name, Rtype::A);
        assert_eq!(m.rcode, 2, "{name}");
        assert!(!m.flag(flags::AA));
        assert!(m.answer.is_empty() && m.authority.is_empty() && m.additional.is_empty());
        assert_eq!(
            m.ede,
            Some((0, "DNSSEC signature could not be made".into())),
            "{name}"
        );
        assert_eq!(m.opt.map(|o| o.2), Some(true));
        let m = query(&s, name, Rtype::A);
        assert_eq!(m.rcode, 0);
        assert_eq!(types(&m.answer).last(), Some(&Rtype::A), "{name} DO=0");
        let m = query_plain(&s, name, Rtype::A);
        assert_eq!(m.rcode, 0);
        assert!(m.ede.is_none());
    }
    assert_eq!(signer.signing_failures(), before + 2);
    // Other names are signed as usual.
    let m = query_do(&s, "be.", Rtype::SOA);
    assert_eq!(types(&m.answer), [Rtype::SOA, Rtype::RRSIG]);
    let m = query_do(&s, "nothere.be.", Rtype::A);
    assert_eq!(m.rcode, 3);
}

#[test]
fn ds_is_answered_from_the_parent_side() {
    let s = snapshot(test_zone());
    let m = query(&s, "secure.be.", Rtype::DS);
    assert!(m.flag(flags::AA));
    assert_eq!(m.answer.len(), 1);
    assert_eq!(m.answer[0].rdata, ds_rdata());
    let m = query(&s, "insecure.be.", Rtype::DS);
    assert!(m.flag(flags::AA));
    assert_eq!(m.rcode, 0);
    assert!(m.answer.is_empty());
    assert_eq!(Message::of(&m.authority, Rtype::SOA).len(), 1);
}

#[test]
fn nxdomain_and_nodata_carry_soa_with_negative_ttl() {
    let s = snapshot(test_zone());
    let m = query(&s, "nonexistent.be.", Rtype::A);
    assert_eq!(m.rcode, 3);
    assert!(m.flag(flags::AA));
    assert_eq!(m.authority.len(), 1);
    assert_eq!(m.authority[0].rtype, Rtype::SOA);
    assert_eq!(m.authority[0].ttl, 600);
    let m = query(&s, "be.", Rtype::MX);
    assert_eq!(m.rcode, 0);
    assert!(m.answer.is_empty());
    assert_eq!(m.authority[0].rtype, Rtype::SOA);
    // gov.be exists only as an empty non-terminal.
    let m = query(&s, "gov.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert!(m.flag(flags::AA));
    assert_eq!(m.authority[0].rtype, Rtype::SOA);
    let m = query(&s, "x.gov.be.", Rtype::A);
    assert_eq!(m.rcode, 3);
}

#[test]
fn apex_answers_are_authoritative() {
    let s = snapshot(test_zone());
    let m = query(&s, "be.", Rtype::SOA);
    assert!(m.flag(flags::AA));
    assert_eq!(m.answer.len(), 1);
    let m = query(&s, "be.", Rtype::NS);
    assert!(m.flag(flags::AA));
    assert_eq!(m.answer.len(), 2);
    assert_eq!(Message::of(&m.additional, Rtype::A).len(), 2);
    assert_eq!(Message::of(&m.additional, Rtype::AAAA).len(), 1);
    let m = query(&s, "be.", Rtype::TXT);
    assert_eq!(m.answer[0].rdata, b"\x05hello");
    let m = query(&s, "be.", Rtype::ANY);
    assert_eq!(m.answer.len(), 2, "one RRset (RFC 8482)");
    let m = query(&s, "a.nsset.be.", Rtype::A);
    assert!(m.flag(flags::AA));
    assert_eq!(m.answer.len(), 1);
}

#[test]
fn refused_formerr_notimp_badvers_and_drop() {
    let s = snapshot(test_zone());
    let m = query(&s, "example.com.", Rtype::A);
    assert_eq!(m.rcode, 5);
    assert!(!m.flag(flags::AA));
    let mut q = build_query(9, &n("be."), Rtype::SOA, None);
    q[5] = 2;
    let m = ask(&s, &q, false).unwrap();
    assert_eq!(m.rcode, 1);
    assert_eq!(m.id, 9);
    let mut q = build_query(9, &n("be."), Rtype::SOA, None);
    q[2] = 2 << 3; // opcode STATUS
    let m = ask(&s, &q, false).unwrap();
    assert_eq!(m.rcode, 4);
    let mut q = build_query(9, &n("be."), Rtype::SOA, Some((1232, false)));
    let l = q.len();
    q[l - 5] = 1; // EDNS version 1
    let m = ask(&s, &q, false).unwrap();
    assert_eq!(m.rcode, 16);
    assert!(m.opt.is_some());
    let mut q = build_query(9, &n("be."), Rtype::SOA, None);
    q[2] |= 0x80;
    assert!(ask(&s, &q, false).is_none(), "responses are dropped");
    assert!(ask(&s, &[1, 2, 3], false).is_none());
    let m = ask(&s, &build_query(3, &n("be."), Rtype::AXFR, None), true).unwrap();
    assert_eq!(m.rcode, 5);
}

#[test]
fn edns_is_echoed_and_do_bit_carried() {
    let s = snapshot(test_zone());
    let m = ask(
        &s,
        &build_query(1, &n("be."), Rtype::SOA, Some((4096, true))),
        false,
    )
    .unwrap();
    assert_eq!(m.opt, Some((1232, 0, true)));
    let m = ask(&s, &build_query(1, &n("be."), Rtype::SOA, None), false).unwrap();
    assert!(m.opt.is_none());
}

#[test]
fn truncation_then_full_answer_over_tcp() {
    let s = snapshot(test_zone());
    let q = build_query(5, &n("big.be."), Rtype::A, None);
    let m = ask(&s, &q, false).unwrap();
    assert!(m.flag(flags::TC));
    let m = ask(&s, &q, true).unwrap();
    assert!(!m.flag(flags::TC));
    assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 13);
    assert_eq!(m.additional.len(), 26);
}

#[test]
fn query_name_case_is_preserved() {
    let s = snapshot(test_zone());
    let m = query(&s, "WwW.SeCuRe.Be.", Rtype::A);
    assert_eq!(m.qname, n("WwW.SeCuRe.Be."));
    assert_eq!(m.authority[0].owner, n("SeCuRe.Be."));
}

#[test]
fn chaos_identity_refused_unless_configured() {
    let s = snapshot(test_zone());
    let mut q = build_query(1, &n("version.bind."), Rtype::TXT, None);
    let l = q.len();
    q[l - 1] = 3; // class CH
    let mut out = Vec::new();
    handle(&s, &HandlerConfig::default(), &q, false, &mut out);
    assert_eq!(decode(&out).unwrap().rcode, 5);
    let cfg = HandlerConfig {
        version: Some("belfry".into()),
        ..HandlerConfig::default()
    };
    handle(&s, &cfg, &q, false, &mut out);
    let m = decode(&out).unwrap();
    assert_eq!(m.rcode, 0);
    assert_eq!(m.answer[0].rdata, b"\x06belfry");
}

#[test]
fn suppressed_names_get_nxdomain_with_ede() {
    let s = suppressed(&["secure.be."]);
    for name in ["secure.be.", "www.secure.be."] {
        let m = query(&s, name, Rtype::A);
        assert_eq!(m.rcode, 3, "{name}");
        assert!(m.flag(flags::AA));
        assert_eq!(m.ede, Some((15, "suspended by the registry".into())));
        assert_eq!(m.authority[0].rtype, Rtype::SOA);
    }
    let m = query(&s, "secure.be.", Rtype::DS);
    assert_eq!(m.rcode, 3);
    let m = query(&s, "insecure.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert!(m.ede.is_none());
}

proptest::proptest! {
    #[test]
    fn handler_never_panics(bytes in proptest::collection::vec(0u8..=255, 0..300)) {
        let s = snapshot(test_zone());
        let mut out = Vec::new();
        let _ = handle(&s, &HandlerConfig::default(), &bytes, false, &mut out);
    }

    #[test]
    fn handler_never_panics_on_mutated_queries(pos in 0usize..40, val in 0u8..=255, t in 0u16..300) {
        let s = snapshot(test_zone());
        let mut q = build_query(1, &n("www.glued.be."), Rtype(t), Some((1232, true)));
        if pos < q.len() { q[pos] = val; }
        let mut out = Vec::new();
        let _ = handle(&s, &HandlerConfig::default(), &q, false, &mut out);
    }
}

/// Cookie secrets for the tests.
fn test_secrets() -> crate::cookie::Secrets {
    crate::cookie::Secrets::new(vec![crate::cookie::Secret::from_hex(
        "000102030405060708090a0b0c0d0e0f",
    )
    .unwrap()])
    .unwrap()
}

fn client(ip: &str, tcp: bool, now: u32) -> Client {
    Client {
        ip: ip.parse().unwrap(),
        tcp,
        now,
    }
}

/// A query with EDNS options, answered with guards.
fn guarded(
    snap: &Snapshot,
    cfg: &HandlerConfig,
    g: &Guards<'_>,
    c: &Client,
    q: &[u8],
) -> (Outcome, Option<Message>) {
    let mut out = Vec::new();
    let o = respond(snap, cfg, g, q, c, &mut out);
    (o, o.sent.then(|| decode(&out).expect("answer decodes")))
}

#[test]
fn cookies_are_made_echoed_renewed_and_refused_as_rfc_7873_asks() {
    use crate::wire::decode::build_query_with;
    use crate::wire::types::option;
    let s = snapshot(test_zone());
    let cfg = HandlerConfig::default();
    let secrets = test_secrets();
    let g = Guards {
        rrl: None,
        cookies: Some(&secrets),
    };
    let now = 1_800_000_000;
    let c = client("192.0.2.1", false, now);
    let ask = |cookie: &[u8], c: &Client| {
        let q = build_query_with(
            1,
            &n("be."),
            Rtype::SOA,
            (1232, false),
            &[(option::COOKIE, cookie)],
        );
        guarded(&s, &cfg, &g, c, &q)
    };
    // A client cookie alone: a normal answer with our new server cookie (§5.2.3).
    let (o, m) = ask(&[7; 8], &c);
    let m = m.unwrap();
    assert_eq!((o.cookie, m.rcode), (CookieSeen::ClientOnly, 0));
    assert_eq!(m.answer.len(), 1);
    let cookie = m.option(option::COOKIE).unwrap().to_vec();
    assert_eq!(cookie.len(), 24);
    assert_eq!(&cookie[..8], &[7; 8]);
    assert_eq!(
        secrets.check(&cookie, c.ip, now),
        crate::cookie::Verdict::Valid
    );
    // Our cookie back: valid, echoed unchanged.
    let (o, m) = ask(&cookie, &client("192.0.2.1", false, now + 60));
    assert_eq!(o.cookie, CookieSeen::Valid);
    assert_eq!(m.unwrap().option(option::COOKIE).unwrap(), &cookie[..]);
    // After half an hour: still valid, renewed.
    let (o, m) = ask(&cookie, &client("192.0.2.1", false, now + 2000));
    assert_eq!(o.cookie, CookieSeen::Renewed);
    let m = m.unwrap();
    assert_eq!(m.rcode, 0);
    assert_ne!(m.option(option::COOKIE).unwrap(), &cookie[..]);
    // Stale (over an hour), forged, or from another address: BADCOOKIE over UDP with
    // a new cookie and no records (§5.2.4), a normal answer over TCP.
    let mut forged = cookie.clone();
    forged[20] ^= 0x55;
    for (what, ck, c) in [
        ("stale", &cookie, client("192.0.2.1", false, now + 3601)),
        ("forged", &forged, client("192.0.2.1", false, now)),
        ("other address", &cookie, client("192.0.2.2", false, now)),
    ] {
        let (o, m) = ask(ck, &c);
        let m = m.unwrap();
        assert_eq!(o.cookie, CookieSeen::Invalid, "{what}");
        assert_eq!(m.rcode, 23, "{what}: BADCOOKIE");
        assert!(m.answer.is_empty() && m.authority.is_empty(), "{what}");
        let fresh = m.option(option::COOKIE).unwrap();
        assert_eq!(
            secrets.check(fresh, c.ip, c.now),
            crate::cookie::Verdict::Valid,
            "{what}"
        );
        let mut tcp = c;
        tcp.tcp = true;
        let (_, m) = ask(ck, &tcp);
        let m = m.unwrap();
        assert_eq!((m.rcode, m.answer.len()), (0, 1), "{what} over TCP");
        assert!(m.option(option::COOKIE).is_some());
    }
    // Never BADCOOKIE without a server cookie; no cookie at all: no COOKIE in the answer.
    let (_, m) = guarded(
        &s,
        &cfg,
        &g,
        &c,
        &build_query(1, &n("be."), Rtype::SOA, Some((1232, false))),
    );
    assert!(m.unwrap().option(option::COOKIE).is_none());
    // Cookies off: the option is ignored (RFC 7873 §5.2.1).
    let (o, m) = guarded(
        &s,
        &cfg,
        &Guards::default(),
        &c,
        &build_query_with(
            1,
            &n("be."),
            Rtype::SOA,
            (1232, false),
            &[(option::COOKIE, &forged)],
        ),
    );
    assert_eq!(o.cookie, CookieSeen::None);
    let m = m.unwrap();
    assert_eq!(m.rcode, 0);
    assert!(m.option(option::COOKIE).is_none());
    // A malformed COOKIE (9 bytes) is FORMERR (§5.2.2).
    let (_, m) = ask(&[1; 9], &c);
    assert_eq!(m.unwrap().rcode, 1);
}

#[test]
fn nsid_only_when_configured_and_asked_for() {
    use crate::wire::decode::build_query_with;
    use crate::wire::types::option;
    let s = snapshot(test_zone());
    let on = HandlerConfig {
        nsid: Some(b"ns1.brussels".to_vec()),
        ..HandlerConfig::default()
    };
    let c = Client::local(false);
    let nsid_q = build_query_with(
        1,
        &n("www.glued.be."),
        Rtype::A,
        (1232, false),
        &[(option::NSID, b"")],
    );
    let (o, m) = guarded(&s, &on, &Guards::default(), &c, &nsid_q);
    assert!(o.nsid);
    assert_eq!(m.unwrap().option(option::NSID), Some(&b"ns1.brussels"[..]));
    let plain = build_query(1, &n("www.glued.be."), Rtype::A, Some((1232, false)));
    let (o, m) = guarded(&s, &on, &Guards::default(), &c, &plain);
    assert!(!o.nsid);
    assert!(m.unwrap().option(option::NSID).is_none(), "not asked");
    let (_, m) = guarded(
        &s,
        &HandlerConfig::default(),
        &Guards::default(),
        &c,
        &nsid_q,
    );
    assert!(m.unwrap().option(option::NSID).is_none(), "not configured");
    // With a suppressed name, NSID and EDE both fit.
    let sup = suppressed(&["secure.be."]);
    let q = build_query_with(
        1,
        &n("secure.be."),
        Rtype::A,
        (1232, false),
        &[(option::NSID, b"")],
    );
    let (_, m) = guarded(&sup, &on, &Guards::default(), &c, &q);
    let m = m.unwrap();
    assert_eq!(m.ede.as_ref().map(|e| e.0), Some(15));
    assert!(m.option(option::NSID).is_some());
}

#[test]
fn rate_limiting_drops_and_slips_udp_but_not_tcp_or_cookie_clients() {
    use crate::wire::decode::build_query_with;
    use crate::wire::types::option;
    let s = snapshot(test_zone());
    let cfg = HandlerConfig::default();
    let rrl = crate::rrl::Rrl::new(crate::rrl::Settings {
        rates: [5; 4],
        slip: 2,
        window: 1,
        table_size: 1024,
        ..Default::default()
    });
    let secrets = test_secrets();
    let g = Guards {
        rrl: Some(&rrl),
        cookies: Some(&secrets),
    };
    let now = 1_800_000_000;
    let q = build_query(1, &n("nothere.be."), Rtype::A, Some((1232, false)));
    let mut seen = Vec::new();
    for i in 0..25 {
        let (o, m) = guarded(
            &s,
            &cfg,
            &g,
            &client(&format!("198.51.100.{i}"), false, now),
            &q,
        );
        if o.rrl == Limited::Slipped {
            let m = m.unwrap();
            assert!(m.flag(flags::TC) && !m.flag(flags::AA));
            assert_eq!(m.rcode, 0);
            assert!(m.authority.is_empty() && m.answer.is_empty());
        }
        seen.push(o.rrl);
    }
    assert!(seen[..5].iter().all(|&x| x == Limited::Passed), "{seen:?}");
    assert_eq!(seen.iter().filter(|&&x| x == Limited::Slipped).count(), 10);
    assert_eq!(seen.iter().filter(|&&x| x == Limited::Dropped).count(), 10);
    // The same network over TCP, another network, and a client with a valid cookie.
    let (o, m) = guarded(&s, &cfg, &g, &client("198.51.100.1", true, now), &q);
    assert_eq!((o.rrl, m.unwrap().rcode), (Limited::NotCharged, 3));
    let (o, _) = guarded(&s, &cfg, &g, &client("198.51.101.1", false, now), &q);
    assert_eq!(o.rrl, Limited::Passed);
    let c = client("198.51.100.77", false, now);
    let cookie = secrets.make(&[3; 8], c.ip, now);
    let cq = build_query_with(
        1,
        &n("nothere.be."),
        Rtype::A,
        (1232, false),
        &[(option::COOKIE, &cookie)],
    );
    for _ in 0..20 {
        let (o, m) = guarded(&s, &cfg, &g, &c, &cq);
        assert_eq!((o.rrl, o.cookie), (Limited::NotCharged, CookieSeen::Valid));
        assert_eq!(m.unwrap().rcode, 3);
    }
    // A client cookie alone does not exempt; a slip keeps the new cookie so the client can
    // come back with it.
    let cq = build_query_with(
        1,
        &n("nothere.be."),
        Rtype::A,
        (1232, false),
        &[(option::COOKIE, &[3; 8])],
    );
    let mut slipped = None;
    for _ in 0..6 {
        let (o, m) = guarded(&s, &cfg, &g, &c, &cq);
        if o.rrl == Limited::Slipped {
            slipped = m;
        }
    }
    let m = slipped.expect("a slip");
    assert!(m.option(option::COOKIE).is_some_and(|k| k.len() == 24));
    // Malformed queries are charged as errors, and a dropped one sends nothing.
    let mut bad = build_query(1, &n("be."), Rtype::SOA, None);
    bad[5] = 2;
    let sent = (0..20)
        .filter(|_| {
            guarded(&s, &cfg, &g, &client("203.0.113.5", false, now), &bad)
                .0
                .sent
        })
        .count();
    assert!((5..20).contains(&sent), "{sent}");
}

#[test]
fn slipped_and_limited_answers_are_never_larger_than_the_query() {
    // The amplification a spoofed flood gets from a limited network is at most 1.
    let s = signed_snapshot(test_zone(), None);
    let cfg = HandlerConfig::default();
    let rrl = crate::rrl::Rrl::new(crate::rrl::Settings {
        rates: [1; 4],
        slip: 1,
        window: 1,
        table_size: 1024,
        ..Default::default()
    });
    let g = Guards {
        rrl: Some(&rrl),
        cookies: None,
    };
    for (name, t, edns) in [
        ("nothere.be.", Rtype::A, Some((1232, true))),
        ("www.glued.be.", Rtype::A, Some((4096, true))),
        ("big.be.", Rtype::NS, None),
        ("be.", Rtype::DNSKEY, Some((1232, true))),
    ] {
        let q = build_query(1, &n(name), t, edns);
        let mut out = Vec::new();
        let first = respond(&s, &cfg, &g, &q, &client("192.0.2.9", false, 5), &mut out);
        assert_eq!(first.rrl, Limited::Passed);
        let o = respond(&s, &cfg, &g, &q, &client("192.0.2.9", false, 5), &mut out);
        assert_eq!(o.rrl, Limited::Slipped, "{name}");
        assert!(out.len() <= q.len(), "{name}: {} > {}", out.len(), q.len());
    }
}

/// Counts heap allocations made by the current thread (for the steady-state test).
pub(crate) mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        pub static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: forwarding the caller's layout to the system allocator.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: `p` came from `alloc` above with the same layout.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: forwarding to the system allocator with the caller's arguments.
            unsafe { System.realloc(p, l, n) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn count() -> u64 {
        ALLOCS.with(|c| c.get())
    }
}

#[test]
fn steady_state_answers_do_not_allocate() {
    let s = suppressed(&["insecure.be."]);
    let cfg = HandlerConfig::default();
    let queries = [
        build_query(1, &n("www.glued.be."), Rtype::A, Some((1232, true))),
        build_query(2, &n("secure.be."), Rtype::NS, None),
        build_query(3, &n("nothere.be."), Rtype::A, Some((1232, true))),
        build_query(4, &n("be."), Rtype::SOA, Some((1232, false))),
        build_query(5, &n("secure.be."), Rtype::DS, Some((1232, true))),
        build_query(6, &n("www.insecure.be."), Rtype::A, Some((1232, true))),
        build_query(7, &n("web.nic.be."), Rtype::A, Some((1232, true))),
        build_query(8, &n("x.pages.nic.be."), Rtype::A, Some((1232, true))),
        build_query(9, &n("delegated.nic.be."), Rtype::A, None),
        build_query(10, &n("old.nic.be."), Rtype::A, Some((1232, true))),
    ];
    // The counter does see allocations on this thread.
    let before = counting::count();
    let v: Vec<u8> = Vec::with_capacity(16);
    drop(std::hint::black_box(v));
    assert!(counting::count() > before);
    let signed = version(test_zone(), true, None, &["insecure.be."]);
    let mut out = Vec::with_capacity(65535);
    // With rate limiting (passing, then dropping and slipping), cookies made, echoed and
    // refused, and NSID: still no allocation.
    let rrl = crate::rrl::Rrl::new(crate::rrl::Settings {
        rates: [3; 4],
        slip: 2,
        window: 1,
        table_size: 1024,
        ..Default::default()
    });
    let secrets = test_secrets();
    let guards = Guards {
        rrl: Some(&rrl),
        cookies: Some(&secrets),
    };
    let cfg_nsid = HandlerConfig {
        nsid: Some(b"ns1".to_vec()),
        ..HandlerConfig::default()
    };
    let c = client("192.0.2.1", false, 1_800_000_000);
    let good = secrets.make(&[1; 8], c.ip, c.now);
    let mut bad = good;
    bad[23] ^= 1;
    use crate::wire::decode::build_query_with;
    use crate::wire::types::option;
    let guarded_queries: Vec<Vec<u8>> = [&[2u8; 8][..], &good[..], &bad[..]]
        .iter()
        .map(|ck| {
            build_query_with(
                11,
                &n("nothere.be."),
                Rtype::A,
                (1232, true),
                &[(option::COOKIE, ck), (option::NSID, b"")],
            )
        })
        .chain(queries.iter().cloned())
        .collect();
    for q in &guarded_queries {
        respond(&signed, &cfg_nsid, &guards, q, &c, &mut out);
    }
    let mut actions = std::collections::HashSet::new();
    for round in 0..3 {
        for q in &guarded_queries {
            let before = counting::count();
            let o = respond(&signed, &cfg_nsid, &guards, q, &c, &mut out);
            let made = counting::count() - before;
            assert_eq!(made, 0, "round {round}: {o:?} allocated {made} times");
            actions.insert(format!("{:?}/{:?}", o.rrl, o.cookie));
        }
    }
    for want in [
        "Dropped/",
        "Slipped/",
        "NotCharged/Valid",
        "/Invalid",
        "/ClientOnly",
    ] {
        assert!(
            actions.iter().any(|a| a.contains(want)),
            "{want} not covered: {actions:?}"
        );
    }
    for snap in [&s, &signed] {
        // Warm up (first use may size buffers and, signed, makes the signatures).
        for q in &queries {
            handle(snap, &cfg, q, false, &mut out);
        }
        for q in &queries {
            let before = counting::count();
            assert!(handle(snap, &cfg, q, false, &mut out));
            let made = counting::count() - before;
            assert_eq!(
                made,
                0,
                "query {} ({}) allocated {made} times",
                u16::from_be_bytes([q[0], q[1]]),
                if snap.dnssec.is_some() {
                    "signed"
                } else {
                    "unsigned"
                }
            );
        }
    }
}
