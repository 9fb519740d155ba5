//! Short questions before a lifecycle step: kill?, shut the qubes behind a network qube down
//! first?, kill or wait for a qube that outlives its shutdown timeout?, which command to run?
//! Each is a message dialog whose answer reaches the window as an [`Answer`]; the work is the
//! window's.

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use crate::i18n::tr;

/// What the user answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Kill these qubes.
    Kill(Vec<String>),
    /// Shut down each group in turn (the qubes behind a network qube, farthest first, then
    /// the network qube itself).
    ShutDownInOrder(Vec<Vec<String>>),
    /// Kill this qube, which did not shut down in time.
    KillNow(String),
    /// Wait longer for this qube to shut down.
    WaitLonger(String),
    /// Run `command` in `vm` (`qvm-run`).
    Run {
        /// The qube.
        vm: String,
        /// The command line.
        command: String,
    },
}

/// A message dialog over `parent` with `responses` (id, label); the first is the one closing
/// it, `destructive` is coloured as such, `default` answers Enter.
fn ask(
    parent: &gtk::Window,
    heading: &str,
    body: &str,
    responses: &[(&str, String)],
    destructive: Option<&str>,
    default: &str,
) -> adw::MessageDialog {
    let dialog = adw::MessageDialog::new(Some(parent), Some(heading), Some(body));
    for (id, label) in responses {
        dialog.add_response(id, label);
    }
    if let Some(id) = destructive {
        dialog.set_response_appearance(id, adw::ResponseAppearance::Destructive);
    }
    dialog.set_default_response(Some(default));
    if let Some((close, _)) = responses.first() {
        dialog.set_close_response(close);
    }
    dialog
}

/// Asks before killing `qubes` (Cancel is the default: what they have not saved is lost).
pub fn kill(
    parent: &gtk::Window,
    qubes: Vec<String>,
    answer: impl Fn(Answer) + 'static,
) -> adw::MessageDialog {
    let heading = match qubes.as_slice() {
        [one] => tr("Kill %s?").replacen("%s", one, 1),
        _ => crate::i18n::tr_n("Kill %d qube?", "Kill %d qubes?", qubes.len()),
    };
    let why =
        tr("A killed qube stops at once, as if its power were cut: what it has not saved is lost.");
    let body = match qubes.as_slice() {
        [_] => why,
        _ => format!("{why}\n{}", qubes.join(", ")),
    };
    let dialog = ask(
        parent,
        &heading,
        &body,
        &[("cancel", tr("Cancel")), ("kill", tr("Kill"))],
        Some("kill"),
        "cancel",
    );
    dialog.connect_response(Some("kill"), move |_, _| {
        answer(Answer::Kill(qubes.clone()))
    });
    dialog.present();
    dialog
}

/// Offers to shut down the qubes whose network goes through `vm` (`levels`: by distance, as
/// [`crate::lifecycle::network_users`] gives them), farthest first, then `vm` itself.
pub fn shut_down_users(
    parent: &gtk::Window,
    vm: &str,
    levels: &[Vec<String>],
    answer: impl Fn(Answer) + 'static,
) -> adw::MessageDialog {
    let order = crate::lifecycle::shutdown_order(levels, vm);
    let users = &order[..order.len() - 1];
    let dialog = ask(
        parent,
        &tr("Shut down %s?").replacen("%s", vm, 1),
        &format!(
            "{}\n{}",
            tr(
                "These running qubes reach the network through it and will be shut down first, in this order:"
            ),
            users.join(", ")
        ),
        &[("cancel", tr("Cancel")), ("shutdown", tr("Shut down all"))],
        Some("shutdown"),
        "cancel",
    );
    // One group per distance, farthest first; the network qube last.
    let mut groups: Vec<Vec<String>> = levels.iter().rev().cloned().collect();
    groups.push(vec![vm.to_string()]);
    dialog.connect_response(Some("shutdown"), move |_, _| {
        answer(Answer::ShutDownInOrder(groups.clone()))
    });
    dialog.present();
    dialog
}

/// Asks what to do with `vm`, still running after its shutdown timeout: kill it or wait.
pub fn timed_out(
    parent: &gtk::Window,
    vm: String,
    answer: impl Fn(Answer) + 'static,
) -> adw::MessageDialog {
    let dialog = ask(
        parent,
        &tr("%s is still running").replacen("%s", &vm, 1),
        &tr(
            "The qube did not shut down in time. Kill it (unsaved data in it is lost) or wait longer?",
        ),
        &[("wait", tr("Wait")), ("kill", tr("Kill"))],
        Some("kill"),
        "wait",
    );
    dialog.connect_response(None, move |_, response| {
        answer(if response == "kill" {
            Answer::KillNow(vm.clone())
        } else {
            Answer::WaitLonger(vm.clone())
        })
    });
    dialog.present();
    dialog
}

/// Asks for a command to run in `vm`.
pub fn run_command(
    parent: &gtk::Window,
    vm: String,
    answer: impl Fn(Answer) + 'static,
) -> adw::MessageDialog {
    let dialog = ask(
        parent,
        &tr("Run a command in %s").replacen("%s", &vm, 1),
        &tr("The qube starts first if it is not running."),
        &[("cancel", tr("Cancel")), ("run", tr("Run"))],
        None,
        "run",
    );
    let entry = gtk::Entry::new();
    entry.set_tooltip_text(Some(&tr("Command")));
    crate::a11y::set_name(&entry, &tr("Command"));
    entry.set_activates_default(true);
    dialog.set_extra_child(Some(&entry));
    dialog.connect_response(Some("run"), move |_, _| {
        let command = entry.text().to_string();
        if !command.trim().is_empty() {
            answer(Answer::Run {
                vm: vm.clone(),
                command,
            });
        }
    });
    dialog.present();
    dialog
}
