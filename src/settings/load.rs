//! Reading what a settings dialog shows: properties, the choices for each (qubes by role,
//! labels, kernels, pools), notes, features, firewall rules, PCI devices and storage sizes.

use std::collections::BTreeMap;

use qubes_api::{CallError, Client, PropValue};

use super::Target;
use crate::i18n::{tr, tr_default};

/// What the dialog shows about a qube.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Properties.
    pub props: BTreeMap<String, PropValue>,
    /// Choices per property: (value to set, text shown). The empty value means "reset".
    pub choices: BTreeMap<String, Vec<(String, String)>>,
    /// Notes.
    pub notes: String,
    /// Features in the daemon's order (name, value).
    pub features: Vec<(String, String)>,
    /// Firewall rules (API lines); `None` when the daemon has no firewall calls.
    pub firewall: Option<Vec<String>>,
    /// PCI devices and assignments; `None` when the daemon has no device calls.
    pub devices: Option<crate::devices_editor::DevicesLoaded>,
    /// Whether the qube is not halted (its template cannot change then).
    pub running: bool,
    /// Label colours (`0xRRGGBB`) by label name.
    pub colours: BTreeMap<String, String>,
    /// The kind of qube (its icon).
    pub kind: crate::qube_icons::QubeKind,
    /// Whether its template (or itself) has the idle shutdown service installed.
    pub idle_supported: bool,
    /// The qube's name (`dom0` for the global settings).
    pub name: String,
    /// Every qube's name (a new name must be another).
    pub names: Vec<String>,
}

/// A flag as a property value.
fn flag(on: bool) -> PropValue {
    PropValue {
        is_default: false,
        ty: "bool".into(),
        value: if on { "True" } else { "False" }.into(),
    }
}

/// The boot modes `features` offer (`boot-mode.kernelopts.<id>`), with their names
/// (`boot-mode.name.<id>`, else the id), sorted by id.
pub fn boot_modes(features: &[(String, String)]) -> Vec<(String, String)> {
    let name = |id: &str| {
        features
            .iter()
            .find(|(f, _)| f.strip_prefix("boot-mode.name.") == Some(id))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| id.to_string())
    };
    let mut ids: Vec<&str> = features
        .iter()
        .filter_map(|(f, _)| f.strip_prefix("boot-mode.kernelopts."))
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .map(|id| (id.to_string(), name(id)))
        .collect()
}

/// A qube's features (names and values), as `admin.vm.feature.List` and `Get` give them.
fn features_of(client: &Client, vm: &str) -> Vec<(String, String)> {
    client
        .call("admin.vm.feature.List", vm, "", b"")
        .unwrap_or_default()
        .lines()
        .filter_map(|f| {
            let v = client.call("admin.vm.feature.Get", vm, f, b"").ok()?;
            Some((f.to_string(), v))
        })
        .collect()
}

/// Qubes by role, for the choice lists.
#[derive(Default)]
struct Roles {
    templates: Vec<String>,
    networked: Vec<String>,
    dvm_templates: Vec<String>,
    all: Vec<String>,
}

fn roles(client: &Client, except: &str) -> Result<Roles, CallError> {
    let mut r = Roles::default();
    for q in client.vm_list()? {
        if q.name == except {
            continue;
        }
        if q.class == "TemplateVM" {
            r.templates.push(q.name.clone());
        }
        r.all.push(q.name.clone());
        if q.class == "AdminVM" {
            continue;
        }
        let flag = |p: &str| {
            client
                .call("admin.vm.property.Get", &q.name, p, b"")
                .is_ok_and(|v| v.ends_with(" True"))
        };
        if flag("provides_network") {
            r.networked.push(q.name.clone());
        }
        if flag("template_for_dispvms") {
            r.dvm_templates.push(q.name.clone());
        }
    }
    Ok(r)
}

/// Installed kernels: the volumes of the kernel pool.
fn kernels(client: &Client) -> Vec<String> {
    let pool = client
        .call("admin.property.Get", "dom0", "default_pool_kernel", b"")
        .ok()
        .and_then(|v| PropValue::parse(&v).ok())
        .map(|p| p.value)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "linux-kernel".into());
    client
        .call("admin.pool.volume.List", "dom0", &pool, b"")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub(super) fn load(client: &Client, target: &Target) -> Result<Loaded, CallError> {
    let dest = target.dest();
    let mut props: BTreeMap<String, PropValue> = match target {
        Target::Qube(vm) => client.property_get_all(vm)?,
        Target::Global => client.global_property_get_all()?,
    }
    .into_iter()
    .collect();
    let r = roles(client, if *target == Target::Global { "" } else { dest })?;
    let default_text = |prop: &str| {
        client
            .call(&format!("{}.GetDefault", target.prefix()), dest, prop, b"")
            .ok()
            .and_then(|d| d.split_once(' ').map(|(_, v)| v.to_string()))
            .map(|v| tr_default(if v.is_empty() { "none" } else { &v }))
            .unwrap_or_else(|| tr("default"))
    };
    let vm_choices = |names: &[String], prop: &str| {
        let mut v = vec![
            (String::new(), default_text(prop)),
            ("\u{0}none".to_string(), tr("none")),
        ];
        v.extend(names.iter().map(|n| (n.clone(), n.clone())));
        v
    };
    let plain = |names: Vec<String>| {
        names
            .into_iter()
            .map(|n| (n.clone(), n))
            .collect::<Vec<_>>()
    };
    let mut choices = BTreeMap::new();
    let mut notes = String::new();
    let mut features = Vec::new();
    let mut firewall = None;
    let mut devices = None;
    let mut colours = BTreeMap::new();
    let mut idle_supported = false;
    match target {
        Target::Qube(vm) => {
            let labels: Vec<String> = client
                .call("admin.label.List", "dom0", "", b"")?
                .lines()
                .map(str::to_string)
                .collect();
            for l in &labels {
                if let Ok(c) = client.call("admin.label.Get", "dom0", l, b"") {
                    colours.insert(l.clone(), c);
                }
            }
            choices.insert("label".to_string(), plain(labels));
            choices.insert("template".to_string(), plain(r.templates.clone()));
            choices.insert("netvm".to_string(), vm_choices(&r.networked, "netvm"));
            choices.insert(
                "default_dispvm".to_string(),
                vm_choices(&r.dvm_templates, "default_dispvm"),
            );
            choices.insert(
                "management_dispvm".to_string(),
                vm_choices(&r.dvm_templates, "management_dispvm"),
            );
            for p in ["guivm", "audiovm"] {
                choices.insert(p.to_string(), vm_choices(&r.all, p));
            }
            let mut kernel_choices = vec![
                (String::new(), default_text("kernel")),
                ("\u{0}none".to_string(), tr("none")),
            ];
            kernel_choices.extend(plain(kernels(client)));
            choices.insert("kernel".to_string(), kernel_choices);
            choices.insert(
                "virt_mode".to_string(),
                std::iter::once((String::new(), default_text("virt_mode")))
                    .chain(
                        ["pvh", "hvm", "pv"]
                            .iter()
                            .map(|m| (m.to_string(), m.to_string())),
                    )
                    .collect(),
            );
            notes = client
                .call("admin.vm.notes.Get", vm, "", b"")
                .unwrap_or_default();
            firewall = client
                .call("admin.vm.firewall.Get", vm, "", b"")
                .ok()
                .map(|r| r.lines().map(str::to_string).collect());
            devices = load_devices(client, vm, &props);
            features = features_of(client, vm);
            // Boot modes and the idle shutdown service come from the template too.
            let template_features = props
                .get("template")
                .filter(|t| !t.value.is_empty())
                .map(|t| features_of(client, &t.value))
                .unwrap_or_default();
            let both: Vec<(String, String)> =
                features.iter().chain(&template_features).cloned().collect();
            let mode_choices = |modes: Vec<(String, String)>| {
                std::iter::once((String::new(), tr("default")))
                    .chain(modes)
                    .collect::<Vec<_>>()
            };
            choices.insert("bootmode".to_string(), mode_choices(boot_modes(&both)));
            choices.insert(
                "appvm_default_bootmode".to_string(),
                mode_choices(boot_modes(&features)),
            );
            idle_supported = both
                .iter()
                .any(|(f, v)| f == "supported-service.shutdown-idle" && !v.is_empty());
            // Rows that stand for features and for maxmem.
            let feature = |name: &str| {
                features
                    .iter()
                    .find(|(f, _)| f == name)
                    .map(|(_, v)| v.clone())
            };
            let maxmem = props.get("maxmem").map(|p| p.value.clone());
            if maxmem.is_some() {
                props.insert(
                    "balancing".into(),
                    flag(maxmem.as_deref().is_some_and(|m| m != "0")),
                );
            }
            let idle = feature("service.shutdown-idle");
            props.insert(
                "shutdown-idle".into(),
                flag(idle.is_some_and(|v| !v.is_empty() && v != "0")),
            );
            let reason = feature("prohibit-start").unwrap_or_default();
            props.insert("prohibit-start".into(), flag(!reason.is_empty()));
            props.insert(
                "prohibit-start-reason".into(),
                PropValue {
                    is_default: false,
                    ty: "str".into(),
                    value: reason,
                },
            );
            // Storage sizes, in MiB, as editable pseudo-properties.
            let volumes = client
                .call("admin.vm.volume.List", vm, "", b"")
                .unwrap_or_default();
            for vol in ["private", "root"] {
                if !volumes.lines().any(|v| v == vol) {
                    continue;
                }
                let Ok(info) = client.call("admin.vm.volume.Info", vm, vol, b"") else {
                    continue;
                };
                let key = |k: &str| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(k).map(str::to_string))
                        .unwrap_or_default()
                };
                // A snapshot of the template's root is resized through the template.
                if key("snap_on_start=") == "True" || key("rw=") != "True" {
                    continue;
                }
                let mib = key("size=").parse::<u64>().unwrap_or(0) / (1 << 20);
                props.insert(
                    format!("volume:{vol}"),
                    PropValue {
                        is_default: false,
                        ty: "int".into(),
                        value: mib.to_string(),
                    },
                );
            }
        }
        Target::Global => {
            choices.insert(
                "default_template".to_string(),
                vm_choices(&r.templates, "default_template"),
            );
            choices.insert(
                "default_netvm".to_string(),
                vm_choices(&r.networked, "default_netvm"),
            );
            for p in ["default_dispvm", "management_dispvm"] {
                choices.insert(p.to_string(), vm_choices(&r.dvm_templates, p));
            }
            for p in ["clockvm", "updatevm", "default_guivm", "default_audiovm"] {
                choices.insert(p.to_string(), vm_choices(&r.all, p));
            }
            let pools: Vec<String> = client
                .call("admin.pool.List", "dom0", "", b"")
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            let mut pool_choices = vec![(String::new(), default_text("default_pool"))];
            pool_choices.extend(plain(pools));
            choices.insert("default_pool".to_string(), pool_choices);
            let mut kernel_choices = vec![
                (String::new(), default_text("default_kernel")),
                ("\u{0}none".to_string(), tr("none")),
            ];
            kernel_choices.extend(plain(kernels(client)));
            choices.insert("default_kernel".to_string(), kernel_choices);
        }
    }
    let entry = match target {
        Target::Qube(vm) => client.vm_list()?.into_iter().find(|q| q.name == *vm),
        Target::Global => None,
    };
    let running = entry.as_ref().is_some_and(|q| q.state != "Halted");
    let kind = crate::qube_icons::QubeKind::of(
        entry.as_ref().map_or("", |q| q.class.as_str()),
        props
            .get("template_for_dispvms")
            .is_some_and(|p| p.value == "True"),
    );
    Ok(Loaded {
        props,
        choices,
        notes,
        features,
        firewall,
        devices,
        running,
        colours,
        kind,
        idle_supported,
        name: dest.to_string(),
        names: {
            let mut all = r.all.clone();
            all.push(dest.to_string());
            all
        },
    })
}

/// dom0's PCI devices and the qube's required assignments, whether it runs and whether it is
/// PVH; `None` when the daemon does not answer the device calls.
fn load_devices(
    client: &Client,
    vm: &str,
    props: &BTreeMap<String, PropValue>,
) -> Option<crate::devices_editor::DevicesLoaded> {
    use crate::devices_editor as de;
    let available = client
        .call("admin.vm.device.pci.Available", "dom0", "", b"")
        .ok()?;
    let assigned = client
        .call("admin.vm.device.pci.Assigned", vm, "", b"")
        .ok()?;
    let state = client
        .call("admin.vm.List", vm, "", b"")
        .unwrap_or_default();
    Some(de::DevicesLoaded {
        available: de::parse_available(&available),
        required: de::parse_required(&assigned),
        running: !state.contains(" state=Halted "),
        pvh: props.get("virt_mode").is_some_and(|p| p.value == "pvh"),
    })
}
