//! The restore window's run: the `qubes-backup` restore engine on a worker over the window's
//! daemon connection, each qube's progress as it comes, Cancel, and what happened to each
//! qube at the end. A restore that fails or is cancelled removes every qube it created (the
//! engine does), and the window says so.

use std::io::Read;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use qubes_backup::BackupError;
use qubes_backup::read::Source;
use qubes_backup::restore::{self, ProgressFn, RestoreProgress, RestoreReport};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use super::env::BackupEnv;
use super::restore_window::{Ui, options};
use crate::a11y;
use crate::i18n::tr;

/// What the worker tells the window.
enum RunMsg {
    Progress(RestoreProgress),
    Finished(Result<RestoreReport, BackupError>),
}

/// A backup file read from a qube (`qvm-run --pass-io … cat`); the program is reaped when
/// the reading ends.
struct ChildOutput {
    child: Child,
    out: ChildStdout,
}

impl Read for ChildOutput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.out.read(buf)
    }
}

impl Drop for ChildOutput {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The backup file `path`: here, or in qube `from_qube` (read through `qvm-run`, as
/// `qubes-backup-restore --from-vm` does; it is then spooled one chunk at a time).
pub(super) fn open_source(
    env: &BackupEnv,
    from_qube: Option<&str>,
    path: &str,
) -> Result<Source, String> {
    let Some(vm) = from_qube else {
        return std::fs::File::open(path).map(Source::File).map_err(|e| {
            tr("Cannot open {}: {}")
                .replacen("{}", path, 1)
                .replacen("{}", &e.to_string(), 1)
        });
    };
    let reader = env
        .qube_reader
        .clone()
        .ok_or_else(|| tr("Files in other qubes cannot be read from here."))?;
    let mut child = Command::new(reader)
        .args([
            "--pass-io",
            "--no-gui",
            "--no-autostart",
            vm,
            "--",
            "cat",
            "--",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| "qvm-run: no output".to_string())?;
    Ok(Source::Stream(Box::new(ChildOutput { child, out })))
}

/// An engine failure as a sentence for people (the engine's text after it when it says more).
pub(super) fn reason_text(message: &str) -> String {
    if message.contains("Is the password correct?") {
        tr("The passphrase is wrong, or this is not the backup it was made for.")
    } else if message == "Backup cancelled" {
        tr("Cancelled.")
    } else if let Some(rest) = message.strip_prefix("The backup is damaged or not a Qubes backup: ")
    {
        format!(
            "{} ({rest})",
            tr("This file is damaged, or it is not a Qubes backup.")
        )
    } else {
        message.to_string()
    }
}

pub(super) fn build_pages(ui: &Ui) {
    let page = gtk::Box::new(gtk::Orientation::Vertical, 12);
    page.set_margin_start(24);
    page.set_margin_end(24);
    page.set_margin_top(18);
    page.set_margin_bottom(18);
    ui.heading.set_widget_name("restore-heading");
    ui.heading.add_css_class("title-2");
    page.append(&ui.heading);
    page.append(&ui.progress);
    ui.shell.add_page("progress", &page);
    ui.shell.add_page("done", &ui.done);
}

/// The primary button on the later pages: Restore (or Verify), then Close.
pub(super) fn next(ui: &Ui) {
    match ui.shell.page().as_deref() {
        Some("qubes") => start(ui),
        Some("done") => ui.shell.window.close(),
        _ => {}
    }
}

/// Cancel: stops reading the backup; the engine then removes what it created.
pub(super) fn cancel(ui: &Ui) {
    ui.state.borrow().cancel.store(true, Ordering::SeqCst);
    ui.shell.cancel.set_sensitive(false);
}

/// Closing while a restore runs asks whether to stop it.
pub(super) fn close_request(ui: &Ui) -> gtk::glib::Propagation {
    if !ui.state.borrow().running {
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
            tr("Stop the restore?"),
            tr("The restore is not finished. Stopping it removes the qubes it has created so far."),
            tr("Continue the restore"),
            tr("Stop the restore"),
        ],
        stop,
    );
    gtk::glib::Propagation::Stop
}

/// One qube's row on the progress page.
struct ProgressRow {
    name: String,
    row: adw::ActionRow,
    bar: gtk::ProgressBar,
}

fn progress_row(ui: &Ui, name: &str, waiting: &str) -> ProgressRow {
    let row = super::row(name, waiting);
    row.set_widget_name(&format!("restore-row:{name}"));
    let bar = gtk::ProgressBar::new();
    bar.set_valign(gtk::Align::Center);
    bar.set_width_request(160);
    a11y::set_name(&bar, &tr("Progress of {}").replacen("{}", name, 1));
    row.add_suffix(&bar);
    ui.progress.append(&row);
    ProgressRow {
        name: name.to_string(),
        row,
        bar,
    }
}

/// Starts the restore on a worker; the rows follow its progress.
fn start(ui: &Ui) {
    let mut opts = options(ui);
    let (client, backup, qubes, plan) = {
        let mut st = ui.state.borrow_mut();
        let (Some(backup), Some(plan)) = (st.backup.take(), st.plan.clone()) else {
            drop(st);
            ui.shell.toast(&tr("Read the backup again first."));
            ui.shell.show("source");
            return;
        };
        st.running = true;
        (st.client.clone(), backup, st.qubes.clone(), plan)
    };
    while let Some(c) = ui.progress.first_child() {
        ui.progress.remove(&c);
    }
    let rows: Vec<ProgressRow> = plan
        .entries
        .iter()
        .filter(|e| e.good())
        .map(|e| progress_row(ui, &e.name, &tr("Waiting")))
        .collect();
    let (tx, rx) = async_channel::unbounded::<RunMsg>();
    let last = std::sync::Mutex::new(Instant::now() - Duration::from_secs(1));
    let hook_tx = tx.clone();
    opts.progress = Some(ProgressFn(Arc::new(move |p: &RestoreProgress| {
        // Data at most ten times a second per restore, and always a file's end.
        if let RestoreProgress::Data { done, size, .. } = p
            && done < size
        {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            if l.elapsed() < Duration::from_millis(100) {
                return;
            }
            *l = Instant::now();
        }
        let _ = hook_tx.send_blocking(RunMsg::Progress(p.clone()));
    })));
    let verify = opts.verify_only;
    ui.heading.set_text(&if verify {
        tr("Verifying…")
    } else {
        tr("Restoring…")
    });
    ui.shell.back.set_visible(false);
    ui.shell.next.set_visible(false);
    ui.shell.cancel.set_visible(true);
    ui.shell.cancel.set_sensitive(true);
    ui.shell.show("progress");
    std::thread::spawn(move || {
        let mut backup = backup;
        let client = (!verify).then_some(&client);
        let result = restore::restore(client, &mut backup, &qubes, &plan, &opts);
        let _ = tx.send_blocking(RunMsg::Finished(result));
    });
    let ui = ui.clone();
    gtk::glib::spawn_future_local(async move {
        while let Ok(msg) = rx.recv().await {
            match msg {
                RunMsg::Progress(p) => show_progress(&rows, &p, verify),
                RunMsg::Finished(result) => {
                    finished(&ui, result, verify);
                    break;
                }
            }
        }
    });
}

fn show_progress(rows: &[ProgressRow], p: &RestoreProgress, verify: bool) {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    match p {
        RestoreProgress::Creating(q) => {
            if let Some(r) = find(q) {
                r.row
                    .set_subtitle(&tr("Creating the qube and its settings"));
                r.bar.pulse();
            }
        }
        RestoreProgress::Data {
            qube,
            file,
            done,
            size,
        } => {
            if let Some(r) = find(qube) {
                let fraction = if *size == 0 {
                    1.0
                } else {
                    *done as f64 / *size as f64
                };
                r.bar.set_fraction(fraction);
                r.row.set_subtitle(
                    &tr("{}: {} of {}")
                        .replacen("{}", file, 1)
                        .replacen("{}", &crate::model::human_size(*done), 1)
                        .replacen("{}", &crate::model::human_size(*size), 1),
                );
            }
        }
        RestoreProgress::Done(q) => {
            if let Some(r) = find(q) {
                r.bar.set_fraction(1.0);
                r.row.set_subtitle(&if verify {
                    tr("Verified")
                } else {
                    tr("Data restored")
                });
            }
        }
    }
}

fn finished(ui: &Ui, result: Result<RestoreReport, BackupError>, verify: bool) {
    ui.state.borrow_mut().running = false;
    ui.shell.cancel.set_visible(false);
    ui.shell.next.set_visible(true);
    ui.shell.next.set_sensitive(true);
    ui.shell.next.set_label(&tr("Close"));
    let done = &ui.done;
    match result {
        Ok(report) => {
            let all = report.qubes.iter().all(|q| q.ok);
            done.set_icon_name(Some(if all {
                "emblem-ok-symbolic"
            } else {
                "dialog-warning-symbolic"
            }));
            done.set_title(&match (verify, all) {
                (true, _) => tr("The backup is sound"),
                (false, true) => tr("Restore complete"),
                (false, false) => tr("Restore finished with problems"),
            });
            let mut text = if verify {
                tr("Every byte of the chosen qubes was read and checked.")
            } else {
                tr("Start the restored templates once to install their updates.")
            };
            if let Some(h) = &report.dom0_home {
                text = format!(
                    "{text} {}",
                    tr("dom0's home folder was restored into {}.").replacen(
                        "{}",
                        &h.display().to_string(),
                        1
                    )
                );
            }
            done.set_description(Some(&super::plain(&text)));
            done.set_child(Some(&results(&report, verify)));
        }
        Err(e) => {
            let cancelled = matches!(e, BackupError::Cancelled);
            done.set_icon_name(Some(if cancelled {
                "process-stop-symbolic"
            } else {
                "dialog-error-symbolic"
            }));
            done.set_title(&if cancelled {
                tr("Restore cancelled")
            } else {
                tr("Restore failed")
            });
            let undone = if verify {
                String::new()
            } else {
                format!(
                    " {}",
                    tr("Nothing was restored: the qubes it had created were removed.")
                )
            };
            done.set_description(Some(&super::plain(&format!(
                "{}{undone}",
                reason_text(&e.message())
            ))));
            done.set_child(None::<&gtk::Widget>);
        }
    }
    ui.shell.show("done");
    ui.shell.next.grab_focus();
}

/// What happened to each qube.
fn results(report: &RestoreReport, verify: bool) -> gtk::Widget {
    let list = gtk::ListBox::new();
    list.add_css_class("boxed-list");
    list.set_selection_mode(gtk::SelectionMode::None);
    a11y::set_name(&list, &tr("Restored qubes"));
    for q in &report.qubes {
        let mut text = match (q.ok, verify) {
            (false, _) => tr("Not restored"),
            (true, true) => tr("Verified"),
            (true, false) if q.restored_as != q.name => {
                tr("Restored as {}").replacen("{}", &q.restored_as, 1)
            }
            (true, false) => tr("Restored"),
        };
        for m in &q.messages {
            text.push('\n');
            text.push_str(m);
        }
        let row = super::row(&q.name, &text);
        row.set_widget_name(&format!("result:{}", q.name));
        list.append(&row);
    }
    let clamp = adw::Clamp::new();
    clamp.set_child(Some(&list));
    clamp.upcast()
}
