//! Cloning a qube the way `qvm-clone` does: create a qube of the same class (and template),
//! copy the properties that were set, tags, features, notes and firewall rules, then copy
//! each `save_on_stop` volume with `admin.vm.volume.CloneFrom` / `CloneTo`. A failure removes
//! the half-made clone. Renaming is built on it, as in the reference manager. Blocking, no
//! widgets: the window runs it on a worker thread (the dialog asking for the name is
//! [`crate::dialogs::clone`]).

use qubes_api::{CallError, Client, PropValue};

use crate::errors::describe;
use crate::i18n::tr;

/// Properties `admin.vm.Create` already set, or that belong to the original only.
const NOT_COPIED: [&str; 6] = [
    "name",
    "qid",
    "template",
    "label",
    "uuid",
    "installed_by_rpm",
];

/// What a copy may have other than the original.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneOptions {
    /// Another class (a standalone qube or a template from a template).
    pub class: Option<String>,
    /// Another label.
    pub label: Option<String>,
    /// The storage pool of every volume (`None`: the default pools).
    pub pool: Option<String>,
}

/// Clones `src` as `dst`; `progress` hears each step (for the status line).
pub fn clone_qube(
    client: &Client,
    src: &str,
    dst: &str,
    options: &CloneOptions,
    progress: &dyn Fn(String),
) -> Result<(), String> {
    let entry = client
        .vm_list()
        .map_err(|e| describe(&e))?
        .into_iter()
        .find(|e| e.name == src)
        .ok_or_else(|| tr("The qube no longer exists."))?;
    let props = client.property_get_all(src).map_err(|e| describe(&e))?;
    let get = |p: &str| props.iter().find(|(k, _)| k == p).map(|(_, v)| v.clone());
    let label = options
        .label
        .clone()
        .or_else(|| get("label").map(|v| v.value))
        .unwrap_or_else(|| "red".into());
    let class = options.class.as_deref().unwrap_or(&entry.class);
    let template = match get("template") {
        Some(PropValue { value, .. }) if class == "AppVM" || class == "DispVM" => value,
        _ => String::new(),
    };
    progress(tr("Cloning %s: creating the qube").replacen("%s", src, 1));
    let mut payload = format!("name={dst} label={label}");
    let method = match &options.pool {
        Some(pool) => {
            payload.push_str(&format!(" pool={pool}"));
            format!("admin.vm.CreateInPool.{class}")
        }
        None => {
            // As qvm-clone: volumes the original keeps outside their default pools stay in
            // the same pools.
            let pools = own_pools(client, src);
            for (vol, pool) in &pools {
                payload.push_str(&format!(" pool:{vol}={pool}"));
            }
            if pools.is_empty() {
                format!("admin.vm.Create.{class}")
            } else {
                format!("admin.vm.CreateInPool.{class}")
            }
        }
    };
    client
        .call(&method, "dom0", &template, payload.as_bytes())
        .map_err(|e| describe(&e))?;
    let result = copy_into(client, src, dst, &props, progress);
    if result.is_err() {
        // Leave nothing half-made behind.
        let _ = client.call("admin.vm.Remove", dst, "", b"");
    }
    result
}

/// The volumes of `vm` that are not in the system's default pool for them, with their pools,
/// sorted.
fn own_pools(client: &Client, vm: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for vol in client
        .call("admin.vm.volume.List", vm, "", b"")
        .unwrap_or_default()
        .lines()
    {
        let Ok(info) = client.call("admin.vm.volume.Info", vm, vol, b"") else {
            continue;
        };
        let Some(pool) = info.lines().find_map(|l| l.strip_prefix("pool=")) else {
            continue;
        };
        let default = client
            .call(
                "admin.property.Get",
                "dom0",
                &format!("default_pool_{vol}"),
                b"",
            )
            .ok()
            .and_then(|v| PropValue::parse(&v).ok())
            .map(|v| v.value);
        if default.is_some_and(|d| d != pool) {
            out.push((vol.to_string(), pool.to_string()));
        }
    }
    out.sort();
    out
}

/// What refers to `vm`: the qube-valued properties of other qubes (`Some(qube)`) and of the
/// system (`None`) set to it (not following a default), as the reference's `vm_dependencies`.
pub fn dependencies(client: &Client, vm: &str) -> Result<Vec<(Option<String>, String)>, String> {
    let mut out = Vec::new();
    for q in client.vm_list().map_err(|e| describe(&e))? {
        if q.name == vm {
            continue;
        }
        // A qube gone meanwhile refers to nothing.
        let Ok(props) = client.property_get_all(&q.name) else {
            continue;
        };
        for (name, v) in props {
            if v.ty == "vm" && !v.is_default && v.value == vm {
                out.push((Some(q.name.clone()), name));
            }
        }
    }
    for (name, v) in client.global_property_get_all().map_err(|e| describe(&e))? {
        if v.ty == "vm" && !v.is_default && v.value == vm {
            out.push((None, name));
        }
    }
    Ok(out)
}

/// How a rename ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renamed {
    /// The qube has its new name; nothing refers to the old one.
    Done,
    /// The copy exists, but these (`qube: property`, `global: property`) still name the old
    /// qube, which is therefore kept: both exist now.
    Partly(Vec<String>),
}

/// Renames `old` to `new` as the reference manager does (the Admin API has no rename): copies
/// the qube to the new name, points what referred to it at the copy, and removes the old one
/// only when nothing names it any more. Refused while a qube using it as its template runs.
pub fn rename_qube(
    client: &Client,
    old: &str,
    new: &str,
    progress: &dyn Fn(String),
) -> Result<Renamed, String> {
    let deps = dependencies(client, old)?;
    let running: Vec<String> = client
        .vm_list()
        .map_err(|e| describe(&e))?
        .into_iter()
        .filter(|q| q.state != "Halted")
        .map(|q| q.name)
        .filter(|q| {
            deps.iter()
                .any(|(h, p)| h.as_deref() == Some(q.as_str()) && p == "template")
        })
        .collect();
    if !running.is_empty() {
        return Err(tr(
            "These qubes use it as their template and are running: %s. Shut them down first.",
        )
        .replacen("%s", &running.join(", "), 1));
    }
    clone_qube(client, old, new, &CloneOptions::default(), progress)?;
    progress(tr("Renaming %s: pointing what used it to the new name").replacen("%s", old, 1));
    let mut failed = Vec::new();
    for (holder, prop) in &deps {
        let result = match holder {
            Some(q) => client.call("admin.vm.property.Set", q, prop, new.as_bytes()),
            None => client.call("admin.property.Set", "dom0", prop, new.as_bytes()),
        };
        if result.is_err() {
            failed.push(format!(
                "{}: {prop}",
                holder.clone().unwrap_or_else(|| tr("global"))
            ));
        }
    }
    if !failed.is_empty() {
        return Ok(Renamed::Partly(failed));
    }
    client
        .call("admin.vm.Remove", old, "", b"")
        .map_err(|e| describe(&e))?;
    Ok(Renamed::Done)
}

fn read_only(e: &CallError) -> bool {
    match e {
        CallError::Exception { kind, message } => {
            kind == "QubesNoSuchPropertyError" || message.contains("read-only")
        }
        _ => false,
    }
}

fn copy_into(
    client: &Client,
    src: &str,
    dst: &str,
    props: &[(String, PropValue)],
    progress: &dyn Fn(String),
) -> Result<(), String> {
    let fail = |e: CallError| describe(&e);
    progress(tr("Cloning %s: copying settings").replacen("%s", src, 1));
    for (name, v) in props {
        if v.is_default || NOT_COPIED.contains(&name.as_str()) {
            continue;
        }
        match client.call("admin.vm.property.Set", dst, name, v.value.as_bytes()) {
            Err(e) if !read_only(&e) => return Err(fail(e)),
            _ => {}
        }
    }
    for tag in client
        .call("admin.vm.tag.List", src, "", b"")
        .map_err(fail)?
        .lines()
        .filter(|t| !t.starts_with("created-by-"))
    {
        client
            .call("admin.vm.tag.Set", dst, tag, b"")
            .map_err(fail)?;
    }
    for feature in client
        .call("admin.vm.feature.List", src, "", b"")
        .map_err(fail)?
        .lines()
        .filter(|f| !f.starts_with("preload-dispvm") || *f == "preload-dispvm-max")
    {
        let value = client
            .call("admin.vm.feature.Get", src, feature, b"")
            .map_err(fail)?;
        client
            .call("admin.vm.feature.Set", dst, feature, value.as_bytes())
            .map_err(fail)?;
    }
    if let Ok(notes) = client.call("admin.vm.notes.Get", src, "", b"")
        && !notes.is_empty()
    {
        client
            .call("admin.vm.notes.Set", dst, "", notes.as_bytes())
            .map_err(fail)?;
    }
    // Firewall rules (a daemon without the firewall calls has none to copy).
    if let Ok(rules) = client.call("admin.vm.firewall.Get", src, "", b"")
        && !rules.is_empty()
    {
        client
            .call("admin.vm.firewall.Set", dst, "", rules.as_bytes())
            .map_err(fail)?;
    }
    let volumes: Vec<String> = client
        .call("admin.vm.volume.List", dst, "", b"")
        .map(|l| l.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let to_copy: Vec<&String> = volumes
        .iter()
        .filter(|v| {
            client
                .call("admin.vm.volume.Info", dst, v, b"")
                .is_ok_and(|i| i.lines().any(|l| l == "save_on_stop=True"))
        })
        .collect();
    for (i, vol) in to_copy.iter().enumerate() {
        progress(
            tr("Cloning %s: copying volume %s (%d of %d)")
                .replacen("%s", src, 1)
                .replacen("%s", vol, 1)
                .replacen("%d", &(i + 1).to_string(), 1)
                .replacen("%d", &to_copy.len().to_string(), 1),
        );
        let token = client
            .call("admin.vm.volume.CloneFrom", src, vol, b"")
            .map_err(fail)?;
        client
            .call("admin.vm.volume.CloneTo", dst, vol, token.as_bytes())
            .map_err(fail)?;
    }
    Ok(())
}
