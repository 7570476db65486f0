//! Flow control against real sockets: pause/resume with a peer that stops
//! reading, and the hard cap that aborts a protocol ignoring it.

mod common;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Echo, TIMEOUT, connect, connect_small_rcvbuf, round_trip, spawn_reactor};
use twirl::{Addr, Config, Context, Disconnect, Limits, Protocol, Transport};

const CHUNK: usize = 64 * 1024;

#[derive(Debug, Default)]
struct ProducerState {
    sent: usize,
    pauses: usize,
    resumes: usize,
    /// The most bytes ever buffered right after a write.
    peak_buffered: usize,
    paused: bool,
    lost: Option<String>,
}

/// Writes numbered 64 KiB chunks until paused, resumes when told, and closes
/// after `total` bytes.
///
/// `pause_writing` is delivered when the callback that overfilled the buffer
/// returns, not from inside `write`, so within one callback the producer also
/// watches `writing_paused()`, as a producer must.
struct Producer {
    total: usize,
    state: Arc<Mutex<ProducerState>>,
}

impl Producer {
    fn produce(&mut self, t: &mut dyn Transport) {
        let mut st = self.state.lock().unwrap();
        while !st.paused && st.sent < self.total && !t.writing_paused() {
            let n = CHUNK.min(self.total - st.sent);
            let chunk = chunk_bytes(st.sent, n);
            t.write(&chunk);
            st.sent += n;
            st.peak_buffered = st.peak_buffered.max(t.buffered_len());
        }
        if st.sent == self.total && !t.is_closing() {
            t.lose_connection();
        }
    }
}

/// The stream is made of 64 KiB chunks: chunk `k` starts with `k` as 8
/// little-endian bytes and is filled with the byte `k`, so a lost, repeated
/// or reordered chunk shows up.
fn chunk_bytes(offset: usize, n: usize) -> Vec<u8> {
    assert_eq!(offset % CHUNK, 0);
    expected_chunk(offset / CHUNK)[..n].to_vec()
}

fn expected_chunk(k: usize) -> Vec<u8> {
    let mut c = vec![k as u8; CHUNK];
    c[..8].copy_from_slice(&(k as u64).to_le_bytes());
    c
}

impl Protocol for Producer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.produce(t);
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    fn pause_writing(&mut self, _t: &mut dyn Transport) {
        let mut st = self.state.lock().unwrap();
        st.pauses += 1;
        st.paused = true;
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        {
            let mut st = self.state.lock().unwrap();
            st.resumes += 1;
            st.paused = false;
        }
        self.produce(t);
    }
    fn connection_lost(&mut self, reason: &Disconnect, _cx: &mut dyn Context) {
        self.state.lock().unwrap().lost = Some(reason.to_string());
    }
}

/// Polls shared state until `cond` holds; every poll is bounded by `TIMEOUT` overall.
fn wait_for<T>(state: &Mutex<T>, what: &str, cond: impl Fn(&T) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond(&state.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn pause_and_resume_writing_against_a_slow_peer() {
    const TOTAL: usize = 32 * 1024 * 1024;
    let limits = Limits { high_water: 256 * 1024, low_water: 64 * 1024, hard_cap: 2 * 1024 * 1024 };
    let state = Arc::new(Mutex::new(ProducerState::default()));
    let shared = state.clone();
    let config = Config { limits, ..Default::default() };
    let server = spawn_reactor(config, move |r| {
        let factory = move |_: &Addr| Producer { total: TOTAL, state: shared.clone() };
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), factory).unwrap().addr
    });
    let mut s = connect_small_rcvbuf(server.value);

    // Not reading: the kernel buffers fill, then ours, then the producer is paused.
    wait_for(&state, "pause_writing", |st| st.pauses >= 1);
    // The kernel may still take some bytes after the first pause (and so
    // resume the producer a few times); wait until the producer has been
    // paused with nothing sent for 50 ms. The sleeps observe that nothing
    // happens; they synchronise nothing.
    let deadline = Instant::now() + TIMEOUT;
    let mut last = state.lock().unwrap().sent;
    loop {
        assert!(Instant::now() < deadline, "the producer never settled: {:?}", state.lock().unwrap());
        thread::sleep(Duration::from_millis(50));
        let st = state.lock().unwrap();
        if st.paused && st.sent == last {
            break;
        }
        last = st.sent;
    }
    {
        let st = state.lock().unwrap();
        assert!(st.sent < TOTAL / 2, "the producer stalled far below the total: {st:?}");
        assert!(st.peak_buffered > limits.high_water, "pause came only past the high-water mark: {st:?}");
        assert!(st.peak_buffered <= limits.high_water + CHUNK, "buffer stayed near the high-water mark: {st:?}");
        assert!(st.lost.is_none(), "{st:?}");
    }
    let stats = server.call(|r| r.stats());
    assert!(stats.buffered as usize <= limits.high_water + CHUNK, "reactor-wide buffered bytes bounded: {stats}");

    // Now read everything and check every chunk.
    let mut received = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut expected = expected_chunk(0);
    loop {
        let n = s.read(&mut buf).expect("read (bounded by the read timeout)");
        if n == 0 {
            break;
        }
        assert!(received + n <= TOTAL, "more bytes than sent");
        let mut got = &buf[..n];
        while !got.is_empty() {
            let (k, within) = (received / CHUNK, received % CHUNK);
            if within == 0 {
                expected = expected_chunk(k);
            }
            let take = got.len().min(CHUNK - within);
            assert!(got[..take] == expected[within..within + take], "stream corrupted in chunk {k} at byte {within}");
            got = &got[take..];
            received += take;
        }
    }
    assert_eq!(received, TOTAL);
    // Close our side too, so the server's lingering close ends at once.
    s.shutdown(Shutdown::Write).expect("shutdown write");

    wait_for(&state, "connection_lost", |st| st.lost.is_some());
    let st = state.lock().unwrap();
    assert_eq!(st.sent, TOTAL);
    assert!(st.resumes >= 1, "resume_writing was called: {st:?}");
    assert!(st.pauses >= st.resumes, "{st:?}");
    assert!(st.peak_buffered <= limits.high_water + CHUNK, "{st:?}");
    assert_eq!(st.lost.as_deref(), Some("closed cleanly"));
    drop(st);
    server.stop();
}

/// Ignores flow control: writes up to 64 MiB at once.
struct Flood {
    lost: mpsc::Sender<io::Result<()>>,
}

impl Protocol for Flood {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let chunk = vec![b'x'; CHUNK];
        for _ in 0..1024 {
            if t.is_closing() {
                break;
            }
            t.write(&chunk);
        }
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    fn connection_lost(&mut self, reason: &Disconnect, _cx: &mut dyn Context) {
        let r = match reason {
            Disconnect::HardCap { .. } => Err(reason.to_io_error().expect("an error")),
            other if other.is_clean() => Ok(()),
            other => Err(io::Error::other(format!("ended by something other than the hard cap: {other}"))),
        };
        let _ = self.lost.send(r);
    }
}

#[test]
fn hard_cap_aborts_a_connection() {
    let limits = Limits { high_water: 64 * 1024, low_water: 16 * 1024, hard_cap: 1024 * 1024 };
    let (lost_tx, lost_rx) = mpsc::channel();
    let server = spawn_reactor(Config { limits, ..Default::default() }, move |r| {
        let flood =
            r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| Flood { lost: lost_tx.clone() }).unwrap().addr;
        let echo = r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo).unwrap().addr;
        (flood, echo)
    });
    let (flood_addr, echo_addr) = server.value;

    // This client never reads.
    let hog = connect_small_rcvbuf(flood_addr);
    let reason = lost_rx.recv_timeout(TIMEOUT).expect("connection_lost called");
    let e = reason.expect_err("the flood connection ended with an error");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e}");
    assert!(e.to_string().contains("hard cap"), "message names the hard cap: {e}");
    let stats = server.call(|r| r.stats());
    assert_eq!(stats.cap_aborts, 1, "{stats}");
    assert_eq!(stats.buffered, 0, "the aborted connection's buffer was released: {stats}");

    // The reactor serves others afterwards.
    let msg = b"still here".repeat(1000);
    assert_eq!(round_trip(echo_addr, &msg), msg);
    drop(hog);

    // And the flood listener itself still accepts (and floods) new clients.
    let mut again = connect(flood_addr);
    again.write_all(b"hi").expect("write");
    let e = lost_rx.recv_timeout(TIMEOUT).expect("second connection_lost").expect_err("aborted again");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
    let _ = again.shutdown(Shutdown::Both);
    server.stop();
}
