//! Backup and restore-read throughput and peak memory, beside the reference's pipeline
//! (GNU tar --sparse | gzip | split into 100 MiB | `scrypt enc` per chunk, then tar per
//! chunk; restore: tar -x, `scrypt dec` per chunk, gzip -d | tar -x).
//!
//! Data: 4 qubes, one image each, half random, half holes; `BACKUP_BENCH_MB` sets the total
//! (default 4096). Each run is a child process, so peak RSS is its own (wait4).
//! Run: `cargo bench -p qubes-backup --bench backup_bench`.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use qubes_backup::profile::Compression;
use qubes_backup::read::{Backup, Content, ReadOptions, Source};
use qubes_backup::write::{
    self, BackupContent, BackupFile, Destination, FileSource, QubeFiles, WriteOptions,
};

const PASS: &str = "benchmark passphrase";

fn images(dir: &Path, total_mb: u64) -> Vec<PathBuf> {
    let each = total_mb / 4 * (1 << 20);
    (0..4)
        .map(|i| {
            let p = dir.join(format!("q{i}/private.img"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(each).unwrap();
            let mut x = 0x9e3779b97f4a7c15u64 ^ i;
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0;
            while off < each / 2 {
                for b in buf.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
                }
                f.write_all_at(&buf, off).unwrap();
                off += buf.len() as u64;
            }
            p
        })
        .collect()
}

fn content(imgs: &[PathBuf]) -> BackupContent {
    BackupContent {
        qubes_xml: b"<qubes/>".to_vec(),
        qubes: imgs
            .iter()
            .enumerate()
            .map(|(i, p)| QubeFiles {
                qid: i as u32 + 1,
                files: vec![BackupFile {
                    name: "private.img".into(),
                    source: FileSource::Path(p.clone()),
                    size: std::fs::metadata(p).unwrap().len(),
                }],
            })
            .collect(),
        dom0_home: None,
    }
}

/// Child mode: one operation, in its own process.
fn child(args: &[String]) {
    let dir = PathBuf::from(&args[3]);
    let compressed = args[2] == "gz";
    let imgs: Vec<PathBuf> = (0..4)
        .map(|i| dir.join(format!("q{i}/private.img")))
        .collect();
    let out = dir.join(format!("ours-{}", args[2]));
    match args[1].as_str() {
        "write" => {
            let mut o = WriteOptions::new(PASS);
            o.compression = Compression {
                compressed,
                filter: "gzip".into(),
            };
            write::write_backup(&content(&imgs), Destination::File(out), &o).unwrap();
        }
        "read" => {
            let mut b = Backup::open(
                Source::File(std::fs::File::open(&out).unwrap()),
                ReadOptions::new(PASS),
            )
            .unwrap();
            let mut total = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            b.read_files(
                &mut |_, c| {
                    if let Content::File { data, .. } = c {
                        loop {
                            let n = data.read(&mut buf).unwrap();
                            if n == 0 {
                                break;
                            }
                            total += n as u64;
                        }
                    }
                    Ok(())
                },
                &|_| true,
                None,
            )
            .unwrap();
            assert!(total > 0);
        }
        _ => unreachable!(),
    }
}

/// Runs a command; wall seconds and peak RSS (MiB) of its process tree.
fn measure(cmd: &mut Command) -> (f64, f64) {
    let t = Instant::now();
    // wait4 reaps it (and gives its rusage), which Child::wait cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn");
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: waiting for our own child.
    unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    (t.elapsed().as_secs_f64(), ru.ru_maxrss as f64 / 1024.0)
}

fn reference_write(dir: &Path, gz: bool) -> String {
    format!(
        r#"set -e; cd {d}; P=$PWD/pass; printf %s '{PASS}' > $P; rm -rf ref-{t}; mkdir ref-{t}; cd ref-{t}
out=../ref-backup-{t}; : > $out
for i in 0 1 2 3; do
  mkdir -p vm$i
  tar -Pc --sparse -C ../q$i --xform=s:^private.img:vm$i/private.img: private.img {comp} \
   | split -b 104857600 -d -a 3 --additional-suffix=.enc --filter='scrypt enc --passphrase file:'$P' - $FILE' - vm$i/private.img.
  for c in vm$i/private.img.*.enc; do tar -cO --posix $c >> $out; rm $c; done
done"#,
        d = dir.display(),
        t = if gz { "gz" } else { "raw" },
        comp = if gz { "| gzip" } else { "" },
    )
}

fn reference_read(dir: &Path, gz: bool) -> String {
    format!(
        r#"set -e; cd {d}; P=$PWD/pass; rm -rf refx-{t}; mkdir refx-{t}; cd refx-{t}
tar -ixf ../ref-backup-{t}
for i in 0 1 2 3; do
  for c in vm$i/private.img.*.enc; do scrypt dec -f --passphrase file:$P $c; rm $c; done {comp} | tar -xO 2>/dev/null > /dev/null
done"#,
        d = dir.display(),
        t = if gz { "gz" } else { "raw" },
        comp = if gz { "| gzip -d" } else { "" },
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "write" || a == "read") {
        return child(&args);
    }
    let mb: u64 = std::env::var("BACKUP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let base = std::env::var_os("BACKUP_BENCH_DIR").map_or(std::env::temp_dir(), PathBuf::from);
    let dir = tempfile::tempdir_in(base).unwrap();
    images(dir.path(), mb);
    let have_scrypt = Command::new("scrypt").arg("--version").output().is_ok();
    let exe = std::env::current_exe().unwrap();
    let data = mb as f64 * 1.048576; // MB (10^6) of logical data
    println!("{mb} MiB over 4 qubes (half random, half holes); 2 cores");
    println!(
        "| {:<24} | {:>10} | {:>9} | {:>11} | {:>9} | {:>9} |",
        "run", "ours MB/s", "ours MiB", "ref MB/s", "ref MiB", "speed-up"
    );
    println!("|{}|", "-".repeat(88));
    for gz in [true, false] {
        let t = if gz { "gz" } else { "raw" };
        for op in ["write", "read"] {
            let (s, rss) = measure(Command::new(&exe).args([op, t]).arg(dir.path()));
            let (rs, rrss) = if have_scrypt {
                let script = if op == "write" {
                    reference_write(dir.path(), gz)
                } else {
                    reference_read(dir.path(), gz)
                };
                let (a, b) = measure(Command::new("bash").arg("-c").arg(script));
                (Some(a), b)
            } else {
                (None, 0.0)
            };
            let name = format!(
                "{} {}",
                if op == "write" {
                    "backup"
                } else {
                    "restore-read"
                },
                if gz { "gzip" } else { "uncompressed" }
            );
            match rs {
                Some(rs) => println!(
                    "| {name:<24} | {:>10.1} | {rss:>9.1} | {:>11.1} | {rrss:>9.1} | {:>8.1}x |",
                    data / s,
                    data / rs,
                    rs / s
                ),
                None => println!(
                    "| {name:<24} | {:>10.1} | {rss:>9.1} | {:>11} | {:>9} | {:>9} |",
                    data / s,
                    "(no scrypt)",
                    "-",
                    "-"
                ),
            }
        }
    }
}
