//! `qubes-qube-manager`: the Qube Manager window.
//!
//! Transport: `--demo` (embedded core with a demo system), `--socket PATH` or `QUBESD_SOCKET`
//! (a daemon's socket), else `/var/run/qubesd.sock` in dom0, else `qrexec-client-vm` in a qube.
//! `--settings QUBE` opens that qube's settings as well (the tray's "Settings"). One Qube
//! Manager runs per daemon and session: a second start raises it (and opens the settings
//! asked for). Every `--demo` is a system of its own. `--help` says all this.
//!
//! # Layers
//!
//! The library's modules point one way (`tests/layers.rs` fails on an import cycle between
//! them, and on a source file over 800 lines):
//!
//! - **window** — `app`: one relm4 component; it builds the window, keeps the rows, and runs
//!   the work (lifecycle actions, removal, cloning, bulk changes) on worker threads.
//! - **pages and dialogs** — `settings` (its pages `features_editor`, `firewall_editor`,
//!   `devices_editor`) and `dialogs` (create, remove, clone, template/network change, the short
//!   questions): relm4 components that answer the window with typed messages (their `Output`
//!   enums, `dialogs::questions::Answer`) and never import it.
//! - **widgets** — `widgets`, `table`, `templates` (the windows declared in `ui/*.ui`),
//!   `resources` (the embedded resource bundle: layouts, style, icons): building blocks that
//!   know nothing of the daemon.
//! - **operations** — `loader`, `lifecycle`, `clone`: reading qubes and events, shutting down
//!   in dependency order and reading back the real state, cloning; blocking, no widgets.
//! - **foundations** — `model`, `errors`, `limits`, `i18n`, `a11y`, `cli`, `view_state`,
//!   `renderer`, `instance`, `qube_icons` (the qube icons' SVGs, recoloured and rasterised).
//!
//! The tray item (`qui-domains`, the `tray` module) shares the foundations and operations.

use qubes_qube_manager::{app, backup_ui, cli, i18n, instance, renderer};
use relm4::gtk;
use relm4::gtk::gio::prelude::ApplicationExt;

const USAGE: &str =
    "usage: qubes-qube-manager [--demo | --socket PATH | --qrexec] [--settings QUBE]";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn main() -> anyhow::Result<()> {
    renderer::prefer_software_rendering();
    cli::init_logging();
    i18n::init();
    if cli::wants_help(&std::env::args().skip(1).collect::<Vec<_>>()) {
        print!(
            "{}",
            cli::help(
                USAGE,
                &i18n::tr("The Qube Manager: see and manage your qubes."),
                &[(
                    "--settings QUBE",
                    i18n::tr("open that qube's settings too (in the running Qube Manager, if any)"),
                )],
            )
        );
        return Ok(());
    }
    let (daemon, open_settings) = match cli::from_env() {
        Ok((daemon, rest)) if rest.is_empty() => (daemon, None),
        Ok((daemon, rest)) if rest.len() == 2 && rest[0] == "--settings" => {
            (daemon, rest.into_iter().nth(1))
        }
        _ => usage(),
    };
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
    let id = instance::app_id(&daemon);
    let relm = relm4::RelmApp::new(id.as_deref().unwrap_or(instance::APP_ID)).with_args(Vec::new());
    match &id {
        None => relm4::main_application().set_flags(gtk::gio::ApplicationFlags::NON_UNIQUE),
        Some(id) => {
            if instance::hand_over_to_running(id, open_settings.as_deref()) {
                // Straight out: the application object stays registered as a remote.
                std::process::exit(0);
            }
        }
    }
    // Ctrl+C or SIGTERM closes the window as its close button does, so the program ends
    // normally (a demo's temporary directory is removed then).
    cli::on_termination(|| {
        gtk::glib::MainContext::default().invoke(|| relm4::main_application().quit());
    });
    // The embedded core (demo) lives until the window closes.
    let (client, _core) = cli::connect_or_exit(&daemon);
    // Where backup profiles are written and how restored data is imported, for this daemon.
    backup_ui::env::set_current(backup_ui::env::BackupEnv::for_daemon(
        &daemon,
        _core.as_ref(),
    ));
    relm.run::<app::App>(app::AppInit {
        client,
        view_state: qubes_qube_manager::view_state::ViewState::open_default(),
        open_settings,
    });
    Ok(())
}
