//! The proofs of RFC 5155 Appendix B, from the example zone of Appendix A
//! (salt aabbccdd, 12 extra iterations, opt-out), checked on the sans-IO handler:
//! the NSEC3 owners in each answer must be exactly the ones the RFC lists.

use belfry::dnssec::chain::Nsec3Params;
use belfry::dnssec::key::{generate, Algorithm, KeyRole, SigningKey};
use belfry::dnssec::{Policy, Signer};
use belfry::handler::{handle, HandlerConfig};
use belfry::wire::decode::{build_query, decode, Message};
use belfry::wire::Rtype;
use std::collections::BTreeSet;
use std::sync::Arc;

fn snapshot() -> Arc<belfry::handler::Snapshot> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc5155-example.zone");
    let zone = belfry::zone::load_file(&path, b"\x07example\x00").unwrap();
    let der = generate(Algorithm::EcdsaP256Sha256).unwrap();
    let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Csk, &der).unwrap();
    let policy = Policy {
        nsec3: Nsec3Params {
            iterations: 12,
            salt: vec![0xaa, 0xbb, 0xcc, 0xdd],
            opt_out: true,
        },
        ..Policy::default()
    };
    let signer = Signer::new(zone.origin(), vec![key], policy).unwrap();
    belfry::service::snapshot_of(zone, Some(signer)).unwrap()
}

fn ask(s: &belfry::handler::Snapshot, name: &str, t: Rtype) -> Message {
    let q = build_query(
        1,
        &belfry::name::from_text(name, &[0]).unwrap(),
        t,
        Some((4096, true)),
    );
    let mut out = Vec::new();
    assert!(handle(
        s,
        &HandlerConfig {
            max_udp_payload: 4096,
            ..HandlerConfig::default()
        },
        &q,
        false,
        &mut out
    ));
    decode(&out).unwrap()
}

fn nsec3_owners(m: &Message) -> BTreeSet<String> {
    Message::of(&m.authority, Rtype::NSEC3)
        .iter()
        .map(|r| String::from_utf8_lossy(&r.owner[1..33]).to_ascii_lowercase())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn b1_name_error() {
    let s = snapshot();
    let m = ask(&s, "a.c.x.w.example.", Rtype::A);
    assert_eq!(m.rcode, 3);
    assert_eq!(
        nsec3_owners(&m),
        set(&[
            "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom",
            "b4um86eghhds6nea196smvmlo4ors995",
            "35mthgpgcu1qg68fab165klnsnk3dpvl"
        ])
    );
}

#[test]
fn b2_no_data_and_empty_non_terminal() {
    let s = snapshot();
    let m = ask(&s, "ns1.example.", Rtype::MX);
    assert_eq!((m.rcode, m.answer.len()), (0, 0));
    assert_eq!(nsec3_owners(&m), set(&["2t7b4g4vsa5smi47k61mv5bv1a22bojr"]));
    let m = ask(&s, "y.w.example.", Rtype::A);
    assert_eq!(nsec3_owners(&m), set(&["ji6neoaepv8b5o6k4ev33abha8ht9fgc"]));
}

#[test]
fn b3_referral_to_an_opt_out_unsigned_zone() {
    let s = snapshot();
    let m = ask(&s, "mc.c.example.", Rtype::MX);
    assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 2);
    assert_eq!(
        nsec3_owners(&m),
        set(&[
            "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom",
            "35mthgpgcu1qg68fab165klnsnk3dpvl"
        ])
    );
}

#[test]
fn b4_wildcard_expansion() {
    let s = snapshot();
    let m = ask(&s, "a.z.w.example.", Rtype::MX);
    assert_eq!(Message::of(&m.answer, Rtype::MX).len(), 1);
    assert_eq!(
        m.answer[0].owner,
        belfry::name::from_text("a.z.w.example.", &[0]).unwrap()
    );
    let sig = Message::of(&m.answer, Rtype::RRSIG)[0];
    assert_eq!(
        sig.rdata[3], 2,
        "RRSIG labels of the wildcard owner *.w.example"
    );
    assert_eq!(nsec3_owners(&m), set(&["q04jkcevqvmu85r014c7dkba38o0ji5r"]));
}

#[test]
fn b5_wildcard_no_data() {
    let s = snapshot();
    let m = ask(&s, "a.z.w.example.", Rtype::AAAA);
    assert_eq!((m.rcode, m.answer.len()), (0, 0));
    assert_eq!(
        nsec3_owners(&m),
        set(&[
            "k8udemvp1j2f7eg6jebps17vp3n8i58h",
            "q04jkcevqvmu85r014c7dkba38o0ji5r",
            "r53bq7cc2uvmubfu5ocmm6pers9tk9en"
        ])
    );
}

#[test]
fn b6_ds_child_zone_no_data() {
    let s = snapshot();
    let m = ask(&s, "example.", Rtype::DS);
    assert_eq!((m.rcode, m.answer.len()), (0, 0));
    assert_eq!(nsec3_owners(&m), set(&["0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"]));
}
