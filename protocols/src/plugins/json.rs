//! `json`: Lab 1B (seed 000), "a UDP sender that takes a dictionary, turns
//! it into a JSON string, and sends it to a listener; the listener receives
//! the JSON string and turns it back into a dictionary".
//!
//! # The listener
//!
//! Each datagram must be exactly one JSON object (surrounding whitespace,
//! such as the newline `nc -u` adds, is fine). A valid one is logged at info,
//! `json from 127.0.0.1:40000: {"a":1}`, and answered with the object
//! re-encoded canonically (compact, keys sorted at every level), so the
//! sender sees what the listener actually decoded. Anything else is answered
//! `{"error":"..."}` saying what is wrong, logged as a warning, and the
//! listener keeps serving:
//!
//! - not JSON: `invalid JSON: expected value at line 1 column 1`;
//! - cut short: `truncated JSON: EOF while parsing a value at line 1 column 7`;
//! - not an object: `expected a JSON object, got an array`;
//! - nested deeper than [`MAX_DEPTH`] (64) arrays/objects: `too deep: ...`,
//!   found by a byte scan *before* parsing, so no input can exhaust the stack;
//! - a datagram over the receive limit (64 KiB), which the reactor refuses
//!   whole rather than parse cut short: `datagram too large: ...`.
//!
//! Over TCP the same listener takes one object per line (framed as in
//! [`crate::text`], so a naive client that sends `{"a":1}` with no newline
//! is answered after 100 ms), up to [`MAX_LINE`] bytes a line.
//!
//! # The sender
//!
//! `twirl client json udp:HOST:PORT '{"name":"bob"}'`, or the same as
//! `key=value` words (a value that is valid JSON is taken as JSON, so `n=5`
//! is a number and `tags=[1,2]` an array; anything else is a string). The
//! client checks and canonicalises the object itself, sends that, and waits
//! 0.5 s, 1 s, 2 s, 4 s, 8 s, resending after each silence (seed 002's
//! udp_remote back-off); if every try times out it exits 1.
//!
//! Which datagram is the answer? The socket is connected, so the kernel only
//! delivers datagrams from the server's address; beyond that the client
//! accepts only a reply *byte-equal to the canonical encoding it sent*, or an
//! `{"error":...}` object (reported, exit 1). The echo of the canonical form
//! is already a tag that a stray or spoofed datagram (seed 002's
//! "promiscuous client") would have to guess exactly, so no request id is
//! added: an id field would change the very dictionary the lab is about, and
//! a late reply to an earlier try of the same request is equally correct.
//!
//! ```text
//! $ twirl client json udp:127.0.0.1:7102 name=bob n=5 tags='[1,2]'
//! {"n":5,"name":"bob","tags":[1,2]}
//! $ echo '{"b":1,"a":[true,null]}' | nc -u -q1 127.0.0.1 7102
//! {"a":[true,null],"b":1}
//! $ echo '{"a":1,' | nc -u -q1 127.0.0.1 7102
//! {"error":"truncated JSON: EOF while parsing a value at line 2 column 0"}
//! ```

use std::net::SocketAddr;

use serde_json::{Map, Value};
use twirl::endpoint::ClientEndpoint;
use twirl::line::{LineHandler, Lines};
use twirl::{Addr, DatagramProtocol, DatagramTransport};

use crate::exchange::{REPLY_TIMEOUT, UdpRetry, print_reply, stream_exchange, udp_exchange};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};
use crate::text::LineConfig;

/// The deepest nesting of arrays and objects accepted (the top object is depth 1).
pub const MAX_DEPTH: usize = 64;

/// The longest line accepted over a stream, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// The largest request the client will put in one UDP datagram.
const MAX_UDP_PAYLOAD: usize = 65_507;

/// Refuses input nested deeper than [`MAX_DEPTH`], scanning bytes without
/// parsing: brackets inside strings (and escaped quotes) do not count.
pub fn check_depth(input: &[u8]) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut line, mut column) = (1usize, 0usize);
    for &b in input {
        if b == b'\n' {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("too deep: nesting passes {MAX_DEPTH} levels at line {line} column {column}"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The canonical encoding: compact, object keys sorted at every level.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes one message: the object, or what is wrong with the input.
pub fn decode(input: &[u8]) -> Result<Map<String, Value>, String> {
    check_depth(input)?;
    let value: Value = serde_json::from_slice(input).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => format!("truncated JSON: {e}"),
        _ => format!("invalid JSON: {e}"),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("expected a JSON object, got {}", kind(&other))),
    }
}

/// The `{"error":"..."}` reply.
pub fn error_reply(message: &str) -> String {
    canonical(&serde_json::json!({ "error": message }))
}

/// The reply to one message from `from`, logged as the lab's listener would.
pub fn answer(input: &[u8], from: &dyn std::fmt::Display) -> String {
    match decode(input) {
        Ok(map) => {
            let text = canonical(&Value::Object(map));
            log::debug!("json from {from}: {text}");
            text
        }
        Err(e) => {
            log::debug!("json from {from}: {e}");
            error_reply(&e)
        }
    }
}

/// The UDP listener: one object per datagram.
pub struct JsonUdp;

impl DatagramProtocol for JsonUdp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        // The canonical form can outgrow the request (`9e15` is
        // `9000000000000000.0`): bounded off loopback.
        t.send_reply(answer(data, &from).as_bytes(), data.len(), from);
    }

    fn datagram_truncated(&mut self, len: usize, from: SocketAddr, t: &mut dyn DatagramTransport) {
        let e = format!("datagram too large: {len} bytes is over the receive limit, so it was not parsed");
        log::debug!("json from {from}: {e}");
        t.send_to(error_reply(&e).as_bytes(), from);
    }
}

/// The stream listener: one object per line.
pub struct JsonLines;

impl LineHandler for JsonLines {
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        let mut reply = answer(line, &t.peer_addr()).into_bytes();
        reply.push(b'\n');
        t.write(&reply);
    }

    fn line_too_long(&mut self, len: usize, t: &mut Lines<'_>) {
        let e = format!("line too long: {len} bytes seen, the limit is {}", t.max_line_length());
        log::debug!("json from {}: {e}", t.peer_addr());
        let mut reply = error_reply(&e).into_bytes();
        reply.push(b'\n');
        t.write(&reply);
        t.lose_connection();
    }
}

/// Builds the object from the client's words: one JSON object, or `key=value` words.
pub fn object_from_args(args: &[String]) -> Result<Map<String, Value>, String> {
    match args {
        [] => Err("expected a JSON object or key=value words".into()),
        [one] if one.trim_start().starts_with('{') => decode(one.as_bytes()),
        words => {
            let mut map = Map::new();
            for w in words {
                let (k, v) =
                    w.split_once('=').ok_or_else(|| format!("'{w}': expected key=value (or one JSON object)"))?;
                if k.is_empty() {
                    return Err(format!("'{w}': empty key"));
                }
                check_depth(v.as_bytes()).map_err(|e| format!("'{k}': {e}"))?;
                let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
                map.insert(k.to_string(), value);
            }
            let text = canonical(&Value::Object(map.clone()));
            check_depth(text.as_bytes())?;
            Ok(map)
        }
    }
}

/// Pulls the message out of an `{"error":"..."}` reply.
fn error_of(reply: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(reply).ok()? {
        Value::Object(m) if m.len() == 1 => m.get("error")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `twirl client json ENDPOINT (JSON | key=value...)`.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    let map = object_from_args(args).map_err(ClientError::usage)?;
    let request = canonical(&Value::Object(map));
    let reply = match endpoint {
        ClientEndpoint::Udp(..) => {
            if request.len() > MAX_UDP_PAYLOAD {
                let n = request.len();
                return Err(ClientError::usage(format!("the object is {n} bytes; one UDP datagram holds 65507")));
            }
            let expected = request.clone();
            let accept = move |d: &[u8]| d == expected.as_bytes() || error_of(d).is_some();
            udp_exchange(endpoint, request.as_bytes(), accept, UdpRetry::default())?
        }
        _ => stream_exchange(endpoint, format!("{request}\n").as_bytes(), REPLY_TIMEOUT)?,
    };
    let reply = reply.strip_suffix(b"\n").unwrap_or(&reply);
    if reply == request.as_bytes() {
        return print_reply(reply);
    }
    match error_of(reply) {
        Some(e) => Err(ClientError::runtime(endpoint, format!("the listener refused the object: {e}"))),
        None if reply.is_empty() => Err(ClientError::runtime(endpoint, "the server closed without a reply")),
        None => Err(ClientError::runtime(
            endpoint,
            format!("unexpected reply: {}", String::from_utf8_lossy(reply).chars().take(200).collect::<String>()),
        )),
    }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "json",
    summary: "decodes one JSON object per datagram (or line), answers it canonically",
    lab: "seed 000 Lab 1B",
    defaults: &["udp:7102", "tcp:7102"],
    options: &[crate::options::FLUSH_MS],
    stream: Some(|o| {
        let config = LineConfig::from_options(o).max_line(MAX_LINE);
        Box::new(move |_: &Addr| config.receiver(JsonLines))
    }),
    datagram: Some(|_| Box::new(JsonUdp)),
    client: Some(client),
    client_flags: &[],
    samples: &[
        Sample {
            via: Via::Stream,
            request: b"{\"b\":[1,{\"d\":0,\"c\":1}],\"a\":null}\n",
            answer: Answer::Exact(b"{\"a\":null,\"b\":[1,{\"c\":1,\"d\":0}]}\n"),
        },
        Sample {
            via: Via::Datagram,
            request: b"{\"z\":1,\"a\":\"x\"}\n",
            answer: Answer::Exact(b"{\"a\":\"x\",\"z\":1}"),
        },
    ],
    raw: None,
};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use twirl::testing::{DatagramHarness, Harness};

    use super::*;

    #[test]
    fn a_reply_larger_than_the_request_is_sent_only_on_loopback() {
        let peer: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let mut public = DatagramHarness::new(JsonUdp).with_local("192.0.2.1:7102".parse().unwrap());
        public.feed(br#"{"n":9e15}"#, peer); // canonical: {"n":9000000000000000.0}
        public.feed(br#"{ "b" : 1 ,  "a" : 2 }"#, peer);
        assert_eq!(public.take_sent(), vec![(br#"{"a":2,"b":1}"#.to_vec(), peer)]);
        assert!(udp(br#"{"n":9e15}"#).starts_with(r#"{"n":9000000000000000"#), "loopback answers in full");
    }

    fn udp(input: &[u8]) -> String {
        let mut h = DatagramHarness::new(JsonUdp);
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        h.feed(input, a);
        let sent = h.take_sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1, a);
        String::from_utf8(sent[0].0.clone()).unwrap()
    }

    fn error(input: &[u8]) -> String {
        let reply = udp(input);
        error_of(reply.as_bytes()).unwrap_or_else(|| panic!("not an error reply: {reply}"))
    }

    #[test]
    fn valid_object_is_answered_canonically() {
        assert_eq!(
            udp(br#" { "b" : 1, "a" : {"z":null,"y":[true, 1.5, "x"]} } "#),
            r#"{"a":{"y":[true,1.5,"x"],"z":null},"b":1}"#
        );
        assert_eq!(udp(b"{\"k\":\"caf\\u00e9\"}\n"), "{\"k\":\"café\"}");
        assert_eq!(udp(b"{}"), "{}");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = error(b"{\"a\":1,\n  oops}");
        assert!(e.starts_with("invalid JSON: key must be a string at line 2 column 3"), "{e}");
        let e = error(b"hello");
        assert!(e.contains("line 1 column 1"), "{e}");
        let e = error(b"{\"a\":1} trailing");
        assert!(e.contains("trailing characters at line 1 column 9"), "{e}");
    }

    #[test]
    fn truncated_and_non_objects() {
        let e = error(b"{\"a\":[1,");
        assert!(e.starts_with("truncated JSON: EOF while parsing"), "{e}");
        assert!(error(b"").starts_with("truncated JSON"));
        assert_eq!(error(b"[1,2]"), "expected a JSON object, got an array");
        assert_eq!(error(b"\"s\""), "expected a JSON object, got a string");
        assert_eq!(error(b"null"), "expected a JSON object, got null");
        assert!(error(b"{\"a\":\"\xff\"}").starts_with("invalid JSON"));
    }

    #[test]
    fn depth_limit_is_checked_before_parsing() {
        let ok = format!("{}{{}}{}", "{\"a\":".repeat(MAX_DEPTH - 1), "}".repeat(MAX_DEPTH - 1));
        assert!(udp(ok.as_bytes()).starts_with("{\"a\":{\"a\""));
        let deep = format!("{}{}", "{\"a\":".repeat(MAX_DEPTH), "[]}".repeat(MAX_DEPTH));
        let e = error(deep.as_bytes());
        assert!(e.starts_with("too deep: nesting passes 64 levels at line 1 column"), "{e}");
        // A million open brackets: refused at once, no recursion.
        let e = error(&vec![b'['; 1_000_000]);
        assert!(e.starts_with("too deep"), "{e}");
        // Brackets inside strings do not count, nor do escaped quotes end them.
        let s = format!("{{\"k\":\"\\\"{}\"}}", "[".repeat(500));
        assert!(udp(s.as_bytes()).starts_with("{\"k\":"));
    }

    #[test]
    fn truncated_datagram_gets_an_error_reply() {
        let mut h = DatagramHarness::new(JsonUdp);
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        h.protocol.datagram_truncated(70_000, a, &mut h.transport);
        let sent = h.take_sent();
        let e = error_of(&sent[0].0).unwrap();
        assert!(e.starts_with("datagram too large: 70000 bytes"), "{e}");
    }

    #[test]
    fn stream_one_object_per_line_and_idle_flush() {
        let mut h = Harness::new(LineConfig::default().max_line(40).receiver(JsonLines));
        h.connect();
        h.feed(b"{\"b\":2,\"a\":1}\r\n[1]\n{\"x\"");
        assert_eq!(h.take_text(), "{\"a\":1,\"b\":2}\n{\"error\":\"expected a JSON object, got an array\"}\n");
        h.feed(b":true}");
        h.advance(Duration::from_millis(100));
        assert_eq!(h.take_text(), "{\"x\":true}\n");
        h.feed(&[b' '; 50]);
        let out = h.take_text();
        assert!(out.starts_with("{\"error\":\"line too long: 50 bytes seen, the limit is 40\"}"), "{out}");
        assert!(h.is_closed());
    }

    #[test]
    fn client_arguments() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let m = object_from_args(&words(&["name=bob", "n=5", "t=[1,2]", "s=\"q\"", "e=", "x=a=b"])).unwrap();
        assert_eq!(canonical(&Value::Object(m)), r#"{"e":"","n":5,"name":"bob","s":"q","t":[1,2],"x":"a=b"}"#);
        let m = object_from_args(&words(&[r#"{"b":1,"a":2}"#])).unwrap();
        assert_eq!(canonical(&Value::Object(m)), r#"{"a":2,"b":1}"#);
        assert!(object_from_args(&[]).is_err());
        assert!(object_from_args(&words(&["novalue"])).unwrap_err().contains("key=value"));
        assert!(object_from_args(&words(&["=1"])).unwrap_err().contains("empty key"));
        assert!(object_from_args(&words(&["{bad"])).unwrap_err().contains("invalid JSON"));
        let deep = format!("d={}{}", "[".repeat(70), "]".repeat(70));
        assert!(object_from_args(&words(&[&deep])).unwrap_err().starts_with("'d': too deep"));
    }

    #[test]
    fn error_replies_are_recognised() {
        assert_eq!(error_of(br#"{"error":"x"}"#).as_deref(), Some("x"));
        assert_eq!(error_of(br#"{"error":"x","a":1}"#), None);
        assert_eq!(error_of(b"nope"), None);
    }
}
