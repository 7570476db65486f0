//! A chat client for the `chat` plugin (seed 003's netcat chat): type lines,
//! see everyone else's. The connection is made by a `Reconnecting` factory,
//! so if the server restarts, the client comes back by itself.
//!
//! ```text
//! twirl serve chat                          # in one terminal (tcp:7107)
//! cargo run --example chat_client           # in two others; type away
//! cargo run --example chat_client -- 127.0.0.1:7107
//! ```
//!
//! Reading the keyboard blocks, so a thread does it and hands each line to
//! the reactor with `call_from_thread`; the reactor's thread never blocks.
//!
//! With `TWIRL_EXAMPLE_SMOKE=1` it serves the chat plugin itself, connects
//! two scripted members, alice and bob, checks that bob hears alice, and exits.

use std::cell::RefCell;
use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::{
    Addr, Backoff, ClientFactory, ConnId, Context, Disconnect, ListenOptions, Protocol, Reactor, Reconnecting,
};

/// The connection currently open, for the keyboard thread to write to.
type Current = Arc<Mutex<Option<ConnId>>>;

const SAY_TAG: u64 = 1;

/// One member: prints what it hears; says its scripted lines, if any.
struct Member {
    name: &'static str,
    script: Vec<String>,
    heard: Rc<RefCell<Vec<String>>>,
    current: Current,
}

impl LineHandler for Member {
    fn connection_made(&mut self, t: &mut Lines<'_>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.id());
        if !self.script.is_empty() {
            t.call_later(Duration::from_millis(200), SAY_TAG); // let the others join first
        }
    }

    fn line_received(&mut self, line: &[u8], _: &mut Lines<'_>) {
        let line = String::from_utf8_lossy(line).into_owned();
        println!("{}| {line}", self.name);
        self.heard.borrow_mut().push(line);
    }

    fn timer_fired(&mut self, tag: u64, t: &mut Lines<'_>) {
        if tag == SAY_TAG {
            for line in self.script.drain(..) {
                t.write(format!("{line}\n").as_bytes());
            }
        }
    }

    fn connection_lost(&mut self, reason: &Disconnect, _: &mut dyn Context) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        println!("{}| (disconnected: {reason})", self.name);
    }
}

/// Builds a fresh [`Member`] for each (re)connection.
struct MemberFactory {
    name: &'static str,
    script: Vec<String>,
    heard: Rc<RefCell<Vec<String>>>,
    current: Current,
}

impl ClientFactory for MemberFactory {
    fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
        Box::new(LineReceiver::new(Member {
            name: self.name,
            script: self.script.clone(),
            heard: self.heard.clone(),
            current: self.current.clone(),
        }))
    }
}

/// What a member's caller keeps: what it heard, and its open connection.
struct Joined {
    heard: Rc<RefCell<Vec<String>>>,
    current: Current,
}

/// Connects a member through `Reconnecting`: lost or refused connections
/// are retried after 0.2 s, 0.4 s, 0.8 s... up to 5 s apart.
fn join(reactor: &mut Reactor, server: SocketAddr, name: &'static str, script: &[&str]) -> io::Result<Joined> {
    let (heard, current) = (Rc::default(), Current::default());
    let factory = MemberFactory {
        name,
        script: script.iter().map(|s| s.to_string()).collect(),
        heard: Rc::clone(&heard),
        current: current.clone(),
    };
    let backoff = Backoff::new(Duration::from_millis(200)).max_delay(Duration::from_secs(5));
    reactor.connect_tcp(server, Reconnecting::new(factory, backoff))?;
    Ok(Joined { heard, current })
}

fn main() -> io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some() {
        return smoke();
    }
    let server: SocketAddr = match std::env::args().nth(1) {
        Some(a) => {
            a.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "usage: chat_client [HOST:PORT]"))?
        }
        None => SocketAddr::from(([127, 0, 0, 1], 7107)),
    };
    let mut reactor = Reactor::new()?;
    let me = join(&mut reactor, server, "chat", &[])?;
    reactor.handle_signals(&[], |_, _| {})?;

    // The keyboard thread: each line goes to the reactor's thread, which
    // writes it to the connection open at that moment (if any).
    let handle = reactor.handle();
    let current = me.current.clone();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(mut line) = line else { break };
            line.push('\n');
            let current = current.clone();
            handle.call_from_thread(move |r| {
                let open = *current.lock().unwrap_or_else(|e| e.into_inner());
                match open {
                    Some(id) => {
                        r.with_transport(id, |t| t.write(line.as_bytes()));
                    }
                    None => eprintln!("(not connected; line dropped)"),
                }
            });
        }
        handle.stop(); // end of input: leave
    });
    println!("chatting via {server}; type lines, Ctrl-D or Ctrl-C to leave");
    reactor.run()
}

/// The self-check: the chat plugin and two scripted members on one reactor.
fn smoke() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    // Serve the registry's `chat` plugin, as `twirl serve chat` would.
    let plugin = twirl_protocols::registry::find("chat").ok_or_else(|| io::Error::other("no chat plugin"))?;
    let make = plugin.stream.ok_or_else(|| io::Error::other("chat speaks no stream"))?;
    let opts = ListenOptions::new("chat");
    let endpoint = twirl::endpoint::ServerEndpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)));
    let bound = reactor.listen_stream(&endpoint, make(&twirl_protocols::options::Options::none()), opts)?.addr;
    let twirl::endpoint::ServerEndpoint::Tcp(server) = bound else {
        return Err(io::Error::other("bound to a non-tcp endpoint"));
    };
    println!("chat listening on {server}");

    let _alice = join(&mut reactor, server, "alice", &["hello bob", "how are you?"])?;
    let bob = join(&mut reactor, server, "bob", &[])?;
    reactor.call_later(Duration::from_millis(600), |r| r.stop());
    reactor.call_later(Duration::from_secs(10), |r| r.stop()); // bounded, whatever happens
    reactor.run()?;

    let heard = bob.heard.borrow();
    let got_it =
        heard.iter().any(|l| l.ends_with("] hello bob")) && heard.iter().any(|l| l.ends_with("] how are you?"));
    if !got_it {
        return Err(io::Error::other(format!("self-check failed: bob heard {heard:?}")));
    }
    println!("self-check passed: bob heard alice");
    Ok(())
}
