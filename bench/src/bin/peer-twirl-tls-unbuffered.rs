//! An experiment for issue #15, not twirl's TLS layer: an echo server on
//! twirl's reactor that drives rustls through its unbuffered API, so that
//! the ciphertext rustls decrypts in place sits in a buffer of this
//! protocol's, at offsets that move with the stream, rather than in
//! rustls's own receive buffer (whose power-of-two capacity puts the next
//! 16 KiB block 11 bytes past each record under glibc's malloc). Server
//! side only, echo only, no flow control: `tls-bench`'s last stream row
//! runs it beside tokio, to measure what rebuilding the layer on this API
//! would give.
//!
//! `peer-twirl-tls-unbuffered --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use twirl::{Addr, Protocol, Reactor, Transport};

/// Ciphertext not yet processed lives in `incoming[start..]`; it is moved
/// to the front only once `start` passes half the buffer.
struct Echo {
    conn: UnbufferedServerConnection,
    incoming: Vec<u8>,
    start: usize,
    plain: Vec<u8>,
    out: Vec<u8>,
}

impl Echo {
    fn pump(&mut self, t: &mut dyn Transport) {
        for _ in 0..100_000 {
            let (start, end) = (self.start, self.incoming.len());
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut self.incoming[start..end]);
            let mut echo = false;
            let mut more = true;
            match state {
                Err(_) => {
                    t.abort_connection();
                    return;
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    self.plain.clear();
                    while let Some(rec) = r.next_record() {
                        match rec {
                            Ok(rec) => self.plain.extend_from_slice(rec.payload),
                            Err(_) => {
                                t.abort_connection();
                                return;
                            }
                        }
                    }
                    echo = true;
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    let n = match e.encode(&mut self.out) {
                        Ok(n) => n,
                        Err(EncodeError::InsufficientSize(s)) => {
                            self.out.resize(s.required_size, 0);
                            e.encode(&mut self.out).unwrap_or(0)
                        }
                        Err(_) => 0,
                    };
                    t.write(&self.out[..n]);
                }
                Ok(ConnectionState::TransmitTlsData(tx)) => tx.done(),
                Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => {
                    t.lose_connection();
                    more = false;
                }
                Ok(_) => more = false,
            }
            self.start += discard;
            if echo && !self.plain.is_empty() {
                self.echo(t);
            }
            if !more {
                break;
            }
        }
        if self.start == self.incoming.len() {
            self.incoming.clear();
            self.start = 0;
        } else if self.start > self.incoming.capacity() / 2 {
            self.incoming.drain(..self.start);
            self.start = 0;
        }
    }

    fn echo(&mut self, t: &mut dyn Transport) {
        for _ in 0..64 {
            // No ciphertext: only what rustls has to send, then a state to write in.
            let status = self.conn.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    let n = match e.encode(&mut self.out) {
                        Ok(n) => n,
                        Err(EncodeError::InsufficientSize(s)) => {
                            self.out.resize(s.required_size, 0);
                            e.encode(&mut self.out).unwrap_or(0)
                        }
                        Err(_) => 0,
                    };
                    t.write(&self.out[..n]);
                }
                Ok(ConnectionState::TransmitTlsData(tx)) => tx.done(),
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    let need = self.plain.len() + (self.plain.len() / 16384 + 1) * 22;
                    if self.out.len() < need {
                        self.out.resize(need, 0);
                    }
                    match w.encrypt(&self.plain, &mut self.out) {
                        Ok(n) => t.write(&self.out[..n]),
                        Err(EncryptError::InsufficientSize(s)) => {
                            self.out.resize(s.required_size, 0);
                            if let Ok(n) = w.encrypt(&self.plain, &mut self.out) {
                                t.write(&self.out[..n]);
                            }
                        }
                        Err(_) => t.abort_connection(),
                    }
                    return;
                }
                other => {
                    eprintln!("echo: unexpected {other:?}");
                    return;
                }
            }
        }
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = t.set_nodelay(true);
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        self.incoming.extend_from_slice(data);
        self.pump(t);
    }
}

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:0").parse().map_err(io::Error::other)?;
    let cert = args.get("cert").ok_or_else(|| io::Error::other("--cert PATH"))?;
    let key = args.get("key").ok_or_else(|| io::Error::other("--key PATH"))?;
    twirl_bench::raise_nofile(65_536);
    let chain = CertificateDer::pem_file_iter(cert).map_err(io::Error::other)?.collect::<Result<Vec<_>, _>>();
    let key = PrivateKeyDer::from_pem_file(key).map_err(io::Error::other)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain.map_err(io::Error::other)?, key)
        .map_err(io::Error::other)?;
    let config = Arc::new(config);
    let mut reactor = Reactor::new()?;
    let factory = move |_: &Addr| Echo {
        conn: UnbufferedServerConnection::new(config.clone()).expect("a server connection"),
        incoming: Vec::new(),
        start: 0,
        plain: Vec::new(),
        out: vec![0; 16 * 1024 + 256],
    };
    let bound = reactor.listen_tcp(addr, factory)?;
    println!("listening echo on {bound}");
    reactor.run()
}
