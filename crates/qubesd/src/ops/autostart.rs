//! The systemd unit behind `autostart`: dom0 starts an autostart qube at boot through its
//! `qubes-vm@<qube>.service` unit, which the reference enables and disables as root (through
//! `sudo`) when the property changes and when such a qube is created or removed.
//!
//! What runs, as the reference runs it (facts of `qubes.vm.qubesvm`):
//!
//! * set to true: `ln -sf` of the unit template into `multi-user.target.wants` (a workaround
//!   for a systemd bug with `enable` of template instances); set to false: `systemctl
//!   disable`; a failure refuses the change;
//! * reset from true: `systemctl disable`; a failure refuses the reset;
//! * a created autostart qube: `systemctl enable`; a removed one: `systemctl disable`; both
//!   only logged when they fail.
//!
//! Nothing runs unless qubesd was given the program ([`Env::sudo`]).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qubes_api::QubesError;

use crate::txn::{Env, Txn};

/// How long one command may take before it is killed and counts as failed (it runs while
/// the writer lock is held).
const DEADLINE: Duration = Duration::from_secs(60);

fn unit(vm: &str) -> String {
    format!("qubes-vm@{vm}.service")
}

/// Runs `sudo args...`; true when it exited with 0 (or when no program is configured).
fn run(sudo: Option<&Path>, args: &[&str]) -> bool {
    let Some(sudo) = sudo else {
        return true;
    };
    let mut child = match Command::new(sudo)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot run {}: {e}", sudo.display());
            return false;
        }
    };
    let end = Instant::now() + DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                tracing::warn!("{} {args:?} did not finish: killed", sudo.display());
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

fn enable_link_args(vm: &str) -> [String; 4] {
    [
        "ln".into(),
        "-sf".into(),
        "/usr/lib/systemd/system/qubes-vm@.service".into(),
        format!("/etc/systemd/system/multi-user.target.wants/{}", unit(vm)),
    ]
}

/// `property-pre-set:autostart`: links or disables the unit; refuses the change if that fails.
pub fn pre_set(t: &Txn, vm: &str, new: bool) -> Result<(), QubesError> {
    let ok = if new {
        let args = enable_link_args(vm);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(t.env.sudo.as_deref(), &args)
    } else {
        run(t.env.sudo.as_deref(), &["systemctl", "disable", &unit(vm)])
    };
    if ok {
        Ok(())
    } else {
        Err(QubesError::qubes(
            "Failed to set autostart for VM in systemd",
        ))
    }
}

/// `property-pre-reset:autostart`: a qube that autostarted has its unit disabled; refuses the
/// reset if that fails.
pub fn pre_reset(t: &Txn, vm: &str, old: bool) -> Result<(), QubesError> {
    if old && !run(t.env.sudo.as_deref(), &["systemctl", "disable", &unit(vm)]) {
        return Err(QubesError::qubes(
            "Failed to reset autostart for VM in systemd",
        ));
    }
    Ok(())
}

/// Once a created autostart qube is committed: `systemctl enable` its unit.
pub fn after_create(t: &mut Txn, vm: &str) {
    after_commit(t, "enable", vm);
}

/// Once the removal of an autostart qube is committed: `systemctl disable` its unit.
pub fn after_remove(t: &mut Txn, vm: &str) {
    after_commit(t, "disable", vm);
}

fn after_commit(t: &mut Txn, verb: &'static str, vm: &str) {
    let Env { sudo, .. } = &t.env;
    let Some(sudo) = sudo.clone() else {
        return;
    };
    let unit = unit(vm);
    t.after_commit(Box::new(move || {
        if !run(Some(&sudo), &["systemctl", verb, &unit]) {
            // The reference ignores this failure too: the qube exists (or is gone) anyway.
            tracing::warn!("systemctl {verb} {unit} failed");
        }
    }));
}
