//! Sockets handed down rather than opened: by a parent process (`fd:N`), by
//! systemd's socket activation (`systemd:INDEX`), or by the copy of
//! `twirl serve` that a restart replaces.
//!
//! A supervisor opens the listening socket and passes it to the server as
//! an open descriptor; the server serves it without binding anything. That
//! lets an unprivileged server listen on port 80, start on the first
//! connection, or be replaced without the port ever closing: connections
//! that arrive meanwhile wait in the socket's backlog.
//!
//! Each descriptor is checked before it is used: it must be open, be a
//! socket, and be a listening stream socket or a UDP socket, and systemd's
//! sockets must be meant for this process (`LISTEN_PID`). A descriptor is
//! adopted once: naming it in two endpoints is an error.
//!
//! # Examples
//!
//! ```
//! use std::os::fd::AsRawFd;
//! use twirl::inherit::{Inherited, SocketKind};
//!
//! let l = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let fd = Inherited::Fd(l.as_raw_fd());
//! assert_eq!(fd.to_string(), format!("fd:{}", l.as_raw_fd()));
//! assert_eq!(fd.kind()?, SocketKind::StreamListener);
//! assert!(Inherited::Fd(9999).kind().is_err(), "not open");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// Where an inherited socket is: an endpoint word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inherited {
    /// `fd:N`: descriptor N, open when the process started.
    Fd(RawFd),
    /// `systemd:INDEX` (Twisted: `systemd:domain=INET:index=0`): the
    /// INDEX-th socket systemd passed (`LISTEN_FDS`, from descriptor 3).
    Systemd(usize),
}

/// What an inherited descriptor turned out to be.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// A TCP or Unix stream socket that is listening.
    StreamListener,
    /// A bound UDP socket.
    Datagram,
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const SD_LISTEN_FDS_START: RawFd = 3;

/// Descriptors adopted so far in this process.
static CLAIMED: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl fmt::Display for Inherited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inherited::Fd(n) => write!(f, "fd:{n}"),
            Inherited::Systemd(i) => write!(f, "systemd:{i}"),
        }
    }
}

impl Inherited {
    /// Parses what follows `fd:` or `systemd:` (`N`, or Twisted's
    /// `domain=INET:index=N` for systemd); the error says what is wrong.
    pub fn parse(kind: &str, rest: &str) -> Result<Inherited, String> {
        let number = |s: &str| s.parse::<usize>().map_err(|_| format!("'{s}' is not a descriptor number"));
        match kind {
            "fd" => {
                let n = number(rest)?;
                RawFd::try_from(n).map(Inherited::Fd).map_err(|_| format!("'{rest}' is too large"))
            }
            "systemd" => {
                let mut index = None;
                for word in rest.split(':') {
                    match word.split_once('=') {
                        None => index = Some(number(word)?),
                        Some(("index", v)) => index = Some(number(v)?),
                        // Twisted's spelling names the family; the socket itself says.
                        Some(("domain", "INET" | "INET6" | "UNIX")) => {}
                        Some(_) => return Err(format!("unknown option '{word}' (expected INDEX or index=N)")),
                    }
                }
                index.map(Inherited::Systemd).ok_or_else(|| "missing the socket's index".to_string())
            }
            _ => Err(format!("unknown kind '{kind}'")),
        }
    }

    /// The descriptor it names, checking systemd's variables.
    pub fn fd(&self) -> io::Result<RawFd> {
        match *self {
            Inherited::Fd(n) => Ok(n),
            Inherited::Systemd(index) => {
                let var = |name: &str| std::env::var(name).ok();
                let pid = var("LISTEN_PID")
                    .ok_or_else(|| invalid("LISTEN_PID is not set: not started by systemd socket activation".into()))?;
                if pid.trim() != std::process::id().to_string() {
                    return Err(invalid(format!(
                        "LISTEN_PID={pid} is not this process ({}): the sockets are meant for another",
                        std::process::id()
                    )));
                }
                let count: usize = var("LISTEN_FDS")
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| invalid("LISTEN_FDS is not set".to_string()))?;
                if index >= count {
                    return Err(invalid(format!("systemd passed {count} socket(s); there is no index {index}")));
                }
                Ok(SD_LISTEN_FDS_START + index as RawFd)
            }
        }
    }

    /// What the descriptor is, without adopting it.
    pub fn kind(&self) -> io::Result<SocketKind> {
        let fd = self.fd()?;
        check_open(fd, self)?;
        // SAFETY: `fd` was just checked to be open, and the borrow lives
        // only for the getsockopt calls below, within this function.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        let ty = sock.r#type().map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTSOCK) => invalid(format!("descriptor {fd} is not a socket")),
            _ => e,
        })?;
        if ty == socket2::Type::DGRAM {
            return Ok(SocketKind::Datagram);
        }
        if ty == socket2::Type::STREAM {
            return match sock.is_listener()? {
                true => Ok(SocketKind::StreamListener),
                false => Err(invalid(format!("descriptor {fd} is a stream socket that is not listening"))),
            };
        }
        Err(invalid(format!("descriptor {fd} is neither a stream nor a datagram socket")))
    }

    /// Takes ownership of the descriptor, once per process, after checking
    /// it is a socket of `want`'s kind; made non-blocking.
    pub(crate) fn adopt(&self, want: SocketKind) -> io::Result<OwnedFd> {
        let kind = self.kind()?;
        if kind != want {
            let (is, wanted) = match kind {
                SocketKind::Datagram => ("a UDP socket", "a listening stream socket"),
                SocketKind::StreamListener => ("a listening stream socket", "a UDP socket"),
            };
            return Err(invalid(format!("descriptor {} is {is}; this plugin needs {wanted}", self.fd()?)));
        }
        let fd = self.fd()?;
        {
            let mut claimed = CLAIMED.lock().map_err(|_| io::Error::other("inherited sockets: lock poisoned"))?;
            if !claimed.get_or_insert_with(HashSet::new).insert(fd) {
                return Err(invalid(format!("descriptor {fd} is already served by another endpoint")));
            }
        }
        // SAFETY: `fd` is open (checked by `kind`), was inherited by this
        // process rather than opened by any object in it, and is claimed
        // here once (the set above), so no other owner will close it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        socket2::SockRef::from(&owned).set_nonblocking(true)?;
        // Not passed on to programs this one starts, unless a restart asks.
        socket2::SockRef::from(&owned).set_cloexec(true)?;
        Ok(owned)
    }
}

/// For an error: where a systemd descriptor came from.
fn from(what: &Inherited) -> String {
    match what {
        Inherited::Fd(_) => String::new(),
        Inherited::Systemd(i) => format!(" (systemd socket {i})"),
    }
}

fn check_open(fd: RawFd, what: &Inherited) -> io::Result<()> {
    // SAFETY: F_GETFD reads the descriptor's flags and touches no memory;
    // on a descriptor that is not open it fails with EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(invalid(format!("descriptor {fd} is not open{}", from(what))));
    }
    Ok(())
}

/// Lets a program started from here inherit `fd` (clears close-on-exec),
/// for a restart that hands its listening sockets to the new copy.
pub fn pass_on(fd: BorrowedFd<'_>) -> io::Result<()> {
    socket2::SockRef::from(&fd).set_cloexec(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn words_parse_and_print() {
        assert_eq!(Inherited::parse("fd", "3"), Ok(Inherited::Fd(3)));
        assert_eq!(Inherited::parse("systemd", "1"), Ok(Inherited::Systemd(1)));
        assert_eq!(Inherited::parse("systemd", "domain=INET:index=2"), Ok(Inherited::Systemd(2)));
        assert!(Inherited::parse("fd", "three").unwrap_err().contains("'three'"));
        assert!(Inherited::parse("systemd", "domain=INET").unwrap_err().contains("index"));
        assert!(Inherited::parse("systemd", "port=4").unwrap_err().contains("'port=4'"));
        assert_eq!(Inherited::Systemd(0).to_string(), "systemd:0");
    }

    #[test]
    fn each_wrong_descriptor_is_named() {
        let err = |i: Inherited| i.kind().unwrap_err().to_string();
        assert!(err(Inherited::Fd(4000)).contains("not open"), "{}", err(Inherited::Fd(4000)));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(err(Inherited::Fd(file.as_raw_fd())).contains("not a socket"));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(err(Inherited::Fd(conn.as_raw_fd())).contains("not listening"));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(Inherited::Fd(udp.as_raw_fd()).kind().unwrap(), SocketKind::Datagram);
        let wrong = Inherited::Fd(udp.as_raw_fd()).adopt(SocketKind::StreamListener).unwrap_err();
        assert!(wrong.to_string().contains("is a UDP socket"), "{wrong}");
    }
}
