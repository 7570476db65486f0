//! Connections opened by endpoint, from the reactor and from a callback
//! (`Context::connect`): by address, by host name (resolved off the loop),
//! refused, and cancelled; the id given out is the connection's.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;

use common::{Echo, TIMEOUT, spawn_reactor};
use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, Config, ConnId, Context, Disconnect, Protocol, Transport};

/// What a probe saw, sent back to the test thread.
#[derive(Debug, PartialEq)]
enum Seen {
    Made(ConnId),
    Reply(Vec<u8>),
    Lost(Option<std::io::ErrorKind>),
}

/// Says hello once connected and reports what comes back.
struct Probe(mpsc::Sender<Seen>);
impl Protocol for Probe {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.0.send(Seen::Made(t.id()));
        t.write(b"hello");
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let _ = self.0.send(Seen::Reply(data.to_vec()));
        t.lose_connection();
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        let _ = self.0.send(Seen::Lost(reason.kind()));
    }
}

/// On its first byte, connects a probe to `to` from inside its callback
/// (and cancels it at once if `cancel`); sends the id it was given.
struct Opener {
    to: ClientEndpoint,
    cancel: bool,
    seen: mpsc::Sender<Seen>,
    ids: mpsc::Sender<std::io::Result<ConnId>>,
}
impl Protocol for Opener {
    fn data_received(&mut self, _: &[u8], t: &mut dyn Transport) {
        let id = t.connect(&self.to, Box::new(Probe(self.seen.clone())));
        if let (Ok(id), true) = (&id, self.cancel) {
            assert!(t.abort_conn(*id), "a connect in progress can be aborted by id");
        }
        let _ = self.ids.send(id);
    }
}

fn run_opener(to: impl Fn(u16) -> ClientEndpoint + Send + 'static, cancel: bool) -> (ConnId, Vec<Seen>) {
    let (seen_tx, seen_rx) = mpsc::channel();
    let (ids_tx, ids_rx) = mpsc::channel();
    let r = spawn_reactor(Config::default(), move |r| {
        let echo = r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo).expect("echo").addr;
        let to = to(echo.port());
        let opener = move |_: &Addr| Opener { to: to.clone(), cancel, seen: seen_tx.clone(), ids: ids_tx.clone() };
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), opener).expect("opener").addr
    });
    let mut trigger = common::connect(r.value);
    std::io::Write::write_all(&mut trigger, b"go").expect("trigger");
    let id = ids_rx.recv_timeout(TIMEOUT).expect("the opener ran").expect("connect started");
    let mut seen = Vec::new();
    for _ in 0..3 {
        match seen_rx.recv_timeout(TIMEOUT).expect("the probe reports") {
            lost @ Seen::Lost(_) => {
                seen.push(lost);
                break;
            }
            other => seen.push(other),
        }
    }
    drop(trigger);
    r.stop();
    (id, seen)
}

#[test]
fn a_callback_connects_by_address_and_the_id_is_the_connections() {
    let (id, seen) = run_opener(|port| ClientEndpoint::Tcp("127.0.0.1".into(), port), false);
    assert_eq!(seen, [Seen::Made(id), Seen::Reply(b"hello".to_vec()), Seen::Lost(None)]);
}

#[test]
fn a_host_name_is_resolved_off_the_loop() {
    let (id, seen) = run_opener(|port| ClientEndpoint::Tcp("localhost".into(), port), false);
    assert_eq!(seen, [Seen::Made(id), Seen::Reply(b"hello".to_vec()), Seen::Lost(None)]);
}

#[test]
fn a_refused_connect_reaches_the_protocols_connection_lost() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_, seen) = run_opener(move |_| ClientEndpoint::Tcp("127.0.0.1".into(), port), false);
    assert_eq!(seen, [Seen::Lost(Some(std::io::ErrorKind::ConnectionRefused))]);
}

#[test]
fn a_connect_aborted_by_id_is_cancelled_and_its_protocol_told() {
    for host in ["127.0.0.1", "localhost"] {
        let (_, seen) = run_opener(move |port| ClientEndpoint::Tcp(host.into(), port), true);
        assert_eq!(seen, [Seen::Lost(Some(std::io::ErrorKind::ConnectionAborted))], "{host}");
    }
}

#[test]
fn a_udp_endpoint_is_refused_at_once() {
    let (seen_tx, _seen_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let r = spawn_reactor(Config::default(), move |r| {
        let to = ClientEndpoint::Udp("127.0.0.1".into(), 9);
        let opener = move |_: &Addr| Opener { to: to.clone(), cancel: false, seen: seen_tx.clone(), ids: tx.clone() };
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), opener).expect("opener").addr
    });
    let mut trigger = common::connect(r.value);
    std::io::Write::write_all(&mut trigger, b"go").expect("trigger");
    let err = rx.recv_timeout(TIMEOUT).expect("the opener ran").expect_err("UDP is not a stream");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    drop(trigger);
    r.stop();
}

/// `Reactor::connect` takes an endpoint and gives the connection's id.
#[test]
fn the_reactor_connects_by_endpoint() {
    struct Once(Rc<RefCell<Option<mpsc::Sender<Seen>>>>);
    impl twirl::ClientFactory for Once {
        fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
            Box::new(Probe(self.0.borrow_mut().take().expect("one protocol")))
        }
    }
    let (tx, rx) = mpsc::channel();
    let r = spawn_reactor(Config::default(), move |r| {
        let echo = r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo).expect("echo").addr;
        let to = ClientEndpoint::Tcp("localhost".into(), echo.port());
        r.connect(&to, Once(Rc::new(RefCell::new(Some(tx))))).expect("connect")
    });
    assert_eq!(rx.recv_timeout(TIMEOUT).expect("made"), Seen::Made(r.value));
    assert_eq!(rx.recv_timeout(TIMEOUT).expect("reply"), Seen::Reply(b"hello".to_vec()));
    r.stop();
}
