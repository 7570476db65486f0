//! `twirl deadlock --dashboard ENDPOINT`: the four runs drawn live in a
//! browser. A reactor on a thread of its own serves the page (`/`) and the
//! runs so far (`/stats.json`, the [`Feed`] as JSON, refreshed every
//! 100 ms); the page polls it every 250 ms. Run 2's buffer rising to
//! millions of bytes and draining back is the picture the lesson is about.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use twirl::bytes::Bytes;
use twirl::endpoint::ServerEndpoint;
use twirl::{Addr, ListenOptions, Reactor, ReactorHandle};
use twirl_protocols::dashboard::server::{DashboardConn, Latest};

use crate::live::Feed;

/// The page: HTML, CSS and script, nothing fetched from elsewhere.
pub const PAGE: &str = include_str!("dashboard.html");

/// How often the JSON copy of the feed is refreshed.
const REFRESH: Duration = Duration::from_millis(100);

/// A dashboard being served.
pub struct Served {
    /// Where it listens, as bound.
    pub endpoint: ServerEndpoint,
    /// Stops its reactor.
    pub handle: ReactorHandle,
    /// Its thread: ends when the reactor stops (also on SIGINT or SIGTERM).
    pub thread: JoinHandle<io::Result<()>>,
}

/// Serves the lab's dashboard for `feed` on `endpoint`, on a thread.
pub fn serve(endpoint: &ServerEndpoint, feed: Feed) -> io::Result<Served> {
    let (tx, rx) = mpsc::channel();
    let endpoint = endpoint.clone();
    let thread = thread::spawn(move || -> io::Result<()> {
        let setup = || -> io::Result<(Reactor, ServerEndpoint)> {
            let mut reactor = Reactor::new()?;
            let latest: Latest = Rc::new(RefCell::new(Bytes::from(feed.to_json())));
            let serving = latest.clone();
            let opts = ListenOptions {
                idle_timeout: Some(Duration::from_secs(60)),
                max_connections: Some(64),
                ..ListenOptions::new("dashboard")
            };
            let bound = reactor
                .listen_stream(
                    &endpoint,
                    Box::new(move |_: &Addr| DashboardConn::with_page(PAGE, serving.clone())),
                    opts,
                )?
                .addr;
            reactor.call_every(REFRESH, move |_| *latest.borrow_mut() = Bytes::from(feed.to_json()));
            // Ctrl-C (or SIGTERM, SIGHUP) stops it gracefully; runs under
            // way finish, and the command then exits.
            reactor.handle_signals(&[], |_, _| {})?;
            Ok((reactor, bound))
        };
        let mut reactor = match setup() {
            Ok((reactor, bound)) => {
                let _ = tx.send(Ok((bound, reactor.handle())));
                reactor
            }
            Err(e) => {
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        reactor.run()
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok((endpoint, handle))) => Ok(Served { endpoint, handle, thread }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the dashboard did not start")),
    }
}
