//! Daemon failures as sentences for people.
//!
//! qubesd sends an exception's class name and its already formatted English message. The
//! catalogue below knows the exact message formats the daemon (ours and the reference) sends,
//! hints included: it pulls the fields (qube, property, value...) out of the message and puts
//! them into a translated sentence. A field is either free text (`{}`, up to the literal text
//! that follows it) or a Python `repr()` of a string (`{r}`: quoted, and only that), so a
//! message with a hint the catalogue does not know matches no entry instead of a field
//! swallowing the hint. Messages it does not know are shown as they came. Nothing here
//! interprets `%` or braces inside the daemon's text, so no message can break the formatting.

use qubes_api::CallError;

use crate::i18n::tr;

mod catalogue;
use catalogue::CATALOGUE;

/// One known message: exception class, the daemon's text with `{}` or `{r}` for each field,
/// and the msgid of the sentence shown instead (`{0}`, `{1}`... stand for the fields).
struct Known {
    kind: &'static str,
    pattern: &'static str,
    sentence: &'static str,
}

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
    match known(kind, message) {
        Some((entry, fields)) => fill(&tr(entry.sentence), &fields),
        // KeyError-based classes arrive with the whole message in quotes.
        None => unquote(message).to_string(),
    }
}

/// Whether the catalogue has a sentence for the message format `pattern` of class `kind` (the
/// daemon's `format!` with `{}` for a field and `{r}` for a quoted one): a message made from it
/// is recognised.
pub fn covers(kind: &str, pattern: &str) -> bool {
    let sample = pattern.replace("{r}", "'sample'").replace("{}", "sample");
    known(kind, &sample).is_some()
}

/// The catalogue entry `message` of class `kind` has the form of, with its fields.
fn known<'m>(kind: &str, message: &'m str) -> Option<(&'static Known, Vec<&'m str>)> {
    CATALOGUE
        .iter()
        .filter(|k| k.kind == kind)
        .find_map(|k| match_pattern(k.pattern, message).map(|f| (k, f)))
}

/// One piece of a pattern.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'p> {
    Text(&'p str),
    /// `{}`: any text up to where the next literal text first appears (the last one: to the
    /// end).
    Field,
    /// `{r}`: a Python `repr()` of a string, quoted with `'` (or `"` when it holds a `'`).
    Repr,
}

fn pieces(pattern: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = pattern;
    loop {
        let next = [("{}", Piece::Field), ("{r}", Piece::Repr)]
            .into_iter()
            .filter_map(|(mark, piece)| rest.find(mark).map(|at| (at, mark.len(), piece)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, len, piece)) = next else {
            if !rest.is_empty() {
                out.push(Piece::Text(rest));
            }
            return out;
        };
        if at > 0 {
            out.push(Piece::Text(&rest[..at]));
        }
        out.push(piece);
        rest = &rest[at + len..];
    }
}

/// The fields of `message` if it has exactly the shape of `pattern`; a `{r}` field gives the
/// string inside its quotes.
fn match_pattern<'m>(pattern: &str, message: &'m str) -> Option<Vec<&'m str>> {
    let pieces = pieces(pattern);
    let mut rest = message;
    let mut fields = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(t) => rest = rest.strip_prefix(t)?,
            Piece::Repr => {
                let quote = rest.chars().next().filter(|q| matches!(q, '\'' | '"'))?;
                let end = rest[1..].find(quote)? + 1;
                let inner = &rest[1..end];
                // Python quotes with " only when the text holds a '.
                if quote == '"' && !inner.contains('\'') {
                    return None;
                }
                fields.push(inner);
                rest = &rest[end + 1..];
            }
            Piece::Field => {
                let end = match pieces.get(i + 1) {
                    Some(Piece::Text(next)) => rest.find(next)?,
                    None => rest.len(),
                    // Two fields side by side cannot be told apart.
                    Some(_) => return None,
                };
                if end == 0 {
                    return None;
                }
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
        }
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

    /// What qubesd sends (class, message, exactly as on the wire) and the sentence shown, for
    /// every catalogue entry: our daemon's messages (checked against it in
    /// `the_daemons_messages_are_the_ones_listed`) and the reference's where ours cannot
    /// produce them in a test (memory, a hung shutdown, backups).
    const CASES: &[(&str, &str, &str)] = &[
        (
            "QubesVMNotFoundError",
            "No such domain: 'nope'",
            "There is no qube named nope.",
        ),
        (
            "QubesVMAlreadyExistsError",
            "Qube already exists: work",
            "A qube named work already exists.",
        ),
        (
            "QubesVMInUseError",
            "There are other VMs connected to this VM: sys-firewall",
            "These running qubes use its network; shut them down first: sys-firewall",
        ),
        (
            "QubesVMInUseError",
            "There are running VMs using this VM as AudioVM: work, personal",
            "These running qubes use it for audio; shut them down first: work, personal",
        ),
        (
            "QubesVMInUseError",
            "Domain is in use: 'default-dvm';  see 'journalctl -u qubesd -e' in dom0 for details",
            "Qube default-dvm is still in use by other qubes or by the global settings. The qubesd log in dom0 (journalctl -u qubesd -e) says which.",
        ),
        (
            "QubesVMInUseError",
            "Domain is in use: 'work'",
            "Qube work is still in use.",
        ),
        (
            "QubesVMInUseError",
            "'dom0' cannot be removed",
            "dom0 cannot be removed.",
        ),
        (
            "QubesVMInUseError",
            "VM installed by package manager: fedora-41",
            "Qube fedora-41 was installed by the package manager; remove it with qvm-template.",
        ),
        (
            "QubesVMInUseError",
            "VM has devices assigned to other VMs: 00_14.0",
            "Other qubes have devices of this qube assigned: 00_14.0",
        ),
        (
            "QubesVMInUseError",
            "Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: default_dispvm, management_dispvm",
            "It stays a disposable template while the global settings use it (default_dispvm, management_dispvm).",
        ),
        (
            "QubesVMInUseError",
            "Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template",
            "It stays a disposable template while other qubes use it as theirs (default_dispvm, management_dispvm, template).",
        ),
        (
            "QubesVMNotStartedError",
            "Domain is powered off: 'vault'",
            "Qube vault is not running.",
        ),
        (
            "QubesVMNotRunningError",
            "Domain not running (either powered off or paused): 'sys-usb'",
            "Qube sys-usb is not running (it is halted or paused).",
        ),
        (
            "QubesVMNotPausedError",
            "Domain is not paused: 'work'",
            "Qube work is not paused.",
        ),
        (
            "QubesVMNotSuspendedError",
            "Domain is not suspended: 'work'",
            "Qube work is not suspended.",
        ),
        (
            "QubesVMNotHaltedError",
            "Domain is not powered off: 'work'",
            "Qube work is still running; shut it down first.",
        ),
        (
            "QubesVMNotHaltedError",
            "Cannot change template while qube is running",
            "The template can only change while the qube is shut down.",
        ),
        (
            "QubesVMShutdownTimeoutError",
            "Domain shutdown timed out: 'work'",
            "Qube work did not shut down in time.",
        ),
        (
            "QubesNoTemplateError",
            "Template for the domain 'work' not found",
            "The template of qube work was not found.",
        ),
        (
            "QubesMemoryError",
            "Not enough memory to start domain 'work'",
            "There is not enough free memory to start qube work.",
        ),
        (
            "QubesException",
            "Qube start is prohibited. Rationale: quarantined",
            "Starting this qube is not allowed: quarantined",
        ),
        (
            "QubesPropertyValueError",
            "Invalid value 'sys-net' for property 'template' of work",
            "sys-net is not a valid value for template.",
        ),
        (
            "QubesPropertyValueError",
            "Invalid value None for property 'template' of vault",
            "template must be set.",
        ),
        (
            "QubesPropertyValueError",
            "wrong VM class: domains['sys-net'] is of type AppVM and not TemplateVM",
            "sys-net cannot be chosen here (its type is AppVM; TemplateVM needed).",
        ),
        (
            "QubesPropertyValueError",
            "memory must be positive",
            "memory must be a number above zero.",
        ),
        (
            "QubesPropertyValueError",
            "maxmem must be positive or zero",
            "maxmem must be zero or a number above zero.",
        ),
        (
            "QubesNoSuchPropertyError",
            "Invalid property 'nope' of work",
            "work has no property nope.",
        ),
        (
            "QubesFeatureNotFoundError",
            "Feature not set for domain work: nope",
            "Qube work has no feature nope.",
        ),
        (
            "QubesTagNotFoundError",
            "Tag not set for domain work: nope",
            "Qube work has no tag nope.",
        ),
        (
            "QubesLabelNotFoundError",
            "Label does not exist: nope",
            "There is no label nope.",
        ),
        (
            "QubesValueError",
            "VM name must be shorter than 32 characters",
            "A qube name has at most 31 characters.",
        ),
        (
            "QubesValueError",
            "VM name cannot start with hyphen, underscore, dot or numbers",
            "A qube name starts with a letter.",
        ),
        (
            "QubesValueError",
            "VM name contains illegal characters",
            "A qube name has only letters, digits and the characters - _ . (no spaces).",
        ),
        (
            "QubesValueError",
            "VM name cannot be 'Domain-0'",
            "A qube cannot be named Domain-0.",
        ),
        (
            "QubesValueError",
            "VM name cannot be 'none' nor 'default'",
            "A qube cannot be named none or default.",
        ),
        (
            "QubesValueError",
            "VM name cannot end with -dm",
            "A qube name cannot end with -dm.",
        ),
        (
            "QubesValueError",
            "The vault qube does not provide network",
            "Qube vault does not provide network to other qubes.",
        ),
        (
            "QubesValueError",
            "Loops in network are unsupported",
            "That network qube reaches the network through this qube: a loop.",
        ),
        (
            "QubesNotImplementedError",
            "This feature is not available",
            "This feature is not available.",
        ),
        (
            "BackupAlreadyRunningError",
            "Backup already running",
            "A backup is already running.",
        ),
    ];

    #[test]
    fn each_case_reads_as_its_sentence_and_every_entry_fills_its_fields() {
        for (kind, message, sentence) in CASES {
            assert!(
                known(kind, message).is_some(),
                "{kind}: {message:?} matches no entry"
            );
            assert_eq!(describe_exception(kind, message), *sentence, "{message:?}");
        }
        // Every entry: a message of its format (each field a value of its own) is recognised
        // and becomes its sentence with every field it names filled in.
        for (i, entry) in CATALOGUE.iter().enumerate() {
            let mut n = 0;
            let sample = pieces(entry.pattern)
                .into_iter()
                .map(|p| match p {
                    Piece::Text(t) => t.to_string(),
                    Piece::Field => {
                        n += 1;
                        format!("v{n}")
                    }
                    Piece::Repr => {
                        n += 1;
                        format!("'v{n}'")
                    }
                })
                .collect::<String>();
            let (found, fields) = known(entry.kind, &sample).unwrap_or_else(|| {
                panic!("entry {i} ({:?}) does not match {sample:?}", entry.pattern)
            });
            assert!(
                std::ptr::eq(found, entry) || found.sentence == entry.sentence,
                "entry {i} ({:?}) is hidden by an earlier one ({:?})",
                entry.pattern,
                found.pattern
            );
            let text = fill(entry.sentence, &fields);
            for k in 0..10 {
                assert!(
                    !text.contains(&format!("{{{k}}}")),
                    "{text:?}: field {k} missing"
                );
            }
        }
    }

    #[test]
    fn a_field_never_swallows_a_hint() {
        // The hint that garbled "Qube 'default-dvm'; see ... is still in use." is matched by
        // its own entry; a hint nobody knows leaves the message as the daemon wrote it.
        let odd = "Domain is in use: 'work';  see the manual";
        assert_eq!(describe_exception("QubesVMInUseError", odd), odd);
        let odd = "Domain is powered off: 'work' (since 10:00)";
        assert_eq!(describe_exception("QubesVMNotStartedError", odd), odd);
        // A repr is quoted, or it is not a repr.
        assert_eq!(
            describe_exception("QubesVMNotFoundError", "No such domain: work"),
            "No such domain: work"
        );
        // Python quotes with " only when the text holds a '.
        assert_eq!(
            describe_exception("QubesVMNotFoundError", "No such domain: \"it's\""),
            "There is no qube named it's."
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

    /// The messages above are the daemon's: each one our daemon can give is asked for, on the
    /// demo system, and must be the listed text byte for byte.
    #[cfg(feature = "demo")]
    #[test]
    fn the_daemons_messages_are_the_ones_listed() {
        let core = qubesd::Embedded::demo().expect("demo core");
        let ask = |method: &str, dest: &str, arg: &str, payload: &str| -> (String, String) {
            let raw = qubes_api::Transport::call_raw(&core, method, dest, arg, payload.as_bytes())
                .expect("answer");
            // 2 \0 class \0 traceback \0 message \0
            let parts: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            assert_eq!(parts[0], b"2", "{method} {dest} {arg}: {raw:?}");
            (
                String::from_utf8_lossy(parts[1]).into_owned(),
                String::from_utf8_lossy(parts[3]).into_owned(),
            )
        };
        let ok = |method: &str, dest: &str, arg: &str, payload: &str| {
            let raw = qubes_api::Transport::call_raw(&core, method, dest, arg, payload.as_bytes())
                .expect("answer");
            assert!(raw.starts_with(b"0\0"), "{method}: {raw:?}");
        };
        let long = "a".repeat(32);
        let create = |name: &str| format!("name={name} label=red");
        ok(
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora-41",
            &create("audio"),
        );
        ok("admin.vm.Pause", "sys-usb", "", "");
        ok(
            "admin.vm.property.Set",
            "fedora-41",
            "installed_by_rpm",
            "True",
        );
        let live = [
            ask("admin.vm.property.Get", "nope", "label", ""),
            ask(
                "admin.vm.Create.AppVM",
                "dom0",
                "fedora-41",
                &create("work"),
            ),
            ask("admin.vm.Shutdown", "sys-net", "", ""),
            ask("admin.vm.Remove", "default-dvm", "", ""),
            ask("admin.vm.Remove", "dom0", "", ""),
            ask("admin.vm.Remove", "fedora-41", "", ""),
            ask(
                "admin.vm.property.Set",
                "default-dvm",
                "template_for_dispvms",
                "False",
            ),
            ask("admin.vm.Kill", "vault", "", ""),
            ask("admin.vm.Shutdown", "sys-usb", "", ""),
            ask("admin.vm.Unpause", "work", "", ""),
            ask("admin.vm.Remove", "work", "", ""),
            ask(
                "admin.vm.property.Set",
                "work",
                "template",
                "debian-12-xfce",
            ),
            ask("admin.vm.property.Set", "vault", "template", "sys-net"),
            ask("admin.vm.property.Set", "vault", "template", ""),
            ask("admin.vm.property.Set", "work", "memory", "0"),
            ask("admin.vm.property.Set", "work", "maxmem", "-1"),
            ask("admin.vm.property.Get", "work", "nope", ""),
            ask("admin.vm.feature.Get", "work", "nope", ""),
            ask("admin.vm.tag.Remove", "work", "nope", ""),
            ask("admin.vm.property.Set", "work", "label", "nope"),
            ask("admin.vm.Create.AppVM", "dom0", "fedora-41", &create(&long)),
            ask(
                "admin.vm.Create.AppVM",
                "dom0",
                "fedora-41",
                &create("1bad"),
            ),
            ask("admin.vm.Create.AppVM", "dom0", "fedora-41", &create("a!b")),
            ask(
                "admin.vm.Create.AppVM",
                "dom0",
                "fedora-41",
                &create("Domain-0"),
            ),
            ask(
                "admin.vm.Create.AppVM",
                "dom0",
                "fedora-41",
                &create("default"),
            ),
            ask(
                "admin.vm.Create.AppVM",
                "dom0",
                "fedora-41",
                &create("a-dm"),
            ),
            ask("admin.vm.property.Set", "work", "netvm", "vault"),
            ask("admin.vm.property.Set", "sys-net", "netvm", "sys-firewall"),
        ];
        ok(
            "admin.vm.feature.Set",
            "vault",
            "prohibit-start",
            "quarantined",
        );
        let prohibited = ask("admin.vm.Start", "vault", "", "");
        let missing: Vec<String> = live
            .iter()
            .chain([&prohibited])
            .filter(|(kind, message)| !CASES.iter().any(|(k, m, _)| k == kind && m == message))
            .map(|(kind, message)| format!("{kind}: {message:?}"))
            .collect();
        assert!(
            missing.is_empty(),
            "the daemon says these, which are not among the cases:\n{}",
            missing.join("\n")
        );
    }
}
