//! The Qube Manager window: a live table of qubes, one relm4 component.
//!
//! The main thread never waits on the daemon: loading, refetching, the event stream and every
//! command run on worker threads that send [`Msg`]s back; after the initial load only events
//! change rows. The window is built in `window`, its messages handled in `update`; what flows
//! in from the daemon is in `feeds`, lifecycle actions and the local tools in `actions`, the
//! dialogs it opens and what it does with their answers in `dialogs`. Dialogs and pages never
//! call into the window: they answer with typed messages.

mod actions;
mod dialogs;
mod feeds;
mod fill;
mod update;
mod usage;
mod window;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use qubes_api::{Client, PropValue};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::gtk::gio;
use relm4::prelude::*;
use relm4::typed_view::column::TypedColumnView;

pub use actions::Action;
use feeds::{disk_timer, follow_events, follow_stats, refetch_worker};
pub use usage::Usage;

use crate::i18n::tr;
use crate::loader::Refetch;
use crate::model::{Change, Column, QubeInfo, Show};
use crate::table::QubeRow;
use crate::templates::window::QubeManagerWindow;

/// What starts the window.
pub struct AppInit {
    /// The daemon to talk to.
    pub client: Client,
    /// What the window remembers between runs.
    pub view_state: crate::view_state::ViewState,
    /// A qube whose settings open at start (`--settings VM`, as the tray asks).
    pub open_settings: Option<String>,
}

/// Messages to the window.
#[derive(Debug)]
pub enum Msg {
    /// Label colours and the list of qubes, read at start or after a reconnect: the rows
    /// appear, their properties are read next.
    Listed(Result<crate::loader::Listed, String>),
    /// Qubes' properties and features, read (`None`: gone, or hidden by policy).
    Filled(Vec<(String, Option<Box<QubeInfo>>)>),
    /// The table scrolled, sorted or filtered: the rows on screen are read first.
    ViewMoved,
    /// Sort the rows again (their contents changed as they were filled).
    Resort,
    /// A qube was (re)read.
    Qube(QubeInfo),
    /// A property was read again.
    Property {
        /// Qube.
        vm: String,
        /// Property.
        prop: String,
        /// Value.
        value: PropValue,
    },
    /// Something changed in the daemon.
    Change(Change),
    /// One round of statistics (one message per round keeps the UI cheap).
    StatsRound(Vec<Change>),
    /// The search text changed.
    Search(String),
    /// The "Show" selector changed.
    Show(Show),
    /// "Show internal qubes" was switched.
    ShowInternal(bool),
    /// A watched feature was read again (`None`: not set).
    Feature {
        /// Qube.
        vm: String,
        /// Feature.
        feature: String,
        /// Value.
        value: Option<String>,
    },
    /// The selection changed.
    SelectionChanged,
    /// Volume usage and outdated state of qubes, read again.
    Volumes(Vec<(String, Option<u64>, bool)>),
    /// Time to read the disk usage of running qubes again.
    DiskTick,
    /// Show or hide a column.
    ColumnVisible(Column, bool),
    /// The user sorted the table by another column or direction.
    SortChanged,
    /// Open the global settings.
    GlobalSettings,
    /// Open the qrexec policy editor (a window of its own).
    PolicyEditor,
    /// Open the About window.
    About,
    /// Open the backup window (a window of its own).
    Backup,
    /// Open the restore window (a window of its own).
    Restore,
    /// Show the CPU and memory use of a qube over the last minutes (`None`: the selected one).
    ShowUsage(Option<String>),

    /// Ask for a name and clone the selected qube.
    Clone,
    /// Progress of a long operation for the status line (`None`: finished).
    Progress(Option<String>),
    /// Change the template of the selected qubes.
    ChangeTemplate,
    /// Change the network qube of the selected qubes.
    ChangeNetVm,
    /// A qube did not stop within its shutdown timeout: offer to kill it or to wait.
    ShutdownTimedOut(String),
    /// Read the qube's power state again if it still is this one.
    CheckState(String, String),
    /// Ask for a command and run it in the selected qube (`qvm-run`).
    RunCommand,
    /// Open the selected qube's console (`qvm-console-dispvm`).
    Console,
    /// Select this qube (a right click on its row).
    SelectName(String),
    /// Run a lifecycle action on the selected qube.
    Action(Action),
    /// The answer to a question (kill?, the qubes behind a network qube?...).
    Answer(crate::dialogs::questions::Answer),
    /// The create dialog created a qube.
    Created(crate::dialogs::create::CreateOutput),
    /// The remove dialog's answer.
    RemoveChosen(crate::dialogs::remove::RemoveOutput),
    /// The clone dialog's answer.
    CloneChosen(crate::dialogs::clone::CloneOutput),
    /// The template / network change dialog's answer.
    BulkChosen(crate::dialogs::bulk::BulkOutput),
    /// A change of several qubes went through: say so, offering to undo it.
    BulkDone {
        /// What was changed ("Network qube of 2 qubes changed").
        what: String,
        /// The property changed.
        prop: &'static str,
        /// Each qube's value before (`None`: it had the default).
        before: Vec<(String, Option<String>)>,
    },
    /// Put back the values a change of several qubes replaced.
    UndoBulk {
        /// The property.
        prop: &'static str,
        /// Each qube's value before (`None`: the default).
        before: Vec<(String, Option<String>)>,
    },
    /// An action failed: heading and the daemon's message.
    Failed(String, String),
    /// Open the settings of the selected qube (or of the row at this position).
    OpenSettings(Option<u32>),
    /// Open the create dialog.
    Create,
    /// Open the settings of this qube (after creating it).
    OpenSettingsOf(String),
    /// Ask to remove the selected qube.
    Remove,
    /// A failure to show in the status line.
    Error(String),
}

/// Rows read first while the table's size on screen is not known yet (a window's worth).
const ROWS_FIRST: u32 = 40;

/// The window's state.
pub struct App {
    client: Client,
    /// Queue of the worker that reads again what events made stale.
    refetch: std::sync::mpsc::Sender<Refetch>,
    /// The rows (public for tests).
    pub table: TypedColumnView<QubeRow, gtk::MultiSelection>,
    infos: HashMap<String, QubeInfo>,
    rows: HashMap<String, QubeRow>,
    /// Column widths, from every row's texts.
    widths: crate::table::Widths,
    colors: HashMap<String, String>,
    search: Rc<RefCell<String>>,
    show: Rc<Cell<Show>>,
    show_internal: Rc<Cell<bool>>,
    view_state: Rc<crate::view_state::ViewState>,
    /// A long operation's progress, shown in the status line while it runs.
    progress: Option<String>,
    /// Why the daemon cannot be reached, while it cannot.
    unreachable: Option<String>,
    loaded: bool,
    /// Selected qubes, in table order.
    selected: Vec<String>,
    /// Last failure, shown in a dialog (public for tests).
    pub last_error: Option<(String, String)>,
    /// The open settings dialog, if any (public for tests).
    pub settings: Option<Controller<crate::settings::Settings>>,
    /// The open create dialog, if any (public for tests).
    pub create: Option<Controller<crate::dialogs::create::CreateDialog>>,
    /// The open remove dialog, if any (public for tests).
    pub remove: Option<Controller<crate::dialogs::remove::RemoveDialog>>,
    /// The qube the remove dialog asks about.
    remove_for: Option<String>,
    /// The qube the clone dialog copies.
    clone_of: Option<String>,
    /// The open template / network change dialog, if any (public for tests).
    pub bulk: Option<Controller<crate::dialogs::bulk::BulkDialog>>,
    /// The open clone dialog, if any (public for tests).
    pub clone: Option<Controller<crate::dialogs::clone::CloneDialog>>,
    /// The open "shut down the qubes using it too?" question, if any (public for tests).
    pub shutdown_users: Option<adw::MessageDialog>,
    /// The open "kill or wait" question, if any (public for tests).
    pub timed_out: Option<adw::MessageDialog>,
    /// The open "kill these qubes?" question, if any (public for tests).
    pub kill_question: Option<adw::MessageDialog>,
    /// The open global settings, if any (public for tests).
    pub global_settings: Option<Controller<crate::settings::Settings>>,
    /// The usage popover, if one was opened (public for tests).
    pub usage: Option<usage::Usage>,
    window: QubeManagerWindow,
    label_order: Vec<String>,
    /// Reads each listed qube's properties and volumes, those on screen first.
    filler: fill::Filler,
    /// Whether the list of qubes arrived (the rows are there).
    listed: bool,
    /// Qubes listed whose properties are not read yet.
    pending: std::collections::HashSet<String>,
    /// The first qubes (up to 256) whose properties arrived, in that order (for tests: the
    /// rows on screen come first).
    pub filled_first: Vec<String>,
    /// A re-sort is due (rows filled since the last one).
    resort_due: bool,
    /// Where toast buttons send their messages.
    input: relm4::Sender<Msg>,
    last_toast: RefCell<Option<String>>,
}

/// Widgets that change after start.
pub struct Widgets {
    status: gtk::Label,
    /// The table, or the empty state when no row is shown, or the unreachable daemon.
    table_or_empty: gtk::Stack,
    empty: adw::StatusPage,
    unreachable: adw::StatusPage,
    actions: Vec<(Action, gio::SimpleAction)>,
    /// Settings, remove, clone: enabled while one qube is selected.
    selection_actions: Vec<gio::SimpleAction>,
    /// CPU and memory use: enabled while one running qube is selected.
    usage_action: gio::SimpleAction,

    /// Run a command in the selected qube.
    run_action: gio::SimpleAction,
    /// Whether `qvm-run` is there (looked up once: the view is updated after every message).
    have_run_tool: bool,
    /// Whether `qvm-console-dispvm` is there.
    have_console_tool: bool,
    /// Open the selected qube's console.
    console_action: gio::SimpleAction,
    /// Change template: enabled while the selection has an app qube.
    template_action: gio::SimpleAction,
    /// Change network qube: enabled while the selection has a qube with a netvm.
    netvm_action: gio::SimpleAction,
    /// The table's context menu.
    context_menu: gtk::PopoverMenu,
}

impl App {
    /// Names of the qubes in the table, in model order.
    pub fn row_names(&self) -> Vec<String> {
        self.table.iter().map(|r| r.borrow().name.clone()).collect()
    }

    /// The text a cell shows.
    pub fn cell(&self, vm: &str, col: Column) -> Option<String> {
        self.rows.get(vm).map(|r| r.text(col))
    }

    /// A qube's `shutdown_timeout` as the window knows it.
    pub fn shutdown_timeout(&self, vm: &str) -> Option<u64> {
        self.infos
            .get(vm)?
            .props
            .get("shutdown_timeout")?
            .value
            .parse()
            .ok()
    }

    /// Whether the first full load finished: every listed qube's properties are in.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Whether the rows are there (after `admin.vm.List`; their properties may still come).
    pub fn is_listed(&self) -> bool {
        self.listed
    }

    /// The qubes of the rows on screen, top first (while nothing is drawn yet: the first ones
    /// of the table's order).
    pub fn rows_on_screen(&self) -> Vec<String> {
        let Some(model) = self.table.view.model() else {
            return Vec::new();
        };
        let n = model.n_items();
        let adj = self.window.parts().scroller.vadjustment();
        let (first, count) = if n > 0 && adj.upper() > 0.0 && adj.page_size() > 0.0 {
            let row = adj.upper() / f64::from(n);
            (
                (adj.value() / row).floor() as u32,
                (adj.page_size() / row).ceil() as u32 + 2,
            )
        } else {
            (0, ROWS_FIRST)
        };
        (first..(first + count).min(n))
            .filter_map(|i| self.table.get_visible(i))
            .map(|r| r.borrow().name.clone())
            .collect()
    }

    /// The status line: a long operation's progress, or how many qubes the table shows.
    pub fn status(&self) -> String {
        if let Some(p) = &self.progress {
            return p.clone();
        }
        if let Some(e) = &self.unreachable {
            return format!("{}: {e}", tr("Cannot reach qubesd"));
        }
        if !self.listed {
            return tr("Loading qubes…");
        }
        if !self.loaded {
            let total = self.rows.len();
            return tr("Reading qubes: %1 of %2")
                .replacen(
                    "%1",
                    &(total - self.pending.len().min(total)).to_string(),
                    1,
                )
                .replacen("%2", &total.to_string(), 1);
        }
        let (shown, total) = (self.shown_count() as usize, self.rows.len());
        let count = if shown == total {
            crate::i18n::tr_count(total)
        } else {
            crate::i18n::tr_shown(shown, total)
        };
        format!("{count} \u{2014} {}", self.client.describe())
    }

    /// How many rows the table shows (after the search and the Show choice).
    fn shown_count(&self) -> u32 {
        self.table.view.model().map_or(0, |m| m.n_items())
    }

    /// Whether a long operation (a clone) is under way.
    pub fn busy(&self) -> bool {
        self.progress.is_some()
    }

    /// Selects a qube alone (as a click would).
    pub fn select(&self, vm: &str) {
        if let Some(i) = self.visible_index(vm) {
            self.table.selection_model.select_item(i, true);
        }
    }

    /// Adds a qube to the selection (as a Ctrl+click would).
    pub fn select_also(&self, vm: &str) {
        if let Some(i) = self.visible_index(vm) {
            self.table.selection_model.select_item(i, false);
        }
    }

    fn visible_index(&self, vm: &str) -> Option<u32> {
        let m = self.table.view.model()?;
        (0..m.n_items()).find(|i| {
            self.table
                .get_visible(*i)
                .is_some_and(|r| r.borrow().name == vm)
        })
    }

    /// The selected qubes.
    pub fn selected(&self) -> &[String] {
        &self.selected
    }

    /// The one qube per-qube commands (settings, remove, clone) work on.
    fn single(&self) -> Option<String> {
        match self.selected.as_slice() {
            [one] if one != "dom0" => Some(one.clone()),
            _ => None,
        }
    }

    /// Whether an action is enabled: it applies to at least one selected qube.
    pub fn action_enabled(&self, a: Action) -> bool {
        !self.targets(a).is_empty()
    }

    /// The qubes an action acts on: the selected ones (shown, existing) it applies to.
    pub fn targets(&self, a: Action) -> Vec<String> {
        self.selected_where(|i| a.enabled(&i.class, &i.state))
    }

    /// Names of the qubes that `keep` accepts, sorted.
    fn qubes_where(&self, keep: impl Fn(&QubeInfo) -> bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .infos
            .values()
            .filter(|i| keep(i))
            .map(|i| i.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Template qubes, sorted.
    fn templates(&self) -> Vec<String> {
        self.qubes_where(|i| i.class == "TemplateVM")
    }

    /// Qubes providing network, sorted.
    fn network_providers(&self) -> Vec<String> {
        self.qubes_where(|i| i.flag("provides_network"))
    }

    /// The selected qubes that `keep` accepts, in table order.
    fn selected_where(&self, keep: impl Fn(&QubeInfo) -> bool) -> Vec<String> {
        self.selected
            .iter()
            .filter(|vm| self.infos.get(*vm).is_some_and(&keep))
            .cloned()
            .collect()
    }

    /// A local qube tool, when it reaches the qubes this window shows.
    pub fn tool(&self, name: &str) -> Option<std::path::PathBuf> {
        actions::find_tool(&self.client, name)
    }

    fn color_of(&self) -> impl Fn(&str) -> String + '_ {
        |label: &str| {
            self.colors
                .get(label)
                .cloned()
                .unwrap_or_else(|| "0x888888".into())
        }
    }

    fn upsert(&mut self, info: QubeInfo) {
        let refilter = self.upsert_quietly(info);
        self.refilter(refilter);
    }

    /// Shows `info` in its row (a new row if there is none); says which filters must run
    /// again, which is left to the caller (many rows at once: once for all).
    fn upsert_quietly(&mut self, info: QubeInfo) -> crate::table::Refilter {
        let mut refilter = crate::table::Refilter {
            search: false,
            show: false,
        };
        if let Some(row) = self.rows.get(&info.name) {
            refilter = row.update(&info, &self.color_of());
        } else {
            let row = QubeRow::new(&info, &self.color_of(), &self.widths);
            self.table.append(row.clone());
            self.rows.insert(info.name.clone(), row);
        }
        if self.widths.take_grown() {
            for row in self.rows.values() {
                row.refit();
            }
        }
        self.infos.insert(info.name.clone(), info);
        refilter
    }

    /// Runs the filters that must run again.
    fn refilter(&self, r: crate::table::Refilter) {
        // With no search, a row's searched texts change nothing shown.
        if r.search && !self.search.borrow().is_empty() {
            self.table.notify_filter_changed(0);
        }
        if r.show {
            self.table.notify_filter_changed(1);
        }
    }

    fn remove(&mut self, vm: &str) {
        // A question about a qube that is gone has no answer any more.
        if self.remove_for.as_deref() == Some(vm)
            && let Some(d) = self.remove.take()
        {
            d.widget().close();
        }
        if self.clone_of.as_deref() == Some(vm)
            && let Some(d) = self.clone.take()
        {
            d.widget().close();
        }
        self.rows.remove(vm);
        self.infos.remove(vm);
        if let Some(pos) = self.table.find(|r| r.name == vm) {
            self.table.remove(pos);
        }
    }

    /// Shows a short message at the bottom of the window (`undo`: a button that sends this
    /// message).
    fn toast(&self, title: &str, undo: Option<(String, Msg)>) {
        let toast = adw::Toast::new(title);
        if let Some((label, msg)) = undo {
            toast.set_button_label(Some(&label));
            let msg = std::cell::RefCell::new(Some(msg));
            let input = self.input.clone();
            toast.connect_button_clicked(move |_| {
                if let Some(m) = msg.borrow_mut().take() {
                    input.emit(m);
                }
            });
        }
        self.window.parts().toasts.add_toast(toast);
        *self.last_toast.borrow_mut() = Some(title.to_string());
    }

    /// The last toast shown (for tests).
    pub fn last_toast(&self) -> Option<String> {
        self.last_toast.borrow().clone()
    }

    /// The window, as the parent of its dialogs.
    fn window(&self) -> gtk::Window {
        self.window.clone().upcast()
    }

    /// The open remove dialog, if any (for tests).
    pub fn remove_dialog(&self) -> Option<adw::MessageDialog> {
        self.remove.as_ref().map(|c| c.widget().clone())
    }

    /// The open clone dialog, if any (for tests).
    pub fn clone_dialog(&self) -> Option<crate::templates::clone::QubeCloneDialog> {
        self.clone.as_ref().map(|c| c.widget().clone())
    }
}

impl SimpleComponent for App {
    type Input = Msg;
    type Output = ();
    type Init = AppInit;
    type Root = QubeManagerWindow;
    type Widgets = Widgets;

    fn init_root() -> Self::Root {
        crate::resources::init();
        QubeManagerWindow::new()
    }

    fn init(
        init: AppInit,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let AppInit {
            client,
            view_state,
            open_settings,
        } = init;
        let built = window::build(&client, &root, &sender, view_state);
        let widths = crate::table::Widths::new(&built.table.view.pango_context());
        let model = App {
            refetch: refetch_worker(client.clone(), sender.input_sender().clone()),
            client: client.clone(),
            table: built.table,
            infos: HashMap::new(),
            rows: HashMap::new(),
            widths,
            colors: HashMap::new(),
            search: built.search,
            show: built.show,
            show_internal: built.show_internal,
            view_state: built.view_state,
            progress: None,
            unreachable: None,
            loaded: false,
            selected: Vec::new(),
            last_error: None,
            settings: None,
            create: None,
            remove: None,
            remove_for: None,
            clone_of: None,
            bulk: None,
            clone: None,
            timed_out: None,
            kill_question: None,
            shutdown_users: None,
            global_settings: None,
            usage: None,
            window: root.clone(),
            label_order: Vec::new(),
            filler: fill::Filler::start(client.clone(), sender.input_sender().clone()),
            listed: false,
            pending: Default::default(),
            filled_first: Vec::new(),
            resort_due: false,
            input: sender.input_sender().clone(),
            last_toast: RefCell::new(None),
        };
        let widgets = built.widgets;
        widgets.status.set_text(&model.status());
        follow_events(client.clone(), sender.input_sender().clone());
        follow_stats(client, sender.input_sender().clone());
        disk_timer(sender.input_sender().clone());
        if let Some(vm) = open_settings {
            sender.input(Msg::OpenSettingsOf(vm));
        }
        // A second start of the program (the tray's "Settings", a menu entry) comes here.
        {
            let app = relm4::main_application();
            let open = gio::SimpleAction::new(
                crate::instance::OPEN_SETTINGS_ACTION,
                Some(gtk::glib::VariantTy::STRING),
            );
            let input = sender.input_sender().clone();
            open.connect_activate(move |_, vm| {
                if let Some(vm) = vm.and_then(|v| v.get::<String>()) {
                    input.emit(Msg::OpenSettingsOf(vm));
                }
            });
            app.add_action(&open);
            let window = root.clone();
            app.connect_activate(move |_| window.present());
        }
        ComponentParts { model, widgets }
    }

    fn update(&mut self, msg: Msg, sender: ComponentSender<Self>) {
        self.handle(msg, &sender);
    }

    fn shutdown(&mut self, widgets: &mut Widgets, _output: relm4::Sender<()>) {
        // A popover given a parent with `set_parent` must be unparented by hand.
        widgets.context_menu.unparent();
        if let Some(u) = self.usage.take() {
            u.unparent();
        }
    }

    fn update_view(&self, widgets: &mut Widgets, _sender: ComponentSender<Self>) {
        widgets.status.set_text(&self.status());
        if let (Some(why), true) = (&self.unreachable, self.rows.is_empty()) {
            // Nothing to show as last seen: say why, instead of an empty table.
            widgets.unreachable.set_description(Some(why));
            widgets.table_or_empty.set_visible_child_name("unreachable");
            return;
        }
        let nothing_shown = self.loaded && self.shown_count() == 0 && !self.rows.is_empty();
        if nothing_shown {
            let search = self.search.borrow();
            if search.is_empty() {
                widgets.empty.set_title(&tr("No qubes to show"));
                widgets
                    .empty
                    .set_description(Some(&tr("Choose “All qubes” to see every qube.")));
            } else {
                widgets
                    .empty
                    .set_title(&tr("No qubes match “%s”").replacen("%s", &search, 1));
                widgets
                    .empty
                    .set_description(Some(&tr("Try another name, type, label or tag.")));
            }
        }
        widgets
            .table_or_empty
            .set_visible_child_name(if nothing_shown { "empty" } else { "table" });
        for (action, simple) in &widgets.actions {
            simple.set_enabled(self.action_enabled(*action));
        }
        for simple in &widgets.selection_actions {
            simple.set_enabled(self.single().is_some());
        }
        let single = self.single().and_then(|vm| self.infos.get(&vm));
        widgets
            .usage_action
            .set_enabled(self.usage_of_selected().is_some());

        widgets
            .run_action
            .set_enabled(single.is_some_and(|i| i.class != "RemoteVM") && widgets.have_run_tool);
        widgets
            .console_action
            .set_enabled(single.is_some_and(|i| i.state == "Running") && widgets.have_console_tool);
        widgets
            .template_action
            .set_enabled(self.can_change_template());
        widgets
            .netvm_action
            .set_enabled(!self.with_netvm().is_empty());
    }
}

/// Starts the window on `client` (used by the GUI tests and the benchmark).
pub fn builder(client: Client, view_state: crate::view_state::ViewState) -> relm4::Controller<App> {
    launch(AppInit {
        client,
        view_state,
        open_settings: None,
    })
}

/// Starts the window as `init` says.
pub fn launch(init: AppInit) -> relm4::Controller<App> {
    App::builder().launch(init).detach()
}

/// A client for the embedded demo core.
#[cfg(feature = "demo")]
pub fn demo_client() -> anyhow::Result<(Client, std::sync::Arc<qubesd::Embedded>)> {
    let core = std::sync::Arc::new(qubesd::Embedded::demo()?);
    Ok((Client::new(core.clone()), core))
}
