//! Optional columns, their markers, and the view state kept between runs.

use crate::support::*;

pub(crate) fn view_state_is_kept() {
    let dir = tempfile::tempdir().expect("config dir");
    let file = dir.path().join("qubes-os").join("view.ini");
    {
        let f = Fixture::start_with(&file);
        let selector: gtk::DropDown =
            find_widget(f.controller.widget().upcast_ref()).expect("the Show selector");
        selector.set_selected(3); // Templates
        let window: gtk::Widget = f.controller.widget().clone().upcast();
        WidgetExt::activate_action(&window, "qube.show-internal", None).expect("show-internal");
        f.controller.widget().set_default_size(1200, 700);
        // A column the user widened (dragging a header sets its fixed width).
        qubes_qube_manager::table::column_of(&f.controller.model().table, Column::Template)
            .unwrap()
            .set_fixed_width(240);
        f.controller.widget().close();
        // GSettings writes its key file a moment later.
        assert!(spin_until(10, || std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains("column-widths={'template': 240}"))));
    }
    let text = std::fs::read_to_string(&file).expect("the view file");
    for line in [
        "[qube-manager]",
        "show='templates'",
        "show-internal=true",
        "window-width=1200",
        "window-height=700",
        "column-widths={'template': 240}",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    let f = Fixture::start_with(&file);
    let selector: gtk::DropDown =
        find_widget(f.controller.widget().upcast_ref()).expect("the Show selector");
    assert_eq!(selector.selected(), 3);
    assert!(spin_until(5, || visible_names(&f) == ["debian-12-xfce", "fedora-41"]));
    assert_eq!(f.controller.widget().default_size(), (1200, 700));
    let template =
        qubes_qube_manager::table::column_of(&f.controller.model().table, Column::Template)
            .unwrap();
    assert_eq!(template.fixed_width(), 240);
    let name =
        qubes_qube_manager::table::column_of(&f.controller.model().table, Column::Name).unwrap();
    assert_eq!(name.fixed_width(), -1, "untouched columns size themselves");
    // A hand-edited file with a bad value falls back to the default instead of failing.
    drop(f);
    std::fs::write(&file, "[qube-manager]\nshow='bogus'\nwindow-width=-5\n").unwrap();
    let f = Fixture::start_with(&file);
    assert!(spin_until(5, || visible_names(&f).len() == 11));
    assert_eq!(f.controller.widget().default_size().0, 1100);
}

pub(crate) fn extra_columns_markers_and_column_visibility() {
    let dir = tempfile::tempdir().expect("config dir");
    let file = dir.path().join("view.ini");
    {
        let f = Fixture::start_with(&file);
        let m = || f.controller.model();
        // Disk usage comes from the volumes: the demo wrote 12 MiB into each template's root
        // and 1 + (length of the name mod 4) MiB into each private volume; an app qube's root
        // is a snapshot of its template's. dom0 has none.
        assert!(spin_until(10, || m()
            .cell("work", Column::DiskUsage)
            .as_deref()
            == Some("1.00 MiB")));
        assert_eq!(
            m().cell("fedora-41", Column::DiskUsage).as_deref(),
            Some("14.0 MiB")
        );
        assert_eq!(m().cell("dom0", Column::DiskUsage).as_deref(), Some("n/a"));
        let virt = String::from_utf8(
            f.core
                .call_raw("admin.vm.property.Get", "sys-net", "virt_mode", b"")
                .unwrap(),
        )
        .unwrap();
        let virt = virt.rsplit(' ').next().unwrap().to_string();
        assert!(["pvh", "hvm", "pv"].contains(&virt.as_str()));
        assert_eq!(m().cell("sys-net", Column::VirtMode), Some(virt));
        assert_eq!(
            m().cell("default-dvm", Column::IsDispvmTemplate).as_deref(),
            Some("yes")
        );
        assert_eq!(
            m().cell("work", Column::IsDispvmTemplate).as_deref(),
            Some("no")
        );
        // A blocked qube says so in its state; updates show on templates.
        f.call(
            "admin.vm.feature.Set",
            "vault",
            "prohibit-start",
            b"offline forever",
        );
        f.call(
            "admin.vm.feature.Set",
            "fedora-41",
            "updates-available",
            b"1",
        );
        assert!(spin_until(10, || m()
            .cell("vault", Column::State)
            .as_deref()
            == Some("Halted \u{b7} blocked")));
        assert!(spin_until(10, || m()
            .cell("fedora-41", Column::State)
            .as_deref()
            == Some("Halted \u{b7} updates available")));
        // As icons with tooltips too.
        assert!(spin_until(5, || state_icon(&f, "vault").is_some_and(
            |(i, t)| i == "qube-state-blocked-symbolic" && t.starts_with("Blocked: ")
        )));
        assert!(spin_until(5, || row_images(&f, "fedora-41").iter().any(
            |i| i.icon_name().as_deref() == Some("qube-marker-updates-symbolic")
                && i.tooltip_text().as_deref() == Some("Updates are available.")
        )));
        // IP is hidden by default; the View ▸ Columns item shows it and is remembered.
        let ip = qubes_qube_manager::table::column_of(&m().table, Column::Ip).unwrap();
        assert!(!ip.is_visible());
        let window: gtk::Widget = f.controller.widget().clone().upcast();
        WidgetExt::activate_action(&window, "qube.column-ip", None).expect("column action");
        assert!(spin_until(5, || ip.is_visible()));
        WidgetExt::activate_action(&window, "qube.column-disk", None).expect("column action");
        let disk = qubes_qube_manager::table::column_of(&m().table, Column::DiskUsage).unwrap();
        assert!(spin_until(5, || !disk.is_visible()));
        assert_eq!(
            m().cell("sys-net", Column::Ip).as_deref(),
            Some("10.137.0.3")
        );
        // Sorting by a header is remembered (found from the sorted rows).
        let template = qubes_qube_manager::table::column_of(&m().table, Column::Template).unwrap();
        m().table
            .view
            .sort_by_column(Some(&template), gtk::SortType::Descending);
        assert!(spin_until(5, || std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains("sort='template:descending'"))));
    }
    let f = Fixture::start_with(&file);
    let table = &f.controller.model().table;
    let first = table.get_visible(0).unwrap().borrow().name.clone();
    let templates: Vec<String> = (0..11)
        .filter_map(|i| table.get_visible(i))
        .map(|r| r.borrow().text(Column::Template))
        .collect();
    let mut sorted = templates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        templates, sorted,
        "sorted by template, descending (first: {first})"
    );
    assert!(
        qubes_qube_manager::table::column_of(table, Column::Ip)
            .unwrap()
            .is_visible()
    );
    assert!(
        !qubes_qube_manager::table::column_of(table, Column::DiskUsage)
            .unwrap()
            .is_visible()
    );
}
