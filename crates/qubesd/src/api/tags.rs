//! Tags: `admin.vm.tag.*` (admin-api.md §2.4).

use qubes_api::{ExcKind, QubesError};

use super::Want::{No, Yes};
use super::{ANY, Method, Req, View, read, write};
use crate::names;
use crate::ops::tags as op;
use crate::reply::{Reply, empty, lines, ok};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.vm.tag.List", No, No, ANY, tag_list),
    read("admin.vm.tag.Get", Yes, No, ANY, tag_get),
    write("admin.vm.tag.Set", Yes, No, ANY, tag_set),
    write("admin.vm.tag.Remove", Yes, No, ANY, tag_remove),
];

fn tag_list(r: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(lines(r.dest_in(v.st)?.tags.iter()))
}

fn tag_get(r: &Req, v: &View) -> Result<Reply, QubesError> {
    names::validate_tag(&r.arg)?;
    ok(if r.dest_in(v.st)?.tags.contains(&r.arg) {
        "1"
    } else {
        "0"
    })
}

/// `created-by-*` tags are dom0's to change (`qubes.ext.admin`).
fn protected_tag(r: &Req) -> Result<(), QubesError> {
    if r.arg.starts_with("created-by-") && r.src != "dom0" {
        return Err(QubesError::denied(
            "changing this tag is prohibited by qubes.ext.admin.AdminExtension",
        ));
    }
    Ok(())
}

fn tag_set(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    names::validate_tag(&r.arg)?;
    protected_tag(r)?;
    if !r.dest_in(&t.st)?.tags.contains(&r.arg) {
        if r.arg.starts_with("created-by-") {
            op::add_created_by(t, &r.dest, &r.arg)?;
        } else {
            op::add(t, &r.dest, &r.arg);
        }
    }
    t.save = true;
    empty()
}

fn tag_remove(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    names::validate_tag(&r.arg)?;
    protected_tag(r)?;
    if !r.dest_in(&t.st)?.tags.contains(&r.arg) {
        return Err(QubesError::new(
            ExcKind::QubesTagNotFoundError,
            format!("Tag not set for domain {}: {}", r.dest, r.arg),
        ));
    }
    op::remove(t, &r.dest, &r.arg);
    t.save = true;
    empty()
}
