//! What the reference's event handlers do when a property event fires: the changes and the
//! further events its extensions and qube classes add (icons, `servicevm`, gui/audio/relay
//! tags, network resets, the users of a global default, inherited values).
//!
//! The reference delivers an event to the class and extension handlers and to the
//! `admin.Events` stream in a fixed order: the stream sees a `*-pre-*` event before the
//! handlers run (so it sees it even when a handler refuses), and any other event after them
//! (so the events a handler fires come first). [`emit`] does the same, so nested events come
//! out in the reference's order without each caller arranging them.

use qubes_api::QubesError;

use super::{autostart, features, tags, validate};
use crate::model::{Class, State};
use crate::props;
use crate::txn::{Txn, is_pre_event};

/// `newvalue` and `oldvalue` of a property event as its handlers get them, already in the
/// event's text (Python `str()`: None is `None`); a value that is not passed is `None` here.
#[derive(Debug, Clone, Default)]
pub struct Vals {
    /// `newvalue`.
    pub new: Option<String>,
    /// `oldvalue`.
    pub old: Option<String>,
}

impl Vals {
    /// Only an old value (the reset events).
    pub fn old(old: Option<String>) -> Vals {
        Vals { new: None, old }
    }

    /// Python's `newvalue == oldvalue`, a missing value being None.
    fn unchanged(&self) -> bool {
        obj(&self.new) == obj(&self.old)
    }
}

/// A passed value as a Python object reference: `None` for a missing value or None.
fn obj(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| *v != "None")
}

/// Fires `event` (`property-<kind>:<name>`) on `subject` (a qube, or `""` for the system) and
/// runs the reference's handlers for it, in the reference's order.
pub fn emit(
    t: &mut Txn,
    subject: &str,
    event: &str,
    name: &str,
    v: &Vals,
) -> Result<(), QubesError> {
    let mut kw: Vec<(&str, &str)> = vec![("name", name)];
    if let Some(n) = &v.new {
        kw.push(("newvalue", n));
    }
    if let Some(o) = &v.old {
        kw.push(("oldvalue", o));
    }
    let pre = is_pre_event(event);
    if pre {
        t.fire(subject, event, &kw);
    }
    let kind = event.split(':').next().unwrap_or(event);
    if subject.is_empty() {
        on_system(t, kind, name, v)?;
    } else {
        on_qube(t, subject, kind, name, v)?;
    }
    if !pre {
        t.fire(subject, event, &kw);
    }
    Ok(())
}

/// Fires `property-reset:<name>` with only the name (a computed value changed).
fn reset_note(t: &mut Txn, vm: &str, name: &str) -> Result<(), QubesError> {
    emit(
        t,
        vm,
        &format!("property-reset:{name}"),
        name,
        &Vals::default(),
    )
}

/// Properties a template's AppVMs take from it by default (`on_property_set_child`).
const INHERITED: [&str; 9] = [
    "default_user",
    "kernel",
    "kernelopts",
    "vcpus",
    "memory",
    "maxmem",
    "qrexec_timeout",
    "shutdown_timeout",
    "management_dispvm",
];

fn on_qube(t: &mut Txn, vm: &str, kind: &str, prop: &str, v: &Vals) -> Result<(), QubesError> {
    let Some(class) = t.st.domain(vm).map(|d| d.class) else {
        return Ok(());
    };
    let set = kind == "property-set";
    let set_or_reset = set || kind == "property-reset";
    match (kind, prop) {
        ("property-pre-set", "kernel") => {
            validate::check_kernel(&t.st, v.new.as_deref().unwrap_or(""))?;
        }
        ("property-pre-set" | "property-pre-reset", "template_for_dispvms") => {
            let truthy = |x: &Option<String>| x.as_deref() == Some("True");
            if !truthy(&v.new) && truthy(&v.old) {
                validate::dispvm_template_in_use(&t.st, vm)?;
            }
        }
        ("property-pre-set", "autostart") => {
            autostart::pre_set(t, vm, v.new.as_deref() == Some("True"))?;
        }
        ("property-pre-reset", "autostart") => {
            autostart::pre_reset(t, vm, v.old.as_deref() == Some("True"))?;
        }
        ("property-pre-reset", "template") => {
            return Err(validate::cannot_unset_template(&t.st, class));
        }
        ("property-pre-set", "template") => {
            if let Some(d) = t.st.domain(vm) {
                validate::template_veto(d)?;
            }
        }
        ("property-set", "template") if class.has_template() => {
            snapshots_follow_template(t, vm)?;
            if class == Class::AppVM {
                let disposables: Vec<String> =
                    t.st.domains_sorted()
                        .filter(|d| {
                            d.class == Class::DispVM
                                && d.props.get("template").map(String::as_str) == Some(vm)
                        })
                        .map(|d| d.name.clone())
                        .collect();
                for disp in disposables {
                    snapshots_follow_template(t, &disp)?;
                }
            }
        }
        ("property-set", "label" | "template_for_dispvms") if class.is_local_qube() => {
            reset_note(t, vm, "icon")?;
        }
        (_, "provides_network") if set_or_reset && class.is_local_qube() => {
            servicevm_feature(t, vm)?;
            if set && !v.unchanged() {
                reset_note(t, vm, "gateway")?;
                reset_note(t, vm, "gateway6")?;
            }
        }
        ("property-pre-reset", "netvm") if class.is_local_qube() => {
            let new = default_netvm_of(&t.st, vm);
            if let Some(n) = &new {
                validate::check_netvm(&t.st, vm, n)?;
            }
            let vals = Vals {
                new: Some(new.unwrap_or_else(|| "None".into())),
                old: v.old.clone(),
            };
            if !vals.unchanged() {
                emit(t, vm, "property-pre-set:netvm", "netvm", &vals)?;
            }
        }
        ("property-reset", "netvm") if class.is_local_qube() => {
            let now = effective_vm_ref(&t.st, vm, "netvm");
            let vals = Vals {
                new: Some(now.unwrap_or_else(|| "None".into())),
                old: v.old.clone(),
            };
            if !vals.unchanged() {
                emit(t, vm, "property-set:netvm", "netvm", &vals)?;
            }
        }
        ("property-set" | "property-reset", "ip") | ("property-set", "ip6")
            if class.is_local_qube() && !v.unchanged() =>
        {
            let six = if prop == "ip6" { "6" } else { "" };
            if t.st
                .domain(vm)
                .is_some_and(|d| props::vm_flag(&t.st, d, "provides_network"))
            {
                reset_note(t, vm, &format!("gateway{six}"))?;
            }
            reset_note(t, vm, &format!("visible_ip{six}"))?;
            for c in connected_vms(&t.st, vm) {
                reset_note(t, &c, &format!("visible_gateway{six}"))?;
            }
        }
        (_, "guivm") if set_or_reset => {
            let new = if set {
                obj(&v.new).map(str::to_string)
            } else {
                effective_vm_ref(&t.st, vm, "guivm")
            };
            guivm_tags(t, vm, new.as_deref());
        }
        (_, "audiovm") if set_or_reset => {
            let new = if set {
                obj(&v.new).map(str::to_string)
            } else {
                effective_vm_ref(&t.st, vm, "audiovm")
            };
            replace_tags(t, vm, "audiovm-", new.as_deref());
        }
        (_, "relayvm") if set_or_reset && class == Class::RemoteVM => {
            let new = if set {
                obj(&v.new).map(str::to_string)
            } else {
                effective_vm_ref(&t.st, vm, "relayvm")
            };
            replace_tags(t, vm, "relayvm-", new.as_deref());
        }
        ("property-set", "keyboard_layout") if !v.unchanged() => {
            let attached: Vec<String> =
                t.st.domains_sorted()
                    .filter(|d| {
                        props::vm_prop(d.class, "guivm").is_some()
                            && !d.props.contains_key("keyboard_layout")
                            && effective_vm_ref(&t.st, &d.name, "guivm").as_deref() == Some(vm)
                    })
                    .map(|d| d.name.clone())
                    .collect();
            for d in attached {
                emit(
                    t,
                    &d,
                    "property-reset:keyboard_layout",
                    "keyboard_layout",
                    &Vals::old(v.old.clone()),
                )?;
            }
        }
        ("property-set", p)
            if class == Class::TemplateVM && INHERITED.contains(&p) && !v.unchanged() =>
        {
            for child in appvms_with_default(&t.st, vm, p) {
                reset_note(t, &child, p)?;
            }
        }
        (_, "appvm_default_bootmode")
            if set_or_reset && class == Class::TemplateVM && !(set && v.unchanged()) =>
        {
            for child in appvms_with_default(&t.st, vm, "bootmode") {
                reset_note(t, &child, "bootmode")?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn on_system(t: &mut Txn, kind: &str, prop: &str, v: &Vals) -> Result<(), QubesError> {
    match (kind, prop) {
        ("property-pre-set", "default_kernel") => {
            validate::check_kernel(&t.st, v.new.as_deref().unwrap_or(""))?;
        }
        ("property-pre-set", "clockvm") => {
            if let Some(new) = obj(&v.new)
                && t.st
                    .domain(new)
                    .is_some_and(|d| d.feature("service.clocksync").is_none())
            {
                features::set(t, new, "service.clocksync", "1")?;
            }
        }
        ("property-set", "clockvm") => {
            if !v.unchanged()
                && let Some(old) = obj(&v.old)
                && t.st
                    .domain(old)
                    .and_then(|d| d.feature("service.clocksync"))
                    .is_some_and(|f| !f.is_empty())
            {
                features::remove(t, old, "service.clocksync");
            }
        }
        ("property-pre-set", "default_netvm") => {
            for vm in following_default(&t.st, "netvm") {
                emit(t, &vm, "property-pre-set:netvm", "netvm", v)?;
            }
        }
        ("property-set", "default_netvm") => {
            for vm in following_default(&t.st, "netvm") {
                emit(
                    t,
                    &vm,
                    "property-reset:netvm",
                    "netvm",
                    &Vals::old(v.old.clone()),
                )?;
            }
        }
        ("property-set" | "property-reset", "default_dispvm") => {
            for vm in following_default(&t.st, "default_dispvm") {
                emit(
                    t,
                    &vm,
                    "property-reset:default_dispvm",
                    "default_dispvm",
                    &Vals::old(v.old.clone()),
                )?;
            }
        }
        ("property-set", "default_guivm" | "default_audiovm") => {
            let vm_prop = &prop["default_".len()..];
            for vm in following_default(&t.st, vm_prop) {
                emit(t, &vm, &format!("property-set:{vm_prop}"), vm_prop, v)?;
            }
        }
        // The reference does nothing here, leaving the qubes that follow the default with
        // tags of the old GUI / audio qube (which then grant it access through the policy).
        // Ours tells them their value changed, which puts the tags right.
        ("property-reset", "default_guivm" | "default_audiovm") => {
            let vm_prop = &prop["default_".len()..];
            for vm in following_default(&t.st, vm_prop) {
                emit(
                    t,
                    &vm,
                    &format!("property-reset:{vm_prop}"),
                    vm_prop,
                    &Vals::old(v.old.clone()),
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Qubes that have `vm_prop` and leave it at its default, in the reference's order (dom0
/// first, then by name).
fn following_default(st: &State, vm_prop: &str) -> Vec<String> {
    st.domains_sorted()
        .filter(|d| props::vm_prop(d.class, vm_prop).is_some() && !d.props.contains_key(vm_prop))
        .map(|d| d.name.clone())
        .collect()
}

/// AppVMs based on `template` that leave `prop` at its default.
fn appvms_with_default(st: &State, template: &str, prop: &str) -> Vec<String> {
    st.domains_sorted()
        .filter(|d| {
            d.class == Class::AppVM
                && d.props.get("template").map(String::as_str) == Some(template)
                && !d.props.contains_key(prop)
        })
        .map(|d| d.name.clone())
        .collect()
}

/// Qubes whose network qube is `vm`.
fn connected_vms(st: &State, vm: &str) -> Vec<String> {
    st.domains_sorted()
        .filter(|d| d.class.is_local_qube() && props::vm_get(st, d, "netvm").as_deref() == Some(vm))
        .map(|d| d.name.clone())
        .collect()
}

/// A qube reference property's current value, `None` for none.
fn effective_vm_ref(st: &State, vm: &str, prop: &str) -> Option<String> {
    st.domain(vm)
        .and_then(|d| props::vm_get(st, d, prop))
        .filter(|v| !v.is_empty())
}

/// What `netvm` of `vm` would be if it were reset.
fn default_netvm_of(st: &State, vm: &str) -> Option<String> {
    st.domain(vm)
        .and_then(|d| props::vm_default(st, d, "netvm"))
        .filter(|v| !v.is_empty())
}

/// `template_changed_update_storage`: the snapshot volumes (root, a disposable's private)
/// take their origin, pool and size from the new template.
fn snapshots_follow_template(t: &mut Txn, vm: &str) -> Result<(), QubesError> {
    let Some(d) = t.st.domain(vm) else {
        return Ok(());
    };
    let fresh = crate::volumes::default_volume_config(&t.st, d, None, &[])?;
    let is_snap = |v: &crate::model::VolumeConfig| {
        v.attrs
            .iter()
            .any(|(k, val)| k == "snap_on_start" && val == "True")
    };
    let name = |v: &crate::model::VolumeConfig| {
        v.attrs
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, n)| n.clone())
    };
    let Some(d) = t.st.domain_mut(vm) else {
        return Ok(());
    };
    for slot in d.volumes.iter_mut().filter(|v| is_snap(v)) {
        if let Some(new) = fresh.iter().find(|f| name(f) == name(slot)) {
            *slot = new.clone();
        }
    }
    Ok(())
}

/// `core_features`: `servicevm` follows `provides_network`, and the icon with it.
fn servicevm_feature(t: &mut Txn, vm: &str) -> Result<(), QubesError> {
    let Some(d) = t.st.domain(vm) else {
        return Ok(());
    };
    if props::vm_flag(&t.st, d, "provides_network") {
        features::set(t, vm, "servicevm", "1")?;
    } else if d.feature("servicevm").is_some() {
        features::remove(t, vm, "servicevm");
    } else {
        return Ok(());
    }
    reset_note(t, vm, "icon")
}

/// The gui extension: one `guivm-<name>` tag, for the current GUI qube.
fn guivm_tags(t: &mut Txn, vm: &str, new: Option<&str>) {
    let want = new.map(|n| format!("guivm-{n}"));
    let stale: Vec<String> =
        t.st.domain(vm)
            .map(|d| {
                d.tags
                    .iter()
                    .filter(|tag| tag.starts_with("guivm-") && Some(*tag) != want.as_ref())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
    for tag in stale {
        tags::remove(t, vm, &tag);
    }
    if let Some(tag) = want {
        tags::add(t, vm, &tag);
    }
}

/// The audio and relay extensions: every `<prefix>*` tag goes, then the current one is added.
fn replace_tags(t: &mut Txn, vm: &str, prefix: &str, new: Option<&str>) {
    let old: Vec<String> =
        t.st.domain(vm)
            .map(|d| {
                d.tags
                    .iter()
                    .filter(|tag| tag.starts_with(prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
    for tag in old {
        tags::remove(t, vm, &tag);
    }
    if let Some(n) = new {
        tags::add(t, vm, &format!("{prefix}{n}"));
    }
}

/// Handlers of `domain-feature-pre-set:<name>`, run after the stream saw that event.
pub fn feature_pre_set(
    t: &mut Txn,
    vm: &str,
    name: &str,
    value: &str,
    old: Option<&str>,
) -> Result<(), QubesError> {
    if let Some(service) = name.strip_prefix("service.") {
        validate::validate_service_name(service)?;
    }
    let Some(class) = t.st.domain(vm).map(|d| d.class) else {
        return Ok(());
    };
    let dvm_template = matches!(class, Class::AppVM | Class::StandaloneVM);
    match name {
        "preload-dispvm-max" if dvm_template => {
            let d = t.st.domain(vm).ok_or_else(|| QubesError::no_such_vm(vm))?;
            if with_template(&t.st, d, "qrexec").is_none_or(str::is_empty) {
                return Err(QubesError::value("Qube does not support qrexec"));
            }
            let missing = missing_preload_services(&t.st, vm);
            if !missing.is_empty() {
                return Err(QubesError::value(format!(
                    "Qube does not support the RPC(s) '{}'",
                    missing.join(", ")
                )));
            }
            let v = if value.is_empty() { "0" } else { value };
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QubesError::value(
                    "Invalid preload-dispvm-max value: not a digit",
                ));
            }
        }
        "preload-dispvm-max" if class == Class::AdminVM && Some(value) != old => {
            // dom0's value is the system's: the default disposable template checks it.
            if let Some(dvm) = props::global_get(&t.st, "default_dispvm").filter(|v| !v.is_empty())
            {
                let mut kw: Vec<(&str, &str)> = vec![("feature", name), ("value", value)];
                if let Some(o) = old {
                    kw.push(("oldvalue", o));
                }
                t.fire(&dvm, format!("domain-feature-pre-set:{name}"), &kw);
                feature_pre_set(t, &dvm, name, value, old)?;
            }
        }
        "preload-dispvm-delay"
            if (dvm_template || class == Class::AdminVM) && Some(value) != old =>
        {
            let v = if value.is_empty() { "0" } else { value };
            if !crate::pycompat::py_float_ok(v) {
                return Err(QubesError::value(
                    "Invalid preload-dispvm-delay value: not an integer or float",
                ));
            }
        }
        "preload-dispvm-threshold" if class == Class::AdminVM => {
            let v = if value.is_empty() { "0" } else { value };
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QubesError::value(
                    "Invalid preload-dispvm-threshold value: not a digit",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Handlers of `domain-feature-set:<name>`, run before the stream sees that event.
pub fn feature_set(
    t: &mut Txn,
    vm: &str,
    name: &str,
    value: &str,
    old: Option<&str>,
) -> Result<(), QubesError> {
    let Some(class) = t.st.domain(vm).map(|d| d.class) else {
        return Ok(());
    };
    match name {
        // The old service is memory balancing, which maxmem says now: the feature becomes
        // maxmem (its default, or 0) and goes.
        "service.meminfo-writer" => {
            if value.is_empty() {
                super::properties::set_vm(t, vm, "maxmem", b"0")?;
            } else if let Some(def) = props::vm_prop(class, "maxmem") {
                super::properties::reset_vm(t, vm, def)?;
            }
            features::remove(t, vm, name);
        }
        "boot-mode.active"
            if class.is_local_qube() && Some(value) != old && !is_set(&t.st, vm, "bootmode") =>
        {
            reset_note(t, vm, "bootmode")?;
        }
        "boot-mode.appvm-default"
            if class == Class::TemplateVM
                && Some(value) != old
                && !is_set(&t.st, vm, "appvm_default_bootmode") =>
        {
            reset_note(t, vm, "appvm_default_bootmode")?;
            for child in appvms_with_default(&t.st, vm, "bootmode") {
                reset_note(t, &child, "bootmode")?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether `prop` is set explicitly on `vm`.
fn is_set(st: &State, vm: &str, prop: &str) -> bool {
    st.domain(vm).is_some_and(|d| d.props.contains_key(prop))
}

/// A feature of the qube or the first template on its way that has it.
pub fn with_template<'a>(st: &'a State, d: &'a crate::model::Domain, f: &str) -> Option<&'a str> {
    let mut cur = Some(d);
    for _ in 0..16 {
        let q = cur?;
        if let Some(v) = q.feature(f) {
            return Some(v);
        }
        cur = if q.class.has_template() {
            props::vm_ref(st, q, "template")
        } else {
            None
        };
    }
    None
}

/// The services a disposable template needs for preloading that neither it nor its
/// templates announce (`supports_preload`).
pub fn missing_preload_services(st: &State, vm: &str) -> Vec<&'static str> {
    let Some(d) = st.domain(vm) else {
        return Vec::new();
    };
    ["qubes.WaitForRunningSystem", "qubes.WaitForSession"]
        .into_iter()
        .filter(|s| with_template(st, d, &format!("supported-rpc.{s}")).is_none_or(str::is_empty))
        .collect()
}
