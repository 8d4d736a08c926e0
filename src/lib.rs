//! belfry: an authoritative DNS server for a top-level-domain registry.
pub mod name;
pub mod wire;
