//! A relay (`cargo run --example relay -- 8000 tcp:127.0.0.1:7007`): each
//! connection accepted opens one to the target with `Context::connect` and the
//! two are piped together, backpressure and half-close passed through. With
//! `TWIRL_EXAMPLE_SMOKE=1` it relays 4 MiB to an echo of its own and back.
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;
use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, ConnId, Context, Disconnect, Protocol, Reactor, Transport};

/// One side of a pair. The accepted side has `to` and connects out in
/// `connection_made`; the side it opens knows the accepted side's id.
struct Pipe {
    to: Option<ClientEndpoint>,
    other: Option<ConnId>,
}

impl Protocol for Pipe {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        match self.to.take() {
            Some(to) => {
                t.pause_reading(); // nothing to write to until the target answers
                let out = Pipe { to: None, other: Some(t.id()) };
                match t.connect(&to, Box::new(out)) {
                    Ok(id) => {
                        // Each side is the other's producer (Twisted's registerProducer):
                        // while one's buffer is above its high-water mark, the other is not read.
                        t.register_producer(id, t.id());
                        t.register_producer(t.id(), id);
                        self.other = Some(id);
                    }
                    Err(_) => t.abort_connection(),
                }
            }
            None => {
                self.other.map(|client| t.with_conn(client, &mut |c| c.resume_reading()));
            }
        }
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        self.other.map(|id| t.write_to(id, data));
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        self.other.map(|id| t.with_conn(id, &mut |o| o.shutdown_write())); // their FIN becomes ours
    }
    fn connection_lost(&mut self, _: &Disconnect, cx: &mut dyn Context) {
        self.other.map(|id| cx.close_conn(id)); // after flushing (or cancels a connect)
    }
}

const LOCAL: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0));
struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        t.write(data);
    }
}

fn main() -> io::Result<()> {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    let mut reactor = Reactor::new()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, to): (u16, ClientEndpoint) = match (smoke, args.as_slice()) {
        (true, _) => {
            let echo = reactor.listen_tcp(LOCAL, |_: &Addr| Echo)?.addr;
            (0, ClientEndpoint::Tcp("127.0.0.1".into(), echo.port()))
        }
        (false, [p, t]) => (p.parse().map_err(io::Error::other)?, t.parse().map_err(io::Error::other)?),
        _ => return Err(io::Error::other("usage: relay PORT tcp:HOST:PORT")),
    };
    let pipe = move |_: &Addr| Pipe { to: Some(to.clone()), other: None };
    let at = reactor.listen_tcp(SocketAddr::new(LOCAL.ip(), port), pipe)?.addr;
    println!("relay listening on {at}");
    let check = smoke.then(|| {
        let handle = reactor.handle();
        reactor.call_later(Duration::from_secs(20), |r| r.stop()); // bounded, whatever happens
        std::thread::spawn(move || (talk(at), handle.stop()).0)
    });
    reactor.run()?;
    if let Some(check) = check {
        let n = check.join().map_err(|_| io::Error::other("client panicked"))??;
        println!("self-check passed: {n} bytes there and back");
    }
    Ok(())
}

/// Sends 4 MiB from another thread and half-closes; reads all back, to EOF.
fn talk(at: SocketAddr) -> io::Result<usize> {
    let s = TcpStream::connect_timeout(&at, Duration::from_secs(5))?;
    let mut w = s.try_clone()?;
    let sender = std::thread::spawn(move || w.write_all(&vec![7u8; 4 << 20]).and_then(|_| w.shutdown(Shutdown::Write)));
    let back = io::read_to_string(&s)?; // bounded: the reactor stops after 20 s
    sender.join().map_err(|_| io::Error::other("sender panicked"))??;
    let ok = back.len() == 4 << 20 && back.bytes().all(|b| b == 7);
    ok.then_some(back.len()).ok_or_else(|| io::Error::other(format!("{} bytes came back", back.len())))
}
