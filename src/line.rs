//! Line framing (Twisted's `LineReceiver`): turns a byte stream into lines.
//!
//! TCP delivers a stream, not messages: one line may arrive in pieces, or
//! several in one read (seed 004's "partial send/recv" pitfall). A
//! [`LineReceiver`] buffers and splits on `\n` (dropping a `\r` before it), so
//! a plugin implements [`LineHandler::line_received`] and nothing about sockets.
//!
//! It also serves the handouts' naive clients, which send a string with no
//! newline and then wait: with [`LineReceiver::flush_partial_after`] a partial
//! line is delivered after an idle gap, and one left when the peer half-closes
//! is always delivered. A line ending that arrives just after such a flush
//! ends the line already delivered (a client that sent `reqtime`, dawdled,
//! then sent `\n` asked one question, not two).
//!
//! # Examples
//!
//! ```
//! use twirl::line::{LineHandler, LineReceiver, Lines};
//! use twirl::testing::Harness;
//!
//! /// Answers each line with its length.
//! struct Count;
//! impl LineHandler for Count {
//!     fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
//!         t.write(format!("{}\n", line.len()).as_bytes());
//!     }
//! }
//!
//! let mut h = Harness::new(LineReceiver::new(Count));
//! h.connect();
//! h.feed(b"hel");
//! h.feed(b"lo\r\nab\n");
//! assert_eq!(h.take_text(), "5\n2\n");
//! ```

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::protocol::Protocol;
use crate::timer::TimerHandle;
use crate::transport::{Context, Disconnect, Transport};

/// Default maximum line length in bytes, without the delimiter.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// The timer tag the receiver keeps for its own idle flush.
const FLUSH_TAG: u64 = u64::MAX;
/// The timer tag of a turn given up after [`LINES_PER_TURN`] lines.
const YIELD_TAG: u64 = u64::MAX - 1;

/// Lines delivered in one go at most. A read full of short lines (64 KiB
/// of `\n` is 65,536 lines, each perhaps a reply) would otherwise hold the
/// loop for as long as those callbacks take; past this many, the receiver
/// stops reading, keeps the rest, and goes on next turn, after everyone
/// else had theirs.
pub const LINES_PER_TURN: usize = 1024;

/// Delivery state a handler can change from its callbacks.
#[derive(Debug)]
struct Control {
    raw: bool,
    paused: bool,
    max_len: usize,
}

/// The transport as a [`LineHandler`] sees it: every [`Transport`] method
/// (through `Deref`), plus switching to raw mode and pausing delivery.
pub struct Lines<'a> {
    transport: &'a mut dyn Transport,
    control: &'a mut Control,
}

impl<'a> Deref for Lines<'a> {
    type Target = dyn Transport + 'a;
    fn deref(&self) -> &Self::Target {
        self.transport
    }
}

impl DerefMut for Lines<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.transport
    }
}

impl Lines<'_> {
    /// Delivers the rest of the stream to `raw_data_received` until
    /// [`set_line_mode`](Self::set_line_mode).
    pub fn set_raw_mode(&mut self) {
        self.control.raw = true;
    }
    /// Goes back to delivering lines.
    pub fn set_line_mode(&mut self) {
        self.control.raw = false;
    }
    /// Holds further lines (buffered) until [`resume_delivery`](Self::resume_delivery).
    pub fn pause_delivery(&mut self) {
        self.control.paused = true;
    }
    /// Delivers held lines again.
    pub fn resume_delivery(&mut self) {
        self.control.paused = false;
    }
    /// The maximum line length in force.
    pub fn max_line_length(&self) -> usize {
        self.control.max_len
    }
}

/// A line-oriented protocol: the callbacks a [`LineReceiver`] calls.
pub trait LineHandler: 'static {
    /// One line, without its `\n` or `\r\n`.
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>);

    /// The connection is open.
    fn connection_made(&mut self, t: &mut Lines<'_>) {
        let _ = t;
    }

    /// Bytes received in raw mode.
    fn raw_data_received(&mut self, data: &[u8], t: &mut Lines<'_>) {
        let _ = (data, t);
    }

    /// A line passed the maximum length; `len` is how much of it was seen.
    /// The default sends an `error: ...` line and closes.
    fn line_too_long(&mut self, len: usize, t: &mut Lines<'_>) {
        let msg = format!("error: line too long ({len} bytes seen, the limit is {})\n", t.max_line_length());
        t.write(msg.as_bytes());
        t.lose_connection();
    }

    /// The peer half-closed, after any partial line was delivered. Default: close.
    fn read_eof(&mut self, t: &mut Lines<'_>) {
        t.lose_connection();
    }

    /// The connection is gone.
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let _ = (reason, cx);
    }

    /// The write buffer passed its high-water mark.
    fn pause_writing(&mut self, t: &mut Lines<'_>) {
        let _ = t;
    }

    /// The write buffer drained below its low-water mark.
    fn resume_writing(&mut self, t: &mut Lines<'_>) {
        let _ = t;
    }

    /// A timer the handler set fired (tags `u64::MAX` and `u64::MAX - 1` are reserved).
    fn timer_fired(&mut self, tag: u64, t: &mut Lines<'_>) {
        let _ = (tag, t);
    }
    /// See [`Protocol::drained`].
    fn drained(&mut self, t: &mut Lines<'_>) {
        let _ = t;
    }
}

/// Wraps a [`LineHandler`] into a [`Protocol`].
pub struct LineReceiver<H> {
    /// The handler, reachable for inspection in tests.
    pub handler: H,
    buf: Vec<u8>,
    control: Control,
    /// Skipping the rest of an over-long line the handler chose to survive.
    discarding: bool,
    idle_flush: Option<Duration>,
    idle_timer: Option<TimerHandle>,
    /// The last delivery was a partial line flushed by the idle timer: a
    /// line ending that comes next belongs to it.
    after_flush: bool,
    /// Lines are waiting for the next turn (see [`LINES_PER_TURN`]).
    yielded: bool,
    /// Lines are waiting for the output to drain (`resume_writing`).
    held: bool,
    yields: u64,
}

impl<H: LineHandler> LineReceiver<H> {
    /// A receiver with the default maximum line length and no idle flush.
    pub fn new(handler: H) -> Self {
        LineReceiver {
            handler,
            buf: Vec::new(),
            control: Control { raw: false, paused: false, max_len: DEFAULT_MAX_LINE },
            discarding: false,
            idle_flush: None,
            idle_timer: None,
            after_flush: false,
            yielded: false,
            held: false,
            yields: 0,
        }
    }

    /// Sets the maximum line length in bytes (without the delimiter).
    pub fn max_line_length(mut self, max: usize) -> Self {
        self.control.max_len = max;
        self
    }

    /// Delivers a partial line (one with no `\n` yet) once no byte has
    /// arrived for `gap`: serves clients that send without a newline and wait.
    pub fn flush_partial_after(mut self, gap: Duration) -> Self {
        self.idle_flush = Some(gap);
        self
    }

    fn lines<'a>(control: &'a mut Control, t: &'a mut dyn Transport) -> Lines<'a> {
        Lines { transport: t, control }
    }

    /// Times a turn was given up with lines still waiting (for tests and
    /// the curious).
    pub fn yields(&self) -> u64 {
        self.yields
    }

    /// Delivers as much of `data` as the mode and [`LINES_PER_TURN`] allow;
    /// returns the bytes used. At the end of the stream (`all`), everything.
    fn consume(&mut self, data: &[u8], t: &mut dyn Transport) -> usize {
        self.consume_up_to(data, t, LINES_PER_TURN)
    }

    fn consume_up_to(&mut self, data: &[u8], t: &mut dyn Transport, budget: usize) -> usize {
        let mut pos = 0;
        let mut delivered = 0;
        while pos < data.len() && !self.control.paused && !t.is_closing() {
            if delivered >= budget {
                self.yield_turn(t);
                break;
            }
            // The answers to earlier lines wait above the high-water mark:
            // the next lines wait too (and reading stops) until they drain.
            if delivered > 0 && budget != usize::MAX && t.writing_paused() {
                if !self.held {
                    self.held = true;
                    t.pause_reading();
                }
                break;
            }
            if self.control.raw {
                let mut l = Self::lines(&mut self.control, t);
                self.handler.raw_data_received(&data[pos..], &mut l);
                return data.len();
            }
            let rest = &data[pos..];
            let Some(i) = memchr::memchr(b'\n', rest) else {
                // A trailing `\r` may be the first half of a `\r\n` cut by the
                // read: it is not part of the line, so a line of exactly the
                // maximum must not be refused for it (else whether it is
                // depends on where the stream was cut: protocols/tests/proptests.rs).
                let pending = rest.strip_suffix(b"\r").unwrap_or(rest);
                if pending.len() > self.control.max_len && !self.discarding {
                    let mut l = Self::lines(&mut self.control, t);
                    self.handler.line_too_long(rest.len(), &mut l);
                    self.discarding = true;
                }
                if self.discarding {
                    return data.len();
                }
                break;
            };
            pos += i + 1;
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
            let mut l = Self::lines(&mut self.control, t);
            if line.len() > l.control.max_len {
                self.handler.line_too_long(line.len(), &mut l);
            } else {
                l.progress();
                self.handler.line_received(line, &mut l);
            }
            delivered += 1;
        }
        pos
    }

    /// Stops reading and goes on next turn with what is buffered.
    fn yield_turn(&mut self, t: &mut dyn Transport) {
        if !self.yielded {
            self.yielded = true;
            self.yields += 1;
            t.pause_reading();
            t.call_later(Duration::ZERO, YIELD_TAG);
        }
    }

    /// Processes buffered bytes (after a resume or a mode switch).
    fn process_buffer(&mut self, t: &mut dyn Transport) {
        self.process_buffer_up_to(t, LINES_PER_TURN);
    }

    fn process_buffer_up_to(&mut self, t: &mut dyn Transport, budget: usize) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        let used = self.consume_up_to(&buf, t, budget);
        self.buf = buf;
        self.buf.drain(..used);
    }

    fn arm_idle_flush(&mut self, t: &mut dyn Transport) {
        let Some(gap) = self.idle_flush else { return };
        if self.buf.is_empty() || self.control.raw {
            if let Some(h) = self.idle_timer.take() {
                t.cancel_timer(h);
            }
            return;
        }
        match self.idle_timer {
            Some(h) if t.reschedule_timer(h, gap) => {}
            _ => self.idle_timer = Some(t.call_later(gap, FLUSH_TAG)),
        }
    }

    /// Delivers a pending partial line as if it had ended; true if it did.
    fn flush_partial(&mut self, t: &mut dyn Transport) -> bool {
        if self.buf.is_empty()
            || self.control.raw
            || self.control.paused
            || self.discarding
            || self.yielded
            || self.held
        {
            return false;
        }
        let buf = std::mem::take(&mut self.buf);
        let line = buf.strip_suffix(b"\r").unwrap_or(&buf);
        let mut l = Self::lines(&mut self.control, t);
        l.progress();
        self.handler.line_received(line, &mut l);
        true
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Whole lines are the messages: the idle timeout counts from the
        // last one, not from bytes that never make a line.
        t.progress();
        let mut l = Self::lines(&mut self.control, t);
        self.handler.connection_made(&mut l);
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let mut data = data;
        if std::mem::take(&mut self.after_flush) {
            if data == b"\r" {
                // Half of a `\r\n`: wait for the rest.
                self.after_flush = true;
                return;
            }
            data = data.strip_prefix(b"\r\n").or_else(|| data.strip_prefix(b"\n")).unwrap_or(data);
        }
        if self.buf.is_empty() {
            let used = self.consume(data, t);
            self.buf.extend_from_slice(&data[used..]);
        } else {
            self.buf.extend_from_slice(data);
            self.process_buffer(t);
        }
        self.arm_idle_flush(t);
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        // The stream is over: what is buffered is delivered now, whole.
        self.process_buffer_up_to(t, usize::MAX);
        self.yielded = false;
        self.held = false;
        self.flush_partial(t);
        if let Some(h) = self.idle_timer.take() {
            t.cancel_timer(h);
        }
        let mut l = Self::lines(&mut self.control, t);
        self.handler.read_eof(&mut l);
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        self.handler.connection_lost(reason, cx);
    }

    fn pause_writing(&mut self, t: &mut dyn Transport) {
        let mut l = Self::lines(&mut self.control, t);
        self.handler.pause_writing(&mut l);
    }

    fn resume_writing(&mut self, t: &mut dyn Transport) {
        let mut l = Self::lines(&mut self.control, t);
        self.handler.resume_writing(&mut l);
        let held = std::mem::take(&mut self.held);
        self.process_buffer(t);
        if held && !self.held && !self.yielded {
            t.resume_reading();
            self.arm_idle_flush(t);
        }
    }

    fn drained(&mut self, t: &mut dyn Transport) {
        let mut l = Self::lines(&mut self.control, t);
        self.handler.drained(&mut l);
    }

    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        if tag == YIELD_TAG {
            self.yielded = false;
            self.process_buffer(t);
            if !self.yielded && !self.held {
                t.resume_reading();
                self.arm_idle_flush(t);
            }
            return;
        }
        if tag == FLUSH_TAG {
            self.idle_timer = None;
            self.process_buffer(t);
            self.after_flush = self.flush_partial(t);
            return;
        }
        let mut l = Self::lines(&mut self.control, t);
        self.handler.timer_fired(tag, &mut l);
        self.process_buffer(t);
        self.arm_idle_flush(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    #[derive(Default)]
    struct Rec {
        lines: Vec<String>,
        raw: Vec<u8>,
        raw_after: Option<String>,
        pause_after: Option<String>,
        survive_too_long: bool,
        too_long: Vec<usize>,
    }

    impl LineHandler for Rec {
        fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
            let s = String::from_utf8_lossy(line).into_owned();
            if self.raw_after.as_deref() == Some(s.as_str()) {
                t.set_raw_mode();
            }
            if self.pause_after.as_deref() == Some(s.as_str()) {
                t.pause_delivery();
                t.call_later(Duration::from_secs(1), 7);
            }
            self.lines.push(s);
        }
        fn raw_data_received(&mut self, data: &[u8], t: &mut Lines<'_>) {
            self.raw.extend_from_slice(data);
            if let Some(i) = self.raw.iter().position(|&b| b == b'.') {
                self.raw.truncate(i);
                t.set_line_mode();
            }
        }
        fn line_too_long(&mut self, len: usize, t: &mut Lines<'_>) {
            self.too_long.push(len);
            if !self.survive_too_long {
                t.write(b"error: too long\n");
                t.lose_connection();
            }
        }
        fn timer_fired(&mut self, tag: u64, t: &mut Lines<'_>) {
            if tag == 7 {
                t.resume_delivery();
            }
        }
    }

    fn harness(rec: Rec, max: usize) -> Harness<LineReceiver<Rec>> {
        let mut h =
            Harness::new(LineReceiver::new(rec).max_line_length(max).flush_partial_after(Duration::from_millis(100)));
        h.connect();
        h
    }

    fn lines(h: &Harness<LineReceiver<Rec>>) -> Vec<&str> {
        h.protocol.handler.lines.iter().map(String::as_str).collect()
    }

    #[test]
    fn line_split_across_reads() {
        let mut h = harness(Rec::default(), 100);
        h.feed(b"hel");
        h.feed(b"lo wo");
        h.feed(b"rld\n");
        assert_eq!(lines(&h), ["hello world"]);
    }

    #[test]
    fn several_lines_in_one_read_and_crlf() {
        let mut h = harness(Rec::default(), 100);
        h.feed(b"a\r\nb\n\nc\r");
        assert_eq!(lines(&h), ["a", "b", ""]);
        h.feed(b"\n");
        assert_eq!(lines(&h), ["a", "b", "", "c"]);
    }

    #[test]
    fn idle_gap_flushes_partial_line_once() {
        let mut h = harness(Rec::default(), 100);
        h.feed(b"hello big world");
        h.advance(Duration::from_millis(99));
        assert!(lines(&h).is_empty());
        h.feed(b"!");
        h.advance(Duration::from_millis(99));
        assert!(lines(&h).is_empty(), "each byte restarts the gap");
        h.advance(Duration::from_millis(1));
        assert_eq!(lines(&h), ["hello big world!"]);
        h.advance(Duration::from_secs(5));
        assert_eq!(lines(&h).len(), 1);
        assert_eq!(h.cx.pending_timers(), 0);
    }

    #[test]
    fn a_line_ending_after_an_idle_flush_ends_the_flushed_line() {
        let mut h = harness(Rec::default(), 100);
        h.feed(b"reqtime");
        h.advance(Duration::from_millis(100));
        h.feed(b"\n");
        h.feed(b"\n");
        assert_eq!(lines(&h), ["reqtime", ""], "the first newline is the flushed line's own");
        h.feed(b"ab");
        h.advance(Duration::from_millis(100));
        h.feed(b"\r");
        h.feed(b"\ncd\n");
        h.feed(b"x");
        h.advance(Duration::from_millis(100));
        h.feed(b"y\n");
        assert_eq!(lines(&h), ["reqtime", "", "ab", "cd", "x", "y"], "only a line ending is swallowed");
    }

    #[test]
    fn half_close_delivers_pending_partial_line_then_closes() {
        let mut h = harness(Rec::default(), 100);
        h.feed(b"one\ntwo");
        h.feed_eof();
        assert_eq!(lines(&h), ["one", "two"]);
        assert!(h.is_closed());
        assert!(h.lost_reason().unwrap().is_clean());
    }

    #[test]
    fn max_length_with_and_without_newline() {
        let mut h = harness(Rec::default(), 5);
        h.feed(b"12345\n");
        assert_eq!(lines(&h), ["12345"]);
        h.feed(b"123456\nnext\n");
        assert_eq!(h.protocol.handler.too_long, vec![6]);
        assert_eq!(lines(&h), ["12345"], "nothing after the close is delivered");
        assert_eq!(h.take_text(), "error: too long\n");
        assert!(h.is_closed());

        let mut h = harness(Rec::default(), 5);
        h.feed(b"1234");
        h.feed(b"56");
        assert_eq!(h.protocol.handler.too_long, vec![6], "caught before any newline");
        assert!(h.is_closed());
    }

    #[test]
    fn surviving_an_overlong_line_skips_to_the_next() {
        let rec = Rec { survive_too_long: true, ..Rec::default() };
        let mut h = harness(rec, 5);
        h.feed(b"1234567");
        h.feed(b"89\nok\n");
        assert_eq!(h.protocol.handler.too_long, vec![7]);
        assert_eq!(lines(&h), ["ok"]);
        assert!(!h.is_closed());
    }

    #[test]
    fn raw_mode_and_back() {
        let rec = Rec { raw_after: Some("RAW".into()), ..Rec::default() };
        let mut h = harness(rec, 100);
        h.feed(b"a\nRAW\nxyz");
        h.feed(b"w.");
        assert_eq!(h.protocol.handler.raw, b"xyzw");
        assert_eq!(lines(&h), ["a", "RAW"]);
        h.feed(b"b\n");
        assert_eq!(lines(&h), ["a", "RAW", "b"]);
    }

    #[test]
    fn paused_delivery_holds_lines_until_resumed() {
        let rec = Rec { pause_after: Some("wait".into()), ..Rec::default() };
        let mut h = harness(rec, 100);
        h.feed(b"wait\nx\ny\n");
        assert_eq!(lines(&h), ["wait"]);
        h.advance(Duration::from_millis(999));
        assert_eq!(lines(&h), ["wait"]);
        h.advance(Duration::from_millis(1));
        assert_eq!(lines(&h), ["wait", "x", "y"]);
    }

    #[test]
    fn a_read_full_of_short_lines_is_delivered_over_several_turns() {
        let mut h = Harness::new(LineReceiver::new(Rec::default()));
        h.connect();
        h.feed(&[b'\n'; 5000]);
        // All of them, in the end (the harness plays the turns through)...
        assert_eq!(h.protocol.handler.lines.len(), 5000);
        // ...but not in one go: four turns were given up on the way.
        assert_eq!(h.protocol.yields(), 4);
        assert!(!h.is_reading_paused(), "reading resumed once the lines were done");
        h.feed(b"last\n");
        assert_eq!(h.protocol.handler.lines.last().map(String::as_str), Some("last"));
    }
}
