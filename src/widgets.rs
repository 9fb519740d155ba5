//! Widgets the pages and dialogs are built from: page and row boxes, a list with an Add bar,
//! a spin button that keeps what was typed, Escape to close, and work off the main thread.
//! They know nothing of qubes or of the daemon.

use relm4::gtk;
use relm4::gtk::prelude::*;

use crate::i18n::tr;

/// A page of the dialog: a vertical box with the pages' margins.
pub fn page_box(spacing: i32) -> gtk::Box {
    let b = gtk::Box::new(gtk::Orientation::Vertical, spacing);
    b.set_margin_start(16);
    b.set_margin_end(16);
    b.set_margin_top(12);
    b.set_margin_bottom(12);
    b
}

/// One row of a list on a page (a feature, a firewall rule).
pub fn row_box(spacing: i32) -> gtk::Box {
    let b = gtk::Box::new(gtk::Orientation::Horizontal, spacing);
    b.set_margin_start(8);
    b.set_margin_end(8);
    b.set_margin_top(4);
    b.set_margin_bottom(4);
    b
}

/// Puts `list` (scrolling) on a page with a bar under it: `entries` and an Add button,
/// returned for [`connect_add`].
pub fn list_with_add_bar(
    page: &gtk::Box,
    list: &gtk::ListBox,
    entries: &[&gtk::Entry],
) -> gtk::Button {
    let add = gtk::Button::with_label(&tr("Add"));
    let bar = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    for e in entries {
        bar.append(*e);
    }
    bar.append(&add);
    let scroller = gtk::ScrolledWindow::builder()
        .child(list)
        .vexpand(true)
        .build();
    page.append(&scroller);
    page.append(&bar);
    add
}

/// Runs `on_add` when the Add button is pressed or Enter is typed in `entry`.
pub fn connect_add(add: &gtk::Button, entry: &gtk::Entry, on_add: impl Fn() + 'static) {
    let on_add = std::rc::Rc::new(on_add);
    let again = on_add.clone();
    add.connect_clicked(move |_| again());
    entry.connect_activate(move |_| on_add());
}

/// Makes `spin` edit a whole number from `min` to `max`. What the user types stays as typed
/// while it is not a number in range (`keep_text`), so the error next to it refers to what is
/// seen.
pub fn number_editor(
    spin: &gtk::SpinButton,
    min: i64,
    max: i64,
    title: &str,
    keep_text: &std::rc::Rc<std::cell::Cell<bool>>,
) {
    spin.set_adjustment(&gtk::Adjustment::new(
        min as f64, min as f64, max as f64, 1.0, 10.0, 0.0,
    ));
    spin.set_digits(0);
    spin.set_numeric(false);
    spin.set_update_policy(gtk::SpinButtonUpdatePolicy::IfValid);
    spin.set_tooltip_text(Some(title));
    crate::a11y::set_name(spin, title);
    {
        let keep = keep_text.clone();
        spin.connect_changed(move |s| {
            let adj = s.adjustment();
            let valid = s
                .text()
                .trim()
                .parse::<f64>()
                .is_ok_and(|v| v.fract() == 0.0 && v >= adj.lower() && v <= adj.upper());
            keep.set(!valid);
        });
    }
    let keep = keep_text.clone();
    spin.connect_output(move |_| {
        if keep.get() {
            gtk::glib::Propagation::Stop
        } else {
            gtk::glib::Propagation::Proceed
        }
    });
}

/// A list item factory showing an icon before each string of a string list (a combo row's
/// choices): `icon` gives the picture for a choice, if it has one.
pub fn icon_text_factory(
    icon: impl Fn(&str) -> Option<gtk::gdk::Paintable> + 'static,
) -> gtk::SignalListItemFactory {
    let factory = gtk::SignalListItemFactory::new();
    factory.connect_setup(|_, item| {
        let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
            return;
        };
        let row = gtk::Box::new(gtk::Orientation::Horizontal, 8);
        let image = gtk::Image::new();
        image.set_pixel_size(16);
        row.append(&image);
        row.append(&gtk::Label::new(None));
        item.set_child(Some(&row));
    });
    factory.connect_bind(move |_, item| {
        let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
            return;
        };
        let text = item
            .item()
            .and_downcast::<gtk::StringObject>()
            .map(|s| s.string().to_string())
            .unwrap_or_default();
        let Some(row) = item.child() else { return };
        if let Some(image) = row.first_child().and_downcast::<gtk::Image>() {
            image.set_paintable(icon(&text).as_ref());
        }
        if let Some(label) = row.last_child().and_downcast::<gtk::Label>() {
            label.set_text(&text);
        }
    });
    factory
}

/// Runs `work` on a thread and `done` with its result on the main thread.
pub fn background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    done: impl FnOnce(T) + 'static,
) {
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send_blocking(work());
    });
    gtk::glib::spawn_future_local(async move {
        if let Ok(v) = rx.recv().await {
            done(v);
        }
    });
}

/// Escape closes `window`, as in a dialog.
pub fn close_on_escape(window: &(impl IsA<gtk::Window> + IsA<gtk::Widget>)) {
    let keys = gtk::EventControllerKey::new();
    let w = window.clone().upcast::<gtk::Window>();
    keys.connect_key_pressed(move |_, key, _, _| {
        if key == gtk::gdk::Key::Escape {
            w.close();
            gtk::glib::Propagation::Stop
        } else {
            gtk::glib::Propagation::Proceed
        }
    });
    window.add_controller(keys);
}

/// A list's empty state: an icon, what is (not) there and what to do, shown by the list in
/// place of rows while none is shown.
pub fn empty_state(list: &gtk::ListBox, icon: &str, title: &str, description: &str) {
    let page = relm4::adw::StatusPage::builder()
        .icon_name(icon)
        .title(title)
        .description(description)
        .build();
    page.add_css_class("compact");
    list.set_placeholder(Some(&page));
}
