//! What a qube may ask for itself: the `features-request` event of `qubes.FeaturesRequest` /
//! `qubes.NotifyTools` and what the reference's handlers of it do (its `core_features`,
//! `supported_features`, `services` and `windows` extensions). The request comes from the qube
//! (its QubesDB) and is untrusted: the API checked that its values are in the safe set, and
//! each handler takes only what it knows, in the form it expects.

use qubes_api::QubesError;
use qubes_api::exc::py_repr;

use super::features::{remove, set};
use super::hooks::with_template;
use crate::props;
use crate::txn::Txn;

/// The requested features, in the order the qube's QubesDB listed them.
pub type Requested = [(String, String)];

/// Python's `repr()` of the request as a dict (the event's `untrusted_features`).
pub fn dict_repr(req: &Requested) -> String {
    let items: Vec<String> = req
        .iter()
        .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn get<'a>(req: &'a Requested, key: &str) -> Option<&'a str> {
    req.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Fires `features-request` on `vm` with the handlers' changes in the reference's order: the
/// synchronous handlers before the stream sees the event, `core_features` (a coroutine there)
/// after it.
pub fn handle(t: &mut Txn, vm: &str, req: &Requested) -> Result<(), QubesError> {
    let Some(d) = t.st.domain(vm) else {
        return Err(QubesError::no_such_vm(vm));
    };
    // Template-based qubes get their software from the template: only their services count.
    let template_based = d.class.has_template();
    if !template_based {
        advertised(t, vm, req, "supported-feature.")?;
    }
    advertised(t, vm, req, "supported-rpc.")?;
    if !template_based {
        advertised(t, vm, req, "supported-service.")?;
        windows(t, vm, req)?;
    }
    t.fire(
        vm,
        "features-request",
        &[("untrusted_features", &dict_repr(req))],
    );
    if !template_based {
        core_features(t, vm, req)?;
    }
    Ok(())
}

/// `supported-feature.*`, `supported-rpc.*`, `supported-service.*`: what the qube announces
/// with `1` replaces what it announced before (an announcement of nothing changes nothing).
fn advertised(t: &mut Txn, vm: &str, req: &Requested, prefix: &str) -> Result<(), QubesError> {
    let mut new: Vec<&str> = req
        .iter()
        .filter(|(k, v)| k.starts_with(prefix) && v == "1")
        .map(|(k, _)| k.as_str())
        .collect();
    new.sort_unstable();
    new.dedup();
    if new.is_empty() {
        return Ok(());
    }
    let old: Vec<String> =
        t.st.domain(vm)
            .map(|d| {
                d.features
                    .iter()
                    .filter(|(k, v)| k.starts_with(prefix) && !v.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
    let apparmor = prefix == "supported-service.";
    for f in new.iter().filter(|f| !old.iter().any(|o| o == *f)) {
        set(t, vm, f, "1")?;
        if apparmor && *f == "supported-service.apparmor" && !has(t, vm, "apparmor") {
            set(t, vm, "apparmor", "1")?;
        }
    }
    for f in old.iter().filter(|o| !new.contains(&o.as_str())) {
        remove(t, vm, f);
        if apparmor
            && f == "supported-service.apparmor"
            && feature(t, vm, "apparmor").as_deref() == Some("1")
        {
            remove(t, vm, "apparmor");
        }
    }
    Ok(())
}

fn feature(t: &Txn, vm: &str, f: &str) -> Option<String> {
    t.st.domain(vm)
        .and_then(|d| d.feature(f))
        .map(str::to_string)
}

fn has(t: &Txn, vm: &str, f: &str) -> bool {
    feature(t, vm, f).is_some()
}

/// Qubes Windows Tools: the OS, and what a Windows qube with qrexec needs.
fn windows(t: &mut Txn, vm: &str, req: &Requested) -> Result<(), QubesError> {
    let os = get(req, "os").filter(|os| matches!(*os, "Windows" | "Linux"));
    let qrexec = get(req, "qrexec") == Some("1");
    let Some(os) = os else {
        return Ok(());
    };
    set(t, vm, "os", os)?;
    if os != "Windows" || !qrexec {
        return Ok(());
    }
    set(t, vm, "rpc-clipboard", "1")?;
    super::properties::set_vm(t, vm, "maxmem", b"0")?;
    super::properties::set_vm(t, vm, "qrexec_timeout", b"6000")?;
    for (f, v) in [
        ("stubdom-qrexec", "1"),
        ("audio-model", "ich6"),
        ("timezone", "localtime"),
        ("no-monitor-layout", "1"),
    ] {
        let missing =
            t.st.domain(vm)
                .is_some_and(|d| with_template(&t.st, d, f).is_none());
        if missing {
            set(t, vm, f, v)?;
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` naming a real day (Python's `date.fromisoformat`).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

/// `[0-9]{1,3}\.[0-9]{1,3}`.
fn is_agent_version(s: &str) -> bool {
    let short_number =
        |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    s.split_once('.')
        .is_some_and(|(a, b)| short_number(a) && short_number(b))
}

/// qubes-core-agent and qubes-gui-agent: OS facts, the agents present, boot modes.
fn core_features(t: &mut Txn, vm: &str, req: &Requested) -> Result<(), QubesError> {
    for f in ["os-distribution", "os-distribution-like"] {
        if let Some(v) = get(req, f).filter(|v| !v.is_empty()) {
            set(t, vm, f, v)?;
        }
    }
    if let Some(v) = get(req, "os-version").filter(|v| !v.is_empty()) {
        if v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            && v.as_bytes()[0].is_ascii_digit()
        {
            set(t, vm, "os-version", v)?;
        } else {
            tracing::warn!("{vm}: ignoring invalid os-version {v:?}");
        }
    }
    if let Some(v) = get(req, "os-eol").filter(|v| !v.is_empty()) {
        if is_date(v) {
            set(t, vm, "os-eol", v)?;
        } else {
            tracing::warn!("{vm}: ignoring invalid os-eol {v:?}, expected YYYY-MM-DD");
        }
    }
    let agents: Vec<(&str, bool)> = ["qrexec", "gui", "gui-emulated", "qubes-firewall", "vmexec"]
        .into_iter()
        .filter_map(|f| match get(req, f) {
            Some("1") => Some((f, true)),
            Some("0") => Some((f, false)),
            _ => None,
        })
        .collect();
    if let Some(v) = get(req, "qubes-agent-version").filter(|v| is_agent_version(v)) {
        set(t, vm, "qubes-agent-version", v)?;
    }
    boot_modes(t, vm, req)?;
    if get(req, "anon-timezone") == Some("1") {
        set(t, vm, "anon-timezone", "1")?;
    }
    let truthy = |t: &Txn, f: &str| feature(t, vm, f).is_some_and(|v| !v.is_empty());
    let qrexec_before = truthy(t, "qrexec");
    for (f, on) in &agents {
        // A qube may announce an agent once; only dom0 changes it afterwards. The firewall
        // and vmexec follow the template's software freely.
        let free = matches!(*f, "qubes-firewall" | "vmexec");
        if free || !has(t, vm, f) {
            set(t, vm, f, if *on { "1" } else { "" })?;
        }
    }
    if !qrexec_before && truthy(t, "qrexec") {
        // The first time qrexec is announced the template setup can finish.
        t.fire(vm, "template-postinstall", &[]);
    }
    Ok(())
}

/// Boot modes the qube announces: `boot-mode.kernelopts.<mode>` with its
/// `boot-mode.name.<mode>` and `boot-mode.default-user.<mode>`, replacing the ones it
/// announced before (unless names repeat, there are over 64, or none), and which is active
/// or the default for AppVMs / standalone qubes.
fn boot_modes(t: &mut Txn, vm: &str, req: &Requested) -> Result<(), QubesError> {
    const INFO: [&str; 3] = [
        "boot-mode.kernelopts.",
        "boot-mode.name.",
        "boot-mode.default-user.",
    ];
    let mode_of = |k: &str| -> Option<String> {
        let parts: Vec<&str> = k.split('.').collect();
        (parts.len() == 3 && !parts[2].is_empty()).then(|| parts[2].to_string())
    };
    let old: Vec<String> =
        t.st.domain(vm)
            .map(|d| {
                d.features
                    .iter()
                    .filter(|(k, _)| INFO.iter().any(|p| k.starts_with(p)))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
    let mut new: Vec<(String, String)> = Vec::new();
    let put = |new: &mut Vec<(String, String)>, k: &str, v: &str| match new
        .iter_mut()
        .find(|(nk, _)| nk == k)
    {
        Some(slot) => slot.1 = v.to_string(),
        None => new.push((k.to_string(), v.to_string())),
    };
    for (k, v) in req {
        if k.starts_with(INFO[0])
            && let Some(mode) = mode_of(k)
            && mode != "default"
        {
            put(&mut new, k, v);
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (k, v) in req {
        let Some(mode) = k.starts_with("boot-mode.").then(|| mode_of(k)).flatten() else {
            continue;
        };
        let known = new
            .iter()
            .any(|(nk, _)| *nk == format!("{}{mode}", INFO[0]));
        if !known && mode != "default" {
            continue;
        }
        let user = k.starts_with(INFO[2]);
        if (k.starts_with(INFO[1]) || user) && !(user && mode == "default") {
            put(&mut new, k, v);
            names.push(v.clone());
        }
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() == names.len() && new.len() <= 64 && !new.is_empty() {
        for k in old.iter().filter(|k| !new.iter().any(|(nk, _)| nk == *k)) {
            remove(t, vm, k);
        }
        for (k, v) in &new {
            set(t, vm, k, v)?;
        }
    }
    let class = t.st.domain(vm).map(|d| d.class);
    for f in [
        "boot-mode.active",
        "boot-mode.appvm-default",
        "boot-mode.standalone-default",
    ] {
        let Some(v) = get(req, f) else {
            continue;
        };
        let known = v == "default" || has(t, vm, &format!("{}{v}", INFO[0]));
        let applies = f != "boot-mode.appvm-default"
            || class.is_some_and(|c| props::vm_prop(c, "appvm_default_bootmode").is_some());
        if known && applies {
            set(t, vm, f, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert!(is_date("2026-02-28"));
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2026-02-29"));
        assert!(!is_date("0000-01-01"));
        assert!(!is_date("2026-13-01"));
        assert!(!is_date("2026-1-01"));
        assert!(is_agent_version("4.3"));
        assert!(!is_agent_version("4.3.1"));
        assert!(!is_agent_version("1234.1"));
        assert_eq!(
            dict_repr(&[("qrexec".into(), "1".into()), ("os".into(), "Linux".into())]),
            "{'qrexec': '1', 'os': 'Linux'}"
        );
        assert_eq!(dict_repr(&[]), "{}");
    }
}
