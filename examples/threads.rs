//! State shared by reactors on several threads, without a lock on the hot
//! path (`cargo run --example threads -- 7300`): two reactors, one per
//! thread, each listening on the same port (`Config::reuse_port`: the
//! kernel spreads connections across them). Every line a client sends is
//! counted by its own reactor and announced to the other through the
//! group (`Group::post_to_others`), so each thread knows the total; a
//! client that sends `count` is told it, whichever thread it landed on.
//! With `TWIRL_EXAMPLE_SMOKE=1` it checks itself and exits.
use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;
use twirl::group::Group;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::{Addr, Config, Reactor};

thread_local! {
    /// Lines counted by every reactor, as this thread has heard of them.
    static TOTAL: Cell<u64> = const { Cell::new(0) };
}

/// Counts its lines into the total; answers `count` with it.
struct Counter;

impl LineHandler for Counter {
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        if line == b"count" {
            return t.write(format!("{}\n", TOTAL.with(Cell::get)).as_bytes());
        }
        TOTAL.with(|n| n.set(n.get() + 1));
        // The other threads hear of it at their next turn, in this order.
        if let Some(group) = Group::current() {
            group.post_to_others(|_| TOTAL.with(|n| n.set(n.get() + 1)));
        }
        t.write(b"ok\n");
    }
}

fn main() -> io::Result<()> {
    let smoke = std::env::var_os("TWIRL_EXAMPLE_SMOKE").is_some();
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().map_err(io::Error::other)?,
        None if smoke => 0,
        None => 7300,
    };
    let config = Config { reuse_port: true, ..Config::default() };
    // A reactor stays on the thread that made it: the second one is made
    // there, and its handle comes back to make the group.
    let (hello, handle) = mpsc::channel();
    let (work, got_work) = mpsc::channel::<(Group, SocketAddr)>();
    let second_config = config.clone();
    let other = std::thread::spawn(move || -> io::Result<()> {
        let mut second = Reactor::with_config(second_config)?;
        hello.send(second.handle()).map_err(io::Error::other)?;
        let (member, at) = got_work.recv_timeout(Duration::from_secs(10)).map_err(io::Error::other)?;
        member.enter();
        second.listen_tcp(at, |_: &Addr| LineReceiver::new(Counter))?;
        second.run()
    });
    let mut first = Reactor::with_config(config)?;
    let second = handle.recv_timeout(Duration::from_secs(10)).map_err(io::Error::other)?;
    let handles = [first.handle(), second.clone()];
    let mut members = Group::of(vec![first.handle(), second]).into_iter();
    let (one, two) = (members.next().expect("two members"), members.next().expect("two members"));
    one.enter();
    let at = first.listen_tcp(SocketAddr::from(([127, 0, 0, 1], port)), |_: &Addr| LineReceiver::new(Counter))?.addr;
    work.send((two, at)).map_err(io::Error::other)?;
    println!("counting lines on {at}, two threads");
    let check = smoke.then(|| {
        first.call_later(Duration::from_secs(20), |r| r.stop()); // bounded, whatever happens
        std::thread::spawn(move || {
            let result = talk(at);
            handles.iter().for_each(|h| h.stop());
            result
        })
    });
    first.run()?;
    other.join().map_err(|_| io::Error::other("the other reactor panicked"))??;
    if let Some(check) = check {
        let total = check.join().map_err(|_| io::Error::other("client panicked"))??;
        println!("self-check passed: every client saw the total of {total} lines");
    }
    Ok(())
}

/// 20 clients (spread over both threads) send 5 lines each; then each
/// asks for the count, until all agree on 100 (bounded).
fn talk(at: SocketAddr) -> io::Result<u64> {
    let mut clients = Vec::new();
    for _ in 0..20 {
        let s = TcpStream::connect(at)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut lines = BufReader::new(s.try_clone()?);
        for i in 0..5 {
            writeln!(&s, "line {i}")?;
            let mut ok = String::new();
            lines.read_line(&mut ok)?;
        }
        clients.push((s, lines));
    }
    for _ in 0..100 {
        let mut counts = Vec::new();
        for (s, lines) in &mut clients {
            writeln!(s, "count")?;
            let mut n = String::new();
            lines.read_line(&mut n)?;
            counts.push(n.trim().parse::<u64>().map_err(io::Error::other)?);
        }
        if counts.iter().all(|&n| n == 100) {
            return Ok(100);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(io::Error::other("the threads never agreed on 100"))
}
