//! `echo`: the Echo Protocol (RFC 862), and the first example in every
//! handout (seed 001's ex91/ex92, seed 003's echo_server.py).
//!
//! Whatever arrives goes back, byte for byte. Over TCP the stream is echoed
//! as it comes, with no framing at all; over UDP each datagram is answered
//! with one datagram carrying the same bytes, so the reply is never larger
//! than the request and the service cannot be used as an amplifier.
//!
//! ```text
//! $ twirl client echo tcp:127.0.0.1:7007 hello there
//! hello there
//! ```

use std::net::SocketAddr;

use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, DatagramProtocol, DatagramTransport, Protocol, Transport};

use crate::exchange::{REPLY_TIMEOUT, UdpRetry, print_reply, read_stdin, stream_exchange, stream_stdin, udp_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};

/// Echo over a stream: one method.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
}

/// Echo over UDP: each datagram straight back to its sender.
pub struct EchoUdp;

impl DatagramProtocol for EchoUdp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        t.send_to(data, from);
    }
}

/// `twirl client echo ENDPOINT [WORD]...`: sends the words joined by
/// spaces (or all of stdin when there are none) and prints the reply.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if args.is_empty() && !matches!(endpoint, ClientEndpoint::Udp(..)) {
        // Any amount, streamed both ways with flow control.
        return stream_stdin(endpoint).map(|_| ());
    }
    let request = if args.is_empty() { read_stdin()? } else { args.join(" ").into_bytes() };
    let reply = match endpoint {
        ClientEndpoint::Udp(..) => {
            let expected = request.clone();
            udp_exchange(endpoint, &request, move |d| d == expected.as_slice(), UdpRetry::default())?
        }
        _ => stream_exchange(endpoint, &request, REPLY_TIMEOUT)?,
    };
    print_reply(&reply)
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "echo",
    summary: "sends back every byte it receives (RFC 862)",
    lab: "RFC 862; seed 001 ex91/ex92, seed 003 echo_server",
    defaults: &["tcp:7007", "udp:7007"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| Echo)),
    datagram: Some(|_| Box::new(EchoUdp)),
    client: Some(client),
    client_flags: &[],
    samples: &[
        Sample { via: Via::Stream, request: b"ping \x00\xff\n", answer: Answer::Exact(b"ping \x00\xff\n") },
        Sample { via: Via::Datagram, request: b"\x00ping\xff", answer: Answer::Exact(b"\x00ping\xff") },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::testing::{DatagramHarness, Harness};

    #[test]
    fn echoes_stream_bytes_as_they_come() {
        let mut h = Harness::new(Echo);
        h.connect();
        h.feed(b"hel");
        h.feed(b"lo\n\xff\x00");
        assert_eq!(h.take_output(), b"hello\n\xff\x00");
        h.feed_eof();
        assert!(h.is_closed());
    }

    #[test]
    fn echoes_each_datagram_to_its_sender() {
        let mut h = DatagramHarness::new(EchoUdp);
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        h.feed(b"one", a);
        h.feed(b"", b);
        assert_eq!(h.take_sent(), vec![(b"one".to_vec(), a), (Vec::new(), b)]);
    }
}
