//! Shared helpers for the integration tests, one concern per file:
//! - [`server`]: a real `belfry serve` on loopback in its own directory, and the admin API;
//! - [`clients`]: dig, kdig, delv and small Rust UDP/TCP clients, with dig-output readers;
//! - [`unbound`]: a validating unbound that uses belfry as its stub;
//! - [`oracle`]: hickory-proto, which shares no code with belfry, parses every answer the
//!   Rust clients receive and verifies every RRSIG in them against the served DNSKEYs.
#![allow(dead_code, unused_imports)]

pub mod clients;
pub mod oracle;
pub mod server;
pub mod unbound;

pub use clients::*;
pub use server::*;
pub use unbound::*;
