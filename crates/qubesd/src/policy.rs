//! qrexec policy inside qubesd: what a non-dom0 caller may see in `admin.vm.List` and
//! `admin.Events` (admin-api.md §5.3). Ask counts as deny. An invalid policy does not stop the
//! daemon: it is logged loudly and every non-dom0 filter denies until it is fixed.
//!
//! A [`PolicyView`] is the policy applied to one state: built once per state change or policy
//! change and shared by every caller and subscriber, with its decisions remembered, so that
//! filtering an event for fifty subscribers evaluates the policy once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use qrexec_policy::{QubeInfo, Request, Resolution, Rule, SystemInfo, evaluate, load_policy_dirs};

use crate::dirwatch::DirWatch;
use crate::model::State;
use crate::props;

/// Default policy directories, runtime first (it shadows `/etc` file by file).
pub fn default_dirs() -> Vec<PathBuf> {
    vec!["/run/qubes/policy.d".into(), "/etc/qubes/policy.d".into()]
}

/// The parsed policy, reloaded when any file under the directories changes. Changes are
/// noticed through inotify (one `read` per question); the directories are walked and compared
/// only after inotify reported something, or always where it cannot be used.
#[derive(Debug)]
pub struct PolicyCache {
    dirs: Vec<PathBuf>,
    watch: Option<DirWatch>,
    signature: Option<Vec<(PathBuf, Option<SystemTime>, u64)>>,
    rules: Arc<Result<Vec<Rule>, String>>,
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
            watch: None,
            signature: None,
            rules: Arc::new(Err("not loaded".into())),
        }
    }

    /// The current rules, or why the policy cannot be used; and whether they changed since
    /// the last call.
    pub fn rules(&mut self) -> (Arc<Result<Vec<Rule>, String>>, bool) {
        let told = match &self.watch {
            Some(w) if w.is_live() => {
                if !w.changed() {
                    return (self.rules.clone(), false);
                }
                true
            }
            _ => false,
        };
        // Watch before looking, so that a change made while we look is seen next time.
        self.watch = Some(DirWatch::new(&self.dirs));
        let sig = signature(&self.dirs);
        // inotify saw a change: reload even when the signature looks the same (a rewrite of
        // the same size within one timestamp tick). Without inotify the signature decides.
        let changed = told || self.signature.as_ref() != Some(&sig);
        if changed {
            let rules = load_policy_dirs(&qrexec_policy::parser::FileSystem::default(), &self.dirs)
                .map_err(|e| e.to_string());
            if let Err(e) = &rules {
                tracing::error!(
                    "qrexec policy is invalid, denying every non-dom0 Admin API filter until fixed: {e}"
                );
            }
            self.rules = Arc::new(rules);
            self.signature = Some(sig);
        }
        (self.rules.clone(), changed)
    }
}

/// The policy applied to one state: what non-dom0 callers may see.
#[derive(Debug)]
pub struct PolicyView {
    rules: Arc<Result<Vec<Rule>, String>>,
    info: SystemInfo,
    /// Decisions made so far: (caller, service+argument, target) -> allowed.
    decisions: Mutex<HashMap<(String, String, String), bool>>,
}

/// Decisions a view remembers at most (each is a few short strings).
const MAX_DECISIONS: usize = 65536;

impl PolicyView {
    /// The policy `rules` over the state `st`.
    pub fn new(rules: Arc<Result<Vec<Rule>, String>>, st: &State) -> PolicyView {
        PolicyView {
            rules,
            info: system_info(st),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `src` may call `service_and_arg` towards `target` (allow only; always for dom0;
    /// never while the policy is invalid).
    pub fn allows(&self, src: &str, service_and_arg: &str, target: &str) -> bool {
        if src == "dom0" {
            return true;
        }
        let Ok(rules) = self.rules.as_ref() else {
            return false;
        };
        let key = (
            src.to_string(),
            service_and_arg.to_string(),
            target.to_string(),
        );
        let mut decisions = self.decisions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = decisions.get(&key) {
            return *d;
        }
        let allowed = allows(rules, &self.info, service_and_arg, src, target);
        if decisions.len() >= MAX_DECISIONS {
            decisions.clear();
        }
        decisions.insert(key, allowed);
        allowed
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

/// Properties whose values (their own or those they default to) the system info holds.
const INFO_PROPS: [&str; 6] = [
    "template_for_dispvms",
    "default_dispvm",
    "guivm",
    "relayvm",
    "transport_rpc",
    "template",
];

/// Whether going from `old` to `new` changes what [`system_info`] says: a qube added or
/// removed, or a changed qube's tags, class, power state, uuid, `internal` feature or one of
/// the properties it reads; any change of the global properties counts. Qubes that did not
/// change share their `Arc` (and their name's), so a commit that touches one qube costs a
/// walk of pointer comparisons.
pub fn info_changed(old: &State, new: &State) -> bool {
    use std::sync::Arc;
    if old.domains.len() != new.domains.len() || old.global != new.global {
        return true;
    }
    // Both maps are sorted and as long: with the same names they pair up in order, and a
    // name added and another removed shows as a pair that differs.
    for ((old_name, o), (new_name, n)) in old.domains.iter().zip(&new.domains) {
        if !Arc::ptr_eq(old_name, new_name) && old_name != new_name {
            return true;
        }
        if Arc::ptr_eq(o, n) {
            continue;
        }
        let internal = |d: &crate::model::Domain| d.feature("internal").map(str::to_string);
        if o.tags != n.tags
            || o.class != n.class
            || o.power != n.power
            || o.uuid() != n.uuid()
            || internal(o) != internal(n)
            || INFO_PROPS
                .iter()
                .any(|p| o.props.get(*p) != n.props.get(*p))
        {
            return true;
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Class, Domain, HostInfo, PowerState};

    #[test]
    fn only_what_the_policy_reads_invalidates_the_view() {
        let mut st = State::new_system(HostInfo::detect("/nonexistent", false), "file");
        st.domains.insert(
            "work".into(),
            std::sync::Arc::new(Domain::new(Class::AppVM, "work", 1)),
        );
        let changed = |f: &dyn Fn(&mut State)| {
            let mut new = st.clone();
            f(&mut new);
            info_changed(&st, &new)
        };
        assert!(!changed(&|_| {}));
        assert!(!changed(&|s| {
            s.domain_mut("work").unwrap().set_feature("menu-items", "x");
        }));
        assert!(!changed(&|s| {
            s.domain_mut("work")
                .unwrap()
                .props
                .insert("memory".into(), "500".into());
        }));
        assert!(changed(&|s| {
            s.domain_mut("work").unwrap().tags.insert("t".into());
        }));
        assert!(changed(&|s| {
            s.domain_mut("work").unwrap().set_feature("internal", "1");
        }));
        assert!(changed(
            &|s| s.domain_mut("work").unwrap().power = PowerState::Running
        ));
        assert!(changed(&|s| {
            s.domain_mut("work")
                .unwrap()
                .props
                .insert("default_dispvm".into(), "dvm".into());
        }));
        assert!(changed(&|s| {
            s.global.insert("default_dispvm".into(), "dvm".into());
        }));
        assert!(changed(&|s| {
            s.domains.remove("work");
        }));
        // As many qubes as before, one of them another: a rename.
        assert!(changed(&|s| {
            let work = s.domains.remove("work").unwrap();
            s.domains.insert("play".into(), work);
        }));
        // The same names in new allocations (a state read back from disk) are the same.
        assert!(!changed(&|s| {
            let work = s.domains.remove("work").unwrap();
            s.domains.insert(String::from("work").into(), work);
        }));
    }
}
