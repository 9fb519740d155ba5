//! The resource bundle the programs carry inside them: the window layouts of `ui/`, the style
//! sheet and the icons of `resources/` (compiled by `build.rs`, or by meson for installs), and
//! what is made from it — the style for the display, the bundle's icons in the icon theme, and
//! the qube icons ([`crate::qube_icons`]) as textures in label colours.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Once;

use relm4::gtk;
use relm4::gtk::gdk;
use relm4::gtk::gio;
use relm4::gtk::glib;
use relm4::gtk::prelude::*;

use crate::qube_icons::{QubeKind, coloured_svg, palette, rasterise};

/// Where the bundle's files are (the application's resource base path).
pub const BASE: &str = "/org/qubes_os/QubeManager";

/// Registers the bundle (once): before any window of `ui/` is built.
pub fn register() {
    static ONCE: Once = Once::new();
    // The bundle is compiled into the program (build.rs or meson runs glib-compile-resources
    // on this source tree): the same bytes on every run, never read from the system, and
    // loaded by every GUI test. Only a broken build could make GLib refuse it.
    #[allow(clippy::expect_used)]
    ONCE.call_once(|| {
        gio::resources_register_include!("qubes-qube-manager.gresource")
            .expect("the embedded resource bundle is valid");
    });
}

/// The object `id`, of type `T`, of a window layout of the bundle (`builder` was made from one
/// of the `ui/` files).
///
/// # Panics
///
/// When the layout has no such object. The layouts are compiled into the program together with
/// the code that names their objects, so that is a mistake in this source tree, the same on
/// every run and found by the GUI tests (they open every window), never something the system
/// or the daemon's data could cause.
pub(crate) fn ui_object<T: IsA<glib::Object>>(builder: &gtk::Builder, id: &str) -> T {
    builder.object(id).unwrap_or_else(|| {
        panic!(
            "the window layout has no {} with the id {id}",
            T::static_type().name()
        )
    })
}

/// Registers the bundle and gives the default display the style sheet and the bundle's icons
/// (once per process; needs GTK initialised).
pub fn init() {
    register();
    thread_local! {
        static STYLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if STYLED.with(|s| s.replace(true)) {
        return;
    }
    let Some(display) = gdk::Display::default() else {
        return;
    };
    let css = gtk::CssProvider::new();
    css.load_from_resource(&format!("{BASE}/style.css"));
    gtk::style_context_add_provider_for_display(
        &display,
        &css,
        gtk::STYLE_PROVIDER_PRIORITY_APPLICATION,
    );
    gtk::IconTheme::for_display(&display).add_resource_path(&format!("{BASE}/icons"));
}

/// `0xRRGGBB` (a label colour from the daemon) as bytes; grey when it is not that.
pub fn label_rgb(untrusted: &str) -> [u8; 3] {
    crate::qube_icons::parse_colour(untrusted).unwrap_or([0x88, 0x88, 0x88])
}

/// Side of a qube icon's texture in pixels: twice the size it is shown at.
const TEXTURE_SIDE: i32 = 32;

/// The icon of a qube of `kind` with label colour `colour` (`0xRRGGBB`), rendered once per
/// kind and colour (twice the size it is shown at, so it stays sharp when scaled).
pub fn qube_texture(kind: QubeKind, colour: &str) -> gdk::Texture {
    thread_local! {
        static CACHE: RefCell<HashMap<(QubeKind, [u8; 3]), gdk::Texture>> =
            RefCell::new(HashMap::new());
    }
    let rgb = label_rgb(colour);
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .entry((kind, rgb))
            .or_insert_with(|| {
                let svg = coloured_svg(kind, rgb, TEXTURE_SIDE.unsigned_abs());
                let svg = glib::Bytes::from_owned(svg.into_bytes());
                // GTK reads SVG through a gdk-pixbuf loader the system may lack (librsvg's).
                gdk::Texture::from_bytes(&svg).unwrap_or_else(|e| {
                    tracing::warn!("cannot render a qube icon as SVG ({e}): drawn by hand");
                    rasterised_texture(kind, rgb)
                })
            })
            .clone()
    })
}

/// The icon of `kind` in label colour `rgb` without an SVG loader: the same shapes, drawn here
/// in the four colours of the tray's icons ([`rasterise`]).
fn rasterised_texture(kind: QubeKind, rgb: [u8; 3]) -> gdk::Texture {
    let side = TEXTURE_SIDE.unsigned_abs();
    let pixels = rgba(&rasterise(kind, side), palette(rgb));
    gdk::MemoryTexture::new(
        TEXTURE_SIDE,
        TEXTURE_SIDE,
        gdk::MemoryFormat::R8g8b8a8,
        &glib::Bytes::from_owned(pixels),
        side as usize * 4,
    )
    .upcast()
}

/// Palette indices (0 transparent, then the colours of `palette`) as RGBA bytes.
fn rgba(indices: &[u8], palette: [[u8; 3]; 3]) -> Vec<u8> {
    let colour = |i: u8| match usize::from(i).checked_sub(1).and_then(|i| palette.get(i)) {
        Some(&[r, g, b]) => [r, g, b, 0xff],
        None => [0; 4],
    };
    indices.iter().flat_map(|&i| colour(i)).collect()
}

/// An image of a qube's icon, 16 pixels, named for assistive technologies.
pub fn qube_image(kind: QubeKind, colour: &str) -> gtk::Image {
    let image = gtk::Image::from_paintable(Some(&qube_texture(kind, colour)));
    image.set_pixel_size(16);
    image.set_tooltip_text(Some(&kind.title()));
    crate::a11y::set_name(&image, &kind.title());
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_drawn_icons_use_the_palette() {
        let pal = palette([0x11, 0x22, 0x33]);
        assert_eq!(
            rgba(&[0, 1, 2, 3], pal),
            [
                [0, 0, 0, 0],
                [pal[0][0], pal[0][1], pal[0][2], 0xff],
                [0x11, 0x22, 0x33, 0xff],
                [0xff, 0xff, 0xff, 0xff],
            ]
            .concat()
        );
        let side = TEXTURE_SIDE.unsigned_abs();
        let pixels = rgba(&rasterise(QubeKind::App, side), pal);
        assert_eq!(pixels.len(), (side * side * 4) as usize);
        // Some of the icon is drawn in the label's colour, some of it is transparent.
        assert!(pixels.chunks(4).any(|p| p == [0x11, 0x22, 0x33, 0xff]));
        assert!(pixels.chunks(4).any(|p| p[3] == 0));
    }
}
