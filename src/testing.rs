//! Test support, like Twisted's `proto_helpers` and `task.Clock`: drive a
//! protocol with no socket, on a manual clock.
//!
//! [`Harness`] wraps a stream [`Protocol`] and an in-memory pipe: feed
//! bytes, read what it wrote, advance time and watch timers fire, half-close,
//! stop the peer from reading to exercise flow control. It runs the
//! reactor's own connection state machine over that pipe: writes, buffering,
//! the water marks, pausing, half-close, the lingering close and the end of
//! the connection are the same code on a socket and here. [`DatagramHarness`]
//! does the same for a [`DatagramProtocol`].
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
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::core::{Config, Host, Readiness, TimerKind};
use crate::flow::{Cork, Limits};
use crate::policy::Policy;
use crate::protocol::{DatagramProtocol, Protocol};
use crate::source::conn::machine::{self, ConnIo};
use crate::source::socket::Pipe;
use crate::stats::Stats;
use crate::timer::{TimerHandle, TimerQueue};
use crate::transport::{ConnId, Context, DatagramTransport, Disconnect, ListenerId, Transport};

/// The reactor side of the in-memory transports: a manual clock, timers, and
/// a record of what was asked of other connections and of the reactor.
pub struct MemoryContext {
    now: Instant,
    epoch: Instant,
    timers: TimerQueue<(TimerKind, u64)>,
    /// Timers the harnessed protocol set, cancelled when it ends.
    own: Vec<TimerHandle>,
    again: bool,
    stats: Stats,
    cork: Cork,
    config: Config,
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
    /// Connections opened with [`Context::connect`], in order: where to,
    /// and the protocol, for the test to drive (in a `Harness` of its own,
    /// say). Their ids are `ConnId::from_raw(1_000_000 + index)`.
    pub connects: Vec<(crate::endpoint::ClientEndpoint, Box<dyn Protocol>)>,
    /// UDP sockets opened with [`Context::connect_udp`], in order; their
    /// ids are `ConnId::from_raw(2_000_000 + index)`.
    pub udp_connects: Vec<(crate::endpoint::ClientEndpoint, Box<dyn DatagramProtocol>)>,
    /// Listeners and sockets closed with [`Context::stop_listening`], in order.
    pub stopped_listening: Vec<ListenerId>,
    /// The harnessed connection's producer (`register_producer` with its
    /// own id as the consumer).
    pub producer: Option<ConnId>,
    /// What its producer was told, in order: `(producer, paused)`.
    pub producer_flow: Vec<(ConnId, bool)>,
}

impl MemoryContext {
    fn new(config: Config) -> Self {
        let now = Instant::now();
        MemoryContext {
            now,
            epoch: now,
            timers: TimerQueue::new(now),
            own: Vec::new(),
            again: false,
            stats: Stats::default(),
            cork: Cork::default(),
            config,
            writes_to: Vec::new(),
            closed_others: Vec::new(),
            aborted_others: Vec::new(),
            buffered_of: std::collections::HashMap::new(),
            stop_requested: false,
            connects: Vec::new(),
            udp_connects: Vec::new(),
            stopped_listening: Vec::new(),
            producer: None,
            producer_flow: Vec::new(),
        }
    }

    /// Number of pending timers.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// The counters the harnessed connection kept, as the reactor's would.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Context for MemoryContext {
    fn now(&self) -> Instant {
        self.now
    }
    fn stats_mut(&mut self) -> Option<&mut Stats> {
        Some(&mut self.stats)
    }
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerHandle {
        self.schedule(delay, None, TimerKind::Proto, tag)
    }
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle {
        self.schedule(interval, Some(interval), TimerKind::Proto, tag)
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
    fn register_producer(&mut self, _consumer: ConnId, producer: ConnId) -> bool {
        self.producer = Some(producer);
        true
    }
    fn unregister_producer(&mut self, _consumer: ConnId) {
        self.producer = None;
    }
    fn connect(&mut self, to: &crate::endpoint::ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<ConnId> {
        self.connects.push((to.clone(), protocol));
        Ok(ConnId(1_000_000 + self.connects.len() as u64 - 1))
    }
    fn connect_udp(
        &mut self,
        to: &crate::endpoint::ClientEndpoint,
        protocol: Box<dyn DatagramProtocol>,
    ) -> io::Result<ConnId> {
        self.udp_connects.push((to.clone(), protocol));
        Ok(ConnId(2_000_000 + self.udp_connects.len() as u64 - 1))
    }
    fn stop_listening(&mut self, id: ListenerId) -> bool {
        self.stopped_listening.push(id);
        true
    }
}

impl Host for MemoryContext {
    fn stats(&mut self) -> &mut Stats {
        &mut self.stats
    }
    fn cork(&mut self) -> (&mut Cork, &mut Stats) {
        (&mut self.cork, &mut self.stats)
    }
    fn config(&self) -> &Config {
        &self.config
    }
    fn schedule(&mut self, delay: Duration, interval: Option<Duration>, kind: TimerKind, tag: u64) -> TimerHandle {
        let h = self.timers.schedule(self.now, delay, interval, (kind, tag));
        if self.own.len() >= 4 && self.own.len().is_power_of_two() {
            let timers = &self.timers;
            self.own.retain(|h| timers.is_active(*h));
        }
        self.own.push(h);
        h
    }
    fn again(&mut self) {
        self.again = true;
    }
    fn cancel_own_timers(&mut self) {
        for h in std::mem::take(&mut self.own) {
            self.timers.cancel(h);
        }
    }
    fn clock_ms(&self) -> u32 {
        self.now.saturating_duration_since(self.epoch).as_millis() as u32
    }
    /// The reactor sweeps all its connections at this interval; the one
    /// harnessed connection gets the same check from a timer of its own.
    fn producer_flow(&mut self, paused: bool) {
        if let Some(producer) = self.producer {
            self.producer_flow.push((producer, paused));
        }
    }
    fn watch_idle(&mut self, after: Duration) {
        let every = crate::core::idle::sweep_interval(after);
        self.schedule(every, Some(every), TimerKind::Idle, 0);
    }
}

/// Moves `owner`'s manual clock forward by `by`, firing due timers in order,
/// each at its own deadline: both harnesses' `advance`. `fire` runs one
/// timer and says whether it lives on (a repeating one is then rescheduled).
fn advance_clock<T>(
    owner: &mut T,
    cx: fn(&mut T) -> &mut MemoryContext,
    by: Duration,
    mut fire: impl FnMut(&mut T, (TimerKind, u64)) -> bool,
) {
    let target = cx(owner).now + by;
    for _ in 0..1_000_000 {
        let c = cx(owner);
        let Some(deadline) = c.timers.next_deadline() else { break };
        if deadline > target {
            break;
        }
        c.now = c.now.max(deadline);
        let Some((handle, timer)) = c.timers.pop_due(deadline) else { break };
        if fire(owner, timer) {
            cx(owner).timers.restore(handle, timer);
        } else {
            cx(owner).timers.cancel(handle);
        }
    }
    cx(owner).now = target;
}

/// The peer's end of a harnessed connection: bytes fed wait in `input`,
/// bytes written land in `output` while the peer reads, and otherwise the
/// pipe is full (`WouldBlock`) but for what [`Harness::drain`] lets through.
struct MemoryPipe {
    input: VecDeque<Vec<u8>>,
    eof: bool,
    output: Vec<u8>,
    peer_reading: bool,
    credit: usize,
    write_shut: bool,
    /// TCP_NODELAY, as the protocol last set it.
    nodelay: bool,
}

impl Pipe for MemoryPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Like a socket, a read takes what is queued, across feeds, up to
        // the buffer's size.
        let mut n = 0;
        while n < buf.len() {
            let Some(chunk) = self.input.front_mut() else { break };
            let take = chunk.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&chunk[..take]);
            chunk.drain(..take);
            if chunk.is_empty() {
                self.input.pop_front();
            }
            n += take;
        }
        match n {
            0 if self.eof => Ok(0),
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.write_shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = if self.peer_reading { buf.len() } else { buf.len().min(self.credit) };
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.credit -= n.min(self.credit);
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // As a socket does: the pieces in order, as far as there is room.
        let mut n = 0;
        for buf in bufs {
            match self.write(buf) {
                Ok(k) => {
                    n += k;
                    if k < buf.len() {
                        break;
                    }
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }
    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        // As sendfile does: from the file to the peer, as far as there is
        // room; 0 at the file's end.
        use std::os::unix::fs::FileExt;
        let mut chunk = vec![0; len.min(64 * 1024)];
        let n = file.read_at(&mut chunk, offset)?;
        if n == 0 {
            return Ok(0);
        }
        self.write(&chunk[..n])
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.write_shut = true;
        Ok(())
    }
    fn take_error(&mut self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }
    fn local_addr(&self) -> io::Result<Addr> {
        Ok(Addr::Inet(SocketAddr::from(([127, 0, 0, 1], 7000))))
    }
    fn set_nodelay(&mut self, on: bool) -> io::Result<()> {
        self.nodelay = on;
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

/// Drives one stream [`Protocol`] over an in-memory pipe on a manual clock,
/// with the reactor's own connection state machine.
///
/// The simulated peer reads everything unless told not to
/// ([`set_peer_reading`](Self::set_peer_reading)), and answers the
/// protocol's close with its own, as a client that reads until EOF does
/// ([`set_peer_closes`](Self::set_peer_closes)); until it does, a closing
/// connection lingers as it would on a socket.
pub struct Harness<P: Protocol> {
    /// The protocol under test, inspectable between steps.
    pub protocol: P,
    /// The reactor side: clock, timers, other connections.
    pub cx: MemoryContext,
    io: ConnIo<MemoryPipe>,
    state: State,
    lost: Option<Disconnect>,
    peer_closes: bool,
    read_buf: Vec<u8>,
}

impl<P: Protocol> Harness<P> {
    /// A harness with default [`Limits`] and peer `127.0.0.1:50000`.
    pub fn new(protocol: P) -> Self {
        Self::with_limits(protocol, Limits::default())
    }

    /// A harness with the given buffer limits.
    pub fn with_limits(protocol: P, limits: Limits) -> Self {
        Self::with_config(protocol, Config { limits, ..Config::default() })
    }

    /// A harness with the given reactor configuration (read size and
    /// budgets, lingering close, limits).
    pub fn with_config(protocol: P, config: Config) -> Self {
        let pipe = MemoryPipe {
            input: VecDeque::new(),
            eof: false,
            output: Vec::new(),
            peer_reading: true,
            credit: 0,
            write_shut: false,
            nodelay: false,
        };
        let peer = Addr::Inet(SocketAddr::from(([127, 0, 0, 1], 50000)));
        let policy = Rc::new(Policy::plain("harness", config.limits));
        let read_buf = vec![0; crate::core::stream_read_buffer(&config)];
        Harness {
            protocol,
            cx: MemoryContext::new(config),
            io: ConnIo::new(ConnId(1), pipe, peer, policy),
            state: State::New,
            lost: None,
            peer_closes: true,
            read_buf,
        }
    }

    /// Sets the peer address the protocol will see.
    pub fn with_peer(mut self, peer: Addr) -> Self {
        self.io.peer = peer.into();
        self
    }

    /// Gives the connection an idle timeout, as a listener's
    /// [`ListenOptions::idle_timeout`](crate::ListenOptions::idle_timeout)
    /// does: silent for `after` (or, once the protocol reports whole
    /// messages with [`Transport::progress`], without a whole message), it
    /// is closed. Checked as often as the reactor's sweep would.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twirl::{Disconnect, Protocol, Transport, testing::Harness};
    /// struct Quiet;
    /// impl Protocol for Quiet {
    ///     fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    /// }
    /// let mut h = Harness::new(Quiet).with_idle_timeout(Duration::from_secs(2));
    /// h.connect();
    /// h.advance(Duration::from_millis(1500));
    /// h.feed(b"still here");
    /// h.advance(Duration::from_millis(1900));
    /// assert!(!h.is_closed(), "silent for 1.9 s only");
    /// h.advance(Duration::from_millis(400));
    /// assert!(matches!(h.lost_reason(), Some(Disconnect::Idle { .. })));
    /// ```
    pub fn with_idle_timeout(mut self, after: Duration) -> Self {
        let opts = crate::ListenOptions {
            limits: self.io.policy.limits,
            idle_timeout: Some(after),
            ..crate::ListenOptions::new("harness")
        };
        self.io.policy = Rc::new(Policy::listener(&opts));
        self
    }

    /// Calls `connection_made`.
    pub fn connect(&mut self) {
        if self.state == State::New {
            self.state = State::Open;
            machine::start_idle(&mut self.io, &mut self.cx);
            let ended = machine::start(&mut self.protocol, &mut self.io, &mut self.cx);
            self.step(ended);
        }
    }

    /// Delivers bytes as one read (held back while reading is paused).
    pub fn feed(&mut self, data: &[u8]) {
        if self.state != State::Open || self.io.pipe.eof || data.is_empty() {
            return;
        }
        self.io.pipe.input.push_back(data.to_vec());
        self.ready(Readiness { readable: true, ..Readiness::default() });
    }

    /// Resumes reading from outside the protocol (as another part of the
    /// program would) and delivers what was held back.
    pub fn resume_reading(&mut self) {
        self.with_transport(|t| t.resume_reading());
    }

    /// Runs `f` with the transport from outside the protocol's callbacks
    /// (as a timer or another thread would through the reactor).
    pub fn with_transport(&mut self, mut f: impl FnMut(&mut dyn Transport)) {
        if self.state == State::Open {
            let ended = machine::with_transport(&mut self.protocol, &mut self.io, &mut self.cx, &mut f);
            self.step(ended);
        }
    }

    /// The peer half-closes its writing side (`read_eof`).
    pub fn feed_eof(&mut self) {
        if self.state == State::Open && !self.io.pipe.eof {
            self.io.pipe.eof = true;
            self.ready(Readiness { readable: true, read_closed: true, ..Readiness::default() });
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
            |h| &mut h.cx,
            by,
            |h, (kind, tag)| {
                if h.state != State::Open {
                    return false;
                }
                let ended = machine::timer(&mut h.protocol, &mut h.io, &mut h.cx, kind, tag);
                h.settle_turn(ended);
                h.state == State::Open
            },
        );
    }

    /// Whether the protocol turned Nagle's algorithm off (`set_nodelay`),
    /// as a socket would keep it.
    pub fn nodelay(&self) -> bool {
        self.io.pipe.nodelay
    }

    /// Simulates a peer that stops (false) or resumes (true) reading; while
    /// it does not read, writes accumulate in the connection's buffer.
    pub fn set_peer_reading(&mut self, reading: bool) {
        self.io.pipe.peer_reading = reading;
        if reading {
            self.ready(Readiness { writable: true, ..Readiness::default() });
        }
    }

    /// Whether the peer answers the protocol's close (`lose_connection`)
    /// with its own (true, the default), or keeps its end open, so that the
    /// connection lingers until the peer's EOF or [`crate::Config::linger`].
    pub fn set_peer_closes(&mut self, closes: bool) {
        self.peer_closes = closes;
        self.step(None);
    }

    /// Lets a non-reading peer take `n` buffered bytes.
    pub fn drain(&mut self, n: usize) {
        self.io.pipe.credit = n;
        self.ready(Readiness { writable: true, ..Readiness::default() });
        self.io.pipe.credit = 0;
    }

    /// Takes everything the peer has received so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.io.pipe.output)
    }

    /// [`take_output`](Self::take_output) as (lossy) UTF-8.
    pub fn take_text(&mut self) -> String {
        String::from_utf8_lossy(&self.take_output()).into_owned()
    }

    /// Bytes written but not yet taken by the peer.
    pub fn buffered_len(&self) -> usize {
        self.io.wbuf.len()
    }

    /// Where the connection stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once `connection_lost` was called.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True while the connection is closing but waits for the peer's EOF
    /// (the lingering close).
    pub fn is_lingering(&self) -> bool {
        self.state == State::Open && self.io.lingering
    }

    /// The reason given to `connection_lost`.
    pub fn lost_reason(&self) -> Option<&Disconnect> {
        self.lost.as_ref()
    }

    /// True if the connection's writing side is shut (after a half-close or
    /// a close, once everything written was sent).
    pub fn is_write_shutdown(&self) -> bool {
        self.io.pipe.write_shut
    }

    /// True if the protocol paused reading.
    pub fn is_reading_paused(&self) -> bool {
        self.io.reading_paused
    }

    fn ready(&mut self, r: Readiness) {
        if self.state != State::Open {
            return;
        }
        let ended = machine::ready(&mut self.protocol, &mut self.io, &mut self.cx, r, &mut self.read_buf);
        self.step(ended);
    }

    /// Ends the connection if it ended; otherwise plays the rest of the
    /// turn: the peer's answers, continuations the machine asked for, and
    /// timers already due (set for now, as a protocol that yields its turn
    /// does): the reactor would fire those next turn, without time passing.
    fn step(&mut self, ended: Option<Disconnect>) {
        self.settle_turn(ended);
        if self.state == State::Open && self.cx.timers.next_deadline().is_some_and(|d| d <= self.cx.now) {
            self.advance(Duration::ZERO);
        }
    }

    fn settle_turn(&mut self, mut ended: Option<Disconnect>) {
        for _ in 0..100_000 {
            if let Some(reason) = ended.take() {
                return self.finish(reason);
            }
            if self.state != State::Open {
                return;
            }
            if self.io.lingering && self.peer_closes && !self.io.pipe.eof {
                self.io.pipe.eof = true;
                self.cx.again = true;
            }
            let flush = self.io.pipe.peer_reading && !self.io.wbuf.is_empty();
            if !std::mem::take(&mut self.cx.again) && !flush {
                return;
            }
            // The reactor would play this on its next turn.
            self.cx.stats.turns += 1;
            ended = machine::ready(&mut self.protocol, &mut self.io, &mut self.cx, Readiness::ALL, &mut self.read_buf);
        }
    }

    fn finish(&mut self, reason: Disconnect) {
        self.state = State::Closed;
        machine::finish(&mut self.protocol, &mut self.io, &mut self.cx, &reason);
        self.lost = Some(reason);
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
    /// The protocol asked to close the socket
    /// ([`DatagramTransport::close`]); the harness then calls
    /// `stopped` after the callback, as the loop does, and delivers nothing more.
    pub closed: bool,
}

crate::core::context::forward_context!(MemoryDatagramTransport, cx);

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
    fn close(&mut self) {
        self.closed = true;
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
    stopped: bool,
}

impl<P: DatagramProtocol> DatagramHarness<P> {
    /// A harness bound (in name) to `127.0.0.1:7000`.
    pub fn new(protocol: P) -> Self {
        DatagramHarness {
            protocol,
            transport: MemoryDatagramTransport {
                cx: MemoryContext::new(Config::default()),
                sent: Vec::new(),
                local: SocketAddr::from(([127, 0, 0, 1], 7000)),
                groups: Vec::new(),
                broadcast: false,
                closed: false,
            },
            started: false,
            stopped: false,
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
            self.close_if_asked();
        }
    }

    /// After a callback that asked to close the socket: `stopped`, once.
    fn close_if_asked(&mut self) {
        if self.transport.closed && !self.stopped {
            self.stopped = true;
            self.protocol.stopped(&mut self.transport.cx);
        }
    }

    /// True once the socket is closed (the protocol stopped listening).
    pub fn is_closed(&self) -> bool {
        self.stopped
    }

    /// Delivers one datagram from `from` (calling `started` first if
    /// needed); a closed socket receives nothing.
    pub fn feed(&mut self, data: &[u8], from: SocketAddr) {
        self.start();
        if self.stopped {
            return;
        }
        self.protocol.datagram_received(data, from, &mut self.transport);
        self.close_if_asked();
    }

    /// Moves the manual clock forward, firing due timers in order, each at its own deadline.
    pub fn advance(&mut self, by: Duration) {
        self.start();
        advance_clock(
            self,
            |h| &mut h.transport.cx,
            by,
            |h, (kind, tag)| {
                if kind == TimerKind::Proto && !h.stopped {
                    h.protocol.timer_fired(tag, &mut h.transport);
                    h.close_if_asked();
                }
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

    /// Counts datagrams and closes its socket on "bye", as a real one would.
    struct Closer {
        seen: u32,
        stopped: u32,
    }
    impl DatagramProtocol for Closer {
        fn datagram_received(&mut self, d: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
            self.seen += 1;
            t.send_to(d, from);
            if d == b"bye" {
                t.close();
            }
        }
        fn stopped(&mut self, _: &mut dyn Context) {
            self.stopped += 1;
        }
    }

    #[test]
    fn a_datagram_protocol_that_closes_hears_stopped_once_and_nothing_after() {
        let mut h = DatagramHarness::new(Closer { seen: 0, stopped: 0 });
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        h.feed(b"hi", peer);
        assert!(!h.is_closed());
        h.feed(b"bye", peer);
        assert!(h.is_closed());
        h.feed(b"late", peer);
        assert_eq!((h.protocol.seen, h.protocol.stopped), (2, 1));
        assert_eq!(h.take_sent().len(), 2, "the answer to bye was sent before closing");
    }

    #[test]
    fn flow_control_pauses_and_resumes_on_the_marks() {
        let limits = Limits { high_water: 10_000, low_water: 2_000, hard_cap: 1_000_000 };
        let mut h = Harness::with_limits(Producer { paused: 0, resumed: 0 }, limits);
        h.connect();
        h.set_peer_reading(false);
        h.feed(&[0; 11]);
        assert_eq!(h.buffered_len(), 11_000);
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

    struct SayAndClose;
    impl Protocol for SayAndClose {
        fn data_received(&mut self, _: &[u8], t: &mut dyn Transport) {
            t.write(b"bye\n");
            t.lose_connection();
        }
    }

    #[test]
    fn a_close_lingers_until_the_peer_answers_or_the_linger_ends() {
        // The same lingering close as on a socket: half-close, wait for the peer.
        let mut h = Harness::new(SayAndClose);
        h.set_peer_closes(false);
        h.connect();
        h.feed(b"x");
        assert_eq!(h.take_output(), b"bye\n");
        assert!(h.is_write_shutdown() && h.is_lingering() && !h.is_closed());
        h.feed(b"ignored while lingering");
        h.advance(Duration::from_millis(1999));
        assert!(!h.is_closed());
        h.advance(Duration::from_millis(1));
        assert!(h.lost_reason().is_some_and(Disconnect::is_clean), "{:?}", h.lost_reason());

        // A peer that answers with its own close ends it at once.
        let mut h = Harness::new(SayAndClose);
        h.connect();
        h.feed(b"x");
        assert!(h.is_closed() && h.take_output() == b"bye\n");
    }

    struct HalfClose;
    impl Protocol for HalfClose {
        fn data_received(&mut self, d: &[u8], t: &mut dyn Transport) {
            t.write(d);
            t.shutdown_write();
        }
    }

    #[test]
    fn a_half_close_completes_when_the_peer_closes_too() {
        let mut h = Harness::new(HalfClose);
        h.connect();
        h.feed(b"ping");
        assert!(h.is_write_shutdown() && !h.is_closed(), "half-closed, still reading");
        h.feed_eof();
        assert!(h.lost_reason().is_some_and(Disconnect::is_clean));
        assert_eq!(h.take_output(), b"ping");
    }
}
