//! Accepting connections: a bounded number per turn, and a back-off instead
//! of a busy loop when the process runs out of file descriptors.
//!
//! Under `EMFILE` an edge-triggered listener goes silent with connections
//! still queued: no new event will come for them. So accepting is retried on
//! a timer, 10 ms at first and doubling up to 1 s, with one warning per
//! back-off rather than one per attempt.
//!
//! A listener also enforces its [`ListenOptions`] caps: over
//! `max_connections`, or `max_per_peer` for one address, a new connection is
//! closed at once (never left hanging in the backlog) and counted.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::conn::{Conn, ConnIo, Origin};
use crate::flow::Limits;
use crate::guard::guarded;
use crate::protocol::Factory;
use crate::reactor::{Core, ListenOptions, Source, TimerAction};
use crate::stream::Listener;

/// What every connection of one listener (or one client) shares: the name
/// for logs, the buffer limits and idle timeout, and the counts a listener's
/// caps are checked against (decremented when a connection ends, whether or
/// not the listener is in its slot at that moment). Kept once, not per
/// connection, so an idle connection costs less memory.
#[derive(Debug)]
pub(crate) struct Policy {
    pub name: String,
    pub limits: Limits,
    pub idle_after: Option<Duration>,
    open: Cell<usize>,
    per_peer: RefCell<HashMap<IpAddr, usize>>,
}

impl Policy {
    pub(crate) fn new(name: &str, limits: Limits, idle_after: Option<Duration>) -> Policy {
        Policy { name: name.to_string(), limits, idle_after, open: Cell::new(0), per_peer: RefCell::default() }
    }

    /// A connection from `peer` ended.
    pub(crate) fn release(&self, peer: &crate::Addr) {
        self.open.set(self.open.get().saturating_sub(1));
        let mut map = self.per_peer.borrow_mut();
        // Empty unless a per-peer cap is set: no hashing on every close then.
        if map.is_empty() {
            return;
        }
        if let Some(ip) = peer.inet().map(|a| a.ip()) {
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

pub(crate) struct ListenerEntry {
    sock: Listener,
    factory: Box<dyn Factory>,
    opts: ListenOptions,
    shared: Rc<Policy>,
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
        let shared = Rc::new(Policy::new(&opts.name, opts.limits, opts.idle_timeout));
        ListenerEntry { sock, factory, opts, shared, backoff: None, path }
    }

    /// Counts a new connection from `peer` in, or says which cap it passes.
    fn admit(&self, peer: &crate::Addr) -> Result<(), String> {
        if self.opts.max_connections.is_some_and(|max| self.shared.open.get() >= max) {
            return Err(format!("{} connections open, the most allowed", self.shared.open.get()));
        }
        if let (Some(max), Some(ip)) = (self.opts.max_per_peer, peer.inet().map(|a| a.ip())) {
            let mut map = self.shared.per_peer.borrow_mut();
            let n = map.entry(ip).or_insert(0);
            if *n >= max {
                return Err(format!("{n} connections open from {ip}, the most allowed per address"));
            }
            *n += 1;
        }
        self.shared.open.set(self.shared.open.get() + 1);
        Ok(())
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
                    if let Err(why) = l.admit(&peer) {
                        self.stats.refused += 1;
                        log::debug!("{}: refused {peer}: {why}", l.opts.name);
                        continue; // dropping the stream closes it at once
                    }
                    let protocol = match guarded(|| l.factory.build_protocol(&peer)) {
                        Ok(p) => p,
                        Err(e) => {
                            self.stats.panics += 1;
                            log::error!("{}: building a protocol for {peer}: {e}", l.opts.name);
                            l.shared.release(&peer);
                            continue;
                        }
                    };
                    let conn_token = self.insert(Source::Busy);
                    if let Err(e) = stream.register(&self.registry, mio::Token(conn_token as usize)) {
                        log::warn!("{}: could not register a connection from {peer}: {e}", l.opts.name);
                        self.remove(conn_token);
                        l.shared.release(&peer);
                        continue;
                    }
                    self.stats.accepted += 1;
                    let mut io = ConnIo::new(conn_token, stream, peer, Origin::Listener(l.shared.clone()));
                    if let Some(after) = l.opts.idle_timeout {
                        io.idle = Some(self.idle_timer(conn_token, after));
                    }
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
