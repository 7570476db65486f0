//! A client that survives its server going away: `twirl::Reconnecting`
//! wraps a client factory and, when a connection fails or is lost, tries
//! again after a back-off delay (Twisted's `ReconnectingClientFactory`).
//!
//! The story, in one process: an echo server starts; the client connects and
//! says hello; the server is stopped, and the client retries (refused,
//! refused..., each wait about twice the last); the server comes back on the
//! same port, the client's next try connects, says hello again, and ends.
//!
//! ```text
//! cargo run --example reconnecting_client
//! ```
//!
//! It ends by itself; with `TWIRL_EXAMPLE_SMOKE=1` it also checks the story.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use twirl::{
    Addr, Backoff, ClientFactory, Context, Disconnect, Protocol, Reactor, ReactorHandle, Reconnecting, StopTrying,
    Transport,
};
use twirl_protocols::plugins::echo::Echo;

/// What the client saw, for the summary.
#[derive(Default)]
struct Counts {
    connected: Cell<u32>,
    failed: Cell<u32>,
    replies: Cell<u32>,
}

/// One connection's protocol: say hello, print the echo.
struct Hello {
    n: u32,
    counts: Rc<Counts>,
    stopper: StopTrying,
}

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        say(&format!("client: connected (connection #{}); saying hello", self.n));
        t.write(format!("hello from connection #{}\n", self.n).as_bytes());
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        say(&format!("client: the server says {:?}", String::from_utf8_lossy(data).trim_end()));
        self.counts.replies.set(self.counts.replies.get() + 1);
        if self.n == 2 {
            // The story is told: no more reconnects, close, and stop.
            self.stopper.stop();
            t.lose_connection();
            t.stop_reactor();
        }
    }

    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        say(&format!("client: connection #{} lost ({reason})", self.n));
    }
}

/// The inner factory: builds a protocol per connection and hears about failures.
/// `Reconnecting` decides when to try again; the inner one only watches.
struct HelloFactory {
    counts: Rc<Counts>,
    stopper: StopTrying,
}

impl ClientFactory for HelloFactory {
    fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
        let n = self.counts.connected.get() + 1;
        self.counts.connected.set(n);
        Box::new(Hello { n, counts: self.counts.clone(), stopper: self.stopper.clone() })
    }

    fn connection_failed(&mut self, error: &io::Error, _: &mut dyn Context) -> Option<Duration> {
        self.counts.failed.set(self.counts.failed.get() + 1);
        say(&format!("client: connect failed: {error}"));
        None // ignored: Reconnecting answers with its back-off delay
    }
}

/// An echo server on its own thread and reactor: stopping it closes the
/// listener and its connections, as if the process had gone away.
fn start_server(addr: SocketAddr) -> io::Result<(SocketAddr, ReactorHandle, JoinHandle<io::Result<()>>)> {
    let (tx, rx) = mpsc::channel();
    let join = std::thread::spawn(move || -> io::Result<()> {
        let mut reactor = Reactor::new()?;
        let bound = reactor.listen_tcp(addr, |_: &Addr| Echo).map(|port| port.addr);
        let ok = bound.is_ok();
        let _ = tx.send(bound.map(|a| (a, reactor.handle())));
        if ok {
            reactor.run()?;
        }
        Ok(())
    });
    let (bound, handle) = rx.recv().map_err(|_| io::Error::other("server thread died"))??;
    say(&format!("server: listening on {bound}"));
    Ok((bound, handle, join))
}

thread_local! {
    static START: Instant = Instant::now();
}

fn say(line: &str) {
    println!("{:>6.3}s  {line}", START.with(|s| s.elapsed()).as_secs_f64());
}

fn main() -> io::Result<()> {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (addr, first, first_join) = start_server(SocketAddr::from(([127, 0, 0, 1], 0)))?;

    // The client: back-off from 100 ms, doubling, at most 2 s, 10 retries.
    let counts = Rc::new(Counts::default());
    let backoff = Backoff::new(Duration::from_millis(100)).max_delay(Duration::from_secs(2)).max_retries(10);
    let hello = HelloFactory { counts: counts.clone(), stopper: StopTrying::default() };
    let mut factory = Reconnecting::new(hello, backoff);
    // The protocol gets the wrapper's stopper, to say "no more reconnects".
    factory.inner.stopper = factory.stopper();
    let mut reactor = Reactor::new()?;
    reactor.connect_tcp(addr, factory)?;

    // The server goes away after 300 ms (not waited for here: its graceful
    // stop waits for this client to answer its close)...
    reactor.call_later(Duration::from_millis(300), move |_| {
        say("server: stopping");
        first.stop();
    });
    // ...and comes back on the same port at 1 s (SO_REUSEADDR makes that work).
    let second = Rc::new(Cell::new(None));
    let s = second.clone();
    reactor.call_later(Duration::from_millis(1000), move |_| match start_server(addr) {
        Ok(server) => s.set(Some(server)),
        Err(e) => say(&format!("server: could not restart: {e}")),
    });
    reactor.call_later(Duration::from_secs(10), |r| r.stop()); // bounded
    reactor.run()?;
    let _ = first_join.join();

    if let Some((_, handle, join)) = second.take() {
        handle.stop();
        let _ = join.join();
    }
    say(&format!(
        "done: {} connections, {} failed attempts, {} replies",
        counts.connected.get(),
        counts.failed.get(),
        counts.replies.get()
    ));
    if smoke && (counts.connected.get() != 2 || counts.failed.get() == 0 || counts.replies.get() != 2) {
        return Err(io::Error::other("self-check failed"));
    }
    Ok(())
}
