//! The main window's layout (`ui/window.ui`): header bar, search and filter, the table's place,
//! the empty and unreachable states, the status line, and the primary and context menus.

use relm4::adw;
use relm4::adw::subclass::prelude::*;
use relm4::gtk;
use relm4::gtk::gio;
use relm4::gtk::glib;

/// The template's parts.
pub mod imp {
    use super::*;

    #[derive(Debug, Default, gtk::CompositeTemplate)]
    #[template(resource = "/org/qubes_os/QubeManager/ui/window.ui")]
    pub struct QubeManagerWindow {
        #[template_child]
        pub toasts: TemplateChild<adw::ToastOverlay>,
        #[template_child]
        pub header: TemplateChild<adw::HeaderBar>,
        #[template_child]
        pub window_title: TemplateChild<adw::WindowTitle>,
        #[template_child]
        pub search: TemplateChild<gtk::SearchEntry>,
        #[template_child]
        pub show_selector: TemplateChild<gtk::DropDown>,
        #[template_child]
        pub table_or_empty: TemplateChild<gtk::Stack>,
        #[template_child]
        pub scroller: TemplateChild<gtk::ScrolledWindow>,
        #[template_child]
        pub empty: TemplateChild<adw::StatusPage>,
        #[template_child]
        pub unreachable: TemplateChild<adw::StatusPage>,
        #[template_child]
        pub status: TemplateChild<gtk::Label>,
        #[template_child]
        pub primary_menu: TemplateChild<gio::Menu>,
        #[template_child]
        pub columns_menu: TemplateChild<gio::Menu>,
        #[template_child]
        pub context_menu: TemplateChild<gio::Menu>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for QubeManagerWindow {
        const NAME: &'static str = "QubeManagerWindow";
        type Type = super::QubeManagerWindow;
        type ParentType = adw::ApplicationWindow;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for QubeManagerWindow {}
    impl WidgetImpl for QubeManagerWindow {}
    impl WindowImpl for QubeManagerWindow {}
    impl ApplicationWindowImpl for QubeManagerWindow {}
    impl AdwApplicationWindowImpl for QubeManagerWindow {}
}

glib::wrapper! {
    /// The Qube Manager's window.
    pub struct QubeManagerWindow(ObjectSubclass<imp::QubeManagerWindow>)
        @extends adw::ApplicationWindow, gtk::ApplicationWindow, gtk::Window, gtk::Widget,
        @implements gio::ActionGroup, gio::ActionMap, gtk::Buildable,
            gtk::ConstraintTarget, gtk::Native, gtk::Root, gtk::ShortcutManager;
}

impl QubeManagerWindow {
    /// A new window from its template.
    pub fn new() -> QubeManagerWindow {
        crate::resources::register();
        glib::Object::new()
    }

    /// Its named parts.
    pub fn parts(&self) -> &imp::QubeManagerWindow {
        self.imp()
    }
}

impl Default for QubeManagerWindow {
    fn default() -> Self {
        Self::new()
    }
}
