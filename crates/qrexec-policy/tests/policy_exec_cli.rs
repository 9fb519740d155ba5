//! `qrexec-policy-exec` test mode as a subprocess: stdout, exit status, notification lines.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const INFO: &str = r#"{"domains": {
  "dom0": {"internal": null, "tags": ["dom0-tag"], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "adminvm-black", "label": "black", "guivm": null, "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000"},
  "test-vm1": {"internal": null, "tags": ["tag1", "tag2"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "c9024a97-9b15-46cc-8341-38d75d5d421b"},
  "test-vm2": {"internal": "", "tags": ["tag2"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "b3eb69d0-f9d9-4c3c-ad5c-454500303ea4"},
  "default-dvm": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": true, "default_dispvm": "default-dvm", "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "f3e538bd-4427-4697-bed7-45ef3270df21"},
  "remote": {"internal": null, "tags": [], "type": "RemoteVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "remotevm-red", "label": "red", "guivm": null, "relayvm": "test-vm2", "transport_rpc": "qubesair.SSHProxy", "power_state": "Running", "uuid": "9e3c1d2b-0000-4000-8000-000000000001"}
}}"#;

struct Env {
    _t: tempfile::TempDir,
    dir: std::path::PathBuf,
    info: std::path::PathBuf,
}

fn env(policy: &str) -> Env {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policy.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(t.path().join("legacy")).unwrap();
    std::fs::write(dir.join("30-user.policy"), policy).unwrap();
    let info = t.path().join("info.json");
    std::fs::write(&info, INFO).unwrap();
    Env { dir, info, _t: t }
}

fn run(e: &Env, flags: &[&str], src: &str, target: &str, svc: &str) -> (String, Vec<String>, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_qrexec-policy-exec"))
        .arg("--policy-dir")
        .arg(&e.dir)
        .arg("--legacy-policy-dir")
        .arg(e.dir.parent().unwrap().join("legacy"))
        .arg("--system-info")
        .arg(&e.info)
        .args(flags)
        .args([src, target, svc])
        .output()
        .unwrap();
    let notes = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("policy.Notify "))
        .map(str::to_string)
        .collect();
    (
        String::from_utf8(out.stdout).unwrap(),
        notes,
        out.status.code().unwrap(),
    )
}

#[test]
fn modes() {
    let e = env(
        "test.Svc * test-vm1 test-vm2 allow notify=yes\ntest.Svc * test-vm1 @anyvm ask default_target=test-vm2\ntest.Svc * @anyvm @anyvm deny\n",
    );
    let (out, notes, code) = run(&e, &[], "test-vm1", "test-vm2", "test.Svc+arg");
    assert_eq!(
        out,
        "user=DEFAULT\nresult=allow\ntarget=test-vm2\ntarget_uuid=uuid:b3eb69d0-f9d9-4c3c-ad5c-454500303ea4\nautostart=True\nrequested_target=test-vm2\n"
    );
    assert_eq!(
        notes,
        [
            "policy.Notify guivm=dom0 resolution=allow service=test.Svc argument=+arg source=test-vm1 target=test-vm2"
        ]
    );
    assert_eq!(code, 0);
    assert_eq!(
        run(&e, &["--just-evaluate"], "test-vm1", "test-vm2", "test.Svc"),
        ("result=allow\n".into(), vec![], 0)
    );
    // ask (plain): the block with sorted candidates.
    let (out, _, code) = run(&e, &[], "test-vm1", "@dispvm", "test.Svc");
    assert_eq!(
        out,
        "result=ask\ntargets=@dispvm:default-dvm,default-dvm,remote,test-vm2\ndefault_target=test-vm2\n"
    );
    assert_eq!(code, 1);
    assert_eq!(
        run(&e, &["--just-evaluate"], "test-vm1", "@dispvm", "test.Svc").0,
        "result=deny\n"
    );
    // assume-yes answers for the intended target when it is a candidate.
    let (out, _, code) = run(
        &e,
        &["--assume-yes-for-ask"],
        "test-vm1",
        "default-dvm",
        "test.Svc",
    );
    assert!(
        out.starts_with("user=DEFAULT\nresult=allow\ntarget=default-dvm\n"),
        "{out}"
    );
    assert_eq!(code, 0);
    let (out, notes, _) = run(
        &e,
        &["--assume-yes-for-ask"],
        "test-vm1",
        "@dispvm",
        "test.Svc",
    );
    assert_eq!(out, "result=deny\n");
    assert_eq!(
        notes,
        [
            "policy.Notify guivm=dom0 resolution=deny service=test.Svc argument=+ source=test-vm1 target=@dispvm"
        ]
    );
    // deny rule: notification to the source's GUI qube, TARGET as given.
    let (out, notes, code) = run(&e, &[], "test-vm2", "test-vm1", "test.Svc+x");
    assert_eq!((out.as_str(), code), ("result=deny\n", 1));
    assert_eq!(
        notes,
        [
            "policy.Notify guivm=dom0 resolution=deny service=test.Svc argument=+x source=test-vm2 target=test-vm1"
        ]
    );
    // an invalid intended target token: denied without notification.
    assert_eq!(
        run(&e, &[], "test-vm1", "@anyvm", "test.Svc"),
        ("result=deny\n".into(), vec![], 1)
    );
}

#[test]
fn loading_failures_and_relays() {
    let e = env("test.Svc * @anyvm @anyvm allow\nbroken\n");
    assert_eq!(
        run(&e, &[], "test-vm1", "test-vm2", "test.Svc"),
        ("result=deny\n".into(), vec![], 1),
        "syntax errors do not notify"
    );
    let e = env("test.Svc * @anyvm @anyvm allow\n");
    std::fs::write(e.dir.join("Bad.policy"), "").unwrap();
    let (out, notes, _) = run(&e, &[], "test-vm1", "test-vm2", "test.Svc");
    assert_eq!(out, "result=deny\n");
    assert_eq!(notes.len(), 1, "an unreadable policy notifies");
    let e = env("test.Svc * remote test-vm1 allow\ntest.Svc * test-vm1 remote allow\n");
    let (out, _, code) = run(
        &e,
        &["--requested-source", "remote"],
        "test-vm2",
        "test-vm1",
        "test.Svc+a",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("requested_target=test-vm1\npolicy_source=remote\n"),
        "{out}"
    );
    assert_eq!(
        run(
            &e,
            &["--requested-source", "remote"],
            "test-vm1",
            "test-vm2",
            "test.Svc"
        )
        .0,
        "result=deny\n",
        "test-vm1 is not the relay"
    );
    let (out, _, _) = run(&e, &[], "test-vm1", "remote", "test.Svc+a");
    assert_eq!(
        out,
        "user=DEFAULT\nresult=allow\ntarget=test-vm2\ntarget_uuid=uuid:b3eb69d0-f9d9-4c3c-ad5c-454500303ea4\nautostart=True\nrequested_target=remote\nservice=qubesair.SSHProxy+remote+test.Svc+a\n"
    );
}
