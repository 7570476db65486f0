//! UDP sockets in the loop: one datagram in, one callback.
//!
//! Receiving uses `MSG_TRUNC`, which makes the kernel report a datagram's
//! real length: one larger than the buffer is refused as truncated instead of
//! being parsed cut short. Sending never blocks: if the kernel buffer is
//! full, datagrams wait in a bounded queue until the socket is writable;
//! past the bound they are dropped and counted.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use mio::net::UdpSocket;

use crate::core::{Core, CoreCx, Fate, Readiness, Source, TimerKind};
use crate::guard::guarded;
use crate::policy::ReplyGuard;
use crate::protocol::DatagramProtocol;
use crate::source::resolving::AfterResolve;
use crate::stats::Stats;
use crate::transport::{ConnId, DatagramTransport};

pub(crate) struct UdpSource {
    protocol: Box<dyn DatagramProtocol>,
    io: UdpIo,
}

struct UdpIo {
    token: u64,
    socket: UdpSocket,
    /// A server socket's guard against loops and reflection (none for clients).
    guard: Option<Rc<RefCell<ReplyGuard>>>,
    local: SocketAddr,
    queue: VecDeque<(Box<[u8]>, SocketAddr)>,
    queue_limit: usize,
    dropped: u64,
    /// Asked to stop listening: close once the callback returns.
    closing: bool,
}

impl UdpIo {
    fn send_to(&mut self, data: &[u8], to: SocketAddr, stats: &mut Stats) -> bool {
        if self.queue.is_empty() {
            match self.socket.send_to(data, to) {
                Ok(_) => {
                    stats.datagrams_out += 1;
                    log::trace!(target: "twirl::loop", "{} sent {} B to {to}", ConnId(self.token), data.len());
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stats.would_blocks += 1;
                }
                Err(e) => {
                    log::debug!("{} send to {to} failed: {e}", ConnId(self.token));
                    self.dropped += 1;
                    stats.datagrams_dropped += 1;
                    return false;
                }
            }
        }
        if self.queue.len() >= self.queue_limit {
            self.dropped += 1;
            stats.datagrams_dropped += 1;
            return false;
        }
        self.queue.push_back((data.into(), to));
        true
    }

    fn flush(&mut self, stats: &mut Stats) {
        while let Some((data, to)) = self.queue.front() {
            match self.socket.send_to(data, *to) {
                Ok(_) => stats.datagrams_out += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("{} send to {to} failed: {e}", ConnId(self.token));
                    stats.datagrams_dropped += 1;
                }
            }
            self.queue.pop_front();
        }
    }

    /// Receives one datagram into `buf`; the length returned is the
    /// datagram's real length, which exceeds `buf.len()` if it was truncated.
    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let sock = socket2::SockRef::from(&self.socket);
        // SAFETY: u8 and MaybeUninit<u8> have the same layout, and recv only
        // ever writes initialized bytes into the buffer, so it stays fully
        // initialized as a &mut [u8] requires.
        let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        let (n, from) = sock.recv_from_with_flags(uninit, libc::MSG_TRUNC)?;
        let from = from
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address"))?;
        Ok((n, from))
    }
}

/// A UDP socket's [`DatagramTransport`] during one of its callbacks.
struct UdpCtx<'a> {
    io: &'a mut UdpIo,
    cx: CoreCx<'a>,
}

crate::core::context::forward_context!(UdpCtx<'_>, cx);

impl DatagramTransport for UdpCtx<'_> {
    fn id(&self) -> ConnId {
        ConnId(self.io.token)
    }
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> bool {
        if let Some(guard) = &self.io.guard
            && let Err(why) = guard.borrow_mut().check(to, self.cx.core.now)
        {
            self.cx.core.stats.replies_refused += 1;
            log::debug!("{} did not send {} B to {to}: {why}", ConnId(self.io.token), data.len());
            return false;
        }
        self.io.send_to(data, to, &mut self.cx.core.stats)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.socket.local_addr()
    }
    fn dropped(&self) -> u64 {
        self.io.dropped
    }
    fn close(&mut self) {
        self.io.closing = true;
    }
    fn set_broadcast(&mut self, on: bool) -> io::Result<()> {
        self.io.socket.set_broadcast(on)
    }
    fn join_multicast(&mut self, group: IpAddr, interface: Option<IpAddr>, index: u32) -> io::Result<()> {
        match (group, interface) {
            (IpAddr::V4(g), Some(IpAddr::V4(i))) => self.io.socket.join_multicast_v4(&g, &i),
            (IpAddr::V4(g), _) => self.io.socket.join_multicast_v4(&g, &std::net::Ipv4Addr::UNSPECIFIED),
            (IpAddr::V6(g), _) => self.io.socket.join_multicast_v6(&g, index),
        }
    }
    fn leave_multicast(&mut self, group: IpAddr, interface: Option<IpAddr>, index: u32) -> io::Result<()> {
        match (group, interface) {
            (IpAddr::V4(g), Some(IpAddr::V4(i))) => self.io.socket.leave_multicast_v4(&g, &i),
            (IpAddr::V4(g), _) => self.io.socket.leave_multicast_v4(&g, &std::net::Ipv4Addr::UNSPECIFIED),
            (IpAddr::V6(g), _) => self.io.socket.leave_multicast_v6(&g, index),
        }
    }
}

/// Runs one protocol callback with the socket's transport. A panic in it
/// is logged and that datagram dropped; the socket goes on serving everyone
/// else (see [`crate::guard`]).
fn call(
    protocol: &mut dyn DatagramProtocol,
    io: &mut UdpIo,
    core: &mut Core,
    token: u64,
    f: impl FnOnce(&mut dyn DatagramProtocol, &mut dyn DatagramTransport),
) {
    let mut ctx = UdpCtx { io, cx: CoreCx { core, token } };
    if let Err(e) = guarded(|| f(protocol, &mut ctx)) {
        ctx.cx.core.stats.panics += 1;
        log::error!("{} udp: {e}; dropped the datagram", ConnId(token));
    }
}

/// Datagrams handled per socket per turn before others get theirs; also
/// bounded by [`crate::Config::read_budget`] bytes, so that a flood of large
/// datagrams cannot hold a turn for long.
const DATAGRAM_BUDGET: usize = 256;

impl UdpSource {
    /// Registers a bound socket in the loop and calls `started`; returns
    /// its token and address. A server socket (not `connected`) replies
    /// only as `guard` allows.
    pub(crate) fn add(
        core: &mut Core,
        socket: UdpSocket,
        protocol: Box<dyn DatagramProtocol>,
        connected: Option<SocketAddr>,
        guard: Option<Rc<RefCell<ReplyGuard>>>,
    ) -> io::Result<(u64, SocketAddr)> {
        let token = core.reserve();
        Self::add_at(core, token, socket, protocol, connected, guard).map(|local| (token, local))
    }

    /// [`add`](Self::add) in the slot `token`, reserved for it; the slot is
    /// freed if the socket cannot be registered.
    pub(crate) fn add_at(
        core: &mut Core,
        token: u64,
        mut socket: UdpSocket,
        mut protocol: Box<dyn DatagramProtocol>,
        connected: Option<SocketAddr>,
        guard: Option<Rc<RefCell<ReplyGuard>>>,
    ) -> io::Result<SocketAddr> {
        let local = match socket.local_addr() {
            Ok(a) => a,
            Err(e) => {
                core.remove(token);
                return Err(e);
            }
        };
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        if let Err(e) = mio::event::Source::register(&mut socket, &core.registry, mio::Token(token as usize), interest)
        {
            core.remove(token);
            return Err(e);
        }
        match connected {
            Some(peer) => log::debug!("{} udp {local} connected to {peer}", ConnId(token)),
            None => log::debug!("{} udp listening on {local}", ConnId(token)),
        }
        if let Some(g) = &guard {
            g.borrow_mut().own(local, true);
        }
        let queue_limit = core.config.udp_send_queue;
        let mut io =
            UdpIo { token, socket, guard, local, queue: VecDeque::new(), queue_limit, dropped: 0, closing: false };
        call(&mut *protocol, &mut io, core, token, |p, t| p.started(t));
        let mut source = UdpSource { protocol, io };
        if source.io.closing {
            source.stop(core, token);
            core.remove(token);
        } else {
            core.put_back(token, Box::new(source));
        }
        Ok(local)
    }
}

/// Opens a UDP socket connected to `remote` (from an ephemeral port of
/// its family) in the slot `token`, reserved for it.
pub(crate) fn connect_at(
    core: &mut Core,
    token: u64,
    remote: SocketAddr,
    protocol: Box<dyn DatagramProtocol>,
) -> io::Result<SocketAddr> {
    let any: SocketAddr = if remote.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let opened = UdpSocket::bind(any).and_then(|s| s.connect(remote).map(|()| s));
    match opened {
        Ok(socket) => UdpSource::add_at(core, token, socket, protocol, Some(remote), None),
        Err(e) => {
            core.remove(token);
            Err(e)
        }
    }
}

/// A connected UDP socket waiting for its host name.
pub(crate) struct PendingUdp {
    pub protocol: Box<dyn DatagramProtocol>,
    /// The endpoint as given, for the log.
    pub to: String,
}

impl AfterResolve for PendingUdp {
    fn resolved(self: Box<Self>, core: &mut Core, token: u64, addr: SocketAddr) -> Fate {
        let PendingUdp { protocol, to } = *self;
        if let Err(e) = connect_at(core, token, addr, protocol) {
            // The protocol went with the socket that could not be opened.
            log::info!("{} udp to {to} ({addr}): {e}", ConnId(token));
        }
        Fate::Replaced
    }

    fn failed(mut self: Box<Self>, core: &mut Core, e: io::Error) {
        log::info!("udp to {}: {e}", self.to);
        if let Err(panic) = guarded(|| self.protocol.stopped(&mut CoreCx { core, token: 0 })) {
            core.stats.panics += 1;
            log::error!("udp to {}: in stopped: {panic}", self.to);
        }
    }
}

impl Source for UdpSource {
    fn ready(&mut self, core: &mut Core, token: u64, r: Readiness) -> Fate {
        let UdpSource { protocol, io } = self;
        let protocol = &mut **protocol;
        if r.writable && !io.queue.is_empty() {
            io.flush(&mut core.stats);
        }
        if r.readable || r.error {
            let mut buf = std::mem::take(&mut core.read_buf);
            let limit = core.config.max_datagram.min(buf.len());
            let mut budget_spent = true;
            let mut bytes = 0;
            for _ in 0..DATAGRAM_BUDGET {
                if io.closing {
                    budget_spent = false;
                    break;
                }
                match io.recv(&mut buf[..limit]) {
                    Ok((n, from)) if n > limit => {
                        core.stats.datagrams_dropped += 1;
                        bytes += limit;
                        call(protocol, io, core, token, |p, t| p.datagram_truncated(n, from, t));
                    }
                    Ok((n, from)) => {
                        core.stats.datagrams_in += 1;
                        bytes += n;
                        log::trace!(target: "twirl::loop", "{} datagram {n} B from {from}", ConnId(token));
                        call(protocol, io, core, token, |p, t| p.datagram_received(&buf[..n], from, t));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        core.stats.would_blocks += 1;
                        budget_spent = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        call(protocol, io, core, token, |p, t| p.connection_refused(t));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("{} receive failed: {e}", ConnId(token));
                        budget_spent = false;
                        break;
                    }
                }
                if bytes >= core.config.read_budget {
                    break;
                }
            }
            core.read_buf = buf;
            if budget_spent {
                core.ready.push(token);
            }
        }
        self.settle(core, token)
    }

    fn timer(&mut self, core: &mut Core, token: u64, kind: TimerKind, tag: u64) -> Fate {
        if kind == TimerKind::Proto {
            call(&mut *self.protocol, &mut self.io, core, token, |p, t| p.timer_fired(tag, t));
        }
        self.settle(core, token)
    }

    fn stop_listening(&mut self) -> bool {
        self.io.closing = true;
        true
    }

    fn descriptor(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.io.socket.as_fd())
    }

    fn pass_on(&mut self) -> Option<io::Result<std::os::fd::RawFd>> {
        use std::os::fd::{AsFd, AsRawFd};
        let fd = self.io.socket.as_fd();
        Some(crate::inherit::pass_on(fd).map(|()| fd.as_raw_fd()))
    }

    /// Closes the socket if it was asked to stop listening.
    fn settle(&mut self, core: &mut Core, token: u64) -> Fate {
        if !self.io.closing {
            return Fate::Keep;
        }
        log::debug!("{} udp {} stopped listening", ConnId(token), self.io.local);
        self.stop(core, token)
    }

    /// Flushes what is queued, tells the protocol, and leaves the loop.
    fn stop(&mut self, core: &mut Core, token: u64) -> Fate {
        self.io.flush(&mut core.stats);
        if let Some(g) = &self.io.guard {
            g.borrow_mut().own(self.io.local, false);
        }
        if let Err(e) = guarded(|| self.protocol.stopped(&mut CoreCx { core, token })) {
            core.stats.panics += 1;
            log::error!("{} udp: in stopped: {e}", ConnId(token));
        }
        core.cancel_timers_of(token);
        Fate::Done
    }
}
