//! The policy editor: the policy files of dom0 through the Policy Admin API ([`backend`]),
//! each as a table of rules (service, argument, source, target, action, parameters) or as
//! text; rules added, duplicated, moved and deleted; every save validated by the daemon and
//! guarded by the file's token, so a concurrent change is reported and never overwritten.
//! Legacy (R4.0) files are shown read only, with what they mean in the current format and an
//! offer to convert them. "What would happen?" explains a call for the saved policy and for
//! the unsaved edit. Opened from the Qube Manager's menu and by `qubes-policy-editor-gui`.

pub mod backend;
pub mod model;
mod rows;
mod simulate;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use crate::a11y;
use crate::i18n::tr;
use crate::widgets::background;
use backend::{AdminFailure, Backend, Kind};
use model::Line;

/// What the editor needs to know besides the files.
#[derive(Debug, Clone)]
pub struct EditorInit {
    /// The Policy Admin API.
    pub backend: Backend,
    /// Qube names, for completion.
    pub qubes: Vec<String>,
    /// Tags in use, for completion.
    pub tags: Vec<String>,
    /// The file to open first (`NAME` or `include/NAME`).
    pub open: Option<String>,
    /// The policy directory the admin service edits (for "What would happen?").
    pub policy_dir: PathBuf,
}

impl EditorInit {
    /// Defaults from the environment (`QREXEC_POLICY_DIR`, as the admin service reads it).
    pub fn from_env(qubes: Vec<String>, tags: Vec<String>, open: Option<String>) -> EditorInit {
        EditorInit {
            backend: Backend::from_env(),
            qubes,
            tags,
            open,
            policy_dir: std::env::var_os("QREXEC_POLICY_DIR")
                .map_or_else(|| "/etc/qubes/policy.d".into(), PathBuf::from),
        }
    }
}

/// Which file is open.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    None,
    File {
        kind: Kind,
        name: String,
        token: String,
    },
    Legacy {
        name: String,
        meaning: String,
    },
}

/// The editor's state, shared by its widgets.
struct State {
    init: EditorInit,
    open: Open,
    lines: Vec<Line>,
}

/// The widgets the handlers reach.
#[derive(Clone)]
struct Ui {
    files: gtk::ListBox,
    pages: gtk::Stack,
    rules: gtk::ListBox,
    text: gtk::TextView,
    legacy_text: gtk::TextView,
    status: gtk::Label,
    save: gtk::Button,
    title: adw::WindowTitle,
    completion: gtk::ListStore,
    state: Rc<RefCell<State>>,
}

/// Opens the editor from the Qube Manager: qube names and tags for completion are read from
/// its daemon first (off the main thread).
pub fn open_for(parent: &gtk::Window, client: &qubes_api::Client) {
    let client = client.clone();
    let parent = parent.clone();
    background(
        move || {
            let names: Vec<String> = client
                .vm_list()
                .map(|l| l.iter().map(|q| q.name.clone()).collect())
                .unwrap_or_default();
            let mut tags: Vec<String> = names
                .iter()
                .filter_map(|n| client.call("admin.vm.tag.List", n, "", b"").ok())
                .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
                .collect();
            tags.sort();
            tags.dedup();
            (names, tags)
        },
        move |(names, tags)| {
            open(Some(&parent), EditorInit::from_env(names, tags, None));
        },
    );
}

/// Opens the editor window (transient for `parent`, if any).
pub fn open(parent: Option<&gtk::Window>, init: EditorInit) -> adw::Window {
    let window = adw::Window::builder()
        .title(tr("Policy editor"))
        .default_width(1000)
        .default_height(640)
        .build();
    if let Some(p) = parent {
        window.set_transient_for(Some(p));
    }
    let title = adw::WindowTitle::new(&tr("Policy editor"), "");
    let header = adw::HeaderBar::new();
    header.set_title_widget(Some(&title));
    let save = gtk::Button::with_label(&tr("Save"));
    save.add_css_class("suggested-action");
    save.set_tooltip_text(Some(&tr("Save (Ctrl+S)")));
    save.set_sensitive(false);
    header.pack_end(&save);
    let reload = gtk::Button::from_icon_name("view-refresh-symbolic");
    reload.set_tooltip_text(Some(&tr("Reload the file")));
    a11y::set_name(&reload, &tr("Reload the file"));
    header.pack_end(&reload);

    let files = gtk::ListBox::new();
    files.add_css_class("navigation-sidebar");
    a11y::set_name(&files, &tr("Policy files"));
    let side = gtk::ScrolledWindow::builder()
        .child(&files)
        .hscrollbar_policy(gtk::PolicyType::Never)
        .width_request(230)
        .build();

    let status = gtk::Label::new(None);
    status.set_xalign(0.0);
    status.set_wrap(true);
    status.set_selectable(true);
    status.set_margin_start(12);
    status.set_margin_end(12);

    let rules = gtk::ListBox::new();
    rules.set_selection_mode(gtk::SelectionMode::Single);
    a11y::set_name(&rules, &tr("Rules"));
    let text = gtk::TextView::builder().monospace(true).build();
    a11y::set_name(&text, &tr("Policy text"));
    let legacy_text = gtk::TextView::builder()
        .monospace(true)
        .editable(false)
        .build();
    a11y::set_name(&legacy_text, &tr("Meaning in the current format"));

    let completion = gtk::ListStore::new(&[gtk::glib::Type::STRING]);
    let state = Rc::new(RefCell::new(State {
        init: init.clone(),
        open: Open::None,
        lines: Vec::new(),
    }));
    let pages = gtk::Stack::new();
    let ui = Ui {
        files,
        pages: pages.clone(),
        rules,
        text,
        legacy_text,
        status,
        save: save.clone(),
        title,
        completion,
        state,
    };
    fill_completion(&ui, &init);

    pages.add_titled(&rows::rules_page(&ui), Some("rules"), &tr("Rules"));
    pages.add_titled(&scrolled(&ui.text), Some("text"), &tr("Text"));
    pages.add_named(&legacy_page(&ui), Some("legacy"));
    let switcher = gtk::StackSwitcher::new();
    switcher.set_stack(Some(&pages));
    switcher.set_halign(gtk::Align::Center);
    // Switching views carries the edit across: the text is the table's, and back.
    pages.connect_visible_child_name_notify({
        let ui = ui.clone();
        move |p| match p.visible_child_name().as_deref() {
            Some("text") => {
                let text = model::serialize(&ui.state.borrow().lines);
                ui.text.buffer().set_text(&text);
            }
            Some("rules") => {
                let b = ui.text.buffer();
                let text = b.text(&b.start_iter(), &b.end_iter(), false).to_string();
                if model::serialize(&ui.state.borrow().lines) != text {
                    ui.state.borrow_mut().lines = model::parse(&text);
                    rows::rebuild(&ui);
                }
            }
            _ => {}
        }
    });
    ui.text.buffer().connect_changed({
        let ui = ui.clone();
        move |_| {
            if ui.pages.visible_child_name().as_deref() == Some("text") {
                mark_dirty(&ui);
            }
        }
    });

    let right = gtk::Box::new(gtk::Orientation::Vertical, 6);
    right.append(&switcher);
    right.append(&ui.status);
    pages.set_vexpand(true);
    right.append(&pages);
    right.append(&simulate::panel(&ui));
    let paned = gtk::Paned::new(gtk::Orientation::Horizontal);
    paned.set_start_child(Some(&sidebar(&ui, &side)));
    paned.set_end_child(Some(&right));
    paned.set_position(240);
    let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
    content.append(&header);
    content.append(&paned);
    window.set_content(Some(&content));

    ui.files.connect_row_activated({
        let ui = ui.clone();
        move |_, row| open_row(&ui, row)
    });
    ui.files.connect_row_selected({
        let ui = ui.clone();
        move |_, row| {
            if let Some(row) = row {
                open_row(&ui, row);
            }
        }
    });
    save.connect_clicked({
        let ui = ui.clone();
        move |_| save_file(&ui)
    });
    reload.connect_clicked({
        let ui = ui.clone();
        move |_| reopen(&ui)
    });
    let keys = gtk::ShortcutController::new();
    keys.set_scope(gtk::ShortcutScope::Managed);
    keys.add_shortcut(gtk::Shortcut::new(
        gtk::ShortcutTrigger::parse_string("<Control>s"),
        Some(gtk::CallbackAction::new({
            let ui = ui.clone();
            move |_, _| {
                save_file(&ui);
                gtk::glib::Propagation::Stop
            }
        })),
    ));
    window.add_controller(keys);
    load_list(&ui, init.open.clone());
    window.present();
    window
}

/// The file list, with a new file's name and the removal of the open one under it.
fn sidebar(ui: &Ui, list: &gtk::ScrolledWindow) -> gtk::Box {
    let side = gtk::Box::new(gtk::Orientation::Vertical, 6);
    list.set_vexpand(true);
    side.append(list);
    let new_name = gtk::Entry::new();
    new_name.set_placeholder_text(Some("40-mine"));
    a11y::set_name(&new_name, &tr("New file name"));
    new_name.set_margin_start(6);
    new_name.set_margin_end(6);
    let create = gtk::Button::with_label(&tr("New file"));
    let remove = gtk::Button::with_label(&tr("Remove file"));
    remove.add_css_class("destructive-action");
    let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    buttons.set_margin_start(6);
    buttons.set_margin_bottom(6);
    buttons.append(&create);
    buttons.append(&remove);
    side.append(&new_name);
    side.append(&buttons);
    let start = {
        let ui = ui.clone();
        let new_name = new_name.clone();
        move || {
            let name = new_name.text().trim().to_string();
            if name.is_empty() {
                return;
            }
            // Opened empty with the token `new`: saving creates it (and fails if it exists).
            let (kind, name) = split_key(&name);
            show_file(&ui, kind, name, "new".into(), String::new());
            ui.save.set_sensitive(true);
            new_name.set_text("");
        }
    };
    create.connect_clicked({
        let start = start.clone();
        move |_| start()
    });
    new_name.connect_activate(move |_| start());
    remove.connect_clicked({
        let ui = ui.clone();
        move |_| ask_remove(&ui)
    });
    side
}

/// Removes the open file after asking; the token makes sure it is the version shown.
fn ask_remove(ui: &Ui) {
    let Open::File { kind, name, token } = ui.state.borrow().open.clone() else {
        return;
    };
    let dialog = adw::MessageDialog::new(
        Some(
            &ui.title
                .root()
                .and_downcast::<gtk::Window>()
                .unwrap_or_default(),
        ),
        Some(&tr("Remove this policy file?")),
        Some(&name),
    );
    dialog.add_response("cancel", &tr("Cancel"));
    dialog.add_response("remove", &tr("Remove file"));
    dialog.set_response_appearance("remove", adw::ResponseAppearance::Destructive);
    dialog.set_default_response(Some("cancel"));
    dialog.set_close_response("cancel");
    let ui = ui.clone();
    dialog.connect_response(None, move |_, response| {
        if response != "remove" {
            return;
        }
        let backend = ui.state.borrow().init.backend.clone();
        let (name, token) = (name.clone(), token.clone());
        let ui = ui.clone();
        background(
            move || backend.remove(kind, &name, &token),
            move |done| match done {
                Ok(()) => {
                    ui.state.borrow_mut().open = Open::None;
                    ui.state.borrow_mut().lines.clear();
                    rows::rebuild(&ui);
                    ui.save.set_sensitive(false);
                    set_status(&ui, &tr("Removed."), false);
                    load_list(&ui, None);
                }
                Err(e) => set_status(&ui, &failure_text(&e), true),
            },
        );
    });
    dialog.present();
}

fn scrolled(child: &impl IsA<gtk::Widget>) -> gtk::ScrolledWindow {
    gtk::ScrolledWindow::builder()
        .child(child)
        .vexpand(true)
        .build()
}

fn fill_completion(ui: &Ui, init: &EditorInit) {
    let mut words: Vec<String> = ["@anyvm", "@adminvm", "@default", "@dispvm", "*", "dom0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    words.extend(["AppVM", "TemplateVM", "StandaloneVM", "DispVM"].map(|t| format!("@type:{t}")));
    words.extend(init.tags.iter().map(|t| format!("@tag:{t}")));
    words.extend(init.qubes.iter().cloned());
    words.extend(init.qubes.iter().map(|q| format!("@dispvm:{q}")));
    for w in words {
        ui.completion.set(&ui.completion.append(), &[(0, &w)]);
    }
}

/// The legacy page: what the file means now, and the offer to convert it.
fn legacy_page(ui: &Ui) -> gtk::Box {
    let page = gtk::Box::new(gtk::Orientation::Vertical, 6);
    let note = gtk::Label::new(Some(&tr(
        "This is a legacy (R4.0) policy file: it is read only here. In the current format it means:",
    )));
    note.set_wrap(true);
    note.set_xalign(0.0);
    page.append(&note);
    page.append(&scrolled(&ui.legacy_text));
    let convert = gtk::Button::with_label(&tr("Convert to a policy file"));
    convert.set_halign(gtk::Align::Start);
    convert.connect_clicked({
        let ui = ui.clone();
        move |_| convert_legacy(&ui)
    });
    page.append(&convert);
    page
}

fn set_status(ui: &Ui, text: &str, error: bool) {
    ui.status.set_text(text);
    if error {
        ui.status.add_css_class("error");
    } else {
        ui.status.remove_css_class("error");
    }
}

fn mark_dirty(ui: &Ui) {
    if matches!(ui.state.borrow().open, Open::File { .. }) {
        ui.save.set_sensitive(true);
    }
}

/// Lists the files (policy, include, legacy) and opens `want`, if given.
fn load_list(ui: &Ui, want: Option<String>) {
    let backend = ui.state.borrow().init.backend.clone();
    let ui = ui.clone();
    background(
        move || {
            (
                backend.list(Kind::Policy),
                backend.list(Kind::Include),
                backend.legacy_files(),
            )
        },
        move |(policy, include, legacy)| {
            while let Some(row) = ui.files.row_at_index(0) {
                ui.files.remove(&row);
            }
            let mut select = None;
            let mut add = |key: String, shown: String| {
                let row = gtk::ListBoxRow::new();
                let label = gtk::Label::new(Some(&shown));
                label.set_xalign(0.0);
                row.set_child(Some(&label));
                row.set_widget_name(&key);
                a11y::set_name(&row, &shown);
                if want.as_deref() == Some(key.as_str()) {
                    select = Some(row.clone());
                }
                ui.files.append(&row);
            };
            let mut failure = None;
            match policy {
                Ok(names) => names.into_iter().for_each(|n| add(n.clone(), n)),
                Err(e) => failure = Some(e),
            }
            if let Ok(names) = include {
                for n in names {
                    add(format!("include/{n}"), format!("include/{n}"));
                }
            }
            for (n, _) in legacy {
                // Translators: a legacy policy file in the list; {} is its name.
                add(
                    format!("legacy/{n}"),
                    tr("{} (legacy)").replacen("{}", &n, 1),
                );
            }
            if let Some(e) = failure {
                set_status(&ui, &failure_text(&e), true);
            }
            match (select, want) {
                (Some(row), _) => ui.files.select_row(Some(&row)),
                // A file that does not exist yet: start it empty.
                (None, Some(name)) if !name.starts_with("legacy/") => {
                    let (kind, name) = split_key(&name);
                    show_file(&ui, kind, name, "new".into(), String::new());
                }
                _ => {}
            }
        },
    );
}

fn split_key(key: &str) -> (Kind, String) {
    match key.strip_prefix("include/") {
        Some(n) => (Kind::Include, n.to_string()),
        None => (Kind::Policy, key.to_string()),
    }
}

fn failure_text(e: &AdminFailure) -> String {
    match e.class.as_str() {
        "PolicyAdminTokenException" => tr(
            "The file was changed elsewhere since it was opened. Your changes are not saved: reload to see the other version.",
        ),
        "" => tr("The policy service could not be reached: {}").replacen("{}", &e.message, 1),
        _ => e.message.clone(),
    }
}

fn open_row(ui: &Ui, row: &gtk::ListBoxRow) {
    let key = row.widget_name().to_string();
    let backend = ui.state.borrow().init.backend.clone();
    let ui = ui.clone();
    if let Some(name) = key.strip_prefix("legacy/") {
        let name = name.to_string();
        background(
            move || {
                let text = backend
                    .legacy_files()
                    .into_iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t)
                    .unwrap_or_default();
                let meaning = model::legacy_meaning(&backend.legacy_dir, &name, &text);
                (name, meaning)
            },
            move |(name, meaning)| {
                let meaning = meaning
                    .unwrap_or_else(|e| tr("This file is not valid: {}").replacen("{}", &e, 1));
                ui.legacy_text.buffer().set_text(&meaning);
                ui.title.set_subtitle(&name);
                ui.state.borrow_mut().open = Open::Legacy { name, meaning };
                ui.save.set_sensitive(false);
                ui.pages.set_visible_child_name("legacy");
                set_status(&ui, "", false);
            },
        );
        return;
    }
    let (kind, name) = split_key(&key);
    background(
        move || (backend.get(kind, &name), kind, name),
        move |(got, kind, name)| match got {
            Ok((token, text)) => show_file(&ui, kind, name, token, text),
            Err(e) => set_status(&ui, &failure_text(&e), true),
        },
    );
}

fn show_file(ui: &Ui, kind: Kind, name: String, token: String, text: String) {
    let shown = match kind {
        Kind::Policy => name.clone(),
        Kind::Include => format!("include/{name}"),
    };
    ui.title.set_subtitle(&shown);
    {
        let mut st = ui.state.borrow_mut();
        st.lines = model::parse(&text);
        st.open = Open::File { kind, name, token };
    }
    ui.text.buffer().set_text(&text);
    rows::rebuild(ui);
    if ui.pages.visible_child_name().as_deref() == Some("legacy") {
        ui.pages.set_visible_child_name("rules");
    }
    ui.save.set_sensitive(false);
    set_status(ui, "", false);
}

fn reopen(ui: &Ui) {
    let open = ui.state.borrow().open.clone();
    let key = match open {
        Open::File {
            kind: Kind::Policy,
            name,
            ..
        } => name,
        Open::File {
            kind: Kind::Include,
            name,
            ..
        } => format!("include/{name}"),
        Open::Legacy { name, .. } => format!("legacy/{name}"),
        Open::None => return load_list(ui, None),
    };
    load_list(ui, Some(key));
}

/// The text being edited, from whichever view shows it.
fn current_text(ui: &Ui) -> String {
    if ui.pages.visible_child_name().as_deref() == Some("text") {
        let b = ui.text.buffer();
        return b.text(&b.start_iter(), &b.end_iter(), false).to_string();
    }
    model::serialize(&ui.state.borrow().lines)
}

fn save_file(ui: &Ui) {
    let Open::File { kind, name, token } = ui.state.borrow().open.clone() else {
        return;
    };
    let text = current_text(ui);
    let backend = ui.state.borrow().init.backend.clone();
    let ui = ui.clone();
    ui.save.set_sensitive(false);
    set_status(&ui, &tr("Saving…"), false);
    background(
        move || {
            let saved = backend.replace(kind, &name, &token, &text);
            let fresh = saved.as_ref().ok().map(|_| backend.get(kind, &name));
            (saved, fresh, name)
        },
        move |(saved, fresh, name)| match saved {
            Ok(()) => {
                if let Some(Ok((token, _))) = fresh
                    && let Open::File { token: t, .. } = &mut ui.state.borrow_mut().open
                {
                    *t = token;
                }
                rows::clear_error(&ui);
                set_status(&ui, &tr("Saved {}.").replacen("{}", &name, 1), false);
                // A new file joins the list; it stays open as it is.
                let key = match kind {
                    Kind::Policy => name.clone(),
                    Kind::Include => format!("include/{name}"),
                };
                if !row_exists(&ui, &key) {
                    load_list(&ui, None);
                }
            }
            Err(e) => {
                ui.save.set_sensitive(true);
                let suffix = match kind {
                    Kind::Policy => format!("/{name}.policy"),
                    Kind::Include => format!("/include/{name}"),
                };
                if let Some(line) = model::error_line(&e.message, &suffix) {
                    rows::show_error(&ui, line);
                }
                set_status(&ui, &failure_text(&e), true);
            }
        },
    );
}

fn row_exists(ui: &Ui, key: &str) -> bool {
    let mut i = 0;
    while let Some(row) = ui.files.row_at_index(i) {
        if row.widget_name() == key {
            return true;
        }
        i += 1;
    }
    false
}

/// Writes a legacy file's meaning as a new policy file (validated by the daemon like any save).
fn convert_legacy(ui: &Ui) {
    let Open::Legacy { name, meaning } = ui.state.borrow().open.clone() else {
        return;
    };
    let target = model::converted_name(&name);
    let header =
        tr("# Converted from the legacy policy file {}: remove that file once this one is right.")
            .replacen("{}", &name, 1);
    let text = format!("{header}\n{meaning}");
    let backend = ui.state.borrow().init.backend.clone();
    let ui = ui.clone();
    background(
        move || (backend.replace(Kind::Policy, &target, "new", &text), target),
        move |(done, target)| match done {
            Ok(()) => {
                set_status(&ui, &tr("Saved {}.").replacen("{}", &target, 1), false);
                load_list(&ui, Some(target));
            }
            Err(e) => set_status(&ui, &failure_text(&e), true),
        },
    );
}
