//! Reading a backup (format v4): nothing is trusted before its MAC is checked. The header is
//! authenticated by its `.hmac` container; every chunk's container MAC is checked over the
//! whole chunk before a single byte of it is decrypted, and the chunk names must follow each
//! other (`<file>.000.enc`, `.001.enc`, ...). A wrong passphrase shows at the header.

mod inner;
mod outer;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use inner::{Entry, InnerReader};
pub use outer::{MAX_MEMBER, Member, Source};

use crate::container::{self, Decryptor, HEADER_LEN, Header, KdfLimits, MAC_LEN, Verifier};
use crate::error::{BackupError, Result};
use outer::Outer;

/// Largest `backup-header` accepted.
const MAX_HEADER: u64 = 64 << 10;
/// Largest `backup-header.hmac` (the reference's `HMAC_MAX_SIZE`).
const MAX_HMAC: u64 = 4096;
/// Largest `qubes.xml` accepted (decompressed).
pub const MAX_QUBES_XML: u64 = 64 << 20;
/// Compression filters the reference accepts in a header.
pub const KNOWN_FILTERS: [&str; 8] = [
    "gzip", "bzip2", "xz", "lzma", "pbzip2", "pigz", "zstd", "zstdmt",
];

/// The `backup-header` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupHeader {
    /// Format version (4).
    pub version: u32,
    /// `encrypted`.
    pub encrypted: bool,
    /// `compressed`.
    pub compressed: bool,
    /// `compression-filter`.
    pub compression_filter: Option<String>,
    /// `hmac-algorithm`.
    pub hmac_algorithm: String,
    /// `backup-id`.
    pub backup_id: String,
}

fn alnum(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl BackupHeader {
    /// Parses and validates an (authenticated) header as the reference's `BackupHeader`.
    pub fn parse(untrusted: &[u8]) -> Result<BackupHeader> {
        let text = std::str::from_utf8(untrusted)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or_else(|| BackupError::qubes("Non-ASCII characters in backup header"))?;
        let mut seen = std::collections::HashSet::new();
        let (mut version, mut encrypted, mut compressed, mut filter, mut hmac, mut id) =
            (None, None, None, None, None, None);
        for line in text.lines() {
            if line.matches('=').count() != 1 {
                return Err(BackupError::qubes("Invalid backup header"));
            }
            let (key, value) = line.trim().split_once('=').expect("one '='");
            if !alnum(key) {
                return Err(BackupError::qubes("Invalid backup header (key)"));
            }
            let known = [
                "version",
                "encrypted",
                "compressed",
                "compression-filter",
                "crypto-algorithm",
                "hmac-algorithm",
                "backup-id",
            ];
            if !known.contains(&key) {
                continue;
            }
            if !seen.insert(key.to_string()) {
                return Err(BackupError::qubes(format!("Duplicated header line: {key}")));
            }
            if !alnum(value) {
                return Err(BackupError::qubes("Invalid backup header (value)"));
            }
            let flag = || ["1", "true", "yes"].contains(&value.to_lowercase().as_str());
            let invalid = || BackupError::qubes(format!("Invalid value for header: {key}"));
            match key {
                "version" => {
                    let v: u32 = value.parse().map_err(|_| invalid())?;
                    if !(1..=4).contains(&v) {
                        return Err(invalid());
                    }
                    version = Some(v);
                }
                "encrypted" => encrypted = Some(flag()),
                "compressed" => compressed = Some(flag()),
                "compression-filter" => {
                    if !KNOWN_FILTERS.contains(&value) {
                        return Err(BackupError::qubes(format!(
                            "Unusual compression filter '{value}' found."
                        )));
                    }
                    filter = Some(value.to_string());
                }
                "hmac-algorithm" => hmac = Some(value.to_lowercase()),
                "backup-id" => {
                    if value.is_empty() || value.starts_with('-') {
                        return Err(invalid());
                    }
                    id = Some(value.to_string());
                }
                _ => {}
            }
        }
        let version =
            version.ok_or_else(|| BackupError::qubes("Backup header lack 'version' info"))?;
        if version != 4 {
            return Err(BackupError::qubes(format!(
                "Backup format version {version} is not supported (only version 4, Qubes 4.x)"
            )));
        }
        let lack = |k: &str| BackupError::qubes(format!("Backup header lack '{k}' info"));
        let encrypted = encrypted.ok_or_else(|| lack("encrypted"))?;
        let compressed = compressed.ok_or_else(|| lack("compressed"))?;
        let hmac_algorithm = hmac.ok_or_else(|| lack("hmac_algorithm"))?;
        if compressed && filter.is_none() {
            return Err(lack("compression_filter"));
        }
        let backup_id = id.ok_or_else(|| lack("backup_id"))?;
        if hmac_algorithm != "scrypt" {
            return Err(BackupError::qubes(
                "Invalid value for header: hmac-algorithm",
            ));
        }
        Ok(BackupHeader {
            version,
            encrypted,
            compressed,
            compression_filter: filter,
            hmac_algorithm,
            backup_id,
        })
    }
}

/// Settings of a read.
#[derive(Clone)]
pub struct ReadOptions {
    /// The passphrase.
    pub passphrase: Vec<u8>,
    /// What the key derivation of an untrusted container may cost.
    pub limits: KdfLimits,
    /// Where chunks of a stream source are spooled (one at a time).
    pub spool_dir: PathBuf,
    /// Set to stop reading (`Backup cancelled`).
    pub cancel: Arc<AtomicBool>,
    /// Called with the bytes of the backup read so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl ReadOptions {
    /// Defaults: [`KdfLimits::default`], spooling in the temporary directory.
    pub fn new(passphrase: impl Into<Vec<u8>>) -> ReadOptions {
        ReadOptions {
            passphrase: passphrase.into(),
            limits: KdfLimits::default(),
            spool_dir: std::env::temp_dir(),
            cancel: Arc::new(AtomicBool::new(false)),
            progress: None,
        }
    }
}

/// What a visitor gets for one file of the backup.
pub enum Content<'a> {
    /// A single file (`vm<qid>/private.img`, `firewall.xml`): its size and content.
    File {
        /// Logical size.
        size: u64,
        /// The content, holes as zeros.
        data: &'a mut dyn Read,
    },
    /// dom0's home: the (decompressed, authenticated) tar stream of the tree.
    Tree(&'a mut dyn Read),
}

/// An open backup: header authenticated, `qubes.xml` read.
pub struct Backup {
    outer: Outer,
    header: BackupHeader,
    qubes_xml: Vec<u8>,
    opts: ReadOptions,
}

fn corrupt(what: impl std::fmt::Display) -> BackupError {
    BackupError::qubes(format!(
        "The backup is damaged or not a Qubes backup: {what}"
    ))
}

/// Splits `<file>.<NNN>.enc`.
fn chunk_parts(name: &str) -> Result<(&str, u32)> {
    let base = name.strip_suffix(".enc").ok_or_else(|| {
        BackupError::qubes(format!("Invalid file extension found in archive: {name}"))
    })?;
    let (file, idx) = base
        .rsplit_once('.')
        .filter(|(f, i)| !f.is_empty() && i.len() >= 3 && i.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| corrupt(format!("unexpected file {name}")))?;
    let idx = idx
        .parse()
        .map_err(|_| corrupt(format!("unexpected file {name}")))?;
    Ok((file, idx))
}

impl Backup {
    /// Opens a backup: authenticates the header with the passphrase, then reads `qubes.xml`.
    pub fn open(source: Source, opts: ReadOptions) -> Result<Backup> {
        let mut outer = Outer::new(source);
        let header_bytes = read_small(&mut outer, "backup-header", MAX_HEADER)?;
        let hmac = read_small(&mut outer, "backup-header.hmac", MAX_HMAC)?;
        let mut pass = b"backup-header!".to_vec();
        pass.extend_from_slice(&opts.passphrase);
        let decrypted = container::open_bytes(&hmac, &pass, opts.limits).map_err(|e| {
            if e.message() == "wrong passphrase" {
                BackupError::qubes(
                    "Corrupted backup header (hmac verification failed). Is the password correct?",
                )
            } else {
                e
            }
        })?;
        if decrypted != header_bytes {
            return Err(BackupError::qubes("Invalid hmac on backup-header"));
        }
        let header = BackupHeader::parse(&header_bytes)?;
        let mut backup = Backup {
            outer,
            header,
            qubes_xml: Vec::new(),
            opts,
        };
        let mut xml = None;
        backup.read_files(
            &mut |name, content| {
                if name != "qubes.xml" {
                    return Err(corrupt("qubes.xml is not the first file"));
                }
                let Content::File { size, data } = content else {
                    return Err(corrupt("qubes.xml"));
                };
                if size > MAX_QUBES_XML {
                    return Err(corrupt("qubes.xml too large"));
                }
                let mut v = Vec::with_capacity(size as usize);
                data.take(size).read_to_end(&mut v).map_err(corrupt)?;
                xml = Some(v);
                Ok(())
            },
            &|_| true,
            Some(1),
        )?;
        backup.qubes_xml = xml.ok_or_else(|| corrupt("no qubes.xml"))?;
        Ok(backup)
    }

    /// The authenticated header.
    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// The backup's `qubes.xml` (authenticated).
    pub fn qubes_xml(&self) -> &[u8] {
        &self.qubes_xml
    }

    /// Reads the files of the backup in order (up to `limit` files), giving each one
    /// `wanted` accepts to `visit`; the others are skipped unread. A visited file is read to
    /// its end whatever `visit` consumed, so every chunk of it is authenticated.
    pub fn read_files(
        &mut self,
        visit: &mut dyn FnMut(&str, Content<'_>) -> Result<()>,
        wanted: &dyn Fn(&str) -> bool,
        limit: Option<usize>,
    ) -> Result<()> {
        let mut count = 0;
        loop {
            if limit.is_some_and(|l| count >= l) {
                return Ok(());
            }
            if self.opts.cancel.load(Ordering::Relaxed) {
                return Err(BackupError::Cancelled);
            }
            let Some(m) = self.outer.peek()?.cloned() else {
                return Ok(());
            };
            let (file, idx) = chunk_parts(&m.name)?;
            let file = file.to_string();
            if idx != 0 {
                return Err(corrupt(format!("unexpected file {}", m.name)));
            }
            count += 1;
            if !wanted(&file) {
                while let Some(m) = self.outer.peek()?.cloned() {
                    match chunk_parts(&m.name) {
                        Ok((f, _)) if f == file => {
                            self.outer.take()?;
                            self.outer.skip(m.size)?;
                            self.outer.end_member(m.size)?;
                        }
                        _ => break,
                    }
                }
                continue;
            }
            self.read_one(&file, visit)?;
        }
    }

    fn read_one(
        &mut self,
        file: &str,
        visit: &mut dyn FnMut(&str, Content<'_>) -> Result<()>,
    ) -> Result<()> {
        let filter = if self.header.compressed {
            self.header.compression_filter.clone()
        } else {
            None
        };
        let spool = if self.outer.is_seekable() {
            None
        } else {
            Some(tempfile::tempfile_in(&self.opts.spool_dir).map_err(|e| {
                BackupError::io(format!("spool in {}", self.opts.spool_dir.display()), e)
            })?)
        };
        let chunks = Chunks {
            outer: &mut self.outer,
            file: file.to_string(),
            next: 0,
            current: None,
            spool,
            header: &self.header,
            opts: &self.opts,
        };
        let is_tree = file.rsplit_once('/').is_some_and(|(d, _)| d == "dom0-home");
        match filter.as_deref() {
            None => consume(file, chunks, is_tree, visit),
            Some("gzip") => consume(
                file,
                flate2::read::MultiGzDecoder::new(chunks),
                is_tree,
                visit,
            ),
            Some(program) => std::thread::scope(|s| {
                let mut child = Command::new(program)
                    .arg("-d")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| BackupError::qubes(format!("cannot run {program}: {e}")))?;
                let mut stdin = child.stdin.take().expect("piped");
                let stdout = child.stdout.take().expect("piped");
                let mut chunks = chunks;
                let feeder = s.spawn(move || -> Result<()> {
                    match io::copy(&mut chunks, &mut stdin) {
                        Ok(_) => Ok(()),
                        Err(e) => match e.downcast::<BackupError>() {
                            Ok(b) => Err(b),
                            Err(e) => Err(BackupError::qubes(format!("{program} -d failed: {e}"))),
                        },
                    }
                });
                let r = consume(file, stdout, is_tree, visit);
                if r.is_err() {
                    let _ = child.kill();
                }
                let fed = feeder
                    .join()
                    .unwrap_or_else(|_| Err(corrupt("decompression")));
                let status = child.wait();
                fed?;
                r?;
                match status {
                    Ok(st) if st.success() => Ok(()),
                    _ => Err(corrupt(format!("{program} -d failed"))),
                }
            }),
        }
    }
}

fn consume<R: Read>(
    file: &str,
    mut stream: R,
    is_tree: bool,
    visit: &mut dyn FnMut(&str, Content<'_>) -> Result<()>,
) -> Result<()> {
    let unwrap_io = |e: io::Error| match e.downcast::<BackupError>() {
        Ok(b) => b,
        Err(e) => corrupt(e),
    };
    if is_tree {
        visit(file, Content::Tree(&mut stream))?;
        io::copy(&mut stream, &mut io::sink()).map_err(unwrap_io)?;
        return Ok(());
    }
    let mut inner = InnerReader::new(stream);
    let entry = inner
        .next_entry()?
        .ok_or_else(|| corrupt(format!("{file}: empty archive")))?;
    if entry.name != file {
        return Err(corrupt(format!("{file} holds {}", entry.name)));
    }
    visit(
        file,
        Content::File {
            size: entry.size,
            data: &mut inner,
        },
    )?;
    io::copy(&mut inner, &mut io::sink()).map_err(unwrap_io)?;
    inner.finish()
}

fn read_small(outer: &mut Outer, name: &str, max: u64) -> Result<Vec<u8>> {
    let m = outer
        .take()?
        .ok_or_else(|| corrupt("empty or not a tar archive"))?;
    if m.name != name {
        return Err(corrupt(format!("expected {name}, found {}", m.name)));
    }
    if m.size > max {
        return Err(corrupt(format!("{name} too large")));
    }
    let mut v = vec![0u8; m.size as usize];
    outer.read_data(&mut v)?;
    outer.end_member(m.size)?;
    Ok(v)
}

/// An authenticated chunk ready to be decrypted.
struct Current {
    decryptor: Decryptor,
    /// Where its ciphertext is (in the source file, or in the spool).
    offset: u64,
    len: u64,
    pos: u64,
}

/// A file's chunks as one plaintext stream: each chunk is authenticated whole before its
/// first byte is decrypted.
struct Chunks<'a> {
    outer: &'a mut Outer,
    file: String,
    next: u32,
    current: Option<Current>,
    spool: Option<File>,
    header: &'a BackupHeader,
    opts: &'a ReadOptions,
}

impl Chunks<'_> {
    /// Authenticates the next chunk of the file; `false` when the file has no more.
    fn next_chunk(&mut self) -> Result<bool> {
        if self.opts.cancel.load(Ordering::Relaxed) {
            return Err(BackupError::Cancelled);
        }
        let Some(m) = self.outer.peek()?.cloned() else {
            return Ok(false);
        };
        match chunk_parts(&m.name) {
            Ok((f, i)) if f == self.file && i == self.next => {}
            Ok((f, _)) if f == self.file => {
                return Err(corrupt(format!("unexpected file {}", m.name)));
            }
            _ => return Ok(false),
        }
        self.outer.take()?;
        if m.size < container::OVERHEAD || m.size > MAX_MEMBER {
            return Err(corrupt(format!("bad size of {}", m.name)));
        }
        let mut hdr = [0u8; HEADER_LEN];
        self.outer.read_data(&mut hdr)?;
        let header = Header::parse(&hdr).map_err(|e| corrupt(format!("{}: {e}", m.name)))?;
        let base = m.name.trim_end_matches(".enc");
        let mut pass = format!("{}!{base}!", self.header.backup_id).into_bytes();
        pass.extend_from_slice(&self.opts.passphrase);
        let keys = header.open(&pass, self.opts.limits).map_err(|e| {
            BackupError::qubes(format!("failed to decrypt {}: {}", m.name, e.message()))
        })?;
        let mut verifier = Verifier::new(&header, &keys);
        let len = m.size - container::OVERHEAD;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        if let Some(s) = &mut self.spool {
            s.set_len(0)
                .and_then(|_| s.seek(SeekFrom::Start(0)))
                .map_err(|e| BackupError::io("spool", e))?;
        }
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.outer.read_data(&mut buf[..n])?;
            verifier.update(&buf[..n]);
            if let Some(s) = &mut self.spool {
                s.write_all(&buf[..n])
                    .map_err(|e| BackupError::io("spool", e))?;
            }
            left -= n as u64;
            if let Some(p) = &self.opts.progress {
                p(n as u64);
            }
        }
        let mut tag = [0u8; MAC_LEN];
        self.outer.read_data(&mut tag)?;
        self.outer.end_member(m.size)?;
        if !verifier.verify(&tag) {
            return Err(BackupError::qubes(format!(
                "failed to decrypt {}: damaged data (MAC mismatch)",
                m.name
            )));
        }
        self.current = Some(Current {
            decryptor: Decryptor::new(&keys),
            offset: if self.spool.is_some() {
                0
            } else {
                m.offset + HEADER_LEN as u64
            },
            len,
            pos: 0,
        });
        self.next += 1;
        Ok(true)
    }

    fn read_plain(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if let Some(c) = &mut self.current {
                if c.pos < c.len {
                    let n = (buf.len() as u64).min(c.len - c.pos) as usize;
                    match &self.spool {
                        Some(s) => s
                            .read_exact_at(&mut buf[..n], c.offset + c.pos)
                            .map_err(|e| BackupError::io("spool", e))?,
                        None => self.outer.read_at(&mut buf[..n], c.offset + c.pos)?,
                    }
                    c.decryptor.decrypt(&mut buf[..n]);
                    c.pos += n as u64;
                    return Ok(n);
                }
                self.current = None;
            }
            if !self.next_chunk()? {
                if self.next == 0 {
                    return Err(corrupt(format!("no data for {}", self.file)));
                }
                return Ok(0);
            }
        }
    }
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_plain(buf).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests;
