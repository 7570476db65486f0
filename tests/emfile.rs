//! A listener backing off after `EMFILE` must recover when its retry finds
//! the accept queue empty. In its own test binary: it lowers the soft
//! `RLIMIT_NOFILE` of the whole process for a moment.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Echo, spawn_reactor};
use twirl::{Addr, Config, ReactorHandle, Stats};

const WAIT: Duration = Duration::from_secs(3);

/// The reactor's counters, read on its thread.
fn stats_of(handle: &ReactorHandle) -> Stats {
    let (tx, rx) = mpsc::channel();
    handle.call_from_thread(move |r| {
        let _ = tx.send(r.stats());
    });
    rx.recv_timeout(WAIT).expect("the reactor answered")
}

/// Polls the reactor's counters until `cond` holds (bounded).
fn wait_for_stats(handle: &ReactorHandle, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = stats_of(handle);
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "waiting for {what}; stats: {s}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// The listening TCP socket bound to `port` on 127.0.0.1 (accepted
/// sockets share the port; SO_ACCEPTCONN tells them apart).
fn find_listener_fd(port: u16) -> Option<RawFd> {
    (0..4096).find(|&fd| {
        // SAFETY: getsockname and getsockopt only write into the local,
        // properly sized buffers; a non-socket fd just fails.
        unsafe {
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::getsockname(fd, (&raw mut sa).cast(), &mut len) != 0
                || sa.sin_family != libc::AF_INET as libc::sa_family_t
                || u16::from_be(sa.sin_port) != port
            {
                return false;
            }
            let mut on: libc::c_int = 0;
            let mut olen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&raw mut on).cast(), &mut olen) == 0 && on == 1
        }
    })
}

/// The lowest descriptor number not in use.
fn lowest_free_fd() -> io::Result<RawFd> {
    // SAFETY: dup of stdin (or any open fd) returns the lowest free number;
    // it is closed at once.
    unsafe {
        let fd = libc::fcntl(0, libc::F_DUPFD, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::close(fd);
        Ok(fd)
    }
}

fn get_nofile() -> libc::rlimit {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: writes into `lim`.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0, "getrlimit");
    lim
}

fn set_nofile(lim: &libc::rlimit) -> io::Result<()> {
    // SAFETY: reads `lim`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Restores the descriptor limit when dropped, even if the test panics.
struct RestoreLimit(libc::rlimit);

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        let _ = set_nofile(&self.0);
    }
}

#[test]
fn listener_backoff_recovers_when_the_retry_finds_the_queue_empty() {
    let running = spawn_reactor(Config::default(), |r| {
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| Echo).expect("listen").addr
    });
    let addr: SocketAddr = running.value;
    let handle = running.handle.clone();
    let Some(listen_fd) = find_listener_fd(addr.port()) else {
        eprintln!("SKIPPED: could not find the listening socket's descriptor for port {}", addr.port());
        return;
    };
    // Made before the limit is lowered: the first client's socket, and a
    // spare descriptor to free later.
    let first = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let spare = std::fs::File::open("/dev/null").expect("open /dev/null");
    let timers_before = stats_of(&handle).timers_fired;

    // No new descriptor can be allocated: every number below the limit is in use.
    let original = get_nofile();
    let lowest = lowest_free_fd().expect("lowest free fd");
    let restore = RestoreLimit(original);
    if let Err(e) = set_nofile(&libc::rlimit { rlim_cur: lowest as libc::rlim_t, rlim_max: original.rlim_max }) {
        eprintln!("SKIPPED: cannot lower RLIMIT_NOFILE to {lowest}: {e}");
        return;
    }

    // The server's accept fails with EMFILE and it backs off; wait for
    // its first retry (which fails too, and leaves the next one pending).
    first.connect(&addr.into()).expect("connect the first client");
    let s = wait_for_stats(&handle, "the first accept retry", |s| s.timers_fired > timers_before);
    assert_eq!(s.accepted, 0, "nothing can be accepted while descriptors are exhausted");

    // On the loop thread (so no retry runs in between): free the spare
    // slot, take the queued connection away ourselves, and close it, so
    // that the next retry finds the queue empty (WouldBlock, not EMFILE).
    let spare_fd = spare.as_raw_fd();
    let (tx, rx) = mpsc::channel();
    handle.call_from_thread(move |r| {
        drop(spare);
        // SAFETY: accept on the listening socket; the fd returned (if any) is closed at once.
        let fd = unsafe { libc::accept(listen_fd, std::ptr::null_mut(), std::ptr::null_mut()) };
        let taken = if fd >= 0 {
            // SAFETY: `fd` was just returned by accept and is ours.
            unsafe { libc::close(fd) };
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        };
        let _ = tx.send((taken, r.stats().timers_fired));
    });
    let (taken, timers_then) = rx.recv_timeout(WAIT).expect("the loop ran the closure");
    if let Err(e) = taken {
        drop(restore);
        eprintln!("SKIPPED: could not take the queued connection away (fd {spare_fd} freed): {e}");
        running.stop();
        return;
    }
    // The next retry runs and finds the queue empty.
    wait_for_stats(&handle, "the retry after the queue was emptied", |s| s.timers_fired > timers_then);

    // Descriptors are available again: a new client must be served.
    drop(restore);
    drop(first);
    let mut second = TcpStream::connect(addr).expect("connect the second client");
    second.set_read_timeout(Some(WAIT)).expect("read timeout");
    second.write_all(b"hello").expect("write");
    let mut reply = [0u8; 5];
    if let Err(e) = second.read_exact(&mut reply) {
        panic!(
            "the listener is wedged: no echo within {WAIT:?} after descriptors freed up ({e}); stats: {}",
            stats_of(&handle)
        );
    }
    assert_eq!(&reply, b"hello");
    running.stop();
}
