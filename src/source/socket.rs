//! The stream sockets twirl serves, TCP and Unix-domain, as one type each
//! for connections ([`Stream`], a [`Pipe`]) and listeners ([`Listener`]),
//! so that connections, listeners and connectors have a single code path.
//!
//! A Unix listener owns its socket file: binding replaces a stale *socket*
//! nobody listens on (left by a server that was killed) but refuses any
//! other file, and dropping the listener removes the file only if it is
//! still the socket this listener bound (same device and inode).

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::addr::{Addr, from_unix};

/// A byte pipe a connection runs over: a socket here, memory in
/// [`crate::testing`]. The connection's state machine knows only this.
pub(crate) trait Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Writes several pieces in one system call.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Writes up to `len` bytes of `file` from `offset`, as `write` writes
    /// a buffer: what the pipe takes now, `WouldBlock` if nothing, and 0
    /// at the file's end. `Unsupported` if this file cannot be sent so
    /// (the caller then reads and writes it).
    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize>;
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// The pending socket error, if any.
    fn take_error(&mut self) -> io::Result<Option<io::Error>>;
    fn local_addr(&self) -> io::Result<Addr>;
    fn set_nodelay(&mut self, on: bool) -> io::Result<()>;
}

impl Pipe for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Stream::read(self, buf)
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Stream::write(self, buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Stream::write_vectored(self, bufs)
    }
    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        Stream::send_file(self, file, offset, len)
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        Stream::shutdown_write(self)
    }
    fn take_error(&mut self) -> io::Result<Option<io::Error>> {
        Stream::take_error(self)
    }
    fn local_addr(&self) -> io::Result<Addr> {
        Stream::local_addr(self)
    }
    fn set_nodelay(&mut self, on: bool) -> io::Result<()> {
        Stream::set_nodelay(self, on)
    }
}

/// A connected (or connecting) stream socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    /// `sendmsg` with MSG_NOSIGNAL, as `write` is a `send` with it: a
    /// peer gone must be an `EPIPE` error, never a SIGPIPE that kills a
    /// program which did not ignore it (`writev` has no such flag).
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let sock = match self {
            Stream::Tcp(s) => socket2::SockRef::from(&*s),
            Stream::Unix(s) => socket2::SockRef::from(&*s),
        };
        sock.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }

    /// `sendfile(2)`: the kernel copies from the page cache to the socket,
    /// and the bytes never pass through this process. It has no
    /// MSG_NOSIGNAL: a peer gone raises SIGPIPE, which the reactor set to
    /// be ignored when it started, so that it is an `EPIPE` error here too.
    pub(crate) fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let sock = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        };
        let mut off = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // The kernel sends at most 0x7ffff000 bytes a call anyway.
        let len = len.min(0x7fff_f000);
        // SAFETY: both descriptors are open for the duration of the call
        // (borrowed from live objects), and `off` is a valid, exclusively
        // borrowed off_t the kernel updates.
        let n = unsafe { libc::sendfile(sock, file.as_raw_fd(), &mut off, len) };
        match n {
            -1 => {
                let e = io::Error::last_os_error();
                // A file the kernel cannot send from (no page cache behind it).
                match e.raw_os_error() {
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => Err(io::ErrorKind::Unsupported.into()),
                    _ => Err(e),
                }
            }
            n => Ok(n as usize),
        }
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Inet),
            Stream::Unix(s) => s.peer_addr().map(|a| from_unix(&a)),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Addr::Inet),
            Stream::Unix(s) => s.local_addr().map(|a| from_unix(&a)),
        }
    }

    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(on),
            Stream::Unix(_) => Ok(()),
        }
    }

    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        // Both interests once, for the connection's whole life: with
        // edge-triggered readiness there is never a need to re-register.
        // PRIORITY: urgent data stops a read short of what is queued, and
        // the connection must know not to take that short read as drained.
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
        match self {
            Stream::Tcp(s) => s.register(registry, token, interest),
            Stream::Unix(s) => s.register(registry, token, interest),
        }
    }
}

/// A listening stream socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    /// The socket file is `None` for a socket handed down: whoever bound it
    /// owns the file.
    Unix(UnixListener, Option<SocketFile>),
}

/// The socket file a Unix listener bound, removed when it is dropped if it
/// is still that socket.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::debug!("could not remove {}: {e}", self.path.display());
                }
            }
            _ => log::debug!("{} is no longer the socket bound here; left alone", self.path.display()),
        }
    }
}

impl Listener {
    pub(crate) fn accept(&self) -> io::Result<(Stream, Addr)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), Addr::Inet(a))),
            Listener::Unix(l, _) => l.accept().map(|(s, a)| (Stream::Unix(s), from_unix(&a))),
        }
    }

    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(registry, token, Interest::READABLE),
            Listener::Unix(l, _) => l.register(registry, token, Interest::READABLE),
        }
    }

    /// Binds a TCP listener with SO_REUSEADDR (restarting a server must not
    /// fail on connections still in TIME_WAIT: seed 000's SO_REUSEADDR
    /// slide), and SO_REUSEPORT if asked (listeners of several reactors
    /// sharing one address).
    pub(crate) fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<Listener> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(Listener::Tcp(TcpListener::from_std(socket.into())))
    }

    /// Binds a Unix listener. A stale socket file nobody listens on any more
    /// (left by a server that was killed) is replaced; any other file at
    /// `path` is refused with an error naming it, never deleted.
    pub(crate) fn bind_unix(path: &Path) -> io::Result<Listener> {
        let listener = match UnixListener::bind(path) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let meta = std::fs::symlink_metadata(path)?;
                if !meta.file_type().is_socket() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket; not replacing it", path.display()),
                    ));
                }
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{}: a server is already listening there", path.display()),
                    ));
                }
                std::fs::remove_file(path)?;
                UnixListener::bind(path)?
            }
            other => other?,
        };
        let meta = std::fs::symlink_metadata(path)?;
        let file = SocketFile { path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() };
        Ok(Listener::Unix(listener, Some(file)))
    }

    /// The address bound, as an endpoint.
    pub(crate) fn local_endpoint(&self) -> io::Result<crate::endpoint::ServerEndpoint> {
        use crate::endpoint::ServerEndpoint;
        match self {
            Listener::Tcp(l) => l.local_addr().map(ServerEndpoint::Tcp),
            Listener::Unix(_, Some(f)) => Ok(ServerEndpoint::Unix(f.path.clone())),
            Listener::Unix(l, None) => {
                let path = l.local_addr()?.as_pathname().map(Path::to_path_buf).unwrap_or_default();
                Ok(ServerEndpoint::Unix(path))
            }
        }
    }

    /// A listening socket handed down (see [`crate::inherit`]), already
    /// checked to be a listening stream socket and non-blocking.
    pub(crate) fn adopt(fd: std::os::fd::OwnedFd) -> io::Result<Listener> {
        let domain = socket2::SockRef::from(&fd).domain()?;
        Ok(if domain == socket2::Domain::UNIX {
            Listener::Unix(UnixListener::from_std(fd.into()), None)
        } else {
            Listener::Tcp(TcpListener::from_std(fd.into()))
        })
    }

    /// The descriptor, for a restart to hand down.
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    /// Leaves the socket file in place when the listener is dropped: a
    /// restart handed the socket to another process, which serves it now.
    pub(crate) fn keep_file(&mut self) {
        if let Listener::Unix(_, file) = self {
            std::mem::forget(file.take());
        }
    }
}
