//! "What would happen?": a decision with its reasons — the rule, file and line that decided
//! it and the rules above it that did not match, with why — for the saved policy or for a
//! pending, unsaved edit of one file. It evaluates exactly as `qrexec-policy-exec` does.

use std::fmt;
use std::path::PathBuf;

use crate::eval::{Request, Resolution, SystemInfo, evaluate, source_matches, target_matches};
use crate::loader::{FileSystem, Overlay, Source, load_policy_dirs};
use crate::rule::{PolicyError, Rule};

/// Why a rule did not match a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Another service.
    Service,
    /// Same service, another argument.
    Argument,
    /// The source column does not name the caller.
    Source,
    /// The target column does not name the intended target.
    Target,
}

/// Why `rule` does not match `req`, or `None` when it does (first reason in column order).
pub fn mismatch(rule: &Rule, req: &Request) -> Option<Mismatch> {
    if rule.service.as_deref().is_some_and(|s| s != req.service) {
        return Some(Mismatch::Service);
    }
    if rule.argument.as_deref().is_some_and(|a| a != req.argument) {
        return Some(Mismatch::Argument);
    }
    if !source_matches(&rule.source, req) {
        return Some(Mismatch::Source);
    }
    if !target_matches(&rule.target, req) {
        return Some(Mismatch::Target);
    }
    None
}

/// A rule as shown in an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// Position in the loaded policy.
    pub index: usize,
    /// File it came from.
    pub file: String,
    /// Line (`None` for the implicit denies after legacy `SERVICE+ARG` files).
    pub line: Option<usize>,
    /// The rule in the current format.
    pub text: String,
}

impl RuleRef {
    fn new(index: usize, rule: &Rule) -> RuleRef {
        RuleRef {
            index,
            file: rule.file.clone(),
            line: rule.line,
            text: rule.to_string(),
        }
    }
}

/// The decision for one request, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// What the policy decides (as `qrexec-policy-exec` would, before asking anyone).
    pub resolution: Resolution,
    /// The rule that decided it; `None` when no rule matched or the request itself was refused.
    pub decided_by: Option<RuleRef>,
    /// Rules above the deciding one (all rules when none matched) for the same service that
    /// did not match, and why.
    pub not_matching: Vec<(RuleRef, Mismatch)>,
    /// How many rules above it are for other services (not listed).
    pub other_services: usize,
}

/// Explains `req` against loaded rules.
pub fn explain(rules: &[Rule], req: &Request) -> Explanation {
    let mut not_matching = Vec::new();
    let mut other_services = 0;
    let mut decided_by = None;
    for (i, r) in rules.iter().enumerate() {
        match mismatch(r, req) {
            None => {
                decided_by = Some(RuleRef::new(i, r));
                break;
            }
            Some(Mismatch::Service) => other_services += 1,
            Some(why) => not_matching.push((RuleRef::new(i, r), why)),
        }
    }
    Explanation {
        resolution: evaluate(rules, req),
        decided_by,
        not_matching,
        other_services,
    }
}

/// Where the policy comes from for an explanation.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// Policy directories, highest priority first.
    pub dirs: Vec<PathBuf>,
    /// The legacy directory `!compat-4.0` reads.
    pub legacy_dir: PathBuf,
}

/// A pending edit: `path` (a file in one of the directories, or an include file) would hold
/// `content` (`None`: be removed).
#[derive(Debug, Clone)]
pub struct PendingEdit {
    /// The file.
    pub path: PathBuf,
    /// Its new text.
    pub content: Option<String>,
}

/// Why there is no explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainError {
    /// The policy does not load (every call is denied).
    Policy(PolicyError),
}

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainError::Policy(e) => write!(f, "{e}"),
        }
    }
}

/// Loads the policy (with `pending` applied, if any) and explains one request. A request the
/// reference refuses before evaluating (an invalid target) is a denial with no deciding rule.
pub fn explain_request(
    policy: &PolicySource,
    pending: Option<&PendingEdit>,
    info: &SystemInfo,
    source: &str,
    target: &str,
    service_and_arg: &str,
) -> Result<Explanation, ExplainError> {
    let fs = FileSystem {
        compat_dir: policy.legacy_dir.clone(),
    };
    let overlay;
    let src: &dyn Source = match pending {
        Some(edit) => {
            overlay = Overlay::pending(fs.clone(), &edit.path, edit.content.as_deref());
            &overlay
        }
        None => &fs,
    };
    let rules = load_policy_dirs(src, &policy.dirs).map_err(ExplainError::Policy)?;
    Ok(explain_loaded(
        &rules,
        info,
        source,
        target,
        service_and_arg,
    ))
}

/// Explains one request against loaded rules, the request given as on the command line.
pub fn explain_loaded(
    rules: &[Rule],
    info: &SystemInfo,
    source: &str,
    target: &str,
    service_and_arg: &str,
) -> Explanation {
    match Request::new(service_and_arg, source, target, info) {
        Ok(req) => explain(rules, &req),
        Err(d) => Explanation {
            resolution: Resolution::Deny(d),
            decided_by: None,
            not_matching: Vec::new(),
            other_services: 0,
        },
    }
}

/// `file:line` of a rule reference, as the explanation prints it.
pub fn origin(r: &RuleRef) -> String {
    match r.line {
        Some(l) => format!("{}:{l}", r.file),
        None => format!("{} (implicit)", r.file),
    }
}

/// The explanation as text (for `qubes-policy --explain`).
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let decision = match &e.resolution {
        Resolution::Allow { target, user, .. } => match user {
            Some(u) => format!("allow, to {target} as {u}"),
            None => format!("allow, to {target}"),
        },
        Resolution::Ask {
            targets,
            default_target,
            ..
        } => {
            let mut sorted = targets.clone();
            sorted.sort();
            match default_target {
                Some(d) => format!("ask, among {} (default {d})", sorted.join(", ")),
                None => format!("ask, among {}", sorted.join(", ")),
            }
        }
        Resolution::Deny(d) => format!("deny ({})", d.reason),
    };
    out.push_str(&format!("Decision: {decision}\n"));
    match &e.decided_by {
        Some(r) => out.push_str(&format!("Decided by: {}: {}\n", origin(r), r.text)),
        None => out.push_str("Decided by: no rule\n"),
    }
    if !e.not_matching.is_empty() {
        out.push_str("Rules above it that do not match:\n");
        for (r, why) in &e.not_matching {
            let why = match why {
                Mismatch::Service => "other service",
                Mismatch::Argument => "other argument",
                Mismatch::Source => "source does not match",
                Mismatch::Target => "target does not match",
            };
            out.push_str(&format!("  {}: {}  ({why})\n", origin(r), r.text));
        }
    }
    if e.other_services > 0 {
        out.push_str(&format!(
            "({} rules above it are for other services)\n",
            e.other_services
        ));
    }
    out
}
