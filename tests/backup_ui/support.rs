//! What the backup window tests share: the main loop, the Qube Manager on a demo core with the
//! backup environment (`Fixture`), and finding and working the windows' widgets.

pub(crate) use crate::gtk_tests::{find_where, label_texts, spin_until};
pub(crate) use qubes_api::Transport;
pub(crate) use qubes_backup::container::KdfParams;
pub(crate) use qubes_backup::write::{
    self, BackupContent, BackupFile, Destination, FileSource, QubeFiles, WriteOptions,
};
pub(crate) use qubes_qube_manager::app::{self, App};
pub(crate) use qubes_qube_manager::backup_ui::env::{self, BackupEnv};
pub(crate) use qubes_qube_manager::backup_ui::profile;
pub(crate) use relm4::adw;
pub(crate) use relm4::adw::prelude::*;
pub(crate) use relm4::gtk;
pub(crate) use relm4::{ComponentController, Controller};
pub(crate) use std::os::fd::AsRawFd;
pub(crate) use std::os::unix::fs::MetadataExt;
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::time::{Duration, Instant};

/// The widget named `name` under `w`, as a `T`.
pub(crate) fn named<T: IsA<gtk::Widget>>(w: &impl IsA<gtk::Widget>, name: &str) -> T {
    try_named(w, name).unwrap_or_else(|| panic!("no {name} here"))
}

pub(crate) fn try_named<T: IsA<gtk::Widget>>(w: &impl IsA<gtk::Widget>, name: &str) -> Option<T> {
    find_where(w.upcast_ref(), &|x| x.widget_name() == name).and_then(|x| x.downcast().ok())
}

pub(crate) fn shows(w: &impl IsA<gtk::Widget>, text: &str) -> bool {
    label_texts(w.upcast_ref()).iter().any(|t| t.contains(text))
}

pub(crate) fn snapshot(w: &impl IsA<gtk::Widget>, name: &str) {
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
pub(crate) fn import_program() -> PathBuf {
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

pub(crate) struct Fixture {
    pub(crate) controller: Controller<App>,
    pub(crate) core: std::sync::Arc<qubesd::Embedded>,
    pub(crate) env: BackupEnv,
    pub(crate) tmp: tempfile::TempDir,
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
    pub(crate) fn start() -> Fixture {
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

    pub(crate) fn call(&self, method: &str, dest: &str, arg: &str) -> String {
        let r = self.core.call_raw(method, dest, arg, b"").unwrap();
        assert!(r.starts_with(b"0\0"), "{method}: {r:?}");
        String::from_utf8(r[2..].to_vec()).unwrap()
    }

    pub(crate) fn qubes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .call("admin.vm.List", "dom0", "")
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    /// Opens a window from the Qube Manager's menu (as its menu item does) and waits for it.
    pub(crate) fn open(&self, action: &str, title: &str) -> adw::Window {
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
    pub(crate) fn image(&self, qube: &str, volume: &str) -> PathBuf {
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

pub(crate) fn page(w: &adw::Window) -> String {
    let stack: gtk::Stack = find_where(w.upcast_ref(), &|x| x.is::<gtk::Stack>())
        .and_then(|x| x.downcast().ok())
        .unwrap();
    stack.visible_child_name().unwrap_or_default().to_string()
}

pub(crate) fn click(w: &adw::Window, name: &str) {
    let b: gtk::Button = named(w, name);
    assert!(
        b.is_sensitive() && b.is_visible(),
        "{name} cannot be clicked"
    );
    b.emit_clicked();
}

pub(crate) fn set_text(w: &adw::Window, name: &str, text: &str) {
    let e: gtk::Editable = named(w, name);
    e.set_text(text);
}

pub(crate) fn check(w: &adw::Window, name: &str) -> gtk::CheckButton {
    named(w, name)
}

pub(crate) fn select(w: &adw::Window, name: &str, text: &str) {
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

pub(crate) fn selected(w: &adw::Window, name: &str) -> String {
    let row: adw::ComboRow = named(w, name);
    row.selected_item()
        .and_downcast::<gtk::StringObject>()
        .map(|s| s.string().to_string())
        .unwrap_or_default()
}

/// The backup window, its qubes listed; only `qubes` checked.
pub(crate) fn backup_window(f: &Fixture, qubes: &[&str]) -> adw::Window {
    let w = f.open("backup", "Back up qubes");
    assert!(spin_until(20, || page(&w) == "settings"), "{}", page(&w));
    for name in f.qubes() {
        if let Some(c) = try_named::<gtk::CheckButton>(&w, &format!("backup-qube:{name}")) {
            c.set_active(qubes.contains(&name.as_str()));
        }
    }
    w
}

pub(crate) const PASS: &str = "correct horse battery staple orbit";

/// Holds a backup at the open of a file until the lease is dropped (a write lease: an open
/// by anyone else waits for its release).
pub(crate) struct Hold {
    pub(crate) file: std::fs::File,
}

impl Hold {
    pub(crate) fn new(image: &Path) -> Hold {
        // SAFETY: ignoring SIGIO (the lease-break notice) changes only this test process.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        let file = std::fs::File::open(image).unwrap();
        // SAFETY: fcntl on a descriptor we own.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        Hold { file }
    }

    /// Whether someone's open of the file waits for the lease.
    pub(crate) fn opened(&self) -> bool {
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
