//! One stream connection in the loop: reading with a per-turn budget,
//! writing straight to the socket and buffering the rest, and applying after
//! every callback what the protocol asked for (flow control, half-close, close).
//!
//! Closing is *lingering*: after `lose_connection` with the peer still
//! sending, we half-close and drain its data for a moment before closing the
//! socket. Closing with unread data makes the kernel send a reset, and a
//! reset can destroy the last bytes we sent (an `error: ...` line, say)
//! before the peer reads them.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::flow::{Flow, Limits, WriteBuf};
use crate::guard::guarded;
use crate::listener::Policy;
use crate::protocol::Protocol;
use crate::reactor::{Core, Readiness, Source, TimerAction};
use crate::stats::Stats;
use crate::stream::Stream;
use crate::timer::TimerHandle;
use crate::transport::{ConnId, Context, Disconnect, Transport};

/// Who made the connection: a listener (whose counts it holds a place in),
/// or a client factory to tell on loss.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    Listener(Rc<Policy>),
    Client(usize, Rc<Policy>),
}

impl Origin {
    pub(crate) fn policy(&self) -> &Policy {
        match self {
            Origin::Listener(p) | Origin::Client(_, p) => p,
        }
    }

    /// A name for logs.
    fn name(&self) -> &str {
        &self.policy().name
    }
}

/// A connection's idle timeout: when it last received, and the timer that
/// checks. Reads only stamp `last_rx`; the timer re-arms itself from that
/// stamp when it fires, so the hot path never touches the timer queue.
#[derive(Debug)]
pub(crate) struct Idle {
    last_rx: Instant,
    timer: TimerHandle,
}

pub(crate) struct Conn {
    pub protocol: Box<dyn Protocol>,
    pub io: ConnIo,
}

/// A connection's socket and state, apart from its protocol so that both can
/// be borrowed at once during a callback.
pub(crate) struct ConnIo {
    pub token: u64,
    pub stream: Stream,
    pub wbuf: WriteBuf,
    pub peer: Addr,
    pub origin: Origin,
    pub reading_paused: bool,
    pub read_eof: bool,
    pub closing: bool,
    pub lingering: bool,
    pub shutdown_requested: bool,
    pub shutdown_done: bool,
    /// Why the connection must end, once it must (boxed: rare, and a
    /// connection's size is what an idle connection costs).
    pub abort: Option<Box<Disconnect>>,
    pub idle: Option<Idle>,
}

impl ConnIo {
    pub(crate) fn new(token: u64, stream: Stream, peer: Addr, origin: Origin) -> ConnIo {
        ConnIo {
            token,
            stream,
            wbuf: WriteBuf::default(),
            peer,
            origin,
            reading_paused: false,
            read_eof: false,
            closing: false,
            lingering: false,
            shutdown_requested: false,
            shutdown_done: false,
            abort: None,
            idle: None,
        }
    }

    fn id(&self) -> ConnId {
        ConnId(self.token)
    }

    fn limits(&self) -> &Limits {
        &self.origin.policy().limits
    }

    /// Writes now what the socket takes, buffers the rest up to the hard cap.
    pub(crate) fn write(&mut self, data: &[u8], stats: &mut Stats) {
        if data.is_empty() || self.closing || self.shutdown_requested || self.abort.is_some() {
            return;
        }
        let mut rest = data;
        if self.wbuf.is_empty() {
            loop {
                match self.stream.write(rest) {
                    Ok(n) => {
                        stats.writes += 1;
                        stats.bytes_out += n as u64;
                        rest = &rest[n..];
                        log::trace!(target: "twirl::loop", "{} wrote {n} B{}", self.id(), if rest.is_empty() { "" } else { " (partial)" });
                        if rest.is_empty() {
                            return;
                        }
                        stats.partial_writes += 1;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        stats.would_blocks += 1;
                        log::trace!(target: "twirl::loop", "{} write WouldBlock", self.id());
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.abort = Some(Box::new(Disconnect::Io(e)));
                        return;
                    }
                }
            }
        }
        if self.wbuf.would_exceed(rest.len(), self.limits()) {
            stats.cap_aborts += 1;
            let why =
                Disconnect::HardCap { cap: self.limits().hard_cap, buffered: self.wbuf.len(), written: rest.len() };
            log::warn!("{} ({}): {why}; aborting", self.id(), self.peer);
            self.abort = Some(Box::new(why));
            return;
        }
        self.wbuf.push(rest);
        stats.buffered_add(rest.len());
        log::trace!(target: "twirl::loop", "{} buffered {} B", self.id(), self.wbuf.len());
    }

    /// Sends buffered bytes until `WouldBlock` or `budget`; true if the
    /// budget ran out with bytes still pending.
    fn flush(&mut self, stats: &mut Stats, budget: usize) -> bool {
        let mut sent = 0;
        while !self.wbuf.is_empty() {
            if sent >= budget {
                return true;
            }
            let pending = self.wbuf.pending();
            let chunk = &pending[..pending.len().min(budget - sent)];
            match self.stream.write(chunk) {
                Ok(n) => {
                    stats.writes += 1;
                    stats.bytes_out += n as u64;
                    stats.buffered_sub(n);
                    if n < chunk.len() {
                        stats.partial_writes += 1;
                    }
                    self.wbuf.consume(n);
                    sent += n;
                    log::trace!(target: "twirl::loop", "{} flushed {n} B, {} B still buffered", self.id(), self.wbuf.len());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stats.would_blocks += 1;
                    log::trace!(target: "twirl::loop", "{} flush WouldBlock", self.id());
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.abort = Some(Box::new(Disconnect::Io(e)));
                    return false;
                }
            }
        }
        false
    }
}

/// The reactor as any callback sees it, on behalf of the source `token`.
pub(crate) struct CoreCx<'a> {
    pub core: &'a mut Core,
    pub token: u64,
}

impl Context for CoreCx<'_> {
    fn now(&self) -> Instant {
        self.core.now
    }
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerHandle {
        let action = TimerAction::Proto { token: self.token, tag };
        self.core.timers.schedule(self.core.now, delay, None, action)
    }
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle {
        let action = TimerAction::Proto { token: self.token, tag };
        self.core.timers.schedule(self.core.now, interval, Some(interval), action)
    }
    fn cancel_timer(&mut self, timer: TimerHandle) -> bool {
        self.core.timers.cancel(timer)
    }
    fn reschedule_timer(&mut self, timer: TimerHandle, delay: Duration) -> bool {
        self.core.timers.reschedule(self.core.now, timer, delay)
    }
    fn timer_active(&self, timer: TimerHandle) -> bool {
        self.core.timers.is_active(timer)
    }
    fn write_to(&mut self, conn: ConnId, data: &[u8]) -> bool {
        self.core.write_to(conn.0, data)
    }
    fn close_conn(&mut self, conn: ConnId) -> bool {
        self.core.close_conn(conn.0)
    }
    fn abort_conn(&mut self, conn: ConnId) -> bool {
        self.core.abort_conn(conn.0)
    }
    fn buffered_len_of(&self, conn: ConnId) -> Option<usize> {
        self.core.buffered_len_of(conn.0)
    }
    fn with_conn(&mut self, conn: ConnId, f: &mut dyn FnMut(&mut dyn Transport)) -> bool {
        self.core.with_transport(conn.0, f)
    }
    fn stop_reactor(&mut self) {
        self.core.stop_requested = true;
    }
}

/// A connection's [`Transport`] during one of its callbacks.
pub(crate) struct ConnCtx<'a> {
    pub io: &'a mut ConnIo,
    pub cx: CoreCx<'a>,
}

impl Context for ConnCtx<'_> {
    fn now(&self) -> Instant {
        self.cx.now()
    }
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerHandle {
        self.cx.call_later(delay, tag)
    }
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle {
        self.cx.call_every(interval, tag)
    }
    fn cancel_timer(&mut self, timer: TimerHandle) -> bool {
        self.cx.cancel_timer(timer)
    }
    fn reschedule_timer(&mut self, timer: TimerHandle, delay: Duration) -> bool {
        self.cx.reschedule_timer(timer, delay)
    }
    fn timer_active(&self, timer: TimerHandle) -> bool {
        self.cx.timer_active(timer)
    }
    fn write_to(&mut self, conn: ConnId, data: &[u8]) -> bool {
        // This connection is out of its slot while its callback runs.
        if conn.0 == self.io.token {
            self.write(data);
            return true;
        }
        self.cx.write_to(conn, data)
    }
    fn close_conn(&mut self, conn: ConnId) -> bool {
        if conn.0 == self.io.token {
            self.lose_connection();
            return true;
        }
        self.cx.close_conn(conn)
    }
    fn abort_conn(&mut self, conn: ConnId) -> bool {
        if conn.0 == self.io.token {
            self.abort_connection();
            return true;
        }
        self.cx.abort_conn(conn)
    }
    fn buffered_len_of(&self, conn: ConnId) -> Option<usize> {
        if conn.0 == self.io.token {
            return Some(self.io.wbuf.len());
        }
        self.cx.buffered_len_of(conn)
    }
    fn with_conn(&mut self, conn: ConnId, f: &mut dyn FnMut(&mut dyn Transport)) -> bool {
        self.cx.with_conn(conn, f)
    }
    fn stop_reactor(&mut self) {
        self.cx.stop_reactor()
    }
}

impl Transport for ConnCtx<'_> {
    fn id(&self) -> ConnId {
        ConnId(self.io.token)
    }
    fn write(&mut self, data: &[u8]) {
        self.io.write(data, &mut self.cx.core.stats);
    }
    fn lose_connection(&mut self) {
        self.io.closing = true;
    }
    fn abort_connection(&mut self) {
        if self.io.abort.is_none() {
            self.io.abort = Some(Box::new(Disconnect::Aborted));
        }
    }
    fn is_closing(&self) -> bool {
        self.io.closing || self.io.abort.is_some()
    }
    fn shutdown_write(&mut self) {
        self.io.shutdown_requested = true;
    }
    fn pause_reading(&mut self) {
        if !self.io.reading_paused {
            log::trace!(target: "twirl::loop", "{} pause reading", self.id());
            self.io.reading_paused = true;
        }
    }
    fn resume_reading(&mut self) {
        if self.io.reading_paused {
            log::trace!(target: "twirl::loop", "{} resume reading", self.id());
            self.io.reading_paused = false;
            // Data may have arrived meanwhile, and edge-triggered readiness
            // will not report it again: look next turn.
            self.cx.core.ready.push(self.io.token);
        }
    }
    fn peer_addr(&self) -> Addr {
        self.io.peer.clone()
    }
    fn local_addr(&self) -> io::Result<Addr> {
        self.io.stream.local_addr()
    }
    fn buffered_len(&self) -> usize {
        self.io.wbuf.len()
    }
    fn writing_paused(&self) -> bool {
        self.io.wbuf.len() > self.io.limits().high_water
    }
    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.io.stream.set_nodelay(nodelay)
    }
}

/// Builds the transport for a callback: the protocol and the I/O state are
/// separate fields, so both can be borrowed at once.
/// A panic in the callback aborts this connection only (see [`crate::guard`]).
macro_rules! with_ctx {
    ($core:expr, $conn:expr, |$p:ident, $t:ident| $body:expr) => {{
        let Conn { protocol: $p, io } = &mut *$conn;
        let token = io.token;
        let mut ctx = ConnCtx { io, cx: CoreCx { core: $core, token } };
        let result = guarded(|| {
            let $t = &mut ctx;
            $body
        });
        if let Err(e) = result {
            ctx.cx.core.stats.panics += 1;
            log::error!("{} ({}, {}): {e}; aborting the connection", ConnId(token), ctx.io.peer, ctx.io.origin.name());
            ctx.io.abort = Some(Box::new(e.into()));
        }
    }};
}

impl Core {
    /// Registers and starts a new connection: `connection_made`, then settle.
    pub(crate) fn start_conn(&mut self, token: u64, mut conn: Box<Conn>) {
        self.stats.open += 1;
        log::debug!("{} connection from {}", ConnId(token), conn.io.peer);
        with_ctx!(self, conn, |p, t| p.connection_made(t));
        self.settle_or_finish(token, conn);
    }

    /// A readiness event (or a continuation) for a connection.
    pub(crate) fn conn_ready(&mut self, token: u64, mut conn: Box<Conn>, r: Readiness) {
        if r.error && conn.io.abort.is_none() {
            if let Some(e) = conn.io.stream.take_error().unwrap_or_else(Some) {
                conn.io.abort = Some(Box::new(Disconnect::Io(e)));
            }
        }
        if r.writable && conn.io.abort.is_none() && !conn.io.wbuf.is_empty() {
            let budget = self.config.write_budget;
            if conn.io.flush(&mut self.stats, budget) {
                self.ready.push(token);
            }
        }
        if r.readable {
            self.read(&mut conn, r.read_closed);
        }
        self.settle_or_finish(token, conn);
    }

    /// Reads until `WouldBlock`, a short read, EOF, or the budget.
    fn read(&mut self, conn: &mut Conn, read_closed: bool) {
        let mut whole = std::mem::take(&mut self.read_buf);
        let buf = &mut whole[..self.config.read_buffer.max(1024)];
        let mut budget = self.config.read_budget;
        for _ in 0..1_000_000 {
            let io = &conn.io;
            if io.reading_paused || io.read_eof || io.abort.is_some() || (io.closing && !io.lingering) {
                break;
            }
            match conn.io.stream.read(buf) {
                Ok(0) => {
                    self.stats.reads += 1;
                    conn.io.read_eof = true;
                    log::trace!(target: "twirl::loop", "{} read EOF", conn.io.id());
                    if !conn.io.lingering {
                        with_ctx!(self, conn, |p, t| p.read_eof(t));
                    }
                    break;
                }
                Ok(n) => {
                    self.stats.reads += 1;
                    self.stats.bytes_in += n as u64;
                    if let Some(idle) = &mut conn.io.idle {
                        idle.last_rx = self.now;
                    }
                    log::trace!(target: "twirl::loop", "{} read {n} B", conn.io.id());
                    if !conn.io.lingering {
                        with_ctx!(self, conn, |p, t| p.data_received(&buf[..n], t));
                    }
                    // A short read means the socket is drained, unless the
                    // event said a FIN came too: then read on to see EOF.
                    if n < buf.len() && !read_closed {
                        break;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        log::trace!(target: "twirl::loop", "{} read budget spent; continuing next turn", conn.io.id());
                        self.ready.push(conn.io.token);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stats.would_blocks += 1;
                    log::trace!(target: "twirl::loop", "{} read WouldBlock", conn.io.id());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    conn.io.abort = Some(Box::new(Disconnect::Io(e)));
                    break;
                }
            }
        }
        self.read_buf = whole;
    }

    /// A protocol timer on a connection.
    pub(crate) fn conn_timer(&mut self, token: u64, mut conn: Box<Conn>, tag: u64) {
        if !conn.io.lingering {
            with_ctx!(self, conn, |p, t| p.timer_fired(tag, t));
        }
        self.settle_or_finish(token, conn);
    }

    fn settle_or_finish(&mut self, token: u64, mut conn: Box<Conn>) {
        match self.settle(&mut conn) {
            Some(reason) => self.finish_conn(token, conn, reason),
            None => self.put_back(token, Source::Conn(conn)),
        }
    }

    /// Applies what the last callback asked for; returns why the connection
    /// ended, if it did.
    fn settle(&mut self, conn: &mut Conn) -> Option<Disconnect> {
        for _ in 0..64 {
            if let Some(why) = conn.io.abort.take() {
                return Some(*why);
            }
            match conn.io.wbuf.flow(&conn.io.origin.policy().limits) {
                Some(Flow::Pause) => {
                    log::trace!(target: "twirl::loop", "{} pause_writing ({} B buffered)", conn.io.id(), conn.io.wbuf.len());
                    with_ctx!(self, conn, |p, t| p.pause_writing(t));
                    continue;
                }
                Some(Flow::Resume) => {
                    log::trace!(target: "twirl::loop", "{} resume_writing ({} B buffered)", conn.io.id(), conn.io.wbuf.len());
                    with_ctx!(self, conn, |p, t| p.resume_writing(t));
                    continue;
                }
                None => {}
            }
            if !conn.io.wbuf.is_empty() {
                return None;
            }
            let io = &mut conn.io;
            if io.closing {
                if io.read_eof || self.stopping.is_some() {
                    return Some(Disconnect::Clean);
                }
                if !io.lingering {
                    io.lingering = true;
                    if let Err(e) = io.stream.shutdown_write() {
                        return Some(Disconnect::Io(e));
                    }
                    self.timers.schedule(self.now, self.config.linger, None, TimerAction::Linger(io.token));
                    self.ready.push(io.token);
                }
                return None;
            }
            if io.shutdown_requested && !io.shutdown_done {
                io.shutdown_done = true;
                log::trace!(target: "twirl::loop", "{} shutdown write", io.id());
                if let Err(e) = io.stream.shutdown_write() {
                    return Some(Disconnect::Io(e));
                }
            }
            if io.read_eof && io.shutdown_done {
                return Some(Disconnect::Clean);
            }
            return None;
        }
        None
    }

    /// Frees the slot, closes the socket and tells the protocol and its factory.
    #[allow(clippy::boxed_local)] // the box comes straight out of its slot; it is freed here
    pub(crate) fn finish_conn(&mut self, token: u64, conn: Box<Conn>, reason: Disconnect) {
        self.remove(token);
        self.stats.closed += 1;
        self.stats.open = self.stats.open.saturating_sub(1);
        self.stats.buffered_sub(conn.io.wbuf.len());
        let Conn { mut protocol, io } = *conn;
        log::debug!("{} closed ({}): {reason}", ConnId(token), io.peer);
        if let Some(idle) = &io.idle {
            self.timers.cancel(idle.timer);
        }
        let origin = io.origin.clone();
        if let Origin::Listener(l) = &origin {
            l.release(&io.peer);
        }
        let peer = io.peer.clone();
        drop(io);
        if let Err(e) = guarded(|| protocol.connection_lost(&reason, &mut CoreCx { core: self, token })) {
            self.stats.panics += 1;
            log::error!("{} ({peer}, {}): in connection_lost: {e}", ConnId(token), origin.name());
        }
        if let Origin::Client(client, _) = origin {
            self.client_lost(client, &reason);
        }
    }

    /// Starts the idle check for a new connection.
    pub(crate) fn idle_timer(&mut self, token: u64, after: Duration) -> Idle {
        let timer = self.timers.schedule(self.now, after, None, TimerAction::Idle(token));
        Idle { last_rx: self.now, timer }
    }

    /// The idle timer fired: close the connection if it stayed silent,
    /// otherwise check again when it could next be idle long enough.
    pub(crate) fn idle_check(&mut self, token: u64) {
        let Some(source) = self.take(token) else { return };
        let Source::Conn(mut conn) = source else { return self.put_back(token, source) };
        let now = self.now;
        let after = conn.io.origin.policy().idle_after.unwrap_or(Duration::MAX);
        if let Some(idle) = &mut conn.io.idle {
            let silent = now.saturating_duration_since(idle.last_rx);
            if silent >= after {
                self.stats.idle_closed += 1;
                let why = Disconnect::Idle { silent, limit: after };
                log::info!("{} ({}, {}): closing: {why}", ConnId(token), conn.io.peer, conn.io.origin.name());
                conn.io.abort = Some(Box::new(why));
            } else {
                idle.timer = self.timers.schedule(now, after - silent, None, TimerAction::Idle(token));
            }
        }
        self.settle_or_finish(token, conn);
    }

    /// The lingering close waited long enough.
    pub(crate) fn linger_expired(&mut self, token: u64) {
        if let Some(source) = self.take(token) {
            match source {
                Source::Conn(c) => self.finish_conn(token, c, Disconnect::Clean),
                other => self.put_back(token, other),
            }
        }
    }

    pub(crate) fn write_to(&mut self, token: u64, data: &[u8]) -> bool {
        let (idx, generation) = crate::reactor::split(token);
        let Some(slot) = self.slots.get_mut(idx).filter(|s| s.generation == generation) else { return false };
        let Source::Conn(c) = &mut slot.source else { return false };
        // Not through conn_mut: the stats are borrowed alongside the slot.
        c.io.write(data, &mut self.stats);
        self.dirty.push(token);
        true
    }

    /// Runs `f` with a connection's transport from outside its callbacks.
    pub(crate) fn with_transport(&mut self, token: u64, f: impl FnOnce(&mut dyn Transport)) -> bool {
        match self.take(token) {
            Some(Source::Conn(mut c)) => {
                with_ctx!(self, c, |_p, t| f(t));
                self.settle_or_finish(token, c);
                true
            }
            Some(other) => {
                self.put_back(token, other);
                false
            }
            None => false,
        }
    }

    fn conn_mut(&mut self, token: u64) -> Option<&mut Conn> {
        let (idx, generation) = crate::reactor::split(token);
        match &mut self.slots.get_mut(idx).filter(|s| s.generation == generation)?.source {
            Source::Conn(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn close_conn(&mut self, token: u64) -> bool {
        let Some(c) = self.conn_mut(token) else { return false };
        c.io.closing = true;
        self.dirty.push(token);
        true
    }

    pub(crate) fn abort_conn(&mut self, token: u64) -> bool {
        let Some(c) = self.conn_mut(token) else { return false };
        if c.io.abort.is_none() {
            c.io.abort = Some(Box::new(Disconnect::AbortedByOther));
        }
        self.dirty.push(token);
        true
    }

    pub(crate) fn buffered_len_of(&self, token: u64) -> Option<usize> {
        let (idx, generation) = crate::reactor::split(token);
        match &self.slots.get(idx).filter(|s| s.generation == generation)?.source {
            Source::Conn(c) => Some(c.io.wbuf.len()),
            _ => None,
        }
    }

    /// Settles connections touched from another's callback.
    pub(crate) fn process_dirty(&mut self) {
        for _ in 0..100_000 {
            let Some(token) = self.dirty.pop() else { return };
            match self.take(token) {
                Some(Source::Conn(c)) => self.settle_or_finish(token, c),
                Some(other) => self.put_back(token, other),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection's memory is this struct, its slab slot and, with
    /// an idle timeout, one timer (issue #6 asks for at most 256 bytes of
    /// RSS per idle connection in all): keep what is per-connection small.
    #[test]
    fn a_connection_stays_small() {
        let conn = std::mem::size_of::<super::Conn>();
        assert!(conn <= 176, "Conn grew to {conn} bytes");
    }
}
