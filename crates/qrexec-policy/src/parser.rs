//! Policy text to rules: the current format, legacy (R4.0) lines, directives, directories
//! (qrexec-policy.md §1, §2, §4). A bad file is reported with file and line, and nothing of a
//! policy with an error is used.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::token::{Context, Token, py_repr};

/// A syntax error: `<file>:<line>: <msg>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// File, if known.
    pub file: Option<String>,
    /// Line, if known.
    pub line: Option<usize>,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<unknown>");
        match self.line {
            Some(l) => write!(f, "{file}:{l}: {}", self.msg),
            None => write!(f, "{file}:None: {}", self.msg),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Parameters of allow and ask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `target=`.
    pub target: Option<Token>,
    /// `default_target=` (ask only).
    pub default_target: Option<Token>,
    /// `user=`.
    pub user: Option<String>,
    /// `notify=`.
    pub notify: Option<bool>,
    /// `autostart=`.
    pub autostart: Option<bool>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Allow the call.
    Allow(Params),
    /// Refuse it (`notify` defaults to yes).
    Deny {
        /// Whether to notify the user.
        notify: Option<bool>,
    },
    /// Ask the user.
    Ask(Params),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Service, `None` for `*`.
    pub service: Option<String>,
    /// Argument (`+…`), `None` for `*`.
    pub argument: Option<String>,
    /// Source token.
    pub source: Token,
    /// Target token.
    pub target: Token,
    /// Action.
    pub action: Action,
    /// File it came from.
    pub file: String,
    /// Line in that file (`None` for implicit rules).
    pub line: Option<usize>,
}

impl Rule {
    /// `file:line` as denial messages show it.
    pub fn origin(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{l}", self.file),
            None => format!("{}:None", self.file),
        }
    }
}

/// Characters of service names and arguments.
fn rpc_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_')
}

fn invalid_chars(s: &str, allowed: impl Fn(char) -> bool) -> Option<String> {
    let mut bad: Vec<char> = s.chars().filter(|c| !allowed(*c)).collect();
    if bad.is_empty() {
        return None;
    }
    bad.sort_unstable();
    bad.dedup();
    // Python's repr of a tuple of one-character strings.
    let items: Vec<String> = bad.iter().map(|c| py_repr(&c.to_string())).collect();
    Some(if items.len() == 1 {
        format!("({},)", items[0])
    } else {
        format!("({})", items.join(", "))
    })
}

/// Checks the service and argument columns (§1.3).
pub fn validate_service_and_argument(
    service: &str,
    argument: &str,
) -> Result<(Option<String>, Option<String>), String> {
    let service = if service == "*" {
        if argument != "*" {
            return Err("only * argument allowed for * service".into());
        }
        None
    } else {
        if let Some(bad) = invalid_chars(service, |c| rpc_char(c) && c != '+') {
            return Err(format!(
                "service {} contains invalid characters: {bad}",
                py_repr(service)
            ));
        }
        Some(service.to_string())
    };
    let argument = if argument == "*" {
        None
    } else {
        if let Some(bad) = invalid_chars(argument, rpc_char) {
            return Err(format!(
                "argument {} contains invalid characters: {bad}",
                py_repr(argument)
            ));
        }
        if !argument.starts_with('+') {
            return Err(format!(
                "argument {} does not start with +",
                py_repr(argument)
            ));
        }
        Some(argument.to_string())
    };
    Ok((service, argument))
}

fn yes_no(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!(
            "{} is {}, but can be only 'yes' or 'no'",
            py_repr(key),
            py_repr(v)
        )),
    }
}

fn parse_action(action: &str, params: &[&str], target_col: &Token) -> Result<Action, String> {
    let kind = match action {
        "allow" | "deny" | "ask" => action,
        _ => return Err(format!("invalid action: {action}")),
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut bad: Vec<String> = Vec::new();
    let mut p = Params::default();
    for raw in params {
        let Some((key, value)) = raw.split_once('=') else {
            return Err(format!("invalid action parameter syntax: {}", py_repr(raw)));
        };
        if seen.contains(&key) {
            return Err(format!("parameter given twice: {}", py_repr(key)));
        }
        seen.push(key);
        let allowed = match kind {
            "deny" => key == "notify",
            "allow" => matches!(key, "target" | "user" | "notify" | "autostart"),
            _ => matches!(
                key,
                "target" | "default_target" | "user" | "notify" | "autostart"
            ),
        };
        if !allowed {
            bad.push(py_repr(raw));
            continue;
        }
        match key {
            "target" | "default_target" => {
                if value.is_empty() {
                    return Err("invalid empty redirect token".into());
                }
                let t = Token::parse(value, Context::Redirect)?;
                if key == "target" {
                    p.target = Some(t);
                } else {
                    p.default_target = Some(t);
                }
            }
            "user" => p.user = Some(value.to_string()),
            "notify" => p.notify = Some(yes_no(key, value)?),
            "autostart" => p.autostart = Some(yes_no(key, value)?),
            _ => {}
        }
    }
    if !bad.is_empty() {
        let class = match kind {
            "allow" => "Allow",
            "deny" => "Deny",
            _ => "Ask",
        };
        return Err(format!(
            "invalid parameters for action {class}: [{}]",
            bad.join(", ")
        ));
    }
    Ok(match kind {
        "allow" => {
            if *target_col == Token::Default && p.target.is_none() {
                return Err("allow action for @default rule must specify target= option".into());
            }
            Action::Allow(p)
        }
        "deny" => Action::Deny { notify: p.notify },
        _ => Action::Ask(p),
    })
}

/// Parses `SOURCE TARGET ACTION [PARAMS]` for a known service and argument.
fn parse_rest(
    service: Option<String>,
    argument: Option<String>,
    fields: &[&str],
    file: &str,
    line: Option<usize>,
) -> Result<Rule, String> {
    let source = Token::parse(fields[0], Context::Source)?;
    let target = Token::parse(fields[1], Context::Target)?;
    let action = parse_action(fields[2], &fields[3..], &target)?;
    Ok(Rule {
        service,
        argument,
        source,
        target,
        action,
        file: file.to_string(),
        line,
    })
}

/// Makes errors located in `file` (both policy formats report them the same way).
fn error_in(file: &str) -> impl Fn(usize, String) -> PolicyError + '_ {
    move |line, msg| PolicyError {
        file: Some(file.to_string()),
        line: Some(line),
        msg,
    }
}

/// The numbered (from 1), trimmed lines of a policy file that are neither blank nor comments.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.trim_matches(|c: char| c.is_whitespace());
        (!line.is_empty() && !line.starts_with('#')).then_some((i + 1, line))
    })
}

/// Python's `str.split()`: runs of Unicode whitespace.
fn split_fields(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
        .filter(|f| !f.is_empty())
        .collect()
}

/// Where included files come from. Real policy uses the file system; tests may use memory.
pub trait Source {
    /// The text of a file, or the reference's error (`not a file: <path>`).
    fn read_file(&self, path: &Path) -> Result<String, String>;
    /// The `*.policy` files of a directory (already filtered), or `not a directory: <path>`.
    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, String>;
    /// Legacy per-service files for `!compat-4.0`: (file name, path).
    fn compat_files(&self) -> Vec<(String, PathBuf)>;
}

/// Deepest include nesting: the reference has no limit and crashes on cycles.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// A parser bound to a top-level policy directory (include paths resolve against it).
pub struct Parser<'a> {
    src: &'a dyn Source,
    policy_dir: PathBuf,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

impl<'a> Parser<'a> {
    /// A parser resolving includes against `policy_dir`.
    pub fn new(src: &'a dyn Source, policy_dir: &Path) -> Parser<'a> {
        Parser {
            src,
            policy_dir: policy_dir.to_path_buf(),
            rules: Vec::new(),
        }
    }

    fn resolve(&self, p: &str) -> PathBuf {
        self.policy_dir.join(p)
    }

    /// Parses one file of the current format.
    pub fn load_text(&mut self, text: &str, file: &str, depth: usize) -> Result<(), PolicyError> {
        let err = error_in(file);
        if depth > MAX_INCLUDE_DEPTH {
            return Err(err(0, "include nesting too deep (a cycle?)".into()));
        }
        for (lineno, line) in content_lines(text) {
            let fields = split_fields(line);
            if line.starts_with('!') {
                self.directive(&fields, depth).map_err(|e| match e {
                    Nested::Msg(m) => err(lineno, m),
                    Nested::Inner(pe) => pe,
                })?;
                continue;
            }
            if fields.len() < 5 {
                return Err(err(lineno, "wrong number of fields".into()));
            }
            let (service, argument) =
                validate_service_and_argument(fields[0], fields[1]).map_err(|m| err(lineno, m))?;
            let rule = parse_rest(service, argument, &fields[2..], file, Some(lineno))
                .map_err(|m| err(lineno, m))?;
            self.rules.push(rule);
        }
        Ok(())
    }

    fn directive(&mut self, fields: &[&str], depth: usize) -> Result<(), Nested> {
        let params = &fields[1..];
        match fields[0] {
            "!include" => {
                let [path] = params else {
                    return Err(Nested::Msg("invalid number of params".into()));
                };
                let p = self.resolve(path);
                let text = self.src.read_file(&p).map_err(Nested::Msg)?;
                self.load_text(&text, &p.to_string_lossy(), depth + 1)
                    .map_err(Nested::Inner)
            }
            "!include-dir" => {
                let [path] = params else {
                    return Err(Nested::Msg("invalid number of params".into()));
                };
                let dir = self.resolve(path);
                for f in self.src.list_dir(&dir).map_err(Nested::Msg)? {
                    let text = self.src.read_file(&f).map_err(Nested::Msg)?;
                    self.load_text(&text, &f.to_string_lossy(), depth + 1)
                        .map_err(Nested::Inner)?;
                }
                Ok(())
            }
            "!include-service" => {
                let [service, argument, path] = params else {
                    return Err(Nested::Msg("invalid number of params".into()));
                };
                let (s, a) =
                    validate_service_and_argument(service, argument).map_err(Nested::Msg)?;
                let p = self.resolve(path);
                let text = self.src.read_file(&p).map_err(Nested::Msg)?;
                self.load_legacy(&text, s, a, &p.to_string_lossy(), depth + 1)
                    .map_err(Nested::Inner)
            }
            "!compat-4.0" => {
                if !params.is_empty() {
                    return Err(Nested::Msg("invalid number of params".into()));
                }
                self.compat(depth).map_err(Nested::Inner)
            }
            _ => Err(Nested::Msg("invalid directive".into())),
        }
    }

    /// Parses legacy (R4.0) text for a given service and argument (§2.2).
    pub fn load_legacy(
        &mut self,
        text: &str,
        service: Option<String>,
        argument: Option<String>,
        file: &str,
        depth: usize,
    ) -> Result<(), PolicyError> {
        let err = error_in(file);
        if depth > MAX_INCLUDE_DEPTH {
            return Err(err(0, "include nesting too deep (a cycle?)".into()));
        }
        for (lineno, line) in content_lines(text) {
            let line = line
                .replace("$include:", "!include ")
                .replace('$', "@")
                .replace(',', " ");
            let fields = split_fields(&line);
            if line.starts_with('!') {
                match fields.as_slice() {
                    ["!include", path] => {
                        let p = self.resolve(path);
                        let inner = self.src.read_file(&p).map_err(|m| err(lineno, m))?;
                        self.load_legacy(
                            &inner,
                            service.clone(),
                            argument.clone(),
                            &p.to_string_lossy(),
                            depth + 1,
                        )?;
                    }
                    ["!include", ..] => return Err(err(lineno, "invalid number of params".into())),
                    _ => return Err(err(lineno, "invalid directive".into())),
                }
                continue;
            }
            if fields.len() < 3 {
                return Err(err(lineno, "wrong number of fields".into()));
            }
            let rule = parse_rest(
                service.clone(),
                argument.clone(),
                &fields,
                file,
                Some(lineno),
            )
            .map_err(|m| err(lineno, m))?;
            self.rules.push(rule);
        }
        Ok(())
    }

    /// `!compat-4.0`: legacy per-service files, specific arguments first, each followed by the
    /// two implicit denies (§2.3).
    fn compat(&mut self, depth: usize) -> Result<(), PolicyError> {
        let mut files: Vec<(String, String, PathBuf)> = Vec::new();
        for (name, path) in self.src.compat_files() {
            if name.starts_with('.')
                || [".rpmsave", ".rpmnew", ".swp"]
                    .iter()
                    .any(|s| name.ends_with(s))
                || !name.chars().all(rpc_char)
            {
                continue;
            }
            let (svc, arg) = match name.split_once('+') {
                Some((s, "")) => (s.to_string(), "+".to_string()),
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
            let file = path.to_string_lossy().into_owned();
            let (s, a) = validate_service_and_argument(&svc, &arg).map_err(|m| PolicyError {
                file: Some(file.clone()),
                line: None,
                msg: m,
            })?;
            let text = self.src.read_file(&path).map_err(|m| PolicyError {
                file: Some(file.clone()),
                line: None,
                msg: m,
            })?;
            self.load_legacy(&text, s.clone(), a.clone(), &file, depth + 1)?;
            if a.is_some() {
                for target in [Token::AnyVm, Token::AdminVm] {
                    self.rules.push(Rule {
                        service: s.clone(),
                        argument: a.clone(),
                        source: Token::AnyVm,
                        target,
                        action: Action::Deny { notify: None },
                        file: file.clone(),
                        line: None,
                    });
                }
            }
        }
        Ok(())
    }
}

enum Nested {
    Msg(String),
    Inner(PolicyError),
}

/// Whether a name is a policy file the loaders count (§1.1): `*.policy`, not a dotfile.
pub fn counts_as_policy_file(name: &str) -> bool {
    name.ends_with(".policy") && !name.starts_with('.')
}

/// Whether a counted file's name uses only the allowed characters.
pub fn valid_policy_file_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || matches!(c, '_' | '.' | '-'))
}

/// The real file system.
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

impl Source for FileSystem {
    fn read_file(&self, path: &Path) -> Result<String, String> {
        let not_a_file = || format!("not a file: {}", path.display());
        let meta = std::fs::metadata(path).map_err(|_| not_a_file())?;
        if !meta.is_file() {
            return Err(not_a_file());
        }
        if meta.len() > MAX_FILE {
            return Err(format!("file too large: {}", path.display()));
        }
        let bytes = std::fs::read(path).map_err(|_| not_a_file())?;
        String::from_utf8(bytes).map_err(|_| format!("not UTF-8: {}", path.display()))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, String> {
        let entries =
            std::fs::read_dir(path).map_err(|_| format!("not a directory: {}", path.display()))?;
        let mut files = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !counts_as_policy_file(&name) || !e.path().is_file() {
                continue;
            }
            if !valid_policy_file_name(&name) {
                return Err(format!("invalid filename: {}", e.path().display()));
            }
            files.push(e.path());
        }
        files.sort();
        Ok(files)
    }

    fn compat_files(&self) -> Vec<(String, PathBuf)> {
        std::fs::read_dir(&self.compat_dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Loads the policy of several directories, merged by file name (earlier directories shadow
/// later ones), in file-name order (§1.1). Any error fails the whole load.
pub fn load_policy_dirs(src: &dyn Source, dirs: &[PathBuf]) -> Result<Vec<Rule>, PolicyError> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let files = src.list_dir(dir).map_err(|m| PolicyError {
            file: None,
            line: None,
            msg: m,
        })?;
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            by_name.entry(name).or_insert(f);
        }
    }
    let mut rules = Vec::new();
    for path in by_name.values() {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut parser = Parser::new(src, dir);
        let text = src.read_file(path).map_err(|m| PolicyError {
            file: Some(path.to_string_lossy().into_owned()),
            line: None,
            msg: m,
        })?;
        parser.load_text(&text, &path.to_string_lossy(), 0)?;
        rules.extend(parser.rules);
    }
    Ok(rules)
}

/// Policy text held in memory (tests, validation before saving): file name -> text.
#[derive(Default)]
pub struct Memory {
    /// Files by path.
    pub files: BTreeMap<PathBuf, String>,
}

impl Source for Memory {
    fn read_file(&self, path: &Path) -> Result<String, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| format!("not a file: {}", path.display()))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, String> {
        // A directory exists here when some file lies under it.
        if !self.files.keys().any(|p| p.starts_with(path) && p != path) {
            return Err(format!("not a directory: {}", path.display()));
        }
        let files: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| counts_as_policy_file(&n.to_string_lossy()))
            })
            .cloned()
            .collect();
        Ok(files)
    }

    fn compat_files(&self) -> Vec<(String, PathBuf)> {
        let dir = Path::new("/etc/qubes-rpc/policy");
        self.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .map(|p| {
                (
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    p.clone(),
                )
            })
            .collect()
    }
}

/// Parses one policy text (file name for messages), includes resolved against `/etc/qubes/policy.d`.
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Rule>, PolicyError> {
    let mem = Memory::default();
    let mut p = Parser::new(&mem, Path::new("/etc/qubes/policy.d"));
    p.load_text(text, file, 0)?;
    Ok(p.rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_str(text, "f").unwrap_err().to_string()
    }

    #[test]
    fn syntax_errors_match_the_reference() {
        assert_eq!(
            err("test.Service +argument @anyvm @anyvm allow,target=dom0"),
            "f:1: invalid action: allow,target=dom0"
        );
        assert_eq!(
            err("* +arg @anyvm @anyvm allow"),
            "f:1: only * argument allowed for * service"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @default allow"),
            "f:1: allow action for @default rule must specify target= option"
        );
        assert_eq!(
            err("test.Service +arg @dispvm @default allow target=x"),
            "f:1: invalid source token: '@dispvm'"
        );
        assert_eq!(
            err("test.Service +arg @default @default allow target=x"),
            "f:1: invalid source token: '@default'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm deny target=test-vm1"),
            "f:1: invalid parameters for action Deny: ['target=test-vm1']"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow target=@tag:tag1"),
            "f:1: invalid redirect token: '@tag:tag1'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow notify=true"),
            "f:1: 'notify' is 'true', but can be only 'yes' or 'no'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow notify"),
            "f:1: invalid action parameter syntax: 'notify'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow # c"),
            "f:1: invalid action parameter syntax: '#'"
        );
        assert_eq!(
            err("test+Service * @anyvm @anyvm allow"),
            "f:1: service 'test+Service' contains invalid characters: ('+',)"
        );
        assert_eq!(
            err("svc ** s d allow"),
            "f:1: argument '**' contains invalid characters: ('*',)"
        );
        assert_eq!(
            err("svc arg s d allow"),
            "f:1: argument 'arg' does not start with +"
        );
        assert_eq!(err("\n\nsvc +a s d"), "f:3: wrong number of fields");
        assert_eq!(err("svc +a s d ALLOW"), "f:1: invalid action: ALLOW");
        assert_eq!(
            err("svc +a s d allow target=x target=y"),
            "f:1: parameter given twice: 'target'"
        );
        assert_eq!(
            err("svc +a s d allow target="),
            "f:1: invalid empty redirect token"
        );
        assert_eq!(err("!include"), "f:1: invalid number of params");
        assert_eq!(err("!frobnicate x"), "f:1: invalid directive");
        assert_eq!(
            err("!include include/nope"),
            "f:1: not a file: /etc/qubes/policy.d/include/nope"
        );
    }

    #[test]
    fn valid_lines() {
        let r = parse_str(
            "# c\n\n  svc +a @anyvm @anyvm allow target=x=y user=  \n",
            "f",
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        match &r[0].action {
            Action::Allow(p) => {
                assert_eq!(p.target, Some(Token::Literal("x=y".into())));
                assert_eq!(p.user.as_deref(), Some(""));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r[0].line, Some(3));
        assert!(parse_str("svc +a $anyvm @anyvm deny notify=no", "f").is_ok());
    }

    #[test]
    fn include_service_reads_legacy() {
        let mut mem = Memory::default();
        mem.files.insert(
            "/p/svc".into(),
            "$anyvm $dispvm ask,default_target=$dispvm\n".into(),
        );
        let mut p = Parser::new(&mem, Path::new("/p"));
        p.load_text("!include-service test.S +arg svc", "main", 0)
            .unwrap();
        assert_eq!(p.rules.len(), 1);
        let r = &p.rules[0];
        assert_eq!(
            (r.service.as_deref(), r.argument.as_deref()),
            (Some("test.S"), Some("+arg"))
        );
        assert_eq!((&r.source, &r.target), (&Token::AnyVm, &Token::DispVm));
        assert_eq!(
            r.action,
            Action::Ask(Params {
                default_target: Some(Token::DispVm),
                ..Params::default()
            })
        );
    }

    #[test]
    fn include_cycles_are_errors_not_crashes() {
        let mut mem = Memory::default();
        mem.files
            .insert("/p/include/a".into(), "!include include/b\n".into());
        mem.files
            .insert("/p/include/b".into(), "!include include/a\n".into());
        let mut p = Parser::new(&mem, Path::new("/p"));
        let e = p.load_text("!include include/a", "main", 0).unwrap_err();
        assert!(e.msg.contains("too deep"), "{e}");
    }
}
