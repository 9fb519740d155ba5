//! Renaming a qube from its settings, as the reference manager does it (the Admin API has no
//! rename, [`crate::clone::rename_qube`]): asked for the new name, checked as it is typed,
//! while the qube is halted; the copy's settings open once it exists.

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use super::{Msg, Settings, SettingsOutput, Widgets};
use crate::clone::Renamed;
use crate::i18n::tr;

impl Settings {
    /// Asks for the new name.
    pub(super) fn ask_rename(
        &mut self,
        root: &adw::PreferencesWindow,
        sender: &ComponentSender<Self>,
    ) {
        let Some(loaded) = &self.loaded else { return };
        let old = self.vm().to_string();
        let dialog = adw::MessageDialog::new(
            Some(root),
            Some(&tr("Rename %s").replacen("%s", &old, 1)),
            Some(&tr(
                "The qube is copied to the new name, whatever used it is pointed at the copy, and the old qube is removed. Changes not applied yet are lost.",
            )),
        );
        let entry = gtk::Entry::new();
        entry.set_text(&old);
        entry.set_activates_default(true);
        crate::a11y::set_name(&entry, &tr("New name"));
        entry.set_tooltip_text(Some(&tr("New name")));
        let problem = gtk::Label::builder().wrap(true).xalign(0.0).build();
        problem.add_css_class("error");
        let extra = gtk::Box::new(gtk::Orientation::Vertical, 6);
        extra.append(&entry);
        extra.append(&problem);
        dialog.set_extra_child(Some(&extra));
        dialog.add_response("cancel", &tr("Cancel"));
        dialog.add_response("rename", &tr("Rename"));
        dialog.set_response_appearance("rename", adw::ResponseAppearance::Suggested);
        dialog.set_default_response(Some("rename"));
        dialog.set_close_response("cancel");
        let taken = loaded.names.clone();
        let check = {
            let (dialog, problem) = (dialog.clone(), problem.clone());
            move |text: &str| {
                let wrong = crate::limits::name_problem(text, taken.iter().map(String::as_str));
                problem.set_text(wrong.as_deref().unwrap_or_default());
                problem.set_visible(wrong.is_some());
                dialog.set_response_enabled("rename", wrong.is_none());
            }
        };
        check(&old);
        entry.connect_changed(move |e| check(&e.text()));
        let input = sender.input_sender().clone();
        let typed = entry.clone();
        dialog.connect_response(Some("rename"), move |_, _| {
            input.emit(Msg::Rename(typed.text().to_string()));
        });
        dialog.present();
        self.question = Some(dialog);
    }

    /// Renames on a worker thread; its steps show in a toast.
    pub(super) fn rename(
        &mut self,
        new: String,
        widgets: &mut Widgets,
        sender: &ComponentSender<Self>,
    ) {
        let old = self.vm().to_string();
        self.busy = true;
        widgets.toast(
            &tr("Renaming %s to %s…")
                .replacen("%s", &old, 1)
                .replacen("%s", &new, 1),
            false,
        );
        let (client, input) = (self.client.clone(), sender.input_sender().clone());
        std::thread::spawn(move || {
            let result = crate::clone::rename_qube(&client, &old, &new, &|_| {});
            input.emit(Msg::Renamed(new, result));
        });
    }

    /// The rename ended: the copy's settings replace these; a rename done in part says what
    /// still names the old qube.
    pub(super) fn renamed(
        &mut self,
        new: String,
        result: Result<Renamed, String>,
        widgets: &mut Widgets,
        root: &adw::PreferencesWindow,
        sender: &ComponentSender<Self>,
    ) {
        self.busy = false;
        match result {
            Err(e) => widgets.toast(&format!("{}: {e}", tr("Not renamed")), true),
            Ok(outcome) => {
                if let Renamed::Partly(left) = &outcome {
                    let old = self.vm().to_string();
                    let note = adw::MessageDialog::new(
                        root.transient_for().as_ref(),
                        Some(&tr("Renamed in part")),
                        Some(&format!(
                            "{}\n{}",
                            tr("The system now has both %1 and %2. These still name %1: change them, then remove %1.")
                                .replace("%1", &old)
                                .replace("%2", &new),
                            left.join("\n")
                        )),
                    );
                    note.add_response("close", &tr("Close"));
                    note.present();
                }
                let _ = sender.output(SettingsOutput::Renamed(new));
                self.may_close.set(true);
                root.close();
            }
        }
    }
}
