//! Setting and resetting properties: sanitize and validate the value, then the reference's
//! events (`property-pre-set`, `property-set`, the reset and delete pairs) with what its
//! handlers do on each ([`super::hooks`]).

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use super::hooks::{Vals, emit};
use super::validate;
use crate::props::{self, Access, PropDef, ev_value};
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
    let value = validate::sanitize(def, Some(d.class), untrusted)?;
    let value = validate::validate_vm_prop(&t.st, &d, def, value)?;
    let old = props::vm_get(&t.st, &d, def.name);
    let vals = Vals {
        new: Some(ev_value(def, &value, true)),
        old: old.map(|o| ev_value(def, &o, d.props.contains_key(def.name))),
    };
    emit(
        t,
        vm,
        &format!("property-pre-set:{}", def.name),
        def.name,
        &vals,
    )?;
    t.st.domain_mut(vm)
        .ok_or_else(|| QubesError::no_such_vm(vm))?
        .props
        .insert(def.name.to_string(), value);
    emit(
        t,
        vm,
        &format!("property-set:{}", def.name),
        def.name,
        &vals,
    )
}

/// Resets a qube property to its default. A computed property has nothing to reset: the
/// reference answers with the reset events all the same.
pub fn reset_vm(t: &mut Txn, vm: &str, def: &'static PropDef) -> Result<(), QubesError> {
    let d =
        t.st.domain(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?
            .clone();
    let explicit = d.props.contains_key(def.name);
    if def.access(d.class) == Access::WriteOnce && explicit {
        // `_enforce_write_once` raises a plain AttributeError: no response bytes.
        return Err(QubesError::silent(format!(
            "write-once {} cannot be reset",
            def.name
        )));
    }
    let old = props::vm_get(&t.st, &d, def.name);
    let vals = Vals::old(old.map(|o| ev_value(def, &o, explicit)));
    let fire = |t: &mut Txn, ev: &str| emit(t, vm, &format!("{ev}:{}", def.name), def.name, &vals);
    fire(t, "property-pre-reset")?;
    fire(t, "property-pre-del")?;
    if def.access(d.class) != Access::ReadOnly {
        t.st.domain_mut(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?
            .props
            .remove(def.name);
        validate::check_after_reset(&t.st, vm, def)?;
    }
    fire(t, "property-reset")?;
    fire(t, "property-del")?;
    t.save = true;
    Ok(())
}

/// Sets a global property from an untrusted payload.
pub fn set_global(t: &mut Txn, def: &'static PropDef, untrusted: &[u8]) -> Result<(), QubesError> {
    let value = validate::sanitize(def, None, untrusted)?;
    let value = validate::validate_global_prop(&t.st, def, value)?;
    let old = props::global_get(&t.st, def.name);
    let vals = Vals {
        new: Some(ev_value(def, &value, true)),
        old: old.map(|o| ev_value(def, &o, t.st.global.contains_key(def.name))),
    };
    emit(
        t,
        "",
        &format!("property-pre-set:{}", def.name),
        def.name,
        &vals,
    )?;
    t.st.global.insert(def.name.to_string(), value);
    emit(
        t,
        "",
        &format!("property-set:{}", def.name),
        def.name,
        &vals,
    )?;
    t.save = true;
    Ok(())
}

/// Resets a global property to its default.
pub fn reset_global(t: &mut Txn, def: &'static PropDef) -> Result<(), QubesError> {
    let old = props::global_get(&t.st, def.name);
    let vals = Vals::old(old.map(|o| ev_value(def, &o, t.st.global.contains_key(def.name))));
    let fire = |t: &mut Txn, ev: &str| emit(t, "", &format!("{ev}:{}", def.name), def.name, &vals);
    fire(t, "property-pre-reset")?;
    fire(t, "property-pre-del")?;
    t.st.global.remove(def.name);
    fire(t, "property-reset")?;
    fire(t, "property-del")?;
    t.save = true;
    Ok(())
}
