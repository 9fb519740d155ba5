//! Every exception message our daemon can send reaches the user as a translated sentence: the
//! message formats are read from the daemon's sources (`crates/qubesd/src`: each
//! `QubesError::new(ExcKind::…, …)`, `QubesError::value/qubes/protocol/denied(…)`,
//! `no_such_vm`, and the helpers that wrap them), and each must match an entry of the Qube
//! Manager's catalogue (`src/errors.rs`, translated into every language). A message built at
//! run time from something else (a hypervisor's or the file system's own words) cannot be a
//! sentence of ours: those places are listed below with the reason, and a new one fails the
//! test until it is looked at.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// Helpers of the daemon that take a message and make an exception of a known class.
const HELPERS: &[(&str, &str)] = &[
    ("prop_err(", "QubesPropertyValueError"),
    ("pool_err(", "StoragePoolException"),
];

/// Constructors and the class they give.
const CONSTRUCTORS: &[(&str, Option<&str>)] = &[
    ("QubesError::new(", None),
    ("QubesError::value(", Some("QubesValueError")),
    ("QubesError::qubes(", Some("QubesException")),
    ("QubesError::protocol(", Some("ProtocolError")),
    ("QubesError::denied(", Some("PermissionDenied")),
];

/// Places whose message is not a format of ours, by file and the start of the expression that
/// carries it, with the reason: they are shown as the daemon sent them (the catalogue's
/// fallback).
const FROM_ELSEWHERE: &[(&str, &str, &str)] = &[
    (
        "api/lifecycle.rs",
        "e.0",
        "the hypervisor's own message (no console)",
    ),
    (
        "ops/lifecycle.rs",
        "e.0",
        "the hypervisor's own message (kill, pause, resume)",
    ),
    (
        "ops/storage.rs",
        "e",
        "the file system's own message while copying a volume",
    ),
    (
        "ops/backup.rs",
        "e.message()",
        "the backup engine's message (crates/qubes-backup), worded as the reference's",
    ),
];

/// Places whose message is one of several formats (a condition picks it), with the formats.
const ALTERNATIVES: &[(&str, &str, &[&str])] = &[
    (
        "core.rs",
        "if msg == crate::store::MODIFIED_ELSEWHERE",
        &[
            "Someone else modified qubes.xml in the meantime",
            "Failed to save qubes.xml: {}",
        ],
    ),
    (
        "dispatch.rs",
        "if unchanged",
        &[
            "Internal error in qubesd while handling {}; nothing was changed",
            "Internal error in qubesd while handling {}",
        ],
    ),
    (
        "ops/validate.rs",
        "match props::global_get(st, \"default_template\")",
        &[
            "Cannot unset template. You can set it to the current default ({}) instead",
            "Cannot unset template",
        ],
    ),
    (
        "ops/lifecycle.rs",
        "e.0.replace('%', \"\")",
        // The hypervisor's message on a failed shutdown: shown as it is.
        &[],
    ),
    (
        "ops/qubes.rs",
        "why",
        // devices::provided_to_others
        &["VM has devices assigned to other VMs: {}"],
    ),
    (
        "storage/lvm.rs",
        "if err.is_empty()",
        // else: lvm's own error output, shown as it is.
        &["lvm {} failed"],
    ),
];

/// One construction found in the sources.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
    kind: String,
    /// The message as a catalogue pattern (`{}`, `{r}` fields), or the expression when it is
    /// not a literal or `format!`.
    message: Result<String, String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text from `open` (just after an opening parenthesis) to its closing one.
fn balanced(text: &str) -> Option<&str> {
    let (mut depth, mut in_str, mut escaped) = (1, false, false);
    for (i, c) in text.char_indices() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits the top-level arguments of a call.
fn arguments(text: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut in_str, mut escaped) =
        (Vec::new(), String::new(), 0, false, false);
    for c in text.chars() {
        if in_str {
            cur.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                cur.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                cur.push(c);
            }
            ')' | ']' | '}' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A Rust string literal's text (escapes `\\`, `\"`, `\n` and line continuations).
fn literal(expr: &str) -> Option<String> {
    let inner = expr.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            '\n' => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// A message expression as a catalogue pattern: a literal as it is, a `format!` with each
/// placeholder a field (`{r}` where its value is `py_repr(…)`); braces doubled in a literal
/// are single ones in the message.
fn pattern(expr: &str) -> Result<String, String> {
    let expr = expr
        .trim()
        .trim_end_matches(".to_string()")
        .trim_end_matches(".into()");
    if let Some(text) = literal(expr) {
        return Ok(text);
    }
    // A Python repr of a text: the text in quotes.
    if let Some(inner) = expr.strip_prefix("py_repr(").and_then(balanced) {
        let inner = inner.trim().trim_start_matches('&');
        return Ok(match pattern(inner) {
            Ok(p) => format!("'{p}'"),
            Err(_) => "{r}".to_string(),
        });
    }
    let Some(args) = expr.strip_prefix("format!(").and_then(balanced) else {
        return Err(expr.to_string());
    };
    let args = arguments(args);
    let Some(format) = args.first().and_then(|f| literal(f)) else {
        return Err(expr.to_string());
    };
    let mut positional = args[1..].iter();
    let mut out = String::new();
    let mut rest = format.as_str();
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(tail.as_bytes()[0] as char);
            rest = &tail[2..];
            continue;
        }
        let end = tail.find('}').ok_or_else(|| expr.to_string())?;
        let name = tail[1..end].split(':').next().unwrap_or_default();
        let value = if name.is_empty() {
            positional.next().cloned().unwrap_or_default()
        } else {
            name.to_string()
        };
        out.push_str(if value.starts_with("py_repr(") {
            "{r}"
        } else {
            "{}"
        });
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The closure whose parameter `param` is, when the text before ends in
/// `let NAME = |PARAM…| …`: its name.
fn closure_taking(before: &str, param: &str) -> Option<String> {
    if param.is_empty() || !param.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let line = before.lines().last()?;
    let (lhs, rhs) = line.split_once(" = |")?;
    let name = lhs.trim().strip_prefix("let ")?.trim();
    let first = rhs.split([':', '|']).next()?.trim();
    (first == param).then(|| name.to_string())
}

/// The expression `let NAME = EXPR;` gave `name`, the last time before.
fn bound_before(before: &str, name: &str) -> Option<String> {
    if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let at = before.rfind(&format!("let {name} = "))?;
    let expr = &before[at + name.len() + 7..];
    // Up to the `;` closing the statement (outside brackets and strings).
    let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
    for (i, c) in expr.char_indices() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ';' if depth == 0 => return Some(expr[..i].trim().to_string()),
            _ => {}
        }
    }
    None
}

/// `text` without `//` comments.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every construction of an exception with a message in the daemon's sources (tests left
/// out).
fn sites(root: &Path) -> Vec<Site> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a source file");
        let text = without_comments(text.split("#[cfg(test)]").next().unwrap_or_default());
        let text = text.as_str();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut found = |at: usize, kind: String, message: Result<String, String>| {
            out.push(Site {
                file: rel.clone(),
                line: text[..at].lines().count(),
                kind,
                message,
            })
        };
        for (call, class) in CONSTRUCTORS
            .iter()
            .map(|(c, k)| (*c, *k))
            .chain(HELPERS.iter().map(|(c, k)| (*c, Some(*k))))
        {
            for (at, _) in text.match_indices(call) {
                // A helper's own definition is not a use of it.
                if text[..at].ends_with("fn ") {
                    continue;
                }
                let Some(inside) = balanced(&text[at + call.len()..]) else {
                    continue;
                };
                let args = arguments(inside);
                let (kind, message) = match class {
                    Some(k) => (k.to_string(), args.first().cloned().unwrap_or_default()),
                    None => (
                        args[0].rsplit("::").next().unwrap_or_default().to_string(),
                        args.get(1).cloned().unwrap_or_default(),
                    ),
                };
                // A helper passing its own parameter on: its callers are scanned instead.
                if message == "msg" && HELPERS.iter().any(|(_, k)| *k == kind) {
                    continue;
                }
                // A closure taking the message (`let err = |m: &str| …(m)`): its calls are
                // the places.
                if let Some(helper) = closure_taking(&text[..at], &message) {
                    for (call, _) in text[at..].match_indices(&format!("{helper}(")) {
                        let call_at = at + call;
                        // The closure's own name, not the end of a longer one.
                        if text[..call_at]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                        {
                            continue;
                        }
                        if let Some(inside) = balanced(&text[call_at + helper.len() + 1..]) {
                            let first = arguments(inside).first().cloned().unwrap_or_default();
                            found(call_at, kind.clone(), pattern(&first));
                        }
                    }
                    continue;
                }
                // A variable set just before (`let msg = format!(…);`).
                let message = bound_before(&text[..at], &message).unwrap_or(message);
                found(at, kind, pattern(&message));
            }
        }
        for (at, _) in text.match_indices("QubesError::no_such_vm(") {
            found(
                at,
                "QubesVMNotFoundError".into(),
                Ok("No such domain: {r}".into()),
            );
        }
    }
    out
}

#[test]
fn every_exception_message_of_the_daemon_is_a_translated_sentence() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/qubesd/src");
    let sites = sites(&root);
    assert!(
        sites.len() > 100,
        "found only {} constructions",
        sites.len()
    );
    let mut unknown = Vec::new();
    let mut dynamic = Vec::new();
    for s in &sites {
        match &s.message {
            Ok(p) => {
                if !qubes_qube_manager::errors::covers(&s.kind, p) {
                    unknown.push(format!("{}:{} {} {p:?}", s.file, s.line, s.kind));
                }
            }
            Err(expr) => {
                let listed = FROM_ELSEWHERE
                    .iter()
                    .any(|(f, e, _)| s.file == *f && expr == e);
                let alternatives = ALTERNATIVES
                    .iter()
                    .find(|(f, e, _)| s.file == *f && expr.starts_with(e));
                match alternatives {
                    Some((_, _, formats)) => {
                        for p in formats.iter() {
                            if !qubes_qube_manager::errors::covers(&s.kind, p) {
                                unknown.push(format!("{}:{} {} {p:?}", s.file, s.line, s.kind));
                            }
                        }
                    }
                    None if listed => {}
                    None => dynamic.push(format!("{}:{} {} {expr}", s.file, s.line, s.kind)),
                }
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty() && dynamic.is_empty(),
        "not in the catalogue ({}):\n{}\n\nmessages not from a format ({}):\n{}",
        unknown.len(),
        unknown.join("\n"),
        dynamic.len(),
        dynamic.join("\n")
    );
}

#[test]
fn the_scanner_reads_formats_as_patterns() {
    assert_eq!(
        pattern(r#"format!("Domain is not powered off: {}", py_repr(vm))"#),
        Ok("Domain is not powered off: {r}".into())
    );
    assert_eq!(
        pattern(r#"format!("Feature not set for domain {vm}: {f}")"#),
        Ok("Feature not set for domain {}: {}".into())
    );
    assert_eq!(
        pattern(r#""Loops in network are unsupported""#),
        Ok("Loops in network are unsupported".into())
    );
    assert_eq!(
        pattern(r#"format!("a {{x}} {:?}", y)"#),
        Ok("a {x} {}".into())
    );
    assert_eq!(pattern("msg"), Err("msg".into()));
}
