//! The file driver's lifecycle, snapshots disabled, and calls that go on while a clone copies.

use crate::support::*;

#[test]
pub(crate) fn file_driver_lifecycle() {
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

#[test]
pub(crate) fn snapshots_disabled_runs_on_the_volume_itself() {
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
pub(crate) fn other_calls_go_on_while_a_clone_copies() {
    let d = TestDaemon::start();
    if reflinks_here(d.dir.path()) {
        crate::common::skipped(
            "clone concurrency test: this filesystem reflinks, copies are instant",
        );
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

/// A kernel volume in a `file` pool (default_pool_kernel reset to the default pool) has no
/// size: the file driver refuses it (the reference fails its creation with an assertion
/// and no answer), the qube is not created, and no file is left to break the next one.
#[test]
fn a_kernel_volume_in_a_file_pool_is_refused_and_leaves_nothing() {
    let d = TestDaemon::start();
    d.ok(
        "admin.vm.Create.TemplateVM",
        "dom0",
        "",
        b"name=fedora label=black",
    );
    d.ok("admin.property.Reset", "dom0", "default_pool_kernel", b"");
    let files_before = files_under(d.dir.path());
    for name in ["k1", "k2"] {
        assert_eq!(
            d.call(
                "admin.vm.Create.AppVM",
                "dom0",
                "fedora",
                format!("name={name} label=red").as_bytes()
            ),
            b"2\0StoragePoolException\0\0Volume size must be > 0\0".to_vec(),
            "{name}"
        );
        assert_eq!(
            d.call("admin.vm.property.Get", name, "label", b""),
            format!("2\0QubesVMNotFoundError\0\0No such domain: '{name}'\0").into_bytes()
        );
    }
    assert_eq!(
        files_under(d.dir.path()),
        files_before,
        "nothing left on disk"
    );
}

/// Every file below `dir` but the store's own (`qubes.xml`, its journal).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qubes.xml"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
