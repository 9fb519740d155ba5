//! The conformance cases of qrexec-policy.md §6.3 on the fixture of §6.2.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use qrexec_policy::{QubeInfo, Request, Resolution, SystemInfo, allow_output, evaluate, parse_str};

fn q(name: &str, class: &str, tags: &[&str], running: bool, uuid: &str) -> QubeInfo {
    QubeInfo {
        name: name.into(),
        class: class.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        power_state: if running { "Running" } else { "Halted" }.into(),
        uuid: uuid.into(),
        default_dispvm: Some("default-dvm".into()),
        ..QubeInfo::default()
    }
}

fn fixture() -> SystemInfo {
    let mut qs = vec![
        q(
            "dom0",
            "AdminVM",
            &["dom0-tag"],
            true,
            "00000000-0000-0000-0000-000000000000",
        ),
        q(
            "test-vm1",
            "AppVM",
            &["tag1", "tag2"],
            true,
            "c9024a97-9b15-46cc-8341-38d75d5d421b",
        ),
        q(
            "test-vm2",
            "AppVM",
            &["tag2"],
            true,
            "b3eb69d0-f9d9-4c3c-ad5c-454500303ea4",
        ),
        q(
            "test-vm3",
            "AppVM",
            &["tag3"],
            false,
            "fa6d56e8-a89d-4106-aa62-22e172a43c8b",
        ),
        q(
            "test-vm4",
            "AppVM",
            &[],
            false,
            "7e6a8a0e-8b3b-4c2b-9d7a-2c3a4d5e6f70",
        ),
        q(
            "default-dvm",
            "AppVM",
            &[],
            false,
            "f3e538bd-4427-4697-bed7-45ef3270df21",
        ),
        q(
            "default-mgmt-dvm",
            "AppVM",
            &[],
            false,
            "11111111-2222-4333-8444-555555555555",
        ),
        q(
            "internal-vm",
            "AppVM",
            &[],
            false,
            "22222222-2222-4333-8444-555555555555",
        ),
        q(
            "test-invalid-dvm",
            "AppVM",
            &[],
            false,
            "33333333-2222-4333-8444-555555555555",
        ),
        q(
            "test-no-dvm",
            "AppVM",
            &[],
            false,
            "44444444-2222-4333-8444-555555555555",
        ),
        q(
            "test-template",
            "TemplateVM",
            &[],
            false,
            "55555555-2222-4333-8444-555555555555",
        ),
        q(
            "test-standalone",
            "StandaloneVM",
            &["tag1", "tag2"],
            false,
            "66666666-2222-4333-8444-555555555555",
        ),
    ];
    for d in &mut qs {
        match d.name.as_str() {
            "test-vm3" | "test-vm4" | "default-dvm" => d.template_for_dispvms = true,
            "default-mgmt-dvm" => {
                d.template_for_dispvms = true;
                d.internal = true;
            }
            "internal-vm" => d.internal = true,
            "test-invalid-dvm" => d.default_dispvm = Some("test-vm1".into()),
            "test-no-dvm" => d.default_dispvm = None,
            _ => {}
        }
    }
    SystemInfo {
        domains: qs.into_iter().map(|d| (d.name.clone(), d)).collect(),
        ..SystemInfo::default()
    }
}

fn eval(policy: &str, svc: &str, src: &str, target: &str) -> Resolution {
    let info = fixture();
    let rules = parse_str(&policy.replace("; ", "\n"), "pol").unwrap();
    match Request::new(svc, src, target, &info) {
        Ok(req) => evaluate(&rules, &req),
        Err(d) => Resolution::Deny(d),
    }
}

fn allowed_to(r: &Resolution) -> Option<&str> {
    match r {
        Resolution::Allow { target, .. } => Some(target),
        _ => None,
    }
}

fn denied(r: &Resolution) -> Option<(&str, bool)> {
    match r {
        Resolution::Deny(d) => Some((&d.reason, d.notify)),
        _ => None,
    }
}

const S: &str = "test.Service+argument";

#[test]
fn case_10_to_13_dom0_spellings() {
    assert_eq!(
        denied(&eval("* * @anyvm @anyvm allow", S, "test-vm1", "dom0")),
        Some(("no matching rule found", true))
    );
    let r = eval("* * @anyvm @adminvm allow", S, "test-vm1", "@adminvm");
    assert_eq!(allowed_to(&r), Some("dom0"));
    let info = fixture();
    let req = Request::new(S, "test-vm1", "@adminvm", &info).unwrap();
    assert_eq!(
        allow_output(&req, "dom0", None, true, None).unwrap(),
        "user=DEFAULT\nresult=allow\ntarget=dom0\nautostart=True\nrequested_target=@adminvm"
    );
    assert_eq!(
        allowed_to(&eval("* * test-vm3 dom0 allow", S, "test-vm3", "@adminvm")),
        Some("dom0")
    );
    assert_eq!(
        allowed_to(&eval(
            "* * @anyvm @tag:dom0-tag allow",
            S,
            "test-vm1",
            "dom0"
        )),
        Some("dom0")
    );
    assert!(
        denied(&eval(
            "* * @anyvm @tag:dom0-tag allow",
            S,
            "test-vm1",
            "@adminvm"
        ))
        .is_some()
    );
}

#[test]
fn case_14_15_default_targets() {
    for t in ["", "no-such-vm"] {
        let r = eval(
            "* * test-vm1 @default allow target=test-vm2",
            S,
            "test-vm1",
            t,
        );
        assert_eq!(allowed_to(&r), Some("test-vm2"), "{t}");
    }
    let r = eval("* * @anyvm @anyvm allow", S, "test-vm1", "no-such-vm");
    assert_eq!(
        denied(&r).map(|d| d.0),
        Some(
            "policy define 'allow' action at pol:1 but no target is specified by caller or policy"
        )
    );
}

#[test]
fn case_16_to_24_dispvm() {
    let r = eval("* * @anyvm @dispvm allow", S, "test-vm1", "@dispvm");
    assert_eq!(allowed_to(&r), Some("@dispvm:default-dvm"));
    let info = fixture();
    let req = Request::new(S, "test-vm1", "@dispvm", &info).unwrap();
    assert_eq!(
        allow_output(&req, "@dispvm:default-dvm", None, true, None).unwrap(),
        "user=DEFAULT\nresult=allow\ntarget=@dispvm:default-dvm\ntarget_uuid=@dispvm:uuid:f3e538bd-4427-4697-bed7-45ef3270df21\nautostart=True\nrequested_target=@dispvm"
    );
    assert_eq!(
        denied(&eval(
            "* * @anyvm @dispvm allow",
            S,
            "test-no-dvm",
            "@dispvm"
        ))
        .map(|d| d.0),
        Some(
            "policy define 'allow' action to @dispvm at pol:1 but no DispVM base is set for this VM"
        )
    );
    assert_eq!(
        denied(&eval(
            "* * @anyvm @dispvm allow",
            S,
            "test-vm1",
            "@dispvm:test-vm3"
        ))
        .map(|d| d.0),
        Some("no matching rule found")
    );
    assert_eq!(
        allowed_to(&eval(
            "* * @anyvm @dispvm:default-dvm allow",
            S,
            "test-vm1",
            "@dispvm"
        )),
        Some("@dispvm:default-dvm")
    );
    assert_eq!(
        allowed_to(&eval(
            "* * @anyvm @dispvm:@tag:tag3 allow",
            S,
            "test-vm1",
            "@dispvm:test-vm3"
        )),
        Some("@dispvm:test-vm3")
    );
    assert_eq!(
        denied(&eval(
            "* * @anyvm @anyvm allow",
            S,
            "test-vm1",
            "@dispvm:test-vm1"
        ))
        .map(|d| d.0),
        Some("not a template for dispvm: test-vm1")
    );
    assert_eq!(
        allowed_to(&eval(
            "* * @anyvm @anyvm allow target=@dispvm",
            S,
            "test-vm3",
            "test-vm1"
        )),
        Some("@dispvm:default-dvm")
    );
    let r = eval(
        "* * @anyvm @anyvm allow target=uuid:00000000-0000-0000-0000-000000000000",
        S,
        "test-vm3",
        "test-vm1",
    );
    assert_eq!(
        allowed_to(&r),
        Some("uuid:00000000-0000-0000-0000-000000000000")
    );
    let req = Request::new(S, "test-vm3", "test-vm1", &info).unwrap();
    assert!(
        allow_output(
            &req,
            "uuid:00000000-0000-0000-0000-000000000000",
            None,
            true,
            None
        )
        .unwrap()
        .contains("\ntarget=dom0\n")
    );
    assert!(
        denied(&eval(
            "* * @anyvm @anyvm allow target=no-such-vm",
            S,
            "test-vm3",
            ""
        ))
        .is_some()
    );
}

#[test]
fn case_25_to_28_autostart_notify_args_case() {
    let pol = "* * test-vm1 test-vm2 allow autostart=no; * * test-vm1 test-vm3 allow autostart=no";
    match eval(pol, S, "test-vm1", "test-vm2") {
        Resolution::Allow { autostart, .. } => assert!(!autostart),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        denied(&eval(pol, S, "test-vm1", "test-vm3")),
        Some((
            "target test-vm3 is denied because it would require autostart",
            false
        ))
    );
    assert_eq!(
        denied(&eval("* * @anyvm @anyvm deny", S, "test-vm1", "test-vm2")),
        Some(("denied by policy pol:1", true))
    );
    assert_eq!(
        denied(&eval(
            "* * @anyvm @anyvm deny notify=no",
            S,
            "test-vm1",
            "test-vm2"
        )),
        Some(("denied by policy pol:1", false))
    );
    assert!(
        denied(&eval(
            "test.Service + @anyvm @anyvm allow",
            S,
            "test-vm1",
            "test-vm2"
        ))
        .is_some()
    );
    assert_eq!(
        allowed_to(&eval(
            "test.Service + @anyvm @anyvm allow",
            "test.Service+",
            "test-vm1",
            "test-vm2"
        )),
        Some("test-vm2")
    );
    assert_eq!(
        allowed_to(&eval(
            "test.Service + @anyvm @anyvm allow",
            "test.Service",
            "test-vm1",
            "test-vm2"
        )),
        Some("test-vm2")
    );
    assert!(
        denied(&eval(
            "test.service * @anyvm @anyvm allow",
            S,
            "test-vm1",
            "test-vm2"
        ))
        .is_some()
    );
}

#[test]
fn case_29_to_34_ask() {
    match eval(
        "* * test-vm3 test-vm2 ask default_target=test-vm1",
        S,
        "test-vm3",
        "test-vm2",
    ) {
        Resolution::Ask {
            targets,
            default_target,
            ..
        } => {
            assert_eq!(targets, ["test-vm2"]);
            assert_eq!(default_target, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        denied(&eval("* * test-vm3 @default ask", S, "test-vm3", "")).map(|d| d.0),
        Some("policy define 'ask' action at pol:1 but no target is available to choose from")
    );
    match eval(
        "* * test-vm3 @adminvm ask default_target=@adminvm",
        S,
        "test-vm3",
        "dom0",
    ) {
        Resolution::Ask {
            targets,
            default_target,
            ..
        } => {
            assert_eq!(targets, ["dom0"]);
            assert_eq!(default_target.as_deref(), Some("dom0"));
        }
        other => panic!("{other:?}"),
    }
    match eval(
        "* * @anyvm @anyvm ask default_target=@dispvm; * * @anyvm @dispvm ask",
        S,
        "test-vm3",
        "test-vm1",
    ) {
        Resolution::Ask { default_target, .. } => {
            assert_eq!(default_target.as_deref(), Some("@dispvm:default-dvm"))
        }
        other => panic!("{other:?}"),
    }
    match eval("* * test-vm1 @anyvm ask", S, "test-vm1", "test-vm2") {
        Resolution::Ask { targets, .. } => {
            assert!(!targets.contains(&"test-vm1".to_string()), "not the source");
            assert!(!targets.contains(&"dom0".to_string()));
            assert!(
                !targets.contains(&"internal-vm".to_string())
                    && !targets.contains(&"@dispvm:default-mgmt-dvm".to_string())
            );
            for t in [
                "test-vm2",
                "test-vm3",
                "test-template",
                "@dispvm:default-dvm",
                "@dispvm:test-vm3",
                "@dispvm:test-vm4",
            ] {
                assert!(targets.contains(&t.to_string()), "{t} in {targets:?}");
            }
        }
        other => panic!("{other:?}"),
    }
    match eval(
        "* * test-vm1 @anyvm ask autostart=no",
        S,
        "test-vm1",
        "test-vm2",
    ) {
        Resolution::Ask { targets, .. } => {
            assert_eq!(targets, ["test-vm2"], "only running qubes, no disposables")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn case_35_ask_collection_honours_earlier_denies() {
    // The ask rule fires; its candidates come from every matching rule, later ones first.
    let pol = "* * test-vm2 @default ask; * * test-vm2 @tag:tag1 deny; * * test-vm2 @tag:tag2 allow; * * @type:AppVM @default allow target=test-vm3";
    match eval(pol, S, "test-vm2", "") {
        Resolution::Ask { targets, .. } => assert_eq!(targets, ["test-vm3"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn case_36_38_loopback_and_source_dispvm() {
    assert_eq!(
        allowed_to(&eval("* * @anyvm @anyvm allow", S, "test-vm1", "test-vm1")),
        Some("test-vm1")
    );
    let info = fixture();
    let req = Request::new(S, "test-vm1", "test-vm1", &info).unwrap();
    assert_eq!(
        allow_output(&req, "test-vm1", None, true, None)
            .unwrap_err()
            .reason,
        "loopback qrexec connection not supported"
    );
    assert!(
        denied(&eval(
            "* * @dispvm:test-vm3 @anyvm allow",
            S,
            "test-vm3",
            "test-vm2"
        ))
        .is_some()
    );
}

#[test]
fn normal_allow_output() {
    let info = fixture();
    let req = Request::new(S, "test-vm1", "test-vm2", &info).unwrap();
    assert_eq!(
        allow_output(&req, "test-vm2", Some("root"), false, None).unwrap(),
        "user=root\nresult=allow\ntarget=test-vm2\ntarget_uuid=uuid:b3eb69d0-f9d9-4c3c-ad5c-454500303ea4\nautostart=False\nrequested_target=test-vm2"
    );
    // uuid spellings match names in both directions.
    let r = eval(
        "* * test-vm1 uuid:b3eb69d0-f9d9-4c3c-ad5c-454500303ea4 allow",
        S,
        "test-vm1",
        "test-vm2",
    );
    assert_eq!(allowed_to(&r), Some("test-vm2"));
    let r = eval(
        "* * uuid:c9024a97-9b15-46cc-8341-38d75d5d421b test-vm2 allow",
        S,
        "uuid:c9024a97-9b15-46cc-8341-38d75d5d421b",
        "test-vm2",
    );
    assert_eq!(allowed_to(&r), Some("test-vm2"));
}

#[test]
fn system_info_json() {
    let info = SystemInfo::from_json(r#"{"domains": {"dom0": {"tags": [], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "adminvm-black", "label": "0x000000", "guivm": null, "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000", "internal": false}, "work": {"tags": ["t"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "dvm", "power_state": "Halted", "uuid": "u1", "internal": true}}}"#).unwrap();
    assert_eq!(info.get("work").unwrap().tags, ["t"]);
    assert!(info.get("work").unwrap().internal);
    assert_eq!(info.get("uuid:u1").unwrap().name, "work");
    assert!(SystemInfo::from_json("[]").is_err());
    assert!(SystemInfo::from_json("{").is_err());
}

#[test]
fn case_39_compat_40_falls_through_and_denies_after_specific_files() {
    use qrexec_policy::parser::{Memory, Parser};
    use std::path::Path;
    let mut mem = Memory::default();
    mem.files.insert(
        "/etc/qubes-rpc/policy/test.AllowAfter".into(),
        "test-vm1 test-vm2 allow\n".into(),
    );
    mem.files.insert(
        "/etc/qubes-rpc/policy/test.ImplicitDeny+arg".into(),
        "test-vm1 test-vm2 allow\n".into(),
    );
    mem.files
        .insert("/etc/qubes-rpc/policy/.hidden".into(), "garbage\n".into());
    let mut p = Parser::new(&mem, Path::new("/etc/qubes/policy.d"));
    p.load_text(
        "test.AllowBefore * @anyvm @anyvm allow\n!compat-4.0\ntest.AllowAfter * @anyvm @anyvm allow\ntest.ImplicitDeny * @anyvm @anyvm allow\n",
        "main.policy",
        0,
    )
    .unwrap();
    let info = fixture();
    let run = |svc: &str| {
        let req = Request::new(svc, "test-vm1", "test-vm3", &info).unwrap();
        evaluate(&p.rules, &req)
    };
    assert_eq!(
        allowed_to(&run("test.AllowAfter+")),
        Some("test-vm3"),
        "no deny after a generic file"
    );
    assert_eq!(
        denied(&run("test.ImplicitDeny+arg")).map(|d| d.0),
        Some("denied by policy /etc/qubes-rpc/policy/test.ImplicitDeny+arg:None")
    );
    assert_eq!(allowed_to(&run("test.AllowBefore")), Some("test-vm3"));
}

#[test]
fn include_dir_reads_sorted_policy_files() {
    use qrexec_policy::parser::{Memory, Parser};
    use std::path::Path;
    let mut mem = Memory::default();
    mem.files.insert(
        "/p/extra/20-b.policy".into(),
        "svc * @anyvm @anyvm deny\n".into(),
    );
    mem.files.insert(
        "/p/extra/10-a.policy".into(),
        "svc * test-vm1 @anyvm allow\n".into(),
    );
    mem.files
        .insert("/p/extra/README".into(), "not policy\n".into());
    let mut p = Parser::new(&mem, Path::new("/p"));
    p.load_text("!include-dir extra\n", "main", 0).unwrap();
    assert_eq!(p.rules.len(), 2);
    assert_eq!(p.rules[0].file, "/p/extra/10-a.policy");
    let e = p
        .load_text("!include-dir nowhere\n", "main", 0)
        .unwrap_err();
    assert_eq!(e.to_string(), "main:1: not a directory: /p/nowhere");
}
