//! Timers, the reactor's other source of events (Twisted's `callLater` and
//! `LoopingCall`). Two flavours:
//!
//! - reactor-level: closures, `reactor.call_later(delay, |r| ...)` and
//!   `reactor.call_every(interval, |r| ...)`, cancelled with `cancel_timer`;
//! - protocol-level: a protocol calls `t.call_later(delay, TAG)` or
//!   `t.call_every(interval, TAG)` and gets `timer_fired(TAG)` back. Such
//!   timers belong to the connection and die with it.
//!
//! No timer ever runs while another callback does: the loop fires them
//! between I/O events, on the one thread, so they need no locks.
//!
//! ```text
//! cargo run --example timers
//! ```
//!
//! It ends by itself in about a second; `TWIRL_EXAMPLE_SMOKE=1` adds checks.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use twirl::{Addr, Protocol, Reactor, TimerHandle, Transport};

/// Tags tell a protocol's timers apart.
const TICK: u64 = 1;
const BYE: u64 = 2;

/// Sends `tick N` every 100 ms; after 450 ms stops ticking and says bye.
struct Ticker {
    ticks: u32,
    ticker: Option<TimerHandle>,
}

impl Protocol for Ticker {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.ticker = Some(t.call_every(Duration::from_millis(100), TICK));
        t.call_later(Duration::from_millis(450), BYE);
    }

    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}

    fn timer_fired(&mut self, tag: u64, t: &mut dyn Transport) {
        match tag {
            TICK => {
                self.ticks += 1;
                t.write(format!("tick {}\n", self.ticks).as_bytes());
            }
            BYE => {
                if let Some(h) = self.ticker.take() {
                    t.cancel_timer(h); // a repeating timer runs until cancelled
                }
                t.write(b"bye\n");
                t.lose_connection(); // its remaining timers would die with it anyway
            }
            _ => {}
        }
    }
}

static START: OnceLock<Instant> = OnceLock::new();

/// Prints a line stamped with the time since the start (from any thread).
fn say(line: &str) {
    println!("{:>6.3}s  {line}", START.get_or_init(Instant::now).elapsed().as_secs_f64());
}

fn main() -> io::Result<()> {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    let mut reactor = Reactor::new()?;
    say("start");

    // 1. A one-shot closure; it gets the reactor, so it can schedule more.
    reactor.call_later(Duration::from_millis(50), |r| {
        say("call_later: 50 ms have passed; scheduling another in 25 ms");
        r.call_later(Duration::from_millis(25), |_| say("call_later: ...and that one fired too"));
    });

    // 2. A timer cancelled before it fires: it never runs.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let doomed = reactor.call_later(Duration::from_millis(60), move |_| f.set(true));
    let cancelled = reactor.cancel_timer(doomed);
    say(&format!("cancel_timer: a 60 ms timer cancelled at once (cancel returned {cancelled})"));

    // 3. A repeating closure that cancels itself after five runs. Its own
    //    handle is only known after scheduling, so it sits in a cell.
    let runs = Rc::new(Cell::new(0u32));
    let me: Rc<Cell<Option<TimerHandle>>> = Rc::default();
    let (n, h) = (runs.clone(), me.clone());
    let every = reactor.call_every(Duration::from_millis(40), move |r| {
        n.set(n.get() + 1);
        say(&format!("call_every: run {} of 5", n.get()));
        if n.get() == 5
            && let Some(h) = h.get()
        {
            r.cancel_timer(h);
        }
    });
    me.set(Some(every));

    // 4. Protocol-level timers: a ticking server and a client that prints.
    let addr =
        reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), |_: &Addr| Ticker { ticks: 0, ticker: None })?.addr;
    let handle = reactor.handle();
    let client = std::thread::spawn(move || -> io::Result<Vec<String>> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut lines = Vec::new();
        for line in BufReader::new(s).lines() {
            let line = line?;
            say(&format!("client heard: {line}"));
            lines.push(line);
        }
        handle.call_from_thread(|r| r.stop()); // the server said bye: stop the loop
        Ok(lines)
    });
    reactor.call_later(Duration::from_secs(10), |r| r.stop()); // bounded, whatever happens
    reactor.run()?;

    let heard = client.join().map_err(|_| io::Error::other("client panicked"))??;
    say(&format!("done: the cancelled timer fired: {}; call_every ran {} times", fired.get(), runs.get()));
    if smoke {
        let want = ["tick 1", "tick 2", "tick 3", "tick 4", "bye"];
        if fired.get() || !cancelled || runs.get() != 5 || heard != want {
            return Err(io::Error::other(format!("self-check failed: heard {heard:?}")));
        }
    }
    Ok(())
}
