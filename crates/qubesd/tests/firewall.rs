//! `admin.vm.firewall.*` over the socket: default rule, Set/Get round trip, the file on
//! disk, `firewall-changed`, refusals.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Events, TestDaemon};

#[test]
fn rules_round_trip_through_firewall_xml() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    assert_eq!(
        d.ok("admin.vm.firewall.Get", "work", "", b""),
        "action=accept\n"
    );
    let mut ev = Events::open(&d, "work");
    d.ok(
        "admin.vm.firewall.Set",
        "work",
        "",
        b"action=accept proto=tcp dsthost=example.com dstports=443 comment=web ok\naction=drop specialtarget=dns\naction=accept dst4=10.0.0.1\naction=drop expire=1\n",
    );
    assert_eq!(ev.next_text(), "work firewall-changed");
    assert_eq!(
        d.ok("admin.vm.firewall.Get", "work", "", b""),
        "action=accept dsthost=example.com proto=tcp dstports=443-443 comment=web ok\naction=drop specialtarget=dns\naction=accept dst4=10.0.0.1/32\n",
        "expired rules are left out"
    );
    let file = std::fs::read_to_string(d.dir.path().join("appvms/work/firewall.xml")).unwrap();
    assert!(
        // As the reference writes it: no XML declaration.
        file.starts_with("<firewall version=\"2\">\n  <rules>\n"),
        "{file}"
    );
    assert!(
        file.contains("<property name=\"dsthost\">10.0.0.1/32</property>"),
        "{file}"
    );
    assert!(
        !file.contains("expire"),
        "expired rules are not saved: {file}"
    );
    d.ok("admin.vm.firewall.Reload", "work", "", b"");
    assert_eq!(ev.next_text(), "work firewall-changed");

    // Refusals: a bad rule changes nothing.
    assert_eq!(
        d.call(
            "admin.vm.firewall.Set",
            "work",
            "",
            b"action=accept dstports=80\n"
        ),
        b""
    );
    assert_eq!(
        d.call(
            "admin.vm.firewall.Set",
            "work",
            "",
            "action=accept comment=\u{e9}".as_bytes()
        ),
        b"2\0ProtocolError\0\0Rules contains non-ASCII characters\0"
    );
    assert_eq!(
        d.call("admin.vm.firewall.Set", "work", "", b""),
        b"2\0ProtocolError\0\0expected payload\0"
    );
    assert_eq!(
        d.call("admin.vm.firewall.Get", "dom0", "", b""),
        b"2\0ProtocolError\0\0expected destination to not be AdminVM\0"
    );
    assert_eq!(
        d.ok("admin.vm.firewall.Get", "work", "", b"")
            .lines()
            .count(),
        3
    );
}
