//! Making qubes run: `admin.vm.Start`, `Shutdown`, `Kill`, `Pause`, `Unpause`, `Suspend`,
//! `Resume`, `CurrentState`, `Console`, `Stats` (admin-api.md §2.2, §4.5).

use qubes_api::{ExcKind, QubesError};

use super::Want::{Any, No};
use super::{ANY, Method, Req, View, blocking, read, read_blocking};
use crate::core::Core;
use crate::model::Class;
use crate::ops::lifecycle::{self as op, ShutdownOutcome};
use crate::ops::not_running;
use crate::reply::{Reply, empty, ok};

/// The family's methods.
pub static METHODS: &[Method] = &[
    read_blocking("admin.vm.CurrentState", No, No, ANY, current_state),
    blocking("admin.vm.Start", No, No, ANY, vm_start),
    blocking("admin.vm.Shutdown", Any, No, ANY, vm_shutdown),
    blocking("admin.vm.Kill", No, No, ANY, vm_kill),
    blocking("admin.vm.Pause", No, No, ANY, vm_pause),
    blocking("admin.vm.Unpause", No, No, ANY, vm_unpause),
    blocking("admin.vm.Suspend", No, No, ANY, vm_suspend),
    blocking("admin.vm.Resume", No, No, ANY, vm_resume),
    read_blocking("admin.vm.Console", No, No, ANY, vm_console),
    read("admin.vm.Stats", No, No, ANY, vm_stats),
];

fn vm_start(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::start(core, &r.dest)?;
    empty()
}

fn vm_shutdown(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    let args: Vec<&str> = if r.arg.is_empty() {
        Vec::new()
    } else {
        r.arg.split('+').collect()
    };
    if !args.iter().all(|a| matches!(*a, "force" | "wait")) {
        return Err(QubesError::protocol("Argument must match: force, wait"));
    }
    let (force, wait) = (args.contains(&"force"), args.contains(&"wait"));
    match op::shutdown(core, &r.dest, force, wait)? {
        ShutdownOutcome::Done => empty(),
        ShutdownOutcome::Wait(timeout) => Ok(Reply::WaitHalted {
            vm: r.dest.clone(),
            timeout,
        }),
    }
}

fn vm_kill(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::kill(core, &r.dest)?;
    empty()
}

fn vm_pause(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::pause(core, &r.dest, false)?;
    empty()
}

fn vm_suspend(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::pause(core, &r.dest, true)?;
    empty()
}

fn vm_unpause(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::unpause(core, &r.dest, false)?;
    empty()
}

fn vm_resume(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::unpause(core, &r.dest, true)?;
    empty()
}

fn current_state(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let d = r.dest_in(v.st)?;
    let (mut mem, mut max, mut cpu) = (0, 0, 0);
    if d.class == Class::AdminVM {
        let (total, avail) = crate::ops::stats::host_memory_kib();
        (mem, max) = (total.saturating_sub(avail), total);
    } else if d.is_active()
        && let Some(h) = &v.env.hv
        && let Ok(Some(s)) = h.status(&d.name)
    {
        (mem, max, cpu) = (s.mem_kib, s.maxmem_kib, s.cputime_ns);
    }
    ok(format!(
        "mem={mem} mem_static_max={max} cputime={cpu} power_state={}",
        d.power.name()
    ))
}

fn vm_console(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let d = r.dest_in(v.st)?;
    match d.class {
        // The reference fails without a reply (a RemoteVM has no libvirt domain).
        Class::RemoteVM => Err(QubesError::new(
            ExcKind::QubesVMError,
            "Cannot open the console of a RemoteVM.",
        )),
        // dom0's console is that of the hypervisor's domain 0 (none on the test driver).
        Class::AdminVM => match v.env.hv()?.console("Domain-0") {
            Ok(tty) => ok(tty.unwrap_or_default()),
            Err(_) => Err(QubesError::qubes("No console available for dom0")),
        },
        _ => {
            if !d.is_active() {
                return Err(not_running(&r.dest));
            }
            match v
                .env
                .hv()?
                .console(&r.dest)
                .map_err(|e| QubesError::qubes(e.0))?
            {
                Some(tty) => ok(tty),
                None => Err(QubesError::qubes(format!(
                    "No console available for {}",
                    r.dest
                ))),
            }
        }
    }
}

fn vm_stats(r: &Req, _: &View) -> Result<Reply, QubesError> {
    Ok(Reply::Stats {
        dest: r.dest.clone(),
    })
}
