//! Policies and limits: what every connection of one listener (or one
//! client) shares. The options a listener is opened with
//! ([`ListenOptions`]), and the [`Policy`] built from them once: the name
//! for logs, the buffer limits, the idle timeout, and the counts a
//! listener's caps are checked against. And the [`ReplyGuard`] every UDP
//! server socket of a reactor shares.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::core::UdpReplies;
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
    /// Close a connection after this long without receiving a whole
    /// message (Twisted's `TimeoutMixin`), aborting it with a logged
    /// reason. For framed protocols (lines, length-prefixed messages,
    /// packets, records: see `Transport::progress`) it is a progress
    /// deadline: bytes that never complete a message do not count. For the
    /// others, any byte does. Default: none.
    pub idle_timeout: Option<Duration>,
    /// Close a connection this long after it opened, however busy (a bound
    /// on what one client can hold). Default: none.
    pub max_lifetime: Option<Duration>,
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
            max_lifetime: None,
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
    pub max_lifetime: Option<Duration>,
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
            max_lifetime: opts.max_lifetime,
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

/// What every UDP server socket of one reactor shares: its own endpoints
/// (never answered, or two services could answer each other forever), and
/// a token bucket per address replied to ([`UdpReplies`]).
#[derive(Debug)]
pub(crate) struct ReplyGuard {
    settings: UdpReplies,
    own: Vec<SocketAddr>,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept at most; past it, full (idle) ones are forgotten.
const MAX_BUCKETS: usize = 65_536;

impl ReplyGuard {
    pub(crate) fn new(settings: UdpReplies) -> Self {
        ReplyGuard { settings, own: Vec::new(), buckets: HashMap::new() }
    }

    /// A server socket bound to `addr` joined (or left) the reactor.
    pub(crate) fn own(&mut self, addr: SocketAddr, bound: bool) {
        if bound {
            self.own.push(addr);
        } else if let Some(i) = self.own.iter().position(|a| *a == addr) {
            self.own.swap_remove(i);
        }
    }

    /// May a reply go to `to` now? If not, why.
    pub(crate) fn check(&mut self, to: SocketAddr, now: Instant) -> Result<(), &'static str> {
        if self.settings.refused_ports.contains(&to.port()) {
            return Err("its port is a service that answers unsolicited datagrams");
        }
        let ip = to.ip();
        let ours = |a: &SocketAddr| {
            a.port() == to.port()
                && (a.ip() == ip || a.ip().is_unspecified() || (a.ip().is_loopback() && ip.is_loopback()))
        };
        if self.own.iter().any(ours) {
            return Err("it is one of this server's own endpoints (a loop)");
        }
        let rate = f64::from(self.settings.per_second);
        if rate == 0.0 || (ip.is_loopback() && !self.settings.limit_loopback) {
            return Ok(());
        }
        let burst = f64::from(self.settings.burst.max(1));
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&ip) {
            self.buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = self.buckets.entry(ip).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens < 1.0 {
            return Err("its address is over the reply rate");
        }
        b.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_service_ports_own_endpoints_and_floods() {
        let mut g =
            ReplyGuard::new(UdpReplies { per_second: 10, burst: 3, limit_loopback: false, ..UdpReplies::default() });
        g.own("0.0.0.0:7013".parse().unwrap(), true);
        let t0 = Instant::now();
        assert!(g.check("192.0.2.1:7".parse().unwrap(), t0).is_err(), "echo");
        assert!(g.check("192.0.2.1:123".parse().unwrap(), t0).is_err(), "ntp");
        assert!(g.check("127.0.0.1:7013".parse().unwrap(), t0).is_err(), "ourselves");
        assert!(g.check("192.0.2.1:7013".parse().unwrap(), t0).is_err(), "ourselves, bound to any");
        let victim: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let sent = (0..100).filter(|_| g.check(victim, t0).is_ok()).count();
        assert_eq!(sent, 3, "a burst, then nothing");
        assert!(g.check(victim, t0 + Duration::from_millis(100)).is_ok(), "one more after 1/rate");
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!((0..100).filter(|_| g.check(local, t0).is_ok()).count(), 100, "loopback is not limited");
        g.own("0.0.0.0:7013".parse().unwrap(), false);
        assert!(g.check("127.0.0.1:7013".parse().unwrap(), t0).is_ok(), "no longer ours");
    }
}
