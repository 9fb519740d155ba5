//! GUI tests under Xvfb, on the embedded demo core: a real window, real events.
//! `harness = false`: GTK must run on the main thread. Prints `N passed, N failed`.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use relm4::gtk;

#[path = "../../benches/support/paced.rs"]
mod paced;
#[path = "../../benches/support/system.rs"]
mod system;

mod columns;
mod dialogs;
#[path = "../shared/gtk_tests.rs"]
mod gtk_tests;
mod lifecycle;
mod menus;
mod settings;
mod settings_pages;
mod support;
mod table;

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "settings_of_a_qube_open_at_start",
            settings::settings_of_a_qube_open_at_start,
        ),
        ("rows_for_every_qube", table::rows_for_every_qube),
        (
            "property_change_from_second_client_updates_cell",
            table::property_change_from_second_client_updates_cell,
        ),
        (
            "start_and_shutdown_flip_the_state",
            table::start_and_shutdown_flip_the_state,
        ),
        (
            "stats_fill_cpu_and_memory_columns",
            table::stats_fill_cpu_and_memory_columns,
        ),
        (
            "toolbar_actions_follow_selection_and_report_failures",
            dialogs::toolbar_actions_follow_selection_and_report_failures,
        ),
        (
            "settings_dialog_applies_and_shows_errors_by_field",
            settings::settings_dialog_applies_and_shows_errors_by_field,
        ),
        (
            "settings_apply_all_or_nothing_and_close_asks",
            settings::settings_apply_all_or_nothing_and_close_asks,
        ),
        (
            "create_and_remove_dialogs",
            dialogs::create_and_remove_dialogs,
        ),
        (
            "failed_remove_can_be_closed",
            dialogs::failed_remove_can_be_closed,
        ),
        ("added_and_removed_qubes", table::added_and_removed_qubes),
        (
            "table_counts_empty_state_sort_and_widths",
            table::table_counts_empty_state_sort_and_widths,
        ),
        (
            "selection_follows_rows_that_go_or_hide",
            table::selection_follows_rows_that_go_or_hide,
        ),
        ("search_filters_rows", table::search_filters_rows),
        (
            "show_selector_filters_rows",
            table::show_selector_filters_rows,
        ),
        ("menus_and_context_menu", menus::menus_and_context_menu),
        ("view_state_is_kept", columns::view_state_is_kept),
        (
            "extra_columns_markers_and_column_visibility",
            columns::extra_columns_markers_and_column_visibility,
        ),
        (
            "several_qubes_change_network_together",
            settings_pages::several_qubes_change_network_together,
        ),
        (
            "clone_copies_settings_and_data",
            dialogs::clone_copies_settings_and_data,
        ),
        (
            "global_settings_and_services",
            settings_pages::global_settings_and_services,
        ),
        (
            "shutdown_timeout_offers_kill_or_wait",
            lifecycle::shutdown_timeout_offers_kill_or_wait,
        ),
        (
            "firewall_page_limits_connections",
            settings_pages::firewall_page_limits_connections,
        ),
        (
            "devices_page_assigns_pci_devices",
            settings_pages::devices_page_assigns_pci_devices,
        ),
        (
            "run_command_and_console_use_the_qube_tools",
            lifecycle::run_command_and_console_use_the_qube_tools,
        ),
        (
            "shutting_down_a_network_qube_offers_its_users",
            lifecycle::shutting_down_a_network_qube_offers_its_users,
        ),
        (
            "create_every_kind_of_qube",
            dialogs::create_every_kind_of_qube,
        ),
        (
            "rows_come_at_once_and_the_rows_on_screen_fill_first",
            table::rows_come_at_once_and_the_rows_on_screen_fill_first,
        ),
        (
            "settings_rows_for_features_boot_modes_and_rename",
            settings::settings_rows_for_features_boot_modes_and_rename,
        ),
        (
            "primary_menu_about_shortcuts_and_undo",
            menus::primary_menu_about_shortcuts_and_undo,
        ),
        (
            "screenshots_of_the_main_windows",
            menus::screenshots_of_the_main_windows,
        ),
        ("german_ui_is_german", menus::german_ui_is_german),
    ];
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        println!("no display: GUI tests skipped (run under tools/headless)");
        println!("0 passed, 0 failed, {} skipped", tests.len());
        return;
    }
    qubes_qube_manager::renderer::prefer_software_rendering();
    qubes_qube_manager::i18n::init();
    gtk::init().expect("GTK");
    relm4::adw::init().expect("libadwaita");
    if std::env::var_os(menus::GERMAN_CHILD).is_some() {
        menus::german_checks();
        return;
    }
    // `cargo test --test NAME -- WORD...` runs the tests whose names contain one of the words.
    gtk_tests::run(tests);
}
