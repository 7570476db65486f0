//! The `twirl client` binary against the lab plugins (`reverse`, `upper`,
//! `json`, `reorder`, `time`), served by a real reactor on ephemeral
//! loopback ports. The servers themselves are tested in the plugin crate
//! (`protocols/tests/lab_plugins.rs`).
//!
//! Every wait is bounded: socket reads have timeouts, channel receives use
//! `recv_timeout`, child processes are killed after [`WAIT`].

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

// The plugin crate's test support, shared rather than copied.
#[path = "../../tests/support/mod.rs"]
mod support;
use support::{Served as Server, port_pair, stdout};

const WAIT: Duration = Duration::from_secs(10);
const READ: Duration = Duration::from_secs(5);
const BIN: &str = env!("CARGO_BIN_EXE_twirl");

fn udp_socket() -> UdpSocket {
    let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    u.set_read_timeout(Some(READ)).expect("read timeout");
    u
}

/// Runs `twirl ARGS`, with `stdin` fed in, killed if it outlives [`WAIT`] x 2.
fn twirl(args: &[&str], stdin: &[u8]) -> Output {
    support::run_twirl(args, stdin, WAIT * 2)
}

#[test]
fn binary_clients_reverse_upper_json_time() {
    let server =
        Server::start(&["reverse@tcp:0", "reverse@udp:0", "upper@tcp:0", "json@udp:0", "json@tcp:0", "time@udp:0"]);
    let ep = |kind: &str, a: SocketAddr| format!("{kind}:{a}");

    let o = twirl(&["client", "reverse", &ep("tcp", server.tcp(0)), "hello", "big", "world"], b"");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "world big hello\n"));
    let o = twirl(&["client", "reverse", &ep("udp", server.udp(1)), "hello", "big", "world"], b"");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "world big hello\n"));
    // Interactive over TCP: stdin lines in, replies out.
    let o = twirl(&["client", "upper", &ep("tcp", server.tcp(2))], b"one\ntwo\n");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "ONE\nTWO\n"));
    // UDP with no text: each stdin line is a datagram.
    let o = twirl(&["client", "reverse", &ep("udp", server.udp(1))], b"a b\nc d e\n");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "b a\ne d c\n"));

    let o = twirl(&["client", "json", &ep("udp", server.udp(3)), "name=bob", "n=5", "tags=[1,2]"], b"");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "{\"n\":5,\"name\":\"bob\",\"tags\":[1,2]}\n"));
    let o = twirl(&["client", "json", &ep("tcp", server.tcp(4)), r#"{"z":0,"a":{"y":1,"x":2}}"#], b"");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "{\"a\":{\"x\":2,\"y\":1},\"z\":0}\n"));
    let o = twirl(&["client", "json", &ep("udp", server.udp(3)), "{not json"], b"");
    assert_eq!(o.status.code(), Some(2), "a bad object is a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1 column 2"), "{o:?}");

    let o = twirl(&["client", "time", &ep("udp", server.udp(5))], b"");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    let mut lines = out.lines();
    assert!(lines.next().and_then(twirl_protocols::plugins::time::parse_stamp).is_some(), "{out}");
    assert!(lines.next().is_some_and(|l| l.starts_with("offset: ")), "{out}");
    server.stop();
}

#[test]
fn binary_json_client_exits_1_when_nothing_answers() {
    // A port with no listener: loopback answers with ICMP port unreachable at once.
    let free = udp_socket().local_addr().expect("addr");
    let o = twirl(&["client", "json", &format!("udp:{free}"), "a=1"], b"");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!String::from_utf8_lossy(&o.stderr).is_empty());
}

#[test]
fn binary_reorder_one_process_and_two_processes() {
    let server = Server::start(&["reorder@udp:0"]);
    let to = format!("udp:{}", server.udp(0));
    let o = twirl(&["client", "reorder", &to, "the", "quick", "brown", "fox", "jumps"], b"");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "quick brown jumps the fox\n"), "{o:?}");

    // Two processes: a receiver on P+1 that only listens, a sender from P.
    let (p_sock, q_sock) = port_pair();
    let p = p_sock.local_addr().expect("addr").port();
    drop((p_sock, q_sock));
    let receiver = Command::new(BIN)
        .args(["client", "reorder", &format!("udp:127.0.0.1:{}", p + 1), "--receive", "--timeout", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    // Wait (bounded) until the receiver holds P+1: binding it ourselves then fails.
    let deadline = Instant::now() + WAIT;
    while UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
        assert!(Instant::now() < deadline, "the receiver never bound port {}", p + 1);
        thread::sleep(Duration::from_millis(10));
    }
    let o = twirl(&["client", "reorder", &to, "--from", &p.to_string(), "a", "ccc", "bb"], b"");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(receiver.wait_with_output());
    });
    let out = rx.recv_timeout(WAIT * 2).expect("receiver finished").expect("receiver output");
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "ccc bb a\n"), "{out:?}");
    server.stop();
}

#[test]
fn binary_reorder_usage_errors_exit_2() {
    for args in [&["--from", "65535", "x"][..], &["--receive", "text"], &[]] {
        let mut all = vec!["client", "reorder", "udp:127.0.0.1:9"];
        all.extend_from_slice(args);
        let o = twirl(&all, b"");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
    let o = twirl(&["client", "reorder", "tcp:127.0.0.1:9", "x"], b"");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
