//! Device assignments and attachments: what Assign, Unassign, Set.assignment, Attach, Detach
//! and the denied list change, and their events (admin-api.md §8.4).

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use crate::core::Core;
use crate::devices::pci::PciDevice;
use crate::devices::protocol::{self, Mode, VirtualDevice};
use crate::devices::{
    Stored, assignments, interface_codes, interface_matches, pci, pci_as_device, store_assignments,
};
use crate::hypervisor::Hypervisor;
use crate::model::State;
use crate::model::{Class, Domain, ListedFrontend, PowerState};
use crate::txn::Txn;

fn qube(t: &Txn, vm: &str) -> Result<Domain, QubesError> {
    t.st.domain(vm)
        .cloned()
        .ok_or_else(|| QubesError::no_such_vm(vm))
}

fn supports_devices(d: &Domain) -> Result<(), QubesError> {
    if d.class == Class::RemoteVM {
        return Err(QubesError::qubes("This qube doesn't support devices"));
    }
    Ok(())
}

/// Replaces a qube's assignments of `class`.
fn store(t: &mut Txn, vm: &str, class: &str, list: &[Stored]) -> Result<(), QubesError> {
    let d =
        t.st.domain_mut(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?;
    store_assignments(d, class, list);
    Ok(())
}

/// Assigns a device to `vm` (`admin.vm.device.<class>.Assign`).
pub fn assign(
    t: &mut Txn,
    vm: &str,
    class: &str,
    req: protocol::Requested,
) -> Result<(), QubesError> {
    let d = qube(t, vm)?;
    supports_devices(&d)?;
    let mut list = assignments(&t.st, &d, class);
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
    store(t, vm, class, &list)?;
    let (device, options) = (req.device.display(), protocol::options_repr(&req.options));
    let kw = [("device", device.as_str()), ("options", options.as_str())];
    t.fire(vm, format!("device-pre-assign:{class}"), &kw);
    t.fire(vm, format!("device-assign:{class}"), &kw);
    t.save = true;
    Ok(())
}

/// Removes an assignment (`admin.vm.device.<class>.Unassign`).
pub fn unassign(t: &mut Txn, vm: &str, class: &str, dev: &VirtualDevice) -> Result<(), QubesError> {
    let d = qube(t, vm)?;
    supports_devices(&d)?;
    let mut list = assignments(&t.st, &d, class);
    let Some(i) = list.iter().position(|s| s.device == *dev) else {
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
    store(t, vm, class, &list)?;
    let device = gone.device.display();
    t.fire(
        vm,
        format!("device-unassign:{class}"),
        &[("device", &device)],
    );
    t.save = true;
    Ok(())
}

/// Changes an assignment's mode (`admin.vm.device.<class>.Set.assignment`).
pub fn set_mode(
    t: &mut Txn,
    vm: &str,
    class: &str,
    dev: &VirtualDevice,
    mode: Mode,
) -> Result<(), QubesError> {
    let d = qube(t, vm)?;
    if d.class == Class::RemoteVM {
        return Err(QubesError::silent("a RemoteVM has no device collection"));
    }
    let mut list = assignments(&t.st, &d, class);
    let Some(s) = list.iter_mut().find(|s| s.device == *dev) else {
        return Err(QubesError::value(format!(
            "Device {} not assigned to {}",
            dev.display(),
            d.name
        )));
    };
    t.save = true;
    if s.mode == mode {
        return Ok(());
    }
    s.mode = mode;
    let options = protocol::options_repr(&s.options);
    store(t, vm, class, &list)?;
    let device = dev.display();
    t.fire(
        vm,
        format!("device-pre-assign:{class}"),
        &[("device", &device), ("options", &options)],
    );
    t.fire(
        vm,
        format!("device-assignment-changed:{class}"),
        &[("device", &device)],
    );
    Ok(())
}

/// Attaches a device to a running qube (`admin.vm.device.<class>.Attach`): the checks on a
/// snapshot, `device-pre-attach`, the hot-plug with no lock held, `device-attach`.
pub fn attach(
    core: &Core,
    vm: &str,
    class: &str,
    dev: &VirtualDevice,
    req: protocol::Requested,
) -> Result<(), QubesError> {
    let st = core.snapshot();
    let hv = core.env().hv.clone();
    let d = st
        .domain(vm)
        .cloned()
        .ok_or_else(|| QubesError::no_such_vm(vm))?;
    let backend = st
        .domain(&dev.backend)
        .cloned()
        .ok_or_else(|| QubesError::no_such_vm(&dev.backend))?;
    let host = exposed(hv.as_deref(), &backend, class)?;
    // The extension's veto on manual attachments of denied interfaces comes first, with the
    // device as the argument names it.
    let named = host
        .iter()
        .find(|p| dev.port_id != "*" && p.port_id == dev.port_id && dev.device_id == p.device_id());
    let denied = crate::props::vm_get(&st, &d, "devices_denied").unwrap_or_default();
    if req.mode == Mode::Manual && !denied.is_empty() {
        let Some(p) = named else {
            return Err(QubesError::denied(
                "Could not load interfaces to verify against denied list",
            ));
        };
        let iface = p.interface();
        if interface_codes(&denied).any(|pat| interface_matches(pat, &iface)) {
            return Err(QubesError::denied(format!(
                "Device exposes a banned interface: {} device",
                class.to_ascii_uppercase()
            )));
        }
    }
    supports_devices(&d)?;
    st.touch_devices(&d, class);
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
    if attached_list(hv.as_deref(), &st, &d, class, Some(&host))?
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
    let kw = [("device", shown.as_str()), ("options", options.as_str())];
    core.write("attach", |t| {
        t.fire(vm, format!("device-pre-attach:{class}"), &kw);
        if d.class == Class::AdminVM {
            return Err(QubesError::qubes("Can't attach PCI device to dom0"));
        }
        let now = t.st.domain(vm).ok_or_else(|| QubesError::no_such_vm(vm))?;
        if crate::props::vm_get(&t.st, now, "virt_mode").as_deref() == Some("pvh") {
            return Err(QubesError::qubes(
                "Can't attach PCI device to VM in pvh mode",
            ));
        }
        Ok(())
    })?;
    if let Some(hv) = &hv {
        hv.attach_device(vm, &device.hostdev_xml(hv.domain_type(), &req.options))
            .map_err(|e| {
                QubesError::qubes(format!(
                    "Failed to attach PCI device {}: {e}",
                    device.port_id
                ))
            })?;
    }
    core.write("attach", |t| {
        t.fire(vm, format!("device-attach:{class}"), &kw);
        Ok(())
    })
}

/// Detaches a device from a running qube (`admin.vm.device.<class>.Detach`).
pub fn detach(core: &Core, vm: &str, class: &str, dev: &VirtualDevice) -> Result<(), QubesError> {
    let st = core.snapshot();
    let hv = core.env().hv.clone();
    let d = st
        .domain(vm)
        .cloned()
        .ok_or_else(|| QubesError::no_such_vm(vm))?;
    supports_devices(&d)?;
    let attached = attached_list(hv.as_deref(), &st, &d, class, None)?;
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
    let required = assignments(&st, &d, class).into_iter().any(|s| {
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
    core.write("detach", |t| {
        t.fire(vm, format!("device-pre-detach:{class}"), &[("port", &port)]);
        Ok(())
    })?;
    if let (Some(hv), Some(p)) = (&hv, &found.pci) {
        hv.detach_device(vm, &p.hostdev_xml(hv.domain_type(), &[]))
            .map_err(|e| {
                QubesError::qubes(format!("Failed to detach PCI device {}: {e}", p.port_id))
            })?;
    }
    core.write("detach", |t| {
        t.fire(vm, format!("device-detach:{class}"), &[("port", &port)]);
        Ok(())
    })
}

/// A qube's `devices_denied` value.
pub fn denied(t: &Txn, vm: &str) -> Result<String, QubesError> {
    let d = t.st.domain(vm).ok_or_else(|| QubesError::no_such_vm(vm))?;
    Ok(crate::props::vm_get(&t.st, d, "devices_denied").unwrap_or_default())
}

/// Sets `devices_denied` through its setter (validation, events); saved only if it changed.
pub fn set_denied(t: &mut Txn, vm: &str, value: String) -> Result<(), QubesError> {
    let prev = denied(t, vm)?;
    super::properties::set_vm(t, vm, "devices_denied", value.as_bytes())?;
    t.save = prev != denied(t, vm)?;
    Ok(())
}

/// dom0's PCI devices from the hypervisor (none without one).
pub fn host_pci(hv: &dyn Hypervisor) -> Result<Vec<PciDevice>, QubesError> {
    hv.pci_node_devices()
        .map(|x| pci::from_node_xml(&x))
        .map_err(|e| QubesError::qubes(format!("Cannot list PCI devices: {e}")))
}

/// The devices a qube exposes in a class (only dom0 exposes PCI devices here).
pub fn exposed(
    hv: Option<&dyn Hypervisor>,
    backend: &Domain,
    class: &str,
) -> Result<Vec<PciDevice>, QubesError> {
    match hv {
        Some(hv) if class == "pci" && backend.class == Class::AdminVM => host_pci(hv),
        _ => Ok(Vec::new()),
    }
}

/// A device attached to a running qube.
pub struct Attached {
    /// The assignment it fulfils, or a manual one.
    pub stored: Stored,
    /// The host device, if libvirt still describes it.
    pub pci: Option<PciDevice>,
}

/// What is attached to a running qube: PCI devices from its live domain, each with the
/// assignment it fulfils or as a manual attachment. `host` is dom0's device list when the
/// caller has read it already; otherwise it is read only if something is attached.
pub fn attached_list(
    hv: Option<&dyn Hypervisor>,
    st: &State,
    d: &Domain,
    class: &str,
    host: Option<&[PciDevice]>,
) -> Result<Vec<Attached>, QubesError> {
    if class != "pci" || d.class == Class::AdminVM || d.class == Class::RemoteVM || !d.is_active() {
        return Ok(Vec::new());
    }
    let Some(hv) = hv else {
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
            read = host_pci(hv)?;
            &read
        }
    };
    let assigned = assignments(st, d, class);
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
