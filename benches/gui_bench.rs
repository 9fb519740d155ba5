//! Qube Manager benchmark with 1000 qubes on the embedded core (100 of them running, stats every
//! second): prints a table. Needs a display: `tools/headless cargo bench --bench gui_bench`
//! (with `GSK_RENDERER=cairo`: under Xvfb the GL renderer is software GL, which costs several
//! per cent of a core by itself). `BENCH_NO_VOLUMES=1` leaves the qubes without volumes, as
//! earlier runs of this benchmark had them.
//!
//! A second case runs the same system on a daemon as slow as the reference qubesd
//! (`support/paced.rs`: each call held back for the reference's time, one at a time; or
//! `BENCH_CALL_MS` for every call): when the rows appear, when the rows on screen are complete
//! (properties and disk usage), when every qube is read, and how many calls that took.

// Benchmarks may unwrap: a panic here is a failed run, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use qubes_api::{Client, Transport};
use relm4::ComponentController;
use relm4::gtk;
use relm4::gtk::prelude::*;

#[path = "support/measure.rs"]
mod measure;
use measure::{cpu_time, rss_kib};
#[path = "support/paced.rs"]
mod paced;
#[path = "support/system.rs"]
mod system;
use system::{QUBES, RUNNING, prepare};

fn spin(secs: f64, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let ctx = gtk::glib::MainContext::default();
    while Instant::now() < end {
        while ctx.pending() {
            ctx.iteration(false);
        }
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

fn main() {
    // As the program does: see renderer.rs.
    qubes_qube_manager::renderer::prefer_software_rendering();
    if std::env::var_os("DISPLAY").is_none() {
        println!("no display: run under xvfb-run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = prepare(dir.path());
    gtk::init().unwrap();
    relm4::adw::init().unwrap();
    let rss_before = rss_kib("self") / 1024;
    let t0 = Instant::now();
    let core = Arc::new(qubesd::Embedded::start(&config).unwrap());
    let core_ready = t0.elapsed();
    let client = Client::new(core.clone() as Arc<dyn Transport>);
    let c = qubes_qube_manager::app::builder(
        client,
        qubes_qube_manager::view_state::ViewState::open(&dir.path().join("view.ini")),
    );
    c.widget().present();
    let loaded = spin(30.0, || {
        c.model().is_loaded() && c.model().row_names().len() == QUBES
    });
    let populated = t0.elapsed();
    assert!(loaded, "table not populated");
    // Disk usage arrives after the table (volume.List + Info per volume, in the background).
    let disk_done = spin(60.0, || {
        c.model()
            .cell("qube0998", qubes_qube_manager::model::Column::DiskUsage)
            .is_some_and(|s| !s.is_empty())
            && c.model()
                .cell("qube0000", qubes_qube_manager::model::Column::DiskUsage)
                .is_some_and(|s| !s.is_empty())
    });
    let disk = t0.elapsed();
    // Wait for the first statistics to arrive, then measure a quiet 10 s.
    spin(5.0, || {
        c.model()
            .cell("qube0000", qubes_qube_manager::model::Column::Cpu)
            .is_some_and(|s| !s.is_empty())
    });
    // A real main loop (blocking in poll), as the application runs.
    let main_loop = gtk::glib::MainLoop::new(None, false);
    let quit = main_loop.clone();
    gtk::glib::timeout_add_once(Duration::from_secs(10), move || quit.quit());
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    main_loop.run();
    let idle = (cpu_time() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64() * 100.0;
    let rss = rss_kib("self") / 1024;
    // The same quiet period with statistics effectively off: what the window itself costs.
    core.call_raw("admin.property.Set", "dom0", "stats_interval", b"3600")
        .unwrap();
    spin(2.5, || false);
    let main_loop = gtk::glib::MainLoop::new(None, false);
    let quit = main_loop.clone();
    gtk::glib::timeout_add_once(Duration::from_secs(5), move || quit.quit());
    let (cpu1, wall1) = (cpu_time(), Instant::now());
    main_loop.run();
    let quiet = (cpu_time() - cpu1).as_secs_f64() / wall1.elapsed().as_secs_f64() * 100.0;
    println!(
        "Qube Manager benchmark: {QUBES} qubes ({RUNNING} running), embedded core, stats every second"
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| embedded core loaded | {:.1} ms | |",
        core_ready.as_secs_f64() * 1000.0
    );
    println!(
        "| launch to fully populated table | {:.1} ms | < 1 s |",
        populated.as_secs_f64() * 1000.0
    );
    println!(
        "| launch to disk usage of every qube (4 volume calls per qube) | {} | |",
        if disk_done {
            format!("{:.1} ms", disk.as_secs_f64() * 1000.0)
        } else {
            "not filled in 60 s".into()
        }
    );
    println!("| CPU at idle (GUI + embedded core, one process) | {idle:.2} % of a core | < 2 % |");
    println!("| CPU at idle without statistics (the window alone) | {quiet:.2} % of a core | |");
    println!(
        "| RSS (GUI + embedded core) | {rss} MiB = {:.0} MB (before start {rss_before} MiB) | < 150 MB |",
        rss as f64 * 1.048_576
    );
    c.widget().close();
    drop(c);
    paced_case();
}

/// Counts the calls a transport serves.
struct Counted<T>(T, std::sync::atomic::AtomicUsize);

impl<T: Transport> Transport for Counted<T> {
    fn call_raw(
        &self,
        method: &str,
        dest: &str,
        arg: &str,
        payload: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.call_raw(method, dest, arg, payload)
    }
    fn open_stream(
        &self,
        method: &str,
        dest: &str,
    ) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.0.open_stream(method, dest)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn real_system(&self) -> bool {
        false
    }
}

/// The same system on a daemon as slow as the reference.
fn paced_case() {
    use qubes_qube_manager::model::Column;
    let dir = tempfile::tempdir().unwrap();
    let config = prepare(dir.path());
    let core = Arc::new(qubesd::Embedded::start(&config).unwrap());
    let transport = Arc::new(Counted(
        paced::Paced::new(core.clone(), paced::reference_cost),
        std::sync::atomic::AtomicUsize::new(0),
    ));
    let calls = || transport.1.load(std::sync::atomic::Ordering::Relaxed);
    let client = Client::new(transport.clone() as Arc<dyn Transport>);
    let t0 = Instant::now();
    let c = qubes_qube_manager::app::builder(
        client,
        qubes_qube_manager::view_state::ViewState::open(&dir.path().join("view.ini")),
    );
    c.widget().present();
    let listed = spin(30.0, || {
        c.model().is_listed() && c.model().row_names().len() == QUBES
    });
    let rows = t0.elapsed();
    assert!(listed, "no rows");
    // A row is complete once its properties (memory: dom0 has none) and disk usage are in.
    let complete = |vm: &str| {
        let m = c.model();
        (vm == "dom0" || m.cell(vm, Column::Memory).is_some_and(|s| !s.is_empty()))
            && m.cell(vm, Column::DiskUsage).is_some_and(|s| !s.is_empty())
    };
    let on_screen = c.model().rows_on_screen();
    let visible_done = spin(60.0, || on_screen.iter().all(|vm| complete(vm)));
    if !visible_done {
        let missing: Vec<&String> = on_screen.iter().filter(|vm| !complete(vm)).collect();
        eprintln!(
            "rows on screen not complete: {missing:?}; status: {}",
            c.model().status()
        );
    }
    let visible = t0.elapsed();
    let visible_calls = calls();
    let all_props = spin(120.0, || c.model().is_loaded());
    let props = t0.elapsed();
    let props_calls = calls();
    let all_disk = spin(120.0, || {
        c.model()
            .row_names()
            .iter()
            .filter(|vm| *vm != "dom0")
            .all(|vm| complete(vm))
    });
    let disk = t0.elapsed();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let cost = |m: &str| format!("{:.1}", paced::reference_cost(m).as_secs_f64() * 1000.0);
    println!();
    println!(
        "On a daemon paced as the reference qubesd ({QUBES} qubes; List {} ms, GetAll {} ms, other calls {} ms, one call at a time)",
        cost("admin.vm.List"),
        cost("admin.vm.property.GetAll"),
        cost("admin.vm.feature.List")
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| launch to every row on screen (admin.vm.List) | {} | < 1 s |",
        ms(rows)
    );
    println!(
        "| launch to the {} rows on screen complete (properties, disk usage) | {} ({} calls) | < 2 s |",
        on_screen.len(),
        if visible_done {
            ms(visible)
        } else {
            "not in 60 s".into()
        },
        visible_calls
    );
    println!(
        "| launch to every qube's properties | {} ({:.1} calls a qube) | |",
        if all_props {
            ms(props)
        } else {
            "not in 120 s".into()
        },
        props_calls as f64 / QUBES as f64
    );
    println!(
        "| launch to every qube's disk usage | {} ({:.1} calls a qube in all) | |",
        if all_disk {
            ms(disk)
        } else {
            "not in 120 s".into()
        },
        calls() as f64 / QUBES as f64
    );
    c.widget().close();
}
