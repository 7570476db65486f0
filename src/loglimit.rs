//! Log lines about single connections (one cut off at its hard cap, closed
//! as idle, aborted for the memory budget), rate-limited: an attack made of
//! many such connections must not turn into as many log lines. At most
//! [`PER_SECOND`] are written a second; the next one written says how many
//! were left out.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Lines about single connections written a second, at most.
pub const PER_SECOND: u64 = 20;

static START: OnceLock<Instant> = OnceLock::new();
/// The current second (since the first call) and the lines written in it.
static WINDOW: AtomicU64 = AtomicU64::new(u64::MAX);
static WRITTEN: AtomicU64 = AtomicU64::new(0);
static LEFT_OUT: AtomicU64 = AtomicU64::new(0);

/// Logs `args` at `level` unless this second's lines are used up (a
/// plugin's per-request lines, an HTTP access log, share the same
/// budget).
pub fn conn_event(level: log::Level, args: std::fmt::Arguments<'_>) {
    if !log::log_enabled!(level) {
        return;
    }
    let second = START.get_or_init(Instant::now).elapsed().as_secs();
    if WINDOW.swap(second, Ordering::Relaxed) != second {
        WRITTEN.store(0, Ordering::Relaxed);
    }
    if WRITTEN.fetch_add(1, Ordering::Relaxed) >= PER_SECOND {
        LEFT_OUT.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match LEFT_OUT.swap(0, Ordering::Relaxed) {
        0 => log::log!(level, "{args}"),
        n => log::log!(level, "{args} ({n} more like it not logged)"),
    }
}
