//! The last stage: cuts each file's (compressed) stream into chunks, seals every chunk in an
//! scrypt container with its own passphrase, and writes the outer members in order.
//!
//! Key derivation is the expensive part of a chunk, so a key generator thread derives the
//! keys of the chunks most likely to come next while data flows; it derives one key at a
//! time, which bounds its memory to one scrypt working set.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use super::sink::Sink;
use crate::container::{KdfParams, SealKey, Sealer};
use crate::error::{BackupError, Result};

/// What flows to the sealer, in order (see [`Stage::run`]).
pub(crate) enum Item {
    /// A whole outer member (`backup-header`, its `.hmac`).
    Raw { name: String, data: Vec<u8> },
    /// The start of a file's stream; `name` is its path in the archive.
    Start { name: String },
    /// Stream bytes.
    Data(Vec<u8>),
    /// The end of the current file's stream.
    End,
    /// Everything was sent: make the backup durable.
    Finish,
}

#[derive(Default)]
struct KeyState {
    queue: VecDeque<String>,
    running: Option<String>,
    done: HashMap<String, Result<SealKey>>,
    stop: bool,
}

/// Derives keys on a thread of its own, one at a time.
pub(crate) struct Keygen {
    state: Arc<(Mutex<KeyState>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    prefix: String,
}

impl Keygen {
    /// Passphrases are `<backup-id>!<chunk>!<passphrase>`.
    pub(crate) fn start(backup_id: &str, passphrase: &[u8], params: KdfParams) -> Keygen {
        let state = Arc::new((Mutex::new(KeyState::default()), Condvar::new()));
        let s = state.clone();
        let passphrase = passphrase.to_vec();
        let prefix = format!("{backup_id}!");
        let p2 = prefix.clone();
        let thread = std::thread::Builder::new()
            .name("backup-keygen".into())
            .spawn(move || {
                let (lock, cv) = &*s;
                loop {
                    let name = {
                        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if st.stop {
                                return;
                            }
                            if let Some(n) = st.queue.pop_front() {
                                st.running = Some(n.clone());
                                break n;
                            }
                            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    let mut pass = format!("{p2}{name}!").into_bytes();
                    pass.extend_from_slice(&passphrase);
                    let key = SealKey::new(&pass, params);
                    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
                    st.running = None;
                    // Keep only a few unclaimed keys.
                    if st.done.len() > 8 {
                        st.done.clear();
                    }
                    st.done.insert(name, key);
                    cv.notify_all();
                }
            })
            .ok();
        Keygen {
            state,
            thread,
            prefix,
        }
    }

    /// Asks for `name`'s key ahead of time.
    pub(crate) fn prefetch(&self, name: &str) {
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        if st.done.contains_key(name)
            || st.running.as_deref() == Some(name)
            || st.queue.iter().any(|n| n == name)
        {
            return;
        }
        st.queue.push_back(name.to_string());
        cv.notify_all();
    }

    /// `name`'s key, waiting for it (first in line if it was not asked for).
    pub(crate) fn get(&self, name: &str) -> Result<SealKey> {
        if self.thread.is_none() {
            return Err(BackupError::qubes("cannot start the key derivation thread"));
        }
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !st.done.contains_key(name) && st.running.as_deref() != Some(name) {
            st.queue.retain(|n| n != name);
            st.queue.push_front(name.to_string());
            cv.notify_all();
        }
        loop {
            if let Some(k) = st.done.remove(name) {
                return k;
            }
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The passphrase prefix (for tests and the header).
    #[allow(dead_code)]
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Keygen {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.state;
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            st.stop = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct OpenChunk {
    sealer: Sealer,
    written: u64,
}

/// The sealing stage.
pub(crate) struct Stage {
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) keygen: Keygen,
    pub(crate) chunk_size: u64,
    /// Every file's archive path, in order, to derive the next file's first key early.
    pub(crate) files: Vec<String>,
}

struct FileState {
    name: String,
    index: u32,
    any: bool,
    chunk: Option<OpenChunk>,
}

/// What the sealer reports when done.
pub(crate) struct StageResult {
    pub(crate) path: Option<std::path::PathBuf>,
    pub(crate) bytes: u64,
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::qubes(format!("ERROR: Failed to write the backup ({what}): {e}"))
}

impl Stage {
    fn chunk_name(file: &str, index: u32) -> String {
        format!("{file}.{index:03}")
    }

    fn open(&mut self, f: &mut FileState) -> Result<()> {
        let name = Self::chunk_name(&f.name, f.index);
        self.keygen
            .prefetch(&Self::chunk_name(&f.name, f.index + 1));
        let key = self.keygen.get(&name)?;
        let sealer = key.seal();
        self.sink
            .begin(&format!("{name}.enc"))
            .map_err(io_err(&name))?;
        self.sink.write(sealer.header()).map_err(io_err(&name))?;
        f.chunk = Some(OpenChunk { sealer, written: 0 });
        f.any = true;
        Ok(())
    }

    fn close(&mut self, f: &mut FileState) -> Result<()> {
        if let Some(c) = f.chunk.take() {
            let name = Self::chunk_name(&f.name, f.index);
            self.sink.write(&c.sealer.finish()).map_err(io_err(&name))?;
            self.sink.end().map_err(io_err(&name))?;
            f.index += 1;
        }
        Ok(())
    }

    fn data(&mut self, f: &mut FileState, mut data: Vec<u8>) -> Result<()> {
        let mut rest: &mut [u8] = &mut data;
        while !rest.is_empty() {
            if f.chunk.is_none() {
                self.open(f)?;
            }
            let c = f.chunk.as_mut().expect("opened");
            let take = ((self.chunk_size - c.written) as usize).min(rest.len());
            let (now, later) = rest.split_at_mut(take);
            c.sealer.seal(now);
            c.written += take as u64;
            let full = c.written == self.chunk_size;
            self.sink.write(now).map_err(io_err(&f.name))?;
            if full {
                self.close(f)?;
            }
            rest = later;
        }
        Ok(())
    }

    /// Consumes `(sequence, item)` pairs in sequence order; every consumed item gives back
    /// a token on `tokens`. Returns only after [`Item::Finish`]; a closed channel before it
    /// means the producer gave up, and nothing is published.
    pub(crate) fn run(
        mut self,
        items: Receiver<(u64, Item)>,
        tokens: SyncSender<()>,
    ) -> Result<StageResult> {
        let mut pending: BTreeMap<u64, Item> = BTreeMap::new();
        let mut next = 0u64;
        let mut file: Option<FileState> = None;
        let mut file_pos = 0usize;
        if let Some(first) = self.files.first() {
            self.keygen.prefetch(&Self::chunk_name(first, 0));
        }
        loop {
            let item = match pending.remove(&next) {
                Some(i) => i,
                None => {
                    let Ok((seq, item)) = items.recv() else {
                        return Err(BackupError::qubes(super::produce::ABORTED));
                    };
                    if seq != next {
                        pending.insert(seq, item);
                        continue;
                    }
                    item
                }
            };
            next += 1;
            match item {
                Item::Raw { name, data } => {
                    self.sink.begin(&name).map_err(io_err(&name))?;
                    self.sink.write(&data).map_err(io_err(&name))?;
                    self.sink.end().map_err(io_err(&name))?;
                }
                Item::Start { name } => {
                    file_pos = self
                        .files
                        .iter()
                        .position(|f| *f == name)
                        .map_or(file_pos, |p| p + 1);
                    if let Some(n) = self.files.get(file_pos) {
                        self.keygen.prefetch(&Self::chunk_name(n, 0));
                    }
                    file = Some(FileState {
                        name,
                        index: 0,
                        any: false,
                        chunk: None,
                    });
                }
                Item::Data(d) => {
                    let mut f = file
                        .take()
                        .ok_or_else(|| BackupError::qubes("data outside a file"))?;
                    let r = self.data(&mut f, d);
                    file = Some(f);
                    r?;
                }
                Item::End => {
                    let mut f = file
                        .take()
                        .ok_or_else(|| BackupError::qubes("end outside a file"))?;
                    if !f.any {
                        self.open(&mut f)?;
                    }
                    self.close(&mut f)?;
                }
                Item::Finish => {
                    let bytes = self.sink.written();
                    let path = self.sink.finish().map_err(io_err("finishing"))?;
                    return Ok(StageResult { path, bytes });
                }
            }
            let _ = tokens.send(());
        }
    }
}
