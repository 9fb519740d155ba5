//! The StatusNotifierItem (with its dbusmenu) that desktop trays show, through `ksni`. It holds
//! the last built menu; ksni serves it from its own thread, so the menu opens at once even while
//! the daemon is slow.

use std::collections::HashMap;
use std::sync::Arc;

use ksni::menu::{StandardItem, SubMenu};
use ksni::{MenuItem, Status, ToolTip};

use super::icon;
use super::menu::{Command, Entry, QubeIcon};
use crate::i18n::tr;

/// Where activated commands go.
pub type Dispatch = Arc<dyn Fn(Command) + Send + Sync>;

/// The tray item's contents.
pub struct QubesTray {
    /// The menu, as last built.
    pub menu: Vec<Entry>,
    /// The tooltip's text.
    pub summary: String,
    /// Every running qube is paused: ask for attention.
    pub attention: bool,
    dispatch: Dispatch,
    /// The PNG of each qube icon drawn so far.
    icons: HashMap<QubeIcon, Vec<u8>>,
    /// The terminal was told that no tray host runs (once, until one appears).
    told_no_host: std::sync::atomic::AtomicBool,
}

impl QubesTray {
    /// An empty item sending activated commands to `dispatch`.
    pub fn new(dispatch: Dispatch) -> QubesTray {
        QubesTray {
            menu: Vec::new(),
            summary: String::new(),
            attention: false,
            dispatch,
            icons: HashMap::new(),
            told_no_host: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sets the menu, drawing the qube icons not seen before.
    pub fn set_menu(&mut self, menu: Vec<Entry>) {
        fn icons<'a>(entries: &'a [Entry], out: &mut Vec<&'a QubeIcon>) {
            for e in entries {
                if let Entry::Item { icon, children, .. } = e {
                    out.extend(icon.as_ref());
                    icons(children, out);
                }
            }
        }
        let mut seen = Vec::new();
        icons(&menu, &mut seen);
        for i in seen {
            if !self.icons.contains_key(i)
                && let Some(rgb) = icon::parse_colour(&i.colour)
            {
                self.icons.insert(i.clone(), icon::qube_png(i.kind, rgb));
            }
        }
        self.menu = menu;
    }

    fn item(&self, entry: &Entry) -> MenuItem<QubesTray> {
        let Entry::Item {
            label,
            enabled,
            icon,
            command,
            children,
        } = entry
        else {
            return MenuItem::Separator;
        };
        // dbusmenu reads "_" as a mnemonic mark; qube names may contain it.
        let label = label.replace('_', "__");
        let icon_data = icon
            .as_ref()
            .and_then(|i| self.icons.get(i))
            .cloned()
            .unwrap_or_default();
        if !children.is_empty() {
            return SubMenu {
                label,
                enabled: *enabled,
                icon_data,
                submenu: children.iter().map(|c| self.item(c)).collect(),
                ..Default::default()
            }
            .into();
        }
        let command = command.clone();
        StandardItem {
            label,
            enabled: *enabled,
            icon_data,
            activate: Box::new(move |tray: &mut QubesTray| {
                if let Some(c) = &command {
                    (tray.dispatch)(c.clone());
                }
            }),
            ..Default::default()
        }
        .into()
    }
}

impl ksni::Tray for QubesTray {
    // A click shows the menu, as the reference widget does.
    const MENU_ON_ACTIVATE: bool = true;

    fn id(&self) -> String {
        "qubes-domains".into()
    }

    fn title(&self) -> String {
        tr("Qubes Domains")
    }

    fn status(&self) -> Status {
        if self.attention {
            Status::NeedsAttention
        } else {
            Status::Active
        }
    }

    fn icon_name(&self) -> String {
        "org.qubes_os.QubeManager".into()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        vec![icon::tray_pixmap(22), icon::tray_pixmap(32)]
    }

    fn tool_tip(&self) -> ToolTip {
        ToolTip {
            title: tr("Qubes Domains"),
            description: self.summary.clone(),
            ..Default::default()
        }
    }

    fn menu(&self) -> Vec<MenuItem<Self>> {
        self.menu.iter().map(|e| self.item(e)).collect()
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        // Stock GNOME has no tray host: notifications still work; keep running and wait for
        // a host to appear. Whoever started it from a terminal learns why nothing shows.
        tracing::info!("no StatusNotifierWatcher: {reason:?}");
        if !self
            .told_no_host
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!("{}", no_tray_host_message());
        }
        true
    }

    fn watcher_online(&self) {
        self.told_no_host
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What the terminal is told when no tray shows the item.
pub fn no_tray_host_message() -> String {
    tr(
        "qui-domains: no system tray is running on this desktop, so the Qubes Domains item is not shown; it appears as soon as one starts (on GNOME: the AppIndicator extension). Notifications work meanwhile.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksni::Tray;

    #[test]
    fn rows_escape_mnemonics_carry_qube_icons_and_dispatch_commands() {
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        let mut tray = QubesTray::new(Arc::new(move |c| sink.lock().unwrap().push(c)));
        tray.set_menu(vec![Entry::Item {
            label: "sys_usb".into(),
            enabled: true,
            icon: Some(QubeIcon {
                kind: crate::qube_icons::QubeKind::Disposable,
                colour: "0x73d216".into(),
            }),
            command: None,
            children: vec![Entry::Item {
                label: "Kill".into(),
                enabled: true,
                icon: None,
                command: Some(Command::Kill("sys_usb".into())),
                children: Vec::new(),
            }],
        }]);
        let mut menu = tray.menu();
        let MenuItem::SubMenu(sub) = &mut menu[0] else {
            panic!("a submenu")
        };
        assert_eq!(sub.label, "sys__usb", "shown as sys_usb, not as a mnemonic");
        assert_eq!(
            sub.icon_data,
            icon::qube_png(crate::qube_icons::QubeKind::Disposable, [0x73, 0xd2, 0x16])
        );
        let MenuItem::Standard(kill) = &sub.submenu[0] else {
            panic!("an item")
        };
        (kill.activate)(&mut tray);
        assert_eq!(*got.lock().unwrap(), [Command::Kill("sys_usb".into())]);
    }
}
