//! What the GTK test programs share (`harness = false`: GTK must run on the main thread):
//! running the main loop until a condition holds, finding widgets, and the runner that
//! prints `N passed, N failed`.

use std::time::{Duration, Instant};

use relm4::gtk;
use relm4::gtk::prelude::*;

/// Runs the GTK main loop until `done` holds or `secs` pass.
pub fn spin_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
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

/// The first descendant of `w` (itself included, depth first) that `pred` accepts.
pub fn find_where(w: &gtk::Widget, pred: &dyn Fn(&gtk::Widget) -> bool) -> Option<gtk::Widget> {
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

/// Texts of every label under `w`.
pub fn label_texts(w: &gtk::Widget) -> Vec<String> {
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

/// Runs the tests whose names contain one of the program's arguments (all without any),
/// each caught if it panics, prints `test NAME ... ok|FAILED` and `N passed, N failed`, and
/// exits with 1 when one failed.
pub fn run(tests: &[(&str, fn())]) {
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
