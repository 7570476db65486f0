//! Shared pieces of the twirl benchmark suite: reading a server's CPU time and
//! memory from `/proc`, pinning to a core, raising the descriptor limit,
//! command-line parsing, and the test messages the load generator sends.
//!
//! The binaries are `loadgen` (the load generator), `peer-tokio` and
//! `peer-mio` (the servers twirl is compared with), `peer-tokio-chat` (a
//! chat room on tokio's broadcast channel, beside `twirl serve chat` in the
//! fan-out), `peer-twirl` (twirl's reactor with settings the command does
//! not expose, and the length-prefixed protocol), `timers` (timer memory and
//! scaling) and `bench` (the driver that builds and runs everything and
//! writes `bench/RESULTS.md`). `tls-bench` and `http-bench` drive the TLS
//! and HTTP comparisons; [`tls_peer`] holds the TLS echo servers they run.

pub mod tls_peer;

use std::collections::HashMap;
use std::io;
use std::time::Duration;

/// CPU time a process has used, from `/proc/PID/stat`.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct CpuTime {
    /// User-space time, in microseconds.
    pub user_us: f64,
    /// Kernel time, in microseconds.
    pub sys_us: f64,
    /// Minor page faults (memory the kernel had to map in).
    pub minflt: f64,
}

impl CpuTime {
    /// User plus kernel time, in microseconds.
    pub fn total_us(&self) -> f64 {
        self.user_us + self.sys_us
    }

    /// The time used since `earlier`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us - earlier.user_us,
            sys_us: self.sys_us - earlier.sys_us,
            minflt: self.minflt - earlier.minflt,
        }
    }
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime and stime of a process (all its threads), from `/proc/PID/stat`.
pub fn read_cpu(pid: u32) -> io::Result<CpuTime> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::other(format!("cannot parse /proc/{pid}/stat")))
}

/// Parses the utime and stime fields (14 and 15) of a `/proc/PID/stat` line.
pub fn parse_stat(text: &str) -> Option<CpuTime> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): minflt is field 10, index 7; utime
    // field 14, index 11.
    let minflt: f64 = fields.get(7)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let us_per_tick = 1e6 / clock_ticks_per_sec();
    Some(CpuTime { user_us: utime * us_per_tick, sys_us: stime * us_per_tick, minflt })
}

/// CPU time (user and kernel) a process's live threads have used, in
/// nanoseconds, summed from `/proc/PID/task/*/schedstat`: exact, where
/// `/proc/PID/stat` counts clock ticks (10 ms), which on a workload of a
/// few hundred milliseconds is an error of several per cent.
pub fn read_cpu_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let text = std::fs::read_to_string(task?.path().join("schedstat"))?;
        total += parse_schedstat(&text).ok_or_else(|| io::Error::other("cannot parse a schedstat"))?;
    }
    Ok(total)
}

/// The first field of a `schedstat` line: nanoseconds spent on a CPU.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Resident set size of a process in bytes, from `VmRSS` in `/proc/PID/status`.
pub fn read_rss(pid: u32) -> io::Result<u64> {
    read_status_bytes(pid, "VmRSS")
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), in bytes.
pub fn read_status_bytes(pid: u32, field: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_bytes(&text, field).ok_or_else(|| io::Error::other(format!("no {field} line in /proc/{pid}/status")))
}

/// Finds `FIELD:   N kB` in the text of `/proc/PID/status`; bytes.
pub fn parse_status_bytes(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|kb| kb * 1024)
    })
}

/// Resets a process's peak RSS (`VmHWM`) to its current RSS, by writing 5 to
/// `/proc/PID/clear_refs` (Linux 4.0 and later; the caller must own it).
pub fn reset_peak_rss(pid: u32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// The kernel's queues of one TCP socket, from `/proc/net/tcp`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpQueues {
    /// Bytes written and not yet acknowledged by the peer (sent or not).
    pub tx: u64,
    /// Bytes received and not yet read by the application.
    pub rx: u64,
}

/// The queues of every IPv4 TCP socket between two 127.0.0.1 ports in this
/// network namespace, keyed by (local port, remote port).
pub fn loopback_tcp_queues() -> io::Result<HashMap<(u16, u16), TcpQueues>> {
    Ok(parse_proc_net_tcp(&std::fs::read_to_string("/proc/net/tcp")?))
}

/// Parses the text of `/proc/net/tcp` (see [`loopback_tcp_queues`]).
pub fn parse_proc_net_tcp(text: &str) -> HashMap<(u16, u16), TcpQueues> {
    const LOOPBACK: &str = "0100007F";
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(queues)) = (f.get(1), f.get(2), f.get(4)) else { continue };
        let port = |a: &str| -> Option<u16> {
            let (ip, port) = a.split_once(':')?;
            (ip == LOOPBACK).then_some(())?;
            u16::from_str_radix(port, 16).ok()
        };
        let Some((tx, rx)) = queues.split_once(':') else { continue };
        if let (Some(l), Some(r), Ok(tx), Ok(rx)) =
            (port(local), port(remote), u64::from_str_radix(tx, 16), u64::from_str_radix(rx, 16))
        {
            out.insert((l, r), TcpQueues { tx, rx });
        }
    }
    out
}

/// Pins the calling thread (and so a process about to `exec`) to one core.
pub fn pin_to_core(core: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it;
    // sched_setaffinity reads it. All are async-signal-safe, so this may run
    // between fork and exec.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises `RLIMIT_NOFILE` to `want` (soft and hard) if allowed, otherwise the
/// soft limit to the hard one; returns the soft limit now in force.
/// Async-signal-safe (only `getrlimit`/`setrlimit`), so usable in `pre_exec`.
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit read and write a properly sized rlimit.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur >= want as libc::rlim_t {
            return lim.rlim_cur as u64;
        }
        let raised = libc::rlimit { rlim_cur: want as libc::rlim_t, rlim_max: lim.rlim_max.max(want as libc::rlim_t) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        let soft = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return lim.rlim_max as u64;
        }
        lim.rlim_cur as u64
    }
}

/// Busy and steal time of each CPU so far, in microseconds, from `/proc/stat`.
pub fn cpu_busy() -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let us_per_tick = 1e6 / clock_ticks_per_sec();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some(name) if name.starts_with("cpu") && name.len() > 3 => {}
            _ => continue,
        }
        let v: Vec<f64> = f.filter_map(|x| x.parse().ok()).collect();
        if v.len() < 8 {
            continue;
        }
        // user nice system idle iowait irq softirq steal
        let busy = v[0] + v[1] + v[2] + v[5] + v[6];
        out.push((busy * us_per_tick, v[7] * us_per_tick));
    }
    out
}

/// Number of online CPUs.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `--key value` and `--flag` arguments.
#[derive(Debug, Default)]
pub struct Args {
    map: HashMap<String, String>,
}

impl Args {
    /// Parses `std::env::args()` after the program name.
    pub fn from_env() -> Result<Args, String> {
        Self::parse(std::env::args().skip(1))
    }

    /// Parses `--key value` pairs; a `--key` followed by another `--...` or
    /// nothing is a flag with value `true`.
    pub fn parse(words: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut it = words.into_iter().peekable();
        while let Some(w) = it.next() {
            let Some(key) = w.strip_prefix("--") else { return Err(format!("unexpected argument '{w}'")) };
            if let Some((k, v)) = key.split_once('=') {
                map.insert(k.to_string(), v.to_string());
                continue;
            }
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().unwrap_or_default(),
                _ => "true".to_string(),
            };
            map.insert(key.to_string(), value);
        }
        Ok(Args { map })
    }

    /// The raw value of `--key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// True if `--key` was given (as a flag or with a value other than `false`).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v != "false")
    }

    /// `--key` parsed, or `default`.
    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key} '{v}': not a number")),
        }
    }

    /// `--key` as seconds, or `default`.
    pub fn secs(&self, key: &str, default: f64) -> Result<Duration, String> {
        let s: f64 = self.num(key, default)?;
        if !(s.is_finite() && s >= 0.0) {
            return Err(format!("--{key} '{s}': expected seconds >= 0"));
        }
        Ok(Duration::from_secs_f64(s))
    }
}

/// What the server does to each message: echo it, or reverse its words (the
/// `reverse` plugin's line protocol).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transform {
    /// The reply is the message.
    Echo,
    /// The reply is the line's words in reverse order, then `\n`.
    Reverse,
}

impl Transform {
    /// Parses `echo` or `reverse`.
    pub fn parse(s: &str) -> Option<Transform> {
        match s {
            "echo" => Some(Transform::Echo),
            "reverse" => Some(Transform::Reverse),
            _ => None,
        }
    }

    /// The reply the server must send for `message`.
    pub fn apply(self, message: &[u8]) -> Vec<u8> {
        match self {
            Transform::Echo => message.to_vec(),
            Transform::Reverse => {
                let line = message.strip_suffix(b"\n").unwrap_or(message);
                let words: Vec<&[u8]> = line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect();
                let mut out = Vec::with_capacity(message.len());
                for (i, w) in words.iter().rev().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(w);
                }
                out.push(b'\n');
                out
            }
        }
    }
}

/// A `size`-byte line of words separated by single spaces and ending in
/// `\n`, different for each `seed`: reversing its words keeps its length,
/// so echo and reverse servers get the same bytes and answer as many.
pub fn message(seed: u64, size: usize) -> Vec<u8> {
    let size = size.max(2);
    let mut m = Vec::with_capacity(size + 16);
    let mut i = 0u64;
    while m.len() < size - 1 {
        if !m.is_empty() {
            m.push(b' ');
        }
        let word = format!("w{:x}", seed.wrapping_mul(0x9e37_79b9).wrapping_add(i) & 0xff_ffff);
        m.extend_from_slice(word.as_bytes());
        i += 1;
    }
    m.truncate(size - 1);
    if m.last() == Some(&b' ') {
        *m.last_mut().unwrap_or(&mut 0) = b'x';
    }
    m.push(b'\n');
    m
}

/// How the pingpong workload frames its messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Lines ending in `\n` (what [`message`] makes).
    Lines,
    /// A 4-byte big-endian length, then that many bytes (twirl's
    /// `PrefixedReceiver` with `Prefix::U32`).
    Prefixed,
}

impl Framing {
    /// Parses `lines` or `prefixed`.
    pub fn parse(s: &str) -> Option<Framing> {
        match s {
            "lines" | "line" => Some(Framing::Lines),
            "prefixed" => Some(Framing::Prefixed),
            _ => None,
        }
    }

    /// The smallest whole message this framing can make.
    pub fn min_size(self) -> usize {
        match self {
            Framing::Lines => 2,
            Framing::Prefixed => 6,
        }
    }

    /// A `size`-byte message on the wire, different for each `seed`: a line,
    /// or a 4-byte prefix and a `size - 4`-byte line as its payload (so both
    /// framings put the same number of bytes on the wire per message).
    pub fn message(self, seed: u64, size: usize) -> Vec<u8> {
        match self {
            Framing::Lines => message(seed, size),
            Framing::Prefixed => {
                let size = size.max(self.min_size());
                let payload = message(seed, size - 4);
                let mut m = Vec::with_capacity(size);
                m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                m.extend_from_slice(&payload);
                m
            }
        }
    }
}

/// The byte at offset `n` of the stream workload's data: a pattern with a
/// prime period, so a dropped, repeated or reordered chunk shows.
pub const PATTERN_PERIOD: usize = 251;

/// A pattern buffer of `len + PATTERN_PERIOD` bytes: the data at stream
/// offset `o` is `buf[o % PATTERN_PERIOD..]`.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len + PATTERN_PERIOD).map(|i| (i % PATTERN_PERIOD) as u8).collect()
}

/// Parses a `RESULT key=value ...` line into numbers (non-numbers are skipped).
pub fn parse_result(line: &str) -> Option<HashMap<String, f64>> {
    let rest = line.strip_prefix("RESULT ")?;
    let mut m = HashMap::new();
    for kv in rest.split_whitespace() {
        if let Some((k, v)) = kv.split_once('=')
            && let Ok(x) = v.parse::<f64>()
        {
            m.insert(k.to_string(), x);
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_name() {
        let line = "1234 (my server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 99 1000 200";
        let cpu = parse_stat(line).unwrap();
        let tick = 1e6 / clock_ticks_per_sec();
        assert_eq!(cpu.user_us, 250.0 * tick);
        assert_eq!(cpu.sys_us, 50.0 * tick);
        assert_eq!(cpu.minflt, 100.0);
    }

    #[test]
    fn schedstat_of_this_process_grows_with_work() {
        assert_eq!(parse_schedstat("123456789 2000 31\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        let before = read_cpu_ns(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(read_cpu_ns(std::process::id()).unwrap() > before, "{x}");
    }

    #[test]
    fn status_and_proc_net_tcp() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_bytes(status, "VmRSS"), Some(1024 * 1024));
        assert_eq!(parse_status_bytes(status, "VmHWM"), Some(2048 * 1024));
        assert_eq!(parse_status_bytes(status, "VmSwap"), None);
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:1F90 0100007F:C350 01 00001000:00000020 00:00000000 00000000     0        0 1 1 0\n\
            1: 0100000A:1F90 0100007F:C351 01 00000005:00000000 00:00000000 00000000     0        0 1 1 0\n";
        let q = parse_proc_net_tcp(tcp);
        assert_eq!(q.len(), 1, "only 127.0.0.1 on both ends");
        assert_eq!(q[&(8080, 50000)], TcpQueues { tx: 4096, rx: 32 });
    }

    #[test]
    fn messages_keep_length_when_reversed() {
        for size in [2, 3, 16, 64, 65, 1000] {
            for seed in 0..20 {
                let m = message(seed, size);
                assert_eq!(m.len(), size);
                assert_eq!(Transform::Reverse.apply(&m).len(), size, "{:?}", String::from_utf8_lossy(&m));
                assert!(!m.starts_with(b" ") && !m.contains(&b'\r'));
            }
        }
        assert_ne!(message(1, 64), message(2, 64));
    }

    #[test]
    fn prefixed_messages_have_the_size_asked() {
        for size in [6, 7, 64, 1000] {
            let m = Framing::Prefixed.message(3, size);
            assert_eq!(m.len(), size);
            assert_eq!(u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize, size - 4);
            assert_eq!(m[4..], message(3, size - 4)[..]);
        }
        assert_eq!(Framing::Lines.message(5, 64), message(5, 64));
        assert_eq!(Framing::parse("prefixed"), Some(Framing::Prefixed));
    }

    #[test]
    fn args_and_results() {
        let a = Args::parse(["--conns", "5", "--quick", "--x=1.5"].map(String::from)).unwrap();
        assert_eq!(a.num("conns", 0usize).unwrap(), 5);
        assert!(a.flag("quick"));
        assert_eq!(a.num("x", 0.0f64).unwrap(), 1.5);
        let r = parse_result("RESULT msgs=10 name=x p99_us=3.5").unwrap();
        assert_eq!(r["msgs"], 10.0);
        assert_eq!(r["p99_us"], 3.5);
        assert!(!r.contains_key("name"));
    }
}
