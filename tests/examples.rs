//! The examples, run: each in its self-check mode (`TWIRL_EXAMPLE_SMOKE=1`,
//! which makes it talk to itself, check the result and exit), plus the
//! deadlock lab asserted on directly through `twirl_lab`.
//!
//! `cargo test` builds the examples before running tests; with a filter
//! such as `--test examples` it does not, so a missing one is built here.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twirl_lab::{Options, Outcome};

const LIMIT: Duration = Duration::from_secs(60);

/// `target/<profile>/examples/NAME`, next to this test's `deps` directory.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs an example in self-check mode; panics with its output unless it
/// exits 0 within [`LIMIT`].
fn run_example(name: &str) -> String {
    let path = example_path(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building example {name} failed");
    }
    let mut child = Command::new(&path)
        .env("TWIRL_EXAMPLE_SMOKE", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", path.display()));
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait for example") {
            Some(_) => break,
            None if start.elapsed() > LIMIT => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!("example {name} still running after {LIMIT:?}:\n{}", String::from_utf8_lossy(&out.stdout));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child.wait_with_output().expect("collect output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn echo_server_echoes_itself() {
    assert!(run_example("echo_server").contains("self-check passed"));
}

#[test]
fn write_a_plugin_passes_harness_and_socket_checks() {
    let out = run_example("write_a_plugin");
    assert!(out.contains("harness checks passed"), "{out}");
    assert!(out.contains("bye, the total was 42"), "{out}");
}

#[test]
fn deadlock_example_self_check() {
    assert!(run_example("deadlock").contains("self-check passed"));
}

#[test]
fn udp_backoff_ignores_spoofs_and_retries() {
    let out = run_example("udp_backoff");
    assert!(out.contains("not the id of our request"), "{out}");
    assert!(out.contains("not from the server"), "{out}");
    assert!(out.contains("got the reply"), "{out}");
}

#[test]
fn chat_client_members_hear_each_other() {
    assert!(run_example("chat_client").contains("self-check passed"));
}

#[test]
fn reconnecting_client_comes_back() {
    let out = run_example("reconnecting_client");
    assert!(out.contains("done: 2 connections"), "{out}");
}

#[test]
fn timers_example_runs() {
    let out = run_example("timers");
    assert!(out.contains("call_every: run 5 of 5"), "{out}");
    assert!(out.contains("client heard: bye"), "{out}");
}

#[test]
fn deadlock_lab_freezes_blocking_io_but_not_twirl() {
    let opts = Options::quick();
    let report = twirl_lab::run(&opts).expect("lab runs");
    let s = &report.scenarios;
    assert_eq!(s.len(), 4);

    // 1: the deadlock, both threads stuck in send, caught by the watchdog.
    assert_eq!(s[0].outcome, Outcome::Deadlocked, "{report}");
    assert!(s[0].sent < opts.bytes && s[0].received == 0, "{report}");
    assert_eq!(s[0].parties.len(), 2);
    assert!(s[0].parties.iter().all(|p| p.state.starts_with("in send()")), "{report}");
    assert_eq!(s[0].sockets.len(), 2);
    if cfg!(target_os = "linux") {
        let queued: u64 = s[0].sockets.iter().map(|k| k.unsent.unwrap() + k.unread.unwrap()).sum();
        assert!(queued > 0, "{report}");
    }
    assert!(s[0].notes.iter().any(|n| n.contains("torn down")), "{report}");

    // 2 and 3: complete, every byte back.
    for sc in &s[1..3] {
        assert_eq!(sc.outcome, Outcome::Completed, "{report}");
        assert_eq!((sc.sent, sc.received), (opts.bytes, opts.bytes), "{report}");
        assert!(sc.peak_buffered.is_some());
    }
    assert!(s[1].peak_buffered.unwrap() > 0, "twirl had to buffer: {report}");

    // 4: bounded memory, aborted with the reason.
    match &s[3].outcome {
        Outcome::Aborted(reason) => assert!(reason.contains("hard cap"), "{reason}"),
        other => panic!("expected an abort, got {other:?}\n{report}"),
    }
    assert!(s[3].peak_buffered.unwrap() <= opts.cap as u64, "{report}");

    // The chart's "buffered by twirl" line reaches the peak the report gives.
    for sc in &s[1..] {
        let drawn = sc.samples.iter().map(|x| x.buffered).max().unwrap_or(0);
        assert_eq!(Some(drawn), sc.peak_buffered, "{}: chart vs report\n{report}", sc.title);
    }

    // The report and the chart.
    let text = report.to_string();
    assert!(text.contains("DEADLOCK") && text.contains("The lesson:"), "{text}");
    assert!(s.iter().all(|sc| !sc.samples.is_empty()));
    let svg = std::env::temp_dir().join(format!("twirl-deadlock-{}.svg", std::process::id()));
    twirl_lab::write_svg(&report, &svg).expect("chart");
    let drawn = std::fs::read_to_string(&svg).expect("read chart");
    let _ = std::fs::remove_file(&svg);
    assert!(drawn.starts_with("<svg") && drawn.contains("DEADLOCK"), "{}", &drawn[..drawn.len().min(200)]);
}

#[test]
fn relay_example_pipes_with_backpressure_and_half_close() {
    let out = run_example("relay");
    assert!(out.contains("self-check passed: 4194304 bytes there and back"), "{out}");
}

#[test]
fn threads_example_shares_a_count_across_reactors() {
    let out = run_example("threads");
    assert!(out.contains("self-check passed: every client saw the total of 100 lines"), "{out}");
}
