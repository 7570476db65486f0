//! Write buffering and flow control, shared by real connections and the
//! in-memory test transport so both behave the same.
//!
//! A write first goes straight to the socket; whatever the socket does not
//! take waits in a [`WriteBuf`]. When the buffer passes the high-water mark
//! the protocol is told to `pause_writing`; when it drains below the low-water
//! mark, to `resume_writing`. A protocol that ignores this cannot grow memory
//! without end: past the hard cap the connection is aborted.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::transport::ConnId;

/// Per-connection buffer limits (documented defaults in [`Limits::default`]).
///
/// # Examples
///
/// ```
/// let limits = twirl::Limits { hard_cap: 1 << 20, ..Default::default() };
/// assert_eq!(limits.high_water, 64 * 1024);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Buffered bytes above which `pause_writing` is called. Default 64 KiB.
    pub high_water: usize,
    /// Buffered bytes below which `resume_writing` is called. Default 16 KiB.
    pub low_water: usize,
    /// Buffered bytes past which the connection is aborted. Default 64 MiB:
    /// enough for the handouts' deadlock client, which sends 16,000,000 bytes
    /// before reading any, against a server that echoes everything.
    pub hard_cap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { high_water: 64 * 1024, low_water: 16 * 1024, hard_cap: 64 * 1024 * 1024 }
    }
}

/// What the protocol must be told after the buffer changed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Pause,
    Resume,
}

/// What a protocol wrote: bytes it lent (copied if they must wait) or
/// bytes it gave (queued as they are).
pub(crate) enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(Bytes),
}

impl Payload<'_> {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(b) => b,
        }
    }
}

/// The loop's one cork: the small writes of the callback running now,
/// which leave together when it returns (see the connection machine).
/// Shared by every connection, since one callback runs at a time: corking
/// costs a copy into warm memory and no allocation. A callback that runs
/// inside another's (`with_conn`) finds it held and corks in its own queue.
#[derive(Debug, Default)]
pub(crate) struct Cork {
    buf: Vec<u8>,
    owner: Option<ConnId>,
}

/// The most a cork holds before it is sent, full, with the next write.
const CORK_MAX: usize = 64 * 1024;

impl Cork {
    pub(crate) fn is_free_for(&self, id: ConnId) -> bool {
        self.owner.is_none_or(|o| o == id)
    }

    pub(crate) fn is_held_by(&self, id: ConnId) -> bool {
        self.owner == Some(id)
    }

    pub(crate) fn has_room_for(&self, len: usize) -> bool {
        self.buf.len() + len <= CORK_MAX
    }

    pub(crate) fn hold(&mut self, id: ConnId, data: &[u8]) {
        self.owner = Some(id);
        self.buf.extend_from_slice(data);
    }

    /// Takes what it holds (to send), leaving the owner as it is.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Returns the buffer [`take`](Self::take) lent, emptied, to be reused.
    pub(crate) fn give_back(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() <= 2 * CORK_MAX && buf.capacity() > self.buf.capacity() {
            self.buf = buf;
        }
    }

    pub(crate) fn release(&mut self) {
        self.buf.clear();
        self.owner = None;
    }
}

/// Bytes written but not yet taken by the socket: a queue of [`Bytes`].
///
/// Small writes (the protocol's `&[u8]`, which must be copied anyway) are
/// coalesced into a [`BytesMut`] tail, so a burst of them is a few large
/// pieces; owned writes ([`Bytes`], perhaps shared with other connections)
/// are queued as they are, without a copy. Sending takes a prefix of the
/// queue in one vectored write; a sent piece is released, never moved.
///
/// An empty buffer owns nothing (one null pointer): an idle connection pays
/// for no queue, and a drained queue is given back at once.
#[derive(Debug, Default)]
pub(crate) struct WriteBuf {
    queue: Option<Box<Queue>>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Frozen pieces, oldest first; the front one may be partly sent.
    chunks: VecDeque<Bytes>,
    /// Coalesced small writes, after every chunk.
    tail: BytesMut,
    /// Bytes in `chunks` and `tail`.
    len: usize,
}

/// A tail this long is frozen into a chunk before more is appended, so
/// that growing it never copies more than this again.
const TAIL_MAX: usize = 64 * 1024;

/// At most this many pieces go into one vectored write.
pub(crate) const MAX_IOVECS: usize = 32;

impl WriteBuf {
    pub(crate) fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_none()
    }

    fn queue(&mut self) -> &mut Queue {
        self.queue.get_or_insert_with(Box::default)
    }

    /// Queues a copy of `data` (coalesced with the small writes before it).
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let q = self.queue();
        if !q.tail.is_empty() && q.tail.len() + data.len() > TAIL_MAX {
            let full = q.tail.split().freeze();
            q.chunks.push_back(full);
        }
        q.tail.extend_from_slice(data);
        q.len += data.len();
    }

    /// Queues `data` itself, without a copy.
    pub(crate) fn push_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let q = self.queue();
        if !q.tail.is_empty() {
            let small = q.tail.split().freeze();
            q.chunks.push_back(small);
        }
        q.len += data.len();
        if q.chunks.capacity() == 0 {
            // Often the only piece (the rest of a shared message the
            // socket took part of): room for one, not the default four.
            q.chunks.reserve_exact(1);
        }
        q.chunks.push_back(data);
    }

    /// Fills `out` with the first pieces of the queue, then `after` (what
    /// was corked, and a write joining it), at most `budget` bytes in all,
    /// and returns how many it filled.
    pub(crate) fn slices<'a>(&'a self, budget: usize, after: [&'a [u8]; 2], out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut room = budget;
        let (chunks, tail) = match &self.queue {
            Some(q) => (Some(q.chunks.iter().map(|c| &c[..])), &q.tail[..]),
            None => (None, &[][..]),
        };
        let pieces = chunks.into_iter().flatten().chain([tail, after[0], after[1]]);
        for piece in pieces {
            if n == out.len() || room == 0 {
                break;
            }
            if piece.is_empty() {
                continue;
            }
            let take = piece.len().min(room);
            out[n] = IoSlice::new(&piece[..take]);
            n += 1;
            room -= take;
        }
        n
    }

    /// Drops the first `n` bytes, which were sent.
    pub(crate) fn consume(&mut self, mut n: usize) {
        let Some(q) = &mut self.queue else { return };
        n = n.min(q.len);
        q.len -= n;
        for _ in 0..q.chunks.len() {
            let Some(front) = q.chunks.front_mut() else { break };
            if n < front.len() {
                front.advance(n);
                n = 0;
                break;
            }
            n -= front.len();
            q.chunks.pop_front();
        }
        if n > 0 {
            q.tail.advance(n);
        }
        if q.len == 0 {
            self.queue = None;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.queue = None;
    }

    /// True if adding `extra` bytes would pass the hard cap.
    pub(crate) fn would_exceed(&self, extra: usize, limits: &Limits) -> bool {
        self.len().saturating_add(extra) > limits.hard_cap
    }

    /// Compares the level with the water marks and says whether the producer
    /// must now be paused or resumed; `paused` says whether it has been told
    /// to pause and not yet to resume (kept by the caller, where a flag
    /// costs no padding).
    pub(crate) fn flow(&self, limits: &Limits, paused: &mut bool) -> Option<Flow> {
        let len = self.len();
        if !*paused && len > limits.high_water {
            *paused = true;
            Some(Flow::Pause)
        } else if *paused && len <= limits.low_water {
            *paused = false;
            Some(Flow::Resume)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(b: &WriteBuf) -> Vec<u8> {
        let mut out = [IoSlice::new(&[]); 256];
        let n = b.slices(usize::MAX, [&[], &[]], &mut out);
        out[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn water_marks_pause_once_and_resume_once() {
        let limits = Limits { high_water: 10, low_water: 4, hard_cap: 100 };
        let mut b = WriteBuf::default();
        let mut paused = false;
        b.push(b"0123456789");
        assert_eq!(b.flow(&limits, &mut paused), None, "at the mark is not past it");
        b.push(b"x");
        assert_eq!(b.flow(&limits, &mut paused), Some(Flow::Pause));
        b.push(b"more");
        assert_eq!(b.flow(&limits, &mut paused), None);
        b.consume(10);
        assert_eq!(b.len(), 5);
        assert_eq!(b.flow(&limits, &mut paused), None);
        b.consume(1);
        assert_eq!(b.flow(&limits, &mut paused), Some(Flow::Resume));
        assert_eq!(pending(&b), b"more");
        assert!(!b.would_exceed(96, &limits));
        assert!(b.would_exceed(97, &limits));
    }

    #[test]
    fn drained_buffer_gives_memory_back() {
        let mut b = WriteBuf::default();
        b.push(&vec![0u8; 100_000]);
        b.push_bytes(Bytes::from_static(b"shared"));
        b.consume(100_006);
        assert!(b.is_empty());
        assert!(b.queue.is_none());
    }

    #[test]
    fn copies_and_owned_pieces_keep_their_order() {
        let mut b = WriteBuf::default();
        b.push(b"ab");
        b.push(b"cd");
        let shared = Bytes::from(b"EFGH".to_vec());
        b.push_bytes(shared.clone());
        b.push(b"ij");
        assert_eq!(pending(&b), b"abcdEFGHij");
        b.consume(5);
        assert_eq!(pending(&b), b"FGHij");
        b.push_bytes(shared);
        assert_eq!(pending(&b), b"FGHijEFGH");
        assert_eq!(b.len(), 9);
    }

    #[test]
    fn slices_stop_at_the_budget_and_add_the_extra_piece_last() {
        let mut b = WriteBuf::default();
        b.push(b"head");
        b.push_bytes(Bytes::from_static(b"body"));
        let mut out = [IoSlice::new(&[]); 4];
        let n = b.slices(6, [b"!", b"?"], &mut out);
        let got: Vec<&[u8]> = out[..n].iter().map(|s| &s[..]).collect();
        assert_eq!(got, [&b"head"[..], &b"bo"[..]]);
        let n = b.slices(100, [b"!", b"?"], &mut out);
        let got: Vec<&[u8]> = out[..n].iter().map(|s| &s[..]).collect();
        assert_eq!(got, [&b"head"[..], &b"body"[..], &b"!"[..], &b"?"[..]]);
        let empty = WriteBuf::default();
        assert_eq!(empty.slices(3, [b"tail", b""], &mut out), 1);
        assert_eq!(&out[0][..], b"tai");
    }

    #[test]
    fn a_long_run_of_small_writes_becomes_a_few_large_pieces() {
        let mut b = WriteBuf::default();
        for _ in 0..100_000 {
            b.push(b"0123456789");
        }
        let q = b.queue.as_ref().expect("queued");
        assert_eq!(q.len, 1_000_000);
        assert!(q.chunks.len() <= 1_000_000 / TAIL_MAX + 1, "{} pieces", q.chunks.len());
    }
}
