//! The handout exercises of issue #17, run on this machine: `twirl mtu`
//! (loopback, then a veth pair at MTU 1500 and 1280), `twirl reuseaddr`
//! (checked against `ss`), `twirl broadcast` and `twirl multicast` (two
//! servers in two namespaces on one bridge), and `twirl arp watch` (a veth
//! pair where one side sends to the other).
//!
//! The namespace tests need root and `ip`; without them they print why and
//! pass. Their namespaces are deleted even when they fail.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use common::netns::Net;
use common::{Server, WAIT, bin, output, twirl};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn net_or_skip() -> Option<Net> {
    match Net::new() {
        Ok(n) => Some(n),
        Err(why) => {
            println!("SKIPPED: no private network namespaces here ({why})");
            None
        }
    }
}

/// A child whose stdout lines arrive on a channel; killed on drop.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Lines {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { child, rx }
    }

    /// The next line (bounded by [`WAIT`]).
    fn next(&self) -> String {
        self.rx.recv_timeout(WAIT).expect("a line from the child in time")
    }

    /// Every line until the child closes its stdout (bounded by [`WAIT`]).
    fn rest(&self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.rx.recv_timeout(WAIT) {
            v.push(l);
        }
        v
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ mtu

#[test]
fn mtu_on_loopback_is_the_length_field_limit() {
    let out = output(twirl(&["mtu", "127.0.0.1"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout(&out),
        "path MTU to 127.0.0.1: 65536 bytes\nlargest UDP payload without fragmentation: 65507 bytes\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("16-bit length field, not the MTU"));
}

#[test]
fn mtu_on_ipv6_loopback_is_the_mtu_less_48() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        println!("SKIPPED: no IPv6 loopback here");
        return;
    }
    let out = output(twirl(&["mtu", "::1"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let mtu: usize = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("path MTU to ::1: "))
        .and_then(|l| l.strip_suffix(" bytes"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    // 40 bytes of IPv6 header, 8 of UDP (65536 on a default loopback).
    assert_eq!(
        text.lines().nth(1),
        Some(format!("largest UDP payload without fragmentation: {} bytes", mtu - 48).as_str())
    );
}

#[test]
fn mtu_bad_host_exits_1_and_bad_port_exits_2() {
    let out = output(twirl(&["mtu", "no-such-host.invalid"]));
    assert_eq!(out.status.code(), Some(1));
    let out = output(twirl(&["mtu", "127.0.0.1", "--port", "x"]));
    assert_eq!(out.status.code(), Some(2));
}

/// Two namespaces on a veth pair, 10.77.0.1 and 10.77.0.2.
fn pair(net: &mut Net, subnet: &str) -> Result<(String, String, String, String), String> {
    let (a, b) = (net.ns("a")?, net.ns("b")?);
    let (da, db) = (net.name("a"), net.name("b"));
    net.veth(&a, &da, &b, &db)?;
    net.addr(&a, &da, &format!("{subnet}.1/24"))?;
    net.addr(&b, &db, &format!("{subnet}.2/24"))?;
    Ok((a, b, da, db))
}

#[test]
fn mtu_across_a_veth_pair_follows_the_link() {
    let Some(mut net) = net_or_skip() else { return };
    let (a, b, da, db) = pair(&mut net, "10.77.0").expect("veth pair");
    let mtu = |args: &[&str]| {
        let mut c = net.command(&a, &bin());
        c.arg("mtu").args(args);
        let out = output(c);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    };
    assert_eq!(
        mtu(&["10.77.0.2"]),
        "path MTU to 10.77.0.2: 1500 bytes\nlargest UDP payload without fragmentation: 1472 bytes\n"
    );
    for (ns, dev) in [(&a, &da), (&b, &db)] {
        net.ip(ns, &["link", "set", dev, "mtu", "1280"]).expect("set mtu");
    }
    assert_eq!(
        mtu(&["10.77.0.2"]),
        "path MTU to 10.77.0.2: 1280 bytes\nlargest UDP payload without fragmentation: 1252 bytes\n"
    );
    // With fragmentation allowed, a 65507-byte datagram crosses the 1280
    // link in pieces and comes back from an echo server whole.
    let mut serve = net.command(&b, &bin());
    serve.args(["serve", "echo@udp:7007:interface=0.0.0.0"]).stderr(Stdio::null());
    let _server = Server::start(serve, 1);
    let out = mtu(&["10.77.0.2", "--port", "7007", "--fragment"]);
    assert!(
        out.ends_with("largest UDP payload that arrives with fragmentation allowed: 65507 bytes\n")
            && out.starts_with("path MTU to 10.77.0.2: 1280 bytes\n"),
        "{out}"
    );
}

// ------------------------------------------------------------------ reuseaddr

#[test]
fn reuseaddr_refuses_the_restart_without_it_and_allows_it_with_it() {
    let out = output(twirl(&["reuseaddr"]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("without SO_REUSEADDR: restarted at once on 127.0.0.1:")
            && l.contains("bind failed: EADDRINUSE")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("with SO_REUSEADDR: restarted at once on 127.0.0.1:")
            && l.ends_with("bind succeeded, listening again")),
        "{text}"
    );
    // The TIME-WAIT sockets it showed are the ones `ss` shows (they last 60 s).
    let shown: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("TIME-WAIT"))
        .map(|rest| {
            let w: Vec<&str> = rest.split_whitespace().collect();
            (w[2].to_string(), w[3].to_string())
        })
        .collect();
    assert_eq!(shown.len(), 2, "{text}");
    let Ok(ss) = Command::new("ss").args(["-tan", "state", "time-wait"]).output() else {
        println!("no ss here (iproute2): the TIME-WAIT lines are not cross-checked");
        return;
    };
    let ss = stdout(&ss);
    for (local, peer) in shown {
        assert!(
            ss.lines().any(|l| l.split_whitespace().any(|w| w == local) && l.split_whitespace().any(|w| w == peer)),
            "ss does not show {local} {peer}:\n{ss}"
        );
    }
}

// ------------------------------------------------------------------ broadcast

/// A hub namespace with a bridge at 10.78.0.1/24 and two server namespaces
/// on it, 10.78.0.2 and 10.78.0.3.
fn bridge(net: &mut Net) -> Result<(String, Vec<String>), String> {
    let hub = net.ns("h")?;
    let br = net.name("br");
    net.ip(&hub, &["link", "add", &br, "type", "bridge"])?;
    net.ip(&hub, &["link", "set", &br, "up"])?;
    net.addr(&hub, &br, "10.78.0.1/24")?;
    let mut servers = Vec::new();
    for (i, what) in ["s1", "s2"].iter().enumerate() {
        let ns = net.ns(what)?;
        let (hub_end, end) = (net.name(&format!("{what}h")), net.name(what));
        net.veth(&hub, &hub_end, &ns, &end)?;
        net.ip(&hub, &["link", "set", &hub_end, "master", &br])?;
        net.addr(&ns, &end, &format!("10.78.0.{}/24", i + 2))?;
        servers.push(ns);
    }
    Ok((hub, servers))
}

#[test]
fn one_broadcast_reaches_both_servers_and_one_multicast_both_members() {
    let Some(mut net) = net_or_skip() else { return };
    let (hub, servers) = match bridge(&mut net) {
        Ok(t) => t,
        Err(why) => {
            println!("SKIPPED: cannot build a bridge here ({why})");
            return;
        }
    };
    let _echoes: Vec<Server> = servers
        .iter()
        .map(|ns| {
            let mut c = net.command(ns, &bin());
            c.args(["serve", "echo@udp:7007:interface=0.0.0.0"]).stderr(Stdio::null());
            Server::start(c, 1)
        })
        .collect();
    let ask = |target: &str| {
        let mut c = net.command(&hub, &bin());
        c.args(["broadcast", target, "hi", "there", "--wait", "1"]);
        let out = output(c);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    };
    let text = ask("10.78.0.255:7007");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["2 answers", "answer from 10.78.0.2:7007: hi there", "answer from 10.78.0.3:7007: hi there"],
        "{text}"
    );

    // Multicast: members join 239.7.7.7; the hub routes the group to its bridge.
    net.ip(&hub, &["route", "add", "224.0.0.0/4", "dev", &net.name("br")]).expect("multicast route");
    let members: Vec<Lines> = servers
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let mut c = net.command(ns, &bin());
            c.args(["multicast", "239.7.7.7:7400", "--interface", &format!("10.78.0.{}", i + 2), "--count", "1"]);
            let m = Lines::spawn(c);
            assert_eq!(m.next(), "joined 239.7.7.7 on port 7400");
            m
        })
        .collect();
    let text = ask("239.7.7.7:7400");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["2 answers", "answer from 10.78.0.2:7400: hi there", "answer from 10.78.0.3:7400: hi there"],
        "{text}"
    );
    for m in &members {
        assert!(m.rest().iter().any(|l| l.starts_with("from 10.78.0.1:") && l.ends_with(": hi there")));
    }
}

// ------------------------------------------------------------------ arp

#[test]
fn arp_watch_prints_a_request_and_its_reply_marking_what_changed() {
    let Some(mut net) = net_or_skip() else { return };
    let (a, _b, da, _db) = pair(&mut net, "10.79.0").expect("veth pair");
    let mut c = net.command(&a, &bin());
    c.args(["arp", "watch", &da, "--count", "2", "--timeout", "5"]);
    let watch = Lines::spawn(c);
    assert_eq!(watch.next(), format!("watching ARP on {da}"));
    // One datagram from a to b: a must first learn b's hardware address.
    let mut send = net.command(&a, "python3");
    send.args(["-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('10.79.0.2', 9))"]);
    assert!(output(send).status.success());
    let text = watch.rest().join("\n");
    assert!(text.contains(&format!("ARP request on {da} (")), "{text}");
    assert!(text.contains("who has 10.79.0.2? tell 10.79.0.1"), "{text}");
    assert!(text.contains("ARP reply on") && text.contains(": 10.79.0.2 is at "), "{text}");
    assert!(
        text.contains(
            "* changed from the request: ethernet destination, ethernet source, ar$op, ar$sha, ar$spa, ar$tha, ar$tpa"
        ),
        "{text}"
    );
    // The field rows, in RFC 826 order, each with its offset and width.
    for row in [
        "    20     2 ar$op",
        "    22     6 ar$sha",
        "    28     4 ar$spa",
        "    32     6 ar$tha",
        "    38     4 ar$tpa",
    ] {
        assert!(text.contains(row), "no row {row:?} in:\n{text}");
    }
}

#[test]
fn arp_decode_prints_every_field_and_refuses_what_is_not_arp() {
    let frame = "ffffffffffff aa0000000001 0806 0001 0800 06 04 0001 aa0000000001 0a090101 000000000000 0a090102";
    let out = output(twirl(&["arp", "decode", frame]));
    assert!(out.status.success());
    let text = stdout(&out);
    let names: Vec<&str> = text.lines().skip(1).map(|l| l[2..].split_whitespace().nth(2).unwrap_or("")).collect();
    assert_eq!(
        names,
        [
            "ethernet", "ethernet", "ethernet", "ar$hrd", "ar$pro", "ar$hln", "ar$pln", "ar$op", "ar$sha", "ar$spa",
            "ar$tha", "ar$tpa"
        ],
        "{text}"
    );
    let out = output(twirl(&["arp", "decode", &frame.replace("0806", "0800")]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ARP"));
}
