//! twirl's TLS echo peer for `tls-bench`: the `echo` protocol (one
//! `write` per `data_received`) under `twirl::tls`, on the default config,
//! TCP_NODELAY on (as in the tokio peer).
//!
//! `peer-twirl-tls --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

use std::io;
use std::net::SocketAddr;

use twirl::tls::{self, TlsServer};
use twirl::{Addr, Protocol, Reactor, Transport};

struct Echo;

impl Protocol for Echo {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // As the tokio peer does: no Nagle delay on an echo's small tail.
        let _ = t.set_nodelay(true);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
}

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:0").parse().map_err(io::Error::other)?;
    let cert = args.get("cert").ok_or_else(|| io::Error::other("--cert PATH"))?;
    let key = args.get("key").ok_or_else(|| io::Error::other("--key PATH"))?;
    twirl_bench::raise_nofile(65_536);
    let mut reactor = Reactor::new()?;
    let server = tls::server(TlsServer::from_pem_files(cert, key)?, |_: &Addr| Echo);
    let bound = reactor.listen_tcp(addr, server)?;
    println!("listening echo on {bound}");
    reactor.run()
}
