//! How connections and sockets are opened by endpoint, from the reactor
//! ([`Reactor::connect`](crate::Reactor::connect)) or from a callback
//! ([`Context::connect`](crate::Context::connect),
//! [`Context::connect_udp`](crate::Context::connect_udp)): at once for an
//! address or a Unix path, through the resolver pool for a host name (the
//! loop never blocks on DNS). Either way the id is known from the start:
//! the slot is reserved first, and whatever stands in it (resolving,
//! connecting, connected) keeps that token.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::core::{Core, Opener};
use crate::endpoint::ClientEndpoint;
use crate::policy::Policy;
use crate::protocol::{ClientFactory, DatagramProtocol, Protocol};
use crate::resolver::Resolver;
use crate::source::connector::{Client, OneProtocol, Target};
use crate::source::resolving::{AfterResolve, Resolving};
use crate::source::udp::{self, PendingUdp};
use crate::tls::{TlsClient, TlsClientFactory};

/// Called from a resolver thread with the token whose name it resolved:
/// the reactor makes it fire that source's `TimerKind::Resolved` on the
/// loop (this layer knows neither the reactor nor its handle).
pub(crate) type Wake = Arc<dyn Fn(u64) + Send + Sync>;

/// The reactor's [`Opener`]: it can wake the loop from a resolver thread.
pub(crate) struct LoopOpener {
    pub wake: Wake,
    pub resolver: Resolver,
}

impl Opener for LoopOpener {
    fn connect(&self, core: &mut Core, to: &ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<u64> {
        self.connect_stream(core, to, Box::new(OneProtocol(Some(protocol))))
    }

    fn connect_udp(
        &self,
        core: &mut Core,
        to: &ClientEndpoint,
        protocol: Box<dyn DatagramProtocol>,
    ) -> io::Result<u64> {
        let ClientEndpoint::Udp(host, port) = to else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{to} is not a udp: endpoint")));
        };
        let token = core.reserve();
        match literal(host, *port) {
            Some(addr) => udp::connect_at(core, token, addr, protocol).map(|_| token),
            None => {
                let pending = Box::new(PendingUdp { protocol, to: to.to_string() });
                self.resolve_then(core, token, bare(host), *port, pending)
            }
        }
    }
}

impl LoopOpener {
    /// Starts connecting `factory`'s client to `to`; returns the token its
    /// connection will have.
    pub(crate) fn connect_stream(
        &self,
        core: &mut Core,
        to: &ClientEndpoint,
        factory: Box<dyn ClientFactory>,
    ) -> io::Result<u64> {
        let policy = Rc::new(Policy::plain("client", core.config.limits));
        let mut factory = factory;
        let (host, port) = match to {
            ClientEndpoint::Tls(t) => {
                let tls = TlsClient::new(t.ca.as_deref(), t.name.as_deref().unwrap_or(bare(&t.host)))?
                    .with_handshake_timeout(core.config.tls_handshake_timeout);
                factory = Box::new(TlsClientFactory::new(tls, factory));
                (&t.host, t.port)
            }
            ClientEndpoint::Unix(path) => {
                let token = core.reserve();
                Box::new(Client { factory, target: Target::Unix(path.clone()), policy }).connect_at(core, token);
                return Ok(token);
            }
            ClientEndpoint::Udp(..) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{to} is a UDP endpoint: use connect_udp"),
                ));
            }
            ClientEndpoint::Tcp(host, port) => (host, *port),
        };
        let token = core.reserve();
        if let Some(addr) = literal(host, port) {
            Box::new(Client { factory, target: Target::Tcp(addr), policy }).connect_at(core, token);
            return Ok(token);
        }
        let unresolved = Target::Tcp(SocketAddr::from(([0, 0, 0, 0], port)));
        self.resolve_then(core, token, bare(host), port, Box::new(Client { factory, target: unresolved, policy }))
    }

    /// Puts a [`Resolving`] in the slot `token` and looks `host` up on the pool.
    fn resolve_then(
        &self,
        core: &mut Core,
        token: u64,
        host: &str,
        port: u16,
        waiting: Box<dyn AfterResolve>,
    ) -> io::Result<u64> {
        let answer = Arc::new(Mutex::new(None));
        let (slot, wake) = (answer.clone(), self.wake.clone());
        let started = self.resolver.resolve(host.to_string(), port, move |found| {
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(found);
            }
            wake(token);
        });
        match started {
            Ok(()) => {
                core.put_back(token, Box::new(Resolving::new(waiting, answer)));
                Ok(token)
            }
            Err(e) => {
                core.remove(token);
                Err(e)
            }
        }
    }
}

/// The host without the brackets an IPv6 address is written in.
fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The address, if `host` is written as one (no lookup needed).
fn literal(host: &str, port: u16) -> Option<SocketAddr> {
    bare(host).parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}
