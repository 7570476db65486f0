//! A bare mio echo server, written like mio's own `tcp_server` example: one
//! thread, one `Poll`, a `Slab` of connections, one shared read buffer, each
//! socket registered once for read and write (edge-triggered). Bytes the
//! socket does not take at once wait in a per-connection buffer.
//!
//! It keeps reading while that buffer is not empty (mio's example reads until
//! `WouldBlock` whatever it has to write): what it reads is appended behind
//! what waits, and written when the socket says it is writable again. So it
//! has no backpressure of its own; a connection whose buffer passes 64 MiB is
//! dropped. Under a client that keeps 8 MiB in flight and reads as it writes
//! (the deep-pipeline stream), the buffer holds at most those 8 MiB and the
//! client's reading always frees the socket again: no deadlock.
//!
//! `peer-mio --addr 127.0.0.1:PORT`

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    sock: TcpStream,
    pending: Vec<u8>,
}

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:7007").parse().map_err(io::Error::other)?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(addr)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening echo on {}", listener.local_addr()?);
    let mut conns: Slab<Conn> = Slab::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let entry = conns.vacant_entry();
                            let token = Token(entry.key());
                            poll.registry().register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)?;
                            entry.insert(Conn { sock, pending: Vec::new() });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("peer-mio: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else { continue };
            let mut done = false;
            if event.is_writable() && !conn.pending.is_empty() {
                done = flush(conn);
            }
            if !done && event.is_readable() {
                done = echo(conn, &mut buf);
            }
            if done {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.sock);
            }
        }
    }
}

/// Writes what is pending; true if the connection failed.
fn flush(conn: &mut Conn) -> bool {
    while !conn.pending.is_empty() {
        match conn.sock.write(&conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}

/// Reads until `WouldBlock`, writing each piece straight back; true when
/// the connection is finished (EOF or error).
fn echo(conn: &mut Conn, buf: &mut [u8]) -> bool {
    loop {
        match conn.sock.read(buf) {
            Ok(0) => return true,
            Ok(n) => {
                let mut data = &buf[..n];
                if conn.pending.is_empty() {
                    loop {
                        match conn.sock.write(data) {
                            Ok(w) => {
                                data = &data[w..];
                                if data.is_empty() {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => return true,
                        }
                    }
                }
                conn.pending.extend_from_slice(data);
                if conn.pending.len() > 64 << 20 {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
