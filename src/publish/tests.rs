//! Publisher tests: dynamic updates, journal and replay.

use super::*;
use crate::wire::decode::{build_query, decode};

/// Shards decoded into source data ([`State::source_with`]), by every test of this binary.
pub(super) static SOURCE_DECODES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

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
    publisher_of(zone, dnssec)
}

/// A publisher of `zone` with no list, default settings and no sinks.
fn publisher_of(zone: crate::zone::Zone, dnssec: Option<Dnssec>) -> Publisher {
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

/// A suppression of `domain` (blocked, no expiry), added now.
fn sup(domain: &str) -> Suppression {
    Suppression {
        name: n(domain),
        reason: "r".into(),
        case: "c".into(),
        added_by: "t".into(),
        added_at: now_secs(),
        expires: None,
        ede: crate::suppress::EdeKind::Blocked,
    }
}

/// A zone builder for `be.` with its SOA and apex NS (lines 1 and 2 of `f`).
fn be_builder(f: &std::path::Path) -> crate::zone::ZoneBuilder {
    let mut b = crate::zone::ZoneBuilder::new(&n("be."));
    let mut soa = n("a.nsset.be.");
    soa.extend_from_slice(&n("tech.dns.be."));
    for v in [2024061101u32, 3600, 1800, 3_600_000, 600] {
        soa.extend_from_slice(&v.to_be_bytes());
    }
    b.add(&n("be."), 1, Rtype::SOA.0, 3600, &soa, f, 1).unwrap();
    b.add(&n("be."), 1, Rtype::NS.0, 3600, &n("a.nsset.be."), f, 2)
        .unwrap();
    b
}

/// A publisher as a restart makes it from `p`'s checkpoint in `dir`, and the
/// journal records after the checkpoint's serial (not yet replayed).
fn restart(p: &Publisher, dir: &std::path::Path) -> (Publisher, Vec<journal::Entry>) {
    let signer = p.snapshot_full().dnssec.as_ref().unwrap().signer.clone();
    let r = checkpoint::read(&dir.join("checkpoint"), b"\x02be\x00", Some(signer)).unwrap();
    let cserial = r.header.serial;
    let q = Publisher::from_checkpoint(r, Settings::default(), Sinks::default()).unwrap();
    let (j, _) = journal::Journal::open(&dir.join("journal"), 1 << 30).unwrap();
    let entries = j.entries_from(cserial).unwrap().unwrap();
    (q, entries)
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
    let (q, entries) = restart(&p, &dir);
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

#[test]
fn watch_lists_act_on_a_transfer_in_the_same_change_and_replay_the_same() {
    let dir = std::env::temp_dir().join(format!("belfry-pub-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.txt"), "hopping.be. IWF r-1\n").unwrap();
    std::fs::write(dir.join("a.txt"), "alerted.be. DA r-2\nsecure.be. DA r-3\n").unwrap();
    let p = publisher(true);
    let (j, _) = journal::Journal::open(&dir.join("journal"), 1 << 30).unwrap();
    p.set_journal(j);
    p.checkpoint(&dir.join("checkpoint"), 0).unwrap();
    let cfg = |name: &str, file: &str, policy| crate::watchlist::ListConfig {
        name: name.into(),
        file: dir.join(file),
        policy,
        ede: None,
        webhook: None,
    };
    p.set_watch_lists(
        crate::watchlist::Lists::load(&[
            cfg("iwf", "s.txt", crate::watchlist::Policy::Suppress),
            cfg("da", "a.txt", crate::watchlist::Policy::Alert),
        ])
        .unwrap(),
    );
    let ns = |d: &str| NameEdit {
        name: n(d),
        sets: vec![RecSet {
            rtype: Rtype::NS.0,
            ttl: 3600,
            rdatas: vec![n("ns1.example.net.")],
        }],
        replace_all: true,
    };
    let before_serial = p.snapshot().serial;
    // secure.be is delegated already: a new NS set for it is not a hit.
    let o = p
        .apply(
            Change::Edit {
                edits: vec![ns("hopping.be."), ns("alerted.be."), ns("secure.be.")],
                source: EditSource::Transfer,
                source_serial: None,
                force: false,
                fingerprint: None,
            },
            "xfr",
            None,
        )
        .unwrap();
    assert_eq!(o.added, vec!["hopping.be.".to_string()]);
    // The version as published: the queries below sign a few NSEC3 records on the
    // query path, and those signatures are not part of the change (nor its journal record).
    let published: std::collections::BTreeSet<_> =
        diff::all_records(&p.snapshot_full()).into_iter().collect();
    assert_eq!(o.notes.len(), 2, "{:?}", o.notes);
    assert!(o
        .notes
        .iter()
        .any(|m| m.contains("alerted.be.") && m.contains("alert")));
    let (_, list) = p.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list.values().next().unwrap().added_by, "watch:iwf");
    assert_eq!(
        list.values().next().unwrap().ede,
        crate::suppress::EdeKind::Censored
    );
    // The first version with the delegation already answers NXDOMAIN + EDE 16.
    let m = ask(&p, "www.hopping.be.", Rtype::A);
    assert_eq!(m.rcode, 3);
    assert_eq!(m.ede.as_ref().map(|e| e.0), Some(16));
    assert!(crate::serial::serial_gt(p.snapshot().serial, before_serial));
    let m = ask(&p, "www.alerted.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert!(m.authority.iter().any(|r| r.rtype == Rtype::NS));
    // `watch check`: the delegated listed names, the suppressed one marked.
    let r = p.watch_check(None).unwrap();
    let got: Vec<_> = r
        .present
        .iter()
        .map(|x| (x.list.as_str(), x.name.as_str(), x.suppressed))
        .collect();
    assert_eq!(
        got,
        vec![
            ("da", "alerted.be.", false),
            ("da", "secure.be.", false),
            ("iwf", "hopping.be.", true)
        ]
    );
    assert!(p.watch_check(Some("nope")).is_err());
    // The journal holds the edit with its suppression; a restart without any watch
    // list gives back the same version.
    let before = p.snapshot_full();
    let (q, entries) = restart(&p, &dir);
    assert_eq!(entries.len(), 1);
    assert!(matches!(entries[0].change, Change::Watched { .. }));
    q.replay(entries).unwrap();
    let after = q.snapshot_full();
    assert_eq!(after.serial, before.serial);
    let a = published;
    let b: std::collections::BTreeSet<_> = diff::all_records(&after).into_iter().collect();
    let only_a: Vec<_> = a
        .difference(&b)
        .map(|r| (name::to_text(&r.owner), r.rtype))
        .collect();
    let only_b: Vec<_> = b
        .difference(&a)
        .map(|r| (name::to_text(&r.owner), r.rtype))
        .collect();
    assert!(a == b, "restored version differs: {only_a:?} vs {only_b:?}");
    assert_eq!(ask(&q, "www.hopping.be.", Rtype::A).rcode, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An unsigned publisher of `be.` with `count` delegations `d<i>.be.`, each
/// to one out-of-zone name server.
fn flat_publisher(count: usize) -> Publisher {
    let f = std::path::Path::new("flat.zone");
    let mut b = be_builder(f);
    for i in 0..count {
        let d = n(&format!("d{i}.be."));
        b.add(&d, 1, Rtype::NS.0, 3600, &n("ns1.example.net."), f, 3 + i)
            .unwrap();
    }
    publisher_of(b.finish().unwrap(), None)
}

#[test]
fn a_bulk_suppression_decodes_each_shard_a_bounded_number_of_times() {
    // 40,000 delegations: about ten a shard. Checking the names one by one used
    // to decode a shard per name, and rebuilding looked through every
    // suppression per shard: a 100,000-name bulk add took over a minute.
    let count = 40_000;
    let p = flat_publisher(count);
    let entries: Vec<Suppression> = (0..count).map(|i| sup(&format!("d{i}.be."))).collect();
    let before = SOURCE_DECODES.load(std::sync::atomic::Ordering::Relaxed);
    let o = p.apply(Change::Suppress { entries }, "t", None).unwrap();
    let decodes = SOURCE_DECODES.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(o.added.len(), count);
    assert_eq!(ask(&p, "www.d123.be.", Rtype::A).rcode, 3);
    // Checking, rebuilding and the NS-target index: each shard a few times at most
    // (other tests of this binary may decode meanwhile; they decode few).
    let shards = crate::zone::SHARDS + 1;
    assert!(
        decodes <= 4 * shards,
        "{decodes} shard decodes for {count} names in {shards} shards"
    );
}

#[test]
fn expiry_is_found_in_its_index_and_single_changes_keep_the_rest_in_force() {
    let p = flat_publisher(300);
    let now = now_secs();
    let entry = |i: usize, expires: Option<u64>| Suppression {
        name: n(&format!("d{i}.be.")),
        reason: "r".into(),
        case: "c".into(),
        added_by: "t".into(),
        added_at: now,
        expires,
        ede: crate::suppress::EdeKind::Blocked,
    };
    // 200 listed: every third expires in 1000 s, the rest never.
    let entries: Vec<Suppression> = (0..200)
        .map(|i| entry(i, (i % 3 == 0).then_some(now + 1000)))
        .collect();
    p.apply(Change::Suppress { entries }, "t", None).unwrap();
    assert_eq!(p.snapshot().suppressions.len(), 200);
    assert!(p.due_to_expire(now).is_empty());
    let due = p.due_to_expire(now + 1000);
    assert_eq!(due.len(), 67);
    assert!(due.iter().all(|d| {
        let t = name::to_text(d);
        t[1..t.len() - 4].parse::<usize>().unwrap() % 3 == 0
    }));
    let o = p
        .apply(Change::Expire { names: due.clone() }, "t", None)
        .unwrap();
    assert_eq!(o.removed.len(), 67);
    assert!(p.due_to_expire(u64::MAX - 1).is_empty());
    assert_eq!(p.snapshot().suppressions.len(), 133);
    assert_eq!(
        ask(&p, "www.d0.be.", Rtype::A).rcode,
        0,
        "expired: a referral again"
    );
    assert_eq!(ask(&p, "www.d1.be.", Rtype::A).rcode, 3);
    // Single changes, one after the other: each leaves every other name as it was.
    p.apply(
        Change::Suppress {
            entries: vec![entry(250, None)],
        },
        "t",
        None,
    )
    .unwrap();
    p.apply(
        Change::Lift {
            names: vec![n("d1.be.")],
            reason: "r".into(),
        },
        "t",
        None,
    )
    .unwrap();
    let snap = p.snapshot();
    assert_eq!(snap.suppressions.len(), 133);
    for i in 0..300 {
        let listed = i < 200 && i % 3 != 0 && i != 1 || i == 250;
        let rcode = ask(&p, &format!("www.d{i}.be."), Rtype::A).rcode;
        assert_eq!(rcode, if listed { 3 } else { 0 }, "d{i}.be.");
    }
    // Nothing changed: refused as such.
    assert!(matches!(
        p.apply(Change::Expire { names: due }, "t", None),
        Err(ChangeError::Unchanged)
    ));
}

/// A host below a suppressed delegation that a delegation of the same shard
/// names as its NS target keeps its address (the shard's own NS targets are
/// looked at only when the takedown has glue); a host nobody else uses goes.
#[test]
fn glue_a_delegation_of_the_same_shard_needs_stays_after_a_takedown() {
    let glued = n("glued.be.");
    let shard = edit::shard_id(&name::key_of(&glued), 1);
    let user = (0..100_000)
        .map(|i| format!("u{i}.be."))
        .find(|u| edit::shard_id(&name::key_of(&n(u)), 1) == shard)
        .unwrap();
    let f = std::path::Path::new("same-shard.zone");
    let mut b = be_builder(f);
    let ns = Rtype::NS.0;
    let a = Rtype::A.0;
    b.add(&glued, 1, ns, 3600, &n("ns1.glued.be."), f, 3)
        .unwrap();
    b.add(&glued, 1, ns, 3600, &n("ns2.glued.be."), f, 4)
        .unwrap();
    b.add(&n("ns1.glued.be."), 1, a, 3600, &[198, 51, 100, 10], f, 5)
        .unwrap();
    b.add(&n("ns2.glued.be."), 1, a, 3600, &[198, 51, 100, 11], f, 6)
        .unwrap();
    // The other delegation names the host in upper case: one name, one spelling.
    b.add(&n(&user), 1, ns, 3600, &n("NS1.Glued.be."), f, 7)
        .unwrap();
    let p = publisher_of(b.finish().unwrap(), None);
    p.apply(
        Change::Suppress {
            entries: vec![sup("glued.be.")],
        },
        "t",
        None,
    )
    .unwrap();
    let kept = ask(&p, "ns1.glued.be.", Rtype::A);
    assert_eq!(kept.rcode, 0);
    assert_eq!(kept.answer.len(), 1, "{kept:?}");
    assert_eq!(ask(&p, "ns2.glued.be.", Rtype::A).rcode, 3);
    let referral = ask(&p, &format!("www.{user}"), Rtype::A);
    assert!(
        referral.additional.iter().any(|r| r.rtype == Rtype::A),
        "{referral:?}"
    );
}

#[test]
fn outcomes_kept_for_clients_are_bounded_in_count_and_names() {
    let outcome = |id: u64, names: usize| {
        let o = Outcome {
            id,
            serial: 1,
            added: vec!["x.be.".to_string(); names],
            removed: Vec::new(),
            names_changed: names,
            signatures: 0,
            notes: Vec::new(),
        };
        (id, Ok(o))
    };
    let ids = |r: &Recent| r.iter().map(|(i, _)| *i).collect::<Vec<_>>();
    let mut r = Recent::new();
    for id in 1..=5 {
        r.push_back(outcome(id, 1));
        trim_recent(&mut r, 3, 100);
    }
    assert_eq!(ids(&r), [3, 4, 5], "at most 3 outcomes");
    r.push_back(outcome(6, 60));
    trim_recent(&mut r, 3, 100);
    assert_eq!(ids(&r), [4, 5, 6]);
    r.push_back(outcome(7, 60));
    trim_recent(&mut r, 3, 100);
    assert_eq!(ids(&r), [7], "121 names are over 100: the older ones go");
    r.push_back((8, Err("refused".into())));
    r.push_back(outcome(9, 500));
    trim_recent(&mut r, 3, 100);
    assert_eq!(ids(&r), [9], "the newest is kept, however large");
}

#[test]
fn a_replaced_version_is_freed_by_the_publisher_not_by_its_last_reader() {
    let p = publisher(true);
    let held = p.snapshot_full();
    p.apply(
        Change::Suppress {
            entries: vec![sup("example.be.")],
        },
        "t",
        None,
    )
    .unwrap();
    // The publisher let go of the old version; the retiring thread holds it
    // until this reader is done.
    assert_eq!(Arc::strong_count(&held), 2);
    let gone = Arc::downgrade(&held);
    drop(held);
    let t = std::time::Instant::now();
    while gone.strong_count() > 0 {
        assert!(t.elapsed().as_secs() < 5, "the old version was never freed");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
