//! The backup window: its profile, a run with progress and summary, cancel, and turning the
//! computer off afterwards.

use crate::support::*;

/// The backup window keeps its choices in the profile it reopens, shows the daemon's summary
/// as a table, and removes the run's profile (it holds the passphrase) when closed.
pub(crate) fn backup_window_saves_and_reopens_its_profile() {
    let f = Fixture::start();
    let dest = f.tmp.path().join("backups");
    std::fs::create_dir(&dest).unwrap();
    let w = backup_window(&f, &["untrusted", "vault"]);
    // dom0 is listed (its home), internal qubes are not; sizes are shown.
    assert!(try_named::<gtk::CheckButton>(&w, "backup-qube:dom0").is_some());
    assert!(
        shows(&w, "2 qubes chosen"),
        "{:?}",
        label_texts(w.upcast_ref())
    );
    set_text(&w, "destination-path", &dest.display().to_string());
    set_text(&w, "passphrase", "password");
    let strength: adw::ActionRow = named(&w, "strength");
    assert!(spin_until(5, || strength
        .subtitle()
        .is_some_and(|s| s.starts_with("Weak"))));
    set_text(&w, "passphrase", PASS);
    set_text(&w, "passphrase-again", "something else");
    assert!(spin_until(5, || strength.subtitle().is_some_and(|s| s
        .starts_with("Strong.")
        && s.contains("differ"))));
    // Next refuses different passphrases, and stays.
    click(&w, "next");
    let error: gtk::Label = named(&w, "backup-error");
    assert!(spin_until(2, || error.is_visible()));
    assert_eq!(error.text(), "Type the same passphrase in both fields.");
    assert_eq!(page(&w), "settings");
    set_text(&w, "passphrase-again", PASS);
    select(&w, "compression", "xz");
    named::<gtk::Switch>(&w, "save-passphrase").set_active(true);
    snapshot(&w, "backup-settings");
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "summary"), "{}", error.text());
    assert!(try_named::<gtk::Label>(&w, "summary:untrusted").is_some());
    assert!(try_named::<gtk::Label>(&w, "summary:vault").is_some());
    assert!(shows(&w, "Not in this backup:"));
    snapshot(&w, "backup-summary");
    let dir = f.env.profile_dir.clone().unwrap();
    let saved = profile::load(&dir, profile::SAVED_ID).unwrap().unwrap();
    let include: Vec<&str> = saved
        .include
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.0.as_str())
        .collect();
    assert_eq!(include, ["untrusted", "vault"]);
    assert_eq!(saved.destination_vm, "dom0");
    assert_eq!(saved.destination_path, dest.display().to_string());
    assert_eq!(saved.compression.filter, "xz");
    assert!(saved.compression.compressed);
    assert_eq!(
        saved.passphrase,
        Some(qubes_backup::profile::PassphraseSource::Text(Some(
            PASS.into()
        )))
    );
    assert!(profile::load(&dir, profile::RUN_ID).unwrap().is_some());
    w.close();
    assert!(spin_until(5, || !w.is_visible()));
    assert_eq!(profile::load(&dir, profile::RUN_ID), Ok(None));
    // The next run starts where this one ended.
    let w = f.open("backup", "Back up qubes");
    assert!(spin_until(20, || page(&w) == "settings"));
    for q in f.qubes() {
        if let Some(c) = try_named::<gtk::CheckButton>(&w, &format!("backup-qube:{q}")) {
            assert_eq!(c.is_active(), q == "untrusted" || q == "vault", "{q}");
        }
    }
    let path: gtk::Editable = named(&w, "destination-path");
    assert_eq!(path.text(), dest.display().to_string());
    assert_eq!(selected(&w, "compression"), "xz");
    assert_eq!(named::<gtk::Editable>(&w, "passphrase").text(), PASS);
    assert_eq!(named::<gtk::Editable>(&w, "passphrase-again").text(), PASS);
    assert!(named::<gtk::Switch>(&w, "save-passphrase").is_active());
    // Without the passphrase saved, it is not written.
    named::<gtk::Switch>(&w, "save-passphrase").set_active(false);
    select(&w, "compression", "None");
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "summary"));
    let saved = profile::load(&dir, profile::SAVED_ID).unwrap().unwrap();
    assert_eq!(saved.passphrase, None);
    assert!(!saved.compression.compressed);
    let text = std::fs::read_to_string(dir.join("qubes-manager-backup.conf")).unwrap();
    assert!(!text.contains(PASS), "{text}");
    // Back to the settings: the run's profile goes at once.
    click(&w, "back");
    assert!(spin_until(2, || page(&w) == "settings"));
    assert_eq!(profile::load(&dir, profile::RUN_ID), Ok(None));
}

/// Sets up a backup of `qubes` to a fresh folder and goes to its summary.
pub(crate) fn to_summary(f: &Fixture, qubes: &[&str]) -> (adw::Window, PathBuf) {
    let dest = f.tmp.path().join(format!("to-{}", qubes.join("-")));
    std::fs::create_dir(&dest).unwrap();
    let w = backup_window(f, qubes);
    set_text(&w, "destination-path", &dest.display().to_string());
    set_text(&w, "passphrase", PASS);
    set_text(&w, "passphrase-again", PASS);
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "summary"), "{}", page(&w));
    (w, dest)
}

/// A run shows the daemon's `backup-progress` on its bar while it runs and ends with the
/// summary; the backup is in the folder and reads back with the passphrase.
pub(crate) fn backup_shows_progress_and_ends_with_a_summary() {
    let f = Fixture::start();
    let (w, dest) = to_summary(&f, &["vault", "personal"]);
    // Both images held: the first one opened is released after the daemon's one-second
    // progress cadence, so its data is announced; the second keeps the run waiting while the
    // window shows it.
    let holds = [
        Hold::new(&f.image("vault", "private")),
        Hold::new(&f.image("personal", "private")),
    ];
    click(&w, "next");
    assert!(spin_until(5, || page(&w) == "progress"));
    let cancel: gtk::Button = named(&w, "cancel");
    assert!(cancel.is_visible() && cancel.is_sensitive());
    let mut first = None;
    assert!(spin_until(30, || {
        first = holds.iter().position(Hold::opened);
        first.is_some()
    }));
    let started = Instant::now();
    spin_until(2, || started.elapsed() > Duration::from_millis(1100));
    let [a, b] = holds;
    let second = if first == Some(0) {
        drop(a);
        b
    } else {
        drop(b);
        a
    };
    let bar: gtk::ProgressBar = named(&w, "progress");
    assert!(spin_until(30, || bar.fraction() > 0.0), "no progress shown");
    assert!(bar.fraction() < 1.0, "{}", bar.fraction());
    assert!(
        bar.text().is_some_and(|t| t.ends_with(" %")),
        "{:?}",
        bar.text()
    );
    assert!(second.opened(), "the run waits for the second image");
    // Once the daemon runs the backup, the run's profile (with the passphrase) is gone.
    let dir = f.env.profile_dir.clone().unwrap();
    assert_eq!(profile::load(&dir, profile::RUN_ID), Ok(None));
    snapshot(&w, "backup-progress");
    drop(second);
    let done: adw::StatusPage = named(&w, "done");
    assert!(spin_until(60, || page(&w) == "done"));
    assert_eq!(done.title(), "Backup complete");
    assert!(try_named::<gtk::Label>(&done, "summary:vault").is_some());
    assert!(try_named::<gtk::Label>(&done, "summary:personal").is_some());
    snapshot(&w, "backup-done");
    let files: Vec<PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let backup = qubes_backup::read::Backup::open(
        qubes_backup::read::Source::File(std::fs::File::open(&files[0]).unwrap()),
        qubes_backup::read::ReadOptions::new(PASS),
    )
    .unwrap();
    let xml = String::from_utf8_lossy(backup.qubes_xml()).to_string();
    assert!(xml.contains("backup-path"), "{xml}");
    // The qubes are marked as backed up.
    assert!(
        f.call("admin.vm.property.Get", "vault", "backup_timestamp")
            .starts_with("default=False")
    );
    click(&w, "next");
    assert!(spin_until(5, || !w.is_visible()));
}

/// Cancel stops the run: the window says so and the folder stays empty.
pub(crate) fn cancel_stops_the_backup() {
    let f = Fixture::start();
    let (w, dest) = to_summary(&f, &["vault"]);
    let hold = Hold::new(&f.image("vault", "private"));
    click(&w, "next");
    assert!(spin_until(30, || hold.opened()));
    // Closing the window while it runs asks first; "Continue the backup" keeps both.
    w.close();
    let mut asked = None;
    assert!(spin_until(5, || {
        asked = gtk::Window::list_toplevels()
            .into_iter()
            .filter_map(|t| t.downcast::<adw::MessageDialog>().ok())
            .find(|d| d.is_visible() && d.heading().as_deref() == Some("Stop the backup?"));
        asked.is_some()
    }));
    let asked = asked.unwrap();
    assert_eq!(
        (
            asked.response_label("continue"),
            asked.response_label("stop")
        ),
        ("Continue the backup".into(), "Stop the backup".into())
    );
    let keep = find_where(asked.upcast_ref(), &|x| {
        x.downcast_ref::<gtk::Button>()
            .is_some_and(|b| b.label().as_deref() == Some("Continue the backup"))
    })
    .and_downcast::<gtk::Button>()
    .expect("the dialog's button");
    keep.emit_clicked();
    assert!(spin_until(5, || !asked.is_visible()));
    assert!(w.is_visible() && page(&w) == "progress");
    click(&w, "cancel");
    // The daemon took the cancel.
    let label: gtk::Label = named(&w, "progress-label");
    assert!(spin_until(10, || label
        .text()
        .starts_with("The backup stops now")));
    drop(hold);
    assert!(spin_until(60, || page(&w) == "done"));
    let done: adw::StatusPage = named(&w, "done");
    assert_eq!(done.title(), "Backup cancelled");
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
    assert!(
        f.call("admin.vm.property.Get", "vault", "backup_timestamp")
            .starts_with("default=True")
    );
    let dir = f.env.profile_dir.clone().unwrap();
    assert_eq!(profile::load(&dir, profile::RUN_ID), Ok(None));
}

/// Runs a backup of `vault` to a new folder `name` with the window's "turn the computer off"
/// switch on, and waits for the done page.
pub(crate) fn backup_with_power_off(f: &Fixture, name: &str) -> adw::Window {
    let dest = f.tmp.path().join(name);
    std::fs::create_dir(&dest).unwrap();
    let w = backup_window(f, &["vault"]);
    let switch: gtk::Switch = named(&w, "power-off");
    assert!(switch.is_mapped(), "offered in dom0");
    assert!(!switch.is_active(), "off unless asked for");
    switch.set_active(true);
    set_text(&w, "destination-path", &dest.display().to_string());
    set_text(&w, "passphrase", PASS);
    set_text(&w, "passphrase-again", PASS);
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "summary"), "{}", page(&w));
    click(&w, "next");
    assert!(spin_until(60, || page(&w) == "done"));
    let done: adw::StatusPage = named(&w, "done");
    assert_eq!(done.title(), "Backup complete");
    w
}

/// "Turn the computer off when done": only where the program can (dom0, not the demo nor a
/// qube), after a minute's notice that counts down with the focus on Stay On; Stay On keeps
/// the computer on, Turn Off Now runs the power-off command at once.
pub(crate) fn backup_turns_the_computer_off_when_asked() {
    let f = Fixture::start();
    // The demo never offers to turn off the computer it runs on.
    let w = backup_window(&f, &["vault"]);
    let switch: gtk::Switch = named(&w, "power-off");
    assert!(!switch.is_mapped());
    w.close();
    let marker = f.tmp.path().join("powered-off");
    let mut env = f.env.clone();
    env.power_off = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("echo off >> '{}'", marker.display()),
    ]);
    env::set_current(env);

    let w = backup_with_power_off(&f, "power-off-stay");
    let line: gtk::Label = named(&w, "power-off-countdown");
    assert_eq!(line.text(), "The computer turns off in 60 seconds.");
    let stay: gtk::Button = named(&w, "power-off-cancel");
    assert!(stay.has_focus(), "Enter keeps the computer on");
    snapshot(&w, "backup-power-off-notice");
    // It counts down.
    assert!(spin_until(5, || {
        let text = line.text();
        text.starts_with("The computer turns off in ") && !text.contains(" 60 ")
    }));
    click(&w, "power-off-cancel");
    assert_eq!(line.text(), "The computer stays on.");
    assert!(line.has_focus(), "the line that says so has the focus");
    assert!(!stay.is_mapped() && !named::<gtk::Button>(&w, "power-off-now").is_mapped());
    assert!(!marker.exists());
    w.close();

    let w = backup_with_power_off(&f, "power-off-now");
    click(&w, "power-off-now");
    assert!(spin_until(10, || std::fs::read_to_string(&marker)
        .is_ok_and(|s| s.ends_with('\n'))));
    let line: gtk::Label = named(&w, "power-off-countdown");
    assert_eq!(line.text(), "Turning the computer off…");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "off\n",
        "run once"
    );
    w.close();
    env::set_current(f.env.clone());
}
