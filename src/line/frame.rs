//! What the framers ([`crate::line`], [`crate::prefixed`],
//! [`crate::netstring`]) share: parsing from either the read at hand or
//! their own buffer, and writing a frame's pieces in one call.
//!
//! A framer parses straight from the `&[u8]` given to `data_received` while
//! its buffer is empty (nothing is copied but the unconsumed tail), and from
//! its [`BytesMut`] otherwise. Both are an [`Input`]: frames are taken off
//! the front with [`advance`](Input::advance) (no memmove, so a buffer of
//! many small messages is processed in linear time) or, for a handler that
//! keeps its frames, [`take_frame`](Input::take_frame) (from the buffer, a
//! `split_to(n).freeze()`: no copy).

use bytes::{Buf, Bytes, BytesMut};

use crate::transport::Transport;

/// Bytes waiting to be parsed, consumed from the front.
pub(crate) trait Input {
    /// What is left.
    fn bytes(&self) -> &[u8];
    /// Drops the first `n` bytes (`n` at most what is left).
    fn advance(&mut self, n: usize);
    /// Takes the first `n` bytes as an owned frame.
    fn take_frame(&mut self, n: usize) -> Bytes;
}

/// The read at hand: an owned frame is a copy.
impl Input for &[u8] {
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        self
    }
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        *self = &self[n..];
    }
    fn take_frame(&mut self, n: usize) -> Bytes {
        let frame = Bytes::copy_from_slice(&self[..n]);
        *self = &self[n..];
        frame
    }
}

/// A framer's buffer: an owned frame shares its allocation.
impl Input for BytesMut {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self
    }
    #[inline]
    fn advance(&mut self, n: usize) {
        Buf::advance(self, n);
    }
    #[inline]
    fn take_frame(&mut self, n: usize) -> Bytes {
        self.split_to(n).freeze()
    }
}

/// A buffer this large or larger is dropped once empty rather than kept
/// for the connection's lifetime (one large message must not pin its
/// size in every idle connection).
pub(crate) const KEEP_CAPACITY: usize = 64 * 1024;

/// Releases an empty buffer's memory if it grew past [`KEEP_CAPACITY`].
#[inline]
pub(crate) fn trim(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
        *buf = BytesMut::new();
    }
}

/// Frames up to this size are joined on the stack into one write.
const STACK_JOIN: usize = 256;

/// Frames up to this size are joined into one write even when `always` is
/// false; larger ones are written piece by piece (the payload is not
/// copied once more, and corked writes go out together anyway).
pub(crate) const JOIN_MAX: usize = 4 * 1024;

/// Writes `parts` as one frame: in one `write` call when the frame is at
/// most [`JOIN_MAX`] bytes or `always` is set, else one call per part.
pub(crate) fn write_joined(t: &mut dyn Transport, parts: &[&[u8]], always: bool) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total <= STACK_JOIN {
        let mut buf = [0u8; STACK_JOIN];
        let mut at = 0;
        for p in parts {
            buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        t.write(&buf[..at]);
    } else if always || total <= JOIN_MAX {
        let mut buf = Vec::with_capacity(total);
        for p in parts {
            buf.extend_from_slice(p);
        }
        t.write_bytes(Bytes::from(buf));
    } else {
        for p in parts {
            t.write(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_inputs_take_frames_off_the_front() {
        let data = b"abcdef";
        let mut slice: &[u8] = data;
        let mut buf = BytesMut::from(&data[..]);
        for input in [&mut slice as &mut dyn Input, &mut buf] {
            input.advance(1);
            assert_eq!(input.take_frame(2), Bytes::from_static(b"bc"));
            assert_eq!(input.bytes(), b"def");
        }
    }

    #[test]
    fn an_emptied_buffer_gives_back_large_capacity_only() {
        let mut buf = BytesMut::with_capacity(KEEP_CAPACITY);
        trim(&mut buf);
        assert!(buf.capacity() >= KEEP_CAPACITY, "kept");
        let mut buf = BytesMut::with_capacity(KEEP_CAPACITY + 1);
        buf.extend_from_slice(b"x");
        trim(&mut buf);
        assert!(buf.capacity() > KEEP_CAPACITY, "not empty: kept");
        buf.clear();
        trim(&mut buf);
        assert_eq!(buf.capacity(), 0);
    }
}
