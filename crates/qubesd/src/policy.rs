//! qrexec policy inside qubesd: what a non-dom0 caller may see in `admin.vm.List` and
//! `admin.Events` (admin-api.md §5.3). Ask counts as deny. An invalid policy does not stop the
//! daemon: it is logged loudly and every non-dom0 filter denies until it is fixed.

use std::path::PathBuf;
use std::time::SystemTime;

use qrexec_policy::{QubeInfo, Request, Resolution, Rule, SystemInfo, evaluate, load_policy_dirs};

use crate::model::State;
use crate::props;

/// Default policy directories, runtime first (it shadows `/etc` file by file).
pub fn default_dirs() -> Vec<PathBuf> {
    vec!["/run/qubes/policy.d".into(), "/etc/qubes/policy.d".into()]
}

/// The parsed policy, reloaded when any file under the directories changes.
#[derive(Debug)]
pub struct PolicyCache {
    dirs: Vec<PathBuf>,
    signature: Option<Vec<(PathBuf, Option<SystemTime>, u64)>>,
    rules: Result<Vec<Rule>, String>,
}

/// Walks the directories (and their `include/` subdirectories) for change detection.
fn signature(dirs: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = dirs.iter().map(|d| (d.clone(), 0)).collect();
    while let Some((dir, depth)) = stack.pop() {
        let meta = std::fs::metadata(&dir);
        out.push((
            dir.clone(),
            meta.as_ref().ok().and_then(|m| m.modified().ok()),
            0,
        ));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() && depth < 4 {
                stack.push((e.path(), depth + 1));
            } else {
                out.push((e.path(), m.modified().ok(), m.len()));
            }
        }
    }
    out.sort();
    out
}

impl PolicyCache {
    /// A cache over `dirs` (loaded on first use).
    pub fn new(dirs: Vec<PathBuf>) -> PolicyCache {
        PolicyCache {
            dirs,
            signature: None,
            rules: Err("not loaded".into()),
        }
    }

    /// The current rules, or why the policy cannot be used.
    pub fn rules(&mut self) -> Result<&[Rule], &str> {
        let sig = signature(&self.dirs);
        if self.signature.as_ref() != Some(&sig) {
            self.rules =
                load_policy_dirs(&qrexec_policy::parser::FileSystem::default(), &self.dirs)
                    .map_err(|e| e.to_string());
            if let Err(e) = &self.rules {
                tracing::error!(
                    "qrexec policy is invalid, denying every non-dom0 Admin API filter until fixed: {e}"
                );
            }
            self.signature = Some(sig);
        }
        self.rules.as_deref().map_err(String::as_str)
    }
}

/// The system as the evaluator sees it (the `internal.GetSystemInfo` data).
pub fn system_info(st: &State) -> SystemInfo {
    let mut info = SystemInfo::default();
    for d in st.domains.values() {
        let get = |p: &str| props::vm_get(st, d, p).filter(|v| !v.is_empty());
        info.domains.insert(
            d.name.clone(),
            QubeInfo {
                name: d.name.clone(),
                tags: d.tags.iter().cloned().collect(),
                class: d.class.name().into(),
                template_for_dispvms: props::vm_flag(st, d, "template_for_dispvms"),
                default_dispvm: get("default_dispvm"),
                power_state: d.power.name().into(),
                uuid: d.uuid().into(),
                internal: d.feature("internal").is_some_and(|v| !v.is_empty()),
                guivm: get("guivm"),
                relayvm: get("relayvm"),
                transport_rpc: get("transport_rpc"),
            },
        );
    }
    info
}

/// Whether the policy lets `src` call `service_and_arg` towards `target` (allow only).
pub fn allows(
    rules: &[Rule],
    info: &SystemInfo,
    service_and_arg: &str,
    src: &str,
    target: &str,
) -> bool {
    match Request::new(service_and_arg, src, target, info) {
        Ok(req) => matches!(evaluate(rules, &req), Resolution::Allow { .. }),
        Err(_) => false,
    }
}

/// The policy argument for an event: its name with `:` replaced by `_` (the reference's rule).
pub fn event_service(name: &str) -> String {
    format!("admin.Events+{}", name.replace(':', "_"))
}
