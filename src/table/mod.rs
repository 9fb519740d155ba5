//! The qube table: one row per qube holding its cells' texts and its look (its icon in the
//! label's colour, its state icon and markers); the widgets showing a cell while its row is on
//! screen are updated directly, so a change repaints only visible cells and an off-screen row
//! costs a few strings (no object per cell: that was about 1 KB each).

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::rc::Rc;

use relm4::gtk;
use relm4::gtk::glib;
use relm4::gtk::prelude::*;
use relm4::typed_view::column::TypedColumnView;

use crate::history::History;
use crate::i18n::tr;
use crate::model::{Column, Marker, QubeInfo};
use crate::qube_icons::QubeKind;

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
    /// Its pictures.
    look: Rc<RefCell<Look>>,
    /// The image showing its icon while on screen.
    icon_shown: Rc<RefCell<Option<glib::WeakRef<gtk::Image>>>>,
    /// The state image and the marker box while on screen.
    state_shown: Rc<RefCell<Option<StateWidgets>>>,
    /// The last minutes of its CPU and memory use, while it runs.
    history: Rc<RefCell<History>>,
    /// The sparklines drawing it while on screen.
    sparks: Rc<RefCell<Vec<glib::WeakRef<gtk::DrawingArea>>>>,
}

/// The state cell's image and marker box on screen.
type StateWidgets = (glib::WeakRef<gtk::Image>, glib::WeakRef<gtk::Box>);

/// What a row's pictures show: the qube's icon in its label's colour, its power state and the
/// markers of its state column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// The kind of qube.
    pub kind: QubeKind,
    /// Its label's colour (`0xRRGGBB`).
    pub colour: String,
    /// Its power state.
    pub state: String,
    /// The state column's markers.
    pub markers: Vec<Marker>,
}

impl Look {
    fn of(info: &QubeInfo, colors: &dyn Fn(&str) -> String) -> Look {
        Look {
            kind: info.kind(),
            colour: colors(&info.cell(Column::Label)),
            state: info.state.clone(),
            markers: info.markers(),
        }
    }
}

/// The icon and style class of a power state (blocked when halted and prohibited from
/// starting).
pub fn state_icon(state: &str, markers: &[Marker]) -> (&'static str, &'static str) {
    match state {
        "Running" => ("qube-state-running-symbolic", "qube-state-running"),
        "Paused" | "Suspended" => ("qube-state-paused-symbolic", "qube-state-paused"),
        "Transient" | "Halting" | "Dying" => {
            ("qube-state-transient-symbolic", "qube-state-transient")
        }
        "Halted" if markers.contains(&Marker::Blocked) => {
            ("qube-state-blocked-symbolic", "qube-state-blocked")
        }
        "Halted" => ("qube-state-halted-symbolic", "qube-state-halted"),
        _ => ("qube-state-crashed-symbolic", "qube-state-crashed"),
    }
}

/// The icon of a marker (none for "blocked": the state icon says it).
pub fn marker_icon(m: Marker) -> Option<&'static str> {
    match m {
        Marker::Blocked => None,
        Marker::RestartNeeded => Some("qube-marker-restart-symbolic"),
        Marker::UpdatesAvailable => Some("qube-marker-updates-symbolic"),
        Marker::UpdatesSkipped => Some("qube-marker-skipped-symbolic"),
    }
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
            i32::try_from(text.chars().count()).unwrap_or(i32::MAX)
        } else {
            self.layout.set_text(text);
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
            look: Rc::new(RefCell::new(Look::of(info, colors))),
            icon_shown: Rc::default(),
            state_shown: Rc::default(),
            history: Rc::default(),
            sparks: Rc::default(),
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
        let look = Look::of(info, colors);
        if *self.look.borrow() != look {
            *self.look.borrow_mut() = look;
            self.draw_icon();
            self.draw_state();
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

    /// What its pictures show.
    pub fn look(&self) -> Look {
        self.look.borrow().clone()
    }

    /// Shows the qube's icon in `image` while the row is on screen.
    fn show_icon_in(&self, image: &gtk::Image) {
        *self.icon_shown.borrow_mut() = Some(image.downgrade());
        self.draw_icon();
    }

    /// Adds a statistics sample and redraws the sparklines on screen.
    pub fn push_sample(&self, at: u32, stats: crate::model::Stats) {
        self.history.borrow_mut().push(at, stats.cpu, stats.mem_kib);
        self.redraw_sparks();
    }

    /// Forgets the history (the qube stopped) and clears its sparklines.
    pub fn clear_history(&self) {
        if !self.history.borrow().is_empty() {
            self.history.borrow_mut().clear();
            self.redraw_sparks();
        }
    }

    /// The row's history (the usage popover draws it too).
    pub fn history(&self) -> Rc<RefCell<History>> {
        self.history.clone()
    }

    fn redraw_sparks(&self) {
        self.sparks.borrow_mut().retain(|w| match w.upgrade() {
            Some(area) => {
                area.queue_draw();
                true
            }
            None => false,
        });
    }

    /// `area` now draws this row's history.
    fn show_spark_in(&self, area: &gtk::DrawingArea, source: &crate::graphs::Source) {
        *source.borrow_mut() = Some(self.history.clone());
        self.sparks.borrow_mut().push(area.downgrade());
        area.queue_draw();
    }

    /// `area` no longer draws this row's history.
    fn hide_spark_from(&self, area: &gtk::DrawingArea, source: &crate::graphs::Source) {
        *source.borrow_mut() = None;
        self.sparks
            .borrow_mut()
            .retain(|w| w.upgrade().is_some_and(|a| &a != area));
    }

    /// `image` no longer shows this row's icon.
    fn hide_icon_from(&self, image: &gtk::Image) {
        let mut shown = self.icon_shown.borrow_mut();
        if shown.as_ref().and_then(|w| w.upgrade()).as_ref() == Some(image) {
            *shown = None;
        }
    }

    /// `image` no longer shows this row's state.
    fn hide_state_from(&self, image: &gtk::Image) {
        let mut shown = self.state_shown.borrow_mut();
        if shown.as_ref().and_then(|(w, _)| w.upgrade()).as_ref() == Some(image) {
            *shown = None;
        }
    }

    fn draw_icon(&self) {
        let Some(image) = self.icon_shown.borrow().as_ref().and_then(|w| w.upgrade()) else {
            return;
        };
        let look = self.look.borrow();
        image.set_paintable(Some(&crate::resources::qube_texture(
            look.kind,
            &look.colour,
        )));
        image.set_tooltip_text(Some(&look.kind.title()));
    }

    /// Shows the state's icon and markers in `image` and `markers` while on screen.
    fn show_state_in(&self, image: &gtk::Image, markers: &gtk::Box) {
        *self.state_shown.borrow_mut() = Some((image.downgrade(), markers.downgrade()));
        self.draw_state();
    }

    fn draw_state(&self) {
        let shown = self.state_shown.borrow();
        let Some((image, markers)) = shown
            .as_ref()
            .and_then(|(i, m)| Some((i.upgrade()?, m.upgrade()?)))
        else {
            return;
        };
        let look = self.look.borrow();
        let (icon, class) = state_icon(&look.state, &look.markers);
        image.set_icon_name(Some(icon));
        image.set_css_classes(&[class]);
        let mut tip = crate::model::state_explanation(&look.state);
        if let Some(Marker::Blocked) = look.markers.first() {
            tip = Marker::Blocked.explanation();
        }
        image.set_tooltip_text(Some(&tip));
        while let Some(c) = markers.first_child() {
            markers.remove(&c);
        }
        for m in &look.markers {
            if let Some(icon) = marker_icon(*m) {
                let i = gtk::Image::from_icon_name(icon);
                i.add_css_class("qube-marker");
                i.set_tooltip_text(Some(&m.explanation()));
                markers.append(&i);
            }
        }
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

/// Cell text (the label column's icon is drawn from the row's [`Look`]).
fn cell_text(info: &QubeInfo, col: Column, _colors: &dyn Fn(&str) -> String) -> String {
    info.cell(col)
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

mod columns;

pub use columns::new_table;

/// The cell of `vm`'s row in column `col`, while the row is on screen.
pub fn cell_of(view: &gtk::ColumnView, vm: &str, col: Column) -> Option<gtk::Widget> {
    let (name, class) = (format!("{CELL_PREFIX}{vm}"), format!("column-{}", col.id()));
    let mut stack = vec![view.clone().upcast::<gtk::Widget>()];
    while let Some(w) = stack.pop() {
        if w.widget_name() == name && w.has_css_class(&class) {
            return Some(w);
        }
        let mut c = w.first_child();
        while let Some(x) = c {
            c = x.next_sibling();
            stack.push(x);
        }
    }
    None
}

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

impl Refilter {
    /// Both together (after several rows changed).
    pub fn or(self, other: Refilter) -> Refilter {
        Refilter {
            search: self.search || other.search,
            show: self.show || other.show,
        }
    }
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
