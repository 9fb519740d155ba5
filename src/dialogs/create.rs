//! The create dialog (`ui/create.ui`): name, type (app qube, template, standalone qube, named
//! disposable, disposable template), label, what it is based on (a template; for a template
//! or a standalone qube a template to copy, or nothing), network qube and whether it provides
//! network, initial memory, storage pool. What is wrong with the name is said as it is typed;
//! the system's defaults are chosen and say what they are. A relm4 component: it creates the
//! qube itself (a refusal stays in the dialog, and nothing half-made stays behind) and tells
//! the window which qube it created.

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use crate::errors::describe;
use crate::i18n::tr;
use crate::qube_icons::QubeKind;
use crate::templates::create::QubeCreateDialog;

/// What a new qube is, as the dialog offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKind {
    /// An app qube on a template.
    App,
    /// A template: a copy of a template, or empty.
    Template,
    /// A standalone qube: a copy of a template, or empty.
    Standalone,
    /// A disposable with a name of its own (`DispVM` on a disposable template).
    NamedDisposable,
    /// An app qube that is a disposable template.
    DisposableTemplate,
}

impl NewKind {
    /// The kinds, in the dialog's order.
    pub const ALL: [NewKind; 5] = [
        NewKind::App,
        NewKind::Template,
        NewKind::Standalone,
        NewKind::NamedDisposable,
        NewKind::DisposableTemplate,
    ];

    /// The qube class created.
    pub fn class(self) -> &'static str {
        match self {
            NewKind::App | NewKind::DisposableTemplate => "AppVM",
            NewKind::Template => "TemplateVM",
            NewKind::Standalone => "StandaloneVM",
            NewKind::NamedDisposable => "DispVM",
        }
    }

    /// Its icon.
    pub fn icon(self) -> QubeKind {
        match self {
            NewKind::App => QubeKind::App,
            NewKind::Template => QubeKind::Template,
            NewKind::Standalone => QubeKind::Standalone,
            NewKind::NamedDisposable => QubeKind::Disposable,
            NewKind::DisposableTemplate => QubeKind::DisposableTemplate,
        }
    }

    /// The name shown.
    pub fn title(self) -> String {
        match self {
            NewKind::App => tr("App qube"),
            NewKind::Template => tr("Template"),
            NewKind::Standalone => tr("Standalone qube"),
            NewKind::NamedDisposable => tr("Named disposable qube"),
            NewKind::DisposableTemplate => tr("Disposable template"),
        }
    }

    /// Whether it may start empty instead of from a template.
    fn may_be_empty(self) -> bool {
        matches!(self, NewKind::Template | NewKind::Standalone)
    }
}

/// What the create dialog asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQube {
    /// Name.
    pub name: String,
    /// What it is.
    pub kind: NewKind,
    /// Label name.
    pub label: String,
    /// What it is based on: the template of an app qube or disposable template, the disposable
    /// template of a named disposable, the template a template or standalone qube copies
    /// (`None`: an empty one; for the others, the system's default template).
    pub base: Option<String>,
    /// Network qube: `None` = default, `Some("")` = none.
    pub netvm: Option<String>,
    /// Whether it provides network to other qubes.
    pub provides_network: bool,
    /// Initial memory in MiB (`None`: as the system decides).
    pub memory: Option<i64>,
    /// Storage pool for every volume (`None` = the default pools).
    pub pool: Option<String>,
}

/// Creates the qube as the reference's create tool does: a copy of a template for a template
/// or standalone qube based on one ([`crate::clone`]), else `admin.vm.Create[InPool]`; then
/// its settings. A failure after the qube exists removes it, so nothing half-made stays.
pub fn create_qube(client: &Client, q: &NewQube, progress: &dyn Fn(String)) -> Result<(), String> {
    match (&q.base, q.kind.may_be_empty()) {
        (Some(src), true) => crate::clone::clone_qube(
            client,
            src,
            &q.name,
            &crate::clone::CloneOptions {
                class: Some(q.kind.class().to_string()),
                label: Some(q.label.clone()),
                pool: q.pool.clone(),
            },
            progress,
        )?,
        (base, _) => {
            let mut payload = format!("name={} label={}", q.name, q.label);
            let method = match &q.pool {
                Some(pool) => {
                    payload.push_str(&format!(" pool={pool}"));
                    format!("admin.vm.CreateInPool.{}", q.kind.class())
                }
                None => format!("admin.vm.Create.{}", q.kind.class()),
            };
            let template = base.as_deref().filter(|_| !q.kind.may_be_empty());
            client
                .call(&method, "dom0", template.unwrap_or(""), payload.as_bytes())
                .map_err(|e| describe(&e))?;
        }
    }
    let result = settle(client, q);
    if result.is_err() {
        let _ = client.call("admin.vm.Remove", &q.name, "", b"");
    }
    result
}

/// The settings a new qube gets after it exists.
fn settle(client: &Client, q: &NewQube) -> Result<(), String> {
    let set = |prop: &str, value: &str| {
        client
            .call("admin.vm.property.Set", &q.name, prop, value.as_bytes())
            .map(drop)
            .map_err(|e| describe(&e))
    };
    if q.kind == NewKind::Standalone && q.base.is_none() {
        // An empty standalone qube boots its own kernel from an installation medium.
        set("virt_mode", "hvm")?;
        set("kernel", "")?;
    }
    if q.kind == NewKind::DisposableTemplate {
        set("template_for_dispvms", "True")?;
        // As the reference: its applications appear in the menu as disposable ones.
        client
            .call("admin.vm.feature.Set", &q.name, "appmenus-dispvm", b"1")
            .map_err(|e| describe(&e))?;
    }
    if q.provides_network {
        set("provides_network", "True")?;
    }
    if let Some(net) = &q.netvm {
        set("netvm", net)?;
    }
    if let Some(mib) = q.memory {
        set("memory", &mib.to_string())?;
    }
    Ok(())
}

/// What the create dialog offers, from the window's table.
pub struct CreateChoices {
    /// Label names, in the daemon's order.
    pub labels: Vec<String>,
    /// Label colours (`0xRRGGBB`) by name.
    pub colours: std::collections::HashMap<String, String>,
    /// Template qubes.
    pub templates: Vec<String>,
    /// Disposable templates.
    pub dvm_templates: Vec<String>,
    /// Qubes providing network.
    pub networked: Vec<String>,
    /// Names in use.
    pub taken: Vec<String>,
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
pub fn default_text(value: Option<&str>) -> String {
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
    /// Another type was chosen.
    Kind,
    /// Storage pools and the system's defaults (template, network qube, pool), read.
    Read(Vec<String>, [Option<String>; 3]),
    /// Create was pressed.
    Create,
    /// How the creation goes (copying a template takes a while).
    Progress(String),
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
    /// The system's default template, once read.
    default_template: Option<String>,
    /// The kind chosen.
    kind: NewKind,
    /// The "based on" choices shown now: (value, text); `None` = empty.
    bases: Vec<(Option<String>, String)>,
    /// What is wrong with the name typed (`None`: nothing; an empty name is wrong, but says so
    /// only once something was typed).
    name_problem: Option<String>,
    /// A creation is under way.
    busy: bool,
    /// The daemon's refusal, or the progress.
    said: Option<String>,
    /// Close the window (the qube exists).
    done: bool,
}

impl CreateDialog {
    /// What kind of qube is chosen.
    fn kind(w: &QubeCreateDialog) -> NewKind {
        NewKind::ALL[w.parts().kind.selected() as usize % NewKind::ALL.len()]
    }

    /// The qube the widgets describe.
    fn new_qube(&self, w: &QubeCreateDialog) -> NewQube {
        let p = w.parts();
        let c = &self.choices;
        let memory = p
            .memory_row
            .enables_expansion()
            .then(|| p.memory.value() as i64);
        NewQube {
            name: p.name.text().to_string(),
            kind: Self::kind(w),
            label: c
                .labels
                .get(p.label.selected() as usize)
                .cloned()
                .unwrap_or_default(),
            base: self
                .bases
                .get(p.template.selected() as usize)
                .and_then(|(v, _)| v.clone()),
            netvm: match p.netvm.selected() {
                0 => None,
                1 => Some(String::new()),
                n => c.networked.get(n as usize - 2).cloned(),
            },
            provides_network: p.provides_network.is_active(),
            memory,
            pool: match p.pool.selected() {
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

    /// The "based on" choices for `kind`, the system's default template first where it fits.
    fn bases_for(&self, kind: NewKind) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        let list = if kind == NewKind::NamedDisposable {
            &self.choices.dvm_templates
        } else {
            &self.choices.templates
        };
        out.extend(list.iter().map(|t| (Some(t.clone()), t.clone())));
        if kind != NewKind::NamedDisposable
            && let Some(d) = &self.default_template
            && let Some(pos) = out.iter().position(|(v, _)| v.as_deref() == Some(d))
        {
            let item = out.remove(pos);
            out.insert(0, item);
        }
        if kind.may_be_empty() {
            out.push((None, tr("none (an empty qube, to install a system in)")));
        }
        out
    }
}

/// Draws a combo row's choices again (their icons depend on another row's choice).
fn redraw(row: &adw::ComboRow) {
    let texts: Vec<String> = row
        .model()
        .map(|m| {
            (0..m.n_items())
                .filter_map(|i| m.item(i).and_downcast::<gtk::StringObject>())
                .map(|s| s.string().to_string())
                .collect()
        })
        .unwrap_or_default();
    set_choices(row, &texts);
}

/// Replaces a combo row's choices, keeping the one chosen.
fn set_choices(d: &adw::ComboRow, texts: &[String]) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let chosen = d.selected();
    d.set_model(Some(&gtk::StringList::new(&refs)));
    if chosen < texts.len() as u32 {
        d.set_selected(chosen);
    }
}

impl Component for CreateDialog {
    type CommandOutput = ();
    type Init = CreateInit;
    type Input = CreateMsg;
    type Output = CreateOutput;
    type Root = QubeCreateDialog;
    type Widgets = QubeCreateDialog;

    fn init_root() -> QubeCreateDialog {
        crate::resources::init();
        QubeCreateDialog::new()
    }

    fn init(
        init: CreateInit,
        window: QubeCreateDialog,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let CreateInit {
            client,
            choices,
            parent,
        } = init;
        window.set_transient_for(Some(&parent));
        let p = window.parts();
        let titles: Vec<String> = NewKind::ALL.iter().map(|k| k.title()).collect();
        // Type and label show the icon the new qube will have.
        {
            let (colours, labels, label_row) = (
                choices.colours.clone(),
                choices.labels.clone(),
                p.label.clone(),
            );
            p.kind
                .set_factory(Some(&crate::widgets::icon_text_factory(move |title| {
                    let kind = NewKind::ALL.iter().find(|k| k.title() == title)?;
                    let label = labels.get(label_row.selected() as usize)?;
                    let colour = colours.get(label)?;
                    Some(crate::resources::qube_texture(kind.icon(), colour).upcast())
                })));
        }
        set_choices(&p.kind, &titles);
        {
            let (colours, kind_row) = (choices.colours.clone(), p.kind.clone());
            p.label
                .set_factory(Some(&crate::widgets::icon_text_factory(move |label| {
                    let kind = NewKind::ALL[kind_row.selected() as usize % NewKind::ALL.len()];
                    let colour = colours.get(label)?;
                    Some(crate::resources::qube_texture(kind.icon(), colour).upcast())
                })));
        }
        set_choices(&p.label, &choices.labels);
        // New qubes are red by default, as in the reference.
        if let Some(red) = choices.labels.iter().position(|l| l == "red") {
            p.label.set_selected(red as u32);
        }
        {
            // The type's icon follows the label chosen.
            let kind_row = p.kind.clone();
            p.label.connect_selected_notify(move |_| redraw(&kind_row));
        }
        p.name.set_input_hints(gtk::InputHints::NO_SPELLCHECK);
        crate::widgets::number_editor(
            &p.memory,
            1,
            1_048_576,
            &tr("Initial memory"),
            &std::rc::Rc::new(std::cell::Cell::new(false)),
        );
        p.memory.set_value(400.0);
        {
            let input = sender.input_sender().clone();
            p.name
                .connect_changed(move |e| input.emit(CreateMsg::Name(e.text().to_string())));
            let input = sender.input_sender().clone();
            p.create
                .connect_clicked(move |_| input.emit(CreateMsg::Create));
            let input = sender.input_sender().clone();
            p.name
                .connect_entry_activated(move |_| input.emit(CreateMsg::Create));
            let input = sender.input_sender().clone();
            p.kind
                .connect_selected_notify(move |_| input.emit(CreateMsg::Kind));
        }
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
        let mut model = CreateDialog {
            client,
            choices,
            pools: Vec::new(),
            default_template: None,
            kind: NewKind::App,
            bases: Vec::new(),
            name_problem: crate::limits::name_problem("", []),
            busy: false,
            said: None,
            done: false,
        };
        set_choices(&p.netvm, &model.network_texts(None));
        p.netvm.set_selected(0);
        set_choices(&p.pool, &[tr("default")]);
        model.bases = model.bases_for(NewKind::App);
        set_choices(
            &p.template,
            &model
                .bases
                .iter()
                .map(|(_, t)| t.clone())
                .collect::<Vec<_>>(),
        );
        window.present();
        p.name.grab_focus();
        ComponentParts {
            model,
            widgets: window,
        }
    }

    fn update_with_view(
        &mut self,
        w: &mut QubeCreateDialog,
        msg: CreateMsg,
        sender: ComponentSender<Self>,
        _root: &QubeCreateDialog,
    ) {
        let p = w.parts();
        match msg {
            CreateMsg::Name(text) => {
                let taken = self.choices.taken.iter().map(String::as_str);
                self.name_problem = crate::limits::name_problem(&text, taken);
            }
            CreateMsg::Kind if Self::kind(w) != self.kind || self.bases.is_empty() => {
                let kind = Self::kind(w);
                self.kind = kind;
                self.bases = self.bases_for(kind);
                let texts: Vec<String> = self.bases.iter().map(|(_, t)| t.clone()).collect();
                p.template.set_model(Some(&gtk::StringList::new(
                    &texts.iter().map(String::as_str).collect::<Vec<_>>(),
                )));
                p.template.set_selected(0);
                p.template.set_title(&match kind {
                    NewKind::NamedDisposable => tr("Disposable template"),
                    NewKind::Template | NewKind::Standalone => tr("Copy of"),
                    _ => tr("Template"),
                });
                // The label's icons follow the type.
                redraw(&p.label);
            }
            CreateMsg::Kind => {}
            CreateMsg::Read(pools, [template, netvm, pool]) => {
                let mut texts = vec![default_text(pool.as_deref())];
                texts.extend(pools.iter().cloned());
                set_choices(&p.pool, &texts);
                self.pools = pools;
                self.default_template = template;
                // The default template first, chosen.
                self.bases.clear();
                sender.input(CreateMsg::Kind);
                set_choices(&p.netvm, &self.network_texts(netvm.as_deref()));
            }
            CreateMsg::Create if !self.busy && self.name_problem.is_none() => {
                self.busy = true;
                self.said = None;
                let q = self.new_qube(w);
                let (client, input) = (self.client.clone(), sender.input_sender().clone());
                std::thread::spawn(move || {
                    let progress = |t: String| input.emit(CreateMsg::Progress(t));
                    let result = create_qube(&client, &q, &progress);
                    input.emit(CreateMsg::Done(result));
                });
            }
            CreateMsg::Create => {}
            CreateMsg::Progress(text) => self.said = Some(text),
            CreateMsg::Done(Ok(())) => {
                self.busy = false;
                self.done = true;
                let _ = sender.output(CreateOutput::Created {
                    name: p.name.text().to_string(),
                    open_settings: p.open_settings.is_active(),
                });
            }
            CreateMsg::Done(Err(e)) => {
                self.busy = false;
                self.said = Some(e);
            }
        }
        // The view: Create waits for a good name; what is wrong is said.
        let typed = !p.name.text().is_empty();
        p.create
            .set_sensitive(self.name_problem.is_none() && !self.busy);
        p.name_problem
            .set_visible(typed && self.name_problem.is_some());
        p.name_problem
            .set_text(self.name_problem.as_deref().unwrap_or_default());
        p.status.set_visible(self.said.is_some());
        p.status.set_text(self.said.as_deref().unwrap_or_default());
        if self.busy {
            p.status.remove_css_class("error");
        } else {
            p.status.add_css_class("error");
        }
        if self.done {
            w.close();
        }
    }
}
