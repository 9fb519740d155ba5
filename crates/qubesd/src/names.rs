//! Validation of names that arrive from callers (admin-api.md §1.5, §3.2, §2.1, §2.4).

use qubes_api::{ExcKind, QubesError};

/// `validate_name`: qube names. Errors are `QubesValueError` with the reference's messages.
pub fn validate_name(name: &str) -> Result<(), QubesError> {
    let err = |m: &str| Err(QubesError::value(m));
    if name.len() > 31 {
        return err("VM name must be shorter than 32 characters");
    }
    let first = name.as_bytes().first().copied();
    if matches!(first, Some(b'-' | b'_' | b'.' | b'0'..=b'9')) {
        return err("VM name cannot start with hyphen, underscore, dot or numbers");
    }
    let ok = matches!(first, Some(c) if c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        return err("VM name contains illegal characters");
    }
    if name == "Domain-0" {
        return err("VM name cannot be 'Domain-0'");
    }
    if name == "none" || name == "default" {
        return err("VM name cannot be 'none' nor 'default'");
    }
    if name.ends_with("-dm") {
        return err("VM name cannot end with -dm");
    }
    Ok(())
}

/// Whether `s` is a lowercase canonical 8-4-4-4-12 uuid.
pub fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// Label names for `admin.label.*` arguments.
pub fn validate_label_name(name: &str) -> Result<(), QubesError> {
    if name.is_empty() {
        return Err(QubesError::new(
            ExcKind::QubesInvalidLabelError,
            "Label name must be set",
        ));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(QubesError::new(
            ExcKind::QubesInvalidLabelError,
            "Label must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
        ));
    }
    Ok(())
}

/// Tags for `admin.vm.tag.*` arguments.
pub fn validate_tag(tag: &str) -> Result<(), QubesError> {
    if tag.is_empty() {
        return Err(QubesError::new(
            ExcKind::QubesInvalidTagError,
            "tag cannot be empty",
        ));
    }
    if !tag
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
    {
        return Err(QubesError::new(
            ExcKind::QubesInvalidTagError,
            "disallowed characters",
        ));
    }
    Ok(())
}

mod display_allowlist;

/// Whether a character may be shown to a user as it is, exactly as libqubes-pure's
/// `qubes_pure_code_point_safe_for_display` decides (same rules, same Unicode data:
/// `tools/display-allowlist.py`): letters, numbers, punctuation, math and currency symbols of
/// scripts that need no complex or right-to-left rendering; no controls, marks, spaces other
/// than ASCII's, format characters, emoji or other symbols.
pub fn safe_for_display(c: char) -> bool {
    let u = c as u32;
    display_allowlist::RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < u {
                std::cmp::Ordering::Less
            } else if lo > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_safety() {
        assert!(safe_for_display('a'));
        assert!(safe_for_display('ä'));
        assert!(!safe_for_display('\u{202e}'));
        assert!(!safe_for_display('\x1b'));
        assert!(!safe_for_display('\u{1f642}'), "emoji");
        assert!(safe_for_display(' '));
        assert!(!safe_for_display('\u{a0}'), "no-break space");
        assert!(!safe_for_display('\u{5d0}'), "right-to-left");
        assert!(safe_for_display('\u{4e2d}'), "Han");
        assert!(!safe_for_display('\u{7f}'));
    }

    fn msg(r: Result<(), QubesError>) -> String {
        match r {
            Err(QubesError::Exception { message, .. }) => message,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("work").is_ok());
        assert!(validate_name("a.b-c_1").is_ok());
        assert_eq!(
            msg(validate_name(&"a".repeat(32))),
            "VM name must be shorter than 32 characters"
        );
        assert!(validate_name(&"a".repeat(31)).is_ok());
        assert_eq!(
            msg(validate_name("1abc")),
            "VM name cannot start with hyphen, underscore, dot or numbers"
        );
        assert_eq!(
            msg(validate_name("")),
            "VM name contains illegal characters"
        );
        assert_eq!(
            msg(validate_name("a b")),
            "VM name contains illegal characters"
        );
        assert_eq!(
            msg(validate_name("none")),
            "VM name cannot be 'none' nor 'default'"
        );
        assert_eq!(
            msg(validate_name("Domain-0")),
            "VM name cannot be 'Domain-0'"
        );
        assert_eq!(msg(validate_name("x-dm")), "VM name cannot end with -dm");
    }

    #[test]
    fn uuids() {
        assert!(is_canonical_uuid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_canonical_uuid("00000000-0000-0000-0000-00000000000A"));
        assert!(!is_canonical_uuid("00000000000000000000000000000000"));
    }
}
