//! The public reactor: one thread, one `mio::Poll`, every socket and timer.
//!
//! Each turn the loop waits for readiness (no longer than the next timer's
//! deadline), hands each ready socket to its source (the dispatch layer),
//! continues the sources whose per-turn budget ran out last turn, and fires
//! the timers that are due. This module is the top layer: it opens
//! listeners, connections and sockets, runs closures on timers and from
//! other threads, handles signals, and stops gracefully.
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
//! let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo)?.addr;
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

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll};

use crate::core::{Config, Core, Deferred, Repeating, TimerAction, TimerKind};
use crate::dispatch::{self, SIGNALS, WAKER};
use crate::endpoint::{ClientEndpoint, ServerEndpoint};
use crate::flow::Payload;
use crate::handle::{ReactorHandle, Shared};
use crate::inherit::SocketKind;
use crate::opener::{LoopOpener, Wake};
use crate::policy::{ListenOptions, Policy, ReplyGuard};
use crate::protocol::{ClientFactory, DatagramProtocol, Factory};
use crate::resolver::Resolver;
use crate::source::connector::{Client, Target};
use crate::source::fd::FdSource;
use crate::source::listener::ListenerSource;
use crate::source::socket::Listener;
use crate::source::udp::UdpSource;
use crate::stats::Stats;
use crate::timer::TimerHandle;
use crate::transport::{ConnId, ListenerId};

/// The signals that stop the reactor gracefully once handled.
const STOP_SIGNALS: [i32; 3] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP];

/// A `call_later` or `call_every` closure, as the core's timers hold it.
struct OnReactor<F>(F);

impl<F: FnOnce(&mut Reactor)> Deferred for OnReactor<F> {
    fn run(self: Box<Self>, above: &mut dyn Any) {
        if let Some(r) = above.downcast_mut::<Reactor>() {
            (self.0)(r)
        }
    }
}

impl<F: FnMut(&mut Reactor)> Repeating for OnReactor<F> {
    fn run(&mut self, above: &mut dyn Any) {
        if let Some(r) = above.downcast_mut::<Reactor>() {
            (self.0)(r)
        }
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
    /// What the UDP server sockets share: their endpoints, reply rates.
    replies: Rc<RefCell<ReplyGuard>>,
    /// Opens connections by endpoint (the core holds it too, for callbacks).
    opener: Rc<LoopOpener>,
}

/// How a resolver thread hands its answer back: through the handle, to
/// [`Reactor::resolved`] on the loop.
fn resolver_wake(shared: &Arc<Shared>) -> Wake {
    let handle = ReactorHandle { shared: shared.clone() };
    Arc::new(move |token| handle.call_from_thread(move |r| r.resolved(token)))
}

/// Binds a UDP socket, with `SO_REUSEPORT` if asked ([`Config::reuse_port`]).
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<mio::net::UdpSocket> {
    if !reuse_port {
        return mio::net::UdpSocket::bind(addr);
    }
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// A socket the reactor listens on, as `listen_*` return it (Twisted's
/// `IListeningPort`): where it is bound, and the id that closes it.
///
/// # Examples
///
/// ```
/// use twirl::{Addr, Protocol, Reactor, Transport};
/// # struct Echo;
/// # impl Protocol for Echo {
/// #     fn data_received(&mut self, d: &[u8], t: &mut dyn Transport) { t.write(d); }
/// # }
/// let mut reactor = Reactor::new()?;
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo)?;
/// assert_ne!(port.addr.port(), 0, "the port the kernel chose");
/// assert!(reactor.stop_listening(port.id));
/// assert!(std::net::TcpStream::connect(port.addr).is_err(), "nobody listens there now");
/// assert!(!reactor.stop_listening(port.id), "already closed");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening<A> {
    /// Names the socket for [`Reactor::stop_listening`] and
    /// [`Context::stop_listening`](crate::Context::stop_listening).
    pub id: ListenerId,
    /// Where it is bound (port 0 replaced by the port the kernel chose).
    pub addr: A,
}

/// Shows where it is bound, as a `listening` line does.
impl<A: std::fmt::Display> std::fmt::Display for Listening<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
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
        let replies = Rc::new(RefCell::new(ReplyGuard::new(config.udp_replies.clone())));
        let mut core = Core::new(registry, config);
        let opener = Rc::new(LoopOpener { wake: resolver_wake(&shared), resolver: Resolver::default() });
        core.opener = Some(opener.clone());
        Ok(Reactor {
            events: Events::with_capacity(core.config.events_capacity.max(16)),
            replies,
            core,
            poll,
            shared,
            signals: None,
            on_signal: None,
            opener,
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
        Stats { timers_pending: self.core.timers.len() as u64, ..self.core.stats.clone() }
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
    /// (port 0 lets the kernel choose) and the listener's id.
    pub fn listen_tcp(&mut self, addr: SocketAddr, factory: impl Factory) -> io::Result<Listening<SocketAddr>> {
        let opts = ListenOptions { limits: self.core.config.limits, ..ListenOptions::new("tcp") };
        let port = self.listen_stream(&ServerEndpoint::Tcp(addr), Box::new(factory), opts)?;
        match port.addr {
            ServerEndpoint::Tcp(a) => Ok(Listening { id: port.id, addr: a }),
            _ => Err(io::Error::other("tcp listener bound to a non-tcp address")),
        }
    }

    /// Listens on a Unix-domain socket path (a stale socket file is
    /// replaced; the file is removed when the listener closes).
    pub fn listen_unix(&mut self, path: impl AsRef<Path>, factory: impl Factory) -> io::Result<Listening<PathBuf>> {
        let opts = ListenOptions { limits: self.core.config.limits, ..ListenOptions::new("unix") };
        let ep = ServerEndpoint::Unix(path.as_ref().to_path_buf());
        let port = self.listen_stream(&ep, Box::new(factory), opts)?;
        Ok(Listening { id: port.id, addr: path.as_ref().to_path_buf() })
    }

    /// Listens on a TCP or Unix endpoint with per-listener options; returns
    /// the endpoint as actually bound.
    pub fn listen_stream(
        &mut self,
        endpoint: &ServerEndpoint,
        factory: Box<dyn Factory>,
        opts: ListenOptions,
    ) -> io::Result<Listening<ServerEndpoint>> {
        let mut factory = factory;
        let sock = match endpoint {
            ServerEndpoint::Tls(t) => {
                // The files are read (and every problem with them reported)
                // before anything listens.
                let timeout = t.handshake_timeout.unwrap_or(self.core.config.tls_handshake_timeout);
                let tls = crate::tls::TlsServer::load(&t.cert, &t.key, t.client_ca.as_deref())?;
                factory = Box::new(crate::tls::TlsFactory::new(tls.with_handshake_timeout(timeout), factory));
                match &t.socket {
                    Some(handed) => Listener::adopt(handed.adopt(SocketKind::StreamListener)?)?,
                    None => Listener::bind_tcp(t.addr, self.core.config.reuse_port)?,
                }
            }
            ServerEndpoint::Tcp(addr) => Listener::bind_tcp(*addr, self.core.config.reuse_port)?,
            ServerEndpoint::Unix(p) => Listener::bind_unix(p)?,
            ServerEndpoint::Inherited(i) => Listener::adopt(i.adopt(SocketKind::StreamListener)?)?,
            ServerEndpoint::Udp(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a stream listener needs a tcp: or unix: endpoint",
                ));
            }
        };
        let bound = match (sock.local_endpoint()?, endpoint) {
            (ServerEndpoint::Tcp(addr), ServerEndpoint::Tls(t)) => {
                ServerEndpoint::Tls(crate::endpoint::TlsServerEndpoint { addr, ..t.clone() })
            }
            (bound, _) => bound,
        };
        let token = ListenerSource::add(&mut self.core, sock, factory, &opts)?;
        log::debug!("listening {} on {bound}", opts.name);
        Ok(Listening { id: ListenerId(token), addr: bound })
    }

    /// Serves a UDP endpoint: `udp:PORT` (bound here) or a UDP socket
    /// handed down (`fd:N`, `systemd:INDEX`); returns it as bound.
    pub fn listen_datagram(
        &mut self,
        endpoint: &ServerEndpoint,
        protocol: Box<dyn DatagramProtocol>,
    ) -> io::Result<Listening<ServerEndpoint>> {
        let socket = match endpoint {
            ServerEndpoint::Udp(addr) => bind_udp(*addr, self.core.config.reuse_port)?,
            ServerEndpoint::Inherited(i) => mio::net::UdpSocket::from_std(i.adopt(SocketKind::Datagram)?.into()),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a datagram protocol needs a udp: endpoint or a UDP socket handed down",
                ));
            }
        };
        let (token, addr) = UdpSource::add(&mut self.core, socket, protocol, None, Some(self.replies.clone()))?;
        Ok(Listening { id: ListenerId(token), addr: ServerEndpoint::Udp(addr) })
    }

    /// Runs `f` with a [`Context`](crate::Context) on the loop: write to
    /// connections by id, open connections, set nothing of its own (timers
    /// set here call no protocol). For code that runs outside any callback,
    /// such as a message from another reactor of a [`crate::group::Group`].
    pub fn with_context<R>(&mut self, f: impl FnOnce(&mut dyn crate::Context) -> R) -> R {
        self.core.now = Instant::now();
        let r = f(&mut crate::core::CoreCx { core: &mut self.core, token: 0 });
        self.core.process_dirty();
        r
    }

    /// A duplicate of a listener's or UDP socket's descriptor (closed on
    /// exec), for another reactor of this process to serve the same socket
    /// (`fd:N`); `None` if `id` names neither.
    pub fn duplicate(&mut self, id: ListenerId) -> Option<io::Result<std::os::fd::OwnedFd>> {
        self.core.duplicate(id.0)
    }

    /// Readies a listener or UDP socket to be handed to a program this
    /// process starts (a restart): its descriptor stays open across `exec`
    /// (close-on-exec cleared), and a Unix listener's socket file is left in
    /// place when this process lets it go. Returns the descriptor; `None` if
    /// `id` names neither. Stop listening afterwards: the socket stays open
    /// in the program that inherited it.
    pub fn pass_on(&mut self, id: ListenerId) -> Option<io::Result<std::os::fd::RawFd>> {
        self.core.pass_on(id.0)
    }

    /// Closes a listener (connections it accepted stay open) or a UDP
    /// socket (its protocol hears `stopped`); false if `id` names neither
    /// or it is already closed.
    pub fn stop_listening(&mut self, id: ListenerId) -> bool {
        let ok = self.core.stop_listening(id.0);
        self.core.process_dirty();
        ok
    }

    /// Binds a UDP service served by `protocol`; returns the address bound.
    /// What it sends is limited by [`Config::udp_replies`]: never to a
    /// service port nor to another of this reactor's services (a loop), and
    /// at a bounded rate per address off loopback.
    pub fn listen_udp(
        &mut self,
        addr: SocketAddr,
        protocol: impl DatagramProtocol,
    ) -> io::Result<Listening<SocketAddr>> {
        self.listen_udp_boxed(addr, Box::new(protocol))
    }

    /// [`listen_udp`](Self::listen_udp) for a boxed protocol.
    pub fn listen_udp_boxed(
        &mut self,
        addr: SocketAddr,
        protocol: Box<dyn DatagramProtocol>,
    ) -> io::Result<Listening<SocketAddr>> {
        let socket = bind_udp(addr, self.core.config.reuse_port)?;
        let added = UdpSource::add(&mut self.core, socket, protocol, None, Some(self.replies.clone()));
        added.map(|(token, addr)| Listening { id: ListenerId(token), addr })
    }

    /// Binds a UDP socket that is not a service: a client that must hear
    /// from any address (a reply may come from another port, or a spoof
    /// must be seen to be ignored). Unlike [`listen_udp`](Self::listen_udp)
    /// its sends are not limited by [`crate::UdpReplies`], and services
    /// of this reactor may answer it.
    pub fn open_udp(&mut self, addr: SocketAddr, protocol: impl DatagramProtocol) -> io::Result<Listening<SocketAddr>> {
        let socket = mio::net::UdpSocket::bind(addr)?;
        let added = UdpSource::add(&mut self.core, socket, Box::new(protocol), None, None);
        added.map(|(token, addr)| Listening { id: ListenerId(token), addr })
    }

    /// Opens a UDP socket connected to `remote` (from an ephemeral local
    /// port): only `remote`'s datagrams arrive, and an ICMP port-unreachable
    /// answer is reported through `connection_refused`. Returns the local
    /// address. (To a host name, without blocking the loop:
    /// [`Context::connect_udp`](crate::Context::connect_udp).)
    pub fn connect_udp(
        &mut self,
        remote: SocketAddr,
        protocol: impl DatagramProtocol,
    ) -> io::Result<Listening<SocketAddr>> {
        let token = self.core.reserve();
        let local = crate::source::udp::connect_at(&mut self.core, token, remote, Box::new(protocol))?;
        Ok(Listening { id: ListenerId(token), addr: local })
    }

    /// Connects to a TCP server; the factory builds the protocol once
    /// connected and decides about retries (see [`crate::Reconnecting`]).
    pub fn connect_tcp(&mut self, addr: SocketAddr, factory: impl ClientFactory) -> io::Result<()> {
        self.connect_target(Target::Tcp(addr), Box::new(factory))
    }

    /// Connects to a Unix-domain stream server.
    pub fn connect_unix(&mut self, path: impl AsRef<Path>, factory: impl ClientFactory) -> io::Result<()> {
        self.connect_target(Target::Unix(path.as_ref().to_path_buf()), Box::new(factory))
    }

    /// Connects to a stream server by endpoint (`tcp:HOST:PORT` or
    /// `unix:PATH`); a host name is resolved on the resolver pool (at most
    /// four lookups at once), never on the loop. Returns the id the connection will have (abort it by id
    /// to cancel the connect).
    pub fn connect(&mut self, to: &ClientEndpoint, factory: impl ClientFactory) -> io::Result<ConnId> {
        self.core.now = Instant::now();
        let token = self.opener.connect_stream(&mut self.core, to, Box::new(factory))?;
        self.core.process_dirty();
        Ok(ConnId(token))
    }

    /// The resolver thread of a connect left its answer: go on connecting.
    pub(crate) fn resolved(&mut self, token: u64) {
        self.core.source_timer(token, TimerKind::Resolved, 0);
    }

    fn connect_target(&mut self, target: Target, factory: Box<dyn ClientFactory>) -> io::Result<()> {
        let policy = Rc::new(Policy::plain("client", self.core.config.limits));
        self.core.now = Instant::now();
        Box::new(Client { factory, target, policy }).connect(&mut self.core);
        self.core.process_dirty();
        Ok(())
    }

    /// Runs `f` on the loop `delay` from now.
    pub fn call_later(&mut self, delay: Duration, f: impl FnOnce(&mut Reactor) + 'static) -> TimerHandle {
        self.core.now = Instant::now();
        self.core.timers.schedule(self.core.now, delay, None, TimerAction::Call(Box::new(OnReactor(f))))
    }

    /// Runs `f` on the loop every `interval`, first after one interval
    /// (Twisted's `LoopingCall`), until cancelled.
    pub fn call_every(&mut self, interval: Duration, f: impl FnMut(&mut Reactor) + 'static) -> TimerHandle {
        self.core.now = Instant::now();
        let action = TimerAction::Every(Box::new(OnReactor(f)));
        self.core.timers.schedule(self.core.now, interval, Some(interval), action)
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
        let ok = self.core.write_to(conn.0, Payload::Borrowed(data));
        self.core.process_dirty();
        ok
    }

    /// Writes to a connection by id, taking ownership of `data` (queued
    /// without a copy if the socket does not take it all); false if it is
    /// not open.
    pub fn write_bytes_to(&mut self, conn: ConnId, data: Bytes) -> bool {
        let ok = self.core.write_to(conn.0, Payload::Owned(data));
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
        FdSource::add(&mut self.core, Box::new(handler), interest).map(ConnId)
    }

    /// Stops watching a descriptor added with [`add_fd`](Self::add_fd)
    /// (its handler's `removed` is called); false if it is not watched.
    pub fn remove_fd(&mut self, id: ConnId) -> bool {
        let Some(mut source) = self.core.take(id.0) else { return false };
        if !source.is_fd() {
            self.core.put_back(id.0, source);
            return false;
        }
        source.stop(&mut self.core, id.0);
        self.core.remove(id.0);
        true
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
        let mut f = Some(f);
        let ok = self.core.with_transport(conn.0, &mut |t| {
            if let Some(f) = f.take() {
                f(t)
            }
        });
        self.core.process_dirty();
        ok
    }

    /// Stops gracefully on SIGINT, SIGTERM and SIGHUP (a server that lost
    /// its terminal stops the same way); `on_other` is called on the loop
    /// for any other signal in `extra` (SIGUSR1 for statistics, say).
    pub fn handle_signals(
        &mut self,
        extra: &[i32],
        on_other: impl FnMut(i32, &mut Reactor) + 'static,
    ) -> io::Result<()> {
        let mut wanted = STOP_SIGNALS.to_vec();
        wanted.extend_from_slice(extra);
        let mut signals = signal_hook_mio::v1_0::Signals::new(&wanted)?;
        self.poll.registry().register(&mut signals, SIGNALS, mio::Interest::READABLE)?;
        self.signals = Some(signals);
        self.on_signal = Some(Box::new(on_other));
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        // A stop asked for and not begun yet is begun at once; once
        // stopping, the loop waits for events like any other time.
        let stop_pending = self.core.stop_requested && self.core.stopping.is_none();
        if !self.core.ready.is_empty() || !self.core.dirty.is_empty() || stop_pending {
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
        self.run_loop(&|| false, None).map(|_| ())
    }

    /// Runs the loop until `outcome` is filled or `timeout` passes, then
    /// stops gracefully as [`run`](Self::run) does and returns the value.
    /// An error of kind `TimedOut` if no value came in time (a value filled
    /// in while stopping after the deadline does not count); of kind
    /// `Interrupted` if the reactor was stopped first. See [`crate::outcome`].
    pub fn run_until<T>(&mut self, outcome: &crate::Outcome<T>, timeout: Duration) -> io::Result<T> {
        let deadline = Instant::now() + timeout;
        let ended = self.run_loop(&|| outcome.is_set(), Some(deadline))?;
        let value = outcome.take();
        if ended == Ended::Deadline {
            let why = format!("no result within {:.1} s", timeout.as_secs_f64());
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
        value.ok_or_else(|| io::Error::new(io::ErrorKind::Interrupted, "the reactor stopped before a result arrived"))
    }

    fn run_loop(&mut self, done: &dyn Fn() -> bool, deadline: Option<Instant>) -> io::Result<Ended> {
        let mut ended = Ended::Stopped;
        // Each pass is a turn: bounded by the stop (grace) once one began.
        loop {
            if !self.core.stop_requested {
                if done() {
                    ended = Ended::Done;
                    self.core.stop_requested = true;
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    ended = Ended::Deadline;
                    self.core.stop_requested = true;
                }
            }
            if self.core.stop_requested && self.core.stopping.is_none() {
                self.begin_stop();
            }
            if let Some(deadline) = self.core.stopping
                && (self.core.stats.open == 0 || Instant::now() >= deadline)
            {
                self.finish_stop();
                return Ok(ended);
            }
            let mut timeout = self.poll_timeout();
            if let Some(d) = deadline.filter(|_| self.core.stopping.is_none()) {
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
        let news = dispatch::turn(&mut self.core, &self.events);
        if news.signalled {
            self.take_signals();
        }
        if news.woke {
            self.run_thread_calls();
        }
        self.fire_timers();
        self.core.enforce_budget();
    }

    fn fire_timers(&mut self) {
        let mark = self.core.timers.mark();
        for _ in 0..10_000 {
            let Some((handle, action)) = self.core.timers.pop_due_before(self.core.now, mark) else { return };
            self.core.stats.timers_fired += 1;
            match action {
                TimerAction::Source { token, tag, kind } => {
                    dispatch::source_timer(&mut self.core, handle, token, tag, kind)
                }
                TimerAction::Call(f) => {
                    if let Err(e) = crate::guard::guarded(|| f.run(self)) {
                        self.core.stats.panics += 1;
                        log::error!("a call_later callback failed: {e}");
                    }
                }
                TimerAction::IdleSweep => {
                    if self.core.sweep_idle() {
                        self.core.timers.restore(handle, TimerAction::IdleSweep);
                    } else {
                        self.core.timers.cancel(handle);
                    }
                }
                TimerAction::Every(mut f) => match crate::guard::guarded(|| f.run(self)) {
                    Ok(()) => self.core.timers.restore(handle, TimerAction::Every(f)),
                    Err(e) => {
                        self.core.stats.panics += 1;
                        log::error!("a call_every callback failed: {e}; it will not run again");
                        self.core.timers.cancel(handle);
                    }
                },
            }
            self.core.process_dirty();
        }
    }

    fn run_thread_calls(&mut self) {
        if self.shared.take_stop() {
            self.core.stop_requested = true;
        }
        for f in self.shared.take_calls() {
            if let Err(e) = crate::guard::guarded(|| f(self)) {
                self.core.stats.panics += 1;
                log::error!("a call_from_thread closure failed: {e}");
            }
        }
        self.core.process_dirty();
    }

    fn take_signals(&mut self) {
        let Some(mut signals) = self.signals.take() else { return };
        let pending: Vec<i32> = signals.pending().collect();
        self.signals = Some(signals);
        for sig in pending {
            if STOP_SIGNALS.contains(&sig) {
                log::info!("signal {sig}: stopping");
                self.core.stop_requested = true;
            } else if let Some(mut f) = self.on_signal.take() {
                if let Err(e) = crate::guard::guarded(|| f(sig, self)) {
                    self.core.stats.panics += 1;
                    log::error!("the signal handler failed on signal {sig}: {e}");
                }
                self.on_signal = Some(f);
            }
        }
    }

    fn begin_stop(&mut self) {
        self.core.stopping = Some(Instant::now() + self.core.config.shutdown_grace);
        dispatch::begin_stop(&mut self.core);
    }

    fn finish_stop(&mut self) {
        dispatch::finish_stop(&mut self.core);
    }
}

/// Why the loop ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Ended {
    /// A stop was asked for (by `stop`, a handle, a protocol or a signal).
    Stopped,
    /// The awaited outcome arrived.
    Done,
    /// The deadline passed first.
    Deadline,
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
