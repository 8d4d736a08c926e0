//! The admin API: HTTP/1.1 + JSON on hyper, for the suppression list.
//!
//! Endpoints (all need `Authorization: Bearer <token>`, the token read from the
//! file named in the configuration; the request and answer types are in
//! [`super::proto`], shared with the CLI):
//!
//! - `GET /v1/status` — serial, counts, the next change id;
//! - `GET /v1/suppressions` — the list and the serial;
//! - `GET /v1/suppressions/<domain>` — one entry (any spelling of the name), or 404;
//! - `POST /v1/suppressions` — add ([`proto::AddRequest`]);
//! - `POST /v1/suppressions/remove` — lift ([`proto::RemoveRequest`]);
//! - `POST /v1/suppressions/edit` — a delta made from an earlier version ([`proto::EditRequest`]);
//! - `GET /v1/changes/<id>` — what became of a change (from the publisher);
//! - `GET /v1/keys` — the keys, their states, the rollovers' next steps, what the
//!   parent must publish ([`proto::KeyStatus`]);
//! - `POST /v1/keys/roll` — start a rollover ([`proto::RollRequest`]);
//! - `POST /v1/keys/ds-seen` — the parent now publishes the DS RRset asked for;
//! - `GET /v1/requests/<request id>` — what became of a request sent with a
//!   `belfry-request-id` header (a client that gave up asks here; sending the
//!   same id again answers with the first outcome instead of applying twice);
//! - `GET /metrics` — the server's counters in the Prometheus text format
//!   ([`crate::metrics::expose`]), for a scraper that sends the same token.
//!
//! Limits, all checked before anything is buffered: the request head is read
//! into a buffer of at most `admin_max_header` bytes (hyper answers 431 past
//! it) within `header_timeout`; the token is checked before the body is read;
//! a body larger than `admin_max_body` is refused by its Content-Length, or
//! cut off while streaming; each connection has a total deadline
//! (`admin_request_timeout`), and a change is refused rather than applied
//! once its deadline has passed (the publisher checks it). Connections are
//! served concurrently (up to `admin_max_connections`), each a tokio task on
//! the API's own runtime thread; changes run on blocking threads, one at a
//! time inside the publisher. Refused requests get an audit line of bounded
//! size, at most [`AUTH_AUDIT_PER_MINUTE`] a minute. TLS (rustls) is used when
//! configured, and required for an address that is not loopback.

use super::audit::Audit;
use super::proto::{self, ChangeStatus, EntryView, ErrorBody, ListResponse, StatusResponse};
use super::EdeKind;
use crate::publish::change::{Change, ChangeError, ListStep, Outcome, Suppression};
use crate::publish::Publisher;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most audit lines for refused requests in one minute (the rest are counted).
pub const AUTH_AUDIT_PER_MINUTE: u32 = 20;
/// Request ids whose outcome is kept.
const REQUESTS_KEPT: usize = 1000;

/// Limits of the admin API.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request head (request line and headers), bytes.
    pub max_header: usize,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Time allowed for the request head (and the TLS handshake).
    pub header_timeout: Duration,
    /// Time allowed for the whole connection: head, body, change, answer.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// The limits of a configuration.
    pub fn of(s: &crate::config::SuppressSection) -> Limits {
        Limits {
            max_header: s.admin_max_header.max(8192),
            max_body: s.admin_max_body,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(s.admin_request_timeout.max(1)),
            max_connections: s.admin_max_connections.max(1),
        }
    }
}

/// What became of a request sent with an id.
#[derive(Clone, Debug)]
enum ReqState {
    Pending,
    Done {
        status: u16,
        body: String,
        result: Result<Outcome, String>,
    },
}

/// Outcomes of requests by the client's id (bounded, oldest dropped).
#[derive(Default)]
struct Requests {
    by_id: HashMap<String, ReqState>,
    order: VecDeque<String>,
}

impl Requests {
    fn insert(&mut self, id: &str, st: ReqState) {
        if self.by_id.insert(id.to_string(), st).is_none() {
            self.order.push_back(id.to_string());
            while self.order.len() > REQUESTS_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.by_id.remove(&old);
                }
            }
        }
    }
}

/// Rate limit of audit lines for refused requests.
struct AuditBudget {
    window: Instant,
    used: u32,
    dropped: u64,
}

/// What the admin API works with.
pub struct ApiContext {
    /// The publisher.
    pub publisher: Arc<Publisher>,
    /// The service (for status).
    pub service: Arc<crate::service::Service>,
    /// The audit log (for refused requests).
    pub audit: Option<Arc<Audit>>,
    token: String,
    limits: Limits,
    max_removal_share: f64,
    requests: Mutex<Requests>,
    budget: Mutex<AuditBudget>,
}

type Resp = Response<Full<Bytes>>;
/// A refusal on its way to becoming the answer (boxed: a response is large).
type Refusal = Box<Resp>;

fn refuse(status: u16, msg: impl Into<String>) -> Refusal {
    Box::new(error(status, msg))
}

fn json<T: serde::Serialize>(status: u16, body: &T) -> Resp {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    raw(status, text)
}

fn raw(status: u16, text: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: u16, msg: impl Into<String>) -> Resp {
    json(status, &ErrorBody { error: msg.into() })
}

/// The HTTP status of a refused change.
pub fn status_of(e: &ChangeError) -> u16 {
    match e {
        ChangeError::BadInput(_) | ChangeError::Check(_) => 400,
        ChangeError::NotListed(_) => 404,
        ChangeError::AlreadyListed(_)
        | ChangeError::Unsafe(_)
        | ChangeError::Unchanged
        | ChangeError::Conflict(_) => 409,
        ChangeError::TimedOut => 503,
        ChangeError::Sign(_) | ChangeError::Storage(_) => 500,
    }
}

/// Constant-time comparison of the presented token with the configured one.
fn token_ok(given: Option<&[u8]>, want: &str) -> bool {
    let Some(a) = given else { return false };
    let b = want.as_bytes();
    let mut diff = (a.len() ^ b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xFF);
    }
    diff == 0 && !want.is_empty()
}

fn bearer(parts: &http::request::Parts) -> Option<&[u8]> {
    let v = parts.headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let t = v.strip_prefix(b"Bearer ")?;
    Some(t.trim_ascii())
}

/// Decode `%XX` escapes of a path segment (bounded by the head limit already).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A serde error message without the values it may quote.
fn body_error(e: &serde_json::Error) -> String {
    format!(
        "bad request body (line {}, column {}): {}",
        e.line(),
        e.column(),
        super::list::scrub(&e.to_string())
    )
}

impl ApiContext {
    /// A context for serving.
    pub fn new(
        publisher: Arc<Publisher>,
        service: Arc<crate::service::Service>,
        audit: Option<Arc<Audit>>,
        token: String,
        limits: Limits,
        max_removal_share: f64,
    ) -> ApiContext {
        ApiContext {
            publisher,
            service,
            audit,
            token,
            limits,
            max_removal_share,
            requests: Mutex::new(Requests::default()),
            budget: Mutex::new(AuditBudget {
                window: Instant::now(),
                used: 0,
                dropped: 0,
            }),
        }
    }

    /// Audit a refused request: bounded text, at most so many a minute.
    fn audit_refused(&self, peer: SocketAddr, parts: &http::request::Parts, why: &str) {
        let Some(a) = &self.audit else { return };
        let dropped = {
            let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
            if b.window.elapsed() >= Duration::from_secs(60) {
                b.window = Instant::now();
                b.used = 0;
            }
            if b.used >= AUTH_AUDIT_PER_MINUTE {
                b.dropped += 1;
                return;
            }
            b.used += 1;
            std::mem::take(&mut b.dropped)
        };
        let mut reason = format!(
            "{} {}",
            super::domain::quote(parts.method.as_str()),
            super::domain::quote(parts.uri.path())
        );
        if dropped > 0 {
            reason.push_str(&format!(" ({dropped} more not recorded)"));
        }
        a.record(
            &format!("api:{peer}"),
            why,
            "",
            &reason,
            "",
            self.publisher.snapshot().serial,
        );
    }

    fn request_state(&self, id: &str) -> Option<ReqState> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .get(id)
            .cloned()
    }
}

/// Read a JSON body within the limits; the answer to send otherwise.
async fn read_json<T: serde::de::DeserializeOwned>(
    parts: &http::request::Parts,
    body: Incoming,
    ctx: &ApiContext,
    deadline: Instant,
) -> Result<T, Refusal> {
    let max = ctx.limits.max_body;
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(refuse(
                413,
                format!("request body of {len} bytes is larger than the limit of {max}"),
            ));
        }
    }
    let limited = Limited::new(body, max);
    let collected =
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), limited.collect())
            .await
        {
            Err(_) => return Err(refuse(408, "the request body did not arrive in time")),
            Ok(Err(e)) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return Err(refuse(
                        413,
                        format!("request body larger than the limit of {max} bytes"),
                    ));
                }
                return Err(refuse(400, "the request body could not be read"));
            }
            Ok(Ok(c)) => c.to_bytes(),
        };
    serde_json::from_slice(&collected).map_err(|e| refuse(400, body_error(&e)))
}

fn check_actor(actor: &str) -> Result<(), Refusal> {
    if actor.trim().is_empty() {
        return Err(refuse(400, "actor is required"));
    }
    if actor.len() > 128 || actor.chars().any(char::is_control) {
        return Err(refuse(
            400,
            "actor: at most 128 characters, no control characters",
        ));
    }
    Ok(())
}

fn domain(text: &str) -> Result<Vec<u8>, Refusal> {
    super::domain::parse(text)
        .map_err(|e| refuse(400, format!("'{}': {e}", super::domain::quote(text))))
}

/// Turn an add request into a change.
fn add_change(b: proto::AddRequest) -> Result<(Change, String), Refusal> {
    check_actor(&b.actor)?;
    let now = super::time::now();
    let mut entries = Vec::with_capacity(b.entries.len());
    for n in b.entries {
        let name = domain(&n.domain)?;
        proto::check_field("reason", &n.reason, proto::REASON_MAX)
            .and_then(|_| proto::check_field("case", &n.case, proto::CASE_MAX))
            .map_err(|m| refuse(400, format!("{}: {m}", crate::name::to_text(&name))))?;
        let expires = match &n.expires {
            Some(x) => Some(super::time::parse(x).map_err(|e| {
                refuse(
                    400,
                    format!(
                        "{}: expires '{}': {e}",
                        crate::name::to_text(&name),
                        super::domain::quote(x)
                    ),
                )
            })?),
            None => None,
        };
        entries.push(Suppression {
            name,
            reason: n.reason,
            case: n.case,
            added_by: b.actor.clone(),
            added_at: now,
            expires,
            ede: n.ede.unwrap_or(EdeKind::Blocked),
        });
    }
    Ok((Change::Suppress { entries }, b.actor))
}

fn remove_change(b: proto::RemoveRequest) -> Result<(Change, String), Refusal> {
    check_actor(&b.actor)?;
    proto::check_field("reason", &b.reason, proto::REASON_MAX).map_err(|m| refuse(400, m))?;
    let mut names = Vec::with_capacity(b.domains.len());
    for d in &b.domains {
        names.push(domain(d)?);
    }
    Ok((
        Change::Lift {
            names,
            reason: b.reason,
        },
        b.actor,
    ))
}

fn edit_change(b: proto::EditRequest, ctx: &ApiContext) -> Result<(Change, String), Refusal> {
    check_actor(&b.actor)?;
    proto::check_field("reason", &b.reason, proto::REASON_MAX).map_err(|m| refuse(400, m))?;
    let mut steps = Vec::with_capacity(b.steps.len());
    let mut removals = 0usize;
    for s in &b.steps {
        let name = domain(&s.domain)?;
        let conv = |v: &Option<EntryView>| -> Result<Option<Suppression>, Refusal> {
            match v {
                Some(e) => {
                    let x = e.to_suppression().map_err(|m| refuse(400, m))?;
                    if x.name != name {
                        return Err(refuse(
                            400,
                            format!(
                                "{}: the entry names another domain",
                                crate::name::to_text(&name)
                            ),
                        ));
                    }
                    Ok(Some(x))
                }
                None => Ok(None),
            }
        };
        let before = conv(&s.before)?;
        let after = conv(&s.after)?;
        if before.is_some() && after.is_none() {
            removals += 1;
        }
        steps.push(ListStep {
            name,
            before: before.map(|b| b.fingerprint()),
            after,
        });
    }
    let len = ctx.publisher.list_len();
    super::watch::mass_removal_ok(removals, len, ctx.max_removal_share, b.allow_mass_removal)
        .map_err(|m| refuse(409, format!("edit refused: {m} (allow_mass_removal)")))?;
    let reason = if b.reason.trim().is_empty() {
        format!("edit made from serial {}", b.based_on)
    } else {
        b.reason
    };
    Ok((
        Change::EditList {
            steps,
            based_on: b.based_on,
            reason,
        },
        b.actor,
    ))
}

/// Apply a change on a blocking thread, remembering the outcome under the request id.
async fn apply(
    ctx: Arc<ApiContext>,
    change: Change,
    actor: String,
    deadline: Instant,
    rid: Option<String>,
) -> Resp {
    let p = ctx.publisher.clone();
    let r = tokio::task::spawn_blocking(move || p.apply(change, &actor, Some(deadline)))
        .await
        .unwrap_or_else(|_| Err(ChangeError::Storage("the change panicked".into())));
    let (status, body) = match &r {
        Ok(o) => (200, serde_json::to_string(o).unwrap_or_default()),
        Err(e) => (
            status_of(e),
            serde_json::to_string(&ErrorBody {
                error: e.to_string(),
            })
            .unwrap_or_default(),
        ),
    };
    if let Some(id) = rid {
        ctx.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                &id,
                ReqState::Done {
                    status,
                    body: body.clone(),
                    result: r.map_err(|e| e.to_string()),
                },
            );
    }
    raw(status, body)
}

fn change_status(ctx: &ApiContext, id: u64) -> Resp {
    match ctx.publisher.outcome(id) {
        Some(Ok(o)) => json(
            200,
            &ChangeStatus {
                state: "applied".into(),
                id: Some(id),
                outcome: Some(o),
                error: None,
            },
        ),
        Some(Err(m)) => json(
            200,
            &ChangeStatus {
                state: "refused".into(),
                id: Some(id),
                outcome: None,
                error: Some(m),
            },
        ),
        None => json(
            404,
            &ChangeStatus {
                state: "unknown".into(),
                id: Some(id),
                outcome: None,
                error: Some("no such change among the recent ones".into()),
            },
        ),
    }
}

fn request_status(ctx: &ApiContext, rid: &str) -> Resp {
    match ctx.request_state(rid) {
        Some(ReqState::Pending) => json(
            200,
            &ChangeStatus {
                state: "pending".into(),
                id: None,
                outcome: None,
                error: None,
            },
        ),
        Some(ReqState::Done { result, .. }) => match result {
            Ok(o) => json(
                200,
                &ChangeStatus {
                    state: "applied".into(),
                    id: Some(o.id),
                    outcome: Some(o),
                    error: None,
                },
            ),
            Err(m) => json(
                200,
                &ChangeStatus {
                    state: "refused".into(),
                    id: None,
                    outcome: None,
                    error: Some(m),
                },
            ),
        },
        None => json(
            404,
            &ChangeStatus {
                state: "unknown".into(),
                id: None,
                outcome: None,
                error: Some("no request with this id (never received, or too old)".into()),
            },
        ),
    }
}

/// Answer one request.
async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    ctx: Arc<ApiContext>,
    deadline: Instant,
) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    // Authentication before anything else, the body included.
    if !token_ok(bearer(&parts), &ctx.token) {
        ctx.audit_refused(peer, &parts, "auth-failed");
        drop(body);
        return Ok(error(401, "missing or wrong admin token"));
    }
    let rid = match parts.headers.get(proto::REQUEST_ID_HEADER) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) if proto::request_id_ok(s) => Some(s.to_string()),
            _ => {
                return Ok(error(
                    400,
                    "belfry-request-id: 1 to 64 of A-Z a-z 0-9 . _ -",
                ))
            }
        },
    };
    let path = parts.uri.path().trim_end_matches('/').to_string();
    let p = &ctx.publisher;
    let r = match (&parts.method, path.as_str()) {
        (&Method::GET, "/v1/status") => {
            let snap = p.snapshot();
            let signer = snap.dnssec.as_ref().map(|d| d.signer.clone());
            use std::sync::atomic::Ordering::Relaxed;
            json(
                200,
                &StatusResponse {
                    zone: crate::name::to_text(snap.zone.origin()),
                    serial: snap.serial,
                    suppressed: snap.suppressions.len(),
                    signed: snap.dnssec.is_some(),
                    fully_signed: ctx.service.fully_signed.load(Relaxed),
                    signatures_made: signer.as_ref().map(|s| s.made.load(Relaxed)).unwrap_or(0),
                    signing_failures: signer
                        .as_ref()
                        .map(|s| s.failures.load(Relaxed))
                        .unwrap_or(0),
                    delegations: snap.zone.stats().delegations,
                    next_change: p.next_change_id(),
                    progress: ctx.service.progress.reports(),
                    transfers: ctx.service.transfers.report(),
                    list_file_serial: p.list_file_status().0,
                    list_file_error: p.list_file_status().1,
                    heap: crate::ops::heap::read(),
                },
            )
        }
        (&Method::GET, "/metrics") => {
            let mut r = raw(200, ctx.service.metrics_text());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::metrics::expose::CONTENT_TYPE),
            );
            r
        }
        (&Method::GET, "/v1/suppressions") => {
            let (serial, l) = p.list();
            json(
                200,
                &ListResponse {
                    serial,
                    entries: l.values().map(EntryView::of).collect(),
                },
            )
        }
        (&Method::GET, x) if x.starts_with("/v1/suppressions/") => {
            let seg = &x["/v1/suppressions/".len()..];
            let Some(text) = percent_decode(seg) else {
                return Ok(error(400, "bad percent-encoding in the path"));
            };
            match domain(&text) {
                Err(r) => *r,
                Ok(wire) => match p.entry(&wire) {
                    Some(e) => json(200, &EntryView::of(&e)),
                    None => error(
                        404,
                        format!(
                            "{} is not on the suppression list",
                            super::domain::show(&wire)
                        ),
                    ),
                },
            }
        }
        (&Method::GET, x) if x.starts_with("/v1/changes/") => {
            match x["/v1/changes/".len()..].parse::<u64>() {
                Ok(id) => change_status(&ctx, id),
                Err(_) => error(400, "a change id is a number"),
            }
        }
        (&Method::GET, x) if x.starts_with("/v1/requests/") => {
            let id = &x["/v1/requests/".len()..];
            if !proto::request_id_ok(id) {
                error(400, "bad request id")
            } else {
                request_status(&ctx, id)
            }
        }
        (&Method::POST, "/v1/suppressions")
        | (&Method::POST, "/v1/suppressions/remove")
        | (&Method::POST, "/v1/suppressions/edit") => {
            // A request id seen before answers with its first outcome.
            if let Some(id) = &rid {
                let mut reqs = ctx.requests.lock().unwrap_or_else(|p| p.into_inner());
                match reqs.by_id.get(id) {
                    Some(ReqState::Pending) => {
                        return Ok(error(409, "this request id is still being applied"))
                    }
                    Some(ReqState::Done { status, body, .. }) => {
                        return Ok(raw(*status, body.clone()))
                    }
                    None => reqs.insert(id, ReqState::Pending),
                }
            }
            let forget = |ctx: &ApiContext| {
                if let Some(id) = &rid {
                    let mut reqs = ctx.requests.lock().unwrap_or_else(|p| p.into_inner());
                    reqs.by_id.remove(id);
                    reqs.order.retain(|x| x != id);
                }
            };
            let change = match path.as_str() {
                "/v1/suppressions" => match read_json(&parts, body, &ctx, deadline).await {
                    Ok(b) => add_change(b),
                    Err(r) => Err(r),
                },
                "/v1/suppressions/remove" => match read_json(&parts, body, &ctx, deadline).await {
                    Ok(b) => remove_change(b),
                    Err(r) => Err(r),
                },
                _ => match read_json(&parts, body, &ctx, deadline).await {
                    Ok(b) => edit_change(b, &ctx),
                    Err(r) => Err(r),
                },
            };
            match change {
                Ok((c, actor)) => apply(ctx.clone(), c, actor, deadline, rid).await,
                Err(r) => {
                    forget(&ctx);
                    *r
                }
            }
        }
        (&Method::POST, "/v1/reload") => {
            match read_json::<super::proto::ReloadRequest>(&parts, body, &ctx, deadline).await {
                Ok(b) if b.actor.trim().is_empty() => error(400, "actor is required"),
                Ok(b) => {
                    let svc = ctx.service.clone();
                    let r = tokio::task::spawn_blocking(move || svc.reload_zone(b.force, &b.actor))
                        .await
                        .unwrap_or_else(|_| {
                            Err(ChangeError::Storage("the reload panicked".into()))
                        });
                    match r {
                        Ok(o) => json(200, &o),
                        Err(e) => error(status_of(&e), e.to_string()),
                    }
                }
                Err(r) => *r,
            }
        }
        (&Method::GET, "/v1/watch/check") => {
            let mut only = None;
            for kv in parts.uri.query().unwrap_or("").split('&') {
                match kv.split_once('=') {
                    Some(("list", v)) => match percent_decode(v) {
                        Some(v) => only = Some(v),
                        None => return Ok(error(400, "bad percent-encoding in the query")),
                    },
                    _ if kv.is_empty() => {}
                    _ => {
                        return Ok(error(
                            400,
                            format!("unknown query parameter: {}", super::domain::quote(kv)),
                        ))
                    }
                }
            }
            let p = p.clone();
            let r = tokio::task::spawn_blocking(move || p.watch_check(only.as_deref()))
                .await
                .unwrap_or_else(|_| Err("the check panicked".into()));
            match r {
                Ok(report) => json(200, &report),
                Err(e) => error(404, e),
            }
        }
        (&Method::POST, "/v1/watch/reload") => {
            match read_json::<super::proto::ReloadRequest>(&parts, body, &ctx, deadline).await {
                Ok(b) if b.actor.trim().is_empty() => error(400, "actor is required"),
                Ok(b) => {
                    let p = p.clone();
                    let actor = b.actor;
                    let r = tokio::task::spawn_blocking(move || p.reload_watch_lists(&actor))
                        .await
                        .unwrap_or_else(|_| Err("the reload panicked".into()));
                    match r {
                        Ok(summary) => json(200, &summary),
                        Err(e) => error(422, e),
                    }
                }
                Err(r) => *r,
            }
        }
        (&Method::GET, "/v1/keys")
        | (&Method::POST, "/v1/keys/roll")
        | (&Method::POST, "/v1/keys/ds-seen") => {
            keys_route(&parts, &path, body, &ctx, deadline).await
        }
        _ => error(
            404,
            format!(
                "no such endpoint: {} {}",
                super::domain::quote(parts.method.as_str()),
                super::domain::quote(&path)
            ),
        ),
    };
    Ok(r)
}

/// The key routes: `GET /v1/keys`, `POST /v1/keys/roll`, `POST /v1/keys/ds-seen`.
async fn keys_route(
    parts: &http::request::Parts,
    path: &str,
    body: Incoming,
    ctx: &Arc<ApiContext>,
    deadline: Instant,
) -> Resp {
    let Some(km) = ctx.service.keys.clone() else {
        return error(
            404,
            "key management is off: the zone is unsigned or its keys are static ([dnssec] keys)",
        );
    };
    let p = ctx.publisher.clone();
    enum Ask {
        Status,
        Roll(crate::dnssec::lifecycle::RollRequest, String),
        DsSeen(String),
    }
    let ask = match path {
        "/v1/keys" => Ask::Status,
        "/v1/keys/roll" => {
            let b: proto::RollRequest = match read_json(parts, body, ctx, deadline).await {
                Ok(b) => b,
                Err(r) => return *r,
            };
            if let Err(r) = check_actor(&b.actor) {
                return *r;
            }
            match crate::keys::manager::roll_request(&b.kind, b.algorithm.as_deref()) {
                Ok(req) => Ask::Roll(req, b.actor),
                Err(m) => return error(400, m),
            }
        }
        _ => {
            let b: proto::DsSeenRequest = match read_json(parts, body, ctx, deadline).await {
                Ok(b) => b,
                Err(r) => return *r,
            };
            if let Err(r) = check_actor(&b.actor) {
                return *r;
            }
            Ask::DsSeen(b.actor)
        }
    };
    let r = tokio::task::spawn_blocking(move || {
        let mut m = km.lock().unwrap_or_else(|x| x.into_inner());
        let done = match ask {
            Ask::Status => None,
            Ask::Roll(req, actor) => Some(m.roll(&p, req, &actor)),
            Ask::DsSeen(actor) => Some(m.ds_seen(&p, &actor)),
        };
        (done, m.status(&p))
    })
    .await;
    match r {
        Err(_) => error(500, "the key request panicked"),
        Ok((None, status)) => json(200, &status),
        Ok((Some(Ok(done)), status)) => json(200, &proto::KeyActionResponse { done, status }),
        Ok((Some(Err(e)), _)) => error(409, e),
    }
}

/// Serve one connection within its deadline.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    ctx: Arc<ApiContext>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let started = Instant::now();
    // The change must be decided with time left to answer.
    let deadline = started + ctx.limits.request_timeout.mul_f64(0.8);
    let c = ctx.clone();
    let svc = hyper::service::service_fn(move |req| handle(req, peer, c.clone(), deadline));
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(ctx.limits.header_timeout)
        .max_buf_size(ctx.limits.max_header)
        .max_headers(64)
        .keep_alive(false);
    match tls {
        Some(acc) => {
            let Ok(Ok(s)) =
                tokio::time::timeout(ctx.limits.header_timeout, acc.accept(stream)).await
            else {
                return;
            };
            let _ = b
                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                .await;
        }
        None => {
            let _ = b
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        }
    }
}

/// Accept connections until the service stops.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    ctx: Arc<ApiContext>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(ctx.limits.max_connections));
    while !ctx.publisher.stopping() {
        let (stream, peer) =
            match tokio::time::timeout(Duration::from_millis(200), listener.accept()).await {
                Err(_) => continue,
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::error!("admin API accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Full: close at once rather than queue behind slow clients.
            drop(stream);
            continue;
        };
        let (ctx, tls) = (ctx.clone(), tls.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let total = ctx.limits.request_timeout;
            let _ = tokio::time::timeout(total, connection(stream, peer, ctx, tls)).await;
        });
    }
}

/// The TLS acceptor of a certificate chain and key (PEM files).
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: cannot read the certificate: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad certificate PEM: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let k = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: cannot read the private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, k)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Read the admin token file: at least 16 characters.
pub fn read_token(tf: &std::path::Path) -> Result<String, String> {
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
    if token.len() < 16 {
        return Err(format!(
            "{}: the admin token must be at least 16 characters",
            tf.display()
        ));
    }
    Ok(token)
}

/// What `serve` would refuse of the admin API and list settings, and what it
/// would warn about (world-readable token or keys); shared with `belfry check`.
pub fn preflight(cfg: &crate::config::Config) -> Result<Vec<String>, String> {
    let s = &cfg.suppress;
    let mut warnings = Vec::new();
    if let Some(tf) = &s.admin_token_file {
        read_token(tf)?;
        if let Some(w) = world_readable(tf) {
            warnings.push(format!("{w} (the admin token)"));
        }
        if !s.admin_listen.ip().is_loopback() && s.admin_tls_cert.is_none() {
            return Err(format!(
                "[suppress] admin_listen {} is not a loopback address: configure \
                 admin_tls_cert and admin_tls_key",
                s.admin_listen
            ));
        }
        if let (Some(c), Some(k)) = (&s.admin_tls_cert, &s.admin_tls_key) {
            tls_acceptor(c, k)?;
            if let Some(w) = world_readable(k) {
                warnings.push(format!("{w} (the admin TLS key)"));
            }
        }
    }
    if let Some(f) = &s.file {
        let real = super::list::resolve(f)?;
        super::list::load(&real)?;
    }
    if let (true, Some(f)) = (cfg.cookies.enabled, &cfg.cookies.secret_file) {
        crate::cookie::Secrets::from_file(f)?;
        if let Some(w) = world_readable(f) {
            warnings.push(format!("{w} (the DNS cookie secrets)"));
        }
    }
    if cfg.dnssec.enabled {
        if let Ok(rd) = std::fs::read_dir(&cfg.dnssec.key_dir) {
            let mut paths: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let secret = name.ends_with(".private")
                    || name.ends_with(".pk8")
                    || name.ends_with(".pem")
                    || name.ends_with(".key.der");
                if secret {
                    if let Some(w) = world_readable(&p) {
                        warnings.push(format!("{w} (a private key)"));
                    }
                }
            }
        }
    }
    Ok(warnings)
}

/// A warning when a file can be read by every user.
fn world_readable(p: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(p).ok()?;
    (m.permissions().mode() & 0o004 != 0).then(|| {
        format!(
            "{} is readable by every user (mode {:o}); chmod o-r it",
            p.display(),
            m.permissions().mode() & 0o777
        )
    })
}

/// Start the admin API (when a token file is configured) and the list-file watcher.
pub fn start(
    cfg: &crate::config::Config,
    publisher: Arc<Publisher>,
    service: Arc<crate::service::Service>,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let s = &cfg.suppress;
    for w in preflight(cfg)? {
        tracing::warn!("warning: {w}");
    }
    let mut threads = Vec::new();
    let audit = match &s.audit_log {
        Some(p) => Some(Arc::new(Audit::open(p)?)),
        None => None,
    };
    match &s.admin_token_file {
        Some(tf) => {
            let token = read_token(tf)?;
            let tls = match (&s.admin_tls_cert, &s.admin_tls_key) {
                (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
                _ => None,
            };
            let listener = std::net::TcpListener::bind(s.admin_listen)
                .map_err(|e| format!("admin API: cannot listen on {}: {e}", s.admin_listen))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| format!("admin API: {e}"))?;
            tracing::info!(
                "admin API on {}://{}",
                if tls.is_some() { "https" } else { "http" },
                s.admin_listen
            );
            let ctx = Arc::new(ApiContext::new(
                publisher.clone(),
                service,
                audit.clone(),
                token,
                Limits::of(s),
                s.hand_edit_max_removal,
            ));
            threads.push(
                std::thread::Builder::new()
                    .name("belfry-admin".into())
                    .spawn(move || {
                        let rt = match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(rt) => rt,
                            Err(e) => {
                                tracing::error!("admin API cannot start its runtime: {e}");
                                return;
                            }
                        };
                        rt.block_on(async move {
                            match tokio::net::TcpListener::from_std(listener) {
                                Ok(l) => accept_loop(l, ctx, tls).await,
                                Err(e) => tracing::info!("admin API: {e}"),
                            }
                        });
                    })
                    .map_err(|e| format!("admin API thread: {e}"))?,
            );
        }
        None => tracing::warn!(
            "{}",
            "admin API off: no [suppress] admin_token_file configured"
        ),
    }
    if let Some(path) = &s.file {
        let real = super::list::resolve(path)?;
        let settings = super::watch::WatchSettings {
            settle: Duration::from_millis(s.hand_edit_settle_ms),
            max_removal_share: s.hand_edit_max_removal,
        };
        threads.push(super::watch::spawn(real, settings, publisher, audit)?);
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(token_ok(
            Some(b"secret-token-123456"),
            "secret-token-123456"
        ));
        assert!(!token_ok(
            Some(b"secret-token-12345"),
            "secret-token-123456"
        ));
        assert!(!token_ok(None, "secret-token-123456"));
        assert!(!token_ok(Some(b""), ""));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("caf%C3%A9.be").as_deref(), Some("café.be"));
        assert_eq!(
            percent_decode("%5C112hish.be").as_deref(),
            Some("\\112hish.be")
        );
        assert_eq!(percent_decode("%Zz"), None);
        assert_eq!(percent_decode("%C3"), None);
    }
}
