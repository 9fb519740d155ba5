//! What assistive technologies read: the real program with accessibility on, its tree read
//! over AT-SPI (python3-gi + Atspi, as a screen reader would). Run under
//! `xvfb-run -a dbus-run-session --`.

use std::process::Command;
use std::time::{Duration, Instant};

/// Prints `role<TAB>name` for every accessible object of the application.
const DUMP: &str = r#"
import sys, gi
gi.require_version('Atspi', '2.0')
from gi.repository import Atspi
desktop = Atspi.get_desktop(0)
def walk(o, depth):
    if depth > 40: return
    try:
        print(o.get_role_name() + "\t" + (o.get_name() or ""))
        for i in range(o.get_child_count()):
            c = o.get_child_at_index(i)
            if c is not None: walk(c, depth + 1)
    except Exception:
        pass
for i in range(desktop.get_child_count()):
    app = desktop.get_child_at_index(i)
    if app is not None and 'qube-manager' in (app.get_name() or ''):
        walk(app, 0)
"#;

fn atspi_available() -> bool {
    Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('Atspi', '2.0'); from gi.repository import Atspi",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn controls_and_cells_are_named() {
    if std::env::var_os("DISPLAY").is_none()
        || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
    {
        println!("no display or session bus: run under xvfb-run -a dbus-run-session");
        return;
    }
    if !atspi_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3-gi with Atspi missing in CI"
        );
        println!("python3 Atspi not installed: accessibility check skipped");
        return;
    }
    let mut app = Command::new(env!("CARGO_BIN_EXE_qubes-qube-manager"))
        .arg("--demo")
        .env_remove("GTK_A11Y")
        .env_remove("NO_AT_BRIDGE")
        .env("GSK_RENDERER", "cairo")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut tree = String::new();
    while Instant::now() < deadline {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", DUMP])
            .output()
            .unwrap();
        tree = String::from_utf8_lossy(&out.stdout).into_owned();
        if tree.contains("\tsys-firewall") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let pid = libc::pid_t::try_from(app.id()).expect("a process id fits in pid_t");
    // SIGTERM ends it normally (its demo directory is removed).
    // SAFETY: kill with our child's pid and a signal number.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = app.wait();
    let lines: Vec<(&str, &str)> = tree.lines().filter_map(|l| l.split_once('\t')).collect();
    let has = |role: &str, name: &str| lines.iter().any(|(r, n)| *r == role && *n == name);
    assert!(
        lines.iter().any(|(_, n)| *n == "sys-firewall"),
        "cells are readable:\n{tree}"
    );
    assert!(
        lines.iter().any(|(r, n)| *n == "Qubes"
            && (r.contains("table") || r.contains("list") || r.contains("grid"))),
        "the table is named:\n{tree}"
    );
    for b in [
        "Start",
        "Pause",
        "Resume",
        "Shut down",
        "Restart",
        "Kill",
        "Settings",
        "New qube",
        "Remove",
        "Main menu",
    ] {
        assert!(has("push button", b), "button {b}:\n{tree}");
    }
    assert!(
        lines
            .iter()
            .any(|(r, n)| r.contains("text") && *n == "Search qubes")
            || has("entry", "Search qubes"),
        "search field:\n{tree}"
    );
    let unnamed: Vec<_> = lines
        .iter()
        .filter(|(r, n)| *r == "push button" && n.is_empty())
        .collect();
    assert!(unnamed.is_empty(), "unnamed buttons: {unnamed:?}\n{tree}");
}
