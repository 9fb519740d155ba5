//! "What would happen?": explanations name the deciding rule and the rules above it, agree
//! with `qrexec-policy-exec --just-evaluate` on random requests over a random policy, for the
//! saved policy and for a pending edit; and `qubes-policy --explain` prints them.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use qrexec_policy::exec::{Options, run};
use qrexec_policy::explain::{Mismatch, PendingEdit, PolicySource, explain_request, origin};
use qrexec_policy::{Resolution, SystemInfo};

const INFO: &str = r#"{"domains": {
 "dom0": {"internal": null, "tags": [], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "adminvm-black", "label": "black", "guivm": null, "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000"},
 "work": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000001-1111-4222-8333-000000000001"},
 "work-email": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000002-1111-4222-8333-000000000002"},
 "personal": {"internal": null, "tags": ["home"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-yellow", "label": "yellow", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000003-1111-4222-8333-000000000003"},
 "untrusted": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000005-1111-4222-8333-000000000005"},
 "default-dvm": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": true, "default_dispvm": "default-dvm", "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000004-1111-4222-8333-000000000004"},
 "tmpl": {"internal": null, "tags": [], "type": "TemplateVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "templatevm-black", "label": "black", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000006-1111-4222-8333-000000000006"}
}}"#;

struct Tree {
    _t: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new(files: &[(&str, String)]) -> Tree {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        for d in ["policy.d/include", "legacy"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for (p, text) in files {
            std::fs::write(root.join(p), text).unwrap();
        }
        Tree { _t: t, root }
    }

    fn policy(&self) -> PolicySource {
        PolicySource {
            dirs: vec![self.root.join("policy.d")],
            legacy_dir: self.root.join("legacy"),
        }
    }

    fn just_evaluate(&self, src: &str, target: &str, svc: &str) -> bool {
        let o = Options {
            policy_dirs: vec![self.root.join("policy.d")],
            legacy_dir: self.root.join("legacy"),
            info: SystemInfo::from_json(INFO).unwrap(),
            just_evaluate: true,
            source: src.into(),
            target: target.into(),
            service_and_arg: svc.into(),
            ..Options::default()
        };
        let out = run(&o);
        assert!(out.notifications.is_empty());
        match out.stdout.as_str() {
            "result=allow\n" => true,
            "result=deny\n" => false,
            other => panic!("{other:?}"),
        }
    }
}

fn allowed(r: &Resolution) -> bool {
    matches!(r, Resolution::Allow { .. })
}

#[test]
fn names_the_deciding_rule_and_the_ones_above() {
    let t = Tree::new(&[
        (
            "policy.d/30-user.policy",
            "# mine\nqubes.FileCopy +x @anyvm @anyvm deny\nqubes.Other * @anyvm @anyvm allow\nqubes.FileCopy * @tag:home @anyvm allow\nqubes.FileCopy * @anyvm vault deny\n!include include/more\n".into(),
        ),
        (
            "policy.d/include/more",
            "qubes.FileCopy * @tag:work @tag:work allow\n".into(),
        ),
    ]);
    let info = SystemInfo::from_json(INFO).unwrap();
    let e = explain_request(
        &t.policy(),
        None,
        &info,
        "work",
        "work-email",
        "qubes.FileCopy",
    )
    .unwrap();
    assert!(allowed(&e.resolution));
    let by = e.decided_by.unwrap();
    assert_eq!(
        origin(&by),
        format!("{}/policy.d/include/more:1", t.root.display())
    );
    assert_eq!(by.text, "qubes.FileCopy\t*\t@tag:work\t@tag:work\tallow");
    let why: Vec<(Option<usize>, Mismatch)> =
        e.not_matching.iter().map(|(r, m)| (r.line, *m)).collect();
    assert_eq!(
        why,
        [
            (Some(2), Mismatch::Argument),
            (Some(4), Mismatch::Source),
            (Some(5), Mismatch::Target)
        ]
    );
    assert_eq!(e.other_services, 1);
    // No rule: everything above is listed, nothing decided.
    let e = explain_request(
        &t.policy(),
        None,
        &info,
        "untrusted",
        "tmpl",
        "qubes.FileCopy",
    )
    .unwrap();
    assert!(e.decided_by.is_none());
    assert!(matches!(&e.resolution, Resolution::Deny(d) if d.reason == "no matching rule found"));
    // A pending edit of the include file changes the answer without touching the disk.
    let pending = PendingEdit {
        path: t.root.join("policy.d/include/more"),
        content: Some(
            "qubes.FileCopy * @tag:work @tag:work ask default_target=work-email\n".into(),
        ),
    };
    let e = explain_request(
        &t.policy(),
        Some(&pending),
        &info,
        "work",
        "work-email",
        "qubes.FileCopy",
    )
    .unwrap();
    assert!(
        matches!(&e.resolution, Resolution::Ask { default_target: Some(d), .. } if d == "work-email")
    );
    assert!(t.just_evaluate("work", "work-email", "qubes.FileCopy"));
    // A pending edit with a syntax error: the policy would not load.
    let broken = PendingEdit {
        path: t.root.join("policy.d/30-user.policy"),
        content: Some("broken\n".into()),
    };
    let err = explain_request(
        &t.policy(),
        Some(&broken),
        &info,
        "work",
        "work-email",
        "qubes.FileCopy",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}/policy.d/30-user.policy:1: wrong number of fields",
            t.root.display()
        )
    );
}

/// A small deterministic generator (xorshift), so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const SERVICES: &[&str] = &["qubes.FileCopy", "qubes.OpenURL", "test.Svc", "*"];
const ARGS: &[&str] = &["*", "*", "+", "+x"];
const SOURCES: &[&str] = &[
    "@anyvm",
    "*",
    "work",
    "personal",
    "@tag:work",
    "@type:AppVM",
    "@adminvm",
    "untrusted",
];
const TARGETS: &[&str] = &[
    "@anyvm",
    "*",
    "work",
    "work-email",
    "@tag:work",
    "@type:TemplateVM",
    "@adminvm",
    "dom0",
    "@default",
    "@dispvm",
    "@dispvm:default-dvm",
    "@dispvm:@tag:work",
    "tmpl",
];
const ACTIONS: &[&str] = &[
    "allow",
    "deny",
    "ask",
    "allow target=work",
    "ask default_target=work-email",
    "deny notify=no",
    "allow autostart=no",
    "ask target=personal",
    "allow target=@dispvm",
    "allow target=dom0",
];

fn random_policy(rng: &mut Rng, lines: usize) -> String {
    let mut out = String::new();
    for _ in 0..lines {
        let svc = rng.pick(SERVICES);
        let arg = if svc == "*" { "*" } else { rng.pick(ARGS) };
        let target = rng.pick(TARGETS);
        let mut action = rng.pick(ACTIONS);
        if target == "@default" && action == "allow" {
            action = "allow target=work";
        }
        out.push_str(&format!(
            "{svc} {arg} {} {target} {action}\n",
            rng.pick(SOURCES)
        ));
    }
    out
}

const REQ_SOURCES: &[&str] = &[
    "work",
    "work-email",
    "personal",
    "untrusted",
    "tmpl",
    "nonexistent",
    "dom0",
];
const REQ_TARGETS: &[&str] = &[
    "work",
    "work-email",
    "personal",
    "untrusted",
    "tmpl",
    "",
    "@default",
    "@dispvm",
    "@dispvm:default-dvm",
    "@adminvm",
    "dom0",
    "nonexistent",
    "@anyvm",
    "uuid:00000001-1111-4222-8333-000000000001",
];
const REQ_SERVICES: &[&str] = &[
    "qubes.FileCopy",
    "qubes.FileCopy+x",
    "qubes.OpenURL+",
    "test.Svc+y",
    "other.Svc",
];

#[test]
fn simulator_agrees_with_just_evaluate_on_random_requests() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let info = SystemInfo::from_json(INFO).unwrap();
    let mut allowed_seen = 0;
    let mut compared = 0;
    for round in 0..4 {
        let user = random_policy(&mut rng, 40);
        let include = random_policy(&mut rng, 10);
        let t = Tree::new(&[
            (
                "policy.d/30-user.policy",
                format!("{user}!include include/extra\n"),
            ),
            ("policy.d/50-more.policy", random_policy(&mut rng, 20)),
            ("policy.d/include/extra", include),
            ("policy.d/35-compat.policy", "!compat-4.0\n".into()),
            (
                "legacy/qubes.OpenURL",
                "$tag:work $dispvm allow\n$anyvm $anyvm ask\n".into(),
            ),
        ]);
        // A pending edit of the user file, checked against the same edit written to disk.
        let edited = random_policy(&mut rng, 30);
        let pending = PendingEdit {
            path: t.root.join("policy.d/30-user.policy"),
            content: Some(edited.clone()),
        };
        let mut requests = Vec::new();
        for _ in 0..60 {
            requests.push((
                rng.pick(REQ_SOURCES),
                rng.pick(REQ_TARGETS),
                rng.pick(REQ_SERVICES),
            ));
        }
        let saved: Vec<bool> = requests
            .iter()
            .map(|(s, d, v)| {
                let e = explain_request(&t.policy(), None, &info, s, d, v).unwrap();
                let sim = allowed(&e.resolution);
                assert_eq!(
                    sim,
                    t.just_evaluate(s, d, v),
                    "round {round}: {s} -> {d:?} {v}"
                );
                // The deciding rule is the one whose action the decision carries.
                if let (Resolution::Allow { origin, .. }, Some(by)) = (&e.resolution, &e.decided_by)
                {
                    assert_eq!(*origin, format!("{}:{}", by.file, by.line.unwrap()));
                }
                sim
            })
            .collect();
        let pending_answers: Vec<bool> = requests
            .iter()
            .map(|(s, d, v)| {
                allowed(
                    &explain_request(&t.policy(), Some(&pending), &info, s, d, v)
                        .unwrap()
                        .resolution,
                )
            })
            .collect();
        std::fs::write(&pending.path, &edited).unwrap();
        for (i, (s, d, v)) in requests.iter().enumerate() {
            assert_eq!(
                pending_answers[i],
                t.just_evaluate(s, d, v),
                "pending, round {round}: {s} -> {d:?} {v}"
            );
            compared += 2;
        }
        allowed_seen += saved.iter().filter(|a| **a).count();
    }
    assert!(compared >= 400, "{compared}");
    assert!(
        allowed_seen > 10,
        "the random policies allow some calls: {allowed_seen}"
    );
}

#[test]
fn qubes_policy_explain_prints_the_reasons() {
    let t = Tree::new(&[
        ("policy.d/35-compat.policy", "!compat-4.0\n".into()),
        (
            "legacy/qubes.FileCopy",
            "$tag:work $tag:work allow\n$tag:work $anyvm deny\n$anyvm $tag:work deny\n$anyvm $anyvm ask\n".into(),
        ),
    ]);
    let info = t.root.join("info.json");
    std::fs::write(&info, INFO).unwrap();
    let explain = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qubes-policy"));
        cmd.arg("--explain")
            .arg("--policy-dir")
            .arg(t.root.join("policy.d"))
            .arg("--legacy-policy-dir")
            .arg(t.root.join("legacy"))
            .arg("--system-info")
            .arg(&info)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let legacy = t.root.join("legacy/qubes.FileCopy");
    let legacy = legacy.display();
    assert_eq!(
        explain(&["personal", "work", "qubes.FileCopy"], None),
        format!(
            "Decision: deny (denied by policy {legacy}:3)\nDecided by: {legacy}:3: qubes.FileCopy\t*\t@anyvm\t@tag:work\tdeny\nRules above it that do not match:\n  {legacy}:1: qubes.FileCopy\t*\t@tag:work\t@tag:work\tallow  (source does not match)\n  {legacy}:2: qubes.FileCopy\t*\t@tag:work\t@anyvm\tdeny  (source does not match)\n"
        )
    );
    let out = explain(&["personal", "untrusted", "qubes.FileCopy"], None);
    assert!(
        out.starts_with("Decision: ask, among @dispvm:default-dvm, tmpl, untrusted\n"),
        "{out}"
    );
    // The same with an unsaved edit of the legacy file's new-format replacement.
    let pending = t.root.join("policy.d/30-user.policy");
    let out = explain(
        &[
            "--pending",
            &pending.to_string_lossy(),
            "personal",
            "untrusted",
            "qubes.FileCopy",
        ],
        Some("qubes.FileCopy * personal untrusted allow\n"),
    );
    assert!(
        out.starts_with("Decision: allow, to untrusted\nDecided by: "),
        "{out}"
    );
    assert!(
        out.contains("30-user.policy:1: qubes.FileCopy\t*\tpersonal\tuntrusted\tallow\n"),
        "{out}"
    );
    assert!(!Path::new(&pending).exists());
}
