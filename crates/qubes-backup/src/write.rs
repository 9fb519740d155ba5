//! Writing a backup in format v4 (admin-api.md §9.3): the header and its `.hmac`,
//! `qubes.xml`, every file of every selected qube, dom0's home; each file as an inner tar
//! stream, compressed when asked, cut into 100 MiB chunks, each chunk sealed in an scrypt
//! container; the outer stream is one tar archive per chunk, concatenated.
//!
//! Threads: the caller's thread reads the sources and builds the inner tar streams; with
//! gzip, a pool deflates 1 MiB blocks in parallel (see [`crate::gz`]); another filter runs
//! as a program, as in the reference; the sealing stage encrypts, MACs and writes, with keys
//! derived ahead on a thread of their own. Blocks in flight are bounded (tokens), so memory
//! stays the same whatever the size of the backup.

mod seal;
mod sink;

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use seal::{Item, Keygen, Stage};
use sink::{FileSink, Sink, StreamSink};

use crate::container::{self, KdfParams};
use crate::error::{BackupError, Result};
use crate::gz;
use crate::profile::Compression;
use crate::sparse;

/// The reference's chunk size: 100 MiB of the (compressed) stream.
pub const CHUNK_SIZE: u64 = 100 * 1024 * 1024;

/// Size of the blocks the pipeline moves.
const BLOCK: usize = 1 << 20;

/// Where a file's content comes from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// A file or a block device (a volume image exported by its pool); holes are kept.
    Path(PathBuf),
    /// Bytes in memory (`firewall.xml`, `notes.txt`).
    Bytes(Vec<u8>),
}

/// One file of a qube.
#[derive(Debug, Clone)]
pub struct BackupFile {
    /// Name in the qube's directory of the archive (`private.img`, `firewall.xml`).
    pub name: String,
    /// Content.
    pub source: FileSource,
    /// Size for progress and `backup-size` (the reference uses the volume's usage).
    pub size: u64,
}

/// A qube and its files (an empty list gets the reference's empty placeholder file).
#[derive(Debug, Clone)]
pub struct QubeFiles {
    /// qid: the files go to `vm<qid>/`.
    pub qid: u32,
    /// Files in order.
    pub files: Vec<BackupFile>,
}

impl QubeFiles {
    /// `vm<qid>/`, the qube's `backup-path` feature.
    pub fn subdir(&self) -> String {
        format!("vm{}/", self.qid)
    }

    /// Sum of the file sizes, the qube's `backup-size` feature.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// dom0's home directory.
#[derive(Debug, Clone)]
pub struct Dom0Home {
    /// The user (first member of group `qubes`).
    pub user: String,
    /// The directory.
    pub path: PathBuf,
    /// Its disk usage ([`disk_usage`]).
    pub size: u64,
}

impl Dom0Home {
    /// `dom0-home/<user>`, dom0's `backup-path` feature.
    pub fn backup_path(&self) -> String {
        format!("dom0-home/{}", self.user)
    }
}

/// What goes into a backup.
#[derive(Debug, Clone)]
pub struct BackupContent {
    /// `qubes.xml` as stored in the backup: every qube with feature `backup-content` (`1` or
    /// empty), the selected ones with `backup-path` and `backup-size`.
    pub qubes_xml: Vec<u8>,
    /// Selected qubes other than dom0, in backup order.
    pub qubes: Vec<QubeFiles>,
    /// dom0's home, when dom0 is selected.
    pub dom0_home: Option<Dom0Home>,
}

impl BackupContent {
    /// The total of all sizes: what progress counts up to.
    pub fn total_size(&self) -> u64 {
        self.qubes.iter().map(QubeFiles::size).sum::<u64>()
            + self.dom0_home.as_ref().map_or(0, |h| h.size)
    }
}

/// How far a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes (in [`BackupFile::size`] units) done.
    pub done: u64,
    /// Total.
    pub total: u64,
}

impl Progress {
    /// Percent, as the `progress` of `backup-progress` events.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.done as f64 / self.total as f64
        }
    }

    /// [`Progress::percent`] as Python's `str(float)` writes it (`12.5`, `100.0`).
    pub fn percent_text(&self) -> String {
        let s = format!("{}", self.percent());
        if s.contains('.') { s } else { format!("{s}.0") }
    }
}

/// Called with the progress after every block; cheap callers only (see [`throttled`]).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Wraps `f` so it runs at most once per `interval` (the reference sends `backup-progress`
/// at most once a second).
pub fn throttled(interval: std::time::Duration, f: ProgressFn) -> ProgressFn {
    let last = Mutex::new(std::time::Instant::now());
    Arc::new(move |p| {
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        if l.elapsed() >= interval {
            *l = std::time::Instant::now();
            drop(l);
            f(p);
        }
    })
}

/// Settings of one backup run.
#[derive(Clone)]
pub struct WriteOptions {
    /// The user's passphrase.
    pub passphrase: Vec<u8>,
    /// Compression (from the profile).
    pub compression: Compression,
    /// scrypt cost of every container.
    pub kdf: KdfParams,
    /// Chunk size ([`CHUNK_SIZE`]).
    pub chunk_size: u64,
    /// Compression threads (gzip).
    pub threads: usize,
    /// `<YYYYMMDDTHHMMSS>-<pid>` ([`new_backup_id`]).
    pub backup_id: String,
    /// Progress reports.
    pub progress: Option<ProgressFn>,
    /// Set to stop the backup: it then fails with `BackupCancelledError` and leaves no
    /// file.
    pub cancel: Arc<AtomicBool>,
}

impl WriteOptions {
    /// Defaults: gzip, [`KdfParams::DEFAULT`], 100 MiB chunks, one thread per core.
    pub fn new(passphrase: impl Into<Vec<u8>>) -> WriteOptions {
        WriteOptions {
            passphrase: passphrase.into(),
            compression: Compression::default(),
            kdf: KdfParams::DEFAULT,
            chunk_size: CHUNK_SIZE,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            backup_id: new_backup_id(),
            progress: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Where the backup goes.
pub enum Destination {
    /// A file in dom0 (see [`resolve_dom0_target`]): nameless until complete, then fsynced
    /// and given its name.
    File(PathBuf),
    /// A stream, such as the standard input of `qubes.Backup` in a qube (after its first
    /// line, [`qube_target_first_line`]); each chunk is spooled in `spool_dir` first.
    Stream {
        /// The stream.
        writer: Box<dyn Write + Send>,
        /// Directory for one chunk's spool file.
        spool_dir: PathBuf,
    },
}

/// What a finished backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// The backup id in the header.
    pub backup_id: String,
    /// The file, for [`Destination::File`].
    pub path: Option<PathBuf>,
    /// Bytes of the outer stream.
    pub bytes: u64,
}

/// `%Y%m%dT%H%M%S-<pid>` in local time.
pub fn new_backup_id() -> String {
    format!("{}-{}", local_time("%Y%m%dT%H%M%S"), std::process::id())
}

fn local_time(fmt: &str) -> String {
    // SAFETY: time/localtime_r/strftime with our own buffers.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        let mut buf = [0u8; 64];
        let f = std::ffi::CString::new(fmt).expect("no NUL");
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), f.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// The file a dom0 `destination_path` means: a directory gets `qubes-<%Y-%m-%dT%H%M%S>`
/// inside; otherwise the path itself, whose directory must exist.
pub fn resolve_dom0_target(path: &str) -> Result<PathBuf> {
    if path.contains('\0') {
        return Err(BackupError::qubes("Invalid destination_path"));
    }
    let p = Path::new(path);
    if p.is_dir() {
        return Ok(p.join(format!("qubes-{}", local_time("%Y-%m-%dT%H%M%S"))));
    }
    let parent = match p.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => Path::new("/"),
    };
    if !parent.exists() {
        return Err(BackupError::qubes(format!(
            "ERROR: the backup directory for {path} does not exists"
        )));
    }
    Ok(p.to_path_buf())
}

/// Refuses to put dom0's home inside itself (`Can not backup dom0 home directory to
/// itself!`).
pub fn check_dom0_home_target(target: &str, home: &Path) -> Result<()> {
    if target.is_empty() || target == "~" || Path::new(target).starts_with(home) {
        return Err(BackupError::qubes(
            "Can not backup dom0 home directory to itself!",
        ));
    }
    Ok(())
}

/// The first line sent to `qubes.Backup`: the path without CR/LF, then LF.
pub fn qube_target_first_line(path: &str) -> Vec<u8> {
    let mut l: Vec<u8> = path
        .bytes()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    l.push(b'\n');
    l
}

/// Disk usage of a file or tree (`qubes.storage.file.get_disk_usage`): allocated blocks
/// of the path and everything under it, links not followed; 0 when it cannot be read.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(m) = e.path().symlink_metadata() {
                    total += m.blocks() * 512;
                    if m.is_dir() {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
    total
}

/// The `backup-header` file.
pub fn backup_header(opts: &WriteOptions) -> Vec<u8> {
    format!(
        "version=4\nencrypted=True\ncompressed={}\ncompression-filter={}\nhmac-algorithm=scrypt\nbackup-id={}\n",
        if opts.compression.compressed { "True" } else { "False" },
        opts.compression.filter,
        opts.backup_id
    )
    .into_bytes()
}

fn check_options(opts: &WriteOptions) -> Result<()> {
    let ok = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok(&opts.backup_id) || opts.backup_id.is_empty() || opts.backup_id.starts_with('-') {
        return Err(BackupError::qubes("invalid backup id"));
    }
    if !ok(&opts.compression.filter) {
        return Err(BackupError::qubes("invalid compression filter"));
    }
    if opts.chunk_size == 0 || opts.chunk_size > 1 << 32 {
        return Err(BackupError::qubes("invalid chunk size"));
    }
    Ok(())
}

/// Writes a whole backup. Blocks until it is complete, failed or cancelled; only a complete
/// backup is published (a file gets its name after the last byte is on disk).
pub fn write_backup(
    content: &BackupContent,
    dest: Destination,
    opts: &WriteOptions,
) -> Result<WriteReport> {
    check_options(opts)?;
    let sink: Box<dyn Sink> = match dest {
        Destination::File(path) => Box::new(FileSink::create(&path).map_err(|e| {
            BackupError::qubes(format!(
                "ERROR: cannot create the backup file {}: {e}",
                path.display()
            ))
        })?),
        Destination::Stream { writer, spool_dir } => Box::new(
            StreamSink::new(writer, &spool_dir)
                .map_err(|e| BackupError::io(format!("spool in {}", spool_dir.display()), e))?,
        ),
    };
    let mut files = vec!["qubes.xml".to_string()];
    for q in &content.qubes {
        if q.files.is_empty() {
            files.push(format!("{}empty", q.subdir()));
        }
        for f in &q.files {
            files.push(format!("{}{}", q.subdir(), f.name));
        }
    }
    if let Some(h) = &content.dom0_home {
        files.push(h.backup_path());
    }
    let stage = Stage {
        sink,
        keygen: Keygen::start(&opts.backup_id, &opts.passphrase, opts.kdf),
        chunk_size: opts.chunk_size,
        files,
    };
    let workers = if opts.compression.compressed && opts.compression.filter == "gzip" {
        opts.threads.max(1)
    } else {
        0
    };
    let in_flight = 2 * workers + 3;
    let (token_tx, token_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = token_tx.send(());
    }
    let (item_tx, item_rx) = channel::<(u64, Item)>();
    let sealer = std::thread::Builder::new()
        .name("backup-seal".into())
        .spawn(move || stage.run(item_rx, token_tx))
        .map_err(|e| BackupError::io("starting a thread", e))?;
    let out = Output::new(workers, item_tx, token_rx)?;
    let produced = produce(content, opts, out);
    let sealed = sealer
        .join()
        .unwrap_or_else(|_| Err(BackupError::qubes("the sealing thread failed")));
    match (produced, sealed) {
        (Ok(()), Ok(r)) => Ok(WriteReport {
            backup_id: opts.backup_id.clone(),
            path: r.path,
            bytes: r.bytes,
        }),
        (Err(BackupError::Cancelled), _) => Err(BackupError::Cancelled),
        // One side gave up because the other failed: report the failure, not the abort.
        (Err(p), Err(s)) => Err(if is_abort(&p) { s } else { p }),
        (Ok(()), Err(e)) | (Err(e), Ok(_)) => Err(e),
    }
}

enum Job {
    Pass(u64, Item),
    Deflate { seq: u64, data: Vec<u8>, last: bool },
}

/// The producer's end of the pipeline.
struct Output {
    seq: Arc<AtomicU64>,
    items: Sender<(u64, Item)>,
    tokens: Arc<Mutex<Receiver<()>>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

fn aborted() -> BackupError {
    BackupError::qubes(ABORTED)
}

const ABORTED: &str = "backup aborted";

fn is_abort(e: &BackupError) -> bool {
    matches!(e, BackupError::Qubes(m) if m == ABORTED)
}

impl Output {
    fn new(workers: usize, items: Sender<(u64, Item)>, tokens: Receiver<()>) -> Result<Output> {
        let mut out = Output {
            seq: Arc::new(AtomicU64::new(0)),
            items,
            tokens: Arc::new(Mutex::new(tokens)),
            jobs: None,
            workers: Vec::new(),
        };
        if workers > 0 {
            let (jtx, jrx) = sync_channel::<Job>(workers);
            let jrx = Arc::new(Mutex::new(jrx));
            for i in 0..workers {
                let jrx = jrx.clone();
                let items = out.items.clone();
                let t = std::thread::Builder::new()
                    .name(format!("backup-deflate-{i}"))
                    .spawn(move || deflate_worker(jrx, items))
                    .map_err(|e| BackupError::io("starting a thread", e))?;
                out.workers.push(t);
            }
            out.jobs = Some(jtx);
        }
        Ok(out)
    }

    fn token(&self) -> Result<()> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv()
            .map_err(|_| aborted())
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Sends an item (through the workers, which keep the order, when there are any).
    fn send(&self, item: Item) -> Result<()> {
        self.token()?;
        let seq = self.next_seq();
        match &self.jobs {
            Some(j) => j.send(Job::Pass(seq, item)).map_err(|_| aborted()),
            None => self.items.send((seq, item)).map_err(|_| aborted()),
        }
    }

    fn deflate(&self, data: Vec<u8>, last: bool) -> Result<()> {
        self.token()?;
        let seq = self.next_seq();
        self.jobs
            .as_ref()
            .expect("workers exist")
            .send(Job::Deflate { seq, data, last })
            .map_err(|_| aborted())
    }

    fn close(mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn deflate_worker(jobs: Arc<Mutex<Receiver<Job>>>, items: Sender<(u64, Item)>) {
    let mut c = gz::compressor();
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        let (seq, item) = match job {
            Job::Pass(seq, item) => (seq, item),
            Job::Deflate { seq, data, last } => {
                let mut out = Vec::new();
                gz::deflate_block(&mut c, &data, last, &mut out);
                (seq, Item::Data(out))
            }
        };
        if items.send((seq, item)).is_err() {
            return;
        }
    }
}

/// How one file's inner stream is compressed.
enum Filter {
    None,
    Gzip {
        crc: crc32fast::Hasher,
        len: u64,
    },
    Program {
        stdin: Option<ChildStdin>,
        child: Child,
        reader: Option<std::thread::JoinHandle<Result<()>>>,
    },
}

/// An inner stream being written: implements `Write` for the tar builders.
struct InnerStream<'a> {
    out: &'a Output,
    filter: Filter,
    buf: Vec<u8>,
    cancel: &'a AtomicBool,
    error: Option<BackupError>,
}

impl<'a> InnerStream<'a> {
    fn start(out: &'a Output, name: &str, opts: &'a WriteOptions) -> Result<InnerStream<'a>> {
        if opts.cancel.load(Ordering::Relaxed) {
            return Err(BackupError::Cancelled);
        }
        out.send(Item::Start {
            name: name.to_string(),
        })?;
        let c = &opts.compression;
        let filter = if !c.compressed {
            Filter::None
        } else if c.filter == "gzip" {
            out.send(Item::Data(gz::HEADER.to_vec()))?;
            Filter::Gzip {
                crc: crc32fast::Hasher::new(),
                len: 0,
            }
        } else {
            spawn_filter(out, &c.filter)?
        };
        Ok(InnerStream {
            out,
            filter,
            buf: Vec::with_capacity(BLOCK),
            cancel: &opts.cancel,
            error: None,
        })
    }

    fn emit(&mut self, block: Vec<u8>) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(BackupError::Cancelled);
        }
        match &mut self.filter {
            Filter::None => self.out.send(Item::Data(block)),
            Filter::Gzip { crc, len, .. } => {
                crc.update(&block);
                *len += block.len() as u64;
                self.out.deflate(block, false)
            }
            Filter::Program { stdin, .. } => stdin
                .as_mut()
                .expect("open until the end")
                .write_all(&block)
                .map_err(|e| BackupError::qubes(format!("compression filter failed: {e}"))),
        }
    }

    fn push(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let take = (BLOCK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BLOCK {
                let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
                self.emit(block)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(BackupError::Cancelled);
        }
        let rest = std::mem::take(&mut self.buf);
        match std::mem::replace(&mut self.filter, Filter::None) {
            Filter::None => {
                if !rest.is_empty() {
                    self.out.send(Item::Data(rest))?;
                }
            }
            Filter::Gzip { mut crc, len, .. } => {
                crc.update(&rest);
                let len = len + rest.len() as u64;
                self.out.deflate(rest, true)?;
                self.out
                    .send(Item::Data(gz::trailer(crc.finalize(), len).to_vec()))?;
            }
            Filter::Program {
                mut stdin,
                mut child,
                reader,
            } => {
                let w = stdin.as_mut().expect("open").write_all(&rest);
                drop(stdin);
                let r = reader.map(|r| r.join().unwrap_or_else(|_| Err(aborted())));
                let status = child.wait();
                w.map_err(|e| BackupError::qubes(format!("compression filter failed: {e}")))?;
                if let Some(r) = r {
                    r?;
                }
                match status {
                    Ok(s) if s.success() => {}
                    _ => return Err(BackupError::qubes("compression filter failed")),
                }
            }
        }
        self.out.send(Item::End)
    }
}

impl Write for InnerStream<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.push(data) {
            Ok(()) => Ok(data.len()),
            Err(e) => {
                self.error = Some(e);
                Err(io::Error::other("backup stream stopped"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs a filter program (`<filter>`, compressing stdin to stdout) for one file; a thread
/// forwards its output.
fn spawn_filter(out: &Output, program: &str) -> Result<Filter> {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BackupError::qubes(format!("cannot run compression filter {program}: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let stdin = child.stdin.take();
    let seq = out.seq.clone();
    let items = out.items.clone();
    let tokens = out.tokens.clone();
    let reader = std::thread::spawn(move || -> Result<()> {
        loop {
            let mut block = vec![0u8; BLOCK];
            let mut n = 0;
            while n < BLOCK {
                match stdout.read(&mut block[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(BackupError::qubes(format!("compression filter: {e}"))),
                }
            }
            if n == 0 {
                return Ok(());
            }
            block.truncate(n);
            tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv()
                .map_err(|_| aborted())?;
            let s = seq.fetch_add(1, Ordering::SeqCst);
            items.send((s, Item::Data(block))).map_err(|_| aborted())?;
        }
    });
    Ok(Filter::Program {
        stdin,
        child,
        reader: Some(reader),
    })
}

/// Progress of the file being written: its share of its size, by stream bytes.
struct Meter<'a> {
    opts: &'a WriteOptions,
    done_before: u64,
    total: u64,
}

impl Meter<'_> {
    fn report(&self, file_size: u64, pos: u64, len: u64) {
        if let Some(f) = &self.opts.progress {
            let part = if len == 0 {
                file_size
            } else {
                (file_size as u128 * pos.min(len) as u128 / len as u128) as u64
            };
            f(Progress {
                done: self.done_before + part,
                total: self.total,
            });
        }
    }
}

fn produce(content: &BackupContent, opts: &WriteOptions, out: Output) -> Result<()> {
    let r = produce_all(content, opts, &out);
    match r {
        Ok(()) => {
            let f = out.send(Item::Finish);
            out.close();
            f
        }
        Err(e) => {
            out.close();
            Err(e)
        }
    }
}

fn produce_all(content: &BackupContent, opts: &WriteOptions, out: &Output) -> Result<()> {
    let header = backup_header(opts);
    let mut hmac_pass = b"backup-header!".to_vec();
    hmac_pass.extend_from_slice(&opts.passphrase);
    let hmac = container::seal_bytes(&header, &hmac_pass, opts.kdf)?;
    out.send(Item::Raw {
        name: "backup-header".into(),
        data: header,
    })?;
    out.send(Item::Raw {
        name: "backup-header.hmac".into(),
        data: hmac,
    })?;
    let mut meter = Meter {
        opts,
        done_before: 0,
        total: content.total_size(),
    };
    write_bytes_file("qubes.xml", &content.qubes_xml, out, opts)?;
    for q in &content.qubes {
        let subdir = q.subdir();
        if q.files.is_empty() {
            write_bytes_file(&format!("{subdir}empty"), b"", out, opts)?;
        }
        for f in &q.files {
            let name = format!("{subdir}{}", f.name);
            match &f.source {
                FileSource::Bytes(b) => write_bytes_file(&name, b, out, opts)?,
                FileSource::Path(p) => write_path_file(&name, p, f.size, out, opts, &meter)?,
            }
            meter.done_before += f.size;
            meter.report(0, 0, 0);
        }
    }
    if let Some(h) = &content.dom0_home {
        write_home(h, out, opts)?;
        meter.done_before += h.size;
        meter.report(0, 0, 0);
    }
    Ok(())
}

fn write_bytes_file(name: &str, data: &[u8], out: &Output, opts: &WriteOptions) -> Result<()> {
    let mut s = InnerStream::start(out, name, opts)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    s.push(&sparse::plain_header(name, data.len() as u64, now, 0o644))?;
    s.push(data)?;
    s.push(&vec![0u8; sparse::padding(data.len() as u64)])?;
    s.push(&sparse::END_OF_ARCHIVE)?;
    s.finish()
}

fn write_path_file(
    name: &str,
    path: &Path,
    size: u64,
    out: &Output,
    opts: &WriteOptions,
    meter: &Meter,
) -> Result<()> {
    let read_err = |e: io::Error| {
        BackupError::qubes(format!("Failed to archive {} file: {e}", path.display()))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if meta.is_dir() {
        return Err(read_err(io::Error::other("a directory")));
    }
    let len = sparse::source_len(&file).map_err(read_err)?;
    let cancelled = || opts.cancel.load(Ordering::Relaxed);
    let map = sparse::scan(&file, len, &cancelled).map_err(|e| {
        if cancelled() {
            BackupError::Cancelled
        } else {
            read_err(e)
        }
    })?;
    let mtime = meta.mtime().max(0) as u64;
    let mut s = InnerStream::start(out, name, opts)?;
    let header = if map.is_dense() && meta.is_file() {
        sparse::plain_header(name, len, mtime, 0o644)
    } else {
        sparse::sparse_header(name, &map, mtime, 0o644)
    };
    s.push(&header)?;
    let mut buf = vec![0u8; BLOCK];
    for &(off, l) in &map.extents {
        let mut pos = 0u64;
        while pos < l {
            let n = ((l - pos) as usize).min(BLOCK);
            file.read_exact_at(&mut buf[..n], off + pos).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    read_err(io::Error::other("premature EOF (the file shrank)"))
                } else {
                    read_err(e)
                }
            })?;
            s.push(&buf[..n])?;
            pos += n as u64;
            meter.report(size, off + pos, len);
        }
    }
    s.push(&vec![0u8; sparse::padding(map.data_len())])?;
    s.push(&sparse::END_OF_ARCHIVE)?;
    s.finish()
}

/// dom0's home as GNU tar would archive it with `--xform` to `dom0-home/<user>`; sockets
/// are left out, as GNU tar does.
fn write_home(home: &Dom0Home, out: &Output, opts: &WriteOptions) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let name = home.backup_path();
    let mut s = InnerStream::start(out, &name, opts)?;
    let archive_err = |e: io::Error| {
        BackupError::qubes(format!(
            "Failed to archive {} file: {e}",
            home.path.display()
        ))
    };
    {
        let mut b = tar::Builder::new(&mut s);
        b.follow_symlinks(false);
        b.mode(tar::HeaderMode::Complete);
        let mut stack = vec![(home.path.clone(), PathBuf::from(&name))];
        while let Some((src, dst)) = stack.pop() {
            if opts.cancel.load(Ordering::Relaxed) {
                return Err(BackupError::Cancelled);
            }
            let meta = std::fs::symlink_metadata(&src).map_err(archive_err)?;
            if meta.file_type().is_socket() {
                continue;
            }
            b.append_path_with_name(&src, &dst).map_err(archive_err)?;
            if meta.is_dir() {
                let mut entries: Vec<_> = std::fs::read_dir(&src)
                    .map_err(archive_err)?
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect();
                entries.sort();
                for e in entries.into_iter().rev() {
                    stack.push((src.join(&e), dst.join(&e)));
                }
            }
        }
        b.finish().map_err(archive_err)?;
    }
    s.finish()
}

#[cfg(test)]
mod tests;
