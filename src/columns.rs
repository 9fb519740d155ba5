//! The qube table's columns and the "Show" choices, as data: their order, identifiers and the
//! properties they show.

/// Columns of the qube table, in display order (declaration order = [`Column::ALL`] order:
/// cells are indexed by discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// Colour label.
    Label,
    /// Qube name.
    Name,
    /// Power state, with blocked / restart needed / updates markers.
    State,
    /// Class.
    Class,
    /// Template.
    Template,
    /// Network qube.
    NetVm,
    /// Disk space used by the qube's volumes.
    DiskUsage,
    /// CPU use, from `admin.vm.Stats`.
    Cpu,
    /// Memory in use, from `admin.vm.Stats`.
    MemUsed,
    /// Initial memory.
    Memory,
    /// Feature `internal`.
    Internal,
    /// IP address seen by other qubes.
    Ip,
    /// Included in backups.
    Backups,
    /// Time of the last backup.
    LastBackup,
    /// Disposable template used by default.
    DefaultDispvm,
    /// Whether the qube is a disposable template.
    IsDispvmTemplate,
    /// Virtualisation mode.
    VirtMode,
    /// Tags (QubesOS/qubes-issues#9914).
    Tags,
}

impl Column {
    /// All columns, in display order.
    pub const ALL: [Column; 18] = [
        Column::Label,
        Column::Name,
        Column::State,
        Column::Class,
        Column::Template,
        Column::NetVm,
        Column::DiskUsage,
        Column::Cpu,
        Column::MemUsed,
        Column::Memory,
        Column::Internal,
        Column::Ip,
        Column::Backups,
        Column::LastBackup,
        Column::DefaultDispvm,
        Column::IsDispvmTemplate,
        Column::VirtMode,
        Column::Tags,
    ];

    /// Columns hidden until the user shows them.
    pub const HIDDEN_BY_DEFAULT: [Column; 7] = [
        Column::Internal,
        Column::Ip,
        Column::LastBackup,
        Column::DefaultDispvm,
        Column::IsDispvmTemplate,
        Column::VirtMode,
        Column::Tags,
    ];

    /// Stable identifier (view state, widget names).
    pub fn id(self) -> &'static str {
        match self {
            Column::Label => "label",
            Column::Name => "name",
            Column::State => "state",
            Column::Class => "class",
            Column::Template => "template",
            Column::NetVm => "netvm",
            Column::DiskUsage => "disk",
            Column::Cpu => "cpu",
            Column::MemUsed => "memused",
            Column::Memory => "memory",
            Column::Internal => "internal",
            Column::Ip => "ip",
            Column::Backups => "backups",
            Column::LastBackup => "last-backup",
            Column::DefaultDispvm => "default-dispvm",
            Column::IsDispvmTemplate => "dispvm-template",
            Column::VirtMode => "virt-mode",
            Column::Tags => "tags",
        }
    }

    /// The column with this [`Column::id`].
    pub fn from_id(id: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.id() == id)
    }

    /// The property whose change refreshes this column, if any.
    pub fn property(self) -> Option<&'static str> {
        match self {
            Column::Label => Some("label"),
            Column::Template => Some("template"),
            Column::NetVm => Some("netvm"),
            Column::Memory => Some("memory"),
            Column::Backups => Some("include_in_backups"),
            Column::Ip => Some("visible_ip"),
            Column::LastBackup => Some("backup_timestamp"),
            Column::DefaultDispvm => Some("default_dispvm"),
            Column::IsDispvmTemplate => Some("template_for_dispvms"),
            Column::VirtMode => Some("virt_mode"),
            _ => None,
        }
    }
}

/// The "Show" selector: which qubes the table lists. One choice at a time, unlike the
/// reference's OR-ed check boxes where "only my AppVMs" could not be expressed
/// (QubesOS/qubes-issues#9671).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Every qube.
    All,
    /// Qubes that are not halted.
    Running,
    /// Halted qubes.
    Halted,
    /// Template qubes.
    Templates,
    /// Qubes providing network.
    Network,
    /// Standalone qubes.
    Standalone,
    /// The user's own qubes: app, standalone and disposable qubes that are neither a disposable
    /// template nor a service qube (one providing network).
    User,
}

impl Show {
    /// All choices, in the selector's order.
    pub const ALL: [Show; 7] = [
        Show::All,
        Show::Running,
        Show::Halted,
        Show::Templates,
        Show::Network,
        Show::Standalone,
        Show::User,
    ];

    /// This choice's bit in [`crate::model::QubeInfo::kinds`] (none for `All`).
    pub fn bit(self) -> u8 {
        match self {
            Show::All => 0,
            other => 1 << (other as u8 - 1),
        }
    }

    /// Whether this choice lists a qube of these [`crate::model::QubeInfo::kinds`].
    pub fn lists(self, kinds: u8) -> bool {
        self == Show::All || kinds & self.bit() != 0
    }
}
