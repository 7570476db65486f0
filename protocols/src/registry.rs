//! The plugin registry: every plugin's entry, in [`PLUGINS`], and [`find`].
//!
//! Registering a plugin is adding its entry to [`PLUGINS`]; `twirl list`,
//! `twirl serve` and `twirl client` find it there. What an entry holds is
//! [`Plugin`], in [`crate::plugin`]: the plugins import that, and this list
//! imports the plugins, so the two never import each other.

use crate::plugin::Plugin;
use crate::plugins;

/// Every registered plugin, in `twirl list` order.
pub static PLUGINS: &[Plugin] = &[
    plugins::echo::PLUGIN,
    plugins::discard::PLUGIN,
    plugins::chargen::PLUGIN,
    plugins::caps::PLUGIN,
    plugins::chat::PLUGIN,
    plugins::structs::PLUGIN,
    plugins::reverse::PLUGIN,
    plugins::upper::PLUGIN,
    plugins::json::PLUGIN,
    plugins::reorder::PLUGIN,
    plugins::time::PLUGIN,
    plugins::daytime::PLUGIN,
    plugins::binarytime::PLUGIN,
    plugins::sntp::PLUGIN,
    plugins::icmp::PLUGIN,
    plugins::amf::PLUGIN,
    plugins::portforward::PLUGIN,
    plugins::http::PLUGIN,
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
            // A raw plugin listens on no endpoint; one that needs an option
            // (portforward's `to`) cannot run unnamed, so it has none.
            let exempt = p.raw.is_some() || p.needs_options();
            assert!(!p.defaults.is_empty() || exempt, "{} has no default endpoint", p.name);
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
    fn every_served_plugin_carries_a_sample_per_transport() {
        // The shared end-to-end tests (protocols/tests/support) run these;
        // a plugin without one would go untested there.
        for p in PLUGINS.iter().filter(|p| p.raw.is_none() && !p.needs_options()) {
            let has = |stream: bool| p.samples.iter().any(|s| s.via.is_stream() == stream);
            assert!(p.stream.is_none() || has(true), "{}: speaks streams but has no stream sample", p.name);
            assert!(p.datagram.is_none() || has(false), "{}: speaks UDP but has no datagram sample", p.name);
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
