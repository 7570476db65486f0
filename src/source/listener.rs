//! Accepting connections: a bounded number per turn, the listener's caps,
//! and a back-off instead of a busy loop when the process runs out of file
//! descriptors.
//!
//! Under `EMFILE` an edge-triggered listener goes silent with connections
//! still queued: no new event will come for them. So accepting is retried on
//! a timer, 10 ms at first and doubling up to 1 s, with one warning per
//! back-off rather than one per attempt. The back-off ends at the first
//! accept that does not fail for want of descriptors: a connection, or an
//! empty queue (`WouldBlock`), after which events are heeded again.
//!
//! Over `max_connections`, or `max_per_peer` for one address, a new
//! connection is closed at once (never left hanging in the backlog) and counted.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::core::{Core, CoreCx, Fate, Host, Readiness, Source, TimerKind};
use crate::guard::guarded;
use crate::policy::{ListenOptions, Policy};
use crate::protocol::Factory;
use crate::source::conn::Conn;
use crate::source::socket::Listener;

pub(crate) struct ListenerSource {
    sock: Listener,
    factory: Box<dyn Factory>,
    policy: Rc<Policy>,
    /// The current back-off delay while descriptors are exhausted.
    backoff: Option<Duration>,
    /// Refusals not yet reported, and when the last report was: refusals
    /// are logged at info, at most once a second.
    unreported: u64,
    reported_at: Option<Instant>,
    /// Asked to stop listening: close at the settle.
    closing: bool,
}

/// Refusals are logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

impl ListenerSource {
    /// Registers a bound listener in the loop.
    pub(crate) fn add(
        core: &mut Core,
        mut sock: Listener,
        factory: Box<dyn Factory>,
        opts: &ListenOptions,
    ) -> io::Result<u64> {
        let token = core.reserve();
        if let Err(e) = sock.register(&core.registry, mio::Token(token as usize)) {
            core.remove(token);
            return Err(e);
        }
        let policy = Rc::new(Policy::listener(opts));
        let listener =
            ListenerSource { sock, factory, policy, backoff: None, unreported: 0, reported_at: None, closing: false };
        core.put_back(token, Box::new(listener));
        Ok(token)
    }

    /// Accepts what is queued, up to the per-turn budget.
    fn accept(&mut self, core: &mut Core, token: u64) -> Fate {
        let name = &self.policy.name;
        for _ in 0..core.config.accept_budget {
            match self.sock.accept() {
                Ok((mut stream, peer)) => {
                    if self.backoff.take().is_some() {
                        log::info!("{name}: accepting again");
                    }
                    if let Err(why) = self.policy.admit(&peer) {
                        core.stats.refused += 1;
                        self.unreported += 1;
                        if self.reported_at.is_none_or(|at| core.now.saturating_duration_since(at) >= REPORT_EVERY) {
                            let more = self.unreported - 1;
                            let more = if more > 0 {
                                format!(" ({more} more refused since the last report)")
                            } else {
                                String::new()
                            };
                            log::info!("{name}: refused {peer}: {why}{more}");
                            self.unreported = 0;
                            self.reported_at = Some(core.now);
                        }
                        continue; // dropping the stream closes it at once
                    }
                    let protocol = match guarded(|| self.factory.build_protocol(&peer)) {
                        Ok(p) => p,
                        Err(e) => {
                            core.stats.panics += 1;
                            log::error!("{name}: building a protocol for {peer}: {e}");
                            self.policy.release(&peer);
                            continue;
                        }
                    };
                    let conn = core.reserve();
                    if let Err(e) = stream.register(&core.registry, mio::Token(conn as usize)) {
                        log::warn!("{name}: could not register a connection from {peer}: {e}");
                        core.remove(conn);
                        self.policy.release(&peer);
                        continue;
                    }
                    core.stats.accepted += 1;
                    Conn::start(core, conn, protocol, (stream, peer), self.policy.clone(), ());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The queue is empty: whatever the back-off waited for
                    // is over, and new connections will raise events again.
                    if self.backoff.take().is_some() {
                        log::info!("{name}: accepting again");
                    }
                    return Fate::Keep;
                }
                Err(e) if out_of_resources(&e) => {
                    let delay = match self.backoff {
                        None => {
                            log::warn!(
                                "{name}: cannot accept ({e}); retrying every {FIRST_BACKOFF:?} to {MAX_BACKOFF:?} until descriptors free up"
                            );
                            FIRST_BACKOFF
                        }
                        Some(d) => (d * 2).min(MAX_BACKOFF),
                    };
                    self.backoff = Some(delay);
                    CoreCx { core, token }.schedule(delay, None, TimerKind::RetryAccept, 0);
                    return Fate::Keep;
                }
                // ECONNABORTED and the like concern one connection, not the listener.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => log::debug!("{name}: accept failed: {e}"),
            }
        }
        // Budget spent with connections perhaps still queued: continue next turn.
        core.ready.push(token);
        Fate::Keep
    }
}

impl Source for ListenerSource {
    fn ready(&mut self, core: &mut Core, token: u64, _: Readiness) -> Fate {
        // While backing off, the retry timer decides when to accept.
        if self.backoff.is_some() {
            return Fate::Keep;
        }
        self.accept(core, token)
    }

    fn timer(&mut self, core: &mut Core, token: u64, kind: TimerKind, _: u64) -> Fate {
        match kind {
            TimerKind::RetryAccept => self.accept(core, token),
            _ => Fate::Keep,
        }
    }

    /// Dropping the listener closes it (and removes its socket file).
    fn stop(&mut self, core: &mut Core, token: u64) -> Fate {
        core.cancel_timers_of(token);
        Fate::Done
    }

    fn stop_listening(&mut self) -> bool {
        self.closing = true;
        true
    }

    fn descriptor(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    fn pass_on(&mut self) -> Option<io::Result<std::os::fd::RawFd>> {
        use std::os::fd::AsRawFd;
        self.sock.keep_file();
        let fd = self.sock.as_fd();
        Some(crate::inherit::pass_on(fd).map(|()| fd.as_raw_fd()))
    }

    /// Connections it accepted are sources of their own: they stay.
    fn settle(&mut self, core: &mut Core, token: u64) -> Fate {
        if !self.closing {
            return Fate::Keep;
        }
        log::info!("{}: stopped listening", self.policy.name);
        self.stop(core, token)
    }
}
