//! Firewall rules: `admin.vm.firewall.Get`, `Set`, `Reload` (admin-api.md §8.1).

use qubes_api::{ExcKind, QubesError};

use super::Want::{No, Yes};
use super::{Method, NOT_DOM0, Req, View, read_blocking, write};
use crate::firewall::{Rule, firewall_path, load, to_xml};
use crate::model::{Class, Domain};
use crate::reply::{Reply, empty, lines, ok};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read_blocking("admin.vm.firewall.Get", No, No, NOT_DOM0, get),
    write("admin.vm.firewall.Set", No, Yes, NOT_DOM0, set),
    write("admin.vm.firewall.Reload", No, No, NOT_DOM0, reload),
];

/// A RemoteVM has no firewall here (the reference fails without a reply).
fn local(d: &Domain) -> Result<&Domain, QubesError> {
    if d.class == Class::RemoteVM {
        return Err(QubesError::new(
            ExcKind::QubesVMError,
            "A RemoteVM has no firewall",
        ));
    }
    Ok(d)
}

fn get(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let rules = load(&firewall_path(&v.env.state_dir, local(r.dest_in(v.st)?)?))?;
    ok(lines(
        rules.iter().filter(|r| !r.expired()).map(Rule::api_line),
    ))
}

fn set(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let text = std::str::from_utf8(&r.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::protocol("Rules contains non-ASCII characters"))?;
    let rules = crate::pycompat::py_splitlines(text)
        .into_iter()
        .map(Rule::from_api)
        .collect::<Result<Vec<_>, _>>()?;
    let path = firewall_path(&t.env.state_dir, local(r.dest_in(&t.st)?)?);
    t.write_file(path, to_xml(&rules).into_bytes());
    t.fire(&r.dest, "firewall-changed", &[]);
    empty()
}

fn reload(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    r.dest_in(&t.st)?;
    t.fire(&r.dest, "firewall-changed", &[]);
    empty()
}
