//! Notes: `admin.vm.notes.*`, a qube's `notes.txt` beside qubes.xml (admin-api.md §2.4).

use std::path::PathBuf;

use qubes_api::{ExcKind, QubesError};

use super::Want::{No, Yes};
use super::{Method, NOT_DOM0, Req, View, read_blocking, write};
use crate::model::{Class, Domain};
use crate::reply::{Reply, empty, ok};
use crate::txn::Txn;

/// The family's methods.
pub static METHODS: &[Method] = &[
    read_blocking("admin.vm.notes.Get", No, No, NOT_DOM0, notes_get),
    write("admin.vm.notes.Set", No, Yes, NOT_DOM0, notes_set),
];

/// Largest note accepted.
pub const MAX_NOTES: usize = 256000;

/// The notes file of a local qube (a RemoteVM has no directory here: the reference fails
/// without a reply).
fn notes_path(state_dir: &std::path::Path, d: &Domain) -> Result<PathBuf, QubesError> {
    if d.class == Class::RemoteVM {
        return Err(QubesError::new(
            ExcKind::QubesVMError,
            "A RemoteVM has no notes",
        ));
    }
    Ok(state_dir
        .join(d.class.dir_prefix())
        .join(&d.name)
        .join("notes.txt"))
}

fn notes_get(r: &Req, v: &View) -> Result<Reply, QubesError> {
    let path = notes_path(&v.env.state_dir, r.dest_in(v.st)?)?;
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() <= MAX_NOTES * 4 => {
            ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Ok(_) => Err(QubesError::qubes("Notes file is too large")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty(),
        Err(e) => Err(QubesError::qubes(format!("Failed to read notes file: {e}"))),
    }
}

fn notes_set(r: &Req, t: &mut Txn) -> Result<Reply, QubesError> {
    let n = r.untrusted_payload.len();
    if n > MAX_NOTES {
        return Err(QubesError::protocol(format!(
            "Maximum note size is {MAX_NOTES} bytes ({n} bytes received)"
        )));
    }
    let text = std::str::from_utf8(&r.untrusted_payload).map_err(|e| {
        QubesError::protocol(format!(
            "Unable to sanitise qube notes: {}",
            crate::pycompat::utf8_error_text(&r.untrusted_payload, &e)
        ))
    })?;
    let clean: String = text
        .chars()
        .map(|ch| {
            if ch == '\t' || ch == '\n' || crate::names::safe_for_display(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let path = notes_path(&t.env.state_dir, r.dest_in(&t.st)?)?;
    t.write_file(path, clean.into_bytes());
    empty()
}
