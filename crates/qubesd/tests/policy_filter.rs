//! A management qube sees, lists and hears only the qubes its qrexec policy allows.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

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
    let s = d.stream("admin.Events", "mgmt", "dom0");
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

/// The GUI-qube path: the client's qrexec transport through `qubes-admin-bridge`.
#[test]
fn management_qube_through_the_qrexec_bridge() {
    use qubes_api::{CallError, Client, Qrexec};
    use std::sync::Arc;

    let d = TestDaemon::start();
    d.write_policy(
        "30-user.policy",
        "\
admin.vm.List * mgmt @adminvm allow target=dom0
admin.vm.List * mgmt @tag:created-by-mgmt allow target=dom0
admin.vm.Create.StandaloneVM * mgmt @adminvm allow target=dom0
admin.vm.property.List * mgmt @tag:created-by-mgmt allow target=dom0
admin.vm.property.Get * mgmt @tag:created-by-mgmt allow target=dom0
admin.vm.property.Set * mgmt @tag:created-by-mgmt allow target=dom0
admin.vm.property.GetAll * @anyvm @anyvm deny notify=no
",
    );
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
    let client = Client::new(Arc::new(Qrexec {
        program: env!("CARGO_BIN_EXE_qubes-admin-bridge").into(),
        args: vec![
            "--source".into(),
            "mgmt".into(),
            "--socket-dir".into(),
            d.dir.path().display().to_string(),
            "--policy-dir".into(),
            d.dir.path().join("policy.d").display().to_string(),
        ],
    }));
    client
        .call(
            "admin.vm.Create.StandaloneVM",
            "@adminvm",
            "",
            b"name=managed label=green",
        )
        .unwrap();
    let listed: Vec<String> = client
        .vm_list()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, ["dom0", "managed"]);
    // GetAll is denied by policy: the client falls back to List + Get, as the reference's does.
    let props = client.property_get_all("managed").unwrap();
    assert!(
        props
            .iter()
            .any(|(n, v)| n == "label" && v.value == "green")
    );
    client
        .call("admin.vm.property.Set", "managed", "label", b"blue")
        .unwrap();
    assert_eq!(
        d.ok("admin.vm.property.Get", "managed", "label", b""),
        "default=False type=label blue"
    );
    // Nothing for the rest: an empty answer, exactly as qrexec refusing the call.
    assert!(matches!(
        client.call("admin.vm.property.Get", "secret", "label", b""),
        Err(CallError::Empty)
    ));
    assert!(matches!(
        client.call("admin.vm.property.Set", "secret", "label", b"blue"),
        Err(CallError::Empty)
    ));
    assert!(matches!(
        client.call("admin.vm.Remove", "managed", "", b""),
        Err(CallError::Empty)
    ));
    assert_eq!(
        d.ok("admin.vm.property.Get", "secret", "label", b""),
        "default=False type=label red"
    );
    // The source qubesd saw is the true one: the new qube was tagged created-by-mgmt.
    assert!(
        d.ok("admin.vm.tag.List", "managed", "", b"")
            .contains("created-by-mgmt\n")
    );
}
