//! Lifecycle actions and the local qube tools: what Start, Pause, Resume, Shut down, Restart
//! and Kill do to the selected qubes (asking first where the answer matters: kill?, the qubes
//! behind a network qube?, kill or wait?), and running `qvm-run` / `qvm-console-dispvm`.

use qubes_api::Client;

use super::feeds::spawn_work;
use super::{App, Msg};
use crate::dialogs::questions::{self, Answer};
use crate::i18n::tr;
use crate::model::Change;

/// Lifecycle actions of the toolbar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start.
    Start,
    /// Pause (a running qube).
    Pause,
    /// Resume (a paused qube).
    Resume,
    /// Shut down.
    Shutdown,
    /// Shut down, wait until halted (up to the qube's `shutdown_timeout`), start again.
    Restart,
    /// Kill.
    Kill,
}

impl Action {
    /// Every action, in the header bar's order.
    pub const ALL: [Action; 6] = [
        Action::Start,
        Action::Pause,
        Action::Resume,
        Action::Shutdown,
        Action::Restart,
        Action::Kill,
    ];

    /// The name of its `qube.*` action (buttons and menus).
    pub fn id(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Shutdown => "shutdown",
            Action::Restart => "restart",
            Action::Kill => "kill",
        }
    }

    /// The Admin API method.
    fn method(self) -> &'static str {
        match self {
            Action::Start => "admin.vm.Start",
            Action::Pause => "admin.vm.Pause",
            Action::Resume => "admin.vm.Unpause",
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
            Action::Pause => state == "Running",
            Action::Resume => matches!(state, "Paused" | "Suspended"),
            Action::Shutdown => matches!(state, "Running" | "Transient"),
            Action::Restart => state == "Running",
            Action::Kill => !matches!(state, "Halted" | "NA"),
        }
    }

    /// The heading shown when the action fails.
    fn failure(self, vm: &str) -> String {
        let text = match self {
            Action::Start => tr("Starting %s failed"),
            Action::Pause => tr("Pausing %s failed"),
            Action::Resume => tr("Resuming %s failed"),
            Action::Shutdown => tr("Shutting down %s failed"),
            Action::Restart => tr("Restarting %s failed"),
            Action::Kill => tr("Killing %s failed"),
        };
        text.replacen("%s", vm, 1)
    }
}

/// Sends the daemon's power state of a qube to the window as a change.
pub(super) fn state_to(input: &relm4::Sender<Msg>) -> impl Fn(&str, String) + use<> {
    let input = input.clone();
    move |vm, state| {
        input.emit(Msg::Change(Change::State {
            vm: vm.to_string(),
            state,
        }))
    }
}

/// The message for a shutdown (or restart) that did not go as asked.
pub(super) fn trouble(action: Action, t: crate::lifecycle::Trouble) -> Msg {
    match t {
        crate::lifecycle::Trouble::Failed { vm, message } => {
            Msg::Failed(action.failure(&vm), message)
        }
        // Still running after its timeout: the user chooses to kill it or to wait longer.
        crate::lifecycle::Trouble::TimedOut(vm) => Msg::ShutdownTimedOut(vm),
    }
}

/// Runs a lifecycle action on one qube: the call, then for a shutdown the wait for the halt,
/// for a restart the wait and a start. A failure reads the qube's state again.
pub(super) fn run_action(
    c: &Client,
    action: Action,
    method: &str,
    vm: &str,
    input: &relm4::Sender<Msg>,
) -> Option<Msg> {
    let state = state_to(input);
    if let Err(e) = c.call(method, vm, "", b"") {
        if let Some(s) = crate::loader::current_state(c, vm) {
            state(vm, s);
        }
        return Some(Msg::Failed(action.failure(vm), crate::errors::describe(&e)));
    }
    if !matches!(action, Action::Shutdown | Action::Restart) {
        return None;
    }
    if let Err(t) = crate::lifecycle::wait_for_halt(c, vm, &state) {
        return Some(trouble(action, t));
    }
    if action == Action::Restart
        && let Err(e) = c.call("admin.vm.Start", vm, "", b"")
    {
        return Some(Msg::Failed(action.failure(vm), crate::errors::describe(&e)));
    }
    None
}

/// `name` in `PATH`, when local tools act on the qubes `client` shows.
pub(super) fn find_tool(client: &Client, name: &str) -> Option<std::path::PathBuf> {
    if !client.real_system() {
        return None;
    }
    crate::cli::in_path(name)
}

/// Runs a local qube tool in the background; a failure (exit status, stderr) is reported.
pub(super) fn run_tool(
    mut command: std::process::Command,
    heading: String,
    input: relm4::Sender<Msg>,
) {
    std::thread::spawn(move || {
        if let Err(message) = crate::cli::run_quietly(&mut command) {
            input.emit(Msg::Failed(heading, message));
        }
    });
}

impl App {
    /// Runs `action` on the selected qubes it applies to; Kill asks first.
    pub(super) fn on_action(&mut self, action: Action, input: &relm4::Sender<Msg>) {
        let qubes = self.targets(action);
        if qubes.is_empty() {
            return;
        }
        if action == Action::Kill {
            // Killing loses what the qube has not saved: ask first (Cancel is the default).
            self.kill_question = Some(questions::kill(&self.window(), qubes, answer_to(input)));
        } else {
            self.run_action(action, qubes, input);
        }
    }

    /// Runs `action` on each of `qubes`, each in its own worker; a network qube's shutdown asks
    /// first about the qubes behind it.
    fn run_action(&mut self, action: Action, qubes: Vec<String>, input: &relm4::Sender<Msg>) {
        for vm in qubes {
            if !self.infos.contains_key(&vm) {
                continue;
            }
            let method = action.method();
            let levels = self.network_users(&vm);
            if action == Action::Shutdown && !levels.is_empty() {
                // Qubes reaching the network through it must stop first: ask.
                self.shutdown_users = Some(questions::shut_down_users(
                    &self.window(),
                    &vm,
                    &levels,
                    answer_to(input),
                ));
                continue;
            }
            let to = input.clone();
            spawn_work(&self.client, input, move |c| {
                run_action(c, action, method, &vm, &to)
            });
        }
    }

    /// Does what the user answered to a question.
    pub(super) fn on_answer(&mut self, answer: Answer, input: &relm4::Sender<Msg>) {
        match answer {
            Answer::Kill(qubes) => {
                // Only those still there and killable.
                let still = self.targets(Action::Kill);
                let qubes = qubes.into_iter().filter(|q| still.contains(q)).collect();
                self.run_action(Action::Kill, qubes, input);
            }
            Answer::ShutDownInOrder(groups) => {
                let to = input.clone();
                spawn_work(&self.client, input, move |c| {
                    crate::lifecycle::shut_down_groups(c, &groups, &state_to(&to))
                        .err()
                        .map(|t| trouble(Action::Shutdown, t))
                });
            }
            Answer::KillNow(vm) => {
                let to = input.clone();
                spawn_work(&self.client, input, move |c| {
                    run_action(c, Action::Kill, "admin.vm.Kill", &vm, &to)
                });
            }
            Answer::WaitLonger(vm) => {
                let to = input.clone();
                spawn_work(&self.client, input, move |c| {
                    crate::lifecycle::wait_for_halt(c, &vm, &state_to(&to))
                        .err()
                        .map(|t| trouble(Action::Shutdown, t))
                });
            }
            Answer::Run { vm, command } => {
                if let Some(tool) = self.tool("qvm-run") {
                    let mut run = std::process::Command::new(&tool);
                    run.args(["--autostart", "--quiet", &vm, &command]);
                    run_tool(
                        run,
                        tr("Running a command in %s failed").replacen("%s", &vm, 1),
                        input.clone(),
                    );
                }
            }
        }
    }

    /// A qube outlived its shutdown timeout: kill it or wait?
    pub(super) fn on_timed_out(&mut self, vm: String, input: &relm4::Sender<Msg>) {
        self.timed_out = Some(questions::timed_out(&self.window(), vm, answer_to(input)));
    }

    /// Asks for a command to run in the selected qube.
    pub(super) fn on_run_command(&mut self, input: &relm4::Sender<Msg>) {
        if let (Some(vm), Some(_)) = (self.single(), self.tool("qvm-run")) {
            questions::run_command(&self.window(), vm, answer_to(input));
        }
    }

    /// Opens the selected qube's console.
    pub(super) fn on_console(&self, input: &relm4::Sender<Msg>) {
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

    /// Running qubes whose network goes through `vm`, directly or not, by distance.
    fn network_users(&self, vm: &str) -> Vec<Vec<String>> {
        let nodes: Vec<crate::lifecycle::NetNode> = self
            .infos
            .values()
            .map(|i| crate::lifecycle::NetNode {
                name: i.name.clone(),
                running: !matches!(i.state.as_str(), "Halted" | "NA"),
                netvm: i
                    .props
                    .get("netvm")
                    .map(|p| p.value.clone())
                    .unwrap_or_default(),
            })
            .collect();
        crate::lifecycle::network_users(&nodes, vm)
    }
}

/// Sends a question's answer to the window.
fn answer_to(input: &relm4::Sender<Msg>) -> impl Fn(Answer) + 'static {
    let input = input.clone();
    move |a| input.emit(Msg::Answer(a))
}
