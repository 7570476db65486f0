//! How connections are opened by endpoint, from the reactor
//! ([`Reactor::connect`](crate::Reactor::connect)) or from a callback
//! ([`Context::connect`](crate::Context::connect)): at once for an
//! address or a Unix path, through a resolver thread for a host name (the
//! loop never blocks on DNS). Either way the connection's id is known from
//! the start: the slot is reserved first, and whatever stands in it
//! (resolving, connecting, connected) keeps that token.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::core::{Core, Opener};
use crate::endpoint::ClientEndpoint;
use crate::policy::Policy;
use crate::protocol::{ClientFactory, Protocol};
use crate::source::connector::{Client, OneProtocol, Resolving, Target};
use crate::tls::{TlsClient, TlsClientFactory};

/// Called from a resolver thread with the token whose name it resolved:
/// the reactor makes it fire that source's `TimerKind::Resolved` on the
/// loop (this layer knows neither the reactor nor its handle).
pub(crate) type Wake = Arc<dyn Fn(u64) + Send + Sync>;

/// The reactor's [`Opener`]: it can wake the loop from a resolver thread.
pub(crate) struct LoopOpener {
    pub wake: Wake,
}

impl Opener for LoopOpener {
    fn connect(&self, core: &mut Core, to: &ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<u64> {
        start(core, &self.wake, to, Box::new(OneProtocol(Some(protocol))))
    }
}

/// Starts connecting `factory`'s client to `to`; returns the token its
/// connection will have.
pub(crate) fn start(
    core: &mut Core,
    wake: &Wake,
    to: &ClientEndpoint,
    factory: Box<dyn ClientFactory>,
) -> io::Result<u64> {
    let policy = Rc::new(Policy::plain("client", core.config.limits));
    let mut factory = factory;
    let (host, port) = match to {
        ClientEndpoint::Tls(t) => {
            let host = t.host.trim_start_matches('[').trim_end_matches(']');
            let tls = TlsClient::new(t.ca.as_deref(), t.name.as_deref().unwrap_or(host))?
                .with_handshake_timeout(core.config.tls_handshake_timeout);
            factory = Box::new(TlsClientFactory::new(tls, factory));
            (host, t.port)
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
        ClientEndpoint::Tcp(host, port) => (host.trim_start_matches('[').trim_end_matches(']'), *port),
    };
    let token = core.reserve();
    if let Ok(ip) = host.parse::<IpAddr>() {
        let target = Target::Tcp(SocketAddr::new(ip, port));
        Box::new(Client { factory, target, policy }).connect_at(core, token);
        return Ok(token);
    }
    let answer = Arc::new(Mutex::new(None));
    let unresolved = Target::Tcp(SocketAddr::from(([0, 0, 0, 0], port)));
    let client = Box::new(Client { factory, target: unresolved, policy });
    let resolving = Resolving { client: Some(client), answer: answer.clone(), cancelled: None };
    let (name, wake) = (host.to_string(), wake.clone());
    let spawned = std::thread::Builder::new().name("twirl-resolve".into()).spawn(move || {
        let found = (name.as_str(), port).to_socket_addrs().and_then(|mut addrs| {
            addrs.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name}: no address")))
        });
        if let Ok(mut slot) = answer.lock() {
            *slot = Some(found);
        }
        wake(token);
    });
    match spawned {
        Ok(_) => {
            core.put_back(token, Box::new(resolving));
            Ok(token)
        }
        Err(e) => {
            core.remove(token);
            Err(e)
        }
    }
}
