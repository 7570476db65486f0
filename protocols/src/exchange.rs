//! What the plugins' clients share: one request and its reply over a stream,
//! a UDP request with timeouts and retries, and an interactive line mode.
//! All of it runs on a twirl reactor; none of it blocks in `recv`.
//!
//! A client waits for its result the library's way: its protocol fills a
//! [`twirl::Outcome`], a [`twirl::OneShot`] factory fills it with the error
//! if connecting fails, and [`wait`] runs the reactor until it is filled
//! ([`Reactor::run_until`]) and words the result as a [`ClientError`].

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use twirl::endpoint::ClientEndpoint;
use twirl::{
    Addr, ClientFactory, ConnId, Context, DatagramProtocol, DatagramTransport, Disconnect, OneShot, Outcome, Protocol,
    Reactor, Transport,
};

use crate::plugin::ClientError;

/// How long a client waits for its answer before giving up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout for a wait that has none of its own (interactive mode, a
/// receiver left listening): a hundred years.
pub const NO_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A stream reply, or why there is none.
type Reply = Outcome<io::Result<Vec<u8>>>;

/// The largest reply a client collects; past it the connection is closed
/// and the command fails (a server that never stops sending must not grow
/// the client without bound).
pub const MAX_REPLY: usize = 64 * 1024 * 1024;

/// Sends `request`, half-closes, and collects the reply until the server closes.
struct Exchange {
    request: Vec<u8>,
    reply: Vec<u8>,
    outcome: Reply,
}

impl Protocol for Exchange {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(&self.request);
        t.shutdown_write();
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if self.reply.len() + data.len() > MAX_REPLY {
            let why = format!("the reply passed {} MiB; stopped reading it", MAX_REPLY >> 20);
            self.outcome.set(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
            t.abort_connection();
            return;
        }
        self.reply.extend_from_slice(data);
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        let result = match reason.to_io_error() {
            // A reset after the whole reply arrived still delivered the reply.
            Some(e) if self.reply.is_empty() => Err(e),
            _ => Ok(std::mem::take(&mut self.reply)),
        };
        self.outcome.set(result);
    }
}

/// Sends stdin to a stream endpoint with flow control and writes what
/// comes back to stdout as it arrives (nothing is held whole: any amount
/// goes through in bounded memory); half-closes at stdin's end and returns,
/// once the server has closed, how many bytes were sent.
///
/// Stdin is read a chunk at a time while the connection's output is below
/// its high-water mark, and again at `resume_writing`; the replies are read
/// meanwhile (backpressure off), since a client that stopped reading them
/// while its own output waits is the deadlock lab's client.
pub fn stream_stdin(endpoint: &ClientEndpoint) -> Result<u64, ClientError> {
    let outcome: Outcome<io::Result<u64>> = Outcome::new();
    let mut reactor = new_reactor(endpoint)?;
    let o = outcome.clone();
    let factory = OneShot::new(outcome.clone(), move |_: &Addr| StdinPump { sent: 0, done: false, outcome: o });
    connect_stream(&mut reactor, endpoint, factory)?;
    wait(&mut reactor, endpoint, &outcome, NO_TIMEOUT)
}

/// Stdin to the connection, the connection to stdout.
struct StdinPump {
    sent: u64,
    done: bool,
    outcome: Outcome<io::Result<u64>>,
}

/// The pump's timer tag: go on reading stdin next turn.
const PUMP_AGAIN: u64 = 0;

impl StdinPump {
    fn pump(&mut self, t: &mut dyn Transport) {
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..256 {
            if self.done || t.writing_paused() || t.is_closing() {
                return;
            }
            match io::Read::read(&mut io::stdin().lock(), &mut buf) {
                Ok(0) => {
                    self.done = true;
                    t.shutdown_write();
                }
                Ok(n) => {
                    self.sent += n as u64;
                    t.write(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.outcome.set(Err(io::Error::new(e.kind(), format!("stdin: {e}"))));
                    t.abort_connection();
                    return;
                }
            }
        }
        // 16 MiB in one go: let the replies be read, then go on.
        t.call_later(Duration::ZERO, PUMP_AGAIN);
    }
}

impl Protocol for StdinPump {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_backpressure(false);
        self.pump(t);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let mut out = io::stdout().lock();
        if let Err(e) = out.write_all(data).and_then(|_| out.flush()) {
            self.outcome.set(Err(io::Error::new(e.kind(), format!("stdout: {e}"))));
            t.abort_connection();
        }
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.pump(t);
    }
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        if tag == PUMP_AGAIN {
            self.pump(t);
        }
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        self.outcome.set(reason.to_io_error().map_or(Ok(self.sent), Err));
    }
}

/// Connects `reactor` to a stream endpoint with a one-shot factory.
pub fn connect_stream(
    reactor: &mut Reactor,
    endpoint: &ClientEndpoint,
    factory: impl ClientFactory,
) -> Result<(), ClientError> {
    let result = match endpoint {
        ClientEndpoint::Tcp(..) => {
            let addr = endpoint.resolve().map_err(|e| ClientError::runtime(endpoint, e))?;
            reactor.connect_tcp(addr, factory)
        }
        ClientEndpoint::Unix(path) => reactor.connect_unix(path, factory),
        ClientEndpoint::Tls(_) => reactor.connect(endpoint, factory).map(|_| ()),
        ClientEndpoint::Udp(..) => {
            return Err(ClientError::usage(format!("{endpoint}: expected a tcp: or unix: endpoint")));
        }
    };
    result.map_err(|e| ClientError::runtime(endpoint, e))
}

fn new_reactor(endpoint: &ClientEndpoint) -> Result<Reactor, ClientError> {
    Reactor::new().map_err(|e| ClientError::runtime(endpoint, e))
}

/// Sends `request` over a TCP or Unix endpoint, half-closes, and returns
/// everything the server sent until it closed.
pub fn stream_exchange(endpoint: &ClientEndpoint, request: &[u8], timeout: Duration) -> Result<Vec<u8>, ClientError> {
    let outcome = Reply::new();
    let mut reactor = new_reactor(endpoint)?;
    let request = request.to_vec();
    let o = outcome.clone();
    let factory = OneShot::new(outcome.clone(), move |_: &Addr| Exchange { request, reply: Vec::new(), outcome: o });
    connect_stream(&mut reactor, endpoint, factory)?;
    wait(&mut reactor, endpoint, &outcome, timeout)
}

/// Runs the reactor until `outcome` is filled or `timeout` passes
/// ([`Reactor::run_until`]), and words the result for the command line: the
/// value, the error the protocol reported, `no reply in time`, or `the
/// reactor stopped before a reply`. (What a protocol reports while the
/// deadline's graceful stop closes its connection does not pass for the
/// answer: `run_until` reports the timeout.)
pub fn wait<T: 'static>(
    reactor: &mut Reactor,
    endpoint: &ClientEndpoint,
    outcome: &Outcome<io::Result<T>>,
    timeout: Duration,
) -> Result<T, ClientError> {
    match reactor.run_until(outcome, timeout) {
        Ok(result) => result.map_err(|e| ClientError::runtime(endpoint, e)),
        Err(e) => Err(ClientError::runtime(endpoint, unfinished(e))),
    }
}

/// Why [`Reactor::run_until`] came back without a result, in the words the
/// `twirl` command has always used.
fn unfinished(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "no reply in time"),
        io::ErrorKind::Interrupted => io::Error::new(io::ErrorKind::Interrupted, "the reactor stopped before a reply"),
        _ => e,
    }
}

/// Retry policy for UDP requests: wait `first_timeout`, doubling each try.
#[derive(Clone, Copy, Debug)]
pub struct UdpRetry {
    /// Tries in all.
    pub tries: u32,
    /// The wait after the first try; doubles after each.
    pub first_timeout: Duration,
}

impl Default for UdpRetry {
    /// 5 tries from 0.5 s: 0.5 + 1 + 2 + 4 + 8 s at the most.
    fn default() -> Self {
        UdpRetry { tries: 5, first_timeout: Duration::from_millis(500) }
    }
}

/// Decides whether a datagram is the answer to our request.
pub type ReplyFilter = Box<dyn Fn(&[u8]) -> bool>;

/// Sends `request` and waits for a datagram that `accept` takes as its
/// answer, resending with exponential back-off (seed 002's udp_remote).
/// The socket is connected to the server, so datagrams from anyone else are
/// never seen; `accept` also rejects stray or spoofed replies from the
/// server's address (seed 002's "promiscuous client").
struct UdpRequest {
    request: Vec<u8>,
    to: SocketAddr,
    accept: ReplyFilter,
    retry: UdpRetry,
    tries: u32,
    outcome: Reply,
}

impl UdpRequest {
    fn send(&mut self, t: &mut dyn DatagramTransport) {
        self.tries += 1;
        t.send_to(&self.request, self.to);
        let wait = self.retry.first_timeout * 2u32.saturating_pow(self.tries - 1);
        t.call_later(wait, 0);
    }

    fn finish(&mut self, result: io::Result<Vec<u8>>) {
        self.outcome.set(result);
    }
}

impl DatagramProtocol for UdpRequest {
    fn started(&mut self, t: &mut dyn DatagramTransport) {
        self.send(t);
    }
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, _: &mut dyn DatagramTransport) {
        if (self.accept)(data) {
            self.finish(Ok(data.to_vec()));
        } else {
            log::warn!("ignored a datagram from {from} that does not answer our request");
        }
    }
    fn connection_refused(&mut self, _: &mut dyn DatagramTransport) {
        self.finish(Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "nothing listens there (ICMP port unreachable)",
        )));
    }
    fn timer_fired(&mut self, _: u64, t: &mut dyn DatagramTransport) {
        if self.outcome.is_set() {
            return;
        }
        if self.tries >= self.retry.tries {
            let msg = format!("no reply after {} tries", self.tries);
            return self.finish(Err(io::Error::new(io::ErrorKind::TimedOut, msg)));
        }
        log::info!("no reply yet; resending (try {} of {})", self.tries + 1, self.retry.tries);
        self.send(t);
    }
}

/// One UDP request/reply with retries; `accept` picks the real answer.
pub fn udp_exchange(
    endpoint: &ClientEndpoint,
    request: &[u8],
    accept: impl Fn(&[u8]) -> bool + 'static,
    retry: UdpRetry,
) -> Result<Vec<u8>, ClientError> {
    let ClientEndpoint::Udp(..) = endpoint else {
        return Err(ClientError::usage(format!("{endpoint}: expected a udp: endpoint")));
    };
    let to = endpoint.resolve().map_err(|e| ClientError::runtime(endpoint, e))?;
    let outcome = Reply::new();
    let mut reactor = new_reactor(endpoint)?;
    let proto = UdpRequest {
        request: request.to_vec(),
        to,
        accept: Box::new(accept),
        retry,
        tries: 0,
        outcome: outcome.clone(),
    };
    reactor.connect_udp(to, proto).map_err(|e| ClientError::runtime(endpoint, e))?;
    let total: Duration = (0..retry.tries).map(|i| retry.first_timeout * 2u32.saturating_pow(i)).sum();
    wait(&mut reactor, endpoint, &outcome, total + Duration::from_secs(1))
}

/// Prints a reply on stdout, with a newline if it lacks one.
pub fn print_reply(reply: &[u8]) -> Result<(), ClientError> {
    let mut out = io::stdout().lock();
    // A text reply without a final newline gets one, so the prompt does not
    // follow it on the same line; a binary one is written exactly as it came.
    let newline = !reply.ends_with(b"\n") && is_text(reply);
    let r = out.write_all(reply).and_then(|_| if newline { out.write_all(b"\n") } else { Ok(()) });
    // A closed stdout is the world's doing, not a usage mistake: exit 1.
    r.and_then(|_| out.flush()).map_err(|e| ClientError::runtime_msg(format!("stdout: {e}")))
}

/// UTF-8 with no control characters but tabs, newlines and carriage returns.
pub fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')))
}

/// Reads all of stdin, up to [`MAX_REPLY`] bytes (a request this client
/// holds whole; `twirl cat` streams any amount with flow control).
pub fn read_stdin() -> Result<Vec<u8>, ClientError> {
    let mut buf = Vec::new();
    let limit = MAX_REPLY as u64 + 1;
    io::Read::read_to_end(&mut io::Read::take(io::stdin(), limit), &mut buf)
        .map_err(|e| ClientError::usage(format!("stdin: {e}")))?;
    if buf.len() > MAX_REPLY {
        return Err(ClientError::usage(format!(
            "stdin: more than {} MiB; twirl cat sends any amount, with flow control",
            MAX_REPLY >> 20
        )));
    }
    Ok(buf)
}

/// Lines typed before the connection is up wait here; after that they go
/// straight to the reactor.
#[derive(Default)]
struct Typed {
    conn: Option<ConnId>,
    early: Vec<Vec<u8>>,
    eof: bool,
}

type SharedTyped = Arc<Mutex<Typed>>;

fn lock(t: &SharedTyped) -> std::sync::MutexGuard<'_, Typed> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Copies everything received to stdout as it arrives.
struct Printer {
    typed: SharedTyped,
    outcome: Outcome<io::Result<()>>,
}

impl Protocol for Printer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let mut typed = lock(&self.typed);
        typed.conn = Some(t.id());
        for line in typed.early.drain(..) {
            t.write(&line);
        }
        if typed.eof {
            t.shutdown_write();
        }
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let mut out = io::stdout().lock();
        if out.write_all(data).and_then(|_| out.flush()).is_err() {
            t.abort_connection();
        }
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        self.outcome.set(reason.to_io_error().map_or(Ok(()), Err));
    }
}

/// Interactive mode, like netcat: each stdin line goes to the server as it
/// is typed, replies print as they arrive; end of stdin half-closes, and the
/// command ends when the server closes.
///
/// A thread reads stdin (a blocking read must not stall the loop) and hands
/// each line to the reactor with `call_from_thread`.
pub fn interactive(endpoint: &ClientEndpoint) -> Result<(), ClientError> {
    let outcome = Outcome::new();
    let typed: SharedTyped = Arc::default();
    let mut reactor = new_reactor(endpoint)?;
    let (o, t) = (outcome.clone(), typed.clone());
    connect_stream(
        &mut reactor,
        endpoint,
        OneShot::new(outcome.clone(), move |_: &Addr| Printer { typed: t, outcome: o }),
    )?;
    let handle = reactor.handle();
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let eof = stdin.read_until(b'\n', &mut line).unwrap_or(0) == 0;
            let mut state = lock(&typed);
            match state.conn {
                Some(conn) => handle.call_from_thread(move |r| {
                    r.with_transport(conn, |t| if eof { t.shutdown_write() } else { t.write(&line) });
                }),
                None if eof => state.eof = true,
                None => state.early.push(line),
            }
            if eof {
                return;
            }
        }
    });
    match reactor.run_until(&outcome, NO_TIMEOUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ClientError::runtime(endpoint, e)),
        // Stopped before the server closed: nothing went wrong.
        Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::TimedOut) => Ok(()),
        Err(e) => Err(ClientError::runtime(endpoint, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts and never answers, not even by closing after the request.
    struct Silent;
    impl Protocol for Silent {
        fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
        fn read_eof(&mut self, _: &mut dyn Transport) {}
    }

    #[test]
    fn a_silent_server_is_no_reply_in_time_not_an_empty_reply() {
        let mut reactor = Reactor::new().unwrap();
        let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Silent).unwrap().addr;
        let endpoint: ClientEndpoint = format!("tcp:{addr}").parse().unwrap();
        let outcome = Reply::new();
        let o = outcome.clone();
        let exchange = move |_: &Addr| Exchange { request: b"hello".to_vec(), reply: Vec::new(), outcome: o };
        connect_stream(&mut reactor, &endpoint, OneShot::new(outcome.clone(), exchange)).unwrap();
        // The graceful stop after the timeout closes the connection cleanly,
        // which Exchange would report as an empty reply.
        let e = wait(&mut reactor, &endpoint, &outcome, Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.to_string(), format!("{endpoint}: no reply in time"));
        assert!(!e.usage);
    }
}
