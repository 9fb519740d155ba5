//! The tray's menu as data: built from [`Domains`] on every change, then handed to the
//! StatusNotifierItem service ([`super::sni`]), which sends hosts only what differs.
//!
//! Layout (after the reference domains widget, with its users' requests): a summary line with
//! totals, dom0, every running qube with its memory and CPU and a submenu of what can be done
//! in its state, "Start a qube" with the halted ones (QubesOS/qubes-issues#6007), and "Open
//! Qube Manager".

use crate::i18n::{tr, tr_count};
use crate::model::QubeInfo;

use super::state::Domains;

/// Something the user asked for from the menu or a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `admin.vm.Start`.
    Start(String),
    /// `admin.vm.Pause`.
    Pause(String),
    /// `admin.vm.Unpause`.
    Unpause(String),
    /// `admin.vm.Shutdown`.
    Shutdown(String),
    /// `admin.vm.Shutdown force` (the qube still serves others).
    ForceShutdown(String),
    /// Forced shutdown, wait until halted, start.
    Restart(String),
    /// `admin.vm.Kill`.
    Kill(String),
    /// Unpause every paused qube.
    UnpauseAll,
    /// The qube's settings in the Qube Manager.
    Settings(String),
    /// A terminal in the qube (`qubes.StartApp+qubes-run-terminal`).
    Terminal(String),
    /// A file manager in the qube (`qubes.StartApp+qubes-open-file-manager`).
    FileManager(String),
    /// The Qube Manager.
    OpenManager,
    /// The updater for this qube (`qubes-update-gui --targets QUBE`).
    Update(String),
    /// The updater for every qube with updates available.
    UpdateAll,
}

impl Command {
    /// The key of a notification action for this command.
    pub fn key(&self) -> String {
        let verb = match self {
            Command::Start(_) => "start",
            Command::Pause(_) => "pause",
            Command::Unpause(_) => "unpause",
            Command::Shutdown(_) => "shutdown",
            Command::ForceShutdown(_) => "force-shutdown",
            Command::Restart(_) => "restart",
            Command::Kill(_) => "kill",
            Command::Settings(_) => "settings",
            Command::Terminal(_) => "terminal",
            Command::FileManager(_) => "files",
            Command::UnpauseAll => "unpause-all",
            Command::OpenManager => "manager",
            Command::Update(_) => "update",
            Command::UpdateAll => "update-all",
        };
        match self.qube() {
            Some(vm) => format!("{verb}:{vm}"),
            None => verb.to_string(),
        }
    }

    /// The command of a notification action key (which comes from another program: only the
    /// forms [`Command::key`] makes are accepted).
    pub fn from_key(untrusted: &str) -> Option<Command> {
        match untrusted {
            "unpause-all" => return Some(Command::UnpauseAll),
            "manager" => return Some(Command::OpenManager),
            "update-all" => return Some(Command::UpdateAll),
            _ => {}
        }
        let (verb, vm) = untrusted.split_once(':')?;
        let valid = !vm.is_empty()
            && vm.len() <= 31
            && vm
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return None;
        }
        let vm = vm.to_string();
        Some(match verb {
            "start" => Command::Start(vm),
            "pause" => Command::Pause(vm),
            "unpause" => Command::Unpause(vm),
            "shutdown" => Command::Shutdown(vm),
            "force-shutdown" => Command::ForceShutdown(vm),
            "restart" => Command::Restart(vm),
            "kill" => Command::Kill(vm),
            "settings" => Command::Settings(vm),
            "terminal" => Command::Terminal(vm),
            "files" => Command::FileManager(vm),
            "update" => Command::Update(vm),
            _ => return None,
        })
    }

    /// The qube it acts on.
    pub fn qube(&self) -> Option<&str> {
        match self {
            Command::Start(vm)
            | Command::Pause(vm)
            | Command::Unpause(vm)
            | Command::Shutdown(vm)
            | Command::ForceShutdown(vm)
            | Command::Restart(vm)
            | Command::Kill(vm)
            | Command::Settings(vm)
            | Command::Terminal(vm)
            | Command::FileManager(vm)
            | Command::Update(vm) => Some(vm),
            Command::UnpauseAll | Command::OpenManager | Command::UpdateAll => None,
        }
    }

    /// The heading of a notification when the command fails.
    pub fn failure(&self) -> String {
        let text = match self {
            Command::Start(_) => tr("Starting %s failed"),
            Command::Pause(_) => tr("Pausing %s failed"),
            Command::Unpause(_) => tr("Unpausing %s failed"),
            Command::Shutdown(_) | Command::ForceShutdown(_) => tr("Shutting down %s failed"),
            Command::Restart(_) => tr("Restarting %s failed"),
            Command::Kill(_) => tr("Killing %s failed"),
            Command::Settings(_) | Command::Terminal(_) | Command::FileManager(_) => {
                tr("Opening a program for %s failed")
            }
            Command::UnpauseAll => tr("Unpausing the qubes failed"),
            Command::OpenManager => tr("Opening the Qube Manager failed"),
            Command::Update(_) | Command::UpdateAll => tr("Starting the updater failed"),
        };
        text.replacen("%s", self.qube().unwrap_or_default(), 1)
    }
}

/// What this system lets the tray do besides Admin API calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Abilities {
    /// Programs can be started in qubes (a qrexec client is at hand on a real system).
    pub run_in_qubes: bool,
    /// The Qube Manager can be opened.
    pub manager: bool,
    /// The updater can be started.
    pub updater: bool,
}

/// A qube's icon in a menu row: its kind, in its label's colour.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QubeIcon {
    /// The kind of qube.
    pub kind: crate::qube_icons::QubeKind,
    /// The label's colour (`0xRRGGBB`, from the daemon).
    pub colour: String,
}

/// One menu row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A line between groups.
    Separator,
    /// A row; with children it opens a submenu.
    Item {
        /// Text (shown as it is: the SNI layer escapes mnemonics).
        label: String,
        /// Whether it can be activated.
        enabled: bool,
        /// The qube's icon: its kind in its label's colour (`0xRRGGBB`).
        icon: Option<QubeIcon>,
        /// What activating it does.
        command: Option<Command>,
        /// Submenu rows.
        children: Vec<Entry>,
    },
}

impl Entry {
    fn action(label: String, command: Command) -> Entry {
        Entry::Item {
            label,
            enabled: true,
            icon: None,
            command: Some(command),
            children: Vec::new(),
        }
    }

    fn note(label: String) -> Entry {
        Entry::Item {
            label,
            enabled: false,
            icon: None,
            command: None,
            children: Vec::new(),
        }
    }

    /// The row's label (empty for a separator).
    pub fn label(&self) -> &str {
        match self {
            Entry::Separator => "",
            Entry::Item { label, .. } => label,
        }
    }

    /// The submenu rows.
    pub fn children(&self) -> &[Entry] {
        match self {
            Entry::Separator => &[],
            Entry::Item { children, .. } => children,
        }
    }
}

/// Memory in MiB as the rows show it.
fn mib(kib: u64) -> String {
    format!("{} MiB", kib / 1024)
}

/// "work — 400 MiB · 3 %", with the state when it is not plainly running.
pub fn row_label(q: &QubeInfo) -> String {
    let mut parts = Vec::new();
    match q.state.as_str() {
        "Running" => {}
        "Paused" | "Suspended" => parts.push(tr("paused")),
        "Transient" => parts.push(tr("starting")),
        "Halting" => parts.push(tr("shutting down")),
        other => parts.push(other.to_string()),
    }
    if let Some(s) = q.stats {
        parts.push(mib(s.mem_kib));
        parts.push(format!("{} %", s.cpu));
    }
    if parts.is_empty() {
        q.name.clone()
    } else {
        format!("{} \u{2014} {}", q.name, parts.join(" \u{b7} "))
    }
}

/// The summary line: running qubes and their memory and CPU together.
pub fn summary(domains: &Domains) -> String {
    let (n, kib, cpu) = domains.totals();
    // Translators: the tray's first line; {count} is "N qubes", then memory and CPU use.
    tr("{count} running · {memory} · CPU {cpu} %")
        .replacen("{count}", &tr_count(n), 1)
        .replacen("{memory}", &mib(kib), 1)
        .replacen("{cpu}", &cpu.to_string(), 1)
}

/// What a qube's submenu offers in its state.
fn qube_menu(q: &QubeInfo, internal: bool, can: Abilities) -> Vec<Entry> {
    let vm = || q.name.clone();
    if internal {
        let last = if q.state == "Running" {
            Entry::action(tr("Shut down"), Command::Shutdown(vm()))
        } else {
            Entry::action(tr("Kill"), Command::Kill(vm()))
        };
        return vec![Entry::note(tr("Internal qube")), last];
    }
    // What the reference widget's row tooltip said (dbusmenu rows have no tooltips).
    let mut about = Vec::new();
    if let Some(t) = q.props.get("template").filter(|t| !t.value.is_empty()) {
        about.push(Entry::note(tr("Template: %s").replacen("%s", &t.value, 1)));
    }
    if let Some(n) = q.props.get("netvm") {
        let net = if n.value.is_empty() {
            tr("none")
        } else {
            n.value.clone()
        };
        about.push(Entry::note(tr("Net qube: %s").replacen("%s", &net, 1)));
    }
    if q.outdated {
        about.push(Entry::note(tr("Restart to apply changes of the template")));
    }
    let updates = q
        .features
        .get("updates-available")
        .is_some_and(|v| !v.is_empty());
    if updates && matches!(q.class.as_str(), "TemplateVM" | "StandaloneVM") {
        about.push(Entry::note(tr("Updates are available")));
    }
    let mut open = Vec::new();
    if q.state == "Running" && can.run_in_qubes {
        open.push(Entry::action(
            tr("Open file manager"),
            Command::FileManager(vm()),
        ));
        open.push(Entry::action(tr("Run terminal"), Command::Terminal(vm())));
    }
    if can.manager {
        open.push(Entry::action(tr("Settings"), Command::Settings(vm())));
    }
    let power = match q.state.as_str() {
        "Running" => {
            let mut power = vec![
                Entry::action(tr("Emergency pause"), Command::Pause(vm())),
                Entry::action(tr("Shut down"), Command::Shutdown(vm())),
            ];
            if !(q.class == "DispVM" && q.flag("auto_cleanup")) {
                power.push(Entry::action(tr("Restart"), Command::Restart(vm())));
            }
            power.push(Entry::action(tr("Kill"), Command::Kill(vm())));
            power
        }
        "Paused" | "Suspended" => vec![
            Entry::action(tr("Unpause"), Command::Unpause(vm())),
            Entry::action(tr("Kill"), Command::Kill(vm())),
        ],
        _ => vec![Entry::action(tr("Kill"), Command::Kill(vm()))],
    };
    // Groups apart by one separator; none around an empty group.
    let mut out = Vec::new();
    for group in [about, open, power] {
        if group.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(Entry::Separator);
        }
        out.extend(group);
    }
    out
}

/// Qubes whose updates are waiting: templates and standalone qubes with the
/// `updates-available` feature (and not `skip-update`), by name.
pub fn with_updates(domains: &Domains) -> Vec<&QubeInfo> {
    let set = |q: &QubeInfo, f: &str| q.features.get(f).is_some_and(|v| !v.is_empty());
    domains
        .qubes
        .values()
        .filter(|q| matches!(q.class.as_str(), "TemplateVM" | "StandaloneVM"))
        .filter(|q| set(q, "updates-available") && !set(q, "skip-update"))
        .collect()
}

/// A qube's icon in its label's colour (`None` while its label's colour is not known).
fn qube_icon(domains: &Domains, q: &QubeInfo) -> Option<QubeIcon> {
    let colour = q
        .props
        .get("label")
        .and_then(|l| domains.colours.get(&l.value))?;
    Some(QubeIcon {
        kind: q.kind(),
        colour: colour.clone(),
    })
}

/// The disk-space warning and the updates waiting, each a row with its list (none when there
/// is nothing to say).
fn alerts(domains: &Domains, can: Abilities) -> Vec<Entry> {
    let mut out = Vec::new();
    if !domains.disk.is_empty() {
        let rows = domains
            .disk
            .iter()
            .map(|w| match w.qube() {
                // A qube's settings are where its storage grows.
                Some(vm) if can.manager => {
                    Entry::action(w.text(), Command::Settings(vm.to_string()))
                }
                _ => Entry::note(w.text()),
            })
            .collect();
        let urgent = domains.disk.iter().any(|w| w.urgent());
        out.push(Entry::Item {
            label: if urgent {
                tr("Disk space is running out!")
            } else {
                tr("Disk space is getting low")
            },
            enabled: true,
            icon: None,
            command: None,
            children: rows,
        });
    }
    let updates = with_updates(domains);
    if !updates.is_empty() {
        let colour = |q: &QubeInfo| qube_icon(domains, q);
        let mut rows: Vec<Entry> = updates
            .iter()
            .map(|q| Entry::Item {
                label: q.name.clone(),
                enabled: can.updater,
                icon: colour(q),
                command: Some(Command::Update(q.name.clone())),
                children: Vec::new(),
            })
            .collect();
        if can.updater {
            rows.push(Entry::Separator);
            rows.push(Entry::action(tr("Update all of them"), Command::UpdateAll));
        }
        out.push(Entry::Item {
            label: crate::i18n::tr_n(
                "Updates available for %d qube",
                "Updates available for %d qubes",
                updates.len(),
            ),
            enabled: true,
            icon: None,
            command: None,
            children: rows,
        });
    }
    out
}

/// The whole menu.
pub fn build(domains: &Domains, can: Abilities) -> Vec<Entry> {
    let mut out = Vec::new();
    if let Some(why) = &domains.unreachable {
        out.push(Entry::note(format!("{}: {why}", tr("Cannot reach qubesd"))));
        if domains.loaded {
            // What follows is as last seen.
            out.push(Entry::Separator);
        }
    }
    if !domains.loaded {
        out.push(Entry::note(tr("Loading qubes…")));
    } else {
        out.push(Entry::note(summary(domains)));
        out.push(Entry::Separator);
        let alerts = alerts(domains, can);
        if !alerts.is_empty() {
            out.extend(alerts);
            out.push(Entry::Separator);
        }
        let colour = |q: &QubeInfo| qube_icon(domains, q);
        // dom0 (no actions), then the other running qubes.
        let (admin, others): (Vec<&QubeInfo>, Vec<&QubeInfo>) =
            domains.running().partition(|q| q.class == "AdminVM");
        for q in &admin {
            out.push(Entry::Item {
                label: row_label(q),
                enabled: true,
                icon: colour(q),
                command: None,
                children: vec![Entry::note(tr("Administrative domain"))],
            });
        }
        if !admin.is_empty() && !others.is_empty() {
            out.push(Entry::Separator);
        }
        for q in others {
            out.push(Entry::Item {
                label: row_label(q),
                enabled: true,
                icon: colour(q),
                command: None,
                children: qube_menu(q, domains.internal(&q.name), can),
            });
        }
        // Templates are started for maintenance, rarely from here: they go in a submenu at
        // the end, so the qubes people start stay in a short list.
        let (templates, others): (Vec<_>, Vec<_>) = domains
            .qubes
            .values()
            .filter(|q| q.state == "Halted" && !matches!(q.class.as_str(), "AdminVM" | "RemoteVM"))
            .filter(|q| !domains.internal(&q.name))
            .map(|q| {
                let blocked = q
                    .features
                    .get("prohibit-start")
                    .is_some_and(|v| !v.is_empty());
                let entry = Entry::Item {
                    label: if blocked {
                        format!("{} ({})", q.name, tr("blocked"))
                    } else {
                        q.name.clone()
                    },
                    enabled: !blocked,
                    icon: colour(q),
                    command: Some(Command::Start(q.name.clone())),
                    children: Vec::new(),
                };
                (q.class == "TemplateVM", entry)
            })
            .partition(|(template, _)| *template);
        let templates: Vec<Entry> = templates.into_iter().map(|(_, e)| e).collect();
        let mut halted: Vec<Entry> = others.into_iter().map(|(_, e)| e).collect();
        if !templates.is_empty() {
            if !halted.is_empty() {
                halted.push(Entry::Separator);
            }
            halted.push(Entry::Item {
                label: tr("Templates"),
                enabled: true,
                icon: None,
                command: None,
                children: templates,
            });
        }
        if !halted.is_empty() {
            out.push(Entry::Separator);
            out.push(Entry::Item {
                label: tr("Start a qube"),
                enabled: true,
                icon: None,
                command: None,
                children: halted,
            });
        }
    }
    if can.manager {
        out.push(Entry::Separator);
        out.push(Entry::action(tr("Open Qube Manager"), Command::OpenManager));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Change;

    fn qube(name: &str, class: &str, state: &str) -> QubeInfo {
        let mut props = vec![("label", "red"), ("auto_cleanup", "True")];
        if name == "work" {
            props.extend([("template", "debian-12"), ("netvm", "sys-firewall")]);
        }
        super::super::state::test_qube(name, class, state, &props)
    }

    fn domains() -> Domains {
        let mut d = Domains::default();
        d.replace(
            vec![("red".into(), "0xcc0000".into())],
            vec![
                qube("dom0", "AdminVM", "Running"),
                qube("work", "AppVM", "Running"),
                qube("disp1", "DispVM", "Running"),
                qube("vault", "AppVM", "Halted"),
                qube("sys_usb", "AppVM", "Paused"),
                qube("fedora", "TemplateVM", "Halted"),
            ],
        );
        d.apply(Change::Stats {
            vm: "work".into(),
            stats: crate::model::Stats {
                cpu: 4,
                mem_kib: 409_600,
                vcpus: 2,
            },
        });
        d
    }

    fn labels(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(Entry::label).collect()
    }

    #[test]
    fn menu_lists_running_qubes_with_figures_and_halted_ones_to_start() {
        let can = Abilities {
            run_in_qubes: false,
            manager: true,
            updater: false,
        };
        let menu = build(&domains(), can);
        assert_eq!(
            labels(&menu),
            [
                "4 qubes running \u{b7} 400 MiB \u{b7} CPU 4 %",
                "",
                "dom0",
                "",
                "disp1",
                "sys_usb \u{2014} paused",
                "work \u{2014} 400 MiB \u{b7} 4 %",
                "",
                "Start a qube",
                "",
                "Open Qube Manager",
            ]
        );
        let work = &menu[6];
        assert_eq!(
            labels(work.children()),
            [
                "Template: debian-12",
                "Net qube: sys-firewall",
                "",
                "Settings",
                "",
                "Emergency pause",
                "Shut down",
                "Restart",
                "Kill"
            ]
        );
        assert!(
            matches!(work, Entry::Item { icon: Some(i), .. } if i.colour == "0xcc0000"
                && i.kind == crate::qube_icons::QubeKind::App)
        );
        // An auto-cleanup disposable cannot be restarted; a paused qube can be unpaused.
        assert!(!labels(menu[4].children()).contains(&"Restart"));
        assert_eq!(
            labels(menu[5].children()),
            ["Settings", "", "Unpause", "Kill"]
        );
        assert_eq!(labels(menu[8].children()), ["vault", "", "Templates"]);
        assert_eq!(labels(menu[8].children()[2].children()), ["fedora"]);
        assert!(matches!(
            &menu[8].children()[0],
            Entry::Item { command: Some(Command::Start(v)), .. } if v == "vault"
        ));
    }

    #[test]
    fn without_a_manager_or_qrexec_the_menu_says_less() {
        let menu = build(&domains(), Abilities::default());
        assert_eq!(labels(&menu).last(), Some(&"Start a qube"));
        assert_eq!(
            labels(&menu[6].children()[2..]),
            ["", "Emergency pause", "Shut down", "Restart", "Kill"]
        );
        let can = Abilities {
            run_in_qubes: true,
            manager: false,
            updater: false,
        };
        let menu = build(&domains(), can);
        assert_eq!(
            labels(&menu[6].children()[3..5]),
            ["Open file manager", "Run terminal"]
        );
    }

    #[test]
    fn an_unreachable_daemon_is_said_first() {
        let mut d = Domains {
            unreachable: Some("connection refused".into()),
            ..Default::default()
        };
        let menu = build(&d, Abilities::default());
        assert_eq!(
            labels(&menu),
            ["Cannot reach qubesd: connection refused", "Loading qubes…"]
        );
        d.replace(Vec::new(), vec![qube("work", "AppVM", "Running")]);
        assert_eq!(d.unreachable, None, "a load means it is back");
    }

    #[test]
    fn command_keys_round_trip_and_reject_anything_else() {
        for c in [
            Command::Kill("work".into()),
            Command::ForceShutdown("sys-net".into()),
            Command::UnpauseAll,
            Command::Start("a_b.c".into()),
        ] {
            assert_eq!(Command::from_key(&c.key()), Some(c));
        }
        for bad in [
            "kill:",
            "kill:a b",
            "format:work",
            "kill",
            "kill:x;rm",
            &format!("kill:{}", "a".repeat(32)),
        ] {
            assert_eq!(Command::from_key(bad), None, "{bad}");
        }
    }
}
