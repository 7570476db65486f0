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
//! The layer drives rustls through its unbuffered API: ciphertext waits in
//! the layer's own buffer, where rustls decrypts it in place, and an idle
//! connection keeps no more than a partial record's worth. (rustls's own
//! receive buffer put the block it copies each record into 11 bytes past
//! the record under glibc's malloc, where glibc's `memcpy` runs ~25x slower
//! on AMD Zen: README § Performance, TLS, has the story and the figures.)
//!
//! # Examples
//!
//! An echo server and a client that greets it, both under TLS (this runs as
//! a test; the certificate is made with `rcgen`, as `twirl cert` does):
//!
//! ```
//! use std::time::Duration;
//! use twirl::endpoint::{ClientEndpoint, ServerEndpoint};
//! use twirl::{Addr, Context, Disconnect, ListenOptions, OneShot, Outcome, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
//!         t.write(data);
//!     }
//! }
//!
//! /// Says hello, closes (close_notify), and reports what came back.
//! struct Hello(Vec<u8>, Outcome<std::io::Result<Vec<u8>>>);
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, t: &mut dyn Transport) {
//!         t.write(b"hello over tls");
//!         t.shutdown_write();
//!     }
//!     fn data_received(&mut self, data: &[u8], _: &mut dyn Transport) {
//!         self.0.extend_from_slice(data);
//!     }
//!     fn connection_lost(&mut self, why: &Disconnect, _: &mut dyn Context) {
//!         self.1.set(why.to_io_error().map_or(Ok(std::mem::take(&mut self.0)), Err));
//!     }
//! }
//!
//! # let dir = std::env::temp_dir().join(format!("twirl-tls-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
//! # std::fs::write(dir.join("cert.pem"), made.cert.pem())?;
//! # std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem())?;
//! # let c = dir.display();
//! let mut reactor = Reactor::new()?;
//! // Listen: a tls: endpoint (or `twirl::tls::server(TlsServer::from_pem_files(..)?, factory)`).
//! let at: ServerEndpoint = format!("tls:0:cert={c}/cert.pem:key={c}/key.pem").parse().unwrap();
//! let bound = reactor.listen_stream(&at, Box::new(|_: &Addr| Echo), ListenOptions::new("echo"))?;
//! let ServerEndpoint::Tls(bound) = bound.addr else { unreachable!() };
//!
//! // Connect: a tls: endpoint, verified against the certificate as CA.
//! let to: ClientEndpoint = format!("tls:localhost:{}:ca={c}/cert.pem", bound.addr.port()).parse().unwrap();
//! let done = Outcome::new();
//! let d = done.clone();
//! reactor.connect(&to, OneShot::new(done.clone(), move |_: &Addr| Hello(Vec::new(), d)))?;
//! assert_eq!(reactor.run_until(&done, Duration::from_secs(10))??, b"hello over tls");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod config;
mod factory;
mod inner;
mod layer;
mod outbox;
mod page;
mod session;
#[cfg(test)]
mod tests;

pub use config::{DEFAULT_HANDSHAKE_TIMEOUT, TlsClient, TlsServer, load_certs, load_key};
pub use factory::{TlsClientFactory, TlsFactory};
pub use layer::TlsLayer;
/// The rustls crate, re-exported for configurations built by hand.
pub use rustls;
pub use session::TlsConnection;

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
