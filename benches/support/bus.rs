//! A private D-Bus session bus for the tray's test and benchmark (included with
//! `#[path = ...] mod bus;`): `dbus-daemon --session`, stopped when dropped.

/// A running `dbus-daemon`.
pub struct Bus(std::process::Child);

impl Bus {
    /// Starts a bus; returns it and its address.
    pub fn start() -> (Bus, String) {
        use std::io::BufRead;
        let mut child = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the bus address");
        (Bus(child), line.trim().to_string())
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
