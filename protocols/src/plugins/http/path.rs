//! From a request target to a file under the root, and the checks that
//! keep every answer inside it.
//!
//! The path is split on `/` *before* percent-decoding, so `%2f` can never
//! make a separator: a segment that decodes to one names no file (404).
//! A segment that is `..` once decoded (`..`, `%2e%2e`, `.%2E`) is refused
//! (403) rather than resolved; `.` and empty segments are dropped, so an
//! absolute path (`//etc/passwd`) is looked up under the root like any
//! other. A NUL byte or invalid UTF-8 after decoding, or a bad `%` escape,
//! is a bad request (400). Last, the path found is made canonical and must
//! still be under the (canonical) root: a symlink that leads outside is
//! refused (403). Only regular files and directories are served; a FIFO or
//! a device is refused (403) before it is opened, as opening one could
//! block the loop.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use super::beneath::Root;
use super::response::Status;

/// What a request target names under the root.
#[derive(Debug)]
pub enum Found {
    /// A regular file, open, with its metadata and name (for its type).
    File(File, Metadata, String),
    /// A directory without `index.html` (asked for with its trailing `/`):
    /// its path, and the decoded request path for the page's title.
    Listing(PathBuf, String),
    /// A directory asked for without its trailing slash: where to go.
    Redirect(String),
}

/// Why a target names nothing servable: the status and a short reason.
pub type Refusal = (Status, &'static str);

/// The path part of a target (no query, no fragment) and its query (with `?`).
fn split_target(target: &str) -> (&str, &str) {
    let target = target.split('#').next().unwrap_or("");
    match target.find('?') {
        Some(i) => (&target[..i], &target[i..]),
        None => (target, ""),
    }
}

/// Percent-decodes one segment; `None` for a bad escape.
fn percent_decode(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The decoded segments of a target's path, checked (see the module
/// documentation), and whether it ended with `/`.
///
/// ```
/// use twirl_protocols::plugins::http::path::segments;
/// assert_eq!(segments("/a/./b%20c/?q").unwrap(), (vec!["a".to_string(), "b c".to_string()], true));
/// assert_eq!(segments("/%2e%2e/etc/passwd").unwrap_err().0.code(), 403);
/// assert_eq!(segments("/a%2fb").unwrap_err().0.code(), 404);
/// assert_eq!(segments("/a%00b").unwrap_err().0.code(), 400);
/// ```
pub fn segments(target: &str) -> Result<(Vec<String>, bool), Refusal> {
    let (path, _) = split_target(target);
    if !path.starts_with('/') {
        return Err((Status::BadRequest, "the request target must be a path starting with /"));
    }
    let mut out = Vec::new();
    for raw in path.split('/') {
        let bytes = percent_decode(raw).ok_or((Status::BadRequest, "bad percent-encoding in the path"))?;
        if bytes.contains(&0) {
            return Err((Status::BadRequest, "NUL byte in the path"));
        }
        let segment = String::from_utf8(bytes).map_err(|_| (Status::BadRequest, "the path is not valid UTF-8"))?;
        match segment.as_str() {
            "" | "." => {}
            ".." => return Err((Status::Forbidden, "'..' is not allowed in the path")),
            s if s.contains('/') => return Err((Status::NotFound, "no file name holds a '/'")),
            _ => out.push(segment),
        }
    }
    Ok((out, path.ends_with('/')))
}

/// Finds what `target` names under `root`.
pub fn resolve(root: &Root, target: &str) -> Result<Found, Refusal> {
    let (segs, slash) = segments(target)?;
    let relative: PathBuf = segs.iter().collect();
    let shown = format!("/{}{}", segs.join("/"), if segs.is_empty() { "" } else { "/" });
    let name = segs.last().map(String::as_str).unwrap_or("");
    let found = match root.open_beneath(&relative) {
        // The kernel kept it beneath the root: the common, fast way.
        Some(Ok(file)) => {
            let meta = file.metadata().map_err(io_refusal)?;
            Opened { file: Some(file), meta, real: root.path().join(&relative) }
        }
        // Refused as leaving the root; an absolute symlink back inside
        // is refused too, so the slow way decides.
        Some(Err(e)) if e.raw_os_error() == Some(libc::EXDEV) || e.raw_os_error() == Some(libc::ELOOP) => {
            slow(root.path(), &relative)?
        }
        Some(Err(e)) => return Err(io_refusal(e)),
        None => slow(root.path(), &relative)?,
    };
    if found.meta.is_dir() {
        if !slash {
            let (raw_path, query) = split_target(target);
            return Ok(Found::Redirect(format!("{raw_path}/{query}")));
        }
        let index = relative.join("index.html");
        let index = match root.open_beneath(&index) {
            Some(Ok(file)) => file.metadata().ok().filter(|m| m.is_file()).map(|m| (file, m)),
            Some(Err(_)) => None,
            None => inside(root.path(), &found.real.join("index.html"))
                .ok()
                .and_then(|p| open(&p, "index.html").ok())
                .and_then(|f| match f {
                    Found::File(file, meta, _) => Some((file, meta)),
                    _ => None,
                }),
        };
        return Ok(match index {
            Some((file, meta)) => Found::File(file, meta, "index.html".to_string()),
            None => Found::Listing(found.real, shown),
        });
    }
    if !found.meta.is_file() {
        return Err((Status::Forbidden, "not a regular file"));
    }
    if slash {
        return Err((Status::NotFound, "a file is not a directory"));
    }
    match found.file {
        Some(file) => Ok(Found::File(file, found.meta, name.to_string())),
        None => open(&found.real, name),
    }
}

/// What a look-up found: its metadata, its path (canonical on the slow
/// way), and the file when it is already open.
struct Opened {
    file: Option<File>,
    meta: Metadata,
    real: PathBuf,
}

/// The slow way: the canonical path, checked to be under the root, and its
/// metadata (not opened yet: a FIFO is refused before it is opened).
fn slow(root: &Path, relative: &Path) -> Result<Opened, Refusal> {
    let real = inside(root, &root.join(relative))?;
    let meta = fs::metadata(&real).map_err(io_refusal)?;
    Ok(Opened { file: None, meta, real })
}

/// `path` made canonical, if it is still under `root`.
fn inside(root: &Path, path: &Path) -> Result<PathBuf, Refusal> {
    let real = fs::canonicalize(path).map_err(io_refusal)?;
    if real.starts_with(root) { Ok(real) } else { Err((Status::Forbidden, "the path leads outside the root")) }
}

/// Opens a regular file (checked again once open: it may have changed).
fn open(path: &Path, name: &str) -> Result<Found, Refusal> {
    let file = File::open(path).map_err(io_refusal)?;
    let meta = file.metadata().map_err(io_refusal)?;
    if !meta.is_file() {
        return Err((Status::Forbidden, "not a regular file"));
    }
    Ok(Found::File(file, meta, name.to_string()))
}

/// The status for a failed look-up.
fn io_refusal(e: io::Error) -> Refusal {
    match e.kind() {
        io::ErrorKind::PermissionDenied => (Status::Forbidden, "permission denied"),
        _ => (Status::NotFound, "no such file or directory"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(target: &str) -> u16 {
        segments(target).map(|_| 200).unwrap_or_else(|e| e.0.code())
    }

    #[test]
    fn escapes_are_refused() {
        assert_eq!(code("/../etc/passwd"), 403);
        assert_eq!(code("/a/../../b"), 403);
        assert_eq!(code("/%2e%2e/x"), 403);
        assert_eq!(code("/.%2E/x"), 403);
        assert_eq!(code("/%2E%2e"), 403);
        assert_eq!(code("/..%2fetc"), 404);
        assert_eq!(code("/%2fetc%2fpasswd"), 404);
        assert_eq!(code("/a%ff"), 400);
        assert_eq!(code("/a%c3"), 400);
        assert_eq!(code("/a%0"), 400);
        assert_eq!(code("/a%zz"), 400);
        assert_eq!(code("/%00"), 400);
        assert_eq!(code("*"), 400);
        assert_eq!(code("etc/passwd"), 400);
        assert_eq!(code("/caf%C3%A9"), 200);
    }

    #[test]
    fn absolute_paths_stay_under_the_root() {
        assert_eq!(segments("//etc//passwd").unwrap().0, vec!["etc", "passwd"]);
        assert_eq!(segments("/?x=../..").unwrap().0, Vec::<String>::new());
    }
}
