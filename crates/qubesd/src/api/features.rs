//! Features: `admin.vm.feature.*` (admin-api.md §2.4).

use qubes_api::QubesError;

use super::Want::{Any, No, Yes};
use super::{ANY, Method, Req, View, read, write};
use crate::ops::features as op;
use crate::props;
use crate::reply::{Reply, empty, lines, ok};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.vm.feature.List", No, No, ANY, feature_list),
    read("admin.vm.feature.Get", Yes, No, ANY, feature_get),
    read(
        "admin.vm.feature.CheckWithTemplate",
        Yes,
        No,
        ANY,
        check_template,
    ),
    read("admin.vm.feature.CheckWithNetvm", Yes, No, ANY, check_netvm),
    read(
        "admin.vm.feature.CheckWithAdminVM",
        Yes,
        No,
        ANY,
        check_adminvm,
    ),
    read(
        "admin.vm.feature.CheckWithTemplateAndAdminVM",
        Yes,
        No,
        ANY,
        check_template_adminvm,
    ),
    write("admin.vm.feature.Set", Yes, Any, ANY, feature_set),
    write("admin.vm.feature.Remove", Yes, No, ANY, feature_remove),
];

fn feature_list(r: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(lines(r.dest_in(v.st)?.features.iter().map(|(k, _)| k)))
}

fn feature_get(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let d = r.dest_in(v.st)?;
    match d.feature(&r.arg) {
        Some(val) => ok(val.to_string()),
        None => Err(op::missing(&d.name, &r.arg)),
    }
}

/// Walks a chain of qubes (template or netvm links) looking for a feature, then dom0's
/// features when `with_adminvm`.
fn feature_chain(r: &Req, v: &View, link: &str, with_adminvm: bool) -> Result<Reply, QubesError> {
    let start = r.dest_in(v.st)?;
    let mut cur = Some(start);
    let mut seen = 0;
    while let Some(d) = cur {
        if let Some(val) = d.feature(&r.arg) {
            return ok(val.to_string());
        }
        seen += 1;
        if seen > 64 || link.is_empty() {
            break;
        }
        cur = match props::vm_prop(d.class, link) {
            Some(_) => props::vm_ref(v.st, d, link),
            None => None,
        };
    }
    if with_adminvm && let Some(val) = v.st.domain("dom0").and_then(|d0| d0.feature(&r.arg)) {
        return ok(val.to_string());
    }
    Err(op::missing(&start.name, &r.arg))
}

fn check_template(r: &Req, v: &View) -> Result<Reply, QubesError> {
    feature_chain(r, v, "template", false)
}
fn check_netvm(r: &Req, v: &View) -> Result<Reply, QubesError> {
    feature_chain(r, v, "netvm", false)
}
fn check_adminvm(r: &Req, v: &View) -> Result<Reply, QubesError> {
    feature_chain(r, v, "", true)
}
fn check_template_adminvm(r: &Req, v: &View) -> Result<Reply, QubesError> {
    feature_chain(r, v, "template", true)
}

/// Features no caller may change (`qubes.ext.admin`).
const PROTECTED_FEATURES: [&str; 4] = [
    "deferred-netvm-original",
    "preload-dispvm",
    "preload-dispvm-completed",
    "preload-dispvm-in-progress",
];

fn protected_feature(name: &str) -> Result<(), QubesError> {
    if PROTECTED_FEATURES.contains(&name) {
        return Err(QubesError::denied(
            "changing this feature is prohibited by qubes.ext.admin.AdminExtension",
        ));
    }
    Ok(())
}

fn feature_set(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let value = std::str::from_utf8(&r.untrusted_payload)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or_else(|| QubesError::protocol("Feature value contains non-ASCII characters"))?;
    if r.arg.is_empty()
        || !r
            .arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(QubesError::protocol(
            "feature name contains illegal characters",
        ));
    }
    if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(QubesError::protocol(format!(
            "{} value contains illegal characters",
            r.arg
        )));
    }
    protected_feature(&r.arg)?;
    op::set(t, &r.dest, &r.arg, value)?;
    t.save = true;
    empty()
}

fn feature_remove(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    protected_feature(&r.arg)?;
    // The qube may be gone by the time this write runs: no event about it then.
    let has = r.dest_in(&t.st)?.feature(&r.arg).is_some();
    t.fire(
        &r.dest,
        format!("domain-feature-pre-delete:{}", r.arg),
        &[("feature", &r.arg)],
    );
    if !has {
        return Err(op::missing(&r.dest, &r.arg));
    }
    op::remove_after_pre(t, &r.dest, &r.arg);
    t.save = true;
    empty()
}
