//! Factories that run what another factory builds under TLS: a server's
//! ([`TlsFactory`]) and a client's ([`TlsClientFactory`]).

use std::io;
use std::time::Duration;

use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;

use super::config::{TlsClient, TlsServer};
use super::layer::TlsLayer;
use super::session::TlsConnection;
use crate::addr::Addr;
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::transport::{Context, Disconnect, Transport};

/// Wraps every protocol `factory` builds in a server-side [`TlsLayer`]:
/// pass it to `Reactor::listen_tcp` (or `listen_stream`).
pub struct TlsFactory {
    tls: TlsServer,
    inner: Box<dyn Factory>,
}

impl TlsFactory {
    /// Runs `inner`'s protocols under `tls`.
    pub fn new(tls: TlsServer, inner: Box<dyn Factory>) -> TlsFactory {
        TlsFactory { tls, inner }
    }
}

impl Factory for TlsFactory {
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
        let inner = self.inner.build_protocol(peer);
        match UnbufferedServerConnection::new(self.tls.config.clone()) {
            Ok(conn) => Box::new(TlsLayer::new(TlsConnection::Server(conn), inner, self.tls.handshake_timeout)),
            Err(e) => Box::new(Refused { error: Some(io::Error::other(e)), inner, client: false }),
        }
    }
}

/// Wraps the protocol `factory` builds in a client-side [`TlsLayer`]; the
/// retries stay `factory`'s. Pass it to `Reactor::connect_tcp`.
pub struct TlsClientFactory {
    tls: TlsClient,
    inner: Box<dyn ClientFactory>,
}

impl TlsClientFactory {
    /// Runs `inner`'s protocol under `tls`.
    pub fn new(tls: TlsClient, inner: Box<dyn ClientFactory>) -> TlsClientFactory {
        TlsClientFactory { tls, inner }
    }
}

impl ClientFactory for TlsClientFactory {
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
        let inner = self.inner.build_protocol(peer);
        match UnbufferedClientConnection::new(self.tls.config.clone(), self.tls.name.clone()) {
            Ok(conn) => Box::new(TlsLayer::new(TlsConnection::Client(conn), inner, self.tls.handshake_timeout)),
            Err(e) => Box::new(Refused { error: Some(io::Error::other(e)), inner, client: true }),
        }
    }

    fn connection_failed(&mut self, error: &io::Error, cx: &mut dyn Context) -> Option<Duration> {
        self.inner.connection_failed(error, cx)
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) -> Option<Duration> {
        self.inner.connection_lost(reason, cx)
    }
}

/// Stands in for a layer rustls would not create: closes at once and
/// tells a client's protocol why.
struct Refused {
    error: Option<io::Error>,
    inner: Box<dyn Protocol>,
    client: bool,
}

impl Protocol for Refused {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        if let Some(e) = &self.error {
            log::warn!("{}: cannot start TLS: {e}", t.id());
        }
        t.abort_connection();
    }

    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        if self.client {
            let why = self.error.take().map(Disconnect::Tls);
            self.inner.connection_lost(why.as_ref().unwrap_or(reason), cx);
        }
    }
}
