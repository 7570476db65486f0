//! TLS workloads, the `twirl` command (`twirl serve echo@tls:...`) beside
//! a tokio + tokio-rustls peer: the same certificate (ECDSA P-256, made
//! here with rcgen), the same rustls with *ring*, the same cipher suite
//! (the client offers only TLS13_AES_128_GCM_SHA256, with X25519). Each
//! round starts a fresh server of each kind in turn (twirl, tokio, twirl,
//! tokio, ...), pinned to core 0,
//! the client pinned to core 1, and runs every workload against it; the
//! figure is the server process's CPU time (user + system, to the
//! nanosecond from /proc/PID/task/*/schedstat) or
//! resident memory, the median over `--rounds-of` rounds with (min–max); the
//! ratio is the median of the per-round ratios twirl / tokio (each round's
//! two peers saw the same machine), with the ratio of the medians beside it.
//!
//! - pingpong-100: `--conns` connections, each `--rounds` round trips of a
//!   100-byte message; server CPU per message.
//! - stream: one connection pushes `--mb` MiB in 128 KiB pieces, reading
//!   each back before the next; server CPU per MiB.
//! - handshakes: two client threads open `--handshakes` fresh connections
//!   (full handshakes, no resumption), one byte echoed on each; server CPU
//!   per handshake, as handshakes per CPU-second.
//! - idle: `--idle` connections, handshaken, then silent; server RSS per
//!   connection.
//!
//! Both run on the system allocator (glibc's malloc). The stream workload
//! is then run again with twirl's layer on mimalloc (`peer-twirl-tls-mimalloc`)
//! beside tokio on each allocator; `--no-allocators` leaves that out. Where
//! the allocator places the 16 KiB blocks records are copied through
//! decides whether glibc's `memcpy` of a record is fast (README § TLS).
//!
//! `cargo run --release -p twirl-bench --bin tls-bench -- [--rounds-of 5] [--conns 20] [--rounds 2000] [--mb 256] [--handshakes 2000] [--idle 1000] [--no-allocators]`
//!
//! `--threads` instead measures a CPU-heavy workload across threads (issue
//! #18): full handshakes from `--clients` client threads (default 2), against
//! `twirl serve --threads 1` and `--threads 2` (`echo@tls:...`) and tokio-rustls
//! with the current-thread and the 2-worker runtime, nothing pinned;
//! handshakes per wall-clock second and server CPU per handshake.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use twirl_bench::{read_cpu, read_cpu_ns, read_rss};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A peer process, killed on drop.
struct Peer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Starts `server`, pinned to core 0 when there are two, and reads its
    /// address from its first line.
    fn start(server: &Server) -> io::Result<Peer> {
        let pinned = twirl_bench::online_cpus() > 1;
        start(server, pinned)
    }
}

/// A server to run: its program and arguments.
struct Server {
    program: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// The `twirl` command serving the `echo` plugin over TLS: what ships.
    fn twirl(bin: &Path, cert: &Path, key: &Path, threads: usize) -> Server {
        let spec = format!("echo@tls:0:cert={}:key={}:interface=127.0.0.1", cert.display(), key.display());
        let args = ["serve", "--threads", &threads.to_string(), &spec].map(String::from).to_vec();
        Server { program: bin.join("twirl"), args }
    }

    /// One of this crate's TLS echo peers (`twirl_bench::tls_peer`).
    fn peer(bin: &Path, name: &str, cert: &Path, key: &Path, workers: usize) -> Server {
        let (c, k) = (cert.display().to_string(), key.display().to_string());
        let mut args = ["--addr", "127.0.0.1:0", "--cert", &c, "--key", &k].map(String::from).to_vec();
        args.extend(["--workers".to_string(), workers.to_string()]);
        Server { program: bin.join(name), args }
    }
}

/// Starts `server` and reads its address from its first `listening ... on
/// tls:ADDR` (or `listening echo on ADDR`) line.
fn start(server: &Server, pinned: bool) -> io::Result<Peer> {
    let mut cmd = Command::new(&server.program);
    cmd.args(&server.args).stdout(Stdio::piped()).stderr(Stdio::null());
    if pinned {
        // SAFETY: pin_to_core only calls sched_setaffinity, which is
        // async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(|| twirl_bench::pin_to_core(0));
        }
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let word = line.trim().rsplit(' ').next().unwrap_or("");
    let addr = word.strip_prefix("tls:").unwrap_or(word).parse().map_err(io::Error::other)?;
    Ok(Peer { child, addr })
}

fn client_config(cert: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    // One byte there and back: the handshake is done on both sides.
    tls.write_all(b"x")?;
    let mut one = [0u8; 1];
    tls.read_exact(&mut one)?;
    Ok(tls)
}

fn pingpong(config: &Arc<ClientConfig>, addr: SocketAddr, conns: usize, rounds: usize) -> io::Result<()> {
    let mut links: Vec<Tls> = (0..conns).map(|_| connect(config, addr)).collect::<io::Result<_>>()?;
    let msg = [b'p'; 100];
    let mut buf = [0u8; 100];
    for _ in 0..rounds {
        // Every connection has a message in flight at once, as loadgen does.
        for l in links.iter_mut() {
            l.write_all(&msg)?;
        }
        for l in links.iter_mut() {
            l.read_exact(&mut buf)?;
        }
    }
    Ok(())
}

fn stream(config: &Arc<ClientConfig>, addr: SocketAddr, mib: usize) -> io::Result<()> {
    let mut l = connect(config, addr)?;
    let piece = vec![b's'; 128 * 1024];
    let mut back = vec![0u8; piece.len()];
    for _ in 0..mib * 8 {
        l.write_all(&piece)?;
        l.read_exact(&mut back)?;
    }
    Ok(())
}

fn handshakes(config: &Arc<ClientConfig>, addr: SocketAddr, n: usize) -> io::Result<()> {
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || -> io::Result<()> {
                for _ in 0..n / 2 {
                    let mut l = connect(&config, addr)?;
                    l.conn.send_close_notify();
                    let _ = l.flush();
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| io::Error::other("client thread panicked"))??;
    }
    Ok(())
}

/// Runs `work` against the peer; returns the server CPU it cost, in µs
/// (and says on stderr how it splits into user and kernel time, and how
/// many page faults it took).
fn cpu_of(peer: &Peer, what: &str, work: impl FnOnce() -> io::Result<()>) -> io::Result<f64> {
    let pid = peer.child.id();
    let (before, before_ns) = (read_cpu(pid)?, read_cpu_ns(pid)?);
    work()?;
    // Let the server finish what it was doing (closes, the last echoes).
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (used, used_ns) = (read_cpu(pid)?.since(&before), read_cpu_ns(pid)? - before_ns);
    let (user, sys) = (used.user_us / 1000.0, used.sys_us / 1000.0);
    eprintln!(
        "{what}: {:.1} ms (user {user:.0} ms, kernel {sys:.0} ms), {} minor page faults",
        used_ns as f64 / 1e6,
        used.minflt
    );
    Ok(used_ns as f64 / 1000.0)
}

struct Figures {
    pingpong_us_per_msg: f64,
    stream_us_per_mib: f64,
    handshakes_per_cpu_s: f64,
    idle_bytes_per_conn: f64,
}

fn run(peer: &Peer, config: &Arc<ClientConfig>, a: &Opts) -> io::Result<Figures> {
    let addr = peer.addr;
    let pp = cpu_of(peer, "pingpong", || pingpong(config, addr, a.conns, a.rounds))?;
    let st = cpu_of(peer, "stream", || stream(config, addr, a.mib))?;
    let hs = cpu_of(peer, "handshakes", || handshakes(config, addr, a.handshakes))?;
    let before = read_rss(peer.child.id())?;
    let held: Vec<Tls> = (0..a.idle).map(|_| connect(config, addr)).collect::<io::Result<_>>()?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let after = read_rss(peer.child.id())?;
    drop(held);
    Ok(Figures {
        // The handshake's byte on each connection is noise beside the rounds.
        pingpong_us_per_msg: pp / (a.conns * a.rounds) as f64,
        stream_us_per_mib: st / a.mib as f64,
        handshakes_per_cpu_s: a.handshakes as f64 / (hs / 1e6),
        idle_bytes_per_conn: after.saturating_sub(before) as f64 / a.idle as f64,
    })
}

/// The stream workload's server CPU per MiB, after the pingpong workload
/// (so that the heap has the shape it has in [`run`]).
fn stream_after_pingpong(peer: &Peer, config: &Arc<ClientConfig>, a: &Opts) -> io::Result<f64> {
    pingpong(config, peer.addr, a.conns, a.rounds)?;
    Ok(cpu_of(peer, "stream", || stream(config, peer.addr, a.mib))? / a.mib as f64)
}

/// The median of `v`, and it with (min-max) as text.
fn spread(mut v: Vec<f64>) -> (f64, String) {
    v.sort_by(|a, b| a.total_cmp(b));
    let median = v[v.len() / 2];
    let (lo, hi) = (v[0], v[v.len() - 1]);
    (median, format!("{median:.2} ({lo:.2}-{hi:.2})"))
}

struct Opts {
    rounds_of: usize,
    conns: usize,
    rounds: usize,
    mib: usize,
    handshakes: usize,
    idle: usize,
}

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let opts = Opts {
        rounds_of: args.num("rounds-of", 5).map_err(io::Error::other)?,
        conns: args.num("conns", 20).map_err(io::Error::other)?,
        rounds: args.num("rounds", 2000).map_err(io::Error::other)?,
        mib: args.num("mb", 256).map_err(io::Error::other)?,
        handshakes: args.num("handshakes", 2000).map_err(io::Error::other)?,
        idle: args.num("idle", 1000).map_err(io::Error::other)?,
    };
    twirl_bench::raise_nofile(65_536);
    let dir = std::env::temp_dir().join(format!("twirl-tls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).map_err(io::Error::other)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    let config = client_config(&CertificateDer::from(made.cert.der().to_vec()));
    let bin: PathBuf = std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default();

    if args.flag("threads") {
        let clients: usize = args.num("clients", 2).map_err(io::Error::other)?;
        let r = threads(&bin, &cert, &key, &config, &opts, clients);
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if twirl_bench::online_cpus() > 1 {
        twirl_bench::pin_to_core(1)?;
    }
    let shipped = Server::twirl(&bin, &cert, &key, 1);
    let (mut twirl, mut tokio) = (Vec::new(), Vec::new());
    let allocators = !args.flag("no-allocators");
    let mut by_allocator: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); ALLOCATOR_PAIRS.len()];
    for round in 0..opts.rounds_of.max(1) {
        eprintln!("round {}", round + 1);
        twirl.push(run(&Peer::start(&shipped)?, &config, &opts)?);
        tokio.push(run(&Peer::start(&Server::peer(&bin, "peer-tokio-tls", &cert, &key, 1))?, &config, &opts)?);
        for ((_, twirl_peer, tokio_peer), (t, k)) in ALLOCATOR_PAIRS.iter().zip(&mut by_allocator) {
            if allocators {
                let twirl_server = Server::peer(&bin, twirl_peer, &cert, &key, 1);
                t.push(stream_after_pingpong(&Peer::start(&twirl_server)?, &config, &opts)?);
                let tokio_server = Server::peer(&bin, tokio_peer, &cert, &key, 1);
                k.push(stream_after_pingpong(&Peer::start(&tokio_server)?, &config, &opts)?);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("TLS 1.3, TLS13_AES_128_GCM_SHA256, X25519, ECDSA P-256 (rustls + ring on both sides)");
    println!(
        "{} round(s); server on core 0, client on core 1; median (min-max); \
         both on the system allocator (glibc's malloc)",
        opts.rounds_of.max(1)
    );
    println!("{:<38} {:>26} {:>26} {:>24} {:>10}", "workload", "twirl", "tokio", "ratio per round", "of medians");
    let row = |name: &str, f: fn(&Figures) -> f64| {
        let (t, k): (Vec<f64>, Vec<f64>) = (twirl.iter().map(f).collect(), tokio.iter().map(f).collect());
        print_row(name, &t, &k);
    };
    row(&format!("pingpong-100 ({}x{}) CPU us/msg", opts.conns, opts.rounds), |f| f.pingpong_us_per_msg);
    row(&format!("stream ({} MiB) CPU us/MiB", opts.mib), |f| f.stream_us_per_mib);
    row("full handshakes per CPU-second", |f| f.handshakes_per_cpu_s);
    row(&format!("idle ({}) RSS bytes/conn", opts.idle), |f| f.idle_bytes_per_conn);
    if allocators {
        println!("stream ({} MiB) CPU us/MiB, on mimalloc:", opts.mib);
        for ((name, _, _), (t, k)) in ALLOCATOR_PAIRS.iter().zip(&by_allocator) {
            print_row(name, t, k);
        }
    }
    Ok(())
}

/// The stream workload again on mimalloc: (row, twirl's side, tokio's).
/// mimalloc starts 16 KiB blocks at a page's start, which puts tokio's echo
/// buffer 5 bytes from where rustls copies a record to (modulo 4 KiB), in
/// the band where glibc's `rep movsb` is slow on AMD Zen (glibc bug 30994);
/// twirl places its buffers within their pages to stay clear of it.
const ALLOCATOR_PAIRS: [(&str, &str, &str); 2] = [
    ("  twirl on mimalloc, tokio on glibc", "peer-twirl-tls-mimalloc", "peer-tokio-tls"),
    ("  both on mimalloc", "peer-twirl-tls-mimalloc", "peer-tokio-tls-mimalloc"),
];

/// One row: the two medians with their spread, the median of the per-round
/// ratios, and the ratio of the medians.
fn print_row(name: &str, twirl: &[f64], tokio: &[f64]) {
    let (t, k) = (spread(twirl.to_vec()), spread(tokio.to_vec()));
    let per_round = spread(twirl.iter().zip(tokio).map(|(a, b)| a / b).collect());
    println!("{name:<38} {:>26} {:>26} {:>24} {:>9.2}x", t.1, k.1, per_round.1, t.0 / k.0);
}

/// Full handshakes from `clients` threads against each server, `rounds_of`
/// interleaved rounds: handshakes per wall-clock second, CPU per handshake.
fn threads(
    bin: &Path,
    cert: &Path,
    key: &Path,
    config: &Arc<ClientConfig>,
    a: &Opts,
    clients: usize,
) -> io::Result<()> {
    let servers = [
        ("twirl --threads 1", Server::twirl(bin, cert, key, 1)),
        ("twirl --threads 2", Server::twirl(bin, cert, key, 2)),
        ("tokio current-thread", Server::peer(bin, "peer-tokio-tls", cert, key, 1)),
        ("tokio 2 workers", Server::peer(bin, "peer-tokio-tls", cert, key, 2)),
    ];
    let mut rate = vec![Vec::new(); servers.len()];
    let mut cpu = vec![Vec::new(); servers.len()];
    for round in 0..a.rounds_of.max(1) {
        eprintln!("round {}", round + 1);
        for (i, (name, server)) in servers.iter().enumerate() {
            let peer = start(server, false)?;
            let before = read_cpu(peer.child.id())?;
            let t0 = std::time::Instant::now();
            let each = a.handshakes / clients;
            let workers: Vec<_> = (0..clients)
                .map(|_| {
                    let (config, addr) = (config.clone(), peer.addr);
                    std::thread::spawn(move || -> io::Result<()> {
                        for _ in 0..each {
                            let mut l = connect(&config, addr)?;
                            l.conn.send_close_notify();
                            let _ = l.flush();
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join().map_err(|_| io::Error::other("client thread panicked"))??;
            }
            let wall = t0.elapsed().as_secs_f64();
            let used = read_cpu(peer.child.id())?.since(&before);
            let n = (each * clients) as f64;
            eprintln!("{name}: {:.0} handshakes/s, {:.1} us CPU each", n / wall, used.total_us() / n);
            rate[i].push(n / wall);
            cpu[i].push(used.total_us() / n);
        }
    }
    println!(
        "full handshakes, {clients} client threads, nothing pinned; {} round(s), median (min-max)",
        a.rounds_of.max(1)
    );
    println!("{:<24} {:>28} {:>28}", "server", "handshakes/s", "server CPU us/handshake");
    for (i, (name, _)) in servers.iter().enumerate() {
        println!("{name:<24} {:>28} {:>28}", spread(rate[i].clone()).1, spread(cpu[i].clone()).1);
    }
    Ok(())
}
