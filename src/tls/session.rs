//! A rustls connection driven through rustls's unbuffered API, with the
//! ciphertext in a buffer of the layer's own.
//!
//! rustls's buffered connection decrypts each record in its own receive
//! buffer, whose capacity is a power of two, and copies the plaintext into
//! a fresh 16 KiB block; with glibc's malloc that block comes off the top of
//! the heap right after the buffer, 11 bytes past the record modulo 4 KiB,
//! where glibc's `rep movsb` runs ~25x slower on AMD Zen (glibc bug 30994).
//! Here the records are decrypted where they lie, in the reactor's read
//! buffer or (a record cut by a read's end) in [`Session`]'s, at offsets
//! that move with the stream, so no copy sits at one distance for good.
//! [`Session::fill`] decrypts what came (sending the handshake's flights on
//! the way) into one thread-wide buffer, [`Session::write`] encrypts into
//! another ([`Outbox`], which also batches), each placed within its page
//! so that rustls's copies into and out of them keep clear of that band
//! too. An idle session holds no ciphertext buffer, and a busy one only a
//! partial record's worth between reads.

use std::io;

use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{CipherSuite, ProtocolVersion};

use super::outbox::Outbox;
use super::page::PAGE;
use crate::transport::Transport;

/// A server or client connection, made with rustls's unbuffered API.
pub enum TlsConnection {
    /// The server side of a connection.
    Server(UnbufferedServerConnection),
    /// The client side of a connection.
    Client(UnbufferedClientConnection),
}

/// What one step of [`Session::fill`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// This many bytes of plaintext (one record's).
    Data(usize),
    /// Nothing more until more ciphertext comes.
    NeedMore,
    /// The peer's close_notify.
    Closed,
}

/// The most plaintext one encryption takes: four records.
const ENCRYPT_PIECE: usize = 64 * 1024;

/// Room for one record's framing and tag, more than any suite needs.
const RECORD_OVERHEAD: usize = 64;

/// The most `plain` bytes take sealed: their records' framing and tags too.
fn sealed_len(plain: usize) -> usize {
    plain + (plain / (16 * 1024) + 1) * RECORD_OVERHEAD
}

/// A TLS connection and the ciphertext it has not yet processed.
pub(crate) struct Session {
    conn: TlsConnection,
    /// Ciphertext from the peer; `incoming[start..]` is not processed yet.
    incoming: Vec<u8>,
    start: usize,
    /// The peer's close_notify, still to be told: it came during a write,
    /// or after plaintext a paused protocol has not taken yet.
    peer_closed: bool,
    /// Plaintext still to be handed out, first by the next fill: records
    /// that came during a write, or what a paused protocol did not take.
    held: Vec<u8>,
    /// The open batch's records (see [`begin_batch`](Self::begin_batch)).
    batch: Option<Outbox>,
    /// Ciphertext copied into `incoming`, all told.
    #[cfg(test)]
    copied: usize,
}

/// Calls `process_tls_records` on whichever side the connection is.
macro_rules! process {
    ($conn:expr, $buf:expr, |$status:ident| $body:expr) => {
        match $conn {
            TlsConnection::Server(c) => {
                let $status = c.process_tls_records($buf);
                $body
            }
            TlsConnection::Client(c) => {
                let $status = c.process_tls_records($buf);
                $body
            }
        }
    };
}

impl Session {
    pub fn new(conn: TlsConnection) -> Session {
        Session {
            conn,
            incoming: Vec::new(),
            start: 0,
            peer_closed: false,
            held: Vec::new(),
            batch: None,
            #[cfg(test)]
            copied: 0,
        }
    }

    pub fn is_client(&self) -> bool {
        matches!(self.conn, TlsConnection::Client(_))
    }

    pub fn is_handshaking(&self) -> bool {
        match &self.conn {
            TlsConnection::Server(c) => c.is_handshaking(),
            TlsConnection::Client(c) => c.is_handshaking(),
        }
    }

    /// The negotiated version and cipher suite, once the handshake is done.
    pub fn negotiated(&self) -> (Option<ProtocolVersion>, Option<CipherSuite>) {
        match &self.conn {
            TlsConnection::Server(c) => (c.protocol_version(), c.negotiated_cipher_suite().map(|s| s.suite())),
            TlsConnection::Client(c) => (c.protocol_version(), c.negotiated_cipher_suite().map(|s| s.suite())),
        }
    }

    /// The ciphertext room the session holds.
    #[cfg(test)]
    pub fn ciphertext_room(&self) -> usize {
        self.incoming.capacity()
    }

    /// How much ciphertext was copied into the session, all told.
    #[cfg(test)]
    pub fn ciphertext_copied(&self) -> usize {
        self.copied
    }

    /// Ciphertext from the peer, to be processed by [`fill`](Self::fill).
    pub fn receive(&mut self, data: &[u8]) {
        let need = self.incoming.len() + data.len();
        if need > self.incoming.capacity() {
            // Half a page past a whole number of pages: the block an
            // allocator puts straight after this buffer (rustls's copy of
            // the next record, say) then starts half a page away from a
            // record at this buffer's start, not 11 bytes.
            let room = need.max(2 * self.incoming.capacity()).next_multiple_of(PAGE) + PAGE / 2;
            self.incoming.reserve_exact(room - self.incoming.len());
        }
        self.incoming.extend_from_slice(data);
        #[cfg(test)]
        {
            self.copied += data.len();
        }
    }

    /// Gives back plaintext [`fill`](Self::fill) handed out, and the
    /// peer's close_notify if it came after it: they come first from the
    /// next fill.
    pub fn unread(&mut self, plain: &[u8], closed: bool) {
        let mut held = Vec::with_capacity(plain.len() + self.held.len());
        held.extend_from_slice(plain);
        held.extend_from_slice(&self.held);
        self.held = held;
        self.peer_closed |= closed;
    }

    /// The most plaintext the next [`fill`](Self::fill) can give: what
    /// waits, ciphertext or held plaintext (records only shrink).
    pub fn pending_len(&self) -> usize {
        self.incoming.len() - self.start + self.held.len()
    }

    /// Processes all the ciphertext that came, the session's and `fresh`
    /// (just read, and scratch: its records are decrypted where they lie),
    /// copying every record's plaintext into `into` (at least
    /// [`pending_len`](Self::pending_len) + `fresh.len()` long) and sending
    /// what the handshake, alerts and tickets need on the way. Gives the
    /// plaintext's length, and whether the peer's close_notify came after
    /// it. Of `fresh`, only what completes the record the session holds a
    /// part of, and the part of a record it ends with, is copied.
    pub fn fill(
        &mut self,
        t: &mut dyn Transport,
        fresh: &mut [u8],
        into: &mut [u8],
    ) -> Result<(usize, bool), rustls::Error> {
        let mut len = self.held.len();
        into[..len].copy_from_slice(&self.held);
        self.held = Vec::new();
        if std::mem::take(&mut self.peer_closed) {
            self.receive(fresh);
            return Ok((len, true));
        }
        let mut taken = 0;
        if self.start < self.incoming.len() {
            // The record begun in the session is completed from `fresh`.
            for _ in 0..3 {
                let gap = record_gap(&self.incoming[self.start..]);
                let take = gap.min(fresh.len() - taken);
                if take == 0 {
                    break;
                }
                self.receive(&fresh[taken..taken + take]);
                taken += take;
            }
            let end = self.incoming.len();
            let (discard, read) = read_records(&mut self.conn, &mut self.incoming[self.start..end], t, into, &mut len);
            self.start += discard;
            if read != Ok(false) || self.start < self.incoming.len() {
                // Closed, failed, or rustls keeps part of a handshake
                // message in the buffer: the rest follows it there.
                self.receive(&fresh[taken..]);
                let read = match read {
                    Ok(false) => {
                        let end = self.incoming.len();
                        let (discard, read) =
                            read_records(&mut self.conn, &mut self.incoming[self.start..end], t, into, &mut len);
                        self.start += discard;
                        read
                    }
                    done => done,
                };
                self.compact();
                return read.map(|closed| (len, closed));
            }
            // All of it went: the room is kept for what `fresh` leaves.
            self.incoming.clear();
            self.start = 0;
        }
        let fresh = &mut fresh[taken..];
        let (discard, read) = read_records(&mut self.conn, fresh, t, into, &mut len);
        self.receive(&fresh[discard..]);
        self.compact();
        read.map(|closed| (len, closed))
    }

    /// Encrypts `data` and writes it to `t` (in an open batch, it waits);
    /// false if the connection can no longer send (the handshake is not
    /// done, or close_notify was sent).
    pub fn write(&mut self, t: &mut dyn Transport, data: &[u8]) -> Result<bool, rustls::Error> {
        let batch = self.batch.is_some();
        let mut out = self.batch.take().unwrap_or_else(Outbox::take);
        let mut result = Ok(true);
        for piece in data.chunks(ENCRYPT_PIECE) {
            result = self.write_step(t, &mut out, Some(piece), batch);
            if !matches!(result, Ok(true)) {
                break;
            }
        }
        self.put_back(t, out, batch);
        result
    }

    /// Sends close_notify (after whatever was written before; in an open
    /// batch, it waits).
    pub fn close_notify(&mut self, t: &mut dyn Transport) -> Result<bool, rustls::Error> {
        let batch = self.batch.is_some();
        let mut out = self.batch.take().unwrap_or_else(Outbox::take);
        let result = self.write_step(t, &mut out, None, batch);
        self.put_back(t, out, batch);
        result
    }

    fn put_back(&mut self, t: &mut dyn Transport, out: Outbox, batch: bool) {
        if batch {
            self.batch = Some(out);
        } else {
            out.give_back(t);
        }
    }

    /// Opens a batch: records sealed from now on wait, and leave together
    /// when it holds [`BATCH_SEND`](super::outbox::BATCH_SEND) bytes, at
    /// [`flush_batch`](Self::flush_batch), or at
    /// [`end_batch`](Self::end_batch).
    pub fn begin_batch(&mut self) {
        if self.batch.is_none() {
            self.batch = Some(Outbox::take_for_batch(sealed_len(ENCRYPT_PIECE)));
        }
    }

    /// Writes what the open batch holds (it stays open).
    pub fn flush_batch(&mut self, t: &mut dyn Transport) {
        if let Some(out) = &mut self.batch {
            out.flush(t);
        }
    }

    /// Writes what the batch holds and closes it.
    pub fn end_batch(&mut self, t: &mut dyn Transport) {
        if let Some(out) = self.batch.take() {
            out.give_back(t);
        }
    }

    /// Bytes sealed in the open batch, not yet written.
    pub fn batched(&self) -> usize {
        self.batch.as_ref().map_or(0, Outbox::waiting)
    }

    /// Sends the alert rustls queued when it failed. Only that: rustls,
    /// asked to go on after a failure, would fail (and alert) again.
    pub fn flush_alert(&mut self, t: &mut dyn Transport) {
        let end = self.incoming.len();
        let buf = &mut self.incoming[self.start..end];
        let _ = process!(&mut self.conn, buf, |status| match status.state {
            Ok(ConnectionState::EncodeTlsData(mut e)) => encode(&mut e, t),
            _ => Ok(()),
        });
    }

    /// Gets to a state rustls writes in, sending what it has to send on the
    /// way, then encrypts `plain` (or close_notify, for `None`) into `out`,
    /// where it waits in a batch or is written to `t`.
    fn write_step(
        &mut self,
        t: &mut dyn Transport,
        out: &mut Outbox,
        plain: Option<&[u8]>,
        batch: bool,
    ) -> Result<bool, rustls::Error> {
        for _ in 0..1024 {
            // rustls may hold parts of handshake messages in the buffer: it
            // is always given the buffer. Records read on the way are held.
            let end = self.incoming.len();
            let buf = &mut self.incoming[self.start..end];
            let (held, peer_closed) = (&mut self.held, &mut self.peer_closed);
            let (discard, step) =
                process!(&mut self.conn, buf, |status| write_step(status, t, out, plain, batch, held, peer_closed));
            self.start += discard;
            match step? {
                Some(done) => return Ok(done),
                None => continue,
            }
        }
        Ok(false)
    }

    /// Drops processed ciphertext: the buffer itself when nothing is left,
    /// else by moving what is left to the front once it is past half the
    /// buffer (so records sit at offsets that move with the stream).
    fn compact(&mut self) {
        if self.start == self.incoming.len() {
            // An idle connection keeps no ciphertext room at all.
            self.incoming = Vec::new();
            self.start = 0;
        } else if self.start > self.incoming.capacity() / 2 {
            self.incoming.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Processes the records in `buf`, copying their plaintext into
/// `into[*len..]` (and adding it to `len`), until rustls needs more or the
/// peer's close_notify; gives how many bytes of `buf` rustls is done with,
/// and whether close_notify came.
fn read_records(
    conn: &mut TlsConnection,
    buf: &mut [u8],
    t: &mut dyn Transport,
    into: &mut [u8],
    len: &mut usize,
) -> (usize, Result<bool, rustls::Error>) {
    let mut done = 0;
    for _ in 0..1_000_000 {
        let room = &mut into[*len..];
        let (discard, step) = process!(&mut *conn, &mut buf[done..], |status| read_step(status, t, room));
        done += discard;
        match step {
            Ok(Some(Read::Data(n))) => *len += n,
            Ok(Some(Read::Closed)) => return (done, Ok(true)),
            Ok(Some(Read::NeedMore)) => return (done, Ok(false)),
            Ok(None) => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(false))
}

/// How many more bytes end `buf`, a run of TLS records, on a record's end:
/// those of the last record's header while it is not whole, then those of
/// its body. 0 if it ends on a record's end.
fn record_gap(buf: &[u8]) -> usize {
    const HEADER: usize = 5;
    let mut at = 0;
    for _ in 0..=buf.len() {
        let Some(header) = buf.get(at..at + HEADER) else {
            return at + HEADER - buf.len();
        };
        let end = at + HEADER + usize::from(u16::from_be_bytes([header[3], header[4]]));
        if end >= buf.len() {
            return end - buf.len();
        }
        at = end;
    }
    0
}

/// One state of a read: `Some` ends the read.
fn read_step<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    t: &mut dyn Transport,
    into: &mut [u8],
) -> (usize, Result<Option<Read>, rustls::Error>) {
    let discard = status.discard;
    let step = match status.state {
        Err(e) => Err(e),
        Ok(ConnectionState::ReadTraffic(mut r)) => match r.next_record() {
            Some(Ok(record)) => copy_record(record.payload, into),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        },
        Ok(ConnectionState::EncodeTlsData(mut e)) => encode(&mut e, t).map(|()| None),
        Ok(ConnectionState::TransmitTlsData(tx)) => {
            tx.done();
            Ok(None)
        }
        Ok(ConnectionState::PeerClosed) => Ok(Some(Read::Closed)),
        // (Early data is not accepted: the server config leaves it off.)
        Ok(_) => Ok(Some(Read::NeedMore)),
    };
    (discard, step)
}

fn copy_record(payload: &[u8], into: &mut [u8]) -> Result<Option<Read>, rustls::Error> {
    let Some(dst) = into.get_mut(..payload.len()) else {
        return Err(rustls::Error::General(format!("a {}-byte record is larger than a record", payload.len())));
    };
    dst.copy_from_slice(payload);
    Ok(Some(Read::Data(payload.len())))
}

/// One state on the way to a write: `Some(sent)` ends it.
fn write_step<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    t: &mut dyn Transport,
    out: &mut Outbox,
    plain: Option<&[u8]>,
    batch: bool,
    held: &mut Vec<u8>,
    peer_closed: &mut bool,
) -> (usize, Result<Option<bool>, rustls::Error>) {
    let discard = status.discard;
    let step = match status.state {
        Err(e) => Err(e),
        Ok(ConnectionState::ReadTraffic(mut r)) => {
            let mut result = Ok(None);
            while let Some(record) = r.next_record() {
                match record {
                    Ok(record) => held.extend_from_slice(record.payload),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result
        }
        Ok(ConnectionState::EncodeTlsData(mut e)) => {
            // After the records sealed before it.
            out.flush(t);
            encode(&mut e, t).map(|()| None)
        }
        Ok(ConnectionState::TransmitTlsData(tx)) => {
            tx.done();
            Ok(None)
        }
        // Told by the next read.
        Ok(ConnectionState::PeerClosed) => {
            *peer_closed = true;
            Ok(None)
        }
        Ok(ConnectionState::WriteTraffic(mut w)) => {
            let (len, close) = match plain {
                Some(p) => (sealed_len(p.len()), false),
                None => (RECORD_OVERHEAD, true),
            };
            let mut room = out.room(t, len);
            let mut sealed =
                if close { w.queue_close_notify(room) } else { w.encrypt(plain.unwrap_or_default(), room) };
            if let Err(EncryptError::InsufficientSize(need)) = sealed {
                room = out.room(t, need.required_size);
                sealed = if close { w.queue_close_notify(room) } else { w.encrypt(plain.unwrap_or_default(), room) };
            }
            match sealed {
                Ok(n) => {
                    out.sealed(t, n, batch);
                    Ok(Some(true))
                }
                Err(e) => Err(rustls::Error::General(format!("encrypting: {e}"))),
            }
        }
        // The handshake is not done, or close_notify was sent.
        Ok(_) => Ok(Some(false)),
    };
    (discard, step)
}

/// Writes one handshake message (or alert, or ticket) to `t`.
fn encode<Data>(
    e: &mut rustls::unbuffered::EncodeTlsData<'_, Data>,
    t: &mut dyn Transport,
) -> Result<(), rustls::Error> {
    let mut out = Outbox::take();
    let mut encoded = e.encode(out.room(t, 4096));
    if let Err(EncodeError::InsufficientSize(need)) = encoded {
        encoded = e.encode(out.room(t, need.required_size));
    }
    let result = match encoded {
        Ok(n) => {
            out.sealed(t, n, false);
            Ok(())
        }
        Err(e) => Err(rustls::Error::General(format!("encoding: {e}"))),
    };
    out.give_back(t);
    result
}

/// rustls's error as the `io::Error` a [`Disconnect`](crate::Disconnect) carries.
pub(crate) fn io_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::record_gap;

    /// A record header for a body of `len` bytes.
    fn header(len: u16) -> Vec<u8> {
        let [hi, lo] = len.to_be_bytes();
        vec![23, 3, 3, hi, lo]
    }

    #[test]
    fn the_gap_is_what_ends_the_last_record() {
        let mut two = header(3);
        two.extend_from_slice(b"abc");
        assert_eq!(record_gap(&two), 0, "one whole record");
        two.extend_from_slice(&header(10));
        assert_eq!(record_gap(&two), 10, "a whole header, no body yet");
        two.extend_from_slice(b"0123");
        assert_eq!(record_gap(&two), 6, "part of the body");
        assert_eq!(record_gap(&two[..8 + 2]), 3, "part of the second header: the rest of it first");
        assert_eq!(record_gap(&[23]), 4);
        assert_eq!(record_gap(&[]), 5, "nothing: a header");
    }
}
