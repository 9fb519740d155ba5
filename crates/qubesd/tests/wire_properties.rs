//! Property calls as the reference answers them, byte for byte: replies, and the events in
//! the order the reference's handlers fire them (checked against the reference daemon with
//! the oracle harness). Events are shown with `|` for NUL.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Events, TestDaemon};

fn exc(kind: &str, msg: &str) -> Vec<u8> {
    format!("2\0{kind}\0\0{msg}\0").into_bytes()
}

/// Four reset events of `prop` on `vm`, with `old` as oldvalue (`None`: none passed).
fn reset4(vm: &str, prop: &str, old: Option<&str>) -> Vec<String> {
    ["pre-reset", "pre-del", "reset", "del"]
        .iter()
        .map(|ev| match old {
            Some(o) => format!("1|{vm}|property-{ev}:{prop}|name|{prop}|oldvalue|{o}||"),
            None => format!("1|{vm}|property-{ev}:{prop}|name|{prop}||"),
        })
        .collect()
}

#[test]
fn reset_of_a_computed_property_answers_with_its_reset_events() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    let mut ev = Events::open(&d, "dom0");
    for (vm, prop, old) in [
        ("dom0", "icon", "adminvm-black"),
        ("dom0", "klass", "AdminVM"),
        ("dom0", "name", "dom0"),
        ("dom0", "qid", "0"),
        ("dom0", "uuid", "00000000-0000-0000-0000-000000000000"),
        ("dom0", "updateable", "True"),
        ("work", "icon", "appvm-red"),
        ("work", "xid", "-1"),
        ("work", "stubdom_xid", "-1"),
        ("work", "stubdom_uuid", ""),
        // No network: Python's None.
        ("work", "dns", "None"),
        ("work", "visible_ip", "None"),
        ("work", "start_time", "None"),
    ] {
        assert_eq!(
            d.call("admin.vm.property.Reset", vm, prop, b""),
            b"0\0",
            "{vm} {prop}"
        );
        assert_eq!(
            ev.drain(&d, "work"),
            reset4(vm, prop, Some(old)),
            "{vm} {prop}"
        );
    }
    // Nothing changed: the value is still computed.
    assert_eq!(
        d.ok("admin.vm.property.Get", "dom0", "icon", b""),
        "default=True type=str adminvm-black"
    );
    // A write-once property that is set cannot be reset (the reference fails without a
    // reply); the pre-events were not even fired.
    assert_eq!(d.call("admin.vm.property.Reset", "work", "qid", b""), b"");
    assert_eq!(ev.drain(&d, "work"), Vec::<String>::new());
}

#[test]
fn none_is_none_in_events_and_python_ints_have_no_bound() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    let mut ev = Events::open(&d, "dom0");
    let big = "99999999999999999999";
    assert_eq!(
        d.call(
            "admin.vm.property.Set",
            "fedora",
            "backup_timestamp",
            big.as_bytes()
        ),
        b"0\0"
    );
    assert_eq!(
        ev.drain(&d, "work"),
        [
            format!(
                "1|fedora|property-pre-set:backup_timestamp|name|backup_timestamp|newvalue|{big}|oldvalue|None||"
            ),
            format!(
                "1|fedora|property-set:backup_timestamp|name|backup_timestamp|newvalue|{big}|oldvalue|None||"
            ),
        ]
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "fedora", "backup_timestamp", b""),
        format!("default=False type=int {big}")
    );
    assert_eq!(
        d.call(
            "admin.property.Set",
            "dom0",
            "default_shutdown_timeout",
            b"0099999999999999999999"
        ),
        b"0\0"
    );
    assert_eq!(
        d.ok(
            "admin.property.Get",
            "dom0",
            "default_shutdown_timeout",
            b""
        ),
        format!("default=False type=int {big}")
    );
    ev.drain(&d, "work");
    // A computed int parses, then its setter refuses.
    assert_eq!(
        d.call("admin.vm.property.Set", "fedora", "xid", big.as_bytes()),
        exc(
            "QubesPropertyValueError",
            "property 'xid' on TemplateVM instance cannot be set"
        )
    );
    // dom0's uuid has no type: the setter refuses before any parsing.
    assert_eq!(
        d.call("admin.vm.property.Set", "dom0", "uuid", b"zz"),
        exc(
            "QubesPropertyValueError",
            "property 'uuid' on AdminVM instance cannot be set"
        )
    );
    // Python's int() stops at 4300 digits.
    assert_eq!(
        d.call(
            "admin.vm.property.Set",
            "fedora",
            "memory",
            "9".repeat(4301).as_bytes()
        ),
        exc("QubesValueError", "Failed to parse property value as int")
    );
    // An explicitly set empty string stays empty; the default None is None.
    d.ok(
        "admin.vm.Create.RemoteVM",
        "dom0",
        "",
        b"name=rem label=purple",
    );
    ev.drain(&d, "work");
    assert_eq!(
        d.call("admin.vm.property.Set", "rem", "remote_name", b""),
        b"0\0"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "rem", "remote_name", b"x"),
        b"0\0"
    );
    assert_eq!(
        ev.drain(&d, "work"),
        [
            "1|rem|property-pre-set:remote_name|name|remote_name|newvalue||oldvalue|None||",
            "1|rem|property-set:remote_name|name|remote_name|newvalue||oldvalue|None||",
            "1|rem|property-pre-set:remote_name|name|remote_name|newvalue|x|oldvalue|||",
            "1|rem|property-set:remote_name|name|remote_name|newvalue|x|oldvalue|||",
        ]
    );
}

#[test]
fn handlers_fire_what_the_reference_fires() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    let mut ev = Events::open(&d, "dom0");
    // The icon follows the label only for local qubes, and only on Set.
    d.ok("admin.vm.property.Set", "dom0", "label", b"red");
    d.ok("admin.vm.property.Set", "work", "label", b"red");
    d.ok("admin.vm.property.Reset", "work", "label", b"");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            "1|dom0|property-pre-set:label|name|label|newvalue|red|oldvalue|black||",
            "1|dom0|property-set:label|name|label|newvalue|red|oldvalue|black||",
            "1|work|property-pre-set:label|name|label|newvalue|red|oldvalue|red||",
            "1|work|property-reset:icon|name|icon||",
            "1|work|property-set:label|name|label|newvalue|red|oldvalue|red||",
            "1|work|property-pre-reset:label|name|label|oldvalue|red||",
            "1|work|property-pre-del:label|name|label|oldvalue|red||",
            "1|work|property-reset:label|name|label|oldvalue|red||",
            "1|work|property-del:label|name|label|oldvalue|red||",
        ]
    );
    // Without a label the icon cannot be computed.
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "icon", b""),
        "default=True type=str "
    );
    d.ok("admin.vm.property.Set", "work", "label", b"blue");
    ev.drain(&d, "work");
    // An address change tells the qube (and, for a network provider, its gateway).
    d.ok("admin.vm.property.Set", "work", "ip", b"10.1.2.3");
    d.ok("admin.vm.property.Reset", "work", "ip", b"");
    d.ok("admin.vm.property.Set", "work", "ip6", b"fd09::1");
    // ...but not a Reset of ip6 (the reference listens to `ipv6` there).
    d.ok("admin.vm.property.Reset", "work", "ip6", b"");
    let ip = |ev: &str, kw: &str| format!("1|work|property-{ev}:ip|name|ip{kw}||");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            ip("pre-set", "|newvalue|10.1.2.3|oldvalue|None"),
            "1|work|property-reset:visible_ip|name|visible_ip||".into(),
            ip("set", "|newvalue|10.1.2.3|oldvalue|None"),
            ip("pre-reset", "|oldvalue|10.1.2.3"),
            ip("pre-del", "|oldvalue|10.1.2.3"),
            "1|work|property-reset:visible_ip|name|visible_ip||".into(),
            ip("reset", "|oldvalue|10.1.2.3"),
            ip("del", "|oldvalue|10.1.2.3"),
            "1|work|property-pre-set:ip6|name|ip6|newvalue|fd09::1|oldvalue|None||".into(),
            "1|work|property-reset:visible_ip6|name|visible_ip6||".into(),
            "1|work|property-set:ip6|name|ip6|newvalue|fd09::1|oldvalue|None||".into(),
            "1|work|property-pre-reset:ip6|name|ip6|oldvalue|fd09::1||".into(),
            "1|work|property-pre-del:ip6|name|ip6|oldvalue|fd09::1||".into(),
            "1|work|property-reset:ip6|name|ip6|oldvalue|fd09::1||".into(),
            "1|work|property-del:ip6|name|ip6|oldvalue|fd09::1||".into(),
        ]
    );
    // A Reset of provides_network that changes nothing fires nothing more.
    d.ok("admin.vm.property.Reset", "work", "provides_network", b"");
    assert_eq!(
        ev.drain(&d, "work"),
        reset4("work", "provides_network", Some("False"))
    );
    // A disposable template's icon is a template's.
    d.ok(
        "admin.vm.property.Set",
        "work",
        "template_for_dispvms",
        b"True",
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "icon", b""),
        "default=True type=str templatevm-blue"
    );
    // A Set on the template tells the AppVMs that follow it, only when the value changes;
    // a Reset tells nobody.
    ev.drain(&d, "work");
    d.ok("admin.vm.property.Set", "fedora", "memory", b"500");
    d.ok("admin.vm.property.Set", "fedora", "memory", b"500");
    d.ok("admin.vm.property.Reset", "fedora", "memory", b"");
    let mem = |ev: &str, kw: &str| format!("1|fedora|property-{ev}:memory|name|memory{kw}||");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            mem("pre-set", "|newvalue|500|oldvalue|400"),
            "1|work|property-reset:memory|name|memory||".into(),
            mem("set", "|newvalue|500|oldvalue|400"),
            mem("pre-set", "|newvalue|500|oldvalue|500"),
            mem("set", "|newvalue|500|oldvalue|500"),
            mem("pre-reset", "|oldvalue|500"),
            mem("pre-del", "|oldvalue|500"),
            mem("reset", "|oldvalue|500"),
            mem("del", "|oldvalue|500"),
        ]
    );
}

#[test]
fn keyboard_layout_of_the_gui_qube_reaches_the_qubes_it_shows() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.property.Set",
        "fedora",
        "keyboard_layout",
        b"fr++",
    );
    let mut ev = Events::open(&d, "dom0");
    d.ok(
        "admin.vm.property.Set",
        "dom0",
        "keyboard_layout",
        b"de+neo+",
    );
    assert_eq!(
        ev.drain(&d, "work"),
        [
            "1|dom0|property-pre-set:keyboard_layout|name|keyboard_layout|newvalue|de+neo+|oldvalue|us++||",
            // fedora has its own layout.
            "1|work|property-reset:keyboard_layout|name|keyboard_layout|oldvalue|us++||",
            "1|dom0|property-set:keyboard_layout|name|keyboard_layout|newvalue|de+neo+|oldvalue|us++||",
        ]
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "keyboard_layout", b""),
        "default=True type=str de+neo+"
    );
}

#[test]
fn global_defaults_none_and_kernel_check_order() {
    let d = TestDaemon::start();
    let mut ev = Events::open(&d, "dom0");
    d.with_basic_qubes();
    ev.drain(&d, "work");
    // default_template may be None.
    d.ok("admin.property.Set", "dom0", "default_template", b"fedora");
    assert_eq!(
        d.call("admin.property.Set", "dom0", "default_template", b""),
        b"0\0"
    );
    assert_eq!(
        d.ok("admin.property.Get", "dom0", "default_template", b""),
        "default=False type=vm "
    );
    ev.drain(&d, "work");
    // The kernel is checked by a handler of the pre-set event, which the stream saw.
    assert_eq!(
        d.call("admin.property.Set", "dom0", "default_kernel", b"nosuch"),
        exc("QubesPropertyValueError", "Kernel 'nosuch' not installed")
    );
    std::fs::create_dir_all(d.dir.path().join("vm-kernels/empty")).unwrap();
    assert_eq!(
        d.call("admin.property.Set", "dom0", "default_kernel", b"empty"),
        exc(
            "QubesPropertyValueError",
            "Kernel 'empty' not properly installed: missing 'vmlinuz' file"
        )
    );
    assert_eq!(
        ev.drain(&d, "work"),
        [
            // No default kernel yet: no oldvalue at all.
            "1||property-pre-set:default_kernel|name|default_kernel|newvalue|nosuch||",
            "1||property-pre-set:default_kernel|name|default_kernel|newvalue|empty||",
        ]
    );
}

/// `autostart` enables and disables the qube's systemd unit through the configured `sudo`
/// (a script here that records its arguments), as the reference runs it; a failure refuses
/// the change.
#[test]
fn autostart_drives_the_qubes_systemd_unit_through_sudo() {
    use std::os::unix::fs::PermissionsExt;
    let d = TestDaemon::start_with(|dir| {
        let script = dir.join("sudo");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/sudo.log\"\n[ ! -e \"$(dirname \"$0\")/sudo.fail\" ]\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec!["--sudo".into(), script.into()]
    });
    d.with_basic_qubes();
    let log = d.dir.path().join("sudo.log");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(logged(), "");
    d.ok("admin.vm.property.Set", "work", "autostart", b"True");
    d.ok("admin.vm.property.Set", "work", "autostart", b"False");
    d.ok("admin.vm.property.Set", "work", "autostart", b"True");
    d.ok("admin.vm.property.Reset", "work", "autostart", b"");
    // Reset of a qube that does not autostart runs nothing.
    d.ok("admin.vm.property.Reset", "work", "autostart", b"");
    d.ok("admin.vm.property.Set", "fedora", "autostart", b"True");
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=other label=red",
    );
    d.ok("admin.vm.property.Set", "other", "autostart", b"True");
    d.ok("admin.vm.Remove", "other", "", b"");
    // A disposable takes autostart from its template: its creation enables its unit.
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=dvm label=red",
    );
    d.ok(
        "admin.vm.property.Set",
        "dvm",
        "template_for_dispvms",
        b"True",
    );
    d.ok("admin.vm.property.Set", "dvm", "autostart", b"True");
    d.ok(
        "admin.vm.Create.DispVM",
        "dom0",
        "dvm",
        b"name=dnamed label=red",
    );
    d.ok("admin.vm.Remove", "dnamed", "", b"");
    assert_eq!(
        logged(),
        "ln -sf /usr/lib/systemd/system/qubes-vm@.service /etc/systemd/system/multi-user.target.wants/qubes-vm@work.service\n\
         systemctl disable qubes-vm@work.service\n\
         ln -sf /usr/lib/systemd/system/qubes-vm@.service /etc/systemd/system/multi-user.target.wants/qubes-vm@work.service\n\
         systemctl disable qubes-vm@work.service\n\
         ln -sf /usr/lib/systemd/system/qubes-vm@.service /etc/systemd/system/multi-user.target.wants/qubes-vm@fedora.service\n\
         ln -sf /usr/lib/systemd/system/qubes-vm@.service /etc/systemd/system/multi-user.target.wants/qubes-vm@other.service\n\
         systemctl disable qubes-vm@other.service\n\
         ln -sf /usr/lib/systemd/system/qubes-vm@.service /etc/systemd/system/multi-user.target.wants/qubes-vm@dvm.service\n\
         systemctl enable qubes-vm@dnamed.service\n\
         systemctl disable qubes-vm@dnamed.service\n"
    );
    // A failing command refuses the change, after its pre-event.
    std::fs::write(d.dir.path().join("sudo.fail"), b"").unwrap();
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "autostart", b"True"),
        b"2\0QubesException\0\0Failed to set autostart for VM in systemd\0"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "autostart", b""),
        "default=True type=bool False"
    );
    assert_eq!(
        d.call("admin.vm.property.Reset", "fedora", "autostart", b""),
        b"2\0QubesException\0\0Failed to reset autostart for VM in systemd\0"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "fedora", "autostart", b""),
        "default=False type=bool True"
    );
}

/// The `<devices class=..>` elements qubes.xml keeps: as in the reference, a qube's device
/// class is kept (empty) from the first time a call looks at it — a default `virt_mode`
/// (which also asks the template), the device calls — in that order, from the next save on.
#[test]
fn device_classes_looked_at_stay_in_qubes_xml() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    let xml = || d.saved();
    let element = |name: &str| {
        let text = xml();
        let anchor = if name == "dom0" {
            "class=\"AdminVM\"".to_string()
        } else {
            format!("<property name=\"name\">{name}</property>")
        };
        let start = text.find(&anchor).unwrap();
        let end = start + text[start..].find("</domain>").unwrap();
        text[start..end].to_string()
    };
    let save = || d.ok("admin.vm.feature.Set", "dom0", "x", b"1");
    d.ok("admin.vm.property.Get", "work", "label", b"");
    save();
    assert!(!xml().contains("<devices"));
    let before = xml();
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "virt_mode", b""),
        "default=True type=str pvh"
    );
    d.ok("admin.vm.device.block.Available", "dom0", "", b"");
    d.ok("admin.vm.device.block.Assigned", "work", "", b"");
    // A read changes no file; the next save keeps what they looked at.
    assert_eq!(xml(), before);
    save();
    assert!(
        element("work")
            .contains("</tags>\n      <devices class=\"pci\"/>\n      <devices class=\"block\"/>\n      <volume-config>"),
        "{}",
        element("work")
    );
    assert!(
        element("fedora")
            .contains("</tags>\n      <devices class=\"pci\"/>\n      <volume-config>"),
        "{}",
        element("fedora")
    );
    let dom0 = element("dom0");
    assert!(
        dom0.contains("<devices class=\"block\"/>") && !dom0.contains("class=\"pci\""),
        "{dom0}"
    );
    // The reference's message for a template of the wrong class shows the qube's repr,
    // which computes its defaults: its PCI devices are looked at too.
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=other label=red",
    );
    assert_eq!(
        d.call("admin.vm.Create.AppVM", "dom0", "other", b"name=x label=red"),
        b"2\0QubesPropertyValueError\0\0wrong VM class: domains['other'] is of type AppVM and not TemplateVM\0"
    );
    assert!(!element("other").contains("<devices"));
    save();
    assert!(
        element("other").contains("</tags>\n      <devices class=\"pci\"/>\n      <volume-config>"),
        "{}",
        element("other")
    );
}

/// The host's size comes from libvirt, as the reference reads it (`getInfo`): on Xen,
/// dom0's own memory and processors are only its share. libvirt's test driver describes a
/// host of 3 GiB and 16 processors, whatever machine the test runs on.
#[test]
fn host_size_is_what_libvirt_says() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    assert_eq!(
        d.ok("admin.property.Get", "dom0", "maxmem", b""),
        "default=True type=int 3072"
    );
    assert_eq!(
        d.ok("admin.property.Get", "dom0", "no_cpus", b""),
        "default=True type=int 16"
    );
}
