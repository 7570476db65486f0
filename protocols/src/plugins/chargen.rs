//! `chargen`: the Character Generator Protocol (RFC 864), and a lesson in
//! flow control.
//!
//! Over TCP the server sends, for as long as the client reads, the RFC's
//! rotating pattern: 72-character lines of the 95 printable ASCII characters,
//! each line starting one character further on, ended by `\r\n`.
//!
//! A generator that writes in a loop would bury a slow reader in buffered
//! bytes. This one writes only while [`Transport::writing_paused`] is false:
//! it stops once the connection's buffer passes the high-water mark (the
//! reactor then calls `pause_writing`) and starts again in `resume_writing`,
//! when the buffer has drained below the low-water mark. A slow reader
//! therefore costs at most about one high-water mark of memory (64 KiB by
//! default). With a fast reader the buffer never fills, so the generator
//! also yields after each batch (a 1 ms timer) to let other connections
//! have their turn.
//!
//! Lines are 72 characters wide, as the RFC has them; `twirl serve chargen
//! width=N` makes them N wide (1 to 1024), over TCP and UDP alike.
//!
//! Over UDP each datagram is answered with one datagram of whole lines, at
//! most 512 bytes. UDP chargen is a classic reflection amplifier (a spoofed
//! 1-byte request draws 512 bytes at the victim), so unless the socket is
//! bound to a loopback address the reply is cut to no more bytes than the
//! request carried.
//!
//! ```text
//! $ twirl client chargen tcp:127.0.0.1:7019 --lines 2
//!  !"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefg
//! !"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefgh
//! ```

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
#[cfg(test)]
use std::sync::OnceLock;
use std::time::Duration;

use twirl::endpoint::ClientEndpoint;
use twirl::{
    Addr, Context, DatagramProtocol, DatagramTransport, Disconnect, OneShot, Outcome, Protocol, Reactor, Transport,
};

use crate::client_args::ClientFlag;
use crate::exchange::{REPLY_TIMEOUT, UdpRetry, connect_stream, print_reply, udp_exchange, wait};
use crate::options::{OptionKind, OptionSpec};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};

const LINE: usize = 72;
const PRINTABLE: usize = 95;
/// Bytes in one line with its `\r\n`.
const LINE_BYTES: usize = LINE + 2;
/// Largest UDP reply (RFC 864: 0 to 512 characters).
const UDP_MAX: usize = 512;
/// Pattern cycles written per batch before yielding to other connections.
const CYCLES_PER_BATCH: usize = 16;

/// Line `n` of the pattern, with its `\r\n`.
pub fn line(n: usize) -> [u8; LINE_BYTES] {
    let mut l = [0u8; LINE_BYTES];
    l.copy_from_slice(&line_of(n, LINE));
    l
}

/// Line `n` of the pattern `width` characters wide (the `width` option),
/// with its `\r\n`.
pub fn line_of(n: usize, width: usize) -> Vec<u8> {
    let mut l: Vec<u8> = (0..width).map(|i| b' ' + ((n + i) % PRINTABLE) as u8).collect();
    l.extend_from_slice(b"\r\n");
    l
}

/// One whole period of the pattern `width` wide: 95 lines, after which it repeats.
fn cycle_of(width: usize) -> Vec<u8> {
    (0..PRINTABLE).flat_map(|n| line_of(n, width)).collect()
}

/// One whole period of the RFC's 72-character pattern.
#[cfg(test)]
fn cycle() -> &'static [u8] {
    static CYCLE: OnceLock<Vec<u8>> = OnceLock::new();
    CYCLE.get_or_init(|| cycle_of(LINE))
}

/// The `width` option: characters per line.
const WIDTH: OptionSpec = OptionSpec {
    name: "width",
    meaning: "characters per line, before the \\r\\n (RFC 864 says 72)",
    kind: OptionKind::Count { min: 1, max: 1024 },
    default: Some("72"),
};

const PRODUCE: u64 = 0;
/// Pause between batches for a reader that keeps up: lets the loop serve
/// others, and caps one connection at about 100 MB/s.
const YIELD: Duration = Duration::from_millis(1);

/// The TCP generator: writes the pattern's period, one batch at a time.
pub struct Chargen {
    cycle: Rc<[u8]>,
}

impl Chargen {
    /// A generator of lines `width` characters wide.
    pub fn new(width: usize) -> Chargen {
        Chargen { cycle: cycle_of(width).into() }
    }

    fn produce(&mut self, t: &mut dyn Transport) {
        for _ in 0..CYCLES_PER_BATCH {
            if t.writing_paused() || t.is_closing() {
                return; // resume_writing brings us back
            }
            t.write(&self.cycle);
        }
        t.call_later(YIELD, PRODUCE);
    }
}

impl Protocol for Chargen {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.produce(t);
    }
    /// RFC 864: data sent to the server is thrown away.
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.produce(t);
    }
    fn timer_fired(&mut self, _: u64, t: &mut dyn Transport) {
        self.produce(t);
    }
}

/// The UDP generator: the next lines of the pattern, per datagram.
pub struct ChargenUdp {
    next_line: usize,
    width: usize,
}

impl Default for ChargenUdp {
    /// The RFC's 72-character lines.
    fn default() -> Self {
        ChargenUdp::new(LINE)
    }
}

impl ChargenUdp {
    /// A generator of lines `width` characters wide.
    pub fn new(width: usize) -> ChargenUdp {
        ChargenUdp { next_line: 0, width }
    }
}

impl DatagramProtocol for ChargenUdp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        let loopback = t.local_addr().map(|a| a.ip().is_loopback()).unwrap_or(false);
        let budget = if loopback { UDP_MAX } else { UDP_MAX.min(data.len()) };
        let mut reply = Vec::with_capacity(budget);
        while reply.len() + self.width + 2 <= budget {
            reply.extend_from_slice(&line_of(self.next_line, self.width));
            self.next_line = (self.next_line + 1) % PRINTABLE;
        }
        if reply.is_empty() {
            // Less than one line allowed: a prefix, still never more than asked.
            reply.extend_from_slice(&line_of(self.next_line, self.width)[..budget]);
        }
        t.send_to(&reply, from);
    }
}

/// Reads `want` lines and closes.
struct Take {
    want: usize,
    got: Vec<u8>,
    outcome: Outcome<io::Result<Vec<u8>>>,
}

impl Protocol for Take {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let limit = self.want * LINE_BYTES;
        let room = limit - self.got.len();
        self.got.extend_from_slice(&data[..data.len().min(room)]);
        if self.got.len() == limit {
            self.outcome.set(Ok(std::mem::take(&mut self.got)));
            t.abort_connection();
        }
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        let e = io::Error::other(format!("closed after {} bytes: {reason}", self.got.len()));
        self.outcome.set(Err(e));
    }
}

/// `twirl client chargen tcp:HOST:PORT [--lines N]` prints N lines (default
/// 10); over `udp:` it prints one datagram's worth.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    let want = match args {
        [] => 10,
        [flag, n] if flag == "--lines" => {
            n.parse().map_err(|_| ClientError::usage(format!("--lines '{n}': expected a whole number")))?
        }
        _ => return Err(ClientError::usage("usage: twirl client chargen ENDPOINT [--lines N]")),
    };
    let text = match endpoint {
        ClientEndpoint::Udp(..) => udp_exchange(endpoint, &[b'x'; 8], |_| true, UdpRetry::default())?,
        _ => {
            let outcome = Outcome::new();
            let mut reactor = Reactor::new().map_err(|e| ClientError::runtime(endpoint, e))?;
            let o = outcome.clone();
            let take = move |_: &Addr| Take { want, got: Vec::new(), outcome: o };
            connect_stream(&mut reactor, endpoint, OneShot::new(outcome.clone(), take))?;
            wait(&mut reactor, endpoint, &outcome, REPLY_TIMEOUT)?
        }
    };
    print_reply(&text.iter().copied().filter(|&b| b != b'\r').collect::<Vec<u8>>())
}

/// The sample check over a stream: the pattern's first two lines.
fn first_two_lines(got: &[u8]) -> Result<(), String> {
    let want = [line(0), line(1)].concat();
    if got == want {
        Ok(())
    } else {
        Err(format!("not the first two lines: {:?}", String::from_utf8_lossy(&got[..got.len().min(200)])))
    }
}

/// The sample check over UDP: six whole lines of the pattern (on loopback).
fn pattern_lines(got: &[u8]) -> Result<(), String> {
    let ok = got.len() == 6 * LINE_BYTES && got.chunks(LINE_BYTES).all(|l| (0..95).any(|n| line(n) == l));
    if ok { Ok(()) } else { Err(format!("{} bytes, not six pattern lines", got.len())) }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "chargen",
    summary: "streams RFC 864's character pattern as fast as the client reads (RFC 864)",
    lab: "RFC 864",
    defaults: &["tcp:7019", "udp:7019"],
    options: &[WIDTH],
    stream: Some(|o| {
        let chargen = Chargen::new(o.count(WIDTH.name).unwrap_or(LINE));
        let cycle = chargen.cycle;
        Box::new(move |_: &Addr| Chargen { cycle: cycle.clone() })
    }),
    datagram: Some(|o| Box::new(ChargenUdp::new(o.count(WIDTH.name).unwrap_or(LINE)))),
    client: Some(client),
    client_flags: &[ClientFlag {
        name: "--lines",
        value: Some("N"),
        help: "print N lines (default 10; over udp: one datagram's worth)",
    }],
    samples: &[
        Sample { via: Via::StreamFirst(2 * LINE_BYTES), request: b"", answer: Answer::Check(first_two_lines) },
        Sample { via: Via::Datagram, request: b"x", answer: Answer::Check(pattern_lines) },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::Limits;
    use twirl::testing::{DatagramHarness, Harness};

    #[test]
    fn pattern_matches_rfc_864() {
        assert_eq!(
            &line(0)[..LINE],
            &b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg"[..]
        );
        assert_eq!(&line(1)[..3], b"!\"#");
        assert_eq!(&line(94)[..2], b"~ ");
        assert_eq!(line(95), line(0));
        assert_eq!(cycle().len(), 95 * 74);
    }

    #[test]
    fn a_slow_reader_keeps_memory_at_the_high_water_mark() {
        let limits = Limits { high_water: 64 * 1024, low_water: 16 * 1024, hard_cap: 1 << 30 };
        let mut h = Harness::with_limits(Chargen::new(LINE), limits);
        h.set_peer_reading(false);
        h.connect();
        let buffered = h.buffered_len();
        assert!(buffered > limits.high_water, "it filled up to the mark");
        assert!(buffered <= limits.high_water + cycle().len(), "and stopped there: {buffered}");
        h.advance(Duration::from_secs(1));
        assert_eq!(h.buffered_len(), buffered, "no timer keeps producing while paused");

        h.drain(buffered - limits.low_water + 1);
        assert!(h.buffered_len() <= limits.low_water + 1 + cycle().len() * CYCLES_PER_BATCH);
        assert!(h.buffered_len() > limits.high_water, "resumed and filled again");
        let out = h.take_output();
        assert_eq!(&out[..LINE_BYTES], &line(0));
        assert_eq!(&out[LINE_BYTES..2 * LINE_BYTES], &line(1));
    }

    #[test]
    fn a_fast_reader_is_fed_in_batches_across_turns() {
        let mut h = Harness::new(Chargen::new(LINE));
        h.connect();
        assert_eq!(h.take_output().len(), CYCLES_PER_BATCH * cycle().len());
        h.advance(YIELD);
        assert_eq!(h.take_output().len(), CYCLES_PER_BATCH * cycle().len());
    }

    #[test]
    fn udp_reply_is_at_most_512_and_never_amplifies_off_loopback() {
        let mut h = DatagramHarness::new(ChargenUdp::default());
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        h.feed(b"x", peer);
        let sent = h.take_sent();
        assert_eq!(sent[0].0.len(), 6 * LINE_BYTES, "loopback: whole lines up to 512 bytes");
        assert_eq!(&sent[0].0[..LINE_BYTES], &line(0));

        let public: SocketAddr = "192.0.2.1:7019".parse().unwrap();
        let mut h = DatagramHarness::new(ChargenUdp::default()).with_local(public);
        h.feed(b"x", peer);
        h.feed(&[0; 200], peer);
        h.feed(&[0; 2000], peer);
        let sizes: Vec<usize> = h.take_sent().iter().map(|(d, _)| d.len()).collect();
        assert_eq!(sizes, vec![1, 2 * LINE_BYTES, 6 * LINE_BYTES]);
    }
}
