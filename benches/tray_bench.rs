//! Tray benchmark: `qui-domains` as its own process on a private session bus, talking to a core
//! over a real socket (1000 qubes, 100 running, statistics every second). Prints a table:
//! start to a complete menu, how fast the menu is served (what a host does when it is
//! clicked), CPU at idle and RSS of the tray process. `cargo bench --bench tray_bench`.

// Benchmarks may unwrap: a panic here is a failed run, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::OwnedValue;

#[path = "support/measure.rs"]
mod measure;
use measure::{percentile, rss_kib};
#[path = "support/bus.rs"]
mod bus;
#[path = "support/system.rs"]
mod system;
use system::{QUBES, RUNNING, prepare};

type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

/// CPU time (user + system) of process `pid`, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(f.iter().sum::<u64>() * 1000 / hz)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = prepare(dir.path());
    let core = qubesd::Embedded::start(&config).unwrap();
    let socket = dir.path().join("bench.sock");
    core.serve_admin_socket(&socket).unwrap();

    let (_bus, address) = bus::Bus::start();

    let t0 = Instant::now();
    let mut tray = std::process::Command::new(env!("CARGO_BIN_EXE_qui-domains"))
        .arg("--socket")
        .arg(&socket)
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .spawn()
        .expect("qui-domains");
    let pid = tray.id();
    let host = zbus::blocking::connection::Builder::address(address.as_str())
        .unwrap()
        .build()
        .unwrap();
    let service = format!("org.kde.StatusNotifierItem-{pid}-1");
    let layout = |conn: &Connection| -> Option<Layout> {
        let reply = conn
            .call_method(
                Some(service.as_str()),
                "/MenuBar",
                Some("com.canonical.dbusmenu"),
                "GetLayout",
                &(0i32, -1i32, Vec::<String>::new()),
            )
            .ok()?;
        let (_rev, l): (u32, Layout) = reply.body().deserialize().ok()?;
        Some(l)
    };
    // Rows of running qubes (named qube0000...), and those showing statistics.
    let rows = |l: &Layout, with: &str| {
        l.2.iter()
            .filter_map(|v| {
                let (_, props, _): Layout = v.try_clone().ok()?.try_into().ok()?;
                String::try_from(props.get("label")?.try_clone().ok()?).ok()
            })
            .filter(|label| label.starts_with("qube0") && label.contains(with))
            .count()
    };
    let wait_for = |with: &str| {
        while t0.elapsed() < Duration::from_secs(60) {
            if layout(&host).is_some_and(|l| rows(&l, with) == RUNNING) {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    };
    let listed = wait_for("");
    let ready = wait_for(" MiB");
    // Serving the whole menu (1000 qubes: 101 rows with submenus, 900 to start).
    let mut served = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        layout(&host).expect("menu");
        served.push(t.elapsed());
    }
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, wall0) = (cpu_of(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let idle = (cpu_of(pid) - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64() * 100.0;
    let rss = rss_kib(&pid.to_string());
    if std::env::var_os("BENCH_HOLD").is_some() {
        println!("holding: tray pid {pid}");
        std::thread::sleep(Duration::from_secs(120));
    }

    println!(
        "Tray benchmark: qui-domains over a socket, {QUBES} qubes ({RUNNING} running), stats every second"
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    let ms = |d: Option<Duration>| {
        d.map_or("not reached in 60 s".into(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        })
    };
    println!(
        "| start to every running qube in the menu | {} | < 1 s |",
        ms(listed)
    );
    println!(
        "| start to memory and CPU on every row (first statistics round) | {} | |",
        ms(ready)
    );
    println!(
        "| menu served to the host (GetLayout, whole tree), median / p95 | {:.1} ms / {:.1} ms | |",
        percentile(&mut served, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut served, 0.95).as_secs_f64() * 1000.0
    );
    println!("| CPU at idle (tray process) | {idle:.2} % of a core | < 1 % |");
    println!(
        "| RSS (tray process) | {} MiB = {:.0} MB | < 50 MB |",
        rss / 1024,
        rss as f64 * 1.024 / 1000.0
    );
    let _ = tray.kill();
    let _ = tray.wait();
}
