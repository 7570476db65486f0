//! UDP request/reply done carefully (seed 002's `udp_remote.py` and its
//! "promiscuous client"): timeouts, exponential back-off, request ids.
//!
//! UDP loses datagrams and never says so, so a client must time out and
//! resend; backing off (waiting twice as long each time) keeps a loaded
//! server from drowning in retries. And a UDP socket accepts a datagram from
//! anyone: the handout's client takes the first one it gets, so anybody who
//! guesses its port can answer for the server. Ours checks that the reply
//! carries the id of its request and comes from the server's address.
//!
//! In one process and one reactor: a lossy server that drops the first two
//! requests, a spoofer that answers first, and the client.
//!
//! ```text
//! cargo run --example udp_backoff
//! ```
//!
//! It ends by itself; with `TWIRL_EXAMPLE_SMOKE=1` it also checks the story.

use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use twirl::{Backoff, DatagramProtocol, DatagramTransport, Reactor, TimerHandle};

const LOSSES: u32 = 2;

/// The server: answers `ID text` with `ID TEXT`, but loses the first
/// [`LOSSES`] requests, as a bad network would.
struct LossyServer {
    seen: u32,
}

impl DatagramProtocol for LossyServer {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        self.seen += 1;
        let text = String::from_utf8_lossy(data);
        if self.seen <= LOSSES {
            say(&format!("server:  lost request {text:?} (simulated loss {} of {LOSSES})", self.seen));
            return;
        }
        let (id, body) = text.split_once(' ').unwrap_or((&text, ""));
        say(&format!("server:  answering request {id}"));
        t.send_to(format!("{id} {}", body.to_uppercase()).as_bytes(), from);
    }
}

/// What happened, for the summary and the self-check.
#[derive(Default, Debug)]
struct Story {
    tries: u32,
    ignored: u32,
    reply: Option<String>,
}

/// The client: one request, resent with back-off until the right reply.
struct Client {
    server: SocketAddr,
    /// A fresh unpredictable id per request: a spoofer cannot guess it.
    id: u64,
    backoff: Backoff,
    timer: Option<TimerHandle>,
    story: Rc<RefCell<Story>>,
    /// Shared with the spoofer, who "sniffed" it off the wire.
    leaked_id: Rc<Cell<u64>>,
}

impl Client {
    fn send(&mut self, t: &mut dyn DatagramTransport) {
        self.story.borrow_mut().tries += 1;
        t.send_to(format!("{} hello server", self.id).as_bytes(), self.server);
        // The delay doubles with each try (100, 200, 400 ms...), with jitter.
        match self.backoff.next_delay() {
            Some(wait) => {
                say(&format!(
                    "client:  sent request {} (try {}), waiting {wait:.2?}",
                    self.id,
                    self.story.borrow().tries
                ));
                self.timer = Some(t.call_later(wait, 0));
            }
            None => {
                say("client:  no reply after the last try; giving up");
                t.stop_reactor();
            }
        }
    }
}

impl DatagramProtocol for Client {
    fn started(&mut self, t: &mut dyn DatagramTransport) {
        self.leaked_id.set(self.id);
        self.send(t);
    }

    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        let text = String::from_utf8_lossy(data);
        let (id, body) = text.split_once(' ').unwrap_or((&text, ""));
        // Check 1: the id. A stale or forged reply carries another one.
        if id.parse() != Ok(self.id) {
            self.story.borrow_mut().ignored += 1;
            return say(&format!("client:  ignored {text:?} from {from}: not the id of our request"));
        }
        // Check 2: the sender. Anyone can send to our port.
        if from != self.server {
            self.story.borrow_mut().ignored += 1;
            return say(&format!("client:  ignored {text:?} from {from}: right id, but not from the server"));
        }
        say(&format!("client:  got the reply {body:?} after {} tries", self.story.borrow().tries));
        if let Some(h) = self.timer.take() {
            t.cancel_timer(h);
        }
        self.story.borrow_mut().reply = Some(body.to_string());
        t.stop_reactor();
    }

    fn timer_fired(&mut self, _: u64, t: &mut dyn DatagramTransport) {
        say("client:  timed out; resending the same request (same id)");
        self.send(t);
    }
}

thread_local! {
    static START: Instant = Instant::now();
}

/// Prints a line stamped with the time since the start.
fn say(line: &str) {
    let t = START.with(|s| s.elapsed());
    println!("{:>6.3}s  {line}", t.as_secs_f64());
}

fn main() -> io::Result<()> {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    say("start");
    let mut reactor = Reactor::new()?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = reactor.listen_udp(loopback, LossyServer { seen: 0 })?.addr;

    // An unconnected socket, like the handout's: it hears from anybody.
    let story = Rc::new(RefCell::new(Story::default()));
    let leaked_id = Rc::new(Cell::new(0));
    let client = Client {
        server,
        id: std::collections::hash_map::RandomState::new().build_hasher().finish() % 1_000_000,
        backoff: Backoff::new(Duration::from_millis(100)).factor(2.0).jitter(0.1).max_retries(5),
        timer: None,
        story: story.clone(),
        leaked_id: leaked_id.clone(),
    };
    // A client socket that hears from anyone (so the spoofs arrive): not a service.
    let client_addr = reactor.open_udp(loopback, client)?.addr;

    // The spoofer: a plain socket elsewhere, answering before the server
    // does, once with a guessed id, once with the real one it sniffed.
    let spoofer = UdpSocket::bind(loopback)?;
    reactor.call_later(Duration::from_millis(30), move |_| {
        say(&format!("spoofer: sending two fake replies from {}", spoofer.local_addr().map_or(loopback, |a| a)));
        let _ = spoofer.send_to(b"4242 I AM THE SERVER", client_addr);
        let _ = spoofer.send_to(format!("{} I AM THE SERVER", leaked_id.get()).as_bytes(), client_addr);
    });
    reactor.call_later(Duration::from_secs(10), |r| r.stop()); // bounded, whatever happens
    reactor.run()?;

    let story = story.borrow();
    say(&format!("done: {} tries, {} fake replies ignored, reply {:?}", story.tries, story.ignored, story.reply));
    if smoke && (story.reply.as_deref() != Some("HELLO SERVER") || story.tries != LOSSES + 1 || story.ignored != 2) {
        return Err(io::Error::other(format!("self-check failed: {story:?}")));
    }
    Ok(())
}
