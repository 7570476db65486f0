//! The TLS layer: a [`Protocol`] that owns a rustls connection and another
//! protocol, the way Twisted's `TLSMemoryBIOProtocol` does. Ciphertext from
//! the socket goes into the [`Session`]; the plaintext that comes out goes
//! to the wrapped protocol, which writes through the [`Inner`] transport and
//! never knows. What it writes while the plaintext of one read is handed
//! to it waits in a batch of at most 64 KiB and leaves in one write when
//! that delivery ends (or the batch fills, or the protocol closes);
//! everything else rustls produces is handed to the real transport at
//! once, so the connection's write buffer (its water marks, its hard cap,
//! the reactor's memory budget) counts all of it.
//!
//! The wrapped protocol's `connection_made` comes when the handshake has
//! finished. A handshake that fails (a plaintext client, garbage, a bad
//! certificate) or takes longer than its timeout closes the connection,
//! logged at debug level; a client's protocol hears why in
//! `connection_lost` ([`Disconnect::Tls`]).

use std::cell::Cell;
use std::io;
use std::time::Duration;

use super::inner::Inner;
use super::page::{KEEP_BELOW, PLAIN_PAGE_OFFSET, page_window};
use super::session::{Session, TlsConnection, io_error};
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

thread_local! {
    /// The plaintext buffer every layer on this thread reads into in turn.
    static PLAIN: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A TLS connection's state, apart from the wrapped protocol so that both
/// can be borrowed during a callback.
pub(crate) struct State {
    pub session: Session,
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
    pub fn new(conn: TlsConnection, inner: Box<dyn Protocol>, timeout: Duration) -> TlsLayer {
        let state = State {
            session: Session::new(conn),
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
        };
        TlsLayer { inner, state }
    }

    fn is_client(&self) -> bool {
        self.state.session.is_client()
    }

    /// rustls refused what the peer sent: send its alert, then close.
    fn fail(&mut self, t: &mut dyn Transport, e: io::Error) {
        self.state.session.flush_alert(t);
        let stage = if self.state.made { "TLS error" } else { "TLS handshake failed" };
        log::debug!("{} ({}): {stage}: {e}", t.id(), t.peer_addr());
        self.state.error = Some(e);
        t.lose_connection();
    }

    fn handshake_done(&mut self, t: &mut dyn Transport) {
        self.state.made = true;
        if let Some(h) = self.state.timer.take() {
            t.cancel_timer(h);
        }
        if log::log_enabled!(target: "twirl::tls", log::Level::Trace) {
            let (version, suite) = self.state.session.negotiated();
            let (v, s) = (version.map(|v| format!("{v:?}")), suite.map(|s| format!("{s:?}")));
            let (v, s) = (v.unwrap_or_default(), s.unwrap_or_default());
            log::trace!(target: "twirl::tls", "{} TLS handshake done: {v} {s}", t.id());
        }
        if let Some(stats) = t.stats_mut() {
            stats.tls_handshakes += 1;
        }
        let TlsLayer { inner, state } = self;
        inner.connection_made(&mut Inner { outer: t, state });
    }

    /// Processes the ciphertext that came (the session's, then `fresh`,
    /// decrypted where it lies): sends the handshake's flights,
    /// tells the wrapped protocol when it is done, then hands it the
    /// plaintext, a record at a time, until it pauses reading or closes
    /// (what is left waits in the session), and `read_eof` after the peer's
    /// close_notify. All the records that came are decrypted before the
    /// first is delivered, so that what the protocol writes meanwhile finds
    /// rustls ready to encrypt.
    fn pump(&mut self, t: &mut dyn Transport, mut fresh: &mut [u8]) {
        let mut held = PLAIN.with(Cell::take);
        for _ in 0..1_000_000 {
            if self.state.error.is_some() || self.state.eof_told || t.is_closing() {
                break;
            }
            if self.state.made && self.state.paused {
                // What came waits in the session.
                self.state.session.receive(fresh);
                break;
            }
            let fresh = std::mem::take(&mut fresh);
            let most = self.state.session.pending_len() + fresh.len();
            let buf = page_window(&mut held, most, PLAIN_PAGE_OFFSET);
            let filled = self.state.session.fill(t, fresh, buf);
            if !self.state.made && filled.is_ok() && !self.state.session.is_handshaking() {
                self.handshake_done(t);
            }
            let (len, closed) = match filled {
                Ok(f) => f,
                Err(e) => {
                    self.fail(t, io_error(e));
                    break;
                }
            };
            let buf = page_window(&mut held, len, PLAIN_PAGE_OFFSET);
            let mut at = 0;
            // What the protocol writes back leaves in one write per batch.
            self.state.session.begin_batch();
            while at < len && self.state.made {
                let TlsLayer { inner, state } = self;
                // The handshake's end, or a record, may have paused (or
                // closed) the wrapped protocol: the rest waits.
                if state.paused || t.is_closing() || state.error.is_some() {
                    break;
                }
                let n = PLAIN_PIECE.min(len - at);
                inner.data_received(&buf[at..at + n], &mut Inner { outer: t, state });
                at += n;
            }
            self.state.session.end_batch(t);
            if at < len && self.state.made {
                self.state.session.unread(&buf[at..len], closed);
                break;
            }
            if closed {
                log::trace!(target: "twirl::tls", "{} TLS close_notify received", t.id());
                self.state.eof_told = true;
                if self.state.made {
                    let TlsLayer { inner, state } = self;
                    inner.read_eof(&mut Inner { outer: t, state });
                }
                break;
            }
            if len == 0 {
                break;
            }
        }
        if held.capacity() < KEEP_BELOW {
            PLAIN.with(|c| c.set(held));
        }
    }

    /// The TCP stream ended: what came before it is delivered; without the
    /// peer's close_notify, that is a truncation.
    fn tcp_eof(&mut self, t: &mut dyn Transport) {
        self.state.tcp_eof = true;
        if self.state.error.is_some() {
            t.lose_connection();
            return;
        }
        if !self.state.made {
            let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed during the TLS handshake");
            log::debug!("{} ({}): TLS handshake failed: {e}", t.id(), t.peer_addr());
            self.state.error = Some(e);
            t.lose_connection();
            return;
        }
        self.pump(t, &mut []);
        if self.state.paused || self.state.eof_told || self.state.error.is_some() || t.is_closing() {
            return;
        }
        log::debug!("{} ({}): TLS truncated: the peer closed without close_notify", t.id(), t.peer_addr());
        self.state.truncated = true;
        t.lose_connection();
    }

    /// Reading resumed: deliver what waited.
    fn resume(&mut self, t: &mut dyn Transport) {
        self.state.resume_scheduled = false;
        if self.state.paused {
            return;
        }
        self.pump(t, &mut []);
        if self.state.tcp_eof && !self.state.paused && !self.state.eof_told && !t.is_closing() {
            self.tcp_eof(t);
        }
    }
}

#[cfg(test)]
impl TlsLayer {
    /// The ciphertext room the session holds.
    pub(crate) fn ciphertext_room(&self) -> usize {
        self.state.session.ciphertext_room()
    }

    /// How much ciphertext was copied into the session, all told.
    pub(crate) fn ciphertext_copied(&self) -> usize {
        self.state.session.ciphertext_copied()
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
        self.pump(t, &mut []);
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if self.state.error.is_some() {
            return;
        }
        self.state.session.receive(data);
        self.pump(t, &mut []);
    }

    /// The reactor's own read: records are decrypted in its read buffer,
    /// and only the pieces of records at its two ends are copied.
    fn data_received_mut(&mut self, data: &mut [u8], t: &mut dyn Transport) {
        if self.state.error.is_some() {
            return;
        }
        self.pump(t, data);
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
            let piece = page_window(&mut held, PLAIN_PIECE, PLAIN_PAGE_OFFSET);
            assert_eq!(piece.len(), PLAIN_PIECE);
            assert_eq!(piece.as_ptr() as usize % 4096, PLAIN_PAGE_OFFSET);
            // Taken again, the same buffer gives the same piece.
            let first = piece.as_ptr();
            assert_eq!(page_window(&mut held, PLAIN_PIECE, PLAIN_PAGE_OFFSET).as_ptr(), first);
        }
    }
}
