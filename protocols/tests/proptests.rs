//! Property tests for every decoder and framer (issue #7): any byte
//! sequence, cut at any points into reads, gives the same messages and the
//! same output as when fed in one piece, and nothing panics.
//!
//! The stream ones drive the real protocol through `twirl::testing::Harness`
//! (the same write buffering and close handling the reactor runs), feeding
//! the pieces one read at a time and then half-closing, so that whatever the
//! protocol does with a partial message at EOF is compared too. Timers (the
//! 100 ms idle flush, AMF's 20 ms retry) are never advanced: an answer must
//! not depend on them once the peer half-closes.
//!
//! Case counts are moderate (`PROPTEST_CASES` overrides them), so the whole
//! file runs in a few seconds.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::sample::Index;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::prefixed::{MessageHandler, Prefix, PrefixedReceiver};
use twirl::testing::{DatagramHarness, Harness};
use twirl::{Protocol, Transport};
use twirl_protocols::plugins::amf::AmfServer;
use twirl_protocols::plugins::amf::codec::{self, Header, Message, Packet, Value, decode_packet, encode_packet};
use twirl_protocols::plugins::json::{JsonLines, decode};
use twirl_protocols::plugins::sntp::{self, Sntp};
use twirl_protocols::plugins::structs::StructServer;
use twirl_protocols::text::{LineConfig, TextDatagram, TextLines};

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    // No failure files: a failure prints its minimal input, which becomes a regression test.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Where `cuts` cut `data` (any number of points, anywhere, repeats allowed).
fn at(data: &[u8], cuts: &[Index]) -> Vec<usize> {
    cuts.iter().map(|c| c.index(data.len() + 1)).collect()
}

/// `data` cut at the given offsets.
fn pieces<'a>(data: &'a [u8], offsets: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = offsets.iter().map(|&o| o.min(data.len())).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// What the peer saw: every byte written, and whether the connection closed.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    output: Vec<u8>,
    closed: bool,
}

/// Feeds `data` in the pieces given, then half-closes if `eof`.
fn drive<P: Protocol>(make: impl Fn() -> P, data: &[u8], cuts: &[usize], eof: bool) -> (Seen, P) {
    let mut h = Harness::new(make());
    h.connect();
    for piece in pieces(data, cuts) {
        h.feed(piece);
    }
    // Let any timer that finishes a pending answer fire (AMF's decode retry,
    // the idle flush of a partial line): the pieces came with no gap between
    // them, so such a timer fires the same way however the data was cut.
    h.advance(Duration::from_secs(1));
    if eof {
        h.feed_eof();
    }
    (Seen { output: h.take_output(), closed: h.is_closed() }, h.protocol)
}

/// Split-invariance: the pieces give what the whole gives, with and without EOF.
fn same_either_way<P: Protocol>(make: impl Fn() -> P, data: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    for eof in [false, true] {
        let (whole, _) = drive(&make, data, &[], eof);
        let (split, _) = drive(&make, data, &at(data, cuts), eof);
        prop_assert_eq!(
            normalize(&split.output),
            normalize(&whole.output),
            "eof {}, pieces {:?}",
            eof,
            pieces(data, &at(data, cuts))
        );
        prop_assert_eq!(split.closed, whole.closed, "eof {}", eof);
    }
    Ok(())
}

/// Blanks the one number that legitimately depends on how the stream was
/// cut: how many bytes of an over-long line had been seen when it was
/// refused ("line too long (N bytes seen", "line too long: N bytes seen").
fn normalize(out: &[u8]) -> Vec<u8> {
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

/// Bytes drawn mostly from `alphabet` (so delimiters are common), sometimes any byte.
fn bytes(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![8 => prop::sample::select(alphabet), 1 => any::<u8>()], 0..max)
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..10)
}

/// Lines whose lengths sit around `max`, with every kind of ending.
fn lines_near(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let line = (max.saturating_sub(2)..=max + 2, prop::sample::select(vec!["\n", "\r\n", "\r", ""]))
        .prop_map(|(n, end)| [vec![b'x'; n], end.as_bytes().to_vec()].concat());
    prop::collection::vec(line, 1..4).prop_map(|ls| ls.concat())
}

// ---------------------------------------------------------------- line framer

/// Records lines and refusals; closes on an over-long line (the default) or
/// skips to the next line (`survive`).
#[derive(Default)]
struct Rec {
    lines: Vec<Vec<u8>>,
    too_long: usize,
    eof: bool,
    survive: bool,
}

impl LineHandler for Rec {
    fn line_received(&mut self, line: &[u8], _: &mut Lines<'_>) {
        self.lines.push(line.to_vec());
    }
    fn line_too_long(&mut self, _len: usize, t: &mut Lines<'_>) {
        self.too_long += 1;
        if !self.survive {
            t.lose_connection();
        }
    }
    fn read_eof(&mut self, t: &mut Lines<'_>) {
        self.eof = true;
        t.lose_connection();
    }
}

fn check_line_framer(data: &[u8], cuts: &[Index], max: usize, survive: bool) -> Result<(), TestCaseError> {
    let make = || LineReceiver::new(Rec { survive, ..Rec::default() }).max_line_length(max);
    for eof in [false, true] {
        let (w, whole) = drive(make, data, &[], eof);
        let (s, split) = drive(make, data, &at(data, cuts), eof);
        let (whole, split) = (&whole.handler, &split.handler);
        prop_assert_eq!(&split.lines, &whole.lines, "eof {}, pieces {:?}", eof, pieces(data, &at(data, cuts)));
        prop_assert_eq!(split.too_long, whole.too_long, "eof {}, pieces {:?}", eof, pieces(data, &at(data, cuts)));
        prop_assert_eq!(split.eof, whole.eof);
        prop_assert_eq!(s.closed, w.closed);
        // And the lines are what a plain split says they are.
        if !survive && whole.too_long == 0 {
            let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
            let last = parts.pop().unwrap_or_default();
            // A partial line is delivered at EOF; every line loses a trailing `\r`.
            if eof && !last.is_empty() {
                parts.push(last);
            }
            let expect: Vec<Vec<u8>> = parts.iter().map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()).collect();
            prop_assert_eq!(&whole.lines, &expect);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn line_framer_any_bytes_any_cuts(data in bytes(b"ab \r\n", 200), cuts in cuts(), max in 1usize..24, survive in any::<bool>()) {
        check_line_framer(&data, &cuts, max, survive)?;
    }

    #[test]
    fn line_framer_lines_around_the_limit(data in lines_near(8), cuts in cuts(), survive in any::<bool>()) {
        check_line_framer(&data, &cuts, 8, survive)?;
    }
}

// ---------------------------------------------------------------- length-prefixed framer

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

/// Well-formed messages (some over the limit) with a garbage tail.
fn framed(prefix: Prefix) -> impl Strategy<Value = Vec<u8>> {
    let msg = prop::collection::vec(any::<u8>(), 0..40);
    (prop::collection::vec(msg, 0..6), prop::collection::vec(any::<u8>(), 0..8)).prop_map(move |(msgs, tail)| {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(&(m.len() as u64).to_be_bytes()[8 - prefix.width()..]);
            out.extend_from_slice(&m);
        }
        out.extend_from_slice(&tail);
        out
    })
}

fn check_prefixed(data: &[u8], cuts: &[Index], prefix: Prefix) -> Result<(), TestCaseError> {
    let make = || PrefixedReceiver::new(Msgs::default(), prefix).max_message_length(30);
    for eof in [false, true] {
        let (w, whole) = drive(make, data, &[], eof);
        let (s, split) = drive(make, data, &at(data, cuts), eof);
        prop_assert_eq!(&split.handler.messages, &whole.handler.messages, "pieces {:?}", pieces(data, &at(data, cuts)));
        prop_assert_eq!(&split.handler.too_long, &whole.handler.too_long);
        prop_assert_eq!(split.handler.partial, whole.handler.partial);
        prop_assert_eq!(s.closed, w.closed);
        prop_assert!(whole.handler.messages.iter().all(|m| m.len() <= 30));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn prefixed_u8_any_cuts(data in prop_oneof![framed(Prefix::U8), prop::collection::vec(any::<u8>(), 0..120)], cuts in cuts()) {
        check_prefixed(&data, &cuts, Prefix::U8)?;
    }

    #[test]
    fn prefixed_u16_any_cuts(data in prop_oneof![framed(Prefix::U16), prop::collection::vec(any::<u8>(), 0..120)], cuts in cuts()) {
        check_prefixed(&data, &cuts, Prefix::U16)?;
    }

    #[test]
    fn prefixed_u32_any_cuts(data in prop_oneof![framed(Prefix::U32), prop::collection::vec(any::<u8>(), 0..120)], cuts in cuts()) {
        check_prefixed(&data, &cuts, Prefix::U32)?;
    }
}

// ---------------------------------------------------------------- AMF

fn amf_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<f64>().prop_map(Value::Number),
        any::<bool>().prop_map(Value::Boolean),
        "[a-z]{0,12}".prop_map(Value::String),
        Just(Value::Null),
        Just(Value::Undefined),
        any::<u16>().prop_map(Value::Reference),
        (0usize..300).prop_map(|n| Value::LongString("l".repeat(n))),
        Just(Value::Unsupported),
    ];
    leaf.prop_recursive(6, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(("[a-z]{1,4}", inner.clone()), 0..4).prop_map(Value::Object),
            prop::collection::vec(("[a-z]{1,4}", inner.clone()), 0..4).prop_map(Value::EcmaArray),
            prop::collection::vec(inner, 0..4).prop_map(Value::StrictArray),
        ]
    })
}

fn amf_packet() -> impl Strategy<Value = Vec<u8>> {
    let header = ("[a-z]{0,6}", any::<bool>(), amf_value()).prop_map(|(name, must_understand, value)| Header {
        name,
        must_understand,
        value,
    });
    let message = ("[a-z/]{0,6}", "[0-9/]{0,3}", amf_value()).prop_map(|(target, response, value)| Message {
        target,
        response,
        value,
    });
    (any::<u16>(), prop::collection::vec(header, 0..2), prop::collection::vec(message, 0..3)).prop_map(
        |(version, headers, messages)| encode_packet(&Packet { version, headers, messages }).expect("encodable"),
    )
}

/// A stream of packets, some bytes flipped or cut, or plain garbage.
fn amf_stream() -> impl Strategy<Value = Vec<u8>> {
    let packets = || prop::collection::vec(amf_packet(), 1..4).prop_map(|ps| ps.concat());
    let mutated = (packets(), prop::collection::vec((any::<Index>(), any::<u8>()), 0..4), any::<Index>()).prop_map(
        |(mut b, flips, cut)| {
            for (at, v) in flips {
                if !b.is_empty() {
                    let i = at.index(b.len());
                    b[i] = v;
                }
            }
            let keep = cut.index(b.len() + 1).max(b.len() * 3 / 4);
            b.truncate(keep);
            b
        },
    );
    prop_oneof![3 => packets(), 4 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..300)]
}

fn small_amf() -> AmfServer {
    AmfServer::with_limits(codec::Limits { max_packet: 400, max_depth: 5 })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn amf_server_any_cuts(data in amf_stream(), cuts in cuts()) {
        same_either_way(small_amf, &data, &cuts)?;
        let (seen, _) = drive(small_amf, &data, &at(&data, &cuts), true);
        // Every answer is a JSON line or one final error line, and EOF closes.
        let text = String::from_utf8_lossy(&seen.output).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            prop_assert!(l.starts_with("{\"version\":") || (last && l.starts_with("error: at byte ")), "{}", l);
        }
        prop_assert!(seen.closed);
    }

    #[test]
    fn amf_decoder_never_exceeds_its_limits(data in amf_stream()) {
        let limits = codec::Limits { max_packet: 400, max_depth: 5 };
        match decode_packet(&data, &limits) {
            Ok((_, used)) => prop_assert!(used <= limits.max_packet, "a packet of {} bytes passed a {}-byte limit", used, limits.max_packet),
            Err(codec::DecodeError::Incomplete { needed }) => prop_assert!(needed > data.len() && needed <= limits.max_packet),
            Err(codec::DecodeError::Malformed { offset, .. }) => prop_assert!(offset <= data.len().max(limits.max_packet)),
        }
    }
}

// ---------------------------------------------------------------- SNTP

fn fixed_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// 48 bytes or more with the first byte's mode and version spread over
/// every value, or anything at all.
fn sntp_datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any::<u8>(), prop::collection::vec(any::<u8>(), 47..120))
            .prop_map(|(first, rest)| [vec![first], rest].concat()),
        prop::collection::vec(any::<u8>(), 0..60),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn sntp_answers_exactly_the_valid_requests(data in sntp_datagram()) {
        let mut h = DatagramHarness::new(Sntp::with_clock(Box::new(fixed_clock), -20));
        let peer: SocketAddr = "127.0.0.1:4123".parse().unwrap();
        h.feed(&data, peer);
        let sent = h.take_sent();
        let valid = data.len() >= 48 && data[0] & 7 == 3 && (1..=4).contains(&((data[0] >> 3) & 7));
        prop_assert_eq!(sent.len(), usize::from(valid));
        prop_assert_eq!(sntp::check_request(&data).is_ok(), valid);
        if let Some((reply, to)) = sent.first() {
            prop_assert_eq!(*to, peer);
            prop_assert_eq!(reply.len(), 48, "never larger than the request");
            prop_assert_eq!(reply[0] & 7, 4);
            prop_assert_eq!((reply[0] >> 3) & 7, (data[0] >> 3) & 7);
            prop_assert_eq!(&reply[24..32], &data[40..48], "originate is the request's transmit");
        }
    }
}

// ---------------------------------------------------------------- JSON

fn json_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(b"{}[]\":,0123456789.eE-+ truefalsn\\u\r\n", 120),
        prop::collection::vec(r#"\{"[a-z]{0,3}":(1|-2\.5e3|"x\\u00e9"|\[\]|\{\}|null|true),?\}\r?\n?"#, 0..5)
            .prop_map(|v| v.concat().into_bytes()),
    ]
}

fn json_lines() -> twirl::line::LineReceiver<JsonLines> {
    LineConfig::default().max_line(40).receiver(JsonLines)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_lines_any_cuts(data in json_text(), cuts in cuts()) {
        same_either_way(json_lines, &data, &cuts)?;
    }

    #[test]
    fn json_decode_never_panics_and_canonical_is_stable(data in prop_oneof![json_text(), prop::collection::vec(any::<u8>(), 0..100)]) {
        if let Ok(map) = decode(&data) {
            let once = twirl_protocols::plugins::json::canonical(&serde_json::Value::Object(map));
            let again = decode(once.as_bytes()).expect("the canonical form decodes");
            prop_assert_eq!(twirl_protocols::plugins::json::canonical(&serde_json::Value::Object(again)), once);
        }
    }
}

// ---------------------------------------------------------------- struct, reverse, upper

fn text_lines(f: fn(&[u8]) -> Vec<u8>) -> twirl::line::LineReceiver<TextLines> {
    LineConfig::default().max_line(16).receiver(TextLines::new(f))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn struct_records_any_cuts(data in prop::collection::vec(any::<u8>(), 0..100), cuts in cuts()) {
        same_either_way(StructServer::default, &data, &cuts)?;
        let (seen, _) = drive(StructServer::default, &data, &at(&data, &cuts), true);
        let lines = seen.output.iter().filter(|&&b| b == b'\n').count();
        prop_assert_eq!(lines, 2 * (data.len() / 12) + usize::from(data.len() % 12 != 0));
        prop_assert!(seen.closed);
    }

    #[test]
    fn reverse_lines_any_cuts(data in bytes("ab é\t\r\n\u{0}".as_bytes(), 120), cuts in cuts()) {
        same_either_way(|| text_lines(twirl_protocols::plugins::reverse::reverse), &data, &cuts)?;
    }

    #[test]
    fn upper_lines_any_cuts(data in bytes("aß é\r\n\u{ff}".as_bytes(), 120), cuts in cuts()) {
        same_either_way(|| text_lines(twirl_protocols::plugins::upper::upper), &data, &cuts)?;
    }

    #[test]
    fn reverse_and_upper_datagrams_stay_bounded(data in prop::collection::vec(any::<u8>(), 0..200), s in "\\PC{0,40}") {
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        for input in [data.clone(), s.into_bytes()] {
            let mut r = DatagramHarness::new(TextDatagram::new(twirl_protocols::plugins::reverse::reverse));
            r.feed(&input, peer);
            prop_assert!(r.take_sent()[0].0.len() <= input.len(), "reverse never grows a datagram");
            let mut u = DatagramHarness::new(TextDatagram::new(twirl_protocols::plugins::upper::upper));
            u.feed(&input, peer);
            // Unicode uppercasing can grow text (ß -> SS, ΐ -> Ϊ́): at most 3x.
            prop_assert!(u.take_sent()[0].0.len() <= 3 * input.len());
        }
    }
}

// ---------------------------------------------------------------- regressions

/// Found by `line_framer_lines_around_the_limit`: a line of exactly the
/// maximum, its `\r\n` cut between the `\r` and the `\n`, was refused as too
/// long (the `\r` was counted), though the same bytes in one read were fine.
#[test]
fn a_line_of_exactly_the_maximum_with_its_crlf_cut_in_two_is_accepted() {
    let make = || LineReceiver::new(Rec::default()).max_line_length(8);
    let (_, split) = drive(make, b"xxxxxxxx\r\nok\n", &[9], false);
    assert_eq!(pieces(b"xxxxxxxx\r\nok\n", &[9])[0], b"xxxxxxxx\r");
    assert_eq!(split.handler.too_long, 0);
    assert_eq!(split.handler.lines, [b"xxxxxxxx".to_vec(), b"ok".to_vec()]);
}

/// Found by `amf_decoder_never_exceeds_its_limits`: a packet longer than
/// `max_packet` was accepted when all its bytes were in the buffer at the
/// first try, and refused when they came in pieces.
#[test]
fn an_amf_packet_over_the_limit_is_refused_even_when_it_arrives_whole() {
    let limits = codec::Limits { max_packet: 100, max_depth: 8 };
    let mut p = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0, 0, 0, 120];
    p.extend_from_slice(&[b'a'; 120]);
    match decode_packet(&p, &limits) {
        Err(codec::DecodeError::Malformed { offset: 19, problem }) => {
            assert_eq!(problem, "long string of 120 bytes would end past the 100-byte packet limit")
        }
        other => panic!("{other:?}"),
    }
    let make = || AmfServer::with_limits(limits);
    let (whole, _) = drive(make, &p, &[], false);
    let (split, _) = drive(make, &p, &[10], false);
    assert_eq!(whole, split);
    assert_eq!(whole.output, b"error: at byte 19: long string of 120 bytes would end past the 100-byte packet limit\n");
}
