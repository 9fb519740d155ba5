//! What is left: `admin.Events` and the misc socket's `qubes.*` calls that qubes make about
//! themselves (admin-api.md §2.7, §2.8, §4): the features a qube asks for (read from its
//! QubesDB) and the updates it found.

use qubes_api::{ExcKind, QubesError};

use super::Want::{No, Yes};
use super::{ANY, DOM0, Method, Req, Socket, View, blocking, on, read, write};
use crate::core::Core;
use crate::model::{Class, Domain};
use crate::ops::{features, features_request};
use crate::props;
use crate::pycompat::{local_now_text, py_strip};
use crate::qubesdb::{QdbError, QubesDb};
use crate::reply::{Reply, empty};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read("admin.Events", No, No, ANY, events),
    on(
        blocking("qubes.FeaturesRequest", No, No, DOM0, features_request),
        Socket::Misc,
    ),
    on(
        blocking("qubes.NotifyTools", No, No, DOM0, notify_tools),
        Socket::Misc,
    ),
    on(
        write("qubes.NotifyUpdates", No, Yes, DOM0, notify_updates),
        Socket::Misc,
    ),
];

/// The calling qube.
fn caller<'a>(st: &'a crate::model::State, r: &Req) -> Result<&'a Domain, QubesError> {
    st.domain(&r.src)
        .ok_or_else(|| QubesError::no_such_vm(&r.src))
}

fn events(r: &Req, _: &View) -> Result<Reply, QubesError> {
    Ok(Reply::Events {
        dest: r.dest.clone(),
        src: r.src.clone(),
    })
}

/// The caller's QubesDB. The reference reads it through the connection it keeps while the
/// qube runs, and fails without a reply when there is none; this says why instead.
///
/// `Ok(None)` for dom0 when its QubesDB daemon is not there to connect to: the reference
/// opens dom0's QubesDB once at start and keeps it, so dom0 always has one to read, and one
/// that cannot be reached holds no request (the reference then answers an empty request).
fn caller_qubesdb(core: &Core, src: &Domain) -> Result<Option<QubesDb>, QubesError> {
    if src.class == Class::RemoteVM {
        return Err(QubesError::new(
            ExcKind::QubesVMError,
            "A RemoteVM has no QubesDB",
        ));
    }
    match QubesDb::connect(&core.env().qubesdb_dir, &src.name) {
        Ok(qdb) => Ok(Some(qdb)),
        Err(QdbError::Io(e))
            if src.class == Class::AdminVM
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
        {
            Ok(None)
        }
        Err(e) => Err(QubesError::qubes(format!(
            "The QubesDB of {} cannot be read (is the qube running?): {e}",
            src.name
        ))),
    }
}

fn qdb_error(vm: &str, e: QdbError) -> QubesError {
    QubesError::qubes(format!("Reading the QubesDB of {vm} failed: {e}"))
}

/// A value the qube wrote, as ASCII text (the reference fails without a reply otherwise).
fn ascii(vm: &str, key: &str, value: Vec<u8>) -> Result<String, QubesError> {
    String::from_utf8(value)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or_else(|| QubesError::protocol(format!("{vm} wrote a non-ASCII value for {key}")))
}

/// Applies a request in a transaction and saves.
fn apply(core: &Core, vm: &str, req: Vec<(String, String)>) -> Result<Reply, QubesError> {
    core.write("features-request", |t| {
        features_request::handle(t, vm, &req)?;
        t.save = true;
        Ok(())
    })?;
    empty()
}

/// `qubes.FeaturesRequest`: the qube wrote what it asks for below `/features-request/`.
fn features_request(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    const PREFIX: &str = "/features-request/";
    const SAFE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.,_= ";
    let st = core.snapshot();
    let src = caller(&st, r)?;
    let Some(mut qdb) = caller_qubesdb(core, src)? else {
        return apply(core, &r.src, Vec::new());
    };
    let keys = qdb.list(PREFIX).map_err(|e| qdb_error(&r.src, e))?;
    let mut req = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let value = qdb
            .read(&key)
            .map_err(|e| qdb_error(&r.src, e))?
            // Listed, then gone: the qube changed it meanwhile.
            .ok_or_else(|| {
                QubesError::qubes(format!("{key} vanished from the QubesDB of {}", r.src))
            })?;
        req.push((name.to_string(), ascii(&r.src, &key, value)?));
    }
    if req
        .iter()
        .any(|(_, v)| !v.chars().all(|c| SAFE.contains(c)))
    {
        return Err(QubesError::protocol(format!(
            "Value outside safe set: {SAFE}"
        )));
    }
    apply(core, &r.src, req)
}

/// `qubes.NotifyTools`: the older form used by Qubes Windows Tools, `/qubes-tools/<feature>`.
fn notify_tools(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    const SAFE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let st = core.snapshot();
    let src = caller(&st, r)?;
    let Some(mut qdb) = caller_qubesdb(core, src)? else {
        return apply(core, &r.src, Vec::new());
    };
    let mut req = Vec::new();
    for f in ["qrexec", "gui", "gui-emulated", "default-user", "os"] {
        let key = format!("/qubes-tools/{f}");
        let Some(value) = qdb.read(&key).map_err(|e| qdb_error(&r.src, e))? else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let value = ascii(&r.src, &key, value)?;
        if !value.chars().all(|c| SAFE.contains(c)) {
            return Err(QubesError::protocol(format!(
                "Value outside safe set: {SAFE}"
            )));
        }
        req.push((f.to_string(), value));
    }
    apply(core, &r.src, req)
}

/// `qubes.NotifyUpdates`: a qube found updates (a count > 0) or none. An updateable qube
/// reports for itself; another one tells the nearest updateable template of its chain that
/// it has updates (never that it has none), unless that template runs and reports itself.
fn notify_updates(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let text = std::str::from_utf8(&r.untrusted_payload).unwrap_or("");
    let count = py_strip(text);
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QubesError::protocol("Update count is not a digit"));
    }
    let updates = count.bytes().any(|b| b != b'0');
    let src = caller(&t.st, r)?.clone();
    if src.class == Class::RemoteVM {
        // The reference fails without a reply (a RemoteVM is not updateable or not).
        return Err(QubesError::new(
            ExcKind::QubesVMError,
            "A RemoteVM cannot report updates",
        ));
    }
    let updateable = |d: &Domain| props::vm_flag(&t.st, d, "updateable");
    if updateable(&src) {
        feature_of_update(t, &src.name, updates)?;
        t.save = true;
        return empty();
    }
    let mut cur = props::vm_ref(&t.st, &src, "template");
    let mut steps = 0;
    while let Some(tpl) = cur
        && !updateable(tpl)
        && steps < 16
    {
        cur = props::vm_ref(&t.st, tpl, "template");
        steps += 1;
    }
    let Some(tpl) = cur.filter(|d| updateable(d)).cloned() else {
        return empty();
    };
    if tpl.is_active() || !updates {
        return empty();
    }
    feature_of_update(t, &tpl.name, true)?;
    t.save = true;
    empty()
}

/// Records a report: `updates-available`, `last-updates-check` and, when updates went away,
/// `last-update`, in local time as the reference writes them.
fn feature_of_update(t: &mut Txn, vm: &str, updates: bool) -> Result<(), QubesError> {
    let now = local_now_text();
    let had =
        t.st.domain(vm)
            .and_then(|d| d.feature("updates-available"))
            .is_some_and(|v| !v.is_empty());
    if had && !updates {
        features::set(t, vm, "last-update", &now)?;
    }
    features::set(t, vm, "updates-available", if updates { "1" } else { "" })?;
    features::set(t, vm, "last-updates-check", &now)
}
