//! `qubes-policy-admin`: the qrexec service behind `policy.*` (Policy Admin API).
//!
//! Reads `QREXEC_SERVICE_FULL_NAME`, `QREXEC_POLICY_DIR` (default `/etc/qubes/policy.d`),
//! `QREXEC_POLICY_ADMIN_LOG` and the payload on stdin; exits 0 (answer on stdout), 1 (request
//! error on stderr) or 2 (internal error, details in the log).

use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

use qrexec_policy::admin::{AdminError, handle};

fn log(path: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn main() {
    let service = std::env::var("QREXEC_SERVICE_FULL_NAME").unwrap_or_default();
    let caller = std::env::var("QREXEC_REMOTE_DOMAIN").unwrap_or_default();
    let dir = PathBuf::from(
        std::env::var("QREXEC_POLICY_DIR").unwrap_or_else(|_| "/etc/qubes/policy.d".into()),
    );
    let log_path = std::env::var("QREXEC_POLICY_ADMIN_LOG")
        .unwrap_or_else(|_| "/var/log/qubes/policy-admin.log".into());
    let mut payload = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut payload);
    // Every request, reads too, holds an exclusive lock on the directory.
    let lock = std::fs::File::open(&dir).ok();
    if let Some(f) = &lock {
        // SAFETY: flock on a descriptor we own; released when the file closes.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    }
    let result = handle(&dir, &service, &payload);
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let code = match result {
        Ok(bytes) => {
            log(&log_path, &format!("{caller}: {service}: ok"));
            let _ = out.write_all(&bytes);
            0
        }
        Err(AdminError::Request(class, msg)) => {
            log(&log_path, &format!("{caller}: {service}: {class} {msg}"));
            let _ = write!(err, "{class} {msg}");
            1
        }
        Err(AdminError::Internal(why)) => {
            log(
                &log_path,
                &format!("{caller}: {service}: internal error: {why}"),
            );
            let _ = write!(err, "Internal error. See '{log_path}' in dom0 for details.");
            2
        }
    };
    let _ = out.flush();
    drop(lock);
    std::process::exit(code);
}
