//! `portforward`: Twisted's `twist portforward`, a TCP (or Unix) relay.
//!
//! Every connection accepted opens one to the `to` endpoint (a required
//! option) and the two are piped into each other, byte for byte:
//!
//! ```text
//! $ twirl serve portforward@tcp:8000 to=tcp:127.0.0.1:7007 echo@tcp:7007
//! listening portforward on tcp:127.0.0.1:8000
//! listening echo on tcp:127.0.0.1:7007
//! $ twirl client echo tcp:127.0.0.1:8000 hello
//! hello
//! ```
//!
//! It answers four questions a relay must, each in a callback or two:
//!
//! - **Before the target answers**, the client may already be sending:
//!   its reading is paused in `connection_made` and resumed in the
//!   target's `connection_made`, so nothing is buffered meanwhile.
//! - **Backpressure**, both ways: once connected, each side is registered
//!   as the other's producer (`register_producer`, Twisted's
//!   `registerProducer`): when one side's write buffer passes its
//!   high-water mark the *other* side stops being read, and is read again
//!   below the low-water mark. A fast sender and a slow reader hold about
//!   two high-water marks per pair, not the whole transfer.
//! - **Half-close**: a side that ends its sending (`read_eof`) has the
//!   other side's writing shut after its buffer drains (`shutdown_write`),
//!   so the far end sees the same EOF and can still answer.
//! - **Endings**: a side that goes away closes the other after flushing
//!   (`close_conn`); a target that refuses or fails is logged, and the
//!   client closed at once.
//!
//! One struct, [`Relay`], plays both sides: each knows the id of the
//! other connection and which side it is.

use std::rc::Rc;

use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, ConnId, Context, Disconnect, Transport};

use crate::options::{OptionKind, OptionSpec, Options};
use crate::plugin::Plugin;

/// The `to` option: where each accepted connection is forwarded.
const TO: OptionSpec = OptionSpec {
    name: "to",
    meaning: "where to forward each connection",
    kind: OptionKind::StreamEndpoint,
    default: None,
};

/// Which connection of a pair a [`Relay`] serves.
enum Side {
    /// The accepted connection; it opens the other one to `to`.
    Client {
        /// The target endpoint.
        to: Rc<ClientEndpoint>,
    },
    /// The connection opened to the target, for the client `other`.
    Target {
        /// The target endpoint, for the log.
        to: Rc<ClientEndpoint>,
        /// True once connected (a loss before that is a failed connect).
        connected: bool,
    },
}

/// One side of a forwarded pair: relays what it reads to the other side.
pub struct Relay {
    side: Side,
    /// The other connection (the client's: once its connect has started).
    other: Option<ConnId>,
}

impl Relay {
    /// The accepted side of a pair forwarding to `to`.
    fn client(to: Rc<ClientEndpoint>) -> Relay {
        Relay { side: Side::Client { to }, other: None }
    }

    /// Runs `f` on the other side's transport, if it is still open.
    fn other(&self, cx: &mut dyn Context, f: &mut dyn FnMut(&mut dyn Transport)) {
        if let Some(other) = self.other {
            cx.with_conn(other, f);
        }
    }
}

impl twirl::Protocol for Relay {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        match &mut self.side {
            Side::Client { to } => {
                // Nothing can be written to the target until it connects:
                // hold the client's bytes in its socket meanwhile.
                t.pause_reading();
                let target = Relay { side: Side::Target { to: to.clone(), connected: false }, other: Some(t.id()) };
                match t.connect(to, Box::new(target)) {
                    Ok(id) => self.other = Some(id),
                    Err(e) => {
                        log::warn!("portforward: cannot connect to {to}: {e}; closing {}", t.peer_addr());
                        t.abort_connection();
                    }
                }
            }
            Side::Target { connected, .. } => {
                *connected = true;
                if let Some(client) = self.other {
                    t.register_producer(t.id(), client);
                    t.register_producer(client, t.id());
                }
                self.other(t, &mut |client| client.resume_reading());
            }
        }
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if let Some(other) = self.other {
            t.write_to(other, data);
        }
    }

    /// This side sent its last byte: so does the other side, once drained.
    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.other(t, &mut |other| other.shutdown_write());
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        if let Side::Target { to, connected: false } = &self.side {
            // Refused or failed (an I/O error); otherwise the client left
            // first and cancelled the connect.
            if reason.io_error().is_some() {
                log::warn!("portforward: cannot connect to {to}: {reason}; closing the client");
            }
            if let Some(client) = self.other {
                cx.abort_conn(client);
            }
            return;
        }
        if let Some(other) = self.other {
            cx.close_conn(other);
        }
    }
}

/// The factory: one [`Relay`] per accepted connection, all forwarding to
/// the `to` option.
fn factory(options: &Options) -> Box<dyn twirl::Factory> {
    match options.endpoint(TO.name) {
        Some(to) => {
            let to = Rc::new(to.clone());
            Box::new(move |_: &Addr| Relay::client(to.clone()))
        }
        // `twirl serve` refuses a spec without `to` before binding; a
        // listener built some other way closes every connection.
        None => Box::new(|_: &Addr| Refuse),
    }
}

/// Closes at once: a portforward without `to` has nowhere to forward.
struct Refuse;

impl twirl::Protocol for Refuse {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        log::warn!("portforward: no 'to' option; closing {}", t.peer_addr());
        t.abort_connection();
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "portforward",
    summary: "relays each connection to the 'to' endpoint, both ways (Twisted's portforward)",
    lab: "Twisted's twist portforward",
    defaults: &[],
    options: &[TO],
    stream: Some(factory),
    datagram: None,
    client: None,
    client_flags: &[],
    samples: &[],
    raw: None,
};
