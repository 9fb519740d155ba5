//! Backup profiles: `/etc/qubes/backup/<id>.conf` (admin-api.md §9.1, §9.2), and which qubes a
//! profile selects.
//!
//! Loading follows the reference's `_load_backup_profile` step by step, so the same profile
//! gives the same exception: the id, the file, the required keys, the destination qube, the
//! passphrase, then the selection. Where the reference crashes (a profile that is not a YAML
//! mapping, a list that is not a list of names, a file that is not a regular file) this gives
//! a `QubesException` that says what is wrong. Unknown keys are ignored, as the reference does;
//! they are listed in [`Profile::unknown_keys`] for the log.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_norway::Value;

use crate::error::{BackupError, Result};

/// Where qubesd looks for profiles unless told otherwise (`qubes.config.backup_profile_dir`).
pub const DEFAULT_PROFILE_DIR: &str = "/etc/qubes/backup";

/// The largest profile file read. A profile is a few lines; this bounds what a hostile or
/// broken file can make the daemon allocate.
pub const MAX_PROFILE_SIZE: u64 = 1 << 20;

/// The compression filter used when a profile says `compression: true` or nothing.
pub const DEFAULT_COMPRESSION_FILTER: &str = "gzip";

/// What a profile says about compression, as the backup header records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// Whether the data is compressed.
    pub compressed: bool,
    /// The filter program (`compression-filter=` in the header, written even when not
    /// compressed, as the reference does).
    pub filter: String,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            compressed: true,
            filter: DEFAULT_COMPRESSION_FILTER.into(),
        }
    }
}

/// Where the passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// `passphrase_text`: the passphrase itself (`None` when the key is present but null: the
    /// backup then fails with `No passphrase set`, as in the reference).
    Text(Option<String>),
    /// `passphrase_vm`: ask this qube through `qubes.BackupPassphrase+<profile id>`.
    Vm(String),
}

/// One entry of `include` or `exclude`: a qube name, `@tag:<tag>` or `@type:<class>` (legacy
/// `$` spellings already turned into `@`, as the reference does: every `$` of the entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub String);

impl Pattern {
    /// Whether `qube` matches (`qubes.utils.match_vm_name_with_special`).
    pub fn matches<Q: SelectableQube + ?Sized>(&self, qube: &Q) -> bool {
        if let Some(tag) = self.0.strip_prefix("@tag:") {
            qube.has_tag(tag)
        } else if let Some(class) = self.0.strip_prefix("@type:") {
            class == qube.class()
        } else {
            self.0 == qube.name()
        }
    }
}

/// A parsed profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile id (file name without `.conf`).
    pub id: String,
    /// `destination_vm`: a qube name; dom0 means a file in dom0.
    pub destination_vm: String,
    /// `destination_path`: a directory or file in dom0, or the first line given to
    /// `qubes.Backup` in the destination qube.
    pub destination_path: String,
    /// `include`: `None` means every qube with `include_in_backups`.
    pub include: Option<Vec<Pattern>>,
    /// `exclude`, applied after `include`.
    pub exclude: Vec<Pattern>,
    /// `compression`.
    pub compression: Compression,
    /// `passphrase_text` or `passphrase_vm` (`passphrase_text` wins when both are given).
    pub passphrase: Option<PassphraseSource>,
    /// Top-level keys the reference does not know; ignored like the reference does.
    pub unknown_keys: Vec<String>,
}

/// What qubesd knows of a qube when it selects qubes for a backup.
pub trait SelectableQube {
    /// The name.
    fn name(&self) -> &str;
    /// The class name (`AppVM`, `TemplateVM`, `AdminVM`, ...).
    fn class(&self) -> &str;
    /// The qid (0 for dom0).
    fn qid(&self) -> u32;
    /// Whether it carries this tag.
    fn has_tag(&self, tag: &str) -> bool;
    /// The `include_in_backups` property.
    fn include_in_backups(&self) -> bool;
}

/// A plain description of a qube, for callers that have no type of their own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QubeDesc {
    /// Name.
    pub name: String,
    /// Class name.
    pub class: String,
    /// qid.
    pub qid: u32,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// `include_in_backups`.
    pub include_in_backups: bool,
}

impl SelectableQube for QubeDesc {
    fn name(&self) -> &str {
        &self.name
    }
    fn class(&self) -> &str {
        &self.class
    }
    fn qid(&self) -> u32 {
        self.qid
    }
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.contains(tag)
    }
    fn include_in_backups(&self) -> bool {
        self.include_in_backups
    }
}

/// Where the backup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file in dom0; the path still needs [`crate::write::resolve_dom0_target`].
    Dom0 {
        /// `destination_path` as given.
        path: String,
    },
    /// The standard input of `qubes.Backup` in a qube.
    Qube {
        /// The qube.
        name: String,
        /// `destination_path`, sent as the service's first line.
        path: String,
    },
}

/// Which qubes a profile selects, as indices into the slice given to [`Profile::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Selected qubes in the reference's backup order (dom0, if selected, last).
    pub selected: Vec<usize>,
    /// The other qubes, sorted by name (Info's "VMs not selected for backup").
    pub not_selected: Vec<usize>,
}

/// A profile checked against the current qubes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The destination.
    pub target: Target,
    /// The passphrase source; `None` only when it was not asked for (Info).
    pub passphrase: Option<PassphraseSource>,
    /// The selected qubes.
    pub selection: Selection,
    /// Compression settings.
    pub compression: Compression,
}

/// Refuses ids the reference refuses (`ProtocolError`). A NUL (impossible on the wire) is
/// refused the same way rather than reaching the file system.
pub fn check_profile_id(id: &str) -> Result<()> {
    if id.contains('/') {
        return Err(BackupError::Protocol(
            "Backup profile ID must not contain forward slash character".into(),
        ));
    }
    if id.contains('\0') {
        return Err(BackupError::Protocol(
            "Backup profile ID must not contain NUL character".into(),
        ));
    }
    Ok(())
}

/// The file of profile `id` in `dir`.
pub fn profile_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.conf"))
}

fn invalid(what: &str) -> BackupError {
    BackupError::qubes(format!("Invalid backup profile - {what}"))
}

/// PyYAML (YAML 1.1) reads these plain words as booleans; serde_norway (YAML 1.2) as strings.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => Some(true),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn string_value(v: &Value, key: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(invalid(&format!("'{key}' must be a string"))),
    }
}

fn patterns(v: &Value, key: &str) -> Result<Vec<Pattern>> {
    let Value::Sequence(items) = v else {
        return Err(invalid(&format!("'{key}' must be a list of qube names")));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(Pattern(s.replace('$', "@"))),
            _ => Err(invalid(&format!("'{key}' must be a list of qube names"))),
        })
        .collect()
}

fn compression(v: Option<&Value>) -> Result<Compression> {
    let filter_ok = |f: &str| f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let flag = |compressed| Compression {
        compressed,
        filter: DEFAULT_COMPRESSION_FILTER.into(),
    };
    match v {
        None => Ok(Compression::default()),
        Some(Value::Null) => Ok(flag(false)),
        Some(Value::Bool(b)) => Ok(flag(*b)),
        Some(Value::Number(n)) => Ok(flag(n.as_f64().is_some_and(|f| f != 0.0))),
        Some(Value::String(s)) => match yaml11_bool(s) {
            Some(b) => Ok(flag(b)),
            // Only names the restore side accepts in a header: anything else would make a
            // backup nobody can restore.
            None if filter_ok(s) => Ok(Compression {
                compressed: !s.is_empty(),
                filter: s.clone(),
            }),
            None => Err(invalid(&format!(
                "invalid compression filter {}",
                qubes_api::exc::py_repr(s)
            ))),
        },
        Some(_) => Err(invalid(
            "'compression' must be true, false or a program name",
        )),
    }
}

/// The deepest `[`/`{` nesting accepted. The YAML parser takes time quadratic in this depth
/// (100 000 levels, 200 kB, took minutes), so deeper text is refused before parsing.
const MAX_FLOW_DEPTH: usize = 64;

/// The deepest flow-collection nesting in `text`, skipping quoted scalars and comments. It
/// may count brackets of a plain scalar too; that only makes the check stricter.
fn flow_depth(text: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            // A quote opens a scalar only where a scalar may start; `it's` is plain text.
            q @ (b'\'' | b'"') if starts_scalar(&text[..i]) => {
                i += 1;
                while i < text.len() && text[i] != q {
                    if q == b'"' && text[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    max
}

/// Whether a scalar may start after `before` (only spaces since a line start or an indicator).
fn starts_scalar(before: &[u8]) -> bool {
    match before.iter().rev().find(|b| **b != b' ' && **b != b'\t') {
        None => true,
        Some(b) => matches!(b, b'\n' | b':' | b'[' | b'{' | b',' | b'-' | b'?'),
    }
}

/// Reads at most [`MAX_PROFILE_SIZE`] bytes of a regular file, without blocking on a FIFO.
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let unreadable = |e: std::io::Error| invalid(&format!("cannot read {}: {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(invalid(&format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut data = Vec::new();
    (&file as &File)
        .take(MAX_PROFILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(unreadable)?;
    if data.len() as u64 > MAX_PROFILE_SIZE {
        return Err(invalid(&format!(
            "{} is larger than {} bytes",
            path.display(),
            MAX_PROFILE_SIZE
        )));
    }
    Ok(data)
}

impl Profile {
    /// Loads profile `id` from `dir`: the id check, `Backup profile does not exist`, then the
    /// file's keys (see [`Profile::parse`]).
    pub fn load(dir: &Path, id: &str) -> Result<Profile> {
        check_profile_id(id)?;
        let path = profile_path(dir, id);
        // os.path.exists: anything that cannot be stat'ed (dangling link, no permission)
        // does not exist.
        if std::fs::metadata(&path).is_err() {
            return Err(BackupError::ProfileNotFound(id.to_string()));
        }
        Profile::parse(id, &read_bounded(&path)?)
    }

    /// Parses a profile's YAML text.
    pub fn parse(id: &str, untrusted: &[u8]) -> Result<Profile> {
        if flow_depth(untrusted) > MAX_FLOW_DEPTH {
            return Err(invalid("nested too deeply"));
        }
        let value: Value = serde_norway::from_slice(untrusted)
            .map_err(|e| invalid(&format!("not valid YAML: {e}")))?;
        let Value::Mapping(map) = value else {
            return Err(invalid("not a YAML mapping"));
        };
        let missing = |key: &str| invalid(&format!("missing '{key}'"));
        let get = |key: &str| map.get(key);
        let destination_vm = get("destination_vm").ok_or_else(|| missing("destination_vm"))?;
        let destination_path =
            get("destination_path").ok_or_else(|| missing("destination_path"))?;
        let include = get("include").ok_or_else(|| missing("include"))?;
        let include = match include {
            Value::Null => None,
            v => Some(patterns(v, "include")?),
        };
        let exclude = match get("exclude") {
            None => Vec::new(),
            Some(v) => patterns(v, "exclude")?,
        };
        let compression = compression(get("compression"))?;
        let destination_vm = string_value(destination_vm, "destination_vm")?;
        let destination_path = string_value(destination_path, "destination_path")?;
        let passphrase = if let Some(v) = get("passphrase_text") {
            Some(PassphraseSource::Text(match v {
                Value::Null => None,
                v => Some(string_value(v, "passphrase_text")?),
            }))
        } else if let Some(v) = get("passphrase_vm") {
            Some(PassphraseSource::Vm(string_value(v, "passphrase_vm")?))
        } else {
            None
        };
        const KNOWN: [&str; 7] = [
            "destination_vm",
            "destination_path",
            "include",
            "exclude",
            "compression",
            "passphrase_text",
            "passphrase_vm",
        ];
        let unknown_keys = map
            .keys()
            .map(|k| match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .collect();
        Ok(Profile {
            id: id.to_string(),
            destination_vm,
            destination_path,
            include,
            exclude,
            compression,
            passphrase,
            unknown_keys,
        })
    }

    /// Checks the profile against the current qubes, in the reference's order: the
    /// destination qube, then (when `need_passphrase`; Info does not) the passphrase, then
    /// the selection.
    pub fn plan<Q: SelectableQube>(&self, qubes: &[Q], need_passphrase: bool) -> Result<Plan> {
        let find = |name: &str| qubes.iter().find(|q| q.name() == name);
        let dest = find(&self.destination_vm).ok_or_else(|| {
            BackupError::qubes("Invalid destination_vm specified in backup profile")
        })?;
        let target = if dest.class() == "AdminVM" {
            Target::Dom0 {
                path: self.destination_path.clone(),
            }
        } else {
            Target::Qube {
                name: dest.name().to_string(),
                path: self.destination_path.clone(),
            }
        };
        let passphrase = if need_passphrase {
            match &self.passphrase {
                Some(PassphraseSource::Vm(vm)) if find(vm).is_none() => {
                    return Err(invalid("invalid passphrase_vm"));
                }
                Some(p) => Some(p.clone()),
                None => {
                    return Err(invalid(
                        "you need to specify passphrase_text or passphrase_vm",
                    ));
                }
            }
        } else {
            None
        };
        Ok(Plan {
            target,
            passphrase,
            selection: select(self.include.as_deref(), &self.exclude, qubes),
            compression: self.compression.clone(),
        })
    }
}

/// Selects qubes as `_load_backup_profile` and `Backup.__init__` do.
///
/// `include: None` takes every qube with `include_in_backups` in name order (the order of
/// `app.domains`); a list takes the matching qubes in the iteration order of the Python set
/// the reference builds (hashed by qid, see [`python_set_order`]). Excluded names are
/// dropped; dom0, when selected, comes last (its home is written after every qube).
pub fn select<Q: SelectableQube>(
    include: Option<&[Pattern]>,
    exclude: &[Pattern],
    qubes: &[Q],
) -> Selection {
    let mut by_name: Vec<usize> = (0..qubes.len()).collect();
    by_name.sort_by(|&a, &b| qubes[a].name().cmp(qubes[b].name()));
    let candidates: Vec<usize> = match include {
        None => by_name
            .iter()
            .copied()
            .filter(|&i| qubes[i].include_in_backups())
            .collect(),
        Some(patterns) => {
            let matching: Vec<usize> = by_name
                .iter()
                .copied()
                .filter(|&i| patterns.iter().any(|p| p.matches(&qubes[i])))
                .collect();
            let order =
                python_set_order(&matching.iter().map(|&i| qubes[i].qid()).collect::<Vec<_>>());
            order
                .into_iter()
                .filter_map(|qid| matching.iter().copied().find(|&i| qubes[i].qid() == qid))
                .collect()
        }
    };
    let excluded = |i: usize| exclude.iter().any(|p| p.matches(&qubes[i]));
    let mut selected: Vec<usize> = candidates.into_iter().filter(|&i| !excluded(i)).collect();
    // dom0's files come last whatever the order of the set.
    if let Some(pos) = selected.iter().position(|&i| qubes[i].qid() == 0) {
        let dom0 = selected.remove(pos);
        selected.push(dom0);
    }
    let not_selected = by_name
        .into_iter()
        .filter(|i| !selected.contains(i))
        .collect();
    Selection {
        selected,
        not_selected,
    }
}

/// The iteration order of a CPython (3.11–3.13) `set` of objects hashed by these ints,
/// added in this order (`setobject.c`: open addressing with 9 linear probes, then
/// perturbation; the table grows to 4 × used when 3/5 full).
pub fn python_set_order(hashes: &[u32]) -> Vec<u32> {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;
    fn insert(table: &mut [Option<u32>], h: u32) {
        let mask = table.len() - 1;
        let mut perturb = h as usize;
        let mut i = (h as usize) & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for j in 0..=probes {
                match table[i + j] {
                    None => {
                        table[i + j] = Some(h);
                        return;
                    }
                    Some(x) if x == h => return,
                    Some(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb)) & mask;
        }
    }
    let mut table: Vec<Option<u32>> = vec![None; 8];
    let mut used = 0usize;
    for &h in hashes {
        if table.contains(&Some(h)) {
            continue;
        }
        insert(&mut table, h);
        used += 1;
        let mask = table.len() - 1;
        if used * 5 >= mask * 3 {
            let minused = if used > 50000 { used * 2 } else { used * 4 };
            let mut size = 8;
            while size <= minused {
                size <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; size]);
            for h in old.into_iter().flatten() {
                insert(&mut table, h);
            }
        }
    }
    table.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests;
