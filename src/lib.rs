//! belfry: an authoritative DNS server for a top-level-domain registry.
//!
//! Layout, one concern per module:
//! - [`name`], [`wire`]: names, canonical keys, DNS messages on the wire;
//! - [`zone`]: master-file loading, checks, the query-ready index, a zone generator;
//! - [`handler`]: the sans-IO query path (bytes in, bytes out);
//! - [`rrl`], [`cookie`]: response rate limiting and DNS cookies, consulted by the handler;
//! - [`metrics`]: per-worker counters and the Prometheus text of `GET /metrics`;
//! - [`dnstap`]: queries and answers copied to a Frame Streams collector, off the query path;
//! - [`dnssec`]: keys, NSEC3 chain, signatures made once and cached;
//! - [`suppress`]: the live suppression list (Revoke+), its file, audit log and admin API;
//! - [`server`]: UDP/TCP transport on tokio;
//! - [`publish`]: the publisher, the one writer of zone versions;
//! - [`service`]: loading, the transport's view of the publisher, background work;
//! - [`config`], [`cli`]: configuration file and command line;
//! - [`tsig`], [`acl`]: transaction signatures (RFC 8945) and who may transfer, notify, update;
//! - [`control`]: what a primary answers besides queries: AXFR/IXFR out, NOTIFY in and
//!   out, dynamic update over the network, signed messages;
//! - [`update`]: RFC 2136 dynamic update parsing, prerequisites and application;
//! - [`xfr`]: inbound AXFR/IXFR, NOTIFY messages; [`serial`]: RFC 1982 serial arithmetic;
//! - [`ops`]: logging, signals, systemd notification, descriptor limits, progress;
//! - [`hint`]: cache prefetch hints for the query path.

pub mod acl;
pub mod cli;
pub mod config;
pub mod control;
pub mod cookie;
pub mod dnssec;
pub mod dnstap;
pub mod handler;
pub mod hint;
pub mod keys;
pub mod metrics;
pub mod name;
pub mod ops;
pub mod publish;
pub mod rrl;
pub mod serial;
pub mod server;
pub mod service;
pub mod suppress;
pub mod tsig;
pub mod update;
pub mod watchlist;
pub mod wire;
pub mod xfr;
pub mod zone;
