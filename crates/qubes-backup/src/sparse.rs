//! Inner tar streams (admin-api.md §9.3): one member per file, volume images as PAX sparse
//! 1.0 members like the reference's `qubes.tarwriter` (`GNU.sparse.*` records, the map at
//! the start of the data), which GNU tar and the reference restore read.
//!
//! Holes come from `SEEK_DATA`/`SEEK_HOLE`, so a hole is never read; block devices (and file
//! systems without those) are scanned for zero blocks instead, as `tarwriter` does.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};

/// Tar block size.
pub const BLOCK: u64 = 512;

/// Granularity of the zero scan.
const ZERO_BLOCK: usize = 4096;

/// Most extents kept in a map: a hostile or pathological file (alternating data and holes)
/// must not make the map grow without bound; small holes are then stored as data.
pub const MAX_EXTENTS: usize = 1 << 16;

/// Where a file has data: `(offset, length)` extents in order, and the file's length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SparseMap {
    /// Data extents, sorted, not overlapping, not touching.
    pub extents: Vec<(u64, u64)>,
    /// Logical length of the file.
    pub len: u64,
}

impl SparseMap {
    /// A map with one extent covering everything.
    pub fn dense(len: u64) -> SparseMap {
        SparseMap {
            extents: if len > 0 { vec![(0, len)] } else { Vec::new() },
            len,
        }
    }

    /// Whether the file has no holes.
    pub fn is_dense(&self) -> bool {
        self.extents.iter().map(|e| e.1).sum::<u64>() == self.len
    }

    /// Bytes of data.
    pub fn data_len(&self) -> u64 {
        self.extents.iter().map(|e| e.1).sum()
    }

    fn push(&mut self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.extents.last_mut()
            && last.0 + last.1 == off
        {
            last.1 += len;
            return;
        }
        self.extents.push((off, len));
        if self.extents.len() > MAX_EXTENTS {
            self.coarsen();
        }
    }

    /// Merges extents separated by the smallest holes until the map has at most half of
    /// [`MAX_EXTENTS`] entries.
    fn coarsen(&mut self) {
        let mut min_hole = ZERO_BLOCK as u64;
        while self.extents.len() > MAX_EXTENTS / 2 {
            min_hole *= 2;
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.extents.len());
            for &(off, len) in &self.extents {
                match merged.last_mut() {
                    Some(last) if off - (last.0 + last.1) < min_hole => last.1 = off + len - last.0,
                    _ => merged.push((off, len)),
                }
            }
            self.extents = merged;
        }
    }

    /// The map as `tarwriter` writes it: the last entry reaches the end of the file (a
    /// zero-length entry at the end when the file ends in a hole).
    fn entries(&self) -> Vec<(u64, u64)> {
        let mut e = self.extents.clone();
        match e.last() {
            Some(&(off, len)) if off + len == self.len => {}
            _ => e.push((self.len, 0)),
        }
        e
    }
}

/// Length of a regular file or block device.
pub fn source_len(file: &File) -> io::Result<u64> {
    let meta = file.metadata()?;
    if meta.file_type().is_block_device() {
        let mut f = file;
        io::Seek::seek(&mut f, io::SeekFrom::End(0))
    } else {
        Ok(meta.len())
    }
}

fn seek(file: &File, off: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(off)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
    // SAFETY: lseek on a descriptor we own; no memory is passed.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// Finds the data of `file` (`len` bytes). `cancelled` is asked now and then.
pub fn scan(file: &File, len: u64, cancelled: &dyn Fn() -> bool) -> io::Result<SparseMap> {
    let is_blk = file.metadata()?.file_type().is_block_device();
    if !is_blk && let Some(map) = scan_holes(file, len)? {
        return Ok(map);
    }
    scan_zeros(file, len, cancelled)
}

/// `SEEK_DATA`/`SEEK_HOLE`; `None` where the file system does not support them.
fn scan_holes(file: &File, len: u64) -> io::Result<Option<SparseMap>> {
    let mut map = SparseMap {
        extents: Vec::new(),
        len,
    };
    let mut pos = 0u64;
    while pos < len {
        let data = match seek(file, pos, libc::SEEK_DATA) {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if data >= len {
            break;
        }
        let hole = seek(file, data, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        map.push(data, hole - data);
        pos = hole;
    }
    Ok(Some(map))
}

fn is_zero(b: &[u8]) -> bool {
    let (pre, mid, post) = {
        // SAFETY: u8 -> u64 alignment split; every bit pattern is a valid u64.
        unsafe { b.align_to::<u64>() }
    };
    pre.iter().all(|&x| x == 0) && mid.iter().all(|&x| x == 0) && post.iter().all(|&x| x == 0)
}

/// Reads everything and leaves out zero blocks (`tarwriter.get_sparse_map`).
fn scan_zeros(file: &File, len: u64, cancelled: &dyn Fn() -> bool) -> io::Result<SparseMap> {
    let mut map = SparseMap {
        extents: Vec::new(),
        len,
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        if cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let want = (len - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..want], pos)?;
        for (i, b) in buf[..want].chunks(ZERO_BLOCK).enumerate() {
            if !is_zero(b) {
                map.push(pos + (i * ZERO_BLOCK) as u64, b.len() as u64);
            }
        }
        pos += want as u64;
    }
    Ok(map)
}

/// Octal field, NUL terminated, zero padded.
fn octal(field: &mut [u8], value: u64) {
    let n = field.len() - 1;
    let s = format!("{:0w$o}", value, w = n);
    field[..n].copy_from_slice(s.as_bytes());
    field[n] = 0;
}

/// Largest size an 11-digit octal field holds.
const MAX_OCTAL_SIZE: u64 = 0o77777777777;

/// One ustar header block.
fn ustar(name: &str, size: u64, mtime: u64, mode: u32, typeflag: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    let nb = name.as_bytes();
    if nb.len() <= 100 {
        h[..nb.len()].copy_from_slice(nb);
    } else if let Some(split) = (0..nb.len())
        .rev()
        .find(|&i| nb[i] == b'/' && i <= 155 && nb.len() - i - 1 <= 100)
    {
        h[345..345 + split].copy_from_slice(&nb[..split]);
        h[..nb.len() - split - 1].copy_from_slice(&nb[split + 1..]);
    } else {
        // The real name travels in a PAX `path` record; keep a truncated one here.
        h[..100].copy_from_slice(&nb[..100]);
    }
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(
        &mut h[124..136],
        if size > MAX_OCTAL_SIZE { 0 } else { size },
    );
    octal(&mut h[136..148], mtime.min(0o77777777777));
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// One PAX record: `<len> <key>=<value>\n`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK as usize;
    if rem != 0 {
        out.resize(out.len() + BLOCK as usize - rem, 0);
    }
}

fn with_pax(name: &str, records: &[(&str, String)], header: [u8; 512]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    if !records.is_empty() {
        let mut data = Vec::new();
        for (k, v) in records {
            pax_record(&mut data, k, v);
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        let pax_name: String = format!("./PaxHeaders/{base}").chars().take(100).collect();
        out.extend_from_slice(&ustar(&pax_name, data.len() as u64, 0, 0o644, b'x'));
        out.extend_from_slice(&data);
        pad(&mut out);
    }
    out.extend_from_slice(&header);
    out
}

fn needs_path_record(name: &str) -> bool {
    let nb = name.as_bytes();
    nb.len() > 100 && !(0..nb.len()).any(|i| nb[i] == b'/' && i <= 155 && nb.len() - i - 1 <= 100)
}

/// Header blocks of a plain regular file member of `size` bytes.
pub fn plain_header(name: &str, size: u64, mtime: u64, mode: u32) -> Vec<u8> {
    let mut records = Vec::new();
    if needs_path_record(name) {
        records.push(("path", name.to_string()));
    }
    if size > MAX_OCTAL_SIZE {
        records.push(("size", size.to_string()));
    }
    with_pax(name, &records, ustar(name, size, mtime, mode, b'0'))
}

/// The header blocks and the map text (padded) of a PAX sparse 1.0 member; the data of the
/// extents follows, then padding to a block.
pub fn sparse_header(name: &str, map: &SparseMap, mtime: u64, mode: u32) -> Vec<u8> {
    let entries = map.entries();
    let mut text = format!("{}\n", entries.len()).into_bytes();
    for (off, len) in &entries {
        text.extend_from_slice(format!("{off}\n{len}\n").as_bytes());
    }
    pad(&mut text);
    let stored = text.len() as u64 + map.data_len();
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (d, b),
        None => (".", name),
    };
    let member = format!("{dir}/GNUSparseFile.{}/{base}", std::process::id());
    let mut records = vec![
        ("GNU.sparse.major", "1".to_string()),
        ("GNU.sparse.minor", "0".to_string()),
        ("GNU.sparse.name", name.to_string()),
        ("GNU.sparse.realsize", map.len.to_string()),
    ];
    if needs_path_record(&member) {
        records.push(("path", member.clone()));
    }
    if stored > MAX_OCTAL_SIZE {
        records.push(("size", stored.to_string()));
    }
    let mut out = with_pax(name, &records, ustar(&member, stored, mtime, mode, b'0'));
    out.extend_from_slice(&text);
    out
}

/// Bytes of padding after `data_len` bytes of member data.
pub fn padding(data_len: u64) -> usize {
    ((BLOCK - data_len % BLOCK) % BLOCK) as usize
}

/// The end of a tar archive: two zero blocks.
pub const END_OF_ARCHIVE: [u8; 1024] = [0; 1024];

#[cfg(test)]
mod tests;
