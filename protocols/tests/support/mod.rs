//! Shared helpers for the hardening tests (`bad_input`, `faults`, `soak`):
//! one reactor serving every plugin on ephemeral loopback ports, std-socket
//! clients whose every wait is bounded, and a well-behaved client per plugin
//! that checks the exact (or exactly shaped) answer.
//!
//! A `Reactor` holds boxed protocols and is not `Send`, so it is built on the
//! thread that runs it; the bound addresses and a handle come back through a
//! channel, and its counters are fetched on the loop thread with
//! `call_from_thread`.
//!
//! The tests that also run the `twirl` binary live with it, in `twirl-cli`
//! (`protocols/cli/tests`), and include this same file with `#[path]`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use twirl::endpoint::ServerEndpoint;
use twirl::{Config, Reactor, ReactorHandle, Stats};
use twirl_protocols::plugins::amf::codec::encode_packet;
use twirl_protocols::plugins::amf::{json as amf_json, sample_packet};
use twirl_protocols::registry::PLUGINS;
use twirl_protocols::serve::{self, ServeLimits, Spec};

/// The bound on every wait.
pub const WAIT: Duration = Duration::from_secs(10);
/// Socket read and write timeouts.
pub const READ: Duration = Duration::from_secs(5);

/// `struct.pack('!HIhi', 1, 2, -3, -4)` and the server's two lines for it.
pub const LAB: [u8; 12] = [0, 1, 0, 0, 0, 2, 0xff, 0xfd, 0xff, 0xff, 0xff, 0xfc];
pub const LAB_LINES: &str = "big-endian: 1 2 -3 -4\nlittle-endian: 256 33554432 -513 -50331649\n";

/// Seconds from 1900 (NTP, RFC 868) to 1970 (Unix).
pub const SECONDS_1900_TO_1970: u64 = 2_208_988_800;

/// A reactor on its own thread serving `PLUGIN@ENDPOINT` specs, with the
/// endpoints as bound (in the order given).
pub struct Served {
    pub bound: Vec<ServerEndpoint>,
    handle: ReactorHandle,
    done: mpsc::Receiver<io::Result<()>>,
    join: Option<JoinHandle<()>>,
}

impl Served {
    pub fn start(specs: &[&str]) -> Served {
        let words: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let join = thread::spawn(move || {
            // The reactor is not Send: it is built here, on its own thread.
            let mut reactor = Reactor::new().expect("reactor");
            let specs = serve::parse_specs(&words).expect("specs");
            let bound: Vec<ServerEndpoint> =
                specs.iter().map(|s| serve::bind(&mut reactor, s).expect("bind")).collect();
            ready_tx.send((bound, reactor.handle())).expect("send bound endpoints");
            let _ = done_tx.send(reactor.run());
        });
        let (bound, handle) = ready_rx.recv_timeout(WAIT).expect("server started");
        Served { bound, handle, done: done_rx, join: Some(join) }
    }

    pub fn tcp(&self, i: usize) -> SocketAddr {
        match &self.bound[i] {
            ServerEndpoint::Tcp(a) => *a,
            other => panic!("endpoint {i} is {other}, not tcp"),
        }
    }

    pub fn udp(&self, i: usize) -> SocketAddr {
        match &self.bound[i] {
            ServerEndpoint::Udp(a) => *a,
            other => panic!("endpoint {i} is {other}, not udp"),
        }
    }

    pub fn stop(mut self) {
        self.handle.stop();
        self.done.recv_timeout(WAIT).expect("reactor stopped in time").expect("reactor ran cleanly");
        if let Some(j) = self.join.take() {
            j.join().expect("reactor thread");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed test still stops its reactor.
        if self.join.is_some() {
            self.handle.stop();
        }
    }
}

/// Where one plugin listens.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ports {
    pub tcp: Option<SocketAddr>,
    pub udp: Option<SocketAddr>,
}

/// A reactor on its own thread serving every plugin (but the raw-socket
/// one) on `tcp:0` and `udp:0`, with the given config and listener limits.
pub struct AllPlugins {
    pub ports: BTreeMap<&'static str, Ports>,
    pub handle: ReactorHandle,
    done: mpsc::Receiver<io::Result<()>>,
    join: Option<JoinHandle<()>>,
}

impl AllPlugins {
    pub fn start(config: Config, limits: ServeLimits) -> AllPlugins {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let join = thread::Builder::new()
            .name("reactor".into())
            .spawn(move || {
                let mut reactor = Reactor::with_config(config).expect("reactor");
                let mut ports = BTreeMap::new();
                for plugin in PLUGINS.iter().filter(|p| p.raw.is_none() && !p.needs_options()) {
                    let mut p = Ports::default();
                    if plugin.stream.is_some() {
                        let spec = Spec::new(plugin, "tcp:0".parse().expect("endpoint"));
                        match serve::bind_with(&mut reactor, &spec, &limits).expect("bind tcp") {
                            ServerEndpoint::Tcp(a) => p.tcp = Some(a),
                            other => panic!("{other}"),
                        }
                    }
                    if plugin.datagram.is_some() {
                        let spec = Spec::new(plugin, "udp:0".parse().expect("endpoint"));
                        match serve::bind_with(&mut reactor, &spec, &limits).expect("bind udp") {
                            ServerEndpoint::Udp(a) => p.udp = Some(a),
                            other => panic!("{other}"),
                        }
                    }
                    ports.insert(plugin.name, p);
                }
                ready_tx.send((ports, reactor.handle())).expect("send bound endpoints");
                let _ = done_tx.send(reactor.run());
            })
            .expect("spawn reactor thread");
        let (ports, handle) = ready_rx.recv_timeout(WAIT).expect("server started");
        AllPlugins { ports, handle, done: done_rx, join: Some(join) }
    }

    pub fn tcp(&self, plugin: &str) -> SocketAddr {
        self.ports[plugin].tcp.unwrap_or_else(|| panic!("{plugin} has no tcp"))
    }

    pub fn udp(&self, plugin: &str) -> SocketAddr {
        self.ports[plugin].udp.unwrap_or_else(|| panic!("{plugin} has no udp"))
    }

    /// Runs `f` on the loop thread and waits (bounded) for its result.
    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Reactor) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        self.handle.call_from_thread(move |r| {
            let _ = tx.send(f(r));
        });
        rx.recv_timeout(WAIT).expect("call_from_thread ran on the loop")
    }

    pub fn stats(&self) -> Stats {
        self.call(|r| r.stats())
    }

    /// Waits (bounded by `within`) until no stream connection is open; the
    /// last counters either way. There is no event to wait on from outside
    /// the loop, so this asks the loop every 10 ms.
    pub fn wait_until_no_connection(&self, within: Duration) -> Stats {
        let deadline = Instant::now() + within;
        loop {
            let s = self.stats();
            if s.open == 0 || Instant::now() >= deadline {
                return s;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stop(mut self) {
        self.handle.stop();
        self.done.recv_timeout(WAIT).expect("reactor stopped in time").expect("reactor ran cleanly");
        if let Some(j) = self.join.take() {
            j.join().expect("reactor thread");
        }
    }
}

impl Drop for AllPlugins {
    fn drop(&mut self) {
        // A test that panicked before `stop`: do not leave the loop running.
        if self.join.is_some() {
            self.handle.stop();
        }
    }
}

// ------------------------------------------------------------------ sockets

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(READ)).expect("read timeout");
    s.set_write_timeout(Some(READ)).expect("write timeout");
    s
}

/// How a read to the end finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The server closed cleanly (FIN).
    Eof,
    /// The connection was reset.
    Reset,
    /// Nothing for [`READ`]: the server neither answered nor closed.
    Timeout,
}

/// Reads until EOF, reset or the read timeout.
pub fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, End::Eof),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return (got, End::Timeout);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (got, End::Reset),
        }
    }
}

/// Reads until `n` newlines have arrived, EOF, reset or timeout.
pub fn read_lines(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|&&b| b == b'\n').count() < n {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    got
}

/// Reads exactly `n` bytes (or what came before EOF, reset or timeout).
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    let mut have = 0;
    while have < n {
        match s.read(&mut got[have..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => have += k,
        }
    }
    got.truncate(have);
    got
}

/// Sends `data`, half-closes, reads the reply to the end.
pub fn exchange(addr: SocketAddr, data: &[u8]) -> (Vec<u8>, End) {
    let mut s = connect(addr);
    if !data.is_empty() {
        s.write_all(data).expect("write");
    }
    s.shutdown(Shutdown::Write).expect("half-close");
    read_to_end(&mut s)
}

/// Makes the next close of `s` a reset (RST), not a FIN, then drops it.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).expect("SO_LINGER 0");
    drop(s);
}

pub fn udp_socket() -> UdpSocket {
    let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    u.set_read_timeout(Some(READ)).expect("read timeout");
    u
}

/// The next datagram from `from` on `u` (bounded by the read timeout).
pub fn recv_from(u: &UdpSocket, from: SocketAddr) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + READ;
    while Instant::now() < deadline {
        match u.recv_from(&mut buf) {
            Ok((n, a)) if a == from => return Some(buf[..n].to_vec()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// One datagram out, its answer back (bounded).
pub fn udp_ask(to: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let u = udp_socket();
    u.send_to(request, to).expect("send");
    recv_from(&u, to)
}

/// A sender on port P and a receiver already bound on P+1 (for `reorder`).
pub fn port_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let receiver = udp_socket();
        let r = receiver.local_addr().expect("addr").port();
        if r < 2 {
            continue;
        }
        if let Ok(sender) = UdpSocket::bind(("127.0.0.1", r - 1)) {
            sender.set_read_timeout(Some(READ)).expect("read timeout");
            return (sender, receiver);
        }
    }
    panic!("no two adjacent free ports");
}

// ------------------------------------------------------------------ answers

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

/// A daytime line for now: `Tuesday, February 22, 1982 17:37:43-UTC\r\n`.
pub fn is_daytime_now(reply: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(reply).map_err(|_| format!("daytime reply not UTF-8: {reply:?}"))?;
    let line = text.strip_suffix("\r\n").ok_or_else(|| format!("{text:?} does not end with CRLF"))?;
    let t = chrono::NaiveDateTime::parse_from_str(line, "%A, %B %d, %Y %H:%M:%S-UTC")
        .map_err(|e| format!("{line:?}: {e}"))?;
    let off = t.and_utc().timestamp() as f64 - unix_now();
    if off.abs() < 5.0 { Ok(()) } else { Err(format!("{line} is not now")) }
}

/// An RFC 868 time value for now.
pub fn is_binarytime_now(reply: &[u8]) -> Result<(), String> {
    let v: [u8; 4] = reply.try_into().map_err(|_| format!("{} bytes, not 4", reply.len()))?;
    let unix = u64::from(u32::from_be_bytes(v)) as f64 - SECONDS_1900_TO_1970 as f64;
    if (unix - unix_now()).abs() < 5.0 { Ok(()) } else { Err(format!("{unix} is not now")) }
}

/// A `time` plugin stamp (`Sun Nov 22 14:03:07 2026`), with or without `\n`.
pub fn is_time_stamp(reply: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(reply);
    match twirl_protocols::plugins::time::parse_stamp(&text) {
        Some(_) => Ok(()),
        None => Err(format!("not a time stamp: {text:?}")),
    }
}

/// A 48-byte client request (LI 0, `version`, `mode`), transmit stamped with `tag`.
pub fn sntp_request(version: u8, mode: u8, tag: u32) -> ([u8; 48], [u8; 8]) {
    let mut p = [0u8; 48];
    p[0] = (version << 3) | mode;
    p[2] = 6;
    let secs = (unix_now() as u64 + SECONDS_1900_TO_1970) as u32;
    let mut transmit = [0u8; 8];
    transmit[..4].copy_from_slice(&secs.to_be_bytes());
    transmit[4..].copy_from_slice(&tag.to_be_bytes());
    p[40..].copy_from_slice(&transmit);
    (p, transmit)
}

/// A server-mode reply to the request stamped `transmit`.
pub fn is_sntp_reply(reply: &[u8], version: u8, transmit: &[u8; 8]) -> Result<(), String> {
    if reply.len() != 48 {
        return Err(format!("sntp reply of {} bytes", reply.len()));
    }
    if reply[0] != (version << 3) | 4 || reply[1] != 10 || &reply[24..32] != transmit {
        return Err(format!("not the reply to this request: {:02x?}", &reply[..32]));
    }
    Ok(())
}

/// The JSON line the amf plugin answers the sample packet with.
pub fn amf_sample() -> (Vec<u8>, String) {
    let p = sample_packet();
    (encode_packet(&p).expect("encode"), format!("{}\n", amf_json::packet_to_json(&p)))
}

fn expect_eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {:?}, want {:?}",
            String::from_utf8_lossy(&got[..got.len().min(300)]),
            String::from_utf8_lossy(want)
        ))
    }
}

fn expect_clean(what: &str, reply: (Vec<u8>, End), want: &[u8]) -> Result<(), String> {
    expect_eq(what, &reply.0, want)?;
    if reply.1 == End::Eof { Ok(()) } else { Err(format!("{what}: ended by {:?}, not a clean close", reply.1)) }
}

/// A well-behaved client of `plugin` over TCP: one request, the exact answer.
pub fn good_tcp(plugin: &str, addr: SocketAddr) -> Result<(), String> {
    let what = format!("good {plugin} tcp client");
    match plugin {
        "echo" => expect_clean(&what, exchange(addr, b"ping \x00\xff\n"), b"ping \x00\xff\n"),
        "discard" => expect_clean(&what, exchange(addr, b"into the void"), b""),
        "chargen" => {
            let mut s = connect(addr);
            let got = read_n(&mut s, 2 * 74);
            let mut want = twirl_protocols::plugins::chargen::line(0).to_vec();
            want.extend_from_slice(&twirl_protocols::plugins::chargen::line(1));
            expect_eq(&what, &got, &want)
        }
        "caps" => expect_clean(&what, exchange(addr, b"capitalize this!\xff"), b"CAPITALIZE THIS!\xff"),
        "chat" => good_chat(addr),
        "struct" => expect_clean(&what, exchange(addr, &LAB), LAB_LINES.as_bytes()),
        "reverse" => expect_clean(&what, exchange(addr, b"hello big world\r\n"), b"world big hello\n"),
        "upper" => expect_clean(&what, exchange(addr, "grüß dich\n".as_bytes()), "GRÜSS DICH\n".as_bytes()),
        "json" => expect_clean(
            &what,
            exchange(addr, b"{\"b\":[1,{\"d\":0,\"c\":1}],\"a\":null}\n"),
            b"{\"a\":null,\"b\":[1,{\"c\":1,\"d\":0}]}\n",
        ),
        "time" => {
            let (reply, end) = exchange(addr, b"reqtime\n");
            is_time_stamp(&reply)?;
            if end == End::Eof { Ok(()) } else { Err(format!("{what}: ended by {end:?}")) }
        }
        "daytime" => is_daytime_now(&exchange(addr, b"").0),
        "binarytime" => is_binarytime_now(&exchange(addr, b"").0),
        "amf" => {
            let (packet, line) = amf_sample();
            expect_clean(&what, exchange(addr, &packet), line.as_bytes())
        }
        "http" => {
            // Serves the directory the test runs in: its listing.
            let (reply, end) = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
            let text = String::from_utf8_lossy(&reply);
            if text.starts_with("HTTP/1.0 200 OK\r\n") && text.contains("Directory listing for /") && end == End::Eof {
                Ok(())
            } else {
                Err(format!("{what}: {end:?} {}", &text[..text.len().min(200)]))
            }
        }
        other => Err(format!("no good tcp client for {other}")),
    }
}

/// Two chat members: the second one's line reaches the first. Other lines
/// (notices about other members, relays of their lines) are skipped: under
/// churn a member's label (IP:port) may even be one a client that just reset
/// used a moment before, whose "left" notice can still be on its way.
fn good_chat(addr: SocketAddr) -> Result<(), String> {
    use std::io::BufRead;
    let a = connect(addr);
    let mut a_lines = io::BufReader::new(a.try_clone().map_err(|e| e.to_string())?);
    let mut wait_for = |want: &dyn Fn(&str) -> bool, what: &str| -> Result<(), String> {
        loop {
            let mut line = Vec::new();
            match a_lines.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return Err(format!("chat: no {what}")),
                Ok(_) => {}
            }
            if want(&String::from_utf8_lossy(&line)) {
                return Ok(());
            }
        }
    };
    wait_for(&|l| l.starts_with("* you are 127.0.0.1:"), "welcome")?;
    let mut b = connect(addr);
    let b_label = b.local_addr().expect("addr").to_string();
    read_lines(&mut b, 1);
    // Right after a burst the room may count arrivals instead of announcing
    // each (chat::NOTICE_WRITES_PER_SEC): a summary says so a moment later.
    let joined = |l: &str| l == format!("* {b_label} joined\n") || (l.starts_with("* ") && l.contains(" more joined"));
    wait_for(&joined, "join notice")?;
    b.write_all(b"hi there\n").map_err(|e| e.to_string())?;
    wait_for(&|l| l == format!("[{b_label}] hi there\n"), "relayed line")?;
    b.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let left = |l: &str| l == format!("* {b_label} left\n") || (l.starts_with("* ") && l.contains(" more left"));
    wait_for(&left, "leave notice")
}

/// A well-behaved client of `plugin` over UDP: one datagram, the exact answer.
pub fn good_udp(plugin: &str, addr: SocketAddr) -> Result<(), String> {
    let what = format!("good {plugin} udp client");
    let ask = |req: &[u8]| udp_ask(addr, req).ok_or_else(|| format!("{what}: no answer"));
    match plugin {
        "echo" => expect_eq(&what, &ask(b"\x00ping\xff")?, b"\x00ping\xff"),
        "discard" => Ok(()), // never answers: nothing to check from outside
        "chargen" => {
            let reply = ask(b"x")?;
            // Loopback: six whole 74-byte lines of the pattern.
            let ok = reply.len() == 6 * 74
                && reply.chunks(74).all(|l| (0..95).any(|n| twirl_protocols::plugins::chargen::line(n) == l));
            if ok { Ok(()) } else { Err(format!("{what}: {} bytes, not six pattern lines", reply.len())) }
        }
        "reverse" => expect_eq(&what, &ask(b"one two three")?, b"three two one"),
        "upper" => expect_eq(&what, &ask(b"abc\n")?, b"ABC\n"),
        "json" => expect_eq(&what, &ask(b"{\"z\":1,\"a\":\"x\"}\n")?, b"{\"a\":\"x\",\"z\":1}"),
        "time" => is_time_stamp(&ask(b"reqtime")?),
        "daytime" => is_daytime_now(&ask(b"")?),
        "binarytime" => is_binarytime_now(&ask(b"")?),
        "sntp" => {
            let (req, transmit) = sntp_request(4, 3, 0x5eed);
            is_sntp_reply(&ask(&req)?, 4, &transmit)
        }
        "reorder" => {
            let (sender, receiver) = port_pair();
            sender.send_to(b"a ccc bb", addr).map_err(|e| e.to_string())?;
            let reply = recv_from(&receiver, addr).ok_or_else(|| format!("{what}: no answer on port + 1"))?;
            expect_eq(&what, &reply, b"ccc bb a")
        }
        other => Err(format!("no good udp client for {other}")),
    }
}

/// Every plugin's well-behaved clients, over every transport it speaks.
pub fn all_good(server: &AllPlugins) -> Result<(), String> {
    for (name, p) in &server.ports {
        if let Some(a) = p.tcp {
            good_tcp(name, a)?;
        }
        if let Some(a) = p.udp {
            good_udp(name, a)?;
        }
    }
    Ok(())
}

/// Runs `cmd` with `stdin` fed in; kills it and fails if it outlives `within`.
pub fn run(mut cmd: Command, stdin: &[u8], within: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    finish(child, within)
}

/// Waits for a spawned child's exit and output, at most `within` (then
/// kills it and panics).
pub fn finish(child: std::process::Child, within: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("child output"),
        Err(_) => {
            // SAFETY: kill(2) on a child we spawned; it has not been reaped (wait is still pending).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("child {pid} did not finish within {within:?}");
        }
    }
}

/// Runs the `twirl` binary (see [`run`]). Only the tests of the package that
/// builds it (`twirl-cli`, which includes this file) can: elsewhere Cargo
/// does not say where it is.
pub fn run_twirl(args: &[&str], stdin: &[u8], within: Duration) -> Output {
    let Some(bin) = option_env!("CARGO_BIN_EXE_twirl") else {
        panic!("no twirl binary here: run_twirl is for twirl-cli's tests");
    };
    let mut c = Command::new(bin);
    c.args(args);
    run(c, stdin, within)
}

/// A child's stdout as (lossy) text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
