//! Starting the real `qubesd` binary for the daemon's benchmarks (included with
//! `#[path = ...] mod daemon;`).

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts qubesd on `dir` (state and sockets) with libvirt's test driver; returns the process
/// and the time from exec to an accepting socket. `QUBESD_BENCH_BIN` names another binary.
pub fn spawn(dir: &Path) -> (Child, Duration) {
    let socket = dir.join("qubesd.sock");
    let t0 = Instant::now();
    // QUBESD_BENCH_BIN runs another build (an older one, to compare in the same conditions).
    let bin =
        std::env::var_os("QUBESD_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_qubesd").into());
    let child = Command::new(bin)
        .args(["--log-level", "error", "--libvirt-uri", "test:///default"])
        .arg("--state-dir")
        .arg(dir)
        .arg("--socket-dir")
        .arg(dir)
        .arg("--policy-dir")
        .arg(dir.join("policy.d"))
        // By environment: an older build (QUBESD_BENCH_BIN) has no such option.
        .env("QUBESD_BACKUP_PROFILE_DIR", dir.join("backup-profiles"))
        .stderr(Stdio::null())
        .spawn()
        .expect("qubesd");
    while UnixStream::connect(&socket).is_err() {
        std::thread::sleep(Duration::from_micros(200));
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "daemon did not start"
        );
    }
    (child, t0.elapsed())
}
