//! Property tests of the framers (`line`, `prefixed`, `netstring`): under
//! every way of cutting a stream into reads, owned frames (`owned_frames`,
//! `Bytes` taken off the receiver's buffer) are the borrowed frames, and
//! both are what the stream in one piece gives; a header announcing a raw
//! body, then lines again, gives the same events however it is cut.
//!
//! Case counts are moderate (`PROPTEST_CASES` overrides them).

use proptest::prelude::*;
use proptest::sample::Index;
use twirl::bytes::Bytes;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::netstring::{NetstringError, NetstringHandler, NetstringReceiver};
use twirl::prefixed::{MessageHandler, Prefix, PrefixedReceiver};
use twirl::testing::Harness;
use twirl::{Protocol, Transport};

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// `data` cut at the points `cuts` pick (any number, anywhere, repeats allowed).
fn pieces<'a>(data: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// What a receiver did with a stream: what the handler recorded, what the
/// peer got, whether the connection closed.
#[derive(Debug, PartialEq, Eq)]
struct Run<R> {
    seen: R,
    output: Vec<u8>,
    closed: bool,
}

/// Feeds `pieces` one read each, then half-closes if `eof`.
fn drive<P: Protocol, R>(protocol: P, pieces: &[&[u8]], eof: bool, seen: impl Fn(&P) -> R) -> Run<R> {
    let mut h = Harness::new(protocol);
    h.connect();
    for p in pieces {
        h.feed(p);
    }
    if eof {
        h.feed_eof();
    }
    Run { seen: seen(&h.protocol), output: h.take_output(), closed: h.is_closed() }
}

/// Bytes drawn mostly from `alphabet` (so delimiters are common), sometimes any byte.
fn bytes(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![8 => prop::sample::select(alphabet), 1 => any::<u8>()], 0..max)
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..12)
}

// ---------------------------------------------------------------- lines

/// What a line handler saw, and by which path.
#[derive(Debug, Default, PartialEq, Eq)]
struct LinesSeen {
    lines: Vec<Vec<u8>>,
    too_long: usize,
    borrowed: usize,
    owned: usize,
}

#[derive(Default)]
struct LineRec {
    seen: LinesSeen,
    survive: bool,
}

impl LineHandler for LineRec {
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        self.seen.borrowed += 1;
        self.seen.lines.push(line.to_vec());
        t.send_line(line);
    }
    fn line_received_owned(&mut self, line: Bytes, t: &mut Lines<'_>) {
        self.seen.owned += 1;
        t.send_line(&line);
        self.seen.lines.push(line.into());
    }
    fn line_too_long(&mut self, _: usize, t: &mut Lines<'_>) {
        self.seen.too_long += 1;
        if !self.survive {
            t.lose_connection();
        }
    }
}

fn line_receiver(delimiter: Option<&[u8]>, max: usize, survive: bool, owned: bool) -> LineReceiver<LineRec> {
    let r = LineReceiver::new(LineRec { survive, ..LineRec::default() }).max_line_length(max);
    let r = match delimiter {
        Some(d) => r.delimiter(d),
        None => r,
    };
    if owned { r.owned_frames() } else { r }
}

fn delimiter() -> impl Strategy<Value = Option<&'static [u8]>> {
    prop::sample::select(vec![None, Some(&b"\r\n"[..]), Some(b"\n"), Some(b"<>"), Some(b"\r\n\r\n")])
}

proptest! {
    #![proptest_config(config(256))]

    /// Owned lines are the borrowed lines, under any cuts, whatever the
    /// delimiter and the maximum.
    #[test]
    fn owned_lines_are_borrowed_lines_under_any_cuts(
        data in bytes(b"ab\r\n<>", 200),
        cuts in cuts(),
        delimiter in delimiter(),
        max in 1usize..24,
        survive in any::<bool>(),
        eof in any::<bool>(),
    ) {
        let split = pieces(&data, &cuts);
        let whole = drive(line_receiver(delimiter, max, survive, false), &[&data], eof, |p| p.handler.seen.lines.clone());
        let borrowed = drive(line_receiver(delimiter, max, survive, false), &split, eof, |p| (p.handler.seen.lines.clone(), p.handler.seen.too_long, p.handler.seen.owned));
        let owned = drive(line_receiver(delimiter, max, survive, true), &split, eof, |p| (p.handler.seen.lines.clone(), p.handler.seen.too_long, p.handler.seen.borrowed));
        prop_assert_eq!(&borrowed.seen.0, &whole.seen, "pieces {:?}", split);
        prop_assert_eq!(&owned.seen.0, &borrowed.seen.0, "pieces {:?}", split);
        prop_assert_eq!(owned.seen.1, borrowed.seen.1, "refusals");
        prop_assert_eq!((owned.seen.2, borrowed.seen.2), (0, 0), "each took its own path");
        prop_assert_eq!(&owned.output, &borrowed.output);
        prop_assert_eq!(owned.closed, borrowed.closed);
        prop_assert!(whole.seen.iter().all(|l| l.len() <= max));
    }
}

// ---------------------------------------------------------------- a header, a raw body, lines again

#[derive(Debug, PartialEq, Eq, Clone)]
enum Ev {
    Line(Vec<u8>),
    Body(Vec<u8>),
}

/// `N` on a line announces an N-byte raw body; handed back what it does not use.
#[derive(Default)]
struct Bodies {
    events: Vec<Ev>,
    want: usize,
    body: Vec<u8>,
}

impl LineHandler for Bodies {
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        self.events.push(Ev::Line(line.to_vec()));
        match std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()) {
            Some(0) => self.events.push(Ev::Body(Vec::new())),
            Some(n) => {
                self.want = n;
                t.set_raw_mode();
            }
            None => {}
        }
    }
    fn raw_data_received(&mut self, data: &[u8], t: &mut Lines<'_>) {
        let used = (self.want - self.body.len()).min(data.len());
        self.body.extend_from_slice(&data[..used]);
        if self.body.len() == self.want {
            self.events.push(Ev::Body(std::mem::take(&mut self.body)));
            t.set_line_mode_with(&data[used..]);
        }
    }
}

/// Headers with bodies of any bytes (line endings included), between plain lines.
fn with_bodies() -> impl Strategy<Value = (Vec<u8>, Vec<Ev>)> {
    let item = prop_oneof![
        bytes(b"abc\r", 12).prop_map(|mut l| {
            l.retain(|&b| b != b'\n' && !b.is_ascii_digit());
            (l, None)
        }),
        bytes(b"ab\r\n", 12).prop_map(|body| (body.len().to_string().into_bytes(), Some(body))),
    ];
    prop::collection::vec(item, 0..12).prop_map(|items| {
        let (mut data, mut events) = (Vec::new(), Vec::new());
        for (line, body) in items {
            data.extend_from_slice(&line);
            data.extend_from_slice(b"\r\n");
            events.push(Ev::Line(line));
            if let Some(body) = body {
                data.extend_from_slice(&body);
                events.push(Ev::Body(body));
            }
        }
        (data, events)
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// A raw body of known length between lines, handed back with
    /// `set_line_mode_with`, gives the same events under any cuts.
    #[test]
    fn raw_bodies_between_lines_under_any_cuts((data, events) in with_bodies(), cuts in cuts(), owned in any::<bool>()) {
        let split = pieces(&data, &cuts);
        let r = LineReceiver::new(Bodies::default());
        let r = if owned { r.owned_frames() } else { r };
        let run = drive(r, &split, false, |p| p.handler.events.clone());
        prop_assert_eq!(run.seen, events, "pieces {:?}", split);
    }
}

// ---------------------------------------------------------------- length-prefixed

#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct MsgsSeen {
    messages: Vec<Vec<u8>>,
    too_long: Vec<usize>,
    borrowed: usize,
    owned: usize,
}

/// Records messages; answers an over-long one with an error and carries on.
#[derive(Default)]
struct MsgRec(MsgsSeen);

impl MessageHandler for MsgRec {
    fn message_received(&mut self, msg: &[u8], _: &mut dyn Transport) {
        self.0.borrowed += 1;
        self.0.messages.push(msg.to_vec());
    }
    fn message_received_owned(&mut self, msg: Bytes, _: &mut dyn Transport) {
        self.0.owned += 1;
        self.0.messages.push(msg.into());
    }
    fn message_too_long(&mut self, len: usize, t: &mut dyn Transport) {
        self.0.too_long.push(len);
        t.write(b"too long\n");
    }
}

/// Messages (some over the limit of 30) behind `prefix`, and a garbage tail.
fn framed(prefix: Prefix) -> impl Strategy<Value = Vec<u8>> {
    let msg = prop::collection::vec(any::<u8>(), 0..50);
    (prop::collection::vec(msg, 0..8), prop::collection::vec(any::<u8>(), 0..6)).prop_map(move |(msgs, tail)| {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(&(m.len() as u64).to_be_bytes()[8 - prefix.width()..]);
            out.extend_from_slice(&m);
        }
        out.extend_from_slice(&tail);
        out
    })
}

fn prefix() -> impl Strategy<Value = Prefix> {
    prop::sample::select(vec![Prefix::U8, Prefix::U16, Prefix::U32])
}

proptest! {
    #![proptest_config(config(256))]

    /// Owned messages are the borrowed messages, under any cuts, with
    /// refused (skipped) messages among them.
    #[test]
    fn owned_messages_are_borrowed_messages_under_any_cuts(
        (prefix, data) in prefix().prop_flat_map(|p| (Just(p), framed(p))),
        cuts in cuts(),
    ) {
        let split = pieces(&data, &cuts);
        let make = |owned: bool| {
            let r = PrefixedReceiver::new(MsgRec::default(), prefix).max_message_length(30);
            if owned { r.owned_frames() } else { r }
        };
        let whole = drive(make(false), &[&data], false, |p| p.handler.0.clone());
        let borrowed = drive(make(false), &split, false, |p| p.handler.0.clone());
        let owned = drive(make(true), &split, false, |p| p.handler.0.clone());
        prop_assert_eq!(&borrowed.seen, &whole.seen, "pieces {:?}", split);
        prop_assert_eq!(&owned.seen.messages, &borrowed.seen.messages, "pieces {:?}", split);
        prop_assert_eq!(&owned.seen.too_long, &borrowed.seen.too_long);
        prop_assert_eq!((owned.seen.borrowed, borrowed.seen.owned), (0, 0), "each took its own path");
        prop_assert_eq!(&owned.output, &borrowed.output);
    }
}

// ---------------------------------------------------------------- netstrings

#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct StringsSeen {
    strings: Vec<Vec<u8>>,
    errors: Vec<NetstringError>,
    borrowed: usize,
    owned: usize,
}

#[derive(Default)]
struct StrRec(StringsSeen);

impl NetstringHandler for StrRec {
    fn string_received(&mut self, s: &[u8], _: &mut dyn Transport) {
        self.0.borrowed += 1;
        self.0.strings.push(s.to_vec());
    }
    fn string_received_owned(&mut self, s: Bytes, _: &mut dyn Transport) {
        self.0.owned += 1;
        self.0.strings.push(s.into());
    }
    fn bad_netstring(&mut self, error: &NetstringError, t: &mut dyn Transport) {
        self.0.errors.push(error.clone());
        t.write(format!("error: {error}\n").as_bytes());
    }
}

/// Netstrings (some over the limit of 20), one perhaps corrupted, and a tail.
fn netstrings() -> impl Strategy<Value = Vec<u8>> {
    let s = prop::collection::vec(prop_oneof![4 => Just(b','), 4 => Just(b':'), 8 => any::<u8>()], 0..30);
    (prop::collection::vec(s, 0..8), any::<Index>(), any::<u8>(), any::<bool>(), bytes(b"0123:,", 4)).prop_map(
        |(strings, at, byte, corrupt, tail)| {
            let mut out = Vec::new();
            for s in strings {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(&s);
                out.push(b',');
            }
            if corrupt && !out.is_empty() {
                let i = at.index(out.len());
                out[i] = byte;
            }
            out.extend_from_slice(&tail);
            out
        },
    )
}

proptest! {
    #![proptest_config(config(256))]

    /// Owned strings are the borrowed strings, under any cuts, and an
    /// error is the same error (once, then the close) however the stream is cut.
    #[test]
    fn owned_netstrings_are_borrowed_netstrings_under_any_cuts(data in netstrings(), cuts in cuts(), eof in any::<bool>()) {
        let split = pieces(&data, &cuts);
        let make = |owned: bool| {
            let r = NetstringReceiver::new(StrRec::default()).max_length(20);
            if owned { r.owned_frames() } else { r }
        };
        let whole = drive(make(false), &[&data], eof, |p| p.handler.0.clone());
        let borrowed = drive(make(false), &split, eof, |p| p.handler.0.clone());
        let owned = drive(make(true), &split, eof, |p| p.handler.0.clone());
        prop_assert_eq!(&borrowed.seen, &whole.seen, "pieces {:?}", split);
        prop_assert_eq!(&borrowed.output, &whole.output);
        prop_assert_eq!(borrowed.closed, whole.closed);
        prop_assert_eq!(&owned.seen.strings, &borrowed.seen.strings, "pieces {:?}", split);
        prop_assert_eq!(&owned.seen.errors, &borrowed.seen.errors);
        prop_assert_eq!((owned.seen.borrowed, borrowed.seen.owned), (0, 0), "each took its own path");
        prop_assert_eq!(&owned.output, &borrowed.output);
        prop_assert_eq!(owned.closed, borrowed.closed);
        prop_assert!(whole.seen.errors.len() <= 1);
        prop_assert!(whole.seen.strings.iter().all(|s| s.len() <= 20));
        if !whole.seen.errors.is_empty() {
            prop_assert!(whole.closed, "an error closes");
        }
    }
}
