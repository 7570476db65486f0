//! The `http` plugin against nginx (one worker, sendfile on, access log
//! off) and `python3 -m http.server`, side by side in one run: small-file
//! requests per second and server CPU per request over 100 kept-alive
//! connections (no pipelining), and large-file MB/s and server CPU per MB.
//!
//! ```text
//! cargo build --release -p twirl-cli -p twirl-bench
//! target/release/http-bench [--twirl PATH] [--rounds N] [--duration SECS] [--conns N]
//! ```
//!
//! Each server runs pinned to core 0, this load generator (one thread, on
//! mio) to core 1. Rounds interleave the servers (A B C A B C ...); the
//! table gives medians. Server CPU is utime+stime from `/proc/PID/stat`
//! over the measured seconds. nginx runs with `master_process off` so that
//! the one process measured is the one that works. A server that is not
//! installed is left out, and the table says so.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use twirl_bench::{Args, pin_to_core, read_cpu};

const SMALL: usize = 1024;
const LARGE: usize = 64 << 20;

/// One server under test.
struct Server {
    key: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(key: &'static str, mut cmd: Command, port: u16) -> Result<Server, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only sched_setaffinity, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| pin_to_core(0));
    }
    let child = cmd.spawn().map_err(|e| format!("{key}: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = Server { key, child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if Instant::now() > deadline || s.child.try_wait().ok().flatten().is_some() {
            return Err(format!("{key} did not start"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let _ = &mut s;
    Ok(s)
}

fn start(key: &'static str, root: &Path, twirl: &Path) -> Result<Server, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    match key {
        "twirl" => {
            let mut c = Command::new(twirl);
            c.args(["serve", &format!("http@tcp:{port}"), &format!("root={}", root.display())]);
            spawn(key, c, port)
        }
        "nginx" => {
            let conf = root.parent().unwrap().join("nginx.conf");
            let tmp = root.parent().unwrap().join("nginx-tmp");
            let _ = std::fs::create_dir_all(&tmp);
            std::fs::write(
                &conf,
                format!(
                    "daemon off; master_process off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n\
                     events {{ worker_connections 4096; }}\n\
                     http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n\
                     client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
                     server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
                    tmp = tmp.display(),
                    root = root.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut c = Command::new("nginx");
            c.args(["-c", conf.to_str().unwrap(), "-p", tmp.to_str().unwrap()]);
            spawn(key, c, port)
        }
        _ => {
            let mut c = Command::new("python3");
            c.args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()]).current_dir(root);
            spawn(key, c, port)
        }
    }
}

/// One client connection's state.
struct Conn {
    sock: MioStream,
    buf: Vec<u8>,
    /// Body bytes still expected (after the head).
    body_left: Option<usize>,
    keep_alive: bool,
    /// The request of the moment went out.
    sent: bool,
}

/// Results of one run.
#[derive(Default, Clone, Copy)]
struct Run {
    requests: f64,
    bytes: f64,
    secs: f64,
    cpu_us: f64,
}

/// Connects without blocking (a server with a short accept queue, as
/// Python's, must not stall the others); the request goes once writable.
fn connect(addr: SocketAddr, poll: &Poll, token: usize) -> io::Result<Conn> {
    let mut sock = MioStream::connect(addr)?;
    poll.registry().register(&mut sock, Token(token), Interest::READABLE | Interest::WRITABLE)?;
    Ok(Conn { sock, buf: Vec::new(), body_left: None, keep_alive: true, sent: false })
}

fn send(c: &mut Conn, request: &[u8]) -> io::Result<()> {
    // A request is far smaller than a socket buffer: it goes in one write.
    let n = c.sock.write(request)?;
    if n != request.len() {
        return Err(io::Error::other("short request write"));
    }
    c.sent = true;
    Ok(())
}

/// Runs `conns` connections asking for `path` one request at a time each,
/// for `warmup` then `duration`; counts what the measured part got.
fn load(server: &Server, path: &str, conns: usize, warmup: Duration, duration: Duration) -> Result<Run, String> {
    let err = |e: io::Error| format!("{}: {e}", server.key);
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes();
    let mut poll = Poll::new().map_err(err)?;
    let mut events = Events::with_capacity(1024);
    let mut all: Vec<Conn> =
        (0..conns).map(|i| connect(server.addr, &poll, i)).collect::<Result<_, _>>().map_err(err)?;
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let end = measure_from + duration;
    let (mut measuring, mut cpu0) = (false, None);
    let mut run = Run::default();
    let mut chunk = vec![0u8; 256 * 1024];
    while Instant::now() < end {
        if !measuring && Instant::now() >= measure_from {
            measuring = true;
            cpu0 = Some(read_cpu(server.child.id()).map_err(err)?);
        }
        poll.poll(&mut events, Some(Duration::from_millis(100))).map_err(err)?;
        for ev in events.iter() {
            let i = ev.token().0;
            if !all[i].sent && ev.is_writable() {
                match send(&mut all[i], &request) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => return Err(err(e)),
                }
            }
            loop {
                let c = &mut all[i];
                let n = match c.sock.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(err(e)),
                };
                if n == 0 {
                    // The server closed (HTTP/1.0 style): a new connection.
                    if c.body_left.is_some() || !c.buf.is_empty() {
                        return Err(format!("{}: closed mid-answer", server.key));
                    }
                    let _ = poll.registry().deregister(&mut c.sock);
                    all[i] = connect(server.addr, &poll, i).map_err(err)?;
                    break;
                }
                let mut data = &chunk[..n];
                while !data.is_empty() {
                    let c = &mut all[i];
                    if c.body_left.is_none() {
                        c.buf.extend_from_slice(data);
                        data = &[];
                        let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") else { break };
                        let head = String::from_utf8_lossy(&c.buf[..end]).to_ascii_lowercase();
                        if !head.starts_with("http/1.1 200") && !head.starts_with("http/1.0 200") {
                            return Err(format!("{}: {}", server.key, head.lines().next().unwrap_or("")));
                        }
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .ok_or_else(|| format!("{}: no Content-Length", server.key))?;
                        c.keep_alive = head.starts_with("http/1.1") && !head.contains("connection: close");
                        let rest = c.buf.split_off(end + 4);
                        c.buf.clear();
                        c.body_left = Some(len);
                        // What came after the head is body (one request at a time).
                        let take = rest.len().min(len);
                        c.body_left = Some(len - take);
                        if measuring {
                            run.bytes += take as f64;
                        }
                    } else {
                        let left = c.body_left.unwrap_or(0);
                        let take = data.len().min(left);
                        c.body_left = Some(left - take);
                        data = &data[take..];
                        if measuring {
                            run.bytes += take as f64;
                        }
                    }
                    if c.body_left == Some(0) {
                        c.body_left = None;
                        if measuring {
                            run.requests += 1.0;
                        }
                        c.sent = false;
                        if c.keep_alive {
                            send(c, &request).map_err(err)?;
                        }
                    }
                }
            }
        }
    }
    let cpu1 = read_cpu(server.child.id()).map_err(err)?;
    run.secs = duration.as_secs_f64();
    run.cpu_us = cpu0.map(|c0| cpu1.since(&c0).total_us()).unwrap_or(0.0);
    Ok(run)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("http-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let a = Args::from_env()?;
    let rounds: usize = a.num("rounds", 3)?;
    let duration = a.secs("duration", 3.0)?;
    let warmup = a.secs("warmup", 0.5)?;
    let conns: usize = a.num("conns", 100)?;
    let large_conns: usize = a.num("large-conns", 4)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let twirl = a.get("twirl").map(PathBuf::from).unwrap_or_else(|| exe.with_file_name("twirl"));
    pin_to_core(1).map_err(|e| e.to_string())?;
    let base = std::env::temp_dir().join(format!("twirl-http-bench-{}", std::process::id()));
    let root = base.join("root");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    std::fs::write(root.join("small.txt"), vec![b'x'; SMALL]).map_err(|e| e.to_string())?;
    let large: Vec<u8> = (0..LARGE).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(root.join("large.bin"), &large).map_err(|e| e.to_string())?;
    drop(large);
    let mut keys = vec!["twirl"];
    let mut missing = Vec::new();
    for (key, program) in [("nginx", "nginx"), ("python", "python3")] {
        if have(program) { keys.push(key) } else { missing.push(key) }
    }
    let mut small: HashMap<&str, Vec<Run>> = HashMap::new();
    let mut big: HashMap<&str, Vec<Run>> = HashMap::new();
    for round in 0..rounds {
        for &key in &keys {
            let server = start(key, &root, &twirl)?;
            let r = load(&server, "/small.txt", conns, warmup, duration)?;
            eprintln!(
                "round {round} {key} small: {:.0} req/s, {:.1} µs CPU/req",
                r.requests / r.secs,
                r.cpu_us / r.requests
            );
            small.entry(key).or_default().push(r);
            let r = load(&server, "/large.bin", large_conns, warmup, duration)?;
            eprintln!(
                "round {round} {key} large: {:.0} MB/s, {:.0} µs CPU/MB",
                r.bytes / 1e6 / r.secs,
                r.cpu_us / (r.bytes / 1e6)
            );
            big.entry(key).or_default().push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    let per = |m: &HashMap<&str, Vec<Run>>, k: &str, f: &dyn Fn(&Run) -> f64| {
        median(m.get(k).map(|v| v.iter().map(f).collect()).unwrap_or_default())
    };
    let rps = |r: &Run| r.requests / r.secs;
    let us_req = |r: &Run| r.cpu_us / r.requests;
    let mbs = |r: &Run| r.bytes / 1e6 / r.secs;
    let us_mb = |r: &Run| r.cpu_us / (r.bytes / 1e6);
    println!(
        "| server | small: req/s | small: CPU µs/req | twirl/peer CPU per req | large: MB/s | large: CPU µs/MB | twirl/peer CPU per MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (t_req, t_mb) = (per(&small, "twirl", &us_req), per(&big, "twirl", &us_mb));
    for &key in &keys {
        let (q, m) = (per(&small, key, &us_req), per(&big, key, &us_mb));
        println!(
            "| {key} | {:.0} | {:.2} | {} | {:.0} | {:.0} | {} |",
            per(&small, key, &rps),
            q,
            if key == "twirl" { "-".to_string() } else { format!("{:.2}", t_req / q) },
            per(&big, key, &mbs),
            m,
            if key == "twirl" { "-".to_string() } else { format!("{:.2}", t_mb / m) },
        );
    }
    for key in missing {
        println!("| {key} | not installed | | | | | |");
    }
    println!(
        "\n{rounds} rounds (medians), {conns} kept-alive connections for a {SMALL}-byte file, {large_conns} for a {} MiB file; \
         {:.1} s measured after {:.1} s of warm-up per run; servers on core 0, the load generator on core 1.",
        LARGE >> 20,
        duration.as_secs_f64(),
        warmup.as_secs_f64()
    );
    Ok(())
}
