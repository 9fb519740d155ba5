//! Making qubes run: start (and first the qubes its network comes through), shutdown, kill,
//! pause, unpause, and the reaction to what the hypervisor reports (admin-api.md §2.2, §4.4).
//!
//! Each operation is a few short transactions with the slow parts between them: hypervisor
//! calls and the volumes' start and stop (snapshots, commits) run with no lock on the core, so
//! every other call is answered meanwhile. A qube's own lifecycle operations are serialised
//! by its lock ([`Core::qube_lock`]), as the reference serialises them per qube; a second Start
//! waits for the first and then finds the qube running.

use std::collections::HashMap;
use std::sync::Arc;

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use super::not_running;
use crate::core::Core;
use crate::hypervisor::{DomainStatus, Hypervisor, LifecycleEvent};
use crate::model::{Class, Domain, PowerState, State};
use crate::props;
use crate::txn::Txn;

/// What a start needs after its checks: the hypervisor, and the power state to go back to
/// if the start fails.
type Started = (Arc<dyn Hypervisor>, PowerState);

/// How deep a chain of net qubes started for one qube may be.
const MAX_NETVM_CHAIN: usize = 16;

fn now_secs() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:.6}", t.as_secs_f64())
}

fn set_power(t: &mut Txn, vm: &str, power: PowerState, status: Option<&DomainStatus>) {
    if let Some(d) = t.st.domain_mut(vm) {
        d.power = power;
        match status {
            Some(s) => d.xid = s.id,
            None if power == PowerState::Halted => d.xid = -1,
            None => {}
        }
        if power == PowerState::Halted {
            d.start_time = None;
        }
    }
}

/// Whether a domain in this hypervisor state exists as a running guest.
fn domain_active(state: PowerState) -> bool {
    matches!(
        state,
        PowerState::Running | PowerState::Paused | PowerState::Suspended | PowerState::Halting
    )
}

/// The message of an error, as events carry it.
fn reason(e: &QubesError) -> String {
    match e {
        QubesError::Exception { message, .. } => message.clone(),
        QubesError::Silent(m) => m.clone(),
    }
}

/// A qube by name in a snapshot, or the reference's refusal.
fn domain(st: &State, vm: &str) -> Result<Domain, QubesError> {
    st.domain(vm)
        .cloned()
        .ok_or_else(|| QubesError::no_such_vm(vm))
}

/// The `<hostdev>`s of a qube's required devices, or the reference's refusal when one is
/// missing. The host's devices are only read when the qube has required assignments.
fn required_devices(
    st: &State,
    d: &Domain,
    hv: &dyn Hypervisor,
) -> Result<Vec<String>, QubesError> {
    let any_required = crate::devices::CLASSES.iter().any(|cls| {
        crate::devices::assignments(st, d, cls)
            .iter()
            .any(|s| s.mode == crate::devices::protocol::Mode::Required)
    });
    if !any_required {
        return Ok(Vec::new());
    }
    let host = super::devices::host_pci(hv)?;
    crate::devices::required_at_start(st, d, &host, hv.domain_type())
}

/// Starts `vm`, first the qubes its network comes through.
pub fn start(core: &Core, vm: &str) -> Result<(), QubesError> {
    start_chain(core, vm, &mut Vec::new())
}

/// How long a start waits for the lock of a net qube it needs (held by another start or
/// shutdown of that qube): long enough for any start, short enough that a lock cycle (net
/// qubes changed while two starts ran) ends in an error instead of hanging.
const NETVM_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Starts `vm` and the net qubes it needs; `chain` holds the qubes whose start led here (and
/// whose locks are held), so a loop in `qubes.xml` cannot lock a qube twice.
fn start_chain(core: &Core, vm: &str, chain: &mut Vec<String>) -> Result<(), QubesError> {
    let lock = core.qube_lock(vm);
    let _serialised = if chain.is_empty() {
        lock.lock()
    } else {
        lock.try_lock_for(NETVM_LOCK_WAIT).ok_or_else(|| {
            QubesError::qubes(format!("Timed out waiting for another operation on {vm}"))
        })?
    };
    let Some((hv, before)) = core.write("start", |t| begin_start(t, vm))? else {
        return Ok(());
    };
    // A failed start leaves the qube as it was (halted, or unknown while libvirt is away).
    let failed = |e: QubesError| -> QubesError {
        let why = reason(&e);
        let _ = core.write("start", |t| {
            t.fire(vm, "domain-start-failed", &[("reason", &why)]);
            set_power(t, vm, before, None);
            Ok(())
        });
        e
    };
    // From here on a failure — a panic too — puts the qube back as it was.
    let rest = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        spawn(core, vm, hv.as_ref(), chain)
    }));
    match rest {
        Ok(r) => r.map_err(failed),
        Err(_) => {
            tracing::error!("starting {vm} panicked");
            Err(failed(QubesError::qubes(format!(
                "Internal error in qubesd while starting {vm}"
            ))))
        }
    }
}

/// The part of a start after its checks: required devices, the net qubes, the volumes, the
/// hypervisor. An error here is the start's failure (the caller records it).
fn spawn(
    core: &Core,
    vm: &str,
    hv: &dyn Hypervisor,
    chain: &mut Vec<String>,
) -> Result<(), QubesError> {
    let st = core.snapshot();
    let d = domain(&st, vm)?;
    let hostdevs = required_devices(&st, &d, hv)?;
    // The storage's check of the qube's files (the reference's `storage.verify()`, after
    // the `domain-pre-start` handlers, among them the one for required devices).
    core.write("start", |t| {
        t.fire(vm, "domain-verify-files", &[]);
        Ok(())
    })?;
    if let Some(net) = props::vm_ref(&st, &d, "netvm").map(|n| n.name.clone())
        && chain.len() < MAX_NETVM_CHAIN
        && net != vm
        && !chain.contains(&net)
    {
        chain.push(vm.to_string());
        let started = start_chain(core, &net, chain);
        chain.pop();
        started?;
    }
    // The volumes start (snapshots of the template's, say) with no lock held.
    let st = core.snapshot();
    let d = domain(&st, vm)?;
    crate::storage::start_all(&st, &d)?;
    let xml = crate::hypervisor::domain_xml::domain_xml(&st, &d, hv.domain_type(), &hostdevs);
    core.write("start", |t| {
        t.fire(vm, "domain-pre-spawn", &[("start_guid", "True")]);
        Ok(())
    })?;
    if let Err(e) = hv.define(&xml).and_then(|_| hv.start(vm)) {
        crate::storage::stop_all(&st, &d);
        let msg = format!(
            "Start failed: {}, see /var/log/libvirt/libxl/libxl-driver.log for details",
            e.0.replace('%', "")
        );
        return Err(QubesError::qubes(msg));
    }
    let status = hv.status(vm).ok().flatten();
    core.write("start", |t| {
        set_power(t, vm, PowerState::Transient, status.as_ref());
        if let Some(d) = t.st.domain_mut(vm) {
            d.start_time = Some(now_secs());
        }
        // The reference's order: the new domain's ids and start time, the spawn, its
        // QubesDB, then the unpause of a domain started paused.
        for p in ["xid", "stubdom_xid", "start_time"] {
            t.fire(vm, format!("property-reset:{p}"), &[("name", p)]);
        }
        t.fire(vm, "domain-spawn", &[("start_guid", "True")]);
        t.fire(vm, "domain-qdb-create", &[]);
        t.fire(vm, "domain-pre-unpaused", &[]);
        t.fire(vm, "domain-unpaused", &[]);
        set_power(t, vm, PowerState::Running, None);
        t.fire(vm, "domain-start", &[("start_guid", "True")]);
        Ok(())
    })
}

/// The checks before a start and `domain-pre-start`; `None` when the qube already runs,
/// else the hypervisor and the power state to go back to if the start fails. The qube is
/// marked starting, so that others see it is not halted any more.
fn begin_start(t: &mut Txn, vm: &str) -> Result<Option<Started>, QubesError> {
    let d = domain(&t.st, vm)?;
    match d.class {
        Class::AdminVM => {
            return Err(QubesError::new(
                ExcKind::QubesVMNotHaltedError,
                "Cannot start Dom0 fake domain!",
            ));
        }
        Class::RemoteVM => {
            return Err(QubesError::new(
                ExcKind::QubesVMNotHaltedError,
                "Cannot start a RemoteVM.",
            ));
        }
        _ => {}
    }
    // NA (hypervisor unreachable) is tried, and fails with the hypervisor's error.
    if !matches!(d.power, PowerState::Halted | PowerState::NA) {
        return Ok(None);
    }
    if let Some(why) = d.feature("prohibit-start").filter(|v| !v.is_empty()) {
        let msg = format!("Qube start is prohibited. Rationale: {why}");
        t.fire_sticky(vm, "domain-start-failed", &[("reason", &msg)]);
        return Err(QubesError::qubes(msg));
    }
    let hv = t.env.hv()?;
    t.fire(
        vm,
        "domain-pre-start",
        &[("start_guid", "True"), ("mem_required", "None")],
    );
    // The backup restore extension's veto: a qube being restored has no data yet.
    if d.tags.contains("backup-restore-in-progress") {
        let msg = "Restore of this domain in progress, cannot start";
        t.fire_sticky(vm, "domain-start-failed", &[("reason", msg)]);
        return Err(QubesError::new(ExcKind::QubesVMError, msg));
    }
    set_power(t, vm, PowerState::Transient, None);
    Ok(Some((hv, d.power)))
}

/// What a stop leaves to do: the power state, `domain-stopped`, the property resets,
/// `domain-shutdown` (the reference's order), and the removal of a disposable with
/// `auto_cleanup`. The volumes were stopped before (see [`stopped`]).
fn mark_stopped(t: &mut Txn, vm: &str) {
    set_power(t, vm, PowerState::Halted, None);
    t.fire(vm, "domain-stopped", &[]);
    for p in ["xid", "stubdom_xid", "start_time"] {
        t.fire(vm, format!("property-reset:{p}"), &[("name", p)]);
    }
    t.fire(vm, "domain-shutdown", &[]);
    let cleanup =
        t.st.domain(vm)
            .is_some_and(|d| d.class == Class::DispVM && props::vm_flag(&t.st, d, "auto_cleanup"));
    if cleanup && super::qubes::referenced_by(&t.st, vm).is_none() {
        t.fire("", "domain-pre-delete", &[("vm", vm)]);
        if let Some(d) = t.st.domain(vm).cloned()
            && let Err(e) = super::qubes::delete(t, &d)
        {
            tracing::warn!("cannot remove the disposable {vm}: {e}");
        }
    }
}

/// A qube's domain is gone: its volumes are committed or discarded (no lock held), then the
/// stop is recorded. The caller holds the qube's lock.
fn stopped(core: &Core, vm: &str) -> Result<(), QubesError> {
    let st = core.snapshot();
    if let Some(d) = st.domain(vm) {
        crate::storage::stop_all(&st, d);
    }
    core.write("stop", |t| {
        mark_stopped(t, vm);
        Ok(())
    })
}

/// What `admin.vm.Shutdown` ends with.
pub enum ShutdownOutcome {
    /// The qube is halted, or halting and nobody waits.
    Done,
    /// The caller waits `timeout` seconds for `domain-shutdown`.
    Wait(u64),
}

/// Shuts a qube down (`force`: even while others use its network; `wait`: until it halted).
pub fn shutdown(
    core: &Core,
    vm: &str,
    force: bool,
    wait: bool,
) -> Result<ShutdownOutcome, QubesError> {
    let lock = core.qube_lock(vm);
    let _serialised = lock.lock();
    let (hv, paused) = core.write("shutdown", |t| begin_shutdown(t, vm, force))?;
    let result = if paused {
        hv.destroy(vm)
    } else {
        hv.shutdown(vm)
    };
    if let Err(e) = result {
        let msg = e.0.replace('%', "");
        core.write("shutdown", |t| {
            t.fire(vm, "domain-shutdown-failed", &[("reason", &msg)]);
            Ok(())
        })?;
        return Err(QubesError::qubes(msg));
    }
    let status = hv.status(vm).ok().flatten();
    if status.is_none_or(|s| s.state == PowerState::Halted) {
        stopped(core, vm)?;
        return Ok(ShutdownOutcome::Done);
    }
    core.write("shutdown", |t| {
        set_power(t, vm, PowerState::Halting, None);
        Ok(())
    })?;
    if !wait {
        return Ok(ShutdownOutcome::Done);
    }
    let st = core.snapshot();
    let timeout = st
        .domain(vm)
        .and_then(|d| props::vm_get(&st, d, "shutdown_timeout"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Ok(ShutdownOutcome::Wait(timeout))
}

/// The checks of a shutdown and `domain-pre-shutdown`; returns the hypervisor and whether the
/// qube is paused (then it is destroyed: a paused qube cannot shut down).
fn begin_shutdown(
    t: &mut Txn,
    vm: &str,
    force: bool,
) -> Result<(Arc<dyn Hypervisor>, bool), QubesError> {
    let d = domain(&t.st, vm)?;
    if matches!(d.class, Class::AdminVM | Class::RemoteVM) {
        return Err(QubesError::silent("shutdown of dom0 or a RemoteVM"));
    }
    if d.power == PowerState::Halted {
        return Err(QubesError::new(
            ExcKind::QubesVMNotStartedError,
            format!("Domain is powered off: {}", py_repr(vm)),
        ));
    }
    t.fire(
        vm,
        "domain-pre-shutdown",
        &[("force", crate::pycompat::bool_word(force))],
    );
    // A refusal after `domain-pre-shutdown` is told with `domain-shutdown-failed`, as the
    // reference does for every failure of the shutdown it began.
    let refused = |t: &mut Txn, e: QubesError| {
        t.fire_sticky(vm, "domain-shutdown-failed", &[("reason", &reason(&e))]);
        e
    };
    if d.power == PowerState::Paused && !force {
        return Err(refused(t, not_running(vm)));
    }
    if props::vm_flag(&t.st, &d, "provides_network") && !force {
        let connected: Vec<String> =
            t.st.domains_sorted()
                .filter(|o| {
                    // Only qubes that have a netvm at all (dom0 has none, whatever the
                    // global default).
                    o.is_active()
                        && props::vm_prop(o.class, "netvm").is_some()
                        && props::vm_get(&t.st, o, "netvm").as_deref() == Some(vm)
                })
                .map(|o| o.name.clone())
                .collect();
        if !connected.is_empty() {
            let e = QubesError::new(
                ExcKind::QubesVMInUseError,
                format!(
                    "There are other VMs connected to this VM: {}",
                    connected.join(", ")
                ),
            );
            return Err(refused(t, e));
        }
    }
    Ok((t.env.hv()?, d.power == PowerState::Paused))
}

/// Records that a shutdown waited for in vain (`domain-shutdown-failed`).
pub fn shutdown_timed_out(core: &Core, vm: &str) -> QubesError {
    let msg = format!("Domain shutdown timed out: {}", py_repr(vm));
    let _ = core.write("shutdown", |t| {
        t.fire(vm, "domain-shutdown-failed", &[("reason", &msg)]);
        Ok(())
    });
    QubesError::new(ExcKind::QubesVMShutdownTimeoutError, msg)
}

/// Stops a qube at once.
pub fn kill(core: &Core, vm: &str) -> Result<(), QubesError> {
    let lock = core.qube_lock(vm);
    let _serialised = lock.lock();
    let hv = core.write("kill", |t| {
        let d = domain(&t.st, vm)?;
        match d.class {
            Class::AdminVM => {
                return Err(QubesError::new(
                    ExcKind::QubesVMError,
                    "Cannot kill Dom0 fake domain!",
                ));
            }
            Class::RemoteVM => {
                return Err(QubesError::new(
                    ExcKind::QubesVMError,
                    "Cannot kill a RemoteVM.",
                ));
            }
            _ => {}
        }
        if d.power == PowerState::Halted {
            return Err(QubesError::new(
                ExcKind::QubesVMNotStartedError,
                format!("Domain is powered off: {}", py_repr(vm)),
            ));
        }
        t.env.hv()
    })?;
    hv.destroy(vm).map_err(|e| QubesError::qubes(e.0))?;
    stopped(core, vm)
}

/// Pauses a running qube (`admin.vm.Pause`; `admin.vm.Suspend` falls back to it).
pub fn pause(core: &Core, vm: &str, suspend: bool) -> Result<(), QubesError> {
    let lock = core.qube_lock(vm);
    let _serialised = lock.lock();
    let hv = core.write("pause", |t| {
        let d = domain(&t.st, vm)?;
        if suspend {
            if d.class == Class::AdminVM {
                return Err(QubesError::new(
                    ExcKind::QubesVMError,
                    "Cannot suspend Dom0 fake domain!",
                ));
            }
            if d.class == Class::RemoteVM {
                return Err(QubesError::new(
                    ExcKind::QubesVMError,
                    "Cannot suspend a RemoteVM.",
                ));
            }
            if !matches!(d.power, PowerState::Running | PowerState::Paused) {
                return Err(not_running(vm));
            }
            // No S3 through this backend: the reference falls back to pausing.
            if d.power == PowerState::Paused {
                return Ok(None);
            }
        } else {
            if matches!(d.class, Class::AdminVM | Class::RemoteVM) {
                return Err(QubesError::silent("pause of dom0 or a RemoteVM"));
            }
            if d.power != PowerState::Running {
                return Err(not_running(vm));
            }
        }
        t.fire(vm, "domain-pre-paused", &[]);
        t.env.hv().map(Some)
    })?;
    let Some(hv) = hv else {
        return Ok(());
    };
    hv.suspend(vm).map_err(|e| QubesError::qubes(e.0))?;
    core.write("pause", |t| {
        set_power(t, vm, PowerState::Paused, None);
        t.fire(vm, "domain-paused", &[]);
        Ok(())
    })
}

/// Unpauses a paused or suspended qube; `resume` adds `domain-resumed` for a suspended one.
pub fn unpause(core: &Core, vm: &str, resume: bool) -> Result<(), QubesError> {
    let lock = core.qube_lock(vm);
    let _serialised = lock.lock();
    let (hv, was_suspended) = core.write("unpause", |t| {
        let d = domain(&t.st, vm)?;
        if !resume && matches!(d.class, Class::AdminVM | Class::RemoteVM) {
            return Err(QubesError::silent("unpause of dom0 or a RemoteVM"));
        }
        if !matches!(d.power, PowerState::Paused | PowerState::Suspended) {
            return Err(QubesError::new(
                ExcKind::QubesVMNotPausedError,
                format!("Domain is not paused: {}", py_repr(vm)),
            ));
        }
        t.fire(vm, "domain-pre-unpaused", &[]);
        Ok((t.env.hv()?, d.power == PowerState::Suspended))
    })?;
    hv.resume(vm).map_err(|e| QubesError::qubes(e.0))?;
    core.write("unpause", |t| {
        set_power(t, vm, PowerState::Running, None);
        t.fire(vm, "domain-unpaused", &[]);
        if resume && was_suspended {
            t.fire(vm, "domain-resumed", &[]);
        }
        Ok(())
    })
}

/// Sets power states from what the hypervisor reports (at start-up and after a reconnect).
pub fn reconcile(core: &Core) {
    let Some(hv) = core.env().hv.clone() else {
        return;
    };
    let list = hv.list();
    let result = core.write("reconcile", |t| {
        let names: Vec<String> =
            t.st.domains
                .values()
                .filter(|d| d.class.is_local_qube())
                .map(|d| d.name.clone())
                .collect();
        let list: HashMap<String, DomainStatus> = match &list {
            Ok(l) => l.iter().cloned().collect(),
            Err(e) => {
                tracing::warn!("cannot read domain states: {e}");
                for n in names {
                    set_power(t, &n, PowerState::NA, None);
                }
                return Ok(());
            }
        };
        for name in names {
            if let Some(d) = t.st.domain_mut(&name) {
                match list.get(&name) {
                    Some(s) if s.state != PowerState::Halted => {
                        d.power = s.state;
                        d.xid = s.id;
                    }
                    _ => {
                        d.power = PowerState::Halted;
                        d.xid = -1;
                    }
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!("reading domain states: {e}");
    }
}

/// Applies a lifecycle change the hypervisor reported. Changes qubesd made itself were
/// already applied by the call that made them (which held the qube's lock, as this does), so
/// only differences act.
pub fn on_hypervisor_event(core: &Core, ev: &LifecycleEvent) {
    match crate::ops::event_pump::subject(ev) {
        Some(vm) => {
            let lock = core.qube_lock(vm);
            let _serialised = lock.lock();
            on_hypervisor_event_locked(core, ev);
        }
        None => on_hypervisor_event_locked(core, ev),
    }
}

/// [`on_hypervisor_event`] with the lock of the event's qube already held by the caller
/// (see [`crate::ops::event_pump`]).
pub fn on_hypervisor_event_locked(core: &Core, ev: &LifecycleEvent) {
    let result = match ev {
        LifecycleEvent::Started(vm)
        | LifecycleEvent::Suspended(vm)
        | LifecycleEvent::PmSuspended(vm)
        | LifecycleEvent::Resumed(vm)
        | LifecycleEvent::Stopped(vm) => on_qube_event(core, ev, vm),
        LifecycleEvent::ConnectionLost => core.write("hypervisor event", |t| {
            let names: Vec<String> =
                t.st.domains
                    .values()
                    .filter(|d| d.class.is_local_qube())
                    .map(|d| d.name.clone())
                    .collect();
            for n in names {
                set_power(t, &n, PowerState::NA, None);
            }
            Ok(())
        }),
        LifecycleEvent::Reconnected => {
            reconcile(core);
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::warn!("applying {ev:?}: {e}");
    }
}

/// One qube's lifecycle change, under its lock.
fn on_qube_event(core: &Core, ev: &LifecycleEvent, vm: &str) -> Result<(), QubesError> {
    // Events arrive late: one from a start or stop we already saw end must not change a
    // settled qube. What the domain does now decides.
    let status_now = || {
        core.env()
            .hv
            .as_ref()
            .and_then(|h| h.status(vm).ok().flatten())
    };
    match ev {
        LifecycleEvent::Started(_) => {
            let status = status_now();
            core.write("hypervisor event", |t| {
                if t.st
                    .domain(vm)
                    .is_some_and(|d| d.class.is_local_qube() && d.power == PowerState::Halted)
                    && status.as_ref().is_some_and(|s| domain_active(s.state))
                {
                    set_power(t, vm, PowerState::Running, status.as_ref());
                    t.fire(vm, "domain-start", &[("start_guid", "False")]);
                }
                Ok(())
            })
        }
        LifecycleEvent::Suspended(_) => {
            let paused_now = status_now().is_some_and(|s| s.state == PowerState::Paused);
            core.write("hypervisor event", |t| {
                if paused_now
                    && t.st
                        .domain(vm)
                        .is_some_and(|d| d.power == PowerState::Running)
                {
                    set_power(t, vm, PowerState::Paused, None);
                    t.fire(vm, "domain-paused", &[]);
                }
                Ok(())
            })
        }
        LifecycleEvent::PmSuspended(_) => core.write("hypervisor event", |t| {
            if t.st.domain(vm).is_some_and(|d| d.is_active()) {
                set_power(t, vm, PowerState::Suspended, None);
            }
            Ok(())
        }),
        LifecycleEvent::Resumed(_) => {
            let running_now = status_now().is_some_and(|s| s.state == PowerState::Running);
            core.write("hypervisor event", |t| {
                if running_now
                    && t.st.domain(vm).is_some_and(|d| {
                        matches!(d.power, PowerState::Paused | PowerState::Suspended)
                    })
                {
                    set_power(t, vm, PowerState::Running, None);
                    t.fire(vm, "domain-unpaused", &[]);
                }
                Ok(())
            })
        }
        LifecycleEvent::Stopped(_) => {
            let runs_now = status_now().is_some_and(|s| domain_active(s.state));
            let halts = core
                .snapshot()
                .domain(vm)
                .is_some_and(|d| d.class.is_local_qube() && d.power != PowerState::Halted);
            if !runs_now && halts {
                stopped(core, vm)
            } else {
                Ok(())
            }
        }
        LifecycleEvent::ConnectionLost | LifecycleEvent::Reconnected => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_lifecycle_events_do_not_change_a_settled_qube() {
        let e = crate::Embedded::demo().expect("demo core");
        let core = &e.shared.core;
        let power = |vm: &str| core.snapshot().domain(vm).unwrap().power;
        // personal is halted and its domain shut off: a late "started" is ignored.
        assert_eq!(power("personal"), PowerState::Halted);
        on_hypervisor_event(core, &LifecycleEvent::Started("personal".into()));
        assert_eq!(power("personal"), PowerState::Halted);
        // work runs: a late "stopped" (of an earlier run) does not stop it.
        assert_eq!(power("work"), PowerState::Running);
        on_hypervisor_event(core, &LifecycleEvent::Stopped("work".into()));
        assert_eq!(power("work"), PowerState::Running);
        // A late "suspended" (of a pause since undone) does not pause it either...
        on_hypervisor_event(core, &LifecycleEvent::Suspended("work".into()));
        assert_eq!(power("work"), PowerState::Running);
        // ...and a late "resumed" does not unpause a qube paused since.
        pause(core, "work", false).unwrap();
        on_hypervisor_event(core, &LifecycleEvent::Resumed("work".into()));
        assert_eq!(power("work"), PowerState::Paused);
    }
}
