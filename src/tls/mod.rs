//! TLS for any stream protocol, on rustls (with the *ring* provider).
//!
//! A protocol runs under TLS without knowing: [`TlsLayer`] wraps it the way
//! Twisted's `TLSMemoryBIOProtocol` does, decrypting what arrives and
//! encrypting what it writes. The wrapped protocol's `connection_made`
//! comes once the handshake has finished; the peer's close_notify is its
//! `read_eof`; `lose_connection` sends close_notify after what was written;
//! a peer that closes without close_notify ends the connection with
//! [`Disconnect::Truncated`](crate::Disconnect::Truncated), a failed or
//! timed-out handshake with [`Disconnect::Tls`](crate::Disconnect::Tls)
//! (which a client's protocol hears in `connection_lost`).
//!
//! Endpoints do it all: `tls:PORT:cert=PATH:key=PATH` to listen
//! ([`Reactor::listen_stream`](crate::Reactor::listen_stream)),
//! `tls:HOST:PORT[:ca=PATH][:name=SNI]` to connect
//! ([`Reactor::connect`](crate::Reactor::connect),
//! [`Context::connect`](crate::Context::connect)). With a factory at hand,
//! [`server`] and [`client`] wrap it.
//!
//! The layer's own timers use the tags `u64::MAX` and `u64::MAX - 1`; a
//! wrapped protocol's other tags pass through.
//!
//! # Examples
//!
//! ```no_run
//! use twirl::{Addr, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
//!         t.write(data);
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! // A server: the certificate and key `twirl cert c` wrote.
//! let tls = twirl::tls::TlsServer::from_pem_files("c/cert.pem", "c/key.pem")?;
//! reactor.listen_tcp("127.0.0.1:7443".parse().unwrap(), twirl::tls::server(tls, |_: &Addr| Echo))?;
//! // Or by endpoint, from a string.
//! let ep = "tls:7444:cert=c/cert.pem:key=c/key.pem".parse().unwrap();
//! reactor.listen_stream(&ep, Box::new(|_: &Addr| Echo), twirl::ListenOptions::new("echo"))?;
//! reactor.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod config;
mod factory;
mod inner;
mod layer;
#[cfg(test)]
mod tests;

pub use config::{DEFAULT_HANDSHAKE_TIMEOUT, TlsClient, TlsServer, load_certs, load_key};
pub use factory::{TlsClientFactory, TlsFactory};
pub use layer::TlsLayer;
/// The rustls crate, re-exported for configurations built by hand.
pub use rustls;

use crate::protocol::{ClientFactory, Factory};

/// Runs `factory`'s protocols under TLS as a server: pass the result to
/// `Reactor::listen_tcp`.
pub fn server(tls: TlsServer, factory: impl Factory) -> TlsFactory {
    TlsFactory::new(tls, Box::new(factory))
}

/// Runs `factory`'s protocol under TLS as a client: pass the result to
/// `Reactor::connect_tcp`.
pub fn client(tls: TlsClient, factory: impl ClientFactory) -> TlsClientFactory {
    TlsClientFactory::new(tls, Box::new(factory))
}
