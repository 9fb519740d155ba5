//! The GUI's layers point one way: no import cycle between the top-level modules of `src/`
//! (a module is a file `foo.rs` or a folder `foo/`; `A → B` when A's code names `crate::B`,
//! tests left out), and no source file over 800 lines.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file allowed.
const MAX_LINES: usize = 800;

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level modules of a crate's `src/` and their files (`lib.rs`, `main.rs` and `bin/`
/// are the crate's roots, not modules).
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "bin" {
                mods.insert(name, rust_files(&path));
            }
        } else if let Some(stem) = name.strip_suffix(".rs")
            && stem != "lib"
            && stem != "main"
        {
            mods.insert(stem.to_string(), vec![path]);
        }
    }
    mods
}

/// `text` without `#[cfg(test)] mod … { … }` blocks and without `//` comments.
fn without_tests_and_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let is_mod = after.starts_with("mod ") || after.starts_with("pub mod ");
        let Some(open) = after.find('{').filter(|_| is_mod) else {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
            continue;
        };
        out.push_str(&rest[..at]);
        let body = &after[open + 1..];
        let mut depth = 1;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i + 1;
                break;
            }
        }
        rest = &body[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` names as `crate::x`, including those of `use crate::{a, b::c}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// Edges between the modules of `src`.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    mods.iter()
        .map(|(m, files)| {
            let mut to = BTreeSet::new();
            for f in files {
                let text = std::fs::read_to_string(f).expect("source");
                for n in named_modules(&without_tests_and_comments(&text)) {
                    if n != *m && mods.contains_key(&n) {
                        to.insert(n);
                    }
                }
            }
            (m.clone(), to)
        })
        .collect()
}

/// The groups of modules that import each other (strongly connected, more than one), each
/// sorted; Tarjan's algorithm.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in &self.edges[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_import_cycle_between_the_modules_of_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
    assert!(edges.len() > 10, "the modules of src/: {:?}", edges.keys());
    let found = cycles(&edges);
    let explain: Vec<String> = found
        .iter()
        .map(|group| {
            let inside: Vec<String> = group
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| group.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            format!("{} ({})", group.join(", "), inside.join(", "))
        })
        .collect();
    assert!(
        found.is_empty(),
        "modules importing each other: {}",
        explain.join("; ")
    );
}

#[test]
fn no_source_file_over_800_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).expect("source").lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "too long: {long:?}");
}

#[test]
fn the_check_finds_a_cycle_and_ignores_tests_and_comments() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let src = dir.path();
    std::fs::create_dir(src.join("app")).unwrap();
    std::fs::create_dir(src.join("bin")).unwrap();
    let write = |path: &str, text: &str| std::fs::write(src.join(path), text).unwrap();
    write(
        "lib.rs",
        "pub mod app; pub mod clone; pub mod model; pub mod widgets;\n",
    );
    write(
        "app/mod.rs",
        "use crate::{model::Row, widgets};\nmod menus;\n",
    );
    write("app/menus.rs", "fn f() { crate::clone::run(); }\n");
    write("clone.rs", "use crate::app::Msg;\n");
    write(
        "model.rs",
        "// crate::app in a comment\n#[cfg(test)]\nmod tests {\n    use crate::widgets::x;\n    fn f() { if true { crate::app::y(); } }\n}\npub fn g() {}\n",
    );
    write("widgets.rs", "pub fn w() { my_crate::app::z(); }\n");
    write("bin/tool.rs", "use crate::app;\n");
    let e = edges(src);
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        ["app", "clone", "model", "widgets"]
    );
    assert_eq!(
        e["app"].iter().collect::<Vec<_>>(),
        ["clone", "model", "widgets"]
    );
    assert!(e["model"].is_empty(), "tests and comments do not count");
    assert!(
        e["widgets"].is_empty(),
        "another crate's path does not count"
    );
    assert_eq!(cycles(&e), [vec!["app".to_string(), "clone".to_string()]]);
    // Without the way back, no cycle.
    write("clone.rs", "pub fn run() {}\n");
    assert!(cycles(&edges(src)).is_empty());
}
