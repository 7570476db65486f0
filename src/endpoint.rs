//! Endpoint strings, as in Twisted's `strports`: where to listen and where to connect.
//!
//! Server endpoints: `tcp:PORT[:interface=ADDR]`, `udp:PORT[:interface=ADDR]`,
//! `unix:PATH`, and sockets handed down: `fd:N`, `systemd:INDEX` (see
//! [`crate::inherit`]). The interface defaults to `127.0.0.1`, so nothing is exposed
//! beyond the machine unless asked; port 0 lets the kernel choose.
//!
//! Client endpoints: `tcp:HOST:PORT`, `udp:HOST:PORT`, `unix:PATH`, with an
//! IPv6 host in brackets (`tcp:[::1]:7000`).
//!
//! # Examples
//!
//! ```
//! use twirl::endpoint::{ClientEndpoint, ServerEndpoint};
//! let s: ServerEndpoint = "tcp:7000:interface=::1".parse().unwrap();
//! assert_eq!(s.to_string(), "tcp:[::1]:7000");
//! let c: ClientEndpoint = "udp:[::1]:7000".parse().unwrap();
//! assert_eq!(c.to_string(), "udp:[::1]:7000");
//! assert!("tcp:seventy".parse::<ServerEndpoint>().is_err());
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

use crate::inherit::Inherited;

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEndpoint {
    /// A TCP listener.
    Tcp(SocketAddr),
    /// A UDP socket.
    Udp(SocketAddr),
    /// A Unix-domain stream listener at a path.
    Unix(PathBuf),
    /// A socket already open, handed down (`fd:N`, `systemd:INDEX`): a
    /// listening TCP or Unix socket, or a bound UDP socket.
    Inherited(Inherited),
}

/// Where a client connects or sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEndpoint {
    /// A TCP server, by host name or address.
    Tcp(String, u16),
    /// A UDP server, by host name or address.
    Udp(String, u16),
    /// A Unix-domain stream server.
    Unix(PathBuf),
}

/// Why an endpoint string was refused; names the offending word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointError {
    /// The endpoint string as given.
    pub endpoint: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad endpoint '{}': {}", self.endpoint, self.reason)
    }
}

impl std::error::Error for EndpointError {}

fn err(endpoint: &str, reason: impl Into<String>) -> EndpointError {
    EndpointError { endpoint: endpoint.to_string(), reason: reason.into() }
}

fn parse_port(s: &str, word: &str) -> Result<u16, EndpointError> {
    s.parse::<u16>().map_err(|_| err(word, format!("'{s}' is not a port number (0-65535)")))
}

fn split_kind(s: &str) -> Result<(&str, &str), EndpointError> {
    let (kind, rest) = s.split_once(':').ok_or_else(|| err(s, "expected KIND:..., where KIND is tcp, udp or unix"))?;
    if !matches!(kind, "tcp" | "udp" | "unix") {
        return Err(err(s, format!("unknown kind '{kind}' (expected tcp, udp or unix)")));
    }
    if rest.is_empty() {
        return Err(err(s, "missing address after the kind"));
    }
    Ok((kind, rest))
}

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((kind @ ("fd" | "systemd"), rest)) = s.split_once(':') {
            return Inherited::parse(kind, rest).map(ServerEndpoint::Inherited).map_err(|e| err(s, e));
        }
        let (kind, rest) = split_kind(s)?;
        if kind == "unix" {
            return Ok(ServerEndpoint::Unix(PathBuf::from(rest)));
        }
        let mut parts = rest.splitn(2, ':');
        let port = parse_port(parts.next().unwrap_or(""), s)?;
        let mut ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if let Some(opt) = parts.next() {
            // The only option; its value may itself contain colons (IPv6).
            let Some(v) = opt.strip_prefix("interface=") else {
                return Err(err(s, format!("unknown option '{opt}' (expected interface=ADDR)")));
            };
            let v = v.trim_start_matches('[').trim_end_matches(']');
            ip = v.parse().map_err(|_| err(s, format!("'{v}' is not an IP address")))?;
        }
        let addr = SocketAddr::new(ip, port);
        Ok(if kind == "tcp" { ServerEndpoint::Tcp(addr) } else { ServerEndpoint::Udp(addr) })
    }
}

impl FromStr for ClientEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = split_kind(s)?;
        if kind == "unix" {
            return Ok(ClientEndpoint::Unix(PathBuf::from(rest)));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| err(s, "missing ']' after the IPv6 host"))?;
            let port = after.strip_prefix(':').ok_or_else(|| err(s, "expected :PORT after the IPv6 host"))?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or_else(|| err(s, "expected HOST:PORT"))?
        };
        if host.is_empty() {
            return Err(err(s, "missing host"));
        }
        if host.contains(':') && !rest.starts_with('[') {
            return Err(err(s, "put an IPv6 host in brackets, like [::1]"));
        }
        let port = parse_port(port, s)?;
        let host = host.to_string();
        Ok(if kind == "tcp" { ClientEndpoint::Tcp(host, port) } else { ClientEndpoint::Udp(host, port) })
    }
}

fn fmt_inet(f: &mut fmt::Formatter<'_>, kind: &str, a: &SocketAddr) -> fmt::Result {
    match a.ip() {
        IpAddr::V4(ip) => write!(f, "{kind}:{ip}:{}", a.port()),
        IpAddr::V6(ip) => write!(f, "{kind}:[{ip}]:{}", a.port()),
    }
}

impl fmt::Display for ServerEndpoint {
    /// Formats as `tcp:ADDR:PORT` (the form `twirl serve` prints), `udp:...` or `unix:PATH`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEndpoint::Tcp(a) => fmt_inet(f, "tcp", a),
            ServerEndpoint::Udp(a) => fmt_inet(f, "udp", a),
            ServerEndpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            ServerEndpoint::Inherited(i) => i.fmt(f),
        }
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &str| if h.contains(':') { format!("[{h}]") } else { h.to_string() };
        match self {
            ClientEndpoint::Tcp(h, p) => write!(f, "tcp:{}:{p}", host(h)),
            ClientEndpoint::Udp(h, p) => write!(f, "udp:{}:{p}", host(h)),
            ClientEndpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl ClientEndpoint {
    /// Resolves a TCP or UDP host to its first address (blocking name lookup).
    ///
    /// Unix endpoints have no socket address and give `InvalidInput`.
    pub fn resolve(&self) -> io::Result<SocketAddr> {
        let (host, port) = match self {
            ClientEndpoint::Tcp(h, p) | ClientEndpoint::Udp(h, p) => (h, *p),
            ClientEndpoint::Unix(_) => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "a unix endpoint has no IP address"));
            }
        };
        (host.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no address found for host '{host}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_defaults_to_loopback() {
        let e: ServerEndpoint = "tcp:7000".parse().unwrap();
        assert_eq!(e, ServerEndpoint::Tcp("127.0.0.1:7000".parse().unwrap()));
        let e: ServerEndpoint = "udp:0:interface=0.0.0.0".parse().unwrap();
        assert_eq!(e, ServerEndpoint::Udp("0.0.0.0:0".parse().unwrap()));
        let e: ServerEndpoint = "unix:/tmp/x.sock".parse().unwrap();
        assert_eq!(e.to_string(), "unix:/tmp/x.sock");
    }

    #[test]
    fn server_errors_name_the_word() {
        let e = "tcp:99999".parse::<ServerEndpoint>().unwrap_err();
        assert!(e.to_string().contains("'99999'"), "{e}");
        let e = "sctp:1".parse::<ServerEndpoint>().unwrap_err();
        assert!(e.to_string().contains("'sctp'"), "{e}");
        let e = "tcp:1:interface=nope".parse::<ServerEndpoint>().unwrap_err();
        assert!(e.to_string().contains("'nope'"), "{e}");
        let e = "tcp:1:backlog=5".parse::<ServerEndpoint>().unwrap_err();
        assert!(e.to_string().contains("'backlog=5'"), "{e}");
        assert!("tcp:".parse::<ServerEndpoint>().is_err());
        assert!("7000".parse::<ServerEndpoint>().is_err());
        assert_eq!("fd:3".parse::<ServerEndpoint>().unwrap().to_string(), "fd:3");
        let e = "fd:x".parse::<ServerEndpoint>().unwrap_err();
        assert!(e.to_string().contains("'x'"), "{e}");
    }

    #[test]
    fn client_forms() {
        let e: ClientEndpoint = "tcp:localhost:7".parse().unwrap();
        assert_eq!(e, ClientEndpoint::Tcp("localhost".into(), 7));
        let e: ClientEndpoint = "tcp:[::1]:7000".parse().unwrap();
        assert_eq!(e, ClientEndpoint::Tcp("::1".into(), 7000));
        assert_eq!(e.resolve().unwrap(), "[::1]:7000".parse().unwrap());
        assert!("tcp:::1:7000".parse::<ClientEndpoint>().is_err());
        assert!("tcp:host".parse::<ClientEndpoint>().is_err());
        assert!("udp:[::1]7".parse::<ClientEndpoint>().is_err());
        let e: ClientEndpoint = "unix:/run/x".parse().unwrap();
        assert!(e.resolve().is_err());
    }
}
