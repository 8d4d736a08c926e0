//! belfry: an authoritative DNS server for a top-level-domain registry.
//!
//! Layout, one concern per module:
//! - [`name`], [`wire`]: names, canonical keys, DNS messages on the wire;
//! - [`zone`]: master-file loading, checks, the query-ready index, a zone generator;
//! - [`handler`]: the sans-IO query path (bytes in, bytes out);
//! - [`dnssec`]: keys, NSEC3 chain, signatures made once and cached;
//! - [`suppress`]: the live suppression list (Revoke+), its file, audit log and admin API;
//! - [`server`]: UDP/TCP transport on tokio;
//! - [`service`]: the current snapshot and how it is swapped;
//! - [`ops`]: logging, signals, systemd notification, descriptor limits, progress;
//! - [`config`], [`cli`]: configuration file and command line.

pub mod cli;
pub mod config;
pub mod dnssec;
pub mod handler;
pub mod keys;
pub mod name;
pub mod ops;
pub mod server;
pub mod service;
pub mod suppress;
pub mod wire;
pub mod zone;
