//! Real secondaries of a real `belfry serve`: Knot (`knotd`), NSD (`nsd`) and BIND
//! (`named`), each started here on a loopback port with a temporary configuration
//! and stopped by its PID. Each takes the signed zone by AXFR, then follows
//! suppressions, lifts and dynamic updates by NOTIFY and IXFR; queries to the
//! secondary (DO=1) give what belfry gives. The zone Knot holds after the IXFRs,
//! transferred again from Knot, passes `dnssec-verify` and `ldns-verify-zone`. With
//! TSIG required, a secondary without the key gets nothing.

mod common;

use belfry::wire::decode::{build_query, decode, Message, Record};
use belfry::wire::Rtype;
use common::{require, run, wire, Opts, Server, TempDir};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Knot,
    Nsd,
    Bind,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Knot => "knot",
            Kind::Nsd => "nsd",
            Kind::Bind => "bind",
        }
    }

    /// The loopback address its transfer requests come from (so belfry tells them apart).
    fn source(self) -> &'static str {
        match self {
            Kind::Knot => "127.0.0.2",
            Kind::Nsd => "127.0.0.3",
            Kind::Bind => "127.0.0.4",
        }
    }
}

/// A secondary daemon, killed (by PID) when dropped.
struct Secondary {
    kind: Kind,
    child: Child,
    dir: TempDir,
    port: u16,
    log: PathBuf,
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Secondary {
    /// Start a secondary of `be.` from belfry at `primary`, listening on `port`;
    /// with `key`, its transfers are signed with the TSIG key `xfr-key`.
    fn start(kind: Kind, port: u16, primary: SocketAddr, key: bool) -> Secondary {
        let dir = TempDir::new(&format!("secondary-{}", kind.name()));
        let d = dir.0.display().to_string();
        let log = dir.0.join("daemon.log");
        let (bp, src) = (primary.port(), kind.source());
        let cmd = match kind {
            Kind::Knot => {
                require("knotd");
                std::fs::create_dir_all(dir.0.join("db")).unwrap();
                let key_line = if key { "    key: xfr-key\n" } else { "" };
                let conf = format!(
                    "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
                     database:\n    storage: \"{d}/db\"\n\
                     log:\n  - target: stderr\n    any: info\n\
                     key:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
                     remote:\n  - id: belfry\n    address: 127.0.0.1@{bp}\n    via: {src}\n{key_line}\
                     acl:\n  - id: notify\n    address: 127.0.0.1\n    action: notify\n{key_line}\
                     \x20 - id: out\n    address: 127.0.0.0/8\n    action: transfer\n\
                     template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: changes\n\
                     control:\n    listen: \"{d}/knot.sock\"\n\
                     zone:\n  - domain: be.\n    master: belfry\n    acl: [notify, out]\n"
                );
                std::fs::write(dir.0.join("knot.conf"), conf).unwrap();
                let mut c = Command::new("knotd");
                c.arg("-c").arg(dir.0.join("knot.conf"));
                c
            }
            Kind::Nsd => {
                require("nsd");
                let (kdecl, kname) = if key {
                    (
                        format!("key:\n    name: xfr-key\n    algorithm: hmac-sha256\n    secret: \"{SECRET}\"\n"),
                        "xfr-key",
                    )
                } else {
                    (String::new(), "NOKEY")
                };
                let conf = format!(
                    "server:\n    ip-address: 127.0.0.1\n    port: {port}\n    zonesdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n\
                     \x20   database: \"\"\n    xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n    username: \"\"\n\
                     \x20   chroot: \"\"\n    logfile: \"{d}/daemon.log\"\n    verbosity: 2\n    xfrdir: \"{d}\"\n\
                     remote-control:\n    control-enable: no\n{kdecl}\
                     zone:\n    name: be.\n    zonefile: be.zone\n    request-xfr: 127.0.0.1@{bp} {kname}\n\
                     \x20   allow-notify: 127.0.0.1 NOKEY\n    outgoing-interface: {src}\n    provide-xfr: 127.0.0.0/8 NOKEY\n"
                );
                std::fs::write(dir.0.join("nsd.conf"), conf).unwrap();
                let mut c = Command::new("nsd");
                c.args(["-d", "-c"]).arg(dir.0.join("nsd.conf"));
                c
            }
            Kind::Bind => {
                require("named");
                let (server, pkey) = if key {
                    (
                        "server 127.0.0.1 { keys { xfr-key; }; };\n".to_string(),
                        " key xfr-key",
                    )
                } else {
                    (String::new(), "")
                };
                let conf = format!(
                    "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n\
                     \x20 pid-file \"{d}/named.pid\";\n  recursion no;\n  dnssec-validation no;\n  notify no;\n\
                     \x20 transfer-source {src};\n  allow-transfer {{ 127.0.0.0/8; }};\n  minimal-responses no;\n}};\n\
                     controls {{ }};\n\
                     key \"xfr-key\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n{server}\
                     zone \"be\" {{ type secondary; primaries {{ 127.0.0.1 port {bp}{pkey}; }}; file \"be.db\"; allow-notify {{ 127.0.0.1; }}; }};\n"
                );
                std::fs::write(dir.0.join("named.conf"), conf).unwrap();
                let mut c = Command::new("named");
                c.args(["-g", "-n", "1", "-c"])
                    .arg(dir.0.join("named.conf"));
                c
            }
        };
        let mut cmd = cmd;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let log = if kind == Kind::Nsd {
            log
        } else {
            dir.0.join("stderr.log")
        };
        Secondary {
            kind,
            child,
            dir,
            port,
            log,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn query(&self, name: &str, t: Rtype) -> Option<Message> {
        let q = build_query(0x3131, &wire(name), t, Some((4096, true)));
        let raw = common::udp_raw(self.addr(), &q, Duration::from_millis(300))?;
        decode(&raw)
    }

    fn serial(&self) -> Option<u32> {
        let m = self.query("be.", Rtype::SOA)?;
        let r = m.answer.iter().find(|r| r.rtype == Rtype::SOA)?;
        belfry::serial::soa_serial(&r.rdata)
    }

    /// Wait until it serves `serial`; returns how long that took.
    fn wait_serial(&self, serial: u32, within: Duration) -> Duration {
        let t = Instant::now();
        while t.elapsed() < within {
            if self.serial() == Some(serial) {
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "{} never reached serial {serial} (has {:?}); log:\n{}",
            self.kind.name(),
            self.serial(),
            self.log_text()
        );
    }
}

fn config(kinds: &[(Kind, u16)], keyed: bool) -> String {
    let mut c = String::new();
    if keyed {
        c.push_str(&format!(
            "[[tsig.key]]\nname = \"xfr-key\"\nsecret = \"{SECRET}\"\n[[acl.transfer]]\nkey = \"xfr-key\"\n"
        ));
    } else {
        c.push_str("[[acl.transfer]]\nfrom = [\"127.0.0.0/8\"]\n");
    }
    c.push_str("[[acl.update]]\nfrom = [\"127.0.0.1\"]\n[transfer]\nnotify_max_interval = 2\n");
    for (k, port) in kinds {
        c.push_str(&format!(
            "[[transfer.secondary]]\nname = \"{}\"\naddress = \"127.0.0.1:{port}\"\nsource = \"{}\"\n",
            k.name(),
            k.source()
        ));
        if keyed {
            c.push_str("key = \"xfr-key\"\n");
        }
    }
    c
}

fn serial_of(s: &Server) -> u32 {
    let m = s.udp("be.", Rtype::SOA, false);
    belfry::serial::soa_serial(&m.answer[0].rdata).unwrap()
}

fn norm(rs: &[Record]) -> Vec<(Vec<u8>, u16, u32, Vec<u8>)> {
    let mut v: Vec<_> = rs
        .iter()
        .filter(|r| r.rtype != Rtype::OPT)
        .map(|r| {
            (
                belfry::name::to_lowercase(&r.owner),
                r.rtype.0,
                r.ttl,
                r.rdata.clone(),
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// What every answer kind looks like on belfry and on the secondary (DO=1): the
/// rcode, the answer and authority sections record for record (signatures
/// included), and the addresses in the additional section.
const SAMPLE: &[(&str, Rtype)] = &[
    ("be.", Rtype::SOA),
    ("be.", Rtype::NS),
    ("be.", Rtype::DNSKEY),
    ("be.", Rtype::NSEC3PARAM),
    ("www.glued.be.", Rtype::A),
    ("glued.be.", Rtype::DS),
    ("secure.be.", Rtype::DS),
    ("www.secure.be.", Rtype::AAAA),
    ("insecure.be.", Rtype::DS),
    ("www.insecure.be.", Rtype::A),
    ("no-such-name.be.", Rtype::A),
    ("deeper.no-such-name.be.", Rtype::TXT),
    ("nic.be.", Rtype::A),
    ("nic.be.", Rtype::MX),
    ("gov.be.", Rtype::A),
    ("fed.gov.be.", Rtype::NS),
    ("a.nsset.be.", Rtype::AAAA),
];

fn compare(s: &Server, sec: &Secondary, names: &[(&str, Rtype)]) {
    for &(name, t) in names {
        let ours = s.udp(name, t, true);
        let theirs = sec
            .query(name, t)
            .unwrap_or_else(|| panic!("{}: no answer for {name}", sec.kind.name()));
        let what = format!("{} {name} {t:?}", sec.kind.name());
        assert_eq!(ours.rcode, theirs.rcode, "{what}: rcode");
        assert_eq!(norm(&ours.answer), norm(&theirs.answer), "{what}: answer");
        // NSD and BIND (minimal-responses no) add the apex NS RRset to the authority
        // section of positive answers, a server's choice; belfry and Knot do not.
        let authority = |m: &Message| {
            let mut v = norm(&m.authority);
            if !m.answer.is_empty() {
                let apex = wire("be.");
                v.retain(|r| {
                    let covered = (r.1 == Rtype::RRSIG.0 && r.3.len() >= 2)
                        .then(|| u16::from_be_bytes([r.3[0], r.3[1]]));
                    !(r.0 == apex && (r.1 == Rtype::NS.0 || covered == Some(Rtype::NS.0)))
                });
            }
            v
        };
        assert_eq!(authority(&ours), authority(&theirs), "{what}: authority");
        let addrs = |m: &Message| {
            let mut v: Vec<_> = norm(&m.additional)
                .into_iter()
                .filter(|r| r.1 == Rtype::A.0 || r.1 == Rtype::AAAA.0)
                .collect();
            v.sort();
            v
        };
        let (a, b) = (addrs(&ours), addrs(&theirs));
        assert!(
            a.iter().all(|r| b.contains(r)) || b.iter().all(|r| a.contains(r)),
            "{what}: additional addresses {a:?} vs {b:?}"
        );
    }
}

fn nsupdate(s: &Server, script: &str) -> String {
    require("nsupdate");
    let mut child = Command::new("nsupdate")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let full = format!("server 127.0.0.1 {}\nzone be.\n{script}\nsend\n", s.port);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(full.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn verify_file(dir: &std::path::Path, text: &str) {
    let f = dir.join("from-secondary.zone");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .collect();
    // The closing SOA repeats the first.
    std::fs::write(&f, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let out = Command::new("dnssec-verify")
        .args(["-o", "be."])
        .arg(&f)
        .output()
        .unwrap();
    let t =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && t.contains("Zone fully signed"),
        "dnssec-verify:\n{t}"
    );
    let out = Command::new("ldns-verify-zone").arg(&f).output().unwrap();
    let t =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && t.contains("verified and complete"),
        "ldns-verify-zone:\n{t}"
    );
}

/// One secondary follows belfry through suppressions, lifts and updates.
fn follows(kind: Kind) {
    let port = common::free_port();
    let s = Server::start(
        &format!("primary-{}", kind.name()),
        Opts {
            extra_config: config(&[(kind, port)], false),
            ..Opts::default()
        },
    );
    let sec = Secondary::start(kind, port, s.addr(), false);
    let s0 = serial_of(&s);
    sec.wait_serial(s0, Duration::from_secs(30));
    compare(&s, &sec, SAMPLE);
    // Suppress: NOTIFY, IXFR, and the secondary answers NXDOMAIN.
    let o = s.cli(&["add", "secure.be", "--reason", "phishing", "--case", "T-9"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sec.wait_serial(serial_of(&s), Duration::from_secs(10));
    assert_eq!(sec.query("www.secure.be.", Rtype::A).unwrap().rcode, 3);
    compare(&s, &sec, SAMPLE);
    // Lift: back.
    let o = s.cli(&["remove", "secure.be", "--reason", "cleared"]);
    assert!(o.status.success());
    sec.wait_serial(serial_of(&s), Duration::from_secs(10));
    assert_eq!(sec.query("www.secure.be.", Rtype::A).unwrap().rcode, 0);
    // A dynamic update: a new secure delegation with glue.
    let out = nsupdate(
        &s,
        "update add fresh.be. 3600 NS ns1.fresh.be.\nupdate add fresh.be. 3600 DS 12345 13 2 3D4A5B6C7D8E9F00112233445566778899AABBCCDDEEFF001122334455667788\nupdate add ns1.fresh.be. 3600 A 192.0.2.99",
    );
    assert!(!out.contains("failed"), "{out}");
    sec.wait_serial(serial_of(&s), Duration::from_secs(10));
    let mut sample = SAMPLE.to_vec();
    sample.extend([
        ("www.fresh.be.", Rtype::A),
        ("fresh.be.", Rtype::DS),
        ("secure.be.", Rtype::DS),
    ]);
    compare(&s, &sec, &sample);
    // Every change after the first AXFR went by IXFR, as the status shows.
    let st = s.status();
    let me = &st["transfers"]["secondaries"][0];
    assert_eq!(me["current"], true, "{st}");
    let kind_sent = me["last_transfer"]["kind"].as_str().unwrap().to_string();
    assert_eq!(kind_sent, "IXFR", "{st}");
    assert_eq!(
        me["notify_answered"].as_u64().unwrap() as u32,
        serial_of(&s),
        "{st}"
    );
    assert!(!s.log_text().contains("IXFR-as-AXFR"), "{}", s.log_text());
    // `belfry status` shows the same.
    let out = Command::new(common::bin())
        .args(["status", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(kind.name()))
        .unwrap();
    assert!(
        line.contains("current") && line.contains("last IXFR"),
        "{text}"
    );
    // The zone the secondary built from the IXFRs, transferred again from it, verifies.
    let text = run(
        "dig",
        &format!(
            "@127.0.0.1 -p {} +time=5 +tries=1 be. AXFR +nocmd +nostats +nocomments",
            sec.port
        ),
    );
    verify_file(&sec.dir.0, &text);
}

#[test]
fn knot_follows_suppressions_lifts_and_updates_by_notify_and_ixfr() {
    follows(Kind::Knot);
}

#[test]
fn nsd_follows_suppressions_lifts_and_updates_by_notify_and_ixfr() {
    follows(Kind::Nsd);
}

#[test]
fn bind_follows_suppressions_lifts_and_updates_by_notify_and_ixfr() {
    follows(Kind::Bind);
}

#[test]
fn with_tsig_required_a_secondary_without_the_key_gets_nothing() {
    let (kp, np) = (common::free_port(), common::free_port());
    let s = Server::start(
        "primary-keyed",
        Opts {
            extra_config: config(&[(Kind::Knot, kp), (Kind::Nsd, np)], true),
            ..Opts::default()
        },
    );
    let knot = Secondary::start(Kind::Knot, kp, s.addr(), true);
    let nsd = Secondary::start(Kind::Nsd, np, s.addr(), false);
    let s0 = serial_of(&s);
    knot.wait_serial(s0, Duration::from_secs(30));
    compare(&s, &knot, SAMPLE);
    // NSD asked without the key: refused, logged, and it serves nothing of be.
    let t = Instant::now();
    while !s.log_text().contains("127.0.0.3 (no key) refused") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no refusal logged:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(nsd.serial(), Some(s0));
    let st = s.status();
    assert!(st["transfers"]["refused"].as_u64().unwrap() >= 1, "{st}");
    let names: Vec<&str> = st["transfers"]["secondaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["knot", "nsd"]);
    assert_eq!(st["transfers"]["secondaries"][0]["current"], true, "{st}");
}
