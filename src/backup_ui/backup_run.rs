//! The backup window's later pages: the daemon's summary as a table, the run (Execute on a
//! worker, its progress from `backup-progress` events, Cancel) and the result.

use std::time::{Duration, Instant};

use qubes_api::{CallError, Client};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use super::backup_window::Ui;
use super::info;
use super::profile::{self, RUN_ID};
use crate::a11y;
use crate::i18n::tr;

/// What the run's workers tell the window.
enum RunMsg {
    /// `backup-progress`: percent done.
    Progress(f64),
    /// Execute answered.
    Finished(Result<(), CallError>),
}

/// Adds the summary, progress and result pages.
pub(super) fn build_pages(ui: &Ui) {
    let s = &ui.shell;
    ui.summary.set_margin_start(24);
    ui.summary.set_margin_end(24);
    ui.summary.set_margin_top(18);
    ui.summary.set_margin_bottom(18);
    s.add_page("summary", &ui.summary);

    let running = gtk::Box::new(gtk::Orientation::Vertical, 12);
    running.set_valign(gtk::Align::Center);
    running.set_margin_start(48);
    running.set_margin_end(48);
    let heading = gtk::Label::new(Some(&tr("Backing up…")));
    heading.add_css_class("title-2");
    running.append(&heading);
    ui.progress.set_show_text(true);
    ui.progress.set_widget_name("progress");
    a11y::set_name(&ui.progress, &tr("Backup progress"));
    running.append(&ui.progress);
    ui.progress_label.set_wrap(true);
    ui.progress_label.set_widget_name("progress-label");
    running.append(&ui.progress_label);
    s.pages.add_named(&running, Some("progress"));

    ui.done.set_widget_name("done");
    s.add_page("done", &ui.done);
}

/// Shows `admin.backup.Info`'s answer as a table, with Start.
pub(super) fn show_summary(ui: &Ui, text: &str) {
    while let Some(c) = ui.summary.first_child() {
        ui.summary.remove(&c);
    }
    let intro = gtk::Label::new(Some(&tr(
        "This is what the backup will hold. Start it when it is right.",
    )));
    intro.set_xalign(0.0);
    intro.set_wrap(true);
    ui.summary.append(&intro);
    ui.summary.append(&summary_widget(text));
    ui.shell.show("summary");
    ui.shell.back.set_visible(true);
    ui.shell.next.set_label(&tr("Start backup"));
    ui.shell.next.grab_focus();
}

/// The summary as a grid (qube, type, size, note), the total and what is not in the backup;
/// the text as it came when it is not the expected table.
pub(super) fn summary_widget(text: &str) -> gtk::Widget {
    let Some(table) = info::parse(text) else {
        let raw = gtk::Label::new(Some(text));
        raw.add_css_class("monospace");
        raw.set_selectable(true);
        raw.set_xalign(0.0);
        return raw.upcast();
    };
    let grid = gtk::Grid::builder()
        .column_spacing(18)
        .row_spacing(6)
        .build();
    grid.set_widget_name("summary-table");
    a11y::set_name(&grid, &tr("Backup summary"));
    let cell = |text: &str, col: i32, row: i32, css: Option<&str>| {
        let l = gtk::Label::new(Some(text));
        l.set_xalign(if col == 2 { 1.0 } else { 0.0 });
        l.set_wrap(col == 3);
        if let Some(c) = css {
            l.add_css_class(c);
        }
        grid.attach(&l, col, row, 1, 1);
        l
    };
    for (col, head) in (0..).zip([tr("Qube"), tr("Type"), tr("Size")]) {
        cell(&head, col, 0, Some("heading"));
    }
    // Grid rows are `i32`, one per qube (row 0 is the heading): no backup comes near the limit.
    let grid_row = |i: usize| i32::try_from(i).unwrap_or(i32::MAX - 1) + 1;
    for (r, row) in table.rows.iter().enumerate() {
        let r = grid_row(r);
        cell(&row.name, 0, r, None).set_widget_name(&format!("summary:{}", row.name));
        cell(&info::kind_text(&row.kind), 1, r, None);
        cell(&row.size, 2, r, None);
        if let Some(w) = &row.warning {
            cell(&info::warning_text(w), 3, r, Some("warning"));
        }
    }
    let last = grid_row(table.rows.len());
    cell(&tr("Total"), 0, last, Some("heading"));
    cell(&table.total, 2, last, Some("heading")).set_widget_name("summary-total");
    let outer = gtk::Box::new(gtk::Orientation::Vertical, 12);
    outer.append(&grid);
    if !table.not_selected.is_empty() {
        let rest = gtk::Label::new(Some(&tr("Not in this backup: {}").replacen(
            "{}",
            &table.not_selected.join(", "),
            1,
        )));
        rest.set_wrap(true);
        rest.set_xalign(0.0);
        rest.add_css_class("dim-label");
        outer.append(&rest);
    }
    outer.upcast()
}

/// The primary button on the later pages: Start on the summary, Close at the end.
pub(super) fn next(ui: &Ui) {
    match ui.shell.page().as_deref() {
        Some("summary") => start(ui),
        Some("done") => ui.shell.window.close(),
        _ => {}
    }
}

/// Back from the summary to the settings (the run's profile goes: it holds the passphrase).
pub(super) fn back(ui: &Ui) {
    remove_run_profile(ui);
    ui.shell.back.set_visible(false);
    ui.shell.next.set_label(&tr("Next"));
    ui.shell.show("settings");
}

/// Removes the run's profile unless a backup runs that still needs it.
pub(super) fn forget_run_profile(ui: &Ui) {
    if !ui.state.borrow().running {
        remove_run_profile(ui);
    }
}

fn remove_run_profile(ui: &Ui) {
    let st = ui.state.borrow();
    if st.run_id == RUN_ID
        && let Some(dir) = &st.env.profile_dir
    {
        profile::remove(dir, RUN_ID);
    }
}

/// Closing: while a backup runs, ask whether to stop it; otherwise the run's profile goes.
pub(super) fn close_request(ui: &Ui) -> gtk::glib::Propagation {
    if !ui.state.borrow().running {
        remove_run_profile(ui);
        return gtk::glib::Propagation::Proceed;
    }
    let stop = {
        let ui = ui.clone();
        move || {
            cancel(&ui);
            ui.state.borrow_mut().running = false;
        }
    };
    ui.shell.ask_to_stop(
        [
            tr("Stop the backup?"),
            tr("The backup is not finished. Stopping it leaves no partial backup behind."),
            tr("Continue the backup"),
            tr("Stop the backup"),
        ],
        stop,
    );
    gtk::glib::Propagation::Stop
}

/// Cancel: asks the daemon to stop the running backup.
pub(super) fn cancel(ui: &Ui) {
    let (client, id) = {
        let st = ui.state.borrow();
        (st.client.clone(), st.run_id.clone())
    };
    ui.shell.cancel.set_sensitive(false);
    ui.progress_label.set_text(&tr("Stopping the backup…"));
    let ui = ui.clone();
    super::call_then(&client, "admin.backup.Cancel", id, move |r| match r {
        Ok(_) => ui
            .progress_label
            .set_text(&tr("The backup stops now; what it had written is removed.")),
        Err(e) => {
            ui.shell.cancel.set_sensitive(true);
            ui.shell.toast(&crate::errors::describe(&e));
        }
    });
}

/// Starts the backup: events first (so no progress is missed), then Execute, both on
/// workers; the window follows their messages.
fn start(ui: &Ui) {
    let Some(choices) = ui.state.borrow().choices.clone() else {
        return;
    };
    let (client, env, id) = {
        let mut st = ui.state.borrow_mut();
        st.running = true;
        (st.client.clone(), st.env.clone(), st.run_id.clone())
    };
    ui.progress.set_fraction(0.0);
    ui.progress.set_text(Some("0 %"));
    ui.progress_label.set_text(
        &tr("Writing to {}: {}")
            .replacen("{}", &choices.destination_vm, 1)
            .replacen("{}", &choices.destination_path, 1),
    );
    ui.shell.back.set_visible(false);
    ui.shell.next.set_visible(false);
    ui.shell.cancel.set_visible(true);
    ui.shell.cancel.set_sensitive(true);
    ui.shell.show("progress");
    let (tx, rx) = async_channel::unbounded::<RunMsg>();
    let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel::<()>();
    follow_progress(&client, &id, tx.clone(), subscribed_tx);
    let remove = (id == RUN_ID).then(|| env.profile_dir.clone()).flatten();
    std::thread::spawn(move || {
        // Without an event stream (policy) the backup runs all the same, without progress.
        let _ = subscribed_rx.recv_timeout(Duration::from_secs(10));
        let result = client.call("admin.backup.Execute", "dom0", &id, b"");
        if let Some(dir) = remove {
            profile::remove(&dir, &id);
        }
        let _ = tx.send_blocking(RunMsg::Finished(result.map(|_| ())));
    });
    let started = Instant::now();
    let ui = ui.clone();
    gtk::glib::spawn_future_local(async move {
        while let Ok(msg) = rx.recv().await {
            match msg {
                RunMsg::Progress(p) => {
                    // The daemon read the profile when the backup began: the passphrase
                    // need not wait on disk for the end.
                    remove_run_profile(&ui);
                    let p = p.clamp(0.0, 100.0);
                    ui.progress.set_fraction(p / 100.0);
                    ui.progress.set_text(Some(&percent(p)));
                }
                RunMsg::Finished(result) => {
                    finished(&ui, result, started.elapsed());
                    break;
                }
            }
        }
    });
}

/// `12 %`, with a decimal below 10 % so that a start is seen.
fn percent(p: f64) -> String {
    if p < 10.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

/// Forwards this profile's `backup-progress` events until the window stops listening.
fn follow_progress(
    client: &Client,
    id: &str,
    tx: async_channel::Sender<RunMsg>,
    subscribed: std::sync::mpsc::Sender<()>,
) {
    let (client, id) = (client.clone(), id.to_string());
    std::thread::spawn(move || {
        let mut events = match client.events("dom0") {
            Ok(e) => e,
            Err(_) => return,
        };
        let _ = subscribed.send(());
        // Ends at the first event after the run (Execute's own `backup_timestamp` changes).
        while let Ok(Some(ev)) = events.next_event() {
            if tx.is_closed() {
                return;
            }
            if ev.name != "backup-progress" {
                continue;
            }
            let kw = |k: &str| {
                ev.kwargs
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            };
            if kw("backup_profile") == Some(id.as_str())
                && let Some(p) = kw("progress").and_then(|p| p.parse::<f64>().ok())
                && p.is_finite()
                && tx.send_blocking(RunMsg::Progress(p)).is_err()
            {
                return;
            }
        }
    });
}

fn finished(ui: &Ui, result: Result<(), CallError>, took: Duration) {
    ui.state.borrow_mut().running = false;
    ui.shell.cancel.set_visible(false);
    ui.shell.next.set_visible(true);
    ui.shell.next.set_label(&tr("Close"));
    let done = &ui.done;
    let choices = ui.state.borrow().choices.clone();
    // What has the focus on the done page: Close, or Stay On when the computer is to turn off.
    let mut focus: Option<gtk::Widget> = None;
    match result {
        Ok(()) => {
            ui.progress.set_fraction(1.0);
            done.set_icon_name(Some("emblem-ok-symbolic"));
            done.set_title(&tr("Backup complete"));
            let secs = took.as_secs();
            let mut text = tr("Written to {}: {} in {} min {} s.")
                .replacen("{}", choices.as_ref().map_or("", |c| &c.destination_vm), 1)
                .replacen(
                    "{}",
                    choices.as_ref().map_or("", |c| &c.destination_path),
                    1,
                )
                .replacen("{}", &(secs / 60).to_string(), 1)
                .replacen("{}", &(secs % 60).to_string(), 1);
            text.push(' ');
            text.push_str(&tr(
                "Keep the passphrase: the backup cannot be read without it.",
            ));
            done.set_description(Some(&super::plain(&text)));
            let content = gtk::Box::new(gtk::Orientation::Vertical, 24);
            let power_off = ui.state.borrow().env.power_off.clone();
            if let Some(command) = power_off.filter(|_| ui.power_off.is_active()) {
                let (notice, stay) = super::power_off::notice(command);
                content.append(&notice);
                focus = Some(stay.upcast());
            }
            // The summary again, as it was when the backup started.
            if let Some(t) = ui.summary.last_child() {
                ui.summary.remove(&t);
                let clamp = adw::Clamp::new();
                clamp.set_child(Some(&t));
                content.append(&clamp);
            }
            done.set_child(Some(&content));
        }
        Err(CallError::Exception { kind, .. }) if kind == "BackupCancelledError" => {
            done.set_icon_name(Some("process-stop-symbolic"));
            done.set_title(&tr("Backup cancelled"));
            done.set_description(Some(&tr(
                "The backup was stopped. No partial backup was kept.",
            )));
            done.set_child(None::<&gtk::Widget>);
        }
        Err(e) => {
            done.set_icon_name(Some("dialog-error-symbolic"));
            done.set_title(&tr("Backup failed"));
            let why = match &e {
                CallError::Exception { kind, .. } if kind == "BackupAlreadyRunningError" => tr(
                    "A backup with these settings is already running. Wait for it, or cancel it first.",
                ),
                e => crate::errors::describe(e),
            };
            done.set_description(Some(&super::plain(&why)));
            done.set_child(None::<&gtk::Widget>);
        }
    }
    ui.shell.show("done");
    focus
        .unwrap_or_else(|| ui.shell.next.clone().upcast())
        .grab_focus();
}
