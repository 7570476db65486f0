//! Response heads: the status codes this server sends, their reason
//! phrases, and the head every answer carries (`Date`, `Server`,
//! `Content-Length`, `Connection`), written into one buffer.

use std::fmt::Write as _;
use std::time::SystemTime;

/// The statuses this server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 206: one range of the file.
    PartialContent,
    /// 301: a directory asked for without its trailing slash.
    MovedPermanently,
    /// 304: not modified since `If-Modified-Since`.
    NotModified,
    /// 400.
    BadRequest,
    /// 403: outside the root, or not readable.
    Forbidden,
    /// 404.
    NotFound,
    /// 405: a method known but not allowed (only GET and HEAD are).
    MethodNotAllowed,
    /// 411: a chunked request body.
    LengthRequired,
    /// 413: a request body too large to read past.
    ContentTooLarge,
    /// 414.
    UriTooLong,
    /// 416: a range past the end of the file.
    RangeNotSatisfiable,
    /// 431.
    HeadersTooLarge,
    /// 500: reading the file failed.
    InternalError,
    /// 501: an unknown method.
    NotImplemented,
    /// 505: a version other than HTTP/1.0 and 1.1 (HTTP/2's preface too).
    VersionNotSupported,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::LengthRequired => 411,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeadersTooLarge => 431,
            Status::InternalError => 500,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase (RFC 9110 §15).
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::PartialContent => "Partial Content",
            Status::MovedPermanently => "Moved Permanently",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::LengthRequired => "Length Required",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// The `Server` header's value.
pub const SERVER: &str = concat!("twirl/", env!("CARGO_PKG_VERSION"));

/// A response head being written: the status line, then the common
/// headers, then whatever the caller adds, then [`Head::finish`].
///
/// ```
/// use twirl_protocols::plugins::http::response::{Head, Status};
/// let mut h = Head::new(1, Status::NotFound, std::time::SystemTime::UNIX_EPOCH);
/// h.header("Content-Length", 0);
/// let text = String::from_utf8(h.finish(false)).unwrap();
/// assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"));
/// assert!(text.ends_with("Connection: close\r\n\r\n"));
/// ```
pub struct Head {
    text: String,
    minor: u8,
}

impl Head {
    /// Starts a head in HTTP/1.`minor` (an answer is written in the
    /// request's version, 1.1 when it is unknown).
    pub fn new(minor: u8, status: Status, now: SystemTime) -> Head {
        let mut text = String::with_capacity(256);
        let _ = write!(
            text,
            "HTTP/1.{} {} {}\r\nDate: {}\r\nServer: {SERVER}\r\n",
            minor.min(1),
            status.code(),
            status.reason(),
            httpdate::fmt_http_date(now)
        );
        Head { text, minor }
    }

    /// Adds one header.
    pub fn header(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Head {
        let _ = write!(self.text, "{name}: {value}\r\n");
        self
    }

    /// Ends the head with the `Connection` header `keep_alive` calls for
    /// (HTTP/1.0 says keep-alive, HTTP/1.1 says close, each only when it
    /// differs from the version's default) and the blank line.
    pub fn finish(mut self, keep_alive: bool) -> Vec<u8> {
        match (self.minor, keep_alive) {
            (0, true) => self.text.push_str("Connection: keep-alive\r\n"),
            (_, false) => self.text.push_str("Connection: close\r\n"),
            _ => {}
        }
        self.text.push_str("\r\n");
        self.text.into_bytes()
    }
}

/// A whole small answer: head and an HTML body saying `status` and `why`
/// (`with_body`: false for HEAD, whose answer has the head only).
pub fn page(minor: u8, status: Status, why: &str, now: SystemTime, keep_alive: bool, with_body: bool) -> Vec<u8> {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1><p>{why}</p></body></html>\n",
        code = status.code(),
        reason = status.reason(),
        why = super::listing::escape(why),
    );
    let mut head = Head::new(minor, status, now);
    head.header("Content-Type", "text/html; charset=utf-8").header("Content-Length", body.len());
    if status == Status::MethodNotAllowed {
        head.header("Allow", "GET, HEAD");
    }
    let mut out = head.finish(keep_alive);
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
