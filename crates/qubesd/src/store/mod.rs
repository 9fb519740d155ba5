//! `qubes.xml`: load, durable saves through a journal, and checkpoints (admin-api.md §6).
//!
//! A save appends what changed to `qubes.xml.journal` and syncs it (see [`crate::journal`]):
//! once it returns, the change survives a crash. A checkpoint writes the whole file to
//! `qubes.xml~<random>` in the same directory, fsyncs it, renames it over `qubes.xml` and
//! fsyncs the directory, then empties the journal; the core runs one when it goes idle, the
//! store when the journal is full, and the daemon at shutdown, which also deletes the
//! journal, so a cleanly stopped daemon leaves `qubes.xml` alone, complete, as the reference
//! does. Loading replays a journal left by a crash.
//!
//! What the store remembers of the disk (each qube's element, the head) changes only once
//! the disk holds it, so a failed checkpoint leaves the journal in charge. After a disk error
//! on the journal itself, nothing more is appended to it: saves write `qubes.xml` whole,
//! delete the old journal (it must never be replayed over a newer file) and start a fresh
//! one. A lock file keeps a second daemon from writing the same store.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::journal::{self, Change, Fit, Ident, Journal, Recorded};
use crate::model::{Domain, HostInfo, State};
use crate::storelock::{LockError, StoreLock};

mod load;
mod serialize;

use crate::durable;
pub use crate::durable::{replace_with, write_atomic};
pub use load::parse;
pub use serialize::serialize;

/// Why `qubes.xml` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The file is not a valid store.
    #[error("{path}: {msg}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// The reference's message when qubes.xml changed behind the daemon's back.
pub const MODIFIED_ELSEWHERE: &str = "Someone else modified qubes.xml in the meantime";

/// Largest `qubes.xml` we agree to read (a real one with thousands of qubes is a few MiB).
pub const MAX_STORE_SIZE: u64 = 256 * 1024 * 1024;

/// The on-disk store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    /// Held for the daemon's lifetime: an exclusive `lockf` on `qubes.xml.lock`, given up by
    /// [`Store::close`] at a clean shutdown.
    lock: StoreLock,
    /// Where saves go between checkpoints. `None` after a disk error made it untrustworthy
    /// (or once closed): every save then writes `qubes.xml` whole, deletes the old journal
    /// and tries to start a fresh one.
    journal: Option<Journal>,
    closed: bool,
    /// The state as the disk has it (`qubes.xml` and the journal), serialised: each qube's
    /// `<domain>` element keyed by the `Arc` it was made from. Changed only once the disk
    /// holds what it says. The cache keeps that `Arc` alive, so a qube changed through
    /// `Arc::make_mut` is always a new allocation and never matches a stale entry.
    fragments: BTreeMap<String, (Arc<Domain>, String)>,
    /// The part of the file before the `<domain>` elements, as the disk has it.
    head: String,
    /// Modification time of qubes.xml as we last read or wrote it: a different one at save
    /// time means someone else changed the file, and we refuse to overwrite their change.
    mtime: Option<std::time::SystemTime>,
    /// Tests: the next whole writes of `qubes.xml` fail as a full disk makes them.
    #[cfg(test)]
    fail_writes: bool,
    /// Tests: the next directory syncs fail (after the rename), as a failing disk makes them.
    #[cfg(test)]
    fail_dir_syncs: bool,
    /// Tests: a whole write without a journal stops (as a crash would) once the file is in
    /// place.
    #[cfg(test)]
    crash_after_whole_write: bool,
}

/// How a replacement of `qubes.xml` went.
enum Replaced {
    /// The new file is in place, durably.
    Durable,
    /// `qubes.xml` is as it was.
    Failed(io::Error),
    /// The new file is in place, but its directory could not be synced: a crash may still
    /// bring the old one back.
    InPlace(io::Error),
}

impl Store {
    /// Opens (locking) the store at `path`; returns the state loaded from it (with the
    /// journal a crash left replayed, and checkpointed if the disk lets us), or a fresh
    /// system (written out at once) if the file does not exist.
    pub fn open(path: &Path, host: HostInfo) -> Result<(Store, State), LoadError> {
        let io_err = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io_err)?;
        let lock = StoreLock::acquire(&path.with_extension("xml.lock")).map_err(|e| match e {
            LockError::Io(e) => io_err(e),
            LockError::Held => LoadError::Invalid {
                path: path.to_path_buf(),
                msg: e.to_string(),
            },
        })?;
        let mut store = Store {
            path: path.to_path_buf(),
            lock,
            journal: None,
            closed: false,
            fragments: BTreeMap::new(),
            head: String::new(),
            mtime: None,
            #[cfg(test)]
            fail_writes: false,
            #[cfg(test)]
            fail_dir_syncs: false,
            #[cfg(test)]
            crash_after_whole_write: false,
        };
        store.remove_stale_temp_files(dir);
        let journal_path = journal::path_for(path);
        let recorded = match journal::read(&journal_path) {
            Ok(r) => r,
            // Not a journal this daemon can read (damaged, or another version's): kept aside.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                set_aside(&journal_path, &format!("it is not a journal ({e})"))?;
                None
            }
            // It may hold saves qubes.xml lacks: starting without them would lose them.
            Err(source) => {
                return Err(LoadError::Io {
                    path: journal_path.clone(),
                    source,
                });
            }
        };
        let text = match fs::metadata(path) {
            Ok(meta) if meta.len() > MAX_STORE_SIZE => {
                return Err(LoadError::Invalid {
                    path: path.to_path_buf(),
                    msg: "file too large".into(),
                });
            }
            Ok(meta) => {
                store.mtime = meta.modified().ok();
                Some(fs::read(path).map_err(io_err)?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(e)),
        };
        let Some(text) = text else {
            if recorded.is_some_and(|r| !r.records.is_empty()) {
                set_aside(&journal_path, "there is no qubes.xml it applies to")?;
            }
            let state = new_system(host);
            store.start_journal(Ident::default());
            store.checkpoint(&state).map_err(io_err)?;
            return Ok((store, state));
        };
        let invalid = |msg| LoadError::Invalid {
            path: path.to_path_buf(),
            msg,
        };
        let ident = Ident::of(&text);
        let recorded = recorded.filter(|r| !r.records.is_empty());
        let fit = recorded.as_ref().map(|r| r.fit(ident));
        if let (Some(rec), Some(Fit::Base)) = (&recorded, fit) {
            let base = parse(&text, host.clone()).map_err(invalid)?;
            let replayed = replay(&base, rec);
            let state = parse(replayed.as_bytes(), host).map_err(|msg| LoadError::Invalid {
                path: journal_path.clone(),
                msg: format!("replaying the journal: {msg}"),
            })?;
            tracing::info!(
                "replayed {} unsaved change(s) from {}",
                rec.records.len(),
                journal_path.display()
            );
            // The disk holds the replayed state: qubes.xml and the records, which stay
            // valid (and appended to) until a checkpoint writes them into qubes.xml.
            match Journal::resume(&journal_path, rec) {
                Ok(j) => store.journal = Some(j),
                // A read-only disk, say: the first save writes qubes.xml whole (and only
                // then deletes this journal).
                Err(e) => tracing::error!(
                    "cannot append to {}: {e}; every save writes qubes.xml whole",
                    journal_path.display()
                ),
            }
            store.remember(&state);
            if let Err(e) = store.checkpoint(&state) {
                tracing::error!(
                    "writing qubes.xml after the replay: {e}; going on with the journal"
                );
            }
            return Ok((store, state));
        }
        if fit == Some(Fit::Foreign) {
            set_aside(&journal_path, "qubes.xml was replaced since it was written")?;
        }
        // No journal, an empty one, or one a checkpoint completed: qubes.xml is whole.
        let state = parse(&text, host).map_err(invalid)?;
        store.start_journal(ident);
        store.remember(&state);
        Ok((store, state))
    }

    /// Starts a fresh journal over a `qubes.xml` of identity `base`; without one (the disk
    /// refused), saves write `qubes.xml` whole.
    fn start_journal(&mut self, base: Ident) {
        let path = journal::path_for(&self.path);
        match Journal::create(&path, base, journal::DEFAULT_CAPACITY) {
            Ok(j) => self.journal = Some(j),
            Err(e) => {
                tracing::error!(
                    "cannot make {}: {e}; every save writes qubes.xml whole",
                    path.display()
                );
                self.journal = None;
            }
        }
    }

    /// Removes the `qubes.xml~*` and `qubes.xml.journal~*` files a save or the making of a
    /// journal, interrupted by a crash, left behind; we hold the lock, so nobody else is
    /// writing them.
    fn remove_stale_temp_files(&self, dir: &Path) {
        let Some(name) = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return;
        };
        let prefixes = [format!("{name}~"), format!("{name}.journal~")];
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| file.starts_with(p.as_str())) {
                tracing::info!("removing interrupted save {}", e.path().display());
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Path of `qubes.xml`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the journal holds changes `qubes.xml` does not (a checkpoint would write them).
    pub fn dirty(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| !j.is_empty())
    }

    /// Makes `state` durable: what changed since the last save goes to the journal, in one
    /// record and one sync; when the journal is full (or untrustworthy), `qubes.xml` is
    /// written whole.
    pub fn save(&mut self, state: &State) -> io::Result<()> {
        self.check_writable()?;
        let diff = self.diff(state);
        if diff.changes.is_empty() {
            return Ok(());
        }
        let Some(journal) = self.journal.as_mut() else {
            return self.write_without_journal(state, diff);
        };
        match journal.append(&diff.changes) {
            Ok(true) => {
                self.apply(diff);
                Ok(())
            }
            Ok(false) => self.checkpoint_diff(state, diff),
            Err(e) => {
                // The call fails; its record must not come back at the next start.
                if let Err(w) = journal.withdraw() {
                    tracing::error!("withdrawing a failed journal record: {w}");
                }
                tracing::error!(
                    "appending to the journal: {e}; writing qubes.xml whole from now on"
                );
                self.journal = None;
                Err(e)
            }
        }
    }

    /// Writes `state` whole to `qubes.xml` (temporary file, fsync, rename, directory fsync)
    /// and empties the journal. Only qubes that changed since the last save are serialised
    /// again.
    pub fn checkpoint(&mut self, state: &State) -> io::Result<()> {
        self.check_writable()?;
        let diff = self.diff(state);
        self.checkpoint_diff(state, diff)
    }

    /// [`Store::checkpoint`] of `state`, which differs from the disk by `diff`.
    fn checkpoint_diff(&mut self, state: &State, diff: Diff) -> io::Result<()> {
        let Some(mut journal) = self.journal.take() else {
            return self.write_without_journal(state, diff);
        };
        let xml = self.render(state, &diff);
        let ident = Ident::of(xml.as_bytes());
        let base = journal.base();
        // A failed announcement leaves the journal's header unknown: not appended to again.
        journal.begin_checkpoint(ident)?;
        match self.replace_file(&xml) {
            Replaced::Durable => {}
            Replaced::Failed(e) => {
                // qubes.xml is still the base: the records go on applying to it.
                if self.file_ident() == Some(base) && journal.cancel_checkpoint().is_ok() {
                    self.journal = Some(journal);
                }
                return Err(e);
            }
            Replaced::InPlace(e) => {
                // The new file is in place but a crash may still bring the base back: the
                // header (base, and this file pending) is right for both, so it stays as it
                // is, and nothing more is appended to it.
                tracing::error!("qubes.xml replaced, but its directory is not synced: {e}");
                self.written(diff);
                return Ok(());
            }
        }
        self.written(diff);
        match journal.restart(ident) {
            Ok(()) => self.journal = Some(journal),
            // The save is done (qubes.xml holds it); the header is unknown, so this journal
            // is not appended to again.
            Err(e) => {
                tracing::error!("restarting the journal: {e}; writing qubes.xml whole from now on")
            }
        }
        Ok(())
    }

    /// After a failed save: if it cost the journal (a disk error), writes `state` (the one
    /// before the failed call) whole, so that a record the failed call may have left is gone
    /// from the disk as well.
    pub fn recover(&mut self, state: &State) {
        if self.journal.is_none()
            && !self.closed
            && let Err(e) = self.write_without_journal(state, self.diff(state))
        {
            tracing::error!("writing qubes.xml after a failed save: {e}");
        }
    }

    /// A save without a journal to trust: `qubes.xml` whole, then the old journal deleted
    /// (it must never be replayed over the new file) and a fresh one started.
    fn write_without_journal(&mut self, state: &State, diff: Diff) -> io::Result<()> {
        let xml = self.render(state, &diff);
        let ident = Ident::of(xml.as_bytes());
        let journal_path = journal::path_for(&self.path);
        // A journal whose base is this very text would replay its records over it after a
        // crash: it goes first. (qubes.xml is then that base, or a checkpoint after which
        // nothing was appended, or a file the journal does not belong to: none needs it.)
        if let Ok(Some(rec)) = journal::read(&journal_path)
            && !rec.records.is_empty()
            && rec.base == ident
        {
            durable::remove(&journal_path)?;
        }
        match self.replace_file(&xml) {
            Replaced::Durable => {}
            Replaced::Failed(e) => return Err(e),
            Replaced::InPlace(e) => {
                // In place, but a crash may bring the old file back: the old journal stays.
                tracing::error!("qubes.xml replaced, but its directory is not synced: {e}");
                self.written(diff);
                return Ok(());
            }
        }
        #[cfg(test)]
        if self.crash_after_whole_write {
            return Ok(());
        }
        self.written(diff);
        match durable::remove(&journal_path) {
            Ok(()) => self.start_journal(ident),
            Err(e) => tracing::warn!("removing {}: {e}", journal_path.display()),
        }
        Ok(())
    }

    /// Replaces `qubes.xml` with `xml`, durably if the disk lets us (see [`Replaced`]).
    fn replace_file(&self, xml: &str) -> Replaced {
        let Err(e) = self.write_file(xml) else {
            return Replaced::Durable;
        };
        // Only a failed directory sync leaves the new file in place: try it once more.
        if self.file_ident() != Some(Ident::of(xml.as_bytes())) {
            return Replaced::Failed(e);
        }
        match self.sync_dir() {
            Ok(()) => Replaced::Durable,
            Err(_) => Replaced::InPlace(e),
        }
    }

    /// Replaces `qubes.xml` with `xml`, durably.
    fn write_file(&self, xml: &str) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_writes {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        #[cfg(test)]
        if self.fail_dir_syncs {
            write_atomic(&self.path, xml.as_bytes(), 0o660)?;
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        write_atomic(&self.path, xml.as_bytes(), 0o660)
    }

    /// Syncs the directory of `qubes.xml`.
    fn sync_dir(&self) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_dir_syncs {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        durable::sync_dir(self.path.parent().unwrap_or(Path::new(".")))
    }

    /// The identity of `qubes.xml` as it is now, if it can be read.
    fn file_ident(&self) -> Option<Ident> {
        fs::read(&self.path).ok().map(|t| Ident::of(&t))
    }

    fn file_mtime(&self) -> Option<std::time::SystemTime> {
        fs::metadata(&self.path).and_then(|m| m.modified()).ok()
    }

    /// `state`'s whole `qubes.xml`, from what the disk has and `diff` (what differs).
    fn render(&self, state: &State, diff: &Diff) -> String {
        let mut head = self.head.as_str();
        let mut fresh: HashMap<&str, &str> = HashMap::new();
        for c in &diff.changes {
            match c {
                Change::Head(h) => head = h,
                Change::Put(name, text) => {
                    fresh.insert(name, text);
                }
                Change::Remove(_) => {}
            }
        }
        let total: usize = self.fragments.values().map(|(_, t)| t.len()).sum();
        let mut xml = String::with_capacity(head.len() + total + serialize::TAIL.len() + 4096);
        xml.push_str(head);
        for d in state.domains_sorted() {
            let text = fresh
                .get(d.name.as_str())
                .copied()
                .or_else(|| self.fragments.get(&d.name).map(|(_, t)| t.as_str()));
            if let Some(text) = text {
                xml.push_str(text);
            }
        }
        xml.push_str(serialize::TAIL);
        xml
    }

    /// Refuses to write a closed store, or over a `qubes.xml` someone else changed.
    fn check_writable(&mut self) -> io::Result<()> {
        if self.closed || !self.lock.held() {
            return Err(io::Error::other("the store is closed"));
        }
        let current = self.file_mtime();
        if current.is_some() && self.mtime.is_some() && current != self.mtime {
            return Err(io::Error::other(MODIFIED_ELSEWHERE));
        }
        Ok(())
    }

    /// What differs between `state` and the disk, as journal changes.
    fn diff(&self, state: &State) -> Diff {
        let mut changes = Vec::new();
        let mut arcs = HashMap::new();
        let head = serialize::head(state);
        if head != self.head {
            changes.push(Change::Head(head));
        }
        // Both maps are sorted by name: walk them side by side. A qube that did not change
        // shares its `Arc` with the cache, and costs one pointer comparison.
        let mut cached = self.fragments.iter().peekable();
        for (name, arc) in &state.domains {
            let mut unchanged = false;
            while let Some((cname, (carc, _))) = cached.peek() {
                if Arc::ptr_eq(carc, arc) {
                    // The same qube (a state's keys are its qubes' names).
                    unchanged = true;
                    cached.next();
                    break;
                }
                match cname.as_str().cmp(name) {
                    std::cmp::Ordering::Less => {
                        changes.push(Change::Remove((*cname).clone()));
                        cached.next();
                    }
                    std::cmp::Ordering::Equal => {
                        cached.next();
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            if !unchanged {
                let mut text = serialize::domain(arc);
                // Kept until the qube changes: no slack (a thousand qubes, ~1 MB).
                text.shrink_to_fit();
                changes.push(Change::Put(name.to_string(), text));
                arcs.insert(name.to_string(), arc.clone());
            }
        }
        for (cname, _) in cached {
            changes.push(Change::Remove(cname.clone()));
        }
        Diff { changes, arcs }
    }

    /// Records that `qubes.xml` was just written and holds `diff`.
    fn written(&mut self, diff: Diff) {
        self.mtime = self.file_mtime();
        self.apply(diff);
    }

    /// Records that the disk now holds `diff`.
    fn apply(&mut self, diff: Diff) {
        let Diff { changes, mut arcs } = diff;
        for c in changes {
            match c {
                Change::Head(h) => self.head = h,
                Change::Remove(name) => {
                    self.fragments.remove(&name);
                }
                Change::Put(name, text) => {
                    if let Some(arc) = arcs.remove(&name) {
                        self.fragments.insert(name, (arc, text));
                    }
                }
            }
        }
    }

    /// Records that the disk holds `state` (just loaded).
    fn remember(&mut self, state: &State) {
        let diff = self.diff(state);
        self.apply(diff);
    }

    /// Gives the store up at a clean shutdown, after the last checkpoint: deletes the journal
    /// if `qubes.xml` holds everything (the reference leaves no file beside it), removes the
    /// lock file, and refuses every later save, since another daemon may own the store from
    /// then on.
    pub fn close(&mut self) {
        self.closed = true;
        if let Some(j) = self.journal.take() {
            if j.is_empty() {
                if let Err(e) = j.remove() {
                    tracing::warn!("removing the journal: {e}");
                }
            } else {
                tracing::error!(
                    "{} keeps changes qubes.xml lacks; the next start applies them",
                    journal::path_for(&self.path).display()
                );
            }
        }
        self.lock.release();
    }
}

/// A save's changes, and the qubes whose elements they hold.
struct Diff {
    changes: Vec<Change>,
    arcs: HashMap<String, Arc<Domain>>,
}

/// A fresh system: the reference's first start (with the default pools' directories).
fn new_system(host: HostInfo) -> State {
    let base = Path::new(&host.base_dir);
    let state = State::new_system(
        host.clone(),
        crate::storage::reflink::default_pool_driver(base),
    );
    for pool in &state.pools {
        if let Err(e) = crate::storage::pool_driver(pool).and_then(|drv| drv.setup(pool)) {
            tracing::warn!("setting up pool {}: {e}", pool.name);
        }
    }
    state
}

/// `qubes.xml`'s text after the journal's records, applied in order to the file they
/// apply to (loaded as `base`).
fn replay(base: &State, rec: &Recorded) -> String {
    let mut head = serialize::head(base);
    let mut domains: BTreeMap<String, String> = base
        .domains
        .iter()
        .map(|(name, d)| (name.to_string(), serialize::domain(d)))
        .collect();
    for change in rec.records.iter().flatten() {
        match change {
            Change::Head(h) => head.clone_from(h),
            Change::Put(name, text) => {
                domains.insert(name.clone(), text.clone());
            }
            Change::Remove(name) => {
                domains.remove(name);
            }
        }
    }
    let mut out = head;
    for text in domains.values() {
        out.push_str(text);
    }
    out.push_str(serialize::TAIL);
    out
}

/// Moves a journal that does not apply aside (`qubes.xml.journal.unapplied-<seconds>-<n>`,
/// never over an earlier one), keeping what it holds for a human to look at; the daemon does
/// not start if it cannot (a new journal would take the file's place).
fn set_aside(journal_path: &Path, why: &str) -> Result<(), LoadError> {
    let io_err = |source| LoadError::Io {
        path: journal_path.to_path_buf(),
        source,
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for n in 0..1000u32 {
        let mut aside = journal_path.as_os_str().to_owned();
        aside.push(format!(".unapplied-{secs}-{n}"));
        let aside = PathBuf::from(aside);
        // A second name for the file, then the first one removed: nothing is overwritten.
        match fs::hard_link(journal_path, &aside) {
            Ok(()) => {
                tracing::error!(
                    "{} holds changes but {why}: moved to {}",
                    journal_path.display(),
                    aside.display()
                );
                return durable::remove(journal_path).map_err(io_err);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(io_err(io::Error::other(
        "no free name to set the journal aside",
    )))
}

/// The store's content as the disk holds it: `qubes.xml` with the journal's records
/// applied, as the next checkpoint will write it. For a reader beside a running daemon
/// (tests, tools): the journal is read first, so a checkpoint between the two reads is
/// seen whole; a moment when they do not fit together is read again.
pub fn durable_text(path: &Path, host: HostInfo) -> io::Result<String> {
    let journal_path = journal::path_for(path);
    let mut tries = 0;
    loop {
        tries += 1;
        let recorded = match journal::read(&journal_path) {
            Ok(r) => r,
            // Read while its header was being rewritten (or not a journal at all).
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                if tries < 20 {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                None
            }
            Err(e) => return Err(e),
        };
        let text = fs::read(path)?;
        let fit = recorded
            .as_ref()
            .map(|r| (r.fit(Ident::of(&text)), r.records.is_empty()));
        match (recorded, fit) {
            (Some(rec), Some((Fit::Base, false))) => {
                let base = parse(&text, host.clone()).map_err(io::Error::other)?;
                // In the file's own order, as the next checkpoint will write it.
                let replayed = parse(replay(&base, &rec).as_bytes(), host.clone());
                return Ok(serialize(&replayed.map_err(io::Error::other)?));
            }
            (_, Some((Fit::Base | Fit::Checkpointed, _)) | Some((Fit::Foreign, true))) => {}
            // No journal, or one read while it was rewritten: look again a few times.
            _ if tries < 20 && journal_path.exists() => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
            _ => {}
        }
        return String::from_utf8(text).map_err(io::Error::other);
    }
}

#[cfg(test)]
mod tests;
