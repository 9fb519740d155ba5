//! The remove dialog: the user types the qube's name to confirm; a qube something still
//! refers to cannot be removed, and the dialog says by what. A relm4 component: its output is
//! the user's decision, the removal itself is the window's work.

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::i18n::tr;

/// What still refers to a qube (so the user sees why a removal would fail).
pub fn dependents(client: &Client, vm: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(list) = client.vm_list() else {
        return out;
    };
    for q in list.iter().filter(|q| q.name != vm) {
        for prop in ["template", "netvm", "default_dispvm", "management_dispvm"] {
            if let Ok(v) = client.call("admin.vm.property.Get", &q.name, prop, b"")
                && v.starts_with("default=False ")
                && v.rsplit(' ').next() == Some(vm)
            {
                out.push(format!("{}: {prop}", q.name));
            }
        }
    }
    if let Ok(all) = client.call("admin.property.GetAll", "dom0", "", b"") {
        for line in all.lines() {
            let mut parts = line.splitn(2, ' ');
            let (Some(name), Some(rest)) = (parts.next(), parts.next()) else {
                continue;
            };
            if rest.starts_with("default=False type=vm ") && rest.rsplit(' ').next() == Some(vm) {
                out.push(format!("{}: {name}", tr("global")));
            }
        }
    }
    out
}

/// What opens the dialog.
pub struct RemoveInit {
    /// The daemon (to list what refers to the qube).
    pub client: Client,
    /// The qube.
    pub vm: String,
    /// The window it belongs to.
    pub parent: gtk::Window,
}

/// What happens in the dialog.
#[derive(Debug)]
pub enum RemoveMsg {
    /// The name field changed.
    Typed(String),
    /// What still refers to the qube, read.
    Dependents(Vec<String>),
    /// The user's answer (a response id).
    Answer(String),
}

/// What the dialog tells the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutput {
    /// Remove this qube.
    Remove(String),
}

/// The dialog's state.
pub struct RemoveDialog {
    vm: String,
    /// The name typed matches.
    confirmed: bool,
    /// What still refers to the qube (removal is refused then).
    dependents: Vec<String>,
}

/// Its widgets.
pub struct RemoveWidgets {
    dialog: adw::MessageDialog,
    /// The name field.
    pub entry: gtk::Entry,
    /// What refers to the qube.
    pub status: gtk::Label,
}

impl SimpleComponent for RemoveDialog {
    type Init = RemoveInit;
    type Input = RemoveMsg;
    type Output = RemoveOutput;
    type Root = adw::MessageDialog;
    type Widgets = RemoveWidgets;

    fn init_root() -> adw::MessageDialog {
        adw::MessageDialog::builder().modal(true).build()
    }

    fn init(
        init: RemoveInit,
        root: adw::MessageDialog,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let RemoveInit { client, vm, parent } = init;
        root.set_transient_for(Some(&parent));
        root.set_heading(Some(&tr("Remove %s?").replacen("%s", &vm, 1)));
        root.set_body(&tr(
            "This deletes the qube and its data. Type its name to confirm.",
        ));
        let entry = gtk::Entry::new();
        entry.set_tooltip_text(Some(&tr("Name of the qube to remove")));
        crate::a11y::set_name(&entry, &tr("Name of the qube to remove"));
        let status = gtk::Label::builder().wrap(true).xalign(0.0).build();
        let extra = gtk::Box::new(gtk::Orientation::Vertical, 6);
        extra.append(&entry);
        extra.append(&status);
        root.set_extra_child(Some(&extra));
        root.add_response("cancel", &tr("Cancel"));
        root.add_response("remove", &tr("Remove"));
        root.set_response_appearance("remove", adw::ResponseAppearance::Destructive);
        root.set_response_enabled("remove", false);
        root.set_close_response("cancel");
        {
            let input = sender.input_sender().clone();
            entry.connect_changed(move |e| input.emit(RemoveMsg::Typed(e.text().to_string())));
            let input = sender.input_sender().clone();
            root.connect_response(None, move |_, r| input.emit(RemoveMsg::Answer(r.into())));
        }
        {
            // What refers to the qube is read in the background.
            let (client, vm, input) = (client.clone(), vm.clone(), sender.input_sender().clone());
            std::thread::spawn(move || input.emit(RemoveMsg::Dependents(dependents(&client, &vm))));
        }
        root.present();
        let model = RemoveDialog {
            vm,
            confirmed: false,
            dependents: Vec::new(),
        };
        ComponentParts {
            model,
            widgets: RemoveWidgets {
                dialog: root.clone(),
                entry,
                status,
            },
        }
    }

    fn update(&mut self, msg: RemoveMsg, sender: ComponentSender<Self>) {
        match msg {
            RemoveMsg::Typed(text) => self.confirmed = text == self.vm,
            RemoveMsg::Dependents(deps) => self.dependents = deps,
            RemoveMsg::Answer(r)
                if r == "remove" && self.confirmed && self.dependents.is_empty() =>
            {
                let _ = sender.output(RemoveOutput::Remove(self.vm.clone()));
            }
            RemoveMsg::Answer(_) => {}
        }
    }

    fn update_view(&self, widgets: &mut RemoveWidgets, _sender: ComponentSender<Self>) {
        // A qube something still refers to cannot be removed (the daemon refuses): say what,
        // and keep Remove off.
        widgets
            .dialog
            .set_response_enabled("remove", self.confirmed && self.dependents.is_empty());
        if !self.dependents.is_empty() {
            widgets.status.set_text(&format!(
                "{}\n{}",
                tr("It cannot be removed while these use it:"),
                self.dependents.join("\n")
            ));
        }
    }
}
