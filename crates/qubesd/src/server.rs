//! Sockets and connections (admin-api.md §1.1, §1.4).
//!
//! Each connection is its own task: it reads at most 64 KiB + 1 bytes until the client
//! half-closes, so a client that never sends EOF holds only its own task and buffer.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use qubes_api::framing::{encode_exception, encode_ok};
use qubes_api::{Event, MAX_REQUEST_SIZE, QubesError, Request, exc::ExcBase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;

use crate::core::{Core, Reply, Socket};
use crate::handlers;

/// Socket file names inside the socket directory.
pub const SOCKET_NAMES: [(Socket, &str); 3] = [
    (Socket::Admin, "qubesd.sock"),
    (Socket::Internal, "qubesd.internal.sock"),
    (Socket::Misc, "qubesd.misc.sock"),
];

/// State shared by all connections.
pub struct Shared {
    /// The core, behind one lock: calls are applied one at a time, in arrival order.
    pub core: Mutex<Core>,
    /// Whether EXCEPTION messages carry a traceback text.
    pub debug: bool,
}

impl Shared {
    /// Locks the core. A panic inside a handler must not take the daemon down with it, so a
    /// poisoned lock is taken over (the failed call's state was already restored).
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Binds a socket like the reference: a stale file is removed, a live daemon is an error, the
/// socket gets mode 0770 and group `qubes` when that group exists.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another daemon is listening", path.display()),
                ));
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o770))?;
    if let Some(gid) = group_id("qubes") {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::other("socket path contains NUL"))?;
        // SAFETY: chown with a valid NUL-terminated path; -1 keeps the owner.
        unsafe {
            libc::chown(c.as_ptr(), u32::MAX, gid);
        }
    }
    Ok(listener)
}

fn group_id(name: &str) -> Option<u32> {
    let content = std::fs::read_to_string("/etc/group").ok()?;
    content.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// Accepts connections forever.
pub async fn accept_loop(listener: UnixListener, socket: Socket, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { handle(conn, socket, shared).await });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads a request until EOF; `None` if it is too long or the connection broke.
pub async fn read_request<R: AsyncReadExt + Unpin>(conn: &mut R) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 8192];
    loop {
        match conn.read(&mut chunk).await {
            Ok(0) => return Some(buf),
            Ok(n) => {
                if buf.len() + n > MAX_REQUEST_SIZE {
                    tracing::warn!("request too long");
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => {
                tracing::debug!("reading request: {e}");
                return None;
            }
        }
    }
}

/// Serves one connection.
pub async fn handle<S>(mut conn: S, socket: Socket, shared: Arc<Shared>)
where
    S: AsyncReadExt + AsyncWriteExt + Unpin,
{
    let Some(raw) = read_request(&mut conn).await else {
        return;
    };
    let req = match Request::parse(&raw) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("{e}");
            return;
        }
    };
    let write = std::str::from_utf8(&req.method)
        .ok()
        .and_then(|m| handlers::lookup(socket, m))
        .is_some_and(|m| m.write);
    let (result, subscription) = if write {
        // Writes fsync and hypervisor calls block: keep them off the async workers.
        let shared2 = shared.clone();
        let req2 = req.clone();
        let run = move || {
            let mut core = shared2.lock();
            let r = core.call(socket, &req2);
            let sub = subscribe_for(&core, &r);
            (r, sub)
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(r) => r,
            Err(_) => return,
        }
    } else {
        let mut core = shared.lock();
        let r = core.call(socket, &req);
        let sub = subscribe_for(&core, &r);
        (r, sub)
    };
    let method = String::from_utf8_lossy(&req.method).into_owned();
    let (result, subscription) = match (result, subscription) {
        (Ok(Reply::WaitHalted { vm, timeout }), Some(rx)) => {
            (wait_halted(&shared, rx, &vm, timeout).await, None)
        }
        (Ok(Reply::CopyVolume(job)), _) => {
            // The data is copied without the core, so other calls go on meanwhile.
            let shared2 = shared.clone();
            let finish = move || {
                let copied = job.run();
                shared2.lock().finish_volume_copy(job, copied)
            };
            match tokio::task::spawn_blocking(finish).await {
                Ok(r) => (r, None),
                Err(_) => return,
            }
        }
        other => other,
    };
    match result {
        Ok(Reply::Ok(content)) => {
            let _ = conn.write_all(&encode_ok(&content)).await;
            let _ = conn.shutdown().await;
        }
        Ok(Reply::Events { dest, src }) => {
            if let Some(rx) = subscription {
                stream_events(&mut conn, &shared, rx, &dest, &src).await;
            }
        }
        Ok(Reply::Stats { dest }) => {
            if let Some(rx) = subscription {
                stream_stats(&mut conn, &shared, rx, &dest).await;
            }
        }
        Ok(Reply::WaitHalted { .. }) | Ok(Reply::CopyVolume(_)) => {}
        Err(e) => write_error(&mut conn, &shared, &req, &method, e).await,
    }
}

/// Subscribes, while the core is still locked, for replies that stream or wait for events,
/// so that no committed change falls in between.
fn subscribe_for(
    core: &crate::core::Core,
    r: &Result<Reply, QubesError>,
) -> Option<tokio::sync::broadcast::Receiver<Arc<crate::events::Published>>> {
    match r {
        Ok(Reply::Events { .. }) | Ok(Reply::WaitHalted { .. }) => Some(core.hub.subscribe()),
        Ok(Reply::Stats { .. }) => Some(core.stats.subscribe()),
        _ => None,
    }
}

/// Writes an EXCEPTION (or nothing, for a silent failure) and logs why.
async fn write_error<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    shared: &Shared,
    req: &Request,
    method: &str,
    e: QubesError,
) {
    match e {
        QubesError::Exception { kind, message } => {
            match kind.base() {
                ExcBase::Qubes => {
                    tracing::info!("call {method} failed: {}: {message}", kind.name())
                }
                _ => tracing::warn!("call {method} refused: {}: {message}", kind.name()),
            }
            let tb = if shared.debug {
                format!(
                    "Traceback (qubesd):\n  method {method}, src {}, dest {}\n{}: {message}\n",
                    String::from_utf8_lossy(&req.src),
                    String::from_utf8_lossy(&req.dest),
                    kind.name()
                )
            } else {
                String::new()
            };
            let _ = conn
                .write_all(&encode_exception(kind.name(), &tb, &message))
                .await;
            let _ = conn.shutdown().await;
        }
        QubesError::Silent(why) => {
            tracing::error!("call {method} failed with no response: {why}");
        }
    }
}

/// `Shutdown+wait`: OK once the qube's `domain-shutdown` arrives, else a timeout error (and
/// `domain-shutdown-failed`).
async fn wait_halted(
    shared: &Arc<Shared>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::events::Published>>,
    vm: &str,
    timeout: u64,
) -> Result<Reply, QubesError> {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(ev) if ev.event.subject == vm && ev.event.name == "domain-shutdown" => {
                    return true;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            }
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(timeout), wait).await {
        Ok(true) => Ok(Reply::Ok(Vec::new())),
        _ => {
            let msg = format!("Domain shutdown timed out: {}", qubes_api::exc::py_repr(vm));
            shared
                .lock()
                .hub
                .publish([Event::new(vm, "domain-shutdown-failed").kw("reason", &msg)]);
            Err(QubesError::new(
                qubes_api::ExcKind::QubesVMShutdownTimeoutError,
                msg,
            ))
        }
    }
}

/// Forwards `vm-stats` to one `admin.vm.Stats` subscriber. For a single qube that is not
/// running, the reference sends `connection-established` and then the exception.
async fn stream_stats<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    shared: &Arc<Shared>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::events::Published>>,
    dest: &str,
) {
    let hello = Event::new("", "connection-established").encode();
    if conn.write_all(&hello).await.is_err() {
        return;
    }
    let all = dest == "dom0";
    let running = |shared: &Shared| {
        shared
            .lock()
            .state
            .domain(dest)
            .is_some_and(|d| d.is_active())
    };
    if !all && !running(shared) {
        let msg = format!(
            "Domain not running (either powered off or paused): {}",
            qubes_api::exc::py_repr(dest)
        );
        let _ = conn
            .write_all(&encode_exception("QubesVMNotRunningError", "", &msg))
            .await;
        let _ = conn.shutdown().await;
        return;
    }
    loop {
        match rx.recv().await {
            Ok(ev) => {
                if !all && ev.event.subject != dest {
                    continue;
                }
                if conn.write_all(&ev.bytes).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Forwards events to one `admin.Events` subscriber until it goes away or lags too far.
async fn stream_events<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    shared: &Arc<Shared>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::events::Published>>,
    dest: &str,
    src: &str,
) {
    let hello = Event::new("", "connection-established").encode();
    if conn.write_all(&hello).await.is_err() {
        return;
    }
    let all = dest == "dom0";
    loop {
        match rx.recv().await {
            Ok(ev) => {
                if !all && (ev.global || ev.event.subject != dest) {
                    continue;
                }
                // Policy for non-dom0 callers: the event's qube, the `vm` of a global event,
                // else dom0.
                if src != "dom0" {
                    let target = if ev.global {
                        ev.event.get("vm").unwrap_or("@adminvm").to_string()
                    } else {
                        ev.event.subject.clone()
                    };
                    let service = crate::policy::event_service(&ev.event.name);
                    if !shared.lock().policy_allows(src, &service, &target) {
                        continue;
                    }
                }
                if conn.write_all(&ev.bytes).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("events subscriber lagged by {n} events; disconnecting");
                return;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Paths of the three sockets in `dir`.
pub fn socket_paths(dir: &Path) -> Vec<(Socket, PathBuf)> {
    SOCKET_NAMES
        .iter()
        .map(|(s, n)| (*s, dir.join(n)))
        .collect()
}

/// Serves one connection that is not a socket file (embedded mode's socketpair).
pub async fn handle_stream(conn: UnixStream, shared: Arc<Shared>) {
    handle(conn, Socket::Admin, shared).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timeout branch of `Shutdown+wait`: no `domain-shutdown` arrives in time.
    #[tokio::test]
    async fn shutdown_wait_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config {
            state_dir: dir.path().to_path_buf(),
            socket_dir: dir.path().to_path_buf(),
            libvirt_uri: "test:///default".into(),
            debug: false,
            policy_dirs: vec![dir.path().join("policy.d")],
        };
        let shared = crate::Daemon::load(&config).unwrap();
        let mut watcher = shared.lock().hub.subscribe();
        let rx = shared.lock().hub.subscribe();
        // Another qube's shutdown does not end the wait.
        shared
            .lock()
            .hub
            .publish([Event::new("other", "domain-shutdown")]);
        let t = std::time::Instant::now();
        let r = wait_halted(&shared, rx, "work", 1).await;
        assert!(t.elapsed() >= std::time::Duration::from_secs(1));
        assert_eq!(
            r,
            Err(QubesError::new(
                qubes_api::ExcKind::QubesVMShutdownTimeoutError,
                "Domain shutdown timed out: 'work'"
            ))
        );
        assert_eq!(watcher.recv().await.unwrap().event.name, "domain-shutdown");
        let failed = watcher.recv().await.unwrap();
        assert_eq!(failed.event.subject, "work");
        assert_eq!(failed.event.name, "domain-shutdown-failed");
        assert_eq!(
            failed.event.get("reason"),
            Some("Domain shutdown timed out: 'work'")
        );
    }
}
