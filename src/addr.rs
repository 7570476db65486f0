//! Peer and local addresses of any transport twirl serves.
//!
//! TCP and UDP peers have a [`SocketAddr`]; Unix-domain peers have a path, or
//! none when the peer socket was never bound (the usual case for clients).

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;

/// The address of one end of a connection.
///
/// # Examples
///
/// ```
/// use twirl::Addr;
/// let a = Addr::Inet("127.0.0.1:7000".parse().unwrap());
/// assert_eq!(a.to_string(), "127.0.0.1:7000");
/// assert_eq!(Addr::Unix(None).to_string(), "unix:(unnamed)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A Unix-domain socket path, `None` for an unnamed socket.
    Unix(Option<PathBuf>),
}

impl Addr {
    /// The IP address and port, for TCP and UDP endpoints.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            Addr::Inet(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => write!(f, "{a}"),
            Addr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Addr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Self {
        Addr::Inet(a)
    }
}

/// A connection's peer, kept in 16 bytes: an IPv4 address and port inline
/// (the usual case), anything else boxed. Every idle connection holds one,
/// and an idle connection's size is what it costs.
#[derive(Clone, Debug)]
pub(crate) enum Peer {
    V4(SocketAddrV4),
    Other(Box<Addr>),
}

impl Peer {
    pub(crate) fn addr(&self) -> Addr {
        match self {
            Peer::V4(a) => Addr::Inet(SocketAddr::V4(*a)),
            Peer::Other(a) => (**a).clone(),
        }
    }
}

impl From<Addr> for Peer {
    fn from(a: Addr) -> Self {
        match a {
            Addr::Inet(SocketAddr::V4(v4)) => Peer::V4(v4),
            other => Peer::Other(Box::new(other)),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::V4(a) => write!(f, "{a}"),
            Peer::Other(a) => write!(f, "{a}"),
        }
    }
}

pub(crate) fn from_unix(a: &std::os::unix::net::SocketAddr) -> Addr {
    Addr::Unix(a.as_pathname().map(|p| p.to_path_buf()))
}
