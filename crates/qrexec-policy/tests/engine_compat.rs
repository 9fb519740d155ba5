//! The engine against the reference (qubes-core-qrexec 4.4.2) on the cases where they used to
//! differ: legacy `$include:`, names the legacy directory ignores, deny notifications for
//! unknown and empty targets, and the Policy Admin API with missing directories, include
//! cycles and symlinked include directories. Expected values are the reference's answers
//! (its `qrexec-policy-exec` and `qubes-policy-admin`, run on the same trees).

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use qrexec_policy::SystemInfo;
use qrexec_policy::admin::{AdminError, handle, token_of};
use qrexec_policy::exec::{Options, Outcome, run};

const INFO: &str = r#"{"domains": {
 "dom0": {"internal": null, "tags": [], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "adminvm-black", "label": "black", "guivm": null, "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000"},
 "work": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000001-1111-4222-8333-000000000001"},
 "work-email": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000002-1111-4222-8333-000000000002"},
 "personal": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": "default-dvm", "icon": "appvm-yellow", "label": "yellow", "guivm": "sys-gui", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000003-1111-4222-8333-000000000003"},
 "default-dvm": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": true, "default_dispvm": "default-dvm", "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000004-1111-4222-8333-000000000004"}
}}"#;

const SEED: &str =
    "$tag:work $tag:work allow\n$tag:work $anyvm deny\n$anyvm $tag:work deny\n$anyvm $anyvm ask\n";

struct Tree {
    _t: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        for d in ["policy.d", "legacy"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for (p, text) in files {
            let full = root.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        Tree { _t: t, root }
    }

    fn exec(&self, flags: &[&str], src: &str, target: &str, svc: &str) -> Outcome {
        let o = Options {
            policy_dirs: vec![self.root.join("policy.d")],
            legacy_dir: self.root.join("legacy"),
            info: SystemInfo::from_json(INFO).unwrap(),
            just_evaluate: flags.contains(&"--just-evaluate"),
            assume_yes: flags.contains(&"--assume-yes-for-ask"),
            requested_source: None,
            source: src.into(),
            target: target.into(),
            service_and_arg: svc.into(),
            agent: None,
        };
        run(&o)
    }
}

fn note(guivm: &str, res: &str, svc: &str, arg: &str, src: &str, target: &str) -> String {
    format!(
        "policy.Notify guivm={guivm} resolution={res} service={svc} argument={arg} source={src} target={target}"
    )
}

fn allow_to(out: &Outcome) -> Option<String> {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("target="))
        .filter(|_| out.exit == 0)
        .map(str::to_string)
}

const COMPAT: (&str, &str) = ("policy.d/35-compat.policy", "!compat-4.0\n");

#[test]
fn legacy_include_resolves_against_the_legacy_directory() {
    let t = Tree::new(&[
        COMPAT,
        ("legacy/qubes.FileCopy", "$include:shared\n"),
        ("legacy/shared", SEED),
    ]);
    let out = t.exec(&[], "work", "work-email", "qubes.FileCopy");
    assert_eq!(allow_to(&out).as_deref(), Some("work-email"), "{out:?}");
    let out = t.exec(&[], "work", "personal", "qubes.FileCopy");
    assert_eq!(out.stdout, "result=deny\n");
    assert_eq!(
        out.notifications,
        [note(
            "dom0",
            "deny",
            "qubes.FileCopy",
            "+",
            "work",
            "personal"
        )]
    );
    // Nested includes, and a subdirectory, still from the legacy directory.
    let t = Tree::new(&[
        COMPAT,
        ("legacy/qubes.FileCopy", "$include:a\n"),
        ("legacy/a", "$include:inc/b\n$anyvm $anyvm deny\n"),
        ("legacy/inc/b", "$tag:work $tag:work allow\n"),
    ]);
    assert_eq!(
        allow_to(&t.exec(&[], "work", "work-email", "qubes.FileCopy")).as_deref(),
        Some("work-email")
    );
    // From `!include-service`, legacy includes resolve against the policy directory.
    let t = Tree::new(&[
        (
            "policy.d/30-user.policy",
            "!include-service qubes.FileCopy * include/legacy\n",
        ),
        ("policy.d/include/legacy", "$include:include/shared\n"),
        ("policy.d/include/shared", SEED),
    ]);
    assert_eq!(
        allow_to(&t.exec(&[], "work", "work-email", "qubes.FileCopy")).as_deref(),
        Some("work-email")
    );
    // A legacy file with `$`-parameters and commas.
    let t = Tree::new(&[
        COMPAT,
        (
            "legacy/qubes.FileCopy",
            "$anyvm $dispvm allow,target=$dispvm:default-dvm,user=root\n",
        ),
    ]);
    assert_eq!(
        t.exec(&[], "work", "@dispvm", "qubes.FileCopy").stdout,
        "user=root\nresult=allow\ntarget=@dispvm:default-dvm\ntarget_uuid=@dispvm:uuid:00000004-1111-4222-8333-000000000004\nautostart=True\nrequested_target=@dispvm\n"
    );
}

#[test]
fn legacy_include_cycles_and_missing_files_deny() {
    let t = Tree::new(&[
        COMPAT,
        ("legacy/qubes.FileCopy", "$include:a\n"),
        ("legacy/a", "$include:qubes.FileCopy\n"),
    ]);
    let out = t.exec(&[], "work", "work-email", "qubes.FileCopy");
    assert_eq!((out.stdout.as_str(), out.exit), ("result=deny\n", 1));
    // A missing include is a syntax error: denied without a notification.
    let t = Tree::new(&[COMPAT, ("legacy/qubes.FileCopy", "$include:missing\n")]);
    let out = t.exec(&[], "work", "work-email", "qubes.FileCopy");
    assert_eq!(
        (out.stdout.as_str(), out.notifications.len()),
        ("result=deny\n", 0)
    );
    // No legacy directory at all: the policy cannot load; that notifies.
    let t = Tree::new(&[COMPAT]);
    std::fs::remove_dir(t.root.join("legacy")).unwrap();
    let out = t.exec(&[], "work", "personal", "qubes.Other");
    assert_eq!(
        out.notifications,
        [note("dom0", "deny", "qubes.Other", "+", "work", "personal")]
    );
}

#[test]
fn legacy_directory_ignores_leftovers_and_odd_names() {
    let mut files = vec![COMPAT, ("legacy/qubes.FileCopy", SEED)];
    for junk in [
        "legacy/qubes.FileCopy.rpmsave",
        "legacy/qubes.FileCopy.rpmnew",
        "legacy/qubes.FileCopy.swp",
        "legacy/.qubes.FileCopy",
        "legacy/qubes.FileCopy~",
        "legacy/qubes FileCopy",
    ] {
        files.push((junk, "garbage\n"));
    }
    // Only the last suffix counts: these are read.
    files.push(("legacy/y.rpmsave.bak", "$anyvm $anyvm allow\n"));
    files.push(("legacy/x.RPMSAVE", "$anyvm $anyvm allow\n"));
    let t = Tree::new(&files);
    symlink("nowhere", t.root.join("legacy/dangling")).unwrap();
    std::fs::create_dir(t.root.join("legacy/sub")).unwrap();
    assert_eq!(
        allow_to(&t.exec(&[], "work", "work-email", "qubes.FileCopy")).as_deref(),
        Some("work-email")
    );
    assert_eq!(
        allow_to(&t.exec(&[], "work", "personal", "y.rpmsave.bak")).as_deref(),
        Some("personal")
    );
    assert_eq!(
        allow_to(&t.exec(&[], "work", "personal", "x.RPMSAVE")).as_deref(),
        Some("personal")
    );
    // A README in the legacy directory is a policy for the service "README": an error.
    let t = Tree::new(&[COMPAT, ("legacy/README", "This directory holds policy.\n")]);
    assert_eq!(
        t.exec(&[], "work", "personal", "qubes.FileCopy")
            .notifications,
        Vec::<String>::new()
    );
}

#[test]
fn deny_notifications_for_unknown_and_empty_targets() {
    let t = Tree::new(&[(
        "policy.d/30-user.policy",
        "svc * @anyvm @anyvm deny notify=no\nsvc2 * @anyvm @anyvm allow\nsvc5 * @anyvm @default allow target=nonexistent\nsvc4 * @anyvm @anyvm ask\nsvc6 * @anyvm default-dvm ask autostart=no\n",
    )]);
    // An allow with no target (unknown or empty intended target) notifies, whatever the rule.
    for target in ["", "nonexistent", "@default", "work\n", " "] {
        for svc in ["svc2", "svc5"] {
            let out = t.exec(&[], "personal", target, svc);
            assert_eq!(out.stdout, "result=deny\n");
            assert_eq!(
                out.notifications,
                [note("sys-gui", "deny", svc, "+", "personal", target)],
                "{svc} to {target:?}"
            );
        }
    }
    // An ask with nothing to choose from notifies too (the rule says nothing of notify).
    let out = t.exec(&[], "work", "default-dvm", "svc6");
    assert_eq!(
        out.notifications,
        [note("dom0", "deny", "svc6", "+", "work", "default-dvm")]
    );
    // The deny rule's notify=no holds; an invalid target token never notifies.
    assert!(t.exec(&[], "work", "", "svc").notifications.is_empty());
    assert!(
        t.exec(&[], "work", "@anyvm", "svc2")
            .notifications
            .is_empty()
    );
    // An unknown source's ask: the reference crashes collecting targets; a denial here.
    let out = t.exec(&["--assume-yes-for-ask"], "nonexistent", "personal", "svc4");
    assert_eq!((out.stdout.as_str(), out.exit), ("result=deny\n", 1));
}

#[test]
fn load_failures_notify_syntax_errors_do_not() {
    // A forbidden name in an `!include-dir` directory cannot load: notify.
    let t = Tree::new(&[
        (
            "policy.d/30-user.policy",
            "!include-dir include\nsvc * @anyvm @anyvm allow\n",
        ),
        ("policy.d/include/Bad.policy", ""),
    ]);
    assert_eq!(
        t.exec(&[], "work", "personal", "svc").notifications,
        [note("dom0", "deny", "svc", "+", "work", "personal")]
    );
    // An include cycle denies (the reference crashes).
    let t = Tree::new(&[
        ("policy.d/30-user.policy", "!include include/a\n"),
        ("policy.d/include/a", "!include include/b\n"),
        ("policy.d/include/b", "!include include/a\n"),
    ]);
    assert_eq!(
        t.exec(&[], "work", "personal", "svc").stdout,
        "result=deny\n"
    );
    // A symlinked include directory is followed.
    let t = Tree::new(&[
        (
            "policy.d/30-user.policy",
            "!include include/a\n!include-dir include\n",
        ),
        ("elsewhere/a", "svc * @anyvm @anyvm allow\n"),
    ]);
    symlink("../elsewhere", t.root.join("policy.d/include")).unwrap();
    assert_eq!(
        allow_to(&t.exec(&[], "work", "personal", "svc")).as_deref(),
        Some("personal")
    );
}

fn admin(dir: &Path, svc: &str, payload: &[u8]) -> String {
    match handle(dir, svc, payload) {
        Ok(out) => format!("ok {}", String::from_utf8_lossy(&out)),
        Err(AdminError::Request(class, msg)) => format!("{class} {msg}"),
        Err(AdminError::Internal(_)) => "internal".into(),
    }
}

#[test]
fn admin_api_missing_directories() {
    let t = Tree::new(&[]);
    let dir = t.root.join("policy.d");
    std::fs::remove_dir(&dir).unwrap();
    for svc in [
        "policy.List",
        "policy.Get+a",
        "policy.include.List",
        "policy.GetFiles+s",
    ] {
        assert_eq!(admin(&dir, svc, b""), "internal", "{svc}");
    }
    // A missing include directory: listing fails, but single files are simply not found.
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(admin(&dir, "policy.include.List", b""), "internal");
    let inc = dir.join("include/x");
    assert_eq!(
        admin(&dir, "policy.include.Get+x", b""),
        format!(
            "PolicyAdminFileNotFoundException Not found: {}",
            inc.display()
        )
    );
    assert_eq!(
        admin(&dir, "policy.include.Remove+x", b"any"),
        format!(
            "PolicyAdminFileNotFoundException Not found: {}",
            inc.display()
        )
    );
    assert_eq!(
        admin(&dir, "policy.include.Replace+x", b"sha256:00\n"),
        "PolicyAdminTokenException File doesn't exist, but token isn't 'new'"
    );
    assert_eq!(
        admin(&dir, "policy.include.Replace+x", b"new\n"),
        "internal"
    );
}

#[test]
fn admin_api_include_cycles() {
    let t = Tree::new(&[
        ("policy.d/a.policy", "!include include/a\n"),
        ("policy.d/include/a", ""),
    ]);
    let dir = t.root.join("policy.d");
    // A cycle through the changed file: internal error, nothing written.
    assert_eq!(
        admin(
            &dir,
            "policy.include.Replace+a",
            b"any\n!include include/a\n"
        ),
        "internal"
    );
    assert_eq!(std::fs::read_to_string(dir.join("include/a")).unwrap(), "");
    assert_eq!(
        admin(&dir, "policy.Replace+c", b"any\n!include c.policy\n"),
        "internal"
    );
    assert!(!dir.join("c.policy").exists());
    // A cycle among include files nothing includes is stored unchecked.
    assert_eq!(
        admin(
            &dir,
            "policy.include.Replace+b",
            b"any\n!include include/c\n"
        ),
        "ok "
    );
    assert_eq!(
        admin(
            &dir,
            "policy.include.Replace+c",
            b"any\n!include include/b\n"
        ),
        "ok "
    );
    assert_eq!(
        admin(&dir, "policy.Replace+d", b"any\n!include include/b\n"),
        "internal"
    );
    assert!(!dir.join("d.policy").exists());
}

#[test]
fn admin_api_symlinked_include_directory() {
    let t = Tree::new(&[
        ("policy.d/a.policy", "!include include/a\n"),
        ("elsewhere/a", ""),
    ]);
    let dir = t.root.join("policy.d");
    symlink("../elsewhere", dir.join("include")).unwrap();
    let expecting = format!(
        "PolicyAdminInvalidFilePathException Expecting a path inside {}",
        dir.join("include").display()
    );
    // Listing follows the link; every single file is refused, as outside the directory.
    assert_eq!(admin(&dir, "policy.include.List", b""), "ok a\n");
    assert_eq!(admin(&dir, "policy.include.Get+a", b""), expecting);
    assert_eq!(admin(&dir, "policy.include.Replace+a", b"any\n"), expecting);
    assert_eq!(admin(&dir, "policy.include.Remove+a", b"any"), expecting);
    assert_eq!(
        admin(&dir, "policy.include.Replace+new", b"new\n"),
        expecting
    );
    assert!(!t.root.join("elsewhere/new").exists());
    // Top-level links: followed when they stay in the directory, the target replaced.
    std::fs::write(dir.join("b.policy"), "").unwrap();
    symlink("b.policy", dir.join("alias.policy")).unwrap();
    symlink("gone.policy", dir.join("dangling.policy")).unwrap();
    let get = admin(&dir, "policy.Get+alias", b"");
    assert_eq!(get, format!("ok {}\n", token_of(b"")));
    assert_eq!(
        admin(
            &dir,
            "policy.Replace+alias",
            b"any\nsvc * @anyvm @anyvm deny\n"
        ),
        "ok "
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("b.policy")).unwrap(),
        "svc * @anyvm @anyvm deny\n"
    );
    assert!(
        std::fs::symlink_metadata(dir.join("alias.policy"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A dangling link to a name in the directory: the new file takes that name.
    assert_eq!(admin(&dir, "policy.Replace+dangling", b"new\n"), "ok ");
    assert!(dir.join("gone.policy").is_file());
}
