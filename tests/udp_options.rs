//! UDP socket options through the transport: broadcast, and multicast
//! membership. No datagram is sent to a broadcast or multicast address (the
//! test network is loopback only): the kernel's answers to the option calls
//! are what is checked, including its refusal to leave a group never joined.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc;

use common::{TIMEOUT, spawn_reactor};
use twirl::{Config, DatagramProtocol, DatagramTransport};

/// Runs the option calls when started and reports each result.
struct Options(mpsc::Sender<Vec<(&'static str, bool)>>);

impl DatagramProtocol for Options {
    fn started(&mut self, t: &mut dyn DatagramTransport) {
        let group = IpAddr::V4(Ipv4Addr::new(239, 255, 42, 7));
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let results = vec![
            ("broadcast on", t.set_broadcast(true).is_ok()),
            ("broadcast off", t.set_broadcast(false).is_ok()),
            ("leave before join", t.leave_multicast(group, lo, 0).is_ok()),
            ("join", t.join_multicast(group, lo, 0).is_ok()),
            ("join twice", t.join_multicast(group, lo, 0).is_ok()),
            ("leave", t.leave_multicast(group, lo, 0).is_ok()),
            ("leave again", t.leave_multicast(group, lo, 0).is_ok()),
        ];
        let _ = self.0.send(results);
    }
    fn datagram_received(&mut self, _: &[u8], _: SocketAddr, _: &mut dyn DatagramTransport) {}
}

#[test]
fn broadcast_and_multicast_membership_reach_the_kernel() {
    let (tx, rx) = mpsc::channel();
    let running = spawn_reactor(Config::default(), move |r| {
        r.listen_udp("127.0.0.1:0".parse().unwrap(), Options(tx)).expect("bind").addr
    });
    let results = rx.recv_timeout(TIMEOUT).expect("started ran");
    let expect = [
        ("broadcast on", true),
        ("broadcast off", true),
        ("leave before join", false),
        ("join", true),
        ("join twice", false),
        ("leave", true),
        ("leave again", false),
    ];
    assert_eq!(results, expect);
    running.stop();
}
