//! The TLS layer on the in-memory [`Harness`]: a client and a server
//! connection pumped against each other, on the manual clock.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::UnbufferedServerConnection;

use super::config::provider;
use super::{TlsConnection, TlsLayer};
use crate::testing::Harness;
use crate::transport::{Context, Disconnect, Transport};
use crate::{Limits, Protocol};

/// What a wrapped protocol saw.
#[derive(Default)]
struct Seen {
    made: bool,
    data: Vec<u8>,
    eof: bool,
    paused: bool,
    lost: Option<String>,
    truncated: bool,
}

type Shared = Rc<RefCell<Seen>>;

/// Records everything; writes `greeting` when made; echoes if `echo`;
/// pauses reading after its first data if `pause`; closes after
/// `close_after` bytes, or half-closes (`shutdown_write`) if `half_close`.
struct Probe {
    seen: Shared,
    greeting: Vec<u8>,
    echo: bool,
    pause: bool,
    close_after: Option<usize>,
    half_close: bool,
}

impl Probe {
    fn new(seen: &Shared) -> Probe {
        Probe {
            seen: seen.clone(),
            greeting: Vec::new(),
            echo: false,
            pause: false,
            close_after: None,
            half_close: false,
        }
    }
}

impl Protocol for Probe {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.seen.borrow_mut().made = true;
        let greeting = std::mem::take(&mut self.greeting);
        t.write(&greeting);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let mut seen = self.seen.borrow_mut();
        seen.data.extend_from_slice(data);
        if self.echo {
            t.write(data);
        }
        if self.pause {
            self.pause = false;
            t.pause_reading();
        }
        if self.close_after.is_some_and(|n| seen.data.len() >= n) {
            self.close_after = None;
            if self.half_close {
                t.shutdown_write();
            } else {
                t.lose_connection();
            }
        }
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.seen.borrow_mut().eof = true;
        t.lose_connection();
    }
    fn pause_writing(&mut self, _: &mut dyn Transport) {
        self.seen.borrow_mut().paused = true;
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        let mut seen = self.seen.borrow_mut();
        seen.truncated = matches!(reason, Disconnect::Truncated);
        seen.lost = Some(reason.to_string());
    }
}

/// A self-signed certificate for localhost, and the configurations that use it.
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let cert = CertificateDer::from(made.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn server_layer(config: &Arc<rustls::ServerConfig>, inner: Probe) -> TlsLayer {
    let conn = UnbufferedServerConnection::new(config.clone()).expect("server connection");
    TlsLayer::new(TlsConnection::Server(conn), Box::new(inner), TIMEOUT)
}

fn client_layer(config: &Arc<rustls::ClientConfig>, inner: Probe) -> TlsLayer {
    let name = "localhost".try_into().expect("name");
    let conn = UnbufferedClientConnection::new(config.clone(), name).expect("client connection");
    TlsLayer::new(TlsConnection::Client(conn), Box::new(inner), TIMEOUT)
}

/// Moves bytes both ways until neither side has anything to say (bounded);
/// gives how many bytes went to the server.
fn pump<P: Protocol>(c: &mut Harness<TlsLayer>, s: &mut Harness<P>) -> usize {
    let mut to_server = 0;
    for _ in 0..100 {
        let (to_s, to_c) = (c.take_output(), s.take_output());
        if to_s.is_empty() && to_c.is_empty() {
            return to_server;
        }
        to_server += to_s.len();
        s.feed(&to_s);
        c.feed(&to_c);
    }
    panic!("the two sides never went quiet");
}

fn pair(client: Probe, server: Probe, limits: Limits) -> (Harness<TlsLayer>, Harness<TlsLayer>) {
    pair_with(client, server, crate::Config { limits, ..crate::Config::default() }, |layer| layer)
}

/// A client and a server on `config`, the server's layer wrapped by `wrap`,
/// both connected (the handshake still to be pumped).
fn pair_with<P: Protocol>(
    client: Probe,
    server: Probe,
    config: crate::Config,
    wrap: impl FnOnce(TlsLayer) -> P,
) -> (Harness<TlsLayer>, Harness<P>) {
    let (sc, cc) = configs();
    let mut c = Harness::new(client_layer(&cc, client));
    let mut s = Harness::with_config(wrap(server_layer(&sc, server)), config);
    c.set_peer_closes(false);
    s.set_peer_closes(false);
    c.connect();
    s.connect();
    (c, s)
}

/// The reactor's configuration with reads of `n` bytes from the first.
fn reads_of(n: usize) -> crate::Config {
    crate::Config { read_buffer: n, max_read_buffer: n, ..crate::Config::default() }
}

#[test]
fn a_handshake_then_echo_then_close_notify_both_ways() {
    let (cs, ss) = (Shared::default(), Shared::default());
    let client = Probe { greeting: b"hello".to_vec(), close_after: Some(5), ..Probe::new(&cs) };
    let server = Probe { echo: true, ..Probe::new(&ss) };
    let (mut c, mut s) = pair(client, server, Limits::default());
    assert!(!ss.borrow().made, "made only after the handshake");
    // Each flight is one write: Nagle would only hold one back behind an
    // ACK (a quarter of the handshakes per second, measured).
    assert!(c.nodelay() && s.nodelay(), "TCP_NODELAY on from the start");
    pump(&mut c, &mut s);
    assert_eq!(cs.borrow().data, b"hello");
    assert_eq!(ss.borrow().data, b"hello");
    // The client closed after the echo: close_notify reached the server as
    // read_eof, and the server's close_notify came back.
    assert!(ss.borrow().eof, "the peer's close_notify is a read_eof");
    assert!(s.is_write_shutdown() && c.is_write_shutdown());
    s.feed_eof();
    c.feed_eof();
    assert!(s.is_closed() && c.is_closed());
    assert_eq!(ss.borrow().lost.as_deref(), Some("closed cleanly"));
    assert_eq!(cs.borrow().lost.as_deref(), Some("closed cleanly"));
    assert_eq!((s.cx.stats().tls_handshakes, s.cx.stats().tls_failures), (1, 0));
    assert_eq!(c.cx.stats().tls_handshakes, 1);
}

#[test]
fn an_eof_without_close_notify_is_a_truncation() {
    let (cs, ss) = (Shared::default(), Shared::default());
    let client = Probe { greeting: b"partial".to_vec(), ..Probe::new(&cs) };
    let (mut c, mut s) = pair(client, Probe::new(&ss), Limits::default());
    pump(&mut c, &mut s);
    assert_eq!(ss.borrow().data, b"partial");
    s.feed_eof();
    assert!(!ss.borrow().eof, "no read_eof without close_notify");
    assert!(s.is_closed(), "closed at the peer's EOF");
    let seen = ss.borrow();
    assert!(seen.truncated, "reason: {:?}", seen.lost);
}

#[test]
fn an_abandoned_handshake_times_out_and_counts_as_a_failure() {
    let (sc, _) = configs();
    let seen = Shared::default();
    let mut s = Harness::new(server_layer(&sc, Probe::new(&seen)));
    s.connect();
    s.advance(Duration::from_secs(9));
    assert!(!s.is_closed());
    s.advance(Duration::from_secs(2));
    assert!(s.is_closed(), "closed by the handshake timeout");
    assert_eq!(s.cx.stats().tls_failures, 1);
    assert!(seen.borrow().lost.is_none(), "a server's protocol that was never made is not told");
}

#[test]
fn plaintext_gets_an_alert_and_the_close() {
    let (sc, _) = configs();
    let seen = Shared::default();
    let mut s = Harness::new(server_layer(&sc, Probe::new(&seen)));
    s.connect();
    s.feed(b"GET / HTTP/1.0\r\n\r\n");
    let out = s.take_output();
    assert_eq!(out.first(), Some(&0x15), "an alert record: {out:?}");
    assert!(s.is_closed() || s.is_write_shutdown(), "closing");
    assert!(seen.borrow().data.is_empty() && !seen.borrow().made);
    s.disconnect(Disconnect::Clean);
    assert_eq!(s.cx.stats().tls_failures, 1);
}

#[test]
fn flow_control_counts_the_ciphertext_and_the_hard_cap_applies() {
    let (cs, ss) = (Shared::default(), Shared::default());
    let limits = Limits { high_water: 64 * 1024, low_water: 16 * 1024, hard_cap: 1024 * 1024 };
    let (mut c, mut s) = pair(Probe::new(&cs), Probe { echo: true, ..Probe::new(&ss) }, limits);
    pump(&mut c, &mut s);
    assert!(ss.borrow().made);
    s.set_peer_reading(false);
    s.with_transport(|t| t.write(&[7u8; 200 * 1024]));
    assert!(s.buffered_len() > 200 * 1024, "the ciphertext waits in the transport: {}", s.buffered_len());
    assert!(ss.borrow().paused, "the wrapped protocol was told to pause");
    s.with_transport(|t| t.write(&[7u8; 1024 * 1024]));
    assert!(s.is_closed());
    assert!(matches!(s.lost_reason(), Some(Disconnect::HardCap { .. })), "{:?}", s.lost_reason());
}

/// A connected pair whose server protocol pauses reading after the first
/// piece of `sent`, which the client writes at once: the pair, what each
/// side saw, and how much the server took before pausing.
fn paused_after_first_piece(sent: &[u8]) -> (Harness<TlsLayer>, Harness<TlsLayer>, Shared, Shared, usize) {
    let (cs, ss) = (Shared::default(), Shared::default());
    let (mut c, mut s) = pair(Probe::new(&cs), Probe { pause: true, ..Probe::new(&ss) }, Limits::default());
    pump(&mut c, &mut s);
    c.with_transport(|t| t.write(sent));
    pump(&mut c, &mut s);
    let first = ss.borrow().data.len();
    assert!(first > 0 && first < sent.len(), "paused after the first piece ({first} bytes)");
    (c, s, cs, ss, first)
}

#[test]
fn paused_reading_holds_plaintext_until_resumed() {
    // Many records arrive in one read; the protocol pauses after the first
    // piece, and the session holds the rest.
    let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (_c, mut s, _cs, ss, first) = paused_after_first_piece(&sent);
    s.advance(Duration::from_secs(1));
    assert_eq!(ss.borrow().data.len(), first, "still paused");
    s.resume_reading();
    s.advance(Duration::ZERO);
    assert!(ss.borrow().data == sent, "all of it, in order, once resumed");
}

#[test]
fn a_write_while_paused_goes_out_and_the_rest_follows_in_order() {
    // The rest of the first part waits in the session while the protocol
    // writes.
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let (mut c, mut s, cs, ss, first) = paused_after_first_piece(&sent[..100_000]);
    // More records come while paused.
    c.with_transport(|t| t.write(&sent[100_000..]));
    pump(&mut c, &mut s);
    s.with_transport(|t| t.write(b"meanwhile"));
    pump(&mut c, &mut s);
    assert_eq!(cs.borrow().data, b"meanwhile", "the write went out");
    assert_eq!(ss.borrow().data.len(), first, "still paused");
    s.resume_reading();
    s.advance(Duration::ZERO);
    pump(&mut c, &mut s);
    assert!(ss.borrow().data == sent, "every byte, in order ({} of {})", ss.borrow().data.len(), sent.len());
}

/// Sends 1 MB from `c` to `s` (an echo) in pieces that cut records
/// anywhere; asserts it came back whole, and gives how much ciphertext `s` took.
fn echo_a_megabyte<P: Protocol>(c: &mut Harness<TlsLayer>, s: &mut Harness<P>, cs: &Shared) -> usize {
    let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    let mut ciphertext = 0;
    for piece in sent.chunks(70_001) {
        c.with_transport(|t| t.write(piece));
        ciphertext += pump(c, s);
    }
    assert!(cs.borrow().data == sent, "echoed whole ({} of {})", cs.borrow().data.len(), sent.len());
    ciphertext
}

#[test]
fn a_long_stream_echoes_whole_and_leaves_no_ciphertext_held() {
    let (cs, ss) = (Shared::default(), Shared::default());
    let (mut c, mut s) = pair(Probe::new(&cs), Probe { echo: true, ..Probe::new(&ss) }, Limits::default());
    pump(&mut c, &mut s);
    let ciphertext = echo_a_megabyte(&mut c, &mut s, &cs);
    let room = s.protocol.ciphertext_room();
    assert_eq!(room, 0, "an idle session keeps no ciphertext room");
    // Records are decrypted in the reactor's read buffer: only the pieces
    // of records cut at a read's two ends are copied (reads here start at
    // 8 KiB, half a record, and double).
    let copied = s.protocol.ciphertext_copied();
    assert!(copied < ciphertext * 3 / 4, "copied {copied} of {ciphertext} bytes of ciphertext");
}

/// A wrapper written before `data_received_mut`: it forwards
/// `data_received` only, so the layer gets its bytes to copy.
struct ForwardsCopies(TlsLayer);

impl Protocol for ForwardsCopies {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.0.connection_made(t);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        self.0.data_received(data, t);
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.0.read_eof(t);
    }
    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        self.0.connection_lost(reason, cx);
    }
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        self.0.timer_fired(tag, t);
    }
}

#[test]
fn a_layer_handed_bytes_to_copy_echoes_the_same_stream() {
    let (cs, ss) = (Shared::default(), Shared::default());
    let server = Probe { echo: true, ..Probe::new(&ss) };
    let (mut c, mut s) = pair_with(Probe::new(&cs), server, crate::Config::default(), ForwardsCopies);
    pump(&mut c, &mut s);
    assert!(ss.borrow().made, "the handshake finished");
    let ciphertext = echo_a_megabyte(&mut c, &mut s, &cs);
    assert!(s.protocol.0.ciphertext_copied() >= ciphertext, "every byte went through the session's buffer");
    assert_eq!(s.protocol.0.ciphertext_room(), 0);
}

#[test]
fn an_echo_of_one_read_leaves_in_one_write_per_64_kib() {
    let (cs, ss) = (Shared::default(), Shared::default());
    // Reads of 256 KiB: what is fed comes in one read.
    let server = Probe { echo: true, ..Probe::new(&ss) };
    let (mut c, mut s) = pair_with(Probe::new(&cs), server, reads_of(256 * 1024), |layer| layer);
    pump(&mut c, &mut s);
    let mut sent = Vec::new();
    for (size, most_writes) in [(48_000, 1), (200_000, 4)] {
        let piece: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        sent.extend_from_slice(&piece);
        c.with_transport(|t| t.write(&piece));
        let before = s.cx.stats().writes;
        let records = c.take_output();
        // As on a server's own thread, where records are 16 KiB at most.
        super::outbox::drop_thread_buffers();
        // Its records (16 KiB of plaintext each) are echoed one by one.
        s.feed(&records);
        let writes = s.cx.stats().writes - before;
        assert!(writes >= 1 && writes <= most_writes, "{size} B echoed in {writes} writes");
        c.feed(&s.take_output());
        assert!(cs.borrow().data == sent, "echoed whole and in order ({size} B)");
    }
}

#[test]
fn closing_or_half_closing_in_the_middle_of_a_batch_sends_the_batch_then_close_notify() {
    for half_close in [false, true] {
        let (cs, ss) = (Shared::default(), Shared::default());
        // Echoes, and closes once 40 000 bytes came: during the third record.
        let server = Probe { echo: true, close_after: Some(40_000), half_close, ..Probe::new(&ss) };
        let (mut c, mut s) = pair_with(Probe::new(&cs), server, reads_of(256 * 1024), |layer| layer);
        pump(&mut c, &mut s);
        let sent: Vec<u8> = (0..48_000u32).map(|i| (i % 251) as u8).collect();
        c.with_transport(|t| t.write(&sent));
        s.feed(&c.take_output());
        if half_close {
            assert!(s.is_write_shutdown() && !s.is_closed(), "the server half-closed, and still reads");
        } else {
            assert!(s.is_closed() || s.is_lingering(), "the server closed");
        }
        c.feed(&s.take_output());
        let got = cs.borrow().data.len();
        assert!(
            cs.borrow().data == sent,
            "all three records echoed ({got} of {}, half_close {half_close})",
            sent.len()
        );
        assert!(cs.borrow().eof, "then close_notify (half_close {half_close})");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever the protocol writes, however the ciphertext is cut into
    /// arrivals and however large the reactor's reads are, an echo under
    /// the layer gives back every byte in order: records cut by a read's
    /// end wait in the session, whole ones are decrypted in the read buffer.
    #[test]
    fn any_cut_of_the_ciphertext_echoes_whole(
        writes in proptest::collection::vec(1usize..40_000, 1..12),
        arrivals in proptest::collection::vec(1usize..50_000, 1..12),
        read in 1usize..80_000,
    ) {
        let (cs, ss) = (Shared::default(), Shared::default());
        let server = Probe { echo: true, ..Probe::new(&ss) };
        let (mut c, mut s) = pair_with(Probe::new(&cs), server, reads_of(read), |layer| layer);
        pump(&mut c, &mut s);
        let mut sent = Vec::new();
        for (n, len) in writes.iter().enumerate() {
            let piece: Vec<u8> = (0..*len).map(|i| (i * 7 + n) as u8).collect();
            c.with_transport(|t| t.write(&piece));
            sent.extend_from_slice(&piece);
        }
        let ciphertext = c.take_output();
        let mut at = 0;
        for cut in arrivals.iter().cycle().take(10_000) {
            if at == ciphertext.len() {
                break;
            }
            let end = (at + cut).min(ciphertext.len());
            s.feed(&ciphertext[at..end]);
            at = end;
        }
        pump(&mut c, &mut s);
        proptest::prop_assert!(cs.borrow().data == sent, "echoed {} of {}", cs.borrow().data.len(), sent.len());
        proptest::prop_assert_eq!(s.protocol.ciphertext_room(), 0);
    }
}
