//! The backup window's first page: what to back up, where to, the passphrase and compression,
//! filled from the saved profile; Next saves the profiles and asks the daemon for its summary
//! (then [`super::backup_run`] takes over).

use std::cell::RefCell;
use std::rc::Rc;

use qubes_api::Client;
use qubes_backup::profile::{Pattern, Profile, QubeDesc};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use super::env::BackupEnv;
use super::profile::{self, Choices, Compression, RUN_ID, SAVED_ID};
use super::strength;
use super::{Shell, check_row, combo_select, combo_text, switch_row};
use crate::a11y;
use crate::i18n::tr;
use crate::widgets::background;

/// A qube as the window lists it.
#[derive(Debug, Clone)]
pub(super) struct QubeItem {
    pub name: String,
    pub class: String,
    pub running: bool,
    pub internal: bool,
    pub in_backups: bool,
    /// Bytes its volumes use (`admin.vm.volume.Info` usage, as the table's disk column).
    pub size: Option<u64>,
    pub tags: Vec<String>,
}

/// What the window reads at start.
struct Loaded {
    qubes: Vec<QubeItem>,
    saved: Result<Option<Profile>, String>,
}

/// Filters offered besides the default: those the restore side accepts in a header.
const FILTERS: [&str; 4] = ["bzip2", "xz", "zstd", "pigz"];

/// The window's state between pages.
pub(super) struct State {
    pub client: Client,
    pub env: BackupEnv,
    pub qubes: Vec<QubeItem>,
    pub checks: Vec<(String, gtk::CheckButton)>,
    /// The profile the run uses ([`RUN_ID`], or [`SAVED_ID`] where profiles cannot be written).
    pub run_id: String,
    /// What the summary page shows and the run backs up.
    pub choices: Option<Choices>,
    /// Whether a backup is running.
    pub running: bool,
    /// Rows added to the qube group (to clear them).
    rows: Vec<gtk::Widget>,
}

/// The widgets the handlers reach.
#[derive(Clone)]
pub(super) struct Ui {
    pub shell: Shell,
    pub qubes: adw::PreferencesGroup,
    pub dest: adw::ComboRow,
    pub path: adw::EntryRow,
    pub choose: gtk::Button,
    pub pass1: adw::PasswordEntryRow,
    pub pass2: adw::PasswordEntryRow,
    pub strength_row: adw::ActionRow,
    pub level: gtk::LevelBar,
    pub save_pass: gtk::Switch,
    pub compression: adw::ComboRow,
    pub remember: gtk::Switch,
    /// Turn the computer off when the backup succeeded (only where it can be).
    pub power_off: gtk::Switch,
    /// In a qube: the profile text to save in dom0.
    pub profile_text: gtk::TextView,
    /// What went wrong on the first page (also said in a toast).
    pub error: gtk::Label,
    pub summary: gtk::Box,
    pub progress: gtk::ProgressBar,
    pub progress_label: gtk::Label,
    pub done: adw::StatusPage,
    pub state: Rc<RefCell<State>>,
}

/// Opens the backup window on `client`'s daemon.
pub fn open(parent: Option<&gtk::Window>, client: Client, env: BackupEnv) -> adw::Window {
    let shell = Shell::new(parent, &tr("Back up qubes"));
    let loading = adw::StatusPage::builder()
        .title(tr("Reading your qubes…"))
        .icon_name("document-save-symbolic")
        .build();
    shell.pages.add_named(&loading, Some("loading"));
    let ui = build(shell, client, env);
    ui.shell.show("loading");
    ui.shell.next.set_sensitive(false);
    load(&ui);
    ui.shell.window.present();
    ui.shell.window.clone()
}

fn build(shell: Shell, client: Client, env: BackupEnv) -> Ui {
    let page = adw::PreferencesPage::new();
    let error = gtk::Label::new(None);
    error.set_widget_name("backup-error");
    error.add_css_class("error");
    error.set_wrap(true);
    error.set_xalign(0.0);
    // Selectable: it can take the focus, so it is brought into view and read out.
    error.set_selectable(true);
    error.set_visible(false);
    let error_group = adw::PreferencesGroup::new();
    error_group.add(&error);
    page.add(&error_group);
    let qubes = adw::PreferencesGroup::builder()
        .title(tr("Qubes to back up"))
        .description(tr(
            "Sizes are the disk space the qubes' volumes use. The settings of every qube are always in the backup.",
        ))
        .build();
    page.add(&qubes);

    let dest_group = adw::PreferencesGroup::builder()
        .title(tr("Destination"))
        .build();
    let dest = adw::ComboRow::builder()
        .title(tr("Qube"))
        .subtitle(tr("dom0, or a running qube that writes the backup"))
        .model(&gtk::StringList::new(&["dom0"]))
        .build();
    dest.set_widget_name("destination-qube");
    dest_group.add(&dest);
    let path = adw::EntryRow::builder()
        .title(tr("Folder, or command in the qube"))
        .build();
    path.set_widget_name("destination-path");
    let choose = gtk::Button::with_label(&tr("Choose…"));
    choose.set_valign(gtk::Align::Center);
    choose.set_tooltip_text(Some(&tr("Choose a folder in dom0")));
    path.add_suffix(&choose);
    dest_group.add(&path);
    page.add(&dest_group);

    let pass_group = adw::PreferencesGroup::builder()
        .title(tr("Passphrase"))
        .description(tr(
            "The backup is encrypted with it. Without it nobody can restore the backup, you neither.",
        ))
        .build();
    let pass1 = super::passphrase_row(&tr("Passphrase"), "passphrase");
    let pass2 = super::passphrase_row(&tr("Passphrase again"), "passphrase-again");
    pass2.set_activates_default(true);
    let strength_row = super::row(&tr("Strength"), &strength::Strength::Empty.hint());
    strength_row.set_widget_name("strength");
    let level = gtk::LevelBar::for_interval(0.0, 3.0);
    level.set_mode(gtk::LevelBarMode::Discrete);
    level.add_offset_value("low", 1.0);
    level.add_offset_value("high", 2.0);
    level.add_offset_value("full", 3.0);
    level.set_valign(gtk::Align::Center);
    level.set_width_request(120);
    a11y::set_name(&level, &tr("Passphrase strength"));
    strength_row.add_suffix(&level);
    let (save_row, save_pass) = switch_row(
        &tr("Save the passphrase in the profile"),
        &tr("Written in plain text in dom0, so a backup can run without typing it"),
        "save-passphrase",
    );
    for w in [
        pass1.upcast_ref::<gtk::Widget>(),
        pass2.upcast_ref(),
        strength_row.upcast_ref(),
        save_row.upcast_ref(),
    ] {
        pass_group.add(w);
    }
    page.add(&pass_group);

    let options = adw::PreferencesGroup::builder()
        .title(tr("Options"))
        .build();
    let mut choices = vec![tr("gzip (default)")];
    choices.extend(FILTERS.iter().map(|f| f.to_string()));
    choices.push(tr("None"));
    let refs: Vec<&str> = choices.iter().map(String::as_str).collect();
    let compression = adw::ComboRow::builder()
        .title(tr("Compression"))
        .model(&gtk::StringList::new(&refs))
        .build();
    compression.set_widget_name("compression");
    options.add(&compression);
    let (remember_row, remember) = switch_row(
        &tr("Remember these settings"),
        &tr("The next backup starts with them"),
        "remember",
    );
    remember.set_active(true);
    options.add(&remember_row);
    let (power_off_row, power_off) = switch_row(
        &tr("Turn the computer off when done"),
        &tr("After a successful backup, with a minute to change your mind"),
        "power-off",
    );
    power_off_row.set_visible(env.power_off.is_some());
    options.add(&power_off_row);
    page.add(&options);

    // In a qube, the profile can only be written in dom0: its text is shown to copy there.
    let profile_group = adw::PreferencesGroup::builder()
        .title(tr("Profile"))
        .description(tr(
            "Profiles are kept in dom0, which this qube cannot write. Save this text in dom0 as /etc/qubes/backup/qubes-manager-backup.conf, with a line passphrase_text: \"…\" holding your passphrase, then start the backup here.",
        ))
        .build();
    let profile_text = gtk::TextView::builder()
        .monospace(true)
        .editable(false)
        .wrap_mode(gtk::WrapMode::Char)
        .build();
    a11y::set_name(&profile_text, &tr("Profile text"));
    profile_group.add(&profile_text);
    page.add(&profile_group);
    let in_qube = env.profile_dir.is_none();
    profile_group.set_visible(in_qube);
    pass_group.set_visible(!in_qube);
    remember_row.set_visible(!in_qube);
    shell.pages.add_named(&page, Some("settings"));

    let summary = gtk::Box::new(gtk::Orientation::Vertical, 12);
    let progress = gtk::ProgressBar::new();
    let progress_label = gtk::Label::new(None);
    let done = adw::StatusPage::new();
    let ui = Ui {
        shell,
        qubes,
        dest,
        path,
        choose,
        pass1,
        pass2,
        strength_row,
        level,
        save_pass,
        compression,
        remember,
        power_off,
        profile_text,
        error,
        summary,
        progress,
        progress_label,
        done,
        state: Rc::new(RefCell::new(State {
            client,
            run_id: if in_qube { SAVED_ID } else { RUN_ID }.into(),
            env,
            qubes: Vec::new(),
            checks: Vec::new(),
            choices: None,
            running: false,
            rows: Vec::new(),
        })),
    };
    super::backup_run::build_pages(&ui);
    connect(&ui);
    ui
}

fn connect(ui: &Ui) {
    for entry in [&ui.pass1, &ui.pass2] {
        let ui = ui.clone();
        entry.connect_changed(move |_| passphrase_changed(&ui));
    }
    {
        let ui2 = ui.clone();
        ui.path.connect_changed(move |_| update_profile_text(&ui2));
    }
    {
        let ui2 = ui.clone();
        ui.dest.connect_selected_notify(move |_| {
            destination_changed(&ui2);
            update_profile_text(&ui2);
        });
        let ui2 = ui.clone();
        ui.compression
            .connect_selected_notify(move |_| update_profile_text(&ui2));
    }
    {
        let ui2 = ui.clone();
        ui.choose.connect_clicked(move |_| choose_folder(&ui2));
    }
    {
        let ui2 = ui.clone();
        ui.shell
            .next
            .connect_clicked(move |_| match ui2.shell.page().as_deref() {
                Some("settings") => next_from_settings(&ui2),
                _ => super::backup_run::next(&ui2),
            });
        let ui2 = ui.clone();
        ui.shell
            .back
            .connect_clicked(move |_| super::backup_run::back(&ui2));
        let ui2 = ui.clone();
        ui.shell
            .cancel
            .connect_clicked(move |_| super::backup_run::cancel(&ui2));
        let ui2 = ui.clone();
        ui.shell
            .window
            .connect_close_request(move |_| super::backup_run::close_request(&ui2));
        // Whatever ends the window (the program quitting too): the passphrase does not stay
        // on disk in the run's profile.
        let ui2 = ui.clone();
        ui.shell
            .window
            .connect_destroy(move |_| super::backup_run::forget_run_profile(&ui2));
    }
}

fn passphrase_changed(ui: &Ui) {
    let (p1, p2) = (ui.pass1.text().to_string(), ui.pass2.text().to_string());
    let names: Vec<String> = ui
        .state
        .borrow()
        .qubes
        .iter()
        .map(|q| q.name.clone())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = strength::estimate(&p1, &refs);
    ui.level.set_value(s.level());
    let mut hint = s.hint();
    if !p2.is_empty() && p1 != p2 {
        hint = format!("{hint}\n{}", tr("The two passphrases differ."));
        ui.pass2.add_css_class("error");
    } else {
        ui.pass2.remove_css_class("error");
    }
    ui.strength_row.set_subtitle(&hint);
    a11y::set_name(
        &ui.level,
        &format!("{}: {}", tr("Passphrase strength"), s.hint()),
    );
}

fn destination_changed(ui: &Ui) {
    let dom0 = combo_text(&ui.dest).as_deref() == Some("dom0");
    let (local, in_qubes) = {
        let st = ui.state.borrow();
        (
            st.env.local_is_dom0,
            st.env.qube_reader.is_some() && st.client.real_system(),
        )
    };
    // dom0's folders with a file chooser where they are this program's; a qube's with its
    // own chooser (qubes.SelectDirectory).
    ui.choose.set_sensitive(if dom0 { local } else { in_qubes });
    ui.choose.set_tooltip_text(Some(&if dom0 {
        tr("Choose a folder in dom0")
    } else {
        tr("Choose a folder in the qube")
    }));
    ui.path.set_title(&if dom0 {
        tr("Folder in dom0")
    } else {
        tr("Folder, or command in the qube")
    });
}

/// Reads the qubes, their sizes and the saved profile (on a worker), then fills the page.
fn load(ui: &Ui) {
    let (client, env) = {
        let st = ui.state.borrow();
        (st.client.clone(), st.env.clone())
    };
    let ui = ui.clone();
    background(
        move || read_all(&client, &env),
        move |loaded| match loaded {
            Ok(l) => fill(&ui, l),
            Err(e) => {
                ui.shell.pages.set_visible_child_name("loading");
                if let Some(p) = ui
                    .shell
                    .pages
                    .child_by_name("loading")
                    .and_downcast::<adw::StatusPage>()
                {
                    p.set_title(&tr("Cannot read your qubes"));
                    p.set_description(Some(&super::plain(&e)));
                }
            }
        },
    );
}

fn read_all(client: &Client, env: &BackupEnv) -> Result<Loaded, String> {
    let saved = match &env.profile_dir {
        Some(dir) => profile::load(dir, SAVED_ID),
        None => Ok(None),
    };
    let list = client.vm_list().map_err(|e| crate::errors::describe(&e))?;
    let want_tags = matches!(&saved, Ok(Some(p)) if p.include.iter().flatten().chain(&p.exclude).any(|x| x.0.starts_with("@tag:")));
    let mut qubes = Vec::new();
    for e in list.into_iter().filter(|e| e.class != "RemoteVM") {
        let internal = client
            .call("admin.vm.feature.Get", &e.name, "internal", b"")
            .is_ok_and(|v| !v.is_empty());
        let in_backups = client
            .call("admin.vm.property.Get", &e.name, "include_in_backups", b"")
            .ok()
            .and_then(|v| qubes_api::PropValue::parse(&v).ok())
            .is_some_and(|v| v.value == "True");
        let size = (e.class != "AdminVM")
            .then(|| volume_usage(client, &e.name))
            .flatten();
        let tags = if want_tags {
            client
                .call("admin.vm.tag.List", &e.name, "", b"")
                .map(|t| t.lines().map(str::to_string).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        qubes.push(QubeItem {
            running: e.state != "Halted",
            name: e.name,
            class: e.class,
            internal,
            in_backups,
            size,
            tags,
        });
    }
    Ok(Loaded { qubes, saved })
}

/// Bytes used by a qube's volumes: the sum of `usage` of `admin.vm.volume.Info`.
pub(super) fn volume_usage(client: &Client, vm: &str) -> Option<u64> {
    let list = client.call("admin.vm.volume.List", vm, "", b"").ok()?;
    let mut total: Option<u64> = None;
    for vol in list.lines() {
        let Ok(info) = client.call("admin.vm.volume.Info", vm, vol, b"") else {
            continue;
        };
        for u in info.lines().filter_map(|l| l.strip_prefix("usage=")) {
            total = Some(total.unwrap_or(0).saturating_add(u.parse().unwrap_or(0)));
        }
    }
    total
}

fn class_text(class: &str) -> String {
    match class {
        "AdminVM" => tr("Your home folder in dom0"),
        "TemplateVM" => tr("Template"),
        "StandaloneVM" => tr("Standalone qube"),
        "DispVM" => tr("Disposable"),
        _ => tr("App qube"),
    }
}

fn fill(ui: &Ui, loaded: Loaded) {
    let Loaded { mut qubes, saved } = loaded;
    qubes.retain(|q| !q.internal);
    qubes.sort_by(|a, b| (a.class != "AdminVM", &a.name).cmp(&(b.class != "AdminVM", &b.name)));
    let saved = match saved {
        Ok(p) => p,
        Err(e) => {
            ui.shell
                .toast(&tr("The saved backup settings cannot be read: {}").replacen("{}", &e, 1));
            None
        }
    };
    let selected = |q: &QubeItem| match saved.as_ref().map(|p| (&p.include, &p.exclude)) {
        Some((Some(include), exclude)) => {
            let desc = QubeDesc {
                name: q.name.clone(),
                class: q.class.clone(),
                qid: 0,
                tags: q.tags.iter().cloned().collect(),
                include_in_backups: q.in_backups,
            };
            let m = |p: &Pattern| p.matches(&desc);
            include.iter().any(m) && !exclude.iter().any(m)
        }
        _ => q.in_backups,
    };
    {
        let mut st = ui.state.borrow_mut();
        let rows = std::mem::take(&mut st.rows);
        let mut rows = rows;
        super::clear_group(&ui.qubes, &mut rows);
        st.checks.clear();
        for q in &qubes {
            let mut sub = class_text(&q.class);
            if let Some(s) = q.size {
                sub = format!("{sub} · {}", crate::model::human_size(s));
            }
            let (row, check) = check_row(&q.name, &sub, &format!("backup-qube:{}", q.name));
            check.set_active(selected(q));
            let ui2 = ui.clone();
            check.connect_toggled(move |_| {
                update_total(&ui2);
                update_profile_text(&ui2);
            });
            ui.qubes.add(&row);
            st.rows.push(row.upcast());
            st.checks.push((q.name.clone(), check));
        }
        st.qubes = qubes.clone();
    }
    // Destinations: dom0 and the running qubes that can hold a backup (as the reference).
    let mut dests = vec!["dom0".to_string()];
    dests.extend(
        qubes
            .iter()
            .filter(|q| {
                q.running && !matches!(q.class.as_str(), "AdminVM" | "TemplateVM" | "RemoteVM")
            })
            .map(|q| q.name.clone()),
    );
    if let Some(p) = &saved
        && !dests.contains(&p.destination_vm)
    {
        dests.push(p.destination_vm.clone());
    }
    let refs: Vec<&str> = dests.iter().map(String::as_str).collect();
    ui.dest.set_model(Some(&gtk::StringList::new(&refs)));
    if let Some(p) = &saved {
        let c = Choices::from_profile(p);
        combo_select(&ui.dest, &c.destination_vm);
        ui.path.set_text(&c.destination_path);
        let shown = match &c.compression {
            Compression::Default => tr("gzip (default)"),
            Compression::Off => tr("None"),
            Compression::Filter(f) => f.clone(),
        };
        if !combo_select(&ui.compression, &shown)
            && let Some(list) = ui.compression.model().and_downcast::<gtk::StringList>()
        {
            // A filter of a hand-written profile: kept as it is.
            list.splice(list.n_items() - 1, 0, &[shown.as_str()]);
            combo_select(&ui.compression, &shown);
        }
        if let Some(pass) = &c.passphrase {
            ui.pass1.set_text(pass);
            ui.pass2.set_text(pass);
        }
        ui.save_pass.set_active(c.passphrase.is_some());
    }
    destination_changed(ui);
    update_total(ui);
    update_profile_text(ui);
    ui.shell.next.set_sensitive(true);
    ui.shell.show("settings");
}

fn update_total(ui: &Ui) {
    let st = ui.state.borrow();
    let chosen: Vec<&QubeItem> = st
        .qubes
        .iter()
        .filter(|q| st.checks.iter().any(|(n, c)| *n == q.name && c.is_active()))
        .collect();
    let total: u64 = chosen.iter().filter_map(|q| q.size).sum();
    let count = crate::i18n::tr_n("%d qube chosen", "%d qubes chosen", chosen.len());
    ui.qubes.set_title(&format!(
        "{} — {count}, {}",
        tr("Qubes to back up"),
        crate::model::human_size(total)
    ));
}

/// The user's choices, or what is missing and the widget to go to.
fn collect(ui: &Ui) -> Result<Choices, (String, gtk::Widget)> {
    let st = ui.state.borrow();
    let include: Vec<String> = st
        .checks
        .iter()
        .filter(|(_, c)| c.is_active())
        .map(|(n, _)| n.clone())
        .collect();
    let first_check = st.checks.first().map(|(_, c)| c.clone().upcast());
    let path = ui.path.text().trim().to_string();
    let compression = match ui.compression.selected() {
        0 => Compression::Default,
        i if i + 1 == ui.compression.model().map_or(0, |m| m.n_items()) => Compression::Off,
        _ => Compression::Filter(combo_text(&ui.compression).unwrap_or_default()),
    };
    let choices = Choices {
        include,
        destination_vm: combo_text(&ui.dest).unwrap_or_else(|| "dom0".into()),
        destination_path: path,
        compression,
        passphrase: None,
    };
    // In a qube the profile saved in dom0 runs: what is typed here only makes its text.
    let in_qube = st.env.profile_dir.is_none();
    if choices.include.is_empty() && !in_qube {
        return Err((
            tr("Choose at least one qube to back up."),
            first_check.unwrap_or_else(|| ui.qubes.clone().upcast()),
        ));
    }
    if choices.destination_path.is_empty() && !in_qube {
        return Err((tr("Say where the backup goes."), ui.path.clone().upcast()));
    }
    if st.env.profile_dir.is_some() {
        let (p1, p2) = (ui.pass1.text().to_string(), ui.pass2.text().to_string());
        if p1.is_empty() {
            return Err((
                tr("Type a passphrase for the backup."),
                ui.pass1.clone().upcast(),
            ));
        }
        if p1 != p2 {
            return Err((
                tr("Type the same passphrase in both fields."),
                ui.pass2.clone().upcast(),
            ));
        }
        if p1.contains('\n') {
            return Err((
                tr("The passphrase cannot hold a line break."),
                ui.pass1.clone().upcast(),
            ));
        }
        return Ok(Choices {
            passphrase: Some(p1),
            ..choices
        });
    }
    Ok(choices)
}

fn update_profile_text(ui: &Ui) {
    if ui.state.borrow().env.profile_dir.is_some() {
        return;
    }
    if let Ok(c) = collect(ui) {
        ui.profile_text.buffer().set_text(&c.to_yaml());
    }
}

fn choose_folder(ui: &Ui) {
    let dest = combo_text(&ui.dest).unwrap_or_else(|| "dom0".into());
    let in_qube = if dest == "dom0" {
        None
    } else {
        let Some(reader) = ui.state.borrow().env.qube_reader.clone() else {
            return;
        };
        Some((reader, dest))
    };
    ui.shell.choose_path(
        &ui.path,
        in_qube,
        "qubes.SelectDirectory",
        &tr("Choose the backup folder"),
        gtk::FileChooserAction::SelectFolder,
    );
}

/// Next on the first page: checks, saves the profiles and asks for the summary (on a worker).
fn next_from_settings(ui: &Ui) {
    let choices = match collect(ui) {
        Ok(c) => c,
        Err((message, widget)) => {
            show_error(ui, Some(&message));
            widget.grab_focus();
            return;
        }
    };
    show_error(ui, None);
    let (client, env, run_id) = {
        let st = ui.state.borrow();
        (st.client.clone(), st.env.clone(), st.run_id.clone())
    };
    let remember = ui.remember.is_active();
    let save_pass = ui.save_pass.is_active();
    ui.shell.next.set_sensitive(false);
    let ui = ui.clone();
    let chosen = choices.clone();
    background(
        move || prepare(&client, &env, &run_id, &chosen, remember, save_pass),
        move |result| {
            ui.shell.next.set_sensitive(true);
            match result {
                Ok(text) => {
                    ui.state.borrow_mut().choices = Some(choices);
                    super::backup_run::show_summary(&ui, &text);
                }
                Err(e) => show_error(&ui, Some(&e)),
            }
        },
    );
}

/// Shows (or clears) what stops the backup from going on: at the top of the page, and as a
/// toast, which is seen wherever the page is scrolled.
fn show_error(ui: &Ui, text: Option<&str>) {
    ui.error.set_text(text.unwrap_or(""));
    ui.error.set_visible(text.is_some());
    if let Some(t) = text {
        ui.shell.toast(t);
        ui.error.grab_focus();
    }
}

/// Writes the run's profile (and the saved one when asked), then gets `admin.backup.Info`.
fn prepare(
    client: &Client,
    env: &BackupEnv,
    run_id: &str,
    choices: &Choices,
    remember: bool,
    save_pass: bool,
) -> Result<String, String> {
    if let Some(dir) = &env.profile_dir {
        if env.local_is_dom0 && choices.destination_vm == "dom0" {
            let p = std::path::Path::new(&choices.destination_path);
            let parent_exists = p.parent().is_some_and(|d| d.is_dir());
            if !p.is_dir() && !parent_exists {
                return Err(tr("The folder {} does not exist in dom0.").replacen(
                    "{}",
                    &choices.destination_path,
                    1,
                ));
            }
        }
        let written = |id: &str, c: &Choices| {
            profile::save(dir, id, &c.to_yaml()).map_err(|e| {
                tr("The backup settings cannot be saved in {}: {}")
                    .replacen("{}", &dir.display().to_string(), 1)
                    .replacen("{}", &e.to_string(), 1)
            })
        };
        if remember {
            let mut kept = choices.clone();
            if !save_pass {
                kept.passphrase = None;
            }
            written(SAVED_ID, &kept)?;
        }
        written(run_id, choices)?;
    }
    client
        .call("admin.backup.Info", "dom0", run_id, b"")
        .map_err(|e| {
            if let Some(dir) = &env.profile_dir {
                profile::remove(dir, run_id);
            }
            crate::errors::describe(&e)
        })
}
