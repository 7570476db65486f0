//! `twirl cert DIR [--name NAME]... [--force]`: a self-signed certificate
//! for `localhost`, `127.0.0.1` and `::1` (and any `--name`), written as
//! `DIR/cert.pem` and `DIR/key.pem`, for `twirl serve PLUGIN@tls:...` and
//! its clients' `ca=`. Existing files are never overwritten without
//! `--force`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The names every certificate is valid for.
const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Writes the pair and returns the two paths (certificate, key).
pub fn run(dir: &Path, extra: &[String], force: bool) -> Result<(PathBuf, PathBuf), String> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !force {
        for p in [&cert_path, &key_path] {
            if p.exists() {
                return Err(format!("{}: already exists (use --force to overwrite it)", p.display()));
            }
        }
    }
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|s| s.to_string()).collect();
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| format!("cannot make a certificate: {e}"))?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    write(&key_path, made.signing_key.serialize_pem().as_bytes(), force, 0o600)?;
    write(&cert_path, made.cert.pem().as_bytes(), force, 0o644)?;
    Ok((cert_path, key_path))
}

fn write(path: &Path, data: &[u8], force: bool, mode: u32) -> Result<(), String> {
    let mut opts = OpenOptions::new();
    opts.write(true).mode(mode);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let result = opts.open(path).and_then(|mut f| f.write_all(data));
    result.map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => format!("{}: already exists (use --force to overwrite it)", path.display()),
        _ => format!("{}: cannot write: {e}", path.display()),
    })
}
