//! Property definitions: which class has which property, its wire type tag, load stage,
//! help text, and how its default is computed (admin-api.md §3.1, §3.4, §3.5).
//!
//! Values are kept as the strings the reference writes (`True`, `400`, qube names, `""` for
//! None). A computation returns `None` where the reference raises `AttributeError` (no value
//! and no default), which the API turns into an empty value or an empty GetDefault body.

use std::sync::OnceLock;

use crate::model::{Class, Domain, State};

mod defaults;
mod table;

pub use defaults::{global_default, icon, is_networked, vm_default, vmid_to_ipv4};

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

pub use crate::model::cls;

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

/// The properties of a class in List/GetAll order (load stage, then name).
pub fn vm_props(class: Class) -> &'static [&'static PropDef] {
    static CACHE: OnceLock<Vec<Vec<&'static PropDef>>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        Class::ALL
            .iter()
            .map(|c| {
                let mut v: Vec<&PropDef> = table::VM_PROPS
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
        let mut v: Vec<&PropDef> = table::GLOBAL_PROPS.iter().collect();
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

/// The effective value of a global property.
pub fn global_get(st: &State, name: &str) -> Option<String> {
    if let Some(v) = st.global.get(name) {
        return Some(v.clone());
    }
    global_default(st, name)
}

/// Properties whose value is Python's `None` when they are empty and not set explicitly:
/// computed network values, and those whose default is None.
const NONE_WHEN_EMPTY: [&str; 15] = [
    "backup_timestamp",
    "dns",
    "gateway",
    "gateway6",
    "ip",
    "ip6",
    "remote_name",
    "start_time",
    "stubdom_mem",
    "transport_rpc",
    "visible_gateway",
    "visible_gateway6",
    "visible_ip",
    "visible_ip6",
    "visible_netmask",
];

/// Python `str()` of a property value in an event: None is `None`. `explicit` says whether
/// the value is set on the holder (an explicitly set empty string stays empty).
pub fn ev_value(def: &PropDef, v: &str, explicit: bool) -> String {
    let none =
        v.is_empty() && (def.ty == PType::Vm || (!explicit && NONE_WHEN_EMPTY.contains(&def.name)));
    if none { "None".into() } else { v.to_string() }
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
