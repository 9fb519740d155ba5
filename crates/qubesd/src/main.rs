//! `qubesd`: the Admin API daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use qubesd::{Config, Daemon};

/// Qubes OS Admin API daemon.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory of qubes.xml and per-qube files.
    #[arg(long, env = "QUBESD_STATE_DIR", default_value = "/var/lib/qubes")]
    state_dir: PathBuf,
    /// Directory where qubesd.sock, qubesd.internal.sock and qubesd.misc.sock are created.
    #[arg(long, env = "QUBESD_SOCKET_DIR", default_value = "/var/run")]
    socket_dir: PathBuf,
    /// Hypervisor connection.
    #[arg(long, env = "QUBESD_LIBVIRT_URI", default_value = "xen:///")]
    libvirt_uri: String,
    /// Send a traceback text with every exception.
    #[arg(long)]
    debug: bool,
    /// qrexec policy directory (repeat for several; earlier ones shadow later ones).
    /// Default: /run/qubes/policy.d and /etc/qubes/policy.d.
    #[arg(long = "policy-dir", env = "QUBESD_POLICY_DIR")]
    policy_dirs: Vec<PathBuf>,
    /// Directory of the qubes' QubesDB sockets (qubesdb.<qube>.sock).
    #[arg(long, env = "QUBESD_QUBESDB_DIR", default_value = qubesd::daemon::DEFAULT_QUBESDB_DIR)]
    qubesdb_dir: PathBuf,
    /// Qubes' runtime directory (qrexec markers; the qubes paused before a system suspend).
    #[arg(long, env = "QUBESD_RUNTIME_DIR", default_value = qubesd::daemon::DEFAULT_RUNTIME_DIR)]
    runtime_dir: PathBuf,
    /// Directory of the backup profiles (`<id>.conf`).
    #[arg(
        long,
        env = "QUBESD_BACKUP_PROFILE_DIR",
        default_value = "/etc/qubes/backup"
    )]
    backup_profile_dir: PathBuf,
    /// The program that runs a service in a qube.
    #[arg(
        long,
        env = "QUBESD_QREXEC_CLIENT",
        default_value = "/usr/lib/qubes/qrexec-client"
    )]
    qrexec_client: PathBuf,
    /// Program that runs a command as root (give `/usr/bin/sudo` on a Qubes system): used to
    /// enable and disable the `qubes-vm@<qube>.service` units of autostart qubes. Unset:
    /// autostart changes no systemd unit.
    #[arg(long, env = "QUBESD_SUDO")]
    sudo: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, env = "QUBESD_LOG", default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        // Colour codes only for a person at a terminal, not in the journal or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let config = Config {
        state_dir: args.state_dir,
        socket_dir: args.socket_dir,
        libvirt_uri: args.libvirt_uri,
        debug: args.debug,
        policy_dirs: if args.policy_dirs.is_empty() {
            qubesd::policy::default_dirs()
        } else {
            args.policy_dirs
        },
        backup_profile_dir: args.backup_profile_dir,
        qubesdb_dir: args.qubesdb_dir,
        runtime_dir: args.runtime_dir,
        qrexec_client: args.qrexec_client,
        sudo: args.sudo,
    };
    // Calls run on many short-lived threads; glibc gives each its own heap arena (up to
    // eight per CPU), and memory freed in one is not reused by another. Two arenas keep the
    // daemon's memory near what it holds (10 MiB less after the benchmark's load) at no cost
    // we could measure: one lock guards the state, not the allocator.
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        // The reference creates sockets with umask 007.
        // SAFETY: umask only changes this process's file creation mask.
        unsafe { libc::umask(0o007) };
        let daemon = Daemon::start(&config).context("qubesd cannot start")?;
        tracing::info!(
            "qubesd ready: store {}, sockets in {}",
            config.store_path().display(),
            config.socket_dir.display()
        );
        qubesd::daemon::notify_ready();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        daemon.shutdown();
        Ok(())
    })
}
