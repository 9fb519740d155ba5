//! A management qube sees, lists and hears only the qubes its qrexec policy allows.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::TestDaemon;

fn names(list: &[u8]) -> Vec<String> {
    assert!(
        list.starts_with(b"0\0"),
        "{:?}",
        String::from_utf8_lossy(list)
    );
    String::from_utf8_lossy(&list[2..])
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

const POLICY: &str = "\
# The management idiom: mgmt manages what it created.
admin.vm.List * mgmt @adminvm allow target=dom0
admin.vm.List * mgmt @tag:created-by-mgmt allow target=dom0
admin.vm.List * mgmt secret ask target=dom0
admin.Events * mgmt @tag:created-by-mgmt allow target=dom0
";

#[test]
fn management_qube_sees_only_what_policy_allows() {
    let d = TestDaemon::start();
    d.write_policy("30-user.policy", POLICY);
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=mgmt label=black",
    );
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=secret label=red",
    );
    assert_eq!(
        d.call_from(
            "mgmt",
            "admin.vm.Create.StandaloneVM",
            "dom0",
            "",
            b"name=managed label=green"
        ),
        b"0\0"
    );

    // dom0 sees everything; mgmt sees dom0 and what it created (ask counts as deny).
    assert_eq!(
        names(&d.call("admin.vm.List", "dom0", "", b"")),
        ["dom0", "managed", "mgmt", "secret"]
    );
    assert_eq!(
        names(&d.call_from("mgmt", "admin.vm.List", "dom0", "", b"")),
        ["dom0", "managed"]
    );
    assert_eq!(
        names(&d.call_from("mgmt", "admin.vm.List", "secret", "", b"")),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&d.call_from("mgmt", "admin.vm.List", "managed", "", b"")),
        ["managed"]
    );

    // Events: only those of qubes mgmt created.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.write_all(&qubes_api::Request::encode(
        "admin.Events",
        "",
        "mgmt",
        "dom0",
        b"",
    ))
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ev = qubes_api::EventReader::new(Box::new(s));
    assert_eq!(
        ev.next_event().unwrap().unwrap().name,
        "connection-established"
    );
    d.ok("admin.vm.tag.Set", "secret", "hidden", b"");
    d.ok("admin.vm.tag.Set", "managed", "visible", b"");
    let e = ev.next_event().unwrap().unwrap();
    assert_eq!(
        (e.subject.as_str(), e.name.as_str()),
        ("managed", "domain-tag-add:visible")
    );

    // A broken policy file: qubesd keeps running, every filter denies.
    d.write_policy("10-broken.policy", "this is not policy\n");
    assert_eq!(
        names(&d.call_from("mgmt", "admin.vm.List", "dom0", "", b"")),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&d.call("admin.vm.List", "dom0", "", b"")).len(),
        4,
        "dom0 unaffected"
    );
    // Fixed: back to normal without a restart.
    std::fs::remove_file(d.dir.path().join("policy.d/10-broken.policy")).unwrap();
    assert_eq!(
        names(&d.call_from("mgmt", "admin.vm.List", "dom0", "", b"")),
        ["dom0", "managed"]
    );
}
