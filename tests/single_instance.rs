//! One Qube Manager per daemon and session: a second start (the tray's "Settings", a menu
//! entry) hands its request to the running one and exits, without even connecting to the
//! daemon; a demo is a system of its own. Runs the real program under the test's display and
//! session bus, on a demo core served on a socket.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Stops the program when the test ends, however it ends: SIGTERM, as a desktop session
/// does, then SIGKILL if it does not go.
struct Running(Child);

impl Running {
    /// SIGTERM, and whether it ended by itself, successfully, within 10 s.
    fn terminate(&mut self) -> bool {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a process id fits in pid_t");
        // SAFETY: kill with our child's pid and a signal number.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.terminate() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait(what: &str, secs: u64, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn manager() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qubes-qube-manager"));
    c.env("GSK_RENDERER", "cairo")
        .env("LANG", "C.UTF-8")
        .env("GTK_A11Y", "none")
        .env("NO_AT_BRIDGE", "1");
    c
}

/// Titles of the X windows on the display.
fn window_titles() -> String {
    Command::new("xwininfo")
        .args(["-root", "-tree"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .expect("xwininfo (package x11-utils) runs")
}

#[test]
fn a_second_start_hands_over_to_the_running_manager() {
    if std::env::var_os("DISPLAY").is_none()
        || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
    {
        println!("no display or session bus: skipped (run under xvfb-run dbus-run-session)");
        return;
    }
    let config = tempfile::tempdir().unwrap();
    let core = qubesd::Embedded::demo().expect("demo core");
    let socket = config.path().join("qubesd.sock");
    core.serve_admin_socket(&socket).unwrap();
    let id = qubes_qube_manager::instance::app_id(&qubes_qube_manager::cli::Daemon::Socket(
        socket.clone(),
    ))
    .unwrap();
    let mut first = manager();
    first
        .arg("--socket")
        .arg(&socket)
        .env("XDG_CONFIG_HOME", config.path());
    let _first = Running(first.spawn().expect("the Qube Manager starts"));
    let bus = zbus::blocking::Connection::session().unwrap();
    let dbus = zbus::blocking::fdo::DBusProxy::new(&bus).unwrap();
    let owned = || {
        dbus.name_has_owner(id.as_str().try_into().unwrap())
            .unwrap_or(false)
    };
    wait("the Qube Manager on the bus", 30, owned);
    wait("its window", 20, || {
        window_titles().contains("\"Qube Manager\"")
    });
    assert!(!window_titles().contains("\"Settings: work\""));

    // The core stops answering: the second start must not need it.
    drop(core);
    let mut second = manager()
        .arg("--socket")
        .arg(&socket)
        .args(["--settings", "work"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the second start hangs"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    wait("the settings in the running manager", 20, || {
        window_titles().contains("\"Settings: work\"")
    });

    // A demo is a system of its own: it starts its own window. Ended as a session ends it,
    // it leaves nothing in the temporary directory.
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = Running(
        manager()
            .args(["--demo"])
            .env("TMPDIR", tmp.path())
            .spawn()
            .unwrap(),
    );
    wait("a second window", 30, || {
        window_titles().matches("\"Qube Manager\"").count() == 2
    });
    let leftovers = || std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(leftovers(), 1, "the demo's state directory");
    assert!(demo.terminate(), "SIGTERM ends it normally");
    assert_eq!(leftovers(), 0, "the demo's state directory is removed");
}
