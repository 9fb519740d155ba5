//! What the settings dialogs edit: each field's page, property, kind of control and title.

use crate::i18n::tr;

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
