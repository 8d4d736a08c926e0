//! The master-file parser and zone checks (see `belfry_fuzz::master_file`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| belfry_fuzz::master_file(data));
