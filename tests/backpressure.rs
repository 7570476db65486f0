//! Backpressure by default, and a memory budget for the whole reactor
//! (issue #12): a client that sends without reading is slowed to the pace
//! it reads at instead of being buffered, and the few protocols that must
//! keep reading are bounded, all together, by the reactor's budget.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use common::{Echo, TIMEOUT, connect_small_rcvbuf, pattern, spawn_reactor};
use twirl::{Addr, Config, Protocol, Stats, Transport};

/// Sends `data` until the writes block for `patience` (or all is sent);
/// returns how many bytes went.
fn send_until_blocked(s: &mut std::net::TcpStream, data: &[u8], patience: Duration) -> usize {
    s.set_write_timeout(Some(patience)).expect("write timeout");
    let mut sent = 0;
    while sent < data.len() {
        match s.write(&data[sent..(sent + 64 * 1024).min(data.len())]) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
            Err(e) => panic!("the server cut the client off after {sent} bytes: {e}"),
        }
    }
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    sent
}

#[test]
fn a_client_that_never_reads_is_held_back_not_buffered() {
    let server = spawn_reactor(Config::default(), |r| {
        r.listen_tcp("127.0.0.1:0".parse().expect("addr"), |_: &Addr| Echo).expect("listen").addr
    });
    let data = pattern(16 << 20, 11);
    let mut c = connect_small_rcvbuf(server.value);
    let sent = send_until_blocked(&mut c, &data, Duration::from_millis(300));
    assert!(sent < data.len(), "the writes never blocked: the server buffered all {sent} bytes");
    let stats = server.call(|r| r.stats());
    let limits = Config::default().limits;
    let read = Config::default().read_buffer;
    assert!(stats.buffered <= (limits.high_water + read) as u64, "held {} bytes: {stats}", stats.buffered);
    assert!(stats.backpressured >= 1 && stats.cap_aborts == 0, "{stats}");
    // Nothing was lost: reading now gets back exactly what was sent.
    c.shutdown(Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    c.read_to_end(&mut back).expect("the echo, to EOF");
    assert_eq!(back.len(), sent);
    assert!(back == data[..sent], "the echo differs from what was sent");
    server.stop();
}

/// Echo that keeps reading while its output waits (as `caps` must).
struct Hoarder;
impl Protocol for Hoarder {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_backpressure(false);
    }
    fn data_received(&mut self, d: &[u8], t: &mut dyn Transport) {
        t.write(d);
    }
}

fn stats_until(server: &common::Running<SocketAddr>, done: impl Fn(&Stats) -> bool) -> Stats {
    let t0 = Instant::now();
    loop {
        let s = server.call(|r| r.stats());
        if done(&s) || t0.elapsed() > TIMEOUT {
            return s;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_memory_budget_aborts_the_biggest_holders_first() {
    let budget = 2 << 20;
    let config = Config { memory_budget: budget, ..Config::default() };
    let server = spawn_reactor(config, |r| {
        r.listen_tcp("127.0.0.1:0".parse().expect("addr"), |_: &Addr| Hoarder).expect("listen").addr
    });
    // Two hoarded clients over the budget together, one small one under it.
    // More than the kernel's socket buffers hold (a few MiB on loopback).
    let big = pattern(12 << 20, 1);
    let mut hogs = Vec::new();
    for _ in 0..2 {
        let mut s = connect_small_rcvbuf(server.value);
        let d = big.clone();
        hogs.push(thread::spawn(move || {
            let r = s.write_all(&d);
            (s, r.err().map(|e| e.kind()))
        }));
    }
    let stats = stats_until(&server, |s| s.budget_aborts >= 1);
    assert!(stats.budget_aborts >= 1, "nobody was aborted: {stats}");
    assert!(stats.peak_buffered <= budget as u64 + 4 * 64 * 1024, "peaked at {}: {stats}", stats.peak_buffered);
    // Another client is served at once.
    let t0 = Instant::now();
    let mut c = common::connect(server.value);
    c.write_all(b"still here").expect("write");
    let mut reply = [0u8; 10];
    c.read_exact(&mut reply).expect("served");
    assert_eq!(&reply, b"still here");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    drop(c);
    for h in hogs {
        let (s, _) = h.join().expect("hog");
        drop(s);
    }
    let stats = stats_until(&server, |s| s.open == 0);
    assert!(stats.buffered == 0 && stats.open == 0, "{stats}");
    server.stop();
}
