//! belfry as the signer in front of an unsigned primary: a real Knot serves the
//! sample zone unsigned on loopback (TSIG required); belfry takes it, signs it,
//! follows its changes by IXFR (AXFR when nothing is on disk yet), and keeps its
//! own suppressions in force. Answers checked with dig and delv.

mod common;

use belfry::wire::Rtype;
use common::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";

/// A Knot primary started by the test, stopped by its PID on drop.
struct Knot {
    child: Child,
    dir: TempDir,
    port: u16,
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Knot {
    fn start(zone: &str) -> Knot {
        require("knotd");
        require("knotc");
        let dir = TempDir::new("knot-primary");
        let d = dir.0.display().to_string();
        std::fs::create_dir_all(dir.0.join("db")).unwrap();
        std::fs::write(dir.0.join("be.zone"), zone).unwrap();
        let port = free_port();
        std::fs::write(dir.0.join("knot.conf"), Knot::conf(&d, port, None)).unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.0.join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("knot.log")).unwrap())
            .spawn()
            .unwrap();
        let k = Knot { child, dir, port };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            let out = run(
                "dig",
                &format!(
                    "@127.0.0.1 -p {port} +norec +time=1 +tries=1 -y hmac-sha256:xfr-key:{SECRET} be SOA"
                ),
            );
            if status(&out) == "NOERROR" {
                return k;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "knot did not start: {}",
            std::fs::read_to_string(k.dir.0.join("knot.log")).unwrap_or_default()
        );
    }

    /// Knot's configuration; with `notify`, it sends NOTIFY (unsigned) there on every change.
    fn conf(d: &str, port: u16, notify: Option<SocketAddr>) -> String {
        let (remote, zone_notify) = match notify {
            Some(a) => (
                format!(
                    "remote:\n  - id: belfry\n    address: {}@{}\n",
                    a.ip(),
                    a.port()
                ),
                "    notify: belfry\n",
            ),
            None => (String::new(), ""),
        };
        format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{d}/db\"\n\
             log:\n  - target: stderr\n    any: info\n\
             key:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             {remote}\
             acl:\n  - id: xfr\n    address: 127.0.0.0/8\n    key: xfr-key\n    action: transfer\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: difference\n    journal-content: changes\n\
             control:\n    listen: \"{d}/knot.sock\"\n\
             zone:\n  - domain: be.\n    file: \"be.zone\"\n    acl: xfr\n{zone_notify}"
        )
    }

    fn knotc(&self, args: &[&str]) {
        let out = Command::new("knotc")
            .arg("-s")
            .arg(self.dir.0.join("knot.sock"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "knotc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// From now on, send NOTIFY to `to` on every change.
    fn notify_to(&self, to: SocketAddr) {
        let d = self.dir.0.display().to_string();
        std::fs::write(
            self.dir.0.join("knot.conf"),
            Knot::conf(&d, self.port, Some(to)),
        )
        .unwrap();
        self.knotc(&["reload"]);
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Replace the zone file and make Knot load the difference (it then serves IXFR).
    fn publish(&self, zone: &str) {
        std::fs::write(self.dir.0.join("be.zone"), zone).unwrap();
        let out = Command::new("knotc")
            .arg("-s")
            .arg(self.dir.0.join("knot.sock"))
            .args(["zone-reload", "be."])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn sample() -> String {
    std::fs::read_to_string(root().join("zones/be.zone")).unwrap()
}

fn with_serial(zone: &str, serial: u32) -> String {
    zone.replacen("2026112401 ; serial", &format!("{serial} ; serial"), 1)
}

fn follower(tag: &str, knot: &Knot) -> (Server, TempDir) {
    follower_with(tag, knot, 1, "")
}

fn follower_with(tag: &str, knot: &Knot, refresh: u64, extra: &str) -> (Server, TempDir) {
    let d = TempDir::new(&format!("{tag}-keyfile"));
    let keyfile = d.0.join("xfr.key");
    std::fs::write(
        &keyfile,
        format!("key \"xfr-key\" {{\n  algorithm hmac-sha256;\n  secret \"{SECRET}\";\n}};\n"),
    )
    .unwrap();
    let s = Server::start(
        tag,
        Opts {
            extra_zone: format!(
                "primary = \"{}\"\nprimary_key_file = \"{}\"\nprimary_refresh = {refresh}\n",
                knot.addr(),
                keyfile.display()
            ),
            extra_config: extra.to_string(),
            ..Opts::default()
        },
    );
    (s, d)
}

fn wait_for(s: &Server, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}; log:\n{}", s.log_text());
}

#[test]
fn belfry_signs_in_front_of_a_knot_primary_and_follows_it_by_ixfr() {
    let knot = Knot::start(&sample());
    let (s, _keys) = follower("follow", &knot);
    // Served signed from the primary's data.
    assert!(s.delv("be SOA").contains("fully validated"));
    // A change at the primary: a new secure delegation and a removed one.
    let changed = with_serial(&sample(), 2026112410)
        .replace("shoppro.be. 3600 IN NS ns1.provider1dns.com.\n", "")
        .replace("shoppro.be. 3600 IN NS ns2.provider1dns.com.\n", "")
        + &format!(
            "\nfrom-primary 3600 IN NS ns1.example-hosting.net.\nfrom-primary 3600 IN DS 4711 13 2 {}\n",
            "CD".repeat(32)
        );
    knot.publish(&changed);
    wait_for(&s, "the change to be served", || {
        status(&s.dig("from-primary.be NS")) == "NOERROR"
    });
    assert_eq!(status(&s.dig("shoppro.be NS")), "NXDOMAIN");
    assert!(s.delv("from-primary.be DS").contains("fully validated"));
    assert!(s.delv("shoppro.be DS").contains("fully validated"));
    let log = s.log_text();
    assert!(log.contains("by IXFR"), "{log}");
    // A suppression made at belfry stays in force when the primary changes that domain.
    let o = s.cli(&[
        "add",
        "from-primary.be.",
        "--reason",
        "phishing (test)",
        "--case",
        "F-1",
        "--by",
        "t",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let changed2 = with_serial(&changed, 2026112411).replace(
        &format!("from-primary 3600 IN DS 4711 13 2 {}", "CD".repeat(32)),
        &format!("from-primary 3600 IN DS 4712 13 2 {}", "EF".repeat(32)),
    );
    knot.publish(&changed2);
    wait_for(&s, "the second change", || {
        s.log_text().matches("by IXFR").count() >= 2
    });
    let out = s.dig("+dnssec from-primary.be A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("EDE: 15"), "{out}");
}

#[test]
fn with_nothing_on_disk_the_first_version_comes_by_axfr() {
    let knot = Knot::start(&with_serial(&sample(), 2026112420));
    let (mut s, _keys) = follower("follow-axfr", &knot);
    s.kill9();
    std::fs::remove_file(s.dir.0.join("be.zone")).unwrap();
    std::fs::remove_dir_all(s.dir.0.join("state")).unwrap();
    s.spawn();
    let log = s.log_text();
    assert!(log.contains("by AXFR"), "{log}");
    assert!(s.delv("secure.be DS").contains("fully validated"));
    let m = s.udp("be.", Rtype::SOA, false);
    assert_eq!(belfry::zone::soa_serial(&m.answer[0].rdata), 2026112420);
}

#[test]
fn a_notify_from_the_primary_is_followed_at_once() {
    let knot = Knot::start(&sample());
    // An hour between SOA checks: only the NOTIFY can bring the change in time.
    let (s, _keys) = follower_with(
        "follow-notify",
        &knot,
        3600,
        "[[acl.notify]]\nfrom = [\"127.0.0.1\"]\n",
    );
    knot.notify_to(s.addr());
    let changed =
        with_serial(&sample(), 2026112430) + "\nby-notify 3600 IN NS ns1.example-hosting.net.\n";
    let t = Instant::now();
    knot.publish(&changed);
    wait_for(&s, "the change announced by NOTIFY", || {
        status(&s.dig("by-notify.be NS")) == "NOERROR"
    });
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    let log = s.log_text();
    assert!(log.contains("NOTIFY from 127.0.0.1"), "{log}");
    assert!(s.delv("by-notify.be DS").contains("fully validated"));
}
