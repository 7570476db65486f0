//! `twirl mtu HOST [--port P] [--fragment]`: seed 002's big_sender, as a
//! measurement. A connected UDP socket with path-MTU discovery on
//! (`IP_MTU_DISCOVER` = `IP_PMTUDISC_DO`: the kernel sets Don't Fragment
//! and refuses, with `EMSGSIZE`, any datagram the path cannot carry whole)
//! sends datagrams of growing size; the kernel's path MTU (`IP_MTU`) and
//! the largest payload it accepted are the two lines printed:
//!
//! ```text
//! path MTU to 127.0.0.1: 65536 bytes
//! largest UDP payload without fragmentation: 65507 bytes
//! ```
//!
//! On loopback the MTU is 65536, but IPv4's 16-bit total length caps a
//! datagram at 65535 bytes (the kernel's IP_MTU says 65535 for that reason;
//! the line gives the link's 65536), so the payload is 65535 - 20 (IP) - 8
//! (UDP) = 65507: there the length field, not the MTU, is the limit (a note
//! on stderr says so). Across an Ethernet-sized link it is 1500 and 1472.
//!
//! `--fragment` then turns discovery off (`IP_PMTUDISC_DONT`: the kernel
//! fragments) and finds the largest datagram that still comes back from a
//! UDP echo server at HOST:P (`twirl serve echo@udp:P:interface=0.0.0.0`).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The most a UDP payload can be over IPv4 (65535 - 20 - 8) and IPv6
/// (65535 - 8: the payload length excludes the fixed header).
fn max_payload(v6: bool) -> usize {
    if v6 { 65_527 } else { 65_507 }
}

/// IP and UDP header bytes for one datagram.
fn headers(v6: bool) -> usize {
    if v6 { 48 } else { 28 }
}

/// What `twirl mtu` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The kernel's path MTU to the host (`IP_MTU`).
    pub mtu: usize,
    /// The largest payload sent with Don't Fragment set.
    pub payload: usize,
    /// With `--fragment`: the largest payload that came back from the echo server.
    pub fragmented: Option<usize>,
    /// True for IPv6.
    pub v6: bool,
}

impl Found {
    /// The two lines (three with `--fragment`), as printed.
    pub fn lines(&self, host: &str) -> Vec<String> {
        let mut l = vec![
            format!("path MTU to {host}: {} bytes", self.mtu),
            format!("largest UDP payload without fragmentation: {} bytes", self.payload),
        ];
        if let Some(f) = self.fragmented {
            l.push(format!("largest UDP payload that arrives with fragmentation allowed: {f} bytes"));
        }
        l
    }

    /// Why the payload is what it is, when the MTU is not the reason.
    pub fn note(&self) -> Option<String> {
        (self.payload + headers(self.v6) < self.mtu).then(|| {
            format!(
                "note: the limit here is IP's 16-bit length field, not the MTU: {} + {} header bytes is the largest datagram {} can describe",
                self.payload,
                headers(self.v6),
                if self.v6 { "IPv6 (without jumbograms)" } else { "IPv4" }
            )
        })
    }
}

/// An integer socket option.
fn getsockopt_int(sock: &UdpSocket, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is open for `sock`'s lifetime; `v` and `len` are valid
    // for writes of the sizes given.
    let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, (&raw mut v).cast(), &mut len) };
    if rc == 0 { Ok(v) } else { Err(io::Error::last_os_error()) }
}

fn setsockopt_int(sock: &UdpSocket, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is open for `sock`'s lifetime; `v` lives across the call.
    let rc = unsafe { libc::setsockopt(sock.as_raw_fd(), level, name, (&raw const v).cast(), len) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Path-MTU discovery on (`DO`: Don't Fragment, `EMSGSIZE` above the MTU)
/// or off (`DONT`: the kernel fragments).
fn set_discovery(sock: &UdpSocket, v6: bool, on: bool) -> io::Result<()> {
    if v6 {
        let v = if on { libc::IPV6_PMTUDISC_DO } else { libc::IPV6_PMTUDISC_DONT };
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v)
    } else {
        let v = if on { libc::IP_PMTUDISC_DO } else { libc::IP_PMTUDISC_DONT };
        setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v)
    }
}

/// The kernel's path MTU for the connected socket.
fn path_mtu(sock: &UdpSocket, v6: bool) -> io::Result<usize> {
    let v = if v6 {
        getsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_MTU)?
    } else {
        getsockopt_int(sock, libc::IPPROTO_IP, libc::IP_MTU)?
    };
    Ok(usize::try_from(v).unwrap_or(0))
}

/// The MTU of the interface that holds local address `ip` (from
/// getifaddrs and `/sys/class/net/IFACE/mtu`), if it can be found.
fn device_mtu(ip: IpAddr) -> Option<usize> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut name = None;
    let mut cur = head;
    while !cur.is_null() && name.is_none() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = libc::c_int::from(unsafe { (*ifa.ifa_addr).sa_family });
            let addr: Option<IpAddr> = match family {
                // SAFETY: an AF_INET address is a sockaddr_in.
                libc::AF_INET => {
                    Some(unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() }.sin_addr.s_addr.to_ne_bytes().into())
                }
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                libc::AF_INET6 => Some(unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() }.sin6_addr.s6_addr.into()),
                _ => None,
            };
            if addr == Some(ip) {
                // SAFETY: ifa_name is a NUL-terminated string owned by the list.
                name = Some(unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned());
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    std::fs::read_to_string(format!("/sys/class/net/{}/mtu", name?)).ok()?.trim().parse().ok()
}

/// Sends `n` bytes: `Ok(true)` if the kernel took them, `Ok(false)` on
/// `EMSGSIZE`. A refusal left by an earlier datagram (ICMP port
/// unreachable, when nothing listens at the port) is read and the send
/// tried again.
fn fits(sock: &UdpSocket, buf: &[u8]) -> io::Result<bool> {
    for _ in 0..3 {
        match sock.send(buf) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The largest `n` in `lo..=hi` for which `ok(n)` holds, given `ok(lo)`
/// (`ok` is monotone: true up to some size, false above).
fn largest(mut lo: usize, mut hi: usize, ok: &mut dyn FnMut(usize) -> io::Result<bool>) -> io::Result<usize> {
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// Resolves `host` (the first address) at `port`.
fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address")))
}

/// Measures the path to `host`; with `fragment`, also the largest datagram
/// a UDP echo server at `host:port` sends back when the kernel may fragment.
pub fn measure(host: &str, port: u16, fragment: bool) -> io::Result<Found> {
    let to = resolve(host, port)?;
    let v6 = to.is_ipv6();
    let any: IpAddr = if v6 { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
    let sock = UdpSocket::bind((any, 0))?;
    sock.connect(to)?;
    set_discovery(&sock, v6, true)?;
    let buf = vec![b'x'; max_payload(v6)];
    // A datagram too big for a later hop comes back as ICMP "fragmentation
    // needed" (IPv6: "packet too big") and lowers the kernel's path MTU:
    // measure again until it holds still.
    // IPv4's IP_MTU stops at 65535 (the most its length field can say); the
    // link may carry more (loopback: 65536), and that is its path MTU.
    let link = device_mtu(sock.local_addr()?.ip());
    let kernel_mtu = |sock: &UdpSocket| -> io::Result<usize> {
        let m = path_mtu(sock, v6)?;
        Ok(match link {
            Some(l) if !v6 && m == 65_535 && l > m => l,
            _ => m,
        })
    };
    let (mut mtu, mut payload) = (0, 0);
    for _ in 0..4 {
        mtu = kernel_mtu(&sock)?;
        payload = largest(0, max_payload(v6), &mut |n| fits(&sock, &buf[..n]))?;
        // Let any ICMP error for the biggest one arrive (bounded).
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let _ = sock.recv(&mut [0u8; 1]);
        if kernel_mtu(&sock)? == mtu {
            break;
        }
    }
    let fragmented = if fragment { Some(largest_echoed(&sock, v6, &buf)?) } else { None };
    Ok(Found { mtu, payload, fragmented, v6 })
}

/// With fragmentation allowed: the largest payload the echo server at the
/// other end sends back whole.
fn largest_echoed(sock: &UdpSocket, v6: bool, buf: &[u8]) -> io::Result<usize> {
    set_discovery(sock, v6, false)?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut reply = vec![0u8; 65_536];
    let mut tag: u8 = 0;
    let mut echoed = |n: usize| -> io::Result<bool> {
        // Each probe is marked, so a late echo of an earlier one is not
        // taken for this one's.
        for _ in 0..2 {
            tag = tag.wrapping_add(1);
            let mut probe = buf[..n].to_vec();
            if let Some(first) = probe.first_mut() {
                *first = tag;
            }
            match sock.send(&probe) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
            loop {
                match sock.recv(&mut reply) {
                    Ok(got) if got == n && reply[..got] == probe[..] => return Ok(true),
                    Ok(_) => {} // an earlier probe's echo
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(false)
    };
    if !echoed(1)? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no echo: --fragment needs a UDP echo server at HOST:PORT (twirl serve echo@udp:PORT:interface=0.0.0.0)",
        ));
    }
    if echoed(max_payload(v6))? {
        return Ok(max_payload(v6));
    }
    largest(1, max_payload(v6), &mut echoed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_finds_the_edge() {
        for edge in [0, 1, 1252, 1472, 65_507] {
            let mut calls = 0;
            let got = largest(0, 65_507, &mut |n| {
                calls += 1;
                Ok(n <= edge)
            })
            .unwrap();
            assert_eq!(got, edge);
            assert!(calls <= 17, "{calls} probes");
        }
    }

    #[test]
    fn lines_and_the_loopback_note() {
        let f = Found { mtu: 65_536, payload: 65_507, fragmented: None, v6: false };
        assert_eq!(
            f.lines("127.0.0.1"),
            ["path MTU to 127.0.0.1: 65536 bytes", "largest UDP payload without fragmentation: 65507 bytes"]
        );
        assert!(f.note().is_some_and(|n| n.contains("16-bit length")));
        let f = Found { mtu: 1500, payload: 1472, fragmented: Some(65_507), v6: false };
        assert!(f.note().is_none());
        assert_eq!(f.lines("h")[2], "largest UDP payload that arrives with fragmentation allowed: 65507 bytes");
    }

    #[test]
    fn loopback_v4_is_limited_by_the_length_field() {
        let f = measure("127.0.0.1", 9, false).expect("measure");
        assert_eq!((f.mtu, f.payload), (65_536, 65_507));
    }
}
