//! The Firewall page of the qube settings: allow all outgoing connections, or limit them to
//! a list of rules (`admin.vm.firewall.Get` / `Set`; the chain ends with "drop", so a limited
//! list allows only what it names). Rules are edited in the API's own syntax, one per row,
//! e.g. `action=accept dsthost=qubes-os.org proto=tcp dstports=443`.

use std::cell::RefCell;
use std::rc::Rc;

use relm4::gtk;
use relm4::gtk::prelude::*;

use crate::i18n::tr;

/// The rule list that means "allow everything".
pub const ALLOW_ALL: &str = "action=accept";

/// The page.
#[derive(Clone)]
pub struct FirewallEditor {
    /// The page widget.
    pub root: gtk::Box,
    /// On: only the listed rules; off: everything is allowed.
    pub limit: gtk::CheckButton,
    list: gtk::ListBox,
    rows: Rc<RefCell<Vec<(gtk::Entry, gtk::ListBoxRow)>>>,
    /// A new rule to add.
    pub add_rule: gtk::Entry,
}

impl FirewallEditor {
    /// An empty page.
    pub fn new() -> FirewallEditor {
        let root = crate::widgets::page_box(8);
        let limit =
            gtk::CheckButton::with_label(&tr("Limit outgoing connections to the rules below"));
        let list = gtk::ListBox::new();
        list.set_selection_mode(gtk::SelectionMode::None);
        list.add_css_class("boxed-list");
        crate::a11y::set_name(&list, &tr("Firewall rules"));
        let add_rule = gtk::Entry::new();
        let hint = tr("New rule, e.g. action=accept dsthost=qubes-os.org proto=tcp dstports=443");
        add_rule.set_placeholder_text(Some(&hint));
        add_rule.set_tooltip_text(Some(&hint));
        crate::a11y::set_name(&add_rule, &tr("New firewall rule"));
        add_rule.set_hexpand(true);
        root.append(&limit);
        let add = crate::widgets::list_with_add_bar(&root, &list, &[&add_rule]);
        let editor = FirewallEditor {
            root,
            limit,
            list,
            rows: Rc::new(RefCell::new(Vec::new())),
            add_rule,
        };
        {
            let e = editor.clone();
            crate::widgets::connect_add(&add, &editor.add_rule, move || {
                let text = e.add_rule.text().trim().to_string();
                if !text.is_empty() {
                    e.add(&text);
                    e.add_rule.set_text("");
                }
            });
        }
        {
            // The rules matter only when connections are limited.
            let (list, add_rule) = (editor.list.clone(), editor.add_rule.clone());
            editor.limit.connect_toggled(move |c| {
                list.set_sensitive(c.is_active());
                add_rule.set_sensitive(c.is_active());
            });
        }
        editor
    }

    /// Shows the rules the daemon holds (one API line each).
    pub fn fill(&self, rules: &[String]) {
        while let Some(child) = self.list.first_child() {
            self.list.remove(&child);
        }
        self.rows.borrow_mut().clear();
        let allow_all = rules.len() == 1 && rules[0] == ALLOW_ALL;
        self.limit.set_active(!allow_all);
        self.list.set_sensitive(!allow_all);
        self.add_rule.set_sensitive(!allow_all);
        if !allow_all {
            for r in rules {
                self.add(r);
            }
        }
    }

    /// Adds a rule row.
    pub fn add(&self, rule: &str) {
        let line = crate::widgets::row_box(6);
        let entry = gtk::Entry::new();
        entry.set_text(rule);
        entry.set_hexpand(true);
        crate::a11y::set_name(&entry, &tr("Firewall rule"));
        let remove = gtk::Button::from_icon_name("list-remove-symbolic");
        remove.set_tooltip_text(Some(&tr("Remove rule")));
        crate::a11y::set_name(&remove, &tr("Remove rule"));
        line.append(&entry);
        line.append(&remove);
        let row = gtk::ListBoxRow::new();
        row.set_child(Some(&line));
        self.list.append(&row);
        self.rows.borrow_mut().push((entry, row.clone()));
        let (rows, list) = (self.rows.clone(), self.list.clone());
        remove.connect_clicked(move |_| {
            rows.borrow_mut().retain(|(_, r)| r != &row);
            list.remove(&row);
        });
    }

    /// The rule lines the page now describes.
    pub fn rules(&self) -> Vec<String> {
        if !self.limit.is_active() {
            return vec![ALLOW_ALL.to_string()];
        }
        self.rows
            .borrow()
            .iter()
            .map(|(e, _)| e.text().trim().to_string())
            .filter(|r| !r.is_empty())
            .collect()
    }
}

impl Default for FirewallEditor {
    fn default() -> Self {
        Self::new()
    }
}
