//! Starting and stopping the daemon: load the store, bind the sockets, serve.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::core::Core;
use crate::model::HostInfo;
use crate::server::{self, Shared};
use crate::store::Store;
use crate::txn::Env;

/// Daemon settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of `qubes.xml` and the per-qube directories.
    pub state_dir: PathBuf,
    /// Directory of the three sockets.
    pub socket_dir: PathBuf,
    /// Hypervisor connection (used by the lifecycle work).
    pub libvirt_uri: String,
    /// Send a traceback text in EXCEPTION messages.
    pub debug: bool,
    /// qrexec policy directories, earlier ones shadowing later ones file by file.
    pub policy_dirs: Vec<PathBuf>,
    /// Directory of the backup profiles (`<id>.conf`).
    pub backup_profile_dir: PathBuf,
    /// The program that runs a service in a qube (`qrexec-client`): the backup destination's
    /// `qubes.Backup`, the passphrase qube's `qubes.BackupPassphrase`, the suspend services.
    pub qrexec_client: PathBuf,
    /// Directory of the qubes' QubesDB sockets (`qubesdb.<qube>.sock`).
    pub qubesdb_dir: PathBuf,
    /// The program that runs a command as root (`sudo`): the reference enables and disables
    /// the `qubes-vm@<qube>.service` unit of autostart qubes through it. None (the default,
    /// and the demo's): autostart changes no systemd unit.
    pub sudo: Option<PathBuf>,
    /// Qubes' runtime directory: qrexec's `qrexec.<qube>` markers, and where the qubes paused
    /// before a system suspend are remembered (`previously-paused.list`).
    pub runtime_dir: PathBuf,
}

impl Default for Config {
    /// The paths of a real dom0.
    fn default() -> Config {
        Config {
            state_dir: "/var/lib/qubes".into(),
            socket_dir: "/var/run".into(),
            libvirt_uri: "xen:///".into(),
            debug: false,
            policy_dirs: crate::policy::default_dirs(),
            backup_profile_dir: "/etc/qubes/backup".into(),
            qrexec_client: "/usr/lib/qubes/qrexec-client".into(),
            qubesdb_dir: DEFAULT_QUBESDB_DIR.into(),
            sudo: None,
            runtime_dir: DEFAULT_RUNTIME_DIR.into(),
        }
    }
}

/// Where the QubesDB daemons' sockets are on a Qubes system.
pub const DEFAULT_QUBESDB_DIR: &str = "/var/run/qubes";
/// Qubes' runtime directory on a Qubes system.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/qubes";

impl Config {
    /// A daemon whose state, sockets and policy live in `dir`, on libvirt's test driver (the
    /// other paths are a real dom0's): what tests and benchmarks run in-process.
    pub fn in_dir(dir: &std::path::Path) -> Config {
        Config {
            state_dir: dir.to_path_buf(),
            socket_dir: dir.to_path_buf(),
            libvirt_uri: "test:///default".into(),
            policy_dirs: vec![dir.join("policy.d")],
            ..Default::default()
        }
    }

    /// Path of `qubes.xml`.
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("qubes.xml")
    }
}

/// A running daemon.
pub struct Daemon {
    /// Shared state.
    pub shared: Arc<Shared>,
    sockets: Vec<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// qubes.xml could not be loaded (it is left untouched).
    #[error("{0}")]
    Load(#[from] crate::store::LoadError),
    /// A socket could not be bound.
    #[error("{0}")]
    Socket(#[from] std::io::Error),
}

impl Daemon {
    /// Loads the store and binds the sockets; must run inside a tokio runtime.
    pub fn start(config: &Config) -> Result<Daemon, StartError> {
        let shared = Self::load(config)?;
        let mut sockets = Vec::new();
        let mut listeners = Vec::new();
        for (socket, path) in server::socket_paths(&config.socket_dir) {
            listeners.push((socket, server::bind(&path)?));
            sockets.push(path);
        }
        let tasks = listeners
            .into_iter()
            .map(|(socket, l)| tokio::spawn(server::accept_loop(l, socket, shared.clone())))
            .collect();
        Ok(Daemon {
            shared,
            sockets,
            tasks,
        })
    }

    /// Loads the store without binding sockets, watching hypervisor events.
    pub fn load(config: &Config) -> Result<Arc<Shared>, StartError> {
        Self::load_with(config, true)
    }

    /// Loads the store without binding sockets; `watch_events` as in
    /// [`crate::hypervisor::libvirt::Libvirt::start`] (off inside GTK programs).
    pub fn load_with(config: &Config, watch_events: bool) -> Result<Arc<Shared>, StartError> {
        let base = config.state_dir.to_string_lossy().into_owned();
        let (hv, events) =
            crate::hypervisor::libvirt::Libvirt::start(&config.libvirt_uri, watch_events);
        let mut host = HostInfo::detect(&base, config.libvirt_uri.starts_with("xen"));
        // The host's size as the hypervisor sees it, as the reference reads it: on Xen,
        // dom0's own /proc/meminfo and CPU count are dom0's share, not the machine's.
        match crate::hypervisor::Hypervisor::node_info(&*hv) {
            Ok(node) => host.set_node(node.memory_kib, node.cpus),
            Err(e) => tracing::warn!("host size from libvirt: {e}; using this system's"),
        }
        let (store, state) = Store::open(&config.store_path(), host)?;
        let env = Env {
            hv: Some(hv),
            state_dir: config.state_dir.clone(),
            tokens: Default::default(),
            backup_profile_dir: config.backup_profile_dir.clone(),
            qrexec_client: config.qrexec_client.clone(),
            backups: Default::default(),
            being_removed: Default::default(),
            qubesdb_dir: config.qubesdb_dir.clone(),
            runtime_dir: config.runtime_dir.clone(),
            sudo: config.sudo.clone(),
        };
        let policy = crate::policy::PolicyCache::new(config.policy_dirs.clone());
        let shared = Arc::new(Shared {
            core: Core::new(state, store, env, policy),
            debug: config.debug,
        });
        crate::ops::intents::recover(&shared.core);
        crate::ops::lifecycle::reconcile(&shared.core);
        spawn_event_pump(shared.clone(), events);
        spawn_stats_sampler(shared.clone());
        spawn_checkpointer(&shared);
        Ok(shared)
    }

    /// Stops serving, saves, and removes the sockets.
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.shared.core.save_and_close() {
            tracing::error!("final save failed: {e}");
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

/// Writes `qubes.xml` whole when the core has gone idle after saves (which only appended
/// to the journal). Holds the core weakly: it ends with it.
fn spawn_checkpointer(shared: &Arc<Shared>) {
    let signal = shared.core.idle_signal();
    let weak = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("qubesd-checkpoint".into())
        .spawn(move || {
            while signal.wait_idle(crate::core::CHECKPOINT_IDLE) {
                let Some(shared) = weak.upgrade() else {
                    break;
                };
                if let Err(e) = shared.core.checkpoint() {
                    // The journal still holds every change: nothing is lost, and the idle
                    // moment after the next save tries again.
                    tracing::error!("writing qubes.xml: {e}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the checkpoint thread: {e}");
    }
}

/// Applies hypervisor lifecycle events to the core as they arrive; a qube busy starting
/// holds up only its own (see [`crate::ops::event_pump`]).
fn spawn_event_pump(
    shared: Arc<Shared>,
    events: std::sync::mpsc::Receiver<crate::hypervisor::LifecycleEvent>,
) {
    let spawned = std::thread::Builder::new()
        .name("qubesd-lifecycle".into())
        .spawn(move || {
            let locks = {
                let shared = shared.clone();
                move |vm: &str| shared.core.qube_lock(vm)
            };
            let apply = move |ev: &crate::hypervisor::LifecycleEvent, locked: bool| {
                // One event's failure must not stop every later one from being applied.
                let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if locked {
                        crate::ops::lifecycle::on_hypervisor_event_locked(&shared.core, ev)
                    } else {
                        crate::ops::lifecycle::on_hypervisor_event(&shared.core, ev)
                    }
                }));
                if applied.is_err() {
                    tracing::error!("applying {ev:?} panicked");
                }
            };
            crate::ops::event_pump::dispatch(events, locks, apply);
        });
    if let Err(e) = spawned {
        tracing::error!("lifecycle thread: {e}");
    }
}

/// Runs the statistics sampler: every `stats_interval` seconds, while anybody listens, one
/// round of `vm-stats` for all running qubes. One sampler serves every subscriber.
fn spawn_stats_sampler(shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("qubesd-stats".into())
        .spawn(move || {
            let mut prev = HashMap::new();
            // libvirt's test driver gives every domain the wall clock as CPU time: the demo
            // (and tests) get plausible figures instead (crate::demo::TestDriverCpu).
            let mut test_driver_cpu = crate::demo::TestDriverCpu::default();
            loop {
                let interval = crate::props::global_get(&shared.core.snapshot(), "stats_interval")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(3)
                    .clamp(1, 3600);
                std::thread::sleep(Duration::from_secs(interval));
                if shared.core.stats_hub().subscribers() == 0 {
                    prev.clear();
                    continue;
                }
                let hv = shared.core.env().hv.clone();
                let mut list = match hv.as_ref().map(|h| h.list()) {
                    Some(Ok(l)) => l,
                    _ => Vec::new(),
                };
                if hv.is_some_and(|h| h.domain_type() == "test") {
                    test_driver_cpu.adjust(&mut list);
                }
                let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::ops::stats::round(&shared.core.snapshot(), &list, &mut prev)
                }));
                match round {
                    Ok(events) => shared.core.stats_hub().publish(events),
                    Err(_) => tracing::error!("a statistics round panicked"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("stats thread: {e}");
    }
}

/// Tells systemd the daemon is ready, when started by it (`Type=notify`).
pub fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("notify socket: {e}");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|a| sock.send_to_addr(b"READY=1", &a))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    if let Err(e) = result {
        tracing::warn!("sd_notify: {e}");
    }
}
