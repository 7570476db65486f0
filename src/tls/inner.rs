//! The transport a protocol running under TLS is handed: writes are
//! encrypted and passed to the real transport (at once, or with the rest of
//! the layer's open batch), closing sends close_notify first, and
//! everything else is the real transport's.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::layer::{RESUME_TAG, State};
use crate::addr::Addr;
use crate::endpoint::ClientEndpoint;
use crate::protocol::Protocol;
use crate::stats::Stats;
use crate::timer::TimerHandle;
use crate::transport::{ConnId, Context, Transport};

/// The wrapped protocol's transport during one of its callbacks.
pub(crate) struct Inner<'a> {
    pub outer: &'a mut dyn Transport,
    pub state: &'a mut State,
}

impl Inner<'_> {
    /// Encrypts `data` and hands it to the real transport.
    fn send(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.state.write_closed || !self.state.made || self.outer.is_closing() {
            log::debug!(
                "{}: dropped {} bytes written after the TLS connection closed for writing",
                self.id(),
                data.len()
            );
            return;
        }
        match self.state.session.write(self.outer, data) {
            Ok(true) => {}
            Ok(false) => log::debug!("{}: TLS refused {} bytes", self.id(), data.len()),
            Err(e) => {
                log::debug!("{} ({}): TLS error: {e}", self.id(), self.outer.peer_addr());
                self.outer.abort_connection();
            }
        }
    }

    /// Sends close_notify, once.
    fn close_notify(&mut self) {
        if !self.state.write_closed {
            self.state.write_closed = true;
            if let Err(e) = self.state.session.close_notify(self.outer) {
                log::debug!("{}: close_notify not sent: {e}", self.id());
            }
        }
    }
}

impl Context for Inner<'_> {
    fn now(&self) -> Instant {
        self.outer.now()
    }
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerHandle {
        self.outer.call_later(delay, tag)
    }
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle {
        self.outer.call_every(interval, tag)
    }
    fn cancel_timer(&mut self, timer: TimerHandle) -> bool {
        self.outer.cancel_timer(timer)
    }
    fn reschedule_timer(&mut self, timer: TimerHandle, delay: Duration) -> bool {
        self.outer.reschedule_timer(timer, delay)
    }
    fn timer_active(&self, timer: TimerHandle) -> bool {
        self.outer.timer_active(timer)
    }
    fn write_to(&mut self, conn: ConnId, data: &[u8]) -> bool {
        if conn == self.outer.id() {
            let open = !self.is_closing() && !self.state.write_closed;
            self.send(data);
            return open;
        }
        self.outer.write_to(conn, data)
    }
    fn write_bytes_to(&mut self, conn: ConnId, data: Bytes) -> bool {
        if conn == self.outer.id() {
            return self.write_to(conn, &data);
        }
        self.outer.write_bytes_to(conn, data)
    }
    fn write_to_each(&mut self, conns: &[ConnId], data: &Bytes) -> usize {
        conns.iter().filter(|c| self.write_bytes_to(**c, data.clone())).count()
    }
    fn close_conn(&mut self, conn: ConnId) -> bool {
        if conn == self.outer.id() {
            self.lose_connection();
            return true;
        }
        self.outer.close_conn(conn)
    }
    fn abort_conn(&mut self, conn: ConnId) -> bool {
        self.outer.abort_conn(conn)
    }
    fn buffered_len_of(&self, conn: ConnId) -> Option<usize> {
        self.outer.buffered_len_of(conn)
    }
    fn with_conn(&mut self, conn: ConnId, f: &mut dyn FnMut(&mut dyn Transport)) -> bool {
        self.outer.with_conn(conn, f)
    }
    fn stop_reactor(&mut self) {
        self.outer.stop_reactor()
    }
    fn register_producer(&mut self, consumer: ConnId, producer: ConnId) -> bool {
        self.outer.register_producer(consumer, producer)
    }
    fn unregister_producer(&mut self, consumer: ConnId) {
        self.outer.unregister_producer(consumer)
    }
    fn connect(&mut self, to: &ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<ConnId> {
        self.outer.connect(to, protocol)
    }
    fn stats_mut(&mut self) -> Option<&mut Stats> {
        self.outer.stats_mut()
    }
}

impl Transport for Inner<'_> {
    fn id(&self) -> ConnId {
        self.outer.id()
    }
    fn write(&mut self, data: &[u8]) {
        self.send(data)
    }
    fn write_bytes(&mut self, data: Bytes) {
        self.send(&data)
    }
    fn lose_connection(&mut self) {
        if !self.state.closing {
            self.state.closing = true;
            // close_notify follows everything written; the real transport
            // flushes all of it, then closes.
            self.close_notify();
        }
        self.state.session.flush_batch(self.outer);
        self.outer.lose_connection();
    }
    fn abort_connection(&mut self) {
        self.outer.abort_connection()
    }
    fn is_closing(&self) -> bool {
        self.state.closing || self.outer.is_closing()
    }
    fn shutdown_write(&mut self) {
        self.close_notify();
        self.state.session.flush_batch(self.outer);
        self.outer.shutdown_write();
    }
    fn pause_reading(&mut self) {
        self.state.paused = true;
        self.outer.pause_reading();
    }
    fn resume_reading(&mut self) {
        if self.state.paused {
            self.state.paused = false;
            self.outer.resume_reading();
            // Ciphertext may be waiting already: deliver it after this callback.
            if !self.state.resume_scheduled {
                self.state.resume_scheduled = true;
                self.outer.call_later(Duration::ZERO, RESUME_TAG);
            }
        }
    }
    fn peer_addr(&self) -> Addr {
        self.outer.peer_addr()
    }
    fn local_addr(&self) -> io::Result<Addr> {
        self.outer.local_addr()
    }
    fn buffered_len(&self) -> usize {
        // rustls keeps nothing to send between calls: it is all here, or
        // in the open batch.
        self.outer.buffered_len() + self.state.session.batched()
    }
    fn writing_paused(&self) -> bool {
        self.outer.writing_paused()
    }
    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.outer.set_nodelay(nodelay)
    }
    fn set_backpressure(&mut self, on: bool) {
        self.outer.set_backpressure(on)
    }
    fn notify_drained(&mut self) {
        self.state.session.flush_batch(self.outer);
        self.outer.notify_drained()
    }
    fn progress(&mut self) {
        self.outer.progress()
    }
}
