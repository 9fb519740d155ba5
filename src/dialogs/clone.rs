//! The clone dialog: the new qube's name, checked as it is typed. A relm4 component: its
//! output is the user's decision; the cloning ([`crate::clone`]) is the window's work.

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::i18n::tr;

/// What opens the dialog.
pub struct CloneInit {
    /// The qube to copy.
    pub src: String,
    /// Names in use.
    pub taken: Vec<String>,
    /// The window it belongs to.
    pub parent: gtk::Window,
}

/// What happens in the dialog.
#[derive(Debug)]
pub enum CloneMsg {
    /// The name field changed.
    Typed(String),
    /// The user's answer (a response id).
    Answer(String),
}

/// What the dialog tells the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneOutput {
    /// Copy `src` as `dst`.
    Clone {
        /// The qube copied.
        src: String,
        /// The new qube's name.
        dst: String,
    },
}

/// The dialog's state.
pub struct CloneDialog {
    src: String,
    taken: Vec<String>,
    dst: String,
    problem: Option<String>,
}

/// Its widgets (public for tests).
pub struct CloneWidgets {
    dialog: adw::MessageDialog,
    /// The new name.
    pub entry: gtk::Entry,
    /// What is wrong with it.
    pub problem: gtk::Label,
}

impl SimpleComponent for CloneDialog {
    type Init = CloneInit;
    type Input = CloneMsg;
    type Output = CloneOutput;
    type Root = adw::MessageDialog;
    type Widgets = CloneWidgets;

    fn init_root() -> adw::MessageDialog {
        adw::MessageDialog::builder().modal(true).build()
    }

    fn init(
        init: CloneInit,
        root: adw::MessageDialog,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let CloneInit { src, taken, parent } = init;
        root.set_transient_for(Some(&parent));
        root.set_heading(Some(&tr("Clone %s").replacen("%s", &src, 1)));
        root.set_body(&tr("Name of the new qube:"));
        let entry = gtk::Entry::new();
        entry.set_tooltip_text(Some(&tr("Name of the new qube")));
        crate::a11y::set_name(&entry, &tr("Name of the new qube"));
        entry.set_activates_default(true);
        let problem = gtk::Label::builder()
            .wrap(true)
            .xalign(0.0)
            .visible(false)
            .build();
        problem.add_css_class("error");
        let extra = gtk::Box::new(gtk::Orientation::Vertical, 6);
        extra.append(&entry);
        extra.append(&problem);
        root.set_extra_child(Some(&extra));
        root.add_response("cancel", &tr("Cancel"));
        root.add_response("clone", &tr("Clone"));
        root.set_response_appearance("clone", adw::ResponseAppearance::Suggested);
        root.set_default_response(Some("clone"));
        root.set_close_response("cancel");
        {
            let input = sender.input_sender().clone();
            entry.connect_changed(move |e| input.emit(CloneMsg::Typed(e.text().to_string())));
            let input = sender.input_sender().clone();
            root.connect_response(None, move |_, r| input.emit(CloneMsg::Answer(r.into())));
        }
        let model = CloneDialog {
            src: src.clone(),
            taken,
            dst: String::new(),
            problem: None,
        };
        // A free name to start from: src-clone, src-clone-2...
        let first = (1..)
            .map(|n| match n {
                1 => format!("{src}-clone"),
                n => format!("{src}-clone-{n}"),
            })
            .find(|n| !model.taken.contains(n))
            .unwrap_or_default();
        entry.set_text(&first);
        root.present();
        ComponentParts {
            model,
            widgets: CloneWidgets {
                dialog: root.clone(),
                entry,
                problem,
            },
        }
    }

    fn update(&mut self, msg: CloneMsg, sender: ComponentSender<Self>) {
        match msg {
            CloneMsg::Typed(text) => {
                self.problem =
                    crate::limits::name_problem(&text, self.taken.iter().map(String::as_str));
                self.dst = text;
            }
            CloneMsg::Answer(r) if r == "clone" && self.problem.is_none() => {
                let _ = sender.output(CloneOutput::Clone {
                    src: self.src.clone(),
                    dst: self.dst.clone(),
                });
            }
            CloneMsg::Answer(_) => {}
        }
    }

    fn update_view(&self, w: &mut CloneWidgets, _sender: ComponentSender<Self>) {
        w.dialog
            .set_response_enabled("clone", self.problem.is_none());
        w.problem.set_visible(self.problem.is_some());
        w.problem
            .set_text(self.problem.as_deref().unwrap_or_default());
    }
}
