//! Restarting `twirl serve` without closing its ports (SIGUSR2).
//!
//! The running copy starts a new copy of itself, with the same command
//! line, and hands it its listening sockets: their descriptors stay open
//! across `exec`, and `TWIRL_INHERIT=SPEC=FD,...` tells the new copy which
//! spec each one serves, in place of binding. Then the old copy stops
//! accepting, lets the connections it has end by themselves (for at most
//! the shutdown grace, then stops gracefully), and exits 0. The listening sockets never close (the new copy holds
//! them), so a client that connects meanwhile waits in the backlog instead
//! of being refused, and is accepted by the new copy.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use twirl::endpoint::ServerEndpoint;
use twirl::inherit::Inherited;
use twirl::{ListenerId, Reactor};
use twirl_protocols::serve::Spec;

/// The variable that hands sockets to the new copy: `SPEC=FD` pairs, the
/// spec counted from 0 in command-line order.
pub const INHERIT_VAR: &str = "TWIRL_INHERIT";

/// Serves each spec named in [`INHERIT_VAR`] on the socket handed down
/// instead of binding its endpoint. A malformed variable is an error (it
/// is set only by a restart).
pub fn adopt_handed_down(specs: &mut [Spec]) -> Result<usize, String> {
    let Some(value) = std::env::var_os(INHERIT_VAR) else { return Ok(0) };
    let value = value.to_string_lossy().into_owned();
    let mut adopted = 0;
    for pair in value.split(',').filter(|p| !p.is_empty()) {
        let parsed = pair.split_once('=').and_then(|(i, fd)| Some((i.parse::<usize>().ok()?, fd.parse().ok()?)));
        let Some((index, fd)) = parsed else {
            return Err(format!("{INHERIT_VAR}: '{pair}' is not SPEC=FD"));
        };
        let spec = specs.get_mut(index).ok_or_else(|| format!("{INHERIT_VAR}: there is no spec {index}"))?;
        spec.endpoint = ServerEndpoint::Inherited(Inherited::Fd(fd));
        adopted += 1;
    }
    Ok(adopted)
}

/// Starts the new copy with `ports` (spec index, listener) handed down,
/// then lets them go here and stops gracefully. If the new copy cannot be
/// started, this copy goes on serving.
pub fn restart(r: &mut Reactor, ports: &[(usize, ListenerId)]) {
    let mut pairs = Vec::new();
    for &(index, id) in ports {
        match r.pass_on(id) {
            Some(Ok(fd)) => pairs.push(format!("{index}={fd}")),
            Some(Err(e)) => return log::error!("restart: cannot hand down spec {index}: {e}; still serving"),
            None => {}
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return log::error!("restart: cannot find this program: {e}; still serving"),
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let child = std::process::Command::new(exe).args(args).env(INHERIT_VAR, pairs.join(",")).spawn();
    match child {
        Ok(child) => {
            log::info!(
                "restart: pid {} serves now ({} socket(s) handed down); finishing open connections",
                child.id(),
                pairs.len()
            );
            for &(_, id) in ports {
                r.stop_listening(id);
            }
            // Let the open connections end by themselves (a graceful stop
            // would close an idle one, and a client whose request is on
            // its way would see the door shut), then stop.
            let deadline = Instant::now() + r.config().shutdown_grace;
            r.call_every(Duration::from_millis(20), move |r| {
                if r.connection_count() == 0 || Instant::now() >= deadline {
                    r.stop();
                }
            });
        }
        Err(e) => log::error!("restart: cannot start a new copy: {e}; still serving"),
    }
}
