//! `admin.backup.Execute`, `Info` and `Cancel` through the real daemon: the reference's
//! refusals byte for byte, a backup to a dom0 directory read back with the backup reader
//! (qubes.xml with the backup features, every volume byte), `backup_timestamp`, progress
//! events, Cancel leaving no file, a second Execute of a running profile refused, other calls
//! answered while a backup runs, and a backup streamed to a qube's `qubes.Backup`.
//!
//! A backup is held still where the test needs it with a file lease on a volume image: the
//! daemon's open of the image waits until the test releases the lease, and /proc/locks says
//! when that open is waiting. No test depends on how fast the disk is.

// Tests may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Events, TestDaemon};
use qubes_backup::read::{Backup, Content, ReadOptions, Source};

const PASSPHRASE: &str = "correct horse";

fn setup() -> TestDaemon {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=other label=green",
    );
    d
}

fn profile(d: &TestDaemon, id: &str, text: &str) {
    let dir = d.dir.path().join("backup-profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{id}.conf")), text).unwrap();
}

fn dest_dir(d: &TestDaemon) -> PathBuf {
    let p = d.dir.path().join("backups");
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn work_profile(d: &TestDaemon, id: &str) {
    let text = format!(
        "destination_vm: dom0\ndestination_path: {}\ninclude:\n  - work\ncompression: false\npassphrase_text: {PASSPHRASE}\n",
        dest_dir(d).display()
    );
    profile(d, id, &text);
}

/// The backup files in the destination directory.
fn backups(d: &TestDaemon) -> Vec<PathBuf> {
    std::fs::read_dir(dest_dir(d))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Files of a backup by archive name (volumes as their bytes) and its qubes.xml.
fn read_back(path: &Path) -> (String, Vec<(String, Vec<u8>)>) {
    let file = std::fs::File::open(path).unwrap();
    let mut b = Backup::open(Source::File(file), ReadOptions::new(PASSPHRASE)).unwrap();
    let xml = String::from_utf8(b.qubes_xml().to_vec()).unwrap();
    let mut files = Vec::new();
    b.read_files(
        &mut |name, content| {
            if let Content::File { data, .. } = content {
                let mut v = Vec::new();
                data.read_to_end(&mut v).unwrap();
                files.push((name.to_string(), v));
            }
            Ok(())
        },
        &|_| true,
        None,
    )
    .unwrap();
    (xml, files)
}

#[test]
fn refusals_are_the_references() {
    let d = setup();
    for method in [
        "admin.backup.Execute",
        "admin.backup.Info",
        "admin.backup.Cancel",
    ] {
        assert_eq!(
            d.call(method, "dom0", "a/b", b""),
            b"2\0ProtocolError\0\0Backup profile ID must not contain forward slash character\0"
        );
        assert_eq!(
            d.call(method, "work", "x", b""),
            b"2\0ProtocolError\0\0expected destination to be AdminVM\0"
        );
    }
    for method in ["admin.backup.Execute", "admin.backup.Info"] {
        assert_eq!(
            d.call(method, "dom0", "nothere", b""),
            b"2\0QubesBackupProfileNotFoundError\0\0Backup profile does not exist: nothere\0"
        );
    }
    assert_eq!(
        d.call("admin.backup.Cancel", "dom0", "idle", b""),
        b"2\0QubesException\0\0Backup operation not running\0"
    );
    profile(&d, "bad", "destination_vm: dom0\ninclude: null\n");
    assert_eq!(
        d.call("admin.backup.Info", "dom0", "bad", b""),
        b"2\0QubesException\0\0Invalid backup profile - missing 'destination_path'\0"
    );
    profile(
        &d,
        "nodest",
        "destination_vm: nowhere\ndestination_path: /tmp\ninclude: null\npassphrase_text: x\n",
    );
    assert_eq!(
        d.call("admin.backup.Execute", "dom0", "nodest", b""),
        b"2\0QubesException\0\0Invalid destination_vm specified in backup profile\0"
    );
    profile(
        &d,
        "nopass",
        "destination_vm: dom0\ndestination_path: /tmp\ninclude: null\n",
    );
    assert_eq!(
        d.call("admin.backup.Execute", "dom0", "nopass", b""),
        b"2\0QubesException\0\0Invalid backup profile - you need to specify passphrase_text or passphrase_vm\0"
    );
}

#[test]
fn info_lists_what_a_profile_selects() {
    let d = setup();
    work_profile(&d, "daily");
    let mut events = Events::open(&d, "dom0");
    let info = d.ok("admin.backup.Info", "dom0", "daily", b"");
    // As the reference, each selected qube's files are asked for with an event.
    assert_eq!(events.next_text(), "work backup-get-files");
    let lines: Vec<&str> = info.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("work") && l.contains("VM")),
        "{info}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("other") && l.contains('|')),
        "{info}"
    );
    assert!(
        info.ends_with("VMs not selected for backup:\n - dom0\n - fedora\n - other\n"),
        "{info}"
    );
    // A running qube is listed with a warning (its volumes are not asked for their data).
    d.ok("admin.vm.Start", "work", "", b"");
    let info = d.ok("admin.backup.Info", "dom0", "daily", b"");
    assert!(
        info.lines()
            .any(|l| l.contains("work") && l.contains("running")),
        "{info}"
    );
}

#[test]
fn a_backup_to_dom0_reads_back_and_marks_the_qubes() {
    let d = setup();
    let image = d.dir.path().join("appvms/work/private.img");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .write_all_at(&data, 4096)
        .unwrap();
    d.ok("admin.vm.feature.Set", "work", "preload-dispvm-extra", b"x");
    // Preloading needs qrexec and the services a preloaded disposable is driven with.
    for f in [
        "qrexec",
        "supported-rpc.qubes.WaitForRunningSystem",
        "supported-rpc.qubes.WaitForSession",
    ] {
        d.ok("admin.vm.feature.Set", "work", f, b"1");
    }
    d.ok("admin.vm.feature.Set", "work", "preload-dispvm-max", b"2");
    work_profile(&d, "daily");
    assert_eq!(d.ok("admin.backup.Execute", "dom0", "daily", b""), "");
    let files = backups(&d);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("qubes-"),
        "{files:?}"
    );
    let (xml, contents) = read_back(&files[0]);
    let qid = d
        .ok("admin.vm.property.Get", "work", "qid", b"")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let private = contents
        .iter()
        .find(|(n, _)| *n == format!("vm{qid}/private.img"))
        .map(|(_, v)| v)
        .expect("private volume in the backup");
    assert_eq!(*private, std::fs::read(&image).unwrap());
    assert!(
        xml.contains("<feature name=\"backup-content\">1</feature>"),
        "{xml}"
    );
    assert!(xml.contains(&format!("<feature name=\"backup-path\">vm{qid}/</feature>")));
    assert!(xml.contains("<feature name=\"backup-content\"></feature>"));
    assert!(!xml.contains("\"preload-dispvm-extra\""), "{xml}");
    assert!(xml.contains("\"preload-dispvm-max\""));
    let stamp = d.ok("admin.vm.property.Get", "work", "backup_timestamp", b"");
    assert!(stamp.starts_with("default=False type=int "), "{stamp}");
    let other = d.ok("admin.vm.property.Get", "other", "backup_timestamp", b"");
    assert!(other.starts_with("default=True"), "{other}");
    // The live qubes.xml has none of the backup features.
    let live = d.saved();
    assert!(!live.contains("backup-content"));
}

/// Holds a backup at the open of `image` until the returned lease is dropped.
struct Hold {
    file: std::fs::File,
}

impl Hold {
    fn new(image: &Path) -> Hold {
        // SAFETY: ignoring SIGIO (the lease-break notice) changes only this test process.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        let file = std::fs::File::open(image).unwrap();
        // SAFETY: fcntl on a descriptor we own.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        Hold { file }
    }

    /// Waits until someone's open of the file waits for the lease.
    fn wait_for_opener(&self) {
        let ino = self.file.metadata().unwrap().ino();
        let t = Instant::now();
        loop {
            let locks = std::fs::read_to_string("/proc/locks").unwrap();
            if locks
                .lines()
                .any(|l| l.contains("BREAKING") && l.contains(&format!(":{ino} ")))
            {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "nobody opened the file"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
}

fn execute_in_background(d: &TestDaemon, id: &str) -> std::thread::JoinHandle<Vec<u8>> {
    let socket = d.socket();
    let id = id.to_string();
    std::thread::spawn(move || {
        let req = qubes_api::Request::encode("admin.backup.Execute", &id, "dom0", "dom0", b"");
        qubes_api::client::call_raw(&socket, &req).unwrap()
    })
}

#[test]
fn cancel_leaves_nothing_and_others_are_served_meanwhile() {
    let d = setup();
    work_profile(&d, "daily");
    let hold = Hold::new(&d.dir.path().join("appvms/work/private.img"));
    let running = execute_in_background(&d, "daily");
    hold.wait_for_opener();
    // The backup runs: a second one of the same profile is refused, everything else works.
    assert_eq!(
        d.call("admin.backup.Execute", "dom0", "daily", b""),
        b"2\0BackupAlreadyRunningError\0\0Backup already running\0"
    );
    assert!(
        d.ok("admin.vm.List", "dom0", "", b"")
            .contains("work class=AppVM")
    );
    d.ok("admin.vm.feature.Set", "other", "during-backup", b"1");
    assert!(
        d.ok("admin.backup.Info", "dom0", "daily", b"")
            .contains("work")
    );
    assert_eq!(d.ok("admin.backup.Cancel", "dom0", "daily", b""), "");
    drop(hold);
    assert_eq!(
        running.join().unwrap(),
        b"2\0BackupCancelledError\0\0Backup cancelled\0"
    );
    assert_eq!(backups(&d), Vec::<PathBuf>::new());
    let stamp = d.ok("admin.vm.property.Get", "work", "backup_timestamp", b"");
    assert!(stamp.starts_with("default=True"), "{stamp}");
    // Not running any more.
    assert_eq!(
        d.call("admin.backup.Cancel", "dom0", "daily", b""),
        b"2\0QubesException\0\0Backup operation not running\0"
    );
}

#[test]
fn progress_is_announced_while_a_backup_runs() {
    let d = setup();
    work_profile(&d, "daily");
    let mut events = Events::open(&d, "dom0");
    let hold = Hold::new(&d.dir.path().join("appvms/work/private.img"));
    let running = execute_in_background(&d, "daily");
    hold.wait_for_opener();
    // Progress is said at most once a second: keep the backup waiting past that mark, so
    // its first block of data is announced.
    std::thread::sleep(Duration::from_millis(1100));
    drop(hold);
    assert_eq!(running.join().unwrap(), b"0\0");
    let mut progress = Vec::new();
    loop {
        let e = events.next_text();
        let last = e.contains("property-set:backup_timestamp");
        if e.starts_with(" backup-progress ") {
            progress.push(e);
        }
        if last {
            break;
        }
    }
    assert!(!progress.is_empty());
    assert!(
        progress[0].starts_with(" backup-progress backup_profile=daily progress="),
        "{progress:?}"
    );
    let pct: f64 = progress[0].rsplit('=').next().unwrap().parse().unwrap();
    assert!((0.0..=100.0).contains(&pct), "{pct}");
}

#[test]
fn a_backup_to_a_qube_goes_to_its_qubes_backup_service() {
    let d = setup();
    // qrexec-client's part: the arguments it was given, and the service's standard input.
    let out = d.dir.path().join("service-input");
    let args = d.dir.path().join("service-args");
    let script = d.dir.path().join("qrexec-client");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\ncat > {}\n",
            args.display(),
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    profile(
        &d,
        "toqube",
        &format!(
            "destination_vm: other\ndestination_path: /home/user/backups\ninclude: [work]\npassphrase_text: {PASSPHRASE}\n"
        ),
    );
    assert_eq!(d.ok("admin.backup.Execute", "dom0", "toqube", b""), "");
    assert_eq!(
        std::fs::read_to_string(&args).unwrap(),
        "-d other DEFAULT:QUBESRPC qubes.Backup dom0\n"
    );
    let stream = std::fs::read(&out).unwrap();
    let first = b"/home/user/backups\n";
    assert!(stream.starts_with(first));
    let backup = d.dir.path().join("streamed");
    std::fs::write(&backup, &stream[first.len()..]).unwrap();
    let (xml, _) = read_back(&backup);
    assert!(xml.contains("backup-content"));
}

/// Cancel ends a backup to a qube even while the qube's service has stopped reading: the
/// service is stopped, and no backup_timestamp is recorded.
#[test]
fn cancel_ends_a_backup_to_a_qube_that_stopped_reading() {
    let d = setup();
    let image = d.dir.path().join("appvms/work/private.img");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .write_all_at(&data, 0)
        .unwrap();
    let started = d.dir.path().join("service-started");
    let script = d.dir.path().join("qrexec-client");
    // Reads the path line, says it is there, then reads nothing more.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nhead -n 1 > /dev/null\ntouch {}\nexec sleep 600\n",
            started.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    profile(
        &d,
        "stuck",
        &format!(
            "destination_vm: other\ndestination_path: /backups\ninclude: [work]\ncompression: false\npassphrase_text: {PASSPHRASE}\n"
        ),
    );
    let running = execute_in_background(&d, "stuck");
    let t = Instant::now();
    while !started.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the service never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(d.ok("admin.backup.Cancel", "dom0", "stuck", b""), "");
    assert_eq!(
        running.join().unwrap(),
        b"2\0BackupCancelledError\0\0Backup cancelled\0"
    );
    let stamp = d.ok("admin.vm.property.Get", "work", "backup_timestamp", b"");
    assert!(stamp.starts_with("default=True"), "{stamp}");
}
