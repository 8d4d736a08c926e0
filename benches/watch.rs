//! What watch lists add to the change path: a 100,000-name list against a
//! 1,000-delegation reload and a one-delegation update, on a signed generated zone.
//!
//! `cargo bench --bench watch` (`BELFRY_BENCH_DELEGATIONS`: zone size, default 100,000).
//! Groups:
//! - `watch_lookup`: the lookup itself ([`Lists::candidates`]) for the edits of a
//!   1,000-delegation reload (none or 10 of them listed) and of a single update;
//! - `watch_change`: the same changes published end to end (checked, signed,
//!   swapped in; each iteration adds the delegations and removes them again), with
//!   no watch list and with the 100,000-name list in force (no name of it is hit,
//!   the common case). The difference of the medians is the added time per change.

use belfry::publish::change::{Change, EditSource, NameEdit};
use belfry::publish::edit::RecSet;
use belfry::publish::{self, Publisher};
use belfry::watchlist::{ListConfig, Lists, Policy as WatchPolicy};
use belfry::wire::Rtype;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const LISTED: usize = 100_000;

fn n(s: &str) -> Vec<u8> {
    belfry::name::from_text(s, &[0]).unwrap()
}

fn delegation(name: &str, del: bool) -> NameEdit {
    NameEdit {
        name: n(name),
        sets: if del {
            Vec::new()
        } else {
            vec![RecSet {
                rtype: Rtype::NS.0,
                ttl: 3600,
                rdatas: vec![n("ns1.bench-hosting.net."), n("ns2.bench-hosting.net.")],
            }]
        },
        replace_all: true,
    }
}

fn change(edits: Vec<NameEdit>, source: EditSource) -> Change {
    Change::Edit {
        edits,
        source,
        source_serial: None,
        force: true,
        fingerprint: None,
    }
}

fn publisher(dir: &std::path::Path, count: usize) -> Publisher {
    let (zone, _) = publish::lab::generated_zone(&dir.join("be.zone"), count).unwrap();
    publish::lab::signed_publisher(zone).unwrap()
}

fn lists(dir: &std::path::Path) -> Lists {
    let file = dir.join("iwf.txt");
    let mut text = String::with_capacity(LISTED * 40);
    for i in 0..LISTED {
        text.push_str(&format!("listed-{i:06}-hopping.be. IWF ref-{i}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let t = std::time::Instant::now();
    let l = Lists::load(&[ListConfig {
        name: "iwf".into(),
        file,
        policy: WatchPolicy::Alert,
        ede: None,
        webhook: None,
    }])
    .unwrap();
    eprintln!(
        "read a {LISTED}-name watch list in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    l
}

fn benches(c: &mut Criterion) {
    let count: usize = std::env::var("BELFRY_BENCH_DELEGATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("belfry-bench-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = publisher(&dir, count);
    let watch = lists(&dir);
    let reload_names: Vec<String> = (0..1000).map(|i| format!("new-{i:04}-bench.be.")).collect();
    let add_1000: Vec<NameEdit> = reload_names.iter().map(|d| delegation(d, false)).collect();
    let del_1000: Vec<NameEdit> = reload_names.iter().map(|d| delegation(d, true)).collect();
    let add_1 = vec![delegation("fresh-update-bench.be.", false)];
    let del_1 = vec![delegation("fresh-update-bench.be.", true)];

    let mut g = c.benchmark_group("watch_lookup");
    g.bench_function("reload_1000_delegations_100k_list", |b| {
        b.iter(|| black_box(watch.candidates(black_box(&add_1000))))
    });
    let mut with_hits = add_1000.clone();
    for (i, e) in with_hits.iter_mut().take(10).enumerate() {
        e.name = n(&format!("listed-{:06}-hopping.be.", i * 997));
    }
    assert_eq!(watch.candidates(&with_hits).len(), 10);
    g.bench_function("reload_1000_delegations_10_listed_100k_list", |b| {
        b.iter(|| black_box(watch.candidates(black_box(&with_hits))))
    });
    g.bench_function("update_1_delegation_100k_list", |b| {
        b.iter(|| black_box(watch.candidates(black_box(&add_1))))
    });
    g.finish();

    let mut g = c.benchmark_group("watch_change");
    g.sample_size(10);
    for (with, label) in [(false, "no_list"), (true, "100k_list")] {
        p.set_watch_lists(if with {
            watch.clone()
        } else {
            Lists::default()
        });
        g.bench_function(format!("reload_1000_delegations_add_remove/{label}"), |b| {
            b.iter(|| {
                p.apply(change(add_1000.clone(), EditSource::Reload), "bench", None)
                    .unwrap();
                p.apply(change(del_1000.clone(), EditSource::Reload), "bench", None)
                    .unwrap();
            })
        });
        g.bench_function(format!("update_1_delegation_add_remove/{label}"), |b| {
            b.iter(|| {
                p.apply(change(add_1.clone(), EditSource::Update), "bench", None)
                    .unwrap();
                p.apply(change(del_1.clone(), EditSource::Update), "bench", None)
                    .unwrap();
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(name = watch; config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1)); targets = benches);
criterion_main!(watch);
