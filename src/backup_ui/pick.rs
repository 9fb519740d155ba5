//! Choosing a folder or file inside another qube: its `qubes.SelectDirectory` or
//! `qubes.SelectFile` service shows a chooser there and prints the path, which is untrusted
//! and checked as the reference Qube Manager checks it (a short ASCII path of plain
//! characters, no `../`).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Longest path accepted (the reference's).
const MAX_PATH: usize = 512;

/// The path a qube's chooser printed; `Ok(None)` when nothing was chosen.
pub fn check_picked_path(untrusted: &[u8]) -> Result<Option<String>, String> {
    let bad = || crate::i18n::tr("The qube answered a path with unexpected characters.");
    let text = std::str::from_utf8(untrusted).map_err(|_| bad())?;
    let text: String = text.trim().chars().take(MAX_PATH).collect();
    if text.is_empty() {
        return Ok(None);
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "/:.,_+=() ?-".contains(c);
    if !text.chars().all(plain) || text.contains("../") {
        return Err(bad());
    }
    Ok(Some(text.trim().to_string()))
}

/// Runs `service` in `vm` through `qvm-run` (`reader`) and returns the path it printed.
pub fn pick_in_qube(reader: &Path, vm: &str, service: &str) -> Result<Option<String>, String> {
    let mut child = Command::new(reader)
        .args([
            "--pass-io",
            "--service",
            "--no-autostart",
            "--",
            vm,
            service,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        // A path is short: more is not read (nor kept).
        let _ = stdout.take(4 * MAX_PATH as u64).read_to_end(&mut out);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        // The chooser was closed without a choice (or the service is missing).
        return Ok(None);
    }
    check_picked_path(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_qubes_are_checked() {
        assert_eq!(
            check_picked_path(b"/home/user/My backups (usb)\n"),
            Ok(Some("/home/user/My backups (usb)".into()))
        );
        assert_eq!(check_picked_path(b"  \n"), Ok(None));
        for bad in [
            &b"/home/user/../../etc"[..],
            b"/tmp/$(reboot)",
            b"/tmp/a;b",
            b"/tmp/\xff",
            "/tmp/é".as_bytes(),
            b"/tmp/a\nb",
        ] {
            assert!(check_picked_path(bad).is_err(), "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(2000));
        assert_eq!(
            check_picked_path(long.as_bytes()).unwrap().unwrap().len(),
            MAX_PATH
        );
    }

    #[test]
    fn a_chooser_closed_without_choice_is_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qvm-run");
        std::fs::write(&fake, "#!/bin/sh\necho \"$@\" >&2\nexit 1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test's fork may hold the new file open for a moment (ETXTBSY).
        let pick = || loop {
            match pick_in_qube(&fake, "work", "qubes.SelectFile") {
                Err(e) if e.contains("Text file busy") => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                r => return r,
            }
        };
        assert_eq!(pick(), Ok(None));
        std::fs::write(
            &fake,
            "#!/bin/sh\n[ \"$5 $6\" = \"work qubes.SelectFile\" ] && echo /home/user/b\n",
        )
        .unwrap();
        assert_eq!(pick(), Ok(Some("/home/user/b".into())));
    }
}
