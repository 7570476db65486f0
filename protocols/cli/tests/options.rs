//! Plugin options change what a plugin does on the wire, end to end:
//! `twirl serve PLUGIN@tcp:0 KEY=VALUE` as its own process, a real client.
//! (Parsing, `twirl help` and the exit codes are tested in cli.rs.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{Server, WAIT, twirl};

fn client(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr(0)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

#[test]
fn reverse_flush_ms_answers_a_partial_line_after_that_silence() {
    // The handout's naive client: sends without a newline, then waits.
    let quick = Server::start(twirl(&["serve", "reverse@tcp:0", "flush_ms=20"]), 1);
    let mut s = client(&quick);
    s.write_all(b"hello big world").unwrap();
    let mut reply = [0u8; 16];
    s.read_exact(&mut reply).expect("answered after 20 ms of silence");
    assert_eq!(&reply, b"world big hello\n");

    // flush_ms=0: a partial line is answered only at a newline (or EOF).
    let never = Server::start(twirl(&["serve", "reverse@tcp:0", "flush_ms=0"]), 1);
    let mut s = client(&never);
    s.write_all(b"hello big world").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut byte = [0u8; 1];
    let early = s.read(&mut byte);
    assert!(early.is_err(), "nothing before the newline with flush_ms=0: {early:?}");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"\n").unwrap();
    s.read_exact(&mut reply).expect("answered at the newline");
    assert_eq!(&reply, b"world big hello\n");
}

#[test]
fn chargen_width_sets_the_line_length() {
    for (width, len) in [("10", 10usize), ("100", 100)] {
        let server = Server::start(twirl(&["serve", "chargen@tcp:0", &format!("width={width}")]), 1);
        let mut lines = BufReader::new(client(&server));
        for _ in 0..3 {
            let mut line = String::new();
            lines.read_line(&mut line).expect("a line");
            assert_eq!(line.len(), len + 2, "width={width}: {line:?}");
            assert!(line.ends_with("\r\n"));
        }
    }
}

/// How many bytes a member was owed when chat cut it off, from the
/// server's warning; `None` if it was not cut off while `talker` sent
/// `lines` lines.
fn owed_when_cut_off(backlog: Option<&str>, lines: usize) -> Option<u64> {
    let mut args = vec!["serve", "chat@tcp:0"];
    let opt = backlog.map(|b| format!("backlog={b}"));
    if let Some(o) = &opt {
        args.push(o);
    }
    let mut cmd = twirl(&args);
    cmd.env("RUST_LOG", "warn");
    let mut server = Server::start(cmd, 1);
    // Drain stderr on a thread (a pipe nobody reads would block the server).
    let stderr = server.child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // A member that never reads, with a small receive buffer so that the
    // kernel holds little of what it is owed.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&server.addr(0).into()).expect("connect the silent member");
    let silent: TcpStream = sock.into();
    let mut talker = client(&server);
    let line = format!("{}\n", "x".repeat(99));
    let mut sent = 0;
    let writer = std::thread::spawn(move || {
        for _ in 0..lines {
            if talker.write_all(line.as_bytes()).is_err() {
                break;
            }
            sent += 1;
        }
        (talker, sent)
    });
    let mut owed = None;
    // Bounded: stderr ends when the server is killed below, or WAIT passes.
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(3)) {
        if let Some(rest) = l.split("not reading (").nth(1) {
            owed = rest.split(' ').next().and_then(|n| n.parse().ok());
            break;
        }
    }
    let _ = writer.join();
    drop(silent);
    owed
}

#[test]
fn chat_backlog_sets_how_much_a_silent_member_may_be_owed() {
    // 100,000 lines of 100 B = 10 MB: more than the kernel buffers (up to
    // 4 MiB on loopback) and either backlog hold.
    let small = owed_when_cut_off(Some("4096"), 100_000).expect("cut off with backlog=4096");
    assert!(small > 4096 && small <= 4096 + 2 * 100, "owed {small} bytes with backlog=4096");
    let default = owed_when_cut_off(None, 100_000).expect("cut off with the default backlog");
    eprintln!("owed when cut off: {small} B (backlog=4096), {default} B (default)");
    assert!(default > 262_144, "owed {default} bytes with the default backlog (262144)");
}
