//! A tokio echo server on the current-thread runtime, written the way the
//! tokio tutorial writes one: a task per connection, each with its own 16 KiB
//! read buffer (`--buffer BYTES` changes it), `read` then `write_all`.
//!
//! A task does not read while its `write_all` waits: its backpressure is the
//! socket's. Under a client that keeps 8 MiB in flight and reads as it writes
//! (the deep-pipeline stream), the write finishes as the client reads, and
//! the rest waits in the kernel's buffers: no deadlock, and no buffering in
//! the server beyond the 16 KiB.
//!
//! `peer-tokio --addr 127.0.0.1:PORT [--buffer 16384] [--workers N]`
//!
//! `--workers N` (N > 1) runs tokio's multi-thread (work-stealing) runtime
//! with N worker threads instead, the peer of `twirl serve --threads N`.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:7007").parse().map_err(io::Error::other)?;
    let size: usize = args.num("buffer", 16 * 1024).map_err(io::Error::other)?;
    let workers: usize = args.num("workers", 1).map_err(io::Error::other)?;
    let runtime = if workers > 1 {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_io().build()?
    } else {
        tokio::runtime::Builder::new_current_thread().enable_io().build()?
    };
    runtime.block_on(serve(addr, size))
}

async fn serve(addr: SocketAddr, size: usize) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening echo on {}", listener.local_addr()?);
    loop {
        let (mut sock, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, say: back off rather than spin.
                eprintln!("peer-tokio: accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; size];
            loop {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if sock.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
