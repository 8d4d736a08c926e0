//! The transfer client: a sans-IO reader of AXFR/IXFR answers, and a thin tokio shell.

use super::{Limits, XfrError};
use crate::name::{eq_ignore_case, is_at_or_below};
use crate::serial::{serial_gt, soa_serial};
use crate::tsig::{self, Key, ResponseVerifier, VerifyError};
use crate::wire::decode::Record;
use crate::wire::message::{self, flag, Message, Question};
use crate::wire::{Class, Opcode, Rtype};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The whole zone.
    Axfr,
    /// The changes since the zone we hold, whose SOA record this is.
    Ixfr(Record),
}

/// One difference sequence of an IXFR (RFC 1995 §4): from `old_soa` to `new_soa`.
///
/// `removed` and `added` do not contain the SOA records: the SOA changes from
/// `old_soa` to `new_soa`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    /// The SOA before this change.
    pub old_soa: Record,
    /// Records removed, in the order received.
    pub removed: Vec<Record>,
    /// The SOA after this change.
    pub new_soa: Record,
    /// Records added, in the order received.
    pub added: Vec<Record>,
}

impl Diff {
    /// Serial before.
    pub fn old_serial(&self) -> u32 {
        soa_serial(&self.old_soa.rdata).unwrap_or(0)
    }

    /// Serial after.
    pub fn new_serial(&self) -> u32 {
        soa_serial(&self.new_soa.rdata).unwrap_or(0)
    }
}

/// The result of a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// IXFR: the primary has nothing newer than our serial (its SOA).
    UpToDate {
        /// The primary's SOA.
        soa: Record,
    },
    /// The whole zone (AXFR, or IXFR answered AXFR-style); `records[0]` is the SOA.
    Full {
        /// Every record once, the closing SOA not repeated.
        records: Vec<Record>,
    },
    /// IXFR: the difference sequences from our serial to `soa`'s, in order.
    Incremental {
        /// The new SOA.
        soa: Record,
        /// The changes, oldest first; chained (each starts where the previous ended).
        diffs: Vec<Diff>,
    },
}

impl Transfer {
    /// The serial the zone has after this transfer.
    pub fn serial(&self) -> u32 {
        match self {
            Transfer::UpToDate { soa } | Transfer::Incremental { soa, .. } => {
                soa_serial(&soa.rdata).unwrap_or(0)
            }
            Transfer::Full { records } => records
                .first()
                .and_then(|r| soa_serial(&r.rdata))
                .unwrap_or(0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting the first record, the newest SOA.
    Start,
    /// IXFR: seen the first SOA; the next record tells incremental from AXFR-style.
    AfterFirstSoa,
    /// Collecting a whole zone until the SOA comes again.
    Full,
    /// IXFR: after a difference's old SOA, collecting removed records.
    Removing,
    /// IXFR: after a difference's new SOA, collecting added records.
    Adding,
    /// Complete.
    Done,
}

/// Reads the answer messages of one AXFR or IXFR, in order, without doing I/O.
pub struct Reader {
    zone: Vec<u8>,
    qtype: Rtype,
    client_serial: Option<u32>,
    id: u16,
    verifier: Option<ResponseVerifier>,
    max_records: usize,
    max_bytes: usize,
    records: usize,
    bytes: usize,
    messages: usize,
    state: State,
    soa: Option<Record>,
    full: Vec<Record>,
    diffs: Vec<Diff>,
    cur: Option<Diff>,
    result: Option<Transfer>,
}

impl Reader {
    /// A reader for the answer to query `id` for `zone`, verifying TSIG with `verifier` if given.
    pub fn new(
        zone: &[u8],
        kind: &Kind,
        id: u16,
        verifier: Option<ResponseVerifier>,
        limits: &Limits,
    ) -> Reader {
        let (qtype, client_serial) = match kind {
            Kind::Axfr => (Rtype::AXFR, None),
            Kind::Ixfr(soa) => (Rtype::IXFR, Some(soa_serial(&soa.rdata).unwrap_or(0))),
        };
        Reader {
            zone: zone.to_vec(),
            qtype,
            client_serial,
            id,
            verifier,
            max_records: limits.max_records,
            max_bytes: limits.max_bytes,
            records: 0,
            bytes: 0,
            messages: 0,
            state: State::Start,
            soa: None,
            full: Vec::new(),
            diffs: Vec::new(),
            cur: None,
            result: None,
        }
    }

    /// Whether the transfer is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed the next answer message; returns whether the transfer is now complete.
    pub fn feed(&mut self, msg: &[u8], now: u64) -> Result<bool, XfrError> {
        let m = message::parse(msg).map_err(|_| XfrError::Malformed("unparsable message"))?;
        if let Some(v) = self.verifier.as_mut() {
            if let Err(e) = v.verify_parsed(msg, &m, now) {
                // An unsigned error answer says more by its RCODE.
                if e == VerifyError::Unsigned && m.header.rcode() != 0 {
                    return Err(XfrError::Rcode(m.rcode()));
                }
                return Err(XfrError::Tsig(e));
            }
        }
        self.check_header(&m)?;
        self.messages += 1;
        if self.state == State::Done {
            return Err(XfrError::Malformed("message after the end of the transfer"));
        }
        if m.answer.is_empty() && self.messages == 1 {
            return Err(XfrError::Malformed("first message has no answer"));
        }
        self.records += m.answer.len();
        if self.records > self.max_records {
            return Err(XfrError::TooLarge("number of records"));
        }
        for r in m.answer {
            self.bytes += r.owner.len() + r.rdata.len() + 10;
            if self.bytes > self.max_bytes {
                return Err(XfrError::TooLarge("number of bytes"));
            }
            self.record(r)?;
        }
        // A lone SOA not newer than ours is the "up to date" answer (RFC 1995 §2).
        if self.state == State::AfterFirstSoa {
            if let (Some(c), Some(soa)) = (self.client_serial, &self.soa) {
                let n = soa_serial(&soa.rdata).unwrap_or(0);
                if !serial_gt(n, c) {
                    self.state = State::Done;
                    self.result = Some(Transfer::UpToDate { soa: soa.clone() });
                }
            }
        }
        Ok(self.state == State::Done)
    }

    /// The result, once complete (and, with TSIG, once the last message was signed).
    pub fn finish(self) -> Result<Transfer, XfrError> {
        if self.state != State::Done {
            return Err(XfrError::Closed);
        }
        if let Some(v) = &self.verifier {
            v.finish().map_err(XfrError::Tsig)?;
        }
        self.result.ok_or(XfrError::Closed)
    }

    fn check_header(&self, m: &Message) -> Result<(), XfrError> {
        let h = &m.header;
        if !h.is_response() || h.id != self.id || h.opcode() != Opcode::QUERY {
            return Err(XfrError::Malformed("not the answer to our query"));
        }
        if m.rcode() != 0 {
            return Err(XfrError::Rcode(m.rcode()));
        }
        if h.flags & flag::TC != 0 {
            return Err(XfrError::Malformed("truncated message"));
        }
        match m.questions.as_slice() {
            [] if self.messages > 0 => Ok(()),
            [q] if q.qtype == self.qtype
                && q.qclass == Class::IN.0
                && eq_ignore_case(&q.name, &self.zone) =>
            {
                Ok(())
            }
            _ => Err(XfrError::Malformed("question does not match the query")),
        }
    }

    fn is_apex_soa(&self, r: &Record) -> bool {
        r.rtype == Rtype::SOA && eq_ignore_case(&r.owner, &self.zone)
    }

    fn record(&mut self, r: Record) -> Result<(), XfrError> {
        if r.class != Class::IN.0 {
            return Err(XfrError::Malformed("record of another class"));
        }
        if !is_at_or_below(&r.owner, &self.zone) {
            return Err(XfrError::Malformed("record outside the zone"));
        }
        if r.rtype == Rtype::SOA {
            if !self.is_apex_soa(&r) {
                return Err(XfrError::Malformed("SOA record below the apex"));
            }
            if soa_serial(&r.rdata).is_none() {
                return Err(XfrError::Malformed("malformed SOA record"));
            }
        } else if !message::rdata_is_valid(r.rtype, &r.rdata) || r.rtype.is_meta() {
            return Err(XfrError::Malformed("malformed record"));
        }
        let serial = |r: &Record| soa_serial(&r.rdata).unwrap_or(0);
        let newest = self.soa.as_ref().map(serial);
        match self.state {
            State::Start => {
                if r.rtype != Rtype::SOA {
                    return Err(XfrError::Malformed("first record is not the SOA"));
                }
                self.soa = Some(r.clone());
                if self.client_serial.is_some() {
                    self.state = State::AfterFirstSoa;
                } else {
                    self.full.push(r);
                    self.state = State::Full;
                }
            }
            State::AfterFirstSoa => {
                if r.rtype == Rtype::SOA && Some(serial(&r)) != newest {
                    // Incremental: this is the old SOA of the first difference.
                    if Some(serial(&r)) != self.client_serial {
                        return Err(XfrError::Malformed("IXFR does not start at our serial"));
                    }
                    self.start_diff(r);
                } else if r.rtype == Rtype::SOA {
                    // AXFR-style answer of a zone holding only its SOA.
                    let soa = self.soa.clone().ok_or(XfrError::Malformed("no SOA"))?;
                    self.full.push(soa);
                    self.finish_full(r)?;
                } else {
                    let soa = self.soa.clone().ok_or(XfrError::Malformed("no SOA"))?;
                    self.full.push(soa);
                    self.full.push(r);
                    self.state = State::Full;
                }
            }
            State::Full => {
                if r.rtype == Rtype::SOA {
                    self.finish_full(r)?;
                } else {
                    self.full.push(r);
                }
            }
            State::Removing => {
                let cur = self
                    .cur
                    .as_mut()
                    .ok_or(XfrError::Malformed("no difference"))?;
                if r.rtype == Rtype::SOA {
                    if !serial_gt(serial(&r), serial(&cur.old_soa)) {
                        return Err(XfrError::Malformed("IXFR difference goes backwards"));
                    }
                    cur.new_soa = r;
                    self.state = State::Adding;
                } else {
                    cur.removed.push(r);
                }
            }
            State::Adding => {
                if r.rtype != Rtype::SOA {
                    let cur = self
                        .cur
                        .as_mut()
                        .ok_or(XfrError::Malformed("no difference"))?;
                    cur.added.push(r);
                    return Ok(());
                }
                let done = self
                    .cur
                    .take()
                    .ok_or(XfrError::Malformed("no difference"))?;
                let reached = done.new_serial();
                self.diffs.push(done);
                if Some(reached) == newest && Some(serial(&r)) == newest {
                    let soa = self.soa.clone().ok_or(XfrError::Malformed("no SOA"))?;
                    self.result = Some(Transfer::Incremental {
                        soa,
                        diffs: std::mem::take(&mut self.diffs),
                    });
                    self.state = State::Done;
                } else if serial(&r) != reached {
                    return Err(XfrError::Malformed("IXFR differences are not chained"));
                } else {
                    self.start_diff(r);
                }
            }
            State::Done => {
                return Err(XfrError::Malformed("records after the closing SOA"));
            }
        }
        Ok(())
    }

    fn start_diff(&mut self, old_soa: Record) {
        self.cur = Some(Diff {
            new_soa: old_soa.clone(),
            old_soa,
            removed: Vec::new(),
            added: Vec::new(),
        });
        self.state = State::Removing;
    }

    fn finish_full(&mut self, closing: Record) -> Result<(), XfrError> {
        let first = self.soa.as_ref().and_then(|s| soa_serial(&s.rdata));
        if first != soa_serial(&closing.rdata) {
            return Err(XfrError::Malformed("closing SOA differs from the first"));
        }
        self.result = Some(Transfer::Full {
            records: std::mem::take(&mut self.full),
        });
        self.state = State::Done;
        Ok(())
    }
}

/// A primary to transfer from.
#[derive(Clone, Debug)]
pub struct Primary {
    /// Its address (port included).
    pub addr: SocketAddr,
    /// TSIG key for every request to it, if any.
    pub key: Option<Key>,
}

fn random_id() -> u16 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    // Without randomness the id is still checked; 0x5eed only loses unpredictability.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return 0x5eed;
    }
    u16::from_be_bytes(b)
}

/// Build (and sign) a query; returns it with the TSIG verifier for the answer.
fn build_query(
    primary: &Primary,
    zone: &[u8],
    kind: Option<&Kind>,
) -> Result<(u16, Vec<u8>, Option<ResponseVerifier>), XfrError> {
    let id = random_id();
    let (qtype, authority) = match kind {
        None => (Rtype::SOA, Vec::new()),
        Some(Kind::Axfr) => (Rtype::AXFR, Vec::new()),
        Some(Kind::Ixfr(soa)) => (Rtype::IXFR, vec![soa.clone()]),
    };
    let q = Question {
        name: zone.to_vec(),
        qtype,
        qclass: Class::IN.0,
    };
    let mut msg = message::build(id, 0, Some(&q), &[], &authority, &[])
        .ok_or(XfrError::Malformed("query too long"))?;
    let verifier = match &primary.key {
        Some(k) => Some(
            tsig::sign_request(k, &mut msg, tsig::now())
                .map_err(|_| XfrError::Malformed("query too long"))?,
        ),
        None => None,
    };
    Ok((id, msg, verifier))
}

/// Ask the primary for the zone's SOA over UDP (TCP when the answer is truncated).
pub async fn query_soa(
    primary: &Primary,
    zone: &[u8],
    limits: &Limits,
) -> Result<Record, XfrError> {
    let (id, msg, mut verifier) = build_query(primary, zone, None)?;
    let bind: SocketAddr = if primary.addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| XfrError::Io(e.to_string()))?;
    sock.connect(primary.addr)
        .await
        .map_err(|e| XfrError::Io(e.to_string()))?;
    sock.send(&msg)
        .await
        .map_err(|e| XfrError::Io(e.to_string()))?;
    let mut buf = vec![0u8; 65535];
    // One deadline for the answer: stray datagrams do not extend it.
    let deadline = tokio::time::Instant::now() + limits.message_timeout;
    let answer = loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| XfrError::Timeout("the SOA answer"))?
            .map_err(|e| XfrError::Io(e.to_string()))?;
        // Datagrams that are not our answer are ignored (RFC 5452 §9.1 spirit).
        match message::parse(&buf[..n]) {
            Ok(m) if m.header.id == id && m.header.is_response() => break (buf[..n].to_vec(), m),
            _ => continue,
        }
    };
    let (bytes, m) = answer;
    if m.header.flags & flag::TC != 0 {
        return query_soa_tcp(primary, zone, limits).await;
    }
    soa_from_answer(&bytes, &m, zone, verifier.as_mut())
}

async fn query_soa_tcp(
    primary: &Primary,
    zone: &[u8],
    limits: &Limits,
) -> Result<Record, XfrError> {
    let (id, msg, mut verifier) = build_query(primary, zone, None)?;
    let mut s = connect(primary, limits).await?;
    write_frame(&mut s, &msg).await?;
    let bytes = read_frame(&mut s, limits.message_timeout)
        .await?
        .ok_or(XfrError::Closed)?;
    let m = message::parse(&bytes).map_err(|_| XfrError::Malformed("unparsable message"))?;
    if m.header.id != id || !m.header.is_response() {
        return Err(XfrError::Malformed("not the answer to our query"));
    }
    soa_from_answer(&bytes, &m, zone, verifier.as_mut())
}

fn soa_from_answer(
    bytes: &[u8],
    m: &Message,
    zone: &[u8],
    verifier: Option<&mut ResponseVerifier>,
) -> Result<Record, XfrError> {
    if let Some(v) = verifier {
        if let Err(e) = v.verify_parsed(bytes, m, tsig::now()) {
            if e == VerifyError::Unsigned && m.header.rcode() != 0 {
                return Err(XfrError::Rcode(m.rcode()));
            }
            return Err(XfrError::Tsig(e));
        }
    }
    if m.rcode() != 0 {
        return Err(XfrError::Rcode(m.rcode()));
    }
    match m.questions.as_slice() {
        [q] if q.qtype == Rtype::SOA && eq_ignore_case(&q.name, zone) => {}
        _ => return Err(XfrError::Malformed("question does not match the query")),
    }
    m.answer
        .iter()
        .find(|r| {
            r.rtype == Rtype::SOA
                && eq_ignore_case(&r.owner, zone)
                && soa_serial(&r.rdata).is_some()
        })
        .cloned()
        .ok_or(XfrError::Malformed("answer holds no SOA for the zone"))
}

async fn connect(primary: &Primary, limits: &Limits) -> Result<tokio::net::TcpStream, XfrError> {
    tokio::time::timeout(
        limits.connect_timeout,
        tokio::net::TcpStream::connect(primary.addr),
    )
    .await
    .map_err(|_| XfrError::Timeout("the TCP connection"))?
    .map_err(|e| XfrError::Io(e.to_string()))
}

async fn write_frame(s: &mut tokio::net::TcpStream, msg: &[u8]) -> Result<(), XfrError> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    s.write_all(&framed)
        .await
        .map_err(|e| XfrError::Io(e.to_string()))
}

/// Read one length-prefixed message; `None` at a clean end of stream.
async fn read_frame(
    s: &mut tokio::net::TcpStream,
    wait: Duration,
) -> Result<Option<Vec<u8>>, XfrError> {
    let mut len = [0u8; 2];
    let read = tokio::time::timeout(wait, s.read_exact(&mut len))
        .await
        .map_err(|_| XfrError::Timeout("the next message"))?;
    if let Err(e) = read {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(XfrError::Io(e.to_string()))
        };
    }
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    tokio::time::timeout(wait, s.read_exact(&mut msg))
        .await
        .map_err(|_| XfrError::Timeout("the next message"))?
        .map_err(|e| XfrError::Io(e.to_string()))?;
    Ok(Some(msg))
}

/// Transfer the zone over TCP: AXFR, or IXFR from the zone whose SOA is given.
pub async fn transfer(
    primary: &Primary,
    zone: &[u8],
    kind: Kind,
    limits: &Limits,
) -> Result<Transfer, XfrError> {
    tokio::time::timeout(
        limits.transfer_timeout,
        transfer_inner(primary, zone, kind, limits),
    )
    .await
    .map_err(|_| XfrError::Timeout("the whole transfer"))?
}

async fn transfer_inner(
    primary: &Primary,
    zone: &[u8],
    kind: Kind,
    limits: &Limits,
) -> Result<Transfer, XfrError> {
    let (id, msg, verifier) = build_query(primary, zone, Some(&kind))?;
    let mut reader = Reader::new(zone, &kind, id, verifier, limits);
    let mut s = connect(primary, limits).await?;
    write_frame(&mut s, &msg).await?;
    loop {
        let Some(m) = read_frame(&mut s, limits.message_timeout).await? else {
            return Err(XfrError::Closed);
        };
        if reader.feed(&m, tsig::now())? {
            break;
        }
    }
    reader.finish()
}

/// The outcome of a refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The primary's serial is not newer than ours.
    UpToDate {
        /// The primary's serial.
        serial: u32,
    },
    /// A transfer was made.
    Transferred {
        /// What came.
        transfer: Transfer,
        /// Whether an IXFR failed and AXFR was used instead.
        fell_back: bool,
    },
}

/// Refresh (RFC 1034 §4.3.5, RFC 1995 §4): compare the primary's SOA serial with
/// ours (`current`, the SOA we hold, if any) and transfer when it is newer: IXFR
/// when we hold a zone, AXFR when we do not or when the IXFR fails in a way
/// AXFR may cure ([`XfrError::ixfr_fallback`]).
pub async fn refresh(
    primary: &Primary,
    zone: &[u8],
    current: Option<&Record>,
    limits: &Limits,
) -> Result<Refresh, XfrError> {
    let theirs = query_soa(primary, zone, limits).await?;
    let their_serial = soa_serial(&theirs.rdata).unwrap_or(0);
    let Some(ours) = current else {
        let t = transfer(primary, zone, Kind::Axfr, limits).await?;
        return Ok(Refresh::Transferred {
            transfer: t,
            fell_back: false,
        });
    };
    let our_serial = soa_serial(&ours.rdata).unwrap_or(0);
    if !serial_gt(their_serial, our_serial) {
        return Ok(Refresh::UpToDate {
            serial: their_serial,
        });
    }
    match transfer(primary, zone, Kind::Ixfr(ours.clone()), limits).await {
        Ok(Transfer::UpToDate { soa }) => Ok(Refresh::UpToDate {
            serial: soa_serial(&soa.rdata).unwrap_or(0),
        }),
        Ok(t) => Ok(Refresh::Transferred {
            transfer: t,
            fell_back: false,
        }),
        Err(e) if e.ixfr_fallback() => {
            let t = transfer(primary, zone, Kind::Axfr, limits).await?;
            Ok(Refresh::Transferred {
                transfer: t,
                fell_back: true,
            })
        }
        Err(e) => Err(e),
    }
}
