//! The write path: corking (the writes of one callback leave in one system
//! call), order across `write`, `write_bytes` and `write_to_each` however
//! the socket cuts them, and a fan-out whose slow member pays alone.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

use common::{connect, connect_small_rcvbuf, spawn_reactor};
use proptest::prelude::*;
use twirl::bytes::Bytes;
use twirl::testing::Harness;
use twirl::{Addr, Config, ConnId, Context, Disconnect, Limits, Protocol, Transport};

/// Answers each read with a 4-byte length and the payload, written apart
/// (as a length-prefixed protocol without corking would pay two system
/// calls for).
struct Prefixed;
impl Protocol for Prefixed {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(&(data.len() as u32).to_be_bytes());
        t.write(data);
    }
}

#[test]
fn two_writes_in_one_callback_are_one_system_call() {
    let mut h = Harness::new(Prefixed);
    h.connect();
    let before = h.cx.stats().writes;
    h.feed(b"hello");
    assert_eq!(h.take_output(), b"\0\0\0\x05hello");
    let stats = h.cx.stats();
    assert_eq!(stats.writes - before, 1, "prefix and payload in one write");
    assert_eq!(stats.vectored_writes, 0, "small pieces were joined in one buffer");
    // A large payload goes at once, with the corked prefix before it.
    let big = vec![7u8; 4096];
    h.feed(&big);
    let out = h.take_output();
    assert_eq!(&out[..4], &(big.len() as u32).to_be_bytes());
    assert_eq!(&out[4..], &big[..]);
    assert_eq!(h.cx.stats().writes - before, 2);
    assert_eq!(h.cx.stats().vectored_writes, 1, "the prefix and the payload, each from where it lies");
}

/// One write into an empty buffer is still one plain write, with no copy
/// on the way: nothing is left buffered and no vectored write is needed.
#[test]
fn a_single_write_is_a_plain_write() {
    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
            t.write(data);
        }
    }
    let mut h = Harness::new(Echo);
    h.connect();
    h.feed(b"abc");
    h.feed(&[1u8; 8192]);
    assert_eq!(h.take_output().len(), 3 + 8192);
    assert_eq!(h.cx.stats().writes, 2);
    assert_eq!(h.cx.stats().vectored_writes, 0);
}

/// Corking over a real socket: a protocol answering each request with three
/// small writes costs one system call per request.
#[test]
fn corking_on_a_socket_sends_one_write_per_callback() {
    struct ThreePieces;
    impl Protocol for ThreePieces {
        fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
            t.write(b"<");
            t.write(data);
            t.write(b">\n");
        }
    }
    let r = spawn_reactor(Config::default(), |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| ThreePieces).expect("listen").addr
    });
    let mut s = connect(r.value);
    s.set_nodelay(true).expect("nodelay");
    let before = r.call(|r| r.stats().writes);
    for i in 0..50u32 {
        let msg = format!("m{i}");
        s.write_all(msg.as_bytes()).expect("write");
        let want = format!("<{msg}>\n");
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).expect("reply");
        assert_eq!(got, want.as_bytes());
    }
    let writes = r.call(|r| r.stats().writes) - before;
    assert_eq!(writes, 50, "one system call per request, not three");
    r.stop();
}

/// A step of a writer: how it hands bytes to the transport.
#[derive(Clone, Debug)]
enum Step {
    Borrowed(Vec<u8>),
    Owned(Vec<u8>),
    /// `write_to_each` with this connection among the ids.
    FanOut(Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    let bytes =
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(any::<u8>(), 900..3000),];
    prop_oneof![
        bytes.clone().prop_map(Step::Borrowed),
        bytes.clone().prop_map(Step::Owned),
        bytes.prop_map(Step::FanOut),
    ]
}

/// Performs its steps when fed a byte naming how many to take.
struct Writer {
    steps: Vec<Step>,
    next: usize,
}
impl Protocol for Writer {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        for &n in data {
            for _ in 0..n {
                let Some(s) = self.steps.get(self.next) else { return };
                self.next += 1;
                match s {
                    Step::Borrowed(b) => t.write(b),
                    Step::Owned(b) => t.write_bytes(Bytes::from(b.clone())),
                    Step::FanOut(b) => {
                        let me = t.id();
                        let others = [ConnId::from_raw(999_999), me];
                        t.write_to_each(&others, &Bytes::from(b.clone()));
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever mix of write kinds, callbacks and partial writes, the peer
    /// reads the bytes in the order they were written.
    #[test]
    fn order_holds_across_write_kinds_under_partial_writes(
        steps in proptest::collection::vec(step(), 1..40),
        batches in proptest::collection::vec(1u8..5, 1..40),
        drains in proptest::collection::vec(1usize..5000, 1..60),
    ) {
        let want: Vec<u8> = steps.iter().flat_map(|s| match s {
            Step::Borrowed(b) | Step::Owned(b) | Step::FanOut(b) => b.clone(),
        }).collect();
        let limits = Limits { high_water: 4096, low_water: 1024, hard_cap: 1 << 20 };
        let mut h = Harness::with_limits(Writer { steps, next: 0 }, limits);
        h.set_peer_reading(false);
        h.connect();
        let mut out = Vec::new();
        let mut drains = drains.into_iter().cycle();
        for b in batches {
            h.feed(&[b]);
            h.drain(drains.next().unwrap_or(1));
            out.extend(h.take_output());
        }
        h.set_peer_reading(true);
        h.feed(&[255]);
        out.extend(h.take_output());
        prop_assert_eq!(h.buffered_len(), 0);
        prop_assert_eq!(out, want);
    }
}

/// A room: every line from anyone goes to every member (the sender too),
/// as one shared `Bytes`. A member is welcomed once it has joined.
type Room = Rc<RefCell<Vec<ConnId>>>;

struct Member(Room);
impl Protocol for Member {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.0.borrow_mut().push(t.id());
        t.write(WELCOME);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let members = self.0.borrow().clone();
        t.write_to_each(&members, &Bytes::copy_from_slice(data));
    }
    fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) {
        // Ids are never reused: a departed member's id simply misses, so
        // the room needs no cleanup for this test.
    }
}

const WELCOME: &[u8] = b"welcome\n";

fn joined(addr: std::net::SocketAddr, small_rcvbuf: bool) -> std::net::TcpStream {
    let mut s = if small_rcvbuf { connect_small_rcvbuf(addr) } else { connect(addr) };
    let mut w = [0u8; WELCOME.len()];
    s.read_exact(&mut w).expect("welcome");
    assert_eq!(w, WELCOME);
    s
}

/// A member that never reads is cut off at its own hard cap; the members
/// that read get every byte, in order, meanwhile and after.
#[test]
fn fan_out_with_a_slow_member_hurts_only_that_member() {
    let limits = Limits { high_water: 64 * 1024, low_water: 16 * 1024, hard_cap: 1024 * 1024 };
    let r = spawn_reactor(Config { limits, ..Config::default() }, |r| {
        let room = Room::default();
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| Member(room.clone())).expect("listen").addr
    });
    let addr = r.value;
    let mut fast: Vec<_> = (0..3).map(|_| joined(addr, false)).collect();
    let slow = joined(addr, true);
    let mut sender = joined(addr, false);

    // 8 MiB in 8 KiB lines: eight times the slow member's hard cap.
    let line = |i: u32| -> Vec<u8> {
        let mut l = vec![b'a' + (i % 26) as u8; 8192];
        l[..4].copy_from_slice(&i.to_be_bytes());
        l
    };
    let total_lines = 1024u32;
    // Each reader counts the lines it has read; the sender never gets more
    // than a window ahead of the slowest reader, so a reader slowed by a
    // loaded machine is never pushed to its cap (only the member that does
    // not read at all is).
    let progress: Vec<_> = (0..4).map(|_| std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0))).collect();
    let reader = |mut s: std::net::TcpStream, read: std::sync::Arc<std::sync::atomic::AtomicU32>| {
        std::thread::spawn(move || {
            let mut got = vec![0u8; 8192];
            for i in 0..total_lines {
                s.read_exact(&mut got).expect("fast member reads every line");
                assert_eq!(got, line(i), "line {i} intact and in order");
                read.store(i + 1, std::sync::atomic::Ordering::Release);
            }
            s
        })
    };
    let readers: Vec<_> = fast.drain(..).zip(&progress).map(|(s, p)| reader(s, p.clone())).collect();
    let sender_reader = {
        let s = sender.try_clone().expect("clone");
        reader(s, progress[3].clone())
    };
    const WINDOW: u32 = 32; // 256 KiB, a quarter of the cap
    for i in 0..total_lines {
        let t0 = std::time::Instant::now();
        while progress.iter().any(|p| p.load(std::sync::atomic::Ordering::Acquire) + WINDOW < i) {
            assert!(t0.elapsed() < common::TIMEOUT, "the readers stopped at line {i}");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        sender.write_all(&line(i)).expect("send");
    }
    let still_open: Vec<_> = readers.into_iter().map(|h| h.join().expect("fast member got everything")).collect();
    sender_reader.join().expect("the sender got its own lines");
    let stats = r.call(|r| r.stats());
    assert_eq!(stats.cap_aborts, 1, "the slow member was cut off at its cap: {stats}");
    assert_eq!(stats.open, 4, "the others are still connected");
    drop((slow, still_open));
    r.stop();
}
