//! What a long suppression list costs in heap, measured in-process with the server's allocator.
//!
//! `cargo run --release --example list_heap -- [DELEGATIONS] [LISTED]` (defaults 400,000 and 100,000).
//!
//! Generates a zone, signs it, publishes it, signs what the first queries would,
//! then suppresses LISTED delegations in one change and lifts them again. After
//! each step it prints the heap jemalloc counts as allocated (the version
//! before the change is dropped first), so the difference is what the list holds.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use belfry::publish;
use belfry::publish::change::{Change, Suppression};
use belfry::suppress::EdeKind;

fn allocated() -> u64 {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().unwrap();
    stats::allocated::read().unwrap() as u64
}

fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn n(s: &str) -> Vec<u8> {
    belfry::name::from_text(s, &[0]).unwrap()
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|v| v.parse().expect("a count"))
        .collect();
    let count = a.first().copied().unwrap_or(400_000);
    let listed = a.get(1).copied().unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("belfry-list-heap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (zone, names) = publish::lab::generated_zone(&dir.join("be.zone"), count).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let p = publish::lab::signed_publisher(zone).unwrap();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    belfry::service::sign_missing(&p.snapshot_full(), threads, &|| false).unwrap();
    let make = || -> Vec<Suppression> {
        names
            .iter()
            .take(listed)
            .map(|d| Suppression {
                name: n(d),
                reason: "takedown by the registry".into(),
                case: "CASE-2026-000001".into(),
                added_by: "operator".into(),
                added_at: publish::now_secs(),
                expires: None,
                ede: EdeKind::Blocked,
            })
            .collect()
    };
    let base = allocated();
    let zone_mb = || mb(p.snapshot_full().zone.heap_bytes() as u64);
    println!(
        "{count} delegations, signed: {:.1} MB (zone index {:.1} MB)",
        mb(base),
        zone_mb()
    );
    let entries = make();
    let with_entries = allocated();
    println!(
        "{listed} entries as values, before the change: {:.1} MB ({:.0} B each)",
        mb(with_entries - base),
        (with_entries - base) as f64 / listed as f64
    );
    drop(entries);
    // Apply a change, sign what it left unsigned (as the server does in the
    // background), and return how long the change took and the heap after.
    let publish = |change: Change| {
        let t = std::time::Instant::now();
        p.apply(change, "bench", None).unwrap();
        let secs = t.elapsed().as_secs_f64();
        belfry::service::sign_missing(&p.snapshot_full(), threads, &|| false).unwrap();
        (secs, allocated())
    };
    let (secs, after) = publish(Change::Suppress { entries: make() });
    println!(
        "{listed} listed ({secs:.1} s): {:.1} MB (zone index {:.1} MB), {:.1} MB over the signed zone ({:.0} B per entry)",
        mb(after),
        zone_mb(),
        mb(after.saturating_sub(base)),
        after.saturating_sub(base) as f64 / listed as f64
    );
    let (secs, lifted) = publish(Change::Lift {
        names: names.iter().take(listed).map(|d| n(d)).collect(),
        reason: "bench".into(),
    });
    println!(
        "lifted ({secs:.1} s): {:.1} MB (zone index {:.1} MB), {:+.1} MB against the signed zone",
        mb(lifted),
        zone_mb(),
        (lifted as f64 - base as f64) / (1 << 20) as f64
    );
}
