//! What the restart tests share: clients that connect, send, read the
//! whole echo and close, in a loop, through a restart; the new copy's pid
//! from the old copy's log line; and its end, whatever the test's outcome.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::WAIT;

/// Clients looping on an echo server; each keeps what went wrong.
pub struct Looping {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<Vec<String>>>,
}

impl Looping {
    /// `n` clients on `echo`, each round trip checked byte for byte.
    pub fn start(echo: SocketAddr, n: usize) -> Looping {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let clients = (0..n)
            .map(|i| {
                let (stop, ok) = (stop.clone(), ok.clone());
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    // Bounded: the test stops it within seconds; the cap is a backstop.
                    for k in 0..1_000_000u32 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let msg = format!("client {i} message {k}");
                        let got = (|| -> std::io::Result<Vec<u8>> {
                            let mut s = TcpStream::connect(echo)?;
                            s.set_read_timeout(Some(WAIT))?;
                            s.write_all(msg.as_bytes())?;
                            let mut back = vec![0u8; msg.len()];
                            s.read_exact(&mut back)?;
                            Ok(back)
                        })();
                        match got {
                            Ok(back) if back == msg.as_bytes() => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => failures.push(format!("{other:?}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        Looping { stop, ok, clients }
    }

    /// Round trips that came back whole so far.
    pub fn done(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `more` round trips beyond now came back.
    pub fn wait_for(&self, more: usize) {
        let target = self.done() + more;
        let t0 = Instant::now();
        while self.done() < target && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients; every failure they saw.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().flat_map(|c| c.join().expect("client")).collect()
    }
}

/// The new copy's pid, from the old copy's `restart: pid N serves now` line.
pub fn new_copy_pid(said: &str) -> i32 {
    said.split("restart: pid ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("the new copy's pid")
}

/// Kills the process on drop: the new copy a restart started, which is no
/// child of the test's.
pub struct Reap(pub i32);

impl Drop for Reap {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid the old copy reported starting.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// Waits (bounded) for a child to exit.
pub fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "the process did not exit in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}
