//! Starting and stopping the daemon: load the store, bind the sockets, serve.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::core::Core;
use crate::events::EventHub;
use crate::model::HostInfo;
use crate::server::{self, Shared};
use crate::store::Store;

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
}

impl Config {
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
        let host = HostInfo::detect(&base, config.libvirt_uri.starts_with("xen"));
        let (store, state) = Store::open(&config.store_path(), host)?;
        let mut core = Core::new(state, store, config.state_dir.clone(), EventHub::new());
        core.policy = crate::policy::PolicyCache::new(config.policy_dirs.clone());
        let (hv, events) =
            crate::hypervisor::libvirt::Libvirt::start(&config.libvirt_uri, watch_events);
        core.hv = Some(hv);
        core.reconcile();
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            debug: config.debug,
        });
        spawn_event_pump(shared.clone(), events);
        crate::lifecycle::run_stats_sampler(shared.clone());
        Ok(shared)
    }

    /// Stops serving, saves, and removes the sockets.
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.shared.lock().save() {
            tracing::error!("final save failed: {e}");
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

/// Applies hypervisor lifecycle events to the core as they arrive.
fn spawn_event_pump(
    shared: Arc<Shared>,
    events: std::sync::mpsc::Receiver<crate::hypervisor::LifecycleEvent>,
) {
    let spawned = std::thread::Builder::new()
        .name("qubesd-lifecycle".into())
        .spawn(move || {
            for ev in events {
                shared.lock().on_hypervisor_event(ev);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("lifecycle thread: {e}");
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
