//! The daemon core running inside another program (the GUI's demo mode, tests).
//!
//! Every call is a socketpair whose far end is served by the same connection code as the real
//! sockets, so the bytes are exactly those a socket client would see.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use qubes_api::transport::{read_answer, send_on};
use qubes_api::{Request, Transport};

use crate::api::Socket;
use crate::daemon::{Config, Daemon, StartError};
use crate::server::{self, Shared};

/// An in-process daemon with its own small runtime.
pub struct Embedded {
    /// The core, for direct inspection in tests.
    pub shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    /// Keeps a temporary state directory alive (demo mode).
    _state: Option<tempfile::TempDir>,
}

impl Embedded {
    /// Loads (or creates) the store of `config` and serves it in-process, without libvirt's
    /// event loop (which would take GLib's default main context from GTK).
    pub fn start(config: &Config) -> Result<Embedded, StartError> {
        Self::start_with(config, false)
    }

    /// As [`Embedded::start`]; `watch_events` runs libvirt's event loop (programs without GTK).
    pub fn start_with(config: &Config, watch_events: bool) -> Result<Embedded, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qubesd-embedded")
            .enable_all()
            .build()?;
        let shared = Daemon::load_with(config, watch_events)?;
        Ok(Embedded {
            shared,
            runtime,
            _state: None,
        })
    }

    /// A demo system in a fresh temporary directory (see [`crate::demo`]).
    pub fn demo() -> Result<Embedded, StartError> {
        let dir = tempfile::Builder::new().prefix("qubes-demo-").tempdir()?;
        crate::demo::prepare_dir(dir.path())?;
        // A node file gives this core its own libvirt test node: `test:///default` is shared
        // by everything in the process.
        let node = dir.path().join("libvirt-node.xml");
        std::fs::write(&node, crate::demo::DEMO_TEST_NODE)?;
        let config = Config {
            state_dir: dir.path().to_path_buf(),
            socket_dir: dir.path().to_path_buf(),
            libvirt_uri: format!("test://{}", node.display()),
            debug: false,
            policy_dirs: vec![dir.path().join("policy.d")],
            // The demo's backup profiles stay in its own directory.
            backup_profile_dir: dir.path().join("backup-profiles"),
            // Nor does it touch the system's QubesDB or runtime directory.
            qubesdb_dir: dir.path().join("qubesdb"),
            runtime_dir: dir.path().join("run"),
            ..Default::default()
        };
        let mut e = Embedded::start(&config)?;
        crate::demo::seed(&e.shared.core);
        remove_at_exit(dir.path());
        e._state = Some(dir);
        Ok(e)
    }

    /// Also serves the admin socket at `path` (mode 0770), so other programs reach the same
    /// core: the Qube Manager opened from the demo tray, the real `qvm-*` tools.
    pub fn serve_admin_socket(&self, path: &std::path::Path) -> io::Result<()> {
        let _guard = self.runtime.enter();
        let listener = server::bind(path)?;
        self.runtime.spawn(server::accept_loop(
            listener,
            Socket::Admin,
            self.shared.clone(),
        ));
        Ok(())
    }

    /// The temporary state directory of a demo core.
    pub fn demo_dir(&self) -> Option<&std::path::Path> {
        self._state.as_ref().map(|d| d.path())
    }

    /// A connected stream whose other end the core serves as the admin socket.
    fn connect(&self) -> io::Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair()?;
        theirs.set_nonblocking(true)?;
        let shared = self.shared.clone();
        let _guard = self.runtime.enter();
        let theirs = tokio::net::UnixStream::from_std(theirs)?;
        self.runtime
            .spawn(async move { server::handle(theirs, Socket::Admin, shared).await });
        Ok(ours)
    }
}

/// Demo directories to remove when the process exits.
static DEMO_DIRS: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes a demo's directory when the process exits, even if the core is never dropped: a
/// GUI keeps clients (and so the core) alive in components that outlive `main`, and each
/// demo left 50 MB in the temporary directory.
fn remove_at_exit(dir: &std::path::Path) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a plain function without arguments, run once at exit.
        unsafe {
            libc::atexit(remove_demo_dirs);
        }
    });
    if let Ok(mut dirs) = DEMO_DIRS.lock() {
        dirs.push(dir.to_path_buf());
    }
}

extern "C" fn remove_demo_dirs() {
    // At exit another thread may hold the lock (it will never release it): skip then.
    if let Ok(dirs) = DEMO_DIRS.try_lock() {
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // The TempDir removes the directory itself now.
        if let (Some(dir), Ok(mut dirs)) = (&self._state, DEMO_DIRS.lock()) {
            dirs.retain(|d| d != dir.path());
        }
    }
}

impl Transport for Embedded {
    fn call_raw(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) -> io::Result<Vec<u8>> {
        match send_on(
            self.connect()?,
            &Request::encode(method, arg, "dom0", dest, payload),
        )? {
            Some(s) => read_answer(s),
            None => Ok(Vec::new()),
        }
    }

    fn open_stream(&self, method: &str, dest: &str) -> io::Result<Box<dyn Read + Send>> {
        match send_on(
            self.connect()?,
            &Request::encode(method, "", "dom0", dest, b""),
        )? {
            Some(s) => Ok(Box::new(s)),
            None => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "stream refused",
            )),
        }
    }

    fn describe(&self) -> String {
        "embedded demo qubesd".into()
    }

    fn real_system(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_answers_like_a_socket() {
        let e = Embedded::demo().unwrap();
        let raw = e.call_raw("admin.vm.List", "dom0", "", b"").unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("0\0dom0 class=AdminVM state=Running"),
            "{text}"
        );
        for q in [
            "sys-net",
            "sys-firewall",
            "sys-usb",
            "work",
            "personal",
            "vault",
            "untrusted",
            "default-dvm",
            "fedora-41",
            "debian-12-xfce",
        ] {
            assert!(
                text.contains(&format!("\n{q} class=")),
                "{q} missing: {text}"
            );
        }
        assert_eq!(
            e.call_raw("admin.vm.property.Get", "work", "netvm", b"")
                .unwrap(),
            b"0\0default=True type=vm sys-firewall"
        );
        let mut events =
            qubes_api::EventReader::new(e.open_stream("admin.Events", "dom0").unwrap());
        assert_eq!(
            events.next_event().unwrap().unwrap().name,
            "connection-established"
        );
        e.call_raw("admin.vm.tag.Set", "work", "t", b"").unwrap();
        assert_eq!(
            events.next_event().unwrap().unwrap().name,
            "domain-tag-add:t"
        );
    }
}
