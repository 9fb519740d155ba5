//! Building the window on its template (`ui/window.ui`, [`QubeManagerWindow`]): the table with
//! its filters and remembered view, the `qube.*` actions the header bar's buttons and the menus
//! (primary, context) share, the search field and the Show selector, the keyboard shortcuts
//! window, and the keys. Signals become [`Msg`]s; nothing here decides anything.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::gtk::gio;
use relm4::prelude::*;
use relm4::typed_view::column::TypedColumnView;

use super::{Action, App, Msg, Widgets};
use crate::i18n::tr;
use crate::model::{Column, Show, listed};
use crate::table::{QubeRow, new_table};
use crate::templates::window::QubeManagerWindow;

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
    root: &QubeManagerWindow,
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
    let parts = root.parts();
    parts.window_title.set_subtitle(&client.describe());
    parts.scroller.set_child(Some(&view));
    {
        // The rows scrolled to are read first.
        let input = sender.input_sender().clone();
        parts
            .scroller
            .vadjustment()
            .connect_value_changed(move |_| input.emit(Msg::ViewMoved));
    }
    // Every command is a `qube.*` action: the header-bar buttons, the menus and the keys share
    // them, so enabling follows the selection everywhere.
    let group = gio::SimpleActionGroup::new();
    let input = sender.input_sender();
    let actions = Action::ALL
        .into_iter()
        .map(|a| (a, command(&group, a.id(), input, move || Msg::Action(a))))
        .collect();
    // Settings, remove, clone: one qube at a time.
    let selection_actions = vec![
        command(&group, "settings", input, || Msg::OpenSettings(None)),
        command(&group, "remove", input, || Msg::Remove),
        command(&group, "clone", input, || Msg::Clone),
    ];
    let usage_action = command(&group, "usage", input, || Msg::ShowUsage(None));
    command(&group, "create", input, || Msg::Create).set_enabled(true);
    // Template and network changes work on every selected qube they apply to.
    let template_action = command(&group, "change-template", input, || Msg::ChangeTemplate);
    let netvm_action = command(&group, "change-netvm", input, || Msg::ChangeNetVm);
    // Run a command / open a console: through the local qube tools, where they reach
    // the qubes this window shows (dom0, or a qube with qubesadmin and policy for it).
    let run_action = command(&group, "run", input, || Msg::RunCommand);
    let console_action = command(&group, "console", input, || Msg::Console);
    command(&group, "global-settings", input, || Msg::GlobalSettings).set_enabled(true);
    // The qrexec policy editor, a window of its own (crate::policy_editor).
    command(&group, "policy-editor", input, || Msg::PolicyEditor).set_enabled(true);
    command(&group, "about", input, || Msg::About).set_enabled(true);
    // Backup and restore, windows of their own (crate::backup_ui).
    command(&group, "backup", input, || Msg::Backup).set_enabled(true);
    command(&group, "restore", input, || Msg::Restore).set_enabled(true);
    // ☰ ▸ Columns: one check item per column (the name column always stays).
    let hidden = view_state.hidden_columns();
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
        parts.columns_menu.append(
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
    root.insert_action_group("qube", Some(&group));
    // Ctrl+? and ☰ ▸ Keyboard Shortcuts (GtkApplicationWindow's win.show-help-overlay).
    let shortcuts =
        gtk::Builder::from_resource(&format!("{}/ui/help-overlay.ui", crate::resources::BASE))
            .object::<gtk::ShortcutsWindow>("help_overlay");
    root.set_help_overlay(shortcuts.as_ref());
    // The context menu of the selected qubes: right click on a row, the Menu key or Shift+F10.
    let context_menu = gtk::PopoverMenu::from_model(Some(&*parts.context_menu));
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
        // A click on a sparkline opens the qube's usage popover.
        let click = gtk::GestureClick::new();
        click.set_button(gtk::gdk::BUTTON_PRIMARY);
        let (picker, input) = (view.clone(), sender.input_sender().clone());
        click.connect_released(move |_, _, x, y| {
            let Some(w) = picker.pick(x, y, gtk::PickFlags::DEFAULT) else {
                return;
            };
            if w.has_css_class("sparkline")
                && let Some(vm) = crate::table::qube_at(&w)
            {
                input.emit(Msg::ShowUsage(Some(vm)));
            }
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
    {
        // Enter or a double click on a row opens its settings.
        let input = sender.input_sender().clone();
        table
            .view
            .connect_activate(move |_, pos| input.emit(Msg::OpenSettings(Some(pos))));
    }
    let search_entry = parts.search.clone();
    {
        let input = sender.input_sender().clone();
        search_entry.connect_search_changed(move |e| input.emit(Msg::Search(e.text().to_string())));
        // Esc in the search field clears it, as in the reference manager.
        search_entry.connect_stop_search(|e| e.set_text(""));
    }
    let show_names: Vec<String> = Show::ALL.iter().map(|s| show_title(*s)).collect();
    let show_refs: Vec<&str> = show_names.iter().map(String::as_str).collect();
    let show_selector = parts.show_selector.clone();
    show_selector.set_model(Some(&gtk::StringList::new(&show_refs)));
    if let Some(pos) = Show::ALL.iter().position(|s| *s == show.get()) {
        show_selector.set_selected(pos as u32);
    }
    {
        let input = sender.input_sender().clone();
        show_selector.connect_selected_notify(move |d| {
            if let Some(s) = Show::ALL.get(d.selected() as usize) {
                input.emit(Msg::Show(*s));
            }
        });
    }
    let keys = gtk::EventControllerKey::new();
    {
        // Ctrl+F search, Ctrl+N new qube, Ctrl+U usage, Delete remove, Menu / Shift+F10 the
        // qube menu, Ctrl+W close (F10 opens the primary menu: its button is `primary`).
        let entry = search_entry.clone();
        let input = sender.input_sender().clone();
        let popover = context_menu.clone();
        let window = root.clone();
        keys.connect_key_pressed(move |_, key, _, mods| {
            use gtk::gdk::Key;
            let ctrl = mods.contains(gtk::gdk::ModifierType::CONTROL_MASK);
            let shift = mods.contains(gtk::gdk::ModifierType::SHIFT_MASK);
            if (key == Key::Menu || (shift && key == Key::F10)) && !typing_in(&entry) {
                popover.set_pointing_to(None);
                popover.popup();
            } else if ctrl && key == Key::f {
                entry.grab_focus();
            } else if ctrl && key == Key::n {
                input.emit(Msg::Create);
            } else if ctrl && key == Key::u {
                input.emit(Msg::ShowUsage(None));
            } else if ctrl && key == Key::w {
                window.close();
            } else if ctrl && key == Key::question {
                let _ = WidgetExt::activate_action(&window, "win.show-help-overlay", None);
            } else if key == Key::Delete && !typing_in(&entry) {
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
            status: parts.status.clone(),
            table_or_empty: parts.table_or_empty.clone(),
            empty: parts.empty.clone(),
            unreachable: parts.unreachable.clone(),
            actions,
            selection_actions,
            usage_action,
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

/// Adds the disabled action `qube.<id>` (its buttons and menu items are in `ui/window.ui`),
/// sending `msg()` when activated.
fn command(
    group: &gio::SimpleActionGroup,
    id: &str,
    input: &relm4::Sender<Msg>,
    msg: impl Fn() -> Msg + 'static,
) -> gio::SimpleAction {
    let simple = gio::SimpleAction::new(id, None);
    simple.set_enabled(false);
    let input = input.clone();
    simple.connect_activate(move |_, _| input.emit(msg()));
    group.add_action(&simple);
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
