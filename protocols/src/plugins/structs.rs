//! `struct`: seed 000's Lab 1D, byte order with `struct.pack`.
//!
//! The lab packs `(1, 2, -3, -4)` as an unsigned short, an unsigned int, a
//! signed short and a signed int, sends the bytes over TCP, and has the
//! server unpack them twice, once as little-endian and once as big-endian,
//! then asks four questions about what comes out.
//!
//! A record here is exactly what Python's `struct.pack('!HIhi', ...)` makes:
//! 12 bytes, `u16 u32 i16 i32`, no padding. The server cuts the stream into
//! records (a record may arrive split across reads, or several in one), and
//! for each complete one logs and replies two lines, the record read as
//! big-endian and as little-endian. If the peer half-closes with a partial
//! record left, that gets an `error: ...` line, then the server closes.
//!
//! The client packs four numbers (default `1 2 -3 -4`) in network order, or
//! little-endian with `--little`, refusing a value its field cannot hold
//! before anything is sent (a usage error, exit 2), and prints the reply:
//!
//! ```text
//! $ twirl client struct tcp:127.0.0.1:7105
//! big-endian: 1 2 -3 -4
//! little-endian: 256 33554432 -513 -50331649
//! $ twirl client struct tcp:127.0.0.1:7105 --little
//! big-endian: 256 33554432 -513 -50331649
//! little-endian: 1 2 -3 -4
//! $ twirl client struct tcp:127.0.0.1:7105 70000 2 -3 -4
//! twirl: 70000 does not fit A, an unsigned short (u16: 0 to 65535)
//! ```
//!
//! # The lab's questions, answered with this output
//!
//! **Q1. Which unpacked are the same?** The unpack that uses the byte order
//! the client packed with gives back the values sent: with the default
//! (network order) that is the big-endian line, `1 2 -3 -4`; with `--little`
//! it is the little-endian line. The other line reads every field's bytes
//! backwards: `00 01` is 1 one way and 256 the other, `ff fd` is -3 or -513.
//! No field of this record reads the same both ways; only values whose
//! bytes are a palindrome would (0, -1, 257 as a u16, ...).
//!
//! **Q2. Why, and does the host's endianness matter?** Because the byte
//! order is named in the format, not taken from the machine: Python's `!`,
//! `>` and `<` (here Rust's `to_be_bytes` and `from_le_bytes`) mean the same
//! bytes on every host, so the output above is the same on x86 and on a
//! big-endian machine. The host's order matters only with native formats
//! (Python's default `@` or `=`): then an x86 client sends little-endian and
//! the little-endian line would be the right one. `@` also pads for
//! alignment, so `'HIhi'` packs 16 bytes, not 12, and this server would see
//! a record and a third of another.
//!
//! **Q3. Client on a little-endian machine, server on a big-endian one: how
//! do the files change?** With the byte order in the format string, not at
//! all: the bytes on the wire and both output lines are identical, because
//! neither program asks the host. With native formats, the little-endian
//! client would send what `--little` sends here, and a server that trusted
//! its own (big-endian) order would print `256 33554432 -513 -50331649`;
//! both files would have to change to name one order (`!`).
//!
//! **Q4. How can I be sure data is received properly on any machine?** Make
//! the byte order part of the protocol: network byte order (big-endian),
//! converted on the way out (`htons`/`htonl`, `struct.pack('!...')`,
//! `to_be_bytes`) and back on the way in (`ntohs`/`ntohl`, `'!'`,
//! `from_be_bytes`), with fixed field sizes and no padding, and frame the
//! stream (here: records of exactly 12 bytes) since TCP may split them.

use std::fmt::Write as _;

use twirl::endpoint::ClientEndpoint;
use twirl::{Addr, Protocol, Transport};

use crate::client_args::ClientFlag;
use crate::exchange::{REPLY_TIMEOUT, print_reply, stream_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};

/// Bytes in one record: `u16 u32 i16 i32`, as `struct.pack('!HIhi')` makes.
pub const RECORD_LEN: usize = 12;

/// One record's four fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The unsigned short.
    pub a: u16,
    /// The unsigned int.
    pub b: u32,
    /// The signed short.
    pub c: i16,
    /// The signed int.
    pub d: i32,
}

impl Record {
    /// Packs in network order (big-endian), like `struct.pack('!HIhi', ...)`.
    pub fn to_be_bytes(self) -> [u8; RECORD_LEN] {
        let mut out = [0; RECORD_LEN];
        out[0..2].copy_from_slice(&self.a.to_be_bytes());
        out[2..6].copy_from_slice(&self.b.to_be_bytes());
        out[6..8].copy_from_slice(&self.c.to_be_bytes());
        out[8..12].copy_from_slice(&self.d.to_be_bytes());
        out
    }

    /// Packs little-endian, like `struct.pack('<HIhi', ...)`.
    pub fn to_le_bytes(self) -> [u8; RECORD_LEN] {
        let mut out = [0; RECORD_LEN];
        out[0..2].copy_from_slice(&self.a.to_le_bytes());
        out[2..6].copy_from_slice(&self.b.to_le_bytes());
        out[6..8].copy_from_slice(&self.c.to_le_bytes());
        out[8..12].copy_from_slice(&self.d.to_le_bytes());
        out
    }

    /// Unpacks as big-endian (`struct.unpack('!HIhi', ...)`).
    pub fn from_be_bytes(b: &[u8; RECORD_LEN]) -> Record {
        Record {
            a: u16::from_be_bytes([b[0], b[1]]),
            b: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            c: i16::from_be_bytes([b[6], b[7]]),
            d: i32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    /// Unpacks as little-endian (`struct.unpack('<HIhi', ...)`).
    pub fn from_le_bytes(b: &[u8; RECORD_LEN]) -> Record {
        Record {
            a: u16::from_le_bytes([b[0], b[1]]),
            b: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            c: i16::from_le_bytes([b[6], b[7]]),
            d: i32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// The server's reply to one record: its big-endian and little-endian readings.
pub fn describe(bytes: &[u8; RECORD_LEN]) -> String {
    let be = Record::from_be_bytes(bytes);
    let le = Record::from_le_bytes(bytes);
    format!("big-endian: {} {} {} {}\nlittle-endian: {} {} {} {}\n", be.a, be.b, be.c, be.d, le.a, le.b, le.c, le.d)
}

/// The server side: cuts the stream into 12-byte records and answers each.
#[derive(Default)]
pub struct StructServer {
    /// The bytes of a record not complete yet (always fewer than 12).
    partial: Vec<u8>,
}

impl StructServer {
    fn answer(&self, record: &[u8; RECORD_LEN], t: &mut dyn Transport) {
        let text = describe(record);
        let mut hex = String::with_capacity(RECORD_LEN * 3);
        for b in record {
            let _ = write!(hex, "{b:02x} ");
        }
        log::debug!("{}: record {}-> {}", t.peer_addr(), hex, text.trim_end().replace('\n', ", "));
        t.progress();
        t.write(text.as_bytes());
    }
}

impl Protocol for StructServer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        // Whole records are what the idle timeout counts (see `progress`).
        t.progress();
    }

    fn data_received(&mut self, mut data: &[u8], t: &mut dyn Transport) {
        if !self.partial.is_empty() {
            let take = (RECORD_LEN - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            let Ok(record) = <[u8; RECORD_LEN]>::try_from(self.partial.as_slice()) else { return };
            self.answer(&record, t);
            self.partial.clear();
        }
        let mut chunks = data.chunks_exact(RECORD_LEN);
        for chunk in &mut chunks {
            if let Ok(record) = <&[u8; RECORD_LEN]>::try_from(chunk) {
                self.answer(record, t);
            }
        }
        self.partial.extend_from_slice(chunks.remainder());
    }

    fn read_eof(&mut self, t: &mut dyn Transport) {
        if !self.partial.is_empty() {
            let n = self.partial.len();
            log::debug!("{}: stream ended inside a record ({n} of {RECORD_LEN} bytes)", t.peer_addr());
            let msg = format!(
                "error: the stream ended inside a record: {n} byte{} left over, a record is {RECORD_LEN} (u16 u32 i16 i32)\n",
                if n == 1 { "" } else { "s" }
            );
            t.write(msg.as_bytes());
        }
        t.lose_connection();
    }
}

/// The values the client sends when none are given: the lab's.
pub const LAB_VALUES: Record = Record { a: 1, b: 2, c: -3, d: -4 };

/// Parses `[--little] [A B C D]` into the record and whether to pack little-endian.
///
/// Every refusal names the word at fault: a value out of its field's range,
/// something that is not an integer, an unknown option, or the wrong count.
pub fn parse_args(args: &[String]) -> Result<(Record, bool), String> {
    let mut little = false;
    let mut values = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => values.extend(it.by_ref().map(String::as_str)),
            "--little" | "-l" => little = true,
            "--big" => little = false,
            s if s.starts_with("--") => return Err(format!("unknown option '{s}' (expected --little)")),
            s => values.push(s),
        }
    }
    if values.is_empty() {
        return Ok((LAB_VALUES, little));
    }
    if values.len() != 4 {
        return Err(format!(
            "expected four values A B C D (u16 u32 i16 i32), got {}: {}",
            values.len(),
            values.join(" ")
        ));
    }
    /// One field: `word` parsed and checked against the range of `T`.
    fn field<T: TryFrom<i128> + std::fmt::Display>(
        word: &str,
        name: &str,
        kind: &str,
        range: (T, T),
    ) -> Result<T, String> {
        let n: i128 = word.parse().map_err(|_| format!("'{word}' for {name} is not an integer"))?;
        let (min, max) = range;
        T::try_from(n).map_err(|_| format!("{word} does not fit {name}, {kind} {min} to {max})"))
    }
    let record = Record {
        a: field(values[0], "A", "an unsigned short (u16:", (u16::MIN, u16::MAX))?,
        b: field(values[1], "B", "an unsigned int (u32:", (u32::MIN, u32::MAX))?,
        c: field(values[2], "C", "a signed short (i16:", (i16::MIN, i16::MAX))?,
        d: field(values[3], "D", "a signed int (i32:", (i32::MIN, i32::MAX))?,
    };
    Ok((record, little))
}

/// `twirl client struct ENDPOINT [--little] [A B C D]`.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    let (record, little) = parse_args(args).map_err(ClientError::usage)?;
    let bytes = if little { record.to_le_bytes() } else { record.to_be_bytes() };
    let reply = stream_exchange(endpoint, &bytes, REPLY_TIMEOUT)?;
    print_reply(&reply)
}

/// The lab's record, `struct.pack('!HIhi', 1, 2, -3, -4)`: the sample request.
pub const LAB_RECORD: [u8; RECORD_LEN] = [0, 1, 0, 0, 0, 2, 0xff, 0xfd, 0xff, 0xff, 0xff, 0xfc];

/// The server's two lines for [`LAB_RECORD`].
pub const LAB_LINES: &str = "big-endian: 1 2 -3 -4\nlittle-endian: 256 33554432 -513 -50331649\n";

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "struct",
    summary: "unpacks 12-byte u16/u32/i16/i32 records as big- and little-endian (Lab 1D)",
    lab: "seed 000 Lab 1D (struct.pack, byte order); seed 004 htonl/ntohl",
    defaults: &["tcp:7105"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| StructServer::default())),
    datagram: None,
    client: Some(client),
    client_flags: &[
        ClientFlag {
            name: "--little",
            value: None,
            help: "pack the record little-endian (default: big-endian, network order)",
        },
        ClientFlag { name: "-l", value: None, help: "the same as --little" },
        ClientFlag { name: "--big", value: None, help: "pack it big-endian (the default)" },
    ],
    samples: &[Sample { via: Via::Stream, request: &LAB_RECORD, answer: Answer::Exact(LAB_LINES.as_bytes()) }],
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::testing::Harness;

    /// `struct.pack('!HIhi', 1, 2, -3, -4)`.
    const LAB: [u8; 12] = [0, 1, 0, 0, 0, 2, 0xff, 0xfd, 0xff, 0xff, 0xff, 0xfc];
    const LAB_REPLY: &str = "big-endian: 1 2 -3 -4\nlittle-endian: 256 33554432 -513 -50331649\n";

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn packs_like_python_struct() {
        assert_eq!(LAB_VALUES.to_be_bytes(), LAB);
        let mut le = LAB;
        le[0..2].reverse();
        le[2..6].reverse();
        le[6..8].reverse();
        le[8..12].reverse();
        assert_eq!(LAB_VALUES.to_le_bytes(), le);
        assert_eq!(Record::from_le_bytes(&le), LAB_VALUES);
        assert_eq!(Record::from_be_bytes(&LAB), LAB_VALUES);
    }

    #[test]
    fn lab_record_gets_both_readings() {
        let mut h = Harness::new(StructServer::default());
        h.connect();
        h.feed(&LAB);
        assert_eq!(h.take_text(), LAB_REPLY);
        h.feed(&LAB_VALUES.to_le_bytes());
        assert_eq!(h.take_text(), "big-endian: 256 33554432 -513 -50331649\nlittle-endian: 1 2 -3 -4\n");
    }

    #[test]
    fn records_split_and_joined_across_reads() {
        let mut h = Harness::new(StructServer::default());
        h.connect();
        let mut stream = LAB.to_vec();
        stream.extend_from_slice(&LAB);
        stream.extend_from_slice(&LAB);
        h.feed(&stream[..5]);
        assert_eq!(h.take_text(), "");
        h.feed(&stream[5..7]);
        h.feed(&stream[7..30]);
        assert_eq!(h.take_text(), LAB_REPLY.repeat(2));
        h.feed(&stream[30..]);
        assert_eq!(h.take_text(), LAB_REPLY);
        h.feed_eof();
        assert_eq!(h.take_text(), "");
        assert!(h.is_closed());
    }

    #[test]
    fn partial_record_at_half_close_is_an_error_line() {
        let mut h = Harness::new(StructServer::default());
        h.connect();
        h.feed(&LAB);
        h.feed(&LAB[..5]);
        h.feed_eof();
        let text = h.take_text();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with(LAB_REPLY));
        assert!(text.ends_with(
            "error: the stream ended inside a record: 5 bytes left over, a record is 12 (u16 u32 i16 i32)\n"
        ));
        assert!(h.is_closed());
    }

    #[test]
    fn client_arguments() {
        assert_eq!(parse_args(&[]).unwrap(), (LAB_VALUES, false));
        assert_eq!(parse_args(&words(&["--little"])).unwrap(), (LAB_VALUES, true));
        let r = Record { a: 65535, b: 4_294_967_295, c: -32768, d: i32::MIN };
        assert_eq!(parse_args(&words(&["65535", "4294967295", "-32768", "-2147483648", "-l"])).unwrap(), (r, true));
        let e = parse_args(&words(&["70000", "2", "-3", "-4"])).unwrap_err();
        assert!(e.contains("70000") && e.contains("u16"), "{e}");
        let e = parse_args(&words(&["1", "-2", "-3", "-4"])).unwrap_err();
        assert!(e.contains("-2") && e.contains("u32"), "{e}");
        let e = parse_args(&words(&["1", "2", "40000", "-4"])).unwrap_err();
        assert!(e.contains("40000") && e.contains("i16"), "{e}");
        let e = parse_args(&words(&["1", "2", "3", "99999999999"])).unwrap_err();
        assert!(e.contains("99999999999") && e.contains("i32"), "{e}");
        let e = parse_args(&words(&["1", "x", "3", "4"])).unwrap_err();
        assert!(e.contains("'x'"), "{e}");
        let e = parse_args(&words(&["1", "2"])).unwrap_err();
        assert!(e.contains("four values"), "{e}");
        let e = parse_args(&words(&["--big-endian"])).unwrap_err();
        assert!(e.contains("--big-endian"), "{e}");
    }
}
