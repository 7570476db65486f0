//! The `twirl` binary end to end: `list`, `serve`'s listening lines and
//! signals, exit codes, and accepting under descriptor exhaustion.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{Server, WAIT, output, twirl};

fn echo_once(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(msg).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read reply");
    out
}

#[test]
fn list_prints_one_line_per_plugin() {
    let out = output(twirl(&["list"]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), twirl_protocols::registry::PLUGINS.len());
    for (line, p) in lines.iter().zip(twirl_protocols::registry::PLUGINS) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], p.name);
        assert_eq!(fields[1], p.transports());
        let defaults = if p.defaults.is_empty() { "-".to_string() } else { p.defaults.join(",") };
        assert_eq!(fields[2], defaults);
        match p.options_mark() {
            Some(mark) => {
                assert!(line.ends_with(&format!("{} {mark}", p.summary)), "{line}");
                assert!(mark.starts_with("[options: "), "{line}");
            }
            None => assert!(line.ends_with(p.summary), "{line}"),
        }
    }
    // The plugins that take options are marked, a required one with `!`.
    let line = |name: &str| lines.iter().find(|l| l.starts_with(&format!("{name} "))).copied().unwrap_or("");
    assert!(line("chargen").ends_with("[options: width]"), "{}", line("chargen"));
    assert!(line("portforward").ends_with("[options: to!]"), "{}", line("portforward"));
    assert!(line("reverse").ends_with("[options: flush_ms]"), "{}", line("reverse"));
    assert!(!line("echo").contains("[options"), "{}", line("echo"));
}

#[test]
fn help_plugin_lists_its_options() {
    let out = output(twirl(&["help", "chargen"]));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("width=<N, 1 to 1024>") && text.contains("(default 72)"), "{text}");
    let out = output(twirl(&["help", "portforward"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("to=<tcp:HOST:PORT or unix:PATH>") && text.contains("(required)"), "{text}");
    let out = output(twirl(&["help", "echo"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("options: none"));
    let out = output(twirl(&["help", "serve"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: twirl serve"));
    assert_one_line_error(&output(twirl(&["help", "nosuch"])), 2, "'nosuch'");
    let out = output(twirl(&["--help"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("twirl help PLUGIN"));
}

/// The first `n` bytes a chargen server sends.
fn chargen_bytes(addr: SocketAddr, n: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).expect("read");
    b
}

#[test]
fn an_option_changes_its_plugin_only() {
    let server = Server::start(twirl(&["serve", "chargen@tcp:0", "width=10", "chargen@tcp:0"]), 2);
    assert_eq!(chargen_bytes(server.addr(0), 24), b" !\"#$%&'()\r\n!\"#$%&'()*\r\n");
    let rfc = chargen_bytes(server.addr(1), 74);
    assert_eq!(rfc.len(), 74);
    assert_eq!(&rfc[72..], b"\r\n", "the spec without the option keeps 72");
}

#[test]
fn option_errors_exit_2_naming_them() {
    assert_one_line_error(&output(twirl(&["serve", "chargen@tcp:0", "colour=red"])), 2, "'colour'");
    assert_one_line_error(&output(twirl(&["serve", "echo@tcp:0", "colour=red"])), 2, "'colour'");
    assert_one_line_error(&output(twirl(&["serve", "chargen@tcp:0", "width=0"])), 2, "width='0'");
    assert_one_line_error(&output(twirl(&["serve", "chargen@tcp:0", "width=wide"])), 2, "width='wide'");
    assert_one_line_error(&output(twirl(&["serve", "reverse@tcp:0", "flush_ms=-1"])), 2, "flush_ms='-1'");
    assert_one_line_error(&output(twirl(&["serve", "chat@tcp:0", "backlog=1"])), 2, "backlog='1'");
    assert_one_line_error(&output(twirl(&["serve", "portforward@tcp:0", "to=udp:127.0.0.1:1"])), 2, "to=");
    assert_one_line_error(&output(twirl(&["serve", "portforward@tcp:0"])), 2, "'to'");
    assert_one_line_error(&output(twirl(&["serve", "echo@tcp:0", "portforward@tcp:0"])), 2, "'to'");
    assert_one_line_error(&output(twirl(&["serve", "width=10", "chargen@tcp:0"])), 2, "'width=10'");
}

#[test]
fn serve_prints_bound_endpoints_serves_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("twirl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("echo.sock");
    let unix = format!("echo@unix:{}", sock.display());
    let mut server = Server::start(twirl(&["serve", "echo@tcp:0", "echo@udp:0", &unix]), 3);
    assert!(server.lines[0].starts_with("listening echo on tcp:127.0.0.1:"), "{:?}", server.lines);
    assert!(server.lines[1].starts_with("listening echo on udp:127.0.0.1:"), "{:?}", server.lines);
    assert_eq!(server.lines[2], format!("listening echo on unix:{}", sock.display()));
    let addr = server.addr(0);
    assert_ne!(addr.port(), 0, "the line shows the port actually bound");
    assert_eq!(echo_once(addr, b"ping"), b"ping");

    let out = output(twirl(&["client", "echo", &format!("unix:{}", sock.display()), "via", "unix"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via unix\n");

    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "the unix socket file is removed on stop");
}

#[test]
fn sigint_with_a_connection_open_exits_zero() {
    let mut server = Server::start(twirl(&["serve", "echo@tcp:0"]), 1);
    let mut idle = TcpStream::connect(server.addr(0)).unwrap();
    idle.set_read_timeout(Some(WAIT)).unwrap();
    idle.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    idle.read_exact(&mut b).unwrap();
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit().code(), Some(0));
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0, "the server closed our connection cleanly");
}

fn assert_one_line_error(out: &std::process::Output, code: i32, word: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(word), "{err:?} should name {word:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn usage_errors_exit_2_naming_the_bad_word() {
    assert_one_line_error(&output(twirl(&["serve", "nosuchplugin"])), 2, "nosuchplugin");
    assert_one_line_error(&output(twirl(&["serve", "echo@tcp:70000"])), 2, "70000");
    assert_one_line_error(&output(twirl(&["serve", "echo@sctp:1"])), 2, "sctp");
    assert_one_line_error(&output(twirl(&["client", "nosuch", "tcp:127.0.0.1:1"])), 2, "nosuch");
    assert_one_line_error(&output(twirl(&["client", "echo", "tcp:nohostport"])), 2, "tcp:nohostport");
    assert_one_line_error(&output(twirl(&["frobnicate"])), 2, "frobnicate");
}

#[test]
fn runtime_errors_exit_1_naming_the_endpoint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = output(twirl(&["serve", &format!("echo@tcp:{port}")]));
    assert_one_line_error(&out, 1, &format!("tcp:127.0.0.1:{port}"));

    drop(taken);
    let out = output(twirl(&["client", "echo", &format!("tcp:127.0.0.1:{port}"), "hi"]));
    assert_one_line_error(&out, 1, &format!("tcp:127.0.0.1:{port}"));
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the parenthesised command name: state is field 3; utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn accept_under_emfile_neither_spins_nor_dies_and_recovers() {
    // A low descriptor limit in the child only: the server holds about ten
    // descriptors of its own, so a handful of clients exhaust it.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit -n 16 && exec {} serve echo@tcp:0", common::bin())]).stderr(Stdio::piped());
    let server = Server::start(cmd, 1);
    let addr = server.addr(0);

    let mut clients = Vec::new();
    for i in 0..12 {
        let mut s = TcpStream::connect(addr).expect("connect (the kernel backlog accepts)");
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        s.write_all(format!("{i:02}").as_bytes()).unwrap();
        clients.push(s);
    }
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for (i, mut s) in clients.into_iter().enumerate() {
        let mut b = [0u8; 2];
        match s.read_exact(&mut b) {
            Ok(()) => {
                assert_eq!(&b, format!("{i:02}").as_bytes());
                served.push(s);
            }
            Err(_) => waiting.push((i, s)),
        }
    }
    assert!(!served.is_empty(), "some clients are served before the limit");
    assert!(!waiting.is_empty(), "the descriptor limit was reached");

    // Out of descriptors with connections queued: the loop must back off, not spin.
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) - before;
    assert!(used < 30, "server used {used} ticks of CPU in 1 s while out of descriptors");

    // Free descriptors: the queued clients are accepted and served.
    drop(served);
    for (i, mut s) in waiting {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap_or_else(|e| panic!("client {i} never served: {e}"));
        assert_eq!(&b, format!("{i:02}").as_bytes());
    }
    assert_eq!(echo_once(addr, b"after"), b"after", "still serving new clients");
}
