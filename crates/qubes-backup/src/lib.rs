//! Qubes OS backups (admin-api.md §9): profiles, the format v4 writer behind
//! `admin.backup.Execute`, its reader, and the restore engine behind `qubes-backup-restore`.
//!
//! Layers, from the bottom: [`error`]; [`profile`], [`summary`], [`qubesxml`] (pure); [`gz`], [`container`]
//! (the scrypt container) and [`sparse`] (inner tar streams); [`mod@write`] (a whole backup)
//! and [`read`] (verified reading); [`restore`] (a plan, then Admin API calls).

pub mod container;
pub mod error;
pub mod gz;
pub mod profile;
pub mod qubesxml;
pub mod read;
pub mod restore;
pub mod sparse;
pub mod summary;
pub mod write;

pub use error::{BackupError, Result};
