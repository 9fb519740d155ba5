//! GUI tests under Xvfb, on the embedded demo core: a real window, real events.
//! `harness = false`: GTK must run on the main thread. Prints `N passed, N failed`.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use qubes_api::Transport;
use qubes_qube_manager::app::{self, Action, App, Msg};
use qubes_qube_manager::model::Column;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::{ComponentController, Controller};

#[path = "../benches/support/paced.rs"]
mod paced;
#[path = "../benches/support/system.rs"]
mod system;

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

/// Runs the main loop until it has nothing left to do (every message sent so far handled).
fn idle() {
    let ctx = gtk::glib::MainContext::default();
    while ctx.pending() {
        ctx.iteration(false);
    }
}

/// Texts of every label currently in the widget tree under `w`.
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

struct Fixture {
    controller: Controller<App>,
    core: std::sync::Arc<qubesd::Embedded>,
    _config: Option<tempfile::TempDir>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.close_all();
    }
}

impl Fixture {
    /// A window on a fresh demo core that remembers nothing from earlier tests.
    fn start() -> Fixture {
        let config = tempfile::tempdir().expect("config dir");
        let mut f = Fixture::start_with(&config.path().join("view.ini"));
        f._config = Some(config);
        f
    }

    /// A window keeping its view state in `view_file`.
    fn start_with(view_file: &std::path::Path) -> Fixture {
        let (client, core) = app::demo_client().expect("demo core");
        let controller = app::builder(
            client,
            qubes_qube_manager::view_state::ViewState::open(view_file),
        );
        controller.widget().present();
        assert!(
            spin_until(20, || controller.model().is_loaded()),
            "table did not load"
        );
        Fixture {
            controller,
            core,
            _config: None,
        }
    }

    /// Closes the window and everything it opened, so no test sees another's windows.
    fn close_all(&self) {
        let main: gtk::Window = self.controller.widget().clone().upcast();
        for w in gtk::Window::list_toplevels() {
            if let Ok(w) = w.downcast::<gtk::Window>()
                && w != main
            {
                w.close();
            }
        }
        main.close();
    }

    fn call(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) {
        let r = self.core.call_raw(method, dest, arg, payload).unwrap();
        assert!(
            r.starts_with(b"0\0"),
            "{method}: {:?}",
            String::from_utf8_lossy(&r)
        );
    }

    fn shows(&self, text: &str) -> bool {
        label_texts(self.controller.widget().upcast_ref())
            .iter()
            .any(|t| t.contains(text))
    }
}

fn rows_for_every_qube() {
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

fn property_change_from_second_client_updates_cell() {
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

fn start_and_shutdown_flip_the_state() {
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

fn stats_fill_cpu_and_memory_columns() {
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
fn drawn_pixels(w: &gtk::Widget) -> usize {
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

fn toolbar_actions_follow_selection_and_report_failures() {
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

/// Waits until the window has handled every event the daemon sent so far: a tag set now is
/// the last of them, and events arrive in order.
fn events_caught_up(f: &Fixture, vm: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let tag = format!("caught-up-{}", N.fetch_add(1, Ordering::Relaxed));
    f.call("admin.vm.tag.Set", vm, &tag, b"");
    assert!(spin_until(10, || f
        .controller
        .model()
        .cell(vm, Column::Tags)
        .is_some_and(|t| t.split(", ").any(|x| x == tag))));
    f.call("admin.vm.tag.Remove", vm, &tag, b"");
}

/// Selects `vm` alone, as a click does, and waits until the window knows.
fn select_and_wait(f: &Fixture, vm: &str) {
    f.controller.model().select(vm);
    assert!(
        spin_until(5, || f.controller.model().selected() == [vm.to_string()]),
        "selecting {vm}: {:?}",
        f.controller.model().selected()
    );
}

/// Selects `vm`, opens its settings the way Enter does, and waits until they are loaded.
fn open_settings(f: &Fixture, vm: &str) {
    select_and_wait(f, vm);
    let before: Option<gtk::Window> = f
        .controller
        .model()
        .settings
        .as_ref()
        .map(|s| s.widget().clone().upcast());
    f.controller.emit(Msg::OpenSettings(None));
    assert!(spin_until(10, || f
        .controller
        .model()
        .settings
        .as_ref()
        .is_some_and(|s| Some(s.widget().clone().upcast()) != before
            && s.model().vm() == vm
            && s.model().settled())));
}

/// Presses Apply in the open settings dialog and waits until every change is applied.
fn apply_settings(f: &Fixture) {
    with_settings(f, |s| s.emit(qubes_qube_manager::settings::Msg::Apply));
    assert!(
        spin_until(10, || with_settings(f, |s| s.model().applied
            && s.model().settled())),
        "{:?}",
        with_settings(f, |s| s.model().errors.clone())
    );
}

/// Runs `op` on the open settings dialog; the borrow ends before the main loop runs again.
fn with_settings<R>(
    f: &Fixture,
    op: impl FnOnce(&relm4::Controller<qubes_qube_manager::settings::Settings>) -> R,
) -> R {
    op(f.controller
        .model()
        .settings
        .as_ref()
        .expect("settings open"))
}

/// `qubes-qube-manager --settings work` (the tray's "Settings"): the window and that qube's
/// settings.
fn settings_of_a_qube_open_at_start() {
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

fn settings_dialog_applies_and_shows_errors_by_field() {
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

/// The spin button of a number in the open settings dialog.
fn settings_number(f: &Fixture, prop: &str) -> gtk::SpinButton {
    with_settings(f, |s| {
        s.widgets()
            .editor(prop)
            .unwrap_or_else(|| panic!("no editor for {prop}"))
            .widget
            .clone()
            .downcast::<gtk::SpinButton>()
            .unwrap()
    })
}

/// The combo row of a choice in the open settings dialog, set to the entry showing `text`.
fn settings_choose(f: &Fixture, prop: &str, text: &str) {
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

/// Presses a key in `window`, as its key controllers see it.
fn press_key(window: &gtk::Widget, key: gtk::gdk::Key) {
    let controllers = window.observe_controllers();
    let handled = (0..controllers.n_items())
        .filter_map(|i| {
            controllers
                .item(i)
                .and_downcast::<gtk::EventControllerKey>()
        })
        .any(|c| {
            c.emit_by_name::<bool>(
                "key-pressed",
                &[&key, &0u32, &gtk::gdk::ModifierType::empty()],
            )
        });
    assert!(handled, "{key:?} was not handled");
}

/// An Apply is all or nothing, and closing with edits not applied asks.
fn settings_apply_all_or_nothing_and_close_asks() {
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

fn create_and_remove_dialogs() {
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

/// The choices a combo row offers.
fn combo_texts(d: &relm4::adw::ComboRow) -> Vec<String> {
    let m = d.model().unwrap();
    (0..m.n_items())
        .filter_map(|i| m.item(i).and_downcast::<gtk::StringObject>())
        .map(|s| s.string().to_string())
        .collect()
}

/// Clicks the button labelled `label` inside `w`, as a person does (a dialog's response
/// buttons close it, unlike `response()`).
fn click(w: &gtk::Widget, label: &str) {
    let button = find_where(w, &|w| {
        w.downcast_ref::<gtk::Button>()
            .is_some_and(|b| b.label().as_deref() == Some(label) && b.is_visible())
    })
    .and_then(|b| b.downcast::<gtk::Button>().ok())
    .unwrap_or_else(|| panic!("no {label} button in {:?}", label_texts(w)));
    button.emit_clicked();
}

/// Answers the "kill?" question (headed `heading`) with Kill, as a person does.
fn confirm_kill(f: &Fixture, heading: &str) {
    let asked = || {
        f.controller
            .model()
            .kill_question
            .clone()
            .filter(|d| d.is_visible() && d.heading().as_deref() == Some(heading))
    };
    assert!(
        spin_until(5, || asked().is_some()),
        "{:?}",
        f.controller
            .model()
            .kill_question
            .as_ref()
            .map(|d| d.heading())
    );
    let dialog = asked().unwrap();
    assert_eq!(dialog.default_response().as_deref(), Some("cancel"));
    click(dialog.upcast_ref(), "Kill");
}

/// Visible dialogs (message dialogs and other windows than the main one).
fn visible_dialogs(f: &Fixture) -> Vec<gtk::Window> {
    let main: gtk::Window = f.controller.widget().clone().upcast();
    gtk::Window::list_toplevels()
        .into_iter()
        .filter_map(|w| w.downcast::<gtk::Window>().ok())
        .filter(|w| w.transient_for().as_ref() == Some(&main) && w.is_visible())
        .collect()
}

/// A qube still in use cannot be removed: the dialog says by what and keeps Remove off. A
/// removal the daemon refuses all the same (a running qube) ends in a message that closes, and
/// leaves the main window usable.
fn failed_remove_can_be_closed() {
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

/// Actions follow the rows: a qube removed elsewhere, or hidden by a search, is no longer
/// what Remove, Clone or Kill act on.
fn selection_follows_rows_that_go_or_hide() {
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

/// The labels of `vm`'s row, in column order, as the table shows them now.
fn row_labels(f: &Fixture, vm: &str) -> Vec<gtk::Label> {
    row_widgets(f, vm)
}

/// The widgets of type `T` in `vm`'s row, in column order, as the table shows them now.
fn row_widgets<T: IsA<gtk::Widget>>(f: &Fixture, vm: &str) -> Vec<T> {
    let view: gtk::Widget = f.controller.model().table.view.clone().upcast();
    let Some(cell) = find_named(&view, &format!("qube-cell:{vm}")) else {
        return Vec::new();
    };
    // Up to the row (a child of the list inside the column view), then its widgets in order.
    let mut row = cell;
    while let Some(parent) = row.parent() {
        if parent.is::<gtk::ListView>() || parent.is::<gtk::ColumnView>() {
            break;
        }
        row = parent;
    }
    let mut out = Vec::new();
    let mut stack = vec![row];
    while let Some(w) = stack.pop() {
        if let Ok(t) = w.clone().downcast::<T>() {
            out.push(t);
        }
        let mut c = w.last_child();
        while let Some(x) = c {
            c = x.prev_sibling();
            stack.push(x);
        }
    }
    out
}

/// The images of `vm`'s row, in column order, as the table shows them now.
fn row_images(f: &Fixture, vm: &str) -> Vec<gtk::Image> {
    row_widgets(f, vm)
}

/// The state icon of `vm`'s row and its tooltip, as shown now.
fn state_icon(f: &Fixture, vm: &str) -> Option<(String, String)> {
    row_images(f, vm).into_iter().find_map(|i| {
        let name = i.icon_name()?.to_string();
        name.starts_with("qube-state-")
            .then(|| (name, i.tooltip_text().unwrap_or_default().to_string()))
    })
}

/// The status line counts what is shown, an empty search says so, a new qube lands in its
/// sorted place, and columns keep their widths (their longest text) while rows are filtered.
fn table_counts_empty_state_sort_and_widths() {
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

fn added_and_removed_qubes() {
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

fn search_filters_rows() {
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

/// Names of the rows the table shows, sorted.
fn visible_names(f: &Fixture) -> Vec<String> {
    let table = &f.controller.model().table;
    let n = table.view.model().map(|m| m.n_items()).unwrap_or(0);
    let mut names: Vec<String> = (0..n)
        .filter_map(|i| table.get_visible(i).map(|r| r.borrow().name.clone()))
        .collect();
    names.sort();
    names
}

/// The first descendant of `w` of type `T`, depth first.
fn find_widget<T: IsA<gtk::Widget>>(w: &gtk::Widget) -> Option<T> {
    find_where(w, &|w| w.is::<T>()).and_then(|w| w.downcast::<T>().ok())
}

/// The first descendant of `w` (itself included, depth first) that `pred` accepts.
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

fn show_selector_filters_rows() {
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

/// Every descendant of `w` (depth first) whose widget name is `name`.
fn find_named(w: &gtk::Widget, name: &str) -> Option<gtk::Widget> {
    find_where(w, &|w| w.widget_name() == name)
}

/// The header-bar button showing `label` (as text, or as the tooltip of an icon).
fn button(f: &Fixture, label: &str) -> gtk::Button {
    find_where(f.controller.widget().upcast_ref(), &|w| {
        w.downcast_ref::<gtk::Button>().is_some_and(|b| {
            b.label().as_deref() == Some(label) || b.tooltip_text().as_deref() == Some(label)
        })
    })
    .and_then(|w| w.downcast::<gtk::Button>().ok())
    .unwrap_or_else(|| panic!("no {label} button"))
}

fn menus_and_context_menu() {
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

fn view_state_is_kept() {
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

/// Writes what GTK renders for `w` to a PNG; returns its size.
fn snapshot(w: &gtk::Widget, path: &std::path::Path) -> (i32, i32) {
    // On screen with a size, and a frame drawn since (gtk::test_widget_wait_for_draw waits
    // without end for a surface that never draws).
    assert!(
        spin_until(10, || w.is_mapped() && w.width() > 0 && w.height() > 0),
        "{} is not on screen",
        path.display()
    );
    if let Some(clock) = w.frame_clock() {
        let frame = clock.frame_counter();
        clock.request_phase(gtk::gdk::FrameClockPhase::PAINT);
        spin_until(5, || clock.frame_counter() > frame);
    }
    // A window just resized has nothing to paint until it is laid out again.
    let paintable = gtk::WidgetPaintable::new(Some(w));
    let mut node = None;
    spin_until(10, || {
        let (width, height) = (w.width(), w.height());
        let snap = gtk::Snapshot::new();
        paintable.snapshot(&snap, width as f64, height as f64);
        node = snap.to_node();
        node.is_some()
    });
    let node = node.unwrap_or_else(|| panic!("{}: nothing drawn", path.display()));
    let renderer = w.native().and_then(|n| n.renderer()).expect("a renderer");
    let texture = renderer.render_texture(&node, None);
    texture.save_to_png(path).expect("the PNG written");
    (texture.width(), texture.height())
}

/// Pictures of the main window (with its sparklines), a qube's settings, the create dialog and
/// the usage popover, for the README and the metainfo: `tools/screenshots` runs this with
/// `QUBES_MANAGER_SCREENSHOTS=data/screenshots` (and waits for a minute of statistics); here
/// they go to a temporary directory.
fn screenshots_of_the_main_windows() {
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
fn german_ui_is_german() {
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
const GERMAN_CHILD: &str = "QUBES_GUI_TEST_GERMAN";

/// What the German process checks: code strings and `.ui` strings are German.
fn german_checks() {
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

fn extra_columns_markers_and_column_visibility() {
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

fn several_qubes_change_network_together() {
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

fn clone_copies_settings_and_data() {
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

fn global_settings_and_services() {
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

fn shutdown_timeout_offers_kill_or_wait() {
    let f = Fixture::start();
    let state = || f.controller.model().cell("work", Column::State);
    assert_eq!(state().as_deref(), Some("Running"));
    // What the window does when a qube outlives its shutdown_timeout.
    f.controller.emit(Msg::ShutdownTimedOut("work".into()));
    assert!(spin_until(5, || f.controller.model().timed_out.is_some()));
    let dialog = f.controller.model().timed_out.clone().unwrap();
    assert_eq!(dialog.heading().as_deref(), Some("work is still running"));
    assert_eq!(dialog.default_response().as_deref(), Some("wait"));
    dialog.response("kill");
    assert!(spin_until(10, || state().as_deref() == Some("Halted")));
}

/// The firewall page: rules edited field by field (an invalid field says so at its row), in
/// words on the page, sent as the daemon's lines; full access for a while goes first with an
/// expiry; a removed rule comes back from its toast; a rule the daemon refuses is said.
fn firewall_page_limits_connections() {
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

fn devices_page_assigns_pci_devices() {
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

/// The embedded core presented as a real system, so that local qube tools are offered.
struct AsRealSystem(std::sync::Arc<qubesd::Embedded>);

impl Transport for AsRealSystem {
    fn call_raw(
        &self,
        method: &str,
        dest: &str,
        arg: &str,
        payload: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        self.0.call_raw(method, dest, arg, payload)
    }
    fn open_stream(
        &self,
        method: &str,
        dest: &str,
    ) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.0.open_stream(method, dest)
    }
    fn describe(&self) -> String {
        "test".into()
    }
}

fn run_command_and_console_use_the_qube_tools() {
    // In the demo the tools would act on other qubes than the window shows: not offered.
    {
        let f = Fixture::start();
        select_and_wait(&f, "work");
        assert!(f.controller.model().tool("sh").is_none());
    }
    // On a real system they are, and get the qube and the command as arguments. The
    // programs here record their arguments (qvm-run itself needs a Qubes system).
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("args");
    for tool in ["qvm-run", "qvm-console-dispvm"] {
        let path = bin.path().join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho {tool} \"$@\" >> {}\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let old_path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.path().to_path_buf()];
    paths.extend(std::env::split_paths(&old_path));
    // SAFETY: the GUI tests run one at a time on the main thread; no other thread reads PATH
    // while it changes.
    unsafe { std::env::set_var("PATH", std::env::join_paths(paths).unwrap()) };
    let (_, core) = app::demo_client().expect("demo core");
    let client = qubes_api::Client::new(std::sync::Arc::new(AsRealSystem(core.clone())));
    let config = tempfile::tempdir().unwrap();
    let controller = app::builder(
        client,
        qubes_qube_manager::view_state::ViewState::open(&config.path().join("view.ini")),
    );
    controller.widget().present();
    assert!(spin_until(20, || controller.model().is_loaded()));
    controller.model().select("work");
    assert!(spin_until(5, || controller.model().selected() == ["work"]));
    let window: gtk::Widget = controller.widget().clone().upcast();
    WidgetExt::activate_action(&window, "qube.console", None).expect("qube.console");
    assert!(spin_until(10, || std::fs::read_to_string(&log)
        .is_ok_and(|l| l.contains("qvm-console-dispvm work\n"))));
    controller.emit(Msg::RunCommand);
    let asking = || {
        gtk::Window::list_toplevels()
            .into_iter()
            .filter_map(|w| w.downcast::<relm4::adw::MessageDialog>().ok())
            .find(|d| d.is_visible())
    };
    assert!(spin_until(5, || asking().is_some()));
    let dialog = asking().unwrap();
    let entry = dialog
        .extra_child()
        .unwrap()
        .downcast::<gtk::Entry>()
        .unwrap();
    entry.set_text("xterm -e top");
    dialog.response("run");
    assert!(spin_until(10, || std::fs::read_to_string(&log).is_ok_and(
        |l| l.contains("qvm-run --autostart --quiet work xterm -e top\n")
    )));
    // SAFETY: as above: the GUI tests run one at a time on the main thread; no other thread
    // reads PATH while it is put back.
    unsafe { std::env::set_var("PATH", old_path) };
    controller.widget().close();
}

fn shutting_down_a_network_qube_offers_its_users() {
    let f = Fixture::start();
    let state = |vm: &str| f.controller.model().cell(vm, Column::State);
    let window: gtk::Widget = f.controller.widget().clone().upcast();
    // In the demo work runs behind sys-firewall, which runs behind sys-net: shutting down
    // sys-net offers both, in the order the daemon accepts.
    assert_eq!(state("sys-firewall").as_deref(), Some("Running"));
    select_and_wait(&f, "sys-net");
    WidgetExt::activate_action(&window, "qube.shutdown", None).expect("qube.shutdown");
    assert!(spin_until(5, || f
        .controller
        .model()
        .shutdown_users
        .is_some()));
    let dialog = f.controller.model().shutdown_users.clone().unwrap();
    assert!(
        dialog.body().ends_with("\nwork, sys-firewall"),
        "{}",
        dialog.body()
    );
    click(dialog.upcast_ref(), "Shut down all");
    assert!(
        spin_until(15, || ["work", "sys-firewall", "sys-net"]
            .iter()
            .all(|vm| state(vm).as_deref() == Some("Halted"))),
        "{:?} {:?} {:?} {:?}",
        state("work"),
        state("sys-firewall"),
        state("sys-net"),
        f.controller.model().last_error
    );
    assert_eq!(state("sys-usb").as_deref(), Some("Running"));
    assert!(f.controller.model().last_error.is_none());

    // Someone starts a qube behind sys-firewall between the question and the answer: the
    // daemon refuses, the message says why, and the row shows what the daemon holds.
    f.call("admin.vm.Start", "work", "", b"");
    assert!(spin_until(10, || state("work").as_deref()
        == Some("Running")
        && state("sys-firewall").as_deref() == Some("Running")));
    select_and_wait(&f, "sys-firewall");
    WidgetExt::activate_action(&window, "qube.shutdown", None).expect("qube.shutdown");
    assert!(spin_until(5, || f
        .controller
        .model()
        .shutdown_users
        .as_ref()
        .is_some_and(|d| d != &dialog)));
    let dialog = f.controller.model().shutdown_users.clone().unwrap();
    assert!(dialog.body().ends_with("\nwork"), "{}", dialog.body());
    f.call("admin.vm.Start", "personal", "", b"");
    click(dialog.upcast_ref(), "Shut down all");
    let refused = "These running qubes use its network; shut them down first: personal";
    assert!(
        spin_until(15, || f.controller.model().last_error.as_ref().is_some_and(
            |(h, m)| h == "Shutting down sys-firewall failed" && m == refused
        ) && state("work").as_deref() == Some("Halted")
            && state("sys-firewall").as_deref() == Some("Running")),
        "{:?} {:?}",
        f.controller.model().last_error,
        state("sys-firewall")
    );
    assert!(
        visible_dialogs(&f)
            .iter()
            .any(|w| label_texts(w.upcast_ref()).iter().any(|t| t == refused))
    );

    // A row left "Halting" by a shutdown that failed without a word (the daemon's
    // domain-pre-shutdown, then nothing) shows the daemon's state after the shutdown timeout.
    f.call(
        "admin.vm.property.Set",
        "sys-firewall",
        "shutdown_timeout",
        b"1",
    );
    assert!(spin_until(10, || f
        .controller
        .model()
        .shutdown_timeout("sys-firewall")
        == Some(1)));
    f.controller
        .emit(Msg::Change(qubes_qube_manager::model::Change::State {
            vm: "sys-firewall".into(),
            state: "Halting".into(),
        }));
    assert!(spin_until(5, || state("sys-firewall").as_deref() == Some("Halting")));
    assert!(
        spin_until(10, || state("sys-firewall").as_deref() == Some("Running")),
        "{:?}",
        state("sys-firewall")
    );
}

/// Every kind of qube the create dialog offers, with its options, as the reference creates
/// them: a named disposable on a disposable template, a template copied from a template, an
/// empty standalone qube (HVM, no kernel), a disposable template that provides network with
/// its initial memory.
fn create_every_kind_of_qube() {
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

/// The rows that stand for features (memory balancing, idle shutdown, prohibit-start with its
/// reason), the boot modes the template offers, and renaming as the reference does it.
fn settings_rows_for_features_boot_modes_and_rename() {
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

/// On a daemon as slow as the reference, the rows come at once from `admin.vm.List`, the rows
/// on screen are filled first, and after a scroll the rows scrolled to come next.
fn rows_come_at_once_and_the_rows_on_screen_fill_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = system::prepare_n(dir.path(), 150, 10);
    let core = std::sync::Arc::new(qubesd::Embedded::start(&config).expect("core"));
    // 2 ms a call, one call at a time.
    let slow = paced::Paced::new(core, |_| Duration::from_millis(2));
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

/// The primary menu holds the application's entries (the qube's own are in the context menu),
/// About and the keyboard shortcuts open, and a change of several qubes can be undone from its
/// toast.
fn primary_menu_about_shortcuts_and_undo() {
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

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "settings_of_a_qube_open_at_start",
            settings_of_a_qube_open_at_start,
        ),
        ("rows_for_every_qube", rows_for_every_qube),
        (
            "property_change_from_second_client_updates_cell",
            property_change_from_second_client_updates_cell,
        ),
        (
            "start_and_shutdown_flip_the_state",
            start_and_shutdown_flip_the_state,
        ),
        (
            "stats_fill_cpu_and_memory_columns",
            stats_fill_cpu_and_memory_columns,
        ),
        (
            "toolbar_actions_follow_selection_and_report_failures",
            toolbar_actions_follow_selection_and_report_failures,
        ),
        (
            "settings_dialog_applies_and_shows_errors_by_field",
            settings_dialog_applies_and_shows_errors_by_field,
        ),
        (
            "settings_apply_all_or_nothing_and_close_asks",
            settings_apply_all_or_nothing_and_close_asks,
        ),
        ("create_and_remove_dialogs", create_and_remove_dialogs),
        ("failed_remove_can_be_closed", failed_remove_can_be_closed),
        ("added_and_removed_qubes", added_and_removed_qubes),
        (
            "table_counts_empty_state_sort_and_widths",
            table_counts_empty_state_sort_and_widths,
        ),
        (
            "selection_follows_rows_that_go_or_hide",
            selection_follows_rows_that_go_or_hide,
        ),
        ("search_filters_rows", search_filters_rows),
        ("show_selector_filters_rows", show_selector_filters_rows),
        ("menus_and_context_menu", menus_and_context_menu),
        ("view_state_is_kept", view_state_is_kept),
        (
            "extra_columns_markers_and_column_visibility",
            extra_columns_markers_and_column_visibility,
        ),
        (
            "several_qubes_change_network_together",
            several_qubes_change_network_together,
        ),
        (
            "clone_copies_settings_and_data",
            clone_copies_settings_and_data,
        ),
        ("global_settings_and_services", global_settings_and_services),
        (
            "shutdown_timeout_offers_kill_or_wait",
            shutdown_timeout_offers_kill_or_wait,
        ),
        (
            "firewall_page_limits_connections",
            firewall_page_limits_connections,
        ),
        (
            "devices_page_assigns_pci_devices",
            devices_page_assigns_pci_devices,
        ),
        (
            "run_command_and_console_use_the_qube_tools",
            run_command_and_console_use_the_qube_tools,
        ),
        (
            "shutting_down_a_network_qube_offers_its_users",
            shutting_down_a_network_qube_offers_its_users,
        ),
        ("create_every_kind_of_qube", create_every_kind_of_qube),
        (
            "rows_come_at_once_and_the_rows_on_screen_fill_first",
            rows_come_at_once_and_the_rows_on_screen_fill_first,
        ),
        (
            "settings_rows_for_features_boot_modes_and_rename",
            settings_rows_for_features_boot_modes_and_rename,
        ),
        (
            "primary_menu_about_shortcuts_and_undo",
            primary_menu_about_shortcuts_and_undo,
        ),
        (
            "screenshots_of_the_main_windows",
            screenshots_of_the_main_windows,
        ),
        ("german_ui_is_german", german_ui_is_german),
    ];
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        println!("no display: GUI tests skipped (run under tools/headless)");
        println!("0 passed, 0 failed, {} skipped", tests.len());
        return;
    }
    qubes_qube_manager::renderer::prefer_software_rendering();
    qubes_qube_manager::i18n::init();
    gtk::init().expect("GTK");
    relm4::adw::init().expect("libadwaita");
    if std::env::var_os(GERMAN_CHILD).is_some() {
        german_checks();
        return;
    }
    // `cargo test --test gui -- NAME...` runs the tests whose names contain one of the words.
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
