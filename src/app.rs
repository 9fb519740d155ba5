//! The Qube Manager window: a live table of qubes.
//!
//! The main thread never waits on the daemon: loading, refetching and the event stream run on
//! worker threads that send messages back. After the initial load only events change rows.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use qubes_api::{Client, PropValue};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::gtk::gio;
use relm4::prelude::*;
use relm4::typed_view::column::TypedColumnView;

use crate::i18n::tr;
use crate::loader::{LoadedAll, Refetch, Refetched, shutdown_timeout, wait_halted};
use crate::model::{Change, Column, QubeInfo, Show, change_for, listed};
use crate::table::{QubeRow, new_table};

/// Lifecycle actions of the toolbar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start.
    Start,
    /// Pause (running) or resume (paused).
    PauseResume,
    /// Shut down.
    Shutdown,
    /// Shut down, wait until halted (up to the qube's `shutdown_timeout`), start again.
    Restart,
    /// Kill.
    Kill,
}

impl Action {
    /// The Admin API method, given the qube's state.
    fn method(self, state: &str) -> &'static str {
        match self {
            Action::Start => "admin.vm.Start",
            Action::PauseResume if state == "Paused" => "admin.vm.Unpause",
            Action::PauseResume => "admin.vm.Pause",
            Action::Shutdown | Action::Restart => "admin.vm.Shutdown",
            Action::Kill => "admin.vm.Kill",
        }
    }

    /// Whether the action makes sense for a qube of `class` in `state`.
    pub fn enabled(self, class: &str, state: &str) -> bool {
        if matches!(class, "AdminVM" | "RemoteVM") {
            return false;
        }
        match self {
            Action::Start => matches!(state, "Halted" | "NA"),
            Action::PauseResume => matches!(state, "Running" | "Paused"),
            Action::Shutdown => matches!(state, "Running" | "Transient"),
            Action::Restart => state == "Running",
            Action::Kill => !matches!(state, "Halted" | "NA"),
        }
    }

    /// The heading shown when the action fails.
    fn failure(self, vm: &str) -> String {
        let text = match self {
            Action::Start => tr("Starting %s failed"),
            Action::PauseResume => tr("Pausing or resuming %s failed"),
            Action::Shutdown => tr("Shutting down %s failed"),
            Action::Restart => tr("Restarting %s failed"),
            Action::Kill => tr("Killing %s failed"),
        };
        text.replacen("%s", vm, 1)
    }
}

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
    /// Label colours and every qube, read at start or after a reconnect.
    Loaded(Result<LoadedAll, String>),
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
    /// Ask for a command and run it in the selected qube (`qvm-run`).
    RunCommand,
    /// Open the selected qube's console (`qvm-console-dispvm`).
    Console,
    /// Select this qube (a right click on its row).
    SelectName(String),
    /// Run a lifecycle action on the selected qube.
    Action(Action),
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

/// The window's state.
pub struct App {
    client: Client,
    /// Queue of the worker that reads again what events made stale.
    refetch: std::sync::mpsc::Sender<Refetch>,
    /// The rows (public for tests).
    pub table: TypedColumnView<QubeRow, gtk::MultiSelection>,
    infos: HashMap<String, QubeInfo>,
    rows: HashMap<String, QubeRow>,
    colors: HashMap<String, String>,
    search: Rc<RefCell<String>>,
    show: Rc<Cell<Show>>,
    show_internal: Rc<Cell<bool>>,
    view_state: Rc<crate::view_state::ViewState>,
    status: String,
    loaded: bool,
    /// Selected qubes, in table order.
    selected: Vec<String>,
    /// Last failure, shown in a dialog (public for tests).
    pub last_error: Option<(String, String)>,
    /// The open settings dialog, if any (public for tests).
    pub settings: Option<relm4::Controller<crate::settings::Settings>>,
    /// The open create dialog, if any (public for tests).
    pub create: Option<crate::dialogs::CreateDialog>,
    /// The open remove dialog, if any (public for tests).
    pub remove: Option<adw::MessageDialog>,
    /// The open template / network change dialog, if any (public for tests).
    pub bulk: Option<crate::bulk::BulkDialog>,
    /// The open clone dialog, if any (public for tests).
    pub clone: Option<adw::MessageDialog>,
    /// The open "shut down the qubes using it too?" question, if any (public for tests).
    pub shutdown_users: Option<adw::MessageDialog>,
    /// The open "kill or wait" question, if any (public for tests).
    pub timed_out: Option<adw::MessageDialog>,
    /// The open global settings, if any (public for tests).
    pub global_settings: Option<relm4::Controller<crate::settings::Settings>>,
    window: adw::ApplicationWindow,
    label_order: Vec<String>,
}

/// Widgets that change after start.
pub struct Widgets {
    status: gtk::Label,
    actions: Vec<(Action, gio::SimpleAction)>,
    /// Settings, remove, clone: enabled while one qube is selected.
    selection_actions: Vec<gio::SimpleAction>,
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
    window: adw::ApplicationWindow,
    shown_error: Option<(String, String)>,
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

    /// Whether the first full load finished.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// The status line.
    pub fn status(&self) -> &str {
        &self.status
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
        self.selected
            .iter()
            .filter_map(|vm| self.infos.get(vm))
            .any(|i| a.enabled(&i.class, &i.state))
    }

    /// Running qubes whose network goes through `vm`.
    fn running_users(&self, vm: &str) -> Vec<String> {
        self.qubes_where(|i| {
            !matches!(i.state.as_str(), "Halted" | "NA")
                && i.props.get("netvm").is_some_and(|n| n.value == vm)
        })
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

    /// Offers to shut down the qubes using `vm` for network, then `vm` itself.
    fn ask_shutdown_users(&mut self, vm: String, users: Vec<String>, input: &relm4::Sender<Msg>) {
        let dialog = adw::MessageDialog::new(
            Some(&self.window),
            Some(&tr("Shut down %s?").replacen("%s", &vm, 1)),
            Some(&format!(
                "{}\n{}",
                tr("These running qubes use it for network and will be shut down first:"),
                users.join(", ")
            )),
        );
        dialog.add_response("cancel", &tr("Cancel"));
        dialog.add_response("shutdown", &tr("Shut down all"));
        dialog.set_response_appearance("shutdown", adw::ResponseAppearance::Destructive);
        dialog.set_close_response("cancel");
        let (client, input) = (self.client.clone(), input.clone());
        dialog.connect_response(Some("shutdown"), move |_, _| {
            let (vm, users) = (vm.clone(), users.clone());
            spawn_work(&client, &input, move |c| {
                for u in &users {
                    if let Err(e) = c.call("admin.vm.Shutdown", u, "", b"") {
                        return Some(Msg::Failed(
                            Action::Shutdown.failure(u),
                            crate::errors::describe(&e),
                        ));
                    }
                }
                for u in &users {
                    if let Some(msg) = after_shutdown(c, u, false) {
                        return Some(msg);
                    }
                }
                match c.call("admin.vm.Shutdown", &vm, "", b"") {
                    Err(e) => Some(Msg::Failed(
                        Action::Shutdown.failure(&vm),
                        crate::errors::describe(&e),
                    )),
                    Ok(_) => after_shutdown(c, &vm, false),
                }
            });
        });
        dialog.present();
        self.shutdown_users = Some(dialog);
    }

    /// A local qube tool, when it reaches the qubes this window shows.
    pub fn tool(&self, name: &str) -> Option<std::path::PathBuf> {
        find_tool(&self.client, name)
    }

    /// The qubes of the selection a template change applies to.
    fn with_template(&self) -> Vec<String> {
        self.selected_where(|i| i.class == "AppVM")
    }

    /// The qubes of the selection a network change applies to.
    fn with_netvm(&self) -> Vec<String> {
        self.selected_where(|i| i.class != "AdminVM" && i.props.contains_key("netvm"))
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
        if let Some(row) = self.rows.get(&info.name) {
            let refilter = row.update(&info, &self.color_of());
            if refilter.search {
                self.table.notify_filter_changed(0);
            }
            if refilter.show {
                self.table.notify_filter_changed(1);
            }
        } else {
            let row = QubeRow::new(&info, &self.color_of());
            self.table.append(row.clone());
            self.rows.insert(info.name.clone(), row);
        }
        self.infos.insert(info.name.clone(), info);
    }

    fn remove(&mut self, vm: &str) {
        self.rows.remove(vm);
        self.infos.remove(vm);
        if let Some(pos) = self.table.find(|r| r.name == vm) {
            self.table.remove(pos);
        }
    }

    fn refresh_status(&mut self) {
        self.status = format!(
            "{} \u{2014} {}",
            crate::i18n::tr_count(self.rows.len()),
            self.client.describe()
        );
    }
}

/// What a shutdown (or the first half of a restart) came to.
fn after_shutdown(c: &Client, vm: &str, restart: bool) -> Option<Msg> {
    match wait_halted(c, vm, shutdown_timeout(c, vm)) {
        Ok(true) if restart => c
            .call("admin.vm.Start", vm, "", b"")
            .err()
            .map(|e| Msg::Failed(Action::Restart.failure(vm), crate::errors::describe(&e))),
        Ok(true) => None,
        // Still running after its timeout: the user chooses to kill it or to wait longer.
        Ok(false) => Some(Msg::ShutdownTimedOut(vm.to_string())),
        Err(e) => Some(Msg::Failed(
            Action::Shutdown.failure(vm),
            crate::errors::describe(&e),
        )),
    }
}

/// The translated name of a "Show" choice.
fn show_title(show: Show) -> String {
    match show {
        Show::All => tr("All qubes"),
        Show::Running => tr("Running"),
        Show::Halted => tr("Halted"),
        Show::Templates => tr("Templates"),
        Show::Network => tr("Network qubes"),
        Show::Standalone => tr("Standalone qubes"),
        Show::User => tr("My qubes"),
    }
}

/// Adds the disabled action `qube.<id>`, sending `msg()` when activated, and its menu item.
fn command(
    group: &gio::SimpleActionGroup,
    menu: &gio::Menu,
    id: &str,
    label: &str,
    input: &relm4::Sender<Msg>,
    msg: impl Fn() -> Msg + 'static,
) -> gio::SimpleAction {
    let simple = gio::SimpleAction::new(id, None);
    simple.set_enabled(false);
    let input = input.clone();
    simple.connect_activate(move |_, _| input.emit(msg()));
    group.add_action(&simple);
    menu.append(Some(label), Some(&format!("qube.{id}")));
    simple
}

/// `name` in `PATH`, when local tools act on the qubes `client` shows.
fn find_tool(client: &Client, name: &str) -> Option<std::path::PathBuf> {
    if !client.real_system() {
        return None;
    }
    crate::cli::in_path(name)
}

/// Runs a local qube tool in the background; a failure (exit status, stderr) is reported.
fn run_tool(mut command: std::process::Command, heading: String, input: relm4::Sender<Msg>) {
    std::thread::spawn(move || {
        if let Err(message) = crate::cli::run_quietly(&mut command) {
            input.emit(Msg::Failed(heading, message));
        }
    });
}

/// Bytes used by a qube's volumes and whether one is outdated (`admin.vm.volume.List`, then
/// `Info` per volume, as the reference manager does). `None` when they cannot be read (dom0,
/// a qube without storage, a daemon without the storage calls).
fn read_volumes(client: &Client, vm: &str) -> (Option<u64>, bool) {
    let Ok(list) = client.call("admin.vm.volume.List", vm, "", b"") else {
        return (None, false);
    };
    let (mut total, mut outdated, mut any) = (0u64, false, false);
    for vol in list.lines() {
        let Ok(info) = client.call("admin.vm.volume.Info", vm, vol, b"") else {
            continue;
        };
        for line in info.lines() {
            if let Some(u) = line.strip_prefix("usage=") {
                total = total.saturating_add(u.parse().unwrap_or(0));
                any = true;
            } else if line == "is_outdated=True" {
                outdated = true;
            }
        }
    }
    (any.then_some(total), outdated)
}

/// Reads the volumes of `names` with bounded parallelism and sends one message.
fn scan_volumes(client: &Client, input: &relm4::Sender<Msg>, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let (client, input) = (client.clone(), input.clone());
    std::thread::spawn(move || {
        let chunk = names.len().div_ceil(VOLUME_PARALLELISM).max(1);
        let results = std::thread::scope(|s| {
            let handles: Vec<_> = names
                .chunks(chunk)
                .map(|part| {
                    let client = &client;
                    s.spawn(move || {
                        part.iter()
                            .map(|vm| {
                                let (disk, outdated) = read_volumes(client, vm);
                                (vm.clone(), disk, outdated)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect::<Vec<_>>()
        });
        input.emit(Msg::Volumes(results));
    });
}

/// Volume reads run on this many threads (they are many small calls).
const VOLUME_PARALLELISM: usize = 2;

/// How often the disk usage of running qubes is read again.
const DISK_REFRESH: Duration = Duration::from_secs(60);

/// Sends [`Msg::DiskTick`] every [`DISK_REFRESH`].
fn disk_timer(input: relm4::Sender<Msg>) {
    std::thread::Builder::new()
        .name("qubes-disk-usage".into())
        .spawn(move || {
            loop {
                std::thread::sleep(DISK_REFRESH);
                if input.send(Msg::DiskTick).is_err() {
                    return;
                }
            }
        })
        .expect("spawning the disk usage timer");
}

/// Sends the table's changes from `admin.Events` to the window.
fn follow_events(client: Client, input: relm4::Sender<Msg>) {
    crate::loader::follow_events(client, move |event| match event {
        Ok(ev) => {
            let change = change_for(&ev);
            change == Change::None || input.send(Msg::Change(change)).is_ok()
        }
        Err(e) => input.send(Msg::Error(crate::errors::describe(&e))).is_ok(),
    });
}

/// Starts the refetch worker, whose results come to the window as messages.
fn refetch_worker(client: Client, input: relm4::Sender<Msg>) -> std::sync::mpsc::Sender<Refetch> {
    crate::loader::refetch_worker(client, move |r| {
        let msg = match r {
            Refetched::All(loaded) => Msg::Loaded(loaded),
            Refetched::Qube(_, Some(info)) => Msg::Qube(info),
            Refetched::Qube(_, None) => return true,
            Refetched::Property(vm, prop, value) => Msg::Property { vm, prop, value },
            Refetched::Feature(vm, feature, value) => Msg::Feature { vm, feature, value },
        };
        input.send(msg).is_ok()
    })
    .expect("starting the refetch thread")
}

/// Sends rounds of `admin.vm.Stats` to the window.
fn follow_stats(client: Client, input: relm4::Sender<Msg>) {
    crate::loader::follow_stats(client, move |round| {
        input.send(Msg::StatsRound(round)).is_ok()
    });
}

fn spawn_work(
    client: &Client,
    input: &relm4::Sender<Msg>,
    work: impl FnOnce(&Client) -> Option<Msg> + Send + 'static,
) {
    let (client, input) = (client.clone(), input.clone());
    std::thread::spawn(move || {
        if let Some(msg) = work(&client) {
            input.emit(msg);
        }
    });
}

impl SimpleComponent for App {
    type Input = Msg;
    type Output = ();
    type Init = AppInit;
    type Root = adw::ApplicationWindow;
    type Widgets = Widgets;

    fn init_root() -> Self::Root {
        adw::ApplicationWindow::builder()
            .title(tr("Qube Manager"))
            .icon_name("org.qubes_os.QubeManager")
            .default_width(1100)
            .default_height(640)
            .build()
    }

    fn init(
        init: AppInit,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let mut table = new_table();
        let search = Rc::new(RefCell::new(String::new()));
        {
            let search = search.clone();
            table.add_filter(move |row: &QubeRow| {
                let needle = search.borrow().to_lowercase();
                needle.is_empty()
                    || crate::table::SEARCHED
                        .iter()
                        .any(|c| strip_markup(&row.text(*c)).to_lowercase().contains(&needle))
            });
        }
        let view_state = Rc::new(init.view_state);
        let show = Rc::new(Cell::new(view_state.show()));
        let show_internal = Rc::new(Cell::new(view_state.show_internal()));
        let (width, height) = view_state.window_size();
        root.set_default_size(width, height);
        // The sort column comes back; a header click is remembered once the rows are sorted.
        if let Some((col, descending)) = view_state.sort()
            && let Some(c) = crate::table::column_of(&table, col)
        {
            let dir = if descending {
                gtk::SortType::Descending
            } else {
                gtk::SortType::Ascending
            };
            table.view.sort_by_column(Some(&c), dir);
        }
        if let Some(sorter) = table.view.sorter() {
            let input = sender.input_sender().clone();
            sorter.connect_changed(move |_, _| {
                let input = input.clone();
                gtk::glib::idle_add_local_once(move || input.emit(Msg::SortChanged));
            });
        }
        // Widths the user gave columns come back; the others size themselves.
        for (col, width) in view_state.column_widths() {
            if let Some(c) = crate::table::column_of(&table, col) {
                c.set_fixed_width(width);
            }
        }
        {
            let view_state = view_state.clone();
            let columns: Vec<(Column, gtk::ColumnViewColumn)> = Column::ALL
                .into_iter()
                .filter_map(|c| crate::table::column_of(&table, c).map(|v| (c, v)))
                .collect();
            root.connect_close_request(move |w| {
                let (width, height) = w.default_size();
                view_state.set_window_size(width, height);
                let widths: Vec<(Column, i32)> = columns
                    .iter()
                    .map(|(c, v)| (*c, v.fixed_width()))
                    .filter(|(_, w)| *w > 0)
                    .collect();
                view_state.set_column_widths(&widths);
                glib_propagation(false)
            });
        }
        {
            let (show, show_internal) = (show.clone(), show_internal.clone());
            table.add_filter(move |row: &QubeRow| {
                listed(show.get(), show_internal.get(), row.kinds.get())
            });
        }
        let view = table.view.clone();
        view.set_show_row_separators(true);
        crate::a11y::set_name(&view, &tr("Qubes"));

        let title = adw::WindowTitle::new(&tr("Qube Manager"), &init.client.describe());
        let header = adw::HeaderBar::builder().title_widget(&title).build();
        // Every command is a `qube.*` action: the toolbar buttons, the header-bar menu and the
        // table's context menu share them, so enabling follows the selection everywhere.
        let group = gio::SimpleActionGroup::new();
        let lifecycle_menu = gio::Menu::new();
        let input = sender.input_sender();
        let mut actions = Vec::new();
        for (action, id, label) in [
            (Action::Start, "start", tr("Start")),
            (Action::PauseResume, "pause-resume", tr("Pause / Resume")),
            (Action::Shutdown, "shutdown", tr("Shut down")),
            (Action::Restart, "restart", tr("Restart")),
            (Action::Kill, "kill", tr("Kill")),
        ] {
            let simple = command(&group, &lifecycle_menu, id, &label, input, move || {
                Msg::Action(action)
            });
            let button = gtk::Button::with_label(&label);
            button.set_action_name(Some(&format!("qube.{id}")));
            header.pack_start(&button);
            actions.push((action, simple));
        }
        let manage_menu = gio::Menu::new();
        // Settings, remove, clone: one qube at a time.
        let selection_actions = vec![
            command(
                &group,
                &manage_menu,
                "settings",
                &tr("Settings"),
                input,
                || Msg::OpenSettings(None),
            ),
            command(&group, &manage_menu, "remove", &tr("Remove"), input, || {
                Msg::Remove
            }),
            command(&group, &manage_menu, "clone", &tr("Clone"), input, || {
                Msg::Clone
            }),
        ];
        command(
            &group,
            &manage_menu,
            "create",
            &tr("New qube"),
            input,
            || Msg::Create,
        )
        .set_enabled(true);
        // Template and network changes work on every selected qube they apply to.
        let template_action = command(
            &group,
            &manage_menu,
            "change-template",
            &tr("Change template…"),
            input,
            || Msg::ChangeTemplate,
        );
        let netvm_action = command(
            &group,
            &manage_menu,
            "change-netvm",
            &tr("Change network qube…"),
            input,
            || Msg::ChangeNetVm,
        );
        // Run a command / open a console: through the local qube tools, where they reach
        // the qubes this window shows (dom0, or a qube with qubesadmin and policy for it).
        let run_action = command(
            &group,
            &manage_menu,
            "run",
            &tr("Run command…"),
            input,
            || Msg::RunCommand,
        );
        let console_action = command(
            &group,
            &manage_menu,
            "console",
            &tr("Open console"),
            input,
            || Msg::Console,
        );
        let global = gio::SimpleAction::new("global-settings", None);
        {
            let input = sender.input_sender().clone();
            global.connect_activate(move |_, _| input.emit(Msg::GlobalSettings));
        }
        group.add_action(&global);
        let system_menu = gio::Menu::new();
        system_menu.append(Some(&tr("Global settings")), Some("qube.global-settings"));
        // The qrexec policy editor, a window of its own (crate::policy_editor).
        let policy = gio::SimpleAction::new("policy-editor", None);
        let (client, window) = (init.client.clone(), root.clone());
        policy.connect_activate(move |_, _| {
            crate::policy_editor::open_for(window.upcast_ref(), &client)
        });
        group.add_action(&policy);
        system_menu.append(Some(&tr("Policy editor")), Some("qube.policy-editor"));
        // View ▸ Columns: one check item per column (the name column always stays).
        let hidden = view_state.hidden_columns();
        let columns_menu = gio::Menu::new();
        for col in Column::ALL.into_iter().filter(|c| *c != Column::Name) {
            let visible = !hidden.contains(&col);
            if let Some(c) = crate::table::column_of(&table, col) {
                c.set_visible(visible);
            }
            let id = format!("column-{}", col.id());
            let a = gio::SimpleAction::new_stateful(&id, None, &visible.to_variant());
            let input = sender.input_sender().clone();
            a.connect_activate(move |a, _| {
                let on = !a.state().and_then(|v| v.get::<bool>()).unwrap_or(true);
                a.set_state(&on.to_variant());
                input.emit(Msg::ColumnVisible(col, on));
            });
            group.add_action(&a);
            columns_menu.append(
                Some(&crate::table::column_title(col)),
                Some(&format!("qube.{id}")),
            );
        }
        let show_internal_action = gio::SimpleAction::new_stateful(
            "show-internal",
            None,
            &show_internal.get().to_variant(),
        );
        {
            let input = sender.input_sender().clone();
            show_internal_action.connect_activate(move |a, _| {
                let on = !a.state().and_then(|v| v.get::<bool>()).unwrap_or(false);
                a.set_state(&on.to_variant());
                input.emit(Msg::ShowInternal(on));
            });
        }
        group.add_action(&show_internal_action);
        let view_menu = gio::Menu::new();
        view_menu.append(Some(&tr("Show internal qubes")), Some("qube.show-internal"));
        view_menu.append_submenu(Some(&tr("Columns")), &columns_menu);
        let menu = gio::Menu::new();
        menu.append_section(None, &lifecycle_menu);
        menu.append_section(None, &manage_menu);
        menu.append_section(None, &view_menu);
        menu.append_section(None, &system_menu);
        root.insert_action_group("qube", Some(&group));
        let menu_button = gtk::MenuButton::builder()
            .icon_name("open-menu-symbolic")
            .menu_model(&menu)
            .tooltip_text(tr("Menu"))
            .build();
        crate::a11y::set_name(&menu_button, &tr("Menu"));
        header.pack_end(&menu_button);
        // The context menu: right click on a row, the Menu key or Shift+F10.
        let context_menu = gtk::PopoverMenu::from_model(Some(&menu));
        context_menu.set_parent(&view);
        context_menu.set_has_arrow(false);
        context_menu.set_halign(gtk::Align::Start);
        {
            let click = gtk::GestureClick::new();
            click.set_button(gtk::gdk::BUTTON_SECONDARY);
            let (popover, picker, input) = (
                context_menu.clone(),
                view.clone(),
                sender.input_sender().clone(),
            );
            click.connect_pressed(move |_, _, x, y| {
                if let Some(vm) = picker
                    .pick(x, y, gtk::PickFlags::DEFAULT)
                    .and_then(|w| crate::table::qube_at(&w))
                {
                    input.emit(Msg::SelectName(vm));
                }
                popover.set_pointing_to(Some(&gtk::gdk::Rectangle::new(x as i32, y as i32, 1, 1)));
                popover.popup();
            });
            view.add_controller(click);
        }
        {
            let input = sender.input_sender().clone();
            table
                .selection_model
                .connect_selection_changed(move |_, _, _| input.emit(Msg::SelectionChanged));
        }
        // Icons for the two per-qube commands keep the title readable at the default width.
        for (id, label, icon) in [
            ("create", tr("New qube"), None),
            ("remove", tr("Remove"), Some("user-trash-symbolic")),
            (
                "settings",
                tr("Settings"),
                Some("document-properties-symbolic"),
            ),
        ] {
            let button = match icon {
                Some(icon) => {
                    let b = gtk::Button::from_icon_name(icon);
                    b.set_tooltip_text(Some(&label));
                    crate::a11y::set_name(&b, &label);
                    b
                }
                None => gtk::Button::with_label(&label),
            };
            button.set_action_name(Some(&format!("qube.{id}")));
            header.pack_end(&button);
        }
        {
            // Enter or a double click on a row opens its settings.
            let input = sender.input_sender().clone();
            table
                .view
                .connect_activate(move |_, pos| input.emit(Msg::OpenSettings(Some(pos))));
        }
        let search_entry = gtk::SearchEntry::builder()
            .placeholder_text(tr("Search qubes by name, type, label or tag"))
            .hexpand(true)
            .build();
        search_entry.set_tooltip_text(Some(&tr("Search qubes")));
        crate::a11y::set_name(&search_entry, &tr("Search qubes"));
        {
            let input = sender.input_sender().clone();
            search_entry
                .connect_search_changed(move |e| input.emit(Msg::Search(e.text().to_string())));
            // Esc in the search field clears it, as in the reference manager.
            search_entry.connect_stop_search(|e| e.set_text(""));
        }
        let scroller = gtk::ScrolledWindow::builder()
            .vexpand(true)
            .child(&view)
            .build();
        let status = gtk::Label::builder()
            .xalign(0.0)
            .margin_start(8)
            .margin_end(8)
            .margin_top(4)
            .margin_bottom(4)
            .build();
        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        let bar = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        bar.set_margin_start(8);
        bar.set_margin_end(8);
        bar.set_margin_top(6);
        bar.set_margin_bottom(6);
        bar.append(&search_entry);
        let show_names: Vec<String> = Show::ALL.iter().map(|s| show_title(*s)).collect();
        let show_refs: Vec<&str> = show_names.iter().map(String::as_str).collect();
        let show_selector = gtk::DropDown::from_strings(&show_refs);
        show_selector.set_tooltip_text(Some(&tr("Which qubes to show")));
        if let Some(pos) = Show::ALL.iter().position(|s| *s == show.get()) {
            show_selector.set_selected(pos as u32);
        }
        crate::a11y::set_name(&show_selector, &tr("Which qubes to show"));
        {
            let input = sender.input_sender().clone();
            show_selector.connect_selected_notify(move |d| {
                if let Some(s) = Show::ALL.get(d.selected() as usize) {
                    input.emit(Msg::Show(*s));
                }
            });
        }
        bar.append(&show_selector);
        content.append(&bar);
        content.append(&scroller);
        content.append(&status);
        root.set_content(Some(&content));

        // Ctrl+F focuses the search.
        let keys = gtk::EventControllerKey::new();
        {
            // Ctrl+F search, Ctrl+N new qube, Delete remove the selected qube.
            let entry = search_entry.clone();
            let input = sender.input_sender().clone();
            let popover = context_menu.clone();
            keys.connect_key_pressed(move |_, key, _, mods| {
                let ctrl = mods.contains(gtk::gdk::ModifierType::CONTROL_MASK);
                let shift = mods.contains(gtk::gdk::ModifierType::SHIFT_MASK);
                if (key == gtk::gdk::Key::Menu || (shift && key == gtk::gdk::Key::F10))
                    && !typing_in(&entry)
                {
                    popover.set_pointing_to(None);
                    popover.popup();
                } else if ctrl && key == gtk::gdk::Key::f {
                    entry.grab_focus();
                } else if ctrl && key == gtk::gdk::Key::n {
                    input.emit(Msg::Create);
                } else if key == gtk::gdk::Key::Delete && !typing_in(&entry) {
                    input.emit(Msg::Remove);
                } else {
                    return glib_propagation(false);
                }
                glib_propagation(true)
            });
        }
        root.add_controller(keys);

        let model = App {
            refetch: refetch_worker(init.client.clone(), sender.input_sender().clone()),
            client: init.client.clone(),
            table,
            infos: HashMap::new(),
            rows: HashMap::new(),
            colors: HashMap::new(),
            search,
            show,
            show_internal,
            view_state,
            status: tr("Loading qubes…"),
            loaded: false,
            selected: Vec::new(),
            last_error: None,
            settings: None,
            create: None,
            remove: None,
            bulk: None,
            clone: None,
            timed_out: None,
            shutdown_users: None,
            global_settings: None,
            window: root.clone(),
            label_order: Vec::new(),
        };
        status.set_text(&model.status);
        follow_events(init.client.clone(), sender.input_sender().clone());
        let have_run_tool = find_tool(&init.client, "qvm-run").is_some();
        let have_console_tool = find_tool(&init.client, "qvm-console-dispvm").is_some();
        follow_stats(init.client, sender.input_sender().clone());
        disk_timer(sender.input_sender().clone());
        if let Some(vm) = init.open_settings {
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
        ComponentParts {
            model,
            widgets: Widgets {
                status,
                actions,
                selection_actions,
                run_action,
                console_action,
                have_run_tool,
                have_console_tool,
                template_action,
                netvm_action,
                context_menu,
                window: root.clone(),
                shown_error: None,
            },
        }
    }

    fn update(&mut self, msg: Msg, sender: ComponentSender<Self>) {
        let input = sender.input_sender().clone();
        match msg {
            Msg::Loaded(Ok((colors, infos))) => {
                self.label_order = colors.iter().map(|(n, _)| n.clone()).collect();
                self.colors = colors.into_iter().collect();
                let names: std::collections::HashSet<String> =
                    infos.iter().map(|i| i.name.clone()).collect();
                let gone: Vec<String> = self
                    .rows
                    .keys()
                    .filter(|n| !names.contains(*n))
                    .cloned()
                    .collect();
                for g in gone {
                    self.remove(&g);
                }
                let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
                for mut info in infos {
                    // Keep what is known until the new reading arrives.
                    if let Some(old) = self.infos.get(&info.name) {
                        info.disk = old.disk;
                        info.outdated = old.outdated;
                    }
                    self.upsert(info);
                }
                self.loaded = true;
                self.refresh_status();
                scan_volumes(&self.client, &input, names);
            }
            Msg::Volumes(results) => {
                for (vm, disk, outdated) in results {
                    if let Some(mut info) = self.infos.get(&vm).cloned()
                        && (info.disk != disk || info.outdated != outdated)
                    {
                        info.disk = disk;
                        info.outdated = outdated;
                        self.upsert(info);
                    }
                }
            }
            Msg::DiskTick => {
                let running = self.qubes_where(|i| i.state == "Running");
                scan_volumes(&self.client, &input, running);
            }
            Msg::Change(Change::Volumes(vm)) => scan_volumes(&self.client, &input, vec![vm]),
            Msg::ColumnVisible(col, on) => {
                if let Some(c) = crate::table::column_of(&self.table, col) {
                    c.set_visible(on);
                }
                let hidden: Vec<Column> = Column::ALL
                    .into_iter()
                    .filter(|c| {
                        crate::table::column_of(&self.table, *c).is_some_and(|c| !c.is_visible())
                    })
                    .collect();
                self.view_state.set_hidden_columns(&hidden);
            }
            Msg::SortChanged => {
                let n = self.table.view.model().map_or(0, |m| m.n_items());
                let rows: Vec<QubeRow> = (0..n)
                    .filter_map(|i| self.table.get_visible(i))
                    .map(|r| r.borrow().clone())
                    .collect();
                if let Some((col, descending)) = crate::table::sorted_by(&rows) {
                    self.view_state.set_sort(col, descending);
                }
            }
            Msg::Progress(text) => match text {
                Some(t) => self.status = t,
                None => self.refresh_status(),
            },
            Msg::Loaded(Err(e)) | Msg::Error(e) => {
                self.status = format!("{}: {e}", tr("Cannot reach qubesd"));
            }
            Msg::Qube(info) => {
                self.upsert(info);
                self.refresh_status();
            }
            Msg::Property { vm, prop, value } => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    info.props.insert(prop, value);
                    self.upsert(info);
                }
            }
            Msg::Search(text) => {
                *self.search.borrow_mut() = text;
                self.table.notify_filter_changed(0);
            }
            Msg::Show(show) => {
                self.view_state.set_show(show);
                self.show.set(show);
                self.table.notify_filter_changed(1);
            }
            Msg::ShowInternal(on) => {
                self.view_state.set_show_internal(on);
                self.show_internal.set(on);
                self.table.notify_filter_changed(1);
            }
            Msg::Change(Change::RefetchFeature { vm, feature }) => {
                let _ = self.refetch.send(Refetch::Feature(vm, feature));
            }
            Msg::Feature { vm, feature, value } => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    match value {
                        Some(v) => info.features.insert(feature, v),
                        None => info.features.remove(&feature),
                    };
                    self.upsert(info);
                }
            }
            Msg::Change(Change::Reload) => {
                let _ = self.refetch.send(Refetch::All);
            }
            Msg::Change(Change::Added(vm)) => {
                let _ = self.refetch.send(Refetch::Qube(vm));
            }
            Msg::Change(Change::Removed(vm)) => {
                self.remove(&vm);
                self.refresh_status();
            }
            Msg::Change(Change::Tag { vm, tag, added }) => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    info.set_tag(&tag, added);
                    self.upsert(info);
                }
            }
            Msg::Change(Change::State { vm, state }) => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    if state == "Halted" {
                        info.stats = None;
                    }
                    let settled = matches!(state.as_str(), "Running" | "Halted");
                    info.state = state;
                    self.upsert(info);
                    if settled {
                        // Usage changes at start and commit; a template's stop makes its
                        // running qubes outdated.
                        let mut names = vec![vm.clone()];
                        names.extend(self.qubes_where(|i| {
                            i.state == "Running"
                                && i.props.get("template").is_some_and(|t| t.value == vm)
                        }));
                        scan_volumes(&self.client, &input, names);
                    }
                }
            }
            Msg::Change(Change::RefetchProperty { vm, prop }) => {
                let _ = self.refetch.send(Refetch::Property(vm, prop));
            }
            Msg::StatsRound(changes) => {
                for c in changes {
                    SimpleComponent::update(self, Msg::Change(c), sender.clone());
                }
            }
            Msg::Change(Change::Stats { vm, cpu, mem_kib }) => {
                // Frequent: touch only the two cells statistics change.
                if let Some(info) = self.infos.get_mut(&vm)
                    && info.state != "Halted"
                    && info.stats != Some((cpu, mem_kib))
                {
                    info.stats = Some((cpu, mem_kib));
                    if let Some(row) = self.rows.get(&vm) {
                        row.set_cell(Column::Cpu, info.cell(Column::Cpu));
                        row.set_cell(Column::MemUsed, info.cell(Column::MemUsed));
                    }
                }
            }
            Msg::Change(Change::None) => {}
            Msg::SelectName(vm) => self.select(&vm),
            Msg::SelectionChanged => {
                let bits = self.table.selection_model.selection();
                self.selected = (0..bits.size())
                    .filter_map(|n| self.table.get_visible(bits.nth(n as u32)))
                    .map(|r| r.borrow().name.clone())
                    .collect();
            }
            Msg::Action(action) => {
                // Every selected qube the action applies to, each in its own worker.
                for vm in self.selected.clone() {
                    let Some(info) = self.infos.get(&vm) else {
                        continue;
                    };
                    if !action.enabled(&info.class, &info.state) {
                        continue;
                    }
                    let method = action.method(&info.state);
                    let users = self.running_users(&vm);
                    if action == Action::Shutdown && !users.is_empty() {
                        // Qubes using it for network must stop first: ask.
                        self.ask_shutdown_users(vm, users, &input);
                        continue;
                    }
                    spawn_work(&self.client, &input, move |c| {
                        if let Err(e) = c.call(method, &vm, "", b"") {
                            return Some(Msg::Failed(
                                action.failure(&vm),
                                crate::errors::describe(&e),
                            ));
                        }
                        match action {
                            Action::Restart => after_shutdown(c, &vm, true),
                            Action::Shutdown => after_shutdown(c, &vm, false),
                            _ => None,
                        }
                    });
                }
            }
            Msg::OpenSettingsOf(vm) => {
                let dialog = crate::settings::Settings::builder()
                    .launch((self.client.clone(), crate::settings::Target::Qube(vm)))
                    .detach();
                self.settings = Some(dialog);
            }
            Msg::OpenSettings(pos) => {
                let vm = pos
                    .and_then(|p| self.table.get_visible(p).map(|r| r.borrow().name.clone()))
                    .or_else(|| self.single());
                if let Some(vm) = vm.filter(|v| v != "dom0") {
                    let dialog = crate::settings::Settings::builder()
                        .launch((self.client.clone(), crate::settings::Target::Qube(vm)))
                        .detach();
                    self.settings = Some(dialog);
                }
            }
            Msg::Create => {
                let input = input.clone();
                self.create = Some(crate::dialogs::create_dialog(
                    &self.window,
                    self.client.clone(),
                    self.label_order.clone(),
                    self.templates(),
                    self.network_providers(),
                    move |vm| input.emit(Msg::OpenSettingsOf(vm)),
                ));
            }
            Msg::Remove => {
                if let Some(vm) = self.single() {
                    self.remove = Some(crate::dialogs::remove_dialog(
                        &self.window,
                        self.client.clone(),
                        vm,
                    ));
                }
            }
            Msg::Clone => {
                if let Some(vm) = self.single() {
                    self.clone = Some(crate::clone::clone_dialog(
                        &self.window,
                        self.client.clone(),
                        vm,
                        input.clone(),
                    ));
                }
            }
            Msg::ChangeTemplate => {
                let qubes = self.with_template();
                if !qubes.is_empty() {
                    let choices = self
                        .templates()
                        .into_iter()
                        .map(|t| (Some(t.clone()), t))
                        .collect();
                    self.bulk = Some(crate::bulk::bulk_dialog(
                        &self.window,
                        self.client.clone(),
                        &tr("Change template"),
                        "template",
                        choices,
                        qubes,
                    ));
                }
            }
            Msg::ChangeNetVm => {
                let qubes = self.with_netvm();
                if !qubes.is_empty() {
                    let mut choices =
                        vec![(None, tr("default")), (Some(String::new()), tr("none"))];
                    choices.extend(
                        self.network_providers()
                            .into_iter()
                            .map(|n| (Some(n.clone()), n)),
                    );
                    self.bulk = Some(crate::bulk::bulk_dialog(
                        &self.window,
                        self.client.clone(),
                        &tr("Change network qube"),
                        "netvm",
                        choices,
                        qubes,
                    ));
                }
            }
            Msg::ShutdownTimedOut(vm) => {
                let dialog = adw::MessageDialog::new(
                    Some(&self.window),
                    Some(&tr("%s is still running").replacen("%s", &vm, 1)),
                    Some(&tr(
                        "The qube did not shut down in time. Kill it (unsaved data in it is lost) or wait longer?",
                    )),
                );
                dialog.add_response("wait", &tr("Wait"));
                dialog.add_response("kill", &tr("Kill"));
                dialog.set_response_appearance("kill", adw::ResponseAppearance::Destructive);
                dialog.set_default_response(Some("wait"));
                dialog.set_close_response("wait");
                let (client, input) = (self.client.clone(), input.clone());
                dialog.connect_response(None, move |_, response| {
                    let vm = vm.clone();
                    let kill = response == "kill";
                    spawn_work(&client, &input, move |c| {
                        if kill {
                            c.call("admin.vm.Kill", &vm, "", b"").err().map(|e| {
                                Msg::Failed(Action::Kill.failure(&vm), crate::errors::describe(&e))
                            })
                        } else {
                            after_shutdown(c, &vm, false)
                        }
                    });
                });
                dialog.present();
                self.timed_out = Some(dialog);
            }
            Msg::RunCommand => {
                let (Some(vm), Some(tool)) = (self.single(), self.tool("qvm-run")) else {
                    return;
                };
                let dialog = adw::MessageDialog::new(
                    Some(&self.window),
                    Some(&tr("Run a command in %s").replacen("%s", &vm, 1)),
                    Some(&tr("The qube starts first if it is not running.")),
                );
                let entry = gtk::Entry::new();
                entry.set_tooltip_text(Some(&tr("Command")));
                crate::a11y::set_name(&entry, &tr("Command"));
                entry.set_activates_default(true);
                dialog.set_extra_child(Some(&entry));
                dialog.add_response("cancel", &tr("Cancel"));
                dialog.add_response("run", &tr("Run"));
                dialog.set_default_response(Some("run"));
                dialog.set_close_response("cancel");
                let input = input.clone();
                dialog.connect_response(Some("run"), move |_, _| {
                    let cmd = entry.text().to_string();
                    if cmd.trim().is_empty() {
                        return;
                    }
                    let mut command = std::process::Command::new(&tool);
                    command.args(["--autostart", "--quiet", &vm, &cmd]);
                    run_tool(
                        command,
                        tr("Running a command in %s failed").replacen("%s", &vm, 1),
                        input.clone(),
                    );
                });
                dialog.present();
            }
            Msg::Console => {
                if let (Some(vm), Some(tool)) = (self.single(), self.tool("qvm-console-dispvm")) {
                    let mut command = std::process::Command::new(&tool);
                    command.arg(&vm);
                    run_tool(
                        command,
                        tr("Opening the console of %s failed").replacen("%s", &vm, 1),
                        input.clone(),
                    );
                }
            }
            Msg::GlobalSettings => {
                let dialog = crate::settings::Settings::builder()
                    .launch((self.client.clone(), crate::settings::Target::Global))
                    .detach();
                self.global_settings = Some(dialog);
            }
            Msg::Failed(heading, message) => {
                self.last_error = Some((heading, message));
            }
        }
    }

    fn shutdown(&mut self, widgets: &mut Widgets, _output: relm4::Sender<()>) {
        // A popover given a parent with `set_parent` must be unparented by hand.
        widgets.context_menu.unparent();
    }

    fn update_view(&self, widgets: &mut Widgets, _sender: ComponentSender<Self>) {
        widgets.status.set_text(&self.status);
        for (action, simple) in &widgets.actions {
            simple.set_enabled(self.action_enabled(*action));
        }
        for simple in &widgets.selection_actions {
            simple.set_enabled(self.single().is_some());
        }
        let single = self.single().and_then(|vm| self.infos.get(&vm));
        widgets
            .run_action
            .set_enabled(single.is_some_and(|i| i.class != "RemoteVM") && widgets.have_run_tool);
        widgets
            .console_action
            .set_enabled(single.is_some_and(|i| i.state == "Running") && widgets.have_console_tool);
        widgets
            .template_action
            .set_enabled(!self.with_template().is_empty());
        widgets
            .netvm_action
            .set_enabled(!self.with_netvm().is_empty());
        if self.last_error.is_some() && self.last_error != widgets.shown_error {
            widgets.shown_error = self.last_error.clone();
            if let Some((heading, message)) = &self.last_error {
                let dialog =
                    adw::MessageDialog::new(Some(&widgets.window), Some(heading), Some(message));
                dialog.add_response("close", &tr("Close"));
                dialog.present();
            }
        }
    }
}

/// Whether the keyboard focus is inside `w` (a search entry focuses an inner text widget).
fn typing_in(w: &impl IsA<gtk::Widget>) -> bool {
    w.root()
        .and_then(|r| r.focus())
        .is_some_and(|f| &f == w.upcast_ref::<gtk::Widget>() || f.is_ancestor(w))
}

fn glib_propagation(stop: bool) -> gtk::glib::Propagation {
    if stop {
        gtk::glib::Propagation::Stop
    } else {
        gtk::glib::Propagation::Proceed
    }
}

/// Text without Pango markup tags (for searching the label column).
fn strip_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
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
