//! Bad input, plugin by plugin, end to end over loopback (issue #7).
//!
//! One reactor serves every plugin (`twirl_protocols::serve::bind_with`, the
//! default `ServeLimits`) on ephemeral ports; std sockets send each entry of
//! a table of bad inputs: over-long lines, binary garbage, invalid UTF-8,
//! invalid JSON, truncated and oversized AMF, struct and SNTP packets, empty
//! datagrams, and half-closes at every stage of a request. Each entry names
//! the response expected (exact where the wire behaviour is specified) and
//! how the connection must end; after each one a well-behaved client of the
//! same plugin, on the same server, must still get its exact answer. At the
//! end no connection is left open and no callback panicked.
//!
//! Every wait is bounded: socket timeouts, `recv_timeout`, deadlines.

mod support;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use support::{AllPlugins, End, LAB, LAB_LINES, amf_sample, connect, good_tcp, good_udp, read_to_end, udp_socket};
use twirl::Config;
use twirl_protocols::plugins::amf::codec::{DecodeError, Limits as AmfLimits, decode_packet};
use twirl_protocols::serve::ServeLimits;

/// What a case expects back.
enum Want {
    /// Exactly these bytes.
    Exact(Vec<u8>),
    /// Exactly one line, starting and ending so (the middle is a count
    /// that depends on how the kernel cut the stream into reads).
    Line(&'static str, &'static str),
    /// Checked by a function.
    Check(fn(&[u8]) -> Result<(), String>),
    /// UDP only: no datagram at all.
    Silence,
}

impl Want {
    fn check(&self, got: &[u8]) -> Result<(), String> {
        let shown = || String::from_utf8_lossy(&got[..got.len().min(400)]).into_owned();
        match self {
            Want::Exact(w) if got == w.as_slice() => Ok(()),
            Want::Exact(w) => Err(format!(
                "got {} bytes {:?}, want {} bytes {:?}",
                got.len(),
                shown(),
                w.len(),
                String::from_utf8_lossy(&w[..w.len().min(400)])
            )),
            Want::Line(head, tail) => {
                let ok = got.starts_with(head.as_bytes())
                    && got.ends_with(tail.as_bytes())
                    && got.iter().filter(|&&b| b == b'\n').count() == 1;
                if ok { Ok(()) } else { Err(format!("got {:?}, want one line {head:?}...{tail:?}", shown())) }
            }
            Want::Check(f) => f(got),
            Want::Silence => Err("Silence is for UDP cases".into()),
        }
    }
}

/// One TCP case: connect, send `input`, half-close if asked, read to the end.
struct Tcp {
    name: String,
    plugin: &'static str,
    input: Vec<u8>,
    half_close: bool,
    want: Want,
    /// How the server must end it (a clean close unless said otherwise).
    end: End,
}

fn tcp(name: impl Into<String>, plugin: &'static str, input: impl Into<Vec<u8>>, half_close: bool, want: Want) -> Tcp {
    Tcp { name: name.into(), plugin, input: input.into(), half_close, want, end: End::Eof }
}

/// One HTTP/1.1 answer with this status, and nothing after its body.
fn http_status(got: &[u8], status: &str) -> Result<(), String> {
    let text = String::from_utf8_lossy(got);
    let head_end = text.find("\r\n\r\n").ok_or_else(|| format!("no whole head: {text:?}"))?;
    let length: usize = text[..head_end]
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .ok_or("no Content-Length")?;
    if !text.starts_with(&format!("HTTP/1.1 {status} ")) || got.len() != head_end + 4 + length {
        return Err(format!("want one {status} answer, got {text:?}"));
    }
    Ok(())
}

fn exact(b: impl Into<Vec<u8>>) -> Want {
    Want::Exact(b.into())
}

/// Every byte value, a few times over: NULs, CRs, LFs, invalid UTF-8.
fn garbage(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

/// Garbage with no `\n` in it.
fn garbage_no_newline(len: usize) -> Vec<u8> {
    garbage(len).into_iter().map(|b| if b == b'\n' { b'.' } else { b }).collect()
}

fn json_line(error: &str) -> Vec<u8> {
    format!("{{\"error\":{}}}\n", serde_json::Value::String(error.into())).into_bytes()
}

/// The same, as a UDP reply: no newline.
fn json_reply(error: &str) -> Vec<u8> {
    let mut line = json_line(error);
    line.pop();
    line
}

fn struct_error(n: usize) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("error: the stream ended inside a record: {n} byte{s} left over, a record is 12 (u16 u32 i16 i32)\n")
}

/// The pattern's bytes from the start, as many as `got` holds.
fn is_chargen_prefix(got: &[u8]) -> Result<(), String> {
    let cycle: Vec<u8> = (0..95).flat_map(twirl_protocols::plugins::chargen::line).collect();
    if got.is_empty() {
        return Err("no chargen output".into());
    }
    match got.iter().enumerate().find(|&(i, b)| *b != cycle[i % cycle.len()]) {
        None => Ok(()),
        Some((i, _)) => Err(format!("chargen byte {i} is off the pattern")),
    }
}

/// Loopback UDP chargen: six whole lines of the pattern (wherever it has got to).
fn is_chargen_lines(got: &[u8]) -> Result<(), String> {
    let ok =
        got.len() == 6 * 74 && got.chunks(74).all(|l| (0..95).any(|n| twirl_protocols::plugins::chargen::line(n) == l));
    if ok { Ok(()) } else { Err(format!("{} bytes, not six pattern lines", got.len())) }
}

fn chat_welcome_then(got: &[u8], then: &str) -> Result<(), String> {
    let text = String::from_utf8_lossy(got);
    let (welcome, rest) = text.split_once('\n').ok_or_else(|| format!("no welcome line: {text:?}"))?;
    if !welcome.starts_with("* you are 127.0.0.1:") {
        return Err(format!("welcome: {welcome:?}"));
    }
    match then {
        "" if rest.is_empty() => Ok(()),
        "too long"
            if rest.starts_with("error: line too long (")
                && rest.ends_with(" bytes seen, the limit is 4096)\n")
                && rest.matches('\n').count() == 1 =>
        {
            Ok(())
        }
        _ => Err(format!("after the welcome: {rest:?}, want {then:?}")),
    }
}

fn tcp_cases() -> Vec<Tcp> {
    let mut cases = vec![
        // echo, discard, caps, chargen: bytes are bytes.
        tcp("echo: every byte value", "echo", garbage(4096), true, exact(garbage(4096))),
        tcp("echo: half-close at once", "echo", b"", true, exact(b"")),
        tcp("echo: 1 MiB with no newline", "echo", garbage(1 << 20), true, exact(garbage(1 << 20))),
        tcp("discard: garbage", "discard", garbage(65_536), true, exact(b"")),
        tcp("caps: invalid UTF-8 and binary", "caps", garbage(5000), true, exact(garbage(5000).to_ascii_uppercase())),
        tcp("caps: 1 MiB at once", "caps", garbage(1 << 20), true, exact(garbage(1 << 20).to_ascii_uppercase())),
        tcp("chargen: garbage then half-close", "chargen", garbage(3000), true, Want::Check(is_chargen_prefix)),
        // http: a status and a close (the rules one by one: tests/http.rs).
        tcp("http: garbage", "http", garbage(4096), true, Want::Check(|g| http_status(g, "400"))),
        tcp("http: half-close at once", "http", b"", true, exact(b"")),
        tcp(
            "http: HTTP/2 preface",
            "http",
            *b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            true,
            Want::Check(|g| http_status(g, "505")),
        ),
        tcp(
            "http: a request line that never ends",
            "http",
            vec![b'A'; 9000],
            true,
            Want::Check(|g| http_status(g, "414")),
        ),
        // chat: the sender hears nothing back but its welcome; an over-long
        // line is refused with a line and a close.
        tcp(
            "chat: binary line, half-close",
            "chat",
            garbage_no_newline(300),
            true,
            Want::Check(|g| chat_welcome_then(g, "")),
        ),
        tcp(
            "chat: over-long line",
            "chat",
            garbage_no_newline(5000),
            false,
            Want::Check(|g| chat_welcome_then(g, "too long")),
        ),
        // struct: records are 12 bytes, whatever they hold; a partial one at
        // half-close is an error line.
        tcp("struct: half-close at once", "struct", b"", true, exact(b"")),
        tcp("struct: 1 byte", "struct", [7u8], true, exact(struct_error(1))),
        tcp("struct: 11 bytes", "struct", [0xffu8; 11], true, exact(struct_error(11))),
        tcp(
            "struct: a record and 1 byte",
            "struct",
            [&LAB[..], &[0]].concat(),
            true,
            exact(format!("{LAB_LINES}{}", struct_error(1))),
        ),
        tcp(
            "struct: all-ones records",
            "struct",
            [0xffu8; 24],
            true,
            exact("big-endian: 65535 4294967295 -1 -1\nlittle-endian: 65535 4294967295 -1 -1\n".repeat(2)),
        ),
        tcp(
            "struct: 10,000 records of garbage",
            "struct",
            garbage(120_000),
            true,
            Want::Check(|g| {
                let want: String = garbage(120_000)
                    .chunks(12)
                    .map(|r| twirl_protocols::plugins::structs::describe(r.try_into().expect("12 bytes")))
                    .collect();
                if g == want.as_bytes() { Ok(()) } else { Err(format!("{} bytes, want {}", g.len(), want.len())) }
            }),
        ),
        // reverse and upper: lines of bytes, 8 KiB at most.
        tcp(
            "reverse: over-long line, no newline",
            "reverse",
            vec![b'x'; 9000],
            false,
            Want::Line("error: line too long (", " bytes seen, the limit is 8192)\n"),
        ),
        tcp(
            "reverse: over-long line with newline",
            "reverse",
            [vec![b'x'; 20_000], b"\n".to_vec()].concat(),
            false,
            Want::Line("error: line too long (", " bytes seen, the limit is 8192)\n"),
        ),
        tcp(
            "reverse: exactly the limit",
            "reverse",
            [vec![b'x'; 8192], b"\r\n".to_vec()].concat(),
            true,
            exact([vec![b'x'; 8192], b"\n".to_vec()].concat()),
        ),
        tcp("reverse: invalid UTF-8", "reverse", *b"\xff\xfe ok \x80\n", true, exact(*b"\x80 ok \xff\xfe\n")),
        tcp("reverse: NUL, CR, tabs", "reverse", *b"a\0b \r\tc\n\n\r\n", true, exact(*b"c a\0b\n\n\n")),
        tcp("reverse: a lone CR then half-close", "reverse", *b"\r", true, exact(*b"\n")),
        tcp("upper: invalid UTF-8 keeps its bytes", "upper", *b"caf\xe9 ok\n", true, exact(*b"CAF\xe9 OK\n")),
        tcp(
            "upper: binary line",
            "upper",
            [garbage_no_newline(200), b"\n".to_vec()].concat(),
            true,
            Want::Check(|g| {
                let line = garbage_no_newline(200);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                let want = [line.to_ascii_uppercase(), b"\n".to_vec()].concat();
                if g == want { Ok(()) } else { Err(format!("{g:?}")) }
            }),
        ),
        tcp(
            "upper: over-long line",
            "upper",
            vec![b'y'; 10_000],
            false,
            Want::Line("error: line too long (", " bytes seen, the limit is 8192)\n"),
        ),
        // json over TCP: one object per line; each error is a JSON line with
        // its line and column, and the connection goes on.
        tcp(
            "json: not JSON",
            "json",
            *b"hello\n",
            true,
            exact(json_line("invalid JSON: expected value at line 1 column 1")),
        ),
        tcp(
            "json: empty line",
            "json",
            *b"\n",
            true,
            exact(json_line("truncated JSON: EOF while parsing a value at line 1 column 0")),
        ),
        tcp(
            "json: cut short",
            "json",
            *b"{\"a\":1,\n",
            true,
            exact(json_line("truncated JSON: EOF while parsing a value at line 1 column 7")),
        ),
        tcp(
            "json: cut short at half-close",
            "json",
            *b"{\"a\":[1",
            true,
            exact(json_line("truncated JSON: EOF while parsing a list at line 1 column 7")),
        ),
        tcp("json: an array", "json", *b"[1,2]\n", true, exact(json_line("expected a JSON object, got an array"))),
        tcp(
            "json: trailing garbage",
            "json",
            *b"{\"a\":1} x\n",
            true,
            exact(json_line("invalid JSON: trailing characters at line 1 column 9")),
        ),
        tcp(
            "json: invalid UTF-8 in a string",
            "json",
            *b"{\"a\":\"\xff\"}\n",
            true,
            exact(json_line("invalid JSON: invalid unicode code point at line 1 column 7")),
        ),
        tcp(
            "json: binary garbage",
            "json",
            *b"\x00\x01\xfe\n",
            true,
            exact(json_line("invalid JSON: expected value at line 1 column 1")),
        ),
        tcp(
            "json: 100,000 brackets",
            "json",
            [vec![b'['; 100_000], b"\n".to_vec()].concat(),
            false,
            Want::Line("{\"error\":\"line too long: ", " bytes seen, the limit is 65536\"}\n"),
        ),
        tcp(
            "json: too deep",
            "json",
            [vec![b'['; 1000], b"\n".to_vec()].concat(),
            true,
            exact(json_line("too deep: nesting passes 64 levels at line 1 column 65")),
        ),
        tcp(
            "json: good, bad, good on one connection",
            "json",
            *b"{\"b\":1,\"a\":2}\n{\"a\":\n{}\r\n",
            true,
            exact(
                [
                    b"{\"a\":2,\"b\":1}\n".to_vec(),
                    json_line("truncated JSON: EOF while parsing a value at line 1 column 5"),
                    b"{}\n".to_vec(),
                ]
                .concat(),
            ),
        ),
        // time: one word is known.
        tcp("time: unknown request", "time", *b"hello\n", true, exact(*b"error: unknown request, send reqtime\n")),
        tcp(
            "time: binary request",
            "time",
            *b"\xff\x00reqtime\n",
            true,
            exact(*b"error: unknown request, send reqtime\n"),
        ),
        tcp(
            "time: over-long request",
            "time",
            vec![b'r'; 2000],
            false,
            Want::Line("error: line too long (", " bytes seen, the limit is 1024)\n"),
        ),
        // daytime and binarytime ignore input: one answer, then close.
        tcp("daytime: garbage sent", "daytime", garbage(100_000), false, Want::Check(support::is_daytime_now)),
        tcp("binarytime: garbage sent", "binarytime", garbage(100_000), false, Want::Check(support::is_binarytime_now)),
        // amf: a malformed packet is an error line naming the offset, then close.
        tcp("amf: half-close at once", "amf", b"", true, exact(b"")),
        tcp(
            "amf: unknown type marker",
            "amf",
            [0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x42, 0, 0, 0],
            false,
            exact(*b"error: at byte 15: unknown type marker 0x42\n"),
        ),
        tcp(
            "amf: 4 GiB long string",
            "amf",
            [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0xff, 0xff, 0xff, 0xff],
            false,
            exact(*b"error: at byte 19: long string of 4294967295 bytes would end past the 65536-byte packet limit\n"),
        ),
        tcp(
            "amf: strict array of 2^32-1 values",
            "amf",
            [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0a, 0xff, 0xff, 0xff, 0xff],
            false,
            exact(*b"error: at byte 15: a strict array of 4294967295 values cannot fit the 65536-byte packet limit\n"),
        ),
        tcp(
            "amf: header name not UTF-8",
            "amf",
            [0, 0, 0, 1, 0, 2, 0xff, 0xfe, 0, 0, 0, 0, 1, 5],
            false,
            exact(*b"error: at byte 6: header name is not valid UTF-8\n"),
        ),
        tcp(
            "amf: negative message length",
            "amf",
            [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfb, 0x05],
            false,
            exact(*b"error: at byte 10: message length -5 is negative (only -1, unknown, is allowed)\n"),
        ),
        tcp(
            "amf: message length that lies",
            "amf",
            [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0x05],
            false,
            exact(*b"error: at byte 10: message length says 7 bytes, but its value takes 1\n"),
        ),
        tcp(
            "amf: nested 40 deep",
            "amf",
            amf_nested(40),
            false,
            exact(*b"error: at byte 174: values nested deeper than 32 levels\n"),
        ),
        tcp(
            "amf: an oversized packet (70,000-byte string)",
            "amf",
            amf_long_string(70_000),
            false,
            exact(*b"error: at byte 19: long string of 70000 bytes would end past the 65536-byte packet limit\n"),
        ),
        tcp("amf: garbage, half-close", "amf", garbage(1000), true, Want::Line("error: at byte ", "\n")),
    ];
    cases.extend(half_closes());
    cases
}

/// An AMF packet with one message whose value is `depth` nested strict arrays.
fn amf_nested(depth: usize) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    for _ in 0..depth {
        p.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    p.push(0x05);
    p
}

/// An AMF packet with one message holding a long string of `len` bytes.
fn amf_long_string(len: u32) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend(std::iter::repeat_n(b'a', len as usize));
    p
}

/// Half-closes at every stage of a request, for every framed plugin.
fn half_closes() -> Vec<Tcp> {
    let mut cases = Vec::new();
    let line = b"one two\r\n";
    for k in 0..=line.len() {
        let prefix = &line[..k];
        let text = prefix.strip_suffix(b"\n").unwrap_or(prefix);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let want = |f: fn(&[u8]) -> Vec<u8>| if k == 0 { Vec::new() } else { [f(text), b"\n".to_vec()].concat() };
        let name = format!("half-close after {k} of {} bytes", line.len());
        cases.push(tcp(
            format!("reverse: {name}"),
            "reverse",
            prefix,
            true,
            exact(want(twirl_protocols::plugins::reverse::reverse)),
        ));
        cases.push(tcp(
            format!("upper: {name}"),
            "upper",
            prefix,
            true,
            exact(want(twirl_protocols::plugins::upper::upper)),
        ));
    }
    let obj = b"{\"a\":1}\n";
    for k in 0..=obj.len() {
        let want = match k {
            0 => Vec::new(),
            1..=6 => json_line(&format!(
                "truncated JSON: EOF while parsing {} at line 1 column {k}",
                ["an object", "a string", "a string", "an object", "a value", "an object"][k - 1]
            )),
            _ => b"{\"a\":1}\n".to_vec(),
        };
        cases.push(tcp(
            format!("json: half-close after {k} of {} bytes", obj.len()),
            "json",
            &obj[..k],
            true,
            exact(want),
        ));
    }
    let records = [LAB, LAB].concat();
    for k in 0..=records.len() {
        let mut want = LAB_LINES.repeat(k / 12);
        if k % 12 != 0 {
            want.push_str(&struct_error(k % 12));
        }
        cases.push(tcp(
            format!("struct: half-close after {k} of 24 bytes"),
            "struct",
            &records[..k],
            true,
            exact(want),
        ));
    }
    let (packet, json) = amf_sample();
    for k in (0..=packet.len()).step_by(7).chain([1, packet.len() - 1, packet.len()]) {
        let want = if k == 0 {
            Vec::new()
        } else if k == packet.len() {
            json.clone().into_bytes()
        } else {
            let needed = match decode_packet(&packet[..k], &AmfLimits::default()) {
                Err(DecodeError::Incomplete { needed }) => needed,
                other => panic!("a prefix of the sample decodes as {other:?}"),
            };
            format!(
                "error: at byte {k}: the stream ended inside a packet ({k} bytes received, at least {needed} needed)\n"
            )
            .into_bytes()
        };
        cases.push(tcp(
            format!("amf: half-close after {k} of {} bytes", packet.len()),
            "amf",
            &packet[..k],
            true,
            exact(want),
        ));
    }
    cases
}

fn run_tcp(server: &AllPlugins, case: &Tcp) -> Result<(), String> {
    let addr = server.tcp(case.plugin);
    let mut s = connect(addr);
    // Write from another thread, so that a server answering as it reads
    // never waits on a client that is not reading yet.
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let (input, half_close) = (case.input.clone(), case.half_close);
    let writer = std::thread::spawn(move || {
        let r = w.write_all(&input);
        if half_close {
            let _ = w.shutdown(Shutdown::Write);
        }
        r
    });
    let (got, end) = read_to_end(&mut s);
    let written = writer.join().map_err(|_| "writer panicked".to_string())?;
    case.want.check(&got)?;
    if end != case.end {
        return Err(format!("ended by {end:?}, want {:?}", case.end));
    }
    // A server that closes early with input unread may reset a write still
    // going; anything else must have gone through.
    if let Err(e) = written
        && case.half_close
    {
        return Err(format!("writing the input: {e}"));
    }
    Ok(())
}

#[test]
fn tcp_bad_inputs_get_their_answer_and_others_are_still_served() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let mut failures = Vec::new();
    for case in tcp_cases() {
        if let Err(e) = run_tcp(&server, &case) {
            failures.push(format!("{}: {e}", case.name));
        }
        if let Err(e) = good_tcp(case.plugin, server.tcp(case.plugin)) {
            failures.push(format!("after {}: {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    let stats = server.wait_until_no_connection(support::WAIT);
    assert_eq!(stats.open, 0, "connections left open: {stats}");
    assert_eq!(stats.panics, 0, "{stats}");
    server.stop();
}

/// One UDP case: one datagram from a fresh socket, then (same socket) a
/// good request, so that a silent drop is told from a late answer: the
/// answers come back in order, and the first must be the good one's.
struct Udp {
    name: &'static str,
    plugin: &'static str,
    input: Vec<u8>,
    want: Want,
}

fn udp(name: &'static str, plugin: &'static str, input: impl Into<Vec<u8>>, want: Want) -> Udp {
    Udp { name, plugin, input: input.into(), want }
}

fn sntp_short(len: usize) -> Vec<u8> {
    support::sntp_request(4, 3, 1).0[..len].to_vec()
}

fn sntp_with(first: u8) -> Vec<u8> {
    let mut p = support::sntp_request(4, 3, 2).0;
    p[0] = first;
    p.to_vec()
}

fn udp_cases() -> Vec<Udp> {
    let max = 65_507; // the largest UDP payload over IPv4
    vec![
        udp("echo: empty datagram", "echo", b"", exact(b"")),
        udp("echo: largest datagram", "echo", garbage(max), exact(garbage(max))),
        udp("discard: garbage", "discard", garbage(1000), Want::Silence),
        udp("chargen: empty datagram", "chargen", b"", Want::Check(is_chargen_lines)),
        udp("reverse: empty datagram", "reverse", b"", exact(b"")),
        udp("reverse: invalid UTF-8", "reverse", *b"\xff\xfe ok \x80", exact(*b"\x80 ok \xff\xfe")),
        udp(
            "reverse: largest datagram",
            "reverse",
            b"ab ".repeat(max / 3),
            exact(b"ab ".repeat(max / 3).trim_ascii_end().to_vec()),
        ),
        udp("upper: empty datagram", "upper", b"", exact(b"")),
        udp("upper: invalid UTF-8", "upper", *b"caf\xe9\n", exact(*b"CAF\xe9\n")),
        udp(
            "json: empty datagram",
            "json",
            b"",
            exact(json_reply("truncated JSON: EOF while parsing a value at line 1 column 0")),
        ),
        udp(
            "json: not JSON",
            "json",
            *b"\x00\xff",
            exact(json_reply("invalid JSON: expected value at line 1 column 1")),
        ),
        udp(
            "json: cut short, second line",
            "json",
            *b"{\"a\":1,\n",
            exact(json_reply("truncated JSON: EOF while parsing a value at line 2 column 0")),
        ),
        udp(
            "json: key not a string",
            "json",
            *b"{\"a\":1,\n  oops}",
            exact(json_reply("invalid JSON: key must be a string at line 2 column 3")),
        ),
        udp(
            "json: largest datagram of brackets",
            "json",
            vec![b'['; max],
            exact(json_reply("too deep: nesting passes 64 levels at line 1 column 65")),
        ),
        udp("json: a number", "json", *b"42", exact(json_reply("expected a JSON object, got a number"))),
        udp("time: empty datagram", "time", b"", exact(*b"error: unknown request, send reqtime")),
        udp("time: garbage", "time", garbage(3000), exact(*b"error: unknown request, send reqtime")),
        udp("daytime: largest datagram", "daytime", garbage(max), Want::Check(support::is_daytime_now)),
        udp("binarytime: garbage", "binarytime", garbage(1000), Want::Check(support::is_binarytime_now)),
        udp("sntp: empty datagram", "sntp", b"", Want::Silence),
        udp("sntp: 47 bytes", "sntp", sntp_short(47), Want::Silence),
        udp("sntp: 1 byte", "sntp", sntp_short(1), Want::Silence),
        udp("sntp: server mode", "sntp", sntp_with((4 << 3) | 4), Want::Silence),
        udp("sntp: symmetric mode", "sntp", sntp_with((4 << 3) | 1), Want::Silence),
        udp("sntp: broadcast mode", "sntp", sntp_with((4 << 3) | 5), Want::Silence),
        udp("sntp: version 0", "sntp", sntp_with(3), Want::Silence),
        udp("sntp: version 5", "sntp", sntp_with((5 << 3) | 3), Want::Silence),
        udp("sntp: version 7, mode 7", "sntp", sntp_with(0xff), Want::Silence),
        udp("sntp: 48 zero bytes", "sntp", [0u8; 48], Want::Silence),
        udp("sntp: garbage", "sntp", garbage(1000), Want::Silence),
        udp(
            "sntp: request with 200 extra bytes",
            "sntp",
            [&support::sntp_request(3, 3, 9).0[..], &[0xee; 200]].concat(),
            Want::Check(|g| {
                support::is_sntp_reply(g, 3, &support::sntp_request(3, 3, 9).1).or_else(|e| {
                    // The seconds may have ticked between the two stamps: compare the tag only.
                    if g.len() == 48 && g[28..32] == 9u32.to_be_bytes() { Ok(()) } else { Err(e) }
                })
            }),
        ),
        udp("reorder: empty datagram", "reorder", b"", exact(b"")),
        udp(
            "reorder: invalid UTF-8 words",
            "reorder",
            *b"\xff a \xe2\x82\xac\xe2\x82\xac bb",
            exact(*b"\xe2\x82\xac\xe2\x82\xac bb \xff a"),
        ),
    ]
}

fn run_udp(server: &AllPlugins, case: &Udp) -> Result<(), String> {
    let to = server.udp(case.plugin);
    if case.plugin == "reorder" {
        // Answers go to the source port + 1.
        let (sender, receiver) = support::port_pair();
        sender.send_to(&case.input, to).map_err(|e| e.to_string())?;
        let got = support::recv_from(&receiver, to).ok_or("no answer on port + 1")?;
        return case.want.check(&got);
    }
    let u = udp_socket();
    u.send_to(&case.input, to).map_err(|e| e.to_string())?;
    match &case.want {
        Want::Silence if case.plugin == "sntp" => {
            let (good, transmit) = support::sntp_request(4, 3, 0xabcd);
            u.send_to(&good, to).map_err(|e| e.to_string())?;
            let got = support::recv_from(&u, to).ok_or("no answer to the good request")?;
            support::is_sntp_reply(&got, 4, &transmit).map_err(|e| format!("first answer is not the good one's: {e}"))
        }
        Want::Silence => Ok(()), // discard: nothing to tell from outside
        want => {
            let got = support::recv_from(&u, to).ok_or("no answer")?;
            want.check(&got)
        }
    }
}

#[test]
fn udp_bad_datagrams_get_their_answer_or_none_and_others_are_still_served() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let mut failures = Vec::new();
    for case in udp_cases() {
        if let Err(e) = run_udp(&server, &case) {
            failures.push(format!("{}: {e}", case.name));
        }
        if let Err(e) = good_udp(case.plugin, server.udp(case.plugin)) {
            failures.push(format!("after {}: {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    let stats = server.stats();
    assert_eq!(stats.panics, 0, "{stats}");
    assert_eq!(stats.datagrams_dropped, 0, "{stats}");
    server.stop();
}

#[test]
fn after_every_kind_of_bad_input_every_plugin_still_serves_everyone() {
    // The cases above check the plugin they hit; this checks the rest: a
    // burst of bad input at every plugin at once, then every good client.
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let mut threads = Vec::new();
    for (i, case) in tcp_cases().into_iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let addr = server.tcp(case.plugin);
        threads.push(std::thread::spawn(move || {
            let mut s = connect(addr);
            let _ = s.write_all(&case.input);
            if i % 2 == 0 {
                let _ = s.shutdown(Shutdown::Write);
                read_to_end(&mut s);
            } else {
                support::reset(s);
            }
        }));
    }
    for case in udp_cases() {
        let u = udp_socket();
        let _ = u.send_to(&case.input, server.udp(case.plugin));
    }
    for t in threads {
        t.join().expect("client thread");
    }
    support::all_good(&server).expect("every good client served");
    let stats = server.wait_until_no_connection(Duration::from_secs(10));
    assert_eq!(stats.open, 0, "{stats}");
    assert_eq!(stats.panics, 0, "{stats}");
    server.stop();
}
