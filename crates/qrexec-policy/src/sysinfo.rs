//! Where the system information comes from: qubesd's `internal.GetSystemInfo` on its
//! internal socket, or a JSON file of the same shape (tests, test mode).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::eval::SystemInfo;

/// Largest answer read from qubesd (thousands of qubes fit easily).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Where to read the system information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoSource {
    /// qubesd's socket directory (`qubesd.internal.sock` in it).
    Qubesd(PathBuf),
    /// A JSON file.
    File(PathBuf),
}

impl Default for InfoSource {
    fn default() -> Self {
        InfoSource::Qubesd("/var/run".into())
    }
}

impl InfoSource {
    /// Reads and parses the system information.
    pub fn read(&self) -> Result<SystemInfo, String> {
        match self {
            InfoSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .and_then(|t| SystemInfo::from_json(&t)),
            InfoSource::Qubesd(dir) => from_qubesd(dir),
        }
    }
}

fn from_qubesd(dir: &Path) -> Result<SystemInfo, String> {
    let sock = dir.join("qubesd.internal.sock");
    let err = |e: std::io::Error| format!("{}: {e}", sock.display());
    let mut s = UnixStream::connect(&sock).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(err)?;
    s.write_all(b"internal.GetSystemInfo+ dom0 name dom0\0")
        .map_err(err)?;
    s.shutdown(std::net::Shutdown::Write).map_err(err)?;
    let mut out = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut out).map_err(err)?;
    let json = out
        .strip_prefix(b"0\0")
        .ok_or("no system info from qubesd")?;
    SystemInfo::from_json(&String::from_utf8_lossy(json))
}
