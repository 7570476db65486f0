//! What a new user tripped over (issue #17, part 2), each checked the way
//! they met it: the install line on the README's first screen, bare
//! `twirl`, a misspelt plugin, a plugin client's flags in its `--help`,
//! unknown flags refused, `--` before data, and every `nc` line in the
//! README and the guide run with Debian's netcat-openbsd.

mod common;

use std::process::Command;

use common::{Server, output, twirl};
use twirl_protocols::registry::{self, PLUGINS};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn repo_file(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn readme_first_screen_says_how_to_install_and_that_path_builds_twirl() {
    let readme = repo_file("README.md");
    let first_screen: Vec<&str> = readme.lines().take(25).collect();
    assert!(
        first_screen.iter().any(|l| l.trim_start().starts_with("cargo install --path protocols/cli")),
        "no install line on the first screen:\n{}",
        first_screen.join("\n")
    );
    // sudo resets PATH (secure_path): a root command names the binary's path.
    for doc in ["README.md", "docs/guide.md"] {
        assert!(!repo_file(doc).contains("`sudo twirl "), "{doc}: `sudo twirl ...` finds no twirl on sudo's PATH");
    }
    // That path is the package whose binary is `twirl`.
    let manifest = repo_file("protocols/cli/Cargo.toml");
    let bin = manifest.split("[[bin]]").nth(1).expect("a [[bin]] section");
    assert!(bin.contains("name = \"twirl\""), "{manifest}");
}

#[test]
fn bare_twirl_says_a_subcommand_is_missing() {
    let out = output(twirl(&[]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("a subcommand is missing") && err.contains("serve") && err.contains("client"), "{err}");
}

#[test]
fn a_misspelt_client_plugin_lists_the_known_ones() {
    let out = output(twirl(&["client", "ecoh", "tcp:127.0.0.1:7"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown plugin 'ecoh'"), "{err}");
    for p in PLUGINS {
        assert!(err.contains(p.name), "{} missing from: {err}", p.name);
    }
}

#[test]
fn each_plugin_client_help_shows_its_flags() {
    for p in PLUGINS.iter().filter(|p| p.client.is_some() || p.raw.is_some()) {
        let out = output(twirl(&["client", p.name, "--help"]));
        assert!(out.status.success(), "{}: {}", p.name, stderr(&out));
        let text = stdout(&out);
        assert!(text.starts_with(&format!("Usage: twirl client {} ", p.name)), "{text}");
        for f in p.client_flags {
            assert!(text.contains(f.name), "{}: {} not in its help:\n{text}", p.name, f.name);
        }
    }
    // `twirl help PLUGIN` lists them too.
    let help = stdout(&output(twirl(&["help", "caps"])));
    assert!(help.contains("client flags (twirl client caps --help):\n  --bytes N  "), "{help}");
    // The flags the newcomer looked for, by name.
    let help = |name: &str| stdout(&output(twirl(&["client", name, "tcp:127.0.0.1:7", "-h"])));
    assert!(help("chargen").contains("--lines N"));
    assert!(help("caps").contains("--bytes N"));
    let reorder = help("reorder");
    assert!(reorder.contains("--receive") && reorder.contains("--from PORT"), "{reorder}");
}

#[test]
fn an_unknown_client_flag_exits_2_naming_it_and_sends_nothing() {
    let server = Server::start(twirl(&["serve", "caps@tcp:0"]), 1);
    let ep = server.endpoint(0).to_string();
    let out = output(twirl(&["client", "caps", &ep, "--bogus", "5"]));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("'--bogus'"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "nothing reached the server");
    // After `--`, a word that looks like a flag is data.
    let out = output(twirl(&["client", "caps", &ep, "--", "--bogus", "5"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim_end(), "--BOGUS 5");
}

#[test]
fn double_dash_passes_data_to_a_client_without_flags() {
    let server = Server::start(twirl(&["serve", "echo@tcp:0"]), 1);
    let ep = server.endpoint(0).to_string();
    let out = output(twirl(&["client", "echo", &ep, "--", "-x", "--"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim_end(), "-x --");
    // A negative number is data without `--`.
    let out = output(twirl(&["client", "echo", &ep, "-3"]));
    assert_eq!(stdout(&out).trim_end(), "-3", "{}", stderr(&out));
}

/// One `... | nc ...` command from the docs and what they say it prints.
struct NcLine {
    command: String,
    expected: String,
}

/// Every backquoted `... | nc ...` command in `text`, with the
/// backquoted text after its `→`.
fn nc_lines(text: &str) -> Vec<NcLine> {
    let mut found = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split('`').collect();
        for (i, part) in parts.iter().enumerate() {
            if i % 2 == 1 && part.contains("| nc ") {
                let command = part.replace("\\|", "|");
                let expected = parts.get(i + 2).filter(|_| parts[i + 1].trim() == "→").unwrap_or(&"");
                found.push(NcLine { command, expected: expected.to_string() });
            }
        }
    }
    found
}

/// True when `nc` is Debian's netcat-openbsd (the one the docs are checked with).
fn openbsd_nc() -> Result<(), String> {
    let out = Command::new("nc").arg("-h").output().map_err(|e| format!("no nc: {e}"))?;
    let text = format!("{}{}", stdout(&out), stderr(&out));
    if text.contains("OpenBSD netcat") { Ok(()) } else { Err("nc is not netcat-openbsd".into()) }
}

#[test]
fn every_nc_line_in_the_readme_and_guide_prints_what_they_say() {
    if let Err(why) = openbsd_nc() {
        println!("SKIPPED: {why} (apt-get install netcat-openbsd)");
        return;
    }
    let mut lines = nc_lines(&repo_file("README.md"));
    lines.extend(nc_lines(&repo_file("docs/guide.md")));
    assert!(lines.len() >= 3, "the README's nc lines were not found");
    for l in &lines {
        // `... | nc [-u] [flags] 127.0.0.1 PORT`: serve the plugin whose
        // default endpoint that is, on a free port instead.
        let words: Vec<&str> = l.command.split_whitespace().collect();
        let port = *words.last().expect("a port");
        let udp = words.contains(&"-u");
        let default = format!("{}:{port}", if udp { "udp" } else { "tcp" });
        if port == "7200" {
            continue; // the guide's unregistered wordcount: protocols/tests/guide_plugin.rs runs these
        }
        let plugin = PLUGINS
            .iter()
            .find(|p| p.defaults.contains(&default.as_str()))
            .unwrap_or_else(|| panic!("no plugin on {default} for `{}`", l.command));
        let kind = if udp { "udp" } else { "tcp" };
        let server = Server::start(twirl(&["serve", &format!("{}@{kind}:0", plugin.name)]), 1);
        let command = format!("{} {}", l.command.trim_end_matches(port).trim_end(), server.addr(0).port());
        let mut sh = Command::new("timeout");
        sh.args(["5", "sh", "-c", &command]);
        let out = output(sh);
        let got = stdout(&out);
        let got = got.trim_end();
        assert!(!got.is_empty(), "`{}` printed nothing with netcat-openbsd", l.command);
        if registry::find(plugin.name).is_some_and(|p| ["time", "daytime"].contains(&p.name)) {
            // The docs show an example time; any time stamp will do.
            assert!(twirl_protocols::plugins::time::parse_stamp(got).is_some(), "`{}` printed {got:?}", l.command);
        } else {
            assert_eq!(got, l.expected, "`{}`", l.command);
        }
    }
}
