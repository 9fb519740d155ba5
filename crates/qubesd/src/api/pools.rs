//! Storage pools: `admin.pool.*` (admin-api.md §2.6, §7.7). Checks run in the reference's
//! order; disk changes come last, after everything that can refuse the call.

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use super::Want::{No, Yes};
use super::{DOM0, Method, Req, View, read, read_blocking, write};
use crate::model::Pool;
use crate::ops::arg_not_in;
use crate::ops::storage::{arg_pool, set_pool_attr};
use crate::pycompat::bool_word as b;
use crate::reply::{Reply, empty, lines, ok};
use crate::storage::{bool_payload, pool_driver, validate_number};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.pool.List", No, No, DOM0, pool_list),
    read("admin.pool.ListDrivers", No, No, DOM0, pool_list_drivers),
    read_blocking("admin.pool.Info", Yes, No, DOM0, pool_info),
    read_blocking("admin.pool.UsageDetails", Yes, No, DOM0, pool_usage_details),
    write("admin.pool.Add", Yes, Yes, DOM0, pool_add),
    write("admin.pool.Remove", Yes, No, DOM0, pool_remove),
    write(
        "admin.pool.Set.revisions_to_keep",
        Yes,
        Yes,
        DOM0,
        pool_set_revisions_to_keep,
    ),
    write(
        "admin.pool.Set.ephemeral_volatile",
        Yes,
        Yes,
        DOM0,
        pool_set_ephemeral_volatile,
    ),
    read("admin.pool.volume.List", Yes, No, DOM0, pool_volume_list),
];

// ---- pools ------------------------------------------------------------------------------

fn pool_list(_: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(lines(v.st.pools.iter().map(|p| p.name.as_str())))
}

/// Drivers the reference offers that qubesd has not: listed with their parameters as the
/// reference lists them, refused by `admin.pool.Add`.
const ABSENT_DRIVERS: [(&str, &str); 2] = [
    ("callback", "conf_id"),
    (
        "zfs",
        "revisions_to_keep container ephemeral_volatile snap_on_start_forensics",
    ),
];

fn pool_list_drivers(_: &Req, _: &View) -> Result<Reply, QubesError> {
    let mut all: Vec<String> = crate::storage::drivers()
        .iter()
        .map(|d| {
            let params: Vec<&str> = d.params().iter().map(|(p, _)| *p).collect();
            format!("{} {}", d.name(), params.join(" "))
        })
        .chain(ABSENT_DRIVERS.iter().map(|(d, p)| format!("{d} {p}")))
        .collect();
    all.sort();
    ok(lines(all))
}

fn pool_info(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let pool = arg_pool(v.st, &r.arg)?;
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
    if let Some(p) = crate::storage::included_in(v.st, &pool) {
        out.push_str(&format!("included_in={}\n", p.name));
    }
    ok(out)
}

fn pool_usage_details(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let pool = arg_pool(v.st, &r.arg)?;
    let mut details = pool_driver(&pool)?.usage_details(&pool);
    details.sort();
    ok(details
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect::<String>())
}

fn pool_volume_list(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let pool = arg_pool(v.st, &r.arg)?;
    ok(lines(crate::storage::pool_volume_ids(v.st, &pool)))
}

fn pool_add(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    if ABSENT_DRIVERS.iter().any(|(d, _)| *d == r.arg) {
        return Err(QubesError::new(
            ExcKind::StoragePoolException,
            format!(
                "The {} storage driver is not available in this qubesd",
                r.arg
            ),
        ));
    }
    let drv = crate::storage::driver(&r.arg).ok_or_else(|| arg_not_in("available drivers"))?;
    let text = std::str::from_utf8(&r.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::protocol("Pool parameters contains non-ASCII characters"))?;
    let untrusted_lines = crate::pycompat::py_splitlines(text);
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
    let exists = t.st.pool(&name).is_some();
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
    t.st.pools.push(Pool {
        name: name.clone(),
        attrs,
    });
    t.fire("", "pool-add", &[("pool", &name)]);
    t.save = true;
    empty()
}

fn pool_remove(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let pool = arg_pool(&t.st, &r.arg)?;
    if crate::storage::pool_in_use(&t.st, &pool.name) {
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
        if crate::props::global_get(&t.st, prop).as_deref() == Some(pool.name.as_str()) {
            return Err(QubesError::new(
                ExcKind::QubesPoolInUseError,
                format!("Storage pool is in use: set as default_pool{suffix}"),
            ));
        }
    }
    // Only a pool that goes gets the pre-event.
    t.fire("", "pool-pre-delete", &[("pool", &pool.name)]);
    t.st.pools.retain(|p| p.name != pool.name);
    t.fire("", "pool-delete", &[("pool", &pool.name)]);
    t.save = true;
    empty()
}

fn pool_set_revisions_to_keep(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let pool = arg_pool(&t.st, &r.arg)?;
    let n = validate_number(&r.untrusted_payload, "revisions to keep", true)?;
    if n < -1 {
        return Err(QubesError::protocol("Value can't be lower than -1"));
    }
    t.save = true;
    if pool.attr("driver") == Some("linux-kernel") {
        // The kernel pool keeps no revisions: 0 is accepted and changes nothing.
        if n != 0 {
            return Err(QubesError::value(
                "LinuxKernel supports only revisions_to_keep=0",
            ));
        }
        return empty();
    }
    pool_driver(&pool)?.check_pool_revisions(n)?;
    set_pool_attr(t, &r.arg, "revisions_to_keep", n.to_string());
    t.save = true;
    empty()
}

fn pool_set_ephemeral_volatile(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let pool = arg_pool(&t.st, &r.arg)?;
    let v = bool_payload(&r.untrusted_payload)?;
    if pool.attr("driver") == Some("linux-kernel") {
        // Nothing to set: the reference sets an attribute its kernel pool does not use.
        t.save = true;
        return empty();
    }
    set_pool_attr(t, &r.arg, "ephemeral_volatile", b(v).into());
    t.save = true;
    empty()
}
