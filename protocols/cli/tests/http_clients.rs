//! `twirl serve http` as a process, judged by clients nobody here wrote:
//! curl (when installed), and the 1 GiB streaming figure (the server's
//! RSS growth while a sparse 1 GiB file is downloaded).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use common::{Server, WAIT, output, rss, twirl};

/// A temporary root, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("twirl-http-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.txt"), b"hello\n").unwrap();
        std::fs::write(dir.parent().unwrap().join(format!("twirl-secret-{}", std::process::id())), b"SECRET").unwrap();
        Root(dir)
    }

    fn serve(&self) -> Server {
        let root = format!("root={}", self.0.display());
        Server::start(twirl(&["serve", "http@tcp:0", &root]), 1)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(self.0.parent().unwrap().join(format!("twirl-secret-{}", std::process::id())));
    }
}

/// Runs curl; `None` (the reason printed) when it is not installed.
fn curl(args: &[&str]) -> Option<(String, String)> {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10"]).args(args);
    if let Err(e) = Command::new("curl").arg("--version").output() {
        println!("skipped: curl is not installed ({e})");
        return None;
    }
    let out = output(c);
    Some((String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

#[test]
fn curl_gets_files_ranges_conditionals_and_never_escapes() {
    let root = Root::new("curl");
    let server = root.serve();
    let base = format!("http://{}", server.addr(0));
    let Some((body, _)) = curl(&[&format!("{base}/a.txt")]) else { return };
    assert_eq!(body, "hello\n");
    // Two URLs on one curl: the second reuses the connection.
    let (out, err) = curl(&["-w", "[%{http_code} %{num_connects}]", &format!("{base}/a.txt"), &format!("{base}/sub/")])
        .expect("curl");
    assert!(out.contains("hello\n[200 1]") && out.ends_with("[200 0]"), "{out} {err}");
    let (out, _) = curl(&["-r", "1-3", &format!("{base}/a.txt")]).expect("curl");
    assert_eq!(out, "ell");
    let (out, _) = curl(&["-I", &format!("{base}/a.txt")]).expect("curl");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("Content-Length: 6\r\n"), "{out}");
    // -z FILE sends If-Modified-Since with the file's time: the served one's.
    let local = root.0.join("a.txt");
    let (out, _) =
        curl(&["-o", "/dev/null", "-w", "%{http_code}", "-z", local.to_str().unwrap(), &format!("{base}/a.txt")])
            .expect("curl");
    assert_eq!(out, "304", "-z sends If-Modified-Since");
    let (out, _) =
        curl(&["-o", "/dev/null", "-w", "%{http_code}", "-z", "2001-01-01", &format!("{base}/a.txt")]).expect("curl");
    assert_eq!(out, "200", "modified since 2001");
    let (out, _) =
        curl(&["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &format!("{base}/sub")]).expect("curl");
    assert_eq!(out, format!("301 {base}/sub/"));
    let secret = format!("twirl-secret-{}", std::process::id());
    for (path, want) in [
        (format!("/../{secret}"), "403"),
        (format!("/%2e%2e/{secret}"), "403"),
        (format!("/%2e%2e%2f{secret}"), "404"),
        (format!("/..%2f{secret}"), "404"),
        ("/%00".to_string(), "400"),
        ("/%ff".to_string(), "400"),
    ] {
        let (out, _) = curl(&["--path-as-is", "-w", "%{http_code}", &format!("{base}{path}")]).expect("curl");
        assert!(out.ends_with(want), "{path}: {out}");
        assert!(!out.contains("SECRET"), "{path}");
    }
    let (out, _) = curl(&["--http2-prior-knowledge", "-w", "%{http_code}", &format!("{base}/a.txt")]).expect("curl");
    assert!(!out.contains("hello"), "HTTP/2 is refused, not half-spoken: {out}");
}

#[test]
fn a_1_gib_download_keeps_rss_growth_under_8_mib() {
    let root = Root::new("rss");
    const SIZE: u64 = 1 << 30;
    // Sparse: 1 GiB of zeros that takes no disk.
    std::fs::File::create(root.0.join("huge.bin")).unwrap().set_len(SIZE).unwrap();
    let mut server = root.serve();
    let pid = server.pid();
    let mut s = TcpStream::connect(server.addr(0)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    // Warm the server up with a small request, then measure from there.
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].ends_with(b"hello\n"));
    let before = rss(pid);
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let (mut got, mut peak, mut next_sample) = (0u64, before, 0u64);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) => {
                let _ = server.child.kill();
                let mut log = String::new();
                if let Some(mut err) = server.child.stderr.take() {
                    let _ = err.read_to_string(&mut log);
                }
                panic!("after {got} bytes: {e}; the server's log:\n{log}");
            }
        }
        if got >= next_sample {
            peak = peak.max(rss(pid));
            next_sample += 16 << 20;
        }
    }
    peak = peak.max(rss(pid));
    assert!(got > SIZE && got < SIZE + 1024, "the head and 1 GiB: {got}");
    let growth = peak.saturating_sub(before);
    println!("1 GiB download: server RSS {before} -> peak {peak} bytes, growth {} KiB", growth / 1024);
    assert!(before > 0, "RSS readable from /proc");
    assert!(growth < 8 << 20, "RSS grew {growth} bytes");
}

#[test]
fn bare_serve_leaves_http_out_and_help_describes_it() {
    let out = output(twirl(&["help", "http"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("root=<DIR>") && text.contains("default ."), "{text}");
    assert!(text.contains("a bare 'twirl serve' leaves it out"), "{text}");
    let out = output(twirl(&["list"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("http ") && l.contains("tcp:8000")), "{text}");
    let out = output(twirl(&["serve", "http@tcp:0", "root=/no/such/dir/twirl"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root='/no/such/dir/twirl'"));
}
