//! `twirl serve portforward@... to=...` end to end, over real loopback
//! sockets: it relays, passes a half-close through, holds a fast sender
//! to a slow reader in a few MiB, and closes a client whose target refuses.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::{Server, WAIT, rss, twirl};

/// A forwarder from `tcp:0` to `to`, as its own process.
fn forwarder(to: &str) -> Server {
    Server::start(twirl(&["serve", "portforward@tcp:0", &format!("to={to}")]), 1)
}

#[test]
fn relays_an_echo_server() {
    let echo = Server::start(twirl(&["serve", "echo@tcp:0"]), 1);
    let fwd = forwarder(echo.endpoint(0));
    let mut s = TcpStream::connect(fwd.addr(0)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    // Sent at once, before the forwarder can have reached the target.
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("the echo comes back through");
    assert!(back == msg, "byte for byte");
    s.write_all(b"again").unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"again");
}

#[test]
fn a_half_close_reaches_the_target_and_its_full_reply_comes_back_then_eof() {
    // reverse answers a partial line when its client half-closes (and,
    // with flush_ms=0, only then): the reply proves the FIN went through.
    let reverse = Server::start(twirl(&["serve", "reverse@tcp:0", "flush_ms=0"]), 1);
    let fwd = forwarder(reverse.endpoint(0));
    let mut s = TcpStream::connect(fwd.addr(0)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut msg = b"first line\n".repeat(10_000);
    msg.extend_from_slice(b"hello big world");
    s.write_all(&msg).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("reply, then EOF");
    let mut want = b"line first\n".repeat(10_000);
    want.extend_from_slice(b"world big hello\n");
    assert_eq!(out.len(), want.len());
    assert!(out == want, "the whole reply, then EOF");
}

#[test]
fn a_slow_reader_keeps_the_forwarder_small() {
    let echo = Server::start(twirl(&["serve", "echo@tcp:0"]), 1);
    let fwd = forwarder(echo.endpoint(0));
    // Warm up: one connection through, so the baseline has its buffers.
    let mut warm = TcpStream::connect(fwd.addr(0)).expect("connect");
    warm.set_read_timeout(Some(WAIT)).unwrap();
    warm.write_all(&[1u8; 65536]).unwrap();
    let mut b = vec![0u8; 65536];
    warm.read_exact(&mut b).unwrap();
    drop(warm);
    std::thread::sleep(Duration::from_millis(100));
    let before = rss(fwd.pid());
    assert!(before > 0, "read the forwarder's RSS");

    const TOTAL: usize = 64 << 20;
    let s = TcpStream::connect(fwd.addr(0)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'x'; 256 * 1024];
        for _ in 0..TOTAL / chunk.len() {
            writer.write_all(&chunk).expect("send (a stalled relay times out)");
        }
    });
    // Read slowly: 64 KiB per 2 ms, about 32 MB/s; watch the forwarder.
    let (mut reader, mut got, mut peak) = (s, 0usize, before);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 64 * 1024];
    while got < TOTAL {
        assert!(Instant::now() < deadline, "64 MiB took over a minute ({got} bytes)");
        let n = reader.read(&mut buf).expect("read");
        assert!(n > 0, "EOF after {got} bytes");
        assert!(buf[..n].iter().all(|&c| c == b'x'));
        got += n;
        if got % (1 << 20) < n {
            peak = peak.max(rss(fwd.pid()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sender.join().expect("sender");
    let grew = peak.saturating_sub(before);
    assert!(grew < 4 << 20, "the forwarder grew by {} KiB relaying 64 MiB to a slow reader", grew >> 10);
}

#[test]
fn a_refusing_target_closes_the_client_promptly_with_a_log_line() {
    // Bound but not listening, and held for the whole test: a connect to it
    // is refused, and no other test can take the port meanwhile.
    let closed = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    closed.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let port = closed.local_addr().unwrap().as_socket().expect("an inet address").port();
    let mut cmd = twirl(&["serve", "portforward@tcp:0", &format!("to=tcp:127.0.0.1:{port}")]);
    cmd.stderr(Stdio::piped());
    let mut fwd = Server::start(cmd, 1);
    let t0 = Instant::now();
    let mut s = TcpStream::connect(fwd.addr(0)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(b"anyone there?");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out); // EOF or a reset: either way, closed
    let took = t0.elapsed();
    assert!(out.is_empty(), "nothing came back: {out:?}");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");

    fwd.signal(libc::SIGTERM);
    assert_eq!(fwd.wait_exit().code(), Some(0));
    let mut err = String::new();
    fwd.child.stderr.take().expect("stderr").read_to_string(&mut err).unwrap();
    assert!(err.contains(&format!("portforward: cannot connect to tcp:127.0.0.1:{port}")), "{err}");
}
