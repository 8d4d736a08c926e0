//! Dynamic update (RFC 2136) over the network against a real `belfry serve`, with
//! `nsupdate` (BIND) and `knsupdate` (Knot): with and without TSIG (keys from the
//! TOML and from a `tsig-keygen` file), over UDP and TCP; refused updates (no key,
//! unknown key, wrong secret, failed prerequisites, out of zone, below a
//! delegation, missing glue) answer their rcode and change nothing, as `dig` shows.

mod common;

use belfry::wire::Rtype;
use common::{require, section, status, Opts, Server, TempDir};
use std::io::Write;
use std::process::{Command, Stdio};

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";
const DS: &str = "12345 13 2 3D4A5B6C7D8E9F00112233445566778899AABBCCDDEEFF001122334455667788";

fn with_stdin(tool: &str, args: &[&str], script: &str) -> String {
    require(tool);
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn nsupdate(s: &Server, args: &[&str], body: &str) -> String {
    let mut a = vec!["-t", "5"];
    a.extend_from_slice(args);
    with_stdin(
        "nsupdate",
        &a,
        &format!("server 127.0.0.1 {}\nzone be.\n{body}\nsend\n", s.port),
    )
}

fn knsupdate(s: &Server, args: &[&str], body: &str) -> String {
    let mut a = vec!["-t", "5"];
    a.extend_from_slice(args);
    with_stdin(
        "knsupdate",
        &a,
        &format!(
            "server 127.0.0.1 {}\nzone be.\n{body}\nsend\nanswer\n",
            s.port
        ),
    )
}

fn serial(s: &Server) -> u32 {
    belfry::serial::soa_serial(&s.udp("be.", Rtype::SOA, false).answer[0].rdata).unwrap()
}

/// What dig shows for a name: status and the answer and authority sections.
fn view(s: &Server, q: &str) -> String {
    let out = s.dig(&format!("+dnssec {q}"));
    format!(
        "{} {:?} {:?}",
        status(&out),
        section(&out, "ANSWER"),
        section(&out, "AUTHORITY")
    )
}

fn keyed(tag: &str, keyfile: &std::path::Path) -> Server {
    Server::start(
        tag,
        Opts {
            extra_config: format!(
                "[tsig]\nfiles = [\"{}\"]\n[[tsig.key]]\nname = \"upd\"\nsecret = \"{SECRET}\"\n\
                 [[acl.update]]\nkey = \"upd\"\n[[acl.update]]\nkey = \"prov-key\"\n",
                keyfile.display()
            ),
            ..Opts::default()
        },
    )
}

fn keygen(dir: &TempDir) -> std::path::PathBuf {
    require("tsig-keygen");
    let out = Command::new("tsig-keygen")
        .args(["-a", "hmac-sha512", "prov-key"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.0.join("prov.key");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn signed_updates_add_and_delete_delegations_over_udp_and_tcp() {
    let dir = TempDir::new("upd-keys");
    let kf = keygen(&dir);
    let s = keyed("upd-signed", &kf);
    let y = format!("hmac-sha256:upd:{SECRET}");
    let s0 = serial(&s);
    // nsupdate -y over UDP: a secure delegation with in-zone glue.
    let out = nsupdate(
        &s,
        &["-y", &y],
        &format!("update add fresh.be. 3600 NS ns1.fresh.be.\nupdate add fresh.be. 3600 DS {DS}\nupdate add ns1.fresh.be. 3600 A 192.0.2.99"),
    );
    assert!(!out.contains("failed"), "{out}");
    assert!(belfry::serial::serial_gt(serial(&s), s0));
    let out = s.dig("+dnssec www.fresh.be. A");
    assert_eq!(status(&out), "NOERROR");
    let auth = section(&out, "AUTHORITY");
    assert!(
        auth.iter().any(|r| r.1 == "NS" && r.2 == "ns1.fresh.be."),
        "{out}"
    );
    assert!(auth.iter().any(|r| r.1 == "DS"), "{out}");
    assert!(
        section(&out, "ADDITIONAL")
            .iter()
            .any(|r| r.1 == "A" && r.2 == "192.0.2.99"),
        "{out}"
    );
    // The answers validate (the new DS is signed, the NSEC3 chain has the name).
    let v = s.delv("fresh.be. DS");
    assert!(v.contains("fully validated"), "{v}");
    // nsupdate -v (TCP) with the key from the tsig-keygen file: delete it again.
    let out = nsupdate(
        &s,
        &["-v", "-k", kf.to_str().unwrap()],
        "update delete fresh.be.\nupdate delete ns1.fresh.be.",
    );
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(status(&s.dig("www.fresh.be. A")), "NXDOMAIN");
    // knsupdate -y: add, a prerequisite that holds, a prerequisite that fails.
    let out = knsupdate(&s, &["-y", &y], "update add kn.be. 3600 NS ns.example.net.");
    assert!(
        !out.to_uppercase().contains("REFUSED") && !out.contains("failed"),
        "{out}"
    );
    assert_eq!(status(&s.dig("www.kn.be. A")), "NOERROR");
    let out = knsupdate(
        &s,
        &["-y", &y],
        "prereq yxrrset kn.be. NS\nupdate delete kn.be. NS",
    );
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(status(&s.dig("www.kn.be. A")), "NXDOMAIN");
    let before = (serial(&s), view(&s, "glued.be. NS"));
    let out = knsupdate(
        &s,
        &["-y", &y],
        "prereq nxdomain glued.be.\nupdate delete glued.be. NS",
    );
    assert!(out.contains("YXDOMAIN"), "{out}");
    assert_eq!((serial(&s), view(&s, "glued.be. NS")), before);
    let st = s.status();
    assert!(st["transfers"]["updates"].as_u64().unwrap() >= 4, "{st}");
}

#[test]
fn refused_updates_answer_their_rcode_and_change_nothing() {
    let dir = TempDir::new("upd-keys-2");
    let kf = keygen(&dir);
    let s = keyed("upd-refused", &kf);
    let y = format!("hmac-sha256:upd:{SECRET}");
    let names = [
        "glued.be. NS",
        "www.secure.be. A",
        "other.be. NS",
        "be. NS",
        "nic.be. A",
        "www.example.com. A",
    ];
    let snapshot = |s: &Server| {
        (
            serial(s),
            names.iter().map(|q| view(s, q)).collect::<Vec<_>>(),
        )
    };
    let before = snapshot(&s);
    let cases: Vec<(Vec<String>, &str, &str)> =
        vec![
        // Unsigned: the ACL wants a key.
        (vec![], "update add other.be. 3600 NS ns.example.net.", "REFUSED"),
        // A key we do not know, a wrong secret.
        (
            vec!["-y".into(), format!("hmac-sha256:stranger:{SECRET}")],
            "update add other.be. 3600 NS ns.example.net.",
            "NOTAUTH(BADKEY)",
        ),
        (
            vec!["-y".into(), "hmac-sha256:upd:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0".into()],
            "update add other.be. 3600 NS ns.example.net.",
            "NOTAUTH(BADSIG)",
        ),
        // Prerequisites that fail.
        (
            vec!["-y".into(), y.clone()],
            "prereq yxdomain not-there.be.\nupdate add other.be. 3600 NS ns.example.net.",
            "NXDOMAIN",
        ),
        (
            vec!["-y".into(), y.clone()],
            "prereq nxrrset glued.be. NS\nupdate delete glued.be. NS",
            "YXRRSET",
        ),
        // Out of the zone.
        (
            vec!["-y".into(), y.clone()],
            "update add www.example.com. 60 A 192.0.2.1",
            "NOTZONE",
        ),
        // Below a delegation only glue may be: not the registry's data.
        (
            vec!["-y".into(), y.clone()],
            "update add www.secure.be. 3600 TXT \"not ours\"",
            "REFUSED",
        ),
        // An in-bailiwick name server without its glue.
        (
            vec!["-y".into(), y.clone()],
            "update add other.be. 3600 NS ns.other.be.",
            "REFUSED",
        ),
        // DNSSEC records are the signer's.
        (
            vec!["-y".into(), y.clone()],
            "update add nic.be. 3600 RRSIG A 13 2 3600 20300101000000 20200101000000 1 be. AAAA",
            "REFUSED",
        ),
    ];
    for (args, body, want) in cases {
        let a: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
        let out = nsupdate(&s, &a, body);
        assert!(
            out.contains(&format!("update failed: {want}")),
            "{body}: want {want}:\n{out}"
        );
        assert_eq!(snapshot(&s), before, "{body}: something changed");
    }
    // The apex NS RRset is never deleted (RFC 2136 §3.4.2.4): NOERROR, nothing changed.
    let out = nsupdate(&s, &["-y", &y], "update delete be. NS");
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(view(&s, "be. NS"), before.1[3]);
    assert!(
        s.log_text().contains("not allowed by [acl] update"),
        "{}",
        s.log_text()
    );
}

#[test]
fn unsigned_updates_from_an_allowed_address_over_udp_and_tcp() {
    let s = Server::start(
        "upd-open",
        Opts {
            extra_config: "[[acl.update]]\nfrom = [\"127.0.0.1\"]\n".into(),
            ..Opts::default()
        },
    );
    let out = nsupdate(&s, &[], "update add open-udp.be. 3600 NS ns.example.net.");
    assert!(!out.contains("failed"), "{out}");
    let out = nsupdate(
        &s,
        &["-v"],
        "update add open-tcp.be. 3600 NS ns.example.net.",
    );
    assert!(!out.contains("failed"), "{out}");
    for n in ["open-udp.be.", "open-tcp.be."] {
        let out = s.dig(&format!("www.{n} A"));
        assert!(
            section(&out, "AUTHORITY").iter().any(|r| r.1 == "NS"),
            "{out}"
        );
    }
    // NOTIFY in without a primary configured and no [[acl.notify]] rule: refused.
    let out = s.dig("+opcode=notify be. SOA");
    assert_eq!(status(&out), "REFUSED", "{out}");
}
