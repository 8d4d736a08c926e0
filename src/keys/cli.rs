//! `belfry key status | roll | ds-seen`: the operator's side of the key manager.
//!
//! These talk to the running server through the admin API (the key manager
//! lives in the server, and every step is a change it publishes). `status`
//! falls back to the key directory when no server answers, and says so.

use super::state;
use crate::config::Config;
use crate::suppress::cli::Client;
use crate::suppress::proto::{DsSeenRequest, ErrorBody, KeyActionResponse, KeyStatus, RollRequest};
use std::path::Path;

fn body<T: serde::de::DeserializeOwned>((status, text): (u16, String)) -> Result<T, String> {
    if status == 200 {
        serde_json::from_str(&text).map_err(|e| format!("admin API: unexpected answer: {e}"))
    } else {
        let msg = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or_else(|_| "no details".into());
        Err(format!("refused ({status}): {msg}"))
    }
}

fn actor(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "operator".into())
}

/// Print a status the way an operator reads it.
pub fn print_status(s: &KeyStatus) {
    println!("zone {}  (DNSSEC clock {})", s.zone, s.now);
    println!(
        "{:<22} {:<4} {:<16} {:<12} {:<10} {:<7} SIGNS",
        "KEY", "ROLE", "ALGORITHM", "STATE", "DS", "SERVED"
    );
    for k in &s.keys {
        println!(
            "{:<22} {:<4} {:<16} {:<12} {:<10} {:<7} {}",
            k.base,
            k.role,
            k.algorithm,
            k.state,
            k.ds,
            if k.served { "yes" } else { "no" },
            k.signs
        );
    }
    if s.rolls.is_empty() {
        println!("no rollover under way");
    } else {
        println!("rollovers under way: {}", s.rolls.join(", "));
    }
    if !s.next.is_empty() {
        println!("next steps:");
        for n in &s.next {
            let when = match (&n.earliest, &n.waits_for) {
                (Some(e), Some(w)) => format!("not before {e}; waits for {w}"),
                (Some(e), None) => format!("at {e} at the earliest"),
                (None, Some(w)) => format!("waits for {w}"),
                (None, None) => "when its time is known".into(),
            };
            println!("  [{}] {} — {when}", n.roll, n.what);
        }
    }
    if s.resign_left > 0 {
        println!("re-signing for the key set: {} RRsets left", s.resign_left);
    }
    if !s.parent_publish.is_empty() || !s.parent_remove.is_empty() {
        println!("the parent must now:");
        for d in &s.parent_publish {
            println!("  publish  {d}");
        }
        for d in &s.parent_remove {
            println!("  remove   {d}");
        }
        println!("  (then run `belfry key ds-seen`)");
    }
    println!("DS RRset the parent should hold:");
    for d in &s.parent_ds {
        println!("  {d}");
    }
    if let Some(e) = &s.last_error {
        println!("last step refused: {e}");
    }
}

/// `belfry key status`.
pub fn status(config: &Path, json: bool) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    let reply = Client::new(&cfg).and_then(|c| c.get("/v1/keys"));
    match reply {
        Ok(r) => {
            let s: KeyStatus = body(r)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print_status(&s);
            }
            Ok(())
        }
        Err(e) if e.starts_with("no answer") || e.contains("admin_token_file") => {
            eprintln!("belfry is not answering ({e});\nthe key states on disk:");
            let keys = state::load(&cfg.dnssec.key_dir, &cfg.zone.origin)?;
            for r in &keys.records {
                println!(
                    "{:<22} {:<4} {:<16} {:<12} ds {}",
                    r.base,
                    r.role.name(),
                    state::algorithm_name(r.algorithm),
                    r.state.name(),
                    r.ds.name()
                );
            }
            if !keys.from_file {
                println!("(no key-state file yet: every key is taken as active)");
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// `belfry key roll`.
pub fn roll(config: &Path, kind: &str, to: Option<&str>, by: Option<String>) -> Result<(), String> {
    super::manager::roll_request(kind, to)?;
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    let c = Client::new(&cfg)?;
    let r: KeyActionResponse = body(c.post(
        "/v1/keys/roll",
        &RollRequest {
            actor: actor(by),
            kind: kind.to_string(),
            algorithm: to.map(String::from),
        },
    )?)?;
    println!("{}", r.done);
    print_status(&r.status);
    Ok(())
}

/// `belfry key ds-seen`.
pub fn ds_seen(config: &Path, by: Option<String>) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    let c = Client::new(&cfg)?;
    let r: KeyActionResponse =
        body(c.post("/v1/keys/ds-seen", &DsSeenRequest { actor: actor(by) })?)?;
    println!("{}", r.done);
    print_status(&r.status);
    Ok(())
}
