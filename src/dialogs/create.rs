//! The create dialog: name, type, label, template, network qube, storage pool. What is
//! wrong with the name is said as it is typed (the daemon's rules, names in use), the system's
//! defaults are chosen and say what they are. A relm4 component: it creates the qube itself
//! (a refusal stays in the dialog) and tells the window which qube it created.

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::errors::describe;
use crate::i18n::tr;

/// Qube classes the create dialog offers.
pub const CLASSES: [&str; 3] = ["AppVM", "StandaloneVM", "TemplateVM"];

/// What the create dialog asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQube {
    /// Name.
    pub name: String,
    /// Class.
    pub class: String,
    /// Label name.
    pub label: String,
    /// Template (AppVM only; empty = default).
    pub template: String,
    /// Network qube: `None` = default, `Some("")` = none.
    pub netvm: Option<String>,
    /// Storage pool for every volume (`None` = the default pools).
    pub pool: Option<String>,
}

/// Creates the qube; then sets its netvm if one was chosen.
pub fn create_qube(client: &Client, q: &NewQube) -> Result<(), String> {
    let mut payload = format!("name={} label={}", q.name, q.label);
    let template = if q.class == "AppVM" {
        q.template.as_str()
    } else {
        ""
    };
    let method = match &q.pool {
        Some(pool) => {
            payload.push_str(&format!(" pool={pool}"));
            format!("admin.vm.CreateInPool.{}", q.class)
        }
        None => format!("admin.vm.Create.{}", q.class),
    };
    client
        .call(&method, "dom0", template, payload.as_bytes())
        .map_err(|e| describe(&e))?;
    if let Some(net) = &q.netvm {
        client
            .call("admin.vm.property.Set", &q.name, "netvm", net.as_bytes())
            .map_err(|e| describe(&e))?;
    }
    Ok(())
}

/// What the create dialog offers, from the window's table.
pub struct CreateChoices {
    /// Label names, in the daemon's order.
    pub labels: Vec<String>,
    /// Template qubes.
    pub templates: Vec<String>,
    /// Qubes providing network.
    pub networked: Vec<String>,
    /// Names in use.
    pub taken: Vec<String>,
}

/// The names shown for [`CLASSES`].
fn class_titles() -> [String; 3] {
    [tr("App qube"), tr("Standalone qube"), tr("Template")]
}

/// The system's defaults a new qube gets: template, network qube, storage pool.
fn read_defaults(client: &Client) -> [Option<String>; 3] {
    ["default_template", "default_netvm", "default_pool"].map(|p| {
        client
            .call("admin.property.Get", "dom0", p, b"")
            .ok()
            .and_then(|v| qubes_api::PropValue::parse(&v).ok())
            .map(|v| v.value)
    })
}

/// "default (X)", or "default" while X is not known, or "default (none)".
fn default_text(value: Option<&str>) -> String {
    match value {
        None => tr("default"),
        Some("") => crate::i18n::tr_default(&tr("none")),
        Some(v) => crate::i18n::tr_default(v),
    }
}

/// What opens the dialog.
pub struct CreateInit {
    /// The daemon.
    pub client: Client,
    /// What it offers.
    pub choices: CreateChoices,
    /// The window it belongs to.
    pub parent: gtk::Window,
}

/// What happens in the dialog.
#[derive(Debug)]
pub enum CreateMsg {
    /// The name field changed.
    Name(String),
    /// Storage pools and the system's defaults (template, network qube, pool), read.
    Read(Vec<String>, [Option<String>; 3]),
    /// Create was pressed.
    Create,
    /// The daemon's answer.
    Done(Result<(), String>),
}

/// What the dialog tells the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutput {
    /// This qube was created; open its settings if asked.
    Created {
        /// Its name.
        name: String,
        /// The user asked for its settings.
        open_settings: bool,
    },
}

/// The dialog's state.
pub struct CreateDialog {
    client: Client,
    choices: CreateChoices,
    /// Storage pools (after "default").
    pools: Vec<String>,
    /// What is wrong with the name typed (`None`: nothing; an empty name is wrong, but says so
    /// only once something was typed).
    name_problem: Option<String>,
    /// A creation is under way.
    busy: bool,
    /// The daemon's refusal.
    refused: Option<String>,
    /// Close the window (the qube exists).
    done: bool,
}

/// The dialog's widgets (public for tests).
pub struct CreateWidgets {
    /// The window.
    pub window: adw::Window,
    /// Name entry.
    pub name: gtk::Entry,
    /// What is wrong with the name, under it.
    pub name_problem: gtk::Label,
    /// Class choice ([`CLASSES`]).
    pub class: gtk::DropDown,
    /// Label choice.
    pub label: gtk::DropDown,
    /// Template choice (the system's default template chosen once known).
    pub template: gtk::DropDown,
    /// Network choice: default (saying which), none, then the network qubes.
    pub netvm: gtk::DropDown,
    /// Storage pool choice: default (saying which), then the pools (filled once read).
    pub pool: gtk::DropDown,
    /// Open the new qube's settings after creating it.
    pub open_settings: gtk::CheckButton,
    /// Create button.
    pub create: gtk::Button,
    /// The daemon's refusal.
    pub status: gtk::Label,
}

impl CreateDialog {
    /// The qube the widgets describe.
    fn new_qube(&self, w: &CreateWidgets) -> NewQube {
        let c = &self.choices;
        let pick = |d: &gtk::DropDown, list: &[String]| {
            list.get(d.selected() as usize).cloned().unwrap_or_default()
        };
        NewQube {
            name: w.name.text().to_string(),
            class: CLASSES[w.class.selected() as usize % CLASSES.len()].to_string(),
            label: pick(&w.label, &c.labels),
            template: pick(&w.template, &c.templates),
            netvm: match w.netvm.selected() {
                0 => None,
                1 => Some(String::new()),
                n => c.networked.get(n as usize - 2).cloned(),
            },
            pool: match w.pool.selected() {
                0 => None,
                n => self.pools.get(n as usize - 1).cloned(),
            },
        }
    }

    /// The network choices, "default" saying which qube it is when known.
    fn network_texts(&self, default: Option<&str>) -> Vec<String> {
        let mut texts = vec![default_text(default), tr("none")];
        texts.extend(self.choices.networked.iter().cloned());
        texts
    }
}

/// Replaces a drop-down's choices, keeping the one chosen.
fn set_choices(d: &gtk::DropDown, texts: &[String]) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let chosen = d.selected();
    d.set_model(Some(&gtk::StringList::new(&refs)));
    d.set_selected(chosen);
}

impl Component for CreateDialog {
    type CommandOutput = ();
    type Init = CreateInit;
    type Input = CreateMsg;
    type Output = CreateOutput;
    type Root = adw::Window;
    type Widgets = CreateWidgets;

    fn init_root() -> adw::Window {
        adw::Window::builder()
            .title(tr("Create new qube"))
            .modal(true)
            .default_width(420)
            .build()
    }

    fn init(
        init: CreateInit,
        window: adw::Window,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let CreateInit {
            client,
            choices,
            parent,
        } = init;
        window.set_transient_for(Some(&parent));
        let header = adw::HeaderBar::new();
        let create = gtk::Button::with_label(&tr("Create"));
        create.add_css_class("suggested-action");
        create.set_sensitive(false);
        header.pack_end(&create);
        let form = crate::widgets::page_box(6);
        let caption = |t: &str| gtk::Label::builder().label(t).xalign(0.0).build();
        let name = gtk::Entry::new();
        name.set_max_length(crate::limits::NAME_MAX as i32 + 1);
        name.set_activates_default(true);
        let name_problem = gtk::Label::builder()
            .wrap(true)
            .xalign(0.0)
            .visible(false)
            .build();
        name_problem.add_css_class("error");
        let titles = class_titles();
        let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
        let class = gtk::DropDown::from_strings(&title_refs);
        let label_refs: Vec<&str> = choices.labels.iter().map(String::as_str).collect();
        let label = gtk::DropDown::from_strings(&label_refs);
        let template_refs: Vec<&str> = choices.templates.iter().map(String::as_str).collect();
        let template = gtk::DropDown::from_strings(&template_refs);
        let netvm = gtk::DropDown::from_strings(&[]);
        let pool = gtk::DropDown::from_strings(&[tr("default").as_str()]);
        let open_settings =
            gtk::CheckButton::with_label(&tr("Open the qube's settings after creating it"));
        let status = gtk::Label::builder().wrap(true).xalign(0.0).build();
        status.add_css_class("error");
        for (t, w) in [
            (tr("Name"), name.clone().upcast::<gtk::Widget>()),
            (tr("Type"), class.clone().upcast()),
            (tr("Label"), label.clone().upcast()),
            (tr("Template"), template.clone().upcast()),
            (tr("Network qube"), netvm.clone().upcast()),
            (tr("Storage pool"), pool.clone().upcast()),
        ] {
            w.set_tooltip_text(Some(&t));
            crate::a11y::set_name(&w, &t);
            form.append(&caption(&t));
            form.append(&w);
            if w == name.clone().upcast::<gtk::Widget>() {
                form.append(&name_problem);
            }
        }
        form.append(&open_settings);
        form.append(&status);
        {
            // Only app qubes are based on a template.
            let template = template.clone();
            class.connect_selected_notify(move |c| template.set_sensitive(c.selected() == 0));
        }
        {
            let input = sender.input_sender().clone();
            name.connect_changed(move |e| input.emit(CreateMsg::Name(e.text().to_string())));
            let input = sender.input_sender().clone();
            create.connect_clicked(move |_| input.emit(CreateMsg::Create));
        }
        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        content.append(&form);
        window.set_content(Some(&content));
        window.set_default_widget(Some(&create));
        crate::widgets::close_on_escape(&window);
        {
            // Pools and defaults are read in the background; "default" works until they come.
            let (client, input) = (client.clone(), sender.input_sender().clone());
            std::thread::spawn(move || {
                let pools = client
                    .call("admin.pool.List", "dom0", "", b"")
                    .map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default();
                input.emit(CreateMsg::Read(pools, read_defaults(&client)));
            });
        }
        let model = CreateDialog {
            client,
            choices,
            pools: Vec::new(),
            name_problem: crate::limits::name_problem("", []),
            busy: false,
            refused: None,
            done: false,
        };
        set_choices(&netvm, &model.network_texts(None));
        netvm.set_selected(0);
        window.present();
        name.grab_focus();
        let widgets = CreateWidgets {
            window,
            name,
            name_problem,
            class,
            label,
            template,
            netvm,
            pool,
            open_settings,
            create,
            status,
        };
        ComponentParts { model, widgets }
    }

    fn update_with_view(
        &mut self,
        w: &mut CreateWidgets,
        msg: CreateMsg,
        sender: ComponentSender<Self>,
        _root: &adw::Window,
    ) {
        match msg {
            CreateMsg::Name(text) => {
                let taken = self.choices.taken.iter().map(String::as_str);
                self.name_problem = crate::limits::name_problem(&text, taken);
            }
            CreateMsg::Read(pools, [template, netvm, pool]) => {
                let mut texts = vec![default_text(pool.as_deref())];
                texts.extend(pools.iter().cloned());
                set_choices(&w.pool, &texts);
                self.pools = pools;
                if let Some(t) = template
                    && let Some(pos) = self.choices.templates.iter().position(|n| *n == t)
                {
                    w.template.set_selected(pos as u32);
                }
                set_choices(&w.netvm, &self.network_texts(netvm.as_deref()));
            }
            CreateMsg::Create if !self.busy && self.name_problem.is_none() => {
                self.busy = true;
                self.refused = None;
                let q = self.new_qube(w);
                let (client, input) = (self.client.clone(), sender.input_sender().clone());
                std::thread::spawn(move || input.emit(CreateMsg::Done(create_qube(&client, &q))));
            }
            CreateMsg::Create => {}
            CreateMsg::Done(Ok(())) => {
                self.busy = false;
                self.done = true;
                let _ = sender.output(CreateOutput::Created {
                    name: w.name.text().to_string(),
                    open_settings: w.open_settings.is_active(),
                });
            }
            CreateMsg::Done(Err(e)) => {
                self.busy = false;
                self.refused = Some(e);
            }
        }
        // The view: Create waits for a good name; what is wrong is said.
        let typed = !w.name.text().is_empty();
        w.create
            .set_sensitive(self.name_problem.is_none() && !self.busy);
        w.name_problem
            .set_visible(typed && self.name_problem.is_some());
        w.name_problem
            .set_text(self.name_problem.as_deref().unwrap_or_default());
        w.status
            .set_text(self.refused.as_deref().unwrap_or_default());
        if self.done {
            w.window.close();
        }
    }
}
