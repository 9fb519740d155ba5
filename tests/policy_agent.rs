//! The ask agent as users meet it: `qrexec-policy-exec` (the real wiring) asks the real
//! `qrexec-policy-agent` under Xvfb, and a person's actions are played over AT-SPI
//! (python3-gi + Atspi): typing in the filter and clicking Allow once ends as an allow to the
//! chosen target; Escape ends as a deny. The policy is the RPC policy document's seed file in
//! the legacy directory, with work-tagged qubes. Run under `xvfb-run -a dbus-run-session --`.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qrexec_policy::SystemInfo;
use qrexec_policy::agent::QrexecAgent;
use qrexec_policy::exec::{AgentHandle, Options, Outcome, run};

const INFO: &str = r#"{"domains": {
 "dom0": {"internal": null, "tags": [], "type": "AdminVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "adminvm-black", "label": "black", "guivm": null, "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000000-0000-0000-0000-000000000000"},
 "work": {"internal": null, "tags": ["work"], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-blue", "label": "blue", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000001-1111-4222-8333-000000000001"},
 "personal": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-yellow", "label": "yellow", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000003-1111-4222-8333-000000000003"},
 "untrusted": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-red", "label": "red", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Running", "uuid": "00000004-1111-4222-8333-000000000004"},
 "vault": {"internal": null, "tags": [], "type": "AppVM", "template_for_dispvms": false, "default_dispvm": null, "icon": "appvm-black", "label": "black", "guivm": "dom0", "relayvm": null, "transport_rpc": null, "power_state": "Halted", "uuid": "00000005-1111-4222-8333-000000000005"}
}}"#;

const SEED: &str =
    "$tag:work $tag:work allow\n$tag:work $anyvm deny\n$anyvm $tag:work deny\n$anyvm $anyvm ask\n";

/// Plays a person at the prompt: `filter TEXT` types TEXT in the filter and clicks Allow once
/// when it becomes clickable; `escape` presses Escape. Prints what it saw.
const PERSON: &str = r#"
import sys, time, gi
gi.require_version('Atspi', '2.0')
from gi.repository import Atspi
mode, arg = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ''
def find(o, pred, depth=0):
    # Closed windows linger as defunct children for a while: skip what cannot be read.
    if o is None or depth > 40: return None
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
        if a is not None and 'policy-agent' in (a.get_name() or ''):
            return a
deadline = time.time() + 30
def wait(pred):
    while time.time() < deadline:
        a = app()
        r = find(a, pred) if a else None
        if r is not None: return r
        time.sleep(0.1)
    print('TIMEOUT'); sys.exit(1)
named = lambda role, name: (lambda o: o.get_role_name() == role and o.get_name() == name)
def prompt_of(o):
    # The prompt for this call: the window that names the caller (not another prompt).
    if o.get_role_name() not in ('frame', 'window', 'dialog', 'filler'): return False
    if o.get_name() != 'Allow a call between qubes?': return False
    return find(o, lambda c: c.get_role_name() == 'label' and (c.get_name() or '').startswith('personal')) is not None
frame = wait(prompt_of)
print('prompt:', frame.get_name())
src = find(frame, lambda o: o.get_role_name() == 'label' and (o.get_name() or '').startswith('personal'))
print('source:', src.get_name())
def within(pred):
    deadline2 = time.time() + 30
    while time.time() < deadline2:
        r = find(frame, pred)
        if r is not None: return r
        time.sleep(0.1)
    print('TIMEOUT'); sys.exit(1)
if mode == 'filter':
    entry = within(lambda o: (o.get_name() or '').startswith('Filter targets'))
    entry.get_editable_text_iface().set_text_contents(arg)
    allow = within(named('push button', 'Allow once'))
    while time.time() < deadline and not allow.get_state_set().contains(Atspi.StateType.SENSITIVE):
        time.sleep(0.05)
    print('allow sensitive:', allow.get_state_set().contains(Atspi.StateType.SENSITIVE))
    allow.get_action_iface().do_action(0)
elif mode == 'escape':
    within(named('push button', 'Deny'))
    # Escape goes to the window that has the keyboard, which the prompt takes once it is
    # mapped (no window manager here says when: the window never reads as active). Pressed
    # again each second until the prompt is gone.
    def gone():
        a = app()
        return a is None or find(a, prompt_of) is None
    while time.time() < deadline and not gone():
        Atspi.generate_keyboard_event(0xff1b, None, Atspi.KeySynthType.SYM)
        second = time.time() + 1
        while time.time() < second and not gone():
            time.sleep(0.05)
    print('closed:', gone())
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

struct Setup {
    _t: tempfile::TempDir,
    root: PathBuf,
    agent: Child,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let pid = libc::pid_t::try_from(self.agent.id()).expect("a process id fits in pid_t");
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let _ = self.agent.wait();
    }
}

fn setup() -> Setup {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    for d in ["policy.d", "legacy", "rpc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("policy.d/35-compat.policy"), "!compat-4.0\n").unwrap();
    std::fs::write(root.join("legacy/qubes.FileCopy"), SEED).unwrap();
    std::fs::write(root.join("info.json"), INFO).unwrap();
    let socket = root.join("agent.sock");
    for svc in ["policy.Ask", "policy.Notify"] {
        std::os::unix::fs::symlink(&socket, root.join("rpc").join(svc)).unwrap();
    }
    let agent = Command::new(env!("CARGO_BIN_EXE_qrexec-policy-agent"))
        .arg("--socket")
        .arg(&socket)
        .args(["--focus-delay", "300"])
        .env_remove("GTK_A11Y")
        .env_remove("NO_AT_BRIDGE")
        .env("GSK_RENDERER", "cairo")
        .env("LANG", "C.UTF-8")
        .env("LANGUAGE", "en")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the agent listens");
        std::thread::sleep(Duration::from_millis(20));
    }
    Setup { _t: t, root, agent }
}

/// `qrexec-policy-exec` with the agent wired in, in process (the same code as the program).
fn exec(root: &Path, src: &str, target: &str) -> std::thread::JoinHandle<Outcome> {
    let o = Options {
        policy_dirs: vec![root.join("policy.d")],
        legacy_dir: root.join("legacy"),
        info: SystemInfo::from_json(INFO).unwrap(),
        source: src.into(),
        target: target.into(),
        service_and_arg: "qubes.FileCopy".into(),
        agent: Some(AgentHandle(Arc::new(QrexecAgent {
            rpc_dir: root.join("rpc"),
            ..QrexecAgent::default()
        }))),
        ..Options::default()
    };
    std::thread::spawn(move || run(&o))
}

fn person(args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PERSON)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn an_ask_answered_in_the_agent() {
    if !ready() {
        return;
    }
    let s = setup();
    // personal -> untrusted: neither is work-tagged, so the last line asks.
    let call = exec(&s.root, "personal", "untrusted");
    let seen = person(&["filter", "vau"]);
    assert!(
        seen.contains("prompt: Allow a call between qubes?"),
        "{seen}"
    );
    assert!(seen.contains("source: personal (yellow label)"), "{seen}");
    assert!(seen.contains("allow sensitive: True"), "{seen}");
    let out = call.join().unwrap();
    // Allowed to the target chosen in the prompt, not the one the caller named.
    assert_eq!(
        out.stdout,
        "user=DEFAULT\nresult=allow\ntarget=vault\ntarget_uuid=uuid:00000005-1111-4222-8333-000000000005\nautostart=True\nrequested_target=untrusted\n"
    );
    assert_eq!(out.exit, 0);

    // Escape denies.
    let call = exec(&s.root, "personal", "untrusted");
    let seen = person(&["escape"]);
    assert!(seen.contains("closed: True"), "{seen}");
    let out = call.join().unwrap();
    assert_eq!((out.stdout.as_str(), out.exit), ("result=deny\n", 1));
}

#[path = "../benches/support/bus.rs"]
mod bus;

/// What the notification server was asked to show: (application, summary, body).
type Shown = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A desktop's notification server, as far as the agent uses it.
struct Notifications(Shown);

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.0.lock().unwrap();
        shown.push((app_name, summary, body));
        shown.len() as u32
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "body-markup".into()]
    }
}

fn wait_for(shown: &Shown, n: usize) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while shown.lock().unwrap().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    shown.lock().unwrap().clone()
}

#[test]
fn notifications_on_the_desktop() {
    if std::env::var_os("DISPLAY").is_none() {
        println!("no display: run under xvfb-run -a");
        return;
    }
    let (_bus, address) = bus::Bus::start();
    let shown: Shown = Default::default();
    let _server = zbus::blocking::connection::Builder::address(address.as_str())
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .serve_at(
            "/org/freedesktop/Notifications",
            Notifications(shown.clone()),
        )
        .unwrap()
        .build()
        .unwrap();
    let t = tempfile::tempdir().unwrap();
    let socket = t.path().join("agent.sock");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_qrexec-policy-agent"))
        .arg("--socket")
        .arg(&socket)
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("GTK_A11Y", "none")
        .env("GSK_RENDERER", "cairo")
        .env("LANG", "C.UTF-8")
        .env("LANGUAGE", "en")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the agent listens");
        std::thread::sleep(Duration::from_millis(20));
    }
    // As qrexec-policy-daemon sends it (the JSON of the reference).
    let notify = |body: &str| {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(b"policy.Notify dom0 name dom0\0").unwrap();
        s.write_all(body.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    assert_eq!(
        notify(
            r#"{"resolution": "deny", "service": "qubes.FileCopy", "argument": "+x", "source": "work", "target": "<b>vault</b>"}"#
        ),
        ""
    );
    assert_eq!(
        notify(
            r#"{"resolution": "allow", "service": "qubes.OpenURL", "argument": "+", "source": "work", "target": "@dispvm:default-dvm"}"#
        ),
        ""
    );
    let got = wait_for(&shown, 2);
    let pid = libc::pid_t::try_from(agent.id()).expect("a process id fits in pid_t");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = agent.wait();
    assert_eq!(
        got,
        [
            (
                "Qubes policy".to_string(),
                "Denied: qubes.FileCopy".to_string(),
                // The server reads markup: the text arrives escaped, never as markup.
                "Denied qubes.FileCopy+x from work to &lt;b&gt;vault&lt;/b&gt;".to_string()
            ),
            (
                "Qubes policy".to_string(),
                "Allowed: qubes.OpenURL".to_string(),
                "Allowed qubes.OpenURL from work to @dispvm:default-dvm".to_string()
            ),
        ]
    );

    // In a GUI qube: one call as a qrexec service program, the request on stdin.
    let mut once = Command::new(env!("CARGO_BIN_EXE_qrexec-policy-agent"))
        .args(["--service", "policy.Notify"])
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("GTK_A11Y", "none")
        .env("LANG", "C.UTF-8")
        .env("LANGUAGE", "en")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        once.stdin
            .take()
            .unwrap()
            .write_all(br#"{"resolution": "deny", "service": "qubes.Gpg", "argument": "+", "source": "personal", "target": "vault"}"#)
            .unwrap();
    }
    let out = once.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"");
    assert_eq!(
        wait_for(&shown, 3)[2].2,
        "Denied qubes.Gpg from personal to vault"
    );
}
