//! UDP end to end: echo, and a datagram larger than the receive limit.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;

use common::{TIMEOUT, pattern, spawn_reactor};
use twirl::{Config, Context, DatagramProtocol, DatagramTransport};

#[derive(Debug, PartialEq)]
enum Event {
    Started,
    Received(usize),
    Truncated(usize),
    Stopped,
}

/// Echoes every datagram to its sender and reports what happened.
struct UdpEcho {
    events: mpsc::Sender<Event>,
}

impl DatagramProtocol for UdpEcho {
    fn started(&mut self, _t: &mut dyn DatagramTransport) {
        let _ = self.events.send(Event::Started);
    }
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        let _ = self.events.send(Event::Received(data.len()));
        assert!(t.send_to(data, from), "echo queued or sent");
    }
    fn datagram_truncated(&mut self, len: usize, _from: SocketAddr, _t: &mut dyn DatagramTransport) {
        let _ = self.events.send(Event::Truncated(len));
    }
    fn stopped(&mut self, _cx: &mut dyn Context) {
        let _ = self.events.send(Event::Stopped);
    }
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s
}

#[test]
fn udp_echo() {
    let (tx, rx) = mpsc::channel();
    let server = spawn_reactor(Config::default(), move |r| {
        r.listen_udp("127.0.0.1:0".parse().unwrap(), UdpEcho { events: tx }).unwrap().addr
    });
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), Event::Started);
    let sock = client();
    let mut buf = vec![0u8; 65_536];
    // One at a time: loopback does not lose datagrams, but it need not keep
    // a burst in order either, so each reply is awaited before the next send.
    for (i, len) in [1usize, 100, 1400, 9000, 65_507].into_iter().enumerate() {
        let msg = pattern(len, i as u64 + 10);
        sock.send_to(&msg, server.value).expect("send");
        let (n, from) = sock.recv_from(&mut buf).expect("echo reply");
        assert_eq!(from, server.value);
        assert_eq!(n, len, "datagram {i}: whole datagram back");
        assert!(buf[..n] == msg[..], "datagram {i}: content");
        assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), Event::Received(len));
    }
    // Two clients interleaved each get their own replies.
    let other = client();
    sock.send_to(b"from one", server.value).unwrap();
    other.send_to(b"from two", server.value).unwrap();
    let n = other.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from two");
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from one");

    let stats = server.call(|r| r.stats());
    assert_eq!(stats.datagrams_in, 7, "{stats}");
    assert_eq!(stats.datagrams_out, 7, "{stats}");
    server.stop();
    let rest: Vec<Event> = rx.try_iter().collect();
    assert_eq!(rest.last(), Some(&Event::Stopped), "stopped() on reactor stop: {rest:?}");
}

#[test]
fn udp_truncated_datagram_is_refused() {
    let (tx, rx) = mpsc::channel();
    let config = Config { max_datagram: 1024, ..Default::default() };
    let server = spawn_reactor(config, move |r| {
        r.listen_udp("127.0.0.1:0".parse().unwrap(), UdpEcho { events: tx }).unwrap().addr
    });
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), Event::Started);
    let sock = client();

    sock.send_to(&pattern(2000, 1), server.value).expect("send big");
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), Event::Truncated(2000));

    // At the limit is fine; one past it is not.
    let mut buf = [0u8; 2048];
    sock.send_to(&pattern(1024, 2), server.value).expect("send at limit");
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), Event::Received(1024));
    assert_eq!(sock.recv(&mut buf).expect("echo of the 1024-byte datagram"), 1024);
    sock.send_to(&pattern(1025, 3), server.value).expect("send one past");
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), Event::Truncated(1025));

    // A small one afterwards is echoed; nothing of the refused ones was.
    sock.send_to(b"small", server.value).expect("send small");
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), Event::Received(5));
    let n = sock.recv(&mut buf).expect("echo of the small datagram");
    assert_eq!(&buf[..n], b"small", "the refused datagrams were not echoed");
    assert!(rx.try_recv().is_err());

    let stats = server.call(|r| r.stats());
    assert_eq!(stats.datagrams_in, 2, "{stats}");
    assert_eq!(stats.datagrams_dropped, 2, "{stats}");
    server.stop();
}
