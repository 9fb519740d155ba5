//! The dialogs of the window. Each is a relm4 component (or, for the short questions, a
//! message dialog) whose output is what the user decided, as a typed message; the window does
//! the work. They use widgets and talk to the daemon only to read what they offer (and the
//! create dialog to create, since a refusal stays in it); none of them knows the window.

pub mod bulk;
pub mod clone;
pub mod create;
pub mod questions;
pub mod remove;
