//! Restarting `twirl serve` without closing its ports (SIGUSR2).
//!
//! The running copy starts a new copy of itself, with the same command
//! line, and hands it its listening sockets: their descriptors stay open
//! across `exec`, and `TWIRL_INHERIT=SPEC=FD,...` tells the new copy which
//! spec each one serves, in place of binding (with `--threads`, a spec has
//! one socket per thread, and the new copy serves them all). Then every
//! thread of the old copy stops accepting, lets the connections it has end
//! by themselves (for at most the shutdown grace, then stops gracefully),
//! and the old copy exits 0. The listening sockets never close (the new
//! copy holds them), so a client that connects meanwhile waits in a
//! backlog instead of being refused, and is accepted by the new copy.

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use twirl::endpoint::{ServerEndpoint, TlsServerEndpoint};
use twirl::group::Group;
use twirl::inherit::Inherited;
use twirl::{ListenerId, Reactor};
use twirl_protocols::serve::Spec;

/// The variable that hands sockets to the new copy: `SPEC=FD` pairs, the
/// spec counted from 0 in command-line order; a spec may have several.
pub const INHERIT_VAR: &str = "TWIRL_INHERIT";

/// How long the restarting thread waits for the others to ready their sockets.
const GATHER: Duration = Duration::from_secs(2);

/// The sockets handed down by a restart, per spec (empty: none), as the
/// endpoints that serve them: a TLS spec's socket stays under TLS.
pub fn handed_down(specs: &[Spec]) -> Result<Vec<Vec<ServerEndpoint>>, String> {
    let mut each = vec![Vec::new(); specs.len()];
    let Some(value) = std::env::var_os(INHERIT_VAR) else { return Ok(each) };
    let value = value.to_string_lossy().into_owned();
    for pair in value.split(',').filter(|p| !p.is_empty()) {
        let parsed = pair.split_once('=').and_then(|(i, fd)| Some((i.parse::<usize>().ok()?, fd.parse().ok()?)));
        let Some((index, fd)) = parsed else {
            return Err(format!("{INHERIT_VAR}: '{pair}' is not SPEC=FD"));
        };
        let sockets = each.get_mut(index).ok_or_else(|| format!("{INHERIT_VAR}: there is no spec {index}"))?;
        sockets.push(serving(&specs[index].endpoint, Inherited::Fd(fd)));
    }
    Ok(each)
}

/// The endpoint that serves `socket` for a spec listening on `endpoint`:
/// the socket itself, or, for TLS, the same TLS settings on that socket.
pub fn serving(endpoint: &ServerEndpoint, socket: Inherited) -> ServerEndpoint {
    match endpoint {
        ServerEndpoint::Tls(t) => ServerEndpoint::Tls(TlsServerEndpoint { socket: Some(socket), ..t.clone() }),
        _ => ServerEndpoint::Inherited(socket),
    }
}

/// What each thread of a `twirl serve` knows for a restart.
pub struct Restart {
    /// This thread's listeners: (spec index, id).
    pub ports: Vec<(usize, ListenerId)>,
    /// The reactors serving together (this one alone: a group of one).
    pub group: Group,
    /// Set once a restart began: the threads drain instead of stopping.
    pub began: Arc<AtomicBool>,
}

impl Restart {
    /// On SIGUSR2, on the thread that handles signals: gathers every
    /// thread's sockets, starts the new copy with them, then has every
    /// thread let go. If the new copy cannot be started, all go on serving.
    pub fn run(&self, r: &mut Reactor) {
        if self.began.swap(true, Ordering::AcqRel) {
            return log::info!("restart: already under way");
        }
        let (tx, rx) = mpsc::channel();
        let mut pairs = hand_down(r, &self.ports);
        for (i, h) in self.group.handles().iter().enumerate() {
            if i != self.group.index() {
                let tx = tx.clone();
                h.call_from_thread(move |r| {
                    let _ = tx.send(PORTS.with(|p| hand_down(r, &p.borrow())));
                });
            }
        }
        drop(tx);
        let deadline = Instant::now() + GATHER;
        for _ in 1..self.group.len() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(more) => pairs.extend(more),
                Err(_) => {
                    self.began.store(false, Ordering::Release);
                    return log::error!("restart: a thread did not answer in {GATHER:?}; still serving");
                }
            }
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                self.began.store(false, Ordering::Release);
                return log::error!("restart: cannot find this program: {e}; still serving");
            }
        };
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        match std::process::Command::new(exe).args(args).env(INHERIT_VAR, pairs.join(",")).spawn() {
            Ok(child) => {
                log::info!(
                    "restart: pid {} serves now ({} socket(s) handed down); finishing open connections",
                    child.id(),
                    pairs.len()
                );
                self.group.post_to_others(|r| PORTS.with(|p| let_go(r, &p.borrow())));
                let_go(r, &self.ports);
            }
            Err(e) => {
                self.began.store(false, Ordering::Release);
                log::error!("restart: cannot start a new copy: {e}; still serving");
            }
        }
    }

    /// Files this thread's listeners where a restart run from another
    /// thread finds them.
    pub fn file_ports(&self) {
        PORTS.with(|p| *p.borrow_mut() = self.ports.clone());
    }
}

thread_local! {
    /// This thread's listeners, for a restart run from another thread.
    static PORTS: std::cell::RefCell<Vec<(usize, ListenerId)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Readies this reactor's listeners to be inherited: `SPEC=FD` pairs.
fn hand_down(r: &mut Reactor, ports: &[(usize, ListenerId)]) -> Vec<String> {
    let mut pairs = Vec::new();
    for &(index, id) in ports {
        match r.pass_on(id) {
            Some(Ok(fd)) => pairs.push(format!("{index}={fd}")),
            Some(Err(e)) => log::error!("restart: cannot hand down spec {index}: {e}"),
            None => {}
        }
    }
    pairs
}

/// Stops accepting, lets the open connections end by themselves (a
/// graceful stop would close an idle one, and a client whose request is on
/// its way would see the door shut), then stops.
fn let_go(r: &mut Reactor, ports: &[(usize, ListenerId)]) {
    for &(_, id) in ports {
        r.stop_listening(id);
    }
    let deadline = Instant::now() + r.config().shutdown_grace;
    r.call_every(Duration::from_millis(20), move |r| {
        if r.connection_count() == 0 || Instant::now() >= deadline {
            r.stop();
        }
    });
}

/// Serves the specs handed down in place of their endpoints (the first
/// socket of each; the threads take the others: see `threads`).
pub fn adopt_first(specs: &mut [Spec], handed: &[Vec<ServerEndpoint>]) {
    for (spec, sockets) in specs.iter_mut().zip(handed) {
        if let Some(first) = sockets.first() {
            spec.endpoint = first.clone();
        }
    }
}
