//! Exception names as they travel on the wire, and the error type that carries them.
//!
//! The reference daemon sends the Python class name of the exception. Its base class decides how
//! the connection ends (see [`ExcKind::base`]), so every name carries its base here.

use std::fmt;

/// How the reference daemon classifies an exception, which decides connection handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExcBase {
    /// `QubesException` and subclasses: EXCEPTION message, then close.
    Qubes,
    /// `ProtocolError` (an `AssertionError`): EXCEPTION message, logged as a warning, then abort.
    Protocol,
    /// `PermissionDenied` (a `PermissionError`): as `Protocol`.
    Permission,
}

macro_rules! exc_kinds {
    ($($variant:ident => $base:ident),* $(,)?) => {
        /// Every exception class name the daemon sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ExcKind { $($variant),* }

        impl ExcKind {
            /// The class name written on the wire.
            pub fn name(self) -> &'static str {
                match self { $(ExcKind::$variant => stringify!($variant)),* }
            }
            /// The base class, which decides connection handling.
            pub fn base(self) -> ExcBase {
                match self { $(ExcKind::$variant => ExcBase::$base),* }
            }
            /// Looks a wire name up; unknown names are `None` (clients then treat them as
            /// plain `QubesException`).
            pub fn from_name(name: &str) -> Option<ExcKind> {
                match name { $(stringify!($variant) => Some(ExcKind::$variant),)* _ => None }
            }
        }
    };
}

exc_kinds! {
    QubesException => Qubes,
    QubesVMNotFoundError => Qubes,
    QubesVMInvalidUUIDError => Qubes,
    QubesVMAlreadyExistsError => Qubes,
    QubesVMError => Qubes,
    QubesVMInUseError => Qubes,
    QubesVMNotStartedError => Qubes,
    QubesVMNotRunningError => Qubes,
    QubesVMNotPausedError => Qubes,
    QubesVMNotSuspendedError => Qubes,
    QubesVMNotHaltedError => Qubes,
    QubesVMShutdownTimeoutError => Qubes,
    QubesNoTemplateError => Qubes,
    QubesMemoryError => Qubes,
    QubesPoolInUseError => Qubes,
    QubesValueError => Qubes,
    QubesPropertyValueError => Qubes,
    QubesNoSuchPropertyError => Qubes,
    QubesNotImplementedError => Qubes,
    QubesFeatureNotFoundError => Qubes,
    QubesTagNotFoundError => Qubes,
    QubesLabelNotFoundError => Qubes,
    QubesLabelInUseError => Qubes,
    StoragePoolException => Qubes,
    DeviceNotAssigned => Qubes,
    DeviceNotFound => Qubes,
    DeviceAlreadyAttached => Qubes,
    DeviceAlreadyAssigned => Qubes,
    QubesBackupProfileNotFoundError => Qubes,
    BackupCancelledError => Qubes,
    BackupAlreadyRunningError => Qubes,
    ProtocolError => Protocol,
    QubesUnrecognizedDeviceAssignmentMode => Protocol,
    QubesInvalidTagError => Protocol,
    QubesInvalidLabelError => Protocol,
    QubesInvalidLabelValueError => Protocol,
    QubesVolumeCopyTokenNotFoundError => Protocol,
    PermissionDenied => Permission,
}

/// An error answered to the caller.
///
/// `Exception` becomes an EXCEPTION message. `Silent` is the reference's "generic failure":
/// the connection is aborted without a single byte (the reason is only logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QubesError {
    /// Sent as an EXCEPTION message.
    #[error("{}: {message}", kind.name())]
    Exception {
        /// Class name on the wire.
        kind: ExcKind,
        /// Already formatted message.
        message: String,
    },
    /// No bytes at all, as the reference does for non-Qubes Python exceptions.
    #[error("generic failure (no response): {0}")]
    Silent(String),
}

impl QubesError {
    /// An EXCEPTION of the given class.
    pub fn new(kind: ExcKind, message: impl Into<String>) -> Self {
        QubesError::Exception {
            kind,
            message: message.into(),
        }
    }
    /// A `ProtocolError`.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ExcKind::ProtocolError, message)
    }
    /// A `QubesValueError`.
    pub fn value(message: impl Into<String>) -> Self {
        Self::new(ExcKind::QubesValueError, message)
    }
    /// A plain `QubesException`.
    pub fn qubes(message: impl Into<String>) -> Self {
        Self::new(ExcKind::QubesException, message)
    }
    /// A `PermissionDenied`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ExcKind::PermissionDenied, message)
    }
    /// An abort with no response bytes; `why` is for the log only.
    pub fn silent(why: impl Into<String>) -> Self {
        QubesError::Silent(why.into())
    }
    /// `No such domain: '<name>'`.
    pub fn no_such_vm(name: &str) -> Self {
        Self::new(
            ExcKind::QubesVMNotFoundError,
            format!("No such domain: {}", py_repr(name)),
        )
    }
    /// The exception class, if this is not a silent failure.
    pub fn kind(&self) -> Option<ExcKind> {
        match self {
            QubesError::Exception { kind, .. } => Some(*kind),
            QubesError::Silent(_) => None,
        }
    }
}

/// Python's `repr()` of a `str`, as embedded in many reference messages (`'name'`).
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

impl fmt::Display for ExcBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExcBase::Qubes => "QubesException",
            ExcBase::Protocol => "ProtocolError",
            ExcBase::Permission => "PermissionDenied",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("work"), "'work'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("x\ny"), "'x\\ny'");
    }

    #[test]
    fn names_round_trip() {
        for k in [
            ExcKind::QubesVMNotFoundError,
            ExcKind::ProtocolError,
            ExcKind::PermissionDenied,
        ] {
            assert_eq!(ExcKind::from_name(k.name()), Some(k));
        }
        assert_eq!(ExcKind::QubesInvalidTagError.base(), ExcBase::Protocol);
        assert_eq!(ExcKind::from_name("KeyError"), None);
    }
}
