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
//! - `GET /v1/status` — serial and counts (suppressions, signatures that could not be made).
//!
//! Changes return only after the new snapshot serves (see [`super::runtime`]).
//! One thread serves connections one at a time: operators, not resolvers, use it.

use super::list::{self, Entry};
use super::runtime::{ChangeError, Runtime};
use super::EdeKind;
use crate::service::{Loaded, Service};
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

/// Answer with the outcome of a change, or its error status and message.
fn respond_outcome(stream: &mut TcpStream, r: Result<super::runtime::Outcome, ChangeError>) {
    match r {
        Ok(o) => respond(stream, 200, &serde_json::to_value(o).unwrap_or_default()),
        Err(e) => respond(stream, e.status, &serde_json::json!({ "error": e.message })),
    }
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
pub fn serve(
    listener: TcpListener,
    token: String,
    rt: Arc<Runtime>,
    svc: Arc<Service>,
    loaded: Arc<Loaded>,
) {
    let _ = listener.set_nonblocking(true);
    while !svc.stopping() {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                match read_request(&mut stream) {
                    Ok(req) => handle(&mut stream, req, peer, &token, &rt, &svc, &loaded),
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

fn handle(
    stream: &mut TcpStream,
    req: Request,
    peer: std::net::SocketAddr,
    token: &str,
    rt: &Runtime,
    svc: &Service,
    loaded: &Loaded,
) {
    if !token_ok(req.token.as_deref(), token) {
        if let Some(a) = &rt.audit {
            a.record(
                &format!("api:{peer}"),
                "auth-failed",
                "",
                &format!("{} {}", req.method, req.path),
                "",
                svc.snapshot().serial,
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
            let snap = svc.snapshot();
            respond(
                stream,
                200,
                &serde_json::json!({
                    "zone": crate::name::to_text(snap.zone.origin()),
                    "serial": snap.serial,
                    "suppressed": snap.suppressions.len(),
                    "signed": snap.dnssec.is_some(),
                    "signing_failures": snap.dnssec.as_ref().map_or(0, |d| d.signer.signing_failures()),
                }),
            );
        }
        ("GET", "/v1/suppressions") => {
            let l = rt.list();
            respond(
                stream,
                200,
                &serde_json::json!({ "serial": l.serial, "entries": l.entries }),
            );
        }
        ("GET", p) if p.starts_with("/v1/suppressions/") => {
            let d = p
                .trim_start_matches("/v1/suppressions/")
                .to_ascii_lowercase();
            let d = if d.ends_with('.') { d } else { format!("{d}.") };
            match rt
                .list()
                .entries
                .into_iter()
                .find(|e| e.domain.eq_ignore_ascii_case(&d))
            {
                Some(e) => respond(stream, 200, &serde_json::to_value(e).unwrap_or_default()),
                None => respond(
                    stream,
                    404,
                    &serde_json::json!({ "error": format!("{d} is not on the suppression list") }),
                ),
            }
        }
        ("POST", "/v1/suppressions") => {
            let Some(body) = parse_body::<AddBody>(stream, &req.body, |b| &b.actor) else {
                return;
            };
            let now = list::format_time(list::now_secs());
            let entries = body
                .entries
                .into_iter()
                .map(|n| Entry {
                    domain: n.domain,
                    reason: n.reason,
                    case: n.case,
                    added_by: body.actor.clone(),
                    added_at: now.clone(),
                    expires: n.expires,
                    ede: n.ede.unwrap_or(EdeKind::Blocked),
                })
                .collect();
            respond_outcome(stream, rt.add(svc, loaded, entries, &body.actor));
        }
        ("POST", "/v1/suppressions/remove") => {
            let Some(body) = parse_body::<RemoveBody>(stream, &req.body, |b| &b.actor) else {
                return;
            };
            respond_outcome(
                stream,
                rt.remove(svc, loaded, &body.domains, &body.reason, &body.actor),
            );
        }
        _ => respond(
            stream,
            404,
            &serde_json::json!({ "error": format!("no such endpoint: {} {}", req.method, req.path) }),
        ),
    }
}

impl Runtime {
    /// Start the admin API and the watcher (file edits, expiry) for a running service.
    pub fn start(
        self,
        svc: Arc<Service>,
        loaded: Loaded,
    ) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
        let rt = Arc::new(self);
        let loaded = Arc::new(loaded);
        let mut threads = Vec::new();
        match &rt.token_file {
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
                let listener = TcpListener::bind(rt.admin_listen)
                    .map_err(|e| format!("admin API: cannot listen on {}: {e}", rt.admin_listen))?;
                crate::log(&format!("admin API on http://{}", rt.admin_listen));
                let (r, s, l) = (rt.clone(), svc.clone(), loaded.clone());
                threads.push(
                    std::thread::Builder::new()
                        .name("belfry-admin".into())
                        .spawn(move || serve(listener, token, r, s, l))
                        .map_err(|e| format!("admin API thread: {e}"))?,
                );
            }
            None => crate::log("admin API off: no [suppress] admin_token_file configured"),
        }
        let (r, s, l) = (rt.clone(), svc.clone(), loaded.clone());
        threads.push(
            std::thread::Builder::new()
                .name("belfry-watch".into())
                .spawn(move || {
                    while !s.stopping() {
                        match r.check_file(&s, &l) {
                            Ok(Some(o)) => crate::log(&format!(
                                "suppression list edited by hand: serial {}, added {:?}, removed {:?}",
                                o.serial, o.added, o.removed
                            )),
                            Ok(None) => {}
                            Err(m) => crate::log(&m),
                        }
                        if let Err(e) = r.refresh_signatures(&s, &l) {
                            crate::log(&format!("re-signing spliced NSEC3 records failed: {e}"));
                        }
                        match r.expire(&s, &l) {
                            Ok(Some(o)) => crate::log(&format!("suppressions expired: {:?} (serial {})", o.removed, o.serial)),
                            Ok(None) => {}
                            Err(e) => crate::log(&format!("expiring suppressions failed: {e}")),
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                })
                .map_err(|e| format!("watch thread: {e}"))?,
        );
        Ok(threads)
    }
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
