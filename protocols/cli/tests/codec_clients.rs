//! The `twirl client` binary against the byte-order and time plugins
//! (`struct`, `amf`, `daytime`, `binarytime`, `sntp`), served by a real
//! reactor on ephemeral loopback ports. The servers themselves are tested in
//! the plugin crate (`protocols/tests/codec_plugins.rs`).
//!
//! Every wait is bounded: socket reads have timeouts, channel receives use
//! `recv_timeout`, child processes are killed after [`WAIT`].

use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use twirl_protocols::plugins::amf::{json, sample_packet};

// The plugin crate's test support, shared rather than copied.
#[path = "../../tests/support/mod.rs"]
mod support;
use support::{LAB_LINES, Served as Server, stdout};

const WAIT: Duration = Duration::from_secs(20);

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

fn twirl(args: &[&str]) -> Output {
    support::run_twirl(args, b"", WAIT)
}

#[test]
fn twirl_clients_print_their_readings() {
    let server = Server::start(&[
        "struct@tcp:0",
        "amf@tcp:0",
        "daytime@tcp:0",
        "daytime@udp:0",
        "binarytime@tcp:0",
        "binarytime@udp:0",
        "sntp@udp:0",
    ]);
    let ep = |kind: &str, a: SocketAddr| format!("{kind}:{a}");

    let out = twirl(&["client", "struct", &ep("tcp", server.tcp(0))]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), LAB_LINES);
    let out = twirl(&["client", "struct", &ep("tcp", server.tcp(0)), "--little", "1", "2", "-3", "-4"]);
    assert_eq!(stdout(&out), "big-endian: 256 33554432 -513 -50331649\nlittle-endian: 1 2 -3 -4\n");

    let out = twirl(&["client", "amf", &ep("tcp", server.tcp(1))]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json::packet_from_json(stdout(&out).trim_end()).unwrap(), sample_packet());
    let request = r#"{"version":3,"messages":[{"target":"add","response":"/2","value":[1,2.5]}]}"#;
    let out = twirl(&["client", "amf", &ep("tcp", server.tcp(1)), request]);
    assert_eq!(
        stdout(&out),
        "{\"version\":3,\"headers\":[],\"messages\":[{\"target\":\"add\",\"response\":\"/2\",\"value\":[1,2.5]}]}\n"
    );

    for i in [2, 3] {
        let kind = if i == 2 { "tcp" } else { "udp" };
        let addr = if i == 2 { server.tcp(i) } else { server.udp(i) };
        let out = twirl(&["client", "daytime", &ep(kind, addr)]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let reply = stdout(&out).replace('\n', "\r\n");
        support::is_daytime_now(reply.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    }

    for i in [4, 5] {
        let kind = if i == 4 { "tcp" } else { "udp" };
        let addr = if i == 4 { server.tcp(i) } else { server.udp(i) };
        let out = twirl(&["client", "binarytime", &ep(kind, addr)]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = stdout(&out);
        let t = chrono::DateTime::parse_from_rfc3339(text.trim_end()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(text.ends_with("Z\n"), "{text}");
        assert!((t.timestamp() as f64 - unix_now()).abs() < 5.0, "{text}");
    }

    let out = twirl(&["client", "sntp", &ep("udp", server.udp(6))]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let t = lines[0].strip_prefix("server time: ").unwrap_or_else(|| panic!("{text}"));
    assert!((chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp() as f64 - unix_now()).abs() < 5.0);
    let offset: f64 = lines[1].strip_prefix("offset: ").and_then(|s| s.strip_suffix(" s")).unwrap().parse().unwrap();
    let delay: f64 = lines[2].strip_prefix("delay: ").and_then(|s| s.strip_suffix(" s")).unwrap().parse().unwrap();
    assert!(offset.abs() < 1.0 && (0.0..1.0).contains(&delay), "{text}");
    assert!(lines[3].starts_with("server: stratum 10, reference LOCL, version 4, precision 2^-"), "{text}");
    server.stop();
}

#[test]
fn twirl_client_usage_errors_exit_2_naming_the_value() {
    // Nothing listens here: a usage error must come before any connection attempt.
    let nowhere = "tcp:127.0.0.1:9";
    let out = twirl(&["client", "struct", nowhere, "70000", "2", "-3", "-4"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("70000") && err.contains("u16"), "{err}");
    assert!(out.stdout.is_empty());

    let out = twirl(&["client", "struct", nowhere, "1", "2", "-40000", "-4"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("-40000"));

    let out = twirl(&["client", "amf", nowhere, "{\"mesages\":[]}"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("'mesages'"));

    let out = twirl(&["client", "sntp", "tcp:127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2), "sntp needs a udp endpoint: {out:?}");
}

#[test]
fn twirl_client_amf_exits_1_when_the_server_refuses() {
    // A value nested 40 deep packs fine but passes the server's 32-level cap:
    // the client prints the server's error line and exits 1.
    let server = Server::start(&["amf@tcp:0"]);
    let mut deep = String::from("null");
    for _ in 0..40 {
        deep = format!("[{deep}]");
    }
    let request = format!("{{\"messages\":[{{\"value\":{deep}}}]}}");
    let out = twirl(&["client", "amf", &format!("tcp:{}", server.tcp(0)), &request]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(text.starts_with("error: at byte ") && text.contains("deeper than 32"), "{text}");
    server.stop();
}
