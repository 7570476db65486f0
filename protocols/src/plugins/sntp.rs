//! `sntp`: a Simple Network Time Protocol server (RFC 4330), the service
//! seed 002's `ntplib` example asks a time server for.
//!
//! # What the RFC asks
//!
//! A client sends one 48-byte UDP datagram in *client mode* (mode 3) with
//! its own clock reading in the transmit timestamp (T1). The server answers
//! with 48 bytes in *server mode* (mode 4): the client's T1 copied into the
//! originate field, the time the request arrived (T2, receive timestamp) and
//! the time the reply left (T3, transmit timestamp). The client notes when
//! the reply arrived (T4) and computes
//!
//! ```text
//! offset = ((T2 - T1) + (T3 - T4)) / 2     how far its clock is from the server's
//! delay  = (T4 - T1) - (T3 - T2)           the network round trip
//! ```
//!
//! Timestamps are NTP's 64-bit fixed point: 32 bits of seconds since
//! 1900-01-01T00:00Z, then 32 bits of fraction (units of 2^-32 s, about
//! 233 ps), big-endian. The seconds wrap in February 2036 (era 1); as RFC
//! 4330 says, a value with the top bit clear is read as 2036-2104.
//!
//! # How this plugin answers
//!
//! - Only datagrams of at least 48 bytes, mode 3 and version 1 to 4 get an
//!   answer; anything else (shorter, another mode, including symmetric
//!   mode 1 which RFC 4330 would allow, another version) is dropped and
//!   logged at debug level. Bytes past the 48 (extension fields, a MAC) are
//!   ignored.
//! - The reply is always exactly 48 bytes, one per request: never larger
//!   than the request it answers, so the service amplifies nothing.
//! - Version and poll are copied from the request; originate is the
//!   request's transmit timestamp; receive and transmit come from the system
//!   clock (nanoseconds, so sub-second), read when the datagram is handled
//!   and again just before the reply is sent.
//! - Honest about its source: this server has no reference clock and no
//!   upstream server, only the local system clock. Stratum 1 would claim a
//!   GPS or atomic reference, so it says **stratum 10, reference id
//!   `LOCL`**: what ntpd's undisciplined local clock driver conventionally
//!   announces, a last-resort source any real server beats. The leap
//!   indicator is **0** (no warning) rather than 3 (alarm): LI 3 tells
//!   clients (ntpdate, sntp) to discard the reply outright, and the system
//!   clock is usable, just not traceable; the stratum is where that shows.
//! - Reference timestamp: one second before the receive timestamp, in whole
//!   seconds, like a local-clock driver that keeps re-"synchronising" to
//!   itself. It is always earlier than the transmit timestamp, and never more
//!   than a day old, two things ntpdate checks.
//! - Root delay 0 (no upstream), root dispersion a nominal 10 ms (no upstream
//!   to measure an error against; clients discard servers with large values).
//! - Precision: the log2 of the smallest step between two consecutive reads
//!   of the system clock, measured when the plugin starts (typically -20 to
//!   -25 on Linux, 1 µs to 30 ns), as ntpd measures its own.
//!
//! The clock is a function handed to the protocol, so unit tests run on a
//! manual clock.
//!
//! # The client
//!
//! `twirl client sntp udp:HOST:PORT` sends a version 4 request stamped with
//! its clock, retries with back-off, and takes as the answer only a mode 4
//! reply whose originate timestamp is its own transmit timestamp (the tag
//! that ties a reply to this request; a stray or spoofed datagram fails it).
//! A reply of stratum 0 is a "kiss-o'-death" and is reported as such.
//!
//! ```text
//! $ twirl client sntp udp:127.0.0.1:7123
//! server time: 2025-11-22T02:46:00.123456Z
//! offset: +0.000004 s
//! delay: 0.000121 s
//! server: stratum 10, reference LOCL, version 4, precision 2^-24 s
//! $ python3 -c "import ntplib; r = ntplib.NTPClient().request('127.0.0.1', port=7123); print(r.stratum, ntplib.ref_id_to_text(r.ref_id, r.stratum), r.offset)"
//! 10 76.79.67.76 6.866455078125e-05
//! ```
//!
//! (`ntplib` reads any reference id above stratum 1 as an IPv4 address, as
//! the RFC defines it; 76.79.67.76 is "LOCL" in ASCII. ntpd and chrony use
//! the same convention for a local clock and display it as `.LOCL.`.)
//!
//! `ntpdate -q` and `ntpdig` (ntpsec) only ask port 123, so for them the
//! server runs there (as root): `twirl serve sntp@udp:123`, then
//!
//! ```text
//! $ ntpdate -q 127.0.0.1
//! 2025-11-22 02:46:09.940562 (+0000) +0.000249 +/- 0.000386 127.0.0.1 s10 no-leap
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat};
use twirl::endpoint::ClientEndpoint;
use twirl::{DatagramProtocol, DatagramTransport};

use crate::exchange::{UdpRetry, udp_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::plugins::binarytime::SECONDS_1900_TO_1970;
use crate::plugins::daytime::Clock;
use crate::sample::{Answer, Sample, Via};

/// Bytes in an NTP packet without extension fields, and in every reply.
pub const PACKET_LEN: usize = 48;
/// Client mode: what a request must carry.
pub const MODE_CLIENT: u8 = 3;
/// Server mode: what a reply carries.
pub const MODE_SERVER: u8 = 4;
/// The stratum this server announces: a local, undisciplined clock.
pub const STRATUM: u8 = 10;
/// The reference id at that stratum.
pub const REFERENCE_ID: [u8; 4] = *b"LOCL";
/// Root dispersion: 10 ms in NTP's 16.16 fixed point.
pub const ROOT_DISPERSION: u32 = 655;

/// An NTP timestamp: seconds since 1900 in the high 32 bits, fraction in the low 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp of a system time (era 0 arithmetic, modulo 2^32 seconds).
    pub fn from_system(t: SystemTime) -> Timestamp {
        let nanos: i128 = match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        let ntp_nanos = nanos + i128::from(SECONDS_1900_TO_1970) * 1_000_000_000;
        let secs = ntp_nanos.div_euclid(1_000_000_000);
        let sub = ntp_nanos.rem_euclid(1_000_000_000);
        let frac = ((sub << 32) / 1_000_000_000) as u64;
        Timestamp(((secs.rem_euclid(1 << 32) as u64) << 32) | frac)
    }

    /// The seconds field.
    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The fraction field, in units of 2^-32 s.
    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// Nanoseconds since the Unix epoch: era 0 (1968-2036) if the top bit of
    /// the seconds is set, era 1 (2036-2104) if not (RFC 4330, section 3).
    pub fn unix_nanos(self) -> i128 {
        let era: i128 = if self.seconds() & 0x8000_0000 != 0 { 0 } else { 1 << 32 };
        let secs = i128::from(self.seconds()) + era - i128::from(SECONDS_1900_TO_1970);
        let frac_nanos = (i128::from(self.fraction()) * 1_000_000_000 + (1 << 31)) >> 32; // rounded
        secs * 1_000_000_000 + frac_nanos
    }

    /// RFC 3339 in UTC, to the microsecond.
    pub fn rfc3339(self) -> String {
        let n = self.unix_nanos();
        let secs = n.div_euclid(1_000_000_000) as i64;
        let nanos = n.rem_euclid(1_000_000_000) as u32;
        match DateTime::from_timestamp(secs, nanos) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => format!("{} seconds since 1900", self.seconds()),
        }
    }

    /// `self - earlier` in seconds, correct across the 2036 wrap (modular arithmetic).
    pub fn minus(self, earlier: Timestamp) -> f64 {
        self.0.wrapping_sub(earlier.0) as i64 as f64 / 4_294_967_296.0
    }
}

/// One NTP packet's 48-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Packet {
    /// Leap indicator (2 bits): 0 no warning, 3 clock not synchronised.
    pub leap: u8,
    /// Version number (3 bits).
    pub version: u8,
    /// Mode (3 bits): 3 client, 4 server.
    pub mode: u8,
    /// Stratum: 0 kiss-o'-death, 1 primary reference, 2-15 secondary.
    pub stratum: u8,
    /// Poll interval, log2 seconds.
    pub poll: i8,
    /// Clock precision, log2 seconds.
    pub precision: i8,
    /// Round trip to the primary reference, 16.16 seconds.
    pub root_delay: u32,
    /// Error relative to the primary reference, 16.16 seconds.
    pub root_dispersion: u32,
    /// Reference id: four ASCII characters at stratum 0-1, an address above.
    pub reference_id: [u8; 4],
    /// When the clock was last set.
    pub reference: Timestamp,
    /// The request's transmit timestamp (T1), in a reply.
    pub originate: Timestamp,
    /// When the request arrived (T2).
    pub receive: Timestamp,
    /// When this packet left (T1 in a request, T3 in a reply).
    pub transmit: Timestamp,
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    (u64::from(u32_at(b, i)) << 32) | u64::from(u32_at(b, i + 4))
}

impl Packet {
    /// Reads the header; `None` if fewer than 48 bytes.
    pub fn parse(b: &[u8]) -> Option<Packet> {
        if b.len() < PACKET_LEN {
            return None;
        }
        Some(Packet {
            leap: b[0] >> 6,
            version: (b[0] >> 3) & 7,
            mode: b[0] & 7,
            stratum: b[1],
            poll: b[2] as i8,
            precision: b[3] as i8,
            root_delay: u32_at(b, 4),
            root_dispersion: u32_at(b, 8),
            reference_id: [b[12], b[13], b[14], b[15]],
            reference: Timestamp(u64_at(b, 16)),
            originate: Timestamp(u64_at(b, 24)),
            receive: Timestamp(u64_at(b, 32)),
            transmit: Timestamp(u64_at(b, 40)),
        })
    }

    /// The 48 bytes on the wire, big-endian.
    pub fn to_bytes(&self) -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        b[0] = (self.leap & 3) << 6 | (self.version & 7) << 3 | (self.mode & 7);
        b[1] = self.stratum;
        b[2] = self.poll as u8;
        b[3] = self.precision as u8;
        b[4..8].copy_from_slice(&self.root_delay.to_be_bytes());
        b[8..12].copy_from_slice(&self.root_dispersion.to_be_bytes());
        b[12..16].copy_from_slice(&self.reference_id);
        b[16..24].copy_from_slice(&self.reference.0.to_be_bytes());
        b[24..32].copy_from_slice(&self.originate.0.to_be_bytes());
        b[32..40].copy_from_slice(&self.receive.0.to_be_bytes());
        b[40..48].copy_from_slice(&self.transmit.0.to_be_bytes());
        b
    }

    /// A client request (version 4, mode 3) stamped `transmit`.
    pub fn request(transmit: Timestamp) -> Packet {
        Packet { version: 4, mode: MODE_CLIENT, transmit, ..Packet::default() }
    }
}

/// The system clock's precision as NTP states it: log2 of the smallest
/// step seen between consecutive reads (bounded to a few milliseconds of sampling).
pub fn measure_precision() -> i8 {
    let start = Instant::now();
    let mut best: Option<Duration> = None;
    let mut last = SystemTime::now();
    let mut steps = 0;
    while steps < 200 && start.elapsed() < Duration::from_millis(20) {
        let now = SystemTime::now();
        if let Ok(d) = now.duration_since(last)
            && !d.is_zero()
        {
            best = Some(best.map_or(d, |b| b.min(d)));
            steps += 1;
        }
        last = now;
    }
    match best {
        Some(d) => d.as_secs_f64().log2().ceil().clamp(-32.0, 0.0) as i8,
        None => -6, // a clock that did not move in 20 ms: say 2^-6 s (15.6 ms)
    }
}

/// Why a datagram got no answer (logged at debug level).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Fewer than 48 bytes.
    TooShort(usize),
    /// Not mode 3 (client).
    Mode(u8),
    /// Not version 1 to 4.
    Version(u8),
}

/// Checks a request; returns it if it deserves an answer.
pub fn check_request(data: &[u8]) -> Result<Packet, Refusal> {
    let p = Packet::parse(data).ok_or(Refusal::TooShort(data.len()))?;
    if p.mode != MODE_CLIENT {
        return Err(Refusal::Mode(p.mode));
    }
    if !(1..=4).contains(&p.version) {
        return Err(Refusal::Version(p.version));
    }
    Ok(p)
}

/// The SNTP server.
pub struct Sntp {
    clock: Clock,
    precision: i8,
}

impl Sntp {
    /// A server on the system clock, with its measured precision.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemTime::now), measure_precision())
    }

    /// A server on `clock`, announcing `precision` (log2 seconds).
    pub fn with_clock(clock: Clock, precision: i8) -> Self {
        Sntp { clock, precision }
    }

    /// The reply to `request`, received at `receive`, leaving at `transmit`.
    pub fn reply(&self, request: &Packet, receive: Timestamp, transmit: Timestamp) -> Packet {
        Packet {
            leap: 0,
            version: request.version,
            mode: MODE_SERVER,
            stratum: STRATUM,
            poll: request.poll,
            precision: self.precision,
            root_delay: 0,
            root_dispersion: ROOT_DISPERSION,
            reference_id: REFERENCE_ID,
            reference: Timestamp(u64::from(receive.seconds().wrapping_sub(1)) << 32),
            originate: request.transmit,
            receive,
            transmit,
        }
    }
}

impl Default for Sntp {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramProtocol for Sntp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        let receive = Timestamp::from_system((self.clock)());
        let request = match check_request(data) {
            Ok(r) => r,
            Err(why) => {
                log::debug!("sntp: dropped a datagram of {} bytes from {from}: {why:?}", data.len());
                return;
            }
        };
        let reply = self.reply(&request, receive, Timestamp::from_system((self.clock)()));
        t.send_to(&reply.to_bytes(), from);
    }
}

/// What the client prints, from the reply and the client's own T1 and T4.
pub fn report(reply: &Packet, t1: Timestamp, t4: Timestamp) -> String {
    let (t2, t3) = (reply.receive, reply.transmit);
    let offset = (t2.minus(t1) + t3.minus(t4)) / 2.0;
    let delay = t4.minus(t1) - t3.minus(t2);
    let reference = if reply.stratum <= 1 || reply.reference_id == REFERENCE_ID {
        String::from_utf8_lossy(&reply.reference_id).trim_end_matches('\0').to_string()
    } else {
        let [a, b, c, d] = reply.reference_id;
        format!("{a}.{b}.{c}.{d}")
    };
    let mut out = format!(
        "server time: {}\noffset: {offset:+.6} s\ndelay: {delay:.6} s\nserver: stratum {}, reference {reference}, version {}, precision 2^{} s\n",
        t3.rfc3339(),
        reply.stratum,
        reply.version,
        reply.precision
    );
    if reply.leap == 3 {
        out.push_str("warning: the server says its clock is not synchronised (leap indicator 3)\n");
    }
    out
}

/// Is `d` the answer to the request stamped `t1`: mode 4, originate == t1.
pub fn answers(d: &[u8], t1: Timestamp) -> bool {
    Packet::parse(d).is_some_and(|p| p.mode == MODE_SERVER && p.originate == t1)
}

/// `twirl client sntp udp:HOST:PORT`.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if let Some(extra) = args.first() {
        return Err(ClientError::usage(format!("sntp takes no arguments (got '{extra}')")));
    }
    let t1 = Timestamp::from_system(SystemTime::now());
    let request = Packet::request(t1).to_bytes();
    let reply = udp_exchange(endpoint, &request, move |d| answers(d, t1), UdpRetry::default())?;
    let t4 = Timestamp::from_system(SystemTime::now());
    let Some(reply) = Packet::parse(&reply) else {
        return Err(ClientError::runtime(endpoint, "the reply is shorter than 48 bytes"));
    };
    if reply.stratum == 0 {
        let code = String::from_utf8_lossy(&reply.reference_id).into_owned();
        return Err(ClientError::runtime(endpoint, format!("kiss-o'-death from the server: {code}")));
    }
    print!("{}", report(&reply, t1, t4));
    Ok(())
}

/// The sample request: version 4, mode 3 (client), transmit stamped with a tag.
pub const SAMPLE_REQUEST: [u8; PACKET_LEN] = {
    let mut p = [0u8; PACKET_LEN];
    p[0] = (4 << 3) | MODE_CLIENT;
    p[2] = 6;
    let tag = [0xec, 0, 0, 0, 0, 0, 0x5e, 0xed];
    let mut i = 0;
    while i < 8 {
        p[40 + i] = tag[i];
        i += 1;
    }
    p
};

/// The sample check: a server-mode reply, stratum 10, to [`SAMPLE_REQUEST`].
fn answers_sample(got: &[u8]) -> Result<(), String> {
    let ok = got.len() == PACKET_LEN
        && got[0] == (4 << 3) | MODE_SERVER
        && got[1] == STRATUM
        && got[24..32] == SAMPLE_REQUEST[40..48];
    if ok { Ok(()) } else { Err(format!("not the reply to the sample: {:02x?}", &got[..got.len().min(32)])) }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "sntp",
    summary: "answers SNTP/NTP client requests from the local clock, stratum 10 LOCL (RFC 4330)",
    lab: "RFC 4330; seed 002 ntplib",
    defaults: &["udp:7123"],
    options: &[],
    stream: None,
    datagram: Some(|_| Box::new(Sntp::new())),
    client: Some(client),
    client_flags: &[],
    samples: &[Sample { via: Via::Datagram, request: &SAMPLE_REQUEST, answer: Answer::Check(answers_sample) }],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use twirl::testing::DatagramHarness;

    /// 2025-11-22T02:46:00Z.
    const NOW_UNIX: u64 = 1_763_779_560;

    /// A manual wall clock: starts at NOW_UNIX + 0.25 s and moves 1 ms per read.
    fn manual_clock() -> (Clock, Rc<Cell<u32>>) {
        let reads = Rc::new(Cell::new(0u32));
        let r = reads.clone();
        let clock = move || {
            let n = r.get();
            r.set(n + 1);
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX) + Duration::from_millis(250 + u64::from(n))
        };
        (Box::new(clock), reads)
    }

    fn request(version: u8, mode: u8, poll: i8, transmit: u64) -> [u8; PACKET_LEN] {
        let mut p = Packet::request(Timestamp(transmit));
        p.version = version;
        p.mode = mode;
        p.poll = poll;
        p.to_bytes()
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40123".parse().unwrap()
    }

    #[test]
    fn timestamps_are_ntp_fixed_point() {
        let epoch = Timestamp::from_system(SystemTime::UNIX_EPOCH);
        assert_eq!(epoch, Timestamp(2_208_988_800 << 32));
        let half = Timestamp::from_system(SystemTime::UNIX_EPOCH + Duration::from_millis(500));
        assert_eq!(half.fraction(), 0x8000_0000);
        assert_eq!(half.unix_nanos(), 500_000_000);
        let t = SystemTime::UNIX_EPOCH + Duration::new(NOW_UNIX, 123_456_789);
        let ts = Timestamp::from_system(t);
        assert_eq!(u64::from(ts.seconds()), NOW_UNIX + 2_208_988_800);
        assert!((ts.unix_nanos() - i128::from(NOW_UNIX) * 1_000_000_000 - 123_456_789).abs() <= 1);
        assert_eq!(ts.rfc3339(), "2025-11-22T02:46:00.123456Z");
        // Era 1: 2036-02-07T06:28:16Z is seconds 0 again.
        let wrap = SystemTime::UNIX_EPOCH + Duration::from_secs((1 << 32) - 2_208_988_800);
        assert_eq!(Timestamp::from_system(wrap), Timestamp(0));
        assert_eq!(Timestamp(0).rfc3339(), "2036-02-07T06:28:16.000000Z");
        assert_eq!(Timestamp(0).minus(Timestamp(u64::MAX << 32)), 1.0, "differences work across the wrap");
    }

    #[test]
    fn packet_layout_round_trips() {
        let p = Packet {
            leap: 3,
            version: 4,
            mode: 4,
            stratum: 10,
            poll: 6,
            precision: -20,
            root_delay: 1,
            root_dispersion: 2,
            reference_id: *b"LOCL",
            reference: Timestamp(3),
            originate: Timestamp(4),
            receive: Timestamp(5),
            transmit: Timestamp(6),
        };
        let b = p.to_bytes();
        assert_eq!(b[0], 0b11_100_100);
        assert_eq!(&b[1..4], &[10, 6, 0xec]);
        assert_eq!(&b[12..16], b"LOCL");
        assert_eq!(Packet::parse(&b), Some(p));
        assert_eq!(Packet::parse(&b[..47]), None);
        // ntplib's default request: version 2, mode 3, byte 0 = 0x13.
        assert_eq!(request(2, 3, 0, 0)[0], 0x13);
        assert_eq!(Packet::request(Timestamp(0)).to_bytes()[0], 0x23);
    }

    #[test]
    fn answers_a_client_request_per_rfc_4330() {
        let (clock, reads) = manual_clock();
        let mut h = DatagramHarness::new(Sntp::with_clock(clock, -20));
        let t1 = 0xdead_beef_0123_4567;
        h.feed(&request(4, 3, 6, t1), peer());
        let sent = h.take_sent();
        assert_eq!(sent.len(), 1);
        let (bytes, to) = &sent[0];
        assert_eq!(*to, peer());
        assert_eq!(bytes.len(), PACKET_LEN);
        let r = Packet::parse(bytes).unwrap();
        assert_eq!((r.leap, r.version, r.mode), (0, 4, 4));
        assert_eq!((r.stratum, r.poll, r.precision), (10, 6, -20));
        assert_eq!(r.reference_id, *b"LOCL");
        assert_eq!((r.root_delay, r.root_dispersion), (0, 655));
        assert_eq!(r.originate, Timestamp(t1), "originate is the request's transmit timestamp");
        assert_eq!(reads.get(), 2, "the clock is read on arrival and before sending");
        let base = Timestamp::from_system(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX));
        assert_eq!(r.receive.minus(base), 0.25, "sub-second receive timestamp");
        assert!((r.transmit.minus(base) - 0.251).abs() < 1e-9, "transmit read after receive");
        assert_eq!(r.reference, Timestamp(u64::from(base.seconds() - 1) << 32));
        assert!(r.reference.minus(r.transmit) < 0.0, "reference is before transmit (ntpdate checks)");
    }

    #[test]
    fn version_and_poll_are_copied_for_versions_1_to_4() {
        let (clock, _) = manual_clock();
        let mut h = DatagramHarness::new(Sntp::with_clock(clock, -20));
        for v in 1..=4 {
            h.feed(&request(v, 3, 10, 7), peer());
            let sent = h.take_sent();
            let r = Packet::parse(&sent[0].0).unwrap();
            assert_eq!((r.version, r.mode, r.poll), (v, 4, 10));
        }
        // Extension fields or a MAC after the header are ignored; the reply stays 48 bytes.
        let mut long = request(4, 3, 4, 9).to_vec();
        long.extend_from_slice(&[0xaa; 100]);
        h.feed(&long, peer());
        let sent = h.take_sent();
        assert_eq!(sent[0].0.len(), PACKET_LEN);
    }

    #[test]
    fn short_other_mode_and_other_version_are_dropped() {
        let (clock, _) = manual_clock();
        let mut h = DatagramHarness::new(Sntp::with_clock(clock, -20));
        h.feed(b"", peer());
        h.feed(&request(4, 3, 0, 1)[..47], peer());
        h.feed(b"what time is it?", peer());
        for mode in [0, 1, 2, 4, 5, 6, 7] {
            h.feed(&request(4, mode, 0, 1), peer());
        }
        h.feed(&request(0, 3, 0, 1), peer());
        h.feed(&request(5, 3, 0, 1), peer());
        h.feed(&request(7, 3, 0, 1), peer());
        assert!(h.take_sent().is_empty());
        assert_eq!(check_request(b"x"), Err(Refusal::TooShort(1)));
        assert_eq!(check_request(&request(4, 1, 0, 1)), Err(Refusal::Mode(1)));
        assert_eq!(check_request(&request(6, 3, 0, 1)), Err(Refusal::Version(6)));
    }

    #[test]
    fn client_computes_offset_and_delay_per_rfc_4330() {
        let at = |s: f64| Timestamp((s * 4_294_967_296.0) as u64 + (3_972_768_360u64 << 32));
        // Client 0.5 s behind: sent at 0 (its clock), server received at 0.55 and
        // answered at 0.56 (its clock), client got it at 0.12 (its clock).
        let (t1, t2, t3, t4) = (at(0.0), at(0.55), at(0.56), at(0.12));
        let reply = Packet {
            version: 4,
            mode: 4,
            stratum: 10,
            reference_id: *b"LOCL",
            receive: t2,
            transmit: t3,
            originate: t1,
            precision: -20,
            ..Packet::default()
        };
        let text = report(&reply, t1, t4);
        assert!(text.contains("offset: +0.495000 s"), "{text}");
        assert!(text.contains("delay: 0.110000 s"), "{text}");
        assert!(text.contains("stratum 10, reference LOCL, version 4, precision 2^-20 s"), "{text}");
        assert!(text.starts_with("server time: 2025-11-22T02:46:00.560000Z\n"), "{text}");
        let upstream = Packet { stratum: 2, reference_id: [192, 0, 2, 1], ..reply };
        assert!(report(&upstream, t1, t4).contains("reference 192.0.2.1"));
    }

    #[test]
    fn client_accepts_only_its_own_answer() {
        let t1 = Timestamp(42);
        let good = Packet { mode: 4, originate: t1, ..Packet::default() }.to_bytes();
        assert!(answers(&good, t1));
        assert!(!answers(&good[..47], t1));
        assert!(!answers(&Packet { mode: 3, originate: t1, ..Packet::default() }.to_bytes(), t1));
        assert!(!answers(&Packet { mode: 4, originate: Timestamp(43), ..Packet::default() }.to_bytes(), t1));
    }

    #[test]
    fn measured_precision_is_plausible() {
        let p = measure_precision();
        assert!((-32..=-6).contains(&p), "{p}");
    }
}
