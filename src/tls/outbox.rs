//! Where records wait between being sealed and being written: thread-wide
//! buffers, placed within their page, that sessions seal into in turn.
//!
//! Outside a batch each record is written as soon as it is sealed. While a
//! layer hands a read's plaintext to its protocol it opens a batch, and the
//! records its protocol's writes make wait and leave together, up to
//! [`BATCH_SEND`] bytes at a time: an echo of a 64 KiB read is one system
//! call and one segment instead of four. The batch has a buffer of its own,
//! so that what the protocol writes to other connections meanwhile (a chat
//! message to everyone) still seals into the thread's other buffer without
//! allocating.

use std::cell::Cell;
use std::thread::LocalKey;

use super::page::{KEEP_BELOW, PAGE, page_window};
use crate::transport::Transport;

/// Where in a 4 KiB page the buffer's records start. glibc copies 16 KiB
/// with `rep movsb`, which on AMD Zen runs ~25x slower when the
/// destination is 1 to 15 bytes past the source, modulo 4 KiB (glibc bug
/// 30994). rustls copies the plaintext to 5 bytes past a record's start;
/// from the layer's plaintext buffer (at
/// [`PLAIN_PAGE_OFFSET`](super::page::PLAIN_PAGE_OFFSET)) that is 2021
/// bytes on.
const OUT_PAGE_OFFSET: usize = 0;

/// A batch is written once it holds this much.
pub(crate) const BATCH_SEND: usize = 64 * 1024;

thread_local! {
    /// The buffer records are sealed into outside a batch.
    static OUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The buffer a batch's records wait in.
    static BATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Sealed records not yet written, in one of the thread's buffers (lent).
pub(crate) struct Outbox {
    buf: Vec<u8>,
    waiting: usize,
    home: &'static LocalKey<Cell<Vec<u8>>>,
}

impl Outbox {
    /// Borrows the thread's buffer (another one if it is lent already).
    pub fn take() -> Outbox {
        Outbox { buf: OUT.with(Cell::take), waiting: 0, home: &OUT }
    }

    /// Borrows the thread's batch buffer, grown at once to hold a full
    /// batch and one more piece, so that it never grows (and moves) under
    /// the records waiting in it.
    pub fn take_for_batch(piece: usize) -> Outbox {
        let mut out = Outbox { buf: BATCH.with(Cell::take), waiting: 0, home: &BATCH };
        page_window(&mut out.buf, BATCH_SEND + piece, OUT_PAGE_OFFSET);
        out
    }

    /// Room for `len` bytes after those waiting. What waits is written
    /// first if the buffer would have to grow (and move) to give it.
    pub fn room(&mut self, t: &mut dyn Transport, len: usize) -> &mut [u8] {
        if self.waiting > 0 && self.buf.len() < self.waiting + len + PAGE {
            self.flush(t);
        }
        let waiting = self.waiting;
        &mut page_window(&mut self.buf, waiting + len, OUT_PAGE_OFFSET)[waiting..]
    }

    /// `n` bytes were sealed into the last room: in a batch they wait
    /// (until the batch holds [`BATCH_SEND`]), else they are written now.
    pub fn sealed(&mut self, t: &mut dyn Transport, n: usize, batch: bool) {
        self.waiting += n;
        if !batch || self.waiting >= BATCH_SEND {
            self.flush(t);
        }
    }

    /// Writes what waits.
    pub fn flush(&mut self, t: &mut dyn Transport) {
        let waiting = std::mem::take(&mut self.waiting);
        if waiting > 0 {
            t.write(&page_window(&mut self.buf, waiting, OUT_PAGE_OFFSET)[..waiting]);
        }
    }

    /// How many bytes wait.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Writes what waits and gives the buffer back to the thread, unless
    /// it grew too large to keep.
    pub fn give_back(mut self, t: &mut dyn Transport) {
        self.flush(t);
        if self.buf.capacity() < KEEP_BELOW {
            self.home.with(|c| c.set(self.buf));
        }
    }
}

/// Drops the thread's buffers, as if nothing had been sealed on this
/// thread yet (a test's client and server share one thread, and buffers).
#[cfg(test)]
pub(crate) fn drop_thread_buffers() {
    OUT.with(Cell::take);
    BATCH.with(Cell::take);
}
