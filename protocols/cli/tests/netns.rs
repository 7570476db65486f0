//! UDP replies to addresses off loopback (issue #12), in a private network
//! namespace the test makes itself (`ip netns`, as root; skipped with a
//! printed reason otherwise): two non-loopback addresses on the namespace's
//! own `lo`, a `twirl serve` on one and a client on the other. Nothing
//! leaves this machine, nor even the namespace.

mod common;

use std::process::{Command, Stdio};

use common::{Server, bin};

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> Result<Netns, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let name = format!("twirl-test-{}", std::process::id());
        let ns = Netns(name.clone());
        ns.run(&["ip", "netns", "add", &name], false)?;
        ns.run(&["ip", "link", "set", "lo", "up"], true)?;
        for a in ["10.200.0.1/32", "10.200.0.2/32"] {
            ns.run(&["ip", "addr", "add", a, "dev", "lo"], true)?;
        }
        Ok(ns)
    }

    /// Runs a command (inside the namespace if `inside`).
    fn run(&self, args: &[&str], inside: bool) -> Result<String, String> {
        let cmd = if inside {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.0]).args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        let out = common::output(cmd);
        if !out.status.success() {
            return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The client, in Python (the handouts' language), from 10.200.0.2: one
/// datagram to reorder, listening at port + 1; then 500 to echo at once.
const CLIENT: &str = r#"
import socket, sys, time
reorder, echo = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.200.0.2", 0))
port = s.getsockname()[1]
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("10.200.0.2", port + 1))
r.settimeout(1.0)
s.sendto(b"the quick brown fox", ("10.200.0.1", reorder))
try:
    r.recv(2048); reordered = 1
except socket.timeout:
    reordered = 0
for i in range(500):
    s.sendto(b"%d" % i, ("10.200.0.1", echo))
s.settimeout(1.0)
echoed = 0
try:
    while True:
        s.recv(2048); echoed += 1
except socket.timeout:
    pass
print(reordered, echoed)
"#;

#[test]
fn replies_off_loopback_are_limited_and_reorder_answers_loopback_only() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: no private network namespace here ({why})");
            return;
        }
    };
    let mut cmd = ns.command(&bin());
    cmd.args(["serve", "reorder@udp:0:interface=10.200.0.1", "echo@udp:0:interface=10.200.0.1"]);
    cmd.stderr(Stdio::null());
    let server = Server::start(cmd, 2);
    let (reorder, echo) = (server.addr(0).port().to_string(), server.addr(1).port().to_string());
    let out = ns.run(&["python3", "-c", CLIENT, &reorder, &echo], true).expect("the client ran");
    let counts: Vec<u32> = out.split_whitespace().map(|w| w.parse().expect("a count")).collect();
    let (reordered, echoed) = (counts[0], counts[1]);
    assert_eq!(reordered, 0, "reorder answered a source off loopback (at its port + 1)");
    // 500 requests at once from one address: a burst of 200, then about
    // 100 a second (the defaults), not 500.
    assert!((150..=260).contains(&echoed), "{echoed} of 500 echoed");
    drop(server);
}
