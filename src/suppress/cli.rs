//! `belfry suppress ...`: the operator's client for the admin API.
//!
//! Reads the admin address and token file from the configuration, sends one
//! HTTP request, prints the result. Exit status is non-zero on any refusal.

use crate::config::Config;
use clap::{Args, Subcommand};
use std::io::{Read, Write};
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
        /// Domains (absolute, e.g. phish-example.be.).
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
        /// Lift automatically: an RFC 3339 UTC time, or a duration like 24h or 14d.
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
        /// Domain.
        domain: String,
    },
}

fn actor(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "operator".into())
}

/// Turn `24h`, `14d`, `30m` or an RFC 3339 time into an RFC 3339 time.
fn expiry(s: &str) -> Result<String, String> {
    if super::list::parse_time(s).is_some() {
        return Ok(s.to_string());
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("--expires '{s}': use 2026-12-08T13:00:00Z or 24h / 14d"))?;
    let mult = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("--expires '{s}': unit must be m, h or d")),
    };
    Ok(super::list::format_time(super::list::now_secs() + n * mult))
}

/// Send one request to the admin API; returns (status, JSON body).
pub fn request(
    cfg: &Config,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let tf = cfg
        .suppress
        .admin_token_file
        .as_ref()
        .ok_or("the configuration has no [suppress] admin_token_file")?;
    let token = std::fs::read_to_string(tf)
        .map_err(|e| format!("{}: cannot read the admin token: {e}", tf.display()))?;
    let addr = cfg.suppress.admin_listen;
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
            format!("cannot reach the admin API at {addr}: {e} (is `belfry serve` running?)")
        })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        token.trim(),
        text.len()
    )
    .map_err(|e| format!("admin API: {e}"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .map_err(|e| format!("admin API: {e}"))?;
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("admin API: malformed response")?;
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

fn ok_or_err(status: u16, body: serde_json::Value) -> Result<serde_json::Value, String> {
    if status == 200 {
        Ok(body)
    } else {
        Err(format!(
            "refused ({status}): {}",
            body.get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no details")
        ))
    }
}

/// Run `belfry suppress`.
pub fn run(a: SuppressArgs) -> Result<(), String> {
    let cfg = Config::load(&a.config).map_err(|e| e.to_string())?;
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
                let text =
                    std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
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
            if ede != "blocked" && ede != "censored" {
                return Err(format!("--ede '{ede}': use blocked or censored"));
            }
            let expires = expires.map(|e| expiry(&e)).transpose()?;
            let entries: Vec<serde_json::Value> = domains
                .iter()
                .map(|d| {
                    let d = if d.ends_with('.') { d.clone() } else { format!("{d}.") };
                    serde_json::json!({"domain": d, "reason": reason, "case": case, "ede": ede, "expires": expires})
                })
                .collect();
            let body = serde_json::json!({"actor": actor(by), "entries": entries});
            let (st, b) = request(&cfg, "POST", "/v1/suppressions", Some(&body))?;
            let b = ok_or_err(st, b)?;
            println!(
                "suppressed {} domain(s); zone serial now {}",
                entries.len(),
                b["serial"]
            );
        }
        SuppressCmd::Remove {
            domains,
            reason,
            by,
        } => {
            if domains.is_empty() {
                return Err("no domain given".into());
            }
            let domains: Vec<String> = domains
                .into_iter()
                .map(|d| if d.ends_with('.') { d } else { format!("{d}.") })
                .collect();
            let body =
                serde_json::json!({"actor": actor(by), "reason": reason, "domains": domains});
            let (st, b) = request(&cfg, "POST", "/v1/suppressions/remove", Some(&body))?;
            let b = ok_or_err(st, b)?;
            println!(
                "lifted {} suppression(s); zone serial now {}",
                domains.len(),
                b["serial"]
            );
        }
        SuppressCmd::List { json } => {
            let (st, b) = request(&cfg, "GET", "/v1/suppressions", None)?;
            let b = ok_or_err(st, b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
            } else {
                println!("serial {}", b["serial"]);
                for e in b["entries"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        e["domain"].as_str().unwrap_or(""),
                        e["case"].as_str().unwrap_or(""),
                        e["ede"].as_str().unwrap_or(""),
                        e["added_at"].as_str().unwrap_or(""),
                        e["expires"].as_str().unwrap_or("-"),
                        e["reason"].as_str().unwrap_or("")
                    );
                }
            }
        }
        SuppressCmd::Show { domain } => {
            let d = if domain.ends_with('.') {
                domain
            } else {
                format!("{domain}.")
            };
            let (st, b) = request(&cfg, "GET", &format!("/v1/suppressions/{d}"), None)?;
            let b = ok_or_err(st, b)?;
            println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
        }
    }
    Ok(())
}
