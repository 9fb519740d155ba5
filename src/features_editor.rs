//! The Services and Features pages of the qube settings: rows of features that can be
//! changed, removed and added. Services are the `service.<name>` features, shown as switches
//! (on = `1`, off = empty); the Features page edits every other feature as text.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use relm4::gtk;
use relm4::gtk::prelude::*;

use crate::i18n::tr;

const SERVICE_PREFIX: &str = "service.";

/// Features the settings edit on rows of their own (idle shutdown, prohibit-start, the maximum
/// memory kept while out of memory balancing): not listed here, so one edit cannot undo the
/// other.
pub const EDITED_ELSEWHERE: [&str; 3] = [
    "service.shutdown-idle",
    "prohibit-start",
    "qubesmanager.maxmem_value",
];

struct Row {
    /// Full feature name.
    name: String,
    /// `gtk::CheckButton` (services) or `gtk::Entry` (features).
    value: gtk::Widget,
    removed: Rc<Cell<bool>>,
}

/// One page of feature rows.
#[derive(Clone)]
pub struct FeatureEditor {
    /// The page.
    pub root: gtk::Box,
    list: gtk::ListBox,
    rows: Rc<RefCell<Vec<Row>>>,
    services: bool,
    /// Name of a feature (or service) to add.
    pub add_name: gtk::Entry,
    /// Its value (features page only).
    pub add_value: Option<gtk::Entry>,
}

impl FeatureEditor {
    /// An empty page; `services` picks the Services flavour.
    pub fn new(services: bool) -> FeatureEditor {
        let root = crate::widgets::page_box(8);
        let list = gtk::ListBox::new();
        list.set_selection_mode(gtk::SelectionMode::None);
        list.add_css_class("boxed-list");
        let title = if services {
            tr("Services")
        } else {
            tr("Features")
        };
        crate::a11y::set_name(&list, &title);
        if services {
            crate::widgets::empty_state(
                &list,
                "system-run-symbolic",
                &tr("No services set"),
                &tr(
                    "The qube runs the services its template turns on. Add one below to turn it on or off here.",
                ),
            );
        } else {
            crate::widgets::empty_state(
                &list,
                "applications-engineering-symbolic",
                &tr("No features"),
                &tr("Add a feature below: a name and its value."),
            );
        }
        let add_name = gtk::Entry::new();
        let name_hint = if services {
            tr("Service name")
        } else {
            tr("Feature name")
        };
        add_name.set_placeholder_text(Some(&name_hint));
        add_name.set_tooltip_text(Some(&name_hint));
        crate::a11y::set_name(&add_name, &name_hint);
        add_name.set_hexpand(true);
        let add_value = (!services).then(|| {
            let e = gtk::Entry::new();
            e.set_placeholder_text(Some(&tr("Value")));
            e.set_tooltip_text(Some(&tr("Value")));
            crate::a11y::set_name(&e, &tr("Value"));
            e.set_hexpand(true);
            e
        });
        let mut entries = vec![&add_name];
        entries.extend(add_value.as_ref());
        let add = crate::widgets::list_with_add_bar(&root, &list, &entries);
        let editor = FeatureEditor {
            root,
            list,
            rows: Rc::new(RefCell::new(Vec::new())),
            services,
            add_name,
            add_value,
        };
        {
            let e = editor.clone();
            let add_now = move || {
                let name = e.add_name.text().trim().to_string();
                if name.is_empty() {
                    return;
                }
                let full = if e.services {
                    format!("{SERVICE_PREFIX}{name}")
                } else {
                    name
                };
                let value = match &e.add_value {
                    Some(v) => v.text().to_string(),
                    None => "1".to_string(),
                };
                e.add(&full, &value);
                e.add_name.set_text("");
                if let Some(v) = &e.add_value {
                    v.set_text("");
                }
            };
            crate::widgets::connect_add(&add, &editor.add_name, add_now);
        }
        editor
    }

    fn in_scope(&self, name: &str) -> bool {
        name.starts_with(SERVICE_PREFIX) == self.services && !EDITED_ELSEWHERE.contains(&name)
    }

    /// Shows `features` (only those of this page).
    pub fn fill(&self, features: &[(String, String)]) {
        while let Some(child) = self.list.first_child() {
            self.list.remove(&child);
        }
        self.rows.borrow_mut().clear();
        for (name, value) in features.iter().filter(|(n, _)| self.in_scope(n)) {
            self.add(name, value);
        }
    }

    /// Adds a row (or sets the value of an existing one).
    pub fn add(&self, name: &str, value: &str) {
        if let Some(r) = self
            .rows
            .borrow()
            .iter()
            .find(|r| r.name == name && !r.removed.get())
        {
            set_value(&r.value, value);
            return;
        }
        let shown = name.strip_prefix(SERVICE_PREFIX).unwrap_or(name);
        let line = crate::widgets::row_box(8);
        let value_widget: gtk::Widget = if self.services {
            let c = gtk::CheckButton::with_label(shown);
            c.set_hexpand(true);
            c.set_active(truthy(value));
            c.upcast()
        } else {
            let l = gtk::Label::builder().label(shown).xalign(0.0).build();
            l.set_hexpand(true);
            line.append(&l);
            let e = gtk::Entry::new();
            e.set_text(value);
            e.set_hexpand(true);
            let label = tr("Value of %s").replacen("%s", shown, 1);
            e.set_tooltip_text(Some(&label));
            crate::a11y::set_name(&e, &label);
            e.upcast()
        };
        line.append(&value_widget);
        let remove = gtk::Button::from_icon_name("list-remove-symbolic");
        let label = tr("Remove %s").replacen("%s", shown, 1);
        remove.set_tooltip_text(Some(&label));
        crate::a11y::set_name(&remove, &label);
        line.append(&remove);
        let row = gtk::ListBoxRow::new();
        row.set_child(Some(&line));
        self.list.append(&row);
        let removed = Rc::new(Cell::new(false));
        {
            let (removed, row) = (removed.clone(), row.clone());
            remove.connect_clicked(move |_| {
                removed.set(true);
                row.set_visible(false);
            });
        }
        self.rows.borrow_mut().push(Row {
            name: name.to_string(),
            value: value_widget,
            removed,
        });
    }

    /// Names (full) of the rows still present.
    pub fn names(&self) -> Vec<String> {
        self.rows
            .borrow()
            .iter()
            .filter(|r| !r.removed.get())
            .map(|r| r.name.clone())
            .collect()
    }

    /// Marks a row removed, as its button does (tests drive it like a user).
    pub fn remove(&self, name: &str) {
        for r in self.rows.borrow().iter().filter(|r| r.name == name) {
            r.removed.set(true);
        }
    }

    /// Sets a row's value, as typing or toggling does.
    pub fn set(&self, name: &str, value: &str) {
        if let Some(r) = self.rows.borrow().iter().find(|r| r.name == name) {
            set_value(&r.value, value);
        }
    }

    /// Changes against `loaded`: `("feature:<name>", Some(value))` to set, `None` to remove.
    pub fn changes(&self, loaded: &[(String, String)]) -> Vec<(String, Option<String>)> {
        let rows = self.rows.borrow();
        let mut out = Vec::new();
        for (name, old) in loaded.iter().filter(|(n, _)| self.in_scope(n)) {
            match rows.iter().find(|r| &r.name == name && !r.removed.get()) {
                None => out.push((format!("feature:{name}"), None)),
                Some(r) => {
                    let new = value_of(&r.value, self.services, old);
                    if &new != old {
                        out.push((format!("feature:{name}"), Some(new)));
                    }
                }
            }
        }
        for r in rows.iter().filter(|r| !r.removed.get()) {
            if !loaded.iter().any(|(n, _)| n == &r.name) {
                out.push((
                    format!("feature:{}", r.name),
                    Some(value_of(&r.value, self.services, "")),
                ));
            }
        }
        out
    }
}

/// Qubes reads a service as on when its feature is set and not empty or `0`.
fn truthy(v: &str) -> bool {
    !v.is_empty() && v != "0"
}

fn set_value(w: &gtk::Widget, value: &str) {
    if let Some(c) = w.downcast_ref::<gtk::CheckButton>() {
        c.set_active(truthy(value));
    } else if let Some(e) = w.downcast_ref::<gtk::Entry>() {
        e.set_text(value);
    }
}

/// The row's value; a service keeps its old spelling while its on/off meaning is unchanged.
fn value_of(w: &gtk::Widget, service: bool, old: &str) -> String {
    if service {
        let on = w
            .downcast_ref::<gtk::CheckButton>()
            .is_some_and(|c| c.is_active());
        if on == truthy(old) && !old.is_empty() {
            return old.to_string();
        }
        return if on { "1".into() } else { String::new() };
    }
    w.downcast_ref::<gtk::Entry>()
        .map(|e| e.text().to_string())
        .unwrap_or_default()
}
