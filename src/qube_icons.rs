//! The qube icons: one per kind of qube (app, template, standalone, disposable, disposable
//! template, dom0, remote), drawn in the label's colour. They are our own SVGs
//! (`resources/qubes/*.svg`, also in the resource bundle) in a small subset of SVG — filled
//! `rect` (with `rx`), `circle` and `polygon` in three placeholder colours — so that the same
//! file gives the window its icons (GTK renders the recoloured SVG) and the tray its tiny
//! palette PNGs (rasterised here, without GTK).

use crate::i18n::tr;

/// The kinds of qube that have an icon of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QubeKind {
    /// An app qube (`AppVM`).
    App,
    /// A template (`TemplateVM`).
    Template,
    /// A standalone qube (`StandaloneVM`).
    Standalone,
    /// A disposable (`DispVM`).
    Disposable,
    /// An app qube that is a disposable template (`template_for_dispvms`).
    DisposableTemplate,
    /// The administrative qube (`AdminVM`, dom0).
    Dom0,
    /// A qube on another machine (`RemoteVM`).
    Remote,
}

/// Placeholder colours in the SVG files: the outline, the fill (the label's colour) and the
/// glyph drawn on it.
const OUTLINE: &str = "#800080";
const FILL: &str = "#ff00ff";
const GLYPH: &str = "#ffffff";

impl QubeKind {
    /// Every kind, in the order of the create dialog.
    pub const ALL: [QubeKind; 7] = [
        QubeKind::App,
        QubeKind::Template,
        QubeKind::Standalone,
        QubeKind::Disposable,
        QubeKind::DisposableTemplate,
        QubeKind::Dom0,
        QubeKind::Remote,
    ];

    /// The kind of a qube of `class` (`template_for_dispvms` makes an app qube a disposable
    /// template).
    pub fn of(class: &str, dispvm_template: bool) -> QubeKind {
        match class {
            "TemplateVM" => QubeKind::Template,
            "StandaloneVM" => QubeKind::Standalone,
            "DispVM" => QubeKind::Disposable,
            "AdminVM" => QubeKind::Dom0,
            "RemoteVM" => QubeKind::Remote,
            _ if dispvm_template => QubeKind::DisposableTemplate,
            _ => QubeKind::App,
        }
    }

    /// The icon's file name in `resources/qubes/` (and in the bundle), without `.svg`.
    pub fn id(self) -> &'static str {
        match self {
            QubeKind::App => "app",
            QubeKind::Template => "template",
            QubeKind::Standalone => "standalone",
            QubeKind::Disposable => "disposable",
            QubeKind::DisposableTemplate => "disposable-template",
            QubeKind::Dom0 => "dom0",
            QubeKind::Remote => "remote",
        }
    }

    /// What the icon shows, for people (tooltips, accessible names).
    pub fn title(self) -> String {
        match self {
            QubeKind::App => tr("App qube"),
            QubeKind::Template => tr("Template"),
            QubeKind::Standalone => tr("Standalone qube"),
            QubeKind::Disposable => tr("Disposable qube"),
            QubeKind::DisposableTemplate => tr("Disposable template"),
            QubeKind::Dom0 => tr("Administrative qube"),
            QubeKind::Remote => tr("Remote qube"),
        }
    }

    /// The SVG text with its placeholder colours.
    pub fn svg(self) -> &'static str {
        match self {
            QubeKind::App => include_str!("../resources/qubes/app.svg"),
            QubeKind::Template => include_str!("../resources/qubes/template.svg"),
            QubeKind::Standalone => include_str!("../resources/qubes/standalone.svg"),
            QubeKind::Disposable => include_str!("../resources/qubes/disposable.svg"),
            QubeKind::DisposableTemplate => {
                include_str!("../resources/qubes/disposable-template.svg")
            }
            QubeKind::Dom0 => include_str!("../resources/qubes/dom0.svg"),
            QubeKind::Remote => include_str!("../resources/qubes/remote.svg"),
        }
    }
}

/// `0xRRGGBB` (the Admin API's label colour) as bytes; `None` if it is not that.
pub fn parse_colour(untrusted: &str) -> Option<[u8; 3]> {
    let hex = untrusted.strip_prefix("0x")?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// The colours an icon is drawn in for a label colour: outline, fill, glyph.
pub fn palette(label: [u8; 3]) -> [[u8; 3]; 3] {
    // The outline is the label's colour darkened, so a light label keeps an edge on a light
    // background; the glyph is white.
    let dark = label.map(|c| (u16::from(c) * 3 / 5) as u8);
    [dark, label, [0xff, 0xff, 0xff]]
}

fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// The icon of `kind` in the colour `label`, as SVG text `size` pixels wide and high.
pub fn coloured_svg(kind: QubeKind, label: [u8; 3], size: u32) -> String {
    let [outline, fill, glyph] = palette(label);
    kind.svg()
        .replace(OUTLINE, &hex(outline))
        .replace(FILL, &hex(fill))
        .replace(GLYPH, &hex(glyph))
        .replacen(
            "width=\"16\" height=\"16\"",
            &format!("width=\"{size}\" height=\"{size}\""),
            1,
        )
}

/// One filled shape of an icon, in the 16 × 16 view box.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        r: f32,
    },
    Circle {
        cx: f32,
        cy: f32,
        r: f32,
    },
    Polygon(Vec<(f32, f32)>),
}

impl Shape {
    fn contains(&self, px: f32, py: f32) -> bool {
        match self {
            Shape::Rect { x, y, w, h, r } => {
                if px < *x || py < *y || px > x + w || py > y + h {
                    return false;
                }
                // In a corner square: inside the quarter circle only.
                let cx = px.clamp(x + r, x + w - r);
                let cy = py.clamp(y + r, y + h - r);
                (px - cx).powi(2) + (py - cy).powi(2) <= r * r
            }
            Shape::Circle { cx, cy, r } => (px - cx).powi(2) + (py - cy).powi(2) <= r * r,
            Shape::Polygon(points) => {
                // Even-odd ray casting.
                let mut inside = false;
                let mut j = points.len().wrapping_sub(1);
                for (i, &(xi, yi)) in points.iter().enumerate() {
                    let (xj, yj) = points[j];
                    if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
                        inside = !inside;
                    }
                    j = i;
                }
                inside
            }
        }
    }
}

/// The value of attribute `name` in an element's text.
fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}

fn num(element: &str, name: &str) -> Option<f32> {
    attr(element, name)?.parse().ok()
}

/// The shapes of an icon's SVG with their palette index (1 outline, 2 fill, 3 glyph); `None`
/// when the file leaves the subset (an element or colour the rasteriser does not know).
fn shapes(svg: &str) -> Option<Vec<(Shape, u8)>> {
    let mut out = Vec::new();
    for piece in svg.split('<').skip(1) {
        let element = piece.split('>').next()?;
        let name = element.split_whitespace().next()?.trim_end_matches('/');
        if matches!(name, "svg" | "title" | "/title" | "/svg" | "?xml") {
            continue;
        }
        let colour = match attr(element, "fill")? {
            OUTLINE => 1,
            FILL => 2,
            GLYPH => 3,
            _ => return None,
        };
        let shape = match name {
            "rect" => Shape::Rect {
                x: num(element, "x")?,
                y: num(element, "y")?,
                w: num(element, "width")?,
                h: num(element, "height")?,
                r: num(element, "rx").unwrap_or(0.0),
            },
            "circle" => Shape::Circle {
                cx: num(element, "cx")?,
                cy: num(element, "cy")?,
                r: num(element, "r")?,
            },
            "polygon" => Shape::Polygon(
                attr(element, "points")?
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        };
        out.push((shape, colour));
    }
    Some(out)
}

/// The icon of `kind` as `size` × `size` palette indices, row by row: 0 transparent, 1
/// outline, 2 fill, 3 glyph (see [`palette`]). Each pixel takes the colour most of its 16
/// samples have, so edges stay crisp in a four-colour image.
pub fn rasterise(kind: QubeKind, size: u32) -> Vec<u8> {
    let shapes = shapes(kind.svg()).unwrap_or_default();
    let scale = 16.0 / size as f32;
    let mut out = Vec::with_capacity((size * size) as usize);
    for y in 0..size {
        for x in 0..size {
            let mut counts = [0u8; 4];
            for sy in 0..4 {
                for sx in 0..4 {
                    let px = (x as f32 + (sx as f32 + 0.5) / 4.0) * scale;
                    let py = (y as f32 + (sy as f32 + 0.5) / 4.0) * scale;
                    let colour = shapes
                        .iter()
                        .rev()
                        .find(|(s, _)| s.contains(px, py))
                        .map_or(0, |(_, c)| *c);
                    counts[colour as usize] += 1;
                }
            }
            let index = if counts[0] >= 8 {
                0
            } else {
                (1..4).max_by_key(|i| (counts[*i], *i)).unwrap_or(2) as u8
            };
            out.push(index);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_icon_stays_in_the_subset_the_tray_draws() {
        for kind in QubeKind::ALL {
            let shapes = shapes(kind.svg()).unwrap_or_else(|| panic!("{kind:?} leaves the subset"));
            assert!(shapes.len() >= 3, "{kind:?}: outline, fill and a glyph");
            for colour in 1..=3 {
                assert!(
                    shapes.iter().any(|(_, c)| *c == colour),
                    "{kind:?} lacks colour {colour}"
                );
            }
        }
    }

    #[test]
    fn kinds_follow_class_and_disposable_template() {
        assert_eq!(QubeKind::of("AppVM", false), QubeKind::App);
        assert_eq!(QubeKind::of("AppVM", true), QubeKind::DisposableTemplate);
        assert_eq!(QubeKind::of("TemplateVM", true), QubeKind::Template);
        assert_eq!(QubeKind::of("DispVM", false), QubeKind::Disposable);
        assert_eq!(QubeKind::of("AdminVM", false), QubeKind::Dom0);
        assert_eq!(QubeKind::of("RemoteVM", false), QubeKind::Remote);
        assert_eq!(QubeKind::of("StandaloneVM", false), QubeKind::Standalone);
    }

    #[test]
    fn icons_rasterise_with_transparent_corners_and_a_glyph_inside() {
        for kind in QubeKind::ALL {
            let px = rasterise(kind, 16);
            assert_eq!(px.len(), 256);
            assert_eq!(px[0], 0, "{kind:?}: top left corner transparent");
            assert_eq!(px[255], 0, "{kind:?}: bottom right corner transparent");
            assert!(
                px.contains(&1) && px.contains(&2) && px.contains(&3),
                "{kind:?}"
            );
        }
        // The app qube's window: white frame at the top of the glyph, label colour inside.
        let app = rasterise(QubeKind::App, 16);
        assert_eq!(app[4 * 16 + 8], 3);
        assert_eq!(app[8 * 16 + 8], 2);
        assert_eq!(app[8 * 16 + 1], 1, "outline on the left");
        // Shapes differ between kinds (a disposable is round: its corner area is empty).
        let disp = rasterise(QubeKind::Disposable, 16);
        assert_eq!(disp[2 * 16 + 1], 0);
        assert_ne!(app[2 * 16 + 1], 0);
    }

    #[test]
    fn colours_are_put_in_and_the_size_set() {
        let svg = coloured_svg(QubeKind::App, [0xcc, 0, 0], 32);
        assert!(svg.contains("fill=\"#cc0000\""));
        assert!(svg.contains("fill=\"#7a0000\""), "outline darkened: {svg}");
        assert!(svg.contains("width=\"32\" height=\"32\""));
        assert!(!svg.contains(FILL) && !svg.contains(OUTLINE));
    }
}
