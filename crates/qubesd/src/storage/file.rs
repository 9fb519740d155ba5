//! `file`: the legacy image-file driver (admin-api.md §7.1).
//!
//! Volume `<vid>` is `<dir>/<vid>.img`; copy-on-write files are `<vid>-cow.img`, and the one
//! revision the driver keeps is the previous cow file, `<vid>-cow.img.old`. A snap_on_start
//! volume has no image of its own: it reads its source's image through a cow file that is
//! dropped at stop. A save_on_stop volume's cow file rotates to `.old` at each clean stop.
//! The reference stacks these files with device-mapper snapshots for a running qube; the
//! hypervisor gets the same device-mapper paths from us, and the layout on disk, revision
//! and size rules are the reference's.

use std::path::{Path, PathBuf};

use qubes_api::QubesError;

use super::fsutil;
use super::{Driver, Revision, SResult, Vol, io, not_implemented, pool_err};
use crate::model::Pool;

/// The `file` driver.
pub struct FileDriver;

fn dir(pool: &Pool) -> PathBuf {
    PathBuf::from(pool.attr("dir_path").unwrap_or("/var/lib/qubes"))
}

fn img(pool: &Pool, vid: &str) -> PathBuf {
    dir(pool).join(format!("{vid}.img"))
}

/// The image a volume reads: its own, or its source's for a snapshot.
fn path(v: &Vol) -> PathBuf {
    match (&v.source, v.snap_on_start) {
        (Some(src), true) => img(&v.pool, &src.vid),
        _ => img(&v.pool, &v.vid),
    }
}

fn cow(v: &Vol) -> PathBuf {
    dir(&v.pool).join(format!("{}-cow.img", v.vid))
}

fn import_path(v: &Vol) -> PathBuf {
    dir(&v.pool).join(format!("{}-import.img", v.vid))
}

fn old(v: &Vol) -> PathBuf {
    let mut s = cow(v).into_os_string();
    s.push(".old");
    PathBuf::from(s)
}

/// `int()` of a pool option (defaults when absent); a bad number is the reference's generic
/// failure.
pub fn int_option(v: Option<&str>, default: i64) -> SResult<i64> {
    match v {
        None => Ok(default),
        Some(s) => crate::pycompat::py_int(s)
            .ok_or_else(|| QubesError::silent(format!("invalid literal for int(): {s}"))),
    }
}

/// A bool-word pool option, written back as `True`/`False`.
pub fn bool_option(v: Option<&str>) -> SResult<&'static str> {
    match v.map(crate::pycompat::py_bool) {
        None => Ok("False"),
        Some(Some(true)) => Ok("True"),
        Some(Some(false)) => Ok("False"),
        Some(None) => Err(QubesError::silent("invalid bool value")),
    }
}

/// `/dev/mapper` name component the reference derives from a path.
fn dev_path(p: &Path) -> String {
    p.to_string_lossy().replace('/', "_")
}

impl Driver for FileDriver {
    fn name(&self) -> &'static str {
        "file"
    }

    fn params(&self) -> &'static [(&'static str, bool)] {
        &[
            ("revisions_to_keep", false),
            ("dir_path", true),
            ("ephemeral_volatile", false),
        ]
    }

    fn config(&self, name: &str, o: &[(String, String)]) -> SResult<Vec<(String, String)>> {
        let dir = super::option(o, "dir_path").unwrap_or("");
        let location = vec![(
            "dir_path".to_string(),
            super::reflink::normalize(Path::new(dir)),
        )];
        super::standard_config(self, name, o, location)
    }

    fn check_pool_revisions(&self, n: i64) -> SResult<()> {
        if n > 1 {
            return Err(not_implemented(
                "FilePool supports maximum 1 volume revision to keep",
            ));
        }
        Ok(())
    }

    fn setup(&self, pool: &Pool) -> SResult<()> {
        let d = dir(pool);
        for p in [d.clone(), d.join("appvms"), d.join("vm-templates")] {
            std::fs::create_dir_all(&p).map_err(io("Cannot create", &p))?;
        }
        Ok(())
    }

    fn pool_size_usage(&self, pool: &Pool) -> (Option<u64>, Option<u64>) {
        let (s, u) = fsutil::statvfs(&dir(pool)).unwrap_or((0, 0));
        (Some(s), Some(u))
    }

    fn create(&self, v: &Vol) -> SResult<()> {
        if v.snap_on_start && v.save_on_stop {
            return Err(not_implemented(
                "snap_on_start + save_on_stop not supported by file driver",
            ));
        }
        if !v.snap_on_start {
            // A volume of its own needs a size: a kernel volume put in a file pool has none
            // (the reference fails the same check with an assertion and no answer).
            if v.size == 0 {
                return Err(pool_err("Volume size must be > 0"));
            }
            let p = path(v);
            if p.exists() {
                return Err(pool_err(format!("Volume {} already exists", p.display())));
            }
            fsutil::create_sparse(&p, v.size).map_err(io("Cannot create", &p))?;
        }
        Ok(())
    }

    fn remove(&self, v: &Vol) -> SResult<()> {
        let mut files = Vec::new();
        if !v.snap_on_start {
            files.push(path(v));
        }
        if v.snap_on_start || v.save_on_stop {
            files.push(cow(v));
            files.push(old(v));
        }
        files.push(import_path(v));
        for f in &files {
            fsutil::remove(f).map_err(io("Cannot remove", f))?;
        }
        if let Some(parent) = img(&v.pool, &v.vid).parent() {
            fsutil::remove_empty_dir(parent);
        }
        Ok(())
    }

    fn verify(&self, v: &Vol) -> SResult<()> {
        let p = path(v);
        if !p.exists() && (v.snap_on_start || v.save_on_stop) {
            return Err(pool_err(format!("Missing image file: {}.", p.display())));
        }
        Ok(())
    }

    fn start(&self, v: &Vol) -> SResult<()> {
        if !v.save_on_stop && !v.snap_on_start {
            // Volatile: a fresh empty image each start.
            let p = path(v);
            return fsutil::create_sparse(&p, v.size).map_err(io("Cannot create", &p));
        }
        let c = cow(v);
        if !v.save_on_stop {
            fsutil::remove(&c).map_err(io("Cannot remove", &c))?;
        }
        if !c.exists() && !v.snapshots_disabled() {
            fsutil::create_sparse(&c, v.size).map_err(io("Cannot create", &c))?;
        }
        if !v.snap_on_start && !path(v).exists() {
            return Err(pool_err(format!("Missing file: {}", path(v).display())));
        }
        Ok(())
    }

    fn stop(&self, v: &Vol) -> SResult<()> {
        let c = cow(v);
        if v.save_on_stop {
            if v.rw && !v.snapshots_disabled() {
                // commit: the cow file becomes the one kept revision.
                if c.exists() {
                    if v.revisions_to_keep > 0 {
                        fsutil::rename(&c, &old(v)).map_err(io("Cannot commit", &c))?;
                    } else {
                        fsutil::remove(&c).map_err(io("Cannot remove", &c))?;
                    }
                }
                fsutil::create_sparse(&c, self.size(v)).map_err(io("Cannot create", &c))?;
            } else if !v.rw {
                fsutil::remove(&c).map_err(io("Cannot remove", &c))?;
            }
        } else if v.snap_on_start {
            fsutil::remove(&c).map_err(io("Cannot remove", &c))?;
        } else {
            let p = path(v);
            fsutil::remove(&p).map_err(io("Cannot remove", &p))?;
        }
        Ok(())
    }

    fn path(&self, v: &Vol) -> String {
        path(v).to_string_lossy().into_owned()
    }

    fn block_device(&self, v: &Vol) -> Option<String> {
        if !v.snap_on_start {
            if !v.save_on_stop || v.snapshots_disabled() {
                return Some(self.path(v));
            }
            return Some(format!("/dev/mapper/origin-{}", dev_path(&path(v))));
        }
        let src_cow = dir(&v.pool).join(format!("{}-cow.img", v.source.as_ref()?.vid));
        Some(format!(
            "/dev/mapper/snapshot-{}-{}-{}",
            dev_path(&path(v)),
            dev_path(&src_cow),
            dev_path(&cow(v))
        ))
    }

    fn size(&self, v: &Vol) -> u64 {
        fsutil::file_size(&path(v)).unwrap_or(v.size)
    }

    fn usage(&self, v: &Vol) -> u64 {
        let mut u = 0;
        if v.save_on_stop || v.snap_on_start {
            u += fsutil::disk_usage(&cow(v));
        }
        if v.save_on_stop || !v.snap_on_start {
            u += fsutil::disk_usage(&path(v));
        }
        u
    }

    fn revisions(&self, v: &Vol) -> Vec<Revision> {
        match fsutil::ctime(&old(v)) {
            Some(t) => vec![Revision {
                id: "old".into(),
                timestamp: fsutil::isodate(t),
            }],
            None => Vec::new(),
        }
    }

    fn revert(&self, _v: &Vol, _id: &str) -> SResult<()> {
        Err(not_implemented("file pool does not support revert"))
    }

    fn resize(&self, v: &Vol, size: u64) -> SResult<()> {
        if !v.rw {
            return Err(pool_err(format!(
                "Can not resize readonly volume {}",
                v.vid
            )));
        }
        if v.snap_on_start {
            // sic: the reference's message lacks a space.
            return Err(pool_err(
                "Cannot resize volume based on a template - resizethe template instead",
            ));
        }
        let p = path(v);
        fsutil::resize(&p, size).map_err(io("Cannot resize", &p))?;
        fsutil::update_loop_capacity(&p);
        Ok(())
    }

    fn is_outdated(&self, _v: &Vol) -> Option<bool> {
        Some(false)
    }

    fn is_dirty(&self, v: &Vol) -> bool {
        // A cow file with data in it means writes that were not committed.
        v.save_on_stop && fsutil::disk_usage(&cow(v)) > 0
    }

    fn import_data(&self, v: &Vol, size: u64) -> SResult<PathBuf> {
        if !v.save_on_stop {
            return Err(pool_err(format!(
                "Can not import into save_on_stop=False volume {}",
                v.vid
            )));
        }
        let p = import_path(v);
        // Another import is still being written (the reference fails without a reply).
        if p.exists() {
            return Err(pool_err(format!("Volume {} already exists", p.display())));
        }
        fsutil::create_sparse(&p, size).map_err(io("Cannot create", &p))?;
        Ok(p)
    }

    fn import_data_end(&self, v: &Vol, success: bool) -> SResult<()> {
        let p = import_path(v);
        if success {
            fsutil::rename(&p, &path(v)).map_err(io("Cannot commit", &p))
        } else {
            fsutil::remove(&p).map_err(io("Cannot remove", &p))
        }
    }

    fn export(&self, v: &Vol) -> SResult<PathBuf> {
        if v.running {
            return Err(pool_err("file pool cannot export running volumes"));
        }
        if self.is_dirty(v) {
            return Err(pool_err("file pool cannot export dirty volumes"));
        }
        Ok(path(v))
    }

    fn clones_by_copy(&self, dst: &Vol, src: &Vol) -> SResult<bool> {
        if src.snap_on_start {
            return Err(pool_err(format!(
                "Can not import snapshot volume {} in to pool {} ",
                src.vid, dst.pool.name
            )));
        }
        Ok(dst.save_on_stop)
    }

    fn import_volume(&self, _dst: &Vol, _src: &Vol, _src_path: &Path) -> SResult<()> {
        // Only volumes that keep no data get here (clones_by_copy): nothing to import.
        Ok(())
    }

    fn check_volume_revisions(&self, _v: &Vol, n: i64) -> SResult<()> {
        if !(-1..=1).contains(&n) {
            return Err(not_implemented(
                "FileVolume supports maximum 1 volume revision to keep",
            ));
        }
        Ok(())
    }
}
