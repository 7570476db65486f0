//! `twirl reuseaddr`: the handouts' SO_REUSEADDR lesson, live (seed 000's
//! "Address in use" note, seed 002's reuseaddr.py).
//!
//! Twice, on a fresh loopback port each time: a server listens (the first
//! time without SO_REUSEADDR, the second with it), serves one connection
//! and closes it first, so its side of that connection waits in TIME_WAIT
//! for 2 MSL (60 s on Linux); then it exits and is started again at once.
//! The TIME_WAIT socket is shown as `ss -tan` shows it (read from
//! `/proc/net/tcp`), then the restart's bind: `EADDRINUSE` without the
//! option, success with it.
//!
//! Linux allows the second bind only when both the new socket and the
//! TIME_WAIT one (which inherits it from its listener) have SO_REUSEADDR:
//! a server sets it before its first bind, not after a failure.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// A loopback listener with SO_REUSEADDR as asked (std's `TcpListener::bind`
/// always sets it on Unix, so socket2 builds this one).
fn listen(port: u16, reuse: bool) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(reuse)?;
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    s.listen(16)?;
    Ok(s.into())
}

/// One TCP socket from `/proc/net/tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    /// Its state, as `ss` names it (`TIME-WAIT`, `LISTEN`...).
    pub state: &'static str,
    /// Bytes queued to read.
    pub recv_q: u64,
    /// Bytes queued to send.
    pub send_q: u64,
    /// Local address.
    pub local: SocketAddrV4,
    /// Peer address.
    pub peer: SocketAddrV4,
}

impl TcpEntry {
    /// The line `ss -tan` prints for it.
    pub fn ss_line(&self) -> String {
        format!("{:<10} {:<6} {:<6} {:<20} {}", self.state, self.recv_q, self.send_q, self.local.to_string(), self.peer)
    }
}

/// The header `ss -tan` prints.
pub const SS_HEADER: &str = "State      Recv-Q Send-Q Local Address:Port   Peer Address:Port";

/// `ss`'s name for a kernel TCP state number.
fn state_name(n: u8) -> &'static str {
    match n {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "UNCONN",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// `0100007F:1F90` (little-endian hex address, hex port) to an address.
fn parse_addr(s: &str) -> Option<SocketAddrV4> {
    let (a, p) = s.split_once(':')?;
    let ip = u32::from_str_radix(a, 16).ok()?;
    let port = u16::from_str_radix(p, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.swap_bytes()), port))
}

/// Parses `/proc/net/tcp`'s text (the header line is skipped; a line that
/// does not parse is left out).
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = parse_addr(f.get(1)?)?;
            let peer = parse_addr(f.get(2)?)?;
            let state = state_name(u8::from_str_radix(f.get(3)?, 16).ok()?);
            let (tx, rx) = f.get(4)?.split_once(':')?;
            let send_q = u64::from_str_radix(tx, 16).ok()?;
            let recv_q = u64::from_str_radix(rx, 16).ok()?;
            Some(TcpEntry { state, recv_q, send_q, local, peer })
        })
        .collect()
}

/// The TIME_WAIT sockets whose local port is `port`.
pub fn time_wait_on(port: u16) -> io::Result<Vec<TcpEntry>> {
    let text = std::fs::read_to_string("/proc/net/tcp")?;
    Ok(parse_proc_net_tcp(&text).into_iter().filter(|e| e.state == "TIME-WAIT" && e.local.port() == port).collect())
}

/// Serves one connection on `listener` and closes first (so this side is
/// the one left in TIME_WAIT), then drops the listener: a server that
/// answered one client and exited.
fn serve_once_and_exit(listener: TcpListener) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let mut client = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (mut conn, _) = listener.accept()?;
    conn.write_all(b"hello\n")?;
    conn.shutdown(Shutdown::Both)?;
    drop(conn);
    // The client reads to the end (the server's FIN) and closes its side.
    let mut got = Vec::new();
    client.read_to_end(&mut got)?;
    drop(client);
    drop(listener);
    Ok(())
}

/// One round: serve, exit, restart, with or without SO_REUSEADDR. Returns
/// the lines to print and whether the restart succeeded.
pub fn round(reuse: bool) -> io::Result<(Vec<String>, bool)> {
    let with = if reuse { "with SO_REUSEADDR" } else { "without SO_REUSEADDR" };
    let listener = listen(0, reuse)?;
    let port = listener.local_addr()?.port();
    let mut lines = vec![format!(
        "{with}: a server on 127.0.0.1:{port} served one connection, closed it first and exited; left behind (as ss -tan shows it):"
    )];
    serve_once_and_exit(listener)?;
    // The client's FIN is in flight a moment after its close: look again
    // (at most a second) until the server's side has reached TIME_WAIT.
    let mut waiting = time_wait_on(port)?;
    for _ in 0..100 {
        if !waiting.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        waiting = time_wait_on(port)?;
    }
    lines.push(format!("  {SS_HEADER}"));
    lines.extend(waiting.iter().map(|e| format!("  {}", e.ss_line())));
    if waiting.is_empty() {
        lines.push("  (no TIME-WAIT socket: /proc/net/tcp shows none on this port)".into());
    }
    let restarted = match listen(port, reuse) {
        Ok(_) => {
            lines.push(format!("{with}: restarted at once on 127.0.0.1:{port}: bind succeeded, listening again"));
            true
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            lines.push(format!("{with}: restarted at once on 127.0.0.1:{port}: bind failed: EADDRINUSE ({e})"));
            false
        }
        Err(e) => return Err(e),
    };
    Ok((lines, restarted))
}

/// Both rounds; an error unless the lesson showed (refused without,
/// allowed with).
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let (without, refused_ok) = round(false)?;
    let (with, allowed) = round(true)?;
    for l in without.iter().chain(&with) {
        writeln!(out, "{l}")?;
    }
    if refused_ok || !allowed {
        return Err(io::Error::other("the kernel did not behave as the handout says (see the lines above)"));
    }
    writeln!(out, "lesson: set SO_REUSEADDR before bind, and a restarted server need not wait out TIME_WAIT")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_parse() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 0100007F:C350 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n\
   1: 0100007F:0050 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 12345 1\n\
   garbage\n";
        let e = parse_proc_net_tcp(text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].state, "TIME-WAIT");
        assert_eq!(e[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e[0].peer, "127.0.0.1:50000".parse().unwrap());
        assert_eq!((e[1].state, e[1].recv_q), ("LISTEN", 2));
        assert!(e[0].ss_line().starts_with("TIME-WAIT  0      0      127.0.0.1:8080"));
    }
}
