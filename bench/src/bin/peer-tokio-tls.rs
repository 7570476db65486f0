//! The tokio + tokio-rustls TLS echo peer for `tls-bench`: the current-thread
//! runtime, a task per connection, a 16 KiB buffer, `read` then
//! `write_all` and `flush`, the same rustls (ring) and certificate as twirl,
//! TCP_NODELAY on (as in the twirl peer).
//!
//! `peer-tokio-tls --addr 127.0.0.1:0 --cert cert.pem --key key.pem [--workers N]`
//!
//! `--workers N` (N > 1) runs the multi-thread runtime with N workers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let workers: usize = args.num("workers", 1).map_err(io::Error::other)?;
    let runtime = if workers > 1 {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_io().build()?
    } else {
        tokio::runtime::Builder::new_current_thread().enable_io().build()?
    };
    runtime.block_on(serve(args))
}

async fn serve(args: twirl_bench::Args) -> io::Result<()> {
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
