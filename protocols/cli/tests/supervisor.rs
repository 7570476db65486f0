//! Life under a supervisor, end to end: `twirl serve` on sockets handed
//! down (`fd:N`, `systemd:INDEX`), each wrong descriptor refused with a
//! clear error, and a restart on SIGUSR2 under continuous load that
//! refuses, resets or cuts short no connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::restart::{Looping, Reap, new_copy_pid, wait_exit};
use common::{WAIT, bin, output};

/// Lets a child inherit `fd` (clears close-on-exec).
fn inheritable(fd: impl AsFd) {
    socket2::SockRef::from(&fd).set_cloexec(false).expect("clear FD_CLOEXEC");
}

/// A `twirl` child whose stdout lines keep coming through `lines` (the
/// new copy of a restart writes to the same pipe), killed on drop.
struct Twirl {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Twirl {
    fn start(mut cmd: Command) -> Twirl {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn twirl");
        let (out, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out.send(l);
            }
        });
        let (err, stderr) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = err.send(l);
            }
        });
        Twirl { child, lines, stderr }
    }

    /// The next listening line's endpoint address.
    fn listening(&self) -> (String, SocketAddr) {
        let line = self.lines.recv_timeout(WAIT).expect("a listening line");
        let endpoint = line.rsplit(' ').next().expect("endpoint").to_string();
        let addr = endpoint.split_once(':').and_then(|(_, a)| a.parse().ok()).expect("an address");
        (line, addr)
    }

    /// Waits for a stderr line containing `needle`; returns it.
    fn stderr_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(100))
                && l.contains(needle)
            {
                return l;
            }
        }
        panic!("no stderr line with '{needle}'");
    }
}

impl Drop for Twirl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_round_trip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("the echo");
    back
}

#[test]
fn serves_a_tcp_listener_and_a_udp_socket_handed_down_by_descriptor() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    inheritable(&tcp);
    inheritable(&udp);
    let (t, u) = (tcp.as_raw_fd(), udp.as_raw_fd());
    let mut cmd = Command::new(bin());
    cmd.args(["serve", &format!("echo@fd:{t}"), &format!("json@fd:{u}")]);
    let twirl = Twirl::start(cmd);
    let (line, addr) = twirl.listening();
    assert_eq!(addr, tcp.local_addr().unwrap(), "{line}");
    assert_eq!(line, format!("listening echo on tcp:{addr}"));
    let (line, uaddr) = twirl.listening();
    assert_eq!(line, format!("listening json on udp:{uaddr}"));
    assert_eq!(uaddr, udp.local_addr().unwrap());
    // Ours are copies: close them, so only the child serves the sockets.
    drop((tcp, udp));
    assert_eq!(echo_round_trip(addr, b"handed down"), b"handed down");
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.send_to(br#"{"numbers":[1,2,3],"op":"sum"}"#, uaddr).unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = c.recv_from(&mut buf).expect("a JSON answer");
    assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with('{'), "{:?}", &buf[..n]);
}

#[test]
fn serves_a_systemd_socket_meant_for_it() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    inheritable(&tcp);
    // As systemd does: the socket at descriptor 3, LISTEN_PID the server's
    // own pid (the shell's, which exec keeps), LISTEN_FDS the count.
    let script = format!(
        "exec 3<&{fd}; export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=echo; exec {bin} serve echo@systemd:domain=INET:index=0",
        fd = tcp.as_raw_fd(),
        bin = bin()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    let twirl = Twirl::start(cmd);
    let (_, addr) = twirl.listening();
    assert_eq!(addr, tcp.local_addr().unwrap());
    drop(tcp);
    assert_eq!(echo_round_trip(addr, b"socket activated"), b"socket activated");
}

/// `twirl serve ARGS` with `env` set (and LISTEN_PID only if `env` has
/// it): its exit code and stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("LISTEN_PID").envs(env.iter().copied());
    let out = output(cmd);
    assert!(out.stdout.is_empty(), "nothing listens: {}", String::from_utf8_lossy(&out.stdout));
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A spec, the environment it is served with, and what its error says.
type Case = (Vec<String>, Vec<(&'static str, &'static str)>, String);

#[test]
fn each_wrong_descriptor_is_refused_with_a_clear_error() {
    let file = std::fs::File::open("/proc/self/status").unwrap();
    inheritable(&file);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    inheritable(&udp);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    inheritable(&l);
    let conn = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    inheritable(&conn);
    let cases: Vec<Case> = vec![
        (vec!["echo@fd:900".into()], vec![], "descriptor 900 is not open".into()),
        (vec![format!("echo@fd:{}", file.as_raw_fd())], vec![], "is not a socket".into()),
        (vec![format!("echo@fd:{}", conn.as_raw_fd())], vec![], "is not listening".into()),
        (vec![format!("chat@fd:{}", udp.as_raw_fd())], vec![], "does not speak udp (fd:".into()),
        (vec![format!("reorder@fd:{}", l.as_raw_fd())], vec![], "is a listening stream socket".into()),
        (vec!["echo@systemd:0".into()], vec![], "LISTEN_PID is not set".into()),
        (
            vec!["echo@systemd:0".into()],
            vec![("LISTEN_PID", "1"), ("LISTEN_FDS", "1")],
            "LISTEN_PID=1 is not this process".into(),
        ),
        (vec!["echo@fd:x".into()], vec![], "'x' is not a descriptor number".into()),
    ];
    for (words, env, want) in cases {
        let mut args = vec!["serve"];
        args.extend(words.iter().map(String::as_str));
        let (code, stderr) = refused(&args, &env);
        assert!(stderr.contains(&want), "{words:?}: want '{want}' in: {stderr}");
        assert!(matches!(code, Some(1 | 2)), "{words:?}: exit {code:?}");
    }
    // A systemd index past LISTEN_FDS, in a process whose pid LISTEN_PID names.
    let script = format!("export LISTEN_PID=$$ LISTEN_FDS=1; exec {} serve echo@systemd:1", bin());
    let out = output({
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("passed 1 socket(s); there is no index 1"), "{stderr}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_restart_on_sigusr2_drops_no_connection() {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "echo@tcp:0", "reverse@tcp:0"]);
    let mut old = Twirl::start(cmd);
    let (_, echo) = old.listening();
    let (_, reverse) = old.listening();

    // Four clients in a loop: connect, send, read the whole reply, close.
    let load = Looping::start(echo, 4);
    load.wait_for(50);
    // SAFETY: kill(2) on our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(old.child.id() as i32, libc::SIGUSR2) }, 0);
    let new_pid = new_copy_pid(&old.stderr_line("restart: pid "));
    let _reap = Reap(new_pid);
    let (line, again) = old.listening();
    assert_eq!(again, echo, "the new copy serves the same port: {line}");
    let (_, again) = old.listening();
    assert_eq!(again, reverse);
    let status = wait_exit(&mut old.child);
    assert!(status.success(), "the old copy exits 0: {status:?}");
    let at_exit = load.done();
    load.wait_for(50);
    let done = load.done();
    let failures = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {} round trips failed: {:?}",
        failures.len(),
        done,
        &failures[..failures.len().min(5)]
    );
    assert!(done > at_exit, "the new copy served after the old one left");
    assert_eq!(echo_round_trip(echo, b"new copy"), b"new copy");
    assert!(std::path::Path::new(&format!("/proc/{new_pid}")).exists());
}

/// Python's `ssl` in a loop: connect, handshake (verifying `cert`), send,
/// read the echo, close; one line per round trip, `ok` or what failed.
const TLS_LOOP: &str = r#"
import socket, ssl, sys
port, cafile, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
for i in range(n):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                msg = b"round %d" % i
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    got += chunk
                print("ok" if got == msg else "fail: got %r" % got, flush=True)
    except Exception as e:
        print("fail: %r" % e, flush=True)
"#;

#[test]
fn a_restart_of_a_tls_server_on_two_threads_stays_tls_and_drops_nothing() {
    if Command::new("python3").arg("--version").output().is_err() {
        return eprintln!("skipped: python3 is not installed");
    }
    let dir = std::env::temp_dir().join(format!("twirl-tls-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = output({
        let mut c = Command::new(bin());
        c.args(["cert", dir.to_str().expect("utf-8")]);
        c
    });
    assert!(out.status.success(), "twirl cert: {}", String::from_utf8_lossy(&out.stderr));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let spec = format!("echo@tls:0:cert={}:key={}", cert.display(), key.display());
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--threads", "2", &spec]);
    let mut old = Twirl::start(cmd);
    let (line, addr) = old.listening();
    assert!(line.contains(" on tls:127.0.0.1:"), "{line}");
    assert_eq!(old.lines.recv_timeout(WAIT).as_deref(), Ok("serving on 2 threads"));

    let mut client = Command::new("python3")
        .args(["-c", TLS_LOOP, &addr.port().to_string(), cert.to_str().expect("utf-8"), "300"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut results = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    // 50 round trips, then the restart while the loop goes on.
    for _ in 0..50 {
        seen.push(results.next().expect("a result").expect("a line"));
    }
    // SAFETY: kill(2) on our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(old.child.id() as i32, libc::SIGUSR2) }, 0);
    let said = old.stderr_line("restart: pid ");
    let _reap = Reap(new_copy_pid(&said));
    assert!(said.contains("(2 socket(s) handed down)"), "{said}");
    let (line, again) = old.listening();
    assert_eq!(again, addr, "the new copy serves the same port: {line}");
    assert!(line.contains(" on tls:"), "still TLS: {line}");
    seen.extend(results.map_while(Result::ok));
    let _ = client.wait();
    let failed: Vec<&String> = seen.iter().filter(|l| *l != "ok").collect();
    assert!(failed.is_empty(), "{} of {} failed: {:?}", failed.len(), seen.len(), &failed[..failed.len().min(5)]);
    assert_eq!(seen.len(), 300, "every round trip reported");
    let status = wait_exit(&mut old.child);
    assert!(status.success(), "the old copy exits 0: {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
