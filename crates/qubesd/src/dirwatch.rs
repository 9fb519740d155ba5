//! Knowing cheaply whether anything changed in a few directories: inotify watches on them,
//! their subdirectories, and the nearest existing parent of one that does not exist yet (so
//! its creation counts). Asking costs one non-blocking `read`; where inotify cannot be used
//! the caller is told to look for itself every time.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Watches over some directories.
#[derive(Debug)]
pub struct DirWatch {
    fd: Option<OwnedFd>,
}

/// The inotify events that mean a directory's contents changed.
const MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// How deep subdirectories are watched (the policy's `include/`).
const MAX_DEPTH: usize = 4;

impl DirWatch {
    /// Watches `dirs` and their subdirectories as they are now. Without inotify (or with too
    /// many directories) the watch knows nothing and [`DirWatch::changed`] always says yes.
    pub fn new(dirs: &[PathBuf]) -> DirWatch {
        // SAFETY: inotify_init1 takes only flags and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return DirWatch { fd: None };
        }
        // SAFETY: `raw` is a descriptor we just opened and own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut watched = 0;
        let mut stack: Vec<(PathBuf, usize)> = dirs.iter().map(|d| (d.clone(), 0)).collect();
        while let Some((dir, depth)) = stack.pop() {
            let target = if dir.is_dir() {
                dir.clone()
            } else {
                match dir.ancestors().skip(1).find(|p| p.is_dir()) {
                    Some(p) => p.to_path_buf(),
                    None => continue,
                }
            };
            if !add_watch(&fd, &target) || watched > 64 {
                return DirWatch { fd: None };
            }
            watched += 1;
            if target != dir || depth >= MAX_DEPTH {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((e.path(), depth + 1));
                    }
                }
            }
        }
        DirWatch { fd: Some(fd) }
    }

    /// Whether inotify watches the directories (else [`DirWatch::changed`] always says yes).
    pub fn is_live(&self) -> bool {
        self.fd.is_some()
    }

    /// Whether anything changed since the last call (always true without inotify).
    pub fn changed(&self) -> bool {
        let Some(fd) = &self.fd else {
            return true;
        };
        let mut any = false;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into a buffer we own.
            let n = unsafe {
                libc::read(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n > 0 {
                any = true;
                continue;
            }
            // 0 or EAGAIN: nothing more pending; any other error: assume a change.
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                return true;
            }
            return any;
        }
    }
}

fn add_watch(fd: &OwnedFd, dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a valid descriptor and a NUL-terminated path.
    unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), MASK) >= 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_changes_inside_and_creation_of_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.d");
        let w = DirWatch::new(std::slice::from_ref(&policy));
        assert!(!w.changed(), "nothing happened yet");
        std::fs::create_dir(&policy).unwrap();
        assert!(w.changed(), "the directory was created");
        assert!(!w.changed(), "events are consumed");
        let w = DirWatch::new(std::slice::from_ref(&policy));
        std::fs::write(policy.join("30-user.policy"), "x").unwrap();
        assert!(w.changed(), "a file was written");
        std::fs::create_dir(policy.join("include")).unwrap();
        let w = DirWatch::new(std::slice::from_ref(&policy));
        std::fs::write(policy.join("include/a"), "y").unwrap();
        assert!(w.changed(), "a file in a subdirectory was written");
    }
}
