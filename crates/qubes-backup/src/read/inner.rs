//! The inner layer: the tar stream of one file, after authentication, decryption and
//! decompression. Reads regular members, GNU sparse members (`S`, as GNU `tar --sparse`
//! writes for file-pool images) and PAX sparse 1.0 members (as the reference's `tarwriter`
//! writes for block devices); holes come out as zeros. Sizes and maps are bounded.

use std::io::{self, Read};

use super::outer::{checksum_ok, number, pax_records, ustar_name};
use crate::error::{BackupError, Result};

/// Most sparse map entries accepted.
const MAX_ENTRIES: usize = 1 << 20;
const MAX_META: u64 = 1 << 20;

fn corrupt(what: impl std::fmt::Display) -> BackupError {
    BackupError::qubes(format!("Damaged data inside the backup: {what}"))
}

/// One member's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path in the inner archive.
    pub name: String,
    /// Logical size.
    pub size: u64,
}

/// Reads the members of an inner tar stream.
pub struct InnerReader<R: Read> {
    input: R,
    /// Current member: data extents `(offset, len)` in stored order, logical size.
    map: Vec<(u64, u64)>,
    /// First extent not yet passed.
    map_at: usize,
    size: u64,
    /// Logical position in the current member.
    pos: u64,
    /// Stored bytes of the current member still unread (including padding at the end).
    stored_left: u64,
    padding: u64,
}

/// An I/O error from below: the backup's own error if it is one.
fn from_io(e: io::Error) -> BackupError {
    match e.downcast::<BackupError>() {
        Ok(b) => b,
        Err(e) => corrupt(e),
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(corrupt("truncated")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(from_io(e)),
        }
    }
    Ok(true)
}

impl<R: Read> InnerReader<R> {
    /// Wraps a decompressed stream.
    pub fn new(input: R) -> Self {
        InnerReader {
            input,
            map: Vec::new(),
            map_at: 0,
            size: 0,
            pos: 0,
            stored_left: 0,
            padding: 0,
        }
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            if !read_full(&mut self.input, &mut buf[..k])? {
                return Err(corrupt("truncated"));
            }
            n -= k as u64;
        }
        Ok(())
    }

    fn meta(&mut self, size: u64) -> Result<Vec<u8>> {
        if size > MAX_META {
            return Err(corrupt("oversized metadata"));
        }
        let mut data = vec![0u8; size as usize];
        if !read_full(&mut self.input, &mut data)? {
            return Err(corrupt("truncated"));
        }
        self.skip((512 - size % 512) % 512)?;
        Ok(data)
    }

    /// The next regular member (directories and the like are skipped); `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        // Whatever is left of the previous member.
        let left = self.stored_left + self.padding;
        self.stored_left = 0;
        self.padding = 0;
        self.skip(left)?;
        let mut pax: Vec<(String, String)> = Vec::new();
        let mut long_name = None;
        loop {
            let mut h = [0u8; 512];
            if !read_full(&mut self.input, &mut h)? || h.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            if !checksum_ok(&h) {
                return Err(corrupt("bad tar header checksum"));
            }
            let size = number(&h[124..136])?;
            match h[156] {
                b'x' => pax.extend(pax_records(&self.meta(size)?)?),
                b'g' => {
                    self.meta(size)?;
                }
                b'L' => {
                    let d = self.meta(size)?;
                    let n = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                    long_name = Some(String::from_utf8_lossy(&d[..n]).into_owned());
                }
                b'0' | 0 | b'7' | b'S' => {
                    let get = |k: &str| {
                        pax.iter()
                            .rev()
                            .find(|(pk, _)| pk == k)
                            .map(|(_, v)| v.clone())
                    };
                    let stored = match get("size") {
                        Some(s) => s.parse().map_err(|_| corrupt("size"))?,
                        None => size,
                    };
                    let mut name = get("path")
                        .or(long_name.take())
                        .unwrap_or_else(|| ustar_name(&h));
                    self.padding = (512 - stored % 512) % 512;
                    self.stored_left = stored;
                    self.pos = 0;
                    self.map_at = 0;
                    if h[156] == b'S' {
                        self.gnu_sparse(&h)?;
                    } else if get("GNU.sparse.major").as_deref() == Some("1")
                        && get("GNU.sparse.minor").as_deref() == Some("0")
                    {
                        name = get("GNU.sparse.name").unwrap_or(name);
                        let real = get("GNU.sparse.realsize")
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| corrupt("sparse size"))?;
                        self.pax_sparse(real)?;
                    } else {
                        self.map = vec![(0, stored)];
                        self.size = stored;
                    }
                    return Ok(Some(Entry {
                        name,
                        size: self.size,
                    }));
                }
                _ => {
                    // Directories, links: nothing to read for a single-file archive.
                    let s = size + (512 - size % 512) % 512;
                    self.skip(s)?;
                }
            }
            if pax.len() > 1024 {
                return Err(corrupt("too many PAX records"));
            }
        }
    }

    fn check_map(&mut self, real: u64) -> Result<()> {
        let mut end = 0u64;
        let mut data = 0u64;
        for &(off, len) in &self.map {
            let e = off.checked_add(len).ok_or_else(|| corrupt("sparse map"))?;
            if off < end || e > real {
                return Err(corrupt("sparse map"));
            }
            end = e;
            data += len;
        }
        if data > self.stored_left {
            return Err(corrupt("sparse map larger than the data"));
        }
        self.size = real;
        Ok(())
    }

    /// Old GNU sparse: up to 4 entries in the header, more in extension blocks.
    fn gnu_sparse(&mut self, h: &[u8; 512]) -> Result<()> {
        self.map.clear();
        let push = |map: &mut Vec<(u64, u64)>, e: &[u8]| -> Result<()> {
            let off = number(&e[..12])?;
            let len = number(&e[12..24])?;
            if off != 0 || len != 0 {
                if map.len() >= MAX_ENTRIES {
                    return Err(corrupt("sparse map too large"));
                }
                map.push((off, len));
            }
            Ok(())
        };
        for i in 0..4 {
            push(&mut self.map, &h[386 + i * 24..386 + (i + 1) * 24])?;
        }
        let real = number(&h[483..495])?;
        let mut extended = h[482] != 0;
        while extended {
            let mut b = [0u8; 512];
            if !read_full(&mut self.input, &mut b)? {
                return Err(corrupt("truncated"));
            }
            for i in 0..21 {
                push(&mut self.map, &b[i * 24..(i + 1) * 24])?;
            }
            extended = b[504] != 0;
        }
        self.check_map(real)
    }

    /// PAX 1.0: the map is text at the start of the data, padded to a block.
    fn pax_sparse(&mut self, real: u64) -> Result<()> {
        let mut consumed = 0u64;
        let mut block = [0u8; 512];
        let mut at = 512usize;
        let mut next_number = |me: &mut Self| -> Result<u64> {
            let mut v: u64 = 0;
            let mut digits = 0;
            loop {
                if at == 512 {
                    if !read_full(&mut me.input, &mut block)? {
                        return Err(corrupt("truncated"));
                    }
                    consumed += 512;
                    at = 0;
                }
                let b = block[at];
                at += 1;
                match b {
                    b'0'..=b'9' if digits < 20 => {
                        v = v
                            .checked_mul(10)
                            .and_then(|v| v.checked_add((b - b'0') as u64))
                            .ok_or_else(|| corrupt("sparse map"))?;
                        digits += 1;
                    }
                    b'\n' if digits > 0 => return Ok(v),
                    _ => return Err(corrupt("sparse map")),
                }
            }
        };
        let n = next_number(self)? as usize;
        if n > MAX_ENTRIES {
            return Err(corrupt("sparse map too large"));
        }
        let mut map = Vec::with_capacity(n);
        for _ in 0..n {
            let off = next_number(self)?;
            let len = next_number(self)?;
            if len > 0 {
                map.push((off, len));
            }
        }
        self.map = map;
        self.stored_left = self
            .stored_left
            .checked_sub(consumed)
            .ok_or_else(|| corrupt("sparse map"))?;
        self.check_map(real)
    }

    /// Reads the current member's logical content (holes as zeros).
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        // Drop extents already passed.
        while let Some(&(off, len)) = self.map.get(self.map_at) {
            if off + len <= self.pos {
                self.map_at += 1;
            } else {
                break;
            }
        }
        let want = (buf.len() as u64).min(self.size - self.pos);
        match self.map.get(self.map_at).copied() {
            Some((off, len)) if off <= self.pos => {
                let n = want.min(off + len - self.pos) as usize;
                if !read_full(&mut self.input, &mut buf[..n])? {
                    return Err(corrupt("truncated"));
                }
                self.stored_left = self.stored_left.saturating_sub(n as u64);
                self.pos += n as u64;
                Ok(n)
            }
            next => {
                let hole_end = next.map_or(self.size, |(off, _)| off);
                let n = want.min(hole_end - self.pos) as usize;
                buf[..n].fill(0);
                self.pos += n as u64;
                Ok(n)
            }
        }
    }

    /// Reads to the end of the stream, checking that nothing but end blocks follow.
    pub fn finish(mut self) -> Result<()> {
        while self.next_entry()?.is_some() {}
        let mut rest = [0u8; 8192];
        loop {
            match self.input.read(&mut rest) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(from_io(e)),
            }
        }
    }
}

impl<R: Read> Read for InnerReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_data(buf).map_err(io::Error::other)
    }
}
