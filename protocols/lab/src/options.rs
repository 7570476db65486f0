//! What to run: [`Options`], the handout's numbers by default, parsed from
//! `twirl deadlock` or the example's command line.

use std::path::PathBuf;
use std::time::Duration;

/// What to run: the handout's numbers by default.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Bytes the client sends before reading any (the handout's 16,000,000).
    #[arg(long, default_value_t = 16_000_000)]
    pub bytes: u64,
    /// Hard cap on twirl's write buffer for the fourth run, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub cap: usize,
    /// Seconds without a byte moving before the watchdog calls it a deadlock.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub stall: Duration,
    /// Hard deadline for each run, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub deadline: Duration,
    /// SO_SNDBUF and SO_RCVBUF asked for the blocking sockets (Linux doubles it).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub sockbuf: usize,
    /// Draw bytes sent, received and buffered over time into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Show the runs live in a browser: serve a page on ENDPOINT (tcp:PORT)
    /// and keep serving it after the report, until Ctrl-C.
    #[arg(long, value_name = "ENDPOINT")]
    pub dashboard: Option<String>,
    /// Where the runs are fed as they happen (the dashboard reads it).
    #[arg(skip)]
    pub live: crate::live::Feed,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bytes: 16_000_000,
            cap: 1024 * 1024,
            stall: Duration::from_secs(2),
            deadline: Duration::from_secs(30),
            sockbuf: 64 * 1024,
            svg: None,
            dashboard: None,
            live: crate::live::Feed::default(),
        }
    }
}

/// The largest send buffer TCP autotunes to (`/proc/sys/net/ipv4/tcp_wmem`, third field).
fn tcp_wmem_max() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").ok()?;
    text.split_whitespace().nth(2)?.parse().ok()
}

/// Parses a number of seconds above zero.
fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e6 => Ok(Duration::from_secs_f64(x)),
        _ => Err(format!("'{s}': expected a number of seconds above 0")),
    }
}

#[derive(clap::Parser)]
#[command(name = "deadlock", about = "The deadlock lab: blocking sockets against a reactor (seed 002)")]
struct Cli {
    #[command(flatten)]
    opts: Options,
}

impl Options {
    /// A small, fast run that still deadlocks (tiny socket buffers): for
    /// tests and the examples' self-check.
    ///
    /// The transfer is a few MB larger than the most a TCP send buffer may
    /// autotune to (Linux's `tcp_wmem`), so that twirl's side, whose sockets
    /// keep their default buffers, still has to buffer and hits the cap in run 4.
    pub fn quick() -> Options {
        let kernel = tcp_wmem_max().unwrap_or(4 << 20);
        Options {
            bytes: kernel.saturating_add(3 << 20).clamp(4 << 20, 64 << 20),
            cap: 256 * 1024,
            stall: Duration::from_secs(1),
            deadline: Duration::from_secs(20),
            sockbuf: 16 * 1024,
            svg: None,
            dashboard: None,
            live: crate::live::Feed::default(),
        }
    }

    /// Parses command-line arguments (the first is the program name).
    pub fn parse_args<I, T>(args: I) -> Result<Options, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Cli as clap::Parser>::try_parse_from(args).map(|c| c.opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_with_defaults_and_reject_bad_seconds() {
        let o = Options::parse_args(["deadlock"]).unwrap();
        assert_eq!(o.bytes, 16_000_000);
        assert_eq!(o.stall, Duration::from_secs(2));
        let o = Options::parse_args(["deadlock", "--bytes", "1000", "--cap", "4096", "--stall", "0.5"]).unwrap();
        assert_eq!((o.bytes, o.cap, o.stall), (1000, 4096, Duration::from_millis(500)));
        assert!(Options::parse_args(["deadlock", "--stall", "-1"]).is_err());
    }
}
