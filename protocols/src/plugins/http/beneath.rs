//! The served root, and opening a path beneath it in one system call:
//! `openat2(2)` with `RESOLVE_BENEATH` (Linux 5.6), which makes the kernel
//! refuse any resolution that leaves the root (`..`, a symlink out, an
//! absolute symlink) instead of this code checking after the fact.
//!
//! What the kernel refuses is not always outside: an absolute symlink that
//! points back inside the root is refused too. [`super::path`] then takes
//! the slow way (canonical paths compared by prefix), so both ways serve
//! the same files; the fast way is the common one, one call instead of a
//! `readlink` per component. Where `openat2` does not exist (an older
//! kernel, seccomp), [`Root::open_beneath`] says so and the slow way is
//! the only one.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The directory served: its canonical path, and a descriptor for it.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    dir: Option<File>,
}

impl Root {
    /// The root at `path`, which must be canonical (see
    /// [`OptionKind::Directory`](crate::options::OptionKind::Directory)).
    /// If it cannot be opened now, every look-up takes the slow way.
    pub fn new(path: PathBuf) -> Root {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)
            .ok();
        Root { path, dir }
    }

    /// The root at `path` without a descriptor: every look-up takes the
    /// slow way, as on a kernel without `openat2` (for tests of that way).
    pub fn slow_only(path: PathBuf) -> Root {
        Root { path, dir: None }
    }

    /// Its canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `relative` (no leading `/`, no `..`; empty for the root
    /// itself) for reading, beneath the root only. `None` when the kernel
    /// cannot do it this way. A FIFO opens without blocking (`O_NONBLOCK`),
    /// so that its type can be checked and refused.
    pub fn open_beneath(&self, relative: &Path) -> Option<io::Result<File>> {
        let dir = self.dir.as_ref()?;
        let rel = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
        let Ok(c) = CString::new(rel.as_os_str().as_bytes()) else {
            return Some(Err(io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path")));
        };
        // SAFETY: open_how is plain integers; all zero is a valid value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: openat2 reads the NUL-terminated path and the open_how
        // struct, both alive for the call, with the struct's true size; it
        // returns a new descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::E2BIG) => None,
                _ => Some(Err(e)),
            };
        }
        // SAFETY: fd is a descriptor openat2 just returned, owned by no one else.
        Some(Ok(unsafe { File::from_raw_fd(fd as i32) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_beneath_and_refuses_the_way_out() {
        let base = std::env::temp_dir().join(format!("twirl-beneath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/d")).unwrap();
        std::fs::write(base.join("root/d/f"), b"x").unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink("../secret", base.join("root/out")).unwrap();
        let root = Root::new(std::fs::canonicalize(base.join("root")).unwrap());
        let Some(found) = root.open_beneath(Path::new("d/f")) else {
            let _ = std::fs::remove_dir_all(&base);
            return println!("skipped: openat2 is not available here");
        };
        assert!(found.is_ok());
        assert!(root.open_beneath(Path::new("")).unwrap().unwrap().metadata().unwrap().is_dir());
        let out = root.open_beneath(Path::new("out")).unwrap().unwrap_err();
        assert_eq!(out.raw_os_error(), Some(libc::EXDEV), "a symlink out is refused by the kernel");
        let up = root.open_beneath(Path::new("../secret")).unwrap().unwrap_err();
        assert_eq!(up.raw_os_error(), Some(libc::EXDEV));
        let _ = std::fs::remove_dir_all(&base);
    }
}
