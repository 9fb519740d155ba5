//! What every GUI test uses: the main loop, the window on a demo core (`Fixture`), finding
//! widgets, and the settings dialog and confirmation helpers several tests share.

pub(crate) use std::time::Duration;

pub(crate) use crate::gtk_tests::{find_where, label_texts, spin_until};
pub(crate) use qubes_api::Transport;
pub(crate) use qubes_qube_manager::app::{self, Action, App, Msg};
pub(crate) use qubes_qube_manager::model::Column;
pub(crate) use relm4::adw::prelude::*;
pub(crate) use relm4::gtk;
pub(crate) use relm4::{ComponentController, Controller};

/// Runs the main loop until it has nothing left to do (every message sent so far handled).
pub(crate) fn idle() {
    let ctx = gtk::glib::MainContext::default();
    while ctx.pending() {
        ctx.iteration(false);
    }
}

pub(crate) struct Fixture {
    pub(crate) controller: Controller<App>,
    pub(crate) core: std::sync::Arc<qubesd::Embedded>,
    pub(crate) _config: Option<tempfile::TempDir>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.close_all();
    }
}

impl Fixture {
    /// A window on a fresh demo core that remembers nothing from earlier tests.
    pub(crate) fn start() -> Fixture {
        let config = tempfile::tempdir().expect("config dir");
        let mut f = Fixture::start_with(&config.path().join("view.ini"));
        f._config = Some(config);
        f
    }

    /// A window keeping its view state in `view_file`.
    pub(crate) fn start_with(view_file: &std::path::Path) -> Fixture {
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
    pub(crate) fn close_all(&self) {
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

    pub(crate) fn call(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) {
        let r = self.core.call_raw(method, dest, arg, payload).unwrap();
        assert!(
            r.starts_with(b"0\0"),
            "{method}: {:?}",
            String::from_utf8_lossy(&r)
        );
    }

    pub(crate) fn shows(&self, text: &str) -> bool {
        label_texts(self.controller.widget().upcast_ref())
            .iter()
            .any(|t| t.contains(text))
    }
}

/// Waits until the window has handled every event the daemon sent so far: a tag set now is
/// the last of them, and events arrive in order.
pub(crate) fn events_caught_up(f: &Fixture, vm: &str) {
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
pub(crate) fn select_and_wait(f: &Fixture, vm: &str) {
    f.controller.model().select(vm);
    assert!(
        spin_until(5, || f.controller.model().selected() == [vm.to_string()]),
        "selecting {vm}: {:?}",
        f.controller.model().selected()
    );
}

/// Selects `vm`, opens its settings the way Enter does, and waits until they are loaded.
pub(crate) fn open_settings(f: &Fixture, vm: &str) {
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
pub(crate) fn apply_settings(f: &Fixture) {
    with_settings(f, |s| s.emit(qubes_qube_manager::settings::Msg::Apply));
    assert!(
        spin_until(10, || with_settings(f, |s| s.model().applied
            && s.model().settled())),
        "{:?}",
        with_settings(f, |s| s.model().errors.clone())
    );
}

/// Runs `op` on the open settings dialog; the borrow ends before the main loop runs again.
pub(crate) fn with_settings<R>(
    f: &Fixture,
    op: impl FnOnce(&relm4::Controller<qubes_qube_manager::settings::Settings>) -> R,
) -> R {
    op(f.controller
        .model()
        .settings
        .as_ref()
        .expect("settings open"))
}

/// The spin button of a number in the open settings dialog.
pub(crate) fn settings_number(f: &Fixture, prop: &str) -> gtk::SpinButton {
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

/// Presses a key in `window`, as its key controllers see it.
pub(crate) fn press_key(window: &gtk::Widget, key: gtk::gdk::Key) {
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

/// The choices a combo row offers.
pub(crate) fn combo_texts(d: &relm4::adw::ComboRow) -> Vec<String> {
    let m = d.model().unwrap();
    (0..m.n_items())
        .filter_map(|i| m.item(i).and_downcast::<gtk::StringObject>())
        .map(|s| s.string().to_string())
        .collect()
}

/// Clicks the button labelled `label` inside `w`, as a person does (a dialog's response
/// buttons close it, unlike `response()`).
pub(crate) fn click(w: &gtk::Widget, label: &str) {
    let button = find_where(w, &|w| {
        w.downcast_ref::<gtk::Button>()
            .is_some_and(|b| b.label().as_deref() == Some(label) && b.is_visible())
    })
    .and_then(|b| b.downcast::<gtk::Button>().ok())
    .unwrap_or_else(|| panic!("no {label} button in {:?}", label_texts(w)));
    button.emit_clicked();
}

/// Answers the "kill?" question (headed `heading`) with Kill, as a person does.
pub(crate) fn confirm_kill(f: &Fixture, heading: &str) {
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
pub(crate) fn visible_dialogs(f: &Fixture) -> Vec<gtk::Window> {
    let main: gtk::Window = f.controller.widget().clone().upcast();
    gtk::Window::list_toplevels()
        .into_iter()
        .filter_map(|w| w.downcast::<gtk::Window>().ok())
        .filter(|w| w.transient_for().as_ref() == Some(&main) && w.is_visible())
        .collect()
}

/// The labels of `vm`'s row, in column order, as the table shows them now.
pub(crate) fn row_labels(f: &Fixture, vm: &str) -> Vec<gtk::Label> {
    row_widgets(f, vm)
}

/// The widgets of type `T` in `vm`'s row, in column order, as the table shows them now.
pub(crate) fn row_widgets<T: IsA<gtk::Widget>>(f: &Fixture, vm: &str) -> Vec<T> {
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
pub(crate) fn row_images(f: &Fixture, vm: &str) -> Vec<gtk::Image> {
    row_widgets(f, vm)
}

/// The state icon of `vm`'s row and its tooltip, as shown now.
pub(crate) fn state_icon(f: &Fixture, vm: &str) -> Option<(String, String)> {
    row_images(f, vm).into_iter().find_map(|i| {
        let name = i.icon_name()?.to_string();
        name.starts_with("qube-state-")
            .then(|| (name, i.tooltip_text().unwrap_or_default().to_string()))
    })
}

/// Names of the rows the table shows, sorted.
pub(crate) fn visible_names(f: &Fixture) -> Vec<String> {
    let table = &f.controller.model().table;
    let n = table.view.model().map(|m| m.n_items()).unwrap_or(0);
    let mut names: Vec<String> = (0..n)
        .filter_map(|i| table.get_visible(i).map(|r| r.borrow().name.clone()))
        .collect();
    names.sort();
    names
}

/// The first descendant of `w` of type `T`, depth first.
pub(crate) fn find_widget<T: IsA<gtk::Widget>>(w: &gtk::Widget) -> Option<T> {
    find_where(w, &|w| w.is::<T>()).and_then(|w| w.downcast::<T>().ok())
}

/// Every descendant of `w` (depth first) whose widget name is `name`.
pub(crate) fn find_named(w: &gtk::Widget, name: &str) -> Option<gtk::Widget> {
    find_where(w, &|w| w.widget_name() == name)
}

/// The header-bar button showing `label` (as text, or as the tooltip of an icon).
pub(crate) fn button(f: &Fixture, label: &str) -> gtk::Button {
    find_where(f.controller.widget().upcast_ref(), &|w| {
        w.downcast_ref::<gtk::Button>().is_some_and(|b| {
            b.label().as_deref() == Some(label) || b.tooltip_text().as_deref() == Some(label)
        })
    })
    .and_then(|w| w.downcast::<gtk::Button>().ok())
    .unwrap_or_else(|| panic!("no {label} button"))
}

/// Writes what GTK renders for `w` to a PNG; returns its size.
pub(crate) fn snapshot(w: &gtk::Widget, path: &std::path::Path) -> (i32, i32) {
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
