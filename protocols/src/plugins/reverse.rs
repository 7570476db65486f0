//! `reverse`: Lab 1A (seed 000), "a TCP server that receives a string,
//! reverses the order of the words, and sends it back to the client".
//!
//! The lab's server does one `recv` and trusts it to hold the whole string.
//! TCP does not promise that: a string may arrive in pieces, or two in one
//! read. So here a message is a *line*, ending in `\n` (a `\r` before it is
//! dropped), and the framing lives in [`crate::text`]: a partial line is
//! still answered when the client half-closes or after 100 ms of silence,
//! which is exactly what the lab's own client (send, no newline, then `recv`)
//! needs.
//!
//! The reply is the message's words (split on runs of ASCII whitespace) in
//! reverse order, joined by one space, and a `\n`. Work is done on bytes, so
//! any UTF-8 passes through whole and invalid UTF-8 does no harm. A line over
//! 8 KiB ([`crate::text::DEFAULT_MAX_LINE`]) gets `error: line too long ...`
//! and that connection closes.
//!
//! UDP works too: one datagram in, one datagram out, no newline added.
//!
//! ```text
//! $ twirl serve reverse
//! listening reverse on tcp:127.0.0.1:7100
//! listening reverse on udp:127.0.0.1:7100
//!
//! $ printf 'hello big world' | nc -q1 127.0.0.1 7100
//! world big hello
//! $ twirl client reverse tcp:127.0.0.1:7100 hello big world
//! world big hello
//! $ twirl client reverse udp:127.0.0.1:7100 one two three
//! three two one
//! ```
//!
//! With no text, `twirl client reverse tcp:...` is interactive like netcat:
//! each typed line is answered as it is sent (over `udp:`, each stdin line
//! becomes one datagram).

use twirl::endpoint::ClientEndpoint;

use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};
use crate::text::{self, LineConfig, TextDatagram, join_words, words};

/// The message's words in reverse order, joined by one space.
///
/// ```
/// assert_eq!(twirl_protocols::plugins::reverse::reverse(b"hello  big\tworld"), b"world big hello");
/// ```
pub fn reverse(message: &[u8]) -> Vec<u8> {
    join_words(words(message).rev(), message.len() + 1)
}

fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    text::client(endpoint, args, reverse)
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "reverse",
    summary: "answers each line with its words in reverse order",
    lab: "seed 000 Lab 1A",
    defaults: &["tcp:7100", "udp:7100"],
    options: &[crate::options::FLUSH_MS],
    stream: Some(|o| text::stream_factory(reverse, LineConfig::from_options(o))),
    datagram: Some(|_| Box::new(TextDatagram::new(reverse))),
    client: Some(client),
    client_flags: &[],
    samples: &[
        Sample { via: Via::Stream, request: b"hello big world\r\n", answer: Answer::Exact(b"world big hello\n") },
        Sample { via: Via::Datagram, request: b"one two three", answer: Answer::Exact(b"three two one") },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use twirl::testing::{DatagramHarness, Harness};

    use super::*;
    use crate::text::TextLines;
    use twirl::line::LineReceiver;

    fn harness(max: usize) -> Harness<LineReceiver<TextLines>> {
        let mut h = Harness::new(LineConfig::default().max_line(max).receiver(TextLines::new(reverse)));
        h.connect();
        h
    }

    #[test]
    fn reverses_words_on_bytes() {
        assert_eq!(reverse(b"hello big world"), b"world big hello");
        assert_eq!(reverse(b"  one\t\ttwo  "), b"two one");
        assert_eq!(reverse(b""), b"");
        assert_eq!(reverse("héllo wörld ☃".as_bytes()), "☃ wörld héllo".as_bytes());
        assert_eq!(reverse(b"\xff\xfe ok \x80"), b"\x80 ok \xff\xfe");
    }

    #[test]
    fn line_split_across_reads() {
        let mut h = harness(100);
        h.feed(b"hello b");
        h.feed(b"ig wor");
        assert_eq!(h.take_text(), "");
        h.feed(b"ld\n");
        assert_eq!(h.take_text(), "world big hello\n");
    }

    #[test]
    fn several_lines_in_one_read_with_crlf() {
        let mut h = harness(100);
        h.feed(b"a b\r\nc d\n\ne f g\r\n");
        assert_eq!(h.take_text(), "b a\nd c\n\ng f e\n");
        assert!(!h.is_closed());
    }

    #[test]
    fn idle_gap_answers_a_naive_client() {
        let mut h = harness(100);
        h.feed(b"hello big world");
        h.advance(Duration::from_millis(99));
        assert_eq!(h.take_text(), "");
        h.advance(Duration::from_millis(1));
        assert_eq!(h.take_text(), "world big hello\n");
        assert!(!h.is_closed(), "the connection stays open for more");
        h.feed(b"again\n");
        assert_eq!(h.take_text(), "again\n");
    }

    #[test]
    fn half_close_answers_the_pending_partial_line() {
        let mut h = harness(100);
        h.feed(b"one two\nthree four");
        h.feed_eof();
        assert_eq!(h.take_text(), "two one\nfour three\n");
        assert!(h.is_closed());
    }

    #[test]
    fn over_long_line_gets_one_error_and_closes() {
        let mut h = harness(10);
        h.feed(b"short\n");
        h.feed(b"0123456789abc");
        let out = h.take_text();
        assert!(out.starts_with("short\nerror: line too long"), "{out}");
        assert_eq!(out.matches("error").count(), 1);
        assert!(h.is_closed());
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let mut h = harness(100);
        h.feed(b"\xc3\x28 x \xff\n");
        assert_eq!(h.take_output(), b"\xff x \xc3\x28\n");
    }

    #[test]
    fn udp_one_datagram_in_one_out_no_newline_added() {
        let mut h = DatagramHarness::new(TextDatagram::new(reverse));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        h.feed(b"hello big world\n", a);
        h.feed(b"", a);
        assert_eq!(h.take_sent(), vec![(b"world big hello".to_vec(), a), (Vec::new(), a)]);
    }
}
