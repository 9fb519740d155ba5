//! `lvm_thin`: volumes as LVM thin volumes, driven through the `lvm` commands
//! (admin-api.md §7.1).
//!
//! Volume `<vg>/vm-<qube>-<vol>` is the committed data; a running qube uses the thin snapshot
//! `<vid>-snap`; an import writes `<vid>-import`; revisions are the previous committed volumes
//! renamed `<vid>-<unix seconds>-back`. What exists is read from `lvs` (cached until the next
//! change, like the reference's size cache).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::{Driver, Revision, SResult, Vol, fsutil, not_implemented, pool_err};
use crate::model::Pool;

/// The `lvm_thin` driver.
pub struct ThinDriver;

/// One logical volume as `lvs` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LvInfo {
    /// Size in bytes.
    pub size: u64,
    /// Bytes used (size × data_percent).
    pub usage: u64,
    /// `lv_attr` (first char `t` = thin pool, fifth `a` = active).
    pub attr: String,
    /// Origin LV name of a snapshot.
    pub origin: String,
    /// Metadata size and usage of a thin pool.
    pub metadata: Option<(u64, u64)>,
}

type Cache = Arc<HashMap<String, LvInfo>>;
static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn lvm_env(cmd: &mut Command) -> &mut Command {
    cmd.env("LC_ALL", "C.UTF-8")
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
}

/// Parses `lvs --reportformat=json --units b` output into `vg/lv -> info`.
pub fn parse_lvs(untrusted_json: &str) -> HashMap<String, LvInfo> {
    // A small scanner for the flat objects of the `lv` array: {"key":"value", ...}. lvs
    // prints strings only, so no general JSON parser is needed.
    let mut out = HashMap::new();
    let Some(start) = untrusted_json.find("\"lv\"") else {
        return out;
    };
    for obj in untrusted_json[start..].split('{').skip(1) {
        let Some(body) = obj.split('}').next() else {
            continue;
        };
        let mut fields: HashMap<&str, &str> = HashMap::new();
        let parts: Vec<&str> = body.split('"').collect();
        // "k":"v" pairs appear as [.., k, ":", v, ", ", k2, ...]
        let mut i = 1;
        while i + 2 < parts.len() {
            fields.insert(parts[i], parts[i + 2]);
            i += 4;
        }
        let (Some(vg), Some(lv), Some(size)) = (
            fields.get("vg_name"),
            fields.get("lv_name"),
            fields.get("lv_size"),
        ) else {
            continue;
        };
        if vg.is_empty() || lv.is_empty() || size.is_empty() {
            continue;
        }
        let bytes = |s: &str| s.trim_end_matches('B').parse::<u64>().ok();
        let Some(size) = bytes(size) else { continue };
        let pct = |k: &str| {
            fields
                .get(k)
                .and_then(|p| p.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let usage = (size as f64 / 100.0 * pct("data_percent")) as u64;
        let metadata = fields
            .get("lv_metadata_size")
            .and_then(|s| bytes(s))
            .map(|m| (m, (m as f64 / 100.0 * pct("metadata_percent")) as u64));
        out.insert(
            format!("{vg}/{lv}"),
            LvInfo {
                size,
                usage,
                attr: fields.get("lv_attr").unwrap_or(&"").to_string(),
                origin: fields.get("origin").unwrap_or(&"").to_string(),
                metadata,
            },
        );
    }
    out
}

/// The current `lvs` view (cached until a change).
fn lvs() -> Cache {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = guard.as_ref() {
        return c.clone();
    }
    let out = lvm_env(Command::new("lvm").args([
        "lvs",
        "--quiet",
        "--quiet",
        "--noheadings",
        "-o",
        "vg_name,pool_lv,name,lv_size,data_percent,lv_attr,origin,lv_metadata_size,metadata_percent",
        "--units",
        "b",
        "--reportformat=json",
    ]))
    .output();
    let map = match out {
        Ok(o) if o.status.success() => parse_lvs(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => {
            tracing::warn!("lvs failed: {}", String::from_utf8_lossy(&o.stderr).trim());
            HashMap::new()
        }
        Err(e) => {
            tracing::warn!("cannot run lvm: {e}");
            HashMap::new()
        }
    };
    let c = Arc::new(map);
    *guard = Some(c.clone());
    c
}

fn reset_cache() {
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Runs one `lvm` action (the reference's `qubes_lvm` command set).
fn lvm(args: &[&str]) -> SResult<()> {
    let result = lvm_env(Command::new("lvm").args(args)).output();
    reset_cache();
    let o = result.map_err(|e| pool_err(format!("cannot run lvm: {e}")))?;
    // Over-provisioning warnings are expected for thin pools.
    let err: Vec<&str> = std::str::from_utf8(&o.stderr)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.contains("exceeds the size of thin pool") && !l.contains("leaked on"))
        .collect();
    if o.status.success() {
        if !err.is_empty() {
            tracing::warn!("lvm {}: {}", args.join(" "), err.join("\n"));
        }
        return Ok(());
    }
    Err(pool_err(if err.is_empty() {
        format!("lvm {} failed", args[0])
    } else {
        err.join("\n")
    }))
}

fn remove(vid: &str) -> SResult<()> {
    if !vid.contains('/') || vid.starts_with('/') || !lvs().contains_key(vid) {
        return Ok(());
    }
    lvm(&["lvremove", "--force", "--", vid])
}

fn clone(src: &str, dst: &str) -> SResult<()> {
    let name = format!("--name={dst}");
    lvm(&[
        "lvcreate",
        "--setactivationskip=n",
        "--activate=y",
        "--snapshot",
        "--type=thin",
        &name,
        "--",
        src,
    ])
}

fn create(pool: &Pool, name: &str, size: u64) -> SResult<()> {
    let n = format!("--name={name}");
    let s = format!("--virtualsize={size}B");
    let id = pool_id(pool);
    lvm(&[
        "lvcreate",
        "--thin",
        "--setactivationskip=n",
        "--activate=y",
        &n,
        &s,
        "--",
        &id,
    ])
}

fn rename(from: &str, to: &str) -> SResult<()> {
    lvm(&["lvrename", "--", from, to])
}

fn resize(vid: &str, size: u64) -> SResult<()> {
    let s = format!("--size={size}B");
    lvm(&["lvresize", &s, "--", vid])
}

fn pool_id(pool: &Pool) -> String {
    format!(
        "{}/{}",
        pool.attr("volume_group").unwrap_or(""),
        pool.attr("thin_pool").unwrap_or("")
    )
}

fn snap(v: &Vol) -> String {
    format!("{}-snap", v.vid)
}

fn import(v: &Vol) -> String {
    format!("{}-import", v.vid)
}

fn lv_name(vid: &str) -> &str {
    vid.split_once('/').map_or(vid, |(_, n)| n)
}

fn revision_secs(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn revisions_of(vid: &str, cache: &HashMap<String, LvInfo>) -> Vec<Revision> {
    let prefix = format!("{vid}-");
    let mut out: Vec<(u64, Revision)> = cache
        .keys()
        .filter_map(|k| {
            let id = k.strip_prefix(&prefix)?;
            if !id.ends_with("-back") || id.matches('-').count() > 1 {
                return None;
            }
            let secs = revision_secs(id)?;
            Some((
                secs,
                Revision {
                    id: id.to_string(),
                    timestamp: fsutil::isodate(i64::try_from(secs).unwrap_or(i64::MAX)),
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    out.into_iter().map(|(_, r)| r).collect()
}

/// The LV holding the volume's committed data (the newest revision if the main LV is gone).
fn current(vid: &str) -> String {
    let cache = lvs();
    if cache.contains_key(vid) {
        return vid.to_string();
    }
    revisions_of(vid, &cache)
        .last()
        .map_or_else(|| vid.to_string(), |r| format!("{vid}-{}", r.id))
}

fn mapper(vid: &str) -> String {
    format!("/dev/mapper/{}", vid.replace('-', "--").replace('/', "-"))
}

fn prune(v: &Vol, keep: Option<usize>) -> SResult<()> {
    let revs = revisions_of(&v.vid, &lvs());
    let keep = keep.unwrap_or(v.revisions_to_keep.max(0) as usize);
    if revs.len() > keep {
        for r in &revs[..revs.len() - keep] {
            let _ = remove(&format!("{}-{}", v.vid, r.id));
        }
    }
    Ok(())
}

/// Moves `from` into place as the committed volume, keeping the old one as a revision.
fn commit(v: &Vol, from: &str, keep_from: bool) -> SResult<bool> {
    if !lvs().contains_key(from) {
        return Ok(false);
    }
    if current(&v.vid) == v.vid {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        rename(&v.vid, &format!("{}-{secs}-back", v.vid))?;
    }
    if keep_from {
        clone(from, &v.vid)?;
    } else {
        rename(from, &v.vid)?;
    }
    prune(v, None)?;
    Ok(true)
}

fn abort_if_importing(v: &Vol) -> SResult<()> {
    if v.save_on_stop && lvs().contains_key(&import(v)) {
        return Err(pool_err(format!(
            "Import operation in progress on {}",
            v.vid
        )));
    }
    Ok(())
}

impl Driver for ThinDriver {
    fn name(&self) -> &'static str {
        "lvm_thin"
    }

    fn params(&self) -> &'static [(&'static str, bool)] {
        &[
            ("revisions_to_keep", false),
            ("volume_group", true),
            ("thin_pool", true),
            ("ephemeral_volatile", false),
        ]
    }

    fn config(&self, name: &str, o: &[(String, String)]) -> SResult<Vec<(String, String)>> {
        let location = ["volume_group", "thin_pool"]
            .iter()
            .map(|k| (k.to_string(), super::option(o, k).unwrap_or("").to_string()))
            .collect();
        super::standard_config(self, name, o, location)
    }

    fn setup(&self, pool: &Pool) -> SResult<()> {
        reset_cache();
        let id = pool_id(pool);
        match lvs().get(&id) {
            None => Err(pool_err(format!("Thin pool {id} does not exist"))),
            Some(i) if !i.attr.starts_with('t') => {
                Err(pool_err(format!("Volume {id} is not a thin pool")))
            }
            Some(_) => Ok(()),
        }
    }

    fn pool_size_usage(&self, pool: &Pool) -> (Option<u64>, Option<u64>) {
        reset_cache();
        let i = lvs().get(&pool_id(pool)).cloned().unwrap_or_default();
        (Some(i.size), Some(i.usage))
    }

    fn usage_details(&self, pool: &Pool) -> Vec<(&'static str, u64)> {
        reset_cache();
        let i = lvs().get(&pool_id(pool)).cloned().unwrap_or_default();
        let (ms, mu) = i.metadata.unwrap_or((0, 0));
        vec![
            ("data_size", i.size),
            ("data_usage", i.usage),
            ("metadata_size", ms),
            ("metadata_usage", mu),
        ]
    }

    fn create(&self, v: &Vol) -> SResult<()> {
        if v.save_on_stop {
            match &v.source {
                Some(src) => clone(&current(&src.vid), &v.vid)?,
                None => create(&v.pool, lv_name(&v.vid), v.size)?,
            }
        }
        Ok(())
    }

    fn remove(&self, v: &Vol) -> SResult<()> {
        if v.snap_on_start || v.save_on_stop {
            remove(&snap(v))?;
        }
        if v.save_on_stop {
            remove(&import(v))?;
        }
        for r in revisions_of(&v.vid, &lvs()) {
            remove(&format!("{}-{}", v.vid, r.id))?;
        }
        remove(&current(&v.vid))
    }

    fn verify(&self, v: &Vol) -> SResult<()> {
        if !v.save_on_stop && !v.snap_on_start {
            return Ok(());
        }
        let vid = match &v.source {
            Some(s) => current(&s.vid),
            None => current(&v.vid),
        };
        if !lvs().contains_key(&vid) {
            return Err(pool_err(format!("volume {vid} missing")));
        }
        Ok(())
    }

    fn start(&self, v: &Vol) -> SResult<()> {
        abort_if_importing(v)?;
        if v.snap_on_start || v.save_on_stop {
            if !v.save_on_stop || !self.is_dirty(v) {
                if v.snapshots_disabled() {
                    prune(v, Some(0))?;
                } else {
                    remove(&snap(v))?;
                    let from = match &v.source {
                        Some(s) => current(&s.vid),
                        None => current(&v.vid),
                    };
                    clone(&from, &snap(v))?;
                }
            } else {
                lvm(&["lvchange", "--activate=y", "--", &current(&v.vid)])?;
            }
        } else {
            remove(&current(&v.vid))?;
            create(&v.pool, lv_name(&v.vid), v.size)?;
        }
        Ok(())
    }

    fn stop(&self, v: &Vol) -> SResult<()> {
        if v.save_on_stop {
            if !v.snapshots_disabled() {
                commit(v, &snap(v), false)?;
            }
        } else if v.snap_on_start {
            remove(&snap(v))?;
        } else {
            remove(&v.vid)?;
        }
        Ok(())
    }

    fn path(&self, v: &Vol) -> String {
        mapper(&current(&v.vid))
    }

    fn block_device(&self, v: &Vol) -> Option<String> {
        if v.snap_on_start || v.save_on_stop {
            let vid = if v.snapshots_disabled() {
                v.vid.clone()
            } else {
                snap(v)
            };
            return Some(mapper(&vid));
        }
        Some(self.path(v))
    }

    fn size(&self, v: &Vol) -> u64 {
        let cache = lvs();
        if (v.snap_on_start || v.save_on_stop)
            && let Some(i) = cache.get(&snap(v))
        {
            return i.size;
        }
        cache.get(&current(&v.vid)).map_or(v.size, |i| i.size)
    }

    fn usage(&self, v: &Vol) -> u64 {
        lvs().get(&current(&v.vid)).map_or(0, |i| i.usage)
    }

    fn revisions(&self, v: &Vol) -> Vec<Revision> {
        revisions_of(&v.vid, &lvs())
    }

    fn revert(&self, v: &Vol, id: &str) -> SResult<()> {
        if self.is_dirty(v) {
            return Err(pool_err(format!(
                "Cannot revert dirty volume {}, stop the qube first",
                v.vid
            )));
        }
        abort_if_importing(v)?;
        let old = format!("{}-{id}", v.vid);
        if !lvs().contains_key(&old) {
            return Err(pool_err(format!("Volume {} has no /dev/{old}", v.vid)));
        }
        remove(&v.vid)?;
        clone(&old, &v.vid)
    }

    fn resize(&self, v: &Vol, size: u64) -> SResult<()> {
        if !v.rw {
            return Err(pool_err(format!(
                "Can not resize readonly volume {}",
                v.vid
            )));
        }
        if size == self.size(v) {
            return Ok(());
        }
        let cache = lvs();
        if self.is_dirty(v) || (v.snap_on_start && cache.contains_key(&snap(v))) {
            resize(&snap(v), size)
        } else if v.save_on_stop && cache.contains_key(&import(v)) {
            resize(&import(v), size)
        } else if v.save_on_stop && !v.snap_on_start {
            resize(&current(&v.vid), size)
        } else {
            Ok(())
        }
    }

    fn is_outdated(&self, v: &Vol) -> Option<bool> {
        if !v.snap_on_start {
            return Some(false);
        }
        let cache = lvs();
        let Some(s) = cache.get(&snap(v)) else {
            return Some(false);
        };
        let src = v.source.as_ref().map(|s| current(&s.vid))?;
        Some(s.origin != lv_name(&src))
    }

    fn is_dirty(&self, v: &Vol) -> bool {
        v.save_on_stop && lvs().contains_key(&snap(v))
    }

    fn import_data(&self, v: &Vol, size: u64) -> SResult<PathBuf> {
        if !v.save_on_stop {
            return Err(not_implemented(format!(
                "Cannot import_data: {} is not save_on_stop",
                v.vid
            )));
        }
        if self.is_dirty(v) {
            return Err(pool_err(format!(
                "Cannot import data to dirty volume {}, stop the qube first",
                v.vid
            )));
        }
        abort_if_importing(v)?;
        create(&v.pool, lv_name(&import(v)), size)?;
        Ok(PathBuf::from(format!("/dev/{}", import(v))))
    }

    fn import_data_end(&self, v: &Vol, success: bool) -> SResult<()> {
        if !lvs().contains_key(&import(v)) {
            return Err(pool_err(format!(
                "No import operation in progress on {}",
                v.vid
            )));
        }
        if success {
            commit(v, &import(v), false).map(|_| ())
        } else {
            remove(&import(v))
        }
    }

    fn export(&self, v: &Vol) -> SResult<PathBuf> {
        let cur = current(&v.vid);
        lvm(&["lvchange", "--activate=y", "--", &cur])?;
        Ok(PathBuf::from(format!("/dev/{cur}")))
    }

    fn import_volume(&self, dst: &Vol, src: &Vol, src_path: &Path) -> SResult<()> {
        if !src.save_on_stop {
            return Ok(());
        }
        if self.is_dirty(dst) {
            return Err(pool_err(format!(
                "Cannot import to dirty volume {} - start and stop a qube to cleanup",
                dst.vid
            )));
        }
        abort_if_importing(dst)?;
        if src.pool.attr("driver") == Some("lvm_thin")
            && src.pool.attr("thin_pool") == dst.pool.attr("thin_pool")
            && src.pool.attr("volume_group") == dst.pool.attr("volume_group")
        {
            // Same thin pool: a thin snapshot is the copy.
            commit(dst, &current(&src.vid), true)?;
            return Ok(());
        }
        let size = super::vol_driver(src)?.size(src);
        create(&dst.pool, lv_name(&import(dst)), size)?;
        let target = PathBuf::from(format!("/dev/{}", import(dst)));
        let copied = std::fs::File::open(src_path).and_then(|mut r| {
            let mut w = std::fs::OpenOptions::new().write(true).open(&target)?;
            std::io::copy(&mut r, &mut w)?;
            w.sync_all()
        });
        if let Err(e) = copied {
            let _ = remove(&import(dst));
            return Err(pool_err(format!(
                "Failed to import volume {}: {e}",
                src.vid
            )));
        }
        commit(dst, &import(dst), false).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of `lvs --reportformat=json --units b` (lvm2 2.03.16) on a loop-device pool.
    const LVS: &str = r#"  {
      "report": [
          {
              "lv": [
                  {"vg_name":"qubes_dom0", "pool_lv":"", "lv_name":"pool00", "lv_size":"1073741824B", "data_percent":"12.50", "lv_attr":"twi-aotz--", "origin":"", "lv_metadata_size":"4194304B", "metadata_percent":"10.00"},
                  {"vg_name":"qubes_dom0", "pool_lv":"pool00", "lv_name":"vm-work-private", "lv_size":"2147483648B", "data_percent":"1.00", "lv_attr":"Vwi-a-tz--", "origin":"", "lv_metadata_size":"", "metadata_percent":""},
                  {"vg_name":"qubes_dom0", "pool_lv":"pool00", "lv_name":"vm-work-private-1700000000-back", "lv_size":"2147483648B", "data_percent":"0.50", "lv_attr":"Vwi---tz-k", "origin":"", "lv_metadata_size":"", "metadata_percent":""},
                  {"vg_name":"qubes_dom0", "pool_lv":"pool00", "lv_name":"vm-work-root-snap", "lv_size":"10737418240B", "data_percent":"0.00", "lv_attr":"Vwi-a-tz--", "origin":"vm-fedora-root", "lv_metadata_size":"", "metadata_percent":""}
              ]
          }
      ]
  }
"#;

    #[test]
    fn lvs_report_is_parsed() {
        let c = parse_lvs(LVS);
        assert_eq!(c.len(), 4);
        let pool = &c["qubes_dom0/pool00"];
        assert_eq!(pool.size, 1 << 30);
        assert_eq!(pool.usage, (1u64 << 30) / 8);
        assert_eq!(pool.metadata, Some((4_194_304, 419_430)));
        assert!(pool.attr.starts_with('t'));
        assert_eq!(c["qubes_dom0/vm-work-root-snap"].origin, "vm-fedora-root");
        let revs = revisions_of("qubes_dom0/vm-work-private", &c);
        assert_eq!(
            revs,
            vec![Revision {
                id: "1700000000-back".into(),
                timestamp: "2023-11-14T22:13:20".into()
            }]
        );
        assert_eq!(
            mapper("qubes_dom0/vm-work-private"),
            "/dev/mapper/qubes_dom0-vm--work--private"
        );
        assert!(parse_lvs("garbage {").is_empty());
    }
}
