//! The Devices page of the qube settings: dom0's PCI devices (bridges left out), each with a
//! switch "always connected to this qube" (a `required` assignment, given to the qube when it
//! starts) and a "no strict reset" option. PCI assignments change only while the qube is
//! halted and need HVM, so the page says why when it cannot be used. A filter narrows the
//! list by words and by kind of device.

use std::cell::RefCell;
use std::rc::Rc;

use qubes_api::device_format::unpack;
use relm4::gtk;
use relm4::gtk::prelude::*;

use crate::i18n::{noop_tr, tr};

/// One PCI device dom0 exposes, as `admin.vm.device.pci.Available` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciEntry {
    /// Port id (PCI path).
    pub port_id: String,
    /// Identity.
    pub device_id: String,
    /// Interface code (`p028000`).
    pub interface: String,
    /// Vendor name (empty if unknown).
    pub vendor: String,
    /// Product name (empty if unknown).
    pub product: String,
}

/// A required PCI assignment of the qube: port, identity and whether `no-strict-reset` is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// Port id.
    pub port_id: String,
    /// Identity (`*` = whatever is on the port).
    pub device_id: String,
    /// The `no-strict-reset` option.
    pub no_strict_reset: bool,
}

/// What the page shows, read when the dialog opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicesLoaded {
    /// dom0's devices, bridges left out.
    pub available: Vec<PciEntry>,
    /// The qube's required assignments from dom0.
    pub required: Vec<Required>,
    /// Whether the qube is not halted (assignments then cannot change here).
    pub running: bool,
    /// Whether the qube's virt mode is PVH (no PCI passthrough).
    pub pvh: bool,
}

impl DevicesLoaded {
    /// The required assignment a device fulfils, if any.
    pub fn required_for(&self, e: &PciEntry) -> Option<&Required> {
        self.required
            .iter()
            .find(|r| r.port_id == e.port_id && (r.device_id == "*" || r.device_id == e.device_id))
    }
}

/// Parses the lines of `admin.vm.device.pci.Available` (dom0).
pub fn parse_available(text: &str) -> Vec<PciEntry> {
    text.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(' ')?;
            let (props, _) = unpack(rest.as_bytes()).ok()?;
            let get = |k: &str| {
                props
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            Some(PciEntry {
                port_id: get("port_id"),
                device_id: get("device_id"),
                interface: get("interfaces"),
                vendor: get("vendor"),
                product: get("product"),
            })
        })
        .filter(|e| !e.interface.starts_with("p06"))
        .collect()
}

/// Parses the lines of `admin.vm.device.pci.Assigned`: the required ones from dom0.
pub fn parse_required(text: &str) -> Vec<Required> {
    text.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(' ')?;
            let (props, opts) = unpack(rest.as_bytes()).ok()?;
            let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            (get("backend_domain") == Some("dom0") && get("mode") == Some("required")).then(|| {
                Required {
                    port_id: get("port_id").unwrap_or_default().to_string(),
                    device_id: get("device_id").unwrap_or("*").to_string(),
                    no_strict_reset: opts
                        .iter()
                        .any(|(k, v)| k == "no-strict-reset" && !v.is_empty()),
                }
            })
        })
        .collect()
}

/// Kinds of device for the filter: (interface prefixes, translatable name).
const KINDS: &[(&[&str], &str)] = &[
    (&["p02"], noop_tr("Network")),
    (&["p03"], noop_tr("Display")),
    (&["p04"], noop_tr("Audio and video")),
    (&["p01"], noop_tr("Storage")),
    (&["p0c03"], noop_tr("USB controller")),
];

/// The kind of a device, by its interface code.
pub fn kind_of(interface: &str) -> String {
    KINDS
        .iter()
        .find(|(prefixes, _)| prefixes.iter().any(|p| interface.starts_with(p)))
        .map(|(_, name)| tr(name))
        .unwrap_or_else(|| tr("Other"))
}

/// The qrexec argument naming an assignment: `dom0+<port>[+<identity, ':' as '+'>]`.
pub fn qarg(port_id: &str, device_id: &str) -> String {
    if device_id == "*" {
        format!("dom0+{port_id}")
    } else {
        format!("dom0+{port_id}+{}", device_id.replace(':', "+"))
    }
}

/// One device row.
#[derive(Clone)]
struct Row {
    entry: PciEntry,
    row: gtk::ListBoxRow,
    connected: gtk::CheckButton,
    no_strict_reset: gtk::CheckButton,
    kind: String,
}

/// The page.
#[derive(Clone)]
pub struct DevicesEditor {
    /// The page widget.
    pub root: gtk::Box,
    /// Why the page cannot be used now (hidden when it can).
    pub note: gtk::Label,
    list: gtk::ListBox,
    /// Words to look for in a device's description.
    pub search: gtk::SearchEntry,
    /// Kind of device shown (0 = all).
    pub kind: gtk::DropDown,
    rows: Rc<RefCell<Vec<Row>>>,
}

impl Default for DevicesEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl DevicesEditor {
    /// An empty page.
    pub fn new() -> DevicesEditor {
        let root = crate::widgets::page_box(8);
        let intro = gtk::Label::builder()
            .label(tr(
                "PCI devices checked here are always connected to this qube: it gets them when it starts and cannot start without them.",
            ))
            .wrap(true)
            .xalign(0.0)
            .build();
        let note = gtk::Label::builder()
            .wrap(true)
            .xalign(0.0)
            .visible(false)
            .build();
        note.add_css_class("warning");
        let filter_bar = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        let search = gtk::SearchEntry::new();
        search.set_hexpand(true);
        search.set_placeholder_text(Some(&tr("Filter devices")));
        crate::a11y::set_name(&search, &tr("Filter devices"));
        let mut kinds = vec![tr("All kinds")];
        kinds.extend(KINDS.iter().map(|(_, n)| tr(n)));
        kinds.push(tr("Other"));
        let kind_names: Vec<&str> = kinds.iter().map(String::as_str).collect();
        let kind = gtk::DropDown::from_strings(&kind_names);
        crate::a11y::set_name(&kind, &tr("Kind of device"));
        filter_bar.append(&search);
        filter_bar.append(&kind);
        let list = gtk::ListBox::new();
        list.set_selection_mode(gtk::SelectionMode::None);
        list.add_css_class("boxed-list");
        crate::a11y::set_name(&list, &tr("PCI devices"));
        crate::widgets::empty_state(
            &list,
            "edit-find-symbolic",
            &tr("No devices to show"),
            &tr("None of dom0's PCI devices matches the filter."),
        );
        let scroller = gtk::ScrolledWindow::builder()
            .child(&list)
            .vexpand(true)
            .build();
        root.append(&intro);
        root.append(&note);
        root.append(&filter_bar);
        root.append(&scroller);
        let editor = DevicesEditor {
            root,
            note,
            list,
            search,
            kind,
            rows: Rc::new(RefCell::new(Vec::new())),
        };
        {
            let e = editor.clone();
            editor.search.connect_search_changed(move |_| e.refilter());
        }
        {
            let e = editor.clone();
            editor.kind.connect_selected_notify(move |_| e.refilter());
        }
        editor
    }

    /// Shows the devices and the qube's required assignments.
    pub fn fill(&self, loaded: &DevicesLoaded) {
        while let Some(child) = self.list.first_child() {
            self.list.remove(&child);
        }
        let mut rows = self.rows.borrow_mut();
        rows.clear();
        for entry in &loaded.available {
            let kind = kind_of(&entry.interface);
            let name = [entry.vendor.as_str(), entry.product.as_str()]
                .iter()
                .filter(|s| !s.is_empty() && **s != "unknown")
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let text = format!("{}  {kind}: {name}", entry.port_id);
            let connected = gtk::CheckButton::with_label(&text);
            connected.set_hexpand(true);
            crate::a11y::set_name(&connected, &format!("{} {text}", tr("Always connected:")));
            let no_strict_reset = gtk::CheckButton::with_label(&tr("No strict reset"));
            no_strict_reset.set_tooltip_text(Some(&tr(
                "Give the device even when it cannot be reset on its own (less safe; some devices need it)",
            )));
            crate::a11y::set_name(
                &no_strict_reset,
                &format!("{} {}", tr("No strict reset for"), entry.port_id),
            );
            let assigned = loaded.required_for(entry);
            connected.set_active(assigned.is_some());
            no_strict_reset.set_active(assigned.is_some_and(|r| r.no_strict_reset));
            no_strict_reset.set_sensitive(assigned.is_some());
            {
                let nsr = no_strict_reset.clone();
                connected.connect_toggled(move |c| nsr.set_sensitive(c.is_active()));
            }
            let b = crate::widgets::row_box(12);
            b.append(&connected);
            b.append(&no_strict_reset);
            let row = gtk::ListBoxRow::new();
            row.set_child(Some(&b));
            row.set_activatable(false);
            self.list.append(&row);
            rows.push(Row {
                entry: entry.clone(),
                row,
                connected,
                no_strict_reset,
                kind,
            });
        }
        drop(rows);
        let why = if loaded.running {
            Some(tr("Shut the qube down to change its PCI devices."))
        } else if loaded.pvh {
            Some(tr(
                "PCI devices need the HVM virtualization mode: choose it (or the default) on the Advanced page first.",
            ))
        } else {
            None
        };
        self.note.set_text(why.as_deref().unwrap_or(""));
        self.note.set_visible(why.is_some());
        self.list.set_sensitive(why.is_none());
        self.refilter();
    }

    /// Shows the rows that match the words and the kind chosen.
    fn refilter(&self) {
        let words: Vec<String> = self
            .search
            .text()
            .to_lowercase()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let chosen = self.kind.selected() as usize;
        let kind_name = match chosen {
            0 => None,
            i if i <= KINDS.len() => Some(tr(KINDS[i - 1].1)),
            _ => Some(tr("Other")),
        };
        for r in self.rows.borrow().iter() {
            let label = r
                .connected
                .label()
                .map(|l| l.to_lowercase())
                .unwrap_or_default();
            let shown = words.iter().all(|w| label.contains(w))
                && kind_name.as_ref().is_none_or(|k| *k == r.kind);
            r.row.set_visible(shown);
        }
    }

    /// Rows shown after filtering (for tests).
    pub fn visible_ports(&self) -> Vec<String> {
        self.rows
            .borrow()
            .iter()
            .filter(|r| r.row.is_visible())
            .map(|r| r.entry.port_id.clone())
            .collect()
    }

    /// Checks or unchecks "always connected" for a port (tests drive the page like a user).
    pub fn set_connected(&self, port_id: &str, on: bool, no_strict_reset: bool) {
        if let Some(r) = self
            .rows
            .borrow()
            .iter()
            .find(|r| r.entry.port_id == port_id)
        {
            r.connected.set_active(on);
            r.no_strict_reset.set_active(no_strict_reset);
        }
    }

    /// The changes against what was loaded: `("pci:<port>", None)` removes a required
    /// assignment, `("pci:<port>", Some(value))` makes one, `value` being
    /// `<old qarg or empty>\n<identity>\n<no-strict-reset: 0|1>` (an old assignment with other
    /// options is replaced).
    pub fn changes(&self, loaded: &DevicesLoaded) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for r in self.rows.borrow().iter() {
            let e = &r.entry;
            let old = loaded.required_for(e);
            let on = r.connected.is_active();
            let nsr = on && r.no_strict_reset.is_active();
            let key = format!("pci:{}", e.port_id);
            match (old, on) {
                (Some(o), false) => {
                    out.push((key, Some(format!("{}\n\n", qarg(&o.port_id, &o.device_id)))))
                }
                (None, true) => {
                    out.push((key, Some(format!("\n{}\n{}", e.device_id, u8::from(nsr)))))
                }
                (Some(o), true) if o.no_strict_reset != nsr => out.push((
                    key,
                    Some(format!(
                        "{}\n{}\n{}",
                        qarg(&o.port_id, &o.device_id),
                        e.device_id,
                        u8::from(nsr)
                    )),
                )),
                _ => {}
            }
        }
        out
    }
}

/// Sends one device change made by [`DevicesEditor::changes`]: unassign the old assignment,
/// then assign the device as required.
pub fn apply_change(
    client: &qubes_api::Client,
    vm: &str,
    port_id: &str,
    value: &str,
) -> Result<(), qubes_api::CallError> {
    let mut parts = value.splitn(3, '\n');
    let old = parts.next().unwrap_or("");
    let device_id = parts.next().unwrap_or("");
    let nsr = parts.next() == Some("1");
    if !old.is_empty() {
        client.call("admin.vm.device.pci.Unassign", vm, old, b"")?;
    }
    if device_id.is_empty() {
        return Ok(());
    }
    let mut payload = format!(
        "{} {} {} {} {}",
        qubes_api::device_format::pair("device_id", device_id),
        qubes_api::device_format::pair("port_id", port_id),
        qubes_api::device_format::pair("devclass", "pci"),
        qubes_api::device_format::pair("backend_domain", "dom0"),
        qubes_api::device_format::pair("mode", "required"),
    );
    if nsr {
        payload.push(' ');
        payload.push_str(&qubes_api::device_format::pair("_no-strict-reset", "True"));
    }
    client
        .call(
            "admin.vm.device.pci.Assign",
            vm,
            &qarg(port_id, device_id),
            payload.as_bytes(),
        )
        .map(|_| ())
}

/// The change (for [`apply_change`]) that puts back what `loaded` shows for `port_id`, once
/// `value` was applied.
pub fn undo_change(loaded: &DevicesLoaded, port_id: &str, value: &str) -> String {
    let new_device = value.split('\n').nth(1).unwrap_or("");
    let assigned_now = if new_device.is_empty() {
        String::new()
    } else {
        qarg(port_id, new_device)
    };
    match loaded.required.iter().find(|r| r.port_id == port_id) {
        Some(old) => format!(
            "{assigned_now}\n{}\n{}",
            old.device_id,
            u8::from(old.no_strict_reset)
        ),
        None => format!("{assigned_now}\n\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        let avail = parse_available(
            "00_14.3:0x8086:0x51f0::p028000 device_id='0x8086:0x51f0::p028000' port_id='00_14.3' devclass='pci' backend_domain='dom0' vendor='Intel Corporation' product='Alder Lake-P PCH CNVi WiFi' interfaces='p028000' _sbdf='0000:00:14.3'\n\
             00_1c.0:0x8086:0x51b8::p060400 device_id='0x8086:0x51b8::p060400' port_id='00_1c.0' devclass='pci' backend_domain='dom0' interfaces='p060400'\n",
        );
        assert_eq!(avail.len(), 1, "bridges are left out");
        assert_eq!(avail[0].product, "Alder Lake-P PCH CNVi WiFi");
        let req = parse_required(
            "dom0+00_14.3:* device_id='*' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'\n\
             dom0+00_1f.3:* device_id='*' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='auto-attach'\n",
        );
        assert_eq!(
            req,
            vec![Required {
                port_id: "00_14.3".into(),
                device_id: "*".into(),
                no_strict_reset: true
            }]
        );
        assert_eq!(
            qarg("00_14.3", "0x8086:0x51f0::p028000"),
            "dom0+00_14.3+0x8086+0x51f0++p028000"
        );
        assert_eq!(qarg("00_14.3", "*"), "dom0+00_14.3");
    }
}
