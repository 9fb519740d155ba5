//! Adding and removing custom labels.

use qubes_api::exc::py_repr;
use qubes_api::{ExcKind, QubesError};

use crate::model::{Label, MAX_DEFAULT_LABEL};
use crate::txn::Txn;

/// Adds a label `name` with a validated colour, at the next free index after the built-in
/// ones.
pub fn create(t: &mut Txn, name: &str, color: String) -> Result<(), QubesError> {
    if t.st.labels.values().any(|l| l.name == name) {
        return Err(QubesError::new(
            ExcKind::QubesLabelInUseError,
            format!("Label is still in use: {}", py_repr(name)),
        ));
    }
    let index =
        t.st.labels
            .keys()
            .max()
            .copied()
            .unwrap_or(0)
            .max(MAX_DEFAULT_LABEL)
            + 1;
    // The reference stores the raw payload (a bug that breaks label.Get until restart); we
    // store the validated colour.
    t.st.labels.insert(
        index,
        Label {
            index,
            name: name.to_string(),
            color,
        },
    );
    t.save = true;
    Ok(())
}

/// Removes a custom label no qube uses.
pub fn remove(t: &mut Txn, label: &Label) -> Result<(), QubesError> {
    if label.index <= MAX_DEFAULT_LABEL {
        return Err(QubesError::protocol("Can only remove custom labels"));
    }
    if t.st.domains.values().any(|d| d.label() == label.name) {
        return Err(QubesError::new(
            ExcKind::QubesLabelInUseError,
            format!(
                "Label is still in use: Label({}, {}, {})",
                label.index,
                py_repr(&label.color),
                py_repr(&label.name)
            ),
        ));
    }
    t.st.labels.remove(&label.index);
    t.save = true;
    Ok(())
}
