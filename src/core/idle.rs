//! The idle timeout, as one coarse sweep for the whole loop instead of a
//! timer per connection.
//!
//! A connection keeps only when it last heard something, as 32-bit
//! milliseconds of the loop's clock ([`Core::clock_ms`]): four bytes, where
//! a timer of its own cost fifty in the queue and twenty-four in the
//! connection. One repeating timer walks the sources every
//! [`sweep_interval`] and hands [`TimerKind::Idle`] to those silent for
//! longer than their timeout, so a connection closes between its timeout
//! and its timeout plus one interval. A sweep reads a few bytes of each
//! connection: 10,000 connections cost well under a millisecond a second.
//! With no connection watching, the sweep stops.

use std::time::Duration;

use super::{Core, TimerAction, TimerKind};

/// The longest idle timeout kept exactly: a connection's clock stamp wraps
/// after 2^32 ms (49 days), so silences are measured up to half of that.
pub(crate) const MAX_IDLE: Duration = Duration::from_millis(u32::MAX as u64 / 2);

/// How often the sweep runs for a timeout of `after`: an eighth of it, at
/// least 10 ms, at most a second.
pub(crate) fn sweep_interval(after: Duration) -> Duration {
    (after / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Milliseconds of silence between a stamp and now, on the wrapping clock.
pub(crate) fn silence(last_ms: u32, now_ms: u32) -> Duration {
    Duration::from_millis(u64::from(now_ms.wrapping_sub(last_ms)))
}

/// What a source says when the sweep passes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Idleness {
    /// It has no idle timeout.
    Unwatched,
    /// It has one, and has not passed it.
    Quiet,
    /// It has been silent past its timeout.
    Due,
}

impl Core {
    /// The loop's clock in wrapping milliseconds since it started.
    pub(crate) fn clock_ms(&self) -> u32 {
        self.now.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// A connection with an idle timeout of `after` joined: make sure the
    /// sweep runs, and often enough for it.
    pub(crate) fn watch_idle(&mut self, after: Duration) {
        let every = sweep_interval(after);
        if let Some((handle, current)) = self.idle_sweep {
            if current <= every && self.timers.is_active(handle) {
                return;
            }
            self.timers.cancel(handle);
        }
        let handle = self.timers.schedule(self.now, every, Some(every), TimerAction::IdleSweep);
        self.idle_sweep = Some((handle, every));
    }

    /// One sweep: tells every source silent past its timeout. False when
    /// no source watches any more (the sweep stops; the next to watch
    /// starts it again).
    pub(crate) fn sweep_idle(&mut self) -> bool {
        let now_ms = self.clock_ms();
        let mut watched = 0usize;
        let mut due = Vec::new();
        for (idx, source) in self.slots.iter() {
            match source.idleness(now_ms) {
                Idleness::Unwatched => {}
                Idleness::Quiet => watched += 1,
                Idleness::Due => {
                    watched += 1;
                    due.push((u64::from(self.generations[idx]) << 32) | idx as u64);
                }
            }
        }
        for token in due {
            self.source_timer(token, TimerKind::Idle, 0);
        }
        if watched == 0 {
            self.idle_sweep = None;
        }
        watched > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_an_eighth_of_the_timeout_within_bounds() {
        assert_eq!(sweep_interval(Duration::from_secs(300)), Duration::from_secs(1));
        assert_eq!(sweep_interval(Duration::from_millis(800)), Duration::from_millis(100));
        assert_eq!(sweep_interval(Duration::from_millis(1)), Duration::from_millis(10));
    }

    #[test]
    fn silence_survives_the_clock_wrapping() {
        assert_eq!(silence(u32::MAX - 9, 10), Duration::from_millis(20));
        assert_eq!(silence(100, 350), Duration::from_millis(250));
    }
}
