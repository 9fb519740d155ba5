//! `qubes.xml`: load, and atomic save (admin-api.md §6).
//!
//! Save writes the whole file to `qubes.xml~<random>` in the same directory, fsyncs it, renames
//! it over `qubes.xml` and fsyncs the directory, so a crash leaves either the old or the new
//! file, never a mix. A lock file keeps a second daemon from writing the same store.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{
    Class, DeviceClassXml, DeviceXml, Domain, HostInfo, Label, Pool, State, VolumeConfig,
    default_labels,
};
use crate::props;
use crate::storelock::{LockError, StoreLock};
use crate::xml::{Node, parse_tree};

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
    /// Each qube's serialised `<domain>` element, keyed by the `Arc` it was made from. The
    /// cache keeps that `Arc` alive, so a qube changed through `Arc::make_mut` is always a
    /// new allocation and never matches a stale entry.
    fragments: std::collections::HashMap<String, (Arc<Domain>, String)>,
    /// Modification time of qubes.xml as we last read or wrote it: a different one at save
    /// time means someone else changed the file, and we refuse to overwrite their change.
    mtime: Option<std::time::SystemTime>,
}

impl Store {
    /// Opens (locking) the store at `path`; returns the state loaded from it, or a fresh
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
            fragments: Default::default(),
            mtime: None,
        };
        store.remove_stale_temp_files(dir);
        match fs::metadata(path) {
            Ok(meta) => {
                if meta.len() > MAX_STORE_SIZE {
                    return Err(LoadError::Invalid {
                        path: path.to_path_buf(),
                        msg: "file too large".into(),
                    });
                }
                store.mtime = meta.modified().ok();
                let text = fs::read(path).map_err(io_err)?;
                let state = parse(&text, host).map_err(|msg| LoadError::Invalid {
                    path: path.to_path_buf(),
                    msg,
                })?;
                Ok((store, state))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let base = Path::new(&host.base_dir);
                let state = State::new_system(
                    host.clone(),
                    crate::storage::reflink::default_pool_driver(base),
                );
                // As the reference's first start: the default pools' directories.
                for pool in &state.pools {
                    if let Err(e) =
                        crate::storage::pool_driver(pool).and_then(|drv| drv.setup(pool))
                    {
                        tracing::warn!("setting up pool {}: {e}", pool.name);
                    }
                }
                store.save(&state).map_err(io_err)?;
                Ok((store, state))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Removes `qubes.xml~*` files a save interrupted by a crash left behind; we hold the lock,
    /// so nobody else is writing them.
    fn remove_stale_temp_files(&self, dir: &Path) {
        let Some(name) = self
            .path
            .file_name()
            .map(|n| format!("{}~", n.to_string_lossy()))
        else {
            return;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&name) {
                tracing::info!("removing interrupted save {}", e.path().display());
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Path of `qubes.xml`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `state` atomically: temp file, fsync, rename, directory fsync. Only qubes that
    /// changed since the last save are serialised again.
    pub fn save(&mut self, state: &State) -> io::Result<()> {
        if !self.lock.held() {
            return Err(io::Error::other("the store is closed"));
        }
        let fragments = &mut self.fragments;
        fragments.retain(|name, _| state.domains.contains_key(name));
        // First bring every fragment up to date, so the output is allocated once.
        let mut total = 0;
        for (name, arc) in &state.domains {
            let fresh = match fragments.get(name) {
                Some((cached, _)) => !Arc::ptr_eq(cached, arc),
                None => true,
            };
            if fresh {
                let mut text = String::with_capacity(2048);
                write_domain(&mut text, arc);
                // Kept until the qube changes: no slack (a thousand qubes, ~1 MB).
                text.shrink_to_fit();
                fragments.insert(name.clone(), (arc.clone(), text));
            }
            total += fragments.get(name).map_or(0, |(_, t)| t.len());
        }
        let xml = serialize_with(state, total, |out, name, _| {
            if let Some((_, text)) = fragments.get(name) {
                out.push_str(text);
            }
        });
        let current = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if current.is_some() && self.mtime.is_some() && current != self.mtime {
            // Drop the fragment cache: it no longer describes what is on disk either.
            self.fragments.clear();
            return Err(io::Error::other(MODIFIED_ELSEWHERE));
        }
        write_atomic(&self.path, xml.as_bytes(), 0o660)?;
        self.mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        Ok(())
    }

    /// Gives the store up at a clean shutdown, after the last save: removes the lock file
    /// (the reference leaves none) and refuses every later save, since another daemon may
    /// own the store from then on.
    pub fn close(&mut self) {
        self.lock.release();
    }
}

pub use crate::durable::{replace_with, write_atomic};

fn open_tag(out: &mut String, indent: usize, name: &str, attrs: &[(&str, &str)], empty: bool) {
    for _ in 0..indent {
        out.push_str("  ");
    }
    out.push('<');
    out.push_str(name);
    for (k, v) in attrs {
        let _ = write!(out, " {k}=\"");
        crate::xml::escape_attr(v, out);
        out.push('"');
    }
    out.push_str(if empty { "/>\n" } else { ">" });
}

fn text_elem(out: &mut String, indent: usize, name: &str, attrs: &[(&str, &str)], text: &str) {
    open_tag(out, indent, name, attrs, false);
    crate::xml::escape_text(text, out);
    let _ = writeln!(out, "</{name}>");
}

fn close_tag(out: &mut String, indent: usize, name: &str) {
    for _ in 0..indent {
        out.push_str("  ");
    }
    let _ = writeln!(out, "</{name}>");
}

/// Serialises `state` the way the reference writes `qubes.xml` (2-space indent, no declaration).
pub fn serialize(st: &State) -> String {
    serialize_with(st, st.domains.len() * 2048, |out, _, d| {
        write_domain(out, d)
    })
}

/// [`serialize`] with each `<domain>` element written by `domain_xml`.
fn serialize_with(
    st: &State,
    domains_size: usize,
    mut domain_xml: impl FnMut(&mut String, &str, &Domain),
) -> String {
    let mut out = String::with_capacity(16384 + domains_size);
    out.push_str("<qubes>\n  <labels>\n");
    for l in st.labels.values() {
        let id = format!("label-{}", l.index);
        text_elem(
            &mut out,
            2,
            "label",
            &[("id", &id), ("color", &l.color)],
            &l.name,
        );
    }
    out.push_str("  </labels>\n");
    if st.pools.is_empty() {
        out.push_str("  <pools/>\n");
    } else {
        out.push_str("  <pools>\n");
        for p in &st.pools {
            let attrs: Vec<(&str, &str)> = p
                .attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            open_tag(&mut out, 2, "pool", &attrs, true);
        }
        out.push_str("  </pools>\n");
    }
    let globals: Vec<(&str, &str)> = props::global_props()
        .iter()
        .filter_map(|d| st.global.get(d.name).map(|v| (d.name, v.as_str())))
        .collect();
    write_props(&mut out, 1, &globals);
    out.push_str("  <domains>\n");
    for d in st.domains_sorted() {
        domain_xml(&mut out, &d.name, d);
    }
    out.push_str("  </domains>\n</qubes>\n");
    out
}

fn write_props(out: &mut String, indent: usize, list: &[(&str, &str)]) {
    if list.is_empty() {
        open_tag(out, indent, "properties", &[], true);
        return;
    }
    open_tag(out, indent, "properties", &[], false);
    out.push('\n');
    for (k, v) in list {
        text_elem(out, indent + 1, "property", &[("name", k)], v);
    }
    close_tag(out, indent, "properties");
}

fn write_domain(out: &mut String, d: &Domain) {
    let id = format!("domain-{}", d.qid);
    open_tag(
        out,
        2,
        "domain",
        &[("id", &id), ("class", d.class.name())],
        false,
    );
    out.push('\n');
    let list: Vec<(&str, &str)> = props::vm_props(d.class)
        .iter()
        .filter_map(|p| d.props.get(p.name).map(|v| (p.name, v.as_str())))
        .collect();
    write_props(out, 3, &list);
    if d.features.is_empty() {
        open_tag(out, 3, "features", &[], true);
    } else {
        open_tag(out, 3, "features", &[], false);
        out.push('\n');
        for (k, v) in &d.features {
            text_elem(out, 4, "feature", &[("name", k)], v);
        }
        close_tag(out, 3, "features");
    }
    if d.tags.is_empty() {
        open_tag(out, 3, "tags", &[], true);
    } else {
        open_tag(out, 3, "tags", &[], false);
        out.push('\n');
        for t in &d.tags {
            open_tag(out, 4, "tag", &[("name", t)], true);
        }
        close_tag(out, 3, "tags");
    }
    for dc in &d.devices {
        if dc.devices.is_empty() {
            open_tag(out, 3, "devices", &[("class", &dc.class)], true);
            continue;
        }
        open_tag(out, 3, "devices", &[("class", &dc.class)], false);
        out.push('\n');
        for dev in &dc.devices {
            let attrs: Vec<(&str, &str)> = dev
                .attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if dev.options.is_empty() {
                open_tag(out, 4, "device", &attrs, true);
            } else {
                open_tag(out, 4, "device", &attrs, false);
                out.push('\n');
                for (k, v) in &dev.options {
                    text_elem(out, 5, "option", &[("name", k)], v);
                }
                close_tag(out, 4, "device");
            }
        }
        close_tag(out, 3, "devices");
    }
    if d.class.is_local_qube() {
        if d.volumes.is_empty() {
            open_tag(out, 3, "volume-config", &[], true);
        } else {
            open_tag(out, 3, "volume-config", &[], false);
            out.push('\n');
            for v in &d.volumes {
                let attrs: Vec<(&str, &str)> = v
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                open_tag(out, 4, "volume", &attrs, true);
            }
            close_tag(out, 3, "volume-config");
        }
    }
    close_tag(out, 2, "domain");
}

/// Parses a `qubes.xml` written by the reference daemon or by us.
pub fn parse(text: &[u8], host: HostInfo) -> Result<State, String> {
    let root = parse_tree(text)?;
    if root.name != "qubes" {
        return Err(format!("root element is <{}>, not <qubes>", root.name));
    }
    let mut labels: BTreeMap<u32, Label> = BTreeMap::new();
    if let Some(ls) = root.child("labels") {
        for l in ls.children("label") {
            let id = l.attr("id").ok_or("label without id")?;
            let index: u32 = id
                .strip_prefix("label-")
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| format!("bad label id {id:?}"))?;
            let mut color = l.attr("color").ok_or("label without color")?.to_string();
            // The reference migrates the old gray.
            if color == "0x555753" {
                color = "0x555555".into();
            }
            labels.insert(
                index,
                Label {
                    index,
                    name: l.text.clone(),
                    color,
                },
            );
        }
    }
    if labels.is_empty() {
        labels = default_labels();
    }
    let mut refs: Vec<PendingRef> = Vec::new();
    let mut st = State {
        labels,
        pools: Vec::new(),
        global: BTreeMap::new(),
        domains: BTreeMap::new(),
        host,
        touched: crate::model::DeviceTouches::default(),
    };
    if let Some(ps) = root.child("pools") {
        for p in ps.children("pool") {
            let name = p.attr("name").ok_or("pool without name")?.to_string();
            if st.pool(&name).is_some() {
                return Err(format!("duplicate pool {name:?}"));
            }
            st.pools.push(Pool {
                name,
                attrs: p.attrs.clone(),
            });
        }
    }
    if let Some(ps) = root.child("properties") {
        for p in ps.children("property") {
            let name = p.attr("name").ok_or("property without name")?;
            let def = props::global_prop(name)
                .ok_or_else(|| format!("unknown global property {name:?}"))?;
            if let Some(r) = p.attr("ref") {
                refs.push((None, def.name.to_string(), r.to_string()));
            }
            let value = p.attr("ref").unwrap_or(&p.text);
            st.global
                .insert(def.name.to_string(), normalize_loaded(def.ty, value, &st));
        }
    }
    if let Some(ds) = root.child("domains") {
        for dn in ds.children("domain") {
            let d = parse_domain(dn, &st, &mut refs)?;
            if st.domains.contains_key(&d.name) {
                return Err(format!("duplicate qube name {:?}", d.name));
            }
            if st.domains.values().any(|o| o.qid == d.qid) {
                return Err(format!("duplicate qid {}", d.qid));
            }
            st.domains.insert(d.name.clone(), Arc::new(d));
        }
    }
    // dom0 is always there.
    if !st.domains.values().any(|d| d.class == Class::AdminVM) {
        let mut dom0 = Domain::new(Class::AdminVM, "dom0", 0);
        dom0.props.insert("label".into(), "black".into());
        st.domains.insert("dom0".into(), Arc::new(dom0));
    }
    resolve_refs(&mut st, refs);
    migrate_references(&mut st);
    Ok(st)
}

/// Loaded label references are stored by name; qube references by name (`ref="domain-N"` too).
fn normalize_loaded(ty: props::PType, value: &str, st: &State) -> String {
    match ty {
        props::PType::Label => st
            .find_label(value)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| value.to_string()),
        _ => value.to_string(),
    }
}

/// A `ref="domain-<qid>"` attribute seen while loading: holder (None = global), property, ref.
type PendingRef = (Option<String>, String, String);

/// Replaces `ref="domain-<qid>"` values, which older files use, by the qube's name.
fn resolve_refs(st: &mut State, refs: Vec<PendingRef>) {
    for (holder, prop, r) in refs {
        let Some(qid) = r
            .strip_prefix("domain-")
            .and_then(|q| q.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(name) = st
            .domains
            .values()
            .find(|d| d.qid == qid)
            .map(|d| d.name.clone())
        else {
            continue;
        };
        match holder {
            None => {
                st.global.insert(prop, name);
            }
            Some(h) => {
                if let Some(d) = st.domain_mut(&h) {
                    d.props.insert(prop, name);
                }
            }
        }
    }
}

fn parse_domain(dn: &Node, st: &State, refs: &mut Vec<PendingRef>) -> Result<Domain, String> {
    let class_name = dn.attr("class").ok_or("domain without class")?;
    let class =
        Class::from_name(class_name).ok_or_else(|| format!("unknown qube class {class_name:?}"))?;
    let mut explicit: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: Vec<(String, String)> = Vec::new();
    if let Some(ps) = dn.child("properties") {
        for p in ps.children("property") {
            let name = p.attr("name").ok_or("property without name")?;
            let name = if name == "dispvm_allowed" && class == Class::AppVM {
                "template_for_dispvms"
            } else {
                name
            };
            let Some(def) = props::vm_prop(class, name) else {
                // The reference ignores properties that no longer exist.
                continue;
            };
            if let Some(r) = p.attr("ref") {
                pending.push((def.name.to_string(), r.to_string()));
            }
            let value = p.attr("ref").unwrap_or(&p.text);
            explicit.insert(def.name.to_string(), normalize_loaded(def.ty, value, st));
        }
    }
    let (name, qid) = if class == Class::AdminVM {
        explicit.remove("name");
        explicit.remove("qid");
        explicit.remove("uuid");
        ("dom0".to_string(), 0)
    } else {
        let name = explicit.get("name").cloned().ok_or("qube without a name")?;
        crate::names::validate_name(&name).map_err(|e| format!("qube {name:?}: {e}"))?;
        let qid = explicit
            .get("qid")
            .and_then(|q| q.trim().parse::<u32>().ok())
            .filter(|q| *q <= 10000)
            .ok_or_else(|| format!("qube {name:?} has no valid qid"))?;
        (name, qid)
    };
    refs.extend(
        pending
            .into_iter()
            .map(|(prop, r)| (Some(name.clone()), prop, r)),
    );
    let mut d = Domain::new(class, &name, qid);
    d.props = explicit;
    if let Some(fs) = dn.child("features") {
        for f in fs.children("feature") {
            let fname = f.attr("name").ok_or("feature without name")?;
            d.set_feature(fname, &f.text);
        }
    }
    if let Some(ts) = dn.child("tags") {
        for t in ts.children("tag") {
            d.tags
                .insert(t.attr("name").ok_or("tag without name")?.to_string());
        }
    }
    for dc in dn.children("devices") {
        let class = dc.attr("class").ok_or("devices without class")?.to_string();
        let devices = dc
            .children("device")
            .map(|dev| DeviceXml {
                attrs: dev.attrs.clone(),
                options: dev
                    .children("option")
                    .map(|o| (o.attr("name").unwrap_or("").to_string(), o.text.clone()))
                    .collect(),
                listed_frontend: crate::model::ListedFrontend::Owner,
            })
            .collect();
        d.devices.push(DeviceClassXml { class, devices });
    }
    if let Some(vc) = dn.child("volume-config") {
        for v in vc.children("volume") {
            d.volumes.push(VolumeConfig {
                attrs: v.attrs.clone(),
            });
        }
    }
    Ok(d)
}

/// Clears references that point nowhere, as the reference's load-time fixups do, so that a
/// hand-edited file cannot leave dangling qube references behind.
fn migrate_references(st: &mut State) {
    let names: std::collections::BTreeSet<String> = st.domains.keys().cloned().collect();
    for key in ["default_dispvm", "management_dispvm"] {
        if let Some(v) = st.global.get(key)
            && !v.is_empty()
            && !names.contains(v)
        {
            st.global.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn cached_save_matches_full_serialization() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qubes.xml");
        let (mut store, mut st) = Store::open(&path, host()).unwrap();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let mut d = Domain::new(Class::StandaloneVM, name, i as u32 + 1);
            d.props.insert("name".into(), (*name).into());
            d.props.insert("qid".into(), (i + 1).to_string());
            st.domains.insert((*name).into(), Arc::new(d));
        }
        store.save(&st).unwrap();
        // Changes made the way handlers make them: copy-on-write, with and without a
        // snapshot holding the old version.
        let snapshot = st.clone();
        st.domain_mut("b").unwrap().tags.insert("t".into());
        drop(snapshot);
        store.save(&st).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), serialize(&st));
        st.domain_mut("b").unwrap().set_feature("f", "1");
        st.domain_mut("c")
            .unwrap()
            .props
            .insert("label".into(), "red".into());
        st.domains.remove("a");
        store.save(&st).unwrap();
        let on_disk = fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, serialize(&st));
        assert!(on_disk.contains("<feature name=\"f\">1</feature>"));
        assert!(!on_disk.contains("<property name=\"name\">a</property>"));
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
