//! The `qubes-backup-restore` program on backups written by this crate.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use qubes_backup::container::KdfParams;
use qubes_backup::write::{
    self, BackupContent, BackupFile, Destination, FileSource, QubeFiles, WriteOptions,
};

const XML: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<qubes><labels><label id="label-1">red</label></labels><properties/><domains>
<domain class="StandaloneVM"><properties><property name="qid">4</property><property name="name">alone</property><property name="label">label-1</property></properties>
<features><feature name="backup-content">1</feature><feature name="backup-path">vm4/</feature><feature name="backup-size">5</feature></features><tags/></domain>
</domains></qubes>"#;

#[test]
fn verify_only_accepts_good_and_refuses_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let content = BackupContent {
        qubes_xml: XML.as_bytes().to_vec(),
        qubes: vec![QubeFiles {
            qid: 4,
            files: vec![BackupFile {
                name: "private.img".into(),
                source: FileSource::Bytes(vec![7u8; 300_000]),
                size: 5,
            }],
        }],
        dom0_home: None,
    };
    let mut opts = WriteOptions::new("pw");
    opts.kdf = KdfParams {
        log_n: 10,
        r: 8,
        p: 1,
    };
    let good = dir.path().join("good");
    write::write_backup(&content, Destination::File(good.clone()), &opts).unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "pw\n").unwrap();
    let run = |file: &std::path::Path, pass: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_qubes-backup-restore"))
            .args([
                "--verify-only",
                "--socket",
                "/nonexistent",
                "--passphrase-file",
            ])
            .arg(pass)
            .arg(file)
            .output()
            .unwrap()
    };
    let out = run(&good, &pass);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("The following VMs are included in the backup:"),
        "{stdout}"
    );
    assert!(stdout.contains("alone: verified"), "{stdout}");
    let mut bytes = std::fs::read(&good).unwrap();
    let len = bytes.len();
    bytes[len - 10240 - 700] ^= 0x20;
    let bad = dir.path().join("bad");
    std::fs::write(&bad, &bytes).unwrap();
    let out = run(&bad, &pass);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("qubes-backup-restore: error:"), "{err}");
    // A qube that qubes.xml says is in the backup, with no data: truncated.
    let mut missing = content.clone();
    missing.qubes_xml = XML
        .replace(
            "</domains>",
            r#"<domain class="AppVM"><properties><property name="name">ghost</property><property name="label">label-1</property></properties>
<features><feature name="backup-content">1</feature><feature name="backup-path">vm9/</feature></features></domain></domains>"#,
        )
        .into_bytes();
    let partial = dir.path().join("partial");
    write::write_backup(&missing, Destination::File(partial.clone()), &opts).unwrap();
    let out = run(&partial, &pass);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no data for ghost"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&pass, "nope\n").unwrap();
    let out = run(&good, &pass);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Is the password correct?"));
}
