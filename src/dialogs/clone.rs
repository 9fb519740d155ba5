//! The clone dialog (`ui/clone.ui`): the new qube's name, checked as it is typed, its label
//! (the original's at first) and storage pool. A relm4 component: its output is the user's
//! decision; the cloning ([`crate::clone`]) is the window's work.

use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::i18n::tr;
use crate::qube_icons::QubeKind;
use crate::templates::clone::QubeCloneDialog;

/// What opens the dialog.
pub struct CloneInit {
    /// The qube to copy.
    pub src: String,
    /// Its kind (for the label icons).
    pub kind: QubeKind,
    /// Its label.
    pub label: String,
    /// Label names, in the daemon's order, and their colours.
    pub labels: Vec<(String, String)>,
    /// Names in use.
    pub taken: Vec<String>,
    /// The daemon (to list the storage pools).
    pub client: qubes_api::Client,
    /// The window it belongs to.
    pub parent: gtk::Window,
}

/// What happens in the dialog.
#[derive(Debug)]
pub enum CloneMsg {
    /// The name field changed.
    Typed(String),
    /// Storage pools and the default one, read.
    Pools(Vec<String>, Option<String>),
    /// Clone was pressed.
    Clone,
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
        /// Its label.
        label: String,
        /// Its storage pool (`None`: the default pools).
        pool: Option<String>,
        /// Open its settings once it exists.
        open_settings: bool,
    },
}

/// The dialog's state.
pub struct CloneDialog {
    src: String,
    labels: Vec<(String, String)>,
    taken: Vec<String>,
    pools: Vec<String>,
    dst: String,
    problem: Option<String>,
}

fn strings(texts: &[String]) -> gtk::StringList {
    gtk::StringList::new(&texts.iter().map(String::as_str).collect::<Vec<_>>())
}

impl Component for CloneDialog {
    type CommandOutput = ();
    type Init = CloneInit;
    type Input = CloneMsg;
    type Output = CloneOutput;
    type Root = QubeCloneDialog;
    type Widgets = QubeCloneDialog;

    fn init_root() -> QubeCloneDialog {
        crate::resources::init();
        QubeCloneDialog::new()
    }

    fn init(
        init: CloneInit,
        root: QubeCloneDialog,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let CloneInit {
            src,
            kind,
            label,
            labels,
            taken,
            client,
            parent,
        } = init;
        root.set_transient_for(Some(&parent));
        root.set_title(Some(&tr("Clone %s").replacen("%s", &src, 1)));
        let p = root.parts();
        {
            let colours: std::collections::HashMap<String, String> =
                labels.iter().cloned().collect();
            p.label
                .set_factory(Some(&crate::widgets::icon_text_factory(move |l| {
                    let colour = colours.get(l)?;
                    Some(crate::resources::qube_texture(kind, colour).upcast())
                })));
        }
        let names: Vec<String> = labels.iter().map(|(n, _)| n.clone()).collect();
        p.label.set_model(Some(&strings(&names)));
        if let Some(pos) = names.iter().position(|n| *n == label) {
            p.label.set_selected(pos as u32);
        }
        p.pool.set_model(Some(&strings(&[tr("default")])));
        {
            let input = sender.input_sender().clone();
            p.name
                .connect_changed(move |e| input.emit(CloneMsg::Typed(e.text().to_string())));
            let input = sender.input_sender().clone();
            p.clone
                .connect_clicked(move |_| input.emit(CloneMsg::Clone));
            let input = sender.input_sender().clone();
            p.name
                .connect_entry_activated(move |_| input.emit(CloneMsg::Clone));
        }
        crate::widgets::close_on_escape(&root);
        {
            let input = sender.input_sender().clone();
            std::thread::spawn(move || {
                let pools = client
                    .call("admin.pool.List", "dom0", "", b"")
                    .map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default();
                let default = client
                    .call("admin.property.Get", "dom0", "default_pool", b"")
                    .ok()
                    .and_then(|v| qubes_api::PropValue::parse(&v).ok())
                    .map(|v| v.value);
                input.emit(CloneMsg::Pools(pools, default));
            });
        }
        let model = CloneDialog {
            src: src.clone(),
            labels,
            taken,
            pools: Vec::new(),
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
        p.name.set_text(&first);
        root.present();
        p.name.grab_focus();
        ComponentParts {
            model,
            widgets: root,
        }
    }

    fn update_with_view(
        &mut self,
        w: &mut QubeCloneDialog,
        msg: CloneMsg,
        sender: ComponentSender<Self>,
        _root: &QubeCloneDialog,
    ) {
        let p = w.parts();
        match msg {
            CloneMsg::Typed(text) => {
                self.problem =
                    crate::limits::name_problem(&text, self.taken.iter().map(String::as_str));
                self.dst = text;
            }
            CloneMsg::Pools(pools, default) => {
                let mut texts = vec![crate::dialogs::create::default_text(default.as_deref())];
                texts.extend(pools.iter().cloned());
                let chosen = p.pool.selected();
                p.pool.set_model(Some(&strings(&texts)));
                p.pool.set_selected(chosen);
                self.pools = pools;
            }
            CloneMsg::Clone if self.problem.is_none() => {
                let label = self
                    .labels
                    .get(p.label.selected() as usize)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                let pool = match p.pool.selected() {
                    0 => None,
                    n => self.pools.get(n as usize - 1).cloned(),
                };
                let _ = sender.output(CloneOutput::Clone {
                    src: self.src.clone(),
                    dst: self.dst.clone(),
                    label,
                    pool,
                    open_settings: p.open_settings.is_active(),
                });
                w.close();
                return;
            }
            CloneMsg::Clone => {}
        }
        p.clone.set_sensitive(self.problem.is_none());
        p.name_problem.set_visible(self.problem.is_some());
        p.name_problem
            .set_text(self.problem.as_deref().unwrap_or_default());
    }
}
