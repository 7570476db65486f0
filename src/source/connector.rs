//! Outgoing connections. A non-blocking connect is complete only when the
//! socket turns writable, `take_error()` is empty and `peer_addr()`
//! succeeds; until then it waits in the loop like any other source, with a
//! timeout. Failures and losses go to the [`ClientFactory`], which may ask
//! for a retry after a delay.
//!
//! A client moves between three places, each its own source: connecting
//! ([`Connecting`]), connected (the connection holds the client and hands
//! it on when it ends), and waiting to try again ([`Waiting`], with a
//! timer). Each has its own token, so a stale retry timer (from before a
//! reactor stopped, say) misses instead of starting a connection.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::addr::Addr;
use crate::core::{Core, CoreCx, Fate, Host, Readiness, Source, TimerKind};
use crate::guard::guarded;
use crate::policy::Policy;
use crate::protocol::{ClientFactory, Protocol};
use crate::source::conn::{Conn, OnEnd};
use crate::source::resolving::{AfterResolve, cancelled};
use crate::source::socket::Stream;
use crate::timer::TimerHandle;
use crate::transport::Context;
use crate::transport::Disconnect;

/// Where a client connects.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "tcp:{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One client: its factory, where it connects, and its connections' policy.
pub(crate) struct Client {
    pub factory: Box<dyn ClientFactory>,
    pub target: Target,
    pub policy: Rc<Policy>,
}

impl Client {
    /// Starts a connection attempt.
    pub(crate) fn connect(self: Box<Self>, core: &mut Core) {
        let token = core.reserve();
        self.connect_at(core, token);
    }

    /// Starts a connection attempt in the slot `token`, reserved for it
    /// (its connection will have that id).
    pub(crate) fn connect_at(self: Box<Self>, core: &mut Core, token: u64) {
        let attempt = match &self.target {
            Target::Tcp(a) => mio::net::TcpStream::connect(*a).map(Stream::Tcp),
            Target::Unix(p) => mio::net::UnixStream::connect(p).map(Stream::Unix),
        };
        let mut stream = match attempt {
            Ok(s) => s,
            Err(e) => {
                core.remove(token);
                return self.failed(core, e);
            }
        };
        if let Err(e) = stream.register(&core.registry, mio::Token(token as usize)) {
            core.remove(token);
            return self.failed(core, e);
        }
        let timeout = core.config.connect_timeout;
        let timeout = CoreCx { core, token }.schedule(timeout, None, TimerKind::ConnectTimeout, 0);
        core.put_back(
            token,
            Box::new(Connecting { stream: Some(stream), client: Some(self), timeout, cancelled: None }),
        );
    }

    /// Connecting failed: ask the factory whether to try again.
    fn failed(mut self: Box<Self>, core: &mut Core, e: io::Error) {
        log::debug!("connecting to {} failed: {e}", self.target);
        let retry = guarded(|| self.factory.connection_failed(&e, &mut CoreCx { core, token: 0 }));
        self.retry_after(core, retry);
    }

    fn retry_after(self: Box<Self>, core: &mut Core, retry: Result<Option<Duration>, crate::guard::Panic>) {
        let delay = match retry {
            Ok(d) => d,
            Err(panic) => {
                core.stats.panics += 1;
                log::error!("client factory for {}: {panic}; giving up", self.target);
                None
            }
        };
        let Some(delay) = delay else { return };
        if core.stopping.is_some() || core.stop_requested {
            return;
        }
        let token = core.reserve();
        CoreCx { core, token }.schedule(delay, None, TimerKind::Reconnect, 0);
        core.put_back(token, Box::new(Waiting { client: Some(self) }));
    }
}

/// A client's connection tells its factory, once.
impl OnEnd for Option<Box<Client>> {
    fn ended(&mut self, core: &mut Core, reason: &Disconnect) {
        let Some(mut client) = self.take() else { return };
        let retry = guarded(|| client.factory.connection_lost(reason, &mut CoreCx { core, token: 0 }));
        client.retry_after(core, retry);
    }
}

/// A connect in progress.
pub(crate) struct Connecting {
    stream: Option<Stream>,
    client: Option<Box<Client>>,
    timeout: TimerHandle,
    /// Closed or aborted by id before it connected: fail at the settle.
    cancelled: Option<Disconnect>,
}

impl Connecting {
    fn fail(&mut self, core: &mut Core, e: io::Error) -> Fate {
        core.timers.cancel(self.timeout);
        self.stream = None;
        if let Some(client) = self.client.take() {
            client.failed(core, e);
        }
        Fate::Done
    }
}

impl Source for Connecting {
    fn ready(&mut self, core: &mut Core, token: u64, r: Readiness) -> Fate {
        let Some(stream) = &self.stream else { return Fate::Done };
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return self.fail(core, e),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(peer) => {
                core.timers.cancel(self.timeout);
                let (Some(stream), Some(mut client)) = (self.stream.take(), self.client.take()) else {
                    return Fate::Done;
                };
                core.stats.connected += 1;
                match guarded(|| client.factory.build_protocol(&peer)) {
                    Ok(protocol) => {
                        let policy = client.policy.clone();
                        // The connection takes over this token and its registration.
                        Conn::start(core, token, protocol, (stream, peer), policy, Some(client));
                        Fate::Replaced
                    }
                    Err(panic) => {
                        core.stats.panics += 1;
                        log::error!("client factory for {}: {panic}", client.target);
                        client.failed(core, panic.into());
                        Fate::Done
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected && !(r.error || r.read_closed) => {
                // Not yet: a spurious or early event.
                Fate::Keep
            }
            Err(e) => {
                let e = if e.kind() == io::ErrorKind::NotConnected {
                    io::Error::from(io::ErrorKind::ConnectionRefused)
                } else {
                    e
                };
                self.fail(core, e)
            }
        }
    }

    fn timer(&mut self, core: &mut Core, _: u64, kind: TimerKind, _: u64) -> Fate {
        match kind {
            TimerKind::ConnectTimeout => {
                self.fail(core, io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))
            }
            _ => Fate::Keep,
        }
    }

    fn stop(&mut self, core: &mut Core, _: u64) -> Fate {
        core.timers.cancel(self.timeout);
        Fate::Done
    }

    fn abort(&mut self, why: Disconnect) -> bool {
        self.cancelled = Some(why);
        true
    }

    fn close(&mut self) -> bool {
        self.abort(Disconnect::AbortedByOther)
    }

    fn settle(&mut self, core: &mut Core, _: u64) -> Fate {
        match self.cancelled.take() {
            Some(why) => self.fail(core, cancelled(&why)),
            None => Fate::Keep,
        }
    }
}

/// A stream client waits for its host name like a UDP socket does: then it
/// connects in the slot it was given.
impl AfterResolve for Client {
    fn resolved(mut self: Box<Self>, core: &mut Core, token: u64, addr: SocketAddr) -> Fate {
        self.target = Target::Tcp(addr);
        // Connecting takes over this slot, so the id given out stays.
        self.connect_at(core, token);
        Fate::Replaced
    }

    fn failed(self: Box<Self>, core: &mut Core, e: io::Error) {
        Client::failed(self, core, e);
    }
}

/// The client of one connection opened from a callback
/// (`Context::connect`): its one protocol, told if connecting fails; never
/// retried.
pub(crate) struct OneProtocol(pub Option<Box<dyn Protocol>>);

impl ClientFactory for OneProtocol {
    fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
        self.0.take().unwrap_or_else(|| Box::new(Nothing))
    }

    fn connection_failed(&mut self, error: &io::Error, cx: &mut dyn Context) -> Option<Duration> {
        if let Some(mut p) = self.0.take() {
            let why = Disconnect::Io(io::Error::new(error.kind(), error.to_string()));
            p.connection_lost(&why, cx);
        }
        None
    }

    fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) -> Option<Duration> {
        None
    }
}

/// Stands in if a one-protocol client were ever asked for a second.
struct Nothing;
impl Protocol for Nothing {
    fn data_received(&mut self, _: &[u8], t: &mut dyn crate::Transport) {
        t.abort_connection();
    }
}

/// A client waiting for its retry timer.
struct Waiting {
    client: Option<Box<Client>>,
}

impl Source for Waiting {
    fn ready(&mut self, _: &mut Core, _: u64, _: Readiness) -> Fate {
        Fate::Keep
    }

    fn timer(&mut self, core: &mut Core, _: u64, kind: TimerKind, _: u64) -> Fate {
        match (kind, self.client.take()) {
            (TimerKind::Reconnect, Some(client)) => {
                client.connect(core);
                Fate::Done
            }
            (_, client) => {
                self.client = client;
                Fate::Keep
            }
        }
    }

    fn stop(&mut self, core: &mut Core, token: u64) -> Fate {
        core.cancel_timers_of(token);
        Fate::Done
    }
}
