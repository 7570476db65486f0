//! Listener control: `listen_*` return an id; `stop_listening` closes a
//! TCP or Unix listener (the connections it accepted stay) or a UDP socket
//! (its protocol hears `stopped`, and the port is free again), from the
//! reactor, from a callback, or, for a UDP socket, from its own protocol.
//! And UDP sockets opened from a callback (`Context::connect_udp`), by
//! address and by host name.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc;

use common::{Echo, TIMEOUT, TempDir, connect, round_trip, spawn_reactor};
use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, Config, Context, DatagramProtocol, DatagramTransport, ListenerId, Protocol, Reactor, Transport};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A UDP echo that reports `stopped`.
struct UdpEcho(mpsc::Sender<&'static str>);
impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, d: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        t.send_to(d, from);
    }
    fn stopped(&mut self, _: &mut dyn Context) {
        let _ = self.0.send("stopped");
    }
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind(loopback()).expect("bind client");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s
}

fn udp_round_trip(s: &UdpSocket, to: SocketAddr, data: &[u8]) -> Vec<u8> {
    s.send_to(data, to).expect("send");
    let mut buf = [0u8; 1024];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    buf[..n].to_vec()
}

#[test]
fn stopping_a_tcp_listener_refuses_new_connections_and_keeps_the_old_ones() {
    let r = spawn_reactor(Config::default(), |r| r.listen_tcp(loopback(), |_: &Addr| Echo).expect("listen"));
    let port = r.value.clone();
    let mut old = connect(port.addr);
    old.write_all(b"before").unwrap();
    let mut buf = [0u8; 6];
    old.read_exact(&mut buf).unwrap();

    let id = port.id;
    assert!(r.call(move |r| r.stop_listening(id)), "the listener was open");
    assert_eq!(
        TcpStream::connect(port.addr).map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "nobody listens on {} any more",
        port.addr
    );
    old.write_all(b"after").unwrap();
    let mut buf = [0u8; 5];
    old.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after", "an accepted connection outlives its listener");
    assert!(!r.call(move |r| r.stop_listening(id)), "a closed listener cannot be closed twice");
    drop(old);
    r.stop();
}

#[test]
fn stopping_a_unix_listener_removes_its_socket_file() {
    let dir = TempDir::new("unlisten");
    let path = dir.0.join("echo.sock");
    let p = path.clone();
    let r = spawn_reactor(Config::default(), move |r| r.listen_unix(&p, |_: &Addr| Echo).expect("listen"));
    assert_eq!(r.value.addr, path);
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let id = r.value.id;
    assert!(r.call(move |r| r.stop_listening(id)));
    assert!(!path.exists(), "the socket file is removed with the listener");
    s.write_all(b"y").unwrap();
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"y", "the accepted connection stays");
    drop(s);
    r.stop();
}

#[test]
fn stopping_a_udp_socket_tells_its_protocol_and_frees_the_port() {
    let (tx, rx) = mpsc::channel();
    let r = spawn_reactor(Config::default(), move |r| r.listen_udp(loopback(), UdpEcho(tx)).expect("bind"));
    let port = r.value.clone();
    let client = udp_client();
    assert_eq!(udp_round_trip(&client, port.addr, b"ping"), b"ping");
    let id = port.id;
    assert!(r.call(move |r| r.stop_listening(id)));
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok("stopped"));
    // The port is free: this process can bind it again.
    UdpSocket::bind(port.addr).expect("the port is free once the socket is closed");
    r.stop();
}

#[test]
fn an_id_that_names_a_connection_does_not_stop_it() {
    let r = spawn_reactor(Config::default(), |r| r.listen_tcp(loopback(), |_: &Addr| Echo).expect("listen"));
    let addr = r.value.addr;
    assert_eq!(round_trip(addr, b"one"), b"one");
    // Raw ids of live connections are not listeners: a stale or wrong id
    // misses. (A connection's id is never a listener's.)
    let bogus = ListenerId::from_raw(r.value.id.as_u64() + 1);
    assert!(!r.call(move |r| r.stop_listening(bogus)));
    assert_eq!(round_trip(addr, b"two"), b"two", "still listening");
    r.stop();
}

/// A connection that closes the door behind it: on `close`, it stops its
/// own listener from its callback.
struct Doorman {
    door: std::rc::Rc<std::cell::Cell<Option<ListenerId>>>,
}
impl Protocol for Doorman {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if data.starts_with(b"close") {
            let closed = self.door.get().is_some_and(|id| t.stop_listening(id));
            t.write(if closed { b"closed\n" } else { b"not closed\n" });
        } else {
            t.write(data);
        }
    }
}

#[test]
fn a_protocol_can_stop_its_listener() {
    let r = spawn_reactor(Config::default(), |r: &mut Reactor| {
        let door = std::rc::Rc::new(std::cell::Cell::new(None));
        let d = door.clone();
        let port = r.listen_tcp(loopback(), move |_: &Addr| Doorman { door: d.clone() }).expect("listen");
        door.set(Some(port.id));
        port.addr
    });
    let mut s = connect(r.value);
    s.write_all(b"close").unwrap();
    let mut line = [0u8; 7];
    s.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"closed\n");
    assert_eq!(TcpStream::connect(r.value).map(|_| ()).map_err(|e| e.kind()), Err(ErrorKind::ConnectionRefused));
    s.write_all(b"still here").unwrap();
    let mut rest = [0u8; 10];
    s.read_exact(&mut rest).unwrap();
    assert_eq!(&rest, b"still here");
    drop(s);
    r.stop();
}

/// Answers one datagram, then closes its own socket.
struct OneShot(mpsc::Sender<&'static str>);
impl DatagramProtocol for OneShot {
    fn datagram_received(&mut self, d: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        t.send_to(d, from);
        t.close();
    }
    fn stopped(&mut self, _: &mut dyn Context) {
        let _ = self.0.send("stopped");
    }
}

#[test]
fn a_udp_protocol_can_close_its_own_socket_after_answering() {
    let (tx, rx) = mpsc::channel();
    let r = spawn_reactor(Config::default(), move |r| r.listen_udp(loopback(), OneShot(tx)).expect("bind"));
    let addr = r.value.addr;
    let client = udp_client();
    // Two datagrams in one read: only the first is answered.
    client.send_to(b"first", addr).unwrap();
    client.send_to(b"second", addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).expect("the first is answered");
    assert_eq!(&buf[..n], b"first");
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok("stopped"));
    client.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
    assert!(client.recv_from(&mut buf).is_err(), "nothing answers after the socket closed");
    UdpSocket::bind(addr).expect("the port is free");
    r.stop();
}

/// What a UDP client opened from a callback saw.
#[derive(Debug, PartialEq)]
enum Heard {
    Started,
    Reply(Vec<u8>),
    Stopped,
}

/// Opened with `Context::connect_udp`: asks its peer once started, reports
/// the answer, then closes its socket.
struct Asker {
    peer: SocketAddr,
    heard: mpsc::Sender<Heard>,
}
impl DatagramProtocol for Asker {
    fn started(&mut self, t: &mut dyn DatagramTransport) {
        let _ = self.heard.send(Heard::Started);
        t.send_to(b"are you there?", self.peer);
    }
    fn datagram_received(&mut self, d: &[u8], _: SocketAddr, t: &mut dyn DatagramTransport) {
        let _ = self.heard.send(Heard::Reply(d.to_vec()));
        t.close();
    }
    fn stopped(&mut self, _: &mut dyn Context) {
        let _ = self.heard.send(Heard::Stopped);
    }
}

/// On any bytes, opens a UDP socket to `to` from its callback and answers
/// `opened` or the error.
struct UdpOpener {
    to: ClientEndpoint,
    peer: SocketAddr,
    heard: mpsc::Sender<Heard>,
}
impl Protocol for UdpOpener {
    fn data_received(&mut self, _: &[u8], t: &mut dyn Transport) {
        let asker = Asker { peer: self.peer, heard: self.heard.clone() };
        match t.connect_udp(&self.to, Box::new(asker)) {
            Ok(_) => t.write(b"opened"),
            Err(e) => t.write(format!("error {e}").as_bytes()),
        }
    }
}

/// Serves a UDP echo at `echo_at`, opens a socket to `to(echo address)`
/// from a TCP connection's callback, and returns what its protocol heard.
fn open_udp_from_a_callback(echo_at: SocketAddr, to: impl FnOnce(SocketAddr) -> ClientEndpoint) -> Vec<Heard> {
    let (tx, rx) = mpsc::channel();
    let (echo_tx, _echo_rx) = mpsc::channel();
    let r = spawn_reactor(Config::default(), move |r| r.listen_udp(echo_at, UdpEcho(echo_tx)).expect("bind").addr);
    let (peer, to) = (r.value, to(r.value));
    let opener = r.call(move |r| {
        let make = move |_: &Addr| UdpOpener { to: to.clone(), peer, heard: tx.clone() };
        r.listen_tcp(loopback(), make).expect("listen").addr
    });
    let mut s = connect(opener);
    s.write_all(b"go").unwrap();
    let mut line = [0u8; 6];
    s.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"opened", "connect_udp gave an id");
    let mut heard = Vec::new();
    while heard.last() != Some(&Heard::Stopped) && heard.len() < 4 {
        match rx.recv_timeout(TIMEOUT) {
            Ok(h) => heard.push(h),
            Err(e) => panic!("after {heard:?}: {e}"),
        }
    }
    drop(s);
    r.stop();
    heard
}

fn answered() -> Vec<Heard> {
    vec![Heard::Started, Heard::Reply(b"are you there?".to_vec()), Heard::Stopped]
}

#[test]
fn connect_udp_by_address_from_a_callback() {
    let heard = open_udp_from_a_callback(loopback(), |echo| ClientEndpoint::Udp(echo.ip().to_string(), echo.port()));
    assert_eq!(heard, answered());
}

#[test]
fn connect_udp_by_host_name_from_a_callback() {
    use std::net::ToSocketAddrs;
    // Serve where the name leads (::1 or 127.0.0.1, as this machine says).
    let Some(first) = ("localhost", 0).to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        eprintln!("skipped: localhost does not resolve here");
        return;
    };
    let heard = open_udp_from_a_callback(first, |echo| ClientEndpoint::Udp("localhost".into(), echo.port()));
    assert_eq!(heard, answered());
}

#[test]
fn connect_udp_to_an_unresolvable_name_tells_the_protocol() {
    let heard = open_udp_from_a_callback(loopback(), |_| ClientEndpoint::Udp("no-such-host.invalid".into(), 9));
    assert_eq!(heard, vec![Heard::Stopped], "never started; told through stopped");
}

/// Opens a UDP socket on its first bytes and closes it, by the id it was
/// given, on the next.
struct OpensThenCloses {
    to: ClientEndpoint,
    heard: mpsc::Sender<Heard>,
    udp: Option<twirl::ConnId>,
}
impl Protocol for OpensThenCloses {
    fn data_received(&mut self, _: &[u8], t: &mut dyn Transport) {
        match self.udp.take() {
            None => {
                let quiet = Quiet(self.heard.clone());
                self.udp = t.connect_udp(&self.to, Box::new(quiet)).ok();
                t.write(b"opened");
            }
            Some(id) => {
                let closed = t.stop_listening(id.into());
                t.write(if closed { b"closed" } else { b"missed" });
            }
        }
    }
}

/// Says when it starts and stops; nothing else.
struct Quiet(mpsc::Sender<Heard>);
impl DatagramProtocol for Quiet {
    fn started(&mut self, _: &mut dyn DatagramTransport) {
        let _ = self.0.send(Heard::Started);
    }
    fn datagram_received(&mut self, _: &[u8], _: SocketAddr, _: &mut dyn DatagramTransport) {}
    fn stopped(&mut self, _: &mut dyn Context) {
        let _ = self.0.send(Heard::Stopped);
    }
}

#[test]
fn a_udp_socket_opened_from_a_callback_is_closed_by_its_id() {
    let (tx, rx) = mpsc::channel();
    let r = spawn_reactor(Config::default(), move |r| {
        let to = ClientEndpoint::Udp("127.0.0.1".into(), 9);
        let make = move |_: &Addr| OpensThenCloses { to: to.clone(), heard: tx.clone(), udp: None };
        r.listen_tcp(loopback(), make).expect("listen").addr
    });
    let mut s = connect(r.value);
    let mut word = [0u8; 6];
    s.write_all(b"open").unwrap();
    s.read_exact(&mut word).unwrap();
    assert_eq!(&word, b"opened");
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok(Heard::Started));
    s.write_all(b"close").unwrap();
    s.read_exact(&mut word).unwrap();
    assert_eq!(&word, b"closed");
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok(Heard::Stopped));
    drop(s);
    r.stop();
}
