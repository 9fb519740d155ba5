//! The internal socket: `internal.GetSystemInfo` for qrexec's policy daemon, the host's
//! suspend and resume, and the two halves of a streamed volume import (admin-api.md §2.8, §7.5).

use qubes_api::QubesError;

use super::Want::{Any, No, Yes};
use super::{ANY, DOM0, Method, Req, Socket, View, blocking, on, read, write};
use crate::core::Core;
use crate::ops::storage::{end_import, halted, internal_volume, set_cfg};
use crate::props;
use crate::reply::{Reply, empty, ok};
use crate::storage::{validate_number, vol_driver};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    on(
        write(
            "internal.vm.volume.ImportBegin",
            Yes,
            Any,
            ANY,
            import_begin,
        ),
        Socket::Internal,
    ),
    on(
        write("internal.vm.volume.ImportEnd", Yes, Yes, ANY, import_end),
        Socket::Internal,
    ),
    on(
        read("internal.GetSystemInfo", No, No, DOM0, system_info),
        Socket::Internal,
    ),
    on(
        blocking("internal.SuspendPre", No, No, DOM0, suspend_pre),
        Socket::Internal,
    ),
    on(
        blocking("internal.SuspendPost", No, No, DOM0, suspend_post),
        Socket::Internal,
    ),
];

/// `internal.SuspendPre`: the host is about to sleep.
fn suspend_pre(_: &Req, core: &Core) -> Result<Reply, QubesError> {
    crate::ops::suspend::suspend_all(core)?;
    empty()
}

/// `internal.SuspendPost`: the host woke up.
fn suspend_post(_: &Req, core: &Core) -> Result<Reply, QubesError> {
    crate::ops::suspend::resume_all(core)?;
    empty()
}

/// `internal.vm.volume.ImportBegin`: answers `<size> <path>` to write the data to.
fn import_begin(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let v = internal_volume(&t.st, &r.dest, &r.arg)?;
    halted(&t.st, &r.dest)?;
    let requested = if r.untrusted_payload.is_empty() {
        None
    } else {
        Some(validate_number(&r.untrusted_payload, "size of new data", false)? as u64)
    };
    let drv = vol_driver(&v)?;
    let size = requested.unwrap_or_else(|| drv.size(&v));
    let path = drv.import_data(&v, size)?;
    let path = path.to_string_lossy().into_owned();
    if path.contains(char::is_whitespace) {
        let _ = drv.import_data_end(&v, false);
        return Err(QubesError::protocol("Path contains whitespace"));
    }
    let vm = v.vm.clone();
    let size_s = size.to_string();
    t.fire(
        &vm,
        "domain-volume-import-begin",
        &[("volume", &v.name), ("size", &size_s)],
    );
    ok(format!("{size} {path}"))
}

/// `internal.vm.volume.ImportEnd`: commits (payload `ok`) or drops the import.
fn import_end(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let v = internal_volume(&t.st, &r.dest, &r.arg)?;
    let success = r.untrusted_payload == b"ok";
    let drv = vol_driver(&v)?;
    end_import(t, &v, success)?;
    if !success {
        let text = String::from_utf8_lossy(&r.untrusted_payload).into_owned();
        let error = text.split_once('\n').map(|(_, e)| e).unwrap_or("");
        let error: String = error
            .chars()
            .filter(|ch| ch.is_ascii_graphic() || *ch == ' ')
            .take(1024)
            .collect();
        return Err(QubesError::qubes(format!("Data import failed: {error}")));
    }
    let size = drv.size(&v);
    set_cfg(t, &v.vm, &v.name, "size", size.to_string());
    t.save = true;
    empty()
}

// ---- internal and misc sockets ------------------------------------------------------------

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `internal.GetSystemInfo`: every qube (dom0 first, then by name) with what the policy daemon needs,
/// keys in the reference's order.
fn system_info(_: &Req, v: &View) -> Result<Reply, QubesError> {
    let st = v.st;
    let mut out = String::from("{\"domains\": {");
    for (i, d) in st.domains_sorted().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json_str(&d.name, &mut out);
        out.push_str(": {\"internal\": ");
        match d.feature("internal") {
            Some(f) => json_str(f, &mut out),
            None => out.push_str("null"),
        }
        out.push_str(", \"tags\": [");
        for (j, t) in d.tags.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            json_str(t, &mut out);
        }
        let label = st
            .labels
            .values()
            .find(|l| l.name == d.label())
            .map(|l| l.color.clone())
            .unwrap_or_default();
        // Properties the class does not have are null, as are empty ones.
        let get = |p: &str| {
            props::vm_prop(d.class, p)
                .and_then(|_| props::vm_get(st, d, p))
                .filter(|v| !v.is_empty())
        };
        let vm_or_null = |p: &str, out: &mut String| match get(p) {
            Some(v) => json_str(&v, out),
            None => out.push_str("null"),
        };
        out.push_str("], \"type\": ");
        json_str(d.class.name(), &mut out);
        out.push_str(", \"template_for_dispvms\": ");
        out.push_str(if props::vm_flag(st, d, "template_for_dispvms") {
            "true"
        } else {
            "false"
        });
        out.push_str(", \"default_dispvm\": ");
        vm_or_null("default_dispvm", &mut out);
        // The label's icon, whatever the class.
        out.push_str(", \"icon\": ");
        json_str(&format!("appvm-{}", d.label()), &mut out);
        out.push_str(", \"label\": ");
        json_str(&label, &mut out);
        out.push_str(", \"guivm\": ");
        vm_or_null("guivm", &mut out);
        out.push_str(", \"relayvm\": ");
        vm_or_null("relayvm", &mut out);
        out.push_str(", \"transport_rpc\": ");
        vm_or_null("transport_rpc", &mut out);
        out.push_str(", \"power_state\": ");
        json_str(d.power.name(), &mut out);
        out.push_str(", \"uuid\": ");
        json_str(d.uuid(), &mut out);
        out.push('}');
    }
    out.push_str("}}");
    ok(out)
}
