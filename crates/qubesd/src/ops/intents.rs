//! Disk work that must not outlive a crash half done. Before qubesd lays out a new qube's
//! volumes, or before it commits a removal whose data is deleted afterwards, it records an
//! intent (the qube's identity and volume configuration) durably in
//! `<state dir>/qubesd-intents/`. The intent is cleared once the work is committed and done.
//! At start, an intent whose qube is not in `qubes.xml` means the creation never committed or
//! the removal committed but did not finish: its volumes and directory are removed — unless a
//! qube of that name exists (made again since), whose data is never touched. Nothing else is
//! ever removed: data of qubes qubesd did not touch stays, whatever `qubes.xml` says.
//!
//! Also at start: interrupted durable writes (`<file>~<16 hex digits>`) and import files
//! (`<volume>-import.img`) in the qube directories are removed; no write or import can be
//! under way before the daemon serves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::Core;
use crate::model::{Class, Domain, VolumeConfig};

/// Directory of the intents, below the state directory.
const DIR: &str = "qubesd-intents";

/// Records that `d`'s volumes exist only if `d` does; returns the intent's file.
pub fn record(state_dir: &Path, d: &Domain) -> std::io::Result<PathBuf> {
    let dir = state_dir.join(DIR);
    std::fs::create_dir_all(&dir)?;
    let mut text = format!("qube\t{}\t{}\t{}\n", d.name, d.class.name(), d.uuid());
    for v in &d.volumes {
        text.push_str("volume");
        for (k, val) in &v.attrs {
            if [k, val].iter().any(|s| s.contains(['\t', '\n', '='])) {
                return Err(std::io::Error::other("volume attribute not recordable"));
            }
            text.push_str(&format!("\t{k}={val}"));
        }
        text.push('\n');
    }
    let path = dir.join(format!("{:016x}.intent", rand::random::<u64>()));
    crate::durable::write_atomic(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}

/// Forgets an intent (its work is committed and done, or undone).
pub fn clear(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing {}: {e}", path.display());
    }
}

/// Parses an intent: the qube it was recorded for, with its class, uuid and volumes.
fn parse(text: &str) -> Option<Domain> {
    let mut lines = text.lines();
    let mut head = lines.next()?.split('\t');
    if head.next()? != "qube" {
        return None;
    }
    let (name, class, uuid) = (head.next()?, head.next()?, head.next()?);
    crate::names::validate_name(name).ok()?;
    let mut d = Domain::new(Class::from_name(class)?, name, 0);
    d.props.insert("uuid".into(), uuid.to_string());
    for line in lines {
        let mut fields = line.split('\t');
        if fields.next()? != "volume" {
            return None;
        }
        let attrs = fields
            .map(|f| {
                f.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        d.volumes.push(VolumeConfig { attrs });
    }
    Some(d)
}

/// Finishes or undoes what a crash interrupted (see the module docs). Runs before the daemon
/// serves.
pub fn recover(core: &Core) {
    let state_dir = core.env().state_dir.clone();
    let st = core.snapshot();
    if let Ok(entries) = std::fs::read_dir(state_dir.join(DIR)) {
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".intent") {
                // An intent being written when the crash came: nothing was done for it yet.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let Some(d) = parse(&text) else {
                tracing::warn!("ignoring unreadable intent {}", path.display());
                continue;
            };
            // A qube of that name in qubes.xml keeps everything under its name, whichever
            // qube the intent was for: only the volumes of a name nobody has are removed.
            if st.domain(&d.name).is_none() {
                tracing::info!(
                    "removing the volumes of {}, left by an interrupted creation or removal",
                    d.name
                );
                let vols = crate::storage::volumes(&st, &d);
                let qube_dir = state_dir.join(d.class.dir_prefix()).join(&d.name);
                crate::storage::remove_from_disk(vols, qube_dir)();
            }
            clear(&path);
        }
    }
    sweep_temporaries(&st, &state_dir);
}

/// Removes interrupted durable writes and import files from the qube directories of the
/// state directory and of every file-based pool.
fn sweep_temporaries(st: &Arc<crate::model::State>, state_dir: &Path) {
    let mut roots: Vec<PathBuf> = vec![state_dir.to_path_buf()];
    roots.extend(
        st.pools
            .iter()
            .filter(|p| matches!(p.attr("driver"), Some("file") | Some("file-reflink")))
            .filter_map(|p| p.attr("dir_path").map(PathBuf::from)),
    );
    roots.sort();
    roots.dedup();
    for root in roots {
        for class_dir in ["appvms", "vm-templates"] {
            let Ok(qubes) = std::fs::read_dir(root.join(class_dir)) else {
                continue;
            };
            for q in qubes.flatten().filter(|q| q.path().is_dir()) {
                let Ok(files) = std::fs::read_dir(q.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if is_temporary(&name) {
                        tracing::info!("removing {}, left by an interrupted write", name);
                        let _ = std::fs::remove_file(f.path());
                    }
                }
            }
        }
    }
}

/// `<name>~<16 hex digits>` (a durable write's temporary) or `<volume>-import.img`.
fn is_temporary(name: &str) -> bool {
    let durable_tmp = name.rsplit_once('~').is_some_and(|(base, hex)| {
        !base.is_empty() && hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    durable_tmp || name.ends_with("-import.img")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_read_back_and_temporaries_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Domain::new(Class::AppVM, "work", 3);
        d.props.insert("uuid".into(), "u-1".into());
        d.volumes.push(VolumeConfig {
            attrs: vec![
                ("name".into(), "private".into()),
                ("pool".into(), "varlibqubes".into()),
                ("vid".into(), "appvms/work/private".into()),
            ],
        });
        let path = record(dir.path(), &d).unwrap();
        let back = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            (back.name.as_str(), back.class, back.uuid()),
            ("work", Class::AppVM, "u-1")
        );
        assert_eq!(back.volumes, d.volumes);
        clear(&path);
        assert!(!path.exists());
        assert!(parse("qube\t../etc\tAppVM\tu\n").is_none());
        assert!(is_temporary("private.img~0123456789abcdef"));
        assert!(is_temporary("private-import.img"));
        assert!(!is_temporary("private.img"));
        assert!(!is_temporary("notes.txt~"));
        assert!(!is_temporary("private.img.1@2024-01-01T00:00:00Z"));
    }
}
