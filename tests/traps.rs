//! The known traps of an edge-triggered reactor, each pinned by a test named
//! after it. (The others have theirs elsewhere: `reused_slot_never_gets_a_
//! dead_connections_event` in lifecycle.rs, `udp_truncated_datagram_is_refused`
//! in udp.rs, `accept_under_emfile_neither_spins_nor_dies_and_recovers` in
//! protocols/tests/cli.rs.)

mod common;

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use common::{Echo, TIMEOUT, connect, pattern, spawn_reactor};
use twirl::{Addr, ClientFactory, Config, Context, Disconnect, Protocol, Transport};

/// Edge-triggered readiness reports a socket once. A connection that stops
/// reading because its per-turn budget ran out, with data still queued, gets
/// no second event: it must be continued next turn by the reactor itself.
#[test]
fn trap_budget_spent_before_wouldblock_is_continued_next_turn() {
    let config = Config { read_buffer: 1024, read_budget: 2048, write_budget: 4096, ..Config::default() };
    let running =
        spawn_reactor(config, |r| r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo).unwrap().addr);
    let mut s = connect(running.value);
    let data = pattern(256 * 1024, 7);
    let writer = {
        let mut w = s.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || w.write_all(&data))
    };
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).expect("every byte echoed although each turn reads at most 2 KiB");
    writer.join().unwrap().unwrap();
    assert!(back == data, "echo differs");
    let turns = running.call(|r| r.stats().turns);
    assert!(turns >= 64, "256 KiB at 2 KiB a turn needs many turns, saw {turns}");
    running.stop();
}

/// A non-blocking connect returns at once; it is complete only when the
/// socket turns writable with no pending error and a peer address. Taking
/// the first writable event as success reports refused connections as made.
#[test]
fn trap_nonblocking_connect_completes_only_when_writable_and_error_free() {
    #[derive(Debug, PartialEq)]
    enum Seen {
        Made(Addr),
        Failed(io::ErrorKind),
    }
    struct Probe(mpsc::Sender<Seen>);
    struct Quiet;
    impl Protocol for Quiet {
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.lose_connection();
        }
    }
    impl ClientFactory for Probe {
        fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
            let _ = self.0.send(Seen::Made(peer.clone()));
            Box::new(Quiet)
        }
        fn connection_failed(&mut self, e: &io::Error, _: &mut dyn Context) -> Option<Duration> {
            let _ = self.0.send(Seen::Failed(e.kind()));
            None
        }
        fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) -> Option<Duration> {
            None
        }
    }

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // dropped: nobody listens
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_addr = open.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let running = spawn_reactor(Config::default(), move |r| {
        r.connect_tcp(closed, Probe(tx.clone())).unwrap();
        r.connect_tcp(open_addr, Probe(tx)).unwrap();
    });
    let mut seen = vec![rx.recv_timeout(TIMEOUT).unwrap(), rx.recv_timeout(TIMEOUT).unwrap()];
    seen.sort_by_key(|s| matches!(s, Seen::Made(_)));
    assert_eq!(seen, vec![Seen::Failed(io::ErrorKind::ConnectionRefused), Seen::Made(Addr::Inet(open_addr))]);
    drop(open);
    running.stop();
}
