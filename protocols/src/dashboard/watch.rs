//! Counting one listener's connections for the dashboard: a factory
//! wrapper ([`Watched`]) whose protocols ([`WatchedConn`]) pass every
//! callback on unchanged and keep a [`Tally`] on the way: accepted,
//! open (their ids), closed, and the pauses and resumes of their output.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use twirl::{Addr, ConnId, Context, Disconnect, Factory, Protocol, Transport};

/// One listener's counters, shared by its factory and its protocols.
#[derive(Debug, Default)]
pub struct Tally {
    /// The plugin's name.
    pub name: String,
    /// Where it listens, as bound.
    pub endpoint: String,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections ended.
    pub closed: u64,
    /// `pause_writing` calls (output past the high-water mark).
    pub pauses: u64,
    /// `resume_writing` calls (output below the low-water mark again).
    pub resumes: u64,
    /// The ids of its open connections.
    pub open: BTreeSet<ConnId>,
}

/// A shared [`Tally`].
pub type SharedTally = Rc<RefCell<Tally>>;

/// A factory that counts what the factory it wraps builds.
pub struct Watched {
    inner: Box<dyn Factory>,
    tally: SharedTally,
}

impl Watched {
    /// Wraps `inner`, counting into `tally`.
    pub fn new(inner: Box<dyn Factory>, tally: SharedTally) -> Watched {
        Watched { inner, tally }
    }
}

impl Factory for Watched {
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
        self.tally.borrow_mut().accepted += 1;
        Box::new(WatchedConn { inner: self.inner.build_protocol(peer), tally: self.tally.clone(), id: None })
    }
}

/// A protocol that counts, then does what the protocol it wraps does.
pub struct WatchedConn {
    inner: Box<dyn Protocol>,
    tally: SharedTally,
    id: Option<ConnId>,
}

impl Protocol for WatchedConn {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.id = Some(t.id());
        self.tally.borrow_mut().open.insert(t.id());
        self.inner.connection_made(t);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        self.inner.data_received(data, t);
    }
    fn data_received_mut(&mut self, data: &mut [u8], t: &mut dyn Transport) {
        self.inner.data_received_mut(data, t);
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.inner.read_eof(t);
    }
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        {
            let mut tally = self.tally.borrow_mut();
            tally.closed += 1;
            if let Some(id) = self.id {
                tally.open.remove(&id);
            }
        }
        self.inner.connection_lost(reason, cx);
    }
    fn pause_writing(&mut self, t: &mut dyn Transport) {
        self.tally.borrow_mut().pauses += 1;
        self.inner.pause_writing(t);
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.tally.borrow_mut().resumes += 1;
        self.inner.resume_writing(t);
    }
    fn drained(&mut self, t: &mut dyn Transport) {
        self.inner.drained(t);
    }
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        self.inner.timer_fired(tag, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::testing::Harness;

    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, d: &[u8], t: &mut dyn Transport) {
            t.write(d);
        }
    }

    #[test]
    fn counts_and_passes_everything_on() {
        let tally = SharedTally::default();
        let mut f = Watched::new(Box::new(|_: &Addr| Echo), tally.clone());
        let peer = Addr::Inet("127.0.0.1:1".parse().unwrap());
        let limits = twirl::Limits { high_water: 4, low_water: 2, hard_cap: 1 << 20 };
        let mut h = Harness::with_limits(f.build_protocol(&peer), limits);
        h.connect();
        assert_eq!((tally.borrow().accepted, tally.borrow().open.len()), (1, 1));
        h.set_peer_reading(false);
        h.feed(b"hello");
        assert_eq!(tally.borrow().pauses, 1);
        h.set_peer_reading(true);
        assert_eq!(h.take_output(), b"hello");
        assert_eq!(tally.borrow().resumes, 1);
        h.feed_eof();
        assert!(h.is_closed());
        assert_eq!((tally.borrow().closed, tally.borrow().open.len()), (1, 0));
    }
}
