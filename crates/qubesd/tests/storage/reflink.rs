//! The file-reflink driver: its lifecycle on sparse copies, and on a loop-mounted XFS with real
//! reflinks.

use crate::support::*;

#[test]
pub(crate) fn reflink_driver_lifecycle_on_copies() {
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
pub(crate) fn reflink_lifecycle(d: &TestDaemon, dir: &Path) {
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
pub(crate) fn reflink_driver_on_xfs_uses_real_reflinks() {
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

pub(crate) fn free_bytes(dir: &Path) -> u64 {
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
