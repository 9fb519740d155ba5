//! Backups: `admin.backup.Execute`, `Info`, `Cancel` (admin-api.md §2.7, §9).

use qubes_api::QubesError;

use super::Want::{No, Yes};
use super::{DOM0, Method, Req, blocking};
use crate::core::Core;
use crate::ops::backup as op;
use crate::reply::{Reply, empty, ok};

/// The family's methods. All three run on a blocking thread: Info reads the profile and
/// measures volumes, Execute takes as long as the backup, Cancel is quick but shares them.
pub static METHODS: &[Method] = &[
    blocking("admin.backup.Execute", Yes, No, DOM0, execute),
    blocking("admin.backup.Info", Yes, No, DOM0, info),
    blocking("admin.backup.Cancel", Yes, No, DOM0, cancel),
];

fn execute(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::execute(core, &r.arg)?;
    empty()
}

fn info(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    ok(op::info(core, &r.arg)?)
}

fn cancel(r: &Req, core: &Core) -> Result<Reply, QubesError> {
    op::cancel(core, &r.arg)?;
    empty()
}
