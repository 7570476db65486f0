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
    /// TLS handshakes that finished.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed: a bad certificate, a plaintext client,
    /// garbage, a timeout, a peer that left before finishing.
    pub tls_failures: u64,
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

/// Adds another reactor's counters, for a total over the reactors of a
/// group (`twirl serve --threads N`): every counter is summed, but for
/// `max_events_per_turn`, which takes the larger, and `peak_buffered`,
/// whose sum is an upper bound of the peak of the sum.
impl std::ops::AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, o: &Stats) {
        let Stats {
            turns,
            events,
            max_events_per_turn,
            accepted,
            connected,
            closed,
            open,
            bytes_in,
            bytes_out,
            reads,
            writes,
            vectored_writes,
            partial_writes,
            would_blocks,
            buffered,
            peak_buffered,
            timers_fired,
            datagrams_in,
            datagrams_out,
            datagrams_dropped,
            cap_aborts,
            refused,
            idle_closed,
            panics,
            backpressured,
            budget_aborts,
            replies_refused,
            tls_handshakes,
            tls_failures,
            timers_pending,
        } = o;
        self.max_events_per_turn = self.max_events_per_turn.max(*max_events_per_turn);
        for (mine, theirs) in [
            (&mut self.turns, turns),
            (&mut self.events, events),
            (&mut self.accepted, accepted),
            (&mut self.connected, connected),
            (&mut self.closed, closed),
            (&mut self.open, open),
            (&mut self.bytes_in, bytes_in),
            (&mut self.bytes_out, bytes_out),
            (&mut self.reads, reads),
            (&mut self.writes, writes),
            (&mut self.vectored_writes, vectored_writes),
            (&mut self.partial_writes, partial_writes),
            (&mut self.would_blocks, would_blocks),
            (&mut self.buffered, buffered),
            (&mut self.peak_buffered, peak_buffered),
            (&mut self.timers_fired, timers_fired),
            (&mut self.datagrams_in, datagrams_in),
            (&mut self.datagrams_out, datagrams_out),
            (&mut self.datagrams_dropped, datagrams_dropped),
            (&mut self.cap_aborts, cap_aborts),
            (&mut self.refused, refused),
            (&mut self.idle_closed, idle_closed),
            (&mut self.panics, panics),
            (&mut self.backpressured, backpressured),
            (&mut self.budget_aborts, budget_aborts),
            (&mut self.replies_refused, replies_refused),
            (&mut self.tls_handshakes, tls_handshakes),
            (&mut self.tls_failures, tls_failures),
            (&mut self.timers_pending, timers_pending),
        ] {
            *mine += *theirs;
        }
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
             budget_aborts={} replies_refused={} vectored_writes={} tls_handshakes={} tls_failures={} timers_pending={}",
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
            self.tls_handshakes,
            self.tls_failures,
            self.timers_pending
        )
    }
}
