//! `qui-domains`: the Qubes Domains tray item (see [`qubes_qube_manager::tray`]).
//!
//! Transport as the Qube Manager's: `--demo`, `--socket PATH` or `QUBESD_SOCKET`,
//! `--qrexec`, else `/var/run/qubesd.sock` in dom0, else `qrexec-client-vm` in a qube.
//! With `--demo` the embedded core also listens on `qubesd.sock` in its temporary directory,
//! so the Qube Manager opened from the tray shows the same system.

use std::ffi::OsString;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use qubes_qube_manager::cli::{self, Daemon};
use qubes_qube_manager::{i18n, tray};

const USAGE: &str = "usage: qui-domains [--demo | --socket PATH | --qrexec]";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn main() -> anyhow::Result<()> {
    cli::init_logging();
    i18n::init();
    if cli::wants_help(&std::env::args().skip(1).collect::<Vec<_>>()) {
        print!(
            "{}",
            cli::help(
                USAGE,
                &i18n::tr(
                    "The Qubes Domains tray item: running qubes, their memory and CPU, and what to do with them. It needs a desktop with a system tray (StatusNotifierItem)."
                ),
                &[],
            )
        );
        return Ok(());
    }
    let daemon = match cli::from_env() {
        Ok((daemon, rest)) if rest.is_empty() => daemon,
        _ => usage(),
    };
    // SIGTERM / SIGINT: leave the bus cleanly (the item disappears from the tray at once);
    // before the item runs, end at once, but normally (a demo's directory is removed then).
    let quit: Arc<Mutex<Option<Sender<tray::TrayMsg>>>> = Arc::default();
    {
        let quit = quit.clone();
        cli::on_termination(move || match quit.lock().ok().and_then(|q| q.clone()) {
            Some(sender) => {
                let _ = sender.send(tray::TrayMsg::Quit);
            }
            None => std::process::exit(0),
        });
    }
    let (client, core) = cli::connect_or_exit(&daemon);
    let manager_args: Vec<OsString> = match (&daemon, &core) {
        (Daemon::Demo, Some(core)) => match cli::share_demo(core)? {
            Some(socket) => vec!["--socket".into(), socket.into()],
            None => Vec::new(),
        },
        (Daemon::Socket(path), _) => vec!["--socket".into(), path.into()],
        _ => vec!["--qrexec".into()],
    };
    let options = tray::Options::detect(&client, manager_args);
    let running = match tray::spawn(client, options) {
        Ok(r) => r,
        Err(e) => {
            // No session bus: a message, not a backtrace.
            eprintln!("{}: {e}", i18n::tr("Cannot show the tray item"));
            std::process::exit(1);
        }
    };
    if let Ok(mut q) = quit.lock() {
        *q = Some(running.sender.clone());
    }
    running.join();
    Ok(())
}
