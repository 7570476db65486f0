//! `twirl cat`: a netcat for the reactor, and an example of a source in the
//! loop that is not a socket.
//!
//! `twirl cat tcp:HOST:PORT` (or `unix:PATH`) copies stdin to the socket and
//! the socket to stdout; when stdin ends it half-closes (the server still
//! gets to answer) and it exits when the server closes. `twirl cat
//! udp:HOST:PORT` sends each chunk of stdin as one datagram and prints each
//! datagram received, exiting a second after stdin ends. `twirl cat --listen
//! tcp:PORT` waits for one peer (others are turned away) and then does the
//! same; it prints `listening on ENDPOINT` on stderr, so port 0 can be used.
//!
//! Stdin is watched by the reactor like a socket ([`twirl::fd`]): it is made
//! non-blocking (and restored on exit) and read when readable. A regular file
//! cannot be watched that way (epoll refuses files), so the connection reads
//! a redirected file itself, as a producer: a chunk at a time while its
//! output is below the high-water mark, on again at `resume_writing`. Stdin
//! from a pipe or a terminal is flow-controlled too: it is not read while
//! the connection holds more than a high-water mark unsent (it looks again
//! every few milliseconds). So a 100 MB file goes out whole, at the pace
//! the peer takes it, in bounded memory. It replaces netcat and telnet for
//! every handout exercise: seed 003's chat, seed 001's IMAP session, the labs.
//!
//! ```text
//! $ twirl cat tcp:127.0.0.1:7100
//! hello big world
//! world big hello
//! ```

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use twirl::endpoint::{ClientEndpoint, ServerEndpoint};
use twirl::fd::{FdHandler, FdInterest, FdNext};
use twirl::{
    Addr, ConnId, Context, Disconnect, ListenOptions, OneShot, Outcome, Protocol, Reactor, Readiness, Transport,
};
use twirl_protocols::exchange::{NO_TIMEOUT, connect_stream};
use twirl_protocols::plugin::ClientError;

/// How long UDP mode waits for answers after stdin ends.
const UDP_LINGER: Duration = Duration::from_secs(1);

/// What stdin and the connection share.
#[derive(Default)]
struct Link {
    conn: Option<ConnId>,
    /// Stdin read before the connection was up.
    early: Vec<u8>,
    stdin_done: bool,
    /// Stdin is a regular file: the connection reads it as a producer.
    file: bool,
}

/// Unsent bytes past which stdin is not read (the reactor's high-water mark).
const HIGH_WATER: usize = 64 * 1024;
/// How often paused stdin looks again at the connection's backlog.
const RECHECK: Duration = Duration::from_millis(5);
/// Timer tags of the stdin source.
const LINGER_TAG: u64 = 0;
const RECHECK_TAG: u64 = 1;
/// The connection's timer tag to go on reading a file.
const PRODUCE_TAG: u64 = 2;
/// One read from stdin, and one datagram at most.
const CHUNK: usize = 64 * 1024;
const DATAGRAM: usize = 8 * 1024;

type SharedLink = Rc<RefCell<Link>>;

/// Filled when the command is done: the connection ended (with its error,
/// if any), UDP mode's linger passed, or stdout went away.
type Done = Outcome<io::Result<()>>;

/// Where stdin's bytes go.
#[derive(Clone)]
enum Sink {
    Stream(SharedLink),
    Datagram(Rc<UdpSocket>),
}

/// Puts stdin in non-blocking mode for as long as it lives.
struct NonBlocking {
    fd: RawFd,
    old: libc::c_int,
}

impl NonBlocking {
    fn set(fd: RawFd) -> io::Result<NonBlocking> {
        // SAFETY: fcntl with F_GETFL/F_SETFL only reads and changes the
        // descriptor's status flags; `fd` is stdin, open for our whole life.
        let old = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if old < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, old | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NonBlocking { fd, old })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        // SAFETY: restores the flags read in `set` on the same descriptor.
        unsafe { libc::fcntl(self.fd, libc::F_SETFL, self.old) };
    }
}

fn stdout_write(data: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(data)?;
    out.flush()
}

/// Stdin as a reactor source.
struct Stdin {
    sink: Sink,
    done: Done,
}

impl Stdin {
    fn deliver(&mut self, data: &[u8], cx: &mut dyn Context) {
        match &self.sink {
            Sink::Stream(link) => {
                let conn = link.borrow().conn;
                match conn {
                    Some(c) => {
                        cx.write_to(c, data);
                    }
                    None => link.borrow_mut().early.extend_from_slice(data),
                }
            }
            Sink::Datagram(sock) => {
                for d in data.chunks(DATAGRAM) {
                    if let Err(e) = sock.send(d) {
                        log::warn!("cat: send failed: {e}");
                    }
                }
            }
        }
    }

    fn finish(&mut self, cx: &mut dyn Context) {
        match &self.sink {
            Sink::Stream(link) => {
                let conn = {
                    let mut l = link.borrow_mut();
                    l.stdin_done = true;
                    l.conn
                };
                if let Some(c) = conn {
                    cx.with_conn(c, &mut |t| t.shutdown_write());
                }
            }
            Sink::Datagram(_) => {
                cx.call_later(UDP_LINGER, LINGER_TAG);
            }
        }
    }
}

impl FdHandler for Stdin {
    fn fd(&self) -> RawFd {
        io::stdin().as_raw_fd()
    }

    fn ready(&mut self, _: Readiness, cx: &mut dyn Context) -> FdNext {
        self.read_some(cx)
    }

    fn timer_fired(&mut self, tag: u64, cx: &mut dyn Context) -> FdNext {
        if tag == RECHECK_TAG {
            return self.read_some(cx);
        }
        self.done.set(Ok(()));
        FdNext::Remove
    }
}

impl Stdin {
    /// True while the connection holds a high-water mark unsent.
    fn backlogged(&self, cx: &dyn Context) -> bool {
        let Sink::Stream(link) = &self.sink else { return false };
        let l = link.borrow();
        match l.conn {
            Some(c) => cx.buffered_len_of(c).is_some_and(|n| n > HIGH_WATER),
            None => l.early.len() > HIGH_WATER,
        }
    }

    /// Reads stdin until `WouldBlock`, EOF, a budget, or a backlog.
    fn read_some(&mut self, cx: &mut dyn Context) -> FdNext {
        // Larger than Stdin's own buffer, so reads bypass it.
        let mut buf = vec![0u8; CHUNK];
        for _ in 0..64 {
            if self.backlogged(cx) {
                // No event will say the connection drained: look again soon.
                cx.call_later(RECHECK, RECHECK_TAG);
                return FdNext::Wait;
            }
            match io::stdin().lock().read(&mut buf) {
                Ok(0) => {
                    self.finish(cx);
                    // UDP mode keeps the handler for its linger timer.
                    return if matches!(self.sink, Sink::Datagram(_)) { FdNext::Wait } else { FdNext::Remove };
                }
                Ok(n) => self.deliver(&buf[..n], cx),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FdNext::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("cat: stdin: {e}");
                    self.finish(cx);
                    return FdNext::Remove;
                }
            }
        }
        // 64 reads taken and stdin not drained: no new event will say so.
        FdNext::Again
    }
}

/// The connection: socket bytes to stdout.
struct Peer {
    link: SharedLink,
    done: Done,
}

impl Protocol for Peer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let mut l = self.link.borrow_mut();
        l.conn = Some(t.id());
        let early = std::mem::take(&mut l.early);
        t.write(&early);
        let file = l.file;
        if l.stdin_done && !file {
            t.shutdown_write();
        }
        drop(l);
        if file {
            self.produce(t);
        }
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        if self.link.borrow().file {
            self.produce(t);
        }
    }
    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        if tag == PRODUCE_TAG {
            self.produce(t);
        }
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if let Err(e) = stdout_write(data) {
            // Said first, so the close that follows is not taken for the cause.
            self.done.set(Err(io::Error::new(e.kind(), format!("stdout: {e}"))));
            t.abort_connection();
        }
    }
    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        self.done.set(reason.to_io_error().map_or(Ok(()), Err));
    }
}

impl Peer {
    /// Stdin is a file: writes it a chunk at a time while the output is
    /// below the high-water mark; half-closes at its end.
    fn produce(&mut self, t: &mut dyn Transport) {
        if self.link.borrow().stdin_done {
            return;
        }
        let mut buf = vec![0u8; CHUNK];
        // The socket may take chunks as fast as they are read: a bound on
        // one call, then a continuation through a zero-delay timer.
        for _ in 0..256 {
            if t.writing_paused() || t.is_closing() {
                return;
            }
            match io::stdin().lock().read(&mut buf) {
                Ok(0) => return self.end_of_stdin(t),
                Ok(n) => t.write(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("cat: stdin: {e}");
                    return self.end_of_stdin(t);
                }
            }
        }
        // 16 MiB in one go: let others have the loop, then go on.
        t.call_later(Duration::ZERO, PRODUCE_TAG);
    }

    fn end_of_stdin(&mut self, t: &mut dyn Transport) {
        self.link.borrow_mut().stdin_done = true;
        t.shutdown_write();
    }
}

/// Turns away everyone after the first peer in `--listen` mode.
struct Busy;

impl Protocol for Busy {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        log::info!("cat: turned away {}: already talking to someone", t.peer_addr());
        t.write(b"busy\n");
        t.lose_connection();
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

/// Datagrams to stdout.
struct Datagrams {
    sock: Rc<UdpSocket>,
    done: Done,
}

impl FdHandler for Datagrams {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
    fn ready(&mut self, _: Readiness, _: &mut dyn Context) -> FdNext {
        let mut buf = vec![0u8; 65_536];
        for _ in 0..256 {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    if let Err(e) = stdout_write(&buf[..n]) {
                        self.done.set(Err(io::Error::new(e.kind(), format!("stdout: {e}"))));
                        return FdNext::Remove;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FdNext::Wait,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    log::warn!("cat: nothing listens there (ICMP port unreachable)");
                }
                Err(e) => log::warn!("cat: receive failed: {e}"),
            }
        }
        FdNext::Again
    }
}

/// Adds stdin to the loop. Descriptors epoll refuses (a regular file,
/// `/dev/null`) are read by the connection itself as a producer (UDP: sent
/// in datagrams before the loop runs).
fn watch_stdin(reactor: &mut Reactor, sink: Sink, done: &Done) -> io::Result<Option<NonBlocking>> {
    let guard = NonBlocking::set(io::stdin().as_raw_fd())?;
    match reactor.add_fd(Stdin { sink: sink.clone(), done: done.clone() }, FdInterest::Read) {
        Ok(_) => return Ok(Some(guard)),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => drop(guard),
        Err(e) => return Err(e),
    }
    match sink {
        // The connection reads the file itself, at the pace the peer takes it.
        Sink::Stream(link) => link.borrow_mut().file = true,
        Sink::Datagram(sock) => {
            let mut data = Vec::new();
            io::stdin().lock().read_to_end(&mut data)?;
            for d in data.chunks(DATAGRAM) {
                sock.send(d)?;
            }
            let done = done.clone();
            reactor.call_later(UDP_LINGER, move |_| {
                done.set(Ok(()));
            });
        }
    }
    Ok(None)
}

/// Runs `twirl cat [--listen] ENDPOINT`.
pub fn run(endpoint: &str, listen: bool) -> Result<(), ClientError> {
    let mut reactor = Reactor::new().map_err(|e| ClientError::usage(format!("cannot start the reactor: {e}")))?;
    let link: SharedLink = Rc::default();
    let done = Done::new();
    let (sink, label) = if listen {
        let ep: ServerEndpoint = endpoint.parse().map_err(|e| ClientError::usage(format!("{e}")))?;
        if matches!(ep, ServerEndpoint::Udp(_)) {
            return Err(ClientError::usage("--listen takes a tcp: or unix: endpoint"));
        }
        let first = Rc::new(std::cell::Cell::new(true));
        let (l, d) = (link.clone(), done.clone());
        let factory = move |_: &Addr| -> Box<dyn Protocol> {
            if first.replace(false) { Box::new(Peer { link: l.clone(), done: d.clone() }) } else { Box::new(Busy) }
        };
        let opts = ListenOptions { limits: reactor.config().limits, ..ListenOptions::new("cat") };
        let bound = reactor.listen_stream(&ep, Box::new(BoxedFactory(factory)), opts).map_err(|e| ClientError {
            endpoint: ep.to_string(),
            message: e.to_string(),
            usage: false,
        })?;
        eprintln!("listening on {bound}");
        (Sink::Stream(link.clone()), bound.to_string())
    } else {
        let ep: ClientEndpoint = endpoint.parse().map_err(|e| ClientError::usage(format!("{e}")))?;
        let runtime = |e: io::Error| ClientError::runtime(&ep, e);
        match &ep {
            ClientEndpoint::Udp(..) => {
                let to = ep.resolve().map_err(runtime)?;
                let any: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
                let sock = UdpSocket::bind(any).map_err(runtime)?;
                sock.connect(to).map_err(runtime)?;
                sock.set_nonblocking(true).map_err(runtime)?;
                let sock = Rc::new(sock);
                reactor
                    .add_fd(Datagrams { sock: sock.clone(), done: done.clone() }, FdInterest::Read)
                    .map_err(runtime)?;
                (Sink::Datagram(sock), ep.to_string())
            }
            _ => {
                let (l, d) = (link.clone(), done.clone());
                let peer = move |_: &Addr| Peer { link: l, done: d };
                connect_stream(&mut reactor, &ep, OneShot::new(done.clone(), peer))?;
                (Sink::Stream(link.clone()), ep.to_string())
            }
        }
    };
    let runtime = |e: io::Error| ClientError { endpoint: label.clone(), message: e.to_string(), usage: false };
    let guard = watch_stdin(&mut reactor, sink, &done).map_err(runtime)?;
    let result = reactor.run_until(&done, NO_TIMEOUT);
    drop(guard);
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(runtime(e)),
        // Stopped from outside before it was done: nothing went wrong.
        Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::TimedOut) => Ok(()),
        Err(e) => Err(runtime(e)),
    }
}

/// A factory from a closure that already returns a boxed protocol.
struct BoxedFactory<F>(F);

impl<F: FnMut(&Addr) -> Box<dyn Protocol> + 'static> twirl::Factory for BoxedFactory<F> {
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
        (self.0)(peer)
    }
}
