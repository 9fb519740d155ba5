//! Qubes as a whole: the class lists, `admin.vm.List`, creating and removing qubes
//! (admin-api.md §2.1, §2.2).

use qubes_api::QubesError;

use super::Want::{Any, No};
use super::{ANY, DOM0, Method, Req, View, read, write};
use crate::model::{Class, Domain};
use crate::names;
use crate::ops::qubes::{self as op, CreateSpec};
use crate::reply::{Reply, empty, lines, ok};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.vmclass.List", No, No, DOM0, vmclass_list),
    read("admin.deviceclass.List", No, No, DOM0, deviceclass_list),
    read("admin.vm.List", No, No, ANY, vm_list),
    write("admin.vm.Create.AppVM", Any, Any, DOM0, create_appvm),
    write(
        "admin.vm.Create.TemplateVM",
        Any,
        Any,
        DOM0,
        create_templatevm,
    ),
    write(
        "admin.vm.Create.StandaloneVM",
        Any,
        Any,
        DOM0,
        create_standalonevm,
    ),
    write("admin.vm.Create.AdminVM", Any, Any, DOM0, create_adminvm),
    write("admin.vm.Create.DispVM", Any, Any, DOM0, create_dispvm),
    write("admin.vm.Create.RemoteVM", Any, Any, DOM0, create_remotevm),
    write(
        "admin.vm.CreateInPool.AppVM",
        Any,
        Any,
        DOM0,
        create_in_pool_appvm,
    ),
    write(
        "admin.vm.CreateInPool.TemplateVM",
        Any,
        Any,
        DOM0,
        create_in_pool_templatevm,
    ),
    write(
        "admin.vm.CreateInPool.StandaloneVM",
        Any,
        Any,
        DOM0,
        create_in_pool_standalonevm,
    ),
    write(
        "admin.vm.CreateInPool.AdminVM",
        Any,
        Any,
        DOM0,
        create_in_pool_adminvm,
    ),
    write(
        "admin.vm.CreateInPool.DispVM",
        Any,
        Any,
        DOM0,
        create_in_pool_dispvm,
    ),
    write(
        "admin.vm.CreateInPool.RemoteVM",
        Any,
        Any,
        DOM0,
        create_in_pool_remotevm,
    ),
    write(
        "admin.vm.CreateDisposable",
        Any,
        Any,
        ANY,
        create_disposable,
    ),
    write("admin.vm.Remove", No, No, ANY, vm_remove),
];

fn vmclass_list(_: &Req, _: &View) -> Result<Reply, QubesError> {
    // The reference lists its entry points sorted by name.
    let mut names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
    names.sort_unstable();
    ok(lines(names))
}

fn deviceclass_list(_: &Req, _: &View) -> Result<Reply, QubesError> {
    ok("block\npci\n")
}

/// One `admin.vm.List` line.
pub fn vm_list_line(d: &Domain) -> String {
    format!(
        "{} class={} state={} uuid={}\n",
        d.name,
        d.class.name(),
        d.power.name(),
        d.uuid()
    )
}

fn vm_list(r: &Req, v: &View) -> Result<Reply, QubesError> {
    if r.dest == "dom0" && v.filter.is_none() {
        // Every client lists everything at start and after each reconnect: one text per state.
        let text = v.memo.get(v.st, "admin.vm.List", || {
            let mut out = String::with_capacity(v.st.domains.len() * 80);
            for d in v.st.domains_sorted() {
                out.push_str(&vm_list_line(d));
            }
            out.into_bytes()
        });
        return Ok(Reply::Shared(text));
    }
    let shown: Vec<&Domain> = if r.dest == "dom0" {
        v.st.domains_sorted().collect()
    } else {
        vec![r.dest_in(v.st)?]
    };
    // A caller other than dom0 sees what the policy allows it to list (ask counts as deny).
    let visible = |d: &Domain| match &v.filter {
        None => true,
        Some(filter) => filter.allows(&r.src, "admin.vm.List+", &d.name),
    };
    let mut out = String::with_capacity(shown.len() * 80);
    for d in shown.into_iter().filter(|d| visible(d)) {
        out.push_str(&vm_list_line(d));
    }
    ok(out)
}

macro_rules! create_fns {
    ($($f:ident => $class:ident, $pool:expr);* $(;)?) => {
        $(fn $f(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
            vm_create(r, t, Class::$class, $pool)
        })*
    };
}

create_fns! {
    create_appvm => AppVM, false;
    create_templatevm => TemplateVM, false;
    create_standalonevm => StandaloneVM, false;
    create_adminvm => AdminVM, false;
    create_dispvm => DispVM, false;
    create_remotevm => RemoteVM, false;
    create_in_pool_appvm => AppVM, true;
    create_in_pool_templatevm => TemplateVM, true;
    create_in_pool_standalonevm => StandaloneVM, true;
    create_in_pool_adminvm => AdminVM, true;
    create_in_pool_dispvm => DispVM, true;
    create_in_pool_remotevm => RemoteVM, true;
}

/// Volume names a creation payload may name.
const VOLUME_NAMES: [&str; 4] = ["root", "private", "volatile", "kernel"];

/// Decodes `admin.vm.Create*`: template argument and `key=value` payload, with the
/// reference's refusals in its order; what names something missing is only noted, since
/// existence is checked after the other refusals.
fn vm_create(r: &Req, t: &mut Txn, class: Class, allow_pool: bool) -> Result<Reply, QubesError> {
    let mut spec = CreateSpec::new(class);
    if !r.arg.is_empty() {
        if !class.has_template() {
            return Err(QubesError::protocol(format!(
                "{} cannot be based on template",
                class.name()
            )));
        }
        spec.template = Some(r.arg.clone());
    }
    let payload = std::str::from_utf8(&r.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::protocol("Parameters contains non-ASCII characters"))?;
    let mut label_seen = false;
    for untrusted_param in payload.split(' ') {
        let Some((key, value)) = untrusted_param.split_once('=') else {
            return Err(QubesError::silent("creation parameter without '='"));
        };
        let dup = match key {
            "name" => spec.name.is_some(),
            "label" => label_seen,
            _ => false,
        };
        if dup {
            return Err(QubesError::protocol("Options must be unique"));
        }
        match key {
            "name" => {
                names::validate_name(value)?;
                spec.name = Some(value.to_string());
            }
            "label" => {
                op::validate_label_for_creation(value)?;
                label_seen = true;
                spec.label = Some(value.to_string());
            }
            "pool" if allow_pool => {
                if spec.pool.is_some() {
                    return Err(QubesError::protocol("Option 'pool' must be unique"));
                }
                spec.pool = Some(value.to_string());
            }
            k if allow_pool && k.starts_with("pool:") => {
                let vol = &k[5..];
                if !VOLUME_NAMES.contains(&vol) {
                    return Err(QubesError::protocol(
                        "Volume must be one of: root, private, volatile, kernel",
                    ));
                }
                if spec.pools.iter().any(|(v, _)| v == vol) {
                    return Err(QubesError::protocol(format!(
                        "Option 'pool:{vol}' must be unique"
                    )));
                }
                spec.pools.push((vol.to_string(), value.to_string()));
            }
            k => {
                if !allow_pool && (k == "pool" || k.starts_with("pool:")) {
                    return Err(QubesError::protocol(
                        "Pool option specified but 'allow_pool' is False",
                    ));
                }
                return Err(QubesError::protocol(
                    "Options does not match: name, label, pool, pool:",
                ));
            }
        }
    }
    op::create(t, &r.src, spec)?;
    empty()
}

fn create_disposable(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    if !(r.arg.is_empty() || r.arg == "preload") {
        return Err(crate::ops::arg_not_in("'', 'preload'"));
    }
    let want_uuid = match r.untrusted_payload.as_slice() {
        b"" => false,
        b"uuid" => true,
        _ => {
            return Err(QubesError::protocol(
                "Invalid payload, expected empty string or 'uuid'",
            ));
        }
    };
    let template = (r.dest != "dom0").then(|| r.dest.clone());
    if r.arg == "preload" {
        op::preload_disposable(t, &r.src, template)?;
        return empty();
    }
    let (name, uuid) = op::create_disposable(t, &r.src, template)?;
    ok(if want_uuid {
        format!("uuid:{uuid}")
    } else {
        name
    })
}

fn vm_remove(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    op::remove(t, &r.dest)?;
    empty()
}
