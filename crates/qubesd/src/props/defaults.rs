//! Default values: what a property is when it is not set — inherited from the template,
//! the net qube or a global default, or computed (admin-api.md §3.4, §3.5).

use super::{global_get, vm_flag, vm_get, vm_ref};
use crate::model::{Class, Domain, State};

/// Prefix of qube IPv6 addresses.
const IPV6_PREFIX: &str = "fd09:24ef:4179:0000";

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
    Some(crate::pycompat::bool_word(v).to_string())
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
        // Without a label the reference cannot compute it.
        "icon" => (class == AdminVM || !d.label().is_empty()).then(|| icon(d)),
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
            if !st.host.memory_balancing {
                return Some("0".into());
            }
            st.touch_devices(d, "pci");
            if crate::devices::has_pci(d) {
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
            st.touch_devices(d, "pci");
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
            st.touch_devices(d, "pci");
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
    let dvm_template = d.props.get("template_for_dispvms").map(String::as_str) == Some("True");
    let prefix = match d.class {
        Class::TemplateVM => "templatevm",
        // An AppVM that is a disposable template shows as a template.
        Class::AppVM if dvm_template => "templatevm",
        _ if servicevm => "servicevm",
        Class::DispVM => "dispvm",
        Class::StandaloneVM => "standalonevm",
        Class::RemoteVM => "remotevm",
        _ => "appvm",
    };
    format!("{prefix}-{label}")
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
