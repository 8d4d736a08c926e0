//! The live suppression list against a running server: dig, delv, unbound, the API, crashes.

mod common;

use belfry::dnssec::chain::Chain;
use belfry::dnssec::nsec3hash::{base32hex_decode, nsec3_hash};
use belfry::dnssec::rrsig::verify_rrsig;
use belfry::wire::decode::Message;
use belfry::wire::Rtype;
use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn validated(out: &str) -> bool {
    out.contains("fully validated")
}

fn ok(o: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

fn add(s: &Server, domains: &[&str]) {
    let mut args = vec!["add"];
    args.extend_from_slice(domains);
    args.extend([
        "--reason",
        "phishing (test)",
        "--case",
        "RVK-1",
        "--by",
        "tester",
    ]);
    ok(&s.cli(&args));
}

fn remove(s: &Server, domains: &[&str]) {
    let mut args = vec!["remove"];
    args.extend_from_slice(domains);
    args.extend(["--reason", "restored (test)", "--by", "tester"]);
    ok(&s.cli(&args));
}

/// Names of the chain neighbours (predecessor, successor) of a secure delegation.
fn chain_neighbours(s: &Server, name: &str) -> (String, String) {
    let zone = belfry::zone::load_file(&s.dir.0.join("be.zone"), &wire("be.")).unwrap();
    let chain = Chain::build(
        &zone,
        Default::default(),
        &belfry::publish::edit::APEX_EXTRA,
    )
    .unwrap();
    let all: Vec<_> = chain.positions().collect();
    let h = nsec3_hash(&wire(name), &[], 0);
    let i = all.iter().position(|&p| chain.hash(p) == &h).unwrap();
    let n = all.len();
    let text =
        |k: usize| belfry::name::to_text(&belfry::zone::key_to_wire(chain.owner_key(all[k])));
    (text((i + n - 1) % n), text((i + 1) % n))
}

#[test]
fn suppressed_domains_answer_signed_nxdomain_with_ede() {
    let s = Server::start("effect", Opts::default());
    let serial0 = s.udp("be.", Rtype::SOA, false).answer[0].rdata.clone();
    add(
        &s,
        &["secure.be.", "insecure.be.", "not-yet-registered.be."],
    );
    for name in [
        "secure.be",
        "www.secure.be",
        "insecure.be",
        "mail.insecure.be",
        "not-yet-registered.be",
    ] {
        let out = s.dig(&format!("+dnssec {name} A"));
        assert_eq!(status(&out), "NXDOMAIN", "{name}: {out}");
        assert!(
            out.contains("EDE: 15 (Blocked): (suspended by the registry)"),
            "{name}: {out}"
        );
        let out = s.delv(&format!("{name} A"));
        assert!(
            out.contains("fully validated") && out.contains("nxdomain"),
            "{name}: {out}"
        );
    }
    let out = s.dig("secure.be DS");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(
        !out.contains("IN\tNS\t") && !out.contains("IN\tDS\t"),
        "no NS/DS served: {out}"
    );
    // Glue of a suppressed delegation is gone, glue other delegations need stays.
    add(&s, &["glued.be."]);
    let out = s.dig("shared-glue.be NS");
    assert!(
        out.contains("ns1.glued.be.")
            && section(&out, "ADDITIONAL")
                .iter()
                .any(|r| r.0 == "ns1.glued.be."),
        "{out}"
    );
    // Served as if the delegation were withdrawn: the host another domain needs
    // stays answerable (signed, authoritative), the domain itself is an empty
    // non-terminal with the EDE, and a host nobody else uses is gone.
    let out = s.dig("+dnssec ns1.glued.be A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(flags(&out).contains(&"aa".to_string()), "{out}");
    assert!(section(&out, "ANSWER").iter().any(|r| r.1 == "A"), "{out}");
    assert!(validated(&s.delv("ns1.glued.be A")));
    let out = s.dig("glued.be A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(out.contains("EDE: 15 (Blocked)"), "{out}");
    assert!(section(&out, "ANSWER").is_empty(), "{out}");
    assert_eq!(status(&s.dig("ns2.glued.be A")), "NXDOMAIN");
    assert_eq!(status(&s.dig("www.glued.be A")), "NXDOMAIN");
    // The serial moved on.
    let serial1 = s.udp("be.", Rtype::SOA, false).answer[0].rdata.clone();
    assert_ne!(serial0, serial1);
    // Neighbours in the NSEC3 chain still validate.
    let (pred, succ) = chain_neighbours(&s, "secure.be.");
    for n in [pred, succ] {
        let out = s.delv(&format!("{n} DS"));
        assert!(out.contains("fully validated"), "{n}: {out}");
    }
    // Lift: the delegation is back, with a valid DS.
    remove(&s, &["secure.be.", "glued.be."]);
    let out = s.delv("secure.be DS");
    assert!(
        out.contains("fully validated") && out.contains("IN\tDS"),
        "{out}"
    );
    assert_eq!(status(&s.dig("www.secure.be A")), "NOERROR");
    let audit = std::fs::read_to_string(s.dir.0.join("audit.log")).unwrap();
    assert!(
        audit.contains("\"action\":\"add\"") && audit.contains("\"action\":\"remove\""),
        "{audit}"
    );
    assert!(
        audit.contains("\"case\":\"RVK-1\"") && audit.contains("\"actor\":\"tester\""),
        "{audit}"
    );
}

#[test]
fn unbound_gets_nxdomain_then_the_delegation_back() {
    require("unbound");
    let s = Server::start("unbound-sup", Opts::default());
    add(&s, &["secure.be.", "insecure.be."]);
    {
        let u = Unbound::start(&s);
        for q in ["secure.be DS", "www.secure.be A", "insecure.be A"] {
            let out = u.dig(q);
            assert_eq!(status(&out), "NXDOMAIN", "{q}: {out}\n{}", u.log());
        }
        // Under opt-out every NSEC3 has the opt-out flag, so validators treat an NXDOMAIN
        // as insecure (not bogus): NXDOMAIN without AD, never SERVFAIL. The SOA still validates.
        let out = u.dig("be SOA");
        assert!(flags(&out).contains(&"ad".to_string()), "{out}");
    }
    remove(&s, &["secure.be.", "insecure.be."]);
    let u = Unbound::start(&s);
    let out = u.dig("secure.be DS");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(
        flags(&out).contains(&"ad".to_string()) && out.contains("DS"),
        "{out}"
    );
}

#[test]
fn bad_input_changes_nothing() {
    let s = Server::start("bad", Opts::default());
    add(&s, &["secure.be."]);
    let list_before = s.list_file();
    for (args, want) in [
        (
            vec!["add", "a..be.", "--reason", "r", "--case", "c"],
            "empty label",
        ),
        (vec!["add", "be.", "--reason", "r", "--case", "c"], "apex"),
        (
            vec!["add", "example.com.", "--reason", "r", "--case", "c"],
            "outside the zone",
        ),
        (
            vec!["add", "secure.be.", "--reason", "r", "--case", "c"],
            "already suppressed",
        ),
        (
            vec!["add", "www.glued.be.", "--reason", "r", "--case", "c"],
            "below the delegation",
        ),
        (
            vec!["remove", "insecure.be.", "--reason", "r"],
            "not on the suppression list",
        ),
        (
            vec!["add", "x.be.", "y..be.", "--reason", "r", "--case", "c"],
            "empty label",
        ),
    ] {
        let o = s.cli(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
    // All or nothing: x.be. was not added by the failed bulk change.
    assert_eq!(status(&s.dig("x.be A")), "NXDOMAIN");
    assert!(!s.dig("x.be A").contains("EDE"));
    assert_eq!(s.list_file(), list_before);
    // Missing and wrong tokens: 401 and an audit line.
    assert_eq!(s.api("GET", "/v1/suppressions", None, None).0, 401);
    assert_eq!(
        s.api(
            "POST",
            "/v1/suppressions",
            Some("{}"),
            Some("wrong-token-wrong-token")
        )
        .0,
        401
    );
    let audit = std::fs::read_to_string(s.dir.0.join("audit.log")).unwrap();
    assert_eq!(audit.matches("auth-failed").count(), 2, "{audit}");
    // A broken hand edit is rejected; the list in force stays.
    let written = s.list_file();
    std::fs::write(
        s.dir.0.join("suppressions.toml"),
        "[[suppression]]\ndomain = \"insecure.be.\"\nreason = 5\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        s.log_text().contains("suppressions.toml:3:"),
        "{}",
        s.log_text()
    );
    assert_eq!(status(&s.dig("secure.be A")), "NXDOMAIN");
    assert_eq!(status(&s.dig("insecure.be A")), "NOERROR");
    // A good hand edit (made from the file the server wrote: its serial, its end line) is applied.
    let good = written.replace(
        "# end of list",
        "[[suppression]]\ndomain = \"insecure.be.\"\nreason = \"hand edit\"\ncase = \"C9\"\n# end of list",
    );
    std::fs::write(s.dir.0.join("suppressions.toml"), good).unwrap();
    let t = std::time::Instant::now();
    while status(&s.dig("insecure.be A")) != "NXDOMAIN" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "hand edit not applied: {}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        status(&s.dig("www.secure.be A")),
        "NXDOMAIN",
        "secure.be stays suppressed"
    );
}

#[test]
fn expiry_lifts_by_itself_and_the_list_survives_restart() {
    let mut s = Server::start("expiry", Opts::default());
    let when = belfry::suppress::list::format_time(belfry::suppress::list::now_secs() + 3);
    let body = format!(
        "{{\"actor\":\"t\",\"entries\":[{{\"domain\":\"secure.be.\",\"reason\":\"r\",\"case\":\"c\",\"expires\":\"{when}\"}},{{\"domain\":\"insecure.be.\",\"reason\":\"r\",\"case\":\"c\",\"ede\":\"censored\"}}]}}"
    );
    let (st, b) = s.api("POST", "/v1/suppressions", Some(&body), Some(TOKEN));
    assert_eq!(st, 200, "{b}");
    assert_eq!(status(&s.dig("secure.be A")), "NXDOMAIN");
    assert!(s.dig("insecure.be A").contains("EDE: 16 (Censored)"));
    let (st, b) = s.api("GET", "/v1/suppressions/insecure.be", None, Some(TOKEN));
    assert!(st == 200 && b.contains("censored"), "{b}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        status(&s.dig("secure.be A")),
        "NOERROR",
        "expired entry lifted"
    );
    let audit = std::fs::read_to_string(s.dir.0.join("audit.log")).unwrap();
    assert!(audit.contains("\"action\":\"expire\""), "{audit}");
    let serial = s.udp("be.", Rtype::SOA, false).answer[0].rdata.clone();
    s.kill9();
    s.spawn();
    assert_eq!(
        status(&s.dig("insecure.be A")),
        "NXDOMAIN",
        "survives restart"
    );
    assert_eq!(status(&s.dig("secure.be A")), "NOERROR");
    assert_eq!(
        s.udp("be.", Rtype::SOA, false).answer[0].rdata,
        serial,
        "serial kept"
    );
}

#[test]
fn kill_dash_nine_during_changes_never_corrupts_the_list() {
    let mut s = Server::start("crash", Opts::default());
    for round in 0..4 {
        let stop = Arc::new(AtomicBool::new(false));
        let port = s.admin_port;
        let st = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut i = 0;
            while !st.load(Ordering::Relaxed) {
                let body = format!(
                    "{{\"actor\":\"t\",\"entries\":[{{\"domain\":\"crash{round}-{i}.be.\",\"reason\":\"r\",\"case\":\"c\"}}]}}"
                );
                let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    break;
                };
                use std::io::Write;
                let _ = write!(
                    c,
                    "POST /v1/suppressions HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut sink = String::new();
                use std::io::Read;
                let _ = c.read_to_string(&mut sink);
                i += 1;
            }
        });
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        s.kill9();
        stop.store(true, Ordering::Relaxed);
        let _ = writer.join();
        let text = std::fs::read_to_string(s.dir.0.join("suppressions.toml")).unwrap();
        let list = belfry::suppress::list::parse(&s.dir.0.join("suppressions.toml"), &text)
            .unwrap_or_else(|e| panic!("corrupt list after kill -9: {e}\n{text}"));
        s.spawn();
        for e in &list.entries {
            assert_eq!(
                status(&s.dig(&format!("{} A", e.domain))),
                "NXDOMAIN",
                "{}",
                e.domain
            );
        }
    }
}

/// Answers stay verifiable while suppressions come and go.
#[test]
fn no_bogus_answer_while_the_list_changes() {
    let s = Arc::new(Server::start("concurrency", Opts::default()));
    let dnskeys: Vec<Vec<u8>> =
        Message::of(&s.udp("be.", Rtype::DNSKEY, true).answer, Rtype::DNSKEY)
            .iter()
            .map(|r| r.rdata.clone())
            .collect();
    let secure_h = nsec3_hash(&wire("secure.be."), &[], 0);
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the readers even if an assertion below fails, so the server is not left running.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    let answered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for t in 0..2 {
        let (s, stop, answered, dnskeys) =
            (s.clone(), stop.clone(), answered.clone(), dnskeys.clone());
        readers.push(std::thread::spawn(move || {
            let names = ["secure.be.", "www.secure.be.", "insecure.be.", "glued.be."];
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let name = names[i % names.len()];
                i += 1;
                let m = s.udp(name, if i % 2 == 0 { Rtype::DS } else { Rtype::A }, true);
                answered.fetch_add(1, Ordering::Relaxed);
                // Every signed RRset in the answer verifies.
                for sec in [&m.answer, &m.authority] {
                    for sig in sec.iter().filter(|r| r.rtype == Rtype::RRSIG) {
                        let covered = Rtype(u16::from_be_bytes([sig.rdata[0], sig.rdata[1]]));
                        let set: Vec<&[u8]> = sec
                            .iter()
                            .filter(|r| {
                                r.rtype == covered && r.owner.eq_ignore_ascii_case(&sig.owner)
                            })
                            .map(|r| r.rdata.as_slice())
                            .collect();
                        let mut owner = sig.owner.clone();
                        belfry::name::lowercase_in_place(&mut owner);
                        let set: Vec<Vec<u8>> = set
                            .iter()
                            .map(|r| belfry::dnssec::canonical_rdata(covered, r))
                            .collect();
                        let refs: Vec<&[u8]> = set.iter().map(|r| r.as_slice()).collect();
                        assert!(
                            dnskeys
                                .iter()
                                .any(|k| verify_rrsig(k, &sig.rdata, &owner, 1, &refs)),
                            "bogus signature in answer for {name}"
                        );
                    }
                }
                // A denial never contains an NSEC3 proving secure.be exists.
                if m.rcode == 3 {
                    for r in Message::of(&m.authority, Rtype::NSEC3) {
                        let own = base32hex_decode(&r.owner[1..33]).unwrap();
                        assert_ne!(own, secure_h, "NXDOMAIN with the old chain for {name}");
                    }
                }
            }
        }));
    }
    for _ in 0..15 {
        add(&s, &["secure.be.", "insecure.be."]);
        remove(&s, &["secure.be.", "insecure.be."]);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(answered.load(Ordering::Relaxed) > 50);
}

#[test]
fn broken_list_at_start_is_an_error_with_file_and_line() {
    let mut s = Server::start("startlist", Opts::default());
    s.kill9();
    std::fs::write(s.dir.0.join("suppressions.toml"), "serial = 1\n[[suppression]]\ndomain = \"x.be.\"\nreason = \"r\"\ncase = \"c\"\nadded_by = \"a\"\nadded_at = \"not a time\"\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("suppressions.toml:2:") && err.contains("added_at"),
        "{err}"
    );
    // A first start (no published state yet) takes the list file as it is.
    let _ = std::fs::remove_dir_all(s.dir.0.join("state"));
    std::fs::write(s.dir.0.join("suppressions.toml"), "[[suppression]]\ndomain = \"www.glued.be.\"\nreason = \"r\"\ncase = \"c\"\nadded_by = \"a\"\nadded_at = \"2026-01-01T00:00:00Z\"\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("suppressions.toml")
            && err.contains("below the delegation"),
        "{err}"
    );
}

#[test]
fn deep_unregistered_name_gets_a_valid_denial() {
    let s = Server::start("deep", Opts::default());
    add(&s, &["shop.not-there.be."]);
    for q in ["shop.not-there.be A", "www.shop.not-there.be A"] {
        let out = s.dig(&format!("+dnssec {q}"));
        assert_eq!(status(&out), "NXDOMAIN", "{out}");
        assert!(out.contains("EDE: 15"), "{out}");
        let out = s.delv(q);
        assert!(out.contains("fully validated"), "{q}: {out}");
    }
}
