//! Framing throughput: a stream of lines (or length-prefixed messages) fed
//! to the receiver in chunks of 16, 64 and 1024 bytes, as Twisted's own
//! `LineReceiver` benchmark does; reported in lines (messages) per second.
//!
//! The receiver is driven directly through `Protocol::data_received` with the
//! in-memory `Harness`'s transport: `Harness::feed` copies each chunk into a
//! queue first, which would dominate at 16 bytes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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
}

struct CountMessages(u64);
impl MessageHandler for CountMessages {
    fn message_received(&mut self, msg: &[u8], _: &mut dyn Transport) {
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
    targets = framing
}
criterion_main!(benches);
