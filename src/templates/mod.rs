//! Windows whose layout is declared in `ui/*.ui` (GtkBuilder composite templates in the
//! resource bundle, see [`crate::resources`]): each is a subclass of its libadwaita window
//! with the template's named children as fields. They hold no state and know nothing of the
//! daemon; the components of `app`, `settings` and `dialogs` fill and drive them.

pub mod clone;
pub mod create;
pub mod window;

use relm4::gtk;
use relm4::gtk::prelude::*;

/// The descendants of `root` (itself included) that a `.ui` file named, by their ids: the
/// settings windows find their rows this way, named after the property each one edits.
pub fn named_children(root: &gtk::Widget) -> Vec<(String, gtk::Widget)> {
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(w) = stack.pop() {
        if let Some(id) = w.buildable_id() {
            out.push((id.to_string(), w.clone()));
        }
        let mut child = w.last_child();
        while let Some(c) = child {
            child = c.prev_sibling();
            stack.push(c);
        }
    }
    out
}
