//! The outer layer: concatenated tar archives of chunk files, read from an untrusted source
//! with a parser of our own that allocates nothing the input decides beyond small caps.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use crate::error::{BackupError, Result};

/// Largest outer member accepted (the reference writes 100 MiB chunks).
pub const MAX_MEMBER: u64 = 1 << 30;
/// Largest PAX or long-name record block accepted.
const MAX_META: u64 = 64 << 10;

/// Where the backup comes from.
pub enum Source {
    /// A file: chunks are authenticated while read, then decrypted from the file again.
    File(File),
    /// Any stream (a qube's `qubes.Restore` output): chunks are spooled.
    Stream(Box<dyn Read + Send>),
}

/// A member's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path in the archive.
    pub name: String,
    /// Data size.
    pub size: u64,
    /// Offset of its data in the source.
    pub offset: u64,
}

pub(crate) struct Outer {
    source: Source,
    pos: u64,
    peeked: Option<Member>,
    eof: bool,
}

fn corrupt(what: impl std::fmt::Display) -> BackupError {
    BackupError::qubes(format!(
        "The backup is damaged or not a Qubes backup: {what}"
    ))
}

/// Parses an octal (or GNU base-256) numeric field.
pub(crate) fn number(field: &[u8]) -> Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or_else(|| corrupt("number out of range"))?;
        }
        return Ok(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&s).map_err(|_| corrupt("bad number"))?;
    u64::from_str_radix(s, 8).map_err(|_| corrupt("bad number"))
}

/// Whether a header block's checksum is right.
pub(crate) fn checksum_ok(h: &[u8; 512]) -> bool {
    let Ok(want) = number(&h[148..156]) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    sum == want
}

/// The ustar name (prefix/name).
pub(crate) fn ustar_name(h: &[u8; 512]) -> String {
    let cut = |f: &[u8]| {
        let n = f.iter().position(|&b| b == 0).unwrap_or(f.len());
        String::from_utf8_lossy(&f[..n]).into_owned()
    };
    let name = cut(&h[..100]);
    let prefix = if &h[257..262] == b"ustar" {
        cut(&h[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Parses PAX records into (key, value) pairs.
pub(crate) fn pax_records(data: &[u8]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| corrupt("bad PAX record"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > sp + 1 && l <= rest.len())
            .ok_or_else(|| corrupt("bad PAX record"))?;
        let rec = &rest[sp + 1..len];
        let rec = rec
            .strip_suffix(b"\n")
            .ok_or_else(|| corrupt("bad PAX record"))?;
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| corrupt("bad PAX record"))?;
        out.push((
            String::from_utf8_lossy(&rec[..eq]).into_owned(),
            String::from_utf8_lossy(&rec[eq + 1..]).into_owned(),
        ));
        rest = &rest[len..];
    }
    Ok(out)
}

impl Outer {
    pub(crate) fn new(source: Source) -> Outer {
        Outer {
            source,
            pos: 0,
            peeked: None,
            eof: false,
        }
    }

    pub(crate) fn is_seekable(&self) -> bool {
        matches!(self.source, Source::File(_))
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end before the first byte.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let r = match &mut self.source {
                Source::File(f) => f.read_at(&mut buf[got..], self.pos),
                Source::Stream(s) => s.read(&mut buf[got..]),
            };
            match r {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(corrupt("truncated")),
                Ok(n) => {
                    got += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BackupError::io("reading the backup", e)),
            }
        }
        Ok(true)
    }

    /// Reads up to `buf.len()` bytes of the current member's data (the caller tracks how much
    /// is left).
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<()> {
        if !self.fill(buf)? && !buf.is_empty() {
            return Err(corrupt("truncated"));
        }
        Ok(())
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, mut n: u64) -> Result<()> {
        if let Source::File(_) = self.source {
            self.pos += n;
            return Ok(());
        }
        let mut buf = vec![0u8; 64 << 10];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_data(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` of a file source again.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match &self.source {
            Source::File(f) => f
                .read_exact_at(buf, offset)
                .map_err(|e| BackupError::io("reading the backup", e)),
            Source::Stream(_) => Err(BackupError::qubes("not seekable")),
        }
    }

    fn padding_after(size: u64) -> u64 {
        (512 - size % 512) % 512
    }

    /// The next member's header without consuming it.
    pub(crate) fn peek(&mut self) -> Result<Option<&Member>> {
        if self.peeked.is_none() && !self.eof {
            self.peeked = self.next_header()?;
            if self.peeked.is_none() {
                self.eof = true;
            }
        }
        Ok(self.peeked.as_ref())
    }

    /// Takes the peeked (or next) member; its data is next to read.
    pub(crate) fn take(&mut self) -> Result<Option<Member>> {
        self.peek()?;
        Ok(self.peeked.take())
    }

    /// After a member's data: skips its padding.
    pub(crate) fn end_member(&mut self, size: u64) -> Result<()> {
        self.skip(Self::padding_after(size))
    }

    fn next_header(&mut self) -> Result<Option<Member>> {
        let mut long_name: Option<String> = None;
        let mut pax_path: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let mut h = [0u8; 512];
            if !self.fill(&mut h)? {
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                // End-of-archive and record padding between the concatenated archives.
                continue;
            }
            if !checksum_ok(&h) {
                return Err(corrupt("bad tar header checksum"));
            }
            let size = number(&h[124..136])?;
            match h[156] {
                b'x' | b'g' | b'L' => {
                    if size > MAX_META {
                        return Err(corrupt("oversized tar metadata"));
                    }
                    let mut data = vec![0u8; size as usize];
                    self.read_data(&mut data)?;
                    self.end_member(size)?;
                    match h[156] {
                        b'x' => {
                            for (k, v) in pax_records(&data)? {
                                match k.as_str() {
                                    "path" => pax_path = Some(v),
                                    "size" => {
                                        pax_size = Some(v.parse().map_err(|_| corrupt("size"))?)
                                    }
                                    _ => {}
                                }
                            }
                        }
                        b'L' => {
                            let n = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                            long_name = Some(String::from_utf8_lossy(&data[..n]).into_owned());
                        }
                        _ => {}
                    }
                }
                b'0' | 0 | b'7' => {
                    let size = pax_size.unwrap_or(size);
                    let name = pax_path.or(long_name).unwrap_or_else(|| ustar_name(&h));
                    let offset = self.pos;
                    return Ok(Some(Member { name, size, offset }));
                }
                b'5' => {}
                other => {
                    return Err(corrupt(format!(
                        "unexpected tar entry type {:?}",
                        other as char
                    )));
                }
            }
        }
    }
}
