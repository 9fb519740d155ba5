//! The settings dialogs: a qube's (Basic, Advanced, Services, Features, Notes) and the
//! global settings (`admin.property.*`). Changes apply as property Set/Reset, volume Resize,
//! feature Set/Remove and notes Set; a daemon error appears next to the field it concerns.

use std::collections::BTreeMap;

use qubes_api::{CallError, Client, PropValue};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::errors::describe;
use crate::i18n::{tr, tr_default};

/// Whose settings the dialog edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A qube's (`admin.vm.property.*`).
    Qube(String),
    /// The system's (`admin.property.*` on dom0).
    Global,
}

impl Target {
    /// The destination of the calls.
    fn dest(&self) -> &str {
        match self {
            Target::Qube(vm) => vm,
            Target::Global => "dom0",
        }
    }

    /// Method prefix of property calls.
    fn prefix(&self) -> &'static str {
        match self {
            Target::Qube(_) => "admin.vm.property",
            Target::Global => "admin.property",
        }
    }
}

/// One editable property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A choice from a list (labels, qubes, modes).
    Choice,
    /// True / False.
    Flag,
    /// A number.
    Number,
    /// Free text.
    Text,
}

/// Fields of the dialog: (page, property, kind, title).
pub fn fields() -> Vec<(&'static str, &'static str, Kind, String)> {
    vec![
        ("basic", "label", Kind::Choice, tr("Label")),
        ("basic", "template", Kind::Choice, tr("Template")),
        ("basic", "netvm", Kind::Choice, tr("Network qube")),
        (
            "basic",
            "default_dispvm",
            Kind::Choice,
            tr("Default disposable template"),
        ),
        (
            "basic",
            "include_in_backups",
            Kind::Flag,
            tr("Include in backups by default"),
        ),
        (
            "basic",
            "autostart",
            Kind::Flag,
            tr("Start qube automatically on boot"),
        ),
        (
            "basic",
            "volume:private",
            Kind::Number,
            tr("Private storage size (MiB)"),
        ),
        (
            "basic",
            "volume:root",
            Kind::Number,
            tr("System storage size (MiB)"),
        ),
        (
            "advanced",
            "memory",
            Kind::Number,
            tr("Initial memory (MiB)"),
        ),
        (
            "advanced",
            "maxmem",
            Kind::Number,
            tr("Maximum memory (MiB; 0: no memory balancing)"),
        ),
        ("advanced", "vcpus", Kind::Number, tr("Virtual CPUs")),
        (
            "advanced",
            "qrexec_timeout",
            Kind::Number,
            tr("Qrexec timeout (seconds)"),
        ),
        (
            "advanced",
            "shutdown_timeout",
            Kind::Number,
            tr("Shutdown timeout (seconds)"),
        ),
        ("advanced", "kernel", Kind::Choice, tr("Kernel")),
        ("advanced", "kernelopts", Kind::Text, tr("Kernel options")),
        (
            "advanced",
            "virt_mode",
            Kind::Choice,
            tr("Virtualisation mode"),
        ),
        (
            "advanced",
            "provides_network",
            Kind::Flag,
            tr("Provides network access to other qubes"),
        ),
        (
            "advanced",
            "template_for_dispvms",
            Kind::Flag,
            tr("Disposable template"),
        ),
        (
            "advanced",
            "management_dispvm",
            Kind::Choice,
            tr("Disposable template for management"),
        ),
        ("advanced", "guivm", Kind::Choice, tr("GUI qube")),
        ("advanced", "audiovm", Kind::Choice, tr("Audio qube")),
        ("advanced", "bootmode", Kind::Text, tr("Boot mode")),
        ("advanced", "debug", Kind::Flag, tr("Debug mode")),
    ]
}

/// Fields of the global settings dialog (one page).
pub fn global_fields() -> Vec<(&'static str, &'static str, Kind, String)> {
    vec![
        (
            "basic",
            "default_template",
            Kind::Choice,
            tr("Default template"),
        ),
        (
            "basic",
            "default_netvm",
            Kind::Choice,
            tr("Default network qube"),
        ),
        (
            "basic",
            "default_dispvm",
            Kind::Choice,
            tr("Default disposable template"),
        ),
        (
            "basic",
            "management_dispvm",
            Kind::Choice,
            tr("Disposable template for management"),
        ),
        (
            "basic",
            "default_kernel",
            Kind::Choice,
            tr("Default kernel"),
        ),
        (
            "basic",
            "default_pool",
            Kind::Choice,
            tr("Default storage pool"),
        ),
        ("basic", "clockvm", Kind::Choice, tr("Clock qube")),
        ("basic", "updatevm", Kind::Choice, tr("Update qube")),
        (
            "basic",
            "default_guivm",
            Kind::Choice,
            tr("Default GUI qube"),
        ),
        (
            "basic",
            "default_audiovm",
            Kind::Choice,
            tr("Default audio qube"),
        ),
        (
            "basic",
            "check_updates_vm",
            Kind::Flag,
            tr("Check for qube updates"),
        ),
        (
            "basic",
            "stats_interval",
            Kind::Number,
            tr("Statistics interval (seconds)"),
        ),
        (
            "basic",
            "default_shutdown_timeout",
            Kind::Number,
            tr("Default shutdown timeout (seconds)"),
        ),
        (
            "basic",
            "default_qrexec_timeout",
            Kind::Number,
            tr("Default qrexec timeout (seconds)"),
        ),
    ]
}

/// What the dialog shows about a qube.
#[derive(Debug, Clone, Default)]
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
}

/// A change to send: property, value (`None` = reset to default). Properties named
/// `volume:<name>` are volume sizes in MiB, `feature:<name>` features (`None` = remove).
pub type Change = (String, Option<String>);

/// Messages.
#[derive(Debug)]
pub enum Msg {
    /// Data arrived.
    Loaded(Box<Loaded>),
    /// Loading failed.
    LoadFailed(String),
    /// Apply the edits.
    Apply,
    /// Results of applying: errors by property (empty = all done).
    Applied(BTreeMap<String, String>),
    /// The window is asked to close (Escape, its close button): ask first if edits would be
    /// lost.
    CloseAsked,
    /// The answer to "apply the changes?": `cancel`, `discard` or `apply`.
    CloseAnswer(String),
}

/// The dialog.
pub struct Settings {
    client: Client,
    target: Target,
    loaded: Option<Loaded>,
    /// Errors by property, shown under their fields (public for tests).
    pub errors: BTreeMap<String, String>,
    /// Whether the last apply succeeded (public for tests).
    pub applied: bool,
    busy: bool,
    /// Whether the window may close without asking (nothing to lose, or the user said so).
    may_close: std::rc::Rc<std::cell::Cell<bool>>,
    /// Close once the Apply under way succeeds.
    close_after_apply: bool,
    /// The values are being read again after an Apply.
    reloading: bool,
    /// The open "apply the changes?" question, if any (public for tests).
    pub question: Option<adw::MessageDialog>,
}

/// Widgets.
pub struct Widgets {
    editors: BTreeMap<&'static str, Editor>,
    notes: gtk::TextView,
    /// Services page: rows of `service.*` features.
    pub services: crate::features_editor::FeatureEditor,
    /// Features page: the other features.
    pub features: crate::features_editor::FeatureEditor,
    /// Firewall page.
    pub firewall: crate::firewall_editor::FirewallEditor,
    /// Devices page.
    pub devices: crate::devices_editor::DevicesEditor,
    status: gtk::Label,
    apply: gtk::Button,
    notebook: gtk::Notebook,
    filled: bool,
}

/// An editor widget and the label that shows its error.
pub struct Editor {
    kind: Kind,
    /// The control: a check button, an entry, a spin button (numbers) or a drop-down.
    pub widget: gtk::Widget,
    error: gtk::Label,
    row: gtk::Box,
    /// Numbers: the typed text is not a number in range, so it stays as typed (a spin button
    /// would otherwise put back the last valid value when it loses the focus).
    keep_text: std::rc::Rc<std::cell::Cell<bool>>,
    /// Why the control cannot be used now, under it.
    note: gtk::Label,
    /// The notebook page it is on.
    page: u32,
}

impl Settings {
    /// The qube being edited (`dom0` for the global settings).
    pub fn vm(&self) -> &str {
        self.target.dest()
    }

    /// Whether the data arrived.
    pub fn is_loaded(&self) -> bool {
        self.loaded.is_some()
    }

    /// Whether nothing is under way: loaded, no Apply running, and the values read again
    /// after the last Apply are shown.
    pub fn settled(&self) -> bool {
        self.loaded.is_some() && !self.busy && !self.reloading
    }
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

fn load(client: &Client, target: &Target) -> Result<Loaded, CallError> {
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
    match target {
        Target::Qube(vm) => {
            let labels: Vec<String> = client
                .call("admin.label.List", "dom0", "", b"")?
                .lines()
                .map(str::to_string)
                .collect();
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
            for f in client
                .call("admin.vm.feature.List", vm, "", b"")
                .unwrap_or_default()
                .lines()
            {
                if let Ok(v) = client.call("admin.vm.feature.Get", vm, f, b"") {
                    features.push((f.to_string(), v));
                }
            }
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
    let running = match target {
        Target::Qube(vm) => client
            .vm_list()?
            .iter()
            .any(|q| q.name == *vm && q.state != "Halted"),
        Target::Global => false,
    };
    Ok(Loaded {
        props,
        choices,
        notes,
        features,
        firewall,
        devices,
        running,
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

/// One call of an Apply: the change, and the change that puts back what was there before
/// (`None`: it cannot be undone — storage only grows).
pub type Step = (Change, Option<Change>);

/// The calls an Apply makes, in the order that keeps a refusal cheap: device assignments and
/// choices (which the daemon checks against other qubes) first, then flags, numbers and text,
/// features, firewall rules and notes; storage, which cannot shrink back, last.
pub fn plan(loaded: &Loaded, changes: Vec<Change>, notes: Option<String>) -> Vec<Step> {
    let rank = |key: &str| -> u8 {
        if key.starts_with("pci:") {
            0
        } else if key.starts_with("feature:") {
            4
        } else if key == "firewall" {
            5
        } else if key == "notes" {
            6
        } else if key.starts_with("volume:") {
            7
        } else {
            match loaded.props.get(key).map(|p| p.ty.as_str()) {
                Some("bool") => 2,
                Some("int" | "str") => 3,
                _ => 1,
            }
        }
    };
    let mut steps: Vec<Step> = changes
        .into_iter()
        .chain(notes.map(|n| ("notes".to_string(), Some(n))))
        .map(|c| {
            let undo = undo_of(loaded, &c);
            (c, undo)
        })
        .collect();
    steps.sort_by_key(|((key, _), _)| rank(key));
    steps
}

/// The change that puts back what `loaded` shows, once `change` is made.
fn undo_of(loaded: &Loaded, (key, value): &Change) -> Option<Change> {
    let back = |v: Option<String>| Some((key.clone(), v));
    if key == "notes" {
        back(Some(loaded.notes.clone()))
    } else if key == "firewall" {
        back(loaded.firewall.as_ref().map(|r| r.join("\n")))
    } else if let Some(port) = key.strip_prefix("pci:") {
        let devices = loaded.devices.as_ref()?;
        back(Some(crate::devices_editor::undo_change(
            devices,
            port,
            value.as_deref().unwrap_or(""),
        )))
    } else if key.starts_with("volume:") {
        None
    } else if let Some(f) = key.strip_prefix("feature:") {
        back(
            loaded
                .features
                .iter()
                .find(|(name, _)| name == f)
                .map(|(_, v)| v.clone()),
        )
    } else {
        let old = loaded.props.get(key)?;
        back((!old.is_default).then(|| old.value.clone()))
    }
}

/// Makes the calls of `steps` in order. All or nothing: at the first refusal the calls made
/// so far are undone, last first, and nothing more is sent. Returns the errors by property
/// (empty: everything was applied).
pub fn apply(client: &Client, target: &Target, steps: &[Step]) -> BTreeMap<String, String> {
    let mut errors = BTreeMap::new();
    for (i, ((key, value), _)) in steps.iter().enumerate() {
        let Err(e) = send(client, target, key, value) else {
            continue;
        };
        errors.insert(key.clone(), e);
        for ((done, _), undo) in steps[..i].iter().rev() {
            let result = match undo {
                Some((k, v)) => send(client, target, k, v),
                None => Err(tr("Storage cannot be made smaller than it is.")),
            };
            if let Err(e) = result {
                errors.insert(
                    done.clone(),
                    tr("Saved, and could not be put back: %s").replacen("%s", &e, 1),
                );
            }
        }
        break;
    }
    errors
}

/// Sends one change.
fn send(
    client: &Client,
    target: &Target,
    prop: &str,
    value: &Option<String>,
) -> Result<(), String> {
    let dest = target.dest();
    if prop == "notes" {
        client
            .call(
                "admin.vm.notes.Set",
                dest,
                "",
                value.as_deref().unwrap_or("").as_bytes(),
            )
            .map(|_| ())
            .map_err(|e| describe(&e))
    } else if prop == "firewall" {
        let mut payload = value.clone().unwrap_or_default();
        payload.push('\n');
        client
            .call("admin.vm.firewall.Set", dest, "", payload.as_bytes())
            .map(|_| ())
            .map_err(|e| match e {
                // The reference answers a malformed rule with no message at all.
                CallError::Empty => tr("The rules were refused: check their syntax."),
                e => describe(&e),
            })
    } else if let Some(port) = prop.strip_prefix("pci:") {
        crate::devices_editor::apply_change(client, dest, port, value.as_deref().unwrap_or(""))
            .map_err(|e| describe(&e))
    } else if let Some(vol) = prop.strip_prefix("volume:") {
        resize(client, dest, vol, value.as_deref().unwrap_or(""))
    } else if let Some(f) = prop.strip_prefix("feature:") {
        match value {
            None => client.call("admin.vm.feature.Remove", dest, f, b""),
            Some(v) => client.call("admin.vm.feature.Set", dest, f, v.as_bytes()),
        }
        .map(|_| ())
        .map_err(|e| describe(&e))
    } else {
        match value {
            None => client.call(&format!("{}.Reset", target.prefix()), dest, prop, b""),
            Some(v) => client.call(
                &format!("{}.Set", target.prefix()),
                dest,
                prop,
                v.as_bytes(),
            ),
        }
        .map(|_| ())
        .map_err(|e| describe(&e))
    }
}

/// Grows a volume to `mib` MiB. Shrinking is refused here, as `qvm-volume` does: the
/// daemon would cut the image and the data past the new end.
fn resize(client: &Client, vm: &str, vol: &str, mib: &str) -> Result<(), String> {
    let new: u64 = mib
        .trim()
        .parse()
        .map_err(|_| tr("The size must be a whole number of MiB."))?;
    let current = client
        .call("admin.vm.volume.Info", vm, vol, b"")
        .ok()
        .and_then(|i| {
            i.lines()
                .find_map(|l| l.strip_prefix("size=").and_then(|v| v.parse::<u64>().ok()))
        })
        .unwrap_or(0);
    let bytes = new.saturating_mul(1 << 20);
    if bytes < current {
        return Err(tr("Storage cannot be made smaller than it is."));
    }
    client
        .call(
            "admin.vm.volume.Resize",
            vm,
            vol,
            bytes.to_string().as_bytes(),
        )
        .map(|_| ())
        .map_err(|e| describe(&e))
}

impl Widgets {
    /// The editor of a property (tests drive it like a user would).
    pub fn editor(&self, prop: &str) -> Option<&Editor> {
        self.editors.get(prop)
    }
}

impl Editor {
    /// The text of an entry or a spin button, as typed.
    pub fn text(&self) -> String {
        self.widget
            .downcast_ref::<gtk::Editable>()
            .map(|e| e.text().to_string())
            .unwrap_or_default()
    }
}

fn choice_values(loaded: &Loaded, prop: &str) -> Vec<(String, String)> {
    loaded.choices.get(prop).cloned().unwrap_or_default()
}

/// The edits the widgets hold compared with what was loaded.
fn collect_changes(loaded: &Loaded, w: &Widgets) -> Vec<Change> {
    let mut out = Vec::new();
    for (prop, ed) in &w.editors {
        let Some(current) = loaded.props.get(*prop) else {
            continue;
        };
        let new: Option<String> = match ed.kind {
            Kind::Flag => {
                let active = ed
                    .widget
                    .downcast_ref::<gtk::CheckButton>()
                    .is_some_and(|c| c.is_active());
                let was = current.value == "True";
                (active != was).then(|| {
                    if active {
                        "True".into()
                    } else {
                        "False".into()
                    }
                })
            }
            Kind::Number => {
                // What is typed, as the number it means (validate() has said if it is none).
                let text = ed.text();
                let number = text.trim().parse::<i64>().map(|n| n.to_string());
                match number {
                    Ok(n) => (n != current.value).then_some(n),
                    Err(_) => (text != current.value).then_some(text),
                }
            }
            Kind::Text => {
                let text = ed.text();
                (text != current.value).then_some(text)
            }
            Kind::Choice => {
                let Some(dd) = ed.widget.downcast_ref::<gtk::DropDown>() else {
                    continue;
                };
                // The daemon changes a template only while the qube is halted.
                let locked = *prop == "template" && loaded.running;
                dd.set_sensitive(!locked);
                ed.note
                    .set_text(&tr("Shut the qube down to change its template."));
                ed.note.set_visible(locked);
                let values = choice_values(loaded, prop);
                let Some((value, _)) = values.get(dd.selected() as usize) else {
                    continue;
                };
                if value.is_empty() {
                    if !current.is_default {
                        out.push((prop.to_string(), None));
                    }
                    continue;
                }
                let value = if value == "\u{0}none" {
                    String::new()
                } else {
                    value.clone()
                };
                (current.is_default || value != current.value).then_some(value)
            }
        };
        if let Some(v) = new {
            out.push((prop.to_string(), Some(v)));
        }
    }
    out
}

impl Component for Settings {
    type CommandOutput = ();
    type Input = Msg;
    type Output = ();
    type Init = (Client, Target);
    type Root = adw::Window;
    type Widgets = Widgets;

    fn init_root() -> Self::Root {
        adw::Window::builder()
            .default_width(560)
            .default_height(620)
            .modal(true)
            .build()
    }

    fn init(
        (client, target): (Client, Target),
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let global = target == Target::Global;
        root.set_title(Some(&match &target {
            Target::Qube(vm) => tr("Settings: %s").replacen("%s", vm, 1),
            Target::Global => tr("Global settings"),
        }));
        let header = adw::HeaderBar::new();
        let apply_button = gtk::Button::with_label(&tr("Apply"));
        apply_button.add_css_class("suggested-action");
        apply_button.set_sensitive(false);
        {
            let input = sender.input_sender().clone();
            apply_button.connect_clicked(move |_| input.emit(Msg::Apply));
        }
        header.pack_end(&apply_button);
        let notebook = gtk::Notebook::new();
        let mut editors = BTreeMap::new();
        let mut pages: BTreeMap<&str, gtk::Box> = BTreeMap::new();
        let mut page_numbers: BTreeMap<&str, u32> = BTreeMap::new();
        let page_list = if global {
            vec![("basic", tr("General"))]
        } else {
            vec![("basic", tr("Basic")), ("advanced", tr("Advanced"))]
        };
        for (page, title) in page_list {
            let b = page_box(10);
            let scroller = gtk::ScrolledWindow::builder()
                .child(&b)
                .vexpand(true)
                .build();
            let number = notebook.append_page(&scroller, Some(&gtk::Label::new(Some(&title))));
            page_numbers.insert(page, number);
            pages.insert(page, b);
        }
        for (page, prop, kind, title) in if global { global_fields() } else { fields() } {
            let row = gtk::Box::new(gtk::Orientation::Vertical, 2);
            let keep_text = std::rc::Rc::new(std::cell::Cell::new(false));
            let widget: gtk::Widget = match kind {
                Kind::Flag => gtk::CheckButton::with_label(&title).upcast(),
                Kind::Number => {
                    let caption = gtk::Label::builder().label(&title).xalign(0.0).build();
                    row.append(&caption);
                    let (min, max) = crate::limits::number_range(prop).unwrap_or((0, i64::MAX));
                    number_editor(min, max, &title, &keep_text).upcast()
                }
                Kind::Text => {
                    let caption = gtk::Label::builder().label(&title).xalign(0.0).build();
                    row.append(&caption);
                    let e = gtk::Entry::new();
                    e.set_tooltip_text(Some(&title));
                    crate::a11y::set_name(&e, &title);
                    e.upcast()
                }
                Kind::Choice => {
                    let caption = gtk::Label::builder().label(&title).xalign(0.0).build();
                    row.append(&caption);
                    let d = gtk::DropDown::from_strings(&[]);
                    d.set_tooltip_text(Some(&title));
                    crate::a11y::set_name(&d, &title);
                    d.upcast()
                }
            };
            let error = gtk::Label::builder()
                .xalign(0.0)
                .visible(false)
                .wrap(true)
                .build();
            error.add_css_class("error");
            let note = gtk::Label::builder()
                .xalign(0.0)
                .visible(false)
                .wrap(true)
                .build();
            note.add_css_class("dim-label");
            row.append(&widget);
            row.append(&note);
            row.append(&error);
            row.set_visible(false);
            pages[page].append(&row);
            editors.insert(
                prop,
                Editor {
                    kind,
                    widget,
                    error,
                    row,
                    keep_text,
                    note,
                    page: page_numbers[page],
                },
            );
        }
        let notes = gtk::TextView::builder()
            .wrap_mode(gtk::WrapMode::WordChar)
            .vexpand(true)
            .build();
        notes.set_tooltip_text(Some(&tr("Notes")));
        crate::a11y::set_name(&notes, &tr("Notes"));
        let notes_scroller = gtk::ScrolledWindow::builder()
            .child(&notes)
            .vexpand(true)
            .build();
        let services = crate::features_editor::FeatureEditor::new(true);
        let features = crate::features_editor::FeatureEditor::new(false);
        let firewall = crate::firewall_editor::FirewallEditor::new();
        let devices = crate::devices_editor::DevicesEditor::new();
        // Insensitive until the rules are read (a page hidden when added keeps no tab in
        // GTK 4.8 even once shown).
        firewall.root.set_sensitive(false);
        devices.root.set_sensitive(false);
        if !global {
            notebook.append_page(
                &firewall.root,
                Some(&gtk::Label::new(Some(&tr("Firewall")))),
            );
            notebook.append_page(&devices.root, Some(&gtk::Label::new(Some(&tr("Devices")))));
            notebook.append_page(
                &services.root,
                Some(&gtk::Label::new(Some(&tr("Services")))),
            );
            notebook.append_page(
                &features.root,
                Some(&gtk::Label::new(Some(&tr("Features")))),
            );
            notebook.append_page(&notes_scroller, Some(&gtk::Label::new(Some(&tr("Notes")))));
        }
        let status = gtk::Label::builder()
            .label(tr("Loading…"))
            .xalign(0.0)
            .margin_start(12)
            .margin_bottom(6)
            .build();
        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        content.append(&notebook);
        content.append(&status);
        root.set_content(Some(&content));
        {
            let (client, target, input) = (
                client.clone(),
                target.clone(),
                sender.input_sender().clone(),
            );
            std::thread::spawn(move || {
                input.emit(match load(&client, &target) {
                    Ok(l) => Msg::Loaded(Box::new(l)),
                    Err(e) => Msg::LoadFailed(crate::errors::describe(&e)),
                })
            });
        }
        let may_close = std::rc::Rc::new(std::cell::Cell::new(false));
        {
            // Escape closes the window, as the close button does.
            let keys = gtk::EventControllerKey::new();
            let window = root.clone();
            keys.connect_key_pressed(move |_, key, _, _| {
                if key == gtk::gdk::Key::Escape {
                    window.close();
                    gtk::glib::Propagation::Stop
                } else {
                    gtk::glib::Propagation::Proceed
                }
            });
            root.add_controller(keys);
            let (may_close, input) = (may_close.clone(), sender.input_sender().clone());
            root.connect_close_request(move |_| {
                if may_close.get() {
                    gtk::glib::Propagation::Proceed
                } else {
                    input.emit(Msg::CloseAsked);
                    gtk::glib::Propagation::Stop
                }
            });
        }
        let model = Settings {
            client,
            target,
            loaded: None,
            errors: BTreeMap::new(),
            applied: false,
            busy: false,
            may_close,
            close_after_apply: false,
            reloading: false,
            question: None,
        };
        let widgets = Widgets {
            editors,
            notes,
            services,
            features,
            firewall,
            devices,
            status,
            apply: apply_button,
            notebook: notebook.clone(),
            filled: false,
        };
        ComponentParts { model, widgets }
    }

    fn update_with_view(
        &mut self,
        widgets: &mut Widgets,
        msg: Msg,
        sender: ComponentSender<Self>,
        root: &Self::Root,
    ) {
        match msg {
            Msg::CloseAsked => {
                let (changes, notes) = pending(self, widgets);
                if self.loaded.is_none() || (changes.is_empty() && notes.is_none()) {
                    self.may_close.set(true);
                    root.close();
                    return;
                }
                let dialog = adw::MessageDialog::new(
                    Some(root),
                    Some(&tr("Apply the changes?")),
                    Some(&tr("Some settings were changed and not applied yet.")),
                );
                dialog.add_response("cancel", &tr("Keep editing"));
                dialog.add_response("discard", &tr("Discard"));
                dialog.add_response("apply", &tr("Apply"));
                dialog.set_response_appearance("discard", adw::ResponseAppearance::Destructive);
                dialog.set_response_appearance("apply", adw::ResponseAppearance::Suggested);
                dialog.set_default_response(Some("apply"));
                dialog.set_close_response("cancel");
                let input = sender.input_sender().clone();
                dialog.connect_response(None, move |_, r| input.emit(Msg::CloseAnswer(r.into())));
                dialog.present();
                self.question = Some(dialog);
            }
            Msg::CloseAnswer(answer) => match answer.as_str() {
                "discard" => {
                    self.may_close.set(true);
                    root.close();
                }
                "apply" => {
                    self.close_after_apply = true;
                    sender.input(Msg::Apply);
                }
                _ => {}
            },
            Msg::Loaded(l) => {
                self.loaded = Some(*l);
                self.reloading = false;
                widgets.filled = false;
            }
            Msg::LoadFailed(e) => {
                self.reloading = false;
                self.errors.insert(String::new(), e);
            }
            Msg::Apply => {
                self.applied = false;
                // Nothing is sent while anything typed is wrong.
                self.errors = validate(self, widgets);
                if !self.errors.is_empty() {
                    self.close_after_apply = false;
                    show_first_error(&self.errors, widgets);
                }
                if self.errors.is_empty()
                    && let Some(loaded) = &self.loaded
                {
                    let (changes, notes) = pending(self, widgets);
                    let steps = plan(loaded, changes, notes);
                    self.busy = true;
                    let (client, target, input) = (
                        self.client.clone(),
                        self.target.clone(),
                        sender.input_sender().clone(),
                    );
                    std::thread::spawn(move || {
                        input.emit(Msg::Applied(apply(&client, &target, &steps)))
                    });
                }
            }
            Msg::Applied(errors) => {
                self.busy = false;
                self.applied = errors.is_empty();
                self.errors = errors;
                if std::mem::take(&mut self.close_after_apply) && self.applied {
                    self.may_close.set(true);
                    root.close();
                    return;
                }
                if !self.applied {
                    // Nothing changed: the user's edits stay, next to what was refused.
                    show_first_error(&self.errors, widgets);
                    self.update_view(widgets, sender);
                    return;
                }
                // Re-read so the dialog shows what the daemon now holds.
                self.reloading = true;
                let (client, target, input) = (
                    self.client.clone(),
                    self.target.clone(),
                    sender.input_sender().clone(),
                );
                std::thread::spawn(move || {
                    input.emit(match load(&client, &target) {
                        Ok(l) => Msg::Loaded(Box::new(l)),
                        Err(e) => Msg::LoadFailed(describe(&e)),
                    })
                });
            }
        }
        self.update_view(widgets, sender);
    }

    fn update_view(&self, w: &mut Widgets, sender: ComponentSender<Self>) {
        if let Some(loaded) = &self.loaded
            && !w.filled
        {
            fill(loaded, w);
            w.filled = true;
        }
        w.apply.set_sensitive(self.loaded.is_some() && !self.busy);
        for (prop, ed) in &w.editors {
            match self.errors.get(*prop) {
                Some(e) => {
                    ed.error.set_text(e);
                    ed.error.set_visible(true);
                }
                None => ed.error.set_visible(false),
            }
        }
        w.status.set_text(&if let Some(e) = self.errors.get("") {
            format!("{}: {e}", tr("Cannot read the qube"))
        } else if let Some(e) = self.errors.get("notes") {
            format!("{}: {e}", tr("Notes"))
        } else if let Some(e) = self.errors.get("firewall") {
            format!("{}: {e}", tr("Firewall"))
        } else if let Some((k, e)) = self.errors.iter().find(|(k, _)| k.starts_with("pci:")) {
            format!("{} {}: {e}", tr("PCI device"), k.trim_start_matches("pci:"))
        } else if let Some((k, e)) = self.errors.iter().find(|(k, _)| k.starts_with("feature:")) {
            format!("{}: {e}", k.trim_start_matches("feature:"))
        } else if !self.errors.is_empty() {
            tr("Not applied: see the fields marked in red.")
        } else if self.applied {
            tr("Changes applied.")
        } else if self.loaded.is_some() {
            String::new()
        } else {
            tr("Loading…")
        });
        let _ = sender;
    }
}

/// A page of the dialog: a vertical box with the pages' margins.
pub(crate) fn page_box(spacing: i32) -> gtk::Box {
    let b = gtk::Box::new(gtk::Orientation::Vertical, spacing);
    b.set_margin_start(16);
    b.set_margin_end(16);
    b.set_margin_top(12);
    b.set_margin_bottom(12);
    b
}

/// One row of a list on a page (a feature, a firewall rule).
pub(crate) fn row_box(spacing: i32) -> gtk::Box {
    let b = gtk::Box::new(gtk::Orientation::Horizontal, spacing);
    b.set_margin_start(8);
    b.set_margin_end(8);
    b.set_margin_top(4);
    b.set_margin_bottom(4);
    b
}

/// Puts `list` (scrolling) on a page with a bar under it: `entries` and an Add button,
/// returned for [`connect_add`].
pub(crate) fn list_with_add_bar(
    page: &gtk::Box,
    list: &gtk::ListBox,
    entries: &[&gtk::Entry],
) -> gtk::Button {
    let add = gtk::Button::with_label(&tr("Add"));
    let bar = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    for e in entries {
        bar.append(*e);
    }
    bar.append(&add);
    let scroller = gtk::ScrolledWindow::builder()
        .child(list)
        .vexpand(true)
        .build();
    page.append(&scroller);
    page.append(&bar);
    add
}

/// Runs `on_add` when the Add button is pressed or Enter is typed in `entry`.
pub(crate) fn connect_add(add: &gtk::Button, entry: &gtk::Entry, on_add: impl Fn() + 'static) {
    let on_add = std::rc::Rc::new(on_add);
    let again = on_add.clone();
    add.connect_clicked(move |_| again());
    entry.connect_activate(move |_| on_add());
}

/// A spin button for a number from `min` to `max`. What the user types stays as typed while
/// it is not a number in range (`keep_text`), so the error next to it refers to what is seen.
fn number_editor(
    min: i64,
    max: i64,
    title: &str,
    keep_text: &std::rc::Rc<std::cell::Cell<bool>>,
) -> gtk::SpinButton {
    let spin = gtk::SpinButton::with_range(min as f64, max as f64, 1.0);
    spin.set_digits(0);
    spin.set_numeric(false);
    spin.set_update_policy(gtk::SpinButtonUpdatePolicy::IfValid);
    spin.set_tooltip_text(Some(title));
    crate::a11y::set_name(&spin, title);
    {
        let keep = keep_text.clone();
        spin.connect_changed(move |s| {
            let adj = s.adjustment();
            let valid = s
                .text()
                .trim()
                .parse::<f64>()
                .is_ok_and(|v| v.fract() == 0.0 && v >= adj.lower() && v <= adj.upper());
            keep.set(!valid);
        });
    }
    let keep = keep_text.clone();
    spin.connect_output(move |_| {
        if keep.get() {
            gtk::glib::Propagation::Stop
        } else {
            gtk::glib::Propagation::Proceed
        }
    });
    spin
}

/// Turns to the page of the first field with an error (the Apply button is on every page; the
/// error might be on another).
fn show_first_error(errors: &BTreeMap<String, String>, w: &Widgets) {
    let page = w
        .editors
        .iter()
        .filter(|(prop, _)| errors.contains_key(**prop))
        .map(|(_, ed)| ed.page)
        .min();
    if let Some(page) = page {
        w.notebook.set_current_page(Some(page));
    }
}

/// What is wrong with the values typed, by property; empty when Apply may go ahead.
pub fn validate(model: &Settings, w: &Widgets) -> BTreeMap<String, String> {
    let mut errors = BTreeMap::new();
    let Some(loaded) = &model.loaded else {
        return errors;
    };
    let mut numbers = BTreeMap::new();
    for (prop, ed) in &w.editors {
        let Some(current) = loaded.props.get(*prop) else {
            continue;
        };
        if ed.kind != Kind::Number {
            continue;
        }
        let Some((mut min, max)) = crate::limits::number_range(prop) else {
            continue;
        };
        if prop.starts_with("volume:") {
            min = current.value.parse().unwrap_or(min);
            if ed.text().trim().parse::<i64>().is_ok_and(|n| n < min) {
                errors.insert(
                    prop.to_string(),
                    tr("Storage cannot be made smaller than it is."),
                );
                continue;
            }
        }
        match crate::limits::parse_number(&ed.text(), min, max) {
            Ok(n) => {
                numbers.insert(*prop, n);
            }
            Err(e) => {
                errors.insert(prop.to_string(), e);
            }
        }
    }
    // Memory balancing gives a qube between its initial and its maximum memory.
    if let (Some(memory), Some(maxmem)) = (numbers.get("memory"), numbers.get("maxmem"))
        && *maxmem != 0
        && maxmem < memory
    {
        errors.insert(
            "maxmem".into(),
            tr("At least the initial memory (%d MiB), or 0 to leave the qube out of memory balancing.")
                .replacen("%d", &memory.to_string(), 1),
        );
    }
    errors
}

/// Puts loaded values into the widgets.
fn fill(loaded: &Loaded, w: &Widgets) {
    for (prop, ed) in &w.editors {
        let Some(v) = loaded.props.get(*prop) else {
            continue;
        };
        ed.row.set_visible(true);
        match ed.kind {
            Kind::Flag => {
                if let Some(c) = ed.widget.downcast_ref::<gtk::CheckButton>() {
                    c.set_active(v.value == "True");
                }
            }
            Kind::Number => {
                if let Some(spin) = ed.widget.downcast_ref::<gtk::SpinButton>() {
                    let value: f64 = v.value.parse().unwrap_or(0.0);
                    if prop.starts_with("volume:") {
                        // Storage only grows.
                        spin.set_range(value, spin.adjustment().upper());
                    }
                    ed.keep_text.set(false);
                    spin.set_value(value);
                    spin.set_text(&v.value);
                }
            }
            Kind::Text => {
                if let Some(e) = ed.widget.downcast_ref::<gtk::Entry>() {
                    e.set_text(&v.value);
                }
            }
            Kind::Choice => {
                let Some(dd) = ed.widget.downcast_ref::<gtk::DropDown>() else {
                    continue;
                };
                // The daemon changes a template only while the qube is halted.
                let locked = *prop == "template" && loaded.running;
                dd.set_sensitive(!locked);
                ed.note
                    .set_text(&tr("Shut the qube down to change its template."));
                ed.note.set_visible(locked);
                let values = choice_values(loaded, prop);
                let texts: Vec<&str> = values.iter().map(|(_, t)| t.as_str()).collect();
                dd.set_model(Some(&gtk::StringList::new(&texts)));
                let pos = if v.is_default {
                    values.iter().position(|(k, _)| k.is_empty())
                } else if v.value.is_empty() {
                    values.iter().position(|(k, _)| k == "\u{0}none")
                } else {
                    values.iter().position(|(k, _)| *k == v.value)
                };
                if let Some(p) = pos {
                    dd.set_selected(p as u32);
                }
            }
        }
    }
    w.notes.buffer().set_text(&loaded.notes);
    w.services.fill(&loaded.features);
    w.features.fill(&loaded.features);
    if let Some(rules) = &loaded.firewall {
        w.firewall.fill(rules);
    }
    w.firewall.root.set_sensitive(loaded.firewall.is_some());
    if let Some(d) = &loaded.devices {
        w.devices.fill(d);
    }
    w.devices.root.set_sensitive(loaded.devices.is_some());
}

/// What Apply sends (used by the Apply handler and the tests).
pub fn pending(model: &Settings, w: &Widgets) -> (Vec<Change>, Option<String>) {
    let Some(loaded) = &model.loaded else {
        return (Vec::new(), None);
    };
    let buffer = w.notes.buffer();
    let text = buffer
        .text(&buffer.start_iter(), &buffer.end_iter(), false)
        .to_string();
    let global = model.target == Target::Global;
    let notes = (!global && text != loaded.notes).then_some(text);
    let mut changes = collect_changes(loaded, w);
    if !global {
        if let Some(d) = &loaded.devices {
            changes.extend(w.devices.changes(d));
        }
        changes.extend(w.services.changes(&loaded.features));
        changes.extend(w.features.changes(&loaded.features));
        if let Some(old) = &loaded.firewall {
            let mut rules = w.firewall.rules();
            if rules.is_empty() {
                // Limited to nothing: an explicit drop (an empty list cannot be set).
                rules.push("action=drop".into());
            }
            if &rules != old {
                changes.push(("firewall".into(), Some(rules.join("\n"))));
            }
        }
    }
    (changes, notes)
}
