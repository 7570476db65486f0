//! The `http` plugin: on the in-memory harness (every rule, the same code
//! the socket runs), and over loopback with real clients: Python's
//! `urllib.request` and `http.client`, and raw sockets for pipelining and
//! every path-escape attempt. curl and the 1 GiB streaming figure are in
//! `protocols/cli/tests/http_clients.rs`.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use support::{End, Served, WAIT, connect, read_to_end};
use twirl::testing::Harness;
use twirl::{Addr, Disconnect};
use twirl_protocols::plugins::http::HttpServer;
use twirl_protocols::plugins::http::beneath::Root;

/// A directory tree to serve, removed on drop: `root/` inside `base/`,
/// with a secret beside the root that must never be served.
struct Site {
    base: PathBuf,
    root: PathBuf,
}

/// The big file's length: several chunks of the streaming producer.
const BIG: usize = 300_000;

fn big_content() -> Vec<u8> {
    (0..BIG).map(|i| (i * 7 % 251) as u8).collect()
}

impl Site {
    fn new(tag: &str) -> Site {
        let base = std::env::temp_dir().join(format!("twirl-http-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("root");
        fs::create_dir_all(root.join("site")).unwrap();
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::write(base.join("secret.txt"), b"SECRET").unwrap();
        fs::write(root.join("a.txt"), b"hello\n").unwrap();
        fs::write(root.join("site/index.html"), b"<h1>index</h1>\n").unwrap();
        fs::write(root.join("docs/<b>&'x'.txt"), b"odd name").unwrap();
        fs::write(root.join("docs/caf\u{e9} au lait.md"), b"# cafe").unwrap();
        fs::write(root.join("big.bin"), big_content()).unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("out-file")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("out-dir")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("in-link")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let root = fs::canonicalize(&root).unwrap();
        Site { base, root }
    }

    fn server(&self) -> HttpServer {
        HttpServer::new(Rc::new(Root::new(self.root.clone())))
    }

    fn harness(&self) -> Harness<HttpServer> {
        let mut h = Harness::new(self.server());
        h.connect();
        h
    }

    fn spec(&self) -> String {
        format!("root={}", self.root.display())
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// One answer cut from the front of `out`: status, head, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Splits a byte stream of answers (`head_only`: the requests were HEAD
/// or the statuses have no body).
fn answers(mut out: &[u8], head_only: bool) -> Vec<Answer> {
    let mut all = Vec::new();
    while !out.is_empty() {
        let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        let head = String::from_utf8(out[..end].to_vec()).expect("ASCII head");
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
        out = &out[end..];
        let mut a = Answer { status, head, body: Vec::new() };
        let len: usize = a.header("content-length").map(|v| v.parse().unwrap()).unwrap_or(0);
        if !head_only && status != 304 {
            a.body = out[..len].to_vec();
            out = &out[len..];
        }
        all.push(a);
    }
    all
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// One request on a fresh harness: the answer and whether it closed.
fn ask(site: &Site, request: &[u8]) -> (Answer, bool) {
    ask_root(site, Root::new(site.root.clone()), request)
}

/// [`ask`] with the root given (the slow way's, say).
fn ask_root(_site: &Site, root: Root, request: &[u8]) -> (Answer, bool) {
    let mut h = Harness::new(HttpServer::new(Rc::new(root)));
    h.connect();
    h.feed(request);
    let out = h.take_output();
    let mut all = answers(&out, request.starts_with(b"HEAD"));
    assert_eq!(all.len(), 1, "{}", String::from_utf8_lossy(&out));
    (all.remove(0), h.is_closed())
}

fn status(site: &Site, request: &str) -> u16 {
    ask(site, request.as_bytes()).0.status
}

// ------------------------------------------------------------------ harness

#[test]
fn files_listing_index_and_redirect() {
    let site = Site::new("basic");
    let (a, closed) = ask(&site, get("/a.txt").as_bytes());
    assert_eq!((a.status, a.body.as_slice(), closed), (200, &b"hello\n"[..], false));
    assert_eq!(a.header("content-type").as_deref(), Some("text/plain; charset=utf-8"));
    assert!(a.header("last-modified").is_some() && a.header("date").is_some());
    let (a, _) = ask(&site, get("/site/").as_bytes());
    assert_eq!(a.body, b"<h1>index</h1>\n");
    let (a, _) = ask(&site, get("/site?x=1").as_bytes());
    assert_eq!((a.status, a.header("location").as_deref()), (301, Some("/site/?x=1")));
    let (a, _) = ask(&site, get("/docs/").as_bytes());
    let html = String::from_utf8(a.body).unwrap();
    assert!(html.contains("<a href=\"%3Cb%3E%26%27x%27.txt\">&lt;b&gt;&amp;&#39;x&#39;.txt</a>"), "{html}");
    assert!(html.contains("<a href=\"caf%C3%A9%20au%20lait.md\">caf\u{e9} au lait.md</a>"), "{html}");
    assert_eq!(status(&site, &get("/docs/caf%C3%A9%20au%20lait.md")), 200);
    assert_eq!(status(&site, &get("/docs/%3Cb%3E%26%27x%27.txt")), 200);
    assert_eq!(status(&site, &get("/a.txt/")), 404);
    assert_eq!(status(&site, &get("/nothing")), 404);
    assert_eq!(status(&site, &get("/in-link")), 200, "a symlink inside the root is served");
    let (a, _) = ask(&site, b"HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((a.status, a.header("content-length").as_deref()), (200, Some("6")));
}

#[test]
fn every_escape_attempt_is_refused() {
    let site = Site::new("escape");
    for (path, want) in [
        ("/../secret.txt", 403),
        ("/docs/../../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/%2E%2E/secret.txt", 403),
        ("/.%2e/secret.txt", 403),
        ("/%2e%2e%2fsecret.txt", 404),
        ("/..%2fsecret.txt", 404),
        ("/docs%2f..%2f..%2fsecret.txt", 404),
        ("//etc/passwd", 404),
        ("/etc/passwd", 404),
        ("http://evil/../secret.txt", 403),
        ("/out-file", 403),
        ("/out-dir/secret.txt", 403),
        ("/out-dir/", 403),
        ("/a.txt%00.html", 400),
        ("/%00", 400),
        ("/%ff", 400),
        ("/%c3%28", 400),
        ("/%zz", 400),
        ("/fifo", 403),
        ("/in-link", 200),
        ("/docs/", 200),
    ] {
        // The kernel's way (openat2 beneath the root) and the slow way
        // (canonical paths compared) give the same answers.
        for root in [Root::new(site.root.clone()), Root::slow_only(site.root.clone())] {
            let (a, closed) = ask_root(&site, root, get(path).as_bytes());
            assert_eq!(a.status, want, "{path}");
            assert!(!String::from_utf8_lossy(&a.body).contains("SECRET"), "{path}");
            assert_eq!(closed, want == 400, "{path}: a bad request closes, a refusal does not");
        }
    }
    // Raw bytes that are not UTF-8, and a raw NUL, in the request line.
    let (a, closed) = ask(&site, b"GET /a\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((a.status, closed), (400, true));
    let (a, closed) = ask(&site, b"GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((a.status, closed), (400, true));
}

#[test]
fn bad_requests_get_their_status_and_close() {
    let site = Site::new("bad");
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
    let huge = format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n", "b".repeat(17_000));
    for (request, want) in [
        ("garbage\r\n\r\n".to_string(), 400),
        ("GET / HTTP/1.1\r\n\r\n".to_string(), 400),
        ("BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n".to_string(), 501),
        ("POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi".to_string(), 405),
        ("DELETE /a.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_string(), 405),
        (long, 414),
        (format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n"), 431),
        (huge, 431),
        ("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_string(), 411),
        ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(), 400),
        ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n".to_string(), 413),
        ("GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_string(), 505),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_string(), 505),
    ] {
        let (a, closed) = ask(&site, request.as_bytes());
        assert_eq!(a.status, want, "{}", &request[..request.len().min(40)]);
        assert!(closed, "{want} closes");
        if want == 405 {
            assert_eq!(a.header("allow").as_deref(), Some("GET, HEAD"));
        }
    }
}

#[test]
fn a_body_on_get_is_read_past_and_the_next_request_answered() {
    // RFC 9110 §9.3.1: a GET body has no meaning; RFC 9112 §6.3: its
    // Content-Length still frames it, so the next request starts after it.
    let site = Site::new("body");
    let mut h = site.harness();
    // The body looks like a request, and comes in two pieces.
    let body = get("/nothing");
    let head = format!("GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len());
    h.feed(format!("{head}{}", &body[..10]).as_bytes());
    h.feed(&body.as_bytes()[10..]);
    h.feed(&get("/site/").into_bytes());
    let out = h.take_output();
    let all = answers(&out, false);
    assert_eq!(all.iter().map(|a| a.status).collect::<Vec<_>>(), [200, 200], "{}", String::from_utf8_lossy(&out));
    assert_eq!(all[1].body, b"<h1>index</h1>\n", "the body's bytes were not taken for a request");
}

#[test]
fn pipelined_requests_are_answered_in_order_in_one_write() {
    let site = Site::new("pipeline");
    let mut h = site.harness();
    let mut batch = String::new();
    for p in ["/a.txt", "/nothing", "/site/", "/docs", "/a.txt"] {
        batch.push_str(&get(p));
    }
    h.feed(batch.as_bytes());
    let all = answers(&h.take_output(), false);
    assert_eq!(all.iter().map(|a| a.status).collect::<Vec<_>>(), [200, 404, 200, 301, 200]);
    assert_eq!(h.cx.stats().writes, 1, "one write for the whole batch");
    assert!(!h.is_closed());
}

#[test]
fn keep_alive_follows_the_version_and_connection_header() {
    let site = Site::new("keepalive");
    let cases: [(&[u8], bool, Option<&str>); 4] = [
        (b"GET /a.txt HTTP/1.0\r\n\r\n", true, Some("close")),
        (b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false, Some("keep-alive")),
        (b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", false, None),
        (b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", true, Some("close")),
    ];
    for (request, closes, header) in cases {
        let (a, closed) = ask(&site, request);
        assert_eq!(closed, closes, "{}", String::from_utf8_lossy(request));
        assert_eq!(a.header("connection").as_deref(), header);
    }
    let (a, _) = ask(&site, b"GET /a.txt HTTP/1.0\r\n\r\n");
    assert!(a.head.starts_with("HTTP/1.0 200 OK\r\n"), "answered in the request's version");
}

#[test]
fn conditional_and_range_requests() {
    let site = Site::new("cond");
    let (a, _) = ask(&site, get("/a.txt").as_bytes());
    let lm = a.header("last-modified").unwrap();
    let ims = format!("GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {lm}\r\n\r\n");
    let (a, closed) = ask(&site, ims.as_bytes());
    assert_eq!((a.status, a.body.len(), closed), (304, 0, false));
    let old = "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    assert_eq!(status(&site, old), 200);
    let range = |r: &str| ask(&site, format!("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: {r}\r\n\r\n").as_bytes()).0;
    let a = range("bytes=1-3");
    assert_eq!((a.status, a.body.as_slice()), (206, &b"ell"[..]));
    assert_eq!(a.header("content-range").as_deref(), Some("bytes 1-3/6"));
    let a = range("bytes=-2");
    assert_eq!(a.body, b"o\n");
    let a = range("bytes=6-");
    assert_eq!((a.status, a.header("content-range").as_deref()), (416, Some("bytes */6")));
    assert_eq!(range("bytes=0-1,3-4").status, 200, "several ranges: the whole file");
    let stale = format!("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\nIf-Range: {lm}\r\n\r\n");
    assert_eq!(status(&site, &stale), 206);
    let stale = "GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\nIf-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    assert_eq!(status(&site, stale), 200);
    // A range of the big file is streamed from its offset.
    let (a, _) = ask(&site, b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100000-\r\n\r\n");
    assert_eq!((a.status, a.body.len()), (206, BIG - 100_000));
    assert_eq!(a.body, big_content()[100_000..]);
}

#[test]
fn large_files_stream_holding_none_of_the_file_and_requests_behind_wait() {
    let site = Site::new("stream");
    let mut h = site.harness();
    h.set_peer_reading(false);
    let mut batch = get("/big.bin");
    batch.push_str(&get("/a.txt"));
    h.feed(batch.as_bytes());
    let held = h.buffered_len();
    assert!(held > 0 && held <= 512, "a client that does not read holds the head, none of the file: {held}");
    assert!(h.is_reading_paused(), "nothing more is read while the file streams");
    h.set_peer_reading(true);
    let out = h.take_output();
    let all = answers(&out, false);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].body, big_content());
    assert_eq!((all[1].status, all[1].body.as_slice()), (200, &b"hello\n"[..]));
    assert!(!h.is_reading_paused() && !h.is_closed());
}

#[test]
fn slow_headers_count_against_the_progress_deadline() {
    let site = Site::new("slow");
    let mut h = Harness::new(site.server()).with_idle_timeout(Duration::from_secs(2));
    h.connect();
    h.feed(get("/a.txt").as_bytes());
    assert!(h.take_text().starts_with("HTTP/1.1 200"));
    // A byte every half second is traffic but never a whole request.
    for b in b"GET /a.txt HTTP/1.1\r\n" {
        h.advance(Duration::from_millis(500));
        h.feed(&[*b]);
        if h.is_closed() {
            break;
        }
    }
    assert!(matches!(h.lost_reason(), Some(Disconnect::Idle { .. })), "{:?}", h.lost_reason());
}

#[test]
fn half_close_after_pipelined_requests_answers_them_then_closes() {
    let site = Site::new("eof");
    let mut h = site.harness();
    h.feed(format!("{}{}", get("/a.txt"), get("/big.bin")).as_bytes());
    h.feed_eof();
    let all = answers(&h.take_output(), false);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].body.len(), BIG);
    assert!(h.is_closed() && h.lost_reason().is_some_and(|r| r.is_clean()));
}

// ------------------------------------------------------------------ sockets

/// Sets the `Date` header aside: the one part of an answer that depends on
/// the second it was written in.
fn undated(out: &[u8]) -> String {
    String::from_utf8_lossy(out).lines().filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_socket_and_the_harness_answer_the_same() {
    let site = Site::new("same");
    let served = Served::start(&["http@tcp:0", &site.spec()]);
    let addr = served.tcp(0);
    let mut many = String::new();
    for p in ["/a.txt", "/docs/", "/site", "/%2e%2e/x", "/big.bin"] {
        many.push_str(&get(p));
    }
    for request in [many.as_str(), "garbage\r\n\r\n", "GET / HTTP/1.0\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
        let mut s = connect(addr);
        let me = Addr::Inet(s.local_addr().unwrap());
        s.write_all(request.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let (on_socket, end) = read_to_end(&mut s);
        assert_eq!(end, End::Eof);
        let mut factory = (twirl_protocols::plugins::http::PLUGIN.stream.unwrap())(
            &twirl_protocols::options::Options::parse(
                twirl_protocols::plugins::http::PLUGIN.declared(),
                &[site.spec()],
            )
            .unwrap(),
        );
        let mut h = Harness::new(factory.build_protocol(&me)).with_peer(me);
        h.connect();
        h.feed(request.as_bytes());
        h.feed_eof();
        assert_eq!(undated(&h.take_output()), undated(&on_socket), "{}", &request[..request.len().min(30)]);
    }
    served.stop();
}

/// Python's stdlib clients against the server: urllib (a listing, a
/// redirect followed), http.client on one kept-alive connection (GET,
/// HEAD, Range, If-Modified-Since, 404), all checked by Python.
const PY_CLIENTS: &str = r##"
import http.client, sys, urllib.request, urllib.error, html.parser
port = int(sys.argv[1]); big = bytes((i * 7 % 251) for i in range(300000))
base = f"http://127.0.0.1:{port}"
class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.links = []
    def handle_starttag(self, tag, attrs):
        if tag == "a": self.links.append(dict(attrs)["href"])
with urllib.request.urlopen(base + "/docs", timeout=5) as r:
    assert r.status == 200 and r.url.endswith("/docs/"), r.url
    p = Links(); p.feed(r.read().decode()); assert len(p.links) == 2, p.links
    for link in p.links:
        with urllib.request.urlopen(base + "/docs/" + link, timeout=5) as f:
            assert f.read() in (b"odd name", b"# cafe")
try:
    urllib.request.urlopen(base + "/%2e%2e/secret.txt", timeout=5); sys.exit("escaped")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
c.request("GET", "/big.bin"); r = c.getresponse(); assert r.read() == big
sock = c.sock
c.request("HEAD", "/a.txt"); r = c.getresponse(); assert r.status == 200 and r.getheader("Content-Length") == "6"; r.read()
lm = r.getheader("Last-Modified")
c.request("GET", "/a.txt", headers={"If-Modified-Since": lm}); r = c.getresponse(); assert r.status == 304; r.read()
c.request("GET", "/big.bin", headers={"Range": "bytes=1000-1999"}); r = c.getresponse()
assert r.status == 206 and r.read() == big[1000:2000]
c.request("GET", "/nothing"); r = c.getresponse(); assert r.status == 404; r.read()
c.request("GET", "/a.txt"); r = c.getresponse(); assert r.read() == b"hello\n"
assert c.sock is sock, "one connection for every request (keep-alive)"
print("python ok")
"##;

/// Runs a Python script with arguments; `None` (and the reason printed)
/// when python3 is not here.
fn python(script: &str, args: &[String]) -> Option<std::process::Output> {
    let child =
        Command::new("python3").arg("-c").arg(script).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    match child {
        Ok(c) => Some(support::finish(c, WAIT * 3)),
        Err(e) => {
            println!("skipped: python3 is not available ({e})");
            None
        }
    }
}

#[test]
fn python_urllib_and_http_client() {
    let site = Site::new("python");
    let served = Served::start(&["http@tcp:0", &site.spec()]);
    let addr = served.tcp(0);
    if let Some(out) = python(PY_CLIENTS, &[addr.port().to_string()]) {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "python ok\n");
    }
    served.stop();
}

fn raw(addr: SocketAddr, request: &[u8]) -> (Vec<u8>, End) {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    read_to_end(&mut s)
}

#[test]
fn pipelining_and_escapes_over_a_raw_socket() {
    let site = Site::new("raw");
    let served = Served::start(&["http@tcp:0", &site.spec()]);
    let addr = served.tcp(0);
    // Three requests in one write, the last asking to close.
    let mut batch = format!("{}{}", get("/a.txt"), get("/big.bin"));
    batch.push_str("GET /site/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (out, end) = raw(addr, batch.as_bytes());
    assert_eq!(end, End::Eof);
    let all = answers(&out, false);
    assert_eq!(all.iter().map(|a| a.status).collect::<Vec<_>>(), [200, 200, 200]);
    assert_eq!((all[0].body.as_slice(), all[2].body.as_slice()), (&b"hello\n"[..], &b"<h1>index</h1>\n"[..]));
    assert_eq!(all[1].body, big_content());
    for (path, want) in [
        ("/../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/%2e%2e%2fsecret.txt", 404),
        ("/out-file", 403),
        ("/out-dir/secret.txt", 403),
        ("//etc/passwd", 404),
        ("/%00", 400),
        ("/%ff", 400),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (out, _) = raw(addr, request.as_bytes());
        let a = &answers(&out, false)[0];
        assert_eq!(a.status, want, "{path}");
        assert!(!out.windows(6).any(|w| w == b"SECRET"), "{path}");
    }
    // A client that sends half a request and goes: the server is unharmed.
    let mut s = connect(addr);
    s.write_all(b"GET /a.t").unwrap();
    drop(s);
    let (out, _) = raw(addr, b"GET /a.txt HTTP/1.0\r\n\r\n");
    assert!(out.starts_with(b"HTTP/1.0 200 OK\r\n"));
    served.stop();
}

#[test]
fn unreadable_file_is_403() {
    let site = Site::new("perm");
    let locked = site.root.join("locked.txt");
    fs::write(&locked, b"x").unwrap();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if fs::File::open(&locked).and_then(|mut f| f.read(&mut [0u8; 1])).is_ok() {
        return println!("skipped: running as root, a mode-0 file is readable");
    }
    assert_eq!(status(&site, &get("/locked.txt")), 403);
}

/// A client with a small receive buffer, so the server's `sendfile` finds
/// the socket full again and again.
fn slow_client(addr: SocketAddr) -> std::net::TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect_timeout(&addr.into(), WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.into()
}

/// The answer's head, then up to `n` bytes of body.
fn read_head_and(s: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut end = None;
    for _ in 0..100_000 {
        if end.is_some_and(|e| got.len() >= e + n) {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
        if end.is_none() {
            end = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        }
    }
    got
}

#[test]
fn sendfile_to_a_slow_reader_and_a_file_cut_short_on_a_real_socket() {
    let site = Site::new("sendfile");
    const LEN: usize = 4 << 20;
    let content: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8).collect();
    fs::write(site.root.join("cut.bin"), &content).unwrap();
    fs::write(site.root.join("slow.bin"), &content).unwrap();
    let served = Served::start(&["http@tcp:0", &site.spec()]);
    let addr = served.tcp(0);

    // A range from the middle, read 4 KiB at a time: exact, in order.
    let mut s = slow_client(addr);
    s.write_all(b"GET /slow.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000000-\r\nConnection: close\r\n\r\n").unwrap();
    let (out, end) = read_to_end(&mut s);
    assert_eq!(end, End::Eof);
    let a = &answers(&out, false)[0];
    assert_eq!(a.status, 206);
    assert!(a.body == content[1_000_000..], "the range, byte for byte ({} B)", a.body.len());

    // The file shrinks under a transfer: the promised length cannot be
    // kept, so that connection ends early, with what the file had.
    let mut s = slow_client(addr);
    s.write_all(b"GET /cut.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let first = read_head_and(&mut s, 100_000);
    let head = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    fs::OpenOptions::new().write(true).open(site.root.join("cut.bin")).unwrap().set_len(200_000).unwrap();
    let (rest, end) = read_to_end(&mut s);
    let body = [&first[head..], &rest[..]].concat();
    assert_ne!(end, End::Timeout, "the connection ends, it does not hang");
    assert!(body.len() < LEN, "cut short: {} B", body.len());
    // What the socket already held is the file's own pages, not copies
    // (sendfile's zero copy): past the cut they read as the truncation
    // left them, so only the bytes the file still has are compared.
    let kept = body.len().min(200_000);
    let differ = body[..kept].iter().zip(&content).position(|(a, b)| a != b);
    assert_eq!(differ, None, "what came ({} B) is the file's start", body.len());
    // Everyone else is still served.
    let (out, _) = raw(addr, b"GET /a.txt HTTP/1.0\r\n\r\n");
    assert!(out.ends_with(b"hello\n"), "{}", String::from_utf8_lossy(&out));
    served.stop();
}
