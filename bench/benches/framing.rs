//! Framing throughput: a stream of lines (or length-prefixed messages) fed
//! to the receiver in chunks of 16, 64 and 1024 bytes, as Twisted's own
//! `LineReceiver` benchmark does; reported in lines (messages) per second.
//!
//! The chunked groups feed the receiver with `Harness::feed`, which copies
//! each chunk into the in-memory pipe first (the same cost for every
//! receiver).
//!
//! The group "many small messages in one read" hands the receiver one read
//! of R bytes (1 KiB to 1 MiB) full of 16-byte messages, through
//! `Protocol::data_received` itself on the `Harness`'s transport (no copy
//! of the read), and reports messages per second: the time per message must
//! stay flat from 1 KiB to 1 MiB, that is the total must be linear in R. The
//! line receiver delivers at most `LINES_PER_TURN` lines per turn and then
//! yields (pauses reading, sets a zero-delay timer); the harness fires that
//! timer as the reactor would, next turn, so one iteration is every turn the
//! read takes. Each receiver is timed with a read of whole messages
//! (`aligned`: its buffer stays empty, it parses the read itself), a read
//! that starts and ends mid-message (`mid-message`: through its buffer), and
//! with owned frames (`owned`: `Bytes` split off its buffer, mid-message).

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use twirl::bytes::Bytes;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::prefixed::{MessageHandler, Prefix, PrefixedReceiver};
use twirl::testing::Harness;
use twirl::{Protocol, Transport};

struct CountLines(u64);
impl LineHandler for CountLines {
    fn line_received(&mut self, line: &[u8], _: &mut Lines<'_>) {
        black_box(line);
        self.0 += 1;
    }
    fn line_received_owned(&mut self, line: Bytes, _: &mut Lines<'_>) {
        black_box(line);
        self.0 += 1;
    }
}

struct CountMessages(u64);
impl MessageHandler for CountMessages {
    fn message_received(&mut self, msg: &[u8], _: &mut dyn Transport) {
        black_box(msg);
        self.0 += 1;
    }
    fn message_received_owned(&mut self, msg: Bytes, _: &mut dyn Transport) {
        black_box(msg);
        self.0 += 1;
    }
}

/// Lines of 0 to 79 bytes (CRLF-terminated every third one), about 256 KiB.
fn line_stream() -> (Vec<u8>, u64) {
    let mut s = Vec::new();
    let mut n = 0;
    let mut x = 12345u32;
    while s.len() < 256 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = (x >> 16) as usize % 80;
        s.extend((0..len).map(|i| b'a' + (i % 26) as u8));
        s.extend_from_slice(if n % 3 == 0 { b"\r\n" } else { b"\n" });
        n += 1;
    }
    (s, n)
}

/// Messages of 0 to 79 bytes behind a 32-bit length, about 256 KiB.
fn prefixed_stream() -> (Vec<u8>, u64) {
    let mut s = Vec::new();
    let mut n = 0;
    let mut x = 54321u32;
    while s.len() < 256 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = (x >> 16) as usize % 80;
        s.extend_from_slice(&(len as u32).to_be_bytes());
        s.extend((0..len).map(|i| (i % 251) as u8));
        n += 1;
    }
    (s, n)
}

fn feed<P: Protocol>(h: &mut Harness<P>, data: &[u8], chunk: usize) {
    for c in data.chunks(chunk) {
        h.feed(c);
    }
}

/// A protocol shared between the harness (which fires its timers) and the
/// benchmark (which calls its `data_received` with the harness's transport).
struct Shared<P>(Rc<RefCell<P>>);

impl<P: Protocol> Protocol for Shared<P> {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.0.borrow_mut().connection_made(t);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        self.0.borrow_mut().data_received(data, t);
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.0.borrow_mut().read_eof(t);
    }
    fn pause_writing(&mut self, t: &mut dyn Transport) {
        self.0.borrow_mut().pause_writing(t);
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.0.borrow_mut().resume_writing(t);
    }
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        self.0.borrow_mut().timer_fired(tag, t);
    }
}

/// Read sizes of the "many small messages" group.
const READS: [usize; 4] = [1024, 16 * 1024, 256 * 1024, 1024 * 1024];

/// 16-byte lines (15 bytes and `\n`), `n` of them.
fn small_lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("line {i:010}\n").into_bytes()).collect()
}

/// 16-byte messages (a 32-bit length and 12 bytes), `n` of them.
fn small_messages(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| [&12u32.to_be_bytes()[..], format!("msg {i:08}").as_bytes()].concat()).collect()
}

/// How a "many small messages" read meets the receiver.
#[derive(Clone, Copy, PartialEq)]
enum Case {
    /// The read holds whole messages: the receiver's buffer is empty (its fast path).
    Aligned,
    /// The read starts with the last 8 bytes of a message and ends with the
    /// first 8 of the next, as a read in the middle of a stream does (the
    /// receiver's buffered path).
    MidMessage,
    /// Mid-message, frames handed over owned.
    Owned,
}

const CASES: [Case; 3] = [Case::Aligned, Case::MidMessage, Case::Owned];

/// Times one `data_received` of `size` bytes of 16-byte messages (and the
/// turns it takes) on a harnessed `protocol`, checking that `count` saw
/// every message.
fn one_read<P: Protocol>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    size: usize,
    case: Case,
    stream: fn(usize) -> Vec<u8>,
    protocol: P,
    count: impl Fn(&P) -> u64,
) {
    let all = stream(size / 16 + 1);
    let (lead, read) = if case == Case::Aligned { (&all[..0], &all[..size]) } else { (&all[..8], &all[8..size + 8]) };
    let shared = Rc::new(RefCell::new(protocol));
    let mut h = Harness::new(Shared(shared.clone()));
    h.connect();
    h.feed(lead);
    let mut reads = 0;
    let name = match case {
        Case::Aligned => "aligned",
        Case::MidMessage => "mid-message",
        Case::Owned => "owned",
    };
    let id = BenchmarkId::new(name, size);
    g.bench_with_input(id, &size, |b, _| {
        b.iter(|| {
            let p = shared.clone();
            h.with_transport(|t| p.borrow_mut().data_received(read, t));
            reads += 1;
        })
    });
    assert_eq!(count(&shared.borrow()), reads * (size as u64 / 16), "every message delivered");
}

fn many_small(c: &mut Criterion) {
    let mut g = c.benchmark_group("many small messages in one read/lines");
    for case in CASES {
        for size in READS {
            g.throughput(Throughput::Elements(size as u64 / 16));
            let r = LineReceiver::new(CountLines(0));
            let r = if case == Case::Owned { r.owned_frames() } else { r };
            one_read(&mut g, size, case, small_lines, r, |p| p.handler.0);
        }
    }
    g.finish();
    let mut g = c.benchmark_group("many small messages in one read/prefixed_u32");
    for case in CASES {
        for size in READS {
            g.throughput(Throughput::Elements(size as u64 / 16));
            let p = PrefixedReceiver::new(CountMessages(0), Prefix::U32);
            let p = if case == Case::Owned { p.owned_frames() } else { p };
            one_read(&mut g, size, case, small_messages, p, |p| p.handler.0);
        }
    }
    g.finish();
}

fn framing(c: &mut Criterion) {
    let (lines, nlines) = line_stream();
    let mut g = c.benchmark_group("line_receiver");
    g.throughput(Throughput::Elements(nlines));
    for chunk in [16, 64, 1024] {
        g.bench_with_input(BenchmarkId::from_parameter(chunk), &chunk, |b, &chunk| {
            let mut h = Harness::new(LineReceiver::new(CountLines(0)));
            h.connect();
            b.iter(|| feed(&mut h, &lines, chunk));
            assert!(h.protocol.handler.0 >= nlines);
        });
    }
    g.finish();

    let (msgs, nmsgs) = prefixed_stream();
    let mut g = c.benchmark_group("prefixed_receiver_u32");
    g.throughput(Throughput::Elements(nmsgs));
    for chunk in [16, 64, 1024] {
        g.bench_with_input(BenchmarkId::from_parameter(chunk), &chunk, |b, &chunk| {
            let mut h = Harness::new(PrefixedReceiver::new(CountMessages(0), Prefix::U32));
            h.connect();
            b.iter(|| feed(&mut h, &msgs, chunk));
            assert!(h.protocol.handler.0 >= nmsgs);
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = framing, many_small
}
criterion_main!(benches);
