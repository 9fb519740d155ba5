//! The host going to sleep and waking up (`internal.SuspendPre` / `internal.SuspendPost`):
//! running qubes are told (`qubes.SuspendPreAll` / `qubes.SuspendPostAll` through
//! qrexec-client) and suspended, then resumed and told again. Qubes that were paused before
//! stay paused: their names are kept in `previously-paused.list` in the runtime directory
//! across the sleep.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qubes_api::QubesError;

use super::lifecycle::{pause, unpause};
use crate::core::Core;
use crate::model::{Class, Domain, PowerState, State};
use crate::props;

/// How long the qubes get to answer the suspend services (the reference's
/// `suspend_timeout`).
const SERVICE_TIMEOUT: Duration = Duration::from_secs(60);

/// The file that remembers the qubes paused before a suspend.
pub fn previously_paused_file(core: &Core) -> PathBuf {
    core.env().runtime_dir.join("previously-paused.list")
}

fn paused(d: &Domain) -> bool {
    matches!(d.power, PowerState::Paused | PowerState::Suspended)
}

/// Local qubes (not dom0, not remote) that run and are not among `skip`, in name order.
fn running_local<'a>(st: &'a State, skip: &[String]) -> Vec<&'a Domain> {
    st.domains
        .values()
        .map(|d| d.as_ref())
        .filter(|d| d.class.is_local_qube() && d.is_active() && !skip.contains(&d.name))
        .collect()
}

/// `internal.SuspendPre`: remember the paused qubes, tell the running ones that have qrexec,
/// then suspend every running one that was not paused. Fails, after trying all, if some could
/// not be suspended.
pub fn suspend_all(core: &Core) -> Result<(), QubesError> {
    let st = core.snapshot();
    let previously: Vec<String> = st
        .domains
        .values()
        .filter(|d| paused(d))
        .map(|d| d.name.clone())
        .collect();
    let file = previously_paused_file(core);
    let written = file
        .parent()
        .map(std::fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|_| std::fs::write(&file, previously.join("\n")));
    if let Err(e) = written {
        return Err(QubesError::qubes(format!(
            "Cannot record the paused qubes in {}: {e}",
            file.display()
        )));
    }
    run_service_everywhere(core, &st, &previously, "qubes.SuspendPreAll");
    let st = core.snapshot();
    let targets: Vec<String> = running_local(&st, &previously)
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let failed: Vec<String> = std::thread::scope(|s| {
        let jobs: Vec<_> = targets
            .iter()
            .map(|vm| s.spawn(move || pause(core, vm, true)))
            .collect();
        jobs.into_iter()
            .filter_map(|j| match j.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(message(&e)),
                Err(_) => Some("internal error".to_string()),
            })
            .collect()
    });
    if !failed.is_empty() {
        let lines: String = failed.iter().map(|f| format!("\n{f}")).collect();
        return Err(QubesError::qubes(format!(
            "Failed to suspend some qubes: {lines}"
        )));
    }
    Ok(())
}

/// `internal.SuspendPost`: resume every paused qube that was not paused before the suspend,
/// tell the running ones, and let disposable templates preload again.
pub fn resume_all(core: &Core) -> Result<(), QubesError> {
    let file = previously_paused_file(core);
    let previously: Vec<String> = match std::fs::read_to_string(&file) {
        Ok(text) => {
            if let Err(e) = std::fs::remove_file(&file) {
                tracing::warn!("removing {}: {e}", file.display());
            }
            text.split('\n').map(str::to_string).collect()
        }
        Err(_) => Vec::new(),
    };
    let st = core.snapshot();
    let targets: Vec<String> = st
        .domains
        .values()
        .filter(|d| d.class.is_local_qube() && paused(d) && !previously.contains(&d.name))
        .map(|d| d.name.clone())
        .collect();
    std::thread::scope(|s| {
        for vm in &targets {
            s.spawn(move || {
                if let Err(e) = unpause(core, vm, true) {
                    tracing::warn!("resuming {vm} after the suspend: {}", message(&e));
                }
            });
        }
    });
    let st = core.snapshot();
    run_service_everywhere(core, &st, &previously, "qubes.SuspendPostAll");
    let templates = preload_templates(&st);
    if !templates.is_empty() {
        core.write("internal.SuspendPost", |t| {
            for tpl in &templates {
                t.fire(
                    tpl,
                    "domain-preload-dispvm-start",
                    &[("reason", "system resumed")],
                );
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn message(e: &QubesError) -> String {
    match e {
        QubesError::Exception { message, .. } => message.clone(),
        QubesError::Silent(why) => why.clone(),
    }
}

/// Disposable templates that keep disposables preloaded (by their own feature, or as the
/// system's default disposable template when dom0 has the feature).
fn preload_templates(st: &State) -> Vec<String> {
    let number = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let global = st
        .domain("dom0")
        .and_then(|d| d.feature("preload-dispvm-max"));
    let default_dispvm = props::global_get(st, "default_dispvm").unwrap_or_default();
    st.domains
        .values()
        .filter(|d| {
            d.class == Class::AppVM
                && props::vm_flag(st, d, "template_for_dispvms")
                && if d.name == default_dispvm {
                    match global {
                        Some(g) => number(Some(g)) > 0,
                        None => number(d.feature("preload-dispvm-max")) > 0,
                    }
                } else {
                    number(d.feature("preload-dispvm-max")) > 0
                }
        })
        .map(|d| d.name.clone())
        .collect()
}

/// Runs `service` as root in every running local qube that has qrexec and was not paused
/// before, all at once, and waits for them (each gets [`SERVICE_TIMEOUT`]). A qube that
/// cannot run it is only logged.
fn run_service_everywhere(core: &Core, st: &State, skip: &[String], service: &str) {
    let mut children: Vec<(String, Child)> = Vec::new();
    for d in running_local(st, skip) {
        if super::hooks::with_template(st, d, "qrexec").is_none_or(str::is_empty) {
            continue;
        }
        match start_service(core, d, service) {
            Ok(child) => children.push((d.name.clone(), child)),
            Err(e) => tracing::warn!("failed to run {service} in {}: {}", d.name, message(&e)),
        }
    }
    let deadline = Instant::now() + SERVICE_TIMEOUT;
    for (vm, mut child) in children {
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    tracing::warn!(
                        "{vm} did not finish {service} within {} seconds",
                        SERVICE_TIMEOUT.as_secs()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Err(e) => {
                    tracing::warn!("waiting for {service} in {vm}: {e}");
                    break;
                }
            }
        }
    }
}

/// Starts `service` as root in a running qube through qrexec-client (`run_service`), after
/// its `domain-cmd-pre-run` event.
fn start_service(core: &Core, d: &Domain, service: &str) -> Result<Child, QubesError> {
    let env = core.env();
    if d.xid < 0 || !env.runtime_dir.join(format!("qrexec.{}", d.name)).exists() {
        return Err(QubesError::new(
            qubes_api::ExcKind::QubesVMError,
            format!("Domain '{}': qrexec not connected", d.name),
        ));
    }
    core.write("run_service", |t| {
        t.fire(&d.name, "domain-cmd-pre-run", &[("start_guid", "False")]);
        Ok(())
    })?;
    Command::new(&env.qrexec_client)
        .arg("-d")
        .arg(&d.name)
        .arg(format!("root:QUBESRPC {service} dom0"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| QubesError::qubes(format!("Cannot run {}: {e}", env.qrexec_client.display())))
}
