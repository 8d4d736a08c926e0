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

pub(crate) fn snapshot(zone: Zone) -> Snapshot {
    let serial = zone.serial();
    Snapshot {
        zone: Arc::new(zone),
        dnssec: None,
        suppressions: Arc::new(Suppressions::new()),
        serial,
    }
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

#[test]
fn referral_to_secure_delegation_has_ns_and_ds_no_aa() {
    let s = snapshot(test_zone());
    let m = query(&s, "www.secure.be.", Rtype::A);
    assert_eq!(m.rcode, 0);
    assert!(!m.flag(flags::AA));
    assert!(m.answer.is_empty());
    assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 2);
    // RFC 3225 §3: no DS without DO (and never in an unsigned zone).
    assert_eq!(Message::of(&m.authority, Rtype::DS).len(), 0);
    assert_eq!(m.authority[0].owner, n("secure.be."));
    assert!(m.additional.is_empty());
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

/// A version of the test zone with some domains suppressed, through the publisher.
pub(crate) fn suppressed(domains: &[&str]) -> Arc<Snapshot> {
    let zone = test_zone();
    let serial = zone.serial();
    let list = domains
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
    crate::publish::Publisher::new(
        zone,
        None,
        list,
        serial,
        crate::publish::Settings::default(),
        crate::publish::Sinks::default(),
    )
    .unwrap()
    .snapshot_full()
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

/// Counts heap allocations made by the current thread (for the steady-state test).
mod counting {
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
    ];
    // The counter does see allocations on this thread.
    let before = counting::count();
    let v: Vec<u8> = Vec::with_capacity(16);
    drop(std::hint::black_box(v));
    assert!(counting::count() > before);
    let mut out = Vec::with_capacity(65535);
    // Warm up (first use may size buffers).
    for q in &queries {
        handle(&s, &cfg, q, false, &mut out);
    }
    for q in &queries {
        let before = counting::count();
        assert!(handle(&s, &cfg, q, false, &mut out));
        let made = counting::count() - before;
        assert_eq!(
            made,
            0,
            "query {} allocated {made} times",
            u16::from_be_bytes([q[0], q[1]])
        );
    }
}
