//! The watchdog: samples the byte counters every [`SAMPLE_EVERY`] and
//! decides when a run is over, stalled (a deadlock) or past its deadline.

use std::thread;
use std::time::{Duration, Instant};

use crate::options::Options;

/// How often the watchdog samples the byte counters.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);

pub use crate::sample::Sample;

/// Why watching stopped.
pub(crate) enum Verdict {
    Done,
    Stalled,
    Deadline,
}

/// Samples the counters every [`SAMPLE_EVERY`] until `done`, until nothing
/// moved for `opts.stall`, or until the deadline.
pub(crate) fn watch(
    opts: &Options,
    start: Instant,
    samples: &mut Vec<Sample>,
    sample: &dyn Fn() -> (u64, u64, u64),
    progress: &dyn Fn() -> u64,
    done: &dyn Fn() -> bool,
) -> Verdict {
    let mut last = progress();
    let mut moved = Instant::now();
    let (sent, received, buffered) = sample();
    let first = Sample { t: moved - start, sent, received, buffered };
    opts.live.sample(&first);
    samples.push(first);
    loop {
        thread::sleep(SAMPLE_EVERY);
        let (sent, received, buffered) = sample();
        let now = Instant::now();
        let s = Sample { t: now - start, sent, received, buffered };
        opts.live.sample(&s);
        samples.push(s);
        if done() {
            return Verdict::Done;
        }
        let p = progress();
        if p != last {
            last = p;
            moved = now;
        } else if now - moved >= opts.stall {
            return Verdict::Stalled;
        }
        if now - start >= opts.deadline {
            return Verdict::Deadline;
        }
    }
}

/// Samples the counters once more after the end, so the chart shows it.
pub(crate) fn last_sample(samples: &mut Vec<Sample>, start: Instant, sent: u64, received: u64, buffered: u64) {
    samples.push(Sample { t: start.elapsed(), sent, received, buffered });
}
