//! What else changes when a property changes: the events and changes the reference's
//! extensions add (icons, `servicevm`, gui/audio tags, inherited values, users of a global
//! default), and what still refers to a qube (admin-api.md §4.4).

use qubes_api::QubesError;

use super::features::{remove as remove_feature, set as set_feature};
use crate::model::{Class, Domain, State};
use crate::props::{self, PType};
use crate::txn::Txn;

/// Events and changes the reference's handlers add after a qube property changed; they are
/// fired before the `property-set` event itself.
pub fn vm_side_effects(t: &mut Txn, vm: &str, prop: &str, value: &str) -> Result<(), QubesError> {
    match prop {
        "label" | "template_for_dispvms" => t.fire(vm, "property-reset:icon", &[("name", "icon")]),
        "provides_network" => {
            let has =
                t.st.domain(vm)
                    .and_then(|d| d.feature("servicevm"))
                    .is_some();
            if value == "True" {
                set_feature(t, vm, "servicevm", "1")?;
            } else if has {
                remove_feature(t, vm, "servicevm");
            }
            for p in ["icon", "gateway", "gateway6"] {
                t.fire(vm, format!("property-reset:{p}"), &[("name", p)]);
            }
        }
        "guivm" | "audiovm" => {
            let prefix = format!("{prop}-");
            let old: Vec<String> =
                t.st.domain(vm)
                    .map(|d| {
                        d.tags
                            .iter()
                            .filter(|t| t.starts_with(&prefix))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
            let effective =
                t.st.domain(vm)
                    .and_then(|d| props::vm_get(&t.st, d, prop))
                    .unwrap_or_default();
            for tag in old {
                if tag != format!("{prefix}{effective}")
                    && let Some(d) = t.st.domain_mut(vm)
                {
                    d.tags.remove(&tag);
                    t.fire(vm, format!("domain-tag-delete:{tag}"), &[("tag", &tag)]);
                }
            }
            if !effective.is_empty() {
                let tag = format!("{prefix}{effective}");
                if let Some(d) = t.st.domain_mut(vm)
                    && d.tags.insert(tag.clone())
                {
                    t.fire(vm, format!("domain-tag-add:{tag}"), &[("tag", &tag)]);
                }
            }
        }
        _ => {}
    }
    // Qubes that inherit this value from their template see it change.
    let is_template =
        t.st.domain(vm)
            .is_some_and(|d| d.class == Class::TemplateVM);
    if is_template && INHERITED.contains(&prop) {
        let children: Vec<String> =
            t.st.domains
                .values()
                .filter(|d| {
                    d.class.has_template()
                        && d.props.get("template").map(String::as_str) == Some(vm)
                        && !d.props.contains_key(prop)
                })
                .map(|d| d.name.clone())
                .collect();
        for child in children {
            t.fire(&child, format!("property-reset:{prop}"), &[("name", prop)]);
        }
    }
    Ok(())
}

/// Properties a template-based qube takes from its template by default.
const INHERITED: [&str; 10] = [
    "default_user",
    "kernel",
    "kernelopts",
    "maxmem",
    "memory",
    "qrexec_timeout",
    "shutdown_timeout",
    "vcpus",
    "virt_mode",
    "management_dispvm",
];

/// Side effects of a global property change.
pub fn global_side_effects(
    t: &mut Txn,
    prop: &str,
    old: Option<&str>,
    new: &str,
) -> Result<(), QubesError> {
    match prop {
        "clockvm" => {
            if let Some(o) = old.filter(|o| !o.is_empty() && *o != new)
                && t.st
                    .domain(o)
                    .and_then(|d| d.feature("service.clocksync"))
                    .is_some()
            {
                remove_feature(t, o, "service.clocksync");
            }
            if !new.is_empty() {
                set_feature(t, new, "service.clocksync", "1")?;
            }
        }
        "default_netvm" | "default_dispvm" | "default_guivm" | "default_audiovm" => {
            let vm_prop = match prop {
                "default_netvm" => "netvm",
                "default_guivm" => "guivm",
                "default_audiovm" => "audiovm",
                _ => "default_dispvm",
            };
            let users: Vec<String> =
                t.st.domains_sorted()
                    .filter(|d| uses_global_default(d, vm_prop))
                    .map(|d| d.name.clone())
                    .collect();
            let old = match old {
                Some(o) if !o.is_empty() => o.to_string(),
                _ => "None".to_string(),
            };
            for u in users {
                t.fire(
                    &u,
                    format!("property-reset:{vm_prop}"),
                    &[("name", vm_prop), ("oldvalue", &old)],
                );
                if matches!(vm_prop, "guivm" | "audiovm") {
                    vm_side_effects(t, &u, vm_prop, new)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether a qube's `vm_prop` currently follows the global default of the same name.
fn uses_global_default(d: &Domain, vm_prop: &str) -> bool {
    if props::vm_prop(d.class, vm_prop).is_none() || d.props.contains_key(vm_prop) {
        return false;
    }
    // Templates have no default netvm; a disposable's default_dispvm is its template.
    !matches!(
        (vm_prop, d.class),
        ("netvm", Class::TemplateVM) | ("default_dispvm", Class::DispVM)
    )
}

/// Why a qube cannot be removed: a non-default qube property of another qube or a global
/// property points at it.
pub fn referenced_by(st: &State, name: &str) -> Option<String> {
    for (k, v) in &st.global {
        if v == name && props::global_prop(k).is_some_and(|d| d.ty == PType::Vm) {
            return Some(format!("global property {k}"));
        }
    }
    for d in st.domains.values() {
        if d.name == name {
            continue;
        }
        for (k, v) in &d.props {
            if v == name && props::vm_prop(d.class, k).is_some_and(|p| p.ty == PType::Vm) {
                return Some(format!("{}.{k}", d.name));
            }
        }
    }
    None
}
