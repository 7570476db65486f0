//! `--dashboard`: the reactor, live, in a browser.
//!
//! [`Dashboard`] counts the connections of the listeners it watches (a
//! factory wrapper, [`watch::Watched`]), takes a [`snapshot`] of the
//! reactor's numbers four times a second on a timer of the same reactor,
//! and serves, on a listener of that reactor too, a self-contained page
//! that polls the snapshot (`GET /stats.json`, every 500 ms) and draws it:
//! rates of turns, events and bytes, connections per listener, every open
//! connection's write buffer against its water marks and hard cap, pauses
//! and resumes, timers, the memory budget, refusals and aborts. Scripts
//! read the same JSON.
//!
//! ```no_run
//! use twirl::Reactor;
//! use twirl_protocols::dashboard::Dashboard;
//! let mut reactor = Reactor::new()?;
//! let mut dashboard = Dashboard::new();
//! let echo = dashboard.watch("echo", Box::new(|_: &twirl::Addr| twirl_protocols::plugins::echo::Echo));
//! reactor.listen_stream(&"tcp:7007".parse().unwrap(), echo, twirl::ListenOptions::new("echo"))?;
//! let at = dashboard.start(&mut reactor, &"tcp:8080".parse().unwrap())?;
//! println!("dashboard on {}", twirl_protocols::dashboard::url(&at));
//! reactor.run()
//! # ; Ok::<(), std::io::Error>(())
//! ```

pub mod server;
pub mod snapshot;
pub mod watch;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twirl::bytes::Bytes;
use twirl::endpoint::ServerEndpoint;
use twirl::{Addr, Factory, ListenOptions, Reactor};

use server::{DashboardConn, Latest};
use watch::{SharedTally, Tally, Watched};

/// How often the snapshot is taken.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Every reactor's stats, given this one's (`twirl serve --threads N`:
/// thread 0's dashboard shows each thread and the total).
pub type PerThread = Rc<snapshot::AllStats>;

/// The listeners watched, until [`Dashboard::start`] serves them.
#[derive(Default)]
pub struct Dashboard {
    tallies: Vec<SharedTally>,
    threads: Option<PerThread>,
}

impl Dashboard {
    /// A dashboard watching nothing yet.
    pub fn new() -> Dashboard {
        Dashboard::default()
    }

    /// Wraps the factory of listener `name` so that the dashboard counts
    /// its connections; the listener's endpoint is filled in by
    /// [`bound`](Self::bound) once known.
    pub fn watch(&mut self, name: &str, factory: Box<dyn Factory>) -> Box<dyn Factory> {
        let tally = Rc::new(RefCell::new(Tally { name: name.to_string(), ..Tally::default() }));
        self.tallies.push(tally.clone());
        Box::new(Watched::new(factory, tally))
    }

    /// Shows the stats of several reactors serving together: `all` gives
    /// every reactor's (this one's first) from this one's. The JSON then
    /// has their total as `stats` and each as `threads[i]`.
    pub fn per_thread(&mut self, all: impl Fn(&twirl::Stats) -> Vec<twirl::Stats> + 'static) {
        self.threads = Some(Rc::new(all));
    }

    /// Records where the listener watched last was bound.
    pub fn bound(&mut self, endpoint: &ServerEndpoint) {
        if let Some(t) = self.tallies.last() {
            t.borrow_mut().endpoint = endpoint.to_string();
        }
    }

    /// Serves the dashboard on `endpoint` (a listener of `reactor`, itself
    /// watched) and starts sampling; returns the endpoint as bound.
    pub fn start(mut self, reactor: &mut Reactor, endpoint: &ServerEndpoint) -> io::Result<ServerEndpoint> {
        let latest: Latest = Rc::new(RefCell::new(Bytes::new()));
        let serving = latest.clone();
        let factory = self.watch("dashboard", Box::new(move |_: &Addr| DashboardConn::new(serving.clone())));
        let opts = ListenOptions {
            limits: reactor.config().limits,
            idle_timeout: Some(Duration::from_secs(60)),
            max_connections: Some(64),
            ..ListenOptions::new("dashboard")
        };
        let bound = reactor.listen_stream(endpoint, factory, opts)?.addr;
        self.bound(&bound);
        let started = Instant::now();
        let (tallies, threads) = (self.tallies, self.threads);
        let sample = move |r: &mut Reactor| {
            let doc = snapshot::take(r, &tallies, started, threads.as_deref());
            *latest.borrow_mut() = Bytes::from(doc.to_string());
        };
        let first = sample.clone();
        reactor.call_every(SAMPLE_EVERY, sample);
        first(reactor);
        Ok(bound)
    }
}

/// The URL a browser opens for a dashboard bound at `at`:
/// `http://127.0.0.1:8080/` (`unix:PATH` as it is).
pub fn url(at: &ServerEndpoint) -> String {
    match at {
        ServerEndpoint::Tcp(a) => format!("http://{a}/"),
        other => other.to_string(),
    }
}
