//! The method table and the handlers of the Admin API calls that need no running qube
//! (admin-api.md §2.1-§2.4, §2.8), with the extension rules of §5.

use std::sync::Arc;

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use crate::core::{Ctx, Reply, Socket};
use crate::lifecycle;
use crate::model::{Class, Domain, Label, MAX_DEFAULT_LABEL, PowerState};
use crate::names;
use crate::props::{self, Access, PType, PropDef};
use crate::setters;
use crate::storage::api as sapi;

/// Whether an argument or payload must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Must be non-empty.
    Yes,
    /// Must be empty.
    No,
    /// Either.
    Any,
}

/// Handler signature.
pub type Handler = fn(&mut Ctx) -> Result<Reply, QubesError>;

/// One method of a socket.
pub struct Method {
    /// Full method name.
    pub name: &'static str,
    /// Socket serving it.
    pub socket: Socket,
    /// Argument rule.
    pub arg: Want,
    /// Payload rule.
    pub payload: Want,
    /// `Some(true)`: destination must be dom0; `Some(false)`: must not be; `None`: any.
    pub dest_adminvm: Option<bool>,
    /// Whether the call may change state (runs off the async workers, then saves).
    pub write: bool,
    /// The code.
    pub handler: Handler,
}

const fn m(
    name: &'static str,
    arg: Want,
    payload: Want,
    dest_adminvm: Option<bool>,
    write: bool,
    handler: Handler,
) -> Method {
    Method {
        name,
        socket: Socket::Admin,
        arg,
        payload,
        dest_adminvm,
        write,
        handler,
    }
}

const fn on(mut method: Method, socket: Socket) -> Method {
    method.socket = socket;
    method
}

use Want::{Any, No, Yes};
const DOM0: Option<bool> = Some(true);
const ANY: Option<bool> = None;
const NOT_DOM0: Option<bool> = Some(false);

static METHODS: &[Method] = &[
    m("admin.vmclass.List", No, No, DOM0, false, vmclass_list),
    m(
        "admin.deviceclass.List",
        No,
        No,
        DOM0,
        false,
        deviceclass_list,
    ),
    m("admin.vm.List", No, No, ANY, false, vm_list),
    m("admin.label.List", No, No, DOM0, false, label_list),
    m("admin.label.Get", Yes, No, DOM0, false, label_get),
    m("admin.label.Index", Yes, No, DOM0, false, label_index),
    m("admin.label.Create", Yes, Yes, DOM0, true, label_create),
    m("admin.label.Remove", Yes, No, DOM0, true, label_remove),
    m("admin.vm.Create.AppVM", Any, Any, DOM0, true, create_appvm),
    m(
        "admin.vm.Create.TemplateVM",
        Any,
        Any,
        DOM0,
        true,
        create_templatevm,
    ),
    m(
        "admin.vm.Create.StandaloneVM",
        Any,
        Any,
        DOM0,
        true,
        create_standalonevm,
    ),
    m(
        "admin.vm.Create.AdminVM",
        Any,
        Any,
        DOM0,
        true,
        create_adminvm,
    ),
    m(
        "admin.vm.Create.DispVM",
        Any,
        Any,
        DOM0,
        true,
        create_dispvm,
    ),
    m(
        "admin.vm.Create.RemoteVM",
        Any,
        Any,
        DOM0,
        true,
        create_remotevm,
    ),
    m(
        "admin.vm.CreateInPool.AppVM",
        Any,
        Any,
        DOM0,
        true,
        create_in_pool_appvm,
    ),
    m(
        "admin.vm.CreateInPool.TemplateVM",
        Any,
        Any,
        DOM0,
        true,
        create_in_pool_templatevm,
    ),
    m(
        "admin.vm.CreateInPool.StandaloneVM",
        Any,
        Any,
        DOM0,
        true,
        create_in_pool_standalonevm,
    ),
    m(
        "admin.vm.CreateInPool.AdminVM",
        Any,
        Any,
        DOM0,
        true,
        create_in_pool_adminvm,
    ),
    m(
        "admin.vm.CreateInPool.DispVM",
        Any,
        Any,
        DOM0,
        true,
        create_in_pool_dispvm,
    ),
    m(
        "admin.vm.CreateInPool.RemoteVM",
        Any,
        Any,
        DOM0,
        true,
        create_in_pool_remotevm,
    ),
    m(
        "admin.vm.CreateDisposable",
        Any,
        Any,
        ANY,
        true,
        create_disposable,
    ),
    m("admin.vm.Remove", No, No, ANY, true, vm_remove),
    m(
        "admin.property.List",
        No,
        No,
        DOM0,
        false,
        global_property_list,
    ),
    m(
        "admin.property.Get",
        Yes,
        No,
        DOM0,
        false,
        global_property_get,
    ),
    m(
        "admin.property.GetAll",
        No,
        No,
        DOM0,
        false,
        global_property_get_all,
    ),
    m(
        "admin.property.GetDefault",
        Yes,
        No,
        DOM0,
        false,
        global_property_get_default,
    ),
    m(
        "admin.property.Help",
        Yes,
        No,
        DOM0,
        false,
        global_property_help,
    ),
    m(
        "admin.property.Set",
        Yes,
        Any,
        DOM0,
        true,
        global_property_set,
    ),
    m(
        "admin.property.Reset",
        Yes,
        No,
        DOM0,
        true,
        global_property_reset,
    ),
    m(
        "admin.vm.property.List",
        No,
        No,
        ANY,
        false,
        vm_property_list,
    ),
    m(
        "admin.vm.property.Get",
        Yes,
        No,
        ANY,
        false,
        vm_property_get,
    ),
    m(
        "admin.vm.property.GetAll",
        No,
        No,
        ANY,
        false,
        vm_property_get_all,
    ),
    m(
        "admin.vm.property.GetDefault",
        Yes,
        No,
        ANY,
        false,
        vm_property_get_default,
    ),
    m(
        "admin.vm.property.Help",
        Yes,
        No,
        ANY,
        false,
        vm_property_help,
    ),
    m(
        "admin.vm.property.Set",
        Yes,
        Any,
        ANY,
        true,
        vm_property_set,
    ),
    m(
        "admin.vm.property.Reset",
        Yes,
        No,
        ANY,
        true,
        vm_property_reset,
    ),
    m("admin.vm.feature.List", No, No, ANY, false, feature_list),
    m("admin.vm.feature.Get", Yes, No, ANY, false, feature_get),
    m(
        "admin.vm.feature.CheckWithTemplate",
        Yes,
        No,
        ANY,
        false,
        feature_check_template,
    ),
    m(
        "admin.vm.feature.CheckWithNetvm",
        Yes,
        No,
        ANY,
        false,
        feature_check_netvm,
    ),
    m(
        "admin.vm.feature.CheckWithAdminVM",
        Yes,
        No,
        ANY,
        false,
        feature_check_adminvm,
    ),
    m(
        "admin.vm.feature.CheckWithTemplateAndAdminVM",
        Yes,
        No,
        ANY,
        false,
        feature_check_template_adminvm,
    ),
    m("admin.vm.feature.Set", Yes, Any, ANY, true, feature_set),
    m(
        "admin.vm.feature.Remove",
        Yes,
        No,
        ANY,
        true,
        feature_remove,
    ),
    m("admin.vm.tag.List", No, No, ANY, false, tag_list),
    m("admin.vm.tag.Get", Yes, No, ANY, false, tag_get),
    m("admin.vm.tag.Set", Yes, No, ANY, true, tag_set),
    m("admin.vm.tag.Remove", Yes, No, ANY, true, tag_remove),
    m("admin.vm.notes.Get", No, No, NOT_DOM0, false, notes_get),
    m("admin.vm.notes.Set", No, Yes, NOT_DOM0, true, notes_set),
    // Hypervisor calls block, so these run off the async workers like writes do.
    m(
        "admin.vm.CurrentState",
        No,
        No,
        ANY,
        true,
        lifecycle::current_state,
    ),
    m("admin.vm.Start", No, No, ANY, true, lifecycle::vm_start),
    m(
        "admin.vm.Shutdown",
        Any,
        No,
        ANY,
        true,
        lifecycle::vm_shutdown,
    ),
    m("admin.vm.Kill", No, No, ANY, true, lifecycle::vm_kill),
    m("admin.vm.Pause", No, No, ANY, true, lifecycle::vm_pause),
    m("admin.vm.Unpause", No, No, ANY, true, lifecycle::vm_unpause),
    m("admin.vm.Suspend", No, No, ANY, true, lifecycle::vm_suspend),
    m("admin.vm.Resume", No, No, ANY, true, lifecycle::vm_resume),
    m("admin.vm.Console", No, No, ANY, true, lifecycle::vm_console),
    m("admin.vm.Stats", No, No, ANY, false, lifecycle::vm_stats),
    m("admin.Events", No, No, ANY, false, events),
    m(
        "admin.vm.firewall.Get",
        No,
        No,
        NOT_DOM0,
        false,
        crate::firewall::get,
    ),
    m(
        "admin.vm.firewall.Set",
        No,
        Yes,
        NOT_DOM0,
        true,
        crate::firewall::set,
    ),
    m(
        "admin.vm.firewall.Reload",
        No,
        No,
        NOT_DOM0,
        true,
        crate::firewall::reload,
    ),
    // Devices: every method for each class of devices::CLASSES (the reference generates them
    // from its entry points).
    m(
        "admin.vm.device.block.Available",
        Any,
        No,
        ANY,
        true,
        crate::devices::available,
    ),
    m(
        "admin.vm.device.block.Assigned",
        Any,
        No,
        ANY,
        false,
        crate::devices::assigned,
    ),
    m(
        "admin.vm.device.block.Attached",
        Any,
        No,
        ANY,
        true,
        crate::devices::attached,
    ),
    m(
        "admin.vm.device.block.Assign",
        Yes,
        Yes,
        ANY,
        true,
        crate::devices::assign,
    ),
    m(
        "admin.vm.device.block.Unassign",
        Yes,
        No,
        ANY,
        true,
        crate::devices::unassign,
    ),
    m(
        "admin.vm.device.block.Attach",
        Yes,
        Any,
        ANY,
        true,
        crate::devices::attach,
    ),
    m(
        "admin.vm.device.block.Detach",
        Yes,
        No,
        ANY,
        true,
        crate::devices::detach,
    ),
    m(
        "admin.vm.device.block.Set.assignment",
        Yes,
        Yes,
        ANY,
        true,
        crate::devices::set_assignment,
    ),
    m(
        "admin.vm.device.pci.Available",
        Any,
        No,
        ANY,
        true,
        crate::devices::available,
    ),
    m(
        "admin.vm.device.pci.Assigned",
        Any,
        No,
        ANY,
        false,
        crate::devices::assigned,
    ),
    m(
        "admin.vm.device.pci.Attached",
        Any,
        No,
        ANY,
        true,
        crate::devices::attached,
    ),
    m(
        "admin.vm.device.pci.Assign",
        Yes,
        Yes,
        ANY,
        true,
        crate::devices::assign,
    ),
    m(
        "admin.vm.device.pci.Unassign",
        Yes,
        No,
        ANY,
        true,
        crate::devices::unassign,
    ),
    m(
        "admin.vm.device.pci.Attach",
        Yes,
        Any,
        ANY,
        true,
        crate::devices::attach,
    ),
    m(
        "admin.vm.device.pci.Detach",
        Yes,
        No,
        ANY,
        true,
        crate::devices::detach,
    ),
    m(
        "admin.vm.device.pci.Set.assignment",
        Yes,
        Yes,
        ANY,
        true,
        crate::devices::set_assignment,
    ),
    m(
        "admin.vm.device.denied.List",
        No,
        No,
        ANY,
        false,
        crate::devices::denied_list,
    ),
    m(
        "admin.vm.device.denied.Add",
        No,
        Any,
        ANY,
        true,
        crate::devices::denied_add,
    ),
    m(
        "admin.vm.device.denied.Remove",
        No,
        Any,
        ANY,
        true,
        crate::devices::denied_remove,
    ),
    m("admin.pool.List", No, No, DOM0, false, sapi::pool_list),
    m(
        "admin.pool.ListDrivers",
        No,
        No,
        DOM0,
        false,
        sapi::pool_list_drivers,
    ),
    m("admin.pool.Info", Yes, No, DOM0, false, sapi::pool_info),
    m(
        "admin.pool.UsageDetails",
        Yes,
        No,
        DOM0,
        false,
        sapi::pool_usage_details,
    ),
    m("admin.pool.Add", Yes, Yes, DOM0, true, sapi::pool_add),
    m("admin.pool.Remove", Yes, No, DOM0, true, sapi::pool_remove),
    m(
        "admin.pool.Set.revisions_to_keep",
        Yes,
        Yes,
        DOM0,
        true,
        sapi::pool_set_revisions_to_keep,
    ),
    m(
        "admin.pool.Set.ephemeral_volatile",
        Yes,
        Yes,
        DOM0,
        true,
        sapi::pool_set_ephemeral_volatile,
    ),
    m(
        "admin.pool.volume.List",
        Yes,
        No,
        DOM0,
        false,
        sapi::pool_volume_list,
    ),
    m(
        "admin.vm.volume.List",
        No,
        No,
        ANY,
        false,
        sapi::vm_volume_list,
    ),
    m(
        "admin.vm.volume.Info",
        Yes,
        No,
        ANY,
        false,
        sapi::vm_volume_info,
    ),
    m(
        "admin.vm.volume.ListSnapshots",
        Yes,
        No,
        ANY,
        false,
        sapi::vm_volume_list_snapshots,
    ),
    m(
        "admin.vm.volume.Revert",
        Yes,
        Yes,
        ANY,
        true,
        sapi::vm_volume_revert,
    ),
    m(
        "admin.vm.volume.CloneFrom",
        Yes,
        No,
        ANY,
        true,
        sapi::vm_volume_clone_from,
    ),
    m(
        "admin.vm.volume.CloneTo",
        Yes,
        Yes,
        ANY,
        true,
        sapi::vm_volume_clone_to,
    ),
    m(
        "admin.vm.volume.Resize",
        Yes,
        Yes,
        ANY,
        true,
        sapi::vm_volume_resize,
    ),
    m(
        "admin.vm.volume.Clear",
        Yes,
        No,
        ANY,
        true,
        sapi::vm_volume_clear,
    ),
    m(
        "admin.vm.volume.Set.revisions_to_keep",
        Yes,
        Yes,
        ANY,
        true,
        sapi::vm_volume_set_revisions_to_keep,
    ),
    m(
        "admin.vm.volume.Set.rw",
        Yes,
        Yes,
        ANY,
        true,
        sapi::vm_volume_set_rw,
    ),
    m(
        "admin.vm.volume.Set.ephemeral",
        Yes,
        Yes,
        ANY,
        true,
        sapi::vm_volume_set_ephemeral,
    ),
    on(
        m(
            "internal.vm.volume.ImportBegin",
            Yes,
            Any,
            ANY,
            true,
            sapi::import_begin,
        ),
        Socket::Internal,
    ),
    on(
        m(
            "internal.vm.volume.ImportEnd",
            Yes,
            Yes,
            ANY,
            true,
            sapi::import_end,
        ),
        Socket::Internal,
    ),
    on(
        m("internal.GetSystemInfo", No, No, DOM0, false, system_info),
        Socket::Internal,
    ),
    on(
        m("qubes.NotifyUpdates", No, Yes, DOM0, true, notify_updates),
        Socket::Misc,
    ),
];

/// Finds a method served on a socket.
pub fn lookup(socket: Socket, name: &str) -> Option<&'static Method> {
    METHODS
        .iter()
        .find(|m| m.socket == socket && m.name == name)
}

/// An OK reply with this text.
pub(crate) fn ok(s: impl Into<String>) -> Result<Reply, QubesError> {
    Ok(Reply::Ok(s.into().into_bytes()))
}

/// An empty OK reply.
pub(crate) fn empty() -> Result<Reply, QubesError> {
    Ok(Reply::Ok(Vec::new()))
}

/// One line per item, each ending in `\n`.
pub(crate) fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let mut out = String::new();
    for i in items {
        out.push_str(i.as_ref());
        out.push('\n');
    }
    out
}

/// Python `str()` of a value in an event: None is `None`.
pub fn ev_str(ty: PType, v: &str) -> String {
    if v.is_empty() && ty == PType::Vm {
        "None".into()
    } else {
        v.to_string()
    }
}

/// `QubesVMNotHaltedError` for a qube that must be halted.
pub(crate) fn not_halted(vm: &str) -> QubesError {
    QubesError::new(
        ExcKind::QubesVMNotHaltedError,
        format!("Domain is not powered off: {}", py_repr(vm)),
    )
}

/// `enforce_arg` failure.
pub(crate) fn arg_not_in(what: &str) -> QubesError {
    QubesError::denied(format!("Argument not in {}", py_repr(what)))
}

// ---- classes, qubes, labels -------------------------------------------------------------

fn vmclass_list(_: &mut Ctx) -> Result<Reply, QubesError> {
    // The reference lists its entry points sorted by name.
    let mut names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
    names.sort_unstable();
    ok(lines(names))
}

fn deviceclass_list(_: &mut Ctx) -> Result<Reply, QubesError> {
    ok("block\npci\n")
}

/// One `admin.vm.List` line.
pub fn vm_list_line(d: &Domain) -> String {
    format!(
        "{} class={} state={} uuid={}\n",
        d.name,
        d.class.name(),
        d.power.name(),
        d.uuid()
    )
}

fn vm_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    let shown: Vec<&Domain> = if c.dest == "dom0" {
        c.st.domains_sorted().collect()
    } else {
        vec![c.dest_domain()]
    };
    // A caller other than dom0 sees what the policy allows it to list (ask counts as deny).
    let visible = |d: &Domain| match &c.policy {
        None => true,
        Some((rules, info)) => {
            crate::policy::allows(rules, info, "admin.vm.List+", &c.src, &d.name)
        }
    };
    let mut out = String::new();
    for d in shown.into_iter().filter(|d| visible(d)) {
        out.push_str(&vm_list_line(d));
    }
    ok(out)
}

fn label_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    ok(lines(c.st.labels.values().map(|l| l.name.as_str())))
}

fn find_label_arg<'a>(c: &'a Ctx) -> Result<&'a Label, QubesError> {
    names::validate_label_name(&c.arg)?;
    c.st.find_label_for_api(&c.arg).ok_or_else(|| {
        QubesError::new(
            ExcKind::QubesLabelNotFoundError,
            format!("Label does not exist: {}", c.arg),
        )
    })
}

fn label_get(c: &mut Ctx) -> Result<Reply, QubesError> {
    ok(find_label_arg(c)?.color.clone())
}

fn label_index(c: &mut Ctx) -> Result<Reply, QubesError> {
    ok(find_label_arg(c)?.index.to_string())
}

fn label_create(c: &mut Ctx) -> Result<Reply, QubesError> {
    names::validate_label_name(&c.arg)?;
    if c.arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QubesError::new(
            ExcKind::QubesInvalidLabelError,
            "Label must not be a digit",
        ));
    }
    let color = validate_label_value(&c.untrusted_payload)?;
    if c.st.labels.values().any(|l| l.name == c.arg) {
        return Err(QubesError::new(
            ExcKind::QubesLabelInUseError,
            format!("Label is still in use: {}", py_repr(&c.arg)),
        ));
    }
    let index =
        c.st.labels
            .keys()
            .max()
            .copied()
            .unwrap_or(0)
            .max(MAX_DEFAULT_LABEL)
            + 1;
    // The reference stores the raw payload (a bug that breaks label.Get until restart); we
    // store the validated colour.
    c.st.labels.insert(
        index,
        Label {
            index,
            name: c.arg.clone(),
            color,
        },
    );
    c.save = true;
    empty()
}

fn validate_label_value(untrusted: &[u8]) -> Result<String, QubesError> {
    let e = |m: &str| Err(QubesError::new(ExcKind::QubesInvalidLabelValueError, m));
    if untrusted.is_empty() {
        return e("Label value must be set");
    }
    let Ok(s) = std::str::from_utf8(untrusted) else {
        return e("Label value must be encoded in ASCII");
    };
    if !s.is_ascii() {
        return e("Label value must be encoded in ASCII");
    }
    let v = py_strip(s);
    if v.len() != 8 {
        return e("Label value must have length of 8");
    }
    if !v.starts_with("0x") {
        return e("Label value must start with: 0x");
    }
    if !v[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
        return e(
            "Label value must only contain hexadecimal digits after prefix: 0123456789abcdefABCDEF",
        );
    }
    Ok(v.to_string())
}

/// Python `str.strip()` for ASCII text.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
}

/// Python `bytes.strip()`.
pub fn py_strip_bytes(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Python `str.splitlines()` for ASCII text (`\n`, `\r`, `\r\n`, `\x0b`, `\x0c`, `\x1c`-`\x1e`).
pub fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if matches!(b, b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e) {
            out.push(&s[start..i]);
            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push(&s[start..]);
    }
    out
}

fn label_remove(c: &mut Ctx) -> Result<Reply, QubesError> {
    let label = find_label_arg(c)?.clone();
    if label.index <= MAX_DEFAULT_LABEL {
        return Err(QubesError::protocol("Can only remove custom labels"));
    }
    if c.st.domains.values().any(|d| d.label() == label.name) {
        return Err(QubesError::new(
            ExcKind::QubesLabelInUseError,
            format!(
                "Label is still in use: Label({}, {}, {})",
                label.index,
                py_repr(&label.color),
                py_repr(&label.name)
            ),
        ));
    }
    c.st.labels.remove(&label.index);
    c.save = true;
    empty()
}

// ---- create / remove --------------------------------------------------------------------

macro_rules! create_fns {
    ($($f:ident => $class:ident, $pool:expr);* $(;)?) => {
        $(fn $f(c: &mut Ctx) -> Result<Reply, QubesError> {
            vm_create(c, Class::$class, $pool)
        })*
    };
}

create_fns! {
    create_appvm => AppVM, false;
    create_templatevm => TemplateVM, false;
    create_standalonevm => StandaloneVM, false;
    create_adminvm => AdminVM, false;
    create_dispvm => DispVM, false;
    create_remotevm => RemoteVM, false;
    create_in_pool_appvm => AppVM, true;
    create_in_pool_templatevm => TemplateVM, true;
    create_in_pool_standalonevm => StandaloneVM, true;
    create_in_pool_adminvm => AdminVM, true;
    create_in_pool_dispvm => DispVM, true;
    create_in_pool_remotevm => RemoteVM, true;
}

/// Volume names a creation payload may name.
const VOLUME_NAMES: [&str; 4] = ["root", "private", "volatile", "kernel"];

fn vm_create(c: &mut Ctx, class: Class, allow_pool: bool) -> Result<Reply, QubesError> {
    let mut template: Option<String> = None;
    let mut invalid_template = false;
    if !c.arg.is_empty() {
        if !class.has_template() {
            return Err(QubesError::protocol(format!(
                "{} cannot be based on template",
                class.name()
            )));
        }
        if c.st.domain(&c.arg).is_some() {
            template = Some(c.arg.clone());
        } else {
            invalid_template = true;
        }
    }
    let payload = std::str::from_utf8(&c.untrusted_payload)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::protocol("Parameters contains non-ASCII characters"))?
        .to_string();
    let mut name: Option<String> = None;
    let mut label: Option<String> = None;
    let mut label_seen = false;
    let mut invalid_label = false;
    let mut pool: Option<String> = None;
    let mut pools: Vec<(String, String)> = Vec::new();
    let mut invalid_pool: Option<String> = None;
    for untrusted_param in payload.split(' ') {
        let Some((key, value)) = untrusted_param.split_once('=') else {
            return Err(QubesError::silent("creation parameter without '='"));
        };
        let dup = match key {
            "name" => name.is_some(),
            "label" => label_seen,
            _ => false,
        };
        if dup {
            return Err(QubesError::protocol("Options must be unique"));
        }
        match key {
            "name" => {
                names::validate_name(value)?;
                name = Some(value.to_string());
            }
            "label" => {
                validate_label_for_creation(value)?;
                label_seen = true;
                match c.st.find_label_for_api(value) {
                    Some(l) => label = Some(l.name.clone()),
                    None => invalid_label = true,
                }
            }
            "pool" if allow_pool => {
                if pool.is_some() {
                    return Err(QubesError::protocol("Option 'pool' must be unique"));
                }
                if c.st.pool(value).is_none() {
                    invalid_pool = Some(value.to_string());
                }
                pool = Some(value.to_string());
            }
            k if allow_pool && k.starts_with("pool:") => {
                let vol = &k[5..];
                if !VOLUME_NAMES.contains(&vol) {
                    return Err(QubesError::protocol(
                        "Volume must be one of: root, private, volatile, kernel",
                    ));
                }
                if pools.iter().any(|(v, _)| v == vol) {
                    return Err(QubesError::protocol(format!(
                        "Option 'pool:{vol}' must be unique"
                    )));
                }
                if c.st.pool(value).is_none() {
                    invalid_pool = Some(value.to_string());
                }
                pools.push((vol.to_string(), value.to_string()));
            }
            k => {
                if !allow_pool && (k == "pool" || k.starts_with("pool:")) {
                    return Err(QubesError::protocol(
                        "Pool option specified but 'allow_pool' is False",
                    ));
                }
                return Err(QubesError::protocol(
                    "Options does not match: name, label, pool, pool:",
                ));
            }
        }
    }
    let Some(name) = name else {
        return Err(QubesError::protocol("Creation requested without key: name"));
    };
    let Some(label) = label.filter(|_| !invalid_label) else {
        return Err(QubesError::protocol(
            "Creation requested without key: label",
        ));
    };
    if pool.is_some() && !pools.is_empty() {
        return Err(QubesError::protocol(
            "Conflicting options specified: 'pool=', 'pool:volume='",
        ));
    }
    // Existence checks come after the permission check, so a denied caller cannot probe.
    if c.st.domain(&name).is_some() {
        return Err(QubesError::new(
            ExcKind::QubesVMAlreadyExistsError,
            format!("Qube already exists: {name}"),
        ));
    }
    if invalid_template {
        return Err(QubesError::no_such_vm(&c.arg));
    }
    if let Some(p) = invalid_pool {
        return Err(QubesError::qubes(format!("Unknown storage pool {p}")));
    }
    if class == Class::AdminVM {
        // The reference's AdminVM cannot be instantiated a second time.
        return Err(QubesError::silent("cannot create another AdminVM"));
    }
    let template = match template {
        Some(t) => Some(t),
        None if class == Class::AppVM => Some(default_template_for_create(c, "default_template")?),
        None if class == Class::DispVM => Some(default_template_for_create(c, "default_dispvm")?),
        None => None,
    };
    let mut d = new_domain(c, class, &name)?;
    d.props.insert("label".into(), label);
    if let Some(t) = &template {
        let def = props::vm_prop(class, "template").expect("template property");
        let t = setters::validate_vm_ref(c.st, &d, def, t)?;
        d.props.insert("template".into(), t);
    }
    finish_create(c, d, pool.as_deref(), &pools)?;
    c.save = true;
    empty()
}

fn validate_label_for_creation(v: &str) -> Result<(), QubesError> {
    names::validate_label_name(v)?;
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QubesError::new(
            ExcKind::QubesInvalidLabelError,
            "Label must not be a digit",
        ));
    }
    Ok(())
}

fn default_template_for_create(c: &Ctx, global: &str) -> Result<String, QubesError> {
    match props::global_get(c.st, global) {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(QubesError::value(
            "Template for the qube not specified, nor default template set.",
        )),
    }
}

/// A new qube of `class` named `name` with a fresh qid and uuid and the automatic tags.
fn new_domain(c: &Ctx, class: Class, name: &str) -> Result<Domain, QubesError> {
    let qid =
        c.st.next_qid()
            .ok_or_else(|| QubesError::qubes("No unused qube id left"))?;
    let mut d = Domain::new(class, name, qid);
    d.props.insert("name".into(), name.into());
    d.props.insert("qid".into(), qid.to_string());
    d.props
        .insert("uuid".into(), uuid::Uuid::new_v4().hyphenated().to_string());
    if class.is_local_qube() {
        // Tags the reference's gui/audio extensions keep in step with guivm/audiovm.
        for (prop, global) in [("audiovm", "default_audiovm"), ("guivm", "default_guivm")] {
            if let Some(v) = props::global_get(c.st, global).filter(|v| !v.is_empty()) {
                let _ = prop;
                d.tags.insert(format!("{}-{v}", &prop));
            }
        }
    }
    Ok(d)
}

/// Adds a freshly built qube: volume configuration, `created-by` tag and its reactions,
/// events in the reference's order.
fn finish_create(
    c: &mut Ctx,
    mut d: Domain,
    pool: Option<&str>,
    pools: &[(String, String)],
) -> Result<(), QubesError> {
    if d.class.is_local_qube() {
        d.volumes = crate::volumes::default_volume_config(c.st, &d, pool, pools)?;
    }
    let name = d.name.clone();
    c.st.domains.insert(name.clone(), Arc::new(d));
    c.fire("", "domain-add", &[("vm", &name)]);
    let src = c.src.clone();
    add_created_by_tags(c, &name, &format!("created-by-{src}"))?;
    if let Some(d) = c.st.domain(&name).filter(|d| d.class.is_local_qube()) {
        // Lay out the volumes last: everything that could refuse the call has run. A later
        // failure (saving qubes.xml) removes them again.
        crate::storage::create_all(c.st, d)?;
        let vols = crate::storage::volumes(c.st, d);
        c.on_rollback
            .push(Box::new(move || crate::storage::remove_all(&vols)));
        c.fire(&name, "domain-create-on-disk", &[]);
    }
    Ok(())
}

/// Adds a `created-by-*` tag with the reactions to it: the creator's `tag-created-vm-with`
/// tags and `set-created-guivm` (admin-api.md §5.7). Side effects come before the tag event.
fn add_created_by_tags(c: &mut Ctx, vm: &str, tag: &str) -> Result<(), QubesError> {
    let src = c.src.clone();
    let (extra_tags, guivm) = match c.st.domain(&src) {
        Some(creator) if tag.starts_with("created-by-") => (
            creator
                .feature("tag-created-vm-with")
                .map(|t| t.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default(),
            creator
                .feature("set-created-guivm")
                .filter(|g| !g.is_empty())
                .map(str::to_string),
        ),
        _ => (Vec::new(), None),
    };
    for t in extra_tags {
        if names::validate_tag(&t).is_ok() {
            add_tag(c, vm, &t);
        }
    }
    if let Some(g) = guivm
        && c.st.domain(&g).is_some()
        && c.st.domain(vm).is_some_and(|d| d.class.is_local_qube())
    {
        set_vm_property(c, vm, "guivm", g.as_bytes())?;
    }
    add_tag(c, vm, tag);
    Ok(())
}

fn add_tag(c: &mut Ctx, vm: &str, tag: &str) {
    if let Some(d) = c.st.domain_mut(vm)
        && d.tags.insert(tag.to_string())
    {
        c.fire(vm, format!("domain-tag-add:{tag}"), &[("tag", tag)]);
    }
}

fn create_disposable(c: &mut Ctx) -> Result<Reply, QubesError> {
    if !(c.arg.is_empty() || c.arg == "preload") {
        return Err(arg_not_in("'', 'preload'"));
    }
    let want_uuid = match c.untrusted_payload.as_slice() {
        b"" => false,
        b"uuid" => true,
        _ => {
            return Err(QubesError::protocol(
                "Invalid payload, expected empty string or 'uuid'",
            ));
        }
    };
    let template = if c.dest == "dom0" {
        let src =
            c.st.domain(&c.src)
                .ok_or_else(|| QubesError::no_such_vm(&c.src))?;
        props::vm_get(c.st, src, "default_dispvm").unwrap_or_default()
    } else {
        c.dest.clone()
    };
    if c.arg == "preload" {
        if !template.is_empty() {
            c.fire(
                &template,
                "domain-preload-dispvm-start",
                &[("reason", "autostart was requested")],
            );
        }
        return empty();
    }
    let tpl = c
        .st
        .domain(&template)
        .filter(|t| props::vm_flag(c.st, t, "template_for_dispvms"))
        .ok_or_else(|| {
            QubesError::qubes(
                "Refusing to create disposable out of app qube which has template_for_dispvms=False",
            )
        })?
        .clone();
    let dispid = (0..100)
        .map(|_| rand::random::<u32>() % 10000)
        .find(|id| {
            let n = format!("disp{id}");
            c.st.domain(&n).is_none()
                && !c.st.domains.values().any(|d| {
                    d.class == Class::DispVM
                        && d.props.get("dispid").map(String::as_str) == Some(&id.to_string())
                })
        })
        .ok_or_else(|| QubesError::qubes("No unused disposable id left"))?;
    let name = format!("disp{dispid}");
    let mut d = new_domain(c, Class::DispVM, &name)?;
    d.props.insert("dispid".into(), dispid.to_string());
    d.props.insert("template".into(), template.clone());
    d.props.insert("auto_cleanup".into(), "True".into());
    // Properties explicitly set on the disposable template are cloned.
    for def in props::vm_props(Class::DispVM) {
        if matches!(
            def.name,
            "name" | "qid" | "uuid" | "template" | "dispid" | "auto_cleanup"
        ) || def.access(Class::DispVM) == Access::ReadOnly
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
    let uuid = d.uuid().to_string();
    d.volumes = crate::volumes::default_volume_config(c.st, &d, None, &[])?;
    c.st.domains.insert(name.clone(), Arc::new(d));
    c.fire("", "domain-add", &[("vm", &name)]);
    c.fire(&name, "domain-create-on-disk", &[]);
    let src = c.src.clone();
    add_created_by_tags(c, &name, &format!("created-by-{src}"))?;
    add_tag(c, &name, &format!("disp-created-by-{src}"));
    c.save = true;
    ok(if want_uuid {
        format!("uuid:{uuid}")
    } else {
        name
    })
}

fn vm_remove(c: &mut Ctx) -> Result<Reply, QubesError> {
    let d = c.dest_domain().clone();
    if d.class == Class::AdminVM {
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            "'dom0' cannot be removed",
        ));
    }
    if d.class.is_local_qube() && props::vm_flag(c.st, &d, "installed_by_rpm") {
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            format!("VM installed by package manager: {}", d.name),
        ));
    }
    if !matches!(d.power, PowerState::Halted) && d.class != Class::RemoteVM {
        return Err(not_halted(&d.name));
    }
    c.fire("", "domain-pre-delete", &[("vm", &d.name)]);
    if let Some(why) = setters::referenced_by(c.st, &d.name) {
        tracing::info!("cannot remove {}: {why}", d.name);
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            format!(
                "Domain is in use: {};  see 'journalctl -u qubesd -e' in dom0 for details",
                py_repr(&d.name)
            ),
        ));
    }
    if let Some(why) = crate::devices::provided_to_others(c.st, &d) {
        return Err(QubesError::new(ExcKind::QubesVMInUseError, why));
    }
    let vols = crate::storage::volumes(c.st, &d);
    c.st.domains.remove(&d.name);
    c.fire("", "domain-delete", &[("vm", &d.name)]);
    if let Some(h) = &c.hv
        && let Err(e) = h.undefine(&d.name)
    {
        // The reference only logs failures to clean up after a removed qube.
        tracing::warn!("undefining {}: {e}", d.name);
    }
    // The data goes only once the removal is saved.
    let qube_dir = c.state_dir.join(d.class.dir_prefix()).join(&d.name);
    c.on_commit
        .push(crate::storage::remove_from_disk(vols, qube_dir));
    c.save = true;
    empty()
}

// ---- properties -------------------------------------------------------------------------

/// Which holder a property call addresses.
#[derive(Clone, Copy)]
enum Holder<'a> {
    Global,
    Vm(&'a str),
}

fn holder_def(c: &Ctx, h: Holder) -> Result<&'static PropDef, QubesError> {
    let (def, holder_name) = match h {
        Holder::Global => (props::global_prop(&c.arg), "Qubes".to_string()),
        Holder::Vm(n) => {
            let d = c.st.domain(n).ok_or_else(|| QubesError::no_such_vm(n))?;
            (props::vm_prop(d.class, &c.arg), n.to_string())
        }
    };
    def.ok_or_else(|| {
        QubesError::new(
            ExcKind::QubesNoSuchPropertyError,
            format!("Invalid property {} of {holder_name}", py_repr(&c.arg)),
        )
    })
}

fn holder_get(c: &Ctx, h: Holder, name: &str) -> (Option<String>, bool) {
    match h {
        Holder::Global => (
            props::global_get(c.st, name),
            !c.st.global.contains_key(name),
        ),
        Holder::Vm(n) => match c.st.domain(n) {
            Some(d) => (props::vm_get(c.st, d, name), !d.props.contains_key(name)),
            None => (None, true),
        },
    }
}

fn serialize_prop(c: &Ctx, h: Holder, def: &PropDef) -> String {
    let (value, is_default) = holder_get(c, h, def.name);
    match value {
        None => format!("default=True type={} ", def.ty.tag()),
        Some(v) => format!(
            "default={} type={} {v}",
            setters::bool_word(is_default),
            def.ty.tag()
        ),
    }
}

fn prop_list(c: &Ctx, h: Holder) -> Vec<&'static PropDef> {
    match h {
        Holder::Global => props::global_props().to_vec(),
        Holder::Vm(n) => {
            c.st.domain(n)
                .map(|d| props::vm_props(d.class).to_vec())
                .unwrap_or_default()
        }
    }
}

fn property_list(c: &Ctx, h: Holder) -> Result<Reply, QubesError> {
    ok(lines(prop_list(c, h).iter().map(|d| d.name)))
}

fn property_get(c: &Ctx, h: Holder) -> Result<Reply, QubesError> {
    let def = holder_def(c, h)?;
    ok(serialize_prop(c, h, def))
}

fn property_get_all(c: &Ctx, h: Holder) -> Result<Reply, QubesError> {
    let mut out = String::new();
    for def in prop_list(c, h) {
        out.push_str(def.name);
        out.push(' ');
        let s = serialize_prop(c, h, def);
        for ch in s.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                ch => out.push(ch),
            }
        }
        out.push('\n');
    }
    ok(out)
}

fn property_get_default(c: &Ctx, h: Holder) -> Result<Reply, QubesError> {
    let def = holder_def(c, h)?;
    let value = match h {
        Holder::Global => props::global_default(c.st, def.name),
        Holder::Vm(n) => {
            c.st.domain(n)
                .and_then(|d| props::vm_default(c.st, d, def.name))
        }
    };
    match value {
        None => empty(),
        Some(v) => ok(format!("type={} {v}", def.ty.tag())),
    }
}

fn property_help(c: &Ctx, h: Holder) -> Result<Reply, QubesError> {
    ok(holder_def(c, h)?.help)
}

fn global_property_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    property_list(c, Holder::Global)
}
fn global_property_get(c: &mut Ctx) -> Result<Reply, QubesError> {
    property_get(c, Holder::Global)
}
fn global_property_get_all(c: &mut Ctx) -> Result<Reply, QubesError> {
    property_get_all(c, Holder::Global)
}
fn global_property_get_default(c: &mut Ctx) -> Result<Reply, QubesError> {
    property_get_default(c, Holder::Global)
}
fn global_property_help(c: &mut Ctx) -> Result<Reply, QubesError> {
    property_help(c, Holder::Global)
}
fn vm_property_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dest = c.dest.clone();
    property_list(c, Holder::Vm(&dest))
}
fn vm_property_get(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dest = c.dest.clone();
    property_get(c, Holder::Vm(&dest))
}
fn vm_property_get_all(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dest = c.dest.clone();
    property_get_all(c, Holder::Vm(&dest))
}
fn vm_property_get_default(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dest = c.dest.clone();
    property_get_default(c, Holder::Vm(&dest))
}
fn vm_property_help(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dest = c.dest.clone();
    property_help(c, Holder::Vm(&dest))
}

fn vm_property_set(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dest = c.dest.clone();
    holder_def(c, Holder::Vm(&dest))?;
    let (prop, payload) = (c.arg.clone(), c.untrusted_payload.clone());
    set_vm_property(c, &dest, &prop, &payload)?;
    c.save = true;
    empty()
}

/// Sets a qube property from an untrusted payload: sanitize, validate, store, fire events.
pub fn set_vm_property(
    c: &mut Ctx,
    vm: &str,
    prop: &str,
    untrusted: &[u8],
) -> Result<(), QubesError> {
    let d =
        c.st.domain(vm)
            .ok_or_else(|| QubesError::no_such_vm(vm))?
            .clone();
    let def = props::vm_prop(d.class, prop).ok_or_else(|| {
        QubesError::new(
            ExcKind::QubesNoSuchPropertyError,
            format!("Invalid property {} of {vm}", py_repr(prop)),
        )
    })?;
    let value = setters::sanitize(def, untrusted)?;
    let value = setters::validate_vm_prop(c.st, &d, def, value)?;
    let old = props::vm_get(c.st, &d, def.name);
    let mut kw: Vec<(&str, String)> = vec![
        ("name", def.name.to_string()),
        ("newvalue", ev_str(def.ty, &value)),
    ];
    if let Some(o) = &old {
        kw.push(("oldvalue", ev_str(def.ty, o)));
    }
    let kw_ref: Vec<(&str, &str)> = kw.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.fire(vm, format!("property-pre-set:{}", def.name), &kw_ref);
    setters::pre_set_veto(c.st, vm, def.name, &value, old.as_deref())?;
    c.st.domain_mut(vm)
        .expect("exists")
        .props
        .insert(def.name.to_string(), value.clone());
    setters::vm_side_effects(c, vm, def.name, &value)?;
    c.fire(vm, format!("property-set:{}", def.name), &kw_ref);
    Ok(())
}

fn vm_property_reset(c: &mut Ctx) -> Result<Reply, QubesError> {
    let dest = c.dest.clone();
    let def = holder_def(c, Holder::Vm(&dest))?;
    let d = c.dest_domain().clone();
    match def.access(d.class) {
        Access::ReadOnly => {
            return Err(QubesError::silent(format!("{} cannot be reset", def.name)));
        }
        Access::WriteOnce if d.props.contains_key(def.name) => {
            return Err(QubesError::silent(format!(
                "write-once {} cannot be reset",
                def.name
            )));
        }
        _ => {}
    }
    let old = props::vm_get(c.st, &d, def.name);
    let mut with_default = d.clone();
    with_default.props.remove(def.name);
    let new = props::vm_get(c.st, &with_default, def.name).unwrap_or_default();
    fire_reset_events(c, &dest, def, old.as_deref(), &["property-pre-reset"]);
    if def.name == "template" && d.class.has_template() {
        return Err(QubesError::value(
            match props::global_get(c.st, "default_template") {
                Some(t) if !t.is_empty() && d.class == Class::AppVM => format!(
                    "Cannot unset template. You can set it to the current default ({t}) instead"
                ),
                _ => "Cannot unset template".to_string(),
            },
        ));
    }
    setters::pre_set_veto(c.st, &dest, def.name, &new, old.as_deref())?;
    fire_reset_events(c, &dest, def, old.as_deref(), &["property-pre-del"]);
    c.st.domain_mut(&dest)
        .expect("exists")
        .props
        .remove(def.name);
    setters::check_after_reset(c.st, &dest, def)?;
    fire_reset_post(c, &dest, def, old.as_deref());
    setters::vm_side_effects(c, &dest, def.name, &new)?;
    c.save = true;
    empty()
}

fn fire_reset_events(c: &mut Ctx, subject: &str, def: &PropDef, old: Option<&str>, names: &[&str]) {
    let old = old.map(|o| ev_str(def.ty, o));
    let mut kw: Vec<(&str, &str)> = vec![("name", def.name)];
    if let Some(o) = &old {
        kw.push(("oldvalue", o));
    }
    for ev in names {
        c.fire(subject, format!("{ev}:{}", def.name), &kw);
    }
}

fn fire_reset_pre(c: &mut Ctx, subject: &str, def: &PropDef, old: Option<&str>) {
    fire_reset_events(
        c,
        subject,
        def,
        old,
        &["property-pre-reset", "property-pre-del"],
    );
}

fn fire_reset_post(c: &mut Ctx, subject: &str, def: &PropDef, old: Option<&str>) {
    fire_reset_events(c, subject, def, old, &["property-reset", "property-del"]);
}

fn global_property_set(c: &mut Ctx) -> Result<Reply, QubesError> {
    let def = holder_def(c, Holder::Global)?;
    let value = setters::sanitize(def, &c.untrusted_payload)?;
    let value = setters::validate_global_prop(c.st, def, value)?;
    let old = props::global_get(c.st, def.name);
    let mut kw: Vec<(&str, String)> = vec![
        ("name", def.name.to_string()),
        ("newvalue", ev_str(def.ty, &value)),
    ];
    if let Some(o) = &old {
        kw.push(("oldvalue", ev_str(def.ty, o)));
    }
    let kw_ref: Vec<(&str, &str)> = kw.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.fire("", format!("property-pre-set:{}", def.name), &kw_ref);
    c.st.global.insert(def.name.to_string(), value.clone());
    setters::global_side_effects(c, def.name, old.as_deref(), &value)?;
    c.fire("", format!("property-set:{}", def.name), &kw_ref);
    c.save = true;
    empty()
}

fn global_property_reset(c: &mut Ctx) -> Result<Reply, QubesError> {
    let def = holder_def(c, Holder::Global)?;
    if def.access(Class::AdminVM) == Access::ReadOnly && def.read_only_for & props::cls::GLOBAL != 0
    {
        return Err(QubesError::silent(format!("{} cannot be reset", def.name)));
    }
    let old = props::global_get(c.st, def.name);
    c.st.global.remove(def.name);
    let new = props::global_get(c.st, def.name).unwrap_or_default();
    fire_reset_pre(c, "", def, old.as_deref());
    fire_reset_post(c, "", def, old.as_deref());
    setters::global_side_effects(c, def.name, old.as_deref(), &new)?;
    c.save = true;
    empty()
}

// ---- features ---------------------------------------------------------------------------

fn feature_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    ok(lines(c.dest_domain().features.iter().map(|(k, _)| k)))
}

fn feature_missing(vm: &str, f: &str) -> QubesError {
    QubesError::new(
        ExcKind::QubesFeatureNotFoundError,
        format!("Feature not set for domain {vm}: {f}"),
    )
}

fn feature_get(c: &mut Ctx) -> Result<Reply, QubesError> {
    let d = c.dest_domain();
    match d.feature(&c.arg) {
        Some(v) => ok(v.to_string()),
        None => Err(feature_missing(&d.name, &c.arg)),
    }
}

/// Walks a chain of qubes (template or netvm links) looking for a feature.
fn feature_chain(c: &Ctx, link: &str, with_adminvm: bool) -> Result<Reply, QubesError> {
    let start = c.dest_domain();
    let mut cur = Some(start);
    let mut seen = 0;
    while let Some(d) = cur {
        if let Some(v) = d.feature(&c.arg) {
            return ok(v.to_string());
        }
        seen += 1;
        if seen > 64 || link.is_empty() {
            break;
        }
        cur = match props::vm_prop(d.class, link) {
            Some(_) => props::vm_ref(c.st, d, link),
            None => None,
        };
    }
    if with_adminvm && let Some(v) = c.st.domain("dom0").and_then(|d0| d0.feature(&c.arg)) {
        return ok(v.to_string());
    }
    Err(feature_missing(&start.name, &c.arg))
}

fn feature_check_template(c: &mut Ctx) -> Result<Reply, QubesError> {
    feature_chain(c, "template", false)
}
fn feature_check_netvm(c: &mut Ctx) -> Result<Reply, QubesError> {
    feature_chain(c, "netvm", false)
}
fn feature_check_adminvm(c: &mut Ctx) -> Result<Reply, QubesError> {
    feature_chain(c, "", true)
}
fn feature_check_template_adminvm(c: &mut Ctx) -> Result<Reply, QubesError> {
    feature_chain(c, "template", true)
}

/// Features no caller may change (`qubes.ext.admin`).
const PROTECTED_FEATURES: [&str; 4] = [
    "deferred-netvm-original",
    "preload-dispvm",
    "preload-dispvm-completed",
    "preload-dispvm-in-progress",
];

fn protected_feature(name: &str) -> Result<(), QubesError> {
    if PROTECTED_FEATURES.contains(&name) {
        return Err(QubesError::denied(
            "changing this feature is prohibited by qubes.ext.admin.AdminExtension",
        ));
    }
    Ok(())
}

fn feature_set(c: &mut Ctx) -> Result<Reply, QubesError> {
    let value = std::str::from_utf8(&c.untrusted_payload)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or_else(|| QubesError::protocol("Feature value contains non-ASCII characters"))?
        .to_string();
    if c.arg.is_empty()
        || !c
            .arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(QubesError::protocol(
            "feature name contains illegal characters",
        ));
    }
    if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(QubesError::protocol(format!(
            "{} value contains illegal characters",
            c.arg
        )));
    }
    protected_feature(&c.arg)?;
    let (vm, name) = (c.dest.clone(), c.arg.clone());
    set_feature(c, &vm, &name, &value)?;
    c.save = true;
    empty()
}

/// Sets a feature with its events and extension rules.
pub fn set_feature(c: &mut Ctx, vm: &str, name: &str, value: &str) -> Result<(), QubesError> {
    let old =
        c.st.domain(vm)
            .and_then(|d| d.feature(name))
            .map(str::to_string);
    let mut kw: Vec<(&str, &str)> = vec![("feature", name), ("value", value)];
    if let Some(o) = &old {
        kw.push(("oldvalue", o));
    }
    c.fire(vm, format!("domain-feature-pre-set:{name}"), &kw);
    if let Some(service) = name.strip_prefix("service.") {
        setters::validate_service_name(service)?;
    }
    c.st.domain_mut(vm)
        .ok_or_else(|| QubesError::no_such_vm(vm))?
        .set_feature(name, value);
    c.fire(vm, format!("domain-feature-set:{name}"), &kw);
    Ok(())
}

fn feature_remove(c: &mut Ctx) -> Result<Reply, QubesError> {
    protected_feature(&c.arg)?;
    let (vm, name) = (c.dest.clone(), c.arg.clone());
    c.fire(
        &vm,
        format!("domain-feature-pre-delete:{name}"),
        &[("feature", &name)],
    );
    if c.dest_domain().feature(&name).is_none() {
        return Err(feature_missing(&vm, &name));
    }
    remove_feature_after_pre(c, &vm, &name);
    c.save = true;
    empty()
}

/// Removes a feature (it exists) with its events.
pub fn remove_feature(c: &mut Ctx, vm: &str, name: &str) {
    c.fire(
        vm,
        format!("domain-feature-pre-delete:{name}"),
        &[("feature", name)],
    );
    remove_feature_after_pre(c, vm, name);
}

fn remove_feature_after_pre(c: &mut Ctx, vm: &str, name: &str) {
    if let Some(d) = c.st.domain_mut(vm) {
        d.remove_feature(name);
    }
    c.fire(
        vm,
        format!("domain-feature-delete:{name}"),
        &[("feature", name)],
    );
}

// ---- tags -------------------------------------------------------------------------------

fn tag_list(c: &mut Ctx) -> Result<Reply, QubesError> {
    ok(lines(c.dest_domain().tags.iter()))
}

fn tag_get(c: &mut Ctx) -> Result<Reply, QubesError> {
    names::validate_tag(&c.arg)?;
    ok(if c.dest_domain().tags.contains(&c.arg) {
        "1"
    } else {
        "0"
    })
}

fn protected_tag(c: &Ctx) -> Result<(), QubesError> {
    if c.arg.starts_with("created-by-") && c.src != "dom0" {
        return Err(QubesError::denied(
            "changing this tag is prohibited by qubes.ext.admin.AdminExtension",
        ));
    }
    Ok(())
}

fn tag_set(c: &mut Ctx) -> Result<Reply, QubesError> {
    names::validate_tag(&c.arg)?;
    protected_tag(c)?;
    let (vm, tag) = (c.dest.clone(), c.arg.clone());
    if !c.dest_domain().tags.contains(&tag) {
        if tag.starts_with("created-by-") {
            add_created_by_tags(c, &vm, &tag)?;
        } else {
            add_tag(c, &vm, &tag);
        }
    }
    c.save = true;
    empty()
}

fn tag_remove(c: &mut Ctx) -> Result<Reply, QubesError> {
    names::validate_tag(&c.arg)?;
    protected_tag(c)?;
    let (vm, tag) = (c.dest.clone(), c.arg.clone());
    if !c.dest_domain().tags.contains(&tag) {
        return Err(QubesError::new(
            ExcKind::QubesTagNotFoundError,
            format!("Tag not set for domain {vm}: {tag}"),
        ));
    }
    if let Some(d) = c.st.domain_mut(&vm) {
        d.tags.remove(&tag);
    }
    c.fire(&vm, format!("domain-tag-delete:{tag}"), &[("tag", &tag)]);
    c.save = true;
    empty()
}

// ---- notes, state, events -----------------------------------------------------------------

/// Largest note accepted.
pub const MAX_NOTES: usize = 256000;

fn notes_path(c: &Ctx) -> std::path::PathBuf {
    let d = c.dest_domain();
    c.state_dir
        .join(d.class.dir_prefix())
        .join(&d.name)
        .join("notes.txt")
}

fn notes_get(c: &mut Ctx) -> Result<Reply, QubesError> {
    match std::fs::read(notes_path(c)) {
        Ok(bytes) if bytes.len() <= MAX_NOTES * 4 => {
            ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Ok(_) => Err(QubesError::qubes("Notes file is too large")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty(),
        Err(e) => Err(QubesError::qubes(format!("Failed to read notes file: {e}"))),
    }
}

fn notes_set(c: &mut Ctx) -> Result<Reply, QubesError> {
    let n = c.untrusted_payload.len();
    if n > MAX_NOTES {
        return Err(QubesError::protocol(format!(
            "Maximum note size is {MAX_NOTES} bytes ({n} bytes received)"
        )));
    }
    let text = std::str::from_utf8(&c.untrusted_payload)
        .map_err(|e| QubesError::protocol(format!("Unable to sanitise qube notes: {e}")))?;
    let clean: String = text
        .chars()
        .map(|ch| {
            if ch == '\t' || ch == '\n' || setters::safe_for_display(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let path = notes_path(c);
    c.side_files.push((path, clean.into_bytes()));
    empty()
}

fn events(c: &mut Ctx) -> Result<Reply, QubesError> {
    Ok(Reply::Events {
        dest: c.dest.clone(),
        src: c.src.clone(),
    })
}

// ---- internal and misc sockets ------------------------------------------------------------

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn system_info(c: &mut Ctx) -> Result<Reply, QubesError> {
    let st = &*c.st;
    let mut out = String::from("{\"domains\": {");
    for (i, d) in st.domains_sorted().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json_str(&d.name, &mut out);
        out.push_str(": {\"tags\": [");
        for (j, t) in d.tags.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            json_str(t, &mut out);
        }
        let label = st
            .labels
            .values()
            .find(|l| l.name == d.label())
            .map(|l| l.color.clone())
            .unwrap_or_default();
        let get = |p: &str| props::vm_get(st, d, p).filter(|v| !v.is_empty());
        let vm_or_null = |p: &str, out: &mut String| match get(p) {
            Some(v) => json_str(&v, out),
            None => out.push_str("null"),
        };
        out.push_str("], \"type\": ");
        json_str(d.class.name(), &mut out);
        out.push_str(", \"template_for_dispvms\": ");
        out.push_str(if props::vm_flag(st, d, "template_for_dispvms") {
            "true"
        } else {
            "false"
        });
        out.push_str(", \"default_dispvm\": ");
        vm_or_null("default_dispvm", &mut out);
        out.push_str(", \"icon\": ");
        json_str(&props::icon(d), &mut out);
        out.push_str(", \"label\": ");
        json_str(&label, &mut out);
        out.push_str(", \"guivm\": ");
        vm_or_null("guivm", &mut out);
        out.push_str(", \"relayvm\": ");
        vm_or_null("relayvm", &mut out);
        out.push_str(", \"transport_rpc\": ");
        vm_or_null("transport_rpc", &mut out);
        out.push_str(", \"power_state\": ");
        json_str(d.power.name(), &mut out);
        out.push_str(", \"uuid\": ");
        json_str(d.uuid(), &mut out);
        out.push_str(", \"internal\": ");
        out.push_str(if d.feature("internal").is_some_and(|v| !v.is_empty()) {
            "true"
        } else {
            "false"
        });
        out.push('}');
    }
    out.push_str("}}");
    ok(out)
}

fn notify_updates(c: &mut Ctx) -> Result<Reply, QubesError> {
    let text = std::str::from_utf8(&c.untrusted_payload).unwrap_or("");
    let count = py_strip(text);
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QubesError::protocol("Update count is not a digit"));
    }
    let count: u64 = count.parse().unwrap_or(u64::MAX);
    // The caller reports for itself, or for its template when it has one.
    let src =
        c.st.domain(&c.src)
            .ok_or_else(|| QubesError::no_such_vm(&c.src))?
            .clone();
    let target = if src.class.has_template() {
        props::vm_get(c.st, &src, "template").unwrap_or_else(|| src.name.clone())
    } else {
        src.name.clone()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let flag = if count > 0 { "1" } else { "" };
    if count > 0
        || c.st
            .domain(&target)
            .and_then(|d| d.feature("updates-available"))
            .is_some()
    {
        set_feature(c, &target, "updates-available", flag)?;
    }
    set_feature(c, &target, "last-updates-check", &now)?;
    c.save = true;
    empty()
}
