//! A chat room on tokio's current-thread runtime, for the chat fan-out
//! workload: the same lines as `twirl serve chat` (each line from one member
//! goes to every other member as `[IP:PORT] line`, and each member is first
//! told `* you are IP:PORT; N others here`), written the way tokio's own
//! chat examples are, around a `tokio::sync::broadcast` channel.
//!
//! The channel keeps one copy of each line (an `Arc`) and each member's
//! position in it, so a member whose socket is full costs a position, not a
//! copy of what it has not taken: the design twirl's fan-out target asks
//! for. A member more than [`CAPACITY`] lines behind has lost lines (tokio's
//! `Lagged`) and is disconnected, as the chat disconnects a member whose
//! backlog passes 256 KiB. No arrival or departure notices.
//!
//! `peer-tokio-chat --addr 127.0.0.1:PORT`

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};

/// Lines the channel keeps; a member further behind is disconnected.
const CAPACITY: usize = 1024;
/// Longest line accepted (the chat's limit).
const MAX_LINE: usize = 4096;

/// One line as delivered, and who sent it (not sent back to them).
struct Line {
    from: u64,
    bytes: Vec<u8>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let args = twirl_bench::Args::from_env().map_err(io::Error::other)?;
    let addr: SocketAddr = args.get("addr").unwrap_or("127.0.0.1:7107").parse().map_err(io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    println!("listening chat on {}", listener.local_addr()?);
    let (tx, _) = broadcast::channel::<Arc<Line>>(CAPACITY);
    let here = Arc::new(AtomicUsize::new(0));
    for id in 0u64.. {
        let (sock, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("peer-tokio-chat: accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let rx = tx.subscribe();
        tokio::spawn(member(sock, peer, id, tx.clone(), rx, here.clone()));
    }
    Ok(())
}

/// One member: a task writing what the channel brings, and this one reading
/// its lines into the channel.
async fn member(
    sock: TcpStream,
    peer: SocketAddr,
    id: u64,
    tx: broadcast::Sender<Arc<Line>>,
    mut rx: broadcast::Receiver<Arc<Line>>,
    here: Arc<AtomicUsize>,
) {
    let others = here.fetch_add(1, Ordering::Relaxed);
    let (r, mut w) = sock.into_split();
    let hello = format!("* you are {peer}; {others} other{} here\n", if others == 1 { "" } else { "s" });
    let writer = tokio::spawn(async move {
        if w.write_all(hello.as_bytes()).await.is_err() {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(line) if line.from == id => {}
                Ok(line) => {
                    if w.write_all(&line.bytes).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    eprintln!("peer-tokio-chat: disconnecting {peer}: {n} lines behind");
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    let label = format!("[{peer}] ");
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if line.len() > MAX_LINE + 2 => break,
            Ok(_) => {}
        }
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        let mut bytes = Vec::with_capacity(label.len() + line.len() + 1);
        bytes.extend_from_slice(label.as_bytes());
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
        let _ = tx.send(Arc::new(Line { from: id, bytes }));
    }
    writer.abort();
    here.fetch_sub(1, Ordering::Relaxed);
}
