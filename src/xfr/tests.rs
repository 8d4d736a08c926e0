//! Unit tests of the transfer reader (no network): AXFR, IXFR in its three answer forms, errors.

use super::client::{Diff, Kind, Reader, Transfer};
use super::{Limits, XfrError};
use crate::name::from_text;
use crate::tsig;
use crate::wire::decode::Record;
use crate::wire::message::{self, flag, Question};
use crate::wire::Rtype;

const ID: u16 = 4321;

fn n(s: &str) -> Vec<u8> {
    from_text(s, &[0]).unwrap()
}

fn soa(serial: u32) -> Record {
    let mut rdata = n("ns1.be.");
    rdata.extend_from_slice(&n("hostmaster.be."));
    for v in [serial, 3600, 600, 86400, 300] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    Record {
        owner: n("be."),
        rtype: Rtype::SOA,
        class: 1,
        ttl: 3600,
        rdata,
    }
}

fn a(name: &str, last: u8) -> Record {
    Record {
        owner: n(name),
        rtype: Rtype::A,
        class: 1,
        ttl: 60,
        rdata: vec![192, 0, 2, last],
    }
}

fn ns(name: &str, target: &str) -> Record {
    Record {
        owner: n(name),
        rtype: Rtype::NS,
        class: 1,
        ttl: 60,
        rdata: n(target),
    }
}

fn msg_q(qtype: Rtype, records: &[Record], question: bool) -> Vec<u8> {
    let q = Question {
        name: n("be."),
        qtype,
        qclass: 1,
    };
    message::build(
        ID,
        flag::QR | flag::AA,
        question.then_some(&q),
        records,
        &[],
        &[],
    )
    .unwrap()
}

fn reader(kind: &Kind) -> Reader {
    Reader::new(&n("be."), kind, ID, None, &Limits::default())
}

/// Feed records split into messages at the given cut points.
fn run(
    kind: &Kind,
    qtype: Rtype,
    records: &[Record],
    cuts: &[usize],
) -> Result<Transfer, XfrError> {
    let mut r = reader(kind);
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < records.len())
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds.push(records.len());
    for (i, end) in bounds.into_iter().enumerate() {
        let m = msg_q(qtype, &records[start..end], i == 0);
        r.feed(&m, 0)?;
        start = end;
    }
    r.finish()
}

fn ixfr_kind(serial: u32) -> Kind {
    Kind::Ixfr(soa(serial))
}

fn incremental_stream() -> Vec<Record> {
    vec![
        soa(12),
        // 10 → 11: remove a.be A .1, add b.be A .2
        soa(10),
        a("a.be.", 1),
        soa(11),
        a("b.be.", 2),
        // 11 → 12: change delegation x.be NS
        soa(11),
        ns("x.be.", "ns1.x.be."),
        soa(12),
        ns("x.be.", "ns2.x.be."),
        a("c.be.", 3),
        soa(12),
    ]
}

fn expected_diffs() -> Transfer {
    Transfer::Incremental {
        soa: soa(12),
        diffs: vec![
            Diff {
                old_soa: soa(10),
                removed: vec![a("a.be.", 1)],
                new_soa: soa(11),
                added: vec![a("b.be.", 2)],
            },
            Diff {
                old_soa: soa(11),
                removed: vec![ns("x.be.", "ns1.x.be.")],
                new_soa: soa(12),
                added: vec![ns("x.be.", "ns2.x.be."), a("c.be.", 3)],
            },
        ],
    }
}

#[test]
fn axfr_in_several_messages() {
    let recs = vec![
        soa(7),
        ns("be.", "ns1.be."),
        a("ns1.be.", 1),
        ns("x.be.", "ns.x.be."),
        soa(7),
    ];
    for cuts in [vec![], vec![1], vec![2, 4], vec![1, 2, 3, 4]] {
        let t = run(&Kind::Axfr, Rtype::AXFR, &recs, &cuts).unwrap();
        assert_eq!(
            t,
            Transfer::Full {
                records: recs[..4].to_vec()
            },
            "cuts {cuts:?}"
        );
        assert_eq!(t.serial(), 7);
    }
}

#[test]
fn axfr_errors() {
    let bad = |recs: &[Record]| run(&Kind::Axfr, Rtype::AXFR, recs, &[]).unwrap_err();
    assert!(matches!(
        bad(&[a("a.be.", 1), soa(7)]),
        XfrError::Malformed(_)
    ));
    assert!(matches!(
        bad(&[soa(7), a("a.be.", 1), soa(8)]),
        XfrError::Malformed(_)
    ));
    assert!(matches!(
        bad(&[soa(7), soa(7), a("a.be.", 1)]),
        XfrError::Malformed(_)
    ));
    assert!(matches!(
        bad(&[soa(7), a("a.nl.", 1), soa(7)]),
        XfrError::Malformed(_)
    ));
    let mut wrong_class = a("a.be.", 1);
    wrong_class.class = 3;
    assert!(matches!(
        bad(&[soa(7), wrong_class, soa(7)]),
        XfrError::Malformed(_)
    ));
    let mut bad_a = a("a.be.", 1);
    bad_a.rdata.push(0);
    assert!(matches!(
        bad(&[soa(7), bad_a, soa(7)]),
        XfrError::Malformed(_)
    ));
    // Never finished.
    assert_eq!(bad(&[soa(7), a("a.be.", 1)]), XfrError::Closed);
}

#[test]
fn header_checks() {
    let mut r = reader(&Kind::Axfr);
    let mut m = msg_q(Rtype::AXFR, &[soa(1)], true);
    m[0] ^= 1;
    assert!(matches!(r.feed(&m, 0), Err(XfrError::Malformed(_))));
    let m = msg_q(Rtype::IXFR, &[soa(1)], true);
    assert!(matches!(
        reader(&Kind::Axfr).feed(&m, 0),
        Err(XfrError::Malformed(_))
    ));
    let mut m = msg_q(Rtype::AXFR, &[], true);
    m[3] |= 5;
    assert_eq!(reader(&Kind::Axfr).feed(&m, 0), Err(XfrError::Rcode(5)));
    let mut m = msg_q(Rtype::AXFR, &[soa(1)], true);
    m[2] |= (flag::TC >> 8) as u8;
    assert!(matches!(
        reader(&Kind::Axfr).feed(&m, 0),
        Err(XfrError::Malformed(_))
    ));
    // The first message must carry the question.
    let m = msg_q(Rtype::AXFR, &[soa(1)], false);
    assert!(matches!(
        reader(&Kind::Axfr).feed(&m, 0),
        Err(XfrError::Malformed(_))
    ));
}

#[test]
fn ixfr_incremental_split_anywhere() {
    let recs = incremental_stream();
    for cuts in [
        vec![],
        vec![1],
        vec![2],
        vec![3, 7],
        (1..recs.len()).collect::<Vec<_>>(),
    ] {
        assert_eq!(
            run(&ixfr_kind(10), Rtype::IXFR, &recs, &cuts).unwrap(),
            expected_diffs(),
            "cuts {cuts:?}"
        );
    }
}

#[test]
fn ixfr_up_to_date_and_axfr_style() {
    assert_eq!(
        run(&ixfr_kind(12), Rtype::IXFR, &[soa(12)], &[]).unwrap(),
        Transfer::UpToDate { soa: soa(12) }
    );
    // Ours is newer than theirs (e.g. a primary restored from backup): still a lone SOA.
    assert_eq!(
        run(&ixfr_kind(13), Rtype::IXFR, &[soa(12)], &[]).unwrap(),
        Transfer::UpToDate { soa: soa(12) }
    );
    let recs = vec![soa(12), ns("be.", "ns1.be."), a("ns1.be.", 1), soa(12)];
    for cuts in [vec![], vec![1], vec![1, 2, 3]] {
        assert_eq!(
            run(&ixfr_kind(10), Rtype::IXFR, &recs, &cuts).unwrap(),
            Transfer::Full {
                records: recs[..3].to_vec()
            }
        );
    }
    // AXFR-style answer of a zone holding only its SOA.
    assert_eq!(
        run(&ixfr_kind(10), Rtype::IXFR, &[soa(12), soa(12)], &[]).unwrap(),
        Transfer::Full {
            records: vec![soa(12)]
        }
    );
}

#[test]
fn ixfr_broken_sequences() {
    let bad =
        |recs: &[Record], from: u32| run(&ixfr_kind(from), Rtype::IXFR, recs, &[]).unwrap_err();
    // Not starting at our serial.
    assert!(matches!(
        bad(&incremental_stream(), 9),
        XfrError::Malformed(_)
    ));
    // Not chained: 10 → 11, then 9 → 12.
    let recs = vec![soa(12), soa(10), soa(11), soa(9), soa(12), soa(12)];
    assert!(matches!(bad(&recs, 10), XfrError::Malformed(_)));
    // Going backwards inside a difference.
    let recs = vec![soa(12), soa(10), soa(9), soa(12)];
    assert!(matches!(bad(&recs, 10), XfrError::Malformed(_)));
    // Ends in the middle.
    let recs = vec![soa(12), soa(10), a("a.be.", 1), soa(12), a("b.be.", 2)];
    assert_eq!(bad(&recs, 10), XfrError::Closed);
    assert!(XfrError::Malformed("x").ixfr_fallback());
    assert!(XfrError::Rcode(4).ixfr_fallback());
    assert!(!XfrError::Timeout("x").ixfr_fallback());
}

#[test]
fn limits_stop_a_stream_that_never_ends() {
    let limits = Limits {
        max_records: 100,
        ..Limits::default()
    };
    let mut r = Reader::new(&n("be."), &Kind::Axfr, ID, None, &limits);
    r.feed(&msg_q(Rtype::AXFR, &[soa(1)], true), 0).unwrap();
    let chunk: Vec<Record> = (0..30).map(|i| a("a.be.", i)).collect();
    let mut err = None;
    for _ in 0..10 {
        if let Err(e) = r.feed(&msg_q(Rtype::AXFR, &chunk, false), 0) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(XfrError::TooLarge("number of records")));
    let limits = Limits {
        max_bytes: 500,
        ..Limits::default()
    };
    let mut r = Reader::new(&n("be."), &Kind::Axfr, ID, None, &limits);
    let mut with_soa = vec![soa(1)];
    with_soa.extend(chunk);
    assert_eq!(
        r.feed(&msg_q(Rtype::AXFR, &with_soa, true), 0).unwrap_err(),
        XfrError::TooLarge("number of bytes")
    );
}

#[test]
fn tsig_on_every_message() {
    let key = tsig::Key::from_text("xfr-key", "hmac-sha256", "c2VjcmV0c2VjcmV0").unwrap();
    let mut ring = tsig::KeyRing::new();
    ring.insert(key.clone()).unwrap();
    let q = Question {
        name: n("be."),
        qtype: Rtype::AXFR,
        qclass: 1,
    };
    let mut req = message::build(ID, 0, Some(&q), &[], &[], &[]).unwrap();
    let v = tsig::sign_request(&key, &mut req, 100).unwrap();
    let tsig::Check::Verified(mut s) = tsig::verify_request(&ring, &req, 100) else {
        panic!()
    };
    let mut m1 = msg_q(Rtype::AXFR, &[soa(3), a("a.be.", 1)], true);
    let mut m2 = msg_q(Rtype::AXFR, &[a("b.be.", 2), soa(3)], false);
    s.sign(&mut m1, 100).unwrap();
    s.sign(&mut m2, 100).unwrap();
    let mut r = Reader::new(&n("be."), &Kind::Axfr, ID, Some(v), &Limits::default());
    assert!(!r.feed(&m1, 100).unwrap());
    assert!(r.feed(&m2, 100).unwrap());
    assert_eq!(
        r.finish().unwrap(),
        Transfer::Full {
            records: vec![soa(3), a("a.be.", 1), a("b.be.", 2)]
        }
    );

    // Unsigned answer to a signed request; an unsigned REFUSED reports the RCODE.
    let v = tsig::sign_request(&key, &mut req.clone(), 100).unwrap();
    let mut r = Reader::new(&n("be."), &Kind::Axfr, ID, Some(v), &Limits::default());
    assert_eq!(
        r.feed(&msg_q(Rtype::AXFR, &[soa(3)], true), 100),
        Err(XfrError::Tsig(tsig::VerifyError::Unsigned))
    );
    let v = tsig::sign_request(&key, &mut req.clone(), 100).unwrap();
    let mut r = Reader::new(&n("be."), &Kind::Axfr, ID, Some(v), &Limits::default());
    let mut refused = msg_q(Rtype::AXFR, &[], true);
    refused[3] |= 5;
    assert_eq!(r.feed(&refused, 100), Err(XfrError::Rcode(5)));
}

proptest::proptest! {
    #[test]
    fn feed_never_panics(msgs in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 1..4)) {
        let mut r = reader(&ixfr_kind(10));
        for m in msgs {
            let _ = r.feed(&m, 0);
        }
        let _ = r.finish();
    }

    #[test]
    fn mutated_ixfr_never_panics(pos in 0usize..400, val in proptest::prelude::any::<u8>()) {
        let mut m = msg_q(Rtype::IXFR, &incremental_stream(), true);
        let p = pos % m.len();
        m[p] = val;
        let mut r = reader(&ixfr_kind(10));
        let _ = r.feed(&m, 0);
        let _ = r.finish();
    }

    #[test]
    fn ixfr_result_does_not_depend_on_message_boundaries(cuts in proptest::collection::vec(1usize..11, 0..6)) {
        proptest::prop_assert_eq!(run(&ixfr_kind(10), Rtype::IXFR, &incremental_stream(), &cuts).unwrap(), expected_diffs());
    }
}
