//! Test support, like Twisted's `proto_helpers` and `task.Clock`: drive a
//! protocol with no socket, on a manual clock.
//!
//! [`Harness`] wraps a stream [`Protocol`] and an in-memory transport: feed
//! bytes, read what it wrote, advance time and watch timers fire, half-close,
//! stop the peer from reading to exercise flow control. [`DatagramHarness`]
//! does the same for a [`DatagramProtocol`]. Write buffering and the water
//! marks are the same code the reactor runs.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use twirl::{Protocol, Transport, testing::Harness};
//!
//! /// Says "bye" one second after connecting, then closes.
//! struct Bye;
//! impl Protocol for Bye {
//!     fn connection_made(&mut self, t: &mut dyn Transport) {
//!         t.call_later(Duration::from_secs(1), 0);
//!     }
//!     fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
//!     fn timer_fired(&mut self, _tag: u64, t: &mut dyn Transport) {
//!         t.write(b"bye\n");
//!         t.lose_connection();
//!     }
//! }
//!
//! let mut h = Harness::new(Bye);
//! h.connect();
//! h.advance(Duration::from_millis(999));
//! assert!(h.take_output().is_empty());
//! h.advance(Duration::from_millis(1));
//! assert_eq!(h.take_output(), b"bye\n");
//! assert!(h.is_closed());
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::flow::{Flow, Limits, WriteBuf};
use crate::protocol::{DatagramProtocol, Protocol};
use crate::timer::{TimerHandle, TimerQueue};
use crate::transport::{ConnId, Context, DatagramTransport, Disconnect, Transport};

/// The reactor side of the in-memory transports: a manual clock, timers, and
/// a record of what was asked of other connections and of the reactor.
pub struct MemoryContext {
    now: Instant,
    timers: TimerQueue<u64>,
    /// Writes to other connections, in order.
    pub writes_to: Vec<(ConnId, Vec<u8>)>,
    /// Other connections asked to close, in order.
    pub closed_others: Vec<ConnId>,
    /// Other connections aborted, in order.
    pub aborted_others: Vec<ConnId>,
    /// What `buffered_len_of` reports for other connections (unknown ones are not open).
    pub buffered_of: std::collections::HashMap<ConnId, usize>,
    /// Whether `stop_reactor` was called.
    pub stop_requested: bool,
}

impl MemoryContext {
    fn new() -> Self {
        let now = Instant::now();
        MemoryContext {
            now,
            timers: TimerQueue::new(now),
            writes_to: Vec::new(),
            closed_others: Vec::new(),
            aborted_others: Vec::new(),
            buffered_of: std::collections::HashMap::new(),
            stop_requested: false,
        }
    }

    /// Number of pending timers.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }
}

impl Context for MemoryContext {
    fn now(&self) -> Instant {
        self.now
    }
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerHandle {
        self.timers.schedule(self.now, delay, None, tag)
    }
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle {
        self.timers.schedule(self.now, interval, Some(interval), tag)
    }
    fn cancel_timer(&mut self, timer: TimerHandle) -> bool {
        self.timers.cancel(timer)
    }
    fn reschedule_timer(&mut self, timer: TimerHandle, delay: Duration) -> bool {
        self.timers.reschedule(self.now, timer, delay)
    }
    fn timer_active(&self, timer: TimerHandle) -> bool {
        self.timers.is_active(timer)
    }
    fn write_to(&mut self, conn: ConnId, data: &[u8]) -> bool {
        self.writes_to.push((conn, data.to_vec()));
        true
    }
    fn close_conn(&mut self, conn: ConnId) -> bool {
        self.closed_others.push(conn);
        true
    }
    fn abort_conn(&mut self, conn: ConnId) -> bool {
        self.aborted_others.push(conn);
        true
    }
    fn buffered_len_of(&self, conn: ConnId) -> Option<usize> {
        self.buffered_of.get(&conn).copied()
    }
    /// The in-memory context has no other connections to lend.
    fn with_conn(&mut self, _: ConnId, _: &mut dyn FnMut(&mut dyn Transport)) -> bool {
        false
    }
    fn stop_reactor(&mut self) {
        self.stop_requested = true;
    }
}

/// Moves `owner`'s manual clock forward by `by`, firing due timers in order,
/// each at its own deadline: both harnesses' `advance`. `fire` runs one
/// timer's callback and says whether the timer lives on (a repeating one is
/// then rescheduled).
fn advance_clock<T>(
    owner: &mut T,
    cx: fn(&mut T) -> &mut MemoryContext,
    by: Duration,
    mut fire: impl FnMut(&mut T, u64) -> bool,
) {
    let target = cx(owner).now + by;
    for _ in 0..1_000_000 {
        let c = cx(owner);
        let Some(deadline) = c.timers.next_deadline() else { break };
        if deadline > target {
            break;
        }
        c.now = c.now.max(deadline);
        let Some((handle, tag)) = c.timers.pop_due(deadline) else { break };
        if fire(owner, tag) {
            cx(owner).timers.restore(handle, tag);
        }
    }
    cx(owner).now = target;
}

/// Implements [`Context`] for a type by forwarding to one of its fields.
macro_rules! forward_context {
    ($ty:ty, $field:ident) => {
        impl $crate::transport::Context for $ty {
            fn now(&self) -> std::time::Instant {
                self.$field.now()
            }
            fn call_later(&mut self, delay: std::time::Duration, tag: u64) -> $crate::timer::TimerHandle {
                self.$field.call_later(delay, tag)
            }
            fn call_every(&mut self, interval: std::time::Duration, tag: u64) -> $crate::timer::TimerHandle {
                self.$field.call_every(interval, tag)
            }
            fn cancel_timer(&mut self, timer: $crate::timer::TimerHandle) -> bool {
                self.$field.cancel_timer(timer)
            }
            fn reschedule_timer(&mut self, timer: $crate::timer::TimerHandle, delay: std::time::Duration) -> bool {
                self.$field.reschedule_timer(timer, delay)
            }
            fn timer_active(&self, timer: $crate::timer::TimerHandle) -> bool {
                self.$field.timer_active(timer)
            }
            fn write_to(&mut self, conn: $crate::transport::ConnId, data: &[u8]) -> bool {
                self.$field.write_to(conn, data)
            }
            fn close_conn(&mut self, conn: $crate::transport::ConnId) -> bool {
                self.$field.close_conn(conn)
            }
            fn abort_conn(&mut self, conn: $crate::transport::ConnId) -> bool {
                self.$field.abort_conn(conn)
            }
            fn buffered_len_of(&self, conn: $crate::transport::ConnId) -> Option<usize> {
                self.$field.buffered_len_of(conn)
            }
            fn with_conn(
                &mut self,
                conn: $crate::transport::ConnId,
                f: &mut dyn FnMut(&mut dyn $crate::transport::Transport),
            ) -> bool {
                self.$field.with_conn(conn, f)
            }
            fn stop_reactor(&mut self) {
                self.$field.stop_reactor()
            }
        }
    };
}
pub(crate) use forward_context;

/// An in-memory stream transport: what the protocol writes lands in a vector.
pub struct MemoryTransport {
    /// The reactor side: clock, timers, other connections.
    pub cx: MemoryContext,
    output: Vec<u8>,
    wbuf: WriteBuf,
    limits: Limits,
    peer: Addr,
    peer_reading: bool,
    reading_paused: bool,
    closing: bool,
    write_shutdown: bool,
    abort: Option<Disconnect>,
}

forward_context!(MemoryTransport, cx);

impl Transport for MemoryTransport {
    fn id(&self) -> ConnId {
        ConnId(1)
    }
    fn write(&mut self, data: &[u8]) {
        if self.closing || self.write_shutdown || self.abort.is_some() {
            return;
        }
        if self.peer_reading && self.wbuf.is_empty() {
            self.output.extend_from_slice(data);
        } else if self.wbuf.would_exceed(data.len(), &self.limits) {
            self.abort =
                Some(Disconnect::HardCap { cap: self.limits.hard_cap, buffered: self.wbuf.len(), written: data.len() });
        } else {
            self.wbuf.push(data);
        }
    }
    fn lose_connection(&mut self) {
        self.closing = true;
    }
    fn abort_connection(&mut self) {
        self.abort = Some(Disconnect::Aborted);
    }
    fn is_closing(&self) -> bool {
        self.closing || self.abort.is_some()
    }
    fn shutdown_write(&mut self) {
        self.write_shutdown = true;
    }
    fn pause_reading(&mut self) {
        self.reading_paused = true;
    }
    fn resume_reading(&mut self) {
        self.reading_paused = false;
    }
    fn peer_addr(&self) -> Addr {
        self.peer.clone()
    }
    fn local_addr(&self) -> io::Result<Addr> {
        Ok(Addr::Inet(SocketAddr::from(([127, 0, 0, 1], 7000))))
    }
    fn buffered_len(&self) -> usize {
        self.wbuf.len()
    }
    fn writing_paused(&self) -> bool {
        self.wbuf.len() > self.limits.high_water
    }
    fn set_nodelay(&mut self, _nodelay: bool) -> io::Result<()> {
        Ok(())
    }
}

/// Where a harnessed connection stands.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum State {
    /// `connect` not called yet.
    New,
    /// Open.
    Open,
    /// `connection_lost` was called.
    Closed,
}

/// Drives one stream [`Protocol`] over a [`MemoryTransport`] on a manual clock.
pub struct Harness<P: Protocol> {
    /// The protocol under test, inspectable between steps.
    pub protocol: P,
    /// Its transport.
    pub transport: MemoryTransport,
    state: State,
    held: VecDeque<Vec<u8>>,
    eof_held: bool,
    lost: Option<Disconnect>,
}

impl<P: Protocol> Harness<P> {
    /// A harness with default [`Limits`] and peer `127.0.0.1:50000`.
    pub fn new(protocol: P) -> Self {
        Self::with_limits(protocol, Limits::default())
    }

    /// A harness with the given buffer limits.
    pub fn with_limits(protocol: P, limits: Limits) -> Self {
        Harness {
            protocol,
            transport: MemoryTransport {
                cx: MemoryContext::new(),
                output: Vec::new(),
                wbuf: WriteBuf::default(),
                limits,
                peer: Addr::Inet(SocketAddr::from(([127, 0, 0, 1], 50000))),
                peer_reading: true,
                reading_paused: false,
                closing: false,
                write_shutdown: false,
                abort: None,
            },
            state: State::New,
            held: VecDeque::new(),
            eof_held: false,
            lost: None,
        }
    }

    /// Sets the peer address the protocol will see.
    pub fn with_peer(mut self, peer: Addr) -> Self {
        self.transport.peer = peer;
        self
    }

    /// Calls `connection_made`.
    pub fn connect(&mut self) {
        if self.state == State::New {
            self.state = State::Open;
            self.protocol.connection_made(&mut self.transport);
            self.settle();
        }
    }

    /// Delivers bytes as one read (held back while reading is paused).
    pub fn feed(&mut self, data: &[u8]) {
        if self.state != State::Open || self.eof_held {
            return;
        }
        self.held.push_back(data.to_vec());
        self.settle();
    }

    /// Resumes reading from outside the protocol (as another part of the
    /// program would) and delivers what was held back.
    pub fn resume_reading(&mut self) {
        self.transport.reading_paused = false;
        self.settle();
    }

    /// The peer half-closes its writing side (`read_eof`).
    pub fn feed_eof(&mut self) {
        if self.state == State::Open {
            self.eof_held = true;
            self.settle();
        }
    }

    /// The connection drops (`connection_lost`) with the given reason.
    pub fn disconnect(&mut self, reason: Disconnect) {
        if self.state == State::Open {
            self.finish(reason);
        }
    }

    /// Moves the manual clock forward, firing due timers in order, each at its own deadline.
    pub fn advance(&mut self, by: Duration) {
        advance_clock(
            self,
            |h| &mut h.transport.cx,
            by,
            |h, tag| {
                if h.state != State::Open {
                    return false;
                }
                h.protocol.timer_fired(tag, &mut h.transport);
                h.settle();
                true
            },
        );
    }

    /// Simulates a peer that stops (false) or resumes (true) reading; while
    /// it does not read, writes accumulate in the transport's buffer.
    pub fn set_peer_reading(&mut self, reading: bool) {
        self.transport.peer_reading = reading;
        self.settle();
    }

    /// Lets a non-reading peer take `n` buffered bytes.
    pub fn drain(&mut self, n: usize) {
        let n = n.min(self.transport.wbuf.len());
        let pending = self.transport.wbuf.pending()[..n].to_vec();
        self.transport.output.extend_from_slice(&pending);
        self.transport.wbuf.consume(n);
        self.settle();
    }

    /// Takes everything the peer has received so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.transport.output)
    }

    /// [`take_output`](Self::take_output) as (lossy) UTF-8.
    pub fn take_text(&mut self) -> String {
        String::from_utf8_lossy(&self.take_output()).into_owned()
    }

    /// Where the connection stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once `connection_lost` was called.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The reason given to `connection_lost`.
    pub fn lost_reason(&self) -> Option<&Disconnect> {
        self.lost.as_ref()
    }

    /// True if the protocol half-closed its writing side.
    pub fn is_write_shutdown(&self) -> bool {
        self.transport.write_shutdown
    }

    /// True if the protocol paused reading.
    pub fn is_reading_paused(&self) -> bool {
        self.transport.reading_paused
    }

    fn finish(&mut self, reason: Disconnect) {
        self.state = State::Closed;
        self.protocol.connection_lost(&reason, &mut self.transport.cx);
        self.lost = Some(reason);
    }

    /// Applies what the last callback asked for, as the reactor would after it.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            if self.state != State::Open {
                return;
            }
            if let Some(e) = self.transport.abort.take() {
                self.transport.wbuf.clear();
                return self.finish(e);
            }
            if self.transport.peer_reading && !self.transport.wbuf.is_empty() {
                let all = self.transport.wbuf.len();
                self.drain(all);
                return;
            }
            match self.transport.wbuf.flow(&self.transport.limits) {
                Some(Flow::Pause) => {
                    self.protocol.pause_writing(&mut self.transport);
                    continue;
                }
                Some(Flow::Resume) => {
                    self.protocol.resume_writing(&mut self.transport);
                    continue;
                }
                None => {}
            }
            if self.transport.closing && self.transport.wbuf.is_empty() {
                return self.finish(Disconnect::Clean);
            }
            if self.transport.reading_paused || self.transport.closing {
                return;
            }
            if let Some(data) = self.held.pop_front() {
                self.protocol.data_received(&data, &mut self.transport);
                continue;
            }
            if self.eof_held {
                self.eof_held = false;
                self.protocol.read_eof(&mut self.transport);
                continue;
            }
            return;
        }
    }
}

/// An in-memory datagram transport: sent datagrams land in a vector.
pub struct MemoryDatagramTransport {
    /// The reactor side: clock, timers, other connections.
    pub cx: MemoryContext,
    /// Datagrams sent, with their destinations, in order.
    pub sent: Vec<(Vec<u8>, SocketAddr)>,
    local: SocketAddr,
    /// Multicast groups joined.
    pub groups: Vec<IpAddr>,
    /// Whether broadcast is allowed.
    pub broadcast: bool,
}

forward_context!(MemoryDatagramTransport, cx);

impl DatagramTransport for MemoryDatagramTransport {
    fn id(&self) -> ConnId {
        ConnId(1)
    }
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> bool {
        self.sent.push((data.to_vec(), to));
        true
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
    fn dropped(&self) -> u64 {
        0
    }
    fn set_broadcast(&mut self, on: bool) -> io::Result<()> {
        self.broadcast = on;
        Ok(())
    }
    fn join_multicast(&mut self, group: IpAddr, _: Option<IpAddr>, _: u32) -> io::Result<()> {
        self.groups.push(group);
        Ok(())
    }
    fn leave_multicast(&mut self, group: IpAddr, _: Option<IpAddr>, _: u32) -> io::Result<()> {
        self.groups.retain(|g| *g != group);
        Ok(())
    }
}

/// Drives one [`DatagramProtocol`] over a [`MemoryDatagramTransport`] on a manual clock.
///
/// ```
/// use std::net::SocketAddr;
/// use twirl::{DatagramProtocol, DatagramTransport, testing::DatagramHarness};
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, d: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
///         t.send_to(d, from);
///     }
/// }
/// let mut h = DatagramHarness::new(Echo);
/// let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
/// h.feed(b"ping", peer);
/// assert_eq!(h.take_sent(), vec![(b"ping".to_vec(), peer)]);
/// ```
pub struct DatagramHarness<P: DatagramProtocol> {
    /// The protocol under test.
    pub protocol: P,
    /// Its transport.
    pub transport: MemoryDatagramTransport,
    started: bool,
}

impl<P: DatagramProtocol> DatagramHarness<P> {
    /// A harness bound (in name) to `127.0.0.1:7000`.
    pub fn new(protocol: P) -> Self {
        DatagramHarness {
            protocol,
            transport: MemoryDatagramTransport {
                cx: MemoryContext::new(),
                sent: Vec::new(),
                local: SocketAddr::from(([127, 0, 0, 1], 7000)),
                groups: Vec::new(),
                broadcast: false,
            },
            started: false,
        }
    }

    /// Sets the address the socket reports as bound (in memory only).
    pub fn with_local(mut self, local: SocketAddr) -> Self {
        self.transport.local = local;
        self
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.protocol.started(&mut self.transport);
        }
    }

    /// Delivers one datagram from `from` (calling `started` first if needed).
    pub fn feed(&mut self, data: &[u8], from: SocketAddr) {
        self.start();
        self.protocol.datagram_received(data, from, &mut self.transport);
    }

    /// Moves the manual clock forward, firing due timers in order, each at its own deadline.
    pub fn advance(&mut self, by: Duration) {
        self.start();
        advance_clock(
            self,
            |h| &mut h.transport.cx,
            by,
            |h, tag| {
                h.protocol.timer_fired(tag, &mut h.transport);
                true
            },
        );
    }

    /// Takes the datagrams sent so far.
    pub fn take_sent(&mut self) -> Vec<(Vec<u8>, SocketAddr)> {
        std::mem::take(&mut self.transport.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Producer {
        paused: u32,
        resumed: u32,
    }
    impl Protocol for Producer {
        fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
            for _ in 0..data.len() {
                t.write(&[b'x'; 1000]);
            }
        }
        fn pause_writing(&mut self, _: &mut dyn Transport) {
            self.paused += 1;
        }
        fn resume_writing(&mut self, _: &mut dyn Transport) {
            self.resumed += 1;
        }
    }

    #[test]
    fn flow_control_pauses_and_resumes_on_the_marks() {
        let limits = Limits { high_water: 10_000, low_water: 2_000, hard_cap: 1_000_000 };
        let mut h = Harness::with_limits(Producer { paused: 0, resumed: 0 }, limits);
        h.connect();
        h.set_peer_reading(false);
        h.feed(&[0; 11]);
        assert_eq!(h.transport.buffered_len(), 11_000);
        assert_eq!((h.protocol.paused, h.protocol.resumed), (1, 0));
        h.drain(8_000);
        assert_eq!((h.protocol.paused, h.protocol.resumed), (1, 0), "3000 left is above low water");
        h.drain(1_000);
        assert_eq!((h.protocol.paused, h.protocol.resumed), (1, 1));
        assert_eq!(h.take_output().len(), 9_000);
    }

    #[test]
    fn hard_cap_aborts() {
        let limits = Limits { high_water: 1_000, low_water: 100, hard_cap: 5_000 };
        let mut h = Harness::with_limits(Producer { paused: 0, resumed: 0 }, limits);
        h.connect();
        h.set_peer_reading(false);
        h.feed(&[0; 6]);
        assert!(h.is_closed());
        assert!(matches!(h.lost_reason(), Some(Disconnect::HardCap { cap: 5_000, .. })), "{:?}", h.lost_reason());
    }

    struct PauseOnFirst(Vec<Vec<u8>>);
    impl Protocol for PauseOnFirst {
        fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
            self.0.push(data.to_vec());
            t.pause_reading();
        }
    }

    #[test]
    fn paused_reading_holds_data_until_resumed() {
        let mut h = Harness::new(PauseOnFirst(Vec::new()));
        h.connect();
        h.feed(b"a");
        h.feed(b"b");
        h.feed_eof();
        assert_eq!(h.protocol.0, vec![b"a".to_vec()]);
        h.resume_reading();
        assert_eq!(h.protocol.0, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(!h.is_closed());
        h.resume_reading();
        assert!(h.is_closed(), "eof delivered after the held data; default read_eof closes");
    }
}
