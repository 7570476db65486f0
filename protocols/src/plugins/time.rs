//! `time`: Exercise 9-1 (seed 001), a simple "time server": the client sends
//! the message `reqtime`, the server sends back its current time, the client
//! displays it; optionally the client sets its own clock from it.
//!
//! # The server
//!
//! The request is the word `reqtime` (a trailing `\n` or `\r\n` is optional).
//! The answer is the server's local time formatted like Python's
//! `time.strftime("%c")` in the C locale, as the handout does:
//! `Sun Nov 22 14:03:07 2026` (chrono `"%a %b %e %H:%M:%S %Y"`), followed by
//! `\n` over TCP. Anything else is answered
//! `error: unknown request, send reqtime` (with `\n` over TCP). Over TCP the
//! connection stays open for more requests; the handout's client sends
//! `reqtime` with no newline and waits, which the shared idle flush of
//! [`crate::text`] answers after 100 ms. Over UDP each datagram is one
//! request and gets one datagram back.
//!
//! # The client, and the optional part without root
//!
//! `twirl client time tcp:HOST:PORT` (or `udp:`) sends `reqtime`, prints the
//! server's time, and instead of setting the clock (which needs root) it
//! estimates how far the server's clock is from ours. The server read its
//! clock somewhere between our send (t0) and our receive (t1), and `%c`
//! truncates to the second, so the server's true time at that moment lies in
//! `[S, S + 1 s)`. The estimate is `S + 0.5 s - (t0 + t1) / 2`, give or take
//! `0.5 s + (t1 - t0) / 2`. Both sides use *local* wall-clock time, so a
//! server in another time zone shows the zone difference too.
//!
//! ```text
//! $ printf reqtime | nc -q1 127.0.0.1 7104
//! Sun Nov 22 14:03:07 2026
//! $ twirl client time udp:127.0.0.1:7104
//! Sun Nov 22 14:03:07 2026
//! offset: +0.31 s ± 0.50 s (server clock minus ours; %c has 1 s resolution; round trip 0.4 ms)
//! ```

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local, NaiveDateTime};
use twirl::endpoint::ClientEndpoint;
use twirl::line::{LineHandler, Lines};
use twirl::{Addr, DatagramProtocol, DatagramTransport};

use crate::exchange::{REPLY_TIMEOUT, UdpRetry, stream_exchange, udp_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};
use crate::text::LineConfig;

/// C's `%c` in the C locale, as chrono spells it.
pub const FORMAT: &str = "%a %b %e %H:%M:%S %Y";

/// The one request the server knows.
pub const REQUEST: &[u8] = b"reqtime";

/// The answer to anything else.
pub const UNKNOWN: &str = "error: unknown request, send reqtime";

/// Longest request line accepted over a stream.
pub const MAX_LINE: usize = 1024;

/// Where the server reads the time (a fixed clock under test).
pub type Clock = fn() -> NaiveDateTime;

/// The server's local wall-clock time.
pub fn local_now() -> NaiveDateTime {
    Local::now().naive_local()
}

/// The answer to one request, without a line ending.
pub fn answer(request: &[u8], clock: Clock) -> String {
    let request = request.strip_suffix(b"\n").unwrap_or(request);
    let request = request.strip_suffix(b"\r").unwrap_or(request);
    if request == REQUEST { clock().format(FORMAT).to_string() } else { UNKNOWN.to_string() }
}

/// The stream server: one answer line per request line.
pub struct TimeLines {
    clock: Clock,
}

impl TimeLines {
    /// A server reading `clock`.
    pub fn new(clock: Clock) -> Self {
        TimeLines { clock }
    }
}

impl LineHandler for TimeLines {
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        t.write(format!("{}\n", answer(line, self.clock)).as_bytes());
    }
}

/// The UDP server: one answer datagram per request datagram.
pub struct TimeUdp {
    clock: Clock,
}

impl TimeUdp {
    /// A server reading `clock`.
    pub fn new(clock: Clock) -> Self {
        TimeUdp { clock }
    }
}

impl DatagramProtocol for TimeUdp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        t.send_to(answer(data, self.clock).as_bytes(), from);
    }
}

/// Parses a server stamp (`Sun Nov 22 14:03:07 2026`).
pub fn parse_stamp(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text.trim(), FORMAT).ok()
}

/// The offset of the server's clock from ours and its uncertainty, in
/// seconds, from its stamp and our local send and receive times.
pub fn estimate_offset(stamp: NaiveDateTime, sent: NaiveDateTime, received: NaiveDateTime) -> (f64, f64) {
    let rtt = (received - sent).as_seconds_f64().max(0.0);
    let midpoint = sent + chrono::Duration::microseconds((rtt * 5e5) as i64);
    let offset = (stamp - midpoint).as_seconds_f64() + 0.5;
    (offset, 0.5 + rtt / 2.0)
}

fn local(t: SystemTime) -> NaiveDateTime {
    DateTime::<Local>::from(t).naive_local()
}

/// `twirl client time ENDPOINT`.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if !args.is_empty() {
        return Err(ClientError::usage("time takes no arguments: twirl client time tcp:HOST:PORT (or udp:)"));
    }
    let sent = SystemTime::now();
    let reply = match endpoint {
        ClientEndpoint::Udp(..) => {
            let accept =
                |d: &[u8]| d.starts_with(b"error:") || std::str::from_utf8(d).ok().and_then(parse_stamp).is_some();
            udp_exchange(endpoint, REQUEST, accept, UdpRetry::default())?
        }
        _ => stream_exchange(endpoint, b"reqtime\n", REPLY_TIMEOUT)?,
    };
    let received = SystemTime::now();
    let text = String::from_utf8_lossy(&reply);
    let text = text.trim_end_matches(['\r', '\n']);
    let Some(stamp) = parse_stamp(text) else {
        let shown: String = text.chars().take(200).collect();
        return Err(ClientError::runtime(endpoint, format!("unexpected reply: {shown:?}")));
    };
    let (offset, plus_minus) = estimate_offset(stamp, local(sent), local(received));
    let rtt = received.duration_since(sent).unwrap_or(Duration::ZERO);
    println!("{text}");
    println!(
        "offset: {offset:+.2} s ± {plus_minus:.2} s (server clock minus ours; %c has 1 s resolution; round trip {:.1} ms)",
        rtt.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The sample check: one time stamp (with or without its newline).
fn is_stamp(got: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(got);
    parse_stamp(&text).map(|_| ()).ok_or_else(|| format!("not a time stamp: {text:?}"))
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "time",
    summary: "answers 'reqtime' with the server's local time (%c)",
    lab: "seed 001 Exercise 9-1",
    defaults: &["tcp:7104", "udp:7104"],
    options: &[crate::options::FLUSH_MS],
    stream: Some(|o| {
        let config = LineConfig::from_options(o).max_line(MAX_LINE);
        Box::new(move |_: &Addr| config.receiver(TimeLines::new(local_now)))
    }),
    datagram: Some(|_| Box::new(TimeUdp::new(local_now))),
    client: Some(client),
    client_flags: &[],
    samples: &[
        Sample { via: Via::Stream, request: b"reqtime\n", answer: Answer::Check(is_stamp) },
        Sample { via: Via::Datagram, request: b"reqtime", answer: Answer::Check(is_stamp) },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::NaiveDate;
    use twirl::testing::{DatagramHarness, Harness};

    use super::*;

    fn fixed() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 2).and_then(|d| d.and_hms_opt(4, 3, 7)).unwrap()
    }

    const STAMP: &str = "Mon Nov  2 04:03:07 2026";

    #[test]
    fn formats_like_c_percent_c_and_parses_back() {
        assert_eq!(answer(b"reqtime", fixed), STAMP);
        assert_eq!(parse_stamp(STAMP), Some(fixed()));
        assert_eq!(
            parse_stamp("Sun Nov 22 14:03:07 2026").map(|d| d.to_string()).as_deref(),
            Some("2026-11-22 14:03:07")
        );
        assert_eq!(parse_stamp("error: x"), None);
    }

    #[test]
    fn request_forms() {
        for ok in [&b"reqtime"[..], b"reqtime\n", b"reqtime\r\n"] {
            assert_eq!(answer(ok, fixed), STAMP);
        }
        for bad in [&b"REQTIME"[..], b"reqtime please", b"", b"\xff", b"reqtime\n\n"] {
            assert_eq!(answer(bad, fixed), UNKNOWN);
        }
    }

    #[test]
    fn tcp_naive_client_and_several_requests() {
        let mut h = Harness::new(LineConfig::default().max_line(MAX_LINE).receiver(TimeLines::new(fixed)));
        h.connect();
        h.feed(b"reqtime");
        assert_eq!(h.take_text(), "");
        h.advance(Duration::from_millis(100));
        assert_eq!(h.take_text(), format!("{STAMP}\n"));
        h.feed(b"reqtime\r\nwhat\nreqtime\n");
        assert_eq!(h.take_text(), format!("{STAMP}\n{UNKNOWN}\n{STAMP}\n"));
        assert!(!h.is_closed());
        h.feed(b"req");
        h.feed_eof();
        assert_eq!(h.take_text(), format!("{UNKNOWN}\n"));
        assert!(h.is_closed());
    }

    #[test]
    fn udp_answers_each_datagram() {
        let mut h = DatagramHarness::new(TimeUdp::new(fixed));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        h.feed(b"reqtime\n", a);
        h.feed(b"time?", a);
        assert_eq!(h.take_sent(), vec![(STAMP.as_bytes().to_vec(), a), (UNKNOWN.as_bytes().to_vec(), a)]);
    }

    #[test]
    fn offset_from_the_round_trip_midpoint() {
        let s = fixed();
        let ms = chrono::Duration::milliseconds;
        // Our clock 2 s behind: sent at S-2.2, received at S-1.8 (midpoint S-2.0).
        let (off, pm) = estimate_offset(s, s - ms(2200), s - ms(1800));
        assert!((off - 2.5).abs() < 1e-6, "{off}");
        assert!((pm - 0.7).abs() < 1e-6, "{pm}");
        let (off, pm) = estimate_offset(s, s + ms(500), s + ms(500));
        assert!(off.abs() < 1e-6 && (pm - 0.5).abs() < 1e-6, "{off} {pm}");
    }
}
