//! What is left: `admin.Events` and the misc socket's `qubes.*` calls that qubes make about
//! themselves (admin-api.md §2.7, §2.8, §4).

use qubes_api::QubesError;

use super::Want::{No, Yes};
use super::{ANY, DOM0, Method, Req, Socket, View, on, read, write};
use crate::ops::features;
use crate::props;
use crate::pycompat::py_strip;
use crate::reply::{Reply, empty};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.Events", No, No, ANY, events),
    on(
        write("qubes.NotifyUpdates", No, Yes, DOM0, notify_updates),
        Socket::Misc,
    ),
];

fn events(r: &Req, _: &View) -> Result<Reply, QubesError> {
    Ok(Reply::Events {
        dest: r.dest.clone(),
        src: r.src.clone(),
    })
}

fn notify_updates(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let text = std::str::from_utf8(&r.untrusted_payload).unwrap_or("");
    let count = py_strip(text);
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QubesError::protocol("Update count is not a digit"));
    }
    let count: u64 = count.parse().unwrap_or(u64::MAX);
    // The caller reports for itself, or for its template when it has one.
    let src =
        t.st.domain(&r.src)
            .ok_or_else(|| QubesError::no_such_vm(&r.src))?
            .clone();
    let target = if src.class.has_template() {
        props::vm_get(&t.st, &src, "template").unwrap_or_else(|| src.name.clone())
    } else {
        src.name.clone()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let flag = if count > 0 { "1" } else { "" };
    if count > 0
        || t.st
            .domain(&target)
            .and_then(|d| d.feature("updates-available"))
            .is_some()
    {
        features::set(t, &target, "updates-available", flag)?;
    }
    features::set(t, &target, "last-updates-check", &now)?;
    t.save = true;
    empty()
}
