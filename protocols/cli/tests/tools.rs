//! The study tools end to end: `twirl cat`, `twirl serve --trace`,
//! `--stats` and SIGUSR1, and the raw-socket `icmp` plugin.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_twirl");
const WAIT: Duration = Duration::from_secs(10);

/// A child process whose stdout and stderr lines arrive on channels; killed on drop.
struct Proc {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn twirl");
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    Proc { child, out, err }
}

/// Waits for a line matching `pred`, returning it; fails after WAIT.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!("no line {what}; saw {seen:#?}");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A one-shot TCP server thread: reads until EOF, answers `reply(input)`, closes.
fn one_shot_server(reply: fn(&[u8]) -> Vec<u8>) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut input = Vec::new();
        s.read_to_end(&mut input).unwrap();
        s.write_all(&reply(&input)).unwrap();
        input
    });
    (port, h)
}

#[test]
fn cat_copies_stdin_half_closes_and_prints_the_reply() {
    let (port, server) = one_shot_server(|i| i.to_ascii_uppercase());
    let mut p = spawn(&["cat", &format!("tcp:127.0.0.1:{port}")]);
    let mut stdin = p.child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    drop(stdin); // EOF: cat half-closes, the server answers after reading everything
    assert_eq!(wait_line(&p.out, "ONE", |l| l == "ONE"), "ONE");
    assert_eq!(wait_line(&p.out, "TWO", |l| l == "TWO"), "TWO");
    assert!(wait_exit(&mut p.child).success());
    assert_eq!(server.join().unwrap(), b"one\ntwo\n");
}

#[test]
fn cat_reads_a_redirected_file_and_dev_null() {
    let dir = std::env::temp_dir().join(format!("twirl-cat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("in.txt");
    std::fs::write(&file, b"from a file\n").unwrap();
    let (port, server) = one_shot_server(|i| i.to_vec());
    let out = Command::new(BIN)
        .args(["cat", &format!("tcp:127.0.0.1:{port}")])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"from a file\n");
    assert_eq!(server.join().unwrap(), b"from a file\n");

    let (port, server) = one_shot_server(|_| b"nothing sent\n".to_vec());
    let out = Command::new(BIN).args(["cat", &format!("tcp:127.0.0.1:{port}")]).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"nothing sent\n");
    assert!(server.join().unwrap().is_empty());
}

#[test]
fn cat_listen_waits_for_one_peer_and_turns_others_away() {
    let mut p = spawn(&["cat", "--listen", "tcp:0"]);
    let line = wait_line(&p.err, "listening on", |l| l.starts_with("listening on tcp:127.0.0.1:"));
    let addr = line.trim_start_matches("listening on tcp:").to_string();
    let mut peer = TcpStream::connect(&addr).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.write_all(b"hello listener\n").unwrap();
    assert_eq!(wait_line(&p.out, "the peer's line", |l| l == "hello listener"), "hello listener");

    let mut second = TcpStream::connect(&addr).unwrap();
    second.set_read_timeout(Some(WAIT)).unwrap();
    let mut busy = String::new();
    second.read_to_string(&mut busy).unwrap();
    assert_eq!(busy, "busy\n");

    let mut stdin = p.child.stdin.take().unwrap();
    stdin.write_all(b"hello peer\n").unwrap();
    drop(stdin);
    let mut got = String::new();
    peer.read_to_string(&mut got).unwrap(); // ends when cat half-closes after stdin's EOF
    assert_eq!(got, "hello peer\n");
    drop(peer);
    assert!(wait_exit(&mut p.child).success());
}

#[test]
fn cat_over_udp_sends_stdin_and_prints_the_answer() {
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_read_timeout(Some(WAIT)).unwrap();
    let port = server.local_addr().unwrap().port();
    let out = {
        let mut p = spawn(&["cat", &format!("udp:127.0.0.1:{port}")]);
        let mut stdin = p.child.stdin.take().unwrap();
        stdin.write_all(b"ping").unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        server.send_to(b"pong\n", from).unwrap();
        let line = wait_line(&p.out, "pong", |l| l == "pong");
        drop(stdin);
        assert!(wait_exit(&mut p.child).success(), "exits a moment after stdin ends");
        line
    };
    assert_eq!(out, "pong");
}

#[test]
fn cat_reports_a_refused_connection_with_exit_1() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(BIN).args(["cat", &format!("tcp:127.0.0.1:{port}")]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("tcp:127.0.0.1:{port}")));
}

#[test]
fn trace_shows_each_loop_event_and_stats_are_printed() {
    let mut p = spawn(&["serve", "--trace", "--stats", "0.2", "echo@tcp:0"]);
    let line = wait_line(&p.out, "listening", |l| l.starts_with("listening echo on tcp:"));
    let addr = line.rsplit("tcp:").next().unwrap().to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");

    wait_line(&p.err, "a readiness event", |l| l.contains("ready: readable"));
    wait_line(&p.err, "the read", |l| l.contains(" read 4 B"));
    wait_line(&p.err, "the write", |l| l.contains(" wrote 4 B"));
    let stats = wait_line(&p.err, "a stats line", |l| l.contains("stats turns=") && l.contains("bytes_in=4"));
    assert!(stats.contains("accepted=1") && stats.contains("bytes_out=4"), "{stats}");

    // SIGUSR1: one summary at once (well before the next 0.2 s tick would matter).
    // SAFETY: kill(2) on the child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(p.child.id() as i32, libc::SIGUSR1) }, 0);
    wait_line(&p.err, "a stats line after SIGUSR1", |l| l.contains("stats turns="));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) }, 0);
    assert!(wait_exit(&mut p.child).success());
}

/// Raw sockets need root or CAP_NET_RAW; skip (saying so) without them.
fn raw_sockets_allowed() -> bool {
    match twirl_protocols::plugins::icmp::open_raw(false) {
        Ok(_) => true,
        Err(e) => {
            println!("skipping: raw ICMP sockets are not permitted here ({e})");
            false
        }
    }
}

#[test]
fn icmp_client_pings_loopback_and_the_server_sees_the_replies() {
    if !raw_sockets_allowed() {
        return;
    }
    let p = spawn(&["serve", "icmp"]);
    wait_line(&p.out, "listening icmp", |l| l == "listening icmp on icmp:127.0.0.1");
    let out = Command::new(BIN).args(["client", "icmp", "127.0.0.1", "2", "--interval", "0.05"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("bytes from 127.0.0.1: icmp_seq=1 ttl="), "{text}");
    assert!(text.contains("icmp_seq=2"), "{text}");
    assert!(text.contains("2 packets transmitted, 2 received, 0% packet loss"), "{text}");
    wait_line(&p.out, "the server's view of a reply", |l| l.starts_with("echo reply from 127.0.0.1: id="));
}

#[test]
fn icmp_client_usage_errors_exit_2() {
    let out = Command::new(BIN).args(["client", "icmp", "127.0.0.1", "zero"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'zero'"));
}
