//! `amf`: seed 000's Lab 1E, packing and unpacking an Action Message Format packet.
//!
//! # What the lab asks
//!
//! Lab 1E points at the AMF article on Wikipedia and asks for a TCP client
//! and server that pack and unpack its packet structure with
//! `struct.pack`/`unpack`. The article's table types each field with an
//! MPEG-style mnemonic: `uimsbf` is an unsigned integer sent most
//! significant bit first (big-endian, Python's `!H`, `!I`), `simsbf` a
//! signed one (`!i`). The packet, as this plugin reads it:
//!
//! ```text
//! version            u16    uimsbf   0 for AMF0 (3 from AMF3 players)
//! header-count       u16    uimsbf
//!   header-name      u16 length + UTF-8
//!   must-understand  u8     uimsbf   0 or 1
//!   header-length    i32    simsbf   byte length of the value, -1 = unknown
//!   value            AMF0 value
//! message-count      u16    uimsbf
//!   target-uri       u16 length + UTF-8
//!   response-uri     u16 length + UTF-8
//!   message-length   i32    simsbf   byte length of the value, -1 = unknown
//!   value            AMF0 value
//! ```
//!
//! An AMF0 value is a one-byte type marker and a body: number (0x00, an
//! IEEE double, `!d`), boolean (0x01), string (0x02, `!H` length + UTF-8),
//! object (0x03, key/value pairs ended by an empty key and 0x09), null
//! (0x05), undefined (0x06), reference (0x07), ECMA array (0x08, `!I` count
//! then like an object), strict array (0x0A, `!I` count then values), date
//! (0x0B, a double of milliseconds since 1970 then an `!h` time zone), long
//! string (0x0C, `!I` length), unsupported (0x0D), XML document (0x0F) and
//! typed object (0x10, a class name then like an object). Markers 0x04 and
//! 0x0E are reserved and 0x11 switches to AMF3: those are refused.
//!
//! # How the plugin answers
//!
//! The codec is a library module, [`codec`], with [`codec::encode_packet`]
//! and [`codec::decode_packet`]. Over TCP a packet carries no overall length:
//! its end is only known by decoding it. So the server buffers what arrives
//! and tries to decode; the decoder answers "here is a packet, it took N
//! bytes", "incomplete, at least N bytes needed" (wait for more), or
//! "malformed at byte N: why". For each packet the server replies one line
//! of JSON describing it ([`json`] documents the shape); several packets on
//! one connection get one line each.
//!
//! A malformed packet gets one line `error: at byte N: PROBLEM` (N counted
//! from the start of that packet), and the connection is closed; other
//! connections are unaffected. So is a connection that half-closes in the
//! middle of a packet.
//!
//! Nothing a peer sends can make the server allocate much more than it has
//! received: a packet is at most [`codec::Limits::max_packet`] bytes (64 KiB),
//! and any length that would end past that is an error at once, not a
//! reason to wait; strings are copied only when all their bytes are here;
//! counts reserve at most one slot per byte received; nesting is capped at
//! 32 levels. Retrying the decode on every read could cost time quadratic
//! in the packet size for a peer that trickles one byte at a time, so a
//! retry waits until the buffer has reached what the decoder said it needs
//! and grown by a quarter since the last try, or until 20 ms have passed.
//!
//! # The client
//!
//! `twirl client amf tcp:HOST:PORT [JSON]` packs a packet, sends it,
//! half-closes and prints the server's reading of it. With no argument it
//! sends [`sample_packet`]; otherwise the argument (or stdin, for `-`) is a
//! packet in the JSON shape the server replies with, so a reply can be fed
//! back as a request. A server `error:` line makes the client exit 1.
//!
//! ```text
//! $ twirl client amf tcp:127.0.0.1:7106
//! {"version":0,"headers":[{"name":"session","must_understand":false,"value":"lab-1e"}],"messages":[{"target":"lab.describe","response":"/1","value":["hello",42,true,null,{"$undefined":null},{"name":"twirl","port":7106},{"$ecma_array":{"0":"a","1":"b"}},{"$date":{"ms":1700000000000,"tz":0}},{"$long_string":"a long string has a 32-bit length"}]}]}
//! $ twirl client amf tcp:127.0.0.1:7106 '{"messages":[{"target":"add","response":"/2","value":[1,2.5]}]}'
//! {"version":0,"headers":[],"messages":[{"target":"add","response":"/2","value":[1,2.5]}]}
//! $ printf '\0\0\0\0\0\1\0\1t\0\0\377\377\377\377\x42' | nc -q1 127.0.0.1 7106
//! error: at byte 15: unknown type marker 0x42
//! ```

pub mod codec;
pub mod json;

use std::time::Duration;

use twirl::bytes::{Buf, BytesMut};
use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, Protocol, TimerHandle, Transport};

use crate::exchange::{REPLY_TIMEOUT, print_reply, read_stdin, stream_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};
use codec::{DecodeError, Header, Limits, Message, Packet, Value, decode_packet, encode_packet};

/// How long a decode waits for the buffer to grow before retrying anyway.
pub const RETRY_AFTER: Duration = Duration::from_millis(20);

/// The longest the forced retry waits, after doubling.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The timer tag of that retry.
const RETRY_TAG: u64 = 0;

/// The server side: buffers, decodes, replies one JSON line per packet.
pub struct AmfServer {
    /// What arrived and is not decoded yet; a decoded packet is taken off
    /// its front without moving the rest (a buffer of many small packets
    /// costs time linear in its size).
    buf: BytesMut,
    limits: Limits,
    /// The least buffer length at which a decode can progress (from the last Incomplete).
    need: usize,
    /// The buffer length at the last decode attempt (0 after a packet).
    tried_at: usize,
    retry: Option<TimerHandle>,
    /// The delay before the next forced retry: doubles (up to
    /// [`MAX_RETRY_AFTER`]) while a packet stays incomplete, so a client
    /// that trickles a large packet a byte at a time costs a few decodes a
    /// second, not one per byte or per retry.
    retry_after: Duration,
    packets: u64,
    decodes: u64,
    failed: bool,
}

impl AmfServer {
    /// A server with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A server with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        AmfServer {
            buf: BytesMut::new(),
            limits,
            need: 0,
            tried_at: 0,
            retry: None,
            retry_after: RETRY_AFTER,
            packets: 0,
            decodes: 0,
            failed: false,
        }
    }

    /// Packets answered so far on this connection.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Decode attempts so far (complete or not).
    pub fn decodes(&self) -> u64 {
        self.decodes
    }

    /// Decodes and answers as many packets as the buffer holds. Unless
    /// `forced`, a retry after an incomplete decode waits for real growth.
    fn pump(&mut self, t: &mut dyn Transport, forced: bool) {
        while !self.buf.is_empty() && !self.failed && !t.is_closing() {
            if self.buf.len() < self.need {
                return;
            }
            let grown = self.buf.len() >= self.tried_at + self.tried_at / 4;
            if !forced && !grown && self.buf.len() < self.limits.max_packet {
                if self.retry.is_none_or(|h| !t.timer_active(h)) {
                    self.retry = Some(t.call_later(self.retry_after, RETRY_TAG));
                }
                return;
            }
            self.decodes += 1;
            match decode_packet(&self.buf, &self.limits) {
                Ok((packet, used)) => {
                    self.packets += 1;
                    t.progress();
                    let line = json::packet_to_json(&packet);
                    log::debug!(
                        "{}: packet {} of {used} bytes, version {}, {} header(s), {} message(s)",
                        t.peer_addr(),
                        self.packets,
                        packet.version,
                        packet.headers.len(),
                        packet.messages.len()
                    );
                    log::debug!("{}: {line}", t.peer_addr());
                    t.write(format!("{line}\n").as_bytes());
                    self.buf.advance(used);
                    self.need = 0;
                    self.tried_at = 0;
                    self.retry_after = RETRY_AFTER;
                }
                Err(DecodeError::Incomplete { needed }) => {
                    self.need = needed;
                    self.tried_at = self.buf.len();
                    return;
                }
                Err(DecodeError::Malformed { offset, problem }) => return self.fail(t, offset, &problem),
            }
        }
    }

    fn fail(&mut self, t: &mut dyn Transport, offset: usize, problem: &str) {
        log::debug!("{}: malformed packet at byte {offset}: {problem}; closing", t.peer_addr());
        t.write(format!("error: at byte {offset}: {problem}\n").as_bytes());
        t.lose_connection();
        self.failed = true;
        self.buf = BytesMut::new();
    }
}

impl Default for AmfServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Protocol for AmfServer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Whole packets are what the idle timeout counts (see `progress`).
        t.progress();
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(data);
        self.pump(t, false);
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.pump(t, true);
        if !self.buf.is_empty() && !self.failed {
            let (have, need) = (self.buf.len(), self.need.max(self.buf.len() + 1));
            let problem = format!("the stream ended inside a packet ({have} bytes received, at least {need} needed)");
            return self.fail(t, have, &problem);
        }
        t.lose_connection();
    }

    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        if tag == RETRY_TAG {
            self.retry = None;
            // Nothing new since the last try: nothing to retry.
            if self.buf.len() > self.tried_at {
                let before = self.packets;
                self.pump(t, true);
                if self.packets == before {
                    self.retry_after = (self.retry_after * 2).min(MAX_RETRY_AFTER);
                }
            }
        }
    }
}

/// The packet the client sends when given none: one header, one message,
/// a value of nearly every type.
pub fn sample_packet() -> Packet {
    let s = |x: &str| Value::String(x.to_string());
    Packet {
        version: 0,
        headers: vec![Header { name: "session".into(), must_understand: false, value: s("lab-1e") }],
        messages: vec![Message {
            target: "lab.describe".into(),
            response: "/1".into(),
            value: Value::StrictArray(vec![
                s("hello"),
                Value::Number(42.0),
                Value::Boolean(true),
                Value::Null,
                Value::Undefined,
                Value::Object(vec![("name".into(), s("twirl")), ("port".into(), Value::Number(7106.0))]),
                Value::EcmaArray(vec![("0".into(), s("a")), ("1".into(), s("b"))]),
                Value::Date { millis: 1_700_000_000_000.0, timezone: 0 },
                Value::LongString("a long string has a 32-bit length".into()),
            ]),
        }],
    }
}

/// The packet a client's arguments describe: none for the sample, `-` for
/// JSON on stdin, else the words joined as JSON.
pub fn packet_from_args(args: &[String]) -> Result<Packet, ClientError> {
    let text = match args {
        [] => return Ok(sample_packet()),
        [one] if one == "-" => String::from_utf8(read_stdin()?).map_err(|_| ClientError::usage("stdin: not UTF-8"))?,
        words => words.join(" "),
    };
    json::packet_from_json(&text).map_err(|e| ClientError::usage(format!("packet JSON: {e}")))
}

/// `twirl client amf ENDPOINT [JSON|-]`.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    let packet = packet_from_args(args)?;
    let bytes = encode_packet(&packet).map_err(|e| ClientError::usage(format!("cannot pack: {e}")))?;
    let reply = stream_exchange(endpoint, &bytes, REPLY_TIMEOUT)?;
    print_reply(&reply)?;
    if reply.starts_with(b"error:") {
        return Err(ClientError::runtime(endpoint, "the server refused the packet"));
    }
    Ok(())
}

/// The sample request: [`sample_packet`], encoded (a unit test checks that
/// these bytes are its encoding).
#[rustfmt::skip]
pub const SAMPLE_BYTES: [u8; 181] = [0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x73, 0x65, 0x73, 0x73, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x06, 0x6c, 0x61, 0x62, 0x2d, 0x31, 0x65, 0x00, 0x01, 0x00, 0x0c, 0x6c, 0x61, 0x62, 0x2e, 0x64, 0x65, 0x73, 0x63, 0x72, 0x69, 0x62, 0x65, 0x00, 0x02, 0x2f, 0x31, 0x00, 0x00, 0x00, 0x82, 0x0a, 0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x40, 0x45, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x05, 0x06, 0x03, 0x00, 0x04, 0x6e, 0x61, 0x6d, 0x65, 0x02, 0x00, 0x05, 0x74, 0x77, 0x69, 0x72, 0x6c, 0x00, 0x04, 0x70, 0x6f, 0x72, 0x74, 0x00, 0x40, 0xbb, 0xc2, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x08, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x30, 0x02, 0x00, 0x01, 0x61, 0x00, 0x01, 0x31, 0x02, 0x00, 0x01, 0x62, 0x00, 0x00, 0x09, 0x0b, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x21, 0x61, 0x20, 0x6c, 0x6f, 0x6e, 0x67, 0x20, 0x73, 0x74, 0x72, 0x69, 0x6e, 0x67, 0x20, 0x68, 0x61, 0x73, 0x20, 0x61, 0x20, 0x33, 0x32, 0x2d, 0x62, 0x69, 0x74, 0x20, 0x6c, 0x65, 0x6e, 0x67, 0x74, 0x68];

/// The sample check: the JSON line for [`sample_packet`].
fn answers_sample(got: &[u8]) -> Result<(), String> {
    let want = format!("{}\n", json::packet_to_json(&sample_packet()));
    if got == want.as_bytes() { Ok(()) } else { Err(format!("got {:?}, want {want:?}", String::from_utf8_lossy(got))) }
}
/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "amf",
    summary: "decodes AMF0 packets (headers, messages, values), replies a JSON line each (Lab 1E)",
    lab: "seed 000 Lab 1E (Action Message Format)",
    defaults: &["tcp:7106"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| AmfServer::new())),
    datagram: None,
    client: Some(client),
    client_flags: &[],
    samples: &[Sample { via: Via::Stream, request: &SAMPLE_BYTES, answer: Answer::Check(answers_sample) }],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_bytes_are_the_sample_packet() {
        assert_eq!(codec::encode_packet(&sample_packet()).expect("encode"), SAMPLE_BYTES);
    }
    use twirl::testing::Harness;

    fn sample_bytes() -> Vec<u8> {
        encode_packet(&sample_packet()).unwrap()
    }

    const SAMPLE_JSON: &str = r#"{"version":0,"headers":[{"name":"session","must_understand":false,"value":"lab-1e"}],"messages":[{"target":"lab.describe","response":"/1","value":["hello",42,true,null,{"$undefined":null},{"name":"twirl","port":7106},{"$ecma_array":{"0":"a","1":"b"}},{"$date":{"ms":1700000000000,"tz":0}},{"$long_string":"a long string has a 32-bit length"}]}]}"#;

    #[test]
    fn sample_packet_gets_one_json_line() {
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        h.feed(&sample_bytes());
        assert_eq!(h.take_text(), format!("{SAMPLE_JSON}\n"));
        h.feed_eof();
        assert!(h.is_closed());
        assert_eq!(json::packet_from_json(SAMPLE_JSON).unwrap(), sample_packet(), "the reply reads back as the packet");
    }

    #[test]
    fn packets_split_and_joined_across_reads() {
        let b = sample_bytes();
        let mut stream = b.clone();
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&b);
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        h.feed(&stream[..10]);
        h.feed(&stream[10..b.len() + 3]);
        assert_eq!(h.take_text(), format!("{SAMPLE_JSON}\n"));
        h.feed(&stream[b.len() + 3..]);
        assert_eq!(h.take_text(), format!("{SAMPLE_JSON}\n{SAMPLE_JSON}\n"));
        assert_eq!(h.protocol.packets(), 3);
    }

    #[test]
    fn many_small_packets_in_one_read_are_each_answered() {
        let one = encode_packet(&Packet::default()).expect("encode");
        let stream = one.repeat(5000);
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        h.feed(&stream[..7]);
        h.feed(&stream[7..]);
        assert_eq!(h.protocol.packets(), 5000);
        let text = h.take_text();
        assert_eq!(text.lines().count(), 5000);
        assert!(text.lines().all(|l| l == r#"{"version":0,"headers":[],"messages":[]}"#), "{}", &text[..200]);
        assert!(h.protocol.buf.is_empty());
    }

    #[test]
    fn trickled_bytes_are_decoded_after_growth_or_the_retry_delay() {
        let b = sample_bytes();
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        for byte in &b {
            h.feed(std::slice::from_ref(byte));
        }
        // Either the last byte made the buffer grow enough, or the retry timer will decode it.
        h.advance(RETRY_AFTER);
        assert_eq!(h.take_text(), format!("{SAMPLE_JSON}\n"));
        assert_eq!(h.protocol.packets(), 1);
    }

    #[test]
    fn a_last_small_piece_waits_at_most_the_retry_delay() {
        let b = sample_bytes();
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        h.feed(&b[..b.len() - 1]);
        h.feed(&b[b.len() - 1..]);
        // One byte is not a quarter's growth: no decode yet...
        assert_eq!(h.take_text(), "");
        h.advance(RETRY_AFTER - Duration::from_millis(1));
        assert_eq!(h.take_text(), "");
        // ...until the retry.
        h.advance(Duration::from_millis(1));
        assert_eq!(h.take_text(), format!("{SAMPLE_JSON}\n"));
    }

    #[test]
    fn a_packet_trickled_a_byte_at_a_time_is_not_decoded_again_for_each_byte() {
        // 1,500 small properties (about 30 KB): the decoder learns how much
        // more it needs one property at a time.
        let props: Vec<(String, Value)> = (0..1500).map(|i| (format!("key{i:05}"), Value::Number(i as f64))).collect();
        let message = Message { target: "t".into(), response: "/1".into(), value: Value::Object(props) };
        let b = encode_packet(&Packet { version: 0, headers: vec![], messages: vec![message] }).expect("encode");
        assert!(b.len() > 25_000, "{}", b.len());
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        for byte in b.chunks(1) {
            h.feed(byte);
            h.advance(Duration::from_millis(10));
        }
        h.advance(MAX_RETRY_AFTER);
        assert!(h.take_text().starts_with('{'), "the packet was answered");
        // One decode per 25% of growth and a few a second from the retry
        // timer, not one per byte or per 20 ms retry (about 15,000 then).
        let decodes = h.protocol.decodes();
        assert!(decodes < 600, "{decodes} decodes of a {}-byte packet", b.len());
    }

    #[test]
    fn malformed_packet_gets_an_error_line_then_close() {
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        h.feed(&sample_bytes());
        h.feed(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x42, 1, 2, 3]);
        assert_eq!(h.take_text(), format!("{SAMPLE_JSON}\nerror: at byte 15: unknown type marker 0x42\n"));
        assert!(h.is_closed());
    }

    #[test]
    fn hostile_length_is_refused_at_once() {
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        h.feed(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0x7f, 0xff, 0xff, 0xff]);
        let text = h.take_text();
        assert!(text.starts_with("error: at byte 19: long string of 2147483647 bytes"), "{text}");
        assert!(h.is_closed());
    }

    #[test]
    fn half_close_inside_a_packet_is_an_error() {
        let b = sample_bytes();
        let mut h = Harness::new(AmfServer::new());
        h.connect();
        h.feed(&b[..20]);
        h.feed_eof();
        let text = h.take_text();
        assert!(text.starts_with("error: at byte 20: the stream ended inside a packet (20 bytes received"), "{text}");
        assert!(h.is_closed());
    }

    #[test]
    fn over_the_packet_limit_is_refused() {
        let limits = Limits { max_packet: 100, max_depth: 8 };
        let mut h = Harness::new(AmfServer::with_limits(limits));
        h.connect();
        // A strict array of 60 nulls (5 + 60 bytes) inside a 15-byte envelope: 80 bytes, fine.
        let mut ok = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0a, 0, 0, 0, 60];
        ok.extend_from_slice(&[0x05; 60]);
        h.feed(&ok);
        assert!(h.take_text().starts_with("{\"version\":0"));
        // 90 values cannot fit in 100 bytes once the envelope is counted: refused at the count.
        let big = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0a, 0, 0, 0, 90, 0x05];
        h.feed(&big);
        let text = h.take_text();
        assert!(text.starts_with("error: at byte 15: ") && text.contains("100-byte packet limit"), "{text}");
        assert!(h.is_closed());
    }

    #[test]
    fn client_arguments() {
        assert_eq!(packet_from_args(&[]).unwrap(), sample_packet());
        let p = packet_from_args(&["{\"version\":3,".into(), "\"messages\":[]}".into()]).unwrap();
        assert_eq!(p, Packet { version: 3, ..Packet::default() });
        let e = packet_from_args(&["{nope".into()]).unwrap_err();
        assert!(e.usage && e.message.contains("packet JSON"), "{e}");
    }
}
