//! `qrexec-policy-daemon` and `qrexec-policy-exec` put an ask to the agent of the source's GUI
//! domain and apply its answer; denials and `notify=yes` allows go out as `policy.Notify`.
//! The bytes on the wire are the reference's (`qrexec/server.py`): checked here at the
//! agent's sockets (dom0) and at the qrexec client's command line and stdin (a GUI qube).

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const INFO: &str = r#"{"domains": {
 "dom0": {"internal": null, "tags": [], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "adminvm-black", "label": "black", "guivm": null, "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000"},
 "work": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000001-1111-4222-8333-000000000001"},
 "personal": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-yellow", "label": "yellow", "guivm": "sys-gui", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000003-1111-4222-8333-000000000003"},
 "vault": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-black", "label": "black", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000005-1111-4222-8333-000000000005"},
 "default-dvm": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": true, "default_dispvm": "default-dvm", "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000004-1111-4222-8333-000000000004"}
}}"#;

const POLICY: &str = "qubes.FileCopy * @anyvm @anyvm ask default_target=vault notify=yes\nqubes.Quiet * @anyvm @anyvm ask\n";

/// One socket of dom0's agent: every request it gets is reported, answered with `answer`.
fn listen(path: &Path, answer: &'static str) -> mpsc::Receiver<Vec<u8>> {
    let listener = UnixListener::bind(path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn: UnixStream = conn.unwrap();
            let mut buf = Vec::new();
            conn.read_to_end(&mut buf).unwrap();
            conn.write_all(answer.as_bytes()).unwrap();
            let _ = tx.send(buf);
        }
    });
    rx
}

struct Env {
    _t: tempfile::TempDir,
    root: PathBuf,
}

fn env() -> Env {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    for d in ["policy.d", "legacy", "rpc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("policy.d/30-user.policy"), POLICY).unwrap();
    std::fs::write(root.join("info.json"), INFO).unwrap();
    Env { _t: t, root }
}

fn ask_daemon(socket: &Path, req: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

const ASK_JSON: &str = r#"{"source": "work", "service": "qubes.FileCopy", "argument": "+", "targets": ["@dispvm:default-dvm", "default-dvm", "personal", "vault"], "default_target": "vault", "icons": {"@dispvm:default-dvm": "dispvm-red", "default-dvm": "appvm-red", "dom0": "adminvm-black", "personal": "appvm-yellow", "vault": "appvm-black", "work": "appvm-blue"}}"#;

#[test]
fn the_daemon_asks_dom0s_agent_and_applies_the_answer() {
    let e = env();
    let asks = listen(&e.root.join("rpc/policy.Ask"), "allow:default-dvm");
    let notes = listen(&e.root.join("rpc/policy.Notify"), "");
    let socket = e.root.join("policy.sock");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_qrexec-policy-daemon"))
        .arg("--socket")
        .arg(&socket)
        .arg("--policy-dir")
        .arg(e.root.join("policy.d"))
        .arg("--legacy-policy-dir")
        .arg(e.root.join("legacy"))
        .arg("--system-info")
        .arg(e.root.join("info.json"))
        .arg("--agent-rpc-dir")
        .arg(e.root.join("rpc"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the daemon listens");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = ask_daemon(
        &socket,
        "source=work\nintended_target=vault\nservice_and_arg=qubes.FileCopy\n\n",
    );
    let got = asks.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        String::from_utf8(got).unwrap(),
        format!("policy.Ask dom0 name dom0\0{ASK_JSON}")
    );
    // The chosen target, not the intended one; the rule's notify=yes reports the allow.
    assert_eq!(
        answer,
        "user=DEFAULT\nresult=allow\ntarget=default-dvm\ntarget_uuid=uuid:00000004-1111-4222-8333-000000000004\nautostart=True\nrequested_target=vault"
    );
    let note = notes.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        String::from_utf8(note).unwrap(),
        "policy.Notify dom0 name dom0\0{\"resolution\": \"allow\", \"service\": \"qubes.FileCopy\", \"argument\": \"+\", \"source\": \"work\", \"target\": \"default-dvm\"}"
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn exec_asks_a_gui_qube_through_qrexec_client() {
    let e = env();
    // Stands in for dom0's qrexec-client (not on this machine): records its arguments and
    // stdin and answers as the GUI qube's agent would.
    let client = e.root.join("qrexec-client");
    let log = e.root.join("client.log");
    std::fs::write(
        &client,
        format!(
            "#!/bin/sh\nprintf '%s|' \"$@\" >> {log}\necho >> {log}\ncat >> {log}\necho >> {log}\ncase \"$3\" in *policy.Ask*) printf \"$ANSWER\";; esac\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&client)
        .status()
        .unwrap();
    let run = |answer: &str, service: &str| {
        let _ = std::fs::remove_file(&log);
        let out = Command::new(env!("CARGO_BIN_EXE_qrexec-policy-exec"))
            .arg("--policy-dir")
            .arg(e.root.join("policy.d"))
            .arg("--legacy-policy-dir")
            .arg(e.root.join("legacy"))
            .arg("--system-info")
            .arg(e.root.join("info.json"))
            .arg("--qrexec-client")
            .arg(&client)
            .args(["personal", "work", service])
            .env("ANSWER", answer)
            .output()
            .unwrap();
        (
            String::from_utf8(out.stdout).unwrap(),
            out.status.code().unwrap(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    };
    let (out, code, log_text) = run("allow:work", "qubes.FileCopy");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("user=DEFAULT\nresult=allow\ntarget=work\n"),
        "{out}"
    );
    let calls: Vec<&str> = log_text.lines().collect();
    assert_eq!(calls[0], "-d|sys-gui|DEFAULT:QUBESRPC policy.Ask dom0|");
    assert!(
        calls[1].starts_with(
            r#"{"source": "personal", "service": "qubes.FileCopy", "argument": "+", "targets": ["#
        ),
        "{}",
        calls[1]
    );
    assert_eq!(calls[2], "-d|sys-gui|DEFAULT:QUBESRPC policy.Notify dom0|");
    assert_eq!(
        calls[3],
        r#"{"resolution": "allow", "service": "qubes.FileCopy", "argument": "+", "source": "personal", "target": "work"}"#
    );
    // Denied by the user: a denial, notified (notify=yes on the rule).
    let (out, code, log_text) = run("deny", "qubes.FileCopy");
    assert_eq!((out.as_str(), code), ("result=deny\n", 1));
    assert!(log_text.contains(r#"{"resolution": "deny", "service": "qubes.FileCopy", "argument": "+", "source": "personal", "target": "work"}"#), "{log_text}");
    // Denied by the user on a rule without notify: no notification.
    let (out, _, log_text) = run("deny", "qubes.Quiet");
    assert_eq!(out, "result=deny\n");
    assert!(!log_text.contains("policy.Notify"), "{log_text}");
    // A target that was not offered, or nonsense: denied and notified.
    for bad in ["allow:dom0", "maybe"] {
        let (out, _, log_text) = run(bad, "qubes.Quiet");
        assert_eq!(out, "result=deny\n", "{bad}");
        assert!(
            log_text.contains("\"resolution\": \"deny\""),
            "{bad}: {log_text}"
        );
    }
}
