//! Storage on real files: pool calls, each file driver's create / snapshot on start / commit
//! on stop / revert / resize / clone / import, and the import service program.
//!
//! The `file-reflink` driver runs twice: on the temporary directory's filesystem with
//! `setup_check=False` (sparse copies; ext4 here), and, when run as root with `mkfs.xfs`, on
//! a loop-mounted XFS with reflinks (real FICLONE). LVM thin runs in `lvm_thin.rs`.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod file_driver;
mod pools;
mod reflink;
mod support;
