//! The one error type of this crate. Every variant knows the exception class the reference
//! daemon (or client) raises for it, so qubesd can answer with the same bytes.

use std::io;

/// Why a backup, a profile or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `QubesBackupProfileNotFoundError`: no `<dir>/<id>.conf`.
    #[error("Backup profile does not exist: {0}")]
    ProfileNotFound(String),
    /// `ProtocolError`: the request itself is wrong (a slash in the profile id).
    #[error("{0}")]
    Protocol(String),
    /// `BackupAlreadyRunningError`: the same profile is already being executed.
    #[error("Backup already running")]
    AlreadyRunning,
    /// `BackupCancelledError`: Cancel stopped the backup (or the restore).
    #[error("Backup cancelled")]
    Cancelled,
    /// `QubesException` with a message: a bad profile, a bad destination, a failed backup, a
    /// backup that cannot be trusted, a failed restore.
    #[error("{0}")]
    Qubes(String),
    /// An I/O failure, with what was being done (reported as `QubesException`).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

/// A result of this crate.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

impl BackupError {
    /// A `QubesException` with this message.
    pub fn qubes(message: impl Into<String>) -> Self {
        BackupError::Qubes(message.into())
    }

    /// An I/O error with its context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        BackupError::Io {
            context: context.into(),
            source,
        }
    }

    /// The exception class name the reference sends on the wire for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            BackupError::ProfileNotFound(_) => "QubesBackupProfileNotFoundError",
            BackupError::Protocol(_) => "ProtocolError",
            BackupError::AlreadyRunning => "BackupAlreadyRunningError",
            BackupError::Cancelled => "BackupCancelledError",
            BackupError::Qubes(_) | BackupError::Io { .. } => "QubesException",
        }
    }

    /// The message as the reference formats it.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let e = BackupError::ProfileNotFound("daily".into());
        assert_eq!(e.kind(), "QubesBackupProfileNotFoundError");
        assert_eq!(e.message(), "Backup profile does not exist: daily");
        assert_eq!(BackupError::Cancelled.message(), "Backup cancelled");
        assert_eq!(
            BackupError::AlreadyRunning.message(),
            "Backup already running"
        );
        assert_eq!(
            BackupError::AlreadyRunning.kind(),
            "BackupAlreadyRunningError"
        );
        let e = BackupError::io("reading x", io::Error::other("boom"));
        assert_eq!(
            (e.kind(), e.message().as_str()),
            ("QubesException", "reading x: boom")
        );
    }
}
