//! The daemon over its real sockets: exact response bytes, error order, events, qubes.xml.
//! Expected bytes were checked against the reference daemon.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Events, TestDaemon};

#[test]
fn framing_and_generic_checks() {
    let d = TestDaemon::start();
    let uuid0 = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        d.raw(b"admin.vm.List+ dom0 name dom0\0"),
        format!("0\0dom0 class=AdminVM state=Running uuid={uuid0}\n").into_bytes()
    );
    // `keyword adminvm` is dom0; the `+` may be missing.
    assert_eq!(
        d.raw(b"admin.vm.List dom0 keyword adminvm\0"),
        d.raw(b"admin.vm.List+ dom0 name dom0\0")
    );
    // Framing errors get no bytes at all.
    for bad in [
        &b"admin.vm.List+ dom0 name dom0"[..],
        b"admin.vm.List+ dom0 name\0",
        b"admin.vm.List+ dom0 keyword dom0\0",
        b"admin.vm.List+ dom0 uuid dom0\0",
        b"\xff\xfe dom0 name dom0\0",
    ] {
        assert_eq!(d.raw(bad), b"", "{:?}", String::from_utf8_lossy(bad));
    }
    let exc = |t: &str, m: &str| format!("2\0{t}\0\0{m}\0").into_bytes();
    // Order: src, dest, method, payload, argument, destination class.
    assert_eq!(
        d.raw(b"admin.nosuch+ dom0 name nosuch\0"),
        exc("QubesVMNotFoundError", "No such domain: 'nosuch'")
    );
    assert_eq!(
        d.raw(b"admin.vm.List+ 1bad name dom0\0"),
        exc(
            "QubesValueError",
            "VM name cannot start with hyphen, underscore, dot or numbers"
        )
    );
    assert_eq!(
        d.raw(b"admin.nosuch+ dom0 name dom0\0"),
        exc("ProtocolError", "no such method: 'admin.nosuch'")
    );
    assert_eq!(
        d.raw(b"admin.vm.List+x dom0 name dom0\0y"),
        exc("ProtocolError", "unexpected payload")
    );
    assert_eq!(
        d.raw(b"admin.vm.List+x dom0 name dom0\0"),
        exc("ProtocolError", "unexpected argument")
    );
    assert_eq!(
        d.raw(b"admin.vm.property.Get+ dom0 name dom0\0"),
        exc("ProtocolError", "expected an argument")
    );
    assert_eq!(
        d.raw(b"admin.label.Create+x dom0 name dom0\0"),
        exc("ProtocolError", "expected payload")
    );
    d.with_basic_qubes();
    assert_eq!(
        d.raw(b"admin.label.List+ dom0 name work\0"),
        exc("ProtocolError", "expected destination to be AdminVM")
    );
    assert_eq!(
        d.raw(b"admin.vm.notes.Get+ dom0 name dom0\0"),
        exc("ProtocolError", "expected destination to not be AdminVM")
    );
    // uuid addressing: dom0's uuid is dom0, so this lists everything.
    assert_eq!(
        d.raw(format!("admin.vm.List+ dom0 name uuid:{uuid0}\0").as_bytes()),
        d.raw(b"admin.vm.List+ dom0 name dom0\0")
    );
    let work_line = d.ok("admin.vm.List", "work", "", b"");
    let work_uuid = work_line
        .trim_end()
        .rsplit("uuid=")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        d.ok("admin.vm.List", &format!("uuid:{work_uuid}"), "", b""),
        work_line
    );
    assert_eq!(
        d.raw(b"admin.vm.List+ dom0 name uuid:1234\0"),
        exc("QubesVMInvalidUUIDError", "VM UUID is not valid: '1234'")
    );
    // The internal and misc sockets have their own tables.
    let internal = d.dir.path().join("qubesd.internal.sock");
    assert_eq!(
        d.raw_on(&internal, b"admin.vm.List+ dom0 name dom0\0"),
        exc("ProtocolError", "no such method: 'admin.vm.List'")
    );
    let info = d.raw_on(&internal, b"internal.GetSystemInfo+ dom0 name dom0\0");
    assert!(
        info.starts_with(b"0\0{\"domains\": {\"dom0\": {\"internal\": null, \"tags\": []"),
        "{:?}",
        String::from_utf8_lossy(&info)
    );
}

#[test]
fn oversized_and_silent_clients_do_not_hurt_others() {
    let d = TestDaemon::start();
    // A client that never half-closes.
    let mut idle = UnixStream::connect(d.socket()).unwrap();
    idle.write_all(b"admin.vm.List+ dom0 name dom0\0").unwrap();
    // 64 KiB + 1 bytes: aborted without an answer.
    let mut big = b"admin.vm.notes.Set+ dom0 name dom0\0".to_vec();
    big.resize(65537, b'a');
    assert_eq!(d.raw(&big), b"");
    // Exactly 64 KiB is accepted.
    let mut fits = b"admin.vm.List+ dom0 name dom0\0".to_vec();
    fits.resize(65536, b'a');
    assert_eq!(d.raw(&fits), b"2\0ProtocolError\0\0unexpected payload\0");
    assert!(d.ok("admin.vm.List", "dom0", "", b"").starts_with("dom0 "));
    drop(idle);
}

#[test]
fn labels() {
    let d = TestDaemon::start();
    assert_eq!(
        d.ok("admin.label.List", "dom0", "", b""),
        "red\norange\nyellow\ngreen\ngray\nblue\npurple\nblack\n"
    );
    assert_eq!(d.ok("admin.label.Get", "dom0", "red", b""), "0xcc0000");
    assert_eq!(d.ok("admin.label.Get", "dom0", "3", b""), "0xedd400");
    assert_eq!(d.ok("admin.label.Index", "dom0", "blue", b""), "6");
    assert_eq!(
        d.call("admin.label.Get", "dom0", "nosuch", b""),
        b"2\0QubesLabelNotFoundError\0\0Label does not exist: nosuch\0"
    );
    assert_eq!(
        d.ok("admin.label.Create", "dom0", "mine", b" 0x123456\n"),
        ""
    );
    assert_eq!(d.ok("admin.label.Get", "dom0", "mine", b""), "0x123456");
    assert_eq!(d.ok("admin.label.Index", "dom0", "mine", b""), "9");
    assert_eq!(
        d.call("admin.label.Create", "dom0", "12", b"0x123456"),
        b"2\0QubesInvalidLabelError\0\0Label must not be a digit\0"
    );
    assert_eq!(
        d.call("admin.label.Create", "dom0", "x", b"0x12345"),
        b"2\0QubesInvalidLabelValueError\0\0Label value must have length of 8\0"
    );
    assert_eq!(
        d.call("admin.label.Create", "dom0", "mine", b"0x123456"),
        b"2\0QubesLabelInUseError\0\0Label is still in use: 'mine'\0"
    );
    assert_eq!(
        d.call("admin.label.Remove", "dom0", "red", b""),
        b"2\0ProtocolError\0\0Can only remove custom labels\0"
    );
    assert_eq!(d.ok("admin.label.Remove", "dom0", "mine", b""), "");
    assert!(!d.ok("admin.label.List", "dom0", "", b"").contains("mine"));
}

#[test]
fn create_list_and_properties() {
    let d = TestDaemon::start();
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    d.with_basic_qubes();
    let list = d.ok("admin.vm.List", "dom0", "", b"");
    let names: Vec<&str> = list.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["dom0", "fedora", "work"]);
    assert!(list.contains("\nwork class=AppVM state=Halted uuid="));
    assert_eq!(
        d.call(
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora",
            b"name=work label=red"
        ),
        b"2\0QubesVMAlreadyExistsError\0\0Qube already exists: work\0"
    );
    assert_eq!(
        d.call(
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora",
            b"name=x label=nosuch"
        ),
        b"2\0ProtocolError\0\0Creation requested without key: label\0"
    );
    assert_eq!(
        d.call(
            "admin.vm.Create.TemplateVM",
            "dom0",
            "fedora",
            b"name=x label=red"
        ),
        b"2\0ProtocolError\0\0TemplateVM cannot be based on template\0"
    );
    assert_eq!(
        d.call(
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora",
            b"name=x label=red pool=x"
        ),
        b"2\0ProtocolError\0\0Pool option specified but 'allow_pool' is False\0"
    );
    assert_eq!(
        d.call("admin.vm.Create.AppVM", "dom0", "fedora", b"nameonly"),
        b""
    );
    assert_eq!(
        d.call(
            "admin.vm.CreateInPool.AppVM",
            "dom0",
            "fedora",
            b"name=x label=red pool=nope"
        ),
        b"2\0QubesException\0\0Unknown storage pool nope\0"
    );

    let all = d.ok("admin.vm.property.GetAll", "work", "", b"");
    assert!(all.starts_with(
        "autostart default=True type=bool False\nbackup_timestamp default=True type=int \n"
    ));
    assert!(all.contains("\nicon default=True type=str appvm-red\n"));
    assert!(all.contains("\nkernel default=True type=str 6.6.1\n"));
    assert!(all.contains("\nkernelopts default=True type=str swiotlb=2048\n"));
    assert!(all.contains("\nqid default=False type=int 2\n"));
    assert!(all.ends_with("netvm default=True type=vm \ntemplate default=False type=vm fedora\n"));
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "netvm", b""),
        "default=True type=vm "
    );
    assert_eq!(
        d.ok("admin.vm.property.GetDefault", "work", "netvm", b""),
        "type=vm "
    );
    assert_eq!(
        d.ok("admin.vm.property.GetDefault", "work", "template", b""),
        ""
    );
    assert_eq!(
        d.call("admin.vm.property.Get", "work", "nosuch", b""),
        b"2\0QubesNoSuchPropertyError\0\0Invalid property 'nosuch' of work\0"
    );

    // Setter rules.
    assert_eq!(
        d.ok("admin.vm.property.Set", "work", "vcpus", b" +1_0 "),
        ""
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "vcpus", b""),
        "default=False type=int 10"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "memory", b"0"),
        b"2\0QubesPropertyValueError\0\0memory must be positive\0"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "memory", b"x"),
        b"2\0QubesValueError\0\0Failed to parse property value as int\0"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "debug", b"maybe"),
        b"2\0QubesValueError\0\0Invalid literal for boolean property: 'maybe'\0"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "klass", b"x"),
        b"2\0QubesPropertyValueError\0\0property 'klass' on AppVM instance cannot be set\0"
    );
    assert_eq!(d.call("admin.vm.property.Set", "work", "name", b"x"), b"");
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "netvm", b"fedora"),
        b"2\0QubesValueError\0\0The fedora qube does not provide network\0"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "netvm", b"nosuch"),
        b"2\0QubesPropertyValueError\0\0Can't set netvm to non-existing qube nosuch\0"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "kernel", b"nosuch"),
        b"2\0QubesPropertyValueError\0\0Kernel 'nosuch' not installed\0"
    );
    assert_eq!(d.call("admin.vm.property.Set", "work", "template", b"work"), b"2\0QubesPropertyValueError\0\0wrong VM class: domains['work'] is of type AppVM and not TemplateVM\0");
    d.ok("admin.vm.property.Set", "work", "kernelopts", b"a\\b\nc");
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "kernelopts", b""),
        "default=False type=str a\\b\nc"
    );
    assert!(
        d.ok("admin.vm.property.GetAll", "work", "", b"")
            .contains("\nkernelopts default=False type=str a\\\\b\\nc\n")
    );
    d.ok("admin.vm.property.Reset", "work", "vcpus", b"");
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "vcpus", b""),
        "default=True type=int 2"
    );
    // Inheritance from the template.
    d.ok("admin.vm.property.Set", "fedora", "memory", b"1000");
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "memory", b""),
        "default=True type=int 1000"
    );

    // Networking computed from qid.
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=sys-net label=red",
    );
    d.ok(
        "admin.vm.property.Set",
        "sys-net",
        "provides_network",
        b"yes",
    );
    d.ok("admin.vm.property.Set", "work", "netvm", b"sys-net");
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "ip", b""),
        "default=True type=str 10.137.0.2"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work", "visible_gateway", b""),
        "default=True type=str 10.137.0.3"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "sys-net", "icon", b""),
        "default=True type=str servicevm-red"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "sys-net", "netvm", b"sys-net"),
        b"2\0QubesValueError\0\0Loops in network are unsupported\0"
    );

    // Globals.
    assert_eq!(
        d.ok("admin.property.Get", "dom0", "default_pool", b""),
        "default=True type=str varlibqubes"
    );
    assert_eq!(
        d.ok("admin.property.GetDefault", "dom0", "default_template", b""),
        ""
    );
    d.ok("admin.property.Set", "dom0", "default_template", b"fedora");
    assert_eq!(d.call("admin.property.Set", "dom0", "default_template", b"work"), b"2\0QubesPropertyValueError\0\0wrong VM class: domains['work'] is of type AppVM and not TemplateVM\0");
    assert_eq!(
        d.call("admin.property.Get", "dom0", "x", b""),
        b"2\0QubesNoSuchPropertyError\0\0Invalid property 'x' of Qubes\0"
    );
}

#[test]
fn features_tags_notes_and_remove() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok("admin.vm.feature.Set", "work", "zeta", b"1");
    d.ok("admin.vm.feature.Set", "work", "alpha", b"");
    assert_eq!(
        d.ok("admin.vm.feature.List", "work", "", b""),
        "zeta\nalpha\n"
    );
    assert_eq!(d.ok("admin.vm.feature.Get", "work", "alpha", b""), "");
    d.ok("admin.vm.feature.Set", "fedora", "os", b"Linux");
    assert_eq!(
        d.ok("admin.vm.feature.CheckWithTemplate", "work", "os", b""),
        "Linux"
    );
    assert_eq!(
        d.call("admin.vm.feature.Get", "work", "os", b""),
        b"2\0QubesFeatureNotFoundError\0\0Feature not set for domain work: os\0"
    );
    d.ok("admin.vm.feature.Set", "dom0", "gui-x", b"1");
    assert_eq!(
        d.ok("admin.vm.feature.CheckWithAdminVM", "work", "gui-x", b""),
        "1"
    );
    assert_eq!(d.call("admin.vm.feature.Set", "work", "preload-dispvm", b"x"), b"2\0PermissionDenied\0\0changing this feature is prohibited by qubes.ext.admin.AdminExtension\0");
    assert_eq!(
        d.call("admin.vm.feature.Set", "work", "service.a/b", b"1"),
        b"2\0ProtocolError\0\0feature name contains illegal characters\0"
    );
    let long = format!("service.{}", "s".repeat(49));
    assert_eq!(
        d.call("admin.vm.feature.Set", "work", &long, b"1"),
        b"2\0QubesValueError\0\0Service name must not exceed 48 bytes\0"
    );
    assert_eq!(
        d.call("admin.vm.feature.Set", "work", "service.", b"1"),
        b"2\0QubesValueError\0\0Service name cannot be empty\0"
    );
    assert_eq!(
        d.call("admin.vm.feature.Set", "work", "x", b"\x01"),
        b"2\0ProtocolError\0\0x value contains illegal characters\0"
    );

    assert_eq!(
        d.ok("admin.vm.tag.List", "work", "", b""),
        "audiovm-dom0\ncreated-by-dom0\nguivm-dom0\n"
    );
    d.ok("admin.vm.tag.Set", "work", "t1", b"");
    assert_eq!(d.ok("admin.vm.tag.Get", "work", "t1", b""), "1");
    assert_eq!(
        d.call("admin.vm.tag.Get", "work", "t.1", b""),
        b"2\0QubesInvalidTagError\0\0disallowed characters\0"
    );
    assert_eq!(
        d.call("admin.vm.tag.Remove", "work", "t2", b""),
        b"2\0QubesTagNotFoundError\0\0Tag not set for domain work: t2\0"
    );

    d.ok("admin.vm.notes.Set", "work", "", "hi\x1b\tü\n".as_bytes());
    assert_eq!(d.ok("admin.vm.notes.Get", "work", "", b""), "hi_\tü\n");
    // The 64 KiB request limit comes first: a note that large gets no answer at all.
    let too_big = vec![b'a'; 256001];
    assert_eq!(d.call("admin.vm.notes.Set", "work", "", &too_big), b"");
    let big = "n".repeat(65000);
    d.ok("admin.vm.notes.Set", "work", "", big.as_bytes());
    assert_eq!(d.ok("admin.vm.notes.Get", "work", "", b""), big);

    assert_eq!(
        d.ok("admin.vm.CurrentState", "work", "", b""),
        "mem=0 mem_static_max=0 cputime=0 power_state=Halted"
    );
    assert_eq!(
        d.call("admin.vm.Remove", "dom0", "", b""),
        b"2\0QubesVMInUseError\0\0'dom0' cannot be removed\0"
    );
    assert_eq!(d.call("admin.vm.Remove", "fedora", "", b""), b"2\0QubesVMInUseError\0\0Domain is in use: 'fedora';  see 'journalctl -u qubesd -e' in dom0 for details\0");
    d.ok("admin.vm.Remove", "work", "", b"");
    d.ok("admin.vm.Remove", "fedora", "", b"");
    assert_eq!(d.ok("admin.vm.List", "dom0", "", b"").lines().count(), 1);
}

#[test]
fn non_dom0_callers() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.feature.Set",
        "work",
        "tag-created-vm-with",
        b"work-managed",
    );
    assert_eq!(
        d.call_from(
            "work",
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora",
            b"name=child label=green"
        ),
        b"0\0"
    );
    assert_eq!(
        d.ok("admin.vm.tag.List", "child", "", b""),
        "audiovm-dom0\ncreated-by-work\nguivm-dom0\nwork-managed\n"
    );
    assert_eq!(
        d.call_from("work", "admin.vm.tag.Remove", "child", "created-by-work", b""),
        b"2\0PermissionDenied\0\0changing this tag is prohibited by qubes.ext.admin.AdminExtension\0"
    );
    assert_eq!(
        d.call_from("work", "admin.vm.tag.Set", "child", "mine", b""),
        b"0\0"
    );
}

#[test]
fn event_order_and_filtering() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    let mut all = Events::open(&d, "dom0");
    let mut only_work = Events::open(&d, "work");
    d.ok("admin.vm.property.Set", "work", "label", b"blue");
    assert_eq!(
        all.next(),
        b"1\0work\0property-pre-set:label\0name\0label\0newvalue\0blue\0oldvalue\0red\0\0".to_vec()
    );
    assert_eq!(
        all.next(),
        b"1\0work\0property-reset:icon\0name\0icon\0\0".to_vec()
    );
    assert_eq!(
        all.next(),
        b"1\0work\0property-set:label\0name\0label\0newvalue\0blue\0oldvalue\0red\0\0".to_vec()
    );
    // A failed call delivers its pre-event only.
    assert!(
        d.call("admin.vm.property.Set", "work", "kernel", b"nosuch")
            .starts_with(b"2\0")
    );
    assert_eq!(
        all.next_text(),
        "work property-pre-set:kernel name=kernel newvalue=nosuch"
    );
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=sa label=red",
    );
    assert_eq!(all.next_text(), " domain-add vm=sa");
    assert_eq!(
        all.next_text(),
        "sa domain-tag-add:created-by-dom0 tag=created-by-dom0"
    );
    assert_eq!(all.next_text(), "sa domain-create-on-disk");
    d.ok("admin.vm.feature.Set", "work", "f", b"1");
    d.ok("admin.vm.feature.Set", "work", "f", b"2");
    for want in [
        "work domain-feature-pre-set:f feature=f value=1",
        "work domain-feature-set:f feature=f value=1",
        "work domain-feature-pre-set:f feature=f value=2 oldvalue=1",
        "work domain-feature-set:f feature=f value=2 oldvalue=1",
    ] {
        assert_eq!(all.next_text(), want);
    }
    d.ok("admin.vm.property.Reset", "work", "memory", b"");
    for ev in [
        "property-pre-reset",
        "property-pre-del",
        "property-reset",
        "property-del",
    ] {
        assert_eq!(
            all.next_text(),
            format!("work {ev}:memory name=memory oldvalue=400")
        );
    }
    d.ok("admin.vm.Remove", "sa", "", b"");
    assert_eq!(all.next_text(), " domain-pre-delete vm=sa");
    assert_eq!(all.next_text(), " domain-delete vm=sa");
    // The qube-only stream saw only work's events, in the same order.
    assert_eq!(
        only_work.next_text(),
        "work property-pre-set:label name=label newvalue=blue oldvalue=red"
    );
    only_work.next();
    only_work.next();
    assert_eq!(
        only_work.next_text(),
        "work property-pre-set:kernel name=kernel newvalue=nosuch"
    );
    assert_eq!(
        only_work.next_text(),
        "work domain-feature-pre-set:f feature=f value=1"
    );
}

#[test]
fn persistence_and_failed_calls() {
    let mut d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok("admin.vm.feature.Set", "work", "f", b"v<&>");
    d.ok("admin.vm.property.Set", "work", "kernelopts", b"x\ny");
    let xml = d.saved();
    assert!(xml.starts_with(
        "<qubes>\n  <labels>\n    <label id=\"label-1\" color=\"0xcc0000\">red</label>\n"
    ));
    assert!(xml.contains("    <domain id=\"domain-2\" class=\"AppVM\">\n      <properties>\n        <property name=\"label\">red</property>\n        <property name=\"name\">work</property>\n        <property name=\"qid\">2</property>\n"));
    assert!(xml.contains("        <property name=\"kernelopts\">x\ny</property>\n        <property name=\"template\">fedora</property>\n"));
    assert!(xml.contains("<feature name=\"f\">v&lt;&amp;&gt;</feature>"));
    assert!(xml.contains("<volume name=\"root\" pool=\"varlibqubes\" vid=\"appvms/work/root\" revisions_to_keep=\"0\" rw=\"True\" save_on_stop=\"False\" snap_on_start=\"True\" size=\"10737418240\" source=\"vm-templates/fedora/root\"/>"));
    // A failed call changes nothing on disk.
    assert!(
        d.call("admin.vm.property.Set", "work", "memory", b"-1")
            .starts_with(b"2\0")
    );
    assert!(
        d.call("admin.vm.Remove", "fedora", "", b"")
            .starts_with(b"2\0")
    );
    assert_eq!(d.saved(), xml);
    let before = d.ok("admin.vm.property.GetAll", "work", "", b"");
    let features = d.ok("admin.vm.feature.List", "work", "", b"");
    d.stop();
    assert!(!d.socket().exists(), "SIGTERM removes the sockets");
    d.spawn().unwrap();
    assert_eq!(d.ok("admin.vm.property.GetAll", "work", "", b""), before);
    assert_eq!(d.ok("admin.vm.feature.List", "work", "", b""), features);
    assert_eq!(d.ok("admin.vm.feature.Get", "work", "f", b""), "v<&>");
    d.ok("admin.vm.tag.Set", "work", "t", b"");
    let xml2 = d.saved();
    d.stop();
    d.spawn().unwrap();
    d.ok("admin.vm.tag.Remove", "work", "t", b"");
    d.ok("admin.vm.tag.Set", "work", "t", b"");
    assert_eq!(d.saved(), xml2, "load -> save is stable");
}

#[test]
fn corrupt_store_stops_startup_untouched() {
    let mut d = TestDaemon::start();
    d.stop();
    let corrupt = b"<qubes><domains><domain class=\"AppVM\">".to_vec();
    std::fs::write(d.store(), &corrupt).unwrap();
    let err = d.spawn().unwrap_err();
    assert!(err.contains("qubes.xml"), "{err}");
    assert_eq!(std::fs::read(d.store()).unwrap(), corrupt);
}

#[test]
fn second_daemon_refuses_live_sockets() {
    let d = TestDaemon::start();
    let mut second = TestDaemon {
        dir: tempfile::tempdir().unwrap(),
        child: None,
    };
    // Same socket dir, other state dir: the live socket is detected.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qubesd"))
        .arg("--state-dir")
        .arg(second.dir.path())
        .arg("--socket-dir")
        .arg(d.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another daemon is listening"));
    assert!(d.ok("admin.vm.List", "dom0", "", b"").starts_with("dom0"));
    second.kill9();
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn stale_socket_is_replaced() {
    let mut d = TestDaemon::start();
    d.kill9();
    assert!(d.socket().exists(), "kill -9 leaves the socket behind");
    d.spawn().unwrap();
    assert!(d.ok("admin.vm.List", "dom0", "", b"").starts_with("dom0"));
}

#[test]
fn disposables() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    assert_eq!(d.call("admin.vm.CreateDisposable", "work", "", b""), b"2\0QubesException\0\0Refusing to create disposable out of app qube which has template_for_dispvms=False\0");
    assert_eq!(
        d.call("admin.vm.CreateDisposable", "work", "x", b""),
        b"2\0PermissionDenied\0\0Argument not in \"'', 'preload'\"\0"
    );
    d.ok(
        "admin.vm.property.Set",
        "work",
        "template_for_dispvms",
        b"True",
    );
    d.ok("admin.vm.feature.Set", "work", "f", b"1");
    let name = d.ok("admin.vm.CreateDisposable", "work", "", b"");
    assert!(name.starts_with("disp"), "{name}");
    let all = d.ok("admin.vm.property.GetAll", &name, "", b"");
    assert!(all.starts_with("auto_cleanup default=False type=bool True\n"));
    assert!(all.contains(&format!("\ndispid default=False type=int {}\n", &name[4..])));
    assert!(all.contains("\nlabel default=False type=label red\n"));
    assert!(all.contains("\ntemplate default=False type=vm work\n"));
    assert_eq!(d.ok("admin.vm.feature.Get", &name, "f", b""), "1");
    assert!(
        d.ok("admin.vm.tag.List", &name, "", b"")
            .contains("disp-created-by-dom0\n")
    );
    let with_uuid = d.ok("admin.vm.CreateDisposable", "work", "", b"uuid");
    assert!(
        with_uuid.starts_with("uuid:") && with_uuid.len() == 41,
        "{with_uuid}"
    );
    assert_eq!(
        d.call("admin.vm.property.Set", "work", "template_for_dispvms", b"False"),
        b"2\0QubesVMInUseError\0\0Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template\0"
    );
}

#[test]
fn reference_style_store_loads_and_round_trips() {
    let mut d = TestDaemon::start();
    d.stop();
    let fixture = include_str!("fixtures/reference-style-qubes.xml");
    std::fs::write(d.store(), fixture).unwrap();
    d.spawn().unwrap();
    let list = d.ok("admin.vm.List", "dom0", "", b"");
    let names: Vec<&str> = list.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["dom0", "fedora-41", "sys-net", "work-dvm"]);
    // label-N references, ref= attributes, the legacy dispvm_allowed, the grey migration.
    assert_eq!(
        d.ok("admin.vm.property.Get", "sys-net", "label", b""),
        "default=False type=label red"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "sys-net", "template", b""),
        "default=False type=vm fedora-41"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "sys-net", "netvm", b""),
        "default=False type=vm "
    );
    assert_eq!(
        d.ok(
            "admin.vm.property.Get",
            "work-dvm",
            "template_for_dispvms",
            b""
        ),
        "default=False type=bool True"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work-dvm", "label", b""),
        "default=False type=label sky"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work-dvm", "kernelopts", b""),
        "default=False type=str nopat\nsplash"
    );
    assert_eq!(
        d.ok("admin.vm.property.Get", "work-dvm", "netvm", b""),
        "default=True type=vm sys-net"
    );
    assert_eq!(d.ok("admin.label.Get", "dom0", "gray", b""), "0x555555");
    assert_eq!(
        d.ok("admin.property.Get", "dom0", "clockvm", b""),
        "default=False type=vm sys-net"
    );
    assert_eq!(
        d.ok("admin.property.Get", "dom0", "default_pool", b""),
        "default=False type=str lvm"
    );
    assert_eq!(
        d.ok("admin.vm.feature.List", "sys-net", "", b""),
        "servicevm\nservice.clocksync\n"
    );
    assert_eq!(
        d.ok(
            "admin.vm.feature.Get",
            "dom0",
            "gui-default-secure-copy-sequence",
            b""
        ),
        "Ctrl-Shift-c"
    );

    // load -> save -> load: write it out (a harmless change and back), restart, compare.
    let before: Vec<String> = ["dom0", "fedora-41", "sys-net", "work-dvm"]
        .iter()
        .map(|q| {
            d.ok("admin.vm.property.GetAll", q, "", b"")
                + &d.ok("admin.vm.feature.List", q, "", b"")
                + &d.ok("admin.vm.tag.List", q, "", b"")
        })
        .collect();
    d.ok("admin.vm.tag.Set", "work-dvm", "x", b"");
    d.ok("admin.vm.tag.Remove", "work-dvm", "x", b"");
    let saved = d.saved();
    for kept in [
        "<pool name=\"lvm\" driver=\"lvm_thin\" volume_group=\"qubes_dom0\" thin_pool=\"vm-pool\" revisions_to_keep=\"2\" ephemeral_volatile=\"False\"/>",
        "<device backend-domain=\"dom0\" id=\"00_14.3\" mode=\"required\" identity=\"8086:a0f0::p028000\">\n          <option name=\"no-strict-reset\">True</option>\n        </device>",
        "<devices class=\"usb\"/>",
        "size=\"10737418240\" ephemeral=\"True\"/>",
        "<property name=\"template_for_dispvms\">True</property>",
        "<property name=\"kernelopts\">nopat\nsplash</property>",
        "<label id=\"label-9\" color=\"0x00aaff\">sky</label>",
    ] {
        assert!(saved.contains(kept), "lost on save: {kept}");
    }
    d.stop();
    d.spawn().unwrap();
    let after: Vec<String> = ["dom0", "fedora-41", "sys-net", "work-dvm"]
        .iter()
        .map(|q| {
            d.ok("admin.vm.property.GetAll", q, "", b"")
                + &d.ok("admin.vm.feature.List", q, "", b"")
                + &d.ok("admin.vm.tag.List", q, "", b"")
        })
        .collect();
    assert_eq!(before, after);
    d.ok("admin.vm.tag.Set", "work-dvm", "x", b"");
    d.ok("admin.vm.tag.Remove", "work-dvm", "x", b"");
    assert_eq!(d.saved(), saved, "the second save is identical");
}
