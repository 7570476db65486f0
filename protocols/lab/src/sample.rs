//! One sample of a run's byte counters: what the watchdog takes, the chart
//! draws and the live feed shows (a module of its own so that those three
//! need not know each other).

use std::time::Duration;

/// One sample of the counters, every `SAMPLE_EVERY` of the watchdog.
#[derive(Copy, Clone, Debug)]
pub struct Sample {
    /// Time since the run started.
    pub t: Duration,
    /// Bytes the client's socket had taken.
    pub sent: u64,
    /// Bytes the client had read back.
    pub received: u64,
    /// Bytes twirl held in its write buffers (0 where no twirl runs).
    pub buffered: u64,
}
