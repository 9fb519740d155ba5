//! `admin.vm.device.*` over the socket, on a libvirt test node that describes a laptop's PCI
//! devices: what dom0 exposes, assignments kept in qubes.xml (and what they change), start
//! with required devices, live attachment, the denied list, and every refusal with the
//! reference's bytes.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Events, TestDaemon};

/// A daemon whose libvirt node has the demo's PCI devices, with `fedora` and `work`.
fn daemon() -> TestDaemon {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("vm-kernels/6.6.1");
    std::fs::create_dir_all(&k).unwrap();
    std::fs::write(k.join("vmlinuz"), b"").unwrap();
    std::fs::write(k.join("default-kernelopts-pci.txt"), b"pci=nomsi\n").unwrap();
    std::fs::create_dir_all(dir.path().join("policy.d")).unwrap();
    let node = dir.path().join("node.xml");
    std::fs::write(&node, qubesd::demo::DEMO_TEST_NODE).unwrap();
    let mut d = TestDaemon { dir, child: None };
    d.spawn_with_uri(&format!("test://{}", node.display()))
        .expect("daemon starts");
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    d.with_basic_qubes();
    d
}

/// Stops the daemon and starts it again on the same state and libvirt node.
fn restart(d: &mut TestDaemon) {
    d.stop();
    let node = d.dir.path().join("node.xml");
    d.spawn_with_uri(&format!("test://{}", node.display()))
        .expect("daemon restarts");
}

fn exc(kind: &str, msg: &str) -> Vec<u8> {
    format!("2\0{kind}\0\0{msg}\0").into_bytes()
}

const WIFI: &str = "0x8086:0x51f0::p028000";

#[test]
fn dom0_exposes_the_hosts_pci_devices() {
    let d = daemon();
    let all = d.ok("admin.vm.device.pci.Available", "dom0", "", b"");
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 10, "{all}");
    assert!(
        lines.contains(&"00_14.3:0x8086:0x51f0::p028000 device_id='0x8086:0x51f0::p028000' port_id='00_14.3' devclass='pci' backend_domain='dom0' vendor='Intel Corporation' product='Alder Lake-P PCH CNVi WiFi' interfaces='p028000' _sbdf='0000:00:14.3'"),
        "{all}"
    );
    // Behind a bridge the port is the path from the root bus.
    assert!(
        all.contains("00_1c.0-00_00.0:0x10ec:0x8168::p020000 device_id='0x10ec:0x8168::p020000' port_id='00_1c.0-00_00.0'"),
        "{all}"
    );
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "sorted by port and identity");
    assert_eq!(
        d.ok("admin.vm.device.pci.Available", "dom0", "00_1f.3", b""),
        "00_1f.3:0x8086:0x51c8::p040380 device_id='0x8086:0x51c8::p040380' port_id='00_1f.3' devclass='pci' backend_domain='dom0' vendor='Intel Corporation' product='Alder Lake PCH-P High Definition Audio Controller' interfaces='p040380' _sbdf='0000:00:1f.3'\n"
    );
    assert_eq!(
        d.ok("admin.vm.device.pci.Available", "dom0", "99_00.0", b""),
        ""
    );
    assert_eq!(d.ok("admin.vm.device.pci.Available", "work", "", b""), "");
    assert_eq!(d.ok("admin.vm.device.block.Available", "dom0", "", b""), "");
    assert_eq!(
        d.ok("admin.deviceclass.List", "dom0", "", b""),
        "block\npci\n"
    );
}

#[test]
fn assignments_are_kept_listed_and_change_defaults() {
    let mut d = daemon();
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "virt_mode", b""),
        "default=True type=str pvh"
    );
    let mut ev = Events::open(&d, "work");
    d.ok(
        "admin.vm.device.pci.Assign",
        "work",
        "dom0+00_14.3",
        b"device_id='*' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'",
    );
    assert_eq!(
        ev.next_text(),
        "work device-pre-assign:pci device=dom0:00_14.3:* options={'no-strict-reset': 'True'}"
    );
    assert_eq!(
        ev.next_text(),
        "work device-assign:pci device=dom0:00_14.3:* options={'no-strict-reset': 'True'}"
    );
    let line = "dom0+00_14.3:* device_id='*' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'\n";
    assert_eq!(d.ok("admin.vm.device.pci.Assigned", "work", "", b""), line);
    assert_eq!(
        d.ok("admin.vm.device.pci.Assigned", "work", "dom0+00_14.3", b""),
        line
    );
    assert_eq!(
        d.ok("admin.vm.device.pci.Assigned", "work", "dom0+00_14.0", b""),
        ""
    );
    assert_eq!(
        d.call("admin.vm.device.pci.Assigned", "work", "dom0", b""),
        b""
    );
    assert_eq!(d.ok("admin.vm.device.block.Assigned", "work", "", b""), "");
    let xml = d.saved();
    assert!(
        xml.contains("      <devices class=\"pci\">\n        <device backend-domain=\"dom0\" id=\"00_14.3\" mode=\"required\" identity=\"*\">\n          <option name=\"no-strict-reset\">True</option>\n        </device>\n      </devices>\n"),
        "{xml}"
    );

    // A PCI device makes the qube HVM without memory balancing, with the PCI kernel options.
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "virt_mode", b""),
        "default=True type=str hvm"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "maxmem", b""),
        "default=True type=int 0"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "kernelopts", b""),
        "default=True type=str pci=nomsi"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "virt_mode", b"pvh"),
        exc(
            "QubesPropertyValueError",
            "pvh mode can't be set if pci devices are assigned"
        )
    );

    // Refusals.
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Assign",
            "work",
            "dom0+00_14.3",
            b"mode='auto-attach'"
        ),
        exc(
            "DeviceAlreadyAssigned",
            "'pci device dom0:00_14.3:* already assigned to work'"
        )
    );
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Assign",
            "work",
            "dom0+00_14.0",
            b"mode='manual'"
        ),
        b"",
        "manual assignments are a plain ValueError in the reference"
    );
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Assign",
            "work",
            "dom0+00_14.0",
            b"mode='bogus'"
        ),
        exc("ProtocolError", "'bogus' is not a valid AssignmentMode")
    );
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Assign",
            "work",
            "dom0+00_14.0",
            b"port_id='00_14.3' mode='required'"
        ),
        exc(
            "ProtocolError",
            "Got device from port: 00_14.3 when expected port: 00_14.0."
        )
    );
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Assign",
            "work",
            "nobody+00_14.0",
            b"mode='required'"
        ),
        b""
    );
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Set.assignment",
            "work",
            "dom0+00_14.3",
            b"manual"
        ),
        exc(
            "QubesUnrecognizedDeviceAssignmentMode",
            "Invalid assignment mode"
        )
    );
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Set.assignment",
            "work",
            "dom0+00_14.0",
            b"required"
        ),
        exc(
            "QubesValueError",
            "Device dom0:00_14.0:* not assigned to work"
        )
    );
    assert_eq!(
        d.call("admin.vm.device.pci.Unassign", "work", "dom0+00_14.0", b""),
        exc(
            "DeviceNotAssigned",
            "'pci device dom0:00_14.0:* not assigned to work'"
        )
    );

    d.ok(
        "admin.vm.device.pci.Set.assignment",
        "work",
        "dom0+00_14.3",
        b"auto-attach",
    );
    assert_eq!(
        ev.next_text(),
        "work device-pre-assign:pci device=dom0:00_14.3:* options={'no-strict-reset': 'True'}"
    );
    assert_eq!(
        ev.next_text(),
        "work device-assignment-changed:pci device=dom0:00_14.3:*"
    );

    // Read back after a restart, the reference names the frontend too.
    restart(&mut d);
    assert_eq!(
        d.ok("admin.vm.device.pci.Assigned", "work", "", b""),
        "dom0+00_14.3:* device_id='*' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='auto-attach' frontend_domain='work' _no-strict-reset='True'\n"
    );
    let mut ev = Events::open(&d, "work");
    d.ok("admin.vm.device.pci.Unassign", "work", "dom0+00_14.3", b"");
    assert_eq!(
        ev.next_text(),
        "work device-unassign:pci device=dom0:00_14.3:*"
    );
    assert_eq!(d.ok("admin.vm.device.pci.Assigned", "work", "", b""), "");
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "virt_mode", b""),
        "default=True type=str pvh"
    );
    let xml = d.saved();
    assert!(xml.contains("<devices class=\"pci\"/>"), "{xml}");
}

#[test]
fn start_gives_required_devices_to_the_qube() {
    let d = daemon();
    d.ok(
        "admin.vm.device.pci.Assign",
        "work",
        &format!("dom0+00_14.3+{}", WIFI.replace(':', "+")),
        b"mode='required'",
    );
    d.ok(
        "admin.vm.device.pci.Assign",
        "work",
        "dom0+00_1f.3",
        b"mode='auto-attach'",
    );
    assert_eq!(
        d.call("admin.vm.device.pci.Attach", "work", "dom0+00_1f.3", b""),
        exc(
            "QubesVMNotRunningError",
            "VM not running, cannot attach device, do you mean `assign`?"
        )
    );
    d.ok("admin.vm.Start", "work", "", b"");
    // Only required devices are given at start; the assignment with the device's identity is
    // listed as itself.
    assert_eq!(
        d.ok("admin.vm.device.pci.Attached", "work", "", b""),
        format!(
            "dom0+00_14.3:{WIFI} device_id='{WIFI}' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required'\n"
        )
    );
    assert_eq!(d.ok("admin.vm.device.pci.Attached", "fedora", "", b""), "");
    assert_eq!(
        d.call("admin.vm.device.pci.Detach", "work", "dom0+00_14.3", b""),
        exc(
            "QubesVMNotHaltedError",
            "Can not detach a required device from a non halted qube. You need to unassign device first."
        )
    );
    assert_eq!(
        d.call("admin.vm.device.pci.Detach", "work", "dom0+00_1f.3", b""),
        exc(
            "DeviceNotAssigned",
            "'pci device 00_1f.3 not attached to work'"
        )
    );
    assert_eq!(
        d.call("admin.vm.device.pci.Attach", "work", "dom0+00_14.3", b""),
        exc(
            "DeviceAlreadyAttached",
            &format!("'device dom0:00_14.3:{WIFI} of class pci already attached to work'")
        )
    );
    assert_eq!(
        d.call("admin.vm.device.pci.Attach", "work", "dom0+00_99.0", b""),
        exc("ProtocolError", "Cannot attach ambiguous pci device.")
    );
    // libvirt's test driver cannot hot-plug: the failure is reported, nothing changes.
    let r = d.call("admin.vm.device.pci.Attach", "work", "dom0+00_1f.3", b"");
    assert!(
        r.starts_with(b"2\0QubesException\0\0Failed to attach PCI device 00_1f.3: "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    d.ok("admin.vm.Kill", "work", "", b"");
    assert_eq!(d.ok("admin.vm.device.pci.Attached", "work", "", b""), "");

    // A required device the host does not have stops the start.
    d.ok(
        "admin.vm.device.pci.Assign",
        "work",
        "dom0+00_1f.7",
        b"mode='required'",
    );
    let mut ev = Events::open(&d, "work");
    assert_eq!(
        d.call("admin.vm.Start", "work", "", b""),
        exc("QubesException", "Pci device dom0:00_1f.7:* not available")
    );
    assert_eq!(
        ev.next_text(),
        "work domain-pre-start start_guid=True mem_required=None"
    );
    assert_eq!(
        ev.next_text(),
        "work domain-start-failed reason=Pci device dom0:00_1f.7:* not available"
    );
    assert_eq!(
        d.ok("admin.vm.List", "work", "", b"").split(' ').nth(2),
        Some("state=Halted")
    );
}

#[test]
fn denied_interfaces() {
    let d = daemon();
    assert_eq!(d.ok("admin.vm.device.denied.List", "work", "", b""), "");
    d.ok("admin.vm.device.denied.Add", "work", "", b"p0280**u03**01");
    d.ok("admin.vm.device.denied.Add", "work", "", b"p0280**");
    assert_eq!(
        d.ok("admin.vm.device.denied.List", "work", "", b""),
        "p0280**\nu03**01"
    );
    assert_eq!(
        d.call("admin.vm.device.denied.Add", "work", "", b"b012345b012345"),
        exc("ProtocolError", "Duplicated device interfaces in payload.")
    );
    assert_eq!(
        d.call("admin.vm.device.denied.Add", "work", "", b"p0280"),
        exc(
            "QubesValueError",
            "Invalid length of interfaces='p0280' (is 5, expected multiple of 7)"
        )
    );
    d.ok("admin.vm.Start", "work", "", b"");
    assert_eq!(
        d.call(
            "admin.vm.device.pci.Attach",
            "work",
            &format!("dom0+00_14.3+{}", WIFI.replace(':', "+")),
            b""
        ),
        exc(
            "PermissionDenied",
            "Device exposes a banned interface: PCI device"
        )
    );
    assert_eq!(
        d.call("admin.vm.device.pci.Attach", "work", "dom0+00_14.3", b""),
        exc(
            "PermissionDenied",
            "Could not load interfaces to verify against denied list"
        )
    );
    d.ok(
        "admin.vm.device.denied.Remove",
        "work",
        "",
        b"u03**01b000000",
    );
    assert_eq!(
        d.ok("admin.vm.device.denied.List", "work", "", b""),
        "p0280**"
    );
    d.ok("admin.vm.device.denied.Remove", "work", "", b"all");
    assert_eq!(d.ok("admin.vm.device.denied.List", "work", "", b""), "");
    // Like the reference, emptying the list sets the property (it is not reset).
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "devices_denied", b""),
        "default=False type=str "
    );
}

#[test]
fn a_backend_in_use_cannot_be_removed() {
    let d = daemon();
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=usbvm label=red",
    );
    d.ok(
        "admin.vm.device.block.Assign",
        "work",
        "usbvm+sda",
        b"mode='auto-attach' _read-only='yes'",
    );
    assert_eq!(
        d.ok("admin.vm.device.block.Assigned", "work", "", b""),
        "usbvm+sda:* device_id='*' port_id='sda' devclass='block' backend_domain='usbvm' mode='auto-attach' _read-only='yes'\n"
    );
    assert_eq!(
        d.call("admin.vm.Remove", "usbvm", "", b""),
        exc(
            "QubesVMInUseError",
            "VM has devices assigned to other VMs: sda"
        )
    );
    d.ok("admin.vm.device.block.Unassign", "work", "usbvm+sda", b"");
    d.ok("admin.vm.Remove", "usbvm", "", b"");
}

/// The reference lists a new assignment as the Assign payload had it: with no
/// `frontend_domain` when it named none, with the qube it named (even another one), until the
/// assignment is read back from qubes.xml (compared byte for byte with the reference daemon).
#[test]
fn listings_give_the_frontend_the_payload_named() {
    let mut d = daemon();
    let assign = |d: &mut TestDaemon, port: &str, frontend: &str| {
        let payload = format!(
            "device_id='*' port_id='{port}' devclass='pci' backend_domain='dom0' mode='required'{frontend}"
        );
        d.ok(
            "admin.vm.device.pci.Assign",
            "work",
            &format!("dom0+{port}"),
            payload.as_bytes(),
        );
    };
    assign(&mut d, "00_14.0", "");
    assign(&mut d, "00_14.3", " frontend_domain='work'");
    assign(&mut d, "00_1f.3", " frontend_domain='fedora'");
    let line = |port: &str, frontend: &str| {
        format!(
            "dom0+{port}:* device_id='*' port_id='{port}' devclass='pci' backend_domain='dom0' mode='required'{frontend}\n"
        )
    };
    let listed = |d: &TestDaemon| d.ok("admin.vm.device.pci.Assigned", "work", "", b"");
    assert_eq!(
        listed(&d),
        [
            line("00_14.0", ""),
            line("00_14.3", " frontend_domain='work'"),
            line("00_1f.3", " frontend_domain='fedora'"),
        ]
        .concat()
    );
    // Read back from qubes.xml, every assignment names its owner.
    restart(&mut d);
    assert_eq!(
        listed(&d),
        [
            line("00_14.0", " frontend_domain='work'"),
            line("00_14.3", " frontend_domain='work'"),
            line("00_1f.3", " frontend_domain='work'"),
        ]
        .concat()
    );
}
