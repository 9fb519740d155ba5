//! Restores backups written by this crate into a real qubesd (in-process, libvirt's test
//! driver) through its sockets, with the real `qubes-volume-import` service program, and
//! compares every setting and every volume byte.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use qubes_api::{Client, LocalSocket};
use qubes_backup::container::KdfParams;
use qubes_backup::qubesxml;
use qubes_backup::read::{Backup, ReadOptions, Source};
use qubes_backup::restore::{self, HostState, Plan, RestoreOptions};
use qubes_backup::write::{
    self, BackupContent, BackupFile, Destination, FileSource, QubeFiles, WriteOptions,
};

const FAST: KdfParams = KdfParams {
    log_n: 10,
    r: 8,
    p: 1,
};

/// The `qubes-volume-import` program of the qubesd crate, built on demand.
fn import_program() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let prog = dir.join("qubes-volume-import");
    if !prog.exists() {
        // In the profile of this test (`target/<profile>/`): built in another, the program
        // would land beside other tests and never here.
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "qubesd",
            "--bin",
            "qubes-volume-import",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo runs");
        assert!(st.success(), "building qubes-volume-import");
    }
    assert!(prog.exists(), "{}", prog.display());
    prog
}

struct Daemon {
    dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
    _daemon: qubesd::Daemon,
}

impl Daemon {
    fn start() -> Daemon {
        Daemon::start_on(None)
    }

    /// A daemon on libvirt's default test node, or on `node` (a node description) when given.
    fn start_on(node: Option<&str>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("vm-kernels/6.6.1");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(k.join("vmlinuz"), b"").unwrap();
        std::fs::create_dir_all(dir.path().join("policy.d")).unwrap();
        let libvirt_uri = match node {
            Some(xml) => {
                let path = dir.path().join("node.xml");
                std::fs::write(&path, xml).unwrap();
                format!("test://{}", path.display())
            }
            None => "test:///default".into(),
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = qubesd::Config {
            state_dir: dir.path().to_path_buf(),
            socket_dir: dir.path().to_path_buf(),
            libvirt_uri,
            debug: false,
            policy_dirs: vec![dir.path().join("policy.d")],
            backup_profile_dir: dir.path().join("backup-profiles"),
            ..Default::default()
        };
        let daemon = rt
            .block_on(async { qubesd::Daemon::start(&config) })
            .unwrap();
        Daemon {
            dir,
            _rt: rt,
            _daemon: daemon,
        }
    }

    fn client(&self) -> Client {
        Client::new(Arc::new(LocalSocket {
            path: self.dir.path().join("qubesd.sock"),
        }))
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .client()
            .vm_list()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        v.sort();
        v
    }

    /// The image file of a volume, found on disk.
    fn volume_file(&self, qube: &str, volume: &str) -> PathBuf {
        fn walk(d: &Path, qube: &str, file: &str, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, qube, file, out);
                } else if p.file_name().is_some_and(|n| n == file)
                    && p.parent()
                        .and_then(|x| x.file_name())
                        .is_some_and(|n| n == qube)
                {
                    out.push(p);
                }
            }
        }
        let mut found = Vec::new();
        walk(self.dir.path(), qube, &format!("{volume}.img"), &mut found);
        assert_eq!(found.len(), 1, "{qube}:{volume}: {found:?}");
        found.remove(0)
    }
}

fn image(path: &Path, len: u64, seed: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64 ^ seed;
    let data: Vec<u8> = (0..(3 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all_at(&data, len / 5).unwrap();
    f.write_all_at(b"the very end", len - 12).unwrap();
}

const QUBES_XML: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<qubes version="3.0">
  <labels>
    <label id="label-1" color="0xcc0000">red</label>
    <label id="label-8" color="0x000000">black</label>
  </labels>
  <pools/>
  <properties>
    <property name="default_template">fedora</property>
  </properties>
  <domains>
    <domain id="domain-0" class="AdminVM">
      <properties><property name="label">black</property></properties>
      <features><feature name="backup-content"/></features>
      <tags/>
    </domain>
    <domain id="domain-1" class="TemplateVM">
      <properties>
        <property name="qid">1</property>
        <property name="name">fedora</property>
        <property name="label">black</property>
        <property name="uuid">6f1a0e55-0000-4000-8000-000000000001</property>
      </properties>
      <features>
        <feature name="backup-content">1</feature>
        <feature name="backup-path">vm1/</feature>
        <feature name="backup-size">1234</feature>
        <feature name="os">Linux</feature>
      </features>
      <tags><tag name="created-by-dom0"/></tags>
    </domain>
    <domain id="domain-2" class="AppVM">
      <properties>
        <property name="qid">2</property>
        <property name="name">work</property>
        <property name="label">red</property>
        <property name="template">fedora</property>
        <property name="vcpus">3</property>
        <property name="memory">600</property>
      </properties>
      <features>
        <feature name="backup-content">1</feature>
        <feature name="backup-path">vm2/</feature>
        <feature name="backup-size">5678</feature>
        <feature name="service.crond">1</feature>
      </features>
      <tags><tag name="office"/></tags>
    </domain>
    <domain id="domain-3" class="AppVM">
      <properties>
        <property name="qid">3</property>
        <property name="name">not-selected</property>
        <property name="label">red</property>
        <property name="template">fedora</property>
      </properties>
      <features><feature name="backup-content"></feature></features>
      <tags/>
    </domain>
  </domains>
</qubes>
"#;

const FIREWALL: &str = r#"<firewall version="2"><rules>
<rule><properties><property name="action">accept</property><property name="proto">tcp</property><property name="dsthost">10.0.0.1</property><property name="dstports">443-443</property></properties></rule>
<rule><properties><property name="action">drop</property></properties></rule>
</rules></firewall>"#;

struct Source3 {
    _dir: tempfile::TempDir,
    backup: PathBuf,
    images: Vec<(String, String, PathBuf)>,
}

fn make_backup() -> Source3 {
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str, len: u64, seed: u64| {
        let p = dir.path().join(name);
        image(&p, len, seed);
        p
    };
    let froot = mk("fedora-root.img", 40 << 20, 1);
    let fpriv = mk("fedora-private.img", 8 << 20, 2);
    let wpriv = mk("work-private.img", 24 << 20, 3);
    let content = BackupContent {
        qubes_xml: QUBES_XML.as_bytes().to_vec(),
        qubes: vec![
            QubeFiles {
                qid: 1,
                files: vec![
                    BackupFile {
                        name: "root.img".into(),
                        source: FileSource::Path(froot.clone()),
                        size: 1,
                    },
                    BackupFile {
                        name: "private.img".into(),
                        source: FileSource::Path(fpriv.clone()),
                        size: 1,
                    },
                ],
            },
            QubeFiles {
                qid: 2,
                files: vec![
                    BackupFile {
                        name: "private.img".into(),
                        source: FileSource::Path(wpriv.clone()),
                        size: 1,
                    },
                    BackupFile {
                        name: "firewall.xml".into(),
                        source: FileSource::Bytes(FIREWALL.as_bytes().to_vec()),
                        size: 1,
                    },
                    BackupFile {
                        name: "notes.txt".into(),
                        source: FileSource::Bytes("Notes: ü\n".as_bytes().to_vec()),
                        size: 1,
                    },
                ],
            },
        ],
        dom0_home: None,
    };
    let mut opts = WriteOptions::new("restore me");
    opts.kdf = FAST;
    opts.chunk_size = 4 << 20;
    let backup = dir.path().join("backup");
    write::write_backup(&content, Destination::File(backup.clone()), &opts).unwrap();
    Source3 {
        images: vec![
            ("fedora".into(), "root".into(), froot),
            ("fedora".into(), "private".into(), fpriv),
            ("work".into(), "private".into(), wpriv),
        ],
        backup,
        _dir: dir,
    }
}

fn restore_into(
    d: &Daemon,
    bytes: &[u8],
    pass: &str,
) -> qubes_backup::Result<restore::RestoreReport> {
    restore_watched(d, bytes, pass, None)
}

fn restore_watched(
    d: &Daemon,
    bytes: &[u8],
    pass: &str,
    progress: Option<restore::ProgressFn>,
) -> qubes_backup::Result<restore::RestoreReport> {
    restore_with(d, bytes, pass, progress, false)
}

fn restore_with(
    d: &Daemon,
    bytes: &[u8],
    pass: &str,
    progress: Option<restore::ProgressFn>,
    rename_conflicting: bool,
) -> qubes_backup::Result<restore::RestoreReport> {
    let mut backup = Backup::open(
        Source::Stream(Box::new(std::io::Cursor::new(bytes.to_vec()))),
        ReadOptions::new(pass),
    )?;
    let qubes = qubesxml::parse(backup.qubes_xml())?;
    let client = d.client();
    let host = HostState {
        qubes: client
            .vm_list()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.class))
            .collect(),
        default_template: None,
    };
    let opts = RestoreOptions {
        import_program: import_program(),
        import_args: vec!["--with-size".into()],
        import_env: vec![(
            "QUBESD_INTERNAL_SOCKET".into(),
            d.dir
                .path()
                .join("qubesd.internal.sock")
                .display()
                .to_string(),
        )],
        progress,
        rename_conflicting,
        ..Default::default()
    };
    let plan = Plan::new(&qubes, &host, &opts);
    restore::restore(Some(&client), &mut backup, &qubes, &plan, &opts)
}

#[test]
fn restore_round_trip_into_qubesd() {
    let src = make_backup();
    let bytes = std::fs::read(&src.backup).unwrap();
    let d = Daemon::start();
    let before = d.names();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = {
        let seen = seen.clone();
        restore::ProgressFn(Arc::new(move |p: &restore::RestoreProgress| {
            seen.lock().unwrap().push(p.clone())
        }))
    };
    let report = restore_watched(&d, &bytes, "restore me", Some(hook)).unwrap();
    // Progress: each qube created, then its files counted to their sizes, then done, in
    // restore order.
    {
        use restore::RestoreProgress::{Creating, Data, Done};
        let seen = seen.lock().unwrap();
        let steps: Vec<String> = seen
            .iter()
            .filter_map(|p| match p {
                Creating(q) => Some(format!("create {q}")),
                Data {
                    qube,
                    file,
                    done,
                    size,
                } if done == size => Some(format!("{qube}/{file} {size}")),
                Data { done, size, .. } => {
                    assert!(done < size);
                    None
                }
                Done(q) => Some(format!("done {q}")),
            })
            .collect();
        let size = |q: &str, v: &str| {
            let (_, _, p) = src
                .images
                .iter()
                .find(|(a, b, _)| a == q && b == v)
                .unwrap();
            std::fs::metadata(p).unwrap().len()
        };
        assert_eq!(
            steps,
            [
                "create fedora".to_string(),
                "create work".into(),
                format!("fedora/root.img {}", size("fedora", "root")),
                format!("fedora/private.img {}", size("fedora", "private")),
                "done fedora".into(),
                format!("work/private.img {}", size("work", "private")),
                format!("work/firewall.xml {}", FIREWALL.len()),
                format!("work/notes.txt {}", "Notes: ü\n".len()),
                "done work".into(),
            ]
        );
        // Big files are reported as they go, not only at their end.
        assert!(seen.len() > 40, "{}", seen.len());
    }
    assert_eq!(
        report
            .qubes
            .iter()
            .map(|q| (q.name.as_str(), q.ok))
            .collect::<Vec<_>>(),
        [("fedora", true), ("work", true)],
        "{report:?}"
    );
    let c = d.client();
    let mut after = before.clone();
    after.extend(["fedora".to_string(), "work".to_string()]);
    after.sort();
    assert_eq!(d.names(), after);
    let get = |vm: &str, p: &str| c.call("admin.vm.property.Get", vm, p, b"").unwrap();
    assert_eq!(get("work", "template"), "default=False type=vm fedora");
    assert_eq!(get("work", "vcpus"), "default=False type=int 3");
    assert_eq!(get("work", "memory"), "default=False type=int 600");
    assert_eq!(get("work", "label"), "default=False type=label red");
    assert_eq!(get("fedora", "label"), "default=False type=label black");
    assert_eq!(
        c.call("admin.vm.feature.Get", "work", "service.crond", b"")
            .unwrap(),
        "1"
    );
    assert_eq!(
        c.call("admin.vm.feature.Get", "fedora", "os", b"").unwrap(),
        "Linux"
    );
    assert!(
        c.call("admin.vm.feature.Get", "work", "backup-path", b"")
            .is_err()
    );
    let tags = c.call("admin.vm.tag.List", "work", "", b"").unwrap();
    assert!(tags.lines().any(|t| t == "office"), "{tags}");
    assert!(!tags.contains(restore::IN_PROGRESS_TAG), "{tags}");
    assert_eq!(
        c.call("admin.vm.notes.Get", "work", "", b"").unwrap(),
        "Notes: ü\n"
    );
    assert_eq!(
        c.call("admin.vm.firewall.Get", "work", "", b"").unwrap(),
        "action=accept dst4=10.0.0.1/32 proto=tcp dstports=443-443\naction=drop\n"
    );
    for (qube, volume, source) in &src.images {
        let restored = std::fs::read(d.volume_file(qube, volume)).unwrap();
        let original = std::fs::read(source).unwrap();
        assert_eq!(restored.len(), original.len(), "{qube}:{volume}");
        assert!(restored == original, "{qube}:{volume} differs");
    }
    // The same backup again: names are taken, nothing more is created.
    let again = restore_into(&d, &bytes, "restore me").unwrap();
    assert!(again.qubes.is_empty(), "{again:?}");
    assert_eq!(d.names(), after);
}

#[test]
fn bad_backups_create_nothing() {
    let src = make_backup();
    let bytes = std::fs::read(&src.backup).unwrap();
    let d = Daemon::start();
    let before = d.names();
    let e = restore_into(&d, &bytes, "wrong").unwrap_err();
    assert!(e.message().contains("Is the password correct?"), "{e}");
    assert_eq!(d.names(), before);
    // A flipped byte inside work's volume data: fedora is already restored by then, and
    // must go again.
    let needle = b"vm2/private.img.000.enc";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("member present");
    for (i, cut) in [(at + 512 + 3000, false), (at + 512 + 5000, true)] {
        let mut bad = bytes.clone();
        if cut {
            bad.truncate(i);
        } else {
            bad[i] ^= 1;
        }
        let e = restore_into(&d, &bad, "restore me").unwrap_err();
        assert!(!e.message().is_empty());
        assert_eq!(d.names(), before, "{e}");
    }
    let _ = std::io::stderr().flush();
}

/// Device assignments (a PCI device with its identity and an option, one of any identity, an
/// ask-to-attach block device) go through a backup written by qubesd itself and come back as
/// the original listed them, following a backend restored under a new name; an assignment whose
/// backend qube is neither in the backup nor here is reported, and its qube is restored
/// without it.
#[test]
fn device_assignments_round_trip_through_qubesd() {
    let pass = "devices";
    let src = Daemon::start_on(Some(qubesd::demo::DEMO_TEST_NODE));
    let c = src.client();
    let ok = |method: &str, dest: &str, arg: &str, payload: &[u8]| {
        c.call(method, dest, arg, payload)
            .unwrap_or_else(|e| panic!("{method} {dest} {arg}: {e:?}"))
    };
    ok(
        "admin.vm.Create.TemplateVM",
        "dom0",
        "",
        b"name=fedora label=black",
    );
    for name in ["work", "sys-usb", "usb-gone"] {
        ok(
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora",
            format!("name={name} label=red").as_bytes(),
        );
    }
    // As `qvm-device assign` sends them: the frontend named, options as `_key`.
    ok(
        "admin.vm.device.pci.Assign",
        "work",
        "dom0+00_14.3+0x8086+0x51f0++p028000",
        b"device_id='0x8086:0x51f0::p028000' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required' frontend_domain='work' _no-strict-reset='True'",
    );
    ok(
        "admin.vm.device.pci.Assign",
        "work",
        "dom0+00_1f.3",
        b"device_id='*' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='auto-attach' frontend_domain='work'",
    );
    ok(
        "admin.vm.device.block.Assign",
        "work",
        "sys-usb+sda",
        b"device_id='*' port_id='sda' devclass='block' backend_domain='sys-usb' mode='ask-to-attach' frontend_domain='work' _read-only='yes'",
    );
    ok(
        "admin.vm.device.block.Assign",
        "work",
        "usb-gone+sdb",
        b"device_id='*' port_id='sdb' devclass='block' backend_domain='usb-gone' mode='auto-attach' frontend_domain='work'",
    );
    let pci = ok("admin.vm.device.pci.Assigned", "work", "", b"");
    assert_eq!(
        pci,
        "dom0+00_14.3:0x8086:0x51f0::p028000 device_id='0x8086:0x51f0::p028000' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required' frontend_domain='work' _no-strict-reset='True'\n\
         dom0+00_1f.3:* device_id='*' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='auto-attach' frontend_domain='work'\n"
    );
    let block = ok("admin.vm.device.block.Assigned", "work", "", b"");
    let kept = "sys-usb+sda:* device_id='*' port_id='sda' devclass='block' backend_domain='sys-usb' mode='ask-to-attach' frontend_domain='work' _read-only='yes'\n";
    assert_eq!(
        block,
        format!(
            "{kept}usb-gone+sdb:* device_id='*' port_id='sdb' devclass='block' backend_domain='usb-gone' mode='auto-attach' frontend_domain='work'\n"
        )
    );

    // qubesd writes the backup: work and its block backend, not usb-gone nor the template.
    let dest = src.dir.path().join("backups");
    std::fs::create_dir_all(&dest).unwrap();
    let profiles = src.dir.path().join("backup-profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("devices.conf"),
        format!(
            "destination_vm: dom0\ndestination_path: {}\ninclude:\n  - work\n  - sys-usb\ncompression: false\npassphrase_text: {pass}\n",
            dest.display()
        ),
    )
    .unwrap();
    assert_eq!(ok("admin.backup.Execute", "dom0", "devices", b""), "");
    let files: Vec<PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();

    // A fresh system with the template and the same PCI devices, without usb-gone.
    let d = Daemon::start_on(Some(qubesd::demo::DEMO_TEST_NODE));
    let t = d.client();
    t.call(
        "admin.vm.Create.TemplateVM",
        "dom0",
        "",
        b"name=fedora label=black",
    )
    .unwrap();
    let report = restore_into(&d, &bytes, pass).unwrap();
    // In the order of the backup's qubes.xml (neither is a template).
    let got: Vec<(&str, bool, Vec<String>)> = report
        .qubes
        .iter()
        .map(|q| (q.name.as_str(), q.ok, q.messages.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("sys-usb", true, vec![]),
            (
                "work",
                true,
                vec![
                    "device block:sdb: its backend qube usb-gone is not on this system".to_string()
                ]
            ),
        ],
        "{report:?}"
    );
    let restored = |class: &str, qube: &str| {
        t.call(&format!("admin.vm.device.{class}.Assigned"), qube, "", b"")
            .unwrap()
    };
    assert_eq!(restored("pci", "work"), pci);
    assert_eq!(restored("block", "work"), kept);
    let tags = t.call("admin.vm.tag.List", "work", "", b"").unwrap();
    assert!(!tags.contains(restore::IN_PROGRESS_TAG), "{tags}");

    // Again, renaming what is taken: work's block device follows its renamed backend.
    let report = restore_with(&d, &bytes, pass, None, true).unwrap();
    let names: Vec<(&str, &str, bool)> = report
        .qubes
        .iter()
        .map(|q| (q.name.as_str(), q.restored_as.as_str(), q.ok))
        .collect();
    assert_eq!(
        names,
        [("sys-usb", "sys-usb-1", true), ("work", "work-1", true)],
        "{report:?}"
    );
    assert_eq!(report.qubes[1].messages, got[1].2, "{report:?}");
    assert_eq!(
        restored("pci", "work-1"),
        pci.replace("frontend_domain='work'", "frontend_domain='work-1'")
    );
    assert_eq!(
        restored("block", "work-1"),
        "sys-usb-1+sda:* device_id='*' port_id='sda' devclass='block' backend_domain='sys-usb-1' mode='ask-to-attach' frontend_domain='work-1' _read-only='yes'\n"
    );
}
