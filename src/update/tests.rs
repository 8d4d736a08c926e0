//! Unit tests of RFC 2136 parsing, prerequisites and update semantics.

use super::*;
use crate::name::from_text;
use crate::wire::message::{build, Question};

const UPDATE_FLAGS: u16 = 5 << 11;

fn n(s: &str) -> Vec<u8> {
    from_text(s, &[0]).unwrap()
}

fn rr(owner: &str, rtype: Rtype, class: u16, ttl: u32, rdata: &[u8]) -> Record {
    Record {
        owner: n(owner),
        rtype,
        class,
        ttl,
        rdata: rdata.to_vec(),
    }
}

fn soa_rdata(serial: u32) -> Vec<u8> {
    let mut v = n("ns1.be.");
    v.extend_from_slice(&n("hostmaster.be."));
    for x in [serial, 3600, 600, 86400, 300] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

fn zone() -> MemoryZone {
    MemoryZone::new([
        rr("be.", Rtype::SOA, 1, 3600, &soa_rdata(100)),
        rr("be.", Rtype::NS, 1, 3600, &n("ns1.be.")),
        rr("be.", Rtype::NS, 1, 3600, &n("ns2.be.")),
        rr("ns1.be.", Rtype::A, 1, 3600, &[192, 0, 2, 1]),
        rr("example.be.", Rtype::NS, 1, 3600, &n("ns.example.be.")),
        rr("ns.example.be.", Rtype::A, 1, 3600, &[192, 0, 2, 53]),
        rr("alias.be.", Rtype::CNAME, 1, 3600, &n("ns1.be.")),
    ])
}

fn update_msg(zone: &str, zclass: u16, prereq: &[Record], updates: &[Record]) -> Vec<u8> {
    let q = Question {
        name: n(zone),
        qtype: Rtype::SOA,
        qclass: zclass,
    };
    build(0x4242, UPDATE_FLAGS, Some(&q), prereq, updates, &[]).unwrap()
}

fn parse_be(msg: &[u8]) -> Result<UpdateRequest, UpdateError> {
    parse(msg, &n("be."))
}

fn run(z: &MemoryZone, prereq: &[Record], updates: &[Record]) -> Result<Changes, UpdateError> {
    let req = parse_be(&update_msg("be.", 1, prereq, updates))?;
    process(&req, z)
}

fn rcode_of(r: Result<impl std::fmt::Debug, UpdateError>) -> Rcode {
    r.expect_err("expected an error").rcode
}

#[test]
fn parses_the_four_operations_and_groups_value_prerequisites() {
    let msg = update_msg(
        "be.",
        1,
        &[
            rr("example.be.", Rtype::NS, 1, 0, &n("ns.example.be.")),
            rr("new.be.", Rtype::ANY, 254, 0, &[]),
            rr("example.be.", Rtype::NS, 1, 0, &n("ns2.example.be.")),
            rr("ns1.be.", Rtype::A, 255, 0, &[]),
        ],
        &[
            rr("new.be.", Rtype::NS, 1, 300, &n("ns.new.be.")),
            rr("old.be.", Rtype::DS, 255, 0, &[]),
            rr("gone.be.", Rtype::ANY, 255, 0, &[]),
            rr("example.be.", Rtype::NS, 254, 0, &n("ns.example.be.")),
        ],
    );
    let req = parse_be(&msg).unwrap();
    assert_eq!(req.id, 0x4242);
    assert!(!req.signed);
    assert_eq!(
        req.prerequisites,
        vec![
            Prerequisite::RRsetEquals(
                n("example.be."),
                Rtype::NS,
                vec![n("ns.example.be."), n("ns2.example.be.")]
            ),
            Prerequisite::NameNotInUse(n("new.be.")),
            Prerequisite::RRsetExists(n("ns1.be."), Rtype::A),
        ]
    );
    assert_eq!(
        req.operations,
        vec![
            Operation::Add(rr("new.be.", Rtype::NS, 1, 300, &n("ns.new.be."))),
            Operation::DeleteRRset(n("old.be."), Rtype::DS),
            Operation::DeleteName(n("gone.be.")),
            Operation::DeleteRecord(n("example.be."), Rtype::NS, n("ns.example.be.")),
        ]
    );
}

#[test]
fn zone_section_errors() {
    let q = |name: &str, t: Rtype| Question {
        name: n(name),
        qtype: t,
        qclass: 1,
    };
    let none = build(1, UPDATE_FLAGS, None, &[], &[], &[]).unwrap();
    assert_eq!(rcode_of(parse_be(&none)), Rcode::FORMERR);
    let mut two = build(1, UPDATE_FLAGS, Some(&q("be.", Rtype::SOA)), &[], &[], &[]).unwrap();
    two[5] = 2;
    two.extend_from_slice(&crate::wire::message::question_bytes(
        &n("be."),
        Rtype::SOA,
        1,
    ));
    assert_eq!(rcode_of(parse_be(&two)), Rcode::FORMERR);
    let not_soa = build(1, UPDATE_FLAGS, Some(&q("be.", Rtype::A)), &[], &[], &[]).unwrap();
    assert_eq!(rcode_of(parse_be(&not_soa)), Rcode::FORMERR);
    assert_eq!(
        rcode_of(parse_be(&update_msg("nl.", 1, &[], &[]))),
        Rcode::NOTAUTH
    );
    assert_eq!(
        rcode_of(parse_be(&update_msg("be.", 3, &[], &[]))),
        Rcode::NOTAUTH
    );
    assert_eq!(
        rcode_of(parse_be(&update_msg("example.be.", 1, &[], &[]))),
        Rcode::NOTAUTH
    );
    // A query is not an update; a response is not a request.
    let query = build(1, 0, Some(&q("be.", Rtype::SOA)), &[], &[], &[]).unwrap();
    assert_eq!(rcode_of(parse_be(&query)), Rcode::FORMERR);
    let resp = build(
        1,
        UPDATE_FLAGS | 0x8000,
        Some(&q("be.", Rtype::SOA)),
        &[],
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(rcode_of(parse_be(&resp)), Rcode::FORMERR);
}

#[test]
fn prerequisite_format_errors_and_notzone() {
    let bad = |p: Record| rcode_of(parse_be(&update_msg("be.", 1, &[p], &[])));
    assert_eq!(bad(rr("a.be.", Rtype::A, 255, 5, &[])), Rcode::FORMERR);
    assert_eq!(
        bad(rr("a.be.", Rtype::A, 255, 0, &[1, 2, 3, 4])),
        Rcode::FORMERR
    );
    assert_eq!(bad(rr("a.be.", Rtype::ANY, 254, 0, &[1])), Rcode::FORMERR);
    assert_eq!(
        bad(rr("a.be.", Rtype::A, 3, 0, &[1, 2, 3, 4])),
        Rcode::FORMERR
    );
    assert_eq!(bad(rr("a.be.", Rtype::ANY, 1, 0, &[])), Rcode::FORMERR);
    assert_eq!(bad(rr("a.be.", Rtype::A, 1, 0, &[1, 2, 3])), Rcode::FORMERR);
    assert_eq!(bad(rr("a.nl.", Rtype::A, 255, 0, &[])), Rcode::NOTZONE);
    assert_eq!(bad(rr("abe.", Rtype::A, 255, 0, &[])), Rcode::NOTZONE);
}

#[test]
fn update_prescan_errors_and_notzone() {
    let bad = |u: Record| rcode_of(parse_be(&update_msg("be.", 1, &[], &[u])));
    assert_eq!(bad(rr("a.be.", Rtype::ANY, 1, 300, &[])), Rcode::FORMERR);
    assert_eq!(bad(rr("a.be.", Rtype::AXFR, 1, 300, &[])), Rcode::FORMERR);
    assert_eq!(bad(rr("a.be.", Rtype::MAILA, 255, 0, &[])), Rcode::FORMERR);
    assert_eq!(bad(rr("a.be.", Rtype::A, 255, 300, &[])), Rcode::FORMERR);
    assert_eq!(
        bad(rr("a.be.", Rtype::A, 255, 0, &[1, 2, 3, 4])),
        Rcode::FORMERR
    );
    assert_eq!(
        bad(rr("a.be.", Rtype::A, 254, 300, &[1, 2, 3, 4])),
        Rcode::FORMERR
    );
    assert_eq!(bad(rr("a.be.", Rtype::ANY, 254, 0, &[])), Rcode::FORMERR);
    assert_eq!(
        bad(rr("a.be.", Rtype::A, 3, 300, &[1, 2, 3, 4])),
        Rcode::FORMERR
    );
    assert_eq!(
        bad(rr("a.be.", Rtype::A, 1, 300, &[1, 2, 3, 4, 5])),
        Rcode::FORMERR
    );
    assert_eq!(
        bad(rr("a.be.", Rtype::NS, 1, 300, b"\x02ns")),
        Rcode::FORMERR
    );
    assert_eq!(
        bad(rr("www.example.com.", Rtype::A, 1, 300, &[1, 2, 3, 4])),
        Rcode::NOTZONE
    );
}

#[test]
fn prerequisites_against_the_zone() {
    let z = zone();
    let ok = |p: Record| run(&z, &[p], &[]).map(|_| ());
    assert_eq!(ok(rr("ns1.be.", Rtype::ANY, 255, 0, &[])), Ok(()));
    assert_eq!(
        rcode_of(ok(rr("nothere.be.", Rtype::ANY, 255, 0, &[]))),
        Rcode::NXDOMAIN
    );
    assert_eq!(ok(rr("nothere.be.", Rtype::ANY, 254, 0, &[])), Ok(()));
    assert_eq!(
        rcode_of(ok(rr("NS1.be.", Rtype::ANY, 254, 0, &[]))),
        Rcode::YXDOMAIN
    );
    assert_eq!(ok(rr("ns1.be.", Rtype::A, 255, 0, &[])), Ok(()));
    assert_eq!(
        rcode_of(ok(rr("ns1.be.", Rtype::AAAA, 255, 0, &[]))),
        Rcode::NXRRSET
    );
    assert_eq!(ok(rr("ns1.be.", Rtype::AAAA, 254, 0, &[])), Ok(()));
    assert_eq!(
        rcode_of(ok(rr("ns1.be.", Rtype::A, 254, 0, &[]))),
        Rcode::YXRRSET
    );
    // Empty non-terminals are not "in use" (§2.4.4): "example.be." has data but
    // a name only above data would fail; here a name with only a child.
    let z2 = MemoryZone::new([rr("a.b.be.", Rtype::A, 1, 60, &[1, 1, 1, 1])]);
    let req = parse_be(&update_msg(
        "be.",
        1,
        &[rr("b.be.", Rtype::ANY, 255, 0, &[])],
        &[],
    ))
    .unwrap();
    assert_eq!(rcode_of(process(&req, &z2)), Rcode::NXDOMAIN);
    // Value-dependent: the whole set, order and name case ignored.
    let both = [
        rr("be.", Rtype::NS, 1, 0, &n("NS2.be.")),
        rr("be.", Rtype::NS, 1, 0, &n("ns1.be.")),
    ];
    assert_eq!(run(&z, &both, &[]).map(|_| ()), Ok(()));
    assert_eq!(rcode_of(run(&z, &both[..1], &[])), Rcode::NXRRSET);
    assert_eq!(
        rcode_of(run(&z, &[rr("x.be.", Rtype::A, 1, 0, &[1, 2, 3, 4])], &[])),
        Rcode::NXRRSET
    );
    // The first failing prerequisite decides.
    let two = [
        rr("nothere.be.", Rtype::ANY, 255, 0, &[]),
        rr("ns1.be.", Rtype::A, 254, 0, &[]),
    ];
    assert_eq!(rcode_of(run(&z, &two, &[])), Rcode::NXDOMAIN);
}

#[test]
fn add_and_delete() {
    let mut z = zone();
    let c = run(
        &z,
        &[],
        &[
            rr("new.be.", Rtype::NS, 1, 300, &n("ns.new.be.")),
            rr("new.be.", Rtype::DS, 1, 300, &[1, 2, 8, 2, 0xAA]),
        ],
    )
    .unwrap();
    assert_eq!(c.added.len(), 2);
    assert!(c.removed.is_empty());
    z.apply(&c);
    // Adding the same record again changes nothing (§3.4.2.2 duplicate).
    let c = run(
        &z,
        &[],
        &[rr("NEW.be.", Rtype::NS, 1, 300, &n("NS.new.be."))],
    )
    .unwrap();
    assert!(c.is_empty(), "{c:?}");
    // A second NS with another TTL: the RRset takes the new TTL.
    let c = run(
        &z,
        &[],
        &[rr("new.be.", Rtype::NS, 1, 600, &n("ns2.new.be."))],
    )
    .unwrap();
    assert_eq!(
        c.removed,
        vec![rr("new.be.", Rtype::NS, 1, 300, &n("ns.new.be."))]
    );
    assert_eq!(c.added.len(), 2);
    assert!(c.added.iter().all(|r| r.ttl == 600));
    z.apply(&c);
    // Delete one record (names compared ignoring case), then the RRset, then the name.
    let c = run(
        &z,
        &[],
        &[rr("new.be.", Rtype::NS, 254, 0, &n("NS2.NEW.be."))],
    )
    .unwrap();
    assert_eq!(c.removed.len(), 1);
    z.apply(&c);
    let c = run(&z, &[], &[rr("new.be.", Rtype::DS, 255, 0, &[])]).unwrap();
    assert_eq!(c.removed.len(), 1);
    assert_eq!(c.removed[0].rtype, Rtype::DS);
    z.apply(&c);
    let c = run(&z, &[], &[rr("new.be.", Rtype::ANY, 255, 0, &[])]).unwrap();
    assert_eq!(c.removed.len(), 1);
    z.apply(&c);
    assert!(z.records_at(&n("new.be.")).is_empty());
    // Deleting what is not there is fine and changes nothing (§3.4.2.7).
    assert!(run(&z, &[], &[rr("none.be.", Rtype::A, 255, 0, &[])])
        .unwrap()
        .is_empty());
}

#[test]
fn operations_apply_in_order() {
    // Delete the RRset, then add: the result is the new record only.
    let z = zone();
    let c = run(
        &z,
        &[],
        &[
            rr("example.be.", Rtype::NS, 255, 0, &[]),
            rr("example.be.", Rtype::NS, 1, 3600, &n("ns9.other.net.")),
        ],
    )
    .unwrap();
    assert_eq!(
        c.removed,
        vec![rr("example.be.", Rtype::NS, 1, 3600, &n("ns.example.be."))]
    );
    assert_eq!(
        c.added,
        vec![rr("example.be.", Rtype::NS, 1, 3600, &n("ns9.other.net."))]
    );
}

#[test]
fn apex_soa_and_ns_are_protected() {
    let z = zone();
    // Delete all at the apex keeps SOA and NS.
    let mut z2 =
        MemoryZone::new(
            z.records()
                .cloned()
                .chain([rr("be.", Rtype::TXT, 1, 60, b"\x02hi")]),
        );
    let c = run(&z2, &[], &[rr("be.", Rtype::ANY, 255, 0, &[])]).unwrap();
    assert_eq!(c.removed, vec![rr("be.", Rtype::TXT, 1, 60, b"\x02hi")]);
    z2.apply(&c);
    // Deleting the apex SOA or NS RRset is ignored.
    assert!(run(
        &z,
        &[],
        &[
            rr("be.", Rtype::NS, 255, 0, &[]),
            rr("be.", Rtype::SOA, 255, 0, &[])
        ]
    )
    .unwrap()
    .is_empty());
    // Deleting one of two apex NS works; deleting the last one is ignored.
    let c = run(
        &z,
        &[],
        &[
            rr("be.", Rtype::NS, 254, 0, &n("ns1.be.")),
            rr("be.", Rtype::NS, 254, 0, &n("ns2.be.")),
        ],
    )
    .unwrap();
    assert_eq!(
        c.removed,
        vec![rr("be.", Rtype::NS, 1, 3600, &n("ns1.be."))]
    );
    // Deleting an SOA record is ignored.
    assert!(
        run(&z, &[], &[rr("be.", Rtype::SOA, 254, 0, &soa_rdata(100))])
            .unwrap()
            .is_empty()
    );
    // Deleting the last NS of a delegation is allowed (it is not the apex).
    let c = run(
        &z,
        &[],
        &[rr("example.be.", Rtype::NS, 254, 0, &n("ns.example.be."))],
    )
    .unwrap();
    assert_eq!(c.removed.len(), 1);
}

#[test]
fn soa_replaced_only_forward_and_only_at_the_apex() {
    let z = zone();
    let c = run(&z, &[], &[rr("be.", Rtype::SOA, 1, 3600, &soa_rdata(101))]).unwrap();
    assert_eq!(
        c.removed,
        vec![rr("be.", Rtype::SOA, 1, 3600, &soa_rdata(100))]
    );
    assert_eq!(
        crate::serial::soa_serial(&c.new_soa().unwrap().rdata),
        Some(101)
    );
    assert!(
        run(&z, &[], &[rr("be.", Rtype::SOA, 1, 3600, &soa_rdata(99))])
            .unwrap()
            .is_empty()
    );
    // Same serial: allowed (RFC 2136 ignores only a lower one), here changes the TTL.
    let c = run(&z, &[], &[rr("be.", Rtype::SOA, 1, 60, &soa_rdata(100))]).unwrap();
    assert_eq!(c.added.len(), 1);
    // Across the wrap: 0xFFFFFFFF → 5 is forward.
    let zw = MemoryZone::new([rr("be.", Rtype::SOA, 1, 3600, &soa_rdata(u32::MAX))]);
    assert_eq!(
        run(&zw, &[], &[rr("be.", Rtype::SOA, 1, 3600, &soa_rdata(5))])
            .unwrap()
            .added
            .len(),
        1
    );
    // Below the apex there is no SOA to replace.
    assert!(run(
        &z,
        &[],
        &[rr("sub.be.", Rtype::SOA, 1, 3600, &soa_rdata(500))]
    )
    .unwrap()
    .is_empty());
}

#[test]
fn cname_and_other_data() {
    let z = zone();
    // CNAME where other data exists: ignored.
    assert!(
        run(&z, &[], &[rr("ns1.be.", Rtype::CNAME, 1, 60, &n("x.be."))])
            .unwrap()
            .is_empty()
    );
    // Other data where a CNAME exists: ignored.
    assert!(
        run(&z, &[], &[rr("alias.be.", Rtype::A, 1, 60, &[1, 2, 3, 4])])
            .unwrap()
            .is_empty()
    );
    // CNAME replaces CNAME.
    let c = run(
        &z,
        &[],
        &[rr("alias.be.", Rtype::CNAME, 1, 60, &n("ns2.be."))],
    )
    .unwrap();
    assert_eq!(c.removed.len(), 1);
    assert_eq!(
        c.added,
        vec![rr("alias.be.", Rtype::CNAME, 1, 60, &n("ns2.be."))]
    );
}

#[test]
fn policy_and_response() {
    let req = parse_be(&update_msg(
        "be.",
        1,
        &[],
        &[rr("a.be.", Rtype::RRSIG, 255, 0, &[])],
    ))
    .unwrap();
    assert_eq!(
        refuse_types(&req, &[Rtype::RRSIG, Rtype::NSEC3])
            .unwrap_err()
            .rcode,
        Rcode::REFUSED
    );
    let msg = update_msg(
        "be.",
        1,
        &[],
        &[rr("a.be.", Rtype::A, 1, 60, &[1, 2, 3, 4])],
    );
    let resp = response(&msg, Rcode::NXRRSET);
    let m = crate::wire::message::parse(&resp).unwrap();
    assert_eq!(m.header.id, 0x4242);
    assert_eq!(m.header.opcode(), crate::wire::Opcode::UPDATE);
    assert!(m.header.is_response());
    assert_eq!(m.header.rcode(), 8);
    assert_eq!(m.questions[0].name, n("be."));
    assert!(m.answer.is_empty() && m.authority.is_empty() && m.opt.is_none());
    // Garbage still gets a header-only FORMERR.
    let resp = response(&[0x12, 0x34, 0x28, 0], Rcode::FORMERR);
    assert_eq!(resp.len(), 12);
    assert_eq!(resp[3] & 0x0F, 1);
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let _ = parse_be(&bytes);
        let _ = response(&bytes, Rcode::FORMERR);
    }

    #[test]
    fn mutated_updates_never_panic_and_errors_are_update_rcodes(
        pos in 0usize..400, val in proptest::prelude::any::<u8>(), cut in 0usize..400,
    ) {
        let good = update_msg(
            "be.",
            1,
            &[rr("ns1.be.", Rtype::A, 255, 0, &[]), rr("be.", Rtype::NS, 1, 0, &n("ns1.be."))],
            &[rr("new.be.", Rtype::NS, 1, 300, &n("ns.new.be.")), rr("alias.be.", Rtype::ANY, 255, 0, &[]),
              rr("be.", Rtype::SOA, 1, 3600, &soa_rdata(7)), rr("example.be.", Rtype::NS, 254, 0, &n("ns.example.be."))],
        );
        let mut m = good.clone();
        let p = pos % m.len();
        m[p] = val;
        let c = cut % m.len();
        for msg in [&m[..], &m[..c]] {
            match parse_be(msg) {
                Ok(req) => {
                    let _ = process(&req, &zone());
                }
                Err(e) => proptest::prop_assert!(matches!(e.rcode.0, 1 | 9 | 10), "{e}"),
            }
        }
    }
}
