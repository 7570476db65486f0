//! `http`: a static file server, what the handouts use
//! `python3 -m http.server` for (and Twisted's `twisted.web.static.File`).
//!
//! ```text
//! $ twirl serve http@tcp:8000 root=/srv/handouts
//! listening http on tcp:127.0.0.1:8000
//! $ curl -s http://127.0.0.1:8000/notes.txt
//! ```
//!
//! HTTP/1.0 and 1.1, GET and HEAD, keep-alive and pipelining,
//! `If-Modified-Since` (304), one `Range` (206, or 416), a listing for a
//! directory without `index.html`, and nothing ever served from outside
//! `root`. One file per job:
//!
//! - [`request`]: one request head, parsed by `httparse`, and the limits
//!   and rules on it (400, 405, 411, 413, 414, 431, 501, 505);
//! - [`path`]: from the target to a file under the root, and every check
//!   that keeps it there (`..`, `%2e%2e`, `%2f`, NUL, bad UTF-8, symlinks);
//! - [`beneath`]: the root, and opening beneath it with `openat2`
//!   (`RESOLVE_BENEATH`), the kernel's own check;
//! - [`response`]: statuses and response heads;
//! - [`mime`]: `Content-Type` by extension;
//! - [`listing`]: the directory page, names escaped;
//! - [`range`]: the `Range` header;
//! - [`server`]: the [`Protocol`](twirl::Protocol), which never sees a
//!   socket: small files are written whole, large ones streamed by a pull
//!   producer as the connection drains.
//!
//! `twirl serve` with no plugin named leaves `http` out: it would serve
//! the current directory to anyone who can reach the port, and a default
//! should not publish files. Name it (`twirl serve http`) to serve the
//! current directory on port 8000 of loopback, or give `root=DIR`.

pub mod beneath;
pub mod listing;
pub mod mime;
pub mod path;
pub mod range;
pub mod request;
pub mod response;
pub mod server;

use std::path::PathBuf;
use std::rc::Rc;

use twirl::Addr;

use crate::options::{OptionKind, OptionSpec, Options};
use crate::plugin::Plugin;
use crate::sample::{Answer, Sample, Via};
pub use server::HttpServer;

/// The `root` option: the directory served.
const ROOT: OptionSpec = OptionSpec {
    name: "root",
    meaning: "the directory whose files are served (nothing outside it is)",
    kind: OptionKind::Directory,
    default: Some("."),
};

/// The root from the options: the one given, else the current directory
/// (canonical, as the escape checks need).
pub fn root(options: &Options) -> PathBuf {
    match options.path(ROOT.name) {
        Some(p) => p.to_path_buf(),
        None => std::fs::canonicalize(".").unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// The factory: one [`HttpServer`] per connection, all serving one root.
fn factory(options: &Options) -> Box<dyn twirl::Factory> {
    let root = Rc::new(beneath::Root::new(root(options)));
    Box::new(move |_: &Addr| HttpServer::new(root.clone()))
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "http",
    summary: "serves the files under a directory over HTTP/1.1 (python3 -m http.server)",
    lab: "RFC 9110/9112; the handouts' python3 -m http.server",
    defaults: &["tcp:8000"],
    options: &[ROOT],
    stream: Some(factory),
    datagram: None,
    client: None,
    client_flags: &[],
    // Served from the directory the test runs in: its listing.
    samples: &[Sample { via: Via::Stream, request: b"GET / HTTP/1.0\r\n\r\n", answer: Answer::Check(is_listing) }],
    raw: None,
};

/// A good answer to the sample: the root's listing, over HTTP/1.0.
fn is_listing(got: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(got);
    if text.starts_with("HTTP/1.0 200 OK\r\n") && text.contains("Directory listing for /") {
        Ok(())
    } else {
        Err(format!("not the root's listing: {}", &text[..text.len().min(200)]))
    }
}
