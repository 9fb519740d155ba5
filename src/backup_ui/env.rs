//! What the backup and restore windows need besides the Admin API, which depends on where the
//! Qube Manager runs.
//!
//! - **dom0** (a daemon socket): profiles are files of `/etc/qubes/backup` that this program
//!   writes itself, as the reference Qube Manager and `qvm-backup` do (there is no Admin API
//!   call or qrexec service for it); volume data goes through the
//!   `admin.vm.volume.ImportWithSize` service program run directly, as `qubesadmin` runs it in
//!   dom0; dom0's home is restored into this user's home.
//! - **a GUI qube** (qrexec): no profile can be written (dom0 keeps them: the window shows the
//!   text to save there and runs the saved profile); volume data goes through
//!   `qrexec-client-vm <qube> admin.vm.volume.ImportWithSize+<volume>`, as `qubesadmin` does in
//!   a qube; dom0's home cannot be restored from here.
//! - **the demo** (the embedded core): profiles live in the demo's directory, the core's
//!   internal socket is served there for `qubes-volume-import`, and dom0's home is restored
//!   into the demo's directory, never into the real one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How volume data reaches the daemon: a program given the volume name as its last argument
/// and `<size>\n<data>` on its standard input (`admin.vm.volume.ImportWithSize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the volume name.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

/// Where things are for the backup and restore windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupEnv {
    /// The directory of dom0's backup profiles when this program can write it; `None` in a
    /// GUI qube.
    pub profile_dir: Option<PathBuf>,
    /// Whether this program's files are dom0's (dom0, the demo): a dom0 folder or backup file
    /// can then be picked with a file chooser.
    pub local_is_dom0: bool,
    /// Where dom0's home is restored (a `home-restore-<time>` folder is made inside); `None`
    /// where it cannot be.
    pub dom0_home_dir: Option<PathBuf>,
    /// How volume data is imported.
    pub import: Import,
    /// `qvm-run`, to read a backup file kept in a qube; `None` where qubes cannot be reached
    /// that way (the demo, a system without it).
    pub qube_reader: Option<PathBuf>,
    /// Where a backup read from a qube is spooled, one chunk at a time.
    pub spool_dir: PathBuf,
    /// The command that turns the computer off, offered when a backup is done; `None` where
    /// this program cannot (a GUI qube would only turn itself off; the demo must not turn
    /// off the computer it runs on).
    pub power_off: Option<Vec<String>>,
}

/// How dom0 turns itself off, as the reference Qube Manager does.
pub const POWER_OFF: [&str; 2] = ["systemctl", "poweroff"];

/// The service program in dom0.
pub const IMPORT_SERVICE: &str = "/etc/qubes-rpc/admin.vm.volume.ImportWithSize";

/// `qubes-volume-import` of this project: next to this program (or one folder up, for test
/// programs in `deps/`), else in `PATH`.
pub fn volume_import_program() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let near = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("qubes-volume-import"))
        .find(|p| p.is_file());
    near.or_else(|| crate::cli::in_path("qubes-volume-import"))
}

impl BackupEnv {
    /// dom0, talking to the daemon at `socket`. A daemon elsewhere than the system's (a
    /// development one) has its internal socket beside the admin one.
    pub fn dom0(socket: &Path) -> BackupEnv {
        let internal = socket.with_file_name("qubesd.internal.sock");
        let mut env = Vec::new();
        if socket != Path::new(crate::cli::DOM0_SOCKET) {
            env.push((
                "QUBESD_INTERNAL_SOCKET".to_string(),
                internal.display().to_string(),
            ));
        }
        let import = if Path::new(IMPORT_SERVICE).exists() {
            Import {
                program: IMPORT_SERVICE.into(),
                args: Vec::new(),
                env,
            }
        } else {
            Import {
                program: volume_import_program().unwrap_or_else(|| IMPORT_SERVICE.into()),
                args: vec!["--with-size".into()],
                env,
            }
        };
        BackupEnv {
            profile_dir: Some(std::env::var_os("QUBESD_BACKUP_PROFILE_DIR").map_or_else(
                || qubes_backup::profile::DEFAULT_PROFILE_DIR.into(),
                Into::into,
            )),
            local_is_dom0: true,
            dom0_home_dir: std::env::var_os("HOME").map(PathBuf::from),
            import,
            qube_reader: crate::cli::in_path("qvm-run"),
            spool_dir: std::env::temp_dir(),
            power_off: Some(POWER_OFF.map(String::from).to_vec()),
        }
    }

    /// A GUI qube reaching dom0 through qrexec.
    pub fn qube() -> BackupEnv {
        BackupEnv {
            profile_dir: None,
            local_is_dom0: false,
            dom0_home_dir: None,
            // The volume name comes last; the qube is the import's target.
            import: Import {
                program: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    "exec qrexec-client-vm \"$QREXEC_REQUESTED_TARGET\" \
                     \"admin.vm.volume.ImportWithSize+$1\""
                        .into(),
                    "import".into(),
                ],
                env: Vec::new(),
            },
            qube_reader: crate::cli::in_path("qvm-run"),
            spool_dir: std::env::temp_dir(),
            power_off: None,
        }
    }

    /// The embedded demo core: everything inside its directory. Serves the core's internal
    /// socket there (for the import program).
    #[cfg(feature = "demo")]
    pub fn demo(core: &qubesd::Embedded) -> std::io::Result<BackupEnv> {
        let dir = core
            .demo_dir()
            .ok_or_else(|| std::io::Error::other("not a demo core"))?
            .to_path_buf();
        let internal = dir.join("qubesd.internal.sock");
        super::demo::serve_internal_socket(core, &internal)?;
        let home = dir.join("dom0-home");
        std::fs::create_dir_all(&home)?;
        Ok(BackupEnv {
            profile_dir: Some(dir.join("backup-profiles")),
            local_is_dom0: true,
            dom0_home_dir: Some(home),
            import: Import {
                program: volume_import_program().unwrap_or_else(|| "qubes-volume-import".into()),
                args: vec!["--with-size".into()],
                env: vec![(
                    "QUBESD_INTERNAL_SOCKET".into(),
                    internal.display().to_string(),
                )],
            },
            qube_reader: None,
            spool_dir: dir,
            power_off: None,
        })
    }

    /// The environment for the daemon the program was started on (`core`: the demo's).
    pub fn for_daemon(daemon: &crate::cli::Daemon, core: Option<&crate::cli::Core>) -> BackupEnv {
        use crate::cli::Daemon;
        match (daemon, core) {
            #[cfg(feature = "demo")]
            (Daemon::Demo, Some(core)) => BackupEnv::demo(core).unwrap_or_else(|e| {
                tracing::warn!("backups in the demo: {e}");
                BackupEnv::guess()
            }),
            (Daemon::Socket(path), _) => BackupEnv::dom0(path),
            (Daemon::Qrexec, _) => BackupEnv::qube(),
            _ => BackupEnv::guess(),
        }
    }

    /// dom0 when the system's daemon socket is here, else a qube.
    pub fn guess() -> BackupEnv {
        let dom0 = Path::new(crate::cli::DOM0_SOCKET);
        if dom0.exists() {
            BackupEnv::dom0(dom0)
        } else {
            BackupEnv::qube()
        }
    }
}

static CURRENT: Mutex<Option<BackupEnv>> = Mutex::new(None);

/// Sets the environment the windows use (the program does at start, tests for their core).
pub fn set_current(env: BackupEnv) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(env);
}

/// The environment set with [`set_current`], else [`BackupEnv::guess`].
pub fn current() -> BackupEnv {
    CURRENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(BackupEnv::guess)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qube_imports_through_qrexec_with_the_volume_last() {
        let env = BackupEnv::qube();
        assert_eq!(env.profile_dir, None);
        assert_eq!(env.dom0_home_dir, None);
        assert_eq!(env.power_off, None, "a qube would turn only itself off");
        // What the restore engine runs: the program, its arguments, then the volume, with
        // the target qube in the environment.
        let out = std::process::Command::new(&env.import.program)
            .args(&env.import.args)
            .arg("private")
            .env("QREXEC_REQUESTED_TARGET", "work")
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("qrexec-client-vm"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let args: Vec<String> = env.import.args.clone();
        let script = &args[1];
        assert!(script.contains("\"$QREXEC_REQUESTED_TARGET\""));
        assert!(script.contains("admin.vm.volume.ImportWithSize+$1"));
    }

    #[test]
    fn a_development_daemon_has_its_internal_socket_beside() {
        let env = BackupEnv::dom0(Path::new("/tmp/q/qubesd.sock"));
        assert!(env.local_is_dom0);
        assert!(env.import.env.contains(&(
            "QUBESD_INTERNAL_SOCKET".to_string(),
            "/tmp/q/qubesd.internal.sock".to_string()
        )));
        let system = BackupEnv::dom0(Path::new(crate::cli::DOM0_SOCKET));
        assert!(system.import.env.is_empty());
        assert_eq!(
            system.power_off,
            Some(vec!["systemctl".to_string(), "poweroff".to_string()])
        );
    }
}
