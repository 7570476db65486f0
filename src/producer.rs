//! Streaming from anything that implements [`Read`] (a file, a pipe, a
//! generator) without loading it: Twisted's `FileSender`, a pull producer.
//!
//! [`ReadSender`] writes a chunk, asks to be told when the connection has
//! handed everything to the socket ([`Transport::notify_drained`]), and
//! writes the next chunk then. The connection never holds more than about
//! one chunk, whatever the size of the source and however slowly the peer
//! reads. Reading the source happens on the loop thread: fine for files and
//! in-memory sources, which do not block for long.
//!
//! # Examples
//!
//! ```
//! use std::io::Cursor;
//! use twirl::producer::{ReadSender, Sent};
//! use twirl::{Protocol, Transport, testing::Harness};
//!
//! /// Sends a megabyte to whoever connects, then closes.
//! struct Download(ReadSender<Cursor<Vec<u8>>>);
//! impl Download {
//!     fn more(&mut self, t: &mut dyn Transport) {
//!         match self.0.send_more(t) {
//!             Ok(Sent::More) => {}
//!             Ok(Sent::Done) | Err(_) => t.lose_connection(),
//!         }
//!     }
//! }
//! impl Protocol for Download {
//!     fn connection_made(&mut self, t: &mut dyn Transport) { self.more(t) }
//!     fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
//!     fn drained(&mut self, t: &mut dyn Transport) { self.more(t) }
//! }
//!
//! let mut h = Harness::new(Download(ReadSender::new(Cursor::new(vec![7u8; 1 << 20]))));
//! h.set_peer_reading(false);
//! h.connect();
//! assert!(h.buffered_len() <= 64 * 1024, "one chunk waits, not the megabyte");
//! h.set_peer_reading(true);
//! assert_eq!(h.take_output().len(), 1 << 20);
//! assert_eq!(h.protocol.0.sent(), 1 << 20);
//! ```

use std::io::{self, Read};

use crate::transport::Transport;

/// How much [`ReadSender`] reads and writes at a time, by default.
pub const DEFAULT_CHUNK: usize = 64 * 1024;

/// Where a [`ReadSender`] stands after [`send_more`](ReadSender::send_more).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A chunk was written; `drained` will be called for the next.
    More,
    /// The source is exhausted and everything was written.
    Done,
}

/// Streams a [`Read`] to a connection, a chunk at a time, as the socket
/// drains (see the [module documentation](self)).
#[derive(Debug)]
pub struct ReadSender<R> {
    source: R,
    chunk: Vec<u8>,
    sent: u64,
    done: bool,
}

impl<R: Read> ReadSender<R> {
    /// A sender of `source` in chunks of [`DEFAULT_CHUNK`] bytes.
    pub fn new(source: R) -> Self {
        Self::with_chunk(source, DEFAULT_CHUNK)
    }

    /// A sender of `source` in chunks of `chunk` bytes (at least one).
    pub fn with_chunk(source: R, chunk: usize) -> Self {
        ReadSender { source, chunk: vec![0; chunk.max(1)], sent: 0, done: false }
    }

    /// Bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Writes the next chunk and asks for `drained`; call it when the
    /// transfer starts and from the protocol's
    /// [`drained`](crate::Protocol::drained). A read error is returned
    /// as it is (the protocol decides: close, or report and close).
    pub fn send_more(&mut self, t: &mut dyn Transport) -> io::Result<Sent> {
        if self.done {
            return Ok(Sent::Done);
        }
        let n = loop {
            match self.source.read(&mut self.chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if n == 0 {
            self.done = true;
            return Ok(Sent::Done);
        }
        t.write(&self.chunk[..n]);
        self.sent += n as u64;
        t.notify_drained();
        Ok(Sent::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;
    use crate::testing::Harness;
    use std::io::Cursor;

    /// Sends its source, then closes.
    struct Download(ReadSender<Cursor<Vec<u8>>>);
    impl Download {
        fn more(&mut self, t: &mut dyn Transport) {
            if !matches!(self.0.send_more(t), Ok(Sent::More)) {
                t.lose_connection();
            }
        }
    }
    impl Protocol for Download {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            self.more(t);
        }
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
        fn drained(&mut self, t: &mut dyn Transport) {
            self.more(t);
        }
    }

    #[test]
    fn a_close_asked_in_the_last_round_of_a_settle_still_happens() {
        // However many pieces, the close after the last one is not lost
        // when it falls on the last of one settle's rounds.
        for pieces in 1..=140 {
            let mut h = Harness::new(Download(ReadSender::with_chunk(Cursor::new(vec![2u8; pieces * 10]), 10)));
            h.connect();
            assert_eq!(h.take_output().len(), pieces * 10);
            assert!(h.is_closed(), "{pieces} pieces: closed after the last");
        }
    }

    #[test]
    fn many_more_pieces_than_one_turn_settles_all_arrive() {
        // Each piece is taken by the socket at once; past the rounds one
        // settle allows, the rest must come on the next turns, not stall.
        let mut h = Harness::new(Download(ReadSender::with_chunk(Cursor::new(vec![1u8; 100_000]), 100)));
        h.connect();
        assert_eq!(h.take_output().len(), 100_000);
        assert_eq!(h.protocol.0.sent(), 100_000);
    }
}
