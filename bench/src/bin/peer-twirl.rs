//! twirl's echo protocol on a reactor built here, so that reactor settings
//! the `twirl` command does not expose can be tried:
//!
//! `peer-twirl --addr 127.0.0.1:PORT [--read-buffer 65536] [--max-read-buffer 65536] [--read-budget 262144]
//!             [--high-water N] [--low-water N] [--backpressure] [--write-chunk N]
//!             [--protocol echo|prefixed] [--idle-timeout SECS] [--max-conns N]`
//!
//! `--protocol prefixed` serves length-prefixed messages instead of echoing
//! bytes: `PrefixedReceiver` with a 4-byte prefix (`Prefix::U32`), whose
//! handler answers each message with `send_message`, which writes the prefix
//! and the payload as two `write` calls (the case where corking writes within
//! a callback pays). `--idle-timeout` (default 0: none) and `--max-conns`
//! (default 0: none) set the listener's options as `twirl serve` does; the
//! suite passes `--idle-timeout 300 --max-conns 20000`, `twirl serve`'s
//! settings in its runs, so that the prefixed server differs from the echo
//! one only in its protocol.
//!
//! `--backpressure` makes the echo stop reading while its output is above the
//! high-water mark (`pause_writing` pauses reading, `resume_writing` resumes
//! it); with `--high-water 0 --low-water 0` it stops whenever anything is
//! buffered, as a task doing `read` then `write_all` does.
//!
//! The suite measures the real `twirl serve echo@tcp:PORT`; this binary is for
//! experiments (what a smaller read buffer would save, say).

use std::io;
use std::net::SocketAddr;

use std::time::Duration;

use twirl::endpoint::ServerEndpoint;
use twirl::prefixed::{MessageHandler, Prefix, PrefixedReceiver, send_message};
use twirl::{Addr, Config, Limits, ListenOptions, Protocol, Reactor, Transport};

/// Answers each length-prefixed message with itself, prefix and payload
/// written separately by `send_message`.
struct PrefixedEcho;

impl MessageHandler for PrefixedEcho {
    fn message_received(&mut self, msg: &[u8], t: &mut dyn Transport) {
        send_message(t, Prefix::U32, msg);
    }
}

struct Echo {
    backpressure: bool,
    /// Echo in writes of at most this many bytes (0: each read in one write),
    /// to tell the cost of large reads from that of large writes.
    write_chunk: usize,
}

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if self.write_chunk == 0 {
            return t.write(data);
        }
        for piece in data.chunks(self.write_chunk) {
            t.write(piece);
        }
    }
    fn pause_writing(&mut self, t: &mut dyn Transport) {
        if self.backpressure {
            t.pause_reading();
        }
    }
    fn resume_writing(&mut self, t: &mut dyn Transport) {
        if self.backpressure {
            t.resume_reading();
        }
    }
}

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:7007").parse().map_err(io::Error::other)?;
    let defaults = Config::default();
    let config = Config {
        read_buffer: args.num("read-buffer", defaults.read_buffer).map_err(io::Error::other)?,
        // Reads start at `--read-buffer` and double while they come back
        // full, up to this; equal to it, every read is that size.
        max_read_buffer: args.num("max-read-buffer", defaults.max_read_buffer).map_err(io::Error::other)?,
        read_budget: args.num("read-budget", defaults.read_budget).map_err(io::Error::other)?,
        limits: Limits {
            high_water: args.num("high-water", defaults.limits.high_water).map_err(io::Error::other)?,
            low_water: args.num("low-water", defaults.limits.low_water).map_err(io::Error::other)?,
            ..defaults.limits
        },
        ..defaults
    };
    let backpressure = args.flag("backpressure");
    let write_chunk = args.num("write-chunk", 0).map_err(io::Error::other)?;
    let protocol = args.get("protocol").unwrap_or("echo").to_string();
    let idle: f64 = args.num("idle-timeout", 0.0).map_err(io::Error::other)?;
    let max_conns: usize = args.num("max-conns", 0).map_err(io::Error::other)?;
    let opts = ListenOptions {
        limits: config.limits,
        idle_timeout: (idle > 0.0).then(|| Duration::from_secs_f64(idle)),
        max_connections: (max_conns > 0).then_some(max_conns),
        ..ListenOptions::new(protocol.clone())
    };
    let mut reactor = Reactor::with_config(config)?;
    let endpoint = ServerEndpoint::Tcp(addr);
    let bound = match protocol.as_str() {
        "echo" => {
            reactor.listen_stream(&endpoint, Box::new(move |_: &Addr| Echo { backpressure, write_chunk }), opts)?.addr
        }
        "prefixed" => {
            reactor
                .listen_stream(&endpoint, Box::new(|_: &Addr| PrefixedReceiver::new(PrefixedEcho, Prefix::U32)), opts)?
                .addr
        }
        p => return Err(io::Error::other(format!("--protocol '{p}': echo or prefixed"))),
    };
    println!("listening {protocol} on {bound}");
    reactor.handle_signals(&[], |_, _| {})?;
    reactor.run()
}
