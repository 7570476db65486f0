//! `twirl serve`: turning `PLUGIN[@ENDPOINT] [KEY=VALUE]...` words into
//! bound listeners.

use std::fmt;
use std::io;
use std::time::Duration;

use twirl::endpoint::ServerEndpoint;
use twirl::inherit::SocketKind;
use twirl::{Factory, ListenOptions, Listening, Reactor};

use crate::options::Options;
use crate::plugin::Plugin;
use crate::registry::{self, PLUGINS};

/// One plugin on one endpoint, with its options.
#[derive(Clone)]
pub struct Spec {
    /// The plugin.
    pub plugin: &'static Plugin,
    /// Where it listens.
    pub endpoint: ServerEndpoint,
    /// The options given after it on the command line (checked).
    pub options: Options,
}

impl Spec {
    /// `plugin` on `endpoint` with no options (its defaults).
    pub fn new(plugin: &'static Plugin, endpoint: ServerEndpoint) -> Spec {
        Spec { plugin, endpoint, options: Options::none() }
    }
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.plugin.name, self.endpoint)?;
        if !self.options.is_empty() {
            write!(f, " {}", self.options)?;
        }
        Ok(())
    }
}

/// True for a word that is an option (`KEY=VALUE`, no `@`), not a spec.
pub fn is_option(word: &str) -> bool {
    word.contains('=') && !word.contains('@')
}

/// Parses serve arguments: none means every plugin on its defaults (but
/// those that need an option or publish files: [`Plugin::named_only`]); `NAME` means that plugin's defaults;
/// `NAME@ENDPOINT` one endpoint. `KEY=VALUE` words after either are
/// options for that plugin ([`Options::parse`]). The error is a one-line
/// usage message naming the bad word.
pub fn parse_specs(words: &[String]) -> Result<Vec<Spec>, String> {
    let mut specs = Vec::new();
    if words.is_empty() {
        for p in PLUGINS.iter().filter(|p| !p.named_only()) {
            push_defaults(p, Options::none(), &mut specs)?;
        }
        return Ok(specs);
    }
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if is_option(word) {
            return Err(format!("option '{word}' comes before any PLUGIN[@ENDPOINT]: options follow their plugin"));
        }
        let n = words[i + 1..].iter().take_while(|w| is_option(w)).count();
        let option_words = &words[i + 1..i + 1 + n];
        i += 1 + n;
        let (name, endpoint) = match word.split_once('@') {
            Some((n, e)) => (n, Some(e)),
            None => (word.as_str(), None),
        };
        let plugin = registry::find(name).ok_or_else(|| {
            let names: Vec<&str> = PLUGINS.iter().map(|p| p.name).collect();
            format!("unknown plugin '{name}' (known: {})", names.join(", "))
        })?;
        let options = Options::parse(plugin.declared(), option_words)?;
        match endpoint {
            None if plugin.raw.is_some() => {} // served apart: see raw_plugins
            None if plugin.defaults.is_empty() => {
                return Err(format!(
                    "plugin '{name}' has no default endpoint: name one ({name}@tcp:PORT or {name}@unix:PATH)"
                ));
            }
            None => push_defaults(plugin, options, &mut specs)?,
            Some(e) => {
                let endpoint: ServerEndpoint = e.parse().map_err(|err| format!("{err}"))?;
                check_transport(plugin, &endpoint)?;
                specs.push(Spec { plugin, endpoint, options });
            }
        }
    }
    Ok(specs)
}

/// The raw-socket plugins named among the serve words (they have no
/// endpoint, so [`parse_specs`] yields no spec for them).
pub fn raw_plugins(words: &[String]) -> Vec<&'static Plugin> {
    words.iter().filter_map(|w| registry::find(w)).filter(|p| p.raw.is_some()).collect()
}

fn push_defaults(plugin: &'static Plugin, options: Options, specs: &mut Vec<Spec>) -> Result<(), String> {
    for d in plugin.defaults {
        let endpoint = d.parse().map_err(|e| format!("plugin {}: {e}", plugin.name))?;
        specs.push(Spec { plugin, endpoint, options: options.clone() });
    }
    Ok(())
}

fn check_transport(plugin: &Plugin, endpoint: &ServerEndpoint) -> Result<(), String> {
    let ok = match endpoint {
        ServerEndpoint::Udp(_) => plugin.datagram.is_some(),
        // What the socket is shows only when it is adopted (`bind_with`).
        ServerEndpoint::Inherited(_) => true,
        _ => plugin.stream.is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("plugin '{}' does not speak {} (it speaks {})", plugin.name, kind(endpoint), plugin.transports()))
    }
}

fn kind(e: &ServerEndpoint) -> &'static str {
    match e {
        ServerEndpoint::Tcp(_) => "tcp",
        ServerEndpoint::Udp(_) => "udp",
        ServerEndpoint::Unix(_) => "unix",
        ServerEndpoint::Inherited(_) => "an inherited socket",
        ServerEndpoint::Tls(_) => "tls",
    }
}

/// Limits `twirl serve` puts on every stream listener (`--idle-timeout`,
/// `--max-conns`, `--max-per-peer`).
#[derive(Clone, Debug, PartialEq)]
pub struct ServeLimits {
    /// Close a connection silent this long (no whole message, for the
    /// framed plugins). Default 300 s.
    pub idle_timeout: Option<Duration>,
    /// Close a connection open this long. Default: none.
    pub max_lifetime: Option<Duration>,
    /// Most connections per listener. Default 10,000.
    pub max_connections: Option<usize>,
    /// Most connections per peer address; `None` chooses by the interface:
    /// no cap on loopback (every peer is this machine), [`PER_PEER_EXPOSED`]
    /// on any other interface.
    pub max_per_peer: Option<usize>,
}

/// The per-peer cap on a listener bound beyond loopback, unless told otherwise.
pub const PER_PEER_EXPOSED: usize = 64;

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            idle_timeout: Some(Duration::from_secs(300)),
            max_lifetime: None,
            max_connections: Some(10_000),
            max_per_peer: None,
        }
    }
}

impl ServeLimits {
    /// The listener options for `plugin` on `endpoint`.
    pub fn options(&self, plugin: &Plugin, endpoint: &ServerEndpoint, reactor: &Reactor) -> ListenOptions {
        let exposed = match endpoint {
            ServerEndpoint::Tcp(a) => !a.ip().is_loopback(),
            ServerEndpoint::Tls(t) => !t.addr.ip().is_loopback(),
            _ => false,
        };
        ListenOptions {
            limits: reactor.config().limits,
            idle_timeout: self.idle_timeout,
            max_lifetime: self.max_lifetime,
            max_connections: self.max_connections,
            max_per_peer: self.max_per_peer.or(exposed.then_some(PER_PEER_EXPOSED)),
            ..ListenOptions::new(plugin.name)
        }
    }
}

/// For a `tls:` spec: reads its certificate, key and client CA, and checks
/// that the key matches the certificate (errors name the file), so that a
/// command serving several specs can refuse before anything listens.
pub fn check_tls_files(spec: &Spec) -> io::Result<()> {
    match &spec.endpoint {
        ServerEndpoint::Tls(t) => twirl::tls::TlsServer::load(&t.cert, &t.key, t.client_ca.as_deref()).map(|_| ()),
        _ => Ok(()),
    }
}

/// Binds one spec on the reactor with the default [`ServeLimits`]; returns
/// the endpoint as actually bound, and the id that stops it.
pub fn bind(reactor: &mut Reactor, spec: &Spec) -> io::Result<Listening<ServerEndpoint>> {
    bind_with(reactor, spec, &ServeLimits::default())
}

/// Binds one spec with the given limits. A spec whose plugin needs an
/// option it was not given is refused (`InvalidInput`), before binding.
pub fn bind_with(reactor: &mut Reactor, spec: &Spec, limits: &ServeLimits) -> io::Result<Listening<ServerEndpoint>> {
    bind_via(reactor, spec, limits, &mut |f| f)
}

/// [`bind_with`], passing a stream plugin's factory through `wrap` first
/// (the dashboard counts a listener's connections so).
pub fn bind_via(
    reactor: &mut Reactor,
    spec: &Spec,
    limits: &ServeLimits,
    wrap: &mut dyn FnMut(Box<dyn Factory>) -> Box<dyn Factory>,
) -> io::Result<Listening<ServerEndpoint>> {
    let plugin = spec.plugin;
    spec.options.check_required(plugin.declared()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let o = &spec.options;
    let datagram = match &spec.endpoint {
        ServerEndpoint::Udp(_) => true,
        ServerEndpoint::Inherited(i) => i.kind()? == SocketKind::Datagram,
        _ => false,
    };
    match (datagram, plugin.stream, plugin.datagram) {
        (true, _, Some(make)) => reactor.listen_datagram(&spec.endpoint, make(o)),
        (false, Some(make), _) => {
            let opts = limits.options(plugin, &spec.endpoint, reactor);
            reactor.listen_stream(&spec.endpoint, wrap(make(o)), opts)
        }
        _ => {
            let what = match (&spec.endpoint, datagram) {
                (ServerEndpoint::Inherited(i), true) => format!("udp ({i} is a UDP socket)"),
                (ServerEndpoint::Inherited(i), false) => format!("a stream ({i} is a listening stream socket)"),
                (e, _) => kind(e).to_string(),
            };
            let speaks = plugin.transports();
            let msg = format!("plugin '{}' does not speak {what} (it speaks {speaks})", plugin.name);
            Err(io::Error::new(io::ErrorKind::InvalidInput, msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_words_means_every_default() {
        let n: usize = PLUGINS.iter().filter(|p| !p.named_only()).map(|p| p.defaults.len()).sum();
        assert!(parse_specs(&[]).unwrap().iter().all(|s| s.plugin.name != "http"), "never serves the cwd unasked");
        assert_eq!(parse_specs(&[]).unwrap().len(), n);
        assert!(parse_specs(&[]).unwrap().iter().all(|s| s.options.is_empty()));
    }

    #[test]
    fn options_follow_their_spec() {
        let s = parse_specs(&words(&["chargen@tcp:0", "width=10", "echo@tcp:0", "reverse", "flush_ms=0"])).unwrap();
        assert_eq!(s[0].options.count("width"), Some(10));
        assert!(s[1].options.is_empty(), "options belong to the spec before them only");
        assert_eq!(s.len(), 2 + crate::plugins::reverse::PLUGIN.defaults.len());
        assert!(
            s[2..].iter().all(|s| s.options.millis("flush_ms") == Some(None)),
            "a bare NAME's defaults all get them"
        );
        let e = parse_specs(&words(&["width=10", "chargen"])).unwrap_err();
        assert!(e.contains("'width=10'"), "{e}");
        let e = parse_specs(&words(&["chargen", "width=0"])).unwrap_err();
        assert!(e.contains("width='0'"), "{e}");
        let e = parse_specs(&words(&["chargen", "width=3", "width=4"])).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = parse_specs(&words(&["echo@tcp:0", "x=1"])).unwrap_err();
        assert!(e.contains("'x'") && e.contains("no options"), "{e}");
    }

    #[test]
    fn plugin_and_endpoint_forms() {
        let s = parse_specs(&words(&["echo@tcp:0", "echo"])).unwrap();
        assert_eq!(s[0].endpoint, ServerEndpoint::Tcp("127.0.0.1:0".parse().unwrap()));
        assert_eq!(s.len(), 1 + crate::plugins::echo::PLUGIN.defaults.len());
    }

    #[test]
    fn per_peer_cap_only_off_loopback_unless_set() {
        let r = Reactor::new().unwrap();
        let p = &crate::plugins::echo::PLUGIN;
        let lo: ServerEndpoint = "tcp:0".parse().unwrap();
        let any: ServerEndpoint = "tcp:0:interface=0.0.0.0".parse().unwrap();
        let d = ServeLimits::default();
        assert_eq!(d.options(p, &lo, &r).max_per_peer, None);
        assert_eq!(d.options(p, &any, &r).max_per_peer, Some(PER_PEER_EXPOSED));
        let set = ServeLimits { max_per_peer: Some(3), ..ServeLimits::default() };
        assert_eq!(set.options(p, &lo, &r).max_per_peer, Some(3));
        assert_eq!(d.options(p, &lo, &r).idle_timeout, Some(Duration::from_secs(300)));
    }

    #[test]
    fn usage_errors_name_the_word() {
        let e = parse_specs(&words(&["nosuch"])).unwrap_err();
        assert!(e.contains("'nosuch'"), "{e}");
        let e = parse_specs(&words(&["echo@tcp:x"])).unwrap_err();
        assert!(e.contains("'x'"), "{e}");
    }
}
