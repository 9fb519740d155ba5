//! Building the window: the table with its filters and remembered view, the header bar with
//! the lifecycle buttons, the menus (header, context) sharing one set of `qube.*` actions, the
//! search field and the Show selector, the status line, and the keys. Signals become
//! [`Msg`]s; nothing here decides anything.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::gtk::gio;
use relm4::prelude::*;
use relm4::typed_view::column::TypedColumnView;

use super::{Action, App, Msg, Widgets};
use crate::i18n::tr;
use crate::model::{Column, Show, listed};
use crate::table::{QubeRow, new_table};

/// What the window is built of: the table and the filter state it shares with the window's
/// state, and the widgets that change later.
pub(super) struct Built {
    pub table: TypedColumnView<QubeRow, gtk::MultiSelection>,
    pub search: Rc<RefCell<String>>,
    pub show: Rc<Cell<Show>>,
    pub show_internal: Rc<Cell<bool>>,
    pub view_state: Rc<crate::view_state::ViewState>,
    pub widgets: Widgets,
}

/// Builds the window's content into `root`.
pub(super) fn build(
    client: &qubes_api::Client,
    root: &adw::ApplicationWindow,
    sender: &ComponentSender<App>,
    view_state: crate::view_state::ViewState,
) -> Built {
    let mut table = new_table();
    let search = Rc::new(RefCell::new(String::new()));
    {
        let search = search.clone();
        table.add_filter(move |row: &QubeRow| {
            let needle = search.borrow().to_lowercase();
            needle.is_empty()
                || crate::table::SEARCHED.iter().any(|c| {
                    crate::table::strip_markup(&row.text(*c))
                        .to_lowercase()
                        .contains(&needle)
                })
        });
    }
    let view_state = Rc::new(view_state);
    let show = Rc::new(Cell::new(view_state.show()));
    let show_internal = Rc::new(Cell::new(view_state.show_internal()));
    let (width, height) = view_state.window_size();
    root.set_default_size(width, height);
    // The sort column comes back (by name at first, so a new qube lands in its place);
    // a header click is remembered once the rows are sorted.
    let (col, descending) = view_state.sort().unwrap_or((Column::Name, false));
    if let Some(c) = crate::table::column_of(&table, col) {
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

    let title = adw::WindowTitle::new(&tr("Qube Manager"), &client.describe());
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
    // The qrexec policy editor, a window of its own (crate::policy_editor).
    let policy = gio::SimpleAction::new("policy-editor", None);
    {
        let input = sender.input_sender().clone();
        policy.connect_activate(move |_, _| input.emit(Msg::PolicyEditor));
    }
    group.add_action(&policy);
    // Backup and restore, windows of their own (crate::backup_ui).
    let backup = gio::SimpleAction::new("backup", None);
    {
        let input = sender.input_sender().clone();
        backup.connect_activate(move |_, _| input.emit(Msg::Backup));
    }
    group.add_action(&backup);
    let restore = gio::SimpleAction::new("restore", None);
    {
        let input = sender.input_sender().clone();
        restore.connect_activate(move |_, _| input.emit(Msg::Restore));
    }
    group.add_action(&restore);
    let system_menu = gio::Menu::new();
    system_menu.append(Some(&tr("Global settings")), Some("qube.global-settings"));
    system_menu.append(Some(&tr("Policy editor")), Some("qube.policy-editor"));
    system_menu.append(Some(&tr("Back up qubes…")), Some("qube.backup"));
    system_menu.append(Some(&tr("Restore qubes…")), Some("qube.restore"));
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
    let show_internal_action =
        gio::SimpleAction::new_stateful("show-internal", None, &show_internal.get().to_variant());
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
        // Rows appearing, going or hidden by a filter change the selection without a
        // selection-changed signal.
        let input = sender.input_sender().clone();
        table
            .selection_model
            .connect_selection_changed(move |_, _, _| input.emit(Msg::SelectionChanged));
        let input = sender.input_sender().clone();
        table
            .selection_model
            .connect_items_changed(move |_, _, _, _| input.emit(Msg::SelectionChanged));
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
        search_entry.connect_search_changed(move |e| input.emit(Msg::Search(e.text().to_string())));
        // Esc in the search field clears it, as in the reference manager.
        search_entry.connect_stop_search(|e| e.set_text(""));
    }
    let scroller = gtk::ScrolledWindow::builder()
        .vexpand(true)
        .child(&view)
        .build();
    // When a search or the Show choice leaves no row: say so, instead of an empty table.
    let empty = adw::StatusPage::builder()
        .icon_name("edit-find-symbolic")
        .vexpand(true)
        .build();
    let table_or_empty = gtk::Stack::new();
    table_or_empty.add_named(&scroller, Some("table"));
    table_or_empty.add_named(&empty, Some("empty"));
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
    content.append(&table_or_empty);
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

    let have_run_tool = super::actions::find_tool(client, "qvm-run").is_some();
    let have_console_tool = super::actions::find_tool(client, "qvm-console-dispvm").is_some();
    Built {
        table,
        search,
        show,
        show_internal,
        view_state,
        widgets: Widgets {
            status,
            table_or_empty,
            empty,
            actions,
            selection_actions,
            run_action,
            console_action,
            have_run_tool,
            have_console_tool,
            template_action,
            netvm_action,
            context_menu,
        },
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
