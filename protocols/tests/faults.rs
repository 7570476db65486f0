//! Hostile and broken clients, end to end over loopback (issue #7): clients
//! that reset in the middle of a large request, half-close and then vanish,
//! never read while the server writes, connect and say nothing, or connect
//! and close by the thousand. Throughout, a well-behaved client keeps being
//! served by the same reactor (every plugin, `serve::bind_with`), and at the
//! end no connection is left open and no callback panicked.
//!
//! Every wait is bounded: socket timeouts, `recv_timeout`, deadlines.

mod support;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::{AllPlugins, End, Ports, WAIT, connect, good_tcp, good_udp, read_to_end, reset};
use twirl::{Config, Limits, Stats};
use twirl_protocols::serve::ServeLimits;

/// Well-behaved clients of a few plugins, one after another, until stopped.
struct Bystander {
    stop: Arc<AtomicBool>,
    join: JoinHandle<(u64, Vec<String>)>,
}

impl Bystander {
    fn start(ports: &BTreeMap<&'static str, Ports>) -> Bystander {
        let ports = ports.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let join = thread::spawn(move || {
            let (mut rounds, mut errors) = (0u64, Vec::new());
            while !flag.load(Ordering::Relaxed) || rounds == 0 {
                for name in ["echo", "reverse", "json", "amf", "struct"] {
                    if let Err(e) = good_tcp(name, ports[name].tcp.expect("tcp")) {
                        errors.push(e);
                    }
                }
                for name in ["echo", "sntp"] {
                    if let Err(e) = good_udp(name, ports[name].udp.expect("udp")) {
                        errors.push(e);
                    }
                }
                rounds += 1;
            }
            (rounds, errors)
        });
        Bystander { stop, join }
    }

    /// Stops it; panics if any of its requests went wrong.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let (rounds, errors) = self.join.join().expect("bystander thread");
        assert!(errors.is_empty(), "the well-behaved client was not served: {errors:#?}");
        eprintln!("bystander: {rounds} rounds");
        rounds
    }
}

/// Every plugin still serves a good client, nothing is left open, nothing panicked.
fn check_clean(server: &AllPlugins) -> Stats {
    support::all_good(server).expect("every good client served afterwards");
    let stats = server.wait_until_no_connection(WAIT);
    assert_eq!(stats.open, 0, "connections left open: {stats}");
    assert_eq!(stats.panics, 0, "{stats}");
    eprintln!("{stats}");
    stats
}

/// A large request for `plugin`, well-formed as far as it goes: a long line,
/// a big AMF packet, many records, or just bytes.
fn large_request(plugin: &str) -> Vec<u8> {
    match plugin {
        "reverse" | "upper" => vec![b'w'; 8000],
        "json" => [b"{\"k\":\"".to_vec(), vec![b'v'; 60_000]].concat(),
        "amf" => {
            let mut p = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0, 0, 0xea, 0x60];
            p.extend(std::iter::repeat_n(b'a', 60_000));
            p
        }
        "struct" => support::LAB.repeat(100_000),
        _ => vec![b'x'; 4 << 20],
    }
}

const STREAM_PLUGINS: [&str; 9] = ["echo", "discard", "caps", "chat", "struct", "reverse", "upper", "json", "amf"];

#[test]
fn clients_that_reset_mid_request_cost_only_their_own_connection() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let bystander = Bystander::start(&server.ports);
    let mut clients = Vec::new();
    for round in 0..3 {
        for plugin in STREAM_PLUGINS {
            let addr = server.tcp(plugin);
            clients.push(thread::spawn(move || {
                let mut s = connect(addr);
                let request = large_request(plugin);
                // Part of the request (a different part each round), then a reset.
                let cut = request.len() * (round + 1) / 4;
                let _ = s.write_all(&request[..cut]);
                reset(s);
            }));
        }
    }
    for c in clients {
        c.join().expect("client thread");
    }
    let rounds = bystander.finish();
    assert!(rounds > 0);
    check_clean(&server);
    server.stop();
}

#[test]
fn clients_that_half_close_and_then_vanish_cost_only_their_own_connection() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let bystander = Bystander::start(&server.ports);
    let mut clients = Vec::new();
    for plugin in STREAM_PLUGINS.iter().chain(&["chargen", "daytime", "binarytime", "time"]) {
        let addr = server.tcp(plugin);
        for stage in 0..3 {
            clients.push(thread::spawn(move || {
                let mut s = connect(addr);
                let request = large_request(plugin);
                let cut = [0, 100, request.len()][stage];
                let _ = s.write_all(&request[..cut]);
                let _ = s.shutdown(Shutdown::Write);
                // The server is now answering a half-closed peer that goes away.
                reset(s);
            }));
        }
    }
    for c in clients {
        c.join().expect("client thread");
    }
    bystander.finish();
    check_clean(&server);
    server.stop();
}

#[test]
fn clients_that_never_read_are_held_back_cut_off_at_the_hard_cap_or_paused() {
    let limits = Limits { high_water: 64 * 1024, low_water: 16 * 1024, hard_cap: 512 * 1024 };
    let config = Config { limits, ..Config::default() };
    let server = AllPlugins::start(config, ServeLimits::default());
    let bystander = Bystander::start(&server.ports);

    // echo and reverse answer as they read, and stop reading while their
    // answers wait above the high-water mark (backpressure): a peer that
    // never reads is slowed to a stop, its writes block, and the server
    // holds about one mark for it. caps keeps reading (the deadlock lab's
    // client needs it to): its replies pile up until the hard cap.
    let mut writers = Vec::new();
    let mut sockets = Vec::new();
    for plugin in ["caps", "echo", "reverse"] {
        let s = support::connect(server.tcp(plugin));
        s.set_write_timeout(Some(Duration::from_millis(500))).expect("write timeout");
        let mut w = s.try_clone().expect("clone");
        sockets.push(s);
        writers.push(thread::spawn(move || {
            let chunk: Vec<u8> = b"a few words to answer\n".repeat(3000);
            // Until the server aborts (reset, broken pipe), the writes block
            // (timed out), or 64 MiB went through.
            for _ in 0..1000 {
                if let Err(e) = w.write_all(&chunk) {
                    return Some(e.kind());
                }
            }
            None
        }));
    }
    let blocked = |k: &Option<io::ErrorKind>| matches!(k, Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut));
    for (w, plugin) in writers.into_iter().zip(["caps", "echo", "reverse"]) {
        let ended = w.join().expect("writer");
        match plugin {
            "caps" => assert!(ended.is_some() && !blocked(&ended), "caps: {ended:?}, not cut off"),
            _ => assert!(blocked(&ended), "{plugin}: {ended:?}; the writes should block (backpressure)"),
        }
    }
    let stats = server.stats();
    assert_eq!(stats.cap_aborts, 1, "caps only: {stats}");
    assert!(stats.backpressured >= 2, "{stats}");
    // What echo and reverse hold: about a high-water mark and a read each.
    assert!(stats.buffered <= 2 * (limits.high_water as u64 + 16 * 1024), "{stats}");
    let mut sockets = sockets.into_iter();
    let (_, end) = read_to_end(&mut sockets.next().expect("caps"));
    assert_ne!(end, End::Timeout, "an aborted connection is closed");
    drop(sockets);

    // chargen pauses at the high-water mark instead: memory stays at about
    // one mark, however long the peer does not read.
    let silent = support::connect(server.tcp("chargen"));
    let deadline = std::time::Instant::now() + WAIT;
    let mut stats = server.stats();
    while stats.buffered <= limits.high_water as u64 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        stats = server.stats();
    }
    assert!(stats.buffered > limits.high_water as u64, "chargen filled its buffer up to the mark: {stats}");
    // 16 pattern cycles (a batch) at most past the mark, never the hard cap.
    assert!(stats.buffered <= (limits.high_water + 16 * 95 * 74) as u64, "{stats}");
    let paused_at = stats.buffered;
    // Other clients come and go (the loop turns, chargen's 1 ms yield timer
    // would have fired many times): the paused generator produced nothing.
    for _ in 0..20 {
        support::good_tcp("echo", server.tcp("echo")).expect("echo served");
    }
    assert_eq!(server.stats().buffered, paused_at, "a paused generator produces nothing");
    support::good_tcp("chargen", server.tcp("chargen")).expect("another chargen reader is served");
    drop(silent);

    bystander.finish();
    let stats = check_clean(&server);
    assert_eq!(stats.cap_aborts, 1, "only caps's peer that never read: {stats}");
    server.stop();
}

#[test]
fn silent_clients_are_closed_by_the_idle_timeout() {
    let limits = ServeLimits { idle_timeout: Some(Duration::from_millis(300)), ..ServeLimits::default() };
    let server = AllPlugins::start(Config::default(), limits);
    let bystander = Bystander::start(&server.ports);
    let plugins = ["echo", "discard", "caps", "chat", "struct", "reverse", "upper", "json", "amf", "time"];
    let mut silent: Vec<(&str, TcpStream)> = plugins.iter().map(|p| (*p, connect(server.tcp(p)))).collect();
    // One that starts a request and stops: a partial line, half a record.
    let mut partial = connect(server.tcp("struct"));
    partial.write_all(&support::LAB[..5]).expect("write");
    silent.push(("struct, partial", partial));
    for (plugin, s) in &mut silent {
        let (got, end) = read_to_end(s);
        assert_ne!(end, End::Timeout, "{plugin}: the silent client was never closed (got {got:?})");
    }
    bystander.finish();
    let stats = check_clean(&server);
    assert!(stats.idle_closed >= silent.len() as u64, "{stats}");
    server.stop();
}

#[test]
fn a_burst_of_3000_connect_then_close_leaves_nothing_behind() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let bystander = Bystander::start(&server.ports);
    let targets: Vec<_> =
        ["echo", "chat", "reverse", "amf", "daytime", "chargen"].iter().map(|p| server.tcp(p)).collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let targets = targets.clone();
            thread::spawn(move || {
                for i in 0..750 {
                    let addr = targets[(i + t) % targets.len()];
                    let Ok(s) = TcpStream::connect_timeout(&addr, WAIT) else { continue };
                    if i % 2 == 0 {
                        reset(s);
                    } else {
                        drop(s);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("burst thread");
    }
    bystander.finish();
    let stats = check_clean(&server);
    assert!(stats.accepted >= 1000, "{stats}");
    server.stop();
}
