//! The command line: `serve`, `check`, `status`, key management, `ds`, `generate`, `suppress`.
//!
//! Parses arguments with clap, turns them into a configuration, and calls the
//! library. Every failure prints one clear line naming the file and problem and
//! exits non-zero; nothing here is on the query path.

use crate::config::Config;
use crate::handler::HandlerConfig;
use crate::ops::{
    self,
    limits::{self, Budget},
    progress::Bar,
};
use crate::service::{self, Service};
use crate::suppress;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// belfry: authoritative DNS for a top-level-domain registry.
#[derive(Parser, Debug)]
#[command(name = "belfry", version, about)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the zone over UDP and TCP until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Load and check configuration, zone and keys without serving; print a summary.
    Check(ServeArgs),
    /// Make a new signing key in the key directory.
    Keygen(KeygenArgs),
    /// Key management.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Print the DS records of the KSKs/CSKs, for the parent zone.
    Ds(DsArgs),
    /// Write a synthetic TLD zone (for tests and benchmarks) to standard output.
    Generate(GenerateArgs),
    /// Edit or view the suppression list of a running server.
    Suppress(suppress::cli::SuppressArgs),
    /// Make a running server take its zone file again (checked, diffed, signed, published).
    Reload(ReloadArgs),
    /// Show what a running server serves and what its secondaries have.
    Status(StatusArgs),
    /// Watch lists of a running server: which listed names are in the zone, read the lists again.
    Watch {
        #[command(subcommand)]
        cmd: WatchCmd,
    },
}

#[derive(Subcommand, Debug)]
enum WatchCmd {
    /// Report which names of the watch lists are delegations in the zone served now.
    Check {
        /// Configuration file (for the admin address and token file).
        #[arg(long, short, default_value = "belfry.toml")]
        config: PathBuf,
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
    },
    /// Make a running server read its watch list files again (a bad file changes nothing).
    Reload {
        /// Configuration file (for the admin address and token file).
        #[arg(long, short, default_value = "belfry.toml")]
        config: PathBuf,
        /// Who asks (audited; default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Configuration file (for the admin API's address and token).
    #[arg(long, short)]
    config: PathBuf,
    /// Print the raw JSON of `GET /v1/status`.
    #[arg(long)]
    json: bool,
}

/// Where the configuration comes from: a file, or flags alone.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen address (UDP and TCP); repeat for several. Overrides the config.
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// UDP worker threads. Overrides the config.
    #[arg(long)]
    threads: Option<usize>,
    /// Zone master file, when no config file is given.
    #[arg(long)]
    zone: Option<PathBuf>,
    /// Zone origin, when no config file is given.
    #[arg(long, default_value = "be.")]
    origin: String,
    /// PKCS#8 private key to sign with as a combined signing key (CSK), when no config file is given.
    #[arg(long)]
    key: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Zone the key is for.
    #[arg(long)]
    zone: String,
    /// ecdsap256sha256 (default), ed25519 or rsasha256.
    #[arg(long, default_value = "ecdsap256sha256")]
    algorithm: String,
    /// ksk, zsk or csk.
    #[arg(long, default_value = "csk")]
    role: String,
    /// Directory to write the key files to.
    #[arg(long, default_value = "keys")]
    dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Import a BIND/ldns key pair (K<zone>+<alg>+<tag>.key and .private) into the key directory.
    Import {
        /// The .key file (the .private file next to it is read too).
        key_file: PathBuf,
        /// Directory to write the imported key to.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
    },
    /// List the keys in a directory.
    List {
        /// Key directory.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
    },
    /// The keys, their states, the rollovers' next steps and what the parent must publish.
    Status {
        /// Configuration file (for the admin API).
        #[arg(long, short, default_value = "belfry.toml")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a rollover: `zsk`, `ksk`, or `algorithm --to ALG`.
    Roll {
        /// zsk, ksk or algorithm.
        kind: String,
        /// The new algorithm of an algorithm rollover (ecdsap256sha256, ed25519, rsasha256).
        #[arg(long)]
        to: Option<String>,
        /// Configuration file (for the admin API).
        #[arg(long, short, default_value = "belfry.toml")]
        config: PathBuf,
        /// Who asks (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Confirm that the parent now publishes the DS RRset `key status` asked for.
    DsSeen {
        /// Configuration file (for the admin API).
        #[arg(long, short, default_value = "belfry.toml")]
        config: PathBuf,
        /// Who confirms (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Args, Debug)]
struct ReloadArgs {
    /// Configuration file (for the admin address and token file).
    #[arg(long, short, default_value = "belfry.toml")]
    config: PathBuf,
    /// Apply even when the new zone removes more delegations than
    /// `[zone] reload_max_removed_share` allows.
    #[arg(long)]
    force: bool,
    /// Who asks (audited; default: the login name).
    #[arg(long)]
    by: Option<String>,
}

#[derive(Args, Debug)]
struct DsArgs {
    /// Configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Digest types to print: 2 (SHA-256), 4 (SHA-384).
    #[arg(long, default_values_t = vec![2u8])]
    digest: Vec<u8>,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Number of delegations.
    #[arg(long, short = 'n', default_value_t = 10000)]
    delegations: usize,
    /// Seed (same seed, same zone).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zone origin without the trailing dot.
    #[arg(long, default_value = "be")]
    origin: String,
}

/// Run the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let serving = matches!(cli.cmd, Cmd::Serve(_));
    if !serving {
        ops::log::init_for_command();
    }
    let r = match cli.cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Check(a) => check(a),
        Cmd::Keygen(a) => keygen(a),
        Cmd::Key { cmd } => key_cmd(cmd),
        Cmd::Ds(a) => ds(a),
        Cmd::Generate(a) => generate(a),
        Cmd::Suppress(a) => suppress::cli::run(a),
        Cmd::Reload(a) => reload(a),
        Cmd::Status(a) => status(a),
        Cmd::Watch { cmd } => watch_cmd(cmd),
    };
    match r {
        Ok(()) => 0,
        // A server that has set up logging reports there (journald keeps the level).
        Err(e) if serving && tracing::dispatcher::has_been_set() => {
            tracing::error!("{e}");
            1
        }
        Err(e) => {
            eprintln!("belfry: {e}");
            1
        }
    }
}

/// Turn serve/check arguments into a configuration.
pub fn config_from(a: &ServeArgs) -> Result<Config, String> {
    let mut cfg = match (&a.config, &a.zone) {
        (Some(path), _) => Config::load(path).map_err(|e| e.to_string())?,
        (None, Some(zone)) => {
            let text = format!(
                "[zone]\norigin = {:?}\nfile = {:?}\n",
                a.origin,
                zone.display().to_string()
            );
            Config::parse(std::path::Path::new("<command line>"), &text)
                .map_err(|e| e.to_string())?
        }
        (None, None) => return Err("give --config FILE, or --zone FILE (and --origin)".into()),
    };
    if let (None, Some(zone)) = (&a.config, &a.zone) {
        cfg.zone.file = zone.clone();
    }
    if !a.listen.is_empty() {
        cfg.server.listen = a.listen.clone();
    }
    if let Some(t) = a.threads {
        if t == 0 || t > 256 {
            return Err("--threads must be between 1 and 256".into());
        }
        cfg.server.workers = t;
    }
    if !a.key.is_empty() {
        cfg.dnssec.enabled = true;
    }
    Ok(cfg)
}

fn keys_from_flags(a: &ServeArgs) -> Result<Option<Vec<crate::dnssec::key::SigningKey>>, String> {
    if a.key.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for p in &a.key {
        keys.push(crate::keys::load_pkcs8_as_csk(p).map_err(|e| e.to_string())?);
    }
    Ok(Some(keys))
}

/// Read the suppression list named by the configuration, checked against the zone.
fn open_list(cfg: &Config) -> Result<(u32, Vec<crate::publish::change::Suppression>), String> {
    let Some(p) = &cfg.suppress.file else {
        return Ok((0, Vec::new()));
    };
    let l = suppress::list::load(p)?;
    let mut out = Vec::new();
    for e in &l.entries {
        out.push(
            e.to_suppression()
                .map_err(|m| format!("{}: {m}", p.display()))?,
        );
    }
    Ok((l.serial, out))
}

fn settings_of(cfg: &Config) -> crate::publish::Settings {
    crate::publish::Settings {
        ede_text: Arc::from(cfg.suppress.ede_text.as_str()),
        serial_policy: cfg.zone.serial_policy,
    }
}

fn sinks_of(cfg: &Config) -> Result<crate::publish::Sinks, String> {
    Ok(crate::publish::Sinks {
        audit: match &cfg.suppress.audit_log {
            Some(p) => Some(suppress::audit::Audit::open(p)?),
            None => None,
        },
        list_file: cfg.suppress.file.clone(),
        journal: None,
    })
}

/// Build the publisher of a loaded zone, with the list and its checks.
fn publisher_for(
    cfg: &Config,
    loaded: service::Loaded,
    with_sinks: bool,
) -> Result<crate::publish::Publisher, String> {
    let (serial, list) = open_list(cfg)?;
    let sinks = if with_sinks {
        sinks_of(cfg)?
    } else {
        crate::publish::Sinks::default()
    };
    // Suppressed answers must fit their clients with the configured EDE text.
    suppress::ede::check_fits(
        &cfg.suppress.ede_text,
        &loaded.zone,
        loaded.dnssec.as_ref(),
        cfg.server.max_udp_payload,
    )?;
    let zone = loaded.zone;
    // Every entry must be suppressible in this zone: checked by a publisher without entries.
    let names: Vec<Vec<u8>> = list.iter().map(|s| s.name.clone()).collect();
    let p =
        crate::publish::Publisher::new(zone, loaded.dnssec, list, serial, settings_of(cfg), sinks)?;
    for n in names {
        p.check_suppressible(&n).map_err(|e| {
            format!(
                "{}: {e}",
                cfg.suppress
                    .file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            )
        })?;
    }
    Ok(p)
}

/// The publisher at start: from the checkpoint and journal in `[state] dir` when there
/// are some (the last published serial, content and signatures come back), else from
/// the zone file (and a first checkpoint is written).
fn start_publisher(
    cfg: &Config,
    keys: Option<Vec<crate::dnssec::key::SigningKey>>,
) -> Result<(crate::publish::Publisher, Option<service::StateCfg>), String> {
    let Some(dir) = cfg.state.dir.clone() else {
        tracing::warn!(
            "{}",
            "no [state] dir: published changes do not survive a restart"
        );
        let loaded = load_and_report(cfg, keys)?;
        let p = publisher_for(cfg, loaded, true)?;
        if cfg.zone.primary.is_some() {
            p.set_source_serial(p.snapshot().zone.serial());
        }
        return Ok((p, None));
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("{}: cannot create the state directory: {e}", dir.display()))?;
    let jpath = dir.join("journal");
    let cpath = dir.join("checkpoint");
    let (journal, opened) =
        crate::publish::journal::Journal::open(&jpath, cfg.state.journal_max_bytes)?;
    if opened.cut_bytes > 0 {
        tracing::warn!(
            "{}: cut {} bytes of a torn record at the end (a crash during a write); {} records kept",
            jpath.display(),
            opened.cut_bytes,
            opened.records
        );
    }
    let state = service::StateCfg {
        checkpoint: cpath.clone(),
        interval: Duration::from_secs(cfg.state.checkpoint_interval),
        journal_max_age: cfg.state.journal_max_age,
    };
    let p = if cpath.exists() {
        let t = Instant::now();
        let signer = if cfg.dnssec.enabled {
            let mut signer = match keys {
                Some(k) => crate::dnssec::Signer::new(&cfg.origin_wire(), k, cfg.policy())
                    .map_err(|e| format!("{}: {e}", cfg.dnssec.key_dir.display()))?,
                None => crate::keys::signer_at_checkpoint(cfg, &cpath, &journal)?,
            };
            if let Some(f) = crate::dnssec::signer::fault_from_env() {
                tracing::warn!(
                    "FAULT INJECTION (BELFRY_FAULT_SIGN): signing RRsets at {} fails on purpose",
                    crate::name::to_text(&f)
                );
                signer.inject_sign_fault(Some(&f));
            }
            Some(Arc::new(signer))
        } else {
            None
        };
        let r = crate::publish::checkpoint::read(&cpath, &cfg.origin_wire(), signer)?;
        let cserial = r.header.serial;
        let kept = r.signatures_kept;
        let p = crate::publish::Publisher::from_checkpoint(r, settings_of(cfg), sinks_of(cfg)?)?;
        let entries = match journal.entries_from(cserial)? {
            Some(e) => e,
            None if journal.is_empty() || journal.last_serial() == Some(cserial) => Vec::new(),
            None => {
                return Err(format!(
                    "{}: the journal does not continue from the checkpoint's serial {cserial} \
                     (it ends at {:?}); refusing to start rather than lose published changes",
                    jpath.display(),
                    journal.last_serial()
                ))
            }
        };
        let n = p.replay(entries)?;
        tracing::info!(
            "restored serial {} from {} and {n} journal records in {:.2} s{}",
            p.snapshot().serial,
            cpath.display(),
            t.elapsed().as_secs_f64(),
            if kept {
                ""
            } else {
                " (signatures made again: the keys changed)"
            }
        );
        p.set_journal(journal);
        match crate::publish::checkpoint::Fingerprint::of(&cfg.zone.file) {
            Ok(f) if cfg.zone.primary.is_none() && p.fingerprint().as_ref() != Some(&f) => {
                tracing::warn!(
                    "{} changed while belfry was stopped: reload it to publish the changes",
                    cfg.zone.file.display()
                )
            }
            _ => {}
        }
        p
    } else {
        if !journal.is_empty() {
            return Err(format!(
                "{}: the journal holds {} records but there is no checkpoint {}; move the journal \
                 away to start from the zone file",
                jpath.display(),
                journal.len(),
                cpath.display()
            ));
        }
        let loaded = load_and_report(cfg, keys)?;
        let p = publisher_for(cfg, loaded, true)?;
        p.set_fingerprint(crate::publish::checkpoint::Fingerprint::of(&cfg.zone.file).ok());
        p.set_journal(journal);
        let t = Instant::now();
        p.checkpoint(&cpath, cfg.state.journal_max_age)?;
        tracing::info!(
            "first checkpoint written to {} in {:.2} s",
            cpath.display(),
            t.elapsed().as_secs_f64()
        );
        p
    };
    if cfg.zone.primary.is_some() && p.source_soa().is_none() {
        // Taken from the primary (or its copy in the zone file): IXFR goes on from here.
        p.set_source_serial(p.snapshot().zone.serial());
    }
    Ok((p, Some(state)))
}

fn load_and_report(
    cfg: &Config,
    keys: Option<Vec<crate::dnssec::key::SigningKey>>,
) -> Result<service::Loaded, String> {
    // Following a primary with nothing on disk yet: the first version comes by AXFR.
    let loaded = match crate::xfr::follow::primary_of(cfg)? {
        Some(p) if !cfg.zone.file.exists() => {
            let t = Instant::now();
            let (zone, serial) = crate::xfr::follow::initial_zone(&p, &cfg.origin_wire())?;
            tracing::info!(
                "took serial {serial} from the primary {} by AXFR in {:.2} s",
                p.addr,
                t.elapsed().as_secs_f64()
            );
            let mut l = service::loaded_from(cfg, zone, keys)?;
            l.load_secs = t.elapsed().as_secs_f64();
            l
        }
        _ => service::load(cfg, keys)?,
    };
    let zone = &loaded.zone;
    tracing::info!(
        "loaded {} in {:.2} s: {} delegations ({} secure), {} records, serial {}",
        crate::name::to_text(zone.origin()),
        loaded.load_secs,
        zone.stats().delegations,
        zone.stats().secure_delegations,
        zone.stats().records,
        zone.serial()
    );
    for w in zone.warnings.iter().take(20) {
        tracing::warn!("warning: {w}");
    }
    if let Some(d) = &loaded.dnssec {
        tracing::info!(
            "DNSSEC: {} NSEC3 records in the chain, {} DNSKEYs, prepared in {:.2} s",
            d.chain.len(),
            d.signer.dnskeys().len(),
            loaded.sign_prep_secs
        );
    }
    Ok(loaded)
}

/// Raise the descriptor limit and fit the TCP limit into it; the error is for `check`.
fn descriptor_budget(cfg: &Config) -> (Option<Budget>, Result<(), String>) {
    match limits::raise_nofile() {
        Ok(n) => {
            let b = Budget::new(cfg, n.soft);
            (Some(b), b.check(cfg.server.tcp_max_connections))
        }
        Err(e) => (
            None,
            Err(format!("cannot read or raise RLIMIT_NOFILE: {e}")),
        ),
    }
}

/// The name errors about the configuration use.
fn config_source(a: &ServeArgs) -> String {
    match &a.config {
        Some(p) => p.display().to_string(),
        None => "<command line>".into(),
    }
}

fn serve(a: ServeArgs) -> Result<(), String> {
    let t0 = Instant::now();
    let mut cfg = config_from(&a)?;
    ops::log::init(&cfg.log)?;
    let setup = crate::control::Setup::from_config(&cfg, &config_source(&a))?;
    crate::dnssec::clock::announce();
    let signals = ops::Signals::install().map_err(|e| format!("signal handling: {e}"))?;
    match descriptor_budget(&cfg) {
        (Some(b), Err(e)) => {
            tracing::warn!("{e}; serving with tcp_max_connections = {}", b.max_tcp());
            cfg.server.tcp_max_connections = (b.max_tcp() as usize).max(1);
        }
        (None, Err(e)) => tracing::warn!("{e}"),
        (Some(b), Ok(())) => tracing::info!(
            "descriptor limit {}: {} for TCP connections, {} fixed, {} in reserve",
            b.limit,
            cfg.server.tcp_max_connections,
            b.fixed,
            b.reserve
        ),
        (None, Ok(())) => {}
    }
    ops::notify::status("loading the zone");
    let presign = cfg.dnssec.presign;
    let t_load = Instant::now();
    let watch = crate::watchlist::Lists::load(&cfg.watch.list)?;
    let (publisher, state) = start_publisher(&cfg, keys_from_flags(&a)?)?;
    let load_seconds = t_load.elapsed().as_secs_f64();
    let publisher = Arc::new(publisher);
    for l in watch.summary() {
        tracing::info!(
            "watch list '{}': {} names, policy {}",
            l.name,
            l.names,
            l.policy.as_str()
        );
    }
    publisher.set_watch_lists(watch);
    ops::release_memory();
    if publisher.write_list_file_if_missing()? {
        tracing::info!("wrote the suppression list file (it was missing)");
    }
    match publisher.write_list_file_if_behind() {
        Ok(Some(was)) => tracing::warn!(
            "the suppression list file was at serial {was}, behind the journal: rewritten \
             at serial {} (the old one is kept as .prev)",
            publisher.snapshot().serial
        ),
        Ok(None) => {}
        Err(e) => tracing::error!("the suppression list file could not be brought up to date: {e}"),
    }
    let handler_cfg = HandlerConfig {
        max_udp_payload: cfg.server.max_udp_payload,
        identity: cfg.server.identity.clone(),
        version: cfg.server.version.clone(),
        nsid: cfg.nsid()?,
    };
    let rrl = cfg.rrl_settings()?.map(crate::rrl::Rrl::new);
    match &rrl {
        Some(r) => tracing::info!(
            "RRL: {} answers/s per /{} (IPv4) or /{} (IPv6) network and class, slip {}, window {} s, {} buckets{}",
            cfg.rrl.rate,
            r.settings().ipv4_prefix,
            r.settings().ipv6_prefix,
            r.settings().slip,
            r.settings().window,
            r.buckets(),
            if r.settings().log_only { ", log only" } else { "" }
        ),
        None => tracing::warn!("{}", "RRL off: UDP answers are not rate-limited"),
    }
    let (cookies, cookie_file) = cookie_secrets(&cfg)?;
    let key_manager = crate::keys::manager::KeyManager::start(&cfg, &publisher)?;
    let dnstap = match cfg.dnstap_settings()? {
        Some(d) => {
            tracing::info!(
                "dnstap: to {}, 1 query in {}{}{}{}, queue {} per thread",
                d.target,
                d.sample,
                if d.only_nxdomain {
                    ", NXDOMAIN only"
                } else {
                    ""
                },
                if d.only_suppressed {
                    ", suppressed names only"
                } else {
                    ""
                },
                d.only_qtype
                    .map(|t| format!(", type {} only", crate::zone::master::rtype_to_string(t)))
                    .unwrap_or_default(),
                d.queue
            );
            Some(
                crate::dnstap::Tap::start(d)
                    .map_err(|e| format!("dnstap: cannot start the writer: {e}"))?,
            )
        }
        None => None,
    };
    let svc = Service::new(publisher.clone(), handler_cfg, state)
        .with_dnstap(dnstap)
        .with_query_log(cfg.log.queries)
        .with_rrl(rrl)
        .with_cookies(cookies, cookie_file)
        .with_keys(key_manager)
        .with_reload(service::ReloadCfg {
            file: cfg.zone.file.clone(),
            origin: cfg.origin_wire(),
            max_removed_share: cfg.zone.reload_max_removed_share,
        });
    svc.set_load_seconds(load_seconds);
    let svc = Arc::new(svc);
    let server_cfg = crate::server::ServerConfig {
        listen: cfg.server.listen.clone(),
        workers: cfg.server.workers,
        tcp_max_connections: cfg.server.tcp_max_connections,
        tcp_idle_timeout: Duration::from_secs(cfg.server.tcp_idle_timeout),
        tcp_max_queries_per_connection: cfg.server.tcp_max_queries,
        tcp_max_per_address: cfg.server.tcp_max_connections_per_address,
        tcp_max_per_prefix: cfg.server.tcp_max_connections_per_prefix,
        tcp_prefix_v4: cfg.server.tcp_prefix_v4,
        tcp_prefix_v6: cfg.server.tcp_prefix_v6,
        control_threads: cfg.transfer.control_threads,
        control_queue: cfg.transfer.control_queue,
        control_write_timeout: Duration::from_secs(cfg.transfer.stall_timeout),
    };
    let targets = setup.targets.clone();
    let timing = crate::control::notify::Timing {
        timeout: setup.notify_timeout,
        max_interval: setup.notify_max_interval,
    };
    let control = Arc::new(crate::control::Control::new(
        publisher.clone(),
        svc.clone(),
        setup,
    ));
    let frontend = Arc::new(crate::control::Frontend {
        service: svc.clone(),
        control: control.clone(),
    });
    let server = crate::server::Server::start(server_cfg, frontend)
        .map_err(|e| format!("cannot listen: {e}"))?;
    tracing::info!(
        "serving on {:?} with {} workers, {:.2} s after start",
        cfg.server.listen,
        cfg.server.workers,
        t0.elapsed().as_secs_f64()
    );
    let maint = service::spawn_maintenance(svc.clone(), presign);
    let notifier = crate::control::notify::spawn(
        publisher.clone(),
        svc.clone(),
        control.board().clone(),
        targets,
        timing,
    );
    let _admin = suppress::api::start(&cfg, publisher.clone(), svc.clone())?;
    let follower = match crate::xfr::follow::primary_of(&cfg)? {
        Some(primary) => {
            tracing::info!(
                "following the primary {} for the unsigned zone",
                primary.addr
            );
            Some(crate::xfr::follow::spawn(
                publisher.clone(),
                crate::xfr::follow::FollowCfg {
                    primary,
                    origin: cfg.origin_wire(),
                    refresh: cfg.zone.primary_refresh,
                    max_removed_share: cfg.zone.reload_max_removed_share,
                },
            )?)
        }
        None => None,
    };
    if let Some(f) = follower.clone() {
        // A NOTIFY from the primary (allowed by [[acl.notify]]) makes the follower look at once.
        control.set_notify_hook(Arc::new(move |n: &crate::control::NotifyIn| {
            tracing::info!(
                "NOTIFY from {} (serial {:?}): checking the primary now",
                n.peer,
                n.serial
            );
            f.notify();
        }));
    }
    ops::notify::ready(&svc.status_line());
    signals.wait(|| {
        tracing::info!("SIGHUP: reopening log files and reloading the zone");
        ops::notify::reloading("reloading");
        for e in ops::reopen::reopen_all() {
            tracing::error!("{e}");
        }
        tracing::info!("log files reopened");
        match svc.reload_cookies() {
            Ok(Some(n)) => tracing::info!("cookie secrets read again: {n} accepted"),
            Ok(None) => {}
            Err(e) => tracing::error!("{e}; the cookie secrets in force stay"),
        }
        if !publisher.watch_lists().lists.is_empty() {
            // Logged and audited inside; a bad file keeps the lists in force.
            let _ = publisher.reload_watch_lists("SIGHUP");
        }
        // The reload runs off the signal loop; its outcome goes to the log.
        let s = svc.clone();
        let _ = std::thread::Builder::new()
            .name("belfry-reload".into())
            .spawn(move || {
                let _ = s.reload_zone(false, "SIGHUP");
                ops::notify::ready(&s.status_line());
            });
    });
    tracing::info!("shutting down");
    ops::notify::stopping("shutting down");
    svc.stop();
    server.shutdown();
    server.wait();
    if let Err(e) = publisher.flush_list_file(Duration::from_secs(30)) {
        tracing::error!("suppression list file: {e}");
    }
    if let Some(t) = svc.dnstap() {
        // What is queued goes out, then STOP; the collector closes its file.
        t.shutdown();
        tracing::info!(
            "dnstap: {} messages sent, {} dropped",
            t.sent(),
            t.dropped()
        );
    }
    let _ = maint.join();
    if let Some(n) = notifier {
        let _ = n.join();
    }
    Ok(())
}

/// The cookie secrets `[cookies]` asks for (`None`: cookies off) and the file to re-read.
fn cookie_secrets(
    cfg: &Config,
) -> Result<(Option<crate::cookie::Secrets>, Option<PathBuf>), String> {
    if !cfg.cookies.enabled {
        tracing::info!("{}", "DNS cookies off");
        return Ok((None, None));
    }
    match &cfg.cookies.secret_file {
        Some(f) => {
            let s = crate::cookie::Secrets::from_file(f)?;
            tracing::info!(
                "DNS cookies: {} secrets from {} (the first makes cookies)",
                s.len(),
                f.display()
            );
            Ok((Some(s), Some(f.clone())))
        }
        None => {
            tracing::info!(
                "{}",
                "DNS cookies: a random secret (set [cookies] secret_file to share one between instances)"
            );
            Ok((Some(crate::cookie::Secrets::random()?), None))
        }
    }
}

/// Load for `check`, with a progress bar on a terminal (plain lines otherwise).
fn load_with_progress(
    cfg: &Config,
    keys: Option<Vec<crate::dnssec::key::SigningKey>>,
) -> Result<service::Loaded, String> {
    let size = std::fs::metadata(&cfg.zone.file)
        .map(|m| m.len())
        .unwrap_or(0);
    let bar = std::sync::Mutex::new(Bar::new("loading zone", size));
    let done = std::sync::atomic::AtomicBool::new(false);
    let stage = std::sync::atomic::AtomicU8::new(0);
    std::thread::scope(|scope| {
        // The zone file is read on a loader thread: follow its read position.
        scope.spawn(|| {
            let mut last = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if stage.load(std::sync::atomic::Ordering::Relaxed) != 0 {
                    continue;
                }
                match ops::progress::read_position(&cfg.zone.file) {
                    Some(pos) if pos < size => {
                        last = pos.max(last);
                        bar.lock().unwrap_or_else(|p| p.into_inner()).set(last);
                    }
                    // Read to the end, or closed after reading: the index is being built.
                    _ if last > 0 => {
                        let mut b = bar.lock().unwrap_or_else(|p| p.into_inner());
                        b.set(size);
                        b.stage("indexing");
                        stage.store(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
        let r = service::load_with(cfg, keys, &mut |s| {
            if s == service::LoadStage::Dnssec {
                stage.store(1, std::sync::atomic::Ordering::Relaxed);
                let mut b = bar.lock().unwrap_or_else(|p| p.into_inner());
                b.set(size);
                b.stage("NSEC3 chain");
            }
        });
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })
    .inspect(|_| bar.into_inner().unwrap_or_else(|p| p.into_inner()).finish())
}

fn check(a: ServeArgs) -> Result<(), String> {
    let t0 = Instant::now();
    let cfg = config_from(&a)?;
    let (budget, fits) = descriptor_budget(&cfg);
    fits?;
    let loaded = load_with_progress(&cfg, keys_from_flags(&a)?)?;
    let zone = &loaded.zone;
    let st = zone.stats().clone();
    println!(
        "zone {} serial {}",
        crate::name::to_text(zone.origin()),
        zone.serial()
    );
    println!("  file:                {}", cfg.zone.file.display());
    println!("  records:             {}", st.records);
    println!("  names:               {}", st.names);
    println!("  delegations:         {}", st.delegations);
    println!("  secure delegations:  {}", st.secure_delegations);
    println!("  glue RRsets:         {}", st.glue_rrsets);
    println!("  empty non-terminals: {}", st.empty_non_terminals);
    println!("  index memory:        {} MiB", zone.heap_bytes() >> 20);
    println!("  load time:           {:.2} s", loaded.load_secs);
    if let Some(d) = &loaded.dnssec {
        println!(
            "  DNSSEC:              {} keys, {} NSEC3 records ({:.2} s)",
            d.signer.dnskeys().len(),
            d.chain.len(),
            loaded.sign_prep_secs
        );
    } else {
        println!("  DNSSEC:              off");
    }
    let watch = crate::watchlist::Lists::load(&cfg.watch.list)?;
    for l in watch.summary() {
        println!(
            "  watch list {}: {} names, policy {}",
            l.name,
            l.names,
            l.policy.as_str()
        );
    }
    let mut warnings = zone.warnings.clone();
    // What `serve` would refuse of the admin API and the list, and what it warns about.
    let admin_warnings = suppress::api::preflight(&cfg)?;
    let setup = crate::control::Setup::from_config(&cfg, &config_source(&a))?;
    println!("  TSIG keys:           {}", setup.keys.len());
    println!(
        "  transfers:           {} rules allow or deny AXFR/IXFR, at most {} at once",
        setup.acl.rules(crate::acl::Action::Transfer).len(),
        setup.max_transfers
    );
    println!(
        "  updates, NOTIFY in:  {} and {} rules",
        setup.acl.rules(crate::acl::Action::Update).len(),
        setup.acl.rules(crate::acl::Action::Notify).len()
    );
    println!("  NOTIFY targets:      {}", setup.targets.len());
    for t in &setup.targets {
        println!(
            "    {} {}{}",
            t.name,
            t.address,
            t.key
                .as_ref()
                .map(|k| format!(" (key {})", crate::name::to_text(k.name())))
                .unwrap_or_default()
        );
    }
    if cfg.state.dir.is_none() && !setup.acl.rules(crate::acl::Action::Transfer).is_empty() {
        warnings.push(
            "transfers are allowed but [state] dir is not set: without a journal every IXFR \
             is answered with the whole zone"
                .into(),
        );
    }
    let p = publisher_for(&cfg, loaded, false)?;
    println!("  suppressions:        {}", p.list().1.len());
    if let Some(b) = budget {
        println!(
            "  descriptors:         {} (TCP {} of at most {}, {} fixed, {} in reserve)",
            b.limit,
            cfg.server.tcp_max_connections,
            b.max_tcp(),
            b.fixed,
            b.reserve
        );
    }
    for w in warnings.iter().chain(admin_warnings.iter()) {
        println!("warning: {w}");
    }
    println!("ok ({:.2} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

fn reload(a: ReloadArgs) -> Result<(), String> {
    let cfg = Config::load(&a.config).map_err(|e| e.to_string())?;
    let client = suppress::cli::Client::new(&cfg)?;
    let body = suppress::proto::ReloadRequest {
        actor: suppress::cli::actor(a.by),
        force: a.force,
    };
    let o: crate::publish::change::Outcome = suppress::cli::ok(client.post("/v1/reload", &body)?)?;
    println!(
        "change {}: {} names changed, zone serial now {}, {} signatures made",
        o.id, o.names_changed, o.serial, o.signatures
    );
    for n in &o.notes {
        println!("  note: {n}");
    }
    Ok(())
}

fn watch_cmd(c: WatchCmd) -> Result<(), String> {
    match c {
        WatchCmd::Check { config, list } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            let client = suppress::cli::Client::new(&cfg)?;
            let path = match &list {
                Some(l) => format!("/v1/watch/check?list={l}"),
                None => "/v1/watch/check".to_string(),
            };
            let r: crate::watchlist::CheckReport = suppress::cli::ok(client.get(&path)?)?;
            for p in &r.present {
                println!(
                    "{}\t{}\t{}\t{}{}",
                    p.list,
                    p.name,
                    p.source,
                    p.reference,
                    if p.suppressed { "\tsuppressed" } else { "" }
                );
            }
            eprintln!(
                "{} of {} listed names are in the zone at serial {}",
                r.present.len(),
                r.checked,
                r.serial
            );
            Ok(())
        }
        WatchCmd::Reload { config, by } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            let client = suppress::cli::Client::new(&cfg)?;
            let body = suppress::proto::ReloadRequest {
                actor: suppress::cli::actor(by),
                force: false,
            };
            let r: Vec<crate::watchlist::ListSummary> =
                suppress::cli::ok(client.post("/v1/watch/reload", &body)?)?;
            for l in r {
                println!(
                    "watch list {}: {} names, policy {}",
                    l.name,
                    l.names,
                    l.policy.as_str()
                );
            }
            Ok(())
        }
    }
}

fn status(a: StatusArgs) -> Result<(), String> {
    let cfg = Config::load(&a.config).map_err(|e| e.to_string())?;
    let client = suppress::cli::Client::new(&cfg)?;
    let (code, body) = client.get("/v1/status")?;
    if code != 200 {
        return Err(format!("GET /v1/status: HTTP {code}: {body}"));
    }
    if a.json {
        println!("{body}");
        return Ok(());
    }
    let st: suppress::proto::StatusResponse =
        serde_json::from_str(&body).map_err(|e| format!("GET /v1/status: {e}"))?;
    println!(
        "zone {} serial {}{}",
        st.zone,
        st.serial,
        match (st.signed, st.fully_signed) {
            (false, _) => ", unsigned",
            (true, true) => ", fully signed",
            (true, false) => ", signing",
        }
    );
    println!(
        "  suppressed {}, delegations {}, next change {}",
        st.suppressed, st.delegations, st.next_change
    );
    let t = &st.transfers;
    println!(
        "  transfers {} (running {}), refused {}, busy {}, updates {}",
        t.transfers, t.active, t.refused, t.busy, t.updates
    );
    for s in &t.secondaries {
        let serial = s
            .serial
            .map(|x| x.to_string())
            .unwrap_or_else(|| "?".into());
        let lag = match s.lag_seconds {
            Some(l) if s.current => format!("current ({l:.1} s)"),
            Some(l) => format!("behind for {l:.1} s"),
            None => "unknown".into(),
        };
        let notify = match (s.notify_answered, &s.notify_error) {
            (_, Some(e)) if s.notify_pending.is_some() => format!("NOTIFY failing: {e}"),
            (Some(n), _) => format!("NOTIFY {n} answered"),
            (None, _) => "no NOTIFY answered".into(),
        };
        let last = s
            .last_transfer
            .as_ref()
            .map(|x| format!(", last {} to {} at {}", x.kind, x.to, x.at))
            .unwrap_or_default();
        println!(
            "  {:<16} {:<24} serial {serial:<12} {lag}, {notify}{last}",
            s.name, s.address
        );
    }
    Ok(())
}

fn keygen(a: KeygenArgs) -> Result<(), String> {
    crate::keys::keygen(&a.zone, &a.algorithm, &a.role, &a.dir)
}

fn key_cmd(c: KeyCmd) -> Result<(), String> {
    match c {
        KeyCmd::Import { key_file, dir } => crate::keys::import(&key_file, &dir),
        KeyCmd::List { dir } => crate::keys::list(&dir),
        KeyCmd::Status { config, json } => crate::keys::cli::status(&config, json),
        KeyCmd::Roll {
            kind,
            to,
            config,
            by,
        } => crate::keys::cli::roll(&config, &kind, to.as_deref(), by),
        KeyCmd::DsSeen { config, by } => crate::keys::cli::ds_seen(&config, by),
    }
}

fn ds(a: DsArgs) -> Result<(), String> {
    let cfg = Config::load(&a.config).map_err(|e| e.to_string())?;
    crate::keys::print_ds(&cfg, &a.digest)
}

fn generate(a: GenerateArgs) -> Result<(), String> {
    let p = crate::zone::generate::GenParams {
        origin: a.origin,
        delegations: a.delegations,
        seed: a.seed,
    };
    let stdout = std::io::stdout();
    let bar = Bar::new("generating", a.delegations as u64);
    let mut w = ops::progress::DelegationCounter::new(
        std::io::BufWriter::with_capacity(1 << 20, stdout.lock()),
        bar,
    );
    let st = crate::zone::generate::write_zone(&p, &mut w).map_err(|e| format!("writing: {e}"))?;
    w.finish().map_err(|e| format!("writing: {e}"))?;
    eprintln!(
        "generated {} delegations ({} secure, {} with glue), {} records",
        st.delegations, st.secure, st.with_glue, st.records
    );
    Ok(())
}
