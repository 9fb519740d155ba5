//! The settings dialogs: a qube's (Basic, Advanced, Firewall, Devices, Services, Features,
//! Notes) and the global settings (`admin.property.*`), one relm4 component.
//!
//! Inside: `fields` says what is edited, `load` reads it, `form` puts it into the widgets and
//! reads the edits back (checking them first), `apply` sends them all or nothing. The
//! Firewall, Devices, Services and Features pages are their own widgets
//! ([`crate::firewall_editor`], [`crate::devices_editor`], [`crate::features_editor`]).

mod apply;
mod fields;
mod form;
mod load;

use std::collections::BTreeMap;

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::errors::describe;
use crate::i18n::tr;

pub use apply::{Change, Step, apply, plan};
pub use fields::{Kind, fields, global_fields};
use form::{fill, show_first_error};
pub use form::{pending, validate};
pub use load::Loaded;
use load::load;

/// Whose settings the dialog edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A qube's (`admin.vm.property.*`).
    Qube(String),
    /// The system's (`admin.property.*` on dom0).
    Global,
}

impl Target {
    /// The destination of the calls.
    fn dest(&self) -> &str {
        match self {
            Target::Qube(vm) => vm,
            Target::Global => "dom0",
        }
    }

    /// Method prefix of property calls.
    fn prefix(&self) -> &'static str {
        match self {
            Target::Qube(_) => "admin.vm.property",
            Target::Global => "admin.property",
        }
    }
}

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
    /// The window is asked to close (Escape, its close button): ask first if edits would be
    /// lost.
    CloseAsked,
    /// The answer to "apply the changes?": `cancel`, `discard` or `apply`.
    CloseAnswer(String),
}

/// The dialog.
pub struct Settings {
    client: Client,
    target: Target,
    loaded: Option<Loaded>,
    /// Errors by property, shown under their fields (public for tests).
    pub errors: BTreeMap<String, String>,
    /// Whether the last apply succeeded (public for tests).
    pub applied: bool,
    busy: bool,
    /// Whether the window may close without asking (nothing to lose, or the user said so).
    may_close: std::rc::Rc<std::cell::Cell<bool>>,
    /// Close once the Apply under way succeeds.
    close_after_apply: bool,
    /// The values are being read again after an Apply.
    reloading: bool,
    /// The open "apply the changes?" question, if any (public for tests).
    pub question: Option<adw::MessageDialog>,
}

/// Widgets.
pub struct Widgets {
    editors: BTreeMap<&'static str, Editor>,
    notes: gtk::TextView,
    /// Services page: rows of `service.*` features.
    pub services: crate::features_editor::FeatureEditor,
    /// Features page: the other features.
    pub features: crate::features_editor::FeatureEditor,
    /// Firewall page.
    pub firewall: crate::firewall_editor::FirewallEditor,
    /// Devices page.
    pub devices: crate::devices_editor::DevicesEditor,
    status: gtk::Label,
    apply: gtk::Button,
    notebook: gtk::Notebook,
    filled: bool,
}

/// An editor widget and the label that shows its error.
pub struct Editor {
    kind: Kind,
    /// The control: a check button, an entry, a spin button (numbers) or a drop-down.
    pub widget: gtk::Widget,
    error: gtk::Label,
    row: gtk::Box,
    /// Numbers: the typed text is not a number in range, so it stays as typed (a spin button
    /// would otherwise put back the last valid value when it loses the focus).
    keep_text: std::rc::Rc<std::cell::Cell<bool>>,
    /// Why the control cannot be used now, under it.
    note: gtk::Label,
    /// The notebook page it is on.
    page: u32,
}

impl Settings {
    /// The qube being edited (`dom0` for the global settings).
    pub fn vm(&self) -> &str {
        self.target.dest()
    }

    /// Whether the data arrived.
    pub fn is_loaded(&self) -> bool {
        self.loaded.is_some()
    }

    /// Whether nothing is under way: loaded, no Apply running, and the values read again
    /// after the last Apply are shown.
    pub fn settled(&self) -> bool {
        self.loaded.is_some() && !self.busy && !self.reloading
    }
}

impl Widgets {
    /// The editor of a property (tests drive it like a user would).
    pub fn editor(&self, prop: &str) -> Option<&Editor> {
        self.editors.get(prop)
    }
}

impl Component for Settings {
    type CommandOutput = ();
    type Input = Msg;
    type Output = ();
    type Init = (Client, Target);
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
        (client, target): (Client, Target),
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let global = target == Target::Global;
        root.set_title(Some(&match &target {
            Target::Qube(vm) => tr("Settings: %s").replacen("%s", vm, 1),
            Target::Global => tr("Global settings"),
        }));
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
        let mut page_numbers: BTreeMap<&str, u32> = BTreeMap::new();
        let page_list = if global {
            vec![("basic", tr("General"))]
        } else {
            vec![("basic", tr("Basic")), ("advanced", tr("Advanced"))]
        };
        for (page, title) in page_list {
            let b = crate::widgets::page_box(10);
            let scroller = gtk::ScrolledWindow::builder()
                .child(&b)
                .vexpand(true)
                .build();
            let number = notebook.append_page(&scroller, Some(&gtk::Label::new(Some(&title))));
            page_numbers.insert(page, number);
            pages.insert(page, b);
        }
        for (page, prop, kind, title) in if global { global_fields() } else { fields() } {
            let row = gtk::Box::new(gtk::Orientation::Vertical, 2);
            let keep_text = std::rc::Rc::new(std::cell::Cell::new(false));
            let widget: gtk::Widget = match kind {
                Kind::Flag => gtk::CheckButton::with_label(&title).upcast(),
                Kind::Number => {
                    let caption = gtk::Label::builder().label(&title).xalign(0.0).build();
                    row.append(&caption);
                    let (min, max) = crate::limits::number_range(prop).unwrap_or((0, i64::MAX));
                    crate::widgets::number_editor(min, max, &title, &keep_text).upcast()
                }
                Kind::Text => {
                    let caption = gtk::Label::builder().label(&title).xalign(0.0).build();
                    row.append(&caption);
                    let e = gtk::Entry::new();
                    e.set_tooltip_text(Some(&title));
                    crate::a11y::set_name(&e, &title);
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
            let note = gtk::Label::builder()
                .xalign(0.0)
                .visible(false)
                .wrap(true)
                .build();
            note.add_css_class("dim-label");
            row.append(&widget);
            row.append(&note);
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
                    keep_text,
                    note,
                    page: page_numbers[page],
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
        let services = crate::features_editor::FeatureEditor::new(true);
        let features = crate::features_editor::FeatureEditor::new(false);
        let firewall = crate::firewall_editor::FirewallEditor::new();
        let devices = crate::devices_editor::DevicesEditor::new();
        // Insensitive until the rules are read (a page hidden when added keeps no tab in
        // GTK 4.8 even once shown).
        firewall.root.set_sensitive(false);
        devices.root.set_sensitive(false);
        if !global {
            notebook.append_page(
                &firewall.root,
                Some(&gtk::Label::new(Some(&tr("Firewall")))),
            );
            notebook.append_page(&devices.root, Some(&gtk::Label::new(Some(&tr("Devices")))));
            notebook.append_page(
                &services.root,
                Some(&gtk::Label::new(Some(&tr("Services")))),
            );
            notebook.append_page(
                &features.root,
                Some(&gtk::Label::new(Some(&tr("Features")))),
            );
            notebook.append_page(&notes_scroller, Some(&gtk::Label::new(Some(&tr("Notes")))));
        }
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
            let (client, target, input) = (
                client.clone(),
                target.clone(),
                sender.input_sender().clone(),
            );
            std::thread::spawn(move || {
                input.emit(match load(&client, &target) {
                    Ok(l) => Msg::Loaded(Box::new(l)),
                    Err(e) => Msg::LoadFailed(crate::errors::describe(&e)),
                })
            });
        }
        let may_close = std::rc::Rc::new(std::cell::Cell::new(false));
        {
            // Escape closes the window, as the close button does.
            crate::widgets::close_on_escape(&root);
            let (may_close, input) = (may_close.clone(), sender.input_sender().clone());
            root.connect_close_request(move |_| {
                if may_close.get() {
                    gtk::glib::Propagation::Proceed
                } else {
                    input.emit(Msg::CloseAsked);
                    gtk::glib::Propagation::Stop
                }
            });
        }
        let model = Settings {
            client,
            target,
            loaded: None,
            errors: BTreeMap::new(),
            applied: false,
            busy: false,
            may_close,
            close_after_apply: false,
            reloading: false,
            question: None,
        };
        let widgets = Widgets {
            editors,
            notes,
            services,
            features,
            firewall,
            devices,
            status,
            apply: apply_button,
            notebook: notebook.clone(),
            filled: false,
        };
        ComponentParts { model, widgets }
    }

    fn update_with_view(
        &mut self,
        widgets: &mut Widgets,
        msg: Msg,
        sender: ComponentSender<Self>,
        root: &Self::Root,
    ) {
        match msg {
            Msg::CloseAsked => {
                let (changes, notes) = pending(self, widgets);
                if self.loaded.is_none() || (changes.is_empty() && notes.is_none()) {
                    self.may_close.set(true);
                    root.close();
                    return;
                }
                let dialog = adw::MessageDialog::new(
                    Some(root),
                    Some(&tr("Apply the changes?")),
                    Some(&tr("Some settings were changed and not applied yet.")),
                );
                dialog.add_response("cancel", &tr("Keep editing"));
                dialog.add_response("discard", &tr("Discard"));
                dialog.add_response("apply", &tr("Apply"));
                dialog.set_response_appearance("discard", adw::ResponseAppearance::Destructive);
                dialog.set_response_appearance("apply", adw::ResponseAppearance::Suggested);
                dialog.set_default_response(Some("apply"));
                dialog.set_close_response("cancel");
                let input = sender.input_sender().clone();
                dialog.connect_response(None, move |_, r| input.emit(Msg::CloseAnswer(r.into())));
                dialog.present();
                self.question = Some(dialog);
            }
            Msg::CloseAnswer(answer) => match answer.as_str() {
                "discard" => {
                    self.may_close.set(true);
                    root.close();
                }
                "apply" => {
                    self.close_after_apply = true;
                    sender.input(Msg::Apply);
                }
                _ => {}
            },
            Msg::Loaded(l) => {
                self.loaded = Some(*l);
                self.reloading = false;
                widgets.filled = false;
            }
            Msg::LoadFailed(e) => {
                self.reloading = false;
                self.errors.insert(String::new(), e);
            }
            Msg::Apply => {
                self.applied = false;
                // Nothing is sent while anything typed is wrong.
                self.errors = validate(self, widgets);
                if !self.errors.is_empty() {
                    self.close_after_apply = false;
                    show_first_error(&self.errors, widgets);
                }
                if self.errors.is_empty()
                    && let Some(loaded) = &self.loaded
                {
                    let (changes, notes) = pending(self, widgets);
                    let steps = plan(loaded, changes, notes);
                    self.busy = true;
                    let (client, target, input) = (
                        self.client.clone(),
                        self.target.clone(),
                        sender.input_sender().clone(),
                    );
                    std::thread::spawn(move || {
                        input.emit(Msg::Applied(apply(&client, &target, &steps)))
                    });
                }
            }
            Msg::Applied(errors) => {
                self.busy = false;
                self.applied = errors.is_empty();
                self.errors = errors;
                if std::mem::take(&mut self.close_after_apply) && self.applied {
                    self.may_close.set(true);
                    root.close();
                    return;
                }
                if !self.applied {
                    // Nothing changed: the user's edits stay, next to what was refused.
                    show_first_error(&self.errors, widgets);
                    self.update_view(widgets, sender);
                    return;
                }
                // Re-read so the dialog shows what the daemon now holds.
                self.reloading = true;
                let (client, target, input) = (
                    self.client.clone(),
                    self.target.clone(),
                    sender.input_sender().clone(),
                );
                std::thread::spawn(move || {
                    input.emit(match load(&client, &target) {
                        Ok(l) => Msg::Loaded(Box::new(l)),
                        Err(e) => Msg::LoadFailed(describe(&e)),
                    })
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
        } else if let Some(e) = self.errors.get("firewall") {
            format!("{}: {e}", tr("Firewall"))
        } else if let Some((k, e)) = self.errors.iter().find(|(k, _)| k.starts_with("pci:")) {
            format!("{} {}: {e}", tr("PCI device"), k.trim_start_matches("pci:"))
        } else if let Some((k, e)) = self.errors.iter().find(|(k, _)| k.starts_with("feature:")) {
            format!("{}: {e}", k.trim_start_matches("feature:"))
        } else if !self.errors.is_empty() {
            tr("Not applied: see the fields marked in red.")
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
