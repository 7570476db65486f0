//! The four runs: blocking against blocking (the deadlock), the blocking
//! client against twirl's `caps` (with and without a hard cap), and a twirl
//! client against the blocking server.

use std::cell::RefCell;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use twirl::{Addr, Config, Context, Disconnect, Limits, OneShot, Protocol, Reactor, ReactorHandle, Stats, Transport};
use twirl_protocols::plugins::caps::{Caps, check_uppercased, produce};

use crate::options::Options;
use crate::peers::{
    JOIN_LIMIT, Track, blocking_client, blocking_server, join_within, joined, small_client, small_listener,
    socket_snapshot,
};
use crate::report::{Outcome, Report, Scenario, thousands};
use crate::watchdog::{SAMPLE_EVERY, Verdict, last_sample, watch};

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
        opts.live.end(number, &s.outcome.to_string());
        each(&s);
        scenarios.push(s);
    }
    Ok(Report { options: opts.clone(), scenarios })
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
    opts.live.begin(1, &sc.title, None);
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
    /// The reactor's `peak_buffered` at its last copy.
    peak: AtomicU64,
    /// The peak the watchdog's last sample saw.
    peak_seen: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Live {
    fn update(&self, s: &Stats) {
        self.buffered.store(s.buffered, Ordering::Relaxed);
        self.peak.store(s.peak_buffered, Ordering::Relaxed);
        self.bytes_in.store(s.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(s.bytes_out, Ordering::Relaxed);
    }
    fn get(&self, a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    /// The most twirl buffered since the previous sample: the buffer now,
    /// or the new peak if the peak rose meanwhile (a buffer that filled and
    /// drained between two samples still shows, so the chart never
    /// contradicts the report's `peak_buffered`).
    fn buffered_since_last(&self) -> u64 {
        let peak = self.peak.load(Ordering::Relaxed);
        let before = self.peak_seen.swap(peak, Ordering::Relaxed);
        let now = self.buffered.load(Ordering::Relaxed);
        if peak > before { now.max(peak) } else { now }
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
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.inner.connection_made(t);
    }
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
            let addr = reactor
                .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), move |_: &Addr| Watched {
                    inner: Caps,
                    lost: l.clone(),
                })?
                .addr;
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
    opts.live.begin(number, &title, cap);
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
        &|| (client.sent(), client.received(), live.buffered_since_last()),
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
    last_sample(&mut sc.samples, start, client.sent(), client.received(), live.buffered_since_last());
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

/// How the twirl client's connection ended: `Ok` if every byte came back
/// uppercased, or what went wrong; the outer error is a failure to connect.
/// (A [`twirl::Outcome`], not the lab's [`Outcome`], which is how a run ended.)
type FloodResult = twirl::Outcome<io::Result<Result<(), String>>>;

/// Sends `total` bytes of the message, never more than the write buffer's
/// high-water mark ahead, and reads the reply as it comes.
struct Flood {
    total: u64,
    queued: u64,
    received: u64,
    error: Option<String>,
    result: FloodResult,
}

impl Protocol for Flood {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Read the replies while the request waits to be sent: stopping
        // reading when our own output backs up is the lab's deadlock.
        t.set_backpressure(false);
        produce(&mut self.queued, self.total, t);
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        produce(&mut self.queued, self.total, t);
    }
    fn data_received(&mut self, data: &[u8], _: &mut dyn Transport) {
        if self.error.is_none()
            && let Err(e) = check_uppercased(self.received, data)
        {
            self.error = Some(e.to_string());
        }
        self.received += data.len() as u64;
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        let r = match (&self.error, reason.to_io_error()) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(e)) => Err(format!("after {} bytes received: {e}", self.received)),
            (None, None) if self.received != self.total => {
                Err(format!("sent {} bytes, received {}", self.total, self.received))
            }
            (None, None) => Ok(()),
        };
        self.result.set(Ok(r));
    }
}

fn twirl_vs_blocking(opts: &Options) -> io::Result<Scenario> {
    let mut sc = new_scenario(3, "twirl client (reads while it writes) -> blocking server");
    opts.live.begin(3, &sc.title, None);
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
    let (l, total, deadline) = (live.clone(), opts.bytes, opts.deadline);
    let start = Instant::now();
    let client_thread = thread::spawn(move || -> io::Result<(Result<(), String>, Stats)> {
        let result = FloodResult::new();
        let mut reactor = Reactor::new()?;
        let flood = Flood { total, queued: 0, received: 0, error: None, result: result.clone() };
        reactor.connect_tcp(addr, OneShot::new(result.clone(), move |_: &Addr| flood))?;
        publish(&mut reactor, &l);
        let _ = tx.send(reactor.handle());
        // The watchdog ends the run (through the handle) long before this.
        let waited = reactor.run_until(&result, deadline + JOIN_LIMIT);
        l.update(&reactor.stats());
        let r = match waited {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("connect: {e}")),
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::TimedOut) => {
                Err("stopped before the connection ended".into())
            }
            Err(e) => return Err(e),
        };
        Ok((r, reactor.stats()))
    });
    let handle = rx.recv_timeout(JOIN_LIMIT).ok();
    let verdict = watch(
        opts,
        start,
        &mut sc.samples,
        &|| (live.get(&live.bytes_out), live.get(&live.bytes_in), live.buffered_since_last()),
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
    if let Some(s) = &server_sock
        && !matches!(verdict, Verdict::Done)
    {
        let _ = s.shutdown(Shutdown::Both);
    }
    let c = join_within(client_thread, JOIN_LIMIT);
    if server_sock.is_none() {
        // Never accepted (the connect failed): wake the accept so it returns.
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    }
    let _ = join_within(server_thread, JOIN_LIMIT);
    sc.sent = live.get(&live.bytes_out);
    sc.received = live.get(&live.bytes_in);
    last_sample(&mut sc.samples, start, sc.sent, sc.received, live.buffered_since_last());
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
