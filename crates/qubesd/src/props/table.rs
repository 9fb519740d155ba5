//! The property tables: every per-qube and global property with its type, load stage,
//! classes, access and help text (admin-api.md §3.4, §3.5).

use super::{PType, Parse, PropDef, cls};

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
pub(super) static VM_PROPS: &[PropDef] = &[
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
pub(super) static GLOBAL_PROPS: &[PropDef] = &[
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
    none_ok(p(
        "default_template",
        Vm,
        3,
        GLOBAL,
        "Default template for new qubes.",
    )),
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
