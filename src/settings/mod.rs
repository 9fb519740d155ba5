//! The settings windows: a qube's (Basic, Advanced, Firewall, Devices, Services, Features,
//! Notes) and the global settings (`admin.property.*`), one relm4 component on a libadwaita
//! preferences window whose pages come from `ui/qube-settings.ui` or `ui/global-settings.ui`.
//!
//! Inside: `fields` says what is edited by which kind of row, `load` reads it, `form` puts it
//! into the rows and reads the edits back (checking them first), `apply` sends them all or
//! nothing. Errors are shown at their rows and in a toast, "Changes applied." in a toast. The
//! Firewall, Devices, Services and Features pages are their own widgets
//! ([`crate::firewall_editor`], [`crate::devices_editor`], [`crate::features_editor`]).

mod apply;
mod fields;
mod form;
mod load;
mod rename;

use std::collections::BTreeMap;

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::errors::describe;
use crate::i18n::tr;
use crate::resources::ui_object;

pub use apply::{Change, Step, apply, plan};
pub use fields::Kind;
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
    /// A switch that other rows follow changed.
    Switched,
    /// Rename was pressed: ask for the new name.
    RenameAsked,
    /// Rename the qube to this name.
    Rename(String),
    /// The rename ended (new name, how).
    Renamed(String, Result<crate::clone::Renamed, String>),
}

/// What the settings tell the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsOutput {
    /// The qube now has this name (its settings should open under it).
    Renamed(String),
}

/// The dialog.
pub struct Settings {
    client: Client,
    target: Target,
    loaded: Option<Loaded>,
    /// Errors by property, shown at their rows (public for tests).
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
    apply: gtk::Button,
    window: adw::PreferencesWindow,
    /// The qube's name and icon, and the Rename button (a qube's settings only).
    name_row: Option<adw::ActionRow>,
    qube_icon: Option<gtk::Image>,
    rename: Option<gtk::Button>,
    filled: bool,
}

/// The row editing one property, its control, and where its error is shown.
pub struct Editor {
    kind: Kind,
    /// The control: a switch, a spin button (numbers), a combo row or an entry row.
    pub widget: gtk::Widget,
    /// The row (the control itself for combo and entry rows).
    pub row: gtk::Widget,
    /// The row's subtitle from the `.ui` file, shown when there is nothing else to say.
    subtitle: String,
    /// An entry row's error (entry rows have no subtitle).
    error: Option<gtk::Label>,
    /// Numbers: the typed text is not a number in range, so it stays as typed (a spin button
    /// would otherwise put back the last valid value when it loses the focus).
    keep_text: std::rc::Rc<std::cell::Cell<bool>>,
    /// The page it is on.
    page: adw::PreferencesPage,
}

impl Editor {
    /// Shows `error` at the row (in red), else `note` (why it cannot be used now), else the
    /// row's own subtitle.
    fn show(&self, error: Option<&str>, note: Option<&str>) {
        if let Some(label) = &self.error {
            label.set_text(error.unwrap_or_default());
            label.set_visible(error.is_some());
        } else if let Some(row) = self.row.downcast_ref::<adw::ActionRow>() {
            row.set_subtitle(error.or(note).unwrap_or(&self.subtitle));
        }
        if error.is_some() {
            self.row.add_css_class("error");
        } else {
            self.row.remove_css_class("error");
        }
    }

    /// What the row says under its title now (its error, a note or its subtitle).
    pub fn said(&self) -> String {
        match (&self.error, self.row.downcast_ref::<adw::ActionRow>()) {
            (Some(label), _) if label.is_visible() => label.text().to_string(),
            (_, Some(row)) => row.subtitle().map(|s| s.to_string()).unwrap_or_default(),
            _ => String::new(),
        }
    }
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

    /// What went wrong, in one line (`None`: nothing).
    fn trouble(&self) -> Option<String> {
        let e = &self.errors;
        Some(if let Some(e) = e.get("") {
            format!("{}: {e}", tr("Cannot read the qube"))
        } else if let Some(e) = e.get("notes") {
            format!("{}: {e}", tr("Notes"))
        } else if let Some(e) = e.get("firewall") {
            format!("{}: {e}", tr("Firewall"))
        } else if let Some((k, e)) = e.iter().find(|(k, _)| k.starts_with("pci:")) {
            format!("{} {}: {e}", tr("PCI device"), k.trim_start_matches("pci:"))
        } else if let Some((k, e)) = e.iter().find(|(k, _)| k.starts_with("feature:")) {
            format!("{}: {e}", k.trim_start_matches("feature:"))
        } else if !e.is_empty() {
            tr("Not applied: see the fields marked in red.")
        } else {
            return None;
        })
    }
}

impl Widgets {
    /// The editor of a property (tests drive it like a user would).
    pub fn editor(&self, prop: &str) -> Option<&Editor> {
        self.editors.get(prop)
    }

    /// Shows a toast (a failure for longer).
    pub(super) fn toast(&mut self, text: &str, failure: bool) {
        // Toasts go by themselves: libadwaita 1.2 crashes when a toast dismissed early (or
        // one never timing out) is still being hidden as its window goes, and when a
        // high-priority toast pushes back one on screen. Errors stay at their rows anyway.
        let toast = adw::Toast::new(text);
        if failure {
            toast.set_timeout(10);
        }
        self.window.add_toast(toast);
    }
}

/// The window's header bar (AdwPreferencesWindow has one of its own, with the page switcher
/// and the search button; Apply goes next to them).
fn header_of(window: &adw::PreferencesWindow) -> Option<adw::HeaderBar> {
    descendants(window.upcast_ref())
        .into_iter()
        .find_map(|w| w.downcast::<adw::HeaderBar>().ok())
}

fn descendants(root: &gtk::Widget) -> Vec<gtk::Widget> {
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(w) = stack.pop() {
        let mut child = w.last_child();
        while let Some(c) = child {
            child = c.prev_sibling();
            stack.push(c.clone());
            out.push(c);
        }
    }
    out
}

/// The editor of `prop` from the page file: its row and control.
fn editor(builder: &gtk::Builder, prop: &'static str, kind: Kind) -> Editor {
    let row: gtk::Widget = builder
        .object(prop)
        .unwrap_or_else(|| panic!("the settings .ui file has no row {prop}"));
    // Every row of the settings layouts (compiled into the program, see [`ui_object`]) is on
    // a page: the same on every run, and the GUI tests open every page.
    #[allow(clippy::expect_used)]
    let page = row
        .ancestor(adw::PreferencesPage::static_type())
        .and_downcast::<adw::PreferencesPage>()
        .expect("a row is on a page");
    let subtitle = row
        .downcast_ref::<adw::ActionRow>()
        .and_then(|r| r.subtitle())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let title = row
        .downcast_ref::<adw::PreferencesRow>()
        .map(|r| r.title().to_string())
        .unwrap_or_default();
    let keep_text = std::rc::Rc::new(std::cell::Cell::new(false));
    let control = |name: String| -> gtk::Widget {
        builder
            .object(&name)
            .unwrap_or_else(|| panic!("the settings .ui file has no {name}"))
    };
    let (widget, error) = match kind {
        Kind::Number => {
            let spin: gtk::SpinButton = ui_object(builder, &format!("{prop}-value"));
            let (min, max) = crate::limits::number_range(prop).unwrap_or((0, i64::MAX));
            crate::widgets::number_editor(&spin, min, max, &title, &keep_text);
            (spin.upcast(), None)
        }
        Kind::Flag => {
            let switch = control(format!("{prop}-value"));
            crate::a11y::set_name(&switch, &title);
            (switch, None)
        }
        Kind::Choice => (row.clone(), None),
        Kind::Text => {
            let label = gtk::Label::builder()
                .visible(false)
                .wrap(true)
                .max_width_chars(30)
                .build();
            label.add_css_class("error");
            if let Some(r) = row.downcast_ref::<adw::EntryRow>() {
                r.add_suffix(&label);
            }
            (row.clone(), Some(label))
        }
    };
    row.set_visible(false);
    Editor {
        kind,
        widget,
        row,
        subtitle,
        error,
        keep_text,
        page,
    }
}

impl Component for Settings {
    type CommandOutput = ();
    type Input = Msg;
    type Output = SettingsOutput;
    type Init = (Client, Target);
    type Root = adw::PreferencesWindow;
    type Widgets = Widgets;

    fn init_root() -> Self::Root {
        crate::resources::init();
        adw::PreferencesWindow::builder()
            .default_width(640)
            .default_height(680)
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
        let file = if global {
            "global-settings.ui"
        } else {
            "qube-settings.ui"
        };
        let builder = gtk::Builder::from_resource(&format!("{}/ui/{file}", crate::resources::BASE));
        let pages: &[&str] = if global {
            &["general"]
        } else {
            &[
                "basic", "advanced", "firewall", "devices", "services", "features", "notes",
            ]
        };
        for page in pages {
            let page: adw::PreferencesPage = ui_object(&builder, page);
            root.add(&page);
        }
        let apply_button = gtk::Button::with_label(&tr("Apply"));
        apply_button.add_css_class("suggested-action");
        apply_button.set_sensitive(false);
        {
            let input = sender.input_sender().clone();
            apply_button.connect_clicked(move |_| input.emit(Msg::Apply));
        }
        if let Some(header) = header_of(&root) {
            header.pack_end(&apply_button);
        }
        let fields = if global { fields::GLOBAL } else { fields::QUBE };
        let editors: BTreeMap<&'static str, Editor> = fields
            .iter()
            .map(|(prop, kind)| (*prop, editor(&builder, prop, *kind)))
            .collect();
        // Rows that follow a switch (maximum memory, the reason to prohibit a start).
        for switch in ["balancing", "prohibit-start"] {
            if let Some(s) = builder.object::<gtk::Switch>(&format!("{switch}-value")) {
                let input = sender.input_sender().clone();
                s.connect_active_notify(move |_| input.emit(Msg::Switched));
            }
        }
        if let Some(rename) = builder.object::<gtk::Button>("rename") {
            let input = sender.input_sender().clone();
            rename.connect_clicked(move |_| input.emit(Msg::RenameAsked));
        }
        let services = crate::features_editor::FeatureEditor::new(true);
        let features = crate::features_editor::FeatureEditor::new(false);
        let firewall = crate::firewall_editor::FirewallEditor::new();
        let devices = crate::devices_editor::DevicesEditor::new();
        // Insensitive until the rules are read.
        firewall.root.set_sensitive(false);
        devices.root.set_sensitive(false);
        let notes = builder
            .object::<gtk::TextView>("notes-text")
            .unwrap_or_default();
        if !global {
            for (group, page) in [
                ("firewall-group", firewall.root.clone()),
                ("devices-group", devices.root.clone()),
                ("services-group", services.root.clone()),
                ("features-group", features.root.clone()),
            ] {
                let group: adw::PreferencesGroup = ui_object(&builder, group);
                group.add(&page);
            }
        }
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
            // Escape closes the window, as the close button does (in the search field it leaves
            // the search first).
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
            apply: apply_button,
            window: root.clone(),
            name_row: builder.object("name-row"),
            qube_icon: builder.object("qube-icon"),
            rename: builder.object("rename"),
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
            Msg::Switched => form::follow_switches(widgets),
            Msg::RenameAsked => self.ask_rename(root, &sender),
            Msg::Rename(new) => self.rename(new, widgets, &sender),
            Msg::Renamed(new, result) => {
                self.renamed(new, result, widgets, root, &sender);
                return;
            }
            Msg::Loaded(l) => {
                self.loaded = Some(*l);
                self.reloading = false;
                widgets.filled = false;
            }
            Msg::LoadFailed(e) => {
                self.reloading = false;
                self.errors.insert(String::new(), e);
                if let Some(t) = self.trouble() {
                    widgets.toast(&t, true);
                }
            }
            Msg::Apply => {
                self.applied = false;
                // Nothing is sent while anything typed is wrong.
                self.errors = validate(self, widgets);
                if !self.errors.is_empty() {
                    self.close_after_apply = false;
                    show_first_error(&self.errors, widgets);
                    if let Some(t) = self.trouble() {
                        widgets.toast(&t, true);
                    }
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
                    if let Some(t) = self.trouble() {
                        widgets.toast(&t, true);
                    }
                    self.update_view(widgets, sender);
                    return;
                }
                widgets.toast(&tr("Changes applied."), false);
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

    fn update_view(&self, w: &mut Widgets, _sender: ComponentSender<Self>) {
        if let Some(loaded) = &self.loaded
            && !w.filled
        {
            fill(loaded, w);
            w.filled = true;
        }
        w.apply.set_sensitive(self.loaded.is_some() && !self.busy);
        for (prop, ed) in &w.editors {
            let note = self.loaded.as_ref().and_then(|l| form::note(l, prop));
            ed.show(self.errors.get(*prop).map(String::as_str), note.as_deref());
        }
    }
}
