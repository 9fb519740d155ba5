//! Devices (admin-api.md §8.2-§8.4): dom0's PCI devices as libvirt describes them, persistent
//! assignments kept in `qubes.xml`, and live attachment through the hypervisor.
//!
//! Block devices are exposed by qubes through QubesDB in the reference; qubesd has no QubesDB,
//! so no qube exposes block devices here: their lists are empty and attaching one fails as for
//! an unknown device, while block assignments are still stored, listed and removed.

pub mod pci;
pub mod protocol;

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use crate::core::{Ctx, Reply};
use crate::handlers::{empty, lines, ok};
use crate::model::{Class, DeviceClassXml, DeviceXml, Domain, ListedFrontend, PowerState, State};
use pci::PciDevice;
use protocol::{Mode, VirtualDevice};
use qubes_api::device_format::pair;

/// Device classes qubesd serves (also `admin.deviceclass.List`).
pub const CLASSES: &[&str] = &["block", "pci"];

/// The class of an `admin.vm.device.<class>.<Op>` method.
fn class_of(method: &str) -> &str {
    method
        .strip_prefix("admin.vm.device.")
        .and_then(|m| m.split('.').next())
        .unwrap_or("")
}

/// A persistent assignment as stored in `qubes.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The assigned device (identity `*` = whatever is on the port).
    pub device: VirtualDevice,
    /// `required`, `auto-attach` or `ask-to-attach`.
    pub mode: Mode,
    /// Options (`no-strict-reset`, `permissive`, `read-only`, ...).
    pub options: Vec<(String, String)>,
    /// See [`DeviceXml::listed_frontend`].
    pub listed_frontend: ListedFrontend,
}

fn attr<'a>(d: &'a DeviceXml, k: &str) -> Option<&'a str> {
    d.attrs
        .iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
}

/// Reads one `<device>` entry the way the reference loads it: a legacy `required` attribute
/// decides between required and auto-attach, no mode at all means required, an `identity`
/// option wins over the attribute, and an unknown mode drops the entry.
pub fn stored(d: &DeviceXml) -> Option<Stored> {
    let mode = match attr(d, "required") {
        Some(r) => {
            if matches!(r.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1") {
                Mode::Required
            } else {
                Mode::Auto
            }
        }
        None => Mode::parse(attr(d, "mode").unwrap_or("required"))?,
    };
    let identity = d
        .options
        .iter()
        .find(|(k, _)| k == "identity")
        .map(|(_, v)| v.as_str())
        .or_else(|| attr(d, "identity"))
        .unwrap_or("*");
    Some(Stored {
        device: VirtualDevice {
            backend: attr(d, "backend-domain")?.to_string(),
            port_id: attr(d, "id").unwrap_or("*").to_string(),
            device_id: identity.to_string(),
        },
        mode,
        options: d
            .options
            .iter()
            .filter(|(k, _)| k != "identity")
            .cloned()
            .collect(),
        listed_frontend: d.listed_frontend.clone(),
    })
}

/// The `<device>` entry the reference writes for an assignment.
fn to_xml(s: &Stored) -> DeviceXml {
    DeviceXml {
        attrs: vec![
            ("backend-domain".into(), s.device.backend.clone()),
            ("id".into(), s.device.port_id.clone()),
            ("mode".into(), s.mode.name().into()),
            ("identity".into(), s.device.device_id.clone()),
        ],
        options: s.options.clone(),
        listed_frontend: s.listed_frontend.clone(),
    }
}

/// A qube's assignments of one class whose backend exists.
pub fn assignments(st: &State, d: &Domain, class: &str) -> Vec<Stored> {
    d.devices
        .iter()
        .filter(|g| g.class == class)
        .flat_map(|g| g.devices.iter().filter_map(stored))
        .filter(|s| st.domain(&s.device.backend).is_some())
        .collect()
}

/// Whether a qube has PCI devices assigned (changes virt_mode, maxmem and kernelopts).
pub fn has_pci(d: &Domain) -> bool {
    d.devices
        .iter()
        .any(|g| g.class == "pci" && g.devices.iter().any(|x| stored(x).is_some()))
}

/// Replaces a qube's assignments of one class, keeping the position of its `<devices>`.
fn store_assignments(d: &mut Domain, class: &str, list: &[Stored]) {
    let devices: Vec<DeviceXml> = list.iter().map(to_xml).collect();
    match d.devices.iter_mut().find(|g| g.class == class) {
        Some(g) => g.devices = devices,
        None => d.devices.push(DeviceClassXml {
            class: class.to_string(),
            devices,
        }),
    }
}

/// `key line` of an assignment: `<backend>+<port>:<device_id>` and its serialization.
fn assignment_line(
    class: &str,
    dev: &VirtualDevice,
    mode: Mode,
    frontend: Option<&str>,
    options: &[(String, String)],
) -> (String, String) {
    let key = format!("{}+{}:{}", dev.backend, dev.port_id, dev.device_id);
    let mut line = format!(
        "{key} {} {} {} {} {}",
        pair("device_id", &dev.device_id),
        pair("port_id", &dev.port_id),
        pair("devclass", class),
        pair("backend_domain", &dev.backend),
        pair("mode", mode.name())
    );
    if let Some(f) = frontend {
        line.push(' ');
        line.push_str(&pair("frontend_domain", f));
    }
    for (k, v) in options {
        line.push(' ');
        line.push_str(&pair(&format!("_{k}"), v));
    }
    (key, line)
}

/// Sorted, one per key (the reference builds a dict), each ending in a newline.
fn sorted_lines(mut v: Vec<(String, String)>) -> String {
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    lines(v.into_iter().map(|(_, l)| l))
}

/// dom0's PCI devices from the hypervisor (none without one).
pub fn host_pci(c: &Ctx) -> Result<Vec<PciDevice>, QubesError> {
    let Some(hv) = &c.hv else {
        return Ok(Vec::new());
    };
    hv.pci_node_devices()
        .map(|x| pci::from_node_xml(&x))
        .map_err(|e| QubesError::qubes(format!("Cannot list PCI devices: {e}")))
}

/// The devices a qube exposes in a class (only dom0 exposes PCI devices here).
fn exposed(c: &Ctx, backend: &Domain, class: &str) -> Result<Vec<PciDevice>, QubesError> {
    if class == "pci" && backend.class == Class::AdminVM {
        host_pci(c)
    } else {
        Ok(Vec::new())
    }
}

fn pci_as_device(p: &PciDevice) -> VirtualDevice {
    VirtualDevice {
        backend: "dom0".into(),
        port_id: p.port_id.clone(),
        device_id: p.device_id(),
    }
}

/// `admin.vm.device.<class>.Available`.
pub(crate) fn available(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let d = c.dest_domain().clone();
    let mut devices = if d.class == Class::RemoteVM {
        Vec::new()
    } else {
        exposed(c, &d, class)?
    };
    if !c.arg.is_empty() {
        devices.retain(|p| p.port_id == c.arg);
        if devices.len() > 1 {
            return Err(QubesError::new(ExcKind::DeviceNotFound, ""));
        }
    }
    let entries = devices
        .iter()
        .map(|p| {
            let key = format!("{}:{}", p.port_id, p.device_id());
            let mut line = format!(
                "{key} {} {} {} {}",
                pair("device_id", &p.device_id()),
                pair("port_id", &p.port_id),
                pair("devclass", "pci"),
                pair("backend_domain", &d.name)
            );
            for (k, v) in [("vendor", &p.vendor), ("product", &p.product)] {
                if v != "unknown" {
                    line.push(' ');
                    line.push_str(&pair(k, v));
                }
            }
            line.push(' ');
            line.push_str(&pair("interfaces", &p.interface()));
            line.push(' ');
            line.push_str(&pair("_sbdf", &p.sbdf));
            (key, line)
        })
        .collect();
    ok(sorted_lines(entries))
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

/// `admin.vm.device.<class>.Assigned`.
pub(crate) fn assigned(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let sel = select(&c.arg)?;
    let d = c.dest_domain();
    let list = if d.class == Class::RemoteVM {
        Vec::new()
    } else {
        assignments(c.st, d, class)
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

/// A device attached to a running qube.
struct Attached {
    /// The assignment it fulfils, or a manual one.
    stored: Stored,
    /// The host device, if libvirt still describes it.
    pci: Option<PciDevice>,
}

/// What is attached to a running qube: PCI devices from its live domain, each with the
/// assignment it fulfils or as a manual attachment. `host` is dom0's device list when the
/// caller has read it already; otherwise it is read only if something is attached.
fn attached_list(
    c: &Ctx,
    d: &Domain,
    class: &str,
    host: Option<&[PciDevice]>,
) -> Result<Vec<Attached>, QubesError> {
    if class != "pci" || d.class == Class::AdminVM || d.class == Class::RemoteVM || !d.is_active() {
        return Ok(Vec::new());
    }
    let Some(hv) = &c.hv else {
        return Ok(Vec::new());
    };
    let xml = hv
        .live_xml(&d.name)
        .map_err(|e| QubesError::qubes(format!("Cannot read the devices of {}: {e}", d.name)))?;
    let names = pci::hostdevs_in(&xml);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let read;
    let host = match host {
        Some(h) => h,
        None => {
            read = host_pci(c)?;
            &read
        }
    };
    let assigned = assignments(c.st, d, class);
    Ok(names
        .iter()
        .map(|n| {
            let pci = host.iter().find(|p| p.libvirt_name == *n).cloned();
            let dev = match &pci {
                Some(p) => pci_as_device(p),
                None => VirtualDevice {
                    backend: "dom0".into(),
                    // A device libvirt no longer describes: its bus address as the port.
                    port_id: pci::bus_address(n).unwrap_or_else(|| n.clone()),
                    device_id: protocol::UNKNOWN_ID.into(),
                },
            };
            let stored = match assigned.iter().find(|s| s.device == dev) {
                Some(s) => s.clone(),
                None => Stored {
                    device: dev,
                    mode: Mode::Manual,
                    options: Vec::new(),
                    listed_frontend: ListedFrontend::Owner,
                },
            };
            Attached { stored, pci }
        })
        .collect())
}

/// `admin.vm.device.<class>.Attached`.
pub(crate) fn attached(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let sel = select(&c.arg)?;
    let d = c.dest_domain().clone();
    let list = filter_selected(attached_list(c, &d, class, None)?, &sel, |a| {
        &a.stored.device
    })?;
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

/// The device an argument names; its backend must exist (the reference's `KeyError`).
fn device_arg(c: &Ctx) -> Result<VirtualDevice, QubesError> {
    let dev = VirtualDevice::from_qarg(&c.arg)?;
    if c.st.domain(&dev.backend).is_none() {
        return Err(QubesError::silent(format!(
            "no backend qube {}",
            py_repr(&dev.backend)
        )));
    }
    Ok(dev)
}

fn supports_devices(d: &Domain) -> Result<(), QubesError> {
    if d.class == Class::RemoteVM {
        return Err(QubesError::qubes("This qube doesn't support devices"));
    }
    Ok(())
}

fn dest_mut<'a>(c: &'a mut Ctx) -> &'a mut Domain {
    let name = c.dest.clone();
    c.st.domain_mut(&name)
        .expect("destination checked before the handler")
}

/// The assignment an Assign or Attach payload describes, checked against the device the
/// argument names; `frontend_domain` must name an existing qube.
fn payload_assignment(
    c: &Ctx,
    dev: &VirtualDevice,
    class: &str,
) -> Result<protocol::Requested, QubesError> {
    let st = &*c.st;
    protocol::deserialize_assignment(&c.untrusted_payload, dev, class, |n| st.domain(n).is_some())
}

/// `admin.vm.device.<class>.Assign`.
pub(crate) fn assign(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let dev = device_arg(c)?;
    let req = payload_assignment(c, &dev, class)?;
    let d = c.dest_domain().clone();
    supports_devices(&d)?;
    let mut list = assignments(c.st, &d, class);
    if list.iter().any(|s| s.device == req.device) {
        return Err(QubesError::new(
            ExcKind::DeviceAlreadyAssigned,
            py_repr(&format!(
                "{class} device {} already assigned to {}",
                req.device.display(),
                d.name
            )),
        ));
    }
    if req.mode == Mode::Manual {
        return Err(QubesError::silent(
            "Only auto-attachable devices can be assigned.",
        ));
    }
    list.push(Stored {
        device: req.device.clone(),
        mode: req.mode,
        options: req.options.clone(),
        listed_frontend: match &req.frontend {
            None => ListedFrontend::Hidden,
            Some(f) if *f == d.name => ListedFrontend::Owner,
            Some(f) => ListedFrontend::Named(f.clone()),
        },
    });
    store_assignments(dest_mut(c), class, &list);
    let (device, options) = (req.device.display(), protocol::options_repr(&req.options));
    let kw = [("device", device.as_str()), ("options", options.as_str())];
    c.fire(&d.name, format!("device-pre-assign:{class}"), &kw);
    c.fire(&d.name, format!("device-assign:{class}"), &kw);
    c.save = true;
    empty()
}

/// `admin.vm.device.<class>.Unassign`.
pub(crate) fn unassign(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let dev = device_arg(c)?;
    let d = c.dest_domain().clone();
    supports_devices(&d)?;
    let mut list = assignments(c.st, &d, class);
    let Some(i) = list.iter().position(|s| s.device == dev) else {
        return Err(QubesError::new(
            ExcKind::DeviceNotAssigned,
            py_repr(&format!(
                "{class} device {} not assigned to {}",
                dev.display(),
                d.name
            )),
        ));
    };
    let gone = list.remove(i);
    store_assignments(dest_mut(c), class, &list);
    let device = gone.device.display();
    c.fire(
        &d.name,
        format!("device-unassign:{class}"),
        &[("device", &device)],
    );
    c.save = true;
    empty()
}

/// `admin.vm.device.<class>.Set.assignment`.
pub(crate) fn set_assignment(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let mode = match c.untrusted_payload.as_slice() {
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
    let dev = device_arg(c)?;
    let d = c.dest_domain().clone();
    if d.class == Class::RemoteVM {
        return Err(QubesError::silent("a RemoteVM has no device collection"));
    }
    let mut list = assignments(c.st, &d, class);
    let Some(s) = list.iter_mut().find(|s| s.device == dev) else {
        return Err(QubesError::value(format!(
            "Device {} not assigned to {}",
            dev.display(),
            d.name
        )));
    };
    c.save = true;
    if s.mode == mode {
        return empty();
    }
    s.mode = mode;
    let options = protocol::options_repr(&s.options);
    store_assignments(dest_mut(c), class, &list);
    let device = dev.display();
    c.fire(
        &d.name,
        format!("device-pre-assign:{class}"),
        &[("device", &device), ("options", &options)],
    );
    c.fire(
        &d.name,
        format!("device-assignment-changed:{class}"),
        &[("device", &device)],
    );
    empty()
}

/// Whether an interface pattern of `devices_denied` (with `*` wildcards) matches one.
fn interface_matches(pattern: &str, interface: &str) -> bool {
    pattern.len() == interface.len()
        && pattern
            .chars()
            .zip(interface.chars())
            .all(|(p, i)| p == '*' || p == i)
}

/// `admin.vm.device.<class>.Attach`.
pub(crate) fn attach(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let dev = device_arg(c)?;
    let req = payload_assignment(c, &dev, class)?;
    let d = c.dest_domain().clone();
    let backend =
        c.st.domain(&dev.backend)
            .cloned()
            .expect("checked by device_arg");
    let host = exposed(c, &backend, class)?;
    // The extension's veto on manual attachments of denied interfaces comes first, with the
    // device as the argument names it.
    let named = host
        .iter()
        .find(|p| dev.port_id != "*" && p.port_id == dev.port_id && dev.device_id == p.device_id());
    let denied = crate::props::vm_get(c.st, &d, "devices_denied").unwrap_or_default();
    if req.mode == Mode::Manual && !denied.is_empty() {
        let Some(p) = named else {
            return Err(QubesError::denied(
                "Could not load interfaces to verify against denied list",
            ));
        };
        let iface = p.interface();
        let hit = interface_codes(&denied).any(|pat| interface_matches(pat, &iface));
        if hit {
            return Err(QubesError::denied(format!(
                "Device exposes a banned interface: {} device",
                class.to_ascii_uppercase()
            )));
        }
    }
    supports_devices(&d)?;
    if d.power == PowerState::Halted {
        return Err(QubesError::new(
            ExcKind::QubesVMNotRunningError,
            "VM not running, cannot attach device, do you mean `assign`?",
        ));
    }
    let want = &req.device;
    let matching: Vec<&PciDevice> = host
        .iter()
        .filter(|p| want.matches(&p.port_id, &p.device_id()))
        .collect();
    let [device] = matching.as_slice() else {
        return Err(QubesError::protocol(format!(
            "Cannot attach ambiguous {class} device."
        )));
    };
    let vdev = pci_as_device(device);
    if attached_list(c, &d, class, Some(&host))?
        .iter()
        .any(|a| a.stored.device == vdev)
    {
        return Err(QubesError::new(
            ExcKind::DeviceAlreadyAttached,
            py_repr(&format!(
                "device {} of class {class} already attached to {}",
                vdev.display(),
                d.name
            )),
        ));
    }
    let (shown, options) = (vdev.display(), protocol::options_repr(&req.options));
    c.fire_sticky(
        &d.name,
        format!("device-pre-attach:{class}"),
        &[("device", &shown), ("options", &options)],
    );
    if d.class == Class::AdminVM {
        return Err(QubesError::qubes("Can't attach PCI device to dom0"));
    }
    if crate::props::vm_get(c.st, &d, "virt_mode").as_deref() == Some("pvh") {
        return Err(QubesError::qubes(
            "Can't attach PCI device to VM in pvh mode",
        ));
    }
    if let Some(hv) = c.hv.clone() {
        hv.attach_device(&d.name, &device.hostdev_xml(hv.domain_type(), &req.options))
            .map_err(|e| {
                QubesError::qubes(format!(
                    "Failed to attach PCI device {}: {e}",
                    device.port_id
                ))
            })?;
    }
    c.fire(
        &d.name,
        format!("device-attach:{class}"),
        &[("device", &shown), ("options", &options)],
    );
    empty()
}

/// `admin.vm.device.<class>.Detach`.
pub(crate) fn detach(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = class_of(c.method);
    let dev = device_arg(c)?;
    let d = c.dest_domain().clone();
    supports_devices(&d)?;
    let attached = attached_list(c, &d, class, None)?;
    let Some(found) = attached
        .iter()
        .find(|a| a.stored.device.port_id == dev.port_id)
    else {
        return Err(QubesError::new(
            ExcKind::DeviceNotAssigned,
            py_repr(&format!(
                "{class} device {} not attached to {}",
                dev.port_id, d.name
            )),
        ));
    };
    let on = &found.stored.device;
    let required = assignments(c.st, &d, class).into_iter().any(|s| {
        s.mode == Mode::Required
            && s.device.backend == on.backend
            && s.device.matches(&on.port_id, &on.device_id)
    });
    if required && d.power != PowerState::Halted {
        return Err(QubesError::new(
            ExcKind::QubesVMNotHaltedError,
            "Can not detach a required device from a non halted qube. You need to unassign device first.",
        ));
    }
    let port = format!("{}:{}", on.backend, on.port_id);
    c.fire_sticky(
        &d.name,
        format!("device-pre-detach:{class}"),
        &[("port", &port)],
    );
    if let (Some(hv), Some(p)) = (c.hv.clone(), &found.pci) {
        hv.detach_device(&d.name, &p.hostdev_xml(hv.domain_type(), &[]))
            .map_err(|e| {
                QubesError::qubes(format!("Failed to detach PCI device {}: {e}", p.port_id))
            })?;
    }
    c.fire(
        &d.name,
        format!("device-detach:{class}"),
        &[("port", &port)],
    );
    empty()
}

/// `admin.vm.device.denied.List`: the codes, one per line, no newline at the end.
pub(crate) fn denied_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    let d = c.dest_domain();
    let v = crate::props::vm_get(c.st, d, "devices_denied").unwrap_or_default();
    ok(interface_codes(&v).collect::<Vec<_>>().join("\n"))
}

/// The 7-character interface codes of an ASCII concatenation (`devices_denied`, which its
/// setter keeps to whole codes, or a payload whose length was checked).
fn interface_codes(s: &str) -> impl Iterator<Item = &str> {
    s.as_bytes()
        .chunks(7)
        .map(|ch| std::str::from_utf8(ch).unwrap_or(""))
}

/// Splits a payload of concatenated 7-character codes (the reference's messages).
fn codes(untrusted: &[u8]) -> Result<Vec<String>, QubesError> {
    let text = std::str::from_utf8(untrusted)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| QubesError::protocol("Device interface contains non-ASCII characters"))?;
    if text.len() % 7 != 0 {
        return Err(QubesError::value(format!(
            "Invalid length of interfaces={} (is {}, expected multiple of 7)",
            py_repr(text),
            text.len()
        )));
    }
    Ok(interface_codes(text).map(str::to_string).collect())
}

fn no_duplicates(codes: &[String]) -> Result<(), QubesError> {
    let mut seen = std::collections::BTreeSet::new();
    if codes.iter().all(|a| seen.insert(a.as_str())) {
        Ok(())
    } else {
        Err(QubesError::protocol(
            "Duplicated device interfaces in payload.",
        ))
    }
}

/// Sets `devices_denied` through its setter (validation, events) when it changes.
fn set_denied(c: &mut Ctx, value: String) -> Result<Reply, QubesError> {
    let d = c.dest_domain();
    let prev = crate::props::vm_get(c.st, d, "devices_denied").unwrap_or_default();
    let vm = c.dest.clone();
    crate::handlers::set_vm_property(c, &vm, "devices_denied", value.as_bytes())?;
    let d = c.dest_domain();
    let now = crate::props::vm_get(c.st, d, "devices_denied").unwrap_or_default();
    c.save = prev != now;
    empty()
}

/// `admin.vm.device.denied.Add`.
pub(crate) fn denied_add(c: &mut Ctx) -> Result<Reply, QubesError> {
    let add = codes(&c.untrusted_payload)?;
    no_duplicates(&add)?;
    let d = c.dest_domain();
    let prev = crate::props::vm_get(c.st, d, "devices_denied").unwrap_or_default();
    set_denied(c, prev + &add.concat())
}

/// `admin.vm.device.denied.Remove`.
pub(crate) fn denied_remove(c: &mut Ctx) -> Result<Reply, QubesError> {
    let d = c.dest_domain();
    let prev = crate::props::vm_get(c.st, d, "devices_denied").unwrap_or_default();
    if c.untrusted_payload == b"all" {
        if prev.is_empty() {
            return empty();
        }
        return set_denied(c, String::new());
    }
    let remove = codes(&c.untrusted_payload)?;
    no_duplicates(&remove)?;
    let kept: String = interface_codes(&prev)
        .filter(|code| !remove.iter().any(|r| r == code))
        .collect();
    if kept == prev {
        return empty();
    }
    set_denied(c, kept)
}

/// Why a qube that provides devices to others cannot be removed (`None`: it can).
pub fn provided_to_others(st: &State, d: &Domain) -> Option<String> {
    if !matches!(
        d.class,
        Class::AppVM | Class::TemplateVM | Class::StandaloneVM | Class::DispVM
    ) {
        return None;
    }
    let ports: Vec<String> = st
        .domains_sorted()
        .filter(|o| o.name != d.name && o.class != Class::RemoteVM)
        .flat_map(|o| {
            CLASSES
                .iter()
                .flat_map(move |cls| assignments(st, o, cls))
                .filter(|s| s.device.backend == d.name)
                .map(|s| s.device.port_id)
        })
        .collect();
    (!ports.is_empty())
        .then(|| format!("VM has devices assigned to other VMs: {}", ports.join(", ")))
}

/// The PCI devices a qube must have at start: `(hostdev XML)` for each required assignment,
/// or the reference's refusal when one is missing.
pub fn required_at_start(
    st: &State,
    d: &Domain,
    host: &[PciDevice],
    kind: &str,
) -> Result<Vec<String>, QubesError> {
    let mut out = Vec::new();
    for cls in CLASSES {
        for s in assignments(st, d, cls)
            .into_iter()
            .filter(|s| s.mode == Mode::Required)
        {
            let found: Vec<&PciDevice> = if *cls == "pci" && s.device.backend == "dom0" {
                host.iter()
                    .filter(|p| s.device.matches(&p.port_id, &p.device_id()))
                    .collect()
            } else {
                Vec::new()
            };
            if found.is_empty() {
                let mut name = cls.to_string();
                name[..1].make_ascii_uppercase();
                return Err(QubesError::qubes(format!(
                    "{name} device {} not available",
                    s.device.display()
                )));
            }
            out.extend(found.iter().map(|p| p.hostdev_xml(kind, &s.options)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(attrs: &[(&str, &str)], options: &[(&str, &str)]) -> DeviceXml {
        DeviceXml {
            attrs: attrs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            options: options
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            listed_frontend: ListedFrontend::Hidden,
        }
    }

    #[test]
    fn assignment_serialization() {
        let s = stored(&xml(
            &[
                ("backend-domain", "dom0"),
                ("id", "00_1f.3"),
                ("mode", "required"),
                ("identity", "*"),
            ],
            &[("no-strict-reset", "True")],
        ))
        .unwrap();
        assert_eq!(
            assignment_line("pci", &s.device, s.mode, None, &s.options).1,
            "dom0+00_1f.3:* device_id='*' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'"
        );
        assert_eq!(to_xml(&s).attrs, s_attrs());
        let legacy = stored(&xml(
            &[
                ("backend-domain", "sys-usb"),
                ("id", "sda"),
                ("required", "no"),
            ],
            &[("read-only", "it's")],
        ))
        .unwrap();
        assert_eq!(
            assignment_line(
                "block",
                &legacy.device,
                legacy.mode,
                Some("work"),
                &legacy.options
            )
            .1,
            "sys-usb+sda:* device_id='*' port_id='sda' devclass='block' backend_domain='sys-usb' mode='auto-attach' frontend_domain='work' _read-only='it\\'s'"
        );
        // No mode at all means required; an unknown one drops the entry.
        let bare = stored(&xml(&[("backend-domain", "dom0"), ("id", "00_02.0")], &[])).unwrap();
        assert_eq!(bare.mode, Mode::Required);
        assert!(
            stored(&xml(
                &[("backend-domain", "dom0"), ("mode", "sometimes")],
                &[]
            ))
            .is_none()
        );
    }

    fn s_attrs() -> Vec<(String, String)> {
        [
            ("backend-domain", "dom0"),
            ("id", "00_1f.3"),
            ("mode", "required"),
            ("identity", "*"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn denied_patterns() {
        assert!(interface_matches("p02****", "p028000"));
        assert!(!interface_matches("p03****", "p028000"));
        assert!(!interface_matches("p0280", "p028000"));
    }
}
