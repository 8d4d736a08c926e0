//! The `belfry` command: see `belfry --help` and the README.

// jemalloc instead of glibc's malloc: after a bulk change the publisher's heap
// holds millions of small free chunks, and glibc's consolidation of them made a
// single takedown several times slower and kept the memory (README, "Memory
// allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // Purge freed pages from a background thread (after the decay time, 10 s)
    // rather than only when the next allocation comes along.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    belfry::ops::heap::jemalloc::register();
    std::process::exit(belfry::cli::main());
}
