//! Name lookups off the loop: a few threads, started when needed, that
//! resolve host names one after another and end when nothing is left.
//!
//! `getaddrinfo` blocks, so it cannot run on the loop; but a thread per
//! lookup lets a burst of connects by name start thousands of threads. The
//! pool runs at most [`MAX_THREADS`] lookups at once and queues up to
//! [`MAX_QUEUED`] more; beyond that a lookup is refused at once (the
//! connect fails with `WouldBlock`) rather than piling up.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

/// Lookups running at once.
pub(crate) const MAX_THREADS: usize = 4;
/// Lookups waiting for a thread.
pub(crate) const MAX_QUEUED: usize = 4096;

/// One lookup and what to do with its answer (on the resolver thread).
type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    threads: usize,
}

/// The resolver pool; clones share it.
#[derive(Clone, Default)]
pub(crate) struct Resolver {
    queue: Arc<Mutex<Queue>>,
}

impl Resolver {
    /// Resolves `host:port` on a resolver thread and hands the first
    /// address (or the error) to `then`, on that thread.
    pub(crate) fn resolve(
        &self,
        host: String,
        port: u16,
        then: impl FnOnce(io::Result<SocketAddr>) + Send + 'static,
    ) -> io::Result<()> {
        self.submit(Box::new(move || {
            let found = (host.as_str(), port).to_socket_addrs().and_then(|mut addrs| {
                addrs.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address")))
            });
            then(found)
        }))
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        let mut q = self.queue.lock().map_err(|_| io::Error::other("resolver pool poisoned"))?;
        if q.threads >= MAX_THREADS {
            if q.jobs.len() >= MAX_QUEUED {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "too many name lookups waiting"));
            }
            q.jobs.push_back(job);
            return Ok(());
        }
        q.threads += 1;
        drop(q);
        let queue = self.queue.clone();
        let spawned = std::thread::Builder::new().name("twirl-resolve".into()).spawn(move || {
            let mut job = job;
            // Bounded by what was queued: each turn takes one job or ends.
            loop {
                job();
                let Ok(mut q) = queue.lock() else { return };
                match q.jobs.pop_front() {
                    Some(next) => job = next,
                    None => {
                        q.threads -= 1;
                        return;
                    }
                }
            }
        });
        if let Err(e) = spawned {
            if let Ok(mut q) = self.queue.lock() {
                q.threads -= 1;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Threads running now (for tests).
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.queue.lock().map(|q| q.threads).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_burst_of_lookups_runs_on_a_bounded_number_of_threads() {
        let pool = Resolver::default();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate_rx));
        let (done_tx, done_rx) = mpsc::channel();
        for i in 0..100 {
            let (gate, done) = (gate.clone(), done_tx.clone());
            pool.submit(Box::new(move || {
                // Hold every thread until the test lets them go.
                let _ = gate.lock().map(|g| g.recv_timeout(Duration::from_secs(10)));
                let _ = done.send(i);
            }))
            .expect("queued");
            assert!(pool.threads() <= MAX_THREADS, "{} threads after {} lookups", pool.threads(), i + 1);
        }
        assert_eq!(pool.threads(), MAX_THREADS);
        for _ in 0..100 {
            let _ = gate_tx.send(());
        }
        let mut seen: Vec<i32> =
            (0..100).map(|_| done_rx.recv_timeout(Duration::from_secs(10)).expect("every lookup runs")).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn localhost_resolves_on_the_pool() {
        let pool = Resolver::default();
        let (tx, rx) = mpsc::channel();
        pool.resolve("localhost".into(), 7, move |r| {
            let _ = tx.send(r.map(|a| a.port()));
        })
        .expect("started");
        let port = rx.recv_timeout(Duration::from_secs(10)).expect("answered").expect("resolved");
        assert_eq!(port, 7);
    }
}
