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

mod produce;
mod seal;
mod sink;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Mutex};

use produce::{Output, is_abort, produce};
use seal::{Item, Keygen, Stage};
use sink::{FileSink, Sink, StreamSink};

use crate::container::KdfParams;
use crate::error::{BackupError, Result};
use crate::profile::Compression;

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

#[cfg(test)]
mod tests;
