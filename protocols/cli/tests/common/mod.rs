//! What the binary's end-to-end tests share: a `twirl serve` child and its
//! listening lines.

#![allow(dead_code)] // each test file uses its own part of it

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod netns;
pub mod restart;

#[path = "../../../tests/support/mod.rs"]
mod support;

pub use support::finish;

/// The bound on every wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// Runs `cmd` to its end, stdout and stderr piped, at most [`WAIT`].
pub fn output(mut cmd: Command) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    finish(child, WAIT)
}

/// Resident memory of a process, in bytes (from /proc).
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// The binary under test; `TWIRL_TEST_BIN` points the tests at another
/// build (an older one, to see them fail there).
pub fn bin() -> String {
    std::env::var("TWIRL_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_twirl").to_string())
}

/// `twirl ARGS`, its stderr piped (for a test to read or to ignore).
pub fn twirl(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).stderr(Stdio::piped());
    c
}

/// A `twirl serve` child, killed on drop if still running.
pub struct Server {
    pub child: Child,
    /// Its `listening PLUGIN on ENDPOINT` lines.
    pub lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` (stdout is piped here) and waits for `expected`
    /// listening lines.
    pub fn start(mut cmd: Command, expected: usize) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn twirl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end even after the listening lines were taken: a
            // child that prints more later must not die of a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        while lines.len() < expected {
            match rx.recv_timeout(WAIT) {
                Ok(l) => lines.push(l),
                Err(e) => panic!("waiting for listening lines (got {lines:?}): {e}"),
            }
        }
        Server { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The endpoint of listening line `i`: `tcp:127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> &str {
        self.lines[i].rsplit(' ').next().expect("endpoint")
    }

    /// The socket address of listening line `i` (tcp or udp).
    pub fn addr(&self, i: usize) -> SocketAddr {
        let (_, a) = self.endpoint(i).split_once(':').expect("kind:addr");
        a.parse().expect("socket address")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a child we spawned and have not waited for.
        let rc = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(rc, 0);
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "twirl did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
