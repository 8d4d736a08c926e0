//! The control path: zone transfers out, dynamic update and NOTIFY in, signed messages.
//!
//! Owns what a primary answers besides queries:
//! - AXFR out (RFC 5936) over TCP, streamed from one immutable snapshot
//!   ([`axfr`]) in messages of about 16 KiB with name compression ([`packer`]),
//!   the SOA first and last, at most `max_transfers` at once;
//! - IXFR out (RFC 1995) from the publisher's journal, condensed ([`ixfr`]);
//!   SOA only when the client is current (or ahead), the whole zone AXFR-style
//!   when its serial is older than the journal or the first fully signed
//!   version; over UDP the difference when it fits one datagram, else the SOA
//!   only (the client then comes back over TCP);
//! - TSIG (RFC 8945) on all of it: a signed request is verified first (errors
//!   answered per §5.3.2 with the TSIG error), every answer message to it is
//!   signed (§5.3.1), including answers to signed plain queries;
//! - the ACLs ([`crate::acl`]): anything not allowed gets REFUSED with Extended
//!   DNS Error 18 (Prohibited) and a (rate-limited) log line;
//! - dynamic update (RFC 2136): parsed, allowed, applied by
//!   [`crate::publish::Publisher::update`], answered once in force;
//! - NOTIFY in (RFC 1996): parsed, allowed, handed to a hook
//!   ([`Control::set_notify_hook`]) when a primary is configured; NOTAUTH otherwise;
//! - NOTIFY out and the secondaries' progress ([`notify`], [`progress`]).
//!
//! A zone whose start-up signing pass has not finished is not transferred:
//! AXFR and IXFR get SERVFAIL with Extended DNS Error 14 (Not Ready) until every
//! RRset is signed, and NOTIFY goes out only from then on.
//!
//! [`needs_control`] is the cheap look the transport makes at every message to
//! send these here; nothing else in this module runs on the query path.

pub mod axfr;
pub mod ixfr;
pub mod notify;
pub mod packer;
pub mod progress;

use crate::acl::{Acl, Action};
use crate::config::Config;
use crate::publish::Publisher;
use crate::service::Service;
use crate::tsig::{self, Check, KeyRing};
use crate::wire::message::{self, Message};
use crate::wire::{skip_name, Class, Opcode, Rcode, Rtype};
use packer::Packer;
use progress::{Board, TransferReport};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Extended DNS Error 14, Not Ready (RFC 8914 §4.15).
const EDE_NOT_READY: u16 = 14;

/// How long a dynamic update may wait for its turn at the publisher.
const UPDATE_DEADLINE: Duration = Duration::from_secs(10);

/// Types a dynamic update may not touch: the signer makes them.
const SIGNER_TYPES: [Rtype; 5] = [
    Rtype::RRSIG,
    Rtype::NSEC,
    Rtype::NSEC3,
    Rtype::NSEC3PARAM,
    Rtype::DNSKEY,
];

fn be16(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
}

/// Whether a message goes to the control path: opcode UPDATE or NOTIFY, a
/// question of type AXFR or IXFR, or a TSIG record last. Reads a few header
/// bytes and skips over the records; no allocation. Responses and malformed
/// messages stay on the query path (which drops or answers them).
pub fn needs_control(m: &[u8]) -> bool {
    if m.len() < 12 || m[2] & 0x80 != 0 {
        return false;
    }
    match (m[2] >> 3) & 0x0F {
        4 | 5 => return true,
        0 => {}
        _ => return false,
    }
    let (Some(qd), Some(an), Some(ns), Some(ar)) =
        (be16(m, 4), be16(m, 6), be16(m, 8), be16(m, 10))
    else {
        return false;
    };
    if qd != 1 {
        return false;
    }
    let Some(mut at) = skip_name(m, 12) else {
        return false;
    };
    match be16(m, at) {
        Some(251) | Some(252) => return true,
        Some(_) => {}
        None => return false,
    }
    if ar == 0 {
        return false;
    }
    at += 4;
    let total = an as usize + ns as usize + ar as usize;
    for i in 0..total {
        let Some(p) = skip_name(m, at) else {
            return false;
        };
        if i + 1 == total {
            return be16(m, p) == Some(Rtype::TSIG.0);
        }
        let Some(rdlen) = be16(m, p + 8) else {
            return false;
        };
        at = p + 10 + rdlen as usize;
    }
    false
}

/// One NOTIFY target: a secondary, or an also-notify address.
#[derive(Clone, Debug)]
pub struct Target {
    /// Name for logs and the status.
    pub name: String,
    /// Where the NOTIFY goes.
    pub address: SocketAddr,
    /// Key the NOTIFY is signed with.
    pub key: Option<tsig::Key>,
    /// Address its transfer requests come from.
    pub source: IpAddr,
}

/// The control path's settings, checked, from the configuration.
#[derive(Clone, Debug)]
pub struct Setup {
    /// TSIG keys.
    pub keys: KeyRing,
    /// Who may transfer, notify, update.
    pub acl: Acl,
    /// NOTIFY targets.
    pub targets: Vec<Target>,
    /// Most transfers at once.
    pub max_transfers: usize,
    /// Longest wait between NOTIFY retries.
    pub notify_max_interval: Duration,
    /// How long one NOTIFY waits for its answer.
    pub notify_timeout: Duration,
    /// Largest UDP answer with EDNS.
    pub max_udp_payload: u16,
    /// Whether the start-up pass signs everything (else transfers sign what they need).
    pub presign: bool,
}

/// An address with an optional port (`192.0.2.1`, `192.0.2.1:5300`, `[2001:db8::1]:53`, `2001:db8::1`).
pub fn parse_target(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    t.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("'{t}' is not an address or address:port"))
}

impl Setup {
    /// Build and check everything; errors name `source` (the configuration file) and the field.
    pub fn from_config(cfg: &Config, source: &str) -> Result<Setup, String> {
        let err = |m: String| format!("{source}: {m}");
        let keys = cfg
            .tsig
            .load(std::path::Path::new("."))
            .map_err(|e| err(e.to_string()))?;
        let acl = cfg.acl.build(&keys).map_err(|e| err(e.to_string()))?;
        let t = &cfg.transfer;
        let key_of = |field: String, name: &Option<String>| -> Result<Option<tsig::Key>, String> {
            match name {
                None => Ok(None),
                Some(n) => keys
                    .get_text(n)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| err(format!("{field}: no TSIG key named '{n}' is defined"))),
            }
        };
        let mut targets = Vec::new();
        for (i, s) in t.secondary.iter().enumerate() {
            let at = |f: &str| format!("transfer.secondary[{i}].{f}");
            if s.name.trim().is_empty() {
                return Err(err(format!("{}: must not be empty", at("name"))));
            }
            let address =
                parse_target(&s.address).map_err(|m| err(format!("{}: {m}", at("address"))))?;
            let source = match &s.source {
                Some(x) => x
                    .trim()
                    .parse::<IpAddr>()
                    .map_err(|_| err(format!("{}: '{x}' is not an IP address", at("source"))))?,
                None => address.ip(),
            };
            targets.push(Target {
                name: s.name.clone(),
                address,
                key: key_of(at("key"), &s.key)?,
                source,
            });
        }
        let notify_key = key_of("transfer.notify_key".into(), &t.notify_key)?;
        for (i, a) in t.also_notify.iter().enumerate() {
            let address =
                parse_target(a).map_err(|m| err(format!("transfer.also_notify[{i}]: {m}")))?;
            targets.push(Target {
                name: "also-notify".into(),
                address,
                key: notify_key.clone(),
                source: address.ip(),
            });
        }
        Ok(Setup {
            keys,
            acl,
            targets,
            max_transfers: t.max_transfers,
            notify_max_interval: Duration::from_secs(t.notify_max_interval),
            notify_timeout: Duration::from_millis(t.notify_timeout_ms),
            max_udp_payload: cfg.server.max_udp_payload,
            presign: cfg.dnssec.presign,
        })
    }
}

/// An incoming NOTIFY that passed the checks, for the inbound-transfer side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyIn {
    /// Who sent it.
    pub peer: SocketAddr,
    /// The TSIG key it was signed with (lowercase wire name), if any.
    pub key: Option<Vec<u8>>,
    /// The serial it announced, if any (a hint only, RFC 1996 §3.11).
    pub serial: Option<u32>,
}

/// What is called with an accepted NOTIFY (it must not block for long).
pub type NotifyHook = Arc<dyn Fn(&NotifyIn) + Send + Sync>;

/// At most this many refusal lines per window; the rest are counted.
const LOG_BURST: u32 = 20;
/// The window of [`LOG_BURST`].
const LOG_WINDOW: Duration = Duration::from_secs(10);

/// A rate limit for log lines caused by network input.
struct LogBudget {
    state: Mutex<(Instant, u32, u64)>,
}

impl LogBudget {
    fn new() -> LogBudget {
        LogBudget {
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Whether one more line may be written now.
    fn take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0.elapsed() >= LOG_WINDOW {
            if s.2 > 0 {
                tracing::warn!("{} more refusal lines were not written", s.2);
            }
            *s = (Instant::now(), 0, 0);
        }
        if s.1 < LOG_BURST {
            s.1 += 1;
            true
        } else {
            s.2 += 1;
            false
        }
    }
}

/// The control side of the service.
pub struct Control {
    publisher: Arc<Publisher>,
    service: Arc<Service>,
    setup: Setup,
    origin: Vec<u8>,
    active: AtomicUsize,
    board: Arc<Board>,
    hook: OnceLock<NotifyHook>,
    logs: LogBudget,
}

/// Counts a running transfer; released when dropped.
struct Slot<'a>(&'a Control);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.board.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Who sent a request, for logs.
fn who(peer: SocketAddr, key: Option<&[u8]>) -> String {
    match key {
        Some(k) => format!("{} (key {})", peer.ip(), crate::name::to_text(k)),
        None => format!("{} (no key)", peer.ip()),
    }
}

/// Append an OPT record (RFC 6891) with an optional Extended DNS Error to a finished message.
fn append_opt(msg: &mut Vec<u8>, udp_size: u16, rcode: Rcode, ede: Option<(u16, &str)>) {
    msg.push(0);
    msg.extend_from_slice(&Rtype::OPT.0.to_be_bytes());
    msg.extend_from_slice(&udp_size.to_be_bytes());
    msg.push((rcode.0 >> 4) as u8);
    msg.extend_from_slice(&[0, 0, 0]);
    match ede {
        Some((code, text)) => {
            let text = &text.as_bytes()[..text.len().min(200)];
            msg.extend_from_slice(&((6 + text.len()) as u16).to_be_bytes());
            msg.extend_from_slice(&crate::wire::types::option::EDE.to_be_bytes());
            msg.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
            msg.extend_from_slice(&code.to_be_bytes());
            msg.extend_from_slice(text);
        }
        None => msg.extend_from_slice(&[0, 0]),
    }
    message::bump_arcount(msg);
}

/// What a request carries for building its answers.
struct Req<'a> {
    msg: &'a [u8],
    m: &'a Message,
    peer: SocketAddr,
    transport: crate::server::Transport,
    key: Option<Vec<u8>>,
    signer: Option<tsig::Signer>,
}

impl Req<'_> {
    fn tcp(&self) -> bool {
        self.transport == crate::server::Transport::Tcp
    }

    /// Sign a finished answer when the request was signed; false if it cannot be.
    fn sign(&mut self, out: &mut Vec<u8>) -> bool {
        match self.signer.as_mut() {
            Some(s) => s.sign(out, tsig::now()).is_ok(),
            None => true,
        }
    }

    /// The largest answer this client takes over UDP.
    fn udp_limit(&self, max: u16) -> usize {
        match &self.m.opt {
            Some(o) => o.udp_size.clamp(512, max.max(512)) as usize,
            None => 512,
        }
    }
}

impl Control {
    /// The control side over a publisher and the service answering queries.
    pub fn new(publisher: Arc<Publisher>, service: Arc<Service>, setup: Setup) -> Control {
        let origin = publisher.snapshot().zone.origin().to_vec();
        let board = service.transfers.clone();
        for t in &setup.targets {
            board.add(
                &t.name,
                t.address,
                t.source,
                t.key.as_ref().map(|k| k.name()),
            );
        }
        Control {
            publisher,
            service,
            setup,
            origin,
            active: AtomicUsize::new(0),
            board,
            hook: OnceLock::new(),
            logs: LogBudget::new(),
        }
    }

    /// The settings.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The progress board.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// Give accepted NOTIFY messages to `hook` (once; later calls are ignored).
    pub fn set_notify_hook(&self, hook: NotifyHook) {
        let _ = self.hook.set(hook);
    }

    fn refused_line(&self, what: std::fmt::Arguments<'_>) {
        self.board.refused.fetch_add(1, Ordering::Relaxed);
        if self.logs.take() {
            tracing::warn!("{what}");
        }
    }

    /// A short answer: header and question echoed, `rcode`, OPT (with `ede`) when the
    /// request had EDNS, signed when the request was signed.
    fn short(&self, req: &mut Req<'_>, rcode: Rcode, ede: Option<(u16, &str)>) -> Vec<u8> {
        let mut out = message::reply_header(req.msg, Rcode(rcode.0 & 0x0F));
        if req.m.opt.is_some() {
            append_opt(&mut out, self.setup.max_udp_payload, rcode, ede);
        }
        if let Some(h) = out.get_mut(2) {
            *h |= (message::flag::AA >> 8) as u8;
        }
        if !req.sign(&mut out) {
            // Header, question, OPT and TSIG always fit: nothing sensible to do but send it.
            tracing::debug!("could not sign a short answer");
        }
        out
    }

    /// Answer one control message; every answer message goes to `send`.
    pub fn handle(
        &self,
        msg: &[u8],
        peer: SocketAddr,
        transport: crate::server::Transport,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) {
        let now = tsig::now();
        let m = match message::parse(msg) {
            Ok(m) => m,
            Err(_) => {
                let h = message::Header::parse(msg).unwrap_or_default();
                if h.is_response() || msg.len() < message::HEADER_LEN {
                    return;
                }
                let out = message::reply_header(msg, Rcode::FORMERR);
                send(&out);
                return;
            }
        };
        if m.header.is_response() {
            return;
        }
        let (key, signer) = match tsig::verify_parsed(&self.setup.keys, msg, &m, now) {
            Check::Unsigned => (None, None),
            Check::Verified(s) => (Some(s.key().name().to_vec()), Some(s)),
            Check::Failed(mut f) => {
                self.refused_line(format_args!(
                    "TSIG {} from {} for key {} (time signed {}): answered NOTAUTH",
                    f.error(),
                    peer.ip(),
                    crate::name::to_text(f.key_name()),
                    f.time_signed()
                ));
                send(&f.reply(msg, now));
                return;
            }
            Check::FormErr => {
                send(&message::reply_header(msg, Rcode::FORMERR));
                return;
            }
        };
        let mut req = Req {
            msg,
            m: &m,
            peer,
            transport,
            key,
            signer,
        };
        let opcode = m.header.opcode();
        if opcode == Opcode::UPDATE {
            let out = self.update(&mut req);
            send(&out);
        } else if opcode == Opcode::NOTIFY {
            let out = self.notify_in(&mut req);
            send(&out);
        } else if opcode != Opcode::QUERY {
            let out = self.short(&mut req, Rcode::NOTIMP, None);
            send(&out);
        } else {
            match m.questions.first().map(|q| q.qtype) {
                Some(Rtype::AXFR) | Some(Rtype::IXFR) => self.transfer(&mut req, send),
                _ => {
                    let out = self.signed_query(&mut req);
                    send(&out);
                }
            }
        }
    }

    /// A plain query that came signed: the handler's answer, signed.
    fn signed_query(&self, req: &mut Req<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let tcp = req.tcp();
        if !self.service.answer_bytes(req.msg, tcp, &mut out) {
            return self.short(req, Rcode::FORMERR, None);
        }
        let room = req.signer.as_ref().map_or(0, |s| s.tsig_len());
        if !tcp && out.len() + room > req.udp_limit(self.setup.max_udp_payload) {
            // Too long with its TSIG: truncated, so the client asks over TCP.
            let mut t = message::reply_header(req.msg, Rcode::NOERROR);
            t[2] |= ((message::flag::TC | message::flag::AA) >> 8) as u8;
            if req.m.opt.is_some() {
                append_opt(&mut t, self.setup.max_udp_payload, Rcode::NOERROR, None);
            }
            req.sign(&mut t);
            return t;
        }
        req.sign(&mut out);
        out
    }

    /// UPDATE (RFC 2136).
    fn update(&self, req: &mut Req<'_>) -> Vec<u8> {
        let peer = req.peer;
        let who = who(peer, req.key.as_deref());
        let r = match crate::update::parse(req.msg, &self.origin) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!("UPDATE from {who}: {e}");
                let mut out = crate::update::response(req.msg, e.rcode);
                req.sign(&mut out);
                return out;
            }
        };
        if !self
            .setup
            .acl
            .check(Action::Update, peer.ip(), req.key.as_deref())
            .allowed
        {
            self.refused_line(format_args!(
                "UPDATE from {who} refused: not allowed by [acl] update"
            ));
            return self.short(
                req,
                Rcode::REFUSED,
                Some((crate::wire::types::ede::PROHIBITED, "update not allowed")),
            );
        }
        if let Err(e) = crate::update::refuse_types(&r, &SIGNER_TYPES) {
            tracing::info!("UPDATE from {who}: {e} (the signer makes them)");
            let mut out = crate::update::response(req.msg, e.rcode);
            req.sign(&mut out);
            return out;
        }
        let actor = format!("update:{who}");
        let rcode = match self
            .publisher
            .update(&r, &actor, Some(Instant::now() + UPDATE_DEADLINE))
        {
            Ok(o) => {
                self.board.updates.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "UPDATE from {who}: {} operations applied, serial {}",
                    r.operations.len(),
                    o.serial
                );
                Rcode::NOERROR
            }
            Err(e) => {
                tracing::info!("UPDATE from {who}: {e}");
                e.rcode
            }
        };
        let mut out = crate::update::response(req.msg, rcode);
        req.sign(&mut out);
        out
    }

    /// NOTIFY in (RFC 1996 §3.7–3.10).
    fn notify_in(&self, req: &mut Req<'_>) -> Vec<u8> {
        let peer = req.peer;
        let who = who(peer, req.key.as_deref());
        let n = match crate::xfr::notify::parse(req.msg) {
            Ok(n) => n,
            Err(_) => return self.short(req, Rcode::FORMERR, None),
        };
        if !self
            .setup
            .acl
            .check(Action::Notify, peer.ip(), req.key.as_deref())
            .allowed
        {
            self.refused_line(format_args!(
                "NOTIFY from {who} refused: not allowed by [acl] notify"
            ));
            return self.short(
                req,
                Rcode::REFUSED,
                Some((crate::wire::types::ede::PROHIBITED, "notify not allowed")),
            );
        }
        let rcode = match self.hook.get() {
            Some(h) if crate::name::eq_ignore_case(&n.zone, &self.origin) => {
                h(&NotifyIn {
                    peer,
                    key: req.key.clone(),
                    serial: n.serial,
                });
                tracing::info!("NOTIFY from {who}, serial {:?}", n.serial);
                Rcode::NOERROR
            }
            // Not a secondary of this zone (no primary configured), or another zone.
            _ => Rcode::NOTAUTH,
        };
        let mut out = crate::xfr::notify::response(req.msg, rcode);
        req.sign(&mut out);
        out
    }

    /// AXFR or IXFR.
    fn transfer(&self, req: &mut Req<'_>, send: &mut dyn FnMut(&[u8]) -> bool) {
        let Some(q) = req.m.questions.first() else {
            return;
        };
        let (qtype, peer) = (q.qtype, req.peer);
        let kind = if qtype == Rtype::AXFR { "AXFR" } else { "IXFR" };
        let who = who(peer, req.key.as_deref());
        if q.qclass != Class::IN.0 || !crate::name::eq_ignore_case(&q.name, &self.origin) {
            let out = self.short(req, Rcode::NOTAUTH, None);
            send(&out);
            return;
        }
        if !self
            .setup
            .acl
            .check(Action::Transfer, peer.ip(), req.key.as_deref())
            .allowed
        {
            self.refused_line(format_args!(
                "{kind} from {who} refused: not allowed by [acl] transfer"
            ));
            let out = self.short(
                req,
                Rcode::REFUSED,
                Some((
                    crate::wire::types::ede::PROHIBITED,
                    "zone transfer not allowed",
                )),
            );
            send(&out);
            return;
        }
        let snap = self.publisher.snapshot_full();
        let signed = snap.dnssec.is_some();
        if signed && self.setup.presign && !self.service.fully_signed.load(Ordering::Relaxed) {
            tracing::info!("{kind} from {who}: SERVFAIL, the zone is not fully signed yet");
            let out = self.short(
                req,
                Rcode::SERVFAIL,
                Some((EDE_NOT_READY, "zone not fully signed yet")),
            );
            send(&out);
            return;
        }
        let target = self.board.find(peer.ip(), req.key.as_deref());
        if qtype == Rtype::AXFR && !req.tcp() {
            // AXFR over UDP is not defined (RFC 5936 §4.2): ask for TCP.
            let mut out = message::reply_header(req.msg, Rcode::NOERROR);
            out[2] |= ((message::flag::TC | message::flag::AA) >> 8) as u8;
            req.sign(&mut out);
            send(&out);
            return;
        }
        let t0 = Instant::now();
        if qtype == Rtype::IXFR {
            let Some(c) = ixfr::client_serial(req.m, &self.origin) else {
                let out = self.short(req, Rcode::FORMERR, None);
                send(&out);
                return;
            };
            if let Some(i) = target {
                self.board.asked(i, c);
            }
            // Current or ahead (RFC 1995 §2): the SOA alone.
            if c == snap.serial || crate::serial::serial_gt(c, snap.serial) {
                let st = self.soa_only(req, &snap, send);
                self.done(&who, target, "up-to-date", Some(c), snap.serial, st, t0);
                return;
            }
            let floor_ok = !signed
                || self
                    .publisher
                    .ixfr_floor()
                    .is_some_and(|f| f == c || crate::serial::serial_gt(c, f));
            let entries = if floor_ok {
                match self.publisher.journal_from(c) {
                    Ok(e) => e.filter(|e| !e.is_empty()),
                    Err(e) => {
                        tracing::error!("IXFR from {who}: reading the journal: {e}");
                        None
                    }
                }
            } else {
                None
            };
            if let Some(d) = entries.as_deref().and_then(ixfr::condense) {
                if !req.tcp() {
                    let st = self.ixfr_udp(req, &d, &snap, send);
                    self.done(&who, target, st.0, Some(c), st.1, st.2, t0);
                    return;
                }
                let Some(_slot) = self.slot(req, kind, &who, send) else {
                    return;
                };
                let st = self.ixfr_tcp(req, &d, send);
                if let Some(st) = st {
                    self.done(&who, target, "IXFR", Some(c), d.to_serial(), Some(st), t0);
                }
                return;
            }
            if !req.tcp() {
                // The whole zone does not go over UDP: the SOA tells the client to use TCP.
                self.soa_only(req, &snap, send);
                return;
            }
            tracing::info!(
                "IXFR from {who} for serial {c}: not in the journal, answered with the whole zone"
            );
            let Some(_slot) = self.slot(req, kind, &who, send) else {
                return;
            };
            let st = self.axfr(req, &snap, &who, send);
            if st.is_some() {
                self.done(&who, target, "IXFR-as-AXFR", Some(c), snap.serial, st, t0);
            }
            return;
        }
        let Some(_slot) = self.slot(req, kind, &who, send) else {
            return;
        };
        let st = self.axfr(req, &snap, &who, send);
        if st.is_some() {
            self.done(&who, target, "AXFR", None, snap.serial, st, t0);
        }
    }

    /// Take a transfer slot, or answer REFUSED when all are taken.
    fn slot(
        &self,
        req: &mut Req<'_>,
        kind: &str,
        who: &str,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<Slot<'_>> {
        let n = self.active.fetch_add(1, Ordering::AcqRel);
        if n >= self.setup.max_transfers {
            self.active.fetch_sub(1, Ordering::AcqRel);
            self.refused_line(format_args!(
                "{kind} from {who} refused: {} transfers already running ([transfer] max_transfers)",
                self.setup.max_transfers
            ));
            let out = self.short(req, Rcode::REFUSED, None);
            send(&out);
            return None;
        }
        self.board.active.fetch_add(1, Ordering::Relaxed);
        Some(Slot(self))
    }

    /// Note a transfer that went out in full.
    #[allow(clippy::too_many_arguments)]
    fn done(
        &self,
        who: &str,
        target: Option<usize>,
        kind: &str,
        from: Option<u32>,
        to: u32,
        stats: Option<Stats>,
        t0: Instant,
    ) {
        let Some(st) = stats else { return };
        if kind != "up-to-date" {
            self.board.transfers.fetch_add(1, Ordering::Relaxed);
        }
        let report = TransferReport {
            kind: kind.to_string(),
            from,
            to,
            records: st.records,
            bytes: st.bytes,
            messages: st.messages,
            seconds: t0.elapsed().as_secs_f64(),
            at: progress::now_text(),
        };
        if kind != "up-to-date" {
            tracing::info!(
                "{kind} to {}: serial {:?} -> {to}, {} records, {} bytes in {} messages, {:.3} s",
                who,
                from,
                st.records,
                st.bytes,
                st.messages,
                report.seconds
            );
        }
        if let Some(i) = target {
            self.board.transferred(i, report);
        }
    }

    fn soa_record(snap: &crate::handler::Snapshot) -> (Vec<u8>, u32, Vec<u8>) {
        let soa = snap.zone.soa();
        (snap.zone.origin().to_vec(), soa.ttl(), soa.rr(0).to_vec())
    }

    /// One message with the current SOA (and its OPT), signed when asked.
    fn soa_only(
        &self,
        req: &mut Req<'_>,
        snap: &crate::handler::Snapshot,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<Stats> {
        let (owner, ttl, rd) = Self::soa_record(snap);
        let q = question(req);
        let mut p = Packer::new(req.m.header.id, answer_flags(req.m), &q, 65000);
        p.push(&owner, Rtype::SOA, ttl, &rd);
        let mut out = std::mem::take(p.finish());
        if req.m.opt.is_some() {
            append_opt(&mut out, self.setup.max_udp_payload, Rcode::NOERROR, None);
        }
        req.sign(&mut out);
        let st = Stats {
            records: 1,
            bytes: out.len() as u64,
            messages: 1,
        };
        send(&out).then_some(st)
    }

    /// IXFR over UDP: the whole difference when it fits one datagram, else the SOA only.
    fn ixfr_udp(
        &self,
        req: &mut Req<'_>,
        d: &ixfr::Condensed,
        snap: &crate::handler::Snapshot,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) -> (&'static str, u32, Option<Stats>) {
        let limit = req.udp_limit(self.setup.max_udp_payload);
        let room = req.signer.as_ref().map_or(0, |s| s.tsig_len()) + 11;
        let q = question(req);
        let mut p = Packer::new(
            req.m.header.id,
            answer_flags(req.m),
            &q,
            limit.saturating_sub(room),
        );
        let mut fits = true;
        d.each_record(&mut |r| {
            fits = p.push(&r.owner, Rtype(r.rtype), r.ttl, &r.rdata);
            fits
        });
        if !fits || p.len() + room > limit {
            return ("up-to-date", snap.serial, self.soa_only(req, snap, send));
        }
        let records = p.count() as u64;
        let mut out = std::mem::take(p.finish());
        if req.m.opt.is_some() {
            append_opt(&mut out, self.setup.max_udp_payload, Rcode::NOERROR, None);
        }
        req.sign(&mut out);
        let st = Stats {
            records,
            bytes: out.len() as u64,
            messages: 1,
        };
        ("IXFR", d.to_serial(), send(&out).then_some(st))
    }

    /// IXFR over TCP: the condensed difference, in as many messages as it takes.
    fn ixfr_tcp(
        &self,
        req: &mut Req<'_>,
        d: &ixfr::Condensed,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<Stats> {
        let mut s = Stream::new(req, send);
        let ok = d.each_record(&mut |r| s.record(&r.owner, Rtype(r.rtype), r.ttl, &r.rdata));
        if ok && s.flush() {
            Some(s.stats)
        } else {
            None
        }
    }

    /// AXFR (or the whole zone for an IXFR) over TCP, streamed from `snap`.
    fn axfr(
        &self,
        req: &mut Req<'_>,
        snap: &crate::handler::Snapshot,
        who: &str,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<Stats> {
        let mut s = Stream::new(req, send);
        let r = axfr::each_record(snap, &mut |o, t, ttl, rd| s.record(o, t, ttl, rd));
        match r {
            Ok(_) if s.flush() => Some(s.stats),
            Ok(_) => None,
            Err(axfr::Stop::Receiver) => {
                tracing::info!(
                    "transfer to {who} cut off after {} messages",
                    s.stats.messages
                );
                None
            }
            Err(e) => {
                tracing::error!("transfer to {who} stopped: {e}");
                None
            }
        }
    }
}

/// What a transfer sent.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    records: u64,
    bytes: u64,
    messages: u64,
}

/// The question of a request as sent (name, type, class), for echoing.
fn question(req: &Req<'_>) -> Vec<u8> {
    req.m
        .questions
        .first()
        .map(|q| message::question_bytes(&q.name, q.qtype, q.qclass))
        .unwrap_or_default()
}

/// Flags of a transfer answer: QR, AA, the opcode and RD copied.
fn answer_flags(m: &Message) -> u16 {
    message::flag::QR
        | message::flag::AA
        | (m.header.flags & 0x7800)
        | (m.header.flags & message::flag::RD)
}

/// Records packed into messages, each signed when the request was, handed to `send`.
struct Stream<'a, 'r> {
    packer: Packer,
    req: &'a mut Req<'r>,
    send: &'a mut dyn FnMut(&[u8]) -> bool,
    stats: Stats,
    failed: bool,
}

impl<'a, 'r> Stream<'a, 'r> {
    fn new(req: &'a mut Req<'r>, send: &'a mut dyn FnMut(&[u8]) -> bool) -> Self {
        let q = question(req);
        let packer = Packer::new(
            req.m.header.id,
            answer_flags(req.m),
            &q,
            packer::DEFAULT_LIMIT,
        );
        Stream {
            packer,
            req,
            send,
            stats: Stats::default(),
            failed: false,
        }
    }

    fn record(&mut self, owner: &[u8], t: Rtype, ttl: u32, rd: &[u8]) -> bool {
        if self.failed {
            return false;
        }
        if !self.packer.push(owner, t, ttl, rd) {
            // One record larger than a message can hold alone cannot be sent.
            if self.packer.is_empty() || !self.flush() || !self.packer.push(owner, t, ttl, rd) {
                self.failed = true;
                return false;
            }
        }
        self.stats.records += 1;
        true
    }

    fn flush(&mut self) -> bool {
        let msg = self.packer.finish();
        if let Some(s) = self.req.signer.as_mut() {
            if s.sign(msg, tsig::now()).is_err() {
                self.failed = true;
                return false;
            }
        }
        self.stats.messages += 1;
        self.stats.bytes += msg.len() as u64;
        if !(self.send)(msg) {
            self.failed = true;
            return false;
        }
        true
    }
}

/// The [`crate::server::Answerer`] of a server with a control path: queries go to
/// the service, everything [`needs_control`] marks goes to the [`Control`].
pub struct Frontend {
    /// The query side.
    pub service: Arc<Service>,
    /// The control side.
    pub control: Arc<Control>,
}

impl crate::server::Answerer for Frontend {
    fn answer(
        &self,
        query: &[u8],
        peer: SocketAddr,
        transport: crate::server::Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        crate::server::Answerer::answer(&*self.service, query, peer, transport, out)
    }

    #[inline]
    fn is_control(&self, msg: &[u8]) -> bool {
        needs_control(msg)
    }

    fn control(
        &self,
        msg: &[u8],
        peer: SocketAddr,
        transport: crate::server::Transport,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) {
        self.control.handle(msg, peer, transport, send)
    }

    fn busy(&self, msg: &[u8], out: &mut Vec<u8>) -> bool {
        self.control.board.busy.fetch_add(1, Ordering::Relaxed);
        // Header only: id, opcode and RD echoed, QR, REFUSED; no allocation (`out` has room).
        if msg.len() < message::HEADER_LEN {
            return false;
        }
        out.clear();
        out.extend_from_slice(&msg[..2]);
        let flags = message::flag::QR
            | (u16::from_be_bytes([msg[2], msg[3]]) & (0x7800 | message::flag::RD))
            | Rcode::REFUSED.0;
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0; 8]);
        true
    }
}

#[cfg(test)]
pub(crate) mod tests;
