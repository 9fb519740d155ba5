//! What the settings windows edit: each property and the kind of row that edits it. The rows
//! themselves (titles, pages, groups) are in `ui/qube-settings.ui` and `ui/global-settings.ui`,
//! named after the property; a number row's control is named `<property>-value`, as is a
//! switch's.

/// The kind of row editing one property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A choice from a list (labels, qubes, modes): a combo row.
    Choice,
    /// True / False: an action row with a switch.
    Flag,
    /// A number: an action row with a spin button.
    Number,
    /// Free text: an entry row.
    Text,
}

/// The properties of a qube's settings (`volume:<name>` are volume sizes in MiB; `balancing`,
/// `shutdown-idle`, `prohibit-start` and `prohibit-start-reason` stand for features and
/// `maxmem`, see `form`).
pub const QUBE: &[(&str, Kind)] = &[
    ("label", Kind::Choice),
    ("template", Kind::Choice),
    ("netvm", Kind::Choice),
    ("default_dispvm", Kind::Choice),
    ("include_in_backups", Kind::Flag),
    ("autostart", Kind::Flag),
    ("volume:private", Kind::Number),
    ("volume:root", Kind::Number),
    ("memory", Kind::Number),
    ("balancing", Kind::Flag),
    ("maxmem", Kind::Number),
    ("vcpus", Kind::Number),
    ("qrexec_timeout", Kind::Number),
    ("shutdown_timeout", Kind::Number),
    ("kernel", Kind::Choice),
    ("kernelopts", Kind::Text),
    ("virt_mode", Kind::Choice),
    ("provides_network", Kind::Flag),
    ("template_for_dispvms", Kind::Flag),
    ("management_dispvm", Kind::Choice),
    ("guivm", Kind::Choice),
    ("audiovm", Kind::Choice),
    ("bootmode", Kind::Choice),
    ("appvm_default_bootmode", Kind::Choice),
    ("debug", Kind::Flag),
    ("shutdown-idle", Kind::Flag),
    ("prohibit-start", Kind::Flag),
    ("prohibit-start-reason", Kind::Text),
];

/// Rows that stand for something else than a property of the same name.
pub const PSEUDO: [&str; 4] = [
    "balancing",
    "shutdown-idle",
    "prohibit-start",
    "prohibit-start-reason",
];

/// The feature where the maximum memory is kept while a qube is out of memory balancing (as
/// the reference manager does).
pub const KEPT_MAXMEM: &str = crate::features_editor::EDITED_ELSEWHERE[2];

/// The system's properties in the global settings.
pub const GLOBAL: &[(&str, Kind)] = &[
    ("default_template", Kind::Choice),
    ("default_netvm", Kind::Choice),
    ("default_dispvm", Kind::Choice),
    ("management_dispvm", Kind::Choice),
    ("default_kernel", Kind::Choice),
    ("default_pool", Kind::Choice),
    ("clockvm", Kind::Choice),
    ("updatevm", Kind::Choice),
    ("default_guivm", Kind::Choice),
    ("default_audiovm", Kind::Choice),
    ("check_updates_vm", Kind::Flag),
    ("stats_interval", Kind::Number),
    ("default_shutdown_timeout", Kind::Number),
    ("default_qrexec_timeout", Kind::Number),
];
