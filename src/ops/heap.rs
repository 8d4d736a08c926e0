//! The heap as the allocator sees it, for status and metrics. The binary
//! chooses the allocator (`src/main.rs`) and registers how to read it; a
//! program that registers nothing (the library's tests) reports no figures.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Heap figures, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heap {
    /// Held by the program (allocated and not yet freed).
    pub allocated: u64,
    /// In resident pages the allocator holds (the program's share and the
    /// allocator's own: free space not yet given back, metadata).
    pub resident: u64,
}

static READER: OnceLock<fn() -> Option<Heap>> = OnceLock::new();

/// Register how to read the heap figures (once, at start; later calls are ignored).
pub fn set_reader(f: fn() -> Option<Heap>) {
    let _ = READER.set(f);
}

/// The heap figures now, if the allocator can tell.
pub fn read() -> Option<Heap> {
    READER.get().and_then(|f| f())
}

/// How to steer the allocator's arenas (per-thread pools of pages).
#[derive(Clone, Copy, Debug)]
pub struct Arenas {
    /// The calling thread's arena.
    pub current: fn() -> Option<u32>,
    /// Make the calling thread allocate from an arena.
    pub join: fn(u32),
    /// Give the pages freed in every arena back to the kernel now.
    pub purge: fn(),
}

static ARENAS: OnceLock<Arenas> = OnceLock::new();

/// Register how to steer the arenas (once, at start; later calls are ignored).
pub fn set_arenas(a: Arenas) {
    let _ = ARENAS.set(a);
}

/// The calling thread's arena, for [`join_arena`] on threads that take over its
/// work (`None` when the allocator has no arenas to steer).
///
/// Memory freed by another thread goes back to the arena it came from, and only
/// that arena's threads reuse it: when one thread builds a zone and helper
/// threads turn it into its final form, the helpers free the first form into
/// the builder's arena while taking fresh pages for the second in their own.
/// Loading the 1.8 M-delegation zone so touched 720 MB of pages to hold 420 MB
/// at most; helpers in the builder's arena reuse what they free.
pub fn current_arena() -> Option<u32> {
    ARENAS.get().and_then(|a| (a.current)())
}

/// Make the calling thread allocate from `arena` (from [`current_arena`]).
pub fn join_arena(arena: u32) {
    if let Some(a) = ARENAS.get() {
        (a.join)(arena)
    }
}

/// Give freed pages back to the kernel now rather than after the allocator's
/// decay time: after a large transient structure is dropped (a zone file's
/// build), while more memory is about to be taken.
pub fn purge() {
    if let Some(a) = ARENAS.get() {
        (a.purge)()
    }
}

/// The hooks for jemalloc, for a program that made it its global allocator.
pub mod jemalloc {
    use super::{Arenas, Heap};

    /// jemalloc's figures (refreshed by advancing its statistics epoch).
    fn read() -> Option<Heap> {
        use tikv_jemalloc_ctl::{epoch, stats};
        epoch::advance().ok()?;
        Some(Heap {
            allocated: stats::allocated::read().ok()? as u64,
            resident: stats::resident::read().ok()? as u64,
        })
    }

    /// The calling thread's arena.
    fn current() -> Option<u32> {
        // SAFETY: `thread.arena` is an unsigned that jemalloc reads and writes.
        unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"thread.arena\0") }.ok()
    }

    /// Move the calling thread to an arena.
    fn join(arena: u32) {
        // SAFETY: as above; jemalloc checks the index.
        let _ = unsafe { tikv_jemalloc_ctl::raw::write::<u32>(b"thread.arena\0", arena) };
    }

    /// Purge the dirty pages of every arena (`MALLCTL_ARENAS_ALL` is 4096).
    fn purge() {
        // SAFETY: a void control: no old or new value is passed.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.purge".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }

    /// Register jemalloc's figures and arena controls (see [`super::set_reader`]).
    pub fn register() {
        super::set_reader(read);
        super::set_arenas(Arenas {
            current,
            join,
            purge,
        });
    }
}
