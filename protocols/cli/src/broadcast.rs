//! `twirl broadcast` and `twirl multicast`: seed 002's udp_broadcast, one
//! datagram to many listeners.
//!
//! ```text
//! twirl serve echo@udp:7007:interface=0.0.0.0        # on each host (or namespace)
//! twirl broadcast 10.0.2.255:7007 hello               # every echo on that subnet answers
//! answer from 10.0.2.4:7007: hello
//! answer from 10.0.2.5:7007: hello
//! 2 answers
//!
//! twirl multicast 239.1.2.3:7400                      # on each host: join the group, echo
//! twirl broadcast 239.1.2.3:7400 hello                # every member answers
//! ```
//!
//! A broadcast goes to every host on the link, interested or not
//! (SO_BROADCAST must be set to send one); a multicast datagram goes only
//! to hosts that joined its group (IP_ADD_MEMBERSHIP), and crosses routers
//! as far as its TTL allows (1 here: this link only).

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// Parses `ADDR:PORT` (IPv4).
pub fn parse_target(s: &str) -> Result<SocketAddrV4, String> {
    s.parse().map_err(|_| format!("'{s}': expected IPV4ADDR:PORT, as 10.0.2.255:7007 or 239.1.2.3:7400"))
}

/// Sends `text` once to `to` (a broadcast, multicast or plain address) and
/// prints every answer, with its source, until `wait` has passed. Returns
/// how many came.
pub fn send(
    to: SocketAddrV4,
    text: &[u8],
    wait: Duration,
    interface: Option<Ipv4Addr>,
    out: &mut dyn Write,
) -> io::Result<usize> {
    let sock = UdpSocket::bind((interface.unwrap_or(Ipv4Addr::UNSPECIFIED), 0))?;
    sock.set_broadcast(true)?;
    if to.ip().is_multicast() {
        sock.set_multicast_ttl_v4(1)?;
        sock.set_multicast_loop_v4(true)?;
        if let Some(i) = interface {
            socket2::SockRef::from(&sock).set_multicast_if_v4(&i)?;
        }
    }
    sock.send_to(text, to)?;
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65_536];
    let mut answers = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                answers += 1;
                writeln!(out, "answer from {from}: {}", String::from_utf8_lossy(&buf[..n]).trim_end())?;
                out.flush()?;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
            // An ICMP error from a host without a listener: not an answer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
    }
    writeln!(out, "{answers} answer{}", if answers == 1 { "" } else { "s" })?;
    Ok(answers)
}

/// A socket bound to `group:port` that joined `group` on `interface`
/// (any when `None`).
pub fn join(group: SocketAddrV4, interface: Option<Ipv4Addr>) -> io::Result<UdpSocket> {
    if !group.ip().is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a multicast group (224.0.0.0/4)", group.ip()),
        ));
    }
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // Several members on one host may share the port.
    s.set_reuse_address(true)?;
    // Bound to the group address, it takes only that group's datagrams.
    s.bind(&SocketAddr::V4(group).into())?;
    s.join_multicast_v4(group.ip(), &interface.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
    Ok(s.into())
}

/// `twirl multicast GROUP:PORT`: joins and echoes every datagram back to its
/// sender, printing each, until killed (or after `count` datagrams).
pub fn serve(
    group: SocketAddrV4,
    interface: Option<Ipv4Addr>,
    count: Option<u64>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let sock = join(group, interface)?;
    // Answers go from this host's own address (a group address is no
    // source), on the same port; SO_REUSEADDR on both lets them share it.
    let reply = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    reply.set_reuse_address(true)?;
    reply.bind(&SocketAddr::from((interface.unwrap_or(Ipv4Addr::UNSPECIFIED), group.port())).into())?;
    let reply: UdpSocket = reply.into();
    writeln!(out, "joined {} on port {}", group.ip(), group.port())?;
    out.flush()?;
    let mut buf = vec![0u8; 65_536];
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        seen += 1;
        writeln!(out, "from {from}: {}", String::from_utf8_lossy(&buf[..n]).trim_end())?;
        out.flush()?;
        reply.send_to(&buf[..n], from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("10.0.2.255:7007").unwrap().port(), 7007);
        assert!(parse_target("10.0.2.255").unwrap_err().contains("IPV4ADDR:PORT"));
    }

    #[test]
    fn joining_needs_a_group() {
        let e = join("10.1.1.1:7400".parse().unwrap(), None).unwrap_err();
        assert!(e.to_string().contains("not a multicast group"));
    }

    #[test]
    fn a_member_on_loopback_answers() {
        // Loopback carries multicast once the group is joined on it.
        let group: SocketAddrV4 = "239.255.77.1:0".parse().unwrap();
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let group = SocketAddrV4::new(*group.ip(), port);
        let member = std::thread::spawn(move || {
            let mut sink = Vec::new();
            serve(group, Some(Ipv4Addr::LOCALHOST), Some(1), &mut sink).map(|_| sink)
        });
        // Resend until the member has joined (bounded).
        let mut out = Vec::new();
        let mut got = 0;
        for _ in 0..20 {
            out.clear();
            got = send(group, b"hi", Duration::from_millis(200), Some(Ipv4Addr::LOCALHOST), &mut out).unwrap();
            if got > 0 {
                break;
            }
        }
        assert_eq!(got, 1, "{}", String::from_utf8_lossy(&out));
        assert!(String::from_utf8_lossy(&out).contains(": hi\n1 answer"), "{}", String::from_utf8_lossy(&out));
        let sink = member.join().unwrap().unwrap();
        assert!(String::from_utf8_lossy(&sink).contains("from 127.0.0.1:"));
    }
}
