//! The query path on the sample zone (see `belfry_fuzz::query_handler`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| belfry_fuzz::query_handler(data));
