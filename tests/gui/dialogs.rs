//! Toolbar actions and the create, remove and clone dialogs.

use crate::support::*;

pub(crate) fn toolbar_actions_follow_selection_and_report_failures() {
    let f = Fixture::start();
    let model = || f.controller.model();
    model().select("vault");
    assert!(spin_until(5, || model().action_enabled(Action::Start)));
    assert!(!model().action_enabled(Action::Kill));
    f.controller.emit(Msg::Action(Action::Start));
    assert!(spin_until(10, || model()
        .cell("vault", Column::State)
        .as_deref()
        == Some("Running")));
    assert!(spin_until(5, || model().action_enabled(Action::Kill)
        && !model().action_enabled(Action::Start)));
    assert!(spin_until(5, || model().action_enabled(Action::Pause)
        && !model().action_enabled(Action::Resume)));
    f.controller.emit(Msg::Action(Action::Pause));
    assert!(spin_until(10, || model()
        .cell("vault", Column::State)
        .as_deref()
        == Some("Paused")));
    assert!(spin_until(5, || model().action_enabled(Action::Resume)
        && !model().action_enabled(Action::Pause)));
    f.controller.emit(Msg::Action(Action::Kill));
    confirm_kill(&f, "Kill vault?");
    assert!(spin_until(10, || model()
        .cell("vault", Column::State)
        .as_deref()
        == Some("Halted")));
    model().select("dom0");
    assert!(spin_until(5, || Action::ALL
        .iter()
        .all(|a| !model().action_enabled(*a))));
    // A daemon exception is shown in a dialog, as the daemon formatted it.
    f.call(
        "admin.vm.feature.Set",
        "untrusted",
        "prohibit-start",
        b"quarantined",
    );
    model().select("untrusted");
    assert!(spin_until(5, || model().action_enabled(Action::Start)));
    f.controller.emit(Msg::Action(Action::Start));
    let dialog_shown = || {
        gtk::Window::list_toplevels().iter().any(|w| {
            w.downcast_ref::<relm4::adw::MessageDialog>()
                .is_some_and(|d| {
                    d.heading().as_deref() == Some("Starting untrusted failed")
                        && d.body() == "Starting this qube is not allowed: quarantined"
                        && d.is_visible()
                })
        })
    };
    assert!(spin_until(10, dialog_shown));
    for w in gtk::Window::list_toplevels() {
        if let Some(d) = w.downcast_ref::<relm4::adw::MessageDialog>() {
            d.close();
        }
    }
}

pub(crate) fn create_and_remove_dialogs() {
    let f = Fixture::start();
    f.controller.emit(Msg::Create);
    assert!(spin_until(5, || f.controller.model().create.is_some()));
    let window = f
        .controller
        .model()
        .create
        .as_ref()
        .unwrap()
        .widget()
        .clone();
    let d = window.parts();
    let (name, problem, create, template, netvm, pool, open_settings, class) = (
        d.name.clone(),
        d.name_problem.clone(),
        d.create.clone(),
        d.template.clone(),
        d.netvm.clone(),
        d.pool.clone(),
        d.open_settings.clone(),
        d.kind.clone(),
    );
    let selected = |d: &relm4::adw::ComboRow| combo_texts(d)[d.selected() as usize].clone();
    let texts = combo_texts;
    // The name field has the focus; the dialog speaks of qubes; the defaults say what they
    // are, and the system's default template is chosen.
    // (An entry's focus is on the text widget inside it.)
    let focus = gtk::prelude::RootExt::focus(&window);
    assert!(
        focus.as_ref().is_some_and(|w| w.is_ancestor(&name)),
        "{focus:?}"
    );
    assert_eq!(
        texts(&class),
        [
            "App qube",
            "Template",
            "Standalone qube",
            "Named disposable qube",
            "Disposable template"
        ]
    );
    assert!(
        spin_until(5, || selected(&template) == "fedora-41"
            && texts(&netvm)[0] == "default (sys-firewall)"
            && texts(&pool).len() == 3
            && texts(&pool)[0] == "default (varlibqubes)"),
        "{:?} {:?} {:?}",
        texts(&template),
        texts(&netvm),
        texts(&pool)
    );
    // What is wrong with a name is said as it is typed; Create waits for a good one.
    assert!(!create.is_sensitive());
    assert!(
        !problem.is_visible(),
        "nothing to say before anything is typed"
    );
    for (typed, said) in [
        ("1bad", "A qube name starts with a letter."),
        ("my qube", "A qube name has no spaces."),
        (
            "abcdefghijklmnopqrstuvwxyz012345",
            "A qube name has at most 31 characters.",
        ),
        ("work", "A qube named work already exists."),
    ] {
        name.set_text(typed);
        assert!(
            spin_until(5, || problem.text() == said && problem.is_visible()),
            "{typed}: {}",
            problem.text()
        );
        assert!(!create.is_sensitive(), "{typed}");
    }
    name.set_text("fresh2");
    assert!(spin_until(5, || !problem.is_visible() && create.is_sensitive()));
    let debian = texts(&template)
        .iter()
        .position(|t| t == "debian-12-xfce")
        .unwrap();
    template.set_selected(debian as u32);
    netvm.set_selected(1); // none
    pool.set_selected(1); // varlibqubes
    open_settings.set_active(true);
    create.emit_clicked();
    // Its settings open by themselves.
    assert!(spin_until(10, || f
        .controller
        .model()
        .settings
        .as_ref()
        .is_some_and(|s| s.model().vm() == "fresh2")));
    assert_eq!(
        f.core
            .call_raw("admin.vm.property.Get", "fresh2", "netvm", b"")
            .unwrap(),
        b"0\0default=False type=vm "
    );
    assert!(
        String::from_utf8(
            f.core
                .call_raw("admin.vm.volume.Info", "fresh2", "private", b"")
                .unwrap()
        )
        .unwrap()
        .contains("pool=varlibqubes\n")
    );
    with_settings(&f, |s| s.widget().close());
    assert!(spin_until(10, || f
        .controller
        .model()
        .row_names()
        .contains(&"fresh2".to_string())));
    assert_eq!(
        f.core
            .call_raw("admin.vm.property.Get", "fresh2", "template", b"")
            .unwrap(),
        b"0\0default=False type=vm debian-12-xfce"
    );
    // Remove: the name must be typed; dependents are shown.
    select_and_wait(&f, "debian-12-xfce");
    f.controller.emit(Msg::Remove);
    assert!(spin_until(5, || f.controller.model().remove.is_some()));
    let dialog = f.controller.model().remove_dialog().unwrap();
    let extra = dialog.extra_child().unwrap();
    assert!(spin_until(10, || label_texts(&extra).iter().any(|t| t
        .starts_with("It cannot be removed while these use it:")
        && t.contains("fresh2: template"))));
    idle();
    assert!(!dialog.is_response_enabled("remove"));
    select_and_wait(&f, "fresh2");
    f.controller.emit(Msg::Remove);
    assert!(spin_until(5, || f
        .controller
        .model()
        .remove_dialog()
        .is_some_and(|d| d != dialog)));
    let dialog = f.controller.model().remove_dialog().unwrap();
    let entry = dialog
        .extra_child()
        .unwrap()
        .first_child()
        .unwrap()
        .downcast::<gtk::Entry>()
        .unwrap();
    entry.set_text("fresh");
    assert!(spin_until(5, || !dialog.is_response_enabled("remove")));
    entry.set_text("fresh2");
    assert!(spin_until(5, || dialog.is_response_enabled("remove")));
    click(dialog.upcast_ref(), "Remove");
    assert!(spin_until(10, || !f
        .controller
        .model()
        .row_names()
        .contains(&"fresh2".to_string())));
}

/// A qube still in use cannot be removed: the dialog says by what and keeps Remove off. A
/// removal the daemon refuses all the same (a running qube) ends in a message that closes, and
/// leaves the main window usable.
pub(crate) fn failed_remove_can_be_closed() {
    let f = Fixture::start();
    select_and_wait(&f, "default-dvm");
    f.controller.emit(Msg::Remove);
    assert!(spin_until(5, || f.controller.model().remove.is_some()));
    let dialog = f.controller.model().remove_dialog().unwrap();
    let extra = dialog.extra_child().unwrap();
    let entry: gtk::Entry = find_widget(&extra).expect("name entry");
    assert!(spin_until(10, || {
        label_texts(&extra).iter().any(|t| t
        == "It cannot be removed while these use it:\nuntrusted: default_dispvm\nglobal: default_dispvm\nglobal: management_dispvm")
    }));
    entry.set_text("default-dvm");
    idle();
    assert!(!dialog.is_response_enabled("remove"));
    click(dialog.upcast_ref(), "Cancel");
    assert!(spin_until(5, || !dialog.is_visible()));
    // A running qube: the daemon refuses.
    select_and_wait(&f, "work");
    f.controller.emit(Msg::Remove);
    assert!(spin_until(5, || f
        .controller
        .model()
        .remove_dialog()
        .is_some_and(|d| d != dialog)));
    let dialog = f.controller.model().remove_dialog().unwrap();
    let entry: gtk::Entry = find_widget(&dialog.extra_child().unwrap()).expect("name entry");
    entry.set_text("work");
    click(dialog.upcast_ref(), "Remove");
    let refused = || {
        visible_dialogs(&f).iter().any(|w| {
            label_texts(w.upcast_ref())
                .iter()
                .any(|t| t == "Qube work is still running; shut it down first.")
        })
    };
    assert!(
        spin_until(10, refused),
        "{:?}",
        visible_dialogs(&f)
            .iter()
            .map(|w| label_texts(w.upcast_ref()))
            .collect::<Vec<_>>()
    );
    // Escape (the window's close) closes whatever the failure left open, one at a time.
    for _ in 0..3 {
        let Some(top) = visible_dialogs(&f).pop() else {
            break;
        };
        top.close();
        assert!(
            spin_until(5, || !top.is_visible()),
            "{:?} stays open",
            label_texts(top.upcast_ref())
        );
    }
    assert!(visible_dialogs(&f).is_empty());
    // The main window answers again: the qube is still there and can be selected.
    select_and_wait(&f, "personal");
    assert!(
        f.controller
            .model()
            .row_names()
            .contains(&"work".to_string())
    );
}

pub(crate) fn clone_copies_settings_and_data() {
    let f = Fixture::start();
    f.call(
        "admin.vm.feature.Set",
        "personal",
        "menu-items",
        b"firefox.desktop",
    );
    f.call(
        "admin.vm.firewall.Set",
        "personal",
        "",
        b"action=accept dsthost=qubes-os.org\naction=drop\n",
    );
    select_and_wait(&f, "personal");
    f.controller.emit(Msg::Clone);
    assert!(spin_until(5, || f.controller.model().clone.is_some()));
    let dialog = f.controller.model().clone_dialog().unwrap();
    let (entry, button) = (dialog.parts().name.clone(), dialog.parts().clone.clone());
    assert_eq!(entry.text(), "personal-clone");
    // A name in use is refused as it is typed.
    entry.set_text("work");
    assert!(spin_until(5, || !button.is_sensitive()));
    entry.set_text("personal-clone");
    assert!(spin_until(5, || button.is_sensitive()));
    // Another label, and a pool of its own.
    let (label, pool) = (dialog.parts().label.clone(), dialog.parts().pool.clone());
    assert_eq!(combo_texts(&label)[label.selected() as usize], "yellow");
    let green = combo_texts(&label)
        .iter()
        .position(|l| l == "green")
        .unwrap();
    label.set_selected(green as u32);
    assert!(spin_until(5, || combo_texts(&pool).len() == 3));
    pool.set_selected(1);
    let pool_name = combo_texts(&pool)[1].clone();
    click(dialog.upcast_ref(), "Clone");
    assert!(spin_until(20, || f
        .controller
        .model()
        .cell("personal-clone", Column::Template)
        .is_some()
        && !f.controller.model().busy()));
    let get = |m: &str, vm: &str, arg: &str| {
        String::from_utf8(f.core.call_raw(m, vm, arg, b"").unwrap()).unwrap()
    };
    assert_eq!(
        get("admin.vm.property.Get", "personal-clone", "label"),
        "0\0default=False type=label green"
    );
    assert!(
        get("admin.vm.volume.Info", "personal-clone", "private")
            .contains(&format!("pool={pool_name}\n"))
    );
    assert_eq!(
        get("admin.vm.feature.Get", "personal-clone", "menu-items"),
        "0\0firefox.desktop"
    );
    assert_eq!(
        get("admin.vm.firewall.Get", "personal-clone", ""),
        "0\0action=accept dsthost=qubes-os.org\naction=drop\n"
    );
    let size = |vm: &str| {
        get("admin.vm.volume.Info", vm, "private")
            .lines()
            .find(|l| l.starts_with("size="))
            .map(str::to_string)
    };
    assert_eq!(size("personal-clone"), size("personal"));
}

/// Every kind of qube the create dialog offers, with its options, as the reference creates
/// them: a named disposable on a disposable template, a template copied from a template, an
/// empty standalone qube (HVM, no kernel), a disposable template that provides network with
/// its initial memory.
pub(crate) fn create_every_kind_of_qube() {
    let f = Fixture::start();
    let raw = |m: &str, vm: &str, arg: &str| {
        String::from_utf8(f.core.call_raw(m, vm, arg, b"").unwrap()).unwrap()
    };
    let prop = |vm: &str, p: &str| raw("admin.vm.property.Get", vm, p);
    let class_of = |vm: &str| {
        raw("admin.vm.List", vm, "")
            .split(' ')
            .find_map(|kv| kv.strip_prefix("class=").map(str::to_string))
            .unwrap_or_default()
    };
    let create =
        |kind: u32,
         name: &str,
         base: &str,
         setup: &dyn Fn(&qubes_qube_manager::templates::create::QubeCreateDialog)| {
            let before = f
                .controller
                .model()
                .create
                .as_ref()
                .map(|c| c.widget().clone());
            f.controller.emit(Msg::Create);
            assert!(spin_until(5, || f
                .controller
                .model()
                .create
                .as_ref()
                .is_some_and(|c| Some(c.widget().clone()) != before)));
            let d = f
                .controller
                .model()
                .create
                .as_ref()
                .unwrap()
                .widget()
                .clone();
            let p = d.parts();
            // Pools and defaults read.
            assert!(spin_until(5, || combo_texts(&p.pool).len() == 3));
            p.kind.set_selected(kind);
            assert!(spin_until(5, || {
                let texts = combo_texts(&p.template);
                texts.iter().any(|t| t.starts_with(base))
            }));
            let pos = combo_texts(&p.template)
                .iter()
                .position(|t| t.starts_with(base))
                .unwrap();
            p.template.set_selected(pos as u32);
            p.name.set_text(name);
            setup(&d);
            assert!(spin_until(5, || p.create.is_sensitive()));
            p.create.emit_clicked();
            assert!(
                spin_until(30, || !d.is_visible()),
                "{name}: {}",
                p.status.text()
            );
            assert!(spin_until(10, || f
                .controller
                .model()
                .row_names()
                .contains(&name.to_string())));
        };
    create(3, "disp-named", "default-dvm", &|_| {});
    assert_eq!(class_of("disp-named"), "DispVM");
    assert_eq!(
        prop("disp-named", "template"),
        "0\0default=False type=vm default-dvm"
    );
    create(1, "fedora-copy", "fedora-41", &|_| {});
    assert_eq!(class_of("fedora-copy"), "TemplateVM");
    let size = |vm: &str, vol: &str| {
        raw("admin.vm.volume.Info", vm, vol)
            .lines()
            .find(|l| l.starts_with("size="))
            .map(str::to_string)
    };
    assert_eq!(size("fedora-copy", "root"), size("fedora-41", "root"));
    create(2, "installer", "none", &|_| {});
    assert_eq!(class_of("installer"), "StandaloneVM");
    assert_eq!(
        prop("installer", "virt_mode"),
        "0\0default=False type=str hvm"
    );
    assert_eq!(prop("installer", "kernel"), "0\0default=False type=str ");
    create(4, "net-dvm", "fedora-41", &|d| {
        let p = d.parts();
        p.provides_network.set_active(true);
        p.memory_row.set_enable_expansion(true);
        p.memory.set_value(600.0);
    });
    assert_eq!(class_of("net-dvm"), "AppVM");
    assert_eq!(
        prop("net-dvm", "template_for_dispvms"),
        "0\0default=False type=bool True"
    );
    assert_eq!(
        prop("net-dvm", "provides_network"),
        "0\0default=False type=bool True"
    );
    assert_eq!(prop("net-dvm", "memory"), "0\0default=False type=int 600");
    assert_eq!(
        raw("admin.vm.feature.Get", "net-dvm", "appmenus-dispvm"),
        "0\u{0}1"
    );
}
