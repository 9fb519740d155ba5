//! Which GTK renderer the Qube Manager draws with.
//!
//! The window is a table and a few forms: nothing GTK's OpenGL renderer makes faster. In a GUI
//! qube there is no GPU at all, and software OpenGL (llvmpipe) costs about 6 % of a core while
//! idle and 55 MB of memory (LLVM and the Mesa driver mapped in) just to pick an X visual. So
//! unless the user chose a renderer, the Qube Manager draws with cairo and keeps OpenGL
//! uninitialised. `GSK_RENDERER=gl` (or any other renderer) is respected as given.

use std::ffi::OsString;

/// The environment GTK should start with, given the current `GSK_RENDERER` and `GDK_DEBUG`:
/// `None` when the user chose an OpenGL or Vulkan renderer, else the values to set.
pub fn software_env(
    renderer: Option<OsString>,
    gdk_debug: Option<OsString>,
) -> Option<(OsString, OsString)> {
    match renderer {
        Some(r) if !r.is_empty() && r != "cairo" => None,
        _ => {
            let debug = match gdk_debug {
                Some(d)
                    if d.to_string_lossy()
                        .split([',', ':', ' '])
                        .any(|f| f == "gl-disable") =>
                {
                    d
                }
                Some(d) if !d.is_empty() => {
                    let mut d = d;
                    d.push(",gl-disable");
                    d
                }
                _ => OsString::from("gl-disable"),
            };
            Some((OsString::from("cairo"), debug))
        }
    }
}

/// Applies [`software_env`] to this process.
///
/// Call it first thing in `main`: it changes environment variables, which is only sound while
/// no other thread runs, and GTK reads them when it initialises.
pub fn prefer_software_rendering() {
    if let Some((renderer, debug)) = software_env(
        std::env::var_os("GSK_RENDERER"),
        std::env::var_os("GDK_DEBUG"),
    ) {
        // SAFETY: called at the start of main, before any thread is spawned (documented
        // contract of this function), so nothing reads the environment concurrently.
        unsafe {
            std::env::set_var("GSK_RENDERER", renderer);
            std::env::set_var("GDK_DEBUG", debug);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(r: Option<&str>, d: Option<&str>) -> Option<(String, String)> {
        software_env(r.map(OsString::from), d.map(OsString::from)).map(|(a, b)| {
            (
                a.to_string_lossy().into_owned(),
                b.to_string_lossy().into_owned(),
            )
        })
    }

    #[test]
    fn unset_renderer_becomes_cairo_without_gl() {
        assert_eq!(env(None, None), Some(("cairo".into(), "gl-disable".into())));
        assert_eq!(
            env(Some(""), None),
            Some(("cairo".into(), "gl-disable".into()))
        );
    }

    #[test]
    fn user_debug_flags_are_kept() {
        assert_eq!(
            env(Some("cairo"), Some("interactive")),
            Some(("cairo".into(), "interactive,gl-disable".into()))
        );
        assert_eq!(
            env(None, Some("events,gl-disable")),
            Some(("cairo".into(), "events,gl-disable".into()))
        );
    }

    #[test]
    fn chosen_gl_renderer_is_respected() {
        assert_eq!(env(Some("gl"), None), None);
        assert_eq!(env(Some("ngl"), Some("gl-disable")), None);
    }
}
