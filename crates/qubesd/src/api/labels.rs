//! Labels: `admin.label.*` (admin-api.md §2.1, §3.7).

use qubes_api::{ExcKind, QubesError};

use super::Want::{No, Yes};
use super::{DOM0, Method, Req, View, read, write};
use crate::model::{Label, State};
use crate::names;
use crate::ops::labels as op;
use crate::reply::{Reply, empty, lines, ok};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.label.List", No, No, DOM0, label_list),
    read("admin.label.Get", Yes, No, DOM0, label_get),
    read("admin.label.Index", Yes, No, DOM0, label_index),
    write("admin.label.Create", Yes, Yes, DOM0, label_create),
    write("admin.label.Remove", Yes, No, DOM0, label_remove),
];

fn label_list(_: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(lines(v.st.labels.values().map(|l| l.name.as_str())))
}

/// The label an argument names (by name, else by index digits).
pub fn find_label_arg<'a>(st: &'a State, arg: &str) -> Result<&'a Label, QubesError> {
    names::validate_label_name(arg)?;
    st.find_label_for_api(arg).ok_or_else(|| {
        QubesError::new(
            ExcKind::QubesLabelNotFoundError,
            format!("Label does not exist: {arg}"),
        )
    })
}

fn label_get(r: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(find_label_arg(v.st, &r.arg)?.color.clone())
}

fn label_index(r: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(find_label_arg(v.st, &r.arg)?.index.to_string())
}

fn label_create(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    names::validate_label_name(&r.arg)?;
    if r.arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QubesError::new(
            ExcKind::QubesInvalidLabelError,
            "Label must not be a digit",
        ));
    }
    let color = validate_label_value(&r.untrusted_payload)?;
    op::create(t, &r.arg, color)?;
    empty()
}

/// A label colour payload: `0xRRGGBB` (whitespace around it stripped).
///
/// The reference checks the stripped value but keeps the payload as given (bytes, with the
/// whitespace: its `admin.label.Get` then fails without a reply until a restart, after which
/// it answers the padded text that clients parse as a colour). We keep the value we checked:
/// the only difference left is the text of qubes.xml for such a label.
fn validate_label_value(untrusted: &[u8]) -> Result<String, QubesError> {
    let e = |m: &str| Err(QubesError::new(ExcKind::QubesInvalidLabelValueError, m));
    if untrusted.is_empty() {
        return e("Label value must be set");
    }
    let Ok(s) = std::str::from_utf8(untrusted) else {
        return e("Label value must be encoded in ASCII");
    };
    if !s.is_ascii() {
        return e("Label value must be encoded in ASCII");
    }
    let v = crate::pycompat::py_strip(s);
    if v.len() != 8 {
        return e("Label value must have length of 8");
    }
    if !v.starts_with("0x") {
        return e("Label value must start with: 0x");
    }
    if !v[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
        return e(
            "Label value must only contain hexadecimal digits after prefix: 0123456789abcdefABCDEF",
        );
    }
    Ok(v.to_string())
}

fn label_remove(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let label = find_label_arg(&t.st, &r.arg)?.clone();
    op::remove(t, &label)?;
    empty()
}
