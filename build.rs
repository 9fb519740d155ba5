//! Compiles `po/*.po` into `$OUT_DIR/locale` so that translations work from a plain cargo build
//! (demo, tests). A meson install passes `QUBES_MANAGER_LOCALEDIR` and uses its own catalogues.
//!
//! Compiles the resource bundle (`resources/org.qubes_os.QubeManager.gresource.xml`: the `.ui`
//! files of `ui/`, the style sheet and the icons of `resources/`) into
//! `$OUT_DIR/qubes-qube-manager.gresource`, which the programs embed; a meson build compiles
//! it itself and passes it in `QUBES_MANAGER_GRESOURCE`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    compile_schemas();
    compile_resources();
    println!("cargo:rerun-if-changed=po");
    println!("cargo:rerun-if-env-changed=QUBES_MANAGER_LOCALEDIR");
    if let Ok(dir) = std::env::var("QUBES_MANAGER_LOCALEDIR") {
        println!("cargo:rustc-env=QUBES_MANAGER_LOCALEDIR={dir}");
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("locale");
    let linguas = std::fs::read_to_string("po/LINGUAS").unwrap_or_default();
    for lang in linguas.split_whitespace() {
        let dir = out.join(lang).join("LC_MESSAGES");
        std::fs::create_dir_all(&dir).expect("locale dir");
        let status = Command::new("msgfmt")
            .arg("-o")
            .arg(dir.join("qubes-qube-manager.mo"))
            .arg(format!("po/{lang}.po"))
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            println!(
                "cargo:warning=msgfmt failed for {lang}: translations unavailable (install gettext)"
            );
        }
    }
    println!("cargo:rustc-env=QUBES_MANAGER_LOCALEDIR={}", out.display());
}

/// Compiles the GSettings schema into `$OUT_DIR/schemas` for uninstalled runs (demo, tests);
/// an installed schema takes precedence at run time.
fn compile_schemas() {
    println!("cargo:rerun-if-changed=data/org.qubes_os.QubeManager.gschema.xml");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("schemas");
    std::fs::create_dir_all(&out).expect("schema dir");
    let _ = std::fs::copy(
        "data/org.qubes_os.QubeManager.gschema.xml",
        out.join("org.qubes_os.QubeManager.gschema.xml"),
    );
    let status = Command::new("glib-compile-schemas")
        .arg("--strict")
        .arg(&out)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!(
            "cargo:warning=glib-compile-schemas failed: view state is not kept (install libglib2.0-bin)"
        );
    }
    println!("cargo:rustc-env=QUBES_MANAGER_SCHEMADIR={}", out.display());
}

/// The resource bundle the programs embed (`gio::resources_register_include!`): meson's when it
/// passes one, else compiled here with `glib-compile-resources` (package libglib2.0-dev-bin).
fn compile_resources() {
    println!("cargo:rerun-if-changed=ui");
    println!("cargo:rerun-if-changed=resources");
    println!("cargo:rerun-if-env-changed=QUBES_MANAGER_GRESOURCE");
    let target = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"))
        .join("qubes-qube-manager.gresource");
    if let Ok(bundle) = std::env::var("QUBES_MANAGER_GRESOURCE") {
        std::fs::copy(&bundle, &target).expect("the resource bundle meson compiled");
        return;
    }
    let status = Command::new("glib-compile-resources")
        .arg("--sourcedir=.")
        .arg("--sourcedir=resources")
        .arg(format!("--target={}", target.display()))
        .arg("resources/org.qubes_os.QubeManager.gresource.xml")
        .status();
    // Without the bundle the windows cannot be built: stop here, saying what is missing.
    assert!(
        matches!(status, Ok(s) if s.success()),
        "glib-compile-resources failed or is missing (install libglib2.0-dev-bin): {status:?}"
    );
}
