//! The table's columns: a label per cell for texts and figures, the label column's icon, the
//! state column's icons, and sparklines beside the CPU and memory figures.

use relm4::gtk;
use relm4::gtk::prelude::*;
use relm4::typed_view::OrdFn;
use relm4::typed_view::column::{RelmColumn, TypedColumnView};

use super::{CELL_PREFIX, QubeRow, column_title, compare};
use crate::model::Column;

macro_rules! column {
    ($ty:ident, $col:expr, $id:literal, $markup:literal, $expand:literal, $numeric:literal) => {
        /// A table column.
        pub struct $ty;

        impl RelmColumn for $ty {
            type Root = gtk::Label;
            type Widgets = ();
            type Item = QubeRow;

            const COLUMN_NAME: &'static str = $id;
            const ENABLE_RESIZE: bool = true;
            const ENABLE_EXPAND: bool = $expand;

            fn header_title() -> String {
                column_title($col)
            }

            fn setup(_item: &gtk::ListItem) -> (gtk::Label, Self::Widgets) {
                let label = gtk::Label::new(None);
                label.add_css_class(concat!("column-", $id));
                label.set_xalign(0.0);
                label.set_use_markup($markup);
                // Numbers line up on the right. Nothing is cut short (see [`Widths`]).
                if $numeric {
                    label.set_xalign(1.0);
                }
                (label, ())
            }

            fn bind(item: &mut QubeRow, _widgets: &mut Self::Widgets, root: &mut gtk::Label) {
                // Lets a click find the row's qube from the widget under the pointer.
                root.set_widget_name(&format!("{CELL_PREFIX}{}", item.name));
                item.show_in($col, root);
            }

            fn unbind(item: &mut QubeRow, _widgets: &mut Self::Widgets, root: &mut gtk::Label) {
                item.hide_from($col, root);
            }

            fn sort_fn() -> OrdFn<QubeRow> {
                Some(Box::new(|a, b| compare(a, b, $col)))
            }
        }
    };
}

/// The label column: the qube's icon in its label's colour, and the label's name.
pub struct LabelColumn;

impl RelmColumn for LabelColumn {
    type Root = gtk::Box;
    type Widgets = (gtk::Image, gtk::Label);
    type Item = QubeRow;

    const COLUMN_NAME: &'static str = "label";
    const ENABLE_RESIZE: bool = true;
    const ENABLE_EXPAND: bool = false;

    fn header_title() -> String {
        column_title(Column::Label)
    }

    fn setup(_item: &gtk::ListItem) -> (gtk::Box, Self::Widgets) {
        let b = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        b.add_css_class("column-label");
        let image = gtk::Image::new();
        image.set_pixel_size(16);
        let label = gtk::Label::new(None);
        label.set_xalign(0.0);
        b.append(&image);
        b.append(&label);
        (b, (image, label))
    }

    fn bind(item: &mut QubeRow, (image, label): &mut Self::Widgets, root: &mut gtk::Box) {
        root.set_widget_name(&format!("{CELL_PREFIX}{}", item.name));
        item.show_in(Column::Label, label);
        item.show_icon_in(image);
    }

    fn unbind(item: &mut QubeRow, (image, label): &mut Self::Widgets, _root: &mut gtk::Box) {
        item.hide_from(Column::Label, label);
        item.hide_icon_from(image);
    }

    fn sort_fn() -> OrdFn<QubeRow> {
        Some(Box::new(|a, b| compare(a, b, Column::Label)))
    }
}

/// The state column: the power state's icon (coloured, with a tooltip), its word and the
/// markers' icons.
pub struct StateColumn;

impl RelmColumn for StateColumn {
    type Root = gtk::Box;
    type Widgets = (gtk::Image, gtk::Label, gtk::Box);
    type Item = QubeRow;

    const COLUMN_NAME: &'static str = "state";
    const ENABLE_RESIZE: bool = true;
    const ENABLE_EXPAND: bool = false;

    fn header_title() -> String {
        column_title(Column::State)
    }

    fn setup(_item: &gtk::ListItem) -> (gtk::Box, Self::Widgets) {
        let b = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        b.add_css_class("column-state");
        let image = gtk::Image::new();
        let label = gtk::Label::new(None);
        label.set_xalign(0.0);
        let markers = gtk::Box::new(gtk::Orientation::Horizontal, 2);
        b.append(&image);
        b.append(&label);
        b.append(&markers);
        (b, (image, label, markers))
    }

    fn bind(item: &mut QubeRow, (image, label, markers): &mut Self::Widgets, root: &mut gtk::Box) {
        root.set_widget_name(&format!("{CELL_PREFIX}{}", item.name));
        item.show_in(Column::State, label);
        item.show_state_in(image, markers);
    }

    fn unbind(item: &mut QubeRow, (image, label, _): &mut Self::Widgets, _root: &mut gtk::Box) {
        item.hide_from(Column::State, label);
        item.hide_state_from(image);
    }

    fn sort_fn() -> OrdFn<QubeRow> {
        Some(Box::new(|a, b| compare(a, b, Column::State)))
    }
}

column!(NameColumn, Column::Name, "name", false, true, false);
column!(ClassColumn, Column::Class, "class", false, false, false);
column!(
    TemplateColumn,
    Column::Template,
    "template",
    false,
    false,
    false
);
column!(NetVmColumn, Column::NetVm, "netvm", false, false, false);
column!(DiskColumn, Column::DiskUsage, "disk", false, false, true);
macro_rules! graph_column {
    ($ty:ident, $col:expr, $id:literal, $series:expr) => {
        /// A column of figures from the statistics, each with a sparkline of the last minutes
        /// (a click on it opens the qube's usage popover).
        pub struct $ty;

        impl RelmColumn for $ty {
            type Root = gtk::Box;
            type Widgets = (gtk::DrawingArea, crate::graphs::Source, gtk::Label);
            type Item = QubeRow;

            const COLUMN_NAME: &'static str = $id;
            const ENABLE_RESIZE: bool = true;
            const ENABLE_EXPAND: bool = false;

            fn header_title() -> String {
                column_title($col)
            }

            fn setup(_item: &gtk::ListItem) -> (gtk::Box, Self::Widgets) {
                let b = gtk::Box::new(gtk::Orientation::Horizontal, 6);
                b.add_css_class(concat!("column-", $id));
                let (area, source) = crate::graphs::sparkline($series);
                let label = gtk::Label::new(None);
                label.set_xalign(1.0);
                label.set_hexpand(true);
                label.add_css_class("numeric");
                b.append(&area);
                b.append(&label);
                (b, (area, source, label))
            }

            fn bind(
                item: &mut QubeRow,
                (area, source, label): &mut Self::Widgets,
                root: &mut gtk::Box,
            ) {
                root.set_widget_name(&format!("{CELL_PREFIX}{}", item.name));
                item.show_in($col, label);
                item.show_spark_in(area, source);
            }

            fn unbind(
                item: &mut QubeRow,
                (area, source, label): &mut Self::Widgets,
                _root: &mut gtk::Box,
            ) {
                item.hide_from($col, label);
                item.hide_spark_from(area, source);
            }

            fn sort_fn() -> OrdFn<QubeRow> {
                Some(Box::new(|a, b| compare(a, b, $col)))
            }
        }
    };
}

graph_column!(CpuColumn, Column::Cpu, "cpu", crate::graphs::Series::Cpu);
graph_column!(
    MemUsedColumn,
    Column::MemUsed,
    "memused",
    crate::graphs::Series::Memory
);
column!(MemoryColumn, Column::Memory, "memory", false, false, true);
column!(
    InternalColumn,
    Column::Internal,
    "internal",
    false,
    false,
    false
);
column!(IpColumn, Column::Ip, "ip", false, false, false);
column!(
    BackupsColumn,
    Column::Backups,
    "backups",
    false,
    false,
    false
);
column!(
    LastBackupColumn,
    Column::LastBackup,
    "last-backup",
    false,
    false,
    false
);
column!(
    DefaultDispvmColumn,
    Column::DefaultDispvm,
    "default-dispvm",
    false,
    false,
    false
);
column!(
    DispvmTemplateColumn,
    Column::IsDispvmTemplate,
    "dispvm-template",
    false,
    false,
    false
);
column!(
    VirtModeColumn,
    Column::VirtMode,
    "virt-mode",
    false,
    false,
    false
);

column!(TagsColumn, Column::Tags, "tags", false, false, false);

/// A column view with every column, in [`Column::ALL`] order.
pub fn new_table() -> TypedColumnView<QubeRow, gtk::MultiSelection> {
    let mut t = TypedColumnView::<QubeRow, gtk::MultiSelection>::new();
    t.append_column::<LabelColumn>();
    t.append_column::<NameColumn>();
    t.append_column::<StateColumn>();
    t.append_column::<ClassColumn>();
    t.append_column::<TemplateColumn>();
    t.append_column::<NetVmColumn>();
    t.append_column::<DiskColumn>();
    t.append_column::<CpuColumn>();
    t.append_column::<MemUsedColumn>();
    t.append_column::<MemoryColumn>();
    t.append_column::<InternalColumn>();
    t.append_column::<IpColumn>();
    t.append_column::<BackupsColumn>();
    t.append_column::<LastBackupColumn>();
    t.append_column::<DefaultDispvmColumn>();
    t.append_column::<DispvmTemplateColumn>();
    t.append_column::<VirtModeColumn>();
    t.append_column::<TagsColumn>();
    t
}
