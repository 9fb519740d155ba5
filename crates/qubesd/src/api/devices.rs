//! Devices: every `admin.vm.device.<class>.*` method for each class of
//! [`crate::devices::CLASSES`] (the reference generates them from its entry points), and
//! `admin.vm.device.denied.*` (admin-api.md §8.4).

use qubes_api::{ExcKind, QubesError};

use super::Want::{Any, No, Yes};
use super::{ANY, Method, Req, View, blocking, read, read_blocking, write};
use crate::core::Core;
use crate::devices::protocol::{self, Mode, VirtualDevice};
use crate::devices::{
    assignment_line, assignments, available_line, codes, interface_codes, no_duplicates,
    sorted_lines,
};
use crate::model::{Class, State};
use crate::ops::devices as op;
use crate::ops::devices::{attached_list, exposed};
use crate::reply::{Reply, empty, ok};
use crate::txn::Txn;

/// The methods of one device class.
macro_rules! class_methods {
    ($class:literal) => {
        [
            read_blocking(
                concat!("admin.vm.device.", $class, ".Available"),
                Any,
                No,
                ANY,
                available,
            ),
            read(
                concat!("admin.vm.device.", $class, ".Assigned"),
                Any,
                No,
                ANY,
                assigned,
            ),
            read_blocking(
                concat!("admin.vm.device.", $class, ".Attached"),
                Any,
                No,
                ANY,
                attached,
            ),
            write(
                concat!("admin.vm.device.", $class, ".Assign"),
                Yes,
                Yes,
                ANY,
                assign,
            ),
            write(
                concat!("admin.vm.device.", $class, ".Unassign"),
                Yes,
                No,
                ANY,
                unassign,
            ),
            blocking(
                concat!("admin.vm.device.", $class, ".Attach"),
                Yes,
                Any,
                ANY,
                attach,
            ),
            blocking(
                concat!("admin.vm.device.", $class, ".Detach"),
                Yes,
                No,
                ANY,
                detach,
            ),
            write(
                concat!("admin.vm.device.", $class, ".Set.assignment"),
                Yes,
                Yes,
                ANY,
                set_assignment,
            ),
        ]
    };
}

const BLOCK: [Method; 8] = class_methods!("block");
const PCI: [Method; 8] = class_methods!("pci");

/// The family's methods.
pub static METHODS: &[Method] = &[
    BLOCK[0],
    BLOCK[1],
    BLOCK[2],
    BLOCK[3],
    BLOCK[4],
    BLOCK[5],
    BLOCK[6],
    BLOCK[7],
    PCI[0],
    PCI[1],
    PCI[2],
    PCI[3],
    PCI[4],
    PCI[5],
    PCI[6],
    PCI[7],
    read("admin.vm.device.denied.List", No, No, ANY, denied_list),
    write("admin.vm.device.denied.Add", No, Any, ANY, denied_add),
    write("admin.vm.device.denied.Remove", No, Any, ANY, denied_remove),
];

/// The class of an `admin.vm.device.<class>.<Op>` method.
fn class_of(method: &str) -> &str {
    method
        .strip_prefix("admin.vm.device.")
        .and_then(|m| m.split('.').next())
        .unwrap_or("")
}

fn available(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let d = r.dest_in(v.st)?;
    let mut devices = if d.class == Class::RemoteVM {
        Vec::new()
    } else {
        v.st.touch_devices(d, class);
        exposed(v.env.hv.as_deref(), d, class)?
    };
    if !r.arg.is_empty() {
        devices.retain(|p| p.port_id == r.arg);
        if devices.len() > 1 {
            return Err(QubesError::new(ExcKind::DeviceNotFound, ""));
        }
    }
    ok(sorted_lines(
        devices.iter().map(|p| available_line(p, &d.name)).collect(),
    ))
}

/// The `<backend>+<port>` filter of Assigned and Attached; no `+` is a generic failure.
fn select(arg: &str) -> Result<Option<(String, String)>, QubesError> {
    if arg.is_empty() {
        return Ok(None);
    }
    let (b, p) = arg
        .split_once('+')
        .ok_or_else(|| QubesError::silent(format!("device selector without '+': {arg}")))?;
    Ok(Some((b.to_string(), p.to_string())))
}

fn filter_selected<T>(
    mut v: Vec<T>,
    sel: &Option<(String, String)>,
    dev: impl Fn(&T) -> &VirtualDevice,
) -> Result<Vec<T>, QubesError> {
    if let Some((b, p)) = sel {
        v.retain(|x| dev(x).backend == *b && dev(x).port_id == *p);
        if v.len() > 1 {
            return Err(QubesError::new(ExcKind::DeviceNotFound, ""));
        }
    }
    Ok(v)
}

fn assigned(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let sel = select(&r.arg)?;
    let d = r.dest_in(v.st)?;
    let list = if d.class == Class::RemoteVM {
        Vec::new()
    } else {
        v.st.touch_devices(d, class);
        assignments(v.st, d, class)
    };
    let list = filter_selected(list, &sel, |s| &s.device)?;
    let entries = list
        .iter()
        .map(|s| {
            let frontend = s.listed_frontend.name(&d.name);
            assignment_line(class, &s.device, s.mode, frontend, &s.options)
        })
        .collect();
    ok(sorted_lines(entries))
}

fn attached(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let sel = select(&r.arg)?;
    let d = r.dest_in(v.st)?;
    if d.class != Class::RemoteVM {
        v.st.touch_devices(d, class);
    }
    let list = attached_list(v.env.hv.as_deref(), v.st, d, class, None)?;
    let list = filter_selected(list, &sel, |a| &a.stored.device)?;
    for a in &list {
        if let Some(b) = v.st.domain(&a.stored.device.backend) {
            v.st.touch_devices(b, class);
        }
    }
    let entries = list
        .iter()
        .map(|a| {
            let s = &a.stored;
            let frontend = s.listed_frontend.name(&d.name);
            assignment_line(class, &s.device, s.mode, frontend, &s.options)
        })
        .collect();
    ok(sorted_lines(entries))
}

/// The device an argument names; its backend must exist (the reference's `KeyError`). A
/// device named by port and id is looked up in its backend's devices of `class` (noted as
/// looked at, see [`State::touch_devices`]).
fn device_arg(st: &State, arg: &str, class: &str) -> Result<VirtualDevice, QubesError> {
    let dev = VirtualDevice::from_qarg(arg)?;
    let Some(backend) = st.domain(&dev.backend) else {
        return Err(QubesError::silent(format!(
            "no backend qube {}",
            qubes_api::exc::py_repr(&dev.backend)
        )));
    };
    if dev.port_id != "*" && dev.device_id != "*" {
        st.touch_devices(backend, class);
    }
    Ok(dev)
}

/// Notes that a write call looks at the target's devices of `class` (not a RemoteVM's: it
/// has none).
fn touch_dest(t: &Txn, vm: &str, class: &str) {
    if let Some(d) = t.st.domain(vm)
        && d.class != Class::RemoteVM
    {
        t.st.touch_devices(d, class);
    }
}

/// The assignment an Assign or Attach payload describes, checked against the device the
/// argument names; `frontend_domain` must name an existing qube.
fn payload_assignment(
    st: &State,
    r: &Req,
    dev: &VirtualDevice,
    class: &str,
) -> Result<protocol::Requested, QubesError> {
    protocol::deserialize_assignment(&r.untrusted_payload, dev, class, |n| st.domain(n).is_some())
}

fn assign(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let dev = device_arg(&t.st, &r.arg, class)?;
    let req = payload_assignment(&t.st, r, &dev, class)?;
    touch_dest(t, &r.dest, class);
    op::assign(t, &r.dest, class, req)?;
    empty()
}

fn unassign(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let dev = device_arg(&t.st, &r.arg, class)?;
    touch_dest(t, &r.dest, class);
    op::unassign(t, &r.dest, class, &dev)?;
    empty()
}

fn set_assignment(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let mode = match r.untrusted_payload.as_slice() {
        b"required" => Mode::Required,
        b"ask-to-attach" => Mode::Ask,
        b"auto-attach" => Mode::Auto,
        _ => {
            return Err(QubesError::new(
                ExcKind::QubesUnrecognizedDeviceAssignmentMode,
                "Invalid assignment mode",
            ));
        }
    };
    let dev = device_arg(&t.st, &r.arg, class)?;
    touch_dest(t, &r.dest, class);
    op::set_mode(t, &r.dest, class, &dev, mode)?;
    empty()
}

fn attach(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let st = core.snapshot();
    let dev = device_arg(&st, &r.arg, class)?;
    let req = payload_assignment(&st, r, &dev, class)?;
    op::attach(core, &r.dest, class, &dev, req)?;
    empty()
}

fn detach(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    let class = class_of(r.method);
    let st = core.snapshot();
    let dev = device_arg(&st, &r.arg, class)?;
    if let Some(d) = st.domain(&r.dest)
        && d.class != Class::RemoteVM
    {
        st.touch_devices(d, class);
    }
    op::detach(core, &r.dest, class, &dev)?;
    empty()
}

/// `admin.vm.device.denied.List`: the codes, one per line, no newline at the end.
fn denied_list(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let d = r.dest_in(v.st)?;
    no_denied_list(d)?;
    let denied = crate::props::vm_get(v.st, d, "devices_denied").unwrap_or_default();
    ok(interface_codes(&denied).collect::<Vec<_>>().join("\n"))
}

/// A RemoteVM has no `devices_denied` (the reference fails without a reply on List and
/// Remove, and answers this on Add).
fn no_denied_list(d: &crate::model::Domain) -> Result<(), QubesError> {
    if crate::props::vm_prop(d.class, "devices_denied").is_none() {
        return Err(QubesError::new(
            qubes_api::ExcKind::QubesNoSuchPropertyError,
            format!("Invalid property 'devices_denied' of {}", d.name),
        ));
    }
    Ok(())
}

fn denied_add(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let add = codes(&r.untrusted_payload)?;
    no_duplicates(&add)?;
    let prev = op::denied(t, &r.dest)?;
    op::set_denied(t, &r.dest, prev + &add.concat())?;
    empty()
}

fn denied_remove(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    no_denied_list(r.dest_in(&t.st)?)?;
    let prev = op::denied(t, &r.dest)?;
    if r.untrusted_payload == b"all" {
        if !prev.is_empty() {
            op::set_denied(t, &r.dest, String::new())?;
        }
        return empty();
    }
    let remove = codes(&r.untrusted_payload)?;
    no_duplicates(&remove)?;
    let kept: String = interface_codes(&prev)
        .filter(|code| !remove.iter().any(|r| r == code))
        .collect();
    if kept != prev {
        op::set_denied(t, &r.dest, kept)?;
    }
    empty()
}
