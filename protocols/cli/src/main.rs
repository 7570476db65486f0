//! The `twirl` command: list, serve and drive the plugins.
//!
//! ```text
//! twirl list
//! twirl help PLUGIN
//! twirl serve [--trace] [--stats SECS] [--dashboard ENDPOINT] [PLUGIN[@ENDPOINT] [KEY=VALUE]...]...
//! twirl client PLUGIN ENDPOINT [ARG]...
//! twirl cat [--listen] ENDPOINT
//! twirl cert DIR [--name NAME]... [--force]
//! twirl deadlock [--bytes N] [--cap N] [--svg FILE] [--dashboard ENDPOINT]
//! twirl mtu HOST [--port P] [--fragment]
//! twirl broadcast ADDR:PORT [WORD]... [--wait SECS] [--interface ADDR]
//! twirl multicast GROUP:PORT [--interface ADDR] [--count N]
//! twirl arp decode HEX | twirl arp watch IFACE [--count N] [--timeout SECS]
//! twirl reuseaddr
//! ```
//!
//! Exit status: 0 on success (and after SIGINT/SIGTERM), 2 for a usage
//! error, 1 for a runtime failure; each with a one-line message on stderr.
//!
//! The plugins come from `twirl-protocols` (its registry), the deadlock lab
//! from `twirl-lab`; this crate is the command line around them.

mod arp;
mod broadcast;
mod cat;
mod cert;
mod log_pipe;
mod mtu;
mod restart;
mod reuseaddr;
mod threads;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use twirl::Config;
use twirl::endpoint::ClientEndpoint;
use twirl_protocols::client_args;
use twirl_protocols::plugin::ClientError;
use twirl_protocols::registry::{self, PLUGINS};
use twirl_protocols::serve;

#[derive(Parser)]
#[command(
    name = "twirl",
    version,
    about = "A Twisted-style reactor serving the socket-lab protocols",
    disable_help_subcommand = true,
    after_help = "Plugin options: KEY=VALUE words after a spec configure its plugin, as in\n  twirl serve portforward@tcp:8000 to=tcp:127.0.0.1:7007 echo@tcp:7007\n'twirl list' marks the plugins that take options; 'twirl help PLUGIN' lists them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per plugin: name, transports, default endpoints, summary,
    /// and `[options: ...]` for those that take options (`!`: required).
    List,
    /// A plugin's description and its options; or a command's help.
    Help {
        /// A plugin (or a command: serve, client, ...).
        topic: Option<String>,
    },
    /// Serve plugins (all of them on their default endpoints when none is named).
    Serve {
        /// Log every loop event: readiness, reads, writes, WouldBlock, timers.
        #[arg(long)]
        trace: bool,
        /// Log a one-line statistics summary every SECS seconds.
        #[arg(long, value_name = "SECS")]
        stats: Option<f64>,
        /// Serve a live view of the reactor (a page, and /stats.json for
        /// scripts) on ENDPOINT (tcp:PORT), on the same reactor.
        #[arg(long, value_name = "ENDPOINT")]
        dashboard: Option<String>,
        /// Close a connection that sends nothing (no whole line, packet or
        /// record, for the framed plugins) for SECS seconds (0: never).
        #[arg(long, value_name = "SECS", default_value_t = 300.0)]
        idle_timeout: f64,
        /// Close a connection open for SECS seconds (0: never).
        #[arg(long, value_name = "SECS", default_value_t = 0.0)]
        max_lifetime: f64,
        /// Most connections per listener (0: no cap).
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        max_conns: usize,
        /// Most connections per peer address (0: no cap). Default: none on
        /// loopback, 64 on any other interface.
        #[arg(long, value_name = "N")]
        max_per_peer: Option<usize>,
        /// Bytes of output all connections may hold buffered together, in
        /// MiB; past it the biggest holders are cut off. Default: a
        /// sixteenth of the machine's memory, 64 to 512 MiB.
        #[arg(long, value_name = "MIB")]
        memory_budget: Option<f64>,
        /// UDP replies per second to one address (0: no limit; loopback is
        /// not limited).
        #[arg(long, value_name = "N", default_value_t = 100)]
        reply_rate: u32,
        /// Reactors, one per thread, each with its own listeners on every
        /// endpoint (SO_REUSEPORT); 0: one per core.
        #[arg(long, value_name = "N", default_value_t = 1)]
        threads: usize,
        /// PLUGIN or PLUGIN@ENDPOINT (tcp:PORT[:interface=ADDR], udp:PORT[:interface=ADDR], unix:PATH,
        /// tls:PORT:cert=PATH:key=PATH[:interface=ADDR][:client_ca=PATH][:handshake_timeout=SECS]),
        /// each followed by its plugin's options as KEY=VALUE words (see 'twirl help PLUGIN').
        specs: Vec<String>,
    },
    /// A netcat for the reactor: stdin to the socket, the socket to stdout.
    Cat {
        /// Wait for one peer on a server endpoint (tcp:PORT, unix:PATH) instead of connecting.
        #[arg(long)]
        listen: bool,
        /// tcp:HOST:PORT, udp:HOST:PORT, unix:PATH or tls:HOST:PORT[:ca=PATH][:name=SNI]
        /// (with --listen: tcp:PORT, unix:PATH or tls:PORT:cert=PATH:key=PATH).
        endpoint: String,
    },
    /// Run a plugin's client against a server ('twirl client PLUGIN --help': its flags).
    Client {
        /// The plugin.
        plugin: String,
        /// tcp:HOST:PORT, udp:HOST:PORT, unix:PATH or tls:HOST:PORT[:ca=PATH][:name=SNI].
        endpoint: String,
        /// The plugin client's flags and words ('--' before data that starts with '-').
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The deadlock lab: a blocking client and server freeze; twirl does not (seed 002).
    Deadlock(twirl_lab::Options),
    /// Path MTU to HOST and the largest UDP payload that fits unfragmented (seed 002 big_sender).
    Mtu {
        /// A host name or address (IPv4 or IPv6).
        host: String,
        /// The UDP port probed (with --fragment: a UDP echo server's).
        #[arg(long, value_name = "P", default_value_t = 7007)]
        port: u16,
        /// Then allow fragmentation and find the largest datagram a UDP echo
        /// server at HOST:P still sends back.
        #[arg(long)]
        fragment: bool,
    },
    /// One datagram to a broadcast (or multicast) ADDR:PORT; every answer, with its source (seed 002 udp_broadcast).
    Broadcast {
        /// 10.0.2.255:7007 (a subnet's broadcast), 255.255.255.255:PORT, or a group 239.1.2.3:PORT.
        target: String,
        /// The text to send (default: hello).
        words: Vec<String>,
        /// How long to collect answers.
        #[arg(long, value_name = "SECS", default_value_t = 1.0)]
        wait: f64,
        /// Send from this local address (and, for a group, out of its interface).
        #[arg(long, value_name = "ADDR")]
        interface: Option<std::net::Ipv4Addr>,
    },
    /// Join a multicast GROUP:PORT and echo every datagram sent to it (see 'twirl broadcast').
    Multicast {
        /// A group and port: 239.1.2.3:7400.
        group: String,
        /// Join on this interface's address (default: the kernel's choice).
        #[arg(long, value_name = "ADDR")]
        interface: Option<std::net::Ipv4Addr>,
        /// Exit after N datagrams.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// ARP (RFC 826), seed 000's homework: decode a frame, or watch an interface.
    Arp {
        #[command(subcommand)]
        command: ArpCommand,
    },
    /// SO_REUSEADDR live: a server restarted at once, without it (EADDRINUSE) and with it.
    Reuseaddr,
    /// Write a self-signed certificate (DIR/cert.pem) and its key (DIR/key.pem)
    /// for localhost, 127.0.0.1 and ::1, for tls: endpoints.
    Cert {
        /// The directory (created if missing).
        dir: PathBuf,
        /// Another name (or IP address) the certificate is valid for; repeatable.
        #[arg(long, value_name = "NAME")]
        name: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ArpCommand {
    /// Every field of an Ethernet frame holding ARP: offset, width, value, meaning, in RFC 826 order.
    Decode {
        /// The frame in hex (spaces and colons between bytes allowed; several words are joined).
        #[arg(required = true)]
        hex: Vec<String>,
    },
    /// Print each ARP request and reply IFACE carries (raw AF_PACKET socket: root).
    Watch {
        /// The interface: eth0, veth0...
        iface: String,
        /// Exit after N frames.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit after SECS seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
    },
}

/// A failure, and whether it was the user's words (2) or the world (1).
enum Failure {
    Usage(String),
    Runtime(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        if e.usage { Failure::Usage(e.to_string()) } else { Failure::Runtime(e.to_string()) }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() == 1 {
        eprintln!("twirl: a subcommand is missing (one of {}; see 'twirl --help')", subcommand_names().join(", "));
        return ExitCode::from(2);
    }
    if let Some(text) = client_help(&argv[1..]) {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("usage error").trim_start_matches("error: ");
            eprintln!("twirl: {line} (see 'twirl --help')");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::List => list(),
        Command::Help { topic } => help(topic.as_deref()),
        Command::Serve {
            trace,
            stats,
            dashboard,
            idle_timeout,
            max_lifetime,
            max_conns,
            max_per_peer,
            memory_budget,
            reply_rate,
            threads,
            specs,
        } => {
            let limits = serve_limits(idle_timeout, max_lifetime, max_conns, max_per_peer);
            match (limits, config(memory_budget, reply_rate)) {
                (Ok(limits), Ok(config)) => {
                    let watching = Watching { trace, stats, dashboard: dashboard.as_deref() };
                    serve(watching, threads, config, limits, &specs)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        Command::Client { plugin, endpoint, args } => {
            // Clap swallows the `--` that marks data; the words as typed keep it.
            let typed = match &argv[1..] {
                [_, p, e, rest @ ..] if *p == plugin && *e == endpoint => rest.to_vec(),
                _ => args,
            };
            client(&plugin, &endpoint, &typed)
        }
        Command::Cat { listen, endpoint } => cat(&endpoint, listen),
        Command::Deadlock(opts) => deadlock(&opts),
        Command::Mtu { host, port, fragment } => mtu(&host, port, fragment),
        Command::Broadcast { target, words, wait, interface } => broadcast(&target, &words, wait, interface),
        Command::Multicast { group, interface, count } => multicast(&group, interface, count),
        Command::Arp { command: ArpCommand::Decode { hex } } => arp_decode(&hex.join(" ")),
        Command::Arp { command: ArpCommand::Watch { iface, count, timeout } } => arp_watch(&iface, count, timeout),
        Command::Reuseaddr => reuseaddr(),
        Command::Cert { dir, name, force } => cert(&dir, &name, force),
    };
    // The last log lines (a warning, `stopped`) are written before the exit.
    log_pipe::settle(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("twirl: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("twirl: {m}");
            ExitCode::from(1)
        }
    }
}

/// The subcommands' names, for the message when none is given.
fn subcommand_names() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect()
}

/// The names of every plugin, for a message about an unknown one.
fn plugin_names() -> String {
    PLUGINS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// `twirl client PLUGIN [...] --help` (or `-h`, before any `--`): that
/// plugin's client usage and flags, or `None` when not asked for.
fn client_help(args: &[String]) -> Option<String> {
    let [cmd, plugin, rest @ ..] = args else { return None };
    if cmd != "client" || !rest.iter().take_while(|w| *w != "--").any(|w| client_args::is_help(w)) {
        return None;
    }
    let p = registry::find(plugin)?;
    Some(client_args::help(p.name, p.summary, p.client_flags, p.raw.is_some()))
}

fn init_logging(default: &str) {
    let env = env_logger::Env::default().default_filter_or(default);
    let mut builder = env_logger::Builder::from_env(env);
    builder.format_timestamp_millis();
    // Never block the loop on stderr (a pipe nobody reads): a bounded queue.
    if let Ok(pipe) = log_pipe::LogPipe::spawn() {
        builder.target(env_logger::Target::Pipe(Box::new(pipe)));
    }
    builder.init();
}

/// Seconds from a flag: finite, at least 0 (or above 0 if `zero` is not
/// allowed), and small enough for a `Duration`.
fn seconds(flag: &str, value: f64, zero: bool) -> Result<Duration, Failure> {
    let bad = |why: &str| Failure::Usage(format!("{flag} '{value}': {why}"));
    if !value.is_finite() || value < 0.0 || (!zero && value == 0.0) {
        return Err(bad(if zero { "expected seconds, 0 or more" } else { "expected a number of seconds above 0" }));
    }
    // A century is more than any timeout needs, and far from overflowing.
    const MAX: f64 = 100.0 * 365.0 * 86_400.0;
    if value > MAX {
        return Err(bad("too large (at most 100 years)"));
    }
    Duration::try_from_secs_f64(value).map_err(|_| bad("out of range"))
}

/// The reactor's configuration from `twirl serve`'s flags.
fn config(memory_budget: Option<f64>, reply_rate: u32) -> Result<Config, Failure> {
    let mut config = Config::default();
    if let Some(mib) = memory_budget {
        if !(mib.is_finite() && (1.0..=1024.0 * 1024.0).contains(&mib)) {
            return Err(Failure::Usage(format!("--memory-budget '{mib}': expected MiB, from 1 to 1048576")));
        }
        config.memory_budget = (mib * 1024.0 * 1024.0) as usize;
    }
    config.udp_replies.per_second = reply_rate;
    // Never answer another twirl plugin's default UDP port (a loop
    // between two servers, on this host or another).
    for p in PLUGINS {
        for d in p.defaults {
            if let Ok(twirl::endpoint::ServerEndpoint::Udp(a)) = d.parse() {
                config.udp_replies.refused_ports.push(a.port());
            }
        }
    }
    Ok(config)
}

fn list() -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    for p in PLUGINS {
        writeln!(out, "{}", p.list_line()).map_err(|e| Failure::Runtime(format!("stdout: {e}")))?;
    }
    Ok(())
}

/// `twirl help [TOPIC]`: a plugin's description and options, a command's
/// help, or the command's overview.
fn help(topic: Option<&str>) -> Result<(), Failure> {
    use clap::CommandFactory;
    let text = match topic {
        Some(name) if registry::find(name).is_some() => registry::find(name).map(|p| p.help()).unwrap_or_default(),
        Some(name) => {
            let mut cmd = Cli::command();
            cmd.build();
            match cmd.find_subcommand_mut(name) {
                Some(sub) => sub.render_long_help().to_string(),
                None => {
                    let names: Vec<&str> = PLUGINS.iter().map(|p| p.name).collect();
                    return Err(Failure::Usage(format!(
                        "help: no plugin or command '{name}' (plugins: {})",
                        names.join(", ")
                    )));
                }
            }
        }
        None => Cli::command().render_long_help().to_string(),
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{text}").map_err(|e| Failure::Runtime(format!("stdout: {e}")))?;
    Ok(())
}

fn serve_limits(
    idle: f64,
    lifetime: f64,
    max_conns: usize,
    max_per_peer: Option<usize>,
) -> Result<serve::ServeLimits, Failure> {
    let idle = seconds("--idle-timeout", idle, true)?;
    let lifetime = seconds("--max-lifetime", lifetime, true)?;
    let cap = |n: usize| (n > 0).then_some(n);
    Ok(serve::ServeLimits {
        idle_timeout: (!idle.is_zero()).then_some(idle),
        max_lifetime: (!lifetime.is_zero()).then_some(lifetime),
        max_connections: cap(max_conns),
        max_per_peer: match max_per_peer {
            Some(0) => Some(usize::MAX),
            other => other,
        },
    })
}

/// What `twirl serve` shows of the reactor at work: `--trace`, `--stats`, `--dashboard`.
struct Watching<'a> {
    trace: bool,
    stats: Option<f64>,
    dashboard: Option<&'a str>,
}

/// The `--dashboard` endpoint: a stream endpoint to listen on.
fn dashboard_endpoint(word: &str) -> Result<twirl::endpoint::ServerEndpoint, Failure> {
    match word.parse() {
        Ok(twirl::endpoint::ServerEndpoint::Udp(_)) => {
            Err(Failure::Usage(format!("--dashboard '{word}': HTTP needs a stream endpoint (tcp:PORT)")))
        }
        Ok(e) => Ok(e),
        Err(e) => Err(Failure::Usage(format!("--dashboard '{word}': {e}"))),
    }
}

fn serve(
    watching: Watching<'_>,
    threads: usize,
    config: Config,
    limits: serve::ServeLimits,
    words: &[String],
) -> Result<(), Failure> {
    let Watching { trace, stats, dashboard } = watching;
    if trace && std::env::var_os("RUST_LOG").is_none() {
        init_logging("info,twirl=trace");
    } else {
        init_logging("info");
    }
    let specs = serve::parse_specs(words).map_err(Failure::Usage)?;
    let stats_every = stats.map(|s| seconds("--stats", s, false)).transpose()?;
    // Every TLS certificate and key is read before anything listens.
    for spec in &specs {
        serve::check_tls_files(spec)
            .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", spec.endpoint)))?;
    }
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let dashboard = dashboard.map(dashboard_endpoint).transpose()?;
    let raw = serve::raw_plugins(words);
    threads::serve(threads::Serve { threads, config, limits, stats_every, dashboard, specs, raw })
}

fn cert(dir: &std::path::Path, names: &[String], force: bool) -> Result<(), Failure> {
    let (cert, key) = cert::run(dir, names, force).map_err(Failure::Runtime)?;
    println!("{}", cert.display());
    println!("{}", key.display());
    Ok(())
}

fn cat(endpoint: &str, listen: bool) -> Result<(), Failure> {
    init_logging("warn");
    Ok(cat::run(endpoint, listen)?)
}

fn client(plugin: &str, endpoint: &str, args: &[String]) -> Result<(), Failure> {
    init_logging("warn");
    let p = registry::find(plugin)
        .ok_or_else(|| Failure::Usage(format!("unknown plugin '{plugin}' (known: {})", plugin_names())))?;
    client_args::check(p.name, p.client_flags, args).map_err(|e| Failure::Usage(e.to_string()))?;
    // A client without flags takes every word as data: the `--` that let a
    // word such as `-x` through has done its job. One with flags reads `--`
    // itself.
    let data;
    let args = if p.client_flags.is_empty() {
        data = client_args::data_words(args);
        &data[..]
    } else {
        args
    };
    if let Some(raw) = &p.raw {
        return Ok((raw.client)(endpoint, args)?);
    }
    let run = p.client.ok_or_else(|| Failure::Usage(format!("plugin '{plugin}' has no client")))?;
    let endpoint: ClientEndpoint = endpoint.parse().map_err(|e| Failure::Usage(format!("{e}")))?;
    run(&endpoint, args)
        .map_err(|e| if e.usage { Failure::Usage(e.to_string()) } else { Failure::Runtime(e.to_string()) })
}

fn deadlock(opts: &twirl_lab::Options) -> Result<(), Failure> {
    init_logging("warn");
    let mut opts = opts.clone();
    let mut served = None;
    if let Some(word) = &opts.dashboard {
        let at = dashboard_endpoint(word)?;
        opts.live = twirl_lab::Feed::new();
        let s = twirl_lab::dashboard::serve(&at, opts.live.clone())
            .map_err(|e| Failure::Runtime(format!("cannot serve the dashboard on {at}: {e}")))?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "dashboard on {}", twirl_protocols::dashboard::url(&s.endpoint));
        let _ = out.flush();
        served = Some(s);
    }
    let mut out = std::io::stdout().lock();
    twirl_lab::run_and_print(&opts, &mut out).map_err(|e| Failure::Runtime(format!("deadlock lab: {e}")))?;
    if let Some(s) = served {
        let _ =
            writeln!(out, "\nthe dashboard stays on {}: Ctrl-C to stop", twirl_protocols::dashboard::url(&s.endpoint));
        let _ = out.flush();
        drop(out);
        match s.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::Runtime(format!("dashboard: {e}"))),
            Err(_) => return Err(Failure::Runtime("dashboard: its thread panicked".into())),
        }
    }
    Ok(())
}

fn mtu(host: &str, port: u16, fragment: bool) -> Result<(), Failure> {
    let found = mtu::measure(host, port, fragment).map_err(|e| Failure::Runtime(format!("mtu {host}: {e}")))?;
    let mut out = std::io::stdout().lock();
    for line in found.lines(host) {
        writeln!(out, "{line}").map_err(|e| Failure::Runtime(format!("stdout: {e}")))?;
    }
    if let Some(note) = found.note() {
        eprintln!("{note}");
    }
    Ok(())
}

fn broadcast(target: &str, words: &[String], wait: f64, interface: Option<std::net::Ipv4Addr>) -> Result<(), Failure> {
    let to = broadcast::parse_target(target).map_err(Failure::Usage)?;
    let wait = seconds("--wait", wait, false)?;
    let text = if words.is_empty() { "hello".to_string() } else { words.join(" ") };
    let mut out = std::io::stdout().lock();
    broadcast::send(to, text.as_bytes(), wait, interface, &mut out)
        .map_err(|e| Failure::Runtime(format!("broadcast to {to}: {e}")))?;
    Ok(())
}

fn multicast(group: &str, interface: Option<std::net::Ipv4Addr>, count: Option<u64>) -> Result<(), Failure> {
    let group = broadcast::parse_target(group).map_err(Failure::Usage)?;
    let mut out = std::io::stdout().lock();
    broadcast::serve(group, interface, count, &mut out).map_err(|e| Failure::Runtime(format!("multicast {group}: {e}")))
}

fn arp_decode(hex: &str) -> Result<(), Failure> {
    let frame = arp::packet::parse_hex(hex).map_err(|e| Failure::Usage(format!("arp decode: {e}")))?;
    let fields = arp::packet::decode(&frame).map_err(|e| Failure::Usage(format!("arp decode: {e}")))?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", arp::packet::table(&fields, &[])).map_err(|e| Failure::Runtime(format!("stdout: {e}")))?;
    Ok(())
}

fn arp_watch(iface: &str, count: Option<u64>, timeout: Option<f64>) -> Result<(), Failure> {
    let timeout = timeout.map(|t| seconds("--timeout", t, false)).transpose()?;
    let mut out = std::io::stdout().lock();
    arp::watch::run(iface, count, timeout, &mut out).map_err(|e| Failure::Runtime(format!("arp watch {iface}: {e}")))
}

fn reuseaddr() -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    reuseaddr::run(&mut out).map_err(|e| Failure::Runtime(format!("reuseaddr: {e}")))
}
