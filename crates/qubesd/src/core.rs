//! The daemon core: owns the state and the store, resolves a request to a method, runs the
//! generic checks in the reference's order (admin-api.md §1.5), runs the handler, and commits:
//! save `qubes.xml`, then publish events. A failed call puts the old state back.

use std::path::PathBuf;

use qubes_api::exc::py_repr;
use qubes_api::{Event, ExcKind, QubesError, Request};

use crate::events::EventHub;
use crate::handlers::{self, Method, Want};
use crate::model::{Class, State};
use crate::names;
use crate::store::Store;

/// Which socket a request came in on; each has its own method table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// `qubesd.sock`: `admin.*`.
    Admin,
    /// `qubesd.internal.sock`: `internal.*`.
    Internal,
    /// `qubesd.misc.sock`: `qubes.*`.
    Misc,
}

/// What a successful call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An OK message with this content.
    Ok(Vec<u8>),
    /// Start an event stream (`admin.Events`) for this destination.
    Events {
        /// Destination qube (`dom0` = everything).
        dest: String,
        /// Caller: events are filtered by policy unless it is dom0.
        src: String,
    },
    /// Start a statistics stream (`admin.vm.Stats`) for this destination.
    Stats {
        /// Destination qube (`dom0` = every running qube).
        dest: String,
    },
    /// Copy volume data without holding the core, then commit it
    /// ([`Core::finish_volume_copy`]); the caller hears the commit's outcome.
    CopyVolume(crate::storage::api::VolumeCopy),
    /// Answer OK once the qube has stopped, or fail after `timeout` seconds.
    WaitHalted {
        /// The qube.
        vm: String,
        /// Seconds to wait.
        timeout: u64,
    },
}

/// A call that passed the generic checks, as handlers see it.
pub struct Ctx<'a> {
    /// The state to read and change.
    pub st: &'a mut State,
    /// Caller's qube name.
    pub src: String,
    /// Destination qube name.
    pub dest: String,
    /// Method name.
    pub method: &'static str,
    /// Argument (ASCII).
    pub arg: String,
    /// Payload (untrusted bytes).
    pub untrusted_payload: Vec<u8>,
    /// Events to publish if the call succeeds, in order.
    pub events: Vec<Event>,
    /// Indexes into `events` of those published even when the call fails
    /// (`domain-start-failed` and the like; pre-events always are).
    pub sticky: Vec<usize>,
    /// The hypervisor, if connected.
    pub hv: Option<std::sync::Arc<dyn crate::hypervisor::Hypervisor>>,
    /// For calls whose answer policy filters (`admin.vm.List` from a qube): the rules (empty
    /// when the policy is invalid, so nothing is allowed) and the system info.
    pub policy: Option<(Vec<qrexec_policy::Rule>, qrexec_policy::SystemInfo)>,
    /// Whether qubes.xml must be written.
    pub save: bool,
    /// Files to write after the state is saved (notes): path, contents.
    pub side_files: Vec<(PathBuf, Vec<u8>)>,
    /// Directory of per-qube files.
    pub state_dir: PathBuf,
    /// Pending `admin.vm.volume.CloneFrom` tokens (outside the rolled-back state: a token is
    /// spent even when CloneTo then fails).
    pub tokens: CloneTokens,
    /// Work done only once the call is committed (deleting a removed qube's volumes).
    pub on_commit: Vec<Deferred>,
    /// Undo of disk changes made by a call that then fails, run newest first.
    pub on_rollback: Vec<Deferred>,
    /// Keep (save and publish) the state changes even though the call fails: the
    /// reference's `finally: app.save()` (Resize when the online part fails).
    pub keep_on_error: bool,
}

/// A deferred action of a call.
pub type Deferred = Box<dyn FnOnce() + Send>;

/// Clone tokens: token -> (qube, volume name, pool, vid) of the source volume.
pub type CloneTokens = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<String, (String, String, String, String)>>,
>;

impl Ctx<'_> {
    /// Records an event on a qube (subject = qube name) or globally (subject empty).
    pub fn fire(&mut self, subject: &str, name: impl Into<String>, kwargs: &[(&str, &str)]) {
        let mut e = Event::new(subject, name);
        for (k, v) in kwargs {
            e = e.kw(k, *v);
        }
        self.events.push(e);
    }

    /// Records an event that is delivered even if the call then fails.
    pub fn fire_sticky(&mut self, subject: &str, name: impl Into<String>, kwargs: &[(&str, &str)]) {
        self.sticky.push(self.events.len());
        self.fire(subject, name, kwargs);
    }

    /// The destination qube (it exists: checked before the handler runs).
    pub fn dest_domain(&self) -> &crate::model::Domain {
        self.st
            .domain(&self.dest)
            .expect("destination checked before the handler")
    }
}

/// The core: state, store, event hub.
pub struct Core {
    /// Current state.
    pub state: State,
    store: Store,
    /// Where events go.
    pub hub: EventHub,
    /// Where `vm-stats` events go (kept apart: they are frequent and only Stats wants them).
    pub stats: EventHub,
    /// The hypervisor, when qubesd has one.
    pub hv: Option<std::sync::Arc<dyn crate::hypervisor::Hypervisor>>,
    /// qrexec policy, for what non-dom0 callers may see.
    pub policy: crate::policy::PolicyCache,
    /// Directory of per-qube side files (`appvms/`, `vm-templates/`).
    pub state_dir: PathBuf,
    /// Pending clone tokens (in memory only, as in the reference).
    pub tokens: CloneTokens,
}

/// The outcome of one call, with the log line the reference would write.
pub type CallResult = Result<Reply, QubesError>;

impl Core {
    /// A core over a loaded store.
    pub fn new(state: State, store: Store, state_dir: PathBuf, hub: EventHub) -> Core {
        Core {
            state,
            store,
            hub,
            stats: EventHub::new(),
            hv: None,
            policy: crate::policy::PolicyCache::new(crate::policy::default_dirs()),
            state_dir,
            tokens: CloneTokens::default(),
        }
    }

    /// Runs one request end to end (checks, handler, commit).
    pub fn call(&mut self, socket: Socket, req: &Request) -> CallResult {
        let (src, dest, method, arg) = self.resolve(socket, req)?;
        if !method.write {
            return self.call_read(method, src, dest, arg, req);
        }
        self.run_write(
            method.name,
            src,
            dest,
            arg,
            req.payload.clone(),
            method.handler,
        )
    }

    /// Changes the daemon makes on its own (hypervisor events): same commit rules as a call.
    pub fn run_internal(
        &mut self,
        f: impl FnOnce(&mut Ctx) -> Result<(), QubesError>,
    ) -> Result<(), QubesError> {
        self.run_write(
            "internal",
            "dom0".into(),
            "dom0".into(),
            String::new(),
            Vec::new(),
            |c| f(c).map(|_| Reply::Ok(Vec::new())),
        )
        .map(|_| ())
    }

    /// Runs a state-changing handler on a snapshot-protected state; commits (save, publish)
    /// on success, restores the state on failure.
    fn run_write(
        &mut self,
        method: &'static str,
        src: String,
        dest: String,
        arg: String,
        untrusted_payload: Vec<u8>,
        handler: impl FnOnce(&mut Ctx) -> Result<Reply, QubesError>,
    ) -> CallResult {
        let snapshot = self.state.clone();
        let mut ctx = Ctx {
            st: &mut self.state,
            src,
            dest,
            method,
            arg,
            untrusted_payload,
            events: Vec::new(),
            sticky: Vec::new(),
            hv: self.hv.clone(),
            policy: None,
            save: false,
            side_files: Vec::new(),
            state_dir: self.state_dir.clone(),
            tokens: self.tokens.clone(),
            on_commit: Vec::new(),
            on_rollback: Vec::new(),
            keep_on_error: false,
        };
        let result = handler(&mut ctx);
        let Ctx {
            events,
            sticky,
            save,
            side_files,
            on_commit,
            on_rollback,
            keep_on_error,
            ..
        } = ctx;
        let rollback = |actions: Vec<Deferred>| actions.into_iter().rev().for_each(|f| f());
        if let Err(e) = &result
            && keep_on_error
        {
            if save && let Err(se) = self.store.save(&self.state) {
                tracing::error!("saving {}: {se}", self.store.path().display());
            }
            self.hub.publish(events);
            return Err(e.clone());
        }
        match result {
            Ok(reply) => {
                for (path, data) in &side_files {
                    let written = path
                        .parent()
                        .map(std::fs::create_dir_all)
                        .unwrap_or(Ok(()))
                        .and_then(|_| crate::store::write_atomic(path, data, 0o664));
                    if let Err(e) = written {
                        self.state = snapshot;
                        rollback(on_rollback);
                        return Err(QubesError::qubes(format!(
                            "Failed to write notes file: {e}"
                        )));
                    }
                }
                if save && let Err(e) = self.store.save(&self.state) {
                    tracing::error!("saving {}: {e}", self.store.path().display());
                    self.state = snapshot;
                    rollback(on_rollback);
                    let msg = e.to_string();
                    return Err(QubesError::qubes(
                        if msg == crate::store::MODIFIED_ELSEWHERE {
                            msg
                        } else {
                            format!("Failed to save qubes.xml: {msg}")
                        },
                    ));
                }
                self.hub.publish(events);
                on_commit.into_iter().for_each(|f| f());
                Ok(reply)
            }
            Err(e) => {
                // The reference delivers pre-events before the handler that vetoes them.
                self.state = snapshot;
                rollback(on_rollback);
                self.hub.publish(
                    events
                        .into_iter()
                        .enumerate()
                        .filter(|(i, e)| is_pre_event(&e.name) || sticky.contains(i))
                        .map(|(_, e)| e),
                );
                Err(e)
            }
        }
    }

    /// A read-only call: no snapshot, nothing to save or publish.
    fn call_read(
        &mut self,
        method: &'static Method,
        src: String,
        dest: String,
        arg: String,
        req: &Request,
    ) -> CallResult {
        let policy = (method.name == "admin.vm.List" && src != "dom0").then(|| {
            let info = crate::policy::system_info(&self.state);
            let rules = self.policy.rules().map(<[_]>::to_vec).unwrap_or_default();
            (rules, info)
        });
        let mut ctx = Ctx {
            st: &mut self.state,
            src,
            dest,
            method: method.name,
            arg,
            untrusted_payload: req.payload.clone(),
            events: Vec::new(),
            sticky: Vec::new(),
            hv: self.hv.clone(),
            policy,
            save: false,
            side_files: Vec::new(),
            state_dir: self.state_dir.clone(),
            tokens: self.tokens.clone(),
            on_commit: Vec::new(),
            on_rollback: Vec::new(),
            keep_on_error: false,
        };
        let result = (method.handler)(&mut ctx);
        debug_assert!(
            !ctx.save && ctx.events.is_empty(),
            "{} is marked read-only",
            method.name
        );
        result
    }

    /// Decodes and checks src, dest, method, payload, arg and destination class, in that
    /// order.
    fn resolve(
        &self,
        socket: Socket,
        req: &Request,
    ) -> Result<(String, String, &'static Method, String), QubesError> {
        let src = self.decode_vm(&req.src)?;
        let dest = self.decode_vm(&req.dest)?;
        let method = std::str::from_utf8(&req.method)
            .ok()
            .filter(|m| m.is_ascii())
            .ok_or_else(|| QubesError::silent("method is not ASCII"))?;
        let arg = std::str::from_utf8(&req.arg)
            .ok()
            .filter(|a| a.is_ascii())
            .ok_or_else(|| QubesError::silent("argument is not ASCII"))?;
        let m = handlers::lookup(socket, method)
            .ok_or_else(|| QubesError::protocol(format!("no such method: {}", py_repr(method))))?;
        match (m.payload, req.payload.is_empty()) {
            (Want::Yes, true) => return Err(QubesError::protocol("expected payload")),
            (Want::No, false) => return Err(QubesError::protocol("unexpected payload")),
            _ => {}
        }
        match (m.arg, arg.is_empty()) {
            (Want::Yes, true) => return Err(QubesError::protocol("expected an argument")),
            (Want::No, false) => return Err(QubesError::protocol("unexpected argument")),
            _ => {}
        }
        let dest_is_admin = self
            .state
            .domain(&dest)
            .is_some_and(|d| d.class == Class::AdminVM);
        match m.dest_adminvm {
            Some(true) if !dest_is_admin => {
                return Err(QubesError::protocol("expected destination to be AdminVM"));
            }
            Some(false) if dest_is_admin => {
                return Err(QubesError::protocol(
                    "expected destination to not be AdminVM",
                ));
            }
            _ => {}
        }
        Ok((src, dest, m, arg.to_string()))
    }

    /// `decode_vm`: a name or `uuid:<uuid>` to an existing qube's name.
    fn decode_vm(&self, untrusted: &[u8]) -> Result<String, QubesError> {
        let s = std::str::from_utf8(untrusted)
            .ok()
            .filter(|s| s.is_ascii())
            .ok_or_else(|| QubesError::silent("qube name is not ASCII"))?;
        if let Some(rest) = s.strip_prefix("uuid:") {
            if s.len() != 41 || !names::is_canonical_uuid(rest) {
                return Err(QubesError::new(
                    ExcKind::QubesVMInvalidUUIDError,
                    format!("VM UUID is not valid: {}", py_repr(rest)),
                ));
            }
            return self
                .state
                .domain_by_uuid(rest)
                .map(|d| d.name.clone())
                .ok_or_else(|| QubesError::no_such_vm(s));
        }
        names::validate_name(s)?;
        if self.state.domain(s).is_none() {
            return Err(QubesError::no_such_vm(s));
        }
        Ok(s.to_string())
    }

    /// Whether a non-dom0 `src` may see `target` through `service_and_arg` (always for dom0).
    pub fn policy_allows(&mut self, src: &str, service_and_arg: &str, target: &str) -> bool {
        if src == "dom0" {
            return true;
        }
        let info = crate::policy::system_info(&self.state);
        match self.policy.rules() {
            Ok(rules) => crate::policy::allows(rules, &info, service_and_arg, src, target),
            Err(_) => false,
        }
    }

    /// The second half of a CloneTo whose data was copied outside the core: commits the
    /// copy (or drops it when `copied` failed), with the same commit rules as a call.
    pub fn finish_volume_copy(
        &mut self,
        job: crate::storage::api::VolumeCopy,
        copied: Result<(), String>,
    ) -> CallResult {
        self.run_write(
            "admin.vm.volume.CloneTo",
            "dom0".into(),
            job.vm.clone(),
            job.volume.clone(),
            Vec::new(),
            move |c| crate::storage::api::finish_copy(c, &job, copied),
        )
    }

    /// Writes the current state (used at shutdown).
    pub fn save(&mut self) -> std::io::Result<()> {
        self.store.save(&self.state)
    }
}

/// Whether an event is a "pre" event (delivered even when the call then fails).
pub fn is_pre_event(name: &str) -> bool {
    let base = name.split(':').next().unwrap_or(name);
    base.contains("-pre-")
}
