//! Storage: pool drivers and the volumes of qubes (admin-api.md §7).
//!
//! The qube model keeps each volume's configuration as written in `qubes.xml`
//! ([`VolumeConfig`]); [`Vol`] is the same volume with its pool and its source resolved, the
//! form every [`Driver`] works on. Drivers are stateless: what a volume looks like on disk (or
//! in LVM) is read back from there each time, as the reference does.

pub mod file;
pub mod fsutil;
pub mod kernel;
pub mod lvm;
pub mod reflink;

use std::path::PathBuf;

use qubes_api::{ExcKind, QubesError};

use crate::model::{Domain, Pool, PowerState, State, VolumeConfig};
use crate::props;

/// A qube's volume with its pool and source resolved.
#[derive(Debug, Clone)]
pub struct Vol {
    /// Owning qube.
    pub vm: String,
    /// Volume name (`root`, `private`, `volatile`, `kernel`).
    pub name: String,
    /// The pool's configuration.
    pub pool: Pool,
    /// Volume id inside the pool.
    pub vid: String,
    /// Configured size in bytes (drivers report the real one).
    pub size: u64,
    /// Writable by the qube.
    pub rw: bool,
    /// Starts from a snapshot of `source`.
    pub snap_on_start: bool,
    /// Changes are kept when the qube stops.
    pub save_on_stop: bool,
    /// Revisions kept on commit (−1: snapshots disabled).
    pub revisions_to_keep: i64,
    /// Explicit `ephemeral` setting, if any.
    pub ephemeral: Option<bool>,
    /// The volume a `snap_on_start` volume is snapshotted from.
    pub source: Option<Box<Vol>>,
    /// Whether the owning qube is not halted.
    pub running: bool,
}

impl Vol {
    /// `revisions_to_keep == -1`: the qube runs on the volume itself.
    pub fn snapshots_disabled(&self) -> bool {
        self.revisions_to_keep == -1
    }

    /// The `ephemeral` value Info reports (admin-api.md §7.2).
    pub fn ephemeral_value(&self) -> bool {
        if self.snap_on_start || self.save_on_stop || !self.rw {
            return false;
        }
        self.ephemeral.unwrap_or_else(|| {
            self.pool
                .attr("ephemeral_volatile")
                .and_then(crate::pycompat::py_bool)
                .unwrap_or(false)
        })
    }

    /// A pool attribute.
    pub fn pool_attr(&self, key: &str) -> Option<&str> {
        self.pool.attr(key)
    }
}

/// One revision of a volume: id and ISO-8601 UTC timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Revision id (`old`, `1`, `1700000000-back`).
    pub id: String,
    /// Creation time, `YYYY-MM-DDTHH:MM:SS`.
    pub timestamp: String,
}

/// Result of a driver operation.
pub type SResult<T> = Result<T, QubesError>;

/// A pool driver (admin-api.md §7.1).
pub trait Driver: Sync {
    /// Driver name as in ListDrivers and qubes.xml.
    fn name(&self) -> &'static str;
    /// Constructor parameters in order, with whether each is required.
    fn params(&self) -> &'static [(&'static str, bool)];
    /// The pool's `config` (what qubes.xml stores and Info prints), from Add's options.
    fn config(&self, name: &str, options: &[(String, String)]) -> SResult<Vec<(String, String)>>;
    /// Prepares the pool's backing store (directories, checks) on Add.
    fn setup(&self, pool: &Pool) -> SResult<()>;
    /// `(size, usage)` of the pool in bytes, when known.
    fn pool_size_usage(&self, pool: &Pool) -> (Option<u64>, Option<u64>);
    /// UsageDetails lines (sorted by the caller).
    fn usage_details(&self, pool: &Pool) -> Vec<(&'static str, u64)> {
        let (size, usage) = self.pool_size_usage(pool);
        let mut out = Vec::new();
        if let Some(u) = usage {
            out.push(("data_usage", u));
        }
        if let Some(s) = size {
            out.push(("data_size", s));
        }
        out
    }
    /// Volume ids the pool holds beyond the qubes' (the kernel pool lists its directory).
    fn extra_volumes(&self, _pool: &Pool) -> Option<Vec<String>> {
        None
    }
    /// Checks a new pool-wide `revisions_to_keep`.
    fn check_pool_revisions(&self, _n: i64) -> SResult<()> {
        Ok(())
    }
    /// Creates the volume's storage (at qube creation).
    fn create(&self, v: &Vol) -> SResult<()>;
    /// Deletes everything the volume has.
    fn remove(&self, v: &Vol) -> SResult<()>;
    /// Checks that a qube can start on the volume.
    fn verify(&self, v: &Vol) -> SResult<()>;
    /// Prepares the volume for a starting qube.
    fn start(&self, v: &Vol) -> SResult<()>;
    /// Commits or discards after the qube stopped.
    fn stop(&self, v: &Vol) -> SResult<()>;
    /// The `path` Info reports.
    fn path(&self, v: &Vol) -> String;
    /// What the hypervisor attaches (None: nothing).
    fn block_device(&self, v: &Vol) -> Option<String> {
        Some(self.path(v))
    }
    /// Current size in bytes.
    fn size(&self, v: &Vol) -> u64;
    /// Bytes used.
    fn usage(&self, v: &Vol) -> u64;
    /// Revisions, oldest first.
    fn revisions(&self, v: &Vol) -> Vec<Revision>;
    /// Makes revision `id` the current data.
    fn revert(&self, v: &Vol, id: &str) -> SResult<()>;
    /// Changes the size.
    fn resize(&self, v: &Vol, size: u64) -> SResult<()>;
    /// Whether a snap_on_start volume's source changed since the snapshot (None: the driver
    /// does not tell, so Info leaves the line out).
    fn is_outdated(&self, v: &Vol) -> Option<bool>;
    /// Where new data of `size` bytes is to be written for an import.
    fn import_data(&self, v: &Vol, size: u64) -> SResult<PathBuf>;
    /// Commits (success) or drops an import.
    fn import_data_end(&self, v: &Vol, success: bool) -> SResult<()>;
    /// A path to read the volume's committed data from (clone source).
    fn export(&self, v: &Vol) -> SResult<PathBuf>;
    /// Whether CloneTo copies `src`'s data into this volume's import file ([`Driver::import_data`],
    /// then [`Driver::import_data_end`]), which the daemon does outside the core. `Ok(false)`:
    /// [`Driver::import_volume`] does the whole import.
    fn clones_by_copy(&self, _dst: &Vol, _src: &Vol) -> SResult<bool> {
        Ok(false)
    }
    /// Replaces the volume's data with the data at `src_path` (CloneTo), for what
    /// [`Driver::clones_by_copy`] leaves to the driver.
    fn import_volume(&self, dst: &Vol, src: &Vol, src_path: &std::path::Path) -> SResult<()>;
    /// Checks a volume's new `revisions_to_keep`.
    fn check_volume_revisions(&self, _v: &Vol, _n: i64) -> SResult<()> {
        Ok(())
    }
    /// Checks a volume's new `rw`.
    fn check_rw(&self, _v: &Vol, _rw: bool) -> SResult<()> {
        Ok(())
    }
    /// Checks a volume's new `ephemeral`.
    fn check_ephemeral(&self, _v: &Vol, _e: bool) -> SResult<()> {
        Ok(())
    }
    /// Whether the volume has uncommitted changes of a running (or crashed) qube.
    fn is_dirty(&self, _v: &Vol) -> bool {
        false
    }
}

static DRIVERS: &[&dyn Driver] = &[
    &file::FileDriver,
    &reflink::ReflinkDriver,
    &kernel::KernelDriver,
    &lvm::ThinDriver,
];

/// Every driver, in ListDrivers order.
pub fn drivers() -> &'static [&'static dyn Driver] {
    DRIVERS
}

/// A driver by name.
pub fn driver(name: &str) -> Option<&'static dyn Driver> {
    DRIVERS.iter().copied().find(|d| d.name() == name)
}

/// The driver of a pool (unknown drivers from a hand-edited qubes.xml are an error).
pub fn pool_driver(pool: &Pool) -> SResult<&'static dyn Driver> {
    let name = pool.attr("driver").unwrap_or("");
    driver(name).ok_or_else(|| {
        QubesError::new(
            ExcKind::StoragePoolException,
            format!("Pool {} uses an unknown driver: {name}", pool.name),
        )
    })
}

/// An option of `admin.pool.Add`'s payload.
pub fn option<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The `config` of the drivers with revisions: name, where the data lives, driver,
/// `revisions_to_keep`, `ephemeral_volatile` (the reference's attribute order).
pub fn standard_config(
    drv: &dyn Driver,
    name: &str,
    options: &[(String, String)],
    location: Vec<(String, String)>,
) -> SResult<Vec<(String, String)>> {
    let revisions = file::int_option(option(options, "revisions_to_keep"), 1)?;
    drv.check_pool_revisions(revisions)?;
    let mut out = vec![("name".to_string(), name.to_string())];
    out.extend(location);
    out.push(("driver".into(), drv.name().into()));
    out.push(("revisions_to_keep".into(), revisions.to_string()));
    out.push((
        "ephemeral_volatile".into(),
        file::bool_option(option(options, "ephemeral_volatile"))?.into(),
    ));
    Ok(out)
}

/// `StoragePoolException` with a message.
pub fn pool_err(msg: impl Into<String>) -> QubesError {
    QubesError::new(ExcKind::StoragePoolException, msg)
}

/// An I/O failure as a clear `StoragePoolException`.
pub fn io_err(what: &str, path: &std::path::Path, e: std::io::Error) -> QubesError {
    pool_err(format!("{what} {}: {e}", path.display()))
}

/// `map_err` helper: an I/O failure on `p` while doing `what`.
pub fn io<'a>(
    what: &'static str,
    p: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> QubesError + 'a {
    move |e| io_err(what, p, e)
}

/// The reference's `NotImplementedError`: a generic failure, logged.
pub fn not_implemented(msg: impl Into<String>) -> QubesError {
    QubesError::silent(msg)
}

fn cfg_attr<'a>(v: &'a VolumeConfig, k: &str) -> Option<&'a str> {
    v.attrs
        .iter()
        .find(|(a, _)| a == k)
        .map(|(_, x)| x.as_str())
}

/// A volume configuration's name.
pub fn cfg_name(v: &VolumeConfig) -> &str {
    cfg_attr(v, "name").unwrap_or("")
}

/// Sets (or adds) an attribute of a volume configuration.
pub fn cfg_set(v: &mut VolumeConfig, k: &str, value: String) {
    match v.attrs.iter_mut().find(|(a, _)| a == k) {
        Some((_, x)) => *x = value,
        None => v.attrs.push((k.to_string(), value)),
    }
}

fn flag(v: &VolumeConfig, k: &str) -> bool {
    cfg_attr(v, k)
        .and_then(crate::pycompat::py_bool)
        .unwrap_or(false)
}

/// Resolves one volume configuration of `d`.
fn resolve(st: &State, d: &Domain, cfg: &VolumeConfig, depth: usize) -> Option<Vol> {
    let pool = st.pool(cfg_attr(cfg, "pool")?)?.clone();
    let name = cfg_name(cfg).to_string();
    let vid = if name == "kernel" && pool.attr("driver") == Some("linux-kernel") {
        // The kernel volume follows the qube's kernel property.
        props::vm_get(st, d, "kernel").unwrap_or_default()
    } else {
        cfg_attr(cfg, "vid").unwrap_or("").to_string()
    };
    let snap_on_start = flag(cfg, "snap_on_start");
    let source = if snap_on_start && depth < 8 {
        source_of(st, d, &name, depth)
    } else {
        None
    };
    Some(Vol {
        vm: d.name.clone(),
        name,
        vid,
        size: cfg_attr(cfg, "size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        rw: flag(cfg, "rw"),
        snap_on_start,
        save_on_stop: flag(cfg, "save_on_stop"),
        revisions_to_keep: cfg_attr(cfg, "revisions_to_keep")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        ephemeral: cfg_attr(cfg, "ephemeral").and_then(crate::pycompat::py_bool),
        source: source.map(Box::new),
        running: !matches!(d.power, PowerState::Halted),
        pool,
    })
}

/// The volume a snap_on_start volume starts from: the template's volume of the same name,
/// following templates while that is itself a snapshot (a disposable's root).
fn source_of(st: &State, d: &Domain, name: &str, depth: usize) -> Option<Vol> {
    let mut t = props::vm_ref(st, d, "template")?;
    for _ in 0..8 {
        let cfg = t.volumes.iter().find(|c| cfg_name(c) == name)?;
        if !flag(cfg, "snap_on_start") {
            return resolve(st, t, cfg, depth + 1);
        }
        t = props::vm_ref(st, t, "template")?;
    }
    None
}

/// The volumes of `d`, in configuration order (root, private, volatile, kernel).
pub fn volumes(st: &State, d: &Domain) -> Vec<Vol> {
    if !d.class.is_local_qube() {
        return Vec::new();
    }
    d.volumes
        .iter()
        .filter_map(|c| resolve(st, d, c, 0))
        .collect()
}

/// One volume of `d` by name.
pub fn volume(st: &State, d: &Domain, name: &str) -> Option<Vol> {
    d.volumes
        .iter()
        .find(|c| cfg_name(c) == name)
        .and_then(|c| resolve(st, d, c, 0))
}

/// The driver serving a volume.
pub fn vol_driver(v: &Vol) -> SResult<&'static dyn Driver> {
    pool_driver(&v.pool)
}

/// Creates every volume of a new qube; on failure removes what was made.
pub fn create_all(st: &State, d: &Domain) -> SResult<()> {
    let vols = volumes(st, d);
    for (i, v) in vols.iter().enumerate() {
        if let Err(e) = vol_driver(v).and_then(|drv| drv.create(v)) {
            for made in &vols[..i] {
                if let Ok(drv) = vol_driver(made) {
                    let _ = drv.remove(made);
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Removes every volume of a qube and its directory; failures are logged (the qube is gone
/// from qubes.xml already, as in the reference).
pub fn remove_all(vols: &[Vol]) {
    for v in vols {
        match vol_driver(v).and_then(|drv| drv.remove(v)) {
            Ok(()) => {}
            Err(e) => tracing::warn!("removing volume {}: {e}", v.vid),
        }
    }
}

/// After a qube is removed: its volumes, then its directory of side files
/// (`firewall.xml`, `notes.txt`), as the reference's `remove_from_disk` does.
pub fn remove_from_disk(vols: Vec<Vol>, qube_dir: std::path::PathBuf) -> Box<dyn FnOnce() + Send> {
    Box::new(move || {
        remove_all(&vols);
        if let Err(e) = std::fs::remove_dir_all(&qube_dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", qube_dir.display());
        }
    })
}

/// Verifies and starts every volume of a starting qube; on failure stops those started.
pub fn start_all(st: &State, d: &Domain) -> SResult<()> {
    let vols = volumes(st, d);
    for v in &vols {
        vol_driver(v)?.verify(v)?;
    }
    for (i, v) in vols.iter().enumerate() {
        if let Err(e) = vol_driver(v).and_then(|drv| drv.start(v)) {
            for started in vols[..i].iter().rev() {
                if let Ok(drv) = vol_driver(started) {
                    let _ = drv.stop(started);
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Commits or discards every volume of a stopped qube; failures are logged.
pub fn stop_all(st: &State, d: &Domain) {
    for v in volumes(st, d) {
        if let Err(e) = vol_driver(&v).and_then(|drv| drv.stop(&v)) {
            tracing::error!("stopping volume {} of {}: {e}", v.name, v.vm);
        }
    }
}

/// The disks the hypervisor attaches: (volume name, path, writable), kernel excluded.
pub fn block_devices(st: &State, d: &Domain) -> Vec<(String, String, bool)> {
    volumes(st, d)
        .into_iter()
        .filter(|v| v.name != "kernel")
        .filter_map(|v| {
            let path = vol_driver(&v).ok()?.block_device(&v)?;
            Some((v.name.clone(), path, v.rw))
        })
        .collect()
}

/// Whether any qube keeps a volume in `pool`.
pub fn pool_in_use(st: &State, pool: &str) -> bool {
    st.domains
        .values()
        .any(|d| d.volumes.iter().any(|c| cfg_attr(c, "pool") == Some(pool)))
}

/// Volume ids of a pool: its qubes' volumes, or what the driver lists.
pub fn pool_volume_ids(st: &State, pool: &Pool) -> Vec<String> {
    if let Some(ids) = pool_driver(pool).ok().and_then(|d| d.extra_volumes(pool)) {
        return ids;
    }
    // In the order the qubes came (qid), as the reference lists the volumes it set up.
    let mut qubes: Vec<&Domain> = st.domains.values().map(|d| d.as_ref()).collect();
    qubes.sort_by_key(|d| d.qid);
    let mut out = Vec::new();
    for d in qubes {
        for v in volumes(st, d) {
            if v.pool.name == pool.name && !out.contains(&v.vid) {
                out.push(v.vid);
            }
        }
    }
    out
}

/// The pool whose directory holds `pool`'s (admin-api.md §7.2 `included_in`).
pub fn included_in<'a>(st: &'a State, pool: &Pool) -> Option<&'a Pool> {
    let dir = std::fs::canonicalize(pool.attr("dir_path")?).ok()?;
    st.pools.iter().find(|p| {
        p.name != pool.name
            && p.attr("dir_path")
                .and_then(|d| std::fs::canonicalize(d).ok())
                .is_some_and(|pd| dir.starts_with(pd))
    })
}

/// Splits and checks a bool word payload (`ProtocolError` `Payload is not boolean ASCII`).
pub fn bool_payload(untrusted: &[u8]) -> SResult<bool> {
    std::str::from_utf8(untrusted)
        .ok()
        .filter(|s| s.is_ascii())
        .and_then(crate::pycompat::py_bool)
        .ok_or_else(|| QubesError::protocol("Payload is not boolean ASCII"))
}

/// `validate_number` of the reference (admin-api.md §7.3).
pub fn validate_number(untrusted: &[u8], name: &str, allow_negative: bool) -> SResult<i64> {
    let mut cap = name.to_string();
    if let Some(f) = cap.get_mut(..1) {
        f.make_ascii_uppercase();
    }
    let (neg, digits) = match untrusted.strip_prefix(b"-") {
        Some(rest) if allow_negative => (true, rest),
        _ => (false, untrusted),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(QubesError::protocol(format!(
            "{cap} contains non ASCII digits"
        )));
    }
    if digits.len() >= 20 {
        return Err(QubesError::protocol(format!(
            "{cap} is bigger than 19 decimal digits"
        )));
    }
    if digits[0] == b'0' && digits != b"0" {
        return Err(QubesError::protocol(format!(
            "{cap} contains spurious leading zeros"
        )));
    }
    let n: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| QubesError::protocol(format!("{cap} is bigger than 19 decimal digits")))?;
    let n = i64::try_from(n).map_err(|_| QubesError::value(format!("{cap} is too large")))?;
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_validation_messages() {
        assert_eq!(validate_number(b"123", "volume size", false).unwrap(), 123);
        assert_eq!(
            validate_number(b"-1", "revisions to keep", true).unwrap(),
            -1
        );
        let msg = |r: SResult<i64>| r.unwrap_err().to_string();
        assert_eq!(
            msg(validate_number(b"-1", "volume size", false)),
            "ProtocolError: Volume size contains non ASCII digits"
        );
        assert_eq!(
            msg(validate_number(b"012", "volume size", false)),
            "ProtocolError: Volume size contains spurious leading zeros"
        );
        assert_eq!(
            msg(validate_number(
                b"12345678901234567890",
                "size of new data",
                false
            )),
            "ProtocolError: Size of new data is bigger than 19 decimal digits"
        );
        assert!(validate_number(b"", "x", false).is_err());
        assert!(validate_number(b"9999999999999999999", "x", false).is_err());
    }
}
