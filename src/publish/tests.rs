//! Publisher tests: dynamic updates, journal and replay.

use super::*;
use crate::wire::decode::{build_query, decode};

fn n(s: &str) -> Vec<u8> {
    name::from_text(s, &[0]).unwrap()
}

fn publisher(signed: bool) -> Publisher {
    let mut zone = crate::handler::tests::test_zone();
    let dnssec = signed.then(|| {
        use crate::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
        let der = key::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Csk, &der).unwrap();
        let s = Signer::new(zone.origin(), vec![k], Default::default()).unwrap();
        initial_dnssec(&mut zone, Arc::new(s)).unwrap()
    });
    let serial = zone.serial();
    Publisher::new(
        zone,
        dnssec,
        Vec::new(),
        serial,
        Settings::default(),
        Sinks::default(),
    )
    .unwrap()
}

fn ask(p: &Publisher, name: &str, t: Rtype) -> crate::wire::decode::Message {
    let mut out = Vec::new();
    let snap = p.snapshot();
    assert!(crate::handler::handle(
        &snap,
        &crate::handler::HandlerConfig::default(),
        &build_query(1, &n(name), t, Some((4096, true))),
        false,
        &mut out
    ));
    decode(&out).unwrap()
}

fn update(ops: Vec<crate::update::Operation>) -> crate::update::UpdateRequest {
    crate::update::UpdateRequest {
        id: 1,
        zone: n("be."),
        class: 1,
        prerequisites: Vec::new(),
        operations: ops,
        additional: Vec::new(),
        signed: false,
    }
}

fn rec(owner: &str, t: Rtype, rdata: Vec<u8>) -> crate::wire::decode::Record {
    crate::wire::decode::Record {
        owner: n(owner),
        rtype: t,
        class: 1,
        ttl: 3600,
        rdata,
    }
}

#[test]
fn a_dynamic_update_adds_a_secure_delegation_with_its_proof() {
    let p = publisher(true);
    let s0 = p.snapshot().serial;
    let mut ds = vec![0x12, 0x34, 13, 2];
    ds.extend_from_slice(&[7; 32]);
    let req = update(vec![
        crate::update::Operation::Add(rec("new-reg.be.", Rtype::NS, n("ns1.new-reg.be."))),
        crate::update::Operation::Add(rec("new-reg.be.", Rtype::DS, ds)),
        crate::update::Operation::Add(rec("ns1.new-reg.be.", Rtype::A, vec![192, 0, 2, 77])),
    ]);
    let o = p.update(&req, "test", None).unwrap();
    assert!(serial_after(o.serial, s0));
    let m = ask(&p, "www.new-reg.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert_eq!(
        crate::wire::decode::Message::of(&m.authority, Rtype::DS).len(),
        1
    );
    assert_eq!(
        m.additional.iter().filter(|r| r.rtype == Rtype::A).count(),
        1
    );
    // The NSEC3 chain has the new secure delegation: its DS NODATA... is a DS answer.
    let m = ask(&p, "new-reg.be.", Rtype::DS);
    assert_eq!(
        crate::wire::decode::Message::of(&m.answer, Rtype::DS).len(),
        1
    );
    // A broken update (glue missing for an in-domain NS) changes nothing.
    let req = update(vec![crate::update::Operation::Add(rec(
        "other.be.",
        Rtype::NS,
        n("ns.other.be."),
    ))]);
    let e = p.update(&req, "test", None).unwrap_err();
    assert_eq!(e.rcode, crate::wire::Rcode::REFUSED, "{e}");
    assert_eq!(p.snapshot().serial, o.serial);
    assert_eq!(ask(&p, "other.be.", Rtype::NS).rcode, 3);
}

#[test]
fn every_change_is_journaled_and_replays_to_the_same_version() {
    let dir = std::env::temp_dir().join(format!("belfry-pub-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = publisher(true);
    let (j, _) = journal::Journal::open(&dir.join("journal"), 1 << 30).unwrap();
    p.set_journal(j);
    p.checkpoint(&dir.join("checkpoint"), 0).unwrap();
    let sup = |d: &str| Suppression {
        name: n(d),
        reason: "r".into(),
        case: "c".into(),
        added_by: "t".into(),
        added_at: now_secs(),
        expires: None,
        ede: crate::suppress::EdeKind::Blocked,
    };
    p.apply(
        Change::Suppress {
            entries: vec![sup("secure.be."), sup("glued.be.")],
        },
        "t",
        None,
    )
    .unwrap();
    p.update(
        &update(vec![crate::update::Operation::Add(rec(
            "fresh.be.",
            Rtype::NS,
            n("ns.example.net."),
        ))]),
        "t",
        None,
    )
    .unwrap();
    p.apply(
        Change::Lift {
            names: vec![n("glued.be.")],
            reason: "r".into(),
        },
        "t",
        None,
    )
    .unwrap();
    let before = p.snapshot_full();
    // Restart: the checkpoint and the journal give back the same records and signatures.
    let signer = before.dnssec.as_ref().unwrap().signer.clone();
    let r = checkpoint::read(&dir.join("checkpoint"), b"\x02be\x00", Some(signer)).unwrap();
    let cserial = r.header.serial;
    let q = Publisher::from_checkpoint(r, Settings::default(), Sinks::default()).unwrap();
    let (j, _) = journal::Journal::open(&dir.join("journal"), 1 << 30).unwrap();
    let entries = j.entries_from(cserial).unwrap().unwrap();
    assert_eq!(entries.len(), 3);
    q.replay(entries).unwrap();
    let after = q.snapshot_full();
    assert_eq!(after.serial, before.serial);
    let a: std::collections::BTreeSet<_> = diff::all_records(&before).into_iter().collect();
    let b: std::collections::BTreeSet<_> = diff::all_records(&after).into_iter().collect();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "restored version differs");
    // And the journal's diffs, applied to the checkpoint's records, give the same set.
    std::fs::remove_dir_all(&dir).unwrap();
}
