//! Signed answers checked by real validators (delv, unbound) and structurally with dig.

mod common;

use belfry::dnssec::chain::Chain;
use belfry::dnssec::nsec3hash::{base32hex_decode, nsec3_hash};
use belfry::dnssec::rrsig::verify_rrsig;
use belfry::wire::decode::Message;
use belfry::wire::Rtype;
use common::*;
use std::process::Command;
use std::time::Duration;

fn validated(out: &str) -> bool {
    out.contains("fully validated")
}

#[test]
fn delv_validates_every_answer_kind() {
    let s = Server::start("delv", Opts::default());
    for q in [
        "be SOA",
        "be NS",
        "be DNSKEY",
        "be NSEC3PARAM",
        "secure.be DS",
        "glued.be DS",
        "a.nsset.be A",
        "be TXT",
    ] {
        let out = s.delv(q);
        assert!(validated(&out) && !out.contains("negative"), "{q}: {out}");
    }
    for (q, kind) in [
        ("insecure.be DS", "nxrrset"),
        ("nonexistent.be A", "nxdomain"),
        ("www.nonexistent.be A", "nxdomain"),
        ("be MX", "nxrrset"),
        ("gov.be A", "nxrrset"),
        ("nsset.be A", "nxrrset"),
    ] {
        let out = s.delv(q);
        assert!(validated(&out) && out.contains(kind), "{q}: {out}");
    }
}

#[test]
fn dig_structure_of_signed_answers() {
    let s = Server::start("structure", Opts::default());
    // Secure referral: NS + DS + RRSIG(DS); no RRSIG over NS or glue.
    let out = s.dig("+dnssec www.glued.be A");
    let auth = section(&out, "AUTHORITY");
    assert_eq!(auth.iter().filter(|r| r.1 == "NS").count(), 2, "{out}");
    assert_eq!(auth.iter().filter(|r| r.1 == "DS").count(), 1, "{out}");
    let sigs: Vec<_> = auth.iter().filter(|r| r.1 == "RRSIG").collect();
    assert_eq!(sigs.len(), 1, "{out}");
    assert!(sigs[0].2.starts_with("DS "), "{out}");
    let add = section(&out, "ADDITIONAL");
    assert!(
        add.iter().all(|r| r.1 != "RRSIG"),
        "glue is never signed: {out}"
    );
    assert_eq!(add.len(), 3, "{out}");
    assert!(!flags(&out).contains(&"aa".to_string()));
    // Insecure referral: NS + opt-out NSEC3 proof (closest provable encloser + next closer cover).
    let out = s.dig("+dnssec www.insecure.be A");
    let auth = section(&out, "AUTHORITY");
    assert_eq!(auth.iter().filter(|r| r.1 == "NS").count(), 2, "{out}");
    assert_eq!(auth.iter().filter(|r| r.1 == "DS").count(), 0, "{out}");
    let nsec3: Vec<_> = auth.iter().filter(|r| r.1 == "NSEC3").collect();
    assert!(!nsec3.is_empty() && nsec3.len() <= 2, "{out}");
    assert!(
        nsec3.iter().any(|r| r.2.starts_with("1 1 0 - ")),
        "opt-out flag set: {out}"
    );
    assert!(
        auth.iter()
            .filter(|r| r.1 == "RRSIG")
            .all(|r| r.2.starts_with("NSEC3 ")),
        "{out}"
    );
    // Without DO: no DNSSEC records at all.
    let out = s.dig("www.insecure.be A");
    assert!(!out.contains("RRSIG") && !out.contains("NSEC3"), "{out}");
    // NXDOMAIN: SOA + RRSIG + up to three NSEC3 with RRSIGs.
    let out = s.dig("+dnssec nothing-here.be A");
    let auth = section(&out, "AUTHORITY");
    let n = auth.iter().filter(|r| r.1 == "NSEC3").count();
    assert!((2..=3).contains(&n), "{out}");
    assert_eq!(
        auth.iter().filter(|r| r.1 == "RRSIG").count(),
        n + 1,
        "{out}"
    );
    // DNSKEY answered with its RRSIG by the KSK.
    let out = s.dig("+dnssec be DNSKEY");
    assert_eq!(
        section(&out, "ANSWER")
            .iter()
            .filter(|r| r.1 == "DNSKEY")
            .count(),
        2,
        "{out}"
    );
    let out = s.kdig("+dnssec be NSEC3PARAM");
    assert!(
        out.contains("NSEC3PARAM") && out.contains("1 0 0 -"),
        "{out}"
    );
}

/// Every NXDOMAIN proof covers exactly what it claims, checked against the chain.
#[test]
fn nxdomain_proofs_cover_exactly_what_they_claim() {
    let s = Server::start("proofs", Opts::default());
    let zone = belfry::zone::load_file(&s.dir.0.join("be.zone"), &wire("be.")).unwrap();
    let chain = Chain::build(
        &zone,
        Default::default(),
        &belfry::publish::edit::APEX_EXTRA,
    )
    .unwrap();
    let dnskeys: Vec<Vec<u8>> =
        Message::of(&s.udp("be.", Rtype::DNSKEY, true).answer, Rtype::DNSKEY)
            .iter()
            .map(|r| r.rdata.clone())
            .collect();
    let exists = |h: &[u8; 20]| chain.find(h).is_some();
    let covers = |own: &[u8; 20], next: &[u8; 20], h: &[u8; 20]| {
        if own < next {
            own < h && h < next
        } else {
            h > own || h < next
        }
    };
    let mut rng = 0x1234_5678_9abc_def0u64;
    for i in 0..60 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let label = format!("x{:x}{i}", rng);
        let qname = format!("{label}.be.");
        let m = s.udp(&qname, Rtype::A, true);
        assert_eq!(m.rcode, 3, "{qname}");
        let nsec3 = Message::of(&m.authority, Rtype::NSEC3);
        let apex_h = nsec3_hash(&wire("be."), &[], 0);
        let nc_h = nsec3_hash(&wire(&qname), &[], 0);
        let wc_h = nsec3_hash(&wire("*.be."), &[], 0);
        let (mut matched_ce, mut covered_nc, mut covered_wc) = (false, false, false);
        for r in &nsec3 {
            let own = base32hex_decode(&r.owner[1..33]).unwrap();
            let next: [u8; 20] = r.rdata[6..26].try_into().unwrap();
            assert!(exists(&own), "NSEC3 owner must be a chain hash");
            // No existing name hides inside a covering interval.
            let inside = chain
                .positions()
                .any(|k| covers(&own, &next, chain.hash(k)));
            assert!(!inside, "{qname}: interval covers an existing name");
            matched_ce |= own == apex_h;
            covered_nc |= covers(&own, &next, &nc_h);
            covered_wc |= covers(&own, &next, &wc_h);
            // Each NSEC3 carries a signature that verifies.
            let sig = m
                .authority
                .iter()
                .find(|x| x.rtype == Rtype::RRSIG && x.owner == r.owner)
                .expect("RRSIG for NSEC3");
            let mut owner = r.owner.clone();
            belfry::name::lowercase_in_place(&mut owner);
            assert!(
                dnskeys
                    .iter()
                    .any(|k| verify_rrsig(k, &sig.rdata, &owner, 1, &[&r.rdata])),
                "{qname}: NSEC3 signature does not verify"
            );
        }
        assert!(
            matched_ce && covered_nc && covered_wc,
            "{qname}: incomplete proof"
        );
    }
}

#[test]
fn unbound_validates_through_belfry() {
    require("unbound");
    let s = Server::start("unbound", Opts::default());
    let u = Unbound::start(&s);
    let out = u.dig("secure.be DS");
    assert_eq!(status(&out), "NOERROR", "{out}\n{}", u.log());
    assert!(flags(&out).contains(&"ad".to_string()), "validated: {out}");
    let out = u.dig("nonexistent-xyz.be A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}\n{}", u.log());
    let out = u.dig("be SOA");
    assert!(flags(&out).contains(&"ad".to_string()), "{out}");
    let out = u.dig("gov.be A");
    assert_eq!(status(&out), "NOERROR", "{out}");
}

fn rrsig_expiration(m: &Message) -> u32 {
    let r = m
        .answer
        .iter()
        .find(|r| r.rtype == Rtype::RRSIG)
        .expect("RRSIG");
    u32::from_be_bytes(r.rdata[8..12].try_into().unwrap())
}

#[test]
fn signatures_are_refreshed_before_they_expire() {
    let s = Server::start(
        "refresh",
        Opts {
            extra_dnssec: "validity = 40\nrefresh = 30\njitter = 0\ninception_offset = 0\n".into(),
            ..Opts::default()
        },
    );
    let first = rrsig_expiration(&s.udp("secure.be.", Rtype::DS, true));
    let soa_first = rrsig_expiration(&s.udp("be.", Rtype::SOA, true));
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32
    };
    // Keep asking while time passes: every answer carries a signature that has not
    // expired, and within the refresh window new signatures replace the first ones.
    let t = std::time::Instant::now();
    let (mut later, mut soa_later) = (first, soa_first);
    while t.elapsed() < Duration::from_secs(35) && (later <= first || soa_later <= soa_first) {
        let m = s.udp("secure.be.", Rtype::DS, true);
        later = rrsig_expiration(&m);
        assert!(later > now(), "served an expired signature");
        let m = s.udp("be.", Rtype::SOA, true);
        soa_later = rrsig_expiration(&m);
        assert!(soa_later > now(), "served an expired SOA signature");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(later > first, "DS signature re-made ({first} -> {later})");
    assert!(
        soa_later > soa_first,
        "SOA signature re-made ({soa_first} -> {soa_later})"
    );
    assert!(validated(&s.delv("secure.be DS")));
}

#[test]
fn keygen_ds_and_bind_import() {
    require("dnssec-keygen");
    require("dnssec-dsfromkey");
    let d = TempDir::new("import");
    let mut imported = Vec::new();
    for (alg, flags) in [
        ("ECDSAP256SHA256", "-fKSK"),
        ("ED25519", "-fKSK"),
        ("RSASHA256", ""),
    ] {
        let mut args = vec!["-q", "-K"];
        let dir = d.0.to_string_lossy().into_owned();
        args.push(&dir);
        args.extend(["-a", alg]);
        if alg == "RSASHA256" {
            args.extend(["-b", "2048"]);
        }
        if !flags.is_empty() {
            args.push(flags);
        }
        args.push("be.");
        let out = Command::new("dnssec-keygen").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let base = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let tag: u16 = base.rsplit('+').next().unwrap().parse().unwrap();
        let keyfile = d.0.join(format!("{base}.key"));
        let out = Command::new(bin())
            .args(["key", "import", "--dir"])
            .arg(d.0.join("keys"))
            .arg(&keyfile)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            ours.ends_with(&format!("+{tag:05}")),
            "same key tag: {ours} vs {base}"
        );
        imported.push((base, ours, keyfile));
    }
    // `belfry ds` prints what dnssec-dsfromkey prints for the KSKs.
    let cfg = d.0.join("b.toml");
    std::fs::write(
        &cfg,
        format!(
            "[zone]\norigin = \"be.\"\nfile = \"{}\"\n[dnssec]\nenabled = true\nkey_dir = \"keys\"\nkeys = [\"{}\", \"{}\"]\n",
            root().join("zones/be.zone").display(),
            imported[0].1,
            imported[1].1
        ),
    )
    .unwrap();
    let ours = Command::new(bin())
        .args(["ds", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let ours = String::from_utf8_lossy(&ours.stdout).to_ascii_uppercase();
    for (_, _, keyfile) in &imported[..2] {
        let bind = run("dnssec-dsfromkey", &format!("-2 {}", keyfile.display()));
        let digest = bind.split_whitespace().last().unwrap().to_ascii_uppercase();
        assert!(ours.contains(&digest), "DS {digest} missing from:\n{ours}");
    }
    // Errors name the file: a key for another zone.
    let out = Command::new(bin())
        .args(["keygen", "--zone", "nl.", "--dir"])
        .arg(d.0.join("keys"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(
        &cfg,
        format!(
            "[zone]\norigin = \"be.\"\nfile = \"{}\"\n[dnssec]\nenabled = true\nkey_dir = \"keys\"\n",
            root().join("zones/be.zone").display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Knl.") && err.contains("not be."),
        "{err}"
    );
}

/// A referral to an insecure delegation below an empty non-terminal proves the
/// parent (the ENT) and covers the delegation (RFC 5155 §7.2.7).
#[test]
fn insecure_referral_below_an_ent_has_the_right_proof() {
    let s = Server::start("deep-proof", Opts::default());
    for _ in 0..2 {
        // The second round is served from the per-delegation cover cache.
        let m = s.udp("www.city.gov.be.", Rtype::A, true);
        assert_eq!(Message::of(&m.authority, Rtype::NS).len(), 1);
        let nsec3 = Message::of(&m.authority, Rtype::NSEC3);
        let parent = nsec3_hash(&wire("gov.be."), &[], 0);
        let deleg = nsec3_hash(&wire("city.gov.be."), &[], 0);
        let owners: Vec<[u8; 20]> = nsec3
            .iter()
            .map(|r| base32hex_decode(&r.owner[1..33]).unwrap())
            .collect();
        assert!(
            owners.contains(&parent),
            "closest provable encloser gov.be matched"
        );
        let covered = nsec3.iter().any(|r| {
            let own = base32hex_decode(&r.owner[1..33]).unwrap();
            let next: [u8; 20] = r.rdata[6..26].try_into().unwrap();
            r.rdata[1] & 1 == 1
                && if own < next {
                    own < deleg && deleg < next
                } else {
                    deleg > own || deleg < next
                }
        });
        assert!(covered, "city.gov.be covered by an opt-out NSEC3");
    }
    let out = s.delv("city.gov.be DS");
    assert!(
        out.contains("fully validated") && out.contains("nxrrset"),
        "{out}"
    );
}
