//! One stream connection's state machine, over any byte [`Pipe`] and any
//! [`Host`]: the reactor runs it on a socket, [`crate::testing::Harness`]
//! on memory and a manual clock. One piece of code decides what happens
//! after every callback (flow control, half-close, lingering close, idle
//! timeout, errors), so a protocol behaves the same in its unit test as on
//! a socket.
//!
//! Reading takes a per-turn budget; writing goes straight to the pipe and
//! buffers the rest. Closing is *lingering*: after `lose_connection` with
//! the peer still sending, the connection half-closes and drains the peer's
//! data for a moment ([`crate::Config::linger`]) before closing. Closing
//! with unread data makes the kernel send a reset, and a reset can destroy
//! the last bytes we sent (an `error: ...` line, say) before the peer reads
//! them.

use std::fs::File;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::addr::{Addr, Peer};
use crate::core::idle::{Idleness, MAX_IDLE, silence};
use crate::core::{Host, TimerKind};
use crate::flow::{Cork, Flow, MAX_IOVECS, Payload, WriteBuf};
use crate::guard::guarded;
use crate::policy::Policy;
use crate::protocol::Protocol;
use crate::source::socket::Pipe;
use crate::stats::Stats;
use crate::timer::TimerHandle;
use crate::transport::{ConnId, Context, Disconnect, Transport};

/// A write this large goes to the pipe at once (with whatever the
/// callback corked before it), not at the end of the callback: copying it
/// to wait would cost more than the system call it might save. Smaller
/// writes within one callback are joined: a length prefix and its payload,
/// the answers to a read full of requests.
pub(crate) const DIRECT_WRITE: usize = 1024;

/// An owned write this small that must wait is copied into the queue's
/// tail rather than queued as a piece of its own.
const COPY_BELOW: usize = 64;

/// The most one [`ConnIo::send_file`] sends: more than a write's budget,
/// since the bytes are not copied through this process; the socket's
/// buffer bounds a call anyway.
const FILE_BUDGET: usize = 1 << 20;

/// Where a connection's half-close (`shutdown_write`) stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum HalfClose {
    Open,
    /// Asked for: the FIN goes once the buffer drains.
    Requested,
    Done,
}

/// A connection's pipe and state, apart from its protocol so that both can
/// be borrowed at once during a callback.
pub(crate) struct ConnIo<P> {
    pub id: ConnId,
    pub pipe: P,
    pub wbuf: WriteBuf,
    pub peer: Peer,
    pub policy: Rc<Policy>,
    pub reading_paused: bool,
    pub read_eof: bool,
    pub closing: bool,
    pub lingering: bool,
    /// `shutdown_write`: asked for (sent once the buffer drains), then done.
    pub shutdown: HalfClose,
    /// Urgent data was seen: from now on a short read does not mean drained.
    pub urgent: bool,
    /// Stop reading while the output is above the high-water mark (the
    /// default; a protocol that must keep reading opts out).
    pub backpressure: bool,
    /// The protocol was told to `pause_writing` and not yet to resume; with
    /// backpressure on, reading is stopped meanwhile.
    pub producer_paused: bool,
    /// The protocol reports whole messages (`Transport::progress`): the
    /// idle timeout counts from the last one, not from the last byte.
    pub framed: bool,
    /// A callback is running: small writes wait for its end, to go out
    /// together (see [`DIRECT_WRITE`]).
    pub corked: bool,
    /// The pipe refused bytes (or a file send took this turn's share):
    /// writes queue until it is writable (or the next turn).
    pub blocked: bool,
    /// The protocol asked to be told (`drained`) once its output is all
    /// handed to the pipe.
    pub notify_drained: bool,
    /// Why the connection must end, once it must (boxed: rare, and a
    /// connection's size is what an idle connection costs).
    pub abort: Option<Box<Disconnect>>,
    /// When it last heard something (a byte, or a whole message once
    /// `framed`), on the loop's millisecond clock: the idle sweep compares
    /// it with the policy's timeout (see [`crate::core::idle`]).
    pub last_rx: u32,
}

impl<P: Pipe> ConnIo<P> {
    pub(crate) fn new(id: ConnId, pipe: P, peer: Addr, policy: Rc<Policy>) -> Self {
        ConnIo {
            id,
            pipe,
            wbuf: WriteBuf::default(),
            peer: peer.into(),
            policy,
            reading_paused: false,
            read_eof: false,
            closing: false,
            lingering: false,
            shutdown: HalfClose::Open,
            urgent: false,
            backpressure: true,
            producer_paused: false,
            framed: false,
            corked: false,
            blocked: false,
            notify_drained: false,
            abort: None,
            last_rx: 0,
        }
    }

    pub(crate) fn end(&mut self, why: Disconnect) {
        if self.abort.is_none() {
            self.abort = Some(Box::new(why));
        }
    }

    /// True once nothing more may be written: closing, half-closed, or ending.
    pub(crate) fn write_closed(&self) -> bool {
        self.closing || self.shutdown != HalfClose::Open || self.abort.is_some()
    }

    /// Writes `data`. A small write during a callback waits in the loop's
    /// `cork` (when this connection may hold it) and leaves with the
    /// callback's other writes when it returns; a large one leaves at once,
    /// together with the queue and what was corked (one system call). What
    /// the pipe does not take is queued, up to the hard cap. False if the
    /// bytes were dropped because the writing side is closed.
    pub(crate) fn write(&mut self, data: Payload<'_>, stats: &mut Stats, cork: Option<&mut Cork>) -> bool {
        let len = data.as_slice().len();
        if self.write_closed() {
            if len > 0 {
                log::debug!("{}: dropped {len} bytes written after the connection closed for writing", self.id);
            }
            return false;
        }
        if len == 0 {
            return true;
        }
        if self.blocked {
            return self.enqueue(data, 0, stats);
        }
        let mut cork = cork.filter(|c| c.is_free_for(self.id));
        if self.corked && len < DIRECT_WRITE {
            match cork.as_deref_mut() {
                Some(c) if c.has_room_for(len) => {
                    c.hold(self.id, data.as_slice());
                    return true;
                }
                // Full: what it holds leaves now, with this.
                Some(_) => {}
                // Another connection's callback holds it (this one runs
                // inside it): this connection's own queue corks instead.
                None => return self.enqueue(data, 0, stats),
            }
        }
        let held = cork.as_deref_mut().map(Cork::take).unwrap_or_default();
        let sent = self.send([&held, data.as_slice()], usize::MAX, stats);
        let held_sent = sent.min(held.len());
        if held_sent < held.len() && self.abort.is_none() {
            self.enqueue(Payload::Borrowed(&held[held_sent..]), 0, stats);
        }
        if let Some(c) = cork {
            c.give_back(held);
        }
        let data_sent = sent - held_sent;
        if data_sent == len || self.abort.is_some() {
            return true;
        }
        self.enqueue(data, data_sent, stats)
    }

    /// Queues `data` from `from` on, or ends the connection if that would
    /// pass the hard cap.
    fn enqueue(&mut self, data: Payload<'_>, from: usize, stats: &mut Stats) -> bool {
        let limits = &self.policy.limits;
        let rest = data.as_slice().len() - from;
        if self.wbuf.would_exceed(rest, limits) {
            stats.cap_aborts += 1;
            let why = Disconnect::HardCap { cap: limits.hard_cap, buffered: self.wbuf.len(), written: rest };
            crate::loglimit::conn_event(log::Level::Warn, format_args!("{} ({}): {why}; aborting", self.id, self.peer));
            self.end(why);
            return true;
        }
        match data {
            // A small owned piece costs less copied than queued as its own.
            Payload::Owned(b) if rest > COPY_BELOW => self.wbuf.push_bytes(b.slice(from..)),
            other => self.wbuf.push(&other.as_slice()[from..]),
        }
        stats.buffered_add(rest);
        log::trace!(target: "twirl::loop", "{} buffered {} B", self.id, self.wbuf.len());
        true
    }

    /// Offers the queue and then the two pieces of `after` to the pipe, in
    /// as few system calls as it takes, until it has taken them all,
    /// refuses more (the connection is then `blocked` until it is
    /// writable), or `budget` bytes went; returns how much of `after` was
    /// sent.
    fn send(&mut self, after: [&[u8]; 2], budget: usize, stats: &mut Stats) -> usize {
        let total = after[0].len() + after[1].len();
        let mut sent = 0;
        let mut after_sent = 0;
        for _ in 0..1_000_000 {
            let queued = self.wbuf.len();
            if (queued == 0 && after_sent == total) || sent >= budget {
                break;
            }
            let room = budget - sent;
            // What of `after` is left, as at most two pieces.
            let (a, b) = match after_sent.checked_sub(after[0].len()) {
                Some(k) => (&after[1][k..], &[][..]),
                None => (&after[0][after_sent..], after[1]),
            };
            let (result, asked, pieces) = if queued == 0 && (b.is_empty() || a.len() >= room) {
                // Nothing queued and one piece: the plain write of the fast path.
                let chunk = &a[..a.len().min(room)];
                (self.pipe.write(chunk), chunk.len(), 1)
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
                let n = self.wbuf.slices(room, [a, b], &mut iov);
                let asked: usize = iov[..n].iter().map(|s| s.len()).sum();
                let result = match n {
                    1 => self.pipe.write(&iov[0]),
                    _ => self.pipe.write_vectored(&iov[..n]),
                };
                (result, asked, n)
            };
            match result {
                Ok(n) => {
                    stats.writes += 1;
                    stats.bytes_out += n as u64;
                    if pieces > 1 {
                        stats.vectored_writes += 1;
                    }
                    let from_queue = n.min(queued);
                    self.wbuf.consume(from_queue);
                    stats.buffered_sub(from_queue);
                    after_sent += n - from_queue;
                    sent += n;
                    log::trace!(target: "twirl::loop", "{} wrote {n} B in {pieces} piece(s)", self.id);
                    if n < asked {
                        stats.partial_writes += 1;
                        self.blocked = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stats.would_blocks += 1;
                    log::trace!(target: "twirl::loop", "{} write WouldBlock", self.id);
                    self.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end(Disconnect::Io(e));
                    break;
                }
            }
        }
        after_sent
    }

    /// Sends what is queued, up to `budget` bytes; true if the budget ran
    /// out with bytes still pending and the pipe still taking them.
    fn flush(&mut self, stats: &mut Stats, budget: usize) -> bool {
        self.send([&[], &[]], budget, stats);
        !self.wbuf.is_empty() && !self.blocked && self.abort.is_none()
    }

    /// Sends what this connection corked, if it holds the cork, and queues
    /// what the pipe does not take; the cork is free again after.
    fn send_corked(&mut self, cork: &mut Cork, stats: &mut Stats) {
        if !cork.is_held_by(self.id) {
            return;
        }
        let held = cork.take();
        if self.abort.is_none() && !held.is_empty() {
            let sent = self.send([&held, &[]], usize::MAX, stats);
            if sent < held.len() && self.abort.is_none() {
                self.enqueue(Payload::Borrowed(&held[sent..]), 0, stats);
            }
        }
        cork.give_back(held);
        cork.release();
    }

    /// Sends up to `len` bytes of `file` from `offset` straight from the
    /// file to the pipe, after what was written before (corked or queued),
    /// until the pipe is full or [`FILE_BUDGET`] bytes went; returns how
    /// many went. Nothing is buffered: 0 while earlier bytes wait or the
    /// pipe is full (the caller asks for `drained` and goes on then).
    /// `Unsupported` if the pipe cannot send this file (the caller reads
    /// and writes it instead); `UnexpectedEof` if the file ends first.
    pub(crate) fn send_file<H: Host>(&mut self, file: &File, offset: u64, len: u64, host: &mut H) -> io::Result<usize> {
        if self.write_closed() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the connection is closed for writing"));
        }
        let (cork, stats) = host.cork();
        self.send_corked(cork, stats);
        if !self.wbuf.is_empty() && !self.blocked {
            self.flush(stats, FILE_BUDGET);
        }
        if !self.wbuf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(len).unwrap_or(usize::MAX).min(FILE_BUDGET);
        let mut sent = 0;
        for _ in 0..1_000_000 {
            if sent == want || self.blocked || self.abort.is_some() {
                break;
            }
            let ask = want - sent;
            match self.pipe.send_file(file, offset + sent as u64, ask) {
                Ok(0) if sent == 0 => return Err(crate::transport::file_ended(offset, len)),
                // The file's end: the next call reports it.
                Ok(0) => break,
                Ok(n) => {
                    stats.writes += 1;
                    stats.bytes_out += n as u64;
                    sent += n;
                    // A short send is a full pipe, or the file's end: the
                    // next round tells which (it must not be taken for a
                    // full pipe, whose writable event would never come).
                    log::trace!(target: "twirl::loop", "{} sent {n} B from a file", self.id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stats.would_blocks += 1;
                    log::trace!(target: "twirl::loop", "{} sendfile WouldBlock", self.id);
                    self.blocked = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::Unsupported && sent == 0 => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => break,
                Err(e) => self.end(Disconnect::Io(e)),
            }
        }
        if sent == FILE_BUDGET && len > FILE_BUDGET as u64 && !self.blocked {
            // This turn's share went: the rest waits for the continuation
            // the caller asks for, as if the pipe were full, so that one
            // fast download does not hold the loop from everyone else.
            self.blocked = true;
            host.again();
        }
        Ok(sent)
    }

    /// The end of a callback: what it corked leaves, in one system call.
    fn uncork<H: Host>(&mut self, host: &mut H) {
        self.corked = false;
        let (cork, stats) = host.cork();
        self.send_corked(cork, stats);
        if !self.blocked && !self.wbuf.is_empty() && self.abort.is_none() {
            let budget = host.config().write_budget;
            if self.flush(host.stats(), budget) {
                host.again();
            }
        }
    }
}

/// A connection's [`Transport`] during one of its callbacks.
pub(crate) struct ConnCtx<'a, P, H> {
    pub io: &'a mut ConnIo<P>,
    pub host: &'a mut H,
}

impl<P: Pipe, H: Host> Context for ConnCtx<'_, P, H> {
    fn now(&self) -> Instant {
        self.host.now()
    }
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerHandle {
        self.host.call_later(delay, tag)
    }
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle {
        self.host.call_every(interval, tag)
    }
    fn cancel_timer(&mut self, timer: TimerHandle) -> bool {
        self.host.cancel_timer(timer)
    }
    fn reschedule_timer(&mut self, timer: TimerHandle, delay: Duration) -> bool {
        self.host.reschedule_timer(timer, delay)
    }
    fn timer_active(&self, timer: TimerHandle) -> bool {
        self.host.timer_active(timer)
    }
    fn write_to(&mut self, conn: ConnId, data: &[u8]) -> bool {
        // This connection is out of its slot while its callback runs.
        if conn == self.io.id {
            let (cork, stats) = self.host.cork();
            return self.io.write(Payload::Borrowed(data), stats, Some(cork));
        }
        self.host.write_to(conn, data)
    }
    fn write_bytes_to(&mut self, conn: ConnId, data: Bytes) -> bool {
        if conn == self.io.id {
            let (cork, stats) = self.host.cork();
            return self.io.write(Payload::Owned(data), stats, Some(cork));
        }
        self.host.write_bytes_to(conn, data)
    }
    fn write_to_each(&mut self, conns: &[ConnId], data: &Bytes) -> usize {
        conns.iter().filter(|c| self.write_bytes_to(**c, data.clone())).count()
    }
    fn close_conn(&mut self, conn: ConnId) -> bool {
        if conn == self.io.id {
            self.lose_connection();
            return true;
        }
        self.host.close_conn(conn)
    }
    fn abort_conn(&mut self, conn: ConnId) -> bool {
        if conn == self.io.id {
            self.abort_connection();
            return true;
        }
        self.host.abort_conn(conn)
    }
    fn buffered_len_of(&self, conn: ConnId) -> Option<usize> {
        if conn == self.io.id {
            return Some(self.io.wbuf.len());
        }
        self.host.buffered_len_of(conn)
    }
    fn with_conn(&mut self, conn: ConnId, f: &mut dyn FnMut(&mut dyn Transport)) -> bool {
        self.host.with_conn(conn, f)
    }
    fn stop_reactor(&mut self) {
        self.host.stop_reactor()
    }
    fn connect(&mut self, to: &crate::endpoint::ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<ConnId> {
        self.host.connect(to, protocol)
    }
    fn connect_udp(
        &mut self,
        to: &crate::endpoint::ClientEndpoint,
        protocol: Box<dyn crate::protocol::DatagramProtocol>,
    ) -> io::Result<ConnId> {
        self.host.connect_udp(to, protocol)
    }
    fn stop_listening(&mut self, id: crate::transport::ListenerId) -> bool {
        self.host.stop_listening(id)
    }
    fn register_producer(&mut self, consumer: ConnId, producer: ConnId) -> bool {
        self.host.register_producer(consumer, producer)
    }
    fn unregister_producer(&mut self, consumer: ConnId) {
        self.host.unregister_producer(consumer)
    }
    fn stats_mut(&mut self) -> Option<&mut Stats> {
        Some(self.host.stats())
    }
}

impl<P: Pipe, H: Host> Transport for ConnCtx<'_, P, H> {
    fn id(&self) -> ConnId {
        self.io.id
    }
    fn write(&mut self, data: &[u8]) {
        let (cork, stats) = self.host.cork();
        self.io.write(Payload::Borrowed(data), stats, Some(cork));
    }
    fn write_bytes(&mut self, data: Bytes) {
        let (cork, stats) = self.host.cork();
        self.io.write(Payload::Owned(data), stats, Some(cork));
    }
    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<usize> {
        match self.io.send_file(file, offset, len, self.host) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => crate::transport::copy_file(self, file, offset, len),
            other => other,
        }
    }
    fn lose_connection(&mut self) {
        self.io.closing = true;
    }
    fn abort_connection(&mut self) {
        self.io.end(Disconnect::Aborted);
    }
    fn is_closing(&self) -> bool {
        self.io.closing || self.io.abort.is_some()
    }
    fn shutdown_write(&mut self) {
        if self.io.shutdown == HalfClose::Open {
            self.io.shutdown = HalfClose::Requested;
        }
    }
    fn pause_reading(&mut self) {
        if !self.io.reading_paused {
            log::trace!(target: "twirl::loop", "{} pause reading", self.io.id);
            self.io.reading_paused = true;
        }
    }
    fn resume_reading(&mut self) {
        if self.io.reading_paused {
            log::trace!(target: "twirl::loop", "{} resume reading", self.io.id);
            self.io.reading_paused = false;
            // Data may have arrived meanwhile, and edge-triggered readiness
            // will not report it again: look next turn.
            self.host.again();
        }
    }
    fn peer_addr(&self) -> Addr {
        self.io.peer.addr()
    }
    fn local_addr(&self) -> io::Result<Addr> {
        self.io.pipe.local_addr()
    }
    fn buffered_len(&self) -> usize {
        self.io.wbuf.len()
    }
    fn writing_paused(&self) -> bool {
        // Paused from the moment the buffer passes the high-water mark
        // until `resume_writing` is due: the same hysteresis as the calls.
        self.io.producer_paused || self.io.wbuf.len() > self.io.policy.limits.high_water
    }
    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.io.pipe.set_nodelay(nodelay)
    }
    fn set_backpressure(&mut self, on: bool) {
        if self.io.backpressure && self.io.producer_paused && !on {
            // Reading resumes; what arrived meanwhile raised no event.
            self.host.again();
        }
        self.io.backpressure = on;
    }
    fn notify_drained(&mut self) {
        self.io.notify_drained = true;
    }
    fn progress(&mut self) {
        self.io.framed = true;
        if self.io.policy.idle_after.is_some() {
            self.io.last_rx = self.host.clock_ms();
        }
    }
}

/// Runs one protocol callback with the connection's transport. A panic
/// in it ends this connection only (see [`crate::guard`]).
pub(crate) fn call<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
    f: impl FnOnce(&mut dyn Protocol, &mut dyn Transport),
) {
    io.corked = true;
    let mut t = ConnCtx { io, host };
    if let Err(panic) = guarded(|| f(protocol, &mut t)) {
        t.host.stats().panics += 1;
        log::error!("{} ({}, {}): {panic}; aborting the connection", t.io.id, t.io.peer, t.io.policy.name);
        t.io.end(panic.into());
    }
    t.io.uncork(t.host);
}

/// Starts the idle check, if the connection's policy has a timeout.
pub(crate) fn start_idle<P: Pipe, H: Host>(io: &mut ConnIo<P>, host: &mut H) {
    if let Some(after) = io.policy.idle_after {
        io.last_rx = host.clock_ms();
        host.watch_idle(after);
    }
    // Cancelled with the connection's own timers when it ends.
    if let Some(limit) = io.policy.max_lifetime {
        host.schedule(limit, None, TimerKind::Lifetime, 0);
    }
}

/// A new connection: `connection_made`, then settle. Returns why it ended,
/// if it already did.
pub(crate) fn start<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
) -> Option<Disconnect> {
    host.stats().open += 1;
    log::debug!("{} connection from {}", io.id, io.peer);
    call(protocol, io, host, |p, t| p.connection_made(t));
    settle(protocol, io, host)
}

/// A readiness event, or a continuation: flush, read, settle.
pub(crate) fn ready<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
    r: crate::core::Readiness,
    buf: &mut [u8],
) -> Option<Disconnect> {
    if r.urgent {
        io.urgent = true;
    }
    if r.error
        && io.abort.is_none()
        && let Some(e) = io.pipe.take_error().unwrap_or_else(Some)
    {
        io.end(Disconnect::Io(e));
    }
    if r.writable {
        io.blocked = false;
    }
    if r.writable && io.abort.is_none() && !io.wbuf.is_empty() {
        let budget = host.config().write_budget;
        if io.flush(host.stats(), budget) {
            host.again();
        }
    }
    if r.readable {
        read(protocol, io, host, r.read_closed, buf);
    }
    settle(protocol, io, host)
}

/// Reads until `WouldBlock`, a short read, EOF, or the budget; each read
/// that comes back full doubles the next one, up to all of `buf`.
fn read<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
    read_closed: bool,
    buf: &mut [u8],
) {
    let mut budget = host.config().read_budget;
    let full = buf.len();
    let first = host.config().read_buffer.clamp(1, full);
    let mut size = first;
    for _ in 0..1_000_000 {
        if io.read_eof || io.abort.is_some() {
            return;
        }
        // A closing connection drains what the peer sends (and drops it),
        // so that a peer still sending is not left blocked, unable to read
        // what we flush, and the close ends without a reset.
        // Backpressure: paused at the mark, or past it within this turn's
        // reads (the settle that follows pauses the producer).
        let backlogged = io.backpressure && (io.producer_paused || io.wbuf.len() > io.policy.limits.high_water);
        if !io.closing && (io.reading_paused || backlogged) {
            return;
        }
        // Under backpressure a read is no larger than the room left below
        // the high-water mark (but never below the first read's size), so
        // what an echo holds stays about one mark and one small read.
        let room = if io.backpressure { io.policy.limits.high_water.saturating_sub(io.wbuf.len()) } else { full };
        let buf = &mut buf[..size.min(room.max(first))];
        match io.pipe.read(buf) {
            Ok(0) => {
                host.stats().reads += 1;
                io.read_eof = true;
                log::trace!(target: "twirl::loop", "{} read EOF", io.id);
                if !io.closing {
                    call(protocol, io, host, |p, t| p.read_eof(t));
                }
                return;
            }
            Ok(n) => {
                let stats = host.stats();
                stats.reads += 1;
                stats.bytes_in += n as u64;
                if io.policy.idle_after.is_some() && !io.framed && !io.closing {
                    io.last_rx = host.clock_ms();
                }
                log::trace!(target: "twirl::loop", "{} read {n} B", io.id);
                if !io.closing {
                    call(protocol, io, host, |p, t| p.data_received_mut(&mut buf[..n], t));
                }
                // A short read means the pipe is drained, unless the event
                // said a FIN came too (read on to see EOF), or urgent data
                // was seen (a read stops short at its mark).
                if n < buf.len() && !read_closed && !io.urgent {
                    return;
                }
                if n == buf.len() {
                    size = (size * 2).min(full);
                }
                budget = budget.saturating_sub(n);
                if budget == 0 {
                    log::trace!(target: "twirl::loop", "{} read budget spent; continuing next turn", io.id);
                    host.again();
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                host.stats().would_blocks += 1;
                log::trace!(target: "twirl::loop", "{} read WouldBlock", io.id);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                io.end(Disconnect::Io(e));
                return;
            }
        }
    }
    host.again();
}

/// One of the connection's timers fired: its protocol's, the lingering
/// close's, or the idle check's.
pub(crate) fn timer<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
    kind: TimerKind,
    tag: u64,
) -> Option<Disconnect> {
    match kind {
        TimerKind::Proto if !io.lingering => call(protocol, io, host, |p, t| p.timer_fired(tag, t)),
        TimerKind::Linger if io.lingering => return Some(Disconnect::Clean),
        TimerKind::Idle => idle_check(io, host),
        TimerKind::Lifetime => {
            let limit = io.policy.max_lifetime.unwrap_or_default();
            let (id, peer, name) = (io.id, &io.peer, &io.policy.name);
            let open = limit.as_secs_f64();
            crate::loglimit::conn_event(
                log::Level::Info,
                format_args!("{id} ({peer}, {name}): closing: open for {open:.1} s, the most allowed"),
            );
            io.end(Disconnect::Lifetime { limit });
        }
        _ => {}
    }
    settle(protocol, io, host)
}

/// Whether the connection has been silent past its idle timeout, for the
/// sweep (see [`crate::core::idle`]).
pub(crate) fn idleness<P>(io: &ConnIo<P>, now_ms: u32) -> Idleness {
    match io.policy.idle_after {
        None => Idleness::Unwatched,
        Some(after) if silence(io.last_rx, now_ms) >= after.min(MAX_IDLE) => Idleness::Due,
        Some(_) => Idleness::Quiet,
    }
}

/// Ends the connection if it stayed silent past its idle timeout.
fn idle_check<P: Pipe, H: Host>(io: &mut ConnIo<P>, host: &mut H) {
    let Some(after) = io.policy.idle_after else { return };
    let silent = silence(io.last_rx, host.clock_ms());
    if silent >= after.min(MAX_IDLE) && io.abort.is_none() {
        host.stats().idle_closed += 1;
        let why = Disconnect::Idle { silent, limit: after };
        let (id, peer, name) = (io.id, &io.peer, &io.policy.name);
        crate::loglimit::conn_event(log::Level::Info, format_args!("{id} ({peer}, {name}): closing: {why}"));
        io.end(why);
    }
}

/// Runs `f` with the transport from outside the connection's callbacks, then settles.
pub(crate) fn with_transport<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
    f: &mut dyn FnMut(&mut dyn Transport),
) -> Option<Disconnect> {
    // A layer (TLS) hands `f` the transport its wrapped protocol sees.
    call(protocol, io, host, |p, t| p.through_layer(t, f));
    settle(protocol, io, host)
}

/// Whether [`settle`] has anything to do after a write from outside the
/// connection's callbacks: end it, or tell its protocol to pause.
pub(crate) fn wants_settle<P>(io: &ConnIo<P>) -> bool {
    io.abort.is_some() || (!io.producer_paused && io.wbuf.len() > io.policy.limits.high_water)
}

/// Applies what the last callback asked for; returns why the connection
/// ended, if it did.
pub(crate) fn settle<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
) -> Option<Disconnect> {
    for _ in 0..64 {
        if let Some(why) = io.abort.take() {
            return Some(*why);
        }
        match io.wbuf.flow(&io.policy.limits, &mut io.producer_paused) {
            Some(Flow::Pause) => {
                log::trace!(target: "twirl::loop", "{} pause_writing ({} B buffered)", io.id, io.wbuf.len());
                if io.backpressure {
                    log::trace!(target: "twirl::loop", "{} stop reading until the output drains", io.id);
                    host.stats().backpressured += 1;
                }
                host.producer_flow(true);
                call(protocol, io, host, |p, t| p.pause_writing(t));
                continue;
            }
            Some(Flow::Resume) => {
                log::trace!(target: "twirl::loop", "{} resume_writing ({} B buffered)", io.id, io.wbuf.len());
                if io.backpressure {
                    // What arrived meanwhile raised no new event.
                    host.again();
                }
                host.producer_flow(false);
                call(protocol, io, host, |p, t| p.resume_writing(t));
                continue;
            }
            None => {}
        }
        if !io.wbuf.is_empty() {
            return None;
        }
        // Not while the pipe is full either: a file sent straight to it
        // leaves nothing queued, yet is not all taken.
        if io.notify_drained && !io.blocked && !io.write_closed() {
            io.notify_drained = false;
            call(protocol, io, host, |p, t| p.drained(t));
            continue;
        }
        if io.closing {
            if io.read_eof {
                return Some(Disconnect::Clean);
            }
            if !io.lingering {
                io.lingering = true;
                // Already half-closed (`shutdown_write` earlier): a second
                // shutdown fails with ENOTCONN once the peer's FIN is in.
                let shut = io.shutdown == HalfClose::Done;
                io.shutdown = HalfClose::Done;
                if !shut && let Err(e) = io.pipe.shutdown_write() {
                    return Some(Disconnect::Io(e));
                }
                let linger = host.config().linger;
                host.schedule(linger, None, TimerKind::Linger, 0);
                // Drain what the peer already sent: no new event may come.
                host.again();
            }
            return None;
        }
        if io.shutdown == HalfClose::Requested {
            io.shutdown = HalfClose::Done;
            log::trace!(target: "twirl::loop", "{} shutdown write", io.id);
            if let Err(e) = io.pipe.shutdown_write() {
                return Some(Disconnect::Io(e));
            }
        }
        if io.read_eof && io.shutdown == HalfClose::Done {
            return Some(Disconnect::Clean);
        }
        return None;
    }
    // Out of rounds (a pull producer whose every piece the socket took at
    // once): what the last round asked for (another `drained`, a close, a
    // half-close) would wait for an event that may never come, so continue
    // next turn.
    host.again();
    None
}

/// The connection ended: count it, cancel its timers (its protocol's
/// too: they die with it), and tell the protocol.
pub(crate) fn finish<P: Pipe, H: Host>(
    protocol: &mut dyn Protocol,
    io: &mut ConnIo<P>,
    host: &mut H,
    reason: &Disconnect,
) {
    let stats = host.stats();
    stats.closed += 1;
    stats.open = stats.open.saturating_sub(1);
    stats.buffered_sub(io.wbuf.len());
    io.wbuf.clear();
    log::debug!("{} closed ({}): {reason}", io.id, io.peer);
    host.cancel_own_timers();
    if io.producer_paused {
        // A consumer that ends full must not leave its producer unread.
        host.producer_flow(false);
    }
    host.unregister_producer(io.id);
    if let Err(panic) = guarded(|| protocol.connection_lost(reason, host)) {
        host.stats().panics += 1;
        log::error!("{} ({}, {}): in connection_lost: {panic}", io.id, io.peer, io.policy.name);
    }
    // Timers set from connection_lost die with it too.
    host.cancel_own_timers();
}
