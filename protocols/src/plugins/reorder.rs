//! `reorder`: Lab 1C (seed 000), "a UDP receiver that receives a string,
//! orders the words from longest to shortest in a new string, and sends that
//! new string to the source port + 1", with one client that sends and a
//! second one that receives and prints.
//!
//! # The receiver (the server)
//!
//! Each datagram's words (split on runs of ASCII whitespace) are ordered by
//! length in characters, longest first; words of equal length keep their
//! input order (a stable sort). They are joined by one space and sent to the
//! datagram's source address at **source port + 1**, never back to the
//! source port. A datagram from port 65535 has no port + 1: it is logged and
//! dropped. The reply is never longer than the request, so the service
//! cannot amplify traffic towards a third party.
//!
//! # The clients
//!
//! Both of the lab's clients in one process:
//!
//! ```text
//! $ twirl client reorder udp:127.0.0.1:7103 the quick brown fox jumps
//! quick brown jumps the fox
//! ```
//!
//! The client binds a receiving port first (P+1, chosen by the kernel), then
//! the sending port P just below it, sends from P and prints the datagram
//! that arrives on P+1. It accepts only a datagram from the server's address
//! whose text is the reordering it computed itself, so a stray datagram on
//! P+1 is ignored; after each silence (0.5 s, 1 s, 2 s, 4 s, 8 s) it resends,
//! then exits 1.
//!
//! The lab's two-process form, one receiver that only listens and one sender:
//!
//! ```text
//! $ twirl client reorder udp:127.0.0.1:40001 --receive --timeout 60 &
//! $ twirl client reorder udp:127.0.0.1:7103 --from 40000 the quick brown fox jumps
//! reorder: sent 25 bytes from port 40000; the reply goes to port 40001
//! quick brown jumps the fox
//! ```
//!
//! - `--receive`: the endpoint is the *local* address to listen on; the first
//!   datagram that arrives there is printed and the command exits (after
//!   `--timeout SECS` with no datagram it exits 1; without it, it waits until
//!   interrupted). Like the lab's receiver it cannot tell the server's answer
//!   from anyone else's datagram: it prints whatever comes first.
//! - `--from P`: send once from port P (1 to 65534) and exit; the reply goes
//!   to port P+1, where the receiver waits. With no receiver there, the reply
//!   is simply lost.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use twirl::endpoint::ClientEndpoint;
use twirl::{DatagramProtocol, DatagramTransport, Outcome, Reactor};

use crate::client_args::ClientFlag;
use crate::exchange::{NO_TIMEOUT, UdpRetry, print_reply, wait};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};
use crate::text::{join_words, words};

/// The message's words, longest first (in characters), stable for ties.
///
/// ```
/// assert_eq!(twirl_protocols::plugins::reorder::reorder(b"a ccc bb dd"), b"ccc bb dd a");
/// ```
pub fn reorder(message: &[u8]) -> Vec<u8> {
    let mut w: Vec<&[u8]> = words(message).collect();
    w.sort_by_key(|word| std::cmp::Reverse(char_len(word)));
    join_words(w, message.len() + 1)
}

/// Length in characters; an invalid UTF-8 sequence counts as one.
fn char_len(word: &[u8]) -> usize {
    match std::str::from_utf8(word) {
        Ok(s) => s.chars().count(),
        Err(_) => String::from_utf8_lossy(word).chars().count(),
    }
}

/// Where the reply goes: the source address at port + 1, if there is one.
pub fn reply_address(from: SocketAddr) -> Option<SocketAddr> {
    let port = from.port().checked_add(1)?;
    Some(SocketAddr::new(from.ip(), port))
}

/// Set to `1` to let `reorder` answer sources off loopback too.
pub const ANY_SOURCE_ENV: &str = "TWIRL_REORDER_ANY_SOURCE";

/// The receiver: reorders each datagram and sends it to source port + 1.
///
/// A reply to another port than the request came from is what a spoofed
/// request can aim anywhere (at another service's port, chaining services
/// into a loop), so by default only loopback sources are answered: the lab
/// runs its two processes on one machine. [`ANY_SOURCE_ENV`]`=1` lifts it.
pub struct Reorder {
    any_source: bool,
}

impl Reorder {
    /// Answers loopback sources only, unless [`ANY_SOURCE_ENV`] is `1`.
    pub fn new() -> Self {
        Reorder { any_source: std::env::var(ANY_SOURCE_ENV).is_ok_and(|v| v == "1") }
    }

    /// Answers sources anywhere (for a lab across two machines).
    pub fn any_source() -> Self {
        Reorder { any_source: true }
    }
}

impl Default for Reorder {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramProtocol for Reorder {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        if !self.any_source && !from.ip().is_loopback() {
            log::debug!("reorder from {from}: not a loopback source; not answered (see {ANY_SOURCE_ENV})");
            return;
        }
        match reply_address(from) {
            Some(to) => {
                log::debug!("reorder from {from}: answering to {to}");
                t.send_to(&reorder(data), to);
            }
            None => log::debug!("reorder from {from}: port {} has no port + 1; dropped", from.port()),
        }
    }
}

/// The datagram that answered, or why none did.
type Reply = Outcome<io::Result<Vec<u8>>>;

/// Sends the request from port P; resends with back-off until answered.
#[derive(Clone)]
struct Sender {
    request: Vec<u8>,
    to: SocketAddr,
    retry: Option<UdpRetry>,
    tries: u32,
    outcome: Reply,
}

impl Sender {
    fn send(&mut self, t: &mut dyn DatagramTransport) {
        self.tries += 1;
        if !t.send_to(&self.request, self.to) {
            log::warn!("could not send to {}", self.to);
        }
        if let Some(retry) = self.retry {
            t.call_later(retry.first_timeout * 2u32.saturating_pow(self.tries - 1), 0);
        }
    }
}

impl DatagramProtocol for Sender {
    fn started(&mut self, t: &mut dyn DatagramTransport) {
        self.send(t);
        if self.retry.is_none() {
            self.outcome.set(Ok(Vec::new()));
        }
    }
    fn datagram_received(&mut self, _: &[u8], from: SocketAddr, _: &mut dyn DatagramTransport) {
        log::warn!("ignored a datagram from {from} on the sending port");
    }
    fn timer_fired(&mut self, _: u64, t: &mut dyn DatagramTransport) {
        let Some(retry) = self.retry else { return };
        if self.outcome.is_set() {
            return;
        }
        if self.tries >= retry.tries {
            let e = io::Error::new(io::ErrorKind::TimedOut, format!("no reply after {} tries", self.tries));
            self.outcome.set(Err(e));
            return;
        }
        log::info!("no reply yet; resending (try {} of {})", self.tries + 1, retry.tries);
        self.send(t);
    }
}

/// Decides whether a datagram (and its source) is the awaited reply.
type Accept = dyn Fn(&[u8], SocketAddr) -> bool;

/// Listens on P+1: takes the first datagram that `accept` allows.
struct Receiver {
    accept: Box<Accept>,
    outcome: Reply,
}

impl DatagramProtocol for Receiver {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, _: &mut dyn DatagramTransport) {
        if (self.accept)(data, from) {
            self.outcome.set(Ok(data.to_vec()));
        } else {
            log::warn!("ignored a datagram from {from} that does not answer our request");
        }
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// Send from P, receive on P+1, in this process.
    Both(String),
    /// Send once from this port.
    From(u16, String),
    /// Print the first datagram arriving at the endpoint, waiting at most this long.
    Receive(Option<Duration>),
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let (mut from, mut receive, mut timeout, mut text) = (None, false, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => {
                text.extend(it.by_ref().cloned());
            }
            "--receive" => receive = true,
            "--from" => {
                let v = it.next().ok_or("--from needs a port number")?;
                match v.parse::<u16>() {
                    Ok(p) if (1..65535).contains(&p) => from = Some(p),
                    _ => return Err(format!("--from '{v}': expected a port from 1 to 65534 (P+1 must exist)")),
                }
            }
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs a number of seconds")?;
                match v.parse::<f64>() {
                    Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => timeout = Some(Duration::from_secs_f64(s)),
                    _ => return Err(format!("--timeout '{v}': expected a number of seconds above 0")),
                }
            }
            opt if opt.starts_with("--") => return Err(format!("unknown option '{opt}'")),
            word => text.push(word.to_string()),
        }
    }
    if timeout.is_some() && !receive {
        return Err("--timeout goes with --receive".into());
    }
    match (receive, from) {
        (true, Some(_)) => Err("--receive and --from are the two halves: use one per process".into()),
        (true, None) if !text.is_empty() => Err("--receive takes no text: it only listens".into()),
        (true, None) => Ok(Mode::Receive(timeout)),
        _ if text.is_empty() => Err("expected the text to reorder".into()),
        (false, Some(p)) => Ok(Mode::From(p, text.join(" "))),
        (false, None) => Ok(Mode::Both(text.join(" "))),
    }
}

fn any_like(addr: SocketAddr, port: u16) -> SocketAddr {
    let ip = if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
    SocketAddr::new(ip, port)
}

/// Binds a receiver on an ephemeral port R first, then the sender on R-1;
/// returns P = R-1. If R-1 is taken it tries again (a receiver left over from
/// a failed try listens on a port nobody answers to, until the command ends).
fn bind_pair(reactor: &mut Reactor, server: SocketAddr, sender: &Sender, expected: &[u8]) -> io::Result<u16> {
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free pair of adjacent ports");
    for _ in 0..32 {
        let exp = expected.to_vec();
        let accept = Box::new(move |d: &[u8], from: SocketAddr| from == server && d == exp.as_slice());
        let receiver = Receiver { accept, outcome: sender.outcome.clone() };
        let r = reactor.open_udp(any_like(server, 0), receiver)?.addr.port();
        if r < 2 {
            continue;
        }
        match reactor.open_udp(any_like(server, r - 1), sender.clone()) {
            Ok(_) => return Ok(r - 1),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// `twirl client reorder ...`: see the module documentation.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    let mode = parse_args(args).map_err(ClientError::usage)?;
    let ClientEndpoint::Udp(..) = endpoint else {
        return Err(ClientError::usage(format!("{endpoint}: reorder speaks udp only")));
    };
    let addr = endpoint.resolve().map_err(|e| ClientError::runtime(endpoint, e))?;
    let mut reactor = Reactor::new().map_err(|e| ClientError::runtime(endpoint, e))?;
    let outcome = Reply::new();
    match mode {
        Mode::Receive(timeout) => {
            let accept = Box::new(|_: &[u8], _: SocketAddr| true);
            reactor
                .open_udp(addr, Receiver { accept, outcome: outcome.clone() })
                .map_err(|e| ClientError::runtime(endpoint, format!("cannot listen: {e}")))?;
            let reply = wait(&mut reactor, endpoint, &outcome, timeout.unwrap_or(NO_TIMEOUT))?;
            print_reply(&reply)
        }
        Mode::From(port, text) => {
            let sender =
                Sender { request: text.into_bytes(), to: addr, retry: None, tries: 0, outcome: outcome.clone() };
            let len = sender.request.len();
            reactor
                .open_udp(any_like(addr, port), sender)
                .map_err(|e| ClientError::runtime(endpoint, format!("cannot send from port {port}: {e}")))?;
            wait(&mut reactor, endpoint, &outcome, Duration::from_secs(10))?;
            eprintln!("reorder: sent {len} bytes from port {port}; the reply goes to port {}", port + 1);
            Ok(())
        }
        Mode::Both(text) => {
            let retry = UdpRetry::default();
            let expected = reorder(text.as_bytes());
            let sender =
                Sender { request: text.into_bytes(), to: addr, retry: Some(retry), tries: 0, outcome: outcome.clone() };
            bind_pair(&mut reactor, addr, &sender, &expected)
                .map_err(|e| ClientError::runtime(endpoint, format!("cannot bind ports P and P+1: {e}")))?;
            let total: Duration = (0..retry.tries).map(|i| retry.first_timeout * 2u32.saturating_pow(i)).sum();
            let reply = wait(&mut reactor, endpoint, &outcome, total + Duration::from_secs(1))?;
            print_reply(&reply)
        }
    }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "reorder",
    summary: "orders a datagram's words longest first, replies to source port + 1",
    lab: "seed 000 Lab 1C",
    defaults: &["udp:7103"],
    options: &[],
    stream: None,
    datagram: Some(|_| Box::new(Reorder::new())),
    client: Some(client),
    client_flags: &[
        ClientFlag {
            name: "--receive",
            value: None,
            help: "only listen at ENDPOINT and print the first datagram (the lab's receiver)",
        },
        ClientFlag { name: "--from", value: Some("PORT"), help: "send once from PORT (the reply goes to PORT + 1)" },
        ClientFlag { name: "--timeout", value: Some("SECS"), help: "with --receive: give up after SECS seconds" },
    ],
    samples: &[Sample { via: Via::DatagramToNextPort, request: b"a ccc bb", answer: Answer::Exact(b"ccc bb a") }],
    raw: None,
};

#[cfg(test)]
mod tests {
    use twirl::testing::DatagramHarness;

    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn longest_first_and_stable_for_ties() {
        assert_eq!(reorder(b"the quick brown fox jumps"), b"quick brown jumps the fox");
        assert_eq!(reorder(b"bb aa c dd a"), b"bb aa dd c a");
        assert_eq!(reorder(b"  one\ttwo \n"), b"one two");
        assert_eq!(reorder(b""), b"");
        // Characters, not bytes: "éé" (4 bytes) is shorter than "abc".
        assert_eq!(reorder("éé abc".as_bytes()), "abc éé".as_bytes());
        assert_eq!(reorder(b"\xff\xfe xyz"), b"xyz \xff\xfe");
    }

    #[test]
    fn replies_to_source_port_plus_one() {
        let mut h = DatagramHarness::new(Reorder::new());
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        h.feed(b"a bbb cc", from);
        let to: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(h.take_sent(), vec![(b"bbb cc a".to_vec(), to)]);
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        h.feed(b"x", v6);
        assert_eq!(h.take_sent(), vec![(b"x".to_vec(), "[::1]:10".parse().unwrap())]);
    }

    #[test]
    fn only_loopback_sources_are_answered_unless_allowed() {
        let mut h = DatagramHarness::new(Reorder { any_source: false });
        h.feed(b"a bb", "192.0.2.7:6999".parse().unwrap());
        assert!(h.take_sent().is_empty(), "a spoofable source elsewhere gets nothing");
        let mut h = DatagramHarness::new(Reorder::any_source());
        h.feed(b"a bb", "192.0.2.7:6999".parse().unwrap());
        assert_eq!(h.take_sent(), vec![(b"bb a".to_vec(), "192.0.2.7:7000".parse().unwrap())]);
    }

    #[test]
    fn port_65535_is_dropped() {
        let mut h = DatagramHarness::new(Reorder::new());
        h.feed(b"a bb", "127.0.0.1:65535".parse().unwrap());
        assert!(h.take_sent().is_empty());
        assert_eq!(reply_address("127.0.0.1:65534".parse().unwrap()), Some("127.0.0.1:65535".parse().unwrap()));
    }

    #[test]
    fn client_argument_forms() {
        assert_eq!(parse_args(&words(&["a", "bb"])), Ok(Mode::Both("a bb".into())));
        assert_eq!(parse_args(&words(&["--from", "40000", "a", "bb"])), Ok(Mode::From(40000, "a bb".into())));
        assert_eq!(parse_args(&words(&["a", "--from", "9", "b"])), Ok(Mode::From(9, "a b".into())));
        assert_eq!(parse_args(&words(&["--receive"])), Ok(Mode::Receive(None)));
        assert_eq!(
            parse_args(&words(&["--receive", "--timeout", "2.5"])),
            Ok(Mode::Receive(Some(Duration::from_millis(2500))))
        );
        assert_eq!(parse_args(&words(&["--", "--from", "x"])), Ok(Mode::Both("--from x".into())));
        for bad in [
            &["--from", "65535", "a"][..],
            &["--from", "0", "a"],
            &["--from", "x", "a"],
            &["--from"],
            &["--receive", "text"],
            &["--receive", "--from", "5"],
            &["--receive", "--timeout", "-1"],
            &["--timeout", "1", "a"],
            &["--bogus", "a"],
            &[],
        ] {
            assert!(parse_args(&words(bad)).is_err(), "{bad:?}");
        }
    }
}
