//! The policy editor as users meet it: `qubes-policy-editor-gui` under Xvfb on a policy
//! directory served by the real `qubes-policy-admin`, driven over AT-SPI (python3-gi +
//! Atspi): it loads a file, a changed target is saved (the file on disk changes), an invalid
//! one shows the daemon's validation error at its line (the file stays), a change made
//! elsewhere meanwhile is reported instead of overwritten, and a legacy file shows its meaning
//! in the current format. Run under `xvfb-run -a dbus-run-session --`.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PERSON: &str = r#"
import sys, time, gi
gi.require_version('Atspi', '2.0')
from gi.repository import Atspi
policy_file = sys.argv[1]
def find(o, pred, depth=0):
    if o is None or depth > 50: return None
    try:
        if o.get_state_set().contains(Atspi.StateType.DEFUNCT): return None
        if pred(o): return o
        n = o.get_child_count()
    except Exception:
        return None
    for i in range(n):
        try:
            r = find(o.get_child_at_index(i), pred, depth + 1)
        except Exception:
            r = None
        if r is not None: return r
    return None
def app():
    d = Atspi.get_desktop(0)
    for i in range(d.get_child_count()):
        a = d.get_child_at_index(i)
        if a is not None and 'policy-editor' in (a.get_name() or ''):
            return a
def wait(pred, what, secs=30):
    deadline = time.time() + secs
    while time.time() < deadline:
        a = app()
        r = find(a, pred) if a else None
        if r is not None: return r
        time.sleep(0.1)
    labels = []
    def collect(o, d=0):
        try:
            if o.get_role_name() == 'label' and text_of(o): labels.append(text_of(o))
            for i in range(o.get_child_count()): collect(o.get_child_at_index(i), d + 1)
        except Exception: pass
    collect(app())
    print('TIMEOUT', what, labels[:12]); sys.exit(1)
def text_of(o):
    t = o.get_text_iface()
    return t.get_text(0, t.get_character_count()) if t else ''
def named(name): return lambda o: o.get_name() == name
status_found = [None]
def status_is(prefix):
    def pred(o):
        if o.get_role_name() == 'label' and text_of(o).startswith(prefix):
            status_found[0] = o
            return True
        return False
    return pred
def status_text():
    return text_of(status_found[0])
target = wait(lambda o: o.get_name() == 'Target, line 2' and text_of(o) == '@anyvm', 'the file loaded', 90)
print('loaded:', text_of(target))
target.get_editable_text_iface().set_text_contents('work')
save = wait(lambda o: o.get_role_name() == 'push button' and o.get_name() == 'Save', 'save')
while not save.get_state_set().contains(Atspi.StateType.SENSITIVE): time.sleep(0.05)
save.get_action_iface().do_action(0)
wait(status_is('Saved 30-user.'), 'saved')
print('saved:', status_text())
target.get_editable_text_iface().set_text_contents('@tag:')
time.sleep(0.2)
save.get_action_iface().do_action(0)
wait(status_is('Policy change validation failed'), 'validation error')
print('refused:', status_text())
# Someone else saves meanwhile: the next save must not overwrite it.
open(policy_file, 'a').write('# changed elsewhere\n')
target.get_editable_text_iface().set_text_contents('vault')
time.sleep(0.2)
save.get_action_iface().do_action(0)
wait(status_is('The file was changed elsewhere'), 'token refused')
print('concurrent:', status_text())
legacy = wait(lambda o: o.get_role_name() == 'list item' and o.get_name() == 'qubes.FileCopy (legacy)', 'legacy row')
files = wait(named('Policy files'), 'file list')
sel = files.get_selection_iface()
sel.select_child(legacy.get_index_in_parent())
meaning = wait(lambda o: o.get_name() == 'Meaning in the current format' and 'allow' in text_of(o), 'legacy meaning')
print('legacy:', text_of(meaning).replace('\t', ' ').replace('\n', ' | '))
# A new file: named, created by saving, then removed after confirming.
name = wait(named('New file name'), 'new file name')
name.get_editable_text_iface().set_text_contents('40-mine')
wait(lambda o: o.get_role_name() == 'push button' and o.get_name() == 'New file', 'new file').get_action_iface().do_action(0)
time.sleep(0.3)
save.get_action_iface().do_action(0)
wait(status_is('Saved 40-mine.'), 'new file saved')
print('created:', status_text())
wait(lambda o: o.get_role_name() == 'push button' and o.get_name() == 'Remove file', 'remove').get_action_iface().do_action(0)
dialog = wait(lambda o: o.get_role_name() == 'dialog' and o.get_name() == 'Remove this policy file?', 'confirmation')
confirm = find(dialog, lambda o: o.get_role_name() == 'push button' and (o.get_name() or '').startswith('Remove file'))
confirm.get_action_iface().do_action(0)
wait(status_is('Removed.'), 'removed')
print('removed:', status_text())
print('done')
"#;

fn ready() -> bool {
    if std::env::var_os("DISPLAY").is_none()
        || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
    {
        println!("no display or session bus: run under xvfb-run -a dbus-run-session");
        return false;
    }
    let atspi = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('Atspi', '2.0'); from gi.repository import Atspi",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !atspi {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3-gi with Atspi missing in CI"
        );
        println!("python3 Atspi not installed: skipped");
    }
    atspi
}

/// The Policy Admin API's service program of this workspace (built if a narrower test run
/// did not build it).
fn policy_admin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("qubes-policy-admin");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "qrexec-policy",
                "--bin",
                "qubes-policy-admin",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    bin
}

#[test]
fn edits_are_saved_validated_and_guarded() {
    if !ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let dir = root.join("policy.d");
    std::fs::create_dir_all(dir.join("include")).unwrap();
    std::fs::create_dir_all(root.join("legacy")).unwrap();
    let file = dir.join("30-user.policy");
    std::fs::write(&file, "# mine\nqubes.FileCopy * @anyvm @anyvm deny\n").unwrap();
    std::fs::write(
        root.join("legacy/qubes.FileCopy"),
        "$tag:work $tag:work allow\n$anyvm $anyvm ask\n",
    )
    .unwrap();
    let mut editor = Command::new(env!("CARGO_BIN_EXE_qubes-policy-editor-gui"))
        .arg("30-user")
        .env("QUBES_POLICY_ADMIN_PROGRAM", policy_admin())
        .env("QREXEC_POLICY_DIR", &dir)
        .env("QREXEC_POLICY_ADMIN_LOG", root.join("admin.log"))
        .env("QUBES_POLICY_LEGACY_DIR", root.join("legacy"))
        .env("QUBESD_SOCKET", root.join("no-daemon.sock"))
        .env_remove("GTK_A11Y")
        .env_remove("NO_AT_BRIDGE")
        .env("GSK_RENDERER", "cairo")
        .env("LANG", "C.UTF-8")
        .env("LANGUAGE", "en")
        .spawn()
        .unwrap();
    let started = Instant::now();
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PERSON)
        .arg(&file)
        .output()
        .unwrap();
    let pid = libc::pid_t::try_from(editor.id()).expect("a process id fits in pid_t");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = editor.wait();
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{seen}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(seen.contains("loaded: @anyvm"), "{seen}");
    assert!(seen.contains("saved: Saved 30-user."), "{seen}");
    assert!(
        seen.contains(&format!(
            "refused: Policy change validation failed: {}:2: invalid empty @tag: token: '@tag:'",
            file.display()
        )),
        "{seen}"
    );
    assert!(
        seen.contains("concurrent: The file was changed elsewhere"),
        "{seen}"
    );
    assert!(
        seen.contains("legacy: qubes.FileCopy * @tag:work @tag:work allow | qubes.FileCopy * @anyvm @anyvm ask |"),
        "{seen}"
    );
    assert!(seen.contains("created: Saved 40-mine."), "{seen}");
    assert!(seen.contains("removed: Removed."), "{seen}");
    assert!(!dir.join("40-mine.policy").exists());
    // On disk: the valid save, then the other writer's line; neither refused edit.
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# mine\nqubes.FileCopy\t*\t@anyvm\twork\tdeny\n# changed elsewhere\n"
    );
}
