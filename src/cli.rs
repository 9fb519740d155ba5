//! The command line both programs share: which daemon to talk to.
//!
//! `--demo` (an embedded core with a demo system), `--socket PATH` or `QUBESD_SOCKET` (a daemon's
//! socket), `--qrexec` (`qrexec-client-vm`), else `/var/run/qubesd.sock` in dom0, else
//! `qrexec-client-vm` in a qube.

use std::path::PathBuf;
use std::sync::Arc;

use qubes_api::{Client, LocalSocket, Qrexec};

/// The dom0 socket of the Admin API.
pub const DOM0_SOCKET: &str = "/var/run/qubesd.sock";

/// Where the Admin API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    /// An embedded core with a demo system in a temporary directory.
    Demo,
    /// A daemon's admin socket.
    Socket(PathBuf),
    /// `qrexec-client-vm` (inside a qube).
    Qrexec,
}

/// The daemon choice and the arguments left for the program, or `Err` with the offending
/// argument. `env_socket` is `QUBESD_SOCKET`; `dom0` whether [`DOM0_SOCKET`] exists.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env_socket: Option<PathBuf>,
    dom0: bool,
) -> Result<(Daemon, Vec<String>), String> {
    let mut args = args.into_iter();
    let mut chosen = None;
    let mut rest = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--demo" => chosen = Some(Daemon::Demo),
            "--qrexec" => chosen = Some(Daemon::Qrexec),
            "--socket" => match args.next() {
                Some(p) => chosen = Some(Daemon::Socket(p.into())),
                None => return Err(a),
            },
            _ => rest.push(a),
        }
    }
    let daemon = chosen
        .or(env_socket.map(Daemon::Socket))
        .unwrap_or(if dom0 {
            Daemon::Socket(DOM0_SOCKET.into())
        } else {
            Daemon::Qrexec
        });
    Ok((daemon, rest))
}

/// [`parse`] over this process's arguments and environment.
pub fn from_env() -> Result<(Daemon, Vec<String>), String> {
    parse(
        std::env::args().skip(1),
        std::env::var_os("QUBESD_SOCKET").map(PathBuf::from),
        std::path::Path::new(DOM0_SOCKET).exists(),
    )
}

/// The embedded core of `--demo`, kept alive while its client is used.
#[cfg(feature = "demo")]
pub type Core = Arc<qubesd::Embedded>;

/// Built without the demo core: there never is one.
#[cfg(not(feature = "demo"))]
pub enum Core {}

/// A client for `daemon`, and the embedded core to keep alive while it is used.
pub fn connect(daemon: &Daemon) -> anyhow::Result<(Client, Option<Core>)> {
    Ok(match daemon {
        #[cfg(feature = "demo")]
        Daemon::Demo => {
            let core = Arc::new(qubesd::Embedded::demo()?);
            (Client::new(core.clone()), Some(core))
        }
        #[cfg(not(feature = "demo"))]
        Daemon::Demo => anyhow::bail!("built without the demo core (cargo feature \"demo\")"),
        Daemon::Socket(path) => (
            Client::new(Arc::new(LocalSocket { path: path.clone() })),
            None,
        ),
        Daemon::Qrexec => (Client::new(Arc::new(Qrexec::default())), None),
    })
}

/// Whether the arguments ask for help (`--help`, `-h`).
pub fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h")
}

/// The help text of a program: its usage line, what it is, its own options (`extra`: option,
/// meaning), then the daemon options both programs share.
pub fn help(usage: &str, about: &str, extra: &[(&str, String)]) -> String {
    let mut options: Vec<(&str, String)> = extra.to_vec();
    options.extend([
        (
            "--demo",
            crate::i18n::tr("an embedded daemon with a demo system (nothing real is touched)"),
        ),
        (
            "--socket PATH",
            crate::i18n::tr("the daemon listening on PATH (also: QUBESD_SOCKET)"),
        ),
        (
            "--qrexec",
            crate::i18n::tr("the daemon in dom0 through qrexec-client-vm (in a qube)"),
        ),
        ("--help", crate::i18n::tr("this help")),
    ]);
    let width = options.iter().map(|(o, _)| o.len()).max().unwrap_or(0);
    let mut out = format!("{usage}\n\n{about}\n\n");
    for (option, meaning) in options {
        out.push_str(&format!("  {option:width$}  {meaning}\n"));
    }
    out.push_str(&format!(
        "\n{}\n",
        crate::i18n::tr(
            "Without a choice: /var/run/qubesd.sock in dom0, else qrexec-client-vm in a qube."
        )
    ));
    out
}

/// [`connect`], or a message and exit status 1.
pub fn connect_or_exit(daemon: &Daemon) -> (Client, Option<Core>) {
    connect(daemon).unwrap_or_else(|e| {
        eprintln!("{e:#}");
        std::process::exit(1)
    })
}

/// Makes a demo core reachable by other programs too, at `qubesd.sock` in its directory;
/// returns that socket.
pub fn share_demo(core: &Core) -> anyhow::Result<Option<PathBuf>> {
    #[cfg(feature = "demo")]
    {
        let Some(dir) = core.demo_dir() else {
            return Ok(None);
        };
        let socket = dir.join("qubesd.sock");
        core.serve_admin_socket(&socket)?;
        Ok(Some(socket))
    }
    #[cfg(not(feature = "demo"))]
    match *core {}
}

/// Logs to stderr, filtered by `QUBES_MANAGER_LOG` (default: warnings).
pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        // Colour codes only for a person at a terminal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUBES_MANAGER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// `name` in a directory of `PATH`.
pub fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Calls `stop` (once, on a thread of its own) when the process gets SIGINT or SIGTERM, so
/// the program can end normally instead of being cut off.
pub fn on_termination(stop: impl FnOnce() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("termination".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                stop();
            });
        });
    if let Err(e) = spawned {
        tracing::warn!("no handling of SIGTERM: {e}");
    }
}

/// Runs a local program to its end without input or output (blocking); a failure to start or
/// a failed exit comes back as a message (its stderr).
pub fn run_quietly(command: &mut std::process::Command) -> Result<(), String> {
    let result = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    match result {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn explicit_choice_beats_environment_and_dom0() {
        let (d, rest) = parse(args(&["--demo", "-x"]), Some("/e".into()), true).unwrap();
        assert_eq!((d, rest), (Daemon::Demo, args(&["-x"])));
        let (d, _) = parse(args(&["--socket", "/s"]), Some("/e".into()), true).unwrap();
        assert_eq!(d, Daemon::Socket("/s".into()));
        let (d, _) = parse(args(&[]), Some("/e".into()), true).unwrap();
        assert_eq!(d, Daemon::Socket("/e".into()));
        let (d, _) = parse(args(&[]), None, true).unwrap();
        assert_eq!(d, Daemon::Socket(DOM0_SOCKET.into()));
        let (d, _) = parse(args(&[]), None, false).unwrap();
        assert_eq!(d, Daemon::Qrexec);
        assert_eq!(
            parse(args(&["--socket"]), None, false),
            Err("--socket".into())
        );
    }

    #[test]
    fn programs_report_their_failure() {
        assert_eq!(run_quietly(&mut std::process::Command::new("true")), Ok(()));
        let mut fails = std::process::Command::new("sh");
        fails.args(["-c", "echo broken >&2; exit 3"]);
        assert_eq!(run_quietly(&mut fails), Err("broken".into()));
        let missing = run_quietly(&mut std::process::Command::new("/nonexistent/program"));
        assert!(missing.unwrap_err().contains("No such file"));
    }
}
