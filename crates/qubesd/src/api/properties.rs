//! Properties: global `admin.property.*` and per-qube `admin.vm.property.*` (admin-api.md
//! §2.3, §3).

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use super::Want::{Any, No, Yes};
use super::{ANY, DOM0, Method, Req, View, read, write};
use crate::model::State;
use crate::ops::properties as op;
use crate::props::{self, PropDef};
use crate::pycompat::bool_word;
use crate::reply::{Reply, empty, lines, ok};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.property.List", No, No, DOM0, list),
    read("admin.property.Get", Yes, No, DOM0, get),
    read("admin.property.GetAll", No, No, DOM0, get_all),
    read("admin.property.GetDefault", Yes, No, DOM0, get_default),
    read("admin.property.Help", Yes, No, DOM0, help),
    write("admin.property.Set", Yes, Any, DOM0, global_set),
    write("admin.property.Reset", Yes, No, DOM0, global_reset),
    read("admin.vm.property.List", No, No, ANY, list),
    read("admin.vm.property.Get", Yes, No, ANY, get),
    read("admin.vm.property.GetAll", No, No, ANY, get_all),
    read("admin.vm.property.GetDefault", Yes, No, ANY, get_default),
    read("admin.vm.property.Help", Yes, No, ANY, help),
    write("admin.vm.property.Set", Yes, Any, ANY, vm_set),
    write("admin.vm.property.Reset", Yes, No, ANY, vm_reset),
];

/// Which holder a property call addresses.
#[derive(Clone, Copy)]
enum Holder<'a> {
    Global,
    Vm(&'a str),
}

impl<'a> Holder<'a> {
    fn of(r: &'a Req) -> Holder<'a> {
        if r.method.starts_with("admin.vm.") {
            Holder::Vm(&r.dest)
        } else {
            Holder::Global
        }
    }
}

/// The definition of the property `name` of a holder, or the reference's refusal.
fn holder_def(st: &State, h: Holder, name: &str) -> Result<&'static PropDef, QubesError> {
    let (def, holder_name) = match h {
        Holder::Global => (props::global_prop(name), "Qubes".to_string()),
        Holder::Vm(n) => {
            let d = st.domain(n).ok_or_else(|| QubesError::no_such_vm(n))?;
            (props::vm_prop(d.class, name), n.to_string())
        }
    };
    def.ok_or_else(|| {
        QubesError::new(
            ExcKind::QubesNoSuchPropertyError,
            format!("Invalid property {} of {holder_name}", py_repr(name)),
        )
    })
}

/// A property's value and whether it is the default.
fn holder_get(st: &State, h: Holder, name: &str) -> (Option<String>, bool) {
    match h {
        Holder::Global => (props::global_get(st, name), !st.global.contains_key(name)),
        Holder::Vm(n) => match st.domain(n) {
            Some(d) => (props::vm_get(st, d, name), !d.props.contains_key(name)),
            None => (None, true),
        },
    }
}

/// `default=<bool> type=<type> <value>` as Get answers.
fn serialize_prop(st: &State, h: Holder, def: &PropDef) -> String {
    let (value, is_default) = holder_get(st, h, def.name);
    match value {
        None => format!("default=True type={} ", def.ty.tag()),
        Some(v) => format!(
            "default={} type={} {v}",
            bool_word(is_default),
            def.ty.tag()
        ),
    }
}

fn prop_list(st: &State, h: Holder) -> Vec<&'static PropDef> {
    match h {
        Holder::Global => props::global_props().to_vec(),
        Holder::Vm(n) => st
            .domain(n)
            .map(|d| props::vm_props(d.class).to_vec())
            .unwrap_or_default(),
    }
}

fn list(r: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(lines(prop_list(v.st, Holder::of(r)).iter().map(|d| d.name)))
}

fn get(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let h = Holder::of(r);
    let def = holder_def(v.st, h, &r.arg)?;
    ok(serialize_prop(v.st, h, def))
}

fn get_all(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let h = Holder::of(r);
    let mut out = String::with_capacity(2048);
    for def in prop_list(v.st, h) {
        out.push_str(def.name);
        out.push(' ');
        // Backslashes and newlines escaped; the runs between them copied whole.
        let s = serialize_prop(v.st, h, def);
        let mut rest = s.as_str();
        while let Some(i) = rest.find(['\\', '\n']) {
            out.push_str(&rest[..i]);
            out.push_str(if rest.as_bytes()[i] == b'\\' {
                "\\\\"
            } else {
                "\\n"
            });
            rest = &rest[i + 1..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    ok(out)
}

fn get_default(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let h = Holder::of(r);
    let def = holder_def(v.st, h, &r.arg)?;
    let value = match h {
        Holder::Global => props::global_default(v.st, def.name),
        Holder::Vm(n) => {
            v.st.domain(n)
                .and_then(|d| props::vm_default(v.st, d, def.name))
        }
    };
    match value {
        None => empty(),
        Some(val) => ok(format!("type={} {val}", def.ty.tag())),
    }
}

fn help(r: &Req, v: &View) -> Result<Reply, QubesError> {
    ok(holder_def(v.st, Holder::of(r), &r.arg)?.help)
}

fn vm_set(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    holder_def(&t.st, Holder::Vm(&r.dest), &r.arg)?;
    op::set_vm(t, &r.dest, &r.arg, &r.untrusted_payload)?;
    t.save = true;
    empty()
}

fn vm_reset(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let def = holder_def(&t.st, Holder::Vm(&r.dest), &r.arg)?;
    op::reset_vm(t, &r.dest, def)?;
    empty()
}

fn global_set(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let def = holder_def(&t.st, Holder::Global, &r.arg)?;
    op::set_global(t, def, &r.untrusted_payload)?;
    empty()
}

fn global_reset(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let def = holder_def(&t.st, Holder::Global, &r.arg)?;
    op::reset_global(t, def)?;
    empty()
}
