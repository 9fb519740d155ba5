//! `linux-kernel`: installed kernels as read-only volumes (admin-api.md §7.1).
//!
//! The pool directory holds one directory per kernel version with `vmlinuz`, `initramfs` and
//! `modules.img`; a qube's kernel volume is the directory named by its `kernel` property.
//! Nothing here is ever written.

use std::path::{Path, PathBuf};

use qubes_api::QubesError;

use super::{Driver, Revision, SResult, Vol, pool_err};
use crate::model::Pool;

/// The `linux-kernel` driver.
pub struct KernelDriver;

fn dir(pool: &Pool) -> PathBuf {
    PathBuf::from(pool.attr("dir_path").unwrap_or("/var/lib/qubes/vm-kernels"))
}

fn modules(v: &Vol) -> Option<PathBuf> {
    (!v.vid.is_empty()).then(|| dir(&v.pool).join(&v.vid).join("modules.img"))
}

fn read_only() -> QubesError {
    pool_err("LinuxModules volumes are read-only")
}

impl Driver for KernelDriver {
    fn name(&self) -> &'static str {
        "linux-kernel"
    }

    fn params(&self) -> &'static [(&'static str, bool)] {
        &[("dir_path", true)]
    }

    fn config(&self, name: &str, o: &[(String, String)]) -> SResult<Vec<(String, String)>> {
        let d = o
            .iter()
            .find(|(k, _)| k == "dir_path")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Ok(vec![
            ("name".into(), name.into()),
            ("dir_path".into(), d),
            ("driver".into(), self.name().into()),
        ])
    }

    fn setup(&self, _pool: &Pool) -> SResult<()> {
        Ok(())
    }

    fn pool_size_usage(&self, _pool: &Pool) -> (Option<u64>, Option<u64>) {
        (None, None)
    }

    fn extra_volumes(&self, pool: &Pool) -> Option<Vec<String>> {
        let mut out: Vec<String> = std::fs::read_dir(dir(pool))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        Some(out)
    }

    fn check_pool_revisions(&self, n: i64) -> SResult<()> {
        if n != 0 {
            return Err(QubesError::value(
                "LinuxKernel supports only revisions_to_keep=0",
            ));
        }
        Ok(())
    }

    fn create(&self, _v: &Vol) -> SResult<()> {
        Ok(())
    }

    fn remove(&self, _v: &Vol) -> SResult<()> {
        Ok(())
    }

    fn verify(&self, v: &Vol) -> SResult<()> {
        if v.vid.is_empty() {
            return Ok(());
        }
        let vmlinuz = dir(&v.pool).join(&v.vid).join("vmlinuz");
        if !vmlinuz.exists() {
            return Err(pool_err(format!("Missing file: {}", vmlinuz.display())));
        }
        Ok(())
    }

    fn start(&self, _v: &Vol) -> SResult<()> {
        Ok(())
    }

    fn stop(&self, _v: &Vol) -> SResult<()> {
        Ok(())
    }

    fn path(&self, v: &Vol) -> String {
        modules(v)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn block_device(&self, v: &Vol) -> Option<String> {
        modules(v)
            .filter(|p| p.exists())
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn size(&self, v: &Vol) -> u64 {
        v.size
    }

    fn usage(&self, _v: &Vol) -> u64 {
        0
    }

    fn revisions(&self, _v: &Vol) -> Vec<Revision> {
        Vec::new()
    }

    fn revert(&self, _v: &Vol, _id: &str) -> SResult<()> {
        Err(read_only())
    }

    fn resize(&self, _v: &Vol, _size: u64) -> SResult<()> {
        // The reference's LinuxModules has no resize: NotImplementedError, a generic failure.
        Err(super::not_implemented(
            "LinuxModules volumes cannot be resized",
        ))
    }

    fn is_outdated(&self, _v: &Vol) -> Option<bool> {
        Some(false)
    }

    fn import_data(&self, _v: &Vol, _size: u64) -> SResult<PathBuf> {
        Err(read_only())
    }

    fn import_data_end(&self, _v: &Vol, _success: bool) -> SResult<()> {
        Err(read_only())
    }

    fn export(&self, v: &Vol) -> SResult<PathBuf> {
        Ok(modules(v).unwrap_or_default())
    }

    fn import_volume(&self, _dst: &Vol, src: &Vol, _src_path: &Path) -> SResult<()> {
        if src.pool.attr("driver") == Some("linux-kernel") {
            return Ok(());
        }
        Err(pool_err(
            "clone of LinuxModules volume from different volume type is not supported",
        ))
    }

    fn check_volume_revisions(&self, _v: &Vol, n: i64) -> SResult<()> {
        if n != 0 {
            return Err(QubesError::value(
                "LinuxModules supports only revisions_to_keep=0",
            ));
        }
        Ok(())
    }

    fn check_rw(&self, _v: &Vol, rw: bool) -> SResult<()> {
        if rw {
            return Err(QubesError::value(
                "LinuxModules supports only read-only volumes",
            ));
        }
        Ok(())
    }

    fn check_ephemeral(&self, _v: &Vol, _e: bool) -> SResult<()> {
        Err(QubesError::value(
            "LinuxModules does not support setting ephemeral value",
        ))
    }
}
