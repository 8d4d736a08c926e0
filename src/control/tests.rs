//! The control path driven in-process: classification, AXFR and IXFR answers
//! parsed back and applied, TSIG and ACL refusals, and the IXFR property: after
//! any sequence of changes, the IXFR from every older serial applied to that
//! version's AXFR gives the newest AXFR.

use super::*;
use crate::dnssec::Signer;
use crate::publish::change::{Change, Suppression};
use crate::publish::diff::Rr;
use crate::publish::{journal, Settings, Sinks};
use crate::server::Transport;
use crate::update::Operation;
use crate::wire::decode::Record;
use std::collections::BTreeSet;

fn n(s: &str) -> Vec<u8> {
    crate::name::from_text(s, &[0]).unwrap()
}

fn signer(zone: &crate::zone::Zone) -> Signer {
    use crate::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
    let der = key::generate(Algorithm::EcdsaP256Sha256).unwrap();
    let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Csk, &der).unwrap();
    Signer::new(zone.origin(), vec![k], Default::default()).unwrap()
}

fn publisher(signed: bool) -> Publisher {
    let mut zone = crate::handler::tests::test_zone();
    let dnssec = signed.then(|| {
        let s = signer(&zone);
        crate::publish::initial_dnssec(&mut zone, Arc::new(s)).unwrap()
    });
    let serial = zone.serial();
    let p = Publisher::new(
        zone,
        dnssec,
        Vec::new(),
        serial,
        Settings::default(),
        Sinks::default(),
    )
    .unwrap();
    crate::service::sign_missing(&p.snapshot_full(), 1, &|| false).unwrap();
    p
}

/// A served version of the test zone, every signature made.
pub(crate) fn snapshot(signed: bool) -> Arc<crate::handler::Snapshot> {
    publisher(signed).snapshot_full()
}

/// A control path over a fresh signed publisher with a journal; transfers allowed
/// from 127.0.0.0/8 without a key and from anywhere with `xfr-key`, updates with `upd`.
struct Rig {
    control: Control,
    publisher: Arc<Publisher>,
    _dir: tempfile::TempDir,
}

const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";

fn keys() -> KeyRing {
    let mut k = KeyRing::new();
    k.insert(tsig::Key::from_text("xfr-key", "hmac-sha256", SECRET).unwrap())
        .unwrap();
    k.insert(tsig::Key::from_text("upd", "hmac-sha256", SECRET).unwrap())
        .unwrap();
    k.insert(tsig::Key::from_text("other", "hmac-sha256", "b3RoZXJvdGhlcg==").unwrap())
        .unwrap();
    k
}

fn rig(max_transfers: usize) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(publisher(true));
    let (j, _) = journal::Journal::open(&dir.path().join("journal"), 1 << 30).unwrap();
    p.set_journal(j);
    p.mark_fully_signed();
    let svc = Arc::new(Service::new(
        p.clone(),
        crate::handler::HandlerConfig::default(),
        None,
    ));
    svc.fully_signed.store(true, Ordering::Relaxed);
    let keys = keys();
    let acl_cfg: crate::acl::AclConfig = toml::from_str(
        "[[transfer]]\nfrom = [\"127.0.0.0/8\"]\n[[transfer]]\nkey = \"xfr-key\"\n[[update]]\nkey = \"upd\"\n",
    )
    .unwrap();
    let acl = acl_cfg.build(&keys).unwrap();
    let setup = Setup {
        keys,
        acl,
        targets: vec![Target {
            name: "sec".into(),
            address: "127.0.0.9:53".parse().unwrap(),
            key: None,
            source: "127.0.0.9".parse().unwrap(),
        }],
        max_transfers,
        notify_max_interval: Duration::from_secs(60),
        notify_timeout: Duration::from_secs(1),
        max_udp_payload: 1232,
        presign: true,
    };
    Rig {
        control: Control::new(p.clone(), svc, setup),
        publisher: p,
        _dir: dir,
    }
}

fn query(qtype: Rtype, authority: Option<Record>, edns: bool) -> Vec<u8> {
    let q = message::Question {
        name: n("be."),
        qtype,
        qclass: 1,
    };
    let auth: Vec<Record> = authority.into_iter().collect();
    let mut m = message::build(0x1234, 0, Some(&q), &[], &auth, &[]).unwrap();
    if edns {
        message::append_opt(&mut m, 1232, 0, 0);
    }
    m
}

fn soa_with(serial: u32) -> Record {
    let mut rd = n("a.nsset.be.");
    rd.extend_from_slice(&n("tech.dns.be."));
    for v in [serial, 1, 2, 3, 4] {
        rd.extend_from_slice(&v.to_be_bytes());
    }
    Record {
        owner: n("be."),
        rtype: Rtype::SOA,
        class: 1,
        ttl: 0,
        rdata: rd,
    }
}

fn ask(c: &Control, msg: &[u8], peer: &str, t: Transport) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    c.handle(msg, peer.parse().unwrap(), t, &mut |m| {
        out.push(m.to_vec());
        true
    });
    out
}

/// The records of a transfer answer, in order.
fn records(msgs: &[Vec<u8>]) -> Vec<Rr> {
    let mut out = Vec::new();
    for m in msgs {
        let p = message::parse(m).unwrap();
        assert_eq!(p.header.rcode(), 0, "{p:?}");
        for r in p.answer {
            out.push(Rr {
                owner: crate::name::to_lowercase(&r.owner),
                rtype: r.rtype.0,
                ttl: r.ttl,
                rdata: r.rdata,
            });
        }
    }
    out
}

/// Apply an IXFR answer (RFC 1995 §4) to a zone; the SOA-only and AXFR-style
/// forms too. Returns false when the answer is not an IXFR difference.
fn apply_ixfr(zone: &mut BTreeSet<Rr>, rrs: &[Rr]) -> bool {
    let soa = Rtype::SOA.0;
    assert_eq!(rrs.first().unwrap().rtype, soa);
    if rrs.len() == 1 {
        return true;
    }
    if rrs[1].rtype != soa {
        // AXFR-style.
        *zone = rrs[..rrs.len() - 1].iter().cloned().collect();
        return false;
    }
    let mut i = 1;
    while i < rrs.len() - 1 {
        let old = &rrs[i];
        assert!(zone.remove(old), "the old SOA is the zone's");
        i += 1;
        while rrs[i].rtype != soa {
            assert!(
                zone.remove(&rrs[i]),
                "deleted record {:?} was there",
                rrs[i]
            );
            i += 1;
        }
        zone.insert(rrs[i].clone());
        i += 1;
        while rrs[i].rtype != soa {
            assert!(zone.insert(rrs[i].clone()), "added record was not there");
            i += 1;
        }
        if i == rrs.len() - 1 {
            break;
        }
    }
    true
}

fn axfr_set(c: &Control) -> BTreeSet<Rr> {
    let msgs = ask(
        c,
        &query(Rtype::AXFR, None, false),
        "127.0.0.1:5000",
        Transport::Tcp,
    );
    let rrs = records(&msgs);
    assert_eq!(rrs.first().unwrap().rtype, Rtype::SOA.0);
    assert_eq!(rrs.last().unwrap(), rrs.first().unwrap());
    rrs[..rrs.len() - 1].iter().cloned().collect()
}

fn sup(d: &str) -> Suppression {
    Suppression {
        name: n(d),
        reason: "r".into(),
        case: "c".into(),
        added_by: "t".into(),
        added_at: crate::publish::now_secs(),
        expires: None,
        ede: crate::suppress::EdeKind::Blocked,
    }
}

#[test]
fn classification_is_by_opcode_transfer_type_and_tsig() {
    let plain = crate::wire::decode::build_query(1, &n("www.be."), Rtype::A, None);
    let with_opt = crate::wire::decode::build_query(1, &n("www.be."), Rtype::A, Some((1232, true)));
    assert!(!needs_control(&plain));
    assert!(!needs_control(&with_opt));
    assert!(needs_control(&query(Rtype::AXFR, None, false)));
    assert!(needs_control(&query(Rtype::IXFR, Some(soa_with(1)), true)));
    let mut upd = plain.clone();
    upd[2] = 5 << 3;
    assert!(needs_control(&upd));
    let mut notify = plain.clone();
    notify[2] = 4 << 3;
    assert!(needs_control(&notify));
    let mut status = plain.clone();
    status[2] = 2 << 3;
    assert!(
        !needs_control(&status),
        "other opcodes stay with the handler (NOTIMP)"
    );
    let mut signed = with_opt.clone();
    let k = keys();
    tsig::sign_request(k.get_text("xfr-key").unwrap(), &mut signed, 1000).unwrap();
    assert!(needs_control(&signed));
    let mut response = query(Rtype::AXFR, None, false);
    response[2] |= 0x80;
    assert!(!needs_control(&response));
}

proptest::proptest! {
    #[test]
    fn classification_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = needs_control(&bytes);
    }
}

#[test]
fn axfr_streams_the_whole_signed_zone_in_several_messages() {
    let r = rig(4);
    let snap = r.publisher.snapshot_full();
    let want: BTreeSet<Rr> = crate::publish::diff::all_records(&snap)
        .into_iter()
        .collect();
    assert_eq!(axfr_set(&r.control), want);
    // With a small message size the same records come in many messages.
    let q = query(Rtype::AXFR, None, false);
    let m = message::parse(&q).unwrap();
    let mut req = Req {
        msg: &q,
        m: &m,
        peer: "127.0.0.1:1".parse().unwrap(),
        transport: Transport::Tcp,
        key: None,
        signer: None,
    };
    let mut msgs = Vec::new();
    let mut send = |x: &[u8]| {
        msgs.push(x.to_vec());
        true
    };
    let qb = question(&req);
    let mut s = Stream::new(&mut req, &mut send);
    s.packer = Packer::new(0x1234, 0x8400, &qb, 600);
    axfr::each_record(&snap, &mut |o, t, ttl, rd| s.record(o, t, ttl, rd)).unwrap();
    assert!(s.flush());
    assert!(msgs.len() > 5, "{} messages", msgs.len());
    let got: BTreeSet<Rr> = {
        let rrs = records(&msgs);
        rrs[..rrs.len() - 1].iter().cloned().collect()
    };
    assert_eq!(got, want);
    assert_eq!(message::parse(&msgs[0]).unwrap().questions.len(), 1);
    assert!(message::parse(&msgs[1]).unwrap().questions.is_empty());
}

#[test]
fn refusals_ede_tsig_errors_and_limits() {
    let r = rig(0);
    // Not allowed from this address without a key: REFUSED, EDE 18.
    let out = ask(
        &r.control,
        &query(Rtype::AXFR, None, true),
        "192.0.2.1:5000",
        Transport::Tcp,
    );
    let m = message::parse(&out[0]).unwrap();
    assert_eq!(m.rcode(), Rcode::REFUSED.0);
    let opt = m.opt.unwrap();
    assert_eq!(
        &opt.options[..2],
        &crate::wire::types::option::EDE.to_be_bytes()
    );
    assert_eq!(&opt.options[4..6], &18u16.to_be_bytes());
    // Allowed, but no transfer slot (max 0): REFUSED without EDE.
    let out = ask(
        &r.control,
        &query(Rtype::AXFR, None, true),
        "127.0.0.1:5000",
        Transport::Tcp,
    );
    assert_eq!(message::parse(&out[0]).unwrap().rcode(), Rcode::REFUSED.0);
    // Signed with an unknown key: NOTAUTH, TSIG error BADKEY.
    let unknown = tsig::Key::from_text("nokey", "hmac-sha256", SECRET).unwrap();
    let mut q = query(Rtype::AXFR, None, false);
    tsig::sign_request(&unknown, &mut q, tsig::now()).unwrap();
    let out = ask(&r.control, &q, "192.0.2.1:5000", Transport::Tcp);
    let m = message::parse(&out[0]).unwrap();
    assert_eq!(m.rcode(), Rcode::NOTAUTH.0);
    let t = tsig::TsigRecord::from_record(&m.tsig.unwrap().record).unwrap();
    assert_eq!(t.error, tsig::TsigRcode::BADKEY);
    // Signed too long ago: BADTIME, signed.
    let k = keys();
    let mut q = query(Rtype::AXFR, None, false);
    tsig::sign_request(k.get_text("xfr-key").unwrap(), &mut q, tsig::now() - 3600).unwrap();
    let out = ask(&r.control, &q, "192.0.2.1:5000", Transport::Tcp);
    let m = message::parse(&out[0]).unwrap();
    let t = tsig::TsigRecord::from_record(&m.tsig.unwrap().record).unwrap();
    assert_eq!(t.error, tsig::TsigRcode::BADTIME);
    // A bad MAC: BADSIG.
    let mut q = query(Rtype::AXFR, None, false);
    tsig::sign_request(k.get_text("xfr-key").unwrap(), &mut q, tsig::now()).unwrap();
    let l = q.len();
    q[l - 10] ^= 1;
    let out = ask(&r.control, &q, "192.0.2.1:5000", Transport::Tcp);
    let t = tsig::TsigRecord::from_record(&message::parse(&out[0]).unwrap().tsig.unwrap().record)
        .unwrap();
    assert_eq!(t.error, tsig::TsigRcode::BADSIG);
    assert!(r.control.board.report().refused >= 3);
}

#[test]
fn signed_axfr_is_signed_on_every_message_and_verifies() {
    let r = rig(4);
    let k = keys();
    let key = k.get_text("xfr-key").unwrap();
    let mut q = query(Rtype::AXFR, None, false);
    let mut v = tsig::sign_request(key, &mut q, tsig::now()).unwrap();
    // From an address the unsigned rule does not allow: the key rule does.
    let out = ask(&r.control, &q, "192.0.2.1:5000", Transport::Tcp);
    assert!(!out.is_empty());
    for m in &out {
        assert!(message::parse(m).unwrap().tsig.is_some());
        v.verify(m, tsig::now()).unwrap();
    }
    v.finish().unwrap();
}

#[test]
fn ixfr_current_ahead_udp_and_unknown_serials() {
    let r = rig(4);
    let s0 = r.publisher.snapshot().serial;
    // Current, and a serial in the future: the SOA only.
    for c in [s0, s0.wrapping_add(1000)] {
        let out = ask(
            &r.control,
            &query(Rtype::IXFR, Some(soa_with(c)), true),
            "127.0.0.1:1",
            Transport::Udp,
        );
        let rrs = records(&out);
        assert_eq!(rrs.len(), 1);
        assert_eq!(crate::zone::soa_serial(&rrs[0].rdata), s0);
    }
    // No SOA in the authority section: FORMERR.
    let out = ask(
        &r.control,
        &query(Rtype::IXFR, None, true),
        "127.0.0.1:1",
        Transport::Udp,
    );
    assert_eq!(message::parse(&out[0]).unwrap().rcode(), Rcode::FORMERR.0);
    // One suppression: the difference fits a datagram.
    r.publisher
        .apply(
            Change::Suppress {
                entries: vec![sup("secure.be.")],
            },
            "t",
            None,
        )
        .unwrap();
    let out = ask(
        &r.control,
        &query(Rtype::IXFR, Some(soa_with(s0)), true),
        "127.0.0.9:1",
        Transport::Udp,
    );
    assert_eq!(out.len(), 1);
    let rrs = records(&out);
    assert!(
        rrs.len() > 4,
        "a difference, not the SOA only: {}",
        rrs.len()
    );
    assert_eq!(rrs[1].rtype, Rtype::SOA.0);
    // The secondary at 127.0.0.9 is known: its progress is recorded.
    let st = r.control.board.report();
    assert_eq!(
        st.secondaries[0].last_transfer.as_ref().unwrap().kind,
        "IXFR"
    );
    // A serial the journal never saw: the whole zone over TCP, the SOA over UDP.
    let out = ask(
        &r.control,
        &query(Rtype::IXFR, Some(soa_with(s0.wrapping_sub(5))), true),
        "127.0.0.1:1",
        Transport::Udp,
    );
    assert_eq!(records(&out).len(), 1);
    let out = ask(
        &r.control,
        &query(Rtype::IXFR, Some(soa_with(s0.wrapping_sub(5))), false),
        "127.0.0.1:1",
        Transport::Tcp,
    );
    let rrs = records(&out);
    let axfr = axfr_set(&r.control);
    assert_eq!(rrs.len(), axfr.len() + 1);
}

#[test]
fn ixfr_over_udp_too_big_for_a_datagram_is_the_soa_only() {
    let r = rig(4);
    let s0 = r.publisher.snapshot().serial;
    let mut ops = Vec::new();
    for i in 0..40 {
        ops.push(Operation::Add(Record {
            owner: n(&format!("bulk-{i}.be.")),
            rtype: Rtype::NS,
            class: 1,
            ttl: 3600,
            rdata: n("ns.example.net."),
        }));
    }
    let req = crate::update::UpdateRequest {
        id: 1,
        zone: n("be."),
        class: 1,
        prerequisites: Vec::new(),
        operations: ops,
        additional: Vec::new(),
        signed: false,
    };
    r.publisher.update(&req, "t", None).unwrap();
    let out = ask(
        &r.control,
        &query(Rtype::IXFR, Some(soa_with(s0)), true),
        "127.0.0.1:1",
        Transport::Udp,
    );
    assert_eq!(
        records(&out).len(),
        1,
        "SOA only: the client retries over TCP"
    );
    let out = ask(
        &r.control,
        &query(Rtype::IXFR, Some(soa_with(s0)), false),
        "127.0.0.1:1",
        Transport::Tcp,
    );
    let rrs = records(&out);
    assert_eq!(rrs[1].rtype, Rtype::SOA.0, "an incremental answer over TCP");
}

#[test]
fn not_fully_signed_is_servfail_not_ready() {
    let r = rig(4);
    r.control
        .service
        .fully_signed
        .store(false, Ordering::Relaxed);
    let out = ask(
        &r.control,
        &query(Rtype::AXFR, None, true),
        "127.0.0.1:1",
        Transport::Tcp,
    );
    let m = message::parse(&out[0]).unwrap();
    assert_eq!(m.rcode(), Rcode::SERVFAIL.0);
    assert_eq!(&m.opt.unwrap().options[4..6], &14u16.to_be_bytes());
}

#[test]
fn updates_need_the_key_and_change_nothing_when_refused() {
    let r = rig(4);
    let s0 = r.publisher.snapshot().serial;
    let upd = |signed_with: Option<&str>| {
        let z = message::Question {
            name: n("be."),
            qtype: Rtype::SOA,
            qclass: 1,
        };
        let add = Record {
            owner: n("fresh.be."),
            rtype: Rtype::NS,
            class: 1,
            ttl: 3600,
            rdata: n("ns.example.net."),
        };
        let mut m = message::build(7, 5 << 11, Some(&z), &[], &[add], &[]).unwrap();
        if let Some(k) = signed_with {
            tsig::sign_request(keys().get_text(k).unwrap(), &mut m, tsig::now()).unwrap();
        }
        m
    };
    for (k, want) in [
        (None, Rcode::REFUSED),
        (Some("other"), Rcode::REFUSED),
        (Some("upd"), Rcode::NOERROR),
    ] {
        let out = ask(&r.control, &upd(k), "127.0.0.1:1", Transport::Udp);
        let m = message::parse(&out[0]).unwrap();
        assert_eq!(m.rcode(), want.0, "key {k:?}");
        assert_eq!(m.tsig.is_some(), k.is_some());
        if want != Rcode::NOERROR {
            assert_eq!(r.publisher.snapshot().serial, s0);
        }
    }
    assert_ne!(r.publisher.snapshot().serial, s0);
    // NOTIFY in: not allowed by default.
    let mut notify = crate::xfr::notify::build(3, &n("be."), None);
    let out = ask(&r.control, &notify, "127.0.0.1:1", Transport::Udp);
    assert_eq!(message::parse(&out[0]).unwrap().rcode(), Rcode::REFUSED.0);
    notify.clear();
}

/// The property of RFC 1995 the secondaries rely on.
mod ixfr_property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Suppress(usize),
        Lift(usize),
        Add(usize),
        Delete(usize),
        Resign,
    }

    const NAMES: [&str; 5] = [
        "secure.be.",
        "insecure.be.",
        "glued.be.",
        "x1.be.",
        "x2.be.",
    ];

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3usize).prop_map(Step::Suppress),
            (0..3usize).prop_map(Step::Lift),
            (3..5usize).prop_map(Step::Add),
            (3..5usize).prop_map(Step::Delete),
            Just(Step::Resign),
        ]
    }

    fn update_one(p: &Publisher, name: &str, add: bool) {
        let op = if add {
            Operation::Add(Record {
                owner: n(name),
                rtype: Rtype::NS,
                class: 1,
                ttl: 3600,
                rdata: n("ns.example.net."),
            })
        } else {
            Operation::DeleteName(n(name))
        };
        let req = crate::update::UpdateRequest {
            id: 1,
            zone: n("be."),
            class: 1,
            prerequisites: Vec::new(),
            operations: vec![op],
            additional: Vec::new(),
            signed: false,
        };
        let _ = p.update(&req, "t", None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn ixfr_from_every_older_serial_applied_gives_the_newest_axfr(steps in proptest::collection::vec(step(), 1..7)) {
            let r = rig(8);
            let mut versions: Vec<(u32, BTreeSet<Rr>)> = vec![(r.publisher.snapshot().serial, axfr_set(&r.control))];
            for s in steps {
                match s {
                    Step::Suppress(i) => { let _ = r.publisher.apply(Change::Suppress { entries: vec![sup(NAMES[i])] }, "t", None); }
                    Step::Lift(i) => { let _ = r.publisher.apply(Change::Lift { names: vec![n(NAMES[i])], reason: "r".into() }, "t", None); }
                    Step::Add(i) => update_one(&r.publisher, NAMES[i], true),
                    Step::Delete(i) => update_one(&r.publisher, NAMES[i], false),
                    // A resign with nothing due is no change; force work by suppressing and lifting.
                    Step::Resign => { let _ = r.publisher.apply(Change::Resign, "t", None); }
                }
                let serial = r.publisher.snapshot().serial;
                if versions.last().map(|v| v.0) != Some(serial) {
                    versions.push((serial, axfr_set(&r.control)));
                }
            }
            let newest = versions.last().unwrap().1.clone();
            for (serial, zone) in &versions[..versions.len() - 1] {
                let out = ask(&r.control, &query(Rtype::IXFR, Some(soa_with(*serial)), false), "127.0.0.1:1", Transport::Tcp);
                let rrs = records(&out);
                let mut z = zone.clone();
                prop_assert!(apply_ixfr(&mut z, &rrs), "serial {serial}: an IXFR, not the whole zone");
                prop_assert!(z == newest, "serial {serial}: IXFR applied differs from the AXFR");
            }
        }
    }
}

#[test]
fn an_allowed_notify_goes_to_the_hook() {
    let r = rig(4);
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let mut setup = r.control.setup.clone();
    let acl_cfg: crate::acl::AclConfig =
        toml::from_str("[[notify]]\nfrom = [\"192.0.2.0/24\"]\n").unwrap();
    setup.acl = acl_cfg.build(&setup.keys).unwrap();
    let c = Control::new(r.publisher.clone(), r.control.service.clone(), setup);
    let mut soa = soa_with(77);
    soa.ttl = 3600;
    let msg = crate::xfr::notify::build(3, &n("be."), Some(&soa));
    // No hook (no primary configured): NOTAUTH.
    let out = ask(&c, &msg, "192.0.2.7:53", Transport::Udp);
    assert_eq!(message::parse(&out[0]).unwrap().rcode(), Rcode::NOTAUTH.0);
    c.set_notify_hook(Arc::new(move |n: &NotifyIn| {
        g.lock().unwrap().push(n.clone())
    }));
    let out = ask(&c, &msg, "192.0.2.7:53", Transport::Udp);
    let m = message::parse(&out[0]).unwrap();
    assert_eq!(m.rcode(), 0);
    assert_eq!(m.header.opcode(), Opcode::NOTIFY);
    assert!(m.header.flags & message::flag::AA != 0);
    assert_eq!(got.lock().unwrap()[0].serial, Some(77));
    // From elsewhere: REFUSED with EDE 18, the hook not called.
    let out = ask(&c, &msg, "198.51.100.1:53", Transport::Udp);
    assert_eq!(message::parse(&out[0]).unwrap().rcode(), Rcode::REFUSED.0);
    assert_eq!(got.lock().unwrap().len(), 1);
}

#[test]
fn transfer_configuration_errors_name_the_field() {
    let base = "[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n";
    let setup = |extra: &str| {
        let cfg = Config::parse(
            std::path::Path::new("/etc/belfry/b.toml"),
            &format!("{base}{extra}"),
        )
        .map_err(|e| e.0)?;
        Setup::from_config(&cfg, "b.toml")
    };
    let ok = setup(
        "[[tsig.key]]\nname = \"k\"\nsecret = \"c2VjcmV0c2VjcmV0\"\n[[acl.transfer]]\nkey = \"k\"\n\
         [transfer]\nalso_notify = [\"192.0.2.1\", \"[2001:db8::1]:5300\"]\nnotify_key = \"k\"\n\
         [[transfer.secondary]]\nname = \"a\"\naddress = \"198.51.100.1:53\"\nsource = \"198.51.100.2\"\n",
    )
    .unwrap();
    assert_eq!(ok.targets.len(), 3);
    assert_eq!(
        ok.targets[0].source,
        "198.51.100.2".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        ok.targets[1].address,
        "192.0.2.1:53".parse::<SocketAddr>().unwrap()
    );
    assert!(ok.targets[2].key.is_some());
    let e = setup("[[acl.transfer]]\nkey = \"nokey\"\n").unwrap_err();
    assert!(
        e.contains("b.toml") && e.contains("acl.transfer[0].key"),
        "{e}"
    );
    let e = setup("[[transfer.secondary]]\nname = \"a\"\naddress = \"nowhere\"\n").unwrap_err();
    assert!(e.contains("transfer.secondary[0].address"), "{e}");
    let e = setup("[[transfer.secondary]]\nname = \"a\"\naddress = \"192.0.2.1\"\nkey = \"x\"\n")
        .unwrap_err();
    assert!(e.contains("transfer.secondary[0].key"), "{e}");
    let e = setup("[transfer]\nalso_notify = [\"1.2.3\"]\n").unwrap_err();
    assert!(e.contains("transfer.also_notify[0]"), "{e}");
    let e = setup("[transfer]\nmax_transfers = 0\n").unwrap_err();
    assert!(e.contains("max_transfers"), "{e}");
    let e = setup("[transfer]\nbogus = 1\n").unwrap_err();
    assert!(e.contains("b.toml:") && e.contains("bogus"), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
    /// Hostile control messages (random bytes, and valid transfer, update and notify
    /// requests with bytes flipped) never panic and get at most one answer over UDP.
    #[test]
    fn hostile_control_messages_never_panic(
        kind in 0usize..4,
        flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..6),
        random in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        thread_local! {
            static RIG: Rig = rig(2);
        }
        let mut msg = match kind {
            0 => random,
            1 => query(Rtype::IXFR, Some(soa_with(5)), true),
            2 => crate::xfr::notify::build(3, &n("be."), Some(&soa_with(9))),
            _ => {
                let z = message::Question { name: n("be."), qtype: Rtype::SOA, qclass: 1 };
                let add = Record { owner: n("p.be."), rtype: Rtype::NS, class: 1, ttl: 60, rdata: n("ns.p.be.") };
                message::build(7, 5 << 11, Some(&z), &[], &[add], &[]).unwrap()
            }
        };
        for (at, b) in flips {
            if !msg.is_empty() {
                let l = msg.len();
                msg[at % l] ^= b;
            }
        }
        RIG.with(|r| {
            for t in [Transport::Udp, Transport::Tcp] {
                let out = ask(&r.control, &msg, "127.0.0.1:53", t);
                if t == Transport::Udp {
                    proptest::prop_assert!(out.len() <= 1);
                }
            }
            Ok(())
        })?;
    }
}
