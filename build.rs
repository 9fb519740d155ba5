//! Compiles `po/*.po` into `$OUT_DIR/locale` so that translations work from a plain cargo build
//! (demo, tests). A meson install passes `QUBES_MANAGER_LOCALEDIR` and uses its own catalogues.

use std::path::PathBuf;
use std::process::Command;

fn main() {
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
