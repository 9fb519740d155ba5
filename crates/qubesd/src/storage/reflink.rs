//! `file-reflink`: one image file per volume, copies by FICLONE (admin-api.md §7.1).
//!
//! Files of volume `<vid>` under the pool directory: `<vid>.img` (committed data),
//! `<vid>-dirty.img` (what a running qube writes), `<vid>-import.img` (an import in progress)
//! and revisions `<vid>.img.<N>@<YYYY-MM-DDTHH:MM:SS>Z`. A qube starts on a reflink of the
//! committed image (or of its template's), and a clean stop renames the dirty image over the
//! committed one after keeping the previous one as a revision. On a filesystem without
//! reflinks the pool refuses to be added unless `setup_check=False`, and then copies sparsely.

use std::path::{Path, PathBuf};

use super::fsutil;
use super::{Driver, Revision, SResult, Vol, io, not_implemented, pool_err};
use crate::model::Pool;

/// The `file-reflink` driver.
pub struct ReflinkDriver;

fn dir(pool: &Pool) -> PathBuf {
    PathBuf::from(pool.attr("dir_path").unwrap_or("/var/lib/qubes"))
}

struct Paths {
    vid: PathBuf,
    clean: PathBuf,
    dirty: PathBuf,
    import: PathBuf,
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn paths(v: &Vol) -> Paths {
    let vid = dir(&v.pool).join(&v.vid);
    Paths {
        clean: with_suffix(&vid, ".img"),
        dirty: with_suffix(&vid, "-dirty.img"),
        import: with_suffix(&vid, "-import.img"),
        vid,
    }
}

/// The committed image of a volume (what snapshots and clones start from).
pub fn clean_path(v: &Vol) -> PathBuf {
    paths(v).clean
}

fn revision_path(clean: &Path, r: &Revision) -> PathBuf {
    with_suffix(clean, &format!(".{}@{}Z", r.id, r.timestamp))
}

/// Revisions on disk: `<clean>.<N>@<timestamp>Z`, sorted by N.
fn revisions_of(clean: &Path) -> Vec<Revision> {
    let (Some(parent), Some(base)) = (clean.parent(), clean.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", base.to_string_lossy());
    let mut out: Vec<(u64, Revision)> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?.strip_suffix('Z')?;
            let (id, ts) = rest.split_once('@')?;
            let n: u64 = id.parse().ok()?;
            (ts.len() == 19 && ts.as_bytes()[10] == b'T').then(|| {
                (
                    n,
                    Revision {
                        id: id.to_string(),
                        timestamp: ts.to_string(),
                    },
                )
            })
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Keeps the committed image as the next revision (copy by reflink), unless none are kept.
fn add_revision(v: &Vol, clean: &Path) -> SResult<()> {
    if v.revisions_to_keep == 0 || !clean.exists() {
        return Ok(());
    }
    let revs = revisions_of(clean);
    let next = revs
        .last()
        .and_then(|r| r.id.parse::<u64>().ok())
        .map_or(1, |n| n + 1);
    let ts = fsutil::isodate(fsutil::mtime(clean).unwrap_or(0));
    let rev = Revision {
        id: next.to_string(),
        timestamp: ts,
    };
    fsutil::copy_file(clean, &revision_path(clean, &rev), None)
        .map(|_| ())
        .map_err(io("Cannot keep a revision of", clean))
}

/// Drops the oldest revisions beyond `keep`.
fn prune(clean: &Path, keep: i64) -> SResult<()> {
    let revs = revisions_of(clean);
    let keep = keep.max(0) as usize;
    if revs.len() > keep {
        for r in &revs[..revs.len() - keep] {
            let p = revision_path(clean, r);
            fsutil::remove(&p).map_err(io("Cannot remove", &p))?;
        }
    }
    Ok(())
}

/// Makes `from` the committed image: revision of the old one, prune, rename.
fn commit(v: &Vol, p: &Paths, from: &Path) -> SResult<()> {
    add_revision(v, &p.clean)?;
    prune(&p.clean, v.revisions_to_keep)?;
    std::fs::File::open(from)
        .and_then(|f| f.sync_all())
        .map_err(io("Cannot sync", from))?;
    fsutil::rename(from, &p.clean).map_err(io("Cannot commit", from))
}

fn remove_incomplete(p: &Paths) {
    // Temporary files of interrupted copies are `<vid>...img~<pid>`.
    if let (Some(parent), Some(base)) = (p.vid.parent(), p.vid.file_name()) {
        let base = base.to_string_lossy().into_owned();
        for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&base) && name.contains(".img") && name.contains('~') {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = fsutil::remove(&p.import);
}

/// Whether `dir_path` supports reflinks (used to pick the default pool's driver).
pub fn supported(dir_path: &Path) -> bool {
    fsutil::reflink_supported(dir_path)
}

impl Driver for ReflinkDriver {
    fn name(&self) -> &'static str {
        "file-reflink"
    }

    fn params(&self) -> &'static [(&'static str, bool)] {
        &[
            ("revisions_to_keep", false),
            ("dir_path", true),
            ("setup_check", false),
            ("ephemeral_volatile", false),
        ]
    }

    fn config(&self, name: &str, o: &[(String, String)]) -> SResult<Vec<(String, String)>> {
        let dir = super::option(o, "dir_path").unwrap_or("");
        // `os.path.abspath`: relative to the daemon's working directory.
        let abs = std::env::current_dir().unwrap_or_default().join(dir);
        let location = vec![("dir_path".to_string(), normalize(&abs))];
        super::standard_config(self, name, o, location)
    }

    fn setup(&self, pool: &Pool) -> SResult<()> {
        let d = dir(pool);
        let created = !d.exists();
        std::fs::create_dir_all(&d).map_err(io("Cannot create", &d))?;
        let check = pool
            .attr("setup_check")
            .and_then(crate::pycompat::py_bool)
            .unwrap_or(true);
        if check && !supported(&d) {
            if created {
                fsutil::remove_empty_dir(&d);
            }
            return Err(pool_err(format!(
                "The filesystem for {} does not support reflinks. If you can live with delays on \
                 VM startup/shutdown/etc. and wasted disk space, pass the 'setup_check=False' \
                 option.",
                qubes_api::exc::py_repr(&d.to_string_lossy())
            )));
        }
        for sub in ["appvms", "vm-templates"] {
            let p = d.join(sub);
            std::fs::create_dir_all(&p).map_err(io("Cannot create", &p))?;
        }
        Ok(())
    }

    fn pool_size_usage(&self, pool: &Pool) -> (Option<u64>, Option<u64>) {
        match fsutil::statvfs(&dir(pool)) {
            Some((s, u)) => (Some(s), Some(u)),
            None => (None, None),
        }
    }

    fn create(&self, v: &Vol) -> SResult<()> {
        let p = paths(v);
        self.remove_images(&p)?;
        if v.save_on_stop && !v.snap_on_start {
            fsutil::create_sparse(&p.clean, v.size).map_err(io("Cannot create", &p.clean))?;
        }
        Ok(())
    }

    fn remove(&self, v: &Vol) -> SResult<()> {
        let p = paths(v);
        self.remove_images(&p)?;
        if let Some(parent) = p.vid.parent() {
            fsutil::remove_empty_dir(parent);
        }
        Ok(())
    }

    fn verify(&self, v: &Vol) -> SResult<()> {
        let img = if v.snap_on_start {
            v.source.as_deref().map(clean_path)
        } else if v.save_on_stop {
            Some(paths(v).clean)
        } else {
            None
        };
        match img {
            Some(i) if !i.exists() => Err(pool_err(format!(
                "Missing image file {} for volume {}",
                qubes_api::exc::py_repr(&i.to_string_lossy()),
                v.vid
            ))),
            _ if v.snap_on_start && v.source.is_none() => {
                Err(pool_err(format!("Volume {} has no source volume", v.vid)))
            }
            _ => Ok(()),
        }
    }

    fn start(&self, v: &Vol) -> SResult<()> {
        let p = paths(v);
        remove_incomplete(&p);
        if v.snapshots_disabled() {
            prune(&p.clean, 0)?;
            if !self.is_dirty(v) {
                fsutil::rename(&p.clean, &p.dirty).map_err(io("Cannot start on", &p.clean))?;
            }
        } else if !self.is_dirty(v) {
            if v.snap_on_start {
                let src = v
                    .source
                    .as_deref()
                    .map(clean_path)
                    .ok_or_else(|| pool_err(format!("Volume {} has no source", v.vid)))?;
                // The hard link records which source image the snapshot came from
                // (is_outdated compares inodes).
                fsutil::hardlink(&src, &p.clean).map_err(io("Cannot link", &src))?;
                fsutil::copy_file(&p.clean, &p.dirty, None)
                    .map_err(io("Cannot snapshot", &p.clean))?;
            } else if v.save_on_stop {
                fsutil::copy_file(&p.clean, &p.dirty, None)
                    .map_err(io("Cannot snapshot", &p.clean))?;
            } else {
                fsutil::create_sparse(&p.dirty, v.size).map_err(io("Cannot create", &p.dirty))?;
            }
        }
        Ok(())
    }

    fn stop(&self, v: &Vol) -> SResult<()> {
        let p = paths(v);
        if self.is_dirty(v) {
            if v.snapshots_disabled() {
                fsutil::rename(&p.dirty, &p.clean).map_err(io("Cannot stop", &p.dirty))?;
            } else {
                commit(v, &p, &p.dirty)?;
            }
        } else if !v.save_on_stop {
            fsutil::remove(&p.dirty).map_err(io("Cannot remove", &p.dirty))?;
            fsutil::remove(&p.clean).map_err(io("Cannot remove", &p.clean))?;
        }
        Ok(())
    }

    fn path(&self, v: &Vol) -> String {
        paths(v).dirty.to_string_lossy().into_owned()
    }

    fn size(&self, v: &Vol) -> u64 {
        let p = paths(v);
        fsutil::file_size(&p.dirty)
            .or_else(|| fsutil::file_size(&p.clean))
            .unwrap_or(v.size)
    }

    fn usage(&self, v: &Vol) -> u64 {
        let p = paths(v);
        if p.dirty.exists() {
            fsutil::disk_usage(&p.dirty)
        } else {
            fsutil::disk_usage(&p.clean)
        }
    }

    fn revisions(&self, v: &Vol) -> Vec<Revision> {
        revisions_of(&paths(v).clean)
    }

    fn revert(&self, v: &Vol, id: &str) -> SResult<()> {
        if self.is_dirty(v) {
            return Err(pool_err(format!(
                "Cannot revert: {} is not cleanly stopped",
                v.vid
            )));
        }
        let p = paths(v);
        let rev = revisions_of(&p.clean)
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| not_implemented(format!("revision {id} not found")))?;
        let from = revision_path(&p.clean, &rev);
        add_revision(v, &p.clean)?;
        fsutil::rename(&from, &p.clean).map_err(io("Cannot revert to", &from))
    }

    fn resize(&self, v: &Vol, size: u64) -> SResult<()> {
        if !v.rw {
            return Err(pool_err(format!("Cannot resize: {} is read-only", v.vid)));
        }
        let p = paths(v);
        if p.dirty.exists() {
            fsutil::resize(&p.dirty, size).map_err(io("Cannot resize", &p.dirty))?;
            fsutil::update_loop_capacity(&p.dirty);
            return Ok(());
        }
        if v.save_on_stop && !v.snap_on_start {
            fsutil::copy_file(&p.clean, &p.clean, Some(size))
                .map_err(io("Cannot resize", &p.clean))?;
        }
        Ok(())
    }

    fn is_outdated(&self, v: &Vol) -> Option<bool> {
        if !v.snap_on_start {
            return Some(false);
        }
        let src = v.source.as_deref().map(clean_path)?;
        Some(fsutil::same_inode(&src, &paths(v).clean).is_some_and(|same| !same))
    }

    fn is_dirty(&self, v: &Vol) -> bool {
        v.save_on_stop && paths(v).dirty.exists()
    }

    fn import_data(&self, v: &Vol, size: u64) -> SResult<PathBuf> {
        if !v.save_on_stop {
            return Err(not_implemented(format!(
                "Cannot import_data: {} is not save_on_stop",
                v.vid
            )));
        }
        let p = paths(v);
        fsutil::create_sparse(&p.import, size).map_err(io("Cannot create", &p.import))?;
        Ok(p.import)
    }

    fn import_data_end(&self, v: &Vol, success: bool) -> SResult<()> {
        let p = paths(v);
        if success {
            commit(v, &p, &p.import)
        } else {
            fsutil::remove(&p.import).map_err(io("Cannot remove", &p.import))
        }
    }

    fn export(&self, v: &Vol) -> SResult<PathBuf> {
        if !v.save_on_stop {
            return Err(not_implemented(format!(
                "Cannot export: {} is not save_on_stop",
                v.vid
            )));
        }
        Ok(paths(v).clean)
    }

    fn clones_by_copy(&self, dst: &Vol, _src: &Vol) -> SResult<bool> {
        Ok(dst.save_on_stop)
    }

    fn import_volume(&self, _dst: &Vol, _src: &Vol, _src_path: &Path) -> SResult<()> {
        // Only volumes that keep no data get here (clones_by_copy): nothing to import.
        Ok(())
    }
}

impl ReflinkDriver {
    fn remove_images(&self, p: &Paths) -> SResult<()> {
        remove_incomplete(p);
        prune(&p.clean, 0)?;
        for f in [&p.clean, &p.dirty] {
            fsutil::remove(f).map_err(io("Cannot remove", f))?;
        }
        Ok(())
    }
}

/// `os.path.abspath`-like normalisation without touching the filesystem.
pub fn normalize(p: &Path) -> String {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    let mut s = String::from("/");
    s.push_str(
        &out.iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    );
    s
}

/// The driver of a fresh system's `varlibqubes` pool: `file-reflink` where the filesystem
/// can reflink, else `file` (as `Qubes.load_initial_values` chooses).
pub fn default_pool_driver(base: &Path) -> &'static str {
    if base.is_dir() && supported(base) {
        "file-reflink"
    } else {
        "file"
    }
}
