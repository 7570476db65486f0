//! twirl's echo protocol on a reactor built here, so that reactor settings
//! the `twirl` command does not expose can be tried:
//!
//! `peer-twirl --addr 127.0.0.1:PORT [--read-buffer 65536] [--read-budget 262144]`
//!
//! The suite measures the real `twirl serve echo@tcp:PORT`; this binary is for
//! experiments (what a smaller read buffer would save, say).

use std::io;
use std::net::SocketAddr;

use twirl::{Addr, Config, Protocol, Reactor, Transport};

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
}

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:7007").parse().map_err(io::Error::other)?;
    let defaults = Config::default();
    let config = Config {
        read_buffer: args.num("read-buffer", defaults.read_buffer).map_err(io::Error::other)?,
        read_budget: args.num("read-budget", defaults.read_budget).map_err(io::Error::other)?,
        ..defaults
    };
    let mut reactor = Reactor::with_config(config)?;
    let bound = reactor.listen_tcp(addr, |_: &Addr| Echo)?;
    println!("listening echo on {bound}");
    reactor.handle_signals(&[], |_, _| {})?;
    reactor.run()
}
