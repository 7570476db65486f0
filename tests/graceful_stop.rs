//! Stopping the reactor closes every connection the way `lose_connection`
//! does (issue #12): output already accepted is flushed, the write side is
//! shut, the peer's input is drained until its EOF or the grace ends, and a
//! client that keeps reading never sees a reset. Stopping waits on events,
//! not in a busy loop.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Echo, TIMEOUT, connect, pattern};
use twirl::{Addr, Config, Reactor, ReactorHandle, Stats};

/// A reactor on its own thread; `run` returns how long it ran and its stats.
fn serve(config: Config) -> (std::net::SocketAddr, ReactorHandle, mpsc::Receiver<(Duration, Stats)>) {
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reactor = Reactor::with_config(config).expect("reactor");
        let addr = reactor.listen_tcp("127.0.0.1:0".parse().expect("addr"), |_: &Addr| Echo).expect("listen").addr;
        tx.send((addr, reactor.handle())).expect("send");
        let t0 = Instant::now();
        reactor.run().expect("run");
        let _ = done_tx.send((t0.elapsed(), reactor.stats()));
    });
    let (addr, handle) = rx.recv_timeout(TIMEOUT).expect("server up");
    (addr, handle, done_rx)
}

/// Bytes this socket has sent that the peer's kernel has not yet taken
/// (`SIOCOUTQ`): zero once everything written is in the peer's receive queue.
fn unsent(s: &std::net::TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one c_int through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(rc, 0, "ioctl(TIOCOUTQ)");
    n as usize
}

/// Answers the first bytes with "ack\n", then stops reading.
struct AckThenPause;
impl twirl::Protocol for AckThenPause {
    fn data_received(&mut self, _: &[u8], t: &mut dyn twirl::Transport) {
        t.write(b"ack\n");
        t.pause_reading();
    }
}

#[test]
fn stop_with_unread_input_closes_without_a_reset() {
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reactor = Reactor::new().expect("reactor");
        let addr =
            reactor.listen_tcp("127.0.0.1:0".parse().expect("addr"), |_: &Addr| AckThenPause).expect("listen").addr;
        tx.send((addr, reactor.handle())).expect("send");
        reactor.run().expect("run");
        let _ = done_tx.send(reactor.stats());
    });
    let (addr, handle) = rx.recv_timeout(TIMEOUT).expect("server up");
    let mut c = connect(addr);
    c.write_all(b"a").expect("write");
    let mut ack = [0u8; 4];
    c.read_exact(&mut ack).expect("ack");
    // More input, which the server does not read (it paused): wait until
    // all of it sits in the server's receive queue.
    c.write_all(&[b'x'; 32 * 1024]).expect("write");
    let t0 = Instant::now();
    while unsent(&c) > 0 {
        assert!(t0.elapsed() < TIMEOUT, "the bytes never left");
        std::thread::yield_now();
    }
    handle.stop();
    // Closing with unread input would reset the connection.
    let mut rest = Vec::new();
    let end = c.read_to_end(&mut rest);
    assert!(end.is_ok(), "the client saw {end:?}: the server reset the connection");
    drop(c);
    let stats = done_rx.recv_timeout(TIMEOUT).expect("run returned");
    assert_eq!(stats.open, 0, "{stats}");
}

#[test]
fn stop_with_output_pending_waits_on_events_not_in_a_busy_loop() {
    let (addr, handle, done) = serve(Config::default());
    let mut c = connect(addr);
    // Echoed output piles up while the client does not read.
    let mut writer = c.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&pattern(2 << 20, 3));
        let _ = writer.shutdown(Shutdown::Write);
    });
    let t0 = Instant::now();
    while unsent(&c) > 0 && t0.elapsed() < Duration::from_millis(500) {
        std::thread::yield_now();
    }
    handle.stop();
    // A slow reader: the server waits for it on events.
    std::thread::sleep(Duration::from_millis(300));
    let mut echoed = Vec::new();
    c.read_to_end(&mut echoed).expect("an EOF, not a reset");
    let _ = sender.join();
    let (_, stats) = done.recv_timeout(TIMEOUT).expect("run returned");
    assert!(stats.turns < 2_000, "the loop spun while stopping: {stats}");
    assert_eq!(stats.open, 0, "{stats}");
}
