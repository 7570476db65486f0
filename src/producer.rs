//! Streaming from anything that implements [`Read`] (a file, a pipe, a
//! generator) without loading it: Twisted's `FileSender`, a pull producer.
//! For a file, [`FileSender`] does the same with `sendfile(2)`, the bytes
//! never passing through the process.
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

use std::fs::File;
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

/// Streams part of a file to a connection: [`ReadSender`] for files, with
/// the kernel doing the copy. On a socket each call of
/// [`send_more`](FileSender::send_more) hands the socket as much as it
/// takes now straight from the page cache ([`Transport::send_file`]), so
/// nothing of the file is held in this process at all; under TLS it reads
/// and writes a chunk at a time, as [`ReadSender`] does.
///
/// What the socket holds then are the file's own pages, not copies: a
/// file changed while it is sent may send the changed bytes (as with any
/// server using `sendfile`). One that shrinks ends the transfer with an
/// error.
///
/// # Examples
///
/// ```
/// use std::fs::File;
/// use twirl::producer::{FileSender, Sent};
/// use twirl::{Protocol, Transport, testing::Harness};
///
/// /// Sends a file to whoever connects, then closes.
/// struct Download(FileSender);
/// impl Download {
///     fn more(&mut self, t: &mut dyn Transport) {
///         match self.0.send_more(t) {
///             Ok(Sent::More) => {}
///             Ok(Sent::Done) => t.lose_connection(),
///             Err(_) => t.abort_connection(),
///         }
///     }
/// }
/// impl Protocol for Download {
///     fn connection_made(&mut self, t: &mut dyn Transport) { self.more(t) }
///     fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
///     fn drained(&mut self, t: &mut dyn Transport) { self.more(t) }
/// }
///
/// # let path = std::env::temp_dir().join(format!("twirl-doc-filesender-{}", std::process::id()));
/// std::fs::write(&path, vec![7u8; 1 << 20])?;
/// let file = File::open(&path)?;
/// let mut h = Harness::new(Download(FileSender::new(file, 1000, 200_000)));
/// h.set_peer_reading(false);
/// h.connect();
/// assert_eq!(h.buffered_len(), 0, "nothing of the file waits in memory");
/// h.set_peer_reading(true);
/// assert_eq!(h.take_output().len(), 200_000);
/// assert!(h.is_closed());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileSender {
    file: File,
    offset: u64,
    end: u64,
    sent: u64,
}

impl FileSender {
    /// A sender of `len` bytes of `file` from `offset`.
    pub fn new(file: File, offset: u64, len: u64) -> FileSender {
        FileSender { file, offset, end: offset.saturating_add(len), sent: 0 }
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends what the connection takes now and, unless that was the
    /// last, asks for `drained`; call it when the transfer starts and from
    /// the protocol's [`drained`](crate::Protocol::drained). `Done` once
    /// every byte went. An error (the file cannot be read, or ends early:
    /// `UnexpectedEof`) is returned for the protocol to handle: usually an
    /// abort, since the length it announced cannot be kept.
    pub fn send_more(&mut self, t: &mut dyn Transport) -> io::Result<Sent> {
        if self.offset < self.end {
            let n = t.send_file(&self.file, self.offset, self.end - self.offset)?;
            self.offset += n as u64;
            self.sent += n as u64;
        }
        if self.offset == self.end {
            return Ok(Sent::Done);
        }
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

    /// A file of `len` bytes, each its offset mod 251, removed on drop.
    struct TempFile(std::path::PathBuf);
    impl TempFile {
        fn new(tag: &str, len: usize) -> TempFile {
            let path = std::env::temp_dir().join(format!("twirl-filesender-{tag}-{}", std::process::id()));
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, bytes).expect("temp file");
            TempFile(path)
        }
        fn open(&self) -> File {
            File::open(&self.0).expect("open temp file")
        }
        fn bytes(&self) -> Vec<u8> {
            std::fs::read(&self.0).expect("read temp file")
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Writes `head`, sends its file part, then closes; an error aborts.
    struct Serve {
        head: &'static [u8],
        sender: FileSender,
        error: Option<io::ErrorKind>,
    }
    impl Serve {
        fn more(&mut self, t: &mut dyn Transport) {
            match self.sender.send_more(t) {
                Ok(Sent::More) => {}
                Ok(Sent::Done) => t.lose_connection(),
                Err(e) => {
                    self.error = Some(e.kind());
                    t.abort_connection();
                }
            }
        }
    }
    impl Protocol for Serve {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.write(self.head);
            self.more(t);
        }
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
        fn drained(&mut self, t: &mut dyn Transport) {
            self.more(t);
        }
    }

    #[test]
    fn a_file_part_follows_what_was_written_and_waits_for_a_slow_peer_outside_memory() {
        let file = TempFile::new("part", 300_000);
        let sender = FileSender::new(file.open(), 1000, 250_000);
        let mut h = Harness::new(Serve { head: b"HEAD\r\n", sender, error: None });
        h.set_peer_reading(false);
        h.connect();
        assert_eq!(h.buffered_len(), 6, "only the head waits; none of the file is read into memory");
        let mut out = Vec::new();
        for _ in 0..1000 {
            if h.is_closed() {
                break;
            }
            h.drain(7_777);
            out.extend(h.take_output());
            assert_eq!(h.buffered_len(), 0, "a slow peer makes nothing of the file wait in memory");
        }
        assert!(h.is_closed(), "closed after the last byte");
        assert_eq!(&out[..6], b"HEAD\r\n");
        assert_eq!(out[6..], file.bytes()[1000..251_000], "the part asked for, in order");
        assert_eq!(h.protocol.sender.sent(), 250_000);
        assert_eq!(h.protocol.error, None);
    }

    #[test]
    fn a_fast_download_gives_the_loop_back_every_mebibyte() {
        // A peer that takes everything at once: the file still goes a
        // share per turn, so others connections are served in between.
        let file = TempFile::new("turns", 5 << 20);
        let sender = FileSender::new(file.open(), 0, 5 << 20);
        let mut h = Harness::new(Serve { head: b"", sender, error: None });
        h.connect();
        assert_eq!(h.take_output().len(), 5 << 20);
        assert!(h.is_closed());
        assert!(h.cx.stats().turns >= 4, "{} turns for 5 MiB", h.cx.stats().turns);
    }

    #[test]
    fn a_file_shorter_than_promised_is_an_unexpected_eof() {
        let file = TempFile::new("short", 10_000);
        let sender = FileSender::new(file.open(), 4_000, 50_000);
        let mut h = Harness::new(Serve { head: b"", sender, error: None });
        h.connect();
        assert_eq!(h.take_output(), file.bytes()[4_000..], "what the file has is sent");
        assert_eq!(h.protocol.error, Some(io::ErrorKind::UnexpectedEof));
        assert!(h.is_closed());
    }

    #[test]
    fn an_empty_part_is_done_at_once() {
        let file = TempFile::new("empty", 100);
        let mut h = Harness::new(Serve { head: b"x", sender: FileSender::new(file.open(), 100, 0), error: None });
        h.connect();
        assert_eq!(h.take_output(), b"x");
        assert!(h.is_closed());
        assert_eq!(h.protocol.error, None);
    }
}
