//! `binarytime`: the Time Protocol (RFC 868), and seed 004's byte-order lesson.
//!
//! RFC 868 sends the time as a machine reads it, not as a person does: one
//! 32-bit unsigned number, the seconds since 1900-01-01T00:00Z, in network
//! byte order (big-endian, what `htonl` produces). Over TCP the server sends
//! those 4 bytes as soon as the client connects, then closes; over UDP any
//! datagram is answered with one 4-byte datagram. That fixed, tiny reply is
//! also why the UDP side is safe to expose: it cannot amplify traffic.
//!
//! Read the 4 bytes little-endian and the year comes out wrong by centuries;
//! that is the whole of seed 004's `htonl`/`ntohl` slide in one service.
//!
//! 32 bits of seconds run out on 2036-02-07T06:28:16Z, when the count wraps
//! to 0 (era 1). The client decodes as RFC 4330 does for NTP: a value with
//! its top bit set is in 1968-2036, one without it is in 2036-2104. The
//! server sends the count modulo 2^32, which is exactly that convention.
//!
//! ```text
//! $ twirl client binarytime tcp:127.0.0.1:7037
//! 2025-11-22T02:46:00Z
//! $ twirl client binarytime udp:127.0.0.1:7037
//! 2025-11-22T02:46:00Z
//! ```

use std::net::SocketAddr;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat};
use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, DatagramProtocol, DatagramTransport, Protocol, Transport};

use crate::exchange::{REPLY_TIMEOUT, UdpRetry, stream_exchange, udp_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::plugins::daytime::Clock;
use crate::sample::{Answer, Sample, Via};

/// Seconds from 1900-01-01 (RFC 868's and NTP's epoch) to 1970-01-01 (Unix's).
pub const SECONDS_1900_TO_1970: i64 = 2_208_988_800;

/// Whole seconds since the Unix epoch, rounded down (negative before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 { -secs - 1 } else { -secs }
        }
    }
}

/// The RFC 868 value for `t`: seconds since 1900, modulo 2^32.
pub fn time_value(t: SystemTime) -> u32 {
    (unix_seconds(t) + SECONDS_1900_TO_1970).rem_euclid(1 << 32) as u32
}

/// Unix seconds for an RFC 868 value: 1968-2036 if the top bit is set, else 2036-2104.
pub fn value_to_unix(value: u32) -> i64 {
    let era = if value & 0x8000_0000 != 0 { 0 } else { 1i64 << 32 };
    i64::from(value) + era - SECONDS_1900_TO_1970
}

/// The value as the client prints it: RFC 3339, UTC, whole seconds.
pub fn rfc3339(value: u32) -> String {
    match DateTime::from_timestamp(value_to_unix(value), 0) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => format!("{value} seconds since 1900"),
    }
}

/// The Time Protocol over a stream: 4 bytes on connect, then close.
pub struct BinaryTime {
    clock: Clock,
}

impl BinaryTime {
    /// A server reading the system clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemTime::now))
    }

    /// A server reading `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        BinaryTime { clock }
    }
}

impl Default for BinaryTime {
    fn default() -> Self {
        Self::new()
    }
}

impl Protocol for BinaryTime {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(&time_value((self.clock)()).to_be_bytes());
        t.lose_connection();
    }

    /// Whatever the client sends is ignored (RFC 868).
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
}

/// The Time Protocol over UDP: a 4-byte datagram for every datagram.
pub struct BinaryTimeUdp {
    clock: Clock,
}

impl BinaryTimeUdp {
    /// A server reading the system clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemTime::now))
    }

    /// A server reading `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        BinaryTimeUdp { clock }
    }
}

impl Default for BinaryTimeUdp {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramProtocol for BinaryTimeUdp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        log::debug!("time request of {} bytes from {from}", data.len());
        t.send_to(&time_value((self.clock)()).to_be_bytes(), from);
    }
}

/// `twirl client binarytime ENDPOINT`: prints the decoded time.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if let Some(extra) = args.first() {
        return Err(ClientError::usage(format!("binarytime takes no arguments (got '{extra}')")));
    }
    let reply = match endpoint {
        ClientEndpoint::Udp(..) => udp_exchange(endpoint, b"", |d| d.len() == 4, UdpRetry::default())?,
        _ => stream_exchange(endpoint, b"", REPLY_TIMEOUT)?,
    };
    let bytes: [u8; 4] = reply
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::runtime(endpoint, format!("expected 4 bytes (RFC 868), got {}", reply.len())))?;
    println!("{}", rfc3339(u32::from_be_bytes(bytes)));
    Ok(())
}

/// The sample check: four bytes, within 5 s of this machine's clock.
fn is_now(got: &[u8]) -> Result<(), String> {
    let v: [u8; 4] = got.try_into().map_err(|_| format!("{} bytes, not 4", got.len()))?;
    let off = value_to_unix(u32::from_be_bytes(v)) - unix_seconds(SystemTime::now());
    if off.abs() < 5 { Ok(()) } else { Err(format!("{off} s away from now")) }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "binarytime",
    summary: "sends the time as 4 big-endian bytes, seconds since 1900 (RFC 868)",
    lab: "RFC 868; seed 004 byte order (htonl/ntohl)",
    defaults: &["tcp:7037", "udp:7037"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| BinaryTime::new())),
    datagram: Some(|_| Box::new(BinaryTimeUdp::new())),
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

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn values_from_rfc_868() {
        // RFC 868's own table.
        assert_eq!(time_value(SystemTime::UNIX_EPOCH - Duration::from_secs(2_208_988_800)), 0);
        assert_eq!(time_value(SystemTime::UNIX_EPOCH), 2_208_988_800);
        assert_eq!(value_to_unix(2_208_988_800), 0);
        assert_eq!(rfc3339(2_398_291_200), "1976-01-01T00:00:00Z");
        assert_eq!(rfc3339(2_524_521_600), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(2_629_584_000), "1983-05-01T00:00:00Z");
        // Rounds down within a second, and before 1970 too.
        assert_eq!(time_value(at(10) + Duration::from_millis(999)), 2_208_988_810);
        assert_eq!(time_value(SystemTime::UNIX_EPOCH - Duration::from_millis(500)), 2_208_988_799);
    }

    #[test]
    fn era_1_after_2036() {
        let wrap = (1u64 << 32) - 2_208_988_800; // 2036-02-07T06:28:16Z in Unix seconds
        assert_eq!(time_value(at(wrap - 1)), u32::MAX);
        assert_eq!(time_value(at(wrap)), 0);
        assert_eq!(rfc3339(0), "2036-02-07T06:28:16Z");
        assert_eq!(rfc3339(u32::MAX), "2036-02-07T06:28:15Z");
        assert_eq!(value_to_unix(time_value(at(4_000_000_000))), 4_000_000_000);
    }

    #[test]
    fn tcp_sends_four_big_endian_bytes_and_closes() {
        let mut h = Harness::new(BinaryTime::with_clock(Box::new(|| at(1_763_779_560))));
        h.connect();
        let out = h.take_output();
        assert_eq!(out, (1_763_779_560u32 + 2_208_988_800).to_be_bytes());
        assert_eq!(rfc3339(u32::from_be_bytes([out[0], out[1], out[2], out[3]])), "2025-11-22T02:46:00Z");
        // Read little-endian, as a careless client would: a different century.
        let wrong = u32::from_le_bytes([out[0], out[1], out[2], out[3]]);
        assert!(!rfc3339(wrong).starts_with("2025"), "{}", rfc3339(wrong));
        assert!(h.is_closed());
    }

    #[test]
    fn udp_answers_any_datagram_with_four_bytes() {
        let mut h = DatagramHarness::new(BinaryTimeUdp::with_clock(Box::new(|| at(0))));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        h.feed(b"", a);
        h.feed(&[7u8; 1000], a);
        let sent = h.take_sent();
        assert_eq!(sent, vec![(2_208_988_800u32.to_be_bytes().to_vec(), a); 2]);
    }
}
