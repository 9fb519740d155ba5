//! Setting and resetting properties: sanitize and validate the value, the reference's events
//! (`property-pre-set`, `property-set`, the reset and delete pairs) and their side effects.

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use super::{effects, validate};
use crate::model::Class;
use crate::props::{self, Access, PropDef, ev_str};
use crate::txn::Txn;

/// Sets a qube property from an untrusted payload: sanitize, validate, store, fire events.
pub fn set_vm(t: &mut Txn, vm: &str, prop: &str, untrusted: &[u8]) -> Result<(), QubesError> {
    let d =
        t.st.domain(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?
            .clone();
    let def = props::vm_prop(d.class, prop).ok_or_else(|| {
        QubesError::new(
            ExcKind::QubesNoSuchPropertyError,
            format!("Invalid property {} of {vm}", py_repr(prop)),
        )
    })?;
    let value = validate::sanitize(def, untrusted)?;
    let value = validate::validate_vm_prop(&t.st, &d, def, value)?;
    let old = props::vm_get(&t.st, &d, def.name);
    let mut kw: Vec<(&str, String)> = vec![
        ("name", def.name.to_string()),
        ("newvalue", ev_str(def.ty, &value)),
    ];
    if let Some(o) = &old {
        kw.push(("oldvalue", ev_str(def.ty, o)));
    }
    let kw_ref: Vec<(&str, &str)> = kw.iter().map(|(k, v)| (*k, v.as_str())).collect();
    t.fire(vm, format!("property-pre-set:{}", def.name), &kw_ref);
    validate::pre_set_veto(&t.st, vm, def.name, &value, old.as_deref())?;
    t.st.domain_mut(vm)
        .ok_or_else(|| QubesError::no_such_vm(vm))?
        .props
        .insert(def.name.to_string(), value.clone());
    effects::vm_side_effects(t, vm, def.name, &value)?;
    t.fire(vm, format!("property-set:{}", def.name), &kw_ref);
    Ok(())
}

/// Resets a qube property to its default.
pub fn reset_vm(t: &mut Txn, vm: &str, def: &'static PropDef) -> Result<(), QubesError> {
    let d =
        t.st.domain(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?
            .clone();
    match def.access(d.class) {
        Access::ReadOnly => {
            return Err(QubesError::silent(format!("{} cannot be reset", def.name)));
        }
        Access::WriteOnce if d.props.contains_key(def.name) => {
            return Err(QubesError::silent(format!(
                "write-once {} cannot be reset",
                def.name
            )));
        }
        _ => {}
    }
    let old = props::vm_get(&t.st, &d, def.name);
    let mut with_default = d.clone();
    with_default.props.remove(def.name);
    let new = props::vm_get(&t.st, &with_default, def.name).unwrap_or_default();
    fire_reset_events(t, vm, def, old.as_deref(), &["property-pre-reset"]);
    if def.name == "template" && d.class.has_template() {
        return Err(QubesError::value(
            match props::global_get(&t.st, "default_template") {
                Some(tpl) if !tpl.is_empty() && d.class == Class::AppVM => format!(
                    "Cannot unset template. You can set it to the current default ({tpl}) instead"
                ),
                _ => "Cannot unset template".to_string(),
            },
        ));
    }
    validate::pre_set_veto(&t.st, vm, def.name, &new, old.as_deref())?;
    fire_reset_events(t, vm, def, old.as_deref(), &["property-pre-del"]);
    t.st.domain_mut(vm)
        .ok_or_else(|| QubesError::no_such_vm(vm))?
        .props
        .remove(def.name);
    validate::check_after_reset(&t.st, vm, def)?;
    fire_reset_events(
        t,
        vm,
        def,
        old.as_deref(),
        &["property-reset", "property-del"],
    );
    effects::vm_side_effects(t, vm, def.name, &new)?;
    t.save = true;
    Ok(())
}

/// Sets a global property from an untrusted payload.
pub fn set_global(t: &mut Txn, def: &'static PropDef, untrusted: &[u8]) -> Result<(), QubesError> {
    let value = validate::sanitize(def, untrusted)?;
    let value = validate::validate_global_prop(&t.st, def, value)?;
    let old = props::global_get(&t.st, def.name);
    let mut kw: Vec<(&str, String)> = vec![
        ("name", def.name.to_string()),
        ("newvalue", ev_str(def.ty, &value)),
    ];
    if let Some(o) = &old {
        kw.push(("oldvalue", ev_str(def.ty, o)));
    }
    let kw_ref: Vec<(&str, &str)> = kw.iter().map(|(k, v)| (*k, v.as_str())).collect();
    t.fire("", format!("property-pre-set:{}", def.name), &kw_ref);
    t.st.global.insert(def.name.to_string(), value.clone());
    effects::global_side_effects(t, def.name, old.as_deref(), &value)?;
    t.fire("", format!("property-set:{}", def.name), &kw_ref);
    t.save = true;
    Ok(())
}

/// Resets a global property to its default.
pub fn reset_global(t: &mut Txn, def: &'static PropDef) -> Result<(), QubesError> {
    if def.access(Class::AdminVM) == Access::ReadOnly && def.read_only_for & props::cls::GLOBAL != 0
    {
        return Err(QubesError::silent(format!("{} cannot be reset", def.name)));
    }
    let old = props::global_get(&t.st, def.name);
    t.st.global.remove(def.name);
    let new = props::global_get(&t.st, def.name).unwrap_or_default();
    fire_reset_events(
        t,
        "",
        def,
        old.as_deref(),
        &[
            "property-pre-reset",
            "property-pre-del",
            "property-reset",
            "property-del",
        ],
    );
    effects::global_side_effects(t, def.name, old.as_deref(), &new)?;
    t.save = true;
    Ok(())
}

/// Fires `<event>:<prop>` with the name and old value for each event in `names`.
fn fire_reset_events(t: &mut Txn, subject: &str, def: &PropDef, old: Option<&str>, names: &[&str]) {
    let old = old.map(|o| ev_str(def.ty, o));
    let mut kw: Vec<(&str, &str)> = vec![("name", def.name)];
    if let Some(o) = &old {
        kw.push(("oldvalue", o));
    }
    for ev in names {
        t.fire(subject, format!("{ev}:{}", def.name), &kw);
    }
}
