//! `qui-domains`: the Qubes Domains tray item. Running qubes with their memory and CPU, what
//! can be done to each, halted qubes to start, notifications about power changes and failures,
//! and a warning with "Unpause all" when every qube is paused.
//!
//! It is a StatusNotifierItem with a dbusmenu (works on X11 and Wayland hosts alike), not a
//! window: no GTK in the process. The qube rows and the event mapping are the Qube Manager's
//! ([`crate::model`], [`crate::loader`]); one thread owns the state ([`state::Domains`]) and
//! rebuilds the menu after each burst of messages; daemon calls run on worker threads, so
//! neither the menu nor the state ever waits on the daemon.

pub mod disk;
pub mod icon;
pub mod menu;
pub mod notify;
pub mod sni;
pub mod state;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use ksni::blocking::TrayMethods;
use qubes_api::{CallError, Client, Event};

use crate::i18n::tr;
use crate::loader::{Refetch, Refetched};
use crate::loader::{shutdown_timeout, wait_halted};
use crate::model::change_for;
use menu::{Abilities, Command};
use notify::{Notification, Notifier};
use sni::QubesTray;
use state::Domains;

/// How events are gathered before the menu is rebuilt: until none came for this long...
const BURST: Duration = Duration::from_millis(50);
/// ...or for this long at most, so a steady stream cannot hold the menu back.
const LONGEST_BURST: Duration = Duration::from_millis(250);

/// Messages to the thread that owns the state.
#[derive(Debug)]
pub enum TrayMsg {
    /// An event from `admin.Events`.
    Event(Event),
    /// The event stream could not be opened.
    Unreachable(String),
    /// A round of statistics.
    Stats(Vec<crate::model::Change>),
    /// What the refetch worker read again.
    Refetched(Refetched),
    /// The user asked for something.
    Command(Command),
    /// A command failed.
    Failed(Command, CallError),
    /// A qube did not halt within its `shutdown_timeout` after being asked to.
    StillRunning(String, u64),
    /// What is running out of disk space, as just checked.
    Disk(Vec<disk::DiskWarning>),
    /// Stop the tray.
    Quit,
}

/// How to start a local program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The executable.
    pub path: PathBuf,
    /// Arguments before the ones the tray adds.
    pub args: Vec<OsString>,
}

/// What the tray can do beyond Admin API calls, found by [`Options::detect`] or set by tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Qube Manager on the same daemon (Settings adds `--settings QUBE`).
    pub manager: Option<Program>,
    /// Runs a qrexec service in a qube: `qvm-run --service` in dom0 (the tray adds `-- QUBE
    /// SERVICE`), `qrexec-client-vm` in a GUI qube (adds `QUBE SERVICE`).
    pub run_service: Option<Program>,
    /// The updater (`qubes-update-gui`; the tray adds `--targets QUBE,...`).
    pub updater: Option<Program>,
    /// How often disk space is checked besides when qubes start and stop (the reference
    /// widget checks every two minutes).
    pub disk_interval: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            manager: None,
            run_service: None,
            updater: None,
            disk_interval: Duration::from_secs(120),
        }
    }
}

impl Options {
    /// The Qube Manager next to this program or in `PATH` (run with `daemon_args`), and a
    /// service runner when `client` reaches a real system.
    pub fn detect(client: &Client, daemon_args: Vec<OsString>) -> Options {
        let manager = find_program("qubes-qube-manager").map(|path| Program {
            path,
            args: daemon_args,
        });
        let run_service = if client.real_system() {
            find_program("qvm-run")
                .map(|path| Program {
                    path,
                    args: vec!["--service".into(), "--".into()],
                })
                .or_else(|| {
                    find_program("qrexec-client-vm").map(|path| Program {
                        path,
                        args: Vec::new(),
                    })
                })
        } else {
            None
        };
        let updater = if client.real_system() {
            find_program("qubes-update-gui").map(|path| Program {
                path,
                args: Vec::new(),
            })
        } else {
            None
        };
        Options {
            manager,
            run_service,
            updater,
            ..Options::default()
        }
    }

    fn abilities(&self) -> Abilities {
        Abilities {
            run_in_qubes: self.run_service.is_some(),
            manager: self.manager.is_some(),
            updater: self.updater.is_some(),
        }
    }
}

/// `name` next to the running program, else in `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .or_else(|| crate::cli::in_path(name))
}

/// A running tray.
pub struct Running {
    /// Sends messages to the tray's state thread.
    pub sender: Sender<TrayMsg>,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    /// Waits until the tray stops (after [`TrayMsg::Quit`]).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts the tray item on the session bus and follows the daemon behind `client`.
pub fn spawn(client: Client, options: Options) -> Result<Running, ksni::Error> {
    let (tx, rx) = channel();
    let dispatch: sni::Dispatch = {
        let tx = std::sync::Mutex::new(tx.clone());
        Arc::new(move |c| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(TrayMsg::Command(c));
            }
        })
    };
    // Without a StatusNotifierWatcher (stock GNOME) the item waits for one to appear;
    // notifications work meanwhile.
    let handle = QubesTray::new(dispatch)
        .assume_sni_available(true)
        .spawn()?;
    let notifier = Notifier::connect();
    {
        let tx = tx.clone();
        notifier.listen(move |c| {
            let _ = tx.send(TrayMsg::Command(c));
        });
    }
    let disk_checks =
        disk_worker(client.clone(), options.disk_interval, tx.clone()).map_err(thread_error)?;
    let owner = Owner {
        disk_checks,
        refetches: {
            let tx = tx.clone();
            crate::loader::refetch_worker(client.clone(), move |r| {
                tx.send(TrayMsg::Refetched(r)).is_ok()
            })
            .map_err(thread_error)?
        },
        client,
        options,
        tx: tx.clone(),
        notifier,
        domains: Domains::default(),
        all_paused_shown: false,
    };
    let thread = std::thread::Builder::new()
        .name("qui-domains".into())
        .spawn(move || owner.run(rx, handle))
        .map_err(thread_error)?;
    Ok(Running { sender: tx, thread })
}

/// A thread that could not be started, as the error `spawn` reports.
fn thread_error(e: std::io::Error) -> ksni::Error {
    ksni::Error::Dbus(zbus::Error::InputOutput(Arc::new(e)))
}

/// The state thread.
struct Owner {
    client: Client,
    options: Options,
    tx: Sender<TrayMsg>,
    /// Reads for the refetch worker (one thread, however many events come at once).
    refetches: Sender<Refetch>,
    /// Asks the disk-space worker to check now.
    disk_checks: Sender<()>,
    notifier: Notifier,
    domains: Domains,
    all_paused_shown: bool,
}

impl Owner {
    fn run(mut self, rx: Receiver<TrayMsg>, handle: ksni::blocking::Handle<QubesTray>) {
        {
            let tx = self.tx.clone();
            let followed = crate::loader::follow_events(self.client.clone(), move |e| {
                let msg = match e {
                    Ok(ev) => TrayMsg::Event(ev),
                    Err(e) => TrayMsg::Unreachable(crate::errors::describe(&e)),
                };
                tx.send(msg).is_ok()
            });
            if let Err(e) = followed {
                tracing::warn!("cannot start following the events: {e}");
            }
            let tx = self.tx.clone();
            // Each figure as it comes: the burst gathering below makes one menu of a round.
            let followed = crate::loader::follow_stats_each(self.client.clone(), move |change| {
                tx.send(TrayMsg::Stats(vec![change])).is_ok()
            });
            if let Err(e) = followed {
                tracing::warn!("cannot start following the statistics: {e}");
            }
        }
        self.publish(&handle);
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            // Take the whole burst before touching the menu, but show a long one as it goes.
            let started = std::time::Instant::now();
            while let Some(msg) = next {
                if matches!(msg, TrayMsg::Quit) {
                    handle.shutdown().wait();
                    return;
                }
                self.handle(msg);
                if started.elapsed() > LONGEST_BURST {
                    break;
                }
                next = match rx.recv_timeout(BURST) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
            }
            self.publish(&handle);
        }
    }

    /// Sends the current menu to the tray item and shows or withdraws the all-paused warning.
    fn publish(&mut self, handle: &ksni::blocking::Handle<QubesTray>) {
        let entries = menu::build(&self.domains, self.options.abilities());
        let summary = match (&self.domains.unreachable, self.domains.loaded) {
            (Some(why), _) => format!("{}: {why}", tr("Cannot reach qubesd")),
            (None, true) => menu::summary(&self.domains),
            (None, false) => String::new(),
        };
        let all_paused = self.domains.all_paused();
        handle.update(move |t| {
            t.set_menu(entries);
            t.summary = summary;
            t.attention = all_paused;
        });
        if all_paused != self.all_paused_shown {
            self.all_paused_shown = all_paused;
            if all_paused {
                self.notifier.show(&Notification {
                    key: "all-paused".into(),
                    summary: tr("Your qubes have been paused!"),
                    body: tr("Every running qube is paused. Unpause them to go on working."),
                    urgent: true,
                    actions: vec![(Command::UnpauseAll, tr("Unpause all"))],
                });
            } else {
                self.notifier.withdraw("all-paused");
            }
        }
    }

    fn handle(&mut self, msg: TrayMsg) {
        match msg {
            TrayMsg::Event(ev) => {
                // Space changes when qubes start and stop, pools come and go, data comes in.
                if matches!(
                    ev.name.as_str(),
                    "connection-established"
                        | "domain-start"
                        | "domain-shutdown"
                        | "pool-add"
                        | "pool-delete"
                        | "domain-volume-import-end"
                ) {
                    let _ = self.disk_checks.send(());
                }
                if let Some(n) = state::notice_for(&ev, &self.domains) {
                    self.notifier.show(&Notification {
                        key: n.vm.clone(),
                        summary: tr("Qube status: %s").replacen("%s", &n.vm, 1),
                        body: n.body,
                        urgent: n.urgent,
                        actions: Vec::new(),
                    });
                }
                if let Some(refetch) = self.domains.apply(change_for(&ev)) {
                    self.refetch(refetch);
                }
            }
            TrayMsg::Unreachable(e) => {
                if self.domains.unreachable.as_ref() != Some(&e) {
                    tracing::warn!("qubesd: {e}");
                    self.domains.unreachable = Some(e);
                }
            }
            TrayMsg::Stats(round) => {
                for change in round {
                    self.domains.apply(change);
                }
            }
            TrayMsg::Refetched(Refetched::All(Ok((colours, qubes)))) => {
                self.domains.replace(colours, qubes)
            }
            TrayMsg::Refetched(Refetched::All(Err(e))) => self.domains.unreachable = Some(e),
            // The tray asks for everything at once, never for the list alone.
            TrayMsg::Refetched(Refetched::Listed(_)) => {}
            TrayMsg::Refetched(Refetched::Qube(vm, info)) => match info {
                Some(q) => {
                    self.domains.qubes.insert(vm, q);
                }
                None => {
                    self.domains.qubes.remove(&vm);
                }
            },
            TrayMsg::Refetched(Refetched::Property(vm, prop, value)) => {
                if let Some(q) = self.domains.qubes.get_mut(&vm) {
                    q.props.insert(prop, value);
                }
            }
            TrayMsg::Refetched(Refetched::State(vm, state)) => {
                self.domains
                    .apply(crate::model::Change::State { vm, state });
            }
            TrayMsg::Refetched(Refetched::Feature(vm, feature, value)) => {
                if let Some(q) = self.domains.qubes.get_mut(&vm) {
                    match value {
                        Some(v) => q.features.insert(feature, v),
                        None => q.features.remove(&feature),
                    };
                }
            }
            TrayMsg::Command(Command::UnpauseAll) => {
                let paused: Vec<String> = self
                    .domains
                    .running()
                    .filter(|q| q.state == "Paused" && q.class != "AdminVM")
                    .map(|q| q.name.clone())
                    .collect();
                let commands = paused.into_iter().map(Command::Unpause).collect();
                run_calls(self.client.clone(), commands, self.tx.clone());
            }
            TrayMsg::Command(c) => self.execute(c),
            TrayMsg::Failed(command, error) => self.failed(command, &error),
            TrayMsg::StillRunning(vm, seconds) => {
                self.notifier.show(&Notification {
                    key: vm.clone(),
                    summary: tr("Shutting down %s failed").replacen("%s", &vm, 1),
                    body: tr("%s is still running %d seconds after it was asked to shut down.")
                        .replacen("%s", &vm, 1)
                        .replacen("%d", &seconds.to_string(), 1),
                    urgent: true,
                    actions: vec![(Command::Kill(vm), tr("Kill"))],
                });
            }
            TrayMsg::Disk(warnings) => self.disk(warnings),
            TrayMsg::Quit => {}
        }
    }

    /// A disk-space check came back: a notification for each new warning (urgent from 95 %,
    /// with the qube's settings where its storage grows), withdrawn when it is over.
    fn disk(&mut self, warnings: Vec<disk::DiskWarning>) {
        for old in &self.domains.disk {
            if !warnings.iter().any(|w| w.item == old.item) {
                self.notifier.withdraw(&old.key());
            }
        }
        for w in &warnings {
            let known = self
                .domains
                .disk
                .iter()
                .any(|o| o.item == w.item && o.urgent() == w.urgent());
            if known {
                continue;
            }
            let actions = match w.qube() {
                Some(vm) if self.options.manager.is_some() => {
                    vec![(Command::Settings(vm.to_string()), tr("Open qube settings"))]
                }
                _ => Vec::new(),
            };
            self.notifier.show(&Notification {
                key: w.key(),
                summary: if w.urgent() {
                    tr("Disk space is running out!")
                } else {
                    tr("Disk space is getting low")
                },
                body: w.text(),
                urgent: w.urgent(),
                actions,
            });
        }
        self.domains.disk = warnings;
    }

    /// Tells the user a command failed, offering what may help.
    fn failed(&self, command: Command, error: &CallError) {
        let kind = match error {
            CallError::Exception { kind, .. } => kind.as_str(),
            _ => "",
        };
        let actions = match &command {
            // The qube still serves others (its network, its devices): say so, offer force.
            Command::Shutdown(vm) if kind == "QubesVMInUseError" => {
                vec![(Command::ForceShutdown(vm.clone()), tr("Force shutdown"))]
            }
            Command::Shutdown(vm) | Command::ForceShutdown(vm) | Command::Restart(vm) => {
                vec![(Command::Kill(vm.clone()), tr("Kill"))]
            }
            _ => Vec::new(),
        };
        let key = command.qube().unwrap_or("tray").to_string();
        self.notifier.show(&Notification {
            key,
            summary: command.failure(),
            body: crate::errors::describe(error),
            urgent: true,
            actions,
        });
    }

    /// Reads again what a change made stale, on the refetch worker.
    fn refetch(&self, what: Refetch) {
        let _ = self.refetches.send(what);
    }

    /// Carries out a command on a worker thread; failures come back as [`TrayMsg::Failed`].
    fn execute(&self, command: Command) {
        // A button of an old notification may name a qube that is gone.
        if command
            .qube()
            .is_some_and(|vm| !self.domains.qubes.contains_key(vm))
        {
            return;
        }
        let (client, tx, options) = (self.client.clone(), self.tx.clone(), self.options.clone());
        match &command {
            Command::OpenManager => return spawn_program(options.manager, Vec::new(), command, tx),
            Command::Update(vm) => {
                let args = vec!["--targets".into(), vm.into()];
                return spawn_program(options.updater, args, command, tx);
            }
            Command::UpdateAll => {
                let targets: Vec<String> = menu::with_updates(&self.domains)
                    .iter()
                    .map(|q| q.name.clone())
                    .collect();
                let args = vec!["--targets".into(), targets.join(",").into()];
                return spawn_program(options.updater, args, command, tx);
            }
            Command::Settings(vm) => {
                let args = vec!["--settings".into(), vm.into()];
                return spawn_program(options.manager, args, command, tx);
            }
            Command::Terminal(vm) | Command::FileManager(vm) => {
                let service = if matches!(command, Command::Terminal(_)) {
                    "qubes.StartApp+qubes-run-terminal"
                } else {
                    "qubes.StartApp+qubes-open-file-manager"
                };
                let args = vec![vm.into(), service.into()];
                return spawn_program(options.run_service, args, command, tx);
            }
            _ => {}
        }
        run_calls(client, vec![command], tx);
    }
}

/// Starts the disk-space worker: it checks when asked (a burst of requests is one check) and
/// every `interval`, and sends what it found. Returns where to ask.
fn disk_worker(
    client: Client,
    interval: Duration,
    tx: Sender<TrayMsg>,
) -> std::io::Result<Sender<()>> {
    let (ask, asked) = channel::<()>();
    std::thread::Builder::new()
        .name("qui-disk-space".into())
        .spawn(move || {
            loop {
                match asked.recv_timeout(interval) {
                    Ok(()) => while asked.try_recv().is_ok() {},
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if tx.send(TrayMsg::Disk(disk::check(&client))).is_err() {
                    return;
                }
            }
        })?;
    Ok(ask)
}

/// Runs Admin API commands one after the other on a thread of their own; failures come back
/// as [`TrayMsg::Failed`].
fn run_calls(client: Client, commands: Vec<Command>, tx: Sender<TrayMsg>) {
    let spawned = std::thread::Builder::new()
        .name("qui-command".into())
        .spawn(move || {
            for command in commands {
                if let Err(e) = run_call(&client, &command, &tx) {
                    let _ = tx.send(TrayMsg::Failed(command, e));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot run a command: {e}");
    }
}

/// The Admin API side of a command (blocking).
fn run_call(client: &Client, command: &Command, tx: &Sender<TrayMsg>) -> Result<(), CallError> {
    let call = |method: &str, vm: &str, arg: &str| client.call(method, vm, arg, b"").map(drop);
    // After a shutdown request: tell the user if the qube outlives its timeout.
    let halted = |vm: &str| -> Result<bool, CallError> {
        let timeout = shutdown_timeout(client, vm);
        let done = wait_halted(client, vm, timeout)?;
        if !done {
            let _ = tx.send(TrayMsg::StillRunning(vm.to_string(), timeout));
        }
        Ok(done)
    };
    match command {
        Command::Start(vm) => call("admin.vm.Start", vm, ""),
        Command::Pause(vm) => call("admin.vm.Pause", vm, ""),
        Command::Unpause(vm) => call("admin.vm.Unpause", vm, ""),
        Command::Kill(vm) => call("admin.vm.Kill", vm, ""),
        Command::Shutdown(vm) => {
            call("admin.vm.Shutdown", vm, "")?;
            halted(vm).map(drop)
        }
        Command::ForceShutdown(vm) => {
            call("admin.vm.Shutdown", vm, "force")?;
            halted(vm).map(drop)
        }
        Command::Restart(vm) => {
            call("admin.vm.Shutdown", vm, "force")?;
            if halted(vm)? {
                call("admin.vm.Start", vm, "")?;
            }
            Ok(())
        }
        // Local programs: see `Owner::execute`.
        _ => Ok(()),
    }
}

/// Starts a local program; a failure to start or a failed exit is reported.
fn spawn_program(
    program: Option<Program>,
    extra: Vec<OsString>,
    command: Command,
    tx: Sender<TrayMsg>,
) {
    let Some(program) = program else {
        return;
    };
    std::thread::spawn(move || {
        let mut run = std::process::Command::new(&program.path);
        run.args(&program.args).args(&extra);
        if let Err(failure) = crate::cli::run_quietly(&mut run) {
            let _ = tx.send(TrayMsg::Failed(
                command,
                CallError::Io(std::io::Error::other(failure)),
            ));
        }
    });
}
