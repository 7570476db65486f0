//! Counters the reactor keeps as it works: plain integer adds on paths that
//! already make a system call, so keeping them costs next to nothing.

use std::fmt;

/// A snapshot of the reactor's counters (see [`crate::Reactor::stats`]).
///
/// # Examples
///
/// ```
/// let r = twirl::Reactor::new().unwrap();
/// let s = r.stats();
/// assert_eq!(s.accepted, 0);
/// assert!(s.to_string().starts_with("turns=0 "));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Loop turns (returns from `poll`).
    pub turns: u64,
    /// Readiness events handled.
    pub events: u64,
    /// The most events seen in one turn.
    pub max_events_per_turn: u64,
    /// Connections accepted by listeners.
    pub accepted: u64,
    /// Outgoing connections established.
    pub connected: u64,
    /// Connections closed (any reason).
    pub closed: u64,
    /// Connections open now.
    pub open: u64,
    /// Bytes read from stream sockets.
    pub bytes_in: u64,
    /// Bytes written to stream sockets.
    pub bytes_out: u64,
    /// `read` calls that returned data or EOF.
    pub reads: u64,
    /// `write`/`sendmsg` calls that sent something (one per system call,
    /// however many pieces it carried).
    pub writes: u64,
    /// Of `writes`, those that sent several pieces at once (a vectored
    /// write: corked writes joined, or queued pieces sent together).
    pub vectored_writes: u64,
    /// Writes the socket took only part of.
    pub partial_writes: u64,
    /// Reads and writes that returned `WouldBlock`.
    pub would_blocks: u64,
    /// Bytes buffered for sending now, over all connections.
    pub buffered: u64,
    /// The most bytes ever buffered at once, over all connections.
    pub peak_buffered: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams dropped (send queue full, or truncated on receipt).
    pub datagrams_dropped: u64,
    /// Connections aborted for passing the write buffer's hard cap.
    pub cap_aborts: u64,
    /// Connections refused at accept for passing a listener's limits.
    pub refused: u64,
    /// Connections closed for being idle too long.
    pub idle_closed: u64,
    /// Panics caught in protocol callbacks.
    pub panics: u64,
    /// Times a connection stopped being read because its output passed
    /// the high-water mark (backpressure).
    pub backpressured: u64,
    /// Connections aborted because the reactor's buffered bytes passed its
    /// memory budget ([`crate::Config::memory_budget`]).
    pub budget_aborts: u64,
    /// UDP replies not sent: to a service port or one of this reactor's own
    /// endpoints (a loop), or over a source's reply rate.
    pub replies_refused: u64,
    /// Timers waiting to fire now (set in [`crate::Reactor::stats`]; the
    /// reactor's own sweeps included).
    pub timers_pending: u64,
}

impl Stats {
    pub(crate) fn buffered_add(&mut self, n: usize) {
        self.buffered += n as u64;
        self.peak_buffered = self.peak_buffered.max(self.buffered);
    }

    pub(crate) fn buffered_sub(&mut self, n: usize) {
        self.buffered = self.buffered.saturating_sub(n as u64);
    }
}

impl fmt::Display for Stats {
    /// One line of `key=value` pairs, as `twirl serve --stats` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "turns={} events={} max_events_per_turn={} accepted={} connected={} closed={} open={} \
             bytes_in={} bytes_out={} reads={} writes={} partial_writes={} would_blocks={} \
             buffered={} peak_buffered={} timers_fired={} datagrams_in={} datagrams_out={} \
             datagrams_dropped={} cap_aborts={} refused={} idle_closed={} panics={} backpressured={} \
             budget_aborts={} replies_refused={} vectored_writes={} timers_pending={}",
            self.turns,
            self.events,
            self.max_events_per_turn,
            self.accepted,
            self.connected,
            self.closed,
            self.open,
            self.bytes_in,
            self.bytes_out,
            self.reads,
            self.writes,
            self.partial_writes,
            self.would_blocks,
            self.buffered,
            self.peak_buffered,
            self.timers_fired,
            self.datagrams_in,
            self.datagrams_out,
            self.datagrams_dropped,
            self.cap_aborts,
            self.refused,
            self.idle_closed,
            self.panics,
            self.backpressured,
            self.budget_aborts,
            self.replies_refused,
            self.vectored_writes,
            self.timers_pending
        )
    }
}
