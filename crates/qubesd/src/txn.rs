//! A transaction: the working copy of the state a write changes, and everything the change
//! means besides — the events it fires, the files it writes, what must happen once it is
//! committed and what undoes its disk changes if it is not.
//!
//! Domain operations ([`crate::ops`]) work on a `Txn` and nothing else; the core
//! ([`crate::core`]) commits it (write the side files, then `qubes.xml`, swap the state
//! snapshot, publish the events, run the commit actions) or drops it (undo actions, and only
//! the events that the reference delivers even for a failed call). So a failed or panicking
//! call leaves memory and disk as they were.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use qubes_api::{Event, QubesError};

use crate::hypervisor::Hypervisor;
use crate::model::State;

/// Work done after a call is committed or to undo it (runs once).
pub type Deferred = Box<dyn FnOnce() + Send>;

/// Pending `admin.vm.volume.CloneFrom` tokens: token -> (qube, volume name, pool, vid) of the
/// source volume. Kept outside the transactional state: a token is spent even when the
/// CloneTo that spends it then fails, as in the reference.
pub type CloneTokens = Arc<Mutex<HashMap<String, (String, String, String, String)>>>;

/// What every call may use besides the state: shared handles, cheap to clone.
#[derive(Clone)]
pub struct Env {
    /// The hypervisor, when qubesd has one.
    pub hv: Option<Arc<dyn Hypervisor>>,
    /// Directory of `qubes.xml` and the per-qube directories (`appvms/`, `vm-templates/`).
    pub state_dir: PathBuf,
    /// Pending volume clone tokens.
    pub tokens: CloneTokens,
    /// Directory of the backup profiles.
    pub backup_profile_dir: PathBuf,
    /// The program that runs a service in a qube (`qrexec-client`).
    pub qrexec_client: PathBuf,
    /// Backups running now, by profile id: set a flag to cancel one.
    pub backups: RunningBackups,
    /// Names of removed qubes whose data is still being deleted (after their removal was
    /// committed): a qube of that name cannot be created until it is done.
    pub being_removed: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Directory of the qubes' QubesDB sockets.
    pub qubesdb_dir: PathBuf,
    /// The program that runs a command as root for autostart's systemd units (`sudo`);
    /// None: none is run.
    pub sudo: Option<PathBuf>,
    /// Qubes' runtime directory (qrexec markers, `previously-paused.list`).
    pub runtime_dir: PathBuf,
}

/// Backups running now: profile id -> its handle.
pub type RunningBackups = Arc<Mutex<HashMap<String, Arc<BackupHandle>>>>;

/// What Cancel needs of a running backup.
#[derive(Debug, Default)]
pub struct BackupHandle {
    /// Set to stop the writer at its next block.
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
    /// The `qubes.Backup` service process a backup to a qube writes to: killed by Cancel, so
    /// a writer blocked on a service that stopped reading ends too.
    pub service_pid: Mutex<Option<u32>>,
}

impl Env {
    /// The hypervisor, or the error a call gets when qubesd has none.
    pub fn hv(&self) -> Result<Arc<dyn Hypervisor>, QubesError> {
        self.hv
            .clone()
            .ok_or_else(|| QubesError::qubes("qubesd has no connection to the hypervisor"))
    }
}

/// One write in progress.
pub struct Txn {
    /// The working copy of the state; becomes the state when the call is committed.
    pub st: State,
    /// Shared handles.
    pub env: Env,
    /// Whether `qubes.xml` must be written.
    pub save: bool,
    effects: Effects,
}

/// What a transaction does besides changing the state, kept until it is committed (or
/// dropped).
#[derive(Default)]
pub struct Effects {
    /// Events, in the order they were fired.
    pub events: Vec<Event>,
    /// Indexes into `events` of those delivered even when the call fails.
    pub sticky: Vec<usize>,
    /// Files to write (durably) once `qubes.xml` is saved.
    pub side_files: Vec<(PathBuf, Vec<u8>)>,
    /// Actions after the commit.
    pub on_commit: Vec<Deferred>,
    /// Undo actions, run newest first when the call is not committed.
    pub on_rollback: Vec<Deferred>,
}

/// A transaction taken apart for committing or dropping it.
pub struct Parts {
    /// The working state.
    pub st: State,
    /// Whether `qubes.xml` must be written.
    pub save: bool,
    /// Everything else it did.
    pub effects: Effects,
}

impl Txn {
    /// A transaction over a working copy of the state.
    pub fn new(st: State, env: Env) -> Txn {
        Txn {
            st,
            env,
            save: false,
            effects: Effects::default(),
        }
    }

    /// Records an event on a qube (subject = qube name) or of the system (subject empty).
    pub fn fire(&mut self, subject: &str, name: impl Into<String>, kwargs: &[(&str, &str)]) {
        let mut e = Event::new(subject, name);
        for (k, v) in kwargs {
            e = e.kw(k, *v);
        }
        self.effects.events.push(e);
    }

    /// Records an event that is delivered even if the call then fails
    /// (`domain-start-failed` and the like; pre-events always are).
    pub fn fire_sticky(&mut self, subject: &str, name: impl Into<String>, kwargs: &[(&str, &str)]) {
        self.effects.sticky.push(self.effects.events.len());
        self.fire(subject, name, kwargs);
    }

    /// Writes `data` to `path` (durably, replacing it) once the call is committed.
    pub fn write_file(&mut self, path: PathBuf, data: Vec<u8>) {
        self.effects.side_files.push((path, data));
    }

    /// Runs `f` once the call is committed (removing a deleted qube's data, say).
    pub fn after_commit(&mut self, f: Deferred) {
        self.effects.on_commit.push(f);
    }

    /// Runs `f` if the call is not committed, to undo a disk change made on the way.
    pub fn undo_on_failure(&mut self, f: Deferred) {
        self.effects.on_rollback.push(f);
    }

    /// Takes the transaction apart.
    pub fn into_parts(self) -> Parts {
        Parts {
            st: self.st,
            save: self.save,
            effects: self.effects,
        }
    }
}

/// Whether an event is a "pre" event (delivered even when the call then fails).
pub fn is_pre_event(name: &str) -> bool {
    let base = name.split(':').next().unwrap_or(name);
    base.contains("-pre-")
}
