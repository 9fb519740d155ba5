//! Volumes: `admin.vm.volume.*` (admin-api.md §2.6, §7). Checks run in the reference's
//! order; disk changes come last, after everything that can refuse the call.

use qubes_api::QubesError;

use super::Want::{No, Yes};
use super::{ANY, Method, Req, View, blocking, read, read_blocking, write};
use crate::core::Core;
use crate::model::{Class, PowerState};
use crate::ops::not_halted;
use crate::ops::storage::{arg_volume, end_import, halted, set_cfg, volume_info};
use crate::pycompat::bool_word as b;
use crate::reply::{Reply, empty, lines, ok};
use crate::storage::{bool_payload, pool_err, validate_number, vol_driver};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.vm.volume.List", No, No, ANY, vm_volume_list),
    read_blocking("admin.vm.volume.Info", Yes, No, ANY, vm_volume_info),
    read_blocking(
        "admin.vm.volume.ListSnapshots",
        Yes,
        No,
        ANY,
        vm_volume_list_snapshots,
    ),
    write("admin.vm.volume.Revert", Yes, Yes, ANY, vm_volume_revert),
    read(
        "admin.vm.volume.CloneFrom",
        Yes,
        No,
        ANY,
        vm_volume_clone_from,
    ),
    blocking("admin.vm.volume.CloneTo", Yes, Yes, ANY, vm_volume_clone_to),
    blocking("admin.vm.volume.Resize", Yes, Yes, ANY, vm_volume_resize),
    write("admin.vm.volume.Clear", Yes, No, ANY, vm_volume_clear),
    write(
        "admin.vm.volume.Set.revisions_to_keep",
        Yes,
        Yes,
        ANY,
        vm_volume_set_revisions_to_keep,
    ),
    write("admin.vm.volume.Set.rw", Yes, Yes, ANY, vm_volume_set_rw),
    write(
        "admin.vm.volume.Set.ephemeral",
        Yes,
        Yes,
        ANY,
        vm_volume_set_ephemeral,
    ),
];

fn vm_volume_clone_to(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    let token = std::str::from_utf8(&r.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::protocol("Token contains non-ASCII characters"))?;
    let token = crate::pycompat::py_strip(token);
    crate::ops::storage::clone_to(core, &r.dest, &r.arg, token)?;
    empty()
}

// ---- volumes ----------------------------------------------------------------------------

fn vm_volume_list(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let d = r.dest_in(v.st)?;
    if !d.class.is_local_qube() {
        return empty();
    }
    ok(lines(d.volumes.iter().map(crate::storage::cfg_name)))
}

fn vm_volume_info(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let v = arg_volume(v.st, &r.dest, &r.arg)?;
    ok(volume_info(&v)?)
}

fn vm_volume_list_snapshots(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let v = arg_volume(v.st, &r.dest, &r.arg)?;
    let mut revs = vol_driver(&v)?.revisions(&v);
    revs.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    ok(lines(revs.into_iter().map(|r| r.id)))
}

fn vm_volume_clone_from(r: &Req, view: &View) -> Result<Reply, QubesError> {
    let v = arg_volume(view.st, &r.dest, &r.arg)?;
    use rand::Rng;
    let token: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let mut tokens = view.env.tokens.lock().unwrap_or_else(|e| e.into_inner());
    if tokens.contains_key(&token) {
        return Err(QubesError::silent("clone token collision"));
    }
    // Bounded: a caller minting tokens without using them cannot grow memory forever.
    if tokens.len() >= 4096 {
        return Err(QubesError::qubes("Too many pending volume clones"));
    }
    tokens.insert(token.clone(), (v.vm, v.name, v.pool.name, v.vid));
    ok(token)
}

fn vm_volume_revert(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let v = arg_volume(&t.st, &r.dest, &r.arg)?;
    let rev = std::str::from_utf8(&r.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::silent("revision is not ASCII"))?;
    let rev = crate::pycompat::py_strip(rev);
    const SAFE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.";
    if !rev.chars().all(|ch| SAFE.contains(ch)) {
        return Err(QubesError::protocol(format!(
            "Revision name must be in safe set: {SAFE}"
        )));
    }
    let drv = vol_driver(&v)?;
    if !drv.revisions(&v).iter().any(|r| r.id == rev) {
        // QubesVolumeRevisionNotFoundError is a bare KeyError: a generic failure.
        return Err(QubesError::silent(format!("revision {rev} not found")));
    }
    drv.revert(&v, rev)?;
    t.save = true;
    empty()
}

/// Resizes a volume: the new size is committed first, then a running qube's disk is told,
/// with no lock held; when that fails the new size stays, as in the reference.
fn vm_volume_resize(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    // The reference's order: the volume argument, then the size.
    arg_volume(&core.snapshot(), &r.dest, &r.arg)?;
    let size = validate_number(
        crate::pycompat::py_strip_bytes(&r.untrusted_payload),
        "volume size",
        false,
    )? as u64;
    let v = core.write(r.method, |t| {
        let v = arg_volume(&t.st, &r.dest, &r.arg)?;
        vol_driver(&v)?.resize(&v, size)?;
        set_cfg(t, &v.vm, &v.name, "size", size.to_string());
        if v.pool.attr("driver") == Some("file") {
            // A file-pool snapshot is as large as its origin's image (the reference reads
            // the size from the file): the qubes based on it see the new size too.
            snapshots_resized(t, &v.vid, size);
        }
        t.save = true;
        Ok(v)
    })?;
    if v.running
        && let Some(hv) = core.env().hv.clone()
        && let Some(path) = vol_driver(&v)?.block_device(&v)
        && let Err(e) = hv.block_resize(&v.vm, &path, size)
    {
        return Err(pool_err(format!(
            "Online resize of volume {} failed (you need to resize filesystem manually): {}",
            v.name,
            e.0.replace('%', "")
        )));
    }
    empty()
}

/// Sets the size of every snapshot volume whose origin is `vid`.
fn snapshots_resized(t: &mut Txn, vid: &str, size: u64) {
    let has = |c: &crate::model::VolumeConfig, k: &str, val: &str| {
        c.attrs.iter().any(|(a, x)| a == k && x == val)
    };
    let names: Vec<String> = t.st.domains.keys().map(|k| k.to_string()).collect();
    for name in names {
        let Some(d) = t.st.domain(&name) else {
            continue;
        };
        if !d
            .volumes
            .iter()
            .any(|c| has(c, "source", vid) && has(c, "snap_on_start", "True"))
        {
            continue;
        }
        if let Some(d) = t.st.domain_mut(&name) {
            for c in d
                .volumes
                .iter_mut()
                .filter(|c| has(c, "source", vid) && has(c, "snap_on_start", "True"))
            {
                match c.attrs.iter_mut().find(|(a, _)| a == "size") {
                    Some((_, x)) => *x = size.to_string(),
                    None => c.attrs.push(("size".into(), size.to_string())),
                }
            }
        }
    }
}

fn vm_volume_clear(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let v = arg_volume(&t.st, &r.dest, &r.arg)?;
    let drv = vol_driver(&v)?;
    let size = drv.size(&v);
    drv.import_data(&v, size)?;
    let size_s = size.to_string();
    t.fire(
        &v.vm,
        "domain-volume-import-begin",
        &[("volume", &v.name), ("size", &size_s)],
    );
    end_import(t, &v, true)?;
    t.save = true;
    empty()
}

fn vm_volume_set_revisions_to_keep(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let v = arg_volume(&t.st, &r.dest, &r.arg)?;
    let n = validate_number(&r.untrusted_payload, "revisions to keep", true)?;
    if n < -1 {
        return Err(QubesError::value("Invalid value for revisions_to_keep"));
    }
    if (n == -1) != v.snapshots_disabled() {
        // Switching snapshots on or off needs the qube and its disposables halted.
        let d = r.dest_in(&t.st)?;
        let busy = !matches!(d.power, PowerState::Halted)
            || (d.class == Class::AppVM
                && t.st.domains.values().any(|x| {
                    x.class == Class::DispVM
                        && !matches!(x.power, PowerState::Halted)
                        && crate::props::vm_ref(&t.st, x, "template").map(|t| t.name.as_str())
                            == Some(d.name.as_str())
                }));
        if busy {
            return Err(not_halted(&d.name));
        }
    }
    vol_driver(&v)?.check_volume_revisions(&v, n)?;
    set_cfg(t, &v.vm, &v.name, "revisions_to_keep", n.to_string());
    t.save = true;
    empty()
}

fn vm_volume_set_rw(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let v = arg_volume(&t.st, &r.dest, &r.arg)?;
    let rw = bool_payload(&r.untrusted_payload)?;
    halted(&t.st, &r.dest)?;
    vol_driver(&v)?.check_rw(&v, rw)?;
    set_cfg(t, &v.vm, &v.name, "rw", b(rw).into());
    t.save = true;
    empty()
}

fn vm_volume_set_ephemeral(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let v = arg_volume(&t.st, &r.dest, &r.arg)?;
    let e = bool_payload(&r.untrusted_payload)?;
    vol_driver(&v)?.check_ephemeral(&v, e)?;
    if e && (v.snap_on_start || v.save_on_stop || !v.rw) {
        return Err(QubesError::value(
            "Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not \
             writable volume",
        ));
    }
    set_cfg(t, &v.vm, &v.name, "ephemeral", b(e).into());
    t.save = true;
    empty()
}
