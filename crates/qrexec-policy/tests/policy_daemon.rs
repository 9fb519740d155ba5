//! `qrexec-policy-daemon` over its socket: request lines in, result text out.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn ask(socket: &std::path::Path, req: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn answers_requests() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policy.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("30-user.policy"),
        "svc * work vault allow\nsvc * @anyvm @anyvm deny\n",
    )
    .unwrap();
    let info = t.path().join("info.json");
    std::fs::write(&info, r#"{"domains": {"dom0": {"tags": [], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000", "internal": null, "guivm": null, "relayvm": null, "transport_rpc": null}, "work": {"tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "power_state": "Running", "uuid": "a1", "internal": null, "guivm": null, "relayvm": null, "transport_rpc": null}, "vault": {"tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "power_state": "Halted", "uuid": "a2", "internal": null, "guivm": null, "relayvm": null, "transport_rpc": null}}}"#).unwrap();
    let socket = t.path().join("policy.sock");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_qrexec-policy-daemon"))
        .arg("--socket")
        .arg(&socket)
        .arg("--policy-dir")
        .arg(&dir)
        .arg("--legacy-policy-dir")
        .arg(t.path())
        .arg("--system-info")
        .arg(&info)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        ask(
            &socket,
            "source=work\nintended_target=vault\nservice_and_arg=svc+x\n\n"
        ),
        "user=DEFAULT\nresult=allow\ntarget=vault\ntarget_uuid=uuid:a2\nautostart=True\nrequested_target=vault"
    );
    assert_eq!(
        ask(
            &socket,
            "source=work\nintended_target=vault\nservice_and_arg=svc\njust_evaluate=yes\n"
        ),
        "result=allow"
    );
    assert_eq!(
        ask(
            &socket,
            "source=vault\nintended_target=work\nservice_and_arg=svc\n"
        ),
        "result=deny"
    );
    assert_eq!(
        ask(&socket, "source=work\nintended_target=vault\n"),
        "",
        "missing key: no answer"
    );
    assert_eq!(
        ask(
            &socket,
            "source=work\nintended_target=vault\nservice_and_arg=svc\ndomain_id=3\n"
        ),
        ""
    );
    let _ = child.kill();
    let _ = child.wait();
}
