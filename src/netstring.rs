//! Netstrings (Twisted's `NetstringReceiver`; the format is D. J.
//! Bernstein's, <https://cr.yp.to/proto/netstrings.txt>): each string is its
//! length in decimal, a colon, the bytes, and a comma: `5:hello,`.
//!
//! As in Twisted, a peer that breaks the format is not argued with: a length
//! that is not a decimal number (or has a leading zero, `007:`), a length
//! over the maximum, or a string not followed by its comma makes the
//! receiver tell the handler ([`NetstringHandler::bad_netstring`]) and close
//! the connection (after what the handler wrote is flushed), delivering
//! nothing more. A length over the maximum is refused as soon as its digits
//! say so, before its colon, so nothing is buffered for it.
//!
//! The receiver buffers in a [`BytesMut`], parses the read at hand directly
//! while its buffer is empty, and can hand strings over as owned [`Bytes`]
//! ([`NetstringReceiver::owned_frames`]), like [`crate::prefixed`].
//!
//! # Examples
//!
//! ```
//! use twirl::netstring::{NetstringHandler, NetstringReceiver, send_netstring};
//! use twirl::{Transport, testing::Harness};
//!
//! /// Answers every string with its length.
//! struct Len;
//! impl NetstringHandler for Len {
//!     fn string_received(&mut self, s: &[u8], t: &mut dyn Transport) {
//!         send_netstring(t, s.len().to_string().as_bytes());
//!     }
//! }
//!
//! let mut h = Harness::new(NetstringReceiver::new(Len));
//! h.connect();
//! h.feed(b"5:hel");
//! h.feed(b"lo,0:,");
//! assert_eq!(h.take_text(), "1:5,1:0,");
//! h.feed(b"3:abc;");
//! assert_eq!(h.take_text(), "", "no comma: refused");
//! assert!(h.is_closed());
//! ```

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::line::frame::{self, Input};
use crate::protocol::Protocol;
use crate::transport::{Context, Disconnect, Transport};

/// Default maximum string length: 1 MiB (Twisted's `MAX_LENGTH` is 99,999).
pub const DEFAULT_MAX_NETSTRING: usize = 1024 * 1024;

/// How a peer broke the netstring format.
///
/// ```
/// use twirl::netstring::NetstringError;
/// assert_eq!(NetstringError::MissingComma { found: b';' }.to_string(), "netstring not ended by a comma (found ';')");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetstringError {
    /// The length is not a decimal number followed by `:`: `found` came
    /// where a digit (or, after one, the colon) was expected.
    BadLength {
        /// The offending byte.
        found: u8,
    },
    /// The length has a leading zero (`01:`), which netstrings forbid.
    LeadingZero,
    /// The length is over the receiver's maximum.
    TooLong {
        /// The maximum, in bytes.
        max: usize,
    },
    /// The string was not followed by `,`.
    MissingComma {
        /// What came instead.
        found: u8,
    },
}

impl fmt::Display for NetstringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetstringError::BadLength { found } => {
                write!(f, "netstring length expected: a decimal number and ':' (found '{}')", found.escape_ascii())
            }
            NetstringError::LeadingZero => f.write_str("netstring length with a leading zero"),
            NetstringError::TooLong { max } => write!(f, "netstring longer than the maximum of {max} bytes"),
            NetstringError::MissingComma { found } => {
                write!(f, "netstring not ended by a comma (found '{}')", found.escape_ascii())
            }
        }
    }
}

impl std::error::Error for NetstringError {}

/// Writes `s` as a netstring (Twisted's `sendString`): in one write when
/// the whole is at most 4 KiB; a larger string is written between its
/// length and its comma, not copied once more.
pub fn send_netstring(t: &mut dyn Transport, s: &[u8]) {
    let mut head = [0u8; 21];
    let at = head.len() - 1;
    head[at] = b':';
    let start = decimal(s.len(), &mut head[..at]);
    frame::write_joined(t, &[&head[start..], s, b","], false);
}

/// Writes `n` in decimal at the end of `out`; returns where it starts.
fn decimal(mut n: usize, out: &mut [u8]) -> usize {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}

/// The length at the front of `data`: `Some((header bytes, length))` once
/// its colon is here, `None` while it may still be valid.
#[inline]
fn header(data: &[u8], max: usize) -> Result<Option<(usize, usize)>, NetstringError> {
    let mut len = 0usize;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'0'..=b'9' if i == 1 && data[0] == b'0' => return Err(NetstringError::LeadingZero),
            b'0'..=b'9' => {
                len = len
                    .checked_mul(10)
                    .and_then(|l| l.checked_add(usize::from(b - b'0')))
                    .filter(|&l| l <= max)
                    .ok_or(NetstringError::TooLong { max })?;
            }
            b':' if i > 0 => return Ok(Some((i + 1, len))),
            found => return Err(NetstringError::BadLength { found }),
        }
    }
    Ok(None)
}

/// The callbacks a [`NetstringReceiver`] calls.
pub trait NetstringHandler: 'static {
    /// One string, without its length and comma (Twisted's `stringReceived`).
    fn string_received(&mut self, s: &[u8], t: &mut dyn Transport);

    /// One string as an owned [`Bytes`], with a receiver built with
    /// [`NetstringReceiver::owned_frames`]: a handler that keeps strings
    /// overrides it and gets them without a copy. Default: calls
    /// [`string_received`](Self::string_received).
    fn string_received_owned(&mut self, s: Bytes, t: &mut dyn Transport) {
        self.string_received(&s, t);
    }

    /// The connection is open.
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// The peer broke the format. The receiver closes the connection when
    /// this returns (what was written is flushed first: an error reply
    /// reaches the peer) and delivers nothing more. Default: a debug log.
    fn bad_netstring(&mut self, error: &NetstringError, t: &mut dyn Transport) {
        log::debug!("{}: {error}; closing", t.peer_addr());
    }

    /// The peer half-closed; `partial` is how many bytes of an unfinished
    /// netstring were left. Default: close.
    fn read_eof(&mut self, partial: usize, t: &mut dyn Transport) {
        let _ = partial;
        t.lose_connection();
    }

    /// The connection is gone.
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let _ = (reason, cx);
    }

    /// The write buffer passed its high-water mark.
    fn pause_writing(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// The write buffer drained below its low-water mark.
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// Everything written was handed to the socket, as asked with
    /// [`Transport::notify_drained`] (see [`Protocol::drained`]).
    fn drained(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// A timer the handler set ([`Context::call_later`]) fired.
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        let _ = (tag, t);
    }
}

/// Wraps a [`NetstringHandler`] into a [`Protocol`].
pub struct NetstringReceiver<H> {
    /// The handler, reachable for inspection in tests.
    pub handler: H,
    max_len: usize,
    buf: BytesMut,
    /// Strings are handed over as `Bytes` (`string_received_owned`).
    owned: bool,
    /// The peer broke the format: nothing more is parsed.
    failed: bool,
}

impl<H: NetstringHandler> NetstringReceiver<H> {
    /// A receiver with the default maximum length ([`DEFAULT_MAX_NETSTRING`]).
    pub fn new(handler: H) -> Self {
        NetstringReceiver { handler, max_len: DEFAULT_MAX_NETSTRING, buf: BytesMut::new(), owned: false, failed: false }
    }

    /// Sets the maximum string length in bytes (Twisted's `MAX_LENGTH`).
    pub fn max_length(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    /// Hands strings to [`NetstringHandler::string_received_owned`] as
    /// [`Bytes`] that share the receiver's buffer: keeping one costs no
    /// copy (each read is copied once into the buffer instead). Without
    /// it, strings are borrowed and nothing is paid for this.
    pub fn owned_frames(mut self) -> Self {
        self.owned = true;
        self
    }

    fn fail(&mut self, error: &NetstringError, t: &mut dyn Transport) {
        self.failed = true;
        self.buf = BytesMut::new();
        self.handler.bad_netstring(error, t);
        t.lose_connection();
    }
}

/// Delivers whole netstrings from the front of `input` until one is
/// incomplete or the connection closes.
fn consume<H: NetstringHandler, I: Input>(
    handler: &mut H,
    max_len: usize,
    owned: bool,
    input: &mut I,
    t: &mut dyn Transport,
) -> Result<(), NetstringError> {
    while !t.is_closing() {
        let data = input.bytes();
        let Some((head, len)) = header(data, max_len)? else { return Ok(()) };
        let end = head + len;
        let Some(&comma) = data.get(end) else { return Ok(()) };
        if comma != b',' {
            return Err(NetstringError::MissingComma { found: comma });
        }
        t.progress();
        if owned {
            input.advance(head);
            let s = input.take_frame(len);
            input.advance(1);
            handler.string_received_owned(s, t);
        } else {
            handler.string_received(&data[head..end], t);
            input.advance(end + 1);
        }
    }
    Ok(())
}

impl<H: NetstringHandler> Protocol for NetstringReceiver<H> {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Whole strings are what the idle timeout counts (see `progress`).
        t.progress();
        self.handler.connection_made(t);
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if self.failed || t.is_closing() {
            return;
        }
        let parsed = if self.buf.is_empty() && !self.owned {
            // The fast path: strings straight from the read, the tail kept.
            let mut input = data;
            let parsed = consume(&mut self.handler, self.max_len, false, &mut input, t);
            self.buf.extend_from_slice(input);
            parsed
        } else {
            self.buf.extend_from_slice(data);
            let parsed = if self.owned {
                consume(&mut self.handler, self.max_len, true, &mut self.buf, t)
            } else {
                // Borrowed strings: parse a slice, advance the buffer once.
                let mut rest: &[u8] = &self.buf;
                let parsed = consume(&mut self.handler, self.max_len, false, &mut rest, t);
                let used = self.buf.len() - rest.len();
                if used > 0 {
                    Input::advance(&mut self.buf, used);
                }
                parsed
            };
            frame::trim(&mut self.buf);
            parsed
        };
        if let Err(e) = parsed {
            self.fail(&e, t);
        }
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        let partial = self.buf.len();
        self.handler.read_eof(partial, t);
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        self.handler.connection_lost(reason, cx);
    }

    fn pause_writing(&mut self, t: &mut dyn Transport) {
        self.handler.pause_writing(t);
    }

    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.handler.resume_writing(t);
    }

    fn drained(&mut self, t: &mut dyn Transport) {
        self.handler.drained(t);
    }

    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        self.handler.timer_fired(tag, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    #[derive(Default)]
    struct Rec {
        strings: Vec<Vec<u8>>,
        errors: Vec<NetstringError>,
    }
    impl NetstringHandler for Rec {
        fn string_received(&mut self, s: &[u8], _: &mut dyn Transport) {
            self.strings.push(s.to_vec());
        }
        fn bad_netstring(&mut self, error: &NetstringError, t: &mut dyn Transport) {
            self.errors.push(error.clone());
            t.write(format!("error: {error}\n").as_bytes());
        }
    }

    /// Feeds `input` cut at `i` and `j`; returns the handler and whether it closed.
    fn run(input: &[u8], i: usize, j: usize, max: usize) -> (Rec, bool, String) {
        let mut h = Harness::new(NetstringReceiver::new(Rec::default()).max_length(max));
        h.connect();
        for piece in [&input[..i], &input[i..j], &input[j..]] {
            h.feed(piece);
        }
        let text = h.take_text();
        let closed = h.is_closed();
        (h.protocol.handler, closed, text)
    }

    /// Every way of cutting `input` in three gives `strings`, then `error`.
    fn every_split(input: &[u8], max: usize, strings: &[&[u8]], error: Option<NetstringError>) {
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let (rec, closed, text) = run(input, i, j, max);
                assert_eq!(rec.strings, strings, "{:?} cut at {i}, {j}", input.escape_ascii().to_string());
                assert_eq!(rec.errors, error.iter().cloned().collect::<Vec<_>>(), "cut at {i}, {j}");
                assert_eq!(closed, error.is_some(), "cut at {i}, {j}");
                if let Some(e) = &error {
                    assert_eq!(text, format!("error: {e}\n"), "the handler's answer is flushed before the close");
                }
            }
        }
    }

    #[test]
    fn strings_in_every_split() {
        every_split(b"5:hello,0:,3:a,b,10:0123456789,", 10, &[b"hello", b"", b"a,b", b"0123456789"], None);
    }

    #[test]
    fn a_bad_length_is_an_error_in_every_split() {
        let bad = |found| Some(NetstringError::BadLength { found });
        every_split(b"1:a,x:", 10, &[b"a"], bad(b'x'));
        every_split(b"1:a,:a,", 10, &[b"a"], bad(b':'));
        every_split(b"1:a,-1:a,", 10, &[b"a"], bad(b'-'));
        every_split(b"1:a,1 :a,", 10, &[b"a"], bad(b' '));
        every_split(b"1:a,01:a,", 10, &[b"a"], Some(NetstringError::LeadingZero));
        every_split(b"1:a,00:", 10, &[b"a"], Some(NetstringError::LeadingZero));
    }

    #[test]
    fn a_missing_comma_is_an_error_in_every_split() {
        every_split(b"1:a,2:bc;3:def,", 10, &[b"a"], Some(NetstringError::MissingComma { found: b';' }));
        every_split(b"0:x", 10, &[], Some(NetstringError::MissingComma { found: b'x' }));
    }

    #[test]
    fn over_the_maximum_is_refused_at_its_digits() {
        let too_long = Some(NetstringError::TooLong { max: 10 });
        every_split(b"10:0123456789,11:", 10, &[b"0123456789"], too_long.clone());
        every_split(b"99999999999999999999999999999", 10, &[], too_long);
        // Refused before the colon: nothing of it is buffered.
        let (rec, closed, _) = run(b"11", 2, 2, 10);
        assert_eq!((rec.errors.len(), closed), (1, true));
        let huge = format!("{}:", u128::MAX);
        let (rec, _, _) = run(huge.as_bytes(), 0, 0, usize::MAX);
        assert_eq!(rec.errors, [NetstringError::TooLong { max: usize::MAX }], "no overflow");
    }

    #[test]
    fn eof_reports_an_unfinished_netstring() {
        struct Eof(Option<usize>);
        impl NetstringHandler for Eof {
            fn string_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
            fn read_eof(&mut self, partial: usize, t: &mut dyn Transport) {
                self.0 = Some(partial);
                t.lose_connection();
            }
        }
        let mut h = Harness::new(NetstringReceiver::new(Eof(None)));
        h.connect();
        h.feed(b"3:ab");
        h.feed_eof();
        assert_eq!(h.protocol.handler.0, Some(4));
        assert!(h.is_closed());
    }

    #[test]
    fn send_netstring_frames_in_one_write_when_small() {
        struct Send(usize);
        impl NetstringHandler for Send {
            fn string_received(&mut self, _: &[u8], t: &mut dyn Transport) {
                send_netstring(t, &vec![b'x'; self.0]);
            }
        }
        for (len, writes) in [(0, 1), (9, 1), (10, 1), (4000, 1), (100_000, 3)] {
            let mut h = Harness::new(NetstringReceiver::new(Send(len)));
            h.connect();
            h.feed(b"0:,");
            let want = [format!("{len}:").as_bytes(), &vec![b'x'; len], b","].concat();
            assert!(h.take_output() == want, "{len} bytes");
            // At most: a large string may go out in one system call when writes are corked.
            assert!(h.cx.stats().writes <= writes, "{len} bytes: {} writes", h.cx.stats().writes);
        }
    }

    #[test]
    fn timers_reach_the_handler() {
        #[derive(Default)]
        struct Later(Vec<u64>);
        impl NetstringHandler for Later {
            fn string_received(&mut self, _: &[u8], t: &mut dyn Transport) {
                t.call_later(std::time::Duration::from_secs(1), 9);
            }
            fn timer_fired(&mut self, tag: u64, _: &mut dyn Transport) {
                self.0.push(tag);
            }
        }
        let mut h = Harness::new(NetstringReceiver::new(Later::default()));
        h.connect();
        h.feed(b"0:,");
        h.advance(std::time::Duration::from_secs(1));
        assert_eq!(h.protocol.handler.0, [9]);
    }
}
