//! `twirl serve --threads 2`, end to end: connections and datagrams spread
//! over both threads (their stats say so), a chat room whose members are on
//! different threads, SIGTERM with both threads busy, and a restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::restart::{Looping, Reap, new_copy_pid};
use common::{WAIT, bin};

/// `twirl serve --threads 2 ...` with its stdout and stderr read on threads.
struct Threads {
    child: Child,
    addrs: Vec<SocketAddr>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Threads {
    fn start(specs: &[&str]) -> Threads {
        let mut child = Command::new(bin())
            .args(["serve", "--threads", "2"])
            .args(specs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn twirl");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut addrs = Vec::new();
        for _ in specs {
            let line = lines.recv_timeout(WAIT).expect("a listening line");
            let endpoint = line.rsplit(' ').next().expect("endpoint");
            addrs.push(endpoint.split_once(':').and_then(|(_, a)| a.parse().ok()).expect("address"));
        }
        assert_eq!(lines.recv_timeout(WAIT).as_deref(), Ok("serving on 2 threads"));
        Threads { child, addrs, lines, stderr }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child, not yet waited for.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// The value of `key` in each thread's stats line, after SIGUSR1.
    fn per_thread(&self, key: &str) -> Vec<u64> {
        // The other thread files its stats every second: wait for one filing.
        std::thread::sleep(Duration::from_millis(1100));
        self.signal(libc::SIGUSR1);
        let mut found = vec![None, None];
        let deadline = Instant::now() + WAIT;
        while found.iter().any(Option::is_none) && Instant::now() < deadline {
            let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(100)) else { continue };
            for (t, slot) in found.iter_mut().enumerate() {
                if line.contains(&format!("stats thread {t}: ")) {
                    *slot = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{key}=")))
                        .and_then(|v| v.parse().ok());
                }
            }
        }
        found.into_iter().map(|v| v.expect("each thread's stats line")).collect()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "twirl did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn round_trip(addr: SocketAddr, msg: &[u8], reply_len: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; reply_len];
    s.read_exact(&mut back).expect("a reply");
    back
}

#[test]
fn connections_and_datagrams_reach_both_threads() {
    let twirl = Threads::start(&["echo@tcp:0", "reverse@tcp:0", "json@udp:0"]);
    let (echo, reverse, json) = (twirl.addrs[0], twirl.addrs[1], twirl.addrs[2]);
    // 40 connections from 40 source ports: the kernel's hash puts all on
    // one thread with odds of 2^-39.
    for i in 0..40 {
        let msg = format!("hello {i}");
        assert_eq!(round_trip(echo, msg.as_bytes(), msg.len()), msg.as_bytes());
    }
    assert_eq!(round_trip(reverse, b"one two three\n", 14), b"three two one\n");
    for _ in 0..40 {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.send_to(br#"{"b":2,"a":1}"#, json).unwrap();
        let mut buf = [0u8; 128];
        let (n, _) = c.recv_from(&mut buf).expect("an answer");
        assert_eq!(&buf[..n], br#"{"a":1,"b":2}"#);
    }
    let accepted = twirl.per_thread("accepted");
    assert!(accepted.iter().all(|&a| a > 0), "connections per thread: {accepted:?}");
    assert_eq!(accepted.iter().sum::<u64>(), 41);
    let datagrams = twirl.per_thread("datagrams_in");
    assert!(datagrams.iter().all(|&d| d > 0), "datagrams per thread: {datagrams:?}");
    assert_eq!(datagrams.iter().sum::<u64>(), 40);
}

/// A chat member: its reader, with the room's notices (`* ...`) skipped.
struct Member {
    writer: TcpStream,
    lines: BufReader<TcpStream>,
    others_here: usize,
}

fn join(addr: SocketAddr) -> Member {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut lines = BufReader::new(s.try_clone().unwrap());
    let mut welcome = String::new();
    lines.read_line(&mut welcome).expect("welcome");
    // "* you are IP:PORT; N others here"
    let others_here =
        welcome.split("; ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect("count");
    Member { writer: s, lines, others_here }
}

impl Member {
    fn next_said(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.lines.read_line(&mut line).expect("a line");
            if !line.starts_with('*') {
                return line;
            }
        }
    }
}

/// At least three members of the room, on both threads: joins until
/// someone lands on a thread that did not have everyone so far (its
/// "N others here" counts only its own thread's room).
fn members_on_both_threads(room: SocketAddr) -> Vec<Member> {
    let mut members = Vec::new();
    for k in 0..40 {
        let m = join(room);
        let split = m.others_here < k;
        members.push(m);
        if split && members.len() >= 3 {
            break;
        }
    }
    assert!(members.iter().enumerate().any(|(k, m)| m.others_here < k), "every member landed on one thread");
    members
}

#[test]
fn chat_members_on_different_threads_hear_each_other_in_order() {
    let twirl = Threads::start(&["chat@tcp:0"]);
    let room = twirl.addrs[0];
    let mut members = members_on_both_threads(room);
    // The first member says three lines; everyone else hears all three, in order.
    for i in 0..3 {
        writeln!(members[0].writer, "line {i}").unwrap();
    }
    for (k, m) in members.iter_mut().enumerate().skip(1) {
        for i in 0..3 {
            let said = m.next_said();
            assert!(said.ends_with(&format!("] line {i}\n")), "member {k} heard {said:?}, wanted line {i}");
        }
    }
    // And the last member is heard by the first, wherever each is.
    let last = members.len() - 1;
    writeln!(members[last].writer, "from the last").unwrap();
    assert!(members[0].next_said().ends_with("] from the last\n"));
    drop(twirl);
}

#[test]
fn sigterm_with_both_threads_busy_exits_0_and_resets_nobody() {
    let mut twirl = Threads::start(&["echo@tcp:0"]);
    let echo = twirl.addrs[0];
    let (tx, rx) = mpsc::channel();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(echo).expect("connect");
                s.set_read_timeout(Some(WAIT)).unwrap();
                let msg = format!("client {i} says hello ");
                let mut buf = vec![0u8; msg.len()];
                // Bounded: the server stops within seconds; this cap is a backstop.
                for n in 0..1_000_000u32 {
                    if n == 100 {
                        let _ = tx.send(());
                    }
                    // A write fails only after a reset (a closed peer that
                    // drains what it is sent lets the write through).
                    if let Err(e) = s.write_all(msg.as_bytes()) {
                        return Err(e.kind());
                    }
                    match s.read(&mut buf) {
                        Ok(0) => return Ok(n),
                        Ok(_) => {}
                        Err(e) => return Err(e.kind()),
                    }
                }
                Ok(0)
            })
        })
        .collect();
    drop(tx);
    for _ in 0..8 {
        rx.recv_timeout(WAIT).expect("every client is busy");
    }
    twirl.signal(libc::SIGTERM);
    assert!(twirl.wait_exit().success(), "exit 0 after SIGTERM");
    for c in clients {
        let ended = c.join().expect("client");
        assert!(ended.is_ok(), "a client saw {ended:?} instead of a reply or a clean EOF");
    }
}

#[test]
fn a_restart_hands_every_threads_sockets_down_and_drops_nothing() {
    let mut old = Threads::start(&["echo@tcp:0"]);
    let echo = old.addrs[0];
    let load = Looping::start(echo, 4);
    load.wait_for(200);
    old.signal(libc::SIGUSR2);
    let deadline = Instant::now() + WAIT;
    let said = loop {
        assert!(Instant::now() < deadline, "no restart line");
        if let Ok(l) = old.stderr.recv_timeout(Duration::from_millis(100))
            && l.contains("restart: pid ")
        {
            break l;
        }
    };
    let _reap = Reap(new_copy_pid(&said));
    assert!(said.contains("(2 socket(s) handed down)"), "both threads' sockets: {said}");
    assert!(old.lines.recv_timeout(WAIT).expect("the new copy listens").ends_with(&format!("tcp:{echo}")));
    assert_eq!(old.lines.recv_timeout(WAIT).as_deref(), Ok("serving on 2 threads"));
    assert!(old.wait_exit().success(), "the old copy exits 0");
    let after = load.done();
    load.wait_for(200);
    let done = load.done();
    let failures = load.stop();
    assert!(failures.is_empty(), "{} round trips failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert!(done >= after + 200, "the new copy serves");
}

impl Member {
    /// Reads until `line` comes (notices included); false if it does not
    /// within the read timeout.
    fn hears(&mut self, line: &str) -> bool {
        for _ in 0..10_000 {
            let mut got = String::new();
            match self.lines.read_line(&mut got) {
                Ok(0) | Err(_) => return false,
                Ok(_) if got == line => return true,
                Ok(_) => {}
            }
        }
        false
    }
}

#[test]
fn chat_arrivals_and_departures_reach_every_thread() {
    let twirl = Threads::start(&["chat@tcp:0"]);
    let room = twirl.addrs[0];
    let mut members = members_on_both_threads(room);
    // A newcomer lands on one thread; some members are on the other, and
    // they hear of it too.
    let newcomer = join(room);
    let label = newcomer.writer.local_addr().expect("local address").to_string();
    for (k, m) in members.iter_mut().enumerate() {
        assert!(m.hears(&format!("* {label} joined\n")), "member {k} heard of the arrival");
    }
    drop(newcomer);
    for (k, m) in members.iter_mut().enumerate() {
        assert!(m.hears(&format!("* {label} left\n")), "member {k} heard of the departure");
    }
    drop(twirl);
}
