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

/// Adds a `created-by-<creator>` tag with the reactions to it: the creator's
/// `tag-created-vm-with` tags, then its `set-created-guivm` (the reference's order of these
/// two extension handlers is undefined — they sit in a set — and changes between runs; this
/// is one of its two). Side effects come before the tag event; a tag the qube has already
/// sets nothing off.
///
/// A creator that does not exist sets nothing off but the tag is kept: the reference adds
/// the tag to the qube before its handlers fail to look the creator up (so it lists and
/// saves the tag), and its crash there is no answer worth copying.
pub fn add_created_by(t: &mut Txn, vm: &str, tag: &str) -> Result<(), QubesError> {
    if t.st.domain(vm).is_none_or(|d| d.tags.contains(tag)) {
        return Ok(());
    }
    let creator = tag.strip_prefix("created-by-").unwrap_or(tag);
    let Some(creator) = t.st.domain(creator) else {
        add(t, vm, tag);
        return Ok(());
    };
    let extra_tags: Vec<String> = creator
        .feature("tag-created-vm-with")
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let guivm = creator
        .feature("set-created-guivm")
        .filter(|g| !g.is_empty())
        .map(str::to_string);
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
