//! UDP sockets in the loop: one datagram in, one callback.
//!
//! Receiving uses `MSG_TRUNC`, which makes the kernel report a datagram's
//! real length: one larger than the buffer is refused as truncated instead of
//! being parsed cut short. Sending never blocks: if the kernel buffer is
//! full, datagrams wait in a bounded queue until the socket is writable;
//! past the bound they are dropped and counted.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};

use mio::net::UdpSocket;

use crate::conn::CoreCx;
use crate::protocol::DatagramProtocol;
use crate::reactor::{Core, Readiness, Source};
use crate::stats::Stats;
use crate::transport::{ConnId, DatagramTransport};

pub(crate) struct UdpEntry {
    protocol: Box<dyn DatagramProtocol>,
    io: UdpIo,
}

struct UdpIo {
    token: u64,
    socket: UdpSocket,
    queue: VecDeque<(Box<[u8]>, SocketAddr)>,
    queue_limit: usize,
    dropped: u64,
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

crate::testing::forward_context!(UdpCtx<'_>, cx);

impl DatagramTransport for UdpCtx<'_> {
    fn id(&self) -> ConnId {
        ConnId(self.io.token)
    }
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> bool {
        self.io.send_to(data, to, &mut self.cx.core.stats)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.socket.local_addr()
    }
    fn dropped(&self) -> u64 {
        self.io.dropped
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

/// A panic in the callback is logged and that datagram dropped; the socket
/// goes on serving everyone else (see [`crate::guard`]).
macro_rules! with_udp {
    ($core:expr, $entry:expr, |$p:ident, $t:ident| $body:expr) => {{
        let UdpEntry { protocol: $p, io } = &mut *$entry;
        let token = io.token;
        let mut ctx = UdpCtx { io, cx: CoreCx { core: $core, token } };
        if let Err(e) = crate::guard::guarded(|| {
            let $t = &mut ctx;
            $body
        }) {
            ctx.cx.core.stats.panics += 1;
            log::error!("{} udp: {e}; dropped the datagram", ConnId(token));
        }
    }};
}

/// Datagrams handled per socket per turn before others get theirs.
const DATAGRAM_BUDGET: usize = 256;

impl Core {
    pub(crate) fn add_udp(
        &mut self,
        mut socket: UdpSocket,
        protocol: Box<dyn DatagramProtocol>,
        connected: Option<SocketAddr>,
    ) -> io::Result<SocketAddr> {
        let local = socket.local_addr()?;
        let token = self.insert(Source::Busy);
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        if let Err(e) = mio::event::Source::register(&mut socket, &self.registry, mio::Token(token as usize), interest)
        {
            self.remove(token);
            return Err(e);
        }
        match connected {
            Some(peer) => log::debug!("{} udp {local} connected to {peer}", ConnId(token)),
            None => log::debug!("{} udp listening on {local}", ConnId(token)),
        }
        let io = UdpIo { token, socket, queue: VecDeque::new(), queue_limit: self.config.udp_send_queue, dropped: 0 };
        let mut entry = Box::new(UdpEntry { protocol, io });
        with_udp!(self, entry, |p, t| p.started(t));
        self.put_back(token, Source::Udp(entry));
        Ok(local)
    }

    pub(crate) fn udp_ready(&mut self, token: u64, mut entry: Box<UdpEntry>, r: Readiness) {
        if r.writable && !entry.io.queue.is_empty() {
            entry.io.flush(&mut self.stats);
        }
        if r.readable || r.error {
            let mut buf = std::mem::take(&mut self.read_buf);
            let limit = self.config.max_datagram.min(buf.len());
            let mut budget_spent = true;
            for _ in 0..DATAGRAM_BUDGET {
                match entry.io.recv(&mut buf[..limit]) {
                    Ok((n, from)) if n > limit => {
                        self.stats.datagrams_dropped += 1;
                        with_udp!(self, entry, |p, t| p.datagram_truncated(n, from, t));
                    }
                    Ok((n, from)) => {
                        self.stats.datagrams_in += 1;
                        log::trace!(target: "twirl::loop", "{} datagram {n} B from {from}", ConnId(token));
                        with_udp!(self, entry, |p, t| p.datagram_received(&buf[..n], from, t));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.stats.would_blocks += 1;
                        budget_spent = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        with_udp!(self, entry, |p, t| p.connection_refused(t));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("{} receive failed: {e}", ConnId(token));
                        budget_spent = false;
                        break;
                    }
                }
            }
            self.read_buf = buf;
            if budget_spent {
                self.ready.push(token);
            }
        }
        self.put_back(token, Source::Udp(entry));
    }

    pub(crate) fn udp_timer(&mut self, token: u64, mut entry: Box<UdpEntry>, tag: u64) {
        with_udp!(self, entry, |p, t| p.timer_fired(tag, t));
        self.put_back(token, Source::Udp(entry));
    }

    #[allow(clippy::boxed_local)] // the box comes straight out of its slot; it is freed here
    pub(crate) fn stop_udp(&mut self, token: u64, mut entry: Box<UdpEntry>) {
        self.remove(token);
        entry.io.flush(&mut self.stats);
        entry.protocol.stopped(&mut CoreCx { core: self, token });
    }
}
