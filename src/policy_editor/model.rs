//! A policy file as the editor holds it: its lines in order, rules split into their columns,
//! everything else (comments, blank lines, directives) kept verbatim. Saving writes the rules
//! back one per line, the rest as it was, so an edit changes only what the user changed.

use qrexec_policy::parser::Parser;
use std::path::Path;

/// One line of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A rule: service, argument, source, target, action, and the parameters as written.
    Rule(RuleLine),
    /// A comment, blank line or directive, as written.
    Other(String),
}

/// A rule's columns as text (the editor checks nothing itself: the daemon validates on save).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleLine {
    /// Service, or `*`.
    pub service: String,
    /// Argument (`+ARG`, `+`, or `*`).
    pub argument: String,
    /// Source token.
    pub source: String,
    /// Target token.
    pub target: String,
    /// `allow`, `deny` or `ask`.
    pub action: String,
    /// `key=value` parameters, space separated.
    pub params: String,
}

impl RuleLine {
    /// A new rule with harmless defaults (deny everything, for a service to fill in).
    pub fn new() -> RuleLine {
        RuleLine {
            service: "*".into(),
            argument: "*".into(),
            source: "@anyvm".into(),
            target: "@anyvm".into(),
            action: "deny".into(),
            params: String::new(),
        }
    }

    /// The rule as one line of the current format.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\t{}\t{}\t{}\t{}",
            self.service, self.argument, self.source, self.target, self.action
        );
        if !self.params.trim().is_empty() {
            s.push(' ');
            s.push_str(self.params.trim());
        }
        s
    }
}

/// Splits policy text into lines: a line with at least five fields that is not a comment or
/// a directive is a rule.
pub fn parse(text: &str) -> Vec<Line> {
    let mut lines: Vec<Line> = text
        .split('\n')
        .map(|raw| {
            let t = raw.trim();
            let fields: Vec<&str> = t.split_whitespace().collect();
            if t.starts_with('#') || t.starts_with('!') || fields.len() < 5 {
                return Line::Other(raw.to_string());
            }
            Line::Rule(RuleLine {
                service: fields[0].into(),
                argument: fields[1].into(),
                source: fields[2].into(),
                target: fields[3].into(),
                action: fields[4].into(),
                params: fields[5..].join(" "),
            })
        })
        .collect();
    // The final newline is not a line of its own.
    if matches!(lines.last(), Some(Line::Other(s)) if s.is_empty()) {
        lines.pop();
    }
    lines
}

/// The text of the lines, each ending with a newline.
pub fn serialize(lines: &[Line]) -> String {
    let mut out = String::new();
    for l in lines {
        match l {
            Line::Rule(r) => out.push_str(&r.to_text()),
            Line::Other(s) => out.push_str(s),
        }
        out.push('\n');
    }
    out
}

/// The line number (from 1) a daemon's validation error names in `file`, from
/// `Policy change validation failed: <path>:<line>: <message>`.
pub fn error_line(message: &str, file_path_suffix: &str) -> Option<usize> {
    let rest = message.split_once(file_path_suffix)?.1;
    let rest = rest.strip_prefix(':')?;
    rest.split(':').next()?.parse().ok()
}

/// What a legacy (R4.0) file means in the current format: one rule per line, service and
/// argument from the file name, `$` tokens and commas converted, includes followed (relative
/// to the legacy directory, as `!compat-4.0` reads them).
pub fn legacy_meaning(legacy_dir: &Path, name: &str, text: &str) -> Result<String, String> {
    let (service, argument) = match name.split_once('+') {
        Some((s, a)) => (s.to_string(), format!("+{a}")),
        None => (name.to_string(), "*".to_string()),
    };
    let (service, argument) =
        qrexec_policy::parser::validate_service_and_argument(&service, &argument)?;
    let fs = qrexec_policy::parser::FileSystem {
        compat_dir: legacy_dir.to_path_buf(),
    };
    let mut parser = Parser::new(&fs, legacy_dir);
    let file = legacy_dir.join(name);
    parser
        .load_legacy(
            text,
            service.clone(),
            argument.clone(),
            &file.to_string_lossy(),
            legacy_dir,
        )
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    for r in &parser.rules {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    // A file for one argument ends with the denies R4.0 implied.
    if argument.is_some() {
        let s = service.as_deref().unwrap_or("*");
        let a = argument.as_deref().unwrap_or("*");
        out.push_str(&format!("{s}\t{a}\t@anyvm\t@anyvm\tdeny\n"));
        out.push_str(&format!("{s}\t{a}\t@anyvm\t@adminvm\tdeny\n"));
    }
    Ok(out)
}

/// The Policy Admin API name for a converted legacy file (`qubes.FileCopy+x` →
/// `35-legacy-qubes-filecopy-x`): lowercase, only letters, digits and hyphens.
pub fn converted_name(legacy_name: &str) -> String {
    let mut s = String::from("35-legacy-");
    for c in legacy_name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_comments_and_rules() {
        let text = "# mine\n\nqubes.FileCopy * @tag:work @tag:work allow\n!include include/x\nsvc +a work vault ask default_target=vault notify=yes\n";
        let lines = parse(text);
        assert_eq!(lines.len(), 5);
        let Line::Rule(r) = &lines[4] else { panic!() };
        assert_eq!(r.params, "default_target=vault notify=yes");
        assert_eq!(
            serialize(&lines),
            "# mine\n\nqubes.FileCopy\t*\t@tag:work\t@tag:work\tallow\n!include include/x\nsvc\t+a\twork\tvault\task default_target=vault notify=yes\n"
        );
        assert_eq!(parse(&serialize(&lines)), lines);
    }

    #[test]
    fn validation_errors_point_at_lines() {
        let m = "Policy change validation failed: /etc/qubes/policy.d/30-user.policy:3: invalid target token: '@x'";
        assert_eq!(error_line(m, "/30-user.policy"), Some(3));
        assert_eq!(error_line(m, "/other.policy"), None);
    }

    #[test]
    fn legacy_files_in_the_new_format() {
        let dir = tempfile::tempdir().unwrap();
        let m = legacy_meaning(
            dir.path(),
            "qubes.FileCopy+x",
            "$tag:work $tag:work allow\n$anyvm $anyvm ask,default_target=$dispvm\n",
        )
        .unwrap();
        assert_eq!(
            m,
            "qubes.FileCopy\t+x\t@tag:work\t@tag:work\tallow\nqubes.FileCopy\t+x\t@anyvm\t@anyvm\task default_target=@dispvm\nqubes.FileCopy\t+x\t@anyvm\t@anyvm\tdeny\nqubes.FileCopy\t+x\t@anyvm\t@adminvm\tdeny\n"
        );
        assert_eq!(
            converted_name("qubes.FileCopy+x"),
            "35-legacy-qubes-filecopy-x"
        );
        assert!(legacy_meaning(dir.path(), "svc", "$anyvm\n").is_err());
    }
}
