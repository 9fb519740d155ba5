//! Changing the template or the network qube of several qubes at once: one choice, applied
//! to each selected qube; failures are listed per qube and the dialog stays open.

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use crate::errors::describe;
use crate::i18n::tr;
use crate::widgets::background;

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
}

/// Asks for one value of `prop` and applies it to `qubes`; the failures, one line per qube,
/// go to `failed` (heading, text), which shows them in a message of its own: a message dialog
/// closes with its answer and cannot be shown again.
pub fn bulk_dialog(
    parent: &impl IsA<gtk::Window>,
    client: Client,
    heading: &str,
    prop: &'static str,
    choices: Vec<Choice>,
    qubes: Vec<String>,
    failed: impl Fn(String, String) + 'static,
) -> BulkDialog {
    let body = format!("{}\n{}", tr("Applies to:"), qubes.join(", "));
    let dialog = adw::MessageDialog::new(Some(parent), Some(heading), Some(&body));
    let texts: Vec<&str> = choices.iter().map(|(_, t)| t.as_str()).collect();
    let choice = gtk::DropDown::from_strings(&texts);
    choice.set_tooltip_text(Some(heading));
    crate::a11y::set_name(&choice, heading);
    dialog.set_extra_child(Some(&choice));
    dialog.add_response("cancel", &tr("Cancel"));
    dialog.add_response("apply", &tr("Apply"));
    dialog.set_response_appearance("apply", adw::ResponseAppearance::Suggested);
    dialog.set_default_response(Some("apply"));
    dialog.set_close_response("cancel");
    {
        let choice = choice.clone();
        let failed = std::rc::Rc::new(failed);
        let heading = heading.to_string();
        dialog.connect_response(Some("apply"), move |_, _| {
            let Some((value, _)) = choices.get(choice.selected() as usize).cloned() else {
                return;
            };
            let (client, qubes, failed) = (client.clone(), qubes.clone(), failed.clone());
            let heading = tr("%s: not every qube changed").replacen("%s", &heading, 1);
            background(
                move || apply_to_all(&client, &qubes, prop, &value),
                move |failures: Vec<String>| {
                    if !failures.is_empty() {
                        failed(heading, failures.join("\n"));
                    }
                },
            );
        });
    }
    dialog.present();
    BulkDialog { dialog, choice }
}
