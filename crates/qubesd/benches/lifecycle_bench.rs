//! Lifecycle benchmark on libvirt's test driver: prints a table.
//! Run: `cargo bench -p qubesd --bench lifecycle_bench`.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qubes_api::{EventReader, Transport};
use qubesd::hypervisor::{DomainStatus, Hypervisor};
use qubesd::model::PowerState;
use qubesd::{Config, Embedded};

#[path = "../../../benches/support/measure.rs"]
mod measure;
use measure::{cpu_time, percentile};

fn embedded(dir: &std::path::Path, node_xml: &str) -> Embedded {
    std::fs::write(dir.join("node.xml"), node_xml).unwrap();
    let config = Config {
        state_dir: dir.to_path_buf(),
        socket_dir: dir.to_path_buf(),
        libvirt_uri: format!("test://{}", dir.join("node.xml").display()),
        debug: false,
        policy_dirs: vec![dir.join("policy.d")],
        ..Default::default()
    };
    // Not a GTK program: watch libvirt's lifecycle events (the latency measured below).
    Embedded::start_with(&config, true).unwrap()
}

fn ok(e: &Embedded, method: &str, dest: &str, arg: &str, payload: &[u8]) {
    let r = e.call_raw(method, dest, arg, payload).unwrap();
    assert!(
        r.starts_with(b"0\0"),
        "{method} {dest}: {:?}",
        String::from_utf8_lossy(&r)
    );
}

fn start_stop(e: &Arc<Embedded>, names: &[String], parallel: usize) -> Duration {
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in names.chunks(names.len().div_ceil(parallel)) {
            let e = e.clone();
            s.spawn(move || {
                for n in chunk {
                    ok(&e, "admin.vm.Start", n, "", b"");
                    ok(&e, "admin.vm.Shutdown", n, "wait", b"");
                }
            });
        }
    });
    t.elapsed()
}

fn main() {
    let empty = qubesd::demo::EMPTY_TEST_NODE;
    // 1. Start and shut down 200 qubes.
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(embedded(dir.path(), empty));
    let names: Vec<String> = (0..200).map(|i| format!("q{i}")).collect();
    for n in &names {
        ok(
            &e,
            "admin.vm.Create.StandaloneVM",
            "dom0",
            "",
            format!("name={n} label=red").as_bytes(),
        );
    }
    let one = start_stop(&e, &names, 1);
    let eight = start_stop(&e, &names, 8);

    // 2. One stats tick with 500 running qubes: the libvirt listing plus building the events.
    let dir2 = tempfile::tempdir().unwrap();
    let mut node = String::from("<node>");
    for i in 0..500 {
        node.push_str(&format!(
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>r{i}</name>\
             <memory>409600</memory><os><type>hvm</type></os><test:runstate>1</test:runstate></domain>"
        ));
    }
    node.push_str("</node>");
    let e2 = embedded(dir2.path(), &node);
    for i in 0..500 {
        ok(
            &e2,
            "admin.vm.Create.StandaloneVM",
            "dom0",
            "",
            format!("name=r{i} label=red").as_bytes(),
        );
    }
    qubesd::ops::lifecycle::reconcile(&e2.shared.core);
    let hv: Arc<dyn Hypervisor> = e2.shared.core.env().hv.clone().unwrap();
    let mut prev: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut ticks = Vec::new();
    let mut count = 0;
    for _ in 0..20 {
        let c0 = cpu_time();
        let list: Vec<(String, DomainStatus)> = hv.list().unwrap();
        let events = qubesd::ops::stats::round(&e2.shared.core.snapshot(), &list, &mut prev);
        ticks.push(cpu_time() - c0);
        count = events.len();
    }
    let running = e2
        .shared
        .core
        .snapshot()
        .domains
        .values()
        .filter(|d| d.class.is_local_qube() && d.power == PowerState::Running)
        .count();

    // 3. Latency from a libvirt lifecycle callback to an admin.Events subscriber.
    let mut reader = EventReader::new(e2.open_stream("admin.Events", "r7").unwrap());
    assert_eq!(
        reader.next_event().unwrap().unwrap().name,
        "connection-established"
    );
    let mut lat = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        if i % 2 == 0 {
            hv.suspend("r7").unwrap()
        } else {
            hv.resume("r7").unwrap()
        }
        let ev = reader.next_event().unwrap().unwrap();
        assert!(
            ev.name == "domain-paused" || ev.name == "domain-unpaused",
            "{}",
            ev.name
        );
        lat.push(t.elapsed());
    }

    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
    println!(
        "lifecycle benchmark (libvirt test driver, {} CPUs)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| start + shutdown (wait) of 200 qubes, one by one | {} ({} per qube) | |",
        ms(one),
        ms(one / 200)
    );
    println!(
        "| start + shutdown (wait) of 200 qubes, 8 at a time | {} ({} per qube) | |",
        ms(eight),
        ms(eight / 200)
    );
    println!(
        "| CPU time of one stats tick, {running} running qubes + dom0 ({count} events) p50 / max | {} / {} | < 20 ms |",
        ms(percentile(&mut ticks, 0.5)),
        ms(percentile(&mut ticks, 1.0))
    );
    println!(
        "| libvirt callback -> admin.Events subscriber, p50 / p99 (200 events) | {} / {} | p99 < 5 ms |",
        ms(percentile(&mut lat, 0.5)),
        ms(percentile(&mut lat, 0.99))
    );
}
