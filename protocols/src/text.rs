//! Shared text-line plumbing for the line plugins (`reverse`, `upper`, and
//! the stream side of `json` and `time`): one framing policy, one generic
//! "transform each message" plugin, one client.
//!
//! # The framing policy, and why
//!
//! Over TCP a message is a line ending in `\n` (a `\r` before it is
//! dropped). The handouts' clients are naive: they `send` a string with *no*
//! newline and then block in `recv`. So a partial line also ends
//!
//! - when the peer half-closes its write side (`shutdown(SHUT_WR)`), or
//! - after an idle gap with no new byte: [`DEFAULT_IDLE_FLUSH`] (100 ms),
//!   changed with [`LineConfig::idle_flush`] or, for `twirl serve`, the
//!   environment variable `TWIRL_IDLE_MS` (`0` turns the idle flush off).
//!
//! A line ending that arrives first after an idle flush ends the line already
//! answered rather than making an empty line of its own ([`LineReceiver`] sees to it), so a
//! client that sends `reqtime`, dawdles, then sends `\n` gets one answer.
//!
//! A line longer than [`DEFAULT_MAX_LINE`] bytes gets one `error: ...` line
//! and that connection is closed; every other connection carries on.
//!
//! Over UDP a message is one datagram: one datagram in, one datagram out,
//! no newline added (a trailing newline sent by `nc -u` is just bytes).
//!
//! # A plugin in one function
//!
//! [`TextLines`] (streams) and [`TextDatagram`] (UDP) apply a [`Transform`],
//! a plain `fn(&[u8]) -> Vec<u8>`, to each message. `reverse` and `upper` are
//! that function and a registry entry each.
//!
//! ```
//! use twirl::testing::Harness;
//! use twirl_protocols::text::{LineConfig, TextLines};
//!
//! fn shout(m: &[u8]) -> Vec<u8> {
//!     m.to_ascii_uppercase()
//! }
//! let mut h = Harness::new(LineConfig::default().receiver(TextLines::new(shout)));
//! h.connect();
//! h.feed(b"hi\r\n");
//! assert_eq!(h.take_text(), "HI\n");
//! ```

use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::time::Duration;

use twirl::endpoint::ClientEndpoint;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::{Addr, DatagramProtocol, DatagramTransport, Factory};

use crate::exchange::{REPLY_TIMEOUT, UdpRetry, interactive, print_reply, stream_exchange, udp_exchange};
use crate::plugin::ClientError;

/// How long a partial line may sit with no new byte before it is answered.
pub const DEFAULT_IDLE_FLUSH: Duration = Duration::from_millis(100);

/// Longest line accepted, in bytes without the line ending.
pub const DEFAULT_MAX_LINE: usize = 8 * 1024;

/// The environment variable `twirl serve` reads for the idle gap, in milliseconds.
pub const IDLE_ENV: &str = "TWIRL_IDLE_MS";

/// A message transform: the bytes of one message in, the reply's bytes out.
pub type Transform = fn(&[u8]) -> Vec<u8>;

/// Framing settings for a line plugin's stream side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineConfig {
    /// Answer a partial line after this idle gap; `None` waits for `\n` or half-close.
    pub idle_flush: Option<Duration>,
    /// Maximum line length in bytes.
    pub max_line: usize,
}

impl Default for LineConfig {
    /// [`DEFAULT_IDLE_FLUSH`] and [`DEFAULT_MAX_LINE`].
    fn default() -> Self {
        LineConfig { idle_flush: Some(DEFAULT_IDLE_FLUSH), max_line: DEFAULT_MAX_LINE }
    }
}

impl LineConfig {
    /// The defaults, with the idle gap taken from `TWIRL_IDLE_MS` when it is
    /// set (`0` means no idle flush). A value that is not a number is
    /// reported in the log and the default is kept.
    pub fn from_env() -> Self {
        let mut c = LineConfig::default();
        if let Ok(v) = std::env::var(IDLE_ENV) {
            match parse_idle_ms(&v) {
                Some(gap) => c.idle_flush = gap,
                None => log::warn!("{IDLE_ENV}='{v}' is not a number of milliseconds; using 100"),
            }
        }
        c
    }

    /// [`from_env`](Self::from_env), then the `flush_ms` option
    /// ([`crate::options::FLUSH_MS`]) when it was given.
    pub fn from_options(options: &crate::options::Options) -> Self {
        let c = LineConfig::from_env();
        match options.millis(crate::options::FLUSH_MS.name) {
            Some(gap) => c.idle_flush(gap),
            None => c,
        }
    }

    /// Sets the idle gap (`None`: no idle flush).
    pub fn idle_flush(mut self, gap: Option<Duration>) -> Self {
        self.idle_flush = gap;
        self
    }

    /// Sets the maximum line length.
    pub fn max_line(mut self, max: usize) -> Self {
        self.max_line = max;
        self
    }

    /// Wraps a handler in a [`LineReceiver`] with these settings.
    pub fn receiver<H: LineHandler>(&self, handler: H) -> LineReceiver<H> {
        let r = LineReceiver::new(handler).max_line_length(self.max_line);
        match self.idle_flush {
            Some(gap) => r.flush_partial_after(gap),
            None => r,
        }
    }
}

/// `"250"` is 250 ms, `"0"` is off; anything else is `None`.
fn parse_idle_ms(v: &str) -> Option<Option<Duration>> {
    match v.trim().parse::<u64>().ok()? {
        0 => Some(None),
        ms => Some(Some(Duration::from_millis(ms))),
    }
}

/// Answers each line with `transform(line)` and `\n`.
pub struct TextLines {
    transform: Transform,
}

impl TextLines {
    /// A handler applying `transform`.
    pub fn new(transform: Transform) -> Self {
        TextLines { transform }
    }
}

impl LineHandler for TextLines {
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        let mut reply = (self.transform)(line);
        reply.push(b'\n');
        t.write(&reply);
    }
}

/// The stream factory for a transform, framed by `config`.
pub fn stream_factory(transform: Transform, config: LineConfig) -> Box<dyn Factory> {
    Box::new(move |_: &Addr| config.receiver(TextLines::new(transform)))
}

/// Answers each datagram with one datagram: `transform(datagram)`.
pub struct TextDatagram {
    transform: Transform,
}

impl TextDatagram {
    /// A UDP protocol applying `transform`.
    pub fn new(transform: Transform) -> Self {
        TextDatagram { transform }
    }
}

impl DatagramProtocol for TextDatagram {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        // Uppercasing can lengthen text (`ŉ` becomes `ʼN`): bounded off loopback.
        t.send_reply(&(self.transform)(data), data.len(), from);
    }

    fn datagram_truncated(&mut self, len: usize, from: SocketAddr, t: &mut dyn DatagramTransport) {
        log::debug!("dropped a {len}-byte datagram from {from}: larger than the receive limit");
        t.send_to(format!("error: datagram too large ({len} bytes)").as_bytes(), from);
    }
}

/// Splits on ASCII whitespace, as `split_ascii_whitespace` does, but on bytes.
pub fn words(message: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    message.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty())
}

/// Joins words with one space, into a vector of `capacity` bytes: pass the
/// message's length plus one, since a join of its words is never longer and
/// [`TextLines`] appends a newline (one allocation per reply, not several).
pub fn join_words<'a>(words: impl IntoIterator<Item = &'a [u8]>, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    for (i, w) in words.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(w);
    }
    out
}

/// The client of a transform plugin:
///
/// - `twirl client NAME tcp:HOST:PORT TEXT...` sends the words joined by
///   spaces and a `\n`, half-closes, prints the reply;
/// - `twirl client NAME tcp:HOST:PORT` with no text is interactive, like
///   netcat: each stdin line goes out as typed, each reply prints as it comes;
/// - `twirl client NAME udp:HOST:PORT TEXT...` sends one datagram and
///   accepts only the reply `transform(TEXT)`, which the client computes
///   itself, so a stray datagram is never taken for the answer; lost
///   datagrams are resent with back-off;
/// - `twirl client NAME udp:HOST:PORT` with no text sends each stdin line
///   (without its newline) as one datagram and prints each reply.
pub fn client(endpoint: &ClientEndpoint, args: &[String], transform: Transform) -> Result<(), ClientError> {
    match endpoint {
        ClientEndpoint::Udp(..) if args.is_empty() => {
            for line in io::stdin().lock().split(b'\n') {
                let mut line = line.map_err(|e| ClientError::usage(format!("stdin: {e}")))?;
                if line.ends_with(b"\r") {
                    line.pop();
                }
                print_reply(&udp_request(endpoint, &line, transform)?)?;
            }
            Ok(())
        }
        ClientEndpoint::Udp(..) => print_reply(&udp_request(endpoint, args.join(" ").as_bytes(), transform)?),
        _ if args.is_empty() => interactive(endpoint),
        _ => {
            let mut request = args.join(" ").into_bytes();
            request.push(b'\n');
            print_reply(&stream_exchange(endpoint, &request, REPLY_TIMEOUT)?)
        }
    }
}

fn udp_request(endpoint: &ClientEndpoint, message: &[u8], transform: Transform) -> Result<Vec<u8>, ClientError> {
    let expected = transform(message);
    udp_exchange(endpoint, message, move |d| d == expected.as_slice(), UdpRetry::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shout(m: &[u8]) -> Vec<u8> {
        m.to_ascii_uppercase()
    }

    fn harness() -> twirl::testing::Harness<LineReceiver<TextLines>> {
        let mut h = twirl::testing::Harness::new(LineConfig::default().receiver(TextLines::new(shout)));
        h.connect();
        h
    }

    #[test]
    fn line_ending_after_an_idle_flush_ends_the_answered_line() {
        let mut h = harness();
        h.feed(b"reqtime");
        h.advance(DEFAULT_IDLE_FLUSH);
        assert_eq!(h.take_text(), "REQTIME\n");
        h.feed(b"\n");
        assert_eq!(h.take_text(), "", "no empty line of its own");
        h.feed(b"\n");
        assert_eq!(h.take_text(), "\n", "a second newline is an empty line");

        h.feed(b"ab");
        h.advance(DEFAULT_IDLE_FLUSH);
        h.feed(b"\r");
        h.feed(b"\ncd\n");
        assert_eq!(h.take_text(), "AB\nCD\n");

        h.feed(b"x");
        h.advance(DEFAULT_IDLE_FLUSH);
        h.feed(b"y\n");
        assert_eq!(h.take_text(), "X\nY\n", "only a line ending is swallowed");
    }

    #[test]
    fn idle_env_values() {
        assert_eq!(parse_idle_ms("250"), Some(Some(Duration::from_millis(250))));
        assert_eq!(parse_idle_ms(" 0 "), Some(None));
        assert_eq!(parse_idle_ms("soon"), None);
        assert_eq!(parse_idle_ms("-5"), None);
    }

    #[test]
    fn words_split_on_any_ascii_whitespace_run() {
        let w: Vec<&[u8]> = words(b"  a\tbb \r\n c\x0c ").collect();
        assert_eq!(w, [&b"a"[..], b"bb", b"c"]);
        assert_eq!(join_words(w, 0), b"a bb c");
        assert_eq!(join_words(words(b" \t "), 4), b"");
    }
}
