//! The clone dialog's layout (`ui/clone.ui`).

use relm4::adw;
use relm4::adw::subclass::prelude::*;
use relm4::gtk;
use relm4::gtk::glib;

/// The template's parts.
pub mod imp {
    use super::*;

    #[derive(Debug, Default, gtk::CompositeTemplate)]
    #[template(resource = "/org/qubes_os/QubeManager/ui/clone.ui")]
    pub struct QubeCloneDialog {
        #[template_child]
        pub name: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub name_problem: TemplateChild<gtk::Label>,
        #[template_child]
        pub label: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub pool: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub open_settings: TemplateChild<gtk::Switch>,
        #[template_child]
        pub clone: TemplateChild<gtk::Button>,
        #[template_child]
        pub cancel: TemplateChild<gtk::Button>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for QubeCloneDialog {
        const NAME: &'static str = "QubeCloneDialog";
        type Type = super::QubeCloneDialog;
        type ParentType = adw::Window;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for QubeCloneDialog {}
    impl WidgetImpl for QubeCloneDialog {}
    impl WindowImpl for QubeCloneDialog {}
    impl AdwWindowImpl for QubeCloneDialog {}
}

glib::wrapper! {
    /// The clone dialog's layout (`ui/clone.ui`).
    pub struct QubeCloneDialog(ObjectSubclass<imp::QubeCloneDialog>)
        @extends adw::Window, gtk::Window, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Native, gtk::Root,
            gtk::ShortcutManager;
}

impl QubeCloneDialog {
    /// A new dialog from its template.
    pub fn new() -> QubeCloneDialog {
        crate::resources::register();
        glib::Object::new()
    }

    /// Its named parts.
    pub fn parts(&self) -> &imp::QubeCloneDialog {
        self.imp()
    }
}

impl Default for QubeCloneDialog {
    fn default() -> Self {
        Self::new()
    }
}
