//! Regression tests for the defects listed in issue #11, one test per
//! defect, each named after it. Real sockets on loopback only; every wait
//! is bounded.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Once;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::{Echo, TempDir, spawn_reactor};
use twirl::fd::{FdHandler, FdInterest, FdNext};
use twirl::testing::Harness;
use twirl::{
    Addr, ClientFactory, Config, Context, DatagramProtocol, DatagramTransport, Disconnect, Limits, Protocol, Reactor,
    ReactorHandle, Readiness, Transport,
};

/// The bound on the waits of this file: every test finishes well within it.
const WAIT: Duration = Duration::from_secs(2);

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A loopback port nobody listens on (bound, noted, released).
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind(loopback0()).expect("bind");
    let addr = l.local_addr().expect("local_addr");
    drop(l);
    addr
}

/// A client with short, bounded reads and writes.
fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
    s
}

/// Reads to EOF; an error (a timeout) is returned, not panicked on.
fn read_to_eof(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).map(|_| out)
}

/// Sends `data`, half-closes, and reads the echo to EOF (bounded).
fn echo_round_trip(addr: SocketAddr, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    s.write_all(data).map_err(|e| format!("write: {e}"))?;
    s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
    read_to_eof(&mut s).map_err(|e| format!("reading the echo: {e}"))
}

// ---------------------------------------------------------------------------
// Deliberate panics: silenced (only those), so that the output stays readable
// and other tests' panic messages still show.

const DELIBERATE: &str = "deliberate test panic";

fn silence_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.starts_with(DELIBERATE) {
                previous(info);
            }
        }));
    });
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

/// Asks the reactor for its panic count, from another thread.
fn panics_of(handle: &ReactorHandle) -> Option<u64> {
    let (tx, rx) = mpsc::channel();
    handle.call_from_thread(move |r| {
        let _ = tx.send(r.stats().panics);
    });
    rx.recv_timeout(WAIT).ok()
}

/// Runs a reactor with an echo listener on this thread, after `setup` (given
/// the echo address) has arranged for one deliberate panic. A helper thread
/// waits for the panic to be counted (if `panic_while_running`), checks
/// that the echo listener still serves, and stops the reactor. Fails if the
/// panic escapes `run()`, `run()` fails, or the count is not exactly one.
fn contained(what: &str, panic_while_running: bool, setup: impl FnOnce(&mut Reactor, SocketAddr)) {
    silence_deliberate_panics();
    let mut reactor = Reactor::new().expect("reactor");
    let addr = reactor.listen_tcp(loopback0(), |_: &Addr| Echo).expect("listen").addr;
    setup(&mut reactor, addr);
    // A watchdog, should the helper fail to stop the reactor.
    reactor.call_later(Duration::from_secs(5), |r| r.stop());
    let handle = reactor.handle();
    let helper = thread::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            if panic_while_running {
                let deadline = Instant::now() + WAIT;
                loop {
                    match panics_of(&handle) {
                        Some(n) if n >= 1 => break,
                        Some(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                        Some(_) => return Err("no panic was counted within 2 s".into()),
                        None => return Err("the reactor no longer runs call_from_thread closures".into()),
                    }
                }
            }
            let reply = echo_round_trip(addr, b"still served")?;
            if reply != b"still served" {
                return Err(format!("echo after the panic: {:?}", String::from_utf8_lossy(&reply)));
            }
            Ok(())
        }));
        handle.stop();
        result.unwrap_or_else(|p| Err(panic_message(&*p)))
    });
    let run = catch_unwind(AssertUnwindSafe(|| reactor.run()));
    let helper = helper.join().expect("helper thread");
    match run {
        Err(p) => panic!("a panic in {what} escaped Reactor::run: {}", panic_message(&*p)),
        Ok(Err(e)) => panic!("Reactor::run failed after a panic in {what}: {e}"),
        Ok(Ok(())) => {}
    }
    if let Err(e) = helper {
        panic!("after a panic in {what}: {e}");
    }
    assert_eq!(reactor.stats().panics, 1, "the panic in {what} is counted once");
}

/// A client protocol that does nothing.
struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

#[test]
fn a_panic_in_connection_failed_is_contained() {
    struct Panicking;
    impl ClientFactory for Panicking {
        fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
            Box::new(Quiet)
        }
        fn connection_failed(&mut self, _: &io::Error, _: &mut dyn Context) -> Option<Duration> {
            panic!("{DELIBERATE} in connection_failed");
        }
    }
    contained("ClientFactory::connection_failed", true, |r, _| {
        r.connect_tcp(closed_port(), Panicking).expect("connect_tcp");
    });
}

#[test]
fn a_panic_in_client_connection_lost_is_contained() {
    /// Closes as soon as it is connected.
    struct Leaves;
    impl Protocol for Leaves {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.lose_connection();
        }
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    }
    struct Panicking;
    impl ClientFactory for Panicking {
        fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
            Box::new(Leaves)
        }
        fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) -> Option<Duration> {
            panic!("{DELIBERATE} in connection_lost");
        }
    }
    contained("ClientFactory::connection_lost", true, |r, echo| {
        r.connect_tcp(echo, Panicking).expect("connect_tcp");
    });
}

#[test]
fn a_panic_in_datagram_stopped_is_contained() {
    struct Panicking;
    impl DatagramProtocol for Panicking {
        fn datagram_received(&mut self, _: &[u8], _: SocketAddr, _: &mut dyn DatagramTransport) {}
        fn stopped(&mut self, _: &mut dyn Context) {
            panic!("{DELIBERATE} in stopped");
        }
    }
    // `stopped` runs as the reactor stops: the panic comes after the echo check.
    contained("DatagramProtocol::stopped", false, |r, _| {
        r.listen_udp(loopback0(), Panicking).expect("listen_udp");
    });
}

#[test]
fn a_panic_in_call_from_thread_is_contained() {
    contained("a call_from_thread closure", true, |r, _| {
        r.handle().call_from_thread(|_| panic!("{DELIBERATE} in call_from_thread"));
    });
}

// ---------------------------------------------------------------------------
// Unix listeners and their socket files.

#[test]
fn unix_listener_refuses_a_regular_file_and_keeps_it() {
    let dir = TempDir::new("regress-unix-file");
    let path = dir.0.join("precious");
    std::fs::write(&path, b"precious content").expect("write the file");
    let mut reactor = Reactor::new().expect("reactor");
    let err =
        reactor.listen_unix(&path, |_: &Addr| Echo).expect_err("listen_unix must refuse a path that is a regular file");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "the error names the path {}: {err}",
        path.display()
    );
    drop(reactor);
    assert_eq!(
        std::fs::read(&path).expect("the regular file still exists"),
        b"precious content",
        "the file keeps its content"
    );
}

#[test]
fn unix_listener_removes_only_its_own_socket() {
    let dir = TempDir::new("regress-unix-own");
    let path = dir.0.join("sock");
    let mut reactor = Reactor::new().expect("reactor");
    reactor.listen_unix(&path, |_: &Addr| Echo).expect("listen_unix");
    // Someone else replaces the socket file with a regular file.
    std::fs::remove_file(&path).expect("remove the socket file");
    std::fs::write(&path, b"not yours").expect("write a regular file");
    reactor.call_later(Duration::from_millis(10), |r| r.stop());
    reactor.run().expect("run");
    drop(reactor);
    assert_eq!(
        std::fs::read(&path).expect("the regular file is still there"),
        b"not yours",
        "stopping and dropping the reactor left the other file alone"
    );
}

#[test]
fn unix_socket_is_removed_when_the_reactor_is_dropped() {
    let dir = TempDir::new("regress-unix-drop");
    let path = dir.0.join("sock");
    let mut reactor = Reactor::new().expect("reactor");
    reactor.listen_unix(&path, |_: &Addr| Echo).expect("listen_unix");
    assert!(path.exists(), "the socket file exists once bound");
    // Start-up fails part way: the reactor is dropped without running.
    drop(reactor);
    assert!(!path.exists(), "the socket file {} was left behind", path.display());
}

// ---------------------------------------------------------------------------
// Reconnect timers across runs.

#[test]
fn a_stale_reconnect_from_an_earlier_run_starts_nothing() {
    struct RetriesLater {
        failures: Rc<Cell<u32>>,
    }
    impl ClientFactory for RetriesLater {
        fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
            Box::new(Quiet)
        }
        fn connection_failed(&mut self, _: &io::Error, _: &mut dyn Context) -> Option<Duration> {
            self.failures.set(self.failures.get() + 1);
            Some(Duration::from_millis(100))
        }
    }
    struct Counting {
        built: Rc<Cell<u32>>,
    }
    impl ClientFactory for Counting {
        fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
            self.built.set(self.built.get() + 1);
            Box::new(Quiet)
        }
    }

    let mut reactor = Reactor::new().expect("reactor");
    // Run 1: a client whose retry is pending when the reactor stops.
    let failures = Rc::new(Cell::new(0));
    reactor.connect_tcp(closed_port(), RetriesLater { failures: failures.clone() }).expect("connect_tcp");
    // Stop once the first attempt has failed, well before its retry is due.
    fn stop_after_the_failure(r: &mut Reactor, failures: Rc<Cell<u32>>) {
        if failures.get() >= 1 {
            r.stop();
        } else {
            r.call_later(Duration::from_millis(2), move |r| stop_after_the_failure(r, failures));
        }
    }
    let f = failures.clone();
    reactor.call_later(Duration::from_millis(2), move |r| stop_after_the_failure(r, f));
    let watchdog = reactor.call_later(WAIT, |r| r.stop());
    reactor.run().expect("run 1");
    reactor.cancel_timer(watchdog);
    assert_eq!(failures.get(), 1, "run 1: the connect failed once, and its retry was still pending at the stop");

    // Run 2: a server and a different client, past the stale retry's time.
    let accepted = Rc::new(Cell::new(0u32));
    let a = accepted.clone();
    let server = reactor
        .listen_tcp(loopback0(), move |_: &Addr| {
            a.set(a.get() + 1);
            Quiet
        })
        .expect("listen")
        .addr;
    let built = Rc::new(Cell::new(0));
    reactor.connect_tcp(server, Counting { built: built.clone() }).expect("connect_tcp");
    reactor.call_later(Duration::from_millis(300), |r| r.stop());
    reactor.run().expect("run 2");
    assert_eq!(failures.get(), 1, "run 1's client was not retried in run 2");
    assert_eq!(built.get(), 1, "the second client connected once, not again from run 1's stale retry");
    assert_eq!(accepted.get(), 1, "the server saw exactly one connection");
}

// ---------------------------------------------------------------------------
// Reading.

#[test]
fn urgent_data_does_not_leave_the_rest_unread() {
    /// Records what arrives; stops the reactor at 6 bytes.
    struct Record(Rc<RefCell<Vec<u8>>>);
    impl Protocol for Record {
        fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
            self.0.borrow_mut().extend_from_slice(data);
            if self.0.borrow().len() >= 6 {
                t.stop_reactor();
            }
        }
    }

    let mut reactor = Reactor::new().expect("reactor");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let addr = reactor.listen_tcp(loopback0(), move |_: &Addr| Record(g.clone())).expect("listen").addr;
    // Everything is queued before the reactor runs, so the first readiness
    // event is the only one: a read that stops at the urgent mark must not
    // be taken for "drained".
    let mut c = client(addr);
    c.set_nodelay(true).expect("TCP_NODELAY");
    c.write_all(b"abc").expect("write abc");
    // SAFETY: a valid connected socket and a one-byte buffer that outlives the call.
    let sent = unsafe { libc::send(c.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    assert_eq!(sent, 1, "send MSG_OOB: {}", io::Error::last_os_error());
    c.write_all(b"def").expect("write def");
    reactor.call_later(WAIT, |r| r.stop());
    let started = Instant::now();
    reactor.run().expect("run");
    // Without SO_OOBINLINE, Linux takes the urgent byte out of the stream:
    // a read stops short before it, and the next read skips it.
    assert_eq!(
        String::from_utf8_lossy(&got.borrow()),
        "abcdef",
        "everything but the out-of-band byte arrived (after {:?})",
        started.elapsed()
    );
    drop(c);
}

#[test]
fn fd_handler_that_stops_early_is_continued() {
    /// Reads one byte per call, as a handler with a tiny budget would.
    struct OneByte {
        rx: std::os::unix::net::UnixStream,
        count: Rc<Cell<usize>>,
    }
    impl FdHandler for OneByte {
        fn fd(&self) -> RawFd {
            self.rx.as_raw_fd()
        }
        fn ready(&mut self, _: Readiness, cx: &mut dyn Context) -> FdNext {
            let mut b = [0u8; 1];
            match self.rx.read(&mut b) {
                Ok(1) => {
                    self.count.set(self.count.get() + 1);
                    if self.count.get() == 10 {
                        cx.stop_reactor();
                        return FdNext::Wait;
                    }
                    FdNext::Again // more may be left, and no new event will say so
                }
                Ok(_) => FdNext::Remove,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => FdNext::Wait,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    let (mut tx, rx) = std::os::unix::net::UnixStream::pair().expect("pair");
    rx.set_nonblocking(true).expect("non-blocking");
    tx.write_all(b"0123456789").expect("write 10 bytes");
    let mut reactor = Reactor::new().expect("reactor");
    let count = Rc::new(Cell::new(0));
    reactor.add_fd(OneByte { rx, count: count.clone() }, FdInterest::Read).expect("add_fd");
    reactor.call_later(WAIT, |r| r.stop());
    reactor.run().expect("run");
    assert_eq!(count.get(), 10, "all 10 bytes were read without any further write");
    drop(tx);
}

// ---------------------------------------------------------------------------
// Writing.

#[test]
fn a_write_after_close_is_reported() {
    /// Sends its id out; on `connection_made` may write, close, and write again.
    struct Server {
        ids: mpsc::Sender<twirl::ConnId>,
        close_at_once: bool,
    }
    impl Protocol for Server {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            if self.close_at_once {
                t.write(b"before");
                t.lose_connection();
                t.write(b"after");
            }
            let _ = self.ids.send(t.id());
        }
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
        fn read_eof(&mut self, _: &mut dyn Transport) {}
    }

    let (ids_tx, ids) = mpsc::channel();
    let running = spawn_reactor(Config::default(), move |r| {
        let tx = ids_tx.clone();
        let keep = r
            .listen_tcp(loopback0(), move |_: &Addr| Server { ids: tx.clone(), close_at_once: false })
            .expect("listen")
            .addr;
        let closing = r
            .listen_tcp(loopback0(), move |_: &Addr| Server { ids: ids_tx.clone(), close_at_once: true })
            .expect("listen")
            .addr;
        (keep, closing)
    });
    let (keep, closing) = running.value;

    // close_conn, then write_to: refused.
    let mut c1 = client(keep);
    let id = ids.recv_timeout(WAIT).expect("connection 1 made");
    let (closed, wrote) = running.call(move |r| (r.close_conn(id), r.write_to(id, b"x")));
    assert!(closed, "close_conn on an open connection");
    assert!(!wrote, "write_to after close_conn must return false");
    assert_eq!(read_to_eof(&mut c1).expect("EOF after close_conn"), b"", "nothing was sent after the close");

    // shutdown_write, then write_to: refused.
    let mut c2 = client(keep);
    let id = ids.recv_timeout(WAIT).expect("connection 2 made");
    let (found, wrote) = running.call(move |r| (r.with_transport(id, |t| t.shutdown_write()), r.write_to(id, b"y")));
    assert!(found, "with_transport on an open connection");
    assert!(!wrote, "write_to after shutdown_write must return false");
    assert_eq!(read_to_eof(&mut c2).expect("EOF after shutdown_write"), b"", "nothing was sent after the half-close");

    // Transport::write after lose_connection: not sent.
    let mut c3 = client(closing);
    ids.recv_timeout(WAIT).expect("connection 3 made");
    assert_eq!(
        String::from_utf8_lossy(&read_to_eof(&mut c3).expect("EOF after lose_connection")),
        "before",
        "only what was written before lose_connection is sent"
    );
    running.stop();
}

#[test]
fn writing_paused_agrees_with_pause_and_resume() {
    /// Writes past the high-water mark at once; records the flow-control
    /// calls, and `writing_paused()` whenever data arrives.
    struct Producer {
        log: Rc<RefCell<Vec<String>>>,
    }
    impl Protocol for Producer {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.write(&vec![b'x'; 10_000]);
        }
        fn data_received(&mut self, _: &[u8], t: &mut dyn Transport) {
            self.log.borrow_mut().push(format!("paused={}", t.writing_paused()));
        }
        fn pause_writing(&mut self, _: &mut dyn Transport) {
            self.log.borrow_mut().push("pause".into());
        }
        fn resume_writing(&mut self, _: &mut dyn Transport) {
            self.log.borrow_mut().push("resume".into());
        }
    }

    let limits = Limits { high_water: 8_000, low_water: 2_000, ..Limits::default() };
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut h = Harness::with_limits(Producer { log: log.clone() }, limits);
    h.set_peer_reading(false);
    h.connect();
    assert_eq!(*log.borrow(), ["pause"], "10,000 bytes buffered pass the 8,000 mark");
    log.borrow_mut().clear();

    h.drain(5_000); // 5,000 left: below high, above low
    let mut paused = None;
    h.with_transport(|t| paused = Some(t.writing_paused()));
    assert_eq!(paused, Some(true), "between the marks, still paused: no resume_writing yet");
    // The connection is not read meanwhile (backpressure): this waits.
    h.feed(b"?");
    assert!(log.borrow().is_empty(), "{:?}", log.borrow());

    h.drain(4_000); // 1,000 left: below low
    assert_eq!(*log.borrow(), ["resume", "paused=false"], "below the low mark: resumed, read again, no longer paused");
}

// ---------------------------------------------------------------------------
// Timers of a connection.

#[test]
fn a_connection_s_timers_die_with_it() {
    // In the harness.
    struct SetsTimersAndLeaves;
    impl Protocol for SetsTimersAndLeaves {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.call_later(Duration::from_secs(10), 1);
            t.call_every(Duration::from_secs(1), 2);
            t.lose_connection();
        }
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    }
    let mut h = Harness::new(SetsTimersAndLeaves);
    h.connect();
    assert!(h.is_closed(), "the harness connection closed");
    assert_eq!(h.cx.pending_timers(), 0, "the closed connection's timers were cancelled");

    // On a real reactor: ticks stop with connection_lost.
    struct Ticks(mpsc::Sender<&'static str>);
    impl Protocol for Ticks {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.call_every(Duration::from_millis(5), 7);
        }
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
        fn timer_fired(&mut self, _: u64, _: &mut dyn Transport) {
            let _ = self.0.send("tick");
        }
        fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) {
            let _ = self.0.send("lost");
        }
    }
    let (tx, events) = mpsc::channel();
    let running = spawn_reactor(Config::default(), move |r| {
        r.listen_tcp(loopback0(), move |_: &Addr| Ticks(tx.clone())).expect("listen").addr
    });
    let c = client(running.value);
    assert_eq!(events.recv_timeout(WAIT), Ok("tick"), "the connection's timer ticks");
    drop(c); // the client closes: EOF, then the server closes too
    loop {
        match events.recv_timeout(WAIT) {
            Ok("tick") => continue,
            Ok("lost") => break,
            other => panic!("waiting for connection_lost: {other:?}"),
        }
    }
    match events.recv_timeout(Duration::from_millis(100)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("after connection_lost, the connection's timer still fired: {other:?}"),
    }
    running.stop();
}

/// Says nothing: a server that accepts and never answers.
struct Mute;
impl Protocol for Mute {
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

/// Reports, when its connection ends, what it received (nothing here).
struct Waiter(twirl::Outcome<std::io::Result<Vec<u8>>>);
impl Protocol for Waiter {
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) {
        self.0.set(Ok(Vec::new()));
    }
}

#[test]
fn run_until_times_out_even_if_stopping_fills_the_outcome() {
    let mut reactor = Reactor::new().expect("reactor");
    let addr = reactor.listen_tcp("127.0.0.1:0".parse().expect("addr"), |_: &Addr| Mute).expect("listen").addr;
    let done = twirl::Outcome::new();
    let d = done.clone();
    reactor.connect_tcp(addr, twirl::OneShot::new(done.clone(), move |_: &Addr| Waiter(d))).expect("connect");
    let t0 = Instant::now();
    let result = reactor.run_until(&done, Duration::from_millis(200));
    let err = result.expect_err("no answer came: a timeout, not the value the close filled in");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(reactor.stats().turns < 1_000, "the loop spun while stopping: {}", reactor.stats());
}
