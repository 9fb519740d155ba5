use super::*;
use std::io;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::atomic::Ordering;

pub(crate) const FAST: KdfParams = KdfParams {
    log_n: 10,
    r: 8,
    p: 1,
};

fn tools_present() -> bool {
    let ok = ["scrypt", "tar", "gzip"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success() || *t == "scrypt")
    });
    if !ok {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: scrypt, GNU tar or gzip is not installed\n",
        );
    }
    ok
}

/// Makes a sparse image with some data.
pub(crate) fn image(path: &Path, len: u64, seed: u8) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64 ^ seed as u64;
    let data: Vec<u8> = (0..300_000u32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all_at(&data, len / 3).unwrap();
    f.write_all_at(b"end", len - 3).unwrap();
}

fn scrypt_dec(file: &Path, pass: &str, dir: &Path) -> Vec<u8> {
    let pf = dir.join("pass.tmp");
    std::fs::write(&pf, pass).unwrap();
    let out = Command::new("scrypt")
        .args(["dec", "-f", "--passphrase"])
        .arg(format!("file:{}", pf.display()))
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A backup we write is read by the reference's own tools: GNU tar for the outer layer, the
/// scrypt tool for every chunk with the reference's passphrase strings, gzip and GNU tar for
/// the inner layer.
#[test]
fn reference_tools_read_our_backup() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("private.img");
    image(&img, 5 << 20, 3);
    let content = BackupContent {
        qubes_xml: b"<?xml version='1.0' encoding='UTF-8'?>\n<qubes/>\n".to_vec(),
        qubes: vec![
            QubeFiles {
                qid: 7,
                files: vec![
                    BackupFile {
                        name: "private.img".into(),
                        source: FileSource::Path(img.clone()),
                        size: 400_000,
                    },
                    BackupFile {
                        name: "firewall.xml".into(),
                        source: FileSource::Bytes(b"<firewall/>".to_vec()),
                        size: 11,
                    },
                ],
            },
            QubeFiles {
                qid: 9,
                files: vec![],
            },
        ],
        dom0_home: None,
    };
    let mut opts = WriteOptions::new("pass phrase");
    opts.kdf = FAST;
    opts.chunk_size = 64 << 10;
    opts.backup_id = "20250102T030405-77".into();
    let target = dir.path().join("backup");
    let r = write_backup(&content, Destination::File(target.clone()), &opts).unwrap();
    assert_eq!(r.path.as_deref(), Some(target.as_path()));
    assert_eq!(std::fs::metadata(&target).unwrap().len(), r.bytes);
    assert_eq!(r.bytes % 10240, 0, "each member is padded to a tar record");
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let out = Command::new("tar")
        .arg("-ixvf")
        .arg(&target)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        names[..4],
        [
            "backup-header",
            "backup-header.hmac",
            "qubes.xml.000.enc",
            "vm7/private.img.000.enc"
        ]
    );
    assert!(names.contains(&"vm7/firewall.xml.000.enc".to_string()));
    assert!(names.contains(&"vm9/empty.000.enc".to_string()));
    let header = std::fs::read(x.join("backup-header")).unwrap();
    assert_eq!(
        String::from_utf8(header.clone()).unwrap(),
        "version=4\nencrypted=True\ncompressed=True\ncompression-filter=gzip\nhmac-algorithm=scrypt\nbackup-id=20250102T030405-77\n"
    );
    assert_eq!(
        scrypt_dec(
            &x.join("backup-header.hmac"),
            "backup-header!pass phrase",
            dir.path()
        ),
        header
    );
    // Every chunk of a file, decrypted and concatenated, is a gzip stream of a tar stream.
    let mut private = Vec::new();
    let chunks: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("vm7/private.img."))
        .collect();
    assert!(chunks.len() > 1, "several chunks: {chunks:?}");
    for (i, n) in chunks.iter().enumerate() {
        assert_eq!(**n, format!("vm7/private.img.{i:03}.enc"));
        let base = n.trim_end_matches(".enc");
        private.extend(scrypt_dec(
            &x.join(n),
            &format!("20250102T030405-77!{base}!pass phrase"),
            dir.path(),
        ));
    }
    let inner = dir.path().join("inner.tar.gz");
    std::fs::write(&inner, &private).unwrap();
    let y = dir.path().join("y");
    std::fs::create_dir(&y).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&inner)
        .arg("-C")
        .arg(&y)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(y.join("vm7/private.img")).unwrap(),
        std::fs::read(&img).unwrap()
    );
}

#[test]
fn cancel_and_failure_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("root.img");
    image(&img, 8 << 20, 5);
    let content = BackupContent {
        qubes_xml: b"<qubes/>".to_vec(),
        qubes: vec![QubeFiles {
            qid: 3,
            files: vec![BackupFile {
                name: "root.img".into(),
                source: FileSource::Path(img),
                size: 1,
            }],
        }],
        dom0_home: None,
    };
    let mut opts = WriteOptions::new("p");
    opts.kdf = FAST;
    let cancel = opts.cancel.clone();
    opts.progress = Some(Arc::new(move |_| cancel.store(true, Ordering::SeqCst)));
    let target = dir.path().join("b");
    let e = write_backup(&content, Destination::File(target.clone()), &opts).unwrap_err();
    assert!(matches!(e, BackupError::Cancelled), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["root.img"], "no temporary file stays");
    assert!(!target.exists());
    // A missing source fails the backup and leaves nothing either.
    let mut bad = content.clone();
    bad.qubes[0].files[0].source = FileSource::Path(dir.path().join("gone.img"));
    opts.progress = None;
    opts.cancel.store(false, Ordering::SeqCst);
    let e = write_backup(&bad, Destination::File(target.clone()), &opts).unwrap_err();
    assert!(e.message().contains("Failed to archive"), "{e}");
    assert!(!target.exists());
    // A broken stream (a qube that died) is an error, not a hang.
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let e = write_backup(
        &content,
        Destination::Stream {
            writer: Box::new(Broken),
            spool_dir: dir.path().to_path_buf(),
        },
        &opts,
    )
    .unwrap_err();
    assert!(e.message().contains("Failed to write the backup"), "{e}");
}

#[test]
fn helpers() {
    assert_eq!(qube_target_first_line("/a\r\nb"), b"/ab\n");
    let p = Progress { done: 1, total: 4 };
    assert_eq!(p.percent_text(), "25.0");
    assert_eq!(
        Progress { done: 1, total: 3 }.percent_text(),
        "33.333333333333336"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let t = resolve_dom0_target(d).unwrap();
    assert!(
        t.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("qubes-20")
    );
    assert_eq!(
        resolve_dom0_target("/nonexistent/dir/file")
            .unwrap_err()
            .message(),
        "ERROR: the backup directory for /nonexistent/dir/file does not exists"
    );
    assert!(check_dom0_home_target("/home/user/backups", Path::new("/home/user")).is_err());
    assert!(check_dom0_home_target("/mnt/x", Path::new("/home/user")).is_ok());
    let id = new_backup_id();
    assert_eq!(
        id.len(),
        "20250102T030405-".len() + std::process::id().to_string().len()
    );
}
