//! The plugin registry: one [`Plugin`] entry per protocol, listed in [`PLUGINS`].
//!
//! Registering a plugin is adding its entry to [`PLUGINS`]; `twirl list`,
//! `twirl serve` and `twirl client` find it there.

use std::io;

use twirl::endpoint::ClientEndpoint;
use twirl::{DatagramProtocol, Factory, Reactor};

use crate::client::ClientError;

/// The `twirl client PLUGIN ...` entry point: endpoint and the words after it.
pub type ClientFn = fn(&ClientEndpoint, &[String]) -> Result<(), ClientError>;

/// A plugin that listens on no endpoint but on a raw socket (needs root).
pub struct RawPlugin {
    /// Starts it on the reactor; returns what it watches, for the `listening` lines.
    pub serve: fn(&mut Reactor) -> io::Result<Vec<String>>,
    /// `twirl client NAME HOST [ARG]...`: takes a host, not an endpoint.
    pub client: fn(&str, &[String]) -> Result<(), ClientError>,
}

/// One protocol plugin.
pub struct Plugin {
    /// The name used on the command line.
    pub name: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// Which handout or RFC it answers.
    pub lab: &'static str,
    /// Endpoints `twirl serve` uses when none is given.
    pub defaults: &'static [&'static str],
    /// Builds the factory for stream (TCP and Unix) endpoints, if it speaks streams.
    pub stream: Option<fn() -> Box<dyn Factory>>,
    /// Builds the protocol for a UDP endpoint, if it speaks UDP.
    pub datagram: Option<fn() -> Box<dyn DatagramProtocol>>,
    /// Its client.
    pub client: Option<ClientFn>,
    /// For a raw-socket plugin: how to serve it and its client. Such a
    /// plugin has no default endpoints, so `twirl serve` alone leaves it
    /// out; it runs when named.
    pub raw: Option<RawPlugin>,
}

impl Plugin {
    /// The transports it speaks, comma-separated: `tcp,udp,unix`.
    pub fn transports(&self) -> String {
        let mut t = Vec::new();
        if self.stream.is_some() {
            t.push("tcp");
        }
        if self.datagram.is_some() {
            t.push("udp");
        }
        if self.stream.is_some() {
            t.push("unix");
        }
        if self.raw.is_some() {
            t.push("raw");
        }
        t.join(",")
    }

    /// The `twirl list` line: name, transports, default endpoints, summary.
    pub fn list_line(&self) -> String {
        let defaults = if self.defaults.is_empty() { "-".to_string() } else { self.defaults.join(",") };
        format!("{:<10} {:<13} {:<28} {}", self.name, self.transports(), defaults, self.summary)
    }
}

/// Every registered plugin, in `twirl list` order.
pub static PLUGINS: &[Plugin] = &[
    crate::echo::PLUGIN,
    crate::discard::PLUGIN,
    crate::chargen::PLUGIN,
    crate::caps::PLUGIN,
    crate::chat::PLUGIN,
    crate::structs::PLUGIN,
    crate::reverse::PLUGIN,
    crate::upper::PLUGIN,
    crate::json::PLUGIN,
    crate::reorder::PLUGIN,
    crate::time::PLUGIN,
    crate::daytime::PLUGIN,
    crate::binarytime::PLUGIN,
    crate::sntp::PLUGIN,
    crate::icmp::PLUGIN,
    crate::amf::PLUGIN,
];

/// Finds a plugin by name.
pub fn find(name: &str) -> Option<&'static Plugin> {
    PLUGINS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::endpoint::ServerEndpoint;

    #[test]
    fn names_unique_and_defaults_parse_and_match_transports() {
        let mut seen = std::collections::HashSet::new();
        for p in PLUGINS {
            assert!(seen.insert(p.name), "duplicate plugin {}", p.name);
            assert!(!p.defaults.is_empty() || p.raw.is_some(), "{} has no default endpoint", p.name);
            for d in p.defaults {
                let e: ServerEndpoint = d.parse().unwrap_or_else(|e| panic!("{}: {e}", p.name));
                match e {
                    ServerEndpoint::Udp(_) => assert!(p.datagram.is_some(), "{} {d}", p.name),
                    _ => assert!(p.stream.is_some(), "{} {d}", p.name),
                }
            }
        }
    }

    #[test]
    fn default_endpoints_never_clash() {
        let mut seen = std::collections::HashSet::new();
        for p in PLUGINS {
            for d in p.defaults {
                assert!(seen.insert(*d), "{d} is used twice ({})", p.name);
            }
        }
    }
}
