//! The bodies of the fuzz targets (one function each), kept in a library so
//! that a plain `cargo test` here can replay a corpus or a crash file too.
//!
//! Each target checks more than "does not panic": the stream ones feed the
//! input to the real protocol through `twirl::testing::Harness` once whole
//! and once cut into reads at offsets taken from the input itself, and
//! assert that the messages, the output and the close are the same; the
//! decoders check their own invariants (limits kept, canonical forms stable,
//! replies only to valid requests). A broken invariant panics, which
//! libFuzzer reports as a crash.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use twirl::Protocol;
use twirl::Transport;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::prefixed::{MessageHandler, Prefix, PrefixedReceiver};
use twirl::testing::{DatagramHarness, Harness};
use twirl_protocols::plugins::amf::AmfServer;
use twirl_protocols::plugins::amf::codec::{self, DecodeError, decode_packet, encode_packet};
use twirl_protocols::plugins::json::{JsonLines, canonical, decode};
use twirl_protocols::plugins::sntp::{Sntp, check_request};
use twirl_protocols::text::LineConfig;

/// Splits the input into (cut offsets, payload): the first byte says how
/// many cuts (0-7), each cut is the next two bytes, the rest is the payload.
fn cuts_and_payload(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return (Vec::new(), data) };
    let n = usize::from(n % 8).min(rest.len() / 2);
    let (raw, payload) = rest.split_at(2 * n);
    let cuts = raw.chunks(2).map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (payload.len() + 1)).collect();
    (cuts, payload)
}

/// `data` cut at `offsets`.
pub fn pieces<'a>(data: &'a [u8], offsets: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = offsets.iter().map(|&o| o.min(data.len())).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// Feeds the pieces, lets timers run, half-closes; returns (output, closed, protocol).
pub fn drive<P: Protocol>(p: P, data: &[u8], cuts: &[usize]) -> (Vec<u8>, bool, P) {
    let mut h = Harness::new(p);
    h.connect();
    for piece in pieces(data, cuts) {
        h.feed(piece);
    }
    h.advance(Duration::from_secs(1));
    h.feed_eof();
    (h.take_output(), h.is_closed(), h.protocol)
}

/// Blanks the byte count in "line too long (N bytes seen" / ": N bytes seen":
/// how much of an over-long line had arrived depends on the cuts.
pub fn normalize(out: &[u8]) -> Vec<u8> {
    let mut out = out.to_vec();
    let needle = b"line too long";
    let mut from = 0;
    while let Some(i) = out[from..].windows(needle.len()).position(|w| w == needle) {
        let start = from + i + needle.len() + 2;
        let end = (start..out.len()).find(|&j| !out[j].is_ascii_digit()).unwrap_or(out.len());
        if start <= end {
            out.splice(start..end, *b"N");
        }
        from = (start + 1).min(out.len());
    }
    out
}

fn same_either_way<P: Protocol>(make: impl Fn() -> P, data: &[u8], cuts: &[usize]) {
    let (whole, whole_closed, _) = drive(make(), data, &[]);
    let (split, split_closed, _) = drive(make(), data, cuts);
    assert_eq!(normalize(&split), normalize(&whole), "cut at {cuts:?}");
    assert_eq!(split_closed, whole_closed, "cut at {cuts:?}");
}

#[derive(Default)]
struct Rec {
    lines: Vec<Vec<u8>>,
    too_long: usize,
    survive: bool,
}

impl LineHandler for Rec {
    fn line_received(&mut self, line: &[u8], _: &mut Lines<'_>) {
        self.lines.push(line.to_vec());
    }
    fn line_too_long(&mut self, _: usize, t: &mut Lines<'_>) {
        self.too_long += 1;
        if !self.survive {
            t.lose_connection();
        }
    }
}

/// `twirl::line::LineReceiver`: the same lines and refusals however cut.
/// Payload byte 0 is the maximum line length (1-64), byte 1 whether an
/// over-long line is survived, byte 2 whether the idle flush is on.
pub fn line_framer(data: &[u8]) {
    let (cuts, payload) = cuts_and_payload(data);
    let [max, survive, flush, stream @ ..] = payload else { return };
    let max = usize::from(max % 64) + 1;
    let cuts: Vec<usize> = cuts.iter().map(|c| c.saturating_sub(3)).collect();
    let make = || {
        let r = LineReceiver::new(Rec { survive: survive & 1 == 1, ..Rec::default() }).max_line_length(max);
        if flush & 1 == 1 { r.flush_partial_after(Duration::from_millis(100)) } else { r }
    };
    let (_, wc, whole) = drive(make(), stream, &[]);
    let (_, sc, split) = drive(make(), stream, &cuts);
    assert_eq!(split.handler.lines, whole.handler.lines, "cut at {cuts:?}");
    assert_eq!(split.handler.too_long, whole.handler.too_long, "cut at {cuts:?}");
    assert_eq!(sc, wc);
    assert!(whole.handler.lines.iter().all(|l| l.len() <= max));
}

#[derive(Default)]
struct Msgs {
    messages: Vec<Vec<u8>>,
    too_long: Vec<usize>,
    partial: Option<usize>,
}

impl MessageHandler for Msgs {
    fn message_received(&mut self, msg: &[u8], _: &mut dyn Transport) {
        self.messages.push(msg.to_vec());
    }
    fn message_too_long(&mut self, len: usize, t: &mut dyn Transport) {
        self.too_long.push(len);
        t.lose_connection();
    }
    fn read_eof(&mut self, partial: usize, t: &mut dyn Transport) {
        self.partial = Some(partial);
        t.lose_connection();
    }
}

/// `twirl::prefixed::PrefixedReceiver`, every prefix width, a 300-byte maximum.
pub fn prefixed_framer(data: &[u8]) {
    let (cuts, payload) = cuts_and_payload(data);
    for prefix in [Prefix::U8, Prefix::U16, Prefix::U32] {
        let make = || PrefixedReceiver::new(Msgs::default(), prefix).max_message_length(300);
        let (_, wc, whole) = drive(make(), payload, &[]);
        let (_, sc, split) = drive(make(), payload, &cuts);
        assert_eq!(split.handler.messages, whole.handler.messages, "cut at {cuts:?}");
        assert_eq!(split.handler.too_long, whole.handler.too_long);
        assert_eq!(split.handler.partial, whole.handler.partial);
        assert_eq!(sc, wc);
        assert!(whole.handler.messages.iter().all(|m| m.len() <= 300));
    }
}

/// The AMF0 decoder and the `amf` plugin: limits kept, a decoded packet
/// re-encodes to bytes that decode to the same encoding, and the server
/// answers the same however the stream is cut.
pub fn amf_decode(data: &[u8]) {
    let (cuts, payload) = cuts_and_payload(data);
    for limits in [codec::Limits::default(), codec::Limits { max_packet: 300, max_depth: 4 }] {
        match decode_packet(payload, &limits) {
            Ok((packet, used)) => {
                assert!(used <= payload.len() && used <= limits.max_packet, "{used} bytes past {limits:?}");
                if let Ok(again) = encode_packet(&packet) {
                    let big = codec::Limits { max_packet: 1 << 24, max_depth: 64 };
                    let (p2, n2) = decode_packet(&again, &big).expect("a re-encoded packet decodes");
                    assert_eq!(n2, again.len());
                    assert_eq!(encode_packet(&p2).expect("encodes"), again, "re-encoding is stable");
                }
            }
            Err(DecodeError::Incomplete { needed }) => {
                assert!(needed > payload.len() && needed <= limits.max_packet, "needed {needed} of {}", payload.len())
            }
            Err(DecodeError::Malformed { .. }) => {}
        }
    }
    same_either_way(|| AmfServer::with_limits(codec::Limits { max_packet: 300, max_depth: 4 }), payload, &cuts);
}

fn fixed_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// SNTP request parsing: an answer (48 bytes, server mode, the request's
/// transmit time as originate) exactly for client-mode requests of version
/// 1-4 and 48 bytes or more; silence for anything else.
pub fn sntp_parse(data: &[u8]) {
    let valid = data.len() >= 48 && data[0] & 7 == 3 && (1..=4).contains(&((data[0] >> 3) & 7));
    assert_eq!(check_request(data).is_ok(), valid);
    let mut h = DatagramHarness::new(Sntp::with_clock(Box::new(fixed_clock), -20));
    let peer: SocketAddr = ([127, 0, 0, 1], 4123).into();
    h.feed(data, peer);
    let sent = h.take_sent();
    assert_eq!(sent.len(), usize::from(valid));
    if let Some((reply, to)) = sent.first() {
        assert_eq!(*to, peer);
        assert_eq!(reply.len(), 48);
        assert_eq!(reply[0] & 7, 4);
        assert_eq!(reply[24..32], data[40..48]);
    }
}

/// The JSON decoder and the `json` plugin over TCP: decoding never panics
/// (nesting is capped before parsing), the canonical form of an accepted
/// object decodes to itself, and the line plugin answers the same however
/// the stream is cut.
pub fn json_decode(data: &[u8]) {
    let (cuts, payload) = cuts_and_payload(data);
    if let Ok(map) = decode(payload) {
        let once = canonical(&serde_json::Value::Object(map));
        let again = decode(once.as_bytes()).expect("the canonical form decodes");
        assert_eq!(canonical(&serde_json::Value::Object(again)), once);
    }
    same_either_way(|| LineConfig::default().max_line(256).receiver(JsonLines), payload, &cuts);
}

#[cfg(test)]
mod tests {
    //! Replays every file under `seeds/TARGET/`, `corpus/TARGET/`,
    //! `artifacts/TARGET/` and `regressions/TARGET/` through its body:
    //! `cargo test` in this directory (stable is enough).

    use std::path::Path;

    fn replay(target: &str, body: fn(&[u8])) {
        for dir in ["seeds", "corpus", "artifacts", "regressions"] {
            let Ok(entries) = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target)) else {
                continue;
            };
            for e in entries.flatten() {
                let data = std::fs::read(e.path()).expect("read corpus file");
                body(&data);
            }
        }
    }

    #[test]
    fn replay_all() {
        replay("line_framer", super::line_framer);
        replay("prefixed_framer", super::prefixed_framer);
        replay("amf_decode", super::amf_decode);
        replay("sntp_parse", super::sntp_parse);
        replay("json_decode", super::json_decode);
    }

    #[test]
    fn bodies_accept_trivial_inputs() {
        for data in [&b""[..], b"\x00", b"\x03\x00\x01\x00\x02\x00\x03abc\r\ndef\n", &[0xff; 64]] {
            super::line_framer(data);
            super::prefixed_framer(data);
            super::amf_decode(data);
            super::sntp_parse(data);
            super::json_decode(data);
        }
    }
}
