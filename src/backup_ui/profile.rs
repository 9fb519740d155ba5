//! The backup window's profiles (admin-api.md §9.2), as the reference Qube Manager keeps them:
//! [`SAVED_ID`] holds the user's choices for the next run (the passphrase only when asked),
//! [`RUN_ID`] is written with the passphrase for one run and removed after it.
//!
//! The file is YAML read by the daemon (PyYAML, YAML 1.1, in the reference): every string is
//! written double-quoted, so a qube or folder named `yes` or `0755` stays a string there, and
//! read back with the `qubes-backup` crate's parser, which the daemon uses too.

use std::io::Write;
use std::path::Path;

use qubes_backup::profile::Profile;

/// The profile the window saves and reopens (the reference's name).
pub const SAVED_ID: &str = "qubes-manager-backup";
/// The profile of one run (the reference's name), removed when the run ends.
pub const RUN_ID: &str = "qubes-manager-backup-tmp";

/// Compression as the window offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compression {
    /// `compression: true` (gzip).
    Default,
    /// `compression: false`.
    Off,
    /// Another filter program (`compression: "xz"`).
    Filter(String),
}

/// What the user chose in the backup window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    /// Qubes to back up, by name.
    pub include: Vec<String>,
    /// `destination_vm`.
    pub destination_vm: String,
    /// `destination_path`.
    pub destination_path: String,
    /// `compression`.
    pub compression: Compression,
    /// `passphrase_text`, when it is to be written.
    pub passphrase: Option<String>,
}

/// A YAML double-quoted scalar: readable by YAML 1.1 and 1.2 parsers alike.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Control characters, DEL, and the line and paragraph separators YAML breaks on.
            c if (c as u32) < 0x20 || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{feff}' => out.push_str("\\ufeff"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Choices {
    /// The profile file's text.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("# Written by the Qube Manager's backup window.\n");
        out += &format!("destination_vm: {}\n", quote(&self.destination_vm));
        out += &format!("destination_path: {}\n", quote(&self.destination_path));
        if self.include.is_empty() {
            out += "include: []\n";
        } else {
            out += "include:\n";
            for name in &self.include {
                out += &format!("- {}\n", quote(name));
            }
        }
        out += &format!(
            "compression: {}\n",
            match &self.compression {
                Compression::Default => "true".to_string(),
                Compression::Off => "false".to_string(),
                Compression::Filter(f) => quote(f),
            }
        );
        if let Some(p) = &self.passphrase {
            out += &format!("passphrase_text: {}\n", quote(p));
        }
        out
    }

    /// The choices a profile records. `include` is left to the caller ([`Profile::include`]
    /// may hold patterns and `null`); the passphrase only when it is the profile's text.
    pub fn from_profile(p: &Profile) -> Choices {
        let compression = if !p.compression.compressed {
            Compression::Off
        } else if p.compression.filter == qubes_backup::profile::DEFAULT_COMPRESSION_FILTER {
            Compression::Default
        } else {
            Compression::Filter(p.compression.filter.clone())
        };
        Choices {
            include: Vec::new(),
            destination_vm: p.destination_vm.clone(),
            destination_path: p.destination_path.clone(),
            compression,
            passphrase: match &p.passphrase {
                Some(qubes_backup::profile::PassphraseSource::Text(t)) => t.clone(),
                _ => None,
            },
        }
    }
}

/// Writes profile `id` in `dir` as a whole (a new file, synced, then renamed over the old
/// one), readable by its owner only: it may hold the passphrase.
pub fn save(dir: &Path, id: &str, text: &str) -> std::io::Result<()> {
    qubes_backup::profile::check_profile_id(id).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    // A NamedTempFile is created with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{id}."))
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(qubes_backup::profile::profile_path(dir, id))
        .map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads profile `id` of `dir`: `Ok(None)` when there is none.
pub fn load(dir: &Path, id: &str) -> Result<Option<Profile>, String> {
    match Profile::load(dir, id) {
        Ok(p) => Ok(Some(p)),
        Err(qubes_backup::BackupError::ProfileNotFound(_)) => Ok(None),
        Err(e) => Err(e.message()),
    }
}

/// Removes profile `id` of `dir` (nothing when it is not there).
pub fn remove(dir: &Path, id: &str) {
    let _ = std::fs::remove_file(qubes_backup::profile::profile_path(dir, id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_profiles_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let tricky = "yes \"quoted\" \\ back\tslash: # not a comment\u{2028}é";
        let c = Choices {
            include: vec!["work".into(), "yes".into(), "0755".into()],
            destination_vm: "dom0".into(),
            destination_path: "/home/user/on".into(),
            compression: Compression::Filter("xz".into()),
            passphrase: Some(tricky.into()),
        };
        save(dir.path(), SAVED_ID, &c.to_yaml()).unwrap();
        let path = dir.path().join("qubes-manager-backup.conf");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let p = load(dir.path(), SAVED_ID).unwrap().unwrap();
        assert!(p.unknown_keys.is_empty());
        let names: Vec<&str> = p
            .include
            .as_ref()
            .unwrap()
            .iter()
            .map(|x| x.0.as_str())
            .collect();
        assert_eq!(names, ["work", "yes", "0755"]);
        let mut back = Choices::from_profile(&p);
        back.include = names.iter().map(|s| s.to_string()).collect();
        assert_eq!(back, c);
        // Only the profile file is left in the folder.
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        for (compression, want) in [
            (Compression::Default, Compression::Default),
            (Compression::Off, Compression::Off),
        ] {
            let c = Choices {
                compression,
                passphrase: None,
                include: Vec::new(),
                ..c.clone()
            };
            save(dir.path(), RUN_ID, &c.to_yaml()).unwrap();
            let p = load(dir.path(), RUN_ID).unwrap().unwrap();
            assert_eq!(Choices::from_profile(&p).compression, want);
            assert_eq!(p.include, Some(Vec::new()));
            assert_eq!(p.passphrase, None);
        }
        remove(dir.path(), RUN_ID);
        assert_eq!(load(dir.path(), RUN_ID), Ok(None));
        assert!(save(dir.path(), "a/b", "").is_err());
    }

    /// PyYAML, the reference daemon's parser, reads the same values (when it is installed).
    #[test]
    fn pyyaml_reads_the_same() {
        let script = "import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin)))";
        let c = Choices {
            include: vec!["yes".into(), "on".into(), "1e3".into()],
            destination_vm: "no".into(),
            destination_path: "~/b\"k\\".into(),
            compression: Compression::Off,
            passphrase: Some("null".into()),
        };
        let child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else { return };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(c.to_yaml().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            println!("python3-yaml not installed: skipped");
            return;
        }
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            r#"{"destination_vm": "no", "destination_path": "~/b\"k\\", "include": ["yes", "on", "1e3"], "compression": false, "passphrase_text": "null"}"#
        );
    }
}
