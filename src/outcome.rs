//! Waiting for one result: a client runs the reactor until its protocol has
//! an answer, an error, or the time is up.
//!
//! An [`Outcome`] is a one-shot slot (a Deferred that fires once) shared
//! between the code that runs the reactor and the callbacks that fill it.
//! [`Reactor::run_until`](crate::Reactor::run_until) runs the loop until the slot is filled or a
//! timeout passes, then stops gracefully and hands the value back.
//! [`OneShot`] is the client factory that goes with it: it connects once,
//! and a failure to connect fills the outcome with the error.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use twirl::{Addr, Context, Disconnect, OneShot, Outcome, Protocol, Reactor, Transport};
//!
//! /// Sends a greeting and reports what came back before the server closed.
//! struct Hello {
//!     reply: Vec<u8>,
//!     done: Outcome<std::io::Result<Vec<u8>>>,
//! }
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, t: &mut dyn Transport) {
//!         t.write(b"hello");
//!         t.shutdown_write();
//!     }
//!     fn data_received(&mut self, data: &[u8], _: &mut dyn Transport) {
//!         self.reply.extend_from_slice(data);
//!     }
//!     fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) {
//!         self.done.set(Ok(std::mem::take(&mut self.reply)));
//!     }
//! }
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
//!         t.write(data);
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo)?.addr;
//! let done = Outcome::new();
//! let d = done.clone();
//! reactor.connect_tcp(addr, OneShot::new(done.clone(), move |_: &Addr| Hello { reply: Vec::new(), done: d }))?;
//! let reply = reactor.run_until(&done, Duration::from_secs(10))??;
//! assert_eq!(reply, b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::addr::Addr;
use crate::protocol::{ClientFactory, Protocol};
use crate::transport::{Context, Transport};

/// A value filled in once by a callback and taken by whoever runs the
/// reactor ([`crate::Reactor::run_until`]). Clones share the slot.
pub struct Outcome<T>(Rc<RefCell<Option<T>>>);

impl<T> Clone for Outcome<T> {
    fn clone(&self) -> Self {
        Outcome(self.0.clone())
    }
}

impl<T> Default for Outcome<T> {
    fn default() -> Self {
        Outcome(Rc::new(RefCell::new(None)))
    }
}

impl<T> Outcome<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills the slot; the first value wins. Returns false (and drops
    /// `value`) if it was already filled.
    pub fn set(&self, value: T) -> bool {
        let mut slot = self.0.borrow_mut();
        if slot.is_some() {
            return false;
        }
        *slot = Some(value);
        true
    }

    /// True once a value is in the slot (and not yet taken).
    pub fn is_set(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Takes the value out, leaving the slot empty.
    pub fn take(&self) -> Option<T> {
        self.0.borrow_mut().take()
    }
}

/// A [`ClientFactory`] for one connection attempt, no retries: builds the
/// protocol with `make` once connected; if connecting fails, fills
/// `outcome` with the error.
pub struct OneShot<F, T> {
    make: Option<F>,
    outcome: Outcome<io::Result<T>>,
}

impl<F, T> OneShot<F, T> {
    /// A factory that calls `make(peer)` once connected and reports a
    /// failure to connect through `outcome`.
    pub fn new(outcome: Outcome<io::Result<T>>, make: F) -> Self {
        OneShot { make: Some(make), outcome }
    }
}

impl<F, P, T> ClientFactory for OneShot<F, T>
where
    F: FnOnce(&Addr) -> P + 'static,
    P: Protocol,
    T: 'static,
{
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
        match self.make.take() {
            Some(make) => Box::new(make(peer)),
            // Only one attempt is ever made; a second connection gets nothing.
            None => Box::new(Refuse),
        }
    }

    fn connection_failed(&mut self, error: &io::Error, _: &mut dyn Context) -> Option<Duration> {
        self.outcome.set(Err(io::Error::new(error.kind(), error.to_string())));
        None
    }
}

/// Closes at once: what a one-shot factory builds if asked twice.
struct Refuse;

impl Protocol for Refuse {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.abort_connection();
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_wins_and_take_empties() {
        let o = Outcome::new();
        let shared = o.clone();
        assert!(!o.is_set());
        assert!(shared.set(1));
        assert!(!o.set(2));
        assert!(o.is_set());
        assert_eq!(o.take(), Some(1));
        assert_eq!(shared.take(), None);
    }
}
