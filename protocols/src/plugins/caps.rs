//! `caps`: the server of seed 002's deadlock lab (`tcp_deadlock.py`).
//!
//! The lab's server reads 1024 bytes, uppercases them and `sendall`s them
//! back; its client sends N bytes before reading any. With a small N all is
//! well. With N = 16,000,000 both freeze: the client blocks in `send`
//! because the server stopped reading, and the server stopped reading
//! because it is blocked in `sendall` to a client that is not reading yet.
//! Each waits for the other, and the kernel buffers between them are full.
//!
//! twirl never blocks in a send. Every byte received is uppercased and
//! written at once; whatever the kernel will not take is kept in the
//! connection's write buffer, and reading goes on. So the client's 16 MB
//! all get read, the echo piles up in the buffer (up to about 16 MB less
//! what the kernel buffers hold), and it drains as soon as the client starts
//! reading. That memory is the price of not deadlocking, and it is bounded:
//! past the buffer's hard cap (64 MiB by default, `twirl::Limits`) the
//! connection is aborted with a logged reason, and past the reactor's memory
//! budget the connections holding the most are. `pause_writing` is called
//! at the high-water mark (64 KiB) but `caps` deliberately keeps reading: it
//! turns off the backpressure every other plugin has (which stops reading a
//! connection whose output waits above the mark), because against this
//! client that is exactly what deadlocks the blocking server. Backpressure
//! bounds memory and deadlocks against a client that sends everything
//! before it reads; buffering avoids the deadlock at a memory price.
//!
//! ```text
//! $ twirl client caps tcp:127.0.0.1:7108 hello world
//! HELLO WORLD
//! $ twirl client caps tcp:127.0.0.1:7108 --bytes 16000000
//! sent 16000000 bytes, received 16000000 bytes, all uppercased
//! ```

use std::io;
use std::time::Duration;

use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, Context, Disconnect, OneShot, Outcome, Protocol, Reactor, Transport};

use crate::client_args::ClientFlag;
use crate::exchange::{REPLY_TIMEOUT, connect_stream, print_reply, stream_exchange, stream_stdin, wait};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};

/// Uppercases the stream, byte by byte, with no framing.
pub struct Caps;

impl Protocol for Caps {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Keep reading while the echo waits: the lab's client reads nothing
        // until it has sent everything.
        t.set_backpressure(false);
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let mut buf = [0u8; 4096];
        for chunk in data.chunks(buf.len()) {
            let out = &mut buf[..chunk.len()];
            out.copy_from_slice(chunk);
            out.make_ascii_uppercase();
            t.write(out);
        }
    }
}

/// The lab client's 16-byte message, repeated to make up the transfer.
pub const MESSAGE: &[u8; 16] = b"capitalize this!";

/// Writes [`MESSAGE`] bytes while the transport is below its high-water
/// mark, until `total` have been queued (`queued` counts them); then
/// half-closes, once. The producer side of every client of this lab.
pub fn produce(queued: &mut u64, total: u64, t: &mut dyn Transport) {
    if *queued >= total {
        return;
    }
    let block = MESSAGE.repeat(1024);
    while *queued < total && !t.writing_paused() {
        let n = (block.len() as u64).min(total - *queued) as usize;
        t.write(&block[..n]);
        *queued += n as u64;
    }
    if *queued == total {
        t.shutdown_write();
    }
}

/// Checks that `data`, found at offset `pos` of a reply, is the uppercased
/// message.
pub fn check_uppercased(pos: u64, data: &[u8]) -> io::Result<()> {
    for (i, b) in data.iter().enumerate() {
        let at = pos + i as u64;
        if *b != MESSAGE[(at % 16) as usize].to_ascii_uppercase() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("byte {at} of the reply is wrong")));
        }
    }
    Ok(())
}

/// Sends `total` bytes of [`MESSAGE`] while reading the reply concurrently
/// (what the lab's client does not do), and checks every byte.
struct Flood {
    total: u64,
    sent: u64,
    received: u64,
    bad: Option<io::Error>,
    outcome: Outcome<io::Result<Vec<u8>>>,
}

impl Protocol for Flood {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Read the replies while the request waits to be sent: stopping
        // reading when our own output backs up is the lab's deadlock.
        t.set_backpressure(false);
        produce(&mut self.sent, self.total, t);
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        produce(&mut self.sent, self.total, t);
    }
    fn data_received(&mut self, data: &[u8], _: &mut dyn Transport) {
        if self.bad.is_none() {
            self.bad = check_uppercased(self.received, data).err();
        }
        self.received += data.len() as u64;
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        let summary = match self.bad.take() {
            _ if !reason.is_clean() && self.received < self.total => {
                Err(io::Error::other(format!("after {} bytes received: {reason}", self.received)))
            }
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None if self.received != self.total => {
                Err(io::Error::other(format!("sent {} bytes but received {}", self.sent, self.received)))
            }
            None => {
                Ok(format!("sent {} bytes, received {} bytes, all uppercased", self.sent, self.received).into_bytes())
            }
        };
        self.outcome.set(summary);
    }
}

/// `twirl client caps ENDPOINT [TEXT...]` prints the text uppercased (stdin
/// when no text); `twirl client caps ENDPOINT --bytes N` is the lab's
/// experiment done without deadlock: N bytes sent while reading the reply.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if args.first().map(String::as_str) == Some("--bytes") {
        let total: u64 = match args.get(1).map(|n| n.parse()) {
            Some(Ok(n)) if args.len() == 2 => n,
            _ => return Err(ClientError::usage("--bytes takes one whole number of bytes")),
        };
        let outcome = Outcome::new();
        let mut reactor = Reactor::new().map_err(|e| ClientError::runtime(endpoint, e))?;
        let o = outcome.clone();
        let flood = move |_: &Addr| Flood { total, sent: 0, received: 0, bad: None, outcome: o };
        connect_stream(&mut reactor, endpoint, OneShot::new(outcome.clone(), flood))?;
        let timeout = REPLY_TIMEOUT + Duration::from_secs(total / 10_000_000);
        return print_reply(&wait(&mut reactor, endpoint, &outcome, timeout)?);
    }
    // After `--`, every word is text, even `--bytes`.
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    if args.is_empty() {
        // Any amount, streamed both ways with flow control.
        return stream_stdin(endpoint).map(|_| ());
    }
    let request = args.join(" ").into_bytes();
    print_reply(&stream_exchange(endpoint, &request, REPLY_TIMEOUT)?)
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "caps",
    summary: "uppercases the byte stream at once, never deadlocking (seed 002 tcp_deadlock)",
    lab: "seed 002 tcp_deadlock",
    defaults: &["tcp:7108"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| Caps)),
    datagram: None,
    client: Some(client),
    client_flags: &[ClientFlag {
        name: "--bytes",
        value: Some("N"),
        help: "send N bytes while reading the reply (the lab's deadlock experiment, done without deadlock)",
    }],
    samples: &[Sample {
        via: Via::Stream,
        request: b"capitalize this!\xff",
        answer: Answer::Exact(b"CAPITALIZE THIS!\xff"),
    }],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::testing::Harness;

    #[test]
    fn uppercases_ascii_and_passes_other_bytes() {
        let mut h = Harness::new(Caps);
        h.connect();
        h.feed(b"capitalize this!");
        h.feed(b"\xc3\xa9\xff\x00z");
        assert_eq!(h.take_output(), b"CAPITALIZE THIS!\xc3\xa9\xff\x00Z");
    }

    #[test]
    fn keeps_reading_while_the_peer_does_not_read() {
        let mut h = Harness::new(Caps);
        h.connect();
        h.set_peer_reading(false);
        for _ in 0..1000 {
            h.feed(&[b'a'; 1000]);
        }
        assert!(!h.is_reading_paused(), "caps must not stop reading: that is the deadlock");
        assert_eq!(h.buffered_len(), 1_000_000);
        h.set_peer_reading(true);
        let out = h.take_output();
        assert_eq!(out.len(), 1_000_000);
        assert!(out.iter().all(|&b| b == b'A'));
    }
}
