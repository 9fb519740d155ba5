//! Setting and removing features, with their events and what the reference's handlers do on
//! them ([`super::hooks`]).

use qubes_api::{ExcKind, QubesError};

use super::hooks;
use crate::txn::Txn;

/// The reference's refusal for a feature that is not set.
pub fn missing(vm: &str, f: &str) -> QubesError {
    QubesError::new(
        ExcKind::QubesFeatureNotFoundError,
        format!("Feature not set for domain {vm}: {f}"),
    )
}

/// Sets a feature with its events and the handlers' rules: the stream sees the pre-event
/// before the checks run, and the set event after what its handlers do.
pub fn set(t: &mut Txn, vm: &str, name: &str, value: &str) -> Result<(), QubesError> {
    let old =
        t.st.domain(vm)
            .and_then(|d| d.feature(name))
            .map(str::to_string);
    let mut kw: Vec<(&str, &str)> = vec![("feature", name), ("value", value)];
    if let Some(o) = &old {
        kw.push(("oldvalue", o));
    }
    t.fire(vm, format!("domain-feature-pre-set:{name}"), &kw);
    hooks::feature_pre_set(t, vm, name, value, old.as_deref())?;
    t.st.domain_mut(vm)
        .ok_or_else(|| QubesError::no_such_vm(vm))?
        .set_feature(name, value);
    hooks::feature_set(t, vm, name, value, old.as_deref())?;
    t.fire(vm, format!("domain-feature-set:{name}"), &kw);
    Ok(())
}

/// Removes a feature (it exists) with its events.
pub fn remove(t: &mut Txn, vm: &str, name: &str) {
    t.fire(
        vm,
        format!("domain-feature-pre-delete:{name}"),
        &[("feature", name)],
    );
    remove_after_pre(t, vm, name);
}

/// Removes a feature once its pre-delete event was fired.
pub fn remove_after_pre(t: &mut Txn, vm: &str, name: &str) {
    if let Some(d) = t.st.domain_mut(vm) {
        d.remove_feature(name);
    }
    t.fire(
        vm,
        format!("domain-feature-delete:{name}"),
        &[("feature", name)],
    );
}
