//! The `policy.Ask` prompt: which qube asks (its name beside its label colour), for which
//! service and argument; the targets it may reach (label colours, the default preselected,
//! typing filters); Allow once or Deny. Escape, closing the window and the timeout deny.
//! Allow only becomes clickable a moment after the window gained focus (and again after every
//! change of focus), so a click or key meant for another window cannot answer it.
//!
//! Every qube-supplied string is set as plain text: nothing from a qube is read as markup.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use qrexec_policy::agent::{Answer, AskParams};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::gtk::{gdk, glib, pango};

use crate::a11y;
use crate::i18n::{noop_tr, tr};

/// How long Allow waits after the window gained focus (the reference waits one second).
pub const FOCUS_DELAY: Duration = Duration::from_secs(1);
/// How long a prompt waits for an answer before it denies.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The prompt's timing.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Delay before Allow can be used.
    pub focus_delay: Duration,
    /// Time until the prompt denies by itself.
    pub timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            focus_delay: FOCUS_DELAY,
            timeout: TIMEOUT,
        }
    }
}

/// The colour of a Qubes label, from the icon name dom0 sends (`appvm-red`, `dispvm-blue`).
pub fn label_of_icon(icon: &str) -> Option<(&'static str, [f64; 3])> {
    let label = icon.rsplit('-').next()?;
    let rgb = |hex: u32| {
        [
            f64::from((hex >> 16) & 0xff) / 255.0,
            f64::from((hex >> 8) & 0xff) / 255.0,
            f64::from(hex & 0xff) / 255.0,
        ]
    };
    Some(match label {
        "red" => (noop_tr("red"), rgb(0xcc0000)),
        "orange" => (noop_tr("orange"), rgb(0xf57900)),
        "yellow" => (noop_tr("yellow"), rgb(0xedd400)),
        "green" => (noop_tr("green"), rgb(0x73d216)),
        "gray" => (noop_tr("gray"), rgb(0x555753)),
        "blue" => (noop_tr("blue"), rgb(0x3465a4)),
        "purple" => (noop_tr("purple"), rgb(0x75507b)),
        "black" => (noop_tr("black"), rgb(0x000000)),
        _ => return None,
    })
}

/// A round swatch of a label's colour; hidden from assistive technologies (the text beside
/// it names the label).
fn swatch(icon: Option<&String>) -> gtk::DrawingArea {
    let area = gtk::DrawingArea::builder()
        .accessible_role(gtk::AccessibleRole::Presentation)
        .content_width(14)
        .content_height(14)
        .valign(gtk::Align::Center)
        .build();
    let colour = icon.and_then(|i| label_of_icon(i)).map(|(_, c)| c);
    area.set_draw_func(move |_, cr, w, h| {
        let Some([r, g, b]) = colour else { return };
        let radius = f64::from(w.min(h)) / 2.0;
        cr.arc(
            f64::from(w) / 2.0,
            f64::from(h) / 2.0,
            radius,
            0.0,
            std::f64::consts::TAU,
        );
        cr.set_source_rgb(r, g, b);
        let _ = cr.fill();
    });
    area
}

/// A label showing untrusted text literally.
fn plain(text: &str) -> gtk::Label {
    let l = gtk::Label::new(None);
    l.set_use_markup(false);
    l.set_text(text);
    l.set_xalign(0.0);
    l.set_wrap(true);
    l.set_wrap_mode(pango::WrapMode::WordChar);
    l
}

fn bold(label: &gtk::Label) {
    let attrs = pango::AttrList::new();
    attrs.insert(pango::AttrInt::new_weight(pango::Weight::Bold));
    label.set_attributes(Some(&attrs));
}

/// A button with an Alt mnemonic, named as it reads (GTK 4.8 reads a button's own mnemonic
/// label into its accessible name with the underscore).
fn mnemonic_button(text: &str) -> gtk::Button {
    let button = gtk::Button::new();
    let label = gtk::Label::with_mnemonic(text);
    label.set_mnemonic_widget(Some(&button));
    button.set_child(Some(&label));
    button
}

/// "name (blue label)" as screen readers say it.
fn spoken(name: &str, icon: Option<&String>) -> String {
    match icon.and_then(|i| label_of_icon(i)) {
        // Translators: a qube as a screen reader names it; {name} is the qube, {label} its
        // label colour (red, blue...).
        Some((label, _)) => tr("{name} ({label} label)")
            .replacen("{name}", name, 1)
            .replacen("{label}", &tr(label), 1),
        None => name.to_string(),
    }
}

/// Who hears the answer; taken by the first answer, so there is only one.
type Pending = Rc<RefCell<Option<Box<dyn FnOnce(Answer)>>>>;

/// Shows the prompt for `params`; `answered` is called exactly once.
pub fn show(
    app: &adw::Application,
    params: &AskParams,
    timing: &Timing,
    received: Instant,
    answered: impl FnOnce(Answer) + 'static,
) -> adw::Window {
    build(app, params, timing, received, answered, true)
}

/// Builds a prompt that is never shown and lays it out, at start: theme, fonts and widget
/// classes are loaded then, not while the first real request waits. Its own timeout closes it
/// soon after.
pub fn warm_up(app: &adw::Application) {
    let params = AskParams {
        source: "dom0".into(),
        service: "qubes.Prompt".into(),
        argument: "+".into(),
        targets: vec!["qube".into(), "@dispvm:qube".into()],
        default_target: "qube".into(),
        icons: [("qube".to_string(), "appvm-red".to_string())].into(),
    };
    let timing = Timing {
        focus_delay: FOCUS_DELAY,
        timeout: Duration::from_secs(2),
    };
    let window = build(app, &params, &timing, Instant::now(), |_| {}, false);
    WidgetExt::realize(&window);
    let _ = window.measure(gtk::Orientation::Vertical, 440);
}

fn build(
    app: &adw::Application,
    params: &AskParams,
    timing: &Timing,
    received: Instant,
    answered: impl FnOnce(Answer) + 'static,
    present: bool,
) -> adw::Window {
    let window = adw::Window::builder()
        .application(app)
        .title(tr("Allow a call between qubes?"))
        .default_width(440)
        .resizable(false)
        .build();
    let answered: Pending = Rc::new(RefCell::new(Some(Box::new(answered))));
    let finish = {
        let answered = answered.clone();
        let window = window.clone();
        move |answer: Answer| {
            let f = answered.borrow_mut().take();
            if let Some(f) = f {
                f(answer);
                window.close();
            }
        }
    };

    let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
    let header = adw::HeaderBar::builder()
        .show_end_title_buttons(false)
        .build();
    header.set_title_widget(Some(&adw::WindowTitle::new(
        &tr("Allow a call between qubes?"),
        "",
    )));
    content.append(&header);
    let body = gtk::Box::new(gtk::Orientation::Vertical, 12);
    body.set_margin_top(12);
    body.set_margin_bottom(18);
    body.set_margin_start(18);
    body.set_margin_end(18);
    content.append(&body);

    // Who asks: the colour and the name, never markup.
    let who = gtk::Box::new(gtk::Orientation::Horizontal, 8);
    let source_icon = params.icons.get(&params.source);
    who.append(&swatch(source_icon));
    let source = plain(&params.source);
    bold(&source);
    a11y::set_name(&source, &spoken(&params.source, source_icon));
    who.append(&source);
    body.append(&who);
    let rpc = if params.argument == "+" || params.argument.is_empty() {
        params.service.clone()
    } else {
        format!("{}{}", params.service, params.argument)
    };
    let wants = plain(&tr("wants to call the service"));
    body.append(&wants);
    let service = plain(&rpc);
    bold(&service);
    service.add_css_class("monospace");
    body.append(&service);

    // Where to: a filter and the list of targets.
    let target_label = gtk::Label::new(Some(&tr("Target")));
    target_label.set_xalign(0.0);
    body.append(&target_label);
    let filter = gtk::SearchEntry::new();
    filter.set_placeholder_text(Some(&tr("Type to filter")));
    a11y::set_name(&filter, &tr("Filter targets"));
    body.append(&filter);
    let list = gtk::ListBox::new();
    list.set_selection_mode(gtk::SelectionMode::Single);
    list.add_css_class("boxed-list");
    a11y::set_name(&list, &tr("Targets"));
    let mut rows = Vec::new();
    for t in &params.targets {
        let row = gtk::ListBoxRow::new();
        let line = gtk::Box::new(gtk::Orientation::Horizontal, 8);
        line.set_margin_top(6);
        line.set_margin_bottom(6);
        line.set_margin_start(10);
        line.set_margin_end(10);
        line.append(&swatch(params.icons.get(t)));
        line.append(&plain(t));
        row.set_child(Some(&line));
        a11y::set_name(&row, &spoken(t, params.icons.get(t)));
        list.append(&row);
        rows.push((row, t.clone()));
    }
    let scroller = gtk::ScrolledWindow::builder()
        .hscrollbar_policy(gtk::PolicyType::Never)
        .propagate_natural_height(true)
        .max_content_height(260)
        .child(&list)
        .build();
    body.append(&scroller);

    let countdown = gtk::Label::new(None);
    countdown.set_xalign(0.0);
    countdown.add_css_class("dim-label");
    body.append(&countdown);

    let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 12);
    buttons.set_halign(gtk::Align::End);
    let deny = mnemonic_button(&tr("_Deny"));
    let allow = mnemonic_button(&tr("_Allow once"));
    allow.add_css_class("suggested-action");
    allow.set_sensitive(false);
    buttons.append(&deny);
    buttons.append(&allow);
    body.append(&buttons);
    window.set_content(Some(&content));

    // The chosen target is the selected, visible row.
    let rows = Rc::new(rows);
    let chosen = {
        let list = list.clone();
        let rows = rows.clone();
        move || -> Option<String> {
            let row = list.selected_row()?;
            rows.iter()
                .find(|(r, _)| *r == row && r.is_child_visible())
                .map(|(_, t)| t.clone())
        }
    };
    // Allow is usable once armed (focus delay over) and a target is chosen.
    let armed = Rc::new(Cell::new(false));
    let update = {
        let allow = allow.clone();
        let armed = armed.clone();
        let chosen = chosen.clone();
        move || allow.set_sensitive(armed.get() && chosen().is_some())
    };
    list.connect_selected_rows_changed({
        let update = update.clone();
        move |_| update()
    });
    if let Some((row, _)) = rows.iter().find(|(_, t)| *t == params.default_target) {
        list.select_row(Some(row));
    }

    // Typing filters; the selection follows to the first visible target when it is hidden.
    {
        let rows = rows.clone();
        let list2 = list.clone();
        let update = update.clone();
        filter.connect_search_changed(move |f| {
            let needle = f.text().to_lowercase();
            for (row, t) in rows.iter() {
                row.set_visible(needle.is_empty() || t.to_lowercase().contains(&needle));
            }
            let hidden = list2.selected_row().is_none_or(|r| !r.is_visible());
            if hidden {
                list2.select_row(rows.iter().map(|(r, _)| r).find(|r| r.is_visible()));
            }
            update();
        });
    }
    // Enter in the filter moves on to the list (never answers by itself).
    {
        let list = list.clone();
        filter.connect_activate(move |_| {
            if let Some(row) = list.selected_row() {
                row.grab_focus();
            }
        });
    }

    // The focus delay: re-armed on every gain of focus, disarmed on every loss.
    let generation = Rc::new(Cell::new(0u64));
    {
        let armed = armed.clone();
        let update = update.clone();
        let delay = timing.focus_delay;
        window.connect_is_active_notify(move |w| {
            generation.set(generation.get() + 1);
            armed.set(false);
            update();
            if w.is_active() {
                let mine = generation.get();
                let (generation, armed, update) =
                    (generation.clone(), armed.clone(), update.clone());
                glib::timeout_add_local_once(delay, move || {
                    if generation.get() == mine {
                        armed.set(true);
                        update();
                    }
                });
            }
        });
    }

    allow.connect_clicked({
        let finish = finish.clone();
        let chosen = chosen.clone();
        let armed = armed.clone();
        move |_| {
            if !armed.get() {
                return;
            }
            if let Some(t) = chosen() {
                finish(Answer::Allow(t));
            }
        }
    });
    deny.connect_clicked({
        let finish = finish.clone();
        move |_| finish(Answer::Deny)
    });
    window.connect_close_request({
        let answered = answered.clone();
        move |_| {
            // Closed any other way than by an answer: deny.
            let f = answered.borrow_mut().take();
            if let Some(f) = f {
                f(Answer::Deny);
            }
            glib::Propagation::Proceed
        }
    });
    // Before the focused widget sees it: the filter would take Escape to clear itself.
    let keys = gtk::EventControllerKey::new();
    keys.set_propagation_phase(gtk::PropagationPhase::Capture);
    keys.connect_key_pressed({
        let finish = finish.clone();
        move |_, key, _, _| {
            if key == gdk::Key::Escape {
                finish(Answer::Deny);
                return glib::Propagation::Stop;
            }
            glib::Propagation::Proceed
        }
    });
    window.add_controller(keys);

    // The timeout, with the time left shown.
    let deadline = Instant::now() + timing.timeout;
    let tick = {
        let countdown = countdown.clone();
        let finish = finish.clone();
        let answered = answered.clone();
        move || {
            if answered.borrow().is_none() {
                return glib::ControlFlow::Break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                finish(Answer::Deny);
                return glib::ControlFlow::Break;
            }
            // Translators: {} is a number of seconds.
            countdown.set_text(&tr("Denied automatically in {} s").replacen(
                "{}",
                &left.as_secs().to_string(),
                1,
            ));
            glib::ControlFlow::Continue
        }
    };
    let first_tick = tick.clone();
    first_tick();
    glib::timeout_add_local(Duration::from_millis(250), tick);

    // For the benchmark: when the prompt is first drawn, relative to the request's arrival.
    if present && std::env::var_os("QUBES_POLICY_AGENT_TRACE").is_some() {
        let shown = Cell::new(false);
        window.add_tick_callback(move |_, _| {
            if !shown.replace(true) {
                eprintln!(
                    "policy-agent: prompt drawn {} us after the request, at monotonic {} us",
                    received.elapsed().as_micros(),
                    glib::monotonic_time()
                );
            }
            glib::ControlFlow::Break
        });
    }
    if present {
        filter.grab_focus();
        window.present();
    }
    window
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_colours_from_icon_names() {
        assert_eq!(label_of_icon("appvm-red").map(|l| l.0), Some("red"));
        assert_eq!(label_of_icon("dispvm-blue").map(|l| l.0), Some("blue"));
        assert_eq!(label_of_icon("adminvm-black").map(|l| l.0), Some("black"));
        assert_eq!(label_of_icon("appvm-<b>"), None);
        assert_eq!(label_of_icon(""), None);
    }
}
