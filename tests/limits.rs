//! Listener limits and panic containment, end to end: an idle timeout,
//! caps on connections per listener and per peer, and a protocol that
//! panics taking down only its own connection.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Echo, TIMEOUT, connect, round_trip, spawn_reactor};
use twirl::endpoint::ServerEndpoint;
use twirl::{Addr, Config, Context, Disconnect, ListenOptions, Protocol, Reactor, Transport};

fn listen(r: &mut Reactor, opts: ListenOptions, factory: impl twirl::Factory) -> SocketAddr {
    match r
        .listen_stream(&ServerEndpoint::Tcp("127.0.0.1:0".parse().unwrap()), Box::new(factory), opts)
        .map(|port| port.addr)
    {
        Ok(ServerEndpoint::Tcp(a)) => a,
        other => panic!("listen: {other:?}"),
    }
}

/// Reads until EOF or error; true if the server closed (EOF or reset) in time.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false;
            }
            Err(_) => return true, // reset
        }
    }
}

/// Echo that reports how its connection ended.
struct Reporting(mpsc::Sender<String>);

impl Protocol for Reporting {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        let _ = self.0.send(reason.to_string());
    }
}

#[test]
fn idle_timeout_closes_the_silent_connection_and_spares_the_talking_one() {
    let (tx, rx) = mpsc::channel::<String>();
    let running = spawn_reactor(Config::default(), move |r| {
        let opts = ListenOptions { idle_timeout: Some(Duration::from_millis(300)), ..ListenOptions::new("idle") };
        listen(r, opts, move |_: &Addr| Reporting(tx.clone()))
    });
    let addr = running.value;
    let mut silent = connect(addr);
    let mut talker = connect(addr);
    let start = Instant::now();
    // The talker keeps the line busy past the timeout; every answer comes back.
    for i in 0..8u8 {
        talker.write_all(&[b'a' + i]).unwrap();
        let mut b = [0u8; 1];
        talker.read_exact(&mut b).unwrap();
        assert_eq!(b[0], b'a' + i);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_by_server(&mut silent), "the silent client was closed");
    assert!(start.elapsed() >= Duration::from_millis(300), "not before the timeout");
    let reason = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(reason.contains("idle for"), "{reason}");
    talker.write_all(b"z").unwrap();
    let mut b = [0u8; 1];
    talker.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"z", "the talker is still served");
    let stats = running.call(|r| r.stats());
    assert_eq!(stats.idle_closed, 1);
    running.stop();
}

#[test]
fn max_connections_refuses_at_once_and_admits_again_after_a_close() {
    let running = spawn_reactor(Config::default(), |r| {
        let opts = ListenOptions { max_connections: Some(2), ..ListenOptions::new("capped") };
        listen(r, opts, |_: &Addr| Echo)
    });
    let addr = running.value;
    let a = connect(addr);
    let b = connect(addr);
    assert_eq!(round_trip_on(&a, b"a"), b"a");
    assert_eq!(round_trip_on(&b, b"b"), b"b");
    let mut c = connect(addr);
    assert!(closed_by_server(&mut c), "the third is closed at once, not left hanging");
    assert_eq!(running.call(|r| r.stats().refused), 1);
    drop(a);
    // The freed place is noticed when the server sees the close: retry, bounded.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let d = connect(addr);
        d.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        if try_round_trip_on(&d, b"d") == Some(b"d".to_vec()) {
            break;
        }
        assert!(Instant::now() < deadline, "a place never freed up");
    }
    running.stop();
}

#[test]
fn max_per_peer_caps_one_address() {
    let running = spawn_reactor(Config::default(), |r| {
        let opts = ListenOptions { max_per_peer: Some(1), ..ListenOptions::new("per-peer") };
        listen(r, opts, |_: &Addr| Echo)
    });
    let addr = running.value;
    let first = connect(addr);
    assert_eq!(round_trip_on(&first, b"1"), b"1");
    let mut second = connect(addr);
    assert!(closed_by_server(&mut second));
    assert_eq!(running.call(|r| r.stats().refused), 1);
    running.stop();
}

/// Panics when it receives `boom`; echoes otherwise.
struct Fragile;

impl Protocol for Fragile {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if data.starts_with(b"boom") {
            panic!("fragile protocol hit a bug");
        }
        t.write(data);
    }
}

#[test]
fn a_panicking_protocol_loses_only_its_connection() {
    let running = spawn_reactor(Config::default(), |r| {
        let fragile = listen(r, ListenOptions::new("fragile"), |_: &Addr| Fragile);
        let boom_factory = listen(r, ListenOptions::new("bad-factory"), |_: &Addr| -> Echo {
            panic!("factory bug");
        });
        (fragile, boom_factory)
    });
    let (fragile, bad_factory) = running.value;
    let bystander = connect(fragile);
    assert_eq!(round_trip_on(&bystander, b"before"), b"before");
    let mut victim = connect(fragile);
    victim.write_all(b"boom").unwrap();
    assert!(closed_by_server(&mut victim), "the panicking connection is aborted");
    assert_eq!(round_trip_on(&bystander, b"after"), b"after", "the bystander is still served");
    let mut refused = connect(bad_factory);
    assert!(closed_by_server(&mut refused), "a factory that panics refuses that connection");
    assert_eq!(round_trip(fragile, b"new client"), b"new client", "the loop still accepts");
    let stats = running.call(|r| r.stats());
    assert_eq!(stats.panics, 2);
    assert_eq!(stats.open, 1, "only the bystander is left");
    running.stop();
}

fn try_round_trip_on(s: &std::net::TcpStream, data: &[u8]) -> Option<Vec<u8>> {
    let mut s = s;
    s.write_all(data).ok()?;
    let mut out = vec![0u8; data.len()];
    s.read_exact(&mut out).ok()?;
    Some(out)
}

fn round_trip_on(s: &std::net::TcpStream, data: &[u8]) -> Vec<u8> {
    try_round_trip_on(s, data).expect("echo")
}

/// A line protocol that answers nothing (its lines are its messages).
struct Quiet;
impl twirl::line::LineHandler for Quiet {
    fn line_received(&mut self, _: &[u8], _: &mut twirl::line::Lines<'_>) {}
}

#[test]
fn a_client_trickling_bytes_that_never_make_a_line_is_idle() {
    // Issue #12: the idle timeout counts from the last whole message, not
    // the last byte, for framed protocols.
    let opts = ListenOptions { idle_timeout: Some(Duration::from_millis(300)), ..ListenOptions::new("quiet") };
    let server = spawn_reactor(Config::default(), move |r| {
        let factory = Box::new(|_: &Addr| twirl::line::LineReceiver::new(Quiet));
        r.listen_stream(&ServerEndpoint::Tcp("127.0.0.1:0".parse().unwrap()), factory, opts).unwrap().addr
    });
    let ServerEndpoint::Tcp(addr) = server.value else { panic!("tcp") };
    let mut trickler = connect(addr);
    let mut lines = connect(addr);
    let t0 = Instant::now();
    let mut closed_after = None;
    trickler.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    // A byte every 100 ms, never a newline; the other sends a whole line each time.
    for _ in 0..30 {
        lines.write_all(b"a line\n").expect("the line sender is not idle");
        if trickler.write_all(b"x").is_err() {
            closed_after = Some(t0.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        match trickler.read(&mut probe) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Ok(n) if n > 0 => {}
            // EOF or a reset: closed.
            Ok(_) | Err(_) => {
                closed_after = Some(t0.elapsed());
                break;
            }
        }
    }
    let closed_after = closed_after.expect("the trickler was never closed");
    assert!(closed_after < Duration::from_secs(2), "closed after {closed_after:?}");
    let stats = server.call(|r| r.stats());
    assert_eq!(stats.idle_closed, 1, "only the trickler: {stats}");
    server.stop();
}

#[test]
fn a_busy_connection_is_closed_at_the_listener_s_max_lifetime() {
    let (tx, rx) = mpsc::channel();
    let opts = ListenOptions { max_lifetime: Some(Duration::from_millis(300)), ..ListenOptions::new("short") };
    let server = spawn_reactor(Config::default(), move |r| listen(r, opts, move |_: &Addr| Reporting(tx.clone())));
    let mut c = connect(server.value);
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let t0 = Instant::now();
    // Busy all along: a byte every 50 ms.
    let mut closed = false;
    while t0.elapsed() < Duration::from_secs(3) {
        if c.write_all(b"x").is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 16];
        match c.read(&mut b) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Ok(_) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "still open after {:?}", t0.elapsed());
    let reason = rx.recv_timeout(TIMEOUT).expect("connection_lost");
    assert!(reason.contains("the most allowed"), "{reason}");
    server.stop();
}
