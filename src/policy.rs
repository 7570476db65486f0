//! Policies and limits: what every connection of one listener (or one
//! client) shares. The options a listener is opened with
//! ([`ListenOptions`]), and the [`Policy`] built from them once: the name
//! for logs, the buffer limits, the idle timeout, and the counts a
//! listener's caps are checked against.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::addr::Addr;
use crate::flow::Limits;

/// Options for one listener, with documented defaults ([`ListenOptions::new`]).
///
/// ```
/// use std::time::Duration;
/// let opts = twirl::ListenOptions {
///     idle_timeout: Some(Duration::from_secs(60)),
///     max_per_peer: Some(8),
///     ..twirl::ListenOptions::new("chat")
/// };
/// assert_eq!(opts.max_connections, None);
/// ```
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// A name for logs (the plugin's name).
    pub name: String,
    /// Buffer limits for its connections. Default: [`Limits::default`].
    pub limits: Limits,
    /// Close a connection after this long without receiving a byte
    /// (Twisted's `TimeoutMixin`), aborting it with a logged reason.
    /// Default: none.
    pub idle_timeout: Option<Duration>,
    /// Most connections open at once; over it, new ones are closed at once
    /// and counted (`Stats::refused`). Default: none.
    pub max_connections: Option<usize>,
    /// Most connections open at once from one IP address (Twisted's
    /// `LimitConnectionsByPeer`). Default: none.
    pub max_per_peer: Option<usize>,
}

impl ListenOptions {
    /// Options named `name`, with default limits and no timeouts or caps.
    pub fn new(name: impl Into<String>) -> Self {
        ListenOptions {
            name: name.into(),
            limits: Limits::default(),
            idle_timeout: None,
            max_connections: None,
            max_per_peer: None,
        }
    }
}

/// What every connection of one listener (or one client) shares. Kept once,
/// not per connection, so an idle connection costs less memory. The counts
/// are decremented when a connection ends, whether or not its listener is
/// still open.
#[derive(Debug)]
pub(crate) struct Policy {
    pub name: String,
    pub limits: Limits,
    pub idle_after: Option<Duration>,
    max_connections: Option<usize>,
    max_per_peer: Option<usize>,
    open: Cell<usize>,
    per_peer: RefCell<HashMap<IpAddr, usize>>,
}

impl Policy {
    /// A policy for a listener's connections.
    pub(crate) fn listener(opts: &ListenOptions) -> Policy {
        Policy {
            name: opts.name.clone(),
            limits: opts.limits,
            idle_after: opts.idle_timeout,
            max_connections: opts.max_connections,
            max_per_peer: opts.max_per_peer,
            open: Cell::new(0),
            per_peer: RefCell::default(),
        }
    }

    /// A policy with no caps: a client's, or the test harness's.
    pub(crate) fn plain(name: &str, limits: Limits) -> Policy {
        Policy::listener(&ListenOptions { limits, ..ListenOptions::new(name) })
    }

    /// Counts a new connection from `peer` in, or says which cap it passes.
    pub(crate) fn admit(&self, peer: &Addr) -> Result<(), String> {
        if self.max_connections.is_some_and(|max| self.open.get() >= max) {
            return Err(format!("{} connections open, the most allowed", self.open.get()));
        }
        if let (Some(max), Some(ip)) = (self.max_per_peer, peer.inet().map(|a| a.ip())) {
            let mut map = self.per_peer.borrow_mut();
            let n = map.entry(ip).or_insert(0);
            if *n >= max {
                return Err(format!("{n} connections open from {ip}, the most allowed per address"));
            }
            *n += 1;
        }
        self.open.set(self.open.get() + 1);
        Ok(())
    }

    /// A connection from `peer` ended.
    pub(crate) fn release(&self, peer: &Addr) {
        self.open.set(self.open.get().saturating_sub(1));
        let mut map = self.per_peer.borrow_mut();
        // Empty unless a per-peer cap is set: no hashing on every close then.
        if map.is_empty() {
            return;
        }
        if let Some(ip) = peer.inet().map(|a| a.ip())
            && let Some(n) = map.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}
