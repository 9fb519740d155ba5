//! The backup and restore windows, opened from the Qube Manager's menu.
//!
//! - **Backup** ([`open_backup`]): the qubes with the disk space their volumes use, what to
//!   include, where to (a dom0 folder or a path in a qube), the passphrase twice with a
//!   strength hint, compression; saved as the profile the next run reopens
//!   ([`profile::SAVED_ID`]); then `admin.backup.Info`'s summary as a table, then
//!   `admin.backup.Execute` with a progress bar fed by `backup-progress` events, Cancel
//!   (`admin.backup.Cancel`) and a summary at the end; in dom0, optionally the computer is
//!   turned off after a successful backup, with a minute's notice (module `power_off`).
//! - **Restore** ([`open_restore`]): a backup file (here, or in a qube), its passphrase; the
//!   header is authenticated and the qubes of the backup listed with what conflicts with this
//!   system and the options (rename or skip, exclude, ignore missing templates and net qubes,
//!   dom0's home, verify only); then the `qubes-backup` restore engine runs over the window's
//!   daemon connection with progress per qube, and a summary.
//!
//! Every daemon call, file read and the restore run on worker threads ([`background`]); what
//! lies outside the Admin API (where profiles are written, how volume data is imported)
//! depends on where the program runs and is described by [`env::BackupEnv`].

#[cfg(feature = "demo")]
mod demo;
pub mod env;
pub mod info;
pub mod pick;
pub mod profile;
pub mod strength;

mod backup_run;
mod backup_window;
mod power_off;
mod restore_run;
mod restore_window;

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use crate::widgets::background;

pub use backup_window::open as open_backup_with;
pub use restore_window::open as open_restore_with;

/// Opens the backup window for `client`'s daemon, in the current environment
/// ([`env::current`]).
pub fn open_backup(parent: &gtk::Window, client: &Client) -> adw::Window {
    backup_window::open(Some(parent), client.clone(), env::current())
}

/// Opens the restore window for `client`'s daemon, in the current environment.
pub fn open_restore(parent: &gtk::Window, client: &Client) -> adw::Window {
    restore_window::open(Some(parent), client.clone(), env::current())
}

/// What both windows are built on: a header bar with Back, the primary button and Cancel,
/// toasts over a stack of pages.
#[derive(Clone)]
struct Shell {
    window: adw::Window,
    toasts: adw::ToastOverlay,
    pages: gtk::Stack,
    back: gtk::Button,
    next: gtk::Button,
    cancel: gtk::Button,
    /// The toast on screen, dismissed when the page changes.
    toast: std::rc::Rc<std::cell::RefCell<Option<adw::Toast>>>,
}

impl Shell {
    fn new(parent: Option<&gtk::Window>, title: &str) -> Shell {
        let window = adw::Window::builder()
            .title(title)
            .default_width(720)
            .default_height(680)
            .build();
        if let Some(p) = parent {
            window.set_transient_for(Some(p));
        }
        let header = adw::HeaderBar::new();
        header.set_title_widget(Some(&adw::WindowTitle::new(title, "")));
        let back = gtk::Button::with_label(&crate::i18n::tr("Back"));
        back.set_widget_name("back");
        back.set_visible(false);
        header.pack_start(&back);
        let next = gtk::Button::with_label(&crate::i18n::tr("Next"));
        next.set_widget_name("next");
        next.add_css_class("suggested-action");
        header.pack_end(&next);
        let cancel = gtk::Button::with_label(&crate::i18n::tr("Cancel"));
        cancel.set_widget_name("cancel");
        cancel.add_css_class("destructive-action");
        cancel.set_visible(false);
        header.pack_end(&cancel);
        let pages = gtk::Stack::new();
        pages.set_vexpand(true);
        pages.set_transition_type(gtk::StackTransitionType::Crossfade);
        let toasts = adw::ToastOverlay::new();
        toasts.set_child(Some(&pages));
        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        content.append(&toasts);
        window.set_content(Some(&content));
        window.set_default_widget(Some(&next));
        crate::widgets::close_on_escape(&window);
        Shell {
            window,
            toasts,
            pages,
            back,
            next,
            cancel,
            toast: Default::default(),
        }
    }

    /// A short message over the page (errors that leave the page as it is).
    fn toast(&self, text: &str) {
        let toast = adw::Toast::new(&plain(text));
        toast.set_timeout(8);
        self.toasts.add_toast(toast.clone());
        if let Some(old) = self.toast.replace(Some(toast)) {
            old.dismiss();
        }
    }

    /// A page that scrolls, under `name`.
    fn add_page(&self, name: &str, child: &impl IsA<gtk::Widget>) {
        let scroller = gtk::ScrolledWindow::builder()
            .child(child)
            .hscrollbar_policy(gtk::PolicyType::Never)
            .vexpand(true)
            .build();
        self.pages.add_named(&scroller, Some(name));
    }

    fn show(&self, name: &str) {
        if let Some(t) = self.toast.take() {
            t.dismiss();
        }
        self.pages.set_visible_child_name(name);
    }

    fn page(&self) -> Option<String> {
        self.pages.visible_child_name().map(|s| s.to_string())
    }

    /// Closing while a run goes on: asks whether to stop it (`texts`: heading, body, the
    /// answer that keeps it going, the one that stops it). Stopping calls `stop`, then
    /// closes the window.
    fn ask_to_stop(&self, texts: [String; 4], stop: impl Fn() + 'static) {
        let [heading, body, keep, end] = texts;
        let dialog = adw::MessageDialog::new(Some(&self.window), Some(&heading), Some(&body));
        dialog.add_response("continue", &keep);
        dialog.add_response("stop", &end);
        dialog.set_response_appearance("stop", adw::ResponseAppearance::Destructive);
        dialog.set_default_response(Some("continue"));
        dialog.set_close_response("continue");
        let window = self.window.clone();
        dialog.connect_response(None, move |_, response| {
            if response == "stop" {
                stop();
                window.close();
            }
        });
        dialog.present();
    }

    /// Lets the user pick a path into `entry`: in the qube `in_qube` names (read through
    /// its `qvm-run` program and `service`), else here with a file chooser doing `action`.
    fn choose_path(
        &self,
        entry: &impl IsA<gtk::Editable>,
        in_qube: Option<(std::path::PathBuf, String)>,
        service: &'static str,
        title: &str,
        action: gtk::FileChooserAction,
    ) {
        let entry: gtk::Editable = entry.clone().upcast();
        if let Some((reader, vm)) = in_qube {
            let shell = self.clone();
            background(
                move || pick::pick_in_qube(&reader, &vm, service),
                move |picked| match picked {
                    Ok(Some(p)) => entry.set_text(&p),
                    Ok(None) => {}
                    Err(e) => shell.toast(&e),
                },
            );
            return;
        }
        let chooser = gtk::FileChooserNative::new(
            Some(title),
            Some(&self.window),
            action,
            Some(&crate::i18n::tr("Choose")),
            Some(&crate::i18n::tr("Cancel")),
        );
        chooser.set_modal(true);
        // The chooser lives until it answers.
        let keep = std::rc::Rc::new(std::cell::RefCell::new(None));
        let kept = keep.clone();
        chooser.connect_response(move |c, response| {
            if response == gtk::ResponseType::Accept
                && let Some(p) = c.file().and_then(|f| f.path())
            {
                entry.set_text(&p.display().to_string());
            }
            kept.borrow_mut().take();
        });
        chooser.show();
        *keep.borrow_mut() = Some(chooser);
    }
}

/// `text` for widgets that read Pango markup (toasts, status page descriptions), shown as it
/// is: messages carry names from backups and the daemon.
fn plain(text: &str) -> String {
    gtk::glib::markup_escape_text(text).to_string()
}

/// An action row showing its title and subtitle as they are (libadwaita reads markup in
/// them unless told not to; qube names and messages come from backups and the daemon).
fn row(title: &str, subtitle: &str) -> adw::ActionRow {
    let row = adw::ActionRow::builder()
        .use_markup(false)
        .title(title)
        .build();
    if !subtitle.is_empty() {
        row.set_subtitle(subtitle);
    }
    row
}

/// A row with a check button in front that its activation toggles (Space, Enter, a click).
fn check_row(title: &str, subtitle: &str, name: &str) -> (adw::ActionRow, gtk::CheckButton) {
    let row = row(title, subtitle);
    let check = gtk::CheckButton::new();
    check.set_widget_name(name);
    check.set_valign(gtk::Align::Center);
    row.add_prefix(&check);
    row.set_activatable_widget(Some(&check));
    (row, check)
}

/// A row with a switch at its end that its activation flips.
fn switch_row(title: &str, subtitle: &str, name: &str) -> (adw::ActionRow, gtk::Switch) {
    let row = row(title, subtitle);
    let switch = gtk::Switch::new();
    switch.set_widget_name(name);
    switch.set_valign(gtk::Align::Center);
    row.add_suffix(&switch);
    row.set_activatable_widget(Some(&switch));
    (row, switch)
}

/// A passphrase row. libadwaita's button that shows the text has an icon and no name; it
/// gets one.
fn passphrase_row(title: &str, name: &str) -> adw::PasswordEntryRow {
    let row = adw::PasswordEntryRow::builder().title(title).build();
    row.set_widget_name(name);
    name_peek_button(
        row.upcast_ref(),
        &crate::i18n::tr("Show or hide the passphrase"),
    );
    row
}

/// Names the show-the-text button under `w`.
fn name_peek_button(w: &gtk::Widget, name: &str) {
    if let Some(b) = w.downcast_ref::<gtk::Button>()
        && b.icon_name()
            .is_some_and(|i| i.starts_with("view-reveal") || i.starts_with("view-conceal"))
    {
        crate::a11y::set_name(b, name);
        b.set_tooltip_text(Some(name));
    }
    let mut child = w.first_child();
    while let Some(c) = child {
        name_peek_button(&c, name);
        child = c.next_sibling();
    }
}

/// The selected string of a combo row over a string list.
fn combo_text(row: &adw::ComboRow) -> Option<String> {
    row.selected_item()
        .and_downcast::<gtk::StringObject>()
        .map(|s| s.string().to_string())
}

/// Selects `text` in a combo row over a string list; false when it is not there.
fn combo_select(row: &adw::ComboRow, text: &str) -> bool {
    let Some(model) = row.model() else {
        return false;
    };
    let found = (0..model.n_items()).find(|i| {
        model
            .item(*i)
            .and_downcast::<gtk::StringObject>()
            .is_some_and(|s| s.string() == text)
    });
    if let Some(i) = found {
        row.set_selected(i);
    }
    found.is_some()
}

/// Removes every row of a preferences group that was added with [`adw::PreferencesGroup::add`].
fn clear_group(group: &adw::PreferencesGroup, rows: &mut Vec<gtk::Widget>) {
    for r in rows.drain(..) {
        group.remove(&r);
    }
}

/// Runs a daemon call off the main thread and gives its answer to `done` on it.
fn call_then(
    client: &Client,
    method: &'static str,
    arg: String,
    done: impl FnOnce(Result<String, qubes_api::CallError>) + 'static,
) {
    let client = client.clone();
    background(move || client.call(method, "dom0", &arg, b""), done);
}
