//! The producing side: reads the sources, builds each file's inner tar stream, and feeds
//! it (deflated in parallel, or through a filter program) to the sealing stage in order.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::seal::Item;
use super::{BLOCK, BackupContent, Dom0Home, FileSource, Progress, WriteOptions, backup_header};
use crate::container;
use crate::error::{BackupError, Result};
use crate::{gz, sparse};

enum Job {
    Pass(u64, Item),
    Deflate { seq: u64, data: Vec<u8>, last: bool },
}

/// The producer's end of the pipeline.
pub(super) struct Output {
    seq: Arc<AtomicU64>,
    items: Sender<(u64, Item)>,
    tokens: Arc<Mutex<Receiver<()>>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

pub(super) fn aborted() -> BackupError {
    BackupError::qubes(ABORTED)
}

pub(super) const ABORTED: &str = "backup aborted";

pub(super) fn is_abort(e: &BackupError) -> bool {
    matches!(e, BackupError::Qubes(m) if m == ABORTED)
}

impl Output {
    pub(super) fn new(
        workers: usize,
        items: Sender<(u64, Item)>,
        tokens: Receiver<()>,
    ) -> Result<Output> {
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

/// Progress of the file being written: its share of its size, by data bytes read.
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

pub(super) fn produce(content: &BackupContent, opts: &WriteOptions, out: Output) -> Result<()> {
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
    // Progress counts the data read against all the data: holes take no time, and a sparse
    // image's data is not where its offsets would say.
    let (mut data_done, data_len) = (0u64, map.data_len());
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
            data_done += n as u64;
            meter.report(size, data_done, data_len);
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
