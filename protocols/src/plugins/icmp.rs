//! `icmp`: seed 000's bonus lab, "make a raw socket that receives the
//! responses from a `ping` or `ping6` command".
//!
//! A raw socket receives whole ICMP messages, which UDP and TCP sockets
//! never see: for IPv4 with the IP header in front (the receiver parses it
//! to find the TTL and the ICMP part), for IPv6 without it. twirl watches
//! the socket like any other descriptor ([`twirl::fd`]): when it is
//! readable, every waiting packet is read and each echo reply is printed.
//!
//! The client sends echo requests itself, as `ping` does: type 8 (IPv4) or
//! 128 (IPv6), an identifier and a sequence number, and the internet
//! checksum (RFC 1071; the kernel computes it for ICMPv6). A reply carries
//! the same identifier and sequence back, which is how it is matched.
//!
//! Raw sockets need root or CAP_NET_RAW. Without them both sides exit with
//! status 1 and say so. `twirl serve` with no argument leaves this plugin
//! out for that reason; name it to run it.
//!
//! ```text
//! # twirl serve icmp &        (then, in another terminal: ping -c 2 127.0.0.1)
//! listening icmp on icmp:127.0.0.1
//! listening icmp on icmp6:::1
//! echo reply from 127.0.0.1: id=4242 seq=1 ttl=64 bytes=64
//! # twirl client icmp 127.0.0.1 2
//! 64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.051 ms
//! 64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.048 ms
//! 2 packets transmitted, 2 received, 0% packet loss
//! ```

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::client_args::ClientFlag;
use crate::plugin::{ClientError, Plugin, RawPlugin};
use socket2::{Domain, Protocol, Socket, Type};
use twirl::fd::{FdHandler, FdInterest, FdNext};
use twirl::{Context, Reactor, Readiness};

/// Echo request and reply types for each family.
const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// Payload bytes after the 8-byte ICMP header, as `ping` sends.
const PAYLOAD: usize = 56;

/// Opens a raw ICMP socket for `v6` or v4, non-blocking, as a std socket
/// handle (`recv_from`/`send_to` work on any datagram-like descriptor).
pub fn open_raw(v6: bool) -> io::Result<UdpSocket> {
    let (domain, proto) = if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
    let sock = Socket::new(domain, Type::RAW, Some(proto)).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            io::Error::new(e.kind(), "raw ICMP sockets need root or CAP_NET_RAW (try again with sudo)")
        } else {
            e
        }
    })?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// An echo message's fields, read from a received packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Echo {
    /// 0/129 for replies, 8/128 for requests.
    pub kind: u8,
    /// The identifier.
    pub id: u16,
    /// The sequence number.
    pub seq: u16,
    /// IPv4 TTL (None for IPv6: the header is not delivered).
    pub ttl: Option<u8>,
    /// ICMP bytes (header and payload).
    pub len: usize,
}

/// Parses what a raw socket delivered: an IPv4 packet with its header, or a
/// bare ICMPv6 message. None if it is too short or not an echo message.
pub fn parse(packet: &[u8], v6: bool) -> Option<Echo> {
    let (icmp, ttl) = if v6 {
        (packet, None)
    } else {
        let ihl = usize::from(packet.first()? & 0x0f) * 4;
        if packet.first()? >> 4 != 4 || ihl < 20 {
            return None;
        }
        (packet.get(ihl..)?, Some(*packet.get(8)?))
    };
    if icmp.len() < 8 {
        return None;
    }
    let kind = icmp[0];
    let echo = if v6 { [ECHO_REQUEST_V6, ECHO_REPLY_V6] } else { [ECHO_REQUEST_V4, ECHO_REPLY_V4] };
    if !echo.contains(&kind) {
        return None;
    }
    Some(Echo {
        kind,
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        ttl,
        len: icmp.len(),
    })
}

/// The internet checksum (RFC 1071): ones' complement of the ones'
/// complement sum of 16-bit big-endian words.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds an echo request.
pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..PAYLOAD).map(|i| i as u8));
    if !v6 {
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// Reads every waiting packet and prints each echo reply.
struct ReplyPrinter {
    sock: UdpSocket,
    v6: bool,
}

impl FdHandler for ReplyPrinter {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn ready(&mut self, _: Readiness, _: &mut dyn Context) -> FdNext {
        let mut buf = [0u8; 2048];
        for _ in 0..1024 {
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let reply = if self.v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
                    if let Some(e) = parse(&buf[..n], self.v6).filter(|e| e.kind == reply) {
                        let ttl = e.ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
                        let line =
                            format!("echo reply from {}: id={} seq={}{ttl} bytes={}", from.ip(), e.id, e.seq, e.len);
                        log::debug!("{line}");
                        let mut out = io::stdout().lock();
                        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FdNext::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("icmp: receive failed: {e}");
                    return FdNext::Wait;
                }
            }
        }
        FdNext::Again
    }
}

/// `twirl serve icmp`: watches raw ICMPv4 and (where available) ICMPv6
/// sockets bound to loopback (127.0.0.1 and ::1: like every plugin, it
/// hears only this machine by default); returns the endpoints for the
/// `listening` lines.
pub fn serve(reactor: &mut Reactor) -> io::Result<Vec<String>> {
    let mut watching = Vec::new();
    for v6 in [false, true] {
        match open_raw(v6) {
            Ok(sock) => {
                // A raw socket bound to an address sees only packets addressed to it.
                let local: IpAddr = if v6 { Ipv6Addr::LOCALHOST.into() } else { Ipv4Addr::LOCALHOST.into() };
                match socket2::SockRef::from(&sock).bind(&SocketAddr::new(local, 0).into()) {
                    Ok(()) => {}
                    Err(e) if v6 => {
                        log::info!("icmp: no ICMPv6 on ::1: {e}");
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                reactor.add_fd(ReplyPrinter { sock, v6 }, FdInterest::Read)?;
                watching.push(if v6 { format!("icmp6:{local}") } else { format!("icmp:{local}") });
            }
            // No IPv6 on this host is fine; no permission is not.
            Err(e) if v6 && e.kind() != io::ErrorKind::PermissionDenied => log::info!("icmp: no ICMPv6 socket: {e}"),
            Err(e) => return Err(e),
        }
    }
    Ok(watching)
}

/// What the pinger has seen, for the summary.
#[derive(Default)]
struct Tally {
    sent: u16,
    received: u16,
    error: Option<io::Error>,
}

/// Sends `count` echo requests `interval` apart and prints each reply.
struct Pinger {
    sock: UdpSocket,
    to: SocketAddr,
    v6: bool,
    id: u16,
    count: u16,
    interval: Duration,
    sent_at: Vec<Instant>,
    ticker: Option<twirl::TimerHandle>,
    tally: Rc<RefCell<Tally>>,
}

const SEND: u64 = 0;
const DONE: u64 = 1;
/// How long to wait for the last reply.
const LAST_WAIT: Duration = Duration::from_secs(1);

impl Pinger {
    /// Sends the next request; after the last one, waits for stragglers.
    fn send(&mut self, cx: &mut dyn Context) -> bool {
        let seq = self.sent_at.len() as u16 + 1;
        if let Err(e) = self.sock.send_to(&echo_request(self.v6, self.id, seq), self.to) {
            self.tally.borrow_mut().error = Some(e);
            cx.stop_reactor();
            return false;
        }
        self.sent_at.push(Instant::now());
        self.tally.borrow_mut().sent = seq;
        if seq == self.count {
            if let Some(t) = self.ticker.take() {
                cx.cancel_timer(t);
            }
            cx.call_later(LAST_WAIT.max(self.interval), DONE);
        }
        true
    }
}

impl FdHandler for Pinger {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn added(&mut self, cx: &mut dyn Context) {
        if self.count > 1 {
            self.ticker = Some(cx.call_every(self.interval, SEND));
        }
        self.send(cx);
    }

    fn ready(&mut self, _: Readiness, cx: &mut dyn Context) -> FdNext {
        let mut buf = [0u8; 2048];
        let reply = if self.v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
        let mut next = FdNext::Again;
        for _ in 0..1024 {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                next = FdNext::Wait;
                break;
            };
            let Some(e) = parse(&buf[..n], self.v6) else { continue };
            let Some(sent) = self.sent_at.get(usize::from(e.seq).wrapping_sub(1)) else { continue };
            if e.kind != reply || e.id != self.id || from.ip() != self.to.ip() {
                continue;
            }
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            let ttl = e.ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
            println!("{} bytes from {}: icmp_seq={}{ttl} time={ms:.3} ms", e.len, from.ip(), e.seq);
            self.tally.borrow_mut().received += 1;
        }
        if self.tally.borrow().received >= self.count {
            cx.stop_reactor();
            return FdNext::Remove;
        }
        next
    }

    fn timer_fired(&mut self, tag: u64, cx: &mut dyn Context) -> FdNext {
        if tag == DONE {
            cx.stop_reactor();
            return FdNext::Remove;
        }
        if self.send(cx) { FdNext::Wait } else { FdNext::Remove }
    }
}

/// `twirl client icmp HOST [COUNT] [--interval SECS]`: pings HOST COUNT
/// times (default 4, one a second) and prints replies with round-trip times.
pub fn client(host: &str, args: &[String]) -> Result<(), ClientError> {
    let mut count: u16 = 4;
    let mut interval = Duration::from_secs(1);
    let mut words = args.iter();
    while let Some(w) = words.next() {
        if w == "--" {
            continue; // what follows is the count, as without it
        }
        if w == "--interval" {
            let v = words.next().ok_or_else(|| ClientError::usage("--interval needs a number of seconds"))?;
            interval = v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.001 && *s < 3600.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| ClientError::usage(format!("--interval '{v}': expected seconds")))?;
        } else {
            count = w
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| ClientError::usage(format!("count '{w}': expected 1 to 65535")))?;
        }
    }
    let runtime = |e: io::Error| ClientError { endpoint: host.to_string(), message: e.to_string(), usage: false };
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) => (host, 0)
            .to_socket_addrs()
            .map_err(runtime)?
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| runtime(io::Error::new(io::ErrorKind::NotFound, "no address for this host")))?,
    };
    let v6 = ip.is_ipv6();
    let sock = open_raw(v6).map_err(runtime)?;
    let tally = Rc::new(RefCell::new(Tally::default()));
    let mut reactor = Reactor::new().map_err(runtime)?;
    println!("PING {ip}: {PAYLOAD} data bytes");
    let pinger = Pinger {
        sock,
        to: SocketAddr::new(ip, 0),
        v6,
        id: (std::process::id() & 0xffff) as u16,
        count,
        interval,
        sent_at: Vec::new(),
        ticker: None,
        tally: tally.clone(),
    };
    reactor.add_fd(pinger, FdInterest::Read).map_err(runtime)?;
    reactor.run().map_err(runtime)?;
    let t = tally.borrow();
    if let Some(e) = &t.error {
        return Err(runtime(io::Error::new(e.kind(), e.to_string())));
    }
    let loss = 100.0 * f64::from(t.sent - t.received.min(t.sent)) / f64::from(t.sent.max(1));
    println!("{} packets transmitted, {} received, {loss:.0}% packet loss", t.sent, t.received);
    if t.received == 0 {
        return Err(runtime(io::Error::new(io::ErrorKind::TimedOut, "no echo reply")));
    }
    Ok(())
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "icmp",
    summary: "prints ICMP echo replies from a raw socket; its client pings (seed 000 bonus, needs root)",
    lab: "seed 000 Lab 1 bonus",
    defaults: &[],
    options: &[],
    stream: None,
    datagram: None,
    client: None,
    client_flags: &[ClientFlag { name: "--interval", value: Some("SECS"), help: "seconds between pings (default 1)" }],
    samples: &[],
    raw: Some(RawPlugin { serve, client }),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let m = echo_request(false, 0x1234, 7);
        assert_eq!(m.len(), 8 + PAYLOAD);
        assert_eq!(checksum(&m), 0, "a message with its checksum sums to all ones");
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2u16);
    }

    #[test]
    fn parses_an_ipv4_reply_and_rejects_junk() {
        let mut ip = vec![0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
        let mut reply = echo_request(false, 42, 3);
        reply[0] = ECHO_REPLY_V4;
        ip.extend_from_slice(&reply);
        assert_eq!(parse(&ip, false), Some(Echo { kind: 0, id: 42, seq: 3, ttl: Some(64), len: 64 }));
        assert_eq!(parse(&ip[..24], false), None, "too short");
        assert_eq!(parse(&[0x65; 40], false), None, "not IPv4");
        let mut unreachable = ip.clone();
        unreachable[20] = 3;
        assert_eq!(parse(&unreachable, false), None);
        assert_eq!(parse(&echo_request(true, 1, 2), true).map(|e| e.kind), Some(ECHO_REQUEST_V6));
    }
}
