//! Accessible names for widgets that have no visible label (tables, drop-downs, entries).
//! gtk4-rs 0.11 exposes `update_property` only for GTK 4.10; Debian 12 has 4.8, whose C
//! library has the function, so it is declared and called here directly.

use std::ffi::{CString, c_int, c_void};

use relm4::gtk;
use relm4::gtk::glib::translate::ToGlibPtr;
use relm4::gtk::prelude::*;

/// `GTK_ACCESSIBLE_PROPERTY_LABEL` in `gtkenums.h`.
const PROPERTY_LABEL: c_int = 4;

unsafe extern "C" {
    fn gtk_accessible_update_property(accessible: *mut c_void, first_property: c_int, ...);
}

/// Sets the name assistive technologies read for `widget`.
pub fn set_name(widget: &impl IsA<gtk::Widget>, name: &str) {
    let Ok(c) = CString::new(name) else { return };
    let ptr: *mut gtk::ffi::GtkWidget = widget.upcast_ref::<gtk::Widget>().to_glib_none().0;
    // SAFETY: every GtkWidget implements GtkAccessible (interface casts are the same pointer in
    // C); one (property, value) pair and the -1 terminator, as the variadic function expects;
    // GTK copies the string.
    unsafe {
        gtk_accessible_update_property(ptr.cast(), PROPERTY_LABEL, c.as_ptr(), -1 as c_int);
    }
}
