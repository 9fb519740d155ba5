//! Drawing a qube's CPU and memory history ([`crate::history`]): the table's sparklines and
//! the usage popover's graphs. Cheap by design: a sparkline is one polyline over the last two
//! minutes, drawn with cairo only while its row is on screen and only when a sample arrives.

use std::cell::RefCell;
use std::rc::Rc;

use relm4::gtk;
use relm4::gtk::cairo;
use relm4::gtk::prelude::*;

use crate::history::{History, now};

/// Which figure a graph shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// CPU use, 0 to 100 %.
    Cpu,
    /// Memory in use, from 0 to the highest value shown.
    Memory,
}

/// Seconds a sparkline spans.
pub const SPARK_SECS: u32 = 120;

/// Where a graph finds the history it draws (swapped as table rows are recycled).
pub type Source = Rc<RefCell<Option<Rc<RefCell<History>>>>>;

/// Draws `series` of `history` over the last `span` seconds into a `width` × `height` area:
/// a line with the area under it lightly filled, in `colour`.
pub fn draw(
    cr: &cairo::Context,
    (width, height): (f64, f64),
    history: &History,
    series: Series,
    span: u32,
    colour: gtk::gdk::RGBA,
) {
    let end = now();
    let start = end.saturating_sub(span);
    let points: Vec<(u32, f64)> = history
        .since(start)
        .map(|s| {
            let v = match series {
                Series::Cpu => f64::from(s.cpu),
                Series::Memory => f64::from(s.mem_kib),
            };
            (s.at, v)
        })
        .collect();
    if points.is_empty() {
        return;
    }
    let top = match series {
        Series::Cpu => 100.0,
        // A little headroom, so the line does not run along the top edge.
        Series::Memory => points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15,
    };
    let x = |at: u32| width - f64::from(end.saturating_sub(at)) / f64::from(span.max(1)) * width;
    let y = |v: f64| height - 1.0 - (v / top).clamp(0.0, 1.0) * (height - 2.0);
    cr.set_line_width(1.25);
    cr.set_line_join(cairo::LineJoin::Round);
    let (first, last) = (points[0], points[points.len() - 1]);
    cr.move_to(x(first.0), y(first.1));
    for (at, v) in &points[1..] {
        cr.line_to(x(*at), y(*v));
    }
    // A single sample is a short dash at the right end.
    if points.len() == 1 {
        cr.line_to(width, y(last.1));
    }
    let (r, g, b, a) = (
        f64::from(colour.red()),
        f64::from(colour.green()),
        f64::from(colour.blue()),
        f64::from(colour.alpha()),
    );
    cr.set_source_rgba(r, g, b, a);
    let _ = cr.stroke_preserve();
    cr.line_to(x(last.0).max(x(first.0)), height);
    cr.line_to(x(first.0), height);
    cr.close_path();
    cr.set_source_rgba(r, g, b, a * 0.25);
    let _ = cr.fill();
}

/// A drawing area showing `series` of whatever history `source` holds, over `span` seconds, in
/// the colour its style gives it (style classes `sparkline` or `usage-graph`, and `cpu` or
/// `memory`, in the style sheet).
pub fn graph(series: Series, span: u32, class: &str) -> (gtk::DrawingArea, Source) {
    let area = gtk::DrawingArea::new();
    area.add_css_class(class);
    area.add_css_class(match series {
        Series::Cpu => "cpu",
        Series::Memory => "memory",
    });
    let source: Source = Rc::default();
    {
        let source = source.clone();
        area.set_draw_func(move |area, cr, w, h| {
            if let Some(history) = source.borrow().as_ref() {
                #[allow(deprecated)] // gtk_widget_get_color is GTK 4.10
                let colour = area.style_context().color();
                draw(
                    cr,
                    (f64::from(w), f64::from(h)),
                    &history.borrow(),
                    series,
                    span,
                    colour,
                );
            }
        });
    }
    (area, source)
}

/// A table cell's sparkline: small, two minutes wide.
pub fn sparkline(series: Series) -> (gtk::DrawingArea, Source) {
    let (area, source) = graph(series, SPARK_SECS, "sparkline");
    area.set_content_width(48);
    area.set_content_height(16);
    area.set_valign(gtk::Align::Center);
    (area, source)
}
