//! The lock that keeps a second daemon from writing the same `qubes.xml`.
//!
//! An exclusive `lockf` on `qubes.xml.lock`, held for the daemon's lifetime. A clean shutdown
//! removes the file (the reference leaves nothing but qubes.xml in the state directory), and
//! that is race-free because of two rules:
//!
//! * the holder unlinks the file while it still holds the lock, after its last save, and saves
//!   nothing after that ([`StoreLock::release`]; the store refuses later saves);
//! * whoever gets the lock checks that the path still names the file it locked; if the file
//!   was unlinked (or replaced) meanwhile, its lock guards nothing and it tries again.
//!
//! So two daemons never both hold a lock that guards the current path, and a daemon that
//! starts after a shutdown reads the final save. A daemon killed without a shutdown leaves the
//! file behind, which the next one simply locks.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// How often to retry when the lock file is swapped under us; each swap needs a whole
/// daemon shutting down, so more than a few in a row means something else is wrong.
const ATTEMPTS: usize = 8;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or inspected.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Another process holds it.
    #[error("another qubesd holds the lock on this store")]
    Held,
}

/// A held lock on a store (dropped: released, file left in place).
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
    file: Option<File>,
}

impl StoreLock {
    /// Takes the lock at `path` without waiting.
    pub fn acquire(path: &Path) -> Result<StoreLock, LockError> {
        for _ in 0..ATTEMPTS {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o660)
                .open(path)?;
            // SAFETY: plain lockf on a file descriptor we own.
            if unsafe { libc::lockf(file.as_raw_fd(), libc::F_TLOCK, 0) } != 0 {
                return Err(LockError::Held);
            }
            let ours = file.metadata()?;
            match std::fs::metadata(path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                    return Ok(StoreLock {
                        path: path.to_path_buf(),
                        file: Some(file),
                    });
                }
                // The previous holder removed it between our open and our lock.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(LockError::Io(io::Error::other(
            "the lock file keeps changing under us",
        )))
    }

    /// Removes the lock file, then releases the lock. The caller must not write the store
    /// after this (another daemon may own it from now on).
    pub fn release(&mut self) {
        if let Some(file) = self.file.take() {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("removing {}: {e}", self.path.display());
            }
            drop(file);
        }
    }

    /// Whether the lock is still held.
    pub fn held(&self) -> bool {
        self.file.is_some()
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic there is a failed run.
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_released_lock_leaves_no_file_and_can_be_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml.lock");
        let mut a = StoreLock::acquire(&path).unwrap();
        assert!(path.exists());
        a.release();
        assert!(!a.held());
        assert!(!path.exists());
        let b = StoreLock::acquire(&path).unwrap();
        assert!(b.held());
        assert!(path.exists());
    }

    #[test]
    fn the_lock_is_on_the_file_the_path_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml.lock");
        // A stale lock file replaced by another: the lock taken is the current one's.
        let stale = File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"").unwrap();
        let l = StoreLock::acquire(&path).unwrap();
        let locked = l.file.as_ref().unwrap().metadata().unwrap();
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!((locked.dev(), locked.ino()), (now.dev(), now.ino()));
        assert_ne!(stale.metadata().unwrap().ino(), now.ino());
    }
}
