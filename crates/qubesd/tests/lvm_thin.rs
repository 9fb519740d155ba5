//! The `lvm_thin` driver on a real volume group: a loop device, a VG and a thin pool built
//! for the test. Needs root, lvm2 and the kernel's device-mapper thin target; without them
//! the test says SKIPPED and why (the parsing of `lvs` is unit-tested in the driver).

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::process::Command;

use common::TestDaemon;

struct Vg {
    name: String,
    loopdev: String,
    _img: tempfile::NamedTempFile,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Vg {
    fn new() -> Result<Vg, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root".into());
        }
        let img = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        img.as_file().set_len(2 << 30).map_err(|e| e.to_string())?;
        let loopdev = run("losetup", &["-f", "--show", img.path().to_str().unwrap()])?;
        let name = format!("qtest{}", std::process::id());
        let vg = Vg {
            name: name.clone(),
            loopdev: loopdev.clone(),
            _img: img,
        };
        run("lvm", &["pvcreate", "-q", &loopdev])?;
        run("lvm", &["vgcreate", "-q", &name, &loopdev])?;
        run(
            "lvm",
            &["lvcreate", "-q", "-T", &format!("{name}/pool"), "-L", "1G"],
        )?;
        Ok(vg)
    }
}

impl Drop for Vg {
    fn drop(&mut self) {
        let _ = run("lvm", &["vgremove", "-qff", &self.name]);
        let _ = run("lvm", &["pvremove", "-qff", &self.loopdev]);
        let _ = run("losetup", &["-d", &self.loopdev]);
    }
}

fn info(d: &TestDaemon, vm: &str, vol: &str, key: &str) -> String {
    d.ok("admin.vm.volume.Info", vm, vol, b"")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap()
}

#[test]
fn thin_volumes_on_a_loop_device() {
    let vg = match Vg::new() {
        Ok(vg) => vg,
        Err(e) => {
            common::skipped(&format!("lvm_thin test: {e}"));
            return;
        }
    };
    let d = TestDaemon::start();
    d.ok("admin.property.Set", "dom0", "default_kernel", b"6.6.1");
    assert_eq!(
        String::from_utf8(d.call(
            "admin.pool.Add",
            "dom0",
            "lvm_thin",
            format!("name=lvm\nvolume_group={}\nthin_pool=nope", vg.name).as_bytes()
        ))
        .unwrap(),
        format!(
            "2\0StoragePoolException\0\0Thin pool {}/nope does not exist\0",
            vg.name
        )
    );
    d.ok(
        "admin.pool.Add",
        "dom0",
        "lvm_thin",
        format!("name=lvm\nvolume_group={}\nthin_pool=pool", vg.name).as_bytes(),
    );
    let details = d.ok("admin.pool.UsageDetails", "dom0", "lvm", b"");
    assert!(
        details.starts_with("data_size=1073741824\ndata_usage="),
        "{details}"
    );
    assert!(details.contains("\nmetadata_size="), "{details}");
    d.ok(
        "admin.vm.CreateInPool.TemplateVM",
        "dom0",
        "",
        b"name=tpl label=black pool=lvm",
    );
    d.ok(
        "admin.vm.CreateInPool.AppVM",
        "dom0",
        "tpl",
        b"name=app label=red pool=lvm",
    );
    let vid = format!("{}/vm-app-private", vg.name);
    assert_eq!(info(&d, "app", "private", "vid"), vid);
    assert_eq!(info(&d, "app", "private", "size"), "2147483648");
    let dev = format!("/dev/{vid}");
    assert!(std::path::Path::new(&dev).exists());

    // Start: snapshots; writes go to the snapshot; stop commits with a revision.
    d.ok("admin.vm.Start", "app", "", b"");
    let snap = format!("/dev/{vid}-snap");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .unwrap()
        .write_all_at(b"DATA1", 0)
        .unwrap();
    d.ok("admin.vm.Shutdown", "app", "wait", b"");
    let revs = d.ok("admin.vm.volume.ListSnapshots", "app", "private", b"");
    assert!(
        revs.ends_with("-back\n") && revs.lines().count() == 1,
        "{revs}"
    );
    let mut buf = [0u8; 5];
    std::fs::File::open(&dev)
        .unwrap()
        .read_exact_at(&mut buf, 0)
        .unwrap();
    assert_eq!(&buf, b"DATA1");
    d.ok(
        "admin.vm.volume.Revert",
        "app",
        "private",
        revs.trim().as_bytes(),
    );
    std::fs::File::open(&dev)
        .unwrap()
        .read_exact_at(&mut buf, 0)
        .unwrap();
    assert_eq!(buf, [0; 5]);

    // Resize grows the LV.
    d.ok("admin.vm.volume.Resize", "app", "private", b"3221225472");
    assert_eq!(info(&d, "app", "private", "size"), "3221225472");

    // Clone within the thin pool.
    d.ok(
        "admin.vm.CreateInPool.AppVM",
        "dom0",
        "tpl",
        b"name=copy label=red pool=lvm",
    );
    let token = d.ok("admin.vm.volume.CloneFrom", "app", "private", b"");
    d.ok(
        "admin.vm.volume.CloneTo",
        "copy",
        "private",
        token.as_bytes(),
    );
    assert_eq!(info(&d, "copy", "private", "size"), "3221225472");
    d.ok("admin.vm.Remove", "copy", "", b"");
    assert!(!std::path::Path::new(&format!("/dev/{}/vm-copy-private", vg.name)).exists());
}
