//! dnstap: the real `belfry serve` sends AUTH_QUERY / AUTH_RESPONSE messages to a
//! real Frame Streams collector (`fstrm_capture` of the fstrm project), whose file
//! is read back with `dnstap-ldns` and with belfry's own decoder; sampling and the
//! NXDOMAIN filter give exact counts; without a collector, with one that goes away
//! and with one that never reads, queries keep being answered and drops are counted.

mod common;

use belfry::dnstap::{fstrm, proto};
use belfry::wire::decode::{build_query, decode};
use belfry::wire::Rtype;
use common::*;
use prost::Message as _;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Wait until `f` holds, or fail with `what` after `secs`.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// `fstrm_capture` reading a Unix socket and writing a file.
struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    fn start(sock: &Path, file: &Path) -> Capture {
        require("fstrm_capture");
        let _ = std::fs::remove_file(sock);
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(sock)
            .arg("-w")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(10, "fstrm_capture's socket", || sock.exists());
        Capture {
            child: Some(child),
            file: file.to_path_buf(),
        }
    }

    /// SIGINT (it closes its file) and wait; returns the decoded dnstap messages.
    fn stop(&mut self) -> Vec<proto::Dnstap> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a plain kill(2) of our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGINT);
            }
            let _ = c.wait();
        }
        let bytes = std::fs::read(&self.file).unwrap_or_default();
        if bytes.is_empty() {
            return Vec::new();
        }
        fstrm::read_file(&bytes, fstrm::CONTENT_TYPE)
            .unwrap()
            .iter()
            .map(|f| proto::Dnstap::decode(&f[..]).unwrap())
            .collect()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn metrics(s: &Server) -> HashMap<String, f64> {
    let (code, text) = s.api("GET", "/metrics", None, Some(TOKEN));
    assert_eq!(code, 200);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn dnstap_server(tag: &str, lines: &str) -> Server {
    Server::start(
        tag,
        Opts {
            signed: false,
            extra_config: format!("[dnstap]\nenabled = true\n{lines}"),
            ..Opts::default()
        },
    )
}

/// One UDP query from `sock`; the answer.
fn ask(sock: &UdpSocket, server: SocketAddr, id: u16, name: &str, t: Rtype) -> Vec<u8> {
    let q = build_query(id, &wire(name), t, Some((1232, false)));
    sock.send_to(&q, server).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c
}

fn qname_of(m: &proto::Message) -> String {
    let wire = m
        .query_message
        .as_deref()
        .or(m.response_message.as_deref())
        .unwrap();
    belfry::name::to_text(&decode(wire).unwrap().qname)
}

#[test]
fn fstrm_capture_receives_queries_and_answers_that_match() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("tap.sock");
    let mut cap = Capture::start(&sock, &tmp.path().join("out.fstrm"));
    let mut s = dnstap_server(
        "dnstap-capture",
        &format!("socket = {sock:?}\nidentity = \"ns-test\"\n"),
    );
    wait_for(10, "the dnstap writer to connect", || {
        metrics(&s).get("belfry_dnstap_connected") == Some(&1.0)
    });
    let c = client();
    let cport = c.local_addr().unwrap().port();
    let sent = [
        (101, "be.", Rtype::SOA, 0u16),
        (102, "nothere-dnstap.be.", Rtype::A, 3),
        (103, "0hlcu.be.", Rtype::NS, 0),
        (104, "be.", Rtype::DNSKEY, 0),
    ];
    for (id, name, t, rcode) in sent {
        let a = decode(&ask(&c, s.addr(), id, name, t)).unwrap();
        assert_eq!(a.rcode, rcode, "{name}");
    }
    // And one over TCP.
    let q = build_query(105, &wire("tcp-dnstap.be."), Rtype::AAAA, None);
    assert_eq!(decode(&tcp_pipelined(s.addr(), &[q])[0]).unwrap().rcode, 3);
    // A clean stop writes what is queued, then STOP; FINISH comes back.
    assert!(s.terminate(), "the server stopped in time");
    let got = cap.stop();
    // The start-up probes may be there too; look at our ids.
    let ours: Vec<&proto::Dnstap> = got
        .iter()
        .filter(|d| {
            let m = d.message.as_ref().unwrap();
            let w = m
                .query_message
                .as_deref()
                .or(m.response_message.as_deref())
                .unwrap();
            (101..=105).contains(&u16::from_be_bytes([w[0], w[1]]))
        })
        .collect();
    assert_eq!(ours.len(), 10, "AUTH_QUERY and AUTH_RESPONSE for each of 5");
    for (i, (id, name, t, rcode)) in sent
        .iter()
        .copied()
        .chain([(105, "tcp-dnstap.be.", Rtype::AAAA, 3)])
        .enumerate()
    {
        let (dq, dr) = (ours[2 * i], ours[2 * i + 1]);
        for d in [dq, dr] {
            assert_eq!(d.identity.as_deref(), Some(&b"ns-test"[..]));
            assert!(d.version.as_deref().unwrap().starts_with(b"belfry "));
            assert_eq!(d.r#type, proto::DnstapType::Message as i32);
        }
        let (q, r) = (dq.message.as_ref().unwrap(), dr.message.as_ref().unwrap());
        assert_eq!(q.r#type, proto::MessageType::AuthQuery as i32);
        assert_eq!(r.r#type, proto::MessageType::AuthResponse as i32);
        let tcp = id == 105;
        for m in [q, r] {
            assert_eq!(qname_of(m), name);
            assert_eq!(m.socket_family, Some(proto::SocketFamily::Inet as i32));
            let proto_ = if tcp {
                proto::SocketProtocol::Tcp
            } else {
                proto::SocketProtocol::Udp
            };
            assert_eq!(m.socket_protocol, Some(proto_ as i32));
            assert_eq!(m.query_address.as_deref(), Some(&[127, 0, 0, 1][..]));
            assert_eq!(m.response_address.as_deref(), Some(&[127, 0, 0, 1][..]));
            assert_eq!(m.response_port, Some(s.port as u32));
            if !tcp {
                assert_eq!(m.query_port, Some(cport as u32));
            }
            assert!(m.query_time_sec.is_some() && m.query_time_nsec.is_some());
        }
        let qm = decode(q.query_message.as_deref().unwrap()).unwrap();
        assert_eq!((qm.id, qm.qtype), (id, t.0));
        assert_eq!(qm.flags & 0x8000, 0, "a query");
        let rm = decode(r.response_message.as_deref().unwrap()).unwrap();
        assert_eq!((rm.id, rm.qtype, rm.rcode), (id, t.0, rcode));
        assert_ne!(rm.flags & 0x8000, 0, "an answer");
        let qt =
            q.query_time_sec.unwrap() as u128 * 1_000_000_000 + q.query_time_nsec.unwrap() as u128;
        let rt = r.response_time_sec.unwrap() as u128 * 1_000_000_000
            + r.response_time_nsec.unwrap() as u128;
        assert!(rt >= qt && rt - qt < 1_000_000_000, "{qt} {rt}");
    }
    // The reference reader sees the same.
    let text = run("dnstap-ldns", &format!("-q -r {}", cap.file.display()));
    for (kind, proto_, name, t) in [
        ("AQ", "UDP", "nothere-dnstap.be.", "A"),
        ("AR", "UDP", "nothere-dnstap.be.", "A"),
        ("AQ", "UDP", "0hlcu.be.", "NS"),
        ("AR", "UDP", "be.", "DNSKEY"),
        ("AQ", "TCP", "tcp-dnstap.be.", "AAAA"),
        ("AR", "TCP", "tcp-dnstap.be.", "AAAA"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!(" {kind} 127.0.0.1 {proto_} "))
                    && l.contains(&format!("\"{name}\" IN {t}"))),
            "{kind} {name} {t} in:\n{text}"
        );
    }
    let yaml = run("dnstap-ldns", &format!("-y -r {}", cap.file.display()));
    assert!(yaml.contains("identity: \"ns-test\""), "{yaml}");
    assert!(
        yaml.contains(&format!("response_port: {}", s.port)),
        "{yaml}"
    );
    assert!(yaml.contains(&format!("query_port: {cport}")), "{yaml}");
    assert!(yaml.contains("rcode: NXDOMAIN"), "{yaml}");
}

#[test]
fn sampling_one_in_five_of_the_nxdomain_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("tap.sock");
    let mut cap = Capture::start(&sock, &tmp.path().join("out.fstrm"));
    let mut s = dnstap_server(
        "dnstap-sample",
        &format!("socket = {sock:?}\nsample = 5\nonly_nxdomain = true\n"),
    );
    wait_for(10, "the dnstap writer to connect", || {
        metrics(&s).get("belfry_dnstap_connected") == Some(&1.0)
    });
    let c = client();
    for i in 0..100u16 {
        let a = ask(&c, s.addr(), i, &format!("nx{i}.be."), Rtype::A);
        assert_eq!(decode(&a).unwrap().rcode, 3);
        let a = ask(&c, s.addr(), 1000 + i, "be.", Rtype::SOA);
        assert_eq!(decode(&a).unwrap().rcode, 0);
    }
    wait_for(10, "40 messages written", || {
        metrics(&s).get("belfry_dnstap_sent_total") == Some(&40.0)
    });
    assert_eq!(metrics(&s)["belfry_dnstap_dropped_total"], 0.0);
    assert!(s.terminate());
    let got = cap.stop();
    assert_eq!(got.len(), 40, "1 in 5 of 100 NXDOMAIN, query and answer");
    let mut names: Vec<String> = got
        .iter()
        .map(|d| d.message.as_ref().unwrap())
        .filter(|m| m.r#type == proto::MessageType::AuthResponse as i32)
        .map(|m| {
            let r = decode(m.response_message.as_deref().unwrap()).unwrap();
            assert_eq!(r.rcode, 3, "only NXDOMAIN");
            belfry::name::to_text(&r.qname)
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20);
}

#[test]
fn only_suppressed_names_are_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("tap.sock");
    let mut cap = Capture::start(&sock, &tmp.path().join("out.fstrm"));
    let mut s = dnstap_server(
        "dnstap-suppressed",
        &format!("socket = {sock:?}\nonly_suppressed = true\n"),
    );
    let body = "{\"actor\":\"t\",\"entries\":[{\"domain\":\"0hlcu.be.\",\"reason\":\"r\",\"case\":\"c\"}]}";
    let (st, b) = s.api("POST", "/v1/suppressions", Some(body), Some(TOKEN));
    assert_eq!(st, 200, "{b}");
    wait_for(10, "the dnstap writer to connect", || {
        metrics(&s).get("belfry_dnstap_connected") == Some(&1.0)
    });
    let c = client();
    for (i, name) in ["0hlcu.be.", "www.0hlcu.be.", "nothere.be.", "be."]
        .iter()
        .enumerate()
    {
        ask(&c, s.addr(), i as u16, name, Rtype::A);
    }
    assert!(s.terminate());
    let got = cap.stop();
    let names: Vec<String> = got
        .iter()
        .map(|d| qname_of(d.message.as_ref().unwrap()))
        .collect();
    assert_eq!(
        names,
        ["0hlcu.be.", "0hlcu.be.", "www.0hlcu.be.", "www.0hlcu.be."],
        "only the suppressed domain and the name below it"
    );
    let r = decode(
        got[1]
            .message
            .as_ref()
            .unwrap()
            .response_message
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(r.rcode, 3);
    assert!(r.ede.is_some(), "the answer carries the EDE");
}

#[test]
fn without_a_collector_queries_are_answered_and_drops_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("tap.sock");
    // No collector at start.
    let s = dnstap_server("dnstap-absent", &format!("socket = {sock:?}\nqueue = 16\n"));
    let c = client();
    let t = Instant::now();
    for i in 0..300u16 {
        let a = ask(&c, s.addr(), i, "be.", Rtype::SOA);
        assert_eq!(decode(&a).unwrap().rcode, 0);
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    let m = metrics(&s);
    assert_eq!(m["belfry_dnstap_sent_total"], 0.0);
    assert_eq!(m["belfry_dnstap_connected"], 0.0);
    // 300 answered queries are 600 messages; the queues hold 16 queries per thread.
    assert!(
        m["belfry_dnstap_dropped_total"] >= 600.0 - 2.0 * 16.0 * 4.0,
        "{m:?}"
    );
    // The collector comes: the writer finds it and messages flow.
    let mut cap = Capture::start(&sock, &tmp.path().join("out.fstrm"));
    wait_for(15, "the dnstap writer to connect", || {
        metrics(&s).get("belfry_dnstap_connected") == Some(&1.0)
    });
    for i in 0..10u16 {
        ask(&c, s.addr(), i, "be.", Rtype::NS);
    }
    wait_for(10, "messages written", || {
        metrics(&s)["belfry_dnstap_sent_total"] >= 20.0
    });
    // The collector goes away: the writer notices at its next write.
    cap.kill9();
    wait_for(10, "the writer to see the collector gone", || {
        ask(&c, s.addr(), 7, "be.", Rtype::SOA);
        metrics(&s)["belfry_dnstap_connected"] == 0.0
    });
    // Queries are still answered, and dropped copies counted again.
    let dropped = metrics(&s)["belfry_dnstap_dropped_total"];
    for i in 0..300u16 {
        let a = ask(&c, s.addr(), i, "be.", Rtype::SOA);
        assert_eq!(decode(&a).unwrap().rcode, 0);
    }
    let more = metrics(&s)["belfry_dnstap_dropped_total"] - dropped;
    assert!(more >= 600.0 - 2.0 * 16.0 * 4.0, "{more}");
}

#[test]
fn a_collector_that_never_reads_does_not_slow_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("slow.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // A collector that accepts, answers the handshake, then never reads again.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = l.accept().unwrap();
        fstrm::reader_handshake(&mut conn, fstrm::CONTENT_TYPE).unwrap();
        let _ = rx.recv();
        drop(conn);
    });
    let mut s = dnstap_server("dnstap-slow", &format!("socket = {sock:?}\nqueue = 64\n"));
    wait_for(10, "the dnstap writer to connect", || {
        metrics(&s).get("belfry_dnstap_connected") == Some(&1.0)
    });
    let c = client();
    let t = Instant::now();
    let n = 5000u16;
    for i in 0..n {
        // Big answers fill the socket buffers sooner.
        let a = ask(&c, s.addr(), i, "be.", Rtype::DNSKEY);
        assert_eq!(decode(&a).unwrap().rcode, 0);
    }
    let took = t.elapsed();
    wait_for(10, "drops", || {
        metrics(&s)["belfry_dnstap_dropped_total"] > 0.0
    });
    let m = metrics(&s);
    assert!(
        m["belfry_dnstap_sent_total"] < 2.0 * n as f64,
        "the reader never read: {m:?}"
    );
    assert!(took < Duration::from_secs(20), "{took:?} for {n} queries");
    let _ = tx.send(());
    assert!(s.terminate());
}
