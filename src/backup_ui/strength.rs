//! How hard a backup passphrase is to guess, as a hint under the passphrase fields. The
//! estimate is zxcvbn's (dictionaries, keyboard patterns, dates, repeats); the words are ours,
//! so they are translated.

use crate::i18n::tr;

/// A passphrase's strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// Nothing typed.
    Empty,
    /// Guessed within minutes to days by an attacker with the backup file.
    Weak,
    /// Takes an attacker serious effort.
    Fair,
    /// Out of reach of guessing.
    Strong,
}

impl Strength {
    /// The level shown in a level bar (0 to 3).
    pub fn level(self) -> f64 {
        match self {
            Strength::Empty => 0.0,
            Strength::Weak => 1.0,
            Strength::Fair => 2.0,
            Strength::Strong => 3.0,
        }
    }

    /// The hint for the user.
    pub fn hint(self) -> String {
        match self {
            Strength::Empty => tr("Type a passphrase: whoever has it can read the backup."),
            Strength::Weak => tr(
                "Weak: easy to guess for someone who gets the backup. Use several unrelated words.",
            ),
            Strength::Fair => tr("Fair: a few more words would make it much stronger."),
            Strength::Strong => tr("Strong."),
        }
    }
}

/// Estimates `passphrase`'s strength; `context` are words an attacker would try first
/// (qube names).
pub fn estimate(passphrase: &str, context: &[&str]) -> Strength {
    if passphrase.is_empty() {
        return Strength::Empty;
    }
    // zxcvbn's cost grows with the length; past this its answer no longer changes ours.
    let head: String = passphrase.chars().take(100).collect();
    let mut words = vec!["qubes", "backup", "qube", "dom0"];
    words.extend_from_slice(context);
    match u8::from(zxcvbn::zxcvbn(&head, &words).score()) {
        0 | 1 => Strength::Weak,
        2 | 3 => Strength::Fair,
        _ => Strength::Strong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_words_and_patterns_are_weak() {
        assert_eq!(estimate("", &[]), Strength::Empty);
        for weak in [
            "password",
            "Password1!",
            "qwertyuiop",
            "aaaaaaaaaaaa",
            "workwork1",
        ] {
            assert_eq!(estimate(weak, &["work"]), Strength::Weak, "{weak}");
        }
        assert_eq!(
            estimate("correct horse battery staple orbit tulip", &[]),
            Strength::Strong
        );
        assert!(estimate("Tr0ub4dor&3x", &[]) >= Strength::Fair);
        // A repeated piece is weak however long; very long input is cut, not refused.
        assert_eq!(estimate(&"xk2!".repeat(10_000), &[]), Strength::Weak);
        let mut x = 0x9e3779b97f4a7c15u64;
        let random: String = (0..40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        assert_eq!(estimate(&random, &[]), Strength::Strong);
    }
}
