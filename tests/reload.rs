//! Zone reloads against a running server: what changed is served, signed and
//! validated, nothing else is re-signed, broken or abnormal zones are refused, and
//! suppressions stay in force. Checked with dig, delv and a validating unbound.

mod common;

use belfry::wire::decode::Message;
use belfry::wire::Rtype;
use common::*;
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

fn reload(s: &Server, force: bool) -> std::process::Output {
    let mut c = std::process::Command::new(bin());
    c.arg("reload").arg("--config").arg(&s.config);
    if force {
        c.arg("--force");
    }
    c.output().unwrap()
}

fn zone_text(s: &Server) -> String {
    std::fs::read_to_string(s.dir.0.join("be.zone")).unwrap()
}

fn write_zone(s: &Server, text: &str) {
    std::fs::write(s.dir.0.join("be.zone"), text).unwrap();
}

fn serial(s: &Server) -> u32 {
    let m = s.udp("be.", Rtype::SOA, false);
    belfry::zone::soa_serial(&m.answer[0].rdata)
}

fn made(s: &Server) -> u64 {
    s.status()["signatures_made"].as_u64().unwrap()
}

fn wait_fully_signed(s: &Server) {
    for _ in 0..200 {
        if s.status()["fully_signed"].as_bool() == Some(true) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not fully signed: {}", s.log_text());
}

/// A DS record for a name (made-up digest, valid syntax).
fn ds(tag: u16) -> String {
    format!("{tag} 13 2 {}", "AB".repeat(32))
}

#[test]
fn a_reload_publishes_what_changed_and_only_signs_that() {
    let s = Server::start("reload", Opts::default());
    wait_fully_signed(&s);
    let serial0 = serial(&s);
    let before = made(&s);
    let mut z = zone_text(&s);
    // Added: a secure and an insecure delegation, one with in-bailiwick glue.
    z.push_str(&format!(
        "\nnew-secure 3600 IN NS ns1.new-secure.be.\nns1.new-secure 3600 IN A 192.0.2.201\nnew-secure 3600 IN DS {}\nnew-insecure 3600 IN NS ns1.example-hosting.net.\n",
        ds(4242)
    ));
    // Changed: secure.be gets another DS, insecure.be becomes secure, glue of glued.be moves.
    z = z.replace(
        "insecure      NS  ns2.example-hosting.net.\n",
        &format!(
            "insecure      NS  ns2.example-hosting.net.\ninsecure      DS  {}\n",
            ds(777)
        ),
    );
    z = z.replace(
        "ns2.glued     A     198.51.100.11",
        "ns2.glued     A     198.51.100.99",
    );
    // Removed: a secure delegation and an insecure one.
    z = z.replace("kidsbank.be. 3600 IN NS ns1.provider7hosting.net.\n", "");
    z = z.replace("kidsbank.be. 3600 IN NS ns2.provider7hosting.net.\n", "");
    z = z.replace(
        "kidsbank.be. 3600 IN DS 62647 13 2 DB741A63DB917C30B10340F53BA76E6DC8E69AA159E25C9F2E4009BC3D5EE847\n",
        "",
    );
    z = z.replace("bouwteam.be. 3600 IN NS ns1.provider2dns.eu.\n", "");
    z = z.replace("bouwteam.be. 3600 IN NS ns2.provider2dns.eu.\n", "");
    write_zone(&s, &z);
    let out = ok(&reload(&s, false));
    assert!(out.contains("names changed"), "{out}");
    let serial1 = serial(&s);
    assert!(serial1 != serial0, "new serial");
    // Only the changed RRsets and their NSEC3 neighbours were signed: a handful, not the zone.
    let signed = made(&s) - before;
    assert!(
        signed > 0 && signed < 60,
        "{signed} signatures for a small reload"
    );
    // Every kind of answer around the change validates.
    for q in [
        "new-secure.be DS",
        "new-insecure.be DS",
        "insecure.be DS",
        "secure.be DS",
        "kidsbank.be A",
        "bouwteam.be A",
        "be SOA",
        "nothing-here.be A",
    ] {
        let out = s.delv(q);
        assert!(validated(&out), "{q}: {out}");
    }
    assert_eq!(status(&s.dig("kidsbank.be A")), "NXDOMAIN");
    assert_eq!(status(&s.dig("bouwteam.be A")), "NXDOMAIN");
    let out = s.dig("+dnssec www.new-secure.be A");
    let add = section(&out, "ADDITIONAL");
    assert!(
        add.iter()
            .any(|r| r.0 == "ns1.new-secure.be." && r.2.contains("192.0.2.201")),
        "{out}"
    );
    let out = s.dig("www.glued.be A");
    assert!(out.contains("198.51.100.99"), "moved glue: {out}");
    let out = s.dig("+dnssec insecure.be DS");
    assert!(out.contains("IN\tDS"), "{out}");
    // A validating resolver agrees.
    let u = Unbound::start(&s);
    for q in [
        "new-secure.be DS",
        "insecure.be DS",
        "kidsbank.be DS",
        "be SOA",
    ] {
        let out = u.dig(q);
        assert_ne!(status(&out), "SERVFAIL", "{q}: {out}\n{}", u.log());
    }
    // Reloading the same file again changes nothing.
    let o = reload(&s, false);
    assert!(!o.status.success(), "an unchanged file is not a change");
    assert_eq!(serial(&s), serial1);
}

#[test]
fn broken_and_abnormal_zones_are_refused_and_the_old_one_served() {
    let s = Server::start("reload-bad", Opts::default());
    let serial0 = serial(&s);
    let good = zone_text(&s);
    // A broken zone: an error naming the file and line; the old zone stays.
    write_zone(&s, &format!("{good}\nbroken.be. 3600 IN NS\n"));
    let o = reload(&s, false);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success());
    assert!(text.contains("be.zone:"), "{text}");
    assert_eq!(serial(&s), serial0);
    assert_eq!(status(&s.dig("secure.be NS")), "NOERROR");
    // A zone removing more than 2 % of the delegations: refused unless forced.
    // Forty generated delegations (absolute owners, no glue below them) go, NS and DS.
    let mut gone = std::collections::BTreeSet::new();
    for l in good.lines() {
        let t: Vec<&str> = l.split_whitespace().collect();
        if gone.len() < 40
            && t.len() == 5
            && t[3] == "NS"
            && t[0].ends_with(".be.")
            && t[0].matches('.').count() == 2
            && !t[4].ends_with(t[0])
        {
            gone.insert(t[0].to_string());
        }
    }
    let mut cut = String::new();
    for l in good.lines() {
        if l.split_whitespace()
            .next()
            .is_some_and(|o| gone.contains(o))
        {
            continue;
        }
        cut.push_str(l);
        cut.push('\n');
    }
    write_zone(&s, &cut);
    let o = reload(&s, false);
    let text = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "abnormal change applied");
    assert!(text.contains("delegations"), "{text}");
    assert_eq!(serial(&s), serial0);
    let out = ok(&reload(&s, true));
    assert!(out.contains("names changed"), "{out}");
    assert_ne!(serial(&s), serial0);
    let audit = std::fs::read_to_string(s.dir.0.join("audit.log")).unwrap();
    assert!(audit.contains("\"action\":\"reload\""), "{audit}");
}

#[test]
fn a_suppressed_domain_stays_suppressed_across_a_reload() {
    let s = Server::start("reload-sup", Opts::default());
    let o = s.cli(&[
        "add",
        "secure.be.",
        "--reason",
        "phishing (test)",
        "--case",
        "R-1",
        "--by",
        "t",
    ]);
    ok(&o);
    let mut z = zone_text(&s);
    // The new zone still delegates secure.be (with another DS) and changes something else.
    z = z.replace(
        "secure        DS  31589 13 2 3490A6806D47F17A34C29E2CE80E8A999FFBE4BE0F3A4A8D1C3B5F5E7D9C0B1A",
        &format!("secure        DS  {}", ds(1111)),
    );
    z.push_str("\nanother-new 3600 IN NS ns1.example-hosting.net.\n");
    write_zone(&s, &z);
    ok(&reload(&s, false));
    let out = s.dig("+dnssec secure.be A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("EDE: 15"), "{out}");
    assert!(validated(&s.delv("secure.be A")));
    // Lifted: the delegation comes back with the DS of the new zone.
    let o = s.cli(&["remove", "secure.be.", "--reason", "ok", "--by", "t"]);
    ok(&o);
    let m = s.udp("secure.be.", Rtype::DS, true);
    let dss = Message::of(&m.answer, Rtype::DS);
    assert_eq!(dss.len(), 1);
    assert_eq!(u16::from_be_bytes([dss[0].rdata[0], dss[0].rdata[1]]), 1111);
    assert!(validated(&s.delv("secure.be DS")));
}

#[test]
fn kill_dash_nine_after_a_reload_serves_the_same_serial_and_records() {
    let mut s = Server::start("reload-kill", Opts::default());
    wait_fully_signed(&s);
    let mut z = zone_text(&s);
    z.push_str("\nafter-kill 3600 IN NS ns1.example-hosting.net.\n");
    write_zone(&s, &z);
    ok(&reload(&s, false));
    let serial1 = serial(&s);
    let before = s.dig("+dnssec after-kill.be A");
    s.kill9();
    s.spawn();
    assert_eq!(serial(&s), serial1);
    let after = s.dig("+dnssec after-kill.be A");
    let strip = |t: &str| {
        t.lines()
            .filter(|l| {
                !l.starts_with(";;") && !l.starts_with("; <<>>") && !l.starts_with("; COOKIE")
            })
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&before), strip(&after), "same records and signatures");
    assert!(validated(&s.delv("after-kill.be DS")));
}

/// Send one unsigned dynamic update with `nsupdate` (the server allows 127.0.0.1).
fn nsupdate(s: &Server, body: &str) -> String {
    use std::io::Write;
    require("nsupdate");
    let mut child = std::process::Command::new("nsupdate")
        .args(["-t", "5"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!("server 127.0.0.1 {}\nzone be.\n{body}\nsend\n", s.port);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nsupdate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn updatable(tag: &str) -> Server {
    Server::start(
        tag,
        Opts {
            extra_config: "[[acl.update]]\nfrom = [\"127.0.0.1\"]\n".into(),
            ..Opts::default()
        },
    )
}

/// The SOA serial an answer carries (answer or authority section), if any.
fn serial_in(m: &Message) -> Option<u32> {
    m.answer
        .iter()
        .chain(m.authority.iter())
        .find(|r| r.rtype == Rtype::SOA)
        .map(|r| belfry::zone::soa_serial(&r.rdata))
}

#[test]
fn answers_stay_whole_and_verified_while_reloads_updates_and_suppressions_interleave() {
    let s = updatable("reload-mix");
    wait_fully_signed(&s);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let names: Vec<(String, Rtype)> = [
        ("secure.be.", Rtype::DS),
        ("www.secure.be.", Rtype::A),
        ("insecure.be.", Rtype::DS),
        ("www.glued.be.", Rtype::A),
        ("nothing-here.be.", Rtype::A),
        ("be.", Rtype::SOA),
        ("mix-0.be.", Rtype::DS),
        ("upd-0.be.", Rtype::DS),
        ("www.mix-1.be.", Rtype::A),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), *t))
    .collect();
    let answered = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        // Two clients query with DO=1 all the time: every RRSIG in every answer must
        // verify against the served DNSKEYs (hickory), every RRset must be signed, and
        // the serials a client sees never go back.
        for c in 0..2 {
            let (s, names, stop, answered) = (&s, &names, &stop, &answered);
            sc.spawn(move || {
                let mut last = 0u32;
                let mut i = c;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (n, t) = &names[i % names.len()];
                    i += 1;
                    let a = s.ask(n, *t, Some((4096, true)), i % 5 == 0);
                    common::oracle::assert_signed_rrsets(&a.hickory);
                    assert!(
                        a.ours.rcode == 0 || a.ours.rcode == 3,
                        "{n} {t:?}: rcode {}",
                        a.ours.rcode
                    );
                    if let Some(x) = serial_in(&a.ours) {
                        assert!(
                            x == last || belfry::serial::serial_gt(x, last) || last == 0,
                            "{n}: serial went back from {last} to {x}"
                        );
                        last = x;
                    }
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        // Meanwhile: reloads, updates, suppressions and lifts, one after another (a
        // failure stops the clients before it is reported, so the test never hangs).
        let base = zone_text(&s);
        let changes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for round in 0..4 {
                let mut z = base.clone();
                for k in 0..=round {
                    z.push_str(&format!(
                    "\nmix-{k} 3600 IN NS ns1.mix-{k}.be.\nns1.mix-{k} 3600 IN A 192.0.2.{}\nmix-{k} 3600 IN DS {}\n",
                    10 + k,
                    ds(3000 + k as u16)
                ));
                }
                write_zone(&s, &z);
                ok(&reload(&s, false));
                nsupdate(
                &s,
                &format!(
                    "update add upd-{round}.be. 3600 NS ns1.example-hosting.net.\nupdate add upd-{round}.be. 3600 DS {}",
                    ds(5000 + round as u16)
                ),
            );
                ok(&s.cli(&[
                    "add",
                    "secure.be",
                    "--reason",
                    "mix",
                    "--case",
                    "C-mix",
                    "--by",
                    "t",
                ]));
                ok(&s.cli(&["remove", "secure.be", "--reason", "mix", "--by", "t"]));
            }
        }));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = changes {
            std::panic::resume_unwind(e);
        }
    });
    let n = answered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n > 50, "only {n} answers checked");
    // The end state is what the last changes said, and it validates.
    assert!(validated(&s.delv("mix-3.be DS")));
    assert!(validated(&s.delv("upd-3.be DS")));
    assert!(validated(&s.delv("secure.be DS")));
}

#[test]
fn kill_dash_nine_after_an_update_and_a_bulk_suppression_loses_nothing() {
    let mut s = updatable("reload-kill-mix");
    wait_fully_signed(&s);
    nsupdate(
        &s,
        &format!(
            "update add killed-upd.be. 3600 NS ns1.example-hosting.net.\nupdate add killed-upd.be. 3600 DS {}",
            ds(6001)
        ),
    );
    // A bulk suppression: many names in one change.
    let entries: Vec<String> = (0..200)
        .map(|i| format!("{{\"domain\":\"bulk-{i}.be\",\"reason\":\"r\",\"case\":\"c\"}}"))
        .chain(std::iter::once(
            "{\"domain\":\"insecure.be\",\"reason\":\"r\",\"case\":\"c\"}".to_string(),
        ))
        .collect();
    let body = format!("{{\"actor\":\"t\",\"entries\":[{}]}}", entries.join(","));
    let (st, b) = s.api("POST", "/v1/suppressions", Some(&body), Some(TOKEN));
    assert_eq!(st, 200, "{b}");
    let serial1 = serial(&s);
    let before: Vec<String> = ["killed-upd.be DS", "insecure.be A", "be SOA"]
        .iter()
        .map(|q| s.dig(&format!("+dnssec +noall +answer +authority {q}")))
        .collect();
    s.kill9();
    s.spawn();
    assert_eq!(
        serial(&s),
        serial1,
        "the last acknowledged serial is served"
    );
    let after: Vec<String> = ["killed-upd.be DS", "insecure.be A", "be SOA"]
        .iter()
        .map(|q| s.dig(&format!("+dnssec +noall +answer +authority {q}")))
        .collect();
    assert_eq!(before, after, "same records and signatures after kill -9");
    assert_eq!(status(&s.dig("insecure.be A")), "NXDOMAIN");
    assert!(validated(&s.delv("killed-upd.be DS")));
    assert!(validated(&s.delv("insecure.be A")));
}
