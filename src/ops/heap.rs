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
