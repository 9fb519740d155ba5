//! Making qubes run: Start, Shutdown, Kill, Pause, Unpause, Suspend, Resume, CurrentState,
//! Console (admin-api.md §2.2), the reaction to hypervisor events, start-up reconciliation,
//! and the `vm-stats` sampler (§4.5).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qubes_api::exc::py_repr;
use qubes_api::{Event, ExcKind, QubesError};

use crate::core::{Core, Ctx, Reply};
use crate::hypervisor::{DomainStatus, Hypervisor, LifecycleEvent};
use crate::model::{Class, Domain, PowerState};
use crate::props;

fn hv(c: &Ctx) -> Result<Arc<dyn Hypervisor>, QubesError> {
    c.hv.clone()
        .ok_or_else(|| QubesError::qubes("qubesd has no connection to the hypervisor"))
}

fn not_running(vm: &str) -> QubesError {
    QubesError::new(
        ExcKind::QubesVMNotRunningError,
        format!(
            "Domain not running (either powered off or paused): {}",
            py_repr(vm)
        ),
    )
}

fn now_secs() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:.6}", t.as_secs_f64())
}

fn set_power(c: &mut Ctx, vm: &str, power: PowerState, status: Option<&DomainStatus>) {
    if let Some(d) = c.st.domain_mut(vm) {
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

/// The `<hostdev>`s of a qube's required devices, or the reference's refusal when one is
/// missing. The host's devices are only read when the qube has required assignments.
fn required_devices(c: &Ctx, d: &Domain, kind: &str) -> Result<Vec<String>, QubesError> {
    let any_required = crate::devices::CLASSES.iter().any(|cls| {
        crate::devices::assignments(c.st, d, cls)
            .iter()
            .any(|s| s.mode == crate::devices::protocol::Mode::Required)
    });
    if !any_required {
        return Ok(Vec::new());
    }
    let host = crate::devices::host_pci(c)?;
    crate::devices::required_at_start(c.st, d, &host, kind)
}

/// Starts `vm` (and first the qubes its network comes through).
pub fn start_vm(c: &mut Ctx, vm: &str, depth: usize) -> Result<(), QubesError> {
    let d =
        c.st.domain(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?
            .clone();
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
        return Ok(());
    }
    if let Some(why) = d.feature("prohibit-start").filter(|v| !v.is_empty()) {
        let msg = format!("Qube start is prohibited. Rationale: {why}");
        c.fire_sticky(vm, "domain-start-failed", &[("reason", &msg)]);
        return Err(QubesError::qubes(msg));
    }
    let hv = hv(c)?;
    c.fire(
        vm,
        "domain-pre-start",
        &[("start_guid", "True"), ("mem_required", "None")],
    );
    let hostdevs = match required_devices(c, &d, hv.domain_type()) {
        Ok(h) => h,
        Err(e) => {
            let reason = match &e {
                QubesError::Exception { message, .. } => message.clone(),
                QubesError::Silent(m) => m.clone(),
            };
            c.fire_sticky(vm, "domain-start-failed", &[("reason", &reason)]);
            return Err(e);
        }
    };
    if let Some(net) = props::vm_ref(c.st, &d, "netvm").map(|n| n.name.clone())
        && depth < 16
        && let Err(e) = start_vm(c, &net, depth + 1)
    {
        let reason = match &e {
            QubesError::Exception { message, .. } => message.clone(),
            QubesError::Silent(m) => m.clone(),
        };
        c.fire_sticky(vm, "domain-start-failed", &[("reason", &reason)]);
        return Err(e);
    }
    if let Err(e) = crate::storage::start_all(c.st, &d) {
        let reason = match &e {
            QubesError::Exception { message, .. } => message.clone(),
            QubesError::Silent(m) => m.clone(),
        };
        c.fire_sticky(vm, "domain-start-failed", &[("reason", &reason)]);
        return Err(e);
    }
    let xml = crate::hypervisor::domain_xml::domain_xml(c.st, &d, hv.domain_type(), &hostdevs);
    c.fire(vm, "domain-pre-spawn", &[("start_guid", "True")]);
    if let Err(e) = hv.define(&xml).and_then(|_| hv.start(vm)) {
        crate::storage::stop_all(c.st, &d);
        let msg = format!(
            "Start failed: {}, see /var/log/libvirt/libxl/libxl-driver.log for details",
            e.0.replace('%', "")
        );
        c.fire_sticky(vm, "domain-start-failed", &[("reason", &msg)]);
        return Err(QubesError::qubes(msg));
    }
    let status = hv.status(vm).ok().flatten();
    set_power(c, vm, PowerState::Transient, status.as_ref());
    if let Some(d) = c.st.domain_mut(vm) {
        d.start_time = Some(now_secs());
    }
    c.fire(vm, "domain-spawn", &[("start_guid", "True")]);
    c.fire(vm, "domain-pre-unpaused", &[]);
    c.fire(vm, "domain-unpaused", &[]);
    set_power(c, vm, PowerState::Running, None);
    for p in ["xid", "start_time"] {
        c.fire(vm, format!("property-reset:{p}"), &[("name", p)]);
    }
    c.fire(vm, "domain-start", &[("start_guid", "True")]);
    Ok(())
}

/// What follows a qube's stop: property resets, `domain-stopped`, `domain-shutdown`, and the
/// removal of a disposable with `auto_cleanup`.
pub fn mark_stopped(c: &mut Ctx, vm: &str) {
    set_power(c, vm, PowerState::Halted, None);
    if let Some(d) = c.st.domain(vm) {
        crate::storage::stop_all(c.st, d);
    }
    for p in ["xid", "stubdom_xid", "start_time"] {
        c.fire(vm, format!("property-reset:{p}"), &[("name", p)]);
    }
    c.fire(vm, "domain-stopped", &[]);
    c.fire(vm, "domain-shutdown", &[]);
    let cleanup =
        c.st.domain(vm)
            .is_some_and(|d| d.class == Class::DispVM && props::vm_flag(c.st, d, "auto_cleanup"));
    if cleanup && crate::setters::referenced_by(c.st, vm).is_none() {
        c.fire("", "domain-pre-delete", &[("vm", vm)]);
        let vols =
            c.st.domain(vm)
                .map(|d| crate::storage::volumes(c.st, d))
                .unwrap_or_default();
        let qube_dir = c.state_dir.join(Class::DispVM.dir_prefix()).join(vm);
        c.on_commit
            .push(crate::storage::remove_from_disk(vols, qube_dir));
        c.st.domains.remove(vm);
        c.fire("", "domain-delete", &[("vm", vm)]);
        if let Some(h) = &c.hv {
            let _ = h.undefine(vm);
        }
        c.save = true;
    }
}

pub(crate) fn vm_start(c: &mut Ctx) -> Result<Reply, QubesError> {
    let vm = c.dest.clone();
    start_vm(c, &vm, 0)?;
    Ok(Reply::Ok(Vec::new()))
}

pub(crate) fn vm_shutdown(c: &mut Ctx) -> Result<Reply, QubesError> {
    let args: Vec<&str> = if c.arg.is_empty() {
        Vec::new()
    } else {
        c.arg.split('+').collect()
    };
    if !args.iter().all(|a| matches!(*a, "force" | "wait")) {
        return Err(QubesError::protocol("Argument must match: force, wait"));
    }
    let (force, wait) = (args.contains(&"force"), args.contains(&"wait"));
    let vm = c.dest.clone();
    let d = c.dest_domain().clone();
    if matches!(d.class, Class::AdminVM | Class::RemoteVM) {
        return Err(QubesError::silent("shutdown of dom0 or a RemoteVM"));
    }
    if d.power == PowerState::Halted {
        return Err(QubesError::new(
            ExcKind::QubesVMNotStartedError,
            format!("Domain is powered off: {}", py_repr(&vm)),
        ));
    }
    c.fire(
        &vm,
        "domain-pre-shutdown",
        &[("force", crate::setters::bool_word(force))],
    );
    if d.power == PowerState::Paused && !force {
        return Err(not_running(&vm));
    }
    if props::vm_flag(c.st, &d, "provides_network") && !force {
        let connected: Vec<String> =
            c.st.domains_sorted()
                .filter(|o| {
                    // Only qubes that have a netvm at all (dom0 has none, whatever the
                    // global default).
                    o.is_active()
                        && props::vm_prop(o.class, "netvm").is_some()
                        && props::vm_get(c.st, o, "netvm").as_deref() == Some(vm.as_str())
                })
                .map(|o| o.name.clone())
                .collect();
        if !connected.is_empty() {
            return Err(QubesError::new(
                ExcKind::QubesVMInUseError,
                format!(
                    "There are other VMs connected to this VM: {}",
                    connected.join(", ")
                ),
            ));
        }
    }
    let hv = hv(c)?;
    let result = if d.power == PowerState::Paused {
        hv.destroy(&vm)
    } else {
        hv.shutdown(&vm)
    };
    if let Err(e) = result {
        let msg = e.0.replace('%', "");
        c.fire_sticky(&vm, "domain-shutdown-failed", &[("reason", &msg)]);
        return Err(QubesError::qubes(msg));
    }
    let status = hv.status(&vm).ok().flatten();
    if status.is_none_or(|s| s.state == PowerState::Halted) {
        mark_stopped(c, &vm);
        return Ok(Reply::Ok(Vec::new()));
    }
    set_power(c, &vm, PowerState::Halting, None);
    if wait {
        let timeout = props::vm_get(c.st, &d, "shutdown_timeout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        return Ok(Reply::WaitHalted { vm, timeout });
    }
    Ok(Reply::Ok(Vec::new()))
}

pub(crate) fn vm_kill(c: &mut Ctx) -> Result<Reply, QubesError> {
    let vm = c.dest.clone();
    let d = c.dest_domain().clone();
    match d.class {
        Class::AdminVM => {
            return Err(QubesError::new(
                ExcKind::QubesVMError,
                "Cannot kill Dom0 fake domain!",
            ));
        }
        Class::RemoteVM => return Err(QubesError::silent("kill of a RemoteVM")),
        _ => {}
    }
    if d.power == PowerState::Halted {
        return Err(QubesError::new(
            ExcKind::QubesVMNotStartedError,
            format!("Domain is powered off: {}", py_repr(&vm)),
        ));
    }
    hv(c)?.destroy(&vm).map_err(|e| QubesError::qubes(e.0))?;
    mark_stopped(c, &vm);
    Ok(Reply::Ok(Vec::new()))
}

fn pause(c: &mut Ctx, vm: &str) -> Result<(), QubesError> {
    c.fire(vm, "domain-pre-paused", &[]);
    hv(c)?.suspend(vm).map_err(|e| QubesError::qubes(e.0))?;
    set_power(c, vm, PowerState::Paused, None);
    c.fire(vm, "domain-paused", &[]);
    Ok(())
}

pub(crate) fn vm_pause(c: &mut Ctx) -> Result<Reply, QubesError> {
    let vm = c.dest.clone();
    let d = c.dest_domain().clone();
    if matches!(d.class, Class::AdminVM | Class::RemoteVM) {
        return Err(QubesError::silent("pause of dom0 or a RemoteVM"));
    }
    if d.power != PowerState::Running {
        return Err(not_running(&vm));
    }
    pause(c, &vm)?;
    Ok(Reply::Ok(Vec::new()))
}

fn unpause(c: &mut Ctx, vm: &str) -> Result<(), QubesError> {
    let d = c.st.domain(vm).ok_or_else(|| QubesError::no_such_vm(vm))?;
    if !matches!(d.power, PowerState::Paused | PowerState::Suspended) {
        return Err(QubesError::new(
            ExcKind::QubesVMNotPausedError,
            format!("Domain is not paused: {}", py_repr(vm)),
        ));
    }
    c.fire(vm, "domain-pre-unpaused", &[]);
    hv(c)?.resume(vm).map_err(|e| QubesError::qubes(e.0))?;
    set_power(c, vm, PowerState::Running, None);
    c.fire(vm, "domain-unpaused", &[]);
    Ok(())
}

pub(crate) fn vm_unpause(c: &mut Ctx) -> Result<Reply, QubesError> {
    let vm = c.dest.clone();
    if matches!(c.dest_domain().class, Class::AdminVM | Class::RemoteVM) {
        return Err(QubesError::silent("unpause of dom0 or a RemoteVM"));
    }
    unpause(c, &vm)?;
    Ok(Reply::Ok(Vec::new()))
}

pub(crate) fn vm_suspend(c: &mut Ctx) -> Result<Reply, QubesError> {
    let vm = c.dest.clone();
    let d = c.dest_domain().clone();
    if d.class == Class::AdminVM {
        return Err(QubesError::new(
            ExcKind::QubesVMError,
            "Cannot suspend Dom0 fake domain!",
        ));
    }
    if !matches!(d.power, PowerState::Running | PowerState::Paused) {
        return Err(not_running(&vm));
    }
    // No S3 through this backend: the reference falls back to pausing.
    if d.power == PowerState::Running {
        pause(c, &vm)?;
    }
    Ok(Reply::Ok(Vec::new()))
}

pub(crate) fn vm_resume(c: &mut Ctx) -> Result<Reply, QubesError> {
    let vm = c.dest.clone();
    let was_suspended = c.dest_domain().power == PowerState::Suspended;
    unpause(c, &vm)?;
    if was_suspended {
        c.fire(&vm, "domain-resumed", &[]);
    }
    Ok(Reply::Ok(Vec::new()))
}

pub(crate) fn current_state(c: &mut Ctx) -> Result<Reply, QubesError> {
    let d = c.dest_domain();
    let (mut mem, mut max, mut cpu) = (0, 0, 0);
    if d.class == Class::AdminVM {
        let (total, avail) = host_memory_kib();
        (mem, max) = (total.saturating_sub(avail), total);
    } else if d.is_active()
        && let Some(h) = &c.hv
        && let Ok(Some(s)) = h.status(&d.name)
    {
        (mem, max, cpu) = (s.mem_kib, s.maxmem_kib, s.cputime_ns);
    }
    Ok(Reply::Ok(
        format!(
            "mem={mem} mem_static_max={max} cputime={cpu} power_state={}",
            d.power.name()
        )
        .into_bytes(),
    ))
}

pub(crate) fn vm_console(c: &mut Ctx) -> Result<Reply, QubesError> {
    let vm = c.dest.clone();
    if !c.dest_domain().is_active() {
        return Err(not_running(&vm));
    }
    match hv(c)?.console(&vm).map_err(|e| QubesError::qubes(e.0))? {
        Some(tty) => Ok(Reply::Ok(tty.into_bytes())),
        None => Err(QubesError::qubes(format!("No console available for {vm}"))),
    }
}

pub(crate) fn vm_stats(c: &mut Ctx) -> Result<Reply, QubesError> {
    Ok(Reply::Stats {
        dest: c.dest.clone(),
    })
}

/// Host memory total and available, in KiB (dom0's figures).
fn host_memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get("MemTotal:"), get("MemAvailable:"))
}

/// Total CPU time the host spent, in milliseconds (dom0's `cpu_time`).
fn host_cpu_ms() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(3)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks * 10
}

impl Core {
    /// Sets power states from what the hypervisor reports (at start-up and after a reconnect).
    pub fn reconcile(&mut self) {
        let Some(hv) = self.hv.clone() else {
            return;
        };
        let list: HashMap<String, DomainStatus> = match hv.list() {
            Ok(l) => l.into_iter().collect(),
            Err(e) => {
                tracing::warn!("cannot read domain states: {e}");
                for d in self.state.domains.values_mut() {
                    if d.class.is_local_qube() {
                        std::sync::Arc::make_mut(d).power = PowerState::NA;
                    }
                }
                return;
            }
        };
        let names: Vec<String> = self
            .state
            .domains
            .values()
            .filter(|d| d.class.is_local_qube())
            .map(|d| d.name.clone())
            .collect();
        for name in names {
            if let Some(d) = self.state.domain_mut(&name) {
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
    }

    /// Applies a lifecycle change the hypervisor reported. Changes qubesd made itself were
    /// already applied by the call that made them, so only differences act.
    pub fn on_hypervisor_event(&mut self, ev: LifecycleEvent) {
        let result = self.run_internal(|c| {
            match &ev {
                LifecycleEvent::Started(vm) => {
                    if c.st
                        .domain(vm)
                        .is_some_and(|d| d.class.is_local_qube() && d.power == PowerState::Halted)
                    {
                        // Events arrive late: one from a start we already saw end must not
                        // bring the qube back. Only a domain that runs now counts.
                        let status = c.hv.as_ref().and_then(|h| h.status(vm).ok().flatten());
                        if status.as_ref().is_some_and(|s| domain_active(s.state)) {
                            set_power(c, vm, PowerState::Running, status.as_ref());
                            c.fire(vm, "domain-start", &[("start_guid", "False")]);
                        }
                    }
                }
                LifecycleEvent::Suspended(vm) => {
                    if c.st
                        .domain(vm)
                        .is_some_and(|d| d.power == PowerState::Running)
                    {
                        set_power(c, vm, PowerState::Paused, None);
                        c.fire(vm, "domain-paused", &[]);
                    }
                }
                LifecycleEvent::PmSuspended(vm) => {
                    if c.st.domain(vm).is_some_and(|d| d.is_active()) {
                        set_power(c, vm, PowerState::Suspended, None);
                    }
                }
                LifecycleEvent::Resumed(vm) => {
                    if c.st.domain(vm).is_some_and(|d| {
                        matches!(d.power, PowerState::Paused | PowerState::Suspended)
                    }) {
                        set_power(c, vm, PowerState::Running, None);
                        c.fire(vm, "domain-unpaused", &[]);
                    }
                }
                LifecycleEvent::Stopped(vm) => {
                    // Likewise a late "stopped" of a qube that was started again since.
                    let runs_now =
                        c.hv.as_ref()
                            .and_then(|h| h.status(vm).ok().flatten())
                            .is_some_and(|s| domain_active(s.state));
                    if !runs_now
                        && c.st.domain(vm).is_some_and(|d| {
                            d.class.is_local_qube() && d.power != PowerState::Halted
                        })
                    {
                        mark_stopped(c, vm);
                    }
                }
                LifecycleEvent::ConnectionLost => {
                    let names: Vec<String> =
                        c.st.domains
                            .values()
                            .filter(|d| d.class.is_local_qube())
                            .map(|d| d.name.clone())
                            .collect();
                    for n in names {
                        set_power(c, &n, PowerState::NA, None);
                    }
                }
                LifecycleEvent::Reconnected => {}
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!("applying {ev:?}: {e}");
        }
        if ev == LifecycleEvent::Reconnected {
            self.reconcile();
        }
    }

    /// One round of `vm-stats` events for running qubes, dom0 first, then by hypervisor id.
    /// `prev` keeps each qube's CPU time of the previous round for `cpu_usage`.
    pub fn stats_round(
        &self,
        list: &[(String, DomainStatus)],
        prev: &mut HashMap<String, (u64, Instant)>,
    ) -> Vec<Event> {
        let now = Instant::now();
        let mut rows: Vec<(i64, String, u64, u64, u32)> = Vec::new();
        let (total, avail) = host_memory_kib();
        rows.push((
            0,
            "dom0".into(),
            total.saturating_sub(avail),
            host_cpu_ms() * 1_000_000,
            self.state.host.cpus as u32,
        ));
        for (name, s) in list {
            let Some(d) = self.state.domain(name) else {
                continue;
            };
            if !d.class.is_local_qube()
                || !matches!(
                    s.state,
                    PowerState::Running | PowerState::Paused | PowerState::Transient
                )
            {
                continue;
            }
            rows.push((
                s.id.max(1),
                name.clone(),
                s.mem_kib,
                s.cputime_ns,
                s.vcpus.max(1),
            ));
        }
        rows.sort_by_key(|r| r.0);
        let mut out = Vec::with_capacity(rows.len());
        let mut seen = HashMap::new();
        for (_, name, mem, cpu_ns, vcpus) in rows {
            let cpu_ms = cpu_ns / 1_000_000;
            let usage = match prev.get(&name) {
                Some((last_ms, at)) if cpu_ms >= *last_ms => {
                    let wall_ms = now.duration_since(*at).as_millis().max(1) as u64;
                    ((cpu_ms - last_ms) * 100 / wall_ms / u64::from(vcpus)).min(100)
                }
                _ => 0,
            };
            seen.insert(name.clone(), (cpu_ms, now));
            let mem = mem.to_string();
            out.push(
                Event::new(name, "vm-stats")
                    .kw("memory_kb", &mem)
                    .kw("memory_assigned_total", &mem)
                    .kw("memory_assigned_usable", &mem)
                    .kw("memory_with_swap_used", &mem)
                    .kw("cpu_time", cpu_ms.to_string())
                    .kw("cpu_usage", usage.to_string())
                    .kw("online_vcpus", vcpus.to_string()),
            );
        }
        *prev = seen;
        out
    }
}

/// Runs the sampler: every `stats_interval` seconds, while anybody listens, one round of
/// `vm-stats` for all running qubes. One sampler serves every subscriber.
pub fn run_stats_sampler(shared: Arc<crate::server::Shared>) {
    let spawned = std::thread::Builder::new()
        .name("qubesd-stats".into())
        .spawn(move || {
            let mut prev = HashMap::new();
            loop {
                let interval = props::global_get(&shared.lock().state, "stats_interval")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(3)
                    .clamp(1, 3600);
                std::thread::sleep(Duration::from_secs(interval));
                let (hv, listening) = {
                    let core = shared.lock();
                    (core.hv.clone(), core.stats.subscribers() > 0)
                };
                if !listening {
                    prev.clear();
                    continue;
                }
                let list = match hv.as_ref().map(|h| h.list()) {
                    Some(Ok(l)) => l,
                    _ => Vec::new(),
                };
                let core = shared.lock();
                let events = core.stats_round(&list, &mut prev);
                core.stats.publish(events);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("stats thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use crate::hypervisor::LifecycleEvent;
    use crate::model::PowerState;

    #[test]
    fn late_lifecycle_events_do_not_change_a_settled_qube() {
        let e = crate::Embedded::demo().expect("demo core");
        let mut core = e.shared.lock();
        let power = |core: &crate::core::Core, vm: &str| core.state.domain(vm).unwrap().power;
        // personal is halted and its domain shut off: a late "started" is ignored.
        assert_eq!(power(&core, "personal"), PowerState::Halted);
        core.on_hypervisor_event(LifecycleEvent::Started("personal".into()));
        assert_eq!(power(&core, "personal"), PowerState::Halted);
        // work runs: a late "stopped" (of an earlier run) does not stop it.
        assert_eq!(power(&core, "work"), PowerState::Running);
        core.on_hypervisor_event(LifecycleEvent::Stopped("work".into()));
        assert_eq!(power(&core, "work"), PowerState::Running);
    }
}
