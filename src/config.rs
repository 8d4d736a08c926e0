//! The configuration file (`belfry.toml`): what it may hold and how it is checked.
//!
//! TOML, read with serde; unknown keys are errors. Paths inside are relative to
//! the directory of the configuration file. Every error names the file (and,
//! for syntax errors, the line) and what is wrong; nothing is half-applied.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration error, naming the file.
#[derive(Debug, Clone)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Network settings.
    #[serde(default)]
    pub server: ServerSection,
    /// The zone served.
    pub zone: ZoneSection,
    /// DNSSEC signing; absent or `enabled = false` serves the zone unsigned.
    #[serde(default)]
    pub dnssec: DnssecSection,
    /// The suppression list and its admin API.
    #[serde(default)]
    pub suppress: SuppressSection,
    /// Where published state is kept across restarts (journal, checkpoints).
    #[serde(default)]
    pub state: StateSection,
    /// Server logging.
    #[serde(default)]
    pub log: LogSection,
    /// Response rate limiting.
    #[serde(default)]
    pub rrl: RrlSection,
    /// DNS cookies.
    #[serde(default)]
    pub cookies: CookiesSection,
    /// TSIG keys (RFC 8945): written here or read from BIND key files.
    #[serde(default)]
    pub tsig: crate::tsig::TsigConfig,
    /// Who may transfer the zone, send NOTIFY and send dynamic updates (see [`crate::acl`]).
    #[serde(default)]
    pub acl: crate::acl::AclConfig,
    /// Zone transfers out: limits, secondaries and other NOTIFY targets.
    #[serde(default)]
    pub transfer: TransferSection,
    /// Watch lists (`[[watch.list]]`): names to alert on or suppress when they go live.
    #[serde(default)]
    pub watch: crate::watchlist::WatchSection,
    /// dnstap output of queries and answers to a Frame Streams collector.
    #[serde(default)]
    pub dnstap: DnstapSection,
}

fn default_dnstap_sample() -> u32 {
    1
}
fn default_dnstap_queue() -> usize {
    4096
}

/// `[dnstap]`: AUTH_QUERY / AUTH_RESPONSE messages to a Frame Streams collector
/// (see [`crate::dnstap`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnstapSection {
    /// Send dnstap messages (off by default).
    #[serde(default)]
    pub enabled: bool,
    /// The collector's Unix socket (`fstrm_capture -u`).
    pub socket: Option<PathBuf>,
    /// The collector's TCP address (`fstrm_capture -a/-p`); `socket` or this.
    pub tcp: Option<SocketAddr>,
    /// `Dnstap.identity` (default: `[server] identity` when set).
    pub identity: Option<String>,
    /// `Dnstap.version` (default: `belfry <version>`).
    pub version: Option<String>,
    /// Keep one query in `sample` (after the filters); 1: every one.
    #[serde(default = "default_dnstap_sample")]
    pub sample: u32,
    /// Only queries answered NXDOMAIN.
    #[serde(default)]
    pub only_nxdomain: bool,
    /// Only queries denied by a suppression.
    #[serde(default)]
    pub only_suppressed: bool,
    /// Only queries of this type (`A`, `NS`, `TYPE65`...).
    pub only_qtype: Option<String>,
    /// Captured queries each query thread may have waiting for the writer.
    #[serde(default = "default_dnstap_queue")]
    pub queue: usize,
}

impl Default for DnstapSection {
    fn default() -> Self {
        DnstapSection {
            enabled: false,
            socket: None,
            tcp: None,
            identity: None,
            version: None,
            sample: default_dnstap_sample(),
            only_nxdomain: false,
            only_suppressed: false,
            only_qtype: None,
            queue: default_dnstap_queue(),
        }
    }
}

fn default_max_transfers() -> usize {
    8
}
fn default_stall_timeout() -> u64 {
    30
}
fn default_control_threads() -> usize {
    2
}
fn default_control_queue() -> usize {
    128
}
fn default_notify_max_interval() -> u64 {
    60
}
fn default_notify_timeout_ms() -> u64 {
    1000
}

/// `[transfer]`: AXFR/IXFR out, NOTIFY out, and the control path's limits.
///
/// Who may transfer is decided by `[[acl.transfer]]` rules; this section says
/// whom to tell about changes and how much the control path may take at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSection {
    /// Most AXFR/IXFR answers streamed at once; more are refused.
    #[serde(default = "default_max_transfers")]
    pub max_transfers: usize,
    /// Seconds a transfer client may leave the next message unread before it is cut off.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: u64,
    /// Threads answering control messages (UPDATE, NOTIFY, IXFR, signed queries) that came over UDP.
    #[serde(default = "default_control_threads")]
    pub control_threads: usize,
    /// Control messages from UDP waiting for a thread; more are answered REFUSED at once.
    #[serde(default = "default_control_queue")]
    pub control_queue: usize,
    /// Secondaries: told of every new serial by NOTIFY; their progress is in the status.
    #[serde(default)]
    pub secondary: Vec<SecondaryConfig>,
    /// More NOTIFY targets (`address` or `address:port`, port 53 by default).
    #[serde(default)]
    pub also_notify: Vec<String>,
    /// TSIG key the NOTIFY messages to `also_notify` targets are signed with.
    pub notify_key: Option<String>,
    /// Longest wait between NOTIFY retries, seconds (the first retry comes after 1 s).
    #[serde(default = "default_notify_max_interval")]
    pub notify_max_interval: u64,
    /// How long one NOTIFY waits for its answer, milliseconds.
    #[serde(default = "default_notify_timeout_ms")]
    pub notify_timeout_ms: u64,
}

impl Default for TransferSection {
    fn default() -> Self {
        TransferSection {
            max_transfers: default_max_transfers(),
            stall_timeout: default_stall_timeout(),
            control_threads: default_control_threads(),
            control_queue: default_control_queue(),
            secondary: Vec::new(),
            also_notify: Vec::new(),
            notify_key: None,
            notify_max_interval: default_notify_max_interval(),
            notify_timeout_ms: default_notify_timeout_ms(),
        }
    }
}

/// `[[transfer.secondary]]`: one secondary server of the zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    /// A name for logs and the status (e.g. `knot-ams-1`).
    pub name: String,
    /// Where its NOTIFY goes: `address` or `address:port` (`[v6]:port`), port 53 by default.
    pub address: String,
    /// TSIG key NOTIFY messages to it are signed with (its transfers are then known by it too).
    pub key: Option<String>,
    /// Address its transfer requests come from, when not the NOTIFY address.
    pub source: Option<String>,
}

fn default_journal_bytes() -> u64 {
    512 << 20
}
fn default_journal_age() -> u64 {
    86400
}
fn default_checkpoint_interval() -> u64 {
    3600
}

/// `[state]`: the journal and checkpoints that make a restart lose nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// Directory for the journal and checkpoints; none = nothing published survives a restart.
    pub dir: Option<PathBuf>,
    /// Size budget of the journal in bytes (older records are dropped beyond it).
    #[serde(default = "default_journal_bytes")]
    pub journal_max_bytes: u64,
    /// Records older than this (seconds) are dropped when a restart no longer needs them.
    #[serde(default = "default_journal_age")]
    pub journal_max_age: u64,
    /// Seconds between checkpoints (one is also written once the zone is fully signed).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection {
            dir: None,
            journal_max_bytes: default_journal_bytes(),
            journal_max_age: default_journal_age(),
            checkpoint_interval: default_checkpoint_interval(),
        }
    }
}

fn default_listen() -> Vec<SocketAddr> {
    vec!["127.0.0.1:53".parse().expect("constant address parses")]
}
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
fn default_tcp_max() -> usize {
    1024
}
fn default_tcp_idle() -> u64 {
    10
}
fn default_payload() -> u16 {
    1232
}
fn default_tcp_per_address() -> usize {
    64
}
fn default_tcp_per_prefix() -> usize {
    256
}
fn default_prefix_v4() -> u8 {
    24
}
fn default_prefix_v6() -> u8 {
    56
}

/// `[server]`: listeners and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Addresses to serve on, UDP and TCP (IPv4 and IPv6).
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Most TCP connections open at once.
    #[serde(default = "default_tcp_max")]
    pub tcp_max_connections: usize,
    /// Seconds an idle TCP connection is kept (RFC 7766 §6.2.3).
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout: u64,
    /// Most queries on one TCP connection (0 = no limit).
    #[serde(default)]
    pub tcp_max_queries: usize,
    /// Most TCP connections open at once from one client address.
    #[serde(default = "default_tcp_per_address")]
    pub tcp_max_connections_per_address: usize,
    /// Most TCP connections open at once from one client prefix (see `tcp_prefix_v4`/`_v6`).
    #[serde(default = "default_tcp_per_prefix")]
    pub tcp_max_connections_per_prefix: usize,
    /// IPv4 prefix length that counts as one client network for TCP limits.
    #[serde(default = "default_prefix_v4")]
    pub tcp_prefix_v4: u8,
    /// IPv6 prefix length that counts as one client network for TCP limits.
    #[serde(default = "default_prefix_v6")]
    pub tcp_prefix_v6: u8,
    /// Largest UDP answer with EDNS (RFC 6891; 1232 avoids fragmentation).
    #[serde(default = "default_payload")]
    pub max_udp_payload: u16,
    /// Answer for CHAOS `id.server`; refused when absent.
    pub identity: Option<String>,
    /// Answer for CHAOS `version.bind`; refused when absent.
    pub version: Option<String>,
    /// NSID (RFC 5001) sent to queries that ask: a text, `0x` and hex digits, or
    /// `hostname`; off when absent.
    pub nsid: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            workers: default_workers(),
            tcp_max_connections: default_tcp_max(),
            tcp_idle_timeout: default_tcp_idle(),
            tcp_max_queries: 0,
            tcp_max_connections_per_address: default_tcp_per_address(),
            tcp_max_connections_per_prefix: default_tcp_per_prefix(),
            tcp_prefix_v4: default_prefix_v4(),
            tcp_prefix_v6: default_prefix_v6(),
            max_udp_payload: default_payload(),
            identity: None,
            version: None,
            nsid: None,
        }
    }
}

/// `[zone]`: the zone origin and its master file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSection {
    /// Zone origin, e.g. `be.`.
    pub origin: String,
    /// Master file path.
    pub file: PathBuf,
    /// How serials move on: `increment` (default), `unixtime` or `dateserial`.
    #[serde(default = "default_serial_policy")]
    pub serial_policy: crate::publish::SerialPolicy,
    /// Largest share of the delegations a reload may remove without `--force` (0.0–1.0).
    #[serde(default = "default_reload_share")]
    pub reload_max_removed_share: f64,
    /// A primary to take the unsigned zone from (AXFR/IXFR in; belfry signs in front of it).
    pub primary: Option<SocketAddr>,
    /// TSIG key file (BIND format) for the primary.
    pub primary_key_file: Option<PathBuf>,
    /// Which key of that file (default: the only one).
    pub primary_key: Option<String>,
    /// Seconds between SOA checks of the primary; 0 = the SOA's refresh field.
    #[serde(default)]
    pub primary_refresh: u64,
}

fn default_reload_share() -> f64 {
    0.02
}

fn default_serial_policy() -> crate::publish::SerialPolicy {
    crate::publish::SerialPolicy::Increment
}

fn yes() -> bool {
    true
}
fn default_key_dir() -> PathBuf {
    PathBuf::from("keys")
}
fn default_validity() -> u32 {
    14 * 86400
}
fn default_inception() -> u32 {
    3600
}
fn default_refresh() -> u32 {
    4 * 86400
}
fn default_jitter() -> u32 {
    86400
}
fn default_dnskey_ttl() -> u32 {
    3600
}

/// `[dnssec]`: keys and signing policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecSection {
    /// Sign the zone.
    #[serde(default)]
    pub enabled: bool,
    /// Directory holding the key files.
    #[serde(default = "default_key_dir")]
    pub key_dir: PathBuf,
    /// Base names of the active keys (`K<zone>+<alg>+<tag>`); empty = every key in `key_dir`.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Signature validity, seconds.
    #[serde(default = "default_validity")]
    pub validity: u32,
    /// Inception back-dating, seconds.
    #[serde(default = "default_inception")]
    pub inception_offset: u32,
    /// Re-sign when less than this many seconds of validity remain.
    #[serde(default = "default_refresh")]
    pub refresh: u32,
    /// Expiry jitter, seconds.
    #[serde(default = "default_jitter")]
    pub jitter: u32,
    /// DNSKEY TTL.
    #[serde(default = "default_dnskey_ttl")]
    pub dnskey_ttl: u32,
    /// NSEC3 extra iterations (RFC 9276: 0).
    #[serde(default)]
    pub nsec3_iterations: u16,
    /// NSEC3 salt in hex, empty for none (RFC 9276).
    #[serde(default)]
    pub nsec3_salt: String,
    /// NSEC3 opt-out.
    #[serde(default = "yes")]
    pub nsec3_opt_out: bool,
    /// Sign everything in the background after load (otherwise only on first use).
    #[serde(default = "yes")]
    pub presign: bool,
    /// Seconds until a change reached every secondary (key rollover timing, RFC 7583).
    #[serde(default = "default_propagation")]
    pub propagation_delay: u32,
    /// The parent's DS TTL, seconds.
    #[serde(default = "default_parent_ds_ttl")]
    pub parent_ds_ttl: u32,
    /// Seconds until a change at the parent reached all its servers.
    #[serde(default = "default_propagation")]
    pub parent_propagation_delay: u32,
    /// A ZSK's active life before it is rolled automatically, seconds (0: never).
    #[serde(default = "default_zsk_lifetime")]
    pub zsk_lifetime: u64,
    /// How KSKs are rolled: `double-ksk` (default) or `double-ds`.
    #[serde(default = "default_ksk_rollover")]
    pub ksk_rollover: crate::dnssec::lifecycle::KskMethod,
    /// Publish CDS and CDNSKEY for the KSKs the parent should have (RFC 7344, RFC 8078).
    #[serde(default)]
    pub cds: bool,
    /// Most RRsets re-signed by one change during a rollover.
    #[serde(default = "default_resign_batch")]
    pub resign_batch: u32,
    /// Milliseconds between two re-signing changes during a rollover.
    #[serde(default = "default_resign_pause")]
    pub resign_pause_ms: u64,
}

fn default_propagation() -> u32 {
    3600
}
fn default_parent_ds_ttl() -> u32 {
    86400
}
fn default_zsk_lifetime() -> u64 {
    30 * 86400
}
fn default_ksk_rollover() -> crate::dnssec::lifecycle::KskMethod {
    crate::dnssec::lifecycle::KskMethod::DoubleKsk
}
fn default_resign_batch() -> u32 {
    2000
}
fn default_resign_pause() -> u64 {
    500
}

impl Default for DnssecSection {
    fn default() -> Self {
        DnssecSection {
            enabled: false,
            key_dir: default_key_dir(),
            keys: Vec::new(),
            validity: default_validity(),
            inception_offset: default_inception(),
            refresh: default_refresh(),
            jitter: default_jitter(),
            dnskey_ttl: default_dnskey_ttl(),
            nsec3_iterations: 0,
            nsec3_salt: String::new(),
            nsec3_opt_out: true,
            presign: true,
            propagation_delay: default_propagation(),
            parent_ds_ttl: default_parent_ds_ttl(),
            parent_propagation_delay: default_propagation(),
            zsk_lifetime: default_zsk_lifetime(),
            ksk_rollover: default_ksk_rollover(),
            cds: false,
            resign_batch: default_resign_batch(),
            resign_pause_ms: default_resign_pause(),
        }
    }
}

fn default_ede_text() -> String {
    "suspended by the registry".into()
}
fn default_admin() -> SocketAddr {
    "127.0.0.1:8053".parse().expect("constant address parses")
}

/// `[suppress]`: the suppression list, audit log and admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressSection {
    /// The list file (TOML); none = no suppression list.
    pub file: Option<PathBuf>,
    /// Append-only JSON-lines audit log.
    pub audit_log: Option<PathBuf>,
    /// EDE extra text sent with suppressed answers.
    #[serde(default = "default_ede_text")]
    pub ede_text: String,
    /// Admin API address (loopback by default).
    #[serde(default = "default_admin")]
    pub admin_listen: SocketAddr,
    /// File holding the admin API token.
    pub admin_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) of the admin API; required with `admin_tls_key`
    /// for an `admin_listen` that is not loopback.
    pub admin_tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the admin API.
    pub admin_tls_key: Option<PathBuf>,
    /// Certificate (PEM) the CLI trusts for the admin API (default: `admin_tls_cert`).
    pub admin_tls_ca: Option<PathBuf>,
    /// Largest admin request head (request line and headers), bytes.
    #[serde(default = "default_max_header")]
    pub admin_max_header: usize,
    /// Largest admin request body, bytes.
    #[serde(default = "default_max_body")]
    pub admin_max_body: usize,
    /// Seconds one admin connection may take in all (head, body, change, answer).
    #[serde(default = "default_request_timeout")]
    pub admin_request_timeout: u64,
    /// Admin connections served at once.
    #[serde(default = "default_admin_connections")]
    pub admin_max_connections: usize,
    /// Milliseconds a hand-edited list file must stay unchanged before it is read.
    #[serde(default = "default_settle")]
    pub hand_edit_settle_ms: u64,
    /// Largest share of the list (0..1) one edit may lift without `allow_mass_removal = true`.
    #[serde(default = "default_max_removal")]
    pub hand_edit_max_removal: f64,
}

fn default_max_header() -> usize {
    16 * 1024
}
fn default_max_body() -> usize {
    64 << 20
}
fn default_request_timeout() -> u64 {
    60
}
fn default_admin_connections() -> usize {
    256
}
fn default_settle() -> u64 {
    1000
}
fn default_max_removal() -> f64 {
    0.1
}

impl Default for SuppressSection {
    fn default() -> Self {
        SuppressSection {
            file: None,
            audit_log: None,
            ede_text: default_ede_text(),
            admin_listen: default_admin(),
            admin_token_file: None,
            admin_tls_cert: None,
            admin_tls_key: None,
            admin_tls_ca: None,
            admin_max_header: default_max_header(),
            admin_max_body: default_max_body(),
            admin_request_timeout: default_request_timeout(),
            admin_max_connections: default_admin_connections(),
            hand_edit_settle_ms: default_settle(),
            hand_edit_max_removal: default_max_removal(),
        }
    }
}

fn default_filter() -> String {
    "info".into()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `journal` when standard error is systemd's journal stream, `text` otherwise.
    Auto,
    /// Human lines with RFC 3339 UTC timestamps.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
    /// `<priority>` prefixes and no timestamps, for journald (sd-daemon(3)).
    Journal,
}

fn default_rrl_rate() -> u32 {
    crate::rrl::DEFAULT_RATE
}
fn default_slip() -> u32 {
    2
}
fn default_window() -> u32 {
    15
}
fn default_table_size() -> usize {
    1 << 18
}

/// `[rrl]`: response rate limiting of UDP answers (see [`crate::rrl`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrlSection {
    /// Limit UDP answers per client network (on by default).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Answers per second per bucket (client network, class, name).
    #[serde(default = "default_rrl_rate")]
    pub rate: u32,
    /// Rate of positive answers (default: `rate`).
    pub answer_rate: Option<u32>,
    /// Rate of referrals (default: `rate`).
    pub referral_rate: Option<u32>,
    /// Rate of NXDOMAIN and NODATA answers (default: `rate`).
    pub negative_rate: Option<u32>,
    /// Rate of error answers (default: `rate`).
    pub error_rate: Option<u32>,
    /// Every `slip`-th limited answer goes out truncated (0: none, 1: every one).
    #[serde(default = "default_slip")]
    pub slip: u32,
    /// Seconds over which a flood is remembered (debt of `window` × rate).
    #[serde(default = "default_window")]
    pub window: u32,
    /// Prefix length of an IPv4 client network.
    #[serde(default = "default_prefix_v4")]
    pub ipv4_prefix: u8,
    /// Prefix length of an IPv6 client network.
    #[serde(default = "default_prefix_v6")]
    pub ipv6_prefix: u8,
    /// Buckets in the table (fixed at start; 8 bytes each).
    #[serde(default = "default_table_size")]
    pub table_size: usize,
    /// Networks never limited (`192.0.2.0/24`, `2001:db8::/32`, or an address).
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Compute and log limits, but send every answer.
    #[serde(default)]
    pub log_only: bool,
}

impl Default for RrlSection {
    fn default() -> Self {
        RrlSection {
            enabled: true,
            rate: default_rrl_rate(),
            answer_rate: None,
            referral_rate: None,
            negative_rate: None,
            error_rate: None,
            slip: default_slip(),
            window: default_window(),
            ipv4_prefix: default_prefix_v4(),
            ipv6_prefix: default_prefix_v6(),
            table_size: default_table_size(),
            exempt: Vec::new(),
            log_only: false,
        }
    }
}

/// `[cookies]`: DNS cookies (RFC 7873, server cookies of RFC 9018).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookiesSection {
    /// Answer COOKIE options (on by default).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// File of secrets, 32 hex digits a line: the first makes cookies, all are
    /// accepted. Shared by every anycast instance; re-read on SIGHUP. Without it
    /// a random secret is made at start.
    pub secret_file: Option<PathBuf>,
}

impl Default for CookiesSection {
    fn default() -> Self {
        CookiesSection {
            enabled: true,
            secret_file: None,
        }
    }
}

/// `[log]`: server logging (see [`crate::ops::log`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Level or `EnvFilter` directives (`info`, `warn,belfry::query=info`); `BELFRY_LOG`/`RUST_LOG` win.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// `auto` (default), `text`, `json` or `journal`.
    #[serde(default = "default_format")]
    pub format: LogFormat,
    /// Write to this file (reopened after rotation) instead of standard error.
    pub file: Option<PathBuf>,
    /// Log every query (target `belfry::query`, level info); off by default.
    #[serde(default)]
    pub queries: bool,
}

fn default_format() -> LogFormat {
    LogFormat::Auto
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            filter: default_filter(),
            format: LogFormat::Auto,
            file: None,
            queries: false,
        }
    }
}

impl Config {
    /// Read and check a configuration file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(path, &text)
    }

    /// Parse configuration text (for tests; `path` is used in errors and for relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // Never the values themselves: a config may hold secrets.
            let msg = crate::suppress::list::scrub(e.message());
            match line {
                Some(l) => ConfigError(format!("{}:{l}: {msg}", path.display())),
                None => ConfigError(format!("{}: {msg}", path.display())),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut c.zone.file);
        if let Some(p) = c.zone.primary_key_file.as_mut() {
            fix(p);
        }
        fix(&mut c.dnssec.key_dir);
        if let Some(p) = c.suppress.file.as_mut() {
            fix(p);
        }
        if let Some(p) = c.suppress.audit_log.as_mut() {
            fix(p);
        }
        for p in [
            &mut c.suppress.admin_token_file,
            &mut c.suppress.admin_tls_cert,
            &mut c.suppress.admin_tls_key,
            &mut c.suppress.admin_tls_ca,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        // A symlinked list file is followed, once, here: everything uses its target.
        if let Some(p) = c.suppress.file.as_mut() {
            *p = crate::suppress::list::resolve(p).map_err(ConfigError)?;
        }
        if let Some(p) = c.state.dir.as_mut() {
            fix(p);
        }
        if let Some(p) = c.log.file.as_mut() {
            fix(p);
        }
        if let Some(p) = c.cookies.secret_file.as_mut() {
            fix(p);
        }
        if let Some(p) = c.dnstap.socket.as_mut() {
            fix(p);
        }
        for p in c.tsig.files.iter_mut() {
            fix(p);
        }
        for l in c.watch.list.iter_mut() {
            fix(&mut l.file);
        }
        c.check(path)?;
        Ok(c)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(format!("{}: {m}", path.display())));
        if self.server.listen.is_empty() {
            return bad("[server] listen: at least one address is needed".into());
        }
        if self.server.workers == 0 || self.server.workers > 256 {
            return bad("[server] workers must be between 1 and 256".into());
        }
        if self.server.max_udp_payload < 512 {
            return bad("[server] max_udp_payload must be at least 512".into());
        }
        if self.state.journal_max_bytes < 1 << 20 {
            return bad("[state] journal_max_bytes must be at least 1048576 (1 MiB)".into());
        }
        if !(0.0..=1.0).contains(&self.zone.reload_max_removed_share) {
            return bad("[zone] reload_max_removed_share must be between 0.0 and 1.0".into());
        }
        if self.state.checkpoint_interval == 0 {
            return bad("[state] checkpoint_interval must be at least 1 second".into());
        }
        if self.server.tcp_max_connections == 0 {
            return bad("[server] tcp_max_connections must be at least 1".into());
        }
        if self.server.tcp_max_connections_per_address == 0
            || self.server.tcp_max_connections_per_prefix == 0
        {
            return bad(
                "[server] tcp_max_connections_per_address and _per_prefix must be at least 1"
                    .into(),
            );
        }
        if self.server.tcp_prefix_v4 > 32 || self.server.tcp_prefix_v6 > 128 {
            return bad(
                "[server] tcp_prefix_v4 is at most 32 and tcp_prefix_v6 at most 128".into(),
            );
        }
        self.rrl_settings()
            .map_err(|m| ConfigError(format!("{}: {m}", path.display())))?;
        self.nsid()
            .map_err(|m| ConfigError(format!("{}: {m}", path.display())))?;
        self.dnstap_settings()
            .map_err(|m| ConfigError(format!("{}: {m}", path.display())))?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return bad(format!("[log] filter {:?}: {e}", self.log.filter));
        }
        if let Err(e) = crate::name::from_text(&self.zone.origin, &[0]) {
            return bad(format!("[zone] origin: {e}"));
        }
        if !self.zone.origin.ends_with('.') {
            return bad(format!(
                "[zone] origin '{}' must be absolute (end with a dot)",
                self.zone.origin
            ));
        }
        let sup = &self.suppress;
        if sup.admin_tls_cert.is_some() != sup.admin_tls_key.is_some() {
            return bad("[suppress] admin_tls_cert and admin_tls_key go together".into());
        }
        if sup.admin_token_file.is_some()
            && !sup.admin_listen.ip().is_loopback()
            && sup.admin_tls_cert.is_none()
        {
            return bad(format!(
                "[suppress] admin_listen {} is not a loopback address: the admin API \
                 needs TLS there (admin_tls_cert, admin_tls_key)",
                sup.admin_listen
            ));
        }
        if !(0.0..=1.0).contains(&sup.hand_edit_max_removal) {
            return bad("[suppress] hand_edit_max_removal must be between 0 and 1".into());
        }
        if sup.admin_max_header < 8192 || sup.admin_max_header > 1 << 20 {
            return bad("[suppress] admin_max_header must be between 8192 and 1048576".into());
        }
        if sup.admin_max_body == 0 || sup.admin_max_body > 1 << 30 {
            return bad("[suppress] admin_max_body must be between 1 and 1073741824".into());
        }
        if let Err(m) = crate::suppress::ede::check_text_alone(&sup.ede_text) {
            return bad(format!("[suppress] ede_text: {m}"));
        }
        if let Err(m) = self.watch.check() {
            return bad(m);
        }
        let t = &self.transfer;
        if t.max_transfers == 0 || t.max_transfers > 1024 {
            return bad("[transfer] max_transfers must be between 1 and 1024".into());
        }
        if t.stall_timeout == 0 || t.stall_timeout > 3600 {
            return bad("[transfer] stall_timeout must be between 1 and 3600 seconds".into());
        }
        if t.control_threads == 0 || t.control_threads > 64 {
            return bad("[transfer] control_threads must be between 1 and 64".into());
        }
        if t.control_queue == 0 || t.control_queue > 65536 {
            return bad("[transfer] control_queue must be between 1 and 65536".into());
        }
        if t.notify_max_interval == 0 || t.notify_timeout_ms == 0 {
            return bad(
                "[transfer] notify_max_interval and notify_timeout_ms must be at least 1".into(),
            );
        }
        if self.dnssec.enabled {
            if self.dnssec.refresh >= self.dnssec.validity {
                return bad("[dnssec] refresh must be shorter than validity".into());
            }
            if self.dnssec.nsec3_iterations > 100 {
                return bad(
                    "[dnssec] nsec3_iterations above 100 is refused (RFC 9276 asks for 0)".into(),
                );
            }
            if self.dnssec.resign_batch == 0 || self.dnssec.resign_batch > 1_000_000 {
                return bad("[dnssec] resign_batch must be between 1 and 1000000".into());
            }
            if self.dnssec.zsk_lifetime != 0
                && self.dnssec.zsk_lifetime
                    <= 2 * (self.dnssec.propagation_delay as u64 + self.dnssec.dnskey_ttl as u64)
            {
                return bad(format!(
                    "[dnssec] zsk_lifetime {} is too short: a ZSK rollover needs more than \
                     twice propagation_delay + dnskey_ttl ({} s)",
                    self.dnssec.zsk_lifetime,
                    2 * (self.dnssec.propagation_delay as u64 + self.dnssec.dnskey_ttl as u64)
                ));
            }
            if self.salt().is_none() {
                return bad(format!(
                    "[dnssec] nsec3_salt '{}' is not hex (use \"\" for no salt)",
                    self.dnssec.nsec3_salt
                ));
            }
        }
        Ok(())
    }

    /// The dnstap settings from `[dnstap]` (`None` when off), checked.
    pub fn dnstap_settings(&self) -> Result<Option<crate::dnstap::Settings>, String> {
        let d = &self.dnstap;
        let target = match (&d.socket, d.tcp) {
            (Some(_), Some(_)) => {
                return Err("[dnstap] socket and tcp: give one collector, not both".into())
            }
            (Some(p), None) => Some(crate::dnstap::Target::Unix(p.clone())),
            (None, Some(a)) => Some(crate::dnstap::Target::Tcp(a)),
            (None, None) => None,
        };
        if d.sample == 0 || d.sample > 1_000_000 {
            return Err("[dnstap] sample must be between 1 and 1000000".into());
        }
        if !(16..=1 << 20).contains(&d.queue) {
            return Err("[dnstap] queue must be between 16 and 1048576".into());
        }
        let only_qtype = match &d.only_qtype {
            Some(t) => Some(crate::zone::master::rtype_from_str(t).ok_or_else(|| {
                format!("[dnstap] only_qtype {t:?} is not a record type (A, NS, TYPE65...)")
            })?),
            None => None,
        };
        for (name, v) in [("identity", &d.identity), ("version", &d.version)] {
            if v.as_ref().is_some_and(|v| v.len() > 255) {
                return Err(format!("[dnstap] {name} must be at most 255 bytes"));
            }
        }
        if !d.enabled {
            return Ok(None);
        }
        let Some(target) = target else {
            return Err(
                "[dnstap] enabled needs a collector: socket = \"/path\" or tcp = \"127.0.0.1:port\""
                    .into(),
            );
        };
        Ok(Some(crate::dnstap::Settings {
            target,
            identity: d
                .identity
                .clone()
                .or_else(|| self.server.identity.clone())
                .map(String::into_bytes),
            version: Some(
                d.version
                    .clone()
                    .unwrap_or_else(|| format!("belfry {}", env!("CARGO_PKG_VERSION")))
                    .into_bytes(),
            ),
            sample: d.sample,
            only_nxdomain: d.only_nxdomain,
            only_suppressed: d.only_suppressed,
            only_qtype,
            queue: d.queue,
            listen: self.server.listen.clone(),
        }))
    }

    /// The rate-limiting settings from `[rrl]` (`None` when off), checked.
    pub fn rrl_settings(&self) -> Result<Option<crate::rrl::Settings>, String> {
        let r = &self.rrl;
        let rate_of = |name: &str, v: Option<u32>| -> Result<u32, String> {
            let v = v.unwrap_or(r.rate);
            if v == 0 || v > 1_000_000 {
                return Err(format!("[rrl] {name} must be between 1 and 1000000"));
            }
            if v as u64 * r.window as u64 > crate::rrl::MAX_DEBT {
                return Err(format!(
                    "[rrl] {name} × window must be at most {}",
                    crate::rrl::MAX_DEBT
                ));
            }
            Ok(v)
        };
        if r.window == 0 || r.window > 3600 {
            return Err("[rrl] window must be between 1 and 3600 seconds".into());
        }
        if r.slip > 10 {
            return Err("[rrl] slip must be between 0 and 10".into());
        }
        if r.ipv4_prefix == 0 || r.ipv4_prefix > 32 || r.ipv6_prefix == 0 || r.ipv6_prefix > 128 {
            return Err("[rrl] ipv4_prefix is 1 to 32 and ipv6_prefix 1 to 128".into());
        }
        if r.table_size < 1024 || r.table_size > 1 << 26 {
            return Err("[rrl] table_size must be between 1024 and 67108864".into());
        }
        rate_of("rate", None)?;
        let rates = [
            rate_of("answer_rate", r.answer_rate)?,
            rate_of("referral_rate", r.referral_rate)?,
            rate_of("negative_rate", r.negative_rate)?,
            rate_of("error_rate", r.error_rate)?,
        ];
        let mut exempt = Vec::new();
        for (i, e) in r.exempt.iter().enumerate() {
            let net = e
                .parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!(
                        "[rrl] exempt entry {} is not an address or network (192.0.2.0/24, 2001:db8::/32)",
                        i + 1
                    )
                })?;
            exempt.push(net.trunc());
        }
        if !r.enabled {
            return Ok(None);
        }
        Ok(Some(crate::rrl::Settings {
            rates,
            slip: r.slip,
            window: r.window,
            ipv4_prefix: r.ipv4_prefix,
            ipv6_prefix: r.ipv6_prefix,
            table_size: r.table_size,
            exempt,
            log_only: r.log_only,
        }))
    }

    /// The NSID from `[server] nsid` as bytes (`None` when unset), checked.
    pub fn nsid(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(text) = self.server.nsid.as_deref() else {
            return Ok(None);
        };
        let bytes = if text == "hostname" {
            let h = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(|e| {
                format!("[server] nsid = \"hostname\": cannot read the host name: {e}")
            })?;
            h.trim().as_bytes().to_vec()
        } else if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            if hex.is_empty() || hex.len() % 2 != 0 {
                return Err("[server] nsid: 0x must be followed by pairs of hex digits".into());
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
                .ok_or("[server] nsid: 0x must be followed by pairs of hex digits")?
        } else {
            if text.chars().any(|c| c.is_control()) {
                return Err("[server] nsid: a text without control characters".into());
            }
            text.as_bytes().to_vec()
        };
        if bytes.is_empty() || bytes.len() > 128 {
            return Err("[server] nsid must be 1 to 128 bytes".into());
        }
        Ok(Some(bytes))
    }

    /// The NSEC3 salt as bytes (None if the hex is bad).
    pub fn salt(&self) -> Option<Vec<u8>> {
        let s = self.dnssec.nsec3_salt.trim();
        if s.is_empty() || s == "-" {
            return Some(Vec::new());
        }
        if s.len() % 2 != 0 || s.len() > 510 {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect()
    }

    /// The zone origin in wire form.
    pub fn origin_wire(&self) -> Vec<u8> {
        crate::name::from_text(&self.zone.origin, &[0]).unwrap_or_else(|_| vec![0])
    }

    /// The signing policy from `[dnssec]`.
    pub fn policy(&self) -> crate::dnssec::Policy {
        let d = &self.dnssec;
        crate::dnssec::Policy {
            validity: d.validity,
            inception_offset: d.inception_offset,
            refresh: d.refresh,
            jitter: d.jitter,
            dnskey_ttl: d.dnskey_ttl,
            nsec3: crate::dnssec::chain::Nsec3Params {
                iterations: d.nsec3_iterations,
                salt: self.salt().unwrap_or_default(),
                opt_out: d.nsec3_opt_out,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_and_defaults() {
        let c = Config::parse(
            Path::new("/etc/belfry/belfry.toml"),
            "[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n",
        )
        .unwrap();
        assert_eq!(c.zone.file, PathBuf::from("/etc/belfry/be.zone"));
        assert_eq!(c.server.max_udp_payload, 1232);
        assert!(!c.dnssec.enabled);
        assert_eq!(c.origin_wire(), b"\x02be\x00");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = Config::parse(
            Path::new("b.toml"),
            "[zone]\norigin = \"be.\"\nfile = \"be.zone\"\nbogus = 1\n",
        )
        .unwrap_err();
        assert!(e.0.starts_with("b.toml:4:"), "{}", e.0);
        assert!(e.0.contains("bogus"), "{}", e.0);
        let e = Config::parse(
            Path::new("b.toml"),
            "[zone]\norigin = \"be\"\nfile = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("absolute"), "{}", e.0);
        let e = Config::parse(
            Path::new("b.toml"),
            "[server]\nlisten = [\"nonsense\"]\n[zone]\norigin = \"be.\"\nfile = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.0.starts_with("b.toml:2:"), "{}", e.0);
        let e = Config::parse(
            Path::new("b.toml"),
            "[zone]\norigin = \"be.\"\nfile = \"x\"\n[dnssec]\nenabled = true\nnsec3_salt = \"zz\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("not hex"), "{}", e.0);
    }

    #[test]
    fn rrl_cookies_and_nsid_settings() {
        let parse = |extra: &str| {
            Config::parse(
                Path::new("/etc/belfry/belfry.toml"),
                &format!("{extra}[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n"),
            )
        };
        let c = parse("").unwrap();
        let r = c.rrl_settings().unwrap().expect("RRL on by default");
        assert_eq!((r.rates, r.slip, r.window), ([200; 4], 2, 15));
        assert_eq!((r.ipv4_prefix, r.ipv6_prefix), (24, 56));
        assert!(c.cookies.enabled && c.cookies.secret_file.is_none());
        assert_eq!(c.nsid().unwrap(), None, "NSID off unless set");
        let c = parse(
            "[server]\nnsid = \"0x6e7331\"\n[rrl]\nnegative_rate = 50\nexempt = [\"192.0.2.7\", \"2001:db8::/32\"]\n\
             [cookies]\nsecret_file = \"cookie.secret\"\n",
        )
        .unwrap();
        assert_eq!(c.nsid().unwrap(), Some(b"ns1".to_vec()));
        let r = c.rrl_settings().unwrap().unwrap();
        assert_eq!(r.rates, [200, 200, 50, 200]);
        assert_eq!(r.exempt.len(), 2);
        assert_eq!(
            c.cookies.secret_file,
            Some(PathBuf::from("/etc/belfry/cookie.secret"))
        );
        assert!(parse("[rrl]\nenabled = false\n")
            .unwrap()
            .rrl_settings()
            .unwrap()
            .is_none());
        for (bad, want) in [
            ("[rrl]\nrate = 0\n", "[rrl] rate"),
            ("[rrl]\nrate = 100000\nwindow = 3600\n", "× window"),
            ("[rrl]\nslip = 11\n", "slip"),
            ("[rrl]\nipv4_prefix = 33\n", "ipv4_prefix"),
            ("[rrl]\ntable_size = 10\n", "table_size"),
            (
                "[rrl]\nexempt = [\"192.0.2.0/24\", \"nonsense\"]\n",
                "exempt entry 2",
            ),
            ("[server]\nnsid = \"0x6g\"\n", "[server] nsid"),
            ("[server]\nnsid = \"\"\n", "1 to 128 bytes"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.0.contains(want), "{bad}: {}", e.0);
        }
    }

    #[test]
    fn dnstap_settings_and_checks() {
        let parse = |extra: &str| {
            Config::parse(
                Path::new("/etc/belfry/belfry.toml"),
                &format!("[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n{extra}"),
            )
        };
        assert!(parse("").unwrap().dnstap_settings().unwrap().is_none());
        let c = parse(
            "[dnstap]\nenabled = true\nsocket = \"tap.sock\"\nidentity = \"ns1\"\nsample = 10\n\
             only_nxdomain = true\nonly_qtype = \"aaaa\"\nqueue = 64\n",
        )
        .unwrap();
        let d = c.dnstap_settings().unwrap().unwrap();
        assert_eq!(
            d.target,
            crate::dnstap::Target::Unix(PathBuf::from("/etc/belfry/tap.sock"))
        );
        assert_eq!(d.identity.as_deref(), Some(&b"ns1"[..]));
        assert!(d.version.unwrap().starts_with(b"belfry "));
        assert_eq!((d.sample, d.only_qtype, d.queue), (10, Some(28), 64));
        assert!(d.only_nxdomain && !d.only_suppressed);
        let d = parse("[dnstap]\nenabled = true\ntcp = \"127.0.0.1:6000\"\n")
            .unwrap()
            .dnstap_settings()
            .unwrap()
            .unwrap();
        assert_eq!(
            d.target,
            crate::dnstap::Target::Tcp("127.0.0.1:6000".parse().unwrap())
        );
        for (bad, want) in [
            (
                "[dnstap]\nenabled = true\n",
                "[dnstap] enabled needs a collector",
            ),
            (
                "[dnstap]\nsocket = \"a\"\ntcp = \"127.0.0.1:1\"\n",
                "[dnstap] socket and tcp",
            ),
            ("[dnstap]\nsample = 0\n", "[dnstap] sample"),
            ("[dnstap]\nqueue = 1\n", "[dnstap] queue"),
            ("[dnstap]\nonly_qtype = \"BOGUS\"\n", "[dnstap] only_qtype"),
            ("[dnstap]\nfrobnicate = 1\n", "frobnicate"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.0.contains(want), "{bad}: {}", e.0);
        }
    }

    #[test]
    fn the_sample_configuration_sets_an_nsid_and_serves_metrics() {
        let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("belfry.toml")).unwrap();
        assert_eq!(c.nsid().unwrap(), Some(b"belfry-sample".to_vec()));
        assert!(
            c.suppress.admin_token_file.is_some(),
            "the admin API (and /metrics) is on"
        );
        assert!(c.rrl_settings().unwrap().is_some());
        assert!(c.cookies.enabled);
    }

    #[test]
    fn log_section_and_tcp_client_limits() {
        let c = Config::parse(
            Path::new("/etc/belfry/belfry.toml"),
            "[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n[log]\nformat = \"json\"\nfile = \"belfry.log\"\n",
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.file, Some(PathBuf::from("/etc/belfry/belfry.log")));
        assert!(!c.log.queries, "query logging is off by default");
        assert_eq!(c.server.tcp_prefix_v4, 24);
        assert_eq!(c.server.tcp_prefix_v6, 56);
        let e = Config::parse(
            Path::new("b.toml"),
            "[zone]\norigin = \"be.\"\nfile = \"x\"\n[log]\nformat = \"xml\"\n",
        )
        .unwrap_err();
        assert!(e.0.starts_with("b.toml:5:"), "{}", e.0);
        let e = Config::parse(
            Path::new("b.toml"),
            "[zone]\norigin = \"be.\"\nfile = \"x\"\n[log]\nfilter = \"belfry=loud\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("[log] filter"), "{}", e.0);
        let e = Config::parse(
            Path::new("b.toml"),
            "[server]\ntcp_prefix_v4 = 33\n[zone]\norigin = \"be.\"\nfile = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("tcp_prefix_v4"), "{}", e.0);
    }
}
