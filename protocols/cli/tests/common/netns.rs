//! Private network namespaces joined by veth pairs (and bridges), for the
//! exercises that need more than one host or a real link: built with
//! `ip netns` / `ip link` as root, every namespace deleted on drop (a
//! failed test too). Nothing they carry leaves this machine.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::output;

/// Namespaces made by one test, deleted on drop.
pub struct Net {
    prefix: String,
    made: Vec<String>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Net {
    /// Checks that namespaces can be made here (root, `ip`), or says why not.
    pub fn new() -> Result<Net, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let ok = Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false);
        if !ok {
            return Err("no 'ip' command (apt-get install iproute2)".into());
        }
        // Unique per process and per Net, so tests may run side by side.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ok(Net { prefix: format!("tw{}x{n}", std::process::id() % 100_000), made: Vec::new() })
    }

    /// A short unique name (also good for an interface: at most 15 bytes).
    pub fn name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    /// Makes namespace `what` (its full name is returned) with `lo` up.
    pub fn ns(&mut self, what: &str) -> Result<String, String> {
        let name = self.name(what);
        run(&["ip", "netns", "add", &name])?;
        self.made.push(name.clone());
        self.ip(&name, &["link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// `ip -n NS ARGS...`.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "-n", ns];
        all.extend_from_slice(args);
        run(&all)
    }

    /// A veth pair: `a_dev` in `a_ns`, `b_dev` in `b_ns`, both up.
    pub fn veth(&self, a_ns: &str, a_dev: &str, b_ns: &str, b_dev: &str) -> Result<(), String> {
        run(&["ip", "link", "add", a_dev, "netns", a_ns, "type", "veth", "peer", "name", b_dev, "netns", b_ns])?;
        self.ip(a_ns, &["link", "set", a_dev, "up"])?;
        self.ip(b_ns, &["link", "set", b_dev, "up"])?;
        Ok(())
    }

    /// Adds `cidr` to `dev` in `ns`.
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) -> Result<(), String> {
        self.ip(ns, &["addr", "add", cidr, "dev", dev]).map(|_| ())
    }

    /// `program` run inside `ns`.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.made {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs a command to its end (bounded); its stdout, or what went wrong.
fn run(args: &[&str]) -> Result<String, String> {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    let out = output(c);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}
