//! Qubes running on libvirt's test driver: lifecycle calls, event order, stats, disposables.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Events, TestDaemon};

fn setup() -> TestDaemon {
    let d = TestDaemon::start();
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=net label=red",
    );
    d.ok("admin.vm.property.Set", "net", "provides_network", b"True");
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=work label=blue",
    );
    d.ok("admin.vm.property.Set", "work", "netvm", b"net");
    d
}

fn state(d: &TestDaemon, vm: &str) -> String {
    let line = d.ok("admin.vm.List", vm, "", b"");
    line.split(' ')
        .find_map(|kv| kv.strip_prefix("state="))
        .unwrap()
        .to_string()
}

#[test]
fn start_pause_shutdown_kill_and_event_order() {
    let d = setup();
    let mut ev = Events::open(&d, "dom0");
    assert_eq!(d.ok("admin.vm.Start", "work", "", b""), "");
    // The network qube starts first, inside work's start.
    // The reference's order (compared with its daemon): the checks, the files, the net
    // qube's whole start, then the domain's ids, spawn, QubesDB and unpause.
    let spawned = |vm: &str| {
        [
            "domain-pre-spawn start_guid=True",
            "property-reset:xid name=xid",
            "property-reset:stubdom_xid name=stubdom_xid",
            "property-reset:start_time name=start_time",
            "domain-spawn start_guid=True",
            "domain-qdb-create",
            "domain-pre-unpaused",
            "domain-unpaused",
            "domain-start start_guid=True",
        ]
        .map(|e| format!("{vm} {e}"))
    };
    let mut want = vec![
        "work domain-pre-start start_guid=True mem_required=None".to_string(),
        "work domain-verify-files".into(),
        "net domain-pre-start start_guid=True mem_required=None".into(),
        "net domain-verify-files".into(),
    ];
    want.extend(spawned("net"));
    want.extend(spawned("work"));
    for w in want {
        assert_eq!(ev.next_text(), w);
    }
    assert_eq!(state(&d, "work"), "Running");
    assert_eq!(state(&d, "net"), "Running");
    assert_eq!(
        d.ok("admin.vm.Start", "work", "", b""),
        "",
        "already running: no-op"
    );
    let xid = d.ok("admin.vm.property.Get", "work", "xid", b"");
    assert!(
        xid.starts_with("default=True type=int ") && !xid.ends_with(" -1"),
        "{xid}"
    );
    let cs = d.ok("admin.vm.CurrentState", "work", "", b"");
    assert!(
        cs.starts_with("mem=409600 mem_static_max=409600 cputime=")
            && cs.ends_with(" power_state=Running"),
        "{cs}"
    );
    assert!(
        d.ok("admin.vm.property.Get", "work", "start_time", b"")
            .len()
            > "default=True type=str ".len()
    );

    assert_eq!(
        d.call("admin.vm.Shutdown", "net", "", b""),
        b"2\0QubesVMInUseError\0\0There are other VMs connected to this VM: work\0"
    );
    assert_eq!(ev.next_text(), "net domain-pre-shutdown force=False");
    assert_eq!(
        ev.next_text(),
        "net domain-shutdown-failed reason=There are other VMs connected to this VM: work"
    );
    assert_eq!(
        d.call("admin.vm.Shutdown", "work", "bogus", b""),
        b"2\0ProtocolError\0\0Argument must match: force, wait\0"
    );

    d.ok("admin.vm.Pause", "work", "", b"");
    assert_eq!(state(&d, "work"), "Paused");
    assert_eq!(ev.next_text(), "work domain-pre-paused");
    assert_eq!(ev.next_text(), "work domain-paused");
    assert_eq!(
        d.call("admin.vm.Pause", "work", "", b""),
        b"2\0QubesVMNotRunningError\0\0Domain not running (either powered off or paused): 'work'\0"
    );
    assert_eq!(
        d.call("admin.vm.Shutdown", "work", "", b""),
        b"2\0QubesVMNotRunningError\0\0Domain not running (either powered off or paused): 'work'\0"
    );
    assert_eq!(ev.next_text(), "work domain-pre-shutdown force=False");
    assert_eq!(
        ev.next_text(),
        "work domain-shutdown-failed reason=Domain not running (either powered off or paused): 'work'"
    );
    d.ok("admin.vm.Unpause", "work", "", b"");
    assert_eq!(ev.next_text(), "work domain-pre-unpaused");
    assert_eq!(ev.next_text(), "work domain-unpaused");
    assert_eq!(
        d.call("admin.vm.Unpause", "work", "", b""),
        b"2\0QubesVMNotPausedError\0\0Domain is not paused: 'work'\0"
    );

    assert_eq!(d.ok("admin.vm.Shutdown", "work", "wait", b""), "");
    assert_eq!(state(&d, "work"), "Halted");
    for w in [
        "work domain-pre-shutdown force=False",
        "work domain-stopped",
        "work property-reset:xid name=xid",
        "work property-reset:stubdom_xid name=stubdom_xid",
        "work property-reset:start_time name=start_time",
        "work domain-shutdown",
    ] {
        assert_eq!(ev.next_text(), w);
    }
    assert_eq!(
        d.ok("admin.vm.CurrentState", "work", "", b""),
        "mem=0 mem_static_max=0 cputime=0 power_state=Halted"
    );
    assert_eq!(
        d.call("admin.vm.Shutdown", "work", "", b""),
        b"2\0QubesVMNotStartedError\0\0Domain is powered off: 'work'\0"
    );
    assert_eq!(
        d.call("admin.vm.Kill", "work", "", b""),
        b"2\0QubesVMNotStartedError\0\0Domain is powered off: 'work'\0"
    );
    d.ok("admin.vm.Kill", "net", "", b"");
    assert_eq!(state(&d, "net"), "Halted");
    assert_eq!(
        d.call("admin.vm.Start", "dom0", "", b""),
        b"2\0QubesVMNotHaltedError\0\0Cannot start Dom0 fake domain!\0"
    );
    assert_eq!(
        d.call("admin.vm.Kill", "dom0", "", b""),
        b"2\0QubesVMError\0\0Cannot kill Dom0 fake domain!\0"
    );
    assert_eq!(d.call("admin.vm.Pause", "dom0", "", b""), b"");
}

#[test]
fn prohibited_and_failing_starts() {
    let d = setup();
    d.ok(
        "admin.vm.feature.Set",
        "work",
        "prohibit-start",
        b"under repair",
    );
    let mut ev = Events::open(&d, "work");
    assert_eq!(
        d.call("admin.vm.Start", "work", "", b""),
        b"2\0QubesException\0\0Qube start is prohibited. Rationale: under repair\0"
    );
    assert_eq!(
        ev.next_text(),
        "work domain-start-failed reason=Qube start is prohibited. Rationale: under repair"
    );
    assert_eq!(state(&d, "work"), "Halted");
    // A hypervisor failure: libvirt's test node already has a different domain named "test".
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=test label=red",
    );
    let mut ev = Events::open(&d, "test");
    let r = String::from_utf8(d.call("admin.vm.Start", "test", "", b"")).unwrap();
    assert!(
        r.starts_with("2\0QubesException\0\0Start failed: "),
        "{r:?}"
    );
    assert!(
        r.ends_with(", see /var/log/libvirt/libxl/libxl-driver.log for details\0"),
        "{r:?}"
    );
    assert_eq!(
        ev.next_text(),
        "test domain-pre-start start_guid=True mem_required=None"
    );
    assert_eq!(ev.next_text(), "test domain-verify-files");
    assert_eq!(ev.next_text(), "test domain-pre-spawn start_guid=True");
    assert!(
        ev.next_text()
            .starts_with("test domain-start-failed reason=Start failed: ")
    );
    assert_eq!(state(&d, "test"), "Halted");
    assert!(
        d.ok("admin.vm.List", "dom0", "", b"")
            .contains("test class=StandaloneVM state=Halted")
    );
}

#[test]
fn disposable_starts_and_is_removed_after_stop() {
    let d = setup();
    d.ok(
        "admin.vm.property.Set",
        "work",
        "template_for_dispvms",
        b"True",
    );
    let name = d.ok("admin.vm.CreateDisposable", "work", "", b"");
    d.ok("admin.vm.Start", &name, "", b"");
    assert_eq!(state(&d, &name), "Running");
    let mut ev = Events::open(&d, "dom0");
    d.ok("admin.vm.Kill", &name, "", b"");
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &String| e.contains("domain-delete")) {
        seen.push(ev.next_text());
    }
    assert!(
        seen.contains(&format!(" domain-pre-delete vm={name}")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&format!("{name} domain-shutdown")),
        "{seen:?}"
    );
    assert!(!d.ok("admin.vm.List", "dom0", "", b"").contains(&name));
    assert!(!d.saved().contains(&name), "removal saved");
}

#[test]
fn stats_stream() {
    let d = setup();
    d.ok("admin.property.Set", "dom0", "stats_interval", b"1");
    // A halted qube: connection-established, then the exception.
    assert_eq!(
        d.call("admin.vm.Stats", "work", "", b""),
        b"1\0\0connection-established\0\0\x32\0QubesVMNotRunningError\0\0Domain not running (either powered off or paused): 'work'\0"
    );
    d.ok("admin.vm.Start", "work", "", b"");
    let s = d.stream("admin.vm.Stats", "dom0", "dom0");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = qubes_api::EventReader::new(Box::new(s));
    assert_eq!(
        reader.next_event().unwrap().unwrap().name,
        "connection-established"
    );
    let t0 = Instant::now();
    let mut rounds: Vec<(Instant, Vec<String>)> = Vec::new();
    while rounds.len() < 3 {
        let e = reader.next_event().unwrap().unwrap();
        assert_eq!(e.name, "vm-stats");
        let keys: Vec<&str> = e.kwargs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "memory_kb",
                "memory_assigned_total",
                "memory_assigned_usable",
                "memory_with_swap_used",
                "cpu_time",
                "cpu_usage",
                "online_vcpus"
            ]
        );
        if e.subject == "dom0" {
            rounds.push((Instant::now(), Vec::new()));
        }
        rounds.last_mut().unwrap().1.push(e.subject.clone());
        if e.subject == "work" {
            assert_eq!(e.get("memory_kb"), Some("409600"));
        }
    }
    // dom0 first, then every running qube (net was started for work), once per interval.
    assert_eq!(rounds[1].1, ["dom0", "net", "work"]);
    let gap = rounds[2].0 - rounds[1].0;
    assert!(
        gap > Duration::from_millis(700) && gap < Duration::from_millis(1600),
        "{gap:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(6));
}

#[test]
fn start_up_reconciles_with_libvirt() {
    let mut d = setup();
    d.ok("admin.vm.Start", "work", "", b"");
    d.stop();
    // test:///default lives in the daemon process: after a restart nothing runs.
    d.spawn().unwrap();
    assert_eq!(state(&d, "work"), "Halted");
    d.stop();
    // A node where `work` already runs (started behind qubesd's back) and `net` is paused.
    let node = d.dir.path().join("node.xml");
    let dom = |name: &str, runstate: u32| {
        format!(
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\
             <name>{name}</name><memory>409600</memory><os><type>hvm</type></os>\
             <test:runstate>{runstate}</test:runstate></domain>"
        )
    };
    std::fs::write(
        &node,
        format!("<node>{}{}</node>", dom("work", 1), dom("net", 3)),
    )
    .unwrap();
    d.spawn_with_uri(&format!("test://{}", node.display()))
        .unwrap();
    assert_eq!(state(&d, "work"), "Running");
    assert_eq!(state(&d, "net"), "Paused");
    let xid = d.ok("admin.vm.property.Get", "work", "xid", b"");
    assert!(!xid.ends_with(" -1"), "{xid}");
    d.ok("admin.vm.Unpause", "net", "", b"");
    d.ok("admin.vm.Kill", "work", "", b"");
    assert_eq!(state(&d, "work"), "Halted");
}

#[test]
fn unreachable_libvirt_fails_fast_and_clearly() {
    let mut d = setup();
    d.stop();
    d.spawn_with_uri("qemu+unix:///system?socket=/nonexistent/libvirt-sock")
        .unwrap();
    assert_eq!(state(&d, "work"), "NA");
    let t = Instant::now();
    assert_eq!(
        d.call("admin.vm.Start", "work", "", b""),
        b"2\0QubesException\0\0Start failed: not connected to libvirt, see /var/log/libvirt/libxl/libxl-driver.log for details\0"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Everything that does not need the hypervisor still works.
    d.ok("admin.vm.property.Set", "work", "memory", b"500");
    assert_eq!(
        d.ok("admin.vm.CurrentState", "work", "", b""),
        "mem=0 mem_static_max=0 cputime=0 power_state=NA"
    );
}

/// libvirt's own schema check (virt-xml-validate) accepts the generated XML for kvm and test.
#[test]
fn generated_domain_xml_validates() {
    if std::process::Command::new("virt-xml-validate")
        .arg("--help")
        .output()
        .is_err()
    {
        println!("virt-xml-validate not installed: schema check skipped");
        return;
    }
    let d = setup();
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=k label=red",
    );
    d.ok("admin.vm.property.Set", "k", "kernel", b"6.6.1");
    d.ok("admin.vm.property.Set", "k", "kernelopts", b"nopat <&>");
    d.ok("admin.vm.property.Set", "k", "netvm", b"net");
    let host = qubesd::model::HostInfo::detect(&d.dir.path().to_string_lossy(), false);
    let st = qubesd::store::parse(d.saved().as_bytes(), host).unwrap();
    for kind in ["kvm", "test", "xen"] {
        for vm in ["work", "k", "net"] {
            let xml =
                qubesd::hypervisor::domain_xml::domain_xml(&st, st.domain(vm).unwrap(), kind, &[]);
            let path = d.dir.path().join(format!("{vm}-{kind}.xml"));
            std::fs::write(&path, &xml).unwrap();
            let out = std::process::Command::new("virt-xml-validate")
                .arg(&path)
                .arg("domain")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{kind} {vm}: {}\n{xml}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn dom0_is_never_a_connected_qube() {
    // dom0 has no netvm property: the global default_netvm must not make it a user of the
    // network qube (the reference lists qubes whose `netvm` attribute is that qube).
    let d = setup();
    d.ok("admin.vm.property.Set", "net", "netvm", b"");
    d.ok("admin.property.Set", "dom0", "default_netvm", b"net");
    d.ok("admin.vm.Start", "net", "", b"");
    assert_eq!(d.ok("admin.vm.Shutdown", "net", "", b""), "");
}

/// A qube being restored from a backup cannot start (the reference's backup restore
/// extension vetoes its domain-pre-start).
#[test]
fn a_qube_being_restored_does_not_start() {
    let d = setup();
    d.ok(
        "admin.vm.tag.Set",
        "work",
        "backup-restore-in-progress",
        b"",
    );
    let mut ev = Events::open(&d, "work");
    assert_eq!(
        d.call("admin.vm.Start", "work", "", b""),
        b"2\0QubesVMError\0\0Restore of this domain in progress, cannot start\0"
    );
    assert_eq!(
        ev.next_text(),
        "work domain-pre-start start_guid=True mem_required=None"
    );
    assert_eq!(
        ev.next_text(),
        "work domain-start-failed reason=Restore of this domain in progress, cannot start"
    );
    assert_eq!(state(&d, "work"), "Halted");
    d.ok(
        "admin.vm.tag.Remove",
        "work",
        "backup-restore-in-progress",
        b"",
    );
    d.ok("admin.vm.Start", "work", "", b"");
    assert_eq!(state(&d, "work"), "Running");
}

/// A network loop written into qubes.xml by hand (the API refuses to make one) does not hang
/// a start: each qube of the chain is started once, and every other call goes on.
#[test]
fn a_netvm_loop_in_qubes_xml_does_not_hang_a_start() {
    let mut d = setup();
    d.ok("admin.vm.property.Set", "work", "provides_network", b"True");
    d.stop();
    let xml = d.saved();
    // net's properties get netvm=work: work -> net -> work.
    let marker = "<property name=\"name\">net</property>";
    assert!(xml.contains(marker), "{xml}");
    let looped = xml.replacen(
        marker,
        &format!("{marker}\n        <property name=\"netvm\">work</property>"),
        1,
    );
    std::fs::write(d.store(), looped).unwrap();
    d.spawn().unwrap();
    assert_eq!(
        d.ok("admin.vm.property.Get", "net", "netvm", b""),
        "default=False type=vm work"
    );
    let socket = d.socket();
    let start = std::thread::spawn(move || {
        qubes_api::client::call_raw(
            &socket,
            &qubes_api::Request::encode("admin.vm.Start", "", "dom0", "work", b""),
        )
        .unwrap()
    });
    let t = Instant::now();
    while !start.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(60), "the start hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(start.join().unwrap(), b"0\0");
    assert_eq!(state(&d, "work"), "Running");
    assert_eq!(state(&d, "net"), "Running");
    d.ok("admin.vm.Kill", "work", "", b"");
    d.ok("admin.vm.Kill", "net", "", b"");
}

/// A running qube keeps its template; as in the reference (a `property-pre-set:template`
/// handler) the refusal comes after that event went out.
#[test]
fn a_running_qube_keeps_its_template_after_the_pre_set_event() {
    let d = TestDaemon::start();
    for tpl in ["tpl", "tpl2"] {
        d.ok(
            "admin.vm.Create.TemplateVM",
            "dom0",
            "",
            format!("name={tpl} label=black").as_bytes(),
        );
    }
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "tpl",
        b"name=app label=red",
    );
    d.ok("admin.vm.Start", "app", "", b"");
    let mut ev = Events::open(&d, "app");
    assert_eq!(
        d.call("admin.vm.property.Set", "app", "template", b"tpl2"),
        b"2\0QubesVMNotHaltedError\0\0Cannot change template while qube is running\0"
    );
    assert_eq!(
        ev.next_text(),
        "app property-pre-set:template name=template newvalue=tpl2 oldvalue=tpl"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "app", "template", b""),
        "default=False type=vm tpl"
    );
    // Halted, it changes.
    d.ok("admin.vm.Kill", "app", "", b"");
    d.ok("admin.vm.property.Set", "app", "template", b"tpl2");
}
