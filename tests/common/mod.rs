//! Shared helpers for the end-to-end tests: a reactor on its own thread,
//! std sockets with bounded waits, and a few small protocols.
//!
//! A `Reactor` holds boxed protocols and is not `Send`, so it is built on the
//! thread that runs it; the setup closure's result and a `ReactorHandle` come
//! back through a channel.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use twirl::{Config, Protocol, Reactor, ReactorHandle, Transport};

/// The bound on every wait in the suite.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A reactor running on its own thread.
pub struct Running<T> {
    /// What the setup closure returned (bound addresses, ids, ...).
    pub value: T,
    /// Stops it or runs code on its thread.
    pub handle: ReactorHandle,
    /// The loop thread.
    pub thread: ThreadId,
    done: Receiver<io::Result<()>>,
    join: Option<JoinHandle<()>>,
}

/// Builds a reactor with `config` on a new thread, runs `setup` on it there,
/// then runs the loop until stopped.
pub fn spawn_reactor<T, F>(config: Config, setup: F) -> Running<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Reactor) -> T + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let join = thread::Builder::new()
        .name("reactor".into())
        .spawn(move || {
            let mut reactor = Reactor::with_config(config).expect("create reactor");
            let value = setup(&mut reactor);
            ready_tx.send((value, reactor.handle(), thread::current().id())).expect("send setup result");
            let result = reactor.run();
            let _ = done_tx.send(result);
        })
        .expect("spawn reactor thread");
    let (value, handle, thread) = ready_rx.recv_timeout(TIMEOUT).expect("reactor setup finished");
    Running { value, handle, thread, done: done_rx, join: Some(join) }
}

impl<T> Running<T> {
    /// Runs `f` on the loop thread and waits (bounded) for its result.
    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Reactor) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        self.handle.call_from_thread(move |r| {
            let _ = tx.send(f(r));
        });
        rx.recv_timeout(TIMEOUT).expect("call_from_thread ran on the loop")
    }

    /// Stops the reactor and waits (bounded) for `run` to return; panics if
    /// it does not return in time or returned an error.
    pub fn stop(self) {
        self.handle.stop();
        self.join();
    }

    /// Waits (bounded) for `run` to return by itself; panics if it does not
    /// return in time or returned an error.
    pub fn join(mut self) {
        let result = self.done.recv_timeout(TIMEOUT).expect("reactor run() returned");
        result.expect("reactor run() returned Ok");
        if let Some(j) = self.join.take() {
            j.join().expect("reactor thread exited cleanly");
        }
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        // A test that panicked before `stop`: do not leave the loop running.
        if self.join.is_some() {
            self.handle.stop();
        }
    }
}

/// A loopback TCP client with bounded reads and writes.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    s
}

/// Like [`connect`], with a small receive buffer set before connecting, so
/// that a server writing to a client that does not read has to buffer in
/// its own memory soon rather than in the kernel's.
pub fn connect_small_rcvbuf(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(32 * 1024).expect("SO_RCVBUF");
    sock.connect(&addr.into()).expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    s
}

/// Sends `data`, half-closes, and reads the reply to EOF.
pub fn round_trip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(data).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown write");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read to EOF");
    reply
}

/// A fresh, empty directory under the system temp dir (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("twirl-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic, non-repeating-looking byte pattern (xorshift), so that
/// lost, duplicated or reordered chunks show up as a mismatch.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&bytes[..take]);
    }
    out
}

/// Index of the first differing byte, for readable failures on big buffers.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or(if a.len() == b.len() { None } else { Some(a.len().min(b.len())) })
}

/// RFC 862 echo: writes back what it receives; closes after the peer's EOF
/// once everything is flushed (the default `read_eof`).
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
}
