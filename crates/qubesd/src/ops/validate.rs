//! Property Set rules: the payload sanitizer and per-property validation, with the
//! reference's refusals (admin-api.md §3.2).

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use crate::model::{Class, Domain, State};
use crate::names;
use crate::props::{self, Access, PType, Parse, PropDef};
use crate::pycompat::{bool_word, printable, py_bool, py_int_text};

fn parse_ipv4(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    for p in &parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if p.len() > 1 && p.starts_with('0') {
            return None;
        }
        if p.parse::<u16>().ok()? > 255 {
            return None;
        }
    }
    Some(s.to_string())
}

/// `property.sanitize`: ASCII, then the type's parser. Returns the canonical string. `class`
/// is the holder's class (`None`: the system): dom0's `name` and `uuid` have no type there.
pub fn sanitize(
    def: &PropDef,
    class: Option<Class>,
    untrusted: &[u8],
) -> Result<String, QubesError> {
    let s = std::str::from_utf8(untrusted)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| QubesError::value("Non-ASCII bytes in property value"))?;
    let fail = |t: &str| QubesError::value(format!("Failed to parse property value as {t}"));
    let parse = match (class, def.name) {
        (Some(Class::AdminVM), "name" | "uuid") => Parse::Text,
        _ => def.parse,
    };
    match parse {
        Parse::Bool => py_bool(s).map(|b| bool_word(b).to_string()).ok_or_else(|| {
            QubesError::value(format!(
                "Invalid literal for boolean property: {}",
                py_repr(s)
            ))
        }),
        Parse::Int => py_int_text(s).ok_or_else(|| fail("int")),
        Parse::Uuid => uuid::Uuid::parse_str(s.trim())
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| fail("UUID")),
        Parse::Ipv4 => parse_ipv4(s).ok_or_else(|| fail("IPv4Address")),
        Parse::Ipv6 => s
            .parse::<std::net::Ipv6Addr>()
            .map(|a| a.to_string())
            .map_err(|_| fail("IPv6Address")),
        Parse::Text | Parse::Vm => {
            if s.chars().all(printable) {
                Ok(s.to_string())
            } else {
                Err(QubesError::value("Invalid characters in property value"))
            }
        }
    }
}

fn prop_err(msg: impl Into<String>) -> QubesError {
    QubesError::new(ExcKind::QubesPropertyValueError, msg)
}

/// `QubesPropertyValueError` without a custom text (the reference adds a Python repr).
fn invalid_value(def: &PropDef, value: &str, holder: &str) -> QubesError {
    prop_err(format!(
        "Invalid value {} for property {} of {holder}",
        if value.is_empty() {
            "None".to_string()
        } else {
            py_repr(value)
        },
        py_repr(def.name)
    ))
}

/// The class a qube reference property must point at, with its reference class name.
fn vm_ref_class(class: Option<Class>, prop: &str) -> (fn(&Domain) -> bool, &'static str) {
    match (class, prop) {
        (Some(Class::AppVM), "template") | (None, "default_template") => {
            (|d| d.class == Class::TemplateVM, "TemplateVM")
        }
        (Some(Class::DispVM), "template") => (|d| d.class.is_local_qube(), "QubesVM"),
        _ => (|d| d.class != Class::RemoteVM, "LocalVM"),
    }
}

/// Checks a qube reference value: `""` is None, else an existing qube of the right class.
pub fn validate_vm_ref(
    st: &State,
    holder: &Domain,
    def: &PropDef,
    value: &str,
) -> Result<String, QubesError> {
    let checked = check_vm_ref(st, Some(holder.class), &holder.name, def, value);
    if checked.is_err() && value.is_empty() && !def.allow_none {
        repr_looks(st, holder);
    }
    checked
}

/// Checks the template a new qube is created from: as [`validate_vm_ref`], and a template
/// of the wrong class is shown by the reference as the qube object (its repr, see
/// `repr_looks`) since the creation gets the qube, not its name.
pub fn validate_new_qubes_template(
    st: &State,
    holder: &Domain,
    def: &PropDef,
    value: &str,
) -> Result<String, QubesError> {
    if let Some(target) = st.domain(value)
        && !(vm_ref_class(Some(holder.class), def.name).0)(target)
    {
        repr_looks(st, target);
    }
    validate_vm_ref(st, holder, def, value)
}

/// What the reference's repr of a qube in an error message looks at: it lists every
/// property, computing defaults, so the qube's (and its templates') PCI devices are looked
/// at (see [`State::touch_devices`]); we name the qube instead but keep that effect.
fn repr_looks(st: &State, d: &Domain) {
    if d.class.is_local_qube() {
        for p in ["virt_mode", "kernelopts", "maxmem"] {
            let _ = props::vm_get(st, d, p);
        }
    }
}

fn check_vm_ref(
    st: &State,
    class: Option<Class>,
    holder_name: &str,
    def: &PropDef,
    value: &str,
) -> Result<String, QubesError> {
    if value.is_empty() {
        if def.allow_none {
            return Ok(String::new());
        }
        return Err(invalid_value(def, value, holder_name));
    }
    names::validate_name(value)?;
    let Some(target) = st.domain(value) else {
        return Err(prop_err(format!(
            "Can't set {} to non-existing qube {value}",
            def.name
        )));
    };
    let (ok, want) = vm_ref_class(class, def.name);
    if !ok(target) {
        return Err(prop_err(format!(
            "wrong VM class: domains[{}] is of type {} and not {want}",
            py_repr(value),
            target.class.name()
        )));
    }
    Ok(value.to_string())
}

fn positive(def: &PropDef, v: &str) -> Result<String, QubesError> {
    if v == "0" || v.starts_with('-') {
        return Err(prop_err(format!("{} must be positive", def.name)));
    }
    Ok(v.to_string())
}

fn check_kernel_name(k: &str) -> Result<String, QubesError> {
    if k.contains('/') {
        return Err(prop_err("Kernel name cannot contain '/'"));
    }
    Ok(k.to_string())
}

/// `validate_kernel`: empty (none), or an installed kernel's directory name.
pub fn check_kernel(st: &State, k: &str) -> Result<String, QubesError> {
    if k.is_empty() {
        return Ok(String::new());
    }
    check_kernel_name(k)?;
    let dir = st.host.kernels_dir.join(k);
    if !dir.exists() {
        return Err(prop_err(format!("Kernel {} not installed", py_repr(k))));
    }
    if !dir.join("vmlinuz").exists() {
        return Err(prop_err(format!(
            "Kernel {} not properly installed: missing 'vmlinuz' file",
            py_repr(k)
        )));
    }
    Ok(k.to_string())
}

fn check_disposable_template(
    st: &State,
    target_desc: &str,
    prop: &str,
    value: &str,
) -> Result<(), QubesError> {
    if value.is_empty() {
        return Ok(());
    }
    let ok = st
        .domain(value)
        .is_some_and(|d| props::vm_flag(st, d, "template_for_dispvms"));
    if !ok {
        return Err(prop_err(format!(
            "Cannot set invalid property to {target_desc}, {prop} {} has template_for_dispvms set to False",
            py_repr(value)
        )));
    }
    Ok(())
}

/// Qubes whose netvm chain would reach `vm` (so `vm` may not use them as netvm).
fn connected_to(st: &State, vm: &str, candidate: &str) -> bool {
    let mut cur = st.domain(candidate);
    let mut steps = 0;
    while let Some(d) = cur {
        if d.name == vm {
            return true;
        }
        steps += 1;
        if steps > st.domains.len() + 1 {
            return true;
        }
        cur = if d.class.is_local_qube() {
            props::vm_ref(st, d, "netvm")
        } else {
            None
        };
    }
    false
}

fn check_keyboard_layout(v: &str) -> Result<(), QubesError> {
    let parts: Vec<&str> = v.split('+').collect();
    if parts.len() != 3 {
        return Err(prop_err("invalid number of keyboard layout parameters"));
    }
    if parts[0].is_empty() || !parts[0].bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(prop_err("Invalid keyboard layout provided"));
    }
    if !parts[1]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(prop_err("Invalid layout variant provided"));
    }
    if !parts[2]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b','))
    {
        return Err(prop_err("Invalid layout options provided"));
    }
    Ok(())
}

/// `_setter_denied_list`: whole 7-character codes, duplicates dropped, sorted, each a
/// class letter (`b`, `u`, `m`, `p` or `*`) and six lowercase hex digits or `*`.
fn normalize_denied(v: &str) -> Result<String, QubesError> {
    if v.is_empty() {
        return Ok(String::new());
    }
    if !v.len().is_multiple_of(7) {
        return Err(QubesError::value(format!(
            "Invalid length of interfaces={} (is {}, expected multiple of 7)",
            py_repr(v),
            v.len()
        )));
    }
    let mut codes: Vec<&str> = (0..v.len() / 7).map(|i| &v[i * 7..i * 7 + 7]).collect();
    codes.sort();
    codes.dedup();
    let ok = codes.iter().all(|c| {
        let b = c.as_bytes();
        matches!(b[0], b'b' | b'u' | b'm' | b'p' | b'*')
            && b[1..]
                .iter()
                .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(x) || *x == b'*')
    });
    if !ok {
        return Err(prop_err(
            "Interface code list should be in the form chhhhhhchhhhhh...,where c is one of \"b\", \"u\", \"m\", \"p\", \"*\" and h is a hexdigit or \"*\".",
        ));
    }
    Ok(codes.concat())
}

/// The qube-property setter rules. `value` is already sanitized.
pub fn validate_vm_prop(
    st: &State,
    d: &Domain,
    def: &PropDef,
    value: String,
) -> Result<String, QubesError> {
    match def.access(d.class) {
        Access::ReadOnly => {
            return Err(prop_err(format!(
                "property {} on {} instance cannot be set",
                py_repr(def.name),
                d.class.name()
            )));
        }
        Access::WriteOnce if d.props.contains_key(def.name) => {
            return Err(QubesError::silent(format!(
                "write-once property {} already set",
                def.name
            )));
        }
        _ => {}
    }
    if def.ty == PType::Vm {
        let v = validate_vm_ref(st, d, def, &value)?;
        return match def.name {
            "netvm" => {
                if !v.is_empty() {
                    check_netvm(st, &d.name, &v)?;
                }
                Ok(v)
            }
            "default_dispvm" | "management_dispvm" => {
                check_disposable_template(st, &format!("qube {}", py_repr(&d.name)), def.name, &v)?;
                Ok(v)
            }
            "template" => {
                // A running qube is refused after `property-pre-set` (a hook, as in the
                // reference: [`template_veto`]).
                if d.class == Class::DispVM
                    && !st
                        .domain(&v)
                        .is_some_and(|t| props::vm_flag(st, t, "template_for_dispvms"))
                {
                    return Err(prop_err(
                        "template for disposable must have template_for_dispvms=True",
                    ));
                }
                Ok(v)
            }
            _ => Ok(v),
        };
    }
    match def.name {
        "label" => st
            .find_label(&value)
            .map(|l| l.name.clone())
            .ok_or_else(|| {
                QubesError::new(
                    ExcKind::QubesLabelNotFoundError,
                    format!("Label does not exist: {value}"),
                )
            }),
        "memory" | "vcpus" | "qrexec_timeout" | "shutdown_timeout" | "stubdom_mem" => {
            positive(def, &value)
        }
        "maxmem" => {
            if value.starts_with('-') {
                return Err(prop_err("maxmem must be positive or zero"));
            }
            Ok(value)
        }
        "qid" => match value.parse::<i64>() {
            Ok(q) if (0..=10000).contains(&q) => Ok(value),
            _ => Err(QubesError::silent("qid out of range")),
        },
        "dispid" => Ok(value),
        "name" => {
            names::validate_name(&value)?;
            Ok(value)
        }
        "kernel" => check_kernel_name(&value),
        "kernelopts" => {
            if value.len() > 512 {
                return Err(prop_err("Kernelopts value too long (512 chars max)"));
            }
            Ok(value)
        }
        "default_user" => {
            let allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,.";
            if !value.chars().all(|c| allowed.contains(c)) {
                return Err(prop_err(format!(
                    "Username can contain only those characters: {allowed}"
                )));
            }
            Ok(value)
        }
        "virt_mode" => {
            let v = value.to_ascii_lowercase();
            if !matches!(v.as_str(), "hvm" | "pv" | "pvh") {
                return Err(prop_err(
                    "Invalid virtualization mode, supported values: hvm, pv, pvh",
                ));
            }
            if v == "pvh" {
                st.touch_devices(d, "pci");
            }
            if v == "pvh" && crate::devices::has_pci(d) {
                return Err(prop_err(
                    "pvh mode can't be set if pci devices are assigned",
                ));
            }
            Ok(v)
        }
        "keyboard_layout" => {
            check_keyboard_layout(&value)?;
            Ok(value)
        }
        "devices_denied" => normalize_denied(&value),
        "mac" => {
            let v = value.to_ascii_lowercase();
            let ok = v.len() == 17
                && v.split(':').count() == 6
                && v.split(':')
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                // The reference raises a plain ValueError here: no response bytes.
                return Err(QubesError::silent(format!("invalid MAC {value:?}")));
            }
            Ok(v)
        }
        "provides_network" if value == "False" => {
            let used = st.domains.values().any(|o| {
                o.class.is_local_qube()
                    && o.name != d.name
                    && props::vm_get(st, o, "netvm").as_deref() == Some(d.name.as_str())
            });
            if used {
                return Err(QubesError::value(
                    "The qube is still used by other qubes, change theirs 'netvm' first",
                ));
            }
            Ok(value)
        }
        _ => Ok(value),
    }
}

/// `_setter_netvm` for an existing qube `net`: it provides network and `vm` is not on the
/// way from it.
pub fn check_netvm(st: &State, vm: &str, net: &str) -> Result<(), QubesError> {
    let Some(target) = st.domain(net) else {
        return Err(QubesError::no_such_vm(net));
    };
    if !props::vm_flag(st, target, "provides_network") {
        return Err(QubesError::value(format!(
            "The {net} qube does not provide network"
        )));
    }
    if connected_to(st, vm, net) {
        return Err(QubesError::value("Loops in network are unsupported"));
    }
    Ok(())
}

/// The reference's `property-pre-set:template` handler: a qube that is not halted keeps
/// its template (refused after that event went out).
pub fn template_veto(d: &Domain) -> Result<(), QubesError> {
    if d.power != crate::model::PowerState::Halted {
        return Err(QubesError::new(
            ExcKind::QubesVMNotHaltedError,
            "Cannot change template while qube is running",
        ));
    }
    Ok(())
}

/// The refusal of a `template` Reset.
pub fn cannot_unset_template(st: &State, class: Class) -> QubesError {
    QubesError::value(match props::global_get(st, "default_template") {
        Some(tpl) if !tpl.is_empty() && class == Class::AppVM => {
            format!("Cannot unset template. You can set it to the current default ({tpl}) instead")
        }
        _ => "Cannot unset template".to_string(),
    })
}

/// Why `template_for_dispvms` of `vm` cannot become False: the system or a qube uses it as
/// disposable template.
pub fn dispvm_template_in_use(st: &State, vm: &str) -> Result<(), QubesError> {
    let system: Vec<&str> = ["default_dispvm", "management_dispvm"]
        .into_iter()
        .filter(|p| st.global.get(*p).map(String::as_str) == Some(vm))
        .collect();
    if !system.is_empty() {
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            "Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: default_dispvm, management_dispvm",
        ));
    }
    let used = st.domains.values().any(|o| {
        o.name != vm
            && ["default_dispvm", "management_dispvm", "template"]
                .iter()
                .any(|p| {
                    props::vm_prop(o.class, p).is_some_and(|d| d.ty == PType::Vm)
                        && o.props.get(*p).map(String::as_str) == Some(vm)
                })
    });
    if used {
        return Err(QubesError::new(
            ExcKind::QubesVMInUseError,
            "Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template",
        ));
    }
    Ok(())
}

/// Vetoes that apply after a Reset changed the effective value.
pub fn check_after_reset(st: &State, vm: &str, def: &PropDef) -> Result<(), QubesError> {
    let Some(d) = st.domain(vm) else {
        return Ok(());
    };
    if def.name == "provides_network" && !props::vm_flag(st, d, "provides_network") {
        validate_vm_prop(
            st,
            &Domain {
                props: Default::default(),
                ..d.clone()
            },
            def,
            "False".into(),
        )
        .map(|_| ())?;
    }
    Ok(())
}

/// Global-property setter rules.
pub fn validate_global_prop(
    st: &State,
    def: &PropDef,
    value: String,
) -> Result<String, QubesError> {
    if def.read_only_for & props::cls::GLOBAL != 0 {
        return Err(prop_err(format!(
            "property {} on Qubes instance cannot be set",
            py_repr(def.name)
        )));
    }
    if def.ty == PType::Vm {
        let v = check_vm_ref(st, None, "Qubes", def, &value)?;
        match def.name {
            "default_dispvm" | "management_dispvm" => {
                check_disposable_template(st, "system", def.name, &v)?
            }
            "default_netvm" if !v.is_empty() => {
                // dom0 cannot serve network (the reference fails without a reply once the
                // qubes that follow the default are told).
                if st.domain(&v).is_some_and(|d| d.class == Class::AdminVM) {
                    return Err(QubesError::value(format!(
                        "The {v} qube does not provide network"
                    )));
                }
                // Otherwise only loops are refused: a qube that follows the default must not
                // end up on its own way to the network (the reference does not ask for
                // provides_network here).
                for d in st.domains.values() {
                    if d.class.is_local_qube()
                        && !d.props.contains_key("netvm")
                        && connected_to(st, &d.name, &v)
                    {
                        return Err(prop_err(format!("Network loop on {}", py_repr(&d.name))));
                    }
                }
            }
            _ => {}
        }
        return Ok(v);
    }
    match def.name {
        // Checked by a `property-pre-set` handler in the reference (after that event).
        "default_kernel" => Ok(value),
        n if n.starts_with("default_pool") => {
            if st.pool(&value).is_none() {
                return Err(prop_err("No such storage pool"));
            }
            Ok(value)
        }
        _ => Ok(value),
    }
}

/// `service.<name>` feature names (`qubes.ext.services`).
pub fn validate_service_name(service: &str) -> Result<(), QubesError> {
    if service.is_empty() {
        return Err(QubesError::value("Service name cannot be empty"));
    }
    if service.contains('/') {
        return Err(QubesError::value("Service name cannot contain a slash"));
    }
    if service == "." || service == ".." {
        return Err(QubesError::value("Service name cannot be \".\" or \"..\""));
    }
    if service.len() > 48 && !service.starts_with("app-dispvm.") {
        return Err(QubesError::value("Service name must not exceed 48 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_list_normalized() {
        assert_eq!(
            normalize_denied("u03**01b******u03**01").unwrap(),
            "b******u03**01"
        );
        assert!(normalize_denied("x000000").is_err());
        assert!(normalize_denied("u0301").is_err());
    }
}
