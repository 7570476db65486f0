//! The deadlock lab (seed 002's `tcp_deadlock.py`): a blocking client and a
//! blocking server freeze on a large transfer; twirl does not. The logic is
//! in `twirl_lab`, also run by `twirl deadlock`.
//!
//! ```text
//! cargo run --example deadlock
//! cargo run --example deadlock -- --bytes 4000000 --cap 65536 --svg deadlock.svg
//! cargo run --example deadlock -- --help
//! ```
//!
//! What happens, in four runs (see the module's documentation):
//! 1. blocking client, blocking server: both end up in `send`, each waiting
//!    for the other to read; a watchdog sees nothing move, reports where
//!    each thread is stuck and what the kernel buffers hold, then shuts the
//!    sockets down so the threads return;
//! 2. the same client against twirl's `caps` plugin: completes, because
//!    twirl keeps reading and buffers the reply it cannot send yet;
//! 3. a twirl client that reads while it writes, against the blocking
//!    server: completes;
//! 4. run 2 with a small hard cap: bounded memory, connection aborted.
//!
//! With `TWIRL_EXAMPLE_SMOKE=1` it runs a small transfer with tiny socket
//! buffers (it still deadlocks) and checks each run's outcome.

use std::process::ExitCode;

use twirl_lab::{Options, Outcome};

fn main() -> ExitCode {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    let opts = if smoke {
        Options::quick()
    } else {
        match Options::parse_args(std::env::args_os()) {
            Ok(o) => o,
            Err(e) => {
                // --help and --version print and exit 0; mistakes exit 2.
                let _ = e.print();
                return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
            }
        }
    };
    // Show twirl's own log line when it aborts a connection (run 4).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();

    let report = match twirl_lab::run_and_print(&opts, &mut std::io::stdout()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("deadlock lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    if smoke {
        let got: Vec<&Outcome> = report.scenarios.iter().map(|s| &s.outcome).collect();
        let ok = matches!(
            got.as_slice(),
            [Outcome::Deadlocked, Outcome::Completed, Outcome::Completed, Outcome::Aborted(_)]
        );
        if !ok {
            eprintln!("self-check failed: outcomes {got:?}");
            return ExitCode::FAILURE;
        }
        println!("\nself-check passed: deadlock, completed, completed, aborted");
    }
    ExitCode::SUCCESS
}
