//! Daemon failures as sentences for people.
//!
//! qubesd sends an exception's class name and its already formatted English message. The
//! catalogue below knows the message formats of the common exceptions: it pulls the fields
//! (qube, property, value...) out of the message by pattern and puts them into a translated
//! sentence. Messages it does not know are shown as they came. Nothing here interprets `%`
//! or braces inside the daemon's text, so no message can break the formatting.

use qubes_api::CallError;

use crate::i18n::{noop_tr, tr};

/// One known message: exception class, the daemon's text with `{}` for each field, and the
/// msgid of the sentence shown instead (`{0}`, `{1}`... stand for the fields).
struct Known {
    kind: &'static str,
    pattern: &'static str,
    sentence: &'static str,
}

const CATALOGUE: &[Known] = &[
    Known {
        kind: "QubesVMNotFoundError",
        pattern: "No such domain: {}",
        sentence: noop_tr("There is no qube named {0}."),
    },
    Known {
        kind: "QubesVMAlreadyExistsError",
        pattern: "Qube already exists: {}",
        sentence: noop_tr("A qube named {0} already exists."),
    },
    Known {
        kind: "QubesVMInUseError",
        pattern: "There are other VMs connected to this VM: {}",
        sentence: noop_tr("These running qubes use its network; shut them down first: {0}"),
    },
    Known {
        kind: "QubesVMInUseError",
        pattern: "Domain is in use: {}",
        sentence: noop_tr("Qube {0} is still in use."),
    },
    Known {
        kind: "QubesVMNotStartedError",
        pattern: "Domain is powered off: {}",
        sentence: noop_tr("Qube {0} is not running."),
    },
    Known {
        kind: "QubesVMNotRunningError",
        pattern: "Domain not running (either powered off or paused): {}",
        sentence: noop_tr("Qube {0} is not running (it is halted or paused)."),
    },
    Known {
        kind: "QubesVMNotPausedError",
        pattern: "Domain is not paused: {}",
        sentence: noop_tr("Qube {0} is not paused."),
    },
    Known {
        kind: "QubesVMNotSuspendedError",
        pattern: "Domain is not suspended: {}",
        sentence: noop_tr("Qube {0} is not suspended."),
    },
    Known {
        kind: "QubesVMNotHaltedError",
        pattern: "Domain is not powered off: {}",
        sentence: noop_tr("Qube {0} is still running; shut it down first."),
    },
    Known {
        kind: "QubesVMShutdownTimeoutError",
        pattern: "Domain shutdown timed out: {}",
        sentence: noop_tr("Qube {0} did not shut down in time."),
    },
    Known {
        kind: "QubesNoTemplateError",
        pattern: "Template for the domain {} not found",
        sentence: noop_tr("The template of qube {0} was not found."),
    },
    Known {
        kind: "QubesMemoryError",
        pattern: "Not enough memory to start domain {}",
        sentence: noop_tr("There is not enough free memory to start qube {0}."),
    },
    Known {
        kind: "QubesException",
        pattern: "Qube start is prohibited. Rationale: {}",
        sentence: noop_tr("Starting this qube is not allowed: {0}"),
    },
    Known {
        kind: "QubesPropertyValueError",
        pattern: "Invalid value {} for property {} of {}",
        sentence: noop_tr("{0} is not a valid value for {1}."),
    },
    Known {
        kind: "QubesNoSuchPropertyError",
        pattern: "Invalid property {} of {}",
        sentence: noop_tr("{1} has no property {0}."),
    },
    Known {
        kind: "QubesFeatureNotFoundError",
        pattern: "Feature not set for domain {}: {}",
        sentence: noop_tr("Qube {0} has no feature {1}."),
    },
    Known {
        kind: "QubesTagNotFoundError",
        pattern: "Tag not set for domain {}: {}",
        sentence: noop_tr("Qube {0} has no tag {1}."),
    },
    Known {
        kind: "QubesLabelNotFoundError",
        pattern: "Label does not exist: {}",
        sentence: noop_tr("There is no label {0}."),
    },
    Known {
        kind: "QubesNotImplementedError",
        pattern: "This feature is not available",
        sentence: noop_tr("This feature is not available."),
    },
    Known {
        kind: "BackupAlreadyRunningError",
        pattern: "Backup already running",
        sentence: noop_tr("A backup is already running."),
    },
];

/// The sentence shown for a failed call.
pub fn describe(e: &CallError) -> String {
    match e {
        CallError::Exception { kind, message } => describe_exception(kind, message),
        CallError::Empty => tr("Not allowed, or qubesd failed (see its log)"),
        other => other.to_string(),
    }
}

/// The sentence for exception `kind` with the daemon's `message`.
pub fn describe_exception(kind: &str, message: &str) -> String {
    for known in CATALOGUE.iter().filter(|k| k.kind == kind) {
        if let Some(fields) = match_pattern(known.pattern, message) {
            let fields: Vec<&str> = fields.iter().map(|f| unquote(f)).collect();
            return fill(&tr(known.sentence), &fields);
        }
    }
    // KeyError-based classes arrive with the whole message in quotes.
    unquote(message).to_string()
}

/// The fields of `message` if it has the shape of `pattern` (`{}` = one field; a field
/// ends where the next literal text first appears, the last one at the end).
fn match_pattern<'m>(pattern: &str, message: &'m str) -> Option<Vec<&'m str>> {
    let mut parts = pattern.split("{}");
    let first = parts.next().unwrap_or_default();
    let mut rest = message.strip_prefix(first)?;
    let mut fields = Vec::new();
    let literals: Vec<&str> = parts.collect();
    for (i, literal) in literals.iter().enumerate() {
        let last = i + 1 == literals.len();
        let end = if last {
            if !rest.ends_with(literal) || rest.len() < literal.len() {
                return None;
            }
            rest.len() - literal.len()
        } else {
            rest.find(literal)?
        };
        if end == 0 {
            return None;
        }
        fields.push(&rest[..end]);
        rest = &rest[end + literal.len()..];
    }
    rest.is_empty().then_some(fields)
}

/// A Python repr of a string without its quotes.
fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// `template` with `{0}`, `{1}`... replaced by the fields, in one pass: a field that itself
/// contains `{1}` stays as it is.
fn fill(template: &str, fields: &[&str]) -> String {
    let mut out =
        String::with_capacity(template.len() + fields.iter().map(|f| f.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let field = after
            .find('}')
            .and_then(|end| after[..end].parse::<usize>().ok().map(|i| (i, end)))
            .and_then(|(i, end)| fields.get(i).map(|f| (f, end)));
        match field {
            Some((f, end)) => {
                out.push_str(f);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_messages_become_sentences() {
        assert_eq!(
            describe_exception("QubesVMNotFoundError", "No such domain: 'work'"),
            "There is no qube named work."
        );
        assert_eq!(
            describe_exception(
                "QubesPropertyValueError",
                "Invalid value 'abc' for property 'memory' of work"
            ),
            "abc is not a valid value for memory."
        );
        assert_eq!(
            describe_exception(
                "QubesVMInUseError",
                "There are other VMs connected to this VM: work, personal"
            ),
            "These running qubes use its network; shut them down first: work, personal"
        );
        assert_eq!(
            describe_exception(
                "QubesNoSuchPropertyError",
                "Invalid property 'nope' of work"
            ),
            "work has no property nope."
        );
        assert_eq!(
            describe_exception(
                "QubesException",
                "Qube start is prohibited. Rationale: quarantined"
            ),
            "Starting this qube is not allowed: quarantined"
        );
    }

    #[test]
    fn unknown_messages_are_shown_as_they_are() {
        // Same text, other class: not the catalogued meaning.
        assert_eq!(
            describe_exception("QubesException", "No such domain: 'work'"),
            "No such domain: 'work'"
        );
        assert_eq!(
            describe_exception("QubesValueError", "100% {0} broken %s"),
            "100% {0} broken %s"
        );
        assert_eq!(
            describe_exception("DeviceNotAssigned", "'Device not assigned'"),
            "Device not assigned"
        );
        // A message that only starts like a known one does not match a field-less pattern.
        assert_eq!(
            describe_exception(
                "QubesNotImplementedError",
                "This feature is not available yet"
            ),
            "This feature is not available yet"
        );
        assert_eq!(
            describe_exception("QubesVMNotFoundError", "No such domain: "),
            "No such domain: "
        );
    }

    #[test]
    fn fields_with_braces_or_percent_stay_literal() {
        assert_eq!(
            describe_exception("QubesVMNotFoundError", "No such domain: '{1}%s'"),
            "There is no qube named {1}%s."
        );
        assert_eq!(fill("{0} {2} {x} {", &["a"]), "a {2} {x} {");
    }
}
