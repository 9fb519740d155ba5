//! Where a property Set spends its time, in-process (no sockets): a developer's tool.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]
use std::time::Instant;

fn main() {
    // PROFILE_DIR=/dev/shm shows the cost without a real disk's fsync.
    let dir = match std::env::var("PROFILE_DIR") {
        Ok(base) => tempfile::tempdir_in(base).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let cfg = qubesd::Config::in_dir(dir.path());
    let shared = qubesd::Daemon::load(&cfg).unwrap();
    let core = &shared.core;
    let call = |raw: Vec<u8>| {
        let req = qubes_api::Request::parse(&raw).unwrap();
        qubesd::dispatch::call(core, qubesd::api::Socket::Admin, &req).unwrap();
    };
    for i in 0..999 {
        let r = qubes_api::Request::encode(
            "admin.vm.Create.StandaloneVM",
            "",
            "dom0",
            "dom0",
            format!("name=q{i} label=red").as_bytes(),
        );
        call(r);
    }
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box((*core.snapshot()).clone());
    }
    println!(
        "state clone: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let t = Instant::now();
    for i in 0..n {
        let r = qubes_api::Request::encode(
            "admin.vm.property.Set",
            "memory",
            "dom0",
            &format!("q{}", i % 999),
            (400 + i).to_string().as_bytes(),
        );
        call(r);
    }
    println!(
        "Set via dispatch::call: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(qubesd::store::serialize(&core.snapshot()));
    }
    println!(
        "full serialize: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let xml = qubesd::store::serialize(&core.snapshot());
    let t = Instant::now();
    for _ in 0..n {
        qubesd::store::write_atomic(&dir.path().join("x.xml"), xml.as_bytes(), 0o660).unwrap();
    }
    println!(
        "write_atomic alone: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let list = qubes_api::Request::parse(&qubes_api::Request::encode(
        "admin.vm.List",
        "",
        "dom0",
        "dom0",
        b"",
    ))
    .unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            qubesd::dispatch::call(core, qubesd::api::Socket::Admin, &list).unwrap(),
        );
    }
    println!(
        "admin.vm.List in process: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}
