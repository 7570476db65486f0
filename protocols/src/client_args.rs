//! A plugin client's own flags (`--lines N`, `--bytes N`, `--receive`...):
//! what a plugin declares ([`ClientFlag`]), the `twirl client PLUGIN
//! --help` text, and the check that rejects a flag it does not take.
//!
//! A word that starts with `-` and a letter (or a second `-`) is a flag; a
//! negative number (`-3`) is data. Everything after a bare `--` is data,
//! whatever it looks like.
//!
//! # Examples
//!
//! ```
//! use twirl_protocols::client_args::{ClientFlag, check};
//!
//! const FLAGS: &[ClientFlag] = &[ClientFlag { name: "--lines", value: Some("N"), help: "how many lines" }];
//! let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
//! assert!(check("chargen", FLAGS, &words(&["--lines", "3"])).is_ok());
//! let e = check("chargen", FLAGS, &words(&["--bogus", "5"])).unwrap_err();
//! assert!(e.to_string().contains("'--bogus'"));
//! // After `--`, a word is data even if it looks like a flag.
//! assert!(check("chargen", FLAGS, &words(&["--", "--bogus"])).is_ok());
//! ```

use std::fmt::Write as _;

/// One flag a plugin's client takes.
#[derive(Clone, Copy, Debug)]
pub struct ClientFlag {
    /// The flag as typed: `--lines`.
    pub name: &'static str,
    /// The name of its value (`N`), or `None` for a switch.
    pub value: Option<&'static str>,
    /// What it does, for `twirl client PLUGIN --help`.
    pub help: &'static str,
}

/// A word the client does not take, or a flag without its value: a usage
/// error (exit 2), its message naming the word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(pub String);

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

/// True when `word` is written as a flag: `-x...` or `--x...`, but not `-`,
/// `--` or a negative number.
pub fn looks_like_flag(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next() == Some('-')
        && matches!(chars.next(), Some(c) if c == '-' && word.len() > 2 || c.is_ascii_alphabetic())
}

/// True when `word` asks for help (`-h`, `--help`).
pub fn is_help(word: &str) -> bool {
    word == "-h" || word == "--help"
}

/// Checks a client's words against its declared flags: every flag before
/// `--` must be declared (and have its value when it takes one). The error
/// names the unknown flag and lists the ones it takes.
pub fn check(plugin: &str, flags: &[ClientFlag], words: &[String]) -> Result<(), FlagError> {
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--" {
            return Ok(());
        }
        if !looks_like_flag(w) {
            continue;
        }
        match flags.iter().find(|f| f.name == w) {
            Some(f) => {
                if let Some(v) = f.value
                    && it.next().is_none()
                {
                    return Err(FlagError(format!("{} needs a value ({v})", f.name)));
                }
            }
            None => {
                let takes = if flags.is_empty() {
                    "no flags".to_string()
                } else {
                    flags.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                };
                return Err(FlagError(format!(
                    "unknown flag '{w}' for 'twirl client {plugin}' (it takes {takes}; data that starts with '-' goes after '--')"
                )));
            }
        }
    }
    Ok(())
}

/// The words with the first bare `--` taken out: for a client that takes no
/// flags, all of them are data.
pub fn data_words(words: &[String]) -> Vec<String> {
    match words.iter().position(|w| w == "--") {
        Some(i) => words[..i].iter().chain(&words[i + 1..]).cloned().collect(),
        None => words.to_vec(),
    }
}

/// The `twirl client PLUGIN --help` text: usage, what it does, its flags.
pub fn help(plugin: &str, summary: &str, flags: &[ClientFlag], raw: bool) -> String {
    let target = if raw { "HOST" } else { "ENDPOINT" };
    let mut s = format!("Usage: twirl client {plugin} {target} [FLAG]... [WORD]... [-- WORD...]\n\n{summary}\n\n");
    s.push_str("Flags:\n");
    let mut rows: Vec<(String, &str)> = flags
        .iter()
        .map(|f| (f.value.map(|v| format!("{} {v}", f.name)).unwrap_or_else(|| f.name.to_string()), f.help))
        .collect();
    rows.push(("-h, --help".to_string(), "this help"));
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (flag, text) in rows {
        let _ = writeln!(s, "  {flag:<width$}  {text}");
    }
    s.push_str("\nWords after '--' are data, even when they start with '-'.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[ClientFlag] = &[
        ClientFlag { name: "--from", value: Some("PORT"), help: "send from PORT" },
        ClientFlag { name: "--receive", value: None, help: "listen only" },
    ];

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_data_told_apart() {
        for w in ["--bogus", "-x", "--from"] {
            assert!(looks_like_flag(w), "{w}");
        }
        for w in ["-", "--", "-3", "-0.5", "hello", "a-b"] {
            assert!(!looks_like_flag(w), "{w}");
        }
    }

    #[test]
    fn unknown_flags_named_and_known_ones_pass() {
        assert!(check("reorder", FLAGS, &words(&["--from", "4000", "a", "b"])).is_ok());
        assert!(check("reorder", FLAGS, &words(&["--receive"])).is_ok());
        let e = check("reorder", FLAGS, &words(&["a", "--bogus"])).unwrap_err();
        assert!(e.0.contains("'--bogus'") && e.0.contains("--from, --receive"), "{e}");
        let e = check("reorder", FLAGS, &words(&["--from"])).unwrap_err();
        assert!(e.0.contains("--from needs a value"), "{e}");
        let e = check("echo", &[], &words(&["-v"])).unwrap_err();
        assert!(e.0.contains("no flags"), "{e}");
        assert!(check("echo", &[], &words(&["-3", "--", "--bogus"])).is_ok());
    }

    #[test]
    fn data_words_drop_the_first_separator_only() {
        assert_eq!(data_words(&words(&["a", "--", "--b", "--"])), words(&["a", "--b", "--"]));
        assert_eq!(data_words(&words(&["a"])), words(&["a"]));
    }

    #[test]
    fn help_lists_every_flag() {
        let h = help("reorder", "orders words", FLAGS, false);
        assert!(h.starts_with("Usage: twirl client reorder ENDPOINT"), "{h}");
        assert!(
            h.contains("  --from PORT  send from PORT\n") && h.contains("--receive") && h.contains("-h, --help"),
            "{h}"
        );
    }
}
