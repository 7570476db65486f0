//! Plugin options: what a plugin declares it takes ([`OptionSpec`]), and
//! the values given on the command line ([`Options`]).
//!
//! On `twirl serve`'s command line the words `KEY=VALUE` after a spec are
//! options for that spec's plugin:
//!
//! ```text
//! twirl serve portforward@tcp:8000 to=tcp:127.0.0.1:7007 chargen@tcp:7019 width=40
//! ```
//!
//! A plugin lists its options in its registry entry
//! ([`Plugin::options`](crate::plugin::Plugin::options)); [`Options::parse`]
//! checks the words against that list (an unknown key, a bad value, a key
//! given twice or a required option left out is an error naming it), and
//! the plugin's factory reads the parsed values with the typed getters. A
//! getter returns `None` for an option that was not given: the plugin then
//! uses its default, the one its [`OptionSpec::default`] documents.
//!
//! ```
//! use twirl_protocols::options::Options;
//! let chargen = twirl_protocols::registry::find("chargen").unwrap();
//! let o = Options::parse(chargen.declared(), &["width=40".to_string()]).unwrap();
//! assert_eq!(o.count("width"), Some(40));
//! let e = Options::parse(chargen.declared(), &["colour=red".to_string()]).unwrap_err();
//! assert!(e.contains("'colour'"), "{e}");
//! ```

use std::fmt;
use std::time::Duration;

use twirl::endpoint::ClientEndpoint;

/// What kind of value an option takes, and so how its word is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// A whole number from `min` to `max`.
    Count {
        /// The least allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// Whole milliseconds, at most an hour; `0` means off.
    Millis,
    /// A stream endpoint to connect to: `tcp:HOST:PORT` or `unix:PATH`.
    StreamEndpoint,
    /// An existing directory, kept as its canonical path (no symlinks,
    /// no `..`), so that what is under it can be checked by prefix.
    Directory,
}

impl OptionKind {
    /// Parses a value of this kind; the error says what was expected.
    fn parse(&self, v: &str) -> Result<Value, String> {
        match *self {
            OptionKind::Count { min, max } => match v.parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Value::Count(n)),
                _ => Err(format!("expected a whole number from {min} to {max}")),
            },
            OptionKind::Millis => match v.parse::<u64>() {
                Ok(0) => Ok(Value::Millis(None)),
                Ok(ms) if ms <= 3_600_000 => Ok(Value::Millis(Some(Duration::from_millis(ms)))),
                _ => Err("expected milliseconds, from 0 (off) to 3600000".to_string()),
            },
            OptionKind::StreamEndpoint => match v.parse::<ClientEndpoint>() {
                Ok(ClientEndpoint::Udp(..)) => {
                    Err("expected a stream endpoint (tcp:HOST:PORT or unix:PATH), not udp".into())
                }
                Ok(e) => Ok(Value::Endpoint(e)),
                Err(e) => Err(format!("{e}")),
            },
            OptionKind::Directory => match std::fs::canonicalize(v) {
                Ok(p) if p.is_dir() => Ok(Value::Path(p)),
                Ok(_) => Err("not a directory".to_string()),
                Err(e) => Err(format!("no such directory: {e}")),
            },
        }
    }

    /// How a value is written, for `twirl help PLUGIN`.
    pub fn syntax(&self) -> String {
        match self {
            OptionKind::Count { min, max } => format!("N, {min} to {max}"),
            OptionKind::Millis => "MS, 0 is off".to_string(),
            OptionKind::StreamEndpoint => "tcp:HOST:PORT or unix:PATH".to_string(),
            OptionKind::Directory => "DIR".to_string(),
        }
    }
}

/// One option a plugin takes.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// The key, as written before `=`.
    pub name: &'static str,
    /// What it means, one line.
    pub meaning: &'static str,
    /// Its kind of value.
    pub kind: OptionKind,
    /// The value used when it is not given, as it would be written
    /// (`None`: required, there is no sensible default).
    pub default: Option<&'static str>,
}

impl OptionSpec {
    /// True when it must be given.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    /// The `twirl help PLUGIN` line: `  NAME=SYNTAX  meaning (default X | required)`.
    pub fn help_line(&self) -> String {
        let tail = match self.default {
            Some(d) => format!("default {d}"),
            None => "required".to_string(),
        };
        format!("  {}=<{}>\n      {} ({tail})", self.name, self.kind.syntax(), self.meaning)
    }
}

/// A parsed option value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// For [`OptionKind::Count`].
    Count(usize),
    /// For [`OptionKind::Millis`] (`None`: off).
    Millis(Option<Duration>),
    /// For [`OptionKind::StreamEndpoint`].
    Endpoint(ClientEndpoint),
    /// For [`OptionKind::Directory`]: the canonical path.
    Path(std::path::PathBuf),
}

/// The options given to one spec's plugin, checked against its declaration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    given: Vec<(&'static str, Value)>,
}

impl Options {
    /// No option given (every plugin's defaults). A plugin with a required
    /// option cannot be built from it: see [`Options::parse`].
    pub fn none() -> Options {
        Options::default()
    }

    /// Checks `KEY=VALUE` words against `plugin`'s declared options. The
    /// error is one line naming the plugin and the bad key or value, or the
    /// required option left out.
    pub fn parse(plugin: Declared<'_>, words: &[String]) -> Result<Options, String> {
        let mut given: Vec<(&'static str, Value)> = Vec::new();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("plugin '{}': option '{word}' is not KEY=VALUE", plugin.name));
            };
            let Some(spec) = plugin.options.iter().find(|o| o.name == key) else {
                return Err(unknown(plugin, key));
            };
            if given.iter().any(|(k, _)| *k == spec.name) {
                return Err(format!("plugin '{}': option '{key}' given twice", plugin.name));
            }
            let v = spec
                .kind
                .parse(value)
                .map_err(|why| format!("plugin '{}': option {key}='{value}': {why}", plugin.name))?;
            given.push((spec.name, v));
        }
        let options = Options { given };
        options.check_required(plugin)?;
        Ok(options)
    }

    /// An error naming the first required option of `plugin` not given.
    pub fn check_required(&self, plugin: Declared<'_>) -> Result<(), String> {
        match plugin.options.iter().find(|o| o.required() && self.get(o.name).is_none()) {
            Some(o) => Err(format!(
                "plugin '{}' needs option '{}' ({}): add {}=<{}> after its spec",
                plugin.name,
                o.name,
                o.meaning,
                o.name,
                o.kind.syntax()
            )),
            None => Ok(()),
        }
    }

    /// The value given for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.given.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// A [`OptionKind::Count`] option, if given.
    pub fn count(&self, name: &str) -> Option<usize> {
        match self.get(name)? {
            Value::Count(n) => Some(*n),
            _ => None,
        }
    }

    /// A [`OptionKind::Millis`] option, if given (`Some(None)`: given as 0, off).
    pub fn millis(&self, name: &str) -> Option<Option<Duration>> {
        match self.get(name)? {
            Value::Millis(d) => Some(*d),
            _ => None,
        }
    }

    /// A [`OptionKind::StreamEndpoint`] option, if given.
    pub fn endpoint(&self, name: &str) -> Option<&ClientEndpoint> {
        match self.get(name)? {
            Value::Endpoint(e) => Some(e),
            _ => None,
        }
    }

    /// A [`OptionKind::Directory`] option, if given (canonical).
    pub fn path(&self, name: &str) -> Option<&std::path::Path> {
        match self.get(name)? {
            Value::Path(p) => Some(p),
            _ => None,
        }
    }

    /// True when nothing was given.
    pub fn is_empty(&self) -> bool {
        self.given.is_empty()
    }
}

impl fmt::Display for Options {
    /// The given options as they would be written: `to=tcp:127.0.0.1:7 width=40`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.given.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match v {
                Value::Count(n) => write!(f, "{k}={n}")?,
                Value::Millis(d) => write!(f, "{k}={}", d.map_or(0, |d| d.as_millis()))?,
                Value::Endpoint(e) => write!(f, "{k}={e}")?,
                Value::Path(p) => write!(f, "{k}={}", p.display())?,
            }
        }
        Ok(())
    }
}

fn unknown(plugin: Declared<'_>, key: &str) -> String {
    if plugin.options.is_empty() {
        format!("plugin '{}' takes no options (got '{key}')", plugin.name)
    } else {
        let names: Vec<&str> = plugin.options.iter().map(|o| o.name).collect();
        format!("plugin '{}': unknown option '{key}' (it takes: {})", plugin.name, names.join(", "))
    }
}

/// Whose options these are: a plugin's name and the options it declares
/// (see `Plugin::declared`; this module needs no more of a plugin).
#[derive(Copy, Clone, Debug)]
pub struct Declared<'a> {
    /// The plugin's name, for messages.
    pub name: &'a str,
    /// What it declares.
    pub options: &'a [OptionSpec],
}

/// The idle-flush option every line plugin declares (`flush_ms`): how long
/// a partial line may sit before it is answered.
pub const FLUSH_MS: OptionSpec = OptionSpec {
    name: "flush_ms",
    meaning: "answer a partial line after this many ms of silence (TWIRL_IDLE_MS sets the default)",
    kind: OptionKind::Millis,
    default: Some("100"),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PLUGINS;

    #[test]
    fn every_declared_default_parses_and_names_are_unique() {
        for p in PLUGINS {
            let mut seen = std::collections::HashSet::new();
            for o in p.options {
                assert!(seen.insert(o.name), "{}: {} twice", p.name, o.name);
                assert!(!o.name.contains('=') && !o.name.contains('@'), "{}: {}", p.name, o.name);
                if let Some(d) = o.default {
                    o.kind.parse(d).unwrap_or_else(|e| panic!("{} {}={d}: {e}", p.name, o.name));
                }
            }
        }
    }

    #[test]
    fn kinds_check_their_values() {
        let count = OptionKind::Count { min: 1, max: 10 };
        assert_eq!(count.parse("10"), Ok(Value::Count(10)));
        assert!(count.parse("0").is_err());
        assert!(count.parse("11").is_err());
        assert!(count.parse("-1").is_err());
        assert!(count.parse("").is_err());
        assert_eq!(OptionKind::Millis.parse("0"), Ok(Value::Millis(None)));
        assert_eq!(OptionKind::Millis.parse("250"), Ok(Value::Millis(Some(Duration::from_millis(250)))));
        assert!(OptionKind::Millis.parse("1.5").is_err());
        assert!(OptionKind::Millis.parse("3600001").is_err());
        assert!(OptionKind::StreamEndpoint.parse("tcp:localhost:80").is_ok());
        assert!(OptionKind::StreamEndpoint.parse("unix:/tmp/x").is_ok());
        assert!(OptionKind::StreamEndpoint.parse("udp:localhost:80").is_err());
        assert!(OptionKind::StreamEndpoint.parse("tcp:80").is_err());
        let here = std::fs::canonicalize(".").unwrap();
        assert_eq!(OptionKind::Directory.parse("."), Ok(Value::Path(here)));
        assert!(OptionKind::Directory.parse("/no/such/dir/twirl").is_err());
        assert!(OptionKind::Directory.parse("Cargo.toml").is_err());
    }
}
