//! Domain operations: what a call changes in the state, what it saves and which events it
//! fires, in the reference's order — all visible in one place, on a [`Txn`](crate::txn::Txn).
//! The API families call these after decoding a request; the core calls them for changes the
//! daemon makes on its own (hypervisor events). They import only the bottom layer.

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

pub mod autostart;
pub mod backup;
pub mod devices;
pub mod event_pump;
pub mod features;
pub mod features_request;
pub mod hooks;
pub mod intents;
pub mod labels;
pub mod lifecycle;
pub mod properties;
pub mod qubes;
pub mod stats;
pub mod storage;
pub mod suspend;
pub mod tags;
pub mod validate;

/// `QubesVMNotHaltedError` for a qube that must be halted.
pub fn not_halted(vm: &str) -> QubesError {
    QubesError::new(
        ExcKind::QubesVMNotHaltedError,
        format!("Domain is not powered off: {}", py_repr(vm)),
    )
}

/// `QubesVMNotRunningError` for a qube that must run.
pub fn not_running(vm: &str) -> QubesError {
    QubesError::new(
        ExcKind::QubesVMNotRunningError,
        format!(
            "Domain not running (either powered off or paused): {}",
            py_repr(vm)
        ),
    )
}

/// The reference's `enforce_arg` failure.
pub fn arg_not_in(what: &str) -> QubesError {
    QubesError::denied(format!("Argument not in {}", py_repr(what)))
}
