//! Changing the template or the network qube of several qubes at once: one choice, applied
//! to each selected qube; failures are listed per qube and the dialog stays open.

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use crate::dialogs::background;
use crate::errors::describe;
use crate::i18n::tr;

/// One choice: the value to set (`None`: reset to the default) and the text shown.
pub type Choice = (Option<String>, String);

/// Sets (or resets) `prop` on every qube; returns `qube: message` for each failure.
pub fn apply_to_all(
    client: &Client,
    qubes: &[String],
    prop: &str,
    value: &Option<String>,
) -> Vec<String> {
    qubes
        .iter()
        .filter_map(|vm| {
            let r = match value {
                None => client.call("admin.vm.property.Reset", vm, prop, b""),
                Some(v) => client.call("admin.vm.property.Set", vm, prop, v.as_bytes()),
            };
            r.err().map(|e| format!("{vm}: {}", describe(&e)))
        })
        .collect()
}

/// The dialog's widgets, for tests.
pub struct BulkDialog {
    /// The dialog.
    pub dialog: adw::MessageDialog,
    /// The choice.
    pub choice: gtk::DropDown,
    /// Failures.
    pub status: gtk::Label,
}

/// Asks for one value of `prop` and applies it to `qubes`.
pub fn bulk_dialog(
    parent: &impl IsA<gtk::Window>,
    client: Client,
    heading: &str,
    prop: &'static str,
    choices: Vec<Choice>,
    qubes: Vec<String>,
) -> BulkDialog {
    let body = format!("{}\n{}", tr("Applies to:"), qubes.join(", "));
    let dialog = adw::MessageDialog::new(Some(parent), Some(heading), Some(&body));
    let texts: Vec<&str> = choices.iter().map(|(_, t)| t.as_str()).collect();
    let choice = gtk::DropDown::from_strings(&texts);
    choice.set_tooltip_text(Some(heading));
    crate::a11y::set_name(&choice, heading);
    let status = gtk::Label::builder().wrap(true).xalign(0.0).build();
    status.add_css_class("error");
    let extra = gtk::Box::new(gtk::Orientation::Vertical, 6);
    extra.append(&choice);
    extra.append(&status);
    dialog.set_extra_child(Some(&extra));
    dialog.add_response("cancel", &tr("Cancel"));
    dialog.add_response("apply", &tr("Apply"));
    dialog.set_response_appearance("apply", adw::ResponseAppearance::Suggested);
    dialog.set_default_response(Some("apply"));
    dialog.set_close_response("cancel");
    {
        let (choice, status) = (choice.clone(), status.clone());
        dialog.connect_response(None, move |d, response| {
            if response != "apply" {
                return;
            }
            let Some((value, _)) = choices.get(choice.selected() as usize).cloned() else {
                return;
            };
            d.set_response_enabled("apply", false);
            let (client, qubes, status, d) =
                (client.clone(), qubes.clone(), status.clone(), d.clone());
            background(
                move || apply_to_all(&client, &qubes, prop, &value),
                move |failures: Vec<String>| {
                    if failures.is_empty() {
                        d.close();
                    } else {
                        status.set_text(&failures.join("\n"));
                        d.set_response_enabled("apply", true);
                        d.present();
                    }
                },
            );
        });
    }
    dialog.present();
    BulkDialog {
        dialog,
        choice,
        status,
    }
}
