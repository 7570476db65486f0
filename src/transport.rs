//! A stream connection's two sides: the [`Protocol`] the reactor calls, and
//! what its callbacks can reach: the reactor ([`Context`]), its own
//! connection ([`Transport`]) or, for a UDP protocol, its own datagram
//! socket ([`DatagramTransport`]). The protocol and its transport are
//! defined together because each names the other: callbacks get a
//! transport, and a transport can open a connection for a new protocol
//! ([`Context::connect`]). Factories and UDP protocols are in
//! [`crate::protocol`].
//!
//! These are traits so that the same protocol code runs on a real socket in
//! the reactor and on the in-memory transport of [`crate::testing`].

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::addr::Addr;
use crate::endpoint::ClientEndpoint;
pub use crate::timer::TimerHandle;

/// Names one connection or datagram socket for as long as it lives.
///
/// An id is never given to a later connection, even one that reuses the same
/// internal slot: it carries a generation, so a stale id simply misses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The raw value, for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// An id from a raw value, for tests with the in-memory transport. An
    /// id that names no open connection is harmless: writes to it miss.
    pub fn from_raw(raw: u64) -> ConnId {
        ConnId(raw)
    }
}

/// Names one listening socket: a stream listener or a bound UDP socket
/// (what Twisted calls a port), as `Reactor::listen_*` return it. Give it
/// to [`Context::stop_listening`] or `Reactor::stop_listening` to close it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) u64);

impl ListenerId {
    /// The raw value, for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// An id from a raw value, for tests with the in-memory transport.
    pub fn from_raw(raw: u64) -> ListenerId {
        ListenerId(raw)
    }
}

/// A UDP socket's id (from [`DatagramTransport::id`] or
/// [`Context::connect_udp`]) names it as a listener too, for
/// [`Context::stop_listening`].
impl From<ConnId> for ListenerId {
    fn from(id: ConnId) -> ListenerId {
        ListenerId(id.0)
    }
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&ConnId(self.0), f)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // slot.generation reads better in a trace than the packed integer.
        write!(f, "#{}.{}", self.0 & 0xffff_ffff, self.0 >> 32)
    }
}

/// Why a connection ended, as told to `connection_lost`.
///
/// A typed reason, so that code can match on what happened instead of on
/// the words of a message; [`Display`](fmt::Display) gives the words for logs.
///
/// ```
/// use twirl::Disconnect;
/// let d = Disconnect::HardCap { cap: 1024, buffered: 1000, written: 100 };
/// assert!(!d.is_clean());
/// assert_eq!(d.kind(), Some(std::io::ErrorKind::ConnectionAborted));
/// assert_eq!(d.to_string(), "write buffer would pass its hard cap of 1024 bytes (1000 buffered, 100 more written)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Disconnect {
    /// Closed in an orderly way, by either side.
    Clean,
    /// A read, write or shutdown failed: reset by the peer, broken pipe,
    /// a pending socket error.
    Io(io::Error),
    /// This connection's protocol called `abort_connection`.
    Aborted,
    /// Another part of the program aborted it (`abort_conn` by id).
    AbortedByOther,
    /// The write buffer would have passed its hard cap (see [`crate::Limits`]).
    HardCap {
        /// The hard cap, in bytes.
        cap: usize,
        /// Bytes buffered when the write came.
        buffered: usize,
        /// Bytes of the write that did not fit.
        written: usize,
    },
    /// Nothing was received for longer than the listener's idle timeout.
    Idle {
        /// How long it had been silent.
        silent: Duration,
        /// The idle timeout.
        limit: Duration,
    },
    /// A callback of its protocol panicked (the message says how).
    Panicked(String),
    /// The reactor stopped before the connection flushed its output.
    Stopped,
    /// The connection was open for the listener's maximum lifetime.
    Lifetime {
        /// The maximum lifetime.
        limit: Duration,
    },
    /// The reactor's buffered output passed its memory budget
    /// ([`crate::Config::memory_budget`]), and this connection held the
    /// most of it.
    MemoryBudget {
        /// The budget, in bytes.
        budget: usize,
        /// Bytes buffered over all connections at the time.
        total: usize,
        /// Bytes this connection held.
        held: usize,
    },
    /// TLS failed: the handshake (a bad certificate, a plaintext client,
    /// garbage, a timeout) or a record later on. The error says which.
    Tls(io::Error),
    /// The peer closed the TCP connection without TLS's close_notify: what
    /// was received may have been cut short by an attacker or a crash.
    Truncated,
}

impl Disconnect {
    /// True for an orderly close.
    pub fn is_clean(&self) -> bool {
        matches!(self, Disconnect::Clean)
    }

    /// The I/O error, for [`Disconnect::Io`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Disconnect::Io(e) => Some(e),
            _ => None,
        }
    }

    /// The nearest `io::ErrorKind`, `None` for a clean close: what a client
    /// that reports errors as `io::Error` passes on.
    pub fn kind(&self) -> Option<io::ErrorKind> {
        Some(match self {
            Disconnect::Clean => return None,
            Disconnect::Io(e) | Disconnect::Tls(e) => e.kind(),
            Disconnect::Truncated => io::ErrorKind::UnexpectedEof,
            Disconnect::Aborted
            | Disconnect::AbortedByOther
            | Disconnect::HardCap { .. }
            | Disconnect::MemoryBudget { .. } => io::ErrorKind::ConnectionAborted,
            Disconnect::Idle { .. } | Disconnect::Stopped | Disconnect::Lifetime { .. } => io::ErrorKind::TimedOut,
            Disconnect::Panicked(_) => io::ErrorKind::Other,
        })
    }

    /// The reason as an `io::Error` (kind from [`kind`](Self::kind), message
    /// from `Display`), `None` for a clean close.
    pub fn to_io_error(&self) -> Option<io::Error> {
        self.kind().map(|k| io::Error::new(k, self.to_string()))
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Clean => f.write_str("closed cleanly"),
            Disconnect::Io(e) => write!(f, "{e}"),
            Disconnect::Aborted => f.write_str("aborted by the protocol"),
            Disconnect::AbortedByOther => f.write_str("aborted by another part of the program"),
            Disconnect::HardCap { cap, buffered, written } => write!(
                f,
                "write buffer would pass its hard cap of {cap} bytes ({buffered} buffered, {written} more written)"
            ),
            Disconnect::Idle { silent, limit } => {
                write!(f, "idle for {:.1} s (limit {:.1} s)", silent.as_secs_f64(), limit.as_secs_f64())
            }
            Disconnect::Panicked(msg) => write!(f, "protocol panicked: {msg}"),
            Disconnect::Stopped => f.write_str("reactor stopped before the connection flushed"),
            Disconnect::Lifetime { limit } => write!(f, "open for {:.1} s, the most allowed", limit.as_secs_f64()),
            Disconnect::MemoryBudget { budget, total, held } => write!(
                f,
                "the reactor's buffered output ({total} bytes) passed its memory budget of {budget} bytes, and this connection held the most ({held} bytes)"
            ),
            Disconnect::Tls(e) => write!(f, "TLS: {e}"),
            Disconnect::Truncated => f.write_str("TLS: truncated: the peer closed without close_notify"),
        }
    }
}

/// One connection's behaviour (Twisted's `Protocol`).
pub trait Protocol: 'static {
    /// The connection is open; `t` can already write.
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// Bytes arrived. They are a piece of a stream: a message may be split
    /// across calls or several may come in one (see [`crate::line`]).
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport);

    /// The same bytes, as the reactor read them into its read buffer: scratch
    /// that the next read overwrites, so the protocol may change them in
    /// place. A protocol that works in place (the TLS layer decrypts records
    /// where they lie) saves a copy this way; the default calls
    /// [`data_received`](Protocol::data_received). The reactor calls this
    /// one; a protocol wrapping another should forward both.
    ///
    /// # Examples
    ///
    /// ```
    /// use twirl::{Protocol, Transport};
    /// /// Sends each piece back upper-cased, in place.
    /// struct Shout;
    /// impl Protocol for Shout {
    ///     fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
    ///         t.write(&data.to_ascii_uppercase());
    ///     }
    ///     fn data_received_mut(&mut self, data: &mut [u8], t: &mut dyn Transport) {
    ///         data.make_ascii_uppercase();
    ///         t.write(data);
    ///     }
    /// }
    /// let mut h = twirl::testing::Harness::new(Shout);
    /// h.connect();
    /// h.feed(b"hi");
    /// assert_eq!(h.take_output(), b"HI");
    /// ```
    fn data_received_mut(&mut self, data: &mut [u8], t: &mut dyn Transport) {
        self.data_received(data, t)
    }

    /// The peer half-closed its writing side; nothing more will arrive.
    /// The default closes once pending output is flushed.
    fn read_eof(&mut self, t: &mut dyn Transport) {
        t.lose_connection();
    }

    /// The connection is gone; `cx` still reaches the reactor and other connections.
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let _ = (reason, cx);
    }

    /// The write buffer passed its high-water mark: stop producing.
    fn pause_writing(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// The write buffer drained below its low-water mark: produce again.
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// Everything written has been handed to the socket, and the protocol
    /// asked to hear it with [`Transport::notify_drained`] (Twisted's pull
    /// producer, `resumeProducing`): write the next piece now. Asked once,
    /// told once.
    fn drained(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// A timer set with [`Context::call_later`] or [`Context::call_every`] fired.
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        let _ = (tag, t);
    }

    /// True for a layer that wraps another protocol (TLS): what others do
    /// to this connection by id (`write_to`, `close_conn`, `with_conn`)
    /// must then go through [`through_layer`](Protocol::through_layer).
    #[doc(hidden)]
    fn is_layer(&self) -> bool {
        false
    }

    /// For a layer: runs `f` with the transport the wrapped protocol sees
    /// (writes are encrypted, closing says close_notify). The default runs
    /// `f` with `t` itself.
    #[doc(hidden)]
    fn through_layer(&mut self, t: &mut dyn Transport, f: &mut dyn FnMut(&mut dyn Transport)) {
        f(t)
    }
}

/// A boxed protocol is a protocol: what a [`Factory`](crate::Factory) builds can be driven
/// directly, by [`crate::testing::Harness`] say.
///
/// ```
/// use twirl::{Addr, Factory, Protocol, Transport};
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, d: &[u8], t: &mut dyn Transport) {
///         t.write(d);
///     }
/// }
/// let mut factory = |_: &Addr| Echo;
/// let peer = Addr::Inet("127.0.0.1:5000".parse().unwrap());
/// let mut h = twirl::testing::Harness::new(factory.build_protocol(&peer));
/// h.connect();
/// h.feed(b"hi");
/// assert_eq!(h.take_output(), b"hi");
/// ```
impl<P: Protocol + ?Sized> Protocol for Box<P> {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        (**self).connection_made(t)
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        (**self).data_received(data, t)
    }
    fn data_received_mut(&mut self, data: &mut [u8], t: &mut dyn Transport) {
        (**self).data_received_mut(data, t)
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        (**self).read_eof(t)
    }
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        (**self).connection_lost(reason, cx)
    }
    fn pause_writing(&mut self, t: &mut dyn Transport) {
        (**self).pause_writing(t)
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        (**self).resume_writing(t)
    }
    fn drained(&mut self, t: &mut dyn Transport) {
        (**self).drained(t)
    }
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        (**self).timer_fired(tag, t)
    }
    fn is_layer(&self) -> bool {
        (**self).is_layer()
    }
    fn through_layer(&mut self, t: &mut dyn Transport, f: &mut dyn FnMut(&mut dyn Transport)) {
        (**self).through_layer(t, f)
    }
}

/// The reactor as every callback sees it: the clock, timers, other
/// connections, and stopping.
///
/// Timers set with [`call_later`](Context::call_later) belong to the protocol
/// whose callback set them: they fire its `timer_fired(tag, ...)` and die with
/// its connection.
pub trait Context {
    /// The reactor's monotonic clock (a manual clock under test).
    fn now(&self) -> Instant;
    /// Calls this protocol's `timer_fired(tag)` once, `delay` from now.
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerHandle;
    /// Calls this protocol's `timer_fired(tag)` every `interval` (Twisted's `LoopingCall`).
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle;
    /// Cancels a timer; false if it had already fired or been cancelled.
    fn cancel_timer(&mut self, timer: TimerHandle) -> bool;
    /// Moves an active timer to fire `delay` from now; false if not active.
    fn reschedule_timer(&mut self, timer: TimerHandle, delay: Duration) -> bool;
    /// True while the timer is pending.
    fn timer_active(&self, timer: TimerHandle) -> bool;
    /// Writes to another connection by id (a chat server's broadcast); false
    /// if no such connection is open, or if its writing side is closed
    /// (after `lose_connection` or `shutdown_write`): then the bytes were
    /// dropped. Flow control applies to it as to any write.
    fn write_to(&mut self, conn: ConnId, data: &[u8]) -> bool;
    /// [`write_to`](Context::write_to) taking ownership of `data`: what the
    /// socket does not take now is queued as it is, without a copy.
    fn write_bytes_to(&mut self, conn: ConnId, data: Bytes) -> bool {
        self.write_to(conn, &data)
    }
    /// Writes one message to many connections (a chat room's line to its
    /// members): each queues a reference to the same bytes, so a message
    /// to N connections is one allocation, not N copies. Returns how many
    /// connections took it (see [`write_to`](Context::write_to)).
    fn write_to_each(&mut self, conns: &[ConnId], data: &Bytes) -> usize {
        conns.iter().filter(|c| self.write_bytes_to(**c, data.clone())).count()
    }
    /// Asks another connection to close after flushing; false if no such connection.
    fn close_conn(&mut self, conn: ConnId) -> bool;
    /// Closes another connection now, dropping its unsent bytes (a chat
    /// member that stopped reading, say); false if no such connection.
    fn abort_conn(&mut self, conn: ConnId) -> bool;
    /// Bytes buffered for another connection, `None` if it is not open.
    fn buffered_len_of(&self, conn: ConnId) -> Option<usize>;
    /// Runs `f` with another connection's transport (to half-close it,
    /// pause it...); false if it is not open. From a connection's own
    /// callback, its own id is not "another": use the transport at hand.
    fn with_conn(&mut self, conn: ConnId, f: &mut dyn FnMut(&mut dyn Transport)) -> bool;
    /// Stops the reactor gracefully, as SIGTERM does.
    fn stop_reactor(&mut self);
    /// Ties `producer`'s reading to `consumer`'s output (Twisted's
    /// `registerProducer(producer, streaming=True)`): from now on, when
    /// `consumer`'s write buffer passes its high-water mark `producer` stops
    /// being read, and when it drains below the low-water mark (or
    /// `consumer` ends) `producer` is read again. A relay registers each
    /// side as the other's producer, and a fast sender and a slow reader
    /// then hold about one high-water mark each. One producer per consumer
    /// (a second call replaces the first); false if either is not open.
    fn register_producer(&mut self, consumer: ConnId, producer: ConnId) -> bool {
        let _ = (consumer, producer);
        false
    }
    /// Undoes [`register_producer`](Context::register_producer) for
    /// `consumer` (the producer is left as it is).
    fn unregister_producer(&mut self, consumer: ConnId) {
        let _ = consumer;
    }
    /// Opens a stream connection (TCP or Unix) to `to` for `protocol`, and
    /// returns the id the connection will have: write to it, close it or
    /// abort it by id like any other (writes before it is connected are
    /// refused: wait for its `connection_made`). Closing or aborting it
    /// while it connects cancels it. A host name is resolved on the
    /// resolver pool, never on the loop. If connecting fails, `protocol` hears
    /// it in `connection_lost` (`Disconnect::Io` with the error), so a
    /// relay can close the other side. An error here means it could not
    /// even start (a UDP endpoint, no descriptors, too many lookups
    /// waiting).
    fn connect(&mut self, to: &ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<ConnId> {
        let _ = (to, protocol);
        Err(io::Error::new(io::ErrorKind::Unsupported, "this context cannot open connections"))
    }
    /// Opens a UDP socket connected to `to` (a `udp:` endpoint) for
    /// `protocol`, from an ephemeral local port: only `to`'s datagrams
    /// arrive, and an ICMP port-unreachable reaches `connection_refused`.
    /// Returns the socket's id (close it with
    /// [`stop_listening`](Context::stop_listening)`(id.into())`). A host name is
    /// resolved on a resolver thread: until then the socket does not exist
    /// and `protocol` is not started; if resolving fails, `protocol` is
    /// told through `stopped`.
    fn connect_udp(&mut self, to: &ClientEndpoint, protocol: Box<dyn DatagramProtocol>) -> io::Result<ConnId> {
        let _ = (to, protocol);
        Err(io::Error::new(io::ErrorKind::Unsupported, "this context cannot open sockets"))
    }
    /// Closes a listener (no new connections; those accepted stay open)
    /// or a UDP socket (after sending what it queued; its protocol hears
    /// `stopped`). False if `id` names neither, or it is already closed.
    /// A UDP protocol closes its own socket with
    /// [`DatagramTransport::close`].
    fn stop_listening(&mut self, id: ListenerId) -> bool {
        let _ = id;
        false
    }
    /// The reactor's counters, for a layer that counts its own events (the
    /// TLS layer's handshakes); `None` where there are none.
    #[doc(hidden)]
    fn stats_mut(&mut self) -> Option<&mut crate::stats::Stats> {
        None
    }
}

/// One stream connection (TCP or Unix), handed to every [`crate::Protocol`] callback.
pub trait Transport: Context {
    /// This connection's id.
    fn id(&self) -> ConnId;
    /// Queues `data` for sending. Never blocks: what the socket does not take
    /// now is buffered and flushed when it becomes writable. After
    /// [`lose_connection`](Transport::lose_connection),
    /// [`shutdown_write`](Transport::shutdown_write) or an abort the bytes
    /// are dropped, and logged at debug level (`write_to` on the
    /// connection's id returns false then).
    fn write(&mut self, data: &[u8]);
    /// [`write`](Transport::write) taking ownership of `data`: what the
    /// socket does not take now is queued as it is, without a copy (a
    /// frame kept from a framer, a message shared with other connections).
    fn write_bytes(&mut self, data: Bytes) {
        self.write(&data)
    }
    /// Sends up to `len` bytes of `file` from `offset`, after everything
    /// written before, and returns how many went. On a socket the kernel
    /// copies them from the page cache (`sendfile(2)`) without their
    /// passing through this process, and only as many as the socket takes
    /// now: 0 while it is full or earlier writes wait, never buffering
    /// any. Elsewhere (under TLS, or a file `sendfile` cannot read) a piece
    /// of at most 64 KiB is read and [written](Transport::write_bytes).
    /// Either way, for the rest ask for [`Protocol::drained`](crate::Protocol::drained)
    /// ([`notify_drained`](Transport::notify_drained)) and call it again
    /// then: [`FileSender`](crate::producer::FileSender) does just that.
    ///
    /// A file that cannot be read, or ends before `offset + len`
    /// (`UnexpectedEof`), is an error for the caller to handle; so is a
    /// connection already closed for writing (`NotConnected`).
    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<usize> {
        copy_file(self, file, offset, len)
    }
    /// Closes after everything written so far has been sent.
    fn lose_connection(&mut self);
    /// Closes now, dropping anything unsent.
    fn abort_connection(&mut self);
    /// True once [`lose_connection`](Transport::lose_connection) or
    /// [`abort_connection`](Transport::abort_connection) was called.
    fn is_closing(&self) -> bool;
    /// Half-closes: sends FIN after the buffer drains, keeps reading.
    fn shutdown_write(&mut self);
    /// Stops delivering data until [`resume_reading`](Transport::resume_reading).
    fn pause_reading(&mut self);
    /// Resumes delivering data.
    fn resume_reading(&mut self);
    /// The peer's address.
    fn peer_addr(&self) -> Addr;
    /// This end's address.
    fn local_addr(&self) -> io::Result<Addr>;
    /// Bytes written but not yet taken by the socket.
    fn buffered_len(&self) -> usize;
    /// True from the moment the buffer passes the high-water mark until
    /// `resume_writing` is due (below the low-water mark): it agrees with
    /// the `pause_writing`/`resume_writing` calls. Lets a producer loop
    /// (`while !t.writing_paused() { t.write(..) }`) stop at the mark
    /// without waiting for `pause_writing`, which comes after the callback.
    fn writing_paused(&self) -> bool;
    /// Sets TCP_NODELAY (no-op for Unix sockets).
    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()>;

    /// Backpressure (on by default): while the output is above the
    /// high-water mark, the connection is not read, so a client that sends
    /// without reading is slowed to the pace it reads at and memory stays at
    /// about one high-water mark. A protocol that must keep reading while
    /// its output waits (one that answers a client that sends everything
    /// before it reads anything: the handouts' deadlock client) turns it off
    /// and relies on the hard cap and the reactor's memory budget instead.
    fn set_backpressure(&mut self, on: bool) {
        let _ = on;
    }

    /// Asks for one call of [`Protocol::drained`]
    /// as soon as everything written so far has been handed to the socket
    /// (at once, after this callback, if nothing is waiting): a pull
    /// producer writes a piece, asks, and writes the next piece when told,
    /// so that it never holds more than one piece in memory.
    ///
    /// ```
    /// use twirl::{Protocol, Transport, testing::Harness};
    /// /// Sends `left` pieces of 1 KiB, one at a time.
    /// struct Pieces { left: u32 }
    /// impl Pieces {
    ///     fn next(&mut self, t: &mut dyn Transport) {
    ///         if self.left > 0 {
    ///             self.left -= 1;
    ///             t.write(&[b'x'; 1024]);
    ///             t.notify_drained();
    ///         }
    ///     }
    /// }
    /// impl Protocol for Pieces {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) { self.next(t) }
    ///     fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    ///     fn drained(&mut self, t: &mut dyn Transport) { self.next(t) }
    /// }
    /// let mut h = Harness::new(Pieces { left: 3 });
    /// h.set_peer_reading(false);
    /// h.connect();
    /// assert_eq!(h.buffered_len(), 1024, "one piece waits; the next is not written yet");
    /// h.set_peer_reading(true);
    /// assert_eq!(h.take_output().len(), 3 * 1024);
    /// assert_eq!(h.protocol.left, 0);
    /// ```
    fn notify_drained(&mut self) {}

    /// A whole message arrived (framing helpers call it for each line or
    /// packet). From the first call on, the idle timeout counts from the
    /// last whole message instead of the last byte, so a client that
    /// trickles bytes that never complete a message is idle.
    fn progress(&mut self) {}
}

/// The most [`copy_file`] reads and writes at a time.
const COPY_CHUNK: u64 = 64 * 1024;

/// [`Transport::send_file`] without `sendfile(2)`: reads a piece of the
/// file and writes it. The piece is written whole (and may wait in the
/// connection's buffer), so one call per `drained` holds at most one.
pub(crate) fn copy_file<T: Transport + ?Sized>(t: &mut T, file: &File, offset: u64, len: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(0);
    }
    if t.is_closing() {
        return Err(io::Error::new(io::ErrorKind::NotConnected, "the connection is closed for writing"));
    }
    let mut piece = vec![0; len.min(COPY_CHUNK) as usize];
    let mut interrupted = 0;
    let n = loop {
        match file.read_at(&mut piece, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupted < 16 => interrupted += 1,
            other => break other?,
        }
    };
    if n == 0 {
        return Err(file_ended(offset, len));
    }
    piece.truncate(n);
    t.write_bytes(Bytes::from(piece));
    Ok(n)
}

/// The error for a file that ends before the bytes asked of it.
pub(crate) fn file_ended(offset: u64, len: u64) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("the file ends before byte {}", offset + len))
}

/// One UDP socket, handed to every [`crate::DatagramProtocol`] callback.
pub trait DatagramTransport: Context {
    /// This socket's id.
    fn id(&self) -> ConnId;
    /// Sends one datagram. If the kernel buffer is full it is queued (up to
    /// a bounded number) and sent when writable; beyond that it is dropped
    /// and counted. Returns false if it was dropped.
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> bool;
    /// The address this socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Sends a reply to a request of `request_len` bytes, but only if it is
    /// no larger than the request, or this socket is bound to a loopback
    /// address. A UDP service whose reply can outgrow its request is a
    /// reflection amplifier: a spoofed small request draws a large reply at
    /// a victim. Returns false (and logs at debug) when the reply was dropped.
    ///
    /// ```
    /// use twirl::DatagramTransport;
    /// use twirl::testing::DatagramHarness;
    /// # struct P;
    /// # impl twirl::DatagramProtocol for P {
    /// #     fn datagram_received(&mut self, _: &[u8], _: std::net::SocketAddr, _: &mut dyn DatagramTransport) {}
    /// # }
    /// let to = "192.0.2.9:5000".parse().unwrap();
    /// let mut h = DatagramHarness::new(P).with_local("192.0.2.1:7101".parse().unwrap());
    /// assert!(h.transport.send_reply(b"OK", 2, to));
    /// assert!(!h.transport.send_reply(b"LONGER", 2, to), "dropped off loopback");
    /// ```
    fn send_reply(&mut self, reply: &[u8], request_len: usize, to: SocketAddr) -> bool {
        if reply.len() > request_len && !self.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
            log::debug!(
                "dropped a {}-byte reply to a {request_len}-byte request from {to}: no amplification",
                reply.len()
            );
            return false;
        }
        self.send_to(reply, to)
    }
    /// Datagrams dropped because the send queue was full.
    fn dropped(&self) -> u64;
    /// Closes this socket once the callback returns (Twisted's
    /// `stopListening`): what it queued is sent first (as far as the
    /// kernel takes it), then `stopped` is called and the port is free.
    fn close(&mut self);
    /// Allows sending to broadcast addresses.
    fn set_broadcast(&mut self, on: bool) -> io::Result<()>;
    /// Joins a multicast group (IPv4 with `interface` as the local address,
    /// IPv6 with the interface index in `interface_index`).
    fn join_multicast(&mut self, group: IpAddr, interface: Option<IpAddr>, interface_index: u32) -> io::Result<()>;
    /// Leaves a multicast group joined before.
    fn leave_multicast(&mut self, group: IpAddr, interface: Option<IpAddr>, interface_index: u32) -> io::Result<()>;
}

/// One UDP socket's behaviour (Twisted's `DatagramProtocol`).
pub trait DatagramProtocol: 'static {
    /// The socket is bound and registered.
    fn started(&mut self, t: &mut dyn DatagramTransport) {
        let _ = t;
    }

    /// One whole datagram arrived from `from`.
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport);

    /// A datagram larger than the receive limit arrived; it was not delivered.
    fn datagram_truncated(&mut self, len: usize, from: SocketAddr, t: &mut dyn DatagramTransport) {
        log::debug!("dropped a {len}-byte datagram from {from}: larger than the receive limit");
        let _ = t;
    }

    /// On a connected socket: the peer answered with ICMP port unreachable.
    fn connection_refused(&mut self, t: &mut dyn DatagramTransport) {
        let _ = t;
    }

    /// A timer set with [`Context::call_later`] fired.
    fn timer_fired(&mut self, tag: u64, t: &mut dyn DatagramTransport) {
        let _ = (tag, t);
    }

    /// The socket is closing: the reactor stops, or it was asked to stop
    /// listening (or, for a connect by host name, the name did not resolve).
    fn stopped(&mut self, cx: &mut dyn Context) {
        let _ = cx;
    }
}
