//! The qube settings dialog: Basic, Advanced and Notes. Changes apply as property Set/Reset
//! (and notes Set); a daemon error appears next to the field it concerns.

use std::collections::BTreeMap;

use qubes_api::{CallError, Client, PropValue};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::errors::describe;
use crate::i18n::{tr, tr_default};

/// One editable property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A choice from a list (labels, qubes, modes).
    Choice,
    /// True / False.
    Flag,
    /// A number.
    Number,
    /// Free text.
    Text,
}

/// Fields of the dialog: (page, property, kind, title).
pub fn fields() -> Vec<(&'static str, &'static str, Kind, String)> {
    vec![
        ("basic", "label", Kind::Choice, tr("Label")),
        ("basic", "template", Kind::Choice, tr("Template")),
        ("basic", "netvm", Kind::Choice, tr("Networking")),
        (
            "basic",
            "default_dispvm",
            Kind::Choice,
            tr("Default disposable template"),
        ),
        (
            "basic",
            "include_in_backups",
            Kind::Flag,
            tr("Include in backups by default"),
        ),
        (
            "basic",
            "autostart",
            Kind::Flag,
            tr("Start qube automatically on boot"),
        ),
        (
            "advanced",
            "memory",
            Kind::Number,
            tr("Initial memory (MiB)"),
        ),
        (
            "advanced",
            "maxmem",
            Kind::Number,
            tr("Maximum memory (MiB)"),
        ),
        ("advanced", "vcpus", Kind::Number, tr("Virtual CPUs")),
        ("advanced", "kernel", Kind::Text, tr("Kernel")),
        ("advanced", "kernelopts", Kind::Text, tr("Kernel options")),
        (
            "advanced",
            "virt_mode",
            Kind::Choice,
            tr("Virtualisation mode"),
        ),
        (
            "advanced",
            "provides_network",
            Kind::Flag,
            tr("Provides network access to other qubes"),
        ),
        (
            "advanced",
            "template_for_dispvms",
            Kind::Flag,
            tr("Disposable template"),
        ),
        ("advanced", "debug", Kind::Flag, tr("Debug mode")),
    ]
}

/// What the dialog shows about a qube.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Properties.
    pub props: BTreeMap<String, PropValue>,
    /// Choices per property: (value to set, text shown). The empty value means "reset".
    pub choices: BTreeMap<String, Vec<(String, String)>>,
    /// Notes.
    pub notes: String,
}

/// A change to send: property, value (`None` = reset to default).
pub type Change = (String, Option<String>);

/// Messages.
#[derive(Debug)]
pub enum Msg {
    /// Data arrived.
    Loaded(Box<Loaded>),
    /// Loading failed.
    LoadFailed(String),
    /// Apply the edits.
    Apply,
    /// Results of applying: errors by property (empty = all done).
    Applied(BTreeMap<String, String>),
}

/// The dialog.
pub struct Settings {
    client: Client,
    vm: String,
    loaded: Option<Loaded>,
    /// Errors by property, shown under their fields (public for tests).
    pub errors: BTreeMap<String, String>,
    /// Whether the last apply succeeded (public for tests).
    pub applied: bool,
    busy: bool,
}

/// Widgets.
pub struct Widgets {
    editors: BTreeMap<&'static str, Editor>,
    notes: gtk::TextView,
    status: gtk::Label,
    apply: gtk::Button,
    filled: bool,
}

/// An editor widget and the label that shows its error.
pub struct Editor {
    kind: Kind,
    /// The control.
    pub widget: gtk::Widget,
    error: gtk::Label,
    row: gtk::Box,
}

impl Settings {
    /// The qube being edited.
    pub fn vm(&self) -> &str {
        &self.vm
    }

    /// Whether the data arrived.
    pub fn is_loaded(&self) -> bool {
        self.loaded.is_some()
    }
}

fn load(client: &Client, vm: &str) -> Result<Loaded, CallError> {
    let props: BTreeMap<String, PropValue> = client.property_get_all(vm)?.into_iter().collect();
    let labels: Vec<(String, String)> = client
        .call("admin.label.List", "dom0", "", b"")?
        .lines()
        .map(|l| (l.to_string(), l.to_string()))
        .collect();
    let qubes = client.vm_list()?;
    let mut networked = Vec::new();
    let mut dvm_templates = Vec::new();
    for q in &qubes {
        if q.name == vm || q.class == "AdminVM" {
            continue;
        }
        if let Ok(v) = client.call("admin.vm.property.Get", &q.name, "provides_network", b"")
            && v.ends_with(" True")
        {
            networked.push(q.name.clone());
        }
        if let Ok(v) = client.call(
            "admin.vm.property.Get",
            &q.name,
            "template_for_dispvms",
            b"",
        ) && v.ends_with(" True")
        {
            dvm_templates.push(q.name.clone());
        }
    }
    let default_text = |prop: &str| {
        client
            .call("admin.vm.property.GetDefault", vm, prop, b"")
            .ok()
            .and_then(|d| d.split_once(' ').map(|(_, v)| v.to_string()))
            .map(|v| tr_default(if v.is_empty() { "none" } else { &v }))
            .unwrap_or_else(|| tr("default"))
    };
    let vm_choices = |names: &[String], prop: &str| {
        let mut v = vec![
            (String::new(), default_text(prop)),
            ("\u{0}none".to_string(), tr("none")),
        ];
        v.extend(names.iter().map(|n| (n.clone(), n.clone())));
        v
    };
    let mut choices = BTreeMap::new();
    choices.insert("label".to_string(), labels);
    let templates: Vec<(String, String)> = qubes
        .iter()
        .filter(|q| q.class == "TemplateVM")
        .map(|q| (q.name.clone(), q.name.clone()))
        .collect();
    choices.insert("template".to_string(), templates);
    choices.insert("netvm".to_string(), vm_choices(&networked, "netvm"));
    choices.insert(
        "default_dispvm".to_string(),
        vm_choices(&dvm_templates, "default_dispvm"),
    );
    choices.insert(
        "virt_mode".to_string(),
        std::iter::once((String::new(), default_text("virt_mode")))
            .chain(
                ["pvh", "hvm", "pv"]
                    .iter()
                    .map(|m| (m.to_string(), m.to_string())),
            )
            .collect(),
    );
    let notes = client
        .call("admin.vm.notes.Get", vm, "", b"")
        .unwrap_or_default();
    Ok(Loaded {
        props,
        choices,
        notes,
    })
}

/// Sends the changes one by one; returns the errors by property.
pub fn apply(
    client: &Client,
    vm: &str,
    changes: &[Change],
    notes: Option<String>,
) -> BTreeMap<String, String> {
    let mut errors = BTreeMap::new();
    for (prop, value) in changes {
        let result = match value {
            None => client.call("admin.vm.property.Reset", vm, prop, b""),
            Some(v) => client.call("admin.vm.property.Set", vm, prop, v.as_bytes()),
        };
        if let Err(e) = result {
            errors.insert(prop.clone(), describe(&e));
        }
    }
    if let Some(n) = notes
        && let Err(e) = client.call("admin.vm.notes.Set", vm, "", n.as_bytes())
    {
        errors.insert("notes".into(), describe(&e));
    }
    errors
}

impl Widgets {
    /// The editor of a property (tests drive it like a user would).
    pub fn editor(&self, prop: &str) -> Option<&Editor> {
        self.editors.get(prop)
    }
}

fn choice_values(loaded: &Loaded, prop: &str) -> Vec<(String, String)> {
    loaded.choices.get(prop).cloned().unwrap_or_default()
}

/// The edits the widgets hold compared with what was loaded.
fn collect_changes(loaded: &Loaded, w: &Widgets) -> Vec<Change> {
    let mut out = Vec::new();
    for (prop, ed) in &w.editors {
        let Some(current) = loaded.props.get(*prop) else {
            continue;
        };
        let new: Option<String> = match ed.kind {
            Kind::Flag => {
                let active = ed
                    .widget
                    .downcast_ref::<gtk::CheckButton>()
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
            Kind::Number | Kind::Text => {
                let text = ed
                    .widget
                    .downcast_ref::<gtk::Entry>()
                    .map(|e| e.text().to_string())
                    .unwrap_or_default();
                (text != current.value).then_some(text)
            }
            Kind::Choice => {
                let Some(dd) = ed.widget.downcast_ref::<gtk::DropDown>() else {
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
    out
}

impl Component for Settings {
    type CommandOutput = ();
    type Input = Msg;
    type Output = ();
    type Init = (Client, String);
    type Root = adw::Window;
    type Widgets = Widgets;

    fn init_root() -> Self::Root {
        adw::Window::builder()
            .default_width(560)
            .default_height(620)
            .modal(true)
            .build()
    }

    fn init(
        (client, vm): (Client, String),
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        root.set_title(Some(&tr("Settings: %s").replacen("%s", &vm, 1)));
        let header = adw::HeaderBar::new();
        let apply_button = gtk::Button::with_label(&tr("Apply"));
        apply_button.add_css_class("suggested-action");
        apply_button.set_sensitive(false);
        {
            let input = sender.input_sender().clone();
            apply_button.connect_clicked(move |_| input.emit(Msg::Apply));
        }
        header.pack_end(&apply_button);
        let notebook = gtk::Notebook::new();
        let mut editors = BTreeMap::new();
        let mut pages: BTreeMap<&str, gtk::Box> = BTreeMap::new();
        for (page, title) in [("basic", tr("Basic")), ("advanced", tr("Advanced"))] {
            let b = gtk::Box::new(gtk::Orientation::Vertical, 10);
            b.set_margin_start(16);
            b.set_margin_end(16);
            b.set_margin_top(12);
            b.set_margin_bottom(12);
            let scroller = gtk::ScrolledWindow::builder()
                .child(&b)
                .vexpand(true)
                .build();
            notebook.append_page(&scroller, Some(&gtk::Label::new(Some(&title))));
            pages.insert(page, b);
        }
        for (page, prop, kind, title) in fields() {
            let row = gtk::Box::new(gtk::Orientation::Vertical, 2);
            let widget: gtk::Widget = match kind {
                Kind::Flag => gtk::CheckButton::with_label(&title).upcast(),
                Kind::Number | Kind::Text => {
                    let caption = gtk::Label::builder().label(&title).xalign(0.0).build();
                    row.append(&caption);
                    let e = gtk::Entry::new();
                    e.set_tooltip_text(Some(&title));
                    crate::a11y::set_name(&e, &title);
                    if kind == Kind::Number {
                        e.set_input_purpose(gtk::InputPurpose::Digits);
                    }
                    e.upcast()
                }
                Kind::Choice => {
                    let caption = gtk::Label::builder().label(&title).xalign(0.0).build();
                    row.append(&caption);
                    let d = gtk::DropDown::from_strings(&[]);
                    d.set_tooltip_text(Some(&title));
                    crate::a11y::set_name(&d, &title);
                    d.upcast()
                }
            };
            let error = gtk::Label::builder()
                .xalign(0.0)
                .visible(false)
                .wrap(true)
                .build();
            error.add_css_class("error");
            row.append(&widget);
            row.append(&error);
            row.set_visible(false);
            pages[page].append(&row);
            editors.insert(
                prop,
                Editor {
                    kind,
                    widget,
                    error,
                    row,
                },
            );
        }
        let notes = gtk::TextView::builder()
            .wrap_mode(gtk::WrapMode::WordChar)
            .vexpand(true)
            .build();
        notes.set_tooltip_text(Some(&tr("Notes")));
        crate::a11y::set_name(&notes, &tr("Notes"));
        let notes_scroller = gtk::ScrolledWindow::builder()
            .child(&notes)
            .vexpand(true)
            .build();
        notebook.append_page(&notes_scroller, Some(&gtk::Label::new(Some(&tr("Notes")))));
        let status = gtk::Label::builder()
            .label(tr("Loading…"))
            .xalign(0.0)
            .margin_start(12)
            .margin_bottom(6)
            .build();
        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        content.append(&notebook);
        content.append(&status);
        root.set_content(Some(&content));
        {
            let (client, vm, input) = (client.clone(), vm.clone(), sender.input_sender().clone());
            std::thread::spawn(move || {
                input.emit(match load(&client, &vm) {
                    Ok(l) => Msg::Loaded(Box::new(l)),
                    Err(e) => Msg::LoadFailed(crate::errors::describe(&e)),
                })
            });
        }
        let model = Settings {
            client,
            vm,
            loaded: None,
            errors: BTreeMap::new(),
            applied: false,
            busy: false,
        };
        let widgets = Widgets {
            editors,
            notes,
            status,
            apply: apply_button,
            filled: false,
        };
        root.present();
        ComponentParts { model, widgets }
    }

    fn update_with_view(
        &mut self,
        widgets: &mut Widgets,
        msg: Msg,
        sender: ComponentSender<Self>,
        _root: &Self::Root,
    ) {
        match msg {
            Msg::Loaded(l) => {
                self.loaded = Some(*l);
                widgets.filled = false;
            }
            Msg::LoadFailed(e) => {
                self.errors.insert(String::new(), e);
            }
            Msg::Apply => {
                let (changes, notes) = pending(self, widgets);
                self.busy = true;
                self.applied = false;
                let (client, vm, input) = (
                    self.client.clone(),
                    self.vm.clone(),
                    sender.input_sender().clone(),
                );
                std::thread::spawn(move || {
                    input.emit(Msg::Applied(apply(&client, &vm, &changes, notes)))
                });
            }
            Msg::Applied(errors) => {
                self.busy = false;
                self.applied = errors.is_empty();
                self.errors = errors;
                // Re-read so the dialog shows what the daemon now holds.
                let (client, vm, input) = (
                    self.client.clone(),
                    self.vm.clone(),
                    sender.input_sender().clone(),
                );
                std::thread::spawn(move || {
                    if let Ok(l) = load(&client, &vm) {
                        input.emit(Msg::Loaded(Box::new(l)));
                    }
                });
            }
        }
        self.update_view(widgets, sender);
    }

    fn update_view(&self, w: &mut Widgets, sender: ComponentSender<Self>) {
        if let Some(loaded) = &self.loaded
            && !w.filled
        {
            fill(loaded, w);
            w.filled = true;
        }
        w.apply.set_sensitive(self.loaded.is_some() && !self.busy);
        for (prop, ed) in &w.editors {
            match self.errors.get(*prop) {
                Some(e) => {
                    ed.error.set_text(e);
                    ed.error.set_visible(true);
                }
                None => ed.error.set_visible(false),
            }
        }
        w.status.set_text(&if let Some(e) = self.errors.get("") {
            format!("{}: {e}", tr("Cannot read the qube"))
        } else if let Some(e) = self.errors.get("notes") {
            format!("{}: {e}", tr("Notes"))
        } else if self.applied {
            tr("Changes applied.")
        } else if self.loaded.is_some() {
            String::new()
        } else {
            tr("Loading…")
        });
        let _ = sender;
    }
}

/// Puts loaded values into the widgets.
fn fill(loaded: &Loaded, w: &Widgets) {
    for (prop, ed) in &w.editors {
        let Some(v) = loaded.props.get(*prop) else {
            continue;
        };
        ed.row.set_visible(true);
        match ed.kind {
            Kind::Flag => {
                if let Some(c) = ed.widget.downcast_ref::<gtk::CheckButton>() {
                    c.set_active(v.value == "True");
                }
            }
            Kind::Number | Kind::Text => {
                if let Some(e) = ed.widget.downcast_ref::<gtk::Entry>() {
                    e.set_text(&v.value);
                }
            }
            Kind::Choice => {
                let Some(dd) = ed.widget.downcast_ref::<gtk::DropDown>() else {
                    continue;
                };
                let values = choice_values(loaded, prop);
                let texts: Vec<&str> = values.iter().map(|(_, t)| t.as_str()).collect();
                dd.set_model(Some(&gtk::StringList::new(&texts)));
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
    w.notes.buffer().set_text(&loaded.notes);
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
    let notes = (text != loaded.notes).then_some(text);
    (collect_changes(loaded, w), notes)
}
