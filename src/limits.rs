//! What the dialogs accept before anything goes to the daemon: the range of each number a
//! qube or the system has, and the rules of a qube name. The daemon checks again; checking here
//! first lets a dialog say what is wrong next to the field, and send nothing at all when
//! something is (an Apply is all or nothing).

use crate::i18n::tr;

/// The numbers the dialogs edit, with the smallest and largest value accepted.
///
/// The daemon's own rules (qubes/vm/qubesvm.py, our qubesd's setters): `memory`, `vcpus`,
/// `qrexec_timeout` and `shutdown_timeout` must be positive, `maxmem` positive or zero; the
/// global timeouts and `stats_interval` are plain integers there, but a timeout of 0 or less
/// or a statistics interval of 0 makes no sense (qubesd samples at most once a second and at
/// least once an hour). The upper ends are those of the reference Qube Manager (memory 1 TiB,
/// maximum memory 10 TiB) or Xen's (128 virtual CPUs for an HVM or PVH qube); a day for a
/// timeout.
pub fn number_range(prop: &str) -> Option<(i64, i64)> {
    Some(match prop {
        "memory" => (1, 1_048_576),
        "maxmem" => (0, 10_485_760),
        "vcpus" => (1, 128),
        "qrexec_timeout"
        | "shutdown_timeout"
        | "default_qrexec_timeout"
        | "default_shutdown_timeout" => (1, 86_400),
        "stats_interval" => (1, 3600),
        // Storage in MiB: the smallest is the current size (it only grows), set per qube.
        p if p.starts_with("volume:") => (1, 16 << 20),
        _ => return None,
    })
}

/// `text` as a whole number from `min` to `max`, or what to tell the user.
pub fn parse_number(text: &str, min: i64, max: i64) -> Result<i64, String> {
    let Ok(n) = text.trim().parse::<i64>() else {
        return Err(tr("Enter a whole number."));
    };
    if n < min || n > max {
        return Err(tr("Enter a number from %1 to %2.")
            .replacen("%1", &min.to_string(), 1)
            .replacen("%2", &max.to_string(), 1));
    }
    Ok(n)
}

/// Longest qube name the daemon accepts (`validate_name`: shorter than 32 characters).
pub const NAME_MAX: usize = 31;

/// What is wrong with `name` for a new qube, checked as the daemon would (and against the
/// names in use), or `None` when it is fine.
pub fn name_problem<'a>(name: &str, taken: impl IntoIterator<Item = &'a str>) -> Option<String> {
    if name.is_empty() {
        return Some(tr("Enter a name for the qube."));
    }
    if name.chars().any(char::is_whitespace) {
        return Some(tr("A qube name has no spaces."));
    }
    if name.chars().count() > NAME_MAX {
        return Some(tr("A qube name has at most 31 characters."));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Some(tr("A qube name starts with a letter."));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Some(tr(
            "A qube name has only letters, digits and the characters - _ . (no spaces).",
        ));
    }
    if name == "Domain-0" {
        return Some(tr("A qube cannot be named Domain-0."));
    }
    if name == "none" || name == "default" {
        return Some(tr("A qube cannot be named none or default."));
    }
    if name.ends_with("-dm") {
        return Some(tr("A qube name cannot end with -dm."));
    }
    if taken.into_iter().any(|t| t == name) {
        return Some(tr("A qube named {0} already exists.").replacen("{0}", name, 1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_the_range_or_not_numbers_are_refused() {
        let (min, max) = number_range("memory").unwrap();
        assert_eq!(parse_number("800", min, max), Ok(800));
        assert_eq!(parse_number(" 1024 ", min, max), Ok(1024));
        assert_eq!(
            parse_number("99999999", min, max),
            Err("Enter a number from 1 to 1048576.".into())
        );
        assert_eq!(
            parse_number("0", min, max),
            Err("Enter a number from 1 to 1048576.".into())
        );
        assert_eq!(
            parse_number("8 GiB", min, max),
            Err("Enter a whole number.".into())
        );
        assert_eq!(number_range("stats_interval"), Some((1, 3600)));
        assert_eq!(number_range("maxmem").map(|r| r.0), Some(0));
        assert_eq!(number_range("label"), None);
    }

    #[test]
    fn names_are_checked_as_the_daemon_does() {
        let taken = ["work", "vault"];
        let problem = |n: &str| name_problem(n, taken);
        assert_eq!(problem("fresh"), None);
        assert_eq!(problem(&"a".repeat(31)), None);
        assert_eq!(problem(""), Some("Enter a name for the qube.".into()));
        assert_eq!(
            problem("my qube"),
            Some("A qube name has no spaces.".into())
        );
        assert_eq!(
            problem(&"a".repeat(32)),
            Some("A qube name has at most 31 characters.".into())
        );
        assert_eq!(
            problem("1bad"),
            Some("A qube name starts with a letter.".into())
        );
        assert_eq!(
            problem("a!b"),
            Some(
                "A qube name has only letters, digits and the characters - _ . (no spaces).".into()
            )
        );
        assert_eq!(
            problem("default"),
            Some("A qube cannot be named none or default.".into())
        );
        assert_eq!(
            problem("net-dm"),
            Some("A qube name cannot end with -dm.".into())
        );
        assert_eq!(
            problem("work"),
            Some("A qube named work already exists.".into())
        );
    }
}
