//! What the fuzz targets do and check, shared with the corpus replay test.
//!
//! Each target is a function here taking the fuzzer's bytes, listed in
//! [`TARGETS`]; `fuzz_targets/<name>.rs` calls it under libFuzzer, and the
//! project's `tests/fuzz_corpus.rs` (plain `cargo test`) replays every file of
//! `corpus/<name>/` and `regressions/<name>/` through it. A crash the fuzzer
//! finds is saved in `regressions/<name>/` and stays a test from then on.
//!
//! To add a target (UPDATE, TSIG, transfers): write its function here, add it
//! to [`TARGETS`], copy a file in `fuzz_targets/` and its `[[bin]]` block in
//! `Cargo.toml`, and commit a few seeds in `corpus/<name>/`.
//!
//! This file uses only `belfry` and `std`, so the replay test can include it.

use belfry::config::Config;
use belfry::handler::HandlerConfig;
use belfry::publish::{change::Suppression, Publisher, Settings, Sinks};
use belfry::service::{self, Service};
use belfry::suppress::EdeKind;
use belfry::wire::decode::decode;
use belfry::zone::{master, ZoneBuilder};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A target's body: the fuzzer's bytes in, a panic on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/` file and corpus folder) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("query_handler", query_handler),
    ("query_parser", query_parser),
    ("master_file", master_file),
];

/// The repository root (the sample configuration, zone and keys).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Built from fuzz/ (cargo fuzz) or from the repository root (the replay test).
    if here.join("belfry.toml").is_file() {
        here
    } else {
        here.join("..")
    }
}

/// The largest UDP answer the sample configuration allows.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The sample zone, signed with the sample keys, with one suppressed delegation, an
/// NSID, DNS cookies and rate limiting (at a rate the fuzzer never reaches, so every
/// input is answered the same way each time); built once.
pub fn sample() -> &'static Service {
    static SVC: OnceLock<Service> = OnceLock::new();
    SVC.get_or_init(|| {
        let cfg =
            Config::load(&root().join("belfry.toml")).expect("the sample configuration loads");
        let loaded = service::load(&cfg, None).expect("the sample zone and keys load");
        let wire = belfry::name::from_text("insecure.be.", &[0]).expect("a valid name");
        let list = vec![Suppression {
            name: wire,
            reason: "fuzz".into(),
            case: "F-1".into(),
            added_by: "fuzz".into(),
            added_at: 0,
            expires: None,
            ede: EdeKind::Blocked,
        }];
        let serial = loaded.zone.serial();
        let publisher = Publisher::new(
            loaded.zone,
            loaded.dnssec,
            list,
            serial,
            Settings::default(),
            Sinks::default(),
        )
        .expect("the sample publisher builds");
        let handler_cfg = HandlerConfig {
            max_udp_payload: MAX_UDP_PAYLOAD,
            identity: Some("fuzz".into()),
            version: Some("belfry".into()),
            nsid: Some(b"fuzz-nsid".to_vec()),
        };
        let secret = belfry::cookie::Secret::from_hex("00112233445566778899aabbccddeeff")
            .expect("a valid secret");
        let rrl = belfry::rrl::Rrl::new(belfry::rrl::Settings {
            rates: [1_000_000; 4],
            window: 1,
            table_size: 1024,
            ..Default::default()
        });
        Service::new(std::sync::Arc::new(publisher), handler_cfg, None)
            .with_rrl(Some(rrl))
            .with_cookies(
                Some(belfry::cookie::Secrets::new(vec![secret]).expect("one secret")),
                None,
            )
    })
}

/// Check an answer to `query`: it parses with belfry's decoder, is a response
/// with the query's id, and fits the transport (UDP: the EDNS size, capped by
/// the configured payload, or 512 without EDNS; TCP: 65,535 bytes).
pub fn check_answer(query: &[u8], answer: &[u8], tcp: bool) {
    let m = decode(answer).unwrap_or_else(|| panic!("answer does not parse: {answer:02x?}"));
    assert!(query.len() >= 2, "answered a message without an id");
    assert_eq!(m.id, u16::from_be_bytes([query[0], query[1]]), "answer id");
    assert!(m.flags & 0x8000 != 0, "QR is set in an answer");
    let limit = if tcp {
        65535
    } else {
        match belfry::wire::parse_query(query) {
            Ok(q) => match q.edns {
                Some(e) => e.udp_size.clamp(512, MAX_UDP_PAYLOAD.max(512)) as usize,
                None => 512,
            },
            Err(_) => 512,
        }
    };
    assert!(
        answer.len() <= limit,
        "{} bytes over {tcp} limit {limit}",
        answer.len()
    );
}

/// The query path on the sample zone: any bytes in, a well-formed answer (or nothing) out.
pub fn query_handler(data: &[u8]) {
    use belfry::server::Transport;
    let svc = sample();
    let mut out = Vec::with_capacity(4096);
    let client = std::net::IpAddr::from([192, 0, 2, 1]);
    for transport in [Transport::Udp, Transport::Tcp] {
        out.clear();
        if svc.respond(data, client, transport, &mut out).sent {
            check_answer(data, &out, transport == Transport::Tcp);
        }
    }
}

/// The query parser: a parsed query points into the message and agrees with it.
pub fn query_parser(data: &[u8]) {
    if let Ok(q) = belfry::wire::parse_query(data) {
        assert!(q.qname.len() <= 255, "name over 255 bytes");
        assert_eq!(q.qname.last(), Some(&0), "name ends with the root label");
        assert!(
            q.question.len() >= q.qname.len() + 4,
            "question holds name, type, class"
        );
        assert_eq!(
            &q.question[q.question.len() - 4..q.question.len() - 2],
            &q.qtype.0.to_be_bytes(),
            "qtype read from the question"
        );
        assert_eq!(u16::from_be_bytes([data[0], data[1]]), q.id);
        let _ = belfry::name::to_text(q.qname);
    }
}

/// The master-file parser and zone checks: a zone, or an error naming the file and line.
pub fn master_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // $INCLUDE reads other files (/dev/zero, /dev/stdin): not what is fuzzed here.
    if text.to_ascii_lowercase().contains("$include") {
        return;
    }
    let origin = b"\x02be\x00";
    let mut b = ZoneBuilder::new(origin);
    let parsed = master::parse_str(Path::new("fuzz.zone"), &text, origin, |r| {
        b.add(r.owner, r.class, r.rtype, r.ttl, r.rdata, r.file, r.line)
    });
    match parsed {
        Ok(_) => {
            let _ = b.finish();
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.zone:"), "{msg}");
        }
    }
}
