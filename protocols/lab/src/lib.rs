//! # twirl-lab
//!
//! The deadlock lab (seed 002's `tcp_deadlock.py`), run on loopback and
//! explained: `twirl deadlock`, or `cargo run --example deadlock`.
//!
//! The handout's client sends N bytes before reading any; its server reads
//! 1024 bytes, uppercases them and `sendall`s them back. With a large N both
//! freeze: the client is blocked in `send` because the server stopped
//! reading, and the server stopped reading because it is blocked in `send`
//! to a client that is not reading yet. Every kernel buffer between them is
//! full, and each waits for the other.
//!
//! The lab runs that experiment, then three variations, and reports on each:
//!
//! 1. blocking client against a blocking, thread-per-connection server: the
//!    deadlock. A watchdog notices that no byte moved for `--stall` seconds,
//!    shows where each thread is stuck (both in send), how many bytes sat in
//!    the kernel buffers (`SO_SNDBUF`/`SO_RCVBUF`, and the `SIOCOUTQ`/`SIOCINQ`
//!    queue lengths on Linux), then shuts both sockets down so the blocked
//!    threads return with an error, and joins them;
//! 2. the same blocking client against twirl's
//!    [`caps`](twirl_protocols::plugins::caps) plugin: it completes, because twirl never blocks in send; it keeps
//!    reading and holds the reply it cannot send yet (reported as
//!    `peak_buffered`);
//! 3. a twirl client, which reads while it writes, against the blocking
//!    server: it completes too;
//! 4. run 2 again with a small hard cap on twirl's write buffer: memory stays
//!    bounded, and the connection is aborted with the reason reported.
//!
//! The blocking sockets get small buffers (`--sockbuf`) so the deadlock
//! happens even where the kernel would autotune them to megabytes. Every run
//! has a hard deadline. With `--svg FILE` the lab draws bytes sent, received
//! and buffered over time for each run; the deadlock shows as flat lines.
//!
//! The lab's files each do one job: [`Options`] (what to run), the four
//! runs (`scenarios`), the handout's blocking client and server
//! (`peers`), the watchdog that samples the counters and calls a deadlock
//! (`watchdog`), the text report (`report`) and the SVG chart (`chart`).
//!
//! ```no_run
//! use twirl_lab::Outcome;
//! let report = twirl_lab::run(&twirl_lab::Options::quick())?;
//! assert!(matches!(report.scenarios[0].outcome, Outcome::Deadlocked));
//! println!("{report}");
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

mod chart;
pub mod dashboard;
pub mod live;
mod options;
mod peers;
mod report;
mod sample;
mod scenarios;
mod watchdog;

use std::io::{self, Write};

pub use chart::write_svg;
pub use live::Feed;
pub use options::Options;
pub use report::{Outcome, Party, Report, Scenario, SocketSnapshot, thousands};
pub use scenarios::{run, run_with};
/// The 16-byte message the handout's client repeats.
pub use twirl_protocols::plugins::caps::MESSAGE;
pub use watchdog::{SAMPLE_EVERY, Sample};

/// Runs the lab, printing each run as it ends and the lesson at the end,
/// and draws the chart if `--svg` was given: the `twirl deadlock` command.
pub fn run_and_print(opts: &Options, out: &mut dyn Write) -> io::Result<Report> {
    report::write_header(opts, out)?;
    out.flush()?;
    let mut failed = None;
    let report = run_with(opts, &mut |s| {
        if let Err(e) = report::write_scenario(s, out).and_then(|_| out.flush()) {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    report::write_lesson(&report, out)?;
    if let Some(path) = &opts.svg {
        chart::write_svg(&report, path)?;
        writeln!(out, "\nchart: {}", path.display())?;
    }
    Ok(report)
}
