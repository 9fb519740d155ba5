//! The RPC policy document's example, as users have it: `/etc/qubes-rpc/policy/qubes.FileCopy`
//!
//! ```text
//! $tag:work $tag:work allow
//! $tag:work $anyvm deny
//! $anyvm $tag:work deny
//! $anyvm $anyvm ask
//! ```
//!
//! read through `!compat-4.0`, with two work-tagged qubes among five. Every source/target
//! pair ends as the document says: work to work allowed, work to anything else and anything
//! else to work denied, the rest asked (the user chooses among the qubes that are not work's).

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use qrexec_policy::SystemInfo;
use qrexec_policy::exec::{Options, run};

const INFO: &str = r#"{"domains": {
 "dom0": {"internal": null, "tags": [], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "adminvm-black", "label": "black", "guivm": null, "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000"},
 "work": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000001-1111-4222-8333-000000000001"},
 "work-email": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000002-1111-4222-8333-000000000002"},
 "personal": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-yellow", "label": "yellow", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000003-1111-4222-8333-000000000003"},
 "untrusted": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000004-1111-4222-8333-000000000004"},
 "vault": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-black", "label": "black", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000005-1111-4222-8333-000000000005"}
}}"#;

const SEED: &str =
    "$tag:work $tag:work allow\n$tag:work $anyvm deny\n$anyvm $tag:work deny\n$anyvm $anyvm ask\n";

const WORK: [&str; 2] = ["work", "work-email"];
const OTHERS: [&str; 3] = ["personal", "untrusted", "vault"];

#[test]
fn every_pair_as_the_document_says() {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    std::fs::create_dir_all(root.join("policy.d")).unwrap();
    std::fs::create_dir_all(root.join("legacy")).unwrap();
    std::fs::write(root.join("policy.d/35-compat.policy"), "!compat-4.0\n").unwrap();
    std::fs::write(root.join("legacy/qubes.FileCopy"), SEED).unwrap();
    let info = SystemInfo::from_json(INFO).unwrap();
    let eval = |src: &str, target: &str, just_evaluate: bool| {
        let o = Options {
            policy_dirs: vec![root.join("policy.d")],
            legacy_dir: root.join("legacy"),
            info: info.clone(),
            just_evaluate,
            source: src.into(),
            target: target.into(),
            service_and_arg: "qubes.FileCopy".into(),
            ..Options::default()
        };
        run(&o)
    };
    let uuid = |q: &str| info.get(q).unwrap().uuid.clone();
    let qubes: Vec<&str> = WORK.iter().chain(OTHERS.iter()).copied().collect();
    let mut pairs = 0;
    for src in &qubes {
        for target in qubes.iter().chain(["dom0"].iter()) {
            let out = eval(src, target, false);
            let work_src = WORK.contains(src);
            let work_target = WORK.contains(target);
            let expected = if src == target {
                // Allowed by the policy (work to work, or asked), but a qube never calls itself.
                if work_src {
                    "result=deny\n".to_string()
                } else {
                    format!(
                        "result=ask\ntargets={}\ndefault_target=\n",
                        OTHERS
                            .iter()
                            .filter(|q| *q != src)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                }
            } else if *target == "dom0" {
                // No line names dom0 ($anyvm never does): no rule, denied.
                "result=deny\n".to_string()
            } else if work_src && work_target {
                format!(
                    "user=DEFAULT\nresult=allow\ntarget={target}\ntarget_uuid=uuid:{}\nautostart=True\nrequested_target={target}\n",
                    uuid(target)
                )
            } else if work_src || work_target {
                "result=deny\n".to_string()
            } else {
                // Asked: the choice is every qube that is not work's, but the caller.
                format!(
                    "result=ask\ntargets={}\ndefault_target=\n",
                    OTHERS
                        .iter()
                        .filter(|q| *q != src)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            assert_eq!(out.stdout, expected, "{src} -> {target}");
            // Denials notify the caller's GUI qube, allows and asks do not.
            let denied = expected == "result=deny\n";
            assert_eq!(
                out.notifications.len(),
                usize::from(denied),
                "{src} -> {target}"
            );
            // Without a prompt (--just-evaluate), an ask is a denial; the loopback is only
            // refused when the call is made.
            let just = eval(src, target, true);
            let allowed = expected.contains("result=allow") || (src == target && work_src);
            assert_eq!(
                just.stdout,
                if allowed {
                    "result=allow\n"
                } else {
                    "result=deny\n"
                },
                "{src} -> {target}"
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, 30);
}
