//! The `twirl` command: list, serve and drive the plugins.
//!
//! ```text
//! twirl list
//! twirl help PLUGIN
//! twirl serve [--trace] [--stats SECS] [--dashboard ENDPOINT] [PLUGIN[@ENDPOINT] [KEY=VALUE]...]...
//! twirl client PLUGIN ENDPOINT [ARG]...
//! twirl deadlock [--bytes N] [--cap N] [--svg FILE] [--dashboard ENDPOINT]
//! ```
//!
//! Exit status: 0 on success (and after SIGINT/SIGTERM), 2 for a usage
//! error, 1 for a runtime failure; each with a one-line message on stderr.
//!
//! The plugins come from `twirl-protocols` (its registry), the deadlock lab
//! from `twirl-lab`; this crate is the command line around them.

mod cat;
mod log_pipe;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use twirl::endpoint::ClientEndpoint;
use twirl::{Config, Reactor};
use twirl_protocols::dashboard::Dashboard;
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
        /// PLUGIN or PLUGIN@ENDPOINT (tcp:PORT[:interface=ADDR], udp:PORT[:interface=ADDR], unix:PATH),
        /// each followed by its plugin's options as KEY=VALUE words (see 'twirl help PLUGIN').
        specs: Vec<String>,
    },
    /// A netcat for the reactor: stdin to the socket, the socket to stdout.
    Cat {
        /// Wait for one peer on a server endpoint (tcp:PORT, unix:PATH) instead of connecting.
        #[arg(long)]
        listen: bool,
        /// tcp:HOST:PORT, udp:HOST:PORT or unix:PATH (with --listen: tcp:PORT or unix:PATH).
        endpoint: String,
    },
    /// Run a plugin's client against a server.
    Client {
        /// The plugin.
        plugin: String,
        /// tcp:HOST:PORT, udp:HOST:PORT or unix:PATH.
        endpoint: String,
        /// The plugin client's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The deadlock lab: a blocking client and server freeze; twirl does not (seed 002).
    Deadlock(twirl_lab::Options),
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
            specs,
        } => {
            let limits = serve_limits(idle_timeout, max_lifetime, max_conns, max_per_peer);
            match (limits, config(memory_budget, reply_rate)) {
                (Ok(limits), Ok(config)) => {
                    serve(Watching { trace, stats, dashboard: dashboard.as_deref() }, config, &limits, &specs)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        Command::Client { plugin, endpoint, args } => client(&plugin, &endpoint, &args),
        Command::Cat { listen, endpoint } => cat(&endpoint, listen),
        Command::Deadlock(opts) => deadlock(&opts),
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

fn serve(watching: Watching<'_>, config: Config, limits: &serve::ServeLimits, words: &[String]) -> Result<(), Failure> {
    let Watching { trace, stats, dashboard } = watching;
    if trace && std::env::var_os("RUST_LOG").is_none() {
        init_logging("info,twirl=trace");
    } else {
        init_logging("info");
    }
    let specs = serve::parse_specs(words).map_err(Failure::Usage)?;
    let stats_every = stats.map(|s| seconds("--stats", s, false)).transpose()?;
    let dashboard_at = dashboard.map(dashboard_endpoint).transpose()?;
    let mut board = dashboard_at.as_ref().map(|_| Dashboard::new());
    let mut reactor =
        Reactor::with_config(config).map_err(|e| Failure::Runtime(format!("cannot start the reactor: {e}")))?;
    let mut out = std::io::stdout().lock();
    for spec in &specs {
        let bound = match &mut board {
            Some(board) => {
                let name = spec.plugin.name;
                let bound = serve::bind_via(&mut reactor, spec, limits, &mut |f| board.watch(name, f));
                if let Ok(at) = &bound
                    && !matches!(at, twirl::endpoint::ServerEndpoint::Udp(_))
                {
                    board.bound(at);
                }
                bound
            }
            None => serve::bind_with(&mut reactor, spec, limits),
        }
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", spec.endpoint)))?;
        let _ = writeln!(out, "listening {} on {bound}", spec.plugin.name);
        let _ = out.flush();
    }
    for plugin in serve::raw_plugins(words) {
        let raw = plugin.raw.as_ref().ok_or_else(|| Failure::Usage(format!("plugin '{}' is not raw", plugin.name)))?;
        let watching =
            (raw.serve)(&mut reactor).map_err(|e| Failure::Runtime(format!("cannot start {}: {e}", plugin.name)))?;
        for w in watching {
            let _ = writeln!(out, "listening {} on {w}", plugin.name);
        }
        let _ = out.flush();
    }
    if let (Some(board), Some(at)) = (board, &dashboard_at) {
        let bound = board
            .start(&mut reactor, at)
            .map_err(|e| Failure::Runtime(format!("cannot serve the dashboard on {at}: {e}")))?;
        let _ = writeln!(out, "dashboard on {}", twirl_protocols::dashboard::url(&bound));
        let _ = out.flush();
    }
    drop(out);
    reactor
        .handle_signals(&[signal_hook::consts::SIGUSR1], |_, r| log::info!("stats {}", r.stats()))
        .map_err(|e| Failure::Runtime(format!("cannot handle signals: {e}")))?;
    if let Some(every) = stats_every {
        reactor.call_every(every, |r| log::info!("stats {}", r.stats()));
    }
    reactor.run().map_err(|e| Failure::Runtime(format!("reactor failed: {e}")))?;
    log::info!("stopped");
    Ok(())
}

fn cat(endpoint: &str, listen: bool) -> Result<(), Failure> {
    init_logging("warn");
    Ok(cat::run(endpoint, listen)?)
}

fn client(plugin: &str, endpoint: &str, args: &[String]) -> Result<(), Failure> {
    init_logging("warn");
    let p = registry::find(plugin).ok_or_else(|| Failure::Usage(format!("unknown plugin '{plugin}'")))?;
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
