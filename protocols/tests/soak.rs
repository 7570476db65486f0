//! The soak test (issue #7): mixed clients against every plugin for a while,
//! then a report. Ignored by default (CI skips it); run it with
//!
//! ```text
//! TWIRL_SOAK_SECS=600 cargo test --release -p twirl-protocols --test soak -- --ignored soak --nocapture
//! ```
//!
//! (`TWIRL_SOAK_SECS` defaults to 60.) One reactor serves every plugin on
//! loopback with a 4 MiB hard cap per connection and a 2 s idle timeout;
//! client threads, each a kind, loop until the time is up:
//!
//! - good: every plugin's well-behaved client, exact answers checked;
//! - slow: requests trickled a byte every few milliseconds, answers checked;
//! - resetting: part of a large request, then a reset (SO_LINGER 0);
//! - oversized: over-long lines, oversized AMF packets, JSON nested too deep,
//!   a partial record at half-close: each must get its error line, then close;
//! - silent: connects and says nothing (closed by the idle timeout);
//! - non-reader: sends without reading (caps: cut off at the hard cap;
//!   echo: held back by backpressure);
//! - garbage datagrams at every UDP plugin.
//!
//! The report: requests served, outcomes and errors by kind, the process's
//! RSS at the start, after warm-up, at its peak and at the end (clients and
//! server share the process), connections open at the end (must be 0) and
//! panics caught (must be 0). The RSS of the server alone is what
//! `bench/` measures; here the point is that it does not keep growing.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{AllPlugins, End, Ports, connect, read_to_end, reset};
use twirl::{Config, Limits};
use twirl_protocols::serve::ServeLimits;

/// Counts by kind, shared by the client threads.
#[derive(Default)]
struct Tally {
    served: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn served(&self, kind: &str) {
        *self.served.lock().unwrap().entry(kind.to_string()).or_default() += 1;
    }

    fn error(&self, kind: &str, detail: String) {
        *self.errors.lock().unwrap().entry(kind.to_string()).or_default() += 1;
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 20 {
            first.push(format!("{kind}: {detail}"));
        }
    }

    fn outcome(&self, kind: &str, r: Result<(), String>) {
        match r {
            Ok(()) => self.served(kind),
            Err(e) => self.error(kind, e),
        }
    }
}

/// The process's resident set and its high-water mark, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

type PortMap = BTreeMap<&'static str, Ports>;

fn tcp(ports: &PortMap, p: &str) -> SocketAddr {
    ports[p].tcp.expect("tcp")
}

fn good(ports: &PortMap, tally: &Tally, round: usize) {
    for (name, p) in ports {
        if let Some(a) = p.tcp {
            tally.outcome(&format!("good {name} tcp"), support::good_tcp(name, a));
        }
        // Over UDP every other round. A datagram may be lost (the garbage
        // thread fills the same sockets): like a real client, try again,
        // and count it an error only if three tries go unanswered.
        if let Some(a) = p.udp
            && round.is_multiple_of(2)
        {
            let kind = format!("good {name} udp");
            let mut r = support::good_udp(name, a);
            for _ in 0..2 {
                if r.is_ok() {
                    break;
                }
                tally.served(&format!("{kind}: lost, sent again"));
                r = support::good_udp(name, a);
            }
            tally.outcome(&kind, r);
        }
    }
}

/// Writes `request` a byte at a time, `gap` apart, then half-closes and
/// compares the whole answer. A line plugin answers a partial line after
/// 100 ms of silence (the idle flush, `text::DEFAULT_IDLE_FLUSH`): if this
/// thread was not scheduled for that long between two bytes (two busy
/// cores), an answer in parts is the specified one, and is told apart.
fn trickle(addr: SocketAddr, request: &[u8], gap: Duration, want: &[u8]) -> Result<Trickled, String> {
    let mut s = connect(addr);
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    for b in request {
        s.write_all(std::slice::from_ref(b)).map_err(|e| e.to_string())?;
        longest = longest.max(last.elapsed());
        thread::sleep(gap);
        last = Instant::now();
    }
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let (got, end) = read_to_end(&mut s);
    match (got == want && end == End::Eof, longest >= Duration::from_millis(90)) {
        (true, _) => Ok(Trickled::Whole),
        (false, true) => Ok(Trickled::Stalled),
        (false, false) => Err(format!("{end:?} after {:?}", String::from_utf8_lossy(&got[..got.len().min(200)]))),
    }
}

/// (kind, plugin, request, answer, gap between bytes).
type SlowCase<'a> = (&'a str, &'a str, &'a [u8], &'a [u8], Duration);

enum Trickled {
    Whole,
    Stalled,
}

fn slow(ports: &PortMap, tally: &Tally, round: usize) {
    let gap = Duration::from_millis(1 + (round % 4) as u64);
    let (packet, line) = support::amf_sample();
    let cases: [SlowCase<'_>; 4] = [
        ("slow reverse", "reverse", b"hello big world\n", b"world big hello\n", gap),
        ("slow json", "json", b"{\"b\":1,\"a\":[2]}\n", b"{\"a\":[2],\"b\":1}\n", gap),
        ("slow struct", "struct", &support::LAB, support::LAB_LINES.as_bytes(), gap),
        ("slow amf", "amf", &packet, line.as_bytes(), gap / 2),
    ];
    for (kind, plugin, request, want, gap) in cases {
        match trickle(tcp(ports, plugin), request, gap, want) {
            Ok(Trickled::Whole) => tally.served(kind),
            Ok(Trickled::Stalled) => tally.served(&format!("{kind}: client stalled 100 ms, answered in parts")),
            Err(e) => tally.error(kind, e),
        }
    }
}

fn resetting(ports: &PortMap, tally: &Tally, round: usize) {
    let plugins = ["echo", "caps", "reverse", "json", "amf", "struct", "chat", "upper", "discard"];
    let plugin = plugins[round % plugins.len()];
    let Ok(mut s) = TcpStream::connect(tcp(ports, plugin)) else {
        return tally.error("resetting: connect", plugin.to_string());
    };
    let big = match plugin {
        "amf" => {
            let mut p = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0, 0, 0xea, 0x60];
            p.resize(p.len() + 30_000, b'a');
            p
        }
        "reverse" | "upper" => vec![b'w'; 6000],
        "json" => [b"{\"k\":\"".to_vec(), vec![b'v'; 30_000]].concat(),
        _ => vec![b'x'; 256 * 1024 * (1 + round % 4)],
    };
    let _ = s.write_all(&big);
    if round.is_multiple_of(3) {
        let _ = s.shutdown(Shutdown::Write);
    }
    reset(s);
    tally.served("resetting (reset sent)");
    // A breather, so that the churn does not take both cores from the rest.
    thread::sleep(Duration::from_millis(2));
}

/// Sends `request` (half-closing if asked) and expects one error line that
/// starts with `head`, then the server's close.
fn refused(addr: SocketAddr, request: &[u8], half_close: bool, head: &str) -> Result<(), String> {
    let mut s = connect(addr);
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let request = request.to_vec();
    let writer = thread::spawn(move || {
        let _ = w.write_all(&request);
        if half_close {
            let _ = w.shutdown(Shutdown::Write);
        }
    });
    let (got, end) = read_to_end(&mut s);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&got);
    let last = text.lines().last().unwrap_or("");
    if last.starts_with(head) && text.ends_with('\n') && end == End::Eof {
        Ok(())
    } else {
        Err(format!("{end:?} after {:?}", &text[..text.len().min(200)]))
    }
}

fn oversized(ports: &PortMap, tally: &Tally, round: usize) {
    match round % 6 {
        0 => tally.outcome(
            "oversized reverse line",
            refused(tcp(ports, "reverse"), &vec![b'r'; 20_000], false, "error: line too long ("),
        ),
        1 => tally.outcome(
            "oversized json line",
            refused(tcp(ports, "json"), &vec![b' '; 100_000], false, "{\"error\":\"line too long: "),
        ),
        2 => tally.outcome(
            "oversized amf packet",
            refused(
                tcp(ports, "amf"),
                &[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0, 1, 0x11, 0x70],
                false,
                "error: at byte 19: long string of 70000 bytes would end past",
            ),
        ),
        3 => tally.outcome(
            "oversized chat line",
            refused(tcp(ports, "chat"), &vec![b'c'; 10_000], false, "error: line too long ("),
        ),
        4 => tally.outcome(
            "json nested too deep",
            refused(tcp(ports, "json"), &[vec![b'['; 5000], b"\n".to_vec()].concat(), true, "{\"error\":\"too deep"),
        ),
        _ => tally.outcome(
            "struct partial record",
            refused(tcp(ports, "struct"), &support::LAB[..7], true, "error: the stream ended inside a record: 7 bytes"),
        ),
    }
}

fn silent(ports: &PortMap, tally: &Tally, round: usize) {
    let plugins = ["echo", "reverse", "json", "amf", "struct", "time"];
    let mut s = connect(tcp(ports, plugins[round % plugins.len()]));
    // Closed by the 2 s idle timeout (a reset: the idle close aborts).
    let (_, end) = read_to_end(&mut s);
    if end == End::Timeout {
        tally.error("silent", "never closed".into());
    } else {
        tally.served("silent (closed by the idle timeout)");
    }
}

fn non_reader(ports: &PortMap, tally: &Tally, round: usize) {
    let plugin = ["caps", "echo"][round % 2];
    let mut s = connect(tcp(ports, plugin));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let chunk = vec![b'n'; 64 * 1024];
    // caps must cut it off at the 4 MiB hard cap; echo stops reading it
    // (backpressure), so its writes block. Either long before 256 MiB.
    for _ in 0..4096 {
        match s.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if plugin == "caps" {
                    tally.error("non-reader", "caps stopped reading instead of buffering".into());
                } else {
                    tally.served("non-reader (held back by backpressure)");
                }
                return;
            }
            Err(_) => {
                if plugin == "caps" {
                    tally.served("non-reader (cut off at the hard cap)");
                } else {
                    tally.error("non-reader", format!("{plugin} cut off a peer instead of holding it back"));
                }
                // Each one costs the server a hard cap's worth of copying: pace them.
                thread::sleep(Duration::from_millis(20));
                return;
            }
        }
    }
    tally.error("non-reader", format!("{plugin} took 256 MiB from a peer that never reads"));
}

fn garbage_datagrams(ports: &PortMap, tally: &Tally, round: usize) {
    let u = support::udp_socket();
    let junk: Vec<u8> = (0..(round * 37) % 2000).map(|i| (i * 31 + round) as u8).collect();
    for p in ports.values() {
        if let Some(a) = p.udp {
            let _ = u.send_to(&junk, a);
        }
    }
    tally.served("garbage datagrams (one per UDP plugin)");
    thread::sleep(Duration::from_millis(5));
}

type Kind = fn(&PortMap, &Tally, usize);

#[test]
#[ignore = "long: run with --ignored soak (TWIRL_SOAK_SECS, default 60)"]
fn soak() {
    let secs: u64 = std::env::var("TWIRL_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let run_for = Duration::from_secs(secs);
    let limits = Limits { hard_cap: 4 << 20, ..Limits::default() };
    let serve_limits = ServeLimits { idle_timeout: Some(Duration::from_secs(2)), ..ServeLimits::default() };
    let (rss_start, _) = rss_kib();
    let server = AllPlugins::start(Config { limits, ..Config::default() }, serve_limits);
    let ports = Arc::new(server.ports.clone());
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let kinds: [(&str, Kind, usize); 8] = [
        ("good", good, 4),
        ("slow", slow, 2),
        ("resetting", resetting, 2),
        ("oversized", oversized, 2),
        ("silent", silent, 1),
        ("non-reader", non_reader, 1),
        ("garbage datagrams", garbage_datagrams, 1),
        ("good (second wave)", good, 1),
    ];
    let mut threads = Vec::new();
    for (name, kind, count) in kinds {
        for i in 0..count {
            let (ports, tally, stop) = (ports.clone(), tally.clone(), stop.clone());
            threads.push(thread::Builder::new().name(format!("{name} {i}")).spawn(move || {
                let mut round = i;
                while !stop.load(Ordering::Relaxed) {
                    kind(&ports, &tally, round);
                    round += 1;
                }
            }));
        }
    }
    let started = Instant::now();
    let mut rss_warm = None;
    let mut samples = Vec::new();
    while started.elapsed() < run_for {
        thread::sleep(Duration::from_secs(1).min(run_for.saturating_sub(started.elapsed())));
        let (rss, _) = rss_kib();
        samples.push(rss);
        if rss_warm.is_none() && started.elapsed() >= run_for / 4 {
            rss_warm = Some(rss);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.expect("spawn client").join().expect("client thread");
    }
    let stats = server.wait_until_no_connection(Duration::from_secs(15));
    let (rss_end, rss_peak) = rss_kib();
    let rss_warm = rss_warm.unwrap_or(rss_end);

    let served = tally.served.lock().unwrap().clone();
    let errors = tally.errors.lock().unwrap().clone();
    let total: u64 = served.values().sum();
    println!("\n=== soak: {secs} s, {} client threads ===", kinds.iter().map(|k| k.2).sum::<usize>());
    println!("requests served (or refused as they must be): {total}");
    for (k, v) in &served {
        println!("  {k:<45} {v}");
    }
    println!("errors: {}", errors.values().sum::<u64>());
    for (k, v) in &errors {
        println!("  {k:<45} {v}");
    }
    for e in tally.first_errors.lock().unwrap().iter() {
        println!("  first errors: {e}");
    }
    println!(
        "RSS (whole test process): start {}, after warm-up {}, peak {}, end {}; samples min {} max {}",
        mib(rss_start),
        mib(rss_warm),
        mib(rss_peak),
        mib(rss_end),
        mib(samples.iter().copied().min().unwrap_or(0)),
        mib(samples.iter().copied().max().unwrap_or(0)),
    );
    println!("open connections at the end: {}", stats.open);
    println!("panics: {}", stats.panics);
    println!("server counters: {stats}");

    assert_eq!(stats.open, 0, "connections left open");
    assert_eq!(stats.panics, 0, "panics caught in callbacks");
    assert!(errors.is_empty(), "unexpected outcomes: {errors:?}");
    assert!(
        rss_end <= rss_warm + 64 * 1024,
        "RSS grew from {} after warm-up to {} at the end",
        mib(rss_warm),
        mib(rss_end)
    );
    server.stop();
}
