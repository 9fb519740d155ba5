//! Both windows read out over AT-SPI, worked from the keyboard, and in German.

use crate::support::*;

/// Prints `role<TAB>name` for every accessible object in the window titled argv[1] of
/// the application of process argv[2], as a screen reader sees them.
pub(crate) const DUMP: &str = r#"
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
pub(crate) fn atspi_ready() -> bool {
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
pub(crate) fn read_aloud(title: &str) -> Vec<(String, String)> {
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
pub(crate) fn windows_are_accessible_by_name_and_keyboard() {
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
pub(crate) fn windows_in_german() {
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
