//! `daytime`: the Daytime Protocol (RFC 867).
//!
//! RFC 867 asks for the simplest possible time service: a server that, as
//! soon as a TCP client connects, sends the current date and time as ASCII
//! text and closes, ignoring anything the client sends; over UDP, any
//! datagram is answered with one datagram carrying the same text. The RFC
//! leaves the format open and suggests something a person can read, such as
//! `Weekday, Month Day, Year HH:MM:SS-Zone`.
//!
//! This plugin uses exactly that shape, in UTC so the answer does not depend
//! on where the server runs: chrono's `"%A, %B %d, %Y %H:%M:%S-%Z"`, then
//! `\r\n`. Over TCP the line is written from `connection_made` and the
//! connection closed once it is flushed; over UDP the reply is that same
//! line, whatever the request held (even an empty datagram). The reply is
//! at most about 50 bytes and one datagram per request, so the service
//! cannot be used to amplify traffic towards a spoofed address.
//!
//! The clock is a function handed to the protocol, so unit tests run on a
//! fixed time.
//!
//! ```text
//! $ twirl client daytime tcp:127.0.0.1:7013
//! Saturday, November 22, 2025 02:46:00-UTC
//! $ twirl client daytime udp:127.0.0.1:7013
//! Saturday, November 22, 2025 02:46:00-UTC
//! ```

use std::net::SocketAddr;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, DatagramProtocol, DatagramTransport, Protocol, Transport};

use crate::exchange::{REPLY_TIMEOUT, UdpRetry, stream_exchange, udp_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};

/// The reply format (chrono `strftime` syntax), as RFC 867 suggests, in UTC.
pub const FORMAT: &str = "%A, %B %d, %Y %H:%M:%S-%Z";

/// Where the time comes from: the system clock, or a fixed one under test.
pub type Clock = Box<dyn Fn() -> SystemTime>;

/// The daytime line for `now`, with its `\r\n`.
pub fn daytime_line(now: SystemTime) -> String {
    let t: DateTime<Utc> = now.into();
    format!("{}\r\n", t.format(FORMAT))
}

/// Daytime over a stream: the line on connect, then close.
pub struct Daytime {
    clock: Clock,
}

impl Daytime {
    /// A server reading the system clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemTime::now))
    }

    /// A server reading `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Daytime { clock }
    }
}

impl Default for Daytime {
    fn default() -> Self {
        Self::new()
    }
}

impl Protocol for Daytime {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(daytime_line((self.clock)()).as_bytes());
        t.lose_connection();
    }

    /// Whatever the client sends is ignored (RFC 867).
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

/// Daytime over UDP: one line-sized datagram per datagram received.
pub struct DaytimeUdp {
    clock: Clock,
}

impl DaytimeUdp {
    /// A server reading the system clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemTime::now))
    }

    /// A server reading `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        DaytimeUdp { clock }
    }
}

impl Default for DaytimeUdp {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramProtocol for DaytimeUdp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        log::debug!("daytime request of {} bytes from {from}", data.len());
        t.send_to(daytime_line((self.clock)()).as_bytes(), from);
    }
}

/// `twirl client daytime ENDPOINT`: prints the server's line.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if let Some(extra) = args.first() {
        return Err(ClientError::usage(format!("daytime takes no arguments (got '{extra}')")));
    }
    let reply = match endpoint {
        ClientEndpoint::Udp(..) => udp_exchange(endpoint, b"", |_| true, UdpRetry::default())?,
        _ => stream_exchange(endpoint, b"", REPLY_TIMEOUT)?,
    };
    let text = String::from_utf8_lossy(&reply);
    let line = text.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(ClientError::runtime(endpoint, "the server closed without sending the time"));
    }
    println!("{line}");
    Ok(())
}

/// The sample check: a daytime line (in UTC) within 5 s of this machine's clock.
fn is_now(got: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(got).map_err(|_| format!("not UTF-8: {got:?}"))?;
    let line = text.strip_suffix("\r\n").ok_or_else(|| format!("{text:?} does not end with CRLF"))?;
    let t = chrono::NaiveDateTime::parse_from_str(line, "%A, %B %d, %Y %H:%M:%S-UTC")
        .map_err(|e| format!("{line:?}: {e}"))?;
    let now = chrono::Utc::now().timestamp();
    if (t.and_utc().timestamp() - now).abs() < 5 { Ok(()) } else { Err(format!("{line} is not now")) }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "daytime",
    summary: "sends the date and time as a line of text, then closes (RFC 867)",
    lab: "RFC 867",
    defaults: &["tcp:7013", "udp:7013"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| Daytime::new())),
    datagram: Some(|_| Box::new(DaytimeUdp::new())),
    client: Some(client),
    client_flags: &[],
    samples: &[
        Sample { via: Via::Stream, request: b"", answer: Answer::Check(is_now) },
        Sample { via: Via::Datagram, request: b"", answer: Answer::Check(is_now) },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use twirl::testing::{DatagramHarness, Harness};

    /// RFC 867's example instant, February 22, 1982 17:37:43 (here UTC); the RFC
    /// calls it a Tuesday, the calendar says Monday.
    fn rfc_example() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(383_247_463)
    }

    #[test]
    fn format_follows_the_rfc_example() {
        assert_eq!(daytime_line(rfc_example()), "Monday, February 22, 1982 17:37:43-UTC\r\n");
        let line = daytime_line(SystemTime::UNIX_EPOCH + Duration::from_secs(383_333_863));
        assert_eq!(line, "Tuesday, February 23, 1982 17:37:43-UTC\r\n");
    }

    #[test]
    fn tcp_sends_the_line_on_connect_and_closes() {
        let mut h = Harness::new(Daytime::with_clock(Box::new(rfc_example)));
        h.connect();
        assert_eq!(h.take_text(), "Monday, February 22, 1982 17:37:43-UTC\r\n");
        assert!(h.is_closed());
        assert!(h.lost_reason().is_some_and(|r| r.is_clean()));
    }

    #[test]
    fn udp_answers_any_datagram_with_one_bounded_line() {
        let mut h = DatagramHarness::new(DaytimeUdp::with_clock(Box::new(rfc_example)));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        h.feed(b"", a);
        h.feed(&[0u8; 1400], b);
        let sent = h.take_sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], (b"Monday, February 22, 1982 17:37:43-UTC\r\n".to_vec(), a));
        assert_eq!(sent[1].1, b);
        assert_eq!(sent[1].0, sent[0].0, "the request's size does not change the reply");
        // The longest weekday and month names still make a small reply.
        let longest = daytime_line(SystemTime::UNIX_EPOCH + Duration::from_secs(1_695_772_800)); // a Wednesday in September
        assert!(longest.starts_with("Wednesday, September"), "{longest}");
        assert!(longest.len() <= 64, "{longest}");
    }
}
