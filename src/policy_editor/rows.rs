//! The rule table: one row per line of the file; a rule's columns are entries (with
//! completion for qube names and tokens) and an action choice; comments and directives show
//! as they are (edit them in the text view). Add, duplicate, move and delete act on the
//! selected row, by button or key.

use relm4::gtk;
use relm4::gtk::prelude::*;

use super::model::{Line, RuleLine};
use super::{Ui, mark_dirty};
use crate::a11y;
use crate::i18n::tr;

const ACTIONS: [&str; 3] = ["allow", "deny", "ask"];

/// The page: a toolbar over the table.
pub(super) fn rules_page(ui: &Ui) -> gtk::Box {
    let page = gtk::Box::new(gtk::Orientation::Vertical, 6);
    let bar = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    bar.set_margin_start(6);
    let tool = |icon: &str, name: String, keys: &str, act: fn(&Ui)| {
        let b = gtk::Button::from_icon_name(icon);
        b.set_tooltip_text(Some(&format!("{name} ({keys})")));
        a11y::set_name(&b, &name);
        let ui = ui.clone();
        b.connect_clicked(move |_| act(&ui));
        bar.append(&b);
    };
    tool("list-add-symbolic", tr("Add a rule"), "Ctrl+N", add);
    tool(
        "edit-copy-symbolic",
        tr("Duplicate the rule"),
        "Ctrl+D",
        duplicate,
    );
    tool("go-up-symbolic", tr("Move the rule up"), "Alt+Up", |ui| {
        shift(ui, -1)
    });
    tool(
        "go-down-symbolic",
        tr("Move the rule down"),
        "Alt+Down",
        |ui| shift(ui, 1),
    );
    tool(
        "user-trash-symbolic",
        tr("Delete the rule"),
        "Ctrl+Delete",
        delete,
    );
    page.append(&bar);
    let keys = gtk::ShortcutController::new();
    keys.set_scope(gtk::ShortcutScope::Managed);
    for (trigger, act) in [
        ("<Control>n", add as fn(&Ui)),
        ("<Control>d", duplicate),
        ("<Alt>Up", |ui: &Ui| shift(ui, -1)),
        ("<Alt>Down", |ui: &Ui| shift(ui, 1)),
        ("<Control>Delete", delete),
    ] {
        let ui = ui.clone();
        keys.add_shortcut(gtk::Shortcut::new(
            gtk::ShortcutTrigger::parse_string(trigger),
            Some(gtk::CallbackAction::new(move |_, _| {
                act(&ui);
                gtk::glib::Propagation::Stop
            })),
        ));
    }
    page.add_controller(keys);
    let header = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    header.set_margin_start(12);
    for (title, width) in [
        (tr("Service"), 170),
        (tr("Argument"), 80),
        (tr("Source"), 130),
        (tr("Target"), 130),
        (tr("Action"), 90),
        (tr("Parameters"), 150),
    ] {
        let l = gtk::Label::new(Some(&title));
        l.set_xalign(0.0);
        l.set_width_request(width);
        l.add_css_class("heading");
        header.append(&l);
    }
    page.append(&header);
    page.append(&super::scrolled(&ui.rules));
    page
}

/// The selected line, if any.
fn selected(ui: &Ui) -> Option<usize> {
    ui.rules
        .selected_row()
        .and_then(|r| usize::try_from(r.index()).ok())
}

fn select(ui: &Ui, i: usize) {
    if let Some(row) = i32::try_from(i).ok().and_then(|i| ui.rules.row_at_index(i)) {
        ui.rules.select_row(Some(&row));
        row.grab_focus();
    }
}

fn add(ui: &Ui) {
    let at = selected(ui).map_or(ui.state.borrow().lines.len(), |i| i + 1);
    ui.state
        .borrow_mut()
        .lines
        .insert(at, Line::Rule(RuleLine::new()));
    changed(ui, Some(at));
}

fn duplicate(ui: &Ui) {
    let Some(i) = selected(ui) else { return };
    let line = ui.state.borrow().lines[i].clone();
    ui.state.borrow_mut().lines.insert(i + 1, line);
    changed(ui, Some(i + 1));
}

fn shift(ui: &Ui, by: isize) {
    let Some(i) = selected(ui) else { return };
    let Some(j) = i.checked_add_signed(by) else {
        return;
    };
    if j >= ui.state.borrow().lines.len() {
        return;
    }
    ui.state.borrow_mut().lines.swap(i, j);
    changed(ui, Some(j));
}

fn delete(ui: &Ui) {
    let Some(i) = selected(ui) else { return };
    let len = {
        let mut st = ui.state.borrow_mut();
        st.lines.remove(i);
        st.lines.len()
    };
    changed(ui, (len > 0).then(|| i.min(len - 1)));
}

fn changed(ui: &Ui, select_at: Option<usize>) {
    rebuild(ui);
    mark_dirty(ui);
    if let Some(i) = select_at {
        select(ui, i);
    }
}

/// Rebuilds the table from the state.
pub(super) fn rebuild(ui: &Ui) {
    while let Some(row) = ui.rules.row_at_index(0) {
        ui.rules.remove(&row);
    }
    let lines = ui.state.borrow().lines.clone();
    for (i, line) in lines.iter().enumerate() {
        let row = gtk::ListBoxRow::new();
        match line {
            Line::Rule(r) => row.set_child(Some(&rule_row(ui, i, r))),
            Line::Other(text) => {
                let l = gtk::Label::new(Some(text));
                l.set_xalign(0.0);
                l.add_css_class("dim-label");
                l.add_css_class("monospace");
                l.set_margin_start(12);
                l.set_margin_top(4);
                l.set_margin_bottom(4);
                row.set_child(Some(&l));
                // Translators: a line of a policy file that is not a rule; {} is its number.
                a11y::set_name(&row, &tr("Line {}").replacen("{}", &(i + 1).to_string(), 1));
            }
        }
        ui.rules.append(&row);
    }
}

fn rule_row(ui: &Ui, i: usize, r: &RuleLine) -> gtk::Box {
    let line = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    line.set_margin_start(6);
    line.set_margin_top(3);
    line.set_margin_bottom(3);
    let n = (i + 1).to_string();
    let field = |value: &str,
                 width: i32,
                 column: String,
                 complete: bool,
                 set: fn(&mut RuleLine, String)| {
        let e = gtk::Entry::new();
        e.set_text(value);
        e.set_width_request(width);
        // Translators: an entry of the rule table, e.g. "Target, line 3".
        a11y::set_name(
            &e,
            &tr("{column}, line {n}")
                .replacen("{column}", &column, 1)
                .replacen("{n}", &n, 1),
        );
        if complete {
            let c = gtk::EntryCompletion::new();
            c.set_model(Some(&ui.completion));
            c.set_text_column(0);
            c.set_minimum_key_length(1);
            e.set_completion(Some(&c));
        }
        let ui = ui.clone();
        e.connect_changed(move |e| {
            if let Some(Line::Rule(r)) = ui.state.borrow_mut().lines.get_mut(i) {
                set(r, e.text().to_string());
            }
            mark_dirty(&ui);
        });
        line.append(&e);
    };
    field(&r.service, 170, tr("Service"), false, |r, v| r.service = v);
    field(&r.argument, 80, tr("Argument"), false, |r, v| {
        r.argument = v
    });
    field(&r.source, 130, tr("Source"), true, |r, v| r.source = v);
    field(&r.target, 130, tr("Target"), true, |r, v| r.target = v);
    let mut choices: Vec<&str> = ACTIONS.to_vec();
    if !ACTIONS.contains(&r.action.as_str()) {
        // Kept as written, so the daemon reports it rather than the editor hiding it.
        choices.push(&r.action);
    }
    let action = gtk::DropDown::from_strings(&choices);
    action.set_selected(choices.iter().position(|a| *a == r.action).unwrap_or(0) as u32);
    action.set_width_request(90);
    a11y::set_name(
        &action,
        &tr("{column}, line {n}")
            .replacen("{column}", &tr("Action"), 1)
            .replacen("{n}", &n, 1),
    );
    {
        let ui = ui.clone();
        let choices: Vec<String> = choices.iter().map(|s| s.to_string()).collect();
        action.connect_selected_notify(move |d| {
            if let (Some(Line::Rule(r)), Some(a)) = (
                ui.state.borrow_mut().lines.get_mut(i),
                choices.get(d.selected() as usize),
            ) {
                r.action = a.clone();
            }
            mark_dirty(&ui);
        });
    }
    line.append(&action);
    field(&r.params, 150, tr("Parameters"), false, |r, v| r.params = v);
    line
}

/// Marks the row of a line (from 1) the daemon refused, and selects it.
pub(super) fn show_error(ui: &Ui, line: usize) {
    clear_error(ui);
    // GTK counts rows and lines from 0 in `i32`; a line past that is past the end.
    let index = i32::try_from(line).map_or(i32::MAX, |l| l - 1);
    if let Some(row) = ui.rules.row_at_index(index) {
        row.add_css_class("error");
        ui.rules.select_row(Some(&row));
    }
    if ui.pages.visible_child_name().as_deref() == Some("text") {
        let b = ui.text.buffer();
        if let Some(start) = b.iter_at_line(index) {
            let mut end = start;
            end.forward_to_line_end();
            b.select_range(&start, &end);
        }
    }
}

/// Clears the error marks.
pub(super) fn clear_error(ui: &Ui) {
    let mut i = 0;
    while let Some(row) = ui.rules.row_at_index(i) {
        row.remove_css_class("error");
        i += 1;
    }
}
