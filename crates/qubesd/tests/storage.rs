//! Storage on real files: pool calls, each file driver's create / snapshot on start / commit
//! on stop / revert / resize / clone / import, and the import service program.
//!
//! The `file-reflink` driver runs twice: on the temporary directory's filesystem with
//! `setup_check=False` (sparse copies; ext4 here), and, when run as root with `mkfs.xfs`, on
//! a loop-mounted XFS with reflinks (real FICLONE). LVM thin runs in `lvm_thin.rs`.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Events, TestDaemon};

const GIB: u64 = 1 << 30;

fn info(d: &TestDaemon, vm: &str, vol: &str) -> BTreeMap<String, String> {
    d.ok("admin.vm.volume.Info", vm, vol, b"")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn write_at(path: &Path, data: &[u8], off: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, off).unwrap();
    f.sync_all().unwrap();
}

fn read_at(path: &Path, len: usize, off: u64) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, off).unwrap();
    buf
}

/// Runs the import service program the way qubesadmin runs it in dom0: through the names
/// meson installs in `/etc/qubes-rpc` (a symlink to the binary, and one to that).
fn import(d: &TestDaemon, vm: &str, vol: &str, with_size: bool, data: &[u8]) -> Vec<u8> {
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

fn add_pool(d: &TestDaemon, driver: &str, options: &str) {
    d.ok("admin.pool.Add", "dom0", driver, options.as_bytes());
}

#[test]
fn pool_calls() {
    let d = TestDaemon::start();
    let dir = d.dir.path().to_str().unwrap().to_string();
    assert_eq!(
        d.ok("admin.pool.ListDrivers", "dom0", "", b""),
        "callback conf_id\n\
         file revisions_to_keep dir_path ephemeral_volatile\n\
         file-reflink revisions_to_keep dir_path setup_check ephemeral_volatile\n\
         linux-kernel dir_path\n\
         lvm_thin revisions_to_keep volume_group thin_pool ephemeral_volatile\n\
         zfs revisions_to_keep container ephemeral_volatile snap_on_start_forensics\n"
    );
    assert_eq!(
        d.ok("admin.pool.List", "dom0", "", b""),
        "varlibqubes\nlinux-kernel\n"
    );
    // A first start sets the default pool up as the reference does.
    for sub in ["appvms", "vm-templates"] {
        assert!(d.dir.path().join(sub).is_dir(), "{sub} created");
    }
    assert_eq!(
        d.ok("admin.pool.Info", "dom0", "linux-kernel", b""),
        format!(
            "dir_path={dir}/vm-kernels\ndriver=linux-kernel\nname=linux-kernel\nincluded_in=varlibqubes\n"
        )
    );
    let vi = d.ok("admin.pool.Info", "dom0", "varlibqubes", b"");
    assert!(
        vi.starts_with(&format!("dir_path={dir}\ndriver=file")),
        "{vi}"
    );
    assert!(
        vi.contains("\nname=varlibqubes\nrevisions_to_keep=1\nsize="),
        "{vi}"
    );
    let usage = d.ok("admin.pool.UsageDetails", "dom0", "varlibqubes", b"");
    let keys: Vec<&str> = usage
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(keys, ["data_size", "data_usage"]);
    assert_eq!(
        d.ok("admin.pool.volume.List", "dom0", "linux-kernel", b""),
        "6.6.1\n"
    );

    // Add: every refusal, in the reference's order.
    let add =
        |driver: &str, payload: &str| d.call("admin.pool.Add", "dom0", driver, payload.as_bytes());
    assert_eq!(
        add("nosuch", "name=x"),
        b"2\0PermissionDenied\0\0Argument not in 'available drivers'\0"
    );
    assert_eq!(
        add("file", "name=x\ndir_path"),
        b"2\0ProtocolError\0\0Options must be separated by equal sign\0"
    );
    assert_eq!(
        add("file", "name=x\nname=y"),
        b"2\0ProtocolError\0\0Options must be unique\0"
    );
    assert_eq!(
        add("file", "dir_path=/x"),
        b"2\0ProtocolError\0\0Pool configuration must contain key: name\0"
    );
    assert_eq!(
        add("file", "name=a/b\ndir_path=/x"),
        b"2\0ProtocolError\0\0Pool name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.\0"
    );
    assert_eq!(
        add("file", "name=x\ncolour=blue"),
        b"2\0ProtocolError\0\0Unexpected driver options found\0"
    );
    assert_eq!(
        add("lvm_thin", "name=x"),
        b"2\0QubesException\0\0missing required driver options: volume_group thin_pool\0"
    );
    assert_eq!(
        add("file", &format!("name=varlibqubes\ndir_path={dir}/other")),
        b"2\0QubesPoolInUseError\0\0Storage pool is in use: 'varlibqubes'\0"
    );
    assert_eq!(
        add(
            "file",
            &format!("name=x\ndir_path={dir}/x\nrevisions_to_keep=2")
        ),
        b"",
        "the file driver keeps at most one revision: a generic failure"
    );

    let mut ev = Events::open(&d, "dom0");
    add_pool(
        &d,
        "file",
        &format!("name=extra\ndir_path={dir}/extra/../extra2"),
    );
    assert_eq!(ev.next_text(), " pool-add pool=extra");
    assert!(Path::new(&format!("{dir}/extra2/appvms")).is_dir());
    let xml = d.saved();
    assert!(
        xml.contains(&format!(
            "<pool name=\"extra\" dir_path=\"{dir}/extra2\" driver=\"file\" revisions_to_keep=\"1\" ephemeral_volatile=\"False\"/>"
        )),
        "{xml}"
    );
    assert_eq!(
        d.call("admin.pool.Set.revisions_to_keep", "dom0", "extra", b"-2"),
        b"2\0ProtocolError\0\0Value can't be lower than -1\0"
    );
    assert_eq!(
        d.call("admin.pool.Set.revisions_to_keep", "dom0", "extra", b"2"),
        b""
    );
    d.ok("admin.pool.Set.revisions_to_keep", "dom0", "extra", b"0");
    d.ok("admin.pool.Set.ephemeral_volatile", "dom0", "extra", b"yes");
    assert_eq!(
        d.call(
            "admin.pool.Set.ephemeral_volatile",
            "dom0",
            "extra",
            b"maybe"
        ),
        b"2\0ProtocolError\0\0Payload is not boolean ASCII\0"
    );
    let i = d.ok("admin.pool.Info", "dom0", "extra", b"");
    assert!(
        i.starts_with(&format!(
            "dir_path={dir}/extra2\ndriver=file\nephemeral_volatile=True\nname=extra\nrevisions_to_keep=0\nsize="
        )),
        "{i}"
    );
    assert!(i.ends_with("\nincluded_in=varlibqubes\n"), "{i}");

    // A pool with a qube in it, or a default one, stays.
    d.ok(
        "admin.vm.CreateInPool.StandaloneVM",
        "dom0",
        "",
        b"name=box label=red pool=extra",
    );
    let mut ev = Events::open(&d, "dom0");
    assert_eq!(
        d.call("admin.pool.Remove", "dom0", "extra", b""),
        b"2\0QubesPoolInUseError\0\0Storage pool is in use: 'extra'\0"
    );
    // Refused before the pre-event: only a pool that goes gets it.
    d.ok("admin.vm.Remove", "box", "", b"");
    assert_eq!(ev.next_text(), " domain-pre-delete vm=box");
    assert_eq!(
        d.call("admin.pool.Remove", "dom0", "linux-kernel", b""),
        b"2\0QubesPoolInUseError\0\0Storage pool is in use: set as default_pool_kernel\0"
    );
    assert!(!Path::new(&format!("{dir}/extra2/appvms/box/private.img")).exists());
    d.ok("admin.pool.Remove", "dom0", "extra", b"");
    assert!(!d.saved().contains("\"extra\""));

    // file-reflink checks the filesystem unless told not to.
    if !reflinks_here(d.dir.path()) {
        let r =
            String::from_utf8(add("file-reflink", &format!("name=r\ndir_path={dir}/r"))).unwrap();
        assert_eq!(
            r,
            format!(
                "2\0StoragePoolException\0\0The filesystem for '{dir}/r' does not support reflinks. If you can live with delays on VM startup/shutdown/etc. and wasted disk space, pass the 'setup_check=False' option.\0"
            )
        );
        assert!(
            !Path::new(&format!("{dir}/r")).exists(),
            "created dir removed again"
        );
    }
    add_pool(
        &d,
        "file-reflink",
        &format!("name=r\ndir_path={dir}/r\nsetup_check=no"),
    );
    assert_eq!(
        d.ok("admin.pool.Info", "dom0", "r", b"")
            .lines()
            .take(5)
            .collect::<Vec<_>>(),
        [
            &format!("dir_path={dir}/r") as &str,
            "driver=file-reflink",
            "ephemeral_volatile=False",
            "name=r",
            "revisions_to_keep=1"
        ]
    );
}

fn reflinks_here(dir: &Path) -> bool {
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
fn qubes_in(d: &TestDaemon, pool: &str) {
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
fn clone_import_clear(d: &TestDaemon, private: &Path) {
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

fn common_refusals(d: &TestDaemon) {
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

#[test]
fn reflink_driver_lifecycle_on_copies() {
    let d = TestDaemon::start();
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    let dir = d.dir.path().join("r");
    add_pool(
        &d,
        "file-reflink",
        &format!("name=r\ndir_path={}\nsetup_check=False", dir.display()),
    );
    d.ok("admin.property.Set", "dom0", "default_pool", b"r");
    reflink_lifecycle(&d, &dir);
}

/// The full volume story on a file-reflink pool at `dir`.
fn reflink_lifecycle(d: &TestDaemon, dir: &Path) {
    qubes_in(d, "r");
    let root_img = dir.join("vm-templates/tpl/root.img");
    let app_private = dir.join("appvms/app/private.img");
    assert_eq!(std::fs::metadata(&root_img).unwrap().len(), 10 * GIB);
    assert_eq!(std::fs::metadata(&app_private).unwrap().len(), 2 * GIB);
    assert!(
        !dir.join("appvms/app/root.img").exists(),
        "a snapshot volume has no image"
    );
    assert_eq!(
        d.ok("admin.vm.volume.List", "app", "", b""),
        "root\nprivate\nvolatile\nkernel\n"
    );
    assert_eq!(
        d.ok("admin.vm.volume.Info", "app", "root", b""),
        format!(
            "pool=r\nvid=appvms/app/root\nsize=10737418240\nusage=0\nrw=True\nsource=vm-templates/tpl/root\npath={}/appvms/app/root-dirty.img\nsave_on_stop=False\nsnap_on_start=True\nrevisions_to_keep=0\nephemeral=False\nis_outdated=False\n",
            dir.display()
        )
    );
    common_refusals(d);

    // Start: the root is a snapshot of the template's, the private a snapshot of itself.
    write_at(&root_img, b"TEMPLATE1", 0);
    d.ok("admin.vm.Start", "app", "", b"");
    let app_root_dirty = dir.join("appvms/app/root-dirty.img");
    let app_private_dirty = dir.join("appvms/app/private-dirty.img");
    assert_eq!(read_at(&app_root_dirty, 9, 0), b"TEMPLATE1");
    assert!(app_private_dirty.exists());
    assert_eq!(
        std::fs::metadata(dir.join("appvms/app/volatile-dirty.img"))
            .unwrap()
            .len(),
        10 * GIB
    );
    write_at(&app_private_dirty, b"DATA1", 4096);
    assert_eq!(info(d, "app", "root")["is_outdated"], "False");
    assert_eq!(
        d.call("admin.vm.volume.Revert", "app", "private", b"1"),
        b"",
        "no revision yet"
    );

    // The template changes (a start and stop of its own): app's root is outdated.
    d.ok("admin.vm.Start", "tpl", "", b"");
    write_at(
        &dir.join("vm-templates/tpl/root-dirty.img"),
        b"TEMPLATE2",
        0,
    );
    d.ok("admin.vm.Shutdown", "tpl", "wait", b"");
    assert_eq!(read_at(&root_img, 9, 0), b"TEMPLATE2");
    assert_eq!(info(d, "app", "root")["is_outdated"], "True");
    assert_eq!(
        d.ok("admin.vm.volume.ListSnapshots", "tpl", "root", b""),
        "1\n"
    );

    // Online resize of a running qube's volume: the image grows and the size is saved; the
    // test driver cannot tell a running domain, which the caller hears (as with a failed
    // qubes.ResizeDisk in the reference).
    assert_eq!(
        String::from_utf8(d.call("admin.vm.volume.Resize", "app", "private", b"3221225472"))
            .unwrap(),
        "2\0StoragePoolException\0\0Online resize of volume private failed (you need to resize filesystem manually): this function is not supported by the connection driver: virDomainBlockResize\0"
    );
    assert_eq!(
        std::fs::metadata(&app_private_dirty).unwrap().len(),
        3 * GIB
    );
    assert_eq!(info(d, "app", "private")["size"], "3221225472");

    // Stop: private committed (old one kept as revision 1), snapshots dropped.
    d.ok("admin.vm.Shutdown", "app", "wait", b"");
    assert!(!app_private_dirty.exists() && !app_root_dirty.exists());
    assert!(!dir.join("appvms/app/volatile-dirty.img").exists());
    assert_eq!(read_at(&app_private, 5, 4096), b"DATA1");
    assert_eq!(
        d.ok("admin.vm.volume.ListSnapshots", "app", "private", b""),
        "1\n"
    );
    let revs: Vec<String> = std::fs::read_dir(dir.join("appvms/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("private.img."))
        .collect();
    assert_eq!(revs.len(), 1);
    assert!(
        revs[0].starts_with("private.img.1@") && revs[0].ends_with('Z'),
        "{revs:?}"
    );

    // Revert: the data before DATA1 comes back; the reverted-from state is a new revision.
    d.ok("admin.vm.volume.Revert", "app", "private", b"1\n");
    assert_eq!(read_at(&app_private, 5, 4096), [0; 5]);
    assert_eq!(
        d.ok("admin.vm.volume.ListSnapshots", "app", "private", b""),
        "2\n"
    );
    d.ok("admin.vm.volume.Revert", "app", "private", b"2");
    assert_eq!(read_at(&app_private, 5, 4096), b"DATA1");

    // revisions_to_keep 0: commits keep nothing.
    d.ok(
        "admin.vm.volume.Set.revisions_to_keep",
        "app",
        "private",
        b"0",
    );
    d.ok("admin.vm.Start", "app", "", b"");
    d.ok("admin.vm.Shutdown", "app", "wait", b"");
    assert_eq!(
        d.ok("admin.vm.volume.ListSnapshots", "app", "private", b""),
        ""
    );

    // Shrinking is not refused by qubesd (the client refuses it): the image is truncated.
    d.ok("admin.vm.volume.Resize", "app", "private", b"8192");
    assert_eq!(std::fs::metadata(&app_private).unwrap().len(), 8192);
    assert_eq!(read_at(&app_private, 5, 4096), b"DATA1");
    d.ok("admin.vm.volume.Resize", "app", "private", b"2147483648");
    assert_eq!(
        d.call("admin.vm.volume.Resize", "app", "kernel", b"1"),
        b"",
        "the reference's kernel volume has no resize: a generic failure"
    );

    clone_import_clear(d, &app_private);
}

#[test]
fn file_driver_lifecycle() {
    let d = TestDaemon::start();
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    let dir = d.dir.path().join("f");
    add_pool(&d, "file", &format!("name=r\ndir_path={}", dir.display()));
    d.ok("admin.property.Set", "dom0", "default_pool", b"r");
    qubes_in(&d, "r");
    let root_img = dir.join("vm-templates/tpl/root.img");
    let private = dir.join("appvms/app/private.img");
    assert_eq!(
        d.ok("admin.vm.volume.Info", "app", "root", b""),
        format!(
            "pool=r\nvid=appvms/app/root\nsize=10737418240\nusage=0\nrw=True\nsource=vm-templates/tpl/root\npath={}\nsave_on_stop=False\nsnap_on_start=True\nrevisions_to_keep=0\nephemeral=False\nis_outdated=False\n",
            root_img.display()
        )
    );
    common_refusals(&d);
    assert_eq!(
        d.call("admin.vm.volume.Resize", "app", "root", b"1"),
        b"2\0StoragePoolException\0\0Cannot resize volume based on a template - resizethe template instead\0"
    );
    assert_eq!(
        d.call(
            "admin.vm.volume.Set.revisions_to_keep",
            "app",
            "private",
            b"2"
        ),
        b"",
        "FileVolume keeps at most one revision"
    );

    d.ok("admin.vm.Start", "app", "", b"");
    let cow = dir.join("appvms/app/private-cow.img");
    assert!(cow.exists() && dir.join("appvms/app/root-cow.img").exists());
    assert_eq!(
        std::fs::metadata(dir.join("appvms/app/volatile.img"))
            .unwrap()
            .len(),
        10 * GIB
    );
    write_at(&private, b"DATA1", 4096);
    d.ok("admin.vm.Shutdown", "app", "wait", b"");
    assert!(!dir.join("appvms/app/root-cow.img").exists());
    assert!(!dir.join("appvms/app/volatile.img").exists());
    assert!(dir.join("appvms/app/private-cow.img.old").exists());
    assert_eq!(
        d.ok("admin.vm.volume.ListSnapshots", "app", "private", b""),
        "old\n"
    );
    assert_eq!(
        d.call("admin.vm.volume.Revert", "app", "private", b"old"),
        b"",
        "the file driver cannot revert: generic failure"
    );
    clone_import_clear(&d, &private);
}

/// A loop-mounted XFS with reflinks, when running as root with the tools.
struct XfsMount {
    mnt: tempfile::TempDir,
    _img: tempfile::NamedTempFile,
}

impl XfsMount {
    fn new() -> Option<XfsMount> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            common::skipped("real-reflink test: needs root to loop-mount XFS");
            return None;
        }
        let img = tempfile::NamedTempFile::new().ok()?;
        img.as_file().set_len(3 * GIB).ok()?;
        let mkfs = Command::new("mkfs.xfs")
            .args(["-q", "-f", "-m", "reflink=1"])
            .arg(img.path())
            .status();
        if !mkfs.is_ok_and(|s| s.success()) {
            common::skipped("real-reflink test: mkfs.xfs missing or failed");
            return None;
        }
        let mnt = tempfile::tempdir().ok()?;
        let mount = Command::new("mount")
            .args(["-o", "loop"])
            .arg(img.path())
            .arg(mnt.path())
            .status();
        if !mount.is_ok_and(|s| s.success()) {
            common::skipped("real-reflink test: cannot loop-mount here");
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

#[test]
fn reflink_driver_on_xfs_uses_real_reflinks() {
    let Some(xfs) = XfsMount::new() else { return };
    let d = TestDaemon::start();
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    let dir = xfs.mnt.path().join("pool");
    // No setup_check option: the filesystem check must pass.
    add_pool(
        &d,
        "file-reflink",
        &format!("name=r\ndir_path={}", dir.display()),
    );
    d.ok("admin.property.Set", "dom0", "default_pool", b"r");
    // A 1 GiB private full of data is snapshotted at start without using more space.
    reflink_lifecycle(&d, &dir);
    d.ok("admin.vm.volume.Resize", "tpl", "private", b"1073741824");
    let tpl_private = dir.join("vm-templates/tpl/private.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&tpl_private)
        .unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    for i in 0..1024u64 {
        f.write_all_at(&chunk, i << 20).unwrap();
    }
    f.sync_all().unwrap();
    let before = free_bytes(&dir);
    d.ok("admin.vm.Start", "tpl", "", b"");
    let after = free_bytes(&dir);
    assert!(
        before.saturating_sub(after) < 64 << 20,
        "a 1 GiB snapshot cost {} bytes",
        before - after
    );
    d.ok("admin.vm.Kill", "tpl", "", b"");
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn snapshots_disabled_runs_on_the_volume_itself() {
    let d = TestDaemon::start();
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    let dir = d.dir.path().join("r");
    add_pool(
        &d,
        "file-reflink",
        &format!("name=r\ndir_path={}\nsetup_check=no", dir.display()),
    );
    d.ok(
        "admin.vm.CreateInPool.StandaloneVM",
        "dom0",
        "",
        b"name=box label=red pool=r",
    );
    let clean = dir.join("appvms/box/private.img");
    let dirty = dir.join("appvms/box/private-dirty.img");
    write_at(&clean, b"KEEP", 0);
    d.ok(
        "admin.vm.volume.Set.revisions_to_keep",
        "box",
        "private",
        b"-1",
    );
    assert_eq!(info(&d, "box", "private")["revisions_to_keep"], "-1");
    d.ok("admin.vm.Start", "box", "", b"");
    // No copy: the image itself became the running one.
    assert!(!clean.exists() && dirty.exists());
    assert_eq!(read_at(&dirty, 4, 0), b"KEEP");
    assert_eq!(
        d.call(
            "admin.vm.volume.Set.revisions_to_keep",
            "box",
            "private",
            b"1"
        ),
        b"2\0QubesVMNotHaltedError\0\0Domain is not powered off: 'box'\0",
        "switching snapshots back on needs the qube halted"
    );
    write_at(&dirty, b"MORE", 8);
    d.ok("admin.vm.Shutdown", "box", "wait", b"");
    assert!(clean.exists() && !dirty.exists());
    assert_eq!(read_at(&clean, 12, 0), b"KEEP\0\0\0\0MORE");
    assert_eq!(
        d.ok("admin.vm.volume.ListSnapshots", "box", "private", b""),
        ""
    );
}

#[test]
fn other_calls_go_on_while_a_clone_copies() {
    let d = TestDaemon::start();
    if reflinks_here(d.dir.path()) {
        common::skipped("clone concurrency test: this filesystem reflinks, copies are instant");
        return;
    }
    let dir = d.dir.path().join("r");
    add_pool(
        &d,
        "file-reflink",
        &format!("name=r\ndir_path={}\nsetup_check=no", dir.display()),
    );
    for q in ["src", "dst"] {
        d.ok(
            "admin.vm.CreateInPool.StandaloneVM",
            "dom0",
            "",
            format!("name={q} label=red pool=r").as_bytes(),
        );
    }
    // 384 MiB of data: a copy that takes a noticeable time.
    let size: u64 = 384 << 20;
    d.ok(
        "admin.vm.volume.Resize",
        "src",
        "private",
        size.to_string().as_bytes(),
    );
    let src = dir.join("appvms/src/private.img");
    let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    let chunk = vec![0xa5u8; 1 << 20];
    for i in 0..(size >> 20) {
        f.write_all_at(&chunk, i << 20).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    // A write lease on the source holds the copy at its first read (the daemon's open of
    // the file waits until the lease is released), so the test knows the copy is under way
    // for as long as it wants, whatever the speed of the disk.
    // SAFETY: ignoring SIGIO (the lease-break notice) changes only this test process.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    let lease = std::fs::File::open(&src).unwrap();
    // SAFETY: fcntl on a descriptor we own.
    let leased = unsafe { libc::fcntl(lease.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
    assert_eq!(leased, 0, "{}", std::io::Error::last_os_error());
    let token = d.ok("admin.vm.volume.CloneFrom", "src", "private", b"");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let socket = d.socket();
    let clone = {
        let done = done.clone();
        std::thread::spawn(move || {
            let req = qubes_api::Request::encode(
                "admin.vm.volume.CloneTo",
                "private",
                "dom0",
                "dst",
                token.as_bytes(),
            );
            let r = qubes_api::client::call_raw(&socket, &req).unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        })
    };
    // Wait for the copy to be under way: its import file appears.
    let appvm_dir = dir.join("appvms/dst");
    let copying = || {
        std::fs::read_dir(&appvm_dir)
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("private-import.img")
                })
            })
            .unwrap_or(false)
    };
    let started = (0..10_000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(1));
        copying()
    });
    assert!(started, "the copy did not start");
    // Other calls are answered while the copy waits: a read and a write.
    let listed = d.ok("admin.vm.List", "dom0", "", b"");
    assert!(listed.contains("src class=StandaloneVM"));
    d.ok("admin.vm.feature.Set", "src", "during-copy", b"1");
    assert!(
        copying() && !done.load(std::sync::atomic::Ordering::SeqCst),
        "the other calls waited for the copy"
    );
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(lease.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    assert_eq!(clone.join().unwrap(), b"0\0");
    let dst = dir.join("appvms/dst/private.img");
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), size);
    assert_eq!(read_at(&dst, 4, size - 4), [0xa5; 4]);
    assert_eq!(info(&d, "dst", "private")["size"], size.to_string());
}
