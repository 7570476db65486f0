//! Stream connections end to end: echo under concurrency, a writer that
//! reads only after writing everything, half-close, and Unix sockets.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;

use common::{
    Echo, TIMEOUT, TempDir, connect, connect_small_rcvbuf, first_difference, pattern, round_trip, spawn_reactor,
};
use twirl::{Addr, ClientFactory, Config, Context, Disconnect, Protocol, Transport};

#[test]
fn echo_200_concurrent_clients() {
    const CLIENTS: usize = 200;
    let server = spawn_reactor(Config::default(), |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo).unwrap().addr
    });
    let addr = server.value;

    // All clients connect before any sends, so the connections really overlap.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                // A distinct message of 2 to 6 KB per client.
                let msg = pattern(2048 + i * 20, i as u64 + 1);
                let mut s = connect(addr);
                barrier.wait();
                s.write_all(&msg).expect("write");
                s.shutdown(Shutdown::Write).expect("shutdown");
                let mut reply = Vec::new();
                s.read_to_end(&mut reply).expect("read to EOF");
                (msg, reply)
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let (msg, reply) = c.join().expect("client thread");
        assert_eq!(reply.len(), msg.len(), "client {i}: reply length");
        assert!(reply == msg, "client {i}: reply differs at byte {:?}", first_difference(&msg, &reply));
    }
    let stats = server.call(|r| r.stats());
    assert_eq!(stats.accepted, CLIENTS as u64);
    server.stop();
}

/// Echo that keeps reading while its echo waits (backpressure off), as
/// the deadlock lab's `caps` does.
struct BufferingEcho;
impl Protocol for BufferingEcho {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_backpressure(false);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
}

#[test]
fn forty_mib_writer_that_reads_only_after_writing() {
    // More than the kernel can hold on the way in (a receive buffer grows
    // to 32 MiB here, a send buffer to 4 MiB): with 8 MiB, a server slowed
    // by a loaded machine could find it all waiting in its socket, echo it
    // while the client reads, and never have to buffer.
    const LEN: usize = 40 * 1024 * 1024;
    let server = spawn_reactor(Config::default(), |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| BufferingEcho).unwrap().addr
    });
    let payload = pattern(LEN, 0xdead_beef);
    // A small receive buffer: the echo cannot all wait in the kernel.
    let mut reader = connect_small_rcvbuf(server.value);
    let mut writer = reader.try_clone().expect("clone socket");

    let to_send = payload.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let w = thread::spawn(move || {
        // Everything goes out before anyone reads a byte: the server must
        // keep reading (and buffering its echo) or both sides block.
        let r = writer.write_all(&to_send).and_then(|()| writer.shutdown(Shutdown::Write));
        let _ = done_tx.send(r.is_ok());
        r
    });
    let wrote_all = done_rx.recv_timeout(TIMEOUT).expect("writer finished (no deadlock)");
    assert!(wrote_all, "write_all failed: {:?}", w.join().expect("writer thread").err());

    let mut reply = Vec::with_capacity(LEN);
    reader.read_to_end(&mut reply).expect("read echo to EOF");
    assert_eq!(reply.len(), LEN);
    assert!(reply == payload, "echo differs at byte {:?}", first_difference(&payload, &reply));

    let stats = server.call(|r| r.stats());
    assert!(stats.peak_buffered > 0, "the server had to buffer its echo: {stats}");
    server.stop();
}

/// Collects everything, and only on EOF writes it back reversed and closes.
struct ReverseOnEof {
    got: Vec<u8>,
    eof: mpsc::Sender<usize>,
}

impl Protocol for ReverseOnEof {
    fn data_received(&mut self, data: &[u8], _t: &mut dyn Transport) {
        self.got.extend_from_slice(data);
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        let _ = self.eof.send(self.got.len());
        self.got.reverse();
        t.write(&self.got);
        t.lose_connection();
    }
}

#[test]
fn half_close() {
    let (eof_tx, eof_rx) = mpsc::channel();
    let server = spawn_reactor(Config::default(), move |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| ReverseOnEof {
            got: Vec::new(),
            eof: eof_tx.clone(),
        })
        .unwrap()
        .addr
    });
    // Large enough that the reply cannot go out in one write.
    let msg = pattern(3 * 1024 * 1024 + 17, 7);
    let mut s = connect(server.value);
    s.write_all(&msg).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown write");
    assert_eq!(eof_rx.recv_timeout(TIMEOUT).expect("read_eof called"), msg.len());
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read reply to EOF");
    let mut expected = msg;
    expected.reverse();
    assert_eq!(reply.len(), expected.len());
    assert!(reply == expected, "reply differs at byte {:?}", first_difference(&expected, &reply));
    server.stop();
}

/// A client that sends its message on connect, half-closes, and reports
/// what came back when the connection ends.
struct SendAndCollect {
    msg: Vec<u8>,
    got: Vec<u8>,
    done: mpsc::Sender<(Vec<u8>, bool)>,
}

impl Protocol for SendAndCollect {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(&self.msg);
        t.shutdown_write();
    }
    fn data_received(&mut self, data: &[u8], _t: &mut dyn Transport) {
        self.got.extend_from_slice(data);
    }
    fn connection_lost(&mut self, reason: &Disconnect, _cx: &mut dyn Context) {
        let _ = self.done.send((std::mem::take(&mut self.got), reason.is_clean()));
    }
}

struct OneShot(Option<SendAndCollect>);

impl ClientFactory for OneShot {
    fn build_protocol(&mut self, _peer: &Addr) -> Box<dyn Protocol> {
        Box::new(self.0.take().expect("built once"))
    }
}

#[test]
fn unix_socket_echo() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("echo.sock");
    let server_path = path.clone();
    let server = spawn_reactor(Config::default(), move |r| r.listen_unix(&server_path, |_: &Addr| Echo).unwrap().addr);
    assert_eq!(server.value, path);

    // A std client.
    let msg = pattern(200_000, 3);
    let mut s = UnixStream::connect(&path).expect("connect unix");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&msg).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown write");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read to EOF");
    assert!(reply == msg, "unix echo differs at byte {:?}", first_difference(&msg, &reply));

    // The reactor's own client, through connect_unix, on the same loop.
    let (done_tx, done_rx) = mpsc::channel();
    let client_msg = pattern(100_000, 4);
    let proto = SendAndCollect { msg: client_msg.clone(), got: Vec::new(), done: done_tx };
    let client_path = path.clone();
    server.call(move |r| r.connect_unix(&client_path, OneShot(Some(proto))).expect("connect_unix"));
    let (got, clean) = done_rx.recv_timeout(TIMEOUT).expect("client connection ended");
    assert!(got == client_msg, "connect_unix echo differs at byte {:?}", first_difference(&client_msg, &got));
    assert!(clean, "the client connection closed cleanly");

    server.stop();
    assert!(!path.exists(), "stopping removes the socket file");
}

#[test]
fn echo_over_ipv6_loopback() {
    // Skip quietly where the host has no IPv6 loopback.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return;
    }
    let server =
        spawn_reactor(Config::default(), |r| r.listen_tcp("[::1]:0".parse().unwrap(), |_: &Addr| Echo).unwrap().addr);
    let msg = pattern(10_000, 6);
    assert!(round_trip(server.value, &msg) == msg);
    server.stop();
}

/// Replies with a large payload, then half-closes at once: the FIN must wait
/// until the buffered reply has been sent. Reports how the connection ended.
struct ReplyThenShutdown {
    reply: Vec<u8>,
    eof: bool,
    lost: mpsc::Sender<(bool, bool)>,
}

impl Protocol for ReplyThenShutdown {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(&self.reply);
        t.shutdown_write();
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    fn read_eof(&mut self, _t: &mut dyn Transport) {
        // Both directions are now shut: the reactor closes by itself.
        self.eof = true;
    }
    fn connection_lost(&mut self, reason: &Disconnect, _cx: &mut dyn Context) {
        let _ = self.lost.send((self.eof, reason.is_clean()));
    }
}

#[test]
fn server_half_close_sends_fin_after_buffered_data() {
    let reply = pattern(1024 * 1024, 11);
    let (tx, rx) = mpsc::channel();
    let server_reply = reply.clone();
    let server = spawn_reactor(Config::default(), move |r| {
        let factory = move |_: &Addr| ReplyThenShutdown { reply: server_reply.clone(), eof: false, lost: tx.clone() };
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), factory).unwrap().addr
    });
    let mut s = connect_small_rcvbuf(server.value);
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to the server's FIN");
    assert_eq!(got.len(), reply.len());
    assert!(got == reply, "reply differs at byte {:?}", first_difference(&reply, &got));
    // Our side is still open for writing; closing it ends the connection.
    assert!(rx.try_recv().is_err(), "the server kept the connection open after its half-close");
    s.write_all(b"late but accepted").expect("write after the server's half-close");
    s.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(rx.recv_timeout(TIMEOUT).expect("connection_lost"), (true, true), "(read_eof seen, clean)");
    server.stop();
}

#[derive(Debug)]
enum PauseEv {
    Made(twirl::ConnId),
    Data,
    Eof(Vec<u8>),
}

/// Pauses reading from the start; echoes everything it got when EOF comes.
struct PausedAtStart {
    got: Vec<u8>,
    events: mpsc::Sender<PauseEv>,
}

impl Protocol for PausedAtStart {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.pause_reading();
        let _ = self.events.send(PauseEv::Made(t.id()));
    }
    fn data_received(&mut self, data: &[u8], _t: &mut dyn Transport) {
        let _ = self.events.send(PauseEv::Data);
        self.got.extend_from_slice(data);
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        let _ = self.events.send(PauseEv::Eof(self.got.clone()));
        t.write(&self.got);
        t.lose_connection();
    }
}

#[test]
fn paused_reading_holds_data_and_eof_until_resumed() {
    let (tx, rx) = mpsc::channel();
    let server = spawn_reactor(Config::default(), move |r| {
        let factory = move |_: &Addr| PausedAtStart { got: Vec::new(), events: tx.clone() };
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), factory).unwrap().addr
    });
    let mut s = connect(server.value);
    let id = match rx.recv_timeout(TIMEOUT).expect("connection_made") {
        PauseEv::Made(id) => id,
        other => panic!("{other:?}"),
    };
    // Data and FIN both reach the server's kernel while it is not reading;
    // the readiness events for them come and go.
    let msg = pattern(500_000, 12);
    s.write_all(&msg).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    // A round trip through the loop, so its events for the data have been handled.
    let still_open = server.call(|r| r.connection_count());
    assert_eq!(still_open, 1);
    assert!(rx.try_recv().is_err(), "nothing delivered while paused");

    let resumed = server.call(move |r| {
        r.with_transport(id, |t| {
            t.resume_reading();
        })
    });
    assert!(resumed);
    let mut got = None;
    for _ in 0..msg.len() + 1 {
        match rx.recv_timeout(TIMEOUT).expect("data and read_eof after resuming") {
            PauseEv::Data => {}
            PauseEv::Eof(all) => {
                got = Some(all);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let got = got.expect("read_eof");
    assert!(got == msg, "held data differs at byte {:?}", first_difference(&msg, &got));
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read to EOF");
    assert!(reply == msg);
    server.stop();
}

/// Answers the first bytes with a last word and closes, whatever the peer
/// is still sending.
struct LastWord {
    lost: mpsc::Sender<bool>,
}

impl Protocol for LastWord {
    fn data_received(&mut self, _: &[u8], t: &mut dyn Transport) {
        if !t.is_closing() {
            t.write(b"bye\n");
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, reason: &Disconnect, _cx: &mut dyn Context) {
        let _ = self.lost.send(reason.is_clean());
    }
}

#[test]
fn closing_while_the_peer_still_sends_delivers_the_last_bytes() {
    let (tx, rx) = mpsc::channel();
    // A linger longer than any wait here: the close below must come from the
    // peer's EOF, not from the linger running out.
    let config = Config { linger: std::time::Duration::from_secs(60), ..Default::default() };
    let server = spawn_reactor(config, move |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| LastWord { lost: tx.clone() }).unwrap().addr
    });
    let mut s = connect(server.value);
    s.write_all(b"hello").expect("write");
    let mut bye = [0u8; 4];
    s.read_exact(&mut bye).expect("last word");
    assert_eq!(&bye, b"bye\n");
    // Keep sending after the server closed: it drains instead of resetting.
    s.write_all(&pattern(2 * 1024 * 1024, 13)).expect("write while the server lingers");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("EOF, not a reset");
    assert!(rest.is_empty());
    assert!(rx.try_recv().is_err(), "still lingering while we have not closed");
    s.shutdown(Shutdown::Write).expect("shutdown");
    assert!(rx.recv_timeout(TIMEOUT).expect("closed on our EOF, before the linger ran out"), "clean");
    server.stop();
}

/// Answers each line with a newline.
struct NewlinePerLine;
impl twirl::line::LineHandler for NewlinePerLine {
    fn line_received(&mut self, _: &[u8], t: &mut twirl::line::Lines<'_>) {
        t.write(b"\n");
    }
}

#[test]
fn a_flood_of_empty_lines_is_answered_whole_across_turns() {
    // Issue #12: a read full of one-byte lines is delivered over several
    // turns (LINES_PER_TURN at a time); on a socket none may be lost.
    const LINES: usize = 200_000;
    let server = spawn_reactor(Config::default(), |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| twirl::line::LineReceiver::new(NewlinePerLine))
            .unwrap()
            .addr
    });
    let mut c = connect(server.value);
    let mut w = c.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        w.write_all(&vec![b'\n'; LINES]).expect("write");
        w.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).expect("replies to EOF");
    writer.join().expect("writer");
    assert_eq!(back.len(), LINES, "one reply per line");
    server.stop();
}
