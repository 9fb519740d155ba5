//! The usage popover (`ui/usage.ui`): a qube's CPU and memory over the last ten minutes, as
//! two graphs with the figures now and at their highest, following the statistics while open.
//! Opened by a click on a sparkline, Ctrl+U or the qube's menu; it points at the qube's row.

use std::cell::RefCell;
use std::rc::Rc;

use relm4::gtk;
use relm4::gtk::prelude::*;

use super::App;
use crate::graphs::{Series, graph};
use crate::history::{History, KEEP_SECS, now};
use crate::i18n::tr;
use crate::model::Column;
use crate::resources::ui_object;

/// The open popover.
pub struct Usage {
    /// The qube it shows.
    pub vm: String,
    popover: gtk::Popover,
    graphs: [gtk::DrawingArea; 2],
    cpu_text: gtk::Label,
    mem_text: gtk::Label,
    history: Rc<RefCell<History>>,
}

impl Usage {
    /// Shows the figures of the history again and redraws the graphs.
    pub fn refresh(&self) {
        let h = self.history.borrow();
        let since = now().saturating_sub(KEEP_SECS);
        let (peak_cpu, peak_mem) = h.peaks(since);
        match h.last() {
            Some(s) => {
                self.cpu_text.set_text(
                    &tr("CPU: %1 % now, at most %2 %")
                        .replacen("%1", &s.cpu.to_string(), 1)
                        .replacen("%2", &peak_cpu.to_string(), 1),
                );
                self.mem_text.set_text(
                    &tr("Memory: %1 MiB now, at most %2 MiB")
                        .replacen("%1", &(s.mem_kib / 1024).to_string(), 1)
                        .replacen("%2", &(peak_mem / 1024).to_string(), 1),
                );
            }
            None => {
                self.cpu_text
                    .set_text(&tr("No figures: the qube is not running."));
                self.mem_text.set_text("");
            }
        }
        for g in &self.graphs {
            g.queue_draw();
        }
    }

    /// Takes it off the table (the window is closing).
    pub(super) fn unparent(&self) {
        if self.popover.parent().is_some() {
            self.popover.unparent();
        }
    }

    /// Whether it is on screen.
    pub fn is_open(&self) -> bool {
        self.popover.is_visible()
    }

    /// The popover itself (for tests and screenshots).
    pub fn popover(&self) -> &gtk::Popover {
        &self.popover
    }

    /// The figures it says (for tests).
    pub fn texts(&self) -> (String, String) {
        (self.cpu_text.text().into(), self.mem_text.text().into())
    }
}

impl App {
    /// Opens the usage popover of `vm` (or of the selected qube), pointing at its row.
    pub(super) fn show_usage(&mut self, vm: Option<String>) {
        let Some(vm) = vm.or_else(|| self.single()) else {
            return;
        };
        let Some(row) = self.rows.get(&vm) else {
            return;
        };
        if let Some(old) = self.usage.take() {
            old.popover.popdown();
        }
        let builder =
            gtk::Builder::from_resource(&format!("{}/ui/usage.ui", crate::resources::BASE));
        let popover: gtk::Popover = ui_object(&builder, "usage");
        let title: gtk::Label = ui_object(&builder, "title");
        title.set_text(&tr("%s: CPU and memory use").replacen("%s", &vm, 1));
        let history = row.history();
        let mut graphs = Vec::new();
        for (series, holder) in [(Series::Cpu, "cpu_box"), (Series::Memory, "mem_box")] {
            let (area, source) = graph(series, KEEP_SECS, "usage-graph");
            area.set_content_width(360);
            area.set_content_height(96);
            *source.borrow_mut() = Some(history.clone());
            let name = match series {
                Series::Cpu => tr("CPU use over the last ten minutes"),
                Series::Memory => tr("Memory use over the last ten minutes"),
            };
            crate::a11y::set_name(&area, &name);
            ui_object::<gtk::Box>(&builder, holder).append(&area);
            graphs.push(area);
        }
        let view = self.table.view.clone();
        popover.set_parent(&view);
        // Point at the qube's CPU figure when its row is on screen.
        let cell = crate::table::cell_of(&view, &vm, Column::Cpu);
        if let Some(bounds) = cell.and_then(|c| c.compute_bounds(&view)) {
            popover.set_pointing_to(Some(&gtk::gdk::Rectangle::new(
                bounds.x() as i32,
                bounds.y() as i32,
                bounds.width() as i32,
                bounds.height() as i32,
            )));
        }
        popover.connect_closed(|p| {
            // A popover given a parent by hand is unparented by hand, once it is hidden.
            let p = p.clone();
            gtk::glib::idle_add_local_once(move || p.unparent());
        });
        let usage = Usage {
            vm,
            popover: popover.clone(),
            graphs: [graphs[0].clone(), graphs[1].clone()],
            cpu_text: ui_object(&builder, "cpu_text"),
            mem_text: ui_object(&builder, "mem_text"),
            history,
        };
        usage.refresh();
        popover.popup();
        self.usage = Some(usage);
    }

    /// After a statistics round: the open popover follows its qube.
    pub(super) fn refresh_usage(&self) {
        if let Some(u) = &self.usage
            && u.is_open()
        {
            u.refresh();
        }
    }

    /// Whether the selected qube has figures to show (it runs).
    pub(super) fn usage_of_selected(&self) -> Option<String> {
        let vm = self.single()?;
        let info = self.infos.get(&vm)?;
        (info.state != "Halted").then_some(vm)
    }
}
