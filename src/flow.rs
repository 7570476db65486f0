//! Write buffering and flow control, shared by real connections and the
//! in-memory test transport so both behave the same.
//!
//! A write first goes straight to the socket; whatever the socket does not
//! take waits in a [`WriteBuf`]. When the buffer passes the high-water mark
//! the protocol is told to `pause_writing`; when it drains below the low-water
//! mark, to `resume_writing`. A protocol that ignores this cannot grow memory
//! without end: past the hard cap the connection is aborted.

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

/// Bytes written but not yet taken by the socket.
#[derive(Debug, Default)]
pub(crate) struct WriteBuf {
    buf: Vec<u8>,
    head: usize,
}

/// Capacity kept after the buffer drains; more is given back so that idle
/// connections cost little memory.
const KEEP_CAPACITY: usize = 4096;

impl WriteBuf {
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(data);
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head >= self.buf.len() {
            self.buf.clear();
            self.head = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
        self.head = 0;
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
        assert_eq!(b.pending(), b"more");
        assert!(!b.would_exceed(96, &limits));
        assert!(b.would_exceed(97, &limits));
    }

    #[test]
    fn drained_buffer_gives_memory_back() {
        let mut b = WriteBuf::default();
        b.push(&vec![0u8; 100_000]);
        b.consume(100_000);
        assert!(b.is_empty());
        assert_eq!(b.buf.capacity(), 0);
    }

    #[test]
    fn push_after_partial_consume_keeps_order() {
        let mut b = WriteBuf::default();
        b.push(b"abcdef");
        b.consume(4);
        b.push(b"gh");
        assert_eq!(b.pending(), b"efgh");
    }
}
