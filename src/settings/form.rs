//! Between the widgets of a settings dialog and the data: putting loaded values in, reading
//! the edits back as changes, and checking what was typed before anything is sent.

use std::collections::BTreeMap;

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use super::apply::Change;
use super::fields::{KEPT_MAXMEM, Kind, PSEUDO};
use super::load::Loaded;
use super::{Editor, Settings, Target, Widgets};
use crate::i18n::tr;

impl Editor {
    /// The text of an entry or a spin button, as typed.
    pub fn text(&self) -> String {
        self.widget
            .downcast_ref::<gtk::Editable>()
            .map(|e| e.text().to_string())
            .unwrap_or_default()
    }
}

fn choice_values(loaded: &Loaded, prop: &str) -> Vec<(String, String)> {
    loaded.choices.get(prop).cloned().unwrap_or_default()
}

/// The edits the widgets hold compared with what was loaded.
fn collect_changes(loaded: &Loaded, w: &Widgets) -> Vec<Change> {
    let mut out = Vec::new();
    let balancing = loaded.props.contains_key("balancing");
    for (prop, ed) in &w.editors {
        let Some(current) = loaded.props.get(*prop) else {
            continue;
        };
        // Rows standing for features (and maxmem under the balancing switch): below.
        if PSEUDO.contains(prop) || (*prop == "maxmem" && balancing) {
            continue;
        }
        let new: Option<String> = match ed.kind {
            Kind::Flag => {
                let active = ed
                    .widget
                    .downcast_ref::<gtk::Switch>()
                    .is_some_and(|c| c.is_active());
                let was = current.value == "True";
                (active != was).then(|| {
                    if active {
                        "True".into()
                    } else {
                        "False".into()
                    }
                })
            }
            Kind::Number => {
                // What is typed, as the number it means (validate() has said if it is none).
                let text = ed.text();
                let number = text.trim().parse::<i64>().map(|n| n.to_string());
                match number {
                    Ok(n) => (n != current.value).then_some(n),
                    Err(_) => (text != current.value).then_some(text),
                }
            }
            Kind::Text => {
                let text = ed.text();
                (text != current.value).then_some(text)
            }
            Kind::Choice => {
                let Some(dd) = ed.widget.downcast_ref::<adw::ComboRow>() else {
                    continue;
                };
                let values = choice_values(loaded, prop);
                let Some((value, _)) = values.get(dd.selected() as usize) else {
                    continue;
                };
                if value.is_empty() {
                    if !current.is_default {
                        out.push((prop.to_string(), None));
                    }
                    continue;
                }
                let value = if value == "\u{0}none" {
                    String::new()
                } else {
                    value.clone()
                };
                (current.is_default || value != current.value).then_some(value)
            }
        };
        if let Some(v) = new {
            out.push((prop.to_string(), Some(v)));
        }
    }
    out.extend(pseudo_changes(loaded, w));
    out
}

/// Whether the switch of row `prop` is on (`None`: no such row).
fn switch_on(w: &Widgets, prop: &str) -> Option<bool> {
    w.editors
        .get(prop)?
        .widget
        .downcast_ref::<gtk::Switch>()
        .map(|s| s.is_active())
}

/// What the rows standing for features and maxmem change: memory balancing (off = `maxmem`
/// 0, the old value kept in a feature, as the reference manager does), idle shutdown (the
/// `service.shutdown-idle` feature) and prohibit-start (its value is the reason).
fn pseudo_changes(loaded: &Loaded, w: &Widgets) -> Vec<Change> {
    let mut out = Vec::new();
    let feature = |name: &str| {
        loaded
            .features
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.clone())
    };
    if let (Some(on), Some(was), Some(old)) = (
        switch_on(w, "balancing"),
        loaded.props.get("balancing").map(|p| p.value == "True"),
        loaded.props.get("maxmem"),
    ) {
        let typed = w
            .editors
            .get("maxmem")
            .map(|e| e.text())
            .unwrap_or_default();
        let new = if on {
            typed
                .trim()
                .parse::<i64>()
                .map(|n| n.to_string())
                .unwrap_or(typed)
        } else {
            "0".to_string()
        };
        if new != old.value {
            out.push(("maxmem".to_string(), Some(new)));
        }
        if was && !on {
            out.push((format!("feature:{KEPT_MAXMEM}"), Some(old.value.clone())));
        }
    }
    if loaded.props.contains_key("shutdown-idle")
        && let Some(on) = switch_on(w, "shutdown-idle")
    {
        let old = feature("service.shutdown-idle");
        let was = old.as_deref().is_some_and(|v| !v.is_empty() && v != "0");
        if on != was {
            let new = on.then(|| "1".to_string());
            out.push(("feature:service.shutdown-idle".to_string(), new));
        }
    }
    if loaded.props.contains_key("prohibit-start")
        && let Some(on) = switch_on(w, "prohibit-start")
    {
        let reason = w
            .editors
            .get("prohibit-start-reason")
            .map(|e| e.text().trim().to_string())
            .unwrap_or_default();
        let new = on.then_some(reason);
        if new != feature("prohibit-start") {
            out.push(("feature:prohibit-start".to_string(), new));
        }
    }
    out
}

/// Turns to the page of the first field with an error (the Apply button is on every page; the
/// error might be on another), in the order of the pages, and unfolds the row's expander.
pub(super) fn show_first_error(errors: &BTreeMap<String, String>, w: &Widgets) {
    let order = |page: &adw::PreferencesPage| {
        let mut n = 0;
        let mut p = page.prev_sibling();
        while let Some(s) = p {
            n += 1;
            p = s.prev_sibling();
        }
        n
    };
    let first = w
        .editors
        .iter()
        .filter(|(prop, _)| errors.contains_key(**prop))
        .map(|(_, ed)| ed)
        .min_by_key(|ed| order(&ed.page));
    if let Some(ed) = first {
        w.window.set_visible_page(&ed.page);
        if let Some(expander) = ed
            .row
            .ancestor(adw::ExpanderRow::static_type())
            .and_downcast::<adw::ExpanderRow>()
        {
            expander.set_expanded(true);
        }
    }
}

/// Why a row cannot be used now, if it cannot.
pub(super) fn note(loaded: &Loaded, prop: &str) -> Option<String> {
    // The daemon changes a template only while the qube is halted.
    (prop == "template" && loaded.running).then(|| tr("Shut the qube down to change its template."))
}

/// What is wrong with the values typed, by property; empty when Apply may go ahead.
pub fn validate(model: &Settings, w: &Widgets) -> BTreeMap<String, String> {
    let mut errors = BTreeMap::new();
    let Some(loaded) = &model.loaded else {
        return errors;
    };
    let mut numbers = BTreeMap::new();
    for (prop, ed) in &w.editors {
        let Some(current) = loaded.props.get(*prop) else {
            continue;
        };
        if ed.kind != Kind::Number {
            continue;
        }
        let Some((mut min, max)) = crate::limits::number_range(prop) else {
            continue;
        };
        if prop.starts_with("volume:") {
            min = current.value.parse().unwrap_or(min);
            if ed.text().trim().parse::<i64>().is_ok_and(|n| n < min) {
                errors.insert(
                    prop.to_string(),
                    tr("Storage cannot be made smaller than it is."),
                );
                continue;
            }
        }
        match crate::limits::parse_number(&ed.text(), min, max) {
            Ok(n) => {
                numbers.insert(*prop, n);
            }
            Err(e) => {
                errors.insert(prop.to_string(), e);
            }
        }
    }
    // Memory balancing gives a qube between its initial and its maximum memory.
    let balancing = switch_on(w, "balancing").unwrap_or(true);
    if !balancing {
        errors.remove("maxmem");
    }
    if let (Some(memory), Some(maxmem)) = (numbers.get("memory"), numbers.get("maxmem"))
        && balancing
        && maxmem < memory
    {
        errors.insert(
            "maxmem".into(),
            tr("At least the initial memory (%d MiB).").replacen("%d", &memory.to_string(), 1),
        );
    }
    // A prohibited start says why.
    if loaded.props.contains_key("prohibit-start")
        && switch_on(w, "prohibit-start") == Some(true)
        && w.editors
            .get("prohibit-start-reason")
            .is_some_and(|e| e.text().trim().is_empty())
    {
        errors.insert(
            "prohibit-start-reason".into(),
            tr("Say why: the reason is shown to whoever tries to start it."),
        );
    }
    errors
}

/// Puts loaded values into the widgets.
pub(super) fn fill(loaded: &Loaded, w: &Widgets) {
    for (prop, ed) in &w.editors {
        let Some(v) = loaded.props.get(*prop) else {
            continue;
        };
        ed.row.set_visible(true);
        match ed.kind {
            Kind::Flag => {
                if let Some(c) = ed.widget.downcast_ref::<gtk::Switch>() {
                    c.set_active(v.value == "True");
                    ed.row.set_sensitive(note(loaded, prop).is_none());
                }
            }
            Kind::Number => {
                if let Some(spin) = ed.widget.downcast_ref::<gtk::SpinButton>() {
                    let mut value: f64 = v.value.parse().unwrap_or(0.0);
                    if *prop == "maxmem" && value == 0.0 {
                        // Out of memory balancing: offer the value it had (kept in a feature)
                        // for when it is turned on again, or the system's usual 4000 MiB.
                        value = loaded
                            .features
                            .iter()
                            .find(|(f, _)| f == KEPT_MAXMEM)
                            .and_then(|(_, m)| m.parse().ok())
                            .filter(|m: &f64| *m > 0.0)
                            .unwrap_or(4000.0);
                    }
                    if prop.starts_with("volume:") {
                        // Storage only grows.
                        spin.set_range(value, spin.adjustment().upper());
                    }
                    ed.keep_text.set(false);
                    spin.set_value(value);
                    spin.set_text(&value.to_string());
                }
            }
            Kind::Text => {
                if let Some(e) = ed.widget.downcast_ref::<gtk::Entry>() {
                    e.set_text(&v.value);
                }
            }
            Kind::Choice => {
                let Some(dd) = ed.widget.downcast_ref::<adw::ComboRow>() else {
                    continue;
                };
                let values = choice_values(loaded, prop);
                let texts: Vec<&str> = values.iter().map(|(_, t)| t.as_str()).collect();
                dd.set_model(Some(&gtk::StringList::new(&texts)));
                // After the model: a combo row makes itself sensitive when it has choices. The
                // daemon changes a template only while the qube is halted.
                dd.set_sensitive(note(loaded, prop).is_none() && !values.is_empty());
                let pos = if v.is_default {
                    values.iter().position(|(k, _)| k.is_empty())
                } else if v.value.is_empty() {
                    values.iter().position(|(k, _)| k == "\u{0}none")
                } else {
                    values.iter().position(|(k, _)| *k == v.value)
                };
                if let Some(p) = pos {
                    dd.set_selected(p as u32);
                }
            }
        }
    }
    follow_switches(w);
    if let (Some(name), Some(icon)) = (&w.name_row, &w.qube_icon) {
        name.set_subtitle(&loaded.name);
        let colour = loaded
            .props
            .get("label")
            .and_then(|l| loaded.colours.get(&l.value))
            .cloned()
            .unwrap_or_default();
        icon.set_paintable(Some(&crate::resources::qube_texture(loaded.kind, &colour)));
        icon.set_tooltip_text(Some(&loaded.kind.title()));
    }
    if let Some(rename) = &w.rename {
        // As the reference: a qube is renamed while it is halted.
        rename.set_sensitive(!loaded.running);
        rename.set_tooltip_text(Some(&if loaded.running {
            tr("Shut the qube down to rename it.")
        } else {
            tr("Give the qube another name (it is copied to the new name, then removed)")
        }));
    }
    w.notes.buffer().set_text(&loaded.notes);
    w.services.fill(&loaded.features);
    w.features.fill(&loaded.features);
    if let Some(rules) = &loaded.firewall {
        w.firewall.fill(rules);
    }
    w.firewall.root.set_sensitive(loaded.firewall.is_some());
    if let Some(d) = &loaded.devices {
        w.devices.fill(d);
    }
    w.devices.root.set_sensitive(loaded.devices.is_some());
}

/// What Apply sends (used by the Apply handler and the tests).
pub fn pending(model: &Settings, w: &Widgets) -> (Vec<Change>, Option<String>) {
    let Some(loaded) = &model.loaded else {
        return (Vec::new(), None);
    };
    let buffer = w.notes.buffer();
    let text = buffer
        .text(&buffer.start_iter(), &buffer.end_iter(), false)
        .to_string();
    let global = model.target == Target::Global;
    let notes = (!global && text != loaded.notes).then_some(text);
    let mut changes = collect_changes(loaded, w);
    if !global {
        if let Some(d) = &loaded.devices {
            changes.extend(w.devices.changes(d));
        }
        changes.extend(w.services.changes(&loaded.features));
        changes.extend(w.features.changes(&loaded.features));
        if let Some(old) = &loaded.firewall {
            let mut rules = w.firewall.rules();
            if rules.is_empty() {
                // Limited to nothing: an explicit drop (an empty list cannot be set).
                rules.push("action=drop".into());
            }
            if &rules != old {
                changes.push(("firewall".into(), Some(rules.join("\n"))));
            }
        }
    }
    (changes, notes)
}

/// Rows that only make sense with a switch on follow it: the maximum memory with memory
/// balancing, the reason with prohibit-start.
pub(super) fn follow_switches(w: &Widgets) {
    for (switch, row) in [
        ("balancing", "maxmem"),
        ("prohibit-start", "prohibit-start-reason"),
    ] {
        if let (Some(on), Some(row)) = (switch_on(w, switch), w.editors.get(row)) {
            row.row.set_sensitive(on);
        }
    }
}
