//! Writing a protocol plugin from scratch: `sum`, a line protocol that keeps
//! a running total per connection.
//!
//! ```text
//! client: 5          server: total 5
//! client: 2.5        server: total 7.5
//! client: lots       server: error: "lots" is not a number
//! client: bye        server: bye, the total was 7.5   (and closes)
//! (30 s of silence:  server: idle for 30 s, bye       (and closes))
//! ```
//!
//! The example tests the plugin with the in-memory [`Harness`] (no socket,
//! a manual clock), then serves it on loopback and talks to it with a plain
//! client. Run it with `cargo run --example write_a_plugin`; it then keeps
//! serving on 127.0.0.1:7200 until Ctrl-C, for `nc 127.0.0.1 7200`. With
//! `TWIRL_EXAMPLE_SMOKE=1` it exits after the checks.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::testing::Harness;
use twirl::{Addr, Reactor, TimerHandle};

/// How long a connection may stay silent.
const IDLE: Duration = Duration::from_secs(30);
/// Our timer's tag: a protocol can run several timers and tell them apart.
const IDLE_TAG: u64 = 1;

/// Step 1: the state of one connection. One `Sum` per connection, so no
/// locking: each lives on the reactor's thread and sees only its own bytes.
#[derive(Default)]
struct Sum {
    total: f64,
    idle: Option<TimerHandle>,
}

/// Step 2: the callbacks. `LineReceiver` (twirl's `LineReceiver`, as in
/// Twisted) does the framing: it buffers partial lines and splits reads
/// holding several, so `line_received` always gets one whole line without
/// its `\n` or `\r\n`, however TCP cut the stream (seed 004's pitfall).
impl LineHandler for Sum {
    fn connection_made(&mut self, t: &mut Lines<'_>) {
        t.write(b"send numbers, one per line; 'bye' to finish\n");
        self.idle = Some(t.call_later(IDLE, IDLE_TAG));
    }

    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        // Any line restarts the idle clock.
        if let Some(h) = self.idle {
            t.reschedule_timer(h, IDLE);
        }
        let text = String::from_utf8_lossy(line);
        let word = text.trim();
        if word.eq_ignore_ascii_case("bye") {
            t.write(format!("bye, the total was {}\n", self.total).as_bytes());
            t.lose_connection(); // closes once the reply is sent
            return;
        }
        match word.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                self.total += x;
                t.write(format!("total {}\n", self.total).as_bytes());
            }
            _ => t.write(format!("error: {word:?} is not a number\n").as_bytes()),
        }
    }

    fn timer_fired(&mut self, tag: u64, t: &mut Lines<'_>) {
        if tag == IDLE_TAG {
            t.write(format!("idle for {} s, bye\n", IDLE.as_secs()).as_bytes());
            t.lose_connection();
        }
    }
}

/// Step 3: the factory, what a listener calls for each new connection.
fn sum_protocol(_peer: &Addr) -> LineReceiver<Sum> {
    LineReceiver::new(Sum::default()).max_line_length(100)
}

/// Step 4: test it without a socket. The same code runs in the reactor;
/// here the bytes come from `feed` and the clock moves with `advance`.
/// (In a real crate these would be `#[test]`s; an example runs them in main.)
fn harness_checks() -> Result<(), String> {
    let mut h = Harness::new(sum_protocol(&Addr::Unix(None)));
    h.connect();
    h.take_output(); // the greeting
    h.feed(b"5\n2.");
    h.feed(b"5\r\nlots\n"); // one line across two reads, then two in one
    expect(h.take_text(), "total 5\ntotal 7.5\nerror: \"lots\" is not a number\n")?;
    h.feed(b"bye\n");
    expect(h.take_text(), "bye, the total was 7.5\n")?;
    if !h.is_closed() {
        return Err("'bye' should close the connection".into());
    }

    let mut h = Harness::new(sum_protocol(&Addr::Unix(None)));
    h.connect();
    h.take_output();
    h.advance(IDLE - Duration::from_secs(1));
    h.feed(b"1\n"); // activity pushes the deadline back
    h.advance(IDLE - Duration::from_secs(1));
    if h.is_closed() {
        return Err("closed although the client spoke".into());
    }
    h.advance(Duration::from_secs(1));
    expect(h.take_text(), "total 1\nidle for 30 s, bye\n")?;
    if !h.is_closed() {
        return Err("an idle connection should be closed".into());
    }
    Ok(())
}

fn expect(got: String, want: &str) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("expected {want:?}, got {got:?}")) }
}

fn main() -> io::Result<()> {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    harness_checks().map_err(io::Error::other)?;
    println!("harness checks passed");

    // Step 5: serve it. A closure or fn taking `&Addr` is a factory.
    let mut reactor = Reactor::new()?;
    let port = if smoke { 0 } else { 7200 };
    let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], port)), sum_protocol)?.addr;
    println!("sum listening on {addr}");
    reactor.handle_signals(&[], |_, _| {})?;

    // Step 6: exercise it with a client on another thread.
    let handle = reactor.handle();
    let client = std::thread::spawn(move || {
        let r = talk(addr);
        if smoke {
            handle.stop();
        }
        r
    });
    if smoke {
        reactor.call_later(Duration::from_secs(10), |r| r.stop());
    }
    reactor.run()?;
    client.join().map_err(|_| io::Error::other("client panicked"))?
}

/// Sends a few lines and prints the replies until the server closes.
fn talk(addr: SocketAddr) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"40\n2\nbye\n")?;
    s.shutdown(Shutdown::Write)?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    if !reply.ends_with("total 40\ntotal 42\nbye, the total was 42\n") {
        return Err(io::Error::other(format!("unexpected reply {reply:?}")));
    }
    print!("client: sent 40, 2, bye; the server's replies:\n{reply}");
    Ok(())
}
