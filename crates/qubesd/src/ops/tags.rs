//! Adding and removing tags, and what a `created-by-*` tag sets off (admin-api.md §5.7).

use qubes_api::QubesError;

use crate::names;
use crate::txn::Txn;

/// Adds a tag (if it is new) with its event.
pub fn add(t: &mut Txn, vm: &str, tag: &str) {
    if let Some(d) = t.st.domain_mut(vm)
        && d.tags.insert(tag.to_string())
    {
        t.fire(vm, format!("domain-tag-add:{tag}"), &[("tag", tag)]);
    }
}

/// Removes a tag with its event.
pub fn remove(t: &mut Txn, vm: &str, tag: &str) {
    if let Some(d) = t.st.domain_mut(vm) {
        d.tags.remove(tag);
    }
    t.fire(vm, format!("domain-tag-delete:{tag}"), &[("tag", tag)]);
}

/// Adds a `created-by-*` tag with the reactions to it: the creator's `tag-created-vm-with`
/// tags and `set-created-guivm`. Side effects come before the tag event.
pub fn add_created_by(t: &mut Txn, src: &str, vm: &str, tag: &str) -> Result<(), QubesError> {
    let (extra_tags, guivm) = match t.st.domain(src) {
        Some(creator) if tag.starts_with("created-by-") => (
            creator
                .feature("tag-created-vm-with")
                .map(|t| t.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default(),
            creator
                .feature("set-created-guivm")
                .filter(|g| !g.is_empty())
                .map(str::to_string),
        ),
        _ => (Vec::new(), None),
    };
    for extra in extra_tags {
        if names::validate_tag(&extra).is_ok() {
            add(t, vm, &extra);
        }
    }
    if let Some(g) = guivm
        && t.st.domain(&g).is_some()
        && t.st.domain(vm).is_some_and(|d| d.class.is_local_qube())
    {
        super::qubes::set_created_guivm(t, vm, &g)?;
    }
    add(t, vm, tag);
    Ok(())
}
