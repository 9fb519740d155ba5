//! Carrying out a [`Plan`] through the Admin API.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use qubes_api::{CallError, Client, Response};

use super::{IN_PROGRESS_TAG, Plan, PlanEntry, RestoreOptions, RestoreProgress};
use crate::error::{BackupError, Result};
use crate::qubesxml::{BackupQube, BackupQubes};
use crate::read::{Backup, Content};

/// What happened to one qube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QubeReport {
    /// Name in the backup.
    pub name: String,
    /// Name here.
    pub restored_as: String,
    /// Whether it was created (or, verifying, checked).
    pub ok: bool,
    /// Settings that could not be applied, and why (the qube is restored without them).
    pub messages: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Per qube, in restore order.
    pub qubes: Vec<QubeReport>,
    /// Where dom0's home went.
    pub dom0_home: Option<PathBuf>,
}

fn call_err(e: CallError) -> String {
    match e {
        CallError::Exception { kind, message } => format!("{kind}: {message}"),
        other => other.to_string(),
    }
}

/// Properties restored apart (or never): see `_restore_vms_metadata`.
const SKIPPED_PROPERTIES: [&str; 6] = [
    "dispid",
    "template_for_dispvms",
    "template",
    "netvm",
    "default_dispvm",
    "installed_by_rpm",
];

/// Restores (or, with `verify_only`, checks) what `plan` selects from `backup`. `client` may
/// be `None` only when verifying.
pub fn restore(
    client: Option<&Client>,
    backup: &mut Backup,
    qubes: &BackupQubes,
    plan: &Plan,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let mut report = RestoreReport::default();
    let chosen: Vec<&PlanEntry> = plan.entries.iter().filter(|e| e.good()).collect();
    let mut dirs: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in chosen.iter().enumerate() {
        if let Some(p) = &qubes.qubes[e.index].backup_path {
            dirs.insert(p.trim_end_matches('/').to_string(), i);
        }
        report.qubes.push(QubeReport {
            name: e.name.clone(),
            restored_as: e.restore_as.clone(),
            ok: opts.verify_only,
            messages: Vec::new(),
        });
    }
    let home = plan.dom0_home.clone();
    let wanted = |file: &str| {
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        dirs.contains_key(dir) || home.as_deref() == Some(file)
    };
    let names: Vec<String> = report.qubes.iter().map(|q| q.name.clone()).collect();
    let tracker = Tracker::new(opts, &names);
    if opts.verify_only {
        let mut seen = std::collections::BTreeSet::new();
        backup.read_files(
            &mut |file, content| {
                if let Some(&i) = dirs.get(file.rsplit_once('/').map_or("", |(d, _)| d)) {
                    seen.insert(i);
                    tracker.enter(Some(i));
                    if let Content::File { size, data } = content {
                        let base = file.rsplit_once('/').map_or(file, |(_, b)| b);
                        let mut counted = tracker.counting(i, base, size, data);
                        io::copy(&mut counted, &mut io::sink()).map_err(from_io)?;
                    }
                }
                Ok(())
            },
            &wanted,
            None,
        )?;
        tracker.enter(None);
        if let Some(r) = (0..report.qubes.len()).find(|i| !seen.contains(i)) {
            return Err(BackupError::qubes(format!(
                "The backup holds no data for {}: it is truncated",
                report.qubes[r].name
            )));
        }
        return Ok(report);
    }
    let client = client.ok_or_else(|| BackupError::qubes("no Admin API connection"))?;
    let mut created: Vec<String> = Vec::new();
    let result = (|| -> Result<()> {
        create_all(client, qubes, &chosen, &mut report, &mut created, &tracker)?;
        let mut seen: BTreeMap<usize, bool> = BTreeMap::new();
        let mut home_dir = None;
        backup.read_files(
            &mut |file, content| {
                let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
                let base = file.rsplit_once('/').map_or(file, |(_, b)| b);
                if home.as_deref() == Some(file) {
                    if let Content::Tree(data) = content {
                        home_dir = restore_home(data, opts)?;
                    }
                    return Ok(());
                }
                let Some(&i) = dirs.get(dir) else {
                    return Ok(());
                };
                seen.insert(i, true);
                tracker.enter(Some(i));
                let r = &mut report.qubes[i];
                let Content::File { size, data } = content else {
                    return Ok(());
                };
                if !r.ok {
                    return Ok(());
                }
                let data = &mut tracker.counting(i, base, size, data);
                if let Some(volume) = base.strip_suffix(".img") {
                    import_volume(opts, &r.restored_as, volume, size, data).map_err(|e| {
                        BackupError::qubes(format!(
                            "Failed to restore volume {volume} of {}: {e}",
                            r.name
                        ))
                    })?;
                } else if base == "firewall.xml" {
                    let rules = firewall_rules(data)?;
                    if let Err(e) = client.call(
                        "admin.vm.firewall.Set",
                        &r.restored_as,
                        "",
                        rules.as_bytes(),
                    ) {
                        r.messages.push(format!("firewall: {}", call_err(e)));
                    }
                } else if base == "notes.txt" {
                    let mut text = Vec::new();
                    data.take(1 << 20).read_to_end(&mut text).map_err(from_io)?;
                    if let Err(e) = client.call("admin.vm.notes.Set", &r.restored_as, "", &text) {
                        r.messages.push(format!("notes: {}", call_err(e)));
                    }
                }
                Ok(())
            },
            &wanted,
            None,
        )?;
        tracker.enter(None);
        for (i, r) in report.qubes.iter().enumerate() {
            if r.ok && !seen.contains_key(&i) {
                return Err(BackupError::qubes(format!(
                    "The backup holds no data for {}: it is truncated",
                    r.name
                )));
            }
        }
        report.dom0_home = home_dir;
        for name in &created {
            let _ = client.call("admin.vm.tag.Remove", name, IN_PROGRESS_TAG, b"");
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Remove everything this run created, newest first (dependents before templates).
        for name in created.iter().rev() {
            let _ = client.call("admin.vm.Remove", name, "", b"");
        }
        for r in &mut report.qubes {
            r.ok = false;
        }
        return Err(e);
    }
    Ok(report)
}

/// Sends [`RestoreProgress`] reports: which qube's data is coming in, and how far its file is.
struct Tracker<'a> {
    opts: &'a RestoreOptions,
    names: &'a [String],
    current: std::cell::Cell<Option<usize>>,
}

impl<'a> Tracker<'a> {
    fn new(opts: &'a RestoreOptions, names: &'a [String]) -> Tracker<'a> {
        Tracker {
            opts,
            names,
            current: std::cell::Cell::new(None),
        }
    }

    fn say(&self, p: RestoreProgress) {
        if let Some(f) = &self.opts.progress {
            (f.0)(&p);
        }
    }

    /// The data of qube `i` comes now (`None`: no more data): the one before is done.
    fn enter(&self, i: Option<usize>) {
        let before = self.current.replace(i);
        if let Some(b) = before.filter(|b| Some(*b) != i) {
            self.say(RestoreProgress::Done(self.names[b].clone()));
        }
    }

    /// `data` (file `file` of qube `i`, `size` bytes), reporting how much of it was read.
    fn counting<'r>(
        &'r self,
        i: usize,
        file: &str,
        size: u64,
        data: &'r mut dyn Read,
    ) -> Counting<'r> {
        let c = Counting {
            tracker: self,
            qube: i,
            file: file.to_string(),
            size,
            done: 0,
            told: 0,
            data,
        };
        c.tell();
        c
    }
}

/// A file's data, counted for [`Tracker`].
struct Counting<'a> {
    tracker: &'a Tracker<'a>,
    qube: usize,
    file: String,
    size: u64,
    done: u64,
    told: u64,
    data: &'a mut dyn Read,
}

impl Counting<'_> {
    fn tell(&self) {
        self.tracker.say(RestoreProgress::Data {
            qube: self.tracker.names[self.qube].clone(),
            file: self.file.clone(),
            done: self.done,
            size: self.size,
        });
    }
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        self.done += n as u64;
        // Once per MiB, and at the end of the file.
        if self.done - self.told >= 1 << 20 || (n > 0 && self.done >= self.size) {
            self.told = self.done;
            self.tell();
        }
        Ok(n)
    }
}

fn from_io(e: std::io::Error) -> BackupError {
    match e.downcast::<BackupError>() {
        Ok(b) => b,
        Err(e) => BackupError::qubes(e.to_string()),
    }
}

fn create_all(
    client: &Client,
    qubes: &BackupQubes,
    chosen: &[&PlanEntry],
    report: &mut RestoreReport,
    created: &mut Vec<String>,
    tracker: &Tracker,
) -> Result<()> {
    for (i, e) in chosen.iter().enumerate() {
        let q = &qubes.qubes[e.index];
        tracker.say(RestoreProgress::Creating(e.name.clone()));
        let r = &mut report.qubes[i];
        let template = e.template.clone().unwrap_or_default();
        let method = format!("admin.vm.Create.{}", q.class);
        let payload = |label: &str| format!("name={} label={label}", e.restore_as);
        let mut res = client.call(&method, "dom0", &template, payload(&q.label).as_bytes());
        if let Err(CallError::Exception { kind, .. }) = &res
            && kind == "QubesLabelNotFoundError"
        {
            res = client.call(&method, "dom0", &template, payload("red").as_bytes());
        }
        if let Err(err) = res {
            r.messages.push(format!("not restored: {}", call_err(err)));
            continue;
        }
        created.push(e.restore_as.clone());
        r.ok = true;
        client
            .call("admin.vm.tag.Set", &e.restore_as, IN_PROGRESS_TAG, b"")
            .map_err(|err| {
                BackupError::qubes(format!("cannot tag {}: {}", e.restore_as, call_err(err)))
            })?;
        if let Some(v) = q.property("template_for_dispvms") {
            set(client, r, "template_for_dispvms", v);
        }
    }
    // Device backends: restored qubes under their new names, or qubes already here.
    let renamed: BTreeMap<String, String> = chosen
        .iter()
        .zip(&report.qubes)
        .filter(|(_, r)| r.ok)
        .map(|(e, _)| (e.name.clone(), e.restore_as.clone()))
        .collect();
    let here: BTreeSet<String> = client
        .vm_list()
        .map_err(|e| BackupError::qubes(format!("cannot list the qubes: {}", call_err(e))))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    for (i, e) in chosen.iter().enumerate() {
        let r = &mut report.qubes[i];
        if r.ok {
            apply_settings(client, &qubes.qubes[e.index], r);
            assign_devices(client, &qubes.qubes[e.index], r, &renamed, &here);
        }
    }
    // References to other qubes last, when they all exist.
    for (i, e) in chosen.iter().enumerate() {
        let r = &mut report.qubes[i];
        if !r.ok {
            continue;
        }
        let q = &qubes.qubes[e.index];
        if q.properties.contains_key("netvm")
            && let Some(n) = &e.netvm
        {
            set(client, r, "netvm", n);
        }
        if let Some(Some(d)) = q.properties.get("default_dispvm") {
            let target = chosen
                .iter()
                .find(|c| c.name == *d)
                .map_or(d.clone(), |c| c.restore_as.clone());
            set(client, r, "default_dispvm", &target);
        }
    }
    Ok(())
}

fn set(client: &Client, r: &mut QubeReport, prop: &str, value: &str) {
    if let Err(e) = client.call(
        "admin.vm.property.Set",
        &r.restored_as,
        prop,
        value.as_bytes(),
    ) {
        r.messages.push(format!("{prop}: {}", call_err(e)));
    }
}

fn apply_settings(client: &Client, q: &BackupQube, r: &mut QubeReport) {
    for (name, value) in &q.properties {
        if !SKIPPED_PROPERTIES.contains(&name.as_str()) {
            set(client, r, name, value.as_deref().unwrap_or(""));
        }
    }
    for (name, value) in &q.features {
        if let Err(e) = client.call(
            "admin.vm.feature.Set",
            &r.restored_as,
            name,
            value.as_bytes(),
        ) {
            r.messages.push(format!("feature {name}: {}", call_err(e)));
        }
    }
    for tag in &q.tags {
        if let Err(e) = client.call("admin.vm.tag.Set", &r.restored_as, tag, b"") {
            r.messages.push(format!("tag {tag}: {}", call_err(e)));
        }
    }
}

/// Recreates `q`'s device assignments. A backend restored under another name is that name;
/// one that is neither restored nor here is reported (the reference's restore stops with a
/// `KeyError` there), and the qube keeps its other assignments.
fn assign_devices(
    client: &Client,
    q: &BackupQube,
    r: &mut QubeReport,
    renamed: &BTreeMap<String, String>,
    here: &BTreeSet<String>,
) {
    use qubes_api::device_format::{pair, quote};
    for d in &q.devices {
        let what = format!("device {}:{}", d.bus, d.port_id);
        let backend = renamed.get(&d.backend).unwrap_or(&d.backend);
        if !here.contains(backend) {
            r.messages.push(format!(
                "{what}: its backend qube {} is not on this system",
                d.backend
            ));
            continue;
        }
        let mut payload = format!(
            "device_id={} port_id={} devclass={} backend_domain={} mode={} frontend_domain={}",
            quote(&d.device_id),
            quote(&d.port_id),
            quote(&d.bus),
            quote(backend),
            quote(&d.mode),
            quote(&r.restored_as),
        );
        for (k, v) in &d.options {
            payload.push(' ');
            payload.push_str(&pair(&format!("_{k}"), v));
        }
        let method = format!("admin.vm.device.{}.Assign", d.bus);
        // The argument as `qubesadmin` writes it: `:` as `+`, `*` (any device) as `_`.
        let arg = format!("{backend}+{}:{}", d.port_id, d.device_id)
            .replace(':', "+")
            .replace('*', "_");
        if let Err(e) = client.call(&method, &r.restored_as, &arg, payload.as_bytes()) {
            r.messages.push(format!("{what}: {}", call_err(e)));
        }
    }
}

/// Runs the import service program with `<size>\n` and the data on its standard input.
fn import_volume(
    opts: &RestoreOptions,
    qube: &str,
    volume: &str,
    size: u64,
    data: &mut dyn Read,
) -> std::result::Result<(), String> {
    let mut child = Command::new(&opts.import_program)
        .args(&opts.import_args)
        .arg(volume)
        .env("QREXEC_REMOTE_DOMAIN", "dom0")
        .env("QREXEC_REQUESTED_TARGET", qube)
        .envs(opts.import_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", opts.import_program.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.take(1 << 20).read_to_end(&mut v);
        v
    });
    // What the importer says when it fails (bounded; the rest is drained unread).
    let complaint = std::thread::spawn(move || {
        let mut v = Vec::new();
        let mut stderr = stderr;
        let _ = (&mut stderr).take(4096).read_to_end(&mut v);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&v).trim().to_string()
    });
    let fed = stdin
        .write_all(format!("{size}\n").as_bytes())
        .and_then(|_| std::io::copy(&mut data.take(size), &mut stdin).map(|_| ()));
    drop(stdin);
    let answer = reader.join().unwrap_or_default();
    let complaint = complaint.join().unwrap_or_default();
    let status = child.wait().map_err(|e| e.to_string())?;
    if let Err(e) = fed
        && let Ok(b) = e.downcast::<BackupError>()
    {
        // The backup's own failure (a MAC mismatch) says more than the importer's.
        return Err(b.message());
    }
    match Response::parse(&answer) {
        Ok(Response::Ok(_)) if status.success() => Ok(()),
        Ok(Response::Exception { kind, message, .. }) => Err(format!("{kind}: {message}")),
        _ if complaint.is_empty() => Err(format!("the import program failed ({status})")),
        _ => Err(format!("the import program failed ({status}): {complaint}")),
    }
}

/// `firewall.xml` as `admin.vm.firewall.Set` lines, properties in the order of
/// `qubesadmin.firewall.Rule.rule`.
fn firewall_rules(data: &mut dyn Read) -> Result<String> {
    use quick_xml::events::Event;
    let mut xml = Vec::new();
    data.take(16 << 20).read_to_end(&mut xml).map_err(from_io)?;
    let bad = |e: &dyn std::fmt::Display| {
        BackupError::qubes(format!("Invalid firewall.xml in the backup: {e}"))
    };
    let mut r = quick_xml::Reader::from_reader(&xml[..]);
    let mut rules: Vec<BTreeMap<String, String>> = Vec::new();
    let mut key: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        match r.read_event_into(&mut buf).map_err(|e| bad(&e))? {
            Event::Start(e) => match e.name().as_ref() {
                b"rule" => rules.push(BTreeMap::new()),
                b"property" => {
                    key = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"name")
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                }
                _ => {}
            },
            Event::Text(t) => {
                if let (Some(k), Some(rule)) = (&key, rules.last_mut()) {
                    rule.insert(k.clone(), t.unescape().map_err(|e| bad(&e))?.into_owned());
                }
            }
            Event::End(_) => key = None,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let order = [
        "action",
        "proto",
        "dsthost",
        "dstports",
        "icmptype",
        "specialtarget",
        "expire",
        "comment",
    ];
    let mut out = String::new();
    for rule in rules {
        let parts: Vec<String> = order
            .iter()
            .filter_map(|k| rule.get(*k).map(|v| format!("{k}={v}")))
            .collect();
        out += &parts.join(" ");
        out.push('\n');
    }
    Ok(out)
}

/// Unpacks dom0's home under `<dir>/home-restore-<time>` (the tar crate keeps every entry
/// inside it).
fn restore_home(data: &mut dyn Read, opts: &RestoreOptions) -> Result<Option<PathBuf>> {
    let Some(dir) = &opts.dom0_home_dir else {
        return Ok(None);
    };
    let stamp: String = crate::write::new_backup_id().chars().take(15).collect();
    let target = dir.join(format!("home-restore-{stamp}"));
    std::fs::create_dir(&target)
        .map_err(|e| BackupError::io(format!("creating {}", target.display()), e))?;
    let mut archive = tar::Archive::new(data);
    archive.set_preserve_permissions(true);
    archive
        .unpack(&target)
        .map_err(|e| BackupError::qubes(format!("Inner tar error for dom0-home: {e}")))?;
    Ok(Some(target))
}
