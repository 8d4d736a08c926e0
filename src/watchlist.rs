//! Watch lists: names a registry is told about (the IWF TLD Hopping List, Domain
//! Alerts, phishing feeds) and what to do the moment one of them goes live.
//!
//! Each list is a text file, one name a line, optionally followed by a source
//! and a reference (`bad-name.be. IWF ref-123`); `#` starts a comment. Names are
//! read as the suppression list reads them (IDNs become A-labels); every bad
//! line is an error naming `file:line`, and a list that does not read keeps the
//! one in force.
//!
//! The publisher asks [`Lists::hits`] for every name a zone change delegates
//! (one hash lookup of its wire key per edited name), and per list policy
//! either suppresses the name in the same change (`suppress`) or raises an
//! alert (`alert`): an audit line, a WARN log line, a counter in `/metrics`,
//! and an optional webhook POST sent by a background thread, with retries,
//! never by the publisher itself.

use crate::suppress::EdeKind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What a hit does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Audit, log, count and (optionally) call a webhook; the name is served.
    Alert,
    /// Suppress the name in the same change that delegates it.
    Suppress,
}

impl Policy {
    /// The policy as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Alert => "alert",
            Policy::Suppress => "suppress",
        }
    }
}

/// `[[watch.list]]`: one watch list.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// Name of the list (in audit lines, logs, metrics, webhooks).
    pub name: String,
    /// The list file (relative to the configuration file).
    pub file: PathBuf,
    /// What a hit does.
    pub policy: Policy,
    /// EDE of the suppressed answers (policy `suppress`; default `censored`).
    #[serde(default)]
    pub ede: Option<EdeKind>,
    /// URL a JSON description of each hit is POSTed to (`http://` or `https://`).
    #[serde(default)]
    pub webhook: Option<String>,
}

/// `[watch]`: the watch lists.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSection {
    /// The lists.
    #[serde(default)]
    pub list: Vec<ListConfig>,
}

impl WatchSection {
    /// Check the section (names unique and simple, keys that go together).
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, l) in self.list.iter().enumerate() {
            let at = format!("[[watch.list]] #{}", i + 1);
            if l.name.is_empty()
                || l.name.len() > 64
                || !l
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!("{at}: name must be 1 to 64 of A-Z a-z 0-9 - _ ."));
            }
            if !seen.insert(l.name.clone()) {
                return Err(format!("{at}: the name '{}' is used twice", l.name));
            }
            if l.ede.is_some() && l.policy != Policy::Suppress {
                return Err(format!(
                    "{at} '{}': ede is only for policy = \"suppress\"",
                    l.name
                ));
            }
            if let Some(w) = &l.webhook {
                if !(w.starts_with("http://") || w.starts_with("https://")) {
                    return Err(format!(
                        "{at} '{}': webhook must be an http:// or https:// URL",
                        l.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One listed name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The name, lowercase wire form.
    pub wire: Vec<u8>,
    /// Who listed it (second field of the line; may be empty).
    pub source: String,
    /// Their reference (rest of the line; may be empty).
    pub reference: String,
    /// The line it is on.
    pub line: usize,
}

/// One loaded list.
#[derive(Clone, Debug)]
pub struct List {
    /// Its configuration.
    pub cfg: ListConfig,
    /// The names, by wire key ([`crate::name::key_of`]).
    pub names: HashMap<Vec<u8>, Listed>,
}

impl List {
    /// The EDE kind of suppressions it makes.
    pub fn ede(&self) -> EdeKind {
        self.cfg.ede.unwrap_or(EdeKind::Censored)
    }
}

/// Every loaded list: what the publisher consults.
#[derive(Clone, Debug, Default)]
pub struct Lists {
    /// The lists, in configuration order.
    pub lists: Vec<List>,
}

/// At most this many bad lines are named in one error.
const MAX_ERRORS: usize = 20;

/// Largest list file read.
const MAX_FILE: u64 = 256 << 20;

/// Parse the text of a list file; every bad line is named `file:line`.
pub fn parse(path: &Path, text: &str) -> Result<HashMap<Vec<u8>, Listed>, String> {
    let mut names: HashMap<Vec<u8>, Listed> = HashMap::new();
    let mut errors = Vec::new();
    let mut bad = 0usize;
    let f = path.display();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        let source = fields.next().unwrap_or("").to_string();
        let reference = fields.collect::<Vec<_>>().join(" ");
        let err = match crate::suppress::domain::parse(first) {
            Err(e) => Some(format!(
                "{f}:{no}: '{}' is not a domain name: {e}",
                crate::suppress::domain::quote(first)
            )),
            Ok(wire) if wire.len() <= 1 => Some(format!("{f}:{no}: the root cannot be listed")),
            Ok(_)
                if source
                    .chars()
                    .chain(reference.chars())
                    .any(|c| c.is_control()) =>
            {
                Some(format!(
                    "{f}:{no}: control characters in the source or reference"
                ))
            }
            Ok(_) if source.len() + reference.len() > 512 => Some(format!(
                "{f}:{no}: source and reference longer than 512 bytes"
            )),
            Ok(wire) => {
                let key = crate::name::key_of(&wire);
                if let Some(prev) = names.get(&key) {
                    Some(format!(
                        "{f}:{no}: {} is listed twice (first at line {})",
                        crate::name::to_text(&wire),
                        prev.line
                    ))
                } else {
                    names.insert(
                        key,
                        Listed {
                            wire,
                            source,
                            reference,
                            line: no,
                        },
                    );
                    None
                }
            }
        };
        if let Some(e) = err {
            bad += 1;
            if errors.len() < MAX_ERRORS {
                errors.push(e);
            }
        }
    }
    if bad > 0 {
        if bad > errors.len() {
            errors.push(format!("{f}: {} more bad lines", bad - errors.len()));
        }
        return Err(errors.join("\n"));
    }
    Ok(names)
}

/// Read and parse one list file.
pub fn read(path: &Path) -> Result<HashMap<Vec<u8>, Listed>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{}: cannot read: {}", path.display(), e.kind()))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{}: larger than {} bytes",
            path.display(),
            MAX_FILE
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("{}: cannot read: {}", path.display(), e.kind()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        format!("{}:{line}: not UTF-8 text", path.display())
    })?;
    parse(path, &text)
}

impl Lists {
    /// Load every configured list; an error names each bad file:line, and nothing is loaded.
    pub fn load(cfgs: &[ListConfig]) -> Result<Lists, String> {
        let mut lists = Vec::new();
        let mut errors = Vec::new();
        for c in cfgs {
            match read(&c.file) {
                Ok(names) => lists.push(List {
                    cfg: c.clone(),
                    names,
                }),
                Err(e) => errors.push(format!("watch list '{}': {e}", c.name)),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        Ok(Lists { lists })
    }

    /// The configurations of the lists loaded (to read them again).
    pub fn configs(&self) -> Vec<ListConfig> {
        self.lists.iter().map(|l| l.cfg.clone()).collect()
    }

    /// Whether there is no name to watch.
    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(|l| l.names.is_empty())
    }

    /// The lists that hold a name (by its wire key), with its entry.
    pub fn hits<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = (&'a List, &'a Listed)> + 'a {
        self.lists
            .iter()
            .filter_map(move |l| l.names.get(key).map(|e| (l, e)))
    }

    /// The edits that give a listed name an NS RRset: (index of the edit, key of
    /// the name). One hash lookup per list for each edit that sets NS records.
    pub fn candidates(&self, edits: &[crate::publish::change::NameEdit]) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        let ns = crate::wire::Rtype::NS.0;
        let mut k = crate::name::Key::new();
        for (i, e) in edits.iter().enumerate() {
            if !e.sets.iter().any(|s| s.rtype == ns && !s.rdatas.is_empty()) {
                continue;
            }
            k.set(&e.name);
            let key = k.as_bytes();
            if self.lists.iter().any(|l| l.names.contains_key(key)) {
                out.push((i, key.to_vec()));
            }
        }
        out
    }

    /// The list of a name.
    pub fn get(&self, name: &str) -> Option<&List> {
        self.lists.iter().find(|l| l.cfg.name == name)
    }

    /// Name and size of each list.
    pub fn summary(&self) -> Vec<ListSummary> {
        self.lists
            .iter()
            .map(|l| ListSummary {
                name: l.cfg.name.clone(),
                policy: l.cfg.policy,
                names: l.names.len(),
            })
            .collect()
    }
}

/// One list as `POST /v1/watch/reload` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSummary {
    /// Its name.
    pub name: String,
    /// Its policy.
    pub policy: Policy,
    /// How many names it holds.
    pub names: usize,
}

/// A listed name found delegated (`GET /v1/watch/check`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Present {
    /// The list.
    pub list: String,
    /// The name (text, A-labels).
    pub name: String,
    /// Who listed it.
    pub source: String,
    /// Their reference.
    pub reference: String,
    /// Whether it is suppressed now.
    pub suppressed: bool,
}

/// The answer of `GET /v1/watch/check`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The serial looked at.
    pub serial: u32,
    /// How many names were looked up.
    pub checked: usize,
    /// Listed names that are delegations in the zone (or suppressed delegations).
    pub present: Vec<Present>,
}

/// A hit of policy `alert`, to report once the change is served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The name (text).
    pub name: String,
    /// The list.
    pub list: String,
    /// Who listed it.
    pub source: String,
    /// Their reference.
    pub reference: String,
    /// The serial that delegates it.
    pub serial: u32,
    /// The change that delegated it.
    pub change: u64,
    /// What the change was (`reload`, `update`, `transfer`).
    pub via: String,
    /// What was done (`alert` or `suppress`).
    pub policy: &'static str,
    /// Where to POST it.
    #[serde(skip)]
    pub webhook: Option<String>,
}

// ---------------------------------------------------------------------------
// Counters for /metrics.

fn counters() -> &'static Mutex<BTreeMap<(String, &'static str), u64>> {
    static C: OnceLock<Mutex<BTreeMap<(String, &'static str), u64>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Webhook deliveries given up (after every retry) and dropped (queue full).
static WEBHOOK_FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count one hit.
pub fn count_hit(list: &str, policy: Policy) {
    let mut c = counters().lock().unwrap_or_else(|p| p.into_inner());
    *c.entry((list.to_string(), policy.as_str())).or_insert(0) += 1;
}

/// Make sure every configured list shows in `/metrics`, at 0 until its first hit.
pub fn register(lists: &Lists) {
    let mut c = counters().lock().unwrap_or_else(|p| p.into_inner());
    for l in &lists.lists {
        c.entry((l.cfg.name.clone(), l.cfg.policy.as_str()))
            .or_insert(0);
    }
}

/// The watch-list counters in the Prometheus text format.
pub fn metrics_text() -> String {
    let c = counters().lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    out.push_str("# HELP belfry_watch_hits_total Listed names a published change delegated, by watch list and policy.\n");
    out.push_str("# TYPE belfry_watch_hits_total counter\n");
    for ((list, policy), n) in c.iter() {
        out.push_str(&format!(
            "belfry_watch_hits_total{{list=\"{list}\",policy=\"{policy}\"}} {n}\n"
        ));
    }
    out.push_str("# HELP belfry_watch_webhook_failures_total Webhook calls given up after their retries or dropped.\n");
    out.push_str("# TYPE belfry_watch_webhook_failures_total counter\n");
    out.push_str(&format!(
        "belfry_watch_webhook_failures_total {}\n",
        WEBHOOK_FAILED.load(std::sync::atomic::Ordering::Relaxed)
    ));
    out
}

// ---------------------------------------------------------------------------
// Reporting hits once the change is served.

/// Webhook calls waiting for the sender thread (beyond this, they are dropped).
const WEBHOOK_QUEUE: usize = 4096;

/// How often a webhook call is tried.
const WEBHOOK_TRIES: u32 = 4;

fn webhook_queue() -> Option<&'static mpsc::SyncSender<Alert>> {
    static Q: OnceLock<Option<mpsc::SyncSender<Alert>>> = OnceLock::new();
    Q.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Alert>(WEBHOOK_QUEUE);
        match std::thread::Builder::new()
            .name("belfry-webhook".into())
            .spawn(move || webhook_loop(rx))
        {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!("watch lists: cannot start the webhook thread: {e}");
                None
            }
        }
    })
    .as_ref()
}

fn webhook_loop(rx: mpsc::Receiver<Alert>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .timeout_connect(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    while let Ok(a) = rx.recv() {
        let Some(url) = a.webhook.clone() else {
            continue;
        };
        let mut delay = Duration::from_millis(500);
        let mut done = false;
        for attempt in 1..=WEBHOOK_TRIES {
            let why = match agent.post(&url).send_json(&a) {
                Ok(r) if r.status().is_success() => {
                    done = true;
                    break;
                }
                Ok(r) => format!("HTTP {}", r.status().as_u16()),
                Err(e) => e.to_string(),
            };
            tracing::warn!(
                list = %a.list,
                name = %a.name,
                "watch list webhook {url}: attempt {attempt} of {WEBHOOK_TRIES} failed: {why}"
            );
            if attempt < WEBHOOK_TRIES {
                std::thread::sleep(delay);
                delay *= 4;
            }
        }
        if !done {
            WEBHOOK_FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                list = %a.list,
                name = %a.name,
                "watch list webhook {url}: given up"
            );
        }
    }
}

/// Report hits of a change now served: a WARN line and a count for each, and
/// their webhook calls queued (never waited for).
pub fn report(hits: Vec<Alert>) {
    for a in hits {
        let policy = if a.policy == "suppress" {
            Policy::Suppress
        } else {
            Policy::Alert
        };
        count_hit(&a.list, policy);
        match policy {
            Policy::Alert => tracing::warn!(
                list = %a.list,
                name = %a.name,
                source = %a.source,
                reference = %a.reference,
                serial = a.serial,
                change = a.change,
                "watch list hit: {} on list '{}' is delegated by a {} (serial {})",
                a.name,
                a.list,
                a.via,
                a.serial
            ),
            Policy::Suppress => tracing::warn!(
                list = %a.list,
                name = %a.name,
                source = %a.source,
                reference = %a.reference,
                serial = a.serial,
                change = a.change,
                "watch list hit: {} on list '{}' was delegated by a {} and is suppressed from serial {}",
                a.name,
                a.list,
                a.via,
                a.serial
            ),
        }
        if a.webhook.is_some() {
            match webhook_queue() {
                Some(q) => {
                    if q.try_send(a).is_err() {
                        WEBHOOK_FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!("watch list webhook queue full: a call is dropped");
                    }
                }
                None => {
                    WEBHOOK_FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_parse_names_sources_and_comments() {
        let text = "# IWF\nbad-name.be. IWF ref-123\n\nOther.BE  # no source\ncafé.be DA alert 7\n";
        let m = parse(Path::new("w.txt"), text).unwrap();
        assert_eq!(m.len(), 3);
        let k = crate::name::key_of(&crate::name::from_text("bad-name.be.", &[0]).unwrap());
        let e = &m[&k];
        assert_eq!(
            (e.source.as_str(), e.reference.as_str(), e.line),
            ("IWF", "ref-123", 2)
        );
        let k = crate::name::key_of(&crate::name::from_text("other.be.", &[0]).unwrap());
        assert_eq!(m[&k].source, "");
        let k = crate::name::key_of(&crate::name::from_text("xn--caf-dma.be.", &[0]).unwrap());
        assert_eq!(m[&k].reference, "alert 7");
    }

    #[test]
    fn watch_parse_names_every_bad_line() {
        let text = "ok.be.\nbad..name.be\nfine.be\nunder_score.be\nok.be.\n";
        let e = parse(Path::new("w.txt"), text).unwrap_err();
        assert!(e.contains("w.txt:2:"), "{e}");
        assert!(e.contains("w.txt:4:"), "{e}");
        assert!(
            e.contains("w.txt:5:") && e.contains("first at line 1"),
            "{e}"
        );
        assert!(!e.contains("w.txt:3:"), "{e}");
    }

    #[test]
    fn watch_config_checks() {
        let ok = WatchSection {
            list: vec![ListConfig {
                name: "iwf".into(),
                file: "x".into(),
                policy: Policy::Suppress,
                ede: Some(EdeKind::Blocked),
                webhook: None,
            }],
        };
        assert!(ok.check().is_ok());
        let mut twice = ok.clone();
        twice.list.push(ok.list[0].clone());
        assert!(twice.check().unwrap_err().contains("twice"));
        let mut ede = ok.clone();
        ede.list[0].policy = Policy::Alert;
        assert!(ede.check().unwrap_err().contains("ede"));
        let mut hook = ok.clone();
        hook.list[0].webhook = Some("ftp://x".into());
        assert!(hook.check().unwrap_err().contains("webhook"));
    }
}
