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

/// Runs `tests/browser/dashboard_check.py` (headless Chromium over the
/// DevTools protocol) and returns its JSON line.
fn browse(browser: &str, url: &str, mode: &str, shot: &std::path::Path) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard_check.py");
    let child = Command::new("python3")
        .args([script, browser, url, mode, shot.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    // The script bounds its own waits to a minute; this bounds the script.
    let out = finish(child, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

#[test]
fn the_page_in_headless_chromium_updates_with_no_console_error() {
    let Some(browser) = chromium() else {
        return println!("skipped: chromium is not installed (.ci/run installs Debian's)");
    };
    let (_server, echo, url) = start();
    let port = echo.rsplit(':').next().unwrap().to_string();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let report = browse(&browser, &url, &port, &shot);
    assert_eq!(report["errors"], serde_json::json!([]), "console errors: {report}");
    assert_ne!(report["before"]["v-accepted"], report["after"]["v-accepted"], "{report}");
    assert_ne!(report["before"]["v-bytes_in"], report["after"]["v-bytes_in"], "{report}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    println!("dashboard screenshot: {}", shot.display());
}

#[test]
fn deadlock_dashboard_feeds_the_four_runs_then_stays_until_sigint() {
    let q = twirl_lab::Options::quick();
    let (bytes, cap, sockbuf) = (q.bytes.to_string(), q.cap.to_string(), q.sockbuf.to_string());
    let args =
        ["deadlock", "--dashboard", "tcp:0", "--bytes", &bytes, "--cap", &cap, "--stall", "1", "--sockbuf", &sockbuf];
    // Its report goes on after the first line: keep reading stdout to the
    // end (a closed pipe would end the command), and keep the lines.
    let mut child = twirl(&args).stdout(Stdio::piped()).spawn().expect("spawn twirl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut server = Server { child, lines: Vec::new() };
    let first = rx.recv_timeout(WAIT).expect("the dashboard line");
    let url = first.strip_prefix("dashboard on ").expect("the dashboard line first").to_string();
    let page = fetch(&url, "/");
    assert!(page.contains("<title>twirl deadlock lab</title>"), "{page}");
    // The lab takes a few seconds; the feed fills as it goes (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let runs = loop {
        let doc = stats_json(&url);
        let runs = doc["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() == 4 && runs.iter().all(|r| !r["outcome"].is_null()) {
            break runs;
        }
        assert!(std::time::Instant::now() < deadline, "the lab did not finish: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let peak = |r: &serde_json::Value| {
        r["samples"].as_array().unwrap().iter().map(|s| s[3].as_u64().unwrap()).max().unwrap_or(0)
    };
    assert_eq!(runs[0]["outcome"], "DEADLOCK");
    assert_eq!(runs[1]["outcome"], "COMPLETED");
    assert!(peak(&runs[1]) > 0, "run 2's buffer rose: {}", peak(&runs[1]));
    assert_eq!(runs[3]["outcome"], "ABORTED");
    assert_eq!(runs[3]["cap"].as_u64(), Some(q.cap as u64));
    // The page draws the four runs with their outcomes, in a real browser.
    match chromium() {
        None => println!("skipped the lab page in a browser: chromium is not installed"),
        Some(browser) => {
            let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("deadlock-dashboard.png");
            let out = browse(&browser, &url, "lab", &shot);
            assert_eq!(out["errors"], serde_json::json!([]), "console errors: {out}");
            assert_eq!(out["outcomes"][0], "DEADLOCK", "{out}");
            assert_eq!(out["outcomes"][1], "COMPLETED", "{out}");
            println!("deadlock dashboard screenshot: {}", shot.display());
        }
    }
    // It stays up after the report, until Ctrl-C.
    let stays = loop {
        match rx.recv_timeout(WAIT) {
            Ok(line) if line.starts_with("the dashboard stays on ") => break line,
            Ok(_) => {}
            Err(e) => panic!("no 'stays' line: {e}"),
        }
    };
    assert!(stays.contains(&url), "{stays}");
    assert!(stats_json(&url)["runs"].is_array());
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit().code(), Some(0));
    reader.join().expect("reader");
}

#[test]
fn with_two_threads_the_json_has_each_thread_and_their_total() {
    let server = Server::start(twirl(&["serve", "--threads", "2", "--dashboard", "tcp:0", "echo@tcp:0"]), 2);
    let url = server.lines[1].strip_prefix("dashboard on ").expect("the dashboard line").to_string();
    let echo = server.endpoint(0).trim_start_matches("tcp:").to_string();
    // 40 connections: the kernel's hash puts some on each thread.
    for _ in 0..40 {
        let mut s = TcpStream::connect(&echo).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
    }
    // The other thread files its stats every second: wait (bounded) for it.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let doc = stats_json(&url);
        let threads = doc["threads"].as_array().expect("a threads array").clone();
        assert_eq!(threads.len(), 2, "{doc}");
        let accepted: Vec<u64> = threads.iter().map(|t| t["accepted"].as_u64().unwrap_or(0)).collect();
        // Thread 0 also accepted the dashboard's own connections.
        if accepted[1] > 0 && accepted.iter().sum::<u64>() >= 40 {
            assert_eq!(doc["stats"]["accepted"].as_u64(), Some(accepted.iter().sum()), "the total: {doc}");
            assert!(accepted[0] > 0, "both threads took connections: {accepted:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "thread 1 never showed its connections: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
