//! `qubes-qube-manager`: the Qube Manager window.
//!
//! Transport: `--demo` (embedded core with a demo system), `--socket PATH` or `QUBESD_SOCKET`
//! (a daemon's socket), else `/var/run/qubesd.sock` in dom0, else `qrexec-client-vm` in a qube.

use std::path::PathBuf;
use std::sync::Arc;

use qubes_api::{Client, LocalSocket, Qrexec};
use qubes_qube_manager::{app, i18n, renderer};

fn usage() -> ! {
    eprintln!("usage: qubes-qube-manager [--demo | --socket PATH | --qrexec]");
    std::process::exit(2)
}

fn main() -> anyhow::Result<()> {
    renderer::prefer_software_rendering();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUBES_MANAGER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    i18n::init();
    let mut args = std::env::args().skip(1);
    let mut socket: Option<PathBuf> = std::env::var_os("QUBESD_SOCKET").map(PathBuf::from);
    let mut demo = false;
    let mut qrexec = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--demo" => demo = true,
            "--qrexec" => qrexec = true,
            "--socket" => socket = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    // relm4 unwraps GTK's initialisation; check first so a missing display is a message, not a
    // panic with a backtrace.
    if let Err(e) = relm4::gtk::init() {
        eprintln!(
            "{}: {e} ({})",
            i18n::tr("Cannot start the graphical interface"),
            i18n::tr("is DISPLAY or WAYLAND_DISPLAY set?")
        );
        std::process::exit(1);
    }
    let mut keep_alive = None;
    let client = if demo {
        let (client, core) = app::demo_client()?;
        keep_alive = Some(core);
        client
    } else if qrexec {
        Client::new(Arc::new(Qrexec::default()))
    } else if let Some(path) = socket {
        Client::new(Arc::new(LocalSocket { path }))
    } else if std::path::Path::new("/var/run/qubesd.sock").exists() {
        Client::new(Arc::new(LocalSocket {
            path: "/var/run/qubesd.sock".into(),
        }))
    } else {
        Client::new(Arc::new(Qrexec::default()))
    };
    let relm = relm4::RelmApp::new("org.qubes_os.qube_manager").with_args(Vec::new());
    relm.run::<app::App>(app::AppInit {
        client,
        view_state: qubes_qube_manager::view_state::ViewState::open_default(),
    });
    drop(keep_alive);
    Ok(())
}
