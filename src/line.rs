//! Line framing (Twisted's `LineReceiver`): turns a byte stream into lines.
//!
//! TCP delivers a stream, not messages: one line may arrive in pieces, or
//! several in one read (seed 004's "partial send/recv" pitfall). A
//! [`LineReceiver`] buffers and splits on `\n` (dropping a `\r` before it),
//! or on the delimiter given to [`LineReceiver::delimiter`], so a plugin
//! implements [`LineHandler::line_received`] and nothing about sockets.
//!
//! It also serves the handouts' naive clients, which send a string with no
//! newline and then wait: with [`LineReceiver::flush_partial_after`] a partial
//! line is delivered after an idle gap, and one left when the peer half-closes
//! is always delivered. A line ending that arrives just after such a flush
//! ends the line already delivered (a client that sent `reqtime`, dawdled,
//! then sent `\n` asked one question, not two).
//!
//! A handler can switch to raw mode ([`Lines::set_raw_mode`]: a body of
//! known length after a header line) and back, handing back what it did not
//! use ([`Lines::set_line_mode_with`]); drop what is buffered
//! ([`Lines::clear_line_buffer`]); answer with [`Lines::send_line`]; and keep
//! lines without copying them ([`LineReceiver::owned_frames`]).
//!
//! The receiver buffers in a [`BytesMut`] and takes lines off its front
//! without moving the rest, so a buffer of many short lines costs time
//! linear in its size; while its buffer is empty it parses the read at hand
//! directly and keeps only the unfinished tail.
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
//!         t.send_line(line.len().to_string().as_bytes());
//!     }
//! }
//!
//! let mut h = Harness::new(LineReceiver::new(Count));
//! h.connect();
//! h.feed(b"hel");
//! h.feed(b"lo\r\nab\n");
//! assert_eq!(h.take_text(), "5\n2\n");
//! ```

pub(crate) mod frame;

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;

use self::frame::Input;
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
/// else had theirs. A delivery of raw data counts as a line.
pub const LINES_PER_TURN: usize = 1024;

/// Where lines end.
enum Delimiter {
    /// `\n`, a `\r` before it dropped (the default); `send_line` appends `\n`.
    Newline,
    /// Exactly these bytes, both ways.
    Exact(Box<Exact>),
}

struct Exact {
    bytes: Box<[u8]>,
    finder: Finder<'static>,
}

impl Exact {
    #[inline(never)]
    fn find(&self, data: &[u8], from: usize) -> Option<(usize, usize)> {
        self.finder.find(&data[from..]).map(|i| (i + from, i + from + self.bytes.len()))
    }
}

impl Delimiter {
    /// The first line end in `data` at or after `from`: the line's length
    /// (without its delimiter) and where the next line begins.
    #[inline]
    fn find(&self, data: &[u8], from: usize) -> Option<(usize, usize)> {
        match self {
            Delimiter::Newline => memchr::memchr(b'\n', &data[from..]).map(|i| {
                let i = i + from;
                (if i > 0 && data[i - 1] == b'\r' { i - 1 } else { i }, i + 1)
            }),
            Delimiter::Exact(e) => e.find(data, from),
        }
    }

    /// How many bytes at the end of `data` (which holds no whole delimiter)
    /// may be the start of one: they are not part of the line.
    #[inline]
    fn partial(&self, data: &[u8]) -> usize {
        match self {
            Delimiter::Newline => usize::from(data.last() == Some(&b'\r')),
            Delimiter::Exact(e) => (1..e.bytes.len()).rev().find(|&k| data.ends_with(&e.bytes[..k])).unwrap_or(0),
        }
    }

    /// Of bytes searched without finding a delimiter, how many at the end
    /// must be searched again when more arrive.
    #[inline]
    fn overlap(&self) -> usize {
        match self {
            Delimiter::Newline => 0,
            Delimiter::Exact(e) => e.bytes.len() - 1,
        }
    }

    /// What [`Lines::send_line`] appends.
    fn ending(&self) -> &[u8] {
        match self {
            Delimiter::Newline => b"\n",
            Delimiter::Exact(e) => &e.bytes,
        }
    }

    /// After an idle flush that saw `seen` bytes of a line ending: strips
    /// the rest of that ending from the front of `data`, or says how much
    /// of it has now been seen if `data` is only a part of it.
    fn strip_ending<'d>(&self, seen: usize, data: &'d [u8]) -> Result<&'d [u8], usize> {
        match self {
            Delimiter::Newline if data == b"\r" => Err(1),
            Delimiter::Newline => Ok(data.strip_prefix(b"\r\n").or_else(|| data.strip_prefix(b"\n")).unwrap_or(data)),
            Delimiter::Exact(e) => {
                let rest = &e.bytes[seen.min(e.bytes.len())..];
                match data.strip_prefix(rest) {
                    Some(after) => Ok(after),
                    None if rest.starts_with(data) => Err(seen + data.len()),
                    None => Ok(data),
                }
            }
        }
    }
}

/// Bytes a handler gave back with [`Lines::set_line_mode_with`].
enum Pushback {
    None,
    /// The last `n` bytes of the raw data being delivered (nothing to copy).
    Tail(usize),
    /// Other bytes, copied: parsed before whatever is still unparsed.
    Bytes(Box<[u8]>),
}

/// Delivery state a handler can change from its callbacks.
struct Control {
    raw: bool,
    paused: bool,
    max_len: usize,
    delimiter: Delimiter,
    /// [`Lines::clear_line_buffer`] was called: what is unparsed goes.
    cleared: bool,
    pushback: Pushback,
}

/// The transport as a [`LineHandler`] sees it: every [`Transport`] method
/// (through `Deref`), plus switching between line and raw mode, pausing
/// delivery, clearing the buffer and sending lines.
pub struct Lines<'a> {
    transport: &'a mut dyn Transport,
    control: &'a mut Control,
    /// What is buffered after the current line.
    after: &'a [u8],
    /// In `raw_data_received`, the data given.
    raw: &'a [u8],
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
    /// [`set_line_mode`](Self::set_line_mode) (Twisted's `setRawMode`).
    /// Called from `line_received`, the bytes after the current line are
    /// the first raw data.
    pub fn set_raw_mode(&mut self) {
        self.control.raw = true;
    }

    /// Goes back to delivering lines; called from `raw_data_received`, the
    /// handler used all the data it was given.
    pub fn set_line_mode(&mut self) {
        self.control.raw = false;
        self.control.pushback = Pushback::None;
    }

    /// Goes back to delivering lines, parsing `rest` first (Twisted's
    /// `setLineMode(extra)`): from `raw_data_received`, `rest` is the part
    /// of its data the handler did not use, and the lines in it are
    /// delivered next, before anything read later. Given as a subslice of
    /// that data (`&data[used..]`), nothing is copied; other bytes are
    /// copied and parsed before whatever is still buffered.
    ///
    /// ```
    /// use twirl::line::{LineHandler, LineReceiver, Lines};
    /// use twirl::testing::Harness;
    ///
    /// /// `SIZE n` announces an `n`-byte body; answers each body with its sum.
    /// #[derive(Default)]
    /// struct Bodies { want: usize, body: Vec<u8> }
    /// impl LineHandler for Bodies {
    ///     fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
    ///         if let Some(n) = line.strip_prefix(b"SIZE ") {
    ///             self.want = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    ///             t.set_raw_mode();
    ///         }
    ///     }
    ///     fn raw_data_received(&mut self, data: &[u8], t: &mut Lines<'_>) {
    ///         let used = (self.want - self.body.len()).min(data.len());
    ///         self.body.extend_from_slice(&data[..used]);
    ///         if self.body.len() == self.want {
    ///             let sum: u32 = self.body.drain(..).map(u32::from).sum();
    ///             t.send_line(sum.to_string().as_bytes());
    ///             t.set_line_mode_with(&data[used..]);
    ///         }
    ///     }
    /// }
    ///
    /// let mut h = Harness::new(LineReceiver::new(Bodies::default()));
    /// h.connect();
    /// h.feed(b"SIZE 2\n\x01\x02SIZE 1\n\x05");
    /// assert_eq!(h.take_text(), "3\n5\n");
    /// ```
    pub fn set_line_mode_with(&mut self, rest: &[u8]) {
        self.control.raw = false;
        let (r, chunk) = (rest.as_ptr_range(), self.raw.as_ptr_range());
        self.control.pushback = if rest.is_empty() {
            Pushback::None
        } else if r.end == chunk.end && r.start >= chunk.start {
            Pushback::Tail(rest.len())
        } else {
            Pushback::Bytes(rest.into())
        };
    }

    /// Returns and discards what is buffered after the current line
    /// (Twisted's `clearLineBuffer`): none of it will be delivered. In
    /// `raw_data_received` nothing is buffered after the data given (but
    /// what was handed back with [`set_line_mode_with`](Self::set_line_mode_with)).
    ///
    /// ```
    /// use twirl::line::{LineHandler, LineReceiver, Lines};
    /// use twirl::testing::Harness;
    ///
    /// /// Echoes the first line, and what came with it, then nothing more.
    /// #[derive(Default)]
    /// struct First { done: bool }
    /// impl LineHandler for First {
    ///     fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
    ///         if !std::mem::replace(&mut self.done, true) {
    ///             let rest = t.clear_line_buffer();
    ///             t.send_line(&[line, b" + ", &rest[..]].concat());
    ///         }
    ///     }
    /// }
    ///
    /// let mut h = Harness::new(LineReceiver::new(First::default()));
    /// h.connect();
    /// h.feed(b"one\ntwo\nthr");
    /// h.feed(b"ee\n");
    /// assert_eq!(h.take_text(), "one + two\nthr\n");
    /// ```
    pub fn clear_line_buffer(&mut self) -> Bytes {
        self.control.cleared = true;
        let after = std::mem::take(&mut self.after);
        let back: &[u8] = match &self.control.pushback {
            Pushback::None => &[],
            Pushback::Tail(n) => &self.raw[self.raw.len().saturating_sub(*n)..],
            Pushback::Bytes(b) => b,
        };
        let cleared = if back.is_empty() { Bytes::copy_from_slice(after) } else { [back, after].concat().into() };
        self.control.pushback = Pushback::None;
        cleared
    }

    /// Writes `line` and the delimiter (`\n` unless
    /// [`LineReceiver::delimiter`] set another) in one write (Twisted's
    /// `sendLine`).
    pub fn send_line(&mut self, line: &[u8]) {
        frame::write_joined(self.transport, &[line, self.control.delimiter.ending()], true);
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
    /// One line, without its delimiter.
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>);

    /// One line as an owned [`Bytes`], with a receiver built with
    /// [`LineReceiver::owned_frames`]: a handler that keeps lines (a
    /// backlog, a queue to another connection, [`Transport::write_bytes`])
    /// overrides it and gets them without a copy. Default: calls
    /// [`line_received`](Self::line_received).
    fn line_received_owned(&mut self, line: Bytes, t: &mut Lines<'_>) {
        self.line_received(&line, t);
    }

    /// The connection is open.
    fn connection_made(&mut self, t: &mut Lines<'_>) {
        let _ = t;
    }

    /// Bytes received in raw mode: everything read (or buffered) so far.
    /// Hand back what is not used with [`Lines::set_line_mode_with`].
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
    /// Bytes not parsed yet (kept apart from the parser's state, so that
    /// the parser reads it in place: it is never moved).
    buf: BytesMut,
    p: Parser,
    idle_flush: Option<Duration>,
    idle_timer: Option<TimerHandle>,
    /// The last delivery was a partial line flushed by the idle timer: a
    /// line ending that comes next belongs to it (`Some(bytes of it seen)`).
    after_flush: Option<usize>,
}

/// What parsing lines needs besides the bytes and the handler.
struct Parser {
    control: Control,
    /// The first `scanned` bytes of the buffer hold no delimiter: a search
    /// resumes there (a long line trickled in is searched once, not once
    /// per read).
    scanned: usize,
    /// Lines are handed over as `Bytes` (`line_received_owned`).
    owned: bool,
    /// Skipping the rest of an over-long line the handler chose to survive.
    discarding: bool,
    /// Lines are waiting for the next turn (see [`LINES_PER_TURN`]).
    yielded: bool,
    /// Lines are waiting for the output to drain (`resume_writing`).
    held: bool,
    yields: u64,
}

impl Parser {
    /// Delivers lines (or raw data) from the front of `input`, as many as
    /// the mode and `budget` allow (`usize::MAX`: at the end of the
    /// stream, everything); returns how many deliveries it made.
    fn consume<H: LineHandler, I: Input>(
        &mut self,
        handler: &mut H,
        input: &mut I,
        t: &mut dyn Transport,
        budget: usize,
    ) -> usize {
        let mut delivered = 0;
        let mut from = std::mem::take(&mut self.scanned);
        while !input.bytes().is_empty() {
            if !self.owned && !self.discarding && !self.control.raw {
                // The common case: a run of whole lines, borrowed (it makes
                // the checks below, and stops where one of them matters).
                let (used, lines, unfinished) = self.run(handler, input.bytes(), &mut from, t, budget, delivered);
                delivered += lines;
                input.advance(used);
                if self.after_callback(input) {
                    break;
                }
                if unfinished {
                    self.unfinished(handler, input, t);
                    break;
                }
                if used > 0 {
                    continue;
                }
            }
            if self.control.paused || t.is_closing() {
                break;
            }
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
                from = 0;
                let data = input.bytes();
                let len = data.len();
                let mut l = Lines { transport: t, control: &mut self.control, after: &[], raw: data };
                handler.raw_data_received(data, &mut l);
                delivered += 1;
                self.control.cleared = false;
                let keep = match std::mem::replace(&mut self.control.pushback, Pushback::None) {
                    Pushback::Tail(n) => n.min(len),
                    other => {
                        self.control.pushback = other;
                        0
                    }
                };
                input.advance(len - keep);
                if matches!(self.control.pushback, Pushback::Bytes(_)) {
                    break;
                }
                continue;
            }
            let rest = input.bytes();
            let found = self.control.delimiter.find(rest, from.min(rest.len()));
            from = 0;
            let Some((len, next)) = found else {
                self.unfinished(handler, input, t);
                break;
            };
            if self.discarding {
                self.discarding = false;
                input.advance(next);
                continue;
            }
            if len > self.control.max_len {
                let mut l = Lines { transport: t, control: &mut self.control, after: &rest[next..], raw: &[] };
                handler.line_too_long(len, &mut l);
                input.advance(next);
            } else if self.owned {
                let mut line = input.take_frame(next);
                line.truncate(len);
                let mut l = Lines { transport: t, control: &mut self.control, after: input.bytes(), raw: &[] };
                l.progress();
                handler.line_received_owned(line, &mut l);
            } else {
                let mut l = Lines { transport: t, control: &mut self.control, after: &rest[next..], raw: &[] };
                l.progress();
                handler.line_received(&rest[..len], &mut l);
                input.advance(next);
            }
            delivered += 1;
            if self.after_callback(input) {
                break;
            }
        }
        delivered
    }

    /// Delivers whole lines of at most the maximum length from the front of
    /// `data` while nothing else needs doing (a mode switch, a handler's
    /// request, the budget, backpressure: `consume` sees to those), having
    /// delivered `done` already; returns the bytes used, the lines
    /// delivered, and whether it stopped at an unfinished line.
    #[inline]
    fn run<H: LineHandler>(
        &mut self,
        handler: &mut H,
        data: &[u8],
        from: &mut usize,
        t: &mut dyn Transport,
        budget: usize,
        done: usize,
    ) -> (usize, usize, bool) {
        let (mut pos, mut delivered, mut unfinished) = (0, done, false);
        while pos < data.len() && delivered < budget && !self.control.paused && !t.is_closing() {
            if delivered > 0 && budget != usize::MAX && t.writing_paused() {
                break;
            }
            let rest = &data[pos..];
            let Some((len, next)) = self.control.delimiter.find(rest, (*from).min(rest.len())) else {
                unfinished = true;
                break;
            };
            *from = 0;
            if len > self.control.max_len {
                break;
            }
            let mut l = Lines { transport: t, control: &mut self.control, after: &rest[next..], raw: &[] };
            l.progress();
            handler.line_received(&rest[..len], &mut l);
            delivered += 1;
            pos += next;
            if self.control.raw || self.control.cleared || !matches!(self.control.pushback, Pushback::None) {
                break;
            }
        }
        (pos, delivered - done, unfinished)
    }

    /// What is left of `input` is an unfinished line: refuses it if it is
    /// already too long, drops it if refused, and notes how much of it was
    /// searched.
    #[inline(always)]
    fn unfinished<H: LineHandler, I: Input>(&mut self, handler: &mut H, input: &mut I, t: &mut dyn Transport) {
        let rest = input.bytes();
        // A trailing `\r` (the start of any delimiter) may be the first half
        // of a line ending cut by the read: it is not part of the line, so a
        // line of exactly the maximum must not be refused for it (else
        // whether it is depends on where the stream was cut:
        // protocols/tests/proptests.rs).
        let partial = self.control.delimiter.partial(rest);
        if rest.len() - partial > self.control.max_len && !self.discarding {
            let mut l = Lines { transport: t, control: &mut self.control, after: &[], raw: &[] };
            handler.line_too_long(rest.len(), &mut l);
            self.discarding = true;
            self.after_callback(input);
        }
        if self.discarding {
            let n = input.bytes().len().saturating_sub(partial);
            input.advance(n);
        }
        self.scanned = input.bytes().len().saturating_sub(self.control.delimiter.overlap());
    }

    /// After a callback in `consume`: drops what is unparsed if the handler
    /// cleared the buffer; true if it handed back bytes to parse first.
    #[inline]
    fn after_callback<I: Input>(&mut self, input: &mut I) -> bool {
        if self.control.cleared {
            self.control.cleared = false;
            let n = input.bytes().len();
            input.advance(n);
        }
        matches!(self.control.pushback, Pushback::Bytes(_))
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
}

impl<H: LineHandler> LineReceiver<H> {
    /// A receiver with the default maximum line length, `\n` (or `\r\n`)
    /// line endings, borrowed lines and no idle flush.
    pub fn new(handler: H) -> Self {
        LineReceiver {
            handler,
            buf: BytesMut::new(),
            p: Parser {
                control: Control {
                    raw: false,
                    paused: false,
                    max_len: DEFAULT_MAX_LINE,
                    delimiter: Delimiter::Newline,
                    cleared: false,
                    pushback: Pushback::None,
                },
                scanned: 0,
                owned: false,
                discarding: false,
                yielded: false,
                held: false,
                yields: 0,
            },
            idle_flush: None,
            idle_timer: None,
            after_flush: None,
        }
    }

    /// Sets the maximum line length in bytes (without the delimiter).
    pub fn max_line_length(mut self, max: usize) -> Self {
        self.p.control.max_len = max;
        self
    }

    /// Splits lines on exactly `delimiter` (Twisted's `delimiter`, say
    /// `b"\r\n"`, or `b"\0"`), and ends lines sent with
    /// [`Lines::send_line`] with it. The default splits on `\n`, drops a
    /// `\r` before it, and sends `\n`.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    ///
    /// ```
    /// use twirl::line::{LineHandler, LineReceiver, Lines};
    /// use twirl::testing::Harness;
    ///
    /// struct Upper;
    /// impl LineHandler for Upper {
    ///     fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
    ///         t.send_line(&line.to_ascii_uppercase());
    ///     }
    /// }
    ///
    /// let mut h = Harness::new(LineReceiver::new(Upper).delimiter(b"\r\n"));
    /// h.connect();
    /// h.feed(b"a\nb\r");
    /// h.feed(b"\nc\r\n");
    /// assert_eq!(h.take_text(), "A\nB\r\nC\r\n", "a bare \\n is part of a line");
    /// ```
    pub fn delimiter(mut self, delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        let bytes: Box<[u8]> = delimiter.into();
        let finder = Finder::new(&bytes[..]).into_owned();
        self.p.control.delimiter = Delimiter::Exact(Box::new(Exact { bytes, finder }));
        self
    }

    /// Hands lines to [`LineHandler::line_received_owned`] as [`Bytes`]
    /// that share the receiver's buffer: keeping one costs no copy (each
    /// read is copied once into the buffer instead, and a line kept holds
    /// on to the buffer it came in). Without it, lines are borrowed and
    /// nothing is paid for this.
    ///
    /// ```
    /// use twirl::bytes::Bytes;
    /// use twirl::line::{LineHandler, LineReceiver, Lines};
    /// use twirl::testing::Harness;
    ///
    /// /// Keeps every line; sends them all back, last first, at the end.
    /// #[derive(Default)]
    /// struct Backlog(Vec<Bytes>);
    /// impl LineHandler for Backlog {
    ///     fn line_received_owned(&mut self, line: Bytes, _: &mut Lines<'_>) {
    ///         self.0.push(line);
    ///     }
    ///     // Used only without `owned_frames`: keep a copy then.
    ///     fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
    ///         self.line_received_owned(Bytes::copy_from_slice(line), t);
    ///     }
    ///     fn read_eof(&mut self, t: &mut Lines<'_>) {
    ///         for line in self.0.drain(..).rev() {
    ///             t.write_bytes(line);
    ///         }
    ///         t.lose_connection();
    ///     }
    /// }
    ///
    /// let mut h = Harness::new(LineReceiver::new(Backlog::default()).owned_frames());
    /// h.connect();
    /// h.feed(b"a\nbb\nc");
    /// h.feed(b"cc\n");
    /// h.feed_eof();
    /// assert_eq!(h.take_text(), "cccbba");
    /// ```
    pub fn owned_frames(mut self) -> Self {
        self.p.owned = true;
        self
    }

    /// Delivers a partial line (one with no `\n` yet) once no byte has
    /// arrived for `gap`: serves clients that send without a newline and wait.
    pub fn flush_partial_after(mut self, gap: Duration) -> Self {
        self.idle_flush = Some(gap);
        self
    }

    /// Times a turn was given up with lines still waiting (for tests and
    /// the curious).
    pub fn yields(&self) -> u64 {
        self.p.yields
    }

    /// Runs a handler callback outside line delivery, then applies what it
    /// asked of the buffer.
    fn with_lines(&mut self, t: &mut dyn Transport, f: impl FnOnce(&mut H, &mut Lines<'_>)) {
        let mut l = Lines { transport: t, control: &mut self.p.control, after: &self.buf[..], raw: &[] };
        f(&mut self.handler, &mut l);
        if std::mem::take(&mut self.p.control.cleared) {
            self.buf.clear();
            self.p.scanned = 0;
        }
        self.absorb_pushback();
    }

    /// Puts bytes handed back with [`Lines::set_line_mode_with`] (other
    /// than the tail of raw data, which `consume` takes care of) in front
    /// of the buffer.
    #[inline]
    fn absorb_pushback(&mut self) {
        if matches!(self.p.control.pushback, Pushback::Bytes(_)) {
            self.prepend_pushback();
        }
    }

    #[cold]
    fn prepend_pushback(&mut self) {
        if let Pushback::Bytes(back) = std::mem::replace(&mut self.p.control.pushback, Pushback::None) {
            let mut buf = BytesMut::with_capacity(back.len() + self.buf.len());
            buf.extend_from_slice(&back);
            buf.extend_from_slice(&self.buf);
            self.buf = buf;
            self.p.scanned = 0;
        }
    }

    /// Processes buffered bytes (after a resume or a mode switch).
    fn process_buffer(&mut self, t: &mut dyn Transport) {
        self.process_buffer_up_to(t, LINES_PER_TURN);
    }

    fn process_buffer_up_to(&mut self, t: &mut dyn Transport, mut budget: usize) {
        loop {
            self.absorb_pushback();
            if self.buf.is_empty() {
                break;
            }
            let delivered = if self.p.owned {
                self.p.consume(&mut self.handler, &mut self.buf, t, budget)
            } else {
                // Borrowed lines: parse a slice, advance the buffer once.
                let mut rest: &[u8] = &self.buf;
                let delivered = self.p.consume(&mut self.handler, &mut rest, t, budget);
                let used = self.buf.len() - rest.len();
                if used > 0 {
                    Input::advance(&mut self.buf, used);
                }
                delivered
            };
            if budget != usize::MAX {
                budget = budget.saturating_sub(delivered);
            }
            if !matches!(self.p.control.pushback, Pushback::Bytes(_)) {
                break;
            }
        }
        frame::trim(&mut self.buf);
    }

    fn arm_idle_flush(&mut self, t: &mut dyn Transport) {
        let Some(gap) = self.idle_flush else { return };
        if self.buf.is_empty() || self.p.control.raw {
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

    /// Delivers a pending partial line as if it had ended; if it did,
    /// returns how many bytes of a delimiter it ended with.
    fn flush_partial(&mut self, t: &mut dyn Transport) -> Option<usize> {
        if self.buf.is_empty()
            || self.p.control.raw
            || self.p.control.paused
            || self.p.discarding
            || self.p.yielded
            || self.p.held
        {
            return None;
        }
        let mut buf = std::mem::take(&mut self.buf);
        self.p.scanned = 0;
        let partial = self.p.control.delimiter.partial(&buf);
        let len = buf.len() - partial;
        let mut l = Lines { transport: t, control: &mut self.p.control, after: &[], raw: &[] };
        l.progress();
        if self.p.owned {
            let mut line = buf.split().freeze();
            line.truncate(len);
            self.handler.line_received_owned(line, &mut l);
        } else {
            self.handler.line_received(&buf[..len], &mut l);
            buf.clear();
            self.buf = buf;
        }
        self.p.control.cleared = false;
        self.absorb_pushback();
        Some(partial)
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Whole lines are the messages: the idle timeout counts from the
        // last one, not from bytes that never make a line.
        t.progress();
        self.with_lines(t, |h, l| h.connection_made(l));
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let mut data = data;
        if let Some(seen) = self.after_flush.take() {
            match self.p.control.delimiter.strip_ending(seen, data) {
                Ok(rest) => data = rest,
                Err(seen) => {
                    // Part of a line ending: wait for the rest.
                    self.after_flush = Some(seen);
                    return;
                }
            }
        }
        if self.buf.is_empty() && !self.p.owned {
            // The fast path: lines straight from the read, the tail kept.
            self.p.scanned = 0;
            let mut input = data;
            let delivered = self.p.consume(&mut self.handler, &mut input, t, LINES_PER_TURN);
            self.buf.extend_from_slice(input);
            if matches!(self.p.control.pushback, Pushback::Bytes(_)) {
                self.process_buffer_up_to(t, LINES_PER_TURN.saturating_sub(delivered));
            }
        } else {
            self.buf.extend_from_slice(data);
            self.process_buffer(t);
        }
        self.arm_idle_flush(t);
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        // The stream is over: what is buffered is delivered now, whole.
        self.process_buffer_up_to(t, usize::MAX);
        self.p.yielded = false;
        self.p.held = false;
        self.flush_partial(t);
        if let Some(h) = self.idle_timer.take() {
            t.cancel_timer(h);
        }
        self.with_lines(t, |h, l| h.read_eof(l));
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        self.handler.connection_lost(reason, cx);
    }

    fn pause_writing(&mut self, t: &mut dyn Transport) {
        self.with_lines(t, |h, l| h.pause_writing(l));
    }

    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.with_lines(t, |h, l| h.resume_writing(l));
        let held = std::mem::take(&mut self.p.held);
        self.process_buffer(t);
        if held && !self.p.held && !self.p.yielded {
            t.resume_reading();
            self.arm_idle_flush(t);
        }
    }

    fn drained(&mut self, t: &mut dyn Transport) {
        self.with_lines(t, |h, l| h.drained(l));
    }

    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        if tag == YIELD_TAG {
            self.p.yielded = false;
            self.process_buffer(t);
            if !self.p.yielded && !self.p.held {
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
        self.with_lines(t, |h, l| h.timer_fired(tag, l));
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

    /// Events of a header-then-body protocol: a line `HDR n` announces `n`
    /// raw bytes, after which it is lines again.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Ev {
        Line(String),
        Raw(Vec<u8>),
    }

    #[derive(Default)]
    struct Flip {
        events: Vec<Ev>,
        want: usize,
        raw: Vec<u8>,
    }

    impl LineHandler for Flip {
        fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
            let s = String::from_utf8_lossy(line).into_owned();
            if let Some(n) = s.strip_prefix("HDR ").and_then(|n| n.parse().ok()) {
                self.want = n;
                t.set_raw_mode();
            }
            self.events.push(Ev::Line(s));
        }
        fn raw_data_received(&mut self, data: &[u8], t: &mut Lines<'_>) {
            let take = (self.want - self.raw.len()).min(data.len());
            self.raw.extend_from_slice(&data[..take]);
            if self.raw.len() == self.want {
                self.events.push(Ev::Raw(std::mem::take(&mut self.raw)));
                t.set_line_mode_with(&data[take..]);
            }
        }
    }

    /// The events of `pieces`, each delivered in one read however long.
    fn flips(pieces: &[&[u8]]) -> (Vec<Ev>, u64) {
        let longest = pieces.iter().map(|p| p.len()).max().unwrap_or(0);
        let config = crate::Config { read_buffer: longest, read_budget: usize::MAX, ..crate::Config::default() };
        let mut h = Harness::with_config(LineReceiver::new(Flip::default()), config);
        h.connect();
        for p in pieces {
            h.feed(p);
        }
        assert!(!h.is_reading_paused());
        let reads = h.cx.stats().reads;
        (std::mem::take(&mut h.protocol.handler.events), reads)
    }

    #[test]
    fn raw_mode_handing_back_the_rest_of_a_read_in_every_split() {
        let input: &[u8] = b"HDR 5\r\nab\r\ncTAIL\r\n";
        let want = vec![Ev::Line("HDR 5".into()), Ev::Raw(b"ab\r\nc".to_vec()), Ev::Line("TAIL".into())];
        assert_eq!(flips(&[input]).0, want, "one read");
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = flips(&[&input[..i], &input[i..j], &input[j..]]).0;
                assert_eq!(got, want, "cut at {i} and {j}");
            }
        }
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(flips(&bytewise).0, want, "a byte at a time");
    }

    #[test]
    fn five_thousand_flips_in_one_read_are_ten_thousand_and_one_events() {
        let mut input = b"HDR 5\r\nab\r\nc".repeat(5000);
        input.extend_from_slice(b"TAIL\r\n");
        let (got, reads) = flips(&[&input]);
        assert_eq!(reads, 1, "one read of {} bytes", input.len());
        assert_eq!(got.len(), 10_001);
        assert!(got.chunks(2).take(5000).all(|p| p == [Ev::Line("HDR 5".into()), Ev::Raw(b"ab\r\nc".to_vec())]));
        assert_eq!(got.last(), Some(&Ev::Line("TAIL".into())));
    }

    #[test]
    fn handing_back_bytes_that_are_not_the_rest_of_the_data_copies_them() {
        /// Raw mode after `R`; gives back a line of its own making, then the rest.
        #[derive(Default)]
        struct Inject(Vec<String>);
        impl LineHandler for Inject {
            fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
                self.0.push(String::from_utf8_lossy(line).into_owned());
                if line == b"R" {
                    t.set_raw_mode();
                }
            }
            fn raw_data_received(&mut self, data: &[u8], t: &mut Lines<'_>) {
                t.set_line_mode_with(&[b"made\n", data].concat());
            }
        }
        for cut in 0..=6 {
            let input = b"R\nx\ny\n";
            let mut h = Harness::new(LineReceiver::new(Inject::default()));
            h.connect();
            h.feed(&input[..cut]);
            h.feed(&input[cut..]);
            let got = &h.protocol.handler.0;
            assert_eq!(got[0], "R", "cut at {cut}");
            assert_eq!(got.last().map(String::as_str), Some("y"), "cut at {cut}: {got:?}");
            assert!(got.iter().filter(|l| *l == "made").count() >= 1, "cut at {cut}: {got:?}");
        }
    }

    /// Clears the buffer at the line `CLEAR` and keeps what it got.
    #[derive(Default)]
    struct Clearer {
        lines: Vec<String>,
        cleared: Vec<Vec<u8>>,
    }
    impl LineHandler for Clearer {
        fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
            if line == b"CLEAR" {
                self.cleared.push(t.clear_line_buffer().to_vec());
            }
            self.lines.push(String::from_utf8_lossy(line).into_owned());
        }
        fn timer_fired(&mut self, _: u64, t: &mut Lines<'_>) {
            self.cleared.push(t.clear_line_buffer().to_vec());
        }
    }

    #[test]
    fn clear_line_buffer_returns_and_drops_what_follows_the_line() {
        // One read: what follows in the read is returned, and not delivered.
        let mut h = Harness::new(LineReceiver::new(Clearer::default()));
        h.connect();
        h.feed(b"a\nCLEAR\nb\nc");
        assert_eq!(h.protocol.handler.lines, ["a", "CLEAR"]);
        assert_eq!(h.protocol.handler.cleared, [b"b\nc".to_vec()]);
        h.feed(b"d\n");
        assert_eq!(h.protocol.handler.lines, ["a", "CLEAR", "d"], "the next read is lines again");

        // From the buffer (the line came in pieces), and with owned lines.
        for owned in [false, true] {
            let r = LineReceiver::new(Clearer::default());
            let mut h = Harness::new(if owned { r.owned_frames() } else { r });
            h.connect();
            h.feed(b"CLE");
            h.feed(b"AR\nx\ny");
            assert_eq!(h.protocol.handler.lines, ["CLEAR"], "owned {owned}");
            assert_eq!(h.protocol.handler.cleared, [b"x\ny".to_vec()], "owned {owned}");
        }

        // Outside delivery: a partial line waiting in the buffer.
        let mut h = Harness::new(LineReceiver::new(Clearer::default()));
        h.connect();
        h.feed(b"part");
        h.with_transport(|t| {
            t.call_later(Duration::from_secs(1), 1);
        });
        h.advance(Duration::from_secs(1));
        assert_eq!(h.protocol.handler.cleared, [b"part".to_vec()]);
        h.feed(b"ial\n");
        assert_eq!(h.protocol.handler.lines, ["ial"]);
    }

    #[test]
    fn an_exact_delimiter_in_every_split() {
        /// Records lines; a line of exactly the maximum is fine, one more byte is not.
        #[derive(Default)]
        struct Keep(Vec<String>, Vec<usize>);
        impl LineHandler for Keep {
            fn line_received(&mut self, line: &[u8], _: &mut Lines<'_>) {
                self.0.push(String::from_utf8_lossy(line).into_owned());
            }
            fn line_too_long(&mut self, len: usize, _: &mut Lines<'_>) {
                self.1.push(len);
            }
        }
        let input: &[u8] = b"12345<>>\n<><>\r\n<>123456<>ok<";
        let want = ["12345", ">\n", "", "\r\n", "ok"];
        let run = |pieces: &[&[u8]]| {
            let mut h = Harness::new(LineReceiver::new(Keep::default()).delimiter(b"<>").max_line_length(5));
            h.connect();
            for p in pieces {
                h.feed(p);
            }
            h.feed(b">");
            let k = &h.protocol.handler;
            (k.0.clone(), k.1.len())
        };
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let (lines, refused) = run(&[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(lines, want, "cut at {i} and {j}");
                assert_eq!(refused, 1, "cut at {i} and {j}: 123456 refused once");
            }
        }
    }

    #[test]
    fn a_long_line_trickled_in_is_found_with_a_delimiter_cut_anywhere() {
        for delimiter in [&b"\r\n\r\n"[..], b"\n", b"ab"] {
            // A long line ending in all of its delimiter but the last byte.
            let mut line = b"x".repeat(3000);
            line.extend_from_slice(&delimiter[..delimiter.len() - 1]);
            line.push(b'a');
            let mut input = line.clone();
            input.extend_from_slice(delimiter);
            input.extend_from_slice(b"next");
            input.extend_from_slice(delimiter);
            let r = LineReceiver::new(Rec::default()).delimiter(delimiter);
            let mut h = Harness::new(r);
            h.connect();
            for b in input.chunks(1) {
                h.feed(b);
            }
            assert_eq!(lines(&h), [String::from_utf8_lossy(&line).as_ref(), "next"], "{delimiter:?}");
        }
    }

    #[test]
    fn send_line_writes_the_line_and_its_delimiter_in_one_write() {
        struct Answer;
        impl LineHandler for Answer {
            fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
                t.send_line(&line.repeat(200));
            }
        }
        for (delimiter, ending) in [(None, &b"\n"[..]), (Some(&b"\r\n"[..]), b"\r\n")] {
            let r = LineReceiver::new(Answer);
            let mut h = Harness::new(match delimiter {
                Some(d) => r.delimiter(d),
                None => r,
            });
            h.connect();
            for (n, line) in [&b"a"[..], b"", b"0123456789abcdef"].into_iter().enumerate() {
                h.feed(&[line, ending].concat());
                let mut want = line.repeat(200);
                want.extend_from_slice(ending);
                assert_eq!(h.take_output(), want);
                assert_eq!(h.cx.stats().writes, n as u64 + 1, "one write per line");
            }
        }
    }

    #[test]
    fn owned_lines_are_the_borrowed_lines() {
        #[derive(Default)]
        struct Owned(Vec<Bytes>, u32);
        impl LineHandler for Owned {
            fn line_received_owned(&mut self, line: Bytes, _: &mut Lines<'_>) {
                self.0.push(line);
            }
            fn line_received(&mut self, _: &[u8], _: &mut Lines<'_>) {
                self.1 += 1;
            }
        }
        let mut h = Harness::new(
            LineReceiver::new(Owned::default()).owned_frames().flush_partial_after(Duration::from_secs(1)),
        );
        h.connect();
        h.feed(b"one\r\ntw");
        h.feed(b"o\n\nthree\r");
        h.advance(Duration::from_secs(1));
        h.feed(b"\nfour\n");
        let got: Vec<&[u8]> = h.protocol.handler.0.iter().map(|b| &b[..]).collect();
        assert_eq!(got, [&b"one"[..], b"two", b"", b"three", b"four"]);
        assert_eq!(h.protocol.handler.1, 0, "the borrowed path was not used");
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
