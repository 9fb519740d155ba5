//! `qubes-backup-restore`: restores (or verifies) a Qubes backup, format v4, with the options
//! of `qvm-backup-restore`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use qubes_api::{Client, LocalSocket};
use qubes_backup::qubesxml;
use qubes_backup::read::{Backup, ReadOptions, Source};
use qubes_backup::restore::{self, HostState, Plan, Problem, RestoreOptions};

#[derive(Parser, Debug)]
#[command(
    name = "qubes-backup-restore",
    about = "Restore Qubes qubes from a backup"
)]
struct Args {
    /// Only check the backup's integrity; restore nothing.
    #[arg(long)]
    verify_only: bool,
    /// Do not restore qubes with a missing template or net qube.
    #[arg(long)]
    skip_broken: bool,
    /// Restore qubes with a missing template or net qube, using the defaults.
    #[arg(long)]
    ignore_missing: bool,
    /// Do not restore qubes whose names are already taken.
    #[arg(long)]
    skip_conflicting: bool,
    /// Restore qubes whose names are taken under new names.
    #[arg(long)]
    rename_conflicting: bool,
    /// A qube not to restore (repeatable).
    #[arg(short = 'x', long = "exclude")]
    exclude: Vec<String>,
    /// Do not restore dom0's home.
    #[arg(long)]
    skip_dom0_home: bool,
    /// The qube holding the backup (the path is then inside it).
    #[arg(short = 'd', long = "dest-vm", visible_alias = "from-vm")]
    from_vm: Option<String>,
    /// Read the passphrase from this file (`-` for standard input); no confirmation is asked.
    #[arg(short = 'p', long)]
    passphrase_file: Option<String>,
    /// qubesd's socket.
    #[arg(long, env = "QUBESD_SOCKET", default_value = "/var/run/qubesd.sock")]
    socket: PathBuf,
    /// The `admin.vm.volume.ImportWithSize` service program.
    #[arg(long, default_value = "/etc/qubes-rpc/admin.vm.volume.ImportWithSize")]
    import_program: PathBuf,
    /// Directory for spooling chunks read from a qube.
    #[arg(long, default_value = "/var/tmp")]
    spool_dir: PathBuf,
    /// The backup file (or its path inside the qube given with --dest-vm).
    backup_location: String,
    /// Restore only these qubes.
    vms: Vec<String>,
}

/// Reads a line from the terminal with echo off.
fn ask_passphrase() -> anyhow::Result<String> {
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask the passphrase on (use --passphrase-file)")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios calls on our own terminal descriptor with a zeroed struct they fill.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(fd, &mut t);
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        libc::tcsetattr(fd, libc::TCSANOW, &t);
        saved
    };
    let _ = (&tty).write_all(
        b"Please enter the passphrase to verify and (if encrypted) decrypt the backup: ",
    );
    let mut line = String::new();
    let r = std::io::BufReader::new(&tty).read_line(&mut line);
    // SAFETY: restores what tcgetattr gave.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    let _ = (&tty).write_all(b"\n");
    r?;
    Ok(line.trim_end().to_string())
}

fn passphrase(args: &Args) -> anyhow::Result<String> {
    match args.passphrase_file.as_deref() {
        Some("-") => {
            let mut l = String::new();
            std::io::stdin().lock().read_line(&mut l)?;
            Ok(l.trim_end().to_string())
        }
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?;
            Ok(text.lines().next().unwrap_or("").trim_end().to_string())
        }
        None => ask_passphrase(),
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    let pass = passphrase(&args)?;
    let source = match &args.from_vm {
        None => Source::File(
            std::fs::File::open(&args.backup_location)
                .with_context(|| format!("opening {}", args.backup_location))?,
        ),
        Some(vm) => {
            // The raw archive from the qube (the reference's qubes.Restore sends it in the
            // qfile format instead).
            let child = std::process::Command::new("qvm-run")
                .args([
                    "--pass-io",
                    "--no-gui",
                    "--no-autostart",
                    vm,
                    "--",
                    "cat",
                    "--",
                ])
                .arg(&args.backup_location)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .context("running qvm-run")?;
            Source::Stream(Box::new(child.stdout.context("no output")?))
        }
    };
    let mut ropts = ReadOptions::new(pass);
    ropts.spool_dir = args.spool_dir.clone();
    eprintln!("Checking backup content...");
    let mut backup = Backup::open(source, ropts)?;
    let qubes = qubesxml::parse(backup.qubes_xml())?;
    let client = Client::new(Arc::new(LocalSocket {
        path: args.socket.clone(),
    }));
    let host = if args.verify_only {
        HostState::default()
    } else {
        HostState {
            qubes: client
                .vm_list()
                .context("listing qubes")?
                .into_iter()
                .map(|e| (e.name, e.class))
                .collect(),
            default_template: client
                .call("admin.property.Get", "dom0", "default_template", b"")
                .ok()
                .and_then(|v| v.rsplit_once(' ').map(|(_, t)| t.to_string()))
                .filter(|t| !t.is_empty()),
        }
    };
    let opts = RestoreOptions {
        verify_only: args.verify_only,
        rename_conflicting: args.rename_conflicting,
        exclude: args.exclude.clone(),
        only: args.vms.clone(),
        ignore_missing: args.ignore_missing,
        skip_dom0_home: args.skip_dom0_home,
        dom0_home_dir: std::env::var_os("HOME").map(PathBuf::from),
        import_program: args.import_program.clone(),
        ..Default::default()
    };
    let plan = Plan::new(&qubes, &host, &opts);
    print!("{}", plan.summary(&qubes));
    for e in &plan.entries {
        for p in &e.problems {
            match p {
                Problem::Excluded => {}
                Problem::AlreadyExists if args.skip_conflicting => {}
                Problem::MissingTemplate | Problem::MissingNetvm if args.skip_broken => {}
                Problem::AlreadyExists => bail!(
                    "{}: a qube with this name exists; remove it, or use --skip-conflicting or --rename-conflicting",
                    e.name
                ),
                _ => bail!("{}: {p}; use --skip-broken or --ignore-missing", e.name),
            }
        }
    }
    if args.passphrase_file.is_none() {
        print!("Do you want to proceed? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            return Ok(true);
        }
    }
    let client = (!args.verify_only).then_some(&client);
    let report = restore::restore(client, &mut backup, &qubes, &plan, &opts)?;
    for q in &report.qubes {
        let verb = if args.verify_only {
            "verified"
        } else {
            "restored"
        };
        if q.ok && q.restored_as != q.name {
            println!("{}: {verb} as {}", q.name, q.restored_as);
        } else if q.ok {
            println!("{}: {verb}", q.name);
        } else {
            println!("{}: NOT restored", q.name);
        }
        for m in &q.messages {
            println!("    {m}");
        }
    }
    if let Some(h) = &report.dom0_home {
        println!("dom0 home restored in {}", h.display());
    }
    println!("-> Done.");
    if !args.verify_only {
        println!("-> Please install updates for all the restored templates.");
    }
    Ok(report.qubes.iter().all(|q| q.ok))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("qubes-backup-restore: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
