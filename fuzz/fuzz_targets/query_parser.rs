//! The query parser (see `belfry_fuzz::query_parser`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| belfry_fuzz::query_parser(data));
