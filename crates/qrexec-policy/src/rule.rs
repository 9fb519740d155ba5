//! One rule line to a [`Rule`]: service and argument, tokens, action and parameters, with the
//! reference's error messages (qrexec-policy.md §1.2–§1.5, §4).

use std::fmt;

use crate::token::{Context, Token, py_repr};

/// Why a policy could not be loaded; decides whether the user is notified of the denial and
/// how the Policy Admin API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A syntax error (the reference's PolicySyntaxError): denied without notification; the
    /// Admin API answers `PolicyAdminSyntaxException`.
    Syntax,
    /// The files cannot be read: a missing or unreadable directory or file, a forbidden file
    /// name (the reference's AccessDenied while loading): denied with a notification; an
    /// internal error for the Admin API.
    Unreadable,
    /// Where the reference crashes (an include cycle, a symlink loop, text that is not UTF-8):
    /// denied; an internal error for the Admin API.
    Crash,
}

/// A policy that cannot be used: `<file>:<line>: <msg>` for syntax errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// File, if known.
    pub file: Option<String>,
    /// Line, if known.
    pub line: Option<usize>,
    /// What is wrong.
    pub msg: String,
    /// What kind of failure.
    pub kind: ErrorKind,
}

impl PolicyError {
    /// A failure that is not tied to a line (unreadable files, crashes).
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> PolicyError {
        PolicyError {
            file: None,
            line: None,
            msg: msg.into(),
            kind,
        }
    }
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

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        if let Some(t) = &self.target {
            write!(f, " target={t}")?;
        }
        if let Some(t) = &self.default_target {
            write!(f, " default_target={t}")?;
        }
        if let Some(u) = &self.user {
            write!(f, " user={u}")?;
        }
        if let Some(n) = self.notify {
            write!(f, " notify={}", yes_no(n))?;
        }
        if let Some(a) = self.autostart {
            write!(f, " autostart={}", yes_no(a))?;
        }
        Ok(())
    }
}

impl fmt::Display for Action {
    /// The action column and its parameters, as a policy file spells them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow(p) => write!(f, "allow{p}"),
            Action::Ask(p) => write!(f, "ask{p}"),
            Action::Deny { notify: None } => f.write_str("deny"),
            Action::Deny { notify: Some(n) } => {
                write!(f, "deny notify={}", if *n { "yes" } else { "no" })
            }
        }
    }
}

impl fmt::Display for Rule {
    /// The rule as one line of the current format (legacy rules come out converted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}",
            self.service.as_deref().unwrap_or("*"),
            self.argument.as_deref().unwrap_or("*"),
            self.source,
            self.target,
            self.action
        )
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
pub(crate) fn parse_rest(
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
