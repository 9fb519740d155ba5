//! Creating and removing qubes: the new qube's identity, volumes and automatic tags, the
//! disposables made from a disposable template, and what keeps a qube from being removed.

use std::sync::Arc;

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use super::{autostart, intents, not_halted, properties, tags, validate};
use crate::model::{Class, Domain, PowerState, State};
use crate::names;
use crate::props::{self, Access, PType};
use crate::txn::Txn;

/// A decoded `admin.vm.Create*` request; names in it are not checked to exist yet.
#[derive(Debug)]
pub struct CreateSpec {
    /// Class of the new qube.
    pub class: Class,
    /// `name=`.
    pub name: Option<String>,
    /// `label=` as given (a name or an index).
    pub label: Option<String>,
    /// The template argument.
    pub template: Option<String>,
    /// `pool=`.
    pub pool: Option<String>,
    /// `pool:<volume>=`, in payload order.
    pub pools: Vec<(String, String)>,
}

impl CreateSpec {
    /// An empty request for a qube of `class`.
    pub fn new(class: Class) -> CreateSpec {
        CreateSpec {
            class,
            name: None,
            label: None,
            template: None,
            pool: None,
            pools: Vec::new(),
        }
    }
}

/// A label as creation accepts it: a valid name that is not all digits.
pub fn validate_label_for_creation(v: &str) -> Result<(), QubesError> {
    names::validate_label_name(v)?;
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QubesError::new(
            ExcKind::QubesInvalidLabelError,
            "Label must not be a digit",
        ));
    }
    Ok(())
}

/// Creates a qube (`admin.vm.Create*`), checking what the request names in the reference's
/// order: label, pool conflict, name taken, template, pools.
pub fn create(t: &mut Txn, src: &str, spec: CreateSpec) -> Result<(), QubesError> {
    let Some(name) = spec.name else {
        return Err(QubesError::protocol("Creation requested without key: name"));
    };
    let label = spec
        .label
        .as_deref()
        .and_then(|l| t.st.find_label_for_api(l))
        .map(|l| l.name.clone());
    let Some(label) = label else {
        return Err(QubesError::protocol(
            "Creation requested without key: label",
        ));
    };
    if spec.pool.is_some() && !spec.pools.is_empty() {
        return Err(QubesError::protocol(
            "Conflicting options specified: 'pool=', 'pool:volume='",
        ));
    }
    // Existence checks come after the permission check, so a denied caller cannot probe.
    // A removed qube whose data is still being deleted counts as existing.
    let being_removed = t
        .env
        .being_removed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&name);
    if t.st.domain(&name).is_some() || being_removed {
        return Err(QubesError::new(
            ExcKind::QubesVMAlreadyExistsError,
            format!("Qube already exists: {name}"),
        ));
    }
    if let Some(tpl) = spec
        .template
        .as_deref()
        .filter(|n| t.st.domain(n).is_none())
    {
        return Err(QubesError::no_such_vm(tpl));
    }
    // The last pool named that does not exist (the reference remembers the last one).
    let invalid_pool = spec
        .pool
        .iter()
        .chain(spec.pools.iter().map(|(_, p)| p))
        .rfind(|p| t.st.pool(p).is_none());
    if let Some(p) = invalid_pool {
        return Err(QubesError::qubes(format!("Unknown storage pool {p}")));
    }
    let class = spec.class;
    if class == Class::AdminVM {
        // The reference's AdminVM refuses the qid it is given.
        return Err(QubesError::new(
            ExcKind::QubesPropertyValueError,
            "property 'qid' on AdminVM instance cannot be set",
        ));
    }
    let template = match spec.template {
        Some(tpl) => Some(tpl),
        None if class == Class::AppVM => Some(default_template(t, "default_template")?),
        None if class == Class::DispVM => Some(default_template(t, "default_dispvm")?),
        None => None,
    };
    // A disposable's template must be a disposable template (`DispVM.__init__`).
    let dvm = match (&template, class) {
        (Some(tpl), Class::DispVM) => Some(disposable_template(t, tpl)?),
        _ => None,
    };
    let mut d = new_domain(t, class, &name)?;
    d.props.insert("label".into(), label);
    if let Some(tpl) = &template {
        let def = props::vm_prop(class, "template").expect("template property");
        let tpl = validate::validate_new_qubes_template(&t.st, &d, def, tpl)?;
        d.props.insert("template".into(), tpl);
    }
    if let Some(dvm) = &dvm {
        init_disposable(t, &mut d, dvm)?;
    }
    add_new(t, src, d, spec.pool.as_deref(), &spec.pools)?;
    t.save = true;
    Ok(())
}

fn default_template(t: &Txn, global: &str) -> Result<String, QubesError> {
    match props::global_get(&t.st, global) {
        Some(tpl) if !tpl.is_empty() => Ok(tpl),
        _ => Err(QubesError::value(
            "Template for the qube not specified, nor default template set.",
        )),
    }
}

/// A new qube of `class` named `name` with a fresh qid and uuid and the automatic tags.
fn new_domain(t: &Txn, class: Class, name: &str) -> Result<Domain, QubesError> {
    let qid =
        t.st.next_qid()
            .ok_or_else(|| QubesError::qubes("No unused qube id left"))?;
    let mut d = Domain::new(class, name, qid);
    d.props.insert("name".into(), name.into());
    d.props.insert("qid".into(), qid.to_string());
    d.props
        .insert("uuid".into(), uuid::Uuid::new_v4().hyphenated().to_string());
    if class.is_local_qube() {
        // Tags the reference's gui/audio extensions keep in step with guivm/audiovm.
        for (prop, global) in [("audiovm", "default_audiovm"), ("guivm", "default_guivm")] {
            if let Some(v) = props::global_get(&t.st, global).filter(|v| !v.is_empty()) {
                d.tags.insert(format!("{prop}-{v}"));
            }
        }
    }
    Ok(d)
}

/// Adds a freshly built qube: volume configuration, `created-by` tag and its reactions,
/// events in the reference's order, and last its volumes on disk.
fn add_new(
    t: &mut Txn,
    src: &str,
    mut d: Domain,
    pool: Option<&str>,
    pools: &[(String, String)],
) -> Result<(), QubesError> {
    if d.class.is_local_qube() {
        d.volumes = crate::volumes::default_volume_config(&t.st, &d, pool, pools)?;
    }
    let name = d.name.clone();
    t.st.domains.insert(name.as_str().into(), Arc::new(d));
    t.fire("", "domain-add", &[("vm", &name)]);
    tags::add_created_by(t, &name, &format!("created-by-{src}"))?;
    if t.st.domain(&name).is_some_and(|d| d.class.is_local_qube()) {
        // Lay out the volumes last: everything that could refuse the call has run.
        create_on_disk(t, &name)?;
    }
    Ok(())
}

/// Creates a new qube's volumes and fires `domain-create-on-disk`. A later failure (saving
/// qubes.xml) removes them again, and so does a restart after a crash before the creation
/// was committed (the intent).
fn create_on_disk(t: &mut Txn, name: &str) -> Result<(), QubesError> {
    let d =
        t.st.domain(name)
            .ok_or_else(|| QubesError::no_such_vm(name))?
            .clone();
    let intent = intents::record(&t.env.state_dir, &d)
        .map_err(|e| QubesError::qubes(format!("Cannot prepare the volumes of {name}: {e}")))?;
    let undo_intent = intent.clone();
    t.undo_on_failure(Box::new(move || intents::clear(&undo_intent)));
    t.after_commit(Box::new(move || intents::clear(&intent)));
    // create_all removes what it made itself when it fails; volumes that were there
    // before (it refuses to overwrite them) are not ours to remove.
    crate::storage::create_all(&t.st, &d)?;
    let vols = crate::storage::volumes(&t.st, &d);
    t.undo_on_failure(Box::new(move || crate::storage::remove_all(&vols)));
    t.fire(name, "domain-create-on-disk", &[]);
    if props::vm_flag(&t.st, &d, "autostart") {
        autostart::after_create(t, name);
    }
    Ok(())
}

/// `admin.vm.CreateDisposable+preload`: asks the disposable template (the caller's
/// `default_dispvm` when `template` is None) to keep disposables ready. The template must
/// announce the services a preloaded disposable is driven with.
pub fn preload_disposable(
    t: &mut Txn,
    src: &str,
    template: Option<String>,
) -> Result<(), QubesError> {
    let template = template.unwrap_or_else(|| caller_default_dispvm(t, src));
    if template.is_empty() {
        // The reference fails without a reply here.
        return Err(QubesError::qubes(
            "No disposable template to preload disposables from",
        ));
    }
    t.fire_sticky(
        &template,
        "domain-preload-dispvm-start",
        &[("reason", "autostart was requested")],
    );
    let missing = super::hooks::missing_preload_services(&t.st, &template);
    if !missing.is_empty() {
        return Err(QubesError::value(format!(
            "Qube does not support the RPC(s) '{}' but tried to preload, check if template is outdated",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The qube `name` as a disposable template, or the reference's refusal.
fn disposable_template(t: &Txn, name: &str) -> Result<Domain, QubesError> {
    t.st.domain(name)
        .filter(|d| props::vm_flag(&t.st, d, "template_for_dispvms"))
        .cloned()
        .ok_or_else(|| {
            QubesError::value(format!(
                "template for disposable ({name}) needs to be an AppVM with template_for_dispvms=True"
            ))
        })
}

/// What a new disposable takes from its disposable template (`DispVM.__init__`): a fresh
/// `dispid` (unless it has one), the properties set on the template that are not set on the disposable, the
/// features (but the preload bookkeeping), the tags and the firewall rules.
fn init_disposable(t: &mut Txn, d: &mut Domain, tpl: &Domain) -> Result<(), QubesError> {
    if !d.props.contains_key("dispid") {
        let dispid = new_dispid(t)?;
        d.props.insert("dispid".into(), dispid.to_string());
    }
    for def in props::vm_props(Class::DispVM) {
        if matches!(def.name, "name" | "qid" | "uuid" | "template" | "dispid")
            || def.access(Class::DispVM) == Access::ReadOnly
            || d.props.contains_key(def.name)
        {
            continue;
        }
        if let Some(v) = tpl.props.get(def.name)
            && props::vm_prop(tpl.class, def.name).is_some()
        {
            d.props.insert(def.name.to_string(), v.clone());
        }
    }
    for (k, v) in &tpl.features {
        if !k.starts_with("preload-dispvm") {
            d.set_feature(k, v);
        }
    }
    d.tags.extend(tpl.tags.iter().cloned());
    // The rules live in firewall.xml; none there means the default, which needs no file.
    let rules = crate::firewall::firewall_path(&t.env.state_dir, tpl);
    match std::fs::read(&rules) {
        Ok(bytes) => t.write_file(crate::firewall::firewall_path(&t.env.state_dir, d), bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(QubesError::qubes(format!(
                "Failed to load firewall rules: {e}"
            )));
        }
    }
    Ok(())
}

/// A random disposable id that no qube uses (neither as dispid nor in its name).
fn new_dispid(t: &Txn) -> Result<u32, QubesError> {
    (0..100)
        .map(|_| rand::random::<u32>() % 10000)
        .find(|id| {
            let n = format!("disp{id}");
            t.st.domain(&n).is_none()
                && !t.st.domains.values().any(|d| {
                    d.class == Class::DispVM
                        && d.props.get("dispid").map(String::as_str) == Some(&id.to_string())
                })
        })
        .ok_or_else(|| QubesError::qubes("No unused disposable id left"))
}

fn caller_default_dispvm(t: &Txn, src: &str) -> String {
    t.st.domain(src)
        .and_then(|d| props::vm_get(&t.st, d, "default_dispvm"))
        .unwrap_or_default()
}

/// Creates a disposable from `template` (the caller's `default_dispvm` when None); returns
/// its name and uuid.
pub fn create_disposable(
    t: &mut Txn,
    src: &str,
    template: Option<String>,
) -> Result<(String, String), QubesError> {
    let template = match template {
        Some(tpl) => tpl,
        None => {
            if t.st.domain(src).is_none() {
                return Err(QubesError::no_such_vm(src));
            }
            caller_default_dispvm(t, src)
        }
    };
    let tpl = t
        .st
        .domain(&template)
        .filter(|d| props::vm_flag(&t.st, d, "template_for_dispvms"))
        .ok_or_else(|| {
            QubesError::qubes(
                "Refusing to create disposable out of app qube which has template_for_dispvms=False",
            )
        })?
        .clone();
    let dispid = new_dispid(t)?;
    let name = format!("disp{dispid}");
    let mut d = new_domain(t, Class::DispVM, &name)?;
    d.props.insert("dispid".into(), dispid.to_string());
    d.props.insert("template".into(), template.clone());
    d.props.insert("auto_cleanup".into(), "True".into());
    init_disposable(t, &mut d, &tpl)?;
    let uuid = d.uuid().to_string();
    d.volumes = crate::volumes::default_volume_config(&t.st, &d, None, &[])?;
    t.st.domains.insert(name.as_str().into(), Arc::new(d));
    t.fire("", "domain-add", &[("vm", &name)]);
    create_on_disk(t, &name)?;
    tags::add_created_by(t, &name, &format!("created-by-{src}"))?;
    tags::add(t, &name, &format!("disp-created-by-{src}"));
    t.save = true;
    Ok((name, uuid))
}

/// Removes a qube: refused for dom0, packaged qubes, running ones and qubes others use; its
/// data goes only once the removal is saved.
pub fn remove(t: &mut Txn, vm: &str) -> Result<(), QubesError> {
    let d =
        t.st.domain(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?
            .clone();
    if d.class == Class::AdminVM {
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            "'dom0' cannot be removed",
        ));
    }
    if d.class.is_local_qube() && props::vm_flag(&t.st, &d, "installed_by_rpm") {
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            format!("VM installed by package manager: {}", d.name),
        ));
    }
    if !matches!(d.power, PowerState::Halted) && d.class != Class::RemoteVM {
        return Err(not_halted(&d.name));
    }
    t.fire("", "domain-pre-delete", &[("vm", &d.name)]);
    if let Some(why) = referenced_by(&t.st, &d.name) {
        tracing::debug!("cannot remove {}: {why}", d.name);
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            format!(
                "Domain is in use: {};  see 'journalctl -u qubesd -e' in dom0 for details",
                py_repr(&d.name)
            ),
        ));
    }
    if let Some(why) = crate::devices::provided_to_others(&t.st, &d) {
        return Err(QubesError::new(ExcKind::QubesVMInUseError, why));
    }
    delete(t, &d)
}

/// Takes a qube out of the state (it may be removed): `domain-delete` and, once committed,
/// its hypervisor definition, volumes and directory (finished at the next start if a crash
/// interrupts it: the intent).
pub fn delete(t: &mut Txn, d: &Domain) -> Result<(), QubesError> {
    let intent = intents::record(&t.env.state_dir, d)
        .map_err(|e| QubesError::qubes(format!("Cannot prepare the removal of {}: {e}", d.name)))?;
    let undo_intent = intent.clone();
    t.undo_on_failure(Box::new(move || intents::clear(&undo_intent)));
    let vols = crate::storage::volumes(&t.st, d);
    if d.class.is_local_qube() && props::vm_flag(&t.st, d, "autostart") {
        autostart::after_remove(t, &d.name);
    }
    t.st.domains.remove(d.name.as_str());
    t.fire("", "domain-delete", &[("vm", &d.name)]);
    if let Some(h) = t.env.hv.clone() {
        let name = d.name.clone();
        t.after_commit(Box::new(move || {
            if let Err(e) = h.undefine(&name) {
                // The reference only logs failures to clean up after a removed qube.
                tracing::warn!("undefining {name}: {e}");
            }
        }));
    }
    let qube_dir = t.env.state_dir.join(d.class.dir_prefix()).join(&d.name);
    let remove = crate::storage::remove_from_disk(vols, qube_dir);
    // Until the data is gone no qube of that name may be created (its directory is deleted).
    let removing = t.env.being_removed.clone();
    removing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(d.name.clone());
    let (undo_set, name) = (removing.clone(), d.name.clone());
    t.undo_on_failure(Box::new(move || {
        undo_set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
    }));
    let name = d.name.clone();
    t.after_commit(Box::new(move || {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(remove)).is_err() {
            tracing::error!("removing the data of {name} panicked");
        }
        intents::clear(&intent);
        removing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
    }));
    t.save = true;
    Ok(())
}

/// Sets a qube property from a creator's feature (`set-created-guivm`).
pub(super) fn set_created_guivm(t: &mut Txn, vm: &str, guivm: &str) -> Result<(), QubesError> {
    properties::set_vm(t, vm, "guivm", guivm.as_bytes())
}

/// Why a qube cannot be removed: a non-default qube property of another qube or a global
/// property points at it.
pub fn referenced_by(st: &State, name: &str) -> Option<String> {
    for (k, v) in &st.global {
        if v == name && props::global_prop(k).is_some_and(|d| d.ty == PType::Vm) {
            return Some(format!("global property {k}"));
        }
    }
    for d in st.domains.values() {
        if d.name == name {
            continue;
        }
        for (k, v) in &d.props {
            if v == name && props::vm_prop(d.class, k).is_some_and(|p| p.ty == PType::Vm) {
                return Some(format!("{}.{k}", d.name));
            }
        }
    }
    None
}
