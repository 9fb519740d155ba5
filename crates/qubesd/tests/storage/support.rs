//! What the storage tests share: volume info, reading and writing images, imports, pools, and
//! the checks every driver goes through (qubes in a pool, clone/import/clear, refusals).

pub(crate) use crate::common::{Events, TestDaemon};
pub(crate) use std::collections::BTreeMap;
pub(crate) use std::io::Write;
pub(crate) use std::os::fd::AsRawFd;
pub(crate) use std::os::unix::fs::{FileExt, MetadataExt};
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Command, Stdio};

pub(crate) const GIB: u64 = 1 << 30;

pub(crate) fn info(d: &TestDaemon, vm: &str, vol: &str) -> BTreeMap<String, String> {
    d.ok("admin.vm.volume.Info", vm, vol, b"")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub(crate) fn write_at(path: &Path, data: &[u8], off: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, off).unwrap();
    f.sync_all().unwrap();
}

pub(crate) fn read_at(path: &Path, len: usize, off: u64) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, off).unwrap();
    buf
}

/// Runs the import service program the way qubesadmin runs it in dom0: through the names
/// meson installs in `/etc/qubes-rpc` (a symlink to the binary, and one to that).
pub(crate) fn import(d: &TestDaemon, vm: &str, vol: &str, with_size: bool, data: &[u8]) -> Vec<u8> {
    let rpc = d.dir.path().join("qubes-rpc");
    let plain = rpc.join("admin.vm.volume.Import");
    if !plain.exists() {
        std::fs::create_dir_all(&rpc).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_qubes-volume-import"), &plain).unwrap();
        std::os::unix::fs::symlink(
            "admin.vm.volume.Import",
            rpc.join("admin.vm.volume.ImportWithSize"),
        )
        .unwrap();
    }
    let program = if with_size {
        rpc.join("admin.vm.volume.ImportWithSize")
    } else {
        plain
    };
    let mut child = Command::new(program)
        .arg(vol)
        .env(
            "QUBESD_INTERNAL_SOCKET",
            d.dir.path().join("qubesd.internal.sock"),
        )
        .env("QREXEC_REMOTE_DOMAIN", "dom0")
        .env("QREXEC_REQUESTED_TARGET", vm)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The program may stop reading early (refusal, too much data): a broken pipe is fine.
    let _ = stdin.write_all(data);
    drop(stdin);
    child.wait_with_output().unwrap().stdout
}

pub(crate) fn add_pool(d: &TestDaemon, driver: &str, options: &str) {
    d.ok("admin.pool.Add", "dom0", driver, options.as_bytes());
}

pub(crate) fn reflinks_here(dir: &Path) -> bool {
    let a = dir.join(".probe-a");
    std::fs::write(&a, b"x").unwrap();
    let ok = Command::new("cp")
        .arg("--reflink=always")
        .arg(&a)
        .arg(dir.join(".probe-b"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(dir.join(".probe-b"));
    ok
}

/// The qubes of the volume tests: template `tpl`, AppVM `app`, both in `pool`.
pub(crate) fn qubes_in(d: &TestDaemon, pool: &str) {
    d.ok(
        "admin.vm.CreateInPool.TemplateVM",
        "dom0",
        "",
        format!("name=tpl label=black pool={pool}").as_bytes(),
    );
    d.ok(
        "admin.vm.CreateInPool.AppVM",
        "dom0",
        "tpl",
        format!("name=app label=red pool={pool}").as_bytes(),
    );
}

/// The common part of both file-based drivers' tests: Info, clone, import, clear.
pub(crate) fn clone_import_clear(d: &TestDaemon, private: &Path) {
    // Clone app's private into a new qube's.
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "tpl",
        b"name=copy label=red",
    );
    let token = d.ok("admin.vm.volume.CloneFrom", "app", "private", b"");
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    let mut ev = Events::open(d, "copy");
    d.ok(
        "admin.vm.volume.CloneTo",
        "copy",
        "private",
        format!("{token}\n").as_bytes(),
    );
    assert_eq!(
        ev.next_text(),
        format!(
            "copy domain-import-volume name=private source={}",
            info(d, "app", "private")["vid"]
        )
    );
    let copy_private =
        PathBuf::from(info(d, "copy", "private")["path"].replace("-dirty.img", ".img"));
    let copy_private = if copy_private.exists() {
        copy_private
    } else {
        PathBuf::from(info(d, "copy", "private")["path"].clone())
    };
    assert_eq!(read_at(&copy_private, 5, 4096), b"DATA1");
    assert_eq!(
        d.call(
            "admin.vm.volume.CloneTo",
            "copy",
            "private",
            token.as_bytes()
        ),
        b"2\0QubesVolumeCopyTokenNotFoundError\0\0'Token to clone volume of qube was not found'\0",
        "a token is used once"
    );
    assert_eq!(
        d.call("admin.vm.volume.CloneTo", "copy", "private", "é".as_bytes()),
        b"2\0ProtocolError\0\0Token contains non-ASCII characters\0"
    );

    // Import through the service program: exact size, then short and long streams (on a
    // 16 MiB volume, to keep the streams small).
    d.ok("admin.vm.volume.Resize", "app", "private", b"16777216");
    let size = info(d, "app", "private")["size"].parse::<u64>().unwrap();
    let mut data = vec![0u8; size as usize];
    data[..7].copy_from_slice(b"IMPORT1");
    let end = data.len();
    data[end - 4..].copy_from_slice(b"TAIL");
    let mut ev = Events::open(d, "app");
    assert_eq!(import(d, "app", "private", false, &data), b"0\0");
    assert_eq!(
        ev.next_text(),
        format!("app domain-volume-import-begin volume=private size={size}")
    );
    assert_eq!(
        ev.next_text(),
        "app domain-volume-import-end volume=private success=True"
    );
    assert_eq!(read_at(private, 7, 0), b"IMPORT1");
    assert_eq!(read_at(private, 4, size - 4), b"TAIL");
    assert!(
        std::fs::metadata(private).unwrap().blocks() * 512 < 1 << 20,
        "zero blocks were skipped"
    );

    let short = import(d, "app", "private", false, b"SHORT");
    assert_eq!(
        String::from_utf8(short).unwrap(),
        format!(
            "2\0QubesException\0\0Data import failed: not enough data (copied 5 bytes, expected {size} bytes)\0"
        )
    );
    assert_eq!(read_at(private, 7, 0), b"IMPORT1", "old data kept");
    let mut long = data.clone();
    long.extend_from_slice(b"MORE");
    assert_eq!(
        String::from_utf8(import(d, "app", "private", false, &long)).unwrap(),
        format!("2\0QubesException\0\0Data import failed: too much data (expected {size} bytes)\0")
    );
    assert_eq!(read_at(private, 7, 0), b"IMPORT1", "old data kept");

    // With a size: the volume takes the new size.
    let mut sized = b"1048576\n".to_vec();
    sized.extend(std::iter::repeat_n(7u8, 1 << 20));
    assert_eq!(import(d, "app", "private", true, &sized), b"0\0");
    assert_eq!(info(d, "app", "private")["size"], "1048576");
    assert_eq!(std::fs::metadata(private).unwrap().len(), 1 << 20);
    assert_eq!(read_at(private, 3, 0), [7, 7, 7]);
    assert_eq!(
        import(d, "app", "private", true, b"12x\n"),
        b"2\0ProtocolError\0\0Size of new data contains non ASCII digits\0"
    );
    assert_eq!(
        import(d, "app", "nonexistent", false, b""),
        b"2\0ProtocolError\0\0Argument not in app volumes\0"
    );

    // Clear: an empty image of the same size.
    d.ok("admin.vm.volume.Clear", "app", "private", b"");
    assert_eq!(std::fs::metadata(private).unwrap().len(), 1 << 20);
    assert_eq!(read_at(private, 3, 0), [0, 0, 0]);

    // A running qube takes no import.
    d.ok("admin.vm.Start", "app", "", b"");
    assert_eq!(
        import(d, "app", "private", false, b""),
        b"2\0QubesVMNotHaltedError\0\0Domain is not powered off: 'app'\0"
    );
    d.ok("admin.vm.Kill", "app", "", b"");

    // Removing a qube removes its files.
    let copy_dir = copy_private.parent().unwrap().to_path_buf();
    d.ok("admin.vm.Remove", "copy", "", b"");
    assert!(!copy_dir.exists(), "{} left behind", copy_dir.display());
}

pub(crate) fn common_refusals(d: &TestDaemon) {
    assert_eq!(
        d.call("admin.vm.volume.Info", "app", "swap", b""),
        b"2\0PermissionDenied\0\0Argument not in 'app volumes'\0"
    );
    assert_eq!(d.ok("admin.vm.volume.List", "dom0", "", b""), "");
    assert_eq!(
        d.call("admin.vm.volume.Resize", "app", "private", b"-5"),
        b"2\0ProtocolError\0\0Volume size contains non ASCII digits\0"
    );
    assert_eq!(
        d.call("admin.vm.volume.Revert", "app", "private", b"a/b"),
        b"2\0ProtocolError\0\0Revision name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\0"
    );
    assert_eq!(
        d.call("admin.vm.volume.Revert", "app", "private", b"42"),
        b"",
        "an unknown revision is the reference's bare KeyError"
    );
    assert_eq!(
        d.call("admin.vm.volume.Set.rw", "app", "private", b"perhaps"),
        b"2\0ProtocolError\0\0Payload is not boolean ASCII\0"
    );
    assert_eq!(
        d.call("admin.vm.volume.Set.ephemeral", "app", "private", b"True"),
        b"2\0QubesValueError\0\0Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not writable volume\0"
    );
    d.ok("admin.vm.volume.Set.ephemeral", "app", "volatile", b"True");
    assert_eq!(info(d, "app", "volatile")["ephemeral"], "True");
    assert_eq!(
        d.call(
            "admin.vm.volume.Set.revisions_to_keep",
            "app",
            "private",
            b"-3"
        ),
        b"2\0QubesValueError\0\0Invalid value for revisions_to_keep\0"
    );
    assert_eq!(
        d.call("admin.vm.volume.Set.rw", "app", "kernel", b"True"),
        b"2\0QubesValueError\0\0LinuxModules supports only read-only volumes\0"
    );
    let dir = d.dir.path().to_str().unwrap();
    assert_eq!(
        d.ok("admin.vm.volume.Info", "app", "kernel", b""),
        format!(
            "pool=linux-kernel\nvid=6.6.1\nsize=0\nusage=0\nrw=False\nsource=\npath={dir}/vm-kernels/6.6.1/modules.img\nsave_on_stop=False\nsnap_on_start=False\nrevisions_to_keep=0\nephemeral=False\nis_outdated=False\n"
        )
    );
}

/// A loop-mounted XFS with reflinks, when running as root with the tools.
pub(crate) struct XfsMount {
    pub(crate) mnt: tempfile::TempDir,
    pub(crate) _img: tempfile::NamedTempFile,
}

impl XfsMount {
    pub(crate) fn new() -> Option<XfsMount> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            crate::common::skipped("real-reflink test: needs root to loop-mount XFS");
            return None;
        }
        let img = tempfile::NamedTempFile::new().ok()?;
        img.as_file().set_len(3 * GIB).ok()?;
        let mkfs = Command::new("mkfs.xfs")
            .args(["-q", "-f", "-m", "reflink=1"])
            .arg(img.path())
            .status();
        if !mkfs.is_ok_and(|s| s.success()) {
            crate::common::skipped("real-reflink test: mkfs.xfs missing or failed");
            return None;
        }
        let mnt = tempfile::tempdir().ok()?;
        let mount = Command::new("mount")
            .args(["-o", "loop"])
            .arg(img.path())
            .arg(mnt.path())
            .status();
        if !mount.is_ok_and(|s| s.success()) {
            crate::common::skipped("real-reflink test: cannot loop-mount here");
            return None;
        }
        Some(XfsMount { mnt, _img: img })
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
    }
}
