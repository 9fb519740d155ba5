//! Sockets and connections (admin-api.md §1.1, §1.4).
//!
//! Each connection is its own task: it reads at most 64 KiB + 1 bytes until the client
//! half-closes, so a client that never sends EOF holds only its own task and buffer.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use qubes_api::framing::{encode_exception, encode_ok};
use qubes_api::{Event, MAX_REQUEST_SIZE, QubesError, Request, exc::ExcBase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::api::Socket;
use crate::core::Core;
use crate::dispatch;
use crate::events::{Published, Subscription};
use crate::model::PowerState;
use crate::reply::Reply;

/// Socket file names inside the socket directory.
pub const SOCKET_NAMES: [(Socket, &str); 3] = [
    (Socket::Admin, "qubesd.sock"),
    (Socket::Internal, "qubesd.internal.sock"),
    (Socket::Misc, "qubesd.misc.sock"),
];

/// What every connection shares.
pub struct Shared {
    /// The state and its transactions.
    pub core: Core,
    /// Whether EXCEPTION messages carry a traceback text.
    pub debug: bool,
}

/// How long a stream subscriber may leave an event unread before it is disconnected.
pub const STREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Serves one connection: reads the request, runs it (reads of the snapshot at once,
/// everything that may block on this task's thread, which the runtime replaces meanwhile; see
/// `multi_threaded`), writes the answer or streams.
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
    let resolved = dispatch::resolve(&shared.core.snapshot(), socket, &req);
    let result = match resolved {
        Err(e) => Err(e),
        Ok((m, r)) if m.is_inline() => dispatch::run(&shared.core, m, &r),
        Ok((m, r)) if multi_threaded() => {
            // On this task's own thread, handed over by the runtime for the time it blocks:
            // the answer is written as soon as the call returns, not after the tasks its
            // events woke (fifty event subscribers would each run first).
            tokio::task::block_in_place(|| dispatch::run(&shared.core, m, &r))
        }
        Ok((m, r)) => {
            let sh = shared.clone();
            match tokio::task::spawn_blocking(move || dispatch::run(&sh.core, m, &r)).await {
                Ok(result) => result,
                Err(e) => {
                    tracing::error!("call thread: {e}");
                    return;
                }
            }
        }
    };
    let method = String::from_utf8_lossy(&req.method).into_owned();
    match result {
        Ok(Reply::Ok(content)) => {
            let _ = conn.write_all(&encode_ok(&content)).await;
            let _ = conn.shutdown().await;
        }
        Ok(Reply::Shared(content)) => {
            // The header and the shared bytes as they are, in one system call.
            let _ = write_all_vectored(&mut conn, &[&encode_ok(b""), &content]).await;
            let _ = conn.shutdown().await;
        }
        Ok(Reply::Events { dest, src }) => {
            let sub = shared.core.hub().subscribe();
            stream_events(&mut conn, &shared, sub, &dest, &src).await;
        }
        Ok(Reply::Stats { dest }) => {
            let sub = shared.core.stats_hub().subscribe();
            stream_stats(&mut conn, &shared, sub, &dest).await;
        }
        Ok(Reply::WaitHalted { vm, timeout }) => {
            let sub = shared.core.hub().subscribe();
            match wait_halted(&shared, sub, &vm, timeout).await {
                Ok(()) => {
                    let _ = conn.write_all(&encode_ok(b"")).await;
                    let _ = conn.shutdown().await;
                }
                Err(e) => write_error(&mut conn, &shared, &req, &method, e).await,
            }
        }
        Err(e) => write_error(&mut conn, &shared, &req, &method, e).await,
    }
}

/// Writes an EXCEPTION (or nothing, for a silent failure) and logs why. Refusals are what
/// clients expect all day long (a feature that is not set, a property without a value): they
/// are logged at debug level only.
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
                    tracing::debug!("call {method} failed: {}: {message}", kind.name())
                }
                _ => tracing::info!("call {method} refused: {}: {message}", kind.name()),
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
            tracing::warn!("call {method} failed with no response: {why}");
        }
    }
}

/// `Shutdown+wait`: done once the qube's `domain-shutdown` arrives (or it is already halted:
/// the subscription starts after the shutdown was asked for), else a timeout error (and
/// `domain-shutdown-failed`).
async fn wait_halted(
    shared: &Arc<Shared>,
    mut sub: Subscription,
    vm: &str,
    timeout: u64,
) -> Result<(), QubesError> {
    let halted = shared
        .core
        .snapshot()
        .domain(vm)
        .is_none_or(|d| d.power == PowerState::Halted);
    if halted {
        return Ok(());
    }
    let wait = async {
        while let Some(ev) = sub.recv().await {
            if ev.event.subject == vm && ev.event.name == "domain-shutdown" {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(Duration::from_secs(timeout), wait).await {
        Ok(true) => Ok(()),
        _ => {
            let sh = shared.clone();
            let vm = vm.to_string();
            let failed = move || crate::ops::lifecycle::shutdown_timed_out(&sh.core, &vm);
            Err(tokio::task::spawn_blocking(failed)
                .await
                .unwrap_or_else(|_| QubesError::silent("shutdown wait")))
        }
    }
}

/// Writes `parts` one after the other, gathering them into as few system calls as the
/// socket takes.
async fn write_all_vectored<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    parts: &[&[u8]],
) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = conn.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Whether the runtime this task runs on lends threads to blocking calls (only a
/// multi-threaded one does).
fn multi_threaded() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Writes one event to a stream; false when the subscriber is gone or does not read within
/// [`STREAM_WRITE_TIMEOUT`].
async fn send<S: AsyncWriteExt + Unpin>(conn: &mut S, bytes: &[u8]) -> bool {
    match tokio::time::timeout(STREAM_WRITE_TIMEOUT, conn.write_all(bytes)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::warn!("a stream subscriber does not read; disconnecting it");
            false
        }
    }
}

/// Forwards `vm-stats` to one `admin.vm.Stats` subscriber. For a single qube that is not
/// running, the reference sends `connection-established` and then the exception.
async fn stream_stats<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    shared: &Arc<Shared>,
    sub: Subscription,
    dest: &str,
) {
    if !send(conn, &Event::new("", "connection-established").encode()).await {
        return;
    }
    let all = dest == "dom0";
    let running = shared
        .core
        .snapshot()
        .domain(dest)
        .is_some_and(|d| d.is_active());
    if !all && !running {
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
    forward(conn, sub, |ev| all || ev.event.subject == dest).await;
}

/// Writes the events `keep` accepts to a stream, those waiting together in one write, until
/// the subscriber goes away or falls behind.
async fn forward<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    mut sub: Subscription,
    mut keep: impl FnMut(&Published) -> bool,
) {
    let (mut batch, mut out) = (Vec::new(), Vec::new());
    while sub.recv_many(&mut batch, BATCH_BYTES).await {
        out.clear();
        for ev in batch.drain(..) {
            if keep(&ev) {
                out.extend_from_slice(&ev.bytes);
            }
        }
        if !out.is_empty() && !send(conn, &out).await {
            return;
        }
    }
}

/// Bytes of waiting events a stream writes at once: a subscriber that fell behind catches
/// up with few system calls (and wakes its reader less often). Small enough that a reader
/// taking 13 KB/s still takes a batch within [`STREAM_WRITE_TIMEOUT`].
const BATCH_BYTES: usize = 64 * 1024;

/// Forwards events to one `admin.Events` subscriber until it goes away or falls behind.
async fn stream_events<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    shared: &Arc<Shared>,
    sub: Subscription,
    dest: &str,
    src: &str,
) {
    if !send(conn, &Event::new("", "connection-established").encode()).await {
        return;
    }
    let all = dest == "dom0";
    let _filtered = (src != "dom0").then(|| shared.core.filtered_subscriber());
    let mut decisions = Decisions::default();
    forward(conn, sub, |ev| {
        if !all && (ev.global || ev.event.subject != dest) {
            return false;
        }
        // Policy for non-dom0 callers: the event's qube, the `vm` of a global event, else
        // dom0. The view is built once per state and shared by every subscriber (by the
        // writer that committed it; here only for events published otherwise).
        if src == "dom0" {
            return true;
        }
        let view = ev.view.get_or_init(|| match &ev.state {
            Some(st) => shared.core.policy_view_at(st),
            None => shared.core.policy_view(),
        });
        decisions.allows(view, src, ev)
    })
    .await;
}

/// One subscriber's policy decisions for the view it last used: most events repeat a
/// (name, qube) pair, and the answer then costs a lookup without a lock or an allocation.
#[derive(Default)]
struct Decisions {
    view: Option<Arc<crate::policy::PolicyView>>,
    known: HashMap<String, bool>,
    key: String,
}

impl Decisions {
    fn allows(&mut self, view: &Arc<crate::policy::PolicyView>, src: &str, ev: &Published) -> bool {
        if !self.view.as_ref().is_some_and(|v| Arc::ptr_eq(v, view)) {
            self.view = Some(view.clone());
            self.known.clear();
        }
        let target = if ev.global {
            ev.event.get("vm").unwrap_or("@adminvm")
        } else {
            ev.event.subject.as_str()
        };
        self.key.clear();
        self.key.push_str(&ev.event.name);
        self.key.push('\0');
        self.key.push_str(target);
        if let Some(allowed) = self.known.get(self.key.as_str()) {
            return *allowed;
        }
        let service = crate::policy::event_service(&ev.event.name);
        let allowed = view.allows(src, &service, target);
        // Bounded as the view's own memory of decisions.
        if self.known.len() >= 4096 {
            self.known.clear();
        }
        self.known.insert(self.key.clone(), allowed);
        allowed
    }
}

/// Paths of the three sockets in `dir`.
pub fn socket_paths(dir: &Path) -> Vec<(Socket, PathBuf)> {
    SOCKET_NAMES
        .iter()
        .map(|(s, n)| (*s, dir.join(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timeout branch of `Shutdown+wait`: no `domain-shutdown` arrives in time.
    #[test]
    fn shutdown_wait_times_out() {
        let e = crate::Embedded::demo().expect("demo core");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(shutdown_wait_times_out_on(e.shared.clone()));
    }

    async fn shutdown_wait_times_out_on(shared: Arc<Shared>) {
        let mut watcher = shared.core.hub().subscribe();
        let sub = shared.core.hub().subscribe();
        // Another qube's shutdown does not end the wait.
        shared
            .core
            .hub()
            .publish([Event::new("other", "domain-shutdown")]);
        let t = std::time::Instant::now();
        let r = wait_halted(&shared, sub, "work", 1).await;
        assert!(t.elapsed() >= Duration::from_secs(1));
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
