//! Length-prefixed framing (Twisted's `Int8StringReceiver`,
//! `Int16StringReceiver`, `Int32StringReceiver`): each message is a
//! big-endian length followed by that many bytes.
//!
//! The length is checked against a maximum before anything is buffered, so a
//! hostile prefix cannot make the receiver allocate more than it has received.
//!
//! The receiver buffers in a [`BytesMut`] and takes messages off its front
//! without moving the rest; while its buffer is empty it parses the read at
//! hand directly and keeps only an unfinished tail. A handler that keeps
//! messages can have them as [`Bytes`] without a copy
//! ([`PrefixedReceiver::owned_frames`]).
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

use bytes::{Bytes, BytesMut};

use crate::line::frame::{self, Input};
use crate::protocol::Protocol;
use crate::transport::{Context, Disconnect, Transport};

/// The width of the big-endian length prefix.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// One byte: messages up to 255 bytes.
    U8,
    /// Two bytes: messages up to 65,535 bytes.
    U16,
    /// Four bytes.
    U32,
}

impl Prefix {
    /// Bytes in the prefix.
    pub fn width(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16 => 2,
            Prefix::U32 => 4,
        }
    }

    /// The longest message the prefix can announce.
    pub fn max_len(self) -> usize {
        match self {
            Prefix::U8 => u8::MAX.into(),
            Prefix::U16 => u16::MAX.into(),
            Prefix::U32 => u32::MAX.try_into().unwrap_or(usize::MAX),
        }
    }

    #[inline]
    fn decode(self, b: &[u8]) -> usize {
        match self {
            Prefix::U8 => usize::from(b[0]),
            Prefix::U16 => usize::from(u16::from_be_bytes([b[0], b[1]])),
            Prefix::U32 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
        }
    }
}

/// Default maximum message length: 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// Writes `msg` with its length prefix; false (nothing written) if it does
/// not fit the prefix. Prefix and message go in one write when the whole is
/// at most 4 KiB; a larger message is written after its prefix, not copied
/// once more (the two writes leave in one system call when writes are
/// corked).
pub fn send_message(t: &mut dyn Transport, prefix: Prefix, msg: &[u8]) -> bool {
    if msg.len() > prefix.max_len() {
        return false;
    }
    let len = (msg.len() as u64).to_be_bytes();
    frame::write_joined(t, &[&len[8 - prefix.width()..], msg], false);
    true
}

/// The callbacks a [`PrefixedReceiver`] calls.
pub trait MessageHandler: 'static {
    /// One whole message, without its prefix.
    fn message_received(&mut self, msg: &[u8], t: &mut dyn Transport);

    /// One whole message as an owned [`Bytes`], with a receiver built with
    /// [`PrefixedReceiver::owned_frames`]: a handler that keeps messages
    /// overrides it and gets them without a copy. Default: calls
    /// [`message_received`](Self::message_received).
    ///
    /// ```
    /// use twirl::bytes::Bytes;
    /// use twirl::prefixed::{MessageHandler, Prefix, PrefixedReceiver};
    /// use twirl::{Transport, testing::Harness};
    ///
    /// /// Keeps every message.
    /// #[derive(Default)]
    /// struct Keep(Vec<Bytes>);
    /// impl MessageHandler for Keep {
    ///     fn message_received_owned(&mut self, msg: Bytes, _: &mut dyn Transport) {
    ///         self.0.push(msg);
    ///     }
    ///     // Used only without `owned_frames`: keep a copy then.
    ///     fn message_received(&mut self, msg: &[u8], t: &mut dyn Transport) {
    ///         self.message_received_owned(Bytes::copy_from_slice(msg), t);
    ///     }
    /// }
    ///
    /// let mut h = Harness::new(PrefixedReceiver::new(Keep::default(), Prefix::U8).owned_frames());
    /// h.connect();
    /// h.feed(&[2, b'h', b'i', 1]);
    /// h.feed(b"!");
    /// assert_eq!(h.protocol.handler.0, [&b"hi"[..], b"!"]);
    /// ```
    fn message_received_owned(&mut self, msg: Bytes, t: &mut dyn Transport) {
        self.message_received(&msg, t);
    }

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

    /// The write buffer passed its high-water mark.
    fn pause_writing(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// The write buffer drained below its low-water mark.
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// Everything written was handed to the socket, as asked with
    /// [`Transport::notify_drained`] (see [`Protocol::drained`]).
    fn drained(&mut self, t: &mut dyn Transport) {
        let _ = t;
    }

    /// A timer the handler set ([`Context::call_later`]) fired.
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        let _ = (tag, t);
    }
}

/// Wraps a [`MessageHandler`] into a [`Protocol`].
pub struct PrefixedReceiver<H> {
    /// The handler, reachable for inspection in tests.
    pub handler: H,
    /// Bytes not parsed yet (apart from the parser's state, so that it is
    /// parsed in place, never moved).
    buf: BytesMut,
    p: Parser,
}

/// What parsing messages needs besides the bytes and the handler.
struct Parser {
    prefix: Prefix,
    max_len: usize,
    /// Bytes of a refused (oversized) message still to discard.
    skip: usize,
    /// Messages are handed over as `Bytes` (`message_received_owned`).
    owned: bool,
}

impl<H: MessageHandler> PrefixedReceiver<H> {
    /// A receiver with the default maximum message length.
    pub fn new(handler: H, prefix: Prefix) -> Self {
        let p = Parser { prefix, max_len: DEFAULT_MAX_MESSAGE, skip: 0, owned: false };
        PrefixedReceiver { handler, buf: BytesMut::new(), p }
    }

    /// Sets the maximum message length in bytes.
    pub fn max_message_length(mut self, max: usize) -> Self {
        self.p.max_len = max;
        self
    }

    /// Hands messages to [`MessageHandler::message_received_owned`] as
    /// [`Bytes`] that share the receiver's buffer: keeping one costs no
    /// copy (each read is copied once into the buffer instead, and a
    /// message kept holds on to the buffer it came in). Without it,
    /// messages are borrowed and nothing is paid for this.
    pub fn owned_frames(mut self) -> Self {
        self.p.owned = true;
        self
    }
}

impl Parser {
    /// Delivers whole messages from the front of `input`, discarding
    /// refused ones, until one is incomplete or the connection closes.
    fn consume<H: MessageHandler, I: Input>(&mut self, handler: &mut H, input: &mut I, t: &mut dyn Transport) {
        loop {
            if self.skip > 0 {
                let skipped = self.skip.min(input.bytes().len());
                self.skip -= skipped;
                input.advance(skipped);
                if self.skip > 0 {
                    return;
                }
            }
            let refused =
                if self.owned { self.deliver_owned(handler, input, t) } else { self.deliver(handler, input, t) };
            let Some(len) = refused else { return };
            handler.message_too_long(len, t);
            self.skip = len;
        }
    }

    /// Delivers whole messages, borrowed, from the front of `input` until
    /// one is over the maximum (its length is returned, its prefix
    /// consumed), incomplete, or the connection closes.
    fn deliver<H: MessageHandler, I: Input>(
        &mut self,
        handler: &mut H,
        input: &mut I,
        t: &mut dyn Transport,
    ) -> Option<usize> {
        let w = self.prefix.width();
        let data = input.bytes();
        let mut pos = 0;
        let refused = loop {
            if data.len() - pos < w || t.is_closing() {
                break None;
            }
            let len = self.prefix.decode(&data[pos..pos + w]);
            if len > self.max_len {
                pos += w;
                break Some(len);
            }
            if data.len() - pos - w < len {
                break None;
            }
            t.progress();
            handler.message_received(&data[pos + w..pos + w + len], t);
            pos += w + len;
        };
        input.advance(pos);
        refused
    }

    /// [`deliver`](Self::deliver), the messages owned.
    fn deliver_owned<H: MessageHandler, I: Input>(
        &mut self,
        handler: &mut H,
        input: &mut I,
        t: &mut dyn Transport,
    ) -> Option<usize> {
        let w = self.prefix.width();
        loop {
            let data = input.bytes();
            if data.len() < w || t.is_closing() {
                return None;
            }
            let len = self.prefix.decode(&data[..w]);
            if len > self.max_len {
                input.advance(w);
                return Some(len);
            }
            if data.len() - w < len {
                return None;
            }
            t.progress();
            input.advance(w);
            let msg = input.take_frame(len);
            handler.message_received_owned(msg, t);
        }
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
        if self.buf.is_empty() && !self.p.owned {
            // The fast path: messages straight from the read, the tail kept.
            let mut input = data;
            self.p.consume(&mut self.handler, &mut input, t);
            self.buf.extend_from_slice(input);
        } else {
            self.buf.extend_from_slice(data);
            self.p.consume(&mut self.handler, &mut self.buf, t);
            frame::trim(&mut self.buf);
        }
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        let partial = self.buf.len();
        self.handler.read_eof(partial, t);
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        self.handler.connection_lost(reason, cx);
    }

    fn pause_writing(&mut self, t: &mut dyn Transport) {
        self.handler.pause_writing(t);
    }

    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.handler.resume_writing(t);
    }

    fn drained(&mut self, t: &mut dyn Transport) {
        self.handler.drained(t);
    }

    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        self.handler.timer_fired(tag, t);
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

    #[test]
    fn a_one_byte_prefix_in_every_split() {
        let stream = [&[3u8, b'a', b'b', b'c', 0, 255][..], &[b'z'; 255], &[1, b'!']].concat();
        for cut in 0..=stream.len() {
            let mut h = Harness::new(PrefixedReceiver::new(Rec::default(), Prefix::U8));
            h.connect();
            h.feed(&stream[..cut]);
            h.feed(&stream[cut..]);
            assert_eq!(
                h.protocol.handler.0,
                vec![b"abc".to_vec(), vec![], vec![b'z'; 255], b"!".to_vec()],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn send_message_writes_prefix_and_message_in_one_write_when_small() {
        struct Send(Prefix, usize);
        impl MessageHandler for Send {
            fn message_received(&mut self, _: &[u8], t: &mut dyn Transport) {
                assert!(send_message(t, self.0, &vec![7; self.1]));
            }
        }
        for (prefix, len, writes) in [
            (Prefix::U8, 0, 1),
            (Prefix::U8, 255, 1),
            (Prefix::U16, 100, 1),
            (Prefix::U16, 4000, 1),
            (Prefix::U32, 4092, 1),
            (Prefix::U32, 100_000, 2),
        ] {
            let mut h = Harness::new(PrefixedReceiver::new(Send(prefix, len), Prefix::U8));
            h.connect();
            h.feed(&[0]);
            let out = h.take_output();
            assert_eq!(out.len(), prefix.width() + len);
            assert_eq!(prefix.decode(&out), len, "{prefix:?}");
            assert!(out[prefix.width()..].iter().all(|&b| b == 7));
            // At most: a large message may go out in one system call when writes are corked.
            assert!(h.cx.stats().writes <= writes, "{prefix:?}, {len} bytes: {} writes", h.cx.stats().writes);
        }
        let mut h = Harness::new(PrefixedReceiver::new(Rec::default(), Prefix::U8));
        h.connect();
        h.with_transport(|t| {
            assert!(!send_message(t, Prefix::U8, &[0; 256]), "over the prefix");
            assert!(!send_message(t, Prefix::U16, &vec![0; 65_536]));
        });
        assert!(h.take_output().is_empty());
    }

    #[test]
    fn timers_and_flow_control_reach_the_handler() {
        /// Sets a timer on the first message, answers when it fires; records flow control.
        #[derive(Default)]
        struct Later {
            fired: Vec<u64>,
            paused: u32,
            resumed: u32,
        }
        impl MessageHandler for Later {
            fn message_received(&mut self, msg: &[u8], t: &mut dyn Transport) {
                if msg == b"later" {
                    t.call_later(std::time::Duration::from_secs(1), 42);
                } else {
                    t.write(&vec![b'x'; 100_000]);
                }
            }
            fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
                self.fired.push(tag);
                send_message(t, Prefix::U8, b"now");
            }
            fn pause_writing(&mut self, _: &mut dyn Transport) {
                self.paused += 1;
            }
            fn resume_writing(&mut self, _: &mut dyn Transport) {
                self.resumed += 1;
            }
        }
        let mut h = Harness::new(PrefixedReceiver::new(Later::default(), Prefix::U8));
        h.connect();
        h.feed(b"\x05later");
        h.advance(std::time::Duration::from_secs(1));
        assert_eq!(h.protocol.handler.fired, [42], "the handler's timer fired");
        assert_eq!(h.take_output(), b"\x03now");
        h.set_peer_reading(false);
        h.feed(b"\x03big");
        assert_eq!((h.protocol.handler.paused, h.protocol.handler.resumed), (1, 0));
        h.set_peer_reading(true);
        assert_eq!((h.protocol.handler.paused, h.protocol.handler.resumed), (1, 1));
    }

    #[test]
    fn owned_messages_share_the_buffer() {
        #[derive(Default)]
        struct Keep(Vec<Bytes>);
        impl MessageHandler for Keep {
            fn message_received_owned(&mut self, msg: Bytes, _: &mut dyn Transport) {
                self.0.push(msg);
            }
            fn message_received(&mut self, _: &[u8], _: &mut dyn Transport) {
                panic!("owned frames were asked for");
            }
        }
        let mut h = Harness::new(PrefixedReceiver::new(Keep::default(), Prefix::U16).owned_frames());
        h.connect();
        h.feed(&[0, 3, b'a', b'b', b'c', 0, 2, b'd', b'e', 0]);
        h.feed(&[0]);
        assert_eq!(h.protocol.handler.0, [&b"abc"[..], b"de", b""]);
        // The two messages of the first read point into one allocation.
        let (a, d) = (h.protocol.handler.0[0].as_ptr() as usize, h.protocol.handler.0[1].as_ptr() as usize);
        assert_eq!(d - a, 5, "no copy: \"de\" follows \"abc\" and its prefix in the buffer");
    }
}
