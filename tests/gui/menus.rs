//! Menus, the primary menu, screenshots and the German interface.

use crate::support::*;

pub(crate) fn menus_and_context_menu() {
    let f = Fixture::start();
    let window: gtk::Widget = f.controller.widget().clone().upcast();
    let view = f.controller.model().table.view.clone();
    // The row under the pointer is found from the widget picked there.
    gtk::test_widget_wait_for_draw(&view);
    let cell = find_named(&view.clone().upcast(), "qube-cell:personal").expect("personal's cell");
    let centre = cell
        .compute_point(
            &view,
            &gtk::graphene::Point::new(cell.width() as f32 / 2.0, cell.height() as f32 / 2.0),
        )
        .expect("cell inside the view");
    let picked = view
        .pick(
            centre.x() as f64,
            centre.y() as f64,
            gtk::PickFlags::DEFAULT,
        )
        .expect("a widget under the pointer");
    assert_eq!(
        qubes_qube_manager::table::qube_at(&picked).as_deref(),
        Some("personal")
    );
    // The context menu lives under the table and holds both sections.
    let popover: gtk::PopoverMenu = find_widget(&view.clone().upcast()).expect("context menu");
    assert_eq!(popover.menu_model().map(|m| m.n_items()), Some(4));
    // Menus, buttons and keys share one set of actions that follow the selection.
    f.controller.emit(Msg::SelectName("personal".into()));
    assert!(spin_until(5, || button(&f, "Start").is_sensitive()
        && !button(&f, "Kill").is_sensitive()
        && button(&f, "Settings").is_sensitive()));
    WidgetExt::activate_action(&window, "qube.start", None).expect("qube.start");
    let state = || f.controller.model().cell("personal", Column::State);
    assert!(spin_until(10, || state().as_deref() == Some("Running")));
    assert!(spin_until(5, || !button(&f, "Start").is_sensitive()
        && button(&f, "Kill").is_sensitive()));
    // Restart: shut down, wait for the halt, start again (a new start time proves it).
    let start_time = || {
        let raw = f
            .core
            .call_raw("admin.vm.property.Get", "personal", "start_time", b"")
            .unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    };
    let first = start_time();
    assert!(first.contains("type=str"), "{first:?}");
    assert!(button(&f, "Restart").is_sensitive());
    WidgetExt::activate_action(&window, "qube.restart", None).expect("qube.restart");
    assert!(
        spin_until(10, || start_time() != first
            && state().as_deref() == Some("Running")),
        "{} {:?}",
        start_time(),
        state()
    );
    // Let the restart's events (halted, then running again) all arrive: the action applies to
    // the state the window shows.
    events_caught_up(&f, "personal");
    assert_eq!(state().as_deref(), Some("Running"));
    WidgetExt::activate_action(&window, "qube.kill", None).expect("qube.kill");
    confirm_kill(&f, "Kill personal?");
    assert!(
        spin_until(10, || state().as_deref() == Some("Halted")),
        "{:?} selected {:?}",
        state(),
        f.controller.model().selected()
    );
    assert!(!button(&f, "Restart").is_sensitive());
    // dom0 has no settings dialog here and cannot be removed.
    f.controller.emit(Msg::SelectName("dom0".into()));
    assert!(spin_until(5, || !button(&f, "Settings").is_sensitive()
        && !button(&f, "Remove").is_sensitive()
        && button(&f, "New qube").is_sensitive()));
}

/// Pictures of the main window (with its sparklines), a qube's settings, the create dialog and
/// the usage popover, for the README and the metainfo: `tools/screenshots` runs this with
/// `QUBES_MANAGER_SCREENSHOTS=data/screenshots` (and waits for a minute of statistics); here
/// they go to a temporary directory.
pub(crate) fn screenshots_of_the_main_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, samples) = match std::env::var_os("QUBES_MANAGER_SCREENSHOTS") {
        Some(d) => (std::path::PathBuf::from(d), 30),
        None => (tmp.path().to_path_buf(), 3),
    };
    // Pictures of widgets at rest, not half way through a transition.
    let settings_gtk = gtk::Settings::default().expect("GTK settings");
    settings_gtk.set_gtk_enable_animations(false);
    let f = Fixture::start();
    f.call("admin.property.Set", "dom0", "stats_interval", b"1");
    f.call("admin.vm.Start", "personal", "", b"");
    // Statistics for the sparklines: enough rounds that the lines say something.
    assert!(spin_until(samples * 3 + 30, || {
        f.controller
            .model()
            .table
            .find(|r| r.name == "work")
            .and_then(|i| f.controller.model().table.get(i))
            .is_some_and(|r| r.borrow().history().borrow().len() >= samples as usize)
    }));
    f.controller.widget().set_default_size(1180, 600);
    select_and_wait(&f, "work");
    let check = |name: &str, size: (i32, i32), min: (i32, i32)| {
        assert!(size.0 >= min.0 && size.1 >= min.1, "{name}: {size:?}");
        assert!(
            dir.join(name).metadata().is_ok_and(|m| m.len() > 10_000),
            "{name}"
        );
    };
    let main = snapshot(
        f.controller.widget().upcast_ref(),
        &dir.join("main-window.png"),
    );
    check("main-window.png", main, (900, 500));
    // The usage popover, on its own surface.
    f.controller.emit(Msg::ShowUsage(Some("work".into())));
    assert!(spin_until(5, || f
        .controller
        .model()
        .usage
        .as_ref()
        .is_some_and(|u| u.is_open())));
    let popover = f
        .controller
        .model()
        .usage
        .as_ref()
        .expect("the usage popover")
        .popover()
        .clone();
    let usage = snapshot(popover.upcast_ref(), &dir.join("usage.png"));
    check("usage.png", usage, (300, 200));
    popover.popdown();
    // A qube's settings, on its Advanced page.
    open_settings(&f, "work");
    let settings = with_settings(&f, |s| s.widget().clone());
    settings.set_default_size(900, 720);
    settings.set_visible_page_name("advanced");
    let shot = snapshot(settings.upcast_ref(), &dir.join("settings.png"));
    check("settings.png", shot, (500, 500));
    settings.close();
    // The create dialog.
    f.controller.emit(Msg::Create);
    assert!(spin_until(5, || f.controller.model().create.is_some()));
    let create = f
        .controller
        .model()
        .create
        .as_ref()
        .unwrap()
        .widget()
        .clone();
    create.parts().name.set_text("mail");
    assert!(spin_until(5, || combo_texts(&create.parts().pool).len() == 3));
    let shot = snapshot(create.upcast_ref(), &dir.join("create.png"));
    check("create.png", shot, (400, 400));
    create.close();
    settings_gtk.set_gtk_enable_animations(true);
}

/// The German interface, in a process of its own started with `LANGUAGE=de`: GLib decides
/// once per process whether GtkBuilder's strings (the `.ui` files) are translated, and with
/// `LANG=C.UTF-8` an English start decides "no" for good.
pub(crate) fn german_ui_is_german() {
    let out = std::process::Command::new(std::env::current_exe().expect("this test program"))
        .env("LANGUAGE", "de")
        .env(GERMAN_CHILD, "1")
        .output()
        .expect("the test program runs again");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("german: ok"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Set in the process [`german_ui_is_german`] starts.
pub(crate) const GERMAN_CHILD: &str = "QUBES_GUI_TEST_GERMAN";

/// What the German process checks: code strings and `.ui` strings are German.
pub(crate) fn german_checks() {
    let f = Fixture::start();
    let title = f.controller.widget().title().map(|t| t.to_string());
    let status = f.controller.model().status();
    assert_eq!(title.as_deref(), Some("Qube-Verwaltung"));
    assert!(f.shows("Zustand"), "column titles are German");
    assert!(f.shows("Standard (sys-firewall)"));
    assert!(status.starts_with("11 Qubes"), "{status}");
    // From ui/window.ui: the search field's placeholder.
    let search: gtk::SearchEntry =
        find_widget(f.controller.widget().upcast_ref()).expect("search field");
    assert_eq!(
        search.placeholder_text().as_deref(),
        Some("Qubes nach Name, Typ, Etikett oder Tag suchen")
    );
    println!("german: ok");
}

/// The primary menu holds the application's entries (the qube's own are in the context menu),
/// About and the keyboard shortcuts open, and a change of several qubes can be undone from its
/// toast.
pub(crate) fn primary_menu_about_shortcuts_and_undo() {
    let f = Fixture::start();
    let window = f.controller.widget().clone();
    let labels = |menu: &gtk::gio::MenuModel| -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..menu.n_items() {
            if let Some(section) = menu.item_link(i, "section") {
                for j in 0..section.n_items() {
                    if let Some(v) = section.item_attribute_value(j, "label", None) {
                        out.push(v.get::<String>().unwrap_or_default());
                    }
                }
            }
        }
        out
    };
    let primary: gtk::MenuButton =
        find_widget(window.upcast_ref()).expect("the primary menu button");
    assert!(primary.is_primary(), "F10 opens it");
    let entries = labels(&primary.menu_model().expect("a menu"));
    for e in [
        "_Global Settings",
        "_Policy Editor",
        "_Back Up Qubes…",
        "Show _Internal Qubes",
        "_Keyboard Shortcuts",
        "_About Qube Manager",
    ] {
        assert!(entries.iter().any(|x| x == e), "{e} in {entries:?}");
    }
    assert!(
        !entries.iter().any(|x| x == "Kill"),
        "qube actions stay in its menu"
    );
    // About.
    WidgetExt::activate_action(window.upcast_ref::<gtk::Widget>(), "qube.about", None)
        .expect("qube.about");
    let about = || {
        gtk::Window::list_toplevels()
            .into_iter()
            .filter_map(|w| w.downcast::<relm4::adw::AboutWindow>().ok())
            .find(|w| w.is_visible())
    };
    assert!(spin_until(5, || about().is_some()));
    let a = about().unwrap();
    assert_eq!(a.application_name(), "Qube Manager");
    assert_eq!(a.version(), env!("CARGO_PKG_VERSION"));
    a.close();
    // The shortcuts window is the window's help overlay, with what the keys do.
    let help = window.help_overlay().expect("a shortcuts window");
    let titles: Vec<String> = {
        let mut out = Vec::new();
        let mut stack = vec![help.clone().upcast::<gtk::Widget>()];
        while let Some(w) = stack.pop() {
            if let Some(s) = w.downcast_ref::<gtk::ShortcutsShortcut>() {
                out.push(s.property::<String>("title"));
            }
            let mut c = w.first_child();
            while let Some(x) = c {
                c = x.next_sibling();
                stack.push(x);
            }
        }
        out
    };
    assert!(titles.iter().any(|t| t == "New qube"), "{titles:?}");
    assert!(titles.iter().any(|t| t == "Search qubes"), "{titles:?}");
    // A change of several qubes, undone from its toast.
    f.controller.model().select("personal");
    f.controller.model().select_also("untrusted");
    assert!(spin_until(5, || f.controller.model().selected().len() == 2));
    f.controller.emit(Msg::ChangeNetVm);
    assert!(spin_until(5, || f.controller.model().bulk.is_some()));
    let dialog = f
        .controller
        .model()
        .bulk
        .as_ref()
        .unwrap()
        .widgets()
        .dialog
        .clone();
    f.controller
        .model()
        .bulk
        .as_ref()
        .unwrap()
        .widgets()
        .choice
        .set_selected(1); // none
    dialog.response("apply");
    let netvm = |vm: &str| {
        String::from_utf8(
            f.core
                .call_raw("admin.vm.property.Get", vm, "netvm", b"")
                .unwrap(),
        )
        .unwrap()
    };
    assert!(spin_until(10, || f
        .controller
        .model()
        .last_toast()
        .as_deref()
        == Some("Network qube of 2 qubes changed")));
    assert_eq!(netvm("personal"), "0\0default=False type=vm ");
    let undo = find_where(window.upcast_ref(), &|w| {
        w.downcast_ref::<gtk::Button>()
            .is_some_and(|b| b.label().as_deref() == Some("Undo"))
    })
    .and_then(|w| w.downcast::<gtk::Button>().ok())
    .expect("the toast's Undo button");
    undo.emit_clicked();
    assert!(
        spin_until(10, || netvm("personal")
            == "0\0default=True type=vm sys-firewall"
            && netvm("untrusted") == "0\0default=True type=vm sys-firewall"),
        "{} {}",
        netvm("personal"),
        netvm("untrusted")
    );
}
