//! The guide's §3 plugin, as written there: the file compiles inside a
//! crate that denies `missing_docs` (as the plugin crate warns), with the
//! paths a file in `protocols/src/plugins/` sees (`crate::plugin`,
//! `crate::sample`); the guide shows it verbatim; and its samples pass
//! against a real server through the same runners the shared tests use.

#![deny(missing_docs)]

mod support;

// What `crate::...` names inside the plugin crate.
pub use twirl_protocols::{plugin, sample};

#[path = "guide/wordcount.rs"]
pub mod wordcount;

#[test]
fn the_guide_shows_the_file_verbatim() {
    let file = include_str!("guide/wordcount.rs");
    let guide = include_str!("../../docs/guide.md");
    assert!(
        guide.contains(&format!("```rust\n{file}```\n")),
        "docs/guide.md §3 differs from protocols/tests/guide/wordcount.rs"
    );
}

#[test]
fn its_samples_pass_on_a_real_server() {
    let p = &wordcount::PLUGIN;
    let server = support::Served::start_plugin(p, &["tcp:0", "udp:0"]);
    support::sample_tcp(p, server.tcp(0)).expect("stream sample");
    support::sample_udp(p, server.udp(1)).expect("datagram sample");
    // And a sample that is wrong is caught.
    let bad = twirl_protocols::sample::Sample {
        via: twirl_protocols::sample::Via::Datagram,
        request: b"a b c",
        answer: twirl_protocols::sample::Answer::Exact(b"2\n"),
    };
    assert!(bad.judge(&support::udp_ask(server.udp(1), bad.request).expect("answer")).is_err());
    server.stop();
}

#[test]
fn the_guides_nc_lines_for_it_print_what_it_says() {
    let ok = std::process::Command::new("nc").arg("-h").output().map(|o| {
        String::from_utf8_lossy(&o.stdout).contains("OpenBSD netcat")
            || String::from_utf8_lossy(&o.stderr).contains("OpenBSD netcat")
    });
    if !matches!(ok, Ok(true)) {
        println!("SKIPPED: nc is not netcat-openbsd here (apt-get install netcat-openbsd)");
        return;
    }
    let server = support::Served::start_plugin(&wordcount::PLUGIN, &["tcp:0", "udp:0"]);
    let guide = include_str!("../../docs/guide.md");
    let mut ran = 0;
    for line in guide.lines().filter(|l| l.contains("| nc ") && l.contains(" 7200`")) {
        for (cmd, want) in line.split('`').collect::<Vec<_>>().windows(3).filter_map(|w| {
            (w[0].contains("| nc ") && w[0].ends_with(" 7200") && w[1].trim() == "→").then_some((w[0], w[2]))
        }) {
            let port = if cmd.contains(" -u ") { server.udp(1).port() } else { server.tcp(0).port() };
            let cmd = cmd.replace(" 7200", &format!(" {port}"));
            let out = support::run(
                {
                    let mut c = std::process::Command::new("sh");
                    c.args(["-c", &cmd]);
                    c
                },
                b"",
                support::WAIT,
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), want, "`{cmd}`");
            ran += 1;
        }
    }
    assert_eq!(ran, 2, "the guide's two nc lines for wordcount");
    server.stop();
}
