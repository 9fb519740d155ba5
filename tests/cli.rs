//! The two programs on the command line: `--help` goes to standard output with exit status 0,
//! and the tray item started where no tray runs says so on the terminal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn program(name: &str) -> Command {
    let path = match name {
        "qubes-qube-manager" => env!("CARGO_BIN_EXE_qubes-qube-manager"),
        _ => env!("CARGO_BIN_EXE_qui-domains"),
    };
    let mut c = Command::new(path);
    c.env("LANG", "C.UTF-8").env_remove("LANGUAGE");
    c
}

#[test]
fn help_goes_to_stdout_with_exit_status_0() {
    for (name, says) in [
        ("qubes-qube-manager", "--settings QUBE"),
        ("qui-domains", "system tray"),
    ] {
        for flag in ["--help", "-h"] {
            let out = program(name).arg(flag).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{name} {flag}: {:?}", out.status);
            assert!(stdout.starts_with(&format!("usage: {name} ")), "{stdout}");
            for option in ["--demo", "--socket PATH", "--qrexec", says] {
                assert!(
                    stdout.contains(option),
                    "{name} {flag}: {option} in\n{stdout}"
                );
            }
            assert!(
                out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A wrong argument is still an error, on stderr.
        let out = program(name).arg("--bogus").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: "));
    }
}

#[test]
fn tray_item_without_a_tray_says_so() {
    if Command::new("dbus-daemon")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "dbus-daemon missing in CI"
        );
        println!("dbus-daemon not installed: skipped");
        return;
    }
    // A session bus of its own, where no StatusNotifierWatcher runs (as on stock GNOME).
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let mut child = program("qui-domains")
        .arg("--demo")
        .env("DBUS_SESSION_BUS_ADDRESS", address.trim())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let want = "qui-domains: no system tray is running on this desktop";
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with(want) => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let pid = libc::pid_t::try_from(child.id()).expect("a process id fits in pid_t");
    // SAFETY: kill with our child's pid and a signal number.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let ended = child.wait().unwrap();
    let _ = bus.kill();
    let _ = bus.wait();
    assert!(ended.success(), "{ended:?}");
    assert!(found, "no word about the missing tray; stderr: {seen:?}");
}
