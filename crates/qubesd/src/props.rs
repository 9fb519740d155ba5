//! Property definitions: which class has which property, its wire type tag, load stage,
//! help text, and how its default is computed (admin-api.md §3.1, §3.4, §3.5).
//!
//! Values are kept as the strings the reference writes (`True`, `400`, qube names, `""` for
//! None). A computation returns `None` where the reference raises `AttributeError` (no value
//! and no default), which the API turns into an empty value or an empty GetDefault body.

use std::sync::OnceLock;

use crate::model::{Class, Domain, State};

/// Wire type tag of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PType {
    /// A reference to a qube (may be None for some).
    Vm,
    /// An integer.
    Int,
    /// `True` / `False`.
    Bool,
    /// A label name.
    Label,
    /// Anything else (`uuid`, `ip`, pool names ...).
    Str,
}

impl PType {
    /// The tag written after `type=`.
    pub fn tag(self) -> &'static str {
        match self {
            PType::Vm => "vm",
            PType::Int => "int",
            PType::Bool => "bool",
            PType::Label => "label",
            PType::Str => "str",
        }
    }
}

/// How a value may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Set and Reset work.
    ReadWrite,
    /// Computed, or fixed for the class: Set is refused with `cannot be set`.
    ReadOnly,
    /// Set once (at creation); a second Set fails with no response bytes.
    WriteOnce,
}

/// Parser the reference applies to a Set payload before the setter (`property.sanitize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// Any printable ASCII.
    Text,
    /// Python `int()`.
    Int,
    /// Boolean words.
    Bool,
    /// A qube name.
    Vm,
    /// `uuid.UUID`.
    Uuid,
    /// `ipaddress.IPv4Address`.
    Ipv4,
    /// `ipaddress.IPv6Address`.
    Ipv6,
}

/// Class sets as bit masks.
pub mod cls {
    /// AdminVM.
    pub const ADM: u8 = 1;
    /// AppVM.
    pub const APP: u8 = 2;
    /// TemplateVM.
    pub const TPL: u8 = 4;
    /// StandaloneVM.
    pub const SA: u8 = 8;
    /// DispVM.
    pub const DISP: u8 = 16;
    /// RemoteVM.
    pub const REM: u8 = 32;
    /// The four local qube classes with storage and a hypervisor domain.
    pub const Q: u8 = APP | TPL | SA | DISP;
    /// Every class.
    pub const ALL: u8 = ADM | Q | REM;
    /// Pseudo class bit for the global (`Qubes`) holder.
    pub const GLOBAL: u8 = 64;
}

/// One property definition.
#[derive(Debug)]
pub struct PropDef {
    /// Property name.
    pub name: &'static str,
    /// Wire type tag.
    pub ty: PType,
    /// Set-payload parser.
    pub parse: Parse,
    /// Load stage (2, 3 or 4): decides List/GetAll order together with the name.
    pub stage: u8,
    /// Classes that have it (bits of [`cls`]).
    pub classes: u8,
    /// Classes for which it is computed / fixed.
    pub read_only_for: u8,
    /// Classes for which it is write-once.
    pub write_once_for: u8,
    /// Whether `""` (None) may be set, for qube references.
    pub allow_none: bool,
    /// Text of `property.Help`.
    pub help: &'static str,
}

impl PropDef {
    /// How a value may change for the given class.
    pub fn access(&self, class: Class) -> Access {
        let bit = class.bit();
        if self.read_only_for & bit != 0 {
            Access::ReadOnly
        } else if self.write_once_for & bit != 0 {
            Access::WriteOnce
        } else {
            Access::ReadWrite
        }
    }
}

const fn p(name: &'static str, ty: PType, stage: u8, classes: u8, help: &'static str) -> PropDef {
    PropDef {
        name,
        ty,
        parse: match ty {
            PType::Vm => Parse::Vm,
            PType::Int => Parse::Int,
            PType::Bool => Parse::Bool,
            _ => Parse::Text,
        },
        stage,
        classes,
        read_only_for: 0,
        write_once_for: 0,
        allow_none: false,
        help,
    }
}

const fn ro(mut d: PropDef, classes: u8) -> PropDef {
    d.read_only_for = classes;
    d
}
const fn once(mut d: PropDef, classes: u8) -> PropDef {
    d.write_once_for = classes;
    d
}
const fn none_ok(mut d: PropDef) -> PropDef {
    d.allow_none = true;
    d
}
const fn parsed(mut d: PropDef, parse: Parse) -> PropDef {
    d.parse = parse;
    d
}

use PType::*;
use cls::*;

/// Per-qube properties (all classes), in no particular order; see [`vm_props`].
static VM_PROPS: &[PropDef] = &[
    p(
        "auto_cleanup",
        Bool,
        2,
        DISP,
        "Remove the disposable when it shuts down.",
    ),
    p(
        "autostart",
        Bool,
        2,
        Q,
        "Start this qube when the system boots.",
    ),
    p(
        "backup_timestamp",
        Int,
        2,
        Q,
        "Time of the last successful backup of this qube (seconds since the epoch).",
    ),
    p(
        "debug",
        Bool,
        2,
        Q,
        "Debug mode: more verbose boot, and the qube's console stays available.",
    ),
    p(
        "default_user",
        Str,
        2,
        Q,
        "User name used for commands run in this qube when none is given.",
    ),
    p(
        "devices_denied",
        Str,
        2,
        ADM | Q,
        "Device interface codes that must never be attached to this qube.",
    ),
    once(
        p(
            "dispid",
            Int,
            2,
            DISP,
            "Internal number of this disposable, used for its name and address.",
        ),
        DISP,
    ),
    ro(p("dns", Str, 2, Q, "DNS servers this qube is given."), Q),
    ro(
        p(
            "gateway",
            Str,
            2,
            Q,
            "Gateway address that qubes connected to this one use.",
        ),
        Q,
    ),
    ro(
        p(
            "gateway6",
            Str,
            2,
            Q,
            "IPv6 gateway address that qubes connected to this one use.",
        ),
        Q,
    ),
    ro(
        p("icon", Str, 2, ALL, "Name of the icon shown for this qube."),
        ALL,
    ),
    p(
        "include_in_backups",
        Bool,
        2,
        ALL,
        "Include this qube in the default backup.",
    ),
    p(
        "installed_by_rpm",
        Bool,
        2,
        Q,
        "Installed by the package manager (such a qube cannot be removed).",
    ),
    parsed(
        p("ip", Str, 2, Q, "IPv4 address of this qube."),
        Parse::Ipv4,
    ),
    parsed(
        p("ip6", Str, 2, Q, "IPv6 address of this qube."),
        Parse::Ipv6,
    ),
    ro(
        p(
            "is_preload",
            Bool,
            2,
            DISP,
            "Whether this disposable was started in advance and is still unused.",
        ),
        DISP,
    ),
    p(
        "kernel",
        Str,
        2,
        Q,
        "Kernel used to boot this qube (empty: the qube's own kernel).",
    ),
    p(
        "keyboard_layout",
        Str,
        2,
        ADM | Q,
        "Keyboard layout, as layout+variant+options.",
    ),
    ro(p("klass", Str, 2, ALL, "Class of this qube."), ALL),
    p("label", Label, 2, ALL, "Colour label of this qube."),
    p(
        "mac",
        Str,
        2,
        Q,
        "MAC address of this qube's network interface.",
    ),
    ro(
        p(
            "maxmem",
            Int,
            2,
            ADM | Q,
            "Maximum memory in MiB this qube may get through memory balancing (0 disables balancing).",
        ),
        ADM,
    ),
    p("memory", Int, 2, Q, "Initial memory in MiB."),
    ro(
        once(
            p("name", Str, 2, ALL, "Name of this qube."),
            APP | TPL | SA | DISP | REM,
        ),
        ADM,
    ),
    p(
        "provides_network",
        Bool,
        2,
        Q,
        "This qube can give network access to other qubes.",
    ),
    ro(
        once(
            p(
                "qid",
                Int,
                2,
                ALL,
                "Persistent internal number of this qube.",
            ),
            APP | TPL | SA | DISP | REM,
        ),
        ADM,
    ),
    p(
        "qrexec_timeout",
        Int,
        2,
        Q,
        "Seconds to wait for the qube's qrexec agent at start.",
    ),
    p(
        "remote_name",
        Str,
        2,
        REM,
        "Name of this qube on the remote system.",
    ),
    p(
        "shutdown_timeout",
        Int,
        2,
        Q,
        "Seconds to wait for a clean shutdown.",
    ),
    ro(
        p(
            "start_time",
            Str,
            2,
            Q,
            "Time the qube was started (seconds since the epoch), empty when halted.",
        ),
        Q,
    ),
    p(
        "stubdom_mem",
        Int,
        2,
        Q,
        "Memory in MiB for the device model stub domain.",
    ),
    ro(
        p(
            "stubdom_uuid",
            Str,
            2,
            Q,
            "UUID of the stub domain, if any.",
        ),
        Q,
    ),
    ro(
        p(
            "stubdom_xid",
            Int,
            2,
            Q,
            "Hypervisor id of the stub domain, -1 if none.",
        ),
        Q,
    ),
    p(
        "template_for_dispvms",
        Bool,
        2,
        APP | SA,
        "This qube can be the template of disposables.",
    ),
    p(
        "transport_rpc",
        Str,
        2,
        REM,
        "Service used to reach the remote system.",
    ),
    ro(
        p(
            "updateable",
            Bool,
            2,
            ADM | Q,
            "This qube keeps its own root filesystem and can be updated.",
        ),
        ADM | Q,
    ),
    ro(
        once(
            parsed(p("uuid", Str, 2, ALL, "UUID of this qube."), Parse::Uuid),
            APP | TPL | SA | DISP | REM,
        ),
        ADM,
    ),
    p("vcpus", Int, 2, Q, "Number of virtual CPUs."),
    p(
        "virt_mode",
        Str,
        2,
        Q,
        "Virtualisation mode: pvh, hvm or pv.",
    ),
    ro(
        p(
            "visible_gateway",
            Str,
            2,
            Q,
            "Gateway address as seen by this qube.",
        ),
        Q,
    ),
    ro(
        p(
            "visible_gateway6",
            Str,
            2,
            Q,
            "IPv6 gateway address as seen by this qube.",
        ),
        Q,
    ),
    ro(
        p(
            "visible_ip",
            Str,
            2,
            Q,
            "IPv4 address as seen by this qube.",
        ),
        Q,
    ),
    ro(
        p(
            "visible_ip6",
            Str,
            2,
            Q,
            "IPv6 address as seen by this qube.",
        ),
        Q,
    ),
    ro(
        p(
            "visible_netmask",
            Str,
            2,
            Q,
            "Netmask as seen by this qube.",
        ),
        Q,
    ),
    ro(
        p(
            "xid",
            Int,
            2,
            Q,
            "Hypervisor id of the running qube, -1 when halted.",
        ),
        Q,
    ),
    p(
        "appvm_default_bootmode",
        Str,
        4,
        TPL,
        "Boot mode used by qubes based on this template.",
    ),
    none_ok(p(
        "audiovm",
        Vm,
        4,
        Q,
        "Qube that provides audio to this qube.",
    )),
    p("bootmode", Str, 4, Q, "Boot mode of this qube."),
    none_ok(p(
        "default_dispvm",
        Vm,
        4,
        ADM | Q,
        "Disposable template used for disposables started from this qube.",
    )),
    none_ok(p("guivm", Vm, 4, Q, "Qube that shows this qube's windows.")),
    p("kernelopts", Str, 4, Q, "Kernel command line options."),
    none_ok(p(
        "management_dispvm",
        Vm,
        4,
        Q,
        "Disposable template used to manage this qube.",
    )),
    none_ok(p(
        "netvm",
        Vm,
        4,
        Q,
        "Qube that provides network to this qube (empty: no network).",
    )),
    none_ok(p(
        "relayvm",
        Vm,
        4,
        REM,
        "Qube that relays calls to the remote system.",
    )),
    p(
        "template",
        Vm,
        4,
        APP | DISP,
        "Template this qube is based on.",
    ),
];

/// Global (`admin.property.*`) properties.
static GLOBAL_PROPS: &[PropDef] = &[
    p(
        "check_updates_vm",
        Bool,
        3,
        GLOBAL,
        "Check for updates inside qubes.",
    ),
    none_ok(p(
        "clockvm",
        Vm,
        3,
        GLOBAL,
        "Qube that synchronises the clock.",
    )),
    none_ok(p("default_audiovm", Vm, 3, GLOBAL, "Default audio qube.")),
    none_ok(p(
        "default_dispvm",
        Vm,
        3,
        GLOBAL,
        "Default disposable template.",
    )),
    none_ok(p("default_guivm", Vm, 3, GLOBAL, "Default GUI qube.")),
    p(
        "default_kernel",
        Str,
        3,
        GLOBAL,
        "Default kernel for new qubes.",
    ),
    none_ok(p("default_netvm", Vm, 3, GLOBAL, "Default network qube.")),
    p("default_pool", Str, 3, GLOBAL, "Default storage pool."),
    p(
        "default_pool_kernel",
        Str,
        3,
        GLOBAL,
        "Default storage pool for kernel volumes.",
    ),
    p(
        "default_pool_private",
        Str,
        3,
        GLOBAL,
        "Default storage pool for private volumes.",
    ),
    p(
        "default_pool_root",
        Str,
        3,
        GLOBAL,
        "Default storage pool for root volumes.",
    ),
    p(
        "default_pool_volatile",
        Str,
        3,
        GLOBAL,
        "Default storage pool for volatile volumes.",
    ),
    p(
        "default_qrexec_timeout",
        Int,
        3,
        GLOBAL,
        "Default qrexec start timeout in seconds.",
    ),
    p(
        "default_shutdown_timeout",
        Int,
        3,
        GLOBAL,
        "Default shutdown timeout in seconds.",
    ),
    p(
        "default_template",
        Vm,
        3,
        GLOBAL,
        "Default template for new qubes.",
    ),
    none_ok(p(
        "management_dispvm",
        Vm,
        3,
        GLOBAL,
        "Default disposable template for management.",
    )),
    ro(
        p("maxmem", Int, 3, GLOBAL, "Memory of the host in MiB."),
        GLOBAL,
    ),
    ro(
        p("no_cpus", Int, 3, GLOBAL, "Number of CPUs of the host."),
        GLOBAL,
    ),
    p(
        "stats_interval",
        Int,
        3,
        GLOBAL,
        "Seconds between two rounds of qube statistics.",
    ),
    none_ok(p(
        "updatevm",
        Vm,
        3,
        GLOBAL,
        "Qube that downloads updates for dom0.",
    )),
];

/// The properties of a class in List/GetAll order (load stage, then name).
pub fn vm_props(class: Class) -> &'static [&'static PropDef] {
    static CACHE: OnceLock<Vec<Vec<&'static PropDef>>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        Class::ALL
            .iter()
            .map(|c| {
                let mut v: Vec<&PropDef> = VM_PROPS
                    .iter()
                    .filter(|d| d.classes & c.bit() != 0)
                    .collect();
                v.sort_by_key(|d| (d.stage, d.name));
                v
            })
            .collect()
    });
    &all[class.index()]
}

/// Global properties in List order.
pub fn global_props() -> &'static [&'static PropDef] {
    static CACHE: OnceLock<Vec<&'static PropDef>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let mut v: Vec<&PropDef> = GLOBAL_PROPS.iter().collect();
        v.sort_by_key(|d| (d.stage, d.name));
        v
    })
}

/// Looks up a property of a class.
pub fn vm_prop(class: Class, name: &str) -> Option<&'static PropDef> {
    vm_props(class).iter().copied().find(|d| d.name == name)
}

/// Looks up a global property.
pub fn global_prop(name: &str) -> Option<&'static PropDef> {
    global_props().iter().copied().find(|d| d.name == name)
}

/// Prefix of qube IPv6 addresses.
const IPV6_PREFIX: &str = "fd09:24ef:4179:0000";

/// The effective value of a qube property: explicit, else default. `None` = no value at all.
pub fn vm_get(st: &State, d: &Domain, name: &str) -> Option<String> {
    if let Some(v) = d.props.get(name) {
        return Some(v.clone());
    }
    vm_default(st, d, name)
}

/// Whether the property reads as `True` (bool properties).
pub fn vm_flag(st: &State, d: &Domain, name: &str) -> bool {
    vm_get(st, d, name).as_deref() == Some("True")
}

/// A qube reference property resolved to a qube, if set and existing.
pub fn vm_ref<'a>(st: &'a State, d: &Domain, name: &str) -> Option<&'a Domain> {
    let v = vm_get(st, d, name)?;
    if v.is_empty() {
        return None;
    }
    st.domain(&v)
}

fn from_template(st: &State, d: &Domain, name: &str) -> Option<Option<String>> {
    if !d.class.has_template() {
        return None;
    }
    let tpl = vm_ref(st, d, "template")?;
    Some(vm_get(st, tpl, name))
}

fn with_template(st: &State, d: &Domain, name: &str, fallback: Option<String>) -> Option<String> {
    match from_template(st, d, name) {
        Some(Some(v)) => Some(v),
        _ => fallback,
    }
}

fn b(v: bool) -> Option<String> {
    Some(crate::setters::bool_word(v).to_string())
}

fn none() -> Option<String> {
    Some(String::new())
}

/// Whether a qube has network: it provides network or has a netvm.
pub fn is_networked(st: &State, d: &Domain) -> bool {
    vm_flag(st, d, "provides_network") || vm_ref(st, d, "netvm").is_some()
}

/// `10.137.x.y` style address from a qube id, as the reference computes it.
pub fn vmid_to_ipv4(prefix: &str, id: u32) -> String {
    if id < 255 {
        format!("{prefix}.{}.{}", (id >> 8) & 0xff, id & 0xff)
    } else {
        let id = id - 1;
        format!("{prefix}.{}.{}", id / 254, id % 254 + 1)
    }
}

fn feature_check_with_template(st: &State, d: &Domain, f: &str) -> Option<String> {
    let mut cur = Some(d);
    let mut depth = 0;
    while let Some(q) = cur {
        if let Some(v) = q.feature(f) {
            return Some(v.to_string());
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        cur = if q.class.has_template() {
            vm_ref(st, q, "template")
        } else {
            None
        };
    }
    None
}

/// Python truthiness of a feature value as `check_with_netvm` sees it.
fn feature_check_with_netvm(st: &State, d: &Domain, f: &str) -> bool {
    let mut cur = Some(d);
    let mut depth = 0;
    while let Some(q) = cur {
        if let Some(v) = q.feature(f) {
            return !v.is_empty();
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        cur = if q.class.is_local_qube() {
            vm_ref(st, q, "netvm")
        } else {
            None
        };
    }
    false
}

fn ip_for(st: &State, d: &Domain) -> String {
    if d.class == Class::DispVM {
        let dispid = vm_get(st, d, "dispid")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        vmid_to_ipv4("10.138", dispid)
    } else {
        vmid_to_ipv4("10.137", d.qid)
    }
}

fn ip6_for(st: &State, d: &Domain) -> String {
    let (mid, id) = if d.class == Class::DispVM {
        (
            "a8a",
            vm_get(st, d, "dispid")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    } else {
        ("a89", d.qid)
    };
    // Canonical IPv6 text of `<prefix>::<mid>:<id hex>` (the prefix's zero group folds).
    format!("{}::{mid}:{id:x}", IPV6_PREFIX.trim_end_matches(":0000"))
}

/// The default of a qube property, as the reference computes it.
pub fn vm_default(st: &State, d: &Domain, name: &str) -> Option<String> {
    use Class::*;
    let class = d.class;
    match name {
        "auto_cleanup"
        | "autostart"
        | "debug"
        | "installed_by_rpm"
        | "provides_network"
        | "template_for_dispvms" => b(false),
        "backup_timestamp" | "stubdom_mem" | "remote_name" | "transport_rpc" | "relayvm" => none(),
        "default_user" => with_template(st, d, name, Some("user".into())),
        "devices_denied" => Some(String::new()),
        "dispid" | "label" | "template" => None,
        "dns" => {
            if vm_ref(st, d, "netvm").is_some() || vm_flag(st, d, "provides_network") {
                Some("10.139.1.1 10.139.1.2".into())
            } else {
                none()
            }
        }
        "gateway" => {
            if vm_flag(st, d, "provides_network") {
                vm_get(st, d, "visible_ip")
            } else {
                none()
            }
        }
        "gateway6" => {
            if feature_check_with_netvm(st, d, "ipv6") && vm_flag(st, d, "provides_network") {
                vm_get(st, d, "visible_ip6")
            } else {
                none()
            }
        }
        "icon" => Some(icon(d)),
        "include_in_backups" => match class {
            DispVM => b(!vm_flag(st, d, "auto_cleanup")),
            RemoteVM => b(false),
            _ => b(true),
        },
        "ip" => {
            if is_networked(st, d) {
                Some(ip_for(st, d))
            } else {
                none()
            }
        }
        "ip6" => {
            if is_networked(st, d) && feature_check_with_netvm(st, d, "ipv6") {
                Some(ip6_for(st, d))
            } else {
                none()
            }
        }
        "is_preload" => b(d.feature("preload-dispvm-completed").is_some()),
        "kernel" => match from_template(st, d, name) {
            Some(v) => v,
            None => global_get(st, "default_kernel"),
        },
        "keyboard_layout" => {
            if class == AdminVM {
                return Some("us++".into());
            }
            match vm_ref(st, d, "guivm") {
                Some(g) if g.name != d.name => vm_get(st, g, name),
                _ => Some("us++".into()),
            }
        }
        "klass" => Some(class.name().into()),
        "mac" => Some("00:16:3e:5e:6c:00".into()),
        "maxmem" => {
            if class == AdminVM {
                return Some(st.host.dom0_maxmem_mib.to_string());
            }
            // Balancing breaks PCI passthrough (the reference's is_memory_balancing_possible).
            if !st.host.memory_balancing || crate::devices::has_pci(d) {
                return Some("0".into());
            }
            let mem: u64 = vm_get(st, d, "memory")
                .and_then(|v| v.parse().ok())
                .unwrap_or(400);
            let base = if d.feature("os") == Some("Linux") {
                mem * 10
            } else {
                4000
            };
            let cap = st.host.memory_mib / 2;
            with_template(st, d, name, Some(base.min(cap).to_string()))
        }
        "memory" => with_template(st, d, name, Some("400".into())),
        "name" => (class == AdminVM).then(|| "dom0".into()),
        "qid" => (class == AdminVM).then(|| "0".into()),
        "uuid" => (class == AdminVM).then(|| "00000000-0000-0000-0000-000000000000".into()),
        "qrexec_timeout" => with_template(st, d, name, global_get(st, "default_qrexec_timeout")),
        "shutdown_timeout" => {
            with_template(st, d, name, global_get(st, "default_shutdown_timeout"))
        }
        "start_time" => Some(d.start_time.clone().unwrap_or_default()),
        "xid" => Some(if d.is_active() { d.xid } else { -1 }.to_string()),
        "stubdom_uuid" => none(),
        "stubdom_xid" => Some("-1".into()),
        "updateable" => b(matches!(class, AdminVM | TemplateVM | StandaloneVM)),
        "vcpus" => with_template(st, d, name, Some("2".into())),
        "virt_mode" => {
            if crate::devices::has_pci(d) {
                return Some("hvm".into());
            }
            with_template(st, d, name, Some("pvh".into()))
        }
        "visible_ip" => match feature_check_with_template(st, d, "net.fake-ip") {
            Some(v) if !v.is_empty() => Some(v),
            _ => vm_get(st, d, "ip"),
        },
        "visible_ip6" => vm_get(st, d, "ip6"),
        "visible_gateway" => match feature_check_with_template(st, d, "net.fake-gateway") {
            Some(v) if !v.is_empty() => Some(v),
            _ => match vm_ref(st, d, "netvm") {
                Some(n) => vm_get(st, n, "gateway"),
                None => none(),
            },
        },
        "visible_gateway6" => {
            if feature_check_with_netvm(st, d, "ipv6") {
                match vm_ref(st, d, "netvm") {
                    Some(n) => vm_get(st, n, "gateway6"),
                    None => none(),
                }
            } else {
                none()
            }
        }
        "visible_netmask" => match feature_check_with_template(st, d, "net.fake-netmask") {
            Some(v) if !v.is_empty() => Some(v),
            _ => match vm_ref(st, d, "netvm") {
                Some(n) if is_networked(st, n) => Some("255.255.255.255".into()),
                _ => none(),
            },
        },
        "appvm_default_bootmode" => Some(
            d.feature("boot-mode.appvm-default")
                .unwrap_or("default")
                .to_string(),
        ),
        "bootmode" => Some("default".into()),
        "audiovm" => global_get(st, "default_audiovm"),
        "guivm" => global_get(st, "default_guivm"),
        "default_dispvm" => {
            if class == DispVM {
                vm_get(st, d, "template")
            } else {
                global_get(st, "default_dispvm")
            }
        }
        "kernelopts" => {
            let kernel = vm_get(st, d, "kernel")?;
            if kernel.is_empty() {
                return Some(String::new());
            }
            if crate::devices::has_pci(d) {
                return Some(st.default_kernelopts_pci(&kernel));
            }
            with_template(st, d, name, Some(st.default_kernelopts(&kernel)))
        }
        "management_dispvm" => with_template(st, d, name, global_get(st, "management_dispvm")),
        "netvm" => {
            if class == TemplateVM {
                none()
            } else {
                global_get(st, "default_netvm")
            }
        }
        _ => None,
    }
}

/// The icon name the reference computes from class, label and features.
pub fn icon(d: &Domain) -> String {
    if d.class == Class::AdminVM {
        return "adminvm-black".into();
    }
    let label = d.props.get("label").map(String::as_str).unwrap_or("");
    let servicevm = d.feature("servicevm").is_some_and(|v| !v.is_empty());
    let prefix = match d.class {
        Class::TemplateVM => "templatevm",
        _ if servicevm => "servicevm",
        Class::DispVM => "dispvm",
        Class::StandaloneVM => "standalonevm",
        Class::RemoteVM => "remotevm",
        _ => "appvm",
    };
    format!("{prefix}-{label}")
}

/// The effective value of a global property.
pub fn global_get(st: &State, name: &str) -> Option<String> {
    if let Some(v) = st.global.get(name) {
        return Some(v.clone());
    }
    global_default(st, name)
}

/// The default of a global property.
pub fn global_default(st: &State, name: &str) -> Option<String> {
    match name {
        "check_updates_vm" => b(true),
        "clockvm" | "default_dispvm" | "default_netvm" | "management_dispvm" | "updatevm" => none(),
        "default_audiovm" | "default_guivm" => Some("dom0".into()),
        "default_kernel" | "default_template" => None,
        "default_pool" => st.default_pool_name(),
        "default_pool_kernel"
        | "default_pool_private"
        | "default_pool_root"
        | "default_pool_volatile" => global_get(st, "default_pool"),
        "default_qrexec_timeout" | "default_shutdown_timeout" => Some("60".into()),
        "maxmem" => Some(st.host.memory_mib.to_string()),
        "no_cpus" => Some(st.host.cpus.to_string()),
        "stats_interval" => Some("3".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adminvm_order_matches_reference() {
        let names: Vec<_> = vm_props(Class::AdminVM).iter().map(|d| d.name).collect();
        assert_eq!(
            names.join(" "),
            "devices_denied icon include_in_backups keyboard_layout klass label maxmem name \
             qid updateable uuid default_dispvm"
        );
    }

    #[test]
    fn appvm_order_matches_reference() {
        let names: Vec<_> = vm_props(Class::AppVM).iter().map(|d| d.name).collect();
        assert_eq!(
            names.join(" "),
            "autostart backup_timestamp debug default_user devices_denied dns gateway gateway6 \
             icon include_in_backups installed_by_rpm ip ip6 kernel keyboard_layout klass label \
             mac maxmem memory name provides_network qid qrexec_timeout shutdown_timeout \
             start_time stubdom_mem stubdom_uuid stubdom_xid template_for_dispvms updateable \
             uuid vcpus virt_mode visible_gateway visible_gateway6 visible_ip visible_ip6 \
             visible_netmask xid audiovm bootmode default_dispvm guivm kernelopts \
             management_dispvm netvm template"
        );
    }

    #[test]
    fn other_orders_match_reference() {
        let names = |c| {
            vm_props(c)
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            names(Class::RemoteVM),
            "icon include_in_backups klass label name qid remote_name transport_rpc uuid relayvm"
        );
        assert!(names(Class::DispVM).starts_with("auto_cleanup autostart"));
        assert!(names(Class::DispVM).contains("devices_denied dispid dns"));
        assert!(names(Class::TemplateVM).ends_with("xid appvm_default_bootmode audiovm bootmode default_dispvm guivm kernelopts management_dispvm netvm"));
        assert!(!names(Class::StandaloneVM).contains("template "));
        let g: Vec<_> = global_props().iter().map(|d| d.name).collect();
        assert_eq!(g.first(), Some(&"check_updates_vm"));
        assert_eq!(g.last(), Some(&"updatevm"));
        assert_eq!(g.len(), 20);
    }

    #[test]
    fn ipv4_from_id() {
        assert_eq!(vmid_to_ipv4("10.137", 2), "10.137.0.2");
        assert_eq!(vmid_to_ipv4("10.137", 254), "10.137.0.254");
        assert_eq!(vmid_to_ipv4("10.137", 255), "10.137.1.1");
        assert_eq!(vmid_to_ipv4("10.137", 509), "10.137.2.1");
    }
}
