//! The report: how each run ended and what it did ([`Scenario`], [`Report`]),
//! and the text `twirl deadlock` prints about it.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use crate::options::Options;
use crate::watchdog::{SAMPLE_EVERY, Sample};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte came back, uppercased.
    Completed,
    /// No byte moved for the stall time: the watchdog broke the deadlock.
    Deadlocked,
    /// The server aborted the connection; the reason it gave.
    Aborted(String),
    /// The run passed its hard deadline while bytes were still moving.
    TimedOut,
    /// Something else went wrong.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed => f.write_str("COMPLETED"),
            Outcome::Deadlocked => f.write_str("DEADLOCK"),
            Outcome::Aborted(_) => f.write_str("ABORTED"),
            Outcome::TimedOut => f.write_str("TIMED OUT"),
            Outcome::Failed(_) => f.write_str("FAILED"),
        }
    }
}

/// Where one blocking thread was, and how far it had got.
#[derive(Clone, Debug)]
pub struct Party {
    /// `client` or `server`.
    pub name: String,
    /// What it was doing (for a stuck thread: the call it is blocked in).
    pub state: String,
    /// Bytes it had sent.
    pub sent: u64,
    /// Bytes it had received.
    pub received: u64,
}

/// One socket's kernel buffers.
#[derive(Clone, Debug)]
pub struct SocketSnapshot {
    /// Which socket.
    pub name: String,
    /// `SO_SNDBUF` as the kernel reports it.
    pub sndbuf: Option<usize>,
    /// `SO_RCVBUF` as the kernel reports it.
    pub rcvbuf: Option<usize>,
    /// Bytes in the send queue, not yet taken by the peer (`SIOCOUTQ`; Linux only).
    pub unsent: Option<u64>,
    /// Bytes in the receive queue, not yet read (`SIOCINQ`; Linux only).
    pub unread: Option<u64>,
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// 1 to 4.
    pub number: usize,
    /// Who talks to whom.
    pub title: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Time from connect to the end (or to the watchdog's verdict).
    pub elapsed: Duration,
    /// Bytes the client sent.
    pub sent: u64,
    /// Bytes the client received back.
    pub received: u64,
    /// The most bytes twirl buffered at once (runs with a twirl side).
    pub peak_buffered: Option<u64>,
    /// The hard cap on twirl's write buffer, where one was set.
    pub cap: Option<usize>,
    /// Where the blocking threads were when it froze (deadlocked runs).
    pub parties: Vec<Party>,
    /// Kernel buffers when it froze (deadlocked runs).
    pub sockets: Vec<SocketSnapshot>,
    /// More lines for the report: teardown, the client's view of an abort.
    pub notes: Vec<String>,
    /// The counters over time.
    pub samples: Vec<Sample>,
}

/// The whole lab's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// The options it ran with.
    pub options: Options,
    /// The four runs, in order.
    pub scenarios: Vec<Scenario>,
}

/// `16000000` as `16,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt_bytes(n: Option<impl Into<u64>>) -> String {
    n.map_or_else(|| "?".into(), |n| thousands(n.into()))
}

pub(crate) fn write_header(opts: &Options, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "The deadlock lab (seed 002 tcp_deadlock): the client sends {} bytes before reading any;\n\
         the server uppercases each 1024-byte block it reads and sends it back.\n\
         Blocking sockets ask for {}-byte buffers (SO_SNDBUF/SO_RCVBUF); the watchdog calls a deadlock\n\
         after {:.1} s without a byte moving; each run has a {:.0} s deadline.",
        thousands(opts.bytes),
        thousands(opts.sockbuf as u64),
        opts.stall.as_secs_f64(),
        opts.deadline.as_secs_f64(),
    )
}

pub(crate) fn write_scenario(s: &Scenario, out: &mut dyn Write) -> io::Result<()> {
    let secs = s.elapsed.as_secs_f64();
    writeln!(out, "\n{}. {}", s.number, s.title)?;
    match &s.outcome {
        Outcome::Completed => writeln!(out, "   COMPLETED in {secs:.2} s")?,
        Outcome::Deadlocked => {
            writeln!(out, "   DEADLOCK: nothing moved for {:.1} s ({secs:.2} s in)", s.stall_secs())?
        }
        Outcome::Aborted(reason) => writeln!(out, "   ABORTED by the server after {secs:.2} s: {reason}")?,
        Outcome::TimedOut => writeln!(out, "   TIMED OUT after {secs:.2} s, still moving")?,
        Outcome::Failed(e) => writeln!(out, "   FAILED after {secs:.2} s: {e}")?,
    }
    writeln!(out, "   client sent {} bytes and received {} back", thousands(s.sent), thousands(s.received))?;
    if !s.parties.is_empty() {
        writeln!(out, "   where each thread is stuck:")?;
        for p in &s.parties {
            writeln!(
                out,
                "     {:<7} {}\n             (sent {}, received {})",
                p.name,
                p.state,
                thousands(p.sent),
                thousands(p.received)
            )?;
        }
    }
    if !s.sockets.is_empty() {
        writeln!(out, "   bytes sitting in the kernel when it froze:")?;
        for k in &s.sockets {
            writeln!(
                out,
                "     {:<7} socket: {:>9} unsent (SIOCOUTQ), {:>9} unread (SIOCINQ); SO_SNDBUF {}, SO_RCVBUF {}",
                k.name,
                opt_bytes(k.unsent),
                opt_bytes(k.unread),
                opt_bytes(k.sndbuf.map(|n| n as u64)),
                opt_bytes(k.rcvbuf.map(|n| n as u64)),
            )?;
        }
        let queued: Option<u64> = s.sockets.iter().map(|k| Some(k.unsent? + k.unread?)).sum();
        if let Some(q) = queued {
            writeln!(out, "     in all {} bytes in the kernel, and every queue between the two is full", thousands(q))?;
        }
    }
    if let Some(peak) = s.peak_buffered {
        let (who, why) = match &s.outcome {
            _ if s.number == 3 => ("client", "it writes only up to the high-water mark, and reads all along"),
            Outcome::Aborted(_) => ("server", "then gave up: memory stays bounded"),
            _ => ("server", "so that it could keep reading"),
        };
        writeln!(out, "   the twirl {who} buffered at most {} bytes (stats.peak_buffered): {why}", thousands(peak))?;
    }
    for n in &s.notes {
        writeln!(out, "   {n}")?;
    }
    Ok(())
}

impl Scenario {
    /// The stall that was detected: from the last movement to the verdict.
    fn stall_secs(&self) -> f64 {
        let Some(last) = self.samples.last() else { return 0.0 };
        let still = self
            .samples
            .iter()
            .rev()
            .take_while(|s| s.sent == last.sent && s.received == last.received)
            .last()
            .map_or(last.t, |s| s.t);
        (last.t.saturating_sub(still)).as_secs_f64() + SAMPLE_EVERY.as_secs_f64()
    }
}

pub(crate) fn write_lesson(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let peak = r
        .scenarios
        .get(1)
        .and_then(|s| s.peak_buffered)
        .map_or_else(|| "the surplus".into(), |p| format!("{} bytes", thousands(p)));
    writeln!(
        out,
        "\nThe lesson:\n\
         - Blocking send and recv in lock-step deadlock once more is in flight than the kernel buffers hold.\n\
         - A reactor never blocks in send: it keeps reading and holds what the peer cannot take yet ({peak} here).\n\
         - That memory is the price; a hard cap bounds it, and a peer that will not read is cut off instead."
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::new();
        let r = write_header(&self.options, &mut buf)
            .and_then(|_| self.scenarios.iter().try_for_each(|s| write_scenario(s, &mut buf)))
            .and_then(|_| write_lesson(self, &mut buf));
        r.map_err(|_| fmt::Error)?;
        f.write_str(&String::from_utf8_lossy(&buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(16_000_000), "16,000,000");
    }
}
