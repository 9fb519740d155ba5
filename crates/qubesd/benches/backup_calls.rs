//! Other calls while a backup runs: the real daemon backs up a qube with `BACKUP_CALLS_MB`
//! MiB of data (default 2048; half random, half zeros) through `admin.backup.Execute`, and a
//! client measures `admin.vm.property.GetAll` and `admin.vm.List` meanwhile. Prints a table.
//!
//! Run: `cargo bench -p qubesd --bench backup_calls`.

// Benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use qubes_api::Request;
use qubes_api::client::call_raw;

#[path = "support/daemon.rs"]
mod daemon;
#[path = "../../../benches/support/measure.rs"]
mod measure;
use measure::percentile;

fn main() {
    let mib: u64 = std::env::var("BACKUP_CALLS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policy.d")).unwrap();
    let (mut child, _) = daemon::spawn(dir.path());
    let socket = dir.path().join("qubesd.sock");
    let call = |method: &str, dest: &str, arg: &str, payload: &[u8]| {
        let out = call_raw(
            &socket,
            &Request::encode(method, arg, "dom0", dest, payload),
        )
        .unwrap();
        assert!(out.starts_with(b"0\0"), "{}", String::from_utf8_lossy(&out));
        out
    };
    call(
        "admin.vm.Create.StandaloneVM",
        "dom0",
        "",
        b"name=big label=red",
    );
    let bytes = mib << 20;
    call(
        "admin.vm.volume.Resize",
        "big",
        "private",
        bytes.to_string().as_bytes(),
    );
    // Half random data, half holes.
    let image = dir.path().join("appvms/big/private.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    let mut block = vec![0u8; 1 << 20];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..mib / 2 {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        f.write_all_at(&block, i << 20).unwrap();
    }
    f.sync_all().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let profiles = dir.path().join("backup-profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let mut p = std::fs::File::create(profiles.join("bench.conf")).unwrap();
    writeln!(
        p,
        "destination_vm: dom0\ndestination_path: {}\ninclude: [big]\ncompression: false\npassphrase_text: bench",
        out.display()
    )
    .unwrap();
    let t = Instant::now();
    let sock = socket.clone();
    let backup = std::thread::spawn(move || {
        let r = call_raw(
            &sock,
            &Request::encode("admin.backup.Execute", "bench", "dom0", "dom0", b""),
        )
        .unwrap();
        assert_eq!(r, b"0\0", "{}", String::from_utf8_lossy(&r));
        Instant::now()
    });
    let (mut getall, mut list) = (Vec::new(), Vec::new());
    while !backup.is_finished() {
        let s = Instant::now();
        call("admin.vm.property.GetAll", "big", "", b"");
        getall.push(s.elapsed());
        let s = Instant::now();
        call("admin.vm.List", "dom0", "", b"");
        list.push(s.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let end = backup.join().unwrap();
    let secs = (end - t).as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!("backup through qubesd: {mib} MiB (half random, half holes), uncompressed");
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| admin.backup.Execute | {secs:.1} s, {:.0} MB/s | |",
        bytes as f64 / 1e6 / secs
    );
    for (name, v) in [("property.GetAll", &mut getall), ("vm.List", &mut list)] {
        let n = v.len();
        println!(
            "| {name} during the backup ({n} calls) p50 / p99 / max | {} / {} / {} | < 5 ms |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.iter().max().unwrap())
        );
    }
}
