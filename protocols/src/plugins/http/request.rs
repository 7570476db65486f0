//! Parsing one request head with `httparse`, and the checks HTTP/1.x puts
//! on it before any file is looked at: size limits (414, 431), the
//! method (405, 501), the version (505, the HTTP/2 preface included), the
//! `Host` header of HTTP/1.1, and how a request body is framed (RFC 9112
//! §6: `Content-Length` is read past; `Transfer-Encoding` is refused with
//! 411, both at once with 400).

use std::time::SystemTime;

use super::response::Status;

/// The longest request target accepted (longer: 414).
pub const MAX_TARGET: usize = 8 * 1024;
/// The most bytes a request head may take (more: 431).
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields a request may carry (more: 431).
pub const MAX_HEADERS: usize = 64;
/// The largest request body read past (and ignored); larger: 413.
pub const MAX_BODY: u64 = 64 * 1024;

/// The request methods this server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the `GET` answer without its body.
    Head,
}

impl Method {
    /// As written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// One parsed request head, reduced to what a file server reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request target as sent (origin form; an absolute form is cut
    /// down to its path).
    pub target: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// `If-Modified-Since`, when given and a valid date.
    pub if_modified_since: Option<SystemTime>,
    /// `Range`, as sent.
    pub range: Option<String>,
    /// `If-Range`, as sent.
    pub if_range: Option<String>,
    /// Bytes of request body that follow the head (read past, ignored).
    pub body: u64,
}

/// What parsing the start of the buffer gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole head yet (and within the limits): wait for more bytes.
    Partial,
    /// A request whose head took this many bytes.
    Request(Request, usize),
    /// A request refused: answer with this status (and the reason, for
    /// the body) and close. The method, for the log, when it was read.
    Refused(Status, &'static str),
}

/// The HTTP/2 connection preface's first line (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Parses the request head at the start of `buf`.
///
/// ```
/// use twirl_protocols::plugins::http::request::{parse, Parsed};
/// let Parsed::Request(r, n) = parse(b"GET /a%20b HTTP/1.0\r\n\r\nrest") else { panic!() };
/// assert_eq!((r.target.as_str(), r.minor, r.keep_alive, n), ("/a%20b", 0, false, 23));
/// assert_eq!(parse(b"GET / HT"), Parsed::Partial);
/// ```
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() >= 3 && H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
        return if buf.len() >= H2_PREFACE.len() {
            Parsed::Refused(Status::VersionNotSupported, "HTTP/2 is not spoken here; use HTTP/1.1")
        } else {
            Parsed::Partial
        };
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return partial(buf, req.path),
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(Status::HeadersTooLarge, "too many header fields");
        }
        Err(httparse::Error::Version) => return Parsed::Refused(Status::VersionNotSupported, "unsupported version"),
        Err(_) if first_line_too_long(buf) => return Parsed::Refused(Status::UriTooLong, "request target too long"),
        Err(_) => return Parsed::Refused(Status::BadRequest, "malformed request"),
    };
    if head_len > MAX_HEAD {
        return Parsed::Refused(Status::HeadersTooLarge, "request head too large");
    }
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_TARGET {
        return Parsed::Refused(Status::UriTooLong, "request target too long");
    }
    let method = match req.method.unwrap_or_default() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" | "CONNECT" | "TRACE" => {
            return Parsed::Refused(Status::MethodNotAllowed, "only GET and HEAD are allowed");
        }
        _ => return Parsed::Refused(Status::NotImplemented, "unknown method"),
    };
    let minor = req.version.unwrap_or(1);
    let mut r = Request {
        method,
        target: absolute_to_origin(target).to_string(),
        minor,
        keep_alive: minor >= 1,
        if_modified_since: None,
        range: None,
        if_range: None,
        body: 0,
    };
    let (mut host, mut length, mut chunked) = (0, None::<u64>, false);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            host += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    r.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                    r.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            r.if_modified_since = httpdate::parse_http_date(value).ok();
        } else if name.eq_ignore_ascii_case("range") {
            r.range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-range") {
            r.if_range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3: a list of differing lengths, or not a number, is an error.
            let n = match value.parse::<u64>() {
                Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Parsed::Refused(Status::BadRequest, "invalid Content-Length"),
            };
            if length.is_some_and(|l| l != n) {
                return Parsed::Refused(Status::BadRequest, "conflicting Content-Length");
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if minor >= 1 && host != 1 {
        return Parsed::Refused(Status::BadRequest, "HTTP/1.1 needs exactly one Host header");
    }
    match (chunked, length) {
        (true, Some(_)) => return Parsed::Refused(Status::BadRequest, "both Transfer-Encoding and Content-Length"),
        (true, None) => return Parsed::Refused(Status::LengthRequired, "request bodies need a Content-Length"),
        (false, Some(n)) if n > MAX_BODY => return Parsed::Refused(Status::ContentTooLarge, "request body too large"),
        (false, n) => r.body = n.unwrap_or(0),
    }
    Parsed::Request(r, head_len)
}

/// An incomplete head: fine unless it already passes a limit.
fn partial(buf: &[u8], path: Option<&str>) -> Parsed {
    if path.is_some_and(|p| p.len() > MAX_TARGET) || first_line_too_long(buf) {
        Parsed::Refused(Status::UriTooLong, "request target too long")
    } else if buf.len() > MAX_HEAD {
        Parsed::Refused(Status::HeadersTooLarge, "request head too large")
    } else {
        Parsed::Partial
    }
}

/// True when the request line (ended or not) is longer than a target may be.
fn first_line_too_long(buf: &[u8]) -> bool {
    let line = memchr_line(buf);
    line > MAX_TARGET + 32
}

/// The length of the first line (or of `buf` if it has no end yet).
fn memchr_line(buf: &[u8]) -> usize {
    buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len())
}

/// `http://host:port/path?q` to `/path?q` (RFC 9112 §3.2.2: a server
/// accepts the absolute form); an origin form is returned as it is.
fn absolute_to_origin(target: &str) -> &str {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return target;
    };
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(buf: &[u8]) -> Status {
        match parse(buf) {
            Parsed::Refused(s, _) => s,
            other => panic!("{other:?}"),
        }
    }

    fn request(buf: &[u8]) -> Request {
        match parse(buf) {
            Parsed::Request(r, _) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn versions_and_keep_alive() {
        assert!(request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
        assert!(!request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!request(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n"), Status::BadRequest, "1.1 without Host");
        assert_eq!(refused(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"), Status::VersionNotSupported);
    }

    #[test]
    fn h2_preface_refused_once_its_line_is_in() {
        assert_eq!(parse(b"PRI * HTTP/2"), Parsed::Partial);
        assert_eq!(refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Status::VersionNotSupported);
    }

    #[test]
    fn methods() {
        assert_eq!(request(b"HEAD / HTTP/1.0\r\n\r\n").method, Method::Head);
        assert_eq!(refused(b"POST / HTTP/1.0\r\n\r\n"), Status::MethodNotAllowed);
        assert_eq!(refused(b"BREW / HTTP/1.0\r\n\r\n"), Status::NotImplemented);
        assert_eq!(refused(b"G@T / HTTP/1.0\r\n\r\n"), Status::BadRequest);
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(MAX_TARGET + 1));
        assert_eq!(refused(long.as_bytes()), Status::UriTooLong);
        let unfinished = format!("GET /{}", "a".repeat(MAX_TARGET + 100));
        assert_eq!(refused(unfinished.as_bytes()), Status::UriTooLong, "refused before the line ends");
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(refused(format!("GET / HTTP/1.0\r\n{many}\r\n").as_bytes()), Status::HeadersTooLarge);
        let big = format!("GET / HTTP/1.0\r\nX: {}\r\n", "b".repeat(MAX_HEAD));
        assert_eq!(refused(big.as_bytes()), Status::HeadersTooLarge, "refused before the head ends");
    }

    #[test]
    fn bodies() {
        assert_eq!(request(b"GET / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello").body, 5);
        assert_eq!(refused(b"GET / HTTP/1.0\r\nContent-Length: -5\r\n\r\n"), Status::BadRequest);
        assert_eq!(refused(b"GET / HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), Status::BadRequest);
        assert_eq!(refused(b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), Status::LengthRequired);
        assert_eq!(
            refused(b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(refused(b"GET / HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n"), Status::ContentTooLarge);
    }

    #[test]
    fn absolute_form_and_dates() {
        let r = request(b"GET http://example.org:80/a/b?c HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.target, "/a/b?c");
        let r = request(b"GET / HTTP/1.0\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
        assert_eq!(r.if_modified_since, Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(784111777)));
    }
}
