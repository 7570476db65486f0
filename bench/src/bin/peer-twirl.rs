//! twirl's echo protocol on a reactor built here, so that reactor settings
//! the `twirl` command does not expose can be tried:
//!
//! `peer-twirl --addr 127.0.0.1:PORT [--read-buffer 65536] [--read-budget 262144]
//!             [--high-water N] [--low-water N] [--backpressure] [--write-chunk N]`
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

use twirl::{Addr, Config, Limits, Protocol, Reactor, Transport};

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
    let mut reactor = Reactor::with_config(config)?;
    let bound = reactor.listen_tcp(addr, move |_: &Addr| Echo { backpressure, write_chunk })?;
    println!("listening echo on {bound}");
    reactor.handle_signals(&[], |_, _| {})?;
    reactor.run()
}
