//! Where the outer tar stream goes: a file in dom0, written under no name (or a temporary
//! one) and given its name only when complete, or any stream (the standard input of
//! `qubes.Backup` in a qube), for which each member is spooled first because a tar header
//! needs the member's size before its data.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sparse::{END_OF_ARCHIVE, padding, plain_header};

/// GNU tar's record: 20 blocks. Each member is its own archive padded to a record, as the
/// reference's `tar -cO --posix` per file writes it.
const RECORD: u64 = 10240;

/// Receives outer members one after the other.
pub(crate) trait Sink: Send {
    /// Starts a member.
    fn begin(&mut self, name: &str) -> io::Result<()>;
    /// The member's next bytes.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Ends the member (header size, padding, end of archive).
    fn end(&mut self) -> io::Result<()>;
    /// Makes everything durable and, for a file, gives it its name.
    fn finish(self: Box<Self>) -> io::Result<Option<PathBuf>>;
    /// Bytes written so far.
    fn written(&self) -> u64;
}

fn mtime() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The bytes after a member's data: padding, end of archive, padding to a record.
fn trailer(header_len: u64, data_len: u64) -> Vec<u8> {
    let mut t = vec![0u8; padding(data_len)];
    t.extend_from_slice(&END_OF_ARCHIVE);
    let total = header_len + data_len + t.len() as u64;
    t.resize(t.len() + ((RECORD - total % RECORD) % RECORD) as usize, 0);
    t
}

/// A file in dom0.
pub(crate) struct FileSink {
    file: File,
    /// Set when the file system has no `O_TMPFILE`: the temporary name to remove on failure.
    temp_name: Option<PathBuf>,
    target: PathBuf,
    pos: u64,
    member: Option<(String, u64, u64)>,
    published: bool,
}

impl FileSink {
    /// Creates the (nameless) file in `target`'s directory.
    pub(crate) fn create(target: &Path) -> io::Result<FileSink> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let unnamed = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(&dir);
        let (file, temp_name) = match unnamed {
            Ok(f) => (f, None),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                let name = temp_path(target);
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&name)?;
                (f, Some(name))
            }
            Err(e) => return Err(e),
        };
        Ok(FileSink {
            file,
            temp_name,
            target: target.to_path_buf(),
            pos: 0,
            member: None,
            published: false,
        })
    }
}

/// A name next to `target` that says the file is not complete.
fn temp_path(target: &Path) -> PathBuf {
    let base = target
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n: u32 = rand::random();
    target.with_file_name(format!(".{base}.{}-{n:08x}.incomplete", std::process::id()))
}

fn fsync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn cstr(p: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Gives an `O_TMPFILE` file a name.
fn link_unnamed(file: &File, name: &Path) -> io::Result<()> {
    let to = cstr(name)?;
    let empty = c"";
    // SAFETY: valid descriptors and NUL-terminated strings.
    let r = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Without CAP_DAC_READ_SEARCH: through /proc.
    let from = cstr(Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())))?;
    // SAFETY: as above.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Sink for FileSink {
    fn begin(&mut self, name: &str) -> io::Result<()> {
        let header = plain_header(name, 0, mtime(), 0o644);
        self.file.write_all_at(&header, self.pos)?;
        self.member = Some((name.to_string(), self.pos, header.len() as u64));
        self.pos += header.len() as u64;
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, self.pos)?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn end(&mut self) -> io::Result<()> {
        let (name, start, header_len) = self.member.take().expect("a member is open");
        let data_len = self.pos - start - header_len;
        let header = plain_header(&name, data_len, mtime(), 0o644);
        debug_assert_eq!(header.len() as u64, header_len);
        self.file.write_all_at(&header, start)?;
        let t = trailer(header_len, data_len);
        self.file.write_all_at(&t, self.pos)?;
        self.pos += t.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<Option<PathBuf>> {
        self.file.set_len(self.pos)?;
        self.file.sync_all()?;
        match self.temp_name.take() {
            Some(tmp) => {
                if let Err(e) = std::fs::rename(&tmp, &self.target) {
                    self.temp_name = Some(tmp);
                    return Err(e);
                }
            }
            None => {
                // linkat refuses an existing name; the reference overwrites, so link under
                // a temporary name and rename over the target.
                let tmp = temp_path(&self.target);
                link_unnamed(&self.file, &tmp)?;
                if let Err(e) = std::fs::rename(&tmp, &self.target) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        self.published = true;
        fsync_dir(&self.target)?;
        Ok(Some(self.target.clone()))
    }

    fn written(&self) -> u64 {
        self.pos
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if !self.published
            && let Some(tmp) = &self.temp_name
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Any stream; members are spooled to an unnamed file first.
pub(crate) struct StreamSink {
    out: Box<dyn Write + Send>,
    spool: File,
    member: Option<String>,
    written: u64,
}

impl StreamSink {
    /// Spools in `spool_dir`.
    pub(crate) fn new(out: Box<dyn Write + Send>, spool_dir: &Path) -> io::Result<StreamSink> {
        Ok(StreamSink {
            out,
            spool: tempfile::tempfile_in(spool_dir)?,
            member: None,
            written: 0,
        })
    }
}

impl Sink for StreamSink {
    fn begin(&mut self, name: &str) -> io::Result<()> {
        self.spool.set_len(0)?;
        self.spool.seek(SeekFrom::Start(0))?;
        self.member = Some(name.to_string());
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.spool.write_all(data)
    }

    fn end(&mut self) -> io::Result<()> {
        let name = self.member.take().expect("a member is open");
        let data_len = self.spool.stream_position()?;
        let header = plain_header(&name, data_len, mtime(), 0o644);
        self.out.write_all(&header)?;
        self.spool.seek(SeekFrom::Start(0))?;
        let copied = io::copy(&mut (&self.spool).take(data_len), &mut self.out)?;
        if copied != data_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "spool file shrank",
            ));
        }
        let t = trailer(header.len() as u64, data_len);
        self.out.write_all(&t)?;
        self.written += header.len() as u64 + data_len + t.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<Option<PathBuf>> {
        self.out.flush()?;
        Ok(None)
    }

    fn written(&self) -> u64 {
        self.written
    }
}
