//! The file server's [`Protocol`]: requests read from the stream, answered
//! in order, small answers written whole and large files streamed.
//!
//! Every request parsed in one `data_received` is answered in that call,
//! so the answers to a pipelined batch leave in one write (the transport
//! corks the writes of a callback). A file larger than [`SMALL`] is
//! streamed by a [`FileSender`] (`sendfile(2)` on a socket: the file's
//! bytes never pass through the server), as much as the socket takes each
//! time the connection drains; meanwhile the connection is not read, so
//! neither the requests behind it nor the file are held in memory. A
//! request that must be refused (see [`super::request`]) is answered and
//! the connection closed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use twirl::producer::{FileSender, Sent};
use twirl::{Protocol, Transport};

use super::beneath::Root;
use super::listing;
use super::mime::content_type;
use super::path::{Found, resolve};
use super::range::{Wanted, wanted};
use super::request::{Method, Parsed, Request, parse};
use super::response::{Head, Status, page};

/// Files up to this size are read and written in one piece; larger ones
/// are streamed.
pub const SMALL: u64 = 64 * 1024;

/// One answer on its way, for the access log (`bytes`: head and body sent).
struct Access {
    method: &'static str,
    target: String,
    minor: u8,
    status: u16,
    bytes: u64,
    started: Instant,
}

/// A file being streamed.
struct Streaming {
    sender: FileSender,
    /// The body's length: what `sender` must have sent at its end.
    length: u64,
    keep_alive: bool,
    access: Access,
}

/// The HTTP/1.x file server for one connection, serving files under `root`.
pub struct HttpServer {
    root: Rc<Root>,
    /// Bytes read and not yet parsed (from `pos` on).
    buf: Vec<u8>,
    pos: usize,
    /// Request body bytes still to read past.
    discard: u64,
    sending: Option<Streaming>,
    /// An answer was written that ends the connection.
    closing: bool,
    /// The client sent its EOF: close once its requests are answered.
    eof: bool,
}

impl HttpServer {
    /// A server of the files under `root` (shared by a listener's connections).
    pub fn new(root: Rc<Root>) -> HttpServer {
        HttpServer { root, buf: Vec::new(), pos: 0, discard: 0, sending: None, closing: false, eof: false }
    }

    /// The root it serves.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Answers every whole request in the buffer, while nothing is being
    /// streamed and the output is below its high-water mark.
    fn serve(&mut self, t: &mut dyn Transport) {
        while !self.closing && self.sending.is_none() && !t.writing_paused() {
            if self.discard > 0 {
                let n = self.discard.min((self.buf.len() - self.pos) as u64);
                self.pos += n as usize;
                self.discard -= n;
                if self.discard > 0 {
                    break;
                }
            }
            if self.pos == self.buf.len() {
                break;
            }
            match parse(&self.buf[self.pos..]) {
                Parsed::Partial => break,
                Parsed::Refused(status, why) => {
                    let started = Instant::now();
                    let out = page(1, status, why, SystemTime::now(), false, true);
                    t.write(&out);
                    let target = String::from_utf8_lossy(first_line(&self.buf[self.pos..])).into_owned();
                    let bytes = out.len() as u64;
                    let access = Access { method: "-", target, minor: 1, status: status.code(), bytes, started };
                    log_access(t, &access);
                    self.closing = true;
                    t.lose_connection();
                }
                Parsed::Request(request, n) => {
                    self.pos += n;
                    self.discard = request.body;
                    t.progress();
                    self.answer(request, t);
                }
            }
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        if self.eof && !self.closing && self.sending.is_none() && !t.writing_paused() {
            self.closing = true;
            t.lose_connection();
        }
    }

    /// Answers one request.
    fn answer(&mut self, r: Request, t: &mut dyn Transport) {
        let started = Instant::now();
        let now = SystemTime::now();
        let get = r.method == Method::Get;
        let mut access = Access {
            method: r.method.as_str(),
            target: r.target.clone(),
            minor: r.minor,
            status: 200,
            bytes: 0,
            started,
        };
        let found = match resolve(&self.root, &r.target) {
            Ok(found) => found,
            Err((status, why)) => {
                let keep = r.keep_alive && status != Status::BadRequest;
                self.small(t, page(r.minor, status, why, now, keep, get), status, keep, access);
                return;
            }
        };
        match found {
            Found::Redirect(location) => {
                let body = format!("<!DOCTYPE html>\n<a href=\"{}\">moved here</a>\n", listing::escape(&location));
                let mut head = Head::new(r.minor, Status::MovedPermanently, now);
                head.header("Location", &location)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Content-Length", body.len());
                let mut out = head.finish(r.keep_alive);
                if get {
                    out.extend_from_slice(body.as_bytes());
                }
                self.small(t, out, Status::MovedPermanently, r.keep_alive, access);
            }
            Found::Listing(dir, shown) => {
                let (status, out) = match listing::page(&dir, &shown) {
                    Ok(body) => {
                        let mut head = Head::new(r.minor, Status::Ok, now);
                        head.header("Content-Type", "text/html; charset=utf-8").header("Content-Length", body.len());
                        let mut out = head.finish(r.keep_alive);
                        if get {
                            out.extend_from_slice(body.as_bytes());
                        }
                        (Status::Ok, out)
                    }
                    Err(_) => {
                        (Status::Forbidden, page(r.minor, Status::Forbidden, "cannot list", now, r.keep_alive, get))
                    }
                };
                self.small(t, out, status, r.keep_alive, access);
            }
            Found::File(file, meta, name) => {
                let modified = meta.modified().unwrap_or(UNIX_EPOCH);
                let len = meta.len();
                let last_modified = httpdate::fmt_http_date(modified);
                if let Some(since) = r.if_modified_since
                    && whole_seconds(modified) <= whole_seconds(since)
                {
                    let mut head = Head::new(r.minor, Status::NotModified, now);
                    head.header("Last-Modified", &last_modified);
                    self.small(t, head.finish(r.keep_alive), Status::NotModified, r.keep_alive, access);
                    return;
                }
                // If-Range with a date other than ours: the whole file.
                let range = match &r.if_range {
                    Some(v) if *v != last_modified => None,
                    _ => r.range.as_deref(),
                };
                let (status, start, length) = match wanted(range, len) {
                    Wanted::Whole => (Status::Ok, 0, len),
                    Wanted::Part { start, end } => (Status::PartialContent, start, end - start + 1),
                    Wanted::Unsatisfiable => {
                        let mut head = Head::new(r.minor, Status::RangeNotSatisfiable, now);
                        head.header("Content-Range", format!("bytes */{len}")).header("Content-Length", 0);
                        self.small(t, head.finish(r.keep_alive), Status::RangeNotSatisfiable, r.keep_alive, access);
                        return;
                    }
                };
                let mut head = Head::new(r.minor, status, now);
                head.header("Content-Type", content_type(&name))
                    .header("Content-Length", length)
                    .header("Last-Modified", &last_modified)
                    .header("Accept-Ranges", "bytes");
                if status == Status::PartialContent {
                    head.header("Content-Range", format!("bytes {start}-{}/{len}", start + length - 1));
                }
                let mut out = head.finish(r.keep_alive);
                if !get {
                    self.small(t, out, status, r.keep_alive, access);
                    return;
                }
                access.status = status.code();
                if length <= SMALL {
                    match read_part(file, start, length) {
                        Ok(body) => {
                            out.extend_from_slice(&body);
                            self.small(t, out, status, r.keep_alive, access);
                        }
                        Err(_) => {
                            let out = page(r.minor, Status::InternalError, "cannot read the file", now, false, true);
                            self.small(t, out, Status::InternalError, false, access);
                        }
                    }
                    return;
                }
                t.write(&out);
                access.bytes = out.len() as u64 + length;
                // Nothing more is read from the client until the file is sent.
                t.pause_reading();
                self.sending = Some(Streaming {
                    sender: FileSender::new(file, start, length),
                    length,
                    keep_alive: r.keep_alive,
                    access,
                });
                self.more(t);
            }
        }
    }

    /// Writes a whole answer, logs it, and closes if it ends the connection.
    fn small(&mut self, t: &mut dyn Transport, out: Vec<u8>, status: Status, keep_alive: bool, mut access: Access) {
        t.write(&out);
        access.status = status.code();
        access.bytes = out.len() as u64;
        log_access(t, &access);
        if !keep_alive {
            self.closing = true;
            t.lose_connection();
        }
    }

    /// Sends the next chunk of the file being streamed; at its end, goes
    /// on with the requests behind it (or closes).
    fn more(&mut self, t: &mut dyn Transport) {
        let Some(s) = &mut self.sending else { return };
        match s.sender.send_more(t) {
            Ok(Sent::More) => {}
            Ok(Sent::Done) => {
                let done = self.sending.take();
                if let Some(done) = done {
                    log_access(t, &done.access);
                    if done.keep_alive {
                        t.resume_reading();
                        self.serve(t);
                    } else {
                        self.closing = true;
                        t.lose_connection();
                    }
                }
            }
            Err(e) => {
                // The file shrank or failed under us: the length promised
                // cannot be kept, so the connection must end.
                let sent = s.sender.sent();
                log::warn!("http: {} ended after {sent} of {} bytes: {e}", s.access.target, s.length);
                self.sending = None;
                self.closing = true;
                t.abort_connection();
            }
        }
    }
}

/// Reads `length` bytes of `file` from `start`.
fn read_part(mut file: File, start: u64, length: u64) -> io::Result<Vec<u8>> {
    if start > 0 {
        file.seek(SeekFrom::Start(start))?;
    }
    let mut body = vec![0; length as usize];
    file.read_exact(&mut body)?;
    Ok(body)
}

/// Seconds since the epoch (HTTP dates have no finer resolution).
fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The first line of a refused request, at most 100 bytes, for the log.
fn first_line(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(buf.len()).min(100);
    &buf[..end]
}

/// One access log line, at info, rate-limited with the reactor's other
/// per-connection lines.
fn log_access(t: &dyn Transport, a: &Access) {
    twirl::loglimit::conn_event(
        log::Level::Info,
        format_args!(
            "http {} \"{} {} HTTP/1.{}\" {} {} bytes {} µs",
            t.peer_addr(),
            a.method,
            a.target.escape_debug(),
            a.minor,
            a.status,
            a.bytes,
            a.started.elapsed().as_micros()
        ),
    );
}

impl Protocol for HttpServer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // From now on the idle timeout counts from the last whole request,
        // so a client trickling a head that never ends is cut off.
        t.progress();
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if self.closing {
            return;
        }
        self.buf.extend_from_slice(data);
        self.serve(t);
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.eof = true;
        if !self.closing {
            self.serve(t);
        }
    }

    fn resume_writing(&mut self, t: &mut dyn Transport) {
        self.serve(t);
    }

    fn drained(&mut self, t: &mut dyn Transport) {
        if self.sending.is_some() {
            t.progress();
            self.more(t);
        }
    }
}
