//! The byte-order and time plugins (`struct`, `amf`, `daytime`,
//! `binarytime`, `sntp`) end to end over loopback: a real reactor serving
//! them on ephemeral ports, driven by std sockets and by Python's `ntplib`
//! when it is installed. The `twirl client` binary's side is tested where
//! the binary is built: `protocols/cli/tests/codec_clients.rs`.
//!
//! Every wait is bounded: socket reads have timeouts, channel receives use
//! `recv_timeout`, child processes are killed after [`WAIT`].

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use twirl_protocols::plugins::amf::codec::encode_packet;
use twirl_protocols::plugins::amf::{json, sample_packet};

mod support;
use support::{LAB, LAB_LINES, SECONDS_1900_TO_1970, Served as Server, stdout};

const WAIT: Duration = Duration::from_secs(20);
const READ: Duration = Duration::from_secs(5);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(READ)).expect("read timeout");
    s.set_write_timeout(Some(READ)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Reads until `n` newlines have arrived; panics on EOF or timeout first.
fn read_lines(s: &mut TcpStream, n: usize) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while out.iter().filter(|&&c| c == b'\n').count() < n {
        let got = s.read(&mut b).unwrap_or_else(|e| panic!("reading (have {:?}): {e}", String::from_utf8_lossy(&out)));
        assert!(got > 0, "EOF after {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&b[..got]);
    }
    String::from_utf8(out).expect("UTF-8")
}

/// Reads to EOF (bounded by the read timeout).
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.set_read_timeout(Some(READ)).expect("read timeout");
    s
}

fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut b = [0u8; 2048];
    let (n, _) = s.recv_from(&mut b).expect("a datagram in time");
    b[..n].to_vec()
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

// ---------------------------------------------------------------- struct

#[test]
fn struct_lab_record_gets_both_lines_exactly() {
    let server = Server::start(&["struct@tcp:0"]);
    let mut s = connect(server.tcp(0));
    s.write_all(&LAB).unwrap();
    assert_eq!(read_lines(&mut s, 2), LAB_LINES);
    // The same values packed little-endian, as `struct.pack('<HIhi', ...)`.
    s.write_all(&[1, 0, 2, 0, 0, 0, 0xfd, 0xff, 0xfc, 0xff, 0xff, 0xff]).unwrap();
    assert_eq!(read_lines(&mut s, 2), "big-endian: 256 33554432 -513 -50331649\nlittle-endian: 1 2 -3 -4\n");
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_all(&mut s).is_empty(), "a clean close after whole records");
    server.stop();
}

#[test]
fn struct_records_split_across_writes_and_partial_at_half_close() {
    let server = Server::start(&["struct@tcp:0"]);
    let mut s = connect(server.tcp(0));
    let mut stream = LAB.to_vec();
    stream.extend_from_slice(&LAB);
    stream.extend_from_slice(&LAB[..5]);
    // 3 + 4 + 10 + 12: records cut across writes, a write holding two record ends.
    for piece in [&stream[..3], &stream[3..7], &stream[7..17], &stream[17..]] {
        s.write_all(piece).unwrap();
    }
    assert_eq!(read_lines(&mut s, 4), LAB_LINES.repeat(2));
    s.shutdown(Shutdown::Write).unwrap();
    let rest = String::from_utf8(read_all(&mut s)).unwrap();
    assert_eq!(rest, "error: the stream ended inside a record: 5 bytes left over, a record is 12 (u16 u32 i16 i32)\n");
    server.stop();
}

// ---------------------------------------------------------------- amf

#[test]
fn amf_sample_packet_round_trips_through_the_server() {
    let server = Server::start(&["amf@tcp:0"]);
    let bytes = encode_packet(&sample_packet()).unwrap();
    let mut s = connect(server.tcp(0));
    // Two packets, the first split across writes.
    s.write_all(&bytes[..7]).unwrap();
    s.write_all(&bytes[7..]).unwrap();
    s.write_all(&bytes).unwrap();
    let text = read_lines(&mut s, 2);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], lines[1]);
    assert_eq!(json::packet_from_json(lines[0]).unwrap(), sample_packet(), "{}", lines[0]);
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_all(&mut s).is_empty());
    server.stop();
}

#[test]
fn amf_malformed_packet_gets_error_and_close_while_another_client_is_served() {
    let server = Server::start(&["amf@tcp:0"]);
    let bytes = encode_packet(&sample_packet()).unwrap();
    // A sends half a packet and waits.
    let mut a = connect(server.tcp(0));
    a.write_all(&bytes[..bytes.len() / 2]).unwrap();
    // B sends a packet whose message value has type marker 0x42, at byte 15.
    let mut b = connect(server.tcp(0));
    b.write_all(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x42, 0, 0, 0]).unwrap();
    assert_eq!(String::from_utf8(read_all(&mut b)).unwrap(), "error: at byte 15: unknown type marker 0x42\n");
    // A is still served.
    a.write_all(&bytes[bytes.len() / 2..]).unwrap();
    let line = read_lines(&mut a, 1);
    assert_eq!(json::packet_from_json(line.trim_end()).unwrap(), sample_packet());
    // And a 4 GiB long string is refused at once, not waited for.
    let mut c = connect(server.tcp(0));
    c.write_all(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0c, 0xff, 0xff, 0xff, 0xff]).unwrap();
    let reply = String::from_utf8(read_all(&mut c)).unwrap();
    assert!(reply.starts_with("error: at byte 19: long string of 4294967295 bytes"), "{reply}");
    server.stop();
}

// ---------------------------------------------------------------- daytime

fn check_daytime(line: &str) {
    let text = line.strip_suffix("\r\n").unwrap_or_else(|| panic!("{line:?} ends with CRLF"));
    let t = chrono::NaiveDateTime::parse_from_str(text, "%A, %B %d, %Y %H:%M:%S-UTC")
        .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let secs = t.and_utc().timestamp() as f64;
    assert!((secs - unix_now()).abs() < 5.0, "{text} is not now");
}

#[test]
fn daytime_over_tcp_and_udp() {
    let server = Server::start(&["daytime@tcp:0", "daytime@udp:0"]);
    let mut s = connect(server.tcp(0));
    let line = String::from_utf8(read_all(&mut s)).unwrap();
    check_daytime(&line);

    let u = udp_client();
    u.send_to(b"", server.udp(1)).unwrap();
    check_daytime(&String::from_utf8(recv(&u)).unwrap());
    u.send_to(&[b'x'; 1000], server.udp(1)).unwrap();
    let reply = recv(&u);
    assert!(reply.len() < 64, "a bounded reply, whatever the request's size");
    server.stop();
}

// ---------------------------------------------------------------- binarytime

fn check_binarytime(b: &[u8]) {
    let v: [u8; 4] = b.try_into().unwrap_or_else(|_| panic!("{} bytes, not 4", b.len()));
    let unix = u64::from(u32::from_be_bytes(v)) as f64 - SECONDS_1900_TO_1970 as f64;
    assert!((unix - unix_now()).abs() < 5.0, "{unix} is not now");
}

#[test]
fn binarytime_over_tcp_and_udp() {
    let server = Server::start(&["binarytime@tcp:0", "binarytime@udp:0"]);
    let mut s = connect(server.tcp(0));
    check_binarytime(&read_all(&mut s));

    let u = udp_client();
    u.send_to(b"", server.udp(1)).unwrap();
    check_binarytime(&recv(&u));
    u.send_to(b"anything at all", server.udp(1)).unwrap();
    check_binarytime(&recv(&u));
    server.stop();
}

// ---------------------------------------------------------------- sntp

/// A hand-built 48-byte client request: LI 0, `version`, mode 3, poll 6,
/// transmit = now, the seconds stamped with a recognisable fraction.
fn sntp_request(version: u8, mode: u8, tag: u32) -> ([u8; 48], [u8; 8]) {
    let mut p = [0u8; 48];
    p[0] = (version << 3) | mode;
    p[2] = 6;
    let secs = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + SECONDS_1900_TO_1970) as u32;
    let mut transmit = [0u8; 8];
    transmit[..4].copy_from_slice(&secs.to_be_bytes());
    transmit[4..].copy_from_slice(&tag.to_be_bytes());
    p[40..].copy_from_slice(&transmit);
    (p, transmit)
}

fn ntp_seconds(b: &[u8]) -> f64 {
    let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64;
    let frac = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as f64 / 4_294_967_296.0;
    secs + frac - SECONDS_1900_TO_1970 as f64
}

fn check_sntp_reply(r: &[u8], version: u8, transmit: &[u8; 8]) {
    assert_eq!(r.len(), 48);
    assert_eq!(r[0] >> 6, 0, "leap indicator");
    assert_eq!((r[0] >> 3) & 7, version, "version copied");
    assert_eq!(r[0] & 7, 4, "server mode");
    assert_eq!(r[1], 10, "stratum");
    assert_eq!(r[2], 6, "poll copied");
    assert!((r[3] as i8) < 0 && (r[3] as i8) >= -32, "precision {}", r[3] as i8);
    assert_eq!(&r[12..16], b"LOCL");
    assert_eq!(&r[24..32], transmit, "originate is our transmit timestamp");
    let (reference, receive, tx) = (ntp_seconds(&r[16..24]), ntp_seconds(&r[32..40]), ntp_seconds(&r[40..48]));
    let now = unix_now();
    assert!((receive - now).abs() < 5.0 && (tx - now).abs() < 5.0, "{receive} {tx} vs {now}");
    assert!(tx >= receive, "transmit after receive");
    assert!(reference < tx && tx - reference < 86_400.0, "reference {reference} before transmit {tx}");
    assert!(receive.fract() != 0.0 || tx.fract() != 0.0, "sub-second timestamps");
}

#[test]
fn sntp_answers_a_hand_built_request() {
    let server = Server::start(&["sntp@udp:0"]);
    let u = udp_client();
    for version in [4, 3, 1] {
        let (req, transmit) = sntp_request(version, 3, 0x1234_5678 + u32::from(version));
        u.send_to(&req, server.udp(0)).unwrap();
        check_sntp_reply(&recv(&u), version, &transmit);
    }
    server.stop();
}

#[test]
fn sntp_ignores_short_and_garbage_datagrams_while_answering_good_ones() {
    let server = Server::start(&["sntp@udp:0"]);
    let u = udp_client();
    let to = server.udp(0);
    let (good, transmit) = sntp_request(4, 3, 0xabcd_0001);
    u.send_to(&good[..47], to).unwrap();
    u.send_to(b"what time is it?", to).unwrap();
    u.send_to(b"", to).unwrap();
    let (symmetric, _) = sntp_request(4, 1, 1);
    u.send_to(&symmetric, to).unwrap();
    let (server_mode, _) = sntp_request(4, 4, 2);
    u.send_to(&server_mode, to).unwrap();
    let (v7, _) = sntp_request(7, 3, 3);
    u.send_to(&v7, to).unwrap();
    u.send_to(&good, to).unwrap();
    // The server handles datagrams in order: the first reply is the good one's...
    check_sntp_reply(&recv(&u), 4, &transmit);
    // ...and nothing was queued behind it for the garbage.
    let (second, transmit2) = sntp_request(2, 3, 0xabcd_0002);
    u.send_to(&second, to).unwrap();
    check_sntp_reply(&recv(&u), 2, &transmit2);
    server.stop();
}

/// Python's `ntplib` (seed 002) against the server, if python3 and ntplib are there.
#[test]
fn sntp_answers_python_ntplib() {
    let probe =
        Command::new("python3").args(["-c", "import ntplib"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    match probe {
        Err(e) => return println!("skipped: python3 is not available ({e})"),
        Ok(s) if !s.success() => return println!("skipped: the ntplib module is not installed (pip install ntplib)"),
        Ok(_) => {}
    }
    let server = Server::start(&["sntp@udp:0"]);
    let port = server.udp(0).port().to_string();
    let script = "import ntplib, sys\n\
                  for v in (2, 3, 4):\n\
                  \x20   r = ntplib.NTPClient().request('127.0.0.1', port=int(sys.argv[1]), version=v, timeout=5)\n\
                  \x20   print(r.version, r.mode, r.stratum, r.leap, r.precision, r.ref_id, r.offset, r.delay, r.tx_time)\n";
    let mut c = Command::new("python3");
    c.args(["-c", script, &port]);
    let out = support::run(c, b"", WAIT);
    assert!(out.status.success(), "ntplib failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, version) in lines.iter().zip(["2", "3", "4"]) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&f[..4], &[version, "4", "10", "0"], "{line}");
        assert_eq!(f[5], u32::from_be_bytes(*b"LOCL").to_string(), "{line}");
        let offset: f64 = f[6].parse().unwrap();
        let delay: f64 = f[7].parse().unwrap();
        let tx: f64 = f[8].parse().unwrap();
        assert!(offset.abs() < 1.0 && (0.0..1.0).contains(&delay), "{line}");
        assert!((tx - unix_now()).abs() < 5.0, "{line}");
    }
    server.stop();
}
