//! The fsync latency of small appends (an audit line, a journal entry) made while
//! a large file is written and fsynced beside them, in the same directory: the
//! large file written whole, then through `suppress::list::write_atomic` (which
//! sends it to the disk 1 MiB at a time). On ext4 the fsync of the small file
//! commits the file system's journal, which waits for the large file's data.
//!
//! `cargo run --release --example fsync_beside -- DIR [MB]` (DIR on the file
//! system under test; it writes `DIR/fsync-beside.*` and removes them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn whole(path: &Path, data: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(data).expect("write");
    f.sync_all().expect("fsync");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: fsync_beside DIR [MB]");
        std::process::exit(2);
    };
    let mb: usize = args.get(2).map_or(14, |m| m.parse().expect("MB"));
    let data = vec![b'x'; mb << 20];
    let big = dir.join("fsync-beside.big");
    let small = dir.join("fsync-beside.log");
    for round in 0..6 {
        let chunked = round % 2 == 1;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let small_path = small.clone();
        let appender = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(small_path)
                .expect("small file");
            let mut v = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                f.write_all(&[b'a'; 100]).expect("append");
                f.sync_all().expect("fsync");
                v.push(t.elapsed().as_secs_f64() * 1000.0);
                std::thread::sleep(Duration::from_millis(2));
            }
            v
        });
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        for _ in 0..5 {
            if chunked {
                belfry::suppress::list::write_atomic(&big, &data).expect("write_atomic");
            } else {
                whole(&big, &data);
            }
        }
        let took = t.elapsed();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let mut v = appender.join().expect("appender");
        v.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "{}: 5 writes of {mb} MB in {:.0} ms; {} small fsyncs beside: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            if chunked { "1 MiB at a time" } else { "whole" },
            took.as_secs_f64() * 1000.0,
            v.len(),
            p(0.5),
            p(0.99),
            v[v.len() - 1]
        );
    }
    for p in [&big, &small, &belfry::suppress::list::prev_path(&big)] {
        let _ = std::fs::remove_file(p);
    }
}
