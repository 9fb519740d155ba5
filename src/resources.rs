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

use crate::qube_icons::{QubeKind, coloured_svg};

/// Where the bundle's files are (the application's resource base path).
pub const BASE: &str = "/org/qubes_os/QubeManager";

/// Registers the bundle (once): before any window of `ui/` is built.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gio::resources_register_include!("qubes-qube-manager.gresource")
            .expect("the embedded resource bundle is valid");
    });
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
                let svg = coloured_svg(kind, rgb, 32);
                gdk::Texture::from_bytes(&glib::Bytes::from_owned(svg.into_bytes()))
                    .expect("our own SVG renders")
            })
            .clone()
    })
}

/// An image of a qube's icon, 16 pixels, named for assistive technologies.
pub fn qube_image(kind: QubeKind, colour: &str) -> gtk::Image {
    let image = gtk::Image::from_paintable(Some(&qube_texture(kind, colour)));
    image.set_pixel_size(16);
    image.set_tooltip_text(Some(&kind.title()));
    crate::a11y::set_name(&image, &kind.title());
    image
}
