//! The `twirl client` binary's caps and discard clients against a real
//! reactor on loopback; the stream plugins themselves are tested in the
//! plugin crate (`protocols/tests/stream_plugins.rs`).

// The plugin crate's test support, shared rather than copied.
#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::net::Shutdown;
use std::process::Command;

use support::{AllPlugins, End, connect, read_to_end};
use twirl::Config;
use twirl_protocols::serve::ServeLimits;

const BIN: &str = env!("CARGO_BIN_EXE_twirl");

#[test]
fn caps_and_discard_clients_from_the_binary() {
    let server = AllPlugins::start(Config::default(), ServeLimits::default());
    let caps = format!("tcp:{}", server.tcp("caps"));
    let out = Command::new(BIN).args(["client", "caps", &caps, "--bytes", "2000000"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sent 2000000 bytes, received 2000000 bytes, all uppercased\n");
    let out = Command::new(BIN).args(["client", "caps", &caps, "hello", "world"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO WORLD\n");

    for kind in ["tcp", "udp"] {
        let ep = match kind {
            "tcp" => format!("tcp:{}", server.tcp("discard")),
            _ => format!("udp:{}", server.udp("discard")),
        };
        let out = Command::new(BIN).args(["client", "discard", &ep, "into", "the", "void"]).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "sent 13 bytes\n");
    }
    let mut s = connect(server.tcp("discard"));
    s.write_all(&[0u8; 100_000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), (Vec::new(), End::Eof), "discard answers nothing, then closes");
    server.stop();
}
