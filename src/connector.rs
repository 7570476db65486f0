//! Outgoing connections. A non-blocking connect is complete only when the
//! socket turns writable, `take_error()` is empty and `peer_addr()`
//! succeeds; until then it waits in the loop like any other source, with a
//! timeout. Failures and losses go to the [`ClientFactory`], which may ask
//! for a retry after a delay.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::conn::{Conn, ConnIo, CoreCx, Origin};
use crate::protocol::ClientFactory;
use crate::reactor::{Core, Readiness, Source, TimerAction};
use crate::stream::Stream;
use crate::timer::TimerHandle;
use crate::transport::Disconnect;

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

pub(crate) struct ClientEntry {
    pub factory: Box<dyn ClientFactory>,
    pub target: Target,
    pub policy: std::rc::Rc<crate::listener::Policy>,
}

/// Stands in a client's slot while its factory is out answering a callback
/// (the factory gets the reactor's context, which includes the slot).
struct Placeholder;

impl ClientFactory for Placeholder {
    fn build_protocol(&mut self, _: &crate::Addr) -> Box<dyn crate::Protocol> {
        struct Inert;
        impl crate::Protocol for Inert {
            fn data_received(&mut self, _: &[u8], t: &mut dyn crate::Transport) {
                t.abort_connection();
            }
        }
        Box::new(Inert)
    }
}

pub(crate) struct Connecting {
    stream: Stream,
    client: usize,
    timeout: TimerHandle,
}

impl Core {
    /// Starts (or restarts) a connection attempt for a client.
    pub(crate) fn start_connect(&mut self, client: usize) {
        let Some(entry) = self.clients.get(client) else { return };
        let attempt = match &entry.target {
            Target::Tcp(a) => mio::net::TcpStream::connect(*a).map(Stream::Tcp),
            Target::Unix(p) => mio::net::UnixStream::connect(p).map(Stream::Unix),
        };
        let mut stream = match attempt {
            Ok(s) => s,
            Err(e) => return self.connect_failed(client, e),
        };
        let token = self.insert(Source::Busy);
        if let Err(e) = stream.register(&self.registry, mio::Token(token as usize)) {
            self.remove(token);
            return self.connect_failed(client, e);
        }
        let timeout =
            self.timers.schedule(self.now, self.config.connect_timeout, None, TimerAction::ConnectTimeout(token));
        self.put_back(token, Source::Connecting(Box::new(Connecting { stream, client, timeout })));
    }

    pub(crate) fn connect_ready(&mut self, token: u64, c: Box<Connecting>, r: Readiness) {
        match c.stream.take_error() {
            Ok(Some(e)) | Err(e) => return self.connecting_failed(token, c, e),
            Ok(None) => {}
        }
        match c.stream.peer_addr() {
            Ok(peer) => {
                let Connecting { stream, client, timeout } = *c;
                self.timers.cancel(timeout);
                let Some(entry) = self.clients.get_mut(client) else {
                    return self.remove(token);
                };
                self.stats.connected += 1;
                let protocol = match crate::guard::guarded(|| entry.factory.build_protocol(&peer)) {
                    Ok(p) => p,
                    Err(e) => {
                        self.stats.panics += 1;
                        log::error!("client factory for {}: {e}", entry.target);
                        self.remove(token);
                        return self.connect_failed(client, e.into());
                    }
                };
                let io = ConnIo::new(token, stream, peer, Origin::Client(client, entry.policy.clone()));
                self.start_conn(token, Box::new(Conn { protocol, io }));
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected && !(r.error || r.read_closed) => {
                // Not yet: a spurious or early event.
                self.put_back(token, Source::Connecting(c));
            }
            Err(e) => {
                let e = if e.kind() == io::ErrorKind::NotConnected {
                    io::Error::from(io::ErrorKind::ConnectionRefused)
                } else {
                    e
                };
                self.connecting_failed(token, c, e);
            }
        }
    }

    fn connecting_failed(&mut self, token: u64, c: Box<Connecting>, e: io::Error) {
        self.remove(token);
        self.timers.cancel(c.timeout);
        let client = c.client;
        drop(c);
        self.connect_failed(client, e);
    }

    pub(crate) fn connect_timeout(&mut self, token: u64) {
        match self.take(token) {
            Some(Source::Connecting(c)) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
                self.connecting_failed(token, c, e);
            }
            Some(other) => self.put_back(token, other),
            None => {}
        }
    }

    fn connect_failed(&mut self, client: usize, e: io::Error) {
        let Some(entry) = self.clients.get_mut(client) else { return };
        log::debug!("connecting to {} failed: {e}", entry.target);
        let mut factory = std::mem::replace(&mut entry.factory, Box::new(Placeholder));
        let retry = factory.connection_failed(&e, &mut CoreCx { core: self, token: 0 });
        self.restore_factory(client, factory);
        self.schedule_retry(client, retry);
    }

    pub(crate) fn client_lost(&mut self, client: usize, reason: &Disconnect) {
        let Some(entry) = self.clients.get_mut(client) else { return };
        let mut factory = std::mem::replace(&mut entry.factory, Box::new(Placeholder));
        let retry = factory.connection_lost(reason, &mut CoreCx { core: self, token: 0 });
        self.restore_factory(client, factory);
        self.schedule_retry(client, retry);
    }

    fn restore_factory(&mut self, client: usize, factory: Box<dyn ClientFactory>) {
        if let Some(entry) = self.clients.get_mut(client) {
            entry.factory = factory;
        }
    }

    fn schedule_retry(&mut self, client: usize, retry: Option<std::time::Duration>) {
        match retry {
            Some(delay) if self.stopping.is_none() && !self.stop_requested => {
                self.timers.schedule(self.now, delay, None, TimerAction::Reconnect(client));
            }
            _ => {
                self.clients.try_remove(client);
            }
        }
    }

    pub(crate) fn reconnect(&mut self, client: usize) {
        if self.stopping.is_some() {
            self.clients.try_remove(client);
        } else {
            self.start_connect(client);
        }
    }
}
