//! The restore engine: a plan (what is in the backup, what conflicts, what is missing), then
//! its execution through the Admin API, as the reference client's `BackupRestore` does:
//! create the qubes (templates first), mark them `backup-restore-in-progress` (qubesd refuses
//! to start such a qube), set properties, features, tags, devices, then the qube references
//! (netvm, default_dispvm), then stream the data: volumes through the
//! `admin.vm.volume.ImportWithSize` service program, firewall rules, notes. The tag goes at
//! the end. Data that fails its MAC, a failed import, or a cancel removes every qube this
//! run created.

mod exec;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

pub use exec::{QubeReport, RestoreReport, restore};

use crate::qubesxml::BackupQubes;

/// The tag restored qubes carry until their data is in.
pub const IN_PROGRESS_TAG: &str = "backup-restore-in-progress";

/// What a restore is doing, for a progress display (names are those in the backup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreProgress {
    /// The qube is being created with its settings.
    Creating(String),
    /// Data of a qube is coming in: `done` of the `size` bytes of its file `file`
    /// (`private.img`, `firewall.xml`).
    Data {
        /// The qube.
        qube: String,
        /// The file of the qube.
        file: String,
        /// Bytes of the file read so far.
        done: u64,
        /// The file's size.
        size: u64,
    },
    /// All the qube's data is in (or, verifying, checked).
    Done(String),
}

/// Called with the restore's progress, from the thread running the restore.
#[derive(Clone)]
pub struct ProgressFn(pub Arc<dyn Fn(&RestoreProgress) + Send + Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Only check the backup (every chunk of the selected qubes); create nothing.
    pub verify_only: bool,
    /// Rename a qube whose name is taken (`name-1`, ...) instead of skipping it.
    pub rename_conflicting: bool,
    /// Qubes not to restore.
    pub exclude: Vec<String>,
    /// Only these qubes (empty: all).
    pub only: Vec<String>,
    /// Restore qubes whose template or net qube is missing, with the defaults instead.
    pub ignore_missing: bool,
    /// Leave dom0's home alone.
    pub skip_dom0_home: bool,
    /// Where dom0's home is restored (`home-restore-<time>` is created inside); `None` skips.
    pub dom0_home_dir: Option<PathBuf>,
    /// The `admin.vm.volume.ImportWithSize` service program.
    pub import_program: PathBuf,
    /// Arguments before the volume name.
    pub import_args: Vec<String>,
    /// Extra environment for it.
    pub import_env: Vec<(String, String)>,
    /// Progress reports (at most one [`RestoreProgress::Data`] per MiB of a file).
    pub progress: Option<ProgressFn>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            verify_only: false,
            rename_conflicting: false,
            exclude: Vec::new(),
            only: Vec::new(),
            ignore_missing: false,
            skip_dom0_home: false,
            dom0_home_dir: None,
            import_program: "/etc/qubes-rpc/admin.vm.volume.ImportWithSize".into(),
            import_args: Vec::new(),
            import_env: Vec::new(),
            progress: None,
        }
    }
}

/// Why a qube of the backup is not restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Excluded by the user (or not among the qubes asked for).
    Excluded,
    /// The name is taken on this system.
    AlreadyExists,
    /// Its template is neither on this system nor restored.
    MissingTemplate,
    /// Its net qube is neither on this system nor restored.
    MissingNetvm,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Problem::Excluded => "Excluded from restore",
            Problem::AlreadyExists => "A VM with the same name already exists on the host!",
            Problem::MissingTemplate => "No matching template on the host or in the backup found!",
            Problem::MissingNetvm => "No matching netvm on the host or in the backup found!",
        })
    }
}

/// One qube of the backup in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// Index in [`BackupQubes::qubes`].
    pub index: usize,
    /// Name in the backup.
    pub name: String,
    /// Name it gets here.
    pub restore_as: String,
    /// Template it gets (after a rename or a default).
    pub template: Option<String>,
    /// Net qube it gets: `None` keeps the default, `Some("")` none.
    pub netvm: Option<String>,
    /// Why not, when not.
    pub problems: Vec<Problem>,
}

impl PlanEntry {
    /// Whether it will be restored.
    pub fn good(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What this system has, for the plan.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    /// Existing qubes: name and class.
    pub qubes: Vec<(String, String)>,
    /// `default_template`.
    pub default_template: Option<String>,
}

/// The plan of a restore.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Qubes in restore order (templates first).
    pub entries: Vec<PlanEntry>,
    /// dom0's home (`dom0-home/<user>`) when it is in the backup and wanted.
    pub dom0_home: Option<String>,
}

impl Plan {
    /// Builds the plan as `restore_info_verify` does.
    pub fn new(backup: &BackupQubes, host: &HostState, opts: &RestoreOptions) -> Plan {
        let on_host = |n: &str| host.qubes.iter().any(|(h, _)| h == n);
        let host_class = |n: &str| {
            host.qubes
                .iter()
                .find(|(h, _)| h == n)
                .map(|(_, c)| c.clone())
        };
        let mut entries: Vec<PlanEntry> = Vec::new();
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for (index, q) in backup.qubes.iter().enumerate() {
            if q.class == "AdminVM" || !q.included() {
                continue;
            }
            let mut e = PlanEntry {
                index,
                name: q.name.clone(),
                restore_as: q.name.clone(),
                template: q.template.clone(),
                netvm: q
                    .properties
                    .get("netvm")
                    .map(|v| v.clone().unwrap_or_default()),
                problems: Vec::new(),
            };
            if opts.exclude.contains(&q.name)
                || (!opts.only.is_empty() && !opts.only.contains(&q.name))
            {
                e.problems.push(Problem::Excluded);
            }
            if !opts.verify_only && on_host(&q.name) {
                if opts.rename_conflicting {
                    let base: String = q.name.chars().take(29).collect();
                    let free = |n: &str| {
                        !on_host(n)
                            && !taken.contains(n)
                            && !backup.qubes.iter().any(|b| b.name == n)
                    };
                    match (1..100).map(|i| format!("{base}-{i}")).find(|n| free(n)) {
                        Some(n) => e.restore_as = n,
                        None => e.problems.push(Problem::AlreadyExists),
                    }
                } else {
                    e.problems.push(Problem::AlreadyExists);
                }
            }
            taken.insert(e.restore_as.clone());
            entries.push(e);
        }
        // Dependencies, now that every entry's fate is known.
        let good: Vec<(String, String, bool)> = entries
            .iter()
            .map(|e| {
                let q = &backup.qubes[e.index];
                (
                    e.name.clone(),
                    e.restore_as.clone(),
                    e.good()
                        && (q.class == "TemplateVM"
                            || q.property("template_for_dispvms") == Some("True")
                            || q.property("provides_network") == Some("True")),
                )
            })
            .collect();
        for e in &mut entries {
            // Verifying reads data only; what it would depend on here does not matter.
            if e.problems.contains(&Problem::Excluded) || opts.verify_only {
                continue;
            }
            let q = &backup.qubes[e.index];
            if let Some(t) = e.template.clone() {
                if let Some((_, renamed, true)) = good.iter().find(|(n, _, _)| *n == t) {
                    e.template = Some(renamed.clone());
                } else if host_class(&t).is_some_and(|c| c == "TemplateVM" || q.class == "DispVM") {
                } else if opts.ignore_missing
                    && host.default_template.is_some()
                    && q.class != "DispVM"
                {
                    e.template = host.default_template.clone();
                } else {
                    e.problems.push(Problem::MissingTemplate);
                }
            }
            if let Some(n) = e.netvm.clone().filter(|n| !n.is_empty()) {
                if let Some((_, renamed, true)) = good.iter().find(|(b, _, _)| *b == n) {
                    e.netvm = Some(renamed.clone());
                } else if on_host(&n) {
                } else if opts.ignore_missing {
                    e.netvm = None;
                } else {
                    e.problems.push(Problem::MissingNetvm);
                }
            }
        }
        let rank = |e: &PlanEntry| {
            let q = &backup.qubes[e.index];
            if q.class == "TemplateVM" {
                0
            } else if q.property("template_for_dispvms") == Some("True") {
                1
            } else {
                2
            }
        };
        entries.sort_by_key(rank);
        let dom0_home = backup
            .qubes
            .iter()
            .find(|q| q.class == "AdminVM")
            .and_then(|q| q.backup_path.clone())
            .filter(|_| !opts.skip_dom0_home);
        Plan { entries, dom0_home }
    }

    /// The summary table `qvm-backup-restore` prints before restoring.
    pub fn summary(&self, backup: &BackupQubes) -> String {
        let rows: Vec<[String; 5]> = self
            .entries
            .iter()
            .map(|e| {
                let q = &backup.qubes[e.index];
                [
                    e.name.clone(),
                    q.class.clone(),
                    q.template.clone().unwrap_or_else(|| "n/a".into()),
                    match q.properties.get("netvm") {
                        None => "(default)".into(),
                        Some(None) => "-".into(),
                        Some(Some(n)) => n.clone(),
                    },
                    q.label.clone(),
                ]
            })
            .collect();
        let heads = ["name", "type", "template", "netvm", "label"];
        let widths: Vec<usize> = (0..5)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([heads[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let rule = || {
            widths
                .iter()
                .map(|w| format!("{}-+", "-".repeat(w + 1)))
                .collect::<String>()
        };
        let mut s = String::from("The following VMs are included in the backup:\n\n");
        s += &rule();
        s += "\n";
        for (i, h) in heads.iter().enumerate() {
            s += &format!("{h:>w$} |", w = widths[i] + 1);
        }
        s += "\n";
        s += &rule();
        s += "\n";
        for (e, r) in self.entries.iter().zip(&rows) {
            for (i, c) in r.iter().enumerate() {
                s += &format!("{c:>w$} |", w = widths[i] + 1);
            }
            if let Some(p) = e.problems.first() {
                s += &format!(" <-- {p}");
            } else {
                let q = &backup.qubes[e.index];
                if e.template != q.template {
                    s += &format!(
                        " <-- Template change to '{}'",
                        e.template.clone().unwrap_or_default()
                    );
                }
                if e.restore_as != e.name {
                    s += &format!(" <-- Will be renamed to '{}'", e.restore_as);
                }
            }
            s += "\n";
        }
        if let Some(h) = &self.dom0_home {
            s += &format!("dom0 home ({h}) will be restored\n");
        }
        s
    }
}

#[cfg(test)]
mod tests;
