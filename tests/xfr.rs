//! Inbound transfers and NOTIFY against real servers: Knot (`knotd`) and NSD as
//! primaries serving an unsigned zone on loopback (started here with a temporary
//! config, stopped by PID), and Knot as a secondary of a test responder that we
//! NOTIFY. Also hostile primaries: stalling, endless, refusing IXFR.

mod common;
mod responder;

use belfry::serial::soa_serial;
use belfry::tsig::{self, Check, Key, KeyRing};
use belfry::wire::decode::Record;
use belfry::wire::message::{self, flag};
use belfry::wire::{Rcode, Rtype};
use belfry::xfr::{self, notify, Diff, Kind, Limits, Primary, Refresh, Transfer, XfrError};
use common::{require, wire, TempDir};
use responder::{Handler, Meta, Responder};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";
const DELEGATIONS: usize = 1500;

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn key() -> Key {
    Key::from_text("xfr-key", "hmac-sha256", SECRET).unwrap()
}

fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(3),
        message_timeout: Duration::from_secs(5),
        transfer_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

/// The unsigned test zone: apex, `DELEGATIONS` delegations with glue, a few extras.
/// Returns the text and its number of records.
fn zone_text(serial: u32, www_last: u8, skip: Option<usize>, extra: &str) -> (String, usize) {
    let mut t = format!(
        "$ORIGIN example.\n$TTL 3600\n@ IN SOA ns1.example. hostmaster.example. {serial} 3600 600 864000 300\n\
         @ IN NS ns1.example.\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.{www_last}\n\
         sec IN NS ns.sec.other.\nsec IN DS 12345 13 2 3D4A5B6C7D8E9F00112233445566778899AABBCCDDEEFF001122334455667788\n\
         txt IN TXT \"hello world\"\n{extra}"
    );
    let mut n = 7 + extra.lines().count();
    for i in 0..DELEGATIONS {
        if Some(i) == skip {
            continue;
        }
        t.push_str(&format!(
            "d{i} IN NS ns.d{i}.example.\nns.d{i} IN A 198.51.100.{}\n",
            i % 250
        ));
        n += 2;
    }
    (t, n)
}

/// A daemon started by a test, stopped by its PID on drop.
struct Daemon {
    child: Child,
    dir: TempDir,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the daemon serves `zone` with `serial` (SOA over UDP, with the key).
    fn wait_serial(&self, zone: &str, serial: u32) {
        let p = Primary {
            addr: self.addr(),
            key: Some(key()),
        };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(soa) = block(xfr::query_soa(&p, &wire(zone), &limits())) {
                if soa_serial(&soa.rdata) == Some(serial) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{zone} never reached serial {serial}; log:\n{}",
            self.log_text()
        );
    }
}

fn knot(tag: &str, zone_file: Option<&str>, zones: &str) -> Daemon {
    require("knotd");
    require("knotc");
    let dir = TempDir::new(tag);
    let d = dir.0.display().to_string();
    std::fs::create_dir_all(dir.0.join("db")).unwrap();
    if let Some(z) = zone_file {
        std::fs::write(dir.0.join("example.zone"), z).unwrap();
    }
    let port = common::free_port();
    let conf = format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
         database:\n    storage: \"{d}/db\"\n\
         log:\n  - target: stderr\n    any: info\n\
         key:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: difference\n    journal-content: changes\n\
         control:\n    listen: \"{d}/knot.sock\"\n{zones}"
    );
    std::fs::write(dir.0.join("knot.conf"), conf).unwrap();
    let log = dir.0.join("knot.log");
    let child = Command::new("knotd")
        .arg("-c")
        .arg(dir.0.join("knot.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Daemon {
        child,
        dir,
        port,
        log,
    }
}

const KNOT_PRIMARY: &str =
    "acl:\n  - id: xfr\n    address: 127.0.0.0/8\n    key: xfr-key\n    action: transfer\n\
zone:\n  - domain: example.\n    file: \"example.zone\"\n    acl: xfr\n";

fn knotc(d: &Daemon, args: &[&str]) {
    let out = Command::new("knotc")
        .arg("-s")
        .arg(d.dir.0.join("knot.sock"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "knotc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn has(records: &[Record], owner: &str, t: Rtype, rdata: &[u8]) -> bool {
    records.iter().any(|r| {
        r.rtype == t && belfry::name::eq_ignore_case(&r.owner, &wire(owner)) && r.rdata == rdata
    })
}

#[test]
fn knot_primary_axfr_ixfr_refresh_with_tsig_on_every_message() {
    let (z1, count1) = zone_text(2026010101, 80, None, "");
    let k = knot("knot-primary", Some(&z1), KNOT_PRIMARY);
    k.wait_serial("example.", 2026010101);
    let zone = wire("example.");
    let p = Primary {
        addr: k.addr(),
        key: Some(key()),
    };

    // AXFR: the whole zone, several messages, each signed and verified.
    let Transfer::Full { records } =
        block(xfr::transfer(&p, &zone, Kind::Axfr, &limits())).unwrap()
    else {
        panic!("expected a full zone")
    };
    assert_eq!(records.len(), count1);
    assert_eq!(records[0].rtype, Rtype::SOA);
    assert_eq!(soa_serial(&records[0].rdata), Some(2026010101));
    assert!(has(&records, "www.example.", Rtype::A, &[192, 0, 2, 80]));
    assert!(has(
        &records,
        "d1499.example.",
        Rtype::NS,
        &wire("ns.d1499.example.")
    ));
    let old_soa = records[0].clone();
    // The zone takes several messages (kdig counts them), so TSIG chaining was exercised.
    let out = Command::new("kdig")
        .args([
            "@127.0.0.1",
            &format!("-p{}", k.port),
            "-y",
            &format!("hmac-sha256:xfr-key:{SECRET}"),
            "example.",
            "AXFR",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    let messages: usize = out
        .split(" messages, ")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count in kdig output:\n{out}"));
    assert!(messages > 1, "{out}");

    // Change the zone on the primary: www changes, d7 goes away, new appears.
    let (z2, count2) = zone_text(2026010102, 81, Some(7), "new IN NS ns.new.other.\n");
    std::fs::write(k.dir.0.join("example.zone"), z2).unwrap();
    knotc(&k, &["zone-reload", "example."]);
    k.wait_serial("example.", 2026010102);

    // IXFR from what we hold: one difference sequence with exactly those changes.
    let t = block(xfr::transfer(
        &p,
        &zone,
        Kind::Ixfr(old_soa.clone()),
        &limits(),
    ))
    .unwrap();
    let Transfer::Incremental { soa, diffs } = &t else {
        panic!("expected IXFR, got {t:?}")
    };
    assert_eq!(soa_serial(&soa.rdata), Some(2026010102));
    let [Diff { removed, added, .. }] = diffs.as_slice() else {
        panic!("{diffs:?}")
    };
    assert_eq!(
        (diffs[0].old_serial(), diffs[0].new_serial()),
        (2026010101, 2026010102)
    );
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(has(removed, "www.example.", Rtype::A, &[192, 0, 2, 80]));
    assert!(has(
        removed,
        "d7.example.",
        Rtype::NS,
        &wire("ns.d7.example.")
    ));
    assert!(has(removed, "ns.d7.example.", Rtype::A, &[198, 51, 100, 7]));
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(has(added, "www.example.", Rtype::A, &[192, 0, 2, 81]));
    assert!(has(
        added,
        "new.example.",
        Rtype::NS,
        &wire("ns.new.other.")
    ));

    // Refresh: IXFR when behind, nothing when current, AXFR when we hold nothing.
    match block(xfr::refresh(&p, &zone, Some(&old_soa), &limits())).unwrap() {
        Refresh::Transferred {
            transfer: Transfer::Incremental { .. },
            fell_back: false,
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        block(xfr::refresh(&p, &zone, Some(soa), &limits())).unwrap(),
        Refresh::UpToDate { serial: 2026010102 }
    );
    match block(xfr::refresh(&p, &zone, None, &limits())).unwrap() {
        Refresh::Transferred {
            transfer: Transfer::Full { records },
            ..
        } => assert_eq!(records.len(), count2),
        other => panic!("{other:?}"),
    }
    // A serial Knot's journal does not have: it answers AXFR-style.
    let mut ancient = old_soa.clone();
    belfry::serial::set_soa_serial(&mut ancient.rdata, 2025000000);
    match block(xfr::transfer(&p, &zone, Kind::Ixfr(ancient), &limits())).unwrap() {
        Transfer::Full { records } => {
            assert_eq!(records.len(), count2);
            assert_eq!(soa_serial(&records[0].rdata), Some(2026010102));
        }
        other => panic!("{other:?}"),
    }
    // Limits hold against a real primary too.
    let small = Limits {
        max_records: 100,
        ..limits()
    };
    assert_eq!(
        block(xfr::transfer(&p, &zone, Kind::Axfr, &small)).unwrap_err(),
        XfrError::TooLarge("number of records")
    );
}

#[test]
fn knot_primary_refuses_without_the_right_key() {
    let (z1, _) = zone_text(7, 80, None, "");
    let k = knot("knot-refuse", Some(&z1), KNOT_PRIMARY);
    k.wait_serial("example.", 7);
    let zone = wire("example.");
    let no_key = Primary {
        addr: k.addr(),
        key: None,
    };
    assert_eq!(
        block(xfr::transfer(&no_key, &zone, Kind::Axfr, &limits())).unwrap_err(),
        XfrError::Rcode(Rcode::NOTAUTH.0)
    );
    let wrong_secret = Primary {
        addr: k.addr(),
        key: Some(
            Key::from_text("xfr-key", "hmac-sha256", "c2VjcmV0IHRoYXQgaXMgd3Jvbmc=").unwrap(),
        ),
    };
    assert_eq!(
        block(xfr::transfer(&wrong_secret, &zone, Kind::Axfr, &limits())).unwrap_err(),
        XfrError::Tsig(tsig::VerifyError::Peer(tsig::TsigRcode::BADSIG))
    );
    let unknown = Primary {
        addr: k.addr(),
        key: Some(Key::from_text("who", "hmac-sha256", SECRET).unwrap()),
    };
    assert_eq!(
        block(xfr::transfer(&unknown, &zone, Kind::Axfr, &limits())).unwrap_err(),
        XfrError::Tsig(tsig::VerifyError::Peer(tsig::TsigRcode::BADKEY))
    );
}

#[test]
fn nsd_primary_axfr_with_tsig_and_ixfr_answered_axfr_style() {
    require("nsd");
    let (z1, count1) = zone_text(42, 80, None, "");
    let dir = TempDir::new("nsd-primary");
    let d = dir.0.display().to_string();
    std::fs::write(dir.0.join("example.zone"), z1).unwrap();
    let port = common::free_port();
    std::fs::write(
        dir.0.join("nsd.conf"),
        format!(
            "server:\n    ip-address: 127.0.0.1\n    port: {port}\n    zonesdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n\
             \x20   database: \"\"\n    xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n    username: \"\"\n\
             \x20   chroot: \"\"\n    logfile: \"{d}/nsd.log\"\n    verbosity: 2\n\
             remote-control:\n    control-enable: no\n\
             key:\n    name: xfr-key\n    algorithm: hmac-sha256\n    secret: \"{SECRET}\"\n\
             zone:\n    name: example.\n    zonefile: example.zone\n    provide-xfr: 127.0.0.0/8 xfr-key\n"
        ),
    )
    .unwrap();
    let log = dir.0.join("nsd.log");
    let child = Command::new("nsd")
        .args(["-d", "-c"])
        .arg(dir.0.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let n = Daemon {
        child,
        dir,
        port,
        log,
    };
    n.wait_serial("example.", 42);
    let zone = wire("example.");
    let p = Primary {
        addr: n.addr(),
        key: Some(key()),
    };
    let Transfer::Full { records } =
        block(xfr::transfer(&p, &zone, Kind::Axfr, &limits())).unwrap()
    else {
        panic!()
    };
    assert_eq!(records.len(), count1);
    // NSD 4.6 does not serve IXFR: it answers the IXFR with the whole zone.
    let mut older = records[0].clone();
    belfry::serial::set_soa_serial(&mut older.rdata, 41);
    match block(xfr::refresh(&p, &zone, Some(&older), &limits())).unwrap() {
        Refresh::Transferred {
            transfer: Transfer::Full { records },
            ..
        } => assert_eq!(records.len(), count1),
        other => panic!("{other:?}"),
    }
    let no_key = Primary {
        addr: n.addr(),
        key: None,
    };
    assert_eq!(
        block(xfr::transfer(&no_key, &zone, Kind::Axfr, &limits())).unwrap_err(),
        XfrError::Rcode(Rcode::REFUSED.0)
    );
}

fn soa(zone: &str, serial: u32) -> Record {
    let mut rdata = wire(&format!("ns1.{zone}"));
    rdata.extend_from_slice(&wire(&format!("hostmaster.{zone}")));
    for v in [serial, 3600, 600, 864000, 300] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    Record {
        owner: wire(zone),
        rtype: Rtype::SOA,
        class: 1,
        ttl: 3600,
        rdata,
    }
}

fn a(owner: &str, last: u8) -> Record {
    Record {
        owner: wire(owner),
        rtype: Rtype::A,
        class: 1,
        ttl: 60,
        rdata: vec![192, 0, 2, last],
    }
}

/// A primary made of our own pieces: answers SOA, and AXFR (and IXFR, AXFR-style)
/// in two messages, signed when asked with a known key. `ixfr_rcode` makes it
/// refuse IXFR with that RCODE.
fn own_primary(zone: &'static str, serial: Arc<AtomicU32>, ixfr_rcode: Option<Rcode>) -> Responder {
    let mut ring = KeyRing::new();
    ring.insert(key()).unwrap();
    let h: Handler = Arc::new(move |req: &[u8], meta: Meta| {
        let now = tsig::now();
        let Ok(m) = message::parse(req) else {
            return vec![];
        };
        let mut signer = match tsig::verify_parsed(&ring, req, &m, now) {
            Check::Verified(s) => Some(s),
            Check::Unsigned => None,
            Check::Failed(mut f) => return vec![f.reply(req, now)],
            Check::FormErr => return vec![message::reply_header(req, Rcode::FORMERR)],
        };
        let Some(q) = m.questions.first().cloned() else {
            return vec![];
        };
        let s = serial.load(Ordering::SeqCst);
        let mut out = match q.qtype {
            Rtype::SOA => vec![message::build(
                m.header.id,
                flag::QR | flag::AA,
                Some(&q),
                &[soa(zone, s)],
                &[],
                &[],
            )
            .unwrap()],
            Rtype::IXFR if ixfr_rcode.is_some() => {
                vec![message::reply_header(
                    req,
                    ixfr_rcode.unwrap_or(Rcode::NOTIMP),
                )]
            }
            Rtype::AXFR | Rtype::IXFR if meta.tcp => {
                let first = [soa(zone, s), a(&format!("a.{zone}"), 1)];
                let second = [a(&format!("b.{zone}"), s as u8), soa(zone, s)];
                vec![
                    message::build(m.header.id, flag::QR | flag::AA, Some(&q), &first, &[], &[])
                        .unwrap(),
                    message::build(m.header.id, flag::QR | flag::AA, None, &second, &[], &[])
                        .unwrap(),
                ]
            }
            _ => vec![message::reply_header(req, Rcode::REFUSED)],
        };
        if let Some(sg) = signer.as_mut() {
            for msg in &mut out {
                sg.sign(msg, now).unwrap();
            }
        }
        out
    });
    Responder::start(h)
}

#[test]
fn refresh_falls_back_to_axfr_when_ixfr_is_refused() {
    let serial = Arc::new(AtomicU32::new(5));
    let r = own_primary("fall.test.", serial, Some(Rcode::NOTIMP));
    let p = Primary {
        addr: r.addr(),
        key: Some(key()),
    };
    let zone = wire("fall.test.");
    match block(xfr::refresh(
        &p,
        &zone,
        Some(&soa("fall.test.", 4)),
        &limits(),
    ))
    .unwrap()
    {
        Refresh::Transferred {
            transfer: Transfer::Full { records },
            fell_back: true,
        } => {
            assert_eq!(
                records,
                vec![
                    soa("fall.test.", 5),
                    a("a.fall.test.", 1),
                    a("b.fall.test.", 5)
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_primaries_are_cut_off() {
    // Stalls after the first message: the per-message timeout ends it.
    let stall: Handler = Arc::new(|req: &[u8], _m: Meta| {
        let m = message::parse(req).unwrap();
        let q = m.questions[0].clone();
        let first = message::build(
            m.header.id,
            flag::QR,
            Some(&q),
            &[soa("st.test.", 1)],
            &[],
            &[],
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        vec![first]
    });
    let r = Responder::start(stall);
    let p = Primary {
        addr: r.addr(),
        key: None,
    };
    let quick = Limits {
        message_timeout: Duration::from_millis(500),
        ..limits()
    };
    assert_eq!(
        block(xfr::transfer(&p, &wire("st.test."), Kind::Axfr, &quick)).unwrap_err(),
        XfrError::Timeout("the next message")
    );
    // Sends records forever (here: 400 messages of 100 records, never the closing SOA).
    let endless: Handler = Arc::new(|req: &[u8], _m: Meta| {
        let m = message::parse(req).unwrap();
        let q = m.questions[0].clone();
        let chunk: Vec<Record> = (0..100).map(|i| a("x.en.test.", i)).collect();
        let mut out = vec![message::build(
            m.header.id,
            flag::QR,
            Some(&q),
            &[soa("en.test.", 1)],
            &[],
            &[],
        )
        .unwrap()];
        for _ in 0..400 {
            out.push(message::build(m.header.id, flag::QR, None, &chunk, &[], &[]).unwrap());
        }
        out
    });
    let r = Responder::start(endless);
    let p = Primary {
        addr: r.addr(),
        key: None,
    };
    let capped = Limits {
        max_records: 10_000,
        ..limits()
    };
    assert_eq!(
        block(xfr::transfer(&p, &wire("en.test."), Kind::Axfr, &capped)).unwrap_err(),
        XfrError::TooLarge("number of records")
    );
    // Closes the connection mid-transfer.
    let cut: Handler = Arc::new(|req: &[u8], _m: Meta| {
        let m = message::parse(req).unwrap();
        let q = m.questions[0].clone();
        vec![message::build(
            m.header.id,
            flag::QR,
            Some(&q),
            &[soa("cut.test.", 1), a("a.cut.test.", 1)],
            &[],
            &[],
        )
        .unwrap()]
    });
    let r = Responder::start(cut);
    let p = Primary {
        addr: r.addr(),
        key: None,
    };
    let err = block(xfr::transfer(&p, &wire("cut.test."), Kind::Axfr, &quick)).unwrap_err();
    assert!(
        matches!(err, XfrError::Closed | XfrError::Timeout(_)),
        "{err:?}"
    );
}

#[test]
fn notify_to_a_knot_secondary_makes_it_transfer_from_us() {
    let serial = Arc::new(AtomicU32::new(1));
    let r = own_primary("sec.test.", serial.clone(), None);
    let zones = format!(
        "remote:\n  - id: primary\n    address: 127.0.0.1@{}\n    key: xfr-key\n\
         acl:\n  - id: notify_in\n    address: 127.0.0.0/8\n    key: xfr-key\n    action: notify\n\
         zone:\n  - domain: sec.test.\n    master: primary\n    acl: notify_in\n",
        r.port
    );
    let k = knot("knot-secondary", None, &zones);
    // Knot bootstraps by AXFR from us: our signed two-message answer is accepted.
    k.wait_serial("sec.test.", 1);
    serial.store(2, Ordering::SeqCst);
    let before = r.seen.lock().unwrap().len();
    let zone = wire("sec.test.");
    block(notify::send(
        k.addr(),
        &zone,
        Some(&soa("sec.test.", 2)),
        Some(&key()),
        Duration::from_secs(3),
    ))
    .unwrap_or_else(|e| panic!("NOTIFY: {e}; log:\n{}", k.log_text()));
    k.wait_serial("sec.test.", 2);
    assert!(
        r.seen.lock().unwrap().len() > before,
        "Knot did not query us after NOTIFY"
    );
    // What Knot now serves is what we sent.
    let p = Primary {
        addr: k.addr(),
        key: Some(key()),
    };
    let out = Command::new("kdig")
        .args([
            "@127.0.0.1",
            &format!("-p{}", k.port),
            "b.sec.test.",
            "A",
            "+short",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.0.2.2");
    drop(p);
    // An unsigned NOTIFY is refused by Knot's ACL.
    let err = block(notify::send(
        k.addr(),
        &zone,
        None,
        None,
        Duration::from_secs(3),
    ))
    .unwrap_err();
    assert!(matches!(err, notify::NotifyError::Rcode(_)), "{err:?}");
}
