//! Serving traffic like a TLD server: response rate limiting, DNS cookies, NSID, metrics.
//!
//! Every test starts the real `belfry serve`; floods come from many loopback
//! source addresses (127.0.0.x is one /24, 127.0.1.x another), cookies and NSID
//! are checked with `dig` and `kdig`, and `/metrics` is read by the Prometheus
//! project's own Python parser as well as checked line by line here.

mod common;

use belfry::wire::decode::{build_query, build_query_with, decode, Message};
use belfry::wire::types::option;
use belfry::wire::Rtype;
use common::*;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// What came back from a flood.
#[derive(Debug, Default)]
struct Flood {
    sent: usize,
    bytes_out: usize,
    /// Answers with records (not truncated).
    full: usize,
    /// TC=1 answers with no records (slips).
    slipped: usize,
    bytes_in: usize,
}

/// Send `count` queries for random names below `be.` (NXDOMAIN: the largest signed
/// answers) round-robin from sockets bound to `sources`, about 4,000 a second (a pace
/// even a debug build on a busy machine keeps up with, so what is not answered was
/// dropped by RRL, not lost), then collect answers until none has come for 700 ms.
fn flood(server: SocketAddr, sources: &[IpAddr], count: usize, edns: Option<(u16, bool)>) -> Flood {
    let socks: Vec<UdpSocket> = sources
        .iter()
        .map(|ip| {
            let s = UdpSocket::bind(SocketAddr::new(*ip, 0)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let mut f = Flood::default();
    let mut buf = vec![0u8; 65535];
    let mut drain = |f: &mut Flood| {
        for s in &socks {
            while let Ok(n) = s.recv(&mut buf) {
                f.bytes_in += n;
                let m = decode(&buf[..n]).expect("answer decodes");
                if m.flag(0x0200) && m.answer.is_empty() && m.authority.is_empty() {
                    f.slipped += 1;
                } else {
                    f.full += 1;
                }
            }
        }
    };
    for i in 0..count {
        let q = build_query(
            i as u16,
            &wire(&format!("flood-{i}-{}.be.", std::process::id())),
            Rtype::A,
            edns,
        );
        let s = &socks[i % socks.len()];
        loop {
            match s.send_to(&q, server) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(e) => panic!("send: {e}"),
            }
        }
        f.sent += 1;
        f.bytes_out += q.len();
        if i % 4 == 3 {
            drain(&mut f);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(700) {
        let before = f.full + f.slipped;
        drain(&mut f);
        if f.full + f.slipped != before {
            quiet = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f
}

/// One UDP query from a given source address; `None` when nothing came back in 500 ms.
fn ask_from(server: SocketAddr, src: &str, q: &[u8]) -> Option<Message> {
    let s = UdpSocket::bind(format!("{src}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.send_to(q, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let n = s.recv(&mut buf).ok()?;
    Some(decode(&buf[..n]).unwrap())
}

#[test]
fn a_flood_from_one_network_is_limited_with_slip_while_others_and_cookie_clients_are_answered() {
    // 20 answers/s per bucket, every 2nd limited answer slips, debts of 2 s.
    let o = Opts {
        rrl: "rate = 20\nslip = 2\nwindow = 2\n".into(),
        ..Opts::default()
    };
    let s = Server::start("rrl", o);
    let server = s.addr();
    // A client in the flooded /24 learns a server cookie before the flood.
    let cq = |ck: &[u8]| {
        build_query_with(
            9,
            &wire("cookie-client.be."),
            Rtype::A,
            (1232, true),
            &[(option::COOKIE, ck)],
        )
    };
    let first = ask_from(server, "127.0.0.200", &cq(&[0xc0; 8])).expect("cookie answer");
    let cookie = first
        .option(option::COOKIE)
        .expect("a server cookie")
        .to_vec();
    assert_eq!(cookie.len(), 24);

    // The flood: 4,000 queries with DO from 40 addresses of 127.0.0.0/24, and meanwhile
    // a resolver in 127.0.1.0/24 asking 10 times in 2 s and the cookie client asking 40
    // times from the flooded network.
    let sources: Vec<IpAddr> = (10..50)
        .map(|i| format!("127.0.0.{i}").parse().unwrap())
        .collect();
    let other = std::thread::spawn(move || {
        let mut full = 0;
        for i in 0..10 {
            let q = build_query(
                i,
                &wire(&format!("other-{i}.be.")),
                Rtype::A,
                Some((1232, true)),
            );
            if let Some(m) = ask_from(server, "127.0.1.7", &q) {
                if m.rcode == 3 && !m.flag(0x0200) && !m.authority.is_empty() {
                    full += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        full
    });
    let cookie_client = {
        let cookie = cookie.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut full = 0;
            for _ in 0..40 {
                if let Some(m) = ask_from(server, "127.0.0.200", &cq(&cookie)) {
                    if m.rcode == 3 && !m.flag(0x0200) && !m.authority.is_empty() {
                        full += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            full
        })
    };
    let t = Instant::now();
    let f = flood(server, &sources, 4000, Some((1232, true)));
    let secs = t.elapsed().as_secs_f64();
    let limited = f.sent - f.full;
    eprintln!("flood: {f:?} in {secs:.2} s");
    // At most the rate per second of flooding (plus the first second's full bucket).
    assert!(
        (f.full as f64) <= 20.0 * (secs + 2.0),
        "{} full answers in {secs:.2} s: not limited ({f:?})",
        f.full
    );
    // Every second limited answer slips (per worker thread): about half, never all.
    let share = f.slipped as f64 / limited as f64;
    assert!(
        (0.4..=0.6).contains(&share),
        "slip share {share:.2} ({f:?})"
    );
    // Amplification for the flooded network at most 1 (a signed NXDOMAIN alone is ~15×).
    let amp = f.bytes_in as f64 / f.bytes_out as f64;
    assert!(amp <= 1.0, "amplification {amp:.2} ({f:?})");
    assert_eq!(
        other.join().unwrap(),
        10,
        "the other network is answered in full"
    );
    assert_eq!(
        cookie_client.join().unwrap(),
        40,
        "the cookie client is never limited"
    );
    // The log says when the network started and stopped being limited.
    wait_for(10, "RRL start and stop lines", || {
        let log = s.log_text();
        log.contains("RRL: limiting 127.0.0.0/24 (nxdomain/nodata answers over 20/s)")
            && log.contains("RRL: stopped limiting 127.0.0.0/24")
    });
    // TCP from the flooded network is never limited.
    let q = build_query(
        1,
        &wire("tcp-after-flood.be."),
        Rtype::A,
        Some((1232, true)),
    );
    let m = decode(&tcp_pipelined(server, &[q.clone(), q.clone(), q])[2]).unwrap();
    assert_eq!(m.rcode, 3);
    // The counters saw it.
    let (code, text) = s.api("GET", "/metrics", None, Some(TOKEN));
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    assert!(m["belfry_rrl_total{action=\"dropped\"}"] > 0.0);
    assert!(m["belfry_rrl_total{action=\"slipped\"}"] > 0.0);
    assert!(m["belfry_cookies_total{cookie=\"valid\"}"] >= 40.0);
}

#[test]
fn custom_prefix_lengths_and_exempt_networks() {
    // /32 networks: two IPv4 addresses are two networks; 127.0.0.60 is exempt.
    let o = Opts {
        signed: false,
        rrl: "rate = 5\nslip = 0\nwindow = 1\nipv4_prefix = 32\nexempt = [\"127.0.0.60\"]\n".into(),
        ..Opts::default()
    };
    let s = Server::start("rrl-prefix", o);
    let f1 = flood(s.addr(), &["127.0.0.61".parse().unwrap()], 300, None);
    let f2 = flood(s.addr(), &["127.0.0.62".parse().unwrap()], 30, None);
    let f3 = flood(s.addr(), &["127.0.0.60".parse().unwrap()], 300, None);
    assert!(f1.full <= 15, "{f1:?}");
    assert_eq!(f1.slipped, 0, "slip = 0: drops only");
    assert!(f2.full >= 5, "its own /32 bucket: {f2:?}");
    assert_eq!(f3.full, 300, "exempt: {f3:?}");
}

/// Prometheus text: `name{labels}` → value; checks the shape of every line.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut out = HashMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            typed.insert(it.next().unwrap().to_string());
            assert!(
                matches!(it.next(), Some("counter" | "gauge")),
                "bad type line {l}"
            );
            continue;
        }
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let (key, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.starts_with("belfry_"),
            "bad name in {l}"
        );
        assert!(typed.contains(name), "{name} has no TYPE line");
        out.insert(
            key.to_string(),
            v.parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {l}")),
        );
    }
    out
}

#[test]
fn metrics_are_served_behind_the_token_and_move_with_queries() {
    let s = Server::start("metrics", Opts::default());
    let (code, _) = s.api("GET", "/metrics", None, None);
    assert_eq!(code, 401, "the admin token is needed");
    let (code, _) = s.api("GET", "/metrics", None, Some("wrong-token-0123456789"));
    assert_eq!(code, 401);
    let scrape = || {
        let (code, text) = s.api("GET", "/metrics", None, Some(TOKEN));
        assert_eq!(code, 200, "{text}");
        text
    };
    let before_text = scrape();
    let before = parse_metrics(&before_text);
    // The Prometheus project's parser reads it too.
    let dir = TempDir::new("metrics-py");
    let file = dir.0.join("metrics.txt");
    std::fs::write(&file, &before_text).unwrap();
    let py = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             fams = list(p(open(sys.argv[1]).read()))\n\
             print(len(fams), sum(len(f.samples) for f in fams))",
        )
        .arg(&file)
        .output()
        .expect("python3 (apt-get install python3-prometheus-client)");
    assert!(
        py.status.success(),
        "the Prometheus parser refused the text: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let families: usize = String::from_utf8_lossy(&py.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(families >= 20, "{families} families");
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    // 10 referrals over UDP, 5 NXDOMAIN over UDP, 3 DS over TCP, one truncated answer.
    for _ in 0..10 {
        s.ask("www.glued.be.", Rtype::A, Some((1232, false)), false);
    }
    for i in 0..5 {
        s.ask(&format!("nope{i}.be."), Rtype::A, Some((1232, true)), false);
    }
    let ds = build_query(5, &wire("secure.be."), Rtype::DS, Some((1232, true)));
    tcp_pipelined(s.addr(), &[ds.clone(), ds.clone(), ds]);
    s.ask("bignet.be.", Rtype::A, None, false);
    let q = build_query_with(
        1,
        &wire("be."),
        Rtype::SOA,
        (1232, false),
        &[(option::COOKIE, &[1; 8])],
    );
    udp_raw(s.addr(), &q, Duration::from_secs(1)).unwrap();
    // A suppression is a published change.
    let (code, body) = s.api(
        "POST",
        "/v1/suppressions",
        Some(r#"{"actor":"metrics-test","entries":[{"domain":"phish-example.be","reason":"phishing","case":"M-1"}]}"#),
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    let after = parse_metrics(&scrape());
    // The binary's allocator (jemalloc) reports the heap: what is held, and
    // what is resident (never less).
    let held = get(&after, "belfry_heap_allocated_bytes");
    let resident = get(&after, "belfry_heap_resident_bytes");
    assert!(held > 1e6, "heap allocated {held}");
    assert!(
        resident >= held,
        "heap resident {resident} < allocated {held}"
    );
    let (code, status) = s.api("GET", "/v1/status", None, Some(TOKEN));
    assert_eq!(code, 200, "{status}");
    let status: belfry::suppress::proto::StatusResponse = serde_json::from_str(&status).unwrap();
    assert!(status
        .heap
        .is_some_and(|h| h.allocated > 1_000_000 && h.resident >= h.allocated));
    let delta = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(
        delta("belfry_queries_total{transport=\"udp\",qtype=\"A\",rcode=\"NOERROR\"}"),
        11.0,
        "10 referrals and the truncated one"
    );
    assert_eq!(
        delta("belfry_queries_total{transport=\"udp\",qtype=\"A\",rcode=\"NXDOMAIN\"}"),
        5.0
    );
    assert_eq!(
        delta("belfry_queries_total{transport=\"tcp\",qtype=\"DS\",rcode=\"NOERROR\"}"),
        3.0
    );
    assert!(delta("belfry_answers_total{kind=\"referral\"}") >= 11.0);
    assert_eq!(delta("belfry_answers_total{kind=\"nxdomain\"}"), 5.0);
    assert_eq!(delta("belfry_truncated_total{transport=\"udp\"}"), 1.0);
    assert_eq!(delta("belfry_cookies_total{cookie=\"client_only\"}"), 1.0);
    assert!(delta("belfry_query_bytes_total{transport=\"udp\"}") > 0.0);
    assert!(delta("belfry_answer_bytes_total{transport=\"tcp\"}") > 0.0);
    assert_eq!(get(&after, "belfry_suppressions"), 1.0);
    assert_eq!(delta("belfry_changes_total"), 1.0);
    assert_eq!(delta("belfry_zone_serial"), 1.0);
    assert!(get(&after, "belfry_zone_last_change_timestamp_seconds") > 1.7e9);
    assert!(get(&after, "belfry_zone_loaded_timestamp_seconds") > 1.7e9);
    assert!(get(&after, "belfry_signatures_made_total") > 0.0);
    assert_eq!(get(&after, "belfry_signing_failures_total"), 0.0);
    assert_eq!(get(&after, "belfry_zone_signed"), 1.0);
    assert_eq!(get(&after, "belfry_rrl_limited_networks"), 0.0);
}

/// The `; COOKIE:` value dig or kdig prints (client and server cookie, hex).
fn printed_cookie(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("; COOKIE: "))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_lowercase())
}

#[test]
fn dig_cookie_round_trip_and_forged_stale_and_rotated_secrets() {
    let secret = "8899aabbccddeeff0011223344556677";
    let with_secret = |text: &str| Opts {
        signed: false,
        files: vec![("cookie.secret".into(), text.into())],
        extra_config: "[cookies]\nsecret_file = \"cookie.secret\"\n".into(),
        ..Opts::default()
    };
    let a = Server::start("cookie-a", with_secret(&format!("{secret}\n")));
    // dig +cookie: a client cookie; the answer carries it back with our server cookie.
    let out = a.dig("+cookie be. SOA");
    assert_eq!(status(&out), "NOERROR", "{out}");
    let c = printed_cookie(&out).unwrap_or_else(|| panic!("no cookie: {out}"));
    assert_eq!(c.len(), 48, "8-byte client + 16-byte server cookie: {out}");
    assert!(out.contains("(good)"), "dig checks the client half: {out}");
    // Sent back: valid, echoed unchanged.
    let out = a.dig(&format!("+cookie={c} be. SOA"));
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(printed_cookie(&out).as_deref(), Some(c.as_str()), "{out}");
    // kdig sees the same cookie accepted.
    let out = a.kdig(&format!("+cookie={c} be. SOA"));
    assert!(out.contains("NOERROR"), "{out}");
    assert!(out.to_lowercase().contains(&c), "{out}");
    // Forged: BADCOOKIE with a new cookie (dig +nobadcookie shows it; by default dig
    // retries with the new cookie and gets its answer).
    let mut forged = unhex(&c);
    forged[20] ^= 0xff;
    let out = a.dig(&format!("+cookie={} +nobadcookie be. SOA", hex(&forged)));
    assert_eq!(status(&out), "BADCOOKIE", "{out}");
    let fresh = printed_cookie(&out).unwrap();
    assert_ne!(fresh, hex(&forged));
    assert_eq!(&fresh[..16], &c[..16], "the client cookie is kept");
    let out = a.dig(&format!("+cookie={} be. SOA", hex(&forged)));
    assert_eq!(
        status(&out),
        "NOERROR",
        "dig retries with the new cookie: {out}"
    );
    // Stale: made with our secret, but 2 hours old.
    let secrets =
        belfry::cookie::Secrets::new(vec![belfry::cookie::Secret::from_hex(secret).unwrap()])
            .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let stale = secrets.make(&unhex(&c[..16]), ip, now - 7200);
    let out = a.dig(&format!("+cookie={} +nobadcookie be. SOA", hex(&stale)));
    assert_eq!(status(&out), "BADCOOKIE", "{out}");
    // 45 minutes old: still ours, renewed.
    let old = secrets.make(&unhex(&c[..16]), ip, now - 2700);
    let out = a.dig(&format!("+cookie={} be. SOA", hex(&old)));
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_ne!(printed_cookie(&out).unwrap(), hex(&old), "renewed");
    // Over TCP a bad cookie is answered (the connection proves the address).
    let out = a.dig(&format!(
        "+tcp +cookie={} +nobadcookie be. SOA",
        hex(&forged)
    ));
    assert_eq!(status(&out), "NOERROR", "{out}");

    // Anycast: a second instance with the same secret accepts A's cookie as its own.
    let b = Server::start(
        "cookie-b",
        with_secret("ffeeddccbbaa99887766554433221100\n"),
    );
    let out = b.dig(&format!("+cookie={c} +nobadcookie be. SOA"));
    assert_eq!(status(&out), "BADCOOKIE", "another secret: {out}");
    // Rotation: B gets A's secret as an accepted older one (SIGHUP re-reads the file).
    std::fs::write(
        b.dir.0.join("cookie.secret"),
        format!("ffeeddccbbaa99887766554433221100\n{secret}\n"),
    )
    .unwrap();
    b.signal(libc::SIGHUP);
    wait_for(10, "secrets read again", || {
        b.log_text()
            .contains("cookie secrets read again: 2 accepted")
    });
    let out = b.dig(&format!("+cookie={c} +nobadcookie be. SOA"));
    assert_eq!(
        status(&out),
        "NOERROR",
        "the previous secret is accepted: {out}"
    );
    assert_ne!(
        printed_cookie(&out).unwrap(),
        c,
        "and replaced by one of the current secret"
    );
    // The same secret everywhere: B echoes A's cookie unchanged.
    std::fs::write(b.dir.0.join("cookie.secret"), format!("{secret}\n")).unwrap();
    b.signal(libc::SIGHUP);
    wait_for(10, "secrets read again", || {
        b.log_text()
            .contains("cookie secrets read again: 1 accepted")
    });
    let out = b.dig(&format!("+cookie={c} be. SOA"));
    assert_eq!(printed_cookie(&out).as_deref(), Some(c.as_str()), "{out}");
    // A broken secret file keeps the secrets in force.
    std::fs::write(b.dir.0.join("cookie.secret"), "not a secret\n").unwrap();
    b.signal(libc::SIGHUP);
    wait_for(10, "the refusal", || {
        b.log_text().contains("the cookie secrets in force stay")
    });
    let out = b.dig(&format!("+cookie={c} be. SOA"));
    assert_eq!(printed_cookie(&out).as_deref(), Some(c.as_str()), "{out}");
}

#[test]
fn dig_nsid_text_hex_and_hostname() {
    for (nsid, want) in [
        ("ns1.brussels.example", "ns1.brussels.example".to_string()),
        ("0x6e73312d6272", "ns1-br".to_string()),
        (
            "hostname",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
                .to_string(),
        ),
    ] {
        let o = Opts {
            signed: false,
            extra_server: format!("nsid = \"{nsid}\"\n"),
            ..Opts::default()
        };
        let s = Server::start("nsid", o);
        let out = s.dig("+nsid www.glued.be. A");
        assert_eq!(status(&out), "NOERROR", "{out}");
        let line = out
            .lines()
            .find(|l| l.contains("; NSID:"))
            .unwrap_or_else(|| panic!("no NSID: {out}"));
        assert!(line.contains(&format!("(\"{want}\")")), "{line}");
        let out = s.dig("www.glued.be. A");
        assert!(!out.contains("NSID"), "only when asked: {out}");
        let out = s.kdig("+nsid www.glued.be. A");
        assert!(out.contains("NSID") && out.contains(&want), "{out}");
    }
    // Off unless set.
    let o = Opts {
        signed: false,
        ..Opts::default()
    };
    let s = Server::start("nsid-off", o);
    let out = s.dig("+nsid be. SOA");
    assert!(!out.contains("; NSID:"), "{out}");
}

#[test]
fn check_refuses_bad_rrl_nsid_and_cookie_settings() {
    let dir = TempDir::new("rrl-check");
    std::fs::copy(root().join("zones/be.zone"), dir.0.join("be.zone")).unwrap();
    for (extra, want) in [
        ("[rrl]\nrate = 0\n", "[rrl] rate"),
        ("[rrl]\nwindow = 0\n", "[rrl] window"),
        ("[rrl]\nexempt = [\"not-a-net\"]\n", "exempt entry 1"),
        ("[server]\nnsid = \"0xabc\"\n", "[server] nsid"),
        (
            "[cookies]\nsecret_file = \"missing.secret\"\n",
            "missing.secret",
        ),
    ] {
        let cfg = dir.0.join("belfry.toml");
        std::fs::write(
            &cfg,
            format!("{extra}[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n"),
        )
        .unwrap();
        let out = std::process::Command::new(bin())
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}");
        assert!(err.contains(want), "{extra}: {err}");
    }
}
