//! Logs that cannot stop the server. Log lines go through a bounded queue to
//! a thread that writes them to stderr; if stderr is a pipe nobody reads,
//! that thread blocks, the queue fills, and further lines are dropped and
//! counted, never waited for. The loop never blocks on a log write. When the
//! writer gets through again it first says how many lines were lost.
//!
//! At exit, [`settle`] waits a moment (bounded) for the lines still queued,
//! so that the last ones (a warning just before SIGTERM, `stopped`) are not
//! lost with the process.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines queued and not written yet, and a signal for each one written.
static QUEUED: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Waits until every queued line is written, or `limit` passes.
pub fn settle(limit: Duration) {
    let deadline = Instant::now() + limit;
    let (count, written) = &QUEUED;
    let Ok(mut n) = count.lock() else { return };
    while *n > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match written.wait_timeout(n, left) {
            Ok((guard, _)) => n = guard,
            Err(_) => return,
        }
    }
}

/// Counts a line in (`+1`) or out (`-1`).
fn count(delta: isize) {
    let (count, written) = &QUEUED;
    if let Ok(mut n) = count.lock() {
        *n = n.saturating_add_signed(delta);
        written.notify_all();
    }
}

/// Lines queued at most before new ones are dropped.
const QUEUE: usize = 4096;

/// The writing end handed to the logger: whole lines into the queue.
pub struct LogPipe {
    line: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl LogPipe {
    /// Starts the writer thread; returns the pipe the logger writes to.
    pub fn spawn() -> io::Result<LogPipe> {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        std::thread::Builder::new().name("twirl-log".into()).spawn(move || {
            let mut err = io::stderr();
            for line in rx {
                let n = lost.swap(0, Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(err, "twirl: {n} log lines dropped (stderr was not being read)");
                }
                let _ = err.write_all(&line);
                count(-1);
            }
        })?;
        Ok(LogPipe { line: Vec::new(), tx, dropped })
    }

    fn send_lines(&mut self) {
        while let Some(end) = self.line.iter().position(|&b| b == b'\n') {
            let rest = self.line.split_off(end + 1);
            let line = std::mem::replace(&mut self.line, rest);
            count(1);
            match self.tx.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    count(-1);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Write for LogPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A line longer than this is cut: a log line is not a transfer.
        if self.line.len() < 64 * 1024 {
            self.line.extend_from_slice(buf);
        }
        self.send_lines();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_lines();
        Ok(())
    }
}
