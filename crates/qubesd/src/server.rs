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
use tokio::time::Instant;

use crate::api::Socket;
use crate::core::Core;
use crate::dispatch;
use crate::events::{BATCH_BYTES, Published, Subscription};
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
/// the subscriber goes away or falls behind. Writes are paced (see [`Pace`]): in a storm of
/// events with many subscribers each write carries what arrived since the last one.
async fn forward<S: AsyncWriteExt + Unpin>(
    conn: &mut S,
    mut sub: Subscription,
    mut keep: impl FnMut(&Published) -> bool,
) {
    let (mut batch, mut out) = (Vec::new(), Vec::new());
    let mut pace = Pace::new(Instant::now());
    loop {
        // A stream out of credit sleeps before it looks for events: what arrives meanwhile
        // wakes nobody and goes out together. A batch's worth of events ends the sleep, so
        // pacing never lets a backlog grow past one batch.
        pace.share(sub.subscribers());
        if let Some(due) = pace.wait_until(Instant::now()) {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = sub.batch_ready() => {}
            }
        }
        if !sub.recv_many(&mut batch, BATCH_BYTES).await {
            return;
        }
        out.clear();
        for ev in batch.drain(..) {
            if keep(&ev) {
                out.extend_from_slice(&ev.bytes);
            }
        }
        if !out.is_empty() {
            if !send(conn, &out).await {
                return;
            }
            pace.spend(Instant::now());
        }
    }
}

/// Pacing of one stream's writes, a token bucket: up to [`Pace::BURST`] writes go out as
/// their events come, after that the stream gets its share of [`Pace::WRITES_PER_SEC`]
/// (split evenly between the hub's subscribers, at least one write per
/// [`Pace::MAX_INTERVAL`]), each write carrying every event that arrived meanwhile. A lone
/// event, the few of one action, or a client waiting for each event in turn with few
/// subscribers around, are not delayed. A storm of writes (a script
/// setting features on every qube) with fifty subscribers costs each of them a system call
/// and a wakeup of its reader every 5 ms instead of one per event: that fan-out runs on the
/// same CPUs as the writers, and took two thirds of their throughput.
#[derive(Debug, Clone, Copy)]
struct Pace {
    credit: u32,
    /// When `credit` was last brought up to date.
    since: Instant,
    /// Time that earns one more write: the stream's share of the budget.
    interval: Duration,
}

impl Pace {
    /// Writes that go out unpaced after a quiet spell.
    const BURST: u32 = 32;
    /// Stream writes per second, all subscribers of a hub together, once their bursts are
    /// spent: a tenth of a CPU here, at about 10 µs per write and its reader's wakeup.
    const WRITES_PER_SEC: u32 = 10_000;
    /// The longest a stream waits for its pace, however many subscribers share the budget
    /// (many, or streams whose clients are gone but that never write, must not hold up the
    /// GUI's events for longer).
    const MAX_INTERVAL: Duration = Duration::from_millis(10);

    fn new(now: Instant) -> Pace {
        Pace {
            credit: Self::BURST,
            since: now,
            interval: Duration::ZERO,
        }
    }

    /// Sets the stream's share of the budget for `streams` subscribers.
    fn share(&mut self, streams: usize) {
        let streams = u32::try_from(streams.max(1)).unwrap_or(u32::MAX);
        let share = Duration::from_secs(1) / Self::WRITES_PER_SEC.min(u32::MAX / streams) * streams;
        self.interval = share.min(Self::MAX_INTERVAL);
    }

    /// Credit earned up to `now`.
    fn refill(&mut self, now: Instant) {
        let earned = match now.saturating_duration_since(self.since).as_nanos() {
            _ if self.interval.is_zero() => u128::MAX,
            elapsed => elapsed / self.interval.as_nanos(),
        };
        if earned == 0 {
            return;
        }
        let room = Self::BURST - self.credit;
        if earned >= u128::from(room) {
            // Full: credit does not accumulate past the burst.
            self.credit = Self::BURST;
            self.since = now;
        } else {
            // `earned < room <= BURST`, so the conversion cannot fail.
            let earned = u32::try_from(earned).unwrap_or(room);
            self.credit += earned;
            self.since += self.interval * earned;
        }
    }

    /// When the next write may go: `None` for now, else the time it earns its credit.
    fn wait_until(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        (self.credit == 0).then(|| self.since + self.interval)
    }

    /// A write went out at `now`.
    fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.credit = self.credit.saturating_sub(1);
    }
}

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

    /// The pacing of a stream's writes: a burst goes out at once, then one write per
    /// interval; a quiet spell earns the burst back, and credit never exceeds it.
    #[test]
    fn pace_lets_a_burst_through_then_spaces_writes() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        // Fifty subscribers share the budget: one write each per 5 ms.
        pace.share(50);
        let interval = Duration::from_millis(5);
        assert_eq!(pace.interval, interval);
        for _ in 0..Pace::BURST {
            assert_eq!(pace.wait_until(t0), None);
            pace.spend(t0);
        }
        assert_eq!(pace.wait_until(t0), Some(t0 + interval));
        // Half an interval later: still waiting for the same moment.
        assert_eq!(pace.wait_until(t0 + interval / 2), Some(t0 + interval));
        // One interval earns one write.
        let t1 = t0 + interval;
        assert_eq!(pace.wait_until(t1), None);
        pace.spend(t1);
        assert_eq!(pace.wait_until(t1), Some(t1 + interval));
        // Three and a half intervals earn three, and the half is kept towards the next.
        let t2 = t1 + interval * 7 / 2;
        for _ in 0..3 {
            assert_eq!(pace.wait_until(t2), None);
            pace.spend(t2);
        }
        assert_eq!(
            pace.wait_until(t2),
            Some(t1 + interval * 4),
            "the half interval counts towards the next write"
        );
        // A long quiet spell gives back the burst and no more.
        let t3 = t2 + interval * 1000;
        for _ in 0..Pace::BURST {
            assert_eq!(pace.wait_until(t3), None);
            pace.spend(t3);
        }
        assert!(pace.wait_until(t3).is_some());
    }

    /// A stream's writes, each with its time.
    type Writes = Vec<(Instant, Vec<u8>)>;

    /// What a stream wrote, and when (on the test's paused clock).
    #[derive(Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Writes>>);

    impl Recorder {
        fn writes(&self) -> Writes {
            self.0.lock().unwrap().clone()
        }
    }

    impl tokio::io::AsyncWrite for Recorder {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.0.lock().unwrap().push((Instant::now(), buf.to_vec()));
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A stream among fifty subscribers, on a clock the test moves: a storm of events goes
    /// out whole and in order in paced writes; a batch's worth waiting ends the wait for
    /// the pace; after a quiet spell an event goes out at once.
    #[tokio::test(start_paused = true)]
    async fn forward_paces_a_storm_and_not_a_lone_event() {
        let hub = crate::events::EventHub::new();
        let _others: Vec<Subscription> = (0..49).map(|_| hub.subscribe()).collect();
        let recorder = Recorder::default();
        let mut out = recorder.clone();
        let sub = hub.subscribe();
        let stream = tokio::spawn(async move { forward(&mut out, sub, |_| true).await });
        let start = Instant::now();
        let mut want = Vec::new();
        for i in 0..300 {
            let ev = Event::new("q", "e").kw("i", i.to_string());
            want.extend_from_slice(&ev.encode());
            hub.publish([ev]);
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let writes = recorder.writes();
        assert_eq!(writes.concat_bytes(), want, "every event, once, in order");
        let elapsed = writes.last().unwrap().0 - start;
        let bound = Pace::BURST as usize + (elapsed.as_micros() / 5_000) as usize + 1;
        assert!(
            writes.len() <= bound && writes.len() < 150,
            "{} writes in {elapsed:?} (bound {bound})",
            writes.len()
        );
        // Out of credit again: a batch's worth arriving ends the wait for the pace.
        for i in 0..40 {
            hub.publish([Event::new("q", "e").kw("i", i.to_string())]);
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        let big = Event::new("q", "big").kw("value", "x".repeat(BATCH_BYTES));
        let big_bytes = big.encode();
        let at = Instant::now();
        hub.publish([big]);
        // The clock stands still while the test yields: what is written now did not wait.
        settle().await;
        let writes = recorder.writes();
        assert!(
            writes.concat_bytes().ends_with(&big_bytes),
            "no wait for the pace"
        );
        assert_eq!(writes.last().unwrap().0, at);
        // Quiet for a second: a lone event goes out at once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = Instant::now();
        hub.publish([Event::new("q", "lone")]);
        settle().await;
        let (when, bytes) = recorder.writes().last().unwrap().clone();
        assert_eq!((when, bytes), (at, Event::new("q", "lone").encode()));
        stream.abort();
    }

    /// Lets every other task run as far as it can without the clock moving.
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    /// All the bytes of a stream's writes.
    trait ConcatBytes {
        fn concat_bytes(&self) -> Vec<u8>;
    }

    impl ConcatBytes for Writes {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, b)| b.iter().copied()).collect()
        }
    }

    /// A lone subscriber's share is the whole budget: a client that waits for each event
    /// in turn (5,000 a second, faster than libvirt's test driver answers) never waits
    /// for its pace.
    #[test]
    fn pace_of_a_lone_subscriber_keeps_up_with_a_waiting_client() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        pace.share(1);
        assert_eq!(pace.interval, Duration::from_micros(100));
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(200) * i;
            assert_eq!(pace.wait_until(now), None, "write {i}");
            pace.spend(now);
        }
        // No subscriber counted (a stream racing its own unsubscription) is one; a huge
        // count does not overflow.
        pace.share(0);
        assert_eq!(pace.interval, Duration::from_micros(100));
        pace.share(usize::MAX);
        assert_eq!(pace.interval, Pace::MAX_INTERVAL);
        // A hundred subscribers share the budget; more wait no longer than that.
        pace.share(100);
        assert_eq!(pace.interval, Duration::from_millis(10));
        pace.share(10_000);
        assert_eq!(pace.interval, Pace::MAX_INTERVAL);
    }

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
