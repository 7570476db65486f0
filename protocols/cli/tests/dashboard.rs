//! `twirl serve --dashboard`: the JSON endpoint read by a script, and the
//! page in a real headless Chromium (when installed): it loads with no
//! console error, its numbers change after traffic, and a screenshot is
//! saved (its path printed).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, WAIT, finish, output, twirl};

/// `twirl serve --dashboard tcp:0 echo@tcp:0`: the echo address and the dashboard URL.
fn start() -> (Server, String, String) {
    let server = Server::start(twirl(&["serve", "--dashboard", "tcp:0", "echo@tcp:0"]), 2);
    assert!(server.lines[0].starts_with("listening echo on tcp:127.0.0.1:"), "{:?}", server.lines);
    let url = server.lines[1].strip_prefix("dashboard on ").expect("the dashboard line").to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");
    let echo = server.endpoint(0).trim_start_matches("tcp:").to_string();
    (server, echo, url)
}

/// A GET over a raw socket (HTTP/1.0: the server closes after it).
fn fetch(url: &str, path: &str) -> String {
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn stats_json(url: &str) -> serde_json::Value {
    let reply = fetch(url, "/stats.json");
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.0 200 OK") && head.contains("Content-Type: application/json"), "{head}");
    serde_json::from_str(body).expect("JSON")
}

#[test]
fn json_endpoint_counts_traffic() {
    let (_server, echo, url) = start();
    let before = stats_json(&url);
    assert_eq!(before["listeners"][0]["name"], "echo");
    assert!(before["stats"]["timers_pending"].as_u64().unwrap() >= 1, "the sampling timer");
    assert!(before["limits"]["high_water"].as_u64().unwrap() > 0);
    let mut s = TcpStream::connect(&echo).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    // Wait (bounded) for the next snapshots to show the connection.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = stats_json(&url);
        let echo_listener = &now["listeners"][0];
        if echo_listener["open"] == 1 && now["connections"].as_array().is_some_and(|c| !c.is_empty()) {
            assert_eq!(echo_listener["accepted"], 1);
            assert!(now["stats"]["bytes_in"].as_u64() > before["stats"]["bytes_in"].as_u64());
            assert_eq!(now["connections"][0]["listener"], "echo");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the snapshot never showed the connection: {now}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let page = fetch(&url, "/");
    assert!(page.contains("<title>twirl dashboard</title>") && page.contains("/stats.json"));
    assert!(fetch(&url, "/nothing").starts_with("HTTP/1.0 404"));
    let out = output(twirl(&["serve", "--dashboard", "udp:0", "echo@tcp:0"]));
    assert_eq!(out.status.code(), Some(2), "a dashboard needs a stream endpoint");
}

/// The Chromium binary, if installed.
fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    })
}

#[test]
fn the_page_in_headless_chromium_updates_with_no_console_error() {
    let Some(browser) = chromium() else {
        return println!("skipped: chromium is not installed (.ci/run installs Debian's)");
    };
    let (_server, echo, url) = start();
    let port = echo.rsplit(':').next().unwrap().to_string();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard_check.py");
    let child = Command::new("python3")
        .args([script, &browser, &url, &port, shot.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    // The script bounds its own waits to a minute; this bounds the script.
    let out = finish(child, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["errors"], serde_json::json!([]), "console errors: {report}");
    assert_ne!(report["before"]["v-accepted"], report["after"]["v-accepted"], "{report}");
    assert_ne!(report["before"]["v-bytes_in"], report["after"]["v-bytes_in"], "{report}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    println!("dashboard screenshot: {}", shot.display());
}
