//! TLS end to end (issue #15): `twirl cert`, then `twirl serve` with
//! `tls:` endpoints, judged by clients nobody here wrote (Python's `ssl`,
//! `openssl s_client` when installed) and by `twirl client`/`twirl cat`;
//! mutual TLS; a plaintext client, an abandoned handshake, wrong-name and
//! expired certificates, missing files; clients that never read.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{Server, WAIT, output, twirl};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A fresh directory under the target's tmp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `twirl cert DIR`: returns (cert, key).
fn make_cert(dir: &Path) -> (String, String) {
    let out = output(twirl(&["cert", dir.to_str().expect("utf-8")]));
    assert!(out.status.success(), "twirl cert: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "twirl cert prints the two paths: {text}");
    (lines[0].to_string(), lines[1].to_string())
}

fn python() -> bool {
    let ok = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: python3 is not installed");
    }
    ok
}

/// Runs a Python client script with `args`; returns its stdout (asserting success).
fn py(script: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    let out = output(cmd);
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Python's ssl: connect to PORT verifying with CAFILE for NAME, send MSG,
/// read until the server closes (or the first reply, for echo), print it.
/// Optional CERT KEY: present a client certificate. Prints `ERROR kind`
/// when the handshake or the read fails.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, name, msg = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode() + b"\n"
ctx = ssl.create_default_context(cafile=cafile)
if len(sys.argv) > 6:
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(msg)
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            print(s.version(), got.decode().strip())
            s.unwrap()
except (ssl.SSLError, ConnectionError, OSError) as e:
    print("ERROR", type(e).__name__, e)
"#;

fn port(server: &Server, i: usize) -> String {
    server.addr(i).port().to_string()
}

fn serve(specs: &[String], extra: &[&str]) -> Server {
    let mut args: Vec<&str> = vec!["serve"];
    args.extend(extra);
    args.extend(specs.iter().map(String::as_str));
    Server::start(twirl(&args), specs.len())
}

/// Makes a certificate in a fresh directory `name` and serves `plugin` on
/// `tls:0` with it; gives the server and the certificate's path.
fn serve_tls(name: &str, plugin: &str) -> (Server, String) {
    let (cert, key) = make_cert(&scratch(name));
    (serve(&[format!("{plugin}@tls:0:cert={cert}:key={key}")], &[]), cert)
}

#[test]
fn cert_then_echo_and_reverse_for_python_ssl() {
    let dir = scratch("cert");
    let (cert, key) = make_cert(&dir);
    assert!(cert.ends_with("cert.pem") && key.ends_with("key.pem"));

    // Never overwritten, unless --force.
    let again = output(twirl(&["cert", dir.to_str().expect("utf-8")]));
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("cert.pem") && err.contains("already exists"), "{err}");
    let forced = output(twirl(&["cert", dir.to_str().expect("utf-8"), "--force", "--name", "example.test"]));
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));

    let specs = [format!("echo@tls:0:cert={cert}:key={key}"), format!("reverse@tls:0:cert={cert}:key={key}")];
    let server = serve(&specs, &[]);
    assert!(server.lines[0].starts_with("listening echo on tls:127.0.0.1:"), "{:?}", server.lines);
    assert!(server.lines[1].starts_with("listening reverse on tls:127.0.0.1:"), "{:?}", server.lines);
    if !python() {
        return;
    }
    let (echo, reverse) = (port(&server, 0), port(&server, 1));
    assert_eq!(py(PY_CLIENT, &[&echo, &cert, "localhost", "hello over tls"]), "TLSv1.3 hello over tls\n");
    assert_eq!(py(PY_CLIENT, &[&reverse, &cert, "localhost", "hello big world"]), "TLSv1.3 world big hello\n");
    // Valid for the IP address too, and for the --name added.
    assert_eq!(py(PY_CLIENT, &[&echo, &cert, "127.0.0.1", "by address"]), "TLSv1.3 by address\n");
    assert_eq!(py(PY_CLIENT, &[&echo, &cert, "example.test", "by name"]), "TLSv1.3 by name\n");
    // A name the certificate does not cover: Python refuses it.
    let wrong = py(PY_CLIENT, &[&echo, &cert, "wrong.example", "x"]);
    assert!(wrong.starts_with("ERROR SSLCertVerificationError"), "{wrong}");
}

#[test]
fn twirl_client_and_cat_over_tls() {
    let dir = scratch("client");
    let (cert, key) = make_cert(&dir);
    let specs = [format!("echo@tls:0:cert={cert}:key={key}"), format!("reverse@tls:0:cert={cert}:key={key}")];
    let server = serve(&specs, &[]);
    let (echo, reverse) = (port(&server, 0), port(&server, 1));

    let out = output(twirl(&["client", "echo", &format!("tls:localhost:{echo}:ca={cert}"), "hello", "tls"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello tls\n");

    // twirl cat: a megabyte through echo and back (flow control under TLS),
    // and a line through reverse.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| b"abcdefghij\n"[(i % 11) as usize]).collect();
    let input = dir.join("input");
    std::fs::write(&input, &data).expect("input file");
    let mut cmd = twirl(&["cat", &format!("tls:127.0.0.1:{echo}:ca={cert}:name=localhost")]);
    cmd.stdin(std::fs::File::open(&input).expect("open input"));
    let out = output(cmd);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == data, "cat got {} bytes back, wanted {}", out.stdout.len(), data.len());

    let mut cmd = twirl(&["cat", &format!("tls:localhost:{reverse}:ca={cert}")]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn cat");
    child.stdin.take().expect("stdin").write_all(b"one two three\n").expect("write");
    let out = common::finish(child, WAIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "three two one\n");

    // The platform roots do not know this certificate: refused, exit 1.
    let out = output(twirl(&["client", "echo", &format!("tls:localhost:{echo}"), "x"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS") && err.contains("UnknownIssuer"), "{err}");
}

/// Reads the child's stderr lines into a channel.
fn stderr_lines(server: &mut Server) -> mpsc::Receiver<String> {
    let stderr = server.child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (at most [`WAIT`]) for a stderr line for which `f` holds.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if f(&line) => return line,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no stderr line {what} in time");
}

/// Reads from `s` until EOF or an error; returns what came.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn plaintext_garbage_and_abandoned_handshakes_are_closed_others_served() {
    let dir = scratch("plain");
    let (cert, key) = make_cert(&dir);
    let specs = [format!("echo@tls:0:cert={cert}:key={key}:handshake_timeout=0.3")];
    let mut server = serve(&specs, &["--trace", "--stats", "0.2"]);
    let rx = stderr_lines(&mut server);
    let addr = server.addr(0);

    // Someone who never says anything: closed by the handshake timeout.
    let mut silent = TcpStream::connect(addr).expect("connect");
    // A plaintext client: a TLS alert at most, then the close.
    let mut plain = TcpStream::connect(addr).expect("connect");
    plain.write_all(b"hello, is this echo?\n").expect("write");
    let answer = read_until_closed(&mut plain);
    assert!(!answer.windows(5).any(|w| w == b"hello"), "plaintext was echoed: {answer:?}");
    assert!(answer.is_empty() || answer[0] == 0x15, "expected nothing or a TLS alert record: {answer:?}");
    // Garbage that looks like a TLS record header.
    let mut garbage = TcpStream::connect(addr).expect("connect");
    garbage.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).expect("write");
    let _ = garbage.shutdown(Shutdown::Write);
    read_until_closed(&mut garbage);
    assert!(read_until_closed(&mut silent).is_empty(), "the silent client got bytes");

    // Meanwhile and afterwards, TLS clients are served.
    let out = output(twirl(&["client", "echo", &format!("tls:localhost:{}:ca={cert}", addr.port()), "still", "here"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");

    // The trace shows the handshake with its version and suite; the stats
    // count the handshake and the three failures.
    let done = wait_line(&rx, "with the handshake", |l| l.contains("TLS handshake done"));
    assert!(done.contains("TLSv1_3") && done.contains("TLS13_"), "{done}");
    let stats = wait_line(&rx, "with the TLS counts", |l| l.contains("tls_handshakes=1 tls_failures=3"));
    let (old_last, tls) = (stats.find(" vectored_writes="), stats.find(" tls_handshakes="));
    assert!(old_last.is_some() && tls > old_last, "new fields come after the old ones: {stats}");
}

/// Writes `params` signed by `issuer` (or self-signed) as DIR/STEM.pem and
/// DIR/STEM.key; returns the paths.
fn write_cert(
    dir: &Path,
    stem: &str,
    params: &CertificateParams,
    issuer: Option<&Issuer<'_, KeyPair>>,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = match issuer {
        Some(i) => params.signed_by(&key, i).expect("sign"),
        None => params.self_signed(&key).expect("self-sign"),
    };
    let (c, k) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c.to_str().expect("utf-8").to_string(), k.to_str().expect("utf-8").to_string())
}

#[test]
fn mutual_tls_with_client_ca() {
    if !python() {
        return;
    }
    let dir = scratch("mtls");
    let (cert, key) = make_cert(&dir);
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "twirl test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).expect("write ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut client_params = CertificateParams::new(vec!["client.test".to_string()]).expect("params");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (client_cert, client_key) = write_cert(&dir, "client", &client_params, Some(&issuer));
    // A client certificate from someone else's CA.
    let (other_cert, other_key) = write_cert(&dir, "other", &client_params, None);

    let ca = ca_path.to_str().expect("utf-8");
    let server = serve(&[format!("echo@tls:0:cert={cert}:key={key}:client_ca={ca}")], &[]);
    let p = port(&server, 0);
    let ok = py(PY_CLIENT, &[&p, &cert, "localhost", "with a client cert", &client_cert, &client_key]);
    assert_eq!(ok, "TLSv1.3 with a client cert\n");
    let none = py(PY_CLIENT, &[&p, &cert, "localhost", "without"]);
    assert!(none.starts_with("ERROR"), "served without a client certificate: {none}");
    let other = py(PY_CLIENT, &[&p, &cert, "localhost", "stranger", &other_cert, &other_key]);
    assert!(other.starts_with("ERROR"), "served a client certificate from another CA: {other}");
    // Still serving the right client after the refusals.
    let again = py(PY_CLIENT, &[&p, &cert, "localhost", "again", &client_cert, &client_key]);
    assert_eq!(again, "TLSv1.3 again\n");
}

#[test]
fn the_client_refuses_expired_and_wrong_name_certificates() {
    let dir = scratch("refuse");
    let mut expired = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    expired.not_before = rcgen::date_time_ymd(2000, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let (old_cert, old_key) = write_cert(&dir, "expired", &expired, None);
    let other = CertificateParams::new(vec!["elsewhere.test".to_string()]).expect("params");
    let (far_cert, far_key) = write_cert(&dir, "elsewhere", &other, None);
    let specs =
        [format!("echo@tls:0:cert={old_cert}:key={old_key}"), format!("echo@tls:0:cert={far_cert}:key={far_key}")];
    let server = serve(&specs, &[]);
    let cases = [
        (format!("tls:localhost:{}:ca={old_cert}", port(&server, 0)), "certificate expired"),
        (format!("tls:localhost:{}:ca={far_cert}", port(&server, 1)), "not valid for name"),
        (format!("tls:127.0.0.1:{}:ca={far_cert}:name=wrong.test", port(&server, 1)), "not valid for name"),
    ];
    for (ep, why) in cases {
        let out = output(twirl(&["client", "echo", &ep, "secret"]));
        assert_eq!(out.status.code(), Some(1), "{ep}");
        assert!(out.stdout.is_empty(), "{ep}: the client sent or printed: {:?}", out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{ep}: {err}");
    }
    // The right name works on the same server (elsewhere.test does not
    // resolve: connect by address, name it with name=).
    let ep = format!("tls:127.0.0.1:{}:ca={far_cert}:name=elsewhere.test", port(&server, 1));
    let out = output(twirl(&["client", "echo", &ep, "hi"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

#[test]
fn bad_files_exit_1_naming_the_file_before_anything_listens() {
    let dir = scratch("files");
    let (cert, key) = make_cert(&dir);
    let other = dir.join("other");
    let (_, other_key) = make_cert(&other);
    let missing = dir.join("nope.pem");
    let missing = missing.to_str().expect("utf-8");
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let not_pem = not_pem.to_str().expect("utf-8");
    let cases = [
        (format!("echo@tls:0:cert={missing}:key={key}"), missing.to_string(), "cannot read"),
        (format!("echo@tls:0:cert={cert}:key={missing}"), missing.to_string(), "cannot read"),
        (format!("echo@tls:0:cert={not_pem}:key={key}"), not_pem.to_string(), "no certificate"),
        (format!("echo@tls:0:cert={cert}:key={not_pem}"), not_pem.to_string(), "no private key"),
        (format!("echo@tls:0:cert={cert}:key={other_key}"), other_key.clone(), "does not match"),
        (format!("echo@tls:0:cert={cert}:key={key}:client_ca={missing}"), missing.to_string(), "cannot read"),
    ];
    for (spec, file, problem) in cases {
        // A good listener first: it must not be bound either.
        let out = output(twirl(&["serve", "echo@tcp:0", &spec]));
        assert_eq!(out.status.code(), Some(1), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&file) && err.contains(problem), "{spec}: {err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "{spec}: something listened");
    }
    // Bad words in the endpoint: a usage error, exit 2.
    for spec in ["echo@tls:0:cert=a.pem", "echo@tls:0:cert=a:key=b:colour=red", "echo@ssl:0"] {
        let out = output(twirl(&["serve", spec]));
        assert_eq!(out.status.code(), Some(2), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = output(twirl(&["client", "echo", "tls:localhost:1:pin=x", "hi"]));
    assert_eq!(out.status.code(), Some(2));
    // A missing CA file for the client: exit 1, naming it.
    let out = output(twirl(&["client", "echo", &format!("tls:localhost:1:ca={missing}"), "hi"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing));
}

#[test]
fn openssl_s_client_talks_to_echo() {
    if !Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: openssl is not installed (.ci/run installs it)");
        return;
    }
    let (server, cert) = serve_tls("openssl", "echo");
    let connect = format!("127.0.0.1:{}", port(&server, 0));
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &connect, "-CAfile", &cert, "-servername", "localhost"])
        .args(["-verify_return_error", "-verify_hostname", "localhost", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"hello from openssl\n").expect("write");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT);
    drop(stdin);
    let _ = child.kill();
    let out = common::finish(child, WAIT);
    assert_eq!(line.as_deref(), Ok("hello from openssl\n"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Two Python ssl clients in the chat room: A's line reaches B. Prints
/// what B received after A spoke.
const PY_CHAT: &str = r#"
import socket, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
def join():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    f = s.makefile("rb")
    return s, f
a, fa = join()
fa.readline()  # * you are ...
b, fb = join()
fb.readline()  # * you are ...
fa.readline()  # * B joined
a.sendall(b"hello room\n")
print(fb.readline().decode().strip())
"#;

#[test]
fn chat_broadcasts_by_id_through_the_layer() {
    if !python() {
        return;
    }
    let (server, cert) = serve_tls("chat", "chat");
    let got = py(PY_CHAT, &[&port(&server, 0), &cert]);
    assert!(got.starts_with("[127.0.0.1:") && got.trim_end().ends_with("] hello room"), "{got}");
}

#[test]
fn portforward_terminates_and_originates_tls() {
    let dir = scratch("forward");
    let (cert, key) = make_cert(&dir);
    // A TLS echo behind a plain front (Context::connect to a tls: endpoint),
    // and a TLS front before a plain echo.
    let backend = serve(&[format!("echo@tls:0:cert={cert}:key={key}"), "echo@tcp:0".to_string()], &[]);
    let to_tls = format!("to=tls:localhost:{}:ca={cert}", port(&backend, 0));
    let to_plain = format!("to=tcp:127.0.0.1:{}", port(&backend, 1));
    let specs = ["portforward@tcp:0".to_string(), to_tls, format!("portforward@tls:0:cert={cert}:key={key}"), to_plain];
    let front =
        Server::start(twirl(&[&["serve"][..], &specs.iter().map(String::as_str).collect::<Vec<_>>()].concat()), 2);

    let mut s = TcpStream::connect(front.addr(0)).expect("connect");
    s.write_all(b"plain in, tls out\n").expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(read_until_closed(&mut s), b"plain in, tls out\n");

    let out = output(twirl(&["client", "echo", &format!("tls:localhost:{}:ca={cert}", port(&front, 1)), "tls", "in"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tls in\n");
}

#[test]
fn ipv6_twisted_spelling_and_cat_listen() {
    let dir = scratch("more");
    let (cert, key) = make_cert(&dir);
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();
    if !ipv6 {
        eprintln!("skipping the IPv6 part: no IPv6 loopback here");
    }
    let mut specs = vec![format!("echo@ssl:0:privateKey={key}:certKey={cert}")];
    if ipv6 {
        specs.push(format!("echo@tls:0:cert={cert}:key={key}:interface=::1"));
    }
    let server = serve(&specs, &[]);
    assert!(server.lines[0].starts_with("listening echo on tls:127.0.0.1:"), "{:?}", server.lines);
    let mut cases = vec![(format!("tls:localhost:{}:ca={cert}", port(&server, 0)), "twisted")];
    if ipv6 {
        assert!(server.lines[1].starts_with("listening echo on tls:[::1]:"), "{:?}", server.lines);
        // The certificate is valid for ::1, the default name for the host [::1].
        cases.push((format!("tls:[::1]:{}:ca={cert}", port(&server, 1)), "six"));
    }
    for (ep, word) in cases {
        let out = output(twirl(&["client", "echo", &ep, word]));
        assert!(out.status.success(), "{ep}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{word}\n"));
    }

    // twirl cat --listen on a tls: endpoint, spoken to by Python's ssl.
    if !python() {
        return;
    }
    let mut cat = twirl(&["cat", "--listen", &format!("tls:0:cert={cert}:key={key}")]);
    let mut child = cat.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn cat");
    let stderr = child.stderr.take().expect("stderr");
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).expect("listening line");
    let port = line.trim().rsplit(':').next().expect("port").to_string();
    assert!(line.starts_with("listening on tls:127.0.0.1:"), "{line}");
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10), server_hostname="localhost")
s.sendall(b"to the listener\n")
s.unwrap()
s.close()
"#;
    py(script, &[&port, &cert]);
    drop(child.stdin.take());
    let out = common::finish(child, WAIT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to the listener\n");
}

/// Connects, gets one echo, says `ready`, then reports how the server's
/// close looked: `clean` (close_notify, then EOF) or the error.
const PY_WAIT_CLOSE: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
# Without close_notify, the EOF is an error (not b"").
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
s.sendall(b"hi\n")
assert s.recv(100) == b"hi\n"
print("ready", flush=True)
try:
    print("clean" if s.recv(100) == b"" else "data")
except ssl.SSLError as e:
    print("ERROR", type(e).__name__, e)
"#;

#[test]
fn a_graceful_stop_says_close_notify() {
    if !python() {
        return;
    }
    let (server, cert) = serve_tls("stop", "echo");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PY_WAIT_CLOSE).args([&port(&server, 0), &cert]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn python");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    assert_eq!(rx.recv_timeout(WAIT).as_deref(), Ok("ready"));
    server.signal(libc::SIGTERM);
    // Python's ssl reports an EOF without close_notify as SSLEOFError.
    assert_eq!(rx.recv_timeout(WAIT).as_deref(), Ok("clean"));
    let out = common::finish(child, WAIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Python's urllib over https: a file larger than the server reads in one
/// piece, whole and as a range (under TLS the layer reads and writes the
/// file: `sendfile` cannot encrypt).
const PY_HTTPS: &str = r#"
import ssl, sys, urllib.request
port, cafile = int(sys.argv[1]), sys.argv[2]
big = bytes((i * 13 % 251) for i in range(1_000_000))
ctx = ssl.create_default_context(cafile=cafile)
url = f"https://localhost:{port}/big.bin"
with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
    assert r.status == 200 and r.read() == big, "whole file"
req = urllib.request.Request(url, headers={"Range": "bytes=100000-"})
with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
    assert r.status == 206 and r.read() == big[100000:], "range"
print("https ok")
"#;

#[test]
fn http_serves_large_files_over_tls_to_python_urllib() {
    let dir = scratch("https");
    let (cert, key) = make_cert(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).expect("root");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).expect("big file");
    let spec = format!("http@tls:0:cert={cert}:key={key}");
    let server = Server::start(twirl(&["serve", &spec, &format!("root={}", root.display())]), 1);
    if !python() {
        return;
    }
    assert_eq!(py(PY_HTTPS, &[&port(&server, 0), &cert]), "https ok\n");
}

/// Python's ssl: opens COUNT connections to PORT (verifying with CAFILE),
/// and on each sends up to MIB MiB without ever reading, until a send
/// blocks for half a second; prints how much each sent, then holds them
/// all open until its stdin closes.
const PY_NEVER_READS: &str = r#"
import socket, ssl, sys
port, cafile, count, mib = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=cafile)
held, sent = [], []
for _ in range(count):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.settimeout(0.5)
    chunk, n = b"x" * 65536, 0
    try:
        while n < mib << 20:
            s.sendall(chunk)
            n += len(chunk)
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    held.append(s)
    sent.append(n)
print(" ".join(map(str, sent)), flush=True)
sys.stdin.readline()
"#;

#[test]
fn tls_clients_that_never_read_leave_the_server_small_and_others_served() {
    if !python() {
        return;
    }
    let (mut server, cert) = serve_tls("never-read", "echo");
    let echo = port(&server, 0);
    let before = common::rss(server.child.id());
    // 8 clients each try to push 32 MiB through the echo and read nothing:
    // backpressure holds each to about one high-water mark, ciphertext
    // and batch included (the kernel's buffers take a few MiB more: about
    // 7.5 MiB each went here).
    let mut clients = Command::new("python3");
    clients.arg("-c").arg(PY_NEVER_READS).args([&echo, &cert, "8", "32"]);
    let mut clients = clients.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("python3");
    let mut line = String::new();
    let stdout = clients.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).expect("the clients' report");
    let sent: Vec<usize> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    assert_eq!(sent.len(), 8, "{line:?}");
    assert!(sent.iter().all(|&n| n < 32 << 20), "a client sent all 32 MiB: the server buffered it ({sent:?})");
    let grew = common::rss(server.child.id()).saturating_sub(before);
    assert!(grew < 24 << 20, "the server grew by {} MiB for 8 TLS clients that never read", grew >> 20);
    // And a client that reads is served meanwhile.
    assert_eq!(py(PY_CLIENT, &[&echo, &cert, "localhost", "still here"]), "TLSv1.3 still here\n");
    drop(clients.stdin.take());
    let _ = clients.wait();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));
}
