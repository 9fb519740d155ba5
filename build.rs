//! Compiles `po/*.po` into `$OUT_DIR/locale` so that translations work from a plain cargo build
//! (demo, tests). A meson install passes `QUBES_MANAGER_LOCALEDIR` and uses its own catalogues.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    compile_schemas();
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
