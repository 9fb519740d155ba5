//! File operations the file-based drivers share: sparse files, reflink-or-sparse copies,
//! durable renames, disk usage, ISO dates. Every replacement goes through a temporary file
//! and a rename, so a crash leaves either the old file or the new one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// `FICLONE` ioctl request (linux/fs.h: `_IOW(0x94, 9, int)`).
const FICLONE: libc::c_ulong = 0x4004_9409;

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

/// Creates `path`'s directory (and its parents) if missing.
pub fn ensure_parent(path: &Path) -> io::Result<()> {
    fs::create_dir_all(parent(path))
}

/// Writes a new image at `path` (owner-only) through `fill`, with qubes.xml's durable
/// replacement protocol; an interrupted one leaves `<name>~<random>`, which the reflink driver
/// clears at the volume's next start (as the reference does with `*.img*~*`).
fn replace_with(path: &Path, fill: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    ensure_parent(path)?;
    crate::durable::replace_with(path, 0o600, fill)
}

/// Creates (or replaces) `path` as an empty sparse file of `size` bytes.
pub fn create_sparse(path: &Path, size: u64) -> io::Result<()> {
    replace_with(path, |f| f.set_len(size))
}

/// Tries a reflink of `src` into `dst`; `Ok(false)` when the filesystem cannot.
fn try_ficlone(src: &File, dst: &File) -> io::Result<bool> {
    // SAFETY: both descriptors are open files owned by the caller for the whole call; the
    // ioctl reads only the integer argument.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EBADF | libc::EINVAL | libc::EOPNOTSUPP | libc::EXDEV | libc::ENOTTY) => {
            Ok(false)
        }
        _ => Err(e),
    }
}

/// Copies the data extents of `src` into `dst` (same offsets), skipping holes, so that a
/// sparse image stays sparse.
fn sparse_copy(src: &File, dst: &File, len: u64) -> io::Result<()> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut pos: i64 = 0;
    let end = i64::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    while pos < end {
        // SAFETY: lseek on an owned descriptor.
        let data = unsafe { libc::lseek(sfd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(sfd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut off_in = data;
        let mut off_out = data;
        let mut left = (hole.min(end) - data) as usize;
        while left > 0 {
            // SAFETY: offsets are local variables; descriptors are owned.
            let n = unsafe {
                libc::copy_file_range(sfd, &mut off_in, dfd, &mut off_out, left.min(1 << 30), 0)
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                break;
            }
            left -= n as usize;
        }
        pos = hole;
    }
    Ok(())
}

/// Copies `src` to a new inode at `dst`: a reflink if the filesystem can, else a sparse
/// copy; optionally resized to `dst_size`. Returns whether it was a reflink.
pub fn copy_file(src: &Path, dst: &Path, dst_size: Option<u64>) -> io::Result<bool> {
    let s = File::open(src)?;
    let len = s.metadata()?.len();
    let mut reflinked = false;
    replace_with(dst, |d| {
        if dst_size != Some(0) {
            reflinked = try_ficlone(&s, d)?;
            if !reflinked {
                d.set_len(len)?;
                sparse_copy(&s, d, len)?;
            }
        }
        if let Some(n) = dst_size {
            d.set_len(n)?;
        }
        Ok(())
    })?;
    Ok(reflinked)
}

/// Whether `dir` supports reflink copies (a tiny probe file pair inside it).
pub fn reflink_supported(dir: &Path) -> bool {
    let probe = || -> io::Result<bool> {
        let a = tempfile::tempfile_in(dir)?;
        a.write_all_at(b"probe", 0)?;
        let b = tempfile::tempfile_in(dir)?;
        try_ficlone(&a, &b)
    };
    probe().unwrap_or(false)
}

/// Renames durably (fsync of the destination directory).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    crate::durable::sync_dir(parent(to))
}

/// Removes a file; a missing file is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory if it is empty; anything else is left alone.
pub fn remove_empty_dir(path: &Path) {
    let _ = fs::remove_dir(path);
}

/// Resizes an existing file in place (truncate or extend with a hole) and fsyncs it.
pub fn resize(path: &Path, size: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(size)?;
    f.sync_all()
}

/// `LOOP_SET_CAPACITY` ioctl request (linux/loop.h).
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;

/// Tells every loop device backed by `img` that its size changed (what a running qube's
/// block backend sees on Xen), as the reference does after a resize.
pub fn update_loop_capacity(img: &Path) {
    let Ok(real) = fs::canonicalize(img) else {
        return;
    };
    let mut needle = real.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'\n');
    for e in fs::read_dir("/sys/block").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if fs::read(e.path().join("loop/backing_file")).is_ok_and(|b| b == needle)
            && let Ok(dev) = File::open(Path::new("/dev").join(&name))
        {
            // SAFETY: an ioctl without argument on an open loop device.
            unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_CAPACITY as _, 0) };
        }
    }
}

/// Bytes actually allocated for `path` (0 when missing).
pub fn disk_usage(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// Logical size of `path`, if it exists.
pub fn file_size(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

/// `(size, used)` of the filesystem holding `dir`.
pub fn statvfs(dir: &Path) -> Option<(u64, u64)> {
    use std::ffi::CString;
    let c = CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is a plain C struct of integers, for which all zeroes is a value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a writable statvfs struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((
        frsize * s.f_blocks as u64,
        frsize * (s.f_blocks as u64 - s.f_bfree as u64),
    ))
}

/// `qubes.storage.isodate`: UTC `YYYY-MM-DDTHH:MM:SS` for Unix seconds.
pub fn isodate(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Modification time of `path` in Unix seconds.
pub fn mtime(path: &Path) -> Option<i64> {
    fs::metadata(path).ok().map(|m| m.mtime())
}

/// Change time of `path` in Unix seconds.
pub fn ctime(path: &Path) -> Option<i64> {
    fs::metadata(path).ok().map(|m| m.ctime())
}

/// Whether two paths are the same inode.
pub fn same_inode(a: &Path, b: &Path) -> Option<bool> {
    let (x, y) = (fs::metadata(a).ok()?, fs::metadata(b).ok()?);
    Some(x.ino() == y.ino() && x.dev() == y.dev())
}

/// Hard-links `src` at `dst` (replacing `dst`).
pub fn hardlink(src: &Path, dst: &Path) -> io::Result<()> {
    ensure_parent(dst)?;
    remove(dst)?;
    fs::hard_link(src, dst)?;
    crate::durable::sync_dir(parent(dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isodate_matches_python() {
        assert_eq!(isodate(0), "1970-01-01T00:00:00");
        // datetime.fromtimestamp(1700000000, tz=timezone.utc).isoformat()
        assert_eq!(isodate(1_700_000_000), "2023-11-14T22:13:20");
        assert_eq!(isodate(951_782_400), "2000-02-29T00:00:00");
    }

    #[test]
    fn sparse_copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.img");
        create_sparse(&src, 64 << 20).unwrap();
        let f = OpenOptions::new().write(true).open(&src).unwrap();
        f.write_all_at(b"hello", 10 << 20).unwrap();
        drop(f);
        let dst = dir.path().join("sub/b.img");
        copy_file(&src, &dst, None).unwrap();
        let data = fs::read(&dst).unwrap();
        assert_eq!(data.len(), 64 << 20);
        assert_eq!(&data[(10 << 20)..(10 << 20) + 5], b"hello");
        assert!(data[..(10 << 20)].iter().all(|b| *b == 0));
        assert!(disk_usage(&dst) < (1 << 20), "copy stayed sparse");
        copy_file(&src, &dst, Some(1 << 20)).unwrap();
        assert_eq!(file_size(&dst), Some(1 << 20));
    }
}
