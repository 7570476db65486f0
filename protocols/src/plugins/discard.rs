//! `discard`: the Discard Protocol (RFC 863), the simplest sink.
//!
//! Everything received is thrown away and nothing is ever sent, over TCP
//! and UDP alike. It is handy for measuring how fast a client can send, and
//! it is safe to expose: it never answers, so it cannot reflect traffic.
//!
//! ```text
//! $ twirl client discard tcp:127.0.0.1:7009 into the void
//! sent 13 bytes
//! ```

use std::net::SocketAddr;

use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, DatagramProtocol, DatagramTransport, Protocol, Transport};

use crate::exchange::{REPLY_TIMEOUT, print_reply, read_stdin, stream_exchange, stream_stdin};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};

/// Drops the stream.
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

/// Drops datagrams.
pub struct DiscardUdp;

impl DatagramProtocol for DiscardUdp {
    fn datagram_received(&mut self, _: &[u8], _: SocketAddr, _: &mut dyn DatagramTransport) {}
}

/// `twirl client discard ENDPOINT [TEXT...]`: sends the text (or stdin) and
/// reports how much went; over TCP it waits until the server has closed,
/// which shows everything was received.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if args.is_empty() && !matches!(endpoint, ClientEndpoint::Udp(..)) {
        // Any amount, with flow control; the server closing shows all arrived.
        let sent = stream_stdin(endpoint)?;
        return print_reply(format!("sent {sent} bytes").as_bytes());
    }
    let data = if args.is_empty() { read_stdin()? } else { args.join(" ").into_bytes() };
    match endpoint {
        ClientEndpoint::Udp(..) => {
            let to = endpoint.resolve().map_err(|e| ClientError::runtime(endpoint, e))?;
            let any: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
            let sock = std::net::UdpSocket::bind(any).map_err(|e| ClientError::runtime(endpoint, e))?;
            sock.send_to(&data, to).map_err(|e| ClientError::runtime(endpoint, e))?;
        }
        _ => {
            let reply = stream_exchange(endpoint, &data, REPLY_TIMEOUT)?;
            if !reply.is_empty() {
                return Err(ClientError::runtime(endpoint, format!("a discard server answered {} bytes", reply.len())));
            }
        }
    }
    print_reply(format!("sent {} bytes", data.len()).as_bytes())
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "discard",
    summary: "drops everything it receives (RFC 863)",
    lab: "RFC 863",
    defaults: &["tcp:7009", "udp:7009"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| Discard)),
    datagram: Some(|_| Box::new(DiscardUdp)),
    client: Some(client),
    client_flags: &[],
    samples: &[
        Sample { via: Via::Stream, request: b"into the void", answer: Answer::Exact(b"") },
        Sample { via: Via::Datagram, request: b"into the void", answer: Answer::Nothing },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::testing::{DatagramHarness, Harness};

    #[test]
    fn never_answers() {
        let mut h = Harness::new(Discard);
        h.connect();
        h.feed(b"anything at all\n");
        h.feed_eof();
        assert!(h.take_output().is_empty());
        assert!(h.is_closed());
        let mut d = DatagramHarness::new(DiscardUdp);
        d.feed(b"x", "127.0.0.1:9".parse().unwrap());
        assert!(d.take_sent().is_empty());
    }
}
