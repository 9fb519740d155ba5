//! The text `admin.backup.Info` answers (`Backup.get_backup_summary`), as a pure function.

use std::fmt::Write as _;

/// How Info describes a selected qube in its "type" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryKind {
    /// dom0: `User home`.
    Dom0Home,
    /// A `TemplateVM`: `Template VM`.
    Template,
    /// Any other qube: `VM`, or `VM + Sys` when `updateable`.
    Vm {
        /// The `updateable` property.
        updateable: bool,
    },
}

/// A running qube's warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunningWarning {
    /// Running, its volumes are snapshotted: the backup has the state from before the start.
    Running,
    /// Running with a volume whose snapshots are disabled: the backup will fail.
    SnapshotsDisabled,
}

/// One selected qube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// Name.
    pub name: String,
    /// Type column.
    pub kind: SummaryKind,
    /// Bytes: the sum of its files' sizes (volume usage, disk usage of the other files).
    pub size: u64,
    /// Set for a running qube other than dom0.
    pub running: Option<RunningWarning>,
}

/// Python's `size_to_human` (`qubes/utils.py`): bytes, then KiB/MiB/GiB with one decimal,
/// rounded like Python's `round(x, 1)` (half to even on the exact binary value).
pub fn size_to_human(size: u64) -> String {
    const K: f64 = 1024.0;
    let (value, unit) = if size < 1024 {
        return size.to_string();
    } else if size < 1024 * 1024 {
        (size as f64 / K, "KiB")
    } else if size < 1024 * 1024 * 1024 {
        (size as f64 / (K * K), "MiB")
    } else {
        (size as f64 / (K * K * K), "GiB")
    };
    format!("{} {unit}", round1(value))
}

/// `str(round(x, 1))` for the positive, moderate values of [`size_to_human`]. Rust's `{:.1}`
/// rounds the exact binary value half to even, which is what CPython's `round` does.
fn round1(x: f64) -> String {
    format!("{x:.1}")
}

const WIDTHS: [usize; 3] = [16, 12, 12];

fn rule(out: &mut String) {
    for w in WIDTHS {
        out.push_str(&"-".repeat(w + 1));
        out.push_str("-+");
    }
    out.push('\n');
}

fn cell(out: &mut String, width: usize, text: &str) {
    let _ = write!(out, "{text:>w$} |", w = width + 1);
}

/// Info's table: a header, one row per selected qube in backup order, the total, and the
/// sorted names of the qubes not selected.
pub fn backup_summary(rows: &[SummaryRow], not_selected: &[String]) -> String {
    let mut out = String::new();
    rule(&mut out);
    for (w, name) in WIDTHS.iter().zip(["VM", "type", "size"]) {
        cell(&mut out, *w, name);
    }
    out.push('\n');
    rule(&mut out);
    for row in rows {
        cell(&mut out, WIDTHS[0], &row.name);
        let kind = match row.kind {
            SummaryKind::Dom0Home => "User home",
            SummaryKind::Template => "Template VM",
            SummaryKind::Vm { updateable: true } => "VM + Sys",
            SummaryKind::Vm { updateable: false } => "VM",
        };
        cell(&mut out, WIDTHS[1], kind);
        cell(&mut out, WIDTHS[2], &size_to_human(row.size));
        match (row.kind, row.running) {
            (SummaryKind::Dom0Home, _) | (_, None) => {}
            (_, Some(RunningWarning::SnapshotsDisabled)) => out.push_str(
                " <-- The VM is running and private volume snapshots are disabled. \
                 Backup will fail!",
            ),
            (_, Some(RunningWarning::Running)) => out.push_str(
                " <-- The VM is running, backup will contain its state from before its start!",
            ),
        }
        out.push('\n');
    }
    rule(&mut out);
    cell(&mut out, WIDTHS[0], "Total size:");
    let total: u64 = rows.iter().map(|r| r.size).sum();
    cell(
        &mut out,
        WIDTHS[1] + 1 + 2 + WIDTHS[2],
        &size_to_human(total),
    );
    out.push('\n');
    rule(&mut out);
    let mut names: Vec<&str> = not_selected.iter().map(String::as_str).collect();
    names.sort_unstable();
    out.push_str("VMs not selected for backup:\n - ");
    out.push_str(&names.join("\n - "));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_as_python() {
        // Values checked against CPython's qubes.utils.size_to_human.
        for (n, s) in [
            (0, "0"),
            (1023, "1023"),
            (1024, "1.0 KiB"),
            (1280, "1.2 KiB"), // 1.25 -> 1.2 (half to even)
            (1331, "1.3 KiB"),
            (1_572_864, "1.5 MiB"),
            (2_147_483_648, "2.0 GiB"),
            (10_630_044_467, "9.9 GiB"),
            (u64::MAX, "17179869184.0 GiB"),
        ] {
            assert_eq!(size_to_human(n), s, "{n}");
        }
    }

    #[test]
    fn table_bytes() {
        let rows = vec![
            SummaryRow {
                name: "fedora-41".into(),
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
                running: Some(RunningWarning::Running),
            },
        ];
        let text = backup_summary(&rows, &["sys-net".into(), "default-mgmt-dvm".into()]);
        let expected = "\
------------------+--------------+--------------+
               VM |         type |         size |
------------------+--------------+--------------+
        fedora-41 |  Template VM |      5.0 GiB |
             work |           VM |      1.5 KiB | <-- The VM is running, backup will contain its state from before its start!
             dom0 |    User home |           12 |
------------------+--------------+--------------+
      Total size: |                     5.0 GiB |
------------------+--------------+--------------+
VMs not selected for backup:
 - default-mgmt-dvm
 - sys-net
";
        assert_eq!(text, expected);
        assert!(backup_summary(&[], &[]).ends_with("VMs not selected for backup:\n - \n"));
    }
}
