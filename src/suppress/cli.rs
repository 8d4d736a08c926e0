//! `belfry suppress ...`: the operator's client for the admin API (on `ureq`).
//!
//! Reads the admin address, token file and TLS settings from the
//! configuration, sends requests typed by [`super::proto`] (the server's own
//! types), prints the result with the change id. Every change is sent with a
//! `belfry-request-id`, printed when no answer comes, so `belfry suppress
//! outcome <id>` can tell later whether it was applied. `edit` exports the
//! list, runs `$VISUAL`/`$EDITOR` on it and submits the difference as a delta
//! against what was exported (so changes made meanwhile are kept, and a
//! conflicting edit is refused, the edited file kept). Exit status is non-zero
//! on any refusal.

use super::list;
use super::proto::{
    self, AddRequest, ChangeStatus, EditRequest, EditStep, EntryView, ErrorBody, ListResponse,
    NewEntry, RemoveRequest,
};
use crate::config::Config;
use crate::publish::change::Outcome;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `belfry suppress`.
#[derive(Args, Debug)]
pub struct SuppressArgs {
    /// Configuration file (for the admin address and token file).
    #[arg(long, short, default_value = "belfry.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    cmd: SuppressCmd,
}

#[derive(Subcommand, Debug)]
enum SuppressCmd {
    /// Suppress domains: they answer NXDOMAIN from the next query on.
    Add {
        /// Domains (e.g. phish-example.be; an IDN in Unicode or as its xn-- A-label).
        domains: Vec<String>,
        /// Why (recorded in the list and the audit log).
        #[arg(long)]
        reason: String,
        /// Case id.
        #[arg(long)]
        case: String,
        /// blocked (registry policy, EDE 15) or censored (external order, EDE 16).
        #[arg(long, default_value = "blocked")]
        ede: String,
        /// Lift automatically: an RFC 3339 time, or a duration like 90m, 24h, 14d, 2w.
        #[arg(long)]
        expires: Option<String>,
        /// Read more domains from a file: one per line, `#` comments.
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Who is making the change (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Lift suppressions.
    Remove {
        /// Domains.
        domains: Vec<String>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is making the change (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// List the suppressions.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one suppression.
    Show {
        /// Domain (any spelling).
        domain: String,
    },
    /// Edit the list in $VISUAL / $EDITOR and submit the difference.
    Edit {
        /// Who is making the change (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Why entries are lifted (recorded in the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Write the list in the list-file format (to standard output or a file).
    Export {
        /// Write here (atomically) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Make the list what a file (from `export`) says, through the API.
    Import {
        /// The file.
        file: PathBuf,
        /// Import even if the zone moved on since the export (changes made since are undone).
        #[arg(long)]
        replace: bool,
        /// Who is making the change (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Why entries are lifted (recorded in the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// What became of a change: its id, or the request id printed when no answer came.
    Outcome {
        /// Change id (a number) or request id.
        id: String,
    },
}

pub fn actor(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "operator".into())
}

/// A connection to the admin API of a configuration.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

/// What a request gave: the HTTP status and the body text.
type Reply = (u16, String);

impl Client {
    /// A client for the admin API named by a configuration.
    pub fn new(cfg: &Config) -> Result<Client, String> {
        let s = &cfg.suppress;
        let tf = s
            .admin_token_file
            .as_ref()
            .ok_or("the configuration has no [suppress] admin_token_file")?;
        let token = std::fs::read_to_string(tf)
            .map_err(|e| {
                format!(
                    "{}: cannot read the admin token: {}",
                    tf.display(),
                    e.kind()
                )
            })?
            .trim()
            .to_string();
        let mut addr = s.admin_listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(
                Duration::from_secs(s.admin_request_timeout) + Duration::from_secs(5),
            ))
            .timeout_connect(Some(Duration::from_secs(5)))
            .http_status_as_error(false);
        let scheme = match s.admin_tls_ca.as_ref().or(s.admin_tls_cert.as_ref()) {
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .map_err(|e| format!("{}: cannot read: {}", ca.display(), e.kind()))?;
                let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                    .filter_map(|i| match i {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(format!("{}: no certificate in the file", ca.display()));
                }
                config = config.tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                        .build(),
                );
                "https"
            }
            None => "http",
        };
        Ok(Client {
            agent: config.build().new_agent(),
            base: format!("{scheme}://{addr}"),
            token,
        })
    }

    fn unreachable(&self, e: ureq::Error, rid: Option<&str>) -> String {
        let mut m = format!("no answer from the admin API at {}: {e}", self.base);
        if let Some(r) = rid {
            m.push_str(&format!(
                "\nthe change may or may not be in force: `belfry suppress outcome {r}` tells"
            ));
        } else {
            m.push_str(" (is `belfry serve` running?)");
        }
        m
    }

    /// GET a path.
    pub fn get(&self, path: &str) -> Result<Reply, String> {
        let r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| self.unreachable(e, None))?;
        read(r)
    }

    /// POST a JSON body with a fresh request id.
    pub fn post<T: serde::Serialize>(&self, path: &str, body: &T) -> Result<Reply, String> {
        let rid = request_id();
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header(proto::REQUEST_ID_HEADER, rid.as_str())
            .send_json(body)
            .map_err(|e| self.unreachable(e, Some(&rid)))?;
        read(r)
    }
}

fn read(r: http::Response<ureq::Body>) -> Result<Reply, String> {
    let status = r.status().as_u16();
    let text = r
        .into_body()
        .into_with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| format!("admin API: reading the answer: {e}"))?;
    Ok((status, text))
}

/// A request id: process id and clock, unique enough for one operator's host.
fn request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("cli-{}-{nanos:x}", std::process::id())
}

/// The body of a 200 answer as `T`, or the refusal as an error.
pub fn ok<T: serde::de::DeserializeOwned>((status, text): Reply) -> Result<T, String> {
    if status == 200 {
        serde_json::from_str(&text).map_err(|e| format!("admin API: unexpected answer: {e}"))
    } else {
        let msg = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or_else(|_| "no details".into());
        Err(format!("refused ({status}): {msg}"))
    }
}

fn show_name(text: &str) -> String {
    match super::domain::parse(text) {
        Ok(w) => super::domain::show(&w),
        Err(_) => text.to_string(),
    }
}

fn print_outcome(o: &Outcome) {
    // A bulk change names its first domains; `belfry suppress list` has them all.
    const SHOWN: usize = 20;
    let names = |v: &[String]| {
        let mut s = v
            .iter()
            .take(SHOWN)
            .map(|d| show_name(d))
            .collect::<Vec<_>>()
            .join(", ");
        if v.len() > SHOWN {
            s.push_str(&format!(" and {} more", v.len() - SHOWN));
        }
        s
    };
    println!("change {}: zone serial now {}", o.id, o.serial);
    if !o.added.is_empty() {
        println!("  suppressed ({}): {}", o.added.len(), names(&o.added));
    }
    if !o.removed.is_empty() {
        println!("  lifted ({}): {}", o.removed.len(), names(&o.removed));
    }
    for n in &o.notes {
        println!("  note: {n}");
    }
}

fn view_line(e: &EntryView) -> String {
    let name = match &e.unicode {
        Some(u) => format!("{} ({u})", e.domain),
        None => e.domain.clone(),
    };
    format!(
        "{name}\t{}\t{}\t{}\t{}\t{}",
        e.case,
        serde_json::to_value(e.ede)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        e.added_at,
        e.expires.as_deref().unwrap_or("-"),
        e.reason
    )
}

/// The list file of a list as the API gave it.
fn as_file(l: &ListResponse) -> list::ListFile {
    list::ListFile {
        serial: l.serial,
        allow_mass_removal: false,
        entries: l
            .entries
            .iter()
            .map(|e| list::Entry {
                domain: e.domain.clone(),
                reason: e.reason.clone(),
                case: e.case.clone(),
                added_by: Some(e.added_by.clone()),
                added_at: Some(e.added_at.clone()),
                expires: e.expires.clone(),
                ede: e.ede,
            })
            .collect(),
    }
}

/// The steps turning the list `base` into `edited`.
fn diff(base: &[EntryView], edited: &[crate::publish::change::Suppression]) -> Vec<EditStep> {
    let mut by_key: std::collections::HashMap<Vec<u8>, &EntryView> =
        std::collections::HashMap::new();
    for e in base {
        if let Ok(w) = super::domain::parse(&e.domain) {
            by_key.insert(crate::name::key_of(&w), e);
        }
    }
    let mut steps = Vec::new();
    let mut kept = std::collections::HashSet::new();
    for s in edited {
        let key = crate::name::key_of(&s.name);
        kept.insert(key.clone());
        let after = EntryView::of(s);
        let before = by_key.get(&key).map(|e| (*e).clone());
        if let Some(b) = &before {
            if b.to_suppression().ok().as_ref() == Some(s) {
                continue;
            }
        }
        steps.push(EditStep {
            domain: after.domain.clone(),
            before,
            after: Some(after),
        });
    }
    for (key, e) in by_key {
        if !kept.contains(&key) {
            steps.push(EditStep {
                domain: e.domain.clone(),
                before: Some(e.clone()),
                after: None,
            });
        }
    }
    steps
}

fn submit_edit(
    c: &Client,
    by: Option<String>,
    reason: String,
    base: &ListResponse,
    parsed: &list::Parsed,
) -> Result<Option<Outcome>, String> {
    let steps = diff(&base.entries, &parsed.entries);
    if steps.is_empty() {
        return Ok(None);
    }
    let req = EditRequest {
        actor: actor(by),
        based_on: base.serial,
        allow_mass_removal: parsed.allow_mass_removal,
        reason,
        steps,
    };
    ok::<Outcome>(c.post("/v1/suppressions/edit", &req)?).map(Some)
}

fn editor() -> String {
    std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// Run `belfry suppress`.
pub fn run(a: SuppressArgs) -> Result<(), String> {
    let cfg = Config::load(&a.config).map_err(|e| e.to_string())?;
    let c = Client::new(&cfg)?;
    match a.cmd {
        SuppressCmd::Add {
            mut domains,
            reason,
            case,
            ede,
            expires,
            from_file,
            by,
        } => {
            if let Some(f) = from_file {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| format!("{}: {}", f.display(), e.kind()))?;
                for (i, line) in text.lines().enumerate() {
                    let l = line.split('#').next().unwrap_or("").trim();
                    if l.is_empty() {
                        continue;
                    }
                    if l.split_whitespace().count() != 1 {
                        return Err(format!("{}:{}: one domain per line", f.display(), i + 1));
                    }
                    domains.push(l.to_string());
                }
            }
            if domains.is_empty() {
                return Err("no domain given".into());
            }
            let ede = match ede.as_str() {
                "blocked" => super::EdeKind::Blocked,
                "censored" => super::EdeKind::Censored,
                _ => return Err("--ede: use blocked or censored".into()),
            };
            let expires = expires
                .map(|e| {
                    super::time::expiry(&e, super::time::now())
                        .map(super::time::format)
                        .map_err(|m| format!("--expires '{}': {m}", super::domain::quote(&e)))
                })
                .transpose()?;
            let req = AddRequest {
                actor: actor(by),
                entries: domains
                    .iter()
                    .map(|d| NewEntry {
                        domain: d.clone(),
                        reason: reason.clone(),
                        case: case.clone(),
                        ede: Some(ede),
                        expires: expires.clone(),
                    })
                    .collect(),
            };
            let o: Outcome = ok(c.post("/v1/suppressions", &req)?)?;
            print_outcome(&o);
        }
        SuppressCmd::Remove {
            domains,
            reason,
            by,
        } => {
            if domains.is_empty() {
                return Err("no domain given".into());
            }
            let req = RemoveRequest {
                actor: actor(by),
                reason,
                domains,
            };
            let o: Outcome = ok(c.post("/v1/suppressions/remove", &req)?)?;
            print_outcome(&o);
        }
        SuppressCmd::List { json } => {
            let l: ListResponse = ok(c.get("/v1/suppressions")?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&l).unwrap_or_default());
            } else {
                println!("serial {}", l.serial);
                for e in &l.entries {
                    println!("{}", view_line(e));
                }
            }
        }
        SuppressCmd::Show { domain } => {
            let enc: String = domain
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let e: EntryView = ok(c.get(&format!("/v1/suppressions/{enc}"))?)?;
            println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
        }
        SuppressCmd::Export { output } => {
            let l: ListResponse = ok(c.get("/v1/suppressions")?)?;
            let text = list::render(&as_file(&l));
            match output {
                Some(p) => {
                    list::write_atomic(&p, text.as_bytes())?;
                    eprintln!(
                        "exported {} entries at serial {} to {}",
                        l.entries.len(),
                        l.serial,
                        p.display()
                    );
                }
                None => print!("{text}"),
            }
        }
        SuppressCmd::Import {
            file,
            replace,
            by,
            reason,
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: {}", file.display(), e.kind()))?;
            let who = actor(by.clone());
            let parsed = list::parse_checked(&file, &text, &who, super::time::now())?;
            if !parsed.complete {
                return Err(format!(
                    "{}: incomplete: the last line must be `{}`",
                    file.display(),
                    list::END_LINE
                ));
            }
            let cur: ListResponse = ok(c.get("/v1/suppressions")?)?;
            if parsed.serial != cur.serial && !replace {
                return Err(format!(
                    "{} was exported at serial {}, the zone is at {} now: changes made since \
                     could be undone. Export again, use `belfry suppress edit`, or give \
                     --replace to make the list exactly this file",
                    file.display(),
                    parsed.serial,
                    cur.serial
                ));
            }
            match submit_edit(&c, by, reason, &cur, &parsed)? {
                Some(o) => print_outcome(&o),
                None => println!("nothing to change"),
            }
        }
        SuppressCmd::Edit { by, reason } => {
            let base: ListResponse = ok(c.get("/v1/suppressions")?)?;
            let dir = std::env::temp_dir();
            let path = dir.join(format!("belfry-suppressions-{}.toml", std::process::id()));
            list::write_atomic(&path, list::render(&as_file(&base)).as_bytes())?;
            let ed = editor();
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{ed} \"$1\""))
                .arg("sh")
                .arg(&path)
                .status()
                .map_err(|e| format!("cannot run the editor '{ed}': {e}"))?;
            if !status.success() {
                return Err(format!(
                    "the editor exited with {status}; nothing submitted (your file: {})",
                    path.display()
                ));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {}", path.display(), e.kind()))?;
            let who = actor(by.clone());
            let keep = |m: String| {
                format!(
                    "{m}\nnothing submitted; your edit is kept in {}",
                    path.display()
                )
            };
            let parsed =
                list::parse_checked(&path, &text, &who, super::time::now()).map_err(keep)?;
            if !parsed.complete {
                return Err(keep(format!(
                    "the last line must stay `{}`",
                    list::END_LINE
                )));
            }
            match submit_edit(&c, by, reason, &base, &parsed).map_err(keep)? {
                Some(o) => {
                    print_outcome(&o);
                    let _ = std::fs::remove_file(&path);
                }
                None => {
                    println!("no change");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        SuppressCmd::Outcome { id } => {
            let path = match id.parse::<u64>() {
                Ok(n) => format!("/v1/changes/{n}"),
                Err(_) if proto::request_id_ok(&id) => format!("/v1/requests/{id}"),
                Err(_) => return Err("give a change id (a number) or a request id".into()),
            };
            let (status, text) = c.get(&path)?;
            let st: ChangeStatus =
                serde_json::from_str(&text).map_err(|_| format!("refused ({status}): {text}"))?;
            match (st.state.as_str(), &st.outcome, &st.error) {
                ("applied", Some(o), _) => print_outcome(o),
                ("refused", _, Some(e)) => {
                    return Err(format!("refused, nothing of it is in force: {e}"))
                }
                ("pending", _, _) => println!("still being applied"),
                (_, _, e) => {
                    return Err(format!(
                        "unknown: {}",
                        e.as_deref().unwrap_or("no such change")
                    ))
                }
            }
        }
    }
    Ok(())
}
