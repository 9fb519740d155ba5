//! `qubes-policy` driving `qubes-policy-admin` directly, as in dom0.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

fn run(dir: &std::path::Path, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qubes-policy"))
        .args(args)
        .env(
            "QUBES_POLICY_ADMIN_PROGRAM",
            env!("CARGO_BIN_EXE_qubes-policy-admin"),
        )
        .env("QREXEC_POLICY_DIR", dir)
        .env("QREXEC_POLICY_ADMIN_LOG", dir.parent().unwrap().join("log"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn list_get_replace_remove() {
    let t = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(t.path()).unwrap().join("policy.d");
    std::fs::create_dir_all(dir.join("include")).unwrap();
    assert_eq!(run(&dir, &["-l"], b""), (0, "\n".into(), String::new()));
    assert_eq!(
        run(&dir, &["-r", "30-user"], b"svc * @anyvm @anyvm deny\n\n"),
        (0, String::new(), String::new())
    );
    assert_eq!(run(&dir, &["-l"], b"").1, "30-user\n");
    assert_eq!(
        run(&dir, &["-g", "30-user"], b"").1,
        "svc * @anyvm @anyvm deny\n"
    );
    assert_eq!(run(&dir, &["-r", "include/admin-ro"], b"").0, 0);
    // `include` alone selects the include directory, as in the reference.
    assert_eq!(run(&dir, &["-l", "include"], b"").1, "admin-ro\n");
    assert_eq!(
        run(&dir, &["-l", "30-user"], b"").0,
        2,
        "--list takes no file name"
    );
    let (code, _, err) = run(&dir, &["-r", "bad"], b"broken");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Policy change validation failed: ")
            && err.ends_with(":1: wrong number of fields\n"),
        "{err}"
    );
    assert_eq!(
        run(&dir, &["-d", "30-user"], b""),
        (0, String::new(), String::new())
    );
    let (code, _, err) = run(&dir, &["-g", "30-user"], b"");
    assert_eq!(
        (code, err),
        (1, format!("Not found: {}/30-user.policy\n", dir.display()))
    );
    assert_eq!(run(&dir, &["-g", "a/b"], b"").0, 2);
}
