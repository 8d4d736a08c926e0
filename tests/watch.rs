//! Watch lists against a running server: a listed name that a reload or a
//! dynamic update delegates raises an alert (audit line, WARN log line, metric,
//! webhook received by a local HTTP receiver, once) or is suppressed in the same
//! change (the first answer is already NXDOMAIN with EDE, delv validates it, and
//! a prober querying during the change never sees a referral); a bad list file
//! is refused naming file:line with the old list kept; `belfry watch check`
//! lists exactly the listed names present.

mod common;

use belfry::wire::decode::{build_query, decode};
use belfry::wire::Rtype;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";

fn ok(o: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

fn belfry(s: &Server, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(bin());
    c.args(args).arg("--config").arg(&s.config);
    c.output().unwrap()
}

fn add_to_zone(s: &Server, lines: &str) {
    let p = s.dir.0.join("be.zone");
    let mut z = std::fs::read_to_string(&p).unwrap();
    z.push('\n');
    z.push_str(lines);
    std::fs::write(&p, z).unwrap();
}

fn audit(s: &Server) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.dir.0.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn metric(s: &Server, needle: &str) -> Option<u64> {
    let (code, text) = s.api("GET", "/metrics", None, Some(TOKEN));
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn watch_config(lists: &[(&str, &str, &str)], webhook: Option<String>) -> String {
    let mut c = String::new();
    for (name, file, policy) in lists {
        c.push_str(&format!(
            "[[watch.list]]\nname = \"{name}\"\nfile = \"{file}\"\npolicy = \"{policy}\"\n"
        ));
        if *policy == "suppress" {
            c.push_str("ede = \"censored\"\n");
        }
        if let Some(w) = &webhook {
            c.push_str(&format!("webhook = \"{w}\"\n"));
        }
    }
    c
}

/// A tiny HTTP receiver: each request's body is sent on the channel; the first
/// request is answered 503 when `fail_first` (to exercise the retry), the rest 200.
fn receiver(fail_first: bool) -> (String, mpsc::Receiver<(String, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook/iwf", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut n = 0;
        for c in l.incoming() {
            let Ok(c) = c else { return };
            n += 1;
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            let mut first = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if first.is_empty() {
                    first = line.trim().to_string();
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let mut c = c;
            if fail_first && n == 1 {
                let _ = c.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx
                .send((first, String::from_utf8_lossy(&body).into_owned()))
                .is_err()
            {
                return;
            }
        }
    });
    (url, rx)
}

/// Queries `name` A over UDP in a loop until stopped; counts answers that are
/// referrals to it (NS of the name in the authority section).
fn prober(
    port: u16,
    name: &'static str,
    stop: &AtomicBool,
    referrals: &AtomicUsize,
    answers: &AtomicUsize,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let qname = wire(name);
    let mut id = 1u16;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        id = id.wrapping_add(1);
        let q = build_query(id, &qname, Rtype::A, Some((1232, true)));
        sock.send_to(&q, ("127.0.0.1", port)).unwrap();
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Some(m) = decode(&buf[..n]) else { continue };
        if m.id != id {
            continue;
        }
        answers.fetch_add(1, Ordering::Relaxed);
        if m.authority.iter().any(|r| {
            r.rtype == Rtype::NS && belfry::name::key_of(&r.owner) == belfry::name::key_of(&qname)
        }) {
            referrals.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn assert_suppressed_and_validated(s: &Server, name: &str, code: &str) {
    let out = s.dig(&format!("+dnssec {name} A"));
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains(&format!("EDE: {code}")), "{out}");
    let v = s.delv(&format!("{name} A"));
    assert!(
        v.contains("fully validated") && v.contains("nxdomain"),
        "delv: {v}"
    );
}

#[test]
fn watch_alert_on_reload_audits_logs_counts_and_calls_the_webhook_once() {
    let (url, rx) = receiver(true);
    let s = Server::start(
        "watch-alert",
        Opts {
            files: vec![(
                "iwf.txt".into(),
                "# IWF TLD Hopping List\nhopping-alert.be. IWF ref-123\nnever-here.be. IWF ref-9\n"
                    .into(),
            )],
            extra_config: watch_config(&[("iwf-hopping", "iwf.txt", "alert")], Some(url)),
            ..Opts::default()
        },
    );
    assert_eq!(
        metric(
            &s,
            "belfry_watch_hits_total{list=\"iwf-hopping\",policy=\"alert\"}"
        ),
        Some(0)
    );
    add_to_zone(
        &s,
        "hopping-alert 3600 IN NS ns1.example-hosting.net.\nhopping-alert 3600 IN NS ns2.example-hosting.net.\n",
    );
    let out = ok(&belfry(&s, &["reload"]));
    assert!(
        out.contains("watch list 'iwf-hopping': hopping-alert.be. is delegated (alert)"),
        "{out}"
    );
    let serial = belfry::zone::soa_serial(&s.udp("be.", Rtype::SOA, false).answer[0].rdata);
    // The name is served as a delegation.
    let d = s.dig("+dnssec www.hopping-alert.be A");
    assert_eq!(status(&d), "NOERROR", "{d}");
    assert!(
        section(&d, "AUTHORITY")
            .iter()
            .any(|r| r.0 == "hopping-alert.be." && r.1 == "NS"),
        "{d}"
    );
    // The webhook: a 503 first, then retried; the JSON has the right fields.
    let (line, body) = rx.recv_timeout(Duration::from_secs(20)).expect("webhook");
    assert!(line.starts_with("POST /hook/iwf "), "{line}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["name"], "hopping-alert.be.");
    assert_eq!(j["list"], "iwf-hopping");
    assert_eq!(j["source"], "IWF");
    assert_eq!(j["reference"], "ref-123");
    assert_eq!(j["serial"].as_u64(), Some(serial as u64));
    assert_eq!(j["policy"], "alert");
    assert_eq!(j["via"], "reload");
    // One audit line, one WARN line, one count.
    let a: Vec<_> = audit(&s)
        .into_iter()
        .filter(|l| l["action"] == "watch-alert")
        .collect();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["actor"], "watch:iwf-hopping");
    assert_eq!(a[0]["domain"], "hopping-alert.be.");
    assert_eq!(a[0]["case"], "ref-123");
    assert_eq!(a[0]["serial"].as_u64(), Some(serial as u64));
    let log = s.log_text();
    assert_eq!(
        log.matches("watch list hit: hopping-alert.be.").count(),
        1,
        "{log}"
    );
    assert!(log.contains("WARN"), "{log}");
    assert_eq!(
        metric(
            &s,
            "belfry_watch_hits_total{list=\"iwf-hopping\",policy=\"alert\"}"
        ),
        Some(1)
    );
    // A later change that keeps the delegation (new NS set) raises nothing again.
    let p = s.dir.0.join("be.zone");
    let z = std::fs::read_to_string(&p)
        .unwrap()
        .replace("hopping-alert 3600 IN NS ns2.example-hosting.net.\n", "");
    std::fs::write(&p, z).unwrap();
    ok(&belfry(&s, &["reload"]));
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_err(),
        "a second webhook call"
    );
    assert_eq!(
        metric(
            &s,
            "belfry_watch_hits_total{list=\"iwf-hopping\",policy=\"alert\"}"
        ),
        Some(1)
    );
    assert_eq!(
        audit(&s)
            .iter()
            .filter(|l| l["action"] == "watch-alert")
            .count(),
        1
    );
}

#[test]
fn watch_suppress_on_reload_and_update_answers_nxdomain_from_the_first_query() {
    let s = Server::start(
        "watch-suppress",
        Opts {
            files: vec![(
                "iwf.txt".into(),
                "hopping-sample.be. IWF ref-1\nhopping-upd.be. IWF ref-2\n".into(),
            )],
            extra_config: format!(
                "{}[[tsig.key]]\nname = \"upd\"\nsecret = \"{SECRET}\"\n[[acl.update]]\nkey = \"upd\"\n",
                watch_config(&[("iwf-hopping", "iwf.txt", "suppress")], None)
            ),
            ..Opts::default()
        },
    );
    let stop = AtomicBool::new(false);
    let referrals = AtomicUsize::new(0);
    let answers = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        let port = s.port;
        let (st, re, an) = (&stop, &referrals, &answers);
        let h = sc.spawn(move || prober(port, "hopping-sample.be.", st, re, an));
        std::thread::sleep(Duration::from_millis(200));
        // A reload that delegates the listed name.
        add_to_zone(
            &s,
            "hopping-sample 3600 IN NS ns1.hopping-sample.be.\nns1.hopping-sample 3600 IN A 192.0.2.77\nhopping-sample 3600 IN DS 4242 13 2 ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\n",
        );
        let out = ok(&belfry(&s, &["reload"]));
        assert!(out.contains("suppressed pre-emptively"), "{out}");
        // The very first query after the reload returned.
        assert_suppressed_and_validated(&s, "hopping-sample.be", "16");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    });
    assert!(
        answers.load(Ordering::Relaxed) > 10,
        "the prober got answers"
    );
    assert_eq!(
        referrals.load(Ordering::Relaxed),
        0,
        "a referral to the listed name was served"
    );
    // Glue below it is withheld too.
    let out = s.dig("ns1.hopping-sample.be A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    // Audited with the list as actor, listed in the suppression list.
    let a: Vec<_> = audit(&s)
        .into_iter()
        .filter(|l| l["domain"] == "hopping-sample.be.")
        .collect();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["actor"], "watch:iwf-hopping");
    assert_eq!(a[0]["action"], "add");
    let (code, body) = s.api(
        "GET",
        "/v1/suppressions/hopping-sample.be",
        None,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("iwf-hopping:ref-1"), "{body}");
    assert_eq!(
        metric(
            &s,
            "belfry_watch_hits_total{list=\"iwf-hopping\",policy=\"suppress\"}"
        ),
        Some(1)
    );

    // A dynamic update that delegates the other listed name.
    require("nsupdate");
    let mut child = std::process::Command::new("nsupdate")
        .args(["-t", "5", "-y", &format!("hmac-sha256:upd:{SECRET}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!(
                "server 127.0.0.1 {}\nzone be.\nupdate add hopping-upd.be. 3600 NS ns1.example-hosting.net.\nupdate add hopping-upd.be. 3600 DS 4243 13 2 CDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCD\nsend\n",
                s.port
            )
            .as_bytes(),
        )
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_suppressed_and_validated(&s, "hopping-upd.be", "16");
    let out = s.dig("+dnssec hopping-upd.be DS");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert_eq!(
        metric(
            &s,
            "belfry_watch_hits_total{list=\"iwf-hopping\",policy=\"suppress\"}"
        ),
        Some(2)
    );
    // A restart (checkpoint and journal, the watched change replayed) keeps both suppressed.
    let mut s = s;
    assert!(s.terminate());
    s.spawn();
    assert_suppressed_and_validated(&s, "hopping-sample.be", "16");
    assert_suppressed_and_validated(&s, "hopping-upd.be", "16");
}

#[test]
fn watch_bad_list_names_file_and_line_and_keeps_the_old_list() {
    let s = Server::start(
        "watch-bad",
        Opts {
            files: vec![("alerts.txt".into(), "listed-one.be. DA a-1\n".into())],
            extra_config: watch_config(&[("domain-alerts", "alerts.txt", "alert")], None),
            ..Opts::default()
        },
    );
    let file = s.dir.0.join("alerts.txt");
    std::fs::write(
        &file,
        "listed-one.be. DA a-1\nlisted-two.be. DA a-2\na..name.be DA a-3\nbad_name.be\n",
    )
    .unwrap();
    // The API refuses with file:line of each bad line.
    let o = belfry(&s, &["watch", "reload"]);
    let text = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("alerts.txt:3:"), "{text}");
    assert!(text.contains("alerts.txt:4:"), "{text}");
    // SIGHUP too: logged, lists kept.
    s.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(1500));
    let log = s.log_text();
    assert!(
        log.contains("alerts.txt:3:") && log.contains("the lists in force stay"),
        "{log}"
    );
    // `belfry check` names the line too.
    let o = std::process::Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&s.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && text.contains("alerts.txt:3:"),
        "{text}"
    );
    // The old list is in force: listed-one alerts, listed-two (only in the bad file) does not.
    add_to_zone(
        &s,
        "listed-one 3600 IN NS ns1.example-hosting.net.\nlisted-two 3600 IN NS ns1.example-hosting.net.\n",
    );
    let out = ok(&belfry(&s, &["reload"]));
    assert!(out.contains("listed-one.be. is delegated (alert)"), "{out}");
    assert!(!out.contains("listed-two"), "{out}");
    // A good file is taken.
    std::fs::write(&file, "listed-two.be. DA a-2\nlisted-three.be\n").unwrap();
    let out = ok(&belfry(&s, &["watch", "reload"]));
    assert!(out.contains("domain-alerts: 2 names"), "{out}");
    assert!(audit(&s).iter().any(|l| l["action"] == "watch-reload"));
}

#[test]
fn watch_check_lists_exactly_the_listed_names_present() {
    let s = Server::start(
        "watch-check",
        Opts {
            files: vec![
                (
                    "iwf.txt".into(),
                    "secure.be. IWF r1\ninsecure.be IWF r2\nhopping-sample.be IWF r3\nnic.be IWF r4\nexample.com IWF r5\nglued.be IWF r6\nbe. IWF r7\n".into(),
                ),
                ("alerts.txt".into(), "shared-glue.be DA x\nabsent.be DA y\n".into()),
            ],
            extra_config: watch_config(
                &[("iwf", "iwf.txt", "alert"), ("alerts", "alerts.txt", "suppress")],
                None,
            ),
            ..Opts::default()
        },
    );
    // glued.be is suppressed by an operator: still a delegation in the zone's data.
    let o = s.cli(&["add", "glued.be", "--reason", "test", "--case", "C-1"]);
    ok(&o);
    let o = belfry(&s, &["watch", "check"]);
    let text = ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "alerts\tshared-glue.be.\tDA\tx",
            "iwf\tglued.be.\tIWF\tr6\tsuppressed",
            "iwf\tinsecure.be.\tIWF\tr2",
            "iwf\tsecure.be.\tIWF\tr1",
        ],
        "{text}"
    );
    assert!(text.contains("4 of 9 listed names"), "{text}");
    let o = belfry(&s, &["watch", "check", "--list", "alerts"]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(stdout.trim(), "alerts\tshared-glue.be.\tDA\tx");
    let o = belfry(&s, &["watch", "check", "--list", "nope"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no watch list named 'nope'"));
}

#[test]
fn watch_the_sample_configuration_suppresses_hopping_sample_on_reload() {
    // The bundled belfry.toml, as on a fresh clone (only the ports moved).
    let dir = TempDir::new("watch-sample");
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
    let cfg = dir.0.join("belfry.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:5353", &format!("127.0.0.1:{port}"))
        .replace(", \"[::1]:5353\"", "")
        .replace("127.0.0.1:8053", &format!("127.0.0.1:{admin}"));
    std::fs::write(&cfg, text).unwrap();
    let zone = dir.0.join("zones/be.zone");
    assert!(!std::fs::read_to_string(&zone)
        .unwrap()
        .contains("hopping-sample"));
    let log = std::fs::File::create(dir.0.join("serve.log")).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        std::process::Command::new(bin())
            .args(["serve", "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let dig = |q: &str| {
        run(
            "dig",
            &format!("@127.0.0.1 -p {port} +norec +time=2 +tries=1 +dnssec {q}"),
        )
    };
    let mut up = false;
    for _ in 0..100 {
        if status(&dig("be SOA")) == "NOERROR" {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        up,
        "{}",
        std::fs::read_to_string(dir.0.join("serve.log")).unwrap_or_default()
    );
    let mut z = std::fs::read_to_string(&zone).unwrap();
    z.push_str("\nhopping-sample.be. 3600 IN NS ns1.example-hosting.net.\n");
    std::fs::write(&zone, z).unwrap();
    let o = std::process::Command::new(bin())
        .args(["reload", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(out.contains("suppressed pre-emptively"), "{out}");
    let d = dig("hopping-sample.be A");
    assert_eq!(status(&d), "NXDOMAIN", "{d}");
    assert!(d.contains("EDE: 16"), "{d}");
    let o = std::process::Command::new(bin())
        .args(["watch", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("iwf-hopping\thopping-sample.be.\tIWF\tsample-0001\tsuppressed"),
        "{out}"
    );
}
