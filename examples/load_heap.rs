//! Heap and RSS while a zone file loads, sampled every 100 ms with the server's allocator.
//!
//! `cargo run --release --example load_heap -- ZONE_FILE ORIGIN`
//!
//! Prints one line per sample (seconds, heap allocated, jemalloc resident, process
//! RSS, in MB) and the peaks, so the loader's phases can be told apart by shape.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn sample() -> (u64, u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().unwrap();
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096;
    (
        stats::allocated::read().unwrap() as u64,
        stats::resident::read().unwrap() as u64,
        rss,
    )
}

fn main() {
    belfry::ops::heap::jemalloc::register();
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 3 {
        eprintln!("usage: load_heap ZONE_FILE ORIGIN");
        std::process::exit(2);
    }
    let origin = belfry::name::from_text(&a[2], &[0]).expect("origin");
    let path = std::path::PathBuf::from(&a[1]);
    let done = AtomicBool::new(false);
    let t = Instant::now();
    let mb = |b: u64| b >> 20;
    let (zone, peaks) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peaks = (0, 0, 0);
            while !done.load(Ordering::Relaxed) {
                let (h, r, rss) = sample();
                peaks = (peaks.0.max(h), peaks.1.max(r), peaks.2.max(rss));
                println!(
                    "{:6.1} s  heap {:5} MB  resident {:5} MB  RSS {:5} MB",
                    t.elapsed().as_secs_f64(),
                    mb(h),
                    mb(r),
                    mb(rss)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            peaks
        });
        let zone = belfry::zone::load_file(&path, &origin).expect("the zone loads");
        println!("{:6.1} s  loaded", t.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        (zone, sampler.join().unwrap())
    });
    let (h, r, rss) = sample();
    println!(
        "loaded: heap {} MB (index {} MB), resident {} MB, RSS {} MB; peaks: heap {} MB, resident {} MB, RSS {} MB",
        mb(h),
        mb(zone.heap_bytes() as u64),
        mb(r),
        mb(rss),
        mb(peaks.0),
        mb(peaks.1),
        mb(peaks.2)
    );
}
