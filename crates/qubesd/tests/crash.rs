//! Kill -9 the daemon at random moments while a client changes state: every restart loads,
//! and every change acknowledged before the kill is there.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestDaemon;

#[test]
fn acknowledged_changes_survive_kill_9() {
    let mut d = TestDaemon::start();
    d.ok(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=target label=red",
    );
    let mut next = 0u32;
    for round in 0..8 {
        let acked: Arc<Mutex<Vec<u32>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let socket = d.socket();
        let writer = {
            let (acked, stop) = (acked.clone(), stop.clone());
            let start = next;
            std::thread::spawn(move || {
                let mut i = start;
                while !stop.load(Ordering::Relaxed) {
                    let req = qubes_api::Request::encode(
                        "admin.vm.feature.Set",
                        &format!("k{i}"),
                        "dom0",
                        "target",
                        i.to_string().as_bytes(),
                    );
                    match qubes_api::client::call_raw(&socket, &req) {
                        Ok(r) if r == b"0\0" => acked.lock().unwrap().push(i),
                        _ => break,
                    }
                    i += 1;
                }
                i
            })
        };
        std::thread::sleep(Duration::from_millis(20 + (round * 37) % 90));
        d.kill9();
        stop.store(true, Ordering::Relaxed);
        next = writer.join().unwrap() + 1;
        d.spawn()
            .unwrap_or_else(|e| panic!("restart after kill -9 (round {round}): {e}"));
        let features = d.ok("admin.vm.feature.List", "target", "", b"");
        for i in acked.lock().unwrap().iter() {
            assert!(
                features.lines().any(|l| l == format!("k{i}")),
                "round {round}: acknowledged k{i} lost"
            );
        }
        assert!(!acked.lock().unwrap().is_empty() || round > 0);
    }
    // No temp files left behind (the last restart cleaned them).
    let leftovers: Vec<_> = std::fs::read_dir(d.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("qubes.xml~"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "restart removes interrupted saves: {leftovers:?}"
    );
}

/// Files below the qube directories: (relative path) for every file.
fn qube_files(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for class_dir in ["appvms", "vm-templates"] {
        let Ok(qubes) = std::fs::read_dir(root.join(class_dir)) else {
            continue;
        };
        for q in qubes.flatten() {
            for f in std::fs::read_dir(q.path()).into_iter().flatten().flatten() {
                out.push(format!(
                    "{class_dir}/{}/{}",
                    q.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}

/// Kill -9 while one client creates and removes the same qubes over and over: after each
/// restart the disk holds volumes only for qubes in qubes.xml, no half-written file is left,
/// and creating the qubes again works.
#[test]
fn restart_after_kill_9_leaves_no_half_made_qube() {
    let mut d = TestDaemon::start();
    let names = ["churn-a", "churn-b"];
    for round in 0..10u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let socket = d.socket();
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let call = |method: &str, dest: &str, payload: &[u8]| {
                    let req = qubes_api::Request::encode(method, "", "dom0", dest, payload);
                    qubes_api::client::call_raw(&socket, &req)
                };
                while !stop.load(Ordering::Relaxed) {
                    for n in names {
                        let create = format!("name={n} label=red");
                        if call("admin.vm.Create.StandaloneVM", "dom0", create.as_bytes()).is_err()
                        {
                            return;
                        }
                        let _ = call("admin.vm.feature.Set", n, b"1");
                        if call("admin.vm.Remove", n, b"").is_err() {
                            return;
                        }
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(15 + (round * 41) % 120));
        d.kill9();
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
        d.spawn()
            .unwrap_or_else(|e| panic!("restart after kill -9 (round {round}): {e}"));
        let listed = d.ok("admin.vm.List", "dom0", "", b"");
        let files = qube_files(d.dir.path());
        for f in &files {
            let qube = f.split('/').nth(1).unwrap();
            assert!(
                listed.lines().any(|l| l.starts_with(&format!("{qube} "))),
                "round {round}: {f} belongs to no qube\n{listed}"
            );
            assert!(!f.contains('~'), "round {round}: half-written {f}");
            assert!(
                !f.ends_with("-import.img"),
                "round {round}: import left: {f}"
            );
        }
        let intents = std::fs::read_dir(d.dir.path().join("qubesd-intents"))
            .map(|rd| rd.count())
            .unwrap_or(0);
        assert_eq!(intents, 0, "round {round}: intents left after recovery");
        // Whatever the kill interrupted, the qubes can be made again.
        for n in names {
            if !listed.lines().any(|l| l.starts_with(&format!("{n} "))) {
                d.ok(
                    "admin.vm.Create.StandaloneVM",
                    "dom0",
                    "",
                    format!("name={n} label=red").as_bytes(),
                );
            }
            d.ok("admin.vm.Remove", n, "", b"");
        }
        assert_eq!(qube_files(d.dir.path()), Vec::<String>::new());
    }
}

/// A second daemon on a store in use is refused; a clean stop (SIGTERM) saves, gives the
/// store up and leaves no `qubes.xml.lock` (the reference leaves none); the next daemon
/// takes it over with everything saved.
#[test]
fn the_store_lock_excludes_a_second_daemon_and_goes_away_at_a_clean_stop() {
    let mut d = TestDaemon::start();
    d.with_basic_qubes();
    let lock = d.dir.path().join("qubes.xml.lock");
    assert!(lock.exists());
    let other_sockets = d.dir.path().join("other");
    std::fs::create_dir_all(&other_sockets).unwrap();
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_qubesd"))
        .arg("--state-dir")
        .arg(d.dir.path())
        .arg("--socket-dir")
        .arg(&other_sockets)
        .args(["--libvirt-uri", "test:///default", "--log-level", "error"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another qubesd holds the lock on this store"),
        "{err}"
    );
    d.stop();
    assert!(!lock.exists());
    let mut names: Vec<_> = std::fs::read_dir(d.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("qubes.xml"))
        .collect();
    names.sort();
    assert_eq!(names, ["qubes.xml"]);
    d.spawn().unwrap();
    assert!(lock.exists());
    let listed = d.ok("admin.vm.List", "dom0", "", b"");
    let qubes: Vec<_> = listed
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        qubes,
        [
            "dom0 class=AdminVM",
            "fedora class=TemplateVM",
            "work class=AppVM"
        ]
    );
}
