//! Policy files to rules: directories, `!include*` directives, the legacy (R4.0) format and
//! `!compat-4.0` (qrexec-policy.md §1.1, §1.6, §2). Loading is all or nothing; how it fails
//! ([`ErrorKind`]) is what the reference's exception would say.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::pathres;
use crate::rule::{
    Action, ErrorKind, PolicyError, Rule, parse_rest, validate_service_and_argument,
};
use crate::token::Token;

/// A failure of a [`Source`]: its kind and message (the parser adds file and line to syntax
/// errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The reference's message.
    pub msg: String,
}

impl LoadError {
    /// A syntax-class failure (`not a file: …`).
    pub fn syntax(msg: impl Into<String>) -> LoadError {
        LoadError {
            kind: ErrorKind::Syntax,
            msg: msg.into(),
        }
    }

    /// Unreadable files or directories, forbidden names.
    pub fn unreadable(msg: impl Into<String>) -> LoadError {
        LoadError {
            kind: ErrorKind::Unreadable,
            msg: msg.into(),
        }
    }

    /// Where the reference crashes.
    pub fn crash(msg: impl Into<String>) -> LoadError {
        LoadError {
            kind: ErrorKind::Crash,
            msg: msg.into(),
        }
    }

    fn at(self, file: &str, line: Option<usize>) -> PolicyError {
        match self.kind {
            ErrorKind::Syntax => PolicyError {
                file: Some(file.to_string()),
                line,
                msg: self.msg,
                kind: ErrorKind::Syntax,
            },
            kind => PolicyError::new(kind, self.msg),
        }
    }
}

/// Where policy text comes from. Real policy uses the file system; tests and pending edits
/// use memory.
pub trait Source {
    /// `(base / path).resolve()`: the path an include directive names.
    fn resolve(&self, base: &Path, path: &str) -> Result<PathBuf, LoadError>;
    /// Whether `path` is a directory (`!include-dir`).
    fn is_dir(&self, path: &Path) -> bool;
    /// The text of a file: `not a file: <path>` (a syntax error) when it is not a regular file.
    fn read_file(&self, path: &Path) -> Result<String, LoadError>;
    /// The counted `*.policy` files of a directory, sorted; a forbidden name fails the whole
    /// directory (§1.1).
    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, LoadError>;
    /// The directory `!compat-4.0` reads (`/etc/qubes-rpc/policy`).
    fn compat_dir(&self) -> PathBuf;
    /// The regular files of the compat directory: (file name, path), unfiltered.
    fn compat_files(&self) -> Result<Vec<(String, PathBuf)>, LoadError>;
}

/// Deepest include nesting accepted; deeper (or any cycle) is where the reference crashes.
pub const MAX_INCLUDE_DEPTH: usize = 64;

/// The numbered (from 1), stripped lines of a policy text that are neither blank nor comments.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().filter_map(|(i, raw)| {
        let line = raw.trim_matches(py_space);
        (!line.is_empty() && !line.starts_with('#')).then_some((i + 1, line))
    })
}

/// Python's `str.isspace()`.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.split()`: runs of Unicode whitespace.
fn split_fields(line: &str) -> Vec<&str> {
    line.split(py_space).filter(|f| !f.is_empty()).collect()
}

/// A parser bound to a top-level policy directory (include paths resolve against it).
pub struct Parser<'a> {
    src: &'a dyn Source,
    policy_dir: PathBuf,
    /// Files being read, outermost first: an include of one of them is a cycle.
    stack: Vec<PathBuf>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

fn syntax_at(file: &str, line: usize, msg: impl Into<String>) -> PolicyError {
    LoadError::syntax(msg).at(file, Some(line))
}

impl<'a> Parser<'a> {
    /// A parser resolving includes against `policy_dir`.
    pub fn new(src: &'a dyn Source, policy_dir: &Path) -> Parser<'a> {
        Parser {
            src,
            policy_dir: policy_dir.to_path_buf(),
            stack: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Enters an included file; a file already being read is a cycle (the reference recurses
    /// until Python's stack runs out).
    fn enter(&mut self, path: &Path) -> Result<(), PolicyError> {
        if self.stack.iter().any(|p| p == path) || self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(PolicyError::new(
                ErrorKind::Crash,
                format!("include cycle: {}", path.display()),
            ));
        }
        self.stack.push(path.to_path_buf());
        Ok(())
    }

    /// Parses one file of the current format, named `file`.
    pub fn load_text(&mut self, text: &str, file: &str, _depth: usize) -> Result<(), PolicyError> {
        self.enter(Path::new(file))?;
        let r = self.load_text_inner(text, file);
        self.stack.pop();
        r
    }

    fn load_text_inner(&mut self, text: &str, file: &str) -> Result<(), PolicyError> {
        for (lineno, line) in content_lines(text) {
            let fields = split_fields(line);
            if line.starts_with('!') {
                self.directive(&fields, file, lineno)?;
                continue;
            }
            if fields.len() < 5 {
                return Err(syntax_at(file, lineno, "wrong number of fields"));
            }
            let (service, argument) = validate_service_and_argument(fields[0], fields[1])
                .map_err(|m| syntax_at(file, lineno, m))?;
            let rule = parse_rest(service, argument, &fields[2..], file, Some(lineno))
                .map_err(|m| syntax_at(file, lineno, m))?;
            self.rules.push(rule);
        }
        Ok(())
    }

    /// Reads the file an include names (resolved against `base`).
    fn included(
        &self,
        base: &Path,
        path: &str,
        file: &str,
        line: usize,
    ) -> Result<(PathBuf, String), PolicyError> {
        let p = self
            .src
            .resolve(base, path)
            .map_err(|e| e.at(file, Some(line)))?;
        let text = self.src.read_file(&p).map_err(|e| e.at(file, Some(line)))?;
        Ok((p, text))
    }

    fn directive(&mut self, fields: &[&str], file: &str, line: usize) -> Result<(), PolicyError> {
        let params = &fields[1..];
        let count = || syntax_at(file, line, "invalid number of params");
        let base = self.policy_dir.clone();
        match fields[0] {
            "!include" => {
                let [path] = params else { return Err(count()) };
                let (p, text) = self.included(&base, path, file, line)?;
                self.load_text(&text, &p.to_string_lossy(), 0)
            }
            "!include-dir" => {
                let [path] = params else { return Err(count()) };
                let dir = self
                    .src
                    .resolve(&base, path)
                    .map_err(|e| e.at(file, Some(line)))?;
                if !self.src.is_dir(&dir) {
                    return Err(syntax_at(
                        file,
                        line,
                        format!("not a directory: {}", dir.display()),
                    ));
                }
                for f in self
                    .src
                    .list_dir(&dir)
                    .map_err(|e| e.at(file, Some(line)))?
                {
                    let text = self.src.read_file(&f).map_err(|e| e.at(file, Some(line)))?;
                    self.load_text(&text, &f.to_string_lossy(), 0)?;
                }
                Ok(())
            }
            "!include-service" => {
                let [service, argument, path] = params else {
                    return Err(count());
                };
                let (s, a) = validate_service_and_argument(service, argument)
                    .map_err(|m| syntax_at(file, line, m))?;
                let (p, text) = self.included(&base, path, file, line)?;
                self.load_legacy(&text, s, a, &p.to_string_lossy(), &base)
            }
            "!compat-4.0" => {
                if !params.is_empty() {
                    return Err(count());
                }
                self.compat()
            }
            _ => Err(syntax_at(file, line, "invalid directive")),
        }
    }

    /// Parses legacy (R4.0) text for a given service and argument (§2.2); its `$include:`
    /// paths resolve against `base` (the policy directory for `!include-service`, the legacy
    /// directory for `!compat-4.0`).
    pub fn load_legacy(
        &mut self,
        text: &str,
        service: Option<String>,
        argument: Option<String>,
        file: &str,
        base: &Path,
    ) -> Result<(), PolicyError> {
        self.enter(Path::new(file))?;
        let r = self.load_legacy_inner(text, service, argument, file, base);
        self.stack.pop();
        r
    }

    fn load_legacy_inner(
        &mut self,
        text: &str,
        service: Option<String>,
        argument: Option<String>,
        file: &str,
        base: &Path,
    ) -> Result<(), PolicyError> {
        for (lineno, line) in content_lines(text) {
            let line = line
                .replace("$include:", "!include ")
                .replace('$', "@")
                .replace(',', " ");
            let fields = split_fields(&line);
            if line.starts_with('!') {
                match fields.as_slice() {
                    ["!include", path] => {
                        let (p, inner) = self.included(base, path, file, lineno)?;
                        self.load_legacy(
                            &inner,
                            service.clone(),
                            argument.clone(),
                            &p.to_string_lossy(),
                            base,
                        )?;
                    }
                    ["!include", ..] => {
                        return Err(syntax_at(file, lineno, "invalid number of params"));
                    }
                    _ => return Err(syntax_at(file, lineno, "invalid directive")),
                }
                continue;
            }
            if fields.len() < 3 {
                return Err(syntax_at(file, lineno, "wrong number of fields"));
            }
            let rule = parse_rest(
                service.clone(),
                argument.clone(),
                &fields,
                file,
                Some(lineno),
            )
            .map_err(|m| syntax_at(file, lineno, m))?;
            self.rules.push(rule);
        }
        Ok(())
    }

    /// `!compat-4.0`: legacy per-service files, specific arguments first, each followed by the
    /// two implicit denies (§2.3).
    fn compat(&mut self) -> Result<(), PolicyError> {
        let legacy_dir = self.src.compat_dir();
        let err = |e: LoadError| e.at(&legacy_dir.to_string_lossy(), None);
        let mut files: Vec<(String, String, PathBuf)> = Vec::new();
        for (name, path) in self.src.compat_files().map_err(err)? {
            if !is_compat_file_name(&name) {
                continue;
            }
            let (svc, arg) = match name.split_once('+') {
                Some((s, a)) => (s.to_string(), format!("+{a}")),
                None => (name.clone(), "*".to_string()),
            };
            files.push((svc, arg, path));
        }
        // By service; within a service by argument, the argument-less file last.
        files.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| (a.1 == "*").cmp(&(b.1 == "*")).then(a.1.cmp(&b.1)))
        });
        for (svc, arg, path) in files {
            let listed = path.to_string_lossy().into_owned();
            let (s, a) = validate_service_and_argument(&svc, &arg)
                .map_err(|m| LoadError::syntax(m).at(&listed, None))?;
            let resolved = self
                .src
                .resolve(&legacy_dir, &listed)
                .map_err(|e| e.at(&listed, None))?;
            let text = self
                .src
                .read_file(&resolved)
                .map_err(|e| e.at(&listed, None))?;
            self.load_legacy(
                &text,
                s.clone(),
                a.clone(),
                &resolved.to_string_lossy(),
                &legacy_dir,
            )?;
            if a.is_some() {
                for target in [Token::AnyVm, Token::AdminVm] {
                    self.rules.push(Rule {
                        service: s.clone(),
                        argument: a.clone(),
                        source: Token::AnyVm,
                        target,
                        action: Action::Deny { notify: None },
                        file: listed.clone(),
                        line: None,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Whether `!compat-4.0` reads a legacy file of this name: not a dotfile, not an editor or
/// package-manager leftover (`.rpmsave`, `.rpmnew`, `.swp`), only service-name characters.
pub fn is_compat_file_name(name: &str) -> bool {
    let suffix = py_suffix(name);
    !name.starts_with('.')
        && ![".rpmsave", ".rpmnew", ".swp"].contains(&suffix)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
}

/// Python's `PurePath.suffix` of a file name.
fn py_suffix(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => &name[i..],
        _ => "",
    }
}

/// Whether a name is a policy file the loaders count (§1.1): `*.policy`, not a dotfile.
pub fn counts_as_policy_file(name: &str) -> bool {
    py_suffix(name) == ".policy" && !name.starts_with('.')
}

/// Whether a counted file's name uses only the allowed characters.
pub fn valid_policy_file_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || matches!(c, '_' | '.' | '-'))
}

/// The real file system.
#[derive(Debug, Clone)]
pub struct FileSystem {
    /// Where `!compat-4.0` looks (`/etc/qubes-rpc/policy`).
    pub compat_dir: PathBuf,
}

impl Default for FileSystem {
    fn default() -> Self {
        FileSystem {
            compat_dir: "/etc/qubes-rpc/policy".into(),
        }
    }
}

/// Largest policy file read.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Python's universal newlines, as the reference reads files: `\r\n` and `\r` end lines too.
fn universal_newlines(text: String) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    }
}

impl Source for FileSystem {
    fn resolve(&self, base: &Path, path: &str) -> Result<PathBuf, LoadError> {
        pathres::resolve(&base.join(path))
            .map_err(|l| LoadError::crash(format!("symlink loop: {}", l.0.display())))
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn read_file(&self, path: &Path) -> Result<String, LoadError> {
        if !path.is_file() {
            return Err(LoadError::syntax(format!("not a file: {}", path.display())));
        }
        let failed = |e: std::io::Error| {
            LoadError::unreadable(format!("failed to load {} file: {e}", path.display()))
        };
        let meta = std::fs::metadata(path).map_err(failed)?;
        if meta.len() > MAX_FILE {
            return Err(LoadError::crash(format!(
                "file too large: {}",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(failed)?;
        String::from_utf8(bytes)
            .map(universal_newlines)
            .map_err(|_| LoadError::crash(format!("not UTF-8: {}", path.display())))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, LoadError> {
        let entries = std::fs::read_dir(path).map_err(|e| {
            LoadError::unreadable(format!("failed to load {} file: {e}", path.display()))
        })?;
        let mut files = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if counts_as_policy_file(&name) && e.path().is_file() {
                files.push((name, e.path()));
            }
        }
        // All or nothing: one forbidden name fails the whole directory.
        if let Some((_, p)) = files.iter().find(|(n, _)| !valid_policy_file_name(n)) {
            return Err(LoadError::unreadable(format!(
                "invalid filename: {}",
                p.display()
            )));
        }
        let mut files: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
        files.sort();
        Ok(files)
    }

    fn compat_dir(&self) -> PathBuf {
        self.compat_dir.clone()
    }

    fn compat_files(&self) -> Result<Vec<(String, PathBuf)>, LoadError> {
        let rd = std::fs::read_dir(&self.compat_dir).map_err(|e| {
            LoadError::unreadable(format!(
                "failed to load {} file: {e}",
                self.compat_dir.display()
            ))
        })?;
        Ok(rd
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect())
    }
}

/// The files of several top-level directories, merged by name (earlier directories shadow
/// later ones), in name order (§1.1).
pub fn top_level_files(src: &dyn Source, dirs: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let files = src
            .list_dir(dir)
            .map_err(|e| PolicyError::new(e.kind, e.msg))?;
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            by_name.entry(name).or_insert(f);
        }
    }
    Ok(by_name.into_values().collect())
}

/// Loads the policy of several directories, merged by file name (earlier directories shadow
/// later ones), in file-name order (§1.1). Any error fails the whole load.
pub fn load_policy_dirs(src: &dyn Source, dirs: &[PathBuf]) -> Result<Vec<Rule>, PolicyError> {
    let mut rules = Vec::new();
    for path in top_level_files(src, dirs)? {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut parser = Parser::new(src, dir);
        let name = path.to_string_lossy();
        let text = src.read_file(&path).map_err(|e| e.at(&name, None))?;
        parser.load_text(&text, &name, 0)?;
        rules.extend(parser.rules);
    }
    Ok(rules)
}

/// Policy text held in memory (tests): path -> text. Paths resolve lexically.
#[derive(Default)]
pub struct Memory {
    /// Files by path.
    pub files: BTreeMap<PathBuf, String>,
}

fn lexical_join(base: &Path, path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(path).components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c.as_os_str()),
        }
    }
    out
}

impl Source for Memory {
    fn resolve(&self, base: &Path, path: &str) -> Result<PathBuf, LoadError> {
        Ok(lexical_join(base, path))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.files.keys().any(|p| p.starts_with(path) && p != path)
    }

    fn read_file(&self, path: &Path) -> Result<String, LoadError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| LoadError::syntax(format!("not a file: {}", path.display())))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, LoadError> {
        if !self.is_dir(path) {
            return Err(LoadError::unreadable(format!(
                "failed to load {} file",
                path.display()
            )));
        }
        Ok(self
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| counts_as_policy_file(&n.to_string_lossy()))
            })
            .cloned()
            .collect())
    }

    fn compat_dir(&self) -> PathBuf {
        "/etc/qubes-rpc/policy".into()
    }

    fn compat_files(&self) -> Result<Vec<(String, PathBuf)>, LoadError> {
        let dir = self.compat_dir();
        Ok(self
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir.as_path()))
            .map(|p| {
                (
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    p.clone(),
                )
            })
            .collect())
    }
}

/// Parses one policy text (file name for messages), includes resolved against
/// `/etc/qubes/policy.d`.
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Rule>, PolicyError> {
    let mem = Memory::default();
    let mut p = Parser::new(&mem, Path::new("/etc/qubes/policy.d"));
    p.load_text(text, file, 0)?;
    Ok(p.rules)
}

/// The file system with one pending change to one file (new text, or removal): what the
/// Admin API validates before saving, and what "What would happen?" evaluates for an unsaved
/// edit.
pub struct Overlay {
    fs: FileSystem,
    changed: PathBuf,
    content: Option<String>,
    /// The Admin API's order (the reference's ValidateParser): in a directory, the unchanged
    /// files first, then the changed one whatever its name; otherwise the policy as it will
    /// load after saving.
    validation: bool,
}

impl Overlay {
    /// The policy as the Admin API validates it: `changed` (a resolved path) with `content`
    /// (`None`: removed).
    pub fn for_validation(fs: FileSystem, changed: &Path, content: Option<&str>) -> Overlay {
        Overlay {
            fs,
            changed: changed.to_path_buf(),
            content: content.map(str::to_string),
            validation: true,
        }
    }

    /// The policy as it will load once `changed` holds `content` (`None`: removed).
    pub fn pending(fs: FileSystem, changed: &Path, content: Option<&str>) -> Overlay {
        Overlay {
            validation: false,
            ..Overlay::for_validation(fs, changed, content)
        }
    }
}

impl Source for Overlay {
    fn resolve(&self, base: &Path, path: &str) -> Result<PathBuf, LoadError> {
        self.fs.resolve(base, path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.fs.is_dir(path)
    }

    fn read_file(&self, path: &Path) -> Result<String, LoadError> {
        if path != self.changed {
            return self.fs.read_file(path);
        }
        match &self.content {
            // New text is read as given (the reference reads it from a string: no newline
            // translation).
            Some(text) if self.validation => Ok(text.clone()),
            Some(text) => Ok(universal_newlines(text.clone())),
            None if self.validation => Err(LoadError::syntax(format!(
                "including a file that will be removed: {}",
                path.display()
            ))),
            None => Err(LoadError::syntax(format!("not a file: {}", path.display()))),
        }
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, LoadError> {
        let mut files = self.fs.list_dir(path)?;
        let here = self.changed.parent() == Some(path);
        files.retain(|f| *f != self.changed);
        if !here || self.content.is_none() {
            return Ok(files);
        }
        if self.validation {
            files.push(self.changed.clone());
            return Ok(files);
        }
        let name = self
            .changed
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if counts_as_policy_file(&name) {
            if !valid_policy_file_name(&name) {
                return Err(LoadError::unreadable(format!(
                    "invalid filename: {}",
                    self.changed.display()
                )));
            }
            files.push(self.changed.clone());
            files.sort();
        }
        Ok(files)
    }

    fn compat_dir(&self) -> PathBuf {
        self.fs.compat_dir()
    }

    fn compat_files(&self) -> Result<Vec<(String, PathBuf)>, LoadError> {
        self.fs.compat_files()
    }
}
