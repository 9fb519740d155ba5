//! What qubesd writes to its log: no colour codes when stderr is not a terminal (the journal,
//! a file), and no INFO line for the refusals clients expect all day long (a feature that is
//! not set, a property without a value): one start of the PyQt Qube Manager with 1000 qubes
//! used to write 5,000 of them.

// Tests may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn expected_refusals_are_not_logged_at_info_and_logs_carry_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_qubesd"))
        .args(["--libvirt-uri", "test:///default", "--log-level", "info"])
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--socket-dir")
        .arg(dir.path())
        .arg("--policy-dir")
        .arg(dir.path().join("policy.d"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = dir.path().join("qubesd.sock");
    let t = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let call = |method: &str, dest: &str, arg: &str, payload: &[u8]| {
        let req = qubes_api::Request::encode(method, arg, "dom0", dest, payload);
        qubes_api::client::call_raw(&socket, &req).unwrap()
    };
    let created = call("admin.vm.Create.AppVM", "dom0", "", b"name=work label=red");
    assert!(created.starts_with(b"2\0"), "no template yet: refused");
    call(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=work label=red",
    );
    for _ in 0..20 {
        let r = call("admin.vm.feature.Get", "work", "no-such-feature", b"");
        assert!(r.starts_with(b"2\0QubesFeatureNotFoundError\0"));
        let r = call("admin.vm.property.GetDefault", "work", "template", b"");
        assert!(r.starts_with(b"2\0"), "{}", String::from_utf8_lossy(&r));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id().cast_signed(), libc::SIGTERM) };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.wait().unwrap();
    assert!(!log.contains('\x1b'), "colour codes in a log file:\n{log}");
    assert!(log.contains("qubesd ready"), "{log}");
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("feature.Get"))
        .collect();
    assert!(noisy.is_empty(), "expected refusals at INFO: {noisy:?}");
}
