//! Connection identity and lifetime: slot reuse and stale ids, outgoing
//! connections that retry and reconnect, and stopping the reactor.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Echo, TIMEOUT, connect, connect_small_rcvbuf, spawn_reactor};
use twirl::{Addr, Backoff, ClientFactory, Config, ConnId, Context, Disconnect, Protocol, Reconnecting, Transport};

fn slot(id: ConnId) -> u64 {
    id.as_u64() & 0xffff_ffff
}

#[derive(Default)]
struct Seen {
    /// Every connection's bytes, by id, in the order they arrived.
    data: HashMap<ConnId, Vec<u8>>,
    /// Ids handed to `connection_made` more than once (must stay empty).
    duplicate_ids: Vec<ConnId>,
    /// Callbacks that came for an id after its `connection_lost` (must stay empty).
    after_lost: Vec<ConnId>,
    lost: HashSet<ConnId>,
}

/// Echoes, and records which connection saw which bytes.
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    id: Option<ConnId>,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.id = Some(t.id());
        let mut seen = self.seen.lock().unwrap();
        if seen.data.insert(t.id(), Vec::new()).is_some() {
            seen.duplicate_ids.push(t.id());
        }
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        assert_eq!(self.id, Some(t.id()), "a protocol was handed another connection's transport");
        let mut seen = self.seen.lock().unwrap();
        if seen.lost.contains(&t.id()) {
            seen.after_lost.push(t.id());
        }
        seen.data.entry(t.id()).or_default().extend_from_slice(data);
        t.write(data);
    }
    fn connection_lost(&mut self, _reason: &Disconnect, _cx: &mut dyn Context) {
        let id = self.id.expect("connection_made came first");
        let mut seen = self.seen.lock().unwrap();
        if !seen.lost.insert(id) {
            seen.after_lost.push(id);
        }
    }
}

fn id_message(i: usize) -> Vec<u8> {
    format!("<client {i:05}>").into_bytes()
}

#[test]
fn reused_slot_never_gets_a_dead_connections_event() {
    const LONG: usize = 8;
    const SHORT_THREADS: usize = 4;
    const SHORT_EACH: usize = 60;
    const ABRUPT_EVERY: usize = 3;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    let server = spawn_reactor(Config::default(), move |r| {
        let factory = move |_: &Addr| Recorder { seen: shared.clone(), id: None };
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), factory).unwrap().addr
    });
    let addr = server.value;

    // Long-lived connections hold slots open and send half their id now,
    // half after the churn.
    let mut long: Vec<(TcpStream, Vec<u8>)> = (0..LONG)
        .map(|i| {
            let msg = id_message(i);
            let mut s = connect(addr);
            s.write_all(&msg[..5]).expect("write first half");
            let mut echo = [0u8; 5];
            s.read_exact(&mut echo).expect("first half echoed");
            assert_eq!(echo, msg[..5]);
            (s, msg)
        })
        .collect();

    // Churn: short connections from several threads at once; every third
    // closes abruptly with a reset right after sending, so the reactor sees
    // errors and hang-ups for dying connections while new ones take slots.
    let churn: Vec<_> = (0..SHORT_THREADS)
        .map(|t| {
            thread::spawn(move || {
                for j in 0..SHORT_EACH {
                    let i = LONG + t * SHORT_EACH + j;
                    let msg = id_message(i);
                    let mut s = connect(addr);
                    s.write_all(&msg).expect("write id");
                    if j % ABRUPT_EVERY == 0 {
                        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).expect("linger 0");
                        drop(s);
                        continue;
                    }
                    s.shutdown(Shutdown::Write).expect("shutdown");
                    let mut reply = Vec::new();
                    s.read_to_end(&mut reply).expect("read to EOF");
                    assert_eq!(
                        String::from_utf8_lossy(&reply),
                        String::from_utf8_lossy(&msg),
                        "client {i} got its own id back"
                    );
                }
            })
        })
        .collect();
    for c in churn {
        c.join().expect("churn thread");
    }

    for (s, msg) in &mut long {
        s.write_all(&msg[5..]).expect("write second half");
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).expect("read to EOF");
        assert_eq!(reply, msg[5..], "long-lived client got its own id back");
    }

    // Every connection's loss is recorded (the abrupt ones may lag a little).
    let total = LONG + SHORT_THREADS * SHORT_EACH;
    let deadline = Instant::now() + TIMEOUT;
    while seen.lock().unwrap().lost.len() < total {
        assert!(Instant::now() < deadline, "not every connection was reported lost");
        thread::sleep(Duration::from_millis(5));
    }
    server.stop();

    let seen = seen.lock().unwrap();
    assert!(seen.duplicate_ids.is_empty(), "ids given twice: {:?}", seen.duplicate_ids);
    assert!(seen.after_lost.is_empty(), "callbacks after connection_lost: {:?}", seen.after_lost);
    assert_eq!(seen.data.len(), total);
    let slots: HashSet<u64> = seen.data.keys().map(|&id| slot(id)).collect();
    assert!(slots.len() < total / 4, "slots were reused ({} slots for {total} connections)", slots.len());

    // Each connection saw bytes of one client only: its whole id, or for an
    // abrupt client a prefix of it (possibly empty).
    let mut whole = HashSet::new();
    for (id, data) in &seen.data {
        let text = String::from_utf8_lossy(data);
        if data.len() == id_message(0).len() {
            let n: usize = text["<client ".len()..text.len() - 1].parse().unwrap_or_else(|_| panic!("{id}: {text:?}"));
            assert_eq!(*data, id_message(n), "{id} saw {text:?}");
            assert!(whole.insert(n), "two connections saw client {n}'s id");
        } else {
            assert!(id_message(0).starts_with(&data[..data.len().min(8)]), "{id} saw {text:?}");
            assert!(data.len() < id_message(0).len(), "{id} saw more than one id: {text:?}");
        }
    }
    for i in 0..total {
        let abrupt = i >= LONG && ((i - LONG) % SHORT_EACH).is_multiple_of(ABRUPT_EVERY);
        assert!(abrupt || whole.contains(&i), "client {i}'s id reached exactly one connection");
    }
}

enum Ev {
    Made(ConnId),
    Data(ConnId, Vec<u8>),
    Lost(ConnId),
}

/// Reports its lifetime; never writes by itself.
struct Quiet {
    events: mpsc::Sender<Ev>,
    id: Option<ConnId>,
}

impl Protocol for Quiet {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.id = Some(t.id());
        let _ = self.events.send(Ev::Made(t.id()));
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let _ = self.events.send(Ev::Data(t.id(), data.to_vec()));
    }
    fn connection_lost(&mut self, _reason: &Disconnect, _cx: &mut dyn Context) {
        let _ = self.events.send(Ev::Lost(self.id.expect("made first")));
    }
}

fn made(rx: &mpsc::Receiver<Ev>) -> ConnId {
    match rx.recv_timeout(TIMEOUT).expect("connection_made") {
        Ev::Made(id) => id,
        _ => panic!("expected connection_made"),
    }
}

#[test]
fn stale_conn_id_misses_the_connection_that_reused_its_slot() {
    let (tx, rx) = mpsc::channel();
    let server = spawn_reactor(Config::default(), move |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| Quiet { events: tx.clone(), id: None })
            .unwrap()
            .addr
    });
    let a = connect(server.value);
    let old = made(&rx);
    drop(a);
    match rx.recv_timeout(TIMEOUT).expect("connection_lost") {
        Ev::Lost(id) => assert_eq!(id, old),
        _ => panic!("expected connection_lost"),
    }

    let mut b = connect(server.value);
    let new = made(&rx);
    assert_ne!(old, new, "a new connection gets a new id");
    assert_eq!(slot(old), slot(new), "the new connection reused the freed slot (ids {old} and {new})");

    let answers = server.call(move |r| {
        let stale = (r.write_to(old, b"stale"), r.close_conn(old), r.with_transport(old, |t| t.write(b"stale")));
        (stale, r.write_to(new, b"fresh"))
    });
    assert_eq!(answers, ((false, false, false), true), "((write_to, close_conn, with_transport) stale, write_to live)");

    // B receives exactly what was meant for it, and is still open.
    let mut got = [0u8; 5];
    b.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"fresh");
    b.write_all(b"ping").expect("write");
    match rx.recv_timeout(TIMEOUT).expect("data") {
        Ev::Data(id, d) => assert_eq!((id, d.as_slice()), (new, &b"ping"[..])),
        _ => panic!("expected data_received"),
    }
    b.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).expect("read to EOF");
    assert!(rest.is_empty(), "nothing else was written to the new connection: {rest:?}");
    server.stop();
}

#[derive(Debug)]
enum ClientEv {
    Failed(io::ErrorKind),
    Built,
    Made,
    Lost,
}

/// A client factory that reports everything; the protocol says hello.
struct Hello {
    events: mpsc::Sender<ClientEv>,
}

struct HelloProto {
    events: mpsc::Sender<ClientEv>,
}

impl Protocol for HelloProto {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.events.send(ClientEv::Made);
        t.write(b"hello\n");
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) {
        let _ = self.events.send(ClientEv::Lost);
    }
}

impl ClientFactory for Hello {
    fn build_protocol(&mut self, _peer: &Addr) -> Box<dyn Protocol> {
        let _ = self.events.send(ClientEv::Built);
        Box::new(HelloProto { events: self.events.clone() })
    }
    fn connection_failed(&mut self, error: &io::Error, _cx: &mut dyn Context) -> Option<Duration> {
        let _ = self.events.send(ClientEv::Failed(error.kind()));
        None
    }
}

/// Accepts one connection, waiting at most `TIMEOUT`.
fn accept_bounded(l: &TcpListener) -> TcpStream {
    l.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                s.set_write_timeout(Some(TIMEOUT)).unwrap();
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection came");
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn read_hello(s: &mut TcpStream) {
    let mut got = [0u8; 6];
    s.read_exact(&mut got).expect("hello");
    assert_eq!(&got, b"hello\n");
}

#[test]
fn client_factory_connects_and_reconnects() {
    // A port nobody listens on (yet): bind, note, release.
    let addr: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("reserve a port");
        l.local_addr().unwrap()
    };
    let (tx, rx) = mpsc::channel();
    let backoff = Backoff::new(Duration::from_millis(5)).jitter(0.0).max_delay(Duration::from_millis(20));
    let client = spawn_reactor(Config::default(), move |r| {
        r.connect_tcp(addr, Reconnecting::new(Hello { events: tx }, backoff)).expect("connect_tcp");
    });

    // It fails and retries.
    for i in 0..3 {
        match rx.recv_timeout(TIMEOUT).expect("a connection attempt failed") {
            ClientEv::Failed(kind) => assert_eq!(kind, io::ErrorKind::ConnectionRefused, "attempt {i}"),
            other => panic!("attempt {i}: expected a failure, got {other:?}"),
        }
    }

    // A server appears; the next retry connects.
    let listener = TcpListener::bind(addr).expect("bind the reserved port");
    let mut first = accept_bounded(&listener);
    read_hello(&mut first);
    // Attempts made before the bind may still be queued as failures.
    for _ in 0..10_000 {
        match rx.recv_timeout(TIMEOUT).expect("client events") {
            ClientEv::Failed(kind) => assert_eq!(kind, io::ErrorKind::ConnectionRefused),
            ClientEv::Built => break,
            other => panic!("expected build_protocol, got {other:?}"),
        }
    }
    assert!(matches!(rx.recv_timeout(TIMEOUT).expect("made"), ClientEv::Made));

    // The server drops it; the client notices and reconnects.
    drop(first);
    assert!(matches!(rx.recv_timeout(TIMEOUT).expect("lost"), ClientEv::Lost));
    let mut second = accept_bounded(&listener);
    read_hello(&mut second);
    assert!(matches!(rx.recv_timeout(TIMEOUT).expect("built again"), ClientEv::Built));
    assert!(matches!(rx.recv_timeout(TIMEOUT).expect("made again"), ClientEv::Made));

    let stats = client.call(|r| r.stats());
    assert_eq!(stats.connected, 2, "{stats}");
    client.stop();
    // Stopping ends the connection; the factory does not reconnect.
    assert!(matches!(rx.recv_timeout(TIMEOUT).expect("lost on stop"), ClientEv::Lost));
    assert!(rx.try_recv().is_err(), "nothing after the stop");
}

/// Reports its own loss, with whether it was clean.
struct ReportLoss {
    lost: mpsc::Sender<(ConnId, Option<io::ErrorKind>)>,
    id: Option<ConnId>,
}

impl Protocol for ReportLoss {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.id = Some(t.id());
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if data == b"stop" {
            t.stop_reactor();
        } else {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, reason: &Disconnect, _cx: &mut dyn Context) {
        let _ = self.lost.send((self.id.expect("made"), reason.kind()));
    }
}

#[test]
fn reactor_handle_stop_and_call_from_thread() {
    const CLIENTS: usize = 3;
    let (tx, rx) = mpsc::channel();
    let server = spawn_reactor(Config::default(), move |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| ReportLoss { lost: tx.clone(), id: None })
            .unwrap()
            .addr
    });
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.value)).collect();
    for c in &mut clients {
        // A round trip: the connection is accepted and served.
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }

    let loop_thread = server.thread;
    assert_ne!(loop_thread, thread::current().id());
    let (where_ran, open) = server.call(|r| (thread::current().id(), r.connection_count()));
    assert_eq!(where_ran, loop_thread, "call_from_thread runs on the loop thread");
    assert_eq!(open, CLIENTS);

    // stop() from another thread than the test's, to be sure it is Send.
    let handle = server.handle.clone();
    thread::spawn(move || handle.stop()).join().unwrap();
    server.join();

    let mut lost: Vec<_> = (0..CLIENTS).map(|_| rx.recv_timeout(TIMEOUT).expect("connection_lost on stop")).collect();
    lost.sort();
    lost.dedup();
    assert_eq!(lost.len(), CLIENTS, "each connection lost once");
    assert!(lost.iter().all(|l| l.1.is_none()), "flushed connections close cleanly on stop: {lost:?}");
    for c in &mut clients {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).expect("EOF after stop");
        assert!(rest.is_empty());
    }
}

#[test]
fn a_protocol_can_stop_the_reactor_and_unflushed_output_times_out() {
    let (tx, rx) = mpsc::channel();
    let config = Config { shutdown_grace: Duration::from_millis(100), ..Default::default() };
    let server = spawn_reactor(config, move |r| {
        let stopper =
            r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| ReportLoss { lost: tx.clone(), id: None });
        let echo = r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo);
        (stopper.unwrap().addr, echo.unwrap().addr)
    });
    let (stopper, echo) = server.value;

    // A peer that never reads, with more queued for it than the kernel
    // holds (its writes block once backpressure stops the server reading).
    let stuck = connect_small_rcvbuf(stopper);
    let mut stuck_writer = stuck.try_clone().expect("clone");
    thread::spawn(move || {
        let _ = stuck_writer.write_all(&vec![7u8; 8 * 1024 * 1024]);
    });
    let stats_deadline = Instant::now() + TIMEOUT;
    while server.call(|r| r.stats().buffered) == 0 {
        assert!(Instant::now() < stats_deadline, "the echo never had to buffer");
        thread::sleep(Duration::from_millis(5));
    }
    let _other = connect(echo);

    let mut s = connect(stopper);
    s.write_all(b"stop").unwrap();
    server.join();

    let mut lost: Vec<_> = (0..2).map(|_| rx.recv_timeout(TIMEOUT).expect("connection_lost")).collect();
    lost.sort();
    // The idle one closed cleanly; the stuck one ran out of grace.
    let kinds: HashSet<Option<io::ErrorKind>> = lost.iter().map(|l| l.1).collect();
    assert_eq!(kinds, HashSet::from([None, Some(io::ErrorKind::TimedOut)]), "{lost:?}");
}
