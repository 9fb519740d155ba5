use super::*;
use crate::container::KdfParams;
use crate::profile::Compression;
use crate::write::{
    self, BackupContent, BackupFile, Destination, FileSource, QubeFiles, WriteOptions,
};
use std::collections::BTreeMap;
use std::path::Path;

const FAST: KdfParams = KdfParams {
    log_n: 10,
    r: 8,
    p: 1,
};

fn image(path: &Path, len: u64, seed: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64 ^ seed;
    let data: Vec<u8> = (0..200_000u32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all_at(&data, len / 4).unwrap();
    f.write_all_at(&vec![0x41u8; 150_000], len / 2).unwrap();
    f.write_all_at(b"last", len - 4).unwrap();
}

fn make(dir: &Path, compression: Compression, chunk: u64) -> (std::path::PathBuf, BackupContent) {
    let a = dir.join("a.img");
    let b = dir.join("b.img");
    image(&a, 3 << 20, 1);
    image(&b, 2 << 20, 2);
    let content = BackupContent {
        qubes_xml: b"<?xml version='1.0' encoding='UTF-8'?>\n<qubes><labels/></qubes>\n".to_vec(),
        qubes: vec![
            QubeFiles {
                qid: 2,
                files: vec![
                    BackupFile {
                        name: "private.img".into(),
                        source: FileSource::Path(a),
                        size: 1000,
                    },
                    BackupFile {
                        name: "notes.txt".into(),
                        source: FileSource::Bytes("Notizen ü\n".as_bytes().to_vec()),
                        size: 12,
                    },
                ],
            },
            QubeFiles {
                qid: 5,
                files: vec![BackupFile {
                    name: "root.img".into(),
                    source: FileSource::Path(b),
                    size: 1000,
                }],
            },
        ],
        dom0_home: None,
    };
    let mut opts = WriteOptions::new("correct horse");
    opts.kdf = FAST;
    opts.chunk_size = chunk;
    opts.compression = compression;
    opts.backup_id = "20250101T000000-1".into();
    let target = dir.join("backup");
    write::write_backup(&content, Destination::File(target.clone()), &opts).unwrap();
    (target, content)
}

type Files = BTreeMap<String, Vec<u8>>;

fn read_all(source: Source, pass: &str) -> Result<(Vec<u8>, Files)> {
    let mut opts = ReadOptions::new(pass);
    opts.spool_dir = std::env::temp_dir();
    let mut b = Backup::open(source, opts)?;
    let mut files = BTreeMap::new();
    b.read_files(
        &mut |name, c| {
            let Content::File { size, data } = c else {
                panic!("no tree here")
            };
            let mut v = Vec::new();
            data.read_to_end(&mut v)
                .map_err(|e| BackupError::qubes(e.to_string()))?;
            assert_eq!(v.len() as u64, size);
            files.insert(name.to_string(), v);
            Ok(())
        },
        &|_| true,
        None,
    )?;
    Ok((b.qubes_xml().to_vec(), files))
}

fn expected(content: &BackupContent) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for q in &content.qubes {
        for f in &q.files {
            let data = match &f.source {
                FileSource::Path(p) => std::fs::read(p).unwrap(),
                FileSource::Bytes(b) => b.clone(),
            };
            m.insert(format!("vm{}/{}", q.qid, f.name), data);
        }
    }
    m
}

#[test]
fn round_trip_every_mode() {
    for (compression, chunk) in [
        (Compression::default(), 100 << 10),
        (
            Compression {
                compressed: false,
                filter: "gzip".into(),
            },
            256 << 10,
        ),
        (
            Compression {
                compressed: true,
                filter: "bzip2".into(),
            },
            write::CHUNK_SIZE,
        ),
    ] {
        if compression.filter == "bzip2"
            && std::process::Command::new("bzip2")
                .arg("--help")
                .output()
                .is_err()
        {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let (target, content) = make(dir.path(), compression.clone(), chunk);
        let (xml, files) = read_all(
            Source::File(std::fs::File::open(&target).unwrap()),
            "correct horse",
        )
        .unwrap();
        assert_eq!(xml, content.qubes_xml);
        assert_eq!(files, expected(&content), "{compression:?}");
        // The same through a pipe, spooling each chunk.
        let stream = std::fs::File::open(&target).unwrap();
        let (_, files) = read_all(Source::Stream(Box::new(stream)), "correct horse").unwrap();
        assert_eq!(files, expected(&content));
    }
}

#[test]
fn wrong_passphrase_truncation_and_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (target, _) = make(dir.path(), Compression::default(), 64 << 10);
    let good = std::fs::read(&target).unwrap();
    let open = |bytes: &[u8], pass: &str| {
        read_all(
            Source::Stream(Box::new(std::io::Cursor::new(bytes.to_vec()))),
            pass,
        )
    };
    let e = open(&good, "wrong").unwrap_err();
    assert_eq!(
        e.message(),
        "Corrupted backup header (hmac verification failed). Is the password correct?"
    );
    for cut in [
        0,
        100,
        512,
        10240,
        good.len() / 3,
        good.len() / 2,
        good.len() - 30000,
    ] {
        assert!(open(&good[..cut], "correct horse").is_err(), "cut at {cut}");
    }
    // One flipped bit anywhere in a non-padding byte is caught. Padding and zero blocks
    // between the tar archives carry nothing, and tar header fields other than names and
    // sizes (mode, mtime, ...) are not used; every other byte is checked.
    let mut caught = 0;
    let mut harmless = 0;
    let (_, want) = open(&good, "correct horse").unwrap();
    let step = good.len() / 301;
    for i in (0..good.len()).step_by(step.max(1)) {
        let mut bad = good.clone();
        bad[i] ^= 0x04;
        match open(&bad, "correct horse") {
            Err(_) => caught += 1,
            Ok((_, files)) => {
                // Anything read must still be exactly the original.
                assert_eq!(files, want, "flip at {i} changed the data");
                harmless += 1;
            }
        }
    }
    assert!(caught > harmless, "caught {caught}, harmless {harmless}");
}

#[test]
fn header_validation_as_reference() {
    let ok = "version=4\nencrypted=True\ncompressed=True\ncompression-filter=gzip\nhmac-algorithm=scrypt\nbackup-id=20250101T000000-1\n";
    let h = BackupHeader::parse(ok.as_bytes()).unwrap();
    assert!(h.compressed && h.encrypted);
    for (text, msg) in [
        ("version=4\nversion=4\n", "Duplicated header line: version"),
        ("version=4=5\n", "Invalid backup header"),
        (
            "version=4\nbackup-id=a/b\n",
            "Invalid backup header (value)",
        ),
        ("ver sion=4\n", "Invalid backup header (key)"),
        (
            "version=4\ncompression-filter=rm\n",
            "Unusual compression filter 'rm' found.",
        ),
        (
            "version=4\nencrypted=True\n",
            "Backup header lack 'compressed' info",
        ),
        ("version=9\n", "Invalid value for header: version"),
        (
            "version=4\nencrypted=1\ncompressed=1\nhmac-algorithm=scrypt\n",
            "Backup header lack 'compression_filter' info",
        ),
    ] {
        assert_eq!(
            BackupHeader::parse(text.as_bytes()).unwrap_err().message(),
            msg,
            "{text:?}"
        );
    }
    assert_eq!(
        BackupHeader::parse("version=é\n".as_bytes())
            .unwrap_err()
            .message(),
        "Non-ASCII characters in backup header"
    );
}

/// What GNU `tar --sparse` writes for a file-pool image (old GNU sparse members) reads back
/// byte for byte, holes as zeros.
#[test]
fn gnu_tar_sparse_members_read_back() {
    use std::os::unix::fs::FileExt;
    let Ok(out) = std::process::Command::new("tar").arg("--version").output() else {
        return;
    };
    if !String::from_utf8_lossy(&out.stdout).contains("GNU tar") {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), b"SKIPPED: no GNU tar\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("private.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(30 << 20).unwrap();
    for i in 0..40u64 {
        f.write_all_at(&[i as u8 + 1; 5000], i * 700_000 + 123)
            .unwrap();
    }
    f.write_all_at(b"end", (30 << 20) - 3).unwrap();
    drop(f);
    for format in ["gnu", "posix"] {
        let out = std::process::Command::new("tar")
            .args(["-Pc", "--sparse", "--format", format, "-C"])
            .arg(dir.path())
            .args(["--xform=s:^private.img:vm9/private.img:", "private.img"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut r = InnerReader::new(&out.stdout[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.name.as_str(), e.size),
            ("vm9/private.img", 30 << 20),
            "{format}"
        );
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        assert!(
            data == std::fs::read(&img).unwrap(),
            "{format}: content differs"
        );
        r.finish().unwrap();
    }
}
