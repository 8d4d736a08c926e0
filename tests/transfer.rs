//! Zone transfers out of a real `belfry serve`, with real clients: `dig`/`kdig`
//! AXFR and IXFR, the whole signed zone checked by `dnssec-verify` (BIND) and
//! `ldns-verify-zone` (ldns) before and after changes, TSIG with `dig -y`, and
//! what must be refused or cut off: other addresses (EDE 18), unknown and wrong
//! keys, a bad MAC, a time outside the fudge, an IXFR from the future, a client
//! that stops reading, fifty transfers at once while UDP keeps answering.

mod common;

use belfry::tsig::{self, Key};
use belfry::wire::decode::build_query;
use belfry::wire::message::{self, Question};
use belfry::wire::{Rcode, Rtype};
use common::{bin, require, run, wire, Opts, Server, TempDir};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";

fn open_transfers() -> String {
    "[[acl.transfer]]\nfrom = [\"127.0.0.0/8\"]\n".into()
}

fn keyed_transfers() -> String {
    format!(
        "[[tsig.key]]\nname = \"xfr-key\"\nsecret = \"{SECRET}\"\n[[acl.transfer]]\nkey = \"xfr-key\"\n"
    )
}

fn start(tag: &str, extra: String) -> Server {
    Server::start(
        tag,
        Opts {
            extra_config: extra,
            ..Opts::default()
        },
    )
}

/// Wait until the start-up signing pass is over (transfers are refused before).
fn wait_signed(s: &Server) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if s.status()["fully_signed"] == true {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never fully signed; log:\n{}", s.log_text());
}

/// The zone as `dig AXFR` prints it (comments dropped), the closing SOA removed.
fn dig_axfr(s: &Server, extra: &str) -> Vec<String> {
    let out = s.dig(&format!("be. AXFR +nocmd +nostats +nocomments {extra}"));
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';') && !l.contains("\tTSIG\t"))
        .map(String::from)
        .collect();
    assert!(lines.len() > 2, "no transfer:\n{out}");
    let last = lines.pop().unwrap();
    assert!(
        last.contains("\tSOA\t"),
        "the transfer ends with the SOA: {last}"
    );
    assert!(
        lines[0].contains("\tSOA\t"),
        "the transfer starts with the SOA"
    );
    lines
}

/// Run `dnssec-verify` and `ldns-verify-zone` on a zone; both must pass.
fn verify_zone(dir: &Path, lines: &[String]) {
    require("dnssec-verify");
    require("ldns-verify-zone");
    let f = dir.join("axfr.zone");
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    let out = Command::new("dnssec-verify")
        .args(["-o", "be."])
        .arg(&f)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dnssec-verify:\n{text}");
    assert!(text.contains("Zone fully signed"), "{text}");
    let out = Command::new("ldns-verify-zone").arg(&f).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ldns-verify-zone:\n{text}");
    assert!(text.contains("Zone is verified and complete"), "{text}");
}

fn xfr_query(qtype: Rtype, serial: Option<u32>, edns: bool) -> Vec<u8> {
    let q = Question {
        name: wire("be."),
        qtype,
        qclass: 1,
    };
    let auth: Vec<belfry::wire::decode::Record> = serial
        .map(|s| {
            let mut rd = wire("a.nsset.be.");
            rd.extend_from_slice(&wire("tech.dns.be."));
            for v in [s, 1, 2, 3, 4] {
                rd.extend_from_slice(&v.to_be_bytes());
            }
            belfry::wire::decode::Record {
                owner: wire("be."),
                rtype: Rtype::SOA,
                class: 1,
                ttl: 0,
                rdata: rd,
            }
        })
        .into_iter()
        .collect();
    let mut m = message::build(0x5151, 0, Some(&q), &[], &auth, &[]).unwrap();
    if edns {
        message::append_opt(&mut m, 1232, 0, 0);
    }
    m
}

/// Send one request over TCP and read answer messages until the transfer ends
/// (the closing SOA), an error answer, or the connection closes.
fn tcp_exchange(addr: SocketAddr, q: &[u8]) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(q);
    s.write_all(&frame).unwrap();
    let mut out = Vec::new();
    let mut soas = 0;
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return out;
        }
        let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut m).unwrap();
        let p = message::parse(&m).unwrap();
        soas += p.answer.iter().filter(|r| r.rtype == Rtype::SOA).count();
        let stop = p.header.rcode() != 0
            || p.answer.is_empty()
            || soas >= 2
            || (out.is_empty() && p.answer.len() == 1);
        out.push(m);
        if stop {
            return out;
        }
    }
}

fn ede_code(m: &message::Message) -> Option<u16> {
    let o = m.opt.as_ref()?;
    let mut i = 0;
    while i + 4 <= o.options.len() {
        let code = u16::from_be_bytes([o.options[i], o.options[i + 1]]);
        let len = u16::from_be_bytes([o.options[i + 2], o.options[i + 3]]) as usize;
        if code == 15 && len >= 2 {
            return Some(u16::from_be_bytes([o.options[i + 4], o.options[i + 5]]));
        }
        i += 4 + len;
    }
    None
}

#[test]
fn the_sample_configuration_serves_axfr_to_loopback_and_the_zone_verifies() {
    // The bundled belfry.toml, as on a fresh clone (only the ports moved).
    let dir = TempDir::new("sample-axfr");
    let root = common::root();
    for f in ["belfry.toml", "admin.token"] {
        std::fs::copy(root.join(f), dir.0.join(f)).unwrap();
    }
    for d in ["zones", "keys", "watch"] {
        std::fs::create_dir_all(dir.0.join(d)).unwrap();
        for e in std::fs::read_dir(root.join(d)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.0.join(d).join(e.file_name())).unwrap();
        }
    }
    let (port, admin) = (common::free_port(), common::free_port());
    let text = std::fs::read_to_string(dir.0.join("belfry.toml"))
        .unwrap()
        .replace("127.0.0.1:5353", &format!("127.0.0.1:{port}"))
        .replace("\"[::1]:5353\"", &format!("\"[::1]:{port}\""))
        .replace("127.0.0.1:8053", &format!("127.0.0.1:{admin}"));
    std::fs::write(dir.0.join("belfry.toml"), text).unwrap();
    let check = Command::new(bin())
        .args(["check", "--config"])
        .arg(dir.0.join("belfry.toml"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(out.contains("NOTIFY targets:      0"), "{out}");
    let log = dir.0.join("server.log");
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(dir.0.join("belfry.toml"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut lines = Vec::new();
    while t.elapsed() < Duration::from_secs(30) {
        let out = run(
            "dig",
            &format!("@127.0.0.1 -p {port} +time=2 +tries=1 be. AXFR +nocmd +nostats +nocomments"),
        );
        lines = out
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .map(String::from)
            .collect();
        if lines.len() > 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.len() > 100,
        "dig AXFR failed; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    lines.pop();
    verify_zone(&dir.0, &lines);
}

#[test]
fn axfr_and_ixfr_with_dig_and_kdig_verify_after_changes() {
    let s = start("axfr-verify", open_transfers());
    wait_signed(&s);
    let z0 = dig_axfr(&s, "");
    verify_zone(&s.dir.0, &z0);
    let s0 = s.udp("be.", Rtype::SOA, false).answer[0].rdata.clone();
    let serial0 = belfry::serial::soa_serial(&s0).unwrap();
    // A series of changes: suppressions of a secure and an insecure delegation, a lift.
    let sup = |d: &str| {
        let o = s.cli(&["add", d, "--reason", "test", "--case", "T-1"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    sup("secure.be");
    sup("insecure.be");
    sup("glued.be");
    let o = s.cli(&["remove", "insecure.be", "--reason", "back"]);
    assert!(o.status.success());
    let z1 = dig_axfr(&s, "");
    verify_zone(&s.dir.0, &z1);
    assert!(!z1
        .iter()
        .any(|l| l.starts_with("secure.be.") && l.contains("\tDS\t")));
    // IXFR from the first serial: kdig reads it as an incremental answer.
    let out = s.kdig(&format!("be. IXFR={serial0}"));
    assert!(out.contains(";; IXFR for be."), "{out}");
    let records: usize = out
        .lines()
        .find_map(|l| l.split("messages, ").nth(1))
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap();
    assert!(
        records < z1.len() / 4,
        "a difference, not the zone: {records} of {}",
        z1.len()
    );
    // From the current serial: the SOA alone; from a serial in the future: the SOA alone.
    let cur = belfry::serial::soa_serial(&s.udp("be.", Rtype::SOA, false).answer[0].rdata).unwrap();
    for c in [cur, cur.wrapping_add(100)] {
        let out = s.dig(&format!("be. IXFR={c} +nocmd +nostats +nocomments"));
        let soas: Vec<&str> = out.lines().filter(|l| l.contains("\tSOA\t")).collect();
        assert_eq!(soas.len(), 1, "{out}");
        assert!(soas[0].contains(&cur.to_string()), "{out}");
    }
    // Over UDP, a small difference (the last change, a lift of an insecure
    // delegation) comes whole; the four changes together do not fit: the SOA only.
    let out = s.dig(&format!("+notcp be. IXFR={}", cur - 1));
    assert!(out.matches("\tSOA\t").count() >= 4, "{out}");
    let out = s.dig(&format!("+notcp be. IXFR={serial0}"));
    assert_eq!(out.matches("\tSOA\t").count(), 1, "{out}");
    let st = s.status();
    assert!(st["transfers"]["transfers"].as_u64().unwrap() >= 3, "{st}");
}

#[test]
fn refusals_name_the_reason_with_ede_18_and_tsig_errors() {
    let s = start("axfr-refused", keyed_transfers());
    wait_signed(&s);
    // Without the key: REFUSED, EDE 18, a log line.
    let out = s.dig("be. AXFR");
    assert!(out.contains("Transfer failed"), "{out}");
    let a = tcp_exchange(s.addr(), &xfr_query(Rtype::AXFR, None, true));
    let m = message::parse(&a[0]).unwrap();
    assert_eq!(m.rcode(), Rcode::REFUSED.0);
    assert_eq!(ede_code(&m), Some(18));
    assert!(
        s.log_text()
            .contains("refused: not allowed by [acl] transfer"),
        "{}",
        s.log_text()
    );
    // With the key (dig -y): the whole zone, every message signed and verified by dig.
    let y = format!("-y hmac-sha256:xfr-key:{SECRET}");
    let z = dig_axfr(&s, &y);
    verify_zone(&s.dir.0, &z);
    let out = s.kdig(&format!("{y} be. AXFR"));
    assert!(
        out.contains(";; Received") && !out.contains("failed"),
        "{out}"
    );
    // A wrong secret: dig reports the failed signature (BADSIG).
    let out = s.dig("-y hmac-sha256:xfr-key:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0 be. AXFR");
    assert!(
        out.contains("Transfer failed") || out.to_lowercase().contains("tsig"),
        "{out}"
    );
    // The TSIG errors themselves, read with our own parser.
    let key = Key::from_text("xfr-key", "hmac-sha256", SECRET).unwrap();
    let tsig_error = |q: Vec<u8>| {
        let a = tcp_exchange(s.addr(), &q);
        let m = message::parse(&a[0]).unwrap();
        assert_eq!(m.rcode(), Rcode::NOTAUTH.0);
        tsig::TsigRecord::from_record(&m.tsig.unwrap().record)
            .unwrap()
            .error
    };
    let unknown = Key::from_text("no-such-key", "hmac-sha256", SECRET).unwrap();
    let mut q = xfr_query(Rtype::AXFR, None, false);
    tsig::sign_request(&unknown, &mut q, tsig::now()).unwrap();
    assert_eq!(tsig_error(q), tsig::TsigRcode::BADKEY);
    let mut q = xfr_query(Rtype::AXFR, None, false);
    tsig::sign_request(&key, &mut q, tsig::now()).unwrap();
    let l = q.len();
    q[l - 12] ^= 0x40;
    assert_eq!(tsig_error(q), tsig::TsigRcode::BADSIG);
    let mut q = xfr_query(Rtype::AXFR, None, false);
    tsig::sign_request(&key, &mut q, tsig::now() - 3600).unwrap();
    assert_eq!(tsig_error(q), tsig::TsigRcode::BADTIME);
    // A signed SOA query (what secondaries send first) gets a signed answer.
    let mut q = build_query(9, &wire("be."), Rtype::SOA, None);
    let mut v = tsig::sign_request(&key, &mut q, tsig::now()).unwrap();
    let a = common::udp_raw(s.addr(), &q, Duration::from_secs(2)).unwrap();
    v.verify(&a, tsig::now()).unwrap();
    assert!(s.status()["transfers"]["refused"].as_u64().unwrap() >= 4);
}

/// A zone large enough that a transfer fills the socket buffers.
fn big_zone(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join(format!("big-{n}.zone"));
    let out = Command::new(bin())
        .args(["generate", "-n", &n.to_string(), "--seed", "5"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&p, out.stdout).unwrap();
    p
}

#[test]
fn a_stalled_client_is_cut_off_and_the_server_keeps_serving() {
    let tmp = TempDir::new("stall-zone");
    let zone = big_zone(&tmp.0, 100_000);
    let s = Server::start(
        "axfr-stall",
        Opts {
            signed: false,
            zone: Some(zone),
            extra_config: open_transfers() + "[transfer]\nmax_transfers = 1\nstall_timeout = 2\n",
            ..Opts::default()
        },
    );
    // A client that asks for the zone and never reads (a small receive buffer).
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&s.addr().into()).unwrap();
    let mut stalled: TcpStream = sock.into();
    let q = xfr_query(Rtype::AXFR, None, false);
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&q);
    stalled.write_all(&frame).unwrap();
    // While it stalls, the one transfer slot is taken: another AXFR is refused.
    std::thread::sleep(Duration::from_millis(500));
    let a = tcp_exchange(s.addr(), &xfr_query(Rtype::AXFR, None, false));
    assert_eq!(message::parse(&a[0]).unwrap().rcode(), Rcode::REFUSED.0);
    // UDP answers meanwhile.
    assert_eq!(s.udp("be.", Rtype::SOA, false).rcode, 0);
    // After the stall timeout the client is cut off and the slot is free again.
    let t = Instant::now();
    while !s.log_text().contains("left an answer unread") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "never cut off:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = tcp_exchange(s.addr(), &xfr_query(Rtype::AXFR, None, false));
    let first = message::parse(&a[0]).unwrap();
    assert_eq!(first.rcode(), 0);
    assert!(a.len() > 10, "the whole zone again: {} messages", a.len());
    drop(stalled);
}

#[test]
fn fifty_transfers_at_once_are_bounded_and_udp_keeps_answering() {
    let tmp = TempDir::new("many-zone");
    let zone = big_zone(&tmp.0, 20_000);
    let s = Server::start(
        "axfr-many",
        Opts {
            signed: false,
            zone: Some(zone),
            extra_config: open_transfers() + "[transfer]\nmax_transfers = 4\n",
            ..Opts::default()
        },
    );
    let addr = s.addr();
    let threads: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let a = tcp_exchange(addr, &xfr_query(Rtype::AXFR, None, false));
                let m = message::parse(&a[0]).unwrap();
                (m.rcode(), a.len())
            })
        })
        .collect();
    // UDP queries while the transfers run: every one answered, quickly.
    let mut worst = Duration::ZERO;
    for i in 0..200 {
        let t = Instant::now();
        let m = s.udp(&format!("n{i}.be."), Rtype::A, false);
        assert!(m.rcode == 0 || m.rcode == 3);
        worst = worst.max(t.elapsed());
    }
    let results: Vec<(u16, usize)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 0).count();
    let refused = results.iter().filter(|r| r.0 == Rcode::REFUSED.0).count();
    assert_eq!(ok + refused, 50, "{results:?}");
    assert!(ok >= 4, "{results:?}");
    assert!(
        refused > 0,
        "more than max_transfers ran at once: {results:?}"
    );
    assert!(results.iter().filter(|r| r.0 == 0).all(|r| r.1 > 10));
    assert!(
        worst < Duration::from_millis(300),
        "a UDP query waited {worst:?}"
    );
    assert!(s.log_text().contains("transfers already running"));
}

#[test]
fn a_full_control_queue_answers_refused_at_once_and_counts_it() {
    let s = Server::start(
        "control-busy",
        Opts {
            extra_config: "[transfer]\ncontrol_threads = 1\ncontrol_queue = 1\n".into(),
            ..Opts::default()
        },
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Answers are read while the burst is sent: read afterwards, the 400 answers would
    // overflow this socket's receive buffer, and the ACL's answers, which come last (from
    // the control thread), would be the ones dropped. Whether one burst fills the queue
    // depends on how the threads are scheduled, so up to five bursts are sent until both
    // kinds of answer have been seen.
    let n = 400u16;
    let (mut busy, mut refused, mut sent) = (0u64, 0u64, 0u64);
    for _ in 0..5 {
        let reader = sock.try_clone().unwrap();
        let answers = std::thread::spawn(move || {
            let (mut busy, mut refused) = (0u64, 0u64);
            let mut buf = vec![0u8; 4096];
            while let Ok((len, _)) = reader.recv_from(&mut buf) {
                let m = message::parse(&buf[..len]).unwrap();
                assert_eq!(m.rcode(), Rcode::REFUSED.0);
                // The busy answer is the header alone; the ACL's echoes the question.
                if m.questions.is_empty() {
                    busy += 1;
                } else {
                    refused += 1;
                }
            }
            (busy, refused)
        });
        for id in 0..n {
            let m = belfry::xfr::notify::build(id, &wire("be."), None);
            sock.send_to(&m, s.addr()).unwrap();
        }
        sent += u64::from(n);
        let (b, r) = answers.join().unwrap();
        busy += b;
        refused += r;
        if busy > 0 && refused > 0 {
            break;
        }
    }
    assert!(
        busy > 0,
        "the queue of one never filled ({refused} refused by the ACL)"
    );
    assert!(
        refused > 0,
        "no NOTIFY reached the ACL ({busy} answered busy)"
    );
    // Counted on the server (a burst of answers may overflow our receive buffer).
    let counted = s.status()["transfers"]["busy"].as_u64().unwrap();
    assert!(
        counted >= busy && counted <= sent,
        "{counted} counted, {busy} received"
    );
    // Queries were never in that queue.
    assert_eq!(s.udp("be.", Rtype::SOA, false).rcode, 0);
}
