//! The AMF0 packet codec: [`encode_packet`] and [`decode_packet`].
//!
//! The decoder works on a buffer of received bytes and answers one of three
//! things: a whole packet and how many bytes it took; [`DecodeError::Incomplete`]
//! (a valid beginning, wait for more bytes); or [`DecodeError::Malformed`]
//! with the byte offset and the problem. No length or count field is trusted
//! for an allocation: strings are only copied once their bytes are all
//! there, a count reserves at most as many slots as there are bytes left,
//! anything that would end past [`Limits::max_packet`] is refused at once,
//! and nesting deeper than [`Limits::max_depth`] is refused.

use std::fmt;

/// AMF0 type markers.
pub mod marker {
    /// IEEE 754 double, big-endian.
    pub const NUMBER: u8 = 0x00;
    /// One byte, 0 false.
    pub const BOOLEAN: u8 = 0x01;
    /// u16 length + UTF-8.
    pub const STRING: u8 = 0x02;
    /// Key/value pairs until an empty key and [`OBJECT_END`].
    pub const OBJECT: u8 = 0x03;
    /// Reserved, not supported.
    pub const MOVIECLIP: u8 = 0x04;
    /// Null.
    pub const NULL: u8 = 0x05;
    /// Undefined.
    pub const UNDEFINED: u8 = 0x06;
    /// u16 index of an earlier complex value.
    pub const REFERENCE: u8 = 0x07;
    /// u32 count, then like an object.
    pub const ECMA_ARRAY: u8 = 0x08;
    /// Ends an object (after an empty key).
    pub const OBJECT_END: u8 = 0x09;
    /// u32 count, then that many values.
    pub const STRICT_ARRAY: u8 = 0x0a;
    /// Double milliseconds since 1970 + i16 time zone.
    pub const DATE: u8 = 0x0b;
    /// u32 length + UTF-8.
    pub const LONG_STRING: u8 = 0x0c;
    /// Unsupported (a value the sender could not serialise).
    pub const UNSUPPORTED: u8 = 0x0d;
    /// Reserved, not supported.
    pub const RECORDSET: u8 = 0x0e;
    /// u32 length + UTF-8 XML text.
    pub const XML_DOCUMENT: u8 = 0x0f;
    /// u16 class name, then like an object.
    pub const TYPED_OBJECT: u8 = 0x10;
    /// Switch to AMF3 for this value (not supported here).
    pub const AVMPLUS: u8 = 0x11;
}

/// One AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `0x00`: a double.
    Number(f64),
    /// `0x01`.
    Boolean(bool),
    /// `0x02`: at most 65,535 bytes of UTF-8.
    String(String),
    /// `0x03`: ordered key/value pairs.
    Object(Vec<(String, Value)>),
    /// `0x05`.
    Null,
    /// `0x06`.
    Undefined,
    /// `0x07`: an index into the complex values sent before (kept, not resolved).
    Reference(u16),
    /// `0x08`: an associative array (its count field is advisory; the encoder writes the pair count).
    EcmaArray(Vec<(String, Value)>),
    /// `0x0A`: a dense array.
    StrictArray(Vec<Value>),
    /// `0x0B`: milliseconds since 1970-01-01T00:00Z, and a time zone field (reserved, usually 0).
    Date {
        /// Milliseconds since the Unix epoch, UTC.
        millis: f64,
        /// The time-zone field, in minutes.
        timezone: i16,
    },
    /// `0x0C`: UTF-8 with a 32-bit length.
    LongString(String),
    /// `0x0D`.
    Unsupported,
    /// `0x0F`: XML text with a 32-bit length.
    XmlDocument(String),
    /// `0x10`: an object with a class name.
    TypedObject {
        /// The class name.
        class: String,
        /// Its members, in order.
        members: Vec<(String, Value)>,
    },
}

/// One packet header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The header's name.
    pub name: String,
    /// Whether the receiver must understand it or fail.
    pub must_understand: bool,
    /// Its value.
    pub value: Value,
}

/// One packet message (a remoting call or its result).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The target URI (a method, or `/1/onResult` in a reply).
    pub target: String,
    /// The response URI (`/1`, or `null` in a reply).
    pub response: String,
    /// The body.
    pub value: Value,
}

/// One AMF packet: version, headers, messages.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Packet {
    /// 0 for AMF0 (3 for AMF3 players; the values here are AMF0 either way).
    pub version: u16,
    /// The headers.
    pub headers: Vec<Header>,
    /// The messages.
    pub messages: Vec<Message>,
}

/// Bounds on what the decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest packet, in bytes.
    pub max_packet: usize,
    /// The deepest nesting of objects and arrays.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 64 KiB packets, 32 levels of nesting.
    fn default() -> Self {
        Limits { max_packet: 64 * 1024, max_depth: 32 }
    }
}

/// Why a buffer did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A valid beginning: at least `needed` bytes (from the packet's start) are needed.
    Incomplete {
        /// The least total length that could make progress.
        needed: usize,
    },
    /// Not a valid packet: what is wrong, and where (from the packet's start).
    Malformed {
        /// The offset of the offending field.
        offset: usize,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => write!(f, "incomplete: at least {needed} bytes needed"),
            DecodeError::Malformed { offset, problem } => write!(f, "at byte {offset}: {problem}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A value that cannot be encoded (a length past its field's width).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

// ---------------------------------------------------------------- encoding

fn put_u16_len(out: &mut Vec<u8>, len: usize, what: &str) -> Result<(), EncodeError> {
    let n = u16::try_from(len).map_err(|_| EncodeError(format!("{what} of {len} is more than a u16 can count")))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_u32_len(out: &mut Vec<u8>, len: usize, what: &str) -> Result<(), EncodeError> {
    let n = u32::try_from(len).map_err(|_| EncodeError(format!("{what} of {len} is more than a u32 can count")))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// A UTF-8 string with a u16 length (a short string's body, a key, a name).
fn put_utf8(out: &mut Vec<u8>, s: &str, what: &str) -> Result<(), EncodeError> {
    put_u16_len(out, s.len(), &format!("{what} length"))?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_pairs(out: &mut Vec<u8>, pairs: &[(String, Value)]) -> Result<(), EncodeError> {
    for (k, v) in pairs {
        if k.is_empty() {
            return Err(EncodeError("an object key cannot be empty (an empty key ends the object)".into()));
        }
        put_utf8(out, k, "object key")?;
        encode_value(v, out)?;
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
    Ok(())
}

/// Appends one value, marker first.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match v {
        Value::Number(n) => {
            out.push(marker::NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[marker::BOOLEAN, u8::from(*b)]),
        Value::String(s) => {
            out.push(marker::STRING);
            put_utf8(out, s, "string")?;
        }
        Value::Object(pairs) => {
            out.push(marker::OBJECT);
            put_pairs(out, pairs)?;
        }
        Value::Null => out.push(marker::NULL),
        Value::Undefined => out.push(marker::UNDEFINED),
        Value::Reference(i) => {
            out.push(marker::REFERENCE);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::EcmaArray(pairs) => {
            out.push(marker::ECMA_ARRAY);
            put_u32_len(out, pairs.len(), "ECMA array count")?;
            put_pairs(out, pairs)?;
        }
        Value::StrictArray(items) => {
            out.push(marker::STRICT_ARRAY);
            put_u32_len(out, items.len(), "strict array count")?;
            for item in items {
                encode_value(item, out)?;
            }
        }
        Value::Date { millis, timezone } => {
            out.push(marker::DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&timezone.to_be_bytes());
        }
        Value::LongString(s) => {
            out.push(marker::LONG_STRING);
            put_u32_len(out, s.len(), "long string length")?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Unsupported => out.push(marker::UNSUPPORTED),
        Value::XmlDocument(s) => {
            out.push(marker::XML_DOCUMENT);
            put_u32_len(out, s.len(), "XML document length")?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::TypedObject { class, members } => {
            out.push(marker::TYPED_OBJECT);
            put_utf8(out, class, "class name")?;
            put_pairs(out, members)?;
        }
    }
    Ok(())
}

/// A value with its i32 length in front (how headers and messages carry theirs).
fn put_sized_value(out: &mut Vec<u8>, v: &Value) -> Result<(), EncodeError> {
    let mut body = Vec::new();
    encode_value(v, &mut body)?;
    let len = i32::try_from(body.len()).map_err(|_| EncodeError(format!("a value of {} bytes", body.len())))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// The packet's bytes, lengths computed (never the "unknown" -1).
pub fn encode_packet(p: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    out.extend_from_slice(&p.version.to_be_bytes());
    put_u16_len(&mut out, p.headers.len(), "header count")?;
    for h in &p.headers {
        put_utf8(&mut out, &h.name, "header name")?;
        out.push(u8::from(h.must_understand));
        put_sized_value(&mut out, &h.value)?;
    }
    put_u16_len(&mut out, p.messages.len(), "message count")?;
    for m in &p.messages {
        put_utf8(&mut out, &m.target, "target URI")?;
        put_utf8(&mut out, &m.response, "response URI")?;
        put_sized_value(&mut out, &m.value)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------- decoding

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: Limits,
}

fn malformed<T>(offset: usize, problem: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Malformed { offset, problem: problem.into() })
}

impl<'a> Reader<'a> {
    /// The next `n` bytes, or why not: past the limit (malformed), or not here yet.
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.saturating_add(n);
        // The limit is checked whether or not the bytes are here already:
        // checked only when waiting for them, a packet over the limit was
        // accepted whenever it arrived whole in one buffer, so the outcome
        // depended on how the stream was cut into reads
        // (protocols/tests/proptests.rs).
        if end > self.limits.max_packet {
            return malformed(
                self.pos,
                format!("{what} of {n} bytes would end past the {}-byte packet limit", self.limits.max_packet),
            );
        }
        if end > self.buf.len() {
            return Err(DecodeError::Incomplete { needed: end });
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self, what: &str) -> Result<f64, DecodeError> {
        let b = self.take(8, what)?;
        Ok(f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    fn utf8(&mut self, len: usize, what: &str) -> Result<String, DecodeError> {
        let start = self.pos;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => malformed(start + e.valid_up_to(), format!("{what} is not valid UTF-8")),
        }
    }

    /// A u16 length and that many bytes of UTF-8.
    fn short_string(&mut self, what: &str) -> Result<String, DecodeError> {
        let len = self.u16(&format!("{what} length"))?;
        self.utf8(usize::from(len), what)
    }

    /// A u32 length and that many bytes of UTF-8.
    fn long_string(&mut self, what: &str) -> Result<String, DecodeError> {
        let len = self.u32(&format!("{what} length"))? as usize;
        self.utf8(len, what)
    }

    /// Bytes left before the packet limit: a bound for any count.
    fn room(&self) -> usize {
        self.limits.max_packet.saturating_sub(self.pos)
    }

    /// Key/value pairs up to an empty key and the object-end marker.
    fn pairs(&mut self, depth: usize) -> Result<Vec<(String, Value)>, DecodeError> {
        let mut pairs = Vec::new();
        loop {
            let key = self.short_string("object key")?;
            if key.is_empty() {
                let end_at = self.pos;
                let m = self.u8("object-end marker")?;
                if m != marker::OBJECT_END {
                    return malformed(
                        end_at,
                        format!("an empty key must be followed by the object-end marker 0x09, not 0x{m:02x}"),
                    );
                }
                return Ok(pairs);
            }
            let value = self.value(depth + 1)?;
            pairs.push((key, value));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let at = self.pos;
        let m = self.u8("type marker")?;
        if depth >= self.limits.max_depth
            && matches!(m, marker::OBJECT | marker::ECMA_ARRAY | marker::STRICT_ARRAY | marker::TYPED_OBJECT)
        {
            return malformed(at, format!("values nested deeper than {} levels", self.limits.max_depth));
        }
        Ok(match m {
            marker::NUMBER => Value::Number(self.f64("number")?),
            marker::BOOLEAN => Value::Boolean(self.u8("boolean")? != 0),
            marker::STRING => Value::String(self.short_string("string")?),
            marker::OBJECT => Value::Object(self.pairs(depth)?),
            marker::NULL => Value::Null,
            marker::UNDEFINED => Value::Undefined,
            marker::REFERENCE => Value::Reference(self.u16("reference index")?),
            marker::ECMA_ARRAY => {
                let _advisory_count = self.u32("ECMA array count")?;
                Value::EcmaArray(self.pairs(depth)?)
            }
            marker::STRICT_ARRAY => {
                let count_at = self.pos;
                let count = self.u32("strict array count")? as usize;
                // Every value takes at least its marker byte.
                if count > self.room() {
                    return malformed(
                        count_at,
                        format!(
                            "a strict array of {count} values cannot fit the {}-byte packet limit",
                            self.limits.max_packet
                        ),
                    );
                }
                let mut items = Vec::with_capacity(count.min(self.buf.len() - self.pos));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = self.f64("date")?;
                let b = self.take(2, "date time zone")?;
                Value::Date { millis, timezone: i16::from_be_bytes([b[0], b[1]]) }
            }
            marker::LONG_STRING => Value::LongString(self.long_string("long string")?),
            marker::UNSUPPORTED => Value::Unsupported,
            marker::XML_DOCUMENT => Value::XmlDocument(self.long_string("XML document")?),
            marker::TYPED_OBJECT => {
                let class = self.short_string("class name")?;
                Value::TypedObject { class, members: self.pairs(depth)? }
            }
            marker::OBJECT_END => return malformed(at, "object-end marker 0x09 outside an object"),
            marker::MOVIECLIP => return malformed(at, "type marker 0x04 (movieclip) is reserved and not supported"),
            marker::RECORDSET => return malformed(at, "type marker 0x0e (recordset) is reserved and not supported"),
            marker::AVMPLUS => return malformed(at, "type marker 0x11 (switch to AMF3) is not supported: AMF0 only"),
            other => return malformed(at, format!("unknown type marker 0x{other:02x}")),
        })
    }

    /// An i32 length (-1 for unknown) and the value it covers; the two must agree.
    fn sized_value(&mut self, what: &str) -> Result<Value, DecodeError> {
        let len_at = self.pos;
        let len = self.u32(&format!("{what} length"))? as i32;
        if len < -1 {
            return malformed(len_at, format!("{what} length {len} is negative (only -1, unknown, is allowed)"));
        }
        let start = self.pos;
        let value = self.value(0)?;
        let used = self.pos - start;
        if len != -1 && len as usize != used {
            return malformed(len_at, format!("{what} length says {len} bytes, but its value takes {used}"));
        }
        Ok(value)
    }
}

/// Decodes one packet from the start of `buf`; returns it and the bytes it took.
pub fn decode_packet(buf: &[u8], limits: &Limits) -> Result<(Packet, usize), DecodeError> {
    let mut r = Reader { buf, pos: 0, limits: *limits };
    let version = r.u16("version")?;
    let count = usize::from(r.u16("header count")?);
    let mut headers = Vec::with_capacity(count.min(buf.len()));
    for _ in 0..count {
        let name = r.short_string("header name")?;
        let must_understand = r.u8("must-understand flag")? != 0;
        let value = r.sized_value("header")?;
        headers.push(Header { name, must_understand, value });
    }
    let count = usize::from(r.u16("message count")?);
    let mut messages = Vec::with_capacity(count.min(buf.len()));
    for _ in 0..count {
        let target = r.short_string("target URI")?;
        let response = r.short_string("response URI")?;
        let value = r.sized_value("message")?;
        messages.push(Message { target, response, value });
    }
    Ok((Packet { version, headers, messages }, r.pos))
}

/// Decodes one value (marker first) from the start of `buf`.
pub fn decode_value(buf: &[u8], limits: &Limits) -> Result<(Value, usize), DecodeError> {
    let mut r = Reader { buf, pos: 0, limits: *limits };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn reference_layout_of_a_small_packet() {
        let p = Packet {
            version: 0,
            headers: vec![Header { name: "id".into(), must_understand: true, value: Value::Number(1.0) }],
            messages: vec![Message { target: "t".into(), response: "/1".into(), value: Value::Boolean(true) }],
        };
        let b = encode_packet(&p).unwrap();
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 0,                   // version
            0, 1,                   // header count
            0, 2, b'i', b'd',       // name
            1,                      // must understand
            0, 0, 0, 9,             // length
            0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, // number 1.0
            0, 1,                   // message count
            0, 1, b't',             // target
            0, 2, b'/', b'1',       // response
            0, 0, 0, 2,             // length
            1, 1,                   // boolean true
        ];
        assert_eq!(b, expected);
        assert_eq!(decode_packet(&b, &lim()), Ok((p, b.len())));
    }

    #[test]
    fn every_type_round_trips() {
        let v = Value::StrictArray(vec![
            Value::Number(-0.5),
            Value::Boolean(false),
            Value::String("héllo".into()),
            Value::Object(vec![("b".into(), Value::Null), ("a".into(), Value::Undefined)]),
            Value::Reference(3),
            Value::EcmaArray(vec![("0".into(), Value::Number(7.0))]),
            Value::Date { millis: 1_700_000_000_000.0, timezone: 0 },
            Value::LongString("x".repeat(70_000)),
            Value::Unsupported,
            Value::XmlDocument("<a/>".into()),
            Value::TypedObject { class: "com.example.T".into(), members: vec![("k".into(), Value::Number(1.0))] },
        ]);
        let mut b = Vec::new();
        encode_value(&v, &mut b).unwrap();
        let limits = Limits { max_packet: 1 << 20, ..lim() };
        assert_eq!(decode_value(&b, &limits), Ok((v, b.len())));
    }

    #[test]
    fn every_prefix_is_incomplete_and_says_what_it_needs() {
        let p = crate::plugins::amf::sample_packet();
        let b = encode_packet(&p).unwrap();
        for n in 0..b.len() {
            match decode_packet(&b[..n], &lim()) {
                Err(DecodeError::Incomplete { needed }) => assert!(needed > n && needed <= b.len(), "{n}: {needed}"),
                other => panic!("prefix of {n} bytes: {other:?}"),
            }
        }
        // And with a second packet behind it, only the first is taken.
        let mut two = b.clone();
        two.extend_from_slice(&b);
        assert_eq!(decode_packet(&two, &lim()), Ok((p, b.len())));
    }

    fn err(b: &[u8]) -> (usize, String) {
        match decode_packet(b, &lim()) {
            Err(DecodeError::Malformed { offset, problem }) => (offset, problem),
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn malformed_packets_name_offset_and_problem() {
        // Message value with an unknown marker at byte 13.
        let b = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x42];
        let (offset, problem) = err(&b);
        assert_eq!(offset, 15);
        assert!(problem.contains("0x42"), "{problem}");
        // AMF3 switch.
        let b = [0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x11, 0];
        assert!(err(&b).1.contains("AMF3"));
        // Length disagreeing with the value.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0x05];
        let (offset, problem) = err(&b);
        assert_eq!(offset, 10);
        assert!(problem.contains("says 5 bytes") && problem.contains("takes 1"), "{problem}");
        // Bad UTF-8 in a header name.
        let b = [0, 0, 0, 1, 0, 2, b'a', 0xff];
        assert_eq!(err(&b), (7, "header name is not valid UTF-8".to_string()));
        // An empty key not followed by 0x09.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x03, 0, 0, 0x05];
        let (offset, problem) = err(&b);
        assert_eq!(offset, 17);
        assert!(problem.contains("0x09"), "{problem}");
        // Object end outside an object.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x09];
        assert_eq!(err(&b).0, 14);
        // A negative length other than -1.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe, 0x05];
        assert!(err(&b).1.contains("-2"));
    }

    #[test]
    fn hostile_lengths_and_counts_are_refused_without_allocating() {
        // A long string announcing 4 GiB: refused at its length field, not buffered for.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0xff, 0xff, 0xff, 0xff, b'x'];
        let (offset, problem) = err(&b);
        assert_eq!(offset, 19);
        assert!(problem.contains("4294967295") && problem.contains("packet limit"), "{problem}");
        // A strict array of 4 billion values.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0a, 0xff, 0xff, 0xff, 0xff];
        let (offset, problem) = err(&b);
        assert_eq!(offset, 15);
        assert!(problem.contains("cannot fit"), "{problem}");
        // A strict array count that fits the limit but not the bytes received: just incomplete.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0a, 0, 0, 0x10, 0, 0x05];
        assert_eq!(decode_packet(&b, &lim()), Err(DecodeError::Incomplete { needed: b.len() + 1 }));
        // 65,535 headers announced in 4 bytes: incomplete, and nothing reserved beyond the buffer.
        assert_eq!(decode_packet(&[0, 0, 0xff, 0xff], &lim()), Err(DecodeError::Incomplete { needed: 6 }));
    }

    #[test]
    fn nesting_is_capped() {
        let limits = Limits { max_depth: 4, ..lim() };
        let mut deep = Value::Null;
        for _ in 0..5 {
            deep = Value::StrictArray(vec![deep]);
        }
        let mut b = Vec::new();
        encode_value(&deep, &mut b).unwrap();
        match decode_value(&b, &limits) {
            Err(DecodeError::Malformed { offset, problem }) => {
                assert_eq!(offset, 20);
                assert!(problem.contains("deeper than 4"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        let Value::StrictArray(inner) = deep else { unreachable!() };
        let mut b = Vec::new();
        encode_value(&inner[0], &mut b).unwrap();
        assert!(decode_value(&b, &limits).is_ok(), "4 levels are fine");
        // A million nested arrays in a small buffer: refused quickly, no stack overflow.
        let mut b = Vec::new();
        for _ in 0..60_000 {
            b.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        assert!(matches!(
            decode_value(&b, &Limits { max_packet: 1 << 20, ..lim() }),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn encode_refuses_what_the_fields_cannot_hold() {
        let mut out = Vec::new();
        let e = encode_value(&Value::String("x".repeat(70_000)), &mut out).unwrap_err();
        assert!(e.0.contains("70000"), "{e}");
        let e = encode_value(&Value::Object(vec![(String::new(), Value::Null)]), &mut out).unwrap_err();
        assert!(e.0.contains("empty"), "{e}");
    }

    fn arb_key() -> impl Strategy<Value = String> {
        "[a-z$_]{1,8}"
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()).prop_map(Value::Number),
            any::<bool>().prop_map(Value::Boolean),
            ".{0,20}".prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
            any::<u16>().prop_map(Value::Reference),
            (-1e13f64..1e13, any::<i16>()).prop_map(|(millis, timezone)| Value::Date { millis, timezone }),
            ".{0,20}".prop_map(Value::LongString),
            Just(Value::Unsupported),
            ".{0,20}".prop_map(Value::XmlDocument),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec((arb_key(), inner.clone()), 0..6).prop_map(Value::Object),
                prop::collection::vec((arb_key(), inner.clone()), 0..6).prop_map(Value::EcmaArray),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::StrictArray),
                ("[A-Za-z.]{0,12}", prop::collection::vec((arb_key(), inner), 0..4))
                    .prop_map(|(class, members)| Value::TypedObject { class, members }),
            ]
        })
    }

    /// An arbitrary packet (also used by the JSON round trip).
    pub(crate) fn arb_packet() -> impl Strategy<Value = Packet> {
        let header = (".{0,12}", any::<bool>(), arb_value()).prop_map(|(name, must_understand, value)| Header {
            name,
            must_understand,
            value,
        });
        let message = (".{0,12}", ".{0,6}", arb_value()).prop_map(|(target, response, value)| Message {
            target,
            response,
            value,
        });
        (any::<u16>(), prop::collection::vec(header, 0..3), prop::collection::vec(message, 0..3))
            .prop_map(|(version, headers, messages)| Packet { version, headers, messages })
    }

    proptest! {
        #[test]
        fn packets_round_trip(p in arb_packet()) {
            let b = encode_packet(&p).unwrap();
            let limits = Limits { max_packet: 1 << 20, max_depth: 32 };
            prop_assert_eq!(decode_packet(&b, &limits), Ok((p, b.len())));
        }

        #[test]
        fn split_anywhere_is_incomplete_then_whole(p in arb_packet(), cut in any::<prop::sample::Index>()) {
            let b = encode_packet(&p).unwrap();
            let n = cut.index(b.len());
            let limits = Limits { max_packet: 1 << 20, max_depth: 32 };
            let is_incomplete = matches!(decode_packet(&b[..n], &limits), Err(DecodeError::Incomplete { .. }));
            prop_assert!(is_incomplete);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_packet(&b, &lim());
        }
    }

    #[test]
    fn nan_round_trips_bit_for_bit() {
        let mut b = Vec::new();
        encode_value(&Value::Number(f64::NAN), &mut b).unwrap();
        let (v, _) = decode_value(&b, &lim()).unwrap();
        let Value::Number(n) = v else { panic!("{v:?}") };
        assert_eq!(n.to_bits(), f64::NAN.to_bits());
    }
}
