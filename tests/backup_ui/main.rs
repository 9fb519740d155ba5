//! The backup and restore windows under Xvfb, on the embedded demo core, opened from the Qube
//! Manager's menu: real windows, the real daemon (Info, Execute, Cancel, events), real backup
//! files written by the `qubes-backup` writer, the real restore engine and import program.
//! `harness = false`: GTK must run on the main thread. Prints `N passed, N failed`.
//! `BACKUP_UI_SHOTS=DIR` saves a picture of each window.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use relm4::adw;
use relm4::gtk;

mod a11y;
mod backup;
#[path = "../shared/gtk_tests.rs"]
mod gtk_tests;
mod restore;
mod support;

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "backup_window_saves_and_reopens_its_profile",
            backup::backup_window_saves_and_reopens_its_profile,
        ),
        (
            "backup_shows_progress_and_ends_with_a_summary",
            backup::backup_shows_progress_and_ends_with_a_summary,
        ),
        ("cancel_stops_the_backup", backup::cancel_stops_the_backup),
        (
            "backup_turns_the_computer_off_when_asked",
            backup::backup_turns_the_computer_off_when_asked,
        ),
        (
            "restore_lists_marks_and_restores",
            restore::restore_lists_marks_and_restores,
        ),
        (
            "damaged_backup_restores_nothing",
            restore::damaged_backup_restores_nothing,
        ),
        (
            "windows_are_accessible_by_name_and_keyboard",
            a11y::windows_are_accessible_by_name_and_keyboard,
        ),
        // Last: glibc keeps the German catalogue cached for the rest of the process.
        ("windows_in_german", a11y::windows_in_german),
    ];
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        println!("no display: GUI tests skipped (run under tools/headless)");
        println!("0 passed, 0 failed, {} skipped", tests.len());
        return;
    }
    // Accessibility on where a session bus is (tools/headless gives one), so a screen reader
    // can read the windows; ./run-tests turns it off for the other GUI tests.
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        // SAFETY: before GTK starts and before any other thread of this test program.
        unsafe {
            std::env::remove_var("GTK_A11Y");
            std::env::remove_var("NO_AT_BRIDGE");
        }
    }
    qubes_qube_manager::renderer::prefer_software_rendering();
    qubes_qube_manager::i18n::init();
    gtk::init().expect("GTK");
    adw::init().expect("libadwaita");
    // `cargo test --test NAME -- WORD...` runs the tests whose names contain one of the words.
    gtk_tests::run(tests);
}
