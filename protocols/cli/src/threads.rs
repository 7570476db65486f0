//! `twirl serve [--threads N]`: one reactor per thread, sharing nothing on
//! the hot path.
//!
//! Thread 0 (this one) binds every spec first, so that `tcp:0` becomes a
//! real port; then each other thread binds the same addresses with
//! `SO_REUSEPORT` (TCP and UDP: the kernel spreads connections and
//! datagrams across the threads' sockets by a hash of the addresses), or
//! serves a duplicate of thread 0's socket (Unix and inherited sockets:
//! one socket whose connections go to whichever thread accepts first).
//! The reactors form a [`Group`], through which plugins that share state
//! (chat) post to each other. Every reactor handles SIGINT/SIGTERM itself,
//! so all stop gracefully at once; SIGUSR1 logs the stats of each thread
//! and their total; SIGUSR2 restarts (see [`crate::restart`]).

use std::io::Write;
use std::os::fd::IntoRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use twirl::endpoint::{ServerEndpoint, TlsServerEndpoint};
use twirl::group::Group;
use twirl::inherit::Inherited;
use twirl::{Config, ListenerId, Reactor, ReactorHandle, Stats};
use twirl_protocols::dashboard::Dashboard;
use twirl_protocols::plugin::Plugin;
use twirl_protocols::serve::{self, ServeLimits, Spec};

use crate::Failure;
use crate::restart::{self, Restart};

/// How long thread 0 waits for another thread to start or to bind.
const START: Duration = Duration::from_secs(10);

/// What `twirl serve` was asked.
pub struct Serve {
    pub threads: usize,
    pub config: Config,
    pub limits: ServeLimits,
    pub stats_every: Option<Duration>,
    /// `--dashboard`: where to serve the live page (thread 0's listeners).
    pub dashboard: Option<ServerEndpoint>,
    pub specs: Vec<Spec>,
    pub raw: Vec<&'static Plugin>,
}

/// The latest stats of each thread, for the total.
type Slots = Arc<Mutex<Vec<Stats>>>;

/// What another thread is given to serve, once every reactor exists.
struct Work {
    group: Group,
    /// (spec index, the spec with the endpoint this thread serves).
    specs: Vec<(usize, Spec)>,
    limits: ServeLimits,
    began: Arc<AtomicBool>,
    slots: Slots,
    stats_every: Option<Duration>,
    bound: mpsc::Sender<Result<(), String>>,
}

pub fn serve(mut s: Serve) -> Result<(), Failure> {
    let n = s.threads.max(1);
    let handed = restart::handed_down(&s.specs).map_err(Failure::Runtime)?;
    restart::adopt_first(&mut s.specs, &handed);
    let config = Config { reuse_port: n > 1, ..s.config.clone() };
    let runtime = |what: &str, e: std::io::Error| Failure::Runtime(format!("{what}: {e}"));
    let mut reactor = Reactor::with_config(config.clone()).map_err(|e| runtime("cannot start the reactor", e))?;

    // The other reactors, each on its thread, waiting for their work.
    let (hello_tx, hello_rx) = mpsc::channel::<(usize, Result<ReactorHandle, String>)>();
    let mut work = Vec::new();
    let mut joins = Vec::new();
    for t in 1..n {
        let (work_tx, work_rx) = mpsc::channel::<Work>();
        let (hello, config) = (hello_tx.clone(), config.clone());
        let spawned =
            std::thread::Builder::new().name(format!("twirl-{t}")).spawn(move || run_other(t, config, hello, work_rx));
        joins.push(spawned.map_err(|e| runtime("cannot start a thread", e))?);
        work.push(work_tx);
    }
    drop(hello_tx);
    let mut handles = vec![reactor.handle()];
    let mut hellos: Vec<(usize, ReactorHandle)> = Vec::new();
    for _ in 1..n {
        match hello_rx.recv_timeout(START) {
            Ok((t, Ok(h))) => hellos.push((t, h)),
            Ok((t, Err(e))) => return Err(Failure::Runtime(format!("thread {t}: cannot start its reactor: {e}"))),
            Err(_) => return Err(Failure::Runtime("a thread did not start".into())),
        }
    }
    hellos.sort_by_key(|(t, _)| *t);
    handles.extend(hellos.into_iter().map(|(_, h)| h));
    let mut members = Group::of(handles);
    let me = members.remove(0);
    me.clone().enter();

    // Thread 0 binds first (its listeners watched by the dashboard, if any).
    let slots: Slots = Arc::new(Mutex::new(vec![Stats::default(); n]));
    let mut board = s.dashboard.as_ref().map(|_| Dashboard::new());
    if let (Some(board), true) = (&mut board, n > 1) {
        let slots = slots.clone();
        board.per_thread(move |own| match slots.lock() {
            Ok(mut all) => {
                all[0] = own.clone();
                all.clone()
            }
            Err(_) => vec![own.clone()],
        });
    }
    let mut ports = Vec::new();
    let mut bound_at = Vec::new();
    for (index, spec) in s.specs.iter().enumerate() {
        let bound = match &mut board {
            Some(board) => {
                let name = spec.plugin.name;
                let bound = serve::bind_via(&mut reactor, spec, &s.limits, &mut |f| board.watch(name, f));
                if let Ok(at) = &bound
                    && !matches!(at.addr, ServerEndpoint::Udp(_))
                {
                    board.bound(&at.addr);
                }
                bound
            }
            None => serve::bind_with(&mut reactor, spec, &s.limits),
        }
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", spec.endpoint)))?;
        ports.push((index, bound.id));
        bound_at.push(bound);
    }

    // Then the others, on the addresses thread 0 bound.
    let began = Arc::new(AtomicBool::new(false));
    let (bound_tx, bound_rx) = mpsc::channel();
    for (t, (member, tx)) in members.into_iter().zip(&work).enumerate().map(|(i, w)| (i + 1, w)) {
        let mut specs = Vec::new();
        for (index, spec) in s.specs.iter().enumerate() {
            for endpoint in
                endpoints_for(t, n, spec, &bound_at[index].addr, ports[index].1, &handed[index], &mut reactor)
                    .map_err(|e| Failure::Runtime(format!("cannot share {} with thread {t}: {e}", spec.endpoint)))?
            {
                specs.push((index, Spec { plugin: spec.plugin, endpoint, options: spec.options.clone() }));
            }
        }
        let w = Work {
            group: member,
            specs,
            limits: s.limits.clone(),
            began: began.clone(),
            slots: slots.clone(),
            stats_every: s.stats_every,
            bound: bound_tx.clone(),
        };
        tx.send(w).map_err(|_| Failure::Runtime(format!("thread {t} went away")))?;
    }
    // Thread 0 serves the sockets handed down past the first n too.
    for (index, spec) in s.specs.iter().enumerate() {
        for endpoint in handed[index].iter().skip(n).step_by(n) {
            let extra = Spec { plugin: spec.plugin, endpoint: endpoint.clone(), options: spec.options.clone() };
            let bound = serve::bind_with(&mut reactor, &extra, &s.limits)
                .map_err(|e| Failure::Runtime(format!("cannot listen on {endpoint}: {e}")))?;
            ports.push((index, bound.id));
        }
    }
    drop(bound_tx);
    let stop_all = |handles: &[ReactorHandle]| handles.iter().for_each(ReactorHandle::stop);
    for _ in 1..n {
        let failed = match bound_rx.recv_timeout(START) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("a thread did not bind in time".to_string()),
        };
        if let Some(e) = failed {
            stop_all(me.handles());
            return Err(Failure::Runtime(e));
        }
    }

    let mut out = std::io::stdout().lock();
    for (spec, bound) in s.specs.iter().zip(&bound_at) {
        let _ = writeln!(out, "listening {} on {}", spec.plugin.name, bound.addr);
    }
    for plugin in &s.raw {
        let raw = plugin.raw.as_ref().ok_or_else(|| Failure::Usage(format!("plugin '{}' is not raw", plugin.name)))?;
        let watching =
            (raw.serve)(&mut reactor).map_err(|e| Failure::Runtime(format!("cannot start {}: {e}", plugin.name)))?;
        for w in watching {
            let _ = writeln!(out, "listening {} on {w}", plugin.name);
        }
    }
    if let (Some(board), Some(at)) = (board, &s.dashboard) {
        let bound = board
            .start(&mut reactor, at)
            .map_err(|e| Failure::Runtime(format!("cannot serve the dashboard on {at}: {e}")))?;
        let _ = writeln!(out, "dashboard on {}", twirl_protocols::dashboard::url(&bound));
    }
    if n > 1 {
        let _ = writeln!(out, "serving on {n} threads");
    }
    let _ = out.flush();
    drop(out);

    let restart = Restart { ports, group: me.clone(), began: began.clone() };
    restart.file_ports();
    let (group, usr1_slots) = (me.clone(), slots.clone());
    use signal_hook::consts::{SIGUSR1, SIGUSR2};
    reactor
        .handle_signals(&[SIGUSR1, SIGUSR2], move |signal, r| match signal {
            SIGUSR2 => restart.run(r),
            _ => log_stats(r, &group, &usr1_slots),
        })
        .map_err(|e| runtime("cannot handle signals", e))?;
    if let Some(every) = s.stats_every {
        let (group, slots) = (me.clone(), slots.clone());
        reactor.call_every(every, move |r| log_stats(r, &group, &slots));
    }
    let result = reactor.run();
    // A restart lets each thread drain on its own; otherwise all stop now.
    if !began.load(std::sync::atomic::Ordering::Acquire) {
        stop_all(me.handles());
    }
    for j in joins {
        let _ = j.join();
    }
    result.map_err(|e| runtime("reactor failed", e))?;
    log::info!("stopped");
    Ok(())
}

/// The endpoints thread `t` of `n` serves for one spec: the address thread
/// 0 bound (TCP and UDP, with `SO_REUSEPORT`), else the socket handed down
/// for it, else a duplicate of thread 0's socket; plus its share of the
/// sockets handed down past the first `n`.
fn endpoints_for(
    t: usize,
    n: usize,
    spec: &Spec,
    bound: &ServerEndpoint,
    id: ListenerId,
    handed: &[ServerEndpoint],
    reactor: &mut Reactor,
) -> std::io::Result<Vec<ServerEndpoint>> {
    let mut mine: Vec<ServerEndpoint> = handed.iter().skip(t).step_by(n).cloned().collect();
    if !mine.is_empty() {
        return Ok(mine);
    }
    let shared = match (&spec.endpoint, bound) {
        (ServerEndpoint::Tcp(_), ServerEndpoint::Tcp(a)) => ServerEndpoint::Tcp(*a),
        (ServerEndpoint::Udp(_), ServerEndpoint::Udp(a)) => ServerEndpoint::Udp(*a),
        (ServerEndpoint::Tls(t), ServerEndpoint::Tls(b)) if t.socket.is_none() => {
            ServerEndpoint::Tls(TlsServerEndpoint { socket: None, ..b.clone() })
        }
        _ => {
            let dup = reactor.duplicate(id).ok_or_else(|| std::io::Error::other("not a listener"))??;
            restart::serving(&spec.endpoint, Inherited::Fd(dup.into_raw_fd()))
        }
    };
    mine.push(shared);
    Ok(mine)
}

/// Thread `t`: makes its reactor, says hello, waits for its work, binds, serves.
fn run_other(
    t: usize,
    config: Config,
    hello: mpsc::Sender<(usize, Result<ReactorHandle, String>)>,
    work: mpsc::Receiver<Work>,
) {
    let mut reactor = match Reactor::with_config(config) {
        Ok(r) => r,
        Err(e) => {
            let _ = hello.send((t, Err(e.to_string())));
            return;
        }
    };
    let _ = hello.send((t, Ok(reactor.handle())));
    drop(hello);
    // Thread 0 gives up on us after START; waiting longer is pointless.
    let Ok(w) = work.recv_timeout(START * 2) else { return };
    w.group.clone().enter();
    let mut ports = Vec::new();
    for (index, spec) in &w.specs {
        match serve::bind_with(&mut reactor, spec, &w.limits) {
            Ok(bound) => ports.push((*index, bound.id)),
            Err(e) => {
                let _ = w.bound.send(Err(format!("thread {t}: cannot listen on {}: {e}", spec.endpoint)));
                return;
            }
        }
    }
    if let Err(e) = reactor.handle_signals(&[], |_, _| {}) {
        let _ = w.bound.send(Err(format!("thread {t}: cannot handle signals: {e}")));
        return;
    }
    let restart = Restart { ports, group: w.group.clone(), began: w.began };
    restart.file_ports();
    // Filed for thread 0's stats lines (`--stats`, SIGUSR1), at most a second old.
    let every = w.stats_every.map_or(Duration::from_secs(1), |e| e.min(Duration::from_secs(1)));
    let slots = w.slots.clone();
    reactor.call_every(every, move |r| {
        if let Ok(mut s) = slots.lock() {
            s[t] = r.stats();
        }
    });
    let _ = w.bound.send(Ok(()));
    if let Err(e) = reactor.run() {
        log::error!("thread {t}: reactor failed: {e}");
    }
}

/// Logs the stats: one line alone; with threads, this thread's, each
/// other's (as they last filed them) and the total.
fn log_stats(r: &mut Reactor, group: &Group, slots: &Slots) {
    let mine = r.stats();
    if group.len() <= 1 {
        return log::info!("stats {mine}");
    }
    let Ok(mut all) = slots.lock() else { return };
    all[0] = mine;
    let mut total = Stats::default();
    for (t, s) in all.iter().enumerate() {
        log::info!("stats thread {t}: {s}");
        total += s;
    }
    log::info!("stats total ({} threads): {total}", all.len());
}
