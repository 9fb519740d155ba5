//! From a request to a handler: the method table assembled from the API families' lists, the
//! generic checks in the reference's order (admin-api.md §1.5), and running the handler the
//! way its kind asks (on the snapshot, in a transaction, or on a blocking thread).

use std::collections::HashMap;
use std::sync::OnceLock;

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError, Request};

use crate::api::{self, Kind, Method, Req, Socket, View, Want};
use crate::core::Core;
use crate::model::{Class, State};
use crate::names;
use crate::reply::Reply;

/// Finds a method served on a socket.
pub fn lookup(socket: Socket, name: &str) -> Option<&'static Method> {
    static TABLE: OnceLock<HashMap<(Socket, &'static str), &'static Method>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let mut table = HashMap::new();
            for family in api::families() {
                for m in family {
                    let old = table.insert((m.socket, m.name), m);
                    debug_assert!(old.is_none(), "{} listed twice", m.name);
                }
            }
            table
        })
        .get(&(socket, name))
        .copied()
}

/// Decodes and checks src, dest, method, payload, arg and destination class, in that order.
pub fn resolve(
    st: &State,
    socket: Socket,
    req: &Request,
) -> Result<(&'static Method, Req), QubesError> {
    let src = decode_vm(st, &req.src)?;
    let dest = decode_vm(st, &req.dest)?;
    let method = std::str::from_utf8(&req.method)
        .ok()
        .filter(|m| m.is_ascii())
        .ok_or_else(|| QubesError::silent("method is not ASCII"))?;
    let arg = std::str::from_utf8(&req.arg)
        .ok()
        .filter(|a| a.is_ascii())
        .ok_or_else(|| QubesError::silent("argument is not ASCII"))?;
    let m = lookup(socket, method)
        .ok_or_else(|| QubesError::protocol(format!("no such method: {}", py_repr(method))))?;
    match (m.payload, req.payload.is_empty()) {
        (Want::Yes, true) => return Err(QubesError::protocol("expected payload")),
        (Want::No, false) => return Err(QubesError::protocol("unexpected payload")),
        _ => {}
    }
    match (m.arg, arg.is_empty()) {
        (Want::Yes, true) => return Err(QubesError::protocol("expected an argument")),
        (Want::No, false) => return Err(QubesError::protocol("unexpected argument")),
        _ => {}
    }
    let dest_is_admin = st.domain(&dest).is_some_and(|d| d.class == Class::AdminVM);
    match m.dest_adminvm {
        Some(true) if !dest_is_admin => {
            return Err(QubesError::protocol("expected destination to be AdminVM"));
        }
        Some(false) if dest_is_admin => {
            return Err(QubesError::protocol(
                "expected destination to not be AdminVM",
            ));
        }
        _ => {}
    }
    let req = Req {
        src,
        dest,
        method: m.name,
        arg: arg.to_string(),
        untrusted_payload: req.payload.clone(),
    };
    Ok((m, req))
}

/// `decode_vm`: a name or `uuid:<uuid>` to an existing qube's name.
fn decode_vm(st: &State, untrusted: &[u8]) -> Result<String, QubesError> {
    let s = std::str::from_utf8(untrusted)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::silent("qube name is not ASCII"))?;
    if let Some(rest) = s.strip_prefix("uuid:") {
        if s.len() != 41 || !names::is_canonical_uuid(rest) {
            return Err(QubesError::new(
                ExcKind::QubesVMInvalidUUIDError,
                format!("VM UUID is not valid: {}", py_repr(rest)),
            ));
        }
        return st
            .domain_by_uuid(rest)
            .map(|d| d.name.clone())
            .ok_or_else(|| QubesError::no_such_vm(s));
    }
    names::validate_name(s)?;
    if st.domain(s).is_none() {
        return Err(QubesError::no_such_vm(s));
    }
    Ok(s.to_string())
}

/// Runs a checked call. Reads run on the snapshot at once; the other kinds may block (on the
/// writer lock, an fsync, the hypervisor), so callers on an async runtime run them on a
/// blocking thread (see [`crate::server`]).
pub fn run(core: &Core, m: &'static Method, r: &Req) -> Result<Reply, QubesError> {
    let span = tracing::debug_span!("call", method = m.name, src = %r.src, dest = %r.dest);
    let _entered = span.enter();
    match m.kind {
        Kind::Read(f) | Kind::ReadBlocking(f) => {
            let st = core.snapshot();
            let filter = (m.name == "admin.vm.List" && r.src != "dom0").then(|| core.policy_view());
            let view = View {
                st: &st,
                memo: core.memo(),
                env: core.env(),
                filter,
            };
            guarded(m.name, true, || f(r, &view))
        }
        Kind::Write(f) => core.write(m.name, |t| f(r, t)),
        // What such a call committed before a panic stays committed.
        Kind::Blocking(f) => guarded(m.name, false, || f(r, core)),
    }
}

/// Checks and runs a request end to end on the calling thread (the embedded demo's seed,
/// tests); must not be called on an async runtime's worker.
pub fn call(core: &Core, socket: Socket, req: &Request) -> Result<Reply, QubesError> {
    let (m, r) = resolve(&core.snapshot(), socket, req)?;
    run(core, m, &r)
}

/// Runs code that changes nothing itself (a read, or a call that commits through its own
/// transactions), turning a panic into an exception: the daemon keeps serving. `unchanged`:
/// the call cannot have changed anything (a read).
fn guarded(
    what: &str,
    unchanged: bool,
    f: impl FnOnce() -> Result<Reply, QubesError>,
) -> Result<Reply, QubesError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!("{what} panicked");
        Err(QubesError::qubes(if unchanged {
            format!("Internal error in qubesd while handling {what}; nothing was changed")
        } else {
            format!("Internal error in qubesd while handling {what}")
        }))
    })
}
