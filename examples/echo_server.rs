//! The smallest complete twirl server: echo (RFC 862).
//!
//! ```text
//! cargo run --example echo_server            # 127.0.0.1:7007 until Ctrl-C
//! cargo run --example echo_server -- 9000    # another port
//! nc 127.0.0.1 7007                          # in another terminal: type, see it back
//! ```
//!
//! With `TWIRL_EXAMPLE_SMOKE=1` it listens on a free port, talks to itself
//! once from a thread, checks the echo, and exits: the test suite runs it so.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use twirl::{Addr, Protocol, Reactor, Transport};

/// Lesson 1: a protocol is a struct and the callbacks it cares about. Echo
/// needs one. `data` is whatever one read returned: a piece of the stream,
/// not a message, which is fine here since every byte goes straight back.
/// `write` never blocks: what the socket cannot take now, twirl keeps and
/// sends when the socket is writable again.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
}

fn main() -> io::Result<()> {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "usage: echo_server [PORT]"))?,
        None if smoke => 0, // let the kernel choose a free port
        None => 7007,
    };

    // Lesson 2: the reactor owns every socket. A listener needs an address
    // and a factory: anything that builds a protocol per connection, here a
    // closure (it could look at the peer's address).
    let mut reactor = Reactor::new()?;
    let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], port)), |_peer: &Addr| Echo)?.addr;
    println!("echo listening on {addr}; Ctrl-C stops");

    // Lesson 3: Ctrl-C (SIGINT) and SIGTERM stop the loop gracefully: the
    // listener closes, open connections get a moment to flush, `run` returns.
    reactor.handle_signals(&[], |_, _| {})?;

    // The self-check: a plain blocking client on another thread, which
    // stops the reactor when done (a `ReactorHandle` works from any thread).
    let check = smoke.then(|| {
        let handle = reactor.handle();
        std::thread::spawn(move || {
            let r = talk(addr);
            handle.stop();
            r
        })
    });
    if smoke {
        // Bounded, whatever happens.
        reactor.call_later(Duration::from_secs(10), |r| r.stop());
    }

    reactor.run()?; // the loop: returns once stopped
    println!("stopped after {} connection(s)", reactor.stats().accepted);
    if let Some(check) = check {
        let reply = check.join().map_err(|_| io::Error::other("client thread panicked"))??;
        println!("self-check passed: {reply:?} came back");
    }
    Ok(())
}

/// Sends a line, half-closes, reads until the server closes.
fn talk(addr: SocketAddr) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"hello, echo\n")?;
    s.shutdown(Shutdown::Write)?; // the default read_eof closes after flushing
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    if reply != "hello, echo\n" {
        return Err(io::Error::other(format!("unexpected echo {reply:?}")));
    }
    Ok(reply)
}
