//! The settings dialog: opening, applying all or nothing, errors by field, and the rows for
//! features, boot modes and rename.

use crate::support::*;

/// `qubes-qube-manager --settings work` (the tray's "Settings"): the window and that qube's
/// settings.
pub(crate) fn settings_of_a_qube_open_at_start() {
    let (client, core) = app::demo_client().expect("demo core");
    let config = tempfile::tempdir().expect("config dir");
    let controller = app::launch(app::AppInit {
        client,
        view_state: qubes_qube_manager::view_state::ViewState::open(&config.path().join("v.ini")),
        open_settings: Some("work".into()),
    });
    controller.widget().present();
    assert!(spin_until(10, || controller
        .model()
        .settings
        .as_ref()
        .is_some_and(|s| s.model().is_loaded())));
    let settings = controller.model().settings.as_ref().map(|s| {
        let title = s.widget().title().map(|t| t.to_string());
        (s.model().vm().to_string(), title)
    });
    assert_eq!(
        settings,
        Some(("work".to_string(), Some("Settings: work".to_string())))
    );
    controller.widget().close();
    drop(core);
}

pub(crate) fn settings_dialog_applies_and_shows_errors_by_field() {
    use qubes_qube_manager::settings::Msg as S;
    let f = Fixture::start();
    open_settings(&f, "work");
    assert_eq!(with_settings(&f, |s| s.model().vm().to_string()), "work");
    // Over the main window; the running qube's template cannot change, and it says why.
    let root = with_settings(&f, |s| s.widget().clone());
    let main: gtk::Window = f.controller.widget().clone().upcast();
    assert_eq!(root.transient_for(), Some(main));
    let template = with_settings(&f, |s| {
        s.widgets().editor("template").unwrap().widget.clone()
    });
    assert!(!template.is_sensitive());
    assert!(
        label_texts(root.upcast_ref())
            .iter()
            .any(|t| t == "Shut the qube down to change its template.")
    );
    let page = || root.visible_page_name().map(|p| p.to_string());
    assert_eq!(page().as_deref(), Some("basic"), "Basic first");
    let entry = |prop: &str| settings_number(&f, prop);
    assert_eq!(entry("memory").text(), "800");
    let (min, max) = {
        let a = entry("memory").adjustment();
        (a.lower(), a.upper())
    };
    assert_eq!(
        (min, max),
        (1.0, 1_048_576.0),
        "a spin button with the limits"
    );
    // An invalid value: it stays as typed when the field loses the focus, its error appears
    // under it, and nothing is sent.
    entry("memory").set_text("99999999");
    entry("memory").update();
    assert_eq!(entry("memory").text(), "99999999");
    with_settings(&f, |s| s.emit(S::Apply));
    let error = "Enter a number from 1 to 1048576.";
    assert!(spin_until(10, || with_settings(&f, |s| s
        .model()
        .errors
        .get("memory")
        .is_some_and(|e| e == error))));
    assert!(spin_until(5, || {
        let root = with_settings(&f, |s| s.widget().clone());
        label_texts(root.upcast_ref()).iter().any(|t| t == error)
    }));
    // Apply was pressed on the Basic page: the page with the error comes forward, the row
    // says what is wrong, and a toast says nothing was applied.
    assert_eq!(page().as_deref(), Some("advanced"));
    assert_eq!(
        with_settings(&f, |s| s.widgets().editor("memory").unwrap().said()),
        error
    );
    assert!(
        label_texts(root.upcast_ref())
            .iter()
            .any(|t| t == "Not applied: see the fields marked in red.")
    );
    assert_eq!(entry("memory").text(), "99999999");
    assert_eq!(
        f.core
            .call_raw("admin.vm.property.Get", "work", "memory", b"")
            .unwrap(),
        b"0\0default=False type=int 800"
    );
    // Valid edits: memory and the label (a drop-down).
    entry("memory").set_text("1024");
    let label = with_settings(&f, |s| {
        s.widgets()
            .editor("label")
            .unwrap()
            .widget
            .clone()
            .downcast::<relm4::adw::ComboRow>()
            .unwrap()
    });
    let model = label.model().unwrap();
    let green = (0..model.n_items())
        .find(|i| {
            model
                .item(*i)
                .and_downcast::<gtk::StringObject>()
                .is_some_and(|s| s.string() == "green")
        })
        .unwrap();
    label.set_selected(green);
    apply_settings(&f);
    // A toast says the changes were applied (looked for at once: it goes after a while).
    assert!(spin_until(10, || label_texts(root.upcast_ref())
        .iter()
        .any(|t| t == "Changes applied.")));
    assert_eq!(
        f.core
            .call_raw("admin.vm.property.Get", "work", "memory", b"")
            .unwrap(),
        b"0\0default=False type=int 1024"
    );
    assert_eq!(
        f.core
            .call_raw("admin.vm.property.Get", "work", "label", b"")
            .unwrap(),
        b"0\0default=False type=label green"
    );
    // The main table follows through the event stream.
    assert!(spin_until(10, || f
        .controller
        .model()
        .cell("work", Column::Memory)
        .as_deref()
        == Some("1024 MiB")));
    // Every page is there, the firewall's included, in order.
    let fw = with_settings(&f, |s| s.widgets().firewall.clone());
    assert!(fw.root.is_sensitive());
    let pages: Vec<String> = {
        let mut out = Vec::new();
        let mut w = find_widget::<relm4::adw::PreferencesPage>(root.upcast_ref())
            .map(|p| p.upcast::<gtk::Widget>());
        while let Some(p) = w {
            if let Some(page) = p.downcast_ref::<relm4::adw::PreferencesPage>() {
                out.push(page.title().to_string());
            }
            w = p.next_sibling();
        }
        out
    };
    assert_eq!(
        pages,
        [
            "Basic", "Advanced", "Firewall", "Devices", "Services", "Features", "Notes"
        ]
    );
    with_settings(&f, |s| s.widget().close());
}

/// The combo row of a choice in the open settings dialog, set to the entry showing `text`.
pub(crate) fn settings_choose(f: &Fixture, prop: &str, text: &str) {
    let dropdown = with_settings(f, |s| {
        s.widgets()
            .editor(prop)
            .unwrap()
            .widget
            .clone()
            .downcast::<relm4::adw::ComboRow>()
            .unwrap()
    });
    let model = dropdown.model().unwrap();
    let pos = (0..model.n_items())
        .find(|i| {
            model
                .item(*i)
                .and_downcast::<gtk::StringObject>()
                .is_some_and(|s| s.string() == text)
        })
        .unwrap_or_else(|| panic!("{prop} has no choice {text}"));
    dropdown.set_selected(pos);
}

/// An Apply is all or nothing, and closing with edits not applied asks.
pub(crate) fn settings_apply_all_or_nothing_and_close_asks() {
    use qubes_qube_manager::settings::Msg as S;
    let f = Fixture::start();
    let get = |vm: &str, prop: &str| {
        String::from_utf8(
            f.core
                .call_raw("admin.vm.property.Get", vm, prop, b"")
                .unwrap(),
        )
        .unwrap()
    };
    open_settings(&f, "sys-net");
    // The label is accepted, then the network refused (a loop): the label is put back.
    settings_choose(&f, "label", "green");
    settings_choose(&f, "netvm", "sys-firewall");
    with_settings(&f, |s| s.emit(S::Apply));
    let refused = "That network qube reaches the network through this qube: a loop.";
    assert!(
        spin_until(10, || with_settings(&f, |s| s
            .model()
            .errors
            .get("netvm")
            .is_some_and(|e| e == refused))),
        "{:?}",
        with_settings(&f, |s| s.model().errors.clone())
    );
    assert_eq!(get("sys-net", "label"), "0\0default=False type=label red");
    assert_eq!(get("sys-net", "netvm"), "0\0default=False type=vm ");
    // The edits stay for the user to correct.
    settings_choose(&f, "netvm", "none");
    // Into memory balancing (sys-net has its devices, so it is not), with a maximum below the
    // initial memory: refused before anything is sent.
    with_settings(&f, |s| {
        s.widgets()
            .editor("balancing")
            .unwrap()
            .widget
            .clone()
            .downcast::<gtk::Switch>()
            .unwrap()
            .set_active(true)
    });
    settings_number(&f, "memory").set_text("500");
    settings_number(&f, "maxmem").set_text("400");
    with_settings(&f, |s| s.emit(S::Apply));
    assert!(spin_until(5, || with_settings(&f, |s| s
        .model()
        .errors
        .get("maxmem")
        .is_some_and(
            |e| e.starts_with("At least the initial memory (500 MiB)")
        ))));
    assert_eq!(get("sys-net", "memory"), "0\0default=False type=int 425");
    assert_eq!(get("sys-net", "label"), "0\0default=False type=label red");
    // Escape with edits not applied: the window asks; "Keep editing" keeps it open.
    let window: gtk::Widget = with_settings(&f, |s| s.widget().clone().upcast());
    press_key(&window, gtk::gdk::Key::Escape);
    assert!(spin_until(5, || with_settings(&f, |s| s
        .model()
        .question
        .is_some())));
    let question = with_settings(&f, |s| s.model().question.clone().unwrap());
    assert_eq!(question.heading().as_deref(), Some("Apply the changes?"));
    click(question.upcast_ref(), "Keep editing");
    assert!(spin_until(5, || !question.is_visible()));
    assert!(window.is_visible());
    // "Discard" closes without a call.
    window.downcast_ref::<gtk::Window>().unwrap().close();
    assert!(spin_until(5, || with_settings(&f, |s| s
        .model()
        .question
        .as_ref()
        .is_some_and(|q| q != &question && q.is_visible()))));
    let question = with_settings(&f, |s| s.model().question.clone().unwrap());
    click(question.upcast_ref(), "Discard");
    assert!(spin_until(5, || !window.is_visible()));
    assert_eq!(get("sys-net", "memory"), "0\0default=False type=int 425");
    // "Apply" applies, then closes.
    open_settings(&f, "sys-net");
    settings_number(&f, "memory").set_text("500");
    let window: gtk::Widget = with_settings(&f, |s| s.widget().clone().upcast());
    window.downcast_ref::<gtk::Window>().unwrap().close();
    assert!(spin_until(5, || with_settings(&f, |s| s
        .model()
        .question
        .is_some())));
    let question = with_settings(&f, |s| s.model().question.clone().unwrap());
    click(question.upcast_ref(), "Apply");
    assert!(spin_until(10, || !window.is_visible()));
    assert_eq!(get("sys-net", "memory"), "0\0default=False type=int 500");
    // Nothing changed: Escape closes at once.
    open_settings(&f, "sys-net");
    let window: gtk::Widget = with_settings(&f, |s| s.widget().clone().upcast());
    press_key(&window, gtk::gdk::Key::Escape);
    assert!(spin_until(5, || !window.is_visible()));
    assert!(with_settings(&f, |s| s.model().question.is_none()));
}

/// The rows that stand for features (memory balancing, idle shutdown, prohibit-start with its
/// reason), the boot modes the template offers, and renaming as the reference does it.
pub(crate) fn settings_rows_for_features_boot_modes_and_rename() {
    use qubes_qube_manager::settings::Msg as S;
    let f = Fixture::start();
    let raw = |m: &str, vm: &str, arg: &str| {
        String::from_utf8(f.core.call_raw(m, vm, arg, b"").unwrap()).unwrap()
    };
    let prop = |vm: &str, p: &str| raw("admin.vm.property.Get", vm, p);
    let feature = |vm: &str, name: &str| raw("admin.vm.feature.Get", vm, name);
    // The template offers a boot mode and has the idle shutdown service.
    f.call(
        "admin.vm.feature.Set",
        "fedora-41",
        "boot-mode.kernelopts.safe",
        b"nomodeset",
    );
    f.call(
        "admin.vm.feature.Set",
        "fedora-41",
        "boot-mode.name.safe",
        b"Safe graphics",
    );
    f.call(
        "admin.vm.feature.Set",
        "fedora-41",
        "supported-service.shutdown-idle",
        b"1",
    );
    f.call("admin.vm.property.Set", "vault", "maxmem", b"4000");
    open_settings(&f, "vault");
    let editor_row = |p: &str| with_settings(&f, |s| s.widgets().editor(p).unwrap().row.clone());
    let switch = |p: &str| {
        with_settings(&f, |s| {
            s.widgets()
                .editor(p)
                .unwrap()
                .widget
                .clone()
                .downcast::<gtk::Switch>()
                .unwrap()
        })
    };
    let bootmode = with_settings(&f, |s| {
        s.widgets()
            .editor("bootmode")
            .unwrap()
            .widget
            .clone()
            .downcast::<relm4::adw::ComboRow>()
            .unwrap()
    });
    assert_eq!(combo_texts(&bootmode), ["default", "Safe graphics"]);
    settings_choose(&f, "bootmode", "Safe graphics");
    assert!(switch("balancing").is_active());
    switch("balancing").set_active(false);
    assert!(spin_until(5, || !editor_row("maxmem").is_sensitive()));
    assert!(
        editor_row("shutdown-idle").is_sensitive(),
        "the template has the service"
    );
    switch("shutdown-idle").set_active(true);
    // Prohibit-start without a reason: said at the reason's row, nothing sent.
    assert!(!editor_row("prohibit-start-reason").is_sensitive());
    switch("prohibit-start").set_active(true);
    assert!(spin_until(5, || editor_row("prohibit-start-reason").is_sensitive()));
    with_settings(&f, |s| s.emit(S::Apply));
    let why = "Say why: the reason is shown to whoever tries to start it.";
    assert!(spin_until(5, || with_settings(&f, |s| s
        .widgets()
        .editor("prohibit-start-reason")
        .unwrap()
        .said()
        == why)));
    assert_eq!(
        prop("vault", "bootmode"),
        "0\0default=True type=str default"
    );
    editor_row("prohibit-start-reason")
        .downcast::<gtk::Editable>()
        .unwrap()
        .set_text("quarantined");
    apply_settings(&f);
    assert_eq!(prop("vault", "bootmode"), "0\0default=False type=str safe");
    assert_eq!(prop("vault", "maxmem"), "0\0default=False type=int 0");
    assert_eq!(feature("vault", "qubesmanager.maxmem_value"), "0\u{0}4000");
    assert_eq!(feature("vault", "service.shutdown-idle"), "0\u{0}1");
    assert_eq!(feature("vault", "prohibit-start"), "0\u{0}quarantined");
    // Back into memory balancing with the value it had; start allowed again.
    let maxmem = settings_number(&f, "maxmem");
    assert_eq!(maxmem.text(), "4000");
    switch("balancing").set_active(true);
    switch("prohibit-start").set_active(false);
    apply_settings(&f);
    assert_eq!(prop("vault", "maxmem"), "0\0default=False type=int 4000");
    assert!(feature("vault", "prohibit-start").starts_with("2\0QubesFeatureNotFoundError"));
    // Rename, as the reference: a copy under the new name, what used it points at the copy,
    // the old one goes; the copy's settings open.
    f.call(
        "admin.vm.property.Set",
        "vault",
        "provides_network",
        b"True",
    );
    f.call("admin.vm.property.Set", "personal", "netvm", b"vault");
    let rename = find_where(&with_settings(&f, |s| s.widget().clone().upcast()), &|w| {
        w.downcast_ref::<gtk::Button>()
            .is_some_and(|b| b.label().as_deref() == Some("Rename…"))
    })
    .and_then(|w| w.downcast::<gtk::Button>().ok())
    .expect("the Rename button");
    assert!(rename.is_sensitive(), "vault is halted");
    rename.emit_clicked();
    assert!(spin_until(5, || with_settings(&f, |s| s
        .model()
        .question
        .is_some())));
    let question = with_settings(&f, |s| s.model().question.clone().unwrap());
    let entry: gtk::Entry = find_widget(&question.extra_child().unwrap()).expect("entry");
    entry.set_text("work");
    assert!(!question.is_response_enabled("rename"), "a name in use");
    entry.set_text("vault-2");
    assert!(question.is_response_enabled("rename"));
    question.response("rename");
    assert!(
        spin_until(20, || f.controller.model().settings.as_ref().is_some_and(
            |s| s.model().vm() == "vault-2" && s.model().is_loaded()
        )),
        "the renamed qube's settings open"
    );
    assert_eq!(
        prop("personal", "netvm"),
        "0\0default=False type=vm vault-2"
    );
    assert!(prop("vault", "label").starts_with("2\0QubesVMNotFoundError"));
    assert_eq!(feature("vault-2", "prohibit-start").get(..1), Some("2"));
    assert_eq!(
        prop("vault-2", "bootmode"),
        "0\0default=False type=str safe"
    );
    with_settings(&f, |s| s.widget().close());
}
