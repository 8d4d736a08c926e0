//! The `belfry` command: see `belfry --help` and the README.

// jemalloc instead of glibc's malloc: after a bulk change the publisher's heap
// holds millions of small free chunks, and glibc's consolidation of them made a
// single takedown several times slower and kept the memory (README, "Memory
// allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's figures (refreshed by advancing its statistics epoch).
fn heap() -> Option<belfry::ops::heap::Heap> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(belfry::ops::heap::Heap {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

fn main() {
    // Purge freed pages from a background thread (after the decay time, 10 s)
    // rather than only when the next allocation comes along.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    belfry::ops::heap::set_reader(heap);
    std::process::exit(belfry::cli::main());
}
