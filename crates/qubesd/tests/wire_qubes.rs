//! Creating qubes and disposables, features with handlers, and what a RemoteVM refuses, as the
//! reference answers (checked against it with the oracle harness). Events are shown with `|`
//! for NUL.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Events, TestDaemon};

fn exc(kind: &str, msg: &str) -> Vec<u8> {
    format!("2\0{kind}\0\0{msg}\0").into_bytes()
}

/// `dvm`: a disposable template based on fedora with a property, features, a tag and
/// firewall rules of its own.
fn with_dvm(d: &TestDaemon) {
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
    d.ok("admin.vm.property.Set", "dvm", "vcpus", b"3");
    d.ok("admin.vm.feature.Set", "dvm", "f1", b"x");
    d.ok("admin.vm.feature.Set", "dvm", "preload-dispvm-delay", b"5");
    d.ok("admin.vm.tag.Set", "dvm", "t1", b"");
    d.ok(
        "admin.vm.firewall.Set",
        "dvm",
        "",
        b"action=drop specialtarget=dns\naction=accept\n",
    );
}

#[test]
fn a_disposable_needs_a_disposable_template_and_inherits_from_it() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    with_dvm(&d);
    let mut ev = Events::open(&d, "dom0");
    let refused = |tpl: &str| {
        exc(
            "QubesValueError",
            &format!(
                "template for disposable ({tpl}) needs to be an AppVM with template_for_dispvms=True"
            ),
        )
    };
    for (method, tpl) in [
        ("admin.vm.Create.DispVM", "work"),
        ("admin.vm.Create.DispVM", "fedora"),
        ("admin.vm.CreateInPool.DispVM", "work"),
    ] {
        assert_eq!(
            d.call(method, "dom0", tpl, b"name=dx label=green"),
            refused(tpl)
        );
    }
    assert!(!d.ok("admin.vm.List", "dom0", "", b"").contains("dx "));
    assert_eq!(ev.drain(&d, "work"), Vec::<String>::new());
    // From a disposable template: what DispVM.__init__ gives it; the creator tag came with
    // the template's tags, so adding it fires nothing.
    d.ok(
        "admin.vm.Create.DispVM",
        "dom0",
        "dvm",
        b"name=dx label=green",
    );
    assert_eq!(
        ev.drain(&d, "work"),
        ["1||domain-add|vm|dx||", "1|dx|domain-create-on-disk||",]
    );
    let dispid = d.ok("admin.vm.property.Get", "dx", "dispid", b"");
    assert!(dispid.starts_with("default=False type=int "), "{dispid}");
    assert_eq!(
        d.ok("admin.vm.property.Get", "dx", "vcpus", b""),
        "default=False type=int 3"
    );
    // Its own label stays.
    assert_eq!(
        d.ok("admin.vm.property.Get", "dx", "label", b""),
        "default=False type=label green"
    );
    assert_eq!(d.ok("admin.vm.feature.List", "dx", "", b""), "f1\n");
    assert_eq!(
        d.ok("admin.vm.tag.List", "dx", "", b""),
        "audiovm-dom0\ncreated-by-dom0\nguivm-dom0\nt1\n"
    );
    let rules = "action=drop specialtarget=dns\naction=accept\n";
    assert_eq!(d.ok("admin.vm.firewall.Get", "dx", "", b""), rules);
    // CreateDisposable copies the firewall too.
    let disp = d.ok("admin.vm.CreateDisposable", "dvm", "", b"");
    assert_eq!(d.ok("admin.vm.firewall.Get", &disp, "", b""), rules);
    // firewall.xml as the reference writes it: no XML declaration.
    let xml = std::fs::read_to_string(d.dir.path().join("appvms/dx/firewall.xml")).unwrap();
    assert!(xml.starts_with("<firewall version=\"2\">\n"), "{xml}");
}

#[test]
fn preloading_needs_the_services_a_preloaded_disposable_is_driven_with() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    with_dvm(&d);
    let mut ev = Events::open(&d, "dom0");
    let missing =
        "Qube does not support the RPC(s) 'qubes.WaitForRunningSystem, qubes.WaitForSession'";
    assert_eq!(
        d.call("admin.vm.CreateDisposable", "dvm", "preload", b""),
        exc(
            "QubesValueError",
            &format!("{missing} but tried to preload, check if template is outdated")
        )
    );
    let pre = |v: &str| {
        format!(
            "1|dvm|domain-feature-pre-set:preload-dispvm-max|feature|preload-dispvm-max|value|{v}||"
        )
    };
    // The feature: qrexec first, then the services, then the value; each refusal after the
    // pre-event.
    assert_eq!(
        d.call("admin.vm.feature.Set", "dvm", "preload-dispvm-max", b"1"),
        exc("QubesValueError", "Qube does not support qrexec")
    );
    d.ok("admin.vm.feature.Set", "fedora", "qrexec", b"1");
    d.ok(
        "admin.vm.feature.Set",
        "fedora",
        "supported-rpc.qubes.WaitForSession",
        b"1",
    );
    assert_eq!(
        d.call("admin.vm.feature.Set", "dvm", "preload-dispvm-max", b"1"),
        exc(
            "QubesValueError",
            "Qube does not support the RPC(s) 'qubes.WaitForRunningSystem'"
        )
    );
    d.ok(
        "admin.vm.feature.Set",
        "dvm",
        "supported-rpc.qubes.WaitForRunningSystem",
        b"1",
    );
    assert_eq!(
        d.call("admin.vm.feature.Set", "dvm", "preload-dispvm-max", b"x"),
        exc(
            "QubesValueError",
            "Invalid preload-dispvm-max value: not a digit"
        )
    );
    let events = ev.drain(&d, "work");
    assert_eq!(
        events[0],
        "1|dvm|domain-preload-dispvm-start|reason|autostart was requested||"
    );
    assert_eq!(events[1], pre("1"));
    assert_eq!(events.last().unwrap(), &pre("x"));
    assert_eq!(
        d.call(
            "admin.vm.feature.Set",
            "dvm",
            "preload-dispvm-delay",
            b"soon"
        ),
        exc(
            "QubesValueError",
            "Invalid preload-dispvm-delay value: not an integer or float"
        )
    );
    d.ok("admin.vm.feature.Set", "dvm", "preload-dispvm-max", b"");
}

#[test]
fn meminfo_writer_becomes_maxmem() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok("admin.vm.property.Set", "work", "maxmem", b"2000");
    let mut ev = Events::open(&d, "dom0");
    d.ok(
        "admin.vm.feature.Set",
        "work",
        "service.meminfo-writer",
        b"1",
    );
    let f = "service.meminfo-writer";
    let reset = |e: &str| format!("1|work|property-{e}:maxmem|name|maxmem|oldvalue|2000||");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            format!("1|work|domain-feature-pre-set:{f}|feature|{f}|value|1||"),
            reset("pre-reset"),
            reset("pre-del"),
            reset("reset"),
            reset("del"),
            format!("1|work|domain-feature-pre-delete:{f}|feature|{f}||"),
            format!("1|work|domain-feature-delete:{f}|feature|{f}||"),
            format!("1|work|domain-feature-set:{f}|feature|{f}|value|1||"),
        ]
    );
    d.ok("admin.vm.feature.Set", "work", f, b"");
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "maxmem", b""),
        "default=False type=int 0"
    );
    assert_eq!(d.ok("admin.vm.feature.List", "work", "", b""), "");
}

#[test]
fn creation_and_tag_refusals() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    assert_eq!(
        d.call(
            "admin.vm.Create.AdminVM",
            "dom0",
            "",
            b"name=c-adminvm label=green"
        ),
        exc(
            "QubesPropertyValueError",
            "property 'qid' on AdminVM instance cannot be set"
        )
    );
    // A creator that does not exist sets nothing off, but the tag stays (the reference
    // keeps it, then fails without a reply when its handlers look the creator up).
    let mut ev = Events::open(&d, "dom0");
    assert_eq!(
        d.call("admin.vm.tag.Set", "work", "created-by-foo", b""),
        b"0\0"
    );
    assert_eq!(
        ev.drain(&d, "work"),
        ["1|work|domain-tag-add:created-by-foo|tag|created-by-foo||"]
    );
    assert_eq!(
        d.ok("admin.vm.tag.List", "work", "", b""),
        "audiovm-dom0\ncreated-by-dom0\ncreated-by-foo\nguivm-dom0\n"
    );
}

/// The creator's features act before the tag event: its extra tags, then its GUI qube (the
/// reference runs these two handlers in either order, varying from run to run).
#[test]
fn the_creators_features_act_before_the_created_by_tag() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.feature.Set",
        "dom0",
        "tag-created-vm-with",
        b"x1 x2",
    );
    d.ok("admin.vm.feature.Set", "dom0", "set-created-guivm", b"work");
    let mut ev = Events::open(&d, "dom0");
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=tagged label=red",
    );
    assert_eq!(
        ev.drain(&d, "work"),
        [
            "1||domain-add|vm|tagged||",
            "1|tagged|domain-tag-add:x1|tag|x1||",
            "1|tagged|domain-tag-add:x2|tag|x2||",
            "1|tagged|property-pre-set:guivm|name|guivm|newvalue|work|oldvalue|dom0||",
            "1|tagged|domain-tag-delete:guivm-dom0|tag|guivm-dom0||",
            "1|tagged|domain-tag-add:guivm-work|tag|guivm-work||",
            "1|tagged|property-set:guivm|name|guivm|newvalue|work|oldvalue|dom0||",
            "1|tagged|domain-tag-add:created-by-dom0|tag|created-by-dom0||",
            "1|tagged|domain-create-on-disk||",
        ]
    );
}

#[test]
fn a_remote_qube_refuses_what_it_does_not_have() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.Create.RemoteVM",
        "dom0",
        "",
        b"name=rem label=purple",
    );
    let vm_error = |m: &str| exc("QubesVMError", m);
    for (method, payload, answer) in [
        (
            "admin.vm.notes.Get",
            &b""[..],
            vm_error("A RemoteVM has no notes"),
        ),
        (
            "admin.vm.notes.Set",
            b"hello\n",
            vm_error("A RemoteVM has no notes"),
        ),
        (
            "admin.vm.firewall.Get",
            b"",
            vm_error("A RemoteVM has no firewall"),
        ),
        (
            "admin.vm.firewall.Set",
            b"action=accept\n",
            vm_error("A RemoteVM has no firewall"),
        ),
        ("admin.vm.Kill", b"", vm_error("Cannot kill a RemoteVM.")),
        (
            "admin.vm.Suspend",
            b"",
            vm_error("Cannot suspend a RemoteVM."),
        ),
        (
            "admin.vm.Console",
            b"",
            vm_error("Cannot open the console of a RemoteVM."),
        ),
        (
            "admin.vm.device.denied.List",
            b"",
            exc(
                "QubesNoSuchPropertyError",
                "Invalid property 'devices_denied' of rem",
            ),
        ),
    ] {
        assert_eq!(d.call(method, "rem", "", payload), answer, "{method}");
    }
    assert!(!d.dir.path().join("appvms/rem").exists());
    // The relay qube is named by a tag, always just one.
    let mut ev = Events::open(&d, "dom0");
    d.ok("admin.vm.property.Set", "rem", "relayvm", b"work");
    d.ok("admin.vm.property.Set", "rem", "relayvm", b"fedora");
    assert_eq!(
        d.ok("admin.vm.tag.List", "rem", "", b""),
        "created-by-dom0\nrelayvm-fedora\n"
    );
    d.ok("admin.vm.property.Reset", "rem", "relayvm", b"");
    let r = |e: &str, kw: &str| format!("1|rem|property-{e}:relayvm|name|relayvm{kw}||");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            r("pre-set", "|newvalue|work|oldvalue|None"),
            "1|rem|domain-tag-add:relayvm-work|tag|relayvm-work||".into(),
            r("set", "|newvalue|work|oldvalue|None"),
            r("pre-set", "|newvalue|fedora|oldvalue|work"),
            "1|rem|domain-tag-delete:relayvm-work|tag|relayvm-work||".into(),
            "1|rem|domain-tag-add:relayvm-fedora|tag|relayvm-fedora||".into(),
            r("set", "|newvalue|fedora|oldvalue|work"),
            r("pre-reset", "|oldvalue|fedora"),
            r("pre-del", "|oldvalue|fedora"),
            "1|rem|domain-tag-delete:relayvm-fedora|tag|relayvm-fedora||".into(),
            r("reset", "|oldvalue|fedora"),
            r("del", "|oldvalue|fedora"),
        ]
    );
}

#[test]
fn notes_keep_what_libqubes_pure_calls_safe() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.notes.Set",
        "work",
        "",
        "\u{1f642} smile\té\u{202e}\u{4e2d}\u{a0}\n".as_bytes(),
    );
    assert_eq!(
        d.ok("admin.vm.notes.Get", "work", "", b""),
        "_ smile\té_\u{4e2d}_\n"
    );
    assert_eq!(
        d.call("admin.vm.notes.Set", "work", "", b"some text\xff"),
        exc(
            "ProtocolError",
            "Unable to sanitise qube notes: 'utf-8' codec can't decode byte 0xff in position 9: invalid start byte"
        )
    );
}
