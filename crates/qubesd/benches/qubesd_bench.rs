//! qubesd benchmark with 1000 qubes in qubes.xml: prints a table.
//!
//! Run: `cargo bench -p qubesd`. It starts the real daemon binary on a generated store and
//! measures start time, call latency and throughput, event fan-out and memory.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qubes_api::Request;
use qubes_api::client::call_raw;
use qubesd::model::{Class, Domain, HostInfo, State};

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/load.rs"]
mod load;
#[path = "../../../benches/support/measure.rs"]
mod measure;
use daemon::spawn;
use measure::{cpu_of, cpu_time, percentile, rss_kib};

const QUBES: usize = 1000;
/// dom0, 10 templates and sys-net make up the rest.
const APPS: usize = QUBES - 12;

fn make_store(dir: &Path) {
    let host = HostInfo::detect(&dir.to_string_lossy(), false);
    let mut st = State::new_system(host, "file");
    let add = |st: &mut State, class: Class, name: &str, extra: &[(&str, &str)]| {
        let qid = st.next_qid().unwrap();
        let mut d = Domain::new(class, name, qid);
        for (k, v) in [("name", name), ("qid", &qid.to_string()), ("label", "red")] {
            d.props.insert(k.into(), v.into());
        }
        d.props
            .insert("uuid".into(), format!("00000000-0000-4000-8000-{qid:012}"));
        for (k, v) in extra {
            d.props.insert((*k).into(), (*v).into());
        }
        d.set_feature("os", "Linux");
        d.tags.insert("created-by-dom0".into());
        st.domains.insert(name.into(), Arc::new(d));
    };
    for t in 0..10 {
        add(&mut st, Class::TemplateVM, &format!("tpl{t}"), &[]);
    }
    add(
        &mut st,
        Class::StandaloneVM,
        "sys-net",
        &[("provides_network", "True")],
    );
    for i in 0..APPS {
        let tpl = format!("tpl{}", i % 10);
        add(
            &mut st,
            Class::AppVM,
            &format!("app{i}"),
            &[("template", &tpl), ("netvm", "sys-net")],
        );
    }
    assert_eq!(st.domains.len(), QUBES);
    std::fs::write(dir.join("qubes.xml"), qubesd::store::serialize(&st)).unwrap();
    // app0 plays a management qube that may hear every qube's events.
    std::fs::create_dir_all(dir.join("policy.d")).unwrap();
    std::fs::write(
        dir.join("policy.d/30-bench.policy"),
        "admin.Events * app0 @adminvm allow target=dom0\n\
         admin.Events * app0 @anyvm allow target=dom0\n",
    )
    .unwrap();
}

fn latencies(socket: &Path, req: impl Fn(usize) -> Vec<u8>, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let r = req(i);
            let t = Instant::now();
            let out = call_raw(socket, &r).unwrap();
            assert!(
                out.starts_with(b"0\0"),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
            t.elapsed()
        })
        .collect()
}

fn throughput(socket: &Path, clients: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, count, socket) = (stop.clone(), count.clone(), socket.to_path_buf());
            std::thread::spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let vm = format!("app{}", i % APPS);
                    let r = call_raw(
                        &socket,
                        &Request::encode("admin.vm.property.GetAll", "", "dom0", &vm, b""),
                    )
                    .unwrap();
                    assert!(r.starts_with(b"0\0"));
                    count.fetch_add(1, Ordering::Relaxed);
                    i += clients;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / secs
}

fn event_fanout(socket: &Path, subscribers: usize, sets: usize) -> (f64, u64) {
    let received = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        let mut s = UnixStream::connect(socket).unwrap();
        use std::io::Write;
        s.write_all(&Request::encode("admin.Events", "", "dom0", "dom0", b""))
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let received = received.clone();
        subs.push(std::thread::spawn(move || {
            let mut stream = Vec::new();
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read_to_end(&mut stream);
            let mut n = 0u64;
            let mut rest = &stream[..];
            while rest.len() > 2 {
                match qubes_api::framing::parse_event_body(&rest[2..]) {
                    Ok((_, used)) => {
                        n += 1;
                        rest = &rest[used + 2..];
                    }
                    Err(_) => break,
                }
            }
            // Not counting connection-established.
            received.fetch_add(n.saturating_sub(1), Ordering::Relaxed);
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    for i in 0..sets {
        let r = call_raw(
            socket,
            &Request::encode(
                "admin.vm.feature.Set",
                "bench",
                "dom0",
                "app20",
                i.to_string().as_bytes(),
            ),
        )
        .unwrap();
        assert_eq!(r, b"0\0");
    }
    let elapsed = t.elapsed();
    for s in subs {
        s.join().unwrap();
    }
    // Two events per Set (pre-set and set) per subscriber.
    let total = received.load(Ordering::Relaxed);
    (total as f64 / elapsed.as_secs_f64(), total)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().to_path_buf();
    make_store(&path);
    let xml_size = std::fs::metadata(path.join("qubes.xml")).unwrap().len();
    let mut starts = Vec::new();
    for _ in 0..5 {
        let (mut c, t) = spawn(&path);
        starts.push(t);
        let _ = c.kill();
        let _ = c.wait();
    }
    let (mut child, _) = spawn(&path);
    let socket = path.join("qubesd.sock");
    let rss_idle = rss_kib(&child.id().to_string());

    let mut list = latencies(
        &socket,
        |_| Request::encode("admin.vm.List", "", "dom0", "dom0", b""),
        200,
    );
    let mut getall = latencies(
        &socket,
        |i| {
            Request::encode(
                "admin.vm.property.GetAll",
                "",
                "dom0",
                &format!("app{}", i % APPS),
                b"",
            )
        },
        500,
    );
    let tp1 = throughput(&socket, 1, 2.0);
    let tp16 = throughput(&socket, 16, 2.0);
    let mut set = latencies(
        &socket,
        |i| {
            Request::encode(
                "admin.vm.property.Set",
                "memory",
                "dom0",
                &format!("app{}", i % APPS),
                (400 + i).to_string().as_bytes(),
            )
        },
        300,
    );
    let (ev_rate, ev_total) = event_fanout(&socket, 50, 400);
    let list_rate = load::rate(
        &socket,
        &Request::encode("admin.vm.List", "", "dom0", "dom0", b""),
        2.0,
    );
    let mut mixed = load::mixed(&socket, APPS, 64, 30, 5.0);
    // Write throughput with and without subscribers, in rounds that take turns (the
    // machine's speed drifts over seconds): medians of five 1-second runs of each. CPU per
    // write of the daemon and of this process (the writer, and the subscribers' readers),
    // to tell the cost of the fan-out from the cost of reading it.
    let pid = child.id().to_string();
    let cpu = || (cpu_of(&pid), cpu_time());
    let mut runs: [Vec<f64>; 3] = Default::default();
    let mut cpu_sums = [(Duration::ZERO, Duration::ZERO, 0.0); 3];
    for _ in 0..5 {
        for (mode, src) in [(0, None), (1, Some("app0")), (2, Some("dom0"))] {
            let subs = src.map(|src| load::Subscribers::start(&socket, src, 50));
            let before = cpu();
            let rate = load::feature_writes(&socket, "app20", 16, 1.0);
            let after = cpu();
            if let Some(subs) = subs {
                subs.stop();
            }
            runs[mode].push(rate);
            let sum = &mut cpu_sums[mode];
            sum.0 += after.0 - before.0;
            sum.1 += after.1 - before.1;
            sum.2 += rate;
        }
    }
    let [writes_alone, writes_50, writes_50_dom0] = runs.map(|mut r| {
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    });
    // Microseconds per write: the rates are per second of 1-second runs.
    let per_write = |(d, b, n): (Duration, Duration, f64)| {
        (d.as_secs_f64() * 1e6 / n, b.as_secs_f64() * 1e6 / n)
    };
    let (cpu_alone, cpu_50) = (per_write(cpu_sums[0]), per_write(cpu_sums[1]));
    let rss_after = rss_kib(&child.id().to_string());
    // A subscriber that never reads while 64 KiB feature values are written.
    let stuck = load::subscribe(&socket, "dom0");
    let big_sets = 3000;
    let t = Instant::now();
    for i in 0..big_sets {
        load::feature_set(&socket, "app21", i, 64_000);
    }
    let big_elapsed = t.elapsed();
    let rss_stuck = rss_kib(&child.id().to_string());
    drop(stuck);
    let _ = child.kill();
    let _ = child.wait();

    // What a checkpoint costs (off the write path since the journal): serialising the whole
    // store, and its durable replacement.
    let host = HostInfo::detect(&path.to_string_lossy(), false);
    let state =
        qubesd::store::parse(&std::fs::read(path.join("qubes.xml")).unwrap(), host).unwrap();
    let mut ser: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(qubesd::store::serialize(&state));
            t.elapsed()
        })
        .collect();
    let xml = qubesd::store::serialize(&state);
    let mut write: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            qubesd::store::write_atomic(&path.join("bench.xml"), xml.as_bytes(), 0o660).unwrap();
            t.elapsed()
        })
        .collect();

    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
    println!(
        "qubesd benchmark: {QUBES} qubes, qubes.xml {} KiB, {} CPUs",
        xml_size / 1024,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| daemon start (exec to socket accepting), median of 5 | {} | < 200 ms |",
        ms(percentile(&mut starts, 0.5))
    );
    println!(
        "| admin.vm.List (1000 lines) p50 / p99 | {} / {} | |",
        ms(percentile(&mut list, 0.5)),
        ms(percentile(&mut list, 0.99))
    );
    println!(
        "| admin.vm.property.GetAll p50 / p99 | {} / {} | |",
        ms(percentile(&mut getall, 0.5)),
        ms(percentile(&mut getall, 0.99))
    );
    println!("| GetAll calls/s, 1 client | {tp1:.0} | >= 20000 read calls/s |");
    println!("| GetAll calls/s, 16 clients | {tp16:.0} | >= 20000 read calls/s |");
    println!(
        "| property.Set incl. its durable save, p50 / p99 | {} / {} | p50 < 1 ms |",
        ms(percentile(&mut set, 0.5)),
        ms(percentile(&mut set, 0.99))
    );
    println!(
        "| a checkpoint (after the journal): serialise qubes.xml whole, p50 | {} | |",
        ms(percentile(&mut ser, 0.5))
    );
    println!(
        "| a checkpoint: atomic write (write, fsync, rename, dir fsync), p50 | {} | |",
        ms(percentile(&mut write, 0.5))
    );
    println!("| events/s delivered to 50 subscribers ({ev_total} events) | {ev_rate:.0} | |");
    println!("| admin.vm.List calls/s, 1 client | {list_rate:.0} | > 5000 |");
    println!(
        "| 64 clients, 30 % writes: {} reads p50 / p99 | {} / {} | < 1 ms / < 5 ms |",
        mixed.reads.len(),
        ms(percentile(&mut mixed.reads, 0.5)),
        ms(percentile(&mut mixed.reads, 0.99))
    );
    println!(
        "| 64 clients, 30 % writes: {} writes p50 / p99 | {} / {} | |",
        mixed.writes.len(),
        ms(percentile(&mut mixed.writes, 0.5)),
        ms(percentile(&mut mixed.writes, 0.99))
    );
    println!(
        "| feature.Set calls/s (median of 5), no subscriber / 50 non-dom0 subscribers | {writes_alone:.0} / {writes_50:.0} ({:.0} %) | >= 80 % |",
        writes_50 * 100.0 / writes_alone
    );
    println!(
        "| feature.Set calls/s (median of 5), 50 dom0 subscribers / 50 non-dom0 subscribers (the policy filter) | {writes_50_dom0:.0} / {writes_50:.0} ({:.0} %) | |",
        writes_50 * 100.0 / writes_50_dom0
    );
    println!(
        "| CPU per feature.Set, daemon / benchmark process: no subscriber, 50 subscribers | {:.0} / {:.0} µs, {:.0} / {:.0} µs | |",
        cpu_alone.0, cpu_alone.1, cpu_50.0, cpu_50.1
    );
    println!(
        "| daemon RSS idle / after load | {} MiB / {} MiB | < 50 MB |",
        rss_idle / 1024,
        rss_after / 1024
    );
    println!(
        "| RSS after {big_sets} 64 KB feature.Set ({:.1} s) with a subscriber that does not read | {} MiB | < 100 MB |",
        big_elapsed.as_secs_f64(),
        rss_stuck / 1024
    );
}
