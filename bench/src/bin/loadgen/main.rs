//! The load generator: one thread, one mio `Poll`, pinned to a core, verifying
//! every byte it gets back, and reading the server's CPU time and memory from
//! `/proc` around the measured window.
//!
//! ```text
//! loadgen --workload pingpong --addr 127.0.0.1:PORT --pid PID
//!         [--conns 100] [--size 64] [--inflight 1] [--transform echo|reverse]
//!         [--framing lines|prefixed] [--warmup 1] [--duration 4] [--core 1]
//! loadgen --workload stream   ... [--streams 1] [--chunk 16384] [--window 262144]
//! loadgen --workload fair     ... (--streams streaming connections plus --conns pingpong ones)
//! loadgen --workload churn    ... [--concurrency 32] [--size 64]
//! loadgen --workload idle     ... [--conns 10000] [--settle 1]
//! loadgen --workload fanout   ... [--members 500] [--lines 200] [--size 1024]
//!                                 [--member-rcvbuf 4096] [--member-mss 1460]
//! ```
//!
//! `--framing prefixed` makes each pingpong message a 4-byte big-endian length
//! and a payload, `--size` bytes in all (twirl's `PrefixedReceiver` with
//! `Prefix::U32`); the server must echo it. The stream workloads also report
//! the server's RSS at the start and end of the measured window and its peak
//! (`VmHWM`; the server is fresh for each run). `fanout` is the chat fan-out
//! (see the `fanout` module) against `twirl serve chat@tcp:PORT`.
//!
//! It prints one line, `RESULT key=value ...`, and exits 0; on any error (a
//! wrong byte, a connection lost, a stall, the hard deadline) it prints
//! `ERROR ...` and exits 1.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use twirl_bench::{Args, CpuTime, Framing, Transform, message, pattern, read_cpu, read_rss, read_status_bytes};

mod fanout;

/// Distinct messages per size; connection `c` sends them in turn from `c`.
const POOL: usize = 64;
/// Connections connecting (or waiting for their first reply) at once.
const MAX_PENDING: usize = 256;
/// How long nothing may happen before the run is declared stalled.
const STALL: Duration = Duration::from_secs(5);
/// Reads per readiness event for a streaming connection before others get a turn.
const STREAM_READS_PER_TURN: usize = 4;
/// The read buffer (and the largest stream chunk verified at once).
const READ_BUF: usize = 64 * 1024;

type Res<T> = Result<T, String>;

/// The command line.
struct Opts {
    workload: String,
    addr: SocketAddr,
    pid: Option<u32>,
    conns: usize,
    size: usize,
    inflight: usize,
    transform: Transform,
    framing: Framing,
    warmup: Duration,
    duration: Duration,
    streams: usize,
    chunk: usize,
    window: u64,
    concurrency: usize,
    settle: Duration,
    /// Fan-out: members, lines the sender sends, and each member's socket
    /// options (0: the system's default).
    members: usize,
    lines: usize,
    member_rcvbuf: usize,
    member_mss: u32,
}

fn opts() -> Res<Opts> {
    let a = Args::from_env()?;
    let addr = a.get("addr").ok_or("--addr is required")?.parse().map_err(|e| format!("--addr: {e}"))?;
    let transform = a.get("transform").unwrap_or("echo");
    let framing = a.get("framing").unwrap_or("lines");
    let fanout = a.get("workload") == Some("fanout");
    let o = Opts {
        workload: a.get("workload").unwrap_or("pingpong").to_string(),
        addr,
        pid: a.get("pid").map(|p| p.parse().map_err(|_| format!("--pid '{p}'"))).transpose()?,
        conns: a.num("conns", 100)?,
        size: a.num("size", if fanout { 1024 } else { 64 })?,
        inflight: a.num("inflight", 1)?,
        transform: Transform::parse(transform).ok_or(format!("--transform '{transform}': echo or reverse"))?,
        framing: Framing::parse(framing).ok_or(format!("--framing '{framing}': lines or prefixed"))?,
        warmup: a.secs("warmup", 1.0)?,
        duration: a.secs("duration", 4.0)?,
        streams: a.num("streams", 1)?,
        chunk: a.num("chunk", 16 * 1024)?,
        window: a.num("window", 256 * 1024)?,
        concurrency: a.num("concurrency", 32)?,
        settle: a.secs("settle", 1.0)?,
        members: a.num("members", 500)?,
        lines: a.num("lines", 200)?,
        member_rcvbuf: a.num("member-rcvbuf", 4096)?,
        member_mss: a.num("member-mss", 1460)?,
    };
    if let Some(core) = a.get("core") {
        let core: usize = core.parse().map_err(|_| format!("--core '{core}'"))?;
        twirl_bench::pin_to_core(core).map_err(|e| format!("pin to core {core}: {e}"))?;
    }
    if o.size < o.framing.min_size() || o.chunk == 0 || o.chunk > READ_BUF || o.inflight == 0 || o.concurrency == 0 {
        return Err(format!(
            "--size must be >= {} ({:?} framing), --chunk 1..=65536, --inflight and --concurrency >= 1",
            o.framing.min_size(),
            o.framing
        ));
    }
    if o.framing == Framing::Prefixed && o.transform != Transform::Echo {
        return Err("--framing prefixed: the server must echo (--transform echo)".into());
    }
    Ok(o)
}

fn main() {
    let result = opts().and_then(|o| {
        twirl_bench::raise_nofile(o.conns.max(o.concurrency).max(o.members) as u64 * 2 + 1024);
        match o.workload.as_str() {
            "pingpong" => run_mixed(&o, o.conns, 0),
            "stream" => run_mixed(&o, 0, o.streams),
            "fair" => run_mixed(&o, o.conns, o.streams),
            "churn" => run_churn(&o),
            "idle" => run_idle(&o),
            "fanout" => fanout::run(&o),
            w => Err(format!("unknown workload '{w}' (pingpong, stream, fair, churn, idle, fanout)")),
        }
    });
    match result {
        Ok(line) => println!("RESULT {line}"),
        Err(e) => {
            println!("ERROR {e}");
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

/// This process's own CPU time, in microseconds.
fn self_cpu_us() -> f64 {
    // SAFETY: getrusage fills a zeroed, properly sized rusage.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A `kB` field of the server's `/proc/PID/status` in bytes, or 0 when no
/// `--pid` was given.
fn server_rss(pid: Option<u32>, field: &str) -> Res<u64> {
    match pid {
        Some(p) => read_status_bytes(p, field).map_err(|e| format!("reading the server's {field}: {e}")),
        None => Ok(0),
    }
}

/// The server's CPU, or zeros when no `--pid` was given.
fn server_cpu(pid: Option<u32>) -> Res<CpuTime> {
    match pid {
        Some(p) => read_cpu(p).map_err(|e| format!("reading the server's CPU time: {e}")),
        None => Ok(CpuTime::default()),
    }
}

/// A snapshot taken at the start and end of the measured window.
struct Mark {
    at: Instant,
    server: CpuTime,
    own_us: f64,
    /// (busy, steal) of every CPU.
    cpus: Vec<(f64, f64)>,
}

impl Mark {
    fn take(pid: Option<u32>) -> Res<Mark> {
        Ok(Mark { at: Instant::now(), server: server_cpu(pid)?, own_us: self_cpu_us(), cpus: twirl_bench::cpu_busy() })
    }
}

/// `key=value` pairs common to every timed workload.
fn window_fields(start: &Mark, end: &Mark) -> String {
    let secs = end.at.duration_since(start.at).as_secs_f64();
    let cpu = end.server.since(&start.server);
    let own = end.own_us - start.own_us;
    // Whatever else ran on the machine meanwhile (other processes, interrupts),
    // in percent of one core, and the time the hypervisor took away.
    let busy: f64 = end.cpus.iter().zip(&start.cpus).map(|(e, s)| e.0 - s.0).sum();
    let steal: f64 = end.cpus.iter().zip(&start.cpus).map(|(e, s)| e.1 - s.1).sum();
    format!(
        "secs={secs:.3} cpu_us={:.0} user_us={:.0} sys_us={:.0} minflt={:.0} server_cpu_pct={:.1} lg_cpu_pct={:.1} \
         other_cpu_pct={:.1} steal_pct={:.1}",
        cpu.total_us(),
        cpu.user_us,
        cpu.sys_us,
        cpu.minflt,
        cpu.total_us() / secs / 1e4,
        own / secs / 1e4,
        ((busy - cpu.total_us() - own) / secs / 1e4).max(0.0),
        steal / secs / 1e4
    )
}

fn percentiles(samples: &mut [u32]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] as f64 / 1e3;
    (at(0.50), at(0.99), at(0.999))
}

fn connect(addr: SocketAddr) -> Res<TcpStream> {
    TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))
}

/// Whether a connecting socket is now connected: `Ok(false)` while still
/// in progress, an error if the connection failed.
fn connected(sock: &TcpStream) -> Res<bool> {
    if let Ok(Some(e)) | Err(e) = sock.take_error() {
        return Err(format!("connect: {e}"));
    }
    match sock.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(format!("connect: {e}")),
    }
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    PingPong,
    Stream,
}

/// One connection of the pingpong, stream and fair workloads.
struct Conn {
    sock: TcpStream,
    kind: Kind,
    id: usize,
    /// The connect finished.
    up: bool,
    /// Its first reply arrived (pingpong) or it is connected (stream).
    ready: bool,
    out: Vec<u8>,
    out_pos: usize,
    /// Pingpong: the bytes still owed back, in order.
    expect: VecDeque<u8>,
    /// Pingpong: bytes of the current reply received so far.
    got: usize,
    sent_at: VecDeque<Instant>,
    seq: u64,
    /// Stream: bytes written and read back.
    sent: u64,
    recvd: u64,
}

/// The shared state of a pingpong/stream run.
struct Mixed<'a> {
    o: &'a Opts,
    msgs: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
    pattern: Vec<u8>,
    buf: Vec<u8>,
    measuring: bool,
    running: bool,
    lat: Vec<u32>,
    msgs_all: u64,
    msgs_measured: u64,
    bytes_measured: u64,
    ready: usize,
    progress_at: Instant,
}

impl Mixed<'_> {
    fn send_message(&mut self, c: &mut Conn, now: Instant) {
        let m = (c.id + c.seq as usize) % POOL;
        c.seq += 1;
        c.out.extend_from_slice(&self.msgs[m]);
        c.expect.extend(self.replies[m].iter().copied());
        c.sent_at.push_back(now);
    }

    /// Writes pending output; stream connections top up to their window.
    fn write(&mut self, c: &mut Conn) -> Res<()> {
        loop {
            if c.out_pos == c.out.len() {
                c.out.clear();
                c.out_pos = 0;
                if c.kind == Kind::PingPong || !self.running || c.sent - c.recvd >= self.o.window {
                    return Ok(());
                }
                let off = (c.sent % twirl_bench::PATTERN_PERIOD as u64) as usize;
                let room = (self.o.window - (c.sent - c.recvd)).min(self.o.chunk as u64) as usize;
                match c.sock.write(&self.pattern[off..off + room]) {
                    Ok(n) => c.sent += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("conn {}: write: {e}", c.id)),
                }
                continue;
            }
            match c.sock.write(&c.out[c.out_pos..]) {
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("conn {}: write: {e}", c.id)),
            }
        }
    }

    /// Reads what has arrived; true if the socket may still hold more
    /// (a streaming connection that used up its reads for this turn).
    fn read(&mut self, c: &mut Conn) -> Res<bool> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.read_into(c, &mut buf);
        self.buf = buf;
        r
    }

    fn read_into(&mut self, c: &mut Conn, buf: &mut [u8]) -> Res<bool> {
        let limit = if c.kind == Kind::Stream { STREAM_READS_PER_TURN } else { 1_000 };
        for _ in 0..limit {
            let n = match c.sock.read(buf) {
                Ok(0) => return Err(format!("conn {}: the server closed the connection", c.id)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("conn {}: read: {e}", c.id)),
            };
            let data = &buf[..n];
            self.progress_at = Instant::now();
            match c.kind {
                Kind::Stream => {
                    let off = (c.recvd % twirl_bench::PATTERN_PERIOD as u64) as usize;
                    if data != &self.pattern[off..off + n] || c.recvd + n as u64 > c.sent {
                        return Err(format!("conn {}: wrong bytes at stream offset {}", c.id, c.recvd));
                    }
                    c.recvd += n as u64;
                    if self.measuring {
                        self.bytes_measured += n as u64;
                    }
                }
                Kind::PingPong => {
                    for &b in data {
                        if c.expect.pop_front() != Some(b) {
                            return Err(format!("conn {}: wrong or extra byte in reply {}", c.id, c.seq));
                        }
                    }
                    c.got += n;
                    let now = Instant::now();
                    while c.got >= self.o.size {
                        c.got -= self.o.size;
                        let sent = c.sent_at.pop_front().ok_or("reply with no request")?;
                        self.msgs_all += 1;
                        if !c.ready {
                            c.ready = true;
                            self.ready += 1;
                        }
                        if self.measuring {
                            self.msgs_measured += 1;
                            self.lat.push(u32::try_from(now.duration_since(sent).as_nanos()).unwrap_or(u32::MAX));
                        }
                        if self.running {
                            self.send_message(c, now);
                        }
                    }
                }
            }
            if n < buf.len() && c.kind == Kind::PingPong {
                return Ok(false);
            }
        }
        Ok(c.kind == Kind::Stream)
    }

    /// Handles readiness (or a continuation) for one connection; true if it
    /// should be continued next turn.
    fn ready_conn(&mut self, c: &mut Conn) -> Res<bool> {
        if !c.up {
            if !connected(&c.sock)? {
                return Ok(false);
            }
            c.up = true;
            c.sock.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
            if c.kind == Kind::PingPong {
                let now = Instant::now();
                for _ in 0..self.o.inflight {
                    self.send_message(c, now);
                }
            } else {
                c.ready = true;
                self.ready += 1;
            }
        }
        let more = self.read(c)?;
        self.write(c)?;
        Ok(more)
    }
}

/// Pingpong connections and streaming connections, together or alone.
fn run_mixed(o: &Opts, pingpong: usize, streams: usize) -> Res<String> {
    let total = pingpong + streams;
    if total == 0 {
        return Err("no connections".into());
    }
    let started = Instant::now();
    let hard_deadline = started + Duration::from_secs(30) + o.warmup + o.duration + Duration::from_secs(10);
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let mut st = Mixed {
        o,
        msgs: (0..POOL).map(|i| o.framing.message(i as u64, o.size)).collect(),
        replies: (0..POOL)
            .map(|i| match o.framing {
                Framing::Lines => o.transform.apply(&message(i as u64, o.size)),
                Framing::Prefixed => o.framing.message(i as u64, o.size),
            })
            .collect(),
        pattern: pattern(READ_BUF),
        buf: vec![0; READ_BUF],
        measuring: false,
        running: true,
        lat: Vec::with_capacity(1 << 20),
        msgs_all: 0,
        msgs_measured: 0,
        bytes_measured: 0,
        ready: 0,
        progress_at: started,
    };
    let mut conns: Vec<Conn> = Vec::with_capacity(total);
    let mut again: Vec<usize> = Vec::new();
    let mut phase_end: Option<Instant> = None;
    let mut start_mark: Option<Mark> = None;
    let mut rss_start = 0;
    let connect_deadline = started + Duration::from_secs(30);
    for round in 0u64.. {
        let now = Instant::now();
        if now > hard_deadline {
            return Err(format!("hard deadline passed (round {round})"));
        }
        // Open connections, a bounded number at a time.
        while conns.len() < total && conns.len() - st.ready < MAX_PENDING {
            let id = conns.len();
            let kind = if id < streams { Kind::Stream } else { Kind::PingPong };
            let mut sock = connect(o.addr)?;
            poll.registry()
                .register(&mut sock, Token(id), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("register: {e}"))?;
            conns.push(Conn {
                sock,
                kind,
                id,
                up: false,
                ready: false,
                out: Vec::new(),
                out_pos: 0,
                expect: VecDeque::new(),
                got: 0,
                sent_at: VecDeque::new(),
                seq: 0,
                sent: 0,
                recvd: 0,
            });
        }
        // Phases: connecting, warm-up, measuring.
        match phase_end {
            None if st.ready == total => {
                phase_end = Some(now + o.warmup);
                st.progress_at = now;
            }
            None if now > connect_deadline => {
                return Err(format!("only {} of {total} connections ready after 30 s", st.ready));
            }
            Some(t) if now >= t && start_mark.is_none() => {
                rss_start = server_rss(o.pid, "VmRSS")?;
                start_mark = Some(Mark::take(o.pid)?);
                st.measuring = true;
                st.lat.clear();
                phase_end = Some(now + o.duration);
            }
            Some(t) if now >= t => break,
            _ => {}
        }
        if phase_end.is_some() && now.duration_since(st.progress_at) > STALL {
            return Err(format!("stalled: nothing received for {STALL:?}"));
        }
        let timeout = if again.is_empty() {
            phase_end
                .map_or(Duration::from_millis(50), |t| t.saturating_duration_since(now))
                .min(Duration::from_millis(50))
        } else {
            Duration::ZERO
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        let carried = std::mem::take(&mut again);
        for t in events.iter().map(|e| e.token().0).chain(carried) {
            let Some(c) = conns.get_mut(t) else { continue };
            if st.ready_conn(c)? {
                again.push(t);
            }
        }
    }
    let end = Mark::take(o.pid)?;
    let (rss_end, rss_peak) = (server_rss(o.pid, "VmRSS")?, server_rss(o.pid, "VmHWM")?);
    let start = start_mark.ok_or("no measured window")?;
    let secs = end.at.duration_since(start.at).as_secs_f64();
    let cpu = end.server.since(&start.server);
    let (p50, p99, p999) = percentiles(&mut st.lat);
    let mut line = format!(
        "workload={} conns={pingpong} streams={streams} size={} inflight={} msgs={} msgs_all={} msgs_per_s={:.0} \
         bytes={} mb_per_s={:.1} p50_us={p50:.1} p99_us={p99:.1} p999_us={p999:.1} {}",
        o.workload,
        o.size,
        o.inflight,
        st.msgs_measured,
        st.msgs_all,
        st.msgs_measured as f64 / secs,
        st.bytes_measured,
        st.bytes_measured as f64 / secs / 1e6,
        window_fields(&start, &end)
    );
    if st.msgs_measured > 0 && streams == 0 {
        let n = st.msgs_measured as f64;
        line += &format!(
            " cpu_us_per_msg={:.3} user_us_per_msg={:.3} sys_us_per_msg={:.3}",
            cpu.total_us() / n,
            cpu.user_us / n,
            cpu.sys_us / n
        );
    }
    if st.bytes_measured > 0 && pingpong == 0 {
        let mb = st.bytes_measured as f64 / 1e6;
        line += &format!(
            " cpu_us_per_mb={:.1} user_us_per_mb={:.1} sys_us_per_mb={:.1} minflt_per_mb={:.1}",
            cpu.total_us() / mb,
            cpu.user_us / mb,
            cpu.sys_us / mb,
            cpu.minflt / mb
        );
    }
    if streams > 0 && o.pid.is_some() {
        line += &format!(" window={} rss_start={rss_start} rss_end={rss_end} rss_peak={rss_peak}", o.window);
    }
    drop(conns);
    Ok(line)
}

/// A churn connection's socket, bound to one of many loopback source
/// addresses (with the port left to `connect`), so that the TIME_WAIT
/// sockets that closing first leaves behind never exhaust the ports.
fn churn_socket(addr: SocketAddr, n: u64) -> Res<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    s.set_tcp_nodelay(true).map_err(|e| e.to_string())?;
    if addr.ip().is_loopback() {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int from a valid pointer.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 1 + (n / 250 % 200) as u8, 1 + (n % 250) as u8), 0);
        s.bind(&SocketAddr::V4(src).into()).map_err(|e| format!("bind {src}: {e}"))?;
    }
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(format!("connect {addr}: {e}")),
    }
    Ok(TcpStream::from_std(s.into()))
}

struct ChurnSlot {
    sock: Option<TcpStream>,
    generation: u64,
    up: bool,
    msg: usize,
    got: usize,
    started: Instant,
}

/// Connect, one echo, close; `--concurrency` at a time.
fn run_churn(o: &Opts) -> Res<String> {
    let started = Instant::now();
    let hard_deadline = started + o.warmup + o.duration + Duration::from_secs(20);
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let msgs: Vec<Vec<u8>> = (0..POOL).map(|i| message(i as u64, o.size)).collect();
    let replies: Vec<Vec<u8>> = msgs.iter().map(|m| o.transform.apply(m)).collect();
    let mut buf = vec![0u8; READ_BUF];
    let mut slots: Vec<ChurnSlot> = Vec::with_capacity(o.concurrency);
    let mut opened = 0u64;
    let (mut done_all, mut done_measured) = (0u64, 0u64);
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let shift = 20;
    let mut start_mark: Option<Mark> = None;
    let mut phase_end = started + o.warmup;
    let mut progress_at = started;
    let mut open = |slot: &mut ChurnSlot, idx: usize, poll: &Poll| -> Res<()> {
        let mut sock = churn_socket(o.addr, opened)?;
        slot.generation += 1;
        let token = Token(((slot.generation as usize) << shift) | idx);
        poll.registry()
            .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        slot.sock = Some(sock);
        slot.up = false;
        slot.msg = opened as usize % POOL;
        slot.got = 0;
        slot.started = Instant::now();
        opened += 1;
        Ok(())
    };
    for idx in 0..o.concurrency {
        let mut slot = ChurnSlot { sock: None, generation: 0, up: false, msg: 0, got: 0, started };
        open(&mut slot, idx, &poll)?;
        slots.push(slot);
    }
    loop {
        let now = Instant::now();
        if now > hard_deadline {
            return Err("hard deadline passed".into());
        }
        if now.duration_since(progress_at) > STALL {
            return Err(format!("stalled: no connection completed for {STALL:?}"));
        }
        if now >= phase_end {
            if start_mark.is_some() {
                break;
            }
            start_mark = Some(Mark::take(o.pid)?);
            phase_end = now + o.duration;
        }
        let timeout = phase_end.saturating_duration_since(now).min(Duration::from_millis(50));
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        for ev in events.iter() {
            let idx = ev.token().0 & ((1 << shift) - 1);
            let generation = (ev.token().0 >> shift) as u64;
            let Some(slot) = slots.get_mut(idx) else { continue };
            if slot.generation != generation {
                continue; // an event for this slot's previous socket
            }
            let Some(sock) = slot.sock.as_mut() else { continue };
            if !slot.up {
                if !connected(sock)? {
                    continue;
                }
                slot.up = true;
                // A fresh socket's buffer takes a small message whole.
                match sock.write(&msgs[slot.msg]) {
                    Ok(n) if n == msgs[slot.msg].len() => {}
                    Ok(n) => return Err(format!("short first write ({n} bytes)")),
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            let mut finished = false;
            for _ in 0..16 {
                match sock.read(&mut buf) {
                    Ok(0) => return Err("the server closed before echoing".into()),
                    Ok(n) => {
                        let want = &replies[slot.msg];
                        if slot.got + n > want.len() || buf[..n] != want[slot.got..slot.got + n] {
                            return Err("wrong bytes in a churn reply".into());
                        }
                        slot.got += n;
                        if slot.got == want.len() {
                            finished = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            if finished {
                let now = Instant::now();
                progress_at = now;
                done_all += 1;
                if start_mark.is_some() {
                    done_measured += 1;
                    lat.push(u32::try_from(now.duration_since(slot.started).as_nanos()).unwrap_or(u32::MAX));
                }
                if let Some(mut s) = slot.sock.take() {
                    let _ = poll.registry().deregister(&mut s);
                }
                open(slot, idx, &poll)?;
            }
        }
    }
    let end = Mark::take(o.pid)?;
    let start = start_mark.ok_or("no measured window")?;
    let secs = end.at.duration_since(start.at).as_secs_f64();
    let cpu = end.server.since(&start.server);
    let (p50, p99, p999) = percentiles(&mut lat);
    let n = done_measured.max(1) as f64;
    Ok(format!(
        "workload=churn concurrency={} size={} conns={done_measured} conns_all={done_all} conns_per_s={:.0} \
         p50_us={p50:.1} p99_us={p99:.1} p999_us={p999:.1} cpu_us_per_conn={:.3} user_us_per_conn={:.3} \
         sys_us_per_conn={:.3} {}",
        o.concurrency,
        o.size,
        done_measured as f64 / secs,
        cpu.total_us() / n,
        cpu.user_us / n,
        cpu.sys_us / n,
        window_fields(&start, &end)
    ))
}

/// N connections that each exchange one tiny message and then sit idle;
/// the server's RSS growth per connection.
fn run_idle(o: &Opts) -> Res<String> {
    let pid = o.pid.ok_or("the idle workload needs --pid")?;
    let started = Instant::now();
    let hard_deadline = started + Duration::from_secs(60) + o.settle;
    let rss_before = read_rss(pid).map_err(|e| format!("reading the server's RSS: {e}"))?;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let probe = message(7, 2);
    let reply = o.transform.apply(&probe);
    struct Idle {
        sock: TcpStream,
        up: bool,
        got: usize,
    }
    let mut conns: Vec<Idle> = Vec::with_capacity(o.conns);
    let mut done = 0usize;
    let mut buf = [0u8; 64];
    while done < o.conns {
        if Instant::now() > hard_deadline {
            return Err(format!("only {done} of {} idle connections ready before the deadline", o.conns));
        }
        while conns.len() < o.conns && conns.len() - done < MAX_PENDING {
            let mut sock = connect(o.addr)?;
            poll.registry()
                .register(&mut sock, Token(conns.len()), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("register (connection {}): {e}", conns.len()))?;
            conns.push(Idle { sock, up: false, got: 0 });
        }
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        for ev in events.iter() {
            let Some(c) = conns.get_mut(ev.token().0) else { continue };
            if c.got == reply.len() {
                continue;
            }
            if !c.up {
                if !connected(&c.sock)? {
                    continue;
                }
                c.up = true;
                c.sock.write_all(&probe).map_err(|e| format!("write: {e}"))?;
            }
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => return Err("the server closed an idle connection".into()),
                    Ok(n) => {
                        if c.got + n > reply.len() || buf[..n] != reply[c.got..c.got + n] {
                            return Err("wrong bytes in an idle probe reply".into());
                        }
                        c.got += n;
                        if c.got == reply.len() {
                            done += 1;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the server settle (free what a busy moment took), then measure.
    std::thread::sleep(o.settle);
    let rss_after = read_rss(pid).map_err(|e| format!("reading the server's RSS: {e}"))?;
    let per = (rss_after as f64 - rss_before as f64) / o.conns as f64;
    Ok(format!(
        "workload=idle conns={} rss_before={rss_before} rss_after={rss_after} rss_per_conn={per:.1} \
         connect_secs={connect_secs:.2}",
        o.conns
    ))
}
