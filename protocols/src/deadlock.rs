//! The deadlock lab (seed 002's `tcp_deadlock.py`), run on loopback and
//! explained: `twirl deadlock`, or `cargo run --example deadlock`.
//!
//! The handout's client sends N bytes before reading any; its server reads
//! 1024 bytes, uppercases them and `sendall`s them back. With a large N both
//! freeze: the client is blocked in `send` because the server stopped
//! reading, and the server stopped reading because it is blocked in `send`
//! to a client that is not reading yet. Every kernel buffer between them is
//! full, and each waits for the other.
//!
//! The lab runs that experiment, then three variations, and reports on each:
//!
//! 1. blocking client against a blocking, thread-per-connection server: the
//!    deadlock. A watchdog notices that no byte moved for `--stall` seconds,
//!    shows where each thread is stuck (both in send), how many bytes sat in
//!    the kernel buffers (`SO_SNDBUF`/`SO_RCVBUF`, and the `SIOCOUTQ`/`SIOCINQ`
//!    queue lengths on Linux), then shuts both sockets down so the blocked
//!    threads return with an error, and joins them;
//! 2. the same blocking client against twirl's [`caps`](crate::caps)
//!    plugin: it completes, because twirl never blocks in send; it keeps
//!    reading and holds the reply it cannot send yet (reported as
//!    `peak_buffered`);
//! 3. a twirl client, which reads while it writes, against the blocking
//!    server: it completes too;
//! 4. run 2 again with a small hard cap on twirl's write buffer: memory stays
//!    bounded, and the connection is aborted with the reason reported.
//!
//! The blocking sockets get small buffers (`--sockbuf`) so the deadlock
//! happens even where the kernel would autotune them to megabytes. Every run
//! has a hard deadline. With `--svg FILE` the lab draws bytes sent, received
//! and buffered over time for each run; the deadlock shows as flat lines.
//!
//! ```no_run
//! use twirl_protocols::deadlock::{self, Outcome};
//! let report = deadlock::run(&deadlock::Options::quick())?;
//! assert!(matches!(report.scenarios[0].outcome, Outcome::Deadlocked));
//! println!("{report}");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};
use twirl::{
    Addr, ClientFactory, Config, Context, Disconnect, Limits, Protocol, Reactor, ReactorHandle, Stats, Transport,
};

use crate::caps::{Caps, check_uppercased, produce};

/// The 16-byte message the handout's client repeats.
pub use crate::caps::MESSAGE;
/// How often the watchdog samples the byte counters.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How long a thread may take to return after its sockets were shut down.
const JOIN_LIMIT: Duration = Duration::from_secs(5);

/// What to run: the handout's numbers by default.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Bytes the client sends before reading any (the handout's 16,000,000).
    #[arg(long, default_value_t = 16_000_000)]
    pub bytes: u64,
    /// Hard cap on twirl's write buffer for the fourth run, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub cap: usize,
    /// Seconds without a byte moving before the watchdog calls it a deadlock.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub stall: Duration,
    /// Hard deadline for each run, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub deadline: Duration,
    /// SO_SNDBUF and SO_RCVBUF asked for the blocking sockets (Linux doubles it).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub sockbuf: usize,
    /// Draw bytes sent, received and buffered over time into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bytes: 16_000_000,
            cap: 1024 * 1024,
            stall: Duration::from_secs(2),
            deadline: Duration::from_secs(30),
            sockbuf: 64 * 1024,
            svg: None,
        }
    }
}

/// The largest send buffer TCP autotunes to (`/proc/sys/net/ipv4/tcp_wmem`, third field).
fn tcp_wmem_max() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").ok()?;
    text.split_whitespace().nth(2)?.parse().ok()
}

/// Parses a number of seconds above zero.
fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e6 => Ok(Duration::from_secs_f64(x)),
        _ => Err(format!("'{s}': expected a number of seconds above 0")),
    }
}

#[derive(clap::Parser)]
#[command(name = "deadlock", about = "The deadlock lab: blocking sockets against a reactor (seed 002)")]
struct Cli {
    #[command(flatten)]
    opts: Options,
}

impl Options {
    /// A small, fast run that still deadlocks (tiny socket buffers): for
    /// tests and the examples' self-check.
    ///
    /// The transfer is a few MB larger than the most a TCP send buffer may
    /// autotune to (Linux's `tcp_wmem`), so that twirl's side, whose sockets
    /// keep their default buffers, still has to buffer and hits the cap in run 4.
    pub fn quick() -> Options {
        let kernel = tcp_wmem_max().unwrap_or(4 << 20);
        Options {
            bytes: kernel.saturating_add(3 << 20).clamp(4 << 20, 64 << 20),
            cap: 256 * 1024,
            stall: Duration::from_secs(1),
            deadline: Duration::from_secs(20),
            sockbuf: 16 * 1024,
            svg: None,
        }
    }

    /// Parses command-line arguments (the first is the program name).
    pub fn parse_args<I, T>(args: I) -> Result<Options, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Cli as clap::Parser>::try_parse_from(args).map(|c| c.opts)
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte came back, uppercased.
    Completed,
    /// No byte moved for the stall time: the watchdog broke the deadlock.
    Deadlocked,
    /// The server aborted the connection; the reason it gave.
    Aborted(String),
    /// The run passed its hard deadline while bytes were still moving.
    TimedOut,
    /// Something else went wrong.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed => f.write_str("COMPLETED"),
            Outcome::Deadlocked => f.write_str("DEADLOCK"),
            Outcome::Aborted(_) => f.write_str("ABORTED"),
            Outcome::TimedOut => f.write_str("TIMED OUT"),
            Outcome::Failed(_) => f.write_str("FAILED"),
        }
    }
}

/// Where one blocking thread was, and how far it had got.
#[derive(Clone, Debug)]
pub struct Party {
    /// `client` or `server`.
    pub name: String,
    /// What it was doing (for a stuck thread: the call it is blocked in).
    pub state: String,
    /// Bytes it had sent.
    pub sent: u64,
    /// Bytes it had received.
    pub received: u64,
}

/// One socket's kernel buffers.
#[derive(Clone, Debug)]
pub struct SocketSnapshot {
    /// Which socket.
    pub name: String,
    /// `SO_SNDBUF` as the kernel reports it.
    pub sndbuf: Option<usize>,
    /// `SO_RCVBUF` as the kernel reports it.
    pub rcvbuf: Option<usize>,
    /// Bytes in the send queue, not yet taken by the peer (`SIOCOUTQ`; Linux only).
    pub unsent: Option<u64>,
    /// Bytes in the receive queue, not yet read (`SIOCINQ`; Linux only).
    pub unread: Option<u64>,
}

/// One sample of the counters, every [`SAMPLE_EVERY`].
#[derive(Copy, Clone, Debug)]
pub struct Sample {
    /// Time since the run started.
    pub t: Duration,
    /// Bytes the client's socket had taken.
    pub sent: u64,
    /// Bytes the client had read back.
    pub received: u64,
    /// Bytes twirl held in its write buffers (0 where no twirl runs).
    pub buffered: u64,
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// 1 to 4.
    pub number: usize,
    /// Who talks to whom.
    pub title: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Time from connect to the end (or to the watchdog's verdict).
    pub elapsed: Duration,
    /// Bytes the client sent.
    pub sent: u64,
    /// Bytes the client received back.
    pub received: u64,
    /// The most bytes twirl buffered at once (runs with a twirl side).
    pub peak_buffered: Option<u64>,
    /// The hard cap on twirl's write buffer, where one was set.
    pub cap: Option<usize>,
    /// Where the blocking threads were when it froze (deadlocked runs).
    pub parties: Vec<Party>,
    /// Kernel buffers when it froze (deadlocked runs).
    pub sockets: Vec<SocketSnapshot>,
    /// More lines for the report: teardown, the client's view of an abort.
    pub notes: Vec<String>,
    /// The counters over time.
    pub samples: Vec<Sample>,
}

/// The whole lab's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// The options it ran with.
    pub options: Options,
    /// The four runs, in order.
    pub scenarios: Vec<Scenario>,
}

/// Runs the four experiments and returns their report.
pub fn run(opts: &Options) -> io::Result<Report> {
    run_with(opts, &mut |_| {})
}

/// [`run`], calling `each` as every run ends (to print as it goes).
pub fn run_with(opts: &Options, each: &mut dyn FnMut(&Scenario)) -> io::Result<Report> {
    let mut scenarios = Vec::new();
    for number in 1..=4 {
        let s = match number {
            1 => blocking_vs_blocking(opts)?,
            2 => blocking_vs_twirl(opts, 2, None)?,
            3 => twirl_vs_blocking(opts)?,
            _ => blocking_vs_twirl(opts, 4, Some(opts.cap))?,
        };
        each(&s);
        scenarios.push(s);
    }
    Ok(Report { options: opts.clone(), scenarios })
}

/// Runs the lab, printing each run as it ends and the lesson at the end,
/// and draws the chart if `--svg` was given: the `twirl deadlock` command.
pub fn run_and_print(opts: &Options, out: &mut dyn Write) -> io::Result<Report> {
    write_header(opts, out)?;
    out.flush()?;
    let mut failed = None;
    let report = run_with(opts, &mut |s| {
        if let Err(e) = write_scenario(s, out).and_then(|_| out.flush()) {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    write_lesson(&report, out)?;
    if let Some(path) = &opts.svg {
        write_svg(&report, path)?;
        writeln!(out, "\nchart: {}", path.display())?;
    }
    Ok(report)
}

// ---------------------------------------------------------------------------
// The blocking side: the handout's client and server, instrumented.

/// One blocking thread's progress, shared with the watchdog.
struct Track {
    name: &'static str,
    state: Mutex<String>,
    sent: AtomicU64,
    received: AtomicU64,
}

impl Track {
    fn new(name: &'static str) -> Arc<Track> {
        Arc::new(Track {
            name,
            state: Mutex::new("starting".into()),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        })
    }

    fn set(&self, state: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.clear();
        s.push_str(state);
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Party {
        Party {
            name: self.name.into(),
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            sent: self.sent(),
            received: self.received(),
        }
    }
}

const CLIENT_SENDING: &str = "in send(): write_all of the whole message, reading nothing until it is all sent";
const SERVER_SENDING: &str = "in send(): write_all of an uppercased 1024-byte block, until the client reads";

/// The handout's client: send everything, half-close, then read it all back.
fn blocking_client(mut s: TcpStream, total: u64, track: &Track) -> io::Result<()> {
    let block = MESSAGE.repeat(512);
    track.set(CLIENT_SENDING);
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        s.write_all(&block[..n])?;
        track.sent.fetch_add(n as u64, Ordering::Relaxed);
        left -= n as u64;
    }
    track.set("in shutdown(Write)");
    s.shutdown(Shutdown::Write)?;
    track.set("in recv(): reading the reply until the server closes");
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        check_uppercased(pos, &buf[..n])?;
        pos += n as u64;
        track.received.fetch_add(n as u64, Ordering::Relaxed);
    }
    track.set("done");
    if pos != total {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("sent {total} bytes, got {pos} back")));
    }
    Ok(())
}

/// The handout's server, one connection: read 1024, uppercase, send it all.
fn blocking_server(mut s: TcpStream, track: &Track) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        track.set("in recv(): read of up to 1024 bytes");
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        track.received.fetch_add(n as u64, Ordering::Relaxed);
        buf[..n].make_ascii_uppercase();
        track.set(SERVER_SENDING);
        s.write_all(&buf[..n])?;
        track.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Close our side now: the watchdog holds a clone of this socket, so
    // dropping ours would not send the FIN the client is waiting for.
    track.set("done: the client half-closed, so do we");
    s.shutdown(Shutdown::Write)
}

/// A loopback listener whose accepted sockets inherit small buffers.
fn small_listener(sockbuf: usize) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_send_buffer_size(sockbuf)?;
    s.set_recv_buffer_size(sockbuf)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    s.listen(16)?;
    Ok(s.into())
}

/// A blocking client socket with small buffers, set before connecting so
/// the receive window is small from the first packet.
fn small_client(addr: SocketAddr, sockbuf: usize) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_send_buffer_size(sockbuf)?;
    s.set_recv_buffer_size(sockbuf)?;
    s.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// Reads a socket's buffer sizes and queue lengths.
fn socket_snapshot(name: &str, s: &TcpStream) -> SocketSnapshot {
    let r = SockRef::from(s);
    SocketSnapshot {
        name: name.into(),
        sndbuf: r.send_buffer_size().ok(),
        rcvbuf: r.recv_buffer_size().ok(),
        unsent: queued(s, true),
        unread: queued(s, false),
    }
}

/// `SIOCOUTQ` (`out`) or `SIOCINQ`: bytes in the socket's send or receive queue.
#[cfg(target_os = "linux")]
fn queued(s: &TcpStream, out: bool) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // On Linux sockets TIOCOUTQ is SIOCOUTQ and FIONREAD is SIOCINQ.
    let request = if out { libc::TIOCOUTQ } else { libc::FIONREAD };
    // SAFETY: the descriptor is open for the lifetime of `s`, and both
    // requests write one c_int through the pointer, which points to one.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), request, &mut n as *mut libc::c_int) };
    (rc == 0 && n >= 0).then_some(n as u64)
}

#[cfg(not(target_os = "linux"))]
fn queued(_: &TcpStream, _: bool) -> Option<u64> {
    None
}

/// Joins a thread, waiting at most `limit`; `None` if it is still running
/// (it is then left behind, detached).
fn join_within<T>(h: JoinHandle<T>, limit: Duration) -> Option<thread::Result<T>> {
    let until = Instant::now() + limit;
    while !h.is_finished() {
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
    Some(h.join())
}

/// What a joined thread returned, in words.
fn joined(who: &str, r: &Option<thread::Result<io::Result<()>>>) -> String {
    match r {
        None => format!("{who} did not return within {}s (left behind)", JOIN_LIMIT.as_secs()),
        Some(Err(_)) => format!("{who} panicked"),
        Some(Ok(Ok(()))) => format!("{who} returned normally"),
        Some(Ok(Err(e))) => format!("{who} returned \"{e}\""),
    }
}

// ---------------------------------------------------------------------------
// The watchdog.

/// Why watching stopped.
enum Verdict {
    Done,
    Stalled,
    Deadline,
}

/// Samples the counters every [`SAMPLE_EVERY`] until `done`, until nothing
/// moved for `opts.stall`, or until the deadline.
fn watch(
    opts: &Options,
    start: Instant,
    samples: &mut Vec<Sample>,
    sample: &dyn Fn() -> (u64, u64, u64),
    progress: &dyn Fn() -> u64,
    done: &dyn Fn() -> bool,
) -> Verdict {
    let mut last = progress();
    let mut moved = Instant::now();
    let (sent, received, buffered) = sample();
    samples.push(Sample { t: moved - start, sent, received, buffered });
    loop {
        thread::sleep(SAMPLE_EVERY);
        let (sent, received, buffered) = sample();
        let now = Instant::now();
        samples.push(Sample { t: now - start, sent, received, buffered });
        if done() {
            return Verdict::Done;
        }
        let p = progress();
        if p != last {
            last = p;
            moved = now;
        } else if now - moved >= opts.stall {
            return Verdict::Stalled;
        }
        if now - start >= opts.deadline {
            return Verdict::Deadline;
        }
    }
}

/// Samples the counters once more after the end, so the chart shows it.
fn last_sample(samples: &mut Vec<Sample>, start: Instant, sent: u64, received: u64, buffered: u64) {
    samples.push(Sample { t: start.elapsed(), sent, received, buffered });
}

fn new_scenario(number: usize, title: &str) -> Scenario {
    Scenario {
        number,
        title: title.into(),
        outcome: Outcome::Failed("not run".into()),
        elapsed: Duration::ZERO,
        sent: 0,
        received: 0,
        peak_buffered: None,
        cap: None,
        parties: Vec::new(),
        sockets: Vec::new(),
        notes: Vec::new(),
        samples: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Run 1: blocking client, blocking server.

fn blocking_vs_blocking(opts: &Options) -> io::Result<Scenario> {
    let mut sc = new_scenario(1, "blocking client -> blocking server (thread per connection)");
    let listener = small_listener(opts.sockbuf)?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    // Connect first: the handshake completes in the listen backlog, so the
    // server's accept below returns at once.
    let client_sock = small_client(addr, opts.sockbuf)?;
    let (server_sock, _) = listener.accept()?;
    let (c_watch, s_watch) = (client_sock.try_clone()?, server_sock.try_clone()?);
    let (client, server) = (Track::new("client"), Track::new("server"));
    let total = opts.bytes;
    let c = client.clone();
    let client_thread = thread::spawn(move || blocking_client(client_sock, total, &c));
    let s = server.clone();
    let server_thread = thread::spawn(move || blocking_server(server_sock, &s));

    let verdict = watch(
        opts,
        start,
        &mut sc.samples,
        &|| (client.sent(), client.received(), 0),
        &|| client.sent() + client.received() + server.sent() + server.received(),
        &|| client_thread.is_finished(),
    );
    sc.elapsed = start.elapsed();
    sc.sent = client.sent();
    sc.received = client.received();
    if !matches!(verdict, Verdict::Done) {
        // Freeze frame first, then break the deadlock.
        sc.parties = vec![client.snapshot(), server.snapshot()];
        sc.sockets = vec![socket_snapshot("client", &c_watch), socket_snapshot("server", &s_watch)];
        sc.outcome = if matches!(verdict, Verdict::Stalled) { Outcome::Deadlocked } else { Outcome::TimedOut };
    }
    let _ = c_watch.shutdown(Shutdown::Both);
    let _ = s_watch.shutdown(Shutdown::Both);
    let c = join_within(client_thread, JOIN_LIMIT);
    let s = join_within(server_thread, JOIN_LIMIT);
    if matches!(verdict, Verdict::Done) {
        sc.outcome = match &c {
            Some(Ok(Ok(()))) => Outcome::Completed,
            _ => Outcome::Failed(joined("the client", &c)),
        };
        last_sample(&mut sc.samples, start, client.sent(), client.received(), 0);
    } else {
        sc.notes.push(format!(
            "torn down: shutdown(Both) on both sockets; {}; {}.",
            joined("the client", &c),
            joined("the server", &s)
        ));
    }
    Ok(sc)
}

// ---------------------------------------------------------------------------
// Runs 2 and 4: the blocking client against twirl's caps plugin.

/// Counters a reactor copies out every [`SAMPLE_EVERY`] for the watchdog.
#[derive(Default)]
struct Live {
    buffered: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Live {
    fn update(&self, s: &Stats) {
        self.buffered.store(s.buffered, Ordering::Relaxed);
        self.bytes_in.store(s.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(s.bytes_out, Ordering::Relaxed);
    }
    fn get(&self, a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
}

/// Copies the reactor's counters into `live` every sample period.
fn publish(reactor: &mut Reactor, live: &Arc<Live>) {
    let live = live.clone();
    reactor.call_every(SAMPLE_EVERY, move |r| live.update(&r.stats()));
}

/// [`Caps`], recording why each connection ended.
struct Watched {
    inner: Caps,
    /// Why each connection was cut off by the hard cap, as logged.
    lost: Rc<RefCell<Vec<String>>>,
}

impl Protocol for Watched {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        self.inner.data_received(data, t);
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.inner.read_eof(t);
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        if matches!(reason, Disconnect::HardCap { .. }) {
            self.lost.borrow_mut().push(reason.to_string());
        }
    }
}

/// A reactor thread's results once it stopped.
struct ReactorEnd {
    stats: Stats,
    lost: Vec<String>,
}

/// Starts a reactor thread serving [`Caps`] on loopback with `limits`.
fn start_caps(
    limits: Limits,
    live: Arc<Live>,
) -> io::Result<(SocketAddr, ReactorHandle, JoinHandle<io::Result<ReactorEnd>>)> {
    let (tx, rx) = mpsc::channel();
    let join = thread::spawn(move || -> io::Result<ReactorEnd> {
        let lost = Rc::new(RefCell::new(Vec::new()));
        let setup = || -> io::Result<(Reactor, SocketAddr)> {
            let mut reactor = Reactor::with_config(Config { limits, ..Config::default() })?;
            let l = lost.clone();
            let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), move |_: &Addr| Watched {
                inner: Caps,
                lost: l.clone(),
            })?;
            publish(&mut reactor, &live);
            Ok((reactor, addr))
        };
        let mut reactor = match setup() {
            Ok((reactor, addr)) => {
                let _ = tx.send(Ok((addr, reactor.handle())));
                reactor
            }
            Err(e) => {
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        reactor.run()?;
        live.update(&reactor.stats());
        let lost = lost.borrow().clone();
        Ok(ReactorEnd { stats: reactor.stats(), lost })
    });
    match rx.recv_timeout(JOIN_LIMIT) {
        Ok(Ok((addr, handle))) => Ok((addr, handle, join)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the twirl server did not start")),
    }
}

fn blocking_vs_twirl(opts: &Options, number: usize, cap: Option<usize>) -> io::Result<Scenario> {
    let title = match cap {
        None => "blocking client -> twirl caps plugin".to_string(),
        Some(c) => format!("blocking client -> twirl caps plugin with a hard cap of {} bytes", thousands(c as u64)),
    };
    let mut sc = new_scenario(number, &title);
    sc.cap = cap;
    let limits = match cap {
        None => Limits::default(),
        // Keep the water marks below a small cap.
        Some(c) => {
            let d = Limits::default();
            Limits { hard_cap: c, high_water: d.high_water.min(c / 2), low_water: d.low_water.min(c / 8) }
        }
    };
    let live = Arc::new(Live::default());
    let (addr, handle, server_thread) = start_caps(limits, live.clone())?;
    let start = Instant::now();
    let client_sock = match small_client(addr, opts.sockbuf) {
        Ok(s) => s,
        Err(e) => {
            handle.stop();
            let _ = join_within(server_thread, JOIN_LIMIT);
            return Err(e);
        }
    };
    let c_watch = client_sock.try_clone()?;
    let client = Track::new("client");
    let (c, total) = (client.clone(), opts.bytes);
    let client_thread = thread::spawn(move || blocking_client(client_sock, total, &c));

    let verdict = watch(
        opts,
        start,
        &mut sc.samples,
        &|| (client.sent(), client.received(), live.get(&live.buffered)),
        &|| client.sent() + client.received() + live.get(&live.bytes_in) + live.get(&live.bytes_out),
        &|| client_thread.is_finished(),
    );
    sc.elapsed = start.elapsed();
    sc.sent = client.sent();
    sc.received = client.received();
    if !matches!(verdict, Verdict::Done) {
        sc.parties = vec![client.snapshot()];
        sc.sockets = vec![socket_snapshot("client", &c_watch)];
    }
    let _ = c_watch.shutdown(Shutdown::Both);
    let c = join_within(client_thread, JOIN_LIMIT);
    handle.stop();
    let end = join_within(server_thread, JOIN_LIMIT);
    last_sample(&mut sc.samples, start, client.sent(), client.received(), live.get(&live.buffered));
    let (stats, lost) = match end {
        Some(Ok(Ok(end))) => (Some(end.stats), end.lost),
        Some(Ok(Err(e))) => {
            sc.notes.push(format!("the twirl server failed: {e}"));
            (None, Vec::new())
        }
        Some(Err(_)) => {
            sc.notes.push("the twirl server panicked".into());
            (None, Vec::new())
        }
        None => {
            sc.notes.push("the twirl server did not stop in time (left behind)".into());
            (None, Vec::new())
        }
    };
    sc.peak_buffered = stats.as_ref().map(|s| s.peak_buffered);
    let aborted = lost.first().cloned();
    sc.outcome = match (verdict, aborted) {
        (Verdict::Stalled, _) => Outcome::Deadlocked,
        (Verdict::Deadline, _) => Outcome::TimedOut,
        (Verdict::Done, Some(reason)) => Outcome::Aborted(reason),
        (Verdict::Done, None) => match &c {
            Some(Ok(Ok(()))) => Outcome::Completed,
            _ => Outcome::Failed(joined("the client", &c)),
        },
    };
    if let Outcome::Aborted(_) = sc.outcome {
        let client_view = match &c {
            Some(Ok(Err(e))) => e.to_string(),
            other => joined("the client", other),
        };
        sc.notes.push(format!("the client saw: {client_view}"));
        if let Some(s) = &stats {
            sc.notes.push(format!("connections aborted at the cap (stats.cap_aborts): {}", s.cap_aborts));
        }
    }
    Ok(sc)
}

// ---------------------------------------------------------------------------
// Run 3: a twirl client, reading while it writes, against the blocking server.

type Shared<T> = Rc<RefCell<Option<T>>>;

/// Sends `total` bytes of the message, never more than the write buffer's
/// high-water mark ahead, and reads the reply as it comes.
struct Flood {
    total: u64,
    queued: u64,
    received: u64,
    error: Option<String>,
    result: Shared<Result<(), String>>,
}

impl Protocol for Flood {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        produce(&mut self.queued, self.total, t);
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        produce(&mut self.queued, self.total, t);
    }
    fn data_received(&mut self, data: &[u8], _: &mut dyn Transport) {
        if self.error.is_none() {
            if let Err(e) = check_uppercased(self.received, data) {
                self.error = Some(e.to_string());
            }
        }
        self.received += data.len() as u64;
    }
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let r = match (&self.error, reason.to_io_error()) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(e)) => Err(format!("after {} bytes received: {e}", self.received)),
            (None, None) if self.received != self.total => {
                Err(format!("sent {} bytes, received {}", self.total, self.received))
            }
            (None, None) => Ok(()),
        };
        self.result.borrow_mut().get_or_insert(r);
        cx.stop_reactor();
    }
}

/// Connects once; a failure ends the run.
struct OneFlood {
    flood: Option<Flood>,
    result: Shared<Result<(), String>>,
}

impl ClientFactory for OneFlood {
    fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
        match self.flood.take() {
            Some(f) => Box::new(f),
            None => Box::new(Flood { total: 0, queued: 0, received: 0, error: None, result: self.result.clone() }),
        }
    }
    fn connection_failed(&mut self, error: &io::Error, cx: &mut dyn Context) -> Option<Duration> {
        self.result.borrow_mut().get_or_insert(Err(format!("connect: {error}")));
        cx.stop_reactor();
        None
    }
}

fn twirl_vs_blocking(opts: &Options) -> io::Result<Scenario> {
    let mut sc = new_scenario(3, "twirl client (reads while it writes) -> blocking server");
    let listener = small_listener(opts.sockbuf)?;
    let addr = listener.local_addr()?;
    let server = Track::new("server");
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let s = server.clone();
    let server_thread = thread::spawn(move || -> io::Result<()> {
        s.set("in accept()");
        let (sock, _) = listener.accept()?;
        let _ = accepted_tx.send(sock.try_clone()?);
        blocking_server(sock, &s)
    });
    let live = Arc::new(Live::default());
    let (tx, rx) = mpsc::channel();
    let (l, total) = (live.clone(), opts.bytes);
    let start = Instant::now();
    let client_thread = thread::spawn(move || -> io::Result<(Result<(), String>, Stats)> {
        let result: Shared<Result<(), String>> = Rc::default();
        let mut reactor = Reactor::new()?;
        let flood = Flood { total, queued: 0, received: 0, error: None, result: result.clone() };
        reactor.connect_tcp(addr, OneFlood { flood: Some(flood), result: result.clone() })?;
        publish(&mut reactor, &l);
        let _ = tx.send(reactor.handle());
        reactor.run()?;
        l.update(&reactor.stats());
        let r = result.borrow_mut().take().unwrap_or_else(|| Err("stopped before the connection ended".into()));
        Ok((r, reactor.stats()))
    });
    let handle = rx.recv_timeout(JOIN_LIMIT).ok();
    let verdict = watch(
        opts,
        start,
        &mut sc.samples,
        &|| (live.get(&live.bytes_out), live.get(&live.bytes_in), live.get(&live.buffered)),
        &|| live.get(&live.bytes_out) + live.get(&live.bytes_in) + server.sent() + server.received(),
        &|| client_thread.is_finished(),
    );
    sc.elapsed = start.elapsed();
    let server_sock = accepted_rx.recv_timeout(Duration::from_millis(100)).ok();
    if !matches!(verdict, Verdict::Done) {
        sc.parties = vec![server.snapshot()];
        sc.sockets = server_sock.iter().map(|s| socket_snapshot("server", s)).collect();
        if let Some(h) = &handle {
            h.stop();
        }
    }
    if let Some(s) = &server_sock {
        if !matches!(verdict, Verdict::Done) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    let c = join_within(client_thread, JOIN_LIMIT);
    if server_sock.is_none() {
        // Never accepted (the connect failed): wake the accept so it returns.
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    }
    let _ = join_within(server_thread, JOIN_LIMIT);
    sc.sent = live.get(&live.bytes_out);
    sc.received = live.get(&live.bytes_in);
    last_sample(&mut sc.samples, start, sc.sent, sc.received, live.get(&live.buffered));
    sc.outcome = match (verdict, c) {
        (Verdict::Stalled, _) => Outcome::Deadlocked,
        (Verdict::Deadline, _) => Outcome::TimedOut,
        (Verdict::Done, Some(Ok(Ok((Ok(()), stats))))) => {
            sc.peak_buffered = Some(stats.peak_buffered);
            Outcome::Completed
        }
        (Verdict::Done, Some(Ok(Ok((Err(e), stats))))) => {
            sc.peak_buffered = Some(stats.peak_buffered);
            Outcome::Failed(e)
        }
        (Verdict::Done, Some(Ok(Err(e)))) => Outcome::Failed(e.to_string()),
        (Verdict::Done, _) => Outcome::Failed("the client thread panicked".into()),
    };
    Ok(sc)
}

// ---------------------------------------------------------------------------
// The report.

/// `16000000` as `16,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt_bytes(n: Option<impl Into<u64>>) -> String {
    n.map_or_else(|| "?".into(), |n| thousands(n.into()))
}

fn write_header(opts: &Options, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "The deadlock lab (seed 002 tcp_deadlock): the client sends {} bytes before reading any;\n\
         the server uppercases each 1024-byte block it reads and sends it back.\n\
         Blocking sockets ask for {}-byte buffers (SO_SNDBUF/SO_RCVBUF); the watchdog calls a deadlock\n\
         after {:.1} s without a byte moving; each run has a {:.0} s deadline.",
        thousands(opts.bytes),
        thousands(opts.sockbuf as u64),
        opts.stall.as_secs_f64(),
        opts.deadline.as_secs_f64(),
    )
}

fn write_scenario(s: &Scenario, out: &mut dyn Write) -> io::Result<()> {
    let secs = s.elapsed.as_secs_f64();
    writeln!(out, "\n{}. {}", s.number, s.title)?;
    match &s.outcome {
        Outcome::Completed => writeln!(out, "   COMPLETED in {secs:.2} s")?,
        Outcome::Deadlocked => {
            writeln!(out, "   DEADLOCK: nothing moved for {:.1} s ({secs:.2} s in)", s.stall_secs())?
        }
        Outcome::Aborted(reason) => writeln!(out, "   ABORTED by the server after {secs:.2} s: {reason}")?,
        Outcome::TimedOut => writeln!(out, "   TIMED OUT after {secs:.2} s, still moving")?,
        Outcome::Failed(e) => writeln!(out, "   FAILED after {secs:.2} s: {e}")?,
    }
    writeln!(out, "   client sent {} bytes and received {} back", thousands(s.sent), thousands(s.received))?;
    if !s.parties.is_empty() {
        writeln!(out, "   where each thread is stuck:")?;
        for p in &s.parties {
            writeln!(
                out,
                "     {:<7} {}\n             (sent {}, received {})",
                p.name,
                p.state,
                thousands(p.sent),
                thousands(p.received)
            )?;
        }
    }
    if !s.sockets.is_empty() {
        writeln!(out, "   bytes sitting in the kernel when it froze:")?;
        for k in &s.sockets {
            writeln!(
                out,
                "     {:<7} socket: {:>9} unsent (SIOCOUTQ), {:>9} unread (SIOCINQ); SO_SNDBUF {}, SO_RCVBUF {}",
                k.name,
                opt_bytes(k.unsent),
                opt_bytes(k.unread),
                opt_bytes(k.sndbuf.map(|n| n as u64)),
                opt_bytes(k.rcvbuf.map(|n| n as u64)),
            )?;
        }
        let queued: Option<u64> = s.sockets.iter().map(|k| Some(k.unsent? + k.unread?)).sum();
        if let Some(q) = queued {
            writeln!(out, "     in all {} bytes in the kernel, and every queue between the two is full", thousands(q))?;
        }
    }
    if let Some(peak) = s.peak_buffered {
        let (who, why) = match &s.outcome {
            _ if s.number == 3 => ("client", "it writes only up to the high-water mark, and reads all along"),
            Outcome::Aborted(_) => ("server", "then gave up: memory stays bounded"),
            _ => ("server", "so that it could keep reading"),
        };
        writeln!(out, "   the twirl {who} buffered at most {} bytes (stats.peak_buffered): {why}", thousands(peak))?;
    }
    for n in &s.notes {
        writeln!(out, "   {n}")?;
    }
    Ok(())
}

impl Scenario {
    /// The stall that was detected: from the last movement to the verdict.
    fn stall_secs(&self) -> f64 {
        let Some(last) = self.samples.last() else { return 0.0 };
        let still = self
            .samples
            .iter()
            .rev()
            .take_while(|s| s.sent == last.sent && s.received == last.received)
            .last()
            .map_or(last.t, |s| s.t);
        (last.t.saturating_sub(still)).as_secs_f64() + SAMPLE_EVERY.as_secs_f64()
    }
}

fn write_lesson(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let peak = r
        .scenarios
        .get(1)
        .and_then(|s| s.peak_buffered)
        .map_or_else(|| "the surplus".into(), |p| format!("{} bytes", thousands(p)));
    writeln!(
        out,
        "\nThe lesson:\n\
         - Blocking send and recv in lock-step deadlock once more is in flight than the kernel buffers hold.\n\
         - A reactor never blocks in send: it keeps reading and holds what the peer cannot take yet ({peak} here).\n\
         - That memory is the price; a hard cap bounds it, and a peer that will not read is cut off instead."
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::new();
        let r = write_header(&self.options, &mut buf)
            .and_then(|_| self.scenarios.iter().try_for_each(|s| write_scenario(s, &mut buf)))
            .and_then(|_| write_lesson(self, &mut buf));
        r.map_err(|_| fmt::Error)?;
        f.write_str(&String::from_utf8_lossy(&buf))
    }
}

// ---------------------------------------------------------------------------
// The chart.

/// Draws bytes sent, received and buffered over time, one panel per run.
pub fn write_svg(report: &Report, path: &Path) -> io::Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn fmt::Display| io::Error::other(format!("{}: {e}", path.display()));
    let n = report.scenarios.len().max(1);
    let root = SVGBackend::new(path, (900, 260 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for (area, s) in root.split_evenly((n, 1)).iter().zip(&report.scenarios) {
        let mb = |b: u64| b as f64 / 1e6;
        let t_max = s.samples.last().map_or(1.0, |x| x.t.as_secs_f64()).max(0.05);
        let top = s.samples.iter().map(|x| x.sent.max(x.received).max(x.buffered)).max().unwrap_or(0);
        // Headroom above the lines for the legend.
        let y_max = mb(top.max(s.cap.unwrap_or(0) as u64)).max(0.1) * 1.6;
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{}. {} ({})", s.number, s.title, s.outcome), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t_max * 1.02, 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("seconds").y_desc("MB").draw().map_err(|e| err(&e))?;
        type Line = (&'static str, RGBColor, fn(&Sample) -> u64);
        let lines: [Line; 3] = [
            ("sent by the client", BLUE, |x| x.sent),
            ("received by the client", GREEN, |x| x.received),
            ("buffered by twirl", RED, |x| x.buffered),
        ];
        for (label, color, get) in lines {
            let points = s.samples.iter().map(|x| (x.t.as_secs_f64(), mb(get(x))));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        if let Some(cap) = s.cap {
            let y = mb(cap as u64);
            chart
                .draw_series(LineSeries::new([(0.0, y), (t_max, y)], BLACK.mix(0.6)))
                .map_err(|e| err(&e))?
                .label("twirl's hard cap")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(16_000_000), "16,000,000");
    }

    #[test]
    fn options_parse_with_defaults_and_reject_bad_seconds() {
        let o = Options::parse_args(["deadlock"]).unwrap();
        assert_eq!(o.bytes, 16_000_000);
        assert_eq!(o.stall, Duration::from_secs(2));
        let o = Options::parse_args(["deadlock", "--bytes", "1000", "--cap", "4096", "--stall", "0.5"]).unwrap();
        assert_eq!((o.bytes, o.cap, o.stall), (1000, 4096, Duration::from_millis(500)));
        assert!(Options::parse_args(["deadlock", "--stall", "-1"]).is_err());
    }

    #[test]
    fn reply_check_finds_the_first_wrong_byte() {
        assert!(check_uppercased(0, b"CAPITALIZE THIS!CAP").is_ok());
        assert!(check_uppercased(16, b"CAP").is_ok());
        let e = check_uppercased(3, b"ITx").unwrap_err();
        assert!(e.to_string().contains("byte 5"), "{e}");
    }
}
