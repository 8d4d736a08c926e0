//! TSIG (RFC 8945) against real clients: `dig -y`/`dig -k` (BIND) and `kdig -y` (Knot)
//! query a responder that verifies with `belfry::tsig` and signs its answers; the
//! clients verify our signatures (a failed verification makes them say so).

mod common;
mod responder;

use belfry::tsig::{self, Check, KeyRing};
use belfry::wire::decode::Record;
use belfry::wire::message::{self, flag, Question};
use belfry::wire::{Rcode, Rtype};
use common::{require, status, TempDir};
use responder::{Handler, Meta, Responder};
use std::process::Command;
use std::sync::Arc;

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";
const SECRET512: &str =
    "lbNx0iO3WqpVQ8CMDPP0P0rqOOmRzrBPnVm0EFkCZ7Pxv0vjuu7/9ZYPyLN8WfVwEUgE4srzSyKfpn4ZSL+zSg==";

fn ring() -> KeyRing {
    let mut r = KeyRing::new();
    r.insert(tsig::Key::from_text("xfr-key", "hmac-sha256", SECRET).unwrap())
        .unwrap();
    r.insert(tsig::Key::from_text("big-key", "hmac-sha512", SECRET512).unwrap())
        .unwrap();
    r
}

fn txt(owner: &[u8], text: &str) -> Record {
    let mut rdata = vec![text.len() as u8];
    rdata.extend_from_slice(text.as_bytes());
    Record {
        owner: owner.to_vec(),
        rtype: Rtype::TXT,
        class: 1,
        ttl: 60,
        rdata,
    }
}

fn soa(owner: &[u8], serial: u32) -> Record {
    let mut rdata = b"\x02ns\x02be\x00\x0ahostmaster\x02be\x00".to_vec();
    for v in [serial, 3600, 600, 86400, 300] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    Record {
        owner: owner.to_vec(),
        rtype: Rtype::SOA,
        class: 1,
        ttl: 3600,
        rdata,
    }
}

/// An AXFR answer in `messages` messages: SOA, 3 TXT records per message, SOA.
fn axfr_messages(id: u16, q: &Question, messages: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..messages {
        let mut recs = Vec::new();
        if i == 0 {
            recs.push(soa(&q.name, 7));
        }
        for j in 0..3 {
            let label = format!("r{i}-{j}");
            let mut owner = vec![label.len() as u8];
            owner.extend_from_slice(label.as_bytes());
            owner.extend_from_slice(&q.name);
            recs.push(txt(&owner, &format!("message {i} record {j}")));
        }
        if i + 1 == messages {
            recs.push(soa(&q.name, 7));
        }
        out.push(message::build(id, flag::QR | flag::AA, Some(q), &recs, &[], &[]).unwrap());
    }
    out
}

/// Verify with the key ring; answer TXT "signed", or an AXFR in 5 messages
/// (signed every `sign_every` messages, and the first and last); the server
/// clock runs `skew` seconds from the real one.
fn handler(skew: i64, sign_every: usize) -> Handler {
    let keys = ring();
    Arc::new(move |req: &[u8], meta: Meta| {
        let now = (tsig::now() as i64 + skew) as u64;
        let Ok(m) = message::parse(req) else {
            return vec![message::reply_header(req, Rcode::FORMERR)];
        };
        let Some(q) = m.questions.first().cloned() else {
            return vec![message::reply_header(req, Rcode::FORMERR)];
        };
        match tsig::verify_parsed(&keys, req, &m, now) {
            Check::Unsigned => {
                let a = message::build(
                    m.header.id,
                    flag::QR | flag::AA,
                    Some(&q),
                    &[txt(&q.name, "unsigned")],
                    &[],
                    &[],
                )
                .unwrap();
                vec![a]
            }
            Check::FormErr => vec![message::reply_header(req, Rcode::FORMERR)],
            Check::Failed(mut f) => vec![f.reply(req, now)],
            Check::Verified(mut s) => {
                if q.qtype == Rtype::AXFR && meta.tcp {
                    let mut msgs = axfr_messages(m.header.id, &q, 5);
                    let n = msgs.len();
                    for (i, msg) in msgs.iter_mut().enumerate() {
                        let must = i == 0 || i + 1 == n || i % sign_every == 0;
                        if must || !s.skip(msg) {
                            s.sign(msg, now).unwrap();
                        }
                    }
                    msgs
                } else {
                    let mut a = message::build(
                        m.header.id,
                        flag::QR | flag::AA,
                        Some(&q),
                        &[txt(&q.name, "signed")],
                        &[],
                        &[],
                    )
                    .unwrap();
                    s.sign(&mut a, now).unwrap();
                    vec![a]
                }
            }
        }
    })
}

fn run(tool: &str, args: &[&str]) -> String {
    require(tool);
    let out = Command::new(tool).args(args).output().unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

fn dig(port: u16, extra: &[&str]) -> String {
    let p = port.to_string();
    let mut args = vec!["@127.0.0.1", "-p", &p, "+norec", "+time=3", "+tries=1"];
    args.extend_from_slice(extra);
    run("dig", &args)
}

/// The TSIG line of dig's pseudo-section: (key, error word).
fn tsig_line(out: &str) -> Option<(String, String)> {
    let mut inside = false;
    for l in out.lines() {
        if l.starts_with(";; TSIG PSEUDOSECTION:") {
            inside = true;
            continue;
        }
        if inside && !l.trim().is_empty() {
            let f: Vec<&str> = l.split_whitespace().collect();
            return Some((
                f[0].to_string(),
                f.get(f.len().wrapping_sub(2)).unwrap_or(&"").to_string(),
            ));
        }
    }
    None
}

fn assert_verified(out: &str) {
    assert!(
        !out.contains("Couldn't verify"),
        "dig could not verify:\n{out}"
    );
    assert!(!out.to_lowercase().contains("tsig verify failure"), "{out}");
    assert_eq!(status(out), "NOERROR", "{out}");
    let (k, err) = tsig_line(out).unwrap_or_else(|| panic!("no TSIG in answer:\n{out}"));
    assert!(k == "xfr-key." || k == "big-key.", "{out}");
    assert_eq!(err, "NOERROR", "{out}");
}

#[test]
fn dig_y_signed_query_gets_verified_signed_answer_udp_and_tcp() {
    let r = Responder::start(handler(0, 1));
    for transport in ["+notcp", "+tcp"] {
        let out = dig(
            r.port,
            &[
                "-y",
                &format!("hmac-sha256:xfr-key:{SECRET}"),
                "be.",
                "TXT",
                transport,
            ],
        );
        assert_verified(&out);
        assert!(out.contains("\"signed\""), "{out}");
        let out = dig(
            r.port,
            &[
                "-y",
                &format!("hmac-sha512:big-key:{SECRET512}"),
                "be.",
                "TXT",
                transport,
            ],
        );
        assert_verified(&out);
    }
}

#[test]
fn dig_k_with_tsig_keygen_file() {
    require("tsig-keygen");
    let dir = TempDir::new("tsig-keygen");
    let out = Command::new("tsig-keygen")
        .args(["-a", "hmac-sha512", "gen-key"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let path = dir.0.join("gen.key");
    std::fs::write(&path, &text).unwrap();
    // Our parser reads what tsig-keygen wrote, and dig uses the same file.
    let keys = tsig::keyfile::load(&path).unwrap();
    assert_eq!(keys.len(), 1);
    let mut ring = KeyRing::new();
    ring.insert(keys[0].clone()).unwrap();
    let h: Handler = Arc::new(move |req: &[u8], _m: Meta| {
        let m = message::parse(req).unwrap();
        let q = m.questions[0].clone();
        match tsig::verify_parsed(&ring, req, &m, tsig::now()) {
            Check::Verified(mut s) => {
                let mut a = message::build(
                    m.header.id,
                    flag::QR | flag::AA,
                    Some(&q),
                    &[txt(&q.name, "file key")],
                    &[],
                    &[],
                )
                .unwrap();
                s.sign(&mut a, tsig::now()).unwrap();
                vec![a]
            }
            other => panic!("{other:?}"),
        }
    });
    let r = Responder::start(h);
    let out = dig(r.port, &["-k", path.to_str().unwrap(), "be.", "TXT"]);
    assert!(!out.contains("Couldn't verify"), "{out}");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(out.contains("gen-key."), "{out}");
    assert!(out.contains("\"file key\""), "{out}");
}

#[test]
fn kdig_y_signed_query_gets_verified_answer() {
    let r = Responder::start(handler(0, 1));
    let p = format!("-p{}", r.port);
    for t in ["+notcp", "+tcp"] {
        let out = run(
            "kdig",
            &[
                "@127.0.0.1",
                &p,
                "-y",
                &format!("hmac-sha256:xfr-key:{SECRET}"),
                "be.",
                "TXT",
                t,
            ],
        );
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains("\"signed\""), "{out}");
        assert!(!out.to_lowercase().contains("failed"), "{out}");
        assert!(
            !out.contains("BADSIG") && !out.contains("TSIG error"),
            "{out}"
        );
    }
}

#[test]
fn unknown_key_gets_notauth_badkey() {
    let r = Responder::start(handler(0, 1));
    let out = dig(
        r.port,
        &[
            "-y",
            &format!("hmac-sha256:nobody-key:{SECRET}"),
            "be.",
            "TXT",
        ],
    );
    assert_eq!(status(&out), "NOTAUTH", "{out}");
    assert!(out.contains("BADKEY"), "{out}");
    // Known name, other algorithm: BADKEY too.
    let out = dig(
        r.port,
        &["-y", &format!("hmac-sha512:xfr-key:{SECRET}"), "be.", "TXT"],
    );
    assert_eq!(status(&out), "NOTAUTH", "{out}");
    assert!(out.contains("BADKEY"), "{out}");
}

#[test]
fn wrong_secret_gets_notauth_badsig() {
    let r = Responder::start(handler(0, 1));
    let out = dig(
        r.port,
        &[
            "-y",
            "hmac-sha256:xfr-key:c2VjcmV0IHRoYXQgaXMgd3Jvbmc=",
            "be.",
            "TXT",
        ],
    );
    assert_eq!(status(&out), "NOTAUTH", "{out}");
    assert!(out.contains("BADSIG"), "{out}");
}

#[test]
fn clock_outside_fudge_gets_signed_badtime_that_dig_verifies() {
    // The responder's clock is 1000 s ahead: dig's correct time is too old for it.
    let r = Responder::start(handler(1000, 1));
    let out = dig(
        r.port,
        &["-y", &format!("hmac-sha256:xfr-key:{SECRET}"), "be.", "TXT"],
    );
    assert_eq!(status(&out), "NOTAUTH", "{out}");
    assert!(out.contains("BADTIME"), "{out}");
    // dig verifies the MAC first, then reports the error as "clocks are unsynchronized";
    // a MAC it cannot verify is "tsig verify failure" (see the negative control below).
    assert!(out.contains("clocks are unsynchronized"), "{out}");
    assert!(
        !out.contains("tsig verify failure"),
        "dig rejected our BADTIME signature:\n{out}"
    );
    // Crafted old time from our own client: same answer, verified by our verifier.
    let key = tsig::Key::from_text("xfr-key", "hmac-sha256", SECRET).unwrap();
    let q = Question {
        name: b"\x02be\x00".to_vec(),
        qtype: Rtype::TXT,
        qclass: 1,
    };
    let mut req = message::build(99, 0, Some(&q), &[], &[], &[]).unwrap();
    let old = tsig::now() - 3600;
    let mut v = tsig::sign_request(&key, &mut req, old).unwrap();
    let plain = Responder::start(handler(0, 1));
    let ans = common::udp_raw(plain.addr(), &req, std::time::Duration::from_secs(3)).unwrap();
    assert_eq!(
        v.verify(&ans, old),
        Err(tsig::VerifyError::Peer(tsig::TsigRcode::BADTIME))
    );
    let t =
        tsig::TsigRecord::from_record(&message::parse(&ans).unwrap().tsig.unwrap().record).unwrap();
    let server_time = u64::from_be_bytes([
        0, 0, t.other[0], t.other[1], t.other[2], t.other[3], t.other[4], t.other[5],
    ]);
    assert!(server_time.abs_diff(tsig::now()) < 10);
}

#[test]
fn multi_message_axfr_signed_every_message_and_every_third_verifies_in_dig_and_kdig() {
    for every in [1usize, 3] {
        let r = Responder::start(handler(0, every));
        let out = dig(
            r.port,
            &[
                "-y",
                &format!("hmac-sha256:xfr-key:{SECRET}"),
                "be.",
                "AXFR",
            ],
        );
        assert!(
            !out.contains("Couldn't verify") && !out.contains("failed"),
            "every {every}:\n{out}"
        );
        // 15 TXT + 2 SOA + TSIG lines.
        let txt_lines = out.lines().filter(|l| l.contains("\tTXT\t")).count();
        assert_eq!(txt_lines, 15, "{out}");
        assert!(out.contains("XFR size: 17 records (messages 5"), "{out}");
        let p = format!("-p{}", r.port);
        let out = run(
            "kdig",
            &[
                "@127.0.0.1",
                &p,
                "-y",
                &format!("hmac-sha256:xfr-key:{SECRET}"),
                "be.",
                "AXFR",
            ],
        );
        assert!(
            !out.to_lowercase().contains("failed") && !out.contains("BADSIG"),
            "every {every}:\n{out}"
        );
        assert!(out.contains("(5 messages, 17 records)"), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.contains("\tTXT\t")).count(),
            15,
            "{out}"
        );
    }
}

#[test]
fn negative_control_dig_rejects_a_corrupted_mac() {
    // Proves the checks above mean something: flip one MAC byte and dig says so.
    let inner = handler(0, 1);
    let h: Handler = Arc::new(move |req: &[u8], meta: Meta| {
        let mut out = inner(req, meta);
        for a in &mut out {
            let at = message::parse(a).unwrap().tsig.unwrap().start;
            // Owner "xfr-key." (9) + 10 fixed + "hmac-sha256." (13) + time, fudge, size (10): first MAC byte.
            a[at + 9 + 10 + 13 + 10] ^= 0xFF;
        }
        out
    });
    let r = Responder::start(h);
    let out = dig(
        r.port,
        &["-y", &format!("hmac-sha256:xfr-key:{SECRET}"), "be.", "TXT"],
    );
    assert!(out.contains("tsig verify failure"), "{out}");
}
