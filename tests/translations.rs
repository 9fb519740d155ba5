//! Every string the sources mark for translation has a translation in every language of
//! `po/LINGUAS`: extracts the messages with xgettext (as `meson` does for `update-po`) and
//! merges them into each catalogue.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install gettext)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The msgids in a PO text (without the header's empty one).
fn msgids(po: &str) -> Vec<String> {
    po.lines()
        .filter_map(|l| l.strip_prefix("msgid \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .filter(|id| !id.is_empty())
        .collect()
}

#[test]
fn every_marked_string_is_translated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let po = root.join("po");
    let dir = tempfile::tempdir().expect("temporary directory");
    let pot = dir.path().join("messages.pot");
    // Rust sources (xgettext reads them as C), the window layouts of ui/ and the data files
    // meson translates: desktop file, metainfo and GSettings schema (xgettext knows their
    // formats).
    let files: Vec<String> = std::fs::read_to_string(po.join("POTFILES.in"))
        .expect("POTFILES.in")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let sources: Vec<String> = files
        .iter()
        .filter(|l| l.ends_with(".rs"))
        .cloned()
        .collect();
    for data in [
        "data/org.qubes_os.QubeManager.desktop.in",
        "data/org.qubes_os.QubeManager.metainfo.xml.in",
        "data/org.qubes_os.QubeManager.gschema.xml",
        "data/org.qubes_os.QuiDomains.desktop.in",
    ] {
        assert!(
            files.iter().any(|f| f == data),
            "{data} is missing from POTFILES.in"
        );
    }
    assert!(sources.len() >= 5, "POTFILES.in lists the sources");
    // Every window layout (xgettext reads GtkBuilder files: their translatable="yes" strings).
    for entry in std::fs::read_dir(root.join("ui")).expect("ui directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "ui") {
            let rel = format!("ui/{}", path.file_name().unwrap().to_string_lossy());
            assert!(files.contains(&rel), "{rel} is missing from POTFILES.in");
        }
    }
    // Every source that calls tr() must be listed, or its strings are never extracted.
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // A call of tr(), not of push_str() and the like.
            let calls_tr = text.match_indices("tr(\"").any(|(i, _)| {
                !text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if calls_tr {
                assert!(sources.contains(&rel), "{rel} is missing from POTFILES.in");
            }
        }
    }
    run(Command::new("xgettext")
        .current_dir(root)
        .args([
            "--from-code=UTF-8",
            "--keyword=tr",
            "--keyword=noop_tr",
            "--keyword=tr_n:1,2",
            "-o",
        ])
        .arg(&pot)
        .args(&files));
    let extracted = msgids(&std::fs::read_to_string(&pot).expect("pot"));
    assert!(
        extracted.iter().any(|m| m == "Qube Manager")
            && extracted.iter().any(|m| m == "There is no qube named {0}.")
            && extracted.iter().any(|m| m == "See and manage your qubes")
            && extracted.iter().any(|m| m == "Which qubes the table lists")
            && extracted
                .iter()
                .any(|m| m == "Search qubes by name, type, label or tag")
            && extracted.iter().any(|m| m == "Memory and processors"),
        "extraction found the window title, the error catalogue, the desktop file, the schema and the .ui files"
    );
    let languages = std::fs::read_to_string(po.join("LINGUAS")).expect("LINGUAS");
    let languages: Vec<&str> = languages.split_whitespace().collect();
    assert!(languages.contains(&"de"), "German is required");
    for lang in languages {
        let merged = dir.path().join(format!("{lang}.po"));
        run(Command::new("msgmerge")
            .args(["--quiet", "--no-fuzzy-matching", "-o"])
            .arg(&merged)
            .arg(po.join(format!("{lang}.po")))
            .arg(&pot));
        let missing = msgids(&run(Command::new("msgattrib")
            .args(["--untranslated", "--no-obsolete"])
            .arg(&merged)));
        assert!(missing.is_empty(), "{lang}: not translated: {missing:?}");
        run(Command::new("msgfmt")
            .args(["--check", "-o", "/dev/null"])
            .arg(po.join(format!("{lang}.po"))));
    }
}
