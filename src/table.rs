//! The qube table: one row per qube holding its cells' texts; the label showing a cell while
//! its row is on screen is updated directly, so a change repaints only visible cells and an
//! off-screen row costs a few strings (no object per cell: that was about 1 KB each).

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::rc::Rc;

use relm4::gtk;
use relm4::gtk::glib;
use relm4::gtk::prelude::*;
use relm4::typed_view::OrdFn;
use relm4::typed_view::column::{RelmColumn, TypedColumnView};

use crate::i18n::tr;
use crate::model::{Column, QubeInfo};

/// One row: the qube's name, its cells' texts and the labels showing them.
#[derive(Clone)]
pub struct QubeRow {
    /// The qube.
    pub name: String,
    /// Cell texts, indexed like [`Column::ALL`].
    cells: Rc<RefCell<Vec<String>>>,
    /// The label showing each cell while the row is on screen.
    shown: Rc<RefCell<Vec<Option<glib::WeakRef<gtk::Label>>>>>,
    /// The "Show" choices listing this qube ([`QubeInfo::kinds`]).
    pub kinds: Rc<Cell<u8>>,
    /// The widths of the columns, shared by every row of the table.
    widths: Widths,
}

/// The width of each column: that of its longest text in any row, shown or not. Every cell
/// asks for it, so a column keeps its width while a search or the Show choice hides rows, and
/// no text is cut short to make room for another column (the table scrolls instead). Text is
/// measured in pixels with the table's font; numbers (whose digits are all as wide) in
/// characters, which is cheap enough for figures that change every few seconds.
#[derive(Clone)]
pub struct Widths {
    /// Per column: pixels (text) or characters (numbers).
    sizes: Rc<RefCell<Vec<i32>>>,
    /// A column got wider since [`Widths::take_grown`] was last asked.
    grown: Rc<Cell<bool>>,
    /// Lays out text as the cells do.
    layout: gtk::pango::Layout,
}

impl Widths {
    /// Widths for a new table drawn in `font` (the table's Pango context).
    pub fn new(font: &gtk::pango::Context) -> Widths {
        Widths {
            sizes: Rc::new(RefCell::new(
                Column::ALL
                    .iter()
                    .map(|c| if is_number(*c) { MIN_CHARS } else { 0 })
                    .collect(),
            )),
            grown: Rc::default(),
            layout: gtk::pango::Layout::new(font),
        }
    }

    /// The width of `col`: characters for numbers, pixels for text.
    pub fn get(&self, col: Column) -> i32 {
        self.sizes.borrow()[col as usize]
    }

    fn fit(&self, col: Column, text: &str) {
        let size = if is_number(col) {
            text.chars().count() as i32
        } else {
            if col == Column::Label {
                self.layout.set_markup(text);
            } else {
                self.layout.set_text(text);
            }
            self.layout.pixel_size().0
        };
        let mut sizes = self.sizes.borrow_mut();
        if size > sizes[col as usize] {
            sizes[col as usize] = size;
            self.grown.set(true);
        }
    }

    /// Gives `label`, a cell of `col`, the column's width.
    fn apply(&self, col: Column, label: &gtk::Label) {
        let size = self.get(col);
        if is_number(col) {
            label.set_width_chars(size);
        } else {
            label.set_size_request(size, -1);
        }
    }

    /// Whether a column got wider since last asked (the cells on screen then need the new
    /// width: [`QubeRow::refit`]).
    pub fn take_grown(&self) -> bool {
        self.grown.replace(false)
    }
}

/// Columns of figures, aligned on the right.
pub fn is_number(col: Column) -> bool {
    matches!(
        col,
        Column::DiskUsage | Column::Cpu | Column::MemUsed | Column::Memory
    )
}

/// The narrowest a column gets, in characters ("0 %").
const MIN_CHARS: i32 = 3;

/// Text without Pango markup tags.
pub fn strip_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

impl QubeRow {
    /// A row showing `info`, in a table whose column widths are `widths`.
    pub fn new(info: &QubeInfo, colors: &dyn Fn(&str) -> String, widths: &Widths) -> QubeRow {
        let cells: Vec<String> = Column::ALL
            .iter()
            .map(|c| cell_text(info, *c, colors))
            .collect();
        for (c, text) in Column::ALL.iter().zip(&cells) {
            widths.fit(*c, text);
        }
        QubeRow {
            name: info.name.clone(),
            cells: Rc::new(RefCell::new(cells)),
            shown: Rc::new(RefCell::new(vec![None; Column::ALL.len()])),
            kinds: Rc::new(Cell::new(info.kinds())),
            widths: widths.clone(),
        }
    }

    /// Gives the cells of this row on screen the columns' current widths.
    pub fn refit(&self) {
        for (col, slot) in Column::ALL.iter().zip(self.shown.borrow().iter()) {
            if let Some(label) = slot.as_ref().and_then(|w| w.upgrade()) {
                self.widths.apply(*col, &label);
            }
        }
    }

    /// Shows `info` in this row's cells; says which filters must run again.
    pub fn update(&self, info: &QubeInfo, colors: &dyn Fn(&str) -> String) -> Refilter {
        let mut search = false;
        for c in Column::ALL {
            let text = cell_text(info, c, colors);
            search |= SEARCHED.contains(&c) && self.cells.borrow()[c as usize] != text;
            self.set_cell(c, text);
        }
        Refilter {
            search,
            show: self.kinds.replace(info.kinds()) != info.kinds(),
        }
    }

    /// Sets one cell's text; repaints it only if it changed and is on screen.
    pub fn set_cell(&self, col: Column, text: String) {
        let i = col as usize;
        if self.cells.borrow()[i] == text {
            return;
        }
        if let Some(label) = self.shown.borrow()[i].as_ref().and_then(|w| w.upgrade()) {
            label.set_label(&text);
        }
        self.widths.fit(col, &text);
        self.cells.borrow_mut()[i] = text;
    }

    /// The current text of a cell.
    pub fn text(&self, col: Column) -> String {
        self.cells.borrow()[col as usize].clone()
    }

    /// `label` now shows this row's `col`.
    fn show_in(&self, col: Column, label: &gtk::Label) {
        label.set_label(&self.cells.borrow()[col as usize]);
        self.widths.apply(col, label);
        self.shown.borrow_mut()[col as usize] = Some(label.downgrade());
    }

    /// `label` no longer shows this row's `col`.
    fn hide_from(&self, col: Column, label: &gtk::Label) {
        let mut shown = self.shown.borrow_mut();
        let slot = &mut shown[col as usize];
        if slot.as_ref().and_then(|w| w.upgrade()).as_ref() == Some(label) {
            *slot = None;
        }
    }
}

/// Cell text; the label column is Pango markup with a coloured dot.
fn cell_text(info: &QubeInfo, col: Column, colors: &dyn Fn(&str) -> String) -> String {
    let text = info.cell(col);
    if col == Column::Label {
        let color = colors(&text);
        let color = color.strip_prefix("0x").unwrap_or(&color);
        return format!(
            "<span foreground=\"#{}\">\u{2b24}</span> {}",
            glib::markup_escape_text(color),
            glib::markup_escape_text(&text)
        );
    }
    text
}

/// Order of the state column: running first.
fn state_rank(s: &str) -> u8 {
    // The power state comes first; markers follow it.
    match s.split(' ').next().unwrap_or("") {
        "Running" => 0,
        "Transient" | "Halting" => 1,
        "Paused" | "Suspended" => 2,
        "Halted" => 3,
        _ => 4,
    }
}

/// The order of two rows by `col` (ties by name, so every column is a total order).
pub fn compare(a: &QubeRow, b: &QubeRow, col: Column) -> Ordering {
    let (x, y) = (a.text(col), b.text(col));
    let by = match col {
        Column::State => state_rank(&x).cmp(&state_rank(&y)),
        Column::DiskUsage => crate::model::parse_size(&x).total_cmp(&crate::model::parse_size(&y)),
        Column::Memory | Column::MemUsed | Column::Cpu => {
            let n = |s: &str| {
                s.split(' ')
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            n(&x).cmp(&n(&y))
        }
        _ => x.cmp(&y),
    };
    by.then_with(|| a.name.cmp(&b.name))
}

/// The translated title of a column.
pub fn column_title(col: Column) -> String {
    match col {
        Column::Label => tr("Label"),
        Column::Name => tr("Name"),
        Column::State => tr("State"),
        Column::Class => tr("Type"),
        Column::Template => tr("Template"),
        Column::NetVm => tr("NetVM"),
        Column::Memory => tr("Memory"),
        Column::Cpu => tr("CPU"),
        Column::MemUsed => tr("Memory used"),
        Column::Backups => tr("In backups"),
        Column::DiskUsage => tr("Disk usage"),
        Column::Internal => tr("Internal"),
        Column::Ip => tr("IP"),
        Column::LastBackup => tr("Last backup"),
        Column::DefaultDispvm => tr("Default disposable template"),
        Column::IsDispvmTemplate => tr("Disposable template"),
        Column::VirtMode => tr("Virt mode"),
        Column::Tags => tr("Tags"),
    }
}

/// Prefix of a cell label's widget name; the rest is the qube's name.
const CELL_PREFIX: &str = "qube-cell:";

/// The qube whose row holds `w` (a widget picked under the pointer), if any.
pub fn qube_at(w: &gtk::Widget) -> Option<String> {
    fn find_in(w: &gtk::Widget) -> Option<String> {
        if let Some(name) = w.widget_name().strip_prefix(CELL_PREFIX) {
            return Some(name.to_string());
        }
        let mut child = w.first_child();
        while let Some(c) = child {
            if let Some(found) = find_in(&c) {
                return Some(found);
            }
            child = c.next_sibling();
        }
        None
    }
    // Up to the row widget (the child of the list inside the column view), then down to a cell.
    let mut row = w.clone();
    loop {
        if let Some(name) = row.widget_name().strip_prefix(CELL_PREFIX) {
            return Some(name.to_string());
        }
        let parent = row.parent()?;
        if parent.is::<gtk::ListView>() || parent.is::<gtk::ColumnView>() {
            return find_in(&row);
        }
        row = parent;
    }
}

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

column!(LabelColumn, Column::Label, "label", true, false, false);
column!(NameColumn, Column::Name, "name", false, true, false);
column!(StateColumn, Column::State, "state", false, false, false);
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
column!(CpuColumn, Column::Cpu, "cpu", false, false, true);
column!(
    MemUsedColumn,
    Column::MemUsed,
    "memused",
    false,
    false,
    true
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

/// Columns the search field looks in.
pub const SEARCHED: [Column; 4] = [Column::Name, Column::Class, Column::Label, Column::Tags];

/// Which filters must run again after a row changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refilter {
    /// A column the search looks in changed.
    pub search: bool,
    /// What the Show selector goes by changed.
    pub show: bool,
}

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

/// The column (and whether descending) the visible rows are sorted by, found from the rows
/// themselves: GTK 4.8 cannot say which header was clicked. Every column's order is total, so
/// only the sort column (or one giving the same order) fits.
pub fn sorted_by(rows: &[QubeRow]) -> Option<(Column, bool)> {
    if rows.len() < 2 {
        return None;
    }
    for col in Column::ALL {
        let pairs = || rows.windows(2).map(|w| compare(&w[0], &w[1], col));
        if pairs().all(|o| o != Ordering::Greater) {
            return Some((col, false));
        }
        if pairs().all(|o| o != Ordering::Less) {
            return Some((col, true));
        }
    }
    None
}

/// The table's column for `col`.
pub fn column_of(
    t: &TypedColumnView<QubeRow, gtk::MultiSelection>,
    col: Column,
) -> Option<gtk::ColumnViewColumn> {
    t.get_columns().get(col.id()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_sorts_by_power_state_then_markers() {
        assert_eq!(state_rank("Running \u{b7} restart needed"), 0);
        assert_eq!(state_rank("Halted \u{b7} blocked"), 3);
    }
}
