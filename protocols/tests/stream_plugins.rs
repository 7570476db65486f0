//! chat, caps, discard and chargen end to end over loopback. The binary's
//! caps and discard clients are tested with the binary, in
//! `protocols/cli/tests/stream_clients.rs`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use support::{AllPlugins, End, WAIT, connect, read_to_end};
use twirl::endpoint::ServerEndpoint;
use twirl::{Config, Limits, Reactor};
use twirl_protocols::serve::{self, ServeLimits, Spec};

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("a line in time");
    s
}

#[test]
fn chat_relays_lines_and_announces_joins_and_leaves() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let addr = server.tcp("chat");
    let mut a = BufReader::new(connect(addr));
    assert!(line(&mut a).starts_with("* you are 127.0.0.1:"), "greeting");
    let b = connect(addr);
    let b_addr = b.local_addr().unwrap();
    let mut b = BufReader::new(b);
    assert!(line(&mut b).ends_with("; 1 other here\n"));
    assert_eq!(line(&mut a), format!("* {b_addr} joined\n"));
    let c = connect(addr);
    let c_addr = c.local_addr().unwrap();
    let mut c = BufReader::new(c);
    line(&mut c);
    assert_eq!(line(&mut a), format!("* {c_addr} joined\n"));
    assert_eq!(line(&mut b), format!("* {c_addr} joined\n"));

    b.get_mut().write_all(b"hello from b\r\n").unwrap();
    assert_eq!(line(&mut a), format!("[{b_addr}] hello from b\n"));
    assert_eq!(line(&mut c), format!("[{b_addr}] hello from b\n"));

    drop(c);
    assert_eq!(line(&mut a), format!("* {c_addr} left\n"));
    assert_eq!(line(&mut b), format!("* {c_addr} left\n"));
    a.get_mut().write_all(b"still here\n").unwrap();
    assert_eq!(line(&mut b), format!("[{}] still here\n", a.get_ref().local_addr().unwrap()));
    server.stop();
}

#[test]
fn a_burst_of_chat_joins_costs_the_room_o1_per_member_each() {
    // Issue #12: each of 600 arrivals told to everyone would be 180,000
    // notices; the room spends a bounded number of writes a second on them
    // and sums up the rest.
    const JOINS: usize = 600;
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let addr = server.tcp("chat");
    let mut first = BufReader::new(connect(addr));
    assert!(line(&mut first).starts_with("* you are"), "greeting");
    let before = server.stats().bytes_out;
    let t0 = std::time::Instant::now();
    let members: Vec<TcpStream> = (0..JOINS).map(|_| connect(addr)).collect();
    // The first member hears of every arrival, one by one or summed up.
    let mut heard = 0;
    let mut lines = 0;
    while heard < JOINS {
        let l = line(&mut first);
        lines += 1;
        if l.ends_with(" joined\n") {
            heard += l
                .strip_prefix("* ")
                .and_then(|r| r.split(' ').next()?.parse().ok())
                .filter(|_| l.contains(" more "))
                .unwrap_or(1);
        }
        assert!(lines <= JOINS, "more lines than arrivals: {l}");
    }
    let notices = server.stats().bytes_out - before;
    // The budget's bound for the seconds the burst took (notices of at most
    // 32 bytes, plus a welcome and a share of the summaries per member);
    // without it, about JOINS² / 2 notices of ~26 bytes (4.7 MB).
    let seconds = t0.elapsed().as_secs() + 1;
    let bound = seconds as usize * twirl_protocols::plugins::chat::NOTICE_WRITES_PER_SEC * 32 + JOINS * 100;
    assert!((notices as usize) <= bound, "{notices} bytes of notices for {JOINS} arrivals in {seconds} s");
    drop(members);
    server.stop();
}

#[test]
fn chat_disconnects_a_member_that_stops_reading_and_keeps_serving_the_rest() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let addr = server.tcp("chat");
    // The stuck member reads nothing and keeps a small receive window, so its
    // backlog builds in the server.
    let stuck = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stuck.set_recv_buffer_size(4096).unwrap();
    stuck.connect(&addr.into()).unwrap();
    let mut stuck: TcpStream = stuck.into();
    stuck.set_read_timeout(Some(WAIT)).unwrap();
    let talker = connect(addr);
    let mut talker_r = BufReader::new(talker.try_clone().unwrap());
    line(&mut talker_r);
    let listener = connect(addr);
    let mut listener = BufReader::new(listener);
    line(&mut listener);
    line(&mut talker_r); // the listener joined

    // Enough lines to fill the kernel's send buffer towards the stuck member
    // (autotuned up to tcp_wmem's maximum) and then the 256 KiB backlog cap.
    let chunk = format!("{}\n", "x".repeat(1000));
    let lines = (kernel_send_buffer_max() + 2 * twirl_protocols::plugins::chat::BACKLOG_CAP) / chunk.len() + 256;
    let mut t = talker;
    let sender = std::thread::spawn(move || {
        for _ in 0..lines {
            t.write_all(chunk.as_bytes()).unwrap();
        }
        t
    });
    // The listener reads everything it is sent; among it, the stuck one leaving.
    let mut left = false;
    for _ in 0..lines + 8 {
        let l = line(&mut listener);
        if l.ends_with(" left\n") {
            left = true;
            break;
        }
    }
    assert!(left, "the member that stopped reading was disconnected");
    let _t = sender.join().unwrap();
    let stats = server.stats();
    assert!(stats.buffered < 1 << 20, "server memory stayed bounded: {} B buffered", stats.buffered);
    assert!(stats.peak_buffered < 2 << 20, "and never grew far past the cap: peak {} B", stats.peak_buffered);
    // The stuck socket finds itself reset once it looks.
    let (_, end) = read_to_end(&mut stuck);
    assert_ne!(end, End::Timeout, "the stuck member's connection is closed");
    server.stop();
}

/// Members whose sockets fill fall behind and catch up from the room's one
/// log when they read again: every line, in order, while the server's own
/// buffers hold a line or a pull's worth per member, not their backlog.
#[test]
fn chat_members_that_fall_behind_catch_up_from_one_shared_log() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let addr = server.tcp("chat");
    let slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            // A small window in small segments: the kernel then holds about
            // 100 KB for the member, not megabytes, and the rest is the room's.
            s.set_recv_buffer_size(4096).unwrap();
            s.set_tcp_mss(1460).unwrap();
            s.connect(&addr.into()).unwrap();
            let s: TcpStream = s.into();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s
        })
        .collect();
    let mut slow: Vec<BufReader<TcpStream>> = slow.into_iter().map(BufReader::new).collect();
    for (i, r) in slow.iter_mut().enumerate() {
        assert!(line(r).starts_with("* you are"));
        // Each hears the ones after it join.
        for _ in i + 1..3 {
            assert!(line(r).ends_with(" joined\n"));
        }
    }
    let mut talker = connect(addr);
    let mut talker_r = BufReader::new(talker.try_clone().unwrap());
    line(&mut talker_r);
    for r in &mut slow {
        assert!(line(r).ends_with(" joined\n"), "the talker's arrival");
    }
    // 250 KB: more than the kernel holds for such a member, less than the
    // backlog cap on top of it.
    let lines = 250;
    let body = |i: usize| format!("{i:05} {}", "y".repeat(994));
    let sender = std::thread::spawn(move || {
        for i in 0..lines {
            talker.write_all(format!("{}\n", body(i)).as_bytes()).unwrap();
        }
        talker
    });
    let _talker = sender.join().unwrap();
    // Every line went to the kernel or the room's log before anyone read.
    let deadline = std::time::Instant::now() + WAIT;
    while server.stats().bytes_in < (lines * 1001) as u64 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = server.stats();
    assert!(
        stats.peak_buffered < 128 * 1024,
        "the members' own buffers held {} B at most: one line or one pull each, the rest in the shared log",
        stats.peak_buffered
    );
    for r in &mut slow {
        for i in 0..lines {
            let l = line(r);
            assert!(l.ends_with(&format!("] {}\n", body(i))), "line {i} in order, got {:?}", &l[..l.len().min(40)]);
        }
    }
    server.stop();
}

/// The most the kernel may buffer for one TCP sender (tcp_wmem's maximum).
fn kernel_send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(4 << 20)
}

#[test]
fn caps_serves_the_handouts_deadlock_client_without_deadlocking() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let addr = server.tcp("caps");
    // tcp_deadlock.py: send everything first, read afterwards.
    let message = b"capitalize this!".repeat(1_000_000); // 16,000,000 bytes
    let mut s = connect(addr);
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&message).expect("the server keeps reading, so sending never stalls for good");
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::with_capacity(message.len());
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), message.len());
    assert!(back.chunks(16).all(|c| c == b"CAPITALIZE THIS!"), "every byte uppercased, in order");
    assert!(server.stats().peak_buffered > 0, "the server buffered the echo meanwhile");
    server.stop();
}

#[test]
fn chargen_streams_the_rfc_pattern_and_a_slow_reader_costs_one_high_water_mark() {
    let limits = Limits { high_water: 64 * 1024, low_water: 16 * 1024, hard_cap: 64 << 20 };
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut r = Reactor::with_config(Config { limits, ..Config::default() }).unwrap();
        let spec = Spec::new(&twirl_protocols::plugins::chargen::PLUGIN, "tcp:0".parse().unwrap());
        let bound = serve::bind(&mut r, &spec).unwrap();
        tx.send((bound, r.handle())).unwrap();
        r.run().unwrap();
        r.stats()
    });
    let (bound, handle) = rx.recv_timeout(WAIT).unwrap();
    let ServerEndpoint::Tcp(addr) = bound.addr else { panic!("{bound:?}") };

    // A slow reader: a small receive window, then a pause, then a little reading.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(8192).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut first = vec![0u8; 3 * 74];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first[..74], &twirl_protocols::plugins::chargen::line(0));
    assert_eq!(&first[74..148], &twirl_protocols::plugins::chargen::line(1));
    // The server fills its buffer to the mark and stops; reading a few MB
    // later, every line is still in order.
    std::thread::sleep(Duration::from_millis(300));
    let mut rest = vec![0u8; 2 << 20];
    s.read_exact(&mut rest).unwrap();
    let start = 3 * 74;
    for (i, l) in rest.chunks_exact(74).take(1000).enumerate() {
        assert_eq!(l, &twirl_protocols::plugins::chargen::line(3 + i), "line {} of the stream", start / 74 + i);
    }
    drop(s);
    handle.stop();
    let stats = thread.join().unwrap();
    assert!(
        stats.peak_buffered <= (limits.high_water + 16 * 7030) as u64,
        "chargen buffered {} B at most for a slow reader (high water {})",
        stats.peak_buffered,
        limits.high_water
    );
}
