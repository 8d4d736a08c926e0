//! The hot lookup-and-sign path, measured on a generated 1.8 M-delegation zone.
//!
//! `cargo bench --bench handler` (set `BELFRY_BENCH_DELEGATIONS` for a smaller zone).
//! Groups: unsigned answers (referral, NXDOMAIN, apex), signed answers with cached
//! signatures (secure referral with RRSIG(DS), NXDOMAIN with NSEC3 proofs, insecure
//! referral with the opt-out proof, DNSKEY), the same signed answers through
//! `respond` with rate limiting (not limiting), cookies and the per-thread counters
//! (`guarded`), a flood that rate limiting drops or slips (`guarded/*_limited`), a cold
//! signature per algorithm next to raw `ring`, and changes published to the 1.8 M zone
//! (suppressions, a one-delegation zone edit), and the signed answers and a single
//! takedown with 100,000 names listed against an empty list (`list_*`,
//! `publish_1m8_100k_listed`).

// The server's allocator: the change benchmarks allocate, and with glibc's they
// measured its heap consolidation after the bulk add (a quarter of a single
// takedown's profile) rather than what the server does.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use belfry::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
use belfry::handler::{handle, respond, Client, Guards, HandlerConfig, Snapshot};
use belfry::publish::change::{Change, EditSource, NameEdit, Suppression};
use belfry::publish::edit::RecSet;
use belfry::publish::{self, Publisher};
use belfry::suppress::EdeKind;
use belfry::wire::decode::build_query;
use belfry::wire::Rtype;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use std::sync::Arc;

struct Fixture {
    dir: std::path::PathBuf,
    plain: Arc<Snapshot>,
    publisher: Publisher,
    names: Vec<String>,
    secure: Vec<String>,
    insecure: Vec<String>,
}

fn n(s: &str) -> Vec<u8> {
    belfry::name::from_text(s, &[0]).unwrap()
}

fn fixture() -> Fixture {
    let count: usize = std::env::var("BELFRY_BENCH_DELEGATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_800_000);
    let dir = std::env::temp_dir().join(format!("belfry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("be.zone");
    let t = std::time::Instant::now();
    let (zone, names) = publish::lab::generated_zone(&path, count).unwrap();
    eprintln!(
        "generated and loaded {count} delegations in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let mut secure = Vec::new();
    let mut insecure = Vec::new();
    for name in names.iter().take(20_000) {
        let node = zone.find_name(&n(name)).unwrap();
        if node.flags() & belfry::zone::SECURE != 0 {
            secure.push(name.clone());
        } else {
            insecure.push(name.clone());
        }
    }
    let plain = belfry::service::snapshot_of(zone, None).unwrap();
    let zone = belfry::zone::load_file(&path, &n("be.")).unwrap();
    let publisher = publish::lab::signed_publisher(zone).unwrap();
    Fixture {
        dir,
        plain,
        publisher,
        names,
        secure,
        insecure,
    }
}

/// Cycle through a list of prepared queries, answering each into a reused buffer.
fn run(c: &mut Criterion, group: &str, id: &str, snap: &Snapshot, queries: &[Vec<u8>]) {
    let cfg = HandlerConfig::default();
    let mut out = Vec::with_capacity(4096);
    let mut i = 0usize;
    c.benchmark_group(group).bench_function(id, |b| {
        b.iter(|| {
            let q = &queries[i % queries.len()];
            i += 1;
            black_box(handle(snap, &cfg, black_box(q), false, &mut out));
        })
    });
}

/// [`run`] through `respond` with guards from `client`, counting each outcome as the service does.
fn run_guarded(
    c: &mut Criterion,
    id: &str,
    snap: &Snapshot,
    guards: &Guards<'_>,
    client: &Client,
    queries: &[Vec<u8>],
) {
    let cfg = HandlerConfig::default();
    let metrics = belfry::metrics::Metrics::new();
    let mut out = Vec::with_capacity(4096);
    let mut i = 0usize;
    c.benchmark_group("guarded").bench_function(id, |b| {
        b.iter(|| {
            let q = &queries[i % queries.len()];
            i += 1;
            let o = respond(snap, &cfg, guards, black_box(q), client, &mut out);
            metrics.record(&o, belfry::server::Transport::Udp, q.len(), out.len());
            black_box(o.sent)
        })
    });
}

fn queries(names: &[String], prefix: &str, t: Rtype, dnssec_ok: bool) -> Vec<Vec<u8>> {
    names
        .iter()
        .take(4096)
        .map(|d| build_query(1, &n(&format!("{prefix}{d}")), t, Some((1232, dnssec_ok))))
        .collect()
}

fn random_nx(count: usize, dnssec_ok: bool) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            build_query(
                1,
                &n(&format!("nx{:x}{i}.be.", i.wrapping_mul(2654435761))),
                Rtype::A,
                Some((1232, dnssec_ok)),
            )
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let plain = f.plain.clone();
    // Sign everything first: the signed group measures cached signatures.
    let t = std::time::Instant::now();
    let signed = f.publisher.snapshot_full();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let made = belfry::service::sign_missing(&signed, threads, &|| false).unwrap();
    eprintln!("signed {made} RRsets in {:.1} s", t.elapsed().as_secs_f64());

    run(
        c,
        "unsigned",
        "referral",
        &plain,
        &queries(&f.names, "www.", Rtype::A, false),
    );
    run(c, "unsigned", "nxdomain", &plain, &random_nx(4096, false));
    run(
        c,
        "unsigned",
        "apex_soa",
        &plain,
        &[build_query(1, &n("be."), Rtype::SOA, Some((1232, false)))],
    );

    run(
        c,
        "signed",
        "referral_secure_cached_ds_rrsig",
        &signed,
        &queries(&f.secure, "www.", Rtype::A, true),
    );
    run(
        c,
        "signed",
        "referral_insecure_optout_proof",
        &signed,
        &queries(&f.insecure, "www.", Rtype::A, true),
    );
    run(
        c,
        "signed",
        "nxdomain_nsec3_proof",
        &signed,
        &random_nx(4096, true),
    );
    run(
        c,
        "signed",
        "ds_answer",
        &signed,
        &queries(&f.secure, "", Rtype::DS, true),
    );
    run(
        c,
        "signed",
        "dnskey",
        &signed,
        &[build_query(1, &n("be."), Rtype::DNSKEY, Some((1232, true)))],
    );

    // The same through respond: RRL that does not limit (one bucket update per answer),
    // cookies on (the queries carry none, as dnsperf's), counters per thread.
    let open = belfry::rrl::Rrl::new(belfry::rrl::Settings {
        rates: [1_000_000; 4],
        window: 1,
        ..Default::default()
    });
    let secrets = belfry::cookie::Secrets::random().unwrap();
    let guards = Guards {
        rrl: Some(&open),
        cookies: Some(&secrets),
    };
    let now = belfry::dnssec::tick();
    let client = Client {
        ip: "192.0.2.1".parse().unwrap(),
        tcp: false,
        now,
    };
    run_guarded(
        c,
        "referral_secure_cached_ds_rrsig",
        &signed,
        &guards,
        &client,
        &queries(&f.secure, "www.", Rtype::A, true),
    );
    run_guarded(
        c,
        "nxdomain_nsec3_proof",
        &signed,
        &guards,
        &client,
        &random_nx(4096, true),
    );
    // A flood from one network at the default rate: nearly every answer dropped or slipped.
    let limiting = belfry::rrl::Rrl::new(belfry::rrl::Settings::default());
    let guards = Guards {
        rrl: Some(&limiting),
        cookies: Some(&secrets),
    };
    run_guarded(
        c,
        "nxdomain_nsec3_proof_limited",
        &signed,
        &guards,
        &client,
        &random_nx(4096, true),
    );
    run_guarded(
        c,
        "referral_secure_limited",
        &signed,
        &guards,
        &client,
        &queries(&f.secure[..1], "www.", Rtype::A, true),
    );

    // A cold signature (sign + verify, as the signer does) next to raw ring.
    let data = vec![0x5au8; 120];
    for alg in [
        Algorithm::EcdsaP256Sha256,
        Algorithm::Ed25519,
        Algorithm::RsaSha256,
    ] {
        let der = key::generate(alg).unwrap();
        let k = SigningKey::from_pkcs8(alg, KeyRole::Zsk, &der).unwrap();
        let mut g = c.benchmark_group(format!("cold_signature_{}", alg.name().to_lowercase()));
        if alg == Algorithm::RsaSha256 {
            g.sample_size(20);
        }
        g.bench_function("ring_sign_only", |b| {
            b.iter(|| black_box(k.sign(black_box(&data)).unwrap()))
        });
        g.bench_function("belfry_sign_and_verify_rrset", |b| {
            let fields = belfry::dnssec::rrsig::RrsigFields {
                type_covered: 43,
                algorithm: alg.number(),
                labels: 2,
                original_ttl: 3600,
                expiration: 2_000_000_000,
                inception: 1_700_000_000,
                key_tag: k.key_tag(),
                signer: b"\x02be\x00",
            };
            let mut scratch = Vec::new();
            let rd: &[u8] = &data[..36];
            b.iter(|| {
                black_box(
                    belfry::dnssec::rrsig::sign_rrset(
                        &k,
                        &fields,
                        b"\x03foo\x02be\x00",
                        1,
                        &[rd],
                        &mut scratch,
                    )
                    .unwrap(),
                )
            })
        });
        g.finish();
    }

    // Publishing changes to the 1.8 M zone: suppressions (one secure, one insecure,
    // a 1,000-entry bulk change) and a zone edit of one delegation (NS + DS).
    let entry = |d: &str| Suppression {
        name: n(d),
        reason: "bench".into(),
        case: "B-1".into(),
        added_by: "bench".into(),
        added_at: publish::now_secs(),
        expires: None,
        ede: EdeKind::Blocked,
    };
    let p = &f.publisher;
    let lift = |ds: &[String]| Change::Lift {
        names: ds.iter().map(|d| n(d)).collect(),
        reason: "bench".into(),
    };
    // One takedown and its lift.
    let add_remove = |d: &String| {
        p.apply(
            Change::Suppress {
                entries: vec![entry(d)],
            },
            "bench",
            None,
        )
        .unwrap();
        p.apply(lift(std::slice::from_ref(d)), "bench", None)
            .unwrap();
    };
    let mut g = c.benchmark_group("publish_1m8");
    g.sample_size(20);
    for (id, pool) in [
        ("suppress_secure_add_remove", &f.secure),
        ("suppress_insecure_add_remove", &f.insecure),
    ] {
        let mut i = 0usize;
        g.bench_function(id, |b| {
            b.iter(|| {
                add_remove(&pool[i % pool.len()]);
                i += 1;
            })
        });
    }
    let mut i = 0usize;
    g.bench_function("edit_one_delegation_ns_ds", |b| {
        b.iter(|| {
            let d = &f.secure[i % f.secure.len()];
            i += 1;
            let mut ds = vec![0x30, 0x39, 13, 2];
            ds.extend_from_slice(&[(i % 251) as u8; 32]);
            let edit = NameEdit {
                name: n(d),
                sets: vec![
                    RecSet {
                        rtype: Rtype::NS.0,
                        ttl: 3600,
                        rdatas: vec![n("ns1.bench-hosting.net."), n("ns2.bench-hosting.net.")],
                    },
                    RecSet {
                        rtype: Rtype::DS.0,
                        ttl: 3600,
                        rdatas: vec![ds],
                    },
                ],
                replace_all: false,
            };
            p.apply(
                Change::Edit {
                    edits: vec![edit],
                    source: EditSource::Update,
                    source_serial: None,
                    force: false,
                    fingerprint: None,
                },
                "bench",
                None,
            )
            .unwrap();
        })
    });
    g.sample_size(10);
    g.bench_function("suppress_bulk_1000_add_then_remove", |b| {
        let domains: Vec<String> = f.names[100_000.min(f.names.len() - 1000)..][..1000].to_vec();
        b.iter_batched(
            || domains.iter().map(|d| entry(d)).collect::<Vec<_>>(),
            |entries| {
                p.apply(Change::Suppress { entries }, "bench", None)
                    .unwrap();
                p.apply(lift(&domains), "bench", None).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // The hot path with 100,000 names listed against an empty list, back to back
    // (the listed names are outside the 20,000 the queries use), then a single
    // takedown and its lift with those 100,000 listed.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let secure_q = queries(&f.secure, "www.", Rtype::A, true);
    let insecure_q = queries(&f.insecure, "www.", Rtype::A, true);
    let nx_q = random_nx(4096, true);
    let empty = p.snapshot_full();
    belfry::service::sign_missing(&empty, threads, &|| false).unwrap();
    let listed: Vec<Suppression> = f
        .names
        .iter()
        .skip(20_000)
        .take(100_000)
        .map(|d| entry(d))
        .collect();
    // The three query kinds against one version.
    let answers = |c: &mut Criterion, group: &str, snap: &Snapshot| {
        let kinds = [
            ("referral_secure_cached_ds_rrsig", &secure_q),
            ("referral_insecure_optout_proof", &insecure_q),
            ("nxdomain_nsec3_proof", &nx_q),
        ];
        for (id, q) in kinds {
            run(c, group, id, snap, q);
        }
    };
    answers(c, "list_empty", &empty);
    let count = listed.len();
    let t = std::time::Instant::now();
    p.apply(Change::Suppress { entries: listed }, "bench", None)
        .unwrap();
    let snap = p.snapshot_full();
    let made = belfry::service::sign_missing(&snap, threads, &|| false).unwrap();
    eprintln!(
        "listed {count} names in {:.1} s ({made} RRsets signed after)",
        t.elapsed().as_secs_f64()
    );
    answers(c, "list_100k_listed", &snap);
    let mut g = c.benchmark_group("publish_1m8_100k_listed");
    g.sample_size(20);
    let mut i = 0usize;
    g.bench_function("suppress_secure_add_remove", |b| {
        b.iter(|| {
            add_remove(&f.secure[i % f.secure.len()]);
            i += 1;
        })
    });
    g.finish();
    // The same queries once the 100,000 are lifted again: what a bulk change
    // leaves behind (shards rebuilt twice, a used heap) without the list.
    let names: Vec<String> = f.names.iter().skip(20_000).take(100_000).cloned().collect();
    p.apply(lift(&names), "bench", None).unwrap();
    let lifted = p.snapshot_full();
    belfry::service::sign_missing(&lifted, threads, &|| false).unwrap();
    answers(c, "list_lifted", &lifted);
    let _ = std::fs::remove_dir_all(&f.dir);
}

criterion_group!(name = handler; config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1)); targets = benches);
criterion_main!(handler);
