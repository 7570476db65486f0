//! `upper`: the TCPServer/UDPServer examples of seed 003, "the server
//! receives data from the socket and converts characters to uppercase".
//!
//! The handout's TCP server does one `recv(1024)`, uppercases it, sends it
//! back and closes; its UDP server answers each datagram with the datagram
//! uppercased. This plugin keeps that wire behaviour and fixes the `recv`
//! assumption the same way `reverse` does: it shares all its framing with
//! [`crate::plugins::reverse`] through [`crate::text`] and differs only in the
//! transform function. A TCP message is a line (`\n`, optional `\r`), or a
//! partial line once the client half-closes or goes quiet for 100 ms; over
//! UDP each datagram is one message and the reply adds no newline.
//!
//! Uppercasing is Unicode-aware when the message is valid UTF-8 (`straße`
//! becomes `STRASSE`); otherwise only ASCII letters change and every other
//! byte passes through.
//!
//! ```text
//! $ printf 'hello there' | nc -q1 127.0.0.1 7101
//! HELLO THERE
//! $ twirl client upper udp:127.0.0.1:7101 grüß dich
//! GRÜSS DICH
//! ```

use twirl::endpoint::ClientEndpoint;

use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};
use crate::text::{self, LineConfig, TextDatagram};

/// The message uppercased: Unicode rules for valid UTF-8, ASCII-only otherwise.
///
/// ```
/// assert_eq!(twirl_protocols::plugins::upper::upper("straße".as_bytes()), "STRASSE".as_bytes());
/// assert_eq!(twirl_protocols::plugins::upper::upper(b"ab\xffc"), b"AB\xffC");
/// ```
pub fn upper(message: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(message) {
        Ok(s) => s.to_uppercase().into_bytes(),
        Err(_) => message.to_ascii_uppercase(),
    }
}

fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    text::client(endpoint, args, upper)
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "upper",
    summary: "answers each line uppercased",
    lab: "seed 003 TCPServer/UDPServer",
    defaults: &["tcp:7101", "udp:7101"],
    options: &[crate::options::FLUSH_MS],
    stream: Some(|o| text::stream_factory(upper, LineConfig::from_options(o))),
    datagram: Some(|_| Box::new(TextDatagram::new(upper))),
    client: Some(client),
    client_flags: &[],
    samples: &[
        Sample {
            via: Via::Stream,
            request: "grüß dich\n".as_bytes(),
            answer: Answer::Exact("GRÜSS DICH\n".as_bytes()),
        },
        Sample { via: Via::Datagram, request: b"abc\n", answer: Answer::Exact(b"ABC\n") },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use twirl::testing::{DatagramHarness, Harness};

    use super::*;
    use crate::text::{TextDatagram, TextLines};

    #[test]
    fn a_longer_udp_reply_is_sent_only_on_loopback() {
        let peer: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let grows = "ŉŉŉ".as_bytes(); // 6 bytes, uppercased to 9 (ʼNʼNʼN)
        let mut public = DatagramHarness::new(TextDatagram::new(upper)).with_local("192.0.2.1:7101".parse().unwrap());
        public.feed(grows, peer);
        public.feed(b"same size", peer);
        assert_eq!(public.take_sent(), vec![(b"SAME SIZE".to_vec(), peer)], "no amplification off loopback");
        let mut lo = DatagramHarness::new(TextDatagram::new(upper));
        lo.feed(grows, peer);
        assert_eq!(lo.take_sent(), vec![("ʼNʼNʼN".as_bytes().to_vec(), peer)]);
    }

    #[test]
    fn uppercases_unicode_and_ascii_fallback() {
        assert_eq!(upper(b"hello, World 42"), b"HELLO, WORLD 42");
        assert_eq!(upper("ǆ éa".as_bytes()), "Ǆ ÉA".as_bytes());
        assert_eq!(upper(b"caf\xe9 ok"), b"CAF\xe9 OK");
    }

    #[test]
    fn stream_framing_is_the_shared_one() {
        let mut h = Harness::new(LineConfig::default().receiver(TextLines::new(upper)));
        h.connect();
        h.feed(b"one\r\ntw");
        assert_eq!(h.take_text(), "ONE\n");
        h.advance(Duration::from_millis(100));
        assert_eq!(h.take_text(), "TW\n");
        h.feed(b"x  y");
        h.feed_eof();
        assert_eq!(h.take_text(), "X  Y\n", "spacing is kept: upper is not word-based");
        assert!(h.is_closed());
    }

    #[test]
    fn udp_keeps_the_datagram_shape() {
        let mut h = DatagramHarness::new(TextDatagram::new(upper));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        h.feed(b"abc\n", a);
        assert_eq!(h.take_sent(), vec![(b"ABC\n".to_vec(), a)]);
    }
}
