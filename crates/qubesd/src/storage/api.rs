//! The storage calls: `admin.pool.*`, `admin.vm.volume.*` and the internal halves of the
//! streamed import (admin-api.md §2.6, §7). Checks run in the reference's order; disk
//! changes come last, after everything that can refuse the call.

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use super::{Vol, bool_payload, pool_driver, validate_number, vol_driver, volume};
use crate::core::{Ctx, Reply};
use crate::handlers::{arg_not_in, empty, lines, not_halted, ok};
use crate::model::{Class, Pool, PowerState};
use crate::setters::bool_word as b;

fn arg_pool(c: &Ctx) -> Result<Pool, QubesError> {
    c.st.pool(&c.arg)
        .cloned()
        .ok_or_else(|| arg_not_in("pools"))
}

/// The destination's volume named by the argument (`Argument not in '<qube> volumes'`).
fn arg_volume(c: &Ctx) -> Result<Vol, QubesError> {
    let d = c.dest_domain();
    volume(c.st, d, &c.arg).ok_or_else(|| arg_not_in(&format!("{} volumes", d.name)))
}

fn set_cfg(c: &mut Ctx, vm: &str, vol: &str, key: &str, value: String) {
    if let Some(d) = c.st.domain_mut(vm)
        && let Some(cfg) = d.volumes.iter_mut().find(|v| super::cfg_name(v) == vol)
    {
        super::cfg_set(cfg, key, value);
    }
}

fn halted(c: &Ctx) -> Result<(), QubesError> {
    let d = c.dest_domain();
    if !matches!(d.power, PowerState::Halted) {
        return Err(not_halted(&d.name));
    }
    Ok(())
}

// ---- pools ------------------------------------------------------------------------------

pub(crate) fn pool_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    ok(lines(c.st.pools.iter().map(|p| p.name.as_str())))
}

pub(crate) fn pool_list_drivers(_: &mut Ctx) -> Result<Reply, QubesError> {
    ok(lines(super::drivers().iter().map(|d| {
        let params: Vec<&str> = d.params().iter().map(|(p, _)| *p).collect();
        format!("{} {}", d.name(), params.join(" "))
    })))
}

pub(crate) fn pool_info(c: &mut Ctx) -> Result<Reply, QubesError> {
    let pool = arg_pool(c)?;
    let mut cfg: Vec<(String, String)> = pool.attrs.clone();
    cfg.sort();
    let mut out = String::new();
    for (k, v) in cfg {
        out.push_str(&format!("{k}={v}\n"));
    }
    let drv = pool_driver(&pool)?;
    let (size, usage) = drv.pool_size_usage(&pool);
    if let Some(s) = size {
        out.push_str(&format!("size={s}\n"));
    }
    if let Some(u) = usage {
        out.push_str(&format!("usage={u}\n"));
    }
    if let Some(p) = super::included_in(c.st, &pool) {
        out.push_str(&format!("included_in={}\n", p.name));
    }
    ok(out)
}

pub(crate) fn pool_usage_details(c: &mut Ctx) -> Result<Reply, QubesError> {
    let pool = arg_pool(c)?;
    let mut details = pool_driver(&pool)?.usage_details(&pool);
    details.sort();
    ok(details
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect::<String>())
}

pub(crate) fn pool_volume_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    let pool = arg_pool(c)?;
    ok(lines(super::pool_volume_ids(c.st, &pool)))
}

pub(crate) fn pool_add(c: &mut Ctx) -> Result<Reply, QubesError> {
    let drv = super::driver(&c.arg).ok_or_else(|| arg_not_in("available drivers"))?;
    let text = std::str::from_utf8(&c.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::protocol("Pool parameters contains non-ASCII characters"))?;
    let untrusted_lines = crate::handlers::py_splitlines(text);
    if !untrusted_lines.iter().all(|l| l.contains('=')) {
        return Err(QubesError::protocol(
            "Options must be separated by equal sign",
        ));
    }
    let mut options: Vec<(String, String)> = Vec::new();
    for l in &untrusted_lines {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if options.iter().any(|(o, _)| o == k) {
            return Err(QubesError::protocol("Options must be unique"));
        }
        options.push((k.to_string(), v.to_string()));
    }
    let Some(pos) = options.iter().position(|(k, _)| k == "name") else {
        return Err(QubesError::protocol(
            "Pool configuration must contain key: name",
        ));
    };
    let (_, name) = options.remove(pos);
    const SAFE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
    if !name.chars().all(|ch| SAFE.contains(ch)) {
        return Err(QubesError::protocol(format!(
            "Pool name must be in safe set: {SAFE}"
        )));
    }
    let exists = c.st.pool(&name).is_some();
    if options
        .iter()
        .any(|(k, _)| !drv.params().iter().any(|(p, _)| p == k))
    {
        return Err(QubesError::protocol("Unexpected driver options found"));
    }
    let missing: Vec<&str> = drv
        .params()
        .iter()
        .filter(|(p, required)| *required && !options.iter().any(|(k, _)| k == p))
        .map(|(p, _)| *p)
        .collect();
    if !missing.is_empty() {
        return Err(QubesError::qubes(format!(
            "missing required driver options: {}",
            missing.join(" ")
        )));
    }
    if exists {
        return Err(QubesError::new(
            ExcKind::QubesPoolInUseError,
            format!("Storage pool is in use: {}", py_repr(&name)),
        ));
    }
    if name.is_empty() {
        return Err(QubesError::protocol("Pool name must not be empty"));
    }
    let attrs = drv.config(&name, &options)?;
    // setup_check is a constructor option, not part of the saved configuration.
    let mut setup_view = Pool {
        name: name.clone(),
        attrs: attrs.clone(),
    };
    if let Some((_, v)) = options.iter().find(|(k, _)| k == "setup_check") {
        setup_view.attrs.push(("setup_check".into(), v.clone()));
    }
    drv.setup(&setup_view)?;
    c.st.pools.push(Pool {
        name: name.clone(),
        attrs,
    });
    c.fire("", "pool-add", &[("pool", &name)]);
    c.save = true;
    empty()
}

pub(crate) fn pool_remove(c: &mut Ctx) -> Result<Reply, QubesError> {
    let pool = arg_pool(c)?;
    c.fire("", "pool-pre-delete", &[("pool", &pool.name)]);
    if super::pool_in_use(c.st, &pool.name) {
        return Err(QubesError::new(
            ExcKind::QubesPoolInUseError,
            // The reference prints the pool object's repr (with a memory address); the
            // name says the same and is stable.
            format!("Storage pool is in use: {}", py_repr(&pool.name)),
        ));
    }
    for (prop, suffix) in [
        ("default_pool", ""),
        ("default_pool_kernel", "_kernel"),
        ("default_pool_private", "_private"),
        ("default_pool_root", "_root"),
        ("default_pool_volatile", "_volatile"),
    ] {
        if crate::props::global_get(c.st, prop).as_deref() == Some(pool.name.as_str()) {
            return Err(QubesError::new(
                ExcKind::QubesPoolInUseError,
                format!("Storage pool is in use: set as default_pool{suffix}"),
            ));
        }
    }
    c.st.pools.retain(|p| p.name != pool.name);
    c.fire("", "pool-delete", &[("pool", &pool.name)]);
    c.save = true;
    empty()
}

fn set_pool_attr(c: &mut Ctx, key: &str, value: String) {
    let name = c.arg.clone();
    if let Some(p) = c.st.pools.iter_mut().find(|p| p.name == name) {
        match p.attrs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => p.attrs.push((key.into(), value)),
        }
    }
}

pub(crate) fn pool_set_revisions_to_keep(c: &mut Ctx) -> Result<Reply, QubesError> {
    let pool = arg_pool(c)?;
    let n = validate_number(&c.untrusted_payload, "revisions to keep", true)?;
    if n < -1 {
        return Err(QubesError::protocol("Value can't be lower than -1"));
    }
    pool_driver(&pool)?.check_pool_revisions(n)?;
    set_pool_attr(c, "revisions_to_keep", n.to_string());
    c.save = true;
    empty()
}

pub(crate) fn pool_set_ephemeral_volatile(c: &mut Ctx) -> Result<Reply, QubesError> {
    let pool = arg_pool(c)?;
    let v = bool_payload(&c.untrusted_payload)?;
    if pool.attr("driver") == Some("linux-kernel") {
        return Err(QubesError::silent(
            "linux-kernel pool has no ephemeral_volatile",
        ));
    }
    set_pool_attr(c, "ephemeral_volatile", b(v).into());
    c.save = true;
    empty()
}

// ---- volumes ----------------------------------------------------------------------------

pub(crate) fn vm_volume_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    let d = c.dest_domain();
    if !d.class.is_local_qube() {
        return empty();
    }
    ok(lines(d.volumes.iter().map(super::cfg_name)))
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

pub(crate) fn vm_volume_info(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    ok(volume_info(&v)?)
}

pub(crate) fn vm_volume_list_snapshots(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    let mut revs = vol_driver(&v)?.revisions(&v);
    revs.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    ok(lines(revs.into_iter().map(|r| r.id)))
}

pub(crate) fn vm_volume_revert(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    let rev = std::str::from_utf8(&c.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::silent("revision is not ASCII"))?;
    let rev = crate::handlers::py_strip(rev);
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
    c.save = true;
    empty()
}

pub(crate) fn vm_volume_clone_from(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    use rand::Rng;
    let token: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let mut tokens = c.tokens.lock().unwrap_or_else(|e| e.into_inner());
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

pub(crate) fn vm_volume_clone_to(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dst = arg_volume(c)?;
    let token = std::str::from_utf8(&c.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::protocol("Token contains non-ASCII characters"))?;
    let token = crate::handlers::py_strip(token).to_string();
    let entry = c
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&token);
    let Some((vm, name, pool, vid)) = entry else {
        return Err(QubesError::new(
            ExcKind::QubesVolumeCopyTokenNotFoundError,
            "'Token to clone volume of qube was not found'",
        ));
    };
    let src =
        c.st.domain(&vm)
            .and_then(|d| volume(c.st, d, &name))
            .filter(|s| s.pool.name == pool && s.vid == vid)
            .ok_or_else(|| QubesError::silent("source volume of the clone is gone"))?;
    if src.running && src.snapshots_disabled() {
        return Err(super::pool_err(format!(
            "Volume {} must be stopped before importing its data",
            src.vid
        )));
    }
    let src_drv = vol_driver(&src)?;
    let path = src_drv.export(&src)?;
    let dst_drv = vol_driver(&dst)?;
    if dst_drv.clones_by_copy(&dst, &src)? {
        // A copy can take seconds: it runs without the core, then `finish_copy` commits it.
        let target = dst_drv.import_data(&dst, src_drv.size(&src))?;
        return Ok(Reply::CopyVolume(VolumeCopy {
            from: path,
            to: target,
            vm: dst.vm,
            volume: dst.name,
            vid: dst.vid,
            source_vid: src.vid,
        }));
    }
    dst_drv.import_volume(&dst, &src, &path)?;
    imported(c, &dst, &src.vid);
    empty()
}

/// After a volume's data was replaced by a clone: its size, the event, a save.
fn imported(c: &mut Ctx, dst: &Vol, source_vid: &str) {
    if let Ok(drv) = vol_driver(dst) {
        set_cfg(c, &dst.vm, &dst.name, "size", drv.size(dst).to_string());
    }
    c.fire(
        &dst.vm,
        "domain-import-volume",
        &[("name", &dst.name), ("source", source_vid)],
    );
    c.save = true;
}

/// A clone's data copy, done without holding the core (see [`Reply::CopyVolume`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeCopy {
    /// The source's committed data.
    pub from: std::path::PathBuf,
    /// The destination's import file.
    pub to: std::path::PathBuf,
    /// Destination qube.
    pub vm: String,
    /// Destination volume name.
    pub volume: String,
    /// Destination volume id when the copy started.
    pub vid: String,
    /// Source volume id (for the event).
    pub source_vid: String,
}

impl VolumeCopy {
    /// Copies the data (reflink where possible); runs outside the core.
    pub fn run(&self) -> Result<(), String> {
        super::fsutil::copy_file(&self.from, &self.to, None)
            .map(|_| ())
            .map_err(|e| format!("Cannot copy {}: {e}", self.from.display()))
    }
}

/// Commits (or drops) a copied clone, under the core again.
pub(crate) fn finish_copy(
    c: &mut Ctx,
    job: &VolumeCopy,
    copied: Result<(), String>,
) -> Result<Reply, QubesError> {
    // The qube or its volume may have gone meanwhile: then the copy only needs removing.
    let dst =
        c.st.domain(&job.vm)
            .and_then(|d| volume(c.st, d, &job.volume))
            .filter(|v| v.vid == job.vid);
    let Some(dst) = dst else {
        let _ = std::fs::remove_file(&job.to);
        return Err(super::pool_err(format!(
            "Volume {} went away during the clone",
            job.vid
        )));
    };
    let drv = vol_driver(&dst)?;
    if let Err(e) = copied {
        let _ = drv.import_data_end(&dst, false);
        return Err(super::pool_err(e));
    }
    drv.import_data_end(&dst, true)?;
    imported(c, &dst, &job.source_vid);
    empty()
}

pub(crate) fn vm_volume_resize(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    let payload = c.untrusted_payload.clone();
    let size = validate_number(
        crate::handlers::py_strip_bytes(&payload),
        "volume size",
        false,
    )? as u64;
    vol_driver(&v)?.resize(&v, size)?;
    set_cfg(c, &v.vm, &v.name, "size", size.to_string());
    c.save = true;
    if v.running
        && let Some(hv) = c.hv.clone()
        && let Some(path) = vol_driver(&v)?.block_device(&v)
        && let Err(e) = hv.block_resize(&v.vm, &path, size)
    {
        // The size change is kept and saved; the reference says the same when its
        // in-qube part fails.
        c.keep_on_error = true;
        return Err(super::pool_err(format!(
            "Online resize of volume {} failed (you need to resize filesystem manually): {}",
            v.name,
            e.0.replace('%', "")
        )));
    }
    empty()
}

pub(crate) fn vm_volume_clear(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    let drv = vol_driver(&v)?;
    let size = drv.size(&v);
    drv.import_data(&v, size)?;
    let size_s = size.to_string();
    c.fire(
        &v.vm,
        "domain-volume-import-begin",
        &[("volume", &v.name), ("size", &size_s)],
    );
    end_import(c, &v, true)?;
    c.save = true;
    empty()
}

/// The driver's end of an import, with its `domain-volume-import-end` event (delivered
/// with `success=False` even when the driver fails).
fn end_import(c: &mut Ctx, v: &Vol, success: bool) -> Result<(), QubesError> {
    if let Err(e) = vol_driver(v)?.import_data_end(v, success) {
        c.fire_sticky(
            &v.vm,
            "domain-volume-import-end",
            &[("volume", &v.name), ("success", "False")],
        );
        return Err(e);
    }
    c.fire(
        &v.vm,
        "domain-volume-import-end",
        &[("volume", &v.name), ("success", b(success))],
    );
    Ok(())
}

pub(crate) fn vm_volume_set_revisions_to_keep(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    let n = validate_number(&c.untrusted_payload, "revisions to keep", true)?;
    if n < -1 {
        return Err(QubesError::value("Invalid value for revisions_to_keep"));
    }
    if (n == -1) != v.snapshots_disabled() {
        // Switching snapshots on or off needs the qube and its disposables halted.
        let d = c.dest_domain();
        let busy = !matches!(d.power, PowerState::Halted)
            || (d.class == Class::AppVM
                && c.st.domains.values().any(|x| {
                    x.class == Class::DispVM
                        && !matches!(x.power, PowerState::Halted)
                        && crate::props::vm_ref(c.st, x, "template").map(|t| t.name.as_str())
                            == Some(d.name.as_str())
                }));
        if busy {
            return Err(not_halted(&d.name));
        }
    }
    vol_driver(&v)?.check_volume_revisions(&v, n)?;
    set_cfg(c, &v.vm, &v.name, "revisions_to_keep", n.to_string());
    c.save = true;
    empty()
}

pub(crate) fn vm_volume_set_rw(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    let rw = bool_payload(&c.untrusted_payload)?;
    halted(c)?;
    vol_driver(&v)?.check_rw(&v, rw)?;
    set_cfg(c, &v.vm, &v.name, "rw", b(rw).into());
    c.save = true;
    empty()
}

pub(crate) fn vm_volume_set_ephemeral(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = arg_volume(c)?;
    let e = bool_payload(&c.untrusted_payload)?;
    vol_driver(&v)?.check_ephemeral(&v, e)?;
    if e && (v.snap_on_start || v.save_on_stop || !v.rw) {
        return Err(QubesError::value(
            "Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not \
             writable volume",
        ));
    }
    set_cfg(c, &v.vm, &v.name, "ephemeral", b(e).into());
    c.save = true;
    empty()
}

// ---- streamed import (internal socket) --------------------------------------------------

fn internal_volume(c: &Ctx) -> Result<Vol, QubesError> {
    let d = c.dest_domain();
    volume(c.st, d, &c.arg)
        .ok_or_else(|| QubesError::protocol(format!("Argument not in {} volumes", d.name)))
}

/// `internal.vm.volume.ImportBegin`: answers `<size> <path>` to write the data to.
pub(crate) fn import_begin(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = internal_volume(c)?;
    halted(c)?;
    let requested = if c.untrusted_payload.is_empty() {
        None
    } else {
        Some(validate_number(&c.untrusted_payload, "size of new data", false)? as u64)
    };
    let drv = vol_driver(&v)?;
    let size = requested.unwrap_or_else(|| drv.size(&v));
    let path = drv.import_data(&v, size)?;
    let path = path.to_string_lossy().into_owned();
    if path.contains(char::is_whitespace) {
        let _ = drv.import_data_end(&v, false);
        return Err(QubesError::protocol("Path contains whitespace"));
    }
    let vm = v.vm.clone();
    let size_s = size.to_string();
    c.fire(
        &vm,
        "domain-volume-import-begin",
        &[("volume", &v.name), ("size", &size_s)],
    );
    ok(format!("{size} {path}"))
}

/// `internal.vm.volume.ImportEnd`: commits (payload `ok`) or drops the import.
pub(crate) fn import_end(c: &mut Ctx) -> Result<Reply, QubesError> {
    let v = internal_volume(c)?;
    let success = c.untrusted_payload == b"ok";
    let drv = vol_driver(&v)?;
    end_import(c, &v, success)?;
    if !success {
        c.keep_on_error = true;
        let text = String::from_utf8_lossy(&c.untrusted_payload).into_owned();
        let error = text.split_once('\n').map(|(_, e)| e).unwrap_or("");
        let error: String = error
            .chars()
            .filter(|ch| ch.is_ascii_graphic() || *ch == ' ')
            .take(1024)
            .collect();
        return Err(QubesError::qubes(format!("Data import failed: {error}")));
    }
    let size = drv.size(&v);
    set_cfg(c, &v.vm, &v.name, "size", size.to_string());
    c.save = true;
    empty()
}
