//! belfry's fuzz targets (cargo fuzz / libFuzzer); the targets and their checks are in [`targets`].

pub mod targets;

pub use targets::*;
