//! Replays the fuzz corpus and every saved fuzz crash through the fuzz targets' checks.
//!
//! The targets live in `fuzz/src/targets.rs` (built by `cargo fuzz` too); here
//! they run under plain `cargo test`, so a crash once found and saved in
//! `fuzz/regressions/<target>/` is a regression test on every build.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".keep"));
    v.sort();
    v
}

#[test]
fn corpus_and_regressions_pass_every_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    for (name, run) in targets::TARGETS {
        let seeds = inputs(&fuzz.join("corpus").join(name));
        assert!(!seeds.is_empty(), "{name} has no committed seed corpus");
        let saved = inputs(&fuzz.join("regressions").join(name));
        for p in seeds.iter().chain(&saved) {
            let data = std::fs::read(p).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failures.push(p.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that fail: {failures:?}");
}
