//! The admin API: a small HTTP/1.1 JSON service on loopback for the suppression list.
//!
//! Endpoints (all need `Authorization: Bearer <token>`, the token read from the
//! file named in the configuration; a missing or wrong token gets 401 and an
//! audit line):
//!
//! - `GET /v1/suppressions` — the list and the serial;
//! - `GET /v1/suppressions/<domain>` — one entry, or 404;
//! - `POST /v1/suppressions` — add: `{"actor": "...", "entries": [{"domain", "reason", "case", "ede"?, "expires"?}]}`;
//! - `POST /v1/suppressions/remove` — lift: `{"actor": "...", "reason": "...", "domains": ["..."]}`;
//! - `GET /v1/status` — serial and counts.
//!
//! Changes return only after the new snapshot serves (see [`super::runtime`]).
//! One thread serves connections one at a time: operators, not resolvers, use it.

use super::list;
use super::EdeKind;
use crate::publish::change::{Change, ChangeError, Outcome, Suppression};
use crate::publish::Publisher;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// An entry as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// Domain to suppress.
    pub domain: String,
    /// Why.
    pub reason: String,
    /// Case id.
    pub case: String,
    /// `blocked` (default) or `censored`.
    #[serde(default)]
    pub ede: Option<EdeKind>,
    /// RFC 3339 UTC time when it lifts by itself.
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    actor: String,
    entries: Vec<NewEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    actor: String,
    reason: String,
    domains: Vec<String>,
}

struct Request {
    method: String,
    path: String,
    token: Option<String>,
    body: Vec<u8>,
}

const MAX_BODY: usize = 16 << 20;

fn read_request(stream: &mut TcpStream) -> Result<Request, String> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    let mut token = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(|e| e.to_string())? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse().map_err(|_| "bad Content-Length".to_string())?;
            } else if k.eq_ignore_ascii_case("authorization") {
                token = v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
            }
        }
    }
    if len > MAX_BODY {
        return Err("request body too large".into());
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(Request {
        method,
        path,
        token,
        body,
    })
}

fn respond(stream: &mut TcpStream, status: u16, body: &serde_json::Value) {
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Internal Server Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Read a JSON request body with a non-empty actor; answers 400 itself when it is not.
fn parse_body<T: serde::de::DeserializeOwned>(
    stream: &mut TcpStream,
    bytes: &[u8],
    actor: impl Fn(&T) -> &String,
) -> Option<T> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(b) if !actor(&b).trim().is_empty() => Some(b),
        Ok(_) => {
            respond(
                stream,
                400,
                &serde_json::json!({ "error": "actor is required" }),
            );
            None
        }
        Err(e) => {
            respond(
                stream,
                400,
                &serde_json::json!({ "error": format!("bad request body: {e}") }),
            );
            None
        }
    }
}

/// The HTTP status of a refused change.
fn status_of(e: &ChangeError) -> u16 {
    match e {
        ChangeError::BadInput(_) | ChangeError::Check(_) => 400,
        ChangeError::NotListed(_) => 404,
        ChangeError::AlreadyListed(_) | ChangeError::Unsafe(_) | ChangeError::Unchanged => 409,
        ChangeError::TimedOut => 503,
        ChangeError::Sign(_) | ChangeError::Storage(_) => 500,
    }
}

/// Answer with the outcome of a change, or its error status and message.
fn respond_outcome(stream: &mut TcpStream, r: Result<Outcome, ChangeError>) {
    match r {
        Ok(o) => respond(stream, 200, &serde_json::to_value(o).unwrap_or_default()),
        Err(e) => respond(
            stream,
            status_of(&e),
            &serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

/// Parse a domain given by an operator: absolute, a valid name.
fn parse_domain(d: &str) -> Result<Vec<u8>, ChangeError> {
    if !d.trim().ends_with('.') {
        return Err(ChangeError::BadInput(format!(
            "'{d}' must be absolute (end with a dot)"
        )));
    }
    crate::name::from_text(d, &[0])
        .map(|w| crate::name::to_lowercase(&w))
        .map_err(|e| ChangeError::BadInput(format!("'{d}': {e}")))
}

/// Constant-time comparison of the presented token with the configured one.
fn token_ok(given: Option<&str>, want: &str) -> bool {
    let Some(g) = given else { return false };
    let (a, b) = (g.as_bytes(), want.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xFF);
    }
    diff == 0 && !want.is_empty()
}

/// Serve the admin API on `listener` until the service stops.
pub fn serve(listener: TcpListener, token: String, ctx: Arc<ApiContext>) {
    let _ = listener.set_nonblocking(true);
    while !ctx.publisher.stopping() {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                match read_request(&mut stream) {
                    Ok(req) => handle(&mut stream, req, peer, &token, &ctx),
                    Err(m) => respond(&mut stream, 400, &serde_json::json!({ "error": m })),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Wait for the next connection (or 200 ms, to notice a stop) without polling.
                use std::os::fd::AsRawFd;
                let mut pfd = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe {
                    libc::poll(&mut pfd, 1, 200);
                }
            }
            Err(e) => {
                crate::log(&format!("admin API accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What the admin API works with.
pub struct ApiContext {
    /// The publisher.
    pub publisher: Arc<Publisher>,
    /// The service (for status).
    pub service: Arc<crate::service::Service>,
    /// The audit log (for refused requests).
    pub audit: Option<super::audit::Audit>,
}

fn handle(
    stream: &mut TcpStream,
    req: Request,
    peer: std::net::SocketAddr,
    token: &str,
    ctx: &ApiContext,
) {
    let publisher = &ctx.publisher;
    if !token_ok(req.token.as_deref(), token) {
        if let Some(a) = &ctx.audit {
            a.record(
                &format!("api:{peer}"),
                "auth-failed",
                "",
                &format!("{} {}", req.method, req.path),
                "",
                publisher.snapshot().serial,
            );
        }
        respond(
            stream,
            401,
            &serde_json::json!({ "error": "missing or wrong admin token" }),
        );
        return;
    }
    let path = req.path.trim_end_matches('/');
    match (req.method.as_str(), path) {
        ("GET", "/v1/status") => {
            let snap = publisher.snapshot();
            let signer = snap.dnssec.as_ref().map(|d| d.signer.clone());
            respond(
                stream,
                200,
                &serde_json::json!({
                    "zone": crate::name::to_text(snap.zone.origin()),
                    "serial": snap.serial,
                    "suppressed": snap.suppressions.len(),
                    "signed": snap.dnssec.is_some(),
                    "fully_signed": ctx.service.fully_signed.load(std::sync::atomic::Ordering::Relaxed),
                    "signatures_made": signer.as_ref().map(|s| s.made.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(0),
                    "signing_failures": signer.as_ref().map(|s| s.failures.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(0),
                    "delegations": snap.zone.stats().delegations,
                }),
            );
        }
        ("GET", "/v1/suppressions") => {
            let (serial, l) = publisher.list();
            let entries: Vec<list::Entry> = l.iter().map(list::Entry::from_suppression).collect();
            respond(
                stream,
                200,
                &serde_json::json!({ "serial": serial, "entries": entries }),
            );
        }
        ("GET", p) if p.starts_with("/v1/suppressions/") => {
            let d = p.trim_start_matches("/v1/suppressions/");
            let d = if d.ends_with('.') {
                d.to_string()
            } else {
                format!("{d}.")
            };
            let wire = match parse_domain(&d) {
                Ok(w) => w,
                Err(e) => return respond_outcome(stream, Err(e)),
            };
            let (_, l) = publisher.list();
            match l.iter().find(|e| e.name == wire) {
                Some(e) => respond(
                    stream,
                    200,
                    &serde_json::to_value(list::Entry::from_suppression(e)).unwrap_or_default(),
                ),
                None => respond(
                    stream,
                    404,
                    &serde_json::json!({ "error": format!("{} is not on the suppression list", crate::name::to_text(&wire)) }),
                ),
            }
        }
        ("POST", "/v1/suppressions") => {
            let Some(body) = parse_body::<AddBody>(stream, &req.body, |b| &b.actor) else {
                return;
            };
            let now = list::now_secs();
            let mut entries = Vec::new();
            for n in body.entries {
                let name = match parse_domain(&n.domain) {
                    Ok(w) => w,
                    Err(e) => return respond_outcome(stream, Err(e)),
                };
                let expires = match n.expires.as_deref().map(list::parse_time) {
                    None => None,
                    Some(Some(t)) => Some(t),
                    Some(None) => {
                        return respond_outcome(
                            stream,
                            Err(ChangeError::BadInput(format!(
                                "{}: bad expires '{}'",
                                n.domain,
                                n.expires.unwrap_or_default()
                            ))),
                        )
                    }
                };
                entries.push(Suppression {
                    name,
                    reason: n.reason,
                    case: n.case,
                    added_by: body.actor.clone(),
                    added_at: now,
                    expires,
                    ede: n.ede.unwrap_or(EdeKind::Blocked),
                });
            }
            let r = publisher.apply(
                Change::Suppress { entries },
                &body.actor,
                Some(std::time::Instant::now() + Duration::from_secs(30)),
            );
            respond_outcome(stream, r);
        }
        ("POST", "/v1/suppressions/remove") => {
            let Some(body) = parse_body::<RemoveBody>(stream, &req.body, |b| &b.actor) else {
                return;
            };
            let mut names = Vec::new();
            for d in &body.domains {
                match parse_domain(d) {
                    Ok(w) => names.push(w),
                    Err(e) => return respond_outcome(stream, Err(e)),
                }
            }
            let r = publisher.apply(
                Change::Lift {
                    names,
                    reason: body.reason.clone(),
                },
                &body.actor,
                Some(std::time::Instant::now() + Duration::from_secs(30)),
            );
            respond_outcome(stream, r);
        }
        _ => respond(
            stream,
            404,
            &serde_json::json!({ "error": format!("no such endpoint: {} {}", req.method, req.path) }),
        ),
    }
}

/// Watches the list file for hand edits and submits them to the publisher.
pub struct ListWatch {
    path: std::path::PathBuf,
    last_text: Option<String>,
}

impl ListWatch {
    /// Watch a list file; `current` is its text as the server last wrote or read it.
    pub fn new(path: std::path::PathBuf) -> ListWatch {
        let last_text = std::fs::read_to_string(&path).ok();
        ListWatch { path, last_text }
    }

    /// Pick up a hand edit, if there is one. Errors leave the list in force.
    pub fn check(&mut self, publisher: &Publisher) -> Result<Option<Outcome>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read: {e}", self.path.display())),
        };
        if self.last_text.as_deref() == Some(text.as_str()) {
            return Ok(None);
        }
        // Our own write since the last look is not a hand edit.
        let (serial, current) = publisher.list();
        let ours = list::render(&list::ListFile {
            serial,
            entries: current.iter().map(list::Entry::from_suppression).collect(),
        });
        if ours == text {
            self.last_text = Some(text);
            return Ok(None);
        }
        self.last_text = Some(text.clone());
        let parsed = list::parse(&self.path, &text).map_err(|m| format!("edit rejected: {m}"))?;
        let mut entries = Vec::new();
        for e in &parsed.entries {
            entries.push(
                e.to_suppression()
                    .map_err(|m| format!("{}: edit rejected: {m}", self.path.display()))?,
            );
        }
        match publisher.apply(Change::ReplaceList { entries }, "file-edit", None) {
            Ok(o) => {
                self.last_text = std::fs::read_to_string(&self.path).ok();
                Ok(Some(o))
            }
            Err(ChangeError::Unchanged) => Ok(None),
            Err(e) => Err(format!("{}: edit rejected: {e}", self.path.display())),
        }
    }
}

/// Start the admin API (when a token file is configured) and the list-file watcher.
pub fn start(
    cfg: &crate::config::Config,
    publisher: Arc<Publisher>,
    service: Arc<crate::service::Service>,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let s = &cfg.suppress;
    let mut threads = Vec::new();
    let audit = match &s.audit_log {
        Some(p) => Some(super::audit::Audit::open(p)?),
        None => None,
    };
    let ctx = Arc::new(ApiContext {
        publisher: publisher.clone(),
        service,
        audit,
    });
    match &s.admin_token_file {
        Some(tf) => {
            let token = std::fs::read_to_string(tf)
                .map_err(|e| format!("{}: cannot read the admin token: {e}", tf.display()))?
                .trim()
                .to_string();
            if token.len() < 16 {
                return Err(format!(
                    "{}: the admin token must be at least 16 characters",
                    tf.display()
                ));
            }
            let listener = TcpListener::bind(s.admin_listen)
                .map_err(|e| format!("admin API: cannot listen on {}: {e}", s.admin_listen))?;
            crate::log(&format!("admin API on http://{}", s.admin_listen));
            let c = ctx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("belfry-admin".into())
                    .spawn(move || serve(listener, token, c))
                    .map_err(|e| format!("admin API thread: {e}"))?,
            );
        }
        None => crate::log("admin API off: no [suppress] admin_token_file configured"),
    }
    if let Some(path) = s.file.clone() {
        let p = publisher.clone();
        threads.push(
            std::thread::Builder::new()
                .name("belfry-watch".into())
                .spawn(move || {
                    let mut w = ListWatch::new(path);
                    while !p.stopping() {
                        match w.check(&p) {
                            Ok(Some(o)) => crate::log(&format!(
                                "suppression list edited by hand: serial {}, added {:?}, removed {:?}",
                                o.serial, o.added, o.removed
                            )),
                            Ok(None) => {}
                            Err(m) => crate::log(&m),
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                })
                .map_err(|e| format!("watch thread: {e}"))?,
        );
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(token_ok(Some("secret-token-123456"), "secret-token-123456"));
        assert!(!token_ok(Some("secret-token-12345"), "secret-token-123456"));
        assert!(!token_ok(None, "secret-token-123456"));
        assert!(!token_ok(Some(""), ""));
    }
}
