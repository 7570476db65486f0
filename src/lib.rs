//! # twirl
//!
//! A Twisted-style event-loop reactor for Rust, hand-rolled on `mio`.
//!
//! A protocol implements a few callbacks ([`Protocol`], [`DatagramProtocol`],
//! or a framing helper such as [`line::LineHandler`]) and never touches a
//! socket. The [`Reactor`] owns the sockets, reads and writes without
//! blocking, buffers what the kernel will not take yet, applies flow control,
//! and runs timers, all on one thread.
//!
//! ```
//! use twirl::line::{LineHandler, LineReceiver, Lines};
//! use twirl::{Addr, Reactor};
//!
//! /// Answers every line with its words reversed.
//! struct Reverse;
//!
//! impl LineHandler for Reverse {
//!     fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
//!         let text = String::from_utf8_lossy(line);
//!         let words: Vec<&str> = text.split_whitespace().rev().collect();
//!         t.write(format!("{}\n", words.join(" ")).as_bytes());
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Addr| LineReceiver::new(Reverse))?.addr;
//! println!("serving on {addr}");
//! // reactor.run()?;  // serve until stopped
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Layers
//!
//! Dependencies point one way, downwards; no module imports one above it
//! (the one pair that knows each other is [`Reactor`] and its
//! [`ReactorHandle`], since a call from another thread takes `&mut Reactor`).
//! [`Protocol`] and [`DatagramProtocol`] are defined in [`transport`],
//! beside the [`Transport`] their callbacks get, because a context can open
//! a connection or a socket for a new protocol ([`Context::connect`],
//! [`Context::connect_udp`]).
//!
//! ```text
//!  line  prefixed  netstring  producer  backoff  testing   helpers for plugins, their tests
//!     \       |       /                  |
//!      \      |      /  group; reactor <-> handle; opener, resolver   the public Reactor; other threads
//!       \     |     /      |      \       |
//!        \    |    /    dispatch   \      |          one turn: events and timers to sources
//!         \   |   /        |        \     |
//!          \  |  /   source: conn (its machine), listener, connector, udp, fd, socket
//!           \ | /          |          \
//!            \|/        policy       outcome  tls   caps and limits; waiting for a result; TLS
//!             |            |
//!             |          core                       slab and tokens, timers, stats, the context
//!             |            |
//!  protocol  transport  flow  timer  stats  guard  addr  endpoint    the vocabulary
//! ```
//!
//! Every line points down: a module uses only what is below it.
//!
//! - the vocabulary: [`protocol`] and [`transport`] (what a plugin
//!   implements and sees), [`Limits`] (flow control), [`timer`] (the timer
//!   queue), [`Stats`], [`Addr`], [`endpoint`] (`tcp:PORT`-style strings);
//! - the core: the slab of sources behind the `Source` trait, tokens that
//!   are never reused, the timers and the context every callback gets;
//! - policies and limits: [`ListenOptions`] and what a listener's
//!   connections share;
//! - the sources: a stream connection and the one state machine that runs
//!   it (on a socket here, on memory in [`testing`]), a listener, a
//!   connector, a UDP socket, any other descriptor ([`fd`]);
//! - dispatch: one turn of the loop, and stopping;
//! - the public [`Reactor`] and [`ReactorHandle`], and [`outcome`] for
//!   clients that wait for one result;
//! - helpers for plugins: [`mod@line`] and [`prefixed`] (framing, Twisted's
//!   `protocols.basic`), [`backoff`] (retries), [`testing`] (an in-memory
//!   pipe and a manual clock for unit tests), [`tls`] (a layer that runs any
//!   stream protocol under TLS; the vocabulary and the protocol traits are
//!   all it uses, and the reactor and the opener use it for `tls:`
//!   endpoints).

#![warn(missing_docs)]

mod addr;
pub mod backoff;
mod core;
mod dispatch;
pub mod endpoint;
mod flow;
pub mod group;
mod guard;
mod handle;
pub mod inherit;
pub mod line;
pub mod loglimit;
pub mod netstring;
mod opener;
pub mod outcome;
mod policy;
pub mod prefixed;
pub mod producer;
pub mod protocol;
pub mod reactor;
mod resolver;
mod source;
mod stats;
pub mod testing;
pub mod timer;
pub mod tls;
pub mod transport;

pub use crate::core::{Config, Readiness, UdpReplies, default_memory_budget};
pub use addr::Addr;
pub use backoff::{Backoff, Reconnecting, StopTrying};
/// The `bytes` crate, re-exported: [`Transport::write_bytes`] and the framers'
/// owned frames use its [`Bytes`](bytes::Bytes) and [`BytesMut`](bytes::BytesMut).
pub use bytes;
pub use flow::Limits;
pub use handle::ReactorHandle;
pub use outcome::{OneShot, Outcome};
pub use policy::ListenOptions;
pub use protocol::{ClientFactory, DatagramProtocol, Factory, Protocol};
pub use reactor::Listening;
pub use reactor::Reactor;
pub use source::fd;
pub use stats::Stats;
pub use timer::TimerHandle;
pub use transport::{ConnId, Context, DatagramTransport, Disconnect, ListenerId, Transport};
