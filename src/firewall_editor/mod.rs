//! The Firewall page of the qube settings: allow all outgoing connections, or limit them to a
//! list of rules (`admin.vm.firewall.Get` / `Set`; the chain ends with "drop", so a limited
//! list allows only what it names). Rules are shown in words ("Allow TCP to qubes-os.org,
//! port 443") and edited field by field ([`dialog`]: address, protocol, ports, ICMP type,
//! comment); a rule the editor cannot show field by field is kept as its text. "Full access
//! for a while" puts an allow-everything rule with an expiry (`expire=`) first, as the
//! reference manager does. Removing a rule can be undone from its toast.

pub mod dialog;
pub mod rule;

use std::cell::RefCell;
use std::rc::Rc;

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use crate::i18n::tr;
use dialog::RuleDialog;
use rule::Rule;

/// The rule list that means "allow everything".
pub const ALLOW_ALL: &str = "action=accept";

/// Minutes of full access offered at first.
const FULL_ACCESS_MINUTES: f64 = 5.0;

/// The page.
#[derive(Clone)]
pub struct FirewallEditor {
    /// The page widget.
    pub root: gtk::Box,
    /// On: only the listed rules; off: everything is allowed.
    pub limit: gtk::Switch,
    list: gtk::ListBox,
    /// The rules' lines, in order, with their rows.
    rows: Rc<RefCell<Vec<(String, gtk::ListBoxRow)>>>,
    /// The temporary full access rule, if any (it goes first).
    full_access: Rc<RefCell<Option<String>>>,
    full_row: adw::ActionRow,
    /// Minutes of full access to allow.
    pub minutes: gtk::SpinButton,
    /// Allows full access for the minutes (or ends it).
    pub full_button: gtk::Button,
    /// Opens the window for a new rule.
    pub add_button: gtk::Button,
    /// The rule window last opened (for tests).
    pub dialog: Rc<RefCell<Option<RuleDialog>>>,
}

impl FirewallEditor {
    /// An empty page.
    pub fn new() -> FirewallEditor {
        let root = gtk::Box::new(gtk::Orientation::Vertical, 18);
        let top = gtk::ListBox::new();
        top.set_selection_mode(gtk::SelectionMode::None);
        top.add_css_class("boxed-list");
        let limit = gtk::Switch::builder().valign(gtk::Align::Center).build();
        let limit_row = adw::ActionRow::builder()
            .title(tr("Limit outgoing connections to the rules below"))
            .subtitle(tr("Off: the qube may connect anywhere"))
            .activatable_widget(&limit)
            .build();
        limit_row.add_suffix(&limit);
        crate::a11y::set_name(&limit, &tr("Limit outgoing connections to the rules below"));
        top.append(&limit_row);
        let minutes = gtk::SpinButton::with_range(1.0, 1440.0, 1.0);
        minutes.set_value(FULL_ACCESS_MINUTES);
        minutes.set_valign(gtk::Align::Center);
        crate::a11y::set_name(&minutes, &tr("Minutes of full access"));
        minutes.set_tooltip_text(Some(&tr("Minutes of full access")));
        let full_button = gtk::Button::builder()
            .label(tr("Allow"))
            .valign(gtk::Align::Center)
            .build();
        let full_row = adw::ActionRow::builder()
            .title(tr("Full access for a while"))
            .build();
        full_row.add_suffix(&minutes);
        full_row.add_suffix(&full_button);
        top.append(&full_row);
        root.append(&top);
        let list = gtk::ListBox::new();
        list.set_selection_mode(gtk::SelectionMode::None);
        list.add_css_class("boxed-list");
        crate::a11y::set_name(&list, &tr("Firewall rules"));
        crate::widgets::empty_state(
            &list,
            "network-wired-symbolic",
            &tr("No rules"),
            &tr("While connections are limited, nothing goes out. Add a rule to allow something."),
        );
        root.append(&list);
        let add_button = gtk::Button::builder()
            .label(tr("Add rule…"))
            .halign(gtk::Align::Start)
            .build();
        root.append(&add_button);
        let editor = FirewallEditor {
            root,
            limit,
            list,
            rows: Rc::default(),
            full_access: Rc::default(),
            full_row,
            minutes,
            full_button,
            add_button,
            dialog: Rc::default(),
        };
        {
            let e = editor.clone();
            editor.add_button.connect_clicked(move |_| {
                let target = e.clone();
                let d = RuleDialog::open(e.window().as_ref(), None, move |r| {
                    target.add(&r.line());
                });
                *e.dialog.borrow_mut() = Some(d);
            });
        }
        {
            let e = editor.clone();
            editor.full_button.connect_clicked(move |_| {
                let active = e.full_access.borrow().is_some();
                if active {
                    *e.full_access.borrow_mut() = None;
                } else {
                    let until = now() + e.minutes.value() as u64 * 60;
                    *e.full_access.borrow_mut() = Some(format!("action=accept expire={until}"));
                }
                e.show_full_access();
            });
        }
        {
            // The rules matter only when connections are limited.
            let e = editor.clone();
            editor
                .limit
                .connect_active_notify(move |_| e.follow_limit());
        }
        editor.show_full_access();
        editor.follow_limit();
        editor
    }

    /// The settings window the page is in.
    fn window(&self) -> Option<gtk::Window> {
        self.root.root().and_downcast::<gtk::Window>()
    }

    fn follow_limit(&self) {
        let on = self.limit.is_active();
        self.list.set_sensitive(on);
        self.add_button.set_sensitive(on);
        self.full_row.set_sensitive(on);
    }

    fn show_full_access(&self) {
        match self.full_access.borrow().as_deref().and_then(Rule::parse) {
            Some(Rule {
                expire: Some(until),
                ..
            }) => {
                // The expiry comes from the qube's rules: a number too big for a date shows no
                // time, as one GLib cannot convert does.
                let time = i64::try_from(until)
                    .ok()
                    .and_then(|t| gtk::glib::DateTime::from_unix_local(t).ok())
                    .and_then(|d| d.format("%H:%M").ok())
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let text = if until < now() {
                    tr("Ended at %s").replacen("%s", &time, 1)
                } else {
                    tr("Every connection allowed until %s, then the rules again")
                        .replacen("%s", &time, 1)
                };
                self.full_row.set_subtitle(&text);
                self.full_button.set_label(&tr("End"));
                self.minutes.set_visible(false);
            }
            _ => {
                self.full_row.set_subtitle(&tr(
                    "Allow every outgoing connection for some minutes, then the rules again",
                ));
                self.full_button.set_label(&tr("Allow"));
                self.minutes.set_visible(true);
            }
        }
    }

    /// Shows the rules the daemon holds (one API line each).
    pub fn fill(&self, rules: &[String]) {
        while let Some(child) = self.list.first_child() {
            self.list.remove(&child);
        }
        self.rows.borrow_mut().clear();
        let allow_all = rules.len() == 1 && rules[0] == ALLOW_ALL;
        self.limit.set_active(!allow_all);
        let mut rest = rules;
        *self.full_access.borrow_mut() = None;
        if !allow_all
            && let Some(first) = rules.first()
            && Rule::parse(first).is_some_and(|r| r.is_full_access())
        {
            *self.full_access.borrow_mut() = Some(first.clone());
            rest = &rules[1..];
        }
        if !allow_all {
            for r in rest {
                self.add(r);
            }
        }
        self.show_full_access();
        self.follow_limit();
    }

    /// Adds a rule (an API line) at the end.
    pub fn add(&self, line: &str) {
        let at = self.rows.borrow().len();
        self.insert(at, line);
    }

    /// Puts a rule's row at `at`.
    fn insert(&self, at: usize, line: &str) {
        let parsed = Rule::parse(line);
        let row = adw::ActionRow::new();
        match &parsed {
            Some(r) => {
                row.set_title(&gtk::glib::markup_escape_text(&r.summary()));
                if let Some(c) = &r.comment {
                    row.set_subtitle(&gtk::glib::markup_escape_text(c));
                }
            }
            None => {
                row.set_title(&gtk::glib::markup_escape_text(line));
                row.set_subtitle(&tr("Shown as the daemon has it: edit it with qvm-firewall"));
                row.add_css_class("raw-rule");
            }
        }
        let button = |icon: &str, label: String| {
            let b = gtk::Button::from_icon_name(icon);
            b.set_valign(gtk::Align::Center);
            b.add_css_class("flat");
            b.set_tooltip_text(Some(&label));
            crate::a11y::set_name(&b, &label);
            row.add_suffix(&b);
            b
        };
        let up = button("go-up-symbolic", tr("Move rule up"));
        let edit = parsed
            .as_ref()
            .map(|_| button("document-edit-symbolic", tr("Edit rule")));
        let remove = button("user-trash-symbolic", tr("Remove rule"));
        let list_row = gtk::ListBoxRow::new();
        list_row.set_child(Some(&row));
        list_row.set_activatable(false);
        // GTK counts rows in `i32`; -1 is the end (no qube has that many rules).
        self.list.insert(&list_row, i32::try_from(at).unwrap_or(-1));
        self.rows
            .borrow_mut()
            .insert(at, (line.to_string(), list_row.clone()));
        let position = {
            let (rows, list_row) = (self.rows.clone(), list_row.clone());
            move || rows.borrow().iter().position(|(_, r)| *r == list_row)
        };
        {
            let (e, position) = (self.clone(), position.clone());
            up.connect_clicked(move |_| {
                if let Some(i) = position().filter(|i| *i > 0) {
                    let line = e.take(i);
                    e.insert(i - 1, &line);
                }
            });
        }
        if let (Some(edit), Some(rule)) = (edit, parsed) {
            let (e, position) = (self.clone(), position.clone());
            edit.connect_clicked(move |_| {
                let target = e.clone();
                let position = position.clone();
                let d = RuleDialog::open(e.window().as_ref(), Some(&rule), move |r| {
                    if let Some(i) = position() {
                        target.take(i);
                        target.insert(i, &r.line());
                    }
                });
                *e.dialog.borrow_mut() = Some(d);
            });
        }
        {
            let e = self.clone();
            remove.connect_clicked(move |_| {
                if let Some(i) = position() {
                    let line = e.take(i);
                    e.offer_undo(i, line);
                }
            });
        }
    }

    /// Takes the rule at `i` out; returns its line.
    fn take(&self, i: usize) -> String {
        let (line, row) = self.rows.borrow_mut().remove(i);
        self.list.remove(&row);
        line
    }

    /// Says a rule was removed, with Undo to put it back where it was.
    fn offer_undo(&self, at: usize, line: String) {
        let Some(window) = self.window().and_downcast::<adw::PreferencesWindow>() else {
            return;
        };
        let toast = adw::Toast::new(&tr("Rule removed"));
        toast.set_button_label(Some(&tr("Undo")));
        let e = self.clone();
        toast.connect_button_clicked(move |_| {
            let at = at.min(e.rows.borrow().len());
            e.insert(at, &line);
        });
        window.add_toast(toast);
    }

    /// The rule lines the page now describes.
    pub fn rules(&self) -> Vec<String> {
        if !self.limit.is_active() {
            return vec![ALLOW_ALL.to_string()];
        }
        self.full_access
            .borrow()
            .iter()
            .cloned()
            .chain(self.rows.borrow().iter().map(|(l, _)| l.clone()))
            .collect()
    }

    /// The rules' summaries as shown, in order (for tests).
    pub fn shown(&self) -> Vec<String> {
        self.rows
            .borrow()
            .iter()
            .filter_map(|(_, r)| r.child().and_downcast::<adw::ActionRow>())
            .map(|r| r.title().to_string())
            .collect()
    }
}

impl Default for FirewallEditor {
    fn default() -> Self {
        Self::new()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
