//! Network and system-wide defaults as the reference handles them: loop checks through
//! default_netvm, what a netvm Reset fires, the per-qube events of default_netvm,
//! default_dispvm and default_guivm, and the clock qube's feature. Events are shown with `|`
//! for NUL.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Events, TestDaemon};

fn exc(kind: &str, msg: &str) -> Vec<u8> {
    format!("2\0{kind}\0\0{msg}\0").into_bytes()
}

/// fedora (template), work (AppVM), sys-net and sys-fw (network providers; sys-fw behind
/// sys-net, sys-net with netvm None set explicitly).
fn network() -> TestDaemon {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    for q in ["sys-net", "sys-fw"] {
        d.ok(
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora",
            format!("name={q} label=red").as_bytes(),
        );
        d.ok("admin.vm.property.Set", q, "provides_network", b"True");
    }
    d.ok("admin.vm.property.Set", "sys-net", "netvm", b"");
    d.ok("admin.vm.property.Set", "sys-fw", "netvm", b"sys-net");
    d
}

#[test]
fn default_netvm_set_and_reset_events_and_loops() {
    let d = network();
    let mut ev = Events::open(&d, "dom0");
    assert_eq!(
        d.call("admin.property.Set", "dom0", "default_netvm", b"sys-fw"),
        b"0\0"
    );
    let netvm =
        |vm: &str, ev: &str, kw: &str| format!("1|{vm}|property-{ev}:netvm|name|netvm{kw}||");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            "1||property-pre-set:default_netvm|name|default_netvm|newvalue|sys-fw|oldvalue|None||"
                .to_string(),
            // Templates follow the default too, though theirs is always None.
            netvm("fedora", "pre-set", "|newvalue|sys-fw|oldvalue|None"),
            netvm("work", "pre-set", "|newvalue|sys-fw|oldvalue|None"),
            netvm("fedora", "reset", "|oldvalue|None"),
            netvm("work", "set", "|newvalue|sys-fw|oldvalue|None"),
            netvm("work", "reset", "|oldvalue|None"),
            "1||property-set:default_netvm|name|default_netvm|newvalue|sys-fw|oldvalue|None||"
                .into(),
        ]
    );
    // Resetting sys-net's netvm would make it use sys-fw, which is behind it.
    assert_eq!(
        d.call("admin.vm.property.Reset", "sys-net", "netvm", b""),
        exc("QubesValueError", "Loops in network are unsupported")
    );
    assert_eq!(
        ev.drain(&d, "work"),
        [netvm("sys-net", "pre-reset", "|oldvalue|None")]
    );
    // A Reset that changes the value fires pre-set and set in between.
    d.ok("admin.vm.property.Set", "fedora", "netvm", b"sys-net");
    ev.drain(&d, "work");
    d.ok("admin.vm.property.Reset", "fedora", "netvm", b"");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            netvm("fedora", "pre-reset", "|oldvalue|sys-net"),
            netvm("fedora", "pre-set", "|newvalue|None|oldvalue|sys-net"),
            netvm("fedora", "pre-del", "|oldvalue|sys-net"),
            netvm("fedora", "set", "|newvalue|None|oldvalue|sys-net"),
            netvm("fedora", "reset", "|oldvalue|sys-net"),
            netvm("fedora", "del", "|oldvalue|sys-net"),
        ]
    );
    // A Reset of the default fires nothing per qube.
    d.ok("admin.property.Reset", "dom0", "default_netvm", b"");
    assert_eq!(
        ev.drain(&d, "work"),
        ["pre-reset", "pre-del", "reset", "del"]
            .map(|e| format!("1||property-{e}:default_netvm|name|default_netvm|oldvalue|sys-fw||"))
    );
    // The default need not provide network; only loops are refused, templates included.
    assert_eq!(
        d.call("admin.property.Set", "dom0", "default_netvm", b"fedora"),
        exc("QubesPropertyValueError", "Network loop on 'fedora'")
    );
    d.ok("admin.vm.property.Set", "work", "netvm", b"sys-net");
    assert_eq!(
        d.call("admin.property.Set", "dom0", "default_netvm", b"work"),
        b"0\0"
    );
    // But dom0 serves no network (the reference fails without a reply).
    assert_eq!(
        d.call("admin.property.Set", "dom0", "default_netvm", b"dom0"),
        exc("QubesValueError", "The dom0 qube does not provide network")
    );
}

#[test]
fn clockvm_feature_moves_in_the_reference_order() {
    let d = network();
    let mut ev = Events::open(&d, "dom0");
    d.ok("admin.property.Set", "dom0", "clockvm", b"sys-net");
    d.ok("admin.property.Set", "dom0", "clockvm", b"sys-fw");
    let clock = |e: &str, kw: &str| format!("1||property-{e}:clockvm|name|clockvm{kw}||");
    let feat = |vm: &str, e: &str, kw: &str| {
        format!("1|{vm}|domain-feature-{e}:service.clocksync|feature|service.clocksync{kw}||")
    };
    assert_eq!(
        ev.drain(&d, "work"),
        [
            clock("pre-set", "|newvalue|sys-net|oldvalue|None"),
            feat("sys-net", "pre-set", "|value|1"),
            feat("sys-net", "set", "|value|1"),
            clock("set", "|newvalue|sys-net|oldvalue|None"),
            clock("pre-set", "|newvalue|sys-fw|oldvalue|sys-net"),
            feat("sys-fw", "pre-set", "|value|1"),
            feat("sys-fw", "set", "|value|1"),
            feat("sys-net", "pre-delete", ""),
            feat("sys-net", "delete", ""),
            clock("set", "|newvalue|sys-fw|oldvalue|sys-net"),
        ]
    );
    // A Reset leaves the feature where it is.
    d.ok("admin.property.Reset", "dom0", "clockvm", b"");
    assert_eq!(ev.drain(&d, "work").len(), 4);
    assert_eq!(
        d.ok("admin.vm.feature.Get", "sys-fw", "service.clocksync", b""),
        "1"
    );
}

#[test]
fn default_dispvm_and_default_guivm_tell_the_qubes_that_follow_them() {
    let d = network();
    d.ok(
        "admin.vm.property.Set",
        "work",
        "template_for_dispvms",
        b"True",
    );
    d.ok("admin.vm.property.Set", "sys-fw", "default_dispvm", b"");
    let mut ev = Events::open(&d, "dom0");
    d.ok("admin.property.Set", "dom0", "default_dispvm", b"work");
    d.ok("admin.property.Reset", "dom0", "default_dispvm", b"");
    let dd = |vm: &str, kw: &str| {
        format!("1|{vm}|property-reset:default_dispvm|name|default_dispvm{kw}||")
    };
    let g = |e: &str, kw: &str| format!("1||property-{e}:default_dispvm|name|default_dispvm{kw}||");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            g("pre-set", "|newvalue|work|oldvalue|None"),
            // dom0 too; every qube in name order (sys-fw has its own).
            dd("dom0", "|oldvalue|None"),
            dd("fedora", "|oldvalue|None"),
            dd("sys-net", "|oldvalue|None"),
            dd("work", "|oldvalue|None"),
            g("set", "|newvalue|work|oldvalue|None"),
            g("pre-reset", "|oldvalue|work"),
            g("pre-del", "|oldvalue|work"),
            dd("dom0", "|oldvalue|work"),
            dd("fedora", "|oldvalue|work"),
            dd("sys-net", "|oldvalue|work"),
            dd("work", "|oldvalue|work"),
            g("reset", "|oldvalue|work"),
            g("del", "|oldvalue|work"),
        ]
    );
    // default_guivm: the qubes that follow it get their tags, then property-set:guivm.
    d.ok("admin.vm.property.Set", "fedora", "guivm", b"dom0");
    d.ok("admin.vm.property.Set", "sys-fw", "guivm", b"dom0");
    d.ok("admin.vm.property.Set", "work", "guivm", b"dom0");
    ev.drain(&d, "work");
    d.ok("admin.property.Set", "dom0", "default_guivm", b"sys-net");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            "1||property-pre-set:default_guivm|name|default_guivm|newvalue|sys-net|oldvalue|dom0||",
            "1|sys-net|domain-tag-delete:guivm-dom0|tag|guivm-dom0||",
            "1|sys-net|domain-tag-add:guivm-sys-net|tag|guivm-sys-net||",
            "1|sys-net|property-set:guivm|name|guivm|newvalue|sys-net|oldvalue|dom0||",
            "1||property-set:default_guivm|name|default_guivm|newvalue|sys-net|oldvalue|dom0||",
        ]
    );
    // Resetting a qube's guivm: its tags change before the stream sees the reset.
    d.ok("admin.vm.property.Reset", "work", "guivm", b"");
    let gv = |e: &str| format!("1|work|property-{e}:guivm|name|guivm|oldvalue|dom0||");
    assert_eq!(
        ev.drain(&d, "work"),
        [
            gv("pre-reset"),
            gv("pre-del"),
            "1|work|domain-tag-delete:guivm-dom0|tag|guivm-dom0||".into(),
            "1|work|domain-tag-add:guivm-sys-net|tag|guivm-sys-net||".into(),
            gv("reset"),
            gv("del"),
        ]
    );
    // Deliberately unlike the reference: a Reset of default_guivm puts the tags of the
    // qubes that follow it right (the reference leaves guivm-sys-net, which keeps granting
    // sys-net access through the policy).
    d.ok("admin.property.Reset", "dom0", "default_guivm", b"");
    assert_eq!(
        d.ok("admin.vm.tag.List", "work", "", b""),
        "audiovm-dom0\ncreated-by-dom0\nguivm-dom0\n"
    );
}
