//! The lab plugins (`reverse`, `upper`, `json`, `reorder`, `time`) end to
//! end over loopback: a real reactor serving them on ephemeral ports, poked
//! by the handouts' naive clients (std sockets, send then wait), by careful
//! clients and by a crowd. The `twirl client` binary's side is tested where
//! the binary is built: `protocols/cli/tests/lab_clients.rs`.
//!
//! Every wait is bounded: socket reads and writes have timeouts.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use twirl_protocols::serve;

mod support;
use support::{Served as Server, port_pair};

const WAIT: Duration = Duration::from_secs(10);
const READ: Duration = Duration::from_secs(5);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(READ)).expect("read timeout");
    s.set_write_timeout(Some(READ)).expect("write timeout");
    s
}

/// Reads until `n` newlines have arrived (or EOF); bounded by the read timeout.
fn read_lines(s: &mut TcpStream, n: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|&&b| b == b'\n').count() < n {
        let k = s.read(&mut buf).expect("read (timed out?)");
        if k == 0 {
            break;
        }
        got.extend_from_slice(&buf[..k]);
    }
    String::from_utf8(got).expect("utf-8 reply")
}

fn udp_socket() -> UdpSocket {
    let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    u.set_read_timeout(Some(READ)).expect("read timeout");
    u
}

fn udp_ask(to: SocketAddr, request: &[u8]) -> Vec<u8> {
    let u = udp_socket();
    u.send_to(request, to).expect("send");
    let mut buf = vec![0u8; 65_536];
    let (n, from) = u.recv_from(&mut buf).expect("reply (timed out?)");
    assert_eq!(from, to, "the reply comes from the server's port");
    buf.truncate(n);
    buf
}

// ---- reverse and upper ----

#[test]
fn reverse_answers_the_naive_client_after_the_idle_gap() {
    let server = Server::start(&["reverse@tcp:0"]);
    let mut s = connect(server.tcp(0));
    // The handout's client: send, no newline, then recv.
    s.write_all(b"hello big world").expect("send");
    assert_eq!(read_lines(&mut s, 1), "world big hello\n");
    // The connection is still open for more.
    s.write_all(b"a b\n").expect("send");
    assert_eq!(read_lines(&mut s, 1), "b a\n");
    drop(s);
    server.stop();
}

#[test]
fn reverse_careful_client_lines_crlf_and_half_close() {
    let server = Server::start(&["reverse@tcp:0"]);
    let mut s = connect(server.tcp(0));
    s.write_all(b"one two\r\nthree four five\n\xc3\xa9t\xc3\xa9 \xff x\nlast partial").expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read to EOF: the server closes after answering");
    assert_eq!(reply, b"two one\nfive four three\nx \xff \xc3\xa9t\xc3\xa9\npartial last\n");
    server.stop();
}

#[test]
fn reverse_and_upper_over_udp() {
    let server = Server::start(&["reverse@udp:0", "upper@udp:0"]);
    assert_eq!(udp_ask(server.udp(0), b"hello big world\n"), b"world big hello");
    assert_eq!(udp_ask(server.udp(1), "grüß dich\n".as_bytes()), "GRÜSS DICH\n".as_bytes());
    assert_eq!(udp_ask(server.udp(1), b"a\xffb"), b"A\xffB");
    server.stop();
}

#[test]
fn upper_naive_tcp_client_like_seed_003() {
    let server = Server::start(&["upper@tcp:0"]);
    let mut s = connect(server.tcp(0));
    s.write_all("input lowercase sentence: straße".as_bytes()).expect("send");
    assert_eq!(read_lines(&mut s, 1), "INPUT LOWERCASE SENTENCE: STRASSE\n");
    server.stop();
}

#[test]
fn many_concurrent_clients_each_get_their_own_answer() {
    let server = Server::start(&["reverse@tcp:0", "upper@tcp:0"]);
    let (rev, up) = (server.tcp(0), server.tcp(1));
    let clients: Vec<JoinHandle<()>> = (0..120)
        .map(|i| {
            thread::spawn(move || {
                let mut s = connect(if i % 2 == 0 { rev } else { up });
                let naive = i % 3 == 0;
                let msg = format!("client {i} says hello");
                if naive {
                    s.write_all(msg.as_bytes()).expect("send");
                } else {
                    s.write_all(format!("{msg}\n").as_bytes()).expect("send");
                }
                let want =
                    if i % 2 == 0 { format!("hello says {i} client\n") } else { format!("CLIENT {i} SAYS HELLO\n") };
                assert_eq!(read_lines(&mut s, 1), want, "client {i}");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    server.stop();
}

#[test]
fn over_long_line_gets_an_error_while_others_are_served() {
    let server = Server::start(&["reverse@tcp:0"]);
    let addr = server.tcp(0);
    let mut calm = connect(addr);
    calm.write_all(b"first line\n").expect("send");
    assert_eq!(read_lines(&mut calm, 1), "line first\n");

    let mut flood = connect(addr);
    let long = vec![b'x'; twirl_protocols::text::DEFAULT_MAX_LINE + 100];
    flood.write_all(&long).expect("send");
    let mut reply = Vec::new();
    flood.read_to_end(&mut reply).expect("read to EOF: the server closes");
    let reply = String::from_utf8(reply).expect("utf-8");
    assert!(reply.starts_with("error: line too long"), "{reply}");
    assert_eq!(reply.lines().count(), 1, "{reply}");

    calm.write_all(b"still here\n").expect("send");
    assert_eq!(read_lines(&mut calm, 1), "here still\n");
    server.stop();
}

// ---- json ----

#[test]
fn json_over_udp_valid_and_every_kind_of_error() {
    let server = Server::start(&["json@udp:0"]);
    let to = server.udp(0);
    let ask = |req: &[u8]| String::from_utf8(udp_ask(to, req)).expect("utf-8");
    assert_eq!(ask(br#"{"foo": 1, "bar": "qwerty"}"#), r#"{"bar":"qwerty","foo":1}"#);
    let e = ask(b"{\"a\":1,\n nope}");
    assert!(e.starts_with(r#"{"error":"invalid JSON: key must be a string at line 2 column 2"#), "{e}");
    assert_eq!(ask(b"[1,2,3]"), r#"{"error":"expected a JSON object, got an array"}"#);
    let e = ask(br#"{"a":[1,2"#);
    assert!(e.starts_with(r#"{"error":"truncated JSON: EOF while parsing"#), "{e}");
    let e = ask(&[b'['; 10_000]);
    assert!(e.starts_with(r#"{"error":"too deep: nesting passes 64 levels"#), "{e}");
    // Still serving after all that.
    assert_eq!(ask(b"{}\n"), "{}");
    server.stop();
}

#[test]
fn json_over_tcp_one_object_per_line() {
    let server = Server::start(&["json@tcp:0"]);
    let mut s = connect(server.tcp(0));
    s.write_all(b"{\"b\":[true,null],\"a\":1.5}\r\n42\n").expect("send");
    assert_eq!(
        read_lines(&mut s, 2),
        "{\"a\":1.5,\"b\":[true,null]}\n{\"error\":\"expected a JSON object, got a number\"}\n"
    );
    s.write_all(b"{\"naive\":true}").expect("send");
    assert_eq!(read_lines(&mut s, 1), "{\"naive\":true}\n");
    server.stop();
}

// ---- reorder ----

#[test]
fn reorder_replies_to_source_port_plus_one() {
    let server = Server::start(&["reorder@udp:0"]);
    let to = server.udp(0);
    let (sender, receiver) = port_pair();
    let mut buf = [0u8; 2048];
    for (req, want) in
        [(&b"the quick brown fox jumps"[..], &b"quick brown jumps the fox"[..]), (b"bb aa c dd", b"bb aa dd c")]
    {
        sender.send_to(req, to).expect("send");
        let (n, from) = receiver.recv_from(&mut buf).expect("reply on P+1 (timed out?)");
        assert_eq!(from, to);
        assert_eq!(&buf[..n], want);
    }
    // Both replies went to P+1; nothing came back to P.
    sender.set_nonblocking(true).expect("nonblocking");
    assert_eq!(sender.recv_from(&mut buf).map_err(|e| e.kind()).err(), Some(std::io::ErrorKind::WouldBlock));
    server.stop();
}

#[test]
fn reorder_drops_a_datagram_from_port_65535_and_keeps_serving() {
    let server = Server::start(&["reorder@udp:0"]);
    let to = server.udp(0);
    // Port 65535 may be taken on this machine; the unit test covers the rule then.
    if let Ok(top) = UdpSocket::bind("127.0.0.1:65535") {
        top.send_to(b"nowhere to go", to).expect("send");
    }
    let (sender, receiver) = port_pair();
    sender.send_to(b"x yyy", to).expect("send");
    let mut buf = [0u8; 64];
    let (n, _) = receiver.recv_from(&mut buf).expect("reply on P+1");
    assert_eq!(&buf[..n], b"yyy x");
    server.stop();
}

// ---- time ----

#[test]
fn time_over_tcp_naive_and_careful_and_udp() {
    let server = Server::start(&["time@tcp:0", "time@udp:0"]);
    let mut s = connect(server.tcp(0));
    s.write_all(b"reqtime").expect("send");
    let stamp = read_lines(&mut s, 1);
    assert!(twirl_protocols::plugins::time::parse_stamp(&stamp).is_some(), "{stamp:?}");
    s.write_all(b"reqtime\r\nwhat time is it\n").expect("send");
    let two = read_lines(&mut s, 2);
    let mut lines = two.lines();
    assert!(lines.next().and_then(twirl_protocols::plugins::time::parse_stamp).is_some(), "{two:?}");
    assert_eq!(lines.next(), Some("error: unknown request, send reqtime"));

    let reply = String::from_utf8(udp_ask(server.udp(1), b"reqtime")).expect("utf-8");
    assert!(!reply.ends_with('\n'));
    assert!(twirl_protocols::plugins::time::parse_stamp(&reply).is_some(), "{reply:?}");
    assert_eq!(udp_ask(server.udp(1), b"hello"), b"error: unknown request, send reqtime");
    server.stop();
}

#[test]
fn serve_with_no_argument_includes_the_lab_defaults() {
    let specs = serve::parse_specs(&[]).expect("defaults");
    let names: Vec<String> = specs.iter().map(|s| format!("{}@{}", s.plugin.name, s.endpoint)).collect();
    for want in [
        "reverse@tcp:127.0.0.1:7100",
        "reverse@udp:127.0.0.1:7100",
        "upper@tcp:127.0.0.1:7101",
        "upper@udp:127.0.0.1:7101",
        "json@udp:127.0.0.1:7102",
        "json@tcp:127.0.0.1:7102",
        "reorder@udp:127.0.0.1:7103",
        "time@tcp:127.0.0.1:7104",
        "time@udp:127.0.0.1:7104",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
}
