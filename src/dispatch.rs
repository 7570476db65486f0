//! Dispatch: one turn of the loop after `poll` returns, and the two halves
//! of a graceful stop. Events go to their sources by token; sources carried
//! over from last turn (a budget ran out, reading resumed) are continued;
//! timers that belong to sources go to them.
//!
//! Dispatch knows sources only as [`Source`](crate::core::Source)s: adding a
//! kind of source changes nothing here.

use mio::{Events, Token};

use crate::core::{Core, Readiness, TimerAction, TimerKind};
use crate::timer::TimerHandle;
use crate::transport::ConnId;

/// The token of the waker that [`crate::ReactorHandle`] uses.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// The token of the signal pipe.
pub(crate) const SIGNALS: Token = Token(usize::MAX - 1);

/// What a turn's events said besides readiness.
#[derive(Default)]
pub(crate) struct News {
    /// Another thread woke the loop (a stop or a call from a thread).
    pub woke: bool,
    /// A handled signal arrived.
    pub signalled: bool,
}

/// Hands a turn's events to their sources, then continues the carried ones.
pub(crate) fn turn(core: &mut Core, events: &Events) -> News {
    let stats = &mut core.stats;
    stats.turns += 1;
    let n = events.iter().count() as u64;
    stats.events += n;
    stats.max_events_per_turn = stats.max_events_per_turn.max(n);
    log::trace!(target: "twirl::loop", "turn {}: {n} events", stats.turns);
    let mut carried = std::mem::take(&mut core.ready);
    // A source carried over from last turn is served once, from the
    // carried list with full readiness, not again for its event: one
    // budget per source per turn.
    carried.sort_unstable();
    carried.dedup();
    let mut news = News::default();
    for ev in events.iter() {
        match ev.token() {
            WAKER => news.woke = true,
            SIGNALS => news.signalled = true,
            Token(t) if !carried.is_empty() && carried.binary_search(&(t as u64)).is_ok() => {}
            Token(t) => {
                let r = Readiness {
                    readable: ev.is_readable() || ev.is_read_closed(),
                    writable: ev.is_writable() || ev.is_write_closed(),
                    read_closed: ev.is_read_closed(),
                    error: ev.is_error(),
                    urgent: ev.is_priority(),
                };
                if log::log_enabled!(target: "twirl::loop", log::Level::Trace) {
                    log::trace!(target: "twirl::loop", "{} ready:{}", ConnId(t as u64), describe(&r));
                }
                core.dispatch(t as u64, r);
            }
        }
    }
    for token in carried {
        core.dispatch(token, Readiness::ALL);
    }
    news
}

/// A timer that belongs to a source fired: hand it over, and keep a
/// repeating one only while its source lives.
pub(crate) fn source_timer(core: &mut Core, handle: TimerHandle, token: u64, tag: u64, kind: TimerKind) {
    if log::log_enabled!(target: "twirl::loop", log::Level::Trace) {
        log::trace!(target: "twirl::loop", "{} timer {tag} fired", ConnId(token));
    }
    if core.source_timer(token, kind, tag) {
        core.timers.restore(handle, TimerAction::Source { token, tag, kind });
    } else {
        core.timers.cancel(handle);
    }
}

/// Starts a graceful stop: every source stops taking work (listeners
/// close, connections start closing once flushed).
pub(crate) fn begin_stop(core: &mut Core) {
    log::debug!("stopping: closing listeners, flushing {} connections", core.stats.open);
    for token in core.tokens() {
        core.run(token, |s, core| s.stop(core, token));
    }
    core.process_dirty();
}

/// Ends the stop: connections still open are ended.
pub(crate) fn finish_stop(core: &mut Core) {
    for token in core.tokens() {
        core.run(token, |s, core| s.end(core, token));
    }
    core.stop_requested = false;
    core.stopping = None;
    log::debug!("stopped: {}", core.stats);
}

fn describe(r: &Readiness) -> String {
    let mut s = String::new();
    for (on, name) in [
        (r.readable, " readable"),
        (r.writable, " writable"),
        (r.read_closed, " hup"),
        (r.error, " error"),
        (r.urgent, " urgent"),
    ] {
        if on {
            s.push_str(name);
        }
    }
    s
}
