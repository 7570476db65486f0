//! Accepting connections: a bounded number per turn, and a back-off instead
//! of a busy loop when the process runs out of file descriptors.
//!
//! Under `EMFILE` an edge-triggered listener goes silent with connections
//! still queued: no new event will come for them. So accepting is retried on
//! a timer, 10 ms at first and doubling up to 1 s, with one warning per
//! back-off rather than one per attempt.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::conn::{Conn, ConnIo, Origin};
use crate::protocol::Factory;
use crate::reactor::{Core, ListenOptions, Source, TimerAction};
use crate::stream::Listener;

pub(crate) struct ListenerEntry {
    sock: Listener,
    factory: Box<dyn Factory>,
    opts: ListenOptions,
    /// The current back-off delay while descriptors are exhausted.
    backoff: Option<Duration>,
    /// A Unix socket file to remove when the listener closes.
    path: Option<PathBuf>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

impl ListenerEntry {
    pub(crate) fn new(sock: Listener, factory: Box<dyn Factory>, opts: ListenOptions, path: Option<PathBuf>) -> Self {
        ListenerEntry { sock, factory, opts, backoff: None, path }
    }

    /// Closes the socket and removes its file, if any.
    pub(crate) fn close(self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Core {
    /// Accepts what is queued, up to the per-turn budget. `retry` is true
    /// when the back-off timer fired; events are ignored while backing off.
    pub(crate) fn accept(&mut self, token: u64, mut l: Box<ListenerEntry>, retry: bool) {
        if l.backoff.is_some() && !retry {
            return self.put_back(token, Source::Listener(l));
        }
        for _ in 0..self.config.accept_budget {
            match l.sock.accept() {
                Ok((mut stream, peer)) => {
                    if l.backoff.take().is_some() {
                        log::info!("{}: accepting again", l.opts.name);
                    }
                    let conn_token = self.insert(Source::Busy);
                    if let Err(e) = stream.register(&self.registry, mio::Token(conn_token as usize)) {
                        log::warn!("{}: could not register a connection from {peer}: {e}", l.opts.name);
                        self.remove(conn_token);
                        continue;
                    }
                    self.stats.accepted += 1;
                    let protocol = l.factory.build_protocol(&peer);
                    let io = ConnIo::new(conn_token, stream, peer, l.opts.limits, Origin::Listener);
                    self.start_conn(conn_token, Box::new(Conn { protocol, io }));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.put_back(token, Source::Listener(l));
                }
                Err(e) if out_of_resources(&e) => {
                    let delay = match l.backoff {
                        None => {
                            log::warn!(
                                "{}: cannot accept ({e}); retrying every {:?} to {:?} until descriptors free up",
                                l.opts.name,
                                FIRST_BACKOFF,
                                MAX_BACKOFF
                            );
                            FIRST_BACKOFF
                        }
                        Some(d) => (d * 2).min(MAX_BACKOFF),
                    };
                    l.backoff = Some(delay);
                    self.timers.schedule(self.now, delay, None, TimerAction::RetryAccept(token));
                    return self.put_back(token, Source::Listener(l));
                }
                // ECONNABORTED and the like concern one connection, not the listener.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => log::debug!("{}: accept failed: {e}", l.opts.name),
            }
        }
        // Budget spent with connections perhaps still queued: continue next turn.
        self.ready.push(token);
        self.put_back(token, Source::Listener(l));
    }
}
