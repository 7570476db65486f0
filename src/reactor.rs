//! The event loop: one thread, one `mio::Poll`, every socket and timer.
//!
//! Each turn the loop waits for readiness (no longer than the next timer's
//! deadline), hands each ready socket to its connection, listener or datagram
//! endpoint, continues the connections whose per-turn budget ran out last
//! turn, and fires the timers that are due.
//!
//! Sockets live in a slab. A token is the slot index plus a generation, so
//! an event still queued for a connection that closed in the same turn can
//! never reach a newer connection that reused the slot.
//!
//! # Examples
//!
//! ```
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
//! let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo)?;
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
//!     use std::io::{Read, Write};
//!     let mut s = std::net::TcpStream::connect(addr)?;
//!     s.write_all(b"hi")?;
//!     s.shutdown(std::net::Shutdown::Write)?;
//!     let mut reply = Vec::new();
//!     s.read_to_end(&mut reply)?;
//!     handle.stop();
//!     Ok(reply)
//! });
//! reactor.run()?;
//! assert_eq!(client.join().unwrap()?, b"hi");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token};
use slab::Slab;

use crate::conn::Conn;
use crate::connector::{ClientEntry, Connecting, Target};
use crate::endpoint::ServerEndpoint;
use crate::flow::Limits;
use crate::handle::{ReactorHandle, Shared};
use crate::listener::ListenerEntry;
use crate::protocol::{ClientFactory, DatagramProtocol, Factory};
use crate::stats::Stats;
use crate::stream::Listener;
use crate::timer::{TimerHandle, TimerQueue};
use crate::transport::ConnId;
use crate::udp::UdpEntry;

const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// Tuning knobs, with documented defaults ([`Config::default`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// Default buffer limits for every connection.
    pub limits: Limits,
    /// How much one stream read takes, from the one read buffer the loop
    /// owns (connections keep none). Default 8 KiB: streaming cost less per
    /// MB the smaller the reads and the echoed writes, down to 8 KiB (64 KiB
    /// cost 40% more, 16 KiB 12% more, 4 KiB no less; `bench/RESULTS.md`);
    /// small messages do not notice.
    pub read_buffer: usize,
    /// Bytes one connection may read per turn before others get theirs.
    /// Default 64 KiB: small enough that one streaming connection delays a
    /// turn by little (the fairness benchmark), large enough to amortise the poll.
    pub read_budget: usize,
    /// Bytes one connection may flush per turn. Default 64 KiB.
    pub write_budget: usize,
    /// Connections one listener may accept per turn. Default 128.
    pub accept_budget: usize,
    /// Largest datagram accepted; larger ones are reported truncated. Default 65,536.
    pub max_datagram: usize,
    /// Datagrams queued per UDP socket while the kernel buffer is full. Default 512.
    pub udp_send_queue: usize,
    /// How long an outgoing connection may take. Default 30 s.
    pub connect_timeout: Duration,
    /// After `lose_connection`, how long to drain the peer's unread data so
    /// our last bytes are not destroyed by a reset. Default 2 s.
    pub linger: Duration,
    /// On stop, how long connections get to flush. Default 2 s.
    pub shutdown_grace: Duration,
    /// Events taken from one `poll`. Default 1024.
    pub events_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            read_buffer: 8 * 1024,
            read_budget: 64 * 1024,
            write_budget: 64 * 1024,
            accept_budget: 128,
            max_datagram: 65_536,
            udp_send_queue: 512,
            connect_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(2),
            events_capacity: 1024,
        }
    }
}

/// Options for one listener, with documented defaults ([`ListenOptions::new`]).
///
/// ```
/// use std::time::Duration;
/// let opts = twirl::ListenOptions {
///     idle_timeout: Some(Duration::from_secs(60)),
///     max_per_peer: Some(8),
///     ..twirl::ListenOptions::new("chat")
/// };
/// assert_eq!(opts.max_connections, None);
/// ```
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// A name for logs (the plugin's name).
    pub name: String,
    /// Buffer limits for its connections. Default: [`Limits::default`].
    pub limits: Limits,
    /// Close a connection after this long without receiving a byte
    /// (Twisted's `TimeoutMixin`), aborting it with a logged reason.
    /// Default: none.
    pub idle_timeout: Option<Duration>,
    /// Most connections open at once; over it, new ones are closed at once
    /// and counted (`Stats::refused`). Default: none.
    pub max_connections: Option<usize>,
    /// Most connections open at once from one IP address (Twisted's
    /// `LimitConnectionsByPeer`). Default: none.
    pub max_per_peer: Option<usize>,
}

impl ListenOptions {
    /// Options named `name`, with default limits and no timeouts or caps.
    pub fn new(name: impl Into<String>) -> Self {
        ListenOptions {
            name: name.into(),
            limits: Limits::default(),
            idle_timeout: None,
            max_connections: None,
            max_per_peer: None,
        }
    }
}

/// What the loop can do to a registered source when a timer fires.
pub(crate) enum TimerAction {
    /// A protocol's own timer: `timer_fired(tag)` on the connection or socket.
    Proto {
        token: u64,
        tag: u64,
    },
    Call(Box<dyn FnOnce(&mut Reactor)>),
    Every(Box<dyn FnMut(&mut Reactor)>),
    RetryAccept(u64),
    Reconnect(usize),
    ConnectTimeout(u64),
    Linger(u64),
    Idle(u64),
}

pub(crate) enum Source {
    Listener(Box<ListenerEntry>),
    Conn(Box<Conn>),
    Connecting(Box<Connecting>),
    Udp(Box<UdpEntry>),
    Fd(Box<crate::fd::FdEntry>),
    /// Taken out while its callbacks run.
    Busy,
}

pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) source: Source,
}

/// What one readiness event reported, as handed to a raw [`crate::fd::FdHandler`].
///
/// Readiness is edge-triggered: it is reported when it changes, so a handler
/// must read (or write) until `WouldBlock` before it is told again.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Data (or EOF, or a pending connection) may be read.
    pub readable: bool,
    /// The descriptor may be written.
    pub writable: bool,
    /// The peer closed its writing side (or hung up).
    pub read_closed: bool,
    /// An error is pending on the descriptor.
    pub error: bool,
}

impl Readiness {
    /// Readiness for a source continued from the ready queue: try everything,
    /// and read until `WouldBlock` since no event vouches for a drained socket.
    pub(crate) const ALL: Readiness = Readiness { readable: true, writable: true, read_closed: true, error: false };
}

/// Everything a callback may touch: the reactor minus its poller.
pub(crate) struct Core {
    pub registry: Registry,
    pub slots: Slab<Slot>,
    next_generation: u32,
    pub timers: TimerQueue<TimerAction>,
    pub now: Instant,
    /// Sources to continue next turn (budget ran out, or reading resumed).
    pub ready: Vec<u64>,
    /// Connections written to or closed from another's callback: settle them.
    pub dirty: Vec<u64>,
    pub read_buf: Vec<u8>,
    pub config: Config,
    pub stats: Stats,
    pub clients: Slab<ClientEntry>,
    pub stop_requested: bool,
    pub stopping: Option<Instant>,
}

pub(crate) fn split(token: u64) -> (usize, u32) {
    ((token & 0xffff_ffff) as usize, (token >> 32) as u32)
}

impl Core {
    pub(crate) fn insert(&mut self, source: Source) -> u64 {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let idx = self.slots.insert(Slot { generation, source });
        (u64::from(generation) << 32) | idx as u64
    }

    fn slot_mut(&mut self, token: u64) -> Option<&mut Slot> {
        let (idx, generation) = split(token);
        self.slots.get_mut(idx).filter(|s| s.generation == generation)
    }

    /// Takes a live source out of its slot, leaving `Busy`.
    pub(crate) fn take(&mut self, token: u64) -> Option<Source> {
        let slot = self.slot_mut(token)?;
        match std::mem::replace(&mut slot.source, Source::Busy) {
            Source::Busy => None,
            s => Some(s),
        }
    }

    pub(crate) fn put_back(&mut self, token: u64, source: Source) {
        if let Some(slot) = self.slot_mut(token) {
            slot.source = source;
        }
    }

    pub(crate) fn remove(&mut self, token: u64) {
        let (idx, generation) = split(token);
        if self.slots.get(idx).is_some_and(|s| s.generation == generation) {
            self.slots.remove(idx);
        }
    }

    pub(crate) fn is_live(&self, token: u64) -> bool {
        let (idx, generation) = split(token);
        self.slots.get(idx).is_some_and(|s| s.generation == generation)
    }

    /// Hands one readiness event to its source.
    pub(crate) fn dispatch(&mut self, token: u64, r: Readiness) {
        let Some(source) = self.take(token) else { return };
        match source {
            Source::Conn(c) => self.conn_ready(token, c, r),
            Source::Listener(l) => self.accept(token, l, false),
            Source::Connecting(c) => self.connect_ready(token, c, r),
            Source::Udp(u) => self.udp_ready(token, u, r),
            Source::Fd(f) => self.fd_ready(token, f, r),
            Source::Busy => {}
        }
        self.process_dirty();
    }

    /// Fires a protocol timer; false if its connection or socket is gone.
    fn proto_timer(&mut self, token: u64, tag: u64) -> bool {
        match self.take(token) {
            Some(Source::Conn(c)) => self.conn_timer(token, c, tag),
            Some(Source::Udp(u)) => self.udp_timer(token, u, tag),
            Some(Source::Fd(f)) => self.fd_timer(token, f, tag),
            Some(other) => self.put_back(token, other),
            None => return self.is_live(token),
        }
        self.process_dirty();
        true
    }
}

/// The reactor: owns the poller, every socket and every timer.
pub struct Reactor {
    poll: Poll,
    events: Events,
    pub(crate) core: Core,
    shared: Arc<Shared>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    on_signal: Option<SignalHook>,
}

/// What [`Reactor::handle_signals`] calls for signals other than SIGINT/SIGTERM.
type SignalHook = Box<dyn FnMut(i32, &mut Reactor)>;

impl Reactor {
    /// A reactor with the default [`Config`].
    pub fn new() -> io::Result<Reactor> {
        Self::with_config(Config::default())
    }

    /// A reactor with the given configuration.
    pub fn with_config(config: Config) -> io::Result<Reactor> {
        ignore_sigpipe();
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let shared = Arc::new(Shared::new(poll.registry(), WAKER)?);
        let now = Instant::now();
        Ok(Reactor {
            events: Events::with_capacity(config.events_capacity.max(16)),
            core: Core {
                registry,
                slots: Slab::new(),
                next_generation: 1,
                timers: TimerQueue::new(now),
                now,
                ready: Vec::new(),
                dirty: Vec::new(),
                // Stream reads use the first `read_buffer` bytes; datagrams need room for
                // the largest accepted one.
                read_buf: vec![0; config.read_buffer.max(1024).max(config.max_datagram)],
                config,
                stats: Stats::default(),
                clients: Slab::new(),
                stop_requested: false,
                stopping: None,
            },
            poll,
            shared,
            signals: None,
            on_signal: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// A cloneable, thread-safe handle: stop the reactor or run a function on
    /// its thread from anywhere.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle { shared: self.shared.clone() }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.core.stats.clone()
    }

    /// Asks [`run`](Self::run) to stop gracefully.
    pub fn stop(&mut self) {
        self.core.stop_requested = true;
    }

    /// Number of open stream connections.
    pub fn connection_count(&self) -> usize {
        self.core.stats.open as usize
    }

    /// Listens for TCP connections; returns the address actually bound
    /// (port 0 lets the kernel choose).
    pub fn listen_tcp(&mut self, addr: SocketAddr, factory: impl Factory) -> io::Result<SocketAddr> {
        let opts = ListenOptions { limits: self.core.config.limits, ..ListenOptions::new("tcp") };
        match self.listen_stream(&ServerEndpoint::Tcp(addr), Box::new(factory), opts)? {
            ServerEndpoint::Tcp(a) => Ok(a),
            _ => Err(io::Error::other("tcp listener bound to a non-tcp address")),
        }
    }

    /// Listens on a Unix-domain socket path (a stale socket file is replaced).
    pub fn listen_unix(&mut self, path: impl AsRef<Path>, factory: impl Factory) -> io::Result<PathBuf> {
        let opts = ListenOptions { limits: self.core.config.limits, ..ListenOptions::new("unix") };
        let ep = ServerEndpoint::Unix(path.as_ref().to_path_buf());
        self.listen_stream(&ep, Box::new(factory), opts)?;
        Ok(path.as_ref().to_path_buf())
    }

    /// Listens on a TCP or Unix endpoint with per-listener options; returns
    /// the endpoint as actually bound.
    pub fn listen_stream(
        &mut self,
        endpoint: &ServerEndpoint,
        factory: Box<dyn Factory>,
        opts: ListenOptions,
    ) -> io::Result<ServerEndpoint> {
        let (mut sock, bound, path) = match endpoint {
            ServerEndpoint::Tcp(addr) => {
                let l = bind_tcp(*addr)?;
                let local = l.local_addr()?;
                (Listener::Tcp(l), ServerEndpoint::Tcp(local), None)
            }
            ServerEndpoint::Unix(p) => (Listener::bind_unix(p)?, endpoint.clone(), Some(p.clone())),
            ServerEndpoint::Udp(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a stream listener needs a tcp: or unix: endpoint",
                ));
            }
        };
        let token = self.core.insert(Source::Busy);
        if let Err(e) = sock.register(&self.core.registry, Token(token as usize)) {
            self.core.remove(token);
            return Err(e);
        }
        log::debug!("listening {} on {bound}", opts.name);
        let entry = ListenerEntry::new(sock, factory, opts, path);
        self.core.put_back(token, Source::Listener(Box::new(entry)));
        Ok(bound)
    }

    /// Binds a UDP socket served by `protocol`; returns the address bound.
    pub fn listen_udp(&mut self, addr: SocketAddr, protocol: impl DatagramProtocol) -> io::Result<SocketAddr> {
        self.listen_udp_boxed(addr, Box::new(protocol))
    }

    /// [`listen_udp`](Self::listen_udp) for a boxed protocol.
    pub fn listen_udp_boxed(
        &mut self,
        addr: SocketAddr,
        protocol: Box<dyn DatagramProtocol>,
    ) -> io::Result<SocketAddr> {
        let socket = mio::net::UdpSocket::bind(addr)?;
        self.core.add_udp(socket, protocol, None)
    }

    /// Opens a UDP socket connected to `remote` (from an ephemeral local
    /// port): only `remote`'s datagrams arrive, and an ICMP port-unreachable
    /// answer is reported through `connection_refused`. Returns the local address.
    pub fn connect_udp(&mut self, remote: SocketAddr, protocol: impl DatagramProtocol) -> io::Result<SocketAddr> {
        let any: SocketAddr =
            if remote.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        let socket = mio::net::UdpSocket::bind(any)?;
        socket.connect(remote)?;
        self.core.add_udp(socket, Box::new(protocol), Some(remote))
    }

    /// Connects to a TCP server; the factory builds the protocol once
    /// connected and decides about retries (see [`crate::Reconnecting`]).
    pub fn connect_tcp(&mut self, addr: SocketAddr, factory: impl ClientFactory) -> io::Result<()> {
        self.connect(Target::Tcp(addr), Box::new(factory))
    }

    /// Connects to a Unix-domain stream server.
    pub fn connect_unix(&mut self, path: impl AsRef<Path>, factory: impl ClientFactory) -> io::Result<()> {
        self.connect(Target::Unix(path.as_ref().to_path_buf()), Box::new(factory))
    }

    fn connect(&mut self, target: Target, factory: Box<dyn ClientFactory>) -> io::Result<()> {
        let policy = std::rc::Rc::new(crate::listener::Policy::new("client", self.core.config.limits, None));
        let client = self.core.clients.insert(ClientEntry { factory, target, policy });
        self.core.start_connect(client);
        Ok(())
    }

    /// Runs `f` on the loop `delay` from now.
    pub fn call_later(&mut self, delay: Duration, f: impl FnOnce(&mut Reactor) + 'static) -> TimerHandle {
        self.core.now = Instant::now();
        self.core.timers.schedule(self.core.now, delay, None, TimerAction::Call(Box::new(f)))
    }

    /// Runs `f` on the loop every `interval`, first after one interval
    /// (Twisted's `LoopingCall`), until cancelled.
    pub fn call_every(&mut self, interval: Duration, f: impl FnMut(&mut Reactor) + 'static) -> TimerHandle {
        self.core.now = Instant::now();
        self.core.timers.schedule(self.core.now, interval, Some(interval), TimerAction::Every(Box::new(f)))
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerHandle) -> bool {
        self.core.timers.cancel(timer)
    }

    /// Moves an active timer to fire `delay` from now.
    pub fn reschedule_timer(&mut self, timer: TimerHandle, delay: Duration) -> bool {
        self.core.now = Instant::now();
        self.core.timers.reschedule(self.core.now, timer, delay)
    }

    /// True while the timer is pending.
    pub fn timer_active(&self, timer: TimerHandle) -> bool {
        self.core.timers.is_active(timer)
    }

    /// Writes to a connection by id; false if it is not open.
    pub fn write_to(&mut self, conn: ConnId, data: &[u8]) -> bool {
        let ok = self.core.write_to(conn.0, data);
        self.core.process_dirty();
        ok
    }

    /// Closes a connection by id after flushing; false if it is not open.
    pub fn close_conn(&mut self, conn: ConnId) -> bool {
        let ok = self.core.close_conn(conn.0);
        self.core.process_dirty();
        ok
    }

    /// Watches any file descriptor (a raw socket, a pipe, stdin...) with
    /// `handler`; see [`crate::fd`]. Returns its id, for [`remove_fd`](Self::remove_fd).
    pub fn add_fd(
        &mut self,
        handler: impl crate::fd::FdHandler,
        interest: crate::fd::FdInterest,
    ) -> io::Result<ConnId> {
        self.core.add_fd(Box::new(handler), interest).map(ConnId)
    }

    /// Stops watching a descriptor added with [`add_fd`](Self::add_fd)
    /// (its handler's `removed` is called); false if it is not watched.
    pub fn remove_fd(&mut self, id: ConnId) -> bool {
        match self.core.take(id.0) {
            Some(Source::Fd(f)) => {
                self.core.remove_fd_source(id.0, f);
                true
            }
            Some(other) => {
                self.core.put_back(id.0, other);
                false
            }
            None => false,
        }
    }

    /// Runs `f` with a connection's transport, from a timer or a
    /// [`ReactorHandle::call_from_thread`] call: write, half-close, pause...
    /// False if the connection is not open.
    ///
    /// ```
    /// # fn demo(r: &mut twirl::Reactor, id: twirl::ConnId) {
    /// r.with_transport(id, |t| t.shutdown_write());
    /// # }
    /// ```
    pub fn with_transport(&mut self, conn: ConnId, f: impl FnOnce(&mut dyn crate::Transport)) -> bool {
        let ok = self.core.with_transport(conn.0, f);
        self.core.process_dirty();
        ok
    }

    /// Stops gracefully on SIGINT and SIGTERM; `on_other` is called on the
    /// loop for any other signal in `extra` (SIGUSR1 for statistics, say).
    pub fn handle_signals(
        &mut self,
        extra: &[i32],
        on_other: impl FnMut(i32, &mut Reactor) + 'static,
    ) -> io::Result<()> {
        let mut wanted = vec![signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
        wanted.extend_from_slice(extra);
        let mut signals = signal_hook_mio::v1_0::Signals::new(&wanted)?;
        self.poll.registry().register(&mut signals, SIGNALS, mio::Interest::READABLE)?;
        self.signals = Some(signals);
        self.on_signal = Some(Box::new(on_other));
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.core.ready.is_empty() || !self.core.dirty.is_empty() || self.core.stop_requested {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut deadline = self.core.timers.next_deadline();
        if let Some(stop) = self.core.stopping {
            deadline = Some(deadline.map_or(stop, |d| d.min(stop)));
        }
        // mio rounds a sub-millisecond remainder up, so no early wake-up.
        deadline.map(|d| d.saturating_duration_since(now))
    }

    /// Runs the loop until [`stop`](Self::stop), a [`ReactorHandle::stop`], a
    /// protocol's `stop_reactor` or a handled signal; then stops accepting,
    /// flushes output for up to [`Config::shutdown_grace`], tells every
    /// protocol `connection_lost`, and returns.
    pub fn run(&mut self) -> io::Result<()> {
        self.run_loop(&|| false, None)
    }

    /// Runs the loop until `outcome` is filled or `timeout` passes, then
    /// stops gracefully as [`run`](Self::run) does and returns the value.
    /// An error of kind `TimedOut` if no value came in time; of kind
    /// `Interrupted` if the reactor was stopped first. See [`crate::outcome`].
    pub fn run_until<T>(&mut self, outcome: &crate::Outcome<T>, timeout: Duration) -> io::Result<T> {
        let deadline = Instant::now() + timeout;
        self.run_loop(&|| outcome.is_set(), Some(deadline))?;
        outcome.take().ok_or_else(|| {
            if Instant::now() >= deadline {
                io::Error::new(io::ErrorKind::TimedOut, format!("no result within {:.1} s", timeout.as_secs_f64()))
            } else {
                io::Error::new(io::ErrorKind::Interrupted, "the reactor stopped before a result arrived")
            }
        })
    }

    fn run_loop(&mut self, done: &dyn Fn() -> bool, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            if !self.core.stop_requested && (done() || deadline.is_some_and(|d| Instant::now() >= d)) {
                self.core.stop_requested = true;
            }
            if self.core.stop_requested && self.core.stopping.is_none() {
                self.begin_stop();
            }
            if let Some(deadline) = self.core.stopping {
                if self.core.stats.open == 0 || Instant::now() >= deadline {
                    self.finish_stop();
                    return Ok(());
                }
            }
            let mut timeout = self.poll_timeout();
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if let Err(e) = self.poll.poll(&mut self.events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.core.now = Instant::now();
            self.turn();
        }
    }

    /// One turn's work after `poll` returned.
    fn turn(&mut self) {
        let stats = &mut self.core.stats;
        stats.turns += 1;
        let n = self.events.iter().count() as u64;
        stats.events += n;
        stats.max_events_per_turn = stats.max_events_per_turn.max(n);
        log::trace!(target: "twirl::loop", "turn {}: {n} events", stats.turns);
        let mut carried = std::mem::take(&mut self.core.ready);
        // A source carried over from last turn is served once, from the
        // carried list with full readiness, not again for its event: one
        // budget per source per turn.
        carried.sort_unstable();
        carried.dedup();
        let (mut woke, mut signalled) = (false, false);
        for ev in self.events.iter() {
            match ev.token() {
                WAKER => woke = true,
                SIGNALS => signalled = true,
                Token(t) if !carried.is_empty() && carried.binary_search(&(t as u64)).is_ok() => {}
                Token(t) => {
                    let r = Readiness {
                        readable: ev.is_readable() || ev.is_read_closed(),
                        writable: ev.is_writable() || ev.is_write_closed(),
                        read_closed: ev.is_read_closed(),
                        error: ev.is_error(),
                    };
                    if log::log_enabled!(target: "twirl::loop", log::Level::Trace) {
                        log::trace!(target: "twirl::loop", "{} ready:{}", ConnId(t as u64), describe(&r));
                    }
                    self.core.dispatch(t as u64, r);
                }
            }
        }
        for token in carried {
            self.core.dispatch(token, Readiness::ALL);
        }
        if signalled {
            self.take_signals();
        }
        if woke {
            self.run_thread_calls();
        }
        self.fire_timers();
    }

    fn fire_timers(&mut self) {
        let mark = self.core.timers.mark();
        for _ in 0..10_000 {
            let Some((handle, action)) = self.core.timers.pop_due_before(self.core.now, mark) else { return };
            self.core.stats.timers_fired += 1;
            match action {
                TimerAction::Proto { token, tag } => {
                    if log::log_enabled!(target: "twirl::loop", log::Level::Trace) {
                        log::trace!(target: "twirl::loop", "{} timer {tag} fired", ConnId(token));
                    }
                    if self.core.proto_timer(token, tag) {
                        self.core.timers.restore(handle, TimerAction::Proto { token, tag });
                    } else {
                        self.core.timers.cancel(handle);
                    }
                }
                TimerAction::Call(f) => {
                    if let Err(e) = crate::guard::guarded(|| f(self)) {
                        log::error!("a call_later callback failed: {e}");
                    }
                }
                TimerAction::Every(mut f) => match crate::guard::guarded(|| f(self)) {
                    Ok(()) => self.core.timers.restore(handle, TimerAction::Every(f)),
                    Err(e) => {
                        log::error!("a call_every callback failed: {e}; it will not run again");
                        self.core.timers.cancel(handle);
                    }
                },
                TimerAction::RetryAccept(token) => {
                    if let Some(source) = self.core.take(token) {
                        match source {
                            Source::Listener(l) => self.core.accept(token, l, true),
                            other => self.core.put_back(token, other),
                        }
                    }
                }
                TimerAction::Reconnect(client) => self.core.reconnect(client),
                TimerAction::ConnectTimeout(token) => self.core.connect_timeout(token),
                TimerAction::Linger(token) => self.core.linger_expired(token),
                TimerAction::Idle(token) => self.core.idle_check(token),
            }
            self.core.process_dirty();
        }
    }

    fn run_thread_calls(&mut self) {
        if self.shared.take_stop() {
            self.core.stop_requested = true;
        }
        for f in self.shared.take_calls() {
            f(self);
        }
        self.core.process_dirty();
    }

    fn take_signals(&mut self) {
        let Some(mut signals) = self.signals.take() else { return };
        let pending: Vec<i32> = signals.pending().collect();
        self.signals = Some(signals);
        for sig in pending {
            if sig == signal_hook::consts::SIGINT || sig == signal_hook::consts::SIGTERM {
                log::info!("signal {sig}: stopping");
                self.core.stop_requested = true;
            } else if let Some(mut f) = self.on_signal.take() {
                f(sig, self);
                self.on_signal = Some(f);
            }
        }
    }

    fn begin_stop(&mut self) {
        let grace = self.core.config.shutdown_grace;
        self.core.stopping = Some(Instant::now() + grace);
        log::debug!("stopping: closing listeners, flushing {} connections", self.core.stats.open);
        let tokens: Vec<u64> =
            self.core.slots.iter().map(|(i, s)| (u64::from(s.generation) << 32) | i as u64).collect();
        for token in tokens {
            match self.core.take(token) {
                Some(Source::Listener(l)) => {
                    self.core.remove(token);
                    l.close();
                }
                Some(Source::Connecting(c)) => {
                    self.core.remove(token);
                    drop(c);
                }
                Some(Source::Udp(u)) => self.core.stop_udp(token, u),
                Some(Source::Fd(f)) => self.core.remove_fd_source(token, f),
                Some(Source::Conn(mut c)) => {
                    c.io.closing = true;
                    self.core.put_back(token, Source::Conn(c));
                    self.core.dirty.push(token);
                }
                Some(Source::Busy) | None => {}
            }
        }
        self.core.process_dirty();
    }

    fn finish_stop(&mut self) {
        let tokens: Vec<u64> =
            self.core.slots.iter().map(|(i, s)| (u64::from(s.generation) << 32) | i as u64).collect();
        for token in tokens {
            if let Some(Source::Conn(c)) = self.core.take(token) {
                self.core.finish_conn(token, c, crate::transport::Disconnect::Stopped);
            }
        }
        self.core.clients.clear();
        self.core.stop_requested = false;
        self.core.stopping = None;
        log::debug!("stopped: {}", self.core.stats);
    }
}

fn describe(r: &Readiness) -> String {
    let mut s = String::new();
    for (on, name) in
        [(r.readable, " readable"), (r.writable, " writable"), (r.read_closed, " hup"), (r.error, " error")]
    {
        if on {
            s.push_str(name);
        }
    }
    s
}

fn bind_tcp(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarting a server must not fail on connections still in TIME_WAIT
    // (seed 000's SO_REUSEADDR slide).
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Writing to a socket the peer closed must give `EPIPE`, not kill the process.
fn ignore_sigpipe() {
    // SAFETY: sigaction with a null new action only reads the current
    // disposition into `old`, a zeroed, properly sized sigaction. Setting
    // SIG_IGN installs no handler code, so no async-signal-safety concern
    // arises; a disposition someone else chose (not SIG_DFL) is left alone.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
}
