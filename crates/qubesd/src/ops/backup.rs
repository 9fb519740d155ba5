//! Backups (admin-api.md §9): a profile's plan against the current qubes, Info's summary,
//! and Execute — which writes format v4 (the `qubes-backup` crate) from one consistent
//! snapshot of the state, with no lock held while it runs, announces `backup-progress` at
//! most once a second, and records `backup_timestamp` only when the backup is complete.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use qubes_api::{Event, ExcKind, QubesError};
use qubes_backup::error::BackupError;
use qubes_backup::profile::{PassphraseSource, Plan, Profile, SelectableQube, Target};
use qubes_backup::summary::{RunningWarning, SummaryKind, SummaryRow, backup_summary};
use qubes_backup::write::{
    BackupContent, BackupFile, Destination, Dom0Home, FileSource, Progress, ProgressFn, QubeFiles,
    WriteOptions,
};

use crate::core::Core;
use crate::model::{Class, Domain, State};
use crate::props;
use crate::txn::{BackupHandle, Env};

/// A crate error as the exception the reference sends.
fn exc(e: BackupError) -> QubesError {
    let kind = ExcKind::from_name(e.kind()).unwrap_or(ExcKind::QubesException);
    QubesError::new(kind, e.message())
}

/// A qube as the profile's patterns see it.
struct Selectable<'a> {
    st: &'a State,
    d: &'a Domain,
}

impl SelectableQube for Selectable<'_> {
    fn name(&self) -> &str {
        &self.d.name
    }
    fn class(&self) -> &str {
        self.d.class.name()
    }
    fn qid(&self) -> u32 {
        self.d.qid
    }
    fn has_tag(&self, tag: &str) -> bool {
        self.d.tags.contains(tag)
    }
    fn include_in_backups(&self) -> bool {
        props::vm_flag(self.st, self.d, "include_in_backups")
    }
}

/// A profile checked against one snapshot: the plan and what each selected qube brings.
struct Prepared<'a> {
    plan: Plan,
    selected: Vec<&'a Domain>,
    not_selected: Vec<String>,
    qubes: Vec<(&'a Domain, QubeFiles)>,
    dom0_home: Option<Dom0Home>,
}

/// Loads profile `id` and plans it against `st`, in the reference's order: the id, the
/// file, the destination, the passphrase (`for_execute` only), the selection, dom0's home.
fn prepare<'a>(
    core: &Core,
    st: &'a State,
    id: &str,
    for_execute: bool,
) -> Result<Prepared<'a>, QubesError> {
    let env = core.env();
    let profile = Profile::load(&env.backup_profile_dir, id).map_err(exc)?;
    let domains: Vec<&Domain> = st.domains_sorted().collect();
    let selectable: Vec<Selectable> = domains.iter().map(|d| Selectable { st, d }).collect();
    let plan = profile.plan(&selectable, for_execute).map_err(exc)?;
    let selected: Vec<&Domain> = plan
        .selection
        .selected
        .iter()
        .map(|&i| domains[i])
        .collect();
    let not_selected = plan
        .selection
        .not_selected
        .iter()
        .map(|&i| domains[i].name.clone())
        .collect();
    let mut qubes = Vec::new();
    let mut dom0_home = None;
    for d in &selected {
        if d.class == Class::AdminVM {
            let home = dom0_home_dir()?;
            if let Target::Dom0 { path } = &plan.target {
                qubes_backup::write::check_dom0_home_target(path, &home.path).map_err(exc)?;
            }
            dom0_home = Some(home);
        } else {
            qubes.push((*d, qube_files(env, st, d, for_execute)?));
            // The reference asks its extensions for more files of each qube with this event,
            // which subscribers see.
            core.hub()
                .publish([Event::new(&d.name, "backup-get-files")]);
        }
    }
    Ok(Prepared {
        plan,
        selected,
        not_selected,
        qubes,
        dom0_home,
    })
}

/// A qube's files: every `save_on_stop` volume's data, `firewall.xml` and `notes.txt`.
/// Without `export` (Info: only sizes) the volumes are not asked for their data, which a
/// running qube's file pool cannot give.
fn qube_files(env: &Env, st: &State, d: &Domain, export: bool) -> Result<QubeFiles, QubesError> {
    let mut files = Vec::new();
    for v in crate::storage::volumes(st, d)
        .into_iter()
        .filter(|v| v.save_on_stop)
    {
        let drv = crate::storage::vol_driver(&v)?;
        let source = if export {
            FileSource::Path(drv.export(&v)?)
        } else {
            FileSource::Bytes(Vec::new())
        };
        files.push(BackupFile {
            name: format!("{}.img", v.name),
            source,
            size: drv.usage(&v),
        });
    }
    let dir = env.state_dir.join(d.class.dir_prefix()).join(&d.name);
    for name in ["firewall.xml", "notes.txt"] {
        let path = dir.join(name);
        if path.is_file() {
            files.push(BackupFile {
                name: name.into(),
                size: qubes_backup::write::disk_usage(&path),
                source: FileSource::Path(path),
            });
        }
    }
    Ok(QubeFiles { qid: d.qid, files })
}

/// dom0's home: that of the first member of group `qubes`, as the reference finds it.
fn dom0_home_dir() -> Result<Dom0Home, QubesError> {
    let missing = || QubesError::qubes("Cannot find dom0's user: group 'qubes' has no member");
    let group = std::fs::read_to_string("/etc/group").map_err(|_| missing())?;
    let user = group
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 4 && f[0] == "qubes").then(|| f[3].split(',').next().map(str::to_string))
        })
        .flatten()
        .filter(|u| !u.is_empty())
        .ok_or_else(missing)?;
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|_| missing())?;
    let path = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[0] == user).then(|| PathBuf::from(f[5]))
        })
        .ok_or_else(missing)?;
    Ok(Dom0Home {
        size: qubes_backup::write::disk_usage(&path),
        user,
        path,
    })
}

/// `admin.backup.Info`: the summary table of what profile `id` would back up.
pub fn info(core: &Core, id: &str) -> Result<String, QubesError> {
    qubes_backup::profile::check_profile_id(id).map_err(exc)?;
    let st = core.snapshot();
    let p = prepare(core, &st, id, false)?;
    let rows: Vec<SummaryRow> = p.selected.iter().map(|d| summary_row(&st, d, &p)).collect();
    Ok(backup_summary(&rows, &p.not_selected))
}

fn summary_row(st: &State, d: &Domain, p: &Prepared) -> SummaryRow {
    let (kind, size) = match d.class {
        Class::AdminVM => (
            SummaryKind::Dom0Home,
            p.dom0_home.as_ref().map_or(0, |h| h.size),
        ),
        class => (
            if class == Class::TemplateVM {
                SummaryKind::Template
            } else {
                SummaryKind::Vm {
                    updateable: props::vm_flag(st, d, "updateable"),
                }
            },
            p.qubes
                .iter()
                .find(|(q, _)| q.name == d.name)
                .map_or(0, |(_, f)| f.size()),
        ),
    };
    let running = (d.class != Class::AdminVM && d.is_active()).then(|| {
        if snapshots_disabled(st, d) {
            RunningWarning::SnapshotsDisabled
        } else {
            RunningWarning::Running
        }
    });
    SummaryRow {
        name: d.name.clone(),
        kind,
        size,
        running,
    }
}

/// Whether a qube runs on one of its volumes itself (`revisions_to_keep` -1).
fn snapshots_disabled(st: &State, d: &Domain) -> bool {
    crate::storage::volumes(st, d)
        .iter()
        .any(crate::storage::Vol::snapshots_disabled)
}

/// `qubes.xml` as it goes into the backup: every qube with `backup-content`, the selected
/// ones also with `backup-path` and `backup-size`, preloaded disposables forgotten.
fn backup_qubes_xml(st: &State, p: &Prepared) -> Vec<u8> {
    let mut copy = st.clone();
    let names: Vec<String> = copy.domains.keys().map(|k| k.to_string()).collect();
    for n in &names {
        if let Some(d) = copy.domain_mut(n) {
            d.set_feature("backup-content", "");
        }
    }
    let mut paths: Vec<(String, String, u64)> = p
        .qubes
        .iter()
        .map(|(d, f)| (d.name.clone(), f.subdir(), f.size()))
        .collect();
    if let (Some(h), Some(dom0)) = (&p.dom0_home, p.selected.last())
        && dom0.class == Class::AdminVM
    {
        paths.push((dom0.name.clone(), h.backup_path(), h.size));
    }
    for (name, path, size) in paths {
        if let Some(d) = copy.domain_mut(&name) {
            d.set_feature("backup-content", "1");
            d.set_feature("backup-path", &path);
            d.set_feature("backup-size", &size.to_string());
            d.features
                .retain(|(k, _)| !k.starts_with("preload-dispvm") || k == "preload-dispvm-max");
        }
    }
    crate::store::serialize(&copy).into_bytes()
}

/// Marks a profile as running; unmarks it when dropped.
struct Running<'a> {
    env: &'a Env,
    id: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.env
            .backups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// `admin.backup.Execute`: runs profile `id` to its end (hours, maybe). Every other call is
/// answered meanwhile: the state is read from one snapshot and no lock is held.
pub fn execute(core: &Core, id: &str) -> Result<(), QubesError> {
    qubes_backup::profile::check_profile_id(id).map_err(exc)?;
    let env = core.env();
    let st = core.snapshot();
    let p = prepare(core, &st, id, true)?;
    let passphrase = passphrase(env, id, p.plan.passphrase.as_ref())?;
    let handle = Arc::new(BackupHandle::default());
    let _running = {
        let mut running = env.backups.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains_key(id) {
            return Err(exc(BackupError::AlreadyRunning));
        }
        running.insert(id.to_string(), handle.clone());
        Running {
            env,
            id: id.to_string(),
        }
    };
    let Some(passphrase) = passphrase else {
        return Err(QubesError::qubes("No passphrase set"));
    };
    // A qube that runs on a volume itself cannot be copied consistently.
    if let Some(d) = p
        .qubes
        .iter()
        .map(|(d, _)| *d)
        .find(|d| d.is_active() && snapshots_disabled(&st, d))
    {
        return Err(super::not_halted(&d.name));
    }
    let content = BackupContent {
        qubes_xml: backup_qubes_xml(&st, &p),
        qubes: p.qubes.iter().map(|(_, f)| f.clone()).collect(),
        dom0_home: p.dom0_home.clone(),
    };
    let mut opts = WriteOptions::new(passphrase);
    opts.compression = p.plan.compression.clone();
    opts.cancel = handle.cancel.clone();
    let hub = core.hub().clone();
    let profile = id.to_string();
    let announce: ProgressFn = Arc::new(move |progress: Progress| {
        hub.publish([Event::new("", "backup-progress")
            .kw("backup_profile", &profile)
            .kw("progress", progress.percent_text())]);
    });
    opts.progress = Some(qubes_backup::write::throttled(
        std::time::Duration::from_secs(1),
        announce,
    ));
    match &p.plan.target {
        Target::Dom0 { path } => {
            let file = qubes_backup::write::resolve_dom0_target(path).map_err(exc)?;
            qubes_backup::write::write_backup(&content, Destination::File(file), &opts)
                .map_err(exc)?;
        }
        Target::Qube { name, path } => to_qube(env, name, path, &content, &opts, &handle)?,
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let done: BTreeSet<String> = p.qubes.iter().map(|(d, _)| d.name.clone()).collect();
    core.write("admin.backup.Execute", |t| {
        for vm in &done {
            // A qube removed while the backup ran is simply not there to mark.
            if t.st.domain(vm).is_some() {
                super::properties::set_vm(t, vm, "backup_timestamp", stamp.as_bytes())?;
            }
        }
        t.save = true;
        Ok(())
    })
}

/// `admin.backup.Cancel`: stops the running backup of profile `id`.
pub fn cancel(core: &Core, id: &str) -> Result<(), QubesError> {
    qubes_backup::profile::check_profile_id(id).map_err(exc)?;
    let running = core.env().backups.lock().unwrap_or_else(|e| e.into_inner());
    match running.get(id) {
        Some(handle) => {
            handle.cancel.store(true, Ordering::SeqCst);
            if let Some(pid) = *handle.service_pid.lock().unwrap_or_else(|e| e.into_inner()) {
                // SAFETY: kill only sends a signal; the pid is our own child, still waited for.
                unsafe { libc::kill(pid.cast_signed(), libc::SIGTERM) };
            }
            Ok(())
        }
        None => Err(QubesError::qubes("Backup operation not running")),
    }
}

/// The passphrase: the profile's text, or what `qubes.BackupPassphrase+<id>` in the
/// passphrase qube prints (stripped; one line). `None`: the profile's text is null.
fn passphrase(
    env: &Env,
    id: &str,
    source: Option<&PassphraseSource>,
) -> Result<Option<Vec<u8>>, QubesError> {
    match source {
        Some(PassphraseSource::Text(t)) => Ok(t.as_ref().map(|t| t.as_bytes().to_vec())),
        Some(PassphraseSource::Vm(vm)) => {
            let failed =
                || QubesError::qubes(format!("Failed to retrieve passphrase from '{vm}' VM"));
            let mut cmd = service(env, vm, &format!("qubes.BackupPassphrase+{id}"));
            let (ok, out) =
                run_bounded(&mut cmd, PASSPHRASE_LIMIT, PASSPHRASE_WAIT).map_err(|_| failed())?;
            if !ok {
                return Err(failed());
            }
            let text = crate::pycompat::py_strip_bytes(&out);
            if text.contains(&b'\n') {
                return Err(QubesError::protocol(
                    "Passphrase must not contain newline character",
                ));
            }
            Ok(Some(text.to_vec()))
        }
        None => Err(QubesError::qubes(
            "Invalid backup profile - you need to specify passphrase_text or passphrase_vm",
        )),
    }
}

/// At most this much of what a passphrase qube prints is read.
const PASSPHRASE_LIMIT: u64 = 64 * 1024;
/// A passphrase qube that says nothing for this long has failed.
const PASSPHRASE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `cmd` with no input, reading at most `limit` bytes of its output; kills it when it
/// outlives `wait`. Returns whether it succeeded, and its output.
fn run_bounded(
    cmd: &mut Command,
    limit: u64,
    wait: std::time::Duration,
) -> std::io::Result<(bool, Vec<u8>)> {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut stdout = stdout;
        let _ = (&mut stdout).take(limit).read_to_end(&mut out);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let _ = tx.send(out);
    });
    let Ok(out) = rx.recv_timeout(wait) else {
        let _ = child.kill();
        let _ = child.wait();
        return Ok((false, Vec::new()));
    };
    Ok((child.wait()?.success(), out))
}

/// A service call in a qube through `qrexec-client`, as the reference's `run_service`.
fn service(env: &Env, vm: &str, service: &str) -> Command {
    let mut c = Command::new(&env.qrexec_client);
    c.arg("-d")
        .arg(vm)
        .arg(format!("DEFAULT:QUBESRPC {service} dom0"));
    c
}

/// Streams the backup to `qubes.Backup` in `vm`, whose first line is the path.
fn to_qube(
    env: &Env,
    vm: &str,
    path: &str,
    content: &BackupContent,
    opts: &WriteOptions,
    handle: &BackupHandle,
) -> Result<(), QubesError> {
    let failed =
        |why: String| QubesError::qubes(format!("Writing backup to VM {vm} failed: {why}"));
    let mut child = service(env, vm, "qubes.Backup")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    *handle.service_pid.lock().unwrap_or_else(|e| e.into_inner()) = Some(child.id());
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("no stdin".into()))?;
    let written = stdin
        .write_all(&qubes_backup::write::qube_target_first_line(path))
        .map_err(|e| failed(e.to_string()))
        .and_then(|_| {
            let spool = tempfile::tempdir().map_err(|e| failed(e.to_string()))?;
            let dest = Destination::Stream {
                writer: Box::new(stdin),
                spool_dir: spool.path().to_path_buf(),
            };
            qubes_backup::write::write_backup(content, dest, opts).map_err(exc)
        });
    if written.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    *handle.service_pid.lock().unwrap_or_else(|e| e.into_inner()) = None;
    if handle.cancel.load(Ordering::SeqCst) {
        return Err(exc(BackupError::Cancelled));
    }
    written?;
    if !status.success() {
        return Err(failed(format!("the service ended with {status}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_errors_become_the_reference_exceptions() {
        assert_eq!(
            exc(BackupError::AlreadyRunning),
            QubesError::new(ExcKind::BackupAlreadyRunningError, "Backup already running")
        );
        assert_eq!(
            exc(BackupError::ProfileNotFound("x".into())),
            QubesError::new(
                ExcKind::QubesBackupProfileNotFoundError,
                "Backup profile does not exist: x"
            )
        );
        assert_eq!(
            exc(BackupError::Protocol("p".into())),
            QubesError::protocol("p")
        );
    }
}
