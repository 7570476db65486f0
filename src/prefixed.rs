//! Length-prefixed framing (Twisted's `Int16StringReceiver`/`Int32StringReceiver`):
//! each message is a big-endian length followed by that many bytes.
//!
//! The length is checked against a maximum before anything is buffered, so a
//! hostile prefix cannot make the receiver allocate more than it has received.
//!
//! # Examples
//!
//! ```
//! use twirl::prefixed::{MessageHandler, Prefix, PrefixedReceiver, send_message};
//! use twirl::{Transport, testing::Harness};
//!
//! /// Sends every message back.
//! struct Echo;
//! impl MessageHandler for Echo {
//!     fn message_received(&mut self, msg: &[u8], t: &mut dyn Transport) {
//!         send_message(t, Prefix::U16, msg);
//!     }
//! }
//!
//! let mut h = Harness::new(PrefixedReceiver::new(Echo, Prefix::U16));
//! h.connect();
//! h.feed(&[0, 2, b'h']);
//! h.feed(&[b'i', 0]);
//! assert_eq!(h.take_output(), [0, 2, b'h', b'i']);
//! ```

use crate::protocol::Protocol;
use crate::transport::{Context, Disconnect, Transport};

/// The width of the big-endian length prefix.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// Two bytes: messages up to 65,535 bytes.
    U16,
    /// Four bytes.
    U32,
}

impl Prefix {
    /// Bytes in the prefix.
    pub fn width(self) -> usize {
        match self {
            Prefix::U16 => 2,
            Prefix::U32 => 4,
        }
    }

    fn decode(self, b: &[u8]) -> usize {
        match self {
            Prefix::U16 => usize::from(u16::from_be_bytes([b[0], b[1]])),
            Prefix::U32 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
        }
    }
}

/// Default maximum message length: 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// Writes `msg` with its length prefix; false (nothing written) if it does
/// not fit the prefix.
pub fn send_message(t: &mut dyn Transport, prefix: Prefix, msg: &[u8]) -> bool {
    match prefix {
        Prefix::U16 => match u16::try_from(msg.len()) {
            Ok(n) => t.write(&n.to_be_bytes()),
            Err(_) => return false,
        },
        Prefix::U32 => match u32::try_from(msg.len()) {
            Ok(n) => t.write(&n.to_be_bytes()),
            Err(_) => return false,
        },
    }
    t.write(msg);
    true
}

/// The callbacks a [`PrefixedReceiver`] calls.
pub trait MessageHandler: 'static {
    /// One whole message, without its prefix.
    fn message_received(&mut self, msg: &[u8], t: &mut dyn Transport);

    /// The connection is open.
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// A prefix announced `len` bytes, over the maximum. Default: log and close.
    ///
    /// An override may keep the connection open (answer with an error
    /// message, say): the oversized message's `len` bytes are then discarded
    /// as they arrive, never buffered, and framing resumes after them.
    fn message_too_long(&mut self, len: usize, t: &mut dyn Transport) {
        log::warn!("{}: message of {len} bytes announced, over the limit; closing", t.peer_addr());
        t.lose_connection();
    }

    /// The peer half-closed; `partial` is how many bytes of an unfinished
    /// message were left. Default: close.
    fn read_eof(&mut self, partial: usize, t: &mut dyn Transport) {
        let _ = partial;
        t.lose_connection();
    }

    /// The connection is gone.
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let _ = (reason, cx);
    }
}

/// Wraps a [`MessageHandler`] into a [`Protocol`].
pub struct PrefixedReceiver<H> {
    /// The handler, reachable for inspection in tests.
    pub handler: H,
    prefix: Prefix,
    max_len: usize,
    buf: Vec<u8>,
    /// Bytes of a refused (oversized) message still to discard.
    skip: usize,
}

impl<H: MessageHandler> PrefixedReceiver<H> {
    /// A receiver with the default maximum message length.
    pub fn new(handler: H, prefix: Prefix) -> Self {
        PrefixedReceiver { handler, prefix, max_len: DEFAULT_MAX_MESSAGE, buf: Vec::new(), skip: 0 }
    }

    /// Sets the maximum message length in bytes.
    pub fn max_message_length(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    /// Delivers whole messages from `data`, discarding refused ones; returns
    /// the bytes used.
    fn consume(&mut self, data: &[u8], t: &mut dyn Transport) -> usize {
        let mut pos = 0;
        loop {
            let skipped = self.skip.min(data.len() - pos);
            self.skip -= skipped;
            pos += skipped;
            let (used, refused) = self.deliver(&data[pos..], t);
            pos += used;
            let Some(len) = refused else { return pos };
            self.handler.message_too_long(len, t);
            self.skip = len;
        }
    }

    /// Delivers whole messages from the start of `data` until one is over the
    /// maximum (its length is returned with the bytes used, its prefix
    /// included), too short, or the connection closes.
    fn deliver(&mut self, data: &[u8], t: &mut dyn Transport) -> (usize, Option<usize>) {
        let w = self.prefix.width();
        let mut pos = 0;
        while data.len() - pos >= w && !t.is_closing() {
            let len = self.prefix.decode(&data[pos..pos + w]);
            if len > self.max_len {
                return (pos + w, Some(len));
            }
            if data.len() - pos - w < len {
                break;
            }
            t.progress();
            self.handler.message_received(&data[pos + w..pos + w + len], t);
            pos += w + len;
        }
        (pos, None)
    }
}

impl<H: MessageHandler> Protocol for PrefixedReceiver<H> {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Whole messages are what the idle timeout counts (see `progress`).
        t.progress();
        self.handler.connection_made(t);
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if t.is_closing() {
            return;
        }
        if self.buf.is_empty() {
            let used = self.consume(data, t);
            self.buf.extend_from_slice(&data[used..]);
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let used = self.consume(&buf, t);
            self.buf = buf;
            self.buf.drain(..used);
        }
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        let partial = self.buf.len();
        self.handler.read_eof(partial, t);
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        self.handler.connection_lost(reason, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    #[derive(Default)]
    struct Rec(Vec<Vec<u8>>, Vec<usize>);
    impl MessageHandler for Rec {
        fn message_received(&mut self, msg: &[u8], _: &mut dyn Transport) {
            self.0.push(msg.to_vec());
        }
        fn message_too_long(&mut self, len: usize, t: &mut dyn Transport) {
            self.1.push(len);
            t.abort_connection();
        }
    }

    #[test]
    fn split_prefix_and_several_messages_per_read() {
        let mut h = Harness::new(PrefixedReceiver::new(Rec::default(), Prefix::U32));
        h.connect();
        h.feed(&[0, 0]);
        h.feed(&[0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 2, b'b']);
        h.feed(b"c");
        assert_eq!(h.protocol.handler.0, vec![b"a".to_vec(), vec![], b"bc".to_vec()]);
    }

    #[test]
    fn oversized_prefix_is_refused_before_buffering() {
        let mut h = Harness::new(PrefixedReceiver::new(Rec::default(), Prefix::U32).max_message_length(10));
        h.connect();
        h.feed(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(h.protocol.handler.1, vec![0xffff_ffff]);
        assert!(h.is_closed());
        assert!(h.protocol.buf.is_empty());
    }

    #[test]
    fn a_refused_message_is_skipped_when_the_handler_keeps_the_connection() {
        /// Answers an oversized message with an error and carries on.
        #[derive(Default)]
        struct Lenient(Vec<Vec<u8>>, Vec<usize>);
        impl MessageHandler for Lenient {
            fn message_received(&mut self, msg: &[u8], _: &mut dyn Transport) {
                self.0.push(msg.to_vec());
            }
            fn message_too_long(&mut self, len: usize, t: &mut dyn Transport) {
                self.1.push(len);
                send_message(t, Prefix::U16, b"too long");
            }
        }
        let stream = [&[0, 1, b'a'][..], &[0, 6], b"abcdef", &[0, 2], b"ok", &[0, 9], b"123456789", &[0, 0]].concat();
        // Every way of cutting the stream in two gives the same messages, and
        // nothing of a refused message is kept.
        for cut in 0..=stream.len() {
            let mut h = Harness::new(PrefixedReceiver::new(Lenient::default(), Prefix::U16).max_message_length(4));
            h.connect();
            h.feed(&stream[..cut]);
            assert!(h.protocol.buf.len() <= 4, "cut at {cut}: {} bytes buffered", h.protocol.buf.len());
            h.feed(&stream[cut..]);
            assert_eq!(h.protocol.handler.0, vec![b"a".to_vec(), b"ok".to_vec(), vec![]], "cut at {cut}");
            assert_eq!(h.protocol.handler.1, vec![6, 9], "cut at {cut}");
            assert!(!h.is_closed());
            assert_eq!(h.take_output(), [&[0, 8][..], b"too long", &[0, 8], b"too long"].concat());
        }
    }

    #[test]
    fn eof_reports_partial_bytes() {
        struct Eof(usize);
        impl MessageHandler for Eof {
            fn message_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
            fn read_eof(&mut self, partial: usize, t: &mut dyn Transport) {
                self.0 = partial;
                t.lose_connection();
            }
        }
        let mut h = Harness::new(PrefixedReceiver::new(Eof(0), Prefix::U16));
        h.connect();
        h.feed(&[0, 5, 1, 2]);
        h.feed_eof();
        assert_eq!(h.protocol.handler.0, 4);
        assert!(h.is_closed());
    }
}
