//! The server on loopback, checked with dig, kdig and a Rust client: each answer kind.

mod common;

use belfry::wire::decode::{build_query, decode, Message};
use belfry::wire::Rtype;
use common::*;
use std::time::Duration;

fn unsigned(tag: &str) -> Server {
    Server::start(
        tag,
        Opts {
            signed: false,
            ..Opts::default()
        },
    )
}

#[test]
fn referral_with_glue_and_no_ds_from_an_unsigned_zone() {
    let s = unsigned("referral");
    // An unsigned zone adds no DS to a referral, with or without DO (RFC 4035 §3.1.4
    // applies to signed zones; RFC 3225 §3 forbids it without DO).
    let out = s.dig("+dnssec www.glued.be A");
    assert_eq!(
        section(&out, "AUTHORITY")
            .iter()
            .filter(|r| r.1 == "DS")
            .count(),
        0,
        "{out}"
    );
    let out = s.dig("www.glued.be A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(
        !flags(&out).contains(&"aa".to_string()),
        "referrals are not authoritative: {out}"
    );
    let auth = section(&out, "AUTHORITY");
    assert_eq!(auth.iter().filter(|r| r.1 == "NS").count(), 2, "{out}");
    assert_eq!(auth.iter().filter(|r| r.1 == "DS").count(), 0, "{out}");
    let add = section(&out, "ADDITIONAL");
    assert!(
        add.iter().any(|r| r.0 == "ns1.glued.be." && r.1 == "A"),
        "{out}"
    );
    assert!(
        add.iter().any(|r| r.0 == "ns1.glued.be." && r.1 == "AAAA"),
        "{out}"
    );
    assert!(
        add.iter().any(|r| r.0 == "ns2.glued.be." && r.1 == "A"),
        "{out}"
    );
    assert!(section(&out, "ANSWER").is_empty());
    // The same through the Rust client.
    let m = s.udp("www.glued.be.", Rtype::A, false);
    assert!(!m.flag(0x0400));
    assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 2);
    assert_eq!(m.additional.len(), 3);
    // kdig agrees.
    let k = s.kdig("insecure.be NS");
    assert!(k.contains("status: NOERROR"), "{k}");
    assert!(k.contains("insecure.be.") && k.contains("NS"), "{k}");
}

#[test]
fn ds_at_delegation_is_authoritative() {
    let s = unsigned("ds");
    let out = s.dig("secure.be DS");
    assert!(flags(&out).contains(&"aa".to_string()), "{out}");
    let ans = section(&out, "ANSWER");
    assert_eq!(ans.len(), 1, "{out}");
    assert_eq!(ans[0].1, "DS");
    let out = s.dig("insecure.be DS");
    assert_eq!(status(&out), "NOERROR");
    assert!(flags(&out).contains(&"aa".to_string()));
    assert_eq!(section(&out, "AUTHORITY")[0].1, "SOA", "{out}");
}

#[test]
fn nxdomain_nodata_ent_refused() {
    let s = unsigned("negative");
    let out = s.dig("no-such-domain.be A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    let auth = section(&out, "AUTHORITY");
    assert_eq!(auth[0].1, "SOA");
    assert!(
        out.contains("be.\t\t\t600\tIN\tSOA") || out.contains("600\tIN\tSOA"),
        "negative TTL is the SOA minimum: {out}"
    );
    let out = s.dig("be MX");
    assert_eq!(status(&out), "NOERROR");
    assert!(section(&out, "ANSWER").is_empty());
    assert_eq!(section(&out, "AUTHORITY")[0].1, "SOA");
    let out = s.dig("gov.be A");
    assert_eq!(
        status(&out),
        "NOERROR",
        "empty non-terminal is NODATA: {out}"
    );
    assert!(flags(&out).contains(&"aa".to_string()));
    let out = s.dig("x.gov.be A");
    assert_eq!(status(&out), "NXDOMAIN");
    let out = s.dig("example.com A");
    assert_eq!(status(&out), "REFUSED");
    let m = s.udp("fed.gov.be.", Rtype::NS, false);
    assert_eq!(
        Message::of(&m.authority, Rtype::NS).len(),
        2,
        "referral below an ENT"
    );
}

#[test]
fn formerr_notimp_badvers_and_garbage() {
    let s = unsigned("errors");
    let mut q = build_query(77, &wire("be."), Rtype::SOA, None);
    q[5] = 2; // two questions
    let m = decode(&udp_raw(s.addr(), &q, Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!((m.id, m.rcode), (77, 1));
    let mut q = build_query(78, &wire("be."), Rtype::SOA, None);
    q[2] = 2 << 3; // opcode STATUS
    let m = decode(&udp_raw(s.addr(), &q, Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(m.rcode, 4);
    let out = s.dig("+edns=1 +noednsnegotiation be SOA");
    assert_eq!(status(&out), "BADVERS", "{out}");
    // A response is not answered; garbage is not answered or is FORMERR; the server lives on.
    let mut q = build_query(79, &wire("be."), Rtype::SOA, None);
    q[2] |= 0x80;
    assert!(udp_raw(s.addr(), &q, Duration::from_millis(300)).is_none());
    for junk in [
        &b"\x00"[..],
        b"\xff\xff\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0",
        &[0u8; 600],
    ] {
        let _ = udp_raw(s.addr(), junk, Duration::from_millis(200));
    }
    assert_eq!(s.udp("be.", Rtype::SOA, false).rcode, 0);
}

#[test]
fn truncation_then_tcp_and_pipelining() {
    let s = unsigned("tcp");
    let out = s.dig("+noedns +ignore bignet.be A");
    assert!(flags(&out).contains(&"tc".to_string()), "{out}");
    // Without +ignore, dig retries over TCP by itself after TC and gets everything.
    let out = s.dig("+noedns bignet.be A");
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert_eq!(section(&out, "AUTHORITY").len(), 13, "{out}");
    let out = s.dig("+tcp bignet.be A");
    assert!(!flags(&out).contains(&"tc".to_string()), "{out}");
    assert_eq!(section(&out, "AUTHORITY").len(), 13, "{out}");
    assert_eq!(section(&out, "ADDITIONAL").len(), 26, "all glue: {out}");
    let out = s.kdig("+tcp be SOA");
    assert!(out.contains("NOERROR"), "{out}");
    // 50 queries in one write, 50 answers in order.
    let names: Vec<String> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                format!("n{i}.be.")
            } else {
                "secure.be.".into()
            }
        })
        .collect();
    let qs: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| build_query(i as u16, &wire(n), Rtype::A, None))
        .collect();
    let answers = tcp_pipelined(s.addr(), &qs);
    for (i, a) in answers.iter().enumerate() {
        let m = decode(a).unwrap();
        assert_eq!(m.id, i as u16);
        assert_eq!(m.rcode, if i % 2 == 0 { 3 } else { 0 });
    }
}

#[test]
fn query_name_case_is_preserved() {
    let s = unsigned("case");
    let out = s.dig("wWw.SeCuRe.bE A");
    assert!(out.contains(";wWw.SeCuRe.bE."), "{out}");
    assert!(
        out.contains("SeCuRe.bE.\t"),
        "owner compressed to the query's spelling: {out}"
    );
}

#[test]
fn tcp_idle_timeout_and_sigterm() {
    let mut s = unsigned("idle");
    let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 1];
    use std::io::Read;
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed by the server");
    assert!(t.elapsed() >= Duration::from_secs(2) && t.elapsed() < Duration::from_secs(7));
    assert!(s.terminate(), "SIGTERM stops the server");
    assert!(s.log_text().contains("shutting down"));
}

#[test]
fn check_reports_file_and_line() {
    let d = TempDir::new("check");
    let z = d.0.join("bad.zone");
    std::fs::write(&z, "$TTL 60\nbe. SOA a.be. b.be. 1 2 3 4 5\nbe. NS a.be.\na.be. A 1.2.3.4\nfoo.be. NS ns.x.\nfoo.be. A 192.0.2.1\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--origin", "be.", "--zone"])
        .arg(&z)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.zone:6:") && err.contains("delegation point"),
        "{err}"
    );
    let ok = std::process::Command::new(bin())
        .args(["check", "--origin", "be.", "--zone"])
        .arg(root().join("zones/be.zone"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert!(
        text.contains("delegations:") && text.contains("secure delegations:"),
        "{text}"
    );
    let c = d.0.join("c.toml");
    std::fs::write(
        &c,
        "[zone]\norigin = \"be.\"\nfile = \"x.zone\"\n[server]\nworkers = \"two\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&c)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("c.toml:5:"), "{err}");
}

#[test]
fn ipv6_listener() {
    let s = Server::start(
        "v6",
        Opts {
            signed: false,
            extra_server: String::new(),
            ..Opts::default()
        },
    );
    // Rewrite the config with an extra IPv6 listener and restart.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let port = free_port();
    let text = text.replace(
        &format!("listen = [\"127.0.0.1:{}\"]", s.port),
        &format!("listen = [\"127.0.0.1:{}\", \"[::1]:{port}\"]", s.port),
    );
    let mut s = s;
    s.kill9();
    std::fs::write(&s.config, text).unwrap();
    s.spawn();
    let out = run(
        "dig",
        &format!("@::1 -p {port} +norec +time=2 +tries=1 be SOA"),
    );
    assert_eq!(status(&out), "NOERROR", "{out}");
}
