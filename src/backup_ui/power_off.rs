//! Turning the computer off when a backup is done, the reference Qube Manager's "turn
//! computer off after backup" option. Only after a backup that succeeded, as there, and with
//! a minute's notice that can be stopped (the reference turns off at once): someone who
//! comes back early, or who wants to look at the summary, keeps the computer on.

use std::cell::Cell;
use std::rc::Rc;

use relm4::gtk;
use relm4::gtk::prelude::*;

use crate::i18n::tr;

/// Seconds of notice, as GNOME gives before it turns the computer off.
pub(super) const NOTICE_SECS: u32 = 60;

/// The notice shown on the done page: a line counting down and two buttons, *Turn Off Now*
/// and *Stay On* (returned too, to be given the focus). At zero, or on *Turn Off Now*,
/// `command` runs; a failure to run it is shown. The count stops when the notice leaves the
/// window (the window closed).
pub(super) fn notice(command: Vec<String>) -> (gtk::Box, gtk::Button) {
    let area = gtk::Box::new(gtk::Orientation::Vertical, 12);
    area.set_widget_name("power-off");
    area.set_halign(gtk::Align::Center);
    let line = gtk::Label::new(Some(&remaining_text(NOTICE_SECS)));
    line.set_widget_name("power-off-countdown");
    line.set_wrap(true);
    line.set_justify(gtk::Justification::Center);
    // Selectable: it can take the focus and be read out as it changes.
    line.set_selectable(true);
    let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 12);
    buttons.set_halign(gtk::Align::Center);
    let stay = gtk::Button::with_mnemonic(&tr("_Stay On"));
    stay.set_widget_name("power-off-cancel");
    let now = gtk::Button::with_mnemonic(&tr("_Turn Off Now"));
    now.set_widget_name("power-off-now");
    now.add_css_class("destructive-action");
    buttons.append(&stay);
    buttons.append(&now);
    area.append(&line);
    area.append(&buttons);

    let left = Rc::new(Cell::new(NOTICE_SECS));
    // Set once the notice is over (turned off, or stopped): the timer then ends.
    let over = Rc::new(Cell::new(false));
    let finish = {
        let (line, buttons, over) = (line.clone(), buttons.clone(), over.clone());
        move |turn_off: bool| {
            if over.replace(true) {
                return;
            }
            // The buttons go, and with them the focus: the line that says what happens
            // takes it, so it is read out.
            buttons.set_visible(false);
            line.grab_focus();
            if !turn_off {
                line.set_text(&tr("The computer stays on."));
                return;
            }
            line.set_text(&tr("Turning the computer off…"));
            let command = command.clone();
            let line = line.clone();
            crate::widgets::background(
                move || run(&command),
                move |result| {
                    if let Err(e) = result {
                        line.set_text(
                            &tr("The computer could not be turned off: {}").replacen("{}", &e, 1),
                        );
                    }
                },
            );
        }
    };
    let finish = Rc::new(finish);
    stay.connect_clicked({
        let finish = finish.clone();
        move |_| finish(false)
    });
    now.connect_clicked({
        let finish = finish.clone();
        move |_| finish(true)
    });
    let weak = area.downgrade();
    gtk::glib::timeout_add_seconds_local(1, move || {
        let Some(area) = weak.upgrade() else {
            return gtk::glib::ControlFlow::Break;
        };
        if over.get() {
            return gtk::glib::ControlFlow::Break;
        }
        // Gone from its window, or the window closed: nobody was told, so nothing happens.
        if area.root().is_none_or(|r| !r.is_visible()) {
            over.set(true);
            return gtk::glib::ControlFlow::Break;
        }
        let n = left.get().saturating_sub(1);
        left.set(n);
        if n == 0 {
            finish(true);
            return gtk::glib::ControlFlow::Break;
        }
        line.set_text(&remaining_text(n));
        gtk::glib::ControlFlow::Continue
    });
    (area, stay)
}

/// "The computer turns off in N seconds." in the user's language.
fn remaining_text(secs: u32) -> String {
    crate::i18n::tr_n(
        "The computer turns off in %d second.",
        "The computer turns off in %d seconds.",
        secs as usize,
    )
}

/// Runs the power-off command and waits for it; its error output on failure.
fn run(command: &[String]) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or_else(|| tr("No command"))?;
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        // Shown in a label (never read as markup), its first lines only.
        let err: String = String::from_utf8_lossy(&out.stderr)
            .trim()
            .chars()
            .take(500)
            .collect();
        Err(if err.is_empty() {
            format!("{program}: {}", out.status)
        } else {
            err
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_and_its_failure_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("off");
        let ok = vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("echo off > {}", marker.display()),
        ];
        assert_eq!(run(&ok), Ok(()));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "off\n");
        let failing = vec!["sh".into(), "-c".into(), "echo no way >&2; exit 1".into()];
        assert_eq!(run(&failing), Err("no way".to_string()));
        let missing = vec!["/nonexistent/poweroff".to_string()];
        assert!(
            run(&missing)
                .unwrap_err()
                .starts_with("/nonexistent/poweroff: ")
        );
        assert!(run(&[]).is_err());
    }
}
