//! Qube Manager benchmark with 1000 qubes on the embedded core (100 of them running, stats every
//! second): prints a table. Needs a display: `xvfb-run -a cargo bench --bench gui_bench`
//! (with `GSK_RENDERER=cairo`: under Xvfb the GL renderer is software GL, which costs several
//! per cent of a core by itself). `BENCH_NO_VOLUMES=1` leaves the qubes without volumes, as
//! earlier runs of this benchmark had them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qubes_api::{Client, Transport};
use relm4::ComponentController;
use relm4::gtk;
use relm4::gtk::prelude::*;

#[path = "support/measure.rs"]
mod measure;
use measure::{cpu_time, rss_kib};
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
}
