//! `qubes.xml`: load, durable saves through a journal, and checkpoints (admin-api.md §6).
//!
//! A save appends what changed to `qubes.xml.journal` and syncs it (see [`crate::journal`]):
//! once it returns, the change survives a crash. A checkpoint writes the whole file to
//! `qubes.xml~<random>` in the same directory, fsyncs it, renames it over `qubes.xml` and
//! fsyncs the directory, then empties the journal; the core runs one when it goes idle, the
//! store when the journal is full, and the daemon at shutdown, which also deletes the
//! journal, so a cleanly stopped daemon leaves `qubes.xml` alone, complete, as the reference
//! does. Loading replays a journal left by a crash. A lock file keeps a second daemon from
//! writing the same store.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::journal::{self, Change, Ident, Journal, Recorded};
use crate::model::{Domain, HostInfo, State};
use crate::storelock::{LockError, StoreLock};

mod load;
mod serialize;

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
    /// Where saves go between checkpoints; `None` once closed.
    journal: Option<Journal>,
    /// The state as the disk has it (`qubes.xml` and the journal), serialised: each qube's
    /// `<domain>` element keyed by the `Arc` it was made from. The cache keeps that `Arc`
    /// alive, so a qube changed through `Arc::make_mut` is always a new allocation and never
    /// matches a stale entry.
    fragments: BTreeMap<String, (Arc<Domain>, String)>,
    /// The part of the file before the `<domain>` elements, as the disk has it.
    head: String,
    /// Modification time of qubes.xml as we last read or wrote it: a different one at save
    /// time means someone else changed the file, and we refuse to overwrite their change.
    mtime: Option<std::time::SystemTime>,
}

impl Store {
    /// Opens (locking) the store at `path`; returns the state loaded from it (with the
    /// journal a crash left replayed, and checkpointed), or a fresh system (written out at
    /// once) if the file does not exist.
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
            fragments: BTreeMap::new(),
            head: String::new(),
            mtime: None,
        };
        store.remove_stale_temp_files(dir);
        let journal_path = journal::path_for(path);
        let recorded = journal::read(&journal_path).map_err(|source| LoadError::Io {
            path: journal_path.clone(),
            source,
        })?;
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
                set_aside(&journal_path, "there is no qubes.xml it applies to");
            }
            let state = new_system(host);
            store.start_journal(Ident::default()).map_err(io_err)?;
            store.checkpoint(&state).map_err(io_err)?;
            return Ok((store, state));
        };
        let invalid = |msg| LoadError::Invalid {
            path: path.to_path_buf(),
            msg,
        };
        let ident = Ident::of(&text);
        match recorded {
            Some(rec) if !rec.records.is_empty() && rec.applies_to(ident) => {
                let base = parse(&text, host.clone()).map_err(invalid)?;
                let replayed = replay(&base, &rec);
                let state = parse(replayed.as_bytes(), host).map_err(|msg| LoadError::Invalid {
                    path: journal_path.clone(),
                    msg: format!("replaying the journal: {msg}"),
                })?;
                tracing::info!(
                    "replayed {} unsaved change(s) from {}",
                    rec.records.len(),
                    journal_path.display()
                );
                // The records stay valid until qubes.xml holds them.
                store.journal =
                    Some(
                        Journal::resume(&journal_path, &rec).map_err(|source| LoadError::Io {
                            path: journal_path.clone(),
                            source,
                        })?,
                    );
                store.checkpoint(&state).map_err(io_err)?;
                Ok((store, state))
            }
            recorded => {
                if recorded.is_some_and(|r| !r.records.is_empty()) {
                    set_aside(&journal_path, "qubes.xml was replaced since it was written");
                }
                let state = parse(&text, host).map_err(invalid)?;
                store.start_journal(ident).map_err(io_err)?;
                store.remember(&state);
                Ok((store, state))
            }
        }
    }

    fn start_journal(&mut self, base: Ident) -> io::Result<()> {
        let path = journal::path_for(&self.path);
        self.journal = Some(Journal::create(&path, base, journal::DEFAULT_CAPACITY)?);
        Ok(())
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
    /// record and one sync; when the journal is full, a checkpoint writes the whole file.
    pub fn save(&mut self, state: &State) -> io::Result<()> {
        self.check_writable()?;
        let diff = self.diff(state);
        if diff.changes.is_empty() {
            return Ok(());
        }
        let journal = self
            .journal
            .as_mut()
            .ok_or_else(|| io::Error::other("the store is closed"))?;
        if journal.append(&diff.changes)? {
            self.apply(diff);
            Ok(())
        } else {
            self.checkpoint(state)
        }
    }

    /// Writes `state` whole to `qubes.xml` (temporary file, fsync, rename, directory fsync)
    /// and empties the journal. Only qubes that changed since the last save are serialised
    /// again.
    pub fn checkpoint(&mut self, state: &State) -> io::Result<()> {
        self.check_writable()?;
        let diff = self.diff(state);
        self.apply(diff);
        let result = self.write_whole(state);
        if result.is_err() {
            // The cache describes what is on disk: after a failure, nothing is known.
            self.fragments.clear();
            self.head.clear();
        }
        result
    }

    fn write_whole(&mut self, state: &State) -> io::Result<()> {
        let journal = self
            .journal
            .as_mut()
            .ok_or_else(|| io::Error::other("the store is closed"))?;
        let total: usize = self.fragments.values().map(|(_, t)| t.len()).sum();
        let mut xml = String::with_capacity(self.head.len() + total + serialize::TAIL.len());
        xml.push_str(&self.head);
        for d in state.domains_sorted() {
            if let Some((_, text)) = self.fragments.get(&d.name) {
                xml.push_str(text);
            }
        }
        xml.push_str(serialize::TAIL);
        let ident = Ident::of(xml.as_bytes());
        journal.begin_checkpoint(ident)?;
        write_atomic(&self.path, xml.as_bytes(), 0o660)?;
        self.mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        journal.restart(ident)
    }

    /// Refuses to write a closed store, or over a `qubes.xml` someone else changed.
    fn check_writable(&mut self) -> io::Result<()> {
        if !self.lock.held() || self.journal.is_none() {
            return Err(io::Error::other("the store is closed"));
        }
        let current = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if current.is_some() && self.mtime.is_some() && current != self.mtime {
            // Drop the fragment cache: it no longer describes what is on disk either.
            self.fragments.clear();
            self.head.clear();
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

/// Moves a journal that does not apply aside (`qubes.xml.journal.unapplied`), keeping what
/// it holds for a human to look at.
fn set_aside(journal_path: &Path, why: &str) {
    let mut aside = journal_path.as_os_str().to_owned();
    aside.push(".unapplied");
    tracing::error!(
        "{} holds changes but {why}: moved to {}",
        journal_path.display(),
        Path::new(&aside).display()
    );
    if let Err(e) = fs::rename(journal_path, &aside) {
        tracing::error!("moving {}: {e}", journal_path.display());
    }
}

/// The store's content as the disk holds it: `qubes.xml` with the journal's records
/// applied, as the next checkpoint will write it. For a reader beside a running daemon (tests, tools): the journal is read first,
/// so a checkpoint between the two reads is seen whole.
pub fn durable_text(path: &Path, host: HostInfo) -> io::Result<String> {
    let journal_path = journal::path_for(path);
    // A checkpoint (or two) may complete between the reads; a few tries see a quiet moment.
    for _ in 0..10 {
        let recorded = journal::read(&journal_path)?;
        let text = fs::read(path)?;
        let Some(rec) = recorded.filter(|r| !r.records.is_empty()) else {
            return String::from_utf8(text).map_err(io::Error::other);
        };
        if rec.applies_to(Ident::of(&text)) {
            let base = parse(&text, host.clone()).map_err(io::Error::other)?;
            // In the file's own order, as the next checkpoint will write it.
            let replayed = parse(replay(&base, &rec).as_bytes(), host.clone());
            return Ok(serialize(&replayed.map_err(io::Error::other)?));
        }
    }
    Err(io::Error::other("qubes.xml keeps changing"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Class;

    fn host() -> HostInfo {
        HostInfo::detect("/var/lib/qubes", false)
    }

    #[test]
    fn fresh_system_serializes_like_reference() {
        let st = State::new_system(host(), "file");
        let xml = serialize(&st);
        assert!(xml.starts_with(
            "<qubes>\n  <labels>\n    <label id=\"label-1\" color=\"0xcc0000\">red</label>\n"
        ));
        assert!(xml.contains("    <pool name=\"varlibqubes\" dir_path=\"/var/lib/qubes\" driver=\"file\" revisions_to_keep=\"1\" ephemeral_volatile=\"False\"/>\n"));
        assert!(xml.contains("  <properties>\n    <property name=\"default_pool_kernel\">linux-kernel</property>\n  </properties>\n"));
        assert!(xml.ends_with("    <domain id=\"domain-0\" class=\"AdminVM\">\n      <properties>\n        <property name=\"label\">black</property>\n      </properties>\n      <features/>\n      <tags/>\n    </domain>\n  </domains>\n</qubes>\n"));
    }

    #[test]
    fn round_trip_escapes() {
        let mut st = State::new_system(host(), "file");
        let mut d = Domain::new(Class::StandaloneVM, "sa", 3);
        d.props.insert("name".into(), "sa".into());
        d.props.insert("qid".into(), "3".into());
        d.props.insert("label".into(), "red".into());
        d.props
            .insert("kernelopts".into(), "a&b<c>\"d'e\\nx\nline2".into());
        d.set_feature("foo", "x<y");
        d.tags.insert("t1".into());
        st.domains.insert("sa".into(), Arc::new(d));
        let xml = serialize(&st);
        assert!(
            xml.contains(
                "<property name=\"kernelopts\">a&amp;b&lt;c&gt;\"d'e\\nx\nline2</property>"
            )
        );
        let back = parse(xml.as_bytes(), host()).unwrap();
        assert_eq!(back, st);
        assert_eq!(serialize(&back), xml);
    }

    fn with_qubes(st: &mut State, names: &[&str]) {
        for (i, name) in names.iter().enumerate() {
            let qid = st.domains.len() as u32 + i as u32;
            let mut d = Domain::new(Class::StandaloneVM, name, qid);
            d.props.insert("name".into(), (*name).into());
            d.props.insert("qid".into(), qid.to_string());
            st.domains.insert((*name).into(), Arc::new(d));
        }
    }

    /// The names of the files in `dir`, sorted.
    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn durable(path: &Path) -> String {
        durable_text(path, host()).unwrap()
    }

    #[test]
    fn saves_journal_what_changed_and_checkpoints_write_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml");
        let (mut store, mut st) = Store::open(&path, host()).unwrap();
        let fresh = fs::read_to_string(&path).unwrap();
        assert_eq!(fresh, serialize(&st));
        with_qubes(&mut st, &["a", "b", "c"]);
        store.save(&st).unwrap();
        assert!(store.dirty());
        // qubes.xml waits for the checkpoint; what the disk holds is already the new state.
        assert_eq!(fs::read_to_string(&path).unwrap(), fresh);
        assert_eq!(durable(&path), serialize(&st));
        // Changes made the way handlers make them: copy-on-write, with and without a
        // snapshot holding the old version.
        let snapshot = st.clone();
        st.domain_mut("b").unwrap().tags.insert("t".into());
        drop(snapshot);
        store.save(&st).unwrap();
        st.domain_mut("b").unwrap().set_feature("f", "1");
        st.domain_mut("c")
            .unwrap()
            .props
            .insert("label".into(), "red".into());
        st.domains.remove("a");
        st.global.insert("default_kernel".into(), "6.1".into());
        store.save(&st).unwrap();
        let rec = journal::read(&journal::path_for(&path)).unwrap().unwrap();
        assert_eq!(rec.records.len(), 3);
        // The last record holds only what it changed.
        let last = &rec.records[2];
        assert_eq!(last.len(), 4, "{last:?}");
        assert!(last.contains(&Change::Remove("a".into())));
        assert_eq!(durable(&path), serialize(&st));
        store.checkpoint(&st).unwrap();
        assert!(!store.dirty());
        let on_disk = fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, serialize(&st));
        assert!(on_disk.contains("<feature name=\"f\">1</feature>"));
        assert!(!on_disk.contains("<property name=\"name\">a</property>"));
        assert!(
            journal::read(&journal::path_for(&path))
                .unwrap()
                .unwrap()
                .records
                .is_empty()
        );
        // A save without a change writes nothing.
        store.save(&st).unwrap();
        assert!(!store.dirty());
        // A clean close leaves qubes.xml alone.
        store.close();
        assert_eq!(files_in(dir.path()), ["qubes.xml"]);
    }

    #[test]
    fn a_crash_keeps_every_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml");
        let (mut store, mut st) = Store::open(&path, host()).unwrap();
        with_qubes(&mut st, &["a", "b"]);
        store.save(&st).unwrap();
        st.domain_mut("a").unwrap().set_feature("x", "1");
        store.save(&st).unwrap();
        drop(store); // a crash: no checkpoint, no close
        let (store, loaded) = Store::open(&path, host()).unwrap();
        assert_eq!(loaded, st);
        // Loading checkpointed what it replayed.
        assert!(!store.dirty());
        assert_eq!(fs::read_to_string(&path).unwrap(), serialize(&st));
    }

    #[test]
    fn a_crash_inside_a_checkpoint_keeps_every_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml");
        let jpath = journal::path_for(&path);
        let (mut store, mut st) = Store::open(&path, host()).unwrap();
        with_qubes(&mut st, &["a", "b"]);
        store.save(&st).unwrap();
        st.domain_mut("a").unwrap().set_feature("x", "1");
        store.save(&st).unwrap();
        drop(store);
        // The checkpoint announced and qubes.xml replaced, the journal not yet restarted.
        let rec = journal::read(&jpath).unwrap().unwrap();
        let whole = serialize(&st);
        Journal::resume(&jpath, &rec)
            .unwrap()
            .begin_checkpoint(Ident::of(whole.as_bytes()))
            .unwrap();
        write_atomic(&path, whole.as_bytes(), 0o660).unwrap();
        let (_store, loaded) = Store::open(&path, host()).unwrap();
        assert_eq!(loaded, st);
        assert!(!dir.path().join("qubes.xml.journal.unapplied").exists());
    }

    #[test]
    fn interrupted_saves_are_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml");
        drop(Store::open(&path, host()).unwrap());
        fs::write(dir.path().join("qubes.xml~0123456789abcdef"), b"half").unwrap();
        fs::write(
            dir.path().join("qubes.xml.journal~0123456789abcdef"),
            b"half",
        )
        .unwrap();
        let (mut store, _) = Store::open(&path, host()).unwrap();
        store.close();
        assert_eq!(files_in(dir.path()), ["qubes.xml"]);
    }

    #[test]
    fn a_journal_for_another_qubes_xml_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml");
        let (mut store, mut st) = Store::open(&path, host()).unwrap();
        let original = st.clone();
        with_qubes(&mut st, &["a"]);
        store.save(&st).unwrap();
        drop(store);
        // Someone puts another qubes.xml in place while the daemon is down.
        let mut theirs = original;
        with_qubes(&mut theirs, &["mine"]);
        fs::write(&path, serialize(&theirs)).unwrap();
        let (_store, loaded) = Store::open(&path, host()).unwrap();
        assert_eq!(loaded, theirs);
        let aside = journal::read(&dir.path().join("qubes.xml.journal.unapplied"))
            .unwrap()
            .unwrap();
        assert_eq!(aside.records.len(), 1);
    }

    #[test]
    fn external_modification_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml");
        let (mut store, st) = Store::open(&path, host()).unwrap();
        store.save(&st).unwrap();
        let edited = serialize(&st).replace("red", "rouge");
        fs::write(&path, &edited).unwrap();
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let err = store.save(&st).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Someone else modified qubes.xml in the meantime"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), edited);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"", host()).is_err());
        assert!(parse(b"<qubes>", host()).is_err());
        assert!(parse(b"<notqubes/>", host()).is_err());
        let deep = "<a>".repeat(100);
        assert!(parse(deep.as_bytes(), host()).is_err());
        assert!(
            parse(
                b"<qubes><domains><domain class=\"AppVM\"><properties/></domain></domains></qubes>",
                host()
            )
            .is_err()
        );
    }
}
