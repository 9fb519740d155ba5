//! The restore window's first pages: the backup file and its passphrase (the header is
//! authenticated and `qubes.xml` read before anything is shown), then the qubes of the backup
//! with what conflicts with this system, and the options. [`super::restore_run`] restores.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use qubes_api::Client;
use qubes_backup::qubesxml::BackupQubes;
use qubes_backup::read::{Backup, ReadOptions};
use qubes_backup::restore::{HostState, Plan, PlanEntry, Problem, RestoreOptions};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use super::env::BackupEnv;
use super::{Shell, check_row, combo_text, switch_row};
use crate::a11y;
use crate::i18n::tr;
use crate::widgets::background;

/// The window's state between pages.
pub(super) struct State {
    pub client: Client,
    pub env: BackupEnv,
    /// The open backup (header authenticated), until a restore takes it.
    pub backup: Option<Backup>,
    pub qubes: BackupQubes,
    pub host: HostState,
    pub plan: Option<Plan>,
    /// Stops reading the backup (the restore then removes what it created).
    pub cancel: Arc<AtomicBool>,
    pub checks: Vec<(String, gtk::CheckButton)>,
    pub statuses: Vec<(String, gtk::Label)>,
    rows: Vec<gtk::Widget>,
    pub running: bool,
}

/// The widgets the handlers reach.
#[derive(Clone)]
pub(super) struct Ui {
    pub shell: Shell,
    pub location: adw::ComboRow,
    pub file: adw::EntryRow,
    pub choose: gtk::Button,
    pub passphrase: adw::PasswordEntryRow,
    pub error: gtk::Label,
    pub qubes: adw::PreferencesGroup,
    pub rename: gtk::Switch,
    pub ignore_missing: gtk::Switch,
    pub home_row: adw::ActionRow,
    pub home: gtk::Switch,
    pub verify: gtk::Switch,
    pub heading: gtk::Label,
    pub progress: gtk::ListBox,
    pub done: adw::StatusPage,
    pub state: Rc<RefCell<State>>,
}

/// Opens the restore window on `client`'s daemon.
pub fn open(parent: Option<&gtk::Window>, client: Client, env: BackupEnv) -> adw::Window {
    let shell = Shell::new(parent, &tr("Restore qubes"));
    let ui = build(shell, client, env);
    ui.shell.next.set_label(&tr("Read backup"));
    ui.shell.show("source");
    fill_locations(&ui);
    ui.shell.window.present();
    ui.file.grab_focus();
    ui.shell.window.clone()
}

fn build(shell: Shell, client: Client, env: BackupEnv) -> Ui {
    let page = adw::PreferencesPage::new();
    let group = adw::PreferencesGroup::builder()
        .title(tr("Backup"))
        .description(tr(
            "Nothing is restored before you choose what: the backup is checked with the passphrase first.",
        ))
        .build();
    let location = adw::ComboRow::builder()
        .title(tr("Where the backup is"))
        .model(&gtk::StringList::new(&[]))
        .build();
    location.set_widget_name("restore-location");
    group.add(&location);
    let file = adw::EntryRow::builder().title(tr("Backup file")).build();
    file.set_widget_name("restore-file");
    let choose = gtk::Button::with_label(&tr("Choose…"));
    choose.set_valign(gtk::Align::Center);
    choose.set_tooltip_text(Some(&tr("Choose the backup file")));
    file.add_suffix(&choose);
    group.add(&file);
    let passphrase = super::passphrase_row(&tr("Passphrase"), "restore-passphrase");
    passphrase.set_activates_default(true);
    group.add(&passphrase);
    page.add(&group);
    let error = gtk::Label::new(None);
    error.set_widget_name("restore-error");
    error.add_css_class("error");
    error.set_wrap(true);
    error.set_xalign(0.0);
    // Selectable: it can take the focus, so it is brought into view and read out.
    error.set_selectable(true);
    error.set_visible(false);
    let error_group = adw::PreferencesGroup::new();
    error_group.add(&error);
    page.add(&error_group);
    shell.pages.add_named(&page, Some("source"));

    let choose_page = adw::PreferencesPage::new();
    let qubes = adw::PreferencesGroup::builder()
        .title(tr("Qubes in the backup"))
        .description(tr("The checked qubes are restored, templates first."))
        .build();
    choose_page.add(&qubes);
    let options = adw::PreferencesGroup::builder()
        .title(tr("Options"))
        .build();
    let (rename_row, rename) = switch_row(
        &tr("Rename qubes whose name is taken"),
        &tr("Otherwise they are not restored"),
        "rename-conflicting",
    );
    let (missing_row, ignore_missing) = switch_row(
        &tr("Restore qubes whose template or network qube is missing"),
        &tr("They get the default template and network qube instead"),
        "ignore-missing",
    );
    let (home_row, home) = switch_row(
        &tr("Restore dom0's home folder"),
        &tr("Into a new folder home-restore-<date> of your home folder in dom0"),
        "restore-home",
    );
    let (verify_row, verify) = switch_row(
        &tr("Only verify the backup"),
        &tr("Reads and checks every byte of the chosen qubes; restores nothing"),
        "verify-only",
    );
    for r in [&rename_row, &missing_row, &home_row, &verify_row] {
        options.add(r);
    }
    choose_page.add(&options);
    shell.pages.add_named(&choose_page, Some("qubes"));

    let progress = gtk::ListBox::new();
    progress.add_css_class("boxed-list");
    progress.set_selection_mode(gtk::SelectionMode::None);
    progress.set_widget_name("restore-progress");
    a11y::set_name(&progress, &tr("Restore progress"));
    let done = adw::StatusPage::new();
    done.set_widget_name("done");
    let ui = Ui {
        shell,
        location,
        file,
        choose,
        passphrase,
        error,
        qubes,
        rename,
        ignore_missing,
        home_row,
        home,
        verify,
        heading: gtk::Label::new(None),
        progress,
        done,
        state: Rc::new(RefCell::new(State {
            client,
            env,
            backup: None,
            qubes: BackupQubes::default(),
            host: HostState::default(),
            plan: None,
            cancel: Arc::new(AtomicBool::new(false)),
            checks: Vec::new(),
            statuses: Vec::new(),
            rows: Vec::new(),
            running: false,
        })),
    };
    super::restore_run::build_pages(&ui);
    connect(&ui);
    ui
}

fn connect(ui: &Ui) {
    let replan = {
        let ui = ui.clone();
        move || replan(&ui)
    };
    for s in [&ui.rename, &ui.ignore_missing, &ui.home, &ui.verify] {
        let replan = replan.clone();
        s.connect_active_notify(move |_| replan());
    }
    {
        let ui2 = ui.clone();
        ui.location
            .connect_selected_notify(move |_| location_changed(&ui2));
        let ui2 = ui.clone();
        ui.choose.connect_clicked(move |_| choose_file(&ui2));
        let ui2 = ui.clone();
        ui.shell
            .next
            .connect_clicked(move |_| match ui2.shell.page().as_deref() {
                Some("source") => read_backup(&ui2),
                _ => super::restore_run::next(&ui2),
            });
        let ui2 = ui.clone();
        ui.shell.back.connect_clicked(move |_| {
            ui2.state.borrow_mut().backup = None;
            ui2.shell.back.set_visible(false);
            ui2.shell.next.set_label(&tr("Read backup"));
            ui2.shell.next.set_sensitive(true);
            ui2.shell.show("source");
        });
        let ui2 = ui.clone();
        ui.shell
            .cancel
            .connect_clicked(move |_| super::restore_run::cancel(&ui2));
        let ui2 = ui.clone();
        ui.shell
            .window
            .connect_close_request(move |_| super::restore_run::close_request(&ui2));
    }
}

/// The local file system's name, then the qubes a backup can be read from.
fn fill_locations(ui: &Ui) {
    let (client, env) = {
        let st = ui.state.borrow();
        (st.client.clone(), st.env.clone())
    };
    let local = local_name(&env);
    if let Some(list) = ui.location.model().and_downcast::<gtk::StringList>() {
        list.append(&local);
    }
    location_changed(ui);
    if env.qube_reader.is_none() || !client.real_system() {
        return;
    }
    let ui = ui.clone();
    background(
        move || {
            client
                .vm_list()
                .map(|l| {
                    l.into_iter()
                        .filter(|e| {
                            e.state == "Running"
                                && !matches!(e.class.as_str(), "AdminVM" | "TemplateVM")
                        })
                        .map(|e| e.name)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        },
        move |names| {
            if let Some(list) = ui.location.model().and_downcast::<gtk::StringList>() {
                for n in names {
                    list.append(&n);
                }
            }
        },
    );
}

fn local_name(env: &BackupEnv) -> String {
    if env.local_is_dom0 {
        "dom0".into()
    } else {
        tr("This qube")
    }
}

fn location_changed(ui: &Ui) {
    let (local, in_qubes) = {
        let st = ui.state.borrow();
        (
            local_name(&st.env),
            st.env.qube_reader.is_some() && st.client.real_system(),
        )
    };
    let here = combo_text(&ui.location).is_none_or(|l| l == local);
    // A file here with a file chooser; one in a qube with its own (qubes.SelectFile).
    ui.choose.set_sensitive(here || in_qubes);
}

fn choose_file(ui: &Ui) {
    let (local, reader) = {
        let st = ui.state.borrow();
        (local_name(&st.env), st.env.qube_reader.clone())
    };
    let in_qube = match combo_text(&ui.location).filter(|l| *l != local) {
        Some(vm) => {
            let Some(reader) = reader else { return };
            Some((reader, vm))
        }
        None => None,
    };
    ui.shell.choose_path(
        &ui.file,
        in_qube,
        "qubes.SelectFile",
        &tr("Choose the backup file"),
        gtk::FileChooserAction::Open,
    );
}

fn show_error(ui: &Ui, text: Option<&str>) {
    ui.error.set_text(text.unwrap_or(""));
    ui.error.set_visible(text.is_some());
    if text.is_some() {
        ui.passphrase.add_css_class("error");
    } else {
        ui.passphrase.remove_css_class("error");
    }
}

/// Read backup: opens the file, authenticates its header, reads `qubes.xml` and what this
/// system has (on a worker).
fn read_backup(ui: &Ui) {
    let path = ui.file.text().trim().to_string();
    if path.is_empty() {
        ui.shell.toast(&tr("Say which backup file to restore."));
        ui.file.grab_focus();
        return;
    }
    let passphrase = ui.passphrase.text().to_string();
    let (client, env, cancel) = {
        let mut st = ui.state.borrow_mut();
        st.backup = None;
        st.cancel = Arc::new(AtomicBool::new(false));
        (st.client.clone(), st.env.clone(), st.cancel.clone())
    };
    let local = local_name(&env);
    let location = combo_text(&ui.location).unwrap_or_else(|| local.clone());
    let from_qube = (location != local).then_some(location);
    ui.shell.next.set_sensitive(false);
    show_error(ui, None);
    let ui = ui.clone();
    background(
        move || {
            let source = super::restore_run::open_source(&env, from_qube.as_deref(), &path)?;
            let mut opts = ReadOptions::new(passphrase);
            opts.spool_dir = env.spool_dir.clone();
            opts.cancel = cancel;
            let backup = Backup::open(source, opts).map_err(|e| e.message())?;
            let qubes =
                qubes_backup::qubesxml::parse(backup.qubes_xml()).map_err(|e| e.message())?;
            let host = host_state(&client)?;
            Ok::<_, String>((backup, qubes, host))
        },
        move |result| {
            ui.shell.next.set_sensitive(true);
            match result {
                Ok((backup, qubes, host)) => {
                    {
                        let mut st = ui.state.borrow_mut();
                        st.backup = Some(backup);
                        st.qubes = qubes;
                        st.host = host;
                    }
                    show_qubes(&ui);
                }
                Err(e) => {
                    show_error(&ui, Some(&super::restore_run::reason_text(&e)));
                    ui.passphrase.grab_focus();
                }
            }
        },
    );
}

fn host_state(client: &Client) -> Result<HostState, String> {
    let qubes = client
        .vm_list()
        .map_err(|e| crate::errors::describe(&e))?
        .into_iter()
        .map(|e| (e.name, e.class))
        .collect();
    let default_template = client
        .call("admin.property.Get", "dom0", "default_template", b"")
        .ok()
        .and_then(|v| qubes_api::PropValue::parse(&v).ok())
        .map(|v| v.value)
        .filter(|t| !t.is_empty());
    Ok(HostState {
        qubes,
        default_template,
    })
}

/// The qubes page: one row per qube of the backup, checked unless it cannot be restored.
fn show_qubes(ui: &Ui) {
    {
        let mut st = ui.state.borrow_mut();
        let mut rows = std::mem::take(&mut st.rows);
        super::clear_group(&ui.qubes, &mut rows);
        st.checks.clear();
        st.statuses.clear();
        let opts = RestoreOptions::default();
        let plan = Plan::new(&st.qubes, &st.host, &opts);
        let has_home = st
            .qubes
            .qubes
            .iter()
            .any(|q| q.class == "AdminVM" && q.included());
        ui.home_row.set_visible(has_home);
        let can_home = st.env.dom0_home_dir.is_some();
        ui.home_row.set_sensitive(can_home);
        ui.home.set_active(has_home && can_home);
        if !can_home {
            ui.home_row
                .set_subtitle(&tr("dom0's home folder can only be restored in dom0"));
        }
        for e in &plan.entries {
            let q = &st.qubes.qubes[e.index];
            let mut sub = class_text(&q.class);
            if let Some(t) = &q.template {
                sub = format!("{sub} · {}", tr("template {}").replacen("{}", t, 1));
            }
            if q.backup_size > 0 {
                sub = format!("{sub} · {}", crate::model::human_size(q.backup_size));
            }
            let (row, check) = check_row(&e.name, &sub, &format!("restore-qube:{}", e.name));
            check.set_active(true);
            let status = gtk::Label::new(None);
            status.set_widget_name(&format!("restore-status:{}", e.name));
            status.set_wrap(true);
            status.set_max_width_chars(28);
            status.set_xalign(1.0);
            row.add_suffix(&status);
            let ui2 = ui.clone();
            check.connect_toggled(move |_| replan(&ui2));
            ui.qubes.add(&row);
            st.rows.push(row.upcast());
            st.checks.push((e.name.clone(), check));
            st.statuses.push((e.name.clone(), status));
        }
        if plan.entries.is_empty() {
            let empty = super::row(&tr("This backup holds no qube"), "");
            ui.qubes.add(&empty);
            st.rows.push(empty.upcast());
        }
    }
    ui.shell.back.set_visible(true);
    ui.shell.show("qubes");
    replan(ui);
}

fn class_text(class: &str) -> String {
    match class {
        "TemplateVM" => tr("Template"),
        "StandaloneVM" => tr("Standalone qube"),
        "DispVM" => tr("Disposable"),
        _ => tr("App qube"),
    }
}

/// The options as the switches and checks say.
pub(super) fn options(ui: &Ui) -> RestoreOptions {
    let st = ui.state.borrow();
    let import = &st.env.import;
    RestoreOptions {
        verify_only: ui.verify.is_active(),
        rename_conflicting: ui.rename.is_active(),
        exclude: st
            .checks
            .iter()
            .filter(|(_, c)| !c.is_active())
            .map(|(n, _)| n.clone())
            .collect(),
        only: Vec::new(),
        ignore_missing: ui.ignore_missing.is_active(),
        skip_dom0_home: !ui.home.is_active() || st.env.dom0_home_dir.is_none(),
        dom0_home_dir: st.env.dom0_home_dir.clone(),
        import_program: import.program.clone(),
        import_args: import.args.clone(),
        import_env: import.env.clone(),
        progress: None,
    }
}

/// What the plan says about a qube, for its row.
fn status_text(e: &PlanEntry, template_was: Option<&str>) -> (String, bool) {
    match e.problems.first() {
        Some(Problem::Excluded) => (tr("Left out"), false),
        Some(Problem::AlreadyExists) => (
            tr("A qube with this name exists: left out unless renamed"),
            true,
        ),
        Some(Problem::MissingTemplate) => (
            tr("Its template {} is neither here nor in the backup").replacen(
                "{}",
                template_was.unwrap_or(""),
                1,
            ),
            true,
        ),
        Some(Problem::MissingNetvm) => (
            tr("Its network qube {} is neither here nor in the backup").replacen(
                "{}",
                e.netvm.as_deref().unwrap_or(""),
                1,
            ),
            true,
        ),
        None if e.restore_as != e.name => (
            tr("Will be restored as {}").replacen("{}", &e.restore_as, 1),
            false,
        ),
        None if e.template.as_deref() != template_was => (
            tr("Will be restored with the template {}").replacen(
                "{}",
                e.template.as_deref().unwrap_or(""),
                1,
            ),
            false,
        ),
        None => (tr("Will be restored"), false),
    }
}

/// Plans again after a change of the options or of the checks, and says per qube what will
/// happen; Restore is offered when something would be restored.
pub(super) fn replan(ui: &Ui) {
    if ui.shell.page().as_deref() != Some("qubes") {
        return;
    }
    let opts = options(ui);
    let mut st = ui.state.borrow_mut();
    let plan = Plan::new(&st.qubes, &st.host, &opts);
    for e in &plan.entries {
        let template_was = st.qubes.qubes[e.index].template.clone();
        let (mut text, warn) = status_text(e, template_was.as_deref());
        if opts.verify_only && e.good() {
            text = tr("Will be verified");
        }
        if let Some((_, label)) = st.statuses.iter().find(|(n, _)| *n == e.name) {
            label.set_text(&text);
            if warn {
                label.add_css_class("warning");
            } else {
                label.remove_css_class("warning");
            }
        }
    }
    let any = plan.entries.iter().any(PlanEntry::good) || plan.dom0_home.is_some();
    st.plan = Some(plan);
    drop(st);
    ui.shell.next.set_sensitive(any);
    ui.shell.next.set_label(&if opts.verify_only {
        tr("Verify")
    } else {
        tr("Restore")
    });
}
