//! The internal and misc sockets as the reference answers: internal.GetSystemInfo,
//! qubes.NotifyUpdates, qubes.FeaturesRequest / qubes.NotifyTools (reading the caller's
//! QubesDB: the peer here is a QubesDB daemon written in the test, speaking the
//! qubesdb-daemon protocol on the socket qubesd is configured to use), and the host's
//! suspend and resume (with a qrexec-client written in the test that records its calls).
//! Events are shown with `|` for NUL.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Events, TestDaemon};

fn exc(kind: &str, msg: &str) -> Vec<u8> {
    format!("2\0{kind}\0\0{msg}\0").into_bytes()
}

fn uuid(d: &TestDaemon, vm: &str) -> String {
    d.ok("admin.vm.List", vm, "", b"")
        .trim_end()
        .rsplit("uuid=")
        .next()
        .unwrap()
        .to_string()
}

fn misc(d: &TestDaemon) -> PathBuf {
    d.dir.path().join("qubesd.misc.sock")
}

fn internal(d: &TestDaemon) -> PathBuf {
    d.dir.path().join("qubesd.internal.sock")
}

fn call_on(d: &TestDaemon, sock: &Path, src: &str, method: &str, payload: &[u8]) -> Vec<u8> {
    d.raw_on(
        sock,
        &qubes_api::Request::encode(method, "", src, "dom0", payload),
    )
}

#[test]
fn system_info_json_in_the_reference_key_order() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.Create.RemoteVM",
        "dom0",
        "",
        b"name=rem label=purple",
    );
    d.ok("admin.vm.feature.Set", "work", "internal", b"1");
    d.ok("admin.vm.property.Set", "rem", "relayvm", b"work");
    let (f, w, r) = (uuid(&d, "fedora"), uuid(&d, "work"), uuid(&d, "rem"));
    let info = call_on(&d, &internal(&d), "dom0", "internal.GetSystemInfo", b"");
    let entry = |internal: &str,
                 tags: &str,
                 ty: &str,
                 icon: &str,
                 label: &str,
                 guivm: &str,
                 relayvm: &str,
                 power: &str,
                 uuid: &str| {
        format!(
            "{{\"internal\": {internal}, \"tags\": [{tags}], \"type\": \"{ty}\", \"template_for_dispvms\": false, \"default_dispvm\": null, \"icon\": \"{icon}\", \"label\": \"{label}\", \"guivm\": {guivm}, \"relayvm\": {relayvm}, \"transport_rpc\": null, \"power_state\": \"{power}\", \"uuid\": \"{uuid}\"}}"
        )
    };
    let gui_tags = "\"audiovm-dom0\", \"created-by-dom0\", \"guivm-dom0\"";
    let want = format!(
        "0\0{{\"domains\": {{\"dom0\": {}, \"fedora\": {}, \"rem\": {}, \"work\": {}}}}}",
        entry(
            "null",
            "",
            "AdminVM",
            "appvm-black",
            "0x000000",
            "null",
            "null",
            "Running",
            "00000000-0000-0000-0000-000000000000"
        ),
        entry(
            "null",
            gui_tags,
            "TemplateVM",
            "appvm-black",
            "0x000000",
            "\"dom0\"",
            "null",
            "Halted",
            &f
        ),
        entry(
            "null",
            "\"created-by-dom0\", \"relayvm-work\"",
            "RemoteVM",
            "appvm-purple",
            "0x75507b",
            "null",
            "\"work\"",
            "Running",
            &r
        ),
        entry(
            "\"1\"",
            gui_tags,
            "AppVM",
            "appvm-red",
            "0xcc0000",
            "\"dom0\"",
            "null",
            "Halted",
            &w
        ),
    );
    assert_eq!(String::from_utf8(info).unwrap(), want);
}

fn is_local_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn notify_updates_reaches_the_updateable_template_in_local_time() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.property.Set",
        "work",
        "template_for_dispvms",
        b"True",
    );
    let disp = d.ok("admin.vm.CreateDisposable", "work", "", b"");
    let sock = misc(&d);
    // No updates from a template-based qube tells nothing.
    assert_eq!(
        call_on(&d, &sock, "work", "qubes.NotifyUpdates", b"0\n"),
        b"0\0"
    );
    assert_eq!(d.ok("admin.vm.feature.List", "fedora", "", b""), "");
    // A disposable's report goes through its disposable template to the template.
    assert_eq!(
        call_on(&d, &sock, &disp, "qubes.NotifyUpdates", b"3"),
        b"0\0"
    );
    assert_eq!(
        d.ok("admin.vm.feature.Get", "fedora", "updates-available", b""),
        "1"
    );
    let checked = d.ok("admin.vm.feature.Get", "fedora", "last-updates-check", b"");
    assert!(is_local_datetime(&checked), "{checked}");
    assert_eq!(d.ok("admin.vm.feature.List", "work", "", b""), "");
    // An updateable qube reports for itself; updates gone: last-update too.
    let mut ev = Events::open(&d, "dom0");
    assert_eq!(
        call_on(&d, &sock, "fedora", "qubes.NotifyUpdates", b"0"),
        b"0\0"
    );
    let events = ev.drain(&d, "work");
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.split('|').nth(2).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "domain-feature-pre-set:last-update",
            "domain-feature-set:last-update",
            "domain-feature-pre-set:updates-available",
            "domain-feature-set:updates-available",
            "domain-feature-pre-set:last-updates-check",
            "domain-feature-set:last-updates-check",
        ]
    );
    assert_eq!(
        d.ok("admin.vm.feature.Get", "fedora", "updates-available", b""),
        ""
    );
    d.ok(
        "admin.vm.Create.RemoteVM",
        "dom0",
        "",
        b"name=rem label=purple",
    );
    assert_eq!(
        call_on(&d, &sock, "rem", "qubes.NotifyUpdates", b"1"),
        exc("QubesVMError", "A RemoteVM cannot report updates")
    );
}

/// A QubesDB daemon for one qube, serving `entries` on `<dir>/qubesdb.<vm>.sock` with the
/// qubesdb-daemon protocol (72-byte headers), a watch notification before each answer.
fn qubesdb_peer(dir: &Path, vm: &str, entries: BTreeMap<String, Vec<u8>>) {
    std::fs::create_dir_all(dir).unwrap();
    let listener = UnixListener::bind(dir.join(format!("qubesdb.{vm}.sock"))).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let entries = entries.clone();
            std::thread::spawn(move || serve_qubesdb(&mut c, &entries));
        }
    });
}

fn header(ty: u8, path: &str, len: u32) -> [u8; 72] {
    let mut h = [0u8; 72];
    h[0] = ty;
    h[1..1 + path.len()].copy_from_slice(path.as_bytes());
    h[68..].copy_from_slice(&len.to_ne_bytes());
    h
}

fn serve_qubesdb(c: &mut UnixStream, entries: &BTreeMap<String, Vec<u8>>) {
    loop {
        let mut h = [0u8; 72];
        if c.read_exact(&mut h).is_err() {
            return;
        }
        let end = h[1..65].iter().position(|b| *b == 0).unwrap();
        let path = std::str::from_utf8(&h[1..1 + end]).unwrap().to_string();
        assert_eq!(u32::from_ne_bytes(h[68..72].try_into().unwrap()), 0);
        c.write_all(&header(13, "/watched", 0)).unwrap();
        match h[0] {
            // READ
            0 => match entries.get(&path) {
                Some(v) => {
                    c.write_all(&header(10, &path, v.len() as u32)).unwrap();
                    c.write_all(v).unwrap();
                }
                None => c.write_all(&header(8, &path, 0)).unwrap(),
            },
            // LIST
            3 => {
                for k in entries.keys().filter(|k| k.starts_with(&path)) {
                    c.write_all(&header(12, k, 0)).unwrap();
                }
                c.write_all(&header(12, "", 0)).unwrap();
            }
            other => panic!("unexpected command {other}"),
        }
    }
}

fn entries(kv: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn features_request_reads_the_callers_qubesdb() {
    let d = TestDaemon::start();
    d.ok(
        "admin.vm.Create.TemplateVM",
        "dom0",
        "",
        b"name=fedora label=black",
    );
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=work label=red",
    );
    let sock = misc(&d);
    let qdb = d.dir.path().join("qubesdb");
    // No QubesDB: a clear refusal instead of the reference's failure without a reply.
    let no_qdb = call_on(&d, &sock, "fedora", "qubes.FeaturesRequest", b"");
    assert!(
        no_qdb.starts_with(
            b"2\0QubesException\0\0The QubesDB of fedora cannot be read (is the qube running?): "
        ),
        "{}",
        String::from_utf8_lossy(&no_qdb)
    );
    qubesdb_peer(
        &qdb,
        "fedora",
        entries(&[
            ("/features-request/boot-mode.active", "default"),
            ("/features-request/gui", "1"),
            ("/features-request/os-distribution", "fedora"),
            ("/features-request/os-eol", "2026-13-01"),
            ("/features-request/os-version", "41"),
            ("/features-request/qrexec", "1"),
            ("/features-request/supported-rpc.qubes.WaitForSession", "1"),
            ("/features-request/supported-service.apparmor", "1"),
            ("/qubes-tools/os", "Windows"),
        ]),
    );
    let mut ev = Events::open(&d, "dom0");
    assert_eq!(
        call_on(&d, &sock, "fedora", "qubes.FeaturesRequest", b""),
        b"0\0"
    );
    let set = |f: &str, v: &str| {
        [
            format!("1|fedora|domain-feature-pre-set:{f}|feature|{f}|value|{v}||"),
            format!("1|fedora|domain-feature-set:{f}|feature|{f}|value|{v}||"),
        ]
    };
    let mut want: Vec<String> = Vec::new();
    want.extend(set("supported-rpc.qubes.WaitForSession", "1"));
    want.extend(set("supported-service.apparmor", "1"));
    want.extend(set("apparmor", "1"));
    want.push("1|fedora|features-request|untrusted_features|{'boot-mode.active': 'default', 'gui': '1', 'os-distribution': 'fedora', 'os-eol': '2026-13-01', 'os-version': '41', 'qrexec': '1', 'supported-rpc.qubes.WaitForSession': '1', 'supported-service.apparmor': '1'}||".into());
    want.extend(set("os-distribution", "fedora"));
    want.extend(set("os-version", "41"));
    // An impossible end-of-life date is ignored. The active boot mode is bootmode's
    // default.
    want.push(set("boot-mode.active", "default")[0].clone());
    want.push("1|fedora|property-reset:bootmode|name|bootmode||".into());
    want.push(set("boot-mode.active", "default")[1].clone());
    want.extend(set("qrexec", "1"));
    want.extend(set("gui", "1"));
    want.push("1|fedora|template-postinstall||".into());
    assert_eq!(ev.drain(&d, "work"), want);
    // A value outside the safe set is refused, and nothing changes.
    qubesdb_peer(
        &qdb,
        "work",
        entries(&[
            ("/features-request/qrexec", "1;"),
            ("/qubes-tools/os", "Win-dows"),
        ]),
    );
    assert_eq!(
        call_on(&d, &sock, "work", "qubes.FeaturesRequest", b""),
        exc(
            "ProtocolError",
            "Value outside safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.,_= "
        )
    );
    assert_eq!(
        call_on(&d, &sock, "work", "qubes.NotifyTools", b""),
        exc(
            "ProtocolError",
            "Value outside safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        )
    );
    // NotifyTools: the Windows tools' keys, as a request.
    ev.drain(&d, "work");
    assert_eq!(
        call_on(&d, &sock, "fedora", "qubes.NotifyTools", b""),
        b"0\0"
    );
    let events = ev.drain(&d, "work");
    assert!(
        events.contains(
            &"1|fedora|features-request|untrusted_features|{'os': 'Windows'}||".to_string()
        ),
        "{events:?}"
    );
    assert_eq!(d.ok("admin.vm.feature.Get", "fedora", "os", b""), "Windows");
    // The generic checks come first.
    assert_eq!(
        d.raw_on(
            &sock,
            &qubes_api::Request::encode("qubes.FeaturesRequest", "", "fedora", "work", b"")
        ),
        exc("ProtocolError", "expected destination to be AdminVM")
    );
}

/// Waits until `vm` is in `state`.
fn wait_state(d: &TestDaemon, vm: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = d.ok("admin.vm.List", vm, "", b"");
        if line.contains(&format!(" state={state} ")) {
            return;
        }
        assert!(Instant::now() < deadline, "{vm}: {line}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn suspend_keeps_paused_qubes_paused_and_tells_the_others() {
    use std::os::unix::fs::PermissionsExt;
    let d = TestDaemon::start();
    for q in ["busy", "idle", "off"] {
        d.ok(
            "admin.vm.Create.StandaloneVM",
            "dom0",
            "",
            format!("name={q} label=red").as_bytes(),
        );
    }
    for q in ["busy", "idle"] {
        d.ok("admin.vm.Start", q, "", b"");
    }
    d.ok("admin.vm.Pause", "idle", "", b"");
    // busy has qrexec (the feature, and the agent's connection marker); its service runs
    // through our qrexec-client, which records what it was asked.
    d.ok("admin.vm.feature.Set", "busy", "qrexec", b"1");
    let run = d.dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("qrexec.busy"), b"").unwrap();
    let calls = d.dir.path().join("qrexec-calls");
    let client = d.dir.path().join("qrexec-client");
    std::fs::write(
        &client,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    let int = internal(&d);
    assert_eq!(
        call_on(&d, &int, "dom0", "internal.SuspendPre", b""),
        b"0\0"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("previously-paused.list")).unwrap(),
        "idle"
    );
    wait_state(&d, "busy", "Paused");
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "-d busy root:QUBESRPC qubes.SuspendPreAll dom0\n"
    );
    assert_eq!(
        call_on(&d, &int, "dom0", "internal.SuspendPost", b""),
        b"0\0"
    );
    wait_state(&d, "busy", "Running");
    wait_state(&d, "idle", "Paused");
    wait_state(&d, "off", "Halted");
    assert!(!run.join("previously-paused.list").exists());
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "-d busy root:QUBESRPC qubes.SuspendPreAll dom0\n-d busy root:QUBESRPC qubes.SuspendPostAll dom0\n"
    );
    assert_eq!(
        d.raw_on(
            &int,
            &qubes_api::Request::encode("internal.SuspendPre", "", "dom0", "busy", b"")
        ),
        exc("ProtocolError", "expected destination to be AdminVM")
    );
}

#[test]
fn dom0_without_a_reachable_qubesdb_requests_nothing() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    let sock = misc(&d);
    let mut ev = Events::open(&d, "dom0");
    for method in ["qubes.FeaturesRequest", "qubes.NotifyTools"] {
        assert_eq!(call_on(&d, &sock, "dom0", method, b""), b"0\0");
        assert_eq!(
            ev.drain(&d, "work"),
            ["1|dom0|features-request|untrusted_features|{}||"]
        );
    }
    // A qube's missing QubesDB is still a refusal.
    assert!(
        call_on(&d, &sock, "work", "qubes.FeaturesRequest", b"")
            .starts_with(b"2\0QubesException\0\0The QubesDB of work cannot be read")
    );
}
