//! The backup and restore windows under Xvfb, on the embedded demo core, opened from the Qube
//! Manager's menu: real windows, the real daemon (Info, Execute, Cancel, events), real backup
//! files written by the `qubes-backup` writer, the real restore engine and import program.
//! `harness = false`: GTK must run on the main thread. Prints `N passed, N failed`.
//! `BACKUP_UI_SHOTS=DIR` saves a picture of each window.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qubes_api::Transport;
use qubes_backup::container::KdfParams;
use qubes_backup::write::{
    self, BackupContent, BackupFile, Destination, FileSource, QubeFiles, WriteOptions,
};
use qubes_qube_manager::app::{self, App};
use qubes_qube_manager::backup_ui::env::{self, BackupEnv};
use qubes_qube_manager::backup_ui::profile;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::{ComponentController, Controller};

/// Runs the GTK main loop until `done` holds or `secs` pass.
fn spin_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let ctx = gtk::glib::MainContext::default();
    while Instant::now() < deadline {
        while ctx.pending() {
            ctx.iteration(false);
        }
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// The first descendant of `w` (itself included) that `pred` accepts.
fn find_where(w: &gtk::Widget, pred: &dyn Fn(&gtk::Widget) -> bool) -> Option<gtk::Widget> {
    if pred(w) {
        return Some(w.clone());
    }
    let mut child = w.first_child();
    while let Some(c) = child {
        if let Some(found) = find_where(&c, pred) {
            return Some(found);
        }
        child = c.next_sibling();
    }
    None
}

/// The widget named `name` under `w`, as a `T`.
fn named<T: IsA<gtk::Widget>>(w: &impl IsA<gtk::Widget>, name: &str) -> T {
    try_named(w, name).unwrap_or_else(|| panic!("no {name} here"))
}

fn try_named<T: IsA<gtk::Widget>>(w: &impl IsA<gtk::Widget>, name: &str) -> Option<T> {
    find_where(w.upcast_ref(), &|x| x.widget_name() == name).and_then(|x| x.downcast().ok())
}

/// Texts of every label under `w`.
fn label_texts(w: &gtk::Widget) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = w.downcast_ref::<gtk::Label>() {
        out.push(l.label().to_string());
    }
    let mut child = w.first_child();
    while let Some(c) = child {
        out.extend(label_texts(&c));
        child = c.next_sibling();
    }
    out
}

fn shows(w: &impl IsA<gtk::Widget>, text: &str) -> bool {
    label_texts(w.upcast_ref()).iter().any(|t| t.contains(text))
}

fn snapshot(w: &impl IsA<gtk::Widget>, name: &str) {
    let Some(dir) = std::env::var_os("BACKUP_UI_SHOTS") else {
        return;
    };
    let w: &gtk::Widget = w.upcast_ref();
    // The page shown, not the crossfade to it.
    if let Some(stack) = find_where(w, &|x| x.is::<gtk::Stack>()).and_downcast::<gtk::Stack>() {
        spin_until(5, || !stack.is_transition_running());
    }
    gtk::test_widget_wait_for_draw(w);
    let paintable = gtk::WidgetPaintable::new(Some(w));
    let snap = gtk::Snapshot::new();
    paintable.snapshot(&snap, w.width() as f64, w.height() as f64);
    let (Some(node), Some(native)) = (snap.to_node(), w.native()) else {
        return;
    };
    if let Some(renderer) = native.renderer() {
        let _ = renderer
            .render_texture(&node, None)
            .save_to_png(Path::new(&dir).join(format!("{name}.png")));
    }
}

/// `qubes-volume-import` of the qubesd crate, built when a narrower run did not build it.
fn import_program() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let prog = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("qubes-volume-import");
    if !prog.exists() {
        let st = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "qubesd",
                "--bin",
                "qubes-volume-import",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(st.success(), "building qubes-volume-import");
    }
    prog
}

struct Fixture {
    controller: Controller<App>,
    core: std::sync::Arc<qubesd::Embedded>,
    env: BackupEnv,
    tmp: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let main: gtk::Window = self.controller.widget().clone().upcast();
        for w in gtk::Window::list_toplevels() {
            if let Ok(w) = w.downcast::<gtk::Window>()
                && w != main
            {
                w.close();
            }
        }
        main.close();
        spin_until(1, || false);
    }
}

impl Fixture {
    fn start() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let (client, core) = app::demo_client().expect("demo core");
        let mut env = BackupEnv::demo(&core).expect("demo environment");
        env.import.program = import_program();
        env::set_current(env.clone());
        let controller = app::builder(
            client,
            qubes_qube_manager::view_state::ViewState::open(&tmp.path().join("view.ini")),
        );
        controller.widget().present();
        assert!(spin_until(20, || controller.model().is_loaded()));
        Fixture {
            controller,
            core,
            env,
            tmp,
        }
    }

    fn call(&self, method: &str, dest: &str, arg: &str) -> String {
        let r = self.core.call_raw(method, dest, arg, b"").unwrap();
        assert!(r.starts_with(b"0\0"), "{method}: {r:?}");
        String::from_utf8(r[2..].to_vec()).unwrap()
    }

    fn qubes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .call("admin.vm.List", "dom0", "")
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    /// Opens a window from the Qube Manager's menu (as its menu item does) and waits for it.
    fn open(&self, action: &str, title: &str) -> adw::Window {
        let main: gtk::Widget = self.controller.widget().clone().upcast();
        WidgetExt::activate_action(&main, &format!("qube.{action}"), None).expect("menu action");
        let mut found = None;
        assert!(
            spin_until(10, || {
                found = gtk::Window::list_toplevels()
                    .into_iter()
                    .filter_map(|w| w.downcast::<adw::Window>().ok())
                    .find(|w| w.is_visible() && w.title().as_deref() == Some(title));
                found.is_some()
            }),
            "no {title} window"
        );
        found.unwrap()
    }

    /// A volume's image file in the demo's directory.
    fn image(&self, qube: &str, volume: &str) -> PathBuf {
        let root = self.core.demo_dir().unwrap();
        let mut stack = vec![root.to_path_buf()];
        let file = format!("{volume}.img");
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| *n == *file)
                    && p.parent()
                        .and_then(|x| x.file_name())
                        .is_some_and(|n| n == qube)
                {
                    return p;
                }
            }
        }
        panic!("no image of {qube}:{volume}");
    }
}

fn page(w: &adw::Window) -> String {
    let stack: gtk::Stack = find_where(w.upcast_ref(), &|x| x.is::<gtk::Stack>())
        .and_then(|x| x.downcast().ok())
        .unwrap();
    stack.visible_child_name().unwrap_or_default().to_string()
}

fn click(w: &adw::Window, name: &str) {
    let b: gtk::Button = named(w, name);
    assert!(
        b.is_sensitive() && b.is_visible(),
        "{name} cannot be clicked"
    );
    b.emit_clicked();
}

fn set_text(w: &adw::Window, name: &str, text: &str) {
    let e: gtk::Editable = named(w, name);
    e.set_text(text);
}

fn check(w: &adw::Window, name: &str) -> gtk::CheckButton {
    named(w, name)
}

fn select(w: &adw::Window, name: &str, text: &str) {
    let row: adw::ComboRow = named(w, name);
    let model = row.model().unwrap();
    let i = (0..model.n_items())
        .find(|i| {
            model
                .item(*i)
                .and_downcast::<gtk::StringObject>()
                .is_some_and(|s| s.string() == text)
        })
        .unwrap_or_else(|| panic!("no {text} in {name}"));
    row.set_selected(i);
}

fn selected(w: &adw::Window, name: &str) -> String {
    let row: adw::ComboRow = named(w, name);
    row.selected_item()
        .and_downcast::<gtk::StringObject>()
        .map(|s| s.string().to_string())
        .unwrap_or_default()
}

/// The backup window, its qubes listed; only `qubes` checked.
fn backup_window(f: &Fixture, qubes: &[&str]) -> adw::Window {
    let w = f.open("backup", "Back up qubes");
    assert!(spin_until(20, || page(&w) == "settings"), "{}", page(&w));
    for name in f.qubes() {
        if let Some(c) = try_named::<gtk::CheckButton>(&w, &format!("backup-qube:{name}")) {
            c.set_active(qubes.contains(&name.as_str()));
        }
    }
    w
}

const PASS: &str = "correct horse battery staple orbit";

/// The backup window keeps its choices in the profile it reopens, shows the daemon's summary
/// as a table, and removes the run's profile (it holds the passphrase) when closed.
fn backup_window_saves_and_reopens_its_profile() {
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

/// Holds a backup at the open of a file until the lease is dropped (a write lease: an open
/// by anyone else waits for its release).
struct Hold {
    file: std::fs::File,
}

impl Hold {
    fn new(image: &Path) -> Hold {
        // SAFETY: ignoring SIGIO (the lease-break notice) changes only this test process.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        let file = std::fs::File::open(image).unwrap();
        // SAFETY: fcntl on a descriptor we own.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        Hold { file }
    }

    /// Whether someone's open of the file waits for the lease.
    fn opened(&self) -> bool {
        let ino = self.file.metadata().unwrap().ino();
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|l| l.contains("BREAKING") && l.contains(&format!(":{ino} ")))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
}

/// Sets up a backup of `qubes` to a fresh folder and goes to its summary.
fn to_summary(f: &Fixture, qubes: &[&str]) -> (adw::Window, PathBuf) {
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
fn backup_shows_progress_and_ends_with_a_summary() {
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
fn cancel_stops_the_backup() {
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
fn backup_with_power_off(f: &Fixture, name: &str) -> adw::Window {
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
fn backup_turns_the_computer_off_when_asked() {
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
    assert!(spin_until(5, || line.text() == "The computer turns off in 59 seconds."));
    click(&w, "power-off-cancel");
    assert_eq!(line.text(), "The computer stays on.");
    assert!(!stay.is_mapped() && !named::<gtk::Button>(&w, "power-off-now").is_mapped());
    assert!(!marker.exists());
    w.close();

    let w = backup_with_power_off(&f, "power-off-now");
    click(&w, "power-off-now");
    assert!(spin_until(10, || marker.exists()));
    let line: gtk::Label = named(&w, "power-off-countdown");
    assert!(spin_until(5, || line.text() == "Turning the computer off…"));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "off\n",
        "run once"
    );
    w.close();
    env::set_current(f.env.clone());
}

const BACKUP_XML: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<qubes version="3.0">
  <labels>
    <label id="label-1" color="0xcc0000">red</label>
    <label id="label-6" color="0x75507b">purple</label>
  </labels>
  <properties/>
  <domains>
    <domain id="domain-0" class="AdminVM">
      <properties><property name="label">black</property></properties>
      <features><feature name="backup-content"/></features>
    </domain>
    <domain id="domain-21" class="AppVM">
      <properties>
        <property name="qid">21</property>
        <property name="name">mail</property>
        <property name="label">purple</property>
        <property name="template">fedora-41</property>
        <property name="memory">700</property>
      </properties>
      <features>
        <feature name="backup-content">1</feature>
        <feature name="backup-path">vm21/</feature>
        <feature name="backup-size">4194304</feature>
      </features>
      <tags><tag name="mailbox"/></tags>
    </domain>
    <domain id="domain-22" class="AppVM">
      <properties>
        <property name="qid">22</property>
        <property name="name">work</property>
        <property name="label">red</property>
        <property name="template">fedora-41</property>
      </properties>
      <features>
        <feature name="backup-content">1</feature>
        <feature name="backup-path">vm22/</feature>
        <feature name="backup-size">1048576</feature>
      </features>
    </domain>
  </domains>
</qubes>
"#;

/// A backup of `mail` and `work` written by the `qubes-backup` writer; returns it and the
/// image of mail's private volume.
fn write_backup(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut mail: Vec<u8> = vec![0; 4 << 20];
    for b in mail[1 << 20..3 << 20].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let content = BackupContent {
        qubes_xml: BACKUP_XML.as_bytes().to_vec(),
        qubes: vec![
            QubeFiles {
                qid: 21,
                files: vec![BackupFile {
                    name: "private.img".into(),
                    source: FileSource::Bytes(mail.clone()),
                    size: mail.len() as u64,
                }],
            },
            QubeFiles {
                qid: 22,
                files: vec![BackupFile {
                    name: "private.img".into(),
                    source: FileSource::Bytes(vec![7; 1 << 20]),
                    size: 1 << 20,
                }],
            },
        ],
        dom0_home: None,
    };
    let mut opts = WriteOptions::new(PASS);
    opts.kdf = KdfParams {
        log_n: 10,
        r: 8,
        p: 1,
    };
    let path = dir.join("qubes-2026-12-04T101010");
    write::write_backup(&content, Destination::File(path.clone()), &opts).unwrap();
    (path, mail)
}

/// The restore window: a wrong passphrase is an error and creates nothing; the right one
/// lists the backup's qubes with the name already taken marked; the rename option changes
/// that; the restored qube appears in the Qube Manager with its settings and data.
fn restore_lists_marks_and_restores() {
    let f = Fixture::start();
    let (file, mail) = write_backup(f.tmp.path());
    let before = f.qubes();
    let w = f.open("restore", "Restore qubes");
    assert_eq!(page(&w), "source");
    assert_eq!(selected(&w, "restore-location"), "dom0");
    set_text(&w, "restore-file", &file.display().to_string());
    set_text(&w, "restore-passphrase", "not the passphrase");
    click(&w, "next");
    let error: gtk::Label = named(&w, "restore-error");
    assert!(spin_until(20, || error.is_visible()));
    assert_eq!(
        error.text(),
        "The passphrase is wrong, or this is not the backup it was made for."
    );
    assert_eq!(page(&w), "source");
    snapshot(&w, "restore-wrong-passphrase");
    assert_eq!(f.qubes(), before);
    set_text(&w, "restore-passphrase", PASS);
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "qubes"), "{}", page(&w));
    assert!(!error.is_visible());
    let status = |q: &str| named::<gtk::Label>(&w, &format!("restore-status:{q}")).text();
    assert_eq!(status("mail"), "Will be restored");
    assert_eq!(
        status("work"),
        "A qube with this name exists: left out unless renamed"
    );
    assert!(named::<gtk::Label>(&w, "restore-status:work").has_css_class("warning"));
    named::<gtk::Switch>(&w, "rename-conflicting").set_active(true);
    assert!(spin_until(5, || status("work") == "Will be restored as work-1"));
    named::<gtk::Switch>(&w, "rename-conflicting").set_active(false);
    check(&w, "restore-qube:work").set_active(false);
    assert!(spin_until(5, || status("work") == "Left out"));
    snapshot(&w, "restore-qubes");
    let next: gtk::Button = named(&w, "next");
    assert_eq!(next.label().as_deref(), Some("Restore"));
    click(&w, "next");
    assert!(spin_until(5, || page(&w) == "progress" || page(&w) == "done"));
    assert!(spin_until(60, || page(&w) == "done"), "{}", page(&w));
    let done: adw::StatusPage = named(&w, "done");
    assert_eq!(done.title(), "Restore complete", "{:?}", done.description());
    let result: adw::ActionRow = named(&w, "result:mail");
    assert_eq!(result.subtitle().as_deref(), Some("Restored"));
    assert!(try_named::<adw::ActionRow>(&w, "result:work").is_none());
    let progress: adw::ActionRow = named(&w, "restore-row:mail");
    assert_eq!(progress.subtitle().as_deref(), Some("Data restored"));
    snapshot(&w, "restore-done");
    // The Qube Manager lists it (from the daemon's events), with its settings and data.
    assert!(spin_until(10, || f
        .controller
        .model()
        .row_names()
        .contains(&"mail".to_string())));
    assert_eq!(
        f.call("admin.vm.property.Get", "mail", "memory"),
        "default=False type=int 700"
    );
    assert_eq!(
        f.call("admin.vm.property.Get", "mail", "label"),
        "default=False type=label purple"
    );
    let tags = f.call("admin.vm.tag.List", "mail", "");
    assert!(tags.lines().any(|t| t == "mailbox"), "{tags}");
    assert!(!tags.contains("backup-restore-in-progress"), "{tags}");
    let restored = std::fs::read(f.image("mail", "private")).unwrap();
    assert!(restored == mail, "mail's private volume differs");
    let mut after = before.clone();
    after.push("mail".into());
    after.sort();
    assert_eq!(f.qubes(), after);
}

/// A damaged backup: the restore fails, says so, and leaves no qube behind.
fn damaged_backup_restores_nothing() {
    let f = Fixture::start();
    let (file, _) = write_backup(f.tmp.path());
    let mut bytes = std::fs::read(&file).unwrap();
    // A flipped byte in mail's volume data: the header and qubes.xml are fine.
    let needle = b"vm21/private.img.000.enc";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at + 512 + 4000] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let before = f.qubes();
    let w = f.open("restore", "Restore qubes");
    set_text(&w, "restore-file", &file.display().to_string());
    set_text(&w, "restore-passphrase", PASS);
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "qubes"));
    check(&w, "restore-qube:work").set_active(false);
    click(&w, "next");
    assert!(spin_until(60, || page(&w) == "done"));
    let done: adw::StatusPage = named(&w, "done");
    assert_eq!(done.title(), "Restore failed");
    let text = done.description().unwrap_or_default().to_string();
    assert!(text.contains("MAC mismatch"), "{text}");
    assert!(
        text.contains("the qubes it had created were removed"),
        "{text}"
    );
    assert_eq!(f.qubes(), before);
}

/// Prints `role<TAB>name` for every accessible object in the window titled argv[1] of
/// the application of process argv[2], as a screen reader sees them.
const DUMP: &str = r#"
import sys, gi
gi.require_version('Atspi', '2.0')
from gi.repository import Atspi
title, pid = sys.argv[1], sys.argv[2]
def walk(o, depth):
    if depth > 60: return
    try:
        print(o.get_role_name() + "\t" + (o.get_name() or ""))
        for i in range(o.get_child_count()):
            c = o.get_child_at_index(i)
            if c is not None: walk(c, depth + 1)
    except Exception:
        pass
desktop = Atspi.get_desktop(0)
for i in range(desktop.get_child_count()):
    app = desktop.get_child_at_index(i)
    if app is None or app.get_process_id() != int(pid): continue
    for j in range(app.get_child_count()):
        w = app.get_child_at_index(j)
        if w is not None and w.get_name() == title:
            walk(w, 0)
"#;

/// Whether this process runs with accessibility on and a reader can be run.
fn atspi_ready() -> bool {
    std::env::var_os("GTK_A11Y").is_none()
        && std::process::Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import gi; gi.require_version('Atspi', '2.0'); from gi.repository import Atspi",
            ])
            .status()
            .is_ok_and(|s| s.success())
}

/// What a screen reader finds in the window titled `title` (the main loop runs meanwhile,
/// so this process answers it).
fn read_aloud(title: &str) -> Vec<(String, String)> {
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", DUMP, title, &std::process::id().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    assert!(spin_until(120, || child.try_wait().unwrap().is_some()));
    reader
        .join()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(r, n)| (r.to_string(), n.to_string()))
        .collect()
}

/// Every control of both windows has a name a screen reader says (none falls back to its
/// GTK type), and the keyboard reaches every step: Enter in the passphrase goes on, Escape
/// closes.
fn windows_are_accessible_by_name_and_keyboard() {
    let f = Fixture::start();
    let dest = f.tmp.path().join("k");
    std::fs::create_dir(&dest).unwrap();
    let w = backup_window(&f, &["vault"]);
    set_text(&w, "destination-path", &dest.display().to_string());
    set_text(&w, "passphrase", PASS);
    set_text(&w, "passphrase-again", PASS);
    // Enter in the second passphrase field is Next.
    let again: gtk::Widget = named(&w, "passphrase-again");
    let text = find_where(&again, &|x| x.is::<gtk::Text>()).unwrap();
    text.emit_by_name::<()>("activate", &[]);
    assert!(spin_until(20, || page(&w) == "summary"));
    click(&w, "back");
    assert!(spin_until(5, || page(&w) == "settings"));
    let r = f.open("restore", "Restore qubes");
    if atspi_ready() {
        for (title, must) in [
            (
                "Back up qubes",
                &[
                    ("check box", "vault"),
                    ("text", "Passphrase"),
                    ("text", "Passphrase again"),
                    ("push button", "Show or hide the passphrase"),
                    ("push button", "Next"),
                    ("push button", "Choose…"),
                ][..],
            ),
            (
                "Restore qubes",
                &[
                    ("text", "Passphrase"),
                    ("text", "Backup file"),
                    ("combo box", "Where the backup is"),
                    ("push button", "Read backup"),
                ][..],
            ),
        ] {
            let seen = read_aloud(title);
            if let Some(d) = std::env::var_os("BACKUP_UI_SHOTS") {
                let text: String = seen.iter().map(|(r, n)| format!("{r}\t{n}\n")).collect();
                std::fs::write(Path::new(&d).join(format!("{title}.txt")), text).unwrap();
            }
            assert!(seen.len() > 10, "{title}: {seen:?}");
            for (role, name) in must {
                assert!(
                    seen.iter().any(|(r, n)| r == role && n == name),
                    "{title}: no {role} {name}: {seen:?}"
                );
            }
            let controls = [
                "push button",
                "check box",
                "toggle button",
                "switch",
                "combo box",
                "text",
                "password text",
                "level bar",
                "progress bar",
            ];
            let unnamed: Vec<&(String, String)> = seen
                .iter()
                .filter(|(r, n)| {
                    controls.contains(&r.as_str()) && (n.is_empty() || n.starts_with("Gtk"))
                })
                .collect();
            assert!(unnamed.is_empty(), "{title}: unnamed controls {unnamed:?}");
        }
    } else {
        println!("accessibility off or python3 Atspi missing: names not read");
    }
    // Escape closes a window.
    let keys = r.observe_controllers();
    let handled = (0..keys.n_items())
        .filter_map(|i| keys.item(i).and_downcast::<gtk::EventControllerKey>())
        .any(|c| {
            c.emit_by_name::<bool>(
                "key-pressed",
                &[
                    &gtk::gdk::Key::Escape,
                    &0u32,
                    &gtk::gdk::ModifierType::empty(),
                ],
            )
        });
    assert!(handled);
    assert!(spin_until(5, || !r.is_visible()));
    drop(w);
}

/// Both windows speak German in a German session (the window titles, a hint, the buttons).
fn windows_in_german() {
    // glibc reads LANGUAGE on every lookup once the locale is not C/POSIX (LANG=C.UTF-8).
    // SAFETY: the tests run on this one thread; no other thread reads the environment now.
    unsafe { std::env::set_var("LANGUAGE", "de") };
    let f = Fixture::start();
    let w = f.open("backup", "Qubes sichern");
    assert!(spin_until(20, || page(&w) == "settings"));
    let strength: adw::ActionRow = named(&w, "strength");
    assert!(
        strength
            .subtitle()
            .is_some_and(|s| s.starts_with("Geben Sie eine Passphrase ein"))
    );
    assert_eq!(
        named::<gtk::Button>(&w, "next").label().as_deref(),
        Some("Weiter")
    );
    let r = f.open("restore", "Qubes wiederherstellen");
    assert_eq!(
        named::<gtk::Button>(&r, "next").label().as_deref(),
        Some("Sicherung lesen")
    );
    // SAFETY: as above: the tests run on this one thread; no other thread reads the environment
    // now.
    unsafe { std::env::remove_var("LANGUAGE") };
}

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "backup_window_saves_and_reopens_its_profile",
            backup_window_saves_and_reopens_its_profile,
        ),
        (
            "backup_shows_progress_and_ends_with_a_summary",
            backup_shows_progress_and_ends_with_a_summary,
        ),
        ("cancel_stops_the_backup", cancel_stops_the_backup),
        (
            "backup_turns_the_computer_off_when_asked",
            backup_turns_the_computer_off_when_asked,
        ),
        (
            "restore_lists_marks_and_restores",
            restore_lists_marks_and_restores,
        ),
        (
            "damaged_backup_restores_nothing",
            damaged_backup_restores_nothing,
        ),
        (
            "windows_are_accessible_by_name_and_keyboard",
            windows_are_accessible_by_name_and_keyboard,
        ),
        // Last: glibc keeps the German catalogue cached for the rest of the process.
        ("windows_in_german", windows_in_german),
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
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests
        .iter()
        .filter(|(name, _)| words.is_empty() || words.iter().any(|w| name.contains(w.as_str())))
    {
        match std::panic::catch_unwind(*test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
