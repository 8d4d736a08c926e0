use super::*;
use prost::Message as _;
use std::os::unix::net::UnixListener;

fn outcome(rcode: Rcode, qtype: Rtype) -> Outcome {
    let mut o = Outcome::dropped();
    o.sent = true;
    o.rcode = rcode;
    o.qtype = Some(qtype);
    o
}

/// A collector on a Unix socket: handshake, frames until STOP, FINISH; returns the
/// decoded messages.
fn fake_collector(l: UnixListener) -> std::thread::JoinHandle<(Vec<u8>, Vec<proto::Dnstap>)> {
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let ct = fstrm::reader_handshake(&mut s, fstrm::CONTENT_TYPE).unwrap();
        let mut got = Vec::new();
        fstrm::read_until_stop(&mut s, true, |d| {
            got.push(proto::Dnstap::decode(&d[..]).unwrap())
        })
        .unwrap();
        (ct, got)
    })
}

#[test]
fn handshake_frames_and_stop_against_a_fake_collector() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.sock");
    let collector = fake_collector(UnixListener::bind(&path).unwrap());
    let tap = Tap::start(Settings {
        target: Target::Unix(path),
        identity: Some(b"ns-test".to_vec()),
        version: Some(b"belfry-test".to_vec()),
        listen: vec!["127.0.0.1:5353".parse().unwrap()],
        ..Settings::default()
    })
    .unwrap();
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let t = now();
    tap.capture(
        b"query-one",
        Some(b"answer-one"),
        &outcome(Rcode::NOERROR, Rtype::A),
        peer,
        Transport::Udp,
        t,
    );
    // Not answered (rate limiting dropped it): only the query.
    let mut dropped = outcome(Rcode::NOERROR, Rtype::NS);
    dropped.sent = false;
    tap.capture(b"query-two", None, &dropped, peer, Transport::Tcp, t);
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while tap.sent() < 3 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(tap.connected());
    tap.shutdown();
    let (ct, got) = collector.join().unwrap();
    assert_eq!(ct, fstrm::CONTENT_TYPE);
    assert_eq!(tap.sent(), 3);
    assert_eq!(tap.dropped(), 0);
    assert_eq!(got.len(), 3);
    for d in &got {
        assert_eq!(d.identity.as_deref(), Some(&b"ns-test"[..]));
        assert_eq!(d.version.as_deref(), Some(&b"belfry-test"[..]));
        assert_eq!(d.r#type, proto::DnstapType::Message as i32);
    }
    let m: Vec<&proto::Message> = got.iter().map(|d| d.message.as_ref().unwrap()).collect();
    assert_eq!(m[0].r#type, proto::MessageType::AuthQuery as i32);
    assert_eq!(m[0].query_message.as_deref(), Some(&b"query-one"[..]));
    assert_eq!(m[0].socket_family, Some(proto::SocketFamily::Inet as i32));
    assert_eq!(
        m[0].socket_protocol,
        Some(proto::SocketProtocol::Udp as i32)
    );
    assert_eq!(m[0].query_address.as_deref(), Some(&[192, 0, 2, 7][..]));
    assert_eq!(m[0].query_port, Some(40000));
    assert_eq!(m[0].response_address.as_deref(), Some(&[127, 0, 0, 1][..]));
    assert_eq!(m[0].response_port, Some(5353));
    assert_eq!(m[0].query_time_sec, Some(t.as_secs()));
    assert_eq!(m[0].query_time_nsec, Some(t.subsec_nanos()));
    assert_eq!(m[1].r#type, proto::MessageType::AuthResponse as i32);
    assert_eq!(m[1].response_message.as_deref(), Some(&b"answer-one"[..]));
    assert!(m[1].response_time_sec.unwrap() >= t.as_secs());
    assert_eq!(m[2].r#type, proto::MessageType::AuthQuery as i32);
    assert_eq!(
        m[2].socket_protocol,
        Some(proto::SocketProtocol::Tcp as i32)
    );
    assert_eq!(m[2].query_message.as_deref(), Some(&b"query-two"[..]));
}

#[test]
fn without_a_collector_captures_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let tap = Tap::start(Settings {
        target: Target::Unix(dir.path().join("nobody.sock")),
        queue: 8,
        ..Settings::default()
    })
    .unwrap();
    let peer: SocketAddr = "[2001:db8::1]:999".parse().unwrap();
    let o = outcome(Rcode::NOERROR, Rtype::A);
    let t0 = std::time::Instant::now();
    for _ in 0..100 {
        tap.capture(b"q", Some(b"a"), &o, peer, Transport::Udp, now());
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "never waits");
    assert_eq!(tap.dropped(), 2 * (100 - 8));
    assert_eq!(tap.sent(), 0);
    assert!(!tap.connected());
    tap.shutdown();
}

#[test]
fn filters_and_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let start = |s: Settings| {
        Tap::start(Settings {
            target: Target::Unix(dir.path().join("x.sock")),
            ..s
        })
        .unwrap()
    };
    let nx = outcome(Rcode::NXDOMAIN, Rtype::A);
    let ok = outcome(Rcode::NOERROR, Rtype::AAAA);
    let mut sup = outcome(Rcode::NXDOMAIN, Rtype::NS);
    sup.suppressed = true;
    let t = start(Settings {
        only_nxdomain: true,
        ..Settings::default()
    });
    assert!(t.wants(&nx) && t.wants(&sup) && !t.wants(&ok));
    let t = start(Settings {
        only_suppressed: true,
        ..Settings::default()
    });
    assert!(!t.wants(&nx) && t.wants(&sup) && !t.wants(&ok));
    let t = start(Settings {
        only_qtype: Some(28),
        ..Settings::default()
    });
    assert!(!t.wants(&nx) && !t.wants(&sup) && t.wants(&ok));
    let t = start(Settings {
        sample: 10,
        ..Settings::default()
    });
    assert_eq!((0..1000).filter(|_| t.wants(&ok)).count(), 100);
    let t = start(Settings {
        sample: 3,
        only_nxdomain: true,
        ..Settings::default()
    });
    let kept = (0..30)
        .filter(|i| t.wants(if i % 2 == 0 { &nx } else { &ok }))
        .count();
    assert_eq!(kept, 5, "1 in 3 of the 15 NXDOMAIN");
}
