//! What a plugin is: its registry entry ([`Plugin`], [`RawPlugin`]), its
//! client's signature ([`ClientFn`]) and the error a client reports
//! ([`ClientError`]).
//!
//! Every plugin module imports these to declare its `PLUGIN`; the list of
//! plugins lives apart, in [`crate::registry`].

use std::fmt;
use std::io;

use twirl::endpoint::ClientEndpoint;
use twirl::{DatagramProtocol, Factory, Reactor};

use crate::client_args::{ClientFlag, FlagError};
use crate::options::{Declared, OptionSpec, Options};
use crate::sample::Sample;

/// The `twirl client PLUGIN ...` entry point: endpoint and the words after it.
pub type ClientFn = fn(&ClientEndpoint, &[String]) -> Result<(), ClientError>;

/// Builds a plugin's stream factory from its options.
pub type StreamFn = fn(&Options) -> Box<dyn Factory>;

/// Builds a plugin's datagram protocol from its options.
pub type DatagramFn = fn(&Options) -> Box<dyn DatagramProtocol>;

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
    /// The options it takes on `twirl serve`'s command line (`KEY=VALUE`
    /// after its spec); empty for most.
    pub options: &'static [OptionSpec],
    /// Builds the factory for stream (TCP and Unix) endpoints, if it speaks
    /// streams, from the options given (checked against
    /// [`options`](Self::options); one not given is left to its default).
    pub stream: Option<StreamFn>,
    /// Builds the protocol for a UDP endpoint, if it speaks UDP.
    pub datagram: Option<DatagramFn>,
    /// Its client.
    pub client: Option<ClientFn>,
    /// The flags its client takes (`--lines N`...), for `twirl client NAME
    /// --help`; any other flag is refused (exit 2) before the client runs.
    pub client_flags: &'static [ClientFlag],
    /// One sample exchange per transport it speaks: the shared tests run
    /// them against a real server (see [`crate::sample`]).
    pub samples: &'static [Sample],
    /// For a raw-socket plugin: how to serve it and its client. Such a
    /// plugin has no default endpoints, so `twirl serve` alone leaves it
    /// out; it runs when named.
    pub raw: Option<RawPlugin>,
}

impl Plugin {
    /// Its name and declared options, as [`Options::parse`] checks them.
    pub fn declared(&self) -> Declared<'_> {
        Declared { name: self.name, options: self.options }
    }

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

    /// The `twirl list` line: name, transports, default endpoints, summary,
    /// and, for a plugin that takes options, `[options: KEY,...]` (a
    /// required one marked `!`; `twirl help NAME` explains them).
    pub fn list_line(&self) -> String {
        let defaults = if self.defaults.is_empty() { "-".to_string() } else { self.defaults.join(",") };
        let line = format!("{:<11} {:<13} {:<28} {}", self.name, self.transports(), defaults, self.summary);
        match self.options_mark() {
            Some(mark) => format!("{line} {mark}"),
            None => line,
        }
    }

    /// `[options: to!]` for a plugin that takes options (`!`: required).
    pub fn options_mark(&self) -> Option<String> {
        if self.options.is_empty() {
            return None;
        }
        let names: Vec<String> =
            self.options.iter().map(|o| format!("{}{}", o.name, if o.required() { "!" } else { "" })).collect();
        Some(format!("[options: {}]", names.join(",")))
    }

    /// True when it cannot run without options (one is required): `twirl
    /// serve` alone leaves it out.
    pub fn needs_options(&self) -> bool {
        self.options.iter().any(|o| o.required())
    }

    /// True when bare `twirl serve` (no plugin named) leaves it out: it
    /// needs an option, or it publishes a directory's files (an option of
    /// kind [`OptionKind::Directory`](crate::options::OptionKind::Directory)),
    /// which a default should never do.
    pub fn named_only(&self) -> bool {
        self.needs_options() || self.options.iter().any(|o| o.kind == crate::options::OptionKind::Directory)
    }

    /// The `twirl help NAME` text: what it is, where it listens, its options.
    pub fn help(&self) -> String {
        let defaults = if self.defaults.is_empty() {
            "none (name one: NAME@ENDPOINT)".to_string()
        } else {
            self.defaults.join(", ")
        };
        let mut s = format!(
            "{}: {}
  answers: {}
  transports: {}
  default endpoints: {defaults}
",
            self.name,
            self.summary,
            self.lab,
            self.transports()
        );
        if self.named_only() && !self.needs_options() {
            s.push_str("  a bare 'twirl serve' leaves it out (it publishes files): name it\n");
        }
        if self.options.is_empty() {
            s.push_str(
                "options: none
",
            );
        } else {
            s.push_str(&format!(
                "options (KEY=VALUE after its spec: twirl serve {}@ENDPOINT KEY=VALUE):
",
                self.name
            ));
            for o in self.options {
                s.push_str(&o.help_line());
                s.push('\n');
            }
        }
        if !self.client_flags.is_empty() {
            s.push_str(&format!("client flags (twirl client {} --help):\n", self.name));
            for f in self.client_flags {
                let flag = f.value.map(|v| format!("{} {v}", f.name)).unwrap_or_else(|| f.name.to_string());
                s.push_str(&format!("  {flag}  {}\n", f.help));
            }
        }
        s
    }
}

/// A client failure: the endpoint and what went wrong, for a one-line message.
#[derive(Debug)]
pub struct ClientError {
    /// The endpoint, as the user wrote it (or `-` when it does not apply).
    pub endpoint: String,
    /// What went wrong.
    pub message: String,
    /// True for a usage mistake (exit 2) rather than a runtime failure (exit 1).
    pub usage: bool,
}

impl ClientError {
    /// A runtime failure at `endpoint`.
    pub fn runtime(endpoint: &ClientEndpoint, message: impl fmt::Display) -> Self {
        ClientError { endpoint: endpoint.to_string(), message: message.to_string(), usage: false }
    }

    /// A runtime failure that concerns no endpoint (stdout closed, say).
    pub fn runtime_msg(message: impl fmt::Display) -> Self {
        ClientError { endpoint: String::new(), message: message.to_string(), usage: false }
    }

    /// A usage mistake (bad argument).
    pub fn usage(message: impl fmt::Display) -> Self {
        ClientError { endpoint: String::new(), message: message.to_string(), usage: true }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.endpoint.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.endpoint, self.message)
        }
    }
}

impl From<FlagError> for ClientError {
    fn from(e: FlagError) -> Self {
        ClientError::usage(e)
    }
}
