//! The write-ahead journal of `qubes.xml` (`qubes.xml.journal`): what makes a committed
//! write durable in one small `fdatasync` instead of a rewrite of the whole store.
//!
//! A save appends one record — the `<domain>` elements that changed, the qubes removed, and
//! the part of the file before `<domains>` when it changed — and syncs it; `qubes.xml`
//! itself is rewritten later, at a checkpoint (when the daemon goes idle, when the journal is
//! full, at shutdown). The header names the `qubes.xml` the records apply to (its *base*:
//! length and CRC-32) and, while a checkpoint runs, the one it is writing (*pending*), which
//! holds every record. Loading reads `qubes.xml`: if it is the base, the records are replayed
//! on it in order; if it is the pending one, it is complete as it is; if it is neither, the
//! journal belongs to another file and is set aside, never applied.
//!
//! The file is written with zeros to its full size when it is made, so an append rewrites
//! blocks that already exist and its sync flushes data only (0.1 ms here, against 1.2 ms for
//! the durable rewrite of a 1 MB `qubes.xml`).
//!
//! Layout: two header slots, then records.
//!
//! - header slots (at 0 and [`SLOT_SIZE`]; [`HEADER_SIZE`] bytes reserved): magic, a counter,
//!   the generation, the base, the pending identity if any, and a CRC-32 of the slot. Each
//!   header write goes to the slot the last one did not use, with the next counter, so a
//!   write torn by a crash leaves the previous header whole; the valid slot with the higher
//!   counter is the header.
//! - record: magic, generation, sequence number, payload length, CRC-32 of those and the
//!   payload, payload. A record of another generation (left from before the last restart), a
//!   torn one (bad CRC) or zeros end the journal.
//!
//! The journal is a file of ours, but a damaged disk must not crash the daemon: everything
//! read from it is checked, and every length is bounded by the file's size.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes reserved for the two header slots at the start of the file.
pub const HEADER_SIZE: u64 = 4096;
/// Bytes of one header slot (a disk sector: written whole or not at all on most disks, and
/// the other slot covers the rest).
pub const SLOT_SIZE: u64 = 512;
/// Size of a new journal: a few hundred saves of a 1000-qube system before a checkpoint.
pub const DEFAULT_CAPACITY: u64 = 2 * 1024 * 1024;
/// Largest journal we agree to read.
pub const MAX_JOURNAL_SIZE: u64 = 256 * 1024 * 1024;

const HEADER_MAGIC: &[u8; 8] = b"QXMLJRN2";
const RECORD_MAGIC: &[u8; 4] = b"QJR1";
/// magic, generation, sequence, payload length, CRC.
const RECORD_HEAD: usize = 4 + 8 + 8 + 4 + 4;

/// Which `qubes.xml` a journal applies to: its length and CRC-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ident {
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 of the content.
    pub crc: u32,
}

impl Ident {
    /// The identity of `content`.
    pub fn of(content: &[u8]) -> Ident {
        Ident {
            len: content.len() as u64,
            crc: crc32fast::hash(content),
        }
    }
}

/// One change a record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The part of `qubes.xml` before the `<domains>` elements (labels, pools, global
    /// properties), whole.
    Head(String),
    /// A qube's `<domain>` element, whole, by the qube's name.
    Put(String, String),
    /// A qube removed, by name.
    Remove(String),
}

/// What a journal's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Header {
    counter: u64,
    generation: u64,
    base: Ident,
    pending: Option<Ident>,
}

/// What a journal file holds.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The `qubes.xml` the records apply to.
    pub base: Ident,
    /// The `qubes.xml` a checkpoint was writing: it holds every record already.
    pub pending: Option<Ident>,
    /// The records, oldest first, each a list of changes.
    pub records: Vec<Vec<Change>>,
    /// The generation the header names (records of others are not the journal's).
    pub generation: u64,
    /// The header's counter.
    pub counter: u64,
    /// Where the records end.
    pub end: u64,
}

/// How a `qubes.xml` of some identity relates to a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It is the base: replay the records on it.
    Base,
    /// A checkpoint wrote it: it holds every record; use it as it is.
    Checkpointed,
    /// Another file: the journal does not belong to it.
    Foreign,
}

impl Recorded {
    /// How a `qubes.xml` of identity `id` relates to these records.
    pub fn fit(&self, id: Ident) -> Fit {
        if self.base == id {
            Fit::Base
        } else if self.pending == Some(id) {
            Fit::Checkpointed
        } else {
            Fit::Foreign
        }
    }
}

/// An open journal, appended to by the store's single writer.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    capacity: u64,
    header: Header,
    /// Where the next record goes.
    end: u64,
    /// Sequence number of the next record.
    seq: u64,
}

impl Journal {
    /// Makes a new, empty journal at `path` (replacing any file there, atomically), applying
    /// to a `qubes.xml` of identity `base`.
    pub fn create(path: &Path, base: Ident, capacity: u64) -> io::Result<Journal> {
        let capacity = capacity.max(HEADER_SIZE * 2);
        let header = Header {
            counter: 1,
            generation: next_generation(0),
            base,
            pending: None,
        };
        crate::durable::replace_with(path, 0o600, |f| {
            let zeros = vec![0u8; 64 * 1024];
            let mut at = 0;
            while at < capacity {
                let n = zeros.len().min((capacity - at) as usize);
                f.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            f.write_all_at(&header_bytes(&header), slot_offset(header.counter))
        })?;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            capacity,
            header,
            end: HEADER_SIZE,
            seq: 0,
        })
    }

    /// Opens the journal at `path` as [`read`] found it (`rec`), its records kept: after a
    /// crash, to go on appending to it (or to checkpoint them).
    pub fn resume(path: &Path, rec: &Recorded) -> io::Result<Journal> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let capacity = file.metadata()?.len();
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            capacity,
            header: Header {
                counter: rec.counter,
                generation: rec.generation,
                base: rec.base,
                pending: rec.pending,
            },
            end: rec.end,
            seq: rec.records.len() as u64,
        })
    }

    /// Whether records were appended since the last restart.
    pub fn is_empty(&self) -> bool {
        self.end == HEADER_SIZE
    }

    /// Bytes of records appended since the last restart.
    pub fn used(&self) -> u64 {
        self.end - HEADER_SIZE
    }

    /// The `qubes.xml` the records apply to.
    pub fn base(&self) -> Ident {
        self.header.base
    }

    /// Appends one record of `changes` and syncs it. `Ok(false)` when it does not fit: the
    /// caller checkpoints instead (which empties the journal). After an error the record may
    /// or may not be on the disk: [`Journal::withdraw`] it.
    pub fn append(&mut self, changes: &[Change]) -> io::Result<bool> {
        let payload = encode(changes);
        let total = (RECORD_HEAD + payload.len()) as u64;
        if self.end + total > self.capacity {
            return Ok(false);
        }
        let generation = self.header.generation;
        let mut rec = Vec::with_capacity(total as usize);
        rec.extend_from_slice(RECORD_MAGIC);
        rec.extend_from_slice(&generation.to_le_bytes());
        rec.extend_from_slice(&self.seq.to_le_bytes());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = record_crc(generation, self.seq, &payload);
        rec.extend_from_slice(&crc.to_le_bytes());
        rec.extend_from_slice(&payload);
        self.file.write_all_at(&rec, self.end)?;
        self.file.sync_data()?;
        self.end += total;
        self.seq += 1;
        Ok(true)
    }

    /// Undoes a failed [`Journal::append`] as far as the disk lets us: zeros where its record
    /// began, so a restart does not replay a call that was answered with a failure.
    pub fn withdraw(&mut self) -> io::Result<()> {
        self.file.write_all_at(&[0u8; 4], self.end)?;
        self.file.sync_data()
    }

    /// Notes, durably, that `qubes.xml` is about to be replaced by content of identity
    /// `next`, which holds every record: a restart that finds it uses it as it is.
    pub fn begin_checkpoint(&mut self, next: Ident) -> io::Result<()> {
        self.write_header(Header {
            pending: Some(next),
            ..self.header
        })
    }

    /// The checkpoint did not replace `qubes.xml`: the records go on applying to the base
    /// alone (a later record must not be taken for part of the checkpoint).
    pub fn cancel_checkpoint(&mut self) -> io::Result<()> {
        self.write_header(Header {
            pending: None,
            ..self.header
        })
    }

    /// `qubes.xml` now holds everything (identity `base`): the journal starts over, empty,
    /// under a new generation. On an error the header on the disk may be the old one or the
    /// new one: the caller must not append to this journal again (see the store).
    pub fn restart(&mut self, base: Ident) -> io::Result<()> {
        self.write_header(Header {
            counter: self.header.counter,
            generation: next_generation(self.header.generation),
            base,
            pending: None,
        })?;
        self.end = HEADER_SIZE;
        self.seq = 0;
        Ok(())
    }

    /// Deletes the file (at a clean shutdown, after the last checkpoint).
    pub fn remove(self) -> io::Result<()> {
        fs::remove_file(&self.path)
    }

    /// Writes `h` to the slot the last header did not use, with the next counter, and syncs.
    fn write_header(&mut self, h: Header) -> io::Result<()> {
        let counter = self
            .header
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("the journal's header counter is exhausted"))?;
        let h = Header { counter, ..h };
        self.file
            .write_all_at(&header_bytes(&h), slot_offset(h.counter))?;
        self.file.sync_data()?;
        self.header = h;
        Ok(())
    }
}

/// Where the header with `counter` goes: the two slots in turn.
fn slot_offset(counter: u64) -> u64 {
    (counter % 2) * SLOT_SIZE
}

/// A new generation number, different from `old` and (with overwhelming odds) from any
/// generation the file held before.
fn next_generation(old: u64) -> u64 {
    loop {
        let g = rand::random::<u64>();
        if g != old && g != 0 {
            return g;
        }
    }
}

fn header_bytes(h: &Header) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(HEADER_MAGIC);
    out.extend_from_slice(&h.counter.to_le_bytes());
    out.extend_from_slice(&h.generation.to_le_bytes());
    out.extend_from_slice(&h.base.len.to_le_bytes());
    out.extend_from_slice(&h.base.crc.to_le_bytes());
    let p = h.pending.unwrap_or_default();
    out.push(u8::from(h.pending.is_some()));
    out.extend_from_slice(&p.len.to_le_bytes());
    out.extend_from_slice(&p.crc.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The header in one slot, if it is intact.
fn parse_slot(slot: &[u8]) -> Option<Header> {
    let mut h = Reader::new(slot);
    if h.take(8)? != HEADER_MAGIC {
        return None;
    }
    let counter = h.u64()?;
    let generation = h.u64()?;
    let base = Ident {
        len: h.u64()?,
        crc: h.u32()?,
    };
    let has_pending = h.take(1)?[0] == 1;
    let pending = Ident {
        len: h.u64()?,
        crc: h.u32()?,
    };
    let covered = h.pos;
    if h.u32()? != crc32fast::hash(slot.get(..covered)?) {
        return None;
    }
    Some(Header {
        counter,
        generation,
        base,
        pending: has_pending.then_some(pending),
    })
}

fn record_crc(generation: u64, seq: u64, payload: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&generation.to_le_bytes());
    c.update(&seq.to_le_bytes());
    c.update(&(payload.len() as u32).to_le_bytes());
    c.update(payload);
    c.finalize()
}

/// Reads the journal at `path`: `Ok(None)` when there is none (or it is empty). A file
/// larger than [`MAX_JOURNAL_SIZE`] or with neither header slot intact (a header is written
/// before anything that depends on it, and the other slot keeps the one before, so that takes
/// a damaged disk or another program's file) is an [`io::ErrorKind::InvalidData`] error.
pub fn read(path: &Path) -> io::Result<Option<Recorded>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.len() > MAX_JOURNAL_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_JOURNAL_SIZE} bytes"),
        ));
    }
    let data = fs::read(path)?;
    if data.is_empty() {
        return Ok(None);
    }
    parse(&data)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no intact header"))
}

/// Parses a journal's bytes (see [`read`]).
pub fn parse(data: &[u8]) -> Option<Recorded> {
    let slot = |i: u64| {
        let at = (i * SLOT_SIZE) as usize;
        data.get(at..at + SLOT_SIZE as usize).and_then(parse_slot)
    };
    let header = match (slot(0), slot(1)) {
        (Some(a), Some(b)) => {
            if a.counter > b.counter {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    let mut out = Recorded {
        base: header.base,
        pending: header.pending,
        records: Vec::new(),
        generation: header.generation,
        counter: header.counter,
        end: HEADER_SIZE,
    };
    let mut r = Reader::new(data);
    r.pos = HEADER_SIZE as usize;
    let mut expect_seq = 0u64;
    while let Some(changes) = next_record(&mut r, header.generation, expect_seq) {
        out.records.push(changes);
        out.end = r.pos as u64;
        expect_seq += 1;
    }
    Some(out)
}

/// The record at the reader's position, if it is an intact record of `generation` with
/// sequence number `seq`.
fn next_record(r: &mut Reader, generation: u64, seq: u64) -> Option<Vec<Change>> {
    if r.take(4)? != RECORD_MAGIC || r.u64()? != generation || r.u64()? != seq {
        return None;
    }
    let len = r.u32()?;
    let crc = r.u32()?;
    let payload = r.take(len as usize)?;
    if record_crc(generation, seq, payload) != crc {
        return None;
    }
    decode(payload)
}

/// Payload: per change a tag byte (`H`, `P`, `R`), then length-prefixed strings.
fn encode(changes: &[Change]) -> Vec<u8> {
    let size: usize = changes
        .iter()
        .map(|c| match c {
            Change::Head(t) | Change::Remove(t) => 5 + t.len(),
            Change::Put(n, t) => 9 + n.len() + t.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    let put = |s: &str, out: &mut Vec<u8>| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    for c in changes {
        match c {
            Change::Head(t) => {
                out.push(b'H');
                put(t, &mut out);
            }
            Change::Put(n, t) => {
                out.push(b'P');
                put(n, &mut out);
                put(t, &mut out);
            }
            Change::Remove(n) => {
                out.push(b'R');
                put(n, &mut out);
            }
        }
    }
    out
}

fn decode(payload: &[u8]) -> Option<Vec<Change>> {
    let mut r = Reader::new(payload);
    let mut out = Vec::new();
    while r.pos < payload.len() {
        let tag = r.take(1)?[0];
        out.push(match tag {
            b'H' => Change::Head(r.string()?),
            b'P' => Change::Put(r.string()?, r.string()?),
            b'R' => Change::Remove(r.string()?),
            _ => return None,
        });
    }
    Some(out)
}

/// Bounds-checked reading of little-endian fields.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The journal of the store at `store_path`.
pub fn path_for(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(n: &str, t: &str) -> Change {
        Change::Put(n.into(), t.into())
    }

    /// A new journal of `capacity` bytes over `base`, in a directory of its own (kept alive by
    /// the returned guard), and its path.
    fn new_journal(base: Ident, capacity: u64) -> (tempfile::TempDir, PathBuf, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let j = Journal::create(&path, base, capacity).unwrap();
        (dir, path, j)
    }

    #[test]
    fn records_survive_a_reopen_in_order() {
        let base = Ident::of(b"base");
        let (_dir, path, mut j) = new_journal(base, 64 * 1024);
        assert!(j.is_empty());
        assert!(j.append(&[put("a", "<a/>")]).unwrap());
        assert!(
            j.append(&[Change::Head("h".into()), Change::Remove("b".into())])
                .unwrap()
        );
        let got = read(&path).unwrap().unwrap();
        assert_eq!(got.base, base);
        assert_eq!(got.pending, None);
        assert_eq!(
            got.records,
            vec![
                vec![put("a", "<a/>")],
                vec![Change::Head("h".into()), Change::Remove("b".into())]
            ]
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), 64 * 1024);
        // Resumed, it goes on after the last record.
        let mut j = Journal::resume(&path, &got).unwrap();
        j.append(&[put("c", "3")]).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().records.len(), 3);
    }

    #[test]
    fn a_checkpoint_is_announced_cancelled_or_ends_in_a_restart() {
        let (old, new) = (Ident::of(b"old"), Ident::of(b"new"));
        let (_dir, path, mut j) = new_journal(old, 64 * 1024);
        j.append(&[put("a", "1")]).unwrap();
        j.begin_checkpoint(new).unwrap();
        let got = read(&path).unwrap().unwrap();
        assert_eq!(got.fit(old), Fit::Base);
        assert_eq!(got.fit(new), Fit::Checkpointed);
        assert_eq!(got.fit(Ident::of(b"other")), Fit::Foreign);
        assert_eq!(got.records.len(), 1);
        // A checkpoint that did not replace the file: records go on applying to the base.
        j.cancel_checkpoint().unwrap();
        let got = read(&path).unwrap().unwrap();
        assert_eq!(got.fit(new), Fit::Foreign);
        j.append(&[put("a", "2")]).unwrap();
        j.begin_checkpoint(new).unwrap();
        j.restart(new).unwrap();
        j.append(&[put("b", "2")]).unwrap();
        // The older, longer records are still in the file, but of another generation.
        let got = read(&path).unwrap().unwrap();
        assert_eq!(got.records, vec![vec![put("b", "2")]]);
        assert_eq!(got.fit(new), Fit::Base);
        assert_eq!(got.fit(old), Fit::Foreign);
    }

    #[test]
    fn a_torn_header_leaves_the_one_before() {
        let (old, new) = (Ident::of(b"old"), Ident::of(b"new"));
        let (_dir, path, mut j) = new_journal(old, 64 * 1024);
        j.append(&[put("a", "1")]).unwrap();
        j.begin_checkpoint(new).unwrap();
        let before_restart = fs::read(&path).unwrap();
        j.restart(new).unwrap();
        // The restart's header torn: the announcement before it still holds.
        let mut data = fs::read(&path).unwrap();
        let slot = slot_offset(j.header.counter) as usize;
        data[slot + 20] ^= 0xff;
        let got = parse(&data).unwrap();
        assert_eq!(got.fit(new), Fit::Checkpointed);
        assert_eq!(got.fit(old), Fit::Base);
        assert_eq!(got.records.len(), 1);
        // And the announcement torn: the header before it, records applying to the base.
        let mut data = before_restart;
        let slot = slot_offset(j.header.counter - 1) as usize;
        data[slot + 20] ^= 0xff;
        let got = parse(&data).unwrap();
        assert_eq!(got.fit(old), Fit::Base);
        assert_eq!(got.fit(new), Fit::Foreign);
    }

    #[test]
    fn a_torn_record_ends_the_journal_and_a_withdrawn_one_is_gone() {
        let (_dir, path, mut j) = new_journal(Ident::default(), 64 * 1024);
        j.append(&[put("a", "1")]).unwrap();
        let second = HEADER_SIZE + j.used();
        j.append(&[put("b", "22222")]).unwrap();
        j.append(&[put("c", "3")]).unwrap();
        let mut data = fs::read(&path).unwrap();
        data[second as usize + RECORD_HEAD + 10] ^= 0xff;
        assert_eq!(parse(&data).unwrap().records, vec![vec![put("a", "1")]]);
        // Both header slots damaged: nothing is read from the journal at all.
        data[9] ^= 0xff;
        data[SLOT_SIZE as usize + 9] ^= 0xff;
        assert!(parse(&data).is_none());
        // A record whose append failed, withdrawn.
        let mut j = Journal::create(&path, Ident::default(), 64 * 1024).unwrap();
        j.append(&[put("a", "1")]).unwrap();
        let end = j.end;
        j.append(&[put("b", "2")]).unwrap();
        j.end = end;
        j.seq -= 1;
        j.withdraw().unwrap();
        assert_eq!(read(&path).unwrap().unwrap().records.len(), 1);
    }

    #[test]
    fn a_full_journal_refuses_the_record() {
        let (_dir, _path, mut j) = new_journal(Ident::default(), 2 * HEADER_SIZE);
        let big = "x".repeat(HEADER_SIZE as usize);
        assert!(!j.append(&[put("a", &big)]).unwrap());
        assert!(j.is_empty());
        assert!(j.append(&[put("a", "small")]).unwrap());
    }

    #[test]
    fn garbage_is_no_journal() {
        assert!(parse(b"").is_none());
        assert!(parse(&[0u8; 8192]).is_none());
        let mut h = header_bytes(&Header {
            counter: 1,
            generation: 7,
            ..Header::default()
        });
        h.resize(HEADER_SIZE as usize, 0);
        // A record whose length points past the end of the file.
        h.extend_from_slice(RECORD_MAGIC);
        h.extend_from_slice(&7u64.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        assert!(parse(&h).unwrap().records.is_empty());
    }
}
