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
//! TLS (see [`crate::tls`]): the server endpoint
//! `tls:PORT:cert=PATH:key=PATH[:interface=ADDR][:client_ca=PATH][:handshake_timeout=SECS]`,
//! or Twisted's spelling `ssl:PORT:privateKey=PATH[:certKey=PATH]`; the
//! client endpoint `tls:HOST:PORT[:ca=PATH][:name=SNI]`.
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
//! let t: ServerEndpoint = "tls:7443:cert=c/cert.pem:key=c/key.pem".parse().unwrap();
//! assert_eq!(t.to_string(), "tls:127.0.0.1:7443");
//! let c: ClientEndpoint = "tls:localhost:7443:ca=c/cert.pem".parse().unwrap();
//! assert_eq!(c.to_string(), "tls:localhost:7443");
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

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
    /// A TCP listener whose connections run under TLS.
    Tls(TlsServerEndpoint),
}

/// A TLS server endpoint's address and files (`tls:PORT:cert=...:key=...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsServerEndpoint {
    /// Where to listen (TCP).
    pub addr: SocketAddr,
    /// The certificate chain, PEM (leaf first).
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// If set, clients must present a certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
    /// How long a handshake may take (`handshake_timeout=SECS`); `None`:
    /// the reactor's [`crate::Config::tls_handshake_timeout`].
    pub handshake_timeout: Option<Duration>,
    /// A listening socket handed down to serve instead of binding `addr`
    /// (`tls:fd=N:...`, `tls:systemd=INDEX:...`, or a restart's).
    pub socket: Option<Inherited>,
}

/// A TLS client endpoint (`tls:HOST:PORT[:ca=PATH][:name=SNI]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsClientEndpoint {
    /// The host name or address to connect to.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// Verify the server against this CA (PEM) instead of the bundled
    /// Mozilla roots.
    pub ca: Option<PathBuf>,
    /// The name the certificate must be valid for (and the SNI sent);
    /// default: `host`.
    pub name: Option<String>,
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
    /// A TCP server spoken to under TLS.
    Tls(TlsClientEndpoint),
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
    let (kind, rest) =
        s.split_once(':').ok_or_else(|| err(s, "expected KIND:..., where KIND is tcp, udp, unix or tls"))?;
    if !matches!(kind, "tcp" | "udp" | "unix" | "tls" | "ssl") {
        return Err(err(s, format!("unknown kind '{kind}' (expected tcp, udp, unix or tls)")));
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
        if kind == "tls" || kind == "ssl" {
            return parse_tls_server(s, kind, rest).map(ServerEndpoint::Tls);
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
        if kind == "tls" || kind == "ssl" {
            return parse_tls_client(s, rest).map(ClientEndpoint::Tls);
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

/// Splits `a=1:b=2:c=::1` into options; a piece without `=` continues the
/// value before it (an IPv6 address's colons).
fn options<'a>(s: &str, rest: &'a str) -> Result<Vec<(&'a str, String)>, EndpointError> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for piece in rest.split(':') {
        match piece.split_once('=') {
            Some((k, v)) => out.push((k, v.to_string())),
            None => match out.last_mut() {
                Some((_, v)) => {
                    v.push(':');
                    v.push_str(piece);
                }
                None => return Err(err(s, format!("expected KEY=VALUE, got '{piece}'"))),
            },
        }
    }
    Ok(out)
}

fn parse_tls_server(s: &str, kind: &str, rest: &str) -> Result<TlsServerEndpoint, EndpointError> {
    let (first, more) = rest.split_once(':').unwrap_or((rest, ""));
    // `tls:fd=3:cert=...`: a socket handed down instead of a port.
    let (port, opts) = if first.contains('=') { ("0", rest) } else { (first, more) };
    let port = parse_port(port, s)?;
    let mut socket = None;
    let mut ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (mut cert, mut key, mut client_ca, mut handshake_timeout) = (None, None, None, None);
    for (k, v) in if opts.is_empty() { Vec::new() } else { options(s, opts)? } {
        if v.is_empty() {
            return Err(err(s, format!("'{k}=' needs a value")));
        }
        match (kind, k) {
            (_, "interface") => {
                let a = v.trim_start_matches('[').trim_end_matches(']');
                ip = a.parse().map_err(|_| err(s, format!("'{a}' is not an IP address")))?;
            }
            (_, "fd" | "systemd") => {
                socket = Some(Inherited::parse(k, &v).map_err(|e| err(s, e))?);
            }
            ("tls", "cert") | ("ssl", "certKey") => cert = Some(PathBuf::from(v)),
            ("tls", "key") | ("ssl", "privateKey") => key = Some(PathBuf::from(v)),
            ("tls", "client_ca") | ("ssl", "caCertsFile") => client_ca = Some(PathBuf::from(v)),
            (_, "handshake_timeout") => {
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x > 0.0 && *x < 1e9)
                    .ok_or_else(|| err(s, format!("'{v}' is not a number of seconds")))?;
                handshake_timeout = Some(Duration::from_secs_f64(secs));
            }
            _ => {
                let expected = if kind == "tls" {
                    "cert=, key=, interface=, client_ca=, handshake_timeout=, fd=, systemd="
                } else {
                    "privateKey=, certKey=, interface=, caCertsFile=, handshake_timeout="
                };
                return Err(err(s, format!("unknown option '{k}={v}' (expected {expected})")));
            }
        }
    }
    let (cert, key) = match (kind, cert, key) {
        (_, Some(c), Some(k)) => (c, k),
        // Twisted: the certificate defaults to the key's file.
        ("ssl", None, Some(k)) => (k.clone(), k),
        ("ssl", _, None) => return Err(err(s, "missing privateKey=PATH")),
        (_, None, _) => return Err(err(s, "missing cert=PATH")),
        (_, _, None) => return Err(err(s, "missing key=PATH")),
    };
    Ok(TlsServerEndpoint { addr: SocketAddr::new(ip, port), cert, key, client_ca, handshake_timeout, socket })
}

fn parse_tls_client(s: &str, rest: &str) -> Result<TlsClientEndpoint, EndpointError> {
    let (host, after) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| err(s, "missing ']' after the IPv6 host"))?;
        (host, after.strip_prefix(':').ok_or_else(|| err(s, "expected :PORT after the IPv6 host"))?)
    } else {
        rest.split_once(':').ok_or_else(|| err(s, "expected HOST:PORT"))?
    };
    if host.is_empty() {
        return Err(err(s, "missing host"));
    }
    let (port, opts) = after.split_once(':').unwrap_or((after, ""));
    let port = parse_port(port, s)?;
    let mut e = TlsClientEndpoint { host: host.to_string(), port, ca: None, name: None };
    for (k, v) in if opts.is_empty() { Vec::new() } else { options(s, opts)? } {
        if v.is_empty() {
            return Err(err(s, format!("'{k}=' needs a value")));
        }
        match k {
            "ca" => e.ca = Some(PathBuf::from(v)),
            "name" => e.name = Some(v),
            _ => return Err(err(s, format!("unknown option '{k}={v}' (expected ca=PATH or name=SNI)"))),
        }
    }
    Ok(e)
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
            ServerEndpoint::Tls(t) => fmt_inet(f, "tls", &t.addr),
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
            ClientEndpoint::Tls(t) => write!(f, "tls:{}:{}", host(&t.host), t.port),
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
            ClientEndpoint::Tls(t) => (&t.host, t.port),
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
        let Ok(ServerEndpoint::Tls(t)) = "tls:systemd=0:cert=c.pem:key=k.pem".parse::<ServerEndpoint>() else {
            panic!("a TLS endpoint on a socket handed down")
        };
        assert_eq!((t.socket, t.cert.to_str()), (Some(Inherited::Systemd(0)), Some("c.pem")));
        let Ok(ServerEndpoint::Tls(t)) = "tls:7443:cert=c.pem:key=k.pem".parse::<ServerEndpoint>() else {
            panic!("a TLS endpoint")
        };
        assert_eq!((t.socket, t.addr.port()), (None, 7443));
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

    #[test]
    fn tls_server_forms() {
        let e: ServerEndpoint =
            "tls:7443:cert=c/cert.pem:key=c/key.pem:interface=::1:client_ca=ca.pem".parse().unwrap();
        let ServerEndpoint::Tls(t) = &e else { panic!("{e:?}") };
        assert_eq!(t.addr, "[::1]:7443".parse().unwrap());
        assert_eq!((t.cert.to_str(), t.key.to_str()), (Some("c/cert.pem"), Some("c/key.pem")));
        assert_eq!(t.client_ca.as_deref().and_then(|p| p.to_str()), Some("ca.pem"));
        assert_eq!(e.to_string(), "tls:[::1]:7443");
        let e: ServerEndpoint = "ssl:7443:privateKey=k.pem:certKey=c.pem".parse().unwrap();
        let ServerEndpoint::Tls(t) = &e else { panic!("{e:?}") };
        assert_eq!((t.cert.to_str(), t.key.to_str()), (Some("c.pem"), Some("k.pem")));
        let e: ServerEndpoint = "tls:1:cert=a:key=b:handshake_timeout=0.5".parse().unwrap();
        let ServerEndpoint::Tls(t) = &e else { panic!("{e:?}") };
        assert_eq!(t.handshake_timeout, Some(Duration::from_millis(500)));
        for bad in
            ["tls:7443", "tls:7443:cert=a", "tls:7443:key=b", "tls:x:cert=a:key=b", "tls:1:cert=a:key=b:color=red"]
        {
            let e = bad.parse::<ServerEndpoint>().unwrap_err();
            assert!(e.to_string().contains("tls:"), "{e}");
        }
        assert!("tls:1:cert=a:key=b:handshake_timeout=-1".parse::<ServerEndpoint>().is_err());
        assert!("ssl:1:cert=a:key=b".parse::<ServerEndpoint>().is_err());
    }

    #[test]
    fn tls_client_forms() {
        let e: ClientEndpoint = "tls:localhost:7443:ca=c/cert.pem:name=example.test".parse().unwrap();
        let want = TlsClientEndpoint {
            host: "localhost".into(),
            port: 7443,
            ca: Some("c/cert.pem".into()),
            name: Some("example.test".into()),
        };
        assert_eq!(e, ClientEndpoint::Tls(want));
        let e: ClientEndpoint = "tls:[::1]:7443".parse().unwrap();
        assert_eq!(e.to_string(), "tls:[::1]:7443");
        assert_eq!(e.resolve().unwrap(), "[::1]:7443".parse().unwrap());
        assert!("tls:host".parse::<ClientEndpoint>().is_err());
        assert!("tls:host:1:pin=abc".parse::<ClientEndpoint>().is_err());
        assert!("tls:host:1:ca=".parse::<ClientEndpoint>().is_err());
    }
}
