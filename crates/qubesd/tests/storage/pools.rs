//! Pool calls: add, list, info, set revisions_to_keep, usage, remove, and their refusals.

use crate::support::*;

#[test]
pub(crate) fn pool_calls() {
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
