//! Kill -9 the daemon at random moments while a client changes state: every restart loads,
//! and every change acknowledged before the kill is there.

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
