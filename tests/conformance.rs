//! Conformance against real clients and the hickory-proto oracle: DNSSEC records only with
//! DO (RFC 3225 §3, RFC 4035 §3.1.4), a 512-byte referral without EDNS, in-zone CNAME
//! chasing (RFC 1034 §4.3.2 step 3a, RFC 6604) validated by delv and unbound, and a
//! signature that cannot be made answered SERVFAIL with an Extended DNS Error (RFC 8914).

mod common;

use belfry::wire::Rtype;
use common::oracle::{self, assert_signed_rrsets, dnssec_records_besides, ede, verify_rrsigs};
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::time::{Duration, Instant};

/// The three ways a query can ask (or not) for DNSSEC.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    NoEdns,
    Do0,
    Do1,
}

impl Mode {
    fn edns(self) -> Option<(u16, bool)> {
        match self {
            Mode::NoEdns => None,
            Mode::Do0 => Some((1232, false)),
            Mode::Do1 => Some((1232, true)),
        }
    }

    fn dig(self) -> &'static str {
        match self {
            Mode::NoEdns => "+noedns",
            Mode::Do0 => "+edns=0 +nodnssec",
            Mode::Do1 => "+dnssec",
        }
    }

    fn kdig(self) -> &'static str {
        match self {
            Mode::NoEdns => "+noedns",
            Mode::Do0 => "+edns=0",
            Mode::Do1 => "+dnssec",
        }
    }
}

const DNSSEC_TYPES: [&str; 6] = ["RRSIG", "NSEC", "NSEC3", "DS", "DNSKEY", "NSEC3PARAM"];

/// DNSSEC record types (other than the asked type) in the sections of dig or kdig output.
fn dnssec_in_text(out: &str, asked: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let ty = *t.get(3)?;
            (ty != asked && DNSSEC_TYPES.contains(&ty)).then(|| l.to_string())
        })
        .collect()
}

fn suppress(s: &Server, domain: &str) {
    let o = s.cli(&[
        "add", domain, "--reason", "test", "--case", "C-7", "--by", "tester",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Referral, DS at a delegation, NXDOMAIN, NODATA, apex and suppressed answers, each with
/// no EDNS, DO=0 and DO=1: a DNSSEC record only with DO=1 or when the type asks for it.
#[test]
fn dnssec_records_only_with_do_or_when_asked_for() {
    let s = Server::start("do-bit", Opts::default());
    suppress(&s, "phish-example.be.");
    let cases: &[(&str, Rtype, &str, ResponseCode)] = &[
        (
            "www.glued.be",
            Rtype::A,
            "secure referral",
            ResponseCode::NoError,
        ),
        (
            "www.insecure.be",
            Rtype::A,
            "insecure referral",
            ResponseCode::NoError,
        ),
        (
            "glued.be",
            Rtype::DS,
            "DS at a delegation",
            ResponseCode::NoError,
        ),
        (
            "insecure.be",
            Rtype::DS,
            "no DS at a delegation",
            ResponseCode::NoError,
        ),
        (
            "nothing-here.be",
            Rtype::A,
            "NXDOMAIN",
            ResponseCode::NXDomain,
        ),
        ("be", Rtype::MX, "NODATA", ResponseCode::NoError),
        (
            "gov.be",
            Rtype::A,
            "NODATA at an ENT",
            ResponseCode::NoError,
        ),
        ("be", Rtype::SOA, "apex", ResponseCode::NoError),
        ("be", Rtype::NS, "apex NS", ResponseCode::NoError),
        ("be", Rtype::DNSKEY, "apex DNSKEY", ResponseCode::NoError),
        (
            "www.phish-example.be",
            Rtype::A,
            "suppressed",
            ResponseCode::NXDomain,
        ),
    ];
    for &(name, t, what, rcode) in cases {
        let tname = format!("{}", RecordType::from(t.0));
        for mode in [Mode::NoEdns, Mode::Do0, Mode::Do1] {
            let label = format!("{what} ({name} {tname}, {mode:?})");
            // The Rust client: both decoders agree, hickory verified every RRSIG.
            let a = s.ask(&format!("{name}."), t, mode.edns(), false);
            let h = &a.hickory;
            assert_eq!(h.metadata.response_code, rcode, "{label}");
            assert!(!h.metadata.truncation, "{label}");
            let extra = dnssec_records_besides(h, RecordType::from(t.0));
            if mode == Mode::Do1 {
                assert!(verify_rrsigs(h, s.dnskeys()) > 0, "{label}: signed");
                assert_signed_rrsets(h);
            } else {
                assert!(extra.is_empty(), "{label}: {extra:?}");
            }
            if what == "secure referral" {
                let ds = oracle::records_of(h, RecordType::DS).len();
                assert_eq!(
                    ds,
                    usize::from(mode == Mode::Do1),
                    "{label}: DS only with DO"
                );
                assert!(!h.metadata.authoritative, "{label}");
            }
            if what == "suppressed" && mode != Mode::NoEdns {
                assert_eq!(
                    ede(h),
                    Some((15, "suspended by the registry".into())),
                    "{label}"
                );
            }
            if what.starts_with("DS") || what == "apex DNSKEY" {
                assert!(
                    !oracle::records_of(h, RecordType::from(t.0)).is_empty(),
                    "{label}: asked for by type, answered in every mode"
                );
            }
            // dig and kdig see the same.
            for (tool, out) in [
                ("dig", s.dig(&format!("{} {name} {tname}", mode.dig()))),
                ("kdig", s.kdig(&format!("{} {name} {tname}", mode.kdig()))),
            ] {
                let word = if rcode == ResponseCode::NXDomain {
                    "NXDOMAIN"
                } else {
                    "NOERROR"
                };
                assert!(
                    out.contains(&format!("status: {word}")),
                    "{tool} {label}: {out}"
                );
                let found = dnssec_in_text(&out, &tname);
                if mode == Mode::Do1 {
                    assert!(
                        found.iter().any(|l| l.contains("RRSIG")),
                        "{tool} {label}: {out}"
                    );
                } else {
                    assert!(found.is_empty(), "{tool} {label}: {found:?}\n{out}");
                }
            }
        }
    }
}

/// Without EDNS the limit is 512 bytes: a referral whose NS and glue fit without the DS
/// (which DO=0 does not get) is whole, not truncated.
#[test]
fn referral_without_edns_fits_512_bytes_without_the_ds() {
    let s = Server::start("512", Opts::default());
    let a = s.ask("www.fullglue.be.", Rtype::A, None, false);
    let h = &a.hickory;
    assert!(!h.metadata.truncation, "not truncated");
    assert!(a.size <= 512, "{} bytes", a.size);
    assert_eq!(h.authorities.len(), 7, "seven NS, no DS");
    assert!(h
        .authorities
        .iter()
        .all(|r| r.record_type() == RecordType::NS));
    assert_eq!(h.additionals.len(), 14, "all glue");
    assert!(h.edns.is_none());
    let out = s.dig("+noedns +ignore www.fullglue.be A");
    assert!(!flags(&out).contains(&"tc".to_string()), "{out}");
    assert_eq!(section(&out, "AUTHORITY").len(), 7, "{out}");
    assert_eq!(section(&out, "ADDITIONAL").len(), 14, "{out}");
    let out = s.kdig("+noedns +ignore www.fullglue.be A");
    let kflags = out
        .lines()
        .find_map(|l| l.strip_prefix(";; Flags: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!kflags.split(';').next().unwrap().contains("tc"), "{out}");
    assert!(out.contains("dns7.fullglue.be."), "{out}");
    // With DO and the same 512-byte limit the DS and its RRSIG do not leave room for all
    // the glue the referral needs: it is truncated (RFC 9471), which is why DS must not be
    // added without DO.
    let a = s.ask("www.fullglue.be.", Rtype::A, Some((512, true)), false);
    assert!(a.hickory.metadata.truncation);
    let a = s.ask("www.fullglue.be.", Rtype::A, Some((1232, true)), false);
    assert!(!a.hickory.metadata.truncation);
    assert_eq!(oracle::records_of(&a.hickory, RecordType::DS).len(), 1);
}

/// In-zone CNAMEs are followed: to data, a two-link chain, a loop, a name below a
/// delegation, a missing name, a wildcard; delv validates what is chased.
#[test]
fn cname_chasing_with_dig_oracle_and_delv() {
    let s = Server::start("cname", Opts::default());
    let answer_of = |out: &str| -> Vec<(String, String)> {
        section(out, "ANSWER")
            .into_iter()
            .map(|r| (r.0, r.1))
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // To data in the zone.
    let out = s.dig("www.nic.be A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(flags(&out).contains(&"aa".to_string()), "{out}");
    assert_eq!(
        answer_of(&out),
        pairs(&[("www.nic.be.", "CNAME"), ("nic.be.", "A")]),
        "{out}"
    );
    // A two-link chain.
    let out = s.kdig("web.nic.be AAAA");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains("web.nic.be.") && out.contains("www.nic.be.") && out.contains("2001:db8::53"),
        "{out}"
    );
    // A loop: each CNAME once.
    let out = s.dig("loop-a.nic.be A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(
        answer_of(&out),
        pairs(&[("loop-a.nic.be.", "CNAME"), ("loop-b.nic.be.", "CNAME")]),
        "{out}"
    );
    // Below a delegation: the CNAME and the referral, DS only with DO.
    let out = s.dig("delegated.nic.be A");
    assert_eq!(
        answer_of(&out),
        pairs(&[("delegated.nic.be.", "CNAME")]),
        "{out}"
    );
    let auth = section(&out, "AUTHORITY");
    assert_eq!(auth.len(), 2, "{out}");
    assert!(
        auth.iter().all(|r| r.0 == "secure.be." && r.1 == "NS"),
        "{out}"
    );
    let out = s.dig("+dnssec delegated.nic.be A");
    let auth = section(&out, "AUTHORITY");
    assert!(auth.iter().any(|r| r.1 == "DS"), "{out}");
    // A missing target: NXDOMAIN with the CNAME in the answer, the denial of the target.
    let out = s.dig("old.nic.be A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert_eq!(answer_of(&out), pairs(&[("old.nic.be.", "CNAME")]), "{out}");
    let out = s.dig("+dnssec old.nic.be A");
    assert!(
        section(&out, "AUTHORITY").iter().any(|r| r.1 == "NSEC3"),
        "{out}"
    );
    // A wildcard CNAME, then the chain.
    let out = s.dig("+dnssec anything.pages.nic.be A");
    let ans = answer_of(&out);
    assert_eq!(
        ans.iter()
            .filter(|r| r.1 != "RRSIG")
            .cloned()
            .collect::<Vec<_>>(),
        pairs(&[
            ("anything.pages.nic.be.", "CNAME"),
            ("www.nic.be.", "CNAME"),
            ("nic.be.", "A")
        ]),
        "{out}"
    );
    assert!(
        section(&out, "AUTHORITY").iter().any(|r| r.1 == "NSEC3"),
        "wildcard proof: {out}"
    );
    // Out of the zone: the CNAME only.
    let out = s.dig("mail.nic.be A");
    assert_eq!(
        answer_of(&out),
        pairs(&[("mail.nic.be.", "CNAME")]),
        "{out}"
    );
    // The oracle: both decoders agree, every RRSIG verifies, every RRset is signed.
    for name in [
        "www.nic.be.",
        "web.nic.be.",
        "loop-a.nic.be.",
        "delegated.nic.be.",
        "old.nic.be.",
        "anything.pages.nic.be.",
        "mail.nic.be.",
    ] {
        for (mode, edns) in [
            ("DO=1", Some((1232, true))),
            ("DO=0", Some((1232, false))),
            ("no EDNS", None),
        ] {
            let a = s.ask(name, Rtype::A, edns, false);
            let h = &a.hickory;
            assert!(
                h.metadata.authoritative,
                "{name} {mode}: AA from the first CNAME"
            );
            assert_eq!(
                h.answers.first().map(|r| r.record_type()),
                Some(RecordType::CNAME),
                "{name} {mode}"
            );
            if edns.is_some_and(|e| e.1) {
                assert!(verify_rrsigs(h, s.dnskeys()) > 0, "{name}");
                assert_signed_rrsets(h);
            } else {
                assert!(
                    dnssec_records_besides(h, RecordType::A).is_empty(),
                    "{name} {mode}"
                );
            }
        }
    }
    // delv validates the chased answers.
    for (q, want) in [
        ("www.nic.be A", "192.0.2.53"),
        ("web.nic.be AAAA", "2001:db8::53"),
        ("anything.pages.nic.be A", "192.0.2.53"),
    ] {
        let out = s.delv(q);
        assert!(
            out.contains("; fully validated") && out.contains(want) && out.contains("CNAME"),
            "{q}: {out}"
        );
    }
    let out = s.delv("old.nic.be A");
    assert!(
        out.contains("fully validated") && out.contains("nxdomain"),
        "old.nic.be: {out}"
    );
    // And a validating resolver. The wildcard answer validates too but without AD: its
    // next-closer proof is an opt-out NSEC3, and RFC 5155 §9.2 forbids AD on those.
    let u = Unbound::start(&s);
    for (q, ad) in [
        ("www.nic.be A", true),
        ("web.nic.be A", true),
        ("anything.pages.nic.be A", false),
    ] {
        let out = u.dig(q);
        assert_eq!(status(&out), "NOERROR", "{q}: {out}\n{}", u.log());
        assert_eq!(flags(&out).contains(&"ad".to_string()), ad, "{q}: {out}");
        assert!(out.contains("192.0.2.53"), "{q}: {out}");
    }
}

/// A signature that cannot be made (forced with the fault hook): DO=1 answers that need it
/// are SERVFAIL with EDE 0, counted in the admin API and logged at most once per 10 s;
/// DO=0 answers are correct and unsigned; everything else stays signed and valid.
#[test]
fn signing_failure_is_servfail_with_ede_counted_and_logged() {
    let s = Server::start(
        "fault",
        Opts {
            env: vec![(belfry::dnssec::FAULT_SIGN_ENV.into(), "nic.be.".into())],
            ..Opts::default()
        },
    );
    let log = s.log_text();
    assert!(
        log.contains("FAULT INJECTION (BELFRY_FAULT_SIGN)") && log.contains("nic.be."),
        "{log}"
    );
    let before = s.status()["signing_failures"].as_u64().unwrap();
    let t0 = Instant::now();
    let mut failed = 0;
    for name in ["nic.be.", "www.nic.be.", "web.nic.be."] {
        for t in [Rtype::A, Rtype::AAAA] {
            let a = s.ask(name, t, Some((1232, true)), false);
            let h = &a.hickory;
            assert_eq!(h.metadata.response_code, ResponseCode::ServFail, "{name}");
            assert!(h.answers.is_empty() && h.authorities.is_empty(), "{name}");
            assert_eq!(
                ede(h),
                Some((0, "DNSSEC signature could not be made".into()))
            );
            assert!(h.edns.as_ref().unwrap().flags().dnssec_ok);
            failed += 1;
            // DO=0 and no EDNS: the right answer, unsigned.
            for edns in [Some((1232, false)), None] {
                let a = s.ask(name, t, edns, false);
                let h = &a.hickory;
                assert_eq!(h.metadata.response_code, ResponseCode::NoError, "{name}");
                assert_eq!(
                    h.answers.last().map(|r| r.record_type()),
                    Some(RecordType::from(t.0)),
                    "{name}"
                );
                assert!(dnssec_records_besides(h, RecordType::A).is_empty());
                assert!(ede(h).is_none());
            }
        }
    }
    let out = s.dig("+dnssec nic.be A");
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert!(
        out.contains("EDE: 0 (Other): (DNSSEC signature could not be made)"),
        "{out}"
    );
    failed += 1;
    let out = s.kdig("+dnssec www.nic.be A");
    assert!(
        out.contains("status: SERVFAIL") && out.contains("EDE"),
        "{out}"
    );
    failed += 1;
    let out = s.dig("nic.be A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(
        out.contains("192.0.2.53") && !out.contains("RRSIG"),
        "{out}"
    );
    // Counted.
    let after = s.status()["signing_failures"].as_u64().unwrap();
    assert!(
        after >= before + failed,
        "{before} -> {after} after {failed} failures"
    );
    // Logged with the RRset and the error, rate-limited.
    let log = s.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("cannot sign")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot sign nic.be.") && l.contains("fault injected")),
        "{log}"
    );
    let allowed = 2 + (t0.elapsed().as_secs() / 10) as usize;
    assert!(
        lines.len() <= allowed,
        "at most one line per 10 s: {} lines\n{log}",
        lines.len()
    );
    // The rest of the zone is signed and validates.
    for q in ["be SOA", "secure.be DS", "a.nsset.be A"] {
        let out = s.delv(q);
        assert!(out.contains("fully validated"), "{q}: {out}");
    }
    let out = s.delv("nothing-here.be A");
    assert!(
        out.contains("fully validated") && out.contains("nxdomain"),
        "{out}"
    );
    // A validator gets SERVFAIL for the broken name, never an unsigned (bogus) answer.
    let out = s.delv("nic.be A");
    assert!(!out.contains("fully validated"), "{out}");
    // Wait past the log interval: a later failure is logged again.
    std::thread::sleep(Duration::from_secs(11));
    let n_before = s.log_text().matches("cannot sign").count();
    let _ = s.ask("nic.be.", Rtype::A, Some((1232, true)), false);
    let n_after = s.log_text().matches("cannot sign").count();
    assert_eq!(n_after, n_before + 1, "{}", s.log_text());
}

/// The oracle is not a rubber stamp: one flipped bit in a signature, and hickory's
/// verification fails.
#[test]
fn oracle_rejects_a_tampered_signature() {
    let s = Server::start("tamper", Opts::default());
    let q =
        belfry::wire::decode::build_query(9, &wire("secure.be."), Rtype::DS, Some((1232, true)));
    let mut raw = udp_raw(s.addr(), &q, Duration::from_secs(2)).unwrap();
    let good = oracle::parse(&raw);
    assert_eq!(verify_rrsigs(&good, s.dnskeys()), 1);
    // The RRSIG is the last record before OPT (11 bytes); its signature ends there.
    let at = raw.len() - 11 - 1;
    raw[at] ^= 0x01;
    let bad = oracle::parse(&raw);
    let keys = s.dnskeys().to_vec();
    let r = std::panic::catch_unwind(move || verify_rrsigs(&bad, &keys));
    assert!(r.is_err(), "a tampered RRSIG must not verify");
}
