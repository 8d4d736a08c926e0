//! Hints to the processor that change no result.

/// Start loading the cache line that holds `r`, so that a miss on it overlaps the work
/// done before it is read instead of stalling that read. Does nothing where there is no
/// prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    // SAFETY: SSE is part of every x86_64 target, and a prefetch only hints the cache: it
    // reads nothing into the program and cannot fault (the address is of a live value).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            r as *const T as *const i8,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
