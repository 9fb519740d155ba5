//! Storage benchmark: prints a table.
//!
//! Run: `cargo bench -p qubesd --bench storage_bench` (as root for the reflink rows: it
//! loop-mounts an XFS with reflinks). Measures, through the real daemon and the real import
//! service program:
//! - clone (CloneFrom + CloneTo) of a 1 GiB private volume full of data, reflink vs copy;
//! - import of a 1 GiB stream through `qubes-volume-import`, against `dd` of the same data
//!   into the same kind of file in the same run;
//! - `admin.vm.volume.Info` (size and usage from the files) for 1000 volumes.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qubes_api::Request;
use qubes_api::client::call_raw;

#[path = "support/daemon.rs"]
mod daemon;
#[path = "../../../benches/support/measure.rs"]
mod measure;
use measure::percentile;

const GIB: u64 = 1 << 30;

struct Daemon {
    dir: PathBuf,
    child: Child,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let k = dir.join("vm-kernels/6.6.1");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(k.join("vmlinuz"), b"").unwrap();
        let (child, _) = daemon::spawn(dir);
        Daemon {
            dir: dir.to_path_buf(),
            child,
        }
    }

    fn call(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) -> String {
        let req = Request::encode(method, arg, "dom0", dest, payload);
        let r = call_raw(&self.dir.join("qubesd.sock"), &req).unwrap();
        assert!(r.starts_with(b"0\0"), "{method} {dest} {arg}: {r:?}");
        String::from_utf8_lossy(&r[2..]).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes 1 GiB of non-zero, non-repeating-enough data (a cheap xorshift stream).
fn fill(path: &Path, size: u64) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..size >> 20 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
}

fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// Creates pool `p` and a qube `src` whose 1 GiB private is full of data; returns the
/// time of CloneFrom + CloneTo into a fresh qube.
fn clone_time(d: &Daemon, driver: &str, options: &str) -> Duration {
    d.call(
        "admin.pool.Add",
        "dom0",
        driver,
        format!("name=p\n{options}").as_bytes(),
    );
    d.call(
        "admin.vm.CreateInPool.StandaloneVM",
        "dom0",
        "",
        b"name=src label=red pool=p",
    );
    d.call(
        "admin.vm.volume.Resize",
        "src",
        "private",
        GIB.to_string().as_bytes(),
    );
    let path = d.call("admin.vm.volume.Info", "src", "private", b"");
    let path = path
        .lines()
        .find_map(|l| l.strip_prefix("path="))
        .unwrap()
        .replace("-dirty.img", ".img");
    fill(Path::new(&path), GIB);
    d.call(
        "admin.vm.CreateInPool.StandaloneVM",
        "dom0",
        "",
        b"name=dst label=red pool=p",
    );
    drop_caches();
    let t = Instant::now();
    let token = d.call("admin.vm.volume.CloneFrom", "src", "private", b"");
    d.call(
        "admin.vm.volume.CloneTo",
        "dst",
        "private",
        token.as_bytes(),
    );
    t.elapsed()
}

/// Streams `src` through a pipe into `cmd` and returns the wall time.
fn piped(src: &Path, mut cmd: Command) -> Duration {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut f = std::fs::File::open(src).unwrap();
    std::io::copy(&mut f, &mut stdin).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let el = t.elapsed();
    assert!(
        out.status.success(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    el
}

fn import_vs_dd(d: &Daemon, data: &Path, round: usize) -> (Duration, Duration) {
    let name = format!("imp{round}");
    d.call(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        format!("name={name} label=red").as_bytes(),
    );
    d.call(
        "admin.vm.volume.Resize",
        &name,
        "private",
        GIB.to_string().as_bytes(),
    );
    // dd writes the same data into a fresh sparse file of the same size, as the script does.
    let target = d.dir.join(format!("dd-target-{round}.img"));
    std::fs::File::create(&target)
        .unwrap()
        .set_len(GIB)
        .unwrap();
    let mut dd = Command::new("dd");
    dd.arg(format!("of={}", target.display())).args([
        "bs=128K",
        "count=1073741824",
        "iflag=count_bytes,fullblock",
        "conv=sparse,notrunc,nocreat,fdatasync",
        "status=none",
    ]);
    let t_dd = piped(data, dd);
    let _ = std::fs::remove_file(&target);
    let mut imp = Command::new(env!("CARGO_BIN_EXE_qubes-volume-import"));
    imp.args(["--without-size", "--socket"])
        .arg(d.dir.join("qubesd.internal.sock"))
        .arg("private")
        .env("QREXEC_REMOTE_DOMAIN", "dom0")
        .env("QREXEC_REQUESTED_TARGET", &name);
    let t_imp = piped(data, imp);
    (t_imp, t_dd)
}

fn mib_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / t.as_secs_f64()
}

fn xfs_mount() -> Option<(tempfile::TempDir, tempfile::NamedTempFile)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let img = tempfile::NamedTempFile::new().ok()?;
    img.as_file().set_len(4 * GIB).ok()?;
    Command::new("mkfs.xfs")
        .args(["-q", "-f", "-m", "reflink=1"])
        .arg(img.path())
        .status()
        .ok()
        .filter(|s| s.success())?;
    let mnt = tempfile::tempdir().ok()?;
    Command::new("mount")
        .args(["-o", "loop"])
        .arg(img.path())
        .arg(mnt.path())
        .status()
        .ok()
        .filter(|s| s.success())?;
    Some((mnt, img))
}

fn main() {
    println!("storage benchmark (1 GiB volumes; 2 cores, VM disk)\n");
    println!("| measure | result |");
    println!("|---|---|");

    // Clone: copy on this filesystem, reflink on XFS.
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let t_copy = clone_time(
        &d,
        "file-reflink",
        &format!("dir_path={}/p\nsetup_check=no", dir.path().display()),
    );
    println!(
        "| clone 1 GiB private, sparse copy (no reflink fs) | {:.0} ms ({:.0} MiB/s) |",
        t_copy.as_secs_f64() * 1e3,
        mib_s(GIB, t_copy)
    );
    drop(d);
    if let Some((mnt, _img)) = xfs_mount() {
        let sdir = tempfile::tempdir().unwrap();
        let d = Daemon::start(sdir.path());
        let t_ref = clone_time(
            &d,
            "file-reflink",
            &format!("dir_path={}/p", mnt.path().display()),
        );
        println!(
            "| clone 1 GiB private, reflink (XFS) | {:.1} ms ({:.0}x faster) |",
            t_ref.as_secs_f64() * 1e3,
            t_copy.as_secs_f64() / t_ref.as_secs_f64()
        );
        drop(d);
        let _ = Command::new("umount").arg(mnt.path()).status();
    } else {
        println!("| clone 1 GiB private, reflink (XFS) | skipped (needs root to loop-mount XFS) |");
    }

    // Import throughput: the service program vs dd, same data through a pipe, 3 rounds.
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let data = dir.path().join("source.img");
    std::fs::File::create(&data).unwrap();
    fill(&data, GIB);
    let mut ratios = Vec::new();
    let (mut best_imp, mut best_dd) = (Duration::MAX, Duration::MAX);
    for round in 0..3 {
        let (ti, td) = import_vs_dd(&d, &data, round);
        best_imp = best_imp.min(ti);
        best_dd = best_dd.min(td);
        ratios.push(td.as_secs_f64() / ti.as_secs_f64());
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| import 1 GiB via qubes-volume-import (best of 3) | {:.0} MiB/s |",
        mib_s(GIB, best_imp)
    );
    println!(
        "| dd of the same stream (best of 3) | {:.0} MiB/s |",
        mib_s(GIB, best_dd)
    );
    println!(
        "| throughput ratio import/dd (median of 3 paired rounds) | {:.2} (target >= 0.8) |",
        ratios[1]
    );
    drop(d);

    // Info for 1000 volumes: 250 standalone qubes x (root, private, volatile, kernel).
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    d.call("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    for i in 0..250 {
        d.call(
            "admin.vm.Create.StandaloneVM",
            "dom0",
            "",
            format!("name=q{i} label=red").as_bytes(),
        );
    }
    let socket = dir.path().join("qubesd.sock");
    let mut lat = Vec::with_capacity(1000);
    let t = Instant::now();
    for i in 0..250 {
        for vol in ["root", "private", "volatile", "kernel"] {
            let req = Request::encode("admin.vm.volume.Info", vol, "dom0", &format!("q{i}"), b"");
            let t1 = Instant::now();
            let r = call_raw(&socket, &req).unwrap();
            lat.push(t1.elapsed());
            assert!(r.starts_with(b"0\0"));
        }
    }
    let total = t.elapsed();
    println!(
        "| volume.Info for 1000 volumes (sequential) | {:.0} ms total, p50 {:.0} us, p99 {:.0} us |",
        total.as_secs_f64() * 1e3,
        percentile(&mut lat, 0.5).as_secs_f64() * 1e6,
        percentile(&mut lat, 0.99).as_secs_f64() * 1e6
    );
    let t = Instant::now();
    let list = d.call("admin.pool.volume.List", "dom0", "varlibqubes", b"");
    println!(
        "| pool.volume.List (750 file volumes) | {:.1} ms ({} lines) |",
        t.elapsed().as_secs_f64() * 1e3,
        list.lines().count()
    );
}
