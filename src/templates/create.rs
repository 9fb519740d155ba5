//! The create dialog's layout (`ui/create.ui`).

use relm4::adw;
use relm4::adw::subclass::prelude::*;
use relm4::gtk;
use relm4::gtk::glib;

/// The template's parts.
pub mod imp {
    use super::*;

    #[derive(Debug, Default, gtk::CompositeTemplate)]
    #[template(resource = "/org/qubes_os/QubeManager/ui/create.ui")]
    pub struct QubeCreateDialog {
        #[template_child]
        pub name: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub name_problem: TemplateChild<gtk::Label>,
        #[template_child]
        pub kind: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub label: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub template: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub netvm: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub provides_network: TemplateChild<gtk::Switch>,
        #[template_child]
        pub memory_row: TemplateChild<adw::ExpanderRow>,
        #[template_child]
        pub memory: TemplateChild<gtk::SpinButton>,
        #[template_child]
        pub pool: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub open_settings: TemplateChild<gtk::Switch>,
        #[template_child]
        pub status: TemplateChild<gtk::Label>,
        #[template_child]
        pub create: TemplateChild<gtk::Button>,
        #[template_child]
        pub cancel: TemplateChild<gtk::Button>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for QubeCreateDialog {
        const NAME: &'static str = "QubeCreateDialog";
        type Type = super::QubeCreateDialog;
        type ParentType = adw::Window;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for QubeCreateDialog {}
    impl WidgetImpl for QubeCreateDialog {}
    impl WindowImpl for QubeCreateDialog {}
    impl AdwWindowImpl for QubeCreateDialog {}
}

glib::wrapper! {
    /// The create dialog's layout (`ui/create.ui`).
    pub struct QubeCreateDialog(ObjectSubclass<imp::QubeCreateDialog>)
        @extends adw::Window, gtk::Window, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Native, gtk::Root,
            gtk::ShortcutManager;
}

impl QubeCreateDialog {
    /// A new dialog from its template.
    pub fn new() -> QubeCreateDialog {
        crate::resources::register();
        glib::Object::new()
    }

    /// Its named parts.
    pub fn parts(&self) -> &imp::QubeCreateDialog {
        self.imp()
    }
}

impl Default for QubeCreateDialog {
    fn default() -> Self {
        Self::new()
    }
}
