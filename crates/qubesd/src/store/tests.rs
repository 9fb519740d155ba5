//! The store's tests: saves, checkpoints, crashes at each step, damaged files.

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
        xml.contains("<property name=\"kernelopts\">a&amp;b&lt;c&gt;\"d'e\\nx\nline2</property>")
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
    with_qubes(&mut st, &["a", "b", "c"]);
    store.save(&st).unwrap();
    st.domain_mut("a").unwrap().set_feature("x", "1");
    store.save(&st).unwrap();
    drop(store);
    // A checkpoint of a state with a change no record has (a save that found the journal
    // full), announced and renamed into place; the journal not yet restarted.
    st.domain_mut("a").unwrap().set_feature("x", "2");
    st.domain_mut("c").unwrap().set_feature("x", "2");
    st.domains.remove("b");
    let rec = journal::read(&jpath).unwrap().unwrap();
    let whole = serialize(&st);
    Journal::resume(&jpath, &rec)
        .unwrap()
        .begin_checkpoint(Ident::of(whole.as_bytes()))
        .unwrap();
    write_atomic(&path, whole.as_bytes(), 0o660).unwrap();
    let (_store, loaded) = Store::open(&path, host()).unwrap();
    // Used as it is: replaying the older records over it would mix two states.
    assert_eq!(loaded, st);
    assert_eq!(
        files_in(dir.path()),
        ["qubes.xml", "qubes.xml.journal", "qubes.xml.lock"]
    );
}

#[test]
fn a_failed_checkpoint_leaves_the_journal_in_charge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qubes.xml");
    let (mut store, mut st) = Store::open(&path, host()).unwrap();
    with_qubes(&mut st, &["a", "b"]);
    store.save(&st).unwrap();
    st.domain_mut("b").unwrap().set_feature("f", "1");
    store.save(&st).unwrap();
    let before = fs::read(&path).unwrap();
    store.fail_writes = true;
    let err = store.checkpoint(&st).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(store.dirty(), "the journal still holds the saves");
    // A removal saved after it is recorded as one (the store still knows the disk).
    st.domains.remove("a");
    store.save(&st).unwrap();
    let rec = journal::read(&journal::path_for(&path)).unwrap().unwrap();
    assert_eq!(
        rec.records.last().unwrap(),
        &vec![Change::Remove("a".into())]
    );
    drop(store); // a crash
    let (_store, loaded) = Store::open(&path, host()).unwrap();
    assert_eq!(loaded, st);
}

#[test]
fn without_a_journal_saves_write_the_file_whole_and_start_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qubes.xml");
    let (mut store, mut st) = Store::open(&path, host()).unwrap();
    with_qubes(&mut st, &["a"]);
    store.save(&st).unwrap();
    // As after a disk error on the journal: its records are still on the disk.
    store.journal = None;
    st.domain_mut("a").unwrap().set_feature("f", "1");
    store.save(&st).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), serialize(&st));
    let fresh = journal::read(&journal::path_for(&path)).unwrap().unwrap();
    assert!(fresh.records.is_empty());
    assert_eq!(fresh.fit(Ident::of(serialize(&st).as_bytes())), Fit::Base);
    // And saves go to the new journal again.
    st.domain_mut("a").unwrap().set_feature("g", "1");
    store.save(&st).unwrap();
    assert!(store.dirty());
    drop(store);
    let (_store, loaded) = Store::open(&path, host()).unwrap();
    assert_eq!(loaded, st);
}

#[test]
fn a_full_disk_fails_the_save_that_needs_a_checkpoint_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qubes.xml");
    let (mut store, mut st) = Store::open(&path, host()).unwrap();
    with_qubes(&mut st, &["a"]);
    store.save(&st).unwrap();
    let kept = st.clone();
    store.fail_writes = true;
    // A change too big for the journal needs a checkpoint, which the disk refuses.
    st.domain_mut("a")
        .unwrap()
        .set_feature("big", &"x".repeat(journal::DEFAULT_CAPACITY as usize));
    assert!(store.save(&st).is_err());
    drop(store);
    let (_store, loaded) = Store::open(&path, host()).unwrap();
    assert_eq!(loaded, kept);
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
    let names = files_in(dir.path());
    let aside = names
        .iter()
        .find(|n| n.starts_with("qubes.xml.journal.unapplied-"))
        .unwrap_or_else(|| panic!("{names:?}"));
    let aside = journal::read(&dir.path().join(aside)).unwrap().unwrap();
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

#[test]
fn a_checkpoint_whose_directory_sync_fails_is_right_whichever_file_a_crash_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qubes.xml");
    let (mut store, mut st) = Store::open(&path, host()).unwrap();
    with_qubes(&mut st, &["a"]);
    store.save(&st).unwrap();
    store.checkpoint(&st).unwrap();
    let old_file = fs::read(&path).unwrap();
    st.domain_mut("a").unwrap().set_feature("x", "1");
    store.save(&st).unwrap();
    store.fail_dir_syncs = true;
    store.checkpoint(&st).unwrap();
    assert!(store.journal.is_none(), "nothing more goes to that journal");
    drop(store);
    // The rename reached the disk: the checkpointed file, as it is.
    let copy = tempfile::tempdir().unwrap();
    for f in ["qubes.xml", "qubes.xml.journal"] {
        fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
    }
    let (_s, loaded) = Store::open(&copy.path().join("qubes.xml"), host()).unwrap();
    assert_eq!(loaded, st);
    // It did not: the old file, and the journal's records replayed on it.
    fs::write(&path, &old_file).unwrap();
    let (_s, loaded) = Store::open(&path, host()).unwrap();
    assert_eq!(loaded, st);
}

#[test]
fn a_whole_write_equal_to_the_journals_base_deletes_the_journal_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qubes.xml");
    let (mut store, mut st) = Store::open(&path, host()).unwrap();
    let base = st.clone();
    with_qubes(&mut st, &["x"]);
    store.save(&st).unwrap();
    // The journal lost to a disk error; then the qube is removed again: the whole file is
    // the journal's base, byte for byte.
    store.journal = None;
    store.crash_after_whole_write = true;
    store.save(&base).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), serialize(&base));
    drop(store); // the crash, before the old journal would have been deleted
    let (_s, loaded) = Store::open(&path, host()).unwrap();
    assert_eq!(
        loaded, base,
        "the journal's records came back over the file"
    );
}

#[test]
fn a_file_that_is_not_a_journal_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qubes.xml");
    let (mut store, st) = Store::open(&path, host()).unwrap();
    store.close();
    fs::write(journal::path_for(&path), b"QXMLJRN1 from another version").unwrap();
    let (_s, loaded) = Store::open(&path, host()).unwrap();
    assert_eq!(loaded, st);
    let names = files_in(dir.path());
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("qubes.xml.journal.unapplied-")),
        "{names:?}"
    );
}
