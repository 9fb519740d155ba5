//! Storage details as the reference has them: where snapshot volumes live and what they
//! follow, the pool's volume list order, a second import, a disposable's volumes on disk.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestDaemon;

fn info(d: &TestDaemon, vm: &str, vol: &str, key: &str) -> String {
    let text = d.ok("admin.vm.volume.Info", vm, vol, b"");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in {text}"))
        .to_string()
}

/// fedora, work and a disposable template `dvm` in the default pool, and a file pool `p1`.
fn setup() -> TestDaemon {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=dvm label=red",
    );
    d.ok(
        "admin.vm.property.Set",
        "dvm",
        "template_for_dispvms",
        b"True",
    );
    let p1 = d.dir.path().join("p1");
    d.ok(
        "admin.pool.Add",
        "dom0",
        "file",
        format!("name=p1\ndir_path={}", p1.display()).as_bytes(),
    );
    d
}

#[test]
fn snapshots_live_with_their_origin_and_follow_the_template() {
    let d = setup();
    let default = d.ok("admin.property.Get", "dom0", "default_pool", b"");
    let default = default.rsplit(' ').next().unwrap().to_string();
    d.ok(
        "admin.vm.CreateInPool.AppVM",
        "dom0",
        "fedora",
        b"name=inp1 label=red pool=p1",
    );
    assert_eq!(info(&d, "inp1", "root", "pool"), default);
    assert_eq!(
        info(&d, "inp1", "root", "source"),
        "vm-templates/fedora/root"
    );
    assert_eq!(info(&d, "inp1", "private", "pool"), "p1");
    assert_eq!(info(&d, "inp1", "volatile", "pool"), "p1");
    assert_eq!(
        d.call(
            "admin.vm.CreateInPool.AppVM",
            "dom0",
            "fedora",
            b"name=inp2 label=red pool:root=p1"
        ),
        b"2\0QubesException\0\0Snapshot volume root must be in the same pool as its origin (root volume of template),cannot move to pool p1 \0"
    );
    // The pool lists the volumes in the order the qubes came.
    assert_eq!(
        d.ok("admin.pool.volume.List", "dom0", "p1", b""),
        "appvms/inp1/private\nappvms/inp1/volatile\n"
    );
    let listed = d.ok("admin.pool.volume.List", "dom0", &default, b"");
    assert!(
        listed.starts_with("vm-templates/fedora/root\nvm-templates/fedora/private\n"),
        "{listed}"
    );
    // A disposable's snapshots come from the far end of the template chain; a new template
    // brings new origins.
    d.ok(
        "admin.vm.Create.DispVM",
        "dom0",
        "dvm",
        b"name=dx label=red",
    );
    assert_eq!(info(&d, "dx", "root", "source"), "vm-templates/fedora/root");
    assert_eq!(info(&d, "dx", "private", "source"), "appvms/dvm/private");
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=sdvm label=red",
    );
    d.ok(
        "admin.vm.property.Set",
        "sdvm",
        "template_for_dispvms",
        b"True",
    );
    d.ok("admin.vm.property.Set", "dx", "template", b"sdvm");
    assert_eq!(info(&d, "dx", "root", "source"), "appvms/sdvm/root");
    assert_eq!(info(&d, "dx", "private", "source"), "appvms/sdvm/private");
}

#[test]
fn a_grown_file_template_grows_its_snapshots() {
    let d = TestDaemon::start();
    let p = d.dir.path().join("files");
    d.ok(
        "admin.pool.Add",
        "dom0",
        "file",
        format!("name=files\ndir_path={}", p.display()).as_bytes(),
    );
    d.ok(
        "admin.vm.CreateInPool.TemplateVM",
        "dom0",
        "",
        b"name=fedora label=black pool=files",
    );
    d.ok(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora",
        b"name=work label=red",
    );
    d.ok("admin.vm.volume.Resize", "fedora", "root", b"21474836480");
    assert_eq!(info(&d, "work", "root", "size"), "21474836480");
    // A second import into a volume whose import is still being written is refused.
    let internal = d.dir.path().join("qubesd.internal.sock");
    let begin = qubes_api::Request::encode(
        "internal.vm.volume.ImportBegin",
        "private",
        "dom0",
        "fedora",
        b"",
    );
    let first = d.raw_on(&internal, &begin);
    assert!(
        first.starts_with(b"0\0"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    let pending = p.join("vm-templates/fedora/private-import.img");
    assert_eq!(
        d.raw_on(&internal, &begin),
        format!(
            "2\0StoragePoolException\0\0Volume {} already exists\0",
            pending.display()
        )
        .into_bytes()
    );
}

#[test]
fn a_disposable_is_laid_out_on_disk_when_created() {
    let d = TestDaemon::start();
    let p = d.dir.path().join("files");
    d.ok(
        "admin.pool.Add",
        "dom0",
        "file",
        format!("name=files\ndir_path={}", p.display()).as_bytes(),
    );
    for q in ["default_pool", "default_pool_volatile"] {
        d.ok("admin.property.Set", "dom0", q, b"files");
    }
    d.with_basic_qubes();
    d.ok(
        "admin.vm.property.Set",
        "work",
        "template_for_dispvms",
        b"True",
    );
    let disp = d.ok("admin.vm.CreateDisposable", "work", "", b"");
    let volatile = p.join(format!("appvms/{disp}/volatile.img"));
    assert_eq!(
        std::fs::metadata(&volatile).unwrap().len(),
        12 * 1024 * 1024 * 1024
    );
}

#[test]
fn pool_drivers_and_the_kernel_pool_as_the_reference() {
    let d = TestDaemon::start();
    // callback and zfs are listed as the reference lists them, but not served.
    let drivers = d.ok("admin.pool.ListDrivers", "dom0", "", b"");
    assert!(drivers.starts_with("callback conf_id\nfile "), "{drivers}");
    assert!(
        drivers.ends_with(
            "\nzfs revisions_to_keep container ephemeral_volatile snap_on_start_forensics\n"
        ),
        "{drivers}"
    );
    assert_eq!(
        d.call("admin.pool.Add", "dom0", "zfs", b"name=z\ncontainer=tank"),
        b"2\0StoragePoolException\0\0The zfs storage driver is not available in this qubesd\0"
    );
    // The kernel pool has neither revisions nor ephemeral volatile volumes: 0 and a bool
    // are accepted and nothing changes (the reference sets attributes it does not use).
    let kernel_info = d.ok("admin.pool.Info", "dom0", "linux-kernel", b"");
    d.ok(
        "admin.pool.Set.revisions_to_keep",
        "dom0",
        "linux-kernel",
        b"0",
    );
    d.ok(
        "admin.pool.Set.ephemeral_volatile",
        "dom0",
        "linux-kernel",
        b"True",
    );
    assert_eq!(
        d.ok("admin.pool.Info", "dom0", "linux-kernel", b""),
        kernel_info
    );
    assert_eq!(
        d.call(
            "admin.pool.Set.revisions_to_keep",
            "dom0",
            "linux-kernel",
            b"1"
        ),
        b"2\0QubesValueError\0\0LinuxKernel supports only revisions_to_keep=0\0"
    );
}
