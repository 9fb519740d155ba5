//! `admin.backup.Info`'s text table, read back into rows so the window can show it as a table
//! in the user's language (admin-api.md §9.1). The text comes from the daemon: it is parsed,
//! never trusted to have the expected shape, and shown as it came when it does not.

use crate::i18n::tr;

/// One qube of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRow {
    /// Qube name.
    pub name: String,
    /// The type column as sent (`VM`, `Template VM`, `VM + Sys`, `User home`).
    pub kind: String,
    /// The size column as sent (`1.5 GiB`).
    pub size: String,
    /// The warning after the row, if any.
    pub warning: Option<String>,
}

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InfoTable {
    /// Selected qubes, in backup order.
    pub rows: Vec<InfoRow>,
    /// `Total size:`.
    pub total: String,
    /// Qubes not selected, sorted.
    pub not_selected: Vec<String>,
}

fn is_rule(line: &str) -> bool {
    !line.is_empty() && line.chars().all(|c| c == '-' || c == '+')
}

/// Reads the table; `None` when the text does not have its shape.
pub fn parse(untrusted: &str) -> Option<InfoTable> {
    let lines: Vec<&str> = untrusted.lines().collect();
    let rules: Vec<usize> = (0..lines.len()).filter(|i| is_rule(lines[*i])).collect();
    if rules.len() < 4 || rules[0] != 0 {
        return None;
    }
    let mut table = InfoTable::default();
    for line in &lines[rules[1] + 1..rules[2]] {
        let mut cells = line.splitn(4, '|');
        let (name, kind, size) = (cells.next()?, cells.next()?, cells.next()?);
        let rest = cells.next().unwrap_or("").trim();
        table.rows.push(InfoRow {
            name: name.trim().to_string(),
            kind: kind.trim().to_string(),
            size: size.trim().to_string(),
            warning: rest
                .strip_prefix("<--")
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty()),
        });
    }
    let total = lines[rules[2] + 1..rules[3]]
        .iter()
        .find_map(|l| l.split_once("Total size:"))?
        .1;
    table.total = total
        .trim_matches(|c: char| c == '|' || c == ' ')
        .to_string();
    let after = &lines[rules[3] + 1..];
    if after.first() != Some(&"VMs not selected for backup:") {
        return None;
    }
    table.not_selected = after[1..]
        .iter()
        .filter_map(|l| l.strip_prefix(" - "))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    Some(table)
}

/// The type column in the user's language.
pub fn kind_text(kind: &str) -> String {
    match kind {
        "VM" => tr("Qube"),
        "VM + Sys" => tr("Qube with its own system"),
        "Template VM" => tr("Template"),
        "User home" => tr("Home folder in dom0"),
        other => other.to_string(),
    }
}

/// A row's warning in the user's language.
pub fn warning_text(warning: &str) -> String {
    match warning {
        "The VM is running, backup will contain its state from before its start!" => {
            tr("Running: the backup holds its data as it was before it started.")
        }
        "The VM is running and private volume snapshots are disabled. Backup will fail!" => tr(
            "Running without snapshots of its volumes: the backup will fail. Shut it down first.",
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qubes_backup::summary::{RunningWarning, SummaryKind, SummaryRow, backup_summary};

    #[test]
    fn reads_what_the_daemon_writes() {
        let text = backup_summary(
            &[
                SummaryRow {
                    name: "a-very-long-qube-name-indeed".into(),
                    kind: SummaryKind::Template,
                    size: 5 << 30,
                    running: None,
                },
                SummaryRow {
                    name: "work".into(),
                    kind: SummaryKind::Vm { updateable: false },
                    size: 1536,
                    running: Some(RunningWarning::Running),
                },
                SummaryRow {
                    name: "dom0".into(),
                    kind: SummaryKind::Dom0Home,
                    size: 12,
                    running: None,
                },
            ],
            &["sys-net".into(), "default-mgmt-dvm".into()],
        );
        let t = parse(&text).unwrap();
        assert_eq!(
            t.rows[0],
            InfoRow {
                name: "a-very-long-qube-name-indeed".into(),
                kind: "Template VM".into(),
                size: "5.0 GiB".into(),
                warning: None,
            }
        );
        assert_eq!(t.rows[1].size, "1.5 KiB");
        assert_eq!(
            warning_text(t.rows[1].warning.as_deref().unwrap()),
            "Running: the backup holds its data as it was before it started."
        );
        assert_eq!(t.rows[2].kind, "User home");
        assert_eq!(t.total, "5.0 GiB");
        assert_eq!(t.not_selected, ["default-mgmt-dvm", "sys-net"]);
        let none = parse(&backup_summary(&[], &[])).unwrap();
        assert!(none.rows.is_empty() && none.not_selected.is_empty());
        for bad in [
            "",
            "hello",
            "---+\nx\n---+\n---+\n",
            &text.replace("VMs not", "x"),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
