//! `twirl arp watch IFACE`: a raw `AF_PACKET` socket (root, or
//! CAP_NET_RAW) that receives every ARP frame the interface sends or
//! receives, and prints each as a block of fields; a reply's block marks
//! with `*` the fields that differ from its request's.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::packet::{self, Field};

/// Every protocol: a packet socket bound to one protocol (ETH_P_ARP) sees
/// only the frames that arrive, not the ones this host sends; one bound to
/// all sees both, and the watcher skips what is not ARP.
const ETH_P_ALL: u16 = 0x0003;

/// A packet socket bound to `iface` that receives every frame it carries.
fn open(iface: &str) -> io::Result<OwnedFd> {
    let name =
        CString::new(iface).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no interface '{iface}'")));
    }
    let proto = ETH_P_ALL.to_be();
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::c_int::from(proto)) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.kind() == io::ErrorKind::PermissionDenied {
            io::Error::new(e.kind(), "packet sockets need root or CAP_NET_RAW (try again with sudo)")
        } else {
            e
        });
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_ll of `len` bytes; `fd` is open.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Waits at most `wait` for a frame; `None` when none came.
fn recv(fd: &OwnedFd, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(None) } else { Err(e) };
    }
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: `buf` is valid for writes of its length; `fd` is open.
    let got = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got < 0 { Err(io::Error::last_os_error()) } else { Ok(Some(got as usize)) }
}

/// The fields of a reply that differ from its request's (by name), or
/// nothing when no request was seen for it.
pub fn changed_from_request<'a>(reply: &'a [Field], requests: &[Vec<Field>]) -> Vec<&'a str> {
    let v = |f: &[Field], n: &str| packet::value(f, n).map(str::to_string);
    let Some(request) =
        requests.iter().rev().find(|r| v(r, "ar$spa") == v(reply, "ar$tpa") && v(r, "ar$tpa") == v(reply, "ar$spa"))
    else {
        return Vec::new();
    };
    reply
        .iter()
        .filter(|f| f.name != "padding" && packet::value(request, f.name) != Some(f.value.as_str()))
        .map(|f| f.name)
        .collect()
}

/// The block printed for one frame.
pub fn block(iface: &str, frame_len: usize, fields: &[Field], requests: &[Vec<Field>]) -> String {
    let v = |n: &str| packet::value(fields, n).unwrap_or("?");
    let (head, changed) = match v("ar$op") {
        "1" => (
            format!("ARP request on {iface} ({frame_len} bytes): who has {}? tell {}", v("ar$tpa"), v("ar$spa")),
            Vec::new(),
        ),
        "2" => (
            format!("ARP reply on {iface} ({frame_len} bytes): {} is at {}", v("ar$spa"), v("ar$sha")),
            changed_from_request(fields, requests),
        ),
        op => (format!("ARP opcode {op} on {iface} ({frame_len} bytes)"), Vec::new()),
    };
    let mut s = format!("{head}\n{}", packet::table(fields, &changed));
    if !changed.is_empty() {
        s.push_str(&format!("  * changed from the request: {}\n", changed.join(", ")));
    }
    s
}

/// Watches `iface`, printing a block per ARP frame, until `count` frames
/// (if given) or `timeout` (if given) have passed.
pub fn run(iface: &str, count: Option<u64>, timeout: Option<Duration>, out: &mut dyn Write) -> io::Result<()> {
    let fd = open(iface)?;
    writeln!(out, "watching ARP on {iface}")?;
    out.flush()?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut requests: Vec<Vec<Field>> = Vec::new();
    let mut seen = 0;
    let mut buf = vec![0u8; 65_536];
    while count.is_none_or(|c| seen < c) {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if wait.is_zero() {
            break;
        }
        let Some(n) = recv(&fd, &mut buf, wait)? else { continue };
        let Ok(fields) = packet::decode(&buf[..n]) else { continue };
        seen += 1;
        writeln!(out, "{}", block(iface, n, &fields, &requests))?;
        out.flush()?;
        if packet::value(&fields, "ar$op") == Some("1") {
            requests.push(fields);
            if requests.len() > 64 {
                requests.remove(0);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_marks_what_changed_from_its_request() {
        let req = packet::decode(
            &packet::parse_hex(
                "ffffffffffff aa0000000001 0806 0001 0800 06 04 0001 aa0000000001 0a090101 000000000000 0a090102",
            )
            .unwrap(),
        )
        .unwrap();
        let rep = packet::decode(
            &packet::parse_hex(
                "aa0000000001 bb0000000002 0806 0001 0800 06 04 0002 bb0000000002 0a090102 aa0000000001 0a090101",
            )
            .unwrap(),
        )
        .unwrap();
        let changed = changed_from_request(&rep, std::slice::from_ref(&req));
        assert_eq!(
            changed,
            ["ethernet destination", "ethernet source", "ar$op", "ar$sha", "ar$spa", "ar$tha", "ar$tpa"]
        );
        let b = block("veth0", 42, &rep, &[req]);
        assert!(b.starts_with("ARP reply on veth0 (42 bytes): 10.9.1.2 is at bb:00:00:00:00:02\n"), "{b}");
        assert!(b.contains("* changed from the request: ethernet destination"), "{b}");
        // No request seen: nothing marked.
        assert!(changed_from_request(&rep, &[]).is_empty());
    }
}
