//! The context every callback gets ([`CoreCx`]: the core, on behalf of one
//! source), and what a source's own machinery needs beyond it ([`Host`]).
//!
//! [`Host`] is the seam between a connection's state machine and whatever
//! runs it: the reactor's core here, the manual clock of
//! [`crate::testing::Harness`] there. Both run the same machine.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Config, Core, TimerAction, TimerKind};
use crate::endpoint::ClientEndpoint;
use crate::flow::{Cork, Payload};
use crate::protocol::{DatagramProtocol, Protocol};
use crate::stats::Stats;
use crate::timer::TimerHandle;
use crate::transport::{ConnId, Context, ListenerId, Transport};

/// What a source's own machinery needs from around it, beyond the
/// [`Context`] its protocol sees.
pub(crate) trait Host: Context {
    /// The counters.
    fn stats(&mut self) -> &mut Stats;
    /// The loop's cork (see [`Cork`]), with the counters.
    fn cork(&mut self) -> (&mut Cork, &mut Stats);
    /// The loop's configuration.
    fn config(&self) -> &Config;
    /// Schedules one of this source's timers; those of kind `Proto` (its
    /// protocol's) are recorded, to be cancelled with the source.
    fn schedule(&mut self, delay: Duration, interval: Option<Duration>, kind: TimerKind, tag: u64) -> TimerHandle;
    /// Asks for this source to be continued next turn with full readiness
    /// (a budget ran out, or reading resumed: no new event will come).
    fn again(&mut self);
    /// Cancels every timer this source set: its timers die with it.
    fn cancel_own_timers(&mut self);
    /// The clock in wrapping milliseconds (see [`super::idle`]).
    fn clock_ms(&self) -> u32;
    /// This source has an idle timeout of `after`: check it from now on.
    fn watch_idle(&mut self, after: Duration);
    /// This connection's output passed its high-water mark (`paused`), or
    /// drained below the low one, or it ended (not paused): its producer,
    /// if it has one, stops or resumes being read.
    fn producer_flow(&mut self, paused: bool);
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
        self.schedule(delay, None, TimerKind::Proto, tag)
    }
    fn call_every(&mut self, interval: Duration, tag: u64) -> TimerHandle {
        self.schedule(interval, Some(interval), TimerKind::Proto, tag)
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
        self.core.write_to(conn.0, Payload::Borrowed(data))
    }
    fn write_bytes_to(&mut self, conn: ConnId, data: Bytes) -> bool {
        self.core.write_to(conn.0, Payload::Owned(data))
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
    fn register_producer(&mut self, consumer: ConnId, producer: ConnId) -> bool {
        if !self.core.is_live(consumer.0) || !self.core.is_live(producer.0) {
            return false;
        }
        self.core.producers.insert(consumer.0, producer.0);
        true
    }
    fn unregister_producer(&mut self, consumer: ConnId) {
        self.core.producers.remove(&consumer.0);
    }
    fn connect(&mut self, to: &ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<ConnId> {
        let opener = self.core.opener.clone().ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        opener.connect(self.core, to, protocol).map(ConnId)
    }
    fn connect_udp(&mut self, to: &ClientEndpoint, protocol: Box<dyn DatagramProtocol>) -> io::Result<ConnId> {
        let opener = self.core.opener.clone().ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        opener.connect_udp(self.core, to, protocol).map(ConnId)
    }
    fn stop_listening(&mut self, id: ListenerId) -> bool {
        self.core.stop_listening(id.0)
    }
    fn stats_mut(&mut self) -> Option<&mut Stats> {
        Some(&mut self.core.stats)
    }
}

impl Host for CoreCx<'_> {
    fn stats(&mut self) -> &mut Stats {
        &mut self.core.stats
    }
    fn cork(&mut self) -> (&mut Cork, &mut Stats) {
        (&mut self.core.cork, &mut self.core.stats)
    }
    fn config(&self) -> &Config {
        &self.core.config
    }
    fn schedule(&mut self, delay: Duration, interval: Option<Duration>, kind: TimerKind, tag: u64) -> TimerHandle {
        let action = TimerAction::Source { token: self.token, tag, kind };
        let handle = self.core.timers.schedule(self.core.now, delay, interval, action);
        // A protocol's timers are recorded to be cancelled with it. The
        // loop's own (idle, linger, retries) are not: the source cancels or
        // outlives them, and a token is never reused, so a late one misses.
        // Recording every idle timer would cost each idle connection a map
        // entry.
        if matches!(kind, TimerKind::Proto | TimerKind::Lifetime) {
            self.core.own_timer(self.token, handle);
        }
        handle
    }
    fn again(&mut self) {
        self.core.ready.push(self.token);
    }
    fn cancel_own_timers(&mut self) {
        self.core.cancel_timers_of(self.token);
    }
    fn clock_ms(&self) -> u32 {
        self.core.clock_ms()
    }
    fn watch_idle(&mut self, after: Duration) {
        self.core.watch_idle(after);
    }
    fn producer_flow(&mut self, paused: bool) {
        self.core.producer_flow(self.token, paused);
    }
}

/// Implements [`Context`] for a type by forwarding to one of its fields.
macro_rules! forward_context {
    ($ty:ty, $($field:tt)+) => {
        impl $crate::transport::Context for $ty {
            fn now(&self) -> std::time::Instant {
                self.$($field)+.now()
            }
            fn call_later(&mut self, delay: std::time::Duration, tag: u64) -> $crate::timer::TimerHandle {
                self.$($field)+.call_later(delay, tag)
            }
            fn call_every(&mut self, interval: std::time::Duration, tag: u64) -> $crate::timer::TimerHandle {
                self.$($field)+.call_every(interval, tag)
            }
            fn cancel_timer(&mut self, timer: $crate::timer::TimerHandle) -> bool {
                self.$($field)+.cancel_timer(timer)
            }
            fn reschedule_timer(&mut self, timer: $crate::timer::TimerHandle, delay: std::time::Duration) -> bool {
                self.$($field)+.reschedule_timer(timer, delay)
            }
            fn timer_active(&self, timer: $crate::timer::TimerHandle) -> bool {
                self.$($field)+.timer_active(timer)
            }
            fn write_to(&mut self, conn: $crate::transport::ConnId, data: &[u8]) -> bool {
                self.$($field)+.write_to(conn, data)
            }
            fn write_bytes_to(&mut self, conn: $crate::transport::ConnId, data: bytes::Bytes) -> bool {
                self.$($field)+.write_bytes_to(conn, data)
            }
            fn write_to_each(&mut self, conns: &[$crate::transport::ConnId], data: &bytes::Bytes) -> usize {
                self.$($field)+.write_to_each(conns, data)
            }
            fn close_conn(&mut self, conn: $crate::transport::ConnId) -> bool {
                self.$($field)+.close_conn(conn)
            }
            fn abort_conn(&mut self, conn: $crate::transport::ConnId) -> bool {
                self.$($field)+.abort_conn(conn)
            }
            fn buffered_len_of(&self, conn: $crate::transport::ConnId) -> Option<usize> {
                self.$($field)+.buffered_len_of(conn)
            }
            fn with_conn(
                &mut self,
                conn: $crate::transport::ConnId,
                f: &mut dyn FnMut(&mut dyn $crate::transport::Transport),
            ) -> bool {
                self.$($field)+.with_conn(conn, f)
            }
            fn stop_reactor(&mut self) {
                self.$($field)+.stop_reactor()
            }
            fn register_producer(
                &mut self,
                consumer: $crate::transport::ConnId,
                producer: $crate::transport::ConnId,
            ) -> bool {
                self.$($field)+.register_producer(consumer, producer)
            }
            fn unregister_producer(&mut self, consumer: $crate::transport::ConnId) {
                self.$($field)+.unregister_producer(consumer)
            }
            fn connect(
                &mut self,
                to: &$crate::endpoint::ClientEndpoint,
                protocol: Box<dyn $crate::protocol::Protocol>,
            ) -> std::io::Result<$crate::transport::ConnId> {
                self.$($field)+.connect(to, protocol)
            }
            fn connect_udp(
                &mut self,
                to: &$crate::endpoint::ClientEndpoint,
                protocol: Box<dyn $crate::protocol::DatagramProtocol>,
            ) -> std::io::Result<$crate::transport::ConnId> {
                self.$($field)+.connect_udp(to, protocol)
            }
            fn stop_listening(&mut self, id: $crate::transport::ListenerId) -> bool {
                self.$($field)+.stop_listening(id)
}
            fn stats_mut(&mut self) -> Option<&mut $crate::stats::Stats> {
                self.$($field)+.stats_mut()
            }
        }
    };
}
pub(crate) use forward_context;
