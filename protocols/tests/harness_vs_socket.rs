//! A plugin behaves the same in its unit test as on a socket (issue #11):
//! every stream plugin is driven with the same inputs through
//! `twirl::testing::Harness` and through a real TCP connection to
//! `twirl serve`'s code, and the bytes that come back, and whether the
//! connection ended cleanly, must be the same. The Harness runs the
//! reactor's own connection state machine, so they can only differ where
//! the plugin depends on something else (time, other connections): those
//! plugins are left out here and tested on their own.

mod support;

use std::io::Write;
use std::net::Shutdown;

use support::{End, LAB, Served, connect, read_to_end};
use twirl::Addr;
use twirl::testing::Harness;
use twirl_protocols::registry::PLUGINS;

/// Plugins whose answers depend on the clock or run forever.
// (`http` too: its `Date` header; `protocols/tests/http.rs` compares it with the date set aside.)
const CLOCKED: &[&str] = &["time", "daytime", "binarytime", "chargen", "http"];

/// Inputs, each a list of writes followed by the client's half-close.
fn inputs() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let (amf, _) = support::amf_sample();
    vec![
        ("lines", vec![b"hello big world\n".to_vec(), b"second line\r\n".to_vec(), b"partial".to_vec()]),
        ("nothing", vec![]),
        ("a lab record and a half", vec![LAB.to_vec(), LAB[..5].to_vec()]),
        ("json", vec![b"{\"name\":\"bob\",\"n\":5}\n[1]\n".to_vec()]),
        ("amf", vec![amf]),
        ("binary", vec![vec![0xff, 0x00, 0xfe, b'\n', 0x80, 0x81]]),
        ("reqtime", vec![b"reqtime".to_vec()]),
    ]
}

#[test]
fn every_stream_plugin_answers_the_same_on_the_harness_and_on_a_socket() {
    let mut compared = 0;
    for plugin in PLUGINS.iter().filter(|p| p.stream.is_some() && !p.needs_options() && !CLOCKED.contains(&p.name)) {
        let served = Served::start(&[&format!("{}@tcp:0", plugin.name)]);
        let addr = served.tcp(0);
        for (what, writes) in inputs() {
            // On a socket.
            let mut s = connect(addr);
            let me = Addr::Inet(s.local_addr().expect("local addr"));
            for w in &writes {
                s.write_all(w).expect("write");
            }
            s.shutdown(Shutdown::Write).expect("half-close");
            let (on_socket, end) = read_to_end(&mut s);

            // On the harness, as the same peer.
            let mut factory = (plugin.stream.expect("a stream plugin"))(&twirl_protocols::options::Options::none());
            let mut h = Harness::new(factory.build_protocol(&me)).with_peer(me);
            h.connect();
            for w in &writes {
                h.feed(w);
            }
            h.feed_eof();
            let on_harness = h.take_output();

            assert_eq!(
                String::from_utf8_lossy(&on_harness),
                String::from_utf8_lossy(&on_socket),
                "{}, {what}: the harness and the socket differ",
                plugin.name
            );
            assert_eq!(on_harness, on_socket, "{}, {what}", plugin.name);
            let clean = h.lost_reason().is_some_and(|r| r.is_clean());
            assert_eq!(
                clean,
                end == End::Eof,
                "{}, {what}: harness {:?}, socket {end:?}",
                plugin.name,
                h.lost_reason()
            );
            compared += 1;
        }
        served.stop();
    }
    assert!(compared >= 40, "compared only {compared} exchanges");
}
