//! Changing the template or the network qube of several qubes at once: one choice for all the
//! selected qubes it applies to. A relm4 component: its output is the user's choice; applying
//! it ([`apply_to_all`]) is the window's work, which lists failures per qube.

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

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

/// What opens the dialog.
pub struct BulkInit {
    /// Its heading ("Change template").
    pub heading: String,
    /// The property changed.
    pub prop: &'static str,
    /// The choices.
    pub choices: Vec<Choice>,
    /// The qubes it applies to.
    pub qubes: Vec<String>,
    /// The window it belongs to.
    pub parent: gtk::Window,
}

/// What the dialog tells the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkOutput {
    /// Set `prop` to `value` (`None`: reset) on `qubes`.
    Apply {
        /// The property.
        prop: &'static str,
        /// The value.
        value: Option<String>,
        /// The qubes.
        qubes: Vec<String>,
        /// The dialog's heading (for failures).
        heading: String,
    },
}

/// The dialog's state.
pub struct BulkDialog {
    init: BulkInit,
}

/// Its widgets (public for tests).
pub struct BulkWidgets {
    /// The dialog.
    pub dialog: adw::MessageDialog,
    /// The choice.
    pub choice: gtk::DropDown,
}

impl SimpleComponent for BulkDialog {
    type Init = BulkInit;
    /// The chosen entry, when Apply is pressed.
    type Input = u32;
    type Output = BulkOutput;
    type Root = adw::MessageDialog;
    type Widgets = BulkWidgets;

    fn init_root() -> adw::MessageDialog {
        adw::MessageDialog::builder().modal(true).build()
    }

    fn init(
        init: BulkInit,
        dialog: adw::MessageDialog,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        dialog.set_transient_for(Some(&init.parent));
        dialog.set_heading(Some(&init.heading));
        dialog.set_body(&format!("{}\n{}", tr("Applies to:"), init.qubes.join(", ")));
        let texts: Vec<&str> = init.choices.iter().map(|(_, t)| t.as_str()).collect();
        let choice = gtk::DropDown::from_strings(&texts);
        choice.set_tooltip_text(Some(&init.heading));
        crate::a11y::set_name(&choice, &init.heading);
        dialog.set_extra_child(Some(&choice));
        dialog.add_response("cancel", &tr("Cancel"));
        dialog.add_response("apply", &tr("Apply"));
        dialog.set_response_appearance("apply", adw::ResponseAppearance::Suggested);
        dialog.set_default_response(Some("apply"));
        dialog.set_close_response("cancel");
        {
            let (input, choice) = (sender.input_sender().clone(), choice.clone());
            dialog.connect_response(Some("apply"), move |_, _| input.emit(choice.selected()));
        }
        dialog.present();
        ComponentParts {
            model: BulkDialog { init },
            widgets: BulkWidgets { dialog, choice },
        }
    }

    fn update(&mut self, chosen: u32, sender: ComponentSender<Self>) {
        if let Some((value, _)) = self.init.choices.get(chosen as usize) {
            let _ = sender.output(BulkOutput::Apply {
                prop: self.init.prop,
                value: value.clone(),
                qubes: self.init.qubes.clone(),
                heading: self.init.heading.clone(),
            });
        }
    }
}
