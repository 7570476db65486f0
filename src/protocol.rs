//! The callbacks a plugin implements: [`Protocol`] per connection, [`Factory`]
//! per listener, [`ClientFactory`] per outgoing connection, and
//! [`DatagramProtocol`] per UDP socket. Every method but the one that receives
//! data has a default, so a plugin writes only what it needs.
//!
//! # Examples
//!
//! An echo protocol (RFC 862) is one method:
//!
//! ```
//! use twirl::{Protocol, Transport};
//!
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
//!         t.write(data);
//!     }
//! }
//!
//! let mut h = twirl::testing::Harness::new(Echo);
//! h.connect();
//! h.feed(b"hello");
//! assert_eq!(h.take_output(), b"hello");
//! ```

use std::io;
use std::time::Duration;

use crate::addr::Addr;
use crate::transport::{Context, Disconnect};
/// The protocol traits live beside the transports they are handed (a
/// context can open a connection or a socket for a new protocol, so the
/// two are one definition); they are a plugin's to implement, so they are
/// named here too.
pub use crate::transport::{DatagramProtocol, Protocol};

/// Builds one [`Protocol`] per accepted connection (Twisted's `Factory`).
///
/// Any `FnMut(&Addr) -> P` closure is a factory:
///
/// ```
/// use twirl::{Addr, Factory, Protocol, Transport};
/// struct Hello(Addr);
/// impl Protocol for Hello {
///     fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
/// }
/// fn takes_factory(_: impl Factory) {}
/// takes_factory(|peer: &Addr| Hello(peer.clone()));
/// ```
pub trait Factory: 'static {
    /// A new protocol for a connection from `peer`.
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol>;
}

impl<F, P> Factory for F
where
    F: FnMut(&Addr) -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
        Box::new(self(peer))
    }
}

/// Builds the protocol for an outgoing connection and decides about retries
/// (Twisted's `ClientFactory`; see [`crate::Reconnecting`] for back-off).
pub trait ClientFactory: 'static {
    /// The connection to `peer` is established.
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol>;

    /// Connecting failed. Return a delay to try again, or `None` to give up
    /// (`cx` can stop the reactor, as a one-shot client usually does).
    fn connection_failed(&mut self, error: &io::Error, cx: &mut dyn Context) -> Option<Duration> {
        let _ = (error, cx);
        None
    }

    /// An established connection ended (after the protocol's
    /// `connection_lost`). Return a delay to reconnect, or `None`.
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) -> Option<Duration> {
        let _ = (reason, cx);
        None
    }
}
