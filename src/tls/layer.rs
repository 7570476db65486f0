//! The TLS layer: a [`Protocol`] that owns a rustls connection and another
//! protocol, the way Twisted's `TLSMemoryBIOProtocol` does. Ciphertext from
//! the socket goes into rustls; the plaintext that comes out goes to the
//! wrapped protocol, which writes through the [`Inner`] transport and never
//! knows. Everything rustls produces is handed to the real transport at
//! once, so the connection's write buffer (its water marks, its hard cap,
//! the reactor's memory budget) counts all of it.
//!
//! The wrapped protocol's `connection_made` comes when the handshake has
//! finished. A handshake that fails (a plaintext client, garbage, a bad
//! certificate) or takes longer than its timeout closes the connection,
//! logged at debug level; a client's protocol hears why in
//! `connection_lost` ([`Disconnect::Tls`]).

use std::cell::Cell;
use std::io::{self, Read};
use std::time::Duration;

use rustls::Connection;

use super::inner::{Inner, flush};
use crate::protocol::Protocol;
use crate::timer::TimerHandle;
use crate::transport::{Context, Disconnect, Transport};

/// The layer's own timer tags; a wrapped protocol's other tags pass through.
pub(crate) const HANDSHAKE_TAG: u64 = u64::MAX;
/// Delivers plaintext held while the wrapped protocol had paused reading.
pub(crate) const RESUME_TAG: u64 = u64::MAX - 1;

/// The largest plaintext piece handed to `data_received`: one TLS record.
/// (64 KiB pieces, one write per read, measured 10-20% more CPU per MiB in
/// `tls-bench`'s stream: the pieces no longer stay in cache.)
const PLAIN_PIECE: usize = 16 * 1024;

/// What rustls may hold to send within one call: the layer drains it after
/// every write, so this only sets how much one write encrypts in one go.
const TLS_BUFFER: usize = 256 * 1024;

/// Where in a 4 KiB page the plaintext piece starts. glibc copies 16 KiB
/// with `rep movsb`, which on AMD Zen runs ~25x slower when the destination
/// is 1 to 15 bytes past the source, modulo 4 KiB (glibc bug 30994). Each
/// record is copied into this buffer from a fresh block rustls made, and
/// from it into another, 5 bytes past that block's start. Allocators start
/// such blocks at a multiple of 16 (glibc), 64 (jemalloc) or 4096 bytes
/// (mimalloc) within a page; at 2080, a multiple of 32 but not of 64, the
/// copy in is never in the band under any of them, nor the copy out under
/// jemalloc and mimalloc (with glibc: one block placement in 256).
const PLAIN_PAGE_OFFSET: usize = 2080;
const PAGE: usize = 4096;

thread_local! {
    /// The plaintext buffer every layer on this thread reads into in turn.
    static PLAIN: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The `PLAIN_PIECE` bytes of `held` that start at `PLAIN_PAGE_OFFSET`
/// within a page.
fn plain_piece(held: &mut Vec<u8>) -> &mut [u8] {
    held.resize(PLAIN_PIECE + PAGE, 0);
    let skip = (PAGE + PLAIN_PAGE_OFFSET - held.as_ptr() as usize % PAGE) % PAGE;
    &mut held[skip..skip + PLAIN_PIECE]
}

/// A TLS connection's state, apart from the wrapped protocol so that both
/// can be borrowed during a callback.
pub(crate) struct State {
    pub conn: Connection,
    /// The handshake finished and the wrapped protocol was told.
    pub made: bool,
    /// The wrapped protocol paused reading.
    pub paused: bool,
    /// The wrapped protocol called `lose_connection`.
    pub closing: bool,
    /// close_notify was sent (closing or half-closed): nothing more is written.
    pub write_closed: bool,
    /// A resume delivery is scheduled.
    pub resume_scheduled: bool,
    /// The wrapped protocol heard `read_eof` (the peer's close_notify).
    eof_told: bool,
    /// The TCP stream ended.
    tcp_eof: bool,
    /// It ended without close_notify.
    truncated: bool,
    /// Why TLS failed, if it did.
    error: Option<io::Error>,
    timer: Option<TimerHandle>,
    timeout: Duration,
    /// Ciphertext not yet taken by rustls (its plaintext buffer was full
    /// while the wrapped protocol paused reading).
    pending_in: Vec<u8>,
}

/// Runs any stream [`Protocol`] under TLS. Built by
/// [`TlsFactory`](super::TlsFactory) and [`TlsClientFactory`](super::TlsClientFactory).
pub struct TlsLayer {
    inner: Box<dyn Protocol>,
    state: State,
}

impl TlsLayer {
    /// Wraps `inner` in the rustls connection `conn` (a server or a client
    /// one); a handshake taking longer than `timeout` closes the connection.
    pub fn new(mut conn: Connection, inner: Box<dyn Protocol>, timeout: Duration) -> TlsLayer {
        conn.set_buffer_limit(Some(TLS_BUFFER));
        let state = State {
            conn,
            made: false,
            paused: false,
            closing: false,
            write_closed: false,
            resume_scheduled: false,
            eof_told: false,
            tcp_eof: false,
            truncated: false,
            error: None,
            timer: None,
            timeout,
            pending_in: Vec::new(),
        };
        TlsLayer { inner, state }
    }

    fn is_client(&self) -> bool {
        matches!(self.state.conn, Connection::Client(_))
    }

    /// rustls refused what the peer sent: send its alert, then close.
    fn fail(&mut self, t: &mut dyn Transport, e: io::Error) {
        flush(&mut self.state.conn, t);
        let stage = if self.state.made { "TLS error" } else { "TLS handshake failed" };
        log::debug!("{} ({}): {stage}: {e}", t.id(), t.peer_addr());
        self.state.error = Some(e);
        t.lose_connection();
    }

    /// Feeds ciphertext to rustls and delivers what comes of it; what
    /// rustls cannot take yet waits in `pending_in`.
    fn feed(&mut self, mut data: &[u8], t: &mut dyn Transport) {
        for _ in 0..1_000_000 {
            if data.is_empty() || self.state.error.is_some() {
                break;
            }
            match self.state.conn.read_tls(&mut data) {
                // close_notify came: nothing after it is read.
                Ok(0) => break,
                Ok(_) => {}
                // Its plaintext buffer is full: the protocol paused reading.
                Err(_) => {
                    self.state.pending_in.extend_from_slice(data);
                    break;
                }
            }
            if let Err(e) = self.state.conn.process_new_packets() {
                self.fail(t, io::Error::new(io::ErrorKind::InvalidData, e));
                return;
            }
            self.progress(t);
        }
        flush(&mut self.state.conn, t);
    }

    /// After new packets: finish the handshake, then deliver plaintext.
    fn progress(&mut self, t: &mut dyn Transport) {
        if !self.state.made {
            if self.state.conn.is_handshaking() {
                return;
            }
            self.handshake_done(t);
        }
        self.deliver(t);
    }

    fn handshake_done(&mut self, t: &mut dyn Transport) {
        self.state.made = true;
        if let Some(h) = self.state.timer.take() {
            t.cancel_timer(h);
        }
        if log::log_enabled!(target: "twirl::tls", log::Level::Trace) {
            let version = self.state.conn.protocol_version();
            let suite = self.state.conn.negotiated_cipher_suite().map(|s| s.suite());
            let (v, s) = (version.map(|v| format!("{v:?}")), suite.map(|s| format!("{s:?}")));
            let (v, s) = (v.unwrap_or_default(), s.unwrap_or_default());
            log::trace!(target: "twirl::tls", "{} TLS handshake done: {v} {s}", t.id());
        }
        if let Some(stats) = t.stats_mut() {
            stats.tls_handshakes += 1;
        }
        flush(&mut self.state.conn, t);
        let TlsLayer { inner, state } = self;
        inner.connection_made(&mut Inner { outer: t, state });
    }

    /// Hands the plaintext rustls holds to the wrapped protocol, until it
    /// pauses reading or closes; tells it `read_eof` after the peer's
    /// close_notify, and notes a truncation.
    fn deliver(&mut self, t: &mut dyn Transport) {
        let mut held = PLAIN.with(Cell::take);
        let buf = plain_piece(&mut held);
        for _ in 0..1_000_000 {
            if self.state.paused || self.state.eof_told || self.state.error.is_some() || t.is_closing() {
                break;
            }
            let TlsLayer { inner, state } = self;
            match state.conn.reader().read(buf) {
                Ok(0) => {
                    log::trace!(target: "twirl::tls", "{} TLS close_notify received", t.id());
                    state.eof_told = true;
                    inner.read_eof(&mut Inner { outer: t, state });
                }
                Ok(n) => inner.data_received(&buf[..n], &mut Inner { outer: t, state }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The TCP stream ended without close_notify.
                    log::debug!("{} ({}): TLS truncated: the peer closed without close_notify", t.id(), t.peer_addr());
                    state.truncated = true;
                    t.lose_connection();
                    break;
                }
            }
        }
        PLAIN.with(|c| c.set(held));
    }

    /// The TCP stream ended: rustls learns of it, and what it held is delivered.
    fn tcp_eof(&mut self, t: &mut dyn Transport) {
        self.state.tcp_eof = true;
        if !self.state.pending_in.is_empty() || self.state.error.is_some() {
            if self.state.error.is_some() {
                t.lose_connection();
            }
            return;
        }
        if !self.state.made {
            let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed during the TLS handshake");
            log::debug!("{} ({}): TLS handshake failed: {e}", t.id(), t.peer_addr());
            self.state.error = Some(e);
            t.lose_connection();
            return;
        }
        let _ = self.state.conn.read_tls(&mut io::empty());
        if let Err(e) = self.state.conn.process_new_packets() {
            self.fail(t, io::Error::new(io::ErrorKind::InvalidData, e));
            return;
        }
        self.deliver(t);
    }

    /// Reading resumed: deliver what waited, feed what rustls could not take.
    fn resume(&mut self, t: &mut dyn Transport) {
        self.state.resume_scheduled = false;
        if self.state.paused {
            return;
        }
        self.deliver(t);
        let pending = std::mem::take(&mut self.state.pending_in);
        if !pending.is_empty() {
            self.feed(&pending, t);
        }
        if self.state.tcp_eof && self.state.pending_in.is_empty() && !self.state.paused && !t.is_closing() {
            self.tcp_eof(t);
        }
    }
}

impl Protocol for TlsLayer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let side = if self.is_client() { "client" } else { "server" };
        log::trace!(target: "twirl::tls", "{} TLS handshake started ({side}, peer {})", t.id(), t.peer_addr());
        self.state.timer = Some(t.call_later(self.state.timeout, HANDSHAKE_TAG));
        // The layer writes whole flights and records, each already one
        // write: Nagle could only hold a flight back behind an ACK.
        let _ = t.set_nodelay(true);
        // A client's hello.
        flush(&mut self.state.conn, t);
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if self.state.error.is_some() {
            return;
        }
        if self.state.pending_in.is_empty() {
            self.feed(data, t);
        } else {
            self.state.pending_in.extend_from_slice(data);
        }
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.tcp_eof(t);
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        if !self.state.made {
            if let Some(stats) = cx.stats_mut() {
                stats.tls_failures += 1;
            }
            if self.state.error.is_none() {
                log::debug!("TLS handshake did not finish: {reason}");
            }
        }
        let why = match (self.state.error.take(), self.state.truncated) {
            (Some(e), _) => Some(Disconnect::Tls(e)),
            (None, true) => Some(Disconnect::Truncated),
            (None, false) => None,
        };
        // A server's protocol that never saw its connection made is not
        // told; a client's is (its connect failed, as a refused one would).
        if self.state.made || self.is_client() {
            self.inner.connection_lost(why.as_ref().unwrap_or(reason), cx);
        }
    }

    fn pause_writing(&mut self, t: &mut dyn Transport) {
        if self.state.made {
            let TlsLayer { inner, state } = self;
            inner.pause_writing(&mut Inner { outer: t, state });
        }
    }

    fn resume_writing(&mut self, t: &mut dyn Transport) {
        if self.state.made {
            let TlsLayer { inner, state } = self;
            inner.resume_writing(&mut Inner { outer: t, state });
        }
    }

    fn drained(&mut self, t: &mut dyn Transport) {
        if self.state.made {
            let TlsLayer { inner, state } = self;
            inner.drained(&mut Inner { outer: t, state });
        }
    }

    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        match tag {
            HANDSHAKE_TAG => {
                self.state.timer = None;
                if !self.state.made && self.state.error.is_none() {
                    let secs = self.state.timeout.as_secs_f64();
                    let e = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the TLS handshake did not finish within {secs:.1} s"),
                    );
                    log::debug!("{} ({}): {e}; closing", t.id(), t.peer_addr());
                    self.state.error = Some(e);
                    t.abort_connection();
                }
            }
            RESUME_TAG => self.resume(t),
            _ if self.state.made => {
                let TlsLayer { inner, state } = self;
                inner.timer_fired(tag, &mut Inner { outer: t, state });
            }
            _ => {}
        }
    }

    fn is_layer(&self) -> bool {
        true
    }

    fn through_layer(&mut self, t: &mut dyn Transport, f: &mut dyn FnMut(&mut dyn Transport)) {
        f(&mut Inner { outer: t, state: &mut self.state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plaintext_piece_starts_mid_page_whatever_the_allocation() {
        for extra in [0, 1, 5, 100, 4095] {
            // Allocations of assorted sizes move where the next one lands.
            let _shift = vec![0u8; extra];
            let mut held = Vec::new();
            let piece = plain_piece(&mut held);
            assert_eq!(piece.len(), PLAIN_PIECE);
            assert_eq!(piece.as_ptr() as usize % PAGE, PLAIN_PAGE_OFFSET);
            // Taken again, the same buffer gives the same piece.
            let first = piece.as_ptr();
            assert_eq!(plain_piece(&mut held).as_ptr(), first);
        }
    }
}
