//! What the table shows about a qube, independent of GTK widgets (GLib only formats the
//! last-backup time): built from `admin.vm.List` and `admin.vm.property.GetAll`, then changed
//! by events.

use std::collections::BTreeMap;

use qubes_api::{Event, PropValue, VmEntry};

pub use crate::columns::{Column, Show};

/// A running qube's figures from `admin.vm.Stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU use in percent of its virtual CPUs.
    pub cpu: u32,
    /// Memory in KiB.
    pub mem_kib: u64,
    /// Virtual CPUs online (what the percentage is of).
    pub vcpus: u32,
}

/// One qube's row contents as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QubeInfo {
    /// Name (the row's identity).
    pub name: String,
    /// Class name.
    pub class: String,
    /// Power state.
    pub state: String,
    /// Properties as last read.
    pub props: BTreeMap<String, PropValue>,
    /// Last `vm-stats` figures while running.
    pub stats: Option<Stats>,
    /// Values of the [`WATCHED_FEATURES`] the qube has.
    pub features: BTreeMap<String, String>,
    /// Bytes its volumes use, once read.
    pub disk: Option<u64>,
    /// Whether a volume is outdated (running on an old snapshot of its template).
    pub outdated: bool,
    /// Tags, sorted.
    pub tags: Vec<String>,
}

/// Features the table reads: `internal` hides a qube, `servicevm` keeps it out of "my qubes",
/// `prohibit-start` blocks it, `updates-available` / `skip-update` mark the state.
pub const WATCHED_FEATURES: [&str; 5] = [
    "internal",
    "servicevm",
    "prohibit-start",
    "updates-available",
    "skip-update",
];

/// A size in bytes for people: `512 KiB`, `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if v < 10.0 {
        format!("{v:.2} {}", UNITS[unit])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// Bytes back from [`human_size`] text (for sorting; 0 when not a size).
pub fn parse_size(text: &str) -> f64 {
    let mut it = text.split(' ');
    let n: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let mult = match it.next() {
        Some("KiB") => 1024.0,
        Some("MiB") => 1024.0 * 1024.0,
        Some("GiB") => 1024.0 * 1024.0 * 1024.0,
        Some("TiB") => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    n * mult
}

/// [`QubeInfo::kinds`] bit of an internal qube (hidden unless internal qubes are shown).
pub const INTERNAL: u8 = 1 << 7;

/// Whether a row of these [`QubeInfo::kinds`] is listed.
pub fn listed(show: Show, show_internal: bool, kinds: u8) -> bool {
    (show_internal || kinds & INTERNAL == 0) && show.lists(kinds)
}

impl QubeInfo {
    /// Adds or removes a tag, keeping the list sorted and without repeats.
    pub fn set_tag(&mut self, tag: &str, present: bool) {
        match (self.tags.binary_search_by(|t| t.as_str().cmp(tag)), present) {
            (Err(at), true) => self.tags.insert(at, tag.to_string()),
            (Ok(at), false) => {
                self.tags.remove(at);
            }
            _ => {}
        }
    }

    /// A row from an `admin.vm.List` entry and the qube's properties.
    pub fn new(entry: &VmEntry, props: Vec<(String, PropValue)>) -> QubeInfo {
        QubeInfo {
            name: entry.name.clone(),
            class: entry.class.clone(),
            state: entry.state.clone(),
            // Only what a column or the Show selector uses: the rest of GetAll (some 60
            // properties a qube) would cost megabytes over a thousand qubes.
            props: props.into_iter().filter(|(k, _)| shown(k)).collect(),
            stats: None,
            features: BTreeMap::new(),
            disk: None,
            outdated: false,
            tags: Vec::new(),
        }
    }

    /// The [`Show`] choices that list this qube, as a bit set of [`Show::bit`].
    pub fn kinds(&self) -> u8 {
        // Qubes reads a feature as true when it is set and not empty.
        let feature = |f: &str| self.features.get(f).is_some_and(|v| !v.is_empty());
        let class = self.class.as_str();
        let mut kinds = 0;
        let mut add = |show: Show, yes: bool| {
            if yes {
                kinds |= show.bit();
            }
        };
        add(
            Show::Running,
            !matches!(self.state.as_str(), "Halted" | "NA"),
        );
        add(Show::Halted, self.state == "Halted");
        add(Show::Templates, class == "TemplateVM");
        add(Show::Network, self.flag("provides_network"));
        add(Show::Standalone, class == "StandaloneVM");
        add(
            Show::User,
            matches!(class, "AppVM" | "StandaloneVM" | "DispVM")
                && !self.flag("template_for_dispvms")
                && !self.flag("provides_network")
                && !feature("servicevm"),
        );
        if feature("internal") {
            kinds |= INTERNAL;
        }
        kinds
    }

    /// The kind of qube (its icon).
    pub fn kind(&self) -> crate::qube_icons::QubeKind {
        crate::qube_icons::QubeKind::of(&self.class, self.flag("template_for_dispvms"))
    }

    /// Whether a boolean property is `True`.
    pub fn flag(&self, prop: &str) -> bool {
        self.prop(prop).is_some_and(|v| v.value == "True")
    }

    fn prop(&self, name: &str) -> Option<&PropValue> {
        self.props.get(name)
    }

    /// Markers the state column adds to the power state.
    pub fn markers(&self) -> Vec<Marker> {
        let feature = |f: &str| self.features.get(f).is_some_and(|v| !v.is_empty());
        let mut out = Vec::new();
        if self.state == "Halted" && feature("prohibit-start") && self.class != "AdminVM" {
            out.push(Marker::Blocked);
        }
        if self.outdated && self.state != "Halted" {
            out.push(Marker::RestartNeeded);
        }
        if matches!(self.class.as_str(), "TemplateVM" | "StandaloneVM") {
            if feature("skip-update") {
                out.push(Marker::UpdatesSkipped);
            } else if feature("updates-available") {
                out.push(Marker::UpdatesAvailable);
            }
        }
        out
    }

    /// The markers as the state column's words.
    pub fn state_markers(&self) -> Vec<String> {
        self.markers().into_iter().map(Marker::word).collect()
    }

    fn yes_no(&self, prop: &str) -> String {
        match self.prop(prop).map(|p| p.value.as_str()) {
            Some("True") => crate::i18n::tr("yes"),
            Some("False") => crate::i18n::tr("no"),
            _ => String::new(),
        }
    }

    /// A qube-valued property as the table shows it: `none`, `default (x)` or the name.
    fn vm_ref(&self, prop: &str) -> String {
        match self.prop(prop) {
            None => String::new(),
            Some(p) if p.value.is_empty() => crate::i18n::tr("none"),
            // The reference manager shows "default (sys-firewall)" for a default netvm.
            Some(p) if p.is_default => crate::i18n::tr_default(&p.value),
            Some(p) => p.value.clone(),
        }
    }

    /// The text of a cell.
    pub fn cell(&self, col: Column) -> String {
        match col {
            Column::Name => self.name.clone(),
            Column::State => {
                let mut parts = vec![self.state.clone()];
                parts.extend(self.state_markers());
                parts.join(" \u{b7} ")
            }
            Column::Class => self.class.clone(),
            Column::Label => self
                .prop("label")
                .map(|p| p.value.clone())
                .unwrap_or_default(),
            Column::Template => self
                .prop("template")
                .map(|p| p.value.clone())
                .unwrap_or_default(),
            Column::NetVm => self.vm_ref("netvm"),
            Column::DefaultDispvm => self.vm_ref("default_dispvm"),
            Column::Memory => self
                .prop("memory")
                .map(|p| format!("{} MiB", p.value))
                .unwrap_or_default(),
            Column::Cpu => self
                .stats
                .map(|s| format!("{} %", s.cpu))
                .unwrap_or_default(),
            Column::MemUsed => self
                .stats
                .map(|s| format!("{} MiB", s.mem_kib / 1024))
                .unwrap_or_default(),
            Column::Backups => self.yes_no("include_in_backups"),
            Column::IsDispvmTemplate => self.yes_no("template_for_dispvms"),
            Column::Internal => {
                if self.features.get("internal").is_some_and(|v| !v.is_empty()) {
                    crate::i18n::tr("yes")
                } else {
                    crate::i18n::tr("no")
                }
            }
            Column::DiskUsage => match (self.class.as_str(), self.disk) {
                ("AdminVM", _) => crate::i18n::tr("n/a"),
                (_, Some(b)) => human_size(b),
                (_, None) => String::new(),
            },
            Column::Ip => self
                .prop("visible_ip")
                .map(|p| p.value.clone())
                .unwrap_or_default(),
            Column::Tags => self.tags.join(", "),
            Column::VirtMode => self
                .prop("virt_mode")
                .map(|p| p.value.clone())
                .unwrap_or_default(),
            Column::LastBackup => self
                .prop("backup_timestamp")
                .and_then(|p| p.value.parse::<i64>().ok())
                .and_then(|t| relm4::gtk::glib::DateTime::from_unix_local(t).ok())
                .and_then(|d| d.format("%Y-%m-%d %H:%M").ok())
                .map(|s| s.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Something the state column says besides the power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Marker {
    /// Halted, and starting it is prohibited (feature `prohibit-start`).
    Blocked,
    /// Running on an old snapshot of its template: restart to get the template's changes.
    RestartNeeded,
    /// A template or standalone qube with updates available.
    UpdatesAvailable,
    /// Updates are skipped for it (feature `skip-update`).
    UpdatesSkipped,
}

impl Marker {
    /// The marker as the state column's word.
    pub fn word(self) -> String {
        match self {
            Marker::Blocked => crate::i18n::tr("blocked"),
            Marker::RestartNeeded => crate::i18n::tr("restart needed"),
            Marker::UpdatesAvailable => crate::i18n::tr("updates available"),
            Marker::UpdatesSkipped => crate::i18n::tr("updates skipped"),
        }
    }

    /// What the marker means, for its tooltip.
    pub fn explanation(self) -> String {
        match self {
            Marker::Blocked => crate::i18n::tr(
                "Blocked: starting this qube is not allowed (Settings ▸ Advanced says why).",
            ),
            Marker::RestartNeeded => {
                crate::i18n::tr("Restart needed: its template changed since it started.")
            }
            Marker::UpdatesAvailable => crate::i18n::tr("Updates are available."),
            Marker::UpdatesSkipped => crate::i18n::tr("Updates are skipped for this qube."),
        }
    }
}

/// What the table and the tray say about a power state: the word's explanation for a tooltip.
pub fn state_explanation(state: &str) -> String {
    match state {
        "Running" => crate::i18n::tr("Running"),
        "Paused" => crate::i18n::tr("Paused: it keeps its memory but does not run."),
        "Suspended" => crate::i18n::tr("Suspended"),
        "Transient" => crate::i18n::tr("Starting"),
        "Halting" => crate::i18n::tr("Shutting down"),
        "Dying" => crate::i18n::tr("Being stopped"),
        "Halted" => crate::i18n::tr("Halted"),
        "Crashed" => crate::i18n::tr("Crashed"),
        _ => crate::i18n::tr("State unknown: qubesd cannot tell (see its log)."),
    }
}

/// What the store must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing visible changed.
    None,
    /// Read one of the [`WATCHED_FEATURES`] again.
    RefetchFeature {
        /// Qube.
        vm: String,
        /// Feature.
        feature: String,
    },
    /// Read this qube's property again (it changed, or its default did).
    RefetchProperty {
        /// Qube.
        vm: String,
        /// Property.
        prop: String,
    },
    /// The power state changed.
    State {
        /// Qube.
        vm: String,
        /// New state.
        state: String,
    },
    /// Read a qube's power state again (`admin.vm.CurrentState`): an event said something
    /// went wrong, or a transient state lasted too long.
    RefetchState(String),
    /// A qube appeared: read it.
    Added(String),
    /// A qube went away.
    Removed(String),
    /// A tag was added to a qube or taken from it.
    Tag {
        /// Qube.
        vm: String,
        /// Tag.
        tag: String,
        /// Added (else removed).
        added: bool,
    },
    /// The stream (re)started: reload everything.
    Reload,
    /// A qube's volumes changed (import, clone): read their usage again.
    Volumes(String),
    /// New statistics for a running qube.
    Stats {
        /// Qube.
        vm: String,
        /// Its figures.
        stats: Stats,
    },
}

/// Properties any column shows or the [`Show`] selector uses.
pub fn shown(prop: &str) -> bool {
    matches!(
        prop,
        "provides_network"
            | "template_for_dispvms"
            | "auto_cleanup"
            | "is_preload"
            | "shutdown_timeout"
    ) || Column::ALL.iter().any(|c| c.property() == Some(prop))
}

/// Maps an event to the change it makes to the table.
pub fn change_for(ev: &Event) -> Change {
    let name = ev.name.as_str();
    if name == "connection-established" {
        return Change::Reload;
    }
    if name == "vm-stats" {
        let num = |k: &str| ev.get(k).and_then(|v| v.parse::<u64>().ok());
        return match (num("cpu_usage"), num("memory_kb")) {
            (Some(cpu), Some(mem)) => Change::Stats {
                vm: ev.subject.clone(),
                stats: Stats {
                    cpu: cpu.min(100) as u32,
                    mem_kib: mem,
                    vcpus: num("online_vcpus").unwrap_or(1).clamp(1, 4096) as u32,
                },
            },
            _ => Change::None,
        };
    }
    if ev.subject.is_empty() {
        return match name {
            "domain-add" => ev.get("vm").map(|v| Change::Added(v.into())),
            "domain-delete" => ev.get("vm").map(|v| Change::Removed(v.into())),
            _ => None,
        }
        .unwrap_or(Change::None);
    }
    for prefix in ["property-set:", "property-reset:"] {
        if let Some(prop) = name.strip_prefix(prefix)
            && shown(prop)
        {
            return Change::RefetchProperty {
                vm: ev.subject.clone(),
                prop: prop.to_string(),
            };
        }
    }
    for (prefix, added) in [("domain-tag-add:", true), ("domain-tag-delete:", false)] {
        if let Some(tag) = name.strip_prefix(prefix) {
            return Change::Tag {
                vm: ev.subject.clone(),
                tag: tag.to_string(),
                added,
            };
        }
    }
    if matches!(
        name,
        "domain-volume-import-end" | "domain-import-volume" | "domain-create-on-disk"
    ) {
        return Change::Volumes(ev.subject.clone());
    }
    for prefix in ["domain-feature-set:", "domain-feature-delete:"] {
        if let Some(feature) = name.strip_prefix(prefix)
            && WATCHED_FEATURES.contains(&feature)
        {
            return Change::RefetchFeature {
                vm: ev.subject.clone(),
                feature: feature.to_string(),
            };
        }
    }
    let state = match name {
        "domain-pre-start" => "Transient",
        // A failed shutdown leaves the qube running, or paused, or halted after all: ask.
        "domain-shutdown-failed" => return Change::RefetchState(ev.subject.clone()),
        "domain-start" | "domain-unpaused" | "domain-resumed" => "Running",
        "domain-paused" => "Paused",
        "domain-pre-shutdown" => "Halting",
        "domain-shutdown" | "domain-start-failed" => "Halted",
        _ => return Change::None,
    };
    Change::State {
        vm: ev.subject.clone(),
        state: state.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_changes() {
        let e = Event::new("work", "property-set:netvm").kw("name", "netvm");
        assert_eq!(
            change_for(&e),
            Change::RefetchProperty {
                vm: "work".into(),
                prop: "netvm".into()
            }
        );
        assert_eq!(
            change_for(&Event::new("work", "property-set:debug")),
            Change::None
        );
        assert_eq!(
            change_for(&Event::new("", "domain-add").kw("vm", "new")),
            Change::Added("new".into())
        );
        assert_eq!(
            change_for(&Event::new("work", "domain-start")),
            Change::State {
                vm: "work".into(),
                state: "Running".into()
            }
        );
        assert_eq!(
            change_for(&Event::new("", "connection-established")),
            Change::Reload
        );
        // After a failed shutdown the qube may run, be paused or have halted after all.
        assert_eq!(
            change_for(&Event::new("sys-firewall", "domain-shutdown-failed").kw("reason", "x")),
            Change::RefetchState("sys-firewall".into())
        );
        assert_eq!(
            change_for(&Event::new("work", "domain-tag-add:audit").kw("tag", "audit")),
            Change::Tag {
                vm: "work".into(),
                tag: "audit".into(),
                added: true
            }
        );
        assert_eq!(
            change_for(&Event::new("work", "domain-tag-delete:audit").kw("tag", "audit")),
            Change::Tag {
                vm: "work".into(),
                tag: "audit".into(),
                added: false
            }
        );
    }

    #[test]
    fn columns_are_declared_in_display_order() {
        for (i, c) in Column::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn stats_events() {
        let e = Event::new("work", "vm-stats")
            .kw("memory_kb", "409600")
            .kw("cpu_usage", "7")
            .kw("online_vcpus", "2");
        let stats = Stats {
            cpu: 7,
            mem_kib: 409600,
            vcpus: 2,
        };
        assert_eq!(
            change_for(&e),
            Change::Stats {
                vm: "work".into(),
                stats
            }
        );
        let q = QubeInfo {
            stats: Some(stats),
            ..Default::default()
        };
        assert_eq!(q.cell(Column::Cpu), "7 %");
        assert_eq!(q.cell(Column::MemUsed), "400 MiB");
    }

    fn value(v: &str) -> PropValue {
        PropValue {
            is_default: false,
            ty: "bool".into(),
            value: v.into(),
        }
    }

    #[test]
    fn show_choices_select_the_right_qubes() {
        let qube = |class: &str, state: &str, props: &[(&str, &str)]| QubeInfo {
            class: class.into(),
            state: state.into(),
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), value(v)))
                .collect(),
            ..Default::default()
        };
        let shows = |q: &QubeInfo| {
            Show::ALL
                .into_iter()
                .filter(|s| s.lists(q.kinds()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shows(&qube("AppVM", "Running", &[])),
            [Show::All, Show::Running, Show::User]
        );
        assert_eq!(
            shows(&qube(
                "AppVM",
                "Halted",
                &[("template_for_dispvms", "True")]
            )),
            [Show::All, Show::Halted]
        );
        assert_eq!(
            shows(&qube("AppVM", "Paused", &[("provides_network", "True")])),
            [Show::All, Show::Running, Show::Network]
        );
        assert_eq!(
            shows(&qube("TemplateVM", "Halted", &[])),
            [Show::All, Show::Halted, Show::Templates]
        );
        assert_eq!(
            shows(&qube(
                "StandaloneVM",
                "Halted",
                &[("provides_network", "False")]
            )),
            [Show::All, Show::Halted, Show::Standalone, Show::User]
        );
        assert_eq!(
            shows(&qube("AdminVM", "Running", &[])),
            [Show::All, Show::Running]
        );
        assert_eq!(
            change_for(&Event::new("work", "property-set:provides_network")),
            Change::RefetchProperty {
                vm: "work".into(),
                prop: "provides_network".into()
            }
        );
    }

    #[test]
    fn netvm_cell_shows_default() {
        let mut q = QubeInfo::default();
        q.props.insert(
            "netvm".into(),
            PropValue {
                is_default: true,
                ty: "vm".into(),
                value: "sys-firewall".into(),
            },
        );
        assert_eq!(q.cell(Column::NetVm), "default (sys-firewall)");
    }
}
