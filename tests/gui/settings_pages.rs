//! Settings pages with lists: firewall, devices, the network of several qubes at once, and the
//! global settings.

use crate::support::*;

pub(crate) fn several_qubes_change_network_together() {
    let f = Fixture::start();
    f.controller.model().select("personal");
    f.controller.model().select_also("untrusted");
    assert!(spin_until(5, || f.controller.model().selected().len() == 2));
    f.controller.emit(Msg::ChangeNetVm);
    assert!(spin_until(5, || f.controller.model().bulk.is_some()));
    let (dialog, choice) = {
        let m = f.controller.model();
        let b = m.bulk.as_ref().unwrap().widgets();
        (b.dialog.clone(), b.choice.clone())
    };
    choice.set_selected(1); // none
    dialog.response("apply");
    let netvm = |vm: &str| {
        String::from_utf8(
            f.core
                .call_raw("admin.vm.property.Get", vm, "netvm", b"")
                .unwrap(),
        )
        .unwrap()
    };
    assert!(spin_until(10, || netvm("personal")
        == "0\0default=False type=vm "
        && netvm("untrusted") == "0\0default=False type=vm "));
    assert!(spin_until(5, || f
        .controller
        .model()
        .cell("untrusted", Column::NetVm)
        .as_deref()
        == Some("none")));
    // A refusal for one qube: the others change, and a message names the one that did not.
    f.controller.model().select("work");
    f.controller.model().select_also("vault");
    assert!(spin_until(5, || f.controller.model().selected().len() == 2));
    f.controller.emit(Msg::ChangeTemplate);
    assert!(spin_until(5, || f
        .controller
        .model()
        .bulk
        .as_ref()
        .is_some_and(|b| b.widgets().dialog != dialog)));
    let (dialog, choice) = {
        let m = f.controller.model();
        let b = m.bulk.as_ref().unwrap().widgets();
        (b.dialog.clone(), b.choice.clone())
    };
    choice.set_selected(0); // debian-12-xfce
    click(dialog.upcast_ref(), "Apply");
    let message = "work: The template can only change while the qube is shut down.";
    assert!(
        spin_until(10, || visible_dialogs(&f).iter().any(|w| label_texts(
            w.upcast_ref()
        )
        .iter()
        .any(|t| t == message))),
        "{:?}",
        visible_dialogs(&f)
            .iter()
            .map(|w| label_texts(w.upcast_ref()))
            .collect::<Vec<_>>()
    );
    assert!(
        f.core
            .call_raw("admin.vm.property.Get", "vault", "template", b"")
            .unwrap()
            .ends_with(b" debian-12-xfce")
    );
    for w in visible_dialogs(&f) {
        w.close();
        assert!(spin_until(5, || !w.is_visible()));
    }
    f.controller.model().select("personal");
    f.controller.model().select_also("untrusted");
    assert!(spin_until(5, || f.controller.model().selected().len() == 2));
    // Both start and stop together too.
    let window: gtk::Widget = f.controller.widget().clone().upcast();
    WidgetExt::activate_action(&window, "qube.start", None).expect("qube.start");
    let state = |vm: &str| f.controller.model().cell(vm, Column::State);
    assert!(spin_until(10, || state("personal").as_deref()
        == Some("Running")
        && state("untrusted").as_deref() == Some("Running")));
    WidgetExt::activate_action(&window, "qube.kill", None).expect("qube.kill");
    confirm_kill(&f, "Kill 2 qubes?");
    assert!(spin_until(10, || state("personal").as_deref()
        == Some("Halted")
        && state("untrusted").as_deref() == Some("Halted")));
}

pub(crate) fn global_settings_and_services() {
    use qubes_qube_manager::settings::Msg as S;
    let f = Fixture::start();
    f.controller.emit(Msg::GlobalSettings);
    let loaded = || {
        f.controller
            .model()
            .global_settings
            .as_ref()
            .is_some_and(|s| s.model().is_loaded())
    };
    assert!(spin_until(10, loaded));
    let number = |prop: &str| {
        let m = f.controller.model();
        let s = m.global_settings.as_ref().unwrap();
        s.widgets()
            .editor(prop)
            .unwrap()
            .widget
            .clone()
            .downcast::<gtk::SpinButton>()
            .unwrap()
    };
    let (entry, template) = {
        let m = f.controller.model();
        let s = m.global_settings.as_ref().unwrap();
        assert_eq!(s.model().vm(), "dom0");
        (
            number("stats_interval"),
            s.widgets()
                .editor("default_template")
                .unwrap()
                .widget
                .clone()
                .downcast::<relm4::adw::ComboRow>()
                .unwrap(),
        )
    };
    assert_eq!(entry.text(), "3");
    let texts: Vec<String> = {
        let model = template.model().unwrap();
        (0..model.n_items())
            .filter_map(|i| model.item(i).and_downcast::<gtk::StringObject>())
            .map(|s| s.string().to_string())
            .collect()
    };
    assert!(texts.contains(&"debian-12-xfce".to_string()), "{texts:?}");
    // Statistics every 0 seconds, a shutdown timeout of -1: refused here, nothing is sent.
    entry.set_text("0");
    number("default_shutdown_timeout").set_text("-1");
    f.controller
        .model()
        .global_settings
        .as_ref()
        .unwrap()
        .emit(S::Apply);
    let errors = || {
        f.controller
            .model()
            .global_settings
            .as_ref()
            .map(|s| s.model().errors.clone())
            .unwrap_or_default()
    };
    assert!(spin_until(5, || errors()
        .get("stats_interval")
        .map(String::as_str)
        == Some("Enter a number from 1 to 3600.")
        && errors().get("default_shutdown_timeout").map(String::as_str)
            == Some("Enter a number from 1 to 86400.")));
    assert_eq!(
        f.core
            .call_raw("admin.property.Get", "dom0", "stats_interval", b"")
            .unwrap(),
        b"0\0default=True type=int 3"
    );
    number("default_shutdown_timeout").set_text("60");
    entry.set_text("5");
    f.controller
        .model()
        .global_settings
        .as_ref()
        .unwrap()
        .emit(S::Apply);
    assert!(spin_until(10, || f
        .controller
        .model()
        .global_settings
        .as_ref()
        .is_some_and(|s| s.model().applied)));
    assert_eq!(
        f.core
            .call_raw("admin.property.Get", "dom0", "stats_interval", b"")
            .unwrap(),
        b"0\0default=False type=int 5"
    );
    f.controller
        .model()
        .global_settings
        .as_ref()
        .unwrap()
        .widget()
        .close();

    // A qube's services and features pages.
    // Halted, so that its storage can grow offline (libvirt's test driver cannot resize
    // the disk of a running domain).
    f.call("admin.vm.Kill", "work", "", b"");
    f.call("admin.vm.feature.Set", "work", "service.cups", b"1");
    f.call("admin.vm.feature.Set", "work", "os", b"Linux");
    open_settings(&f, "work");
    let (services, features) = with_settings(&f, |s| {
        (s.widgets().services.clone(), s.widgets().features.clone())
    });
    assert_eq!(services.names(), ["service.cups"]);
    assert!(features.names().contains(&"os".to_string()));
    services.set("service.cups", "");
    services.add_name.set_text("crond");
    services.add_name.emit_activate();
    features.remove("os");
    features.add("gui-emulated", "1");
    apply_settings(&f);
    let feature = |name: &str| {
        String::from_utf8(
            f.core
                .call_raw("admin.vm.feature.Get", "work", name, b"")
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(feature("service.cups"), "0\0");
    assert_eq!(feature("service.crond"), "0\u{0}1");
    assert_eq!(feature("gui-emulated"), "0\u{0}1");
    assert!(feature("os").starts_with("2\0QubesFeatureNotFoundError"));
    // Storage: the private volume grows from the Basic page; shrinking is refused.
    let size = settings_number(&f, "volume:private");
    assert!(spin_until(5, || size.text() == "2048"));
    size.set_text("1024");
    with_settings(&f, |s| s.emit(S::Apply));
    assert!(spin_until(10, || with_settings(&f, |s| s
        .model()
        .errors
        .get("volume:private")
        .is_some_and(
            |e| e == "Storage cannot be made smaller than it is."
        ))));
    size.set_text("3072");
    apply_settings(&f);
    assert!(
        String::from_utf8(
            f.core
                .call_raw("admin.vm.volume.Info", "work", "private", b"")
                .unwrap()
        )
        .unwrap()
        .contains("\nsize=3221225472\n")
    );
    with_settings(&f, |s| s.widget().close());
}

/// The firewall page: rules edited field by field (an invalid field says so at its row), in
/// words on the page, sent as the daemon's lines; full access for a while goes first with an
/// expiry; a removed rule comes back from its toast; a rule the daemon refuses is said.
pub(crate) fn firewall_page_limits_connections() {
    use qubes_qube_manager::settings::Msg as S;
    let f = Fixture::start();
    let rules = |vm: &str| {
        String::from_utf8(
            f.core
                .call_raw("admin.vm.firewall.Get", vm, "", b"")
                .unwrap(),
        )
        .unwrap()
    };
    open_settings(&f, "personal");
    let fw = with_settings(&f, |s| s.widgets().firewall.clone());
    assert!(fw.root.is_sensitive());
    assert!(!fw.limit.is_active(), "no rules yet: everything allowed");
    assert!(
        !fw.add_button.is_sensitive(),
        "rules matter only when limited"
    );
    fw.limit.set_active(true);
    fw.add_button.emit_clicked();
    let d = fw.dialog.borrow().clone().expect("the rule window");
    assert!(d.window.is_visible());
    assert!(
        !d.address.is_visible() && !d.ports.is_visible(),
        "anywhere, any protocol"
    );
    d.destination.set_selected(1); // An address
    d.address.set_text("Qubes-OS.org");
    d.proto.set_selected(1); // TCP
    assert!(d.ports.is_visible() && !d.icmp.is_visible());
    d.ports.set_text("70000");
    d.save.emit_clicked();
    assert!(d.window.is_visible(), "not saved with errors");
    assert_eq!(
        d.error_of(&d.ports).as_deref(),
        Some("Ports go from 1 to 65535.")
    );
    assert!(
        d.error_of(&d.address)
            .is_some_and(|e| e.starts_with("Enter a host name (lower case)")),
        "{:?}",
        d.error_of(&d.address)
    );
    d.address.set_text("qubes-os.org");
    d.ports.set_text("443");
    d.comment.set_text("updates");
    d.save.emit_clicked();
    assert!(spin_until(5, || !d.window.is_visible()));
    assert_eq!(fw.shown(), ["Allow TCP to qubes-os.org, port 443"]);
    // Full access for five minutes, first.
    fw.minutes.set_value(5.0);
    fw.full_button.emit_clicked();
    apply_settings(&f);
    let got = rules("personal");
    let mut lines = got[2..].lines();
    let full = lines.next().unwrap_or_default();
    let until: u64 = full
        .strip_prefix("action=accept expire=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{got:?}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 290..=now + 300).contains(&until), "{until} vs {now}");
    assert_eq!(
        lines.next(),
        Some("action=accept dsthost=qubes-os.org proto=tcp dstports=443-443 comment=updates")
    );
    // Read back: the full access is not a rule of the list, it ends with its button.
    let fw = with_settings(&f, |s| s.widgets().firewall.clone());
    assert_eq!(fw.shown(), ["Allow TCP to qubes-os.org, port 443"]);
    assert_eq!(fw.full_button.label().as_deref(), Some("End"));
    fw.full_button.emit_clicked();
    // A rule removed comes back from its toast.
    let root: gtk::Widget = with_settings(&f, |s| s.widget().clone().upcast());
    let remove = find_where(&fw.root.clone().upcast(), &|w| {
        w.downcast_ref::<gtk::Button>()
            .is_some_and(|b| b.tooltip_text().as_deref() == Some("Remove rule"))
    })
    .and_then(|w| w.downcast::<gtk::Button>().ok())
    .expect("a remove button");
    remove.emit_clicked();
    assert!(fw.shown().is_empty());
    // (After the "Changes applied." toast: toasts come one at a time.)
    let undo = || {
        find_where(&root, &|w| {
            w.downcast_ref::<gtk::Button>()
                .is_some_and(|b| b.label().as_deref() == Some("Undo") && b.is_mapped())
        })
        .and_then(|w| w.downcast::<gtk::Button>().ok())
    };
    assert!(spin_until(10, || undo().is_some()), "the toast's Undo");
    fw.add("action=accept dsthost=qubes-os.org proto=tcp dstports=443-443 comment=updates");
    assert_eq!(fw.shown(), ["Allow TCP to qubes-os.org, port 443"]);
    apply_settings(&f);
    assert_eq!(
        rules("personal"),
        "0\0action=accept dsthost=qubes-os.org proto=tcp dstports=443-443 comment=updates\n"
    );
    // A malformed rule (as qvm-firewall could leave one): the daemon refuses the whole list,
    // the page shows it as text and the window says so.
    let fw = with_settings(&f, |s| s.widgets().firewall.clone());
    fw.add("action=maybe");
    assert_eq!(fw.shown()[1], "action=maybe");
    with_settings(&f, |s| s.emit(S::Apply));
    assert!(spin_until(10, || with_settings(&f, |s| s
        .model()
        .errors
        .get("firewall")
        .is_some_and(
            |e| e == "The rules were refused: check their syntax."
        ))));
    with_settings(&f, |s| s.widget().close());
}

pub(crate) fn devices_page_assigns_pci_devices() {
    use qubes_qube_manager::settings::Msg as S;
    let f = Fixture::start();
    // personal is PVH (its template's default): the page says PCI needs HVM.
    open_settings(&f, "personal");
    let dev = with_settings(&f, |s| s.widgets().devices.clone());
    assert!(dev.root.is_sensitive());
    assert!(dev.note.is_visible());
    assert!(dev.note.text().contains("HVM"), "{}", dev.note.text());
    with_settings(&f, |s| s.widget().close());
    f.core
        .call_raw("admin.vm.property.Set", "personal", "virt_mode", b"hvm")
        .unwrap();
    open_settings(&f, "personal");
    let dev = with_settings(&f, |s| s.widgets().devices.clone());
    assert!(!dev.note.is_visible());
    // Every device but the bridges, sorted by port.
    assert_eq!(
        dev.visible_ports(),
        [
            "00_02.0",
            "00_06.0-00_00.0",
            "00_0d.0",
            "00_14.0",
            "00_14.3",
            "00_1c.0-00_00.0",
            "00_1f.3"
        ]
    );
    dev.search.set_text("wifi");
    assert!(spin_until(2, || dev.visible_ports() == ["00_14.3"]));
    dev.search.set_text("");
    dev.kind.set_selected(3); // Audio and video
    assert!(spin_until(2, || dev.visible_ports() == ["00_1f.3"]));
    dev.kind.set_selected(0);
    dev.set_connected("00_1f.3", true, true);
    apply_settings(&f);
    assert_eq!(
        f.core
            .call_raw("admin.vm.device.pci.Assigned", "personal", "", b"")
            .unwrap(),
        b"0\0dom0+00_1f.3:0x8086:0x51c8::p040380 device_id='0x8086:0x51c8::p040380' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'\n"
    );
    // Unchecking removes the assignment.
    let dev = with_settings(&f, |s| s.widgets().devices.clone());
    dev.set_connected("00_1f.3", false, false);
    with_settings(&f, |s| s.emit(S::Apply));
    assert!(spin_until(10, || f
        .core
        .call_raw("admin.vm.device.pci.Assigned", "personal", "", b"")
        .unwrap()
        == b"0\0"));
    with_settings(&f, |s| s.widget().close());
    // sys-net runs with its network devices: shown connected, but not changeable now.
    open_settings(&f, "sys-net");
    let dev = with_settings(&f, |s| s.widgets().devices.clone());
    assert!(
        dev.note.text().contains("Shut the qube down"),
        "{}",
        dev.note.text()
    );
    let (changes, _) = with_settings(&f, |s| {
        qubes_qube_manager::settings::pending(&s.model(), &s.widgets())
    });
    assert!(
        changes.iter().all(|(k, _)| !k.starts_with("pci:")),
        "{changes:?}"
    );
    with_settings(&f, |s| s.widget().close());
}
