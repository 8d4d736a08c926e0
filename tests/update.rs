//! RFC 2136 UPDATE with real clients: `nsupdate` (BIND) and `knsupdate` (Knot) send
//! to a responder built from `belfry::update`, `belfry::tsig` and `belfry::acl`
//! over an in-memory zone; the tests read the zone afterwards.

mod common;
mod responder;

use belfry::acl::{Acl, Action, Rule};
use belfry::tsig::{self, Check, KeyRing};
use belfry::update::{self, MemoryZone, ZoneView};
use belfry::wire::decode::Record;
use belfry::wire::message::{self, flag};
use belfry::wire::{Opcode, Rcode, Rtype};
use common::{require, wire, TempDir};
use responder::{Handler, Meta, Responder};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const SECRET: &str = "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=";

fn rr(owner: &str, rtype: Rtype, ttl: u32, rdata: &[u8]) -> Record {
    Record {
        owner: wire(owner),
        rtype,
        class: 1,
        ttl,
        rdata: rdata.to_vec(),
    }
}

fn soa_rdata(serial: u32) -> Vec<u8> {
    let mut v = wire("ns1.be.");
    v.extend_from_slice(&wire("hostmaster.be."));
    for x in [serial, 3600, 600, 86400, 300] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

fn start_zone() -> MemoryZone {
    MemoryZone::new([
        rr("be.", Rtype::SOA, 3600, &soa_rdata(100)),
        rr("be.", Rtype::NS, 3600, &wire("ns1.be.")),
        rr("ns1.be.", Rtype::A, 3600, &[192, 0, 2, 1]),
        rr("taken.be.", Rtype::NS, 3600, &wire("ns.taken.be.")),
    ])
}

struct UpdateServer {
    responder: Responder,
    zone: Arc<Mutex<MemoryZone>>,
}

/// A responder that verifies TSIG, applies the ACL, parses, checks and applies updates.
fn server(keys: KeyRing, acl: Acl) -> UpdateServer {
    let zone = Arc::new(Mutex::new(start_zone()));
    let z = zone.clone();
    let h: Handler = Arc::new(move |req: &[u8], meta: Meta| {
        let now = tsig::now();
        let Ok(m) = message::parse(req) else {
            return vec![update::response(req, Rcode::FORMERR)];
        };
        let check = tsig::verify_parsed(&keys, req, &m, now);
        let mut signer = match check {
            Check::FormErr => return vec![update::response(req, Rcode::FORMERR)],
            Check::Failed(mut f) => return vec![f.reply(req, now)],
            Check::Unsigned => None,
            Check::Verified(s) => Some(s),
        };
        let mut out = if m.header.opcode() == Opcode::QUERY {
            // Clients may look up the SOA first.
            let q = m.questions[0].clone();
            let answer = z.lock().unwrap().records_at(&q.name);
            let answer: Vec<Record> = answer.into_iter().filter(|r| r.rtype == q.qtype).collect();
            message::build(
                m.header.id,
                flag::QR | flag::AA,
                Some(&q),
                &answer,
                &[],
                &[],
            )
            .unwrap()
        } else {
            let key = signer.as_ref().map(|s| s.key().name().to_vec());
            let rcode = if !acl
                .check(Action::Update, meta.peer.ip(), key.as_deref())
                .allowed
            {
                Rcode::REFUSED
            } else {
                match update::parse(req, &wire("be.")) {
                    Err(e) => e.rcode,
                    Ok(r) => {
                        let mut zone = z.lock().unwrap();
                        match update::process(&r, &*zone) {
                            Err(e) => e.rcode,
                            Ok(c) => {
                                zone.apply(&c);
                                Rcode::NOERROR
                            }
                        }
                    }
                }
            };
            update::response(req, rcode)
        };
        if let Some(s) = signer.as_mut() {
            s.sign(&mut out, now).unwrap();
        }
        vec![out]
    });
    UpdateServer {
        responder: Responder::start(h),
        zone,
    }
}

fn keys() -> KeyRing {
    let mut r = KeyRing::new();
    r.insert(tsig::Key::from_text("upd-key", "hmac-sha256", SECRET).unwrap())
        .unwrap();
    r
}

/// Updates from loopback signed with upd-key only.
fn key_acl() -> Acl {
    let mut a = Acl::deny_all();
    a.set_rules(
        Action::Update,
        vec![Rule {
            from: vec!["127.0.0.0/8".parse().unwrap()],
            key: Some(wire("upd-key")),
            deny: false,
        }],
    );
    a
}

fn open_acl() -> Acl {
    let mut a = Acl::deny_all();
    a.set_rules(
        Action::Update,
        vec![Rule {
            from: vec!["127.0.0.0/8".parse().unwrap()],
            key: None,
            deny: false,
        }],
    );
    a
}

fn run_with_stdin(tool: &str, args: &[&str], script: &str) -> String {
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
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

fn nsupdate(port: u16, args: &[&str], body: &str) -> String {
    let script = format!("server 127.0.0.1 {port}\nzone be.\n{body}\nsend\n");
    let mut a = vec!["-t", "3"];
    a.extend_from_slice(args);
    run_with_stdin("nsupdate", &a, &script)
}

fn knsupdate(port: u16, args: &[&str], body: &str) -> String {
    let script = format!("server 127.0.0.1 {port}\nzone be.\n{body}\nsend\nanswer\n");
    let mut a = vec!["-t", "3"];
    a.extend_from_slice(args);
    run_with_stdin("knsupdate", &a, &script)
}

fn has(zone: &Mutex<MemoryZone>, owner: &str, t: Rtype) -> usize {
    zone.lock()
        .unwrap()
        .records_at(&wire(owner))
        .iter()
        .filter(|r| r.rtype == t)
        .count()
}

#[test]
fn nsupdate_y_adds_and_deletes_a_delegation_over_udp_and_tcp() {
    let s = server(keys(), key_acl());
    let y = format!("hmac-sha256:upd-key:{SECRET}");
    let out = nsupdate(
        s.responder.port,
        &["-y", &y],
        "update add new.be. 3600 NS ns1.new.be.\nupdate add new.be. 3600 NS ns2.other.net.\nupdate add new.be. 3600 DS 12345 13 2 3D4A5B6C7D8E9F00112233445566778899AABBCCDDEEFF001122334455667788\nupdate add ns1.new.be. 3600 A 192.0.2.10",
    );
    assert!(!out.contains("failed") && !out.contains("error"), "{out}");
    assert_eq!(has(&s.zone, "new.be.", Rtype::NS), 2);
    assert_eq!(has(&s.zone, "new.be.", Rtype::DS), 1);
    assert_eq!(has(&s.zone, "ns1.new.be.", Rtype::A), 1);
    // Over TCP (-v): replace the NS set with a prerequisite on the current one.
    let out = nsupdate(
        s.responder.port,
        &["-v", "-y", &y],
        "prereq yxrrset new.be. NS ns1.new.be.\nprereq yxrrset new.be. NS ns2.other.net.\nupdate delete new.be. NS\nupdate add new.be. 3600 NS ns3.other.net.",
    );
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(has(&s.zone, "new.be.", Rtype::NS), 1);
    // Delete the whole name.
    let out = nsupdate(
        s.responder.port,
        &["-y", &y],
        "update delete new.be.\nupdate delete ns1.new.be.",
    );
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(s.zone.lock().unwrap().records_at(&wire("new.be.")).len(), 0);
}

#[test]
fn nsupdate_prerequisites_fail_with_their_rcodes_and_change_nothing() {
    let s = server(keys(), key_acl());
    let y = format!("hmac-sha256:upd-key:{SECRET}");
    let before = s.zone.lock().unwrap().records().count();
    let cases = [
        ("prereq yxdomain nothere.be.", "NXDOMAIN"),
        ("prereq nxdomain taken.be.", "YXDOMAIN"),
        ("prereq yxrrset taken.be. DS", "NXRRSET"),
        ("prereq nxrrset taken.be. NS", "YXRRSET"),
        ("prereq yxrrset taken.be. NS ns.other.be.", "NXRRSET"),
    ];
    for (prereq, rcode) in cases {
        let out = nsupdate(
            s.responder.port,
            &["-y", &y],
            &format!("{prereq}\nupdate add x.be. 60 NS ns.x.be."),
        );
        assert!(
            out.contains(&format!("update failed: {rcode}")),
            "{prereq}:\n{out}"
        );
    }
    assert_eq!(s.zone.lock().unwrap().records().count(), before);
}

#[test]
fn nsupdate_k_keyfile_unsigned_refused_wrong_key_notauth() {
    require("tsig-keygen");
    let dir = TempDir::new("upd-keygen");
    let out = Command::new("tsig-keygen")
        .args(["-a", "hmac-sha512", "prov-key"])
        .output()
        .unwrap();
    let path = dir.0.join("prov.key");
    std::fs::write(&path, &out.stdout).unwrap();
    let mut ring = KeyRing::new();
    for k in tsig::keyfile::load(&path).unwrap() {
        ring.insert(k).unwrap();
    }
    let mut acl = Acl::deny_all();
    acl.set_rules(
        Action::Update,
        vec![Rule {
            from: vec!["127.0.0.0/8".parse().unwrap()],
            key: Some(wire("prov-key")),
            deny: false,
        }],
    );
    let s = server(ring, acl);
    let out = nsupdate(
        s.responder.port,
        &["-k", path.to_str().unwrap()],
        "update add k.be. 60 NS ns.k.be.",
    );
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(has(&s.zone, "k.be.", Rtype::NS), 1);
    // Unsigned: the ACL wants the key.
    let out = nsupdate(s.responder.port, &[], "update add u.be. 60 NS ns.u.be.");
    assert!(out.contains("update failed: REFUSED"), "{out}");
    // A key we do not know: NOTAUTH with BADKEY; a wrong secret: BADSIG.
    let out = nsupdate(
        s.responder.port,
        &["-y", &format!("hmac-sha256:other:{SECRET}")],
        "update add u.be. 60 NS ns.u.be.",
    );
    assert!(out.contains("update failed: NOTAUTH(BADKEY)"), "{out}");
    let out = nsupdate(
        s.responder.port,
        &["-y", &format!("hmac-sha512:prov-key:{SECRET}")],
        "update add u.be. 60 NS ns.u.be.",
    );
    assert!(out.contains("update failed: NOTAUTH(BADSIG)"), "{out}");
    assert_eq!(has(&s.zone, "u.be.", Rtype::NS), 0);
}

#[test]
fn nsupdate_out_of_zone_is_notzone_and_apex_is_protected() {
    let s = server(keys(), open_acl());
    let out = nsupdate(
        s.responder.port,
        &[],
        "update add www.example.com. 60 A 192.0.2.1",
    );
    assert!(out.contains("NOTZONE"), "{out}");
    // Deleting the apex NS RRset is ignored: NOERROR, nothing changed.
    let out = nsupdate(s.responder.port, &[], "update delete be. NS");
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(has(&s.zone, "be.", Rtype::NS), 1);
    // SOA going backwards is ignored, forward is taken.
    let out = nsupdate(
        s.responder.port,
        &[],
        "update add be. 3600 SOA ns1.be. hostmaster.be. 99 3600 600 86400 300",
    );
    assert!(!out.contains("failed"), "{out}");
    let serial = |z: &Mutex<MemoryZone>| {
        let recs = z.lock().unwrap().records_at(&wire("be."));
        belfry::serial::soa_serial(&recs.iter().find(|r| r.rtype == Rtype::SOA).unwrap().rdata)
            .unwrap()
    };
    assert_eq!(serial(&s.zone), 100);
    let out = nsupdate(
        s.responder.port,
        &[],
        "update add be. 3600 SOA ns1.be. hostmaster.be. 101 3600 600 86400 300",
    );
    assert!(!out.contains("failed"), "{out}");
    assert_eq!(serial(&s.zone), 101);
}

#[test]
fn knsupdate_signed_add_delete_and_prerequisite() {
    let s = server(keys(), key_acl());
    let y = format!("hmac-sha256:upd-key:{SECRET}");
    let out = knsupdate(s.responder.port, &["-y", &y], "update add kn.be. 3600 NS ns.kn.be.\nupdate add kn.be. 3600 DS 1 13 2 3D4A5B6C7D8E9F00112233445566778899AABBCCDDEEFF001122334455667788");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(!out.to_lowercase().contains("failed"), "{out}");
    assert_eq!(has(&s.zone, "kn.be.", Rtype::NS), 1);
    assert_eq!(has(&s.zone, "kn.be.", Rtype::DS), 1);
    let out = knsupdate(
        s.responder.port,
        &["-y", &y],
        "prereq nxdomain kn.be.\nupdate add kn.be. 3600 NS ns2.kn.be.",
    );
    assert!(out.contains("YXDOMAIN"), "{out}");
    assert_eq!(has(&s.zone, "kn.be.", Rtype::NS), 1);
    let out = knsupdate(s.responder.port, &["-y", &y], "update del kn.be. DS");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert_eq!(has(&s.zone, "kn.be.", Rtype::DS), 0);
    // Unsigned from knsupdate: refused by the ACL.
    let out = knsupdate(s.responder.port, &[], "update add kx.be. 3600 NS ns.kx.be.");
    assert!(out.contains("REFUSED"), "{out}");
}
