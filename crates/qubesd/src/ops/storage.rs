//! Storage operations shared by the pool, volume and import calls: finding what an argument
//! names, recording a volume's new configuration, the import's end, and the volume clone
//! whose copy runs with no lock held.

use qubes_api::{ExcKind, QubesError};

use super::{arg_not_in, not_halted};
use crate::core::Core;
use crate::model::{Pool, PowerState, State};
use crate::pycompat::bool_word as b;
use crate::storage::{Vol, cfg_name, cfg_set, pool_err, vol_driver, volume};
use crate::txn::Txn;

/// The pool an argument names (`Argument not in 'pools'`).
pub fn arg_pool(st: &State, name: &str) -> Result<Pool, QubesError> {
    st.pool(name).cloned().ok_or_else(|| arg_not_in("pools"))
}

/// A qube's volume named by an argument (`Argument not in '<qube> volumes'`).
pub fn arg_volume(st: &State, vm: &str, name: &str) -> Result<Vol, QubesError> {
    let d = st.domain(vm).ok_or_else(|| QubesError::no_such_vm(vm))?;
    volume(st, d, name).ok_or_else(|| arg_not_in(&format!("{} volumes", d.name)))
}

/// The same for the internal socket, whose refusal is a protocol error.
pub fn internal_volume(st: &State, vm: &str, name: &str) -> Result<Vol, QubesError> {
    let d = st.domain(vm).ok_or_else(|| QubesError::no_such_vm(vm))?;
    volume(st, d, name)
        .ok_or_else(|| QubesError::protocol(format!("Argument not in {} volumes", d.name)))
}

/// Refuses unless the qube is halted.
pub fn halted(st: &State, vm: &str) -> Result<(), QubesError> {
    let d = st.domain(vm).ok_or_else(|| QubesError::no_such_vm(vm))?;
    if !matches!(d.power, PowerState::Halted) {
        return Err(not_halted(&d.name));
    }
    Ok(())
}

/// Sets one attribute of a qube's volume configuration.
pub fn set_cfg(t: &mut Txn, vm: &str, vol: &str, key: &str, value: String) {
    if let Some(d) = t.st.domain_mut(vm)
        && let Some(cfg) = d.volumes.iter_mut().find(|v| cfg_name(v) == vol)
    {
        // A new `ephemeral` goes where the reference's volume config has it: before size.
        if key == "ephemeral"
            && !cfg.attrs.iter().any(|(k, _)| k == key)
            && let Some(i) = cfg.attrs.iter().position(|(k, _)| k == "size")
        {
            cfg.attrs.insert(i, (key.to_string(), value));
            return;
        }
        cfg_set(cfg, key, value);
    }
}

/// Sets one attribute of a pool's configuration.
pub fn set_pool_attr(t: &mut Txn, pool: &str, key: &str, value: String) {
    if let Some(p) = t.st.pools.iter_mut().find(|p| p.name == pool) {
        match p.attrs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => p.attrs.push((key.into(), value)),
        }
    }
}

/// The Info text of a volume (admin-api.md §7.2).
pub fn volume_info(v: &Vol) -> Result<String, QubesError> {
    let drv = vol_driver(v)?;
    let source = v.source.as_ref().map(|s| s.vid.clone()).unwrap_or_default();
    let mut out = format!(
        "pool={}\nvid={}\nsize={}\nusage={}\nrw={}\nsource={}\npath={}\nsave_on_stop={}\n\
         snap_on_start={}\nrevisions_to_keep={}\nephemeral={}\n",
        v.pool.name,
        v.vid,
        drv.size(v),
        drv.usage(v),
        b(v.rw),
        source,
        drv.path(v),
        b(v.save_on_stop),
        b(v.snap_on_start),
        v.revisions_to_keep,
        b(v.ephemeral_value()),
    );
    if let Some(o) = drv.is_outdated(v) {
        out.push_str(&format!("is_outdated={}\n", b(o)));
    }
    Ok(out)
}

/// After a volume's data was replaced by a clone: its size, the event, a save.
fn imported(t: &mut Txn, dst: &Vol, source_vid: &str) {
    if let Ok(drv) = vol_driver(dst) {
        set_cfg(t, &dst.vm, &dst.name, "size", drv.size(dst).to_string());
    }
    t.fire(
        &dst.vm,
        "domain-import-volume",
        &[("name", &dst.name), ("source", source_vid)],
    );
    t.save = true;
}

/// The driver's end of an import, with its `domain-volume-import-end` event (delivered
/// with `success=False` even when the driver fails).
pub fn end_import(t: &mut Txn, v: &Vol, success: bool) -> Result<(), QubesError> {
    if let Err(e) = vol_driver(v)?.import_data_end(v, success) {
        t.fire_sticky(
            &v.vm,
            "domain-volume-import-end",
            &[("volume", &v.name), ("success", "False")],
        );
        return Err(e);
    }
    // A failed import's end is announced even though the call then fails.
    let kw = [("volume", v.name.as_str()), ("success", b(success))];
    if success {
        t.fire(&v.vm, "domain-volume-import-end", &kw);
    } else {
        t.fire_sticky(&v.vm, "domain-volume-import-end", &kw);
    }
    Ok(())
}

/// `admin.vm.volume.CloneTo`: replaces `vm`'s volume `name` with the data of the volume the
/// token was minted for. A copy (no reflinks between the pools) runs with no lock held; the
/// result is committed afterwards, unless the qube or its volume changed meanwhile.
pub fn clone_to(core: &Core, vm: &str, name: &str, token: &str) -> Result<(), QubesError> {
    let st = core.snapshot();
    let dst = arg_volume(&st, vm, name)?;
    let entry = core
        .env()
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(token);
    let Some((src_vm, src_name, pool, vid)) = entry else {
        return Err(QubesError::new(
            ExcKind::QubesVolumeCopyTokenNotFoundError,
            "'Token to clone volume of qube was not found'",
        ));
    };
    let src = st
        .domain(&src_vm)
        .and_then(|d| volume(&st, d, &src_name))
        .filter(|s| s.pool.name == pool && s.vid == vid)
        .ok_or_else(|| QubesError::silent("source volume of the clone is gone"))?;
    if src.running && src.snapshots_disabled() {
        return Err(pool_err(format!(
            "Volume {} must be stopped before importing its data",
            src.vid
        )));
    }
    let src_drv = vol_driver(&src)?;
    let path = src_drv.export(&src)?;
    let dst_drv = vol_driver(&dst)?;
    if !dst_drv.clones_by_copy(&dst, &src)? {
        return core.write("admin.vm.volume.CloneTo", |t| {
            // Checked again in the state the clone commits to.
            let now = arg_volume(&t.st, vm, name)?;
            if now.vid != dst.vid {
                return Err(pool_err(format!(
                    "Volume {} went away during the clone",
                    dst.vid
                )));
            }
            dst_drv.import_volume(&now, &src, &path)?;
            imported(t, &now, &src.vid);
            Ok(())
        });
    }
    // A copy can take minutes: every other call goes on meanwhile.
    let target = dst_drv.import_data(&dst, src_drv.size(&src))?;
    let copied = crate::storage::fsutil::copy_file(&path, &target, None)
        .map(|_| ())
        .map_err(|e| format!("Cannot copy {}: {e}", path.display()));
    core.write("admin.vm.volume.CloneTo", |t| {
        // The qube or its volume may have gone meanwhile: then the copy only needs removing.
        let still =
            t.st.domain(vm)
                .and_then(|d| volume(&t.st, d, name))
                .filter(|v| v.vid == dst.vid);
        let Some(now) = still else {
            // The driver's own way to drop an import (a file, or an LV for lvm_thin).
            let _ = dst_drv.import_data_end(&dst, false);
            return Err(pool_err(format!(
                "Volume {} went away during the clone",
                dst.vid
            )));
        };
        if let Err(e) = copied {
            let _ = dst_drv.import_data_end(&now, false);
            return Err(pool_err(e));
        }
        dst_drv.import_data_end(&now, true)?;
        imported(t, &now, &src.vid);
        Ok(())
    })
}
