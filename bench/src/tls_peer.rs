//! The TLS echo servers `tls-bench` compares, one function each, so that
//! each can be built on either allocator (a binary chooses its allocator):
//! `peer-twirl-tls` and `peer-tokio-tls` on the system one (glibc's
//! malloc, as the `twirl` command is), `peer-twirl-tls-mimalloc` and
//! `peer-tokio-tls-mimalloc` on mimalloc.
//!
//! Both serve `--addr 127.0.0.1:0 --cert cert.pem --key key.pem`, print
//! `listening echo on ADDR`, and echo over TLS with TCP_NODELAY on, on the
//! same rustls (ring) and certificate.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use twirl::tls::{self, TlsServer};
use twirl::{Addr, Protocol, Reactor, Transport};

use crate::Args;

/// The echo protocol: one `write` per `data_received`.
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

fn common(args: &Args) -> io::Result<(SocketAddr, String, String)> {
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:0").parse().map_err(io::Error::other)?;
    let cert = args.get("cert").ok_or_else(|| io::Error::other("--cert PATH"))?;
    let key = args.get("key").ok_or_else(|| io::Error::other("--key PATH"))?;
    crate::raise_nofile(65_536);
    Ok((addr, cert.to_string(), key.to_string()))
}

/// twirl's peer: `echo` under `twirl::tls`, on the default config.
pub fn twirl_echo() -> io::Result<()> {
    let args = Args::from_env().map_err(io::Error::other)?;
    let (addr, cert, key) = common(&args)?;
    let mut reactor = Reactor::new()?;
    let server = tls::server(TlsServer::from_pem_files(cert, key)?, |_: &Addr| Echo);
    let bound = reactor.listen_tcp(addr, server)?;
    println!("listening echo on {bound}");
    reactor.run()
}

/// The tokio + tokio-rustls peer: the current-thread runtime (`--workers N`,
/// N > 1: the multi-thread one), a task per connection, a 16 KiB buffer,
/// `read` then `write_all` and `flush`.
pub fn tokio_echo() -> io::Result<()> {
    let args = Args::from_env().map_err(io::Error::other)?;
    let workers: usize = args.num("workers", 1).map_err(io::Error::other)?;
    let runtime = if workers > 1 {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_io().build()?
    } else {
        tokio::runtime::Builder::new_current_thread().enable_io().build()?
    };
    runtime.block_on(serve_tokio(args))
}

async fn serve_tokio(args: Args) -> io::Result<()> {
    let (addr, cert, key) = common(&args)?;
    let chain = CertificateDer::pem_file_iter(cert).map_err(io::Error::other)?.collect::<Result<Vec<_>, _>>();
    let key = PrivateKeyDer::from_pem_file(key).map_err(io::Error::other)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain.map_err(io::Error::other)?, key)
        .map_err(io::Error::other)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(addr).await?;
    println!("listening echo on {}", listener.local_addr()?);
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("peer-tokio-tls: accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        // As the twirl peer does: no Nagle delay on an echo's small tail.
        let _ = sock.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(sock).await else { return };
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tls.write_all(&buf[..n]).await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
