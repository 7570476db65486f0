//! The blocking side: the handout's client and server, instrumented so the
//! watchdog can see how far each got and where it is stuck, and the small
//! helpers around their sockets and threads.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};
use twirl_protocols::plugins::caps::{MESSAGE, check_uppercased};

use crate::report::{Party, SocketSnapshot};

/// How long a thread may take to return after its sockets were shut down.
pub(crate) const JOIN_LIMIT: Duration = Duration::from_secs(5);

/// One blocking thread's progress, shared with the watchdog.
pub(crate) struct Track {
    name: &'static str,
    state: Mutex<String>,
    sent: AtomicU64,
    received: AtomicU64,
}

impl Track {
    pub(crate) fn new(name: &'static str) -> Arc<Track> {
        Arc::new(Track {
            name,
            state: Mutex::new("starting".into()),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        })
    }

    pub(crate) fn set(&self, state: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.clear();
        s.push_str(state);
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Party {
        Party {
            name: self.name.into(),
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            sent: self.sent(),
            received: self.received(),
        }
    }
}

const CLIENT_SENDING: &str = "in send(): write_all of the whole message, reading nothing until it is all sent";
const SERVER_SENDING: &str = "in send(): write_all of an uppercased 1024-byte block, until the client reads";

/// The handout's client: send everything, half-close, then read it all back.
pub(crate) fn blocking_client(mut s: TcpStream, total: u64, track: &Track) -> io::Result<()> {
    let block = MESSAGE.repeat(512);
    track.set(CLIENT_SENDING);
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        s.write_all(&block[..n])?;
        track.sent.fetch_add(n as u64, Ordering::Relaxed);
        left -= n as u64;
    }
    track.set("in shutdown(Write)");
    s.shutdown(Shutdown::Write)?;
    track.set("in recv(): reading the reply until the server closes");
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        check_uppercased(pos, &buf[..n])?;
        pos += n as u64;
        track.received.fetch_add(n as u64, Ordering::Relaxed);
    }
    track.set("done");
    if pos != total {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("sent {total} bytes, got {pos} back")));
    }
    Ok(())
}

/// The handout's server, one connection: read 1024, uppercase, send it all.
pub(crate) fn blocking_server(mut s: TcpStream, track: &Track) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        track.set("in recv(): read of up to 1024 bytes");
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        track.received.fetch_add(n as u64, Ordering::Relaxed);
        buf[..n].make_ascii_uppercase();
        track.set(SERVER_SENDING);
        s.write_all(&buf[..n])?;
        track.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Close our side now: the watchdog holds a clone of this socket, so
    // dropping ours would not send the FIN the client is waiting for.
    track.set("done: the client half-closed, so do we");
    s.shutdown(Shutdown::Write)
}

/// A loopback listener whose accepted sockets inherit small buffers.
pub(crate) fn small_listener(sockbuf: usize) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_send_buffer_size(sockbuf)?;
    s.set_recv_buffer_size(sockbuf)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    s.listen(16)?;
    Ok(s.into())
}

/// A blocking client socket with small buffers, set before connecting so
/// the receive window is small from the first packet.
pub(crate) fn small_client(addr: SocketAddr, sockbuf: usize) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_send_buffer_size(sockbuf)?;
    s.set_recv_buffer_size(sockbuf)?;
    s.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// Reads a socket's buffer sizes and queue lengths.
pub(crate) fn socket_snapshot(name: &str, s: &TcpStream) -> SocketSnapshot {
    let r = SockRef::from(s);
    SocketSnapshot {
        name: name.into(),
        sndbuf: r.send_buffer_size().ok(),
        rcvbuf: r.recv_buffer_size().ok(),
        unsent: queued(s, true),
        unread: queued(s, false),
    }
}

/// `SIOCOUTQ` (`out`) or `SIOCINQ`: bytes in the socket's send or receive queue.
#[cfg(target_os = "linux")]
fn queued(s: &TcpStream, out: bool) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // On Linux sockets TIOCOUTQ is SIOCOUTQ and FIONREAD is SIOCINQ.
    let request = if out { libc::TIOCOUTQ } else { libc::FIONREAD };
    // SAFETY: the descriptor is open for the lifetime of `s`, and both
    // requests write one c_int through the pointer, which points to one.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), request, &mut n as *mut libc::c_int) };
    (rc == 0 && n >= 0).then_some(n as u64)
}

#[cfg(not(target_os = "linux"))]
fn queued(_: &TcpStream, _: bool) -> Option<u64> {
    None
}

/// Joins a thread, waiting at most `limit`; `None` if it is still running
/// (it is then left behind, detached).
pub(crate) fn join_within<T>(h: JoinHandle<T>, limit: Duration) -> Option<thread::Result<T>> {
    let until = Instant::now() + limit;
    while !h.is_finished() {
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
    Some(h.join())
}

/// What a joined thread returned, in words.
pub(crate) fn joined(who: &str, r: &Option<thread::Result<io::Result<()>>>) -> String {
    match r {
        None => format!("{who} did not return within {}s (left behind)", JOIN_LIMIT.as_secs()),
        Some(Err(_)) => format!("{who} panicked"),
        Some(Ok(Ok(()))) => format!("{who} returned normally"),
        Some(Ok(Err(e))) => format!("{who} returned \"{e}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_check_finds_the_first_wrong_byte() {
        assert!(check_uppercased(0, b"CAPITALIZE THIS!CAP").is_ok());
        assert!(check_uppercased(16, b"CAP").is_ok());
        let e = check_uppercased(3, b"ITx").unwrap_err();
        assert!(e.to_string().contains("byte 5"), "{e}");
    }
}
