//! The table: rows for every qube, live cells from events and stats, counts, sorting,
//! searching, the show selector and the selection.

use crate::support::*;

pub(crate) fn rows_for_every_qube() {
    let f = Fixture::start();
    let listed: Vec<String> =
        String::from_utf8(f.core.call_raw("admin.vm.List", "dom0", "", b"").unwrap()).unwrap()[2..]
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
    let mut rows = f.controller.model().row_names();
    rows.sort();
    let mut want = listed.clone();
    want.sort();
    assert_eq!(rows, want);
    assert!(spin_until(5, || f.shows("sys-firewall")
        && f.shows("default (sys-firewall)")));
    assert_eq!(
        f.controller
            .model()
            .cell("sys-net", Column::Memory)
            .as_deref(),
        Some("425 MiB")
    );
    assert!(
        f.controller.model().status().starts_with("11 qubes"),
        "{}",
        f.controller.model().status()
    );
}

pub(crate) fn property_change_from_second_client_updates_cell() {
    let f = Fixture::start();
    f.call("admin.vm.property.Set", "work", "netvm", b"sys-net");
    assert!(spin_until(10, || f
        .controller
        .model()
        .cell("work", Column::NetVm)
        .as_deref()
        == Some("sys-net")));
    f.call("admin.vm.property.Set", "work", "label", b"purple");
    assert!(spin_until(10, || f
        .controller
        .model()
        .cell("work", Column::Label)
        .is_some_and(|c| c.contains("purple"))));
    // On screen: the qube's icon in purple, with the label's name.
    let purple = qubes_qube_manager::resources::qube_texture(
        qubes_qube_manager::qube_icons::QubeKind::App,
        "0x75507b",
    );
    assert!(
        spin_until(5, || row_images(&f, "work")
            .iter()
            .any(|i| i.paintable().as_ref() == Some(purple.upcast_ref()))
            && f.shows("purple")),
        "the purple icon is on screen"
    );
    // A template change reaches qubes that inherit the value.
    f.call("admin.vm.property.Set", "fedora-41", "memory", b"1234");
    assert!(spin_until(10, || f
        .controller
        .model()
        .cell("vault", Column::Memory)
        .as_deref()
        == Some("1234 MiB")));
}

pub(crate) fn start_and_shutdown_flip_the_state() {
    let f = Fixture::start();
    let state = |vm: &str| f.controller.model().cell(vm, Column::State);
    assert_eq!(state("work").as_deref(), Some("Running"));
    assert_eq!(state("vault").as_deref(), Some("Halted"));
    assert_eq!(
        state_icon(&f, "vault"),
        Some(("qube-state-halted-symbolic".into(), "Halted".into()))
    );
    f.call("admin.vm.Start", "vault", "", b"");
    assert!(spin_until(10, || state("vault").as_deref() == Some("Running")));
    assert!(spin_until(5, || state_icon(&f, "vault")
        == Some((
            "qube-state-running-symbolic".into(),
            "Running".into()
        ))));
    f.call("admin.vm.Pause", "vault", "", b"");
    assert!(spin_until(10, || state("vault").as_deref() == Some("Paused")));
    assert!(spin_until(5, || state_icon(&f, "vault")
        .is_some_and(|(i, _)| i == "qube-state-paused-symbolic")));
    f.call("admin.vm.Kill", "vault", "", b"");
    assert!(spin_until(10, || state("vault").as_deref() == Some("Halted")));
}

pub(crate) fn stats_fill_cpu_and_memory_columns() {
    let f = Fixture::start();
    f.call("admin.property.Set", "dom0", "stats_interval", b"1");
    let cell = |vm: &str, c: Column| f.controller.model().cell(vm, c).unwrap_or_default();
    assert!(
        spin_until(15, || cell("work", Column::MemUsed) == "800 MiB"),
        "{}",
        cell("work", Column::MemUsed)
    );
    // Figures of their own: the user's qube works, the service qubes idle (the demo's test
    // driver once gave every running qube, paused or not, 50 %).
    let cpu = |vm: &str| {
        cell(vm, Column::Cpu)
            .strip_suffix(" %")
            .and_then(|c| c.parse::<u32>().ok())
    };
    assert!(
        spin_until(15, || cpu("work").is_some_and(|c| (2..=17).contains(&c))
            && cpu("sys-net").is_some_and(|c| c <= 1)),
        "work {:?}, sys-net {:?}",
        cell("work", Column::Cpu),
        cell("sys-net", Column::Cpu)
    );
    // A paused qube uses no CPU.
    f.call("admin.vm.Pause", "work", "", b"");
    assert!(
        spin_until(15, || cpu("work") == Some(0)),
        "{:?}",
        cell("work", Column::Cpu)
    );
    f.call("admin.vm.Unpause", "work", "", b"");
    assert_eq!(
        cell("vault", Column::Cpu),
        "",
        "halted qubes have no figures"
    );
    // On screen: work's configured memory and, now, its memory in use.
    let count = |t: &str| {
        label_texts(f.controller.widget().upcast_ref())
            .iter()
            .filter(|l| *l == t)
            .count()
    };
    assert!(
        spin_until(5, || count("800 MiB") == 2),
        "{}",
        count("800 MiB")
    );
    // Sparklines beside the figures: drawn for a running qube, empty for a halted one.
    let view = f.controller.model().table.view.clone();
    let spark = |vm: &str, col: Column| {
        qubes_qube_manager::table::cell_of(&view, vm, col)
            .and_then(|c| find_widget::<gtk::DrawingArea>(&c))
    };
    assert!(
        spin_until(10, || spark("work", Column::Cpu)
            .is_some_and(|a| drawn_pixels(a.upcast_ref()) > 20)
            && spark("work", Column::MemUsed)
                .is_some_and(|a| drawn_pixels(a.upcast_ref()) > 20)),
        "work's sparklines are drawn"
    );
    assert_eq!(
        spark("vault", Column::Cpu).map(|a| drawn_pixels(a.upcast_ref())),
        Some(0),
        "a halted qube has no line"
    );
    f.call("admin.vm.Kill", "sys-usb", "", b"");
    assert!(
        spin_until(10, || cell("sys-usb", Column::MemUsed).is_empty()),
        "figures go when the qube stops"
    );
    assert!(spin_until(5, || spark("sys-usb", Column::Cpu)
        .is_some_and(|a| drawn_pixels(a.upcast_ref()) == 0)));
    // The usage popover: Ctrl+U (the qube.usage action) on the selected qube, its figures now
    // and at their highest, following the statistics.
    select_and_wait(&f, "work");
    let window: gtk::Widget = f.controller.widget().clone().upcast();
    WidgetExt::activate_action(&window, "qube.usage", None).expect("qube.usage");
    let usage = || {
        f.controller
            .model()
            .usage
            .as_ref()
            .filter(|u| u.is_open() && u.vm == "work")
            .map(|u| u.texts())
    };
    assert!(spin_until(5, || usage().is_some()));
    let (cpu, mem) = usage().unwrap();
    assert!(
        cpu.starts_with("CPU: ") && cpu.contains(" % now, at most "),
        "{cpu}"
    );
    assert_eq!(mem, "Memory: 800 MiB now, at most 800 MiB");
    let graphs: Vec<gtk::DrawingArea> = gtk::Window::list_toplevels()
        .iter()
        .chain(std::iter::once(&window))
        .filter_map(|w| {
            find_where(w, &|w| {
                w.downcast_ref::<gtk::DrawingArea>()
                    .is_some_and(|a| a.has_css_class("usage-graph") && a.is_mapped())
            })
        })
        .filter_map(|w| w.downcast().ok())
        .collect();
    assert!(!graphs.is_empty(), "the popover's graphs are on screen");
    assert!(spin_until(5, || drawn_pixels(graphs[0].upcast_ref()) > 50));
}

/// How many pixels of what GTK renders for `w` are not transparent.
pub(crate) fn drawn_pixels(w: &gtk::Widget) -> usize {
    let (width, height) = (w.width(), w.height());
    if width == 0 || height == 0 {
        return 0;
    }
    let paintable = gtk::WidgetPaintable::new(Some(w));
    let snap = gtk::Snapshot::new();
    paintable.snapshot(&snap, width as f64, height as f64);
    let Some(node) = snap.to_node() else {
        return 0;
    };
    let Some(renderer) = w.native().and_then(|n| n.renderer()) else {
        return 0;
    };
    let texture = renderer.render_texture(&node, None);
    let stride = texture.width() as usize * 4;
    let mut data = vec![0u8; stride * texture.height() as usize];
    texture.download(&mut data, stride);
    // Cairo ARGB32 in memory order B, G, R, A on little-endian machines; alpha is byte 3.
    data.chunks(4).filter(|p| p[3] > 0).count()
}

/// Actions follow the rows: a qube removed elsewhere, or hidden by a search, is no longer
/// what Remove, Clone or Kill act on.
pub(crate) fn selection_follows_rows_that_go_or_hide() {
    let f = Fixture::start();
    f.call(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        b"name=test-qube label=red",
    );
    assert!(spin_until(10, || f
        .controller
        .model()
        .row_names()
        .contains(&"test-qube".into())));
    select_and_wait(&f, "test-qube");
    assert!(spin_until(5, || button(&f, "Remove").is_sensitive()));
    f.controller.emit(Msg::Remove);
    assert!(spin_until(5, || f.controller.model().remove.is_some()));
    let asked = f.controller.model().remove_dialog().unwrap();
    assert!(asked.is_visible());
    // Removed by another client: the question goes, nothing stays selected, and Remove has
    // nothing to remove.
    f.call("admin.vm.Remove", "test-qube", "", b"");
    assert!(
        spin_until(10, || !asked.is_visible()
            && f.controller.model().remove.is_none()
            && f.controller.model().selected().is_empty()
            && !button(&f, "Remove").is_sensitive()
            && !button(&f, "Settings").is_sensitive()),
        "{:?}",
        f.controller.model().selected()
    );
    f.controller.emit(Msg::Remove);
    f.controller.emit(Msg::Clone);
    // Both went through the window's queue before this one.
    f.controller.emit(Msg::Search(String::new()));
    assert!(spin_until(5, || f
        .controller
        .model()
        .status()
        .contains("11")));
    assert!(f.controller.model().remove.is_none() && f.controller.model().clone.is_none());
    // A search hiding the selected running qube: Kill no longer applies to it.
    select_and_wait(&f, "work");
    assert!(spin_until(5, || button(&f, "Kill").is_sensitive()));
    f.controller.emit(Msg::Search("vault".into()));
    assert!(
        spin_until(5, || visible_names(&f) == ["vault"]
            && f.controller.model().selected().is_empty()
            && !button(&f, "Kill").is_sensitive()),
        "{:?} {:?}",
        visible_names(&f),
        f.controller.model().selected()
    );
    assert!(f.controller.model().targets(Action::Kill).is_empty());
    f.controller.emit(Msg::Search(String::new()));
    assert!(spin_until(5, || visible_names(&f).len() == 11));
}

/// The status line counts what is shown, an empty search says so, a new qube lands in its
/// sorted place, and columns keep their widths (their longest text) while rows are filtered.
pub(crate) fn table_counts_empty_state_sort_and_widths() {
    let f = Fixture::start();
    let m = || f.controller.model();
    assert!(
        m().status().starts_with("11 qubes \u{2014} "),
        "{}",
        m().status()
    );
    let view = m().table.view.clone();
    gtk::test_widget_wait_for_draw(&view);
    let widths = |vm: &str| -> Vec<i32> { row_labels(&f, vm).iter().map(|l| l.width()).collect() };
    let before = widths("work");
    assert!(before.len() >= 8, "{before:?}");
    f.controller.emit(Msg::Search("sys-".into()));
    assert!(
        spin_until(5, || m().status().starts_with("3 of 11 qubes \u{2014} ")),
        "{}",
        m().status()
    );
    f.controller.emit(Msg::Search("work".into()));
    assert!(spin_until(5, || visible_names(&f) == ["work"]));
    gtk::test_widget_wait_for_draw(&view);
    assert!(
        spin_until(5, || widths("work") == before),
        "{before:?} then {:?}",
        widths("work")
    );
    // No text is cut short to make room, however narrow the window: the table scrolls.
    f.controller.widget().set_default_size(640, 500);
    f.controller.emit(Msg::Search(String::new()));
    assert!(spin_until(5, || visible_names(&f).len() == 11));
    gtk::test_widget_wait_for_draw(&view);
    let cut: Vec<String> = ["sys-firewall", "untrusted", "work"]
        .iter()
        .flat_map(|vm| row_labels(&f, vm))
        .filter(|l| l.layout().is_ellipsized())
        .map(|l| l.label().to_string())
        .collect();
    assert!(cut.is_empty(), "cut short: {cut:?}");
    // A search that finds nothing says so.
    f.controller.emit(Msg::Search("zzz".into()));
    let empty_page = || {
        find_widget::<relm4::adw::StatusPage>(f.controller.widget().upcast_ref())
            .filter(|p| p.is_mapped())
            .map(|p| p.title().to_string())
    };
    assert!(
        spin_until(5, || empty_page().as_deref()
            == Some("No qubes match \u{201c}zzz\u{201d}")),
        "{:?}",
        empty_page()
    );
    assert!(
        m().status().starts_with("0 of 11 qubes"),
        "{}",
        m().status()
    );
    f.controller.emit(Msg::Search(String::new()));
    assert!(spin_until(5, || empty_page().is_none()
        && visible_names(&f).len() == 11));
    // A new qube takes its place in the sorted table (by name at first).
    f.call(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        b"name=aaa-new label=red",
    );
    let first = || {
        m().table
            .get_visible(0)
            .map(|r| r.borrow().name.clone())
            .unwrap_or_default()
    };
    assert!(spin_until(10, || first() == "aaa-new"), "{}", first());
    assert!(m().status().starts_with("12 qubes"), "{}", m().status());
}

pub(crate) fn added_and_removed_qubes() {
    let f = Fixture::start();
    f.call(
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        b"name=fresh label=orange",
    );
    assert!(spin_until(10, || f
        .controller
        .model()
        .row_names()
        .contains(&"fresh".to_string())));
    assert!(spin_until(5, || f.shows("fresh")));
    f.call("admin.vm.Remove", "fresh", "", b"");
    assert!(spin_until(10, || !f
        .controller
        .model()
        .row_names()
        .contains(&"fresh".to_string())));
}

pub(crate) fn search_filters_rows() {
    let f = Fixture::start();
    f.controller.emit(Msg::Search("sys-".into()));
    let visible = || {
        f.controller
            .model()
            .table
            .view
            .model()
            .map(|m| m.n_items())
            .unwrap_or(0)
    };
    assert!(
        spin_until(5, || visible() == 3),
        "sys-net, sys-firewall, sys-usb: {}",
        visible()
    );
    f.controller.emit(Msg::Search("templatevm".into()));
    assert!(spin_until(5, || visible() == 2));
    // Typing in the field and pressing Esc (the entry's stop-search signal) clears it.
    let entry: gtk::SearchEntry =
        find_widget(f.controller.widget().upcast_ref()).expect("search field");
    entry.set_text("vault");
    assert!(spin_until(5, || visible() == 1));
    entry.emit_by_name::<()>("stop-search", &[]);
    assert!(spin_until(5, || visible() == 11 && entry.text().is_empty()));
    // Tags: a tag set through another client shows in the Tags column, and search finds it.
    f.call("admin.vm.tag.Set", "work", "audit", b"");
    f.call("admin.vm.tag.Set", "vault", "audit", b"");
    let tags = |vm: &str| {
        f.controller
            .model()
            .cell(vm, Column::Tags)
            .unwrap_or_default()
    };
    assert!(
        spin_until(5, || tags("vault").split(", ").any(|t| t == "audit")),
        "{}",
        tags("vault")
    );
    entry.set_text("audit");
    assert!(spin_until(5, || visible() == 2));
    f.call("admin.vm.tag.Remove", "vault", "audit", b"");
    assert!(
        spin_until(5, || visible() == 1),
        "a removed tag no longer matches"
    );
    assert!(!tags("vault").contains("audit"));
    entry.emit_by_name::<()>("stop-search", &[]);
}

pub(crate) fn show_selector_filters_rows() {
    let f = Fixture::start();
    let selector: gtk::DropDown =
        find_widget(f.controller.widget().upcast_ref()).expect("the Show selector");
    let choose = |label: &str| {
        let model = selector.model().expect("choices");
        let pos = (0..model.n_items())
            .find(|i| {
                model
                    .item(*i)
                    .and_downcast::<gtk::StringObject>()
                    .is_some_and(|s| s.string() == label)
            })
            .unwrap_or_else(|| panic!("no choice {label}"));
        selector.set_selected(pos);
    };
    choose("Templates");
    assert!(spin_until(5, || visible_names(&f) == ["debian-12-xfce", "fedora-41"]));
    choose("Running");
    let running = ["dom0", "sys-firewall", "sys-net", "sys-usb", "work"];
    assert!(
        spin_until(5, || visible_names(&f) == running),
        "{:?}",
        visible_names(&f)
    );
    // A qube started elsewhere joins the list; one killed leaves it.
    f.call("admin.vm.Start", "vault", "", b"");
    f.call("admin.vm.Kill", "sys-usb", "", b"");
    let after = ["dom0", "sys-firewall", "sys-net", "vault", "work"];
    assert!(
        spin_until(10, || visible_names(&f) == after),
        "{:?}",
        visible_names(&f)
    );
    choose("Network qubes");
    assert!(
        spin_until(5, || visible_names(&f) == ["sys-firewall", "sys-net"]),
        "{:?}",
        visible_names(&f)
    );
    // A property change moves a qube between choices.
    f.call(
        "admin.vm.property.Set",
        "vault",
        "provides_network",
        b"True",
    );
    assert!(
        spin_until(10, || visible_names(&f)
            == ["sys-firewall", "sys-net", "vault"]),
        "{:?}",
        visible_names(&f)
    );
    choose("My qubes");
    assert!(
        spin_until(5, || visible_names(&f)
            == ["personal", "sys-usb", "untrusted", "work"]),
        "{:?}",
        visible_names(&f)
    );
    // A service qube is not one of "my qubes".
    f.call("admin.vm.feature.Set", "sys-usb", "servicevm", b"1");
    assert!(
        spin_until(10, || visible_names(&f)
            == ["personal", "untrusted", "work"]),
        "{:?}",
        visible_names(&f)
    );
    choose("All qubes");
    assert!(spin_until(5, || visible_names(&f).len() == 11));
    // Internal qubes are hidden unless asked for.
    f.call("admin.vm.feature.Set", "personal", "internal", b"1");
    assert!(
        spin_until(10, || visible_names(&f).len() == 10
            && !visible_names(&f).contains(&"personal".to_string())),
        "{:?}",
        visible_names(&f)
    );
    let window: gtk::Widget = f.controller.widget().clone().upcast();
    WidgetExt::activate_action(&window, "qube.show-internal", None).expect("show-internal");
    assert!(spin_until(5, || visible_names(&f).len() == 11));
    WidgetExt::activate_action(&window, "qube.show-internal", None).expect("show-internal");
    assert!(spin_until(5, || visible_names(&f).len() == 10));
    f.call("admin.vm.feature.Remove", "personal", "internal", b"");
    assert!(spin_until(10, || visible_names(&f).len() == 11));
}

/// On a daemon as slow as the reference, the rows come at once from `admin.vm.List`, the rows
/// on screen are filled first, and after a scroll the rows scrolled to come next.
pub(crate) fn rows_come_at_once_and_the_rows_on_screen_fill_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::system::prepare_n(dir.path(), 150, 10);
    let core = std::sync::Arc::new(qubesd::Embedded::start(&config).expect("core"));
    // 2 ms a call, one call at a time.
    let slow = crate::paced::Paced::new(core, |_| Duration::from_millis(2));
    let client = qubes_api::Client::new(std::sync::Arc::new(slow));
    let controller = app::builder(
        client,
        qubes_qube_manager::view_state::ViewState::open(&dir.path().join("view.ini")),
    );
    controller.widget().present();
    let m = || controller.model();
    assert!(spin_until(20, || m().is_listed()));
    assert_eq!(m().row_names().len(), 150, "every row at once");
    assert!(!m().is_loaded(), "before the properties");
    assert!(
        m().status().starts_with("Reading qubes: "),
        "{}",
        m().status()
    );
    // The first rows (the table's order: by name) are filled first.
    let top: Vec<String> = (0..40)
        .filter_map(|i| m().table.get_visible(i).map(|r| r.borrow().name.clone()))
        .collect();
    assert!(spin_until(20, || m().filled_first.len() >= 20));
    let early: Vec<String> = m().filled_first[..20].to_vec();
    assert!(
        early.iter().all(|q| top.contains(q)),
        "{early:?} not all among {top:?}"
    );
    // Scrolled to the end: the rows there come next (after the few reads under way).
    let view = m().table.view.clone();
    gtk::test_widget_wait_for_draw(&view);
    let adj = controller.widget().parts().scroller.vadjustment();
    assert!(spin_until(5, || adj.upper() > adj.page_size() && adj.page_size() > 0.0));
    adj.set_value(adj.upper() - adj.page_size());
    idle();
    let at_end = m().rows_on_screen();
    assert!(at_end.contains(&"qube0148".to_string()), "{at_end:?}");
    let seen = m().filled_first.len();
    // Every row scrolled to is read before most of the others: only the reads under way or
    // waiting to be handed over at the scroll (a few workers' worth) come between. Without
    // the preference they would come after the hundred rows in between.
    let filled = |q: &String| m().filled_first.contains(q);
    assert!(spin_until(30, || at_end.iter().all(filled)));
    let last = at_end
        .iter()
        .filter_map(|q| m().filled_first.iter().position(|f| f == q))
        .max()
        .unwrap_or(0);
    let between: Vec<String> = m().filled_first[seen.min(last)..last]
        .iter()
        .filter(|q| !at_end.contains(q))
        .cloned()
        .collect();
    assert!(
        between.len() <= 16,
        "{} other rows read before those on screen: {between:?}",
        between.len()
    );
    assert!(spin_until(60, || m().is_loaded()), "{}", m().status());
    controller.widget().close();
}
