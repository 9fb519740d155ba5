//! `qubes-policy-admin` as qrexec runs it: environment, stdin, exit status, exact stderr.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

fn run(dir: &std::path::Path, service: &str, payload: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qubes-policy-admin"))
        .env("QREXEC_SERVICE_FULL_NAME", service)
        .env("QREXEC_REMOTE_DOMAIN", "mgmt")
        .env("QREXEC_POLICY_DIR", dir)
        .env(
            "QREXEC_POLICY_ADMIN_LOG",
            dir.parent().unwrap().join("admin.log"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        out.stdout,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn exit_codes_and_messages() {
    let t = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(t.path()).unwrap().join("policy.d");
    std::fs::create_dir_all(dir.join("include")).unwrap();
    assert_eq!(
        run(
            &dir,
            "policy.Replace+file1",
            b"new\nsvc * @anyvm @anyvm deny\n"
        ),
        (0, Vec::new(), String::new())
    );
    let (code, out, _) = run(&dir, "policy.Get+file1", b"");
    assert_eq!(code, 0);
    assert!(out.starts_with(b"sha256:") && out.ends_with(b"\nsvc * @anyvm @anyvm deny\n"));
    assert_eq!(
        run(&dir, "policy.Replace+file1", b"new\nx"),
        (
            1,
            Vec::new(),
            "PolicyAdminTokenException File exists but token is 'new'".into()
        )
    );
    let log = dir.parent().unwrap().join("admin.log");
    assert_eq!(
        run(&dir, "policy.Replace+x", b"any\n\xff"),
        (
            2,
            Vec::new(),
            format!(
                "Internal error. See '{}' in dom0 for details.",
                log.display()
            )
        )
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("internal error")
    );
    let missing = t.path().join("nowhere");
    assert_eq!(run(&missing, "policy.List", b"").0, 2);
    assert_eq!(run(&dir, "policy.List", b"").1, b"file1\n");
}
